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
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::budget;
use crate::endpoint::{Endpoint, ProviderKind};
use crate::redact;
use crate::types::{ChatRequest, Completion, StreamEvent, ToolCall, Usage};
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

/// Where a streamed answer stands: its finish reason once named, its usage so far, the tool
/// calls being assembled, and whether the final `Done` was emitted.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) finish: Option<String>,
    pub(crate) tally: UsageTally,
    pub(crate) calls: PendingCalls,
    done: bool,
}

impl Progress {
    pub(crate) fn new(estimated_input: u64) -> Progress {
        Progress {
            finish: None,
            tally: UsageTally::new(estimated_input),
            calls: PendingCalls::default(),
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

    /// The provider's end marker (`[DONE]`, `message_stop`): the answer is complete, its tool
    /// calls (if any) go out whole, then `Done`. One that never named a finish reason simply
    /// stopped.
    pub(crate) fn complete(&mut self, out: &mut VecDeque<StreamEvent>) {
        let calls = std::mem::take(&mut self.calls).finish();
        let reason = finish_with_calls(self.finish.take(), !calls.is_empty());
        if !calls.is_empty() {
            out.push_back(StreamEvent::ToolCalls(calls));
        }
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

/// The finish reason of an answer, given whether it proposed tool calls. Some
/// OpenAI-compatible servers (Gemini's, some vLLM versions) end a tool-call answer with
/// "stop"; callers rely on "tool_calls" to know calls are waiting. Any other reason
/// ("length": the calls may be cut short) is kept, so the caller can refuse to run them.
pub(crate) fn finish_with_calls(reason: Option<String>, has_calls: bool) -> String {
    match reason {
        Some(reason) if !(has_calls && reason == "stop") => reason,
        _ if has_calls => "tool_calls".to_owned(),
        _ => "stop".to_owned(),
    }
}

/// Tool calls of a streamed answer, assembled from fragments keyed by the provider's index
/// (OpenAI's `tool_calls[].index`, Anthropic's content block index). Calls come out in
/// index order, whatever order their fragments interleaved in.
#[derive(Debug, Default)]
pub(crate) struct PendingCalls {
    calls: BTreeMap<u32, PendingCall>,
    /// The most recently started call, for fragments that carry no index.
    last: Option<u32>,
}

#[derive(Debug)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
    /// What the arguments are when no fragment of them arrives (Anthropic's start event
    /// carries the whole `input`, `{}` for a call streamed in deltas).
    snapshot: String,
}

impl PendingCalls {
    /// The fragment of call `index` that names it (an empty id or name: not in this
    /// fragment). A new call needs both. Repeating them (some servers resend them on every
    /// fragment) is harmless; changing them is not.
    pub(crate) fn start(
        &mut self,
        index: u32,
        id: String,
        name: String,
        snapshot: String,
    ) -> Result<(), WireError> {
        match self.calls.get(&index) {
            Some(call) => {
                let same = |sent: &str, known: &str| sent.is_empty() || sent == known;
                if !same(&id, &call.id) || !same(&name, &call.name) {
                    return Err(WireError::Protocol("conflicting fragments of a tool call"));
                }
            }
            None if id.is_empty() || name.is_empty() => {
                return Err(WireError::Protocol("a tool call without an id or a name"));
            }
            None => {
                self.calls.insert(
                    index,
                    PendingCall {
                        id,
                        name,
                        arguments: String::new(),
                        snapshot,
                    },
                );
            }
        }
        self.last = Some(index);
        Ok(())
    }

    /// A piece of call `index`'s arguments, appended as sent (never parsed here).
    pub(crate) fn append(
        &mut self,
        index: u32,
        piece: &str,
        tally: &mut UsageTally,
    ) -> Result<(), WireError> {
        let call = self.calls.get_mut(&index).ok_or(WireError::Protocol(
            "tool call arguments for a call that was never started",
        ))?;
        call.arguments.push_str(piece);
        tally.add_output_text(piece);
        Ok(())
    }

    /// The index after every call seen so far, for a new call that came without one.
    pub(crate) fn next_index(&self) -> u32 {
        self.calls
            .keys()
            .next_back()
            .map_or(0, |last| last.saturating_add(1))
    }

    /// The index of the call `id` names, when it was started.
    pub(crate) fn index_of(&self, id: &str) -> Option<u32> {
        self.calls
            .iter()
            .find(|(_, call)| call.id == id)
            .map(|(index, _)| *index)
    }

    /// The call last started, for a continuation fragment that came without an index.
    pub(crate) fn last_index(&self) -> Option<u32> {
        self.last
    }

    pub(crate) fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_values()
            .map(|call| ToolCall {
                id: call.id,
                name: call.name,
                arguments: if call.arguments.is_empty() {
                    call.snapshot
                } else {
                    call.arguments
                },
            })
            .collect()
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
