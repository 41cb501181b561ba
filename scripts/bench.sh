#!/usr/bin/env bash
# Benchmarks auth-svc and the gateway on loopback and writes docs/benchmarks.md (issues 7, 17).
#
#   scripts/bench.sh           release build, every scenario (BENCH_DURATION seconds each, 5 by
#                              default, BENCH_CONCURRENCY in flight, 50 by default), start-up
#                              timing, Refresh on PostgreSQL and MariaDB too when they answer on
#                              127.0.0.1 (a fresh database each, dropped on exit); rewrites the
#                              generated part of docs/benchmarks.md
#   scripts/bench.sh --smoke   debug build, 1 s per scenario at concurrency 2: proves the harness
#                              works (CI runs it); writes nothing under docs/
#   scripts/bench.sh --scale   release build, PostgreSQL only: seeds a fresh database with
#                              BENCH_SCALE_USERS accounts (1,000,000) and 5 refresh-token rows
#                              each, runs GetUserInfo (cache cold), Login, Refresh and Register
#                              spread over BENCH_ACCOUNTS accounts (64) on it and on an empty
#                              database, and prints each one's seeded ÷ empty rate and
#                              PostgreSQL's CPU and WAL bytes per request, then EXPLAIN of the
#                              lookups; both databases are dropped on exit; writes nothing under docs/
#
# The stateless calls are driven by light C tools, so that the load generator's own CPU is not
# taken from the servers: h2load (Debian: nghttp2-client) sends prebuilt gRPC frames (written by
# `loadgen frame`) for the health check, GetUserInfo and Login, and wrk drives the gateway's REST
# paths. loadgen drives what needs each answer (Refresh chains) and the login storm with paced
# GetUserInfo callers. Each scenario reads utime+stime of auth-svc and the gateway from
# /proc/<pid>/stat before and after it, and the load tool's own CPU, and the table shows µs of
# CPU per request for each. Missing tools are installed with apt-get when running as root (CI).
#
# BENCH_SKIP_BUILD=1 uses the binaries already built in target/ instead of building;
# BENCH_PROFILE=debug runs a mode on a debug build (for working on this script);
# BENCH_POSTGRES=off and BENCH_MARIADB=off skip those stores; BENCH_GRPC_PORT (50151),
# BENCH_REST_PORT (8988), BENCH_PG_GRPC_PORT (50152), BENCH_MARIADB_GRPC_PORT (50153) and
# BENCH_ADMIN_PORT (9188, auth-svc's /metrics) move the loopback ports.
#
# Fails (non-zero) if a server does not start, a tool fails, a gRPC frame the tools send does not
# answer grpc-status 0, or any scenario has no successful request. Servers listen on 127.0.0.1
# only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --smoke) mode=smoke ;;
  --scale) mode=scale ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--smoke | --scale]" >&2; exit 2 ;;
esac

# The settings of each mode, one row each (BENCH_DURATION and BENCH_CONCURRENCY override).
#              profile duration                 warmup concurrency                 accounts startup_runs
case "$mode" in
  smoke) set -- debug   "${BENCH_DURATION:-1}" 200ms  "${BENCH_CONCURRENCY:-2}"  2        1 ;;
  full)  set -- release "${BENCH_DURATION:-5}" 500ms  "${BENCH_CONCURRENCY:-50}" 8        5 ;;
  scale) set -- release "${BENCH_DURATION:-5}" 500ms  "${BENCH_CONCURRENCY:-50}" "${BENCH_ACCOUNTS:-64}" 1 ;;
esac
profile=${BENCH_PROFILE:-$1} duration=$2 warmup=$3 concurrency=$4 accounts=$5 startup_runs=$6
grpc_port=${BENCH_GRPC_PORT:-50151}
rest_port=${BENCH_REST_PORT:-8988}
pg_grpc_port=${BENCH_PG_GRPC_PORT:-50152}
admin_port=${BENCH_ADMIN_PORT:-9188} # auth-svc's /metrics, whose per-code call counts the h2load rows use
mariadb_grpc_port=${BENCH_MARIADB_GRPC_PORT:-50153}
postgres=${BENCH_POSTGRES:-auto} # auto | off
mariadb=${BENCH_MARIADB:-auto}   # auto | off

# The light load tools; CI runs as root on a fresh machine and installs them.
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "FAIL: install ${missing[*]} (Debian packages: h2load is in nghttp2-client)" >&2
    exit 1
  fi
fi

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
mariadb_db=""
scale_dbs=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_db" ]; then dropdb -h 127.0.0.1 -U postgres --if-exists "$pg_db" 2>/dev/null || true; fi
  for db in "${scale_dbs[@]}"; do dropdb -h 127.0.0.1 -U postgres --if-exists "$db" 2>/dev/null || true; done
  if [ -n "$mariadb_db" ]; then mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $mariadb_db" 2>/dev/null || true; fi
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

# ---- --scale: the same calls on a database holding a million accounts and on an empty one.
if [ "$mode" = scale ]; then
  scale_users=${BENCH_SCALE_USERS:-1000000}
  if ! command -v psql >/dev/null || ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "FAIL: --scale needs PostgreSQL on 127.0.0.1:5432 (and psql)" >&2
    exit 1
  fi
  psql_db() { psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -U postgres -d "$@"; }
  seeded_db="auth_scale_seeded_$$" empty_db="auth_scale_empty_$$"
  createdb -h 127.0.0.1 -U postgres "$seeded_db" && scale_dbs+=("$seeded_db")
  createdb -h 127.0.0.1 -U postgres "$empty_db" && scale_dbs+=("$empty_db")
  # A zero cache TTL: every GetUserInfo reads its row, as with a cold cache.
  export AUTH_SVC__CACHE__TTL_SECONDS=0
  start_auth "$grpc_port" "postgres://postgres@127.0.0.1:5432/$seeded_db" "$work/auth-svc-seeded.log"
  seeded_pid=$started_pid
  wait_grpc "$grpc_port" "$work/auth-svc-seeded.log" >/dev/null # migrates the schema
  start_auth "$pg_grpc_port" "postgres://postgres@127.0.0.1:5432/$empty_db" "$work/auth-svc-empty.log"
  empty_pid=$started_pid
  wait_grpc "$pg_grpc_port" "$work/auth-svc-empty.log" >/dev/null

  # One real argon2 hash of the bench password, from a Register, reused by every seeded account
  # (hashing a million would take hours); each account has one session of 5 rows, 4 rotated
  # and the newest live, as a client refreshing every hour leaves them.
  "$loadgen" token --grpc-addr "http://127.0.0.1:$grpc_port" --username scale-hash-source >/dev/null
  # auth-svc stays stopped while the rows go in: its periodic queries would scan the table
  # while its indexes are being rebuilt.
  stop "$seeded_pid"
  echo "== seeding $seeded_db: $scale_users accounts, $((scale_users * 5)) refresh-token rows"
  t0=$(now_ns)
  # Secondary indexes are dropped and built again after the rows are in (a sorted build instead of
  # millions of random inserts), as the migrations defined them; the primary and unique keys stay.
  secondary="FROM pg_indexes AS i WHERE schemaname = 'public' AND tablename IN ('users', 'refresh_tokens')
    AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)"
  drop_indexes=$(psql_db "$seeded_db" -c "SELECT 'DROP INDEX ' || quote_ident(indexname) || ';' $secondary")
  create_indexes=$(psql_db "$seeded_db" -c "SELECT indexdef || ';' $secondary")
  # The foreign key holds by construction; replica mode skips its per-row trigger.
  psql_db "$seeded_db" <<SQL
SET session_replication_role = replica;
SET maintenance_work_mem = '256MB';
$drop_indexes
INSERT INTO users (username, username_canonical, password_hash, role, created_at, updated_at)
SELECT 'scale-user-' || g, 'scale-user-' || g, h.password_hash, 'user',
       now() - make_interval(secs => g), now() - make_interval(secs => g)
FROM generate_series(1, $scale_users) AS g,
     (SELECT password_hash FROM users WHERE username = 'scale-hash-source') AS h;
INSERT INTO refresh_tokens (id, family_id, user_id, access_jti, issued_at, expires_at, rotated_at, successor_id, revoked_at)
SELECT md5(u.id || '-' || k)::uuid::text, md5('family-' || u.id)::uuid::text, u.id,
       md5('jti-' || u.id || '-' || k)::uuid::text,
       t.now - (5 - k) * 3600, t.now - (5 - k) * 3600 + 30 * 86400,
       CASE WHEN k < 4 THEN t.now - (4 - k) * 3600 END,
       CASE WHEN k < 4 THEN md5(u.id || '-' || (k + 1))::uuid::text END, NULL
FROM users AS u CROSS JOIN generate_series(0, 4) AS k
     CROSS JOIN (SELECT extract(epoch FROM now())::bigint AS now) AS t
WHERE u.username LIKE 'scale-user-%'
ORDER BY 1;
$create_indexes
ANALYZE users;
ANALYZE refresh_tokens;
SQL
  t1=$(now_ns)
  start_auth "$grpc_port" "postgres://postgres@127.0.0.1:5432/$seeded_db" "$work/auth-svc-seeded.log"
  seeded_pid=$started_pid
  wait_grpc "$grpc_port" "$work/auth-svc-seeded.log" >/dev/null
  echo "seeded in $(( (t1 - t0) / 1000000000 )) s: $(psql_db "$seeded_db" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"

  backend_ticks() { # database: utime + stime of its backends now, summed
    local total=0 pid ticks
    for pid in $(psql_db postgres -c "SELECT pid FROM pg_stat_activity WHERE datname = '$1'"); do
      ticks=$(cpu_ticks_of "$pid") && total=$((total + ${ticks:-0}))
    done
    echo "$total"
  }
  cpu_ticks_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
  hz=$(getconf CLK_TCK)
  scale_table="$work/scale.md"
  {
    echo "| scenario | database | requests/s | p99 ms | errors | auth-svc CPU µs/req | PostgreSQL CPU µs/req | WAL bytes/req |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|"
  } >"$scale_table"
  declare -A scale_rate
  for scenario in grpc-userinfo grpc-login grpc-refresh grpc-register; do
    for which in empty seeded; do
      if [ "$which" = seeded ]; then
        db=$seeded_db port=$grpc_port pid=$seeded_pid spread=(--existing-accounts "scale-user-:$scale_users")
      else
        db=$empty_db port=$pg_grpc_port pid=$empty_pid spread=()
      fi
      # The readings cover the whole loadgen command, its logins of the accounts included.
      pg0=$(backend_ticks "$db")
      lsn0=$(psql_db postgres -c "SELECT pg_current_wal_lsn()")
      "$loadgen" "$scenario" --grpc-addr "http://127.0.0.1:$port" --auth-pid "$pid" --duration "$duration" \
        --warmup "$warmup" --concurrency "$concurrency" --accounts "$accounts" "${spread[@]}" \
        --tsv "$work/$scenario-$which.tsv" >"$work/$scenario-$which.md"
      wal=$(psql_db postgres -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
      pg1=$(backend_ticks "$db")
      IFS=$'\t' read -r _ _ _ ok errors seconds _ p99 _ auth_us _ _ _ <"$work/$scenario-$which.tsv"
      scale_rate[$scenario-$which]=$(awk -v n="$ok" -v s="$seconds" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
      awk -v sc="$scenario" -v db="$which" -v ok="$ok" -v rate="${scale_rate[$scenario-$which]}" -v p99="$p99" \
        -v errors="$errors" -v auth="$auth_us" -v pg=$((pg1 - pg0)) -v hz="$hz" -v wal="$wal" 'BEGIN {
          printf "| %s | %s | %.0f | %.2f | %d | %.0f | %.0f | %.0f |\n", sc, db, rate, p99, errors, auth,
            (ok > 0 ? pg * 1e6 / hz / ok : 0), (ok > 0 ? wal / ok : 0) }' >>"$scale_table"
    done
  done
  {
    echo
    echo "| scenario | seeded ÷ empty rate | target (within 25%) |"
    echo "|---|--:|---|"
    for scenario in grpc-userinfo grpc-login grpc-refresh grpc-register; do
      awk -v sc="$scenario" -v s="${scale_rate[$scenario-seeded]}" -v e="${scale_rate[$scenario-empty]}" 'BEGIN {
        r = (e > 0 ? 100 * s / e : 0); printf "| %s | %.0f%% | %s |\n", sc, r, (r >= 75 ? "met" : "**missed**") }'
    done
  } >>"$scale_table"
  # The lookups these calls make, on the seeded database (after ANALYZE): each should be an
  # index scan; a sequential scan shows up here.
  {
    echo
    echo "EXPLAIN on the seeded database:"
    echo
    echo '```'
    some_id=$(psql_db "$seeded_db" -c "SELECT id FROM users WHERE username = 'scale-user-$((scale_users / 2))'")
    some_token=$(psql_db "$seeded_db" -c "SELECT id FROM refresh_tokens WHERE user_id = $some_id AND rotated_at IS NULL LIMIT 1")
    for query in \
      "SELECT * FROM users WHERE username_canonical = 'scale-user-$((scale_users / 2))'" \
      "SELECT * FROM users WHERE id = $some_id" \
      "SELECT * FROM refresh_tokens WHERE id = '$some_token'" \
      "SELECT * FROM refresh_tokens WHERE family_id = md5('family-$some_id')::uuid::text ORDER BY issued_at" \
      "SELECT * FROM refresh_tokens WHERE user_id = $some_id AND revoked_at IS NULL" \
      "SELECT DISTINCT family_id FROM refresh_tokens WHERE revoked_at >= extract(epoch FROM now())::bigint - 3600"; do
      echo "$query"
      psql_db "$seeded_db" -c "EXPLAIN $query" | sed 's/^/  /'
    done
    echo '```'
  } >>"$scale_table"
  cat "$scale_table"
  echo "== scale run done (databases $seeded_db and $empty_db are dropped on exit)"
  exit 0
fi

# The SQLite auth-svc serves /metrics: its per-method, per-status call counts tell the h2load
# rows' gRPC outcomes, which h2load itself cannot see.
export AUTH_SVC__ADMIN_LISTEN="127.0.0.1:$admin_port"
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

# RSS before any load, for the idle targets (the tools below run before loadgen does).
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
auth_idle_kib=$(rss_kib "$auth_pid")
gateway_idle_kib=$(rss_kib "$gateway_pid")

# Refresh on PostgreSQL and MariaDB: a fresh database each, a second and third auth-svc (without
# an admin port).
unset AUTH_SVC__ADMIN_LISTEN
store_args=()
store_notes=()
if [ "$mode" = full ] && [ "$postgres" != off ] && command -v createdb >/dev/null \
  && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_db="auth_bench_$$"
  if createdb -h 127.0.0.1 -U postgres "$pg_db" 2>"$work/createdb.log"; then
    start_auth "$pg_grpc_port" "postgres://postgres@127.0.0.1:5432/$pg_db" "$work/auth-svc-pg.log"
    wait_grpc "$pg_grpc_port" "$work/auth-svc-pg.log" >/dev/null
    store_args+=(--postgres-grpc-addr "http://127.0.0.1:$pg_grpc_port" --postgres-auth-pid "$started_pid")
  else
    store_notes+=("PostgreSQL: cannot create a database ($(head -n1 "$work/createdb.log")); Refresh on PostgreSQL skipped.")
    pg_db=""
  fi
elif [ "$mode" = full ]; then
  store_notes+=("PostgreSQL: not answering on 127.0.0.1:5432 (or BENCH_POSTGRES=off); Refresh on PostgreSQL skipped.")
fi
if [ "$mode" = full ] && [ "$mariadb" != off ] && command -v mysql >/dev/null \
  && mysql -h 127.0.0.1 -u root -e 'SELECT 1' >/dev/null 2>&1; then
  mariadb_db="auth_bench_$$"
  if mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $mariadb_db" 2>"$work/createdb-mariadb.log"; then
    start_auth "$mariadb_grpc_port" "mysql://root@127.0.0.1:3306/$mariadb_db" "$work/auth-svc-mariadb.log"
    wait_grpc "$mariadb_grpc_port" "$work/auth-svc-mariadb.log" >/dev/null
    store_args+=(--mariadb-grpc-addr "http://127.0.0.1:$mariadb_grpc_port" --mariadb-auth-pid "$started_pid")
  else
    store_notes+=("MariaDB: cannot create a database ($(head -n1 "$work/createdb-mariadb.log")); Refresh on MariaDB skipped.")
    mariadb_db=""
  fi
elif [ "$mode" = full ]; then
  store_notes+=("MariaDB: not answering on 127.0.0.1:3306 (or BENCH_MARIADB=off); Refresh on MariaDB skipped.")
fi
for note in "${store_notes[@]}"; do echo "$note"; done

# ---- The light tools: one tab-separated line per scenario for `loadgen all --external`.
results="$work/external.tsv"
: >"$results"
cpu_ticks() { # pid: utime + stime in clock ticks (after the command name, which may hold spaces)
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
hz=$(getconf CLK_TCK)
per_request() { # before after requests (ticks → µs per request, or - )
  awk -v b="$1" -v a="$2" -v n="$3" -v hz="$hz" 'BEGIN { if (b == "" || a == "" || n == 0) print "-"; else printf "%.1f", (a - b) * 1e6 / hz / n }'
}
# Runs a tool command, timing its own CPU (user + system, from bash's `time`) into $tool_seconds.
TIMEFORMAT='%3U %3S'
timed() { # output file, command…
  local out=$1; shift
  local cpu
  cpu=$({ time "$@" >"$out" 2>&1; } 2>&1) || { echo "FAIL: $1 failed; its output:" >&2; tail -n 20 "$out" >&2; return 1; }
  tool_seconds=$(echo "$cpu" | awk '{print $1 + $2}')
}
record() { # scenario tool concurrency ok errors seconds p50 p99 p999 auth_us gateway_us tool_us first_error
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
  echo "$1 ($2): $4 ok, $5 errors in $6 s; CPU µs/request: auth-svc ${10}, gateway ${11}, $2 ${12}"
}

token_user="bench-h2-$$"
token=$("$loadgen" token --grpc-addr "http://127.0.0.1:$grpc_port" --username "$token_user")
"$loadgen" frame health >"$work/health.grpc"
"$loadgen" frame userinfo >"$work/userinfo.grpc"
"$loadgen" frame login --username "$token_user" >"$work/login.grpc"

# h2load sees HTTP status only (a gRPC error is HTTP 200 too): each frame must answer
# grpc-status 0 (its trailer, as curl shows it) before and after its run.
grpc_ok() { # method frame
  local status
  status=$(curl -s --http2-prior-knowledge -D - -o /dev/null --max-time 10 --data-binary "@$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $token" \
    "http://127.0.0.1:$grpc_port/$1" | tr -d '\r' | awk -F': ' 'tolower($1) == "grpc-status" {print $2}')
  if [ "$status" != 0 ]; then
    echo "FAIL: /$1 with the frame h2load sends answered grpc-status '${status:-none}'" >&2
    return 1
  fi
}

# auth-svc's count of finished `method` calls by gRPC status, as "CODE count" lines.
rpc_counts() { # method (GetUserInfo, Login)
  curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" \
    | awk -v m="method=\"$1\"" 'index($0, "auth_rpc_requests_total{") == 1 && index($0, m) {
        match($0, /code="[A-Z_]+"/); print substr($0, RSTART + 6, RLENGTH - 7), $NF }'
}
# OK count and non-OK count between two rpc_counts readings, and the commonest non-OK code.
rpc_delta() { # before-file after-file
  awk 'FILENAME == ARGV[1] { before[$1] = $2; next } { d = $2 - before[$1]; if ($1 == "OK") ok += d; else { bad += d; if (d > top) { top = d; code = $1 } } }
    END { printf "%d %d %s\n", ok, bad, (bad > 0 ? code : "-") }' "$1" "$2"
}

# gRPC through h2load: `connections` HTTP/2 connections, `streams` requests in flight on each.
h2load_scenario() { # name method frame connections streams metric-method(or -)
  local name=$1 method=$2 frame=$3 connections=$4 streams=$5 counted=$6 url="http://127.0.0.1:$grpc_port/$2"
  local args=(-t 1 -c "$connections" -m "$streams" -d "$frame" -H 'content-type: application/grpc'
    -H 'te: trailers' -H "authorization: Bearer $token")
  grpc_ok "$method" "$frame"
  # An unmeasured warm-up (connections, caches), then the measured run with the CPU readings.
  h2load "${args[@]}" -n "$warmup_requests" "$url" >/dev/null 2>&1 || true
  local auth0 gw0 auth1 gw1
  [ "$counted" = - ] || rpc_counts "$counted" >"$work/$name.rpc0"
  auth0=$(cpu_ticks "$auth_pid") gw0=$(cpu_ticks "$gateway_pid")
  timed "$work/$name.out" h2load "${args[@]}" -D "$duration" --log-file "$work/$name.log" "$url"
  auth1=$(cpu_ticks "$auth_pid") gw1=$(cpu_ticks "$gateway_pid")
  [ "$counted" = - ] || rpc_counts "$counted" >"$work/$name.rpc1"
  grpc_ok "$method" "$frame"
  local ok total errors first_error=-
  ok=$(awk '/^requests:/ {for (i = 1; i < NF; i++) if ($(i + 1) ~ /^succeeded/) print $i}' "$work/$name.out")
  total=$(awk '/^requests:/ {print $2}' "$work/$name.out")
  errors=$(( ${total:-0} - ${ok:-0} )) # h2load's own: HTTP errors, resets, time-outs
  if [ "$counted" != - ]; then
    # HTTP 200 is not success in gRPC: auth-svc's own counts by status decide.
    local grpc_ok_count grpc_bad top_code
    read -r grpc_ok_count grpc_bad top_code < <(rpc_delta "$work/$name.rpc0" "$work/$name.rpc1")
    ok=$grpc_ok_count errors=$(( errors + grpc_bad ))
    if [ "$grpc_bad" -gt 0 ]; then first_error="$grpc_bad calls answered a gRPC error, most $top_code"; fi
  fi
  # The log has one line per request: start time, HTTP status, time to answer in µs.
  read -r p50 p99 p999 < <(awk '$2 == 200 {print $3}' "$work/$name.log" | sort -n | awk '
    { v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
      q = "0.5 0.99 0.999"; split(q, qs, " ")
      for (i = 1; i <= 3; i++) { k = int(qs[i] * NR + 0.999999); if (k < 1) k = 1; printf "%.3f ", v[k] / 1000 } print "" }')
  record "$name" h2load "$((connections * streams))" "${ok:-0}" "$errors" "$duration" \
    "$p50" "$p99" "$p999" "$(per_request "$auth0" "$auth1" "${ok:-0}")" "$(per_request "$gw0" "$gw1" "${ok:-0}")" \
    "$(awk -v s="$tool_seconds" -v n="${ok:-0}" 'BEGIN { if (n == 0) print "-"; else printf "%.1f", s * 1e6 / n }')" "$first_error"
}

# REST through wrk: one thread, `concurrency` HTTP/1.1 keep-alive connections; a Lua `done`
# hook prints the counts and the quantiles wrk's own summary lacks.
cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %.3f %.3f %.3f\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
LUA
wrk_scenario() { # name path with-token(0|1)
  local name=$1 url="http://127.0.0.1:$rest_port$2"
  local header=()
  if [ "$3" = 1 ]; then header=(-H "Authorization: Bearer $token"); fi
  h2load --h1 -t 1 -c "$concurrency" -n "$warmup_requests" "${header[@]}" "$url" >/dev/null 2>&1 || true
  local args=(-t 1 -c "$concurrency" --timeout 10s -s "$work/report.lua" "${header[@]}")
  local auth0 gw0 auth1 gw1
  auth0=$(cpu_ticks "$auth_pid") gw0=$(cpu_ticks "$gateway_pid")
  timed "$work/$name.out" wrk "${args[@]}" -d "$duration" "$url"
  auth1=$(cpu_ticks "$auth_pid") gw1=$(cpu_ticks "$gateway_pid")
  local requests duration_us socket_errors status_errors p50 p99 p999 ok
  read -r requests duration_us socket_errors status_errors p50 p99 p999 < <(awk '$1 == "WRK" {print $2, $3, $4, $5, $6, $7, $8}' "$work/$name.out")
  ok=$(( ${requests:-0} - ${status_errors:-0} ))
  local first_error=-
  if [ "${status_errors:-0}" -gt 0 ] || [ "${socket_errors:-0}" -gt 0 ]; then
    first_error="wrk: ${status_errors:-0} non-2xx/3xx answers, ${socket_errors:-0} socket errors"
  fi
  record "$name" wrk "$concurrency" "$ok" "$(( ${status_errors:-0} + ${socket_errors:-0} ))" \
    "$(awk -v us="${duration_us:-0}" 'BEGIN { printf "%.3f", us / 1e6 }')" "$p50" "$p99" "$p999" \
    "$(per_request "$auth0" "$auth1" "$ok")" "$(per_request "$gw0" "$gw1" "$ok")" \
    "$(awk -v s="$tool_seconds" -v n="$ok" 'BEGIN { if (n == 0) print "-"; else printf "%.1f", s * 1e6 / n }')" "$first_error"
}

# Unmeasured requests before each measured run (connections opened, caches filled).
warmup_requests=$(( concurrency * 20 ))
streams=$(( (concurrency + 3) / 4 ))
echo "== light tools: h2load (gRPC, 4 connections × $streams streams), wrk (REST, $concurrency connections), $duration s each"
# (auth-svc does not count health checks; a failing one would fail the curl check after it.)
h2load_scenario grpc-health grpc.health.v1.Health/Check "$work/health.grpc" 4 "$streams" -
h2load_scenario grpc-userinfo user.v1.UserService/GetUserInfo "$work/userinfo.grpc" 4 "$streams" GetUserInfo
wrk_scenario rest-healthz /healthz 0
wrk_scenario rest-userinfo /user/info 1
wrk_scenario rest-protected /protected 1
h2load_scenario grpc-login user.v1.UserService/Login "$work/login.grpc" 4 "$streams" Login

command_line=("$loadgen" all --grpc-addr "http://127.0.0.1:$grpc_port" --rest-url "http://127.0.0.1:$rest_port"
  --auth-pid "$auth_pid" --gateway-pid "$gateway_pid" --duration "$duration" --warmup "$warmup"
  --concurrency "$concurrency" --accounts "$accounts" --startup-ms "$startup_ms"
  --auth-idle-kib "$auth_idle_kib" --gateway-idle-kib "$gateway_idle_kib"
  --scenarios grpc-refresh --external "$results" "${store_args[@]}" --out "$work/table.md")
echo "== ${command_line[*]}"
"${command_line[@]}"

if [ "$mode" = smoke ]; then
  echo "== smoke passed: every scenario answered (a debug build at concurrency 2: the numbers mean nothing)"
  exit 0
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
  echo "  after h2load and wrk had run the rows whose tool column names them, with auth-svc and the"
  echo "  gateway built in $profile mode, on 127.0.0.1, a fresh SQLite database, the default \`owasp\`"
  echo "  hash profile and hashing concurrency (one per core), and logging at its default level"
  echo "  (\`info\`) into files. The load tools run on the same cores as the servers."
  echo "- Tools: $(h2load --version 2>/dev/null | head -n1), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)."
  echo "- Light tools ($(h2load --version 2>/dev/null | head -n1 | cut -d' ' -f2)): gRPC rows ran"
  echo "  \`h2load -t 1 -c 4 -m $streams -D $duration -d FRAME -H 'content-type: application/grpc' -H 'te: trailers' -H 'authorization: Bearer …' --log-file LOG http://127.0.0.1:$grpc_port/METHOD\`"
  echo "  (FRAME from \`loadgen frame health|userinfo|login\`), REST rows"
  echo "  \`wrk -t 1 -c $concurrency -d $duration --timeout 10s -s report.lua [-H 'Authorization: Bearer …'] http://127.0.0.1:$rest_port/PATH\`,"
  echo "  each after $warmup_requests unmeasured requests."
  echo "- Start-up (exec → SERVING on an existing SQLite database): median $startup_ms ms of $startup_runs runs ($startup_all ms)."
  for note in "${store_notes[@]}"; do echo "- $note"; done
  echo
  cat "$work/table.md"
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
