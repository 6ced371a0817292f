//! A bound device's WebSocket channel (`GET /device/ws`, xiaozhi-compatible): the device
//! presents the token of its last handshake (`Authorization: Bearer`) with its `Device-Id`,
//! says `hello` within ten seconds, and then talks (see `devices/session.rs`). Binary frames
//! are audio. Revoking or unbinding the device closes the channel within a second (at once
//! on this node).

use crate::devices::session::{self, DeviceSession};
use crate::error::{ApiError, ApiResult, Problem};
use crate::flow::Meta;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use bastion_devices::secret;
use bastion_devices::xiaozhi::{normalize_mac, DeviceMessage};
use bastion_store::devices::Device;
use bastion_store::AssistantScope;
use std::time::Duration;
use tokio::sync::mpsc;

/// A device must say hello this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a device may send (text or an audio frame).
const MAX_MESSAGE: usize = 64 * 1024;
/// Socket buffers: small, so that ten thousand idle devices cost little memory.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 1024;

/// The device channel. Refused with 401 unless the bearer token is the live token of a
/// bound device whose MAC is the `Device-Id`, and with 403 when its owner may not chat.
#[utoipa::path(get, path = "/device/ws", tag = "devices",
    responses((status = 101, description = "WebSocket: xiaozhi JSON text frames and binary audio"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn connect(
    State(state): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let Some(device) = admit(&state, &headers).await? else {
        metrics::counter!("bastion_device_refused_total", "reason" => "token").increment(1);
        return Err(ApiError::Unauthenticated);
    };
    let scope = session::owner_scope(&state, &device).await.ok_or_else(|| {
        ApiError::Forbidden("the device's owner may not chat with this assistant".into())
    })?;
    let ws =
        ws.map_err(|_| ApiError::BadRequest("a WebSocket upgrade request is expected".into()))?;
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, device, scope, meta))
        .into_response())
}

/// The bound device the request's token and Device-Id name.
async fn admit(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Device>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(secret::TOKEN_PREFIX) && t.len() < 128);
    let mac = headers
        .get("device-id")
        .and_then(|v| v.to_str().ok())
        .and_then(normalize_mac);
    let (Some(token), Some(mac)) = (token, mac) else {
        return Ok(None);
    };
    let Some(d) = state
        .store
        .devices()
        .by_token(&secret::digest(token))
        .await?
    else {
        return Ok(None);
    };
    Ok((d.may_connect(bastion_store::now_ms()) && d.mac == mac).then_some(d))
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    device: Device,
    scope: AssistantScope,
    meta: Meta,
) {
    // The one-off steps are boxed so that the long-lived task is only as large as its
    // idle loop (ten thousand channels are ten thousand tasks).
    let open = Box::pin(session::opened(&state, &device, &meta)).await;
    let mut socket = socket;
    // One task per channel reads, writes and runs the session. Whatever writes to `out`
    // sends a few messages at a time (a handshake, a spoken answer, MCP requests), well
    // within its room, so the session is never stuck waiting on its own loop.
    let (out, mut outgoing) = mpsc::channel::<String>(64);
    let assistant = scope.assistant_id();
    let mut session = DeviceSession::new(state.clone(), &device, scope, meta, "websocket", out);
    drop(device);
    // The first message must be hello.
    let first = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(t),
        _ => None,
    };
    let hello = first.filter(|t| {
        matches!(
            serde_json::from_str::<DeviceMessage>(t.as_str()),
            Ok(DeviceMessage::Hello { .. })
        )
    });
    if let Some(hello) = hello {
        Box::pin(session.on_text(hello.as_str(), &open)).await;
        loop {
            tokio::select! {
                biased;
                Some(t) = outgoing.recv() => {
                    if socket.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                _ = open.cut.notified() => {
                    session.goodbye().await;
                    break;
                }
                m = socket.recv() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if !Box::pin(session.on_text(t.as_str(), &open)).await {
                            break;
                        }
                    }
                    Some(Ok(Message::Binary(b))) => session.on_audio(b.len()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    // What is queued (a goodbye) goes out before the close.
    while let Ok(t) = outgoing.try_recv() {
        if socket.send(Message::Text(t.into())).await.is_err() {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    drop(session);
    Box::pin(session::closed(&state, open, assistant)).await;
}
