//! bastion's conversation runtime, the model-call layer: one [`Client`] that talks to LLM
//! providers in their own wire formats, plus the arithmetic around a call (what it may cost,
//! how much history fits).
//!
//! - Two wire formats cover the providers we support: OpenAI's Chat Completions (OpenAI itself
//!   and every "OpenAI-compatible" server: Ollama, vLLM, llama.cpp, OpenRouter, chosen by base
//!   URL) and Anthropic's Messages. Each lives in its own module under `wire/`, so the client
//!   logic (timeouts, retries, error mapping) is written once.
//! - Calls either complete ([`Client::complete`]) or stream ([`Client::stream`]); a stream always
//!   ends with exactly one [`StreamEvent::Done`] carrying the usage to bill, or with an error.
//! - Tools offered in a [`ChatRequest`] come back as [`ToolCall`]s, whole even when streamed
//!   (the wire layer assembles the fragments). Their arguments are passed on as the model
//!   wrote them: validating them is the caller's job, not this crate's.
//! - Errors are a closed set ([`ProviderError`]) whose Display never carries the provider key,
//!   the endpoint URL's credentials or query, or a raw provider body: callers may log them and
//!   show them to users.
//!
//! No HTTP server and no database here: the server crate decides who may call what and
//! records the cost; this crate only makes the call.

mod address;
mod body;
pub mod budget;
mod client;
mod config;
mod endpoint;
mod error;
pub mod pricing;
mod redact;
mod retry;
mod types;
mod wire;

pub use client::{Client, EventStream};
pub use config::ClientConfig;
pub use endpoint::{Endpoint, ProviderKind};
pub use error::ProviderError;
pub use pricing::{Price, PriceTable};
pub use types::{
    ChatMessage, ChatRequest, Completion, Role, StreamEvent, ToolCall, ToolSpec, Usage,
};
