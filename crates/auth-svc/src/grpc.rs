//! `user.v1.UserService` methods: parse, call one logic function, map the result.

use std::{net::IpAddr, sync::Arc};

use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest,
    RegisterResponse, UserInfo, user_service_server::UserService,
};
use secrecy::SecretString;
use tonic::{Request, Response, Status};

use crate::{accounts::Accounts, auth::tokens::AccessClaims, sessions::Sessions, sessions::TokenPair};

pub struct UserGrpc {
    accounts: Arc<Accounts>,
    sessions: Arc<Sessions>,
    trust_forwarded_for: bool,
}

impl UserGrpc {
    pub fn new(accounts: Arc<Accounts>, sessions: Arc<Sessions>, trust_forwarded_for: bool) -> Self {
        Self { accounts, sessions, trust_forwarded_for }
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let RegisterRequest { username, password } = request.into_inner();
        let user = self.accounts.register(&username, SecretString::from(password)).await?;
        Ok(Response::new(RegisterResponse { id: user.id, username: user.username, role: user.role }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let client = client_address(&request, self.trust_forwarded_for);
        let LoginRequest { username, password } = request.into_inner();
        let pair = self.accounts.login(&username, SecretString::from(password), client).await?;
        Ok(Response::new(login_response(pair)))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<LoginResponse>, Status> {
        let pair = self.sessions.refresh(&request.into_inner().refresh_token).await?;
        Ok(Response::new(login_response(pair)))
    }

    async fn get_user_info(&self, request: Request<GetUserInfoRequest>) -> Result<Response<UserInfo>, Status> {
        let user = self.accounts.user_info(claims(&request)?).await?;
        Ok(Response::new(UserInfo { id: user.id, username: user.username, role: user.role }))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        self.sessions.logout(claims(&request)?).await?;
        Ok(Response::new(LogoutResponse {}))
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
