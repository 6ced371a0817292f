//! Signed tokens: access tokens (`typ: at+jwt`, RFC 9068) for the API, and MFA challenges
//! (`typ: mfa+jwt`) that only the second sign-in step accepts. HS256 only, with `kid`.
//!
//! Verification looks the key up by `kid` in the key ring (the current key and retired ones
//! that still verify until their tokens expire), pins the algorithm to the one that key is
//! for, and checks `typ`, `iss`, `aud`, `exp` and `nbf`. A token of one kind is never
//! accepted as another: each kind has its own `typ` and audience. `jku`, `x5u` and embedded
//! `jwk` headers are never looked at.

use base64::Engine;
use bastion_core::{AssistantId, CapabilitySet, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The audience of access tokens for bastion's own API.
pub const API_AUDIENCE: &str = "bastion-api";
/// The audience of a scoped token is this prefix and the one assistant it works on.
pub const ASSISTANT_AUDIENCE_PREFIX: &str = "bastion-assistant:";
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// MFA challenges: proof that the password step passed, good for the second step only.
pub const MFA_AUDIENCE: &str = "bastion-mfa";
pub const MFA_TOKEN_TYPE: &str = "mfa+jwt";
/// How long a user has to enter their code after the password step.
pub const MFA_CHALLENGE_TTL_SECS: i64 = 300;

/// Authentication methods (RFC 8176 `amr` values) a session was established with.
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_OTP: &str = "otp";
pub const AMR_OAUTH: &str = "fed";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// The session (sign-in) this token belongs to; revoking it ends the token early.
    pub sid: String,
    pub amr: Vec<String>,
    /// A scoped token's capabilities (space-separated names); absent on a full token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChallengeClaims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub user: UserId,
    pub session: String,
    pub amr: Vec<String>,
    /// Set on a scoped token: the one assistant it works on and what it may do there.
    pub scope: Option<TokenScope>,
}

/// What a scoped token is narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenScope {
    pub assistant: AssistantId,
    pub capabilities: CapabilitySet,
}

impl VerifiedAccess {
    /// Whether the sign-in passed a second factor.
    pub fn has_mfa(&self) -> bool {
        amr_has_mfa(&self.amr)
    }
}

/// Whether authentication methods `amr` include a second factor.
pub fn amr_has_mfa(amr: &[String]) -> bool {
    amr.iter().any(|m| m == AMR_OTP)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token is of another type")]
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

/// The key id of an HS256 secret: the first 8 bytes of its SHA-256, hex. It names the key
/// without revealing it.
pub fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

/// Issues and verifies tokens with the current key; verifies with retired keys too.
pub struct TokenService {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    access: Validation,
    challenge: Validation,
    issuer: String,
    ttl_secs: i64,
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    v.leeway = 5;
    v
}

/// Access tokens carry one of two audiences (the API, or one assistant), which
/// [`TokenService::verify`] checks itself after decoding; everything else as [`validation`].
fn access_validation(issuer: &str) -> Validation {
    let mut v = validation(issuer, API_AUDIENCE);
    v.validate_aud = false;
    v
}

impl TokenService {
    /// `current` signs; `retired` keys only verify, so rotating the signing key logs nobody
    /// out: tokens signed before the rotation work until they expire.
    pub fn new(current: &[u8], retired: &[&[u8]], issuer: &str, ttl_secs: u64) -> Self {
        let kid = key_id(current);
        let mut decoding = HashMap::new();
        for secret in retired.iter().copied().chain(std::iter::once(current)) {
            decoding.insert(key_id(secret), DecodingKey::from_secret(secret));
        }
        TokenService {
            kid,
            encoding: EncodingKey::from_secret(current),
            decoding,
            access: access_validation(issuer),
            challenge: validation(issuer, MFA_AUDIENCE),
            issuer: issuer.to_string(),
            ttl_secs: ttl_secs as i64,
        }
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn current_kid(&self) -> &str {
        &self.kid
    }

    fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(typ.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| TokenError::Signing)
    }

    /// An access token for `user` in session `session`, established with methods `amr`.
    pub fn issue(&self, user: UserId, session: &str, amr: &[&str]) -> Result<String, TokenError> {
        self.issue_access(user, session, amr, None, self.ttl_secs)
    }

    /// An access token narrowed to one assistant and `capabilities` there, living
    /// `ttl_secs`. It belongs to the same session, so ending the session ends it too.
    pub fn issue_scoped(
        &self,
        user: UserId,
        session: &str,
        amr: &[&str],
        scope: TokenScope,
        ttl_secs: i64,
    ) -> Result<String, TokenError> {
        self.issue_access(user, session, amr, Some(scope), ttl_secs)
    }

    fn issue_access(
        &self,
        user: UserId,
        session: &str,
        amr: &[&str],
        scope: Option<TokenScope>,
        ttl_secs: i64,
    ) -> Result<String, TokenError> {
        let now = now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: match scope {
                Some(s) => format!("{ASSISTANT_AUDIENCE_PREFIX}{}", s.assistant),
                None => API_AUDIENCE.into(),
            },
            sub: user.to_string(),
            sid: session.to_string(),
            amr: amr.iter().map(|m| m.to_string()).collect(),
            caps: scope.map(|s| s.capabilities.to_names()),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: random_token(""),
        };
        self.sign(ACCESS_TOKEN_TYPE, &claims)
    }

    /// A challenge saying `user` passed the password step, good for a few minutes and for
    /// the second step only.
    pub fn issue_mfa_challenge(&self, user: UserId) -> Result<String, TokenError> {
        let now = now();
        let claims = ChallengeClaims {
            iss: self.issuer.clone(),
            aud: MFA_AUDIENCE.into(),
            sub: user.to_string(),
            iat: now,
            nbf: now,
            exp: now + MFA_CHALLENGE_TTL_SECS,
            jti: random_token(""),
        };
        self.sign(MFA_TOKEN_TYPE, &claims)
    }

    /// Checks the header: the expected `typ`, and a `kid` naming one of our keys, whose one
    /// algorithm (HS256) the header must state.
    fn key_for(&self, token: &str, typ: &str) -> Result<&DecodingKey, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::WrongType);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::UnknownKey);
        }
        Ok(key)
    }

    /// What an access token says, if every check passes.
    pub fn verify(&self, token: &str) -> Result<VerifiedAccess, TokenError> {
        let key = self.key_for(token, ACCESS_TOKEN_TYPE)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.access)
            .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))?;
        let c = data.claims;
        if c.sid.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(VerifiedAccess {
            user: c.sub.parse().map_err(|_| TokenError::Malformed)?,
            scope: token_scope(&c.aud, c.caps.as_deref())?,
            session: c.sid,
            amr: c.amr,
        })
    }

    /// The user an MFA challenge was issued to, if it is ours, unexpired and a challenge.
    pub fn verify_mfa_challenge(&self, token: &str) -> Result<UserId, TokenError> {
        let key = self.key_for(token, MFA_TOKEN_TYPE)?;
        let data = jsonwebtoken::decode::<ChallengeClaims>(token, key, &self.challenge)
            .map_err(|e| TokenError::Invalid(format!("{:?}", e.kind())))?;
        data.claims.sub.parse().map_err(|_| TokenError::Malformed)
    }
}

/// The scope an access token's audience and `caps` claim state. A full token has the API
/// audience and no `caps`; a scoped one names an assistant and at least one known
/// capability. Any other combination is refused, never read as the wider of the two.
fn token_scope(aud: &str, caps: Option<&str>) -> Result<Option<TokenScope>, TokenError> {
    if aud == API_AUDIENCE {
        return match caps {
            None => Ok(None),
            Some(_) => Err(TokenError::Malformed),
        };
    }
    let assistant = aud
        .strip_prefix(ASSISTANT_AUDIENCE_PREFIX)
        .and_then(|id| id.parse::<AssistantId>().ok())
        .ok_or_else(|| TokenError::Invalid("InvalidAudience".into()))?;
    let capabilities = caps
        .and_then(CapabilitySet::from_names)
        .filter(|c| !c.is_empty())
        .ok_or(TokenError::Malformed)?;
    Ok(Some(TokenScope {
        assistant,
        capabilities,
    }))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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

    const KEY: [u8; 32] = [7u8; 32];

    fn svc() -> TokenService {
        TokenService::new(&KEY, &[], "bastion", 600)
    }

    #[test]
    fn issued_tokens_verify() {
        let s = svc();
        let u = UserId::new();
        let v = s
            .verify(&s.issue(u, "s1", &[AMR_PASSWORD]).unwrap())
            .unwrap();
        assert_eq!(v.user, u);
        assert_eq!(v.session, "s1");
        assert!(!v.has_mfa());
        let v = s
            .verify(&s.issue(u, "s1", &[AMR_PASSWORD, AMR_OTP]).unwrap())
            .unwrap();
        assert!(v.has_mfa());
    }

    #[test]
    fn another_key_is_refused() {
        let other = TokenService::new(&[8u8; 32], &[], "bastion", 600);
        let t = other.issue(UserId::new(), "s", &[]).unwrap();
        assert_eq!(svc().verify(&t), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_retired_key_still_verifies_but_no_longer_signs() {
        let old = svc();
        let t = old.issue(UserId::new(), "s", &[]).unwrap();
        let rotated = TokenService::new(&[9u8; 32], &[&KEY], "bastion", 600);
        assert!(rotated.verify(&t).is_ok());
        let fresh = rotated.issue(UserId::new(), "s", &[]).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
            Some(key_id(&[9u8; 32]).as_str())
        );
        // Dropped from the ring, the old key's tokens stop working.
        let forgotten = TokenService::new(&[9u8; 32], &[], "bastion", 600);
        assert_eq!(forgotten.verify(&t), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_challenge_is_not_an_access_token_and_back() {
        let s = svc();
        let u = UserId::new();
        let challenge = s.issue_mfa_challenge(u).unwrap();
        assert_eq!(s.verify(&challenge), Err(TokenError::WrongType));
        assert_eq!(s.verify_mfa_challenge(&challenge).unwrap(), u);
        let access = s.issue(u, "s", &[]).unwrap();
        assert_eq!(s.verify_mfa_challenge(&access), Err(TokenError::WrongType));
    }

    #[test]
    fn a_scoped_token_names_its_assistant_and_capabilities() {
        let s = svc();
        let u = UserId::new();
        let scope = TokenScope {
            assistant: AssistantId::new(),
            capabilities: CapabilitySet::of(&[bastion_core::Capability::Chat]),
        };
        let t = s.issue_scoped(u, "s", &[AMR_PASSWORD], scope, 60).unwrap();
        let v = s.verify(&t).unwrap();
        assert_eq!(v.scope, Some(scope));
        assert_eq!(
            s.verify(&s.issue(u, "s", &[]).unwrap()).unwrap().scope,
            None
        );
    }

    #[test]
    fn audience_and_caps_must_agree() {
        assert_eq!(token_scope(API_AUDIENCE, None), Ok(None));
        // Capabilities on a full token, or none on a scoped one: refused, not guessed.
        assert_eq!(
            token_scope(API_AUDIENCE, Some("chat")),
            Err(TokenError::Malformed)
        );
        let aud = format!("{ASSISTANT_AUDIENCE_PREFIX}{}", AssistantId::new());
        assert_eq!(token_scope(&aud, None), Err(TokenError::Malformed));
        assert_eq!(token_scope(&aud, Some("")), Err(TokenError::Malformed));
        assert_eq!(
            token_scope(&aud, Some("chat root")),
            Err(TokenError::Malformed)
        );
        assert!(token_scope(&aud, Some("chat")).unwrap().is_some());
        assert!(token_scope("bastion-mfa", None).is_err());
        assert!(token_scope("bastion-assistant:nope", Some("chat")).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let s = svc();
        let t = s.issue(UserId::new(), "s", &[]).unwrap();
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
