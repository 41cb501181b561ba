//! Per-route needs: `require_scopes` and `require_audience` on layers of one verifier, through
//! axum and a real tonic server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;
use tower::ServiceExt as _;

use super::layer::{GrpcServer, WhoAmI, body_text, response_header};
use super::support::*;
use crate::{BearerLayer, Claims, Verifier};

/// A router serving `path` with the verified subject behind `layer`, and the count of its calls.
fn guarded(path: &str, layer: BearerLayer) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let handler = move |Extension(claims): Extension<Claims>| async move {
        counter.fetch_add(1, Ordering::SeqCst);
        claims.sub().to_owned()
    };
    (Router::new().route(path, get(handler)).layer(layer), calls)
}

fn request(path: &str, token: &str, grpc: bool) -> Request<Body> {
    let mut request = Request::get(path).header("authorization", format!("Bearer {token}"));
    if grpc {
        request = request.header("content-type", "application/grpc");
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope_naming_every_required_scope() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let (app, calls) =
        guarded("/orders", verifier.layer().require_scopes(["orders:read"]).require_scopes(["orders:write"]));
    let granted = key.sign(&client_claims_with(json!({"scope": "stock:read orders:write orders:read"})));

    let response = app.clone().oneshot(request("/orders", &granted, false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "billing");

    let lacking = [
        key.sign(&client_claims_with(json!({"scope": "orders:read"}))),
        key.sign(&client_claims_with(json!({"scope": null}))),
        // A user's token grants no scope, whatever `scope` claim it carries.
        key.sign(&claims_with(json!({"scope": "orders:read orders:write"}))),
    ];
    for token in &lacking {
        let response = app.clone().oneshot(request("/orders", token, false)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response_header(&response, "www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#)
        );
        assert_eq!(body_text(response).await, "");
    }
    // A token that is no good at all is a 401, not a 403, on a scope route too.
    let expired = key.sign(&client_claims_with(json!({"exp": now() - 1})));
    let response = app.oneshot(request("/orders", &expired, false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response_header(&response, "www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_scope_over_grpc_is_permission_denied_trailers_only() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let (app, calls) = guarded("/orders", verifier.layer().require_scopes(["orders:read", "orders:write"]));
    let lacking = key.sign(&client_claims_with(json!({"scope": "orders:read"})));

    let response = app.oneshot(request("/orders", &lacking, true)).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_header(&response, "grpc-status"), Some("7"));
    assert_eq!(response_header(&response, "grpc-message"), Some("token lacks the scope orders:write"));
    assert_eq!(response_header(&response, "www-authenticate"), None);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn one_verifier_guards_routers_with_different_audiences() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    let (orders, _) = guarded("/orders", verifier.layer().require_audience("orders"));
    let (open, _) = guarded("/open", verifier.layer());
    let app = orders.merge(open);
    let status = |path: &'static str, token: String| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request(path, &token, false)).await.unwrap();
            let challenge = response_header(&response, "www-authenticate").map(str::to_owned);
            (response.status(), challenge)
        }
    };
    let with_aud = |aud: serde_json::Value| key.sign(&client_claims_with(json!({ "aud": aud })));
    let ok = (StatusCode::OK, None);
    let invalid = (StatusCode::UNAUTHORIZED, Some(r#"Bearer error="invalid_token""#.to_owned()));

    assert_eq!(status("/orders", with_aud(json!("orders"))).await, ok);
    assert_eq!(status("/orders", with_aud(json!(["stock", "orders"]))).await, ok);
    assert_eq!(status("/orders", with_aud(json!("stock"))).await, invalid);
    assert_eq!(status("/orders", key.sign(&client_claims())).await, invalid);
    assert_eq!(status("/orders", key.sign(&access_claims())).await, invalid);
    // The verifier itself has no audience: its plain layer refuses any `aud`.
    assert_eq!(status("/open", with_aud(json!("orders"))).await, invalid);
    assert_eq!(status("/open", key.sign(&client_claims())).await, ok);
    assert_eq!(server.fetches(), 1, "one key cache for both routers");

    // A layer's audience replaces the verifier's, it does not add to it.
    let stock = Verifier::builder(&server.url).audience("stock").build().unwrap();
    let (orders, _) = guarded("/orders", stock.layer().require_audience("orders"));
    let response = orders.clone().oneshot(request("/orders", &with_aud(json!("orders")), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = orders.oneshot(request("/orders", &with_aud(json!("stock")), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Without `require_audience`, a layer keeps its verifier's audience.
    let (stock_only, _) = guarded("/stock", stock.layer());
    let response = stock_only.clone().oneshot(request("/stock", &with_aud(json!("stock")), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = stock_only.oneshot(request("/stock", &with_aud(json!("orders")), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tonic_services_get_permission_denied_for_a_missing_scope_and_unauthenticated_for_another_audience() {
    let key = p256_a();
    let (_jwks_server, verifier) = verifier_for(&[&key]).await;
    let guard = verifier.layer().require_audience("orders").require_scopes(["orders:read"]);
    let server = GrpcServer::start(|incoming, stop| {
        tonic::transport::Server::builder()
            .layer(guard)
            .add_service(WhoAmI)
            .serve_with_incoming_shutdown(incoming, stop)
    })
    .await;
    let call = |claims: serde_json::Value| server.who_am_i(Some(format!("Bearer {}", key.sign(&claims))));

    assert_eq!(call(client_claims_with(json!({"aud": "orders"}))).await.unwrap(), "billing");
    let lacking = call(client_claims_with(json!({"aud": "orders", "scope": "stock:read"}))).await.unwrap_err();
    assert_eq!(
        (lacking.code(), lacking.message()),
        (tonic::Code::PermissionDenied, "token lacks the scope orders:read")
    );
    let user = call(claims_with(json!({"aud": "orders"}))).await.unwrap_err();
    assert_eq!(user.code(), tonic::Code::PermissionDenied);
    let elsewhere = call(client_claims_with(json!({"aud": "stock"}))).await.unwrap_err();
    assert_eq!(
        (elsewhere.code(), elsewhere.message()),
        (tonic::Code::Unauthenticated, "token is meant for another audience")
    );
    let nowhere = call(client_claims()).await.unwrap_err();
    assert_eq!((nowhere.code(), nowhere.message()), (tonic::Code::Unauthenticated, "token names no audience"));

    server.stop().await;
}

#[test]
#[should_panic(expected = "is not an RFC 6749 scope token")]
fn a_scope_that_cannot_be_granted_is_a_setup_mistake() {
    let verifier = Verifier::builder("http://gateway/jwks").build().unwrap();
    let _ = verifier.layer().require_scopes(["orders:read", "orders write"]);
}

#[test]
fn only_rfc_6749_scope_tokens_are_accepted() {
    let layer = || Verifier::builder("http://gateway/jwks").build().unwrap().layer();
    for bad in ["", "a b", "say\"hi\"", "back\\slash", "caf\u{e9}", "tab\t"] {
        let refused = std::panic::catch_unwind(|| layer().require_scopes([bad]));
        assert!(refused.is_err(), "{bad:?}");
    }
    let refused = std::panic::catch_unwind(|| layer().require_audience(""));
    assert!(refused.is_err());
    let _ = layer().require_scopes(["!#[]~", "orders:read", "https://api.example/orders.read"]);
}

#[tokio::test]
async fn a_route_requiring_a_second_factor_refuses_password_only_sessions_with_a_step_up_challenge() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let (app, calls) = guarded("/payouts", verifier.layer().require_amr(["otp"]));
    let with_amr = |amr: serde_json::Value| key.sign(&claims_with(json!({ "amr": amr })));

    let response = app.clone().oneshot(request("/payouts", &with_amr(json!(["pwd", "otp"])), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let step_up = r#"Bearer error="insufficient_user_authentication", error_description="a second factor is required""#;
    for token in [with_amr(json!(["pwd"])), key.sign(&access_claims()), key.sign(&client_claims())] {
        let response = app.clone().oneshot(request("/payouts", &token, false)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response_header(&response, "www-authenticate"), Some(step_up));
        let response = app.clone().oneshot(request("/payouts", &token, true)).await.unwrap();
        assert_eq!(response_header(&response, "grpc-status"), Some("16"));
        assert_eq!(response_header(&response, "grpc-message"), Some("the session did not authenticate with otp"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Without the requirement the same password-only token passes.
    let (open, _) = guarded("/open", verifier.layer());
    let response = open.oneshot(request("/open", &with_amr(json!(["pwd"])), false)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
