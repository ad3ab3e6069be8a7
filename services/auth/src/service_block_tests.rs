//! Blocking a user against the in-memory repository: what ends, on which
//! process, and what an unblock gives back.

use std::sync::Arc;

use super::*;
use crate::memory::InMemoryAuthRepository;
use crate::moderation::{set_blocked, BlockOutcome, OPERATOR};

async fn process(repo: Arc<InMemoryAuthRepository>) -> AuthService {
    static KEK: std::sync::OnceLock<Kek> = std::sync::OnceLock::new();
    let keys = KeyOptions {
        activation_ms: 0,
        ..KeyOptions::new(KEK.get_or_init(|| Kek::generate().expect("kek")).clone())
    };
    AuthService::start(
        repo,
        TokenConfig::default(),
        PasswordPolicy::fast_for_tests(),
        keys,
    )
    .await
    .expect("start")
}

fn code<T: std::fmt::Debug>(r: Result<T, AuthError>) -> &'static str {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn a_block_ends_every_session_everywhere_and_an_unblock_allows_a_new_login() {
    let repo = Arc::new(InMemoryAuthRepository::new());
    let a = process(repo.clone()).await;
    let b = process(repo.clone()).await;
    let first = a
        .register("ada@example.com", "password123", None)
        .await
        .expect("register");
    let second = a
        .login("ada@example.com", "password123")
        .await
        .expect("login");
    let bob = a
        .register("bob@example.com", "password123", None)
        .await
        .expect("bob");

    let outcome = set_blocked(
        repo.as_ref(),
        "ADA@example.com",
        true,
        Some("spam".into()),
        OPERATOR,
        now_millis(),
    )
    .await
    .expect("block");
    assert!(matches!(outcome, BlockOutcome::Changed(ref u) if u.blocked_at.is_some()));
    // Blocking again changes nothing.
    let again = set_blocked(repo.as_ref(), "1", true, None, OPERATOR, now_millis())
        .await
        .expect("block again");
    assert!(matches!(again, BlockOutcome::Unchanged(_)));

    assert_eq!(
        code(a.login("ada@example.com", "password123").await),
        "USER_BLOCKED"
    );
    // A wrong password still says only that the credentials are wrong.
    assert_eq!(
        code(a.login("ada@example.com", "wrong-password").await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(code(a.refresh(&first.refresh_token).await), "USER_BLOCKED");
    assert_eq!(
        code(a.open_session_for(first.user.id).await),
        "USER_BLOCKED"
    );
    assert_eq!(
        code(a.ensure_not_blocked(first.user.id).await),
        "USER_BLOCKED"
    );
    // Both processes learn the block at their next poll; other users are untouched.
    for process in [&a, &b] {
        assert!(process.verify_access(&second.access_token).is_ok());
        process.sync_revocations().await.expect("poll");
        for token in [&first.access_token, &second.access_token] {
            assert_eq!(code(process.verify_access(token)), "USER_BLOCKED");
        }
        assert!(process.verify_access(&bob.access_token).is_ok());
    }

    let lifted = set_blocked(repo.as_ref(), "1", false, None, OPERATOR, now_millis())
        .await
        .expect("unblock");
    assert!(matches!(lifted, BlockOutcome::Changed(ref u) if u.blocked_at.is_none()));
    let back = b
        .login("ada@example.com", "password123")
        .await
        .expect("login after the unblock");
    b.sync_revocations().await.expect("poll");
    assert!(b.verify_access(&back.access_token).is_ok());
    assert!(b.refresh(&back.refresh_token).await.is_ok());
    // The sessions the block ended stay ended.
    assert_eq!(code(b.verify_access(&first.access_token)), "USER_BLOCKED");
    assert!(b.refresh(&first.refresh_token).await.is_err());

    let audit = repo.moderation_audit(10).await.expect("audit");
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["unblock", "block"]);
    assert_eq!(audit[1].detail, "spam");
    assert_eq!(audit[1].actor, OPERATOR);
    assert_eq!(audit[1].target_user, Some(first.user.id));
}
