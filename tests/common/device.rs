//! A scripted device speaking the xiaozhi-esp32 protocol: the OTA handshake, activation
//! polling, the WebSocket channel with `hello`, and its own MCP server (answered in the
//! background: `initialize`, `tools/list` with a user-only tool it lists only when asked
//! `withUserTools`, and `tools/call`).

use super::Server;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub struct Device {
    pub mac: String,
    pub client_id: String,
    /// The secret issued at first contact, once the device sends it back.
    pub secret: Option<String>,
    /// Whether it sends its secret back (firmware that ignores it is known by Client-Id).
    pub sends_secret: bool,
}

/// A fresh random MAC address.
pub fn random_mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0] & 0xfe,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

impl Device {
    pub fn new() -> Device {
        Device {
            mac: random_mac(),
            client_id: uuid::Uuid::new_v4().to_string(),
            secret: None,
            sends_secret: true,
        }
    }

    fn request(&self, s: &Server, path: &str) -> reqwest::RequestBuilder {
        let mut r = s
            .http
            .post(s.url(path))
            .header("Device-Id", &self.mac)
            .header("Client-Id", &self.client_id)
            .header("User-Agent", "bread-compact-wifi/1.6.0")
            .header("Activation-Version", "1")
            .header("Content-Type", "application/json");
        if let (true, Some(secret)) = (self.sends_secret, &self.secret) {
            r = r.header("Device-Secret", secret);
        }
        r
    }

    /// `POST /ota/` with the firmware's system information; keeps an issued secret.
    pub async fn handshake(&mut self, s: &Server) -> (StatusCode, Value) {
        let body = json!({
            "version": 2, "mac_address": self.mac, "uuid": self.client_id,
            "chip_model_name": "esp32s3",
            "application": {"name": "xiaozhi", "version": "1.6.0", "elf_sha256": "00"},
            "board": {"type": "bread-compact-wifi", "name": "bread-compact-wifi", "ssid": "home"}
        });
        let res = self
            .request(s, "/ota/")
            .json(&body)
            .send()
            .await
            .expect("ota");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if let Some(secret) = v["device"]["secret"].as_str() {
            self.secret = Some(secret.to_string());
        }
        (status, v)
    }

    /// `POST /ota/activate` with `body`.
    pub async fn activate(&self, s: &Server, body: Value) -> StatusCode {
        self.request(s, "/ota/activate")
            .json(&body)
            .send()
            .await
            .expect("activate")
            .status()
    }

    /// Opens the WebSocket channel with `token`; the HTTP status of a refusal.
    pub async fn connect(&self, url: &str, token: &str) -> Result<Channel, u16> {
        let mut req = url.into_client_request().expect("ws request");
        let h = req.headers_mut();
        h.insert("Authorization", format!("Bearer {token}").parse().unwrap());
        h.insert("Protocol-Version", "1".parse().unwrap());
        h.insert("Device-Id", self.mac.parse().unwrap());
        h.insert("Client-Id", self.client_id.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Channel::run(ws)),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }
}

/// An open device channel: what the server sent (MCP requests answered in the background).
pub struct Channel {
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedReceiver<Value>,
    /// Whether the server closed the channel.
    pub closed: Arc<Mutex<bool>>,
    /// The `tools/call` requests the device got: (tool, arguments).
    pub calls: Arc<Mutex<Vec<(String, Value)>>>,
    /// The `tools/list` params the server sent.
    pub list_params: Arc<Mutex<Vec<Value>>>,
}

/// The device's MCP tools: one for the model, one kept for its user.
fn tools(with_user_tools: bool) -> Value {
    let mut tools = vec![json!({
        "name": "self.audio_speaker.set_volume",
        "description": "Set the speaker volume (0-100).",
        "inputSchema": {"type": "object", "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}}, "required": ["volume"]}
    })];
    if with_user_tools {
        tools.push(json!({
            "name": "self.reboot", "description": "Reboot the device.",
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": {"audience": ["user"]}
        }));
        tools.push(json!({
            "name": "self.factory_reset", "description": "Erase everything.",
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": {"audience": ["user"]}
        }));
    }
    json!(tools)
}

impl Channel {
    fn run(
        ws: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Channel {
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        let closed = Arc::new(Mutex::new(false));
        let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let list_params: Arc<Mutex<Vec<Value>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reply = out.clone();
        let (c, calls2, lists) = (closed.clone(), calls.clone(), list_params.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                    continue;
                };
                let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                if v["type"] == "mcp" {
                    let p = &v["payload"];
                    let id = p["id"].clone();
                    let result = match p["method"].as_str() {
                        Some("initialize") => Some(json!({
                            "protocolVersion": p["params"]["protocolVersion"].clone(),
                            "capabilities": {"tools": {}},
                            "serverInfo": {"name": "xiaozhi-device", "version": "1.6.0"}
                        })),
                        Some("tools/list") => {
                            lists.lock().unwrap().push(p["params"].clone());
                            // Firmware lists user-only tools only when asked; this one
                            // lists them always, as careless firmware would.
                            Some(json!({"tools": tools(true)}))
                        }
                        Some("tools/call") => {
                            let name = p["params"]["name"].as_str().unwrap_or("").to_string();
                            calls2
                                .lock()
                                .unwrap()
                                .push((name, p["params"]["arguments"].clone()));
                            Some(
                                json!({"content": [{"type": "text", "text": "volume set"}], "isError": false}),
                            )
                        }
                        _ => None,
                    };
                    if let Some(result) = result {
                        let frame = json!({"session_id": v["session_id"], "type": "mcp",
                            "payload": {"jsonrpc": "2.0", "id": id, "result": result}});
                        let _ = reply.send(Message::Text(frame.to_string().into()));
                    }
                    continue;
                }
                if in_tx.send(v).is_err() {
                    break;
                }
            }
            *c.lock().unwrap() = true;
        });
        Channel {
            out,
            incoming,
            closed,
            calls,
            list_params,
        }
    }

    pub fn send(&self, v: Value) {
        let _ = self.out.send(Message::Text(v.to_string().into()));
    }

    pub fn send_audio(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::Binary(bytes.into()));
    }

    /// The next non-MCP message, within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Says hello (with MCP) and returns the server's hello.
    pub async fn hello(&mut self) -> Value {
        self.send(json!({"type": "hello", "version": 1, "features": {"mcp": true}, "transport": "websocket",
            "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}));
        self.next(Duration::from_secs(5))
            .await
            .expect("hello answer")
    }

    /// Says `text` (as a detected utterance) and collects messages until `tts` stop.
    pub async fn say(&mut self, text: &str) -> Vec<Value> {
        self.send(json!({"type": "listen", "state": "detect", "mode": "auto", "text": text}));
        let mut got = Vec::new();
        while let Some(m) = self.next(Duration::from_secs(15)).await {
            let stop = m["type"] == "tts" && m["state"] == "stop";
            got.push(m);
            if stop {
                return got;
            }
        }
        panic!("no tts stop; got {got:?}");
    }

    /// Waits until the server closed the channel; whether it did within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if *self.closed.lock().unwrap() {
                return true;
            }
            let _ = self.next(Duration::from_millis(50)).await;
        }
        *self.closed.lock().unwrap()
    }
}
