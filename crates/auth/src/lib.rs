//! bastion's credentials, free of HTTP: argon2id passwords and the password policy, access
//! tokens (JWT) and their signing keys, TOTP and recovery codes, OAuth/OIDC sign-in, the
//! limits on failed attempts and the single-use nonce store. The server wires them into the
//! request flow; the store keeps what must persist.

pub mod attempts;
pub mod budget;
pub mod keys;
pub mod nonce;
pub mod oauth;
pub mod password;
pub mod password_policy;
pub mod rate;
pub mod seal;
pub mod shared_redis;
pub mod signing_key;
pub mod tokens;
pub mod totp;
