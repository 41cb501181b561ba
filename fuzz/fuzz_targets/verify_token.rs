//! Token verification against hostile input, two ways per input:
//!
//! 1. the bytes as a token: nobody can sign without the keys, so nothing may verify;
//! 2. the bytes as the claims of a token signed with the right key and header, which reaches
//!    the claim parsing and time checks a forger cannot: whatever verifies must carry exactly
//!    the claims that were signed, and they must pass the rules.
//!
//! Neither may panic.

#![no_main]

use std::sync::LazyLock;

use auth_svc::{
    auth::keys::Secrets,
    auth::tokens::{ACCESS_TYP, CLOCK_SKEW_SECONDS, REFRESH_TYP, TokenKeys, now_unix},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, crypto};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const ISSUER: &str = "auth-svc";
const ACCESS_SECRET: &str = "fuzz-access-secret-fuzz-access-secret-00";
const REFRESH_SECRET: &str = "fuzz-refresh-secret-fuzz-refresh-secret-0";

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| {
    let secrets = Secrets {
        access: Some(SecretString::from(ACCESS_SECRET)),
        refresh: SecretString::from(REFRESH_SECRET),
        generated: false,
    };
    TokenKeys::new(&secrets, ISSUER, 900).expect("HS256 keys")
});

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    assert!(KEYS.verify_access(&token).is_err(), "forged access token verified");
    assert!(KEYS.verify_refresh(&token).is_err(), "forged refresh token verified");

    let access = sign(ACCESS_TYP, ACCESS_SECRET, data);
    let before = now_unix();
    let verified = KEYS.verify_access(&access).ok().map(|claims| to_json(&claims));
    check_signed_claims(data, verified, "access", before);

    let refresh = sign(REFRESH_TYP, REFRESH_SECRET, data);
    let before = now_unix();
    let verified = KEYS.verify_refresh(&refresh).ok().map(|claims| to_json(&claims));
    check_signed_claims(data, verified, "refresh", before);
});

/// `payload` signed as we sign: HS256 with the kind's secret and `typ`.
fn sign(typ: &str, secret: &str, payload: &[u8]) -> String {
    let header = serde_json::json!({"alg": "HS256", "typ": typ}).to_string();
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let key = EncodingKey::from_secret(secret.as_bytes());
    let signature = crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("HMAC takes any key");
    format!("{message}.{signature}")
}

fn to_json(claims: &impl Serialize) -> Value {
    serde_json::to_value(claims).expect("claims serialize")
}

/// What verified (if anything) is what was signed, and passes the rules.
fn check_signed_claims(payload: &[u8], verified: Option<Value>, kind: &str, before: i64) {
    let Some(Value::Object(verified)) = verified else { return };
    let signed: SignedClaims = serde_json::from_slice(payload).expect("verified claims parse");
    for (name, value) in &verified {
        assert_eq!(signed.get(name), Some(value), "claim {name} changed in verification");
    }
    assert_eq!(verified["iss"], ISSUER);
    assert_eq!(verified["token_type"], kind);
    assert!(verified["exp"].as_i64() >= Some(before), "expired token verified");
    assert!(verified["iat"].as_i64() <= Some(now_unix() + CLOCK_SKEW_SECONDS), "future iat verified");
    if let Some(nbf) = &signed.nbf {
        assert!(nbf.as_f64().is_some_and(|nbf| nbf <= now_unix() as f64 + 0.5), "future nbf verified: {nbf}");
    }
}

/// The claims verification reads, as signed. Not a `serde_json::Value`: like the verifier, this
/// skips unknown claims unparsed (`"x": 1e999` is no number a `Value` can hold, yet such a
/// token is fine; the fuzzer found that out).
#[derive(Deserialize)]
struct SignedClaims {
    iss: Option<Value>,
    sub: Option<Value>,
    #[serde(rename = "userId")]
    user_id: Option<Value>,
    role: Option<Value>,
    iat: Option<Value>,
    exp: Option<Value>,
    jti: Option<Value>,
    sid: Option<Value>,
    token_type: Option<Value>,
    nbf: Option<Value>,
}

impl SignedClaims {
    fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "iss" => self.iss.as_ref(),
            "sub" => self.sub.as_ref(),
            "userId" => self.user_id.as_ref(),
            "role" => self.role.as_ref(),
            "iat" => self.iat.as_ref(),
            "exp" => self.exp.as_ref(),
            "jti" => self.jti.as_ref(),
            "sid" => self.sid.as_ref(),
            "token_type" => self.token_type.as_ref(),
            _ => None,
        }
    }
}
