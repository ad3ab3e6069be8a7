-- Facts a role stored, written in the batch's own transaction and removed once
-- published (bowchat_bus::outbox): a stored fact reaches the gateways at least
-- once, even when the broker is away longer than the producer's timeout or the
-- role dies between its commit and its publish.
CREATE TABLE fact_outbox (
    id         BIGINT  PRIMARY KEY,
    source     TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    records    TEXT    NOT NULL
);
CREATE INDEX fact_outbox_due ON fact_outbox (source, created_at, id);
