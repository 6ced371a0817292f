//! bastion's store: repositories over sqlx with one code path for SQLite and PostgreSQL
//! (the `Any` driver, one set of migrations that both accept).
//!
//! Tenant data (an assistant's members, domains, invitations; a workspace's assistants and
//! audit log) is reachable only through a [`scope::AssistantScope`] or
//! [`scope::WorkspaceScope`], and those can only be obtained from a [`scope::Grant`] that this
//! crate loaded for a user: a handler cannot read another tenant's rows by mistake.

pub mod api_keys;
pub mod assistant_settings;
pub mod assistants;
pub mod audit;
pub mod conversations;
pub mod devices;
pub mod domains;
pub mod error;
pub mod feedback;
pub mod identities;
pub mod invitations;
pub mod llm_calls;
pub mod memberships;
pub mod memories;
pub mod mfa;
pub mod nonces;
pub mod ownership;
pub mod provider_keys;
pub mod roles;
pub mod scope;
pub mod security;
pub mod sessions;
pub mod tools;
pub mod usage;
pub mod users;
pub mod workspaces;

mod row;
mod sealed;
#[cfg(test)]
mod testing;

pub use api_keys::KeyGrant;
pub use error::StoreError;
pub use scope::{AssistantScope, Grant, WorkspaceGrant, WorkspaceScope};

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;
use std::path::Path;
use std::time::Duration;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A transaction for a change. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`, waiting its turn): a deferred transaction that reads and then writes fails at
/// once (`SQLITE_BUSY_SNAPSHOT`, no waiting) when another connection committed in between.
pub(crate) async fn begin(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    } else {
        Ok(pool.begin().await?)
    }
}

impl Store {
    /// The SQLite URL for the embedded default: `bastion.db` in the data directory.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("bastion.db").display()
        )
    }

    /// Opens the database at `url` (`sqlite://…` or `postgres://…`) and runs pending migrations.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(
                "database_url must start with sqlite:// or postgres://".into(),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; it is a property of the file, so
            // setting it once covers every connection of the pool.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            audit_lock: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness: one round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// How many secrets sealed under the master key the store holds (provider keys, TOTP
    /// secrets): a store with any must never meet a new master key by accident.
    pub async fn sealed_secret_count(&self) -> Result<i64> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM provider_keys WHERE secret <> '') + \
             (SELECT COUNT(*) FROM users WHERE totp_secret IS NOT NULL) + \
             (SELECT COUNT(*) FROM users WHERE totp_pending_secret IS NOT NULL) + \
             (SELECT COUNT(*) FROM mcp_servers WHERE credential IS NOT NULL) + \
             (SELECT COUNT(*) FROM devices WHERE hmac_key IS NOT NULL) AS n",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(sqlx::Row::try_get(&r, "n")?)
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users { pool: &self.pool }
    }
    pub fn workspaces(&self) -> workspaces::Workspaces<'_> {
        workspaces::Workspaces { pool: &self.pool }
    }
    pub fn assistants(&self) -> assistants::Assistants<'_> {
        assistants::Assistants { pool: &self.pool }
    }
    pub fn domains(&self) -> domains::Domains<'_> {
        domains::Domains { pool: &self.pool }
    }
    pub fn memberships(&self) -> memberships::Memberships<'_> {
        memberships::Memberships { pool: &self.pool }
    }
    pub fn mfa(&self) -> mfa::Mfa<'_> {
        mfa::Mfa { pool: &self.pool }
    }
    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions { pool: &self.pool }
    }
    pub fn identities(&self) -> identities::Identities<'_> {
        identities::Identities { pool: &self.pool }
    }
    pub fn api_keys(&self) -> api_keys::ApiKeys<'_> {
        api_keys::ApiKeys { pool: &self.pool }
    }
    pub fn roles(&self) -> roles::Roles<'_> {
        roles::Roles { pool: &self.pool }
    }
    pub fn ownership(&self) -> ownership::Ownership<'_> {
        ownership::Ownership { pool: &self.pool }
    }

    pub fn invitations(&self) -> invitations::Invitations<'_> {
        invitations::Invitations { pool: &self.pool }
    }
    pub fn nonces(&self) -> nonces::Nonces<'_> {
        nonces::Nonces { pool: &self.pool }
    }
    pub fn provider_keys(&self) -> provider_keys::ProviderKeys<'_> {
        provider_keys::ProviderKeys { pool: &self.pool }
    }
    pub fn assistant_settings(&self) -> assistant_settings::Settings<'_> {
        assistant_settings::Settings { pool: &self.pool }
    }
    pub fn conversations(&self) -> conversations::Conversations<'_> {
        conversations::Conversations { pool: &self.pool }
    }
    pub fn memories(&self) -> memories::Memories<'_> {
        memories::Memories { pool: &self.pool }
    }
    pub fn feedback(&self) -> feedback::FeedbackRepo<'_> {
        feedback::FeedbackRepo { pool: &self.pool }
    }
    pub fn llm_calls(&self) -> llm_calls::LlmCalls<'_> {
        llm_calls::LlmCalls { store: self }
    }
    pub fn usage(&self) -> usage::Usage<'_> {
        usage::Usage { store: self }
    }
    pub fn devices(&self) -> devices::Devices<'_> {
        devices::Devices { pool: &self.pool }
    }
    pub fn tools(&self) -> tools::Tools<'_> {
        tools::Tools { pool: &self.pool }
    }
    pub fn security(&self) -> security::Security<'_> {
        security::Security { store: self }
    }
    pub fn audit(&self) -> audit::AuditLog<'_> {
        audit::AuditLog {
            pool: &self.pool,
            lock: &self.audit_lock,
        }
    }
}

/// Milliseconds since the Unix epoch: the one time format of the schema.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
