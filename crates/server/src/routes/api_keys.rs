//! Assistant API keys (capability keys.manage): secrets for programs, `bst_` and 32 random
//! bytes, shown once and stored as a hash with a short visible prefix. A key holds a subset
//! of the capabilities of whoever creates it (a key creating a key included), never
//! members.manage (whom to let in is a person's decision) and never ownership; it may be
//! limited to source address ranges, a request rate and a monthly spend, may expire, and is
//! revoked at once.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, SUCCESS};
use crate::flow::authenticate::API_KEY_PREFIX;
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::members::ensure_may_grant;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_auth::tokens;
use bastion_core::{ApiKeyId, Capability, CapabilitySet, Holding};
use bastion_store::api_keys::{ApiKey, NewApiKey};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// How many characters of a key stay visible: `bst_` and eight more, enough to tell a
/// team's keys apart, far too few to guess the rest from.
const VISIBLE_PREFIX_LEN: usize = API_KEY_PREFIX.len() + 8;
const MAX_CIDRS: usize = 32;
const MAX_RATE_PER_MINUTE: u32 = 1_000_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// At least one; each must be held by the caller; never `members.manage`.
    pub capabilities: Vec<Capability>,
    /// RFC 3339; the key stops working then. Omitted: it does not expire.
    pub expires_at: Option<String>,
    /// Source addresses or CIDR ranges the key works from (at most 32). Omitted or empty:
    /// anywhere.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// Requests per minute; past it, 429 with `Retry-After`. Omitted: no limit.
    pub rate_limit_per_minute: Option<u32>,
    /// US dollars of model spend per calendar month the key may cause.
    pub monthly_spend_cap_usd: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub capabilities: Vec<Capability>,
    pub allowed_cidrs: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub monthly_spend_cap_usd: Option<f64>,
    pub expires_at: Option<String>,
    /// The principal that created it: `user:<id>` or `key:<id>`.
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.is_expired(bastion_store::now_ms()) {
            "expired"
        } else {
            "active"
        };
        ApiKeyView {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            capabilities: k.capabilities.to_vec(),
            allowed_cidrs: k.allowed_cidrs.iter().map(|c| c.to_string()).collect(),
            rate_limit_per_minute: k.rate_limit_per_minute,
            monthly_spend_cap_usd: k.monthly_spend_cap_micros.map(validate::micros_usd),
            expires_at: k.expires_at.map(rfc3339),
            created_by: k.created_by.clone(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            status,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub api_key: ApiKeyView,
    /// The key itself, shown this once: only its hash is kept.
    pub key: String,
}

fn capabilities(caps: &[Capability]) -> ApiResult<CapabilitySet> {
    if caps.is_empty() {
        return Err(ApiError::Unprocessable(
            "capabilities: name at least one".into(),
        ));
    }
    if caps.contains(&Capability::MembersManage) {
        return Err(ApiError::Unprocessable(
            "capabilities: an API key cannot hold members.manage; members are managed by people"
                .into(),
        ));
    }
    Ok(CapabilitySet::of(caps))
}

fn cidrs(input: &[String]) -> ApiResult<Vec<IpNet>> {
    if input.len() > MAX_CIDRS {
        return Err(ApiError::Unprocessable(format!(
            "allowed_cidrs: at most {MAX_CIDRS} ranges"
        )));
    }
    input
        .iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    ApiError::Unprocessable(format!(
                        "allowed_cidrs: {s:?} is neither an address nor a CIDR range"
                    ))
                })
        })
        .collect()
}

fn expiry(input: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(s) = input else { return Ok(None) };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::Unprocessable("expires_at: expected an RFC 3339 time".into()))?;
    let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::Unprocessable("expires_at: out of range".into()))?;
    if ms <= bastion_store::now_ms() {
        return Err(ApiError::Unprocessable(
            "expires_at: must be in the future".into(),
        ));
    }
    Ok(Some(ms))
}

fn rate(input: Option<u32>) -> ApiResult<Option<u32>> {
    match input {
        Some(0) => Err(ApiError::Unprocessable(
            "rate_limit_per_minute: at least 1 (revoke the key to stop it)".into(),
        )),
        Some(n) if n > MAX_RATE_PER_MINUTE => Err(ApiError::Unprocessable(format!(
            "rate_limit_per_minute: at most {MAX_RATE_PER_MINUTE}"
        ))),
        other => Ok(other),
    }
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [ApiKeyView]), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    let keys = state.store.api_keys().list(&at.scope).await?;
    Ok(Json(keys.iter().map(ApiKeyView::from).collect()))
}

/// Creates a key holding capabilities the caller holds. The key is in the response once.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = ApiKeyCreate,
    responses((status = 201, body = ApiKeyCreated), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<ApiKeyCreate>,
) -> ApiResult<(StatusCode, Json<ApiKeyCreated>)> {
    let name = validate::display_name("name", &input.name)?;
    let caps = capabilities(&input.capabilities)?;
    let holding = Holding {
        capabilities: caps,
        owner: false,
    };
    let what = json!({"create_api_key": name, "capabilities": caps.to_vec()});
    ensure_may_grant(&state, actor, &meta, &at, holding, what).await?;
    let allowed_cidrs = cidrs(&input.allowed_cidrs)?;
    let secret = tokens::random_token(API_KEY_PREFIX);
    let new = NewApiKey {
        name: &name,
        prefix: &secret[..VISIBLE_PREFIX_LEN],
        key_hash: &tokens::token_hash(&secret),
        capabilities: caps,
        allowed_cidrs: &allowed_cidrs,
        rate_limit_per_minute: rate(input.rate_limit_per_minute)?,
        monthly_spend_cap_micros: validate::usd_micros(
            "monthly_spend_cap_usd",
            input.monthly_spend_cap_usd,
        )?,
        expires_at: expiry(input.expires_at.as_deref())?,
    };
    let key = state.store.api_keys().create(&at.scope, new).await?;
    state
        .audit(events::on_assistant(&at, actor, &meta, "api_key.create", SUCCESS, json!({"api_key": key.id.to_string(), "prefix": key.prefix, "capabilities": caps.to_vec()}),
        ))
        .await;
    let body = ApiKeyCreated {
        api_key: ApiKeyView::from(&key),
        key: secret,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/api-keys/{key_id}", tag = "api-keys", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("key_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ApiKeyView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<ApiKeyId>,
) -> ApiResult<Json<ApiKeyView>> {
    let key = state.store.api_keys().get(&at.scope, id).await?;
    Ok(Json(ApiKeyView::from(&key)))
}

/// Revokes a key: it stops working at once on this node, and on every node within the
/// directory's cache lifetime.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/api-keys/{key_id}", tag = "api-keys", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("key_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(id): ItemParam<ApiKeyId>,
) -> ApiResult<StatusCode> {
    let (key, revoked_now) = state.store.api_keys().revoke(&at.scope, id).await?;
    state.directory.forget_api_keys();
    if revoked_now {
        state
            .audit(events::on_assistant(
                &at,
                actor,
                &meta,
                "api_key.revoke",
                SUCCESS,
                json!({"api_key": key.id.to_string(), "prefix": key.prefix}),
            ))
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
