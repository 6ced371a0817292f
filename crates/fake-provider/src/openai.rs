//! OpenAI's Chat Completions endpoints.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

use crate::errors::{self, Format};
use crate::reply::{self, Answer};
use crate::server::unix_now;
use crate::sse::{self, Script};
use crate::state::{Plan, Shared};
use crate::tools::{self, Decision, LastTurn, Proposed};

#[derive(Deserialize)]
struct Request {
    model: String,
    messages: Vec<Message>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Value,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    tool_calls: Value,
    tool_call_id: Option<String>,
}

impl Message {
    /// The ids of the calls an assistant message proposed.
    fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.tool_calls
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
    }

    /// Words of the message as a prompt: its text and the calls it proposed.
    fn words(&self) -> u64 {
        let calls: u64 = self
            .tool_calls
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let function = &c["function"];
                reply::word_count(function["name"].as_str().unwrap_or_default())
                    + reply::word_count(function["arguments"].as_str().unwrap_or_default())
            })
            .sum();
        reply::word_count(&reply::text_of(&self.content)) + calls
    }
}

/// OpenAI's check: every `tool` message answers a call an earlier assistant message made.
fn unanswerable_result(messages: &[Message]) -> Option<String> {
    let mut proposed = HashSet::new();
    for m in messages {
        proposed.extend(m.call_ids());
        if m.role != "tool" {
            continue;
        }
        match m.tool_call_id.as_deref() {
            None => {
                return Some(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a \
                     'tool_call_id'."
                        .to_owned(),
                )
            }
            Some(id) if !proposed.contains(id) => {
                return Some(format!(
                    "Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of \
                     previous message."
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// The last message, or every `tool` message the request ends with.
fn last_turn(messages: &[Message]) -> LastTurn {
    let results: Vec<String> = {
        let trailing = messages.iter().rev().take_while(|m| m.role == "tool");
        let mut results: Vec<String> = trailing.map(|m| reply::text_of(&m.content)).collect();
        results.reverse();
        results
    };
    if !results.is_empty() {
        return LastTurn {
            texts: results.clone(),
            results,
        };
    }
    LastTurn {
        texts: messages
            .last()
            .map(|m| reply::text_of(&m.content))
            .into_iter()
            .collect(),
        results,
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The key of `Authorization: Bearer <key>`, "" when there is none.
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

pub(crate) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = bearer(&headers);
    let plan = shared.arrive("/v1/chat/completions", key, &body);
    if let Some(status) = plan.fail_with {
        return errors::injected(Format::OpenAi, status);
    }
    if plan.key_rejected {
        return errors::openai_bad_key(key);
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("We could not parse the JSON body of your request: {err}");
            return errors::error(Format::OpenAi, 400, &message);
        }
    };
    if request.messages.is_empty() {
        return errors::error(Format::OpenAi, 400, "[] is too short - 'messages'");
    }
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    if max_tokens == Some(0) {
        return errors::error(
            Format::OpenAi,
            400,
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        );
    }
    if let Some(message) = unanswerable_result(&request.messages) {
        return errors::error(Format::OpenAi, 400, &message);
    }
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| reply::text_of(&m.content))
        .unwrap_or_default();
    let prompt_words = request.messages.iter().map(Message::words).sum::<u64>()
        + tools::offered_words(&request.tools);
    let answer = match last_turn(&request.messages).decide() {
        Decision::Calls(calls) => {
            return answer_calls(&shared, &request, &calls, prompt_words, &plan)
        }
        Decision::Text(text) => Answer::from_text(&text, prompt_words, max_tokens),
        Decision::Usual => Answer::new(plan.reply.as_deref(), &last_user, prompt_words, max_tokens),
    };
    let id = format!("chatcmpl-fake{}", shared.next_id());
    let finish_reason = if answer.truncated { "length" } else { "stop" };
    let usage = json!({
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens(),
        "total_tokens": answer.prompt_tokens + answer.completion_tokens(),
    });

    if !request.stream.unwrap_or(false) {
        return Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text(), "refusal": null},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
            "system_fingerprint": null,
        }))
        .into_response();
    }

    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let created = unix_now();
    // With include_usage, OpenAI puts `"usage": null` on every chunk but the last.
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        Event::default().data(chunk.to_string())
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let first_delta = events.len();
    events.extend(
        answer
            .pieces
            .iter()
            .map(|piece| chunk(json!({"content": piece}), Value::Null)),
    );
    events.push(chunk(json!({}), json!(finish_reason)));
    if include_usage {
        let last = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        events.push(Event::default().data(last.to_string()));
    }
    events.push(Event::default().data("[DONE]"));
    let script = Script {
        stall_at: Script::stall_index(plan.stall_after, first_delta, answer.pieces.len()),
        events,
    };
    sse::play(script, plan.token_delay, shared.cut_signal())
}

/// An answer proposing `calls`, whole or streamed. Streamed, the calls' fragments interleave
/// (every call's first fragment, naming it, then their argument pieces in turn), as the format
/// allows, so a client must assemble them by `index`.
fn answer_calls(
    shared: &Shared,
    request: &Request,
    calls: &[Proposed],
    prompt_words: u64,
    plan: &Plan,
) -> Response {
    let id = format!("chatcmpl-fake{}", shared.next_id());
    let ids: Vec<String> = calls
        .iter()
        .map(|_| format!("call_{}", shared.next_id()))
        .collect();
    let prompt_tokens = prompt_words.max(1);
    let completion_tokens = tools::call_words(calls);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    if !request.stream.unwrap_or(false) {
        let tool_calls: Vec<Value> = calls
            .iter()
            .zip(&ids)
            .map(|(call, id)| {
                json!({"id": id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments}})
            })
            .collect();
        return Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": tool_calls,
                            "refusal": null},
                "logprobs": null,
                "finish_reason": "tool_calls",
            }],
            "usage": usage,
            "system_fingerprint": null,
        }))
        .into_response();
    }

    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let created = unix_now();
    let chunk = |delta: Value, finish: Value| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        Event::default().data(chunk.to_string())
    };
    // Per call: the fragment that names it, then one per piece of its arguments.
    let per_call: Vec<Vec<Value>> = calls
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(index, (call, id))| {
            let head = json!({"index": index, "id": id, "type": "function",
                              "function": {"name": call.name, "arguments": ""}});
            let pieces = tools::fragments(&call.arguments)
                .into_iter()
                .map(|piece| json!({"index": index, "function": {"arguments": piece}}));
            std::iter::once(head).chain(pieces).collect()
        })
        .collect();
    let rounds = per_call.iter().map(Vec::len).max().unwrap_or(0);
    let fragments: Vec<Value> = (0..rounds)
        .flat_map(|round| per_call.iter().filter_map(move |f| f.get(round).cloned()))
        .collect();

    let mut events = vec![chunk(
        json!({"role": "assistant", "content": null}),
        Value::Null,
    )];
    let first_delta = events.len();
    let deltas = fragments.len();
    events.extend(
        fragments
            .into_iter()
            .map(|f| chunk(json!({"tool_calls": [f]}), Value::Null)),
    );
    events.push(chunk(json!({}), json!("tool_calls")));
    if include_usage {
        let mut last = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "system_fingerprint": null,
            "choices": [],
        });
        last["usage"] = usage;
        events.push(Event::default().data(last.to_string()));
    }
    events.push(Event::default().data("[DONE]"));
    let script = Script {
        stall_at: Script::stall_index(plan.stall_after, first_delta, deltas),
        events,
    };
    sse::play(script, plan.token_delay, shared.cut_signal())
}

/// `GET /v1/models` in OpenAI's list shape.
pub(crate) fn models(key: &str, rejected: bool) -> Response {
    if rejected {
        return errors::openai_bad_key(key);
    }
    Json(json!({
        "object": "list",
        "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "bastion"}],
    }))
    .into_response()
}
