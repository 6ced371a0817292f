//! What every request shares: the store, the settings, the token service, the directory.

use crate::directory::Directory;
use crate::settings::Settings;
use bastion_auth::keys::DerivedKeys;
use bastion_auth::signing_key::SigningKeys;
use bastion_auth::tokens::TokenService;
use bastion_store::audit::NewEvent;
use bastion_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub settings: Settings,
    pub tokens: TokenService,
    /// Keys derived from the master key, one per purpose.
    pub keys: DerivedKeys,
    /// Seals secrets at rest (provider keys) under per-workspace keys.
    pub vault: bastion_vault::Vault,
    /// Keys derived from previous master keys: they open what was sealed before a rotation.
    pub previous_keys: Vec<DerivedKeys>,
    /// Failed sign-in attempts per account and IP.
    pub attempts: crate::attempts::Attempts,
    /// Request-rate limits of API keys: Redis across nodes when configured.
    pub rates: bastion_auth::rate::RateLimiter,
    /// Every route's request rates per address and principal, on this node (`flow::rate`).
    pub request_rates: bastion_auth::rate::RateLimiter,
    /// Refusals audited in the last minute, by principal, method and route (see
    /// `flow::authorize`), so refused requests in a loop write one event a minute.
    pub recent_denials: moka::sync::Cache<String, ()>,
    /// Single-use nonces (OAuth state): Redis when configured, else the store.
    pub nonces: crate::nonces::NonceStore,
    pub directory: Directory,
    pub metrics: PrometheusHandle,
    /// OAuth/OIDC sign-in: the configured providers and their cached discovery.
    pub oauth: bastion_auth::oauth::OAuth,
    /// The conversation runtime: provider clients, model routes, usage, call records.
    pub chat: crate::chat::Chat,
    /// Device channels open on this node and the limits on guessing activation codes.
    pub devices: crate::devices::DeviceRuntime,
}

/// Why the application state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("master key: {0}")]
    Vault(#[from] bastion_vault::VaultError),
    #[error("model provider client: {0}")]
    Provider(#[from] bastion_runtime::ProviderError),
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Store,
        settings: Settings,
        signing_keys: &SigningKeys,
        master_key: &[u8],
        previous_master_keys: &[&[u8]],
        redis: Option<bastion_auth::shared_redis::ConnectionManager>,
        metrics: PrometheusHandle,
    ) -> Result<Self, StateError> {
        let previous = previous_master_keys
            .iter()
            .map(|k| bastion_vault::MasterKey::from_bytes(k))
            .collect::<Result<Vec<_>, _>>()?;
        let vault =
            bastion_vault::Vault::new(bastion_vault::MasterKey::from_bytes(master_key)?, previous);
        let previous_keys = previous_master_keys
            .iter()
            .map(|k| DerivedKeys::from_master(k))
            .collect();
        let tokens = TokenService::new(
            &signing_keys.current,
            &signing_keys.retired_slices(),
            &settings.issuer,
            settings.access_token_ttl_secs,
        );
        let keys = DerivedKeys::from_master(master_key);
        let nonces = match &redis {
            Some(conn) => crate::nonces::NonceStore::Redis(bastion_auth::nonce::RedisNonces::new(
                conn.clone(),
                "bastion:nonce:",
            )),
            None => crate::nonces::NonceStore::Embedded(store.clone()),
        };
        let directory = Directory::new(store.clone(), Duration::from_secs(settings.cache_ttl_secs));
        let oauth = crate::oauth::build(&settings, &keys);
        let chat = crate::chat::Chat::new(store.clone(), &settings)?;
        let devices = crate::devices::DeviceRuntime::new(&settings, redis.clone());
        Ok(AppState(Arc::new(Inner {
            chat,
            devices,
            vault,
            previous_keys,
            store,
            settings,
            tokens,
            keys,
            nonces,
            rates: match &redis {
                Some(conn) => bastion_auth::rate::RateLimiter::redis(conn.clone(), "bastion:rate:"),
                None => bastion_auth::rate::RateLimiter::memory(),
            },
            request_rates: bastion_auth::rate::RateLimiter::memory(),
            recent_denials: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            attempts: crate::attempts::Attempts::new(redis),
            directory,
            metrics,
            oauth,
        })))
    }

    /// Appends an audit event. A failure to record is logged and counted but does not undo
    /// the action it describes, which has already been committed.
    pub async fn audit(&self, event: NewEvent) {
        if let Err(e) = self.store.audit().append(event).await {
            metrics::counter!("bastion_audit_write_failures_total").increment(1);
            tracing::error!(error = %e, "audit event could not be recorded");
        }
    }
}
