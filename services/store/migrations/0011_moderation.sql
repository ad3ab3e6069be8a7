-- Moderation: an operator's platform-wide block on a user, reports of chat
-- messages by room members, and the audit trail of both. Users are never
-- deleted (as room_members, no reference to them).
ALTER TABLE users ADD COLUMN blocked_at INTEGER;
ALTER TABLE users ADD COLUMN blocked_reason TEXT;

-- One report per (message, reporter); the message's sender and body are
-- copied at report time, so the report stays readable whatever happens to
-- the message later.
CREATE TABLE message_reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    INTEGER NOT NULL REFERENCES rooms(id),
    seq        INTEGER NOT NULL,
    reporter   INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    sender     INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (room_id, seq, reporter)
);

-- Written in the transaction of the action it records. actor: a user id,
-- or 'operator' for `bowchat admin`.
CREATE TABLE moderation_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('block', 'unblock', 'report')),
    target_user INTEGER,
    room_id     INTEGER,
    seq         INTEGER,
    detail      TEXT    NOT NULL DEFAULT ''
);
-- Every process polls the recent blocks (the deny list of blocked users).
CREATE INDEX moderation_audit_blocks ON moderation_audit (at) WHERE action = 'block';
