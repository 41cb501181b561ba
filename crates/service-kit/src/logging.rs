//! Log setup. `RUST_LOG` picks the filter (else the binary's default); `log.format` picks plain
//! text for people or one JSON object per line for log collectors.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// `log.format` of both binaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber, writing to stdout; a second call (tests) is harmless and
/// ignored. Each line names its target (`audit` for audit events), so collectors can route them.
pub fn init(format: LogFormat, default_filter: &str) {
    install(format, default_filter, std::io::stdout);
}

/// As [`init`], to stderr: for commands whose stdout is their answer.
pub fn init_stderr(format: LogFormat, default_filter: &str) {
    install(format, default_filter, std::io::stderr);
}

fn install<W>(format: LogFormat, default_filter: &str, writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
