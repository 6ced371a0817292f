//! The hooks an external MQTT broker (EMQX's HTTP authentication and authorization, or any
//! broker with such hooks) calls when it carries the devices' connections instead of
//! bastion's own endpoint: `POST /mqtt/hooks/auth` checks a CONNECT's credentials exactly as
//! bastion's endpoint does, and `POST /mqtt/hooks/acl` allows a device its own two topics and
//! nothing else. The broker presents `mqtt_hook_secret` as a bearer token; without the
//! setting the hooks do not exist (404). Answers are EMQX's: `{"result": "allow" | "deny"}`.

use crate::devices::mqtt::{device_of, topics, Refused};
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::ApiJson;
use crate::routes::health::constant_time_eq;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use bastion_core::DeviceId;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthHook {
    pub clientid: String,
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclHook {
    pub clientid: String,
    pub username: String,
    pub topic: String,
    /// `publish` or `subscribe`.
    pub action: String,
}

#[derive(Serialize, ToSchema, Debug, PartialEq, Eq)]
pub struct HookAnswer {
    /// `allow` or `deny`.
    pub result: &'static str,
}

const ALLOW: HookAnswer = HookAnswer { result: "allow" };
const DENY: HookAnswer = HookAnswer { result: "deny" };

/// 404 without the setting; 401 unless the broker presents the secret.
fn broker(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(expected) = &state.settings.mqtt_hook_secret else {
        return Err(ApiError::NotFound);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.expose_secret().as_bytes()) {
        return Err(ApiError::Unauthenticated);
    }
    Ok(())
}

/// Whether a device's CONNECT may go through (its id, client id and live channel token).
#[utoipa::path(post, path = "/mqtt/hooks/auth", tag = "devices", request_body = AuthHook,
    responses((status = 200, body = HookAnswer), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn auth(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(hook): ApiJson<AuthHook>,
) -> ApiResult<Json<HookAnswer>> {
    broker(&state, &headers)?;
    match device_of(&state, &hook.clientid, &hook.username, &hook.password).await {
        Ok(_) => Ok(Json(ALLOW)),
        Err(Refused::NotAuthorized) => {
            metrics::counter!("bastion_device_refused_total", "reason" => "mqtt_hook").increment(1);
            Ok(Json(DENY))
        }
        Err(Refused::Unavailable) => Err(ApiError::Unavailable),
    }
}

/// Whether a device may publish or subscribe to a topic: its own `up` to publish, its own
/// `down` to subscribe, while it is bound with a live token; nothing else, no wildcards.
#[utoipa::path(post, path = "/mqtt/hooks/acl", tag = "devices", request_body = AclHook,
    responses((status = 200, body = HookAnswer), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn acl(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(hook): ApiJson<AclHook>,
) -> ApiResult<Json<HookAnswer>> {
    broker(&state, &headers)?;
    let Ok(id) = hook.username.parse::<DeviceId>() else {
        return Ok(Json(DENY));
    };
    let Some(device) = state.store.devices().by_id(id).await? else {
        return Ok(Json(DENY));
    };
    if !device.may_connect(bastion_store::now_ms())
        || hook.clientid != crate::devices::mqtt::client_id(&device)
    {
        return Ok(Json(DENY));
    }
    let own = topics(&device);
    let allowed = match hook.action.as_str() {
        "publish" => hook.topic == own.up,
        "subscribe" => hook.topic == own.down,
        _ => false,
    };
    Ok(Json(if allowed { ALLOW } else { DENY }))
}
