//! Anthropic's Messages endpoint.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::errors::{self, Format};
use crate::reply::{self, Answer};
use crate::sse::{self, Script};
use crate::state::{Plan, Shared};
use crate::tools::{self, Decision, LastTurn, Proposed};

#[derive(Deserialize)]
struct Request {
    model: String,
    messages: Vec<Message>,
    max_tokens: Option<u64>,
    #[serde(default)]
    system: Value,
    stream: Option<bool>,
    #[serde(default)]
    tools: Value,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

impl Message {
    /// Words of the message as a prompt: its text, its tool calls and its tool results.
    fn words(&self) -> u64 {
        let calls: u64 = tools::tool_use_blocks(&self.content)
            .map(|b| {
                reply::word_count(b["name"].as_str().unwrap_or_default())
                    + reply::word_count(&b["input"].to_string())
            })
            .sum();
        let results: u64 = tools::tool_result_blocks(&self.content)
            .map(|b| reply::word_count(&reply::text_of(&b["content"])))
            .sum();
        reply::word_count(&reply::text_of(&self.content)) + calls + results
    }
}

/// Anthropic's check: every `tool_result` answers a `tool_use` of the assistant message
/// right before it.
fn unanswerable_result(messages: &[Message]) -> Option<String> {
    for (i, m) in messages.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|p| messages.get(p));
        let proposed: Vec<&str> = before
            .filter(|p| p.role == "assistant")
            .map(|p| {
                tools::tool_use_blocks(&p.content)
                    .filter_map(|b| b["id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let blocks = m.content.as_array().into_iter().flatten().enumerate();
        for (j, block) in blocks.filter(|(_, b)| b["type"] == "tool_result") {
            match block["tool_use_id"].as_str() {
                None => {
                    return Some(format!(
                        "messages.{i}.content.{j}.tool_result.tool_use_id: Field required"
                    ))
                }
                Some(id) if !proposed.contains(&id) => {
                    return Some(format!(
                        "messages.{i}.content.{j}: unexpected `tool_use_id` found in \
                         `tool_result` blocks: {id}. Each `tool_result` block must have a \
                         corresponding `tool_use` block in the previous message."
                    ))
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// The last message: its text and its tool results' texts, where directives are looked
/// for, and its tool results.
fn last_turn(messages: &[Message]) -> LastTurn {
    let Some(last) = messages.last() else {
        return LastTurn::default();
    };
    let results: Vec<String> = tools::tool_result_blocks(&last.content)
        .map(|b| reply::text_of(&b["content"]))
        .collect();
    let texts = std::iter::once(reply::text_of(&last.content))
        .chain(results.iter().cloned())
        .collect();
    LastTurn { texts, results }
}

/// The `x-api-key` header, "" when absent.
pub(crate) fn api_key(headers: &HeaderMap) -> &str {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn invalid(message: &str) -> Response {
    errors::error(Format::Anthropic, 400, message)
}

pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = api_key(&headers);
    let plan = shared.arrive("/v1/messages", key, &body);
    if let Some(status) = plan.fail_with {
        return errors::injected(Format::Anthropic, status);
    }
    if plan.key_rejected {
        return errors::error(Format::Anthropic, 401, "invalid x-api-key");
    }
    if !headers.contains_key("anthropic-version") {
        return invalid("anthropic-version: header is required");
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return invalid(&format!("There was an issue with your request JSON: {err}")),
    };
    let Some(max_tokens) = request.max_tokens else {
        return invalid("max_tokens: Field required");
    };
    if max_tokens == 0 {
        return invalid("max_tokens: Input should be greater than or equal to 1");
    }
    if request.messages.is_empty() {
        return invalid("messages: at least one message is required");
    }
    if let Some(m) = request
        .messages
        .iter()
        .find(|m| m.role != "user" && m.role != "assistant")
    {
        return invalid(&format!(
            "messages: Unexpected role \"{}\". The Messages API accepts a top-level `system` \
             parameter, not \"system\" as an input message role.",
            m.role
        ));
    }
    if let Some(message) = unanswerable_result(&request.messages) {
        return invalid(&message);
    }
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| reply::text_of(&m.content))
        .unwrap_or_default();
    let prompt_words = reply::word_count(&reply::text_of(&request.system))
        + request.messages.iter().map(Message::words).sum::<u64>()
        + tools::offered_words(&request.tools);
    let answer = match last_turn(&request.messages).decide() {
        Decision::Calls(calls) => {
            return answer_calls(&shared, &request, &calls, prompt_words, &plan)
        }
        Decision::Text(text) => Answer::from_text(&text, prompt_words, Some(max_tokens)),
        Decision::Usual => Answer::new(
            plan.reply.as_deref(),
            &last_user,
            prompt_words,
            Some(max_tokens),
        ),
    };
    let id = format!("msg_fake{}", shared.next_id());
    let stop_reason = if answer.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };

    if !request.stream.unwrap_or(false) {
        return Json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [{"type": "text", "text": answer.text()}],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {
                "input_tokens": answer.prompt_tokens,
                "output_tokens": answer.completion_tokens(),
            },
        }))
        .into_response();
    }

    let event = |name: &str, data: Value| Event::default().event(name).data(data.to_string());
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": request.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": answer.prompt_tokens, "output_tokens": 1},
            }}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let first_delta = events.len();
    events.extend(answer.pieces.iter().map(|piece| {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": piece}}),
        )
    }));
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": answer.completion_tokens()}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let script = Script {
        stall_at: Script::stall_index(plan.stall_after, first_delta, answer.pieces.len()),
        events,
    };
    sse::play(script, plan.token_delay, shared.cut_signal())
}

/// An answer proposing `calls`, whole or streamed. Streamed, each call is a `tool_use` block
/// whose input comes as `input_json_delta` pieces, one block after the other, as Anthropic
/// sends them.
fn answer_calls(
    shared: &Shared,
    request: &Request,
    calls: &[Proposed],
    prompt_words: u64,
    plan: &Plan,
) -> Response {
    let id = format!("msg_fake{}", shared.next_id());
    let ids: Vec<String> = calls
        .iter()
        .map(|_| format!("toolu_{}", shared.next_id()))
        .collect();
    let input_tokens = prompt_words.max(1);
    let output_tokens = tools::call_words(calls);
    if !request.stream.unwrap_or(false) {
        let content: Vec<Value> = calls
            .iter()
            .zip(&ids)
            .map(|(call, id)| {
                // `input` is JSON here: arguments that are not JSON go as a JSON string, the
                // nearest a whole answer can come to a model writing nonsense.
                let input = serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| Value::String(call.arguments.clone()));
                json!({"type": "tool_use", "id": id, "name": call.name, "input": input})
            })
            .collect();
        return Json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }))
        .into_response();
    }

    let event = |name: &str, data: Value| Event::default().event(name).data(data.to_string());
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": request.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }}),
    )];
    let first_delta = events.len();
    for (index, (call, id)) in calls.iter().zip(&ids).enumerate() {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                   "content_block": {"type": "tool_use", "id": id, "name": call.name,
                                     "input": {}}}),
        ));
        if index == 0 {
            events.push(event("ping", json!({"type": "ping"})));
        }
        events.extend(tools::fragments(&call.arguments).into_iter().map(|piece| {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                       "delta": {"type": "input_json_delta", "partial_json": piece}}),
            )
        }));
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    let deltas = events.len() - first_delta;
    events.push(event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let script = Script {
        stall_at: Script::stall_index(plan.stall_after, first_delta, deltas),
        events,
    };
    sse::play(script, plan.token_delay, shared.cut_signal())
}

/// `GET /v1/models` in Anthropic's list shape.
pub(crate) fn models(rejected: bool) -> Response {
    if rejected {
        return errors::error(Format::Anthropic, 401, "invalid x-api-key");
    }
    Json(json!({
        "data": [{"type": "model", "id": "fake-model", "display_name": "Fake Model",
                  "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": false,
        "first_id": "fake-model",
        "last_id": "fake-model",
    }))
    .into_response()
}
