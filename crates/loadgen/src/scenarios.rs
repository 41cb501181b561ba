//! The scenarios: which calls each worker makes, on which connection, with which account, and
//! the server memory read around each run.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tonic::transport::Channel;

use crate::{
    cpu,
    grpc::{self, Account, GetUserInfo, HealthCheck, Login, Refresh, Register},
    measure::{self, Call, Measurement, Summary, Window},
    memory::Memory,
    rest::{Gateway, Get},
};

/// GetUserInfo callers sending during the login storm, and how often each sends: light,
/// steady traffic whose latency shows whether hashing starves the other calls.
const STORM_PROBE_WORKERS: usize = 4;
const STORM_PROBE_INTERVAL: Duration = Duration::from_millis(5);

/// Names of the rows that are not a single [`Scenario`] (the probe row's name goes on with
/// its rate).
pub const STORM_LOGIN_ROW: &str = "login storm: grpc-login";
pub const STORM_PROBE_ROW: &str = "login storm: grpc-userinfo";
pub const POSTGRES_REFRESH_ROW: &str = "grpc-refresh (PostgreSQL)";
pub const MARIADB_REFRESH_ROW: &str = "grpc-refresh (MariaDB)";
/// The tool column of the rows loadgen measures itself.
pub const LOADGEN: &str = "loadgen";

/// Refresh workers per HTTP/2 connection: few, so that one connection's task does not
/// serialise the framing of many streams in the load generator.
const REFRESH_WORKERS_PER_CONNECTION: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `grpc.health.v1.Health/Check`: the transport's floor on the same server.
    GrpcHealth,
    /// `GetUserInfo` with a bearer token, on a cached user.
    GrpcUserInfo,
    /// `Login` with the right password: one argon2 hash and one session row each.
    GrpcLogin,
    /// `Refresh`, each worker rotating its own session.
    GrpcRefresh,
    /// `Register` of a new account: one argon2 hash and one insert each.
    GrpcRegister,
    /// `GET /healthz` on the gateway: its HTTP floor.
    RestHealthz,
    /// `GET /user/info` through the gateway (go-zero path).
    RestUserInfo,
    /// `GET /protected` through the gateway (FastAPI path).
    RestProtected,
}

impl Scenario {
    /// Every single scenario, in the order `all` runs them (the memory-hungry logins last).
    pub const ALL: [Self; 8] = [
        Self::GrpcHealth,
        Self::GrpcUserInfo,
        Self::RestHealthz,
        Self::RestUserInfo,
        Self::RestProtected,
        Self::GrpcRefresh,
        Self::GrpcLogin,
        Self::GrpcRegister,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scenario| scenario.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::GrpcHealth => "grpc-health",
            Self::GrpcUserInfo => "grpc-userinfo",
            Self::GrpcLogin => "grpc-login",
            Self::GrpcRefresh => "grpc-refresh",
            Self::GrpcRegister => "grpc-register",
            Self::RestHealthz => "rest-healthz",
            Self::RestUserInfo => "rest-userinfo",
            Self::RestProtected => "rest-protected",
        }
    }
}

/// Where the servers are, and their pids for the memory columns.
pub struct Servers {
    pub grpc_addr: String,
    pub rest_url: String,
    pub auth_pid: Option<u32>,
    pub gateway_pid: Option<u32>,
}

impl Servers {
    pub fn memory(&self) -> ServerMemory {
        ServerMemory { auth: Memory::of(self.auth_pid), gateway: Memory::of(self.gateway_pid) }
    }

    fn cpu(&self) -> CpuReading {
        CpuReading { auth: cpu::of(self.auth_pid), gateway: cpu::of(self.gateway_pid), tool: cpu::own() }
    }
}

/// CPU time used so far by auth-svc, the gateway and loadgen itself.
#[derive(Clone, Copy)]
struct CpuReading {
    auth: Option<Duration>,
    gateway: Option<Duration>,
    tool: Option<Duration>,
}

impl CpuReading {
    fn per_request(self, after: Self, requests: u64) -> CpuPerRequest {
        CpuPerRequest {
            auth: cpu::micros_per_request(self.auth, after.auth, requests),
            gateway: cpu::micros_per_request(self.gateway, after.gateway, requests),
            tool: cpu::micros_per_request(self.tool, after.tool, requests),
        }
    }
}

/// µs of CPU per successful request of each process over a scenario (warm-up included, so a
/// slight overestimate for short runs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuPerRequest {
    pub auth: Option<f64>,
    pub gateway: Option<f64>,
    pub tool: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct ServerMemory {
    pub auth: Option<Memory>,
    pub gateway: Option<Memory>,
}

pub struct Settings {
    pub window: Window,
    pub concurrency: usize,
    pub grpc_connections: usize,
    /// Accounts registered before measuring; workers share them round-robin.
    pub accounts: usize,
    /// Log in that many accounts that exist already instead, spread over `{prefix}1` …
    /// `{prefix}{total}` (`--scale`'s seeded database).
    pub existing: Option<(String, u64)>,
}

/// One line of the table.
pub struct Row {
    pub scenario: String,
    /// The load tool that measured it (loadgen, h2load, wrk).
    pub tool: String,
    pub concurrency: usize,
    pub summary: Summary,
    pub before: ServerMemory,
    pub after: ServerMemory,
    pub cpu: CpuPerRequest,
}

impl Row {
    fn measured(scenario: String, concurrency: usize, measurement: &Measurement, around: Around) -> Self {
        let summary = Summary::from(measurement);
        let cpu = around.cpu_before.per_request(around.cpu_after, summary.ok);
        Self {
            scenario,
            tool: LOADGEN.to_owned(),
            concurrency,
            summary,
            before: around.before,
            after: around.after,
            cpu,
        }
    }
}

/// The readings taken before and after a scenario.
#[derive(Clone, Copy)]
struct Around {
    before: ServerMemory,
    after: ServerMemory,
    cpu_before: CpuReading,
    cpu_after: CpuReading,
}

/// Connections and seeded accounts, ready to run scenarios.
pub struct Bench {
    pub servers: Servers,
    settings: Settings,
    channels: Vec<Channel>,
    accounts: Vec<Account>,
}

impl Bench {
    /// Connects to auth-svc and registers and logs in the accounts.
    pub async fn prepare(servers: Servers, settings: Settings) -> anyhow::Result<Self> {
        if settings.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        let channels = grpc::connect(&servers.grpc_addr, settings.grpc_connections).await?;
        let accounts = match &settings.existing {
            Some((prefix, total)) => grpc::existing_accounts(&channels[0], prefix, *total, settings.accounts.max(1))
                .await
                .context("logging in the existing accounts")?,
            None => grpc::seed_accounts(&channels[0], settings.accounts.max(1))
                .await
                .context("seeding accounts (register + login)")?,
        };
        Ok(Self { servers, settings, channels, accounts })
    }

    pub async fn run(&self, scenario: Scenario) -> anyhow::Result<Row> {
        // Refresh's sessions are logged in before the readings: their hashes are not Refresh's.
        let refresh_callers = match scenario {
            Scenario::GrpcRefresh => Some(self.refresh_callers().await?),
            _ => None,
        };
        let before = self.servers.memory();
        let cpu_before = self.servers.cpu();
        let measurement = match scenario {
            Scenario::GrpcHealth => self.closed_loop(|channel, _| Ok(HealthCheck::new(channel))).await?,
            Scenario::GrpcUserInfo => {
                self.closed_loop(|channel, account| Ok(GetUserInfo::new(channel, grpc::bearer(&account.access_token)?)))
                    .await?
            }
            Scenario::GrpcLogin => {
                self.closed_loop(|channel, account| Ok(Login::new(channel, account.username.clone()))).await?
            }
            Scenario::GrpcRefresh => {
                measure::closed_loop(refresh_callers.unwrap_or_default(), self.settings.window).await
            }
            Scenario::GrpcRegister => {
                let callers =
                    (0..self.settings.concurrency).map(|index| Register::new(self.channel(index), index)).collect();
                measure::closed_loop(callers, self.settings.window).await
            }
            Scenario::RestHealthz => self.rest("/healthz", false).await?,
            Scenario::RestUserInfo => self.rest("/user/info", true).await?,
            Scenario::RestProtected => self.rest("/protected", true).await?,
        };
        let around = Around { before, after: self.servers.memory(), cpu_before, cpu_after: self.servers.cpu() };
        Ok(Row::measured(scenario.name().to_owned(), self.settings.concurrency, &measurement, around))
    }

    /// One Refresh caller per worker, each with a session of its own, on connections shared by
    /// at most [`REFRESH_WORKERS_PER_CONNECTION`] workers.
    async fn refresh_callers(&self) -> anyhow::Result<Vec<Refresh>> {
        let concurrency = self.settings.concurrency;
        let sessions = grpc::fresh_sessions(&self.channels[0], &self.accounts, concurrency)
            .await
            .context("a session per refresh worker")?;
        let channels =
            grpc::connect(&self.servers.grpc_addr, concurrency.div_ceil(REFRESH_WORKERS_PER_CONNECTION)).await?;
        Ok(sessions
            .into_iter()
            .enumerate()
            .map(|(index, session)| Refresh::new(channels[index % channels.len()].clone(), session.refresh_token))
            .collect())
    }

    /// `concurrency` Login callers saturate the hashing while a few paced GetUserInfo callers
    /// measure what the other calls see meanwhile. Returns the Login row and the GetUserInfo row.
    pub async fn login_storm(&self) -> anyhow::Result<(Row, Row)> {
        let before = self.servers.memory();
        let cpu_before = self.servers.cpu();
        let logins: Vec<Login> = (0..self.settings.concurrency)
            .map(|index| Login::new(self.channel(index), self.account(index).username.clone()))
            .collect();
        let probes = (0..STORM_PROBE_WORKERS)
            .map(|index| Ok(GetUserInfo::new(self.channel(index), grpc::bearer(&self.account(index).access_token)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let window = self.settings.window;
        let (storm, probe) = tokio::join!(measure::closed_loop(logins, window), async {
            // Start measuring once the hashing queue is full.
            tokio::time::sleep(window.warmup).await;
            measure::paced(probes, STORM_PROBE_INTERVAL, window.duration).await
        });
        let around = Around { before, after: self.servers.memory(), cpu_before, cpu_after: self.servers.cpu() };
        // The CPU readings cover both kinds of call: they go on the Login row only.
        let storm_row = Row::measured(STORM_LOGIN_ROW.to_owned(), self.settings.concurrency, &storm, around);
        let mut probe_row = Row::measured(
            format!(
                "{STORM_PROBE_ROW}, paced {}/s",
                STORM_PROBE_WORKERS as u128 * 1000 / STORM_PROBE_INTERVAL.as_millis().max(1)
            ),
            STORM_PROBE_WORKERS,
            &probe,
            around,
        );
        probe_row.cpu = CpuPerRequest::default();
        Ok((storm_row, probe_row))
    }

    fn channel(&self, worker: usize) -> Channel {
        self.channels[worker % self.channels.len()].clone()
    }

    fn account(&self, worker: usize) -> &Account {
        &self.accounts[worker % self.accounts.len()]
    }

    async fn closed_loop<C: Call>(
        &self,
        make: impl Fn(Channel, &Account) -> anyhow::Result<C>,
    ) -> anyhow::Result<Measurement> {
        let callers = (0..self.settings.concurrency)
            .map(|index| make(self.channel(index), self.account(index)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(measure::closed_loop(callers, self.settings.window).await)
    }

    async fn rest(&self, path: &'static str, with_token: bool) -> anyhow::Result<Measurement> {
        let gateway = Gateway::parse(&self.servers.rest_url)?;
        self.closed_loop(|_, account| {
            Get::new(gateway.clone(), path, with_token.then_some(account.access_token.as_str()))
        })
        .await
    }
}
