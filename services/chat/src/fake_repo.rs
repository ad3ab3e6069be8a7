//! In-memory `ChatRepository` for the role's unit tests, with the same
//! semantics as the SQLite adapter and switches to make commits fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use bowchat_model::{Millis, PageQuery, RoomId, UserId};

use crate::messages::ChatMessage;
use crate::ports::{
    direct_key, seq_ranges, ChatBatch, ChatRepoError, ChatRepository, Member, MemberRole, Room,
    RoomKind, RoomSummary,
};

#[derive(Default)]
struct State {
    rooms: Vec<Room>,
    direct: HashMap<String, RoomId>,
    members: HashMap<RoomId, Vec<Member>>,
    messages: Vec<ChatMessage>,
}

#[derive(Default)]
pub struct FakeChatRepo {
    state: Mutex<State>,
    /// The next this many commits fail with `Unavailable`.
    pub fail_commits: AtomicU32,
    pub commits: AtomicU32,
}

impl FakeChatRepo {
    pub fn add_room(&self, kind: RoomKind, members: &[UserId]) -> RoomId {
        let mut s = self.state.lock().unwrap();
        let id = s.rooms.len() as RoomId + 1;
        s.rooms.push(Room {
            id,
            kind,
            name: format!("room {id}"),
            auction_id: None,
            created_by: members.first().copied().unwrap_or(0),
            created_at: 0,
            last_seq: 0,
        });
        let members = members
            .iter()
            .map(|u| Member {
                user_id: *u,
                role: MemberRole::Member,
                joined_at: 0,
                last_read_seq: 0,
            })
            .collect();
        s.members.insert(id, members);
        id
    }

    pub fn messages(&self, room: RoomId) -> Vec<ChatMessage> {
        self.state
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.room_id == room)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl ChatRepository for FakeChatRepo {
    async fn create_group(
        &self,
        name: &str,
        creator: UserId,
        members: &[UserId],
        now: Millis,
    ) -> Result<Room, ChatRepoError> {
        let id = self.add_room(RoomKind::Group, &[creator]);
        let mut s = self.state.lock().unwrap();
        s.rooms[id as usize - 1].name = name.to_string();
        s.rooms[id as usize - 1].created_at = now;
        let list = s.members.get_mut(&id).unwrap();
        list[0].role = MemberRole::Owner;
        for m in members {
            if !list.iter().any(|x| x.user_id == *m) {
                list.push(Member {
                    user_id: *m,
                    role: MemberRole::Member,
                    joined_at: now,
                    last_read_seq: 0,
                });
            }
        }
        Ok(s.rooms[id as usize - 1].clone())
    }

    async fn open_direct(&self, a: UserId, b: UserId, _now: Millis) -> Result<Room, ChatRepoError> {
        if a == b {
            return Err(ChatRepoError::Conflict(
                "a direct room needs two users".into(),
            ));
        }
        let key = direct_key(a, b);
        let existing = self.state.lock().unwrap().direct.get(&key).copied();
        if let Some(id) = existing {
            return Ok(self.get_room(id).await?.unwrap());
        }
        let id = self.add_room(RoomKind::Direct, &[a, b]);
        self.state.lock().unwrap().direct.insert(key, id);
        Ok(self.get_room(id).await?.unwrap())
    }

    async fn get_room(&self, id: RoomId) -> Result<Option<Room>, ChatRepoError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .rooms
            .iter()
            .find(|r| r.id == id)
            .cloned())
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<RoomSummary>, ChatRepoError> {
        let s = self.state.lock().unwrap();
        Ok(s.rooms
            .iter()
            .filter_map(|room| {
                let members = s.members.get(&room.id)?;
                let me = members.iter().find(|m| m.user_id == user)?;
                Some(RoomSummary {
                    room: room.clone(),
                    unread: (room.last_seq - me.last_read_seq).max(0),
                    last_read_seq: me.last_read_seq,
                    member_count: members.len() as i64,
                })
            })
            .collect())
    }

    async fn members(&self, room: RoomId) -> Result<Vec<Member>, ChatRepoError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .members
            .get(&room)
            .cloned()
            .unwrap_or_default())
    }

    async fn member(&self, room: RoomId, user: UserId) -> Result<Option<Member>, ChatRepoError> {
        Ok(self
            .members(room)
            .await?
            .into_iter()
            .find(|m| m.user_id == user))
    }

    async fn add_member(
        &self,
        room: RoomId,
        user: UserId,
        now: Millis,
    ) -> Result<(), ChatRepoError> {
        let mut s = self.state.lock().unwrap();
        let list = s
            .members
            .get_mut(&room)
            .ok_or_else(|| ChatRepoError::NotFound(format!("room {room}")))?;
        if !list.iter().any(|m| m.user_id == user) {
            list.push(Member {
                user_id: user,
                role: MemberRole::Member,
                joined_at: now,
                last_read_seq: 0,
            });
        }
        Ok(())
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ChatRepoError> {
        if let Some(list) = self.state.lock().unwrap().members.get_mut(&room) {
            list.retain(|m| m.user_id != user);
        }
        Ok(())
    }

    async fn history(
        &self,
        room: RoomId,
        page: PageQuery,
        max: u32,
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        let limit = page.limit_or(max, max) as usize;
        let all: Vec<ChatMessage> = self
            .messages(room)
            .into_iter()
            .filter(|m| {
                !matches!(page.before, Some(b) if m.seq >= b)
                    && !matches!(page.after, Some(a) if m.seq <= a)
            })
            .collect();
        if page.after.is_some() {
            return Ok(all.into_iter().take(limit).collect());
        }
        Ok(all[all.len().saturating_sub(limit)..].to_vec())
    }

    async fn find_messages(
        &self,
        room: RoomId,
        keys: &[(UserId, String)],
    ) -> Result<Vec<ChatMessage>, ChatRepoError> {
        Ok(self
            .messages(room)
            .into_iter()
            .filter(|m| {
                keys.iter()
                    .any(|(u, c)| *u == m.sender && *c == m.client_msg_id)
            })
            .collect())
    }

    /// The chat role never reports; the store suite covers real adapters.
    async fn report_message(
        &self,
        _report: &crate::ports::NewReport,
    ) -> Result<crate::ports::ReportOutcome, ChatRepoError> {
        Err(ChatRepoError::Unavailable(
            "the fake store keeps no reports".into(),
        ))
    }

    async fn reports(&self, _limit: u32) -> Result<Vec<crate::ports::Report>, ChatRepoError> {
        Ok(Vec::new())
    }

    async fn last_seqs(&self, rooms: &[RoomId]) -> Result<HashMap<RoomId, i64>, ChatRepoError> {
        let s = self.state.lock().unwrap();
        Ok(s.rooms
            .iter()
            .filter(|r| rooms.contains(&r.id))
            .map(|r| (r.id, r.last_seq))
            .collect())
    }

    async fn commit(&self, batch: &ChatBatch) -> Result<(), ChatRepoError> {
        let failing = self.fail_commits.load(Ordering::SeqCst);
        if failing > 0 {
            self.fail_commits.store(failing - 1, Ordering::SeqCst);
            return Err(ChatRepoError::Unavailable("injected failure".into()));
        }
        let mut s = self.state.lock().unwrap();
        // Validate everything first so a failure stores nothing, like a transaction.
        for (room, first, _) in seq_ranges(&batch.messages)? {
            let stored = s
                .rooms
                .iter()
                .find(|r| r.id == room)
                .ok_or_else(|| ChatRepoError::NotFound(room.to_string()))?;
            if first != stored.last_seq + 1 {
                return Err(ChatRepoError::Conflict(format!(
                    "room {room}: seq {first} after {}",
                    stored.last_seq
                )));
            }
        }
        for m in &batch.messages {
            let dup = s.messages.iter().any(|x| {
                x.room_id == m.room_id && x.sender == m.sender && x.client_msg_id == m.client_msg_id
            });
            if dup {
                return Err(ChatRepoError::Conflict(
                    "duplicate client message id".into(),
                ));
            }
        }
        for m in &batch.messages {
            s.messages.push(m.clone());
            let room = s.rooms.iter_mut().find(|r| r.id == m.room_id).unwrap();
            room.last_seq = room.last_seq.max(m.seq);
        }
        for (room, user, at) in &batch.joins {
            let list = s.members.entry(*room).or_default();
            if !list.iter().any(|m| m.user_id == *user) {
                list.push(Member {
                    user_id: *user,
                    role: MemberRole::Member,
                    joined_at: *at,
                    last_read_seq: 0,
                });
            }
        }
        for (room, user, seq) in &batch.reads {
            let last = s
                .rooms
                .iter()
                .find(|r| r.id == *room)
                .map(|r| r.last_seq)
                .unwrap_or(0);
            if let Some(m) = s
                .members
                .get_mut(room)
                .and_then(|l| l.iter_mut().find(|m| m.user_id == *user))
            {
                m.last_read_seq = m.last_read_seq.max((*seq).min(last));
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
