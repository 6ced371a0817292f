//! What `bastion security audit` asks of the store: the tenant settings that leave a
//! deployment weaker than it could be. Read-only, across every tenant (the operator's
//! view), naming where each finding is (an assistant's slug or a workspace's name) and what
//! (an email, a key's name, a tool's name), never a secret.

use crate::{Result, Store};
use bastion_core::{Approval, Capability, CapabilitySet, Risk};
use sqlx::Row;

/// One place where a setting is weak: where (assistant slug or workspace name) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub place: String,
    pub item: String,
}

pub struct Security<'a> {
    pub(crate) store: &'a Store,
}

fn exposures(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<Exposure>> {
    // (place, item) columns, as every query here names them.
    rows.iter()
        .map(|r| {
            Ok(Exposure {
                place: r.try_get("place")?,
                item: r.try_get("item")?,
            })
        })
        .collect()
}

impl Security<'_> {
    /// Every (place, item) row of `sql`.
    async fn all(&self, sql: &str) -> Result<Vec<Exposure>> {
        exposures(sqlx::query(sql).fetch_all(&self.store.pool).await?)
    }

    /// Owners and admins (of an assistant or a workspace) without a second factor, in
    /// workspaces that do not require one.
    pub async fn admins_without_mfa(&self) -> Result<Vec<Exposure>> {
        self.all(
            "SELECT a.slug AS place, u.email AS item FROM memberships m \
             JOIN users u ON u.id = m.user_id \
             JOIN assistants a ON a.id = m.assistant_id \
             JOIN workspaces w ON w.id = a.workspace_id \
             WHERE m.role IN ('owner', 'admin') AND u.totp_enabled_at IS NULL AND w.require_mfa = 0 \
             UNION \
             SELECT w.name AS place, u.email AS item FROM workspace_members wm \
             JOIN users u ON u.id = wm.user_id \
             JOIN workspaces w ON w.id = wm.workspace_id \
             WHERE wm.role IN ('owner', 'admin') AND u.totp_enabled_at IS NULL AND w.require_mfa = 0 \
             ORDER BY place, item",
        )
        .await
    }

    /// Live API keys without an expiry.
    pub async fn api_keys_without_expiry(&self) -> Result<Vec<Exposure>> {
        self.all(
            "SELECT a.slug AS place, k.name AS item FROM api_keys k \
             JOIN assistants a ON a.id = k.assistant_id \
             WHERE k.revoked_at IS NULL AND k.expires_at IS NULL ORDER BY place, item",
        )
        .await
    }

    /// Live API keys that may chat (spend) without a monthly spend cap.
    pub async fn api_keys_without_cap(&self) -> Result<Vec<Exposure>> {
        let rows = sqlx::query(
            "SELECT a.slug AS place, k.name AS item, k.capabilities AS caps FROM api_keys k \
             JOIN assistants a ON a.id = k.assistant_id \
             WHERE k.revoked_at IS NULL AND k.monthly_spend_cap_micros IS NULL \
             ORDER BY place, item",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let caps: String = r.try_get("caps")?;
            let spends =
                CapabilitySet::from_names(&caps).is_none_or(|c| c.contains(Capability::Chat));
            if spends {
                out.push(Exposure {
                    place: r.try_get("place")?,
                    item: r.try_get("item")?,
                });
            }
        }
        Ok(out)
    }

    /// Provider keys in use or standing by without a monthly spend cap.
    pub async fn provider_keys_without_cap(&self) -> Result<Vec<Exposure>> {
        self.all(
            "SELECT w.name AS place, p.label AS item FROM provider_keys p \
             JOIN workspaces w ON w.id = p.workspace_id \
             WHERE p.status <> 'revoked' AND p.monthly_spend_cap_micros IS NULL \
             ORDER BY place, item",
        )
        .await
    }

    /// Assistants whose tools and MCP servers may reach private addresses of named hosts.
    pub async fn private_egress(&self) -> Result<Vec<Exposure>> {
        self.all(
            "SELECT a.slug AS place, e.private_hosts AS item FROM assistant_egress e \
             JOIN assistants a ON a.id = e.assistant_id \
             WHERE e.private_hosts <> '[]' ORDER BY place",
        )
        .await
    }

    /// Enabled tools of `risk` whose calls never wait for a person.
    pub async fn unapproved_tools(&self, risk: Risk) -> Result<Vec<Exposure>> {
        let rows = sqlx::query(
            "SELECT a.slug AS place, t.name AS item, t.approval AS approval FROM tools t \
             JOIN assistants a ON a.id = t.assistant_id \
             WHERE t.enabled = 1 AND t.risk = $1 ORDER BY place, item",
        )
        .bind(risk.as_str())
        .fetch_all(&self.store.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let rule: String = r.try_get("approval")?;
            let waits = Approval::from_db(&rule).is_none_or(|a| a.requires(risk));
            if !waits {
                out.push(Exposure {
                    place: r.try_get("place")?,
                    item: r.try_get("item")?,
                });
            }
        }
        Ok(out)
    }

    /// Assistants whose device policy has `column` = `value` (`code_kind` = `digits`,
    /// `pairing` = `auto`). An assistant without a policy row has the defaults (letters and
    /// digits, `auto`), so `auto` also counts those that have devices or none yet.
    pub async fn device_policies(
        &self,
        column: PolicyColumn,
        value: &str,
    ) -> Result<Vec<Exposure>> {
        let sql = match column {
            PolicyColumn::CodeKind => {
                "SELECT a.slug AS place, p.code_kind AS item FROM assistant_device_policy p \
                 JOIN assistants a ON a.id = p.assistant_id WHERE p.code_kind = $1 ORDER BY place"
            }
            PolicyColumn::Pairing => {
                "SELECT a.slug AS place, COALESCE(p.pairing, 'auto') AS item FROM assistants a \
                 LEFT JOIN assistant_device_policy p ON p.assistant_id = a.id \
                 WHERE COALESCE(p.pairing, 'auto') = $1 ORDER BY place"
            }
        };
        let rows = sqlx::query(sql)
            .bind(value)
            .fetch_all(&self.store.pool)
            .await?;
        exposures(rows)
    }
}

/// A column of the device policy the audit looks at.
#[derive(Debug, Clone, Copy)]
pub enum PolicyColumn {
    CodeKind,
    Pairing,
}
