//! Anthropic's Messages format (`POST {base}/messages`, `x-api-key`, `anthropic-version`).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use super::{Progress, UsageTally, WireError};
use crate::types::{ChatRequest, Completion, Role, StreamEvent};
use crate::ProviderError;

/// The API version we speak; later versions are opt-in per request, so this pins the
/// format the decoder below understands.
pub(crate) const API_VERSION: &str = "2023-06-01";

pub(crate) fn headers(api_key: &SecretString) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(API_VERSION),
    );
    let key = api_key.expose_secret();
    if !key.is_empty() {
        let mut value = HeaderValue::try_from(key).map_err(|_| ProviderError::Unauthorized)?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static("x-api-key"), value);
    }
    Ok(headers)
}

#[derive(Serialize)]
pub(crate) struct RequestBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    stream: bool,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

impl<'a> RequestBody<'a> {
    /// Anthropic has no system role inside `messages`: the system prompt and any System
    /// entries of the history become the top-level `system`, in order.
    pub(crate) fn new(req: &'a ChatRequest, stream: bool) -> RequestBody<'a> {
        let system_parts: Vec<&str> = req
            .system
            .as_deref()
            .into_iter()
            .chain(
                req.messages
                    .iter()
                    .filter(|m| m.role == Role::System)
                    .map(|m| m.content.as_str()),
            )
            .filter(|s| !s.is_empty())
            .collect();
        let messages = req
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| Message {
                role: m.role.as_str(),
                content: &m.content,
            })
            .collect();
        RequestBody {
            model: &req.model,
            max_tokens: req.max_tokens,
            system: (!system_parts.is_empty()).then(|| system_parts.join("\n\n")),
            messages,
            temperature: req.temperature,
            stream,
        }
    }
}

/// Anthropic's stop reasons in OpenAI's vocabulary; an unknown one passes through.
pub(crate) fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

#[derive(Deserialize, Default)]
struct ApiUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl ApiUsage {
    /// All input tokens, cached ones included: we send no cache directives, so any caching
    /// is the provider's choice, and billing it at the full input price errs on the safe side.
    fn input(&self) -> Option<u64> {
        self.input_tokens.map(|n| {
            n.saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
                .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
        })
    }
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

impl ApiError {
    /// An error event inside a stream carries a type, not a status: the status Anthropic
    /// uses for that type elsewhere.
    fn into_wire(self) -> WireError {
        let status = match self.kind.as_deref() {
            Some("invalid_request_error") => 400,
            Some("authentication_error") => 401,
            Some("permission_error") => 403,
            Some("not_found_error") => 404,
            Some("request_too_large") => 413,
            Some("rate_limit_error") => 429,
            Some("api_error") => 500,
            Some("overloaded_error") => 529,
            _ => 502,
        };
        WireError::Provider {
            status,
            message: self.message,
        }
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<ApiUsage>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

pub(crate) fn decode_completion(
    body: &[u8],
    estimated_input: u64,
) -> Result<Completion, WireError> {
    let response: Response = serde_json::from_slice(body)
        .map_err(|_| WireError::Protocol("the answer is not a message"))?;
    if let Some(error) = response.error {
        return Err(error.into_wire());
    }
    if response.kind.as_deref().is_some_and(|k| k != "message") {
        return Err(WireError::Protocol("the answer is not a message"));
    }
    // Text blocks only: tool use and thinking blocks are not part of the reply text.
    let content: String = response
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let mut tally = UsageTally::new(estimated_input);
    tally.add_output_text(&content);
    if let Some(usage) = response.usage {
        tally.input = usage.input();
        tally.output = usage.output_tokens;
    }
    Ok(Completion {
        finish_reason: response
            .stop_reason
            .as_deref()
            .map_or_else(|| "stop".to_owned(), finish_reason),
        content,
        usage: tally.usage(),
    })
}

/// The stream's events, by their `type` field (the same as the SSE `event:` name). Unknown
/// types are ignored, as Anthropic asks of clients, so new event kinds do not break us.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: ApiUsage,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: ApiUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    // input_json_delta (tool use), thinking_delta, signature_delta: not reply text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

/// One event of a stream: `message_start` (input usage), text deltas, `message_delta` (stop
/// reason, cumulative output usage), then `message_stop`, where `Done` is emitted. The
/// event's `type` field is read rather than the SSE `event:` name; they are the same.
pub(crate) fn stream_event(
    _name: &str,
    data: &str,
    progress: &mut Progress,
    out: &mut VecDeque<StreamEvent>,
) -> Result<(), WireError> {
    let event: Event = serde_json::from_str(data)
        .map_err(|_| WireError::Protocol("malformed event in the event stream"))?;
    match event {
        Event::MessageStart { message } => record_usage(progress, &message.usage),
        Event::ContentBlockDelta {
            delta: BlockDelta::TextDelta { text },
        } => progress.text(text, out),
        Event::MessageDelta { delta, usage } => {
            record_usage(progress, &usage);
            if let Some(reason) = delta.stop_reason {
                progress.finish = Some(finish_reason(&reason));
            }
        }
        Event::MessageStop => progress.complete(out),
        Event::Error { error } => return Err(error.into_wire()),
        Event::ContentBlockDelta {
            delta: BlockDelta::Other,
        }
        | Event::Other => {}
    }
    Ok(())
}

/// Usage figures in a stream are cumulative: a later report replaces an earlier one.
fn record_usage(progress: &mut Progress, usage: &ApiUsage) {
    let tally = &mut progress.tally;
    tally.input = usage.input().or(tally.input);
    tally.output = usage.output_tokens.or(tally.output);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChatMessage, Usage};

    #[test]
    fn system_prompt_and_system_messages_merge_into_the_system_field() {
        let req = ChatRequest {
            model: "claude-sonnet-4-20250514".into(),
            system: Some("be brief".into()),
            messages: vec![
                ChatMessage::new(Role::System, "tenant rules"),
                ChatMessage::new(Role::User, "hi"),
                ChatMessage::new(Role::Assistant, "hello"),
                ChatMessage::new(Role::User, "again"),
            ],
            temperature: None,
            max_tokens: 64,
        };
        let body = serde_json::to_value(RequestBody::new(&req, true)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "claude-sonnet-4-20250514",
                "max_tokens": 64,
                "system": "be brief\n\ntenant rules",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "again"},
                ],
                "stream": true,
            })
        );
    }

    #[test]
    fn no_system_field_without_a_system_prompt() {
        let req = ChatRequest {
            model: "m".into(),
            system: None,
            messages: vec![ChatMessage::new(Role::User, "hi")],
            temperature: Some(1.0),
            max_tokens: 1,
        };
        let body = serde_json::to_value(RequestBody::new(&req, false)).unwrap();
        assert!(body.get("system").is_none());
        assert_eq!(body["temperature"], 1.0);
    }

    #[test]
    fn finish_reasons_map_to_openai_vocabulary() {
        for (anthropic, openai) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "something_new"),
        ] {
            assert_eq!(finish_reason(anthropic), openai);
        }
    }

    #[test]
    fn decodes_a_message() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"text","text":"Hi "},{"type":"tool_use","id":"t","name":"x","input":{}},{"type":"text","text":"there"}],
            "stop_reason":"max_tokens","stop_sequence":null,
            "usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":3}}"#;
        let c = decode_completion(body, 0).unwrap();
        assert_eq!(c.content, "Hi there");
        assert_eq!(c.finish_reason, "length");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 15,
                output_tokens: 3
            }
        );
    }

    #[test]
    fn error_bodies_and_malformed_bodies() {
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            decode_completion(overloaded, 0),
            Err(WireError::Provider { status: 529, .. })
        ));
        assert!(matches!(
            decode_completion(b"[1,2]", 0),
            Err(WireError::Protocol(_))
        ));
    }

    fn run(progress: &mut Progress, events: &[&str]) -> Result<Vec<StreamEvent>, WireError> {
        let mut out = VecDeque::new();
        for data in events {
            stream_event("", data, progress, &mut out)?;
        }
        Ok(out.into())
    }

    #[test]
    fn decodes_a_stream() {
        let mut d = Progress::new(999);
        let out = run(
            &mut d,
            &[
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"ping"}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
                r#"{"type":"message_stop"}"#,
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Delta("Hello".into()),
                StreamEvent::Delta("!".into()),
                StreamEvent::Done {
                    finish_reason: "stop".into(),
                    usage: Usage {
                        input_tokens: 25,
                        output_tokens: 15
                    }
                },
            ]
        );
        assert!(d.is_done());
    }

    #[test]
    fn mid_stream_errors_and_truncation() {
        let err = run(
            &mut Progress::new(0),
            &[r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#],
        );
        assert!(matches!(err, Err(WireError::Provider { status: 529, .. })));
        let mut d = Progress::new(0);
        run(
            &mut d,
            &[r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#],
        )
        .unwrap();
        assert!(matches!(
            d.end(&mut VecDeque::new()),
            Err(WireError::Protocol(_))
        ));
    }
}
