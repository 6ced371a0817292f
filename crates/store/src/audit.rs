//! The audit log: append-only, one hash chain per workspace (and one, `platform`, for events
//! that belong to no workspace, such as sign-ins). Each event's hash is SHA-256 over a
//! canonical encoding of its fields and the previous event's hash, so changing any stored
//! byte breaks the chain at that event.

use crate::scope::WorkspaceScope;
use crate::{now_ms, Result, StoreError};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// The chain for events that belong to no workspace.
pub const PLATFORM_CHAIN: &str = "platform";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to record; the log assigns sequence, time, id and hashes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub chain: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub chain: String,
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    /// SHA-256 over every field but `hash`, each length-prefixed so no two different
    /// events encode alike.
    pub fn compute_hash(&self) -> String {
        let seq = self.seq.to_string();
        let at = self.at.to_string();
        let fields: [&str; 11] = [
            &self.chain,
            &seq,
            &self.id,
            &at,
            &self.actor,
            &self.action,
            &self.target,
            &self.outcome,
            &self.ip,
            &self.detail,
            &self.prev_hash,
        ];
        let mut h = Sha256::new();
        h.update(b"bastion-audit-v1");
        for f in fields {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Where and why a chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub chain: String,
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub chains: usize,
    pub events: usize,
    pub broken: Vec<BrokenLink>,
}

pub struct AuditLog<'a> {
    pub(crate) pool: &'a AnyPool,
    pub(crate) lock: &'a tokio::sync::Mutex<()>,
}

const COLUMNS: &str =
    "chain, seq, id, at, actor, action, target, outcome, ip, detail, prev_hash, hash";

fn event(r: &AnyRow) -> Result<Event> {
    Ok(Event {
        chain: r.try_get("chain")?,
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        ip: r.try_get("ip")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

impl AuditLog<'_> {
    /// Appends an event to the end of its chain. Concurrent appenders (other nodes, the CLI)
    /// collide on the (chain, seq) key and retry on the new tail.
    pub async fn append(&self, new: NewEvent) -> Result<Event> {
        let _one_writer_per_process = self.lock.lock().await;
        let detail = new.detail.to_string();
        let mut last_err = None;
        for _ in 0..8 {
            match self.try_append(&new, &detail).await {
                Ok(e) => return Ok(e),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or(StoreError::Conflict("audit chain busy".into())))
    }

    async fn try_append(&self, new: &NewEvent, detail: &str) -> Result<Event> {
        let mut tx = crate::begin(self.pool).await?;
        let tail = sqlx::query(
            "SELECT seq, hash FROM audit_events WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&new.chain)
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, prev_hash) = match tail {
            Some(r) => (
                r.try_get::<i64, _>("seq")? + 1,
                r.try_get::<String, _>("hash")?,
            ),
            None => (1, GENESIS.to_string()),
        };
        let mut e = Event {
            chain: new.chain.clone(),
            seq,
            id: uuid::Uuid::now_v7().to_string(),
            at: now_ms(),
            actor: new.actor.clone(),
            action: new.action.clone(),
            target: new.target.clone(),
            outcome: new.outcome.clone(),
            ip: new.ip.clone(),
            detail: detail.to_string(),
            prev_hash,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        sqlx::query(
            "INSERT INTO audit_events (chain, seq, id, at, actor, action, target, outcome, ip, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&e.chain)
        .bind(e.seq)
        .bind(&e.id)
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(&e.ip)
        .bind(&e.detail)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(e)
    }

    /// One page of the scoped workspace's events, newest first, strictly before `before_seq`.
    pub async fn page(
        &self,
        scope: &WorkspaceScope,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE chain = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(scope.workspace_id().to_string())
            .bind(before_seq.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.pool)
            .await?;
        rows.iter().map(event).collect()
    }

    /// Every event of a chain in order; unscoped, so only for verification inside this crate.
    async fn chain(&self, chain: &str) -> Result<Vec<Event>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE chain = $1 ORDER BY seq");
        let rows = sqlx::query(&sql).bind(chain).fetch_all(self.pool).await?;
        rows.iter().map(event).collect()
    }

    /// Walks every chain and reports, per chain, the first event whose link or hash is wrong.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let chains = sqlx::query("SELECT DISTINCT chain FROM audit_events ORDER BY chain")
            .fetch_all(self.pool)
            .await?;
        let mut report = VerifyReport::default();
        for c in chains {
            let chain: String = c.try_get("chain")?;
            report.chains += 1;
            let events = self.chain(&chain).await?;
            report.events += events.len();
            if let Some(b) = first_broken(&events) {
                report.broken.push(b);
            }
        }
        Ok(report)
    }
}

/// The first event of an ordered chain that does not verify.
pub fn first_broken(events: &[Event]) -> Option<BrokenLink> {
    let mut prev_hash = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let broken = |reason: &str| BrokenLink {
            chain: e.chain.clone(),
            seq: e.seq,
            id: e.id.clone(),
            reason: reason.to_string(),
        };
        if e.seq != i as i64 + 1 {
            return Some(broken("sequence gap: an event before it is missing"));
        }
        if e.prev_hash != prev_hash {
            return Some(broken("prev_hash does not match the previous event's hash"));
        }
        if e.compute_hash() != e.hash {
            return Some(broken("hash does not match the event's contents"));
        }
        prev_hash = e.hash.clone();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(n: i64) -> Vec<Event> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = Event {
                    chain: "w".into(),
                    seq,
                    id: format!("id{seq}"),
                    at: seq * 10,
                    actor: "u".into(),
                    action: "a".into(),
                    target: "t".into(),
                    outcome: "success".into(),
                    ip: "127.0.0.1".into(),
                    detail: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(first_broken(&chain_of(5)), None);
    }

    #[test]
    fn a_changed_field_names_that_event() {
        let mut events = chain_of(5);
        events[2].actor = "someone-else".into();
        let b = first_broken(&events).expect("tampering must be detected");
        assert_eq!(b.seq, 3);
    }

    #[test]
    fn a_recomputed_hash_breaks_the_next_link() {
        let mut events = chain_of(5);
        events[1].target = "x".into();
        events[1].hash = events[1].compute_hash();
        let b = first_broken(&events).expect("re-hashing one event must break the next link");
        assert_eq!(b.seq, 3);
    }

    #[test]
    fn a_deleted_event_is_a_gap() {
        let mut events = chain_of(5);
        events.remove(1);
        assert_eq!(first_broken(&events).map(|b| b.seq), Some(3));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = chain_of(1).remove(0);
        let mut b = a.clone();
        a.actor = "ab".into();
        a.action = "c".into();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
    }
}
