//! The OpenAPI document (`/openapi.json`) and a Swagger UI over it (`/docs`). The routes'
//! part of the document comes from the handlers' `#[utoipa::path]` attributes and the very
//! structs they parse and answer with (collected by `routes::api`), so it cannot drift from the
//! routes; [`document`] puts it under [`ApiDoc`] and [`complete`] adds the answers every route
//! shares (the middleware's, the transport's, the request id), by the same rules the code
//! follows. The UI's assets are compiled in (the `vendored` feature): nothing is fetched at
//! build or run time.

use axum::{
    Router,
    http::{StatusCode, header},
};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        Content, Ref, RefOr, Required, Response, Schema,
        extensions::Extensions,
        header::Header,
        path::{Operation, ParameterBuilder, ParameterIn, PathItem},
        schema::{ObjectBuilder, Type},
        security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    error::{CodeError, Detail, Dialect, OAuthError, TokenError},
    listener::MAX_HEADER_BYTES,
    middleware::MAX_REQUEST_ID_BYTES,
    routes::{gozero, health, jwks, oauth2, oauth2_server},
    state::AppState,
    upstream::REQUEST_ID,
};

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth gateway",
        description = "REST front of auth-svc. `/user/...` follows the go-zero tutorial (camelCase JSON, \
                       errors as {\"code\",\"msg\"}), and so do the operators' `/admin/...`; `/signup`, `/token`, `/protected` follow the FastAPI \
                       tutorial (OAuth2 password flow, errors as {\"detail\"}, on `/token` beside RFC 6749's \
                       {\"error\",\"error_description\"}); an account with a second factor (TOTP) \
                       finishes its login at `/user/mfa/verify` or with `/token`'s MFA grants; service accounts get tokens at `/token` \
                       (client credentials grant) and introspect and revoke them under `/oauth2/...`, errors \
                       as {\"error\",\"error_description\"}; `/.well-known/oauth-authorization-server` \
                       describes these endpoints (RFC 8414) and `/.well-known/jwks.json` \
                       publishes the keys that verify access tokens. Every 401 carries \
                       `WWW-Authenticate: Bearer`, but a refused client's (`invalid_client`) \
                       `WWW-Authenticate: Basic realm=\"auth-svc\"`; every response carries `x-request-id`.",
        // The workspace names no homepage or repository, and the project has no public address.
        contact(name = "auth-svc maintainers")
    ),
    // Relative: the paths are served by whichever origin served this document.
    servers((url = "/", description = "This gateway: the origin that serves this document")),
    modifiers(&SecuritySchemes),
    tags(
        (name = gozero::TAG, description = "go-zero `user-api`"),
        (name = oauth2::TAG, description = "FastAPI OAuth2 password flow"),
        (name = oauth2_server::TAG, description = "Token introspection (RFC 7662), revocation (RFC 7009) and \
            server metadata (RFC 8414)"),
        (name = jwks::TAG, description = "Public keys of the access tokens (RFC 7517)"),
        (name = health::TAG, description = "Probes"),
    )
)]
pub struct ApiDoc;

/// `bearer` for the go-zero routes; `oauth2` (password flow at `/token`) for `/protected`, so
/// the Swagger UI's "Authorize" button can log in; `clientBasic` for the service accounts'
/// client authentication at `/oauth2/…`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/token", Scopes::new()))])),
        );
        components.add_security_scheme(
            "clientBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A service account's client_id and client_secret, each form-urlencoded before they are \
                         joined by `:` and base64-encoded (RFC 6749 section 2.3.1). The endpoints take them as \
                         `client_id` and `client_secret` form fields too, but not both ways at once.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document `/openapi.json` serves: [`ApiDoc`] with the paths and schemas `routes` (what
/// `routes::api` collected) describes, completed by [`complete`].
pub fn document(routes: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(routes);
    complete(&mut document);
    document
}

/// The tags of the routes that make a `UserService` call (and so can answer 503 and 504).
const UPSTREAM_TAGS: [&str; 4] = [gozero::TAG, oauth2::TAG, oauth2_server::TAG, jwks::TAG];

/// Adds to every operation of `openapi` what the handlers' attributes leave to the shared code,
/// each only where the operation does not already say it in its own words:
///
/// - the error answers of the middleware: 408 (`http.request_timeout_ms`), 413
///   (`http.body_limit_bytes`, checked on every request), 431 (hyper, before any middleware: no
///   body) and 500 (a caught panic, or a gRPC status with no mapping);
/// - 503 and 504 on the routes that call auth-svc ([`UPSTREAM_TAGS`]);
/// - the "does not parse" status of the route's dialect on routes with a request body, and 401
///   on routes with a security requirement;
/// - the headers `ApiError` and the request-id layers always set: `x-request-id` on every
///   answer but the 431, `WWW-Authenticate` on every 401 (`Bearer`, or the client challenge
///   where clients authenticate: [`Dialect::challenges`]), `Retry-After` on every 429;
/// - `required` on every header a route's own attribute lists: a route lists only headers it
///   always sends with that answer;
/// - the optional `x-request-id` request header.
///
/// Error bodies are the route's [`Dialect`]: [`CodeError`] under `/user/…`, [`TokenError`] on
/// `/token`, [`OAuthError`] under `/oauth2/…`, [`Detail`] elsewhere.
fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut openapi.paths.paths {
        let dialect = Dialect::for_path(path);
        for operation in operations(item) {
            complete_operation(dialect, operation);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn complete_operation(dialect: Dialect, operation: &mut Operation) {
    let calls_upstream = operation.tags.iter().flatten().any(|tag| UPSTREAM_TAGS.contains(&tag.as_str()));
    let mut shared = vec![
        (StatusCode::REQUEST_TIMEOUT, "The request, body upload included, took longer than `http.request_timeout_ms`"),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Body larger than `http.body_limit_bytes`, or a request message larger than auth-svc's \
             `grpc.max_message_bytes`",
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal error; the message never carries detail"),
    ];
    if calls_upstream {
        shared.push((StatusCode::SERVICE_UNAVAILABLE, "auth-svc unavailable, retry later"));
        shared.push((StatusCode::GATEWAY_TIMEOUT, "auth-svc did not answer within `grpc.request_timeout_ms`"));
    }
    if operation.request_body.is_some() {
        shared.push((dialect.unparsable_body(), "Body does not parse, misses a field, or has the wrong content type"));
    }
    if operation.security.as_ref().is_some_and(|requirements| !requirements.is_empty()) {
        shared.push((StatusCode::UNAUTHORIZED, "Missing, invalid or expired access token"));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in shared {
        responses.entry(status.as_u16().to_string()).or_insert_with(|| RefOr::T(error_response(dialect, description)));
    }
    responses.entry(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16().to_string()).or_insert_with(|| {
        RefOr::T(Response::new(format!(
            "Request head (request line and headers) over {MAX_HEADER_BYTES} bytes; answered by the HTTP \
             server itself, with no body"
        )))
    });

    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        for header in response.headers.values_mut() {
            if let RefOr::T(header) = header {
                mark_required(header);
            }
        }
        let status = status.parse().ok().and_then(|code| StatusCode::from_u16(code).ok());
        if status == Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE) {
            continue;
        }
        response.headers.insert(REQUEST_ID.to_owned(), request_id_header());
        if status == Some(StatusCode::UNAUTHORIZED) {
            let challenges = dialect.challenges();
            let schema = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(challenges.iter().copied()));
            let description = challenges.join(", or ");
            response
                .headers
                .insert(header::WWW_AUTHENTICATE.as_str().to_owned(), required_header(schema, &description));
        }
        if status == Some(StatusCode::TOO_MANY_REQUESTS) {
            let schema = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
            let retry_after = required_header(schema, "Seconds to wait");
            response.headers.insert(header::RETRY_AFTER.as_str().to_owned(), retry_after);
        }
    }

    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let documented = parameters.iter().any(|parameter| matches!(parameter, RefOr::T(p) if p.name == REQUEST_ID));
    if !documented {
        parameters.push(RefOr::T(
            ParameterBuilder::new()
                .name(REQUEST_ID)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Kept and echoed if it is 1 to {MAX_REQUEST_ID_BYTES} characters of `[A-Za-z0-9._:-]`; any \
                     other value is replaced by a fresh UUID. Travels to auth-svc and into both logs."
                )))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ));
    }
}

/// A JSON error answer in the dialect's body.
fn error_response(dialect: Dialect, description: &str) -> Response {
    let schema = match dialect {
        Dialect::GoZero => CodeError::name(),
        Dialect::FastApi => Detail::name(),
        Dialect::TokenEndpoint => TokenError::name(),
        Dialect::OAuth2 => OAuthError::name(),
    };
    let mut response = Response::new(description);
    response.content.insert("application/json".to_owned(), RefOr::T(Content::new(Some(Ref::from_schema_name(schema)))));
    response
}

/// `x-request-id`: on every answer, the client's if it was sane (see
/// `middleware::sanitize_request_id_headers`), else a generated UUID.
fn request_id_header() -> RefOr<Header> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_BYTES}}}$")));
    required_header(schema, "The request id: the client's if usable, else a fresh UUID")
}

/// A header the answer always carries. utoipa's `Header` has no `required` field; OpenAPI's
/// does, and contract checkers (Schemathesis) only insist on required headers, so it goes in
/// through the extension map, which is serialised inline.
fn required_header(schema: impl Into<RefOr<Schema>>, description: &str) -> RefOr<Header> {
    let mut header = Header::new(schema);
    header.description = Some(description.to_owned());
    mark_required(&mut header);
    RefOr::T(header)
}

fn mark_required(header: &mut Header) {
    header.extensions.get_or_insert_with(Extensions::default).insert("required".to_owned(), true.into());
}

/// Serves the document and the UI.
pub fn docs_router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi).into()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::routes;

    fn doc() -> Value {
        serde_json::to_value(super::document(routes::api().into_openapi())).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations.push((path.clone(), method.clone(), operation.clone()));
            }
        }
        operations
    }

    #[test]
    fn every_operation_lists_the_shared_answers_in_its_dialect() {
        let doc = doc();
        for (path, method, operation) in operations(&doc) {
            let responses = operation["responses"].as_object().unwrap();
            let tags: Vec<&str> = operation["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            let calls_upstream = tags.iter().any(|tag| super::UPSTREAM_TAGS.contains(tag));
            let go_zero = path.starts_with("/user/") || path == "/user" || path.starts_with("/admin/");
            let mut expected = vec!["200", "408", "413", "431", "500"];
            if calls_upstream {
                expected.extend(["503", "504"]);
            }
            if operation.get("requestBody").is_some() {
                expected.push(if go_zero || path.starts_with("/oauth2/") { "400" } else { "422" });
            }
            if operation.get("security").is_some() {
                expected.push("401");
            }
            if path == "/readyz" {
                expected.push("503");
            }
            for status in expected {
                assert!(responses.contains_key(status), "{method} {path} does not list {status}");
            }
            let error_schema = match path.as_str() {
                _ if go_zero => "#/components/schemas/CodeError",
                "/token" => "#/components/schemas/TokenError",
                _ if path.starts_with("/oauth2/") => "#/components/schemas/OAuthError",
                _ => "#/components/schemas/Detail",
            };
            let challenges = match path.as_str() {
                "/token" => serde_json::json!(["Bearer", "Basic realm=\"auth-svc\""]),
                _ if path.starts_with("/oauth2/") => serde_json::json!(["Basic realm=\"auth-svc\""]),
                _ => serde_json::json!(["Bearer"]),
            };
            for (status, response) in responses {
                if status == "431" {
                    assert!(response.get("content").is_none(), "{method} {path} 431 has no body");
                    continue;
                }
                assert_eq!(response["headers"]["x-request-id"]["required"], true, "{method} {path} {status}");
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                if path == "/token" && status == "403" {
                    // The password grant's `mfa_required`: Auth0's body, not an RFC 6749 error.
                    assert_eq!(schema, "#/components/schemas/MfaRequired", "{method} {path} {status}");
                } else if status.starts_with('4') || (status.starts_with('5') && path != "/readyz") {
                    assert_eq!(schema, error_schema, "{method} {path} {status}");
                }
                if status == "401" {
                    assert_eq!(response["headers"]["www-authenticate"]["required"], true, "{method} {path}");
                    assert_eq!(response["headers"]["www-authenticate"]["schema"]["enum"], challenges, "{path}");
                }
                if status == "429" {
                    assert_eq!(response["headers"]["retry-after"]["required"], true, "{method} {path}");
                }
            }
            let parameters = operation["parameters"].as_array().unwrap();
            assert!(parameters.iter().any(|p| p["name"] == "x-request-id" && p["in"] == "header"), "{method} {path}");
        }
    }

    /// utoipa makes a handler's first doc paragraph the summary (the Swagger UI's title line) and
    /// the rest the description; Spectral's `spectral:oas` asks for both, and for `servers` and
    /// `info.contact`.
    #[test]
    fn every_operation_has_a_one_line_summary_and_a_description() {
        let doc = doc();
        for (path, method, operation) in operations(&doc) {
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(!summary.is_empty() && !summary.contains('\n'), "{method} {path}: summary {summary:?}");
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(!description.is_empty(), "{method} {path} has no description");
        }
        assert_eq!(doc["servers"][0]["url"], "/");
        assert!(doc["info"]["contact"]["name"].as_str().is_some_and(|name| !name.is_empty()), "{}", doc["info"]);
    }

    #[test]
    fn response_bodies_allow_no_other_fields() {
        let doc = doc();
        for name in [
            "CodeError",
            "Detail",
            "TokenError",
            "LoginResp",
            "RegisterResp",
            "UserInfoResp",
            "TokenResponse",
            "ClientTokenResponse",
            "OAuthError",
            "Introspection",
            "ServerMetadata",
            "Health",
            "JwkSet",
            "Jwk",
            "SessionResp",
            "SessionsResp",
            "EmptyResp",
            "UserRecordResp",
            "UsersPageResp",
            "MfaChallengeResp",
            "MfaChallenge",
            "MfaStatusResp",
            "TotpEnrolmentResp",
            "RecoveryCodesResp",
            "MfaRequired",
        ] {
            assert_eq!(doc["components"]["schemas"][name]["additionalProperties"], false, "{name}");
        }
        assert_eq!(doc["components"]["schemas"]["TokenType"]["enum"], serde_json::json!(["bearer"]));
        assert_eq!(
            doc["components"]["schemas"]["OAuthErrorCode"]["enum"],
            serde_json::json!([
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "invalid_target",
                "server_error",
                "temporarily_unavailable"
            ])
        );
        assert_eq!(
            doc["components"]["schemas"]["TokenError"]["required"],
            serde_json::json!(["detail", "error", "error_description"])
        );
        assert_eq!(doc["components"]["schemas"]["CodeError"]["properties"]["code"]["minimum"], 400);
    }

    /// Issue 14's routes list every status they can answer (the shared ones are checked above).
    #[test]
    fn the_account_routes_document_their_own_answers() {
        let doc = doc();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let responses = doc["paths"][path][method]["responses"].as_object();
            let mut statuses: Vec<String> =
                responses.unwrap_or_else(|| panic!("{method} {path}")).keys().cloned().collect();
            statuses.sort_unstable();
            statuses
        };
        let shared = ["408", "413", "431", "500", "503", "504", "401"];
        for (path, method, own) in [
            ("/user/sessions", "get", &["200"][..]),
            ("/user/sessions/{id}", "delete", &["200", "400", "404"]),
            ("/user/logout-all", "post", &["200", "400"]),
            ("/user/password", "post", &["200", "400", "429"]),
            ("/user", "delete", &["200", "400", "429"]),
            ("/admin/users", "get", &["200", "400", "403"]),
            ("/admin/users/{id}", "get", &["200", "400", "403", "404"]),
            ("/admin/users/{id}", "delete", &["200", "400", "403", "404"]),
            ("/admin/users/{id}/disable", "post", &["200", "400", "403", "404"]),
            ("/admin/users/{id}/enable", "post", &["200", "400", "403", "404"]),
            ("/admin/users/{id}/revoke-sessions", "post", &["200", "400", "403", "404"]),
        ] {
            let mut expected: Vec<String> = own.iter().chain(&shared).map(|s| (*s).to_owned()).collect();
            expected.sort_unstable();
            assert_eq!(statuses(path, method), expected, "{method} {path}");
        }
        let logout_all = &doc["paths"]["/user/logout-all"]["post"]["requestBody"];
        assert_ne!(logout_all["required"], true, "no body is `{{}}`: {logout_all}");
        let page_size = doc["paths"]["/admin/users"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "pageSize")
            .unwrap()
            .clone();
        assert_eq!(
            (&page_size["in"], &page_size["schema"]["minimum"], &page_size["schema"]["maximum"]),
            (&"query".into(), &0.into(), &100.into())
        );
        let id = &doc["paths"]["/admin/users/{id}"]["get"]["parameters"][0];
        assert_eq!((&id["name"], &id["in"], &id["schema"]["type"]), (&"id".into(), &"path".into(), &"integer".into()));
        let user = &doc["components"]["schemas"]["UserRecordResp"]["properties"];
        assert_eq!(user["lastLoginAt"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(user["createdAt"]["format"], "date-time");
        assert_eq!(doc["components"]["schemas"]["SessionResp"]["properties"]["id"]["format"], "uuid");
    }

    /// Issue 15's routes list every status they can answer, and `/token` its two answers.
    #[test]
    fn the_oauth_routes_document_their_own_answers() {
        let doc = doc();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let mut statuses: Vec<String> = doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}"))
                .keys()
                .cloned()
                .collect();
            statuses.sort_unstable();
            statuses
        };
        let shared = ["408", "413", "431", "500", "503", "504"];
        for (path, method, own) in [
            ("/token", "post", &["200", "400", "401", "403", "422", "429"][..]),
            ("/oauth2/introspect", "post", &["200", "400", "401", "403"]),
            ("/oauth2/revoke", "post", &["200", "400", "401"]),
            ("/.well-known/oauth-authorization-server", "get", &["200", "400"]),
        ] {
            let mut expected: Vec<String> = own.iter().chain(&shared).map(|s| (*s).to_owned()).collect();
            expected.sort_unstable();
            assert_eq!(statuses(path, method), expected, "{method} {path}");
        }
        let answers = &doc["components"]["schemas"]["TokenAnswer"]["oneOf"];
        assert_eq!(answers[0]["$ref"], "#/components/schemas/TokenResponse");
        assert_eq!(answers[1]["$ref"], "#/components/schemas/ClientTokenResponse");
        let form = &doc["components"]["schemas"]["TokenForm"];
        assert_eq!(form["properties"]["audience"]["type"], "array");
        assert!(form["properties"].get("authorization").is_none(), "{form}");
        assert!(!form["required"].as_array().is_some_and(|required| required.iter().any(|name| name == "audience")));
        let presented = &doc["components"]["schemas"]["PresentedTokenForm"];
        assert_eq!(presented["required"], serde_json::json!(["token"]));
        assert_eq!(doc["paths"]["/oauth2/introspect"]["post"]["security"], serde_json::json!([{"clientBasic": []}]));
        assert_eq!(doc["paths"]["/oauth2/revoke"]["post"]["security"], serde_json::json!([{}, {"clientBasic": []}]));
        assert_eq!(doc["components"]["securitySchemes"]["clientBasic"]["scheme"], "basic");
        assert!(doc["paths"]["/oauth2/revoke"]["post"]["responses"]["200"].get("content").is_none());
    }

    /// Issue 19's routes list every status they can answer, and the login its two answers.
    #[test]
    fn the_mfa_routes_document_their_own_answers() {
        let doc = doc();
        let statuses = |path: &str, method: &str| -> Vec<String> {
            let responses = doc["paths"][path][method]["responses"].as_object();
            let mut statuses: Vec<String> =
                responses.unwrap_or_else(|| panic!("{method} {path}")).keys().cloned().collect();
            statuses.sort_unstable();
            statuses
        };
        let shared = ["408", "413", "431", "500", "503", "504"];
        for (path, method, own) in [
            ("/user/mfa/verify", "post", &["200", "400", "401", "429"][..]),
            ("/user/mfa", "get", &["200", "400", "401"]),
            ("/user/mfa/totp", "post", &["200", "400", "401", "409", "429"]),
            ("/user/mfa/totp", "delete", &["200", "400", "401", "404", "429"]),
            ("/user/mfa/totp/confirm", "post", &["200", "400", "401", "404", "409", "429"]),
            ("/user/mfa/recovery-codes", "post", &["200", "400", "401", "404", "429"]),
            ("/admin/users/{id}/reset-mfa", "post", &["200", "400", "401", "403", "404"]),
        ] {
            let mut expected: Vec<String> = own.iter().chain(&shared).map(|s| (*s).to_owned()).collect();
            expected.sort_unstable();
            assert_eq!(statuses(path, method), expected, "{method} {path}");
        }
        assert!(doc["paths"]["/user/mfa/verify"]["post"].get("security").is_none(), "the second step has no bearer");
        let begin = &doc["paths"]["/user/mfa/totp"]["post"]["requestBody"];
        assert_eq!(begin["required"], true, "it needs the password: {begin}");
        let answers = &doc["components"]["schemas"]["LoginAnswer"]["oneOf"];
        assert_eq!(answers[0]["$ref"], "#/components/schemas/LoginResp");
        assert_eq!(answers[1]["$ref"], "#/components/schemas/MfaChallengeResp");
        for (path, method) in [
            ("/user/mfa/verify", "post"),
            ("/user/mfa/totp", "post"),
            ("/user/mfa/totp/confirm", "post"),
            ("/user/mfa/recovery-codes", "post"),
        ] {
            let ok = &doc["paths"][path][method]["responses"]["200"];
            assert_eq!(ok["headers"]["cache-control"]["required"], true, "{method} {path}: secrets are not cached");
        }
        let mfa_required = &doc["components"]["schemas"]["MfaRequired"];
        assert_eq!(
            mfa_required["required"],
            serde_json::json!(["detail", "error", "error_description", "mfa_token", "expires_in", "mfa_methods"])
        );
        assert_eq!(doc["components"]["schemas"]["MfaRequiredCode"]["enum"], serde_json::json!(["mfa_required"]));
    }

    #[test]
    fn headers_a_route_lists_are_required() {
        let doc = doc();
        let jwks = &doc["paths"]["/.well-known/jwks.json"]["get"]["responses"];
        for status in ["200", "304"] {
            for name in ["cache-control", "etag"] {
                assert_eq!(jwks[status]["headers"][name]["required"], true, "{status} {name}");
            }
        }
        assert!(jwks["304"].get("content").is_none());
        let login = &doc["paths"]["/user/login"]["post"]["responses"]["200"];
        assert_eq!(login["headers"]["cache-control"]["required"], true);
    }
}
