//! `auth-svc [-f config.yaml] [serve|migrate|user …|client …]`

use std::{path::PathBuf, process::ExitCode};

use auth_svc::{
    App, Config,
    cli::{self, OfflineAdmin},
    db,
    domain::{AccountRecord, client::ServiceClient},
    service::admin::{ListQuery, MAX_PAGE_SIZE, UserRef},
    service::clients::NewClient,
};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

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
    /// Account administration straight on the database (no server or token needed). Exit
    /// codes: 0 done, 2 a malformed command line, 3 no such user, 64 bad input, 69 database
    /// unreachable, 1 other. An unreachable Redis is a warning: the database is changed, and
    /// servers see it within `revocation.max_staleness_ms`.
    #[command(subcommand)]
    User(UserCommand),
    /// Service accounts (OAuth 2.0 clients) straight on the database; exit codes as for `user`
    /// (3: no such client). Secrets are printed once, on stdout.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create a client and print its id and secret (shown this once), tab-separated.
    Create {
        /// A display name.
        name: String,
        /// The client id; generated when left out.
        #[arg(long)]
        id: Option<String>,
        /// Defaults to "service".
        #[arg(long)]
        role: Option<String>,
        /// A scope it may ask for (repeat, or space-separate); each must be in `clients.scopes`.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An audience it may ask for (repeat, or space-separate).
        #[arg(long = "audience")]
        audiences: Vec<String>,
    },
    /// List clients, one per line: id, name, role, scopes, audiences, enabled/disabled, created.
    List,
    /// Print a new secret; the old one works for `clients.secret_overlap_seconds` more.
    RotateSecret {
        client_id: String,
    },
    /// The client can get no more tokens, and its tokens introspect as inactive.
    Disable {
        client_id: String,
    },
    Enable {
        client_id: String,
    },
    Delete {
        client_id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set an account's role, e.g. `auth-svc user set-role alice admin` for the first admin.
    /// Tokens issued afterwards carry it; tokens already issued keep theirs until they expire.
    SetRole { username: String, role: String },
    /// List accounts in id order, one per line: id, username, role, created, disabled, last login.
    List {
        /// Only usernames starting with this (compared as usernames are).
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Show one account.
    Show(Target),
    /// Disable an account: it cannot log in or refresh, and every session ends now.
    Disable(Target),
    /// Let a disabled account log in again.
    Enable(Target),
    /// Delete an account and every session; the username becomes free.
    Delete(Target),
    /// End every session of an account (it may log in again).
    RevokeSessions(Target),
    /// Remove an account's second factor and recovery codes (it lost both) and end every
    /// session: it logs in with its password alone until it enrols again.
    ResetMfa(Target),
}

/// The account a command acts on: a username, or `--id N`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    username: Option<String>,
    #[arg(long)]
    id: Option<i64>,
}

impl Target {
    fn user_ref(&self) -> UserRef {
        match (&self.username, self.id) {
            (_, Some(id)) => UserRef::Id(id),
            (Some(name), None) => UserRef::Username(name.clone()),
            // clap's group makes one of them required.
            (None, None) => UserRef::Id(0),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = service_kit::config::loaded_or_exit("auth-svc", Config::load(cli.config.as_deref()));
    let command = cli.command.unwrap_or(Command::Serve);
    let default_filter = match command {
        // A command's answer is on stdout/stderr; the server says what it does, without the SQL.
        // Its audit events are kept: an operator's change is audited like an admin's.
        Command::User(_) | Command::Client(_) => "warn,audit=info",
        Command::Serve | Command::Migrate => "info,sqlx=warn",
    };
    let interactive = matches!(command, Command::User(_) | Command::Client(_));
    // Only the server's calls are traced; `migrate` and the commands are not requests.
    let telemetry = match command {
        Command::Serve => service_kit::telemetry::start_or_exit("auth-svc", config.telemetry()),
        _ => None,
    };
    if interactive {
        service_kit::logging::init_stderr(config.log.format, default_filter);
    } else {
        service_kit::logging::init(config.log.format, default_filter, telemetry.as_ref());
    }
    let result = match command {
        Command::Serve => Box::pin(serve(&config)).await,
        Command::Migrate => db::connect_and_migrate(&config).await.map(|_| tracing::info!("migrations applied")),
        // Boxed: the commands' future is deep, and inline it overflows the compiler's layout
        // query depth in release builds.
        Command::User(command) => Box::pin(user_command(&config, command)).await,
        Command::Client(command) => Box::pin(client_command(&config, command)).await,
    };
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A command's error is its answer, printed once; the server also logs it.
            if !interactive {
                tracing::error!("{err:#}");
            }
            eprintln!("auth-svc: {err:#}");
            if !interactive {
                return ExitCode::FAILURE;
            }
            ExitCode::from(cli::exit_code(&err))
        }
    }
}

async fn user_command(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let offline = OfflineAdmin::connect(config).await?;
    let (actor, call) = cli::operator_call();
    let admin = &offline.admin;
    match command {
        UserCommand::SetRole { username, role } => return set_role(config, &offline, &username, &role).await,
        UserCommand::List { prefix, role } => {
            let mut query = ListQuery {
                page_size: MAX_PAGE_SIZE,
                username_prefix: prefix.unwrap_or_default(),
                role: role.unwrap_or_default(),
                ..ListQuery::default()
            };
            loop {
                let page = admin.list_users(&query).await?;
                for record in &page.users {
                    println!("{}", record_line(record));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                query.page_token = page.next_page_token;
            }
        }
        UserCommand::Show(target) => {
            let record = cli::find_account(admin, &target.user_ref()).await?;
            println!("{}", record_line(&record));
        }
        UserCommand::Disable(target) => {
            let id = cli::find_account(admin, &target.user_ref()).await?.user.id;
            let record = admin.disable(id, actor, &call).await?;
            println!("{} (id {}) is disabled; its sessions ended", record.user.username, id);
        }
        UserCommand::Enable(target) => {
            let id = cli::find_account(admin, &target.user_ref()).await?.user.id;
            let record = admin.enable(id, actor, &call).await?;
            println!("{} (id {}) is enabled", record.user.username, id);
        }
        UserCommand::Delete(target) => {
            let record = cli::find_account(admin, &target.user_ref()).await?;
            admin.delete(record.user.id, actor, &call).await?;
            println!("{} (id {}) is deleted", record.user.username, record.user.id);
        }
        UserCommand::RevokeSessions(target) => {
            let record = cli::find_account(admin, &target.user_ref()).await?;
            let ended = admin.revoke_sessions(record.user.id, actor, &call).await?;
            println!("{} (id {}): {ended} session(s) ended", record.user.username, record.user.id);
        }
        UserCommand::ResetMfa(target) => {
            let id = cli::find_account(admin, &target.user_ref()).await?.user.id;
            let record = admin.reset_mfa(id, actor, &call).await?;
            println!("{} (id {id}): second factor removed; its sessions ended", record.user.username);
        }
    }
    if !offline.cache_is_current().await {
        eprintln!(
            "auth-svc: note: Redis did not take every cache invalidation now; running servers see the change within revocation.max_staleness_ms"
        );
    }
    Ok(())
}

async fn client_command(config: &Config, command: ClientCommand) -> anyhow::Result<()> {
    let clients = cli::offline_clients(config).await?;
    let (actor, call) = cli::operator_call();
    let words = |items: Vec<String>| {
        items.iter().flat_map(|item| item.split(' ')).filter(|w| !w.is_empty()).map(str::to_owned).collect()
    };
    match command {
        ClientCommand::Create { name, id, role, scopes, audiences } => {
            let new = NewClient {
                client_id: id.unwrap_or_default(),
                name,
                role: role.unwrap_or_default(),
                scopes: words(scopes),
                audiences: words(audiences),
            };
            let (client, secret) = clients.create(new, actor, &call).await?;
            println!("{}\t{}", client.client_id, secret.expose_secret());
        }
        ClientCommand::List => {
            let mut page_token = String::new();
            loop {
                let page = clients.list(MAX_PAGE_SIZE, &page_token).await?;
                for client in &page.clients {
                    println!("{}", client_line(client));
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
        }
        ClientCommand::RotateSecret { client_id } => {
            let (client, secret) =
                cli::known_client(clients.rotate_secret(&client_id, actor, &call).await, &client_id)?;
            println!("{}\t{}", client.client_id, secret.expose_secret());
        }
        ClientCommand::Disable { client_id } => {
            cli::known_client(clients.set_disabled(&client_id, true, actor, &call).await, &client_id)?;
            println!("client {client_id} is disabled");
        }
        ClientCommand::Enable { client_id } => {
            cli::known_client(clients.set_disabled(&client_id, false, actor, &call).await, &client_id)?;
            println!("client {client_id} is enabled");
        }
        ClientCommand::Delete { client_id } => {
            cli::known_client(clients.delete(&client_id, actor, &call).await, &client_id)?;
            println!("client {client_id} is deleted");
        }
    }
    Ok(())
}

/// One client as a tab-separated line: id, name, role, scopes, audiences, state, created.
fn client_line(client: &ServiceClient) -> String {
    let dash = |items: &[String]| if items.is_empty() { "-".to_owned() } else { items.join(" ") };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        client.client_id,
        client.name,
        client.role,
        dash(&client.scopes),
        dash(&client.audiences),
        if client.disabled { "disabled" } else { "enabled" },
        client.created_at.and_utc().format("%Y-%m-%dT%H:%M:%SZ"),
    )
}

/// One account as a tab-separated line: id, username, role, created, disabled, last login.
fn record_line(record: &AccountRecord) -> String {
    let time = |at: chrono::NaiveDateTime| at.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        record.user.id,
        record.user.username,
        record.user.role,
        time(record.created_at),
        if record.disabled_at.is_some() { "disabled" } else { "enabled" },
        record.last_login_at.map_or_else(|| "never".to_owned(), time),
    )
}

async fn set_role(config: &Config, offline: &OfflineAdmin, username: &str, role: &str) -> anyhow::Result<()> {
    let user = offline.set_role(config, username, role).await?;
    let cache_current = offline.cache_is_current().await;
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
