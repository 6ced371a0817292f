//! Who a device is at its handshake. The `Device-Id` header (a MAC, printed on the box and
//! visible on the network) only names the device; it never proves anything. The proof is the
//! secret bastion issued at the first contact (header `Device-Secret`) or, for firmware that
//! never sends it back, the `Client-Id` the device sent at its first contact (a random UUID
//! the xiaozhi firmware makes once and keeps). A device that has sent its secret once is held
//! to it from then on.

use axum::http::HeaderMap;
use bastion_devices::secret;
use bastion_devices::xiaozhi::normalize_mac;
use bastion_store::devices::Device;

/// The identifying headers of a device request.
#[derive(Debug, Clone)]
pub struct DeviceHeaders {
    pub mac: String,
    pub client_id: Option<String>,
    pub secret: Option<String>,
}

impl DeviceHeaders {
    /// `None` when `Device-Id` is missing or is not a MAC.
    pub fn read(headers: &HeaderMap) -> Option<DeviceHeaders> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map(str::to_string)
        };
        Some(DeviceHeaders {
            mac: normalize_mac(&text("device-id")?)?,
            client_id: text("client-id"),
            secret: text("device-secret"),
        })
    }
}

/// How a known device proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Secret,
    ClientId,
}

/// Whether the request proves it comes from `device`. A secret that is sent must be right
/// (no falling back to the Client-Id); without one, the Client-Id pinned at first contact
/// must match, unless the device is held to its secret.
pub fn prove(device: &Device, h: &DeviceHeaders) -> Option<Proof> {
    if let Some(s) = &h.secret {
        let stored = device.secret_hash.as_deref()?;
        return secret::matches(s, stored).then_some(Proof::Secret);
    }
    if device.secret_required {
        return None;
    }
    match (&h.client_id, &device.client_id_hash) {
        (Some(c), Some(stored)) if secret::matches(c, stored) => Some(Proof::ClientId),
        _ => None,
    }
}
