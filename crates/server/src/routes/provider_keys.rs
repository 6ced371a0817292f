//! A workspace's provider keys (capability keys.manage): credentials for model providers,
//! sealed by the vault before they are stored. The secret is write-only: answers, logs and
//! audit events carry its last four characters and nothing else. Several keys per provider
//! let a rotation be seamless: add the new key as `standby`, promote it to `active`, then
//! revoke the old one (which erases its secret).

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::{Caller, InWorkspace, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::ProviderKeyId;
use bastion_store::provider_keys::{
    KeyStatus, Provider, ProviderKey, ProviderKeyPatch, VAULT_KIND,
};
use bastion_vault::Binding;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

const MIN_SECRET: usize = 8;
const MAX_SECRET: usize = 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyCreate {
    pub provider: Provider,
    /// What the key is, 1 to 200 characters.
    pub label: String,
    /// The provider's API key. Stored sealed; never shown again but for its last four
    /// characters.
    #[schema(value_type = String, format = Password)]
    pub secret: SecretString,
    /// `http(s)://…`; required for `openai-compatible`, optional otherwise (a proxy).
    pub base_url: Option<String>,
    /// `active` (default) or `standby`.
    pub status: Option<KeyStatus>,
    pub monthly_spend_cap_usd: Option<f64>,
}

/// The fields an update may change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyUpdate {
    pub label: Option<String>,
    /// `revoked` is final and erases the secret.
    pub status: Option<KeyStatus>,
    pub monthly_spend_cap_usd: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderKeyView {
    #[schema(format = Uuid)]
    pub id: String,
    pub provider: Provider,
    pub label: String,
    pub base_url: Option<String>,
    /// The last four characters of the secret: all of it anyone sees.
    pub last4: String,
    pub status: KeyStatus,
    pub monthly_spend_cap_usd: Option<f64>,
    /// What calls through the key cost this calendar month (UTC), at the configured prices.
    pub spent_this_month_usd: f64,
    /// Tokens in and out through the key this month.
    pub tokens_this_month: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl ProviderKeyView {
    /// The view with the key's usage this month (as this node counts it).
    async fn with_usage(state: &AppState, k: &ProviderKey) -> ApiResult<ProviderKeyView> {
        let mut v = ProviderKeyView::from(k);
        let month = crate::chat::meter::month(time::OffsetDateTime::now_utc());
        let used = state
            .chat
            .meter
            .used(&(format!("provider_key:{}", k.id), month))
            .await?;
        v.spent_this_month_usd = validate::micros_usd(used.cost_micros);
        v.tokens_this_month = used.tokens();
        Ok(v)
    }
}

impl From<&ProviderKey> for ProviderKeyView {
    fn from(k: &ProviderKey) -> Self {
        ProviderKeyView {
            id: k.id.to_string(),
            provider: k.provider,
            label: k.label.clone(),
            base_url: k.base_url.clone(),
            last4: k.last4.clone(),
            status: k.status,
            monthly_spend_cap_usd: k.monthly_spend_cap_micros.map(validate::micros_usd),
            spent_this_month_usd: 0.0,
            tokens_this_month: 0,
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
        }
    }
}

/// The secret's last four characters, after checking it looks like a key.
fn last4(secret: &SecretString) -> ApiResult<String> {
    secret_last4("secret", secret)
}

/// The last four characters of the credential in `field`, after checking it looks like one
/// (no spaces or control characters: it goes into a header).
pub(crate) fn secret_last4(field: &str, secret: &SecretString) -> ApiResult<String> {
    let s = secret.expose_secret();
    let n = s.chars().count();
    if !(MIN_SECRET..=MAX_SECRET).contains(&n)
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::Unprocessable(format!(
            "{field}: {MIN_SECRET} to {MAX_SECRET} characters, no spaces or control characters"
        )));
    }
    Ok(s.chars().skip(n - 4).collect())
}

fn base_url(provider: Provider, url: Option<&str>) -> ApiResult<Option<String>> {
    let Some(raw) = url else {
        if provider == Provider::OpenaiCompatible {
            return Err(ApiError::Unprocessable(
                "base_url: required for an openai-compatible provider".into(),
            ));
        }
        return Ok(None);
    };
    let parsed = url::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .ok_or_else(|| {
            ApiError::Unprocessable(
                "base_url: an http(s) URL with a host and no credentials in it".into(),
            )
        })?;
    Ok(Some(parsed.to_string()))
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    meta: &Meta,
    at: &InWorkspace,
    action: &str,
    key: &ProviderKey,
) {
    state
        .audit(events::event(
            at.scope.workspace_id(),
            events::actor(caller.principal()),
            meta,
            action,
            key.id,
            SUCCESS,
            json!({"provider": key.provider.as_str(), "last4": key.last4, "status": key.status.as_str()}),
        ))
        .await;
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/provider-keys", tag = "provider-keys", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [ProviderKeyView]), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InWorkspace,
) -> ApiResult<Json<Vec<ProviderKeyView>>> {
    let keys = state.store.provider_keys().list(&at.scope).await?;
    let mut views = Vec::with_capacity(keys.len());
    for k in &keys {
        views.push(ProviderKeyView::with_usage(&state, k).await?);
    }
    Ok(Json(views))
}

/// Stores a provider key, sealed under the workspace's data key.
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/provider-keys", tag = "provider-keys", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid)), request_body = ProviderKeyCreate,
    responses((status = 201, body = ProviderKeyView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    at: InWorkspace,
    ApiJson(input): ApiJson<ProviderKeyCreate>,
) -> ApiResult<(StatusCode, Json<ProviderKeyView>)> {
    let status = match input.status.unwrap_or(KeyStatus::Active) {
        KeyStatus::Revoked => {
            return Err(ApiError::Unprocessable(
                "status: a new key is active or standby".into(),
            ))
        }
        s => s,
    };
    let id = ProviderKeyId::new();
    let record = id.to_string();
    let binding = Binding {
        workspace: at.scope.workspace_id(),
        kind: VAULT_KIND,
        record: &record,
    };
    let now = bastion_store::now_ms();
    let key = ProviderKey {
        id,
        workspace_id: at.scope.workspace_id(),
        provider: input.provider,
        label: validate::display_name("label", &input.label)?,
        base_url: base_url(input.provider, input.base_url.as_deref())?,
        last4: last4(&input.secret)?,
        sealed_secret: state
            .vault
            .seal(&binding, input.secret.expose_secret().as_bytes())
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        status,
        monthly_spend_cap_micros: validate::usd_micros(
            "monthly_spend_cap_usd",
            input.monthly_spend_cap_usd,
        )?,
        created_at: now,
        updated_at: now,
    };
    state.store.provider_keys().create(&at.scope, &key).await?;
    // Assistants may be calling through it: their cached routes are read again.
    state.chat.routes.forget_all();
    audit(&state, &caller, &meta, &at, "provider_key.create", &key).await;
    Ok((StatusCode::CREATED, Json(ProviderKeyView::from(&key))))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}", tag = "provider-keys", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid), ("provider_key_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ProviderKeyView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InWorkspace,
    ItemParam(id): ItemParam<ProviderKeyId>,
) -> ApiResult<Json<ProviderKeyView>> {
    let key = state.store.provider_keys().get(&at.scope, id).await?;
    Ok(Json(ProviderKeyView::with_usage(&state, &key).await?))
}

/// Renames a key, changes its cap, promotes it (`standby` → `active`), puts it on standby,
/// or revokes it (final; its secret is erased).
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}", tag = "provider-keys", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid), ("provider_key_id" = String, Path, format = Uuid)), request_body = ProviderKeyUpdate,
    responses((status = 200, body = ProviderKeyView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    at: InWorkspace,
    ItemParam(id): ItemParam<ProviderKeyId>,
    ApiJson(input): ApiJson<ProviderKeyUpdate>,
) -> ApiResult<Json<ProviderKeyView>> {
    let patch = ProviderKeyPatch {
        label: input
            .label
            .as_deref()
            .map(|l| validate::display_name("label", l))
            .transpose()?,
        status: input.status,
        monthly_spend_cap_micros: input
            .monthly_spend_cap_usd
            .map(|usd| validate::usd_micros("monthly_spend_cap_usd", Some(usd)))
            .transpose()?,
    };
    let key = state
        .store
        .provider_keys()
        .update(&at.scope, id, patch)
        .await?;
    let action = match input.status {
        Some(KeyStatus::Revoked) => "provider_key.revoke",
        _ => "provider_key.update",
    };
    // Assistants may be calling through it: their cached routes are read again.
    state.chat.routes.forget_all();
    audit(&state, &caller, &meta, &at, action, &key).await;
    Ok(Json(ProviderKeyView::with_usage(&state, &key).await?))
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}", tag = "provider-keys", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid), ("provider_key_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    meta: Meta,
    at: InWorkspace,
    ItemParam(id): ItemParam<ProviderKeyId>,
) -> ApiResult<StatusCode> {
    let key = state.store.provider_keys().delete(&at.scope, id).await?;
    // Assistants may be calling through it: their cached routes are read again.
    state.chat.routes.forget_all();
    audit(&state, &caller, &meta, &at, "provider_key.delete", &key).await;
    Ok(StatusCode::NO_CONTENT)
}
