-- Every stored state bumps the auction's version, and a batch writes its
-- state only over the version it read: a second writer's commit fails
-- instead of overwriting (docs/architecture.md, "one writer per auction").
ALTER TABLE auctions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
