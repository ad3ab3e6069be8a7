//! Service behaviour against the in-memory repository.

use std::sync::Arc;

use super::*;
use crate::keys::KeyError;
use crate::memory::InMemoryAuthRepository;

/// One KEK for every process of a test (they share the store); new keys
/// sign at once.
fn keys() -> KeyOptions {
    static KEK: std::sync::OnceLock<Kek> = std::sync::OnceLock::new();
    KeyOptions {
        activation_ms: 0,
        ..KeyOptions::new(KEK.get_or_init(|| Kek::generate().expect("kek")).clone())
    }
}

async fn service_with(config: TokenConfig) -> (AuthService, Arc<InMemoryAuthRepository>) {
    let repo = Arc::new(InMemoryAuthRepository::new());
    let service = AuthService::start(
        repo.clone(),
        config,
        PasswordPolicy::fast_for_tests(),
        keys(),
    )
    .await
    .expect("start");
    (service, repo)
}

async fn service() -> AuthService {
    service_with(TokenConfig::default()).await.0
}

fn code<T: std::fmt::Debug>(r: Result<T, AuthError>) -> &'static str {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn register_opens_a_session() {
    let auth = service().await;
    let session = auth
        .register("  Ada@Example.COM ", "s3cret-pass", Some(" Ada L. "))
        .await
        .expect("register");
    assert_eq!(session.token_type, "Bearer");
    assert_eq!(session.expires_in, 900);
    assert_eq!(session.user.email, "ada@example.com");
    assert_eq!(session.user.display_name, "Ada L.");

    let claims = auth
        .verify_access(&session.access_token)
        .expect("valid token");
    assert_eq!(claims.sub, session.user.id);
    assert_eq!(claims.name, "Ada L.");
    assert_eq!(claims.exp - claims.iat, 900);

    let json = serde_json::to_value(&session).expect("json");
    for key in [
        "accessToken",
        "tokenType",
        "expiresIn",
        "refreshToken",
        "user",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    assert!(json["user"].get("displayName").is_some());

    assert_eq!(
        auth.user(session.user.id).await.expect("user"),
        Some(session.user.clone())
    );
    assert_eq!(auth.user(9999).await.expect("user"), None);
    assert_eq!(
        auth.users(&[session.user.id, 9999]).await.expect("users"),
        vec![session.user]
    );
}

#[tokio::test]
async fn register_validates_input() {
    let auth = service().await;
    for email in [
        "",
        "   ",
        "plain",
        "@x.io",
        "a@",
        "a@b@c",
        "a b@c.io",
        "a@b\u{0}.io",
    ] {
        assert_eq!(
            code(auth.register(email, "password123", None).await),
            "INVALID_EMAIL",
            "{email:?}"
        );
    }
    let long = format!("{}@x.io", "a".repeat(250));
    assert_eq!(
        code(auth.register(&long, "password123", None).await),
        "INVALID_EMAIL"
    );
    assert_eq!(
        code(auth.register("a@x.io", "short", None).await),
        "WEAK_PASSWORD"
    );
    assert_eq!(
        code(auth.register("a@x.io", &"p".repeat(129), None).await),
        "WEAK_PASSWORD"
    );
    for name in ["", "   ", "tab\there", &"n".repeat(65)] {
        assert_eq!(
            code(auth.register("a@x.io", "password123", Some(name)).await),
            "INVALID_DISPLAY_NAME",
            "{name:?}"
        );
    }
    // Nothing was created by the failures above.
    assert!(auth.register("a@x.io", "password123", None).await.is_ok());
}

#[tokio::test]
async fn display_name_defaults_to_local_part() {
    let auth = service().await;
    let session = auth
        .register("Grace.Hopper@navy.mil", "password123", None)
        .await
        .expect("register");
    assert_eq!(session.user.display_name, "grace.hopper");
}

#[tokio::test]
async fn duplicate_email_is_taken_regardless_of_case() {
    let auth = service().await;
    auth.register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let again = auth
        .register(" ADA@example.com", "other-password", None)
        .await;
    assert_eq!(again.as_ref().map_err(AuthError::status).err(), Some(409));
    assert_eq!(code(again), "EMAIL_TAKEN");
}

#[tokio::test]
async fn login_checks_the_password_without_revealing_accounts() {
    let (auth, repo) = service_with(TokenConfig::default()).await;
    let registered = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");

    let session = auth
        .login(" ADA@example.com ", "password123")
        .await
        .expect("login");
    assert_eq!(session.user, registered.user);
    assert_ne!(session.refresh_token, registered.refresh_token);
    assert!(auth.verify_access(&session.access_token).is_ok());

    let wrong = auth.login("ada@example.com", "password124").await;
    let unknown = auth.login("nobody@example.com", "password123").await;
    assert_eq!(code(wrong), "INVALID_CREDENTIALS");
    assert_eq!(code(unknown), "INVALID_CREDENTIALS");
    assert_eq!(
        code(auth.login("not-an-email", "password123").await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        code(auth.login("ada@example.com", "").await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(
        code(auth.login("ada@example.com", &"p".repeat(10_000)).await),
        "INVALID_CREDENTIALS"
    );

    // A social-only account (no password hash) cannot log in with any password.
    repo.create_user("social@example.com", "S", None, 0)
        .await
        .expect("create");
    assert_eq!(
        code(auth.login("social@example.com", "password123").await),
        "INVALID_CREDENTIALS"
    );
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let (auth, repo) = service_with(TokenConfig::default()).await;
    let first = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");

    let second = auth.refresh(&first.refresh_token).await.expect("refresh");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.user, first.user);
    assert!(auth.verify_access(&second.access_token).is_ok());

    let old = repo
        .refresh(&hash_refresh_token(&first.refresh_token))
        .await
        .expect("read")
        .expect("old");
    let new = repo
        .refresh(&hash_refresh_token(&second.refresh_token))
        .await
        .expect("read")
        .expect("new");
    assert!(old.rotated_at.is_some() && old.revoked_at.is_none());
    assert_eq!(new.family, old.family);
    assert!(new.rotated_at.is_none() && new.revoked_at.is_none());

    let third = auth
        .refresh(&second.refresh_token)
        .await
        .expect("refresh again");
    assert!(auth.refresh(&third.refresh_token).await.is_ok());
}

#[tokio::test]
async fn reuse_revokes_the_whole_family() {
    let auth = service().await;
    let first = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let other_device = auth
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    let second = auth.refresh(&first.refresh_token).await.expect("refresh");
    let third = auth.refresh(&second.refresh_token).await.expect("refresh");

    // The stolen first token comes back.
    assert_eq!(
        code(auth.refresh(&first.refresh_token).await),
        "REFRESH_REUSED"
    );
    // The legitimate newest token of that family is dead too.
    assert_eq!(
        code(auth.refresh(&third.refresh_token).await),
        "REFRESH_INVALID"
    );
    assert_eq!(
        code(auth.refresh(&second.refresh_token).await),
        "REFRESH_REUSED"
    );
    // Another login (another family) is untouched.
    assert!(auth.refresh(&other_device.refresh_token).await.is_ok());
}

/// Refreshes `token` from 8 tasks at once; the successful sessions.
async fn refresh_concurrently(auth: &Arc<AuthService>, token: &str) -> Vec<Session> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let auth = auth.clone();
            let token = token.to_string();
            tokio::spawn(async move { auth.refresh(&token).await })
        })
        .collect();
    let mut ok = Vec::new();
    for task in tasks {
        match task.await.expect("join") {
            Ok(session) => ok.push(session),
            Err(e) => assert!(
                matches!(e, AuthError::RefreshReused | AuthError::RefreshInvalid),
                "{e:?}"
            ),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_grace_concurrent_use_of_one_token_has_one_winner() {
    let config = TokenConfig {
        refresh_reuse_grace_secs: 0,
        ..TokenConfig::default()
    };
    let auth = Arc::new(service_with(config).await.0);
    let first = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    assert_eq!(
        refresh_concurrently(&auth, &first.refresh_token)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_inside_the_grace_window_get_one_successor() {
    let auth = Arc::new(service().await);
    let first = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let sessions = refresh_concurrently(&auth, &first.refresh_token).await;
    assert_eq!(sessions.len(), 8, "every tab stays logged in");
    let successor = &sessions[0].refresh_token;
    assert!(sessions.iter().all(|s| &s.refresh_token == successor));
    for session in &sessions {
        assert!(auth.verify_access(&session.access_token).is_ok());
    }
    // The shared successor is live and rotates normally.
    assert!(auth.refresh(successor).await.is_ok());
}

/// Stores `old` as rotated `age_ms` ago into a live `next` of one family.
async fn rotated_pair(
    repo: &InMemoryAuthRepository,
    user: UserId,
    age_ms: i64,
) -> (String, String) {
    let now = now_millis();
    let (old, next) = (new_refresh_token(), new_refresh_token());
    let record =
        |token: &str, rotated_at: Option<Millis>, successor: Option<String>| RefreshRecord {
            token_hash: hash_refresh_token(token),
            family: "fam-1".into(),
            user_id: user,
            created_at: now - 60_000,
            expires_at: now + 3_600_000,
            rotated_at,
            revoked_at: None,
            successor,
        };
    repo.insert_refresh(&record(&next, None, None))
        .await
        .expect("next");
    let sealed = seal_successor(&old, &next);
    repo.insert_refresh(&record(&old, Some(now - age_ms), Some(sealed)))
        .await
        .expect("old");
    (old, next)
}

#[tokio::test]
async fn reuse_after_the_grace_window_still_revokes_the_family() {
    let (auth, repo) = service_with(TokenConfig::default()).await;
    let user = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register")
        .user
        .id;
    // Rotated 1 s ago (window 10 s): the same successor comes back.
    let (old, next) = rotated_pair(&repo, user, 1_000).await;
    let again = auth.refresh(&old).await.expect("inside the window");
    assert_eq!(again.refresh_token, next);

    // Rotated 11 s ago: reuse, and the family is revoked.
    let (old, next) = rotated_pair(&repo, user, 11_000).await;
    assert_eq!(code(auth.refresh(&old).await), "REFRESH_REUSED");
    assert_eq!(code(auth.refresh(&next).await), "REFRESH_INVALID");
    assert!(auth.session_revoked("fam-1"));
}

#[tokio::test]
async fn logout_and_reuse_end_the_access_tokens_of_their_family() {
    let auth = service().await;
    let a = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let b = auth
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    assert!(auth.verify_access(&a.access_token).is_ok());
    auth.logout(&a.refresh_token).await.expect("logout");
    assert_eq!(code(auth.verify_access(&a.access_token)), "TOKEN_REVOKED");
    assert!(auth.verify_access(&b.access_token).is_ok(), "other session");

    // Reuse detection ends the access tokens too.
    let b2 = auth.refresh(&b.refresh_token).await.expect("refresh");
    let b3 = auth.refresh(&b2.refresh_token).await.expect("refresh");
    assert_eq!(code(auth.refresh(&b.refresh_token).await), "REFRESH_REUSED");
    assert_eq!(code(auth.verify_access(&b3.access_token)), "TOKEN_REVOKED");
}

#[tokio::test]
async fn another_process_learns_revocations_by_polling() {
    let (a, repo) = service_with(TokenConfig::default()).await;
    let session = a
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let b = AuthService::start(
        repo.clone(),
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        keys(),
    )
    .await
    .expect("second process");
    a.logout(&session.refresh_token).await.expect("logout");
    assert!(
        b.verify_access(&session.access_token).is_ok(),
        "not polled yet"
    );
    assert_eq!(b.sync_revocations().await, Ok(1));
    assert_eq!(
        code(b.verify_access(&session.access_token)),
        "TOKEN_REVOKED"
    );
    // A process started after the logout denies it from the start.
    let c = AuthService::start(
        repo,
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        keys(),
    )
    .await
    .expect("third process");
    assert_eq!(
        code(c.verify_access(&session.access_token)),
        "TOKEN_REVOKED"
    );
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_account_with_backoff() {
    let auth = service()
        .await
        .with_throttle(crate::throttle::Throttle::new(
            crate::throttle::ThrottleConfig {
                account: crate::throttle::ThrottleRule {
                    free_attempts: 3,
                    backoff_base_ms: 60_000,
                    ..Default::default()
                },
                ..Default::default()
            },
            Arc::new(crate::throttle::LocalAttempts::default()),
        ));
    auth.register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let ip = Some("192.0.2.7".parse().unwrap());
    for _ in 0..3 {
        assert_eq!(
            code(auth.login_from("ada@example.com", "wrong-pass", ip).await),
            "INVALID_CREDENTIALS"
        );
    }
    // Blocked now, even with the right password: guessing learns nothing.
    let refused = auth
        .login_from("ADA@example.com", "password123", ip)
        .await
        .expect_err("throttled");
    assert_eq!(refused.code(), "TOO_MANY_ATTEMPTS");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.retry_after_secs(), Some(60));
    // Another account is not affected.
    auth.register("bob@example.com", "password123", None)
        .await
        .expect("register bob");
    assert!(auth
        .login_from("bob@example.com", "password123", ip)
        .await
        .is_ok());
}

#[tokio::test]
async fn expired_refresh_token_is_refused() {
    let config = TokenConfig {
        refresh_ttl_secs: 0,
        ..TokenConfig::default()
    };
    let (auth, _) = service_with(config).await;
    let session = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let refused = auth.refresh(&session.refresh_token).await;
    assert_eq!(refused.as_ref().map_err(AuthError::status).err(), Some(401));
    assert_eq!(code(refused), "REFRESH_EXPIRED");
}

#[tokio::test]
async fn unknown_refresh_tokens_are_invalid() {
    let auth = service().await;
    for token in ["", "nope", &new_refresh_token(), &"x".repeat(100_000)] {
        assert_eq!(code(auth.refresh(token).await), "REFRESH_INVALID");
    }
}

#[tokio::test]
async fn logout_revokes_and_is_idempotent() {
    let auth = service().await;
    let first = auth
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let second = auth.refresh(&first.refresh_token).await.expect("refresh");

    auth.logout(&second.refresh_token).await.expect("logout");
    assert_eq!(
        code(auth.refresh(&second.refresh_token).await),
        "REFRESH_INVALID"
    );
    auth.logout(&second.refresh_token)
        .await
        .expect("logout again");
    auth.logout("never-issued").await.expect("unknown token");
    auth.logout("").await.expect("empty token");

    // Logging out from the newest token also retires older ones of the chain.
    let fresh = auth
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    auth.logout(&fresh.refresh_token).await.expect("logout");
    assert!(auth.refresh(&fresh.refresh_token).await.is_err());
}

#[tokio::test]
async fn signing_key_survives_a_restart() {
    let (first, repo) = service_with(TokenConfig::default()).await;
    let session = first
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let restarted = AuthService::start(
        repo,
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        keys(),
    )
    .await
    .expect("restart");
    assert_eq!(
        restarted
            .verify_access(&session.access_token)
            .map(|c| c.sub),
        Ok(session.user.id)
    );

    // A service with its own key (another database) does not accept it.
    let stranger = service().await;
    assert_eq!(
        code(stranger.verify_access(&session.access_token)),
        "TOKEN_INVALID"
    );
}

#[tokio::test]
async fn start_rejects_impossible_argon2_parameters() {
    let repo = Arc::new(InMemoryAuthRepository::new());
    let policy = PasswordPolicy {
        memory_kib: 0,
        ..PasswordPolicy::default()
    };
    let started = AuthService::start(repo, TokenConfig::default(), policy, keys()).await;
    assert_eq!(started.err().map(|e| e.code()), Some("UNAVAILABLE"));
}

#[test]
fn email_normalisation() {
    assert_eq!(
        normalize_email(" A.B+tag@Sub.Example.ORG\n"),
        Ok("a.b+tag@sub.example.org".into())
    );
    assert_eq!(
        normalize_email(&format!("{}@x.io", "a".repeat(249))).map(|e| e.len()),
        Ok(254)
    );
    assert!(normalize_email(&format!("{}@x.io", "a".repeat(250))).is_err());
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[tokio::test]
async fn a_rotation_signs_new_tokens_with_the_new_key_and_old_tokens_still_verify() {
    let (a, repo) = service_with(TokenConfig::default()).await;
    let before = a
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let old_kid = kid_of(&before.access_token);
    assert_eq!(a.signing_kid(), Some(old_kid.clone()));

    let new = rotate_signing_key(repo.as_ref(), &keys().kek)
        .await
        .expect("rotate");
    assert_ne!(new.kid, old_kid);
    // Another process learns of the key at its next poll.
    a.sync_keys().await.expect("sync");
    let after = a
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    assert_eq!(kid_of(&after.access_token), new.kid);
    assert!(a.verify_access(&before.access_token).is_ok());
    assert!(a.verify_access(&after.access_token).is_ok());
    let jwks = a.jwks();
    assert_eq!(jwks.keys.len(), 2);
    assert!(jwks.find(&old_kid).is_some() && jwks.find(&new.kid).is_some());

    // A process started now verifies both and signs with the new key.
    let b = AuthService::start(
        repo.clone(),
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        keys(),
    )
    .await
    .expect("second process");
    assert_eq!(b.signing_kid(), Some(new.kid.clone()));
    assert!(b.verify_access(&before.access_token).is_ok());
}

#[tokio::test]
async fn a_rotated_key_is_newer_than_every_stored_key() {
    // Keys made within one millisecond used to tie on their creation time,
    // and the ring's order between them was the kids' (random) order.
    let repo = Arc::new(InMemoryAuthRepository::new());
    let kek = keys().kek;
    let mut last = Millis::MIN;
    for _ in 0..20 {
        let key = rotate_signing_key(repo.as_ref(), &kek)
            .await
            .expect("rotate");
        assert!(key.created_at > last, "{} after {last}", key.created_at);
        last = key.created_at;
    }
}

#[tokio::test]
async fn a_new_key_signs_only_after_the_activation_delay() {
    let repo = Arc::new(InMemoryAuthRepository::new());
    let slow = KeyOptions {
        activation_ms: 3_600_000,
        ..keys()
    };
    let a = AuthService::start(
        repo.clone(),
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        slow,
    )
    .await
    .expect("start");
    let first = a.signing_kid().expect("first key signs at once");
    let new = rotate_signing_key(repo.as_ref(), &keys().kek)
        .await
        .expect("rotate");
    a.sync_keys().await.expect("sync");
    assert_eq!(a.signing_kid(), Some(first), "not active yet");
    // ...but it is already published, for verifiers to fetch.
    assert!(a.jwks().find(&new.kid).is_some());
}

#[tokio::test]
async fn expired_keys_are_pruned_and_an_old_key_rotates_automatically() {
    let repo = Arc::new(InMemoryAuthRepository::new());
    let kek = keys().kek;
    let now = now_millis();
    let hour = 3_600_000;
    let oldest = SigningKey::generate(now - 3 * hour).expect("key");
    let old = SigningKey::generate(now - 2 * hour).expect("key");
    for key in [&oldest, &old] {
        repo.add_signing_key(&key.seal(&kek).expect("seal"), Millis::MAX)
            .await
            .expect("store");
    }
    let options = KeyOptions {
        rotate_after_secs: 3600,
        ..keys()
    };
    let start = || {
        AuthService::start(
            repo.clone(),
            TokenConfig::default(),
            PasswordPolicy::fast_for_tests(),
            options.clone(),
        )
    };
    let (a, b) = tokio::join!(start(), start());
    let (a, b) = (a.expect("start"), b.expect("start"));
    let stored = repo.signing_keys().await.expect("keys");
    // `oldest` has been superseded for 2 h (> 15 min of token life plus
    // margins): deleted. `old` is older than an hour: one new key for both
    // processes, and `old` still verifies the tokens it signed.
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0].kid, old.kid());
    let newest = stored[1].kid.clone();
    assert_eq!(a.signing_kid(), Some(newest.clone()));
    b.sync_keys().await.expect("sync");
    assert_eq!(b.signing_kid(), Some(newest));
    let kids: Vec<String> = a
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(kids.contains(&old.kid().to_string()));
    assert!(!kids.contains(&oldest.kid().to_string()));
    let claims = AccessClaims::new(1, "a", &TokenConfig::default(), now / 1000, "s");
    let by_old = crate::tokens::encode_access(&claims, &old).expect("sign");
    let by_oldest = crate::tokens::encode_access(&claims, &oldest).expect("sign");
    assert!(a.verify_access(&by_old).is_ok());
    assert_eq!(code(a.verify_access(&by_oldest)), "TOKEN_INVALID");
}

#[tokio::test]
async fn a_wrong_kek_is_refused_at_start_with_a_typed_error() {
    let (_, repo) = service_with(TokenConfig::default()).await;
    let kid = repo.signing_keys().await.expect("keys")[0].kid.clone();
    let other = KeyOptions::new(Kek::generate().expect("kek"));
    let started = AuthService::start(
        repo.clone(),
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        other.clone(),
    )
    .await;
    assert_eq!(
        started.err(),
        Some(AuthError::SigningKeys(KeyError::WrongKek { kid }))
    );
    // Nor can a rotation with it add a key no other process could open.
    assert!(matches!(
        rotate_signing_key(repo.as_ref(), &other.kek).await,
        Err(AuthError::SigningKeys(KeyError::WrongKek { .. }))
    ));
    assert_eq!(repo.signing_keys().await.expect("keys").len(), 1);
}
