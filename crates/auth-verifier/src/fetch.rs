//! One GET of the JWKS document: bounded in time (the client's timeout) and in size, and read
//! together with how long the gateway says the answer stays fresh (`Cache-Control: max-age`).

use std::time::Duration;

use http::HeaderMap;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH};

use crate::jwks::KeySet;

/// A JWKS is a few hundred bytes; anything this large is not ours.
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long keys stay fresh when the response says nothing.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// The longest a key set is kept without asking again, whatever the response says.
pub(crate) const MAX_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Why a fetch failed. Logged, never shown to callers (they see `KeysUnavailable`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed")]
    Request(#[from] reqwest::Error),
    #[error("unexpected status {0}")]
    Status(http::StatusCode),
    #[error("response larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("response is not a JWKS document")]
    NotJwks(#[from] serde_json::Error),
}

impl FetchError {
    /// The error and its causes on one line, for the log.
    pub(crate) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A fetched key set and the freshness the response declared (unclamped).
pub(crate) struct Fetched {
    pub(crate) keys: KeySet,
    pub(crate) max_age: Option<Duration>,
}

pub(crate) async fn fetch_jwks(client: &reqwest::Client, url: &reqwest::Url) -> Result<Fetched, FetchError> {
    let mut response = client.get(url.clone()).header(http::header::ACCEPT, "application/json").send().await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    let max_age = max_age(response.headers());
    if declared_length(response.headers()).is_some_and(|length| length > MAX_JWKS_BYTES as u64) {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { keys: KeySet::from_json(&body)?, max_age })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// `max-age` of a `Cache-Control` header; `no-cache`/`no-store` count as zero.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Ok(seconds) = argument.trim().trim_matches('"').parse::<u64>()
            {
                found = Some(Duration::from_secs(seconds));
            }
        }
    }
    found
}

/// How long a fetched key set stays fresh: the declared max-age (five minutes when none),
/// never less than `min_refresh_interval` and never more than an hour.
pub(crate) fn freshness(declared: Option<Duration>, min_refresh_interval: Duration) -> Duration {
    let ceiling = MAX_MAX_AGE.max(min_refresh_interval);
    declared.unwrap_or(DEFAULT_MAX_AGE).clamp(min_refresh_interval, ceiling)
}
