//! The `authorization` header parser against any bytes a client can send. Newline separates
//! repeated headers (it can never be inside a value). Nothing may panic, and whatever is
//! accepted must be a b64token of at most MAX_TOKEN_BYTES after exactly one `Bearer` and
//! spaces; since no input is signed, the full check then refuses it.

#![no_main]

use std::sync::LazyLock;

use auth_svc::{
    auth::{
        keys::Secrets,
        tokens::{MAX_TOKEN_BYTES, TokenKeys},
    },
    edge::bearer::authenticate,
};
use auth_token::bearer_token;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const B64TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| {
    let secrets = Secrets {
        access: Some(SecretString::from("fuzz-access-secret-fuzz-access-secret-00")),
        refresh: SecretString::from("fuzz-refresh-secret-fuzz-refresh-secret-0"),
        generated: false,
    };
    TokenKeys::new(&secrets, "auth-svc", 900).expect("HS256 keys")
});

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for value in data.split(|&b| b == b'\n').filter_map(|v| HeaderValue::from_bytes(v).ok()) {
        headers.append(AUTHORIZATION, value);
    }
    if let Ok(token) = bearer_token(&headers) {
        check_accepted(&headers, token);
    }
    assert!(authenticate(&KEYS, &headers).is_err(), "unsigned input authenticated");
});

fn check_accepted(headers: &HeaderMap, token: &str) {
    let values: Vec<&[u8]> = headers.get_all(AUTHORIZATION).iter().map(HeaderValue::as_bytes).collect();
    assert_eq!(values.len(), 1, "accepted with several authorization headers");
    let value = values[0];
    assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "), "not `Bearer `: {value:?}");
    assert!(value.ends_with(token.as_bytes()), "token is not the end of the header");
    assert!(value[7..value.len() - token.len()].iter().all(|&b| b == b' '), "junk before the token");
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES, "token of {} bytes", token.len());
    let body = token.trim_end_matches('=');
    assert!(!body.is_empty() && body.bytes().all(|b| B64TOKEN_CHARS.contains(&b)), "not a b64token: {token:?}");
}
