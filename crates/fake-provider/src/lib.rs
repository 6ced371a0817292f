//! A fake LLM provider that speaks the real wire formats, for tests and benchmarks.
//!
//! - OpenAI Chat Completions: `POST /v1/chat/completions` (whole and streamed, with
//!   `stream_options.include_usage`), `GET /v1/models`; `Authorization: Bearer <key>`.
//! - Anthropic Messages: `POST /v1/messages` (whole and streamed, every event type of the
//!   real stream); `x-api-key` and `anthropic-version` required.
//!
//! Errors come in each provider's own JSON shape, so a client's error handling is exercised
//! as it would be in production. The answer is "You said: " and the last user message (or a
//! fixed reply), one word per stream chunk, with usage counted in words.
//!
//! Tools, in both formats, whole and streamed:
//! - When the last turn of a request (the last message; when the request ends with tool
//!   results, all of them) has lines `CALL <tool_name> <json arguments>`, the answer is those
//!   tool calls (ids `call_<n>` / `toolu_<n>`, unique), finish reason `tool_calls` /
//!   `tool_use`. Streamed, each call's arguments come in two fragments or more. The arguments
//!   are sent as written, and a tool the request did not offer is proposed all the same:
//!   real models do both, and clients must cope.
//! - Otherwise, when the request ends with tool results, the answer is `Tool results: ` and
//!   their contents joined with ` | `.
//! - A tool result answering no call is refused with a 400, as each provider does: in
//!   OpenAI, a `tool_call_id` no earlier assistant message proposed; in Anthropic, a
//!   `tool_use_id` not in the assistant message right before.
//!
//! A [`FakeHandle`] steers a running fake from a test: fail the next requests, slow or stall
//! streams, cut them off, reject a key, and read back what was received.

mod anthropic;
mod errors;
mod openai;
mod reply;
mod server;
mod sse;
mod state;
mod tools;

pub use server::{FakeHandle, FakeProvider};
pub use state::{RecordedRequest, RecordedToolResult};
