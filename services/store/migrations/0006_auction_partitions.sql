-- The partition count of `auction-bid` an auction's commands are mapped over,
-- fixed at creation: growing the topic never moves a live auction to another
-- partition (docs/architecture.md, "one writer per auction"). NULL for older
-- auctions until the auction role pins them at start.
ALTER TABLE auctions ADD COLUMN bid_partitions INTEGER;
