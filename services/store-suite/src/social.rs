//! `SocialRepository`: logins in flight, linked identities and one-time tickets.

use std::sync::Arc;

use bowchat_social::ports::{NewAccount, PendingLogin, Ticket, TicketKind};

use crate::Store;

fn pending(state: &str, expires_at: i64) -> PendingLogin {
    PendingLogin {
        state: state.into(),
        provider: "test".into(),
        pkce_verifier: "v".into(),
        nonce: "n".into(),
        link_user: None,
        expires_at,
    }
}

pub async fn a_pending_login_is_taken_once_and_expired_ones_are_swept(store: Arc<dyn Store>) {
    let repo = store.open().await.social;
    repo.insert_pending(&pending("old", 100), 50).await.unwrap();
    repo.insert_pending(&pending("s1", 10_000), 200)
        .await
        .unwrap();
    // Inserting at t=200 swept "old" (expired at 100).
    assert_eq!(repo.take_pending("old").await.unwrap(), None);
    assert_eq!(
        repo.take_pending("s1").await.unwrap(),
        Some(pending("s1", 10_000))
    );
    assert_eq!(repo.take_pending("s1").await.unwrap(), None);
}

pub async fn first_login_creates_a_linked_user_and_refuses_a_taken_email(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let (auth, repo) = (repos.auth, repos.social);
    let local = auth
        .create_user("kim@example.test", "Kim", Some("hash"), 1)
        .await
        .unwrap();

    let outcome = repo
        .create_linked_user("kim@example.test", "Kim", "test", "sub-1", 2)
        .await
        .unwrap();
    assert_eq!(outcome, NewAccount::EmailTaken);
    assert_eq!(repo.identity_owner("test", "sub-1").await.unwrap(), None);

    let NewAccount::Created(user) = repo
        .create_linked_user("lee@example.test", "Lee", "test", "sub-2", 3)
        .await
        .unwrap()
    else {
        panic!("expected a new account");
    };
    assert_eq!(user.password_hash, None);
    assert_eq!(
        repo.identity_owner("test", "sub-2").await.unwrap(),
        Some(user.id)
    );
    assert_eq!(
        repo.create_linked_user("other@example.test", "O", "test", "sub-2", 4)
            .await
            .unwrap(),
        NewAccount::AlreadyLinked(user.id)
    );

    assert!(repo
        .link_identity("test", "sub-1", local.id, 5)
        .await
        .unwrap());
    assert!(!repo
        .link_identity("test", "sub-1", user.id, 6)
        .await
        .unwrap());
    assert_eq!(
        repo.identity_owner("test", "sub-1").await.unwrap(),
        Some(local.id)
    );
    // The same subject at another provider is another identity.
    assert_eq!(repo.identity_owner("other", "sub-1").await.unwrap(), None);
}

pub async fn tickets_are_single_use_and_kept_apart_by_kind(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let (auth, repo) = (repos.auth, repos.social);
    let user = auth
        .create_user("a@example.test", "A", None, 1)
        .await
        .unwrap();
    let ticket = Ticket {
        hash: "h1".into(),
        kind: TicketKind::LoginCode,
        user: user.id,
        new_account: true,
        expires_at: 1_000,
    };
    repo.insert_ticket(&ticket, 10).await.unwrap();
    assert_eq!(
        repo.take_ticket(TicketKind::LinkTicket, "h1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.take_ticket(TicketKind::LoginCode, "h1").await.unwrap(),
        Some(ticket)
    );
    assert_eq!(
        repo.take_ticket(TicketKind::LoginCode, "h1").await.unwrap(),
        None
    );
}

pub async fn racing_first_logins_create_one_account(store: Arc<dyn Store>) {
    let repo = store.open().await.social;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.create_linked_user("sam@example.test", "Sam", "test", "sub-7", 10 + i)
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut linked = Vec::new();
    for task in tasks {
        match task.await.expect("join").expect("create") {
            NewAccount::Created(user) => created.push(user.id),
            NewAccount::AlreadyLinked(id) => linked.push(id),
            NewAccount::EmailTaken => panic!("the email was taken by the same identity"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?} {linked:?}");
    assert!(linked.iter().all(|id| *id == created[0]), "{linked:?}");
    assert_eq!(
        repo.identity_owner("test", "sub-7").await.unwrap(),
        Some(created[0])
    );
}
