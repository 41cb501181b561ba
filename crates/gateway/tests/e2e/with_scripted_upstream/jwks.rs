//! `/.well-known/jwks.json` against the scripted auth-svc: RFC 7517 members, `Cache-Control` from
//! auth-svc's `max_age_seconds`, an `ETag` that `If-None-Match` turns into a 304, and a 503 when
//! auth-svc is gone.

use auth_api::user::v1::{GetJwksResponse, Jwk};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    ALLOWED_ORIGIN, Gateway, client, gateway_config, header, read,
    scripted_upstream::{Behavior, Fixture, sample_jwks, start},
};

const PATH: &str = "/.well-known/jwks.json";

async fn fixture() -> Fixture {
    start(Behavior::Answer, ServingStatus::Serving, 5_000).await
}

/// (Cache-Control, ETag) of a 200, and its body.
async fn fetch(fixture: &Fixture) -> (String, String, serde_json::Value) {
    let (status, headers, body) = read(client().get(fixture.url(PATH)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (header(&headers, "cache-control").to_owned(), header(&headers, "etag").to_owned(), body)
}

#[tokio::test]
async fn jwks_lists_the_keys_with_their_rfc_7517_members() {
    let fixture = fixture().await;
    let response =
        client().get(fixture.url(PATH)).header("origin", ALLOWED_ORIGIN).bearer_auth("a.b.c").send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(header(&headers, "cache-control"), "public, max-age=300");
    assert_eq!(header(&headers, "access-control-allow-origin"), ALLOWED_ORIGIN);
    // The OKP key has no `y` at all, not an empty one.
    assert_eq!(
        body,
        json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
             "kid": "ed-1", "alg": "EdDSA", "use": "sig"},
            {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "ec-1", "alg": "ES256", "use": "sig"},
        ]})
    );
    let etag = header(&headers, "etag");
    let hex = etag.strip_prefix('"').and_then(|tag| tag.strip_suffix('"')).expect("a strong, quoted ETag");
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{etag}");
    // The set is public: the caller's token does not travel.
    assert!(fixture.last_metadata().get("authorization").is_none());
}

#[tokio::test]
async fn cache_control_follows_max_age_seconds_and_an_empty_set_is_200() {
    let fixture = fixture().await;
    fixture.upstream.set_jwks(GetJwksResponse { keys: Vec::new(), max_age_seconds: 3600 });
    let (cache_control, _, body) = fetch(&fixture).await;
    assert_eq!(cache_control, "public, max-age=3600");
    assert_eq!(body, json!({"keys": []}));

    fixture.upstream.set_jwks(GetJwksResponse { keys: Vec::new(), max_age_seconds: -5 });
    let (cache_control, _, _) = fetch(&fixture).await;
    assert_eq!(cache_control, "public, max-age=0");
}

#[tokio::test]
async fn if_none_match_with_the_etag_is_304_until_the_set_changes() {
    let fixture = fixture().await;
    let client = client();
    let (cache_control, etag, _) = fetch(&fixture).await;
    assert_eq!(fetch(&fixture).await.1, etag, "the same set has the same ETag");

    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for if_none_match in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let response = client.get(fixture.url(PATH)).header("if-none-match", if_none_match).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{if_none_match}");
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "etag"), etag);
        assert_eq!(header(&headers, "cache-control"), cache_control);
        assert!(headers.get("content-type").is_none());
        assert!(response.bytes().await.unwrap().is_empty());
    }

    let response = client.get(fixture.url(PATH)).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A rotated key: the old ETag no longer matches, and the new set has a new one.
    let mut rotated = sample_jwks();
    rotated.keys.push(Jwk { kid: "ed-2".into(), ..rotated.keys[0].clone() });
    fixture.upstream.set_jwks(rotated);
    let response = client.get(fixture.url(PATH)).header("if-none-match", &etag).send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(header(&headers, "etag"), etag);
    assert_eq!(body["keys"][2]["kid"], "ed-2");
}

#[tokio::test]
async fn jwks_without_auth_svc_is_503() {
    // Nothing listens on the upstream address.
    let gateway = Gateway::start(&gateway_config("127.0.0.1:9".parse().unwrap())).await;
    let response = client().get(format!("http://{}{PATH}", gateway.addr)).send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"detail": "auth service unavailable, retry later"}));
    assert!(headers.get("etag").is_none() && headers.get("cache-control").is_none());

    let behavior = Behavior::Fail { code: Code::Unavailable, message: "db down", retry_after: None };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let (status, _, body) = read(client().get(fixture.url(PATH)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"detail": "auth service unavailable, retry later"}));
}
