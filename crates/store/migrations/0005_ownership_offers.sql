-- Ownership transfer: an owner offers ownership of an assistant to one of its members, who
-- accepts it (becoming owner while the offering owner becomes admin). One live offer per
-- assistant: a new offer replaces the old one. An offer from or to a user who is deleted
-- goes with them.
CREATE TABLE ownership_offers (
    assistant_id TEXT PRIMARY KEY REFERENCES assistants(id) ON DELETE CASCADE,
    from_user    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    to_user      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
