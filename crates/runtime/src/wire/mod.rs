//! The two wire formats, behind one interface the client drives: how to address and encode a
//! request, how to read a whole answer, how to read a streamed one event by event.
//!
//! Decoding never fails on fields we do not use (providers add fields all the time), and
//! never puts provider text into a [`WireError::Protocol`] description.

pub(crate) mod anthropic;
pub(crate) mod openai;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::VecDeque;
use std::time::Duration;

use crate::budget;
use crate::endpoint::{Endpoint, ProviderKind};
use crate::redact;
use crate::types::{ChatRequest, Completion, StreamEvent, Usage};
use crate::ProviderError;

/// What went wrong reading a provider's answer, before it is turned into a
/// [`ProviderError`] (which needs the endpoint's key to redact a message).
#[derive(Debug)]
pub(crate) enum WireError {
    /// Our own short description of a malformed answer.
    Protocol(&'static str),
    /// The provider reported an error inside a 200 answer (mid-stream, or OpenRouter-style
    /// `{"error": …}` bodies), with the HTTP status it corresponds to.
    Provider {
        status: u16,
        message: Option<String>,
    },
}

impl WireError {
    pub(crate) fn into_provider_error(self, api_key: &SecretString) -> ProviderError {
        match self {
            WireError::Protocol(what) => ProviderError::protocol(what),
            WireError::Provider { status, message } => {
                classify(status, message.as_deref(), None, api_key)
            }
        }
    }
}

/// The one mapping from a provider's error status (and message) to our error.
pub(crate) fn classify(
    status: u16,
    message: Option<&str>,
    retry_after: Option<Duration>,
    api_key: &SecretString,
) -> ProviderError {
    match status {
        401 | 403 => ProviderError::Unauthorized,
        429 => ProviderError::RateLimited { retry_after },
        500..=599 => ProviderError::Unavailable { status },
        400..=499 => ProviderError::Rejected {
            status,
            message: redact::provider_message(message.unwrap_or(""), api_key.expose_secret()),
        },
        // Redirects are not followed: a redirect could carry our key to another host.
        300..=399 => ProviderError::protocol("the provider answered with a redirect"),
        _ => ProviderError::protocol("the provider answered with an unexpected status"),
    }
}

/// `error.message` of an error body, in either format (both nest it under `error`; some
/// OpenAI-compatible servers send `{"error": "text"}` instead).
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object { message: Option<String> },
        Text(String),
    }
    #[derive(Deserialize)]
    struct Body {
        error: ErrorField,
    }
    match serde_json::from_slice::<Body>(body).ok()?.error {
        ErrorField::Object { message } => message,
        ErrorField::Text(text) => Some(text),
    }
}

/// Path segments of the call under the endpoint's base URL.
pub(crate) fn path(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::OpenAi => &["chat", "completions"],
        ProviderKind::Anthropic => &["messages"],
    }
}

/// Authentication and version headers. Fails with `Unauthorized` when the key cannot be a
/// header value (a newline pasted into it): no provider would accept it either.
pub(crate) fn headers(ep: &Endpoint) -> Result<HeaderMap, ProviderError> {
    match ep.kind {
        ProviderKind::OpenAi => openai::headers(&ep.api_key),
        ProviderKind::Anthropic => anthropic::headers(&ep.api_key),
    }
}

pub(crate) fn encode(
    kind: ProviderKind,
    req: &ChatRequest,
    stream: bool,
) -> Result<Vec<u8>, ProviderError> {
    let body = match kind {
        ProviderKind::OpenAi => serde_json::to_vec(&openai::RequestBody::new(req, stream)),
        ProviderKind::Anthropic => serde_json::to_vec(&anthropic::RequestBody::new(req, stream)),
    };
    body.map_err(|_| ProviderError::protocol("the request could not be encoded"))
}

pub(crate) fn decode_completion(
    kind: ProviderKind,
    body: &[u8],
    estimated_input: u64,
) -> Result<Completion, WireError> {
    match kind {
        ProviderKind::OpenAi => openai::decode_completion(body, estimated_input),
        ProviderKind::Anthropic => anthropic::decode_completion(body, estimated_input),
    }
}

/// Handles one server-sent event of a streamed answer (`name` is the SSE `event:` field,
/// "message" when absent), pushing what it yields onto `out`.
pub(crate) fn stream_event(
    kind: ProviderKind,
    name: &str,
    data: &str,
    progress: &mut Progress,
    out: &mut VecDeque<StreamEvent>,
) -> Result<(), WireError> {
    match kind {
        ProviderKind::OpenAi => openai::stream_event(name, data, progress, out),
        ProviderKind::Anthropic => anthropic::stream_event(name, data, progress, out),
    }
}

/// Where a streamed answer stands: its finish reason once named, its usage so far, and
/// whether the final `Done` was emitted.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) finish: Option<String>,
    pub(crate) tally: UsageTally,
    done: bool,
}

impl Progress {
    pub(crate) fn new(estimated_input: u64) -> Progress {
        Progress {
            finish: None,
            tally: UsageTally::new(estimated_input),
            done: false,
        }
    }

    /// A piece of the answer; empty pieces (role-only chunks) are not passed on.
    pub(crate) fn text(&mut self, text: String, out: &mut VecDeque<StreamEvent>) {
        if !text.is_empty() {
            self.tally.add_output_text(&text);
            out.push_back(StreamEvent::Delta(text));
        }
    }

    /// The provider's end marker (`[DONE]`, `message_stop`): the answer is complete. One that
    /// never named a finish reason simply stopped.
    pub(crate) fn complete(&mut self, out: &mut VecDeque<StreamEvent>) {
        let reason = self.finish.take().unwrap_or_else(|| "stop".to_owned());
        out.push_back(StreamEvent::Done {
            finish_reason: reason,
            usage: self.tally.usage(),
        });
        self.done = true;
    }

    /// Whether `Done` was emitted; nothing after it is read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The body ended without an end marker. If the finish reason was seen the answer is
    /// whole (only a usage report after it may be lost, then estimated); otherwise it was
    /// cut off.
    pub(crate) fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), WireError> {
        if self.finish.is_none() {
            return Err(WireError::Protocol(
                "the stream ended before the answer was complete",
            ));
        }
        self.complete(out);
        Ok(())
    }
}

/// Usage as the provider reports it, with our estimate standing in for what it does not.
#[derive(Debug, Default)]
pub(crate) struct UsageTally {
    pub(crate) input: Option<u64>,
    pub(crate) output: Option<u64>,
    estimated_input: u64,
    output_bytes: usize,
}

impl UsageTally {
    pub(crate) fn new(estimated_input: u64) -> UsageTally {
        UsageTally {
            estimated_input,
            ..UsageTally::default()
        }
    }

    pub(crate) fn add_output_text(&mut self, text: &str) {
        self.output_bytes = self.output_bytes.saturating_add(text.len());
    }

    pub(crate) fn usage(&self) -> Usage {
        if self.input.is_none() || self.output.is_none() {
            tracing::debug!("the provider reported no usage; billing an estimate");
        }
        Usage {
            input_tokens: self.input.unwrap_or(self.estimated_input),
            output_tokens: self
                .output
                .unwrap_or_else(|| budget::tokens_for_bytes(self.output_bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from("sk-live-0123456789")
    }

    #[test]
    fn status_classification() {
        assert!(matches!(
            classify(401, None, None, &key()),
            ProviderError::Unauthorized
        ));
        assert!(matches!(
            classify(403, None, None, &key()),
            ProviderError::Unauthorized
        ));
        assert!(matches!(
            classify(429, None, Some(Duration::from_secs(3)), &key()),
            ProviderError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            classify(529, None, None, &key()),
            ProviderError::Unavailable { status: 529 }
        ));
        assert!(matches!(
            classify(302, None, None, &key()),
            ProviderError::Protocol(_)
        ));
    }

    #[test]
    fn rejected_message_is_redacted_in_display() {
        let err = classify(
            400,
            Some("This model's maximum context length is 8192 tokens (key sk-live-0123456789)"),
            None,
            &key(),
        );
        let shown = err.to_string();
        assert!(!shown.contains("0123456789"), "{shown}");
        assert_eq!(
            shown,
            "the provider rejected the request (HTTP 400): This model's maximum context length \
             is 8192 tokens (key [redacted])"
        );
    }

    #[test]
    fn error_message_in_every_shape() {
        let openai = br#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#;
        let anthropic =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"worse"}}"#;
        assert_eq!(error_message(openai).as_deref(), Some("bad"));
        assert_eq!(error_message(anthropic).as_deref(), Some("worse"));
        assert_eq!(
            error_message(br#"{"error":"plain"}"#).as_deref(),
            Some("plain")
        );
        assert_eq!(error_message(b"<html>502</html>"), None);
        assert_eq!(error_message(br#"{"error":{"code":1}}"#), None);
    }

    #[test]
    fn usage_falls_back_to_estimates_per_field() {
        let mut tally = UsageTally::new(42);
        tally.add_output_text("abcdefg");
        assert_eq!(
            tally.usage(),
            Usage {
                input_tokens: 42,
                output_tokens: 3
            }
        );
        tally.input = Some(7);
        tally.output = Some(9);
        assert_eq!(
            tally.usage(),
            Usage {
                input_tokens: 7,
                output_tokens: 9
            }
        );
    }
}
