//! Access tokens (EdDSA JWTs, Ed25519 keys from `crate::keys`) and refresh
//! tokens (opaque random strings).
//!
//! Access tokens carry the signing key's `kid` in the header. Decoding pins
//! the algorithm to EdDSA (so `alg: none`, HS256 "algorithm confusion" tokens
//! keyed with the public key, and every other algorithm are rejected),
//! requires a known `kid`, and checks `iss`, `aud` and `exp` (with a small
//! leeway for clock skew).
//!
//! Refresh tokens are 32 random bytes in base64url; only their SHA-256 (hex)
//! is ever stored, so a leaked database cannot be replayed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bowchat_model::UserId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::SigningKey;
use crate::AuthError;

/// Who issues access tokens, for whom, and how long tokens live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// Clock skew tolerated when checking `exp` (and `iat`).
    pub leeway_secs: u64,
    /// A rotated refresh token presented again within this many seconds of
    /// its rotation gets the same successor instead of revoking the family
    /// (two tabs refreshing at once); 0 turns the grace off.
    pub refresh_reuse_grace_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: "bowchat".to_string(),
            audience: "bowchat-api".to_string(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            leeway_secs: 5,
            refresh_reuse_grace_secs: 10,
        }
    }
}

/// The claims of an access token. Times are Unix seconds (JWT NumericDate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id; a string on the wire, as RFC 7519 defines `sub`.
    #[serde(with = "sub_as_string")]
    pub sub: UserId,
    /// Display name at issue time, for clients; not authoritative.
    pub name: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique token id (UUID), for logs.
    pub jti: String,
    /// The session: the refresh family this token was issued for. Logout
    /// and family revocation put it on the deny list, which ends the token
    /// before its `exp`.
    pub sid: String,
    /// Issue time in milliseconds (`iat` has whole seconds): a block ends
    /// the tokens issued up to its exact time, not those of a login right
    /// after an unblock. Absent in tokens of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
}

impl AccessClaims {
    /// Claims for `user` in session `sid` issued at `now_secs`, valid for
    /// `config.access_ttl_secs`.
    pub fn new(user: UserId, name: &str, config: &TokenConfig, now_secs: i64, sid: &str) -> Self {
        Self {
            sub: user,
            name: name.to_string(),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            iat: now_secs,
            exp: now_secs.saturating_add(secs_i64(config.access_ttl_secs)),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: sid.to_string(),
            iat_ms: None,
        }
    }

    /// When the token was issued, in ms; without `iat_ms`, the last
    /// millisecond of the `iat` second (the latest it can have been).
    pub fn issued_ms(&self) -> i64 {
        self.iat_ms
            .unwrap_or_else(|| self.iat.saturating_mul(1000).saturating_add(999))
    }
}

mod sub_as_string {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom("sub is not a user id"))
    }
}

fn secs_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// The one algorithm access tokens are signed and verified with.
pub const ACCESS_ALG: Algorithm = Algorithm::EdDSA;

/// Signs `claims` with EdDSA and puts the key's `kid` in the header.
pub fn encode_access(claims: &AccessClaims, key: &SigningKey) -> Result<String, AuthError> {
    let mut header = Header::new(ACCESS_ALG);
    header.kid = Some(key.kid().to_string());
    jsonwebtoken::encode(&header, claims, key.encoding())
        .map_err(|e| AuthError::Unavailable(format!("cannot sign access token: {e}")))
}

/// Verifies an access token against the verifying `keys` and `config`,
/// using the system clock. Every failure but expiry is `TokenInvalid`: a
/// client learns nothing about which check failed.
pub fn decode_access<'k>(
    token: &str,
    keys: impl IntoIterator<Item = &'k SigningKey>,
    config: &TokenConfig,
) -> Result<AccessClaims, AuthError> {
    // The header is read before the signature is checked, only to pick the
    // key; the algorithm it names is not trusted (Validation pins EdDSA).
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
    if header.alg != ACCESS_ALG {
        return Err(AuthError::TokenInvalid);
    }
    let kid = header.kid.ok_or(AuthError::TokenInvalid)?;
    let key = keys
        .into_iter()
        .find(|k| k.kid() == kid)
        .ok_or(AuthError::TokenInvalid)?;

    let mut validation = Validation::new(ACCESS_ALG);
    validation.algorithms = vec![ACCESS_ALG];
    validation.set_issuer(&[config.issuer.as_str()]);
    validation.set_audience(&[config.audience.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.leeway = config.leeway_secs;

    let data =
        jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::TokenInvalid,
            }
        })?;
    let claims = data.claims;
    // A token "issued" in the future was not made by this clock.
    let now = secs_i64(jsonwebtoken::get_current_timestamp());
    if claims.iat > now.saturating_add(secs_i64(config.leeway_secs)) {
        return Err(AuthError::TokenInvalid);
    }
    Ok(claims)
}

/// The key stream that seals `token`'s successor: only a holder of `token`
/// can compute it.
fn successor_pad(token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"bowchat refresh successor\0");
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

/// Seals `successor` (a refresh token) under `token`, the one it replaces:
/// hex of the successor's 32 bytes XOR a pad derived from `token`. Each
/// token is rotated once, so each pad seals one value (a one-time pad). A
/// leaked database yields nothing without the rotated token itself, and a
/// thief holding a rotated token gets the successor only through the auth
/// service, inside the grace window.
pub fn seal_successor(token: &str, successor: &str) -> String {
    let pad = successor_pad(token);
    let bytes = URL_SAFE_NO_PAD.decode(successor).unwrap_or_default();
    hex::encode(
        bytes
            .iter()
            .zip(pad.iter())
            .map(|(b, p)| b ^ p)
            .collect::<Vec<u8>>(),
    )
}

/// The successor sealed by [`seal_successor`], or `None` when `sealed` is
/// not a sealed token.
pub fn unseal_successor(token: &str, sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() != 32 {
        return None;
    }
    let pad = successor_pad(token);
    let plain: Vec<u8> = bytes.iter().zip(pad.iter()).map(|(b, p)| b ^ p).collect();
    Some(URL_SAFE_NO_PAD.encode(plain))
}

/// A new opaque refresh token: 32 random bytes, base64url without padding.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The form a refresh token is stored and looked up in: hex SHA-256.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;

    use super::*;

    fn now() -> i64 {
        secs_i64(jsonwebtoken::get_current_timestamp())
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn new_key() -> SigningKey {
        SigningKey::generate(0).expect("key")
    }

    fn setup() -> (SigningKey, TokenConfig, AccessClaims) {
        let key = new_key();
        let config = TokenConfig::default();
        let claims = AccessClaims::new(42, "Ada", &config, now(), "sid-1");
        (key, config, claims)
    }

    fn decode_one(
        token: &str,
        key: &SigningKey,
        config: &TokenConfig,
    ) -> Result<AccessClaims, AuthError> {
        decode_access(token, [key], config)
    }

    /// `header.payload.signature` with the signature made by `sign`.
    fn hand_made(
        header: &serde_json::Value,
        payload: &serde_json::Value,
        key: &EncodingKey,
        alg: Algorithm,
    ) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
        format!("{message}.{sig}")
    }

    #[test]
    fn round_trip_and_wire_format() {
        let (key, config, claims) = setup();
        let token = encode_access(&claims, &key).expect("encode");
        assert_eq!(decode_one(&token, &key, &config), Ok(claims.clone()));

        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let payload = token.split('.').nth(1).expect("payload");
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        assert_eq!(json["sub"], "42");
        assert_eq!(json["iss"], "bowchat");
        assert_eq!(json["aud"], "bowchat-api");
        assert_eq!(json["exp"].as_i64(), Some(claims.iat + 900));
    }

    #[test]
    fn any_of_several_keys_verifies_by_kid() {
        let (key, config, claims) = setup();
        let other = new_key();
        let token = encode_access(&claims, &key).expect("encode");
        assert!(decode_access(&token, [&other, &key], &config).is_ok());
        let other_token = encode_access(&claims, &other).expect("encode");
        assert!(decode_access(&other_token, [&other, &key], &config).is_ok());
    }

    #[test]
    fn alg_none_is_rejected() {
        let (key, config, claims) = setup();
        let claims = serde_json::to_value(&claims).expect("json");
        for alg in ["none", "None", "NONE"] {
            let header = serde_json::json!({ "alg": alg, "typ": "JWT", "kid": key.kid() });
            for sig in ["", "x"] {
                let token = format!("{}.{}.{}", b64(&header), b64(&claims), sig);
                assert_eq!(
                    decode_one(&token, &key, &config),
                    Err(AuthError::TokenInvalid),
                    "{alg}"
                );
            }
        }
    }

    /// The classic algorithm confusion: HS256 keyed with the public key
    /// (which anyone can fetch from the JWKS), in every encoding a verifier
    /// might use as the HMAC secret.
    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        let (key, config, claims) = setup();
        let payload = serde_json::to_value(&claims).expect("json");
        let x = URL_SAFE_NO_PAD.encode(key.public_key());
        let jwk = serde_json::to_string(&key.jwk()).expect("jwk");
        let secrets: Vec<Vec<u8>> = vec![
            key.public_key().to_vec(),
            x.clone().into_bytes(),
            jwk.into_bytes(),
        ];
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for secret in &secrets {
                let header = serde_json::json!({
                    "alg": format!("{alg:?}"), "typ": "JWT", "kid": key.kid()
                });
                let token = hand_made(&header, &payload, &EncodingKey::from_secret(secret), alg);
                assert_eq!(
                    decode_one(&token, &key, &config),
                    Err(AuthError::TokenInvalid),
                    "{alg:?}"
                );
            }
        }
    }

    #[test]
    fn other_algorithm_names_over_a_valid_signature_are_rejected() {
        let (key, config, claims) = setup();
        let good = encode_access(&claims, &key).expect("encode");
        let signature = good.rsplit('.').next().expect("sig");
        let claims_json = serde_json::to_value(&claims).expect("json");
        for alg in ["RS256", "ES256", "HS256", "PS256", "Ed25519", "eddsa"] {
            let header = serde_json::json!({ "alg": alg, "typ": "JWT", "kid": key.kid() });
            let token = format!("{}.{}.{}", b64(&header), b64(&claims_json), signature);
            assert_eq!(
                decode_one(&token, &key, &config),
                Err(AuthError::TokenInvalid),
                "{alg}"
            );
        }
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let (key, config, claims) = setup();
        let token = encode_access(&claims, &key).expect("encode");
        let parts: Vec<&str> = token.split('.').collect();

        // Payload swapped for one naming another user, signature kept.
        let mut forged = claims.clone();
        forged.sub = 1;
        let forged_json = serde_json::to_value(&forged).expect("json");
        let token2 = format!("{}.{}.{}", parts[0], b64(&forged_json), parts[2]);
        assert_eq!(
            decode_one(&token2, &key, &config),
            Err(AuthError::TokenInvalid)
        );

        // Signature changed in its first character.
        let mut sig: Vec<char> = parts[2].chars().collect();
        sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
        let token3 = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            sig.into_iter().collect::<String>()
        );
        assert_eq!(
            decode_one(&token3, &key, &config),
            Err(AuthError::TokenInvalid)
        );

        // Signed by another key pair under the same kid.
        let impostor = new_key().with_kid(key.kid());
        let token4 = encode_access(&claims, &impostor).expect("encode");
        assert_eq!(
            decode_one(&token4, &key, &config),
            Err(AuthError::TokenInvalid)
        );

        for junk in ["", ".", "..", "a.b.c", "not a token", &"a".repeat(10_000)] {
            assert_eq!(
                decode_one(junk, &key, &config),
                Err(AuthError::TokenInvalid)
            );
        }
    }

    #[test]
    fn wrong_audience_or_issuer_is_rejected() {
        let (key, config, _) = setup();
        let other_aud = TokenConfig {
            audience: "someone-else".into(),
            ..config.clone()
        };
        let token = encode_access(&AccessClaims::new(1, "a", &other_aud, now(), "sid-1"), &key)
            .expect("encode");
        assert_eq!(
            decode_one(&token, &key, &config),
            Err(AuthError::TokenInvalid)
        );

        let other_iss = TokenConfig {
            issuer: "evil".into(),
            ..config.clone()
        };
        let token = encode_access(&AccessClaims::new(1, "a", &other_iss, now(), "sid-1"), &key)
            .expect("encode");
        assert_eq!(
            decode_one(&token, &key, &config),
            Err(AuthError::TokenInvalid)
        );
    }

    #[test]
    fn expiry_is_checked_with_leeway() {
        let (key, config, _) = setup();
        // Expired 60 s ago: well past the 5 s leeway.
        let old = AccessClaims::new(1, "a", &config, now() - 960, "sid-1");
        let token = encode_access(&old, &key).expect("encode");
        assert_eq!(
            decode_one(&token, &key, &config),
            Err(AuthError::TokenExpired)
        );

        // Expired 2 s ago: inside the leeway, still accepted.
        let recent = AccessClaims::new(1, "a", &config, now() - 902, "sid-1");
        let token = encode_access(&recent, &key).expect("encode");
        assert!(decode_one(&token, &key, &config).is_ok());
    }

    #[test]
    fn issued_in_the_future_is_rejected() {
        let (key, config, _) = setup();
        let future = AccessClaims::new(1, "a", &config, now() + 3600, "sid-1");
        let token = encode_access(&future, &key).expect("encode");
        assert_eq!(
            decode_one(&token, &key, &config),
            Err(AuthError::TokenInvalid)
        );
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected() {
        let (key, config, claims) = setup();
        let stranger = new_key();
        let token = encode_access(&claims, &stranger).expect("encode");
        assert_eq!(
            decode_one(&token, &key, &config),
            Err(AuthError::TokenInvalid)
        );

        let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key.encoding())
            .expect("encode");
        assert_eq!(
            decode_one(&no_kid, &key, &config),
            Err(AuthError::TokenInvalid)
        );
    }

    #[test]
    fn missing_or_malformed_claims_are_rejected() {
        let (key, config, claims) = setup();
        let full = serde_json::to_value(&claims).expect("json");
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid() });
        let sign = |payload: &serde_json::Value| {
            hand_made(&header, payload, key.encoding(), Algorithm::EdDSA)
        };
        // Sanity: the hand-built token is accepted when complete.
        assert!(decode_one(&sign(&full), &key, &config).is_ok());
        for field in ["sub", "exp", "iat", "iss", "aud", "jti", "name", "sid"] {
            let mut payload = full.clone();
            payload.as_object_mut().expect("object").remove(field);
            assert_eq!(
                decode_one(&sign(&payload), &key, &config),
                Err(AuthError::TokenInvalid),
                "{field}"
            );
        }
        let mut numeric_sub = full.clone();
        numeric_sub["sub"] = serde_json::json!("not-a-number");
        assert_eq!(
            decode_one(&sign(&numeric_sub), &key, &config),
            Err(AuthError::TokenInvalid)
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).expect("b64").len(), 32);
        let h = hash_refresh_token(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_refresh_token(&a));
        assert_ne!(h, hash_refresh_token(&b));
        assert_eq!(
            hash_refresh_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_sealed_successor_opens_only_with_its_predecessor() {
        let old = new_refresh_token();
        let next = new_refresh_token();
        let sealed = seal_successor(&old, &next);
        assert_eq!(sealed.len(), 64);
        assert!(!sealed.contains(&hash_refresh_token(&next)));
        assert_eq!(unseal_successor(&old, &sealed), Some(next.clone()));
        let wrong = unseal_successor(&new_refresh_token(), &sealed).unwrap();
        assert_ne!(wrong, next);
        assert_eq!(unseal_successor(&old, "zz"), None);
        assert_eq!(unseal_successor(&old, "abcd"), None);
    }
}
