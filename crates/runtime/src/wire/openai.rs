//! OpenAI's Chat Completions format (`POST {base}/chat/completions`), as also spoken by
//! Ollama, vLLM, llama.cpp and OpenRouter.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;

use super::{finish_with_calls, Progress, UsageTally, WireError};
use crate::types::{ChatMessage, ChatRequest, Completion, Role, StreamEvent, ToolCall, ToolSpec};
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
    // Absent rather than `[]`: some compatible servers refuse an empty list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    // `null` only for an assistant turn that is nothing but tool calls, as OpenAI sends it.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> Message<'a> {
    fn new(m: &'a ChatMessage) -> Message<'a> {
        let tool_calls: Vec<OutCall<'a>> = match m.role {
            Role::Assistant => m.tool_calls.iter().map(OutCall::new).collect(),
            _ => Vec::new(),
        };
        let content = (tool_calls.is_empty() || !m.content.is_empty()).then_some(&*m.content);
        Message {
            role: m.role.as_str(),
            content,
            tool_calls,
            // A Tool message without an id is sent without one: the provider's refusal
            // names the problem better than we could.
            tool_call_id: match m.role {
                Role::Tool => m.tool_call_id.as_deref(),
                _ => None,
            },
        }
    }
}

#[derive(Serialize)]
struct OutCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> OutCall<'a> {
    fn new(call: &'a ToolCall) -> OutCall<'a> {
        OutCall {
            id: &call.id,
            kind: "function",
            function: OutFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ToolFunction<'a>,
}

#[derive(Serialize)]
struct ToolFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl<'a> Tool<'a> {
    fn new(spec: &'a ToolSpec) -> Tool<'a> {
        Tool {
            kind: "function",
            function: ToolFunction {
                name: &spec.name,
                description: &spec.description,
                parameters: &spec.parameters,
            },
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(req: &'a ChatRequest, stream: bool) -> RequestBody<'a> {
        let system = req.system.as_deref().map(|content| Message {
            role: "system",
            content: Some(content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        let messages = system
            .into_iter()
            .chain(req.messages.iter().map(Message::new))
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
            tools: req.tools.iter().map(Tool::new).collect(),
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
    tool_calls: Option<Vec<CallFragment>>,
}

/// A tool call as it appears in an answer: whole in a completion, in fragments in a stream
/// (where every field but the arguments comes once, and empty strings mean "not in this
/// fragment": Gemini's compatible endpoint sends `"name": ""` on continuations).
#[derive(Deserialize)]
struct CallFragment {
    // Gemini's compatible endpoint omits it; see `stream_call`.
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    name: Option<String>,
    // A string by the spec; a server that sends the JSON object itself gets it written out.
    #[serde(default)]
    arguments: Value,
}

impl CallFragment {
    fn id(&self) -> Option<&str> {
        self.id.as_deref().filter(|id| !id.is_empty())
    }

    fn name(&self) -> Option<&str> {
        self.function
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .filter(|name| !name.is_empty())
    }

    fn arguments(&self) -> String {
        match self.function.as_ref().map(|f| &f.arguments) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// The call of a whole answer, which must name itself.
    fn into_call(self) -> Result<ToolCall, WireError> {
        let arguments = self.arguments();
        match (self.id(), self.name()) {
            (Some(id), Some(name)) => Ok(ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments,
            }),
            _ => Err(WireError::Protocol("a tool call without an id or a name")),
        }
    }
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
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or(WireError::Protocol("the answer has no choices"))?;
    let (content, calls) = match choice.message {
        Some(m) => (
            m.content.unwrap_or_default(),
            m.tool_calls.unwrap_or_default(),
        ),
        None => (String::new(), Vec::new()),
    };
    let tool_calls = calls
        .into_iter()
        .map(CallFragment::into_call)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = UsageTally::new(estimated_input);
    tally.add_output_text(&content);
    for call in &tool_calls {
        tally.add_output_text(&call.name);
        tally.add_output_text(&call.arguments);
    }
    if let Some(usage) = response.usage {
        tally.input = usage.prompt_tokens;
        tally.output = usage.completion_tokens;
    }
    Ok(Completion {
        finish_reason: finish_with_calls(
            choice.finish_reason.as_deref().map(finish_reason),
            !tool_calls.is_empty(),
        ),
        content,
        tool_calls,
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
    tool_calls: Option<Vec<CallFragment>>,
}

/// One fragment of a streamed tool call. The first fragment of a call names it (id, name);
/// later ones add pieces of its arguments. A fragment without an index (Gemini) belongs to
/// the call its id names, or starts a new one; without an id it continues the last call.
fn stream_call(fragment: CallFragment, progress: &mut Progress) -> Result<(), WireError> {
    let calls = &mut progress.calls;
    let index = match (fragment.index, fragment.id()) {
        (Some(index), _) => index,
        (None, Some(id)) => calls.index_of(id).unwrap_or_else(|| calls.next_index()),
        (None, None) => calls.last_index().ok_or(WireError::Protocol(
            "tool call arguments for a call that was never started",
        ))?,
    };
    let arguments = fragment.arguments();
    if let Some(id) = fragment.id() {
        let name = fragment.name().unwrap_or_default();
        calls.start(index, id.to_owned(), name.to_owned(), String::new())?;
    }
    // Also for the first fragment, whose arguments may already hold the whole text.
    calls.append(index, &arguments, &mut progress.tally)
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
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content {
                progress.text(text, out);
            }
            for fragment in delta.tool_calls.unwrap_or_default() {
                stream_call(fragment, progress)?;
            }
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
    use crate::types::Usage;

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
            tools: vec![],
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

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn encodes_tools_calls_and_results() {
        let mut req = request();
        req.system = None;
        req.messages = vec![
            ChatMessage::new(Role::User, "weather?"),
            ChatMessage::assistant_calls(
                "",
                vec![
                    call("call_1", "get_weather", r#"{"city":"Oslo"}"#),
                    call("call_2", "get_weather", "not json: sent as is"),
                ],
            ),
            ChatMessage::tool_result("call_1", "12 degrees"),
            ChatMessage::tool_result("call_2", "rain"),
            ChatMessage::assistant_calls("One more.", vec![call("call_3", "now", "{}")]),
        ];
        req.tools = vec![ToolSpec {
            name: "get_weather".into(),
            description: "Current weather".into(),
            parameters: serde_json::json!({"type": "object"}),
        }];
        let body = serde_json::to_value(RequestBody::new(&req, false)).unwrap();
        assert_eq!(
            body["tools"],
            serde_json::json!([{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather", "parameters": {"type": "object"},
            }}])
        );
        assert_eq!(
            body["messages"],
            serde_json::json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "not json: sent as is"}},
                ]},
                {"role": "tool", "content": "12 degrees", "tool_call_id": "call_1"},
                {"role": "tool", "content": "rain", "tool_call_id": "call_2"},
                {"role": "assistant", "content": "One more.", "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                ]},
            ])
        );
        // No tools: no field (the exact body without tools is checked above).
        req.tools.clear();
        let body = serde_json::to_value(RequestBody::new(&req, false)).unwrap();
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn decodes_tool_calls_of_a_completion() {
        let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}},
            {"id":"call_2","type":"function","function":{"name":"now","arguments":"{broken"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":9,"completion_tokens":7}}"#;
        let c = decode_completion(body, 0).unwrap();
        assert_eq!(c.content, "");
        assert_eq!(c.finish_reason, "tool_calls");
        assert_eq!(
            c.tool_calls,
            [
                call("call_1", "get_weather", r#"{"city":"Oslo"}"#),
                // Never validated here.
                call("call_2", "now", "{broken"),
            ]
        );
        // A compatible server ending a tool-call answer with "stop", and sending the
        // arguments as an object.
        let body = br#"{"choices":[{"index":0,"message":{"content":"","tool_calls":[
            {"id":"c","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"stop"}]}"#;
        let c = decode_completion(body, 0).unwrap();
        assert_eq!(c.finish_reason, "tool_calls");
        assert_eq!(c.tool_calls, [call("c", "f", r#"{"a":1}"#)]);
        let idless = br#"{"choices":[{"index":0,"message":{"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#;
        assert!(matches!(
            decode_completion(idless, 0),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn assembles_interleaved_tool_call_fragments() {
        let mut d = Progress::new(0);
        let out = run(
            &mut d,
            &[
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
                // Call 1 starts before call 0; their argument pieces interleave.
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"now","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Os"}},{"index":0,"function":{"arguments":"lo\"}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":12}}"#,
                "[DONE]",
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::ToolCalls(vec![
                    call("call_a", "get_weather", r#"{"city":"Oslo"}"#),
                    call("call_b", "now", "{}"),
                ]),
                StreamEvent::Done {
                    finish_reason: "tool_calls".into(),
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 12
                    }
                },
            ]
        );
    }

    #[test]
    fn assembles_fragments_without_an_index() {
        // Gemini's compatible endpoint: no index, `"name": ""` on continuations, "stop".
        let mut d = Progress::new(0);
        run(
            &mut d,
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"g1","type":"function","function":{"name":"a","arguments":"{\"x\":"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"","type":"","function":{"name":"","arguments":"1"}}]}}]}"#,
                // The id resent: the same call, not a new one.
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"g1","function":{"arguments":"}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"g2","type":"function","function":{"name":"b","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            ],
        )
        .unwrap();
        let mut out = VecDeque::new();
        d.end(&mut out).unwrap();
        assert_eq!(
            out.pop_front(),
            Some(StreamEvent::ToolCalls(vec![
                call("g1", "a", r#"{"x":1}"#),
                call("g2", "b", "{}"),
            ]))
        );
        assert!(matches!(
            out.pop_front(),
            Some(StreamEvent::Done { finish_reason, .. }) if finish_reason == "tool_calls"
        ));
    }

    #[test]
    fn malformed_tool_call_fragments_are_protocol_errors() {
        let cases: [&[&str]; 4] = [
            // Arguments for an index that never had an id and a name.
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{}"}}]}}]}"#,
            ],
            // A first fragment without a name.
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"arguments":"{}"}}]}}]}"#,
            ],
            // The same index renamed midway.
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"d","function":{"name":"f"}}]}}]}"#,
            ],
            // No index and nothing started to continue.
            &[
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#,
            ],
        ];
        for events in cases {
            assert!(
                matches!(
                    run(&mut Progress::new(0), events),
                    Err(WireError::Protocol(_))
                ),
                "{events:?}"
            );
        }
    }
}
