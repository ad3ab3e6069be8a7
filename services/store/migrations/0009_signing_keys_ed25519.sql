-- Access tokens are signed with Ed25519 keys (JWT alg EdDSA); each private
-- key is stored sealed (AES-256-GCM) under the key-encryption key from the
-- configuration, next to its public key. The HMAC secrets of the old table
-- sat here in plaintext and are dropped, not converted: access tokens they
-- signed (at most auth.access_ttl_secs old) stop verifying and clients
-- refresh. secure_delete overwrites the freed pages so the secrets do not
-- linger in the file.
PRAGMA secure_delete = ON;
DELETE FROM signing_keys;
DROP TABLE signing_keys;
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT    NOT NULL,
    public_key     BLOB    NOT NULL,
    sealed_private BLOB    NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX signing_keys_created_at ON signing_keys(created_at);
