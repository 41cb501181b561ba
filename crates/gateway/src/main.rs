//! `gateway [-f config.yaml]`: serves the REST API until SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use gateway::{App, Config};
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
    init_logging();
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
    let app = App::build(config).await?;
    tracing::info!(address = %app.local_addr()?, upstream = %config.upstream, "serving REST");
    app.serve(shutdown_signal()).await
}

/// `RUST_LOG` picks the filter (default `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
