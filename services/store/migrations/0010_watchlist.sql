-- Auctions a user watches: the UI keeps them subscribed and tells the user
-- when one is about to end, on whatever page they are. Users are never
-- deleted (as room_members, no reference to them).
CREATE TABLE watchlist (
    user_id    INTEGER NOT NULL,
    auction_id INTEGER NOT NULL REFERENCES auctions(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, auction_id)
);
