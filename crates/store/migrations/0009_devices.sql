-- Devices: hardware known from its first contact (the OTA handshake), bound to one assistant
-- and one owner by an activation session.
--
-- `mac` is the normalized Device-Id header; it never authenticates alone. A device proves it
-- is the one first seen by the issued secret (`secret_hash`) or, for firmware that never sends
-- it back, by the Client-Id it sent first (`client_id_hash`); once it has sent the secret,
-- `secret_required` holds it to that. `status`: unbound (known, no assistant), registered (an
-- admin registered it by MAC for an assistant; it has not made its first contact),
-- pending_approval (bound, waiting for an admin where pairing is `approval`), bound.
-- `hmac_key` is a factory key an admin registered (sealed in the vault under the assistant's
-- workspace): a device sending `serial_number` + `hmac` is checked against it. `token_hash`
-- is the channels' credential (WebSocket and MQTT). `cut_at` is the last time its channels
-- were cut (revoked, unbound): every node closes the device's open channels when it moves.
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    mac              TEXT NOT NULL,
    client_id_hash   TEXT,
    secret_hash      TEXT,
    secret_required  BIGINT NOT NULL DEFAULT 0,
    serial_number    TEXT,
    hmac_key         TEXT,
    board            TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    assistant_id     TEXT REFERENCES assistants(id) ON DELETE SET NULL,
    owner_id         TEXT REFERENCES users(id) ON DELETE SET NULL,
    status           TEXT NOT NULL,
    token_hash       TEXT,
    token_last4      TEXT,
    token_expires_at BIGINT,
    cut_at           BIGINT,
    online           BIGINT NOT NULL DEFAULT 0,
    last_ip          TEXT,
    first_seen_at    BIGINT,
    last_seen_at     BIGINT,
    bound_at         BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX devices_mac ON devices (mac);
CREATE UNIQUE INDEX devices_token ON devices (token_hash);
CREATE INDEX devices_assistant ON devices (assistant_id);
CREATE INDEX devices_cut ON devices (cut_at);

-- The one live activation code of a device (single use: deleted when it binds). `code_hash`
-- is keyed (HMAC), so the table reveals no code; `challenge` is what a device with a factory
-- key answers.
CREATE TABLE device_activations (
    device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    challenge  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX device_activations_code ON device_activations (code_hash);

-- How an assistant pairs devices: `auto` (a confirmed code binds) or `approval` (a bound
-- device waits for an admin); which codes its registered devices show.
CREATE TABLE assistant_device_policy (
    assistant_id TEXT PRIMARY KEY REFERENCES assistants(id) ON DELETE CASCADE,
    pairing      TEXT NOT NULL,
    code_kind    TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
