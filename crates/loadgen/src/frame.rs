//! Prebuilt gRPC request bodies for h2load (`h2load -d FILE`): one length-prefixed message, the
//! same bytes for every request, so the load tool does no encoding at all.

use auth_api::user::v1::{GetUserInfoRequest, LoginRequest};
use prost::Message;
use tonic_health::pb::HealthCheckRequest;

use crate::grpc::PASSWORD;

/// The message a frame carries.
pub enum Body<'a> {
    /// `grpc.health.v1.Health/Check` for the whole server (service "").
    Health,
    /// `user.v1.UserService/GetUserInfo` (empty; the caller sends the bearer token).
    GetUserInfo,
    /// `user.v1.UserService/Login` with the bench password of `username`.
    Login { username: &'a str },
}

/// The gRPC frame: a zero compression flag, the message length (4 bytes, big-endian), the
/// protobuf message.
pub fn encode(body: &Body<'_>) -> anyhow::Result<Vec<u8>> {
    let message = match body {
        Body::Health => HealthCheckRequest { service: String::new() }.encode_to_vec(),
        Body::GetUserInfo => GetUserInfoRequest {}.encode_to_vec(),
        Body::Login { username } => {
            LoginRequest { username: (*username).to_owned(), password: PASSWORD.to_owned() }.encode_to_vec()
        }
    };
    let length = u32::try_from(message.len())?;
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&message);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_length_prefixed_message() {
        assert_eq!(encode(&Body::GetUserInfo).unwrap(), [0, 0, 0, 0, 0]);
        let frame = encode(&Body::Login { username: "ann" }).unwrap();
        assert_eq!(frame[0], 0);
        let length = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(length, frame.len() - 5);
        let login = LoginRequest::decode(&frame[5..]).unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("ann", PASSWORD));
    }
}
