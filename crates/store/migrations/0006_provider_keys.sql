-- A workspace's credentials for model providers. `secret` is sealed by the vault (AES-256-GCM
-- under the workspace's data key, bound to the workspace, the kind `provider_key` and the
-- row's id), so a copied row opens nowhere else; `last4` is all of the key anyone sees.
-- A revoked key keeps its row (for the record of spend) but not its secret.
CREATE TABLE provider_keys (
    id                       TEXT PRIMARY KEY,
    workspace_id             TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    provider                 TEXT NOT NULL,
    label                    TEXT NOT NULL,
    base_url                 TEXT,
    secret                   TEXT NOT NULL,
    last4                    TEXT NOT NULL,
    status                   TEXT NOT NULL,
    monthly_spend_cap_micros BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);
CREATE INDEX provider_keys_workspace ON provider_keys (workspace_id, provider, created_at);
