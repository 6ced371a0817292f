//! The device handshake, compatible with the xiaozhi-esp32 firmware: `POST /ota/` (the
//! firmware's version check at boot) and `POST /ota/activate` (polled while an activation
//! code is shown). An unknown device is recorded and issued its secret; a device that is not
//! bound gets an activation code and no channel credentials; a bound one gets a fresh
//! channel token in the `websocket` section. See `devices/identity.rs` for how a device
//! proves it is the one first seen.

use crate::devices::identity::{prove, DeviceHeaders, Proof};
use crate::error::{ApiError, ApiResult, Problem};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::Meta;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bastion_devices::code::{self, CodeHasher, CodeKind};
use bastion_devices::xiaozhi::{
    Activation, ActivationAnswer, DeviceSection, Firmware, MqttSection, OtaAnswer, ServerTime,
    SystemInfo, WebsocketSection,
};
use bastion_devices::{challenge, secret};
use bastion_store::devices::{Contact, Device, DeviceStatus, HMAC_KEY_KIND};
use bastion_store::StoreError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

async fn limit(state: &AppState, meta: &Meta) -> ApiResult<()> {
    state
        .rates
        .hit(
            &format!("ota:{}", meta.ip_string()),
            state.settings.device_handshakes_per_minute,
        )
        .await
        .map_err(|e| match e {
            bastion_auth::rate::RateError::Limited(w) => ApiError::RateLimited(w),
            bastion_auth::rate::RateError::Unavailable(_) => ApiError::Unavailable,
        })
}

fn headers_of(headers: &HeaderMap) -> ApiResult<DeviceHeaders> {
    DeviceHeaders::read(headers).ok_or_else(|| {
        ApiError::BadRequest("the Device-Id header must be the device's MAC address".into())
    })
}

/// A JSON body, or the default for an empty one.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(e.to_string()),
        _ => ApiError::BadRequest(format!("the body is not JSON: {e}")),
    })
}

/// An event about a device on its assistant's chain, when it has one.
async fn audit_device(state: &AppState, d: &Device, meta: &Meta, action: &str, outcome: &str) {
    let Some(assistant) = d.assistant_id else {
        return;
    };
    let Ok(Some(a)) = state.store.assistants().by_id(assistant).await else {
        return;
    };
    state
        .audit(events::event(
            a.workspace_id,
            format!("device:{}", d.id),
            meta,
            action,
            assistant,
            outcome,
            json!({"device": d.id.to_string()}),
        ))
        .await;
}

/// The device the headers name, proved; 401 when it does not prove itself.
async fn known_device(
    state: &AppState,
    h: &DeviceHeaders,
    meta: &Meta,
) -> ApiResult<Option<(Device, Proof)>> {
    let Some(d) = state.store.devices().by_mac(&h.mac).await? else {
        return Ok(None);
    };
    if d.secret_hash.is_none() {
        // Registered by an admin, not yet in contact: its first contact proves nothing
        // either, which is why such a device binds only by its factory key or an approval.
        return Ok(Some((d, Proof::ClientId)));
    }
    match prove(&d, h) {
        Some(p) => Ok(Some((d, p))),
        None => {
            metrics::counter!("bastion_device_refused_total", "reason" => "identity").increment(1);
            audit_device(state, &d, meta, "device.handshake", FAILURE).await;
            Err(ApiError::Unauthenticated)
        }
    }
}

/// A fresh activation code (and challenge) for `d`, replacing any earlier one.
async fn new_activation(
    state: &AppState,
    d: &Device,
    kind: CodeKind,
) -> ApiResult<(String, String)> {
    let hasher = CodeHasher::new(state.keys.device_code.as_ref());
    let ttl_ms = state.settings.activation_code_ttl_secs as i64 * 1000;
    let challenge = secret::digest(&secret::new_secret());
    // A clash with another live code is rare (1,000 live codes: 1 in a million); try again.
    for _ in 0..5 {
        let c = code::generate(kind);
        match state
            .store
            .devices()
            .set_activation(
                d.id,
                &hasher.hash(&c),
                &challenge,
                bastion_store::now_ms() + ttl_ms,
            )
            .await
        {
            Ok(()) => return Ok((c, challenge)),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal("no free activation code".into()))
}

async fn code_kind(state: &AppState, d: &Device) -> ApiResult<CodeKind> {
    Ok(match d.assistant_id {
        Some(a) => {
            let p = state.store.devices().policy_of(a).await?;
            CodeKind::parse(&p.code_kind).unwrap_or_default()
        }
        None => CodeKind::default(),
    })
}

fn message_for(status: DeviceStatus, code: &str) -> String {
    match status {
        DeviceStatus::PendingApproval if code.is_empty() => {
            "Waiting for an administrator to approve this device".into()
        }
        DeviceStatus::PendingApproval => {
            format!("Waiting for an administrator: approval, or the code {code}")
        }
        _ => format!("Enter the code {code} in bastion to bind this device"),
    }
}

/// The firmware check and handshake of a device (xiaozhi `POST /ota/`). Headers:
/// `Device-Id` (MAC), `Client-Id`, `Device-Secret` once issued, `User-Agent`,
/// `Activation-Version`. Channel credentials are given to bound devices only.
#[utoipa::path(post, path = "/ota/", tag = "devices",
    params(("Device-Id" = String, Header, description = "the device's MAC address, e.g. 3a:28:5e:fc:41:5a", pattern = "^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"),
        ("Client-Id" = Option<String>, Header, description = "the firmware's client id (a UUID)"),
        ("Device-Secret" = Option<String>, Header, description = "the secret issued at first contact"),
        ("Activation-Version" = Option<String>, Header, description = "2 for firmware that answers a challenge")),
    request_body(content = Object, content_type = "application/json", description = "the device's system information (application.version, board.type, …)"),
    responses((status = 200, description = "xiaozhi OTA answer: server_time, firmware, device, and activation (unbound) or websocket (bound)"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn handshake(
    State(state): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<OtaAnswer>> {
    limit(&state, &meta).await?;
    let h = headers_of(&headers)?;
    let info: SystemInfo = body(&bytes)?;
    let (board, version) = (info.board_name(), info.app_version());
    let contact = Contact {
        board: &board,
        app_version: &version,
        ip: meta.ip.map(|ip| ip.to_string()),
    };
    let repo = state.store.devices();
    let client_hash = h.client_id.as_deref().map(secret::digest);
    let mut issued_secret = None;
    let d = match known_device(&state, &h, &meta).await? {
        None => {
            let s = secret::new_secret();
            let d = repo
                .first_contact(
                    &h.mac,
                    client_hash.as_deref(),
                    &secret::digest(&s),
                    &contact,
                )
                .await?;
            metrics::counter!("bastion_device_first_contacts_total").increment(1);
            issued_secret = Some(s);
            d
        }
        Some((d, _)) if d.secret_hash.is_none() => {
            // A registered device's first contact: with a factory key it answers its
            // challenge; without one, an admin approves what they now see of it.
            let s = secret::new_secret();
            let next = if d.hmac_key.is_some() {
                DeviceStatus::Registered
            } else {
                DeviceStatus::PendingApproval
            };
            if !repo
                .first_contact_of_registered(
                    d.id,
                    client_hash.as_deref(),
                    &secret::digest(&s),
                    &contact,
                    next,
                )
                .await?
            {
                return Err(ApiError::Conflict(
                    "the device is being registered; try again".into(),
                ));
            }
            issued_secret = Some(s);
            repo.by_id(d.id).await?.ok_or(ApiError::NotFound)?
        }
        Some((d, proof)) => {
            repo.seen(d.id, &contact, proof == Proof::Secret).await?;
            d
        }
    };
    let now = bastion_store::now_ms();
    let mut answer = OtaAnswer {
        server_time: ServerTime {
            timestamp: now,
            timezone_offset: 0,
        },
        firmware: Firmware {
            version,
            url: String::new(),
        },
        device: DeviceSection {
            id: d.id.to_string(),
            secret: issued_secret,
        },
        activation: None,
        websocket: None,
        mqtt: None,
    };
    if d.status == DeviceStatus::Bound && d.assistant_id.is_some() && d.owner_id.is_some() {
        let token = secret::new_token();
        let ttl = i64::from(state.settings.device_token_ttl_days) * 86_400_000;
        repo.issue_token(
            d.id,
            &secret::digest(&token),
            &secret::last4(&token),
            now + ttl,
        )
        .await?;
        if let Some(&bind) = state.devices.mqtt_addr.get() {
            let t = crate::devices::mqtt::topics(&d);
            answer.mqtt = Some(MqttSection {
                endpoint: mqtt_endpoint(&state, &headers, bind),
                client_id: crate::devices::mqtt::client_id(&d),
                username: d.id.to_string(),
                password: token.clone(),
                publish_topic: t.up,
                subscribe_topic: t.down,
                keepalive: 240,
            });
        }
        answer.websocket = Some(WebsocketSection {
            url: crate::routes::views::ws_url(&headers, meta.secure, "/device/ws"),
            token,
            version: 1,
        });
    } else {
        let kind = code_kind(&state, &d).await?;
        let (code, challenge) = new_activation(&state, &d, kind).await?;
        // A device bound by its code and waiting for approval has no use for a new one.
        let waiting = d.status == DeviceStatus::PendingApproval && d.bound_at.is_some();
        let code = if waiting { String::new() } else { code };
        answer.activation = Some(Activation {
            message: message_for(d.status, &code),
            code,
            challenge,
            timeout_ms: state.settings.activation_code_ttl_secs * 1000,
        });
    }
    Ok(Json(answer))
}

/// Where devices reach the MQTT endpoint: as configured, or this request's host with the
/// endpoint's port.
fn mqtt_endpoint(state: &AppState, headers: &HeaderMap, bind: std::net::SocketAddr) -> String {
    if let Some(e) = &state.settings.mqtt_public_endpoint {
        return e.clone();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| url::Url::parse(&format!("http://{h}")).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| bind.ip().to_string());
    format!("{host}:{}", bind.port())
}

/// What a device with a factory key sends to `POST /ota/activate` (the schema of
/// `bastion_devices::xiaozhi::ActivationAnswer`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActivationBody {
    /// `hmac-sha256`.
    algorithm: Option<String>,
    serial_number: Option<String>,
    /// The challenge of the device's last handshake.
    challenge: Option<String>,
    /// hex(HMAC-SHA256(factory key, challenge)).
    hmac: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivationState {
    /// `bound`, or `pending` while the code waits to be entered (or the device to be approved).
    pub status: &'static str,
}

/// Polled by a device showing a code (xiaozhi `POST /ota/activate`): 202 while pending, 200
/// once bound. A device with a factory key sends `serial_number`, `challenge` and `hmac`;
/// a wrong answer, or one bastion has no registered key to check, is refused.
#[utoipa::path(post, path = "/ota/activate", tag = "devices",
    params(("Device-Id" = String, Header, description = "the device's MAC address, e.g. 3a:28:5e:fc:41:5a", pattern = "^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"),
        ("Client-Id" = Option<String>, Header, description = "the firmware's client id (a UUID)"),
        ("Device-Secret" = Option<String>, Header, description = "the secret issued at first contact"),
        ("Activation-Version" = Option<String>, Header, description = "2 for firmware that answers a challenge")),
    request_body(content = ActivationBody, content_type = "application/json", description = "empty for a device without a factory key"),
    responses((status = 200, body = ActivationState), (status = 202, body = ActivationState),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn activate(
    State(state): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<ActivationState>)> {
    limit(&state, &meta).await?;
    let answer: ActivationAnswer = body(&bytes)?;
    let h = headers_of(&headers)?;
    let Some((d, _)) = known_device(&state, &h, &meta).await? else {
        return Err(ApiError::Unauthenticated);
    };
    if d.secret_hash.is_none() {
        // A registered device activates after its first handshake, not before.
        return Err(ApiError::Unauthenticated);
    }
    if let Some(hmac) = answer.hmac.as_deref() {
        if !hmac_is_right(&state, &d, &answer, hmac).await? {
            metrics::counter!("bastion_device_refused_total", "reason" => "hmac").increment(1);
            audit_device(&state, &d, &meta, "device.activate", FAILURE).await;
            return Err(ApiError::Unauthenticated);
        }
        if d.status == DeviceStatus::Registered {
            let policy = match d.assistant_id {
                Some(a) => state.store.devices().policy_of(a).await?,
                None => Default::default(),
            };
            let next = if policy.pairing == "approval" {
                DeviceStatus::PendingApproval
            } else {
                DeviceStatus::Bound
            };
            if state.store.devices().bind_registered(d.id, next).await? {
                audit_device(&state, &d, &meta, "device.bind", SUCCESS).await;
                if let Some(a) = d.assistant_id {
                    state.devices.events.publish(a, d.id, next.as_str());
                }
            }
            let now = state.store.devices().by_id(d.id).await?;
            return Ok(activation_state(now.as_ref()));
        }
    }
    Ok(activation_state(Some(&d)))
}

fn activation_state(d: Option<&Device>) -> (StatusCode, Json<ActivationState>) {
    if d.is_some_and(|d| d.status == DeviceStatus::Bound) {
        (StatusCode::OK, Json(ActivationState { status: "bound" }))
    } else {
        (
            StatusCode::ACCEPTED,
            Json(ActivationState { status: "pending" }),
        )
    }
}

/// Whether `hmac` answers the device's live challenge under its registered factory key.
async fn hmac_is_right(
    state: &AppState,
    d: &Device,
    answer: &ActivationAnswer,
    hmac: &str,
) -> ApiResult<bool> {
    let (Some(sealed), Some(assistant)) = (d.hmac_key.as_deref(), d.assistant_id) else {
        return Ok(false);
    };
    if answer.serial_number.as_deref() != d.serial_number.as_deref() {
        return Ok(false);
    }
    if answer
        .algorithm
        .as_deref()
        .is_some_and(|a| a != "hmac-sha256")
    {
        return Ok(false);
    }
    let Some(live) = state.store.devices().activation_of(d.id).await? else {
        return Ok(false);
    };
    if live.expires_at <= bastion_store::now_ms()
        || answer
            .challenge
            .as_deref()
            .is_some_and(|c| c != live.challenge)
    {
        return Ok(false);
    }
    let Some(a) = state.store.assistants().by_id(assistant).await? else {
        return Ok(false);
    };
    let record = d.id.to_string();
    let key = state
        .vault
        .open(
            &bastion_vault::Binding {
                workspace: a.workspace_id,
                kind: HMAC_KEY_KIND,
                record: &record,
            },
            sealed,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "a device's factory key could not be opened");
            ApiError::Internal("the device's factory key could not be opened".into())
        })?;
    Ok(challenge::verify(&key, &live.challenge, hmac))
}
