-- Social login: provider identities linked to users, logins in flight, one-time tickets.

CREATE TABLE user_identities (
    provider    TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities(user_id);

-- A login sent to a provider; the row is deleted when the browser comes back.
CREATE TABLE oauth_pending (
    state         TEXT PRIMARY KEY,
    provider      TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    link_user_id  INTEGER REFERENCES users(id),
    expires_at    INTEGER NOT NULL
);
CREATE INDEX oauth_pending_expiry ON oauth_pending(expires_at);

-- Single-use tickets, stored as the SHA-256 of their value.
CREATE TABLE oauth_tickets (
    hash        TEXT PRIMARY KEY,
    -- 'login' | 'link'
    kind        TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    new_account INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oauth_tickets_expiry ON oauth_tickets(expires_at);
