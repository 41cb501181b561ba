#!/usr/bin/env bash
# End-to-end test of the OAuth 2.0 surface with a real client library: authlib (from PyPI)
# drives the gateway's /token (password, refresh and client credentials grants),
# /oauth2/introspect, /oauth2/revoke and /.well-known/oauth-authorization-server, with auth-svc
# behind it on a fresh database, both on loopback (tests/oauth-clients/test_oauth_clients.py).
#
#   scripts/oauth-clients.sh                                            # a fresh SQLite file
#   scripts/oauth-clients.sh postgres://postgres@127.0.0.1:5432/test    # a fresh database on
#   scripts/oauth-clients.sh mysql://root@127.0.0.1:3306/test           #   that server, dropped after
#   scripts/oauth-clients.sh "" -k revoke                               # extra arguments go to pytest
#   GATEWAY_BIN=other/gateway AUTH_SVC_BIN=other/auth-svc scripts/oauth-clients.sh   # other builds
#
# The virtual environment lives in ${CARGO_TARGET_DIR:-target}/oauth-clients-venv and is reused
# while it holds tests/oauth-clients/requirements.txt. With AUTH_TEST_LOG_FILE set (.ci/run sets
# it), both servers log at debug level and their logs are appended to that file, which .ci/run
# checks for secrets. Exits non-zero on any failure; the servers are stopped and the database
# dropped on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

AUTH_ADDR=${OAUTH_CLIENTS_AUTH_ADDR:-127.0.0.1:50352}
GATEWAY_ADDR=${OAUTH_CLIENTS_GATEWAY_ADDR:-127.0.0.1:8389}
BASE=http://$GATEWAY_ADDR
REQUIREMENTS=tests/oauth-clients/requirements.txt
ORDERS_AUDIENCE=https://orders.example

database_url=${1:-}
shift $(($# > 0 ? 1 : 0))

target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
venv=$target_dir/oauth-clients-venv
work=$(mktemp -d -t oauth-clients.XXXXXX)
pids=()
drop_database=

stop() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$drop_database" ]; then
    on_server "DROP DATABASE IF EXISTS $run_database" || echo "WARNING: could not drop database $run_database" >&2
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -e "$log" ] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -n 30 "$log" >&2
    done
  fi
  if [ -n "${AUTH_TEST_LOG_FILE:-}" ]; then
    cat "$work"/*.log >>"$AUTH_TEST_LOG_FILE" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A database of its own for this run, on the server the URL names (any existing database on
# it will do for connecting), and the URL of the new one.
run_database=oauth_clients_$(date +%s)_$$
url_path_replaced() { # url: the same server, with the run's database as its path
  local base=${1%%\?*} query=${1#"${1%%\?*}"} server
  server=${base%/}
  case ${server#*://} in */*) server=${server%/*} ;; esac
  echo "$server/$run_database$query"
}
case $database_url in
  "")
    label=SQLite
    run_url="sqlite://$work/auth.db?mode=rwc"
    ;;
  postgres://* | postgresql://*)
    label=PostgreSQL
    on_server() { psql -X -q -v ON_ERROR_STOP=1 "$database_url" -c "$1" >/dev/null; }
    ;;
  mysql://*)
    label=MariaDB
    # The client takes no URL: its parts, the password through the environment.
    if ! [[ $database_url =~ ^mysql://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?(/|$) ]]; then
      echo "FAIL: expected mysql://USER[:PASSWORD]@HOST[:PORT]/DB, got another shape" >&2
      exit 2
    fi
    mysql_user=${BASH_REMATCH[1]} mysql_password=${BASH_REMATCH[3]}
    mysql_host=${BASH_REMATCH[4]} mysql_port=${BASH_REMATCH[6]:-3306}
    on_server() { MYSQL_PWD=$mysql_password mariadb -u"$mysql_user" -h"$mysql_host" -P"$mysql_port" -e "$1"; }
    ;;
  *)
    echo "usage: $0 [postgres://…|mysql://…] [pytest arguments]; no URL: a fresh SQLite file" >&2
    exit 2
    ;;
esac
if [ "$label" != SQLite ]; then
  on_server "CREATE DATABASE $run_database"
  drop_database=1
  run_url=$(url_path_replaced "$database_url")
fi
echo "== OAuth 2.0 clients on $label${drop_database:+ (database $run_database)}"

echo "== authlib and pytest in $venv"
if ! cmp -s "$REQUIREMENTS" "$venv/requirements.txt" \
  || ! "$venv/bin/python" -c 'import authlib, pytest, requests' 2>/dev/null; then
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  # The stamp of what it holds, written only once the install succeeded.
  cp "$REQUIREMENTS" "$venv/requirements.txt"
fi

bin=$target_dir/debug
if [ -z "${AUTH_SVC_BIN:-}" ] || [ -z "${GATEWAY_BIN:-}" ]; then
  echo "== building auth-svc and gateway"
  cargo build --quiet -p auth-svc -p gateway
fi
auth_svc=${AUTH_SVC_BIN:-$bin/auth-svc}
gateway=${GATEWAY_BIN:-$bin/gateway}

for addr in "$AUTH_ADDR" "$GATEWAY_ADDR"; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    echo "FAIL: $addr is already in use (set OAUTH_CLIENTS_AUTH_ADDR / OAUTH_CLIENTS_GATEWAY_ADDR)" >&2
    exit 1
  fi
done

log_filter=warn
if [ -n "${AUTH_TEST_LOG_FILE:-}" ]; then
  log_filter=debug,h2=info,hyper=info,hyper_util=info,tower=info,sqlx=info
fi
# The settings of both the CLI and the server: same database, keys and scopes.
export AUTH_SVC__DATABASE_URL=$run_url
export AUTH_SVC__AUTH__ACCESS_SECRET=test-access-secret-0123456789abcdef
export AUTH_SVC__AUTH__REFRESH_SECRET=test-refresh-secret-0123456789abcdef
export AUTH_SVC__PASSWORD__HASH_PROFILE=test
# The issuer is the gateway's URL, as RFC 8414 has it: the metadata then names its endpoints
# under it, and authlib can check the document.
export AUTH_SVC__AUTH__ISSUER=$BASE
export AUTH_SVC__CLIENTS__SCOPES='[introspect, orders:read, orders:write]'
# A sealing key, so that accounts can turn on the second factor.
export AUTH_SVC__MFA__KEYS__K1__KEY=b2F1dGgtY2xpZW50cy1tZmEta2V5LTAxMjM0NTY3ODk=
export AUTH_SVC__MFA__ACTIVE_KEY=k1

echo "== migrating, then creating the service accounts gate, orders and reports"
# The client commands work on a migrated database only.
"$auth_svc" migrate >"$work/migrate.log" 2>&1
# Their audit lines go to a log; the secrets, printed once on stdout, only into variables.
# gate may introspect; orders has two scopes and an audience; reports is the one whose tokens
# the tests revoke (revoking a client's token also ends its other tokens of that second).
create_client() { # id, display name, more `client create` arguments; prints the secret
  local id secret
  IFS=$'\t' read -r id secret < <("$auth_svc" client create "$2" --id "$1" "${@:3}" 2>>"$work/client-create.log") || true
  if [ "${id:-}" != "$1" ] || [ -z "${secret:-}" ]; then
    echo "FAIL: auth-svc client create $1 did not print its id and secret" >&2
    return 1
  fi
  printf '%s' "$secret"
}
gate_secret=$(create_client gate Gate --scope introspect)
orders_secret=$(create_client orders Orders --scope "orders:read orders:write" --audience "$ORDERS_AUDIENCE")
reports_secret=$(create_client reports Reports --scope orders:read)

echo "== starting auth-svc on $AUTH_ADDR and the gateway on $GATEWAY_ADDR"
AUTH_SVC__LISTEN=$AUTH_ADDR \
AUTH_SVC__GRPC__SHUTDOWN_GRACE_SECONDS=2 \
RUST_LOG=$log_filter \
  "$auth_svc" >"$work/auth-svc.log" 2>&1 &
pids+=($!)
GATEWAY__LISTEN=$GATEWAY_ADDR \
GATEWAY__UPSTREAM=http://$AUTH_ADDR \
GATEWAY__HTTP__SHUTDOWN_GRACE_SECONDS=2 \
RUST_LOG=$log_filter \
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

echo "== pytest tests/oauth-clients against $BASE"
# No cache or bytecode in the tree; secrets reach the tests through the environment only.
PYTHONDONTWRITEBYTECODE=1 \
OAUTH_BASE_URL=$BASE \
OAUTH_GATE_CLIENT_ID=gate OAUTH_GATE_CLIENT_SECRET=$gate_secret \
OAUTH_ORDERS_CLIENT_ID=orders OAUTH_ORDERS_CLIENT_SECRET=$orders_secret \
OAUTH_REPORTS_CLIENT_ID=reports OAUTH_REPORTS_CLIENT_SECRET=$reports_secret \
OAUTH_ORDERS_AUDIENCE=$ORDERS_AUDIENCE \
  "$venv/bin/python" -m pytest -p no:cacheprovider -q --tb=short tests/oauth-clients "$@"
