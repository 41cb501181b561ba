//! `auth-svc [-f config.yaml] [serve|migrate]`

use std::{path::PathBuf, process::ExitCode};

use auth_svc::{App, Config, server, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "gRPC user and token service")]
struct Cli {
    /// YAML config file; every key can be overridden with AUTH_SVC__<KEY>__<SUBKEY>.
    #[arg(short = 'f', long = "config", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve gRPC (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("auth-svc: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log.format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&config).await,
        Command::Migrate => server::connect_and_migrate(&config).await.map(|_| tracing::info!("migrations applied")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("auth-svc: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown_signal()?;
    let app = App::build(config).await?;
    tracing::info!(address = %app.local_addr()?, "serving user.v1.UserService");
    app.serve(shutdown).await
}
