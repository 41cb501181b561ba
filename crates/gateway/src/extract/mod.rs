//! What handlers take from a request, with rejections in the route's error dialect: a JSON body
//! ([`JsonBody`], or [`OptionalJsonBody`] where no body means the defaults), path and query
//! parameters ([`PathParam`], [`QueryParams`]), the metadata that travels on to auth-svc
//! ([`Forwarded`], and [`WithAuthorization`] for the routes auth-svc checks a token on), and the
//! client address those carry ([`ClientIp`], recorded by the [`resolve_client_ip`] middleware).
//! The OAuth 2.0 endpoints take forms ([`read_form`]) and client credentials
//! ([`client_credentials`]); each route turns them into its own request type.

mod client_addr;
/// HTTP Basic or form client authentication (RFC 6749 section 2.3.1).
mod client_auth;
mod form;
mod forwarded;
mod json;
mod params;

pub use client_addr::{ClientIp, client_ip, resolve_client_ip};
pub use client_auth::{ClientCredentials, client_credentials};
pub use form::{FormFields, read_form};
pub use forwarded::WithAuthorization;
pub use json::{JsonBody, OptionalJsonBody, decode_json, is_json_content_type};
pub use params::{PathParam, QueryParams};

pub use crate::upstream::Forwarded;
