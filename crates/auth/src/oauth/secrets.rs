//! The one key of the OAuth flow and what is derived from it. The server derives this key
//! (32 bytes) from its own secret material; every value below is an HMAC-SHA256 under it
//! with a distinct, NUL-terminated label, so no value can stand in for another:
//!
//! - the state's MAC (see `state.rs`);
//! - the PKCE code verifier, `HMAC(key, "bastion/oauth/pkce\0" || nonce)`: the callback
//!   recomputes it from the state's nonce, so nothing is stored between start and callback,
//!   and someone who sees the state (it travels through the browser and the provider)
//!   cannot compute it;
//! - the OpenID `nonce` parameter, `HMAC(key, "bastion/oauth/oidc-nonce\0" || nonce)`;
//! - the browser binding, `HMAC(key, "bastion/oauth/browser\0" || nonce)`, the value of the
//!   short-lived cookie set by `start`, so a callback completes only in the browser that
//!   started it (no login CSRF with a code and state obtained elsewhere).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const PKCE_LABEL: &[u8] = b"bastion/oauth/pkce\0";
const OIDC_NONCE_LABEL: &[u8] = b"bastion/oauth/oidc-nonce\0";
const BROWSER_LABEL: &[u8] = b"bastion/oauth/browser\0";
const NONCE_ID_LABEL: &[u8] = b"bastion/oauth/nonce-id\0";

/// The OAuth flow key: signs states and derives each flow's secrets.
#[derive(Clone)]
pub struct StateKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey([REDACTED])")
    }
}

/// What one flow needs at the provider, all derived from its nonce.
pub struct FlowSecrets {
    /// RFC 7636 code verifier: 43 base64url characters (256 bits).
    pub pkce_verifier: SecretString,
    /// `BASE64URL(SHA256(verifier))`, sent with `code_challenge_method=S256`.
    pub pkce_challenge: String,
    /// The OpenID `nonce` sent in the authorization request and expected in the ID token.
    pub oidc_nonce: String,
    /// The value of the browser-binding cookie.
    pub browser_binding: String,
}

impl StateKey {
    pub fn new(key: [u8; 32]) -> Self {
        StateKey(Zeroizing::new(key))
    }

    /// From a slice that must be exactly 32 bytes.
    pub fn from_slice(key: &[u8]) -> Option<Self> {
        let key: [u8; 32] = key.try_into().ok()?;
        Some(Self::new(key))
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Constant-time comparison of `mac` with the MAC of `parts`.
    pub(crate) fn mac_matches(&self, parts: &[&[u8]], mac: &[u8]) -> bool {
        let mut m = HmacSha256::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        for p in parts {
            m.update(p);
        }
        m.verify_slice(mac).is_ok()
    }

    fn derive(&self, label: &[u8], nonce: &[u8; 32]) -> String {
        B64.encode(self.mac(&[label, nonce]))
    }

    /// The secrets of the flow whose state carries `flow`'s nonce.
    pub fn secrets(&self, flow: &super::Flow) -> FlowSecrets {
        let nonce = flow.nonce();
        let verifier = Zeroizing::new(self.derive(PKCE_LABEL, nonce));
        let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
        FlowSecrets {
            pkce_verifier: SecretString::from(verifier.as_str()),
            pkce_challenge: challenge,
            oidc_nonce: self.derive(OIDC_NONCE_LABEL, nonce),
            browser_binding: self.derive(BROWSER_LABEL, nonce),
        }
    }

    /// Whether `cookie` is the browser binding of `flow`, in constant time.
    pub fn browser_binding_matches(&self, flow: &super::Flow, cookie: &str) -> bool {
        let expected = self.derive(BROWSER_LABEL, flow.nonce());
        expected.as_bytes().ct_eq(cookie.as_bytes()).into()
    }
}

/// Hex SHA-256 of a labelled nonce: the nonce store's key for it.
pub(crate) fn nonce_id(nonce: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(NONCE_ID_LABEL);
    h.update(nonce);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::state::DEFAULT_TTL;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_are_stable_per_flow_and_distinct() {
        let key = StateKey::new([3u8; 32]);
        let (_, flow) = key.issue("corp", "/", DEFAULT_TTL, 1_700_000_000);
        let a = key.secrets(&flow);
        let b = key.secrets(&flow);
        assert_eq!(
            a.pkce_verifier.expose_secret(),
            b.pkce_verifier.expose_secret()
        );
        assert_eq!(a.pkce_verifier.expose_secret().len(), 43);
        assert!(a
            .pkce_verifier
            .expose_secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let all = [
            a.pkce_verifier.expose_secret().to_string(),
            a.pkce_challenge.clone(),
            a.oidc_nonce.clone(),
            a.browser_binding.clone(),
            flow.nonce_id(),
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        assert!(key.browser_binding_matches(&flow, &a.browser_binding));
        assert!(!key.browser_binding_matches(&flow, &a.oidc_nonce));
        assert!(!key.browser_binding_matches(&flow, ""));
        let other = StateKey::new([4u8; 32]);
        assert_ne!(
            other.secrets(&flow).pkce_verifier.expose_secret(),
            a.pkce_verifier.expose_secret()
        );
    }

    #[test]
    fn the_challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            B64.encode(Sha256::digest(verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_key_is_never_printed() {
        assert_eq!(
            format!("{:?}", StateKey::new([9u8; 32])),
            "StateKey([REDACTED])"
        );
    }
}
