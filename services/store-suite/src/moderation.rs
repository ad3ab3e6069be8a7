//! Moderation on the full stores: a block with its refresh-token revocation
//! and audit row (one transaction), blocks listed for the deny-list poll,
//! and message reports stored once per reporter with their audit row.

use std::sync::Arc;

use bowchat_auth::moderation::{AuditAction, BlockChange, BlockOutcome, OPERATOR};
use bowchat_auth::ports::RefreshRecord;
use bowchat_chat::ports::{NewReport, ReportOutcome};

use crate::Store;

fn record(hash: &str, family: &str, user_id: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.to_string(),
        family: family.to_string(),
        user_id,
        created_at: 1_000,
        expires_at: 1_000_000,
        rotated_at: None,
        revoked_at: None,
        successor: None,
    }
}

fn change(user: i64, blocked: bool, at: i64) -> BlockChange {
    BlockChange {
        user,
        blocked,
        reason: blocked.then(|| "spam".to_string()),
        actor: OPERATOR.to_string(),
        at,
    }
}

pub async fn a_block_revokes_the_users_families_and_is_audited(store: Arc<dyn Store>) {
    let repo = store.open().await.auth;
    let ann = repo
        .create_user("ann@example.com", "Ann", None, 1)
        .await
        .unwrap();
    let bob = repo
        .create_user("bob@example.com", "Bob", None, 1)
        .await
        .unwrap();
    assert_eq!(ann.blocked_at, None);
    for (hash, family, user) in [
        ("a1", "fa1", ann.id),
        ("a2", "fa2", ann.id),
        ("b1", "fb1", bob.id),
    ] {
        repo.insert_refresh(&record(hash, family, user))
            .await
            .unwrap();
    }

    let outcome = repo
        .set_blocked(&change(ann.id, true, 5_000))
        .await
        .unwrap();
    assert!(matches!(outcome, BlockOutcome::Changed(ref u) if u.blocked_at == Some(5_000)));
    assert!(matches!(
        repo.set_blocked(&change(ann.id, true, 6_000))
            .await
            .unwrap(),
        BlockOutcome::Unchanged(_)
    ));
    assert_eq!(
        repo.set_blocked(&change(999_999, true, 6_000))
            .await
            .unwrap(),
        BlockOutcome::UnknownUser
    );
    // Stored, also for a restarted process.
    let repo = store.open().await.auth;
    assert_eq!(
        repo.user(ann.id).await.unwrap().unwrap().blocked_at,
        Some(5_000)
    );
    assert_eq!(
        repo.user_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .blocked_at,
        Some(5_000)
    );
    for hash in ["a1", "a2"] {
        assert_eq!(
            repo.refresh(hash).await.unwrap().unwrap().revoked_at,
            Some(5_000)
        );
    }
    assert_eq!(repo.refresh("b1").await.unwrap().unwrap().revoked_at, None);
    let mut families = repo.revoked_families(5_000).await.unwrap();
    families.sort();
    assert_eq!(families, vec![("fa1".into(), 5_000), ("fa2".into(), 5_000)]);
    assert_eq!(
        repo.blocks_since(5_000).await.unwrap(),
        vec![(ann.id, 5_000)]
    );
    assert!(repo.blocks_since(5_001).await.unwrap().is_empty());

    // An unblock lifts the stored block; the block stays listed for the poll.
    let outcome = repo
        .set_blocked(&change(ann.id, false, 7_000))
        .await
        .unwrap();
    assert!(matches!(outcome, BlockOutcome::Changed(ref u) if u.blocked_at.is_none()));
    assert_eq!(repo.user(ann.id).await.unwrap().unwrap().blocked_at, None);
    assert_eq!(repo.blocks_since(0).await.unwrap(), vec![(ann.id, 5_000)]);
    assert_eq!(
        repo.refresh("a1").await.unwrap().unwrap().revoked_at,
        Some(5_000)
    );

    let audit = repo.moderation_audit(10).await.unwrap();
    assert_eq!(
        audit.len(),
        2,
        "unchanged and unknown were not audited: {audit:?}"
    );
    assert_eq!(audit[0].action, AuditAction::Unblock);
    assert_eq!((audit[0].at, audit[0].detail.as_str()), (7_000, ""));
    assert_eq!(audit[1].action, AuditAction::Block);
    assert_eq!(audit[1].actor, OPERATOR);
    assert_eq!(audit[1].target_user, Some(ann.id));
    assert_eq!((audit[1].room_id, audit[1].seq), (None, None));
    assert_eq!((audit[1].at, audit[1].detail.as_str()), (5_000, "spam"));
    assert_eq!(repo.moderation_audit(1).await.unwrap().len(), 1);
}

pub async fn a_report_is_stored_once_per_reporter_and_audited(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let room = repos
        .chat
        .create_group("g", 1, &[2, 3], 10)
        .await
        .unwrap()
        .id;
    let report = |reporter: i64, reason: &str| NewReport {
        room_id: room,
        seq: 1,
        reporter,
        reason: reason.to_string(),
        sender: 1,
        body: "buy now".to_string(),
        at: 100 + reporter,
    };
    let ReportOutcome::Created(first) =
        repos.chat.report_message(&report(2, "spam")).await.unwrap()
    else {
        panic!("the first report is created");
    };
    assert_eq!(
        repos
            .chat
            .report_message(&report(2, "again"))
            .await
            .unwrap(),
        ReportOutcome::Existing(first)
    );
    let ReportOutcome::Created(second) =
        repos.chat.report_message(&report(3, "rude")).await.unwrap()
    else {
        panic!("another reporter's report is created");
    };
    assert_ne!(first, second);

    let repos = store.open().await;
    let listed = repos.chat.reports(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second);
    let r = &listed[1];
    assert_eq!((r.id, r.room_id, r.seq, r.reporter), (first, room, 1, 2));
    assert_eq!(
        (r.reason.as_str(), r.sender, r.body.as_str()),
        ("spam", 1, "buy now")
    );
    assert_eq!(r.created_at, 102);
    assert_eq!(repos.chat.reports(1).await.unwrap().len(), 1);

    let audit = repos.auth.moderation_audit(10).await.unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    let e = &audit[1];
    assert_eq!(e.action, AuditAction::Report);
    assert_eq!((e.actor.as_str(), e.target_user), ("2", Some(1)));
    assert_eq!(
        (e.room_id, e.seq, e.detail.as_str()),
        (Some(room), Some(1), "spam")
    );
    // Reports are not blocks: the deny-list poll does not see them.
    assert!(repos.auth.blocks_since(0).await.unwrap().is_empty());
}
