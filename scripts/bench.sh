#!/usr/bin/env bash
# Benchmarks auth-svc and the gateway on loopback and writes docs/benchmarks.md (issue 7).
#
#   scripts/bench.sh           release build, every scenario (BENCH_DURATION seconds each, 5 by
#                              default, BENCH_CONCURRENCY workers, 50 by default), start-up
#                              timing, Refresh on PostgreSQL too when one answers on
#                              127.0.0.1:5432, oha/h2load cross-checks when installed; rewrites
#                              the generated part of docs/benchmarks.md
#   scripts/bench.sh --smoke   debug build, 1 s per scenario at concurrency 2: proves the harness
#                              works (CI runs it); writes nothing under docs/
#
# BENCH_SKIP_BUILD=1 uses the binaries already built in target/ instead of building;
# BENCH_POSTGRES=off skips PostgreSQL; BENCH_GRPC_PORT (50151), BENCH_REST_PORT (8988) and
# BENCH_PG_GRPC_PORT (50152) move the loopback ports.
#
# Fails (non-zero) if a server does not start, loadgen fails, or any scenario has no successful
# request. Servers listen on 127.0.0.1 only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--smoke]" >&2; exit 2 ;;
esac

# The settings of each mode, one row each (BENCH_DURATION and BENCH_CONCURRENCY override).
#              profile duration                 warmup concurrency                 accounts startup_runs
case "$mode" in
  smoke) set -- debug   "${BENCH_DURATION:-1}" 200ms  "${BENCH_CONCURRENCY:-2}"  2        1 ;;
  full)  set -- release "${BENCH_DURATION:-5}" 500ms  "${BENCH_CONCURRENCY:-50}" 8        5 ;;
esac
profile=$1 duration=$2 warmup=$3 concurrency=$4 accounts=$5 startup_runs=$6
grpc_port=${BENCH_GRPC_PORT:-50151}
rest_port=${BENCH_REST_PORT:-8988}
pg_grpc_port=${BENCH_PG_GRPC_PORT:-50152}
postgres=${BENCH_POSTGRES:-auto} # auto | off

if [ -n "${BENCH_SKIP_BUILD:-}" ]; then
  echo "== BENCH_SKIP_BUILD set: using the binaries already in target/$profile"
elif [ "$profile" = release ]; then
  echo "== building ($profile): auth-svc, gateway, loadgen"
  cargo build --quiet --release -p auth-svc -p gateway -p loadgen
else
  echo "== building ($profile): auth-svc, gateway, loadgen"
  cargo build --quiet -p auth-svc -p gateway -p loadgen
fi
bin="${CARGO_TARGET_DIR:-target}/$profile"
loadgen="$bin/loadgen"

work=$(mktemp -d "${TMPDIR:-/tmp}/auth-bench.XXXXXX")
pids=()
pg_db=""
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_db" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists "$pg_db" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fixed secrets (≥ 32 bytes, different), the OWASP hash profile (the default), and throttle
# limits far above anything a run reaches, so that only hashing bounds a login storm.
export AUTH_SVC__AUTH__ACCESS_SECRET="bench-access-secret-0123456789-abcdefghijklmnop"
export AUTH_SVC__AUTH__REFRESH_SECRET="bench-refresh-secret-0123456789-abcdefghijklmnop"
export AUTH_SVC__PASSWORD__HASH_PROFILE=owasp
export AUTH_SVC__THROTTLE__MAX_FAILURES_PER_USERNAME=1000000000
export AUTH_SVC__THROTTLE__MAX_FAILURES_PER_ADDRESS=1000000000
export AUTH_SVC__REGISTER__MAX_PER_ADDRESS=1000000000
export AUTH_SVC__THROTTLE__MAX_IN_FLIGHT_PER_ADDRESS=1000000000
sqlite_url="sqlite://$work/auth.db?mode=rwc"

now_ns() { date +%s%N; }

# Starts auth-svc in the background; sets $started_pid. Arguments: listen port, database URL, log.
start_auth() {
  AUTH_SVC__LISTEN="127.0.0.1:$1" AUTH_SVC__DATABASE_URL="$2" "$bin/auth-svc" >>"$3" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
}

stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local kept=()
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  pids=("${kept[@]}")
}

wait_grpc() { # port, log: prints the Unix time (ns) of the first SERVING answer
  if ! "$loadgen" wait-serving --grpc "http://127.0.0.1:$1" --timeout 60s; then
    echo "FAIL: auth-svc on port $1 did not become SERVING; its log:" >&2
    tail -n 30 "$2" >&2
    return 1
  fi
}

echo "== start-up: exec → SERVING on an existing SQLite database ($startup_runs runs)"
start_auth "$grpc_port" "$sqlite_url" "$work/auth-svc.log"
wait_grpc "$grpc_port" "$work/auth-svc.log" >/dev/null # first start creates and migrates the DB
stop "$started_pid"
startup_samples=()
for run in $(seq 1 "$startup_runs"); do
  t0=$(now_ns)
  start_auth "$grpc_port" "$sqlite_url" "$work/auth-svc.log"
  t1=$(wait_grpc "$grpc_port" "$work/auth-svc.log")
  startup_samples+=("$(( (t1 - t0) / 1000 ))") # µs
  # The last start stays up: it is the server under test.
  if [ "$run" -lt "$startup_runs" ]; then stop "$started_pid"; fi
done
auth_pid=$started_pid
startup_ms=$(printf '%s\n' "${startup_samples[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
startup_all=$(printf '%s\n' "${startup_samples[@]}" | awk '{printf "%s%.1f", (NR>1?", ":""), $1/1000}')
echo "start-up: median $startup_ms ms (runs: $startup_all ms)"

GATEWAY__LISTEN="127.0.0.1:$rest_port" GATEWAY__UPSTREAM="http://127.0.0.1:$grpc_port" \
  "$bin/gateway" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")
if ! "$loadgen" wait-serving --http "http://127.0.0.1:$rest_port" --timeout 60s >/dev/null; then
  echo "FAIL: gateway did not answer /healthz; its log:" >&2
  tail -n 30 "$work/gateway.log" >&2
  exit 1
fi

pg_args=()
if [ "$mode" = full ] && [ "$postgres" != off ] && command -v createdb >/dev/null \
  && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_db="auth_bench_$$"
  if createdb -h 127.0.0.1 -U postgres "$pg_db" 2>"$work/createdb.log"; then
    start_auth "$pg_grpc_port" "postgres://postgres@127.0.0.1:5432/$pg_db" "$work/auth-svc-pg.log"
    wait_grpc "$pg_grpc_port" "$work/auth-svc-pg.log" >/dev/null
    pg_args=(--postgres-grpc-addr "http://127.0.0.1:$pg_grpc_port" --postgres-auth-pid "$started_pid")
  else
    echo "PostgreSQL: cannot create a database ($(head -n1 "$work/createdb.log")); Refresh on PostgreSQL skipped"
    pg_db=""
  fi
elif [ "$mode" = full ]; then
  echo "PostgreSQL not answering on 127.0.0.1:5432 (or BENCH_POSTGRES=off): Refresh on PostgreSQL skipped"
fi

command_line=("$loadgen" all --grpc-addr "http://127.0.0.1:$grpc_port" --rest-url "http://127.0.0.1:$rest_port"
  --auth-pid "$auth_pid" --gateway-pid "$gateway_pid" --duration "$duration" --warmup "$warmup"
  --concurrency "$concurrency" --accounts "$accounts" --startup-ms "$startup_ms" "${pg_args[@]}"
  --out "$work/table.md")
echo "== ${command_line[*]}"
"${command_line[@]}"

if [ "$mode" = smoke ]; then
  echo "== smoke passed: every scenario answered (a debug build at concurrency 2: the numbers mean nothing)"
  exit 0
fi

# Independent cross-checks of the load generator, where the tools are installed.
cross="$work/cross-check.md"
: >"$cross"
token=$("$loadgen" token --grpc-addr "http://127.0.0.1:$grpc_port")
rest="http://127.0.0.1:$rest_port"
if command -v oha >/dev/null; then
  echo "== oha cross-check"
  for path in /healthz /user/info /protected; do
    {
      echo "oha -z ${duration}s -c $concurrency $rest$path"
      oha -z "${duration}s" -c "$concurrency" --no-tui -H "Authorization: Bearer $token" "$rest$path" 2>&1 \
        | grep -E 'Success rate|Requests/sec|50(\.00)?% in|99(\.00)?% in|99\.90% in|\[[0-9]{3}\]' || true
      echo
    } >>"$cross"
  done
fi
if command -v h2load >/dev/null; then
  echo "== h2load cross-check"
  h2load_summary() { grep -E '^finished in|^requests:|^status codes:|^time for request:' || true; }
  for path in /healthz /user/info /protected; do
    {
      echo "h2load --h1 -D $duration -c $concurrency $rest$path"
      h2load --h1 -D "$duration" -c "$concurrency" -H "authorization: Bearer $token" "$rest$path" 2>&1 | h2load_summary
      echo
    } >>"$cross"
  done
  # gRPC over h2load: one empty message (5-byte frame header, zero-length protobuf) per request;
  # h2load counts HTTP status 200, so a gRPC error status would not show here.
  printf '\0\0\0\0\0' >"$work/empty.grpc"
  streams=$(( (concurrency + 3) / 4 ))
  for method in grpc.health.v1.Health/Check user.v1.UserService/GetUserInfo; do
    {
      echo "h2load -D $duration -c 4 -m $streams (gRPC) /$method"
      h2load -D "$duration" -c 4 -m "$streams" -d "$work/empty.grpc" -H 'content-type: application/grpc' \
        -H 'te: trailers' -H "authorization: Bearer $token" "http://127.0.0.1:$grpc_port/$method" 2>&1 | h2load_summary
      echo
    } >>"$cross"
  done
fi

# The generated part of docs/benchmarks.md sits between two markers; the notes around it are
# written by hand and kept.
doc=docs/benchmarks.md
begin='<!-- bench.sh: generated from here -->'
end='<!-- bench.sh: generated up to here -->'
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
{
  echo "$begin"
  echo
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`"\
"$(git diff --quiet HEAD -- crates src proto 2>/dev/null || echo ' (with uncommitted changes)')."
  echo
  echo "- Machine: $(nproc) cores ($cpu), $mem memory, $(uname -sr)."
  echo "- Command: \`scripts/bench.sh\` (BENCH_DURATION=$duration, BENCH_CONCURRENCY=$concurrency$([ -n "${BENCH_SKIP_BUILD:-}" ] && echo ', BENCH_SKIP_BUILD=1')), which ran"
  echo "  \`${command_line[*]//$work/\$TMP}\`"
  echo "  with auth-svc and the gateway built in release mode, on 127.0.0.1, a fresh SQLite database,"
  echo "  the default \`owasp\` hash profile and hashing concurrency (one per core), and logging at its"
  echo "  default level (\`info\`) into files. loadgen runs on the same cores as the servers."
  echo "- Start-up (exec → SERVING on an existing SQLite database): median $startup_ms ms of $startup_runs runs ($startup_all ms)."
  if [ ${#pg_args[@]} -eq 0 ]; then echo "- PostgreSQL: not run (none answering on 127.0.0.1:5432)."; fi
  echo
  cat "$work/table.md"
  echo
  echo "### Cross-checks"
  echo
  if [ -s "$cross" ]; then
    echo '```'
    cat "$cross"
    echo '```'
  else
    echo "Neither \`oha\` nor \`h2load\` (Debian: nghttp2-client) is installed; no cross-check ran."
  fi
  echo
  echo "$end"
} >"$work/generated.md"

mkdir -p docs
if [ -f "$doc" ] && grep -qF "$begin" "$doc" && grep -qF "$end" "$doc"; then
  awk -v begin="$begin" -v end="$end" -v gen="$work/generated.md" '
    $0 == begin { while ((getline line < gen) > 0) print line; skipping = 1; next }
    $0 == end { skipping = 0; next }
    !skipping { print }' "$doc" >"$work/doc.md"
  cp "$work/doc.md" "$doc"
else
  { echo "# Benchmarks"; echo; cat "$work/generated.md"; } >"$doc"
fi
echo "== wrote $doc"
