//! The bearer header rules: examples, and property tests over any bytes a client can send.

use http::HeaderValue;

use super::*;

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in values {
        map.append(AUTHORIZATION, HeaderValue::from_bytes(value).expect("header value"));
    }
    map
}

#[test]
fn accepts_a_plain_bearer_token() {
    assert_eq!(bearer_token(&headers(&[b"Bearer abc.def.ghi"])), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(&headers(&[b"bearer  abc.def.ghi"])), Ok("abc.def.ghi"));
}

#[test]
fn refusals_say_what_callers_are_told() {
    let messages = [
        (BearerError::Missing, "missing authorization: Bearer token"),
        (BearerError::Repeated, "more than one authorization header"),
        (BearerError::NotAscii, "authorization header is not valid ASCII"),
        (BearerError::NoCredentials { bearer: true }, "authorization header must be `Bearer <token>`"),
        (BearerError::OtherScheme, "authorization scheme must be Bearer"),
        (BearerError::Empty, "missing bearer token"),
        (BearerError::TooLong, "bearer token too long"),
        (BearerError::Malformed, "malformed bearer token"),
    ];
    for (refusal, message) in messages {
        assert_eq!(refusal.to_string(), message);
    }
}

#[test]
fn refuses_every_malformed_header() {
    let cases: &[&[&[u8]]] = &[
        &[],
        &[b"Bearer"],
        &[b"Bearer "],
        &[b"Basic dXNlcjpwYXNz"],
        &[b"Bearer abc def"],
        &[b"Bearer\tabc"],
        &[b"Bearer a,b"],
        &[b"Bearer abc", b"Bearer abc"],
        &[b"Bearer \xff\xfe"],
    ];
    for case in cases {
        assert!(bearer_token(&headers(case)).is_err(), "{case:?}");
    }
}

/// Property tests of `bearer_token`: any header bytes a client can send get an answer, never
/// a panic, and whatever it accepts is a plausible token.
mod properties {
    use proptest::prelude::*;

    use super::*;

    const B64TOKEN_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

    /// 256 cases keep `cargo test` quick; `PROPTEST_CASES=N` asks for a longer run.
    fn config() -> ProptestConfig {
        let default = ProptestConfig::default();
        let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 256 };
        ProptestConfig { cases, ..default }
    }

    /// The header values that can reach us: `HeaderValue` refuses what HTTP/1 and HTTP/2
    /// parsers refuse too (control characters other than tab), so those are skipped.
    fn header_map(values: &[Vec<u8>]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values.iter().filter_map(|v| HeaderValue::from_bytes(v).ok()) {
            map.append(AUTHORIZATION, value);
        }
        map
    }

    /// Whatever `bearer_token` accepts, checked without its own helpers.
    fn check_accepted(map: &HeaderMap, token: &str) -> Result<(), TestCaseError> {
        let values: Vec<&[u8]> = map.get_all(AUTHORIZATION).iter().map(HeaderValue::as_bytes).collect();
        prop_assert_eq!(values.len(), 1, "accepted with {} authorization headers", values.len());
        let value = values[0];
        prop_assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "), "{:?}", value);
        prop_assert!(value.ends_with(token.as_bytes()));
        prop_assert!(value[7..value.len() - token.len()].iter().all(|&b| b == b' '));
        prop_assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES, "{} bytes", token.len());
        prop_assert!(!token.chars().any(char::is_whitespace));
        let body = token.trim_end_matches('=');
        prop_assert!(!body.is_empty() && body.chars().all(|c| B64TOKEN_CHARS.contains(c)), "{:?}", token);
        Ok(())
    }

    /// Header values that look like `Bearer <token>` and often almost are.
    fn bearerish() -> impl Strategy<Value = Vec<u8>> {
        // Weighted so that about one in ten is well formed.
        let scheme = prop_oneof![
            4 => "[bB][eE][aA][rR][eE][rR]",
            1 => Just("Basic".to_owned()),
            1 => Just("Bearer:".to_owned()),
            1 => Just(String::new()),
        ];
        let gap = prop_oneof![3 => " {1,3}", 1 => "[ \t]{0,3}"];
        let token_chars = prop_oneof![
            40 => prop::sample::select(B64TOKEN_CHARS.chars().collect::<Vec<_>>()),
            2 => Just('='),
            1 => prop::sample::select(vec![' ', '\t', ',', '"', '\u{7f}', 'é', '\u{a0}', ':']),
        ];
        let token = prop_oneof![
            prop::collection::vec(token_chars.clone(), 0..64),
            prop::collection::vec(token_chars, MAX_TOKEN_BYTES - 4..=MAX_TOKEN_BYTES + 4),
        ];
        (scheme, gap, token).prop_map(|(scheme, gap, token)| {
            format!("{scheme}{gap}{}", token.into_iter().collect::<String>()).into_bytes()
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_header_bytes_never_panic(
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 0..3),
        ) {
            let map = header_map(&values);
            if let Ok(token) = bearer_token(&map) {
                check_accepted(&map, token)?;
            }
        }

        #[test]
        fn bearerish_headers_give_only_plausible_tokens(values in prop::collection::vec(bearerish(), 1..=2)) {
            let map = header_map(&values);
            if let Ok(token) = bearer_token(&map) {
                check_accepted(&map, token)?;
            }
        }

        /// The other direction: every well-formed header is accepted, whatever the case of
        /// the scheme and however many spaces follow it.
        #[test]
        fn every_well_formed_header_gives_its_token(
            scheme in "[bB][eE][aA][rR][eE][rR]",
            spaces in 1..4usize,
            body in prop_oneof!["[A-Za-z0-9._~+/-]{1,64}", "[A-Za-z0-9._~+/-]{4090,4096}"],
            padding in 0..3usize,
        ) {
            let token = format!("{body}{}", "=".repeat(padding));
            let value = format!("{scheme}{}{token}", " ".repeat(spaces));
            let map = header_map(&[value.into_bytes()]);
            let result = bearer_token(&map);
            if token.len() <= MAX_TOKEN_BYTES {
                prop_assert_eq!(result, Ok(token.as_str()));
            } else {
                prop_assert_eq!(result, Err(BearerError::TooLong));
            }
        }
    }
}

mod claims {
    use super::super::*;

    fn client_claims(aud: &[&str]) -> ClientClaims {
        ClientClaims {
            iss: "auth-svc".into(),
            sub: "billing".into(),
            client_id: "billing".into(),
            role: "service".into(),
            scope: "introspect  users:read".into(),
            aud: Audience(aud.iter().map(|a| a.to_string()).collect()),
            iat: 1,
            exp: 2,
            jti: "j".into(),
            sid: "s".into(),
            token_type: TokenType::Access,
        }
    }

    #[test]
    fn one_audience_is_a_string_and_several_an_array_and_none_is_absent() {
        let one = serde_json::to_value(client_claims(&["orders"])).unwrap();
        assert_eq!(one["aud"], "orders");
        let two = serde_json::to_value(client_claims(&["orders", "stock"])).unwrap();
        assert_eq!(two["aud"], serde_json::json!(["orders", "stock"]));
        let none = serde_json::to_value(client_claims(&[])).unwrap();
        assert!(none.get("aud").is_none(), "{none}");
        for value in [one, two, none] {
            let back: ClientClaims = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(back).unwrap(), value);
        }
    }

    #[test]
    fn scopes_split_on_spaces() {
        let claims = client_claims(&[]);
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["introspect", "users:read"]);
        assert!(claims.has_scope("introspect"));
        assert!(!claims.has_scope("users"));
    }

    #[test]
    fn a_token_with_client_id_reads_as_a_client_and_one_with_user_id_as_a_user() {
        let client = serde_json::to_value(client_claims(&["orders"])).unwrap();
        assert!(matches!(serde_json::from_value(client.clone()).unwrap(), AnyAccessClaims::Client(_)));
        // A user's token is never a client's, and a client's cannot be read as a user's.
        assert!(serde_json::from_value::<AccessClaims>(client).is_err());
        let user = serde_json::json!({"iss": "i", "sub": "7", "userId": 7, "role": "user", "iat": 1, "exp": 2,
            "jti": "j", "sid": "s", "token_type": "access"});
        assert!(matches!(serde_json::from_value(user.clone()).unwrap(), AnyAccessClaims::User(_)));
        assert!(serde_json::from_value::<ClientClaims>(user).is_err());
    }

    #[test]
    fn either_kind_answers_who_it_is_and_what_it_may_do() {
        let client = AnyAccessClaims::Client(client_claims(&["orders", "stock"]));
        assert_eq!(
            (client.sub(), client.role(), client.client_id(), client.user_id()),
            ("billing", "service", Some("billing"), None)
        );
        assert_eq!(client.scopes().collect::<Vec<_>>(), ["introspect", "users:read"]);
        assert!(client.has_scope("users:read") && !client.has_scope("users"));
        assert_eq!(client.audiences(), ["orders", "stock"]);

        let user = serde_json::json!({"iss": "i", "sub": "7", "userId": 7, "role": "user", "iat": 1, "exp": 2,
            "jti": "j", "sid": "s", "token_type": "access", "scope": "introspect", "aud": "orders"});
        let user: AnyAccessClaims = serde_json::from_value(user).unwrap();
        assert_eq!((user.sub(), user.role(), user.client_id(), user.user_id()), ("7", "user", None, Some(7)));
        // Whatever a user's token says, it grants no scope and names no audience.
        assert_eq!(user.scopes().count(), 0);
        assert!(!user.has_scope("introspect"));
        assert!(user.audiences().is_empty());
    }
}
