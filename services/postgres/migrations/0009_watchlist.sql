-- Auctions a user watches: the UI keeps them subscribed and tells the user
-- when one is about to end, on whatever page they are. Users are never
-- deleted (as room_members, no reference to them).
CREATE TABLE watchlist (
    user_id    BIGINT NOT NULL,
    auction_id BIGINT NOT NULL REFERENCES auctions(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, auction_id)
);
