-- An auction's externalId is an idempotency key of its creator (the seller),
-- not of the whole platform: another user's equal key is another auction.
ALTER TABLE auctions DROP CONSTRAINT auctions_external_id_key;
CREATE UNIQUE INDEX auctions_external_id ON auctions(seller, external_id);
