#!/usr/bin/env bash
# OpenAPI lint: the document the gateway serves at /openapi.json, checked with Stoplight
# Spectral's `spectral:oas` ruleset (scripts/spectral/.spectral.yaml). A warning fails the run as
# an error does.
#
#   scripts/spectral.sh            # build the gateway, fetch its document, lint it
#
# The CLI is the version pinned in scripts/spectral/package-lock.json, installed by `npm ci` into
# scripts/spectral/node_modules when it is missing or older than the lock file. The document
# needs no auth-svc: the gateway runs on a port the kernel picks on 127.0.0.1, in front of an
# upstream nobody listens on (its channel connects lazily). The gateway is stopped on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."

spectral_dir=scripts/spectral
spectral=$spectral_dir/node_modules/.bin/spectral
pinned=$(node -p 'require("./'"$spectral_dir"'/package.json").devDependencies["@stoplight/spectral-cli"]')
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
work=$(mktemp -d -t spectral.XXXXXX)
gateway_pid=
fetched=

stop() {
  local status=$?
  if [ -n "$gateway_pid" ]; then
    kill -TERM "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -z "$fetched" ] && [ -s "$work/gateway.log" ]; then
    echo "---- last lines of gateway.log" >&2
    tail -n 30 "$work/gateway.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# `npm ci` leaves its record of the tree in node_modules/.package-lock.json: a lock file newer
# than that record, or another CLI version, means the tree is stale.
installed=$("$spectral" --version 2>/dev/null || true)
if [ "$installed" != "$pinned" ] || [ "$spectral_dir/package-lock.json" -nt "$spectral_dir/node_modules/.package-lock.json" ]; then
  echo "== installing spectral $pinned (npm ci in $spectral_dir)"
  # No install scripts: the tree's only one is a usage-analytics ping (@scarf/scarf); the CLI
  # needs none.
  (cd "$spectral_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
echo "== spectral $("$spectral" --version)"

# GATEWAY_BIN names a gateway already built (`.ci/run` passes the test build's, so the gateway is
# not built again with another feature set).
if [ -z "${GATEWAY_BIN:-}" ]; then
  echo "== building the gateway"
  cargo build --quiet -p gateway
fi
gateway=${GATEWAY_BIN:-$target_dir/debug/gateway}

# Port 9 (discard): the document is served without a call upstream, so nothing need answer there.
GATEWAY__LISTEN=127.0.0.1:0 \
GATEWAY__UPSTREAM=http://127.0.0.1:9 \
GATEWAY__LOG__FORMAT=json \
RUST_LOG=info \
  "$gateway" >"$work/gateway.log" 2>&1 &
gateway_pid=$!

# The bound address, from the start-up line `serving REST`.
addr=
for _ in $(seq 1 150); do
  if ! kill -0 "$gateway_pid" 2>/dev/null; then
    echo "FAIL: the gateway exited during start" >&2
    exit 1
  fi
  addr=$(sed -n 's/.*"address":"\([0-9.]*:[0-9]*\)".*/\1/p' "$work/gateway.log" | head -n 1)
  [ -n "$addr" ] && break
  sleep 0.2
done
if [ -z "$addr" ]; then
  echo "FAIL: the gateway did not log its address within 30 s" >&2
  exit 1
fi

curl -fsS --noproxy '*' -o "$work/openapi.json" "http://$addr/openapi.json"
fetched=1
echo "== spectral lint (spectral:oas, fails on warnings) of /openapi.json from $addr"
"$spectral" lint --ruleset "$spectral_dir/.spectral.yaml" --fail-severity=warn "$work/openapi.json"
