//! Property tests of the gateway's request decoding (issue 5, "Fuzzing"): arbitrary bytes as
//! the JSON bodies of the go-zero and FastAPI routes, as url-encoded and multipart `/token`
//! forms, arbitrary introspection and revocation forms with arbitrary client authentication,
//! and arbitrary `Authorization` and `x-request-id` values never panic (a panic would
//! be a 500) and always get an answer the OpenAPI document lists for the route, in the route's
//! JSON shape. The whole router (middleware included) runs in process, driven by
//! `tower::ServiceExt::oneshot`, in front of a scripted auth-svc that accepts every call, so
//! whatever is not a decoding error reaches a 200. Each property also checks the route against
//! the public decoding function a fuzz target calls (`decode_json`, `decode_token_form`), so
//! the two cannot drift apart.

use std::sync::OnceLock;

use axum::{
    Router,
    body::{Body, Bytes, to_bytes},
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header},
};
use gateway::{
    app::routes_with_docs,
    error::Dialect,
    extract::decode_json,
    middleware::{MAX_REQUEST_ID_BYTES, is_sane_request_id, with_middleware},
    openapi,
    routes::{
        self,
        gozero::{LoginReq, RefreshReq, RegisterReq, SetRoleReq},
        oauth2::{Grant, SignupRequest, decode_token_form},
    },
    state::AppState,
    upstream::MAX_AUTHORIZATION_BYTES,
};
use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::{Value, json};
use tonic_health::ServingStatus;
use tower::ServiceExt as _;

use crate::support::{
    gateway_config,
    scripted_upstream::{Behavior, ScriptedUpstream},
};

/// Small, so generated bodies land on both sides of it.
const BODY_LIMIT: usize = 1024;

/// The in-process gateway and the scripted auth-svc it calls, on a runtime of their own.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _upstream: ScriptedUpstream,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let upstream = runtime.block_on(ScriptedUpstream::start(Behavior::Answer, ServingStatus::Serving, None));
        let mut config = gateway_config(upstream.addr);
        config.http.body_limit_bytes = BODY_LIMIT;
        // The channel spawns its connection task on the runtime it is made in.
        let state = {
            let _entered = runtime.enter();
            AppState::new(&config).unwrap()
        };
        let router = with_middleware(routes_with_docs(state), &config);
        Self { runtime, router, _upstream: upstream }
    }

    /// Sends the request; status, headers and the body (which must be JSON, or empty: `null`).
    fn send(&self, request: Request<Body>) -> Result<(StatusCode, HeaderMap, Value), TestCaseError> {
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap();
            if bytes.is_empty() {
                return Ok((parts.status, parts.headers, Value::Null));
            }
            let body = serde_json::from_slice(&bytes).map_err(|_| {
                TestCaseError::fail(format!("{} with a body that is not JSON: {bytes:?}", parts.status))
            })?;
            Ok((parts.status, parts.headers, body))
        })
    }
}

fn runner(cases: u32) -> TestRunner {
    // No regression files: a failure prints its shrunk input, and the tree stays clean.
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Panics with proptest's report (the shrunk input) if the property failed.
fn check<T: std::fmt::Debug>(result: Result<(), proptest::test_runner::TestError<T>>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Status codes the OpenAPI document lists for `method path`.
fn documented(method: &str, path: &str) -> Vec<u16> {
    static DOC: OnceLock<Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| serde_json::to_value(openapi::document(routes::api().into_openapi())).unwrap());
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
        .keys()
        .map(|status| status.parse().unwrap())
        .collect()
}

/// The checks every answer passes: a documented status, never a 5xx (auth-svc answers every
/// call, so a 5xx can only be a gateway fault, such as a caught panic), a sane `x-request-id`,
/// and an error body in the route's dialect: exactly `{"code": <status>, "msg"}` under
/// `/user/…`, exactly `{"detail"}` elsewhere, with a message.
fn check_answer(
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(), TestCaseError> {
    prop_assert!(
        documented(method, path).contains(&status.as_u16()),
        "{method} {path} answered {status}, which the document does not list: {body}"
    );
    prop_assert!(!status.is_server_error(), "{method} {path} answered {status}: {body}");
    let request_id = headers.get("x-request-id");
    prop_assert!(request_id.is_some_and(is_sane_request_id), "x-request-id {request_id:?}");
    if status == StatusCode::UNAUTHORIZED {
        let challenge: &[u8] = if body["error"] == "invalid_client" { b"Basic realm=\"auth-svc\"" } else { b"Bearer" };
        prop_assert_eq!(headers.get(header::WWW_AUTHENTICATE).map(HeaderValue::as_bytes), Some(challenge));
    }
    if status.is_success() {
        return Ok(());
    }
    let fields = body.as_object().ok_or_else(|| TestCaseError::fail(format!("error body {body}")))?;
    match Dialect::for_path(path) {
        Dialect::GoZero => {
            prop_assert_eq!(fields.len(), 2, "{}", body);
            prop_assert_eq!(&body["code"], &json!(status.as_u16()));
            prop_assert!(body["msg"].as_str().is_some_and(|msg| !msg.is_empty()), "{}", body);
        }
        Dialect::FastApi => {
            prop_assert_eq!(fields.len(), 1, "{}", body);
            prop_assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{}", body);
        }
        Dialect::TokenEndpoint | Dialect::OAuth2 => {
            let token_endpoint = Dialect::for_path(path) == Dialect::TokenEndpoint;
            prop_assert_eq!(fields.len(), if token_endpoint { 3 } else { 2 }, "{}", body);
            if token_endpoint {
                prop_assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{}", body);
            }
            let codes =
                ["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "invalid_target"];
            prop_assert!(body["error"].as_str().is_some_and(|code| codes.contains(&code)), "{}", body);
            // RFC 6749 section 5.2: printable ASCII but `"` and `\`.
            let rfc_6749_text = |text: &str| text.bytes().all(|b| matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\');
            prop_assert!(body["error_description"].as_str().is_some_and(rfc_6749_text), "{}", body);
        }
    }
    Ok(())
}

/// A JSON value of a few levels, leaves of every JSON type (strings of any characters).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((any::<String>(), inner), 0..4).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Field names the routes read, and some they do not.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "username", "password", "refreshToken", "role", "refresh_token", "grant_type", "scope", "client_id",
            "client_secret", "audience", "resource", "token",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// The fields a route reads, each present most of the time, plus up to two others (which may
/// repeat one of them): mostly usable bodies, and every way of being almost usable.
fn fields<V: std::fmt::Debug + Clone>(
    names: &'static [&'static str],
    value: impl Strategy<Value = V> + Clone,
) -> impl Strategy<Value = Vec<(String, V)>> {
    let known = names
        .iter()
        .map(|name| {
            prop::option::weighted(0.85, value.clone()).prop_map(move |value| value.map(|v| (name.to_string(), v)))
        })
        .collect::<Vec<_>>();
    (known, vec((field_name(), value), 0..3))
        .prop_map(|(known, extra)| known.into_iter().flatten().chain(extra).collect())
}

/// Bodies a JSON route may receive: any bytes, any JSON, and objects close to the real ones,
/// whose fields have values of any type (mostly strings).
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let field_value = prop_oneof![6 => any::<String>().prop_map(Value::String), 1 => json_value()];
    prop_oneof![
        1 => vec(any::<u8>(), 0..1200),
        1 => json_value().prop_map(|value| serde_json::to_vec(&value).unwrap()),
        4 => fields(&["username", "password", "refreshToken", "role"], field_value).prop_map(|fields| {
            serde_json::to_vec(&Value::Object(fields.into_iter().collect())).unwrap()
        }),
    ]
}

/// `Content-Type` values: mostly JSON's, sometimes others, malformed or absent.
fn json_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(Some("application/json".to_owned())),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "Application/JSON", "application/problem+json", "text/json",
            "text/plain", "application/x-www-form-urlencoded", "application/json;;", "",
        ])
        .prop_map(|value| Some(value.to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
        1 => Just(None),
    ]
}

fn request(method: Method, path: &str, headers: &HeaderMap, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path).body(Body::from(body)).unwrap();
    *request.headers_mut() = headers.clone();
    request
}

/// The headers a real client sends with `body`: `Content-Type` (if any) and `Content-Length`.
fn body_headers(content_type: Option<&str>, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|value| HeaderValue::from_str(value).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers
}

#[test]
fn json_routes_answer_any_body_in_their_documented_shape() {
    let fixture = Fixture::new();
    let routes = vec!["/user/register", "/user/login", "/user/refresh", "/user/role", "/signup"];
    let strategy = (prop::sample::select(routes), json_content_type(), json_body());
    check(runner(128).run(&strategy, |(path, content_type, body)| {
        let mut headers = body_headers(content_type.as_deref(), &body);
        if path == "/user/role" {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        }
        let (status, answer_headers, answer) = fixture.send(request(Method::POST, path, &headers, body.clone()))?;
        check_answer("post", path, status, &answer_headers, &answer)?;
        if body.len() > BODY_LIMIT {
            prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            return Ok(());
        }
        // The route decodes exactly as the public function does; what the scripted auth-svc
        // then answers.
        let dialect = Dialect::for_path(path);
        let pair = json!({"accessToken": "a.b.c", "refreshToken": "d.e.f", "expiresIn": 60});
        let decoded = match path {
            "/user/register" => decode_json::<RegisterReq>(dialect, &headers, &body)
                .map(|_| json!({"id": 7, "username": "fake", "role": "admin"})),
            "/user/login" => decode_json::<LoginReq>(dialect, &headers, &body).map(|_| pair),
            "/user/refresh" => decode_json::<RefreshReq>(dialect, &headers, &body).map(|_| pair),
            "/user/role" => decode_json::<SetRoleReq>(dialect, &headers, &body)
                .map(|set| json!({"id": 7, "username": set.username, "role": set.role})),
            _ => decode_json::<SignupRequest>(dialect, &headers, &body)
                .map(|_| json!({"message": "User created successfully"})),
        };
        match decoded {
            Ok(expected) => {
                prop_assert_eq!(status, StatusCode::OK, "{}", answer);
                prop_assert_eq!(answer, expected);
            }
            Err(error) => {
                prop_assert_eq!(status, dialect.unparsable_body(), "{}", answer);
                prop_assert_eq!(status, error.status());
            }
        }
        Ok(())
    }));
}

/// `/token`'s answer to a form, checked against `decode_token_form` and `TokenForm::grant`.
fn check_token(fixture: &Fixture, headers: &HeaderMap, body: Vec<u8>) -> Result<(), TestCaseError> {
    let (status, answer_headers, answer) = fixture.send(request(Method::POST, "/token", headers, body.clone()))?;
    check_answer("post", "/token", status, &answer_headers, &answer)?;
    if body.len() > BODY_LIMIT {
        prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        return Ok(());
    }
    let decoded = futures::executor::block_on(decode_token_form(headers, Bytes::from(body), BODY_LIMIT))
        .and_then(|form| form.grant());
    match decoded {
        Ok(Grant::ClientCredentials { scopes, .. }) => {
            prop_assert_eq!(status, StatusCode::OK, "{}", answer);
            // The scripted auth-svc grants what was asked for, or two scopes when nothing was.
            let scope = if scopes.is_empty() { "introspect orders:read".to_owned() } else { scopes.join(" ") };
            let expected = json!({"access_token": "c.d.e", "token_type": "bearer", "expires_in": 300, "scope": scope});
            prop_assert_eq!(answer, expected);
        }
        Ok(_) => {
            prop_assert_eq!(status, StatusCode::OK, "{}", answer);
            let expected =
                json!({"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60, "refresh_token": "d.e.f"});
            prop_assert_eq!(answer, expected);
        }
        Err(error) => {
            prop_assert_eq!(status, error.status(), "{}", answer);
            prop_assert_eq!(&answer["error"], &json!(error.oauth_error()), "{}", answer);
            let expected_errors: &[&str] = match status {
                StatusCode::BAD_REQUEST => &["unsupported_grant_type", "invalid_request", "invalid_target"],
                StatusCode::UNAUTHORIZED => &["invalid_client"],
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => &["invalid_request"],
                _ => return Err(TestCaseError::fail(format!("{status}: {answer}"))),
            };
            prop_assert!(expected_errors.iter().any(|code| answer["error"] == *code), "{}", answer);
        }
    }
    Ok(())
}

/// Form fields: the names `/token` reads (and others), values of any characters; `grant_type`
/// mostly absent or one of the five grants (a client credentials grant mostly with a client).
fn form_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let grant_type = prop_oneof![
        4 => Just(None),
        6 => prop::sample::select(vec!["password", "refresh_token", "client_credentials"])
            .prop_map(|grant| Some(grant.to_owned())),
        2 => prop::sample::select(vec![
            "urn:auth-svc:params:oauth:grant-type:mfa-otp",
            "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code",
        ])
        .prop_map(|grant| Some(grant.to_owned())),
        1 => any::<String>().prop_map(Some),
    ];
    let names = &[
        "username",
        "password",
        "refresh_token",
        "client_id",
        "scope",
        "audience",
        "resource",
        "mfa_token",
        "otp",
        "recovery_code",
    ];
    (grant_type, fields(names, any::<String>())).prop_map(|(grant_type, mut fields)| {
        if let Some(grant_type) = grant_type {
            fields.push(("grant_type".to_owned(), grant_type));
        }
        fields
    })
}

#[test]
fn token_answers_any_urlencoded_body_in_its_documented_shape() {
    let fixture = Fixture::new();
    let body = prop_oneof![
        1 => vec(any::<u8>(), 0..1200),
        3 => form_fields().prop_map(|fields| serde_urlencoded::to_string(fields).unwrap().into_bytes()),
    ];
    let content_type = prop::sample::select(vec![
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;",
    ]);
    check(runner(96).run(&(content_type, body), |(content_type, body)| {
        check_token(&fixture, &body_headers(Some(content_type), &body), body)
    }));
}

/// A multipart body of `fields` (values as raw bytes, so not always UTF-8), cut short at `cut`
/// bytes if given.
fn multipart(boundary: &str, fields: &[(String, Vec<u8>)], cut: Option<usize>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    if let Some(cut) = cut {
        body.truncate(cut);
    }
    body
}

#[test]
fn token_answers_any_multipart_body_in_its_documented_shape() {
    let fixture = Fixture::new();
    let boundary = prop_oneof![3 => Just("XyZ".to_owned()), 1 => "[!-~]{0,20}"];
    // Values as raw bytes, so not always UTF-8; names without the characters that end one.
    let fields = (form_fields(), vec(any::<u8>(), 0..40), 0_usize..8).prop_map(|(fields, raw, at)| {
        let mut fields: Vec<(String, Vec<u8>)> =
            fields.into_iter().map(|(name, value)| (name.replace(['"', '\r', '\n'], ""), value.into_bytes())).collect();
        if let Some((_, value)) = fields.get_mut(at) {
            *value = raw;
        }
        fields
    });
    let cut = prop::option::weighted(0.2, 0_usize..400);
    let body = prop_oneof![
        1 => vec(any::<u8>(), 0..1200),
        4 => (fields, cut).prop_map(|(fields, cut)| multipart("XyZ", &fields, cut)),
    ];
    check(runner(96).run(&(boundary, body), |(boundary, body)| {
        let content_type = format!("multipart/form-data; boundary={boundary}");
        check_token(&fixture, &body_headers(Some(&content_type), &body), body)
    }));
}

/// Header values of any bytes a header may hold (no NUL, CR or LF), short or right around
/// `limit` bytes; some with the Bearer scheme.
fn header_value(limit: usize) -> impl Strategy<Value = HeaderValue> {
    let raw = prop_oneof![
        3 => vec(any::<u8>(), 0..64),
        1 => (limit - 8..=limit + 8).prop_map(|len| vec![b'a'; len]),
    ];
    let scheme = prop::sample::select(vec!["", "", "Bearer ", "bearer ", "Basic ", "Bearer  ", "Bearer"]);
    (scheme, raw)
        .prop_map(|(scheme, raw)| {
            let mut value = scheme.as_bytes().to_vec();
            value.extend(raw.into_iter().filter(|&b| b != 0 && b != b'\r' && b != b'\n'));
            value
        })
        .prop_filter_map("not a header value", |bytes| HeaderValue::from_bytes(&bytes).ok())
}

/// `Authorization` values for client authentication: HTTP Basic of arbitrary bytes (which may
/// or may not decode into `id:secret`), or any header value.
fn client_authorization() -> impl Strategy<Value = Option<HeaderValue>> {
    use base64::Engine as _;
    let basic = vec(any::<u8>(), 0..48).prop_map(|raw| {
        HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))).unwrap()
    });
    let colon = ("[ -~]{0,12}", "[ -~]{0,12}").prop_map(|(id, secret)| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    });
    prop_oneof![
        2 => Just(None),
        2 => colon.prop_map(Some),
        1 => basic.prop_map(Some),
        1 => header_value(64).prop_map(Some),
    ]
}

/// `/oauth2/introspect` and `/oauth2/revoke` answer any form and any client authentication with
/// a documented status; the scripted auth-svc accepts every call, so what is not the gateway's
/// refusal is a 200 (introspection: the scripted `{"active": false}`; revocation: no body).
#[test]
fn introspection_and_revocation_answer_any_form_and_client_authentication() {
    let fixture = Fixture::new();
    let form = fields(&["token", "token_type_hint", "client_id", "client_secret"], any::<String>())
        .prop_map(|fields| serde_urlencoded::to_string(fields).unwrap().into_bytes());
    let body = prop_oneof![1 => vec(any::<u8>(), 0..200), 4 => form];
    let strategy = (prop::sample::select(vec!["/oauth2/introspect", "/oauth2/revoke"]), client_authorization(), body);
    check(runner(128).run(&strategy, |(path, authorization, body)| {
        let mut headers = body_headers(Some("application/x-www-form-urlencoded"), &body);
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value);
        }
        let (status, answer_headers, answer) = fixture.send(request(Method::POST, path, &headers, body))?;
        check_answer("post", path, status, &answer_headers, &answer)?;
        if status == StatusCode::OK {
            let expected = if path == "/oauth2/introspect" { json!({"active": false}) } else { Value::Null };
            prop_assert_eq!(answer, expected);
        } else {
            prop_assert!(
                [StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED, StatusCode::PAYLOAD_TOO_LARGE].contains(&status),
                "{status}: {answer}"
            );
        }
        Ok(())
    }));
}

#[test]
fn authenticated_routes_answer_any_authorization_and_request_id() {
    let fixture = Fixture::new();
    let routes = vec![("get", "/user/info"), ("post", "/user/logout"), ("get", "/protected")];
    let authorization = prop::option::weighted(0.9, header_value(MAX_AUTHORIZATION_BYTES));
    let request_ids = vec(header_value(MAX_REQUEST_ID_BYTES), 0..3);
    let strategy = (prop::sample::select(routes), authorization, request_ids);
    check(runner(128).run(&strategy, |((method, path), authorization, request_ids)| {
        let mut headers = HeaderMap::new();
        if let Some(value) = &authorization {
            headers.insert(header::AUTHORIZATION, value.clone());
        }
        for id in &request_ids {
            headers.append("x-request-id", id.clone());
        }
        let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, answer_headers, answer) = fixture.send(request(http_method, path, &headers, Vec::new()))?;
        check_answer(method, path, status, &answer_headers, &answer)?;

        // Too long is refused by the gateway itself; anything else goes to auth-svc, which
        // here accepts everything.
        let too_long = authorization.as_ref().is_some_and(|value| value.len() > MAX_AUTHORIZATION_BYTES);
        if too_long {
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", answer);
        } else {
            prop_assert_eq!(status, StatusCode::OK, "{}", answer);
        }

        // The request id: the client's if it sent exactly one sane one (or several whose first
        // is sane), else a fresh UUID.
        let echoed = answer_headers.get("x-request-id").unwrap();
        match request_ids.first().filter(|first| is_sane_request_id(first)) {
            Some(first) => prop_assert_eq!(echoed, first),
            None => prop_assert_eq!(echoed.len(), 36, "{:?}", echoed),
        }
        Ok(())
    }));
}
