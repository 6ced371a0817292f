//! Access tokens: short-lived JWTs (`typ: at+jwt`, RFC 9068), HS256 only, with `kid`.
//! Verification pins the algorithm to the one the key named by `kid` is for, and checks
//! `iss`, `aud`, `exp`, `nbf` and `typ`; `jku`, `x5u` and embedded `jwk` are never looked at.

use base64::Engine;
use bastion_core::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audience of access tokens for bastion's own API.
pub const API_AUDIENCE: &str = "bastion-api";
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token type is not at+jwt")]
    WrongType,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("signing failed")]
    Signing,
}

impl TokenError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::WrongType => "wrong_type",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Invalid(_) => "invalid",
            TokenError::Signing => "signing",
        }
    }
}

pub struct TokenService {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: i64,
}

impl TokenService {
    pub fn new(secret: &[u8], issuer: &str, ttl_secs: u64) -> Self {
        let kid = hex::encode(&Sha256::digest(secret)[..8]);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[API_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        TokenService {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            ttl_secs: ttl_secs as i64,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, user: UserId) -> Result<String, TokenError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: API_AUDIENCE.into(),
            sub: user.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti: random_token(""),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|_| TokenError::Signing)
    }

    /// The user an access token speaks for, if every check passes.
    pub fn verify(&self, token: &str) -> Result<UserId, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::WrongType);
        }
        // The key fixes the algorithm: only HS256 is ever configured for our kid.
        if header.kid.as_deref() != Some(self.kid.as_str()) || header.alg != Algorithm::HS256 {
            return Err(TokenError::UnknownKey);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))?;
        data.claims.sub.parse().map_err(|_| TokenError::Malformed)
    }
}

/// `prefix` followed by 32 random bytes, base64url without padding.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 hex of a high-entropy token: how single-use tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> TokenService {
        TokenService::new(&[7u8; 32], "bastion", 600)
    }

    #[test]
    fn issued_tokens_verify() {
        let s = svc();
        let u = UserId::new();
        assert_eq!(s.verify(&s.issue(u).unwrap()).unwrap(), u);
    }

    #[test]
    fn another_key_is_refused() {
        let other = TokenService::new(&[8u8; 32], "bastion", 600);
        let t = other.issue(UserId::new()).unwrap();
        assert_eq!(svc().verify(&t), Err(TokenError::UnknownKey));
    }

    #[test]
    fn alg_none_is_refused() {
        let s = svc();
        let t = s.issue(UserId::new()).unwrap();
        let mut parts = t.split('.');
        let _ = parts.next();
        let payload = parts.next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            s.kid
        ));
        let forged = format!("{header}.{payload}.");
        assert!(s.verify(&forged).is_err());
    }
}
