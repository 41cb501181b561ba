#!/usr/bin/env bash
# Fails if a log file holds anything secret: a JWT (every one starts with "eyJ", base64 of
# '{"'), an argon2 hash, a service account's secret (they all start "ascs_"), a TOTP secret (base32,
# an otpauth URI, sealed), the test suite's password, or its HS256 secrets.
# Usage: scripts/check-logs-for-secrets.sh LOGFILE
set -euo pipefail
log=$1
[ -s "$log" ] || { echo "no logs captured in $log" >&2; exit 1; }
lines=$(wc -l <"$log")
patterns=(
  'eyJ'                                                 # any JWT
  '\$argon2'                                            # any PHC hash
  'ascs_[A-Za-z0-9_-]{20}'                              # any client secret (domain/client.rs)
  'correct horse battery'                               # crates/e2e/src/helpers.rs PASSWORD
  'test-access-secret-0123456789abcdef'                 # ACCESS_SECRET
  'test-refresh-secret-0123456789abcdef'                # REFRESH_SECRET
  'wrong password'                                      # passwords the tests send on purpose
  'otpauth://'                                          # an enrolment's URI, which holds its secret
  '(^|[^A-Za-z0-9])[A-Z2-7]{32}([^A-Za-z0-9]|$)'        # a TOTP secret in base32 (domain/totp.rs)
  'v1\.k1\.[A-Za-z0-9_-]{20}'                            # a sealed secret under the tests' key id
)
status=0
for pattern in "${patterns[@]}"; do
  if grep -n -E -- "$pattern" "$log" | head -3; then
    echo "FAIL: the logs contain /$pattern/" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "no secrets in $lines captured log lines"
exit "$status"
