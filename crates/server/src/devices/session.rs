//! A bound device's session, whatever carries it (a WebSocket, or MQTT): the xiaozhi
//! messages a device sends and how bastion answers them. The device acts for its owner: its
//! scope is the owner's on the device's assistant, its turns are the owner's conversation
//! ("Device dd:ee:ff") through the same runtime, limits and tool boundary.
//!
//! `hello` is answered with a session id and the negotiated audio parameters; `listen`
//! `detect` with text is an utterance, answered with `stt`, then `tts` start, `llm`, `tts`
//! sentence_start carrying the reply and `tts` stop; `abort` stops the answer being spoken
//! (it is still stored); `goodbye` ends the session; `mcp` frames carry bastion's MCP client
//! session with the device's own tools: they are listed, the user-only ones (reboot,
//! firmware upgrade, anything annotated for the user's audience) dropped before anything
//! sees them, and the rest offered to the assistant under a `device_…` server, disabled
//! until an admin enables them.

use super::channels::Open;
use crate::chat::mcp;
use crate::error::{ApiError, ApiResult};
use crate::flow::{KeyUsed, Meta};
use crate::routes::conversations::begin_turn;
use crate::state::AppState;
use bastion_core::{Access, Capability, ConversationId, DeviceId, McpServerId};
use bastion_devices::xiaozhi::{
    is_user_only_tool, mac_suffix, AudioParams, DeviceMessage, ServerMessage,
};
use bastion_store::devices::Device;
use bastion_store::AssistantScope;
use bastion_tools::mcp::{ClientJsonRpcMessage, McpLimits, ServerJsonRpcMessage};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The owner's scope on the device's assistant, while the owner may chat there.
pub async fn owner_scope(state: &AppState, d: &Device) -> Option<AssistantScope> {
    let grant = state
        .store
        .memberships()
        .grant(d.owner_id?, d.assistant_id?)
        .await
        .ok()??;
    grant.authorize(Access::Assistant(Capability::Chat))
}

/// Registers an open channel of `device` on this node and marks the device online.
pub async fn opened(state: &AppState, device: &Device, meta: &Meta) -> Open {
    let open = state.devices.channels.open(device.id, &state.store);
    if let Err(e) = state
        .store
        .devices()
        .set_online(device.id, true, meta.ip.map(|ip| ip.to_string()))
        .await
    {
        tracing::warn!(device = %device.id, error = %e, "device state not written");
    }
    metrics::gauge!("bastion_device_channels_open").increment(1.0);
    if let Some(a) = device.assistant_id {
        state.devices.events.publish(a, device.id, "online");
    }
    open
}

/// Forgets a closed channel; the device is offline once it has none left here.
pub async fn closed(state: &AppState, open: Open, assistant: bastion_core::AssistantId) {
    let device = open.device;
    drop(open);
    metrics::gauge!("bastion_device_channels_open").decrement(1.0);
    if !state.devices.channels.is_online(device) {
        state.devices.events.publish(assistant, device, "offline");
        if let Err(e) = state.store.devices().set_online(device, false, None).await {
            tracing::warn!(device = %device, error = %e, "device state not written");
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the device channel is closed")]
struct Closed;

/// What a session keeps of its device (ten thousand idle sessions keep little).
#[derive(Clone)]
pub struct Named {
    pub id: DeviceId,
    pub mac: String,
}

/// One device's session on one channel. `out` carries the JSON text messages to the device.
pub struct DeviceSession {
    state: AppState,
    device: Named,
    scope: AssistantScope,
    meta: Meta,
    transport: &'static str,
    session_id: String,
    out: mpsc::Sender<String>,
    conversation: Option<ConversationId>,
    turn: Option<tokio::task::JoinHandle<()>>,
    mcp_in: Option<mpsc::Sender<ServerJsonRpcMessage>>,
}

impl Drop for DeviceSession {
    fn drop(&mut self) {
        if let Some(t) = self.turn.take() {
            t.abort();
        }
    }
}

impl DeviceSession {
    pub fn new(
        state: AppState,
        device: &Device,
        scope: AssistantScope,
        meta: Meta,
        transport: &'static str,
        out: mpsc::Sender<String>,
    ) -> DeviceSession {
        DeviceSession {
            state,
            device: Named {
                id: device.id,
                mac: device.mac.clone(),
            },
            scope,
            meta,
            transport,
            session_id: uuid::Uuid::new_v4().to_string(),
            out,
            conversation: None,
            turn: None,
            mcp_in: None,
        }
    }

    async fn send(&self, m: &ServerMessage<'_>) -> bool {
        self.out.send(m.to_json()).await.is_ok()
    }

    /// The goodbye bastion sends when it ends the session (revoked, unbound).
    pub async fn goodbye(&self) {
        self.send(&ServerMessage::Goodbye {
            session_id: &self.session_id,
        })
        .await;
    }

    /// An audio frame: accepted and counted; bastion has no speech provider yet.
    pub fn on_audio(&self, bytes: usize) {
        metrics::counter!("bastion_device_audio_frames_total").increment(1);
        metrics::counter!("bastion_device_audio_bytes_total").increment(bytes as u64);
    }

    /// Handles one text message; `false` ends the session.
    pub async fn on_text(&mut self, t: &str, open: &Open) -> bool {
        let Ok(msg) = serde_json::from_str::<DeviceMessage>(t) else {
            tracing::debug!(device = %self.device.id, "unreadable device message ignored");
            return true;
        };
        match msg {
            DeviceMessage::Hello {
                features,
                audio_params,
                ..
            } => {
                let audio = AudioParams::negotiate(audio_params.as_ref());
                let sid = self.session_id.clone();
                self.send(&ServerMessage::Hello {
                    transport: self.transport,
                    session_id: &sid,
                    audio_params: audio,
                })
                .await;
                if features.mcp && self.mcp_in.is_none() {
                    self.start_mcp(open);
                }
            }
            DeviceMessage::Listen { state, text, .. } if state == "detect" => {
                if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
                    // Boxed: a turn's start is a large future, and inlined it would grow every
                    // idle channel's task by its size.
                    Box::pin(self.utterance(t)).await;
                }
            }
            DeviceMessage::Abort { .. } => {
                if let Some(t) = self.turn.take() {
                    t.abort();
                    let sid = self.session_id.clone();
                    self.send(&ServerMessage::Tts {
                        session_id: &sid,
                        state: "stop",
                        text: None,
                    })
                    .await;
                }
            }
            DeviceMessage::Goodbye {} => return false,
            DeviceMessage::Mcp { mut payload } => {
                drop_user_only_tools(&mut payload);
                if let (Some(tx), Ok(m)) = (
                    &self.mcp_in,
                    serde_json::from_value::<ServerJsonRpcMessage>(payload),
                ) {
                    if tx.try_send(m).is_err() {
                        tracing::warn!(device = %self.device.id, "device MCP message dropped: queue full");
                    }
                }
            }
            _ => {}
        }
        true
    }

    /// One thing the device's user said: a turn of the owner's device conversation.
    async fn utterance(&mut self, said: String) {
        if let Some(t) = self.turn.take() {
            t.abort();
        }
        let sid = self.session_id.clone();
        self.send(&ServerMessage::Stt {
            session_id: &sid,
            text: &said,
        })
        .await;
        let conversation = match self.conversation {
            Some(c) => c,
            None => {
                let title = format!("Device {}", mac_suffix(&self.device.mac));
                match self
                    .state
                    .store
                    .conversations()
                    .create(&self.scope, &title)
                    .await
                {
                    Ok(c) => {
                        self.conversation = Some(c.id);
                        c.id
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "device conversation not created");
                        self.say("Sorry, something went wrong.").await;
                        return;
                    }
                }
            }
        };
        let begun = begin_turn(
            &self.state,
            &self.scope,
            &KeyUsed(None),
            &self.meta,
            conversation,
            said,
        )
        .await;
        let begun = match begun {
            Ok(b) => b,
            Err(e) => {
                self.say(&e.problem().detail).await;
                return;
            }
        };
        self.turn = Some(tokio::spawn(speak(begun.events, self.out.clone(), sid)));
    }

    /// A short spoken answer that is not the model's (a refusal, an error).
    async fn say(&self, what: &str) {
        let sid = &self.session_id;
        for (state, text) in [
            ("start", None),
            ("sentence_start", Some(what)),
            ("stop", None),
        ] {
            self.send(&ServerMessage::Tts {
                session_id: sid,
                state,
                text,
            })
            .await;
        }
    }

    /// Starts bastion's MCP client session with the device, in the background; once it is
    /// initialized its tools are read into the registry and offered to the assistant.
    fn start_mcp(&mut self, open: &Open) {
        let (tx, rx) = mpsc::channel::<ServerJsonRpcMessage>(32);
        self.mcp_in = Some(tx);
        let sid = self.session_id.clone();
        let sink = Box::pin(futures::sink::unfold(
            self.out.clone(),
            move |out, m: ClientJsonRpcMessage| {
                let frame = json!({"session_id": sid, "type": "mcp", "payload": m}).to_string();
                async move {
                    out.send(frame).await.map_err(|_| Closed)?;
                    Ok::<_, Closed>(out)
                }
            },
        ));
        let stream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        let (state, scope, device) = (self.state.clone(), self.scope.clone(), self.device.clone());
        let key = open.handle();
        tokio::spawn(async move {
            let limits = McpLimits {
                connect_timeout: Duration::from_secs(15),
                call_timeout: Duration::from_secs(30),
                ..McpLimits::default()
            };
            let session = match bastion_tools::mcp::attach(sink, stream, limits).await {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::info!(device = %device.id, error = %e, "device MCP session failed to initialize");
                    return;
                }
            };
            match register_tools(&state, &scope, &device, &session).await {
                Ok(r) => {
                    tracing::info!(device = %device.id, added = r.added.len(), changed = r.changed.len(), "device tools read")
                }
                Err(e) => {
                    tracing::warn!(device = %device.id, error = %e.problem().detail, "device tools not registered")
                }
            }
            state
                .devices
                .channels
                .offer(&key, scope.assistant_id(), session);
        });
    }
}

/// Speaks a turn's answer to the device as it completes.
async fn speak(
    mut events: mpsc::Receiver<crate::chat::turn::TurnEvent>,
    out: mpsc::Sender<String>,
    sid: String,
) {
    use crate::chat::turn::TurnEvent;
    let tts = |state: &'static str, text: Option<&str>| {
        ServerMessage::Tts {
            session_id: &sid,
            state,
            text,
        }
        .to_json()
    };
    let mut started = false;
    while let Some(e) = events.recv().await {
        let spoken = match e {
            TurnEvent::Delta(_) | TurnEvent::Tool(_) => {
                if !started {
                    started = true;
                    let llm = ServerMessage::Llm {
                        session_id: &sid,
                        emotion: "neutral",
                        text: "🙂",
                    };
                    for m in [tts("start", None), llm.to_json()] {
                        if out.send(m).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            TurnEvent::Done { answer, .. } => answer.content,
            TurnEvent::Failed(e) => e.problem().detail,
        };
        let mut last = Vec::new();
        if !started {
            last.push(tts("start", None));
        }
        last.push(tts("sentence_start", Some(&spoken)));
        last.push(tts("stop", None));
        for m in last {
            if out.send(m).await.is_err() {
                return;
            }
        }
        return;
    }
}

/// Removes the tools a device keeps for its user (annotated for the user's audience, or
/// known by name: reboot, firmware upgrade) from a `tools/list` answer, before rmcp or the
/// registry sees it.
fn drop_user_only_tools(payload: &mut Value) {
    if let Some(tools) = payload
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    {
        tools.retain(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("");
            !is_user_only_tool(name, t.get("annotations"))
        });
    }
}

/// The registry name of a device's MCP server.
pub fn server_name(d: &Named) -> String {
    format!("device_{}", d.mac.replace(':', ""))
}

/// The `url` a device's MCP server row carries: it is reached through the device's channel.
pub fn server_url(d: &Named) -> String {
    format!("device:{}", d.id)
}

async fn register_tools(
    state: &AppState,
    scope: &AssistantScope,
    device: &Named,
    session: &bastion_tools::mcp::McpSession,
) -> ApiResult<mcp::SyncReport> {
    let repo = state.store.tools();
    let name = server_name(device);
    let server = match repo
        .servers(scope)
        .await?
        .into_iter()
        .find(|s| s.name == name)
    {
        Some(s) => s,
        None => {
            repo.add_server(scope, McpServerId::new(), &name, &server_url(device), None)
                .await?
        }
    };
    let offered = session
        .list_tools()
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let offered: Vec<_> = offered
        .into_iter()
        .filter(|t| !is_user_only_tool(&t.name, None))
        .collect();
    mcp::sync(state, scope, &server, &offered).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_only_tools_are_dropped_from_a_tools_list_answer() {
        let mut p = json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [
            {"name": "self.audio_speaker.set_volume"},
            {"name": "self.reboot"},
            {"name": "self.wipe", "annotations": {"audience": ["user"]}}
        ]}});
        drop_user_only_tools(&mut p);
        assert_eq!(
            p["result"]["tools"],
            json!([{"name": "self.audio_speaker.set_volume"}])
        );
        // Anything else is left alone.
        let mut other = json!({"jsonrpc": "2.0", "id": 3, "result": {"content": []}});
        drop_user_only_tools(&mut other);
        assert_eq!(other["result"], json!({"content": []}));
    }
}
