//! `auth-svc [-f config.yaml] [serve|migrate|user set-role NAME ROLE]`

use std::{path::PathBuf, process::ExitCode};

use auth_svc::{App, Config, cli, db};
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
    /// Account administration straight on the database (no server or token needed).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set an account's role, e.g. `auth-svc user set-role alice admin` for the first admin.
    /// Tokens issued afterwards carry it; tokens already issued keep theirs until they expire.
    SetRole { username: String, role: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = service_kit::config::loaded_or_exit("auth-svc", Config::load(cli.config.as_deref()));
    let command = cli.command.unwrap_or(Command::Serve);
    let default_filter = match command {
        // A command's answer is on stdout/stderr; the server says what it does, without the SQL.
        Command::User(_) => "warn",
        Command::Serve | Command::Migrate => "info,sqlx=warn",
    };
    service_kit::logging::init(config.log.format, default_filter);
    let interactive = matches!(command, Command::User(_));
    let result = match command {
        Command::Serve => serve(&config).await,
        Command::Migrate => db::connect_and_migrate(&config).await.map(|_| tracing::info!("migrations applied")),
        Command::User(UserCommand::SetRole { username, role }) => set_role(&config, &username, &role).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A command's error is its answer, printed once; the server also logs it.
            if !interactive {
                tracing::error!("{err:#}");
            }
            eprintln!("auth-svc: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn set_role(config: &Config, username: &str, role: &str) -> anyhow::Result<()> {
    let (user, cache_current) = cli::set_role_offline(config, username, role).await?;
    println!("{} (id {}) now has role {}", user.username, user.id, user.role);
    // Running servers drop the account from their caches at their next database poll.
    let delivered = if cache_current { "" } else { " (Redis did not take the invalidation now)" };
    eprintln!(
        "auth-svc: note: running servers see the new role within revocation.max_staleness_ms, when their \
         database poll finds the change{delivered}"
    );
    Ok(())
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = service_kit::shutdown_signal()?;
    let app = App::build(config).await?;
    tracing::info!(address = %app.local_addr()?, "serving user.v1.UserService");
    app.serve(shutdown).await
}
