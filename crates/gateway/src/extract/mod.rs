//! What handlers take from a request, with rejections in the route's error dialect: a JSON body
//! ([`JsonBody`], or [`OptionalJsonBody`] where no body means the defaults), path and query
//! parameters ([`PathParam`], [`QueryParams`]), the metadata that travels on to auth-svc
//! ([`Forwarded`], and [`WithAuthorization`] for the routes auth-svc checks a token on), and the
//! client address those carry ([`ClientIp`], recorded by the [`resolve_client_ip`] middleware). The `/token`
//! form is read by its route (`routes::oauth2`), the only one that takes a form.

mod client_addr;
mod forwarded;
mod json;
mod params;

pub use client_addr::{ClientIp, client_ip, resolve_client_ip};
pub use forwarded::WithAuthorization;
pub use json::{JsonBody, OptionalJsonBody, decode_json, is_json_content_type};
pub use params::{PathParam, QueryParams};

pub use crate::upstream::Forwarded;
