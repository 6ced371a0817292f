//! Devices as the server runs them: proving a device at its handshake, the limits on guessing
//! activation codes, and this node's open device channels (so revoking or unbinding a device
//! cuts them at once, here and, within a second, on every other node).

pub mod channels;
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
}

impl DeviceRuntime {
    pub fn new(
        settings: &crate::Settings,
        redis: Option<bastion_auth::shared_redis::ConnectionManager>,
    ) -> Self {
        DeviceRuntime {
            channels: std::sync::Arc::new(Channels::default()),
            guesses: CodeGuesses::new(settings, redis),
        }
    }
}
