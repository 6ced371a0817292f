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
//! A [`FakeHandle`] steers a running fake from a test: fail the next requests, slow or stall
//! streams, cut them off, reject a key, and read back what was received.

mod anthropic;
mod errors;
mod openai;
mod reply;
mod server;
mod sse;
mod state;

pub use server::{FakeHandle, FakeProvider};
pub use state::RecordedRequest;
