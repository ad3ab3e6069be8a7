//! The fact outbox (`bowchat_bus::outbox`): entries go in with the batch that
//! produced them and only then, are read oldest first per source, and leave
//! when removed.

use std::sync::Arc;

use bowchat_auction::ports::RepoError;
use bowchat_bus::outbox::OutboxEntry;
use bowchat_chat::messages::ChatMessage;
use bowchat_chat::ports::ChatBatch;
use bytes::Bytes;

use crate::auction::{bid_batch, new_auction};
use crate::Store;

fn entry(id: i64, source: &str, created_at: i64) -> OutboxEntry {
    OutboxEntry {
        id,
        source: source.into(),
        topic: format!("{source}-event"),
        created_at,
        records: vec![
            (
                "7".into(),
                Bytes::from(format!(r#"{{"entry":{id},"q":"\""}}"#)),
            ),
            ("8".into(), Bytes::from_static(b"{}")),
        ],
    }
}

/// Entries written with auction and chat batches are read back whole, per
/// source, oldest first, only when due, and leave when removed; a batch that
/// is refused leaves no entry behind.
pub async fn entries_ride_with_their_batch(store: Arc<dyn Store>) {
    let repos = store.open().await;
    let (auctions, chat, outbox) = (repos.auction, repos.chat, repos.outbox);

    let record = auctions
        .create(new_auction("lamp", 1, None), 1_000)
        .await
        .unwrap();
    let mut state = record.state.clone();
    let mut first = bid_batch(record.id, 0, &mut state, &[(2, 100)], 2_000);
    first.outbox = Some(entry(11, "auction", 2_000));
    auctions.commit(&first).await.unwrap();
    let mut second = bid_batch(record.id, 1, &mut state, &[(3, 200)], 2_100);
    second.outbox = Some(entry(5, "auction", 2_100));
    auctions.commit(&second).await.unwrap();

    // A batch that loses to another writer stores its entry no more than its bids.
    let mut stale_state = record.state.clone();
    let mut stale = bid_batch(record.id, 0, &mut stale_state, &[(4, 900)], 2_200);
    stale.outbox = Some(entry(99, "auction", 2_200));
    assert!(matches!(
        auctions.commit(&stale).await,
        Err(RepoError::VersionConflict { .. })
    ));

    let room = chat.create_group("outbox", 1, &[2], 1_000).await.unwrap();
    chat.commit(&ChatBatch {
        messages: vec![ChatMessage {
            room_id: room.id,
            seq: 1,
            sender: 1,
            body: "hello".into(),
            client_msg_id: "c1".into(),
            created_at: 2_050,
        }],
        outbox: Some(entry(12, "chat", 2_050)),
        ..ChatBatch::default()
    })
    .await
    .unwrap();

    let due = outbox.due("auction", 10_000, 10).await.unwrap();
    assert_eq!(
        due,
        vec![entry(11, "auction", 2_000), entry(5, "auction", 2_100)],
        "oldest first, records intact, the refused batch's entry absent"
    );
    assert_eq!(
        outbox.due("auction", 2_100, 10).await.unwrap(),
        vec![entry(11, "auction", 2_000)],
        "only entries written before the bound are due"
    );
    assert_eq!(outbox.due("auction", 10_000, 1).await.unwrap().len(), 1);
    assert_eq!(
        outbox.due("chat", 10_000, 10).await.unwrap(),
        vec![entry(12, "chat", 2_050)]
    );

    outbox.remove(&[11, 12, 404]).await.unwrap();
    assert_eq!(
        outbox.due("auction", 10_000, 10).await.unwrap(),
        vec![entry(5, "auction", 2_100)]
    );
    assert!(outbox.due("chat", 10_000, 10).await.unwrap().is_empty());
    outbox.remove(&[]).await.unwrap();

    // What was not removed is still there after a restart.
    let reopened = store.open().await.outbox;
    assert_eq!(
        reopened.due("auction", 10_000, 10).await.unwrap(),
        vec![entry(5, "auction", 2_100)]
    );
}
