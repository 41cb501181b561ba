//! What every handler can reach: the state the router is built with.

use crate::upstream::Upstream;

/// Cloned into every request (both fields are cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub upstream: Upstream,
    /// `http.body_limit_bytes`, for the 413 message.
    pub body_limit: usize,
}
