//! What travels to auth-svc, as the scripted upstream records it: the request id, the client
//! address (the TCP peer, or a trusted proxy's entry), the client's `User-Agent` and, only on the
//! routes auth-svc checks a token on, `Authorization`; and what the gateway refuses before any call (an oversized
//! `Authorization` or request head).

use reqwest::StatusCode;
use serde_json::json;
use tonic_health::ServingStatus;

use crate::support::{
    client, header, read,
    scripted_upstream::{Behavior, start, start_with},
};

#[tokio::test]
async fn authorization_and_request_id_travel_as_metadata() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();

    let response = client
        .get(fixture.url("/user/info"))
        .header("authorization", "Bearer abc.def.ghi")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 7, "username": "fake", "role": "admin"}));
    let metadata = fixture.last_metadata();
    assert_eq!(metadata.get("authorization").unwrap(), "Bearer abc.def.ghi");
    assert_eq!(metadata.get("x-request-id").unwrap(), "trace-42");

    // Generated ids travel too: the one auth-svc sees is the one the caller gets back.
    let response = client.get(fixture.url("/protected")).send().await.unwrap();
    let echoed = header(response.headers(), "x-request-id").to_owned();
    let metadata = fixture.last_metadata();
    assert_eq!(metadata.get("x-request-id").unwrap(), echoed.as_str());
    assert!(metadata.get("authorization").is_none());
}

#[tokio::test]
async fn authorization_travels_only_to_the_routes_that_use_it() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    for path in ["/user/register", "/user/login", "/signup"] {
        let response = client.post(fixture.url(path)).bearer_auth("a.b.c").json(&credentials).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(fixture.last_metadata().get("authorization").is_none(), "{path}");
    }
    let response = client
        .post(fixture.url("/user/refresh"))
        .bearer_auth("a.b.c")
        .json(&json!({"refreshToken": "d.e.f"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(fixture.last_metadata().get("authorization").is_none(), "/user/refresh");
    let response =
        client.post(fixture.url("/token")).bearer_auth("a.b.c").form(&[("username", "a"), ("password", "b")]);
    assert_eq!(response.send().await.unwrap().status(), StatusCode::OK);
    assert!(fixture.last_metadata().get("authorization").is_none(), "/token");

    for (method, path) in [("GET", "/user/info"), ("POST", "/user/logout"), ("GET", "/protected")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client.request(method, fixture.url(path)).bearer_auth("a.b.c").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(fixture.last_metadata().get("authorization").unwrap(), "Bearer a.b.c", "{path}");
    }
}

/// auth-svc refuses tokens over 4096 bytes with an HTTP/2 431, which tonic reports as a 500;
/// the gateway refuses them itself, as the 401 of a bad token, without calling auth-svc.
#[tokio::test]
async fn an_oversized_authorization_is_401_without_calling_auth_svc() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let long_token = "a".repeat(20 * 1024);
    for (path, expected) in [
        ("/protected", json!({"detail": "Invalid token"})),
        ("/user/info", json!({"code": 401, "msg": "bearer token too long"})),
    ] {
        let response = client.get(fixture.url(path)).bearer_auth(&long_token).send().await.unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(header(&headers, "www-authenticate"), "Bearer", "{path}");
        assert_eq!(body, expected, "{path}");
    }
    let response = client.post(fixture.url("/user/logout")).bearer_auth(&long_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fixture.calls(), 0, "auth-svc must not see an oversized token");

    // The largest token auth-svc accepts still goes through.
    let largest = "a".repeat(4096);
    let response = client.get(fixture.url("/protected")).bearer_auth(&largest).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.last_metadata().get("authorization").unwrap(), format!("Bearer {largest}").as_str());
}

/// An id that is too long or has odd characters would travel into logs and metadata (a 70 KB one
/// makes auth-svc drop the whole shared HTTP/2 connection): it is replaced by a fresh UUID, the
/// one the caller gets back and auth-svc sees.
#[tokio::test]
async fn an_unusable_request_id_is_replaced() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let long = "r".repeat(8 * 1024);
    let just_too_long = "r".repeat(129);
    for given in [long.as_str(), just_too_long.as_str(), "has spaces", "a/b", "tab\tid", "é"] {
        let response = client
            .post(fixture.url("/user/login"))
            .header("x-request-id", given.as_bytes())
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = header(response.headers(), "x-request-id").to_owned();
        assert_eq!(echoed.len(), 36, "{given:.40}: {echoed}");
        assert_eq!(echoed.matches('-').count(), 4, "{echoed}");
        assert_eq!(fixture.last_metadata().get("x-request-id").unwrap(), echoed.as_str());
    }
    let longest = format!("{}.:_-Z9", "r".repeat(122));
    assert_eq!(longest.len(), 128);
    for given in [longest.as_str(), "trace-42", "01J9Z:edge.7_x"] {
        let response = client.get(fixture.url("/user/info")).header("x-request-id", given).send().await.unwrap();
        assert_eq!(header(response.headers(), "x-request-id"), given);
        assert_eq!(fixture.last_metadata().get("x-request-id").unwrap(), given);
    }
}

/// FastAPI (Starlette) matches the form media type case-insensitively, as RFC 9110 says.
#[tokio::test]
async fn token_accepts_the_form_media_type_in_any_case() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    for content_type in ["Application/X-WWW-Form-Urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8"] {
        let response = client()
            .post(fixture.url("/token"))
            .header("content-type", content_type)
            .body("username=a&password=b")
            .send()
            .await
            .unwrap();
        let (status, _, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {body}");
        assert_eq!(body["access_token"], "a.b.c");
    }
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\na\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nb\r\n--XyZ--\r\n";
    let response = client()
        .post(fixture.url("/token"))
        .header("content-type", "Multipart/Form-Data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// auth-svc throttles failed logins per client address, the first `x-forwarded-for` entry:
/// the gateway always sends exactly one, the TCP peer, whatever the client claims.
#[tokio::test]
async fn auth_svc_learns_the_tcp_peer_whatever_the_client_claims() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    let response = client.post(fixture.url("/user/login")).json(&credentials).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
    assert_eq!(forwarded, ["127.0.0.1"]);

    let response = client
        .post(fixture.url("/token"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "7.7.7.7, 8.8.8.8")
        .header("x-real-ip", "9.9.9.9")
        .form(&[("username", "a"), ("password", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
    assert_eq!(forwarded, ["127.0.0.1"]);
}

/// Behind a trusted proxy (`http.trusted_proxy_header`), the client is the entry that proxy
/// wrote: the last of `x-forwarded-for` (earlier ones are the client's own claims), or
/// `x-real-ip`; the peer when the header is missing or unusable.
#[tokio::test]
async fn behind_a_trusted_proxy_auth_svc_learns_the_proxied_client() {
    let fixture = start_with(Behavior::Answer, ServingStatus::Serving, None, |config| {
        config.http.trusted_proxy_header = "x-forwarded-for".into();
    })
    .await;
    let client = client();
    let login = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for (headers, expected) in [
        (&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")][..], "203.0.113.9"),
        (&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.2")][..], "198.51.100.2"),
        (&[("x-forwarded-for", "2001:db8::5")][..], "2001:db8::5"),
        (&[("x-real-ip", "203.0.113.9")][..], "127.0.0.1"),
        (&[("x-forwarded-for", "not-an-address")][..], "127.0.0.1"),
        (&[][..], "127.0.0.1"),
    ] {
        assert_eq!(login(headers).await.unwrap().status(), StatusCode::OK);
        let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
        assert_eq!(forwarded, [expected], "{headers:?}");
    }

    let fixture = start_with(Behavior::Answer, ServingStatus::Serving, None, |config| {
        config.http.trusted_proxy_header = "X-Real-IP".into();
    })
    .await;
    let response = client
        .post(fixture.url("/user/login"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "203.0.113.77")
        .json(&json!({"username": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.last_metadata().get("x-forwarded-for").unwrap(), "203.0.113.77");
}

/// auth-svc records the HTTP client's `User-Agent` with the session a login starts: it travels
/// on every call as `x-forwarded-user-agent`, cut to 256 characters; a caller's own
/// `x-forwarded-user-agent` never does.
#[tokio::test]
async fn the_user_agent_travels_to_auth_svc_shortened() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let login = |user_agent: Option<&str>| {
        let mut request = client
            .post(fixture.url("/user/login"))
            .header("x-forwarded-user-agent", "forged/1.0")
            .json(&json!({"username": "a", "password": "b"}));
        if let Some(user_agent) = user_agent {
            request = request.header("user-agent", user_agent);
        }
        request.send()
    };
    let forwarded = || -> Vec<String> {
        let metadata = fixture.last_metadata();
        metadata.get_all("x-forwarded-user-agent").iter().map(|value| value.to_str().unwrap().to_owned()).collect()
    };

    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
    assert_eq!(login(Some(firefox)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(forwarded(), [firefox]);

    let long = format!("agent/{}", "x".repeat(400));
    assert_eq!(login(Some(&long)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(forwarded(), [&long[..256]]);

    // None sent (reqwest sends none by default): an empty one travels, so auth-svc records none
    // rather than the gateway's own user agent; the forged one never does.
    assert_eq!(login(None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(forwarded(), [""]);

    // On every call, not only Login.
    let response = client.get(fixture.url("/user/sessions")).bearer_auth("a.b.c").header("user-agent", "cli/2");
    assert_eq!(response.send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(forwarded(), ["cli/2"]);
}

/// A request head past the gateway's limit is refused (431) by the HTTP server itself: a huge
/// header never reaches a handler, a log line or auth-svc.
#[tokio::test]
async fn an_oversized_request_head_is_431() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let huge = "r".repeat(70 * 1024);
    for (name, path) in [("x-request-id", "/user/login"), ("x-anything", "/token")] {
        let response = client.post(fixture.url(path)).header(name, &huge).body("{}").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{name}");
    }
    assert_eq!(fixture.calls(), 0);
    let response =
        client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
