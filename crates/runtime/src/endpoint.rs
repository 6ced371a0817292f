//! Where a call goes and with which key.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's Chat Completions format; also Ollama, vLLM, llama.cpp and OpenRouter, which
    /// differ from OpenAI only by base URL.
    OpenAi,
    /// Anthropic's Messages format.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// A provider endpoint: the API root including its version (`https://api.openai.com/v1`,
/// `https://api.anthropic.com/v1`) and the key to present there.
///
/// Debug is written by hand: it shows neither the key nor the URL's userinfo or query, so an
/// endpoint can sit in a struct that gets logged.
#[derive(Clone)]
pub struct Endpoint {
    pub kind: ProviderKind,
    pub base_url: Url,
    pub api_key: SecretString,
}

impl Endpoint {
    pub fn new(kind: ProviderKind, base_url: Url, api_key: SecretString) -> Endpoint {
        Endpoint {
            kind,
            base_url,
            api_key,
        }
    }

    /// The public API root of each format's reference provider.
    pub fn default_base_url(kind: ProviderKind) -> Url {
        let text = match kind {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        };
        // Constant, known-valid URLs: a failure here is a typo in this file, caught by tests.
        Url::parse(text).expect("built-in base URL parses")
    }

    /// `{base_url}/{segments…}`, keeping the base's path (`/v1`) whether or not it ends with
    /// a slash. `Url::join` would instead replace the last segment of a base without one.
    pub(crate) fn url_for(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        // Only "cannot-be-a-base" URLs (mailto:, data:) refuse segments; those are no HTTP
        // endpoint and the request fails to connect, which is the honest outcome.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// `scheme://host[:port]/path` of a URL: what may be shown of an endpoint. Userinfo and query
/// can hold credentials (some gateways take a key as `?key=`), so they are left out.
pub(crate) fn display_url(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    out
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::new(
            ProviderKind::OpenAi,
            Url::parse(url).unwrap(),
            SecretString::from("sk-secret-key-123"),
        )
    }

    #[test]
    fn default_base_urls() {
        assert_eq!(
            Endpoint::default_base_url(ProviderKind::OpenAi).as_str(),
            "https://api.openai.com/v1"
        );
        assert_eq!(
            Endpoint::default_base_url(ProviderKind::Anthropic).as_str(),
            "https://api.anthropic.com/v1"
        );
    }

    #[test]
    fn url_for_keeps_the_version_segment() {
        for base in ["https://h/v1", "https://h/v1/"] {
            assert_eq!(
                ep(base).url_for(&["chat", "completions"]).as_str(),
                "https://h/v1/chat/completions"
            );
        }
        assert_eq!(
            ep("http://127.0.0.1:11434/v1?x=1")
                .url_for(&["messages"])
                .as_str(),
            "http://127.0.0.1:11434/v1/messages?x=1"
        );
    }

    #[test]
    fn debug_hides_key_userinfo_and_query() {
        let shown = format!("{:?}", ep("https://user:pw@h:8443/v1?key=abc"));
        assert!(shown.contains("https://h:8443/v1"), "{shown}");
        for secret in ["sk-secret-key-123", "user", "pw", "key=abc"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
    }
}
