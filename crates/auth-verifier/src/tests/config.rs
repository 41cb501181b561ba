//! Builder checks, and how `Cache-Control` becomes the key set's freshness.

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

use crate::fetch::{freshness, max_age};
use crate::{Verifier, VerifyError};

#[test]
fn the_builder_refuses_what_cannot_work() {
    let config_error = |result: Result<Verifier, VerifyError>| matches!(result, Err(VerifyError::Config(_)));
    assert!(config_error(Verifier::builder("not a url").build()));
    assert!(config_error(Verifier::builder("ftp://gateway/.well-known/jwks.json").build()));
    // With the feature, https:// builds (tests/tls.rs); without, it is refused at once.
    #[cfg(not(feature = "tls"))]
    assert!(config_error(Verifier::builder("https://gateway/.well-known/jwks.json").build()));
    assert!(config_error(Verifier::builder("http://gateway/jwks").min_refresh_interval(Duration::ZERO).build()));
    let hours = Duration::from_secs(7200);
    assert!(config_error(Verifier::builder("http://gateway/jwks").min_refresh_interval(hours).build()));
    assert!(config_error(Verifier::builder("http://gateway/jwks").leeway(Duration::MAX).build()));
    assert!(config_error(Verifier::builder("http://gateway/jwks").issuer("").build()));
    assert!(config_error(Verifier::builder("http://gateway/jwks").audience("").build()));
    assert!(Verifier::builder("http://gateway/jwks").audience("orders").build().is_ok());
    let week = Duration::from_secs(7 * 24 * 60 * 60);
    assert!(config_error(Verifier::builder("http://gateway/jwks").max_stale(week + Duration::from_secs(1)).build()));
    assert!(config_error(Verifier::builder("http://gateway/jwks").max_stale(Duration::MAX).build()));
    assert!(Verifier::builder("http://gateway/jwks").max_stale(week).build().is_ok());
    assert!(Verifier::builder("http://gateway/jwks").max_stale(Duration::ZERO).build().is_ok());
    assert!(Verifier::builder("http://gateway:8888/.well-known/jwks.json").build().is_ok());
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(CACHE_CONTROL, value.parse().unwrap());
    }
    headers
}

#[test]
fn max_age_is_read_from_cache_control() {
    let secs = |values: &[&str]| max_age(&headers(values)).map(|age| age.as_secs());
    assert_eq!(secs(&["public, max-age=120"]), Some(120));
    assert_eq!(secs(&["Max-Age = 60 , public"]), Some(60));
    assert_eq!(secs(&["public", "max-age=\"90\""]), Some(90));
    assert_eq!(secs(&["no-store"]), Some(0));
    assert_eq!(secs(&["max-age=600, no-cache"]), Some(0));
    assert_eq!(secs(&["public"]), None);
    assert_eq!(secs(&["max-age=soon"]), None);
    assert_eq!(secs(&[]), None);
}

#[test]
fn freshness_is_clamped_between_the_min_interval_and_an_hour() {
    let min = Duration::from_secs(30);
    assert_eq!(freshness(None, min), Duration::from_secs(300));
    assert_eq!(freshness(Some(Duration::from_secs(120)), min), Duration::from_secs(120));
    assert_eq!(freshness(Some(Duration::ZERO), min), min);
    assert_eq!(freshness(Some(Duration::from_secs(86_400)), min), Duration::from_secs(3600));
    // A min interval above an hour wins over the ceiling rather than panicking in `clamp`.
    let long = Duration::from_secs(7200);
    assert_eq!(freshness(Some(Duration::from_secs(60)), long), long);
    assert_eq!(freshness(None, Duration::from_secs(600)), Duration::from_secs(600));
}
