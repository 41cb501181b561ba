//! The FastAPI routes: OAuth2 password flow, errors as {"detail"} (on `/token` beside RFC 6749's
//! `error` and `error_description`).

use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};

use crate::support::{
    auth_svc::{TestApp, spawn_app},
    cases::{
        Auth,
        Call::{Form, Get, Json, Multipart, Raw},
        Message::{Contains, Is, OAuth, Starts},
        check, credentials,
    },
    header, is_jwt, read,
};

/// `/token`'s answer to wrong credentials, as the tutorial words it.
const INCORRECT: &str = "Incorrect username or password";

async fn signup(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json("/signup", &json!({"username": username, "password": password})).await
}

async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(app.url("/token")).form(form).send().await.unwrap()
}

/// Checks a successful `/token` answer and returns its body.
async fn assert_token_response(response: reqwest::Response) -> Value {
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    let keys: Vec<_> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"]);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(is_jwt(body["access_token"].as_str().unwrap()));
    assert!(is_jwt(body["refresh_token"].as_str().unwrap()));
    body
}

#[tokio::test]
async fn signup_creates_the_account() {
    let app = spawn_app().await;
    let (status, _, body) = read(signup(&app, "licat", "licat-password").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "User created successfully"}));
}

/// licat's first token pair, from the password grant.
async fn first_pair(app: &TestApp) -> Value {
    assert_token_response(token_form(app, &[("username", "licat"), ("password", "licat-password")]).await).await
}

/// `/protected` greets the bearer of `access`.
async fn assert_greets_licat(app: &TestApp, access: &str) {
    let (status, _, body) = read(app.get_with_token("/protected", access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello licat! This is a protected route"}));
}

#[tokio::test]
async fn token_takes_the_password_grant_urlencoded_or_multipart() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let url = app.url("/token");
    let forms: [&[(&str, &str)]; 2] = [
        &[("username", "licat"), ("password", "licat-password")],
        &[("grant_type", "password"), ("username", "licat"), ("password", "licat-password")],
    ];
    let multipart = multipart::Form::new().text("username", "licat").text("password", "licat-password");
    let requests = forms.map(|form| app.client.post(&url).form(form));
    for request in requests.into_iter().chain([app.client.post(&url).multipart(multipart)]) {
        assert_token_response(request.send().await.unwrap()).await;
    }
}

#[tokio::test]
async fn token_takes_the_refresh_grant() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let first = first_pair(&app).await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let second =
        assert_token_response(token_form(&app, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await)
            .await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_greets_licat(&app, second["access_token"].as_str().unwrap()).await;
}

#[tokio::test]
async fn protected_greets_the_bearer() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    assert_greets_licat(&app, first_pair(&app).await["access_token"].as_str().unwrap()).await;
}

/// CONTRACT.md: `/protected/`, as the tutorial's browser example writes it, reaches `/protected`.
#[tokio::test]
async fn protected_with_a_trailing_slash_answers_as_protected() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let access = first_pair(&app).await["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = read(app.get_with_token("/protected/", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello licat! This is a protected route"}));
    let cases = [
        (Get("/protected/", Auth::None), 401, Is("Not authenticated")),
        (Get("/protected/", Auth::Bearer("garbage")), 401, Is("Invalid token")),
    ];
    check(&app, &cases).await;
}

#[tokio::test]
async fn both_families_share_accounts_and_tokens() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let (access, _) = app.login("licat", "licat-password").await;
    assert_greets_licat(&app, &access).await;
    let (status, _, body) = read(app.get_with_token("/user/info", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1, "username": "licat", "role": "user"}));
}

/// Every refusal of `/signup` and `/protected`: its status and `{"detail"}` body, nothing else
/// (every 401 with `WWW-Authenticate: Bearer`). licat has signed up and holds a token pair.
#[tokio::test]
async fn refusals_answer_in_the_fastapi_dialect() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let pair = first_pair(&app).await;
    let refresh = pair["refresh_token"].as_str().unwrap();
    let cases = [
        // `/signup`: a taken username is 400, as the tutorial says; the policy; a bad body is 422.
        (Json("/signup", credentials("licat", "another-password")), 400, Is("Username already exists")),
        (Json("/signup", credentials("bob", "1234")), 400, Is("password must be at least 8 characters")),
        (
            Raw("/signup", Some("application/json"), "{not json"),
            422,
            Starts("Failed to parse the request body as JSON"),
        ),
        (Json("/signup", json!({"username": "licat"})), 422, Contains("missing field `password`")),
        // `/protected` without a bearer token, then with bad ones.
        (Get("/protected", Auth::None), 401, Is("Not authenticated")),
        (Get("/protected", Auth::Basic("licat", "pw")), 401, Is("Not authenticated")),
        (Get("/protected", Auth::Bearer("garbage")), 401, Is("Invalid token")),
        (Get("/protected", Auth::Bearer("a.b.c")), 401, Is("Invalid token")),
        (Get("/protected", Auth::Bearer(refresh)), 401, Is("Invalid token")),
    ];
    check(&app, &cases).await;
}

/// Every refusal of `/token` (RFC 6749 section 5.2): the tutorial's `detail` beside `error` and
/// `error_description`, with the contract's statuses (every 401 with `WWW-Authenticate: Bearer`,
/// but `Basic` for `invalid_client`).
#[tokio::test]
async fn token_refusals_carry_rfc_6749_errors() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let missing_password = "missing field `password`";
    let not_a_form = "expected a form: application/x-www-form-urlencoded or multipart/form-data";
    let unsupported = "grant_type must be `password`, `refresh_token`, `client_credentials`, \
        `urn:auth-svc:params:oauth:grant-type:mfa-otp` or `urn:auth-svc:params:oauth:grant-type:mfa-recovery-code`";
    let no_client = "client authentication required: HTTP Basic, or client_id and client_secret";
    let cases = [
        // Wrong credentials, in either form encoding, and an unusable refresh token: 401 invalid_grant.
        (
            Form("/token", &[("username", "licat"), ("password", "wrong-password")]),
            401,
            OAuth("invalid_grant", INCORRECT),
        ),
        (
            Form("/token", &[("username", "nobody"), ("password", "licat-password")]),
            401,
            OAuth("invalid_grant", INCORRECT),
        ),
        (
            Multipart("/token", &[("username", "licat"), ("password", "wrong-password")]),
            401,
            OAuth("invalid_grant", INCORRECT),
        ),
        (
            Form("/token", &[("grant_type", "refresh_token"), ("refresh_token", "not.a.token")]),
            401,
            OAuth("invalid_grant", "invalid refresh token"),
        ),
        // A form that misses a field, or no form at all: 422 invalid_request.
        (Form("/token", &[("username", "licat")]), 422, OAuth("invalid_request", missing_password)),
        (
            Form("/token", &[("grant_type", "refresh_token")]),
            422,
            OAuth("invalid_request", "missing field `refresh_token`"),
        ),
        (Json("/token", credentials("licat", "licat-password")), 422, OAuth("invalid_request", not_a_form)),
        // A username auth-svc's policy refuses: 400 invalid_request.
        (
            Form("/token", &[("username", ""), ("password", "licat-password")]),
            400,
            OAuth("invalid_request", "username must not be empty"),
        ),
        // The client credentials grant without client authentication: 401 invalid_client, with
        // `WWW-Authenticate: Basic`.
        (Form("/token", &[("grant_type", "client_credentials")]), 401, OAuth("invalid_client", no_client)),
        // A grant type the server does not support: 400 unsupported_grant_type.
        (
            Form("/token", &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", "x")]),
            400,
            OAuth("unsupported_grant_type", unsupported),
        ),
    ];
    check(&app, &cases).await;
}

/// The fields real OAuth 2.0 clients add to a password grant (`client_id`, `client_secret`,
/// `scope`) and any other are accepted and ignored.
#[tokio::test]
async fn token_ignores_the_fields_clients_add() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let form = [
        ("grant_type", "password"),
        ("username", "licat"),
        ("password", "licat-password"),
        ("client_id", "tutorial-app"),
        ("client_secret", "not-checked"),
        ("scope", "read write"),
        ("audience", "https://api.example"),
    ];
    assert_token_response(token_form(&app, &form).await).await;
    let multipart = form.iter().fold(multipart::Form::new(), |multipart, &(name, value)| multipart.text(name, value));
    assert_token_response(app.client.post(app.url("/token")).multipart(multipart).send().await.unwrap()).await;
}
