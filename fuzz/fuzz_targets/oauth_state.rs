//! The `state` an OAuth provider sends back to the callback: only a state this key issued
//! (for this provider, unexpired) is accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = std::str::from_utf8(data) else {
        return;
    };
    let key = bastion_auth::oauth::StateKey::new([9u8; 32]);
    assert!(
        key.verify(state, "mock", 1_700_000_000).is_err(),
        "a forged state verified"
    );
});
