#!/usr/bin/env bash
# Contract test of the REST gateway: Schemathesis (from PyPI) generates requests from the
# gateway's own /openapi.json and sends them to a live stack (auth-svc on a fresh SQLite
# database, the gateway in front of it, both on loopback). Every response must be a documented
# status with a body, content type and headers matching the document, and never a 5xx.
#
#   scripts/schemathesis.sh                  # the bounded CI run
#   SCHEMATHESIS_MAX_EXAMPLES=500 scripts/schemathesis.sh   # a longer hunt
#   scripts/schemathesis.sh --seed 42        # extra arguments go to `schemathesis run`
#   GATEWAY_BIN=… AUTH_SVC_BIN=… scripts/schemathesis.sh   # binaries built elsewhere
#
# The virtual environment lives in ${CARGO_TARGET_DIR:-target}/schemathesis-venv and is reused
# while it holds the pinned version. Exits non-zero on any failure; the servers are stopped on
# every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
AUTH_ADDR=${SCHEMATHESIS_AUTH_ADDR:-127.0.0.1:50351}
GATEWAY_ADDR=${SCHEMATHESIS_GATEWAY_ADDR:-127.0.0.1:8388}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
BASE=http://$GATEWAY_ADDR

target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
venv=$target_dir/schemathesis-venv
work=$(mktemp -d -t schemathesis.XXXXXX)
pids=()

stop() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -e "$log" ] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== schemathesis $SCHEMATHESIS_VERSION in $venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$venv/bin/schemathesis" --version

# AUTH_SVC_BIN and GATEWAY_BIN name binaries already built (`.ci/run` passes the test build's,
# so they are not built again with another feature set).
if [ -z "${AUTH_SVC_BIN:-}" ] || [ -z "${GATEWAY_BIN:-}" ]; then
  echo "== building auth-svc and gateway"
  cargo build --quiet -p auth-svc -p gateway
fi
auth_svc=${AUTH_SVC_BIN:-$target_dir/debug/auth-svc}
gateway=${GATEWAY_BIN:-$target_dir/debug/gateway}

for addr in "$AUTH_ADDR" "$GATEWAY_ADDR"; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    echo "FAIL: $addr is already in use (set SCHEMATHESIS_AUTH_ADDR / SCHEMATHESIS_GATEWAY_ADDR)" >&2
    exit 1
  fi
done

echo "== starting auth-svc on $AUTH_ADDR and the gateway on $GATEWAY_ADDR"
# Throttle limits out of reach: Schemathesis sends thousands of logins and sign-ups from one address.
AUTH_SVC__LISTEN=$AUTH_ADDR \
AUTH_SVC__DATABASE_URL="sqlite://$work/auth.db?mode=rwc" \
AUTH_SVC__AUTH__ACCESS_SECRET=schemathesis-access-secret-0123456789abcdef \
AUTH_SVC__AUTH__REFRESH_SECRET=schemathesis-refresh-secret-0123456789abcdef \
AUTH_SVC__PASSWORD__HASH_PROFILE=test \
AUTH_SVC__MFA__KEYS__K1__KEY=c2NoZW1hdGhlc2lzLW1mYS1rZXktMDEyMzQ1Njc4OWE= \
AUTH_SVC__MFA__ACTIVE_KEY=k1 \
AUTH_SVC__THROTTLE__MAX_FAILURES_PER_USERNAME=1000000 \
AUTH_SVC__THROTTLE__MAX_FAILURES_PER_ADDRESS=1000000 \
AUTH_SVC__REGISTER__MAX_PER_ADDRESS=1000000 \
AUTH_SVC__THROTTLE__MAX_IN_FLIGHT_PER_ADDRESS=1000000 \
AUTH_SVC__GRPC__SHUTDOWN_GRACE_SECONDS=2 \
RUST_LOG=warn \
  "$auth_svc" >"$work/auth-svc.log" 2>&1 &
pids+=($!)
GATEWAY__LISTEN=$GATEWAY_ADDR \
GATEWAY__UPSTREAM=http://$AUTH_ADDR \
GATEWAY__HTTP__SHUTDOWN_GRACE_SECONDS=2 \
RUST_LOG=warn \
  "$gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)

ready=
for _ in $(seq 1 150); do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "FAIL: a server exited during start" >&2
      exit 1
    fi
  done
  if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "FAIL: $BASE/readyz did not answer 200 within 30 s" >&2
  exit 1
fi

# Schemathesis cannot log in by itself: it gets an account, and fetches a bearer token for each
# security scheme the document declares, again after every 401 (so after /user/logout too).
# It still tries the authenticated routes without a token and with broken ones.
user=schemathesis
password=schemathesis-password
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"$password\"}" "$BASE/user/register"
# An admin, so the /admin/users routes are exercised past their 403 (an admin cannot disable
# or delete itself, so the run cannot lock itself out).
AUTH_SVC__DATABASE_URL="sqlite://$work/auth.db?mode=rwc" "$auth_svc" user set-role "$user" admin >/dev/null
# A service account with scope introspect, so /oauth2/introspect and /oauth2/revoke are
# exercised past their 401 (the document's `clientBasic` scheme).
client=$(AUTH_SVC__DATABASE_URL="sqlite://$work/auth.db?mode=rwc" "$auth_svc" client create schemathesis \
  --id schemathesis --scope introspect 2>/dev/null)
client_secret=${client#*$'\t'}
cat >"$work/schemathesis.toml" <<TOML
[auth.dynamic.openapi.bearer]
path = "/user/login"
payload = { username = "$user", password = "$password" }
extract_selector = "/accessToken"

[auth.dynamic.openapi.oauth2]
path = "/token"
payload = { username = "$user", password = "$password" }
payload_content_type = "application/x-www-form-urlencoded"
extract_selector = "/access_token"

[auth.openapi.clientBasic]
username = "schemathesis"
password = "$client_secret"
TOML

# No 5xx; every status, content type, header and body as documented; schema-invalid input
# refused with a 4xx; authenticated routes refuse calls without valid credentials; other methods
# get 405 with a correct Allow. (Not `positive_data_acceptance`: auth-svc's username and password
# policy is configurable and lives outside the document, so valid-looking input may get a 400.)
CHECKS=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,unsupported_method,allow_header_conformance}
echo "== schemathesis run (max $MAX_EXAMPLES examples per operation; checks: $CHECKS)"
started=$SECONDS
# Run in the temporary directory: reports and Hypothesis' example database stay out of the tree.
cd "$work"
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$BASE/openapi.json" \
  --checks "$CHECKS" \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 10 \
  --generation-database none \
  --workers 2 \
  "$@"
echo "schemathesis: passed in $((SECONDS - started)) s"
