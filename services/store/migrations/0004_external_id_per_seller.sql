-- An auction's externalId is an idempotency key of its creator (the seller),
-- not of the whole platform: another user's equal key is another auction.
-- SQLite cannot drop the column's UNIQUE constraint, so the table is rebuilt
-- (the documented procedure; migrations run with foreign keys off, see
-- `migrate` in src/lib.rs, and every reference is checked afterwards).
CREATE TABLE auctions_rebuilt (
    id           INTEGER PRIMARY KEY,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    seller       INTEGER NOT NULL,
    phase        TEXT    NOT NULL,
    -- The engine's AuctionState as JSON (includes the hidden maximum; never sent to clients).
    state        TEXT    NOT NULL,
    room_id      INTEGER,
    deal_room_id INTEGER,
    external_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
INSERT INTO auctions_rebuilt (id, title, description, seller, phase, state, room_id, deal_room_id, external_id, created_at, updated_at)
    SELECT id, title, description, seller, phase, state, room_id, deal_room_id, external_id, created_at, updated_at FROM auctions;
DROP TABLE auctions;
ALTER TABLE auctions_rebuilt RENAME TO auctions;
CREATE INDEX auctions_phase ON auctions(phase, id);
CREATE UNIQUE INDEX auctions_external_id ON auctions(seller, external_id);
