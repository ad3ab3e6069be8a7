-- BowChat embedded schema. Amounts are i64 minor units; times are Unix milliseconds.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- NULL for accounts that only sign in through a social provider.
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Set when this token was exchanged for a new one; presenting it again is reuse.
    rotated_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    -- 'group' | 'direct' | 'auction' | 'deal'
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    auction_id  INTEGER,
    -- For direct rooms: "<smaller user id>:<larger user id>", so a pair has one room.
    direct_key  TEXT UNIQUE,
    created_by  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Sequence of the last message; the next message gets last_seq + 1.
    last_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX rooms_auction_kind ON rooms(auction_id, kind) WHERE auction_id IS NOT NULL;

CREATE TABLE room_members (
    room_id       INTEGER NOT NULL REFERENCES rooms(id),
    user_id       INTEGER NOT NULL,
    -- 'owner' | 'member'
    role          TEXT    NOT NULL DEFAULT 'member',
    joined_at     INTEGER NOT NULL,
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members(user_id);

CREATE TABLE messages (
    room_id       INTEGER NOT NULL REFERENCES rooms(id),
    seq           INTEGER NOT NULL,
    sender        INTEGER NOT NULL,
    body          TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX messages_dedupe ON messages(room_id, sender, client_msg_id);

CREATE TABLE auctions (
    id           INTEGER PRIMARY KEY,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    seller       INTEGER NOT NULL,
    phase        TEXT    NOT NULL,
    -- The engine's AuctionState as JSON (includes the hidden maximum; never sent to clients).
    state        TEXT    NOT NULL,
    room_id      INTEGER,
    deal_room_id INTEGER,
    external_id  TEXT UNIQUE,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX auctions_phase ON auctions(phase, id);

CREATE TABLE auction_steps (
    auction_id INTEGER NOT NULL REFERENCES auctions(id),
    seq        INTEGER NOT NULL,
    bidder     INTEGER NOT NULL,
    amount     INTEGER NOT NULL,
    proxy      INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (auction_id, seq)
);

-- The first answer to every bid/cancel request, so a retry returns it unchanged.
CREATE TABLE auction_results (
    auction_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    request_id TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (auction_id, user_id, request_id)
);

-- Consumer positions stored in the same transaction as their effects.
CREATE TABLE bus_offsets (
    consumer_group TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition      INTEGER NOT NULL,
    next_offset    INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);
