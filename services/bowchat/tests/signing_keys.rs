//! Black-box signing keys: the JWKS endpoint publishes the public key of a
//! freshly issued token, and a verifier that holds only the JWKS accepts the
//! token; `bowchat admin keys rotate` makes new tokens carry a new `kid`
//! while old tokens keep working; HS256 tokens keyed with the published
//! public key are refused; embedded mode with no configuration seals the
//! keys under a generated key-encryption key file (0600).
mod support;

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use support::Server;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

async fn jwks(server: &Server) -> (JwkSet, Option<String>) {
    let response = reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .expect("GET jwks");
    assert_eq!(response.status().as_u16(), 200);
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.expect("body");
    let raw: Value = serde_json::from_str(&text).expect("json");
    for key in raw["keys"].as_array().expect("keys") {
        // Public keys only: no private part, no symmetric key.
        assert!(key.get("d").is_none() && key.get("k").is_none(), "{key}");
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["alg"], "EdDSA");
    }
    (serde_json::from_str(&text).expect("jwk set"), cache)
}

/// What another service does: verify with the JWKS alone.
fn verify_with_jwks(set: &JwkSet, token: &str) -> Result<Value, String> {
    let kid = kid_of(token);
    let jwk = set.find(&kid).ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["bowchat"]);
    validation.set_audience(&["bowchat-api"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn login(server: &Server, name: &str) -> String {
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": format!("{name}@test.bowchat"), "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["accessToken"].as_str().expect("token").to_string()
}

fn admin(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bowchat"))
        .arg("admin")
        .args(args)
        .env("BOWCHAT_DATA_DIR", dir)
        .env("BOWCHAT_LOG__LEVEL", "warn")
        .output()
        .expect("run bowchat admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_verifies_tokens_and_a_rotation_keeps_old_tokens_valid() {
    let dir = tempfile::tempdir().unwrap();
    // New keys sign at once: one process, nobody else to wait for.
    let server = Server::start(
        dir.path(),
        &[("BOWCHAT_AUTH__SIGNING_KEY_ACTIVATION_MS", "0")],
    );
    let ann = server.user("ann").await;
    let old_kid = kid_of(&ann.token);
    assert_eq!(
        jsonwebtoken::decode_header(&ann.token).unwrap().alg,
        Algorithm::EdDSA
    );

    let (set, cache) = jwks(&server).await;
    assert!(cache.is_some_and(|c| c.contains("max-age")));
    assert_eq!(set.keys.len(), 1);
    let claims = verify_with_jwks(&set, &ann.token).expect("verifies with the JWKS");
    assert_eq!(claims["sub"], ann.id.to_string());

    // The KEK was generated under data_dir, owner-only; the database holds
    // no private key in the clear (checked in the store suite).
    let kek = dir.path().join("signing-kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kek)
            .expect("kek file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = admin(dir.path(), &["keys", "rotate"]);
    assert!(
        out.status.success(),
        "rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let new_kid = stdout
        .split_whitespace()
        .nth(3)
        .expect("added signing key <kid>")
        .to_string();
    assert_ne!(new_kid, old_kid, "{stdout}");

    // The server reads keys with every revocation poll (1 s): wait for the
    // new key to be published, then tokens carry it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let set = loop {
        let (set, _) = jwks(&server).await;
        if set.find(&new_kid).is_some() {
            break set;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new key was never published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(set.find(&old_kid).is_some(), "the old key still verifies");
    let fresh = login(&server, "ann").await;
    assert_eq!(kid_of(&fresh), new_kid);
    verify_with_jwks(&set, &fresh).expect("new token verifies with the JWKS");
    verify_with_jwks(&set, &ann.token).expect("old token verifies with the JWKS");
    // And the server accepts both.
    for token in [&ann.token, &fresh] {
        let (status, body) = server.get("/api/me", Some(token)).await;
        assert_eq!(status, 200, "{body}");
    }

    let listed = admin(dir.path(), &["keys", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains(&old_kid) && listed.contains(&new_kid) && !listed.contains("does not open"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_keyed_with_the_public_key_and_a_wrong_kek_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let ann = server.user("ann").await;
    let (set, _) = jwks(&server).await;
    let jwk = set.find(&kid_of(&ann.token)).expect("jwk");
    let x = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
        other => panic!("not an OKP key: {other:?}"),
    };
    use base64::Engine as _;
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&x)
        .unwrap();
    let claims: Value = {
        let payload = ann.token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    for secret in [public.clone(), x.clone().into_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid_of(&ann.token));
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        let (status, body) = server.get("/api/me", Some(&forged)).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], "TOKEN_INVALID");
    }
    assert_eq!(server.get("/api/me", Some(&ann.token)).await.0, 200);
    server.kill();

    // Restarted with another KEK: refuses to start, and says why.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bowchat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env(
            "BOWCHAT_AUTH__KEY_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env("BOWCHAT_LOG__FORMAT", "text")
        .output()
        .expect("run bowchat");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not decrypt with the configured key-encryption key"),
        "{stderr}"
    );
}
