//! Redis adapters on the real server: expiry of refresh records, the shared
//! token bucket, presence across gateways (including a dead one), the
//! connection registry, each also under concurrency, and the signal broadcast.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bowchat_auth::memory::InMemoryAuthRepository;
use bowchat_auth::ports::{AuthRepository, RefreshRecord};
use bowchat_redis::{
    ConnectionRegistry, Presence, RateLimit, RedisBroadcast, RedisConfig, RedisPresence,
    RedisRateLimiter, RedisRefreshStore,
};
use redis::AsyncCommands;

fn record(hash: &str, lifetime: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        family: "fam".into(),
        user_id: 1,
        created_at: 1_000,
        expires_at: 1_000 + lifetime,
        rotated_at: None,
        revoked_at: None,
        successor: None,
    }
}

#[tokio::test]
async fn refresh_records_live_for_their_lifetime_plus_grace() {
    common::with_prefix(|config| async move {
        let mut conn = common::connect(&config).await;
        let store = RedisRefreshStore::new(
            InMemoryAuthRepository::default(),
            conn.clone(),
            &config.key_prefix,
            Duration::from_millis(100),
        );
        store.insert_refresh(&record("short", 300)).await.unwrap();
        store.insert_refresh(&record("long", 60_000)).await.unwrap();
        let pttl: i64 = conn
            .pttl(format!("{}rt:short", config.key_prefix))
            .await
            .unwrap();
        assert!((1..=400).contains(&pttl), "{pttl}");
        let family: i64 = conn
            .pttl(format!("{}rf:fam", config.key_prefix))
            .await
            .unwrap();
        assert!(
            family > 59_000,
            "the family lives as long as its longest record: {family}"
        );
        // A taken hash is a conflict and keeps the first record.
        assert!(store.insert_refresh(&record("short", 5)).await.is_err());

        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(store.refresh("short").await.unwrap(), None);
        assert!(store.refresh("long").await.unwrap().is_some());
        // Revoking the family skips (and forgets) the expired member.
        store.revoke_family("fam", 5_000).await.unwrap();
        assert_eq!(
            store.refresh("long").await.unwrap().unwrap().revoked_at,
            Some(5_000)
        );
        let members: Vec<String> = conn
            .smembers(format!("{}rf:fam", config.key_prefix))
            .await
            .unwrap();
        assert_eq!(members, vec!["long".to_string()]);
    })
    .await;
}

#[tokio::test]
async fn a_users_families_are_indexed_while_they_live_and_revoked_together() {
    common::with_prefix(|config| async move {
        let mut conn = common::connect(&config).await;
        let store = RedisRefreshStore::new(
            InMemoryAuthRepository::default(),
            conn.clone(),
            &config.key_prefix,
            Duration::from_millis(100),
        );
        let of = |hash: &str, family: &str, user: i64, lifetime: i64| RefreshRecord {
            family: family.into(),
            user_id: user,
            ..record(hash, lifetime)
        };
        store
            .insert_refresh(&of("a1", "fa", 1, 60_000))
            .await
            .unwrap();
        store.insert_refresh(&of("o1", "fo", 1, 300)).await.unwrap();
        store
            .insert_refresh(&of("b1", "fb", 2, 60_000))
            .await
            .unwrap();
        // A rotation keeps the family in the index.
        assert!(store
            .rotate_refresh("a1", "sealed", &of("a2", "fa", 1, 60_000), 2_000)
            .await
            .unwrap());
        let index = format!("{}user-families:1", config.key_prefix);
        let ttl: i64 = conn.pttl(&index).await.unwrap();
        assert!(
            ttl > 59_000,
            "the index lives as long as the longest family: {ttl}"
        );
        let mut families: Vec<String> = conn.smembers(&index).await.unwrap();
        families.sort();
        assert_eq!(families, ["fa", "fo"]);

        // A family revoked alone (a logout) leaves the index.
        store.revoke_family("fo", 3_000).await.unwrap();
        let families: Vec<String> = conn.smembers(&index).await.unwrap();
        assert_eq!(families, ["fa"]);

        assert_eq!(store.revoke_user(1, 5_000).await.unwrap(), 1);
        for hash in ["a1", "a2"] {
            assert_eq!(
                store.refresh(hash).await.unwrap().unwrap().revoked_at,
                Some(5_000),
                "{hash}"
            );
        }
        assert_eq!(store.refresh("b1").await.unwrap().unwrap().revoked_at, None);
        let mut revoked = store.revoked_families(0).await.unwrap();
        revoked.sort();
        assert_eq!(
            revoked,
            [("fa".to_string(), 5_000), ("fo".to_string(), 3_000)]
        );
        assert!(!conn.exists::<_, bool>(&index).await.unwrap());
        // Nothing left to revoke: again is a no-op.
        assert_eq!(store.revoke_user(1, 6_000).await.unwrap(), 0);
        assert_eq!(
            store.refresh("a2").await.unwrap().unwrap().revoked_at,
            Some(5_000)
        );
    })
    .await;
}

async fn limiter(config: &RedisConfig, rate: f64, burst: f64) -> Arc<RedisRateLimiter> {
    let conn = common::connect(config).await;
    Arc::new(RedisRateLimiter::new(conn, &config.key_prefix, rate, burst))
}

#[tokio::test]
async fn rate_limit_is_one_bucket_for_all_callers() {
    common::with_prefix(|config| async move {
        // Two gateways (two connections), one bucket per user, nearly no refill.
        let a = limiter(&config, 0.001, 20.0).await;
        let b = limiter(&config, 0.001, 20.0).await;
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { limiter.allow(7).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            allowed += usize::from(task.await.unwrap());
        }
        assert_eq!(allowed, 20);
        assert!(!a.allow(7).await.unwrap());
        assert!(
            a.allow(8).await.unwrap(),
            "another user has a bucket of their own"
        );
    })
    .await;
}

#[tokio::test]
async fn rate_limit_refills_and_full_buckets_expire() {
    common::with_prefix(|config| async move {
        let limiter = limiter(&config, 10.0, 2.0).await;
        assert!(limiter.allow(1).await.unwrap());
        assert!(limiter.allow(1).await.unwrap());
        assert!(!limiter.allow(1).await.unwrap());
        // 10 tokens a second: one is back after 100 ms.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(limiter.allow(1).await.unwrap());
        assert!(!limiter.allow(1).await.unwrap());
        let mut conn = common::connect(&config).await;
        let pttl: i64 = conn.pttl(limiter.key(1)).await.unwrap();
        assert!((1..=250).contains(&pttl), "{pttl}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let exists: bool = conn.exists(limiter.key(1)).await.unwrap();
        assert!(!exists, "a full bucket is not kept");
        assert!(limiter.allow(1).await.unwrap());
        assert!(limiter.allow(1).await.unwrap());
        assert!(!limiter.allow(1).await.unwrap());
    })
    .await;
}

async fn gateway(config: &RedisConfig, name: &str, ttl_ms: u64) -> Arc<RedisPresence> {
    let conn = common::connect(config).await;
    Arc::new(
        RedisPresence::start(
            conn,
            &config.key_prefix,
            name.into(),
            Duration::from_millis(ttl_ms),
        )
        .await
        .unwrap(),
    )
}

#[tokio::test]
async fn presence_counts_connections_over_gateways() {
    common::with_prefix(|config| async move {
        let a = gateway(&config, "a-1", 10_000).await;
        let b = gateway(&config, "b-1", 10_000).await;
        // 40 connections of user 5 entering room 1 at once on two gateways:
        // the user comes online exactly once.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let g = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { g.enter(1, 5).await.unwrap() })
            })
            .collect();
        let mut firsts = 0;
        for task in tasks {
            firsts += usize::from(task.await.unwrap());
        }
        assert_eq!(firsts, 1);
        assert!(a.enter(1, 6).await.unwrap());
        assert!(b.enter(2, 6).await.unwrap(), "rooms are separate");
        assert_eq!(b.online_in_room(1).await.unwrap(), vec![5, 6]);
        assert_eq!(a.online_in_room(2).await.unwrap(), vec![6]);

        // All but the last leave concurrently: nobody goes offline; the last does.
        let tasks: Vec<_> = (0..39)
            .map(|i| {
                let g = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { g.leave(1, 5).await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert!(!task.await.unwrap());
        }
        assert_eq!(a.online_in_room(1).await.unwrap(), vec![5, 6]);
        assert!(b.leave(1, 5).await.unwrap());
        assert!(
            !b.leave(1, 5).await.unwrap(),
            "a leave too many changes nothing"
        );
        assert_eq!(a.online_in_room(1).await.unwrap(), vec![6]);
    })
    .await;
}

#[tokio::test]
async fn a_dead_gateways_users_go_offline_after_the_ttl() {
    common::with_prefix(|config| async move {
        let a = gateway(&config, "a-1", 10_000).await;
        let dead = gateway(&config, "dead-1", 400).await;
        assert!(dead.enter(1, 7).await.unwrap());
        assert!(dead.register(7).await.unwrap());
        assert!(
            !a.register(7).await.unwrap(),
            "already online through the other gateway"
        );
        assert!(a.enter(1, 8).await.unwrap());
        assert_eq!(a.online_in_room(1).await.unwrap(), vec![7, 8]);
        assert_eq!(
            a.gateways_of(7).await.unwrap(),
            vec!["a-1".to_string(), "dead-1".to_string()]
        );

        // The heartbeat keeps it alive past the TTL ...
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(dead.heartbeat().await.unwrap());
        }
        assert_eq!(a.online_in_room(1).await.unwrap(), vec![7, 8]);
        // ... and without it the gateway's users go offline.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(a.online_in_room(1).await.unwrap(), vec![8]);
        assert_eq!(a.gateways_of(7).await.unwrap(), vec!["a-1".to_string()]);
        // User 7 came back to room 1 through gateway a: announced again.
        assert!(a.enter(1, 7).await.unwrap());
        // The late gateway learns its entries may be gone.
        assert!(!dead.heartbeat().await.unwrap());
        assert!(dead.heartbeat().await.unwrap());

        // A clean shutdown takes its users offline at once.
        assert!(dead.enter(3, 9).await.unwrap());
        assert_eq!(a.online_in_room(3).await.unwrap(), vec![9]);
        dead.shutdown().await.unwrap();
        assert!(a.online_in_room(3).await.unwrap().is_empty());
        assert!(a.unregister(7).await.unwrap());
        assert!(a.gateways_of(7).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn signals_reach_every_subscriber_once_and_are_not_kept() {
    common::with_prefix(|config| async move {
        let conn = common::connect(&config).await;
        let a = RedisBroadcast::new(&config, conn.clone()).unwrap();
        let b = RedisBroadcast::new(&config, conn.clone()).unwrap();
        assert_eq!(
            a.publish(b"before anyone listened").await.unwrap(),
            0,
            "nobody subscribed yet"
        );
        let mut from_a = a.subscribe().await.unwrap();
        let mut from_b = b.subscribe().await.unwrap();
        for n in 0..20u8 {
            let sender = if n % 2 == 0 { &a } else { &b };
            assert_eq!(sender.publish(&[n]).await.unwrap(), 2, "two subscribers");
        }
        for rx in [&mut from_a, &mut from_b] {
            for n in 0..20u8 {
                let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .expect("a signal within 5 s")
                    .expect("subscription open");
                assert_eq!(got, vec![n], "one sender's order is kept");
            }
        }
        // Nothing under the prefix: signals are never stored.
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", config.key_prefix))
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        assert!(keys.is_empty(), "{keys:?}");
        drop(from_b);
        // A dropped receiver ends its subscription (at the next message).
        a.publish(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            a.publish(b"y").await.unwrap(),
            1,
            "only a's subscription is left"
        );
    })
    .await;
}

/// Login attempts counted in Redis are one throttle for every gateway:
/// concurrent attempts from two "gateways" are each counted once, the key
/// blocks after the free attempts with the rule's delay, clear starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_one_throttle_for_all_gateways() {
    use bowchat_auth::throttle::{AttemptStore, Hit, ThrottleRule};
    use bowchat_redis::RedisAttempts;
    common::with_prefix(|config| async move {
        let a = Arc::new(RedisAttempts::new(
            common::connect(&config).await,
            &config.key_prefix,
        ));
        let b = Arc::new(RedisAttempts::new(
            common::connect(&config).await,
            &config.key_prefix,
        ));
        let rule = ThrottleRule {
            free_attempts: 10,
            backoff_base_ms: 60_000,
            backoff_max_ms: 120_000,
            window_secs: 900,
        };
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let rule = rule.clone();
                tokio::spawn(async move { store.hit("acct:x", &rule).await.unwrap() })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Hit::Allowed => allowed += 1,
                Hit::Blocked { retry_after_ms } => {
                    assert!(
                        retry_after_ms > 0 && retry_after_ms <= 60_000,
                        "{retry_after_ms}"
                    )
                }
            }
        }
        assert_eq!(
            allowed, 10,
            "exactly the free attempts pass, however interleaved"
        );
        assert!(matches!(
            b.hit("acct:y", &rule).await.unwrap(),
            Hit::Allowed
        ));
        a.clear("acct:x").await.unwrap();
        assert!(matches!(
            b.hit("acct:x", &rule).await.unwrap(),
            Hit::Allowed
        ));
        // Forgiving takes one attempt back from the count.
        for _ in 0..8 {
            assert!(matches!(
                a.hit("acct:x", &rule).await.unwrap(),
                Hit::Allowed
            ));
        }
        a.forgive("acct:x").await.unwrap();
        assert!(matches!(
            a.hit("acct:x", &rule).await.unwrap(),
            Hit::Allowed
        ));
        assert!(matches!(
            a.hit("acct:x", &rule).await.unwrap(),
            Hit::Allowed
        ));
        assert!(matches!(
            a.hit("acct:x", &rule).await.unwrap(),
            Hit::Blocked { .. }
        ));
    })
    .await;
}
