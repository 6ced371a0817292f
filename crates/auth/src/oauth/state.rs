//! The OAuth `state` parameter: a compact token that bastion signs (HMAC-SHA256) and gets
//! back on the callback. It carries a random 32-byte nonce, the provider, the return path
//! and an expiry, so the callback needs nothing stored server-side except the record that
//! the nonce was used (single use is the server's nonce store's job).
//!
//! Format: `base64url(payload) "." base64url(mac)`, where payload is
//! `version(1) | expires_at(u64 BE, unix seconds) | nonce(32) | len(provider)(1) | provider | return_to`
//! and mac = HMAC-SHA256(key, "bastion/oauth/state/v1\0" || payload).

use super::secrets::{self, StateKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use std::time::Duration;

/// How long a sign-in may take between `start` and `callback` unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);

const VERSION: u8 = 1;
const MAC_LABEL: &[u8] = b"bastion/oauth/state/v1\0";
/// Far more than a legitimate state (a return URL is capped at 2 KiB): refuse before decoding.
const MAX_STATE_CHARS: usize = 4096;

/// Why a `state` was refused. Says what failed, never what a valid one would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state parameter is malformed")]
    Malformed,
    #[error("the state parameter's signature does not verify")]
    BadSignature,
    #[error("the state parameter has expired: start the sign-in again")]
    Expired,
    #[error("the state parameter was issued for another provider")]
    WrongProvider,
}

impl StateError {
    /// A short stable reason for logs, metrics and audit details.
    pub fn reason(&self) -> &'static str {
        match self {
            StateError::Malformed => "state_malformed",
            StateError::BadSignature => "state_bad_signature",
            StateError::Expired => "state_expired",
            StateError::WrongProvider => "state_wrong_provider",
        }
    }
}

/// What a verified (or freshly issued) state says.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    nonce: [u8; 32],
    pub provider: String,
    /// Already checked against the return-path rules when the state was issued.
    pub return_to: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("provider", &self.provider)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// The id under which the server's nonce store records this flow's nonce as used:
    /// hex SHA-256 of the nonce (the nonce itself is never stored).
    pub fn nonce_id(&self) -> String {
        secrets::nonce_id(&self.nonce)
    }

    /// Seconds until this state expires (at least 1): how long the nonce store must remember it.
    pub fn ttl_secs(&self, now: i64) -> u64 {
        (self.expires_at - now).max(1) as u64
    }

    pub(crate) fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }
}

impl StateKey {
    /// Issues a state for `provider` that returns to `return_to` (already validated) and
    /// expires `ttl` after `now` (unix seconds).
    pub fn issue(
        &self,
        provider: &str,
        return_to: &str,
        ttl: Duration,
        now: i64,
    ) -> (String, Flow) {
        let mut nonce = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let flow = Flow {
            nonce,
            provider: provider.to_string(),
            return_to: return_to.to_string(),
            expires_at: now.saturating_add(ttl.as_secs() as i64),
        };
        (self.encode(&flow), flow)
    }

    fn encode(&self, flow: &Flow) -> String {
        let provider = flow.provider.as_bytes();
        let provider_len =
            u8::try_from(provider.len()).expect("provider names are at most 32 bytes");
        let mut payload = Vec::with_capacity(42 + provider.len() + flow.return_to.len());
        payload.push(VERSION);
        payload.extend_from_slice(&(flow.expires_at.max(0) as u64).to_be_bytes());
        payload.extend_from_slice(&flow.nonce);
        payload.push(provider_len);
        payload.extend_from_slice(provider);
        payload.extend_from_slice(flow.return_to.as_bytes());
        let mac = self.mac(&[MAC_LABEL, &payload]);
        format!("{}.{}", B64.encode(&payload), B64.encode(mac))
    }

    /// Verifies `token`: the MAC (constant time) first, then the expiry against `now`, then
    /// that it was issued for `provider` (the provider of the callback's path).
    pub fn verify(&self, token: &str, provider: &str, now: i64) -> Result<Flow, StateError> {
        if token.len() > MAX_STATE_CHARS {
            return Err(StateError::Malformed);
        }
        let (p, m) = token.split_once('.').ok_or(StateError::Malformed)?;
        let payload = B64.decode(p).map_err(|_| StateError::Malformed)?;
        let mac = B64.decode(m).map_err(|_| StateError::Malformed)?;
        if !self.mac_matches(&[MAC_LABEL, &payload], &mac) {
            return Err(StateError::BadSignature);
        }
        let flow = decode(&payload).ok_or(StateError::Malformed)?;
        if now >= flow.expires_at {
            return Err(StateError::Expired);
        }
        if flow.provider != provider {
            return Err(StateError::WrongProvider);
        }
        Ok(flow)
    }
}

fn decode(payload: &[u8]) -> Option<Flow> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION || rest.len() < 8 + 32 + 1 {
        return None;
    }
    let expires_at = i64::try_from(u64::from_be_bytes(rest[..8].try_into().ok()?)).ok()?;
    let nonce: [u8; 32] = rest[8..40].try_into().ok()?;
    let provider_len = rest[40] as usize;
    let rest = &rest[41..];
    if rest.len() < provider_len {
        return None;
    }
    let provider = std::str::from_utf8(&rest[..provider_len]).ok()?.to_string();
    let return_to = std::str::from_utf8(&rest[provider_len..]).ok()?.to_string();
    Some(Flow {
        nonce,
        provider,
        return_to,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn key() -> StateKey {
        StateKey::new([7u8; 32])
    }

    #[test]
    fn a_state_round_trips() {
        let (token, issued) = key().issue("corp", "/ui/after?x=1", DEFAULT_TTL, NOW);
        let got = key().verify(&token, "corp", NOW + 30).unwrap();
        assert_eq!(got, issued);
        assert_eq!(got.return_to, "/ui/after?x=1");
        assert_eq!(got.expires_at, NOW + 600);
        assert_eq!(got.nonce_id().len(), 64);
        assert!(!format!("{got:?}").contains("nonce:"));
    }

    #[test]
    fn two_states_never_share_a_nonce() {
        let (a, fa) = key().issue("corp", "/", DEFAULT_TTL, NOW);
        let (b, fb) = key().issue("corp", "/", DEFAULT_TTL, NOW);
        assert_ne!(a, b);
        assert_ne!(fa.nonce_id(), fb.nonce_id());
    }

    #[test]
    fn a_tampered_state_is_refused() {
        let (token, _) = key().issue("corp", "/", DEFAULT_TTL, NOW);
        let (p, m) = token.split_once('.').unwrap();
        // Change the return path inside the payload, keep the MAC.
        let mut payload = B64.decode(p).unwrap();
        *payload.last_mut().unwrap() = b'x';
        let forged = format!("{}.{m}", B64.encode(&payload));
        assert_eq!(
            key().verify(&forged, "corp", NOW),
            Err(StateError::BadSignature)
        );
        // Flip one bit of the MAC.
        let mut mac = B64.decode(m).unwrap();
        mac[0] ^= 1;
        let forged = format!("{p}.{}", B64.encode(&mac));
        assert_eq!(
            key().verify(&forged, "corp", NOW),
            Err(StateError::BadSignature)
        );
        // A truncated MAC is not a shorter valid one.
        let forged = format!("{p}.{}", B64.encode(&B64.decode(m).unwrap()[..16]));
        assert_eq!(
            key().verify(&forged, "corp", NOW),
            Err(StateError::BadSignature)
        );
        // Signed with another key.
        let (other, _) = StateKey::new([8u8; 32]).issue("corp", "/", DEFAULT_TTL, NOW);
        assert_eq!(
            key().verify(&other, "corp", NOW),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", ".", "abc", "a.b.c", "!!!.???", &"A".repeat(5000)] {
            assert!(
                matches!(
                    key().verify(bad, "corp", NOW),
                    Err(StateError::Malformed | StateError::BadSignature)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_expired_state_is_refused() {
        let (token, _) = key().issue("corp", "/", Duration::from_secs(60), NOW);
        assert!(key().verify(&token, "corp", NOW + 59).is_ok());
        assert_eq!(
            key().verify(&token, "corp", NOW + 60),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn a_state_for_another_provider_is_refused() {
        let (token, _) = key().issue("corp", "/", DEFAULT_TTL, NOW);
        assert_eq!(
            key().verify(&token, "google", NOW),
            Err(StateError::WrongProvider)
        );
    }
}
