//! The provider-neutral shapes of a chat call: what goes in, what comes out.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
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
    /// The answer is complete. `finish_reason` is in OpenAI's vocabulary: "stop", "length",
    /// "content_filter", "tool_calls"; a value outside it that a provider invents is passed
    /// through unchanged rather than guessed at.
    Done { finish_reason: String, usage: Usage },
}

/// A whole (non-streamed) answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: String,
    pub finish_reason: String,
    pub usage: Usage,
}
