//! The gateway's request decoding against hostile bodies: JSON bodies of each route family,
//! and `/token` forms (urlencoded and multipart) with the grant read from them. Nothing may
//! panic, and every refusal must be a client error (400, 413 or 422), never a 5xx.

#![no_main]

use bytes::Bytes;
use gateway::{
    error::{ApiError, Dialect},
    extract::decode_json,
    routes::{gozero::LoginReq, oauth2::SignupRequest},
};
use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use libfuzzer_sys::fuzz_target;

const BODY_LIMIT: usize = 64 * 1024;

fn headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).expect("a valid content type"));
    headers
}

fn assert_client_error(error: &ApiError) {
    assert!(error.status().is_client_error(), "{:?}", error.status());
}

fuzz_target!(|data: &[u8]| {
    let json = headers("application/json");
    if let Err(error) = decode_json::<LoginReq>(Dialect::for_path("/user/login"), &json, data) {
        assert_client_error(&error);
    }
    if let Err(error) = decode_json::<SignupRequest>(Dialect::for_path("/signup"), &json, data) {
        assert_client_error(&error);
    }
    for content_type in ["application/x-www-form-urlencoded", "multipart/form-data; boundary=X"] {
        let decoded = futures::executor::block_on(gateway::routes::oauth2::decode_token_form(
            &headers(content_type),
            Bytes::copy_from_slice(data),
            BODY_LIMIT,
        ));
        match decoded.and_then(|form| form.grant()) {
            Ok(_) => {}
            Err(error) => assert_client_error(&error),
        }
    }
});
