//! `gateway [-f config.yaml]`: serves the REST API until SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use gateway::{App, Config, config::LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "REST gateway in front of auth-svc")]
struct Cli {
    /// YAML config file; every key can be overridden with GATEWAY__<KEY>__<SUBKEY>.
    #[arg(short = 'f', long = "config")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gateway: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log.format);
    match serve(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown_signal()?;
    let app = App::build(config).await?;
    tracing::info!(address = %app.local_addr()?, upstream = %config.upstream, "serving REST");
    app.serve(shutdown).await
}

/// `RUST_LOG` picks the filter (default `info`); `log.format` text or JSON lines.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}
