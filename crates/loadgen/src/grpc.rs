//! The gRPC side: connections to auth-svc, seeding accounts, and one [`Call`] per gRPC
//! scenario (health check, GetUserInfo, Login, Refresh).

use std::time::Duration;

use anyhow::{Context as _, bail};
use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, RefreshRequest, RegisterRequest,
    user_service_client::UserServiceClient,
};
use tokio::task::JoinSet;
use tonic::{
    Code, Request,
    metadata::AsciiMetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::measure::Call;

/// The password of every seeded account (above the default minimum length of 8).
pub const PASSWORD: &str = "bench-password-1234";

/// Opens `count` HTTP/2 connections to auth-svc; workers share them round-robin.
pub async fn connect(addr: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = endpoint(addr)?;
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to auth-svc at {addr}"))?);
    }
    Ok(channels)
}

pub fn endpoint(addr: &str) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(addr.to_owned())
        .with_context(|| format!("bad gRPC address {addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2)))
}

/// A registered account and the tokens of one login.
#[derive(Clone)]
pub struct Account {
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Registers `count` fresh accounts (names unique to this run) and logs each in once. The
/// server hashes at most one password per core at a time, so this takes about
/// `2 × count × hash time ÷ cores`.
pub async fn seed_accounts(channel: &Channel, count: usize) -> anyhow::Result<Vec<Account>> {
    let run = run_id();
    let mut seeding = JoinSet::new();
    for index in 0..count {
        let channel = channel.clone();
        let username = format!("bench-{run}-{index}");
        seeding.spawn(async move { anyhow::Ok((index, seed_account(&channel, username).await?)) });
    }
    let mut accounts = Vec::with_capacity(count);
    while let Some(joined) = seeding.join_next().await {
        accounts.push(joined.context("seeding task")??);
    }
    accounts.sort_by_key(|(index, _)| *index);
    Ok(accounts.into_iter().map(|(_, account)| account).collect())
}

/// Logs in `count` accounts that already exist (`--scale` seeds them), spread evenly over
/// `{prefix}1` … `{prefix}{total}`, so that the calls touch many rows, not one hot user.
pub async fn existing_accounts(
    channel: &Channel,
    prefix: &str,
    total: u64,
    count: usize,
) -> anyhow::Result<Vec<Account>> {
    let mut logins = JoinSet::new();
    for index in 0..count as u64 {
        let mut client = UserServiceClient::new(channel.clone());
        let username = format!("{prefix}{}", 1 + index * total / count.max(1) as u64);
        logins.spawn(async move {
            let tokens = login(&mut client, &username).await?;
            anyhow::Ok(Account { username, access_token: tokens.access_token, refresh_token: tokens.refresh_token })
        });
    }
    let mut accounts = Vec::with_capacity(count);
    while let Some(joined) = logins.join_next().await {
        accounts.push(joined.context("login task")??);
    }
    Ok(accounts)
}

/// A fresh session for each of `count` workers, cycling over `accounts` (each refresh chain
/// needs a session of its own: a refresh token is spent when used).
pub async fn fresh_sessions(channel: &Channel, accounts: &[Account], count: usize) -> anyhow::Result<Vec<Account>> {
    if accounts.is_empty() {
        bail!("no seeded accounts");
    }
    let mut logins = JoinSet::new();
    for index in 0..count {
        let mut client = UserServiceClient::new(channel.clone());
        let username = accounts[index % accounts.len()].username.clone();
        logins.spawn(async move {
            let tokens = login(&mut client, &username).await?;
            anyhow::Ok(Account { username, access_token: tokens.access_token, refresh_token: tokens.refresh_token })
        });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(joined) = logins.join_next().await {
        sessions.push(joined.context("login task")??);
    }
    Ok(sessions)
}

/// Registers `username` and logs it in once.
pub async fn seed_account(channel: &Channel, username: String) -> anyhow::Result<Account> {
    let mut client = UserServiceClient::new(channel.clone());
    client
        .register(RegisterRequest { username: username.clone(), password: PASSWORD.to_owned() })
        .await
        .with_context(|| format!("registering {username}"))?;
    let tokens = login(&mut client, &username).await?;
    Ok(Account { username, access_token: tokens.access_token, refresh_token: tokens.refresh_token })
}

async fn login(client: &mut UserServiceClient<Channel>, username: &str) -> anyhow::Result<LoginResponse> {
    let request = LoginRequest { username: username.to_owned(), password: PASSWORD.to_owned() };
    Ok(client.login(request).await.with_context(|| format!("logging in {username}"))?.into_inner())
}

/// Distinguishes this run's accounts from those of earlier runs on the same database.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// `authorization: Bearer <token>` as gRPC metadata.
pub fn bearer(access_token: &str) -> anyhow::Result<AsciiMetadataValue> {
    format!("Bearer {access_token}").parse().context("access token is not valid metadata")
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// `grpc.health.v1.Health/Check` for the whole server (service ""): the transport's floor.
pub struct HealthCheck {
    client: HealthClient<Channel>,
}

impl HealthCheck {
    pub fn new(channel: Channel) -> Self {
        Self { client: HealthClient::new(channel) }
    }

    /// Whether `service` answers SERVING; `Err` when the server cannot be reached at all.
    pub async fn is_serving(&mut self, service: &str) -> Result<bool, tonic::Status> {
        match self.client.check(HealthCheckRequest { service: service.to_owned() }).await {
            Ok(response) => Ok(response.into_inner().status() == ServingStatus::Serving),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(status),
        }
    }
}

impl Call for HealthCheck {
    async fn call(&mut self) -> Result<(), String> {
        match self.is_serving("").await {
            Ok(true) => Ok(()),
            Ok(false) => Err("not SERVING".to_owned()),
            Err(status) => Err(status_text(&status)),
        }
    }
}

/// `GetUserInfo` with one account's access token: after the first call the user is cached.
pub struct GetUserInfo {
    client: UserServiceClient<Channel>,
    authorization: AsciiMetadataValue,
}

impl GetUserInfo {
    pub fn new(channel: Channel, authorization: AsciiMetadataValue) -> Self {
        Self { client: UserServiceClient::new(channel), authorization }
    }
}

impl Call for GetUserInfo {
    async fn call(&mut self) -> Result<(), String> {
        let mut request = Request::new(GetUserInfoRequest {});
        request.metadata_mut().insert("authorization", self.authorization.clone());
        self.client.get_user_info(request).await.map(drop).map_err(|status| status_text(&status))
    }
}

/// `Login` with a seeded account's right password: one argon2 verification each.
pub struct Login {
    client: UserServiceClient<Channel>,
    username: String,
}

impl Login {
    pub fn new(channel: Channel, username: String) -> Self {
        Self { client: UserServiceClient::new(channel), username }
    }
}

impl Call for Login {
    async fn call(&mut self) -> Result<(), String> {
        let request = LoginRequest { username: self.username.clone(), password: PASSWORD.to_owned() };
        self.client.login(request).await.map(drop).map_err(|status| status_text(&status))
    }
}

/// `Register` of a new account each call (one argon2 hash and one insert), names unique to
/// this worker.
pub struct Register {
    client: UserServiceClient<Channel>,
    prefix: String,
    next: u64,
}

impl Register {
    pub fn new(channel: Channel, worker: usize) -> Self {
        Self { client: UserServiceClient::new(channel), prefix: format!("reg-{}-{worker}-", run_id()), next: 0 }
    }
}

impl Call for Register {
    async fn call(&mut self) -> Result<(), String> {
        self.next += 1;
        let request =
            RegisterRequest { username: format!("{}{}", self.prefix, self.next), password: PASSWORD.to_owned() };
        self.client.register(request).await.map(drop).map_err(|status| status_text(&status))
    }
}

/// `Refresh`, each worker rotating its own session: every call spends the token the previous
/// call returned, as a client keeping a session alive does.
pub struct Refresh {
    client: UserServiceClient<Channel>,
    refresh_token: String,
}

impl Refresh {
    pub fn new(channel: Channel, refresh_token: String) -> Self {
        Self { client: UserServiceClient::new(channel), refresh_token }
    }
}

impl Call for Refresh {
    async fn call(&mut self) -> Result<(), String> {
        // The token moves into the request (it is spent either way) and the answer's replaces it:
        // no copy per call.
        let request = RefreshRequest { refresh_token: std::mem::take(&mut self.refresh_token) };
        let response = self.client.refresh(request).await.map_err(|status| status_text(&status))?;
        self.refresh_token = response.into_inner().refresh_token;
        Ok(())
    }
}
