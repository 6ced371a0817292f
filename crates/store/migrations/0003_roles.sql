-- Custom roles: per assistant, a name and a set of capabilities (space-separated names).
-- A membership's or invitation's `role` column holds a built-in role's name or, for a
-- custom role, its id (a UUID, so the two never collide). Assignments and deletions of a
-- role are serialized per assistant by the repositories, which refuse to delete a role
-- that is still held or offered.
CREATE TABLE assistant_roles (
    id           TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (assistant_id, name)
);
