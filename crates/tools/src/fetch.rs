//! The built-in `fetch_url` tool: GET a web page for the model, through the egress guard.
//!
//! Every hop (the first URL and each redirect) is checked and pinned by [`egress`], so a
//! public page cannot bounce the fetch into the private network. Only text-like bodies are
//! read, and never more than `max_bytes` of them.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, USER_AGENT};
use reqwest::StatusCode;
use url::Url;

use crate::egress::{self, ClientOptions, EgressError, EgressPolicy, Resolve};

const AGENT: &str = concat!("bastion-fetch/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct FetchLimits {
    /// Body bytes read at most; the rest is not downloaded.
    pub max_bytes: usize,
    /// For the whole call, redirects included.
    pub timeout: Duration,
    pub max_redirects: u8,
    /// Media types whose body is read: `type/subtype`, `type/*`, or `+suffix` for a
    /// structured-syntax suffix (`+json` matches `application/ld+json`).
    pub content_types: Vec<String>,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            timeout: Duration::from_secs(10),
            max_redirects: 3,
            content_types: [
                "text/*",
                "application/json",
                "application/xml",
                "application/xhtml+xml",
                "+json",
                "+xml",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl FetchLimits {
    /// Whether a `Content-Type` header value is one whose body may be read.
    pub fn allows_content_type(&self, header: &str) -> bool {
        // Only the essence matters; parameters such as charset do not change what it is.
        let essence = header
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        if kind.is_empty() || subtype.is_empty() {
            return false;
        }
        self.content_types.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            if pattern.starts_with('+') {
                subtype.ends_with(&pattern)
            } else if let Some(any_of) = pattern.strip_suffix("/*") {
                kind == any_of
            } else {
                essence == pattern
            }
        })
    }
}

/// What the model gets back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    pub final_url: String,
    pub status: u16,
    /// As the server sent it; empty if it sent none.
    pub content_type: String,
    /// UTF-8, invalid sequences replaced. Empty when a non-2xx answer's type is not text.
    pub body: String,
    /// The body was longer than `max_bytes` and was cut.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error("the fetch took longer than {0:?}")]
    Timeout(Duration),
    #[error("more than {0} redirects")]
    TooManyRedirects(u8),
    #[error("bad redirect: {0}")]
    Redirect(String),
    #[error("content type {0:?} is not text; only text-like responses are fetched")]
    ContentType(String),
    #[error("HTTP error: {0}")]
    Http(String),
}

/// GETs `url`, following up to `limits.max_redirects` redirects, each one re-checked.
///
/// A non-2xx final answer is a [`Fetched`], not an error: the model should see the 404.
pub async fn fetch(
    policy: &EgressPolicy,
    resolver: &dyn Resolve,
    url: &str,
    limits: &FetchLimits,
) -> Result<Fetched, FetchError> {
    tokio::time::timeout(limits.timeout, fetch_hops(policy, resolver, url, limits))
        .await
        .map_err(|_| FetchError::Timeout(limits.timeout))?
}

async fn fetch_hops(
    policy: &EgressPolicy,
    resolver: &dyn Resolve,
    url: &str,
    limits: &FetchLimits,
) -> Result<Fetched, FetchError> {
    let mut current = Url::parse(url).map_err(|e| FetchError::Url(e.to_string()))?;
    let opts = ClientOptions {
        connect_timeout: limits.timeout,
        timeout: limits.timeout,
    };
    let mut redirects = 0u8;
    loop {
        let dest = egress::check(policy, resolver, &current).await?;
        let client = egress::pinned_client(&dest, opts)?;
        // No cookies, no credentials: the client has no cookie store and nothing is added
        // here beyond who we are and what we can read.
        let response = client
            .get(dest.url.clone())
            .header(USER_AGENT, AGENT)
            .header(
                ACCEPT,
                "text/html, text/plain;q=0.9, application/json;q=0.9, */*;q=0.1",
            )
            .send()
            .await
            .map_err(|e| http_error(e, limits.timeout))?;
        let status = response.status();

        if is_redirect(status) {
            if redirects >= limits.max_redirects {
                return Err(FetchError::TooManyRedirects(limits.max_redirects));
            }
            redirects += 1;
            let location = response
                .headers()
                .get(LOCATION)
                .ok_or_else(|| FetchError::Redirect(format!("{status} without a Location")))?
                .to_str()
                .map_err(|_| FetchError::Redirect("Location is not ASCII".into()))?;
            current = current
                .join(location)
                .map_err(|e| FetchError::Redirect(format!("Location is not a URL: {e}")))?;
            continue;
        }

        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let final_url = dest.url.to_string();
        if !limits.allows_content_type(&content_type) {
            if status.is_success() {
                return Err(FetchError::ContentType(content_type));
            }
            // The model still learns the status (a 404 says something) without the body.
            return Ok(Fetched {
                final_url,
                status: status.as_u16(),
                content_type,
                body: String::new(),
                truncated: false,
            });
        }
        let (body, truncated) = read_capped(response, limits).await?;
        return Ok(Fetched {
            final_url,
            status: status.as_u16(),
            content_type,
            body,
            truncated,
        });
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Reads at most `max_bytes` of the body as it streams in; a longer body is cut there and
/// the connection dropped rather than drained.
async fn read_capped(
    response: reqwest::Response,
    limits: &FetchLimits,
) -> Result<(String, bool), FetchError> {
    let max = limits.max_bytes;
    let mut buf: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| http_error(e, limits.timeout))?;
        let room = max - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    if truncated {
        drop_cut_char(&mut buf);
    }
    Ok((String::from_utf8_lossy(&buf).into_owned(), truncated))
}

/// The cut may split a multi-byte character; drop its first bytes instead of showing a
/// replacement character the server never sent.
fn drop_cut_char(buf: &mut Vec<u8>) {
    // A UTF-8 character is at most 4 bytes, so only the last 3 can be an incomplete one.
    let tail_start = buf.len().saturating_sub(3);
    for start in (tail_start..buf.len()).rev() {
        // Continuation bytes are 0b10xx_xxxx; the first non-continuation byte starts the
        // last character.
        if buf[start] & 0xC0 != 0x80 {
            if let Err(e) = std::str::from_utf8(&buf[start..]) {
                if e.error_len().is_none() {
                    buf.truncate(start + e.valid_up_to());
                }
            }
            return;
        }
    }
}

/// reqwest's errors, without the URL (it may carry a token in its query) and with the cause
/// chain, which is where the useful part ("connection refused") is.
fn http_error(err: reqwest::Error, timeout: Duration) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout(timeout);
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Http(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let limits = FetchLimits::default();
        for ok in [
            "text/html",
            "text/plain; charset=utf-8",
            "TEXT/HTML;charset=ISO-8859-1",
            "application/json",
            "application/xml",
            "application/xhtml+xml",
            "application/ld+json",
            "application/atom+xml",
            "application/vnd.api+json; charset=utf-8",
        ] {
            assert!(limits.allows_content_type(ok), "{ok}");
        }
        for refused in [
            "",
            "application/octet-stream",
            "image/png",
            "application/pdf",
            "application/zip",
            "text",
            "/html",
            "application/jsonx",
            "application/json+zip",
        ] {
            assert!(!limits.allows_content_type(refused), "{refused}");
        }
    }

    #[test]
    fn a_cut_character_is_dropped() {
        let mut buf = "ab€".as_bytes()[..4].to_vec(); // "ab" + 2 of the 3 bytes of €
        drop_cut_char(&mut buf);
        assert_eq!(buf, b"ab");
        let mut whole = "ab€".as_bytes().to_vec();
        drop_cut_char(&mut whole);
        assert_eq!(whole, "ab€".as_bytes());
        let mut ascii = b"abc".to_vec();
        drop_cut_char(&mut ascii);
        assert_eq!(ascii, b"abc");
    }
}
