//! The chat role against the in-memory repository and the in-process bus.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bowchat_bus::{topics, Bus, Consumer, InProcessBus};
use bowchat_model::{Origin, RoomId, UserId};
use bytes::Bytes;

use crate::fake_repo::FakeChatRepo;
use crate::messages::{ChatAction, ChatCommand, ChatFact, ChatMessage};
use crate::ports::{ChatBatch, ChatRepository, RoomKind};
use crate::{codes, ChatRole, ChatRoleConfig};

struct Harness {
    repo: Arc<FakeChatRepo>,
    bus: Arc<InProcessBus>,
    role: ChatRole,
    input: Box<dyn Consumer>,
    events: Box<dyn Consumer>,
    registry: prometheus::Registry,
}

impl Harness {
    async fn new(config: ChatRoleConfig) -> Self {
        let dlt = topics::dead_letter(topics::CHAT_MESSAGE);
        let bus = Arc::new(InProcessBus::new(
            &[
                (topics::CHAT_MESSAGE, 4),
                (topics::CHAT_EVENT, 4),
                (dlt.as_str(), 1),
            ],
            4096,
        ));
        let repo = Arc::new(FakeChatRepo::default());
        let input = bus
            .subscribe(topics::CHAT_MESSAGE, &config.group)
            .await
            .unwrap();
        let events = bus
            .subscribe(topics::CHAT_EVENT, "test-gateway")
            .await
            .unwrap();
        let registry = prometheus::Registry::new();
        let role = ChatRole::new(repo.clone(), bus.clone(), config, &registry);
        Self {
            repo,
            bus,
            role,
            input,
            events,
            registry,
        }
    }

    async fn default() -> Self {
        Self::new(ChatRoleConfig::default()).await
    }

    /// Publishes `commands`, runs them as one batch and returns the facts it published.
    async fn batch(&mut self, commands: &[ChatCommand]) -> Vec<ChatFact> {
        self.publish(commands).await;
        self.run_batch(commands.len()).await
    }

    async fn publish(&self, commands: &[ChatCommand]) {
        for cmd in commands {
            let json = serde_json::to_vec(cmd).unwrap();
            self.bus
                .publish(
                    topics::CHAT_MESSAGE,
                    &cmd.room_id.to_string(),
                    Bytes::from(json),
                )
                .await
                .unwrap();
        }
    }

    async fn run_batch(&mut self, expected: usize) -> Vec<ChatFact> {
        let records = self.input.poll(512).await.unwrap();
        assert_eq!(records.len(), expected, "all commands in one batch");
        self.role.process_records(&records).await.unwrap();
        self.input.commit(&records).await.unwrap();
        drain(&mut self.events)
            .await
            .iter()
            .map(|p| serde_json::from_slice(p).unwrap())
            .collect()
    }
}

async fn drain(consumer: &mut Box<dyn Consumer>) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Ok(Ok(records)) =
        tokio::time::timeout(Duration::from_millis(30), consumer.poll(1000)).await
    {
        out.extend(records.into_iter().map(|r| r.payload));
    }
    out
}

fn cmd(room: RoomId, user: UserId, action: ChatAction) -> ChatCommand {
    let request_id = match &action {
        ChatAction::Send { client_msg_id, .. } => client_msg_id.clone(),
        other => other.name().to_string(),
    };
    ChatCommand {
        room_id: room,
        user_id: user,
        origin: Origin {
            gateway: "g".into(),
            conn: 1,
            request_id,
        },
        action,
    }
}

fn send(room: RoomId, user: UserId, client_msg_id: &str, body: &str) -> ChatCommand {
    cmd(
        room,
        user,
        ChatAction::Send {
            client_msg_id: client_msg_id.into(),
            body: body.into(),
        },
    )
}

fn messages(facts: &[ChatFact]) -> Vec<ChatMessage> {
    facts
        .iter()
        .filter_map(|f| match f {
            ChatFact::Message { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// (accepted, code, seq, duplicate) of every Result fact, in order.
fn results(facts: &[ChatFact]) -> Vec<(bool, Option<String>, Option<i64>, bool)> {
    facts
        .iter()
        .filter_map(|f| match f {
            ChatFact::Result {
                accepted,
                code,
                seq,
                duplicate,
                ..
            } => Some((*accepted, code.clone(), *seq, *duplicate)),
            _ => None,
        })
        .collect()
}

fn ok(seq: i64) -> (bool, Option<String>, Option<i64>, bool) {
    (true, None, Some(seq), false)
}

fn rejected(code: &str) -> (bool, Option<String>, Option<i64>, bool) {
    (false, Some(code.to_string()), None, false)
}

#[tokio::test]
async fn seq_is_gapless_per_room_across_a_batch_with_several_rooms() {
    let mut h = Harness::default().await;
    let a = h.repo.add_room(RoomKind::Group, &[1, 2]);
    let b = h.repo.add_room(RoomKind::Direct, &[1, 2]);
    let facts = h
        .batch(&[
            send(a, 1, "a1", "hello a"),
            send(b, 2, "b1", "hello b"),
            send(a, 2, "a2", "second a"),
            send(a, 1, "a3", "third a"),
            send(b, 1, "b2", "second b"),
        ])
        .await;
    let seqs: Vec<(RoomId, i64)> = messages(&facts)
        .iter()
        .map(|m| (m.room_id, m.seq))
        .collect();
    assert_eq!(seqs, vec![(a, 1), (b, 1), (a, 2), (a, 3), (b, 2)]);
    assert_eq!(results(&facts), vec![ok(1), ok(1), ok(2), ok(3), ok(2)]);
    // Every Message fact comes before the first Result.
    let first_result = facts
        .iter()
        .position(|f| matches!(f, ChatFact::Result { .. }))
        .unwrap();
    assert!(facts[first_result..]
        .iter()
        .all(|f| !matches!(f, ChatFact::Message { .. })));
    assert_eq!(
        h.repo.commits.load(Ordering::SeqCst),
        1,
        "one commit per batch"
    );
    assert_eq!(
        h.repo.messages(a).iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(h.repo.messages(a)[1].body, "second a");

    let facts = h
        .batch(&[send(a, 2, "a4", "fourth"), send(b, 2, "b3", "third b")])
        .await;
    assert_eq!(results(&facts), vec![ok(4), ok(3)]);
    assert_eq!(h.repo.get_room(a).await.unwrap().unwrap().last_seq, 4);
}

#[tokio::test]
async fn retries_are_deduplicated_within_and_across_batches() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Group, &[1, 2]);
    let facts = h
        .batch(&[
            send(room, 1, "c1", "hi"),
            send(room, 1, "c1", "hi"),
            send(room, 2, "c1", "same id, other user"),
        ])
        .await;
    assert_eq!(
        results(&facts),
        vec![ok(1), (true, None, Some(1), true), ok(2)]
    );
    assert_eq!(messages(&facts).len(), 2);

    let facts = h.batch(&[send(room, 1, "c1", "hi")]).await;
    assert_eq!(results(&facts), vec![(true, None, Some(1), true)]);
    assert!(messages(&facts).is_empty());
    assert_eq!(
        h.repo.commits.load(Ordering::SeqCst),
        1,
        "a pure retry stores nothing"
    );
    assert_eq!(h.repo.messages(room).len(), 2);
}

#[tokio::test]
async fn non_members_and_unknown_rooms_are_refused() {
    let mut h = Harness::default().await;
    for kind in [RoomKind::Group, RoomKind::Direct, RoomKind::Deal] {
        let room = h.repo.add_room(kind, &[1, 2]);
        let facts = h
            .batch(&[
                send(room, 9, "x", "let me in"),
                cmd(room, 9, ChatAction::Read { seq: 1 }),
                cmd(room, 9, ChatAction::Join),
            ])
            .await;
        let code = codes::NOT_A_MEMBER;
        assert_eq!(
            results(&facts),
            vec![rejected(code), rejected(code), rejected(code)],
            "{kind}"
        );
        assert!(h.repo.messages(room).is_empty());
        assert!(h.repo.member(room, 9).await.unwrap().is_none());
    }
    let facts = h.batch(&[send(999, 1, "x", "anyone?")]).await;
    assert_eq!(results(&facts), vec![rejected(codes::ROOM_NOT_FOUND)]);
    assert_eq!(h.repo.commits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn writing_in_an_auction_room_joins_it() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Auction, &[1]);
    let facts = h
        .batch(&[
            send(room, 5, "m1", "nice lot"),
            send(room, 5, "m2", "really"),
            cmd(room, 6, ChatAction::Join),
        ])
        .await;
    assert_eq!(
        results(&facts),
        vec![ok(1), ok(2), (true, None, None, false)]
    );
    let joined: Vec<&ChatFact> = facts
        .iter()
        .filter(|f| matches!(f, ChatFact::Joined { .. }))
        .collect();
    assert_eq!(
        joined,
        vec![
            &ChatFact::Joined {
                room_id: room,
                user_id: 5
            },
            &ChatFact::Joined {
                room_id: room,
                user_id: 6
            }
        ]
    );
    assert!(
        matches!(facts.last(), Some(ChatFact::Joined { .. })),
        "joins are announced last"
    );
    assert!(h.repo.member(room, 5).await.unwrap().is_some());
    assert!(h.repo.member(room, 6).await.unwrap().is_some());

    // Joining again, or reading as a member, announces no new join.
    let facts = h
        .batch(&[
            cmd(room, 6, ChatAction::Join),
            cmd(room, 7, ChatAction::Read { seq: 2 }),
        ])
        .await;
    assert_eq!(results(&facts), vec![(true, None, None, false), ok(2)]);
    assert_eq!(
        facts
            .iter()
            .filter(|f| matches!(f, ChatFact::Joined { .. }))
            .cloned()
            .collect::<Vec<_>>(),
        vec![ChatFact::Joined {
            room_id: room,
            user_id: 7
        }]
    );
    assert_eq!(
        h.repo.member(room, 7).await.unwrap().unwrap().last_read_seq,
        2
    );
}

#[tokio::test]
async fn bad_bodies_and_client_ids_are_refused_without_using_a_seq() {
    let config = ChatRoleConfig {
        max_body_chars: 5,
        ..ChatRoleConfig::default()
    };
    let mut h = Harness::new(config).await;
    let room = h.repo.add_room(RoomKind::Auction, &[1]);
    let facts = h
        .batch(&[
            send(room, 1, "e1", ""),
            send(room, 1, "e2", " \n\t "),
            send(room, 1, "l1", "sixsix"),
            send(room, 1, "", "hi"),
            send(room, 1, &"x".repeat(129), "hi"),
            send(room, 2, "e3", ""),
            send(room, 1, "ok", "éééé😀"),
        ])
        .await;
    assert_eq!(
        results(&facts),
        vec![
            rejected(codes::EMPTY_MESSAGE),
            rejected(codes::EMPTY_MESSAGE),
            rejected(codes::MESSAGE_TOO_LONG),
            rejected(codes::INVALID_CLIENT_MSG_ID),
            rejected(codes::INVALID_CLIENT_MSG_ID),
            rejected(codes::EMPTY_MESSAGE),
            ok(1),
        ]
    );
    assert!(
        h.repo.member(room, 2).await.unwrap().is_none(),
        "a refused send does not join"
    );
    assert_eq!(h.repo.messages(room).len(), 1);
}

#[tokio::test]
async fn a_failed_commit_publishes_no_message_and_answers_unavailable() {
    let config = ChatRoleConfig {
        commit_retries: 0,
        ..ChatRoleConfig::default()
    };
    let mut h = Harness::new(config).await;
    let room = h.repo.add_room(RoomKind::Group, &[1, 2]);
    h.batch(&[send(room, 1, "m0", "stored")]).await;
    h.repo.fail_commits.store(1, Ordering::SeqCst);
    let batch = [
        send(room, 1, "m1", "one"),
        send(room, 2, "m2", "two"),
        cmd(room, 2, ChatAction::Read { seq: 1 }),
    ];
    let facts = h.batch(&batch).await;
    assert!(messages(&facts).is_empty());
    assert!(facts.iter().all(|f| matches!(f, ChatFact::Result { .. })));
    let unavailable = rejected(codes::UNAVAILABLE);
    assert_eq!(
        results(&facts),
        vec![unavailable.clone(), unavailable.clone(), unavailable]
    );
    assert_eq!(h.repo.messages(room).len(), 1);

    // The retry gets the seqs the failed batch would have had: no gap.
    let facts = h.batch(&batch).await;
    assert_eq!(results(&facts), vec![ok(2), ok(3), ok(1)]);
    assert_eq!(
        h.repo
            .messages(room)
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn a_second_writer_on_a_room_makes_the_batch_store_nothing_and_count_a_conflict() {
    let config = ChatRoleConfig {
        commit_retries: 0,
        ..ChatRoleConfig::default()
    };
    let mut h = Harness::new(config).await;
    let room = h.repo.add_room(RoomKind::Group, &[1, 2]);
    assert_eq!(
        results(&h.batch(&[send(room, 1, "m1", "one")]).await),
        vec![ok(1)]
    );
    // Another writer stores seq 2 behind the role's back (the role still
    // believes the room ends at 1).
    h.repo
        .commit(&ChatBatch {
            messages: vec![ChatMessage {
                room_id: room,
                seq: 2,
                sender: 2,
                body: "elsewhere".into(),
                client_msg_id: "other".into(),
                created_at: 0,
            }],
            ..ChatBatch::default()
        })
        .await
        .unwrap();
    let facts = h.batch(&[send(room, 1, "m2", "two")]).await;
    assert_eq!(results(&facts), vec![rejected(codes::UNAVAILABLE)]);
    assert!(messages(&facts).is_empty(), "nothing published: {facts:?}");
    let conflicts = h
        .registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "bowchat_chat_sequence_conflicts_total")
        .map(|f| f.get_metric()[0].get_counter().value());
    assert_eq!(conflicts, Some(1.0));
    // The retry reads the room again and continues after the other writer.
    let facts = h.batch(&[send(room, 1, "m2", "two")]).await;
    assert_eq!(results(&facts), vec![ok(3)]);
    let seqs: Vec<i64> = h.repo.messages(room).iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_transient_commit_failure_is_retried() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Group, &[1]);
    h.repo.fail_commits.store(2, Ordering::SeqCst);
    let facts = h.batch(&[send(room, 1, "m1", "one")]).await;
    assert_eq!(results(&facts), vec![ok(1)]);
    assert_eq!(messages(&facts).len(), 1);
}

#[tokio::test]
async fn read_markers_only_move_forward_and_stop_at_the_last_message() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Group, &[1, 2]);
    h.batch(&[
        send(room, 1, "m1", "a"),
        send(room, 1, "m2", "b"),
        send(room, 1, "m3", "c"),
    ])
    .await;
    let facts = h
        .batch(&[
            cmd(room, 2, ChatAction::Read { seq: 2 }),
            cmd(room, 2, ChatAction::Read { seq: 1 }),
            cmd(room, 2, ChatAction::Read { seq: 50 }),
        ])
        .await;
    assert_eq!(results(&facts), vec![ok(2), ok(2), ok(3)]);
    let reads: Vec<&ChatFact> = facts
        .iter()
        .filter(|f| matches!(f, ChatFact::Read { .. }))
        .collect();
    assert_eq!(
        reads,
        vec![
            &ChatFact::Read {
                room_id: room,
                user_id: 2,
                seq: 2
            },
            &ChatFact::Read {
                room_id: room,
                user_id: 2,
                seq: 3
            }
        ]
    );
    assert_eq!(
        h.repo.member(room, 2).await.unwrap().unwrap().last_read_seq,
        3
    );

    let facts = h.batch(&[cmd(room, 2, ChatAction::Read { seq: 1 })]).await;
    assert_eq!(results(&facts), vec![ok(3)]);
    assert_eq!(facts.len(), 1, "no Read fact when nothing moved");
    let summary = &h.repo.rooms_of(2).await.unwrap()[0];
    assert_eq!((summary.unread, summary.last_read_seq), (0, 3));
}

#[tokio::test]
async fn unreadable_records_are_dead_lettered_and_the_rest_processed() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Group, &[1]);
    let mut dlt = h
        .bus
        .subscribe(&topics::dead_letter(topics::CHAT_MESSAGE), "test")
        .await
        .unwrap();
    h.bus
        .publish(topics::CHAT_MESSAGE, "1", Bytes::from_static(b"{not json"))
        .await
        .unwrap();
    h.publish(&[send(room, 1, "m1", "fine")]).await;
    let facts = h.run_batch(2).await;
    assert_eq!(results(&facts), vec![ok(1)]);
    assert_eq!(
        drain(&mut dlt).await,
        vec![Bytes::from_static(b"{not json")]
    );
}

#[tokio::test]
async fn metrics_are_registered_in_the_given_registry() {
    let mut h = Harness::default().await;
    let room = h.repo.add_room(RoomKind::Group, &[1]);
    h.batch(&[
        send(room, 1, "m1", "x"),
        send(room, 1, "m1", "x"),
        send(room, 1, "m2", ""),
    ])
    .await;
    let families = h.registry.gather();
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    for name in [
        "bowchat_chat_messages_total",
        "bowchat_chat_batch_size",
        "bowchat_chat_commit_seconds",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let counter = families
        .iter()
        .find(|f| f.name() == "bowchat_chat_messages_total")
        .unwrap();
    let mut by_result: Vec<(String, f64)> = counter
        .get_metric()
        .iter()
        .map(|m| {
            (
                m.get_label()[0].value().to_string(),
                m.get_counter().value(),
            )
        })
        .collect();
    by_result.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_result,
        vec![
            ("EMPTY_MESSAGE".into(), 1.0),
            ("accepted".into(), 1.0),
            ("duplicate".into(), 1.0)
        ]
    );
}
