//! An access token or MFA challenge as it arrives in `Authorization: Bearer …` or a cookie:
//! the JWT header, claims and signature are parsed and checked; nothing panics, and nothing
//! but a token signed with the key verifies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let tokens = bastion_auth::tokens::TokenService::new(&[7u8; 32], &[&[8u8; 32]], "bastion", 600);
    assert!(
        tokens.verify(token).is_err(),
        "a token nobody signed verified"
    );
    assert!(tokens.verify_mfa_challenge(token).is_err());
});
