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
    accept, Credentials, Ended, Limits, Refusal as ConnectReturnCode, Topics,
};
use bastion_devices::secret;
use bastion_store::devices::Device;
use bastion_store::AssistantScope;
use bytes::Bytes;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
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

/// Accepts device connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: AppState) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, state.clone()));
            }
            Err(e) => {
                // Out of descriptors, most likely: wait instead of spinning.
                tracing::warn!(error = %e, "mqtt accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Who a CONNECT's credentials are: a bound device whose owner may chat, presenting its own
/// client id, id and live token.
async fn authenticate(
    state: &AppState,
    c: Credentials,
) -> Result<(Topics, (Device, AssistantScope)), ConnectReturnCode> {
    let refused = || {
        metrics::counter!("bastion_device_refused_total", "reason" => "mqtt").increment(1);
        ConnectReturnCode::NotAuthorized
    };
    let (Some(username), Some(password)) = (c.username, c.password) else {
        return Err(refused());
    };
    if !password.starts_with(secret::TOKEN_PREFIX) || password.len() > 128 {
        return Err(refused());
    }
    let device = match state
        .store
        .devices()
        .by_token(&secret::digest(&password))
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => return Err(refused()),
        Err(e) => {
            tracing::error!(error = %e, "mqtt authentication could not read the store");
            return Err(ConnectReturnCode::ServiceUnavailable);
        }
    };
    let ok = device.may_connect(bastion_store::now_ms())
        && device.id.to_string() == username
        && c.client_id == client_id(&device);
    if !ok {
        return Err(refused());
    }
    let scope = session::owner_scope(state, &device)
        .await
        .ok_or_else(refused)?;
    Ok((topics(&device), (device, scope)))
}

async fn connection(stream: TcpStream, peer: SocketAddr, state: AppState) {
    let limits = Limits::default();
    let (conn, (device, scope)) = match accept(stream, &limits, |c| authenticate(&state, c)).await {
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
    };
    let open = session::opened(&state, &device, &meta).await;
    let (up_tx, mut up) = mpsc::channel::<Bytes>(16);
    let (down_tx, down_rx) = mpsc::channel::<Bytes>(32);
    let (out, mut outgoing) = mpsc::channel::<String>(32);
    let forward = tokio::spawn(async move {
        while let Some(t) = outgoing.recv().await {
            if down_tx.send(Bytes::from(t)).await.is_err() {
                return;
            }
        }
    });
    let device_id = device.id;
    let mut session = DeviceSession::new(state.clone(), device, scope, meta, "mqtt", out);
    let cut = open.cut.clone();
    let run = conn.run(up_tx, down_rx, async move { cut.notified().await });
    tokio::pin!(run);
    let ended = loop {
        tokio::select! {
            ended = &mut run => break ended,
            payload = up.recv() => match payload {
                Some(p) => match std::str::from_utf8(&p) {
                    Ok(text) => {
                        if !session.on_text(text, &open).await {
                            break Ended::Left;
                        }
                    }
                    Err(_) => session.on_audio(p.len()),
                },
                None => break Ended::Left,
            },
        }
    };
    if let Ended::Violation(why) = ended {
        metrics::counter!("bastion_device_refused_total", "reason" => "mqtt_acl").increment(1);
        tracing::info!(device = %device_id, why, "mqtt connection ended for breaking a rule");
    }
    drop(session);
    forward.abort();
    session::closed(&state, open).await;
}
