//! A device's JSON text frame on its channel, and the system information of its OTA
//! handshake.
#![no_main]
use bastion_devices::xiaozhi::{AudioParams, DeviceMessage, SystemInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(DeviceMessage::Hello { audio_params, .. }) = serde_json::from_slice(data) {
        let _ = AudioParams::negotiate(audio_params.as_ref());
    }
    if let Ok(info) = serde_json::from_slice::<SystemInfo>(data) {
        let _ = (info.board_name(), info.app_version());
    }
});
