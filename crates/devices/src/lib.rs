//! The device side of bastion that needs neither a server nor a database: how activation
//! codes look and are compared, the secrets and tokens a device holds, the HMAC a device
//! with a factory key answers its challenge with, and the xiaozhi handshake and channel
//! messages. The server (crates/server) puts these behind its routes and its store.

pub mod challenge;
pub mod code;
pub mod mqtt;
pub mod secret;
pub mod xiaozhi;
