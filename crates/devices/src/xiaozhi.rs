//! The xiaozhi-esp32 protocol as bastion speaks it: the OTA handshake's body and answer, and
//! the JSON messages of a device channel (WebSocket text frames, or MQTT payloads).
//!
//! Parsing is lenient where firmware versions differ (unknown fields are ignored, missing
//! ones default) and strict where it matters: a message's `type` decides what it is, and
//! strings kept from a device are cut to a bounded length.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a string from a device may be where it is kept (board names, versions).
pub const MAX_FIELD_CHARS: usize = 64;

/// `s` cut to [`MAX_FIELD_CHARS`] characters, without control characters.
pub fn bounded(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD_CHARS)
        .collect()
}

/// A MAC address as the `Device-Id` header carries it, normalized to lower case with
/// colons; `None` unless it is six hex octets.
pub fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

/// The part of a MAC shown to a person confirming a binding: its last three octets.
pub fn mac_suffix(mac: &str) -> String {
    mac.get(mac.len().saturating_sub(8)..)
        .unwrap_or(mac)
        .to_string()
}

#[derive(Debug, Default, Deserialize)]
pub struct Application {
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Board {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The body of `POST /ota/`: the device's system information (only what bastion keeps).
#[derive(Debug, Default, Deserialize)]
pub struct SystemInfo {
    #[serde(default)]
    pub application: Application,
    #[serde(default)]
    pub board: Board,
    #[serde(default)]
    pub chip_model_name: Option<String>,
}

impl SystemInfo {
    pub fn board_name(&self) -> String {
        bounded(
            self.board
                .kind
                .as_deref()
                .or(self.board.name.as_deref())
                .or(self.chip_model_name.as_deref())
                .unwrap_or("unknown"),
        )
    }
    pub fn app_version(&self) -> String {
        bounded(self.application.version.as_deref().unwrap_or(""))
    }
}

/// The body of `POST /ota/activate`: empty for a device without a factory key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationAnswer {
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub challenge: Option<String>,
    #[serde(default)]
    pub hmac: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ServerTime {
    pub timestamp: i64,
    pub timezone_offset: i32,
}

#[derive(Debug, Serialize)]
pub struct Firmware {
    pub version: String,
    pub url: String,
}

/// What an unbound device shows its owner and how long it polls.
#[derive(Debug, Serialize)]
pub struct Activation {
    pub code: String,
    pub message: String,
    pub challenge: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct WebsocketSection {
    pub url: String,
    pub token: String,
    pub version: u32,
}

#[derive(Debug, Serialize)]
pub struct MqttSection {
    pub endpoint: String,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub publish_topic: String,
    pub subscribe_topic: String,
    pub keepalive: u32,
}

/// bastion's own section: the secret issued at first contact, to be sent back (header
/// `Device-Secret`) on every later handshake. Firmware that ignores it is known by the
/// `Client-Id` it sent first.
#[derive(Debug, Serialize)]
pub struct DeviceSection {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to `POST /ota/`: channel credentials only for a bound device.
#[derive(Debug, Serialize)]
pub struct OtaAnswer {
    pub server_time: ServerTime,
    pub firmware: Firmware,
    pub device: DeviceSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebsocketSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSection>,
}

/// Audio parameters of a channel, as `hello` carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioParams {
    #[serde(default = "opus")]
    pub format: String,
    #[serde(default = "sixteen_k")]
    pub sample_rate: u32,
    #[serde(default = "mono")]
    pub channels: u32,
    #[serde(default = "sixty")]
    pub frame_duration: u32,
}

fn opus() -> String {
    "opus".into()
}
fn sixteen_k() -> u32 {
    16_000
}
fn mono() -> u32 {
    1
}
fn sixty() -> u32 {
    60
}

impl Default for AudioParams {
    fn default() -> Self {
        AudioParams {
            format: opus(),
            sample_rate: sixteen_k(),
            channels: mono(),
            frame_duration: sixty(),
        }
    }
}

impl AudioParams {
    /// What bastion agrees to from what a device offers: Opus, mono, a rate and a frame
    /// length Opus has; anything else falls back to 16 kHz and 60 ms.
    pub fn negotiate(offered: Option<&AudioParams>) -> AudioParams {
        let d = AudioParams::default();
        let Some(o) = offered else { return d };
        AudioParams {
            format: d.format,
            sample_rate: if [8_000, 12_000, 16_000, 24_000, 48_000].contains(&o.sample_rate) {
                o.sample_rate
            } else {
                d.sample_rate
            },
            channels: 1,
            frame_duration: if [20, 40, 60, 120].contains(&o.frame_duration) {
                o.frame_duration
            } else {
                d.frame_duration
            },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Features {
    #[serde(default)]
    pub mcp: bool,
}

/// A message from a device.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DeviceMessage {
    Hello {
        #[serde(default)]
        features: Features,
        #[serde(default)]
        audio_params: Option<AudioParams>,
        #[serde(default)]
        transport: Option<String>,
    },
    Listen {
        #[serde(default)]
        state: String,
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        text: Option<String>,
    },
    Abort {
        #[serde(default)]
        reason: Option<String>,
    },
    Goodbye {},
    Mcp {
        payload: Value,
    },
    /// Any other type (older firmware's `iot`, say): read and ignored.
    #[serde(other)]
    Other,
}

/// A message to a device.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    Hello {
        transport: &'a str,
        session_id: &'a str,
        audio_params: AudioParams,
    },
    Stt {
        session_id: &'a str,
        text: &'a str,
    },
    Llm {
        session_id: &'a str,
        emotion: &'a str,
        text: &'a str,
    },
    Tts {
        session_id: &'a str,
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
    },
    Mcp {
        session_id: &'a str,
        payload: &'a Value,
    },
    Goodbye {
        session_id: &'a str,
    },
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Tool names the xiaozhi firmware keeps for its user (never for the model) even when a
/// device lists them: rebooting, upgrading, re-provisioning the device.
pub fn is_user_only_tool(name: &str, annotations: Option<&Value>) -> bool {
    let audience_user_only = annotations
        .and_then(|a| a.get("audience"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty() && a.iter().all(|v| v.as_str() == Some("user")));
    audience_user_only
        || matches!(
            name,
            "self.reboot" | "self.upgrade_firmware" | "self.system.reconfigure_wifi"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn macs_are_normalized_or_refused() {
        assert_eq!(
            normalize_mac("AA-bb-CC-dd-EE-ff").as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aabbccddeeff",
            "aa:bb:cc:dd:ee:ff:00",
        ] {
            assert!(normalize_mac(bad).is_none(), "{bad}");
        }
        assert_eq!(mac_suffix("aa:bb:cc:dd:ee:ff"), "dd:ee:ff");
    }

    #[test]
    fn device_messages_parse_by_type() {
        let hello: DeviceMessage = serde_json::from_value(json!({
            "type": "hello", "version": 1, "features": {"mcp": true}, "transport": "websocket",
            "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}
        }))
        .unwrap();
        assert!(matches!(
            hello,
            DeviceMessage::Hello {
                features: Features { mcp: true },
                ..
            }
        ));
        let listen: DeviceMessage = serde_json::from_value(
            json!({"type": "listen", "state": "detect", "text": "hi", "session_id": "s"}),
        )
        .unwrap();
        assert!(matches!(listen, DeviceMessage::Listen { ref state, .. } if state == "detect"));
        let other: DeviceMessage = serde_json::from_value(json!({"type": "iot", "x": 1})).unwrap();
        assert!(matches!(other, DeviceMessage::Other));
        assert!(serde_json::from_value::<DeviceMessage>(json!({"no": "type"})).is_err());
    }

    #[test]
    fn audio_is_negotiated_to_what_opus_has() {
        let odd = AudioParams {
            format: "pcm".into(),
            sample_rate: 44_100,
            channels: 2,
            frame_duration: 7,
        };
        assert_eq!(AudioParams::negotiate(Some(&odd)), AudioParams::default());
        let ok = AudioParams {
            format: "opus".into(),
            sample_rate: 24_000,
            channels: 1,
            frame_duration: 20,
        };
        assert_eq!(AudioParams::negotiate(Some(&ok)), ok);
    }

    #[test]
    fn user_only_tools_are_recognized() {
        assert!(is_user_only_tool("self.reboot", None));
        assert!(is_user_only_tool("x", Some(&json!({"audience": ["user"]}))));
        assert!(!is_user_only_tool(
            "x",
            Some(&json!({"audience": ["user", "assistant"]}))
        ));
        assert!(!is_user_only_tool("self.audio_speaker.set_volume", None));
    }

    #[test]
    fn kept_strings_are_bounded_and_clean() {
        assert_eq!(bounded(&"x".repeat(500)).len(), MAX_FIELD_CHARS);
        assert_eq!(bounded("a\r\nb"), "ab");
    }
}
