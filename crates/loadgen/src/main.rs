//! `loadgen`: drives auth-svc (gRPC) and the gateway (REST) for a fixed duration and
//! concurrency, and prints one markdown table: requests/s, p50/p99/p99.9 latency, errors, and
//! the resident memory of both servers before and after each scenario.
//!
//! `loadgen all` runs every scenario in turn (or those `--scenarios` names, adding the rows a
//! lighter tool measured from `--external`), times one argon2 hash, runs a login storm with
//! GetUserInfo traffic beside it, and checks issue 17's targets. `loadgen frame` writes the
//! prebuilt gRPC bodies h2load sends. `scripts/bench.sh` starts the servers and the tools and
//! calls it; `docs/benchmarks.md` holds the results.

mod cpu;
mod external;
mod frame;
mod grpc;
mod hashing;
mod measure;
mod memory;
mod readiness;
mod report;
mod rest;
mod scenarios;
mod targets;

use std::{fmt::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::{
    frame::Body,
    hashing::HashTime,
    measure::Window,
    memory::Memory,
    readiness::Probe,
    scenarios::{Bench, MARIADB_REFRESH_ROW, POSTGRES_REFRESH_ROW, Row, Scenario, Servers, Settings},
    targets::Evidence,
};

/// argon2 hashes timed before the logins.
const HASH_SAMPLES: usize = 7;

#[derive(Parser)]
#[command(version, about = "Load generator for auth-svc (gRPC) and the gateway (REST)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// gRPC GetUserInfo with a bearer token, on a cached user.
    GrpcUserinfo(RunOptions),
    /// gRPC grpc.health.v1.Health/Check: the transport's floor on the same server.
    GrpcHealth(RunOptions),
    /// gRPC Login with the right password (one argon2 hash each).
    GrpcLogin(RunOptions),
    /// gRPC Refresh, each worker rotating its own session.
    GrpcRefresh(RunOptions),
    /// gRPC Register of a new account each call.
    GrpcRegister(RunOptions),
    /// REST GET /user/info through the gateway.
    RestUserinfo(RunOptions),
    /// REST GET /protected through the gateway.
    RestProtected(RunOptions),
    /// REST GET /healthz on the gateway.
    RestHealthz(RunOptions),
    /// Login storm: Login at full concurrency while 4 paced callers measure GetUserInfo.
    LoginStorm(RunOptions),
    /// Every scenario in turn, one argon2 hash's time, a login storm with GetUserInfo beside
    /// it, then issue 7's targets.
    All(AllOptions),
    /// Polls until auth-svc's health check answers SERVING (or the gateway's /healthz 200),
    /// then prints the Unix time of that answer in nanoseconds.
    WaitServing(WaitOptions),
    /// Registers and logs in one account and prints its access token (for wrk or h2load).
    Token(TokenOptions),
    /// Writes one prebuilt gRPC request body (frame header + protobuf) to stdout, for
    /// `h2load -d FILE`.
    Frame(FrameOptions),
}

#[derive(Args)]
struct ServerOptions {
    /// auth-svc's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50151")]
    grpc_addr: String,
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8988")]
    rest_url: String,
    /// auth-svc's pid, for its RSS (VmRSS from /proc).
    #[arg(long)]
    auth_pid: Option<u32>,
    /// The gateway's pid, for its RSS.
    #[arg(long)]
    gateway_pid: Option<u32>,
}

#[derive(Args)]
struct RunOptions {
    #[command(flatten)]
    servers: ServerOptions,
    /// Measured time of each scenario: 5s, 500ms, or plain seconds.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before each scenario (connections opened, caches filled).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    warmup: Duration,
    /// Workers, each with one request in flight.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// HTTP/2 connections to auth-svc that the gRPC workers share (REST workers have one
    /// HTTP/1.1 connection each).
    #[arg(long, default_value_t = 4)]
    grpc_connections: usize,
    /// Accounts registered and logged in before measuring; workers share them round-robin.
    #[arg(long, default_value_t = 8)]
    accounts: usize,
    /// Log in `--accounts` existing accounts named `PREFIX1` … `PREFIXCOUNT` (spread evenly)
    /// instead of registering new ones, as `PREFIX:COUNT`.
    #[arg(long, value_parser = parse_existing)]
    existing_accounts: Option<(String, u64)>,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the rows, tab-separated as `--external` reads them, to this file.
    #[arg(long)]
    tsv: Option<PathBuf>,
}

#[derive(Args)]
struct AllOptions {
    #[command(flatten)]
    run: RunOptions,
    /// A second auth-svc, on PostgreSQL, where Refresh is measured too.
    #[arg(long)]
    postgres_grpc_addr: Option<String>,
    /// That second auth-svc's pid.
    #[arg(long)]
    postgres_auth_pid: Option<u32>,
    /// A third auth-svc, on MariaDB, where Refresh is measured too.
    #[arg(long)]
    mariadb_grpc_addr: Option<String>,
    /// That third auth-svc's pid.
    #[arg(long)]
    mariadb_auth_pid: Option<u32>,
    /// The scenarios loadgen runs itself, comma-separated (default: all of them); the login
    /// storm always runs.
    #[arg(long, value_delimiter = ',', value_parser = parse_scenario)]
    scenarios: Vec<Scenario>,
    /// Rows another tool measured, one tab-separated line each (see `external.rs`), shown in
    /// the same table and judged by the same targets.
    #[arg(long)]
    external: Option<PathBuf>,
    /// auth-svc's RSS (KiB) before any load, read by the caller when other tools run first.
    #[arg(long)]
    auth_idle_kib: Option<u64>,
    /// The gateway's RSS (KiB) before any load.
    #[arg(long)]
    gateway_idle_kib: Option<u64>,
    /// Exec → SERVING time measured by the caller, for the targets table.
    #[arg(long)]
    startup_ms: Option<f64>,
    /// auth-svc's password.max_concurrent_hashes (0 = one per core, its default).
    #[arg(long, default_value_t = 0)]
    hash_concurrency: usize,
}

#[derive(Args)]
struct WaitOptions {
    /// gRPC address whose health check to poll.
    #[arg(long, required_unless_present = "http", conflicts_with = "http")]
    grpc: Option<String>,
    /// The health-check service name that must be SERVING.
    #[arg(long, default_value = "user.v1.UserService")]
    service: String,
    /// Gateway base URL whose /healthz to poll.
    #[arg(long)]
    http: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct TokenOptions {
    /// auth-svc's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50151")]
    grpc_addr: String,
    /// The account to register (default: a name unique to this run).
    #[arg(long)]
    username: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FrameKind {
    /// grpc.health.v1.Health/Check (service "").
    Health,
    /// user.v1.UserService/GetUserInfo.
    Userinfo,
    /// user.v1.UserService/Login with the bench password.
    Login,
}

#[derive(Args)]
struct FrameOptions {
    kind: FrameKind,
    /// Login's username (an account `loadgen token --username` registered).
    #[arg(long, required_if_eq("kind", "login"))]
    username: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let (scenario, options) = match command {
        Command::GrpcUserinfo(options) => (Scenario::GrpcUserInfo, options),
        Command::GrpcHealth(options) => (Scenario::GrpcHealth, options),
        Command::GrpcLogin(options) => (Scenario::GrpcLogin, options),
        Command::GrpcRefresh(options) => (Scenario::GrpcRefresh, options),
        Command::GrpcRegister(options) => (Scenario::GrpcRegister, options),
        Command::RestUserinfo(options) => (Scenario::RestUserInfo, options),
        Command::RestProtected(options) => (Scenario::RestProtected, options),
        Command::RestHealthz(options) => (Scenario::RestHealthz, options),
        Command::LoginStorm(options) => return run_login_storm(options).await,
        Command::All(options) => return run_all(options).await,
        Command::WaitServing(options) => return wait_serving(options).await,
        Command::Token(options) => return print_token(options).await,
        Command::Frame(options) => return write_frame(&options),
    };
    let bench = Bench::prepare(servers(&options.servers), settings(&options)).await?;
    let rows = vec![bench.run(scenario).await?];
    write_tsv(&rows, options.tsv.as_ref())?;
    finish(&rows, report::table(&rows), options.out.as_ref())
}

async fn run_login_storm(options: RunOptions) -> anyhow::Result<ExitCode> {
    let bench = Bench::prepare(servers(&options.servers), settings(&options)).await?;
    let (storm, probe) = bench.login_storm().await?;
    let rows = [storm, probe];
    write_tsv(&rows, options.tsv.as_ref())?;
    finish(&rows, report::table(&rows), options.out.as_ref())
}

async fn run_all(options: AllOptions) -> anyhow::Result<ExitCode> {
    let run = &options.run;
    let servers = servers(&run.servers);
    let mut idle = servers.memory();
    // The caller's readings, taken before its own tools ran, are the idle ones.
    let given = |kib: Option<u64>| kib.map(|kib| Memory { rss_kib: kib, peak_kib: kib });
    idle.auth = given(options.auth_idle_kib).or(idle.auth);
    idle.gateway = given(options.gateway_idle_kib).or(idle.gateway);
    let external = match &options.external {
        Some(path) => {
            external::parse(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)?
        }
        None => Vec::new(),
    };
    let bench = Bench::prepare(servers, settings(run)).await?;
    let seeded = bench.servers.memory();
    let (mut rows, hash_time) = run_every_scenario(&bench, &options).await?;
    rows.splice(0..0, external);
    // Let the servers settle, then see what they keep.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = bench.servers.memory();

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let hash_concurrency = if options.hash_concurrency == 0 { cores } else { options.hash_concurrency };
    let mut text = report::table(&rows);
    text.push_str(&report::hashing_note(hash_time, HASH_SAMPLES, cores));
    text.push_str(&report::memory_note(idle, seeded, settled, run.accounts));
    let evidence = Evidence {
        rows: &rows,
        hash_time: hash_time.fastest,
        cores,
        hash_concurrency,
        idle,
        settled,
        startup_ms: options.startup_ms,
    };
    let _ = write!(text, "\n### Targets\n\n{}", evidence.table());
    write_tsv(&rows, run.tsv.as_ref())?;
    finish(&rows, text, run.out.as_ref())
}

/// The single scenarios in turn (Refresh on PostgreSQL too, when given), the argon2 timing
/// right before the logins, and the login storm last.
async fn run_every_scenario(bench: &Bench, options: &AllOptions) -> anyhow::Result<(Vec<Row>, HashTime)> {
    let mut rows = Vec::new();
    let mut hash_time = None;
    let chosen = if options.scenarios.is_empty() { Scenario::ALL.to_vec() } else { options.scenarios.clone() };
    for scenario in chosen {
        if scenario == Scenario::GrpcLogin {
            // Right before the logins, so that both see the same machine.
            progress("timing argon2 hashes");
            hash_time = Some(hashing::time_hashes(HASH_SAMPLES).await?);
        }
        progress(scenario.name());
        rows.push(bench.run(scenario).await?);
        if scenario == Scenario::GrpcRefresh {
            let others = [
                (POSTGRES_REFRESH_ROW, &options.postgres_grpc_addr, options.postgres_auth_pid),
                (MARIADB_REFRESH_ROW, &options.mariadb_grpc_addr, options.mariadb_auth_pid),
            ];
            for (name, addr, pid) in others {
                if let Some(addr) = addr {
                    progress(name);
                    rows.push(refresh_elsewhere(name, addr, pid, options).await?);
                }
            }
        }
    }
    let hash_time = match hash_time {
        Some(time) => time,
        None => {
            progress("timing argon2 hashes");
            hashing::time_hashes(HASH_SAMPLES).await?
        }
    };
    progress("login storm");
    let (storm, probe) = bench.login_storm().await?;
    rows.extend([storm, probe]);
    Ok((rows, hash_time))
}

/// Refresh on another auth-svc, whose database is PostgreSQL or MariaDB (its own accounts).
async fn refresh_elsewhere(name: &str, addr: &str, pid: Option<u32>, options: &AllOptions) -> anyhow::Result<Row> {
    let servers = Servers {
        grpc_addr: addr.to_owned(),
        rest_url: options.run.servers.rest_url.clone(),
        auth_pid: pid,
        gateway_pid: None,
    };
    let bench =
        Bench::prepare(servers, settings(&options.run)).await.with_context(|| format!("auth-svc for {name}"))?;
    let mut row = bench.run(Scenario::GrpcRefresh).await?;
    row.scenario = name.to_owned();
    Ok(row)
}

fn write_tsv(rows: &[Row], path: Option<&PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, external::write(rows)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Prints (and writes) the report; fails if a scenario had no successful request at all.
fn finish(rows: &[Row], text: String, out: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<&str> = rows.iter().filter(|row| row.summary.ok == 0).map(|row| row.scenario.as_str()).collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("loadgen: no successful request in: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

async fn wait_serving(options: WaitOptions) -> anyhow::Result<ExitCode> {
    let probe = match (options.grpc, options.http) {
        (Some(addr), _) => Probe::Grpc { addr, service: options.service },
        (None, Some(url)) => Probe::Http { url },
        (None, None) => anyhow::bail!("give --grpc or --http"),
    };
    println!("{}", readiness::wait_serving(&probe, options.timeout).await?);
    Ok(ExitCode::SUCCESS)
}

async fn print_token(options: TokenOptions) -> anyhow::Result<ExitCode> {
    let channels = grpc::connect(&options.grpc_addr, 1).await?;
    let account = match options.username {
        Some(username) => grpc::seed_account(&channels[0], username).await?,
        None => grpc::seed_accounts(&channels[0], 1).await?.into_iter().next().context("no account seeded")?,
    };
    println!("{}", account.access_token);
    Ok(ExitCode::SUCCESS)
}

fn write_frame(options: &FrameOptions) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let body = match (options.kind, options.username.as_deref()) {
        (FrameKind::Health, _) => Body::Health,
        (FrameKind::Userinfo, _) => Body::GetUserInfo,
        (FrameKind::Login, Some(username)) => Body::Login { username },
        (FrameKind::Login, None) => anyhow::bail!("a login frame needs --username"),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&frame::encode(&body)?)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn servers(options: &ServerOptions) -> Servers {
    Servers {
        grpc_addr: options.grpc_addr.clone(),
        rest_url: options.rest_url.clone(),
        auth_pid: options.auth_pid,
        gateway_pid: options.gateway_pid,
    }
}

fn settings(options: &RunOptions) -> Settings {
    Settings {
        window: Window { warmup: options.warmup, duration: options.duration },
        concurrency: options.concurrency,
        grpc_connections: options.grpc_connections,
        accounts: options.accounts,
        existing: options.existing_accounts.clone(),
    }
}

/// `PREFIX:COUNT`, e.g. `scale-user-:1000000`.
fn parse_existing(text: &str) -> Result<(String, u64), String> {
    let (prefix, count) = text.rsplit_once(':').ok_or_else(|| format!("expected PREFIX:COUNT, got {text}"))?;
    match count.parse::<u64>() {
        Ok(count) if count > 0 => Ok((prefix.to_owned(), count)),
        _ => Err(format!("expected PREFIX:COUNT with COUNT ≥ 1, got {text}")),
    }
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Scenario::ALL.iter().map(|scenario| scenario.name()).collect();
        format!("unknown scenario {name} (known: {})", known.join(", "))
    })
}

fn progress(step: &str) {
    eprintln!("loadgen: {step}");
}

/// `5s`, `500ms`, `1.5s` or plain seconds (`5`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("not a duration: {text} (try 5s or 500ms)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("not a duration: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
