//! Devices and their activation codes. A device's own requests (the OTA handshake, its
//! channels) carry no principal: they find its row by MAC or by token hash and prove who they
//! are to the caller. Everything a person does to a device goes through an
//! [`AssistantScope`]: another assistant's devices are not found, not forbidden.

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{AssistantId, DeviceId, UserId};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// The vault's record kind of a device's factory HMAC key.
pub const HMAC_KEY_KIND: &str = "device_hmac_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Known from its first contact; belongs to nobody.
    Unbound,
    /// Registered by an admin for an assistant; its first contact is still to come.
    Registered,
    /// Bound, waiting for an admin's approval before its channels open.
    PendingApproval,
    Bound,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Unbound => "unbound",
            DeviceStatus::Registered => "registered",
            DeviceStatus::PendingApproval => "pending_approval",
            DeviceStatus::Bound => "bound",
        }
    }
    fn parse(s: &str) -> Result<DeviceStatus> {
        Ok(match s {
            "unbound" => DeviceStatus::Unbound,
            "registered" => DeviceStatus::Registered,
            "pending_approval" => DeviceStatus::PendingApproval,
            "bound" => DeviceStatus::Bound,
            _ => return Err(StoreError::Corrupt(format!("unknown device status {s:?}"))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub mac: String,
    pub client_id_hash: Option<String>,
    pub secret_hash: Option<String>,
    pub secret_required: bool,
    pub serial_number: Option<String>,
    /// Sealed; opened only to check an activation answer.
    pub hmac_key: Option<String>,
    pub board: String,
    pub app_version: String,
    pub assistant_id: Option<AssistantId>,
    pub owner_id: Option<UserId>,
    pub status: DeviceStatus,
    pub token_hash: Option<String>,
    pub token_last4: Option<String>,
    pub token_expires_at: Option<i64>,
    pub cut_at: Option<i64>,
    pub online: bool,
    pub last_ip: Option<String>,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub bound_at: Option<i64>,
    pub created_at: i64,
}

impl Device {
    /// Whether its channels may open: bound, approved, with an owner and a live token.
    pub fn may_connect(&self, now: i64) -> bool {
        self.status == DeviceStatus::Bound
            && self.assistant_id.is_some()
            && self.owner_id.is_some()
            && self.token_hash.is_some()
            && self.token_expires_at.is_some_and(|t| t > now)
    }
}

const COLUMNS: &str = "id, mac, client_id_hash, secret_hash, secret_required, serial_number, \
    hmac_key, board, app_version, assistant_id, owner_id, status, token_hash, token_last4, \
    token_expires_at, cut_at, online, last_ip, first_seen_at, last_seen_at, bound_at, created_at";

fn opt_id<T: std::str::FromStr>(r: &AnyRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = r.try_get(col)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("column {col} holds a malformed id")))
    })
    .transpose()
}

fn device(r: &AnyRow) -> Result<Device> {
    Ok(Device {
        id: row::id(r, "id")?,
        mac: r.try_get("mac")?,
        client_id_hash: r.try_get("client_id_hash")?,
        secret_hash: r.try_get("secret_hash")?,
        secret_required: r.try_get::<i64, _>("secret_required")? != 0,
        serial_number: r.try_get("serial_number")?,
        hmac_key: r.try_get("hmac_key")?,
        board: r.try_get("board")?,
        app_version: r.try_get("app_version")?,
        assistant_id: opt_id(r, "assistant_id")?,
        owner_id: opt_id(r, "owner_id")?,
        status: DeviceStatus::parse(&r.try_get::<String, _>("status")?)?,
        token_hash: r.try_get("token_hash")?,
        token_last4: r.try_get("token_last4")?,
        token_expires_at: r.try_get("token_expires_at")?,
        cut_at: r.try_get("cut_at")?,
        online: r.try_get::<i64, _>("online")? != 0,
        last_ip: r.try_get("last_ip")?,
        first_seen_at: r.try_get("first_seen_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        bound_at: r.try_get("bound_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A device's live activation code (as its keyed hash).
#[derive(Debug, Clone)]
pub struct ActivationRow {
    pub device_id: DeviceId,
    pub code_hash: String,
    pub challenge: String,
    pub expires_at: i64,
    pub created_at: i64,
}

fn activation(r: &AnyRow) -> Result<ActivationRow> {
    Ok(ActivationRow {
        device_id: row::id(r, "device_id")?,
        code_hash: r.try_get("code_hash")?,
        challenge: r.try_get("challenge")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// An assistant's pairing policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `auto` or `approval`.
    pub pairing: String,
    /// `alphanumeric` or `digits`.
    pub code_kind: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            pairing: "auto".into(),
            code_kind: "alphanumeric".into(),
        }
    }
}

/// What a device says about itself at a handshake.
#[derive(Debug, Clone)]
pub struct Contact<'a> {
    pub board: &'a str,
    pub app_version: &'a str,
    pub ip: Option<String>,
}

pub struct Devices<'a> {
    pub(crate) pool: &'a AnyPool,
}

impl Devices<'_> {
    async fn one(&self, clause: &str, value: String) -> Result<Option<Device>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE {clause} = $1"
        ))
        .bind(value)
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(device).transpose()
    }

    pub async fn by_mac(&self, mac: &str) -> Result<Option<Device>> {
        self.one("mac", mac.to_string()).await
    }

    pub async fn by_id(&self, id: DeviceId) -> Result<Option<Device>> {
        self.one("id", id.to_string()).await
    }

    pub async fn by_token(&self, token_hash: &str) -> Result<Option<Device>> {
        self.one("token_hash", token_hash.to_string()).await
    }

    /// Records a device's first contact (status unbound). `Conflict` when another request
    /// recorded the same MAC first.
    pub async fn first_contact(
        &self,
        mac: &str,
        client_id_hash: Option<&str>,
        secret_hash: &str,
        contact: &Contact<'_>,
    ) -> Result<Device> {
        let now = now_ms();
        let id = DeviceId::new();
        sqlx::query(
            "INSERT INTO devices (id, mac, client_id_hash, secret_hash, secret_required, board, \
             app_version, status, online, last_ip, first_seen_at, last_seen_at, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, 'unbound', 0, $7, $8, $8, $8)",
        )
        .bind(id.to_string())
        .bind(mac)
        .bind(client_id_hash)
        .bind(secret_hash)
        .bind(contact.board)
        .bind(contact.app_version)
        .bind(contact.ip.clone())
        .bind(now)
        .execute(self.pool)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "this device is already known"))?;
        self.by_id(id).await?.ok_or(StoreError::NotFound)
    }

    /// The first contact of a device an admin registered: it gets its identity, and waits
    /// for its factory key's answer (`registered`) or for an admin (`pending_approval`).
    pub async fn first_contact_of_registered(
        &self,
        id: DeviceId,
        client_id_hash: Option<&str>,
        secret_hash: &str,
        contact: &Contact<'_>,
        next: DeviceStatus,
    ) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE devices SET client_id_hash = $1, secret_hash = $2, board = $3, \
             app_version = $4, last_ip = $5, first_seen_at = $6, last_seen_at = $6, status = $7 \
             WHERE id = $8 AND status = 'registered' AND secret_hash IS NULL",
        )
        .bind(client_id_hash)
        .bind(secret_hash)
        .bind(contact.board)
        .bind(contact.app_version)
        .bind(contact.ip.clone())
        .bind(now)
        .bind(next.as_str())
        .bind(id.to_string())
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A later contact: what the device says now, and whether it sent its secret (which
    /// holds it to the secret from then on).
    pub async fn seen(&self, id: DeviceId, contact: &Contact<'_>, sent_secret: bool) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET board = $1, app_version = $2, last_ip = $3, last_seen_at = $4, \
             secret_required = CASE WHEN $5 = 1 THEN 1 ELSE secret_required END WHERE id = $6",
        )
        .bind(contact.board)
        .bind(contact.app_version)
        .bind(contact.ip.clone())
        .bind(now_ms())
        .bind(i64::from(sent_secret))
        .bind(id.to_string())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the device's activation code (at most one is live).
    pub async fn set_activation(
        &self,
        id: DeviceId,
        code_hash: &str,
        challenge: &str,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query("DELETE FROM device_activations WHERE device_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO device_activations (device_id, code_hash, challenge, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(code_hash)
        .bind(challenge)
        .bind(expires_at)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique_as_conflict(e, "this code is in use"))?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn activation_of(&self, id: DeviceId) -> Result<Option<ActivationRow>> {
        let r = sqlx::query(
            "SELECT device_id, code_hash, challenge, expires_at, created_at \
             FROM device_activations WHERE device_id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(activation).transpose()
    }

    /// The device whose live (unexpired) code has this hash.
    pub async fn by_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<(Device, ActivationRow)>> {
        let r = sqlx::query(
            "SELECT device_id, code_hash, challenge, expires_at, created_at \
             FROM device_activations WHERE code_hash = $1 AND expires_at > $2",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(self.pool)
        .await?;
        let Some(a) = r.as_ref().map(activation).transpose()? else {
            return Ok(None);
        };
        Ok(self.by_id(a.device_id).await?.map(|d| (d, a)))
    }

    /// A new channel token for a bound device (the previous one stops working).
    pub async fn issue_token(
        &self,
        id: DeviceId,
        token_hash: &str,
        last4: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET token_hash = $1, token_last4 = $2, token_expires_at = $3 \
             WHERE id = $4 AND status = 'bound'",
        )
        .bind(token_hash)
        .bind(last4)
        .bind(expires_at)
        .bind(id.to_string())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// A device with a registered factory key answered its challenge: it is bound to the
    /// assistant and owner it was registered for.
    pub async fn bind_registered(&self, id: DeviceId, status: DeviceStatus) -> Result<bool> {
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        let done = sqlx::query(
            "UPDATE devices SET status = $1, bound_at = $2 WHERE id = $3 AND status = 'registered' \
             AND assistant_id IS NOT NULL AND owner_id IS NOT NULL",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM device_activations WHERE device_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_online(&self, id: DeviceId, online: bool, ip: Option<String>) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET online = $1, last_seen_at = $2, last_ip = COALESCE($3, last_ip) \
             WHERE id = $4",
        )
        .bind(i64::from(online))
        .bind(now_ms())
        .bind(ip)
        .bind(id.to_string())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the devices nobody bound that have not been in contact since `before` (ms):
    /// anyone can make a first contact, so such rows must not pile up. Returns how many.
    pub async fn forget_unbound_unseen(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM devices WHERE status = 'unbound' AND assistant_id IS NULL \
             AND COALESCE(last_seen_at, created_at) < $1",
        )
        .bind(before)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// At start-up of a node that is the only one (SQLite): nothing is connected yet.
    pub async fn all_offline(&self) -> Result<()> {
        sqlx::query("UPDATE devices SET online = 0 WHERE online <> 0")
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Devices whose channels were cut after `since` (ms), with when.
    pub async fn cut_since(&self, since: i64) -> Result<Vec<(DeviceId, i64)>> {
        let rows = sqlx::query("SELECT id, cut_at FROM devices WHERE cut_at > $1")
            .bind(since)
            .fetch_all(self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((row::id(r, "id")?, r.try_get("cut_at")?)))
            .collect()
    }

    /// The pairing policy of an assistant (the default when none was set).
    pub async fn policy_of(&self, assistant: AssistantId) -> Result<Policy> {
        let r = sqlx::query(
            "SELECT pairing, code_kind FROM assistant_device_policy WHERE assistant_id = $1",
        )
        .bind(assistant.to_string())
        .fetch_optional(self.pool)
        .await?;
        Ok(match r {
            Some(r) => Policy {
                pairing: r.try_get("pairing")?,
                code_kind: r.try_get("code_kind")?,
            },
            None => Policy::default(),
        })
    }

    // ---- through a scope ----

    pub async fn policy(&self, scope: &AssistantScope) -> Result<Policy> {
        self.policy_of(scope.assistant_id()).await
    }

    pub async fn set_policy(&self, scope: &AssistantScope, p: &Policy) -> Result<()> {
        let a = scope.assistant_id().to_string();
        let mut tx = crate::begin(self.pool).await?;
        sqlx::query("DELETE FROM assistant_device_policy WHERE assistant_id = $1")
            .bind(&a)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO assistant_device_policy (assistant_id, pairing, code_kind, updated_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&a)
        .bind(&p.pairing)
        .bind(&p.code_kind)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<Device>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE assistant_id = $1 ORDER BY created_at, id"
        ))
        .bind(scope.assistant_id().to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(device).collect()
    }

    pub async fn get(&self, scope: &AssistantScope, id: DeviceId) -> Result<Device> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE id = $1 AND assistant_id = $2"
        ))
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref()
            .map(device)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Binds the device whose code this is to the scope's assistant with `owner`, using the
    /// code up (single use): an unbound device, or one registered for this assistant that
    /// made its first contact and waits. `NotFound` when the code was used or replaced
    /// meanwhile, or the device belongs to another assistant.
    pub async fn bind(
        &self,
        scope: &AssistantScope,
        device: DeviceId,
        code_hash: &str,
        owner: UserId,
        status: DeviceStatus,
    ) -> Result<Device> {
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        let used = sqlx::query(
            "DELETE FROM device_activations WHERE device_id = $1 AND code_hash = $2 AND expires_at > $3",
        )
        .bind(device.to_string())
        .bind(code_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let bound = sqlx::query(
            "UPDATE devices SET assistant_id = $1, owner_id = $2, status = $3, bound_at = $4, \
             token_hash = NULL, token_last4 = NULL, token_expires_at = NULL \
             WHERE id = $5 AND ((status = 'unbound' AND assistant_id IS NULL) OR \
             (assistant_id = $1 AND status IN ('registered', 'pending_approval') AND bound_at IS NULL))",
        )
        .bind(scope.assistant_id().to_string())
        .bind(owner.to_string())
        .bind(status.as_str())
        .bind(now)
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?;
        if bound.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.get(scope, device).await
    }

    /// An admin registers a headless device by MAC for the scope's assistant.
    pub async fn register(
        &self,
        scope: &AssistantScope,
        id: DeviceId,
        mac: &str,
        serial_number: Option<&str>,
        sealed_hmac_key: Option<&str>,
        owner: UserId,
    ) -> Result<Device> {
        sqlx::query(
            "INSERT INTO devices (id, mac, secret_required, serial_number, hmac_key, board, \
             app_version, assistant_id, owner_id, status, online, created_at) \
             VALUES ($1, $2, 0, $3, $4, '', '', $5, $6, 'registered', 0, $7)",
        )
        .bind(id.to_string())
        .bind(mac)
        .bind(serial_number)
        .bind(sealed_hmac_key)
        .bind(scope.assistant_id().to_string())
        .bind(owner.to_string())
        .bind(now_ms())
        .execute(self.pool)
        .await
        .map_err(|e| {
            StoreError::unique_as_conflict(e, "a device with this MAC is already known")
        })?;
        self.get(scope, id).await
    }

    /// An admin approves a device waiting for approval.
    pub async fn approve(&self, scope: &AssistantScope, id: DeviceId) -> Result<Device> {
        let done = sqlx::query(
            "UPDATE devices SET status = 'bound', bound_at = COALESCE(bound_at, $1) \
             WHERE id = $2 AND assistant_id = $3 AND status = 'pending_approval'",
        )
        .bind(now_ms())
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        if done.rows_affected() != 1 {
            let d = self.get(scope, id).await?;
            return Err(StoreError::Conflict(format!(
                "the device is {}, not waiting for approval",
                d.status.as_str()
            )));
        }
        self.get(scope, id).await
    }

    /// Revokes the device's token and cuts its channels; it stays bound and gets a new
    /// token at its next handshake.
    pub async fn revoke_token(&self, scope: &AssistantScope, id: DeviceId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE devices SET token_hash = NULL, token_last4 = NULL, token_expires_at = NULL, \
             cut_at = $1 WHERE id = $2 AND assistant_id = $3",
        )
        .bind(now_ms())
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Unbinds the device: it belongs to nobody, its channels are cut, and its next
    /// handshake gets a fresh activation code (a resold device is bound by its new owner).
    /// Its identity (secret) stays; what the tenant registered (serial, factory key) goes.
    pub async fn unbind(&self, scope: &AssistantScope, id: DeviceId) -> Result<()> {
        let mut tx = crate::begin(self.pool).await?;
        let done = sqlx::query(&format!(
            "UPDATE devices SET {UNBIND} WHERE id = $2 AND assistant_id = $3"
        ))
        .bind(now_ms())
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM device_activations WHERE device_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        // A registered device that never made contact has no identity to keep.
        sqlx::query("DELETE FROM devices WHERE id = $1 AND secret_hash IS NULL")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Devices<'_> {
    /// Sealed factory keys with the workspace they are bound to, a page at a time (for
    /// `bastion vault rotate-master`).
    pub async fn sealed_page(
        &self,
        after: Option<DeviceId>,
        limit: i64,
    ) -> Result<Vec<(DeviceId, bastion_core::WorkspaceId, String)>> {
        crate::sealed::page(
            self.pool,
            "SELECT d.id, a.workspace_id, d.hmac_key AS sealed FROM devices d \
             JOIN assistants a ON a.id = d.assistant_id \
             WHERE d.hmac_key IS NOT NULL AND d.id > $1 ORDER BY d.id LIMIT $2",
            after,
            limit,
        )
        .await
    }

    /// Replaces a sealed factory key by its re-wrapped form, only if it is still `old`.
    pub async fn replace_sealed(&self, id: DeviceId, old: &str, new: &str) -> Result<bool> {
        crate::sealed::replace(
            self.pool,
            ("devices", "hmac_key"),
            &id.to_string(),
            old,
            new,
        )
        .await
    }
}

/// The assignments that unbind a device; `$1` is now.
pub(crate) const UNBIND: &str = "status = 'unbound', assistant_id = NULL, owner_id = NULL, \
    token_hash = NULL, token_last4 = NULL, token_expires_at = NULL, serial_number = NULL, \
    hmac_key = NULL, bound_at = NULL, online = 0, cut_at = $1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::on_both_engines;
    use crate::Store;

    async fn unseen_unbound_devices_are_forgotten(store: &Store) {
        let repo = store.devices();
        let contact = Contact {
            board: "b",
            app_version: "1",
            ip: None,
        };
        let old = repo
            .first_contact("02:00:00:00:00:01", None, "h1", &contact)
            .await
            .unwrap();
        let recent = repo
            .first_contact("02:00:00:00:00:02", None, "h2", &contact)
            .await
            .unwrap();
        repo.set_activation(old.id, "code-hash", "challenge", now_ms() + 60_000)
            .await
            .unwrap();
        sqlx::query("UPDATE devices SET last_seen_at = 1000 WHERE id = $1")
            .bind(old.id.to_string())
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            repo.forget_unbound_unseen(now_ms() - 60_000).await.unwrap(),
            1
        );
        assert!(repo.by_id(old.id).await.unwrap().is_none());
        assert!(
            repo.activation_of(old.id).await.unwrap().is_none(),
            "its code went with it"
        );
        assert!(repo.by_id(recent.id).await.unwrap().is_some());
    }

    on_both_engines!(unseen_unbound_devices_are_forgotten);
}
