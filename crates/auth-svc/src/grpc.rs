//! `user.v1.UserService` methods: parse, call one logic function, map the result.

use std::{future::Future, net::IpAddr, sync::Arc, time::Instant};

use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest,
    RegisterResponse, UserInfo, user_service_server::UserService,
};
use secrecy::SecretString;
use tonic::{Code, Request, Response, Status};

use crate::{
    accounts::Accounts,
    auth::tokens::AccessClaims,
    metrics::Metrics,
    sessions::{Sessions, TokenPair},
};

pub struct UserGrpc {
    accounts: Arc<Accounts>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    trust_forwarded_for: bool,
}

impl UserGrpc {
    pub fn new(
        accounts: Arc<Accounts>,
        sessions: Arc<Sessions>,
        metrics: Arc<Metrics>,
        trust_forwarded_for: bool,
    ) -> Self {
        Self { accounts, sessions, metrics, trust_forwarded_for }
    }

    /// Runs one call and counts it by method and status code.
    async fn observed<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.rpc(method, result.as_ref().map_or_else(Status::code, |_| Code::Ok), started);
        result
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        self.observed("Register", async {
            let RegisterRequest { username, password } = request.into_inner();
            let user = self.accounts.register(&username, SecretString::from(password)).await?;
            Ok(Response::new(RegisterResponse { id: user.id, username: user.username, role: user.role }))
        })
        .await
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        self.observed("Login", async {
            let client = client_address(&request, self.trust_forwarded_for);
            let LoginRequest { username, password } = request.into_inner();
            let pair = self.accounts.login(&username, SecretString::from(password), client).await?;
            Ok(Response::new(login_response(pair)))
        })
        .await
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<LoginResponse>, Status> {
        self.observed("Refresh", async {
            let pair = self.sessions.refresh(&request.into_inner().refresh_token).await?;
            Ok(Response::new(login_response(pair)))
        })
        .await
    }

    async fn get_user_info(&self, request: Request<GetUserInfoRequest>) -> Result<Response<UserInfo>, Status> {
        self.observed("GetUserInfo", async {
            let user = self.accounts.user_info(claims(&request)?).await?;
            Ok(Response::new(UserInfo { id: user.id, username: user.username, role: user.role }))
        })
        .await
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        self.observed("Logout", async {
            self.sessions.logout(claims(&request)?).await?;
            Ok(Response::new(LogoutResponse {}))
        })
        .await
    }
}

/// Claims put there by the bearer layer; absent only if the layer was left out.
fn claims<T>(request: &Request<T>) -> Result<&AccessClaims, Status> {
    request.extensions().get::<AccessClaims>().ok_or_else(|| Status::unauthenticated("missing access token"))
}

/// The caller's address: the first `x-forwarded-for` entry when trusted (the gateway sets it),
/// else the TCP peer.
fn client_address<T>(request: &Request<T>, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| request.metadata().get("x-forwarded-for")?.to_str().ok()?.split(',').next()?.trim().parse().ok())
        .flatten();
    forwarded.or_else(|| request.remote_addr().map(|peer| peer.ip()))
}

fn login_response(pair: TokenPair) -> LoginResponse {
    LoginResponse { access_token: pair.access_token, refresh_token: pair.refresh_token, expires_in: pair.expires_in }
}
