//! Keys derived from the master key with HKDF-SHA256, one per purpose, so that no key does
//! two jobs and a key leaked from one purpose says nothing about the others.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

pub type Key = Zeroizing<[u8; 32]>;

pub struct DerivedKeys {
    /// Signs CSRF tokens (bound to a session).
    pub csrf: Key,
    /// Seals TOTP secrets at rest.
    pub totp_seal: Key,
    /// Signs OAuth `state` and derives PKCE verifiers.
    pub oauth_state: Key,
    /// Signs assistants' MCP endpoint tokens.
    pub mcp_endpoint: Key,
    /// Keys the stored hashes of device activation codes.
    pub device_code: Key,
}

fn derive(master: &[u8], info: &str) -> Key {
    let hk = Hkdf::<Sha256>::new(Some(b"bastion key derivation"), master);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    if hk.expand(info.as_bytes(), out.as_mut()).is_err() {
        unreachable!("HKDF output length is fixed at 32 bytes");
    }
    out
}

impl DerivedKeys {
    pub fn from_master(master: &[u8]) -> Self {
        DerivedKeys {
            csrf: derive(master, "bastion csrf v1"),
            totp_seal: derive(master, "bastion totp seal v1"),
            oauth_state: derive(master, "bastion oauth state v1"),
            mcp_endpoint: derive(master, "bastion mcp endpoint v1"),
            device_code: derive(master, "bastion device activation code v1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_gets_its_own_key_and_derivation_is_stable() {
        let a = DerivedKeys::from_master(&[1u8; 32]);
        let b = DerivedKeys::from_master(&[1u8; 32]);
        let c = DerivedKeys::from_master(&[2u8; 32]);
        assert_eq!(*a.csrf, *b.csrf);
        assert_ne!(*a.csrf, *a.totp_seal);
        assert_ne!(*a.totp_seal, *a.oauth_state);
        assert_ne!(*a.oauth_state, *a.mcp_endpoint);
        assert_ne!(*a.mcp_endpoint, *a.device_code);
        assert_ne!(*a.csrf, *c.csrf);
    }
}
