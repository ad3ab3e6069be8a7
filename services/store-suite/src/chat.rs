//! `ChatRepository`: rooms, members, history pages, read markers and the
//! atomic, sequence-checked batch commit.

use std::sync::Arc;

use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{ChatBatch, ChatRepoError, MemberRole, RoomKind};
use bowchat_model::{PageQuery, RoomId, UserId};

use crate::Store;

fn msg(room: RoomId, seq: i64, sender: UserId) -> ChatMessage {
    ChatMessage {
        room_id: room,
        seq,
        sender,
        body: format!("message {seq}"),
        client_msg_id: format!("c{seq}"),
        created_at: 1_000 + seq,
    }
}

fn batch_of(messages: Vec<ChatMessage>) -> ChatBatch {
    ChatBatch {
        messages,
        ..ChatBatch::default()
    }
}

fn seqs(messages: &[ChatMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

fn page(before: Option<i64>, after: Option<i64>, limit: Option<u32>) -> PageQuery {
    PageQuery {
        before,
        after,
        limit,
    }
}

pub async fn history_pages_before_after_and_latest(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let room = repo.create_group("g", 1, &[2], 10).await.unwrap().id;
    // Three batches, as the role would store them.
    for range in [1..=10, 11..=11, 12..=25] {
        let batch = batch_of(range.map(|s| msg(room, s, 1 + s % 2)).collect());
        repo.commit(&batch).await.unwrap();
    }
    let other = repo.create_group("other", 1, &[], 10).await.unwrap().id;
    repo.commit(&batch_of(vec![msg(other, 1, 1)]))
        .await
        .unwrap();

    let h = |p| repo.history(room, p, 20);
    assert_eq!(
        seqs(&h(page(None, None, Some(10))).await.unwrap()),
        (16..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&h(page(Some(16), None, Some(10))).await.unwrap()),
        (6..=15).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&h(page(Some(6), None, Some(10))).await.unwrap()),
        (1..=5).collect::<Vec<_>>()
    );
    assert!(h(page(Some(1), None, Some(10))).await.unwrap().is_empty());
    assert_eq!(
        seqs(&h(page(None, Some(20), Some(3))).await.unwrap()),
        vec![21, 22, 23]
    );
    assert_eq!(
        seqs(&h(page(None, Some(0), Some(2))).await.unwrap()),
        vec![1, 2]
    );
    assert!(h(page(None, Some(25), None)).await.unwrap().is_empty());
    assert_eq!(
        seqs(&h(page(Some(9), Some(5), None)).await.unwrap()),
        vec![6, 7, 8]
    );
    // No limit: up to `max`; a limit above `max` is clamped to it.
    assert_eq!(
        seqs(&h(page(None, None, None)).await.unwrap()),
        (6..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&h(page(None, Some(0), Some(500))).await.unwrap()),
        (1..=20).collect::<Vec<_>>()
    );

    let one = &h(page(Some(4), None, Some(1))).await.unwrap()[0];
    assert_eq!(one, &msg(room, 3, 2));
    assert!(repo
        .history(999, PageQuery::default(), 20)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(repo.get_room(room).await.unwrap().unwrap().last_seq, 25);
}

pub async fn direct_room_is_one_per_pair(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let first = repo.open_direct(1, 2, 10).await.unwrap();
    assert_eq!(first.kind, RoomKind::Direct);
    assert_eq!(repo.open_direct(1, 2, 20).await.unwrap(), first);
    assert_eq!(repo.open_direct(2, 1, 30).await.unwrap(), first);
    let members: Vec<UserId> = repo
        .members(first.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, vec![1, 2]);
    let other = repo.open_direct(3, 1, 40).await.unwrap();
    assert_ne!(other.id, first.id);
    assert!(matches!(
        repo.open_direct(4, 4, 50).await,
        Err(ChatRepoError::Conflict(_))
    ));
}

pub async fn groups_members_and_joins(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let room = repo
        .create_group("team", 1, &[2, 3, 2, 1], 10)
        .await
        .unwrap();
    assert_eq!(
        (
            room.kind,
            room.name.as_str(),
            room.created_by,
            room.last_seq
        ),
        (RoomKind::Group, "team", 1, 0)
    );
    let members = repo.members(room.id).await.unwrap();
    let roles: Vec<(UserId, MemberRole)> = members.iter().map(|m| (m.user_id, m.role)).collect();
    assert_eq!(
        roles,
        vec![
            (1, MemberRole::Owner),
            (2, MemberRole::Member),
            (3, MemberRole::Member)
        ]
    );

    repo.add_member(room.id, 4, 20).await.unwrap();
    repo.add_member(room.id, 4, 30).await.unwrap();
    assert_eq!(
        repo.member(room.id, 4).await.unwrap().unwrap().joined_at,
        20
    );
    assert!(matches!(
        repo.add_member(999, 4, 30).await,
        Err(ChatRepoError::NotFound(_))
    ));
    repo.remove_member(room.id, 4).await.unwrap();
    repo.remove_member(room.id, 4).await.unwrap();
    assert!(repo.member(room.id, 4).await.unwrap().is_none());

    // Joins in a batch are idempotent and keep the first join time.
    let joins = ChatBatch {
        joins: vec![(room.id, 5, 40), (room.id, 5, 41), (room.id, 1, 42)],
        ..ChatBatch::default()
    };
    repo.commit(&joins).await.unwrap();
    let five = repo.member(room.id, 5).await.unwrap().unwrap();
    assert_eq!((five.role, five.joined_at), (MemberRole::Member, 40));
    assert_eq!(
        repo.member(room.id, 1).await.unwrap().unwrap().role,
        MemberRole::Owner
    );
    assert_eq!(repo.members(room.id).await.unwrap().len(), 4);
}

pub async fn unread_counts_and_read_markers_never_move_back(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let room = repo.create_group("g", 1, &[2, 3], 10).await.unwrap().id;
    let quiet = repo.create_group("quiet", 2, &[], 10).await.unwrap().id;
    repo.commit(&batch_of((1..=5).map(|s| msg(room, s, 1)).collect()))
        .await
        .unwrap();

    let read = |user, seq| ChatBatch {
        reads: vec![(room, user, seq)],
        ..ChatBatch::default()
    };
    let summary = |user| {
        let repo = repo.clone();
        async move {
            let rooms = repo.rooms_of(user).await.unwrap();
            let s = rooms.iter().find(|s| s.room.id == room).unwrap().clone();
            (s.unread, s.last_read_seq, s.member_count)
        }
    };
    assert_eq!(summary(2).await, (5, 0, 3));
    repo.commit(&read(2, 3)).await.unwrap();
    assert_eq!(summary(2).await, (2, 3, 3));
    repo.commit(&read(2, 1)).await.unwrap();
    assert_eq!(summary(2).await, (2, 3, 3), "a marker never moves back");
    repo.commit(&read(2, 99)).await.unwrap();
    assert_eq!(
        summary(2).await,
        (0, 5, 3),
        "a marker stops at the last message"
    );
    assert_eq!(summary(3).await, (5, 0, 3));

    // Messages and a read of them in one batch: the cap sees the new messages.
    let mut batch = batch_of(vec![msg(room, 6, 3), msg(room, 7, 3)]);
    batch.reads = vec![(room, 3, 7)];
    repo.commit(&batch).await.unwrap();
    assert_eq!(summary(3).await, (0, 7, 3));
    assert_eq!(summary(2).await, (2, 5, 3));

    let ids: Vec<RoomId> = repo
        .rooms_of(2)
        .await
        .unwrap()
        .iter()
        .map(|s| s.room.id)
        .collect();
    assert_eq!(ids, vec![room, quiet]);
    assert!(repo.rooms_of(42).await.unwrap().is_empty());
}

pub async fn a_failing_commit_stores_nothing(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let a = repo.create_group("a", 1, &[2], 10).await.unwrap().id;
    let b = repo.create_group("b", 1, &[2], 10).await.unwrap().id;
    repo.commit(&batch_of(vec![msg(a, 1, 1)])).await.unwrap();

    let with = |messages: Vec<ChatMessage>| ChatBatch {
        messages,
        reads: vec![(a, 2, 1)],
        joins: vec![(b, 9, 50)],
        outbox: None,
    };
    // Room b is fine, but room a repeats a stored client id.
    let mut duplicate = msg(a, 2, 1);
    duplicate.client_msg_id = "c1".into();
    let err = repo
        .commit(&with(vec![msg(b, 1, 1), duplicate]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
    // A batch that does not continue the stored sequence (a stale owner).
    let err = repo
        .commit(&with(vec![msg(b, 1, 1), msg(a, 1, 2)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
    // A gap inside the batch.
    let err = repo
        .commit(&with(vec![msg(b, 1, 1), msg(b, 3, 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
    // An unknown room.
    let err = repo
        .commit(&with(vec![msg(b, 1, 1), msg(999, 1, 1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, ChatRepoError::NotFound(_)), "{err:?}");

    assert_eq!(
        seqs(&repo.history(a, PageQuery::default(), 50).await.unwrap()),
        vec![1]
    );
    assert!(repo
        .history(b, PageQuery::default(), 50)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(repo.get_room(a).await.unwrap().unwrap().last_seq, 1);
    assert_eq!(repo.get_room(b).await.unwrap().unwrap().last_seq, 0);
    assert_eq!(repo.member(a, 2).await.unwrap().unwrap().last_read_seq, 0);
    assert!(repo.member(b, 9).await.unwrap().is_none());

    // The same batch without the bad part goes through whole.
    repo.commit(&with(vec![msg(b, 1, 1), msg(a, 2, 1)]))
        .await
        .unwrap();
    assert_eq!(repo.get_room(a).await.unwrap().unwrap().last_seq, 2);
    assert_eq!(repo.get_room(b).await.unwrap().unwrap().last_seq, 1);
    assert_eq!(repo.member(a, 2).await.unwrap().unwrap().last_read_seq, 1);
    assert!(repo.member(b, 9).await.unwrap().is_some());
}

pub async fn dedupe_lookup_and_last_seqs(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let room = repo.create_group("g", 1, &[2], 10).await.unwrap().id;
    let other = repo.create_group("h", 1, &[2], 10).await.unwrap().id;
    // More messages than one lookup query takes, from two senders.
    repo.commit(&batch_of(
        (1..=600).map(|s| msg(room, s, 1 + s % 2)).collect(),
    ))
    .await
    .unwrap();
    repo.commit(&batch_of(vec![msg(other, 1, 2)]))
        .await
        .unwrap();

    let mut keys: Vec<(UserId, String)> = (1..=600).map(|s| (1 + s % 2, format!("c{s}"))).collect();
    // c2 came from user 1: asked again (in another chunk) it is still answered
    // once; under user 2 it is not a match; an unknown id finds nothing.
    keys.push((1, "c2".into()));
    keys.push((2, "c2".into()));
    keys.push((1, "nope".into()));
    let found = repo.find_messages(room, &keys).await.unwrap();
    assert_eq!(seqs(&found), (1..=600).collect::<Vec<_>>());
    let one = repo.find_messages(room, &[(2, "c1".into())]).await.unwrap();
    assert_eq!(one, vec![msg(room, 1, 2)]);
    assert!(repo
        .find_messages(other, &[(1, "c1".into())])
        .await
        .unwrap()
        .is_empty());
    assert!(repo.find_messages(room, &[]).await.unwrap().is_empty());

    let seqs = repo.last_seqs(&[room, other, 999]).await.unwrap();
    assert_eq!(seqs.len(), 2);
    assert_eq!((seqs[&room], seqs[&other]), (600, 1));
}

pub async fn concurrent_opens_of_a_pair_make_one_room(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let repo = repo.clone();
            // Both orders of the pair, as the two users would open it.
            let (a, b) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
            tokio::spawn(async move { repo.open_direct(a, b, 10 + i).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("join").expect("open").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let members: Vec<UserId> = repo
        .members(ids[0])
        .await
        .unwrap()
        .iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, vec![1, 2]);
    assert_eq!(repo.rooms_of(1).await.unwrap().len(), 1);
}

pub async fn racing_batches_on_one_room_keep_one_sequence(store: Arc<dyn Store>) {
    let repo = store.open().await.chat;
    for round in 0..10 {
        let room = repo
            .create_group(&format!("g{round}"), 1, &[2, 3], 10)
            .await
            .unwrap()
            .id;
        // Two owners (before and after a rebalance) both continue from seq 0.
        let batches = [
            batch_of((1..=3).map(|s| msg(room, s, 2)).collect()),
            batch_of((1..=2).map(|s| msg(room, s, 3)).collect()),
        ];
        let tasks: Vec<_> = batches
            .iter()
            .cloned()
            .map(|batch| {
                let repo = repo.clone();
                tokio::spawn(async move { repo.commit(&batch).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("join"));
        }
        let winners: Vec<usize> = (0..2).filter(|i| outcomes[*i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let loser = &outcomes[1 - winners[0]];
        assert!(
            matches!(loser, Err(ChatRepoError::Conflict(_))),
            "{loser:?}"
        );
        let stored = repo.history(room, PageQuery::default(), 50).await.unwrap();
        assert_eq!(stored, batches[winners[0]].messages);
        assert_eq!(
            repo.get_room(room).await.unwrap().unwrap().last_seq,
            stored.len() as i64
        );
    }
}
