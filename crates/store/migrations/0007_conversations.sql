-- The conversation runtime: what an assistant answers with, what it was told and answered,
-- what it remembers per user, what each model call cost and how it went, and what users
-- thought of the answers.

-- How an assistant answers. One row per assistant, created on first change. Temperature is
-- stored in thousandths so both engines keep it exactly.
CREATE TABLE assistant_settings (
    assistant_id              TEXT PRIMARY KEY REFERENCES assistants(id) ON DELETE CASCADE,
    system_prompt             TEXT NOT NULL,
    provider_key_id           TEXT REFERENCES provider_keys(id) ON DELETE SET NULL,
    model                     TEXT NOT NULL,
    temperature_milli         BIGINT,
    max_reply_tokens          BIGINT NOT NULL,
    context_tokens            BIGINT NOT NULL,
    max_conversation_tokens   BIGINT,
    max_daily_tokens_per_user BIGINT,
    updated_at                BIGINT NOT NULL
);

-- A conversation belongs to the principal that started it: a user, or an API key.
CREATE TABLE conversations (
    id           TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES users(id) ON DELETE CASCADE,
    api_key_id   TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    tokens_used  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX conversations_assistant ON conversations (assistant_id, updated_at);
CREATE INDEX conversations_user ON conversations (assistant_id, user_id, updated_at);

-- Messages. An assistant message is written as `streaming` before the model is called and
-- its content grows as the reply arrives, always before the client sees it; `complete`,
-- `failed` or (found so after a crash) `interrupted` at the end.
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    status          TEXT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_status ON messages (status);

-- Facts a user asked an assistant to remember: per user per assistant, never shared.
CREATE TABLE memories (
    id           TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    content      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX memories_owner ON memories (assistant_id, user_id, created_at);

-- One row per model call (the stored form of its trace span). `prompt` and `completion`
-- are kept only for calls made in a conversation, and shown only to who may read it.
CREATE TABLE llm_calls (
    id              TEXT PRIMARY KEY,
    assistant_id    TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    message_id      TEXT,
    principal       TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    provider_key_id TEXT,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cost_micros     BIGINT,
    latency_ms      BIGINT NOT NULL,
    ttft_ms         BIGINT,
    finish_reason   TEXT,
    error           TEXT,
    prompt          TEXT NOT NULL,
    completion      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX llm_calls_conversation ON llm_calls (conversation_id, created_at);
CREATE INDEX llm_calls_assistant ON llm_calls (assistant_id, created_at);

-- A rating (+1 or -1) and an optional comment per assistant message and principal.
CREATE TABLE feedback (
    message_id      TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    principal       TEXT NOT NULL,
    assistant_id    TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL,
    rating          BIGINT NOT NULL,
    comment         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, principal)
);
CREATE INDEX feedback_assistant ON feedback (assistant_id, created_at);

-- Usage counters: tokens, cost and calls per subject and period, added to, never rewritten.
-- Subjects: `provider_key:<id>`, `api_key:<id>`, `assistant:<id>` per month (`2026-12`);
-- `member:<assistant>:<user>` per day (`2026-12-01`) for the daily token limit.
CREATE TABLE usage_counters (
    subject       TEXT NOT NULL,
    period        TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    calls         BIGINT NOT NULL,
    PRIMARY KEY (subject, period)
);
