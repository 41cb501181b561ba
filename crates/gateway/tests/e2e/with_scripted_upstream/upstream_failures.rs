//! The gRPC statuses a healthy auth-svc does not produce on demand (RESOURCE_EXHAUSTED,
//! INTERNAL, a stalled call, NOT_SERVING, a crash mid-call), scripted, and the HTTP answer each
//! becomes, in the route's dialect and as the OpenAPI document lists it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    Gateway, client, gateway_config, header, read,
    scripted_upstream::{Behavior, start, start_with},
};

/// A throttle or a full hashing queue (RESOURCE_EXHAUSTED with `retry-after`) on each route
/// that registers or logs in: 429 with auth-svc's `Retry-After`, in the route's dialect (`/token`:
/// `invalid_request`, RFC 6749 having no code for throttling).
#[tokio::test]
async fn resource_exhausted_is_429_with_retry_after() {
    let behavior = Behavior::Fail { code: Code::ResourceExhausted, message: "slow down", retry_after: Some("17") };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    // auth-svc's own words (a throttle and a busy server read differently).
    let gozero = json!({"code": 429, "msg": "slow down"});
    let fastapi = json!({"detail": "slow down"});
    let token = json!({"detail": "slow down", "error": "invalid_request", "error_description": "slow down"});
    for (path, expected) in
        [("/user/register", &gozero), ("/user/login", &gozero), ("/signup", &fastapi), ("/token", &token)]
    {
        let request = if path == "/token" {
            client.post(fixture.url(path)).form(&[("username", "a"), ("password", "b")])
        } else {
            client.post(fixture.url(path)).json(&credentials)
        };
        let (status, headers, body) = read(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(header(&headers, "retry-after"), "17", "{path}");
        assert_eq!(&body, expected, "{path}");
    }
}

#[tokio::test]
async fn internal_errors_carry_no_detail() {
    let behavior =
        Behavior::Fail { code: Code::Internal, message: "pool timed out at db.internal:5432", retry_after: None };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let client = client();
    let response = client.post(fixture.url("/signup")).json(&json!({"username": "a", "password": "b"})).send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"detail": "internal server error"}));

    let response = client.post(fixture.url("/user/logout")).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"code": 500, "msg": "internal server error"}));

    let response = client.post(fixture.url("/token")).form(&[("username", "a"), ("password", "b")]).send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let expected = "internal server error";
    assert_eq!(body, json!({"detail": expected, "error": "server_error", "error_description": expected}));
}

/// auth-svc's INVALID_ARGUMENT on `/token` (a username or password its policy refuses): 400
/// `invalid_request` with auth-svc's words.
#[tokio::test]
async fn a_policy_error_on_token_is_invalid_request() {
    let behavior = Behavior::Fail { code: Code::InvalidArgument, message: "password too long", retry_after: None };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let form = [("username", "a"), ("password", "b")];
    let (status, _, body) = read(client().post(fixture.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let expected = "password too long";
    assert_eq!(body, json!({"detail": expected, "error": "invalid_request", "error_description": expected}));
}

#[tokio::test]
async fn a_stalled_call_is_504() {
    let fixture = start(Behavior::Stall, ServingStatus::Serving, 200).await;
    let client = client();
    let response = client.get(fixture.url("/user/info")).bearer_auth("x.y.z").send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, json!({"code": 504, "msg": "auth service did not answer in time"}));

    let form = [("username", "a"), ("password", "b")];
    let (status, _, body) = read(client.post(fixture.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let expected = "auth service did not answer in time";
    assert_eq!(body, json!({"detail": expected, "error": "temporarily_unavailable", "error_description": expected}));
}

#[tokio::test]
async fn readyz_is_503_while_auth_svc_is_not_serving() {
    let fixture = start(Behavior::Answer, ServingStatus::NotServing, 5_000).await;
    let (status, _, body) = read(client().get(fixture.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "unavailable"}));
}

#[tokio::test]
async fn resource_exhausted_without_a_usable_retry_after_still_says_when() {
    for retry_after in [None, Some("soon")] {
        let behavior = Behavior::Fail { code: Code::ResourceExhausted, message: "slow down", retry_after };
        let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
        let response = client()
            .post(fixture.url("/user/login"))
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{retry_after:?}");
        assert_eq!(header(&headers, "retry-after"), "1", "{retry_after:?}");
        assert_eq!(body, json!({"code": 429, "msg": "slow down"}));
    }
}

/// auth-svc dies while a call is in flight (its runtime, and with it every socket, is dropped):
/// tonic reports a transport failure, which is an outage (503), not a gateway bug (500).
#[tokio::test]
async fn auth_svc_dying_mid_call_is_503() {
    for (path, expected) in [
        ("/user/login", json!({"code": 503, "msg": "auth service unavailable, retry later"})),
        (
            "/token",
            json!({"detail": "auth service unavailable, retry later", "error": "temporarily_unavailable",
                "error_description": "auth service unavailable, retry later"}),
        ),
    ] {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let fixture = start_with(Behavior::Stall, ServingStatus::Serving, Some(&runtime), |_| {}).await;
        let request = if path == "/token" {
            client().post(fixture.url(path)).form(&[("username", "a"), ("password", "b")])
        } else {
            client().post(fixture.url(path)).json(&json!({"username": "a", "password": "b"}))
        };
        let call = tokio::spawn(request.send());
        let started = std::time::Instant::now();
        while fixture.calls() == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "the call never reached auth-svc");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runtime.shutdown_background();
        let (status, _, body) = read(call.await.unwrap().unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body, expected, "{path}");
    }
}

/// Every answer a route gives to the statuses auth-svc can answer its call with (docs/api.md's
/// lists per RPC, plus a stalled call and an auth-svc that is gone) is one the OpenAPI document
/// lists for that route, with the documented headers. A healthy stack, which is all
/// Schemathesis sees, never shows most of these.
#[tokio::test]
async fn every_answer_to_an_auth_svc_failure_is_documented() {
    let doc = serde_json::to_value(gateway::openapi::document(gateway::routes::api().into_openapi())).unwrap();
    // (method, path, the RPC's failure codes)
    // OUT_OF_RANGE: a request message over auth-svc's size limit, on every route with a body.
    let account_codes = [
        Code::InvalidArgument,
        Code::AlreadyExists,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let login_codes = [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let refresh_codes =
        [Code::InvalidArgument, Code::Unauthenticated, Code::OutOfRange, Code::Unavailable, Code::Internal];
    let token_codes = [Code::Unauthenticated, Code::Unavailable, Code::Internal];
    let role_codes = [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let jwks_codes = [Code::Unavailable, Code::Internal];
    let routes: [(&str, &str, &[Code]); 10] = [
        ("post", "/user/register", &account_codes),
        ("post", "/signup", &account_codes),
        ("post", "/user/login", &login_codes),
        ("post", "/token", &login_codes),
        ("post", "/user/refresh", &refresh_codes),
        ("get", "/user/info", &token_codes),
        ("post", "/user/logout", &token_codes),
        ("get", "/protected", &token_codes),
        ("post", "/user/role", &role_codes),
        ("get", "/.well-known/jwks.json", &jwks_codes),
    ];
    let mut behaviors: Vec<(Behavior, String)> = [
        Code::InvalidArgument,
        Code::AlreadyExists,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ]
    .into_iter()
    .map(|code| (Behavior::Fail { code, message: "scripted", retry_after: Some("3") }, format!("{code:?}")))
    .collect();
    behaviors.push((Behavior::Stall, "a stalled call".to_owned()));

    let client = client();
    let send = |base: String, method: &'static str, path: &'static str| {
        let url = format!("{base}{path}");
        let request = match (method, path) {
            (_, "/token") => client.post(url).form(&[("username", "a"), ("password", "b")]),
            (_, "/user/refresh") => client.post(url).json(&json!({"refreshToken": "d.e.f"})),
            ("post", "/user/logout") => client.post(url).bearer_auth("a.b.c"),
            ("post", "/user/role") => {
                client.post(url).bearer_auth("a.b.c").json(&json!({"username": "a", "role": "b"}))
            }
            (_, "/.well-known/jwks.json") => client.get(url),
            ("post", _) => client.post(url).json(&json!({"username": "a", "password": "b"})),
            _ => client.get(url).bearer_auth("a.b.c"),
        };
        request.send()
    };
    let check = |method: &str, path: &str, what: &str, response: &reqwest::Response| {
        let status = response.status().as_u16().to_string();
        let documented = &doc["paths"][path][method]["responses"][&status];
        assert!(documented.is_object(), "{method} {path} answers {what} with {status}, which is not documented");
        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                assert!(response.headers().contains_key(name.as_str()), "{method} {path} {status}: no {name}");
            }
        }
    };

    for (behavior, what) in behaviors {
        let fixture = start(behavior, ServingStatus::Serving, 200).await;
        for (method, path, codes) in routes {
            let answered = match behavior {
                Behavior::Fail { code, .. } => codes.contains(&code),
                _ => true,
            };
            if answered {
                let response = send(fixture.base.clone(), method, path).await.unwrap();
                check(method, path, &what, &response);
            }
        }
    }

    // auth-svc gone: nothing listens on the upstream address.
    let gateway = Gateway::start(&gateway_config("127.0.0.1:9".parse().unwrap())).await;
    for (method, path, _) in routes {
        let response = send(format!("http://{}", gateway.addr), method, path).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        check(method, path, "auth-svc gone", &response);
    }
}
