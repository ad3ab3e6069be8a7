//! Chat: rooms, membership, per-room gapless sequencing, read markers and the chat role.
