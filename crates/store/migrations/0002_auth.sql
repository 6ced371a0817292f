-- Sign-in state: sessions (one per sign-in, the family of its refresh tokens), refresh
-- tokens (hashes only), TOTP and recovery codes, OAuth identities, single-use nonces.

-- A session is one sign-in. Its refresh tokens form one family: reusing a spent token
-- revokes the session, and with it every token descended from the same sign-in.
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method              TEXT NOT NULL,
    ip                  TEXT NOT NULL,
    user_agent          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    generation  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    spent_at    BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

-- TOTP: the secret is sealed (AES-256-GCM, bound to the user id); a pending secret waits
-- for its first code before it replaces the enabled one.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;
-- The last TOTP time step accepted, so a code cannot be used twice.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Who a user is at an OAuth provider: (provider, subject) names one user.
CREATE TABLE user_identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities(user_id);

-- Single-use nonces (OAuth state) when no Redis is configured: a row exists once used.
CREATE TABLE used_nonces (
    nonce_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_nonces_expiry ON used_nonces(expires_at);

ALTER TABLE workspaces ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
