//! The chat role end to end on the embedded adapters: the in-process bus and
//! the real SQLite repository in a temporary file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bowchat_bus::{topics, Bus, Consumer, InProcessBus};
use bowchat_chat::messages::{ChatAction, ChatCommand, ChatFact, ChatMessage};
use bowchat_chat::ports::ChatRepository;
use bowchat_chat::{codes, ChatRole, ChatRoleConfig};
use bowchat_model::{Origin, PageQuery, RoomId, UserId};
use bowchat_store::{Db, SqliteChatRepository, SqliteOptions};
use bytes::Bytes;

fn send(room: RoomId, user: UserId, client_msg_id: &str) -> ChatCommand {
    ChatCommand {
        room_id: room,
        user_id: user,
        origin: Origin {
            gateway: "g".into(),
            conn: 1,
            request_id: format!("{room}/{user}/{client_msg_id}"),
        },
        action: ChatAction::Send {
            client_msg_id: client_msg_id.into(),
            body: format!("{user} says {client_msg_id}"),
        },
    }
}

async fn publish(bus: &InProcessBus, commands: &[ChatCommand]) {
    for cmd in commands {
        let json = Bytes::from(serde_json::to_vec(cmd).unwrap());
        bus.publish(topics::CHAT_MESSAGE, &cmd.room_id.to_string(), json)
            .await
            .unwrap();
    }
}

/// Facts until `results` Result facts have arrived.
async fn collect(events: &mut Box<dyn Consumer>, results: usize) -> Vec<ChatFact> {
    let mut facts = Vec::new();
    let mut seen = 0;
    while seen < results {
        let records = tokio::time::timeout(Duration::from_secs(10), events.poll(1000))
            .await
            .expect("facts arrive")
            .unwrap();
        for record in records {
            let fact: ChatFact = serde_json::from_slice(&record.payload).unwrap();
            seen += usize::from(matches!(fact, ChatFact::Result { .. }));
            facts.push(fact);
        }
    }
    facts
}

fn delivered(facts: &[ChatFact], room: RoomId) -> Vec<ChatMessage> {
    facts
        .iter()
        .filter_map(|f| match f {
            ChatFact::Message { message } if message.room_id == room => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// request id -> (accepted, code, seq, duplicate)
type Answers = HashMap<String, (bool, Option<String>, Option<i64>, bool)>;

fn answers(facts: &[ChatFact]) -> Answers {
    facts
        .iter()
        .filter_map(|f| match f {
            ChatFact::Result {
                origin,
                accepted,
                code,
                seq,
                duplicate,
                ..
            } => Some((
                origin.request_id.clone(),
                (*accepted, code.clone(), *seq, *duplicate),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_sequences_stores_and_deduplicates_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("chat.db"), &SqliteOptions::default())
        .await
        .unwrap();
    let repo = Arc::new(SqliteChatRepository::new(db));
    let group = repo.create_group("g", 1, &[2], 0).await.unwrap().id;
    let direct = repo.open_direct(1, 3, 0).await.unwrap().id;
    let dlt = topics::dead_letter(topics::CHAT_MESSAGE);
    let bus = Arc::new(InProcessBus::new(
        &[
            (topics::CHAT_MESSAGE, 4),
            (topics::CHAT_EVENT, 4),
            (dlt.as_str(), 1),
        ],
        10_000,
    ));
    let mut events = bus.subscribe(topics::CHAT_EVENT, "gateway").await.unwrap();
    let start_role = || {
        let role = ChatRole::new(
            repo.clone(),
            bus.clone(),
            ChatRoleConfig::default(),
            &prometheus::Registry::new(),
        );
        tokio::spawn(role.run())
    };
    let first = start_role();
    // Let the role subscribe before anything is published.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut commands = Vec::new();
    for i in 0..150 {
        commands.push(send(group, 1 + i % 2, &format!("g{i}")));
        commands.push(send(
            direct,
            if i % 3 == 0 { 3 } else { 1 },
            &format!("d{i}"),
        ));
        if i % 10 == 0 {
            commands.push(send(group, 1 + i % 2, &format!("g{i}"))); // a retry
        }
    }
    commands.push(send(direct, 2, "intruder"));
    publish(&bus, &commands).await;
    let facts = collect(&mut events, commands.len()).await;
    let answers1 = answers(&facts);

    for room in [group, direct] {
        let live = delivered(&facts, room);
        assert_eq!(
            live.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=150).collect::<Vec<_>>()
        );
        let stored = repo.history(room, PageQuery::default(), 500).await.unwrap();
        assert_eq!(stored, live, "history is exactly what was delivered");
    }
    // The retry shares the original's request id, so its (later) answer is kept here.
    let retry = &answers1[&format!("{group}/1/g0")];
    assert_eq!(retry, &(true, None, Some(1), true));
    assert_eq!(
        answers1[&format!("{direct}/2/intruder")].1.as_deref(),
        Some(codes::NOT_A_MEMBER)
    );

    // A new owner with cold caches: retries are answered from storage and the
    // sequence continues without a gap.
    first.abort();
    let second = start_role();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = [
        send(group, 1, "g0"),
        send(direct, 3, "d3"),
        send(group, 2, "new"),
    ];
    publish(&bus, &again).await;
    let facts = collect(&mut events, again.len()).await;
    let answers2 = answers(&facts);
    assert_eq!(
        answers2[&format!("{group}/1/g0")],
        (true, None, Some(1), true)
    );
    let d3 = answers1[&format!("{direct}/3/d3")].2;
    assert_eq!(answers2[&format!("{direct}/3/d3")], (true, None, d3, true));
    assert_eq!(
        answers2[&format!("{group}/2/new")],
        (true, None, Some(151), false)
    );
    assert_eq!(delivered(&facts, group).len(), 1);
    assert_eq!(repo.get_room(group).await.unwrap().unwrap().last_seq, 151);
    second.abort();
}
