-- Answers to bid and cancel requests are appended here by each batch and
-- merged, sorted by key, into the indexed `auction_results` table of the
-- results file (`<main file>-results`, see src/results_store.rs): appending
-- is far cheaper than inserting random keys into an index one batch at a time.
-- AUTOINCREMENT: ids must never be reused once the log is emptied, or new rows
-- would look merged already.
CREATE TABLE auction_results_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    auction_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    request_id TEXT    NOT NULL,
    -- The answer (CommandResult) as columns: bound, not parsed from JSON.
    accepted   INTEGER NOT NULL,
    code       TEXT,
    message    TEXT,
    leading    INTEGER NOT NULL,
    price      INTEGER,
    minimum    INTEGER,
    created_at INTEGER NOT NULL
);

-- Answers stored before this migration go through the log like new ones.
INSERT INTO auction_results_log
    (auction_id, user_id, request_id, accepted, code, message, leading, price, minimum, created_at)
    SELECT auction_id, user_id, request_id,
           coalesce(result ->> '$.accepted', 0), result ->> '$.code', result ->> '$.message',
           coalesce(result ->> '$.leading', 0), result ->> '$.price', result ->> '$.minimum',
           created_at
    FROM auction_results;
DROP TABLE auction_results;

-- Ties the results file to this database: a results file left from another
-- database would answer retries with that database's results.
CREATE TABLE results_link (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL
);
INSERT INTO results_link (id, token) VALUES (1, lower(hex(randomblob(16))));
