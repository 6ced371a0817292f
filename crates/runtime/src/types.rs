//! The provider-neutral shapes of a chat call: what goes in, what comes out.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering the assistant message that proposed it.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// An assistant message's proposed tool calls (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A `Tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// The assistant's turn that proposed `calls` (with whatever text came with them).
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::new(Role::Assistant, content)
        }
    }

    /// The result of the call `call_id`, as the model will read it.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(call_id.into()),
            ..ChatMessage::new(Role::Tool, content)
        }
    }
}

/// A tool the model may call: its name, what it does, and its arguments' JSON Schema.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A call the model proposed. `arguments` is the JSON text exactly as the model sent it
/// (it may not be valid JSON: the caller validates it, never the wire layer).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One model call. `system` is sent the way each format wants it: a leading system message
/// for OpenAI, the top-level `system` field for Anthropic (where System-role entries of
/// `messages` are merged into it, since Anthropic has no system role in `messages`).
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    /// The tools offered to the model (none: the model is not told about tools at all).
    pub tools: Vec<ToolSpec>,
}

/// Tokens billed for one call. When a provider reports none (some OpenAI-compatible servers
/// ignore `stream_options.include_usage`), the client fills in a conservative estimate
/// ([`crate::budget`]) rather than zero, so a call is never free by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One item of a streamed answer. A stream yields any number of `Delta`s, then exactly one
/// `Done`, then ends (or yields one error and ends).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The next piece of the answer's text (never empty).
    Delta(String),
    /// The tool calls the model proposed, each whole (the wire layer assembles streamed
    /// fragments), sent once, just before `Done` (whose finish_reason is then "tool_calls").
    ToolCalls(Vec<ToolCall>),
    /// The answer is complete. `finish_reason` is in OpenAI's vocabulary: "stop", "length",
    /// "content_filter", "tool_calls"; a value outside it that a provider invents is passed
    /// through unchanged rather than guessed at.
    Done { finish_reason: String, usage: Usage },
}

/// A whole (non-streamed) answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: String,
    /// Proposed tool calls (finish_reason "tool_calls"); empty for a plain answer.
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: String,
    pub usage: Usage,
}
