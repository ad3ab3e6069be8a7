-- Concurrent refresh (two tabs with one token): the rotated record keeps its
-- successor sealed under the rotated token's own value, so a second use
-- inside the grace window gets the same successor. NULL for older rows.
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;
-- The revocation deny list every gateway polls: families revoked since a time.
CREATE INDEX refresh_tokens_revoked_at ON refresh_tokens(revoked_at)
    WHERE revoked_at IS NOT NULL;
