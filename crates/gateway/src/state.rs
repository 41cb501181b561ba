//! What every handler can reach: the state the router is built with.

use std::sync::Arc;

use url::Url;

use crate::{config::Config, upstream::Upstream};

/// Cloned into every request (every field is cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub upstream: Upstream,
    /// `http.body_limit_bytes`, for the 413 message.
    pub body_limit: usize,
    /// `public_url`, the base of the endpoint URLs the server metadata document names.
    pub public_url: Option<Arc<Url>>,
}

impl AppState {
    /// The state of a gateway configured by `config` (already validated), with its (lazy) channel
    /// to auth-svc. The channel's task is spawned on the runtime this is called in.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            upstream: Upstream::new(config)?,
            body_limit: config.http.body_limit_bytes,
            public_url: config.public_url()?.map(Arc::new),
        })
    }
}
