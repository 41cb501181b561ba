//! Log setup. `RUST_LOG` picks the filter (default [`SERVER_FILTER`] or [`COMMAND_FILTER`]); `log.format` picks plain text for
//! people or one JSON object per line for log collectors.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Default filter of the server: what it does, without the SQL.
pub const SERVER_FILTER: &str = "info,sqlx=warn";
/// Default filter of one-shot commands (`user set-role`): their answer is on stdout/stderr.
pub const COMMAND_FILTER: &str = "warn";

pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second init (tests) is harmless; ignore it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
