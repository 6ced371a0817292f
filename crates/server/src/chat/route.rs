//! Which model an assistant's calls go to, with which key: its settings and its provider key,
//! opened from the vault. Cached per assistant (the vault is not opened per request) and
//! dropped when the settings or any provider key change.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use bastion_core::{AssistantId, ProviderKeyId};
use bastion_runtime::{Endpoint, ProviderKind};
use bastion_store::assistant_settings::AssistantSettings;
use bastion_store::provider_keys::{Provider, VAULT_KIND};
use bastion_store::AssistantScope;
use bastion_vault::Binding;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Where an assistant's model calls go.
pub struct ModelRoute {
    pub settings: AssistantSettings,
    pub key_id: ProviderKeyId,
    pub provider: Provider,
    pub endpoint: Endpoint,
    pub key_cap_micros: Option<i64>,
}

pub struct Routes {
    cache: moka::sync::Cache<AssistantId, Arc<ModelRoute>>,
}

impl Routes {
    pub fn new(ttl: Duration) -> Routes {
        Routes {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// After an assistant's settings changed.
    pub fn forget(&self, assistant: AssistantId) {
        self.cache.invalidate(&assistant);
    }

    /// After a provider key changed: any assistant may have been using it.
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    pub async fn get(
        &self,
        state: &AppState,
        scope: &AssistantScope,
    ) -> ApiResult<Arc<ModelRoute>> {
        if let Some(r) = self.cache.get(&scope.assistant_id()) {
            return Ok(r);
        }
        let route = Arc::new(load(state, scope).await?);
        self.cache.insert(scope.assistant_id(), route.clone());
        Ok(route)
    }
}

fn not_configured(what: &str) -> ApiError {
    ApiError::Conflict(format!(
        "this assistant cannot answer yet: {what} (an admin sets it in the assistant's settings)"
    ))
}

async fn load(state: &AppState, scope: &AssistantScope) -> ApiResult<ModelRoute> {
    let settings = state
        .store
        .assistant_settings()
        .get(scope.assistant_id())
        .await?;
    if settings.model.is_empty() {
        return Err(not_configured("it has no model"));
    }
    let named = settings
        .provider_key_id
        .ok_or_else(|| not_configured("it has no provider key"))?;
    let key = state
        .store
        .provider_keys()
        .usable_for(scope, named)
        .await?
        .ok_or_else(|| not_configured("its provider key is not active and no other is"))?;
    let record = key.id.to_string();
    let binding = Binding {
        workspace: key.workspace_id,
        kind: VAULT_KIND,
        record: &record,
    };
    let secret = state
        .vault
        .open(&binding, &key.sealed_secret)
        .map_err(|e| ApiError::Internal(format!("provider key {}: {e}", key.id)))?;
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| ApiError::Internal(format!("provider key {} is not text", key.id)))?;
    let kind = match key.provider {
        Provider::Anthropic => ProviderKind::Anthropic,
        Provider::Openai | Provider::OpenaiCompatible => ProviderKind::OpenAi,
    };
    let base_url = match &key.base_url {
        Some(u) => url::Url::parse(u)
            .map_err(|_| ApiError::Internal(format!("provider key {} base_url", key.id)))?,
        None => Endpoint::default_base_url(kind),
    };
    Ok(ModelRoute {
        settings,
        key_id: key.id,
        provider: key.provider,
        endpoint: Endpoint {
            kind,
            base_url,
            api_key: SecretString::from(secret),
        },
        key_cap_micros: key.monthly_spend_cap_micros,
    })
}
