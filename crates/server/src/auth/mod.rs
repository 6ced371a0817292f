//! Credentials: argon2id password hashes, the HS256 signing key, and access tokens.

pub mod password;
pub mod signing_key;
pub mod tokens;
