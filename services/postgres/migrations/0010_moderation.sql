-- Moderation: an operator's platform-wide block on a user, reports of chat
-- messages by room members, and the audit trail of both. Users are never
-- deleted (as room_members, no reference to them).
ALTER TABLE users ADD COLUMN blocked_at BIGINT;
ALTER TABLE users ADD COLUMN blocked_reason TEXT;

-- One report per (message, reporter); the message's sender and body are
-- copied at report time, so the report stays readable whatever happens to
-- the message later (and whichever store holds the message bodies).
CREATE TABLE message_reports (
    id         BIGSERIAL PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms(id),
    seq        BIGINT NOT NULL,
    reporter   BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    sender     BIGINT NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (room_id, seq, reporter)
);

-- Written in the transaction of the action it records. actor: a user id,
-- or 'operator' for `bowchat admin`.
CREATE TABLE moderation_audit (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL CHECK (action IN ('block', 'unblock', 'report')),
    target_user BIGINT,
    room_id     BIGINT,
    seq         BIGINT,
    detail      TEXT   NOT NULL DEFAULT ''
);
-- Every process polls the recent blocks (the deny list of blocked users).
CREATE INDEX moderation_audit_blocks ON moderation_audit (at) WHERE action = 'block';
