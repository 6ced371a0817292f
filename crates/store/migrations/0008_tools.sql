-- The tool boundary: what an assistant may call, where its tools may connect, every call a
-- model proposed and what became of it, and the calls waiting for a person's approval.

-- Where an assistant's configured endpoints (HTTP tools, MCP servers) may point, and which
-- exact hosts an admin allowed to resolve to private, loopback or link-local addresses
-- (refused for every other host). JSON arrays of host names.
CREATE TABLE assistant_egress (
    assistant_id  TEXT PRIMARY KEY REFERENCES assistants(id) ON DELETE CASCADE,
    allowed_hosts TEXT NOT NULL,
    private_hosts TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- An assistant's MCP servers (Streamable HTTP). Their tools are rows of `tools` below.
-- `credential` is the server's own bearer token, sealed in the vault (bound to the workspace
-- and this row), sent to this server only; `credential_last4` is what the API shows of it.
CREATE TABLE mcp_servers (
    id           TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    url          TEXT NOT NULL,
    credential   TEXT,
    credential_last4 TEXT,
    synced_at    BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX mcp_servers_name ON mcp_servers (assistant_id, name);

-- An assistant's tools. `name` is what the model calls (unique per assistant). `kind` is
-- builtin (`builtin` names which), http (`endpoint` is POSTed the arguments) or mcp (the
-- tool `remote_name` of `mcp_server_id`). An MCP tool's `fingerprint` is the hash of the
-- name, description and schema an admin reviewed; when the server changes them,
-- `pending_fingerprint` holds the new hash and the tool stays disabled until reviewed. Risk is
-- read, write or external; approval is never, always, or a risk level above which a person
-- approves. `allowed_roles` is a JSON array of role names whose conversations may trigger it;
-- `allow_api_keys` lets conversations of API keys (programs) trigger it.
CREATE TABLE tools (
    id               TEXT PRIMARY KEY,
    assistant_id     TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    builtin          TEXT,
    endpoint         TEXT,
    mcp_server_id    TEXT REFERENCES mcp_servers(id) ON DELETE CASCADE,
    remote_name      TEXT,
    fingerprint      TEXT,
    pending_fingerprint TEXT,
    description      TEXT NOT NULL,
    input_schema     TEXT NOT NULL,
    enabled          BIGINT NOT NULL,
    risk             TEXT NOT NULL,
    allowed_roles    TEXT NOT NULL,
    allow_api_keys   BIGINT NOT NULL,
    approval         TEXT NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    max_result_bytes BIGINT NOT NULL,
    calls_per_minute BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX tools_name ON tools (assistant_id, name);

-- Every call a model proposed: refused, denied, timed out, failed or run. Arguments and
-- results are kept as SHA-256 and size only; the content stays with the conversation.
CREATE TABLE tool_calls (
    id              TEXT PRIMARY KEY,
    assistant_id    TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    tool_id         TEXT REFERENCES tools(id) ON DELETE SET NULL,
    name            TEXT NOT NULL,
    arguments_sha256 TEXT NOT NULL,
    arguments_bytes BIGINT NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT,
    result_sha256   TEXT,
    result_bytes    BIGINT,
    truncated       BIGINT NOT NULL,
    duration_ms     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX tool_calls_conversation ON tool_calls (conversation_id, created_at);
CREATE INDEX tool_calls_assistant ON tool_calls (assistant_id, created_at);

-- Calls waiting for a person. The approver sees the arguments (one cannot approve what one
-- cannot see); a decision is taken once; an undecided request expires and counts as refused.
CREATE TABLE tool_approvals (
    id              TEXT PRIMARY KEY,
    assistant_id    TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    tool_id         TEXT NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    tool_name       TEXT NOT NULL,
    arguments       TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    status          TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    expires_at      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX tool_approvals_pending ON tool_approvals (assistant_id, status, created_at);

-- The MCP endpoint of an assistant: where an external MCP server attaches itself over a
-- WebSocket to offer its tools. A token names one row; revoking the row (or issuing a new
-- token, which revokes the old) cuts the token off at once.
CREATE TABLE mcp_endpoints (
    id           TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX mcp_endpoints_assistant ON mcp_endpoints (assistant_id, created_at);
