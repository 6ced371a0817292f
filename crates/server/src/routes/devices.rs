//! An assistant's devices (`…/devices`, capability devices.manage): binding one by the code it
//! shows (looked at first, then confirmed), registering a headless one by MAC, approving,
//! revoking a token, unbinding, the pairing policy. Unbinding and revoking cut the device's
//! open channels at once. A wrong code counts against the guess budgets of the user, the
//! address and everyone (`devices/guesses.rs`).

use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::json::ApiQuery;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::DeviceId;
use bastion_devices::code::{self, CodeHasher, CodeKind};
use bastion_devices::xiaozhi::{mac_suffix, normalize_mac};
use bastion_store::devices::{Device, DeviceStatus, Policy, HMAC_KEY_KIND};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

/// Audits `action` done to device `id` of the authorized assistant.
async fn audit_done(
    state: &AppState,
    at: &InAssistant,
    actor: Actor,
    meta: &Meta,
    (action, kind): (&str, &'static str),
    id: DeviceId,
) {
    state
        .devices
        .events
        .publish(at.scope.assistant_id(), id, kind);
    state
        .audit(events::on_assistant(
            at,
            actor,
            meta,
            action,
            SUCCESS,
            json!({"device": id.to_string()}),
        ))
        .await;
}

#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    #[schema(format = Uuid)]
    pub id: String,
    pub mac: String,
    /// `registered` (awaiting its first contact), `pending_approval` or `bound`.
    pub status: &'static str,
    pub board: String,
    pub app_version: String,
    /// Whether a channel of the device is open on this node.
    pub online: bool,
    pub last_ip: Option<String>,
    pub first_seen_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub bound_at: Option<String>,
    #[schema(format = Uuid)]
    pub owner_id: Option<String>,
    /// The last four characters of its channel token, while it has one.
    pub token_last4: Option<String>,
    pub token_expires_at: Option<String>,
    /// Whether a factory key is registered for it.
    pub factory_key: bool,
}

fn view(state: &AppState, d: &Device) -> DeviceView {
    DeviceView {
        id: d.id.to_string(),
        mac: d.mac.clone(),
        status: d.status.as_str(),
        board: d.board.clone(),
        app_version: d.app_version.clone(),
        online: state.devices.channels.is_online(d.id) || d.online,
        last_ip: d.last_ip.clone(),
        first_seen_at: d.first_seen_at.map(rfc3339),
        last_seen_at: d.last_seen_at.map(rfc3339),
        bound_at: d.bound_at.map(rfc3339),
        owner_id: d.owner_id.map(|u| u.to_string()),
        token_last4: d.token_last4.clone(),
        token_expires_at: d.token_expires_at.map(rfc3339),
        factory_key: d.hmac_key.is_some(),
    }
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/devices", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [DeviceView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let list = state.store.devices().list(&at.scope).await?;
    Ok(Json(list.iter().map(|d| view(&state, d)).collect()))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/devices/{device_id}", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("device_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DeviceView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InAssistant,
    ItemParam(id): ItemParam<DeviceId>,
) -> ApiResult<Json<DeviceView>> {
    let d = state.store.devices().get(&at.scope, id).await?;
    Ok(Json(view(&state, &d)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The code the device shows (6 characters; spaces and dashes are ignored).
    pub code: String,
    /// `false` (the default) only shows which device the code belongs to; `true` binds it.
    #[serde(default)]
    pub confirm: bool,
}

/// What a person sees of a device before they confirm its binding.
#[derive(Serialize, ToSchema)]
pub struct DevicePreview {
    pub board: String,
    /// The last three octets of its MAC address.
    pub mac_suffix: String,
    pub first_seen_at: Option<String>,
    pub app_version: String,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BindAnswer {
    Preview {
        device: DevicePreview,
        confirm_required: bool,
    },
    Bound(DeviceView),
}

/// Binds the device showing `code` to this assistant, with the caller as its owner. Without
/// `confirm: true` nothing is bound: the answer shows which device the code belongs to.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/devices/bind", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = BindRequest,
    responses((status = 200, body = BindAnswer, description = "the device the code belongs to (not bound yet)"),
        (status = 201, body = BindAnswer, description = "bound"), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn bind(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<BindRequest>,
) -> ApiResult<(StatusCode, Json<BindAnswer>)> {
    let Some(owner) = at.scope.user_id() else {
        return Err(ApiError::Forbidden(
            "a device is bound by a person, its owner".into(),
        ));
    };
    let Some(code) = code::normalize(&input.code) else {
        return Err(ApiError::Unprocessable(
            "code: the 6 characters the device shows".into(),
        ));
    };
    let guesses = &state.devices.guesses;
    guesses.check(owner, &meta).await?;
    let hash = CodeHasher::new(state.keys.device_code.as_ref()).hash(&code);
    let now = bastion_store::now_ms();
    let found = state.store.devices().by_code(&hash, now).await?;
    // An unbound device's code binds here, and so does the code of a device registered for
    // this assistant that waits (entering its code is an admin's confirmation); a code of a
    // device registered for or bound to any other assistant is no different from a wrong one.
    let here = at.scope.assistant_id();
    let bindable = |d: &Device| match d.assistant_id {
        None => d.status == DeviceStatus::Unbound,
        Some(a) => {
            a == here
                && d.bound_at.is_none()
                && matches!(
                    d.status,
                    DeviceStatus::Registered | DeviceStatus::PendingApproval
                )
        }
    };
    let Some((d, _)) = found.filter(|(d, _)| bindable(d)) else {
        guesses.failed(owner, &meta).await?;
        state
            .audit(events::on_assistant(
                &at,
                actor,
                &meta,
                "device.bind",
                FAILURE,
                json!({"reason": "no live code matches"}),
            ))
            .await;
        return Err(ApiError::NotFound);
    };
    if !input.confirm {
        return Ok((
            StatusCode::OK,
            Json(BindAnswer::Preview {
                device: DevicePreview {
                    board: d.board.clone(),
                    mac_suffix: mac_suffix(&d.mac),
                    first_seen_at: d.first_seen_at.map(rfc3339),
                    app_version: d.app_version.clone(),
                },
                confirm_required: true,
            }),
        ));
    }
    let policy = state.store.devices().policy(&at.scope).await?;
    let status = if policy.pairing == "approval" {
        DeviceStatus::PendingApproval
    } else {
        DeviceStatus::Bound
    };
    let bound = state
        .store
        .devices()
        .bind(&at.scope, d.id, &hash, owner, status)
        .await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "device.bind",
            SUCCESS,
            json!({"device": bound.id.to_string(), "mac_suffix": mac_suffix(&bound.mac), "status": bound.status.as_str()}),
        ))
        .await;
    state
        .devices
        .events
        .publish(at.scope.assistant_id(), bound.id, bound.status.as_str());
    Ok((
        StatusCode::CREATED,
        Json(BindAnswer::Bound(view(&state, &bound))),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The device's MAC address (its xiaozhi Device-Id).
    pub mac: String,
    /// The serial number a device with a factory key sends.
    pub serial_number: Option<String>,
    /// The device's factory HMAC key, hex (16 to 64 bytes). Stored sealed; with it the device
    /// binds by answering its challenge, without it an admin approves its first contact.
    pub hmac_key_hex: Option<String>,
}

/// Registers a headless device by MAC for this assistant, with the caller as owner. It still
/// needs its first authenticated contact: the answer of its factory key, or an approval.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/devices", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = RegisterRequest,
    responses((status = 201, body = DeviceView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<DeviceView>)> {
    let Some(owner) = at.scope.user_id() else {
        return Err(ApiError::Forbidden(
            "a device is registered by a person, its owner".into(),
        ));
    };
    let mac = normalize_mac(&input.mac).ok_or_else(|| {
        ApiError::Unprocessable("mac: six hex octets, like aa:bb:cc:dd:ee:ff".into())
    })?;
    let serial = match input.serial_number.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) if s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic()) => Some(s.to_string()),
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "serial_number: up to 64 printable characters".into(),
            ))
        }
    };
    let key = match input.hmac_key_hex.as_deref() {
        None => None,
        Some(h) => {
            let k = zeroize::Zeroizing::new(
                hex::decode(h.trim())
                    .map_err(|_| ApiError::Unprocessable("hmac_key_hex: hexadecimal".into()))?,
            );
            if !(16..=64).contains(&k.len()) || serial.is_none() {
                return Err(ApiError::Unprocessable(
                    "hmac_key_hex: 16 to 64 bytes, with the serial_number it belongs to".into(),
                ));
            }
            Some(k)
        }
    };
    let id = DeviceId::new();
    let sealed = match &key {
        Some(k) => {
            let record = id.to_string();
            Some(
                state
                    .vault
                    .seal(
                        &bastion_vault::Binding {
                            workspace: at.scope.workspace_id(),
                            kind: HMAC_KEY_KIND,
                            record: &record,
                        },
                        k,
                    )
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            )
        }
        None => None,
    };
    let d = state
        .store
        .devices()
        .register(
            &at.scope,
            id,
            &mac,
            serial.as_deref(),
            sealed.as_deref(),
            owner,
        )
        .await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "device.register",
            SUCCESS,
            json!({"device": d.id.to_string(), "mac_suffix": mac_suffix(&mac), "factory_key": key.is_some()}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, &d))))
}

#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/devices/{device_id}/approve", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("device_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DeviceView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn approve(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<DeviceId>,
) -> ApiResult<Json<DeviceView>> {
    let d = state.store.devices().approve(&at.scope, id).await?;
    audit_done(
        &state,
        &at,
        actor,
        &meta,
        ("device.approve", "approved"),
        id,
    )
    .await;
    Ok(Json(view(&state, &d)))
}

/// Revokes the device's channel token: its open channels close at once; it stays bound and
/// gets a new token at its next handshake.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/devices/{device_id}/revoke", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("device_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<DeviceId>,
) -> ApiResult<StatusCode> {
    state.store.devices().revoke_token(&at.scope, id).await?;
    state.devices.channels.cut(id, bastion_store::now_ms());
    audit_done(&state, &at, actor, &meta, ("device.revoke", "revoked"), id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Unbinds the device: its channels close at once, and its next handshake shows a fresh
/// activation code, so its next owner can bind it.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/devices/{device_id}", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("device_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unbind(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ItemParam(id): ItemParam<DeviceId>,
) -> ApiResult<StatusCode> {
    state.store.devices().unbind(&at.scope, id).await?;
    state.devices.channels.cut(id, bastion_store::now_ms());
    audit_done(&state, &at, actor, &meta, ("device.unbind", "unbound"), id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyView {
    /// `auto`: a confirmed code binds; `approval`: a bound device waits for an admin.
    pub pairing: String,
    /// `alphanumeric` (32 symbols, the default) or `digits` (for devices that speak their
    /// code; a million times easier to guess). Applies to devices registered here.
    pub code_kind: String,
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/devices/policy", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PolicyView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_policy(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<PolicyView>> {
    let p = state.store.devices().policy(&at.scope).await?;
    Ok(Json(PolicyView {
        pairing: p.pairing,
        code_kind: p.code_kind,
    }))
}

#[utoipa::path(put, path = "/api/v1/assistants/{assistant_id}/devices/policy", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = PolicyView,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    State(state): State<AppState>,
    at: InAssistant,
    actor: Actor,
    meta: Meta,
    ApiJson(input): ApiJson<PolicyView>,
) -> ApiResult<Json<PolicyView>> {
    if !matches!(input.pairing.as_str(), "auto" | "approval") {
        return Err(ApiError::Unprocessable("pairing: auto or approval".into()));
    }
    if CodeKind::parse(&input.code_kind).is_none() {
        return Err(ApiError::Unprocessable(
            "code_kind: alphanumeric or digits".into(),
        ));
    }
    let p = Policy {
        pairing: input.pairing,
        code_kind: input.code_kind,
    };
    state.store.devices().set_policy(&at.scope, &p).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "device.policy",
            SUCCESS,
            json!({"pairing": p.pairing, "code_kind": p.code_kind}),
        ))
        .await;
    Ok(Json(PolicyView {
        pairing: p.pairing,
        code_kind: p.code_kind,
    }))
}

/// The longest a follower may wait for a change.
const MAX_WAIT_SECS: u64 = 25;

#[derive(Deserialize, IntoParams)]
pub struct EventsQuery {
    /// The `cursor` of the previous answer; 0 (the default) at first.
    pub after: Option<u64>,
    /// Seconds to wait for a change when there is none yet, 0 (the default) to 25.
    pub wait_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceEventView {
    #[schema(format = Uuid)]
    pub device_id: String,
    /// `online`, `offline`, `bound`, `pending_approval`, `approved`, `revoked` or `unbound`.
    pub kind: String,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceEventsPage {
    /// Ask with `after` set to this next time.
    pub cursor: u64,
    /// Changes were missed (too many, or this node restarted): reload the device list.
    pub gap: bool,
    pub events: Vec<DeviceEventView>,
}

/// The device state changes of this assistant on this node after `after`: at once, or, with
/// `wait_secs`, as soon as there is one (long polling), so a console follows devices live.
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/devices/events", tag = "devices", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), EventsQuery),
    responses((status = 200, body = DeviceEventsPage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn events(
    State(state): State<AppState>,
    at: InAssistant,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<DeviceEventsPage>> {
    let wait = q.wait_secs.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::Unprocessable(format!(
            "wait_secs: 0 to {MAX_WAIT_SECS}"
        )));
    }
    let page = state
        .devices
        .events
        .follow(
            at.scope.assistant_id(),
            q.after.unwrap_or(0),
            std::time::Duration::from_secs(wait),
        )
        .await;
    Ok(Json(DeviceEventsPage {
        cursor: page.cursor,
        gap: page.gap,
        events: page
            .events
            .into_iter()
            .map(|e| DeviceEventView {
                device_id: e.device.to_string(),
                kind: e.kind.to_string(),
                at: rfc3339(e.at),
            })
            .collect(),
    }))
}
