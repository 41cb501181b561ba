//! Issue 14's routes end to end, through the gateway to the real auth-svc: a user's sessions
//! (listed with the user agent each login sent, revoked one by one or all together), a password
//! change, deleting one's account, and an admin managing accounts under `/admin/users`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    auth_svc::{TestApp, spawn_app},
    header, is_jwt, read,
};

const PASSWORD: &str = "secret123";

/// Logs in through `/user/login` with `User-Agent: user_agent`: (access, refresh).
async fn login_as(app: &TestApp, username: &str, password: &str, user_agent: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/user/login"))
        .header("user-agent", user_agent)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["accessToken"].as_str().unwrap().to_owned(), body["refreshToken"].as_str().unwrap().to_owned())
}

/// `method path` with the bearer `token` (and a JSON body if given): status and body.
async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, _, body) = read(request.send().await.unwrap()).await;
    (status, body)
}

async fn refresh_status(app: &TestApp, refresh: &str) -> StatusCode {
    app.post_json("/user/refresh", &json!({"refreshToken": refresh})).await.status()
}

async fn info_status(app: &TestApp, access: &str) -> StatusCode {
    app.get_with_token("/user/info", access).await.status()
}

/// An RFC 3339 UTC time as proto3's JSON mapping writes it: `YYYY-MM-DDTHH:MM:SS[.fff…]Z`.
fn is_rfc3339_utc(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() >= 20
        && text.ends_with('Z')
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
}

#[tokio::test]
async fn sessions_are_listed_with_their_user_agents_and_revoked() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let (_, phone_refresh) = login_as(&app, "alice", PASSWORD, "phone/1.0").await;
    let (laptop, laptop_refresh) = login_as(&app, "alice", PASSWORD, "laptop/2.0").await;

    let (status, body) = call(&app, Method::GET, "/user/sessions", &laptop, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    // Newest first, to the second (both logins may share one): the laptop's is the caller's.
    let mut seen: Vec<_> = sessions.iter().map(|session| (&session["userAgent"], &session["current"])).collect();
    seen.sort_by_key(|(agent, _)| agent.as_str());
    assert_eq!(seen, [(&json!("laptop/2.0"), &json!(true)), (&json!("phone/1.0"), &json!(false))]);
    for session in sessions {
        assert_eq!(session["clientAddress"], "127.0.0.1", "{session}");
        for field in ["createdAt", "lastUsedAt", "expiresAt"] {
            assert!(is_rfc3339_utc(&session[field]), "{field}: {session}");
        }
        let mut keys: Vec<&str> = session.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["clientAddress", "createdAt", "current", "expiresAt", "id", "lastUsedAt", "userAgent"]);
    }

    let id_of = |agent: &str| {
        let session = sessions.iter().find(|session| session["userAgent"] == agent).unwrap();
        session["id"].as_str().unwrap().to_owned()
    };
    let phone_path = format!("/user/sessions/{}", id_of("phone/1.0"));
    let (status, body) = call(&app, Method::DELETE, &phone_path, &laptop, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(refresh_status(&app, &phone_refresh).await, StatusCode::UNAUTHORIZED, "the phone's session ended");
    let (status, body) = call(&app, Method::DELETE, &phone_path, &laptop, None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "session not found"})));
    let (status, body) = call(&app, Method::DELETE, "/user/sessions/not-a-session", &laptop, None).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!(400)), "{body}");

    // Another user cannot see that alice's session exists.
    app.register("mallory", PASSWORD).await;
    let (mallory, _) = login_as(&app, "mallory", PASSWORD, "evil/1").await;
    let laptop_path = format!("/user/sessions/{}", id_of("laptop/2.0"));
    let (status, _) = call(&app, Method::DELETE, &laptop_path, &mallory, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(info_status(&app, &laptop).await, StatusCode::OK);

    // Everything but the current session, then everything.
    let (_, tablet_refresh) = login_as(&app, "alice", PASSWORD, "tablet/3.0").await;
    let (status, body) =
        call(&app, Method::POST, "/user/logout-all", &laptop, Some(json!({"keepCurrent": true}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(refresh_status(&app, &tablet_refresh).await, StatusCode::UNAUTHORIZED);
    assert_eq!(info_status(&app, &laptop).await, StatusCode::OK);
    let (_, body) = call(&app, Method::GET, "/user/sessions", &laptop, None).await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1, "{body}");

    let (status, _) = call(&app, Method::POST, "/user/logout-all", &laptop, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info_status(&app, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_status(&app, &laptop_refresh).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_keeps_only_this_session_with_a_fresh_pair() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let (here, here_refresh) = login_as(&app, "alice", PASSWORD, "here/1").await;
    let (there, there_refresh) = login_as(&app, "alice", PASSWORD, "there/1").await;

    let wrong = json!({"currentPassword": "not it", "newPassword": "a new secret"});
    let (status, body) = call(&app, Method::POST, "/user/password", &here, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let change = json!({"currentPassword": PASSWORD, "newPassword": "a new secret"});
    let response = app.client.post(app.url("/user/password")).bearer_auth(&here).json(&change).send().await.unwrap();
    let (status, headers, pair) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let (access, refresh) = (pair["accessToken"].as_str().unwrap(), pair["refreshToken"].as_str().unwrap());
    assert!(is_jwt(access) && is_jwt(refresh));

    assert_eq!(refresh_status(&app, &here_refresh).await, StatusCode::UNAUTHORIZED, "the old refresh token is spent");
    assert_eq!(info_status(&app, access).await, StatusCode::OK);
    assert_eq!(refresh_status(&app, refresh).await, StatusCode::OK, "the new pair works");
    assert_eq!(refresh_status(&app, &there_refresh).await, StatusCode::UNAUTHORIZED, "the other session ended");
    assert_eq!(info_status(&app, &there).await, StatusCode::UNAUTHORIZED);

    let old = app.post_json("/user/login", &json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    login_as(&app, "alice", "a new secret", "new/1").await;
}

#[tokio::test]
async fn a_deleted_account_loses_its_tokens_and_its_name() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let (access, refresh) = login_as(&app, "alice", PASSWORD, "ua/1").await;

    let (status, body) = call(&app, Method::DELETE, "/user", &access, Some(json!({"password": "not it"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(info_status(&app, &access).await, StatusCode::OK);

    let (status, body) = call(&app, Method::DELETE, "/user", &access, Some(json!({"password": PASSWORD}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(info_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_status(&app, &refresh).await, StatusCode::UNAUTHORIZED);
    let again = app.register("alice", PASSWORD).await;
    assert_eq!(again["username"], "alice", "the name is free again: {again}");
}

#[tokio::test]
async fn an_admin_lists_reads_disables_enables_and_deletes_accounts() {
    let app = spawn_app().await;
    let root_id = app.register("root", PASSWORD).await["id"].as_i64().unwrap();
    app.make_admin("root").await;
    let (admin, _) = login_as(&app, "root", PASSWORD, "admin-console/1").await;
    let bob_id = app.register("bob", PASSWORD).await["id"].as_i64().unwrap();
    let carol_id = app.register("carol", PASSWORD).await["id"].as_i64().unwrap();
    let (bob, _) = login_as(&app, "bob", PASSWORD, "bob/1").await;

    let (status, body) = call(&app, Method::GET, "/admin/users", &bob, None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"code": 403, "msg": "permission denied"})));

    let (status, body) = call(&app, Method::GET, "/admin/users", &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let users = body["users"].as_array().unwrap();
    let ids: Vec<i64> = users.iter().map(|user| user["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [root_id, bob_id, carol_id]);
    assert_eq!(body["nextPageToken"], "");
    let carol = &users[2];
    assert_eq!(
        (&carol["username"], &carol["role"], &carol["disabled"]),
        (&json!("carol"), &json!("user"), &json!(false))
    );
    assert_eq!(carol["lastLoginAt"], Value::Null, "carol never logged in: {carol}");
    assert!(is_rfc3339_utc(&carol["createdAt"]), "{carol}");
    assert!(is_rfc3339_utc(&users[1]["lastLoginAt"]), "bob logged in: {}", users[1]);

    // Pages, filters, and what ListUsers refuses.
    let (_, first) = call(&app, Method::GET, "/admin/users?pageSize=2", &admin, None).await;
    assert_eq!(first["users"].as_array().unwrap().len(), 2, "{first}");
    let token = first["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let (_, second) =
        call(&app, Method::GET, &format!("/admin/users?pageSize=2&pageToken={token}"), &admin, None).await;
    assert_eq!(second["users"][0]["id"], carol_id, "{second}");
    assert_eq!(second["nextPageToken"], "");
    let (_, bobs) = call(&app, Method::GET, "/admin/users?usernamePrefix=BO", &admin, None).await;
    assert_eq!(bobs["users"].as_array().unwrap().len(), 1, "{bobs}");
    assert_eq!(bobs["users"][0]["username"], "bob");
    let (_, admins) = call(&app, Method::GET, "/admin/users?role=admin", &admin, None).await;
    assert_eq!(admins["users"][0]["id"], root_id, "{admins}");
    assert_eq!(admins["users"].as_array().unwrap().len(), 1);
    for bad in ["/admin/users?pageSize=101", "/admin/users?pageToken=garbage", "/admin/users?pageSize=x"] {
        let (status, body) = call(&app, Method::GET, bad, &admin, None).await;
        assert_eq!((status, &body["code"]), (StatusCode::BAD_REQUEST, &json!(400)), "{bad}: {body}");
    }

    let bob_path = format!("/admin/users/{bob_id}");
    let (status, body) = call(&app, Method::GET, &bob_path, &admin, None).await;
    assert_eq!((status, &body["username"]), (StatusCode::OK, &json!("bob")), "{body}");
    let (status, body) = call(&app, Method::GET, "/admin/users/999999", &admin, None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "user not found"})));

    // Disabled: bob's token is refused and he cannot log in; enabled: he can again.
    let (status, body) = call(&app, Method::POST, &format!("{bob_path}/disable"), &admin, None).await;
    assert_eq!((status, &body["disabled"]), (StatusCode::OK, &json!(true)), "{body}");
    assert_eq!(info_status(&app, &bob).await, StatusCode::UNAUTHORIZED);
    let refused = app.post_json("/user/login", &json!({"username": "bob", "password": PASSWORD})).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, Method::POST, &format!("{bob_path}/enable"), &admin, None).await;
    assert_eq!((status, &body["disabled"]), (StatusCode::OK, &json!(false)), "{body}");
    let (bob, _) = login_as(&app, "bob", PASSWORD, "bob/2").await;

    let (status, body) = call(&app, Method::POST, &format!("{bob_path}/revoke-sessions"), &admin, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(info_status(&app, &bob).await, StatusCode::UNAUTHORIZED);

    // An admin does not disable or delete their own account this way.
    let root_path = format!("/admin/users/{root_id}");
    let (status, _) = call(&app, Method::POST, &format!("{root_path}/disable"), &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, Method::DELETE, &root_path, &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = call(&app, Method::DELETE, &bob_path, &admin, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, _) = call(&app, Method::GET, &bob_path, &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, Method::POST, &format!("{bob_path}/enable"), &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_without_a_user_agent_gets_a_session_without_one_not_the_gateways() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    // reqwest sends no User-Agent unless told to.
    let response = app.post_json("/user/login", &json!({"username": "alice", "password": PASSWORD})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["accessToken"].as_str().unwrap().to_owned();
    let (status, body) = call(&app, Method::GET, "/user/sessions", &access, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions"][0]["userAgent"], "", "{body}");
}
