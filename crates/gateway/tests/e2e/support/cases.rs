//! Table-driven requests: a test lists [`Case`]s (what to send, the status and the message that
//! must come back) and [`check`] sends each in turn against one gateway ([`Target`]: in front of
//! the real auth-svc or of the scripted one).

use gateway::error::Dialect;
use reqwest::{Client, Method, RequestBuilder, StatusCode, multipart};
use serde_json::{Value, json};

use super::{auth_svc::TestApp, header, read, scripted_upstream::Fixture};

/// A gateway that cases are sent to.
pub trait Target {
    fn client(&self) -> &Client;
    fn url(&self, path: &str) -> String;
}

impl Target for TestApp {
    fn client(&self) -> &Client {
        &self.client
    }

    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

impl Target for Fixture {
    fn client(&self) -> &Client {
        &self.client
    }

    fn url(&self, path: &str) -> String {
        Fixture::url(self, path)
    }
}

/// One request a case sends.
#[derive(Debug)]
pub enum Call<'a> {
    /// POST with a JSON body (`Content-Type: application/json`).
    Json(&'static str, Value),
    /// POST with a body as it is, with `Content-Type` only if given.
    Raw(&'static str, Option<&'static str>, &'static str),
    /// POST with a url-encoded form.
    Form(&'static str, &'a [(&'a str, &'a str)]),
    /// POST with a url-encoded form and `Authorization` as given (client authentication).
    FormWith(&'static str, Auth<'a>, &'a [(&'a str, &'a str)]),
    /// POST with a multipart form of text fields.
    Multipart(&'static str, &'a [(&'a str, &'a str)]),
    /// GET with `Authorization` as given.
    Get(&'static str, Auth<'a>),
    /// Any method with `Authorization` as given, and a JSON body if one is given.
    Send(Method, &'static str, Auth<'a>, Option<Value>),
}

/// The `Authorization` header a [`Call`] sends.
#[derive(Debug)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    /// The header's value exactly as given.
    Raw(&'a str),
}

/// The error message (go-zero's `msg`, FastAPI's `detail`) the answer must carry.
#[derive(Debug)]
pub enum Message {
    /// The whole body is exactly the dialect's error body with this message (not on `/token`,
    /// whose body also names an RFC 6749 code: [`Message::OAuth`]).
    Is(&'static str),
    /// `/token`'s whole body: this RFC 6749 `error`, and this message as both `detail` and
    /// `error_description`; under `/oauth2/…`, the `error` and `error_description` alone.
    OAuth(&'static str, &'static str),
    /// The message starts with this (and a go-zero `code` repeats the status).
    Starts(&'static str),
    /// The message contains this (and a go-zero `code` repeats the status).
    Contains(&'static str),
}

/// A request, the status of its answer, and the message in it.
pub type Case<'a> = (Call<'a>, u16, Message);

/// `{"username", "password"}`, the body of every JSON sign-up and login.
pub fn credentials(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// Sends every case in order against `app` and checks its answer; every 401 must also carry
/// `WWW-Authenticate`: `Basic realm="auth-svc"` for a refused client (`invalid_client`), else
/// `Bearer`.
pub async fn check(app: &impl Target, cases: &[Case<'_>]) {
    for (call, status, message) in cases {
        let (path, request) = request(app, call);
        let (got, headers, body) = read(request.send().await.unwrap()).await;
        let status = StatusCode::from_u16(*status).unwrap();
        assert_eq!(got, status, "{call:?}: {body}");
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if body["error"] == "invalid_client" { "Basic realm=\"auth-svc\"" } else { "Bearer" };
            assert_eq!(header(&headers, "www-authenticate"), challenge, "{call:?}");
        }
        let dialect = Dialect::for_path(path);
        let go_zero = dialect == Dialect::GoZero;
        let text = body[if go_zero { "msg" } else { "detail" }].as_str().unwrap_or_default();
        match message {
            Message::Is(expected) => {
                assert_ne!(dialect, Dialect::TokenEndpoint, "{call:?}: use Message::OAuth");
                let expected = if go_zero {
                    json!({"code": status.as_u16(), "msg": expected})
                } else {
                    json!({"detail": expected})
                };
                assert_eq!(body, expected, "{call:?}");
            }
            Message::OAuth(error, detail) => match dialect {
                Dialect::TokenEndpoint => {
                    let expected = json!({"detail": detail, "error": error, "error_description": detail});
                    assert_eq!(body, expected, "{call:?}");
                }
                Dialect::OAuth2 => assert_eq!(body, json!({"error": error, "error_description": detail}), "{call:?}"),
                _ => panic!("{call:?}: Message::OAuth is for /token and /oauth2/…"),
            },
            Message::Starts(start) => assert!(text.starts_with(start), "{call:?}: {body}"),
            Message::Contains(part) => assert!(text.contains(part), "{call:?}: {body}"),
        }
        if go_zero {
            assert_eq!(body["code"], status.as_u16(), "{call:?}");
        }
    }
}

fn request(app: &impl Target, call: &Call<'_>) -> (&'static str, RequestBuilder) {
    let post = |path: &'static str| app.client().post(app.url(path));
    match call {
        Call::Json(path, body) => (path, post(path).json(body)),
        Call::Raw(path, None, body) => (path, post(path).body(*body)),
        Call::Raw(path, Some(content_type), body) => {
            (path, post(path).header("content-type", *content_type).body(*body))
        }
        Call::Form(path, fields) => (path, post(path).form(fields)),
        Call::FormWith(path, auth, fields) => (path, authorize(post(path), auth).form(fields)),
        Call::Multipart(path, fields) => {
            let form = fields
                .iter()
                .fold(multipart::Form::new(), |form, &(name, value)| form.text(name.to_owned(), value.to_owned()));
            (path, post(path).multipart(form))
        }
        Call::Get(path, auth) => (path, authorize(app.client().get(app.url(path)), auth)),
        Call::Send(method, path, auth, body) => {
            let request = authorize(app.client().request(method.clone(), app.url(path)), auth);
            (path, if let Some(body) = body { request.json(body) } else { request })
        }
    }
}

fn authorize(request: RequestBuilder, auth: &Auth<'_>) -> RequestBuilder {
    match auth {
        Auth::None => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        Auth::Raw(value) => request.header("authorization", *value),
    }
}
