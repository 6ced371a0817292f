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
use crate::state::Shared;

#[derive(Deserialize)]
struct Request {
    model: String,
    messages: Vec<Message>,
    max_tokens: Option<u64>,
    #[serde(default)]
    system: Value,
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
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
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| reply::text_of(&m.content))
        .unwrap_or_default();
    let prompt_words = reply::word_count(&reply::text_of(&request.system))
        + request
            .messages
            .iter()
            .map(|m| reply::word_count(&reply::text_of(&m.content)))
            .sum::<u64>();
    let answer = Answer::new(
        plan.reply.as_deref(),
        &last_user,
        prompt_words,
        Some(max_tokens),
    );
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
