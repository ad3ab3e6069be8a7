-- Access tokens are signed with Ed25519 keys (JWT alg EdDSA); each private
-- key is stored sealed (AES-256-GCM) under the key-encryption key from the
-- configuration, next to its public key. The HMAC secrets of the old table
-- sat here in plaintext and are dropped, not converted: access tokens they
-- signed (at most auth.access_ttl_secs old) stop verifying and clients
-- refresh.
DROP TABLE signing_keys;
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT   NOT NULL,
    public_key     BYTEA  NOT NULL,
    sealed_private BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL,
    -- Breaks ties between keys stored in the same millisecond.
    stored_seq     BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX signing_keys_created_at ON signing_keys(created_at);
