//! A settings file (`--config bastion.toml`), layered over the defaults as `bastion serve`
//! reads it, then checked: whatever the file says, reading and checking it never panics,
//! and what passes the checks keeps the limits that guard the server.
#![no_main]
use bastion_server::Settings;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = Figment::from(Serialized::defaults(Settings::default()))
        .merge(Toml::string(text))
        .extract::<Settings>()
    else {
        return;
    };
    if settings.validate().is_ok() {
        assert!((1024..=64 * 1024 * 1024).contains(&settings.max_body_bytes));
        assert!(settings.cache_ttl_secs <= 300);
        assert!((60..=3600).contains(&settings.access_token_ttl_secs));
        let _ = settings.check_bind();
    }
});
