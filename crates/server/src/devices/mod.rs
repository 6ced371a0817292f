//! Devices as the server runs them: proving a device at its handshake, the limits on guessing
//! activation codes, and this node's open device channels (so revoking or unbinding a device
//! cuts them at once, here and, within a second, on every other node).

pub mod channels;
pub mod events;
pub mod guesses;
pub mod identity;
pub mod mqtt;
pub mod session;

pub use channels::Channels;
pub use guesses::CodeGuesses;

/// The server's device state.
pub struct DeviceRuntime {
    pub channels: std::sync::Arc<Channels>,
    pub guesses: CodeGuesses,
    /// Device state changes on this node, for consoles that follow them.
    pub events: events::DeviceEvents,
    /// Where this node's MQTT endpoint listens, once it does (`mqtt_bind` may ask for port 0).
    pub mqtt_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

impl DeviceRuntime {
    pub fn new(
        settings: &crate::Settings,
        redis: Option<bastion_auth::shared_redis::ConnectionManager>,
    ) -> Self {
        DeviceRuntime {
            channels: std::sync::Arc::new(Channels::default()),
            guesses: CodeGuesses::new(settings, redis),
            events: Default::default(),
            mqtt_addr: std::sync::OnceLock::new(),
        }
    }
}
