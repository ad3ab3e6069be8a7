//! Blocking a user whose refresh tokens live in Redis, through the auth
//! service on the real server: the block revokes the user's Redis families,
//! so after an unblock the old refresh tokens stay refused while a new login
//! works, and other users' sessions are untouched.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bowchat_auth::memory::InMemoryAuthRepository;
use bowchat_auth::moderation::{set_blocked, BlockOutcome, OPERATOR};
use bowchat_auth::tokens::hash_refresh_token;
use bowchat_auth::{AuthError, AuthRepository, AuthService, Kek, KeyOptions, PasswordPolicy};
use bowchat_model::now_millis;
use bowchat_redis::RedisRefreshStore;
use redis::AsyncCommands;

async fn process(repo: Arc<dyn AuthRepository>) -> AuthService {
    let keys = KeyOptions {
        activation_ms: 0,
        ..KeyOptions::new(Kek::generate().expect("kek"))
    };
    AuthService::start(
        repo,
        Default::default(),
        PasswordPolicy::fast_for_tests(),
        keys,
    )
    .await
    .expect("start")
}

fn code<T: std::fmt::Debug>(r: Result<T, AuthError>) -> &'static str {
    r.expect_err("expected an error").code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_revokes_the_users_redis_families_so_an_unblock_does_not_revive_them() {
    common::with_prefix(|config| async move {
        let mut conn = common::connect(&config).await;
        let store = Arc::new(RedisRefreshStore::new(
            InMemoryAuthRepository::new(),
            conn.clone(),
            &config.key_prefix,
            Duration::from_secs(60),
        ));
        let auth = process(store.clone()).await;
        let first = auth
            .register("ada@example.com", "password123", None)
            .await
            .expect("register");
        let second = auth
            .login("ada@example.com", "password123")
            .await
            .expect("login");
        // The second family has rotated once: its live token is the successor.
        let rotated = auth.refresh(&second.refresh_token).await.expect("rotate");
        let bob = auth
            .register("bob@example.com", "password123", None)
            .await
            .expect("bob");
        let sid = |token: &str| auth.verify_access(token).expect("valid").sid;
        let mut families = vec![sid(&first.access_token), sid(&second.access_token)];
        families.sort();

        let outcome = set_blocked(
            store.as_ref(),
            "ada@example.com",
            true,
            Some("spam".into()),
            OPERATOR,
            now_millis(),
        )
        .await
        .expect("block");
        let BlockOutcome::Changed(ada) = outcome else {
            panic!("blocked: {outcome:?}");
        };
        assert_eq!(
            code(auth.refresh(&rotated.refresh_token).await),
            "USER_BLOCKED"
        );
        // Every token of her families is revoked in Redis, and the families
        // are on the deny list every gateway polls.
        for token in [
            &first.refresh_token,
            &second.refresh_token,
            &rotated.refresh_token,
        ] {
            let record = store
                .refresh(&hash_refresh_token(token))
                .await
                .unwrap()
                .expect("stored");
            assert_eq!(record.revoked_at, ada.blocked_at);
        }
        let mut denied: Vec<String> = store
            .revoked_families(0)
            .await
            .unwrap()
            .into_iter()
            .map(|(family, _)| family)
            .collect();
        denied.sort();
        assert_eq!(denied, families);
        assert!(
            auth.refresh(&bob.refresh_token).await.is_ok(),
            "bob is untouched"
        );

        set_blocked(
            store.as_ref(),
            "ada@example.com",
            false,
            None,
            OPERATOR,
            now_millis(),
        )
        .await
        .expect("unblock");
        for token in [&first.refresh_token, &rotated.refresh_token] {
            assert_eq!(code(auth.refresh(token).await), "REFRESH_INVALID");
        }
        assert!(auth.refresh(&second.refresh_token).await.is_err());
        let back = auth
            .login("ada@example.com", "password123")
            .await
            .expect("a new login after the unblock");
        let next = auth
            .refresh(&back.refresh_token)
            .await
            .expect("its refresh");
        // Only the new family is indexed for her now.
        let indexed: Vec<String> = conn
            .smembers(format!("{}user-families:{}", config.key_prefix, ada.id))
            .await
            .unwrap();
        assert_eq!(indexed, [sid(&next.access_token)]);
    })
    .await;
}
