//! Token signing and verification: round trips, every refusal, and property tests.

use secrecy::SecretString;

use super::*;

fn keys() -> TokenKeys {
    let secrets = Secrets {
        access: Some(SecretString::from("a".repeat(40))),
        refresh: SecretString::from("r".repeat(40)),
        generated: false,
    };
    TokenKeys::new(&secrets, "auth-svc", 900).unwrap()
}

fn spec(issued_at: i64) -> PairSpec<'static> {
    PairSpec {
        user_id: 7,
        role: "user",
        session_id: "fam",
        refresh_jti: "r1",
        access_jti: "a1",
        issued_at,
        refresh_expires_at: issued_at + 3600,
        amr: "pwd",
    }
}

#[test]
fn a_pair_verifies_each_token_only_as_its_own_kind() {
    let keys = keys();
    let pair = keys.sign_pair(&spec(now_unix())).expect("sign");
    let access = keys.verify_access(&pair.access_token).expect("access verifies");
    assert_eq!((access.user_id, access.role.as_str(), access.sid.as_str()), (7, "user", "fam"));
    assert_eq!(keys.verify_refresh(&pair.refresh_token).expect("refresh verifies").jti, "r1");
    assert!(keys.verify_access(&pair.refresh_token).is_err());
    assert!(keys.verify_refresh(&pair.access_token).is_err());
}

#[test]
fn signing_the_same_row_twice_gives_the_same_tokens() {
    let keys = keys();
    let now = now_unix();
    let first = keys.sign_pair(&spec(now)).expect("sign");
    let second = keys.sign_pair(&spec(now)).expect("sign");
    assert_eq!(first.access_token, second.access_token);
    assert_eq!(first.refresh_token, second.refresh_token);
}

#[test]
fn expired_and_future_tokens_are_refused() {
    let keys = keys();
    let expired = keys.sign_pair(&spec(now_unix() - 901)).expect("sign");
    assert_eq!(keys.verify_access(&expired.access_token), Err(TokenError::Expired));
    let future = keys.sign_pair(&spec(now_unix() + 60)).expect("sign");
    assert_eq!(keys.verify_access(&future.access_token), Err(TokenError::NotYetValid));
}

#[test]
fn garbage_is_invalid_not_a_panic() {
    let keys = keys();
    for token in ["", "a", "a.b", "a.b.c", "....", &"x".repeat(100_000)] {
        assert_eq!(keys.verify_access(token), Err(TokenError::Invalid), "{token:.20}");
    }
}

mod asymmetric {
    use std::path::{Path, PathBuf};

    use jsonwebtoken::{EncodingKey, encode};
    use secrecy::SecretString;

    use super::*;
    use crate::config::{KeyAlgorithm, KeyConfig};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keys").join(name)
    }

    fn private(kid: &str, algorithm: KeyAlgorithm, file: &str) -> AsymmetricKey {
        let config = KeyConfig {
            algorithm,
            private_key_file: Some(fixture(file)),
            private_key_pem: None,
            public_key_file: None,
            public_key_pem: None,
        };
        keys::load(kid, &config).unwrap()
    }

    fn public(kid: &str, algorithm: KeyAlgorithm, file: &str) -> AsymmetricKey {
        let config = KeyConfig {
            algorithm,
            private_key_file: None,
            private_key_pem: None,
            public_key_file: Some(fixture(file)),
            public_key_pem: None,
        };
        keys::load(kid, &config).unwrap()
    }

    fn secrets(access: bool) -> Secrets {
        Secrets {
            access: access.then(|| SecretString::from("a".repeat(40))),
            refresh: SecretString::from("r".repeat(40)),
            generated: false,
        }
    }

    fn ring(keys: Vec<AsymmetricKey>, signing: Option<&str>) -> TokenKeys {
        TokenKeys::with_keys(&secrets(true), keys, signing, "auth-svc", 900).unwrap()
    }

    fn access_token(keys: &TokenKeys) -> String {
        keys.sign_pair(&spec(now_unix())).unwrap().access_token
    }

    #[test]
    fn each_algorithm_signs_with_its_kid_and_verifies() {
        for (algorithm, file, alg) in [
            (KeyAlgorithm::EdDSA, "ed25519-a.pem", Algorithm::EdDSA),
            (KeyAlgorithm::ES256, "p256-a.pem", Algorithm::ES256),
        ] {
            let keys = ring(vec![private("k1", algorithm, file)], Some("k1"));
            let pair = keys.sign_pair(&spec(now_unix())).unwrap();
            let header = jsonwebtoken::decode_header(&pair.access_token).unwrap();
            assert_eq!((header.alg, header.kid.as_deref(), header.typ.as_deref()), (alg, Some("k1"), Some(ACCESS_TYP)));
            assert_eq!(keys.verify_access_with_kid(&pair.access_token).unwrap().1, "k1");
            // Refresh tokens stay HS256 under the refresh secret, with their own kid.
            let refresh_header = jsonwebtoken::decode_header(&pair.refresh_token).unwrap();
            assert_eq!(refresh_header.alg, Algorithm::HS256);
            assert!(keys.verify_refresh(&pair.refresh_token).is_ok());
            // Deterministic signatures: a re-signed row gives the same pair (the reuse interval relies on it).
            let again = keys.sign_pair(&spec(pair_issued_at(&keys, &pair.access_token))).unwrap();
            assert_eq!(again.access_token, pair.access_token, "{alg:?}");
            assert_eq!(keys.jwks().len(), 1);
        }
    }

    fn pair_issued_at(keys: &TokenKeys, token: &str) -> i64 {
        keys.verify_access(token).unwrap().iat
    }

    /// The three steps of a rotation from A to B, and what each accepts.
    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_old_key_is_retired() {
        let before = ring(vec![private("a", KeyAlgorithm::EdDSA, "ed25519-a.pem")], Some("a"));
        let signed_by_a = access_token(&before);
        // Step 1: B added, verify only. A still signs; both verify.
        let step1 = ring(
            vec![
                private("a", KeyAlgorithm::EdDSA, "ed25519-a.pem"),
                public("b", KeyAlgorithm::ES256, "p256-b.pub.pem"),
            ],
            Some("a"),
        );
        assert!(step1.verify_access(&signed_by_a).is_ok());
        assert_eq!(step1.jwks().len(), 2);
        // Step 2: B signs, A verifies.
        let step2 = ring(
            vec![
                public("a", KeyAlgorithm::EdDSA, "ed25519-a.pub.pem"),
                private("b", KeyAlgorithm::ES256, "p256-b.pem"),
            ],
            Some("b"),
        );
        let signed_by_b = access_token(&step2);
        assert!(step2.verify_access(&signed_by_a).is_ok());
        assert!(step1.verify_access(&signed_by_b).is_ok(), "a step-1 replica accepts step-2 tokens");
        assert_eq!(step2.jwks()[0].common.key_id.as_deref(), Some("b"), "the signing key is listed first");
        // Step 3: A retired.
        let step3 = ring(vec![private("b", KeyAlgorithm::ES256, "p256-b.pem")], Some("b"));
        assert!(step3.verify_access(&signed_by_b).is_ok());
        assert_eq!(step3.verify_access(&signed_by_a), Err(TokenError::Invalid));
    }

    #[test]
    fn a_public_key_cannot_sign_and_hmac_keys_are_never_published() {
        let only_public = vec![public("a", KeyAlgorithm::EdDSA, "ed25519-a.pub.pem")];
        assert!(TokenKeys::with_keys(&secrets(true), only_public, Some("a"), "auth-svc", 900).is_err());
        let hs = TokenKeys::new(&secrets(true), "auth-svc", 900).unwrap();
        assert!(hs.jwks().is_empty());
        let without_access_secret = TokenKeys::with_keys(
            &secrets(false),
            vec![private("a", KeyAlgorithm::EdDSA, "ed25519-a.pem")],
            Some("a"),
            "auth-svc",
            900,
        )
        .unwrap();
        assert_eq!(without_access_secret.access_signing_key().0, "a");
    }

    #[test]
    fn unknown_missing_and_misused_kids_are_refused() {
        let keys = ring(vec![private("a", KeyAlgorithm::EdDSA, "ed25519-a.pem")], Some("a"));
        let other = ring(vec![private("z", KeyAlgorithm::EdDSA, "ed25519-b.pem")], Some("z"));
        assert_eq!(keys.verify_access(&access_token(&other)), Err(TokenError::Invalid), "unknown kid");
        // Same key material under a kid we do not have.
        let renamed = ring(vec![private("b", KeyAlgorithm::EdDSA, "ed25519-a.pem")], Some("b"));
        assert_eq!(keys.verify_access(&access_token(&renamed)), Err(TokenError::Invalid));
        // A genuine signature with the kid removed.
        let claims = keys.verify_access(&access_token(&keys)).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TYP.to_owned());
        let pem = std::fs::read(fixture("ed25519-a.pem")).unwrap();
        let no_kid = encode(&header, &claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap();
        assert_eq!(keys.verify_access(&no_kid), Err(TokenError::Invalid));
        // The refresh kid on an access token.
        let pair = keys.sign_pair(&spec(now_unix())).unwrap();
        assert!(keys.verify_access(&pair.refresh_token).is_err());
    }

    /// RFC 8725 section 2.1: an HS256 token whose HMAC key is the public key (as PEM text, as
    /// DER, or as the raw JWK bytes), naming the asymmetric key's kid.
    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        for (algorithm, private_file, public_file) in [
            (KeyAlgorithm::EdDSA, "ed25519-a.pem", "ed25519-a.pub.pem"),
            (KeyAlgorithm::ES256, "p256-a.pem", "p256-a.pub.pem"),
        ] {
            let keys = ring(vec![private("pk", algorithm, private_file)], Some("pk"));
            let claims = keys.verify_access(&access_token(&keys)).unwrap();
            let pem = std::fs::read(fixture(public_file)).unwrap();
            let jwk_json = serde_json::to_vec(&keys.jwks()[0]).unwrap();
            let x = match &keys.jwks()[0].algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone().into_bytes(),
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => ec.x.clone().into_bytes(),
                _ => unreachable!(),
            };
            for secret in [pem.clone(), pem.trim_ascii_end().to_vec(), jwk_json, x] {
                let mut header = Header::new(Algorithm::HS256);
                header.typ = Some(ACCESS_TYP.to_owned());
                header.kid = Some("pk".to_owned());
                let forged = encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
                assert_eq!(keys.verify_access(&forged), Err(TokenError::Invalid), "{algorithm:?}");
            }
        }
    }
}

/// Property tests: whatever arrives, verification answers with a `TokenError` and never
/// panics, and only a token signed with its kind's own key, header and claims gets through.
mod properties {
    use std::collections::BTreeMap;

    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use proptest::{prelude::*, sample::Index, strategy::Union};
    use serde_json::{Map, Value, json};

    use super::*;

    /// The issuer `keys()` is built with.
    const ISSUER: &str = "auth-svc";
    /// Distance kept from every time boundary, so a second ticking mid-test changes nothing.
    const MARGIN: i64 = 60;
    const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn secret(kind: TokenType) -> String {
        match kind {
            TokenType::Access => "a".repeat(40),
            TokenType::Refresh => "r".repeat(40),
        }
    }

    fn kid(kind: TokenType) -> String {
        keys::hmac_kid(&secrecy::SecretString::from(secret(kind)))
    }

    fn typ(kind: TokenType) -> &'static str {
        match kind {
            TokenType::Access => ACCESS_TYP,
            TokenType::Refresh => REFRESH_TYP,
        }
    }

    fn other(kind: TokenType) -> TokenType {
        match kind {
            TokenType::Access => TokenType::Refresh,
            TokenType::Refresh => TokenType::Access,
        }
    }

    fn b64(json: &Map<String, Value>) -> String {
        URL_SAFE_NO_PAD.encode(Value::Object(json.clone()).to_string())
    }

    /// Signs `header.claims` with `secret` under the HMAC algorithm the header names
    /// (HS256 for anything else), the way a forger holding that secret would.
    fn sign(header: &Map<String, Value>, claims: &Map<String, Value>, secret: &str) -> String {
        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("HS384") => Algorithm::HS384,
            Some("HS512") => Algorithm::HS512,
            _ => Algorithm::HS256,
        };
        let message = format!("{}.{}", b64(header), b64(claims));
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("HMAC takes any key");
        format!("{message}.{signature}")
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Fields no verifier knows; they must change nothing.
    fn unknown_fields() -> impl Strategy<Value = BTreeMap<String, Value>> {
        prop::collection::btree_map("x-[a-z0-9]{1,8}", json_value(), 0..3)
    }

    fn not_a_string() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!([])),
            Just(json!({"a": 1})),
        ]
    }

    fn not_an_i64() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            "-?[0-9]{1,12}".prop_map(Value::from),
            (-1e12..1e12f64).prop_map(|f| json!(f.trunc() + 0.5)),
            ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::from),
        ]
    }

    /// A token as we would sign it: header, claims and key all right for `kind`.
    #[derive(Debug, Clone)]
    struct Genuine {
        kind: TokenType,
        sub: String,
        user_id: i64,
        role: String,
        iat: i64,
        exp: i64,
        jti: String,
        sid: String,
        nbf: Option<i64>,
        extra_claims: BTreeMap<String, Value>,
        extra_header: BTreeMap<String, Value>,
    }

    impl Genuine {
        fn header(&self) -> Map<String, Value> {
            let mut header: Map<String, Value> = self.extra_header.clone().into_iter().collect();
            header.insert("alg".into(), json!("HS256"));
            header.insert("typ".into(), json!(typ(self.kind)));
            header.insert("kid".into(), json!(kid(self.kind)));
            header
        }

        fn claims(&self) -> Map<String, Value> {
            let mut claims: Map<String, Value> = self.extra_claims.clone().into_iter().collect();
            claims.insert("iss".into(), json!(ISSUER));
            claims.insert("sub".into(), json!(self.sub));
            claims.insert("userId".into(), json!(self.user_id));
            if self.kind == TokenType::Access {
                claims.insert("role".into(), json!(self.role));
            }
            claims.insert("iat".into(), json!(self.iat));
            claims.insert("exp".into(), json!(self.exp));
            claims.insert("jti".into(), json!(self.jti));
            claims.insert("sid".into(), json!(self.sid));
            claims.insert("token_type".into(), json!(self.kind));
            if let Some(nbf) = self.nbf {
                claims.insert("nbf".into(), json!(nbf));
            }
            claims
        }

        fn access_claims(&self) -> AccessClaims {
            AccessClaims {
                iss: ISSUER.into(),
                sub: self.sub.clone(),
                user_id: self.user_id,
                role: self.role.clone(),
                iat: self.iat,
                exp: self.exp,
                jti: self.jti.clone(),
                amr: Vec::new(),
                sid: self.sid.clone(),
                token_type: TokenType::Access,
            }
        }

        fn refresh_claims(&self) -> RefreshClaims {
            RefreshClaims {
                iss: ISSUER.into(),
                sub: self.sub.clone(),
                user_id: self.user_id,
                iat: self.iat,
                exp: self.exp,
                jti: self.jti.clone(),
                sid: self.sid.clone(),
                token_type: TokenType::Refresh,
            }
        }
    }

    fn kind() -> impl Strategy<Value = TokenType> {
        prop_oneof![Just(TokenType::Access), Just(TokenType::Refresh)]
    }

    fn genuine(kind: TokenType) -> impl Strategy<Value = Genuine> {
        let now = now_unix();
        (
            (".{0,20}", any::<i64>(), ".{0,20}"),
            (prop_oneof![now - 1_000_000_000..=now + CLOCK_SKEW_SECONDS - 2, Just(i64::MIN)], now + MARGIN..=i64::MAX),
            (".{0,36}", ".{0,36}", prop::option::of(0..=now)),
            (unknown_fields(), unknown_fields()),
        )
            .prop_map(
                move |((sub, user_id, role), (iat, exp), (jti, sid, nbf), (extra_claims, extra_header))| Genuine {
                    kind,
                    sub,
                    user_id,
                    role,
                    iat,
                    exp,
                    jti,
                    sid,
                    nbf,
                    extra_claims,
                    extra_header,
                },
            )
    }

    /// One thing wrong with an otherwise genuine token.
    #[derive(Debug, Clone)]
    enum Defect {
        /// A header field set to this value, or removed.
        Header(&'static str, Option<Value>),
        /// Signed with this secret instead of the kind's own.
        Key(String),
        /// A claim set to this value, or removed.
        Claim(&'static str, Option<Value>),
    }

    impl Defect {
        fn apply(&self, header: &mut Map<String, Value>, claims: &mut Map<String, Value>, secret: &mut String) {
            let (map, name, value) = match self {
                Defect::Key(other) => return other.clone_into(secret),
                Defect::Header(name, value) => (header, name, value),
                Defect::Claim(name, value) => (claims, name, value),
            };
            match value {
                Some(value) => map.insert((*name).into(), value.clone()),
                None => map.remove(*name),
            };
        }
    }

    /// Every defect this kind of token can have, each with the refusal it must earn on its own.
    fn defect(kind: TokenType) -> impl Strategy<Value = (Defect, TokenError)> {
        use Defect::{Claim, Header, Key};
        use TokenError::{Expired, Invalid, NotYetValid, WrongType};

        let now = now_unix();
        let own_secret = secret(kind);
        let other_kind = other(kind);
        let mut required = vec!["iss", "sub", "userId", "iat", "exp", "jti", "sid", "token_type"];
        let mut strings = vec!["sub", "jti", "sid"];
        if kind == TokenType::Access {
            required.push("role");
            strings.push("role");
        }
        let algs = vec!["HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256", "none", "None", "hs256", "HS256 ", ""];
        let typs = prop_oneof![
            Just(typ(other_kind).to_owned()),
            Just("JWT".to_owned()),
            Just(typ(kind).to_uppercase()),
            "[ -~]{0,12}",
        ];
        let some = |name: &'static str, error: TokenError| move |value: Value| (Claim(name, Some(value)), error);
        let defects: Vec<BoxedStrategy<(Defect, TokenError)>> = vec![
            // Header: another or no algorithm (HMAC ones signed with the same secret).
            prop::sample::select(algs).prop_map(|alg| (Header("alg", Some(json!(alg))), Invalid)).boxed(),
            Just((Header("alg", None), Invalid)).boxed(),
            not_a_string().prop_map(|alg| (Header("alg", Some(alg)), Invalid)).boxed(),
            // Header: another, no or a malformed `typ` (`null` reads as absent).
            typs.prop_filter("another typ", move |t| t != typ(kind))
                .prop_map(|t| (Header("typ", Some(json!(t))), WrongType))
                .boxed(),
            prop_oneof![Just(None), Just(Some(Value::Null))].prop_map(|t| (Header("typ", t), WrongType)).boxed(),
            not_a_string()
                .prop_filter("null reads as absent", |t| !t.is_null())
                .prop_map(|t| (Header("typ", Some(t)), Invalid))
                .boxed(),
            // Header: no `kid`, the other kind's, an unknown one, or not a string.
            prop_oneof![
                Just(None),
                Just(Some(json!(kid(other_kind)))),
                "[ -~]{0,24}".prop_map(|k| Some(json!(k))),
                not_a_string().prop_map(Some),
            ]
            .prop_filter("another kid", move |k| k.as_ref() != Some(&json!(kid(kind))))
            .prop_map(|k| (Header("kid", k), Invalid))
            .boxed(),
            // Key: the other kind's or any other.
            prop_oneof![Just(secret(other_kind)), ".{0,64}"]
                .prop_filter("another key", move |s| *s != own_secret)
                .prop_map(|s| (Key(s), Invalid))
                .boxed(),
            // Claims: a required one missing, or of the wrong type.
            prop::sample::select(required).prop_map(|name| (Claim(name, None), Invalid)).boxed(),
            (prop::sample::select(strings), not_a_string())
                .prop_map(|(name, value)| (Claim(name, Some(value)), Invalid))
                .boxed(),
            (prop::sample::select(vec!["userId", "iat", "exp"]), not_an_i64())
                .prop_map(|(name, value)| (Claim(name, Some(value)), Invalid))
                .boxed(),
            // Claims: wrong issuer.
            prop_oneof![
                ".{0,12}".prop_filter("another issuer", |s| s != ISSUER).prop_map(Value::from),
                not_a_string(),
                Just(json!([ISSUER])),
            ]
            .prop_map(some("iss", Invalid))
            .boxed(),
            // Claims: times. `exp` gets no leeway, `iat` and `nbf` CLOCK_SKEW_SECONDS.
            // (Half of each range hugs the boundary, where a lax check would show.)
            prop_oneof![now - MARGIN - 300..=now - MARGIN, 0..=now - MARGIN]
                .prop_map(|exp| json!(exp))
                .prop_map(some("exp", Expired))
                .boxed(),
            (i64::MIN..0).prop_map(|exp| json!(exp)).prop_map(some("exp", Invalid)).boxed(),
            future_beyond_skew(now).prop_map(|iat| json!(iat)).prop_map(some("iat", NotYetValid)).boxed(),
            future_beyond_skew(now).prop_map(|nbf| json!(nbf)).prop_map(some("nbf", NotYetValid)).boxed(),
            prop_oneof![(i64::MIN..0).prop_map(Value::from), Just(Value::Null), "[0-9]{0,8}".prop_map(Value::from)]
                .prop_map(some("nbf", Invalid))
                .boxed(),
            // Claims: the other kind, or no kind.
            Just((Claim("token_type", Some(json!(other_kind))), WrongType)).boxed(),
            prop_oneof![
                "[a-zA-Z]{0,10}".prop_filter("no kind", |s| s != "access" && s != "refresh").prop_map(Value::from),
                not_a_string(),
            ]
            .prop_map(some("token_type", Invalid))
            .boxed(),
        ];
        Union::new(defects)
    }

    fn future_beyond_skew(now: i64) -> impl Strategy<Value = i64> {
        let soonest = now + CLOCK_SKEW_SECONDS + MARGIN;
        prop_oneof![soonest..=soonest + 300, soonest..=i64::MAX]
    }

    /// A genuine token with no defect half of the time, otherwise with one to three.
    fn candidate() -> impl Strategy<Value = (Genuine, Vec<(Defect, TokenError)>)> {
        kind().prop_flat_map(|kind| {
            let defects = prop_oneof![Just(Vec::new()), prop::collection::vec(defect(kind), 1..=3)];
            (genuine(kind), defects)
        })
    }

    fn verify_as(keys: &TokenKeys, kind: TokenType, token: &str) -> Result<(), TokenError> {
        match kind {
            TokenType::Access => keys.verify_access(token).map(drop),
            TokenType::Refresh => keys.verify_refresh(token).map(drop),
        }
    }

    /// 256 cases keep `cargo test` quick; `PROPTEST_CASES=N` asks for a longer run.
    fn config() -> ProptestConfig {
        let default = ProptestConfig::default();
        let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 256 };
        ProptestConfig { cases, ..default }
    }

    /// Our claim names (and some others), so that random claims sometimes come out right.
    fn claim_name() -> impl Strategy<Value = String> {
        let ours = vec!["iss", "sub", "userId", "role", "iat", "exp", "nbf", "jti", "sid", "token_type"];
        prop_oneof![prop::sample::select(ours).prop_map(str::to_owned), ".{0,8}"]
    }

    fn claim_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            json_value(),
            Just(json!(ISSUER)),
            Just(json!("access")),
            Just(json!("refresh")),
            Just(json!(now_unix())),
            Just(json!(i64::MAX)),
        ]
    }

    fn verify_to_json(keys: &TokenKeys, kind: TokenType, token: &str) -> Result<Value, TokenError> {
        fn json(claims: impl Serialize) -> Value {
            serde_json::to_value(claims).expect("claims serialize")
        }
        match kind {
            TokenType::Access => keys.verify_access(token).map(json),
            TokenType::Refresh => keys.verify_refresh(token).map(json),
        }
    }

    fn outcome<T>(verified: &Result<T, TokenError>) -> Result<(), TokenError> {
        verified.as_ref().map(drop).map_err(|err| *err)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let keys = keys();
            let token = String::from_utf8_lossy(&bytes);
            prop_assert!(keys.verify_access(&token).is_err());
            prop_assert!(keys.verify_refresh(&token).is_err());
        }

        #[test]
        fn three_segment_strings_are_refused(
            header in prop_oneof![
                "[A-Za-z0-9_-]{0,64}",
                json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
                kind().prop_map(|k| URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": typ(k)}).to_string())),
            ],
            payload in prop_oneof![
                "[A-Za-z0-9_-]{0,64}",
                json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
            ],
            signature in prop_oneof!["[A-Za-z0-9_-]{43}", "[A-Za-z0-9+/=_-]{0,64}"],
        ) {
            let keys = keys();
            let token = format!("{header}.{payload}.{signature}");
            prop_assert!(keys.verify_access(&token).is_err());
            prop_assert!(keys.verify_refresh(&token).is_err());
        }

        /// `alg: none`, with no signature or a made-up one, over claims that are otherwise right.
        #[test]
        fn unsigned_tokens_are_refused(
            genuine in kind().prop_flat_map(genuine),
            alg in prop::sample::select(vec!["none", "None", "NONE"]),
            signature in prop_oneof![Just(String::new()), "[A-Za-z0-9_-]{1,86}"],
        ) {
            let keys = keys();
            let mut header = genuine.header();
            header.insert("alg".into(), json!(alg));
            let token = format!("{}.{}.{signature}", b64(&header), b64(&genuine.claims()));
            prop_assert_eq!(verify_as(&keys, genuine.kind, &token), Err(TokenError::Invalid));
        }

        /// The model: a token verifies exactly when it has no defect, then with the claims it
        /// was signed with; a single defect earns its own refusal.
        #[test]
        fn only_a_token_without_defects_verifies((genuine, defects) in candidate()) {
            let keys = keys();
            let (mut header, mut claims, mut key) = (genuine.header(), genuine.claims(), secret(genuine.kind));
            for (defect, _) in &defects {
                defect.apply(&mut header, &mut claims, &mut key);
            }
            let token = sign(&header, &claims, &key);
            let (access, refresh) = (keys.verify_access(&token), keys.verify_refresh(&token));
            let (access_outcome, refresh_outcome) = (outcome(&access), outcome(&refresh));
            let (own, cross) = match genuine.kind {
                TokenType::Access => (access_outcome, refresh_outcome),
                TokenType::Refresh => (refresh_outcome, access_outcome),
            };
            match defects.as_slice() {
                [] => {
                    match genuine.kind {
                        TokenType::Access => prop_assert_eq!(access, Ok(genuine.access_claims())),
                        TokenType::Refresh => prop_assert_eq!(refresh, Ok(genuine.refresh_claims())),
                    }
                    prop_assert!(cross.is_err(), "a genuine token verified as the other kind");
                }
                [(_, refusal)] => prop_assert_eq!(own, Err(*refusal)),
                // Defects only make claims wrong, so several never cancel out. (Several can
                // make a genuine token of the *other* kind, so `cross` is not checked.)
                _ => prop_assert!(own.is_err()),
            }
        }

        /// Any JSON at all, signed with the right key and header: whatever verifies carries
        /// the claims that were signed, and they pass the rules.
        #[test]
        fn signed_random_claims_verify_only_when_right(
            kind in kind(),
            claims in prop::collection::btree_map(claim_name(), claim_value(), 0..12),
        ) {
            let keys = keys();
            let claims: Map<String, Value> = claims.into_iter().collect();
            let header = Map::from_iter([
                ("alg".to_owned(), json!("HS256")),
                ("typ".to_owned(), json!(typ(kind))),
                ("kid".to_owned(), json!(kid(kind))),
            ]);
            let token = sign(&header, &claims, &secret(kind));
            let before = now_unix();
            if let Ok(Value::Object(verified)) = verify_to_json(&keys, kind, &token) {
                for (name, value) in &verified {
                    prop_assert_eq!(claims.get(name), Some(value), "claim {}", name);
                }
                prop_assert_eq!(&verified["iss"], &json!(ISSUER));
                prop_assert_eq!(&verified["token_type"], &json!(kind));
                prop_assert!(verified["exp"].as_i64() >= Some(before));
                prop_assert!(verified["iat"].as_i64() <= Some(now_unix() + CLOCK_SKEW_SECONDS));
            }
        }

        #[test]
        fn a_signed_pair_verifies_and_round_trips(
            user_id in any::<i64>(),
            role in ".{0,24}",
            session_id in ".{0,36}",
            access_jti in ".{0,36}",
            refresh_jti in ".{0,36}",
            age in 0..=900 - MARGIN,
            refresh_expires_at in now_unix() + MARGIN..=i64::MAX,
        ) {
            let keys = keys();
            let issued_at = now_unix() - age;
            let spec = PairSpec {
                user_id,
                role: &role,
                session_id: &session_id,
                refresh_jti: &refresh_jti,
                access_jti: &access_jti,
                issued_at,
                refresh_expires_at,
                amr: "pwd",
            };
            let pair = keys.sign_pair(&spec).expect("sign");
            let access = AccessClaims {
                iss: ISSUER.into(),
                sub: user_id.to_string(),
                user_id,
                role: role.clone(),
                iat: issued_at,
                exp: issued_at + 900,
                jti: access_jti.clone(),
                sid: session_id.clone(),
                token_type: TokenType::Access,
                amr: vec!["pwd".to_owned()],
            };
            let refresh = RefreshClaims {
                iss: ISSUER.into(),
                sub: user_id.to_string(),
                user_id,
                iat: issued_at,
                exp: refresh_expires_at,
                jti: refresh_jti.clone(),
                sid: session_id.clone(),
                token_type: TokenType::Refresh,
            };
            prop_assert_eq!(pair.access_expires_at, access.exp);
            prop_assert_eq!(keys.verify_access(&pair.access_token), Ok(access));
            prop_assert_eq!(keys.verify_refresh(&pair.refresh_token), Ok(refresh));
            prop_assert!(keys.verify_access(&pair.refresh_token).is_err());
            prop_assert!(keys.verify_refresh(&pair.access_token).is_err());
        }

        /// Every character is covered: the header and payload by the MAC over their text, the
        /// signature by the MAC itself. Its last character also holds 2 padding bits, which
        /// the strict decoder refuses to see set (see `the_signature_has_one_spelling`).
        #[test]
        fn changing_any_one_character_breaks_a_genuine_token(
            kind in kind(),
            user_id in any::<i64>(),
            session_id in "[a-z0-9-]{0,36}",
            at in any::<Index>(),
            replacement in prop_oneof![
                prop::sample::select(B64URL.chars().collect::<Vec<_>>()),
                prop::sample::select(vec!['.', '=', '+', '/', '~', ' ', '\0', 'é']),
            ],
        ) {
            let keys = keys();
            let spec = PairSpec { user_id, session_id: &session_id, ..spec(now_unix()) };
            let pair = keys.sign_pair(&spec).expect("sign");
            let token = match kind {
                TokenType::Access => pair.access_token,
                TokenType::Refresh => pair.refresh_token,
            };
            let mut chars: Vec<char> = token.chars().collect();
            let at = at.index(chars.len());
            prop_assume!(chars[at] != replacement);
            chars[at] = replacement;
            let forged: String = chars.into_iter().collect();
            prop_assert!(keys.verify_access(&forged).is_err(), "position {at}");
            prop_assert!(keys.verify_refresh(&forged).is_err(), "position {at}");
        }
    }

    /// A 32-byte MAC is 43 base64url characters: the last one carries 4 bits of MAC and 2 bits
    /// of padding, so 4 of its 64 spellings decode to the same MAC under a lenient decoder.
    /// jsonwebtoken's decoder (base64's `URL_SAFE_NO_PAD`) refuses set padding bits, so only the
    /// token as signed verifies. Were that to change, the 3 aliases would carry the very same
    /// claims (no forgery, but no longer one spelling per token: blocklists keyed by the
    /// token's text would miss them) and this test would say so.
    #[test]
    fn the_signature_has_one_spelling() {
        let keys = keys();
        for kind in [TokenType::Access, TokenType::Refresh] {
            let pair = keys.sign_pair(&spec(now_unix())).expect("sign");
            let token = match kind {
                TokenType::Access => pair.access_token,
                TokenType::Refresh => pair.refresh_token,
            };
            let (signed, last) = token.split_at(token.len() - 1);
            assert_eq!(token.rsplit('.').next().map(str::len), Some(43));
            let verifying: Vec<char> =
                B64URL.chars().filter(|c| verify_as(&keys, kind, &format!("{signed}{c}")).is_ok()).collect();
            assert_eq!(verifying.iter().collect::<String>(), last, "{kind:?}");
        }
    }
}
