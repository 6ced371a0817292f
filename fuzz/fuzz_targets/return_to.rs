//! Where a sign-in returns to (`return_to` of the OAuth start): a path on this site or an
//! allowed origin, never another site.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(requested) = std::str::from_utf8(data) else {
        return;
    };
    let allowed =
        bastion_auth::oauth::AllowedOrigins::parse(&["https://app.example.test".to_string()])
            .expect("a valid origin");
    if let Ok(target) = bastion_auth::oauth::return_to::check(Some(requested), &allowed) {
        assert!(
            (target.starts_with('/') && !target.starts_with("//") && !target.contains('\\'))
                || target.starts_with("https://app.example.test/")
                || target == "https://app.example.test",
            "{requested:?} returned to {target:?}"
        );
    }
});
