use auth_api::user::v1::LoginRequest;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_service() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "user.v1.UserService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "no.such.Service".into() }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_user_service() {
    let app = spawn_app().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let list = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let describe = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "user.v1.UserService".into(),
        )),
    };
    let mut responses = client.server_reflection_info(tokio_stream::iter([list, describe])).await.unwrap().into_inner();

    let listed = responses.next().await.unwrap().unwrap().message_response.unwrap();
    let v1::server_reflection_response::MessageResponse::ListServicesResponse(listed) = listed else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<_> = listed.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"user.v1.UserService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let described = responses.next().await.unwrap().unwrap().message_response.unwrap();
    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = described else {
        panic!("expected descriptors, got {described:?}");
    };
    let text = files.file_descriptor_proto.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<String>();
    for method in ["Register", "Login", "Refresh", "GetUserInfo", "Logout"] {
        assert!(text.contains(method), "{method} missing from the descriptor");
    }
}

#[tokio::test]
async fn reflection_v1alpha_is_served_too() {
    let app = spawn_app().await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let list = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = client.server_reflection_info(tokio_stream::iter([list])).await.unwrap().into_inner();
    let listed = responses.next().await.unwrap().unwrap().message_response.unwrap();
    let v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(listed) = listed else {
        panic!("expected a service list, got {listed:?}");
    };
    assert!(listed.service.iter().any(|s| s.name == "user.v1.UserService"));
}

#[tokio::test]
async fn a_request_over_the_message_size_limit_is_refused_cleanly() {
    let app = spawn_app_with(|c| c.grpc.max_message_bytes = 4096).await;
    let result =
        app.client.clone().login(LoginRequest { username: "alice".into(), password: "p".repeat(10_000) }).await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls_and_stops() {
    // The real hashing profile, one hash at a time: the logins below queue for tens of
    // milliseconds, so shutdown starts while they are inside the server.
    let app = spawn_app_with(|c| {
        c.password.hash_profile = auth_svc::config::HashProfile::Owasp;
        c.password.max_concurrent_hashes = 1;
    })
    .await;
    app.register("alice").await;
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                client.login(LoginRequest { username: "alice".into(), password: PASSWORD.into() }).await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.stop().await.expect("clean stop");
    for call in in_flight {
        let finished = call.await.unwrap();
        assert!(finished.is_ok(), "an accepted call was cut off: {finished:?}");
    }
}

/// Register's wire format with `bytes` fields, so a test can send what a string may not hold.
#[derive(Clone, PartialEq, prost::Message)]
struct RawRegisterRequest {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    password: Vec<u8>,
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_invalid_argument() {
    let app = spawn_app().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawRegisterRequest, auth_api::user::v1::RegisterResponse>::default();
    let request = RawRegisterRequest { username: b"al\xffce".to_vec(), password: b"long enough".to_vec() };
    let result = grpc
        .unary(
            tonic::Request::new(request),
            http::uri::PathAndQuery::from_static("/user.v1.UserService/Register"),
            codec,
        )
        .await;
    crate::helpers::assert_status(result, Code::InvalidArgument, auth_api::codec::MALFORMED_MESSAGE);
}

#[tokio::test]
async fn a_health_watcher_sees_not_serving_and_does_not_hold_the_shutdown() {
    let app = spawn_app_with(|c| c.grpc.shutdown_grace_seconds = 60).await;
    let mut health = HealthClient::new(app.channel.clone());
    let mut watch =
        health.watch(HealthCheckRequest { service: "user.v1.UserService".into() }).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status, ServingStatus::Serving as i32);

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(20), app.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "shutdown waited for the watcher: {stopped:?}");
    let mut seen = Vec::new();
    while let Some(Ok(update)) = watch.next().await {
        seen.push(update.status);
    }
    assert_eq!(seen, vec![ServingStatus::NotServing as i32]);
}
