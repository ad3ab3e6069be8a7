//! `AuthRepository`: users, signing keys, refresh-token rotation, and the
//! `AuthService` on top of it across a restart.

use std::sync::Arc;

use bowchat_auth::ports::{AuthRepoError, RefreshRecord};
use bowchat_auth::{
    rotate_signing_key, AuthError, AuthService, Kek, KeyError, KeyOptions, PasswordPolicy,
    SigningKey, StoredSigningKey, TokenConfig,
};

use crate::Store;

/// A key sealed under `kek`, created at `at`.
fn sealed(kek: &Kek, at: i64) -> StoredSigningKey {
    SigningKey::generate(at)
        .expect("key")
        .seal(kek)
        .expect("seal")
}

/// Key options for services sharing one store: new keys sign at once.
fn options(kek: &Kek) -> KeyOptions {
    KeyOptions {
        activation_ms: 0,
        ..KeyOptions::new(kek.clone())
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

fn record(hash: &str, family: &str, user_id: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.to_string(),
        family: family.to_string(),
        user_id,
        created_at: 1_000,
        expires_at: 2_000,
        rotated_at: None,
        revoked_at: None,
        successor: None,
    }
}

pub async fn create_and_find_users(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    let ada = repo
        .create_user("ada@example.com", "Ada", Some("$argon2id$fake"), 10)
        .await
        .expect("create");
    let social = repo
        .create_user("sso@example.com", "Sso", None, 11)
        .await
        .expect("create");
    assert_ne!(ada.id, social.id);
    assert_eq!(ada.password_hash.as_deref(), Some("$argon2id$fake"));

    assert_eq!(
        repo.user_by_email("ada@example.com").await.expect("read"),
        Some(ada.clone())
    );
    assert_eq!(
        repo.user(social.id).await.expect("read"),
        Some(social.clone())
    );
    assert_eq!(
        repo.user(social.id)
            .await
            .expect("read")
            .and_then(|u| u.password_hash),
        None
    );
    assert_eq!(
        repo.user_by_email("nobody@example.com")
            .await
            .expect("read"),
        None
    );
    assert_eq!(repo.user(9_999).await.expect("read"), None);

    let mut found = repo
        .users(&[social.id, 9_999, ada.id, ada.id])
        .await
        .expect("users");
    found.sort_by_key(|u| u.id);
    assert_eq!(found, vec![ada.clone(), social.clone()]);
    assert!(repo.users(&[]).await.expect("users").is_empty());

    // More ids than one query binds.
    let many: Vec<i64> = (1..=1_200).collect();
    assert_eq!(repo.users(&many).await.expect("users").len(), 2);
}

pub async fn duplicate_email_is_a_conflict(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    repo.create_user("ada@example.com", "Ada", None, 1)
        .await
        .expect("create");
    let again = repo
        .create_user("ada@example.com", "Other", Some("h"), 2)
        .await;
    assert!(
        matches!(again, Err(AuthRepoError::Conflict(_))),
        "{again:?}"
    );
    // The failed insert left nothing half-done and the writer is still usable.
    assert!(repo
        .create_user("bob@example.com", "Bob", None, 3)
        .await
        .is_ok());
}

pub async fn signing_key_persists_across_reopen(store: Arc<dyn Store>) {
    let kek = Kek::generate().expect("kek");
    let first = sealed(&kek, 100);
    let newer = sealed(&kek, 200);
    {
        let repo = store.open().await.auth;
        assert_eq!(repo.signing_keys().await.expect("read"), vec![]);
        assert!(repo.add_signing_key(&newer, i64::MAX).await.expect("store"));
        assert!(repo.add_signing_key(&first, i64::MAX).await.expect("store"));
        let duplicate = repo.add_signing_key(&first, i64::MAX).await;
        assert!(
            matches!(duplicate, Err(AuthRepoError::Conflict(_))),
            "{duplicate:?}"
        );
    }
    let repo = store.open().await.auth;
    // Oldest first, whatever the order of storing; byte for byte.
    assert_eq!(
        repo.signing_keys().await.expect("read"),
        vec![first.clone(), newer.clone()]
    );
    repo.delete_signing_keys(&[first.kid.clone(), "unknown".into()])
        .await
        .expect("delete");
    repo.delete_signing_keys(&[]).await.expect("delete none");
    assert_eq!(repo.signing_keys().await.expect("read"), vec![newer]);
}

/// Processes starting together on a fresh database each try to create the
/// signing key; exactly one key is stored and every one of them gets it.
/// Automatic rotation by several processes at once adds one key too.
pub async fn first_signing_key_wins(store: Arc<dyn Store>) {
    let kek = Kek::generate().expect("kek");
    let mut repos = Vec::new();
    for _ in 0..4 {
        repos.push(store.open().await);
    }
    let candidates: Vec<StoredSigningKey> = (0..8).map(|_| sealed(&kek, 100)).collect();
    let winners = futures::future::join_all(
        candidates
            .iter()
            .enumerate()
            .map(|(i, key)| repos[i % repos.len()].auth.first_signing_key(key)),
    )
    .await;
    let winners: Vec<StoredSigningKey> = winners.into_iter().map(|k| k.expect("store")).collect();
    assert!(candidates.contains(&winners[0]), "a candidate won");
    assert!(winners.iter().all(|k| *k == winners[0]), "one key for all");
    let later = sealed(&kek, 200);
    let repo = store.open().await.auth;
    assert_eq!(
        repo.first_signing_key(&later).await.expect("store"),
        winners[0],
        "an existing key is kept"
    );
    assert_eq!(
        repo.signing_keys().await.expect("read"),
        vec![winners[0].clone()]
    );

    // Rotation "unless a key created since 150 exists", by 8 at once.
    let rotations: Vec<StoredSigningKey> = (0..8).map(|_| sealed(&kek, 1_000)).collect();
    let added = futures::future::join_all(
        rotations
            .iter()
            .enumerate()
            .map(|(i, key)| repos[i % repos.len()].auth.add_signing_key(key, 150)),
    )
    .await;
    let added: Vec<bool> = added.into_iter().map(|a| a.expect("add")).collect();
    assert_eq!(added.iter().filter(|a| **a).count(), 1, "{added:?}");
    assert_eq!(repo.signing_keys().await.expect("read").len(), 2);
}

/// The private key never reaches storage in the clear, and a process with
/// another key-encryption key fails with a typed error, not garbage.
pub async fn signing_keys_are_stored_encrypted(store: Arc<dyn Store>) {
    let policy = PasswordPolicy::fast_for_tests();
    let kek = Kek::generate().expect("kek");
    let repo = store.open().await.auth;
    let auth = AuthService::start(
        repo.clone(),
        TokenConfig::default(),
        policy.clone(),
        options(&kek),
    )
    .await
    .expect("start");
    let session = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    drop(auth);

    let stored = store.open().await.auth.signing_keys().await.expect("read");
    assert_eq!(stored.len(), 1);
    let key = &stored[0];
    assert_eq!(key.kid, kid_of(&session.access_token));
    assert_eq!(key.alg, "EdDSA");
    let opened = SigningKey::open(key, &kek).expect("opens with its KEK");
    let private = opened.private_pkcs8();
    // The PKCS#8 document and the 32-byte seed inside it.
    for secret in [private, &private[16..48]] {
        assert!(
            !key.sealed_private
                .windows(secret.len())
                .any(|w| w == secret),
            "private key stored in the clear"
        );
    }
    assert_eq!(key.public_key, opened.public_key());

    let wrong = Kek::generate().expect("kek");
    let started = AuthService::start(
        store.open().await.auth,
        TokenConfig::default(),
        policy.clone(),
        options(&wrong),
    )
    .await;
    assert_eq!(
        started.err(),
        Some(AuthError::SigningKeys(KeyError::WrongKek {
            kid: key.kid.clone()
        }))
    );
    // Nothing was added under the wrong KEK; the right one still works.
    assert_eq!(
        store.open().await.auth.signing_keys().await.expect("read"),
        stored
    );
    let auth = AuthService::start(
        store.open().await.auth,
        TokenConfig::default(),
        policy,
        options(&kek),
    )
    .await
    .expect("restart with the right KEK");
    assert!(auth.verify_access(&session.access_token).is_ok());
}

/// A rotation is stored: after a reopen, new tokens carry the new `kid`
/// and tokens of the old key still verify.
pub async fn rotation_persists_across_reopen(store: Arc<dyn Store>) {
    let policy = PasswordPolicy::fast_for_tests();
    let kek = Kek::generate().expect("kek");
    let auth = AuthService::start(
        store.open().await.auth,
        TokenConfig::default(),
        policy.clone(),
        options(&kek),
    )
    .await
    .expect("start");
    let before = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    drop(auth);

    let rotated = rotate_signing_key(store.open().await.auth.as_ref(), &kek)
        .await
        .expect("rotate");
    assert_ne!(rotated.kid, kid_of(&before.access_token));

    let auth = AuthService::start(
        store.open().await.auth,
        TokenConfig::default(),
        policy,
        options(&kek),
    )
    .await
    .expect("restart");
    let after = auth
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    assert_eq!(kid_of(&after.access_token), rotated.kid);
    assert!(auth.verify_access(&before.access_token).is_ok());
    assert!(auth.verify_access(&after.access_token).is_ok());
    assert_eq!(auth.jwks().keys.len(), 2);
}

pub async fn rotate_refresh_is_once_only(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    let user = repo
        .create_user("ada@example.com", "Ada", None, 1)
        .await
        .expect("user");

    repo.insert_refresh(&record("h1", "fam", user.id))
        .await
        .expect("insert");
    assert_eq!(
        repo.refresh("h1").await.expect("read"),
        Some(record("h1", "fam", user.id))
    );
    assert_eq!(repo.refresh("nope").await.expect("read"), None);

    assert!(repo
        .rotate_refresh("h1", "sealed-h1", &record("h2", "fam", user.id), 1_500)
        .await
        .expect("rotate"));
    let old = repo.refresh("h1").await.expect("read").expect("h1");
    assert_eq!(old.rotated_at, Some(1_500));
    assert_eq!(old.successor.as_deref(), Some("sealed-h1"));
    assert_eq!(old.revoked_at, None);
    assert!(repo.refresh("h2").await.expect("read").is_some());

    // A second rotation of the same token changes nothing and inserts nothing.
    assert!(!repo
        .rotate_refresh("h1", "sealed-h1", &record("h3", "fam", user.id), 1_600)
        .await
        .expect("rotate"));
    assert_eq!(repo.refresh("h3").await.expect("read"), None);
    assert_eq!(
        repo.refresh("h1")
            .await
            .expect("read")
            .and_then(|r| r.rotated_at),
        Some(1_500)
    );
    // Unknown tokens do not rotate either.
    assert!(!repo
        .rotate_refresh("nope", "sealed-nope", &record("h4", "fam", user.id), 1_600)
        .await
        .expect("rotate"));
    assert_eq!(repo.refresh("h4").await.expect("read"), None);

    // Revoked tokens do not rotate.
    repo.revoke_family("fam", 1_700).await.expect("revoke");
    assert_eq!(
        repo.refresh("h2")
            .await
            .expect("read")
            .and_then(|r| r.revoked_at),
        Some(1_700)
    );
    assert!(!repo
        .rotate_refresh("h2", "sealed-h2", &record("h5", "fam", user.id), 1_800)
        .await
        .expect("rotate"));
    assert_eq!(repo.refresh("h5").await.expect("read"), None);
    // Revoking again keeps the first revocation time.
    repo.revoke_family("fam", 1_900).await.expect("revoke");
    assert_eq!(
        repo.refresh("h1")
            .await
            .expect("read")
            .and_then(|r| r.revoked_at),
        Some(1_700)
    );

    repo.insert_refresh(&record("solo", "other", user.id))
        .await
        .expect("insert");
    repo.revoke_token("solo", 2_000).await.expect("revoke one");
    repo.revoke_token("unknown", 2_000)
        .await
        .expect("revoke unknown");
    assert_eq!(
        repo.refresh("solo")
            .await
            .expect("read")
            .and_then(|r| r.revoked_at),
        Some(2_000)
    );
}

/// The deny list every gateway polls: families revoked since a time, each
/// once, with its (first) revocation time.
pub async fn revoked_families_are_listed_since(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    let user = repo
        .create_user("ada@example.com", "Ada", None, 1)
        .await
        .expect("user");
    for (hash, family) in [("a1", "fa"), ("a2", "fa"), ("b1", "fb"), ("c1", "fc")] {
        repo.insert_refresh(&record(hash, family, user.id))
            .await
            .expect("insert");
    }
    assert!(repo.revoked_families(0).await.expect("list").is_empty());
    repo.revoke_family("fa", 1_000).await.expect("revoke");
    repo.revoke_family("fb", 2_000).await.expect("revoke");
    let mut all = repo.revoked_families(0).await.expect("list");
    all.sort();
    assert_eq!(
        all,
        vec![("fa".to_string(), 1_000), ("fb".to_string(), 2_000)]
    );
    assert_eq!(
        repo.revoked_families(1_500).await.expect("list"),
        vec![("fb".to_string(), 2_000)]
    );
    assert!(repo.revoked_families(2_001).await.expect("list").is_empty());
}

pub async fn concurrent_rotations_have_one_winner(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    let user = repo
        .create_user("ada@example.com", "Ada", None, 1)
        .await
        .expect("user");
    repo.insert_refresh(&record("root", "fam", user.id))
        .await
        .expect("insert");

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.rotate_refresh(
                    "root",
                    "sealed-root",
                    &record(&format!("next-{i}"), "fam", user.id),
                    1_500,
                )
                .await
            })
        })
        .collect();
    let mut winners = 0;
    let mut inserted = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.expect("join").expect("rotate") {
            winners += 1;
        }
        if repo
            .refresh(&format!("next-{i}"))
            .await
            .expect("read")
            .is_some()
        {
            inserted += 1;
        }
    }
    assert_eq!((winners, inserted), (1, 1));
}

pub async fn auth_service_survives_a_restart(store: Arc<dyn Store>) {
    let policy = PasswordPolicy::fast_for_tests();

    let kek = Kek::generate().expect("kek");
    let repo = store.open().await.auth;
    let auth = AuthService::start(repo, TokenConfig::default(), policy.clone(), options(&kek))
        .await
        .expect("start");
    let session = auth
        .register("Ada@Example.com", "password123", None)
        .await
        .expect("register");
    let rotated = auth.refresh(&session.refresh_token).await.expect("refresh");
    drop(auth);

    let repo = store.open().await.auth;
    let auth = AuthService::start(repo, TokenConfig::default(), policy, options(&kek))
        .await
        .expect("restart");
    let claims = auth
        .verify_access(&session.access_token)
        .expect("old token still valid");
    assert_eq!(claims.sub, session.user.id);

    let login = auth
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    assert_eq!(login.user, session.user);
    assert_eq!(
        auth.login("ada@example.com", "wrong-password")
            .await
            .err()
            .map(|e| e.code()),
        Some("INVALID_CREDENTIALS")
    );

    // Inside the grace window (a second tab), the rotated first token gets
    // the successor it already got, read back from storage.
    let again = auth
        .refresh(&session.refresh_token)
        .await
        .expect("concurrent refresh inside the grace window");
    assert_eq!(again.refresh_token, rotated.refresh_token);
    // Once that successor rotated too, the first token is plain reuse: its
    // family is revoked, including the newest token, and its access tokens.
    let newest = auth.refresh(&rotated.refresh_token).await.expect("refresh");
    assert_eq!(
        auth.refresh(&session.refresh_token)
            .await
            .err()
            .map(|e| e.code()),
        Some("REFRESH_REUSED")
    );
    assert_eq!(
        auth.refresh(&newest.refresh_token)
            .await
            .err()
            .map(|e| e.code()),
        Some("REFRESH_INVALID")
    );
    assert_eq!(
        auth.verify_access(&newest.access_token)
            .err()
            .map(|e| e.code()),
        Some("TOKEN_REVOKED")
    );
    // The separate login is unaffected until it logs out.
    let next = auth
        .refresh(&login.refresh_token)
        .await
        .expect("other family");
    auth.logout(&next.refresh_token).await.expect("logout");
    assert_eq!(
        auth.refresh(&next.refresh_token)
            .await
            .err()
            .map(|e| e.code()),
        Some("REFRESH_INVALID")
    );
}
