//! OpenAI's Chat Completions format (`POST {base}/chat/completions`), as also spoken by
//! Ollama, vLLM, llama.cpp and OpenRouter.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;

use super::{Progress, UsageTally, WireError};
use crate::types::{ChatRequest, Completion, StreamEvent};
use crate::ProviderError;

pub(crate) fn headers(api_key: &SecretString) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = api_key.expose_secret();
    // Local servers (Ollama, llama.cpp without --api-key) take no key: send no header rather
    // than a malformed "Bearer ".
    if !key.is_empty() {
        let mut value = HeaderValue::try_from(format!("Bearer {key}"))
            .map_err(|_| ProviderError::Unauthorized)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

#[derive(Serialize)]
pub(crate) struct RequestBody<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    // `max_tokens` rather than the newer `max_completion_tokens`: every compatible server
    // understands it, and OpenAI still accepts it for its chat models.
    max_tokens: u32,
    stream: bool,
    // Without it OpenAI sends no usage in a stream, and we would bill an estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(req: &'a ChatRequest, stream: bool) -> RequestBody<'a> {
        let system = req.system.as_deref().map(|content| Message {
            role: "system",
            content,
        });
        let messages = system
            .into_iter()
            .chain(req.messages.iter().map(|m| Message {
                role: m.role.as_str(),
                content: &m.content,
            }))
            .collect();
        RequestBody {
            model: &req.model,
            messages,
            temperature: req.temperature,
            max_tokens: req.max_tokens,
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

/// OpenAI's own vocabulary is the normal form; only the legacy `function_call` is renamed.
pub(crate) fn finish_reason(reason: &str) -> String {
    match reason {
        "function_call" => "tool_calls".to_owned(),
        other => other.to_owned(),
    }
}

#[derive(Deserialize)]
struct ResponseUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ResponseUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    message: Option<ResponseMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    // null when the model answered with tool calls only.
    content: Option<String>,
}

/// An `error` object inside a 200 answer (OpenRouter does this, mid-stream too). Its
/// `code` is an HTTP status there; otherwise it counts as a gateway failure.
fn embedded_error(error: &Value) -> WireError {
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .map(str::to_owned);
    WireError::Provider { status, message }
}

pub(crate) fn decode_completion(
    body: &[u8],
    estimated_input: u64,
) -> Result<Completion, WireError> {
    let response: Response = serde_json::from_slice(body)
        .map_err(|_| WireError::Protocol("the answer is not a chat completion"))?;
    if let Some(error) = &response.error {
        return Err(embedded_error(error));
    }
    let choice = response
        .choices
        .iter()
        .find(|c| c.index == 0)
        .ok_or(WireError::Protocol("the answer has no choices"))?;
    let content = choice
        .message
        .as_ref()
        .and_then(|m| m.content.clone())
        .unwrap_or_default();
    let mut tally = UsageTally::new(estimated_input);
    tally.add_output_text(&content);
    if let Some(usage) = response.usage {
        tally.input = usage.prompt_tokens;
        tally.output = usage.completion_tokens;
    }
    Ok(Completion {
        finish_reason: choice
            .finish_reason
            .as_deref()
            .map_or_else(|| "stop".to_owned(), finish_reason),
        content,
        usage: tally.usage(),
    })
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    // `null` on every chunk but the last when usage is requested.
    usage: Option<ResponseUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

/// One event of a stream: `data: {chunk}` events carry content deltas, then one chunk with
/// `finish_reason`, then (with `include_usage`) a usage chunk, then `data: [DONE]`. `Done` is
/// held back until `[DONE]` because the usage chunk comes after the finish.
pub(crate) fn stream_event(
    _name: &str,
    data: &str,
    progress: &mut Progress,
    out: &mut VecDeque<StreamEvent>,
) -> Result<(), WireError> {
    if data.trim() == "[DONE]" {
        progress.complete(out);
        return Ok(());
    }
    let chunk: Chunk = serde_json::from_str(data)
        .map_err(|_| WireError::Protocol("malformed chunk in the event stream"))?;
    if let Some(error) = &chunk.error {
        return Err(embedded_error(error));
    }
    // We ask for one choice; a server that sends more gets only its first one read.
    for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(text) = choice.delta.and_then(|d| d.content) {
            progress.text(text, out);
        }
        if let Some(reason) = choice.finish_reason {
            progress.finish = Some(finish_reason(&reason));
        }
    }
    if let Some(usage) = chunk.usage {
        let tally = &mut progress.tally;
        tally.input = usage.prompt_tokens.or(tally.input);
        tally.output = usage.completion_tokens.or(tally.output);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ChatMessage, Role, Usage};

    fn request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            system: Some("be brief".into()),
            messages: vec![
                ChatMessage::new(Role::User, "hi"),
                ChatMessage::new(Role::Assistant, "hello"),
                ChatMessage::new(Role::User, "again"),
            ],
            temperature: Some(0.5),
            max_tokens: 100,
        }
    }

    #[test]
    fn system_prompt_leads_the_messages() {
        let body = serde_json::to_value(RequestBody::new(&request(), false)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "again"},
                ],
                "temperature": 0.5,
                "max_tokens": 100,
                "stream": false,
            })
        );
    }

    #[test]
    fn streams_ask_for_usage() {
        let mut req = request();
        req.system = None;
        req.temperature = None;
        let body = serde_json::to_value(RequestBody::new(&req, true)).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["role"], "user");
        assert!(body.get("temperature").is_none());
    }

    #[test]
    fn finish_reasons() {
        for r in ["stop", "length", "content_filter", "tool_calls"] {
            assert_eq!(finish_reason(r), r);
        }
        assert_eq!(finish_reason("function_call"), "tool_calls");
    }

    #[test]
    fn decodes_a_completion() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"logprobs":null,"finish_reason":"length"}],
            "usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#;
        let c = decode_completion(body, 999).unwrap();
        assert_eq!(c.content, "Hi there");
        assert_eq!(c.finish_reason, "length");
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 2
            }
        );
    }

    #[test]
    fn a_completion_without_usage_is_estimated() {
        let body =
            br#"{"choices":[{"index":0,"message":{"content":"abcdef"},"finish_reason":"stop"}]}"#;
        let c = decode_completion(body, 50).unwrap();
        assert_eq!(
            c.usage,
            Usage {
                input_tokens: 50,
                output_tokens: 2
            }
        );
    }

    #[test]
    fn malformed_and_error_bodies() {
        assert!(matches!(
            decode_completion(b"not json", 0),
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            decode_completion(br#"{"choices":[]}"#, 0),
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            decode_completion(br#"{"error":{"code":429,"message":"slow down"}}"#, 0),
            Err(WireError::Provider { status: 429, .. })
        ));
    }

    fn run(progress: &mut Progress, events: &[&str]) -> Result<Vec<StreamEvent>, WireError> {
        let mut out = VecDeque::new();
        for data in events {
            stream_event("message", data, progress, &mut out)?;
        }
        Ok(out.into())
    }

    #[test]
    fn decodes_a_stream_with_usage_after_the_finish() {
        let mut d = Progress::new(999);
        let out = run(
            &mut d,
            &[
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
                "[DONE]",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Delta("Hel".into()),
                StreamEvent::Delta("lo".into()),
                StreamEvent::Done {
                    finish_reason: "stop".into(),
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 2
                    }
                },
            ]
        );
        assert!(d.is_done());
    }

    #[test]
    fn a_stream_cut_before_the_finish_is_a_protocol_error() {
        let mut d = Progress::new(0);
        run(
            &mut d,
            &[r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#],
        )
        .unwrap();
        assert!(matches!(
            d.end(&mut VecDeque::new()),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn a_stream_with_a_finish_but_no_done_marker_still_completes() {
        let mut d = Progress::new(10);
        run(
            &mut d,
            &[r#"{"choices":[{"index":0,"delta":{"content":"abc"},"finish_reason":"length"}]}"#],
        )
        .unwrap();
        let mut out = VecDeque::new();
        d.end(&mut out).unwrap();
        assert_eq!(
            out.pop_front(),
            Some(StreamEvent::Done {
                finish_reason: "length".into(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 1
                }
            })
        );
    }

    #[test]
    fn malformed_chunks_and_mid_stream_errors() {
        assert!(matches!(
            run(&mut Progress::new(0), &["{not json"]),
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            run(
                &mut Progress::new(0),
                &[r#"{"error":{"message":"upstream died","code":"oops"}}"#]
            ),
            Err(WireError::Provider { status: 502, .. })
        ));
    }
}
