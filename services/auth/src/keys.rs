//! Access-token signing keys: Ed25519 key pairs (JWT `alg: EdDSA`), their
//! encryption at rest, the key ring that rotation grows, and the JWKS that
//! lets other services verify tokens without holding a private key.
//!
//! # Layout
//! - [`Kek`]: the 256-bit key-encryption key, from configuration.
//! - [`StoredSigningKey`]: what storage holds: `kid`, the public key in the
//!   clear, the private key sealed with AES-256-GCM under the KEK.
//! - [`SigningKey`]: an opened key pair, ready to sign and verify.
//! - [`KeyRing`]: every key still in use, oldest first. New tokens are signed
//!   by the newest key once it is older than the activation delay (so every
//!   process and every JWKS client knows it before the first token signed
//!   with it arrives); an older key keeps verifying until every token it can
//!   have signed has expired, then it is retired.
//!
//! The sealed form is `version (1) || nonce (12) || ciphertext || tag (16)`,
//! with the `kid` and public key as associated data: a sealed private key
//! moved to another row does not open.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bowchat_model::Millis;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

/// The JWT/JWK algorithm name of every key this version creates.
pub const KEY_ALG: &str = "EdDSA";
/// Version byte of the sealed private-key format.
const SEALED_V1: u8 = 1;
const ED25519_PUBLIC_LEN: usize = 32;
/// Bytes of a KEK (AES-256).
pub const KEK_LEN: usize = 32;

/// Why a signing key could not be used. Typed, so a wrong key-encryption key
/// is reported as such instead of as garbage or a generic failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key-encryption key must be {KEK_LEN} bytes in base64: {0}")]
    BadKek(String),
    /// The sealed private key does not open: the configured KEK is not the one
    /// it was sealed with (or the row was tampered with).
    #[error(
        "signing key {kid} does not decrypt with the configured key-encryption key \
         (auth.key_encryption_key); every process must use the key the signing keys \
         were sealed with"
    )]
    WrongKek { kid: String },
    #[error("signing key {kid} is corrupt: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("signing key {kid} uses algorithm {alg}, which this version cannot sign with")]
    UnsupportedAlg { kid: String, alg: String },
    #[error("cannot create a signing key: {0}")]
    Generate(String),
}

/// The key-encryption key (KEK): 32 bytes, sealing every private signing key
/// at rest with AES-256-GCM. Never printed.
#[derive(Clone)]
pub struct Kek(Zeroizing<[u8; KEK_LEN]>);

impl Kek {
    /// 32 fresh bytes from the OS RNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| KeyError::Generate("the OS RNG failed".into()))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; KEK_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::BadKek(format!("got {} bytes", bytes.len())))?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// Standard or URL-safe base64, padded or not, surrounding whitespace
    /// ignored (a file written by `echo` ends with a newline).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| KeyError::BadKek("not base64".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Standard base64 with padding (what `openssl rand -base64 32` prints).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_ref())
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("AES-256 key"))
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// A signing key as storage holds it: the private key only sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    /// `EdDSA` for every key this version creates.
    pub alg: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The PKCS#8 private key sealed under the KEK (see the module docs).
    pub sealed_private: Vec<u8>,
    /// When the key was created (Unix ms); orders the key ring.
    pub created_at: Millis,
}

/// Associated data of a sealed private key: it opens only in its own row.
fn aad_of(kid: &str, public_key: &[u8]) -> Vec<u8> {
    let mut aad = b"bowchat signing key v1\0".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(public_key);
    aad
}

/// An Ed25519 key pair for access tokens, named by `kid` in every token it
/// signs. Clones share nothing mutable; the private key is never printed.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    created_at: Millis,
    pkcs8: Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    /// A fresh key pair from the OS RNG with a random `kid`, created at `now`.
    pub fn generate(now: Millis) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Generate("the OS RNG failed".into()))?;
        let kid = uuid::Uuid::new_v4().simple().to_string();
        Self::from_pkcs8(kid, now, Zeroizing::new(pkcs8.as_ref().to_vec()))
    }

    fn from_pkcs8(
        kid: String,
        created_at: Millis,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| KeyError::Corrupt {
            kid: kid.clone(),
            reason: format!("not an Ed25519 PKCS#8 key: {e}"),
        })?;
        let public_key = pair.public_key().as_ref().to_vec();
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            decoding: DecodingKey::from_ed_der(&public_key),
            kid,
            created_at,
            pkcs8,
            public_key,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn created_at(&self) -> Millis {
        self.created_at
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The private key (PKCS#8 v2, which holds the 32-byte seed). Only for
    /// tests that check it never reaches storage; never log it.
    pub fn private_pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The same key pair under another `kid` (an impostor, for tests).
    #[cfg(test)]
    pub(crate) fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_string();
        self
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The form storage holds: the private key sealed under `kek` with a
    /// fresh random nonce.
    pub fn seal(&self, kek: &Kek) -> Result<StoredSigningKey, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Generate("the OS RNG failed".into()))?;
        let mut sealed = self.pkcs8.to_vec();
        kek.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad_of(&self.kid, &self.public_key)),
                &mut sealed,
            )
            .map_err(|_| KeyError::Generate("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(StoredSigningKey {
            kid: self.kid.clone(),
            alg: KEY_ALG.to_string(),
            public_key: self.public_key.clone(),
            sealed_private: out,
            created_at: self.created_at,
        })
    }

    /// Opens a stored key with `kek`. `WrongKek` when the seal does not open
    /// (another KEK, or a tampered row); `Corrupt` when what it holds is not
    /// the key pair of the stored public key.
    pub fn open(stored: &StoredSigningKey, kek: &Kek) -> Result<Self, KeyError> {
        let kid = stored.kid.clone();
        if stored.alg != KEY_ALG {
            return Err(KeyError::UnsupportedAlg {
                kid,
                alg: stored.alg.clone(),
            });
        }
        let corrupt = |reason: &str| KeyError::Corrupt {
            kid: stored.kid.clone(),
            reason: reason.to_string(),
        };
        if stored.public_key.len() != ED25519_PUBLIC_LEN {
            return Err(corrupt("the public key is not 32 bytes"));
        }
        let sealed = &stored.sealed_private;
        if sealed.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || sealed[0] != SEALED_V1 {
            return Err(corrupt("the sealed private key has an unknown format"));
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("nonce length");
        let mut buffer = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let plain_len = kek
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad_of(&stored.kid, &stored.public_key)),
                &mut buffer,
            )
            .map_err(|_| KeyError::WrongKek { kid: kid.clone() })?
            .len();
        let pkcs8 = Zeroizing::new(buffer[..plain_len].to_vec());
        let key = Self::from_pkcs8(kid, stored.created_at, pkcs8)?;
        if key.public_key != stored.public_key {
            return Err(corrupt("the private key does not match the public key"));
        }
        Ok(key)
    }

    /// The public JWK (RFC 8037 `OKP`/`Ed25519`), with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(self.kid.clone()),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(&self.public_key),
            }),
        }
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.public_key == other.public_key
            && self.created_at == other.created_at
    }
}

impl Eq for SigningKey {}

/// Never print the private key, not even in debug logs.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("private", &"<redacted>")
            .finish()
    }
}

/// When keys start signing and when they retire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    /// A new key signs only once it is this old: until then every process
    /// has had time to load it and JWKS clients to fetch it. The very first
    /// key signs at once (there is nothing else).
    pub activation_ms: Millis,
    /// How long after its successor started signing a key keeps verifying:
    /// the access-token lifetime plus leeway, plus a margin for processes
    /// that learn of the successor late.
    pub retire_after_ms: Millis,
}

/// Every key still in use, oldest first.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring of `keys` in any order.
    pub fn new(mut keys: Vec<SigningKey>) -> Self {
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        Self { keys }
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// When the key at `index` starts signing: its creation plus the
    /// activation delay; the oldest key signs from the start.
    fn active_from(&self, index: usize, times: &KeyTimes) -> Millis {
        if index == 0 {
            Millis::MIN
        } else {
            self.keys[index]
                .created_at
                .saturating_add(times.activation_ms)
        }
    }

    /// The key that signs new tokens at `now`: the newest active one.
    pub fn signing(&self, now: Millis, times: &KeyTimes) -> Option<&SigningKey> {
        (0..self.keys.len())
            .rev()
            .find(|&i| self.active_from(i, times) <= now)
            .map(|i| &self.keys[i])
    }

    /// Whether the key at `index` is retired at `now`: a newer key has been
    /// signing for `retire_after_ms`, so every token it signed has expired.
    fn retired_at(&self, index: usize, now: Millis, times: &KeyTimes) -> bool {
        (index + 1..self.keys.len()).any(|next| {
            self.active_from(next, times)
                .saturating_add(times.retire_after_ms)
                <= now
        })
    }

    /// The keys that verify tokens at `now` (including a new key not yet
    /// signing: another process may already sign with it).
    pub fn verifying(&self, now: Millis, times: &KeyTimes) -> Vec<&SigningKey> {
        (0..self.keys.len())
            .filter(|&i| !self.retired_at(i, now, times))
            .map(|i| &self.keys[i])
            .collect()
    }

    /// The `kid`s of the retired keys, which storage may delete.
    pub fn retired(&self, now: Millis, times: &KeyTimes) -> Vec<String> {
        (0..self.keys.len())
            .filter(|&i| self.retired_at(i, now, times))
            .map(|i| self.keys[i].kid.clone())
            .collect()
    }

    /// The verifying key named `kid` at `now`.
    pub fn verifier(&self, kid: &str, now: Millis, times: &KeyTimes) -> Option<&SigningKey> {
        let index = self.keys.iter().position(|k| k.kid == kid)?;
        (!self.retired_at(index, now, times)).then(|| &self.keys[index])
    }

    /// The public keys of every verifying key (`GET /.well-known/jwks.json`).
    pub fn jwks(&self, now: Millis, times: &KeyTimes) -> JwkSet {
        JwkSet {
            keys: self
                .verifying(now, times)
                .into_iter()
                .map(SigningKey::jwk)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::generate().expect("kek")
    }

    #[test]
    fn a_sealed_key_opens_with_its_kek_and_holds_no_private_bytes() {
        let kek = kek();
        let key = SigningKey::generate(1_000).expect("key");
        let stored = key.seal(&kek).expect("seal");
        assert_eq!(stored.alg, "EdDSA");
        assert_eq!(stored.public_key, key.public_key());
        let seed = &key.private_pkcs8()[16..48];
        assert!(!contains(&stored.sealed_private, seed));
        assert!(!contains(&stored.sealed_private, key.private_pkcs8()));
        let opened = SigningKey::open(&stored, &kek).expect("open");
        assert_eq!(opened, key);
        assert_eq!(opened.private_pkcs8(), key.private_pkcs8());
        // Two seals of one key differ (fresh nonce).
        assert_ne!(
            key.seal(&kek).expect("seal").sealed_private,
            stored.sealed_private
        );
    }

    #[test]
    fn a_wrong_kek_or_a_moved_seal_is_a_typed_error() {
        let key = SigningKey::generate(1_000).expect("key");
        let stored = key.seal(&kek()).expect("seal");
        assert_eq!(
            SigningKey::open(&stored, &kek()),
            Err(KeyError::WrongKek {
                kid: key.kid().to_string()
            })
        );
        // The sealed private key of one row pasted into another row.
        let kek = kek();
        let other = SigningKey::generate(2_000)
            .expect("key")
            .seal(&kek)
            .expect("seal");
        let moved = StoredSigningKey {
            sealed_private: key.seal(&kek).expect("seal").sealed_private,
            ..other.clone()
        };
        assert!(matches!(
            SigningKey::open(&moved, &kek),
            Err(KeyError::WrongKek { .. })
        ));
        let mut flipped = other.clone();
        let last = flipped.sealed_private.len() - 1;
        flipped.sealed_private[last] ^= 1;
        assert!(matches!(
            SigningKey::open(&flipped, &kek),
            Err(KeyError::WrongKek { .. })
        ));
        let short = StoredSigningKey {
            sealed_private: vec![1, 2, 3],
            ..other.clone()
        };
        assert!(matches!(
            SigningKey::open(&short, &kek),
            Err(KeyError::Corrupt { .. })
        ));
        let hmac = StoredSigningKey {
            alg: "HS256".into(),
            ..other
        };
        assert!(matches!(
            SigningKey::open(&hmac, &kek),
            Err(KeyError::UnsupportedAlg { .. })
        ));
    }

    #[test]
    fn kek_parsing_accepts_base64_of_32_bytes_only() {
        let kek = kek();
        let text = kek.to_base64();
        let again = Kek::from_base64(&format!(" {text}\n")).expect("parse");
        assert_eq!(again.to_base64(), text);
        let url = URL_SAFE_NO_PAD.encode(Kek::from_base64(&text).expect("kek").0.as_ref());
        assert_eq!(Kek::from_base64(&url).expect("url-safe").to_base64(), text);
        assert!(matches!(
            Kek::from_base64(&STANDARD.encode([0u8; 16])),
            Err(KeyError::BadKek(_))
        ));
        assert!(matches!(
            Kek::from_base64("not base64!"),
            Err(KeyError::BadKek(_))
        ));
        assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
        let key = SigningKey::generate(0).expect("key");
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.kid()) && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn the_newest_key_signs_once_active_and_old_keys_retire_after_their_tokens() {
        let times = KeyTimes {
            activation_ms: 100,
            retire_after_ms: 1_000,
        };
        let a = SigningKey::generate(0).expect("key");
        let b = SigningKey::generate(5_000).expect("key");
        let ring = KeyRing::new(vec![b.clone(), a.clone()]);
        assert_eq!(ring.keys()[0], a, "oldest first");

        // Before b is active, a signs; both verify and are published.
        assert_eq!(ring.signing(5_050, &times), Some(&a));
        assert_eq!(ring.verifying(5_050, &times).len(), 2);
        // Once active, b signs; a still verifies until b has signed for
        // retire_after_ms.
        assert_eq!(ring.signing(5_100, &times), Some(&b));
        assert!(ring.verifier(a.kid(), 6_099, &times).is_some());
        assert!(ring.retired(6_099, &times).is_empty());
        assert!(ring.verifier(a.kid(), 6_100, &times).is_none());
        assert_eq!(ring.retired(6_100, &times), vec![a.kid().to_string()]);
        let jwks = ring.jwks(6_100, &times);
        assert_eq!(jwks.keys.len(), 1);
        assert!(jwks.find(b.kid()).is_some());
        // The first key signs from its creation.
        let single = KeyRing::new(vec![a.clone()]);
        assert_eq!(single.signing(0, &times), Some(&a));
        assert!(KeyRing::default().signing(0, &times).is_none());
    }

    #[test]
    fn the_jwk_is_public_only() {
        let key = SigningKey::generate(0).expect("key");
        let json = serde_json::to_value(key.jwk()).expect("json");
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["alg"], "EdDSA");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["kid"], key.kid());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(json["x"].as_str().expect("x"))
                .expect("b64"),
            key.public_key()
        );
        assert!(json.get("d").is_none(), "no private part: {json}");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
