#!/usr/bin/env bash
# Starts auth-svc (gRPC, :50051) and the gateway (REST, :8888) together on their embedded
# defaults: an SQLite file under ./data/, no Redis. Ctrl-C (or SIGTERM) stops both.
# Extra arguments go to auth-svc, e.g. `scripts/dev.sh -f crates/auth-svc/auth-svc.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p auth-svc -p gateway
bin="${CARGO_TARGET_DIR:-target}/debug"

"$bin/auth-svc" "$@" &
auth_pid=$!
"$bin/gateway" &
gateway_pid=$!

stop() {
  kill -TERM "$auth_pid" "$gateway_pid" 2>/dev/null || true
  wait "$auth_pid" "$gateway_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT

# If either process dies on its own, stop the other and report its exit status.
set +e
wait -n "$auth_pid" "$gateway_pid"
status=$?
set -e
exit "$status"
