//! `google.protobuf.Timestamp` as the REST answers show it: proto3's JSON mapping, an RFC 3339
//! string in UTC with 0, 3, 6 or 9 fractional digits (`"2026-12-01T13:45:00Z"`,
//! `"2026-12-01T13:45:00.250Z"`). auth-svc writes these times itself; one missing where the proto
//! says it is always set, or outside the years 0001 to 9999 that the mapping allows, is auth-svc
//! breaking its contract: logged, and a 500 for the client rather than a made-up time.

use axum::http::StatusCode;
use prost_types::Timestamp;

use crate::error::{ApiError, Dialect};

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of proto3's JSON mapping.
const SECONDS_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A time the proto always sets (`created_at`, `expires_at`, …), named `field` in the log.
pub fn required(field: &'static str, timestamp: Option<Timestamp>) -> Result<String, ApiError> {
    optional(field, timestamp)?.ok_or_else(|| broken_contract(field, "missing"))
}

/// A time that may be absent (`last_login_at`): `None` becomes JSON `null`.
pub fn optional(field: &'static str, timestamp: Option<Timestamp>) -> Result<Option<String>, ApiError> {
    let Some(mut timestamp) = timestamp else { return Ok(None) };
    timestamp.normalize();
    if !SECONDS_RANGE.contains(&timestamp.seconds) {
        return Err(broken_contract(field, "out of range"));
    }
    Ok(Some(timestamp.to_string()))
}

fn broken_contract(field: &'static str, why: &'static str) -> ApiError {
    tracing::error!(field, why, "auth-svc answered an unusable timestamp");
    ApiError::new(Dialect::GoZero, StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    #[test]
    fn times_read_as_proto3_json_writes_them() {
        assert_eq!(required("t", at(1_796_132_700, 0)).unwrap(), "2026-12-01T13:45:00Z");
        assert_eq!(required("t", at(1_796_132_700, 250_000_000)).unwrap(), "2026-12-01T13:45:00.250Z");
        assert_eq!(required("t", at(1_796_132_700, 1)).unwrap(), "2026-12-01T13:45:00.000000001Z");
        assert_eq!(required("t", at(0, 0)).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(optional("t", None).unwrap(), None);
    }

    #[test]
    fn a_missing_or_unrepresentable_time_is_500() {
        assert_eq!(required("t", None).unwrap_err().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(optional("t", at(253_402_300_800, 0)).unwrap_err().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(required("t", at(-62_135_596_801, 0)).unwrap_err().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(required("t", at(253_402_300_799, 999_999_999)).unwrap(), "9999-12-31T23:59:59.999999999Z");
    }
}
