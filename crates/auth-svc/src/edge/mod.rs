//! The gRPC edge: the `UserService` methods (parse, call one rule, map the result) and the
//! bearer layer in front of them.

pub mod bearer;
pub mod connection;
pub mod grpc;
