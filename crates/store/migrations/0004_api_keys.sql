-- Assistant API keys: secrets for programs, scoped to one assistant. Only a SHA-256 of the
-- key is kept (the key is 32 random bytes, so a fast hash loses nothing), with a short
-- visible prefix to tell keys apart. Capabilities are space-separated names; allowed source
-- ranges are space-separated CIDRs (empty: anywhere). A revoked key stays listed, marked.
CREATE TABLE api_keys (
    id                       TEXT PRIMARY KEY,
    assistant_id             TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    prefix                   TEXT NOT NULL,
    key_hash                 TEXT NOT NULL UNIQUE,
    capabilities             TEXT NOT NULL,
    allowed_cidrs            TEXT NOT NULL,
    rate_limit_per_minute    BIGINT,
    monthly_spend_cap_micros BIGINT,
    expires_at               BIGINT,
    created_by               TEXT NOT NULL,
    created_at               BIGINT NOT NULL,
    last_used_at             BIGINT,
    revoked_at               BIGINT
);
CREATE INDEX api_keys_assistant ON api_keys (assistant_id, created_at);
