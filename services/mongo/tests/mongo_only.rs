//! Behaviour of the MongoDB side beyond the shared suite, on the real
//! MongoDB-wire server: index violations, paging in both directions, bodies
//! kept in MongoDB only, and documents of a commit that never reached the
//! inner store.

mod common;

use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::{ChatBatch, ChatRepoError, ChatRepository};
use bowchat_model::{PageQuery, RoomId};
use bowchat_mongo::{MongoChatHistory, MESSAGES};
use mongodb::Client;

fn msg(room: RoomId, seq: i64, client: &str) -> ChatMessage {
    ChatMessage {
        room_id: room,
        seq,
        sender: 1,
        body: format!("body {seq}"),
        client_msg_id: client.to_string(),
        created_at: 1_000 + seq,
    }
}

fn batch(messages: Vec<ChatMessage>) -> ChatBatch {
    ChatBatch {
        messages,
        ..ChatBatch::default()
    }
}

#[tokio::test]
async fn index_violations_are_conflicts() {
    common::in_fresh_database(|config| async move {
        let history = MongoChatHistory::connect(&config).await.expect("connect");
        // Connecting again finds the indexes in place.
        MongoChatHistory::connect(&config).await.expect("reconnect");
        let client = Client::with_uri_str(&config.url).await.unwrap();
        let names = client
            .database(&config.database)
            .collection::<mongodb::bson::Document>(MESSAGES)
            .list_index_names()
            .await
            .unwrap();
        assert!(names.contains(&"room_seq".to_string()), "{names:?}");
        assert!(
            names.contains(&"room_sender_client".to_string()),
            "{names:?}"
        );

        history.insert(&[msg(1, 1, "a")], "t").await.unwrap();
        // Same (room, seq), another client id.
        let err = history.insert(&[msg(1, 1, "b")], "t").await.unwrap_err();
        assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
        // Same (room, sender, client id), another seq.
        let err = history.insert(&[msg(1, 2, "a")], "t").await.unwrap_err();
        assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
        // Other rooms and other senders are independent.
        history.insert(&[msg(2, 1, "a")], "t").await.unwrap();
        let mut other = msg(1, 2, "a");
        other.sender = 2;
        history.insert(&[other], "t").await.unwrap();
        assert_eq!(history.range(1, 1, 10).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn bodies_live_in_mongodb_only() {
    common::in_fresh_database(|config| async move {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::open(&dir.path().join("db"), &config).await;
        let room = repo.create_group("g", 1, &[], 1).await.unwrap().id;
        let messages = (1..=3).map(|s| msg(room, s, &format!("c{s}"))).collect();
        repo.commit(&batch(messages)).await.unwrap();
        let all = PageQuery::default();
        assert_eq!(repo.history(room, all, 10).await.unwrap().len(), 3);
        // The inner store keeps the commit point, not a copy of the bodies.
        assert_eq!(repo.inner().last_seqs(&[room]).await.unwrap()[&room], 3);
        assert!(repo
            .inner()
            .history(room, all, 10)
            .await
            .unwrap()
            .is_empty());
        // A sequence-only commit still checks the sequence.
        let stale = batch(vec![msg(room, 2, "late")]);
        let err = repo.inner().commit_sequences(&stale).await.unwrap_err();
        assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn history_pages_walk_both_directions() {
    common::in_fresh_database(|config| async move {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::open(&dir.path().join("db"), &config).await;
        let room = repo.create_group("g", 1, &[], 1).await.unwrap().id;
        for chunk in (1..=47).collect::<Vec<i64>>().chunks(10) {
            let messages = chunk
                .iter()
                .map(|s| msg(room, *s, &format!("c{s}")))
                .collect();
            repo.commit(&batch(messages)).await.unwrap();
        }
        let page = |before, after| PageQuery {
            before,
            after,
            limit: Some(10),
        };
        // Backwards from the newest.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let got = repo.history(room, page(before, None), 50).await.unwrap();
            if got.is_empty() {
                break;
            }
            before = Some(got[0].seq);
            let mut seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
            seqs.extend(seen);
            seen = seqs;
        }
        assert_eq!(seen, (1..=47).collect::<Vec<_>>());
        // Forwards from the start.
        let mut seen = Vec::new();
        let mut after = Some(0);
        loop {
            let got = repo.history(room, page(None, after), 50).await.unwrap();
            if got.is_empty() {
                break;
            }
            after = got.last().map(|m| m.seq);
            seen.extend(got.iter().map(|m| m.seq));
        }
        assert_eq!(seen, (1..=47).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test]
async fn a_commit_cut_short_before_the_inner_store_is_invisible_and_retried() {
    common::in_fresh_database(|config| async move {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::open(&dir.path().join("db"), &config).await;
        let room = repo.create_group("g", 1, &[], 1).await.unwrap().id;
        repo.commit(&batch(vec![msg(room, 1, "c1")])).await.unwrap();
        // A process wrote seq 2..3 to MongoDB and died before the inner commit.
        let crashed = vec![msg(room, 2, "c2"), msg(room, 3, "c3")];
        repo.history_store().insert(&crashed, "dead").await.unwrap();
        let all = repo.history(room, PageQuery::default(), 50).await.unwrap();
        assert_eq!(all, vec![msg(room, 1, "c1")]);
        let keys = vec![(1, "c2".to_string()), (1, "c3".to_string())];
        assert!(repo.find_messages(room, &keys).await.unwrap().is_empty());

        // A rebuilt batch with other contents at those seqs is refused and
        // leaves nothing of its own behind.
        let rival = batch(vec![msg(room, 2, "x2"), msg(room, 3, "x3")]);
        let err = repo.commit(&rival).await.unwrap_err();
        assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
        assert_eq!(repo.get_room(room).await.unwrap().unwrap().last_seq, 1);

        // The replayed batch (same messages, new timestamps, one more) adopts them.
        let mut replay = vec![msg(room, 2, "c2"), msg(room, 3, "c3"), msg(room, 4, "c4")];
        for m in &mut replay {
            m.created_at += 500;
        }
        repo.commit(&batch(replay)).await.unwrap();
        let all = repo.history(room, PageQuery::default(), 50).await.unwrap();
        let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert_eq!(all[1], msg(room, 2, "c2"), "first write's timestamp kept");
        assert_eq!(all[3].created_at, 1_504);
        assert_eq!(repo.find_messages(room, &keys).await.unwrap().len(), 2);
        // Exactly one document per seq.
        assert_eq!(
            repo.history_store().range(room, 1, 10).await.unwrap().len(),
            4
        );
    })
    .await;
}

#[tokio::test]
async fn crossing_batches_leave_no_documents_that_block_a_room() {
    common::in_fresh_database(|config| async move {
        let dir = tempfile::tempdir().unwrap();
        let repo = std::sync::Arc::new(common::open(&dir.path().join("db"), &config).await);
        for round in 0..8 {
            let x = repo.create_group("x", 1, &[], 1).await.unwrap().id;
            let y = repo.create_group("y", 1, &[], 1).await.unwrap().id;
            // Two owners write both rooms in opposite orders with other messages.
            let a = batch(vec![msg(x, 1, "a"), msg(y, 1, "a")]);
            let b = batch(vec![msg(y, 1, "b"), msg(x, 1, "b")]);
            let tasks: Vec<_> = [a.clone(), b.clone()]
                .into_iter()
                .map(|batch| {
                    let repo = repo.clone();
                    tokio::spawn(async move { repo.commit(&batch).await })
                })
                .collect();
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            let winners: Vec<&ChatBatch> = [&a, &b]
                .into_iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.is_ok())
                .map(|(b, _)| b)
                .collect();
            assert!(winners.len() <= 1, "round {round}: {outcomes:?}");
            for outcome in &outcomes {
                if let Err(e) = outcome {
                    assert!(matches!(e, ChatRepoError::Conflict(_)), "{e:?}");
                }
            }
            // Only the winner's documents remain in MongoDB.
            for room in [x, y] {
                let stored: Vec<ChatMessage> = repo
                    .history_store()
                    .range(room, 1, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.message)
                    .collect();
                let expected: Vec<ChatMessage> = winners
                    .iter()
                    .flat_map(|w| w.messages.iter().filter(|m| m.room_id == room).cloned())
                    .collect();
                assert_eq!(stored, expected, "round {round}");
            }
            // Whoever lost, the next batch on both rooms goes through.
            let seq = if winners.is_empty() { 1 } else { 2 };
            let follow = batch(vec![msg(x, seq, "f"), msg(y, seq, "f")]);
            repo.commit(&follow).await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn a_refused_commit_removes_what_it_inserted_but_not_what_it_adopted() {
    common::in_fresh_database(|config| async move {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::open(&dir.path().join("db"), &config).await;
        let x = repo.create_group("x", 1, &[], 1).await.unwrap().id;
        let y = repo.create_group("y", 1, &[], 1).await.unwrap().id;
        let z = repo.create_group("z", 1, &[], 1).await.unwrap().id;
        // Another, unfinished commit holds x:1 (the same message) and, in z,
        // the client id the batch uses there (at seq 5).
        let store = repo.history_store();
        store.insert(&[msg(x, 1, "a")], "other").await.unwrap();
        store.insert(&[msg(z, 5, "a")], "other").await.unwrap();

        // x:1 is adopted, y:1 inserted, then inserting z:1 breaks the dedupe index.
        let crossing = batch(vec![msg(x, 1, "a"), msg(y, 1, "a"), msg(z, 1, "a")]);
        let err = repo.commit(&crossing).await.unwrap_err();
        assert!(matches!(err, ChatRepoError::Conflict(_)), "{err:?}");
        assert!(
            store.range(y, 1, 1).await.unwrap().is_empty(),
            "inserted: removed"
        );
        assert_eq!(
            store.range(x, 1, 1).await.unwrap().len(),
            1,
            "adopted: kept"
        );
        assert!(store.range(z, 1, 1).await.unwrap().is_empty());
        assert_eq!(store.range(z, 5, 5).await.unwrap()[0].attempt, "other");

        // Without z the same messages commit; x:1 is taken over once more.
        repo.commit(&batch(vec![msg(x, 1, "a"), msg(y, 1, "a")]))
            .await
            .unwrap();
        assert_eq!(
            repo.history(y, PageQuery::default(), 10).await.unwrap(),
            vec![msg(y, 1, "a")]
        );
        assert_eq!(repo.get_room(x).await.unwrap().unwrap().last_seq, 1);
    })
    .await;
}
