//! An assistant's MCP endpoint: a WebSocket through which an external MCP server attaches
//! itself and offers its tools to that assistant (the xiaozhi "MCP endpoint" shape: the
//! server connects out to a URL carrying a token, then answers JSON-RPC over text frames,
//! with bastion as the MCP client).
//!
//! The token is signed (HMAC-SHA256 under a key derived from the master key), names the
//! assistant, the endpoint row and the purpose, and expires; the row must still be live, so
//! revoking it (or issuing a new token) cuts the token off at once, and a live connection is
//! closed within a second on this node (within [`REVOCATION_POLL`] on others). It is not
//! an access token or an API key and the request flow accepts it nowhere else.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bastion_core::{AssistantId, McpServerId};
use bastion_store::tools::McpEndpoint;
use bastion_tools::mcp::McpSession;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const PREFIX: &str = "bmcp";
const PURPOSE: &str = "mcp_endpoint";

/// How often a live connection re-checks that its token row is still live (for revocations
/// made on other nodes).
pub const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// The registry name of an assistant's attached server.
pub const SERVER_NAME: &str = "endpoint";
/// The `url` an attached server's row carries: it is reached through its live connection.
pub const ATTACHED_URL: &str = "attached:mcp-endpoint";

fn mac(key: &[u8], payload: &str) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(PURPOSE.as_bytes());
    m.update(b"|");
    m.update(payload.as_bytes());
    Some(m)
}

/// The token for endpoint row `e`, signed with `key`.
pub fn issue(key: &[u8], e: &McpEndpoint) -> Option<String> {
    let payload = format!("{}.{}.{}.{PURPOSE}", e.assistant_id, e.id, e.expires_at);
    let sig = mac(key, &payload)?.finalize().into_bytes();
    Some(format!(
        "{PREFIX}.{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

/// What a token claims, once its signature checked out with one of `keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub assistant: AssistantId,
    pub endpoint: McpServerId,
    pub expires_at: i64,
}

/// The claims of a well-signed, unexpired endpoint token; `None` for anything else.
pub fn verify(keys: &[&[u8]], token: &str, now: i64) -> Option<Claims> {
    let mut parts = token.split('.');
    let (Some(PREFIX), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    // verify_slice compares in constant time.
    if !keys
        .iter()
        .any(|k| mac(k, &payload).is_some_and(|m| m.verify_slice(&sig).is_ok()))
    {
        return None;
    }
    let mut fields = payload.split('.');
    let (Some(a), Some(e), Some(exp), Some(PURPOSE), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    let claims = Claims {
        assistant: a.parse().ok()?,
        endpoint: e.parse().ok()?,
        expires_at: exp.parse().ok()?,
    };
    (claims.expires_at > now).then_some(claims)
}

/// A live attached server: its session and how to cut it off.
pub struct Attached {
    pub endpoint: McpServerId,
    pub session: Arc<McpSession>,
    pub cut: Arc<Notify>,
}

/// The attached servers of this node, one per assistant (a new attachment replaces the old).
#[derive(Default)]
pub struct AttachedServers {
    live: Mutex<HashMap<AssistantId, Attached>>,
}

impl AttachedServers {
    /// Registers `session` for `assistant`, cutting off the one it replaces.
    pub fn insert(&self, assistant: AssistantId, attached: Attached) {
        if let Ok(mut live) = self.live.lock() {
            if let Some(old) = live.insert(assistant, attached) {
                old.cut.notify_one();
            }
        }
    }
    /// Forgets `assistant`'s session if it is still the one of `endpoint` and `cut`.
    pub fn remove(&self, assistant: AssistantId, cut: &Arc<Notify>) {
        if let Ok(mut live) = self.live.lock() {
            if live
                .get(&assistant)
                .is_some_and(|a| Arc::ptr_eq(&a.cut, cut))
            {
                live.remove(&assistant);
            }
        }
    }
    pub fn session(&self, assistant: AssistantId) -> Option<Arc<McpSession>> {
        self.live
            .lock()
            .ok()?
            .get(&assistant)
            .map(|a| a.session.clone())
    }
    pub fn is_connected(&self, assistant: AssistantId) -> bool {
        self.live
            .lock()
            .is_ok_and(|live| live.contains_key(&assistant))
    }
    /// Cuts off `assistant`'s attached server now (its token was revoked or replaced).
    pub fn cut(&self, assistant: AssistantId) {
        if let Some(a) = self.live.lock().ok().and_then(|mut l| l.remove(&assistant)) {
            a.cut.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(expires_at: i64) -> McpEndpoint {
        McpEndpoint {
            id: McpServerId::new(),
            assistant_id: AssistantId::new(),
            expires_at,
            revoked_at: None,
            created_by: "user:x".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_token_verifies_with_its_key_only_and_until_it_expires() {
        let e = endpoint(10_000);
        let t = issue(b"key one", &e).unwrap();
        let c = verify(&[b"key one"], &t, 5_000).unwrap();
        assert_eq!((c.assistant, c.endpoint), (e.assistant_id, e.id));
        assert!(verify(&[b"key two"], &t, 5_000).is_none());
        assert!(verify(&[b"key two", b"key one"], &t, 5_000).is_some());
        assert!(verify(&[b"key one"], &t, 10_000).is_none(), "expired");
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let e = endpoint(10_000);
        let t = issue(b"k", &e).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        // Another assistant in the payload, with the original signature.
        let forged_payload = format!("{}.{}.{}.{PURPOSE}", AssistantId::new(), e.id, 10_000);
        let forged = format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(forged_payload),
            parts[2]
        );
        // A later expiry.
        let later = format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!("{}.{}.{}.{PURPOSE}", e.assistant_id, e.id, 99_999)),
            parts[2]
        );
        for bad in [
            forged.as_str(),
            later.as_str(),
            "",
            "bmcp",
            "bmcp..",
            &format!("{}.{}", t, "x"),
            &t.replace("bmcp", "bst"),
            &format!("{PREFIX}.{}.", parts[1]),
        ] {
            assert!(verify(&[b"k"], bad, 5_000).is_none(), "{bad}");
        }
    }
}
