//! `user.v1.UserService` methods: parse, call one logic function, map the result.

use std::{net::IpAddr, sync::Arc};

use auth_api::user::v1::{
    self as v1, AccessTokenClaims, GetJwksRequest, GetJwksResponse, GetUserInfoRequest, Jwk, LoginRequest,
    LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest, RegisterResponse,
    SetUserRoleRequest, UserInfo, ValidateTokenRequest, ValidateTokenResponse, user_service_server::UserService,
};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
use secrecy::SecretString;
use tonic::{Request, Response, Status};

use crate::{
    auth::tokens::{AccessClaims, TokenKeys},
    service::accounts::Accounts,
    service::introspection::{ActiveToken, Introspection},
    service::sessions::{Sessions, TokenPair},
};

pub struct UserGrpc {
    pub accounts: Arc<Accounts>,
    pub sessions: Arc<Sessions>,
    pub introspection: Introspection,
    /// Peers whose `x-forwarded-for` is believed (`grpc.trusted_forwarders`).
    pub trusted_forwarders: Vec<ipnet::IpNet>,
    /// The GetJwks answer: the keys do not change while the process runs (see [`jwks_response`]).
    pub jwks: GetJwksResponse,
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let client = client_address(&request, &self.trusted_forwarders);
        let RegisterRequest { username, password } = request.into_inner();
        let user = self.accounts.register(&username, SecretString::from(password), client).await?;
        Ok(Response::new(RegisterResponse { id: user.id, username: user.username, role: user.role }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let client = client_address(&request, &self.trusted_forwarders);
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

    async fn set_user_role(&self, request: Request<SetUserRoleRequest>) -> Result<Response<UserInfo>, Status> {
        let caller = claims(&request)?.clone();
        let SetUserRoleRequest { username, role } = request.into_inner();
        let user = self.accounts.set_role(&caller, &username, &role).await?;
        Ok(Response::new(UserInfo { id: user.id, username: user.username, role: user.role }))
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        let active = self.introspection.check(&request.into_inner().token).await?;
        Ok(Response::new(match active {
            Some(active) => ValidateTokenResponse { active: true, claims: Some(token_claims(active)) },
            None => ValidateTokenResponse { active: false, claims: None },
        }))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(self.jwks.clone()))
    }

    async fn list_sessions(
        &self,
        _: Request<v1::ListSessionsRequest>,
    ) -> Result<Response<v1::ListSessionsResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn revoke_session(
        &self,
        _: Request<v1::RevokeSessionRequest>,
    ) -> Result<Response<v1::RevokeSessionResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn logout_all(&self, _: Request<v1::LogoutAllRequest>) -> Result<Response<v1::LogoutAllResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn change_password(&self, _: Request<v1::ChangePasswordRequest>) -> Result<Response<LoginResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn delete_account(
        &self,
        _: Request<v1::DeleteAccountRequest>,
    ) -> Result<Response<v1::DeleteAccountResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn list_users(&self, _: Request<v1::ListUsersRequest>) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn get_user(&self, _: Request<v1::GetUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn disable_user(&self, _: Request<v1::DisableUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn enable_user(&self, _: Request<v1::EnableUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn delete_user(&self, _: Request<v1::DeleteUserRequest>) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
    async fn revoke_user_sessions(
        &self,
        _: Request<v1::RevokeUserSessionsRequest>,
    ) -> Result<Response<v1::RevokeUserSessionsResponse>, Status> {
        Err(Status::unimplemented("not yet"))
    }
}

fn token_claims(active: ActiveToken) -> AccessTokenClaims {
    let ActiveToken { claims, kid, username } = active;
    AccessTokenClaims {
        iss: claims.iss,
        sub: claims.sub,
        user_id: claims.user_id,
        role: claims.role,
        iat: claims.iat,
        exp: claims.exp,
        jti: claims.jti,
        sid: claims.sid,
        kid,
        username,
    }
}

/// The public keys of `keys` with the cache lifetime verifiers may give them.
pub fn jwks_response(keys: &TokenKeys, max_age_seconds: u64) -> GetJwksResponse {
    GetJwksResponse {
        keys: keys.jwks().iter().filter_map(proto_jwk).collect(),
        max_age_seconds: i64::try_from(max_age_seconds).unwrap_or(i64::MAX),
    }
}

/// A public key in the JWK members' own names; `None` for kinds we never configure.
fn proto_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Jwk> {
    let (kty, crv, x, y) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            ("OKP", "Ed25519", okp.x.clone(), String::new())
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            ("EC", "P-256", ec.x.clone(), ec.y.clone())
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm? {
        KeyAlgorithm::EdDSA => "EdDSA",
        KeyAlgorithm::ES256 => "ES256",
        _ => return None,
    };
    Some(Jwk {
        kty: kty.to_owned(),
        crv: crv.to_owned(),
        x,
        y,
        kid: jwk.common.key_id.clone()?,
        alg: alg.to_owned(),
        r#use: "sig".to_owned(),
    })
}

/// Claims put there by the bearer layer; absent only if the layer was left out.
fn claims<T>(request: &Request<T>) -> Result<&AccessClaims, Status> {
    request.extensions().get::<AccessClaims>().ok_or_else(|| Status::unauthenticated("missing access token"))
}

/// The caller's address. A peer in `trusted` (the gateway) speaks for its client through
/// `x-forwarded-for`: walking it from the right, past further trusted proxies, the first other
/// address is the client. Anyone else is its own TCP peer, whatever header it sends.
fn client_address<T>(request: &Request<T>, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = request.remote_addr()?.ip().to_canonical();
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(forwarded) = request.metadata().get(auth_api::metadata::FORWARDED_FOR) else { return Some(peer) };
    let Ok(forwarded) = forwarded.to_str() else { return Some(peer) };
    let mut client = peer;
    for hop in forwarded.rsplit(',') {
        let Ok(address) = hop.trim().parse::<IpAddr>() else { break };
        client = address.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

fn login_response(pair: TokenPair) -> LoginResponse {
    LoginResponse { access_token: pair.access_token, refresh_token: pair.refresh_token, expires_in: pair.expires_in }
}
