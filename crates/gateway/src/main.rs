//! `gateway [-f config.yaml]`: serves the REST API until SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use gateway::{App, Config};

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
    let config = service_kit::config::loaded_or_exit("gateway", Config::load(cli.config.as_deref()));
    let telemetry = service_kit::telemetry::start_or_exit("gateway", config.telemetry());
    // One access-log line per request: written by a thread of its own, so no request waits on
    // it. Held to the end of main, whose drop writes out what is still queued.
    let _log = service_kit::logging::init_non_blocking(config.log.format, "info", telemetry.as_ref());
    let code = match serve(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("gateway: {err:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    code
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown_signal()?;
    let app = App::build(config).await?;
    tracing::info!(address = %app.local_addr()?, upstream = %config.upstream, "serving REST");
    app.serve(shutdown).await
}
