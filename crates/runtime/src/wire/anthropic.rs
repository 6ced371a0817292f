//! Anthropic's Messages format (`POST {base}/messages`, `x-api-key`, `anthropic-version`).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;

use super::{finish_with_calls, Progress, UsageTally, WireError};
use crate::types::{ChatMessage, ChatRequest, Completion, Role, StreamEvent, ToolCall, ToolSpec};
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
}

/// A plain string for plain turns (the short form, as before tools existed); blocks when
/// the turn carries tool calls or results.
#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Blocks(Vec<OutBlock<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        // Optional in the format; an empty text block would be refused.
        #[serde(skip_serializing_if = "str::is_empty")]
        content: &'a str,
    },
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

impl<'a> Tool<'a> {
    fn new(spec: &'a ToolSpec) -> Tool<'a> {
        Tool {
            name: &spec.name,
            description: &spec.description,
            input_schema: &spec.parameters,
        }
    }
}

/// `input` must be a JSON object. Arguments that are not one are never replayed by the server
/// (it refuses such calls), so this fallback only keeps the request well-formed.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str(arguments) {
        Ok(Value::Object(input)) => Value::Object(input),
        _ => Value::Object(serde_json::Map::new()),
    }
}

/// An assistant turn: its text (when there is any: empty text blocks are refused) then its
/// tool calls.
fn assistant_turn(m: &ChatMessage) -> Content<'_> {
    if m.tool_calls.is_empty() {
        return Content::Text(&m.content);
    }
    let text = (!m.content.is_empty()).then_some(OutBlock::Text { text: &m.content });
    let calls = m.tool_calls.iter().map(|call| OutBlock::ToolUse {
        id: &call.id,
        name: &call.name,
        input: tool_input(&call.arguments),
    });
    Content::Blocks(text.into_iter().chain(calls).collect())
}

fn tool_result(m: &ChatMessage) -> OutBlock<'_> {
    OutBlock::ToolResult {
        // Without an id the provider refuses the request, and says why.
        tool_use_id: m.tool_call_id.as_deref().unwrap_or_default(),
        content: &m.content,
    }
}

/// The non-system history in Anthropic's shape. Consecutive Tool messages become one user
/// message of `tool_result` blocks: Anthropic wants every result of a tool-use turn in the
/// user message right after it.
fn messages(history: &[ChatMessage]) -> Vec<Message<'_>> {
    let mut out: Vec<Message<'_>> = Vec::new();
    let mut in_results = false;
    for m in history.iter().filter(|m| m.role != Role::System) {
        if m.role == Role::Tool {
            match out.last_mut() {
                Some(Message {
                    content: Content::Blocks(blocks),
                    ..
                }) if in_results => blocks.push(tool_result(m)),
                _ => out.push(Message {
                    role: "user",
                    content: Content::Blocks(vec![tool_result(m)]),
                }),
            }
            in_results = true;
            continue;
        }
        in_results = false;
        let content = match m.role {
            Role::Assistant => assistant_turn(m),
            _ => Content::Text(&m.content),
        };
        out.push(Message {
            role: m.role.as_str(),
            content,
        });
    }
    out
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
        RequestBody {
            model: &req.model,
            max_tokens: req.max_tokens,
            system: (!system_parts.is_empty()).then(|| system_parts.join("\n\n")),
            messages: messages(&req.messages),
            temperature: req.temperature,
            stream,
            tools: req.tools.iter().map(Tool::new).collect(),
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
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
}

impl Block {
    /// A `tool_use` block as a call, its input written back out as JSON text.
    fn call(&self) -> Result<ToolCall, WireError> {
        let (Some(id), Some(name)) = (&self.id, &self.name) else {
            return Err(WireError::Protocol("a tool call without an id or a name"));
        };
        Ok(ToolCall {
            id: id.clone(),
            name: name.clone(),
            arguments: self
                .input
                .as_ref()
                .map_or_else(|| "{}".to_owned(), Value::to_string),
        })
    }
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
    let tool_calls = response
        .content
        .iter()
        .filter(|b| b.kind == "tool_use")
        .map(Block::call)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = UsageTally::new(estimated_input);
    tally.add_output_text(&content);
    for call in &tool_calls {
        tally.add_output_text(&call.name);
        tally.add_output_text(&call.arguments);
    }
    if let Some(usage) = response.usage {
        tally.input = usage.input();
        tally.output = usage.output_tokens;
    }
    Ok(Completion {
        finish_reason: finish_with_calls(
            response.stop_reason.as_deref().map(finish_reason),
            !tool_calls.is_empty(),
        ),
        content,
        tool_calls,
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
    // Anthropic always sends the index; a compatible server that does not is read the way
    // OpenAI-compatible ones are (a new block follows the others, a delta continues the last).
    ContentBlockStart {
        index: Option<u32>,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: Option<u32>,
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

/// The opening of a content block. Only tool use matters: a text block's text arrives in
/// deltas, and other kinds (thinking) are not part of the answer we pass on.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    ToolUse {
        id: String,
        name: String,
        input: Option<Value>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// A piece of a tool_use block's input, JSON text to concatenate.
    InputJsonDelta {
        partial_json: String,
    },
    // thinking_delta, signature_delta: not reply text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

/// One event of a stream: `message_start` (input usage), content blocks (text deltas; tool
/// use blocks, whose input arrives as JSON pieces), `message_delta` (stop reason, cumulative
/// output usage), then `message_stop`, where the tool calls and `Done` are emitted. The
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
        Event::ContentBlockStart {
            index,
            content_block: StartBlock::ToolUse { id, name, input },
        } => {
            // The input of a streamed call arrives in deltas, the start carrying `{}`; a
            // call with no deltas keeps what the start said.
            let snapshot = input.map_or_else(|| "{}".to_owned(), |v| v.to_string());
            let index = index.unwrap_or_else(|| progress.calls.next_index());
            progress.calls.start(index, id, name, snapshot)?;
        }
        Event::ContentBlockDelta {
            delta: BlockDelta::TextDelta { text },
            ..
        } => progress.text(text, out),
        Event::ContentBlockDelta {
            index,
            delta: BlockDelta::InputJsonDelta { partial_json },
        } => {
            let index = index
                .or(progress.calls.last_index())
                .ok_or(WireError::Protocol(
                    "tool call arguments for a call that was never started",
                ))?;
            progress
                .calls
                .append(index, &partial_json, &mut progress.tally)?;
        }
        Event::MessageDelta { delta, usage } => {
            record_usage(progress, &usage);
            if let Some(reason) = delta.stop_reason {
                progress.finish = Some(finish_reason(&reason));
            }
        }
        Event::MessageStop => progress.complete(out),
        Event::Error { error } => return Err(error.into_wire()),
        Event::ContentBlockStart {
            content_block: StartBlock::Other,
            ..
        }
        | Event::ContentBlockDelta {
            delta: BlockDelta::Other,
            ..
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
            tools: vec![],
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
            tools: vec![],
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
        assert_eq!(c.tool_calls, [call("t", "x", "{}")]);
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
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
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

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn encodes_tools_calls_and_grouped_results() {
        let req = ChatRequest {
            model: "m".into(),
            system: None,
            messages: vec![
                ChatMessage::new(Role::User, "weather?"),
                ChatMessage::assistant_calls(
                    "Let me look.",
                    vec![
                        call("toolu_1", "get_weather", r#"{"city":"Oslo"}"#),
                        call("toolu_2", "get_weather", "not json"),
                    ],
                ),
                ChatMessage::tool_result("toolu_1", "12 degrees"),
                // A system entry between results moves to `system`; the results stay one turn.
                ChatMessage::new(Role::System, "tenant rules"),
                ChatMessage::tool_result("toolu_2", ""),
                ChatMessage::assistant_calls("", vec![call("toolu_3", "now", "[1]")]),
                ChatMessage::tool_result("toolu_3", "noon"),
                ChatMessage::new(Role::User, "thanks"),
            ],
            temperature: None,
            max_tokens: 10,
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: "Current weather".into(),
                parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            }],
        };
        let body = serde_json::to_value(RequestBody::new(&req, false)).unwrap();
        assert_eq!(
            body["tools"],
            serde_json::json!([{
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }])
        );
        assert_eq!(body["system"], "tenant rules");
        assert_eq!(
            body["messages"],
            serde_json::json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    // Arguments that are not a JSON object fall back to `{}`.
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 degrees"},
                    {"type": "tool_result", "tool_use_id": "toolu_2"},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_3", "content": "noon"},
                ]},
                {"role": "user", "content": "thanks"},
            ])
        );
    }

    #[test]
    fn no_tools_field_without_tools() {
        let req = ChatRequest {
            model: "m".into(),
            system: None,
            messages: vec![ChatMessage::new(Role::User, "hi")],
            temperature: None,
            max_tokens: 1,
            tools: vec![],
        };
        let body = serde_json::to_value(RequestBody::new(&req, false)).unwrap();
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn decodes_tool_use_blocks() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
            "content":[{"type":"text","text":"Checking."},
                       {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Oslo"}},
                       {"type":"tool_use","id":"toolu_2","name":"now"}],
            "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":3}}"#;
        let c = decode_completion(body, 0).unwrap();
        assert_eq!(c.content, "Checking.");
        assert_eq!(c.finish_reason, "tool_calls");
        assert_eq!(
            c.tool_calls,
            [
                call("toolu_1", "get_weather", r#"{"city":"Oslo"}"#),
                call("toolu_2", "now", "{}"),
            ]
        );
        let nameless = br#"{"type":"message","content":[{"type":"tool_use","id":"t","input":{}}],"stop_reason":"tool_use"}"#;
        assert!(matches!(
            decode_completion(nameless, 0),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn decodes_a_streamed_tool_use() {
        let mut d = Progress::new(0);
        let out = run(
            &mut d,
            &[
                r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Os"}}"#,
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"lo\"}"}}"#,
                r#"{"type":"content_block_stop","index":1}"#,
                // A call without input deltas keeps the start's input.
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}"#,
                r#"{"type":"content_block_stop","index":2}"#,
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":40}}"#,
                r#"{"type":"message_stop"}"#,
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Delta("Checking.".into()),
                StreamEvent::ToolCalls(vec![
                    call("toolu_1", "get_weather", r#"{"city": "Oslo"}"#),
                    call("toolu_2", "now", "{}"),
                ]),
                StreamEvent::Done {
                    finish_reason: "tool_calls".into(),
                    usage: Usage {
                        input_tokens: 25,
                        output_tokens: 40
                    }
                },
            ]
        );
    }

    #[test]
    fn malformed_tool_use_streams_are_protocol_errors() {
        // Input for a block that never started as tool use.
        let orphan = run(
            &mut Progress::new(0),
            &[
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ],
        );
        assert!(matches!(orphan, Err(WireError::Protocol(_))));
        // The same block started twice as different calls.
        let restarted = run(
            &mut Progress::new(0),
            &[
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"a","name":"x","input":{}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"b","name":"x","input":{}}}"#,
            ],
        );
        assert!(matches!(restarted, Err(WireError::Protocol(_))));
        // A tool_use block without its id.
        let nameless = run(
            &mut Progress::new(0),
            &[
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"x"}}"#,
            ],
        );
        assert!(matches!(nameless, Err(WireError::Protocol(_))));
    }
}
