//! Assistant API keys: secrets for programs, each scoped to one assistant and a subset of
//! its capabilities. The repository stores only the key's hash; the request flow finds a key
//! by that hash ([`ApiKeys::grant_by_hash`]) and gets a [`KeyGrant`], the only thing that
//! turns a key into a tenant scope.

use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{Access, ApiKeyId, AssistantId, CapabilitySet, Holding, Principal, WorkspaceId};
use ipnet::IpNet;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// A key as listed: everything but the secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub assistant_id: AssistantId,
    pub name: String,
    /// The first characters of the key (`bst_` and a few more), to tell keys apart.
    pub prefix: String,
    pub capabilities: CapabilitySet,
    /// Source address ranges the key works from; empty: anywhere.
    pub allowed_cidrs: Vec<IpNet>,
    pub rate_limit_per_minute: Option<u32>,
    /// Spend allowed per calendar month, in millionths of a US dollar.
    pub monthly_spend_cap_micros: Option<i64>,
    pub expires_at: Option<i64>,
    /// The principal that created it (`user:<id>` or `key:<id>`).
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether a request from `ip` may use the key (no ranges: any address).
    pub fn allows_ip(&self, ip: Option<std::net::IpAddr>) -> bool {
        if self.allowed_cidrs.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.allowed_cidrs.iter().any(|net| net.contains(&ip)))
    }
}

/// What a new key is: the handler has checked the caller may hand out its capabilities.
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub capabilities: CapabilitySet,
    pub allowed_cidrs: &'a [IpNet],
    pub rate_limit_per_minute: Option<u32>,
    pub monthly_spend_cap_micros: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A live (unrevoked) key as found by its hash: the input to authorization.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub(crate) key: ApiKey,
    pub(crate) workspace_id: WorkspaceId,
}

impl KeyGrant {
    pub fn key(&self) -> &ApiKey {
        &self.key
    }
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }

    /// The scope of the key's assistant if its capabilities satisfy `access`. A key is
    /// never an owner, and never satisfies a rule that is not about its assistant.
    pub fn authorize(&self, access: Access) -> Option<AssistantScope> {
        AssistantScope::allowing(
            access,
            self.key.assistant_id,
            self.workspace_id,
            Principal::ApiKey(self.key.id),
            Holding {
                capabilities: self.key.capabilities,
                owner: false,
            },
            None,
            false,
        )
    }
}

pub struct ApiKeys<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "k.id, k.assistant_id, k.name, k.prefix, k.capabilities, k.allowed_cidrs, \
    k.rate_limit_per_minute, k.monthly_spend_cap_micros, k.expires_at, k.created_by, \
    k.created_at, k.last_used_at, k.revoked_at";

fn api_key(r: &AnyRow) -> Result<ApiKey> {
    let cidrs: String = r.try_get("allowed_cidrs")?;
    let allowed_cidrs = cidrs
        .split_whitespace()
        .map(|c| c.parse::<IpNet>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| StoreError::Corrupt("api_keys.allowed_cidrs holds a bad range".into()))?;
    let rate: Option<i64> = r.try_get("rate_limit_per_minute")?;
    Ok(ApiKey {
        id: row::id(r, "id")?,
        assistant_id: row::id(r, "assistant_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        capabilities: row::capabilities(r, "capabilities")?,
        allowed_cidrs,
        rate_limit_per_minute: rate
            .map(u32::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt("api_keys.rate_limit_per_minute".into()))?,
        monthly_spend_cap_micros: r.try_get("monthly_spend_cap_micros")?,
        expires_at: r.try_get("expires_at")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn cidrs_text(cidrs: &[IpNet]) -> String {
    cidrs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl ApiKeys<'_> {
    /// Stores a new key of the scoped assistant, created by the scope's principal.
    pub async fn create(&self, scope: &AssistantScope, new: NewApiKey<'_>) -> Result<ApiKey> {
        let key = ApiKey {
            id: ApiKeyId::new(),
            assistant_id: scope.assistant_id(),
            name: new.name.to_string(),
            prefix: new.prefix.to_string(),
            capabilities: new.capabilities,
            allowed_cidrs: new.allowed_cidrs.to_vec(),
            rate_limit_per_minute: new.rate_limit_per_minute,
            monthly_spend_cap_micros: new.monthly_spend_cap_micros,
            expires_at: new.expires_at,
            created_by: scope.principal().to_string(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, assistant_id, name, prefix, key_hash, capabilities, \
             allowed_cidrs, rate_limit_per_minute, monthly_spend_cap_micros, expires_at, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(key.id.to_string())
        .bind(key.assistant_id.to_string())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(new.key_hash)
        .bind(key.capabilities.to_names())
        .bind(cidrs_text(&key.allowed_cidrs))
        .bind(key.rate_limit_per_minute.map(i64::from))
        .bind(key.monthly_spend_cap_micros)
        .bind(key.expires_at)
        .bind(&key.created_by)
        .bind(key.created_at)
        .execute(self.pool)
        .await?;
        Ok(key)
    }

    /// The scoped assistant's keys, revoked ones included, oldest first.
    pub async fn list(&self, scope: &AssistantScope) -> Result<Vec<ApiKey>> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_keys k WHERE k.assistant_id = $1 ORDER BY k.created_at, k.id");
        let rows = sqlx::query(&sql)
            .bind(scope.assistant_id().to_string())
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(api_key).collect()
    }

    pub async fn get(&self, scope: &AssistantScope, id: ApiKeyId) -> Result<ApiKey> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_keys k WHERE k.id = $1 AND k.assistant_id = $2");
        let r = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.assistant_id().to_string())
            .fetch_optional(self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        api_key(&r)
    }

    /// Revokes a key of the scoped assistant; revoking a revoked key changes nothing.
    /// Returns the key as it now is, and whether this call revoked it.
    pub async fn revoke(&self, scope: &AssistantScope, id: ApiKeyId) -> Result<(ApiKey, bool)> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND assistant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id.to_string())
        .bind(scope.assistant_id().to_string())
        .execute(self.pool)
        .await?
        .rows_affected();
        Ok((self.get(scope, id).await?, done > 0))
    }

    /// The live key with this hash, if any, with its assistant's workspace.
    pub async fn grant_by_hash(&self, key_hash: &str) -> Result<Option<KeyGrant>> {
        let sql = format!(
            "SELECT {COLUMNS}, a.workspace_id FROM api_keys k JOIN assistants a ON a.id = k.assistant_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        );
        let r = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(self.pool)
            .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(KeyGrant {
                key: api_key(&r)?,
                workspace_id: row::id(&r, "workspace_id")?,
            })),
        }
    }

    /// Records that the key was used at `at` (callers throttle how often).
    pub async fn touch(&self, id: ApiKeyId, at: i64) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(self.pool)
            .await?;
        Ok(())
    }
}
