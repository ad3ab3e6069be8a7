-- The results file (`<main file>-results`): the first answer to every bid and
-- cancel request, merged here from the main file's `auction_results_log`
-- (see src/results_store.rs).
CREATE TABLE auction_results (
    auction_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    request_id TEXT    NOT NULL,
    -- The answer (CommandResult) as columns. Accepted answers never expire.
    accepted   INTEGER NOT NULL,
    code       TEXT,
    message    TEXT,
    leading    INTEGER NOT NULL,
    price      INTEGER,
    minimum    INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (auction_id, user_id, request_id)
);
-- Refused answers expire after the idempotency window, oldest first; their
-- creation times grow, so this index is appended to at its end.
CREATE INDEX auction_results_refused ON auction_results(created_at) WHERE accepted = 0;

-- How far the log is merged, and which main file this one belongs to
-- (`results_link.token` there; NULL until the first open links them).
CREATE TABLE merge_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    link_token     TEXT,
    merged_through INTEGER NOT NULL
);
INSERT INTO merge_state (id, link_token, merged_through) VALUES (1, NULL, 0);
