//! What every request shares: the store, the settings, the token service, the directory.

use crate::auth::tokens::TokenService;
use crate::directory::Directory;
use crate::settings::Settings;
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
    pub directory: Directory,
    pub metrics: PrometheusHandle,
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
        signing_key: &[u8],
        metrics: PrometheusHandle,
    ) -> Self {
        let tokens = TokenService::new(
            signing_key,
            &settings.issuer,
            settings.access_token_ttl_secs,
        );
        let directory = Directory::new(store.clone(), Duration::from_secs(settings.cache_ttl_secs));
        AppState(Arc::new(Inner {
            store,
            settings,
            tokens,
            directory,
            metrics,
        }))
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
