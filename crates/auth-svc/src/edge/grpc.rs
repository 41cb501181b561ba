//! `user.v1.UserService` methods: parse, call one logic function, map the result.

use std::{net::IpAddr, sync::Arc};

use auth_api::user::v1::{
    self as v1, AccessTokenClaims, GetJwksRequest, GetJwksResponse, GetUserInfoRequest, Jwk, LoginRequest,
    LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest, RegisterResponse,
    SetUserRoleRequest, UserInfo, ValidateTokenRequest, ValidateTokenResponse, user_service_server::UserService,
};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
use secrecy::{ExposeSecret, SecretString};
use tonic::{Request, Response, Status};

use crate::{
    audit::{Actor, CallContext, MAX_USER_AGENT_CHARS},
    auth::tokens::{AccessClaims, TokenKeys},
    domain::{AccountRecord, client::ServiceClient},
    service::accounts::{Accounts, LoginOutcome},
    service::admin::{Admin, ListQuery, UserRef},
    service::clients::{Clients, NewClient, TokenRequest},
    service::introspection::{ActiveToken, Introspection},
    service::run_to_completion,
    service::second_factor::{SecondFactor, SecondStep},
    service::sessions::{SessionInfo, Sessions, TokenPair},
    service::token_revocation::{PresentedClient, TokenRevocation},
};

pub struct UserGrpc {
    pub accounts: Arc<Accounts>,
    pub sessions: Arc<Sessions>,
    pub second_factor: Arc<SecondFactor>,
    pub admin: Arc<Admin>,
    pub introspection: Introspection,
    pub clients: Arc<Clients>,
    pub token_revocation: Arc<TokenRevocation>,
    /// `introspection.require_client`: ValidateToken needs a service account's token.
    pub require_client: bool,
    /// The GetServerMetadata answer, fixed while the process runs.
    pub server_metadata: v1::GetServerMetadataResponse,
    /// Peers whose `x-forwarded-for` is believed (`grpc.trusted_forwarders`, and under mutual
    /// TLS `grpc.trusted_forwarder_names`).
    pub forwarders: Forwarders,
    /// The GetJwks answer: the keys do not change while the process runs (see [`jwks_response`]).
    pub jwks: GetJwksResponse,
}

impl UserGrpc {
    /// DisableClient and EnableClient. Run to completion: disabling is two writes (the flag,
    /// then the end of the client's tokens), which a cancelled call must not leave half done.
    async fn set_client_disabled<T>(
        &self,
        request: &Request<T>,
        client_id: String,
        disabled: bool,
    ) -> Result<Response<v1::ServiceClient>, Status> {
        let call = self.call_context(request);
        let actor = self.admin.require_admin(claims(request)?).await?;
        let clients = self.clients.clone();
        let client =
            run_to_completion(async move { clients.set_disabled(&client_id, disabled, actor, &call).await }).await?;
        Ok(Response::new(proto_client(client)))
    }

    /// Where the call came from, for sessions and audit events.
    fn call_context<T>(&self, request: &Request<T>) -> CallContext {
        let metadata = request.metadata();
        let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
        let from_forwarder = self.forwarders.is_forwarder(request);
        // A trusted forwarder (the gateway) speaks for its client, and its own `user-agent` is
        // not the client's: the gateway always sends the header, empty for "none". A trusted
        // peer without it (a client on loopback) and anyone else speak for themselves.
        let forwarded = from_forwarder.then(|| text(auth_api::metadata::FORWARDED_USER_AGENT)).flatten();
        let user_agent = forwarded
            .or_else(|| text("user-agent"))
            .filter(|agent| !agent.is_empty())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        CallContext {
            client_address: client_address(request, &self.forwarders),
            user_agent,
            request_id: text(auth_api::metadata::REQUEST_ID).map(str::to_owned),
        }
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let call = self.call_context(&request);
        let RegisterRequest { username, password } = request.into_inner();
        let user = self.accounts.register(&username, SecretString::from(password), &call).await?;
        Ok(Response::new(RegisterResponse { id: user.id, username: user.username, role: user.role }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let (call, accounts) = (self.call_context(&request), self.accounts.clone());
        let LoginRequest { username, password } = request.into_inner();
        let outcome =
            run_to_completion(async move { accounts.login(&username, SecretString::from(password), &call).await })
                .await?;
        Ok(Response::new(match outcome {
            LoginOutcome::Session(pair) => login_response(pair),
            LoginOutcome::SecondFactorRequired(challenge) => LoginResponse {
                mfa_challenge: Some(v1::MfaChallenge {
                    challenge: challenge.token,
                    expires_in: challenge.expires_in,
                    methods: vec!["totp".to_owned(), "recovery_code".to_owned()],
                }),
                ..LoginResponse::default()
            },
        }))
    }

    async fn verify_mfa(&self, request: Request<v1::VerifyMfaRequest>) -> Result<Response<LoginResponse>, Status> {
        let (call, second_factor) = (self.call_context(&request), self.second_factor.clone());
        let v1::VerifyMfaRequest { challenge, code, recovery_code } = request.into_inner();
        let step = SecondStep::from_fields(code, recovery_code)?;
        let pair = run_to_completion(async move { second_factor.verify(&challenge, step, &call).await }).await?;
        Ok(Response::new(login_response(pair)))
    }

    async fn begin_totp_enrolment(
        &self,
        request: Request<v1::BeginTotpEnrolmentRequest>,
    ) -> Result<Response<v1::TotpEnrolment>, Status> {
        let (call, accounts, claims) = (self.call_context(&request), self.accounts.clone(), claims(&request)?.clone());
        let password = SecretString::from(request.into_inner().password);
        let enrolment =
            run_to_completion(async move { accounts.begin_totp_enrolment(&claims, password, &call).await }).await?;
        Ok(Response::new(v1::TotpEnrolment {
            secret: enrolment.secret_base32.to_string(),
            otpauth_uri: enrolment.otpauth_uri.to_string(),
            qr_svg: enrolment.qr_svg.to_string(),
        }))
    }

    async fn confirm_totp_enrolment(
        &self,
        request: Request<v1::ConfirmTotpEnrolmentRequest>,
    ) -> Result<Response<v1::RecoveryCodes>, Status> {
        let (call, second_factor, claims) =
            (self.call_context(&request), self.second_factor.clone(), claims(&request)?.clone());
        let user = self.accounts.caller(&claims).await?;
        let code = SecondStep::code(request.into_inner().code.into())?;
        let codes =
            run_to_completion(async move { second_factor.confirm(&user, &claims.sid, code, &call).await }).await?;
        Ok(Response::new(recovery_codes(codes)))
    }

    async fn disable_totp(
        &self,
        request: Request<v1::DisableTotpRequest>,
    ) -> Result<Response<v1::DisableTotpResponse>, Status> {
        let (call, accounts, claims) = (self.call_context(&request), self.accounts.clone(), claims(&request)?.clone());
        let v1::DisableTotpRequest { password, code, recovery_code } = request.into_inner();
        let step = SecondStep::from_fields(code, recovery_code)?;
        let password = SecretString::from(password);
        run_to_completion(async move { accounts.disable_totp(&claims, password, step, &call).await }).await?;
        Ok(Response::new(v1::DisableTotpResponse {}))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<v1::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<v1::RecoveryCodes>, Status> {
        let (call, second_factor) = (self.call_context(&request), self.second_factor.clone());
        let user = self.accounts.caller(claims(&request)?).await?;
        let code = SecondStep::code(request.into_inner().code.into())?;
        let codes =
            run_to_completion(async move { second_factor.regenerate_recovery_codes(&user, code, &call).await }).await?;
        Ok(Response::new(recovery_codes(codes)))
    }

    async fn get_mfa_status(
        &self,
        request: Request<v1::GetMfaStatusRequest>,
    ) -> Result<Response<v1::MfaStatus>, Status> {
        let user = self.accounts.caller(claims(&request)?).await?;
        let status = self.second_factor.status(&user).await?;
        Ok(Response::new(v1::MfaStatus {
            totp_enabled: status.totp_enabled,
            recovery_codes_left: i32::try_from(status.recovery_codes_left).unwrap_or(i32::MAX),
        }))
    }

    async fn reset_mfa(&self, request: Request<v1::ResetMfaRequest>) -> Result<Response<v1::UserRecord>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (admin, id) = (self.admin.clone(), request.into_inner().id);
        let record = run_to_completion(async move { admin.reset_mfa(id, actor, &call).await }).await?;
        Ok(Response::new(user_record(record)))
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<LoginResponse>, Status> {
        let call = self.call_context(&request);
        let pair = self.sessions.refresh(&request.into_inner().refresh_token, &call).await?;
        Ok(Response::new(login_response(pair)))
    }

    async fn get_user_info(&self, request: Request<GetUserInfoRequest>) -> Result<Response<UserInfo>, Status> {
        let user = self.accounts.caller(claims(&request)?).await?;
        Ok(Response::new(UserInfo { id: user.id, username: user.username, role: user.role }))
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let (call, sessions, claims) = (self.call_context(&request), self.sessions.clone(), claims(&request)?.clone());
        run_to_completion(async move { sessions.logout(&claims, &call).await }).await?;
        Ok(Response::new(LogoutResponse {}))
    }

    async fn set_user_role(&self, request: Request<SetUserRoleRequest>) -> Result<Response<UserInfo>, Status> {
        let call = self.call_context(&request);
        let caller = claims(&request)?.clone();
        let SetUserRoleRequest { username, role } = request.into_inner();
        let user = self.accounts.set_role(&caller, &username, &role, &call).await?;
        Ok(Response::new(UserInfo { id: user.id, username: user.username, role: user.role }))
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        if self.require_client {
            let headers = request.metadata().clone().into_headers();
            self.introspection.require_introspector_token(auth_token::bearer_token(&headers).ok()).await?;
        }
        let active = self.introspection.check(&request.into_inner().token).await?;
        Ok(Response::new(validate_response(active)))
    }

    async fn get_jwks(&self, _request: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        Ok(Response::new(self.jwks.clone()))
    }

    async fn list_sessions(
        &self,
        request: Request<v1::ListSessionsRequest>,
    ) -> Result<Response<v1::ListSessionsResponse>, Status> {
        let claims = claims(&request)?;
        self.accounts.caller(claims).await?;
        let sessions = self.sessions.list(claims).await?;
        Ok(Response::new(v1::ListSessionsResponse { sessions: sessions.into_iter().map(proto_session).collect() }))
    }

    async fn revoke_session(
        &self,
        request: Request<v1::RevokeSessionRequest>,
    ) -> Result<Response<v1::RevokeSessionResponse>, Status> {
        let call = self.call_context(&request);
        let user = self.accounts.caller(claims(&request)?).await?;
        let (sessions, session_id) = (self.sessions.clone(), request.into_inner().session_id);
        run_to_completion(async move { sessions.revoke_one(user.id, &session_id, Actor::User(user.id), &call).await })
            .await?;
        Ok(Response::new(v1::RevokeSessionResponse {}))
    }

    async fn logout_all(
        &self,
        request: Request<v1::LogoutAllRequest>,
    ) -> Result<Response<v1::LogoutAllResponse>, Status> {
        let call = self.call_context(&request);
        let claims = claims(&request)?;
        let user = self.accounts.caller(claims).await?;
        let keep = request.get_ref().keep_current.then(|| claims.sid.clone());
        let sessions = self.sessions.clone();
        let ended = run_to_completion(async move {
            sessions.revoke_all(user.id, keep.as_deref(), Actor::User(user.id), &call).await
        })
        .await?;
        Ok(Response::new(v1::LogoutAllResponse { revoked_sessions: count(ended) }))
    }

    async fn change_password(
        &self,
        request: Request<v1::ChangePasswordRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let (call, accounts, claims) = (self.call_context(&request), self.accounts.clone(), claims(&request)?.clone());
        let v1::ChangePasswordRequest { current_password, new_password } = request.into_inner();
        let (current, new) = (SecretString::from(current_password), SecretString::from(new_password));
        let pair =
            run_to_completion(async move { accounts.change_password(&claims, current, new, &call).await }).await?;
        Ok(Response::new(login_response(pair)))
    }

    async fn delete_account(
        &self,
        request: Request<v1::DeleteAccountRequest>,
    ) -> Result<Response<v1::DeleteAccountResponse>, Status> {
        let (call, accounts, claims) = (self.call_context(&request), self.accounts.clone(), claims(&request)?.clone());
        let password = SecretString::from(request.into_inner().password);
        run_to_completion(async move { accounts.delete_account(&claims, password, &call).await }).await?;
        Ok(Response::new(v1::DeleteAccountResponse {}))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        self.admin.require_admin(claims(&request)?).await?;
        let v1::ListUsersRequest { page_size, page_token, username_prefix, role } = request.into_inner();
        let page_size =
            u32::try_from(page_size).map_err(|_| Status::invalid_argument("page_size must not be negative"))?;
        let page = self.admin.list_users(&ListQuery { page_size, page_token, username_prefix, role }).await?;
        Ok(Response::new(v1::ListUsersResponse {
            users: page.users.into_iter().map(user_record).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_user(&self, request: Request<v1::GetUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        self.admin.require_admin(claims(&request)?).await?;
        let user = match request.into_inner().user {
            Some(v1::get_user_request::User::Id(id)) => UserRef::Id(id),
            Some(v1::get_user_request::User::Username(name)) => UserRef::Username(name),
            None => return Err(Status::invalid_argument("give the user's id or username")),
        };
        Ok(Response::new(user_record(self.admin.get_user(&user).await?)))
    }

    async fn disable_user(&self, request: Request<v1::DisableUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (admin, id) = (self.admin.clone(), request.get_ref().id);
        let record = run_to_completion(async move { admin.disable(id, actor, &call).await }).await?;
        Ok(Response::new(user_record(record)))
    }

    async fn enable_user(&self, request: Request<v1::EnableUserRequest>) -> Result<Response<v1::UserRecord>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (admin, id) = (self.admin.clone(), request.get_ref().id);
        let record = run_to_completion(async move { admin.enable(id, actor, &call).await }).await?;
        Ok(Response::new(user_record(record)))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (admin, id) = (self.admin.clone(), request.get_ref().id);
        run_to_completion(async move { admin.delete(id, actor, &call).await }).await?;
        Ok(Response::new(v1::DeleteUserResponse {}))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<v1::RevokeUserSessionsRequest>,
    ) -> Result<Response<v1::RevokeUserSessionsResponse>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (admin, id) = (self.admin.clone(), request.get_ref().id);
        let ended = run_to_completion(async move { admin.revoke_sessions(id, actor, &call).await }).await?;
        Ok(Response::new(v1::RevokeUserSessionsResponse { revoked_sessions: count(ended) }))
    }

    async fn create_client(
        &self,
        request: Request<v1::CreateClientRequest>,
    ) -> Result<Response<v1::ClientSecretResponse>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let v1::CreateClientRequest { client_id, name, role, scopes, audiences } = request.into_inner();
        let (clients, new) = (self.clients.clone(), NewClient { client_id, name, role, scopes, audiences });
        let (client, secret) = run_to_completion(async move { clients.create(new, actor, &call).await }).await?;
        Ok(Response::new(secret_response(client, secret)))
    }

    async fn list_clients(
        &self,
        request: Request<v1::ListClientsRequest>,
    ) -> Result<Response<v1::ListClientsResponse>, Status> {
        self.admin.require_admin(claims(&request)?).await?;
        let v1::ListClientsRequest { page_size, page_token } = request.into_inner();
        let page_size =
            u32::try_from(page_size).map_err(|_| Status::invalid_argument("page_size must not be negative"))?;
        let page = self.clients.list(page_size, &page_token).await?;
        Ok(Response::new(v1::ListClientsResponse {
            clients: page.clients.into_iter().map(proto_client).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn rotate_client_secret(
        &self,
        request: Request<v1::RotateClientSecretRequest>,
    ) -> Result<Response<v1::ClientSecretResponse>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        let (clients, client_id) = (self.clients.clone(), request.into_inner().client_id);
        let (client, secret) =
            run_to_completion(async move { clients.rotate_secret(&client_id, actor, &call).await }).await?;
        Ok(Response::new(secret_response(client, secret)))
    }

    async fn disable_client(
        &self,
        request: Request<v1::DisableClientRequest>,
    ) -> Result<Response<v1::ServiceClient>, Status> {
        let client_id = request.get_ref().client_id.clone();
        self.set_client_disabled(&request, client_id, true).await
    }

    async fn enable_client(
        &self,
        request: Request<v1::EnableClientRequest>,
    ) -> Result<Response<v1::ServiceClient>, Status> {
        let client_id = request.get_ref().client_id.clone();
        self.set_client_disabled(&request, client_id, false).await
    }

    async fn delete_client(
        &self,
        request: Request<v1::DeleteClientRequest>,
    ) -> Result<Response<v1::DeleteClientResponse>, Status> {
        let call = self.call_context(&request);
        let actor = self.admin.require_admin(claims(&request)?).await?;
        self.clients.delete(&request.into_inner().client_id, actor, &call).await?;
        Ok(Response::new(v1::DeleteClientResponse {}))
    }

    async fn get_server_metadata(
        &self,
        _request: Request<v1::GetServerMetadataRequest>,
    ) -> Result<Response<v1::GetServerMetadataResponse>, Status> {
        Ok(Response::new(self.server_metadata.clone()))
    }

    async fn client_credentials(
        &self,
        request: Request<v1::ClientCredentialsRequest>,
    ) -> Result<Response<v1::ClientTokenResponse>, Status> {
        let call = self.call_context(&request);
        let v1::ClientCredentialsRequest { client, scopes, audiences } = request.into_inner();
        let v1::ClientAuthentication { client_id, client_secret } = client.unwrap_or_default();
        let token = self
            .clients
            .issue_token(
                TokenRequest {
                    client_id: &client_id,
                    client_secret: SecretString::from(client_secret),
                    scopes: &scopes,
                    audiences: &audiences,
                },
                &call,
            )
            .await?;
        Ok(Response::new(v1::ClientTokenResponse {
            access_token: token.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: token.expires_in,
            scopes: token.scopes,
        }))
    }

    async fn introspect_token(
        &self,
        request: Request<v1::IntrospectTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        let call = self.call_context(&request);
        let v1::IntrospectTokenRequest { client, token, token_type_hint: _ } = request.into_inner();
        let v1::ClientAuthentication { client_id, client_secret } = client.unwrap_or_default();
        let secret = SecretString::from(client_secret);
        let active = self.introspection.introspect_for_client(&client_id, &secret, &token, &call).await?;
        Ok(Response::new(validate_response(active)))
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let call = self.call_context(&request);
        let v1::RevokeTokenRequest { client, token, token_type_hint } = request.into_inner();
        let revocation = self.token_revocation.clone();
        run_to_completion(async move {
            let client = client.as_ref().map(|client| PresentedClient {
                client_id: &client.client_id,
                secret: SecretString::from(client.client_secret.clone()),
            });
            revocation.revoke(client, &token, &token_type_hint, &call).await
        })
        .await?;
        Ok(Response::new(v1::RevokeTokenResponse {}))
    }
}

fn validate_response(active: Option<ActiveToken>) -> ValidateTokenResponse {
    match active {
        Some(active) => ValidateTokenResponse { active: true, claims: Some(token_claims(active)) },
        None => ValidateTokenResponse { active: false, claims: None },
    }
}

fn secret_response(client: ServiceClient, secret: SecretString) -> v1::ClientSecretResponse {
    v1::ClientSecretResponse { client: Some(proto_client(client)), client_secret: secret.expose_secret().to_owned() }
}

fn proto_client(client: ServiceClient) -> v1::ServiceClient {
    v1::ServiceClient {
        client_id: client.client_id,
        name: client.name,
        role: client.role,
        scopes: client.scopes,
        audiences: client.audiences,
        disabled: client.disabled,
        created_at: Some(datetime(client.created_at)),
        secret_rotated_at: Some(datetime(client.secret_rotated_at)),
        previous_secret_expires_at: client.previous_secret_expires_at.map(datetime),
    }
}

fn token_claims(active: ActiveToken) -> AccessTokenClaims {
    match active {
        ActiveToken::User { claims, kid, username } => AccessTokenClaims {
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
            client_id: String::new(),
            scopes: Vec::new(),
            audiences: Vec::new(),
            // Tokens from before the claim was written were password sessions.
            amr: if claims.amr.is_empty() { vec!["pwd".to_owned()] } else { claims.amr },
        },
        ActiveToken::Client { claims, kid } => AccessTokenClaims {
            scopes: claims.scopes().map(str::to_owned).collect(),
            iss: claims.iss,
            sub: claims.sub,
            user_id: 0,
            role: claims.role,
            iat: claims.iat,
            exp: claims.exp,
            jti: claims.jti,
            sid: claims.sid,
            kid,
            username: String::new(),
            client_id: claims.client_id,
            audiences: claims.aud.0,
            amr: Vec::new(),
        },
    }
}

/// The GetServerMetadata answer.
pub fn server_metadata(issuer: &str, keys: &TokenKeys, scopes: &[String]) -> v1::GetServerMetadataResponse {
    v1::GetServerMetadataResponse {
        issuer: issuer.to_owned(),
        scopes_supported: scopes.to_vec(),
        signing_algs: keys.access_algorithms().into_iter().map(str::to_owned).collect(),
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
/// Who may speak for a client in `x-forwarded-for`: peers in `grpc.trusted_forwarders`, and,
/// when `names` are set (mutual TLS), only those whose certificate names one of them.
#[derive(Debug, Clone, Default)]
pub struct Forwarders {
    pub networks: Vec<ipnet::IpNet>,
    pub names: Vec<String>,
}

impl Forwarders {
    fn trusts_address(&self, address: &IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(address))
    }

    /// Whether the peer of `request` is a forwarder (the gateway).
    fn is_forwarder<T>(&self, request: &Request<T>) -> bool {
        let Some(peer) = request.remote_addr() else { return false };
        if !self.trusts_address(&peer.ip().to_canonical()) {
            return false;
        }
        self.names.is_empty()
            || request
                .extensions()
                .get::<service_kit::tls::PeerCertificate>()
                .is_some_and(|certificate| self.names.iter().any(|name| certificate.names(name)))
    }
}

fn client_address<T>(request: &Request<T>, forwarders: &Forwarders) -> Option<IpAddr> {
    let peer = request.remote_addr()?.ip().to_canonical();
    if !forwarders.is_forwarder(request) {
        return Some(peer);
    }
    let is_trusted = |address: &IpAddr| forwarders.trusts_address(address);
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

fn timestamp(unix_seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: unix_seconds, nanos: 0 }
}

fn datetime(at: chrono::NaiveDateTime) -> prost_types::Timestamp {
    timestamp(at.and_utc().timestamp())
}

fn proto_session(info: SessionInfo) -> v1::Session {
    let SessionInfo { session, current } = info;
    v1::Session {
        id: session.id,
        created_at: Some(timestamp(session.created_at)),
        last_used_at: Some(timestamp(session.last_used_at)),
        expires_at: Some(timestamp(session.expires_at)),
        client_address: session.client_address.unwrap_or_default(),
        user_agent: session.user_agent.unwrap_or_default(),
        current,
    }
}

fn user_record(record: AccountRecord) -> v1::UserRecord {
    v1::UserRecord {
        id: record.user.id,
        username: record.user.username,
        role: record.user.role,
        created_at: Some(datetime(record.created_at)),
        disabled: record.disabled_at.is_some(),
        last_login_at: record.last_login_at.map(datetime),
    }
}

/// A count for a response field; sessions per account never come near `i32::MAX`.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn login_response(pair: TokenPair) -> LoginResponse {
    LoginResponse {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        expires_in: pair.expires_in,
        mfa_challenge: None,
    }
}

fn recovery_codes(codes: Vec<zeroize::Zeroizing<String>>) -> v1::RecoveryCodes {
    v1::RecoveryCodes { recovery_codes: codes.iter().map(|code| code.to_string()).collect() }
}
