-- Refused answers expire after the idempotency window (oldest first, through
-- the partial index); accepted ones are kept as long as their auction.
ALTER TABLE auction_results ADD COLUMN accepted BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE auction_results SET accepted = COALESCE((result ->> 'accepted')::BOOLEAN, FALSE);
ALTER TABLE auction_results ALTER COLUMN accepted DROP DEFAULT;
CREATE INDEX auction_results_refused ON auction_results(created_at) WHERE NOT accepted;
