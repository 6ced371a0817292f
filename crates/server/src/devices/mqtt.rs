//! bastion's MQTT endpoint for bound devices (`mqtt_bind`): each connection authenticates as
//! one device (username its id, password its channel token, client id `bastion-<id>`) and
//! may use only its own topics (`crates/devices/src/mqtt.rs` keeps those rules). What the
//! device publishes on `devices/<id>/up` is its session's input (`devices/session.rs`, the
//! same as over the WebSocket); the session's answers are published on `devices/<id>/down`.
//! Revoking or unbinding the device disconnects it, as it closes a WebSocket.

use super::session::{self, DeviceSession};
use crate::flow::Meta;
use crate::state::AppState;
use bastion_devices::mqtt::{
    accept, Credentials, Ended, Event, Limits, Refusal as ConnectReturnCode, Topics,
};
use bastion_devices::secret;
use bastion_store::devices::Device;
use bastion_store::AssistantScope;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The topics of `device`.
pub fn topics(device: &Device) -> Topics {
    Topics {
        up: format!("devices/{}/up", device.id),
        down: format!("devices/{}/down", device.id),
    }
}

/// The client id `device` must connect with.
pub fn client_id(device: &Device) -> String {
    format!("bastion-{}", device.id)
}

/// Accepts device connections on `listener` until the task is dropped; over TLS when
/// `tls` is given (the handshake in the connection's own task).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                match acceptor.clone() {
                    None => {
                        tokio::spawn(connection(stream, peer, state));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Some(tls) = crate::tls::handshake(&acceptor, stream).await {
                                Box::pin(connection(tls, peer, state)).await;
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // Out of descriptors, most likely: wait instead of spinning.
                tracing::warn!(error = %e, "mqtt accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why device credentials were not accepted.
pub enum Refused {
    /// Not a bound device's own id, client id and live token (or its owner may not chat).
    NotAuthorized,
    /// The store could not be read.
    Unavailable,
}

/// The bound device that presents `username` (its id), `client_id` (`bastion-<id>`) and
/// `password` (its live channel token), and the scope it acts in (its owner's).
pub async fn device_of(
    state: &AppState,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<(Device, AssistantScope), Refused> {
    if !password.starts_with(secret::TOKEN_PREFIX) || password.len() > 128 {
        return Err(Refused::NotAuthorized);
    }
    let device = match state
        .store
        .devices()
        .by_token(&secret::digest(password))
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => return Err(Refused::NotAuthorized),
        Err(e) => {
            tracing::error!(error = %e, "device credentials could not be checked");
            return Err(Refused::Unavailable);
        }
    };
    let ok = device.may_connect(bastion_store::now_ms())
        && device.id.to_string() == username
        && client_id == self::client_id(&device);
    if !ok {
        return Err(Refused::NotAuthorized);
    }
    let scope = session::owner_scope(state, &device)
        .await
        .ok_or(Refused::NotAuthorized)?;
    Ok((device, scope))
}

/// Who a CONNECT's credentials are: a bound device whose owner may chat, presenting its own
/// client id, id and live token.
async fn authenticate(
    state: &AppState,
    c: Credentials,
) -> Result<(Topics, (Device, AssistantScope)), ConnectReturnCode> {
    let (Some(username), Some(password)) = (c.username, c.password) else {
        metrics::counter!("bastion_device_refused_total", "reason" => "mqtt").increment(1);
        return Err(ConnectReturnCode::NotAuthorized);
    };
    match device_of(state, &c.client_id, &username, &password).await {
        Ok((device, scope)) => Ok((topics(&device), (device, scope))),
        Err(Refused::Unavailable) => Err(ConnectReturnCode::ServiceUnavailable),
        Err(Refused::NotAuthorized) => {
            metrics::counter!("bastion_device_refused_total", "reason" => "mqtt").increment(1);
            Err(ConnectReturnCode::NotAuthorized)
        }
    }
}

async fn connection<IO>(stream: IO, peer: SocketAddr, state: AppState)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = Limits::default();
    // The one-off steps are boxed so that the long-lived task is only as large as its
    // session loop.
    let accepted = Box::pin(accept(stream, &limits, |c| authenticate(&state, c))).await;
    let (conn, (device, scope)) = match accepted {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "mqtt connection refused");
            return;
        }
    };
    let meta = Meta {
        ip: Some(peer.ip()),
        user_agent: "mqtt".into(),
        method: axum::http::Method::POST,
        route: "mqtt".into(),
        secure: state.settings.serves_tls(),
    };
    let open = Box::pin(session::opened(&state, &device, &meta)).await;
    let (out, mut down) = mpsc::channel::<String>(64);
    let device_id = device.id;
    let assistant = scope.assistant_id();
    let mut session = DeviceSession::new(state.clone(), &device, scope, meta, "mqtt", out);
    drop(device);
    let mut conn = conn;
    let ended = loop {
        match conn.next(&mut down, open.cut.notified()).await {
            Event::Up(p) => match std::str::from_utf8(&p) {
                Ok(text) => {
                    if !Box::pin(session.on_text(text, &open)).await {
                        break Ended::Left;
                    }
                }
                Err(_) => session.on_audio(p.len()),
            },
            Event::Ended(e) => break e,
        }
    };
    if let Ended::Violation(why) = ended {
        metrics::counter!("bastion_device_refused_total", "reason" => "mqtt_acl").increment(1);
        tracing::info!(device = %device_id, why, "mqtt connection ended for breaking a rule");
    }
    drop(session);
    Box::pin(session::closed(&state, open, assistant)).await;
}
