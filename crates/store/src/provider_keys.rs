//! A workspace's provider keys. The repository stores what the vault sealed and never sees
//! a secret in clear; handlers seal before writing and open only to call the provider.

use crate::scope::WorkspaceScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{ProviderKeyId, WorkspaceId};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// The kind of vault record a provider key is, part of what its ciphertext is bound to.
pub const VAULT_KIND: &str = "provider_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Openai,
    Anthropic,
    /// Any server speaking OpenAI's Chat Completions (vLLM, Ollama, llama.cpp, OpenRouter…)
    /// at its own base URL.
    OpenaiCompatible,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiCompatible => "openai-compatible",
        }
    }

    fn parse(s: &str) -> Option<Provider> {
        [
            Provider::Openai,
            Provider::Anthropic,
            Provider::OpenaiCompatible,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// In use.
    Active,
    /// Ready to take over: promoted to active before the old key is revoked, so a rotation
    /// never leaves a moment without a working key.
    Standby,
    /// Gone for good: its secret is erased.
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Standby => "standby",
            KeyStatus::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Option<KeyStatus> {
        [KeyStatus::Active, KeyStatus::Standby, KeyStatus::Revoked]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A provider key as stored: its secret sealed.
#[derive(Debug, Clone)]
pub struct ProviderKey {
    pub id: ProviderKeyId,
    pub workspace_id: WorkspaceId,
    pub provider: Provider,
    pub label: String,
    pub base_url: Option<String>,
    /// The vault's sealed form; empty once revoked.
    pub sealed_secret: String,
    pub last4: String,
    pub status: KeyStatus,
    pub monthly_spend_cap_micros: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The fields an update may change; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct ProviderKeyPatch {
    pub label: Option<String>,
    pub status: Option<KeyStatus>,
    /// `Some(None)` removes the cap.
    pub monthly_spend_cap_micros: Option<Option<i64>>,
}

pub struct ProviderKeys<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "id, workspace_id, provider, label, base_url, secret, last4, status, \
    monthly_spend_cap_micros, created_at, updated_at";

fn provider_key(r: &AnyRow) -> Result<ProviderKey> {
    let provider: String = r.try_get("provider")?;
    let status: String = r.try_get("status")?;
    Ok(ProviderKey {
        id: row::id(r, "id")?,
        workspace_id: row::id(r, "workspace_id")?,
        provider: Provider::parse(&provider)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown provider {provider:?}")))?,
        label: r.try_get("label")?,
        base_url: r.try_get("base_url")?,
        sealed_secret: r.try_get("secret")?,
        last4: r.try_get("last4")?,
        status: KeyStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown key status {status:?}")))?,
        monthly_spend_cap_micros: r.try_get("monthly_spend_cap_micros")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl ProviderKeys<'_> {
    /// Stores a key the handler built and sealed for the scoped workspace.
    pub async fn create(&self, scope: &WorkspaceScope, key: &ProviderKey) -> Result<()> {
        if key.workspace_id != scope.workspace_id() {
            return Err(StoreError::Invalid("a key of another workspace".into()));
        }
        sqlx::query(&format!(
            "INSERT INTO provider_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(key.id.to_string())
        .bind(key.workspace_id.to_string())
        .bind(key.provider.as_str())
        .bind(&key.label)
        .bind(key.base_url.clone())
        .bind(&key.sealed_secret)
        .bind(&key.last4)
        .bind(key.status.as_str())
        .bind(key.monthly_spend_cap_micros)
        .bind(key.created_at)
        .bind(key.updated_at)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    pub async fn list(&self, scope: &WorkspaceScope) -> Result<Vec<ProviderKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM provider_keys WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(scope.workspace_id().to_string())
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(provider_key).collect()
    }

    pub async fn get(&self, scope: &WorkspaceScope, id: ProviderKeyId) -> Result<ProviderKey> {
        self.in_workspace(scope.workspace_id(), id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Key `id` if it is `workspace`'s: the one look-up every scoped read goes through.
    async fn in_workspace(
        &self,
        workspace: WorkspaceId,
        id: ProviderKeyId,
    ) -> Result<Option<ProviderKey>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM provider_keys WHERE id = $1 AND workspace_id = $2"
        ))
        .bind(id.to_string())
        .bind(workspace.to_string())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(provider_key).transpose()
    }

    /// Applies `patch`. A revoked key stays revoked (409 on any change) and loses its secret.
    pub async fn update(
        &self,
        scope: &WorkspaceScope,
        id: ProviderKeyId,
        patch: ProviderKeyPatch,
    ) -> Result<ProviderKey> {
        let mut key = self.get(scope, id).await?;
        if key.status == KeyStatus::Revoked {
            return Err(StoreError::Conflict(
                "a revoked key cannot be changed".into(),
            ));
        }
        if let Some(label) = patch.label {
            key.label = label;
        }
        if let Some(status) = patch.status {
            key.status = status;
        }
        if let Some(cap) = patch.monthly_spend_cap_micros {
            key.monthly_spend_cap_micros = cap;
        }
        if key.status == KeyStatus::Revoked {
            key.sealed_secret = String::new();
        }
        key.updated_at = now_ms();
        // Conditional on the key not having been revoked meanwhile.
        let done = sqlx::query(
            "UPDATE provider_keys SET label = $1, status = $2, monthly_spend_cap_micros = $3, \
             secret = $4, updated_at = $5 WHERE id = $6 AND workspace_id = $7 AND status <> 'revoked'",
        )
        .bind(&key.label)
        .bind(key.status.as_str())
        .bind(key.monthly_spend_cap_micros)
        .bind(&key.sealed_secret)
        .bind(key.updated_at)
        .bind(id.to_string())
        .bind(scope.workspace_id().to_string())
        .execute(self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "a revoked key cannot be changed".into(),
            ));
        }
        Ok(key)
    }

    pub async fn delete(&self, scope: &WorkspaceScope, id: ProviderKeyId) -> Result<ProviderKey> {
        let key = self.get(scope, id).await?;
        sqlx::query("DELETE FROM provider_keys WHERE id = $1 AND workspace_id = $2")
            .bind(id.to_string())
            .bind(scope.workspace_id().to_string())
            .execute(self.pool)
            .await?;
        Ok(key)
    }

    /// The sealed secrets of every workspace, `limit` at a time in id order after `after`:
    /// for the operator's vault commands, never on a request path.
    pub async fn sealed_page(
        &self,
        after: Option<ProviderKeyId>,
        limit: i64,
    ) -> Result<Vec<(ProviderKeyId, WorkspaceId, String)>> {
        crate::sealed::page(
            self.pool,
            "SELECT id, workspace_id, secret AS sealed FROM provider_keys WHERE secret <> '' \
             AND id > $1 ORDER BY id LIMIT $2",
            after,
            limit,
        )
        .await
    }

    /// Replaces a sealed secret by its re-wrapped form, only if it is still `old`.
    pub async fn replace_sealed(&self, id: ProviderKeyId, old: &str, new: &str) -> Result<bool> {
        crate::sealed::replace(
            self.pool,
            ("provider_keys", "secret"),
            &id.to_string(),
            old,
            new,
        )
        .await
    }
}

impl ProviderKeys<'_> {
    /// The key an assistant's model calls use: the one its settings name while that is
    /// active; otherwise the newest active key of the same provider and base URL in the
    /// assistant's workspace. This is what makes rotation seamless: promote a standby key,
    /// revoke the old one, and the next call takes the new key with no settings change.
    pub async fn usable_for(
        &self,
        scope: &crate::AssistantScope,
        named: ProviderKeyId,
    ) -> Result<Option<ProviderKey>> {
        let ws = scope.workspace_id().to_string();
        let Some(key) = self.in_workspace(scope.workspace_id(), named).await? else {
            return Ok(None);
        };
        if key.status == KeyStatus::Active {
            return Ok(Some(key));
        }
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM provider_keys WHERE workspace_id = $1 AND provider = $2 \
             AND COALESCE(base_url, '') = $3 AND status = 'active' \
             ORDER BY updated_at DESC, id DESC LIMIT 1"
        ))
        .bind(&ws)
        .bind(key.provider.as_str())
        .bind(key.base_url.clone().unwrap_or_default())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(provider_key).transpose()
    }

    /// A key of the scoped assistant's workspace, whatever its status (settings validation).
    pub async fn in_assistant_workspace(
        &self,
        scope: &crate::AssistantScope,
        id: ProviderKeyId,
    ) -> Result<ProviderKey> {
        self.in_workspace(scope.workspace_id(), id)
            .await?
            .ok_or(StoreError::NotFound)
    }
}
