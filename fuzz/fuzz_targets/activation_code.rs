//! What a person types as an activation code, and a device's `Device-Id` (its MAC).
#![no_main]
use bastion_devices::{code, xiaozhi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(c) = code::normalize(text) {
        assert_eq!(c.len(), 6, "{c:?}");
        let _ = code::CodeHasher::new(&[3u8; 32]).hash(&c);
    }
    if let Some(mac) = xiaozhi::normalize_mac(text) {
        assert_eq!(mac.len(), 17, "{mac:?}");
        assert_eq!(xiaozhi::mac_suffix(&mac).len(), 8);
    }
});
