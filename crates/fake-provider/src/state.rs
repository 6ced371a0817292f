//! What the fake remembers and how it is told to behave, shared by the server and every
//! [`crate::FakeHandle`] clone.

use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

use crate::tools;

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub path: String,
    /// The bearer token or `x-api-key`, "" when absent.
    pub api_key: String,
    /// The JSON body; `Null` for a request without one, a JSON string holding the raw text
    /// for a body that is not JSON.
    pub body: serde_json::Value,
    /// The names of the tools offered in `tools`, in order (left out of the JSON record when
    /// there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Every tool result the request carried, in order: OpenAI's `tool` messages, Anthropic's
    /// `tool_result` blocks (left out of the JSON record when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<RecordedToolResult>,
}

/// A tool result as the fake received it: the call it answers and its text (the `text`
/// parts joined, when it came as content parts).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedToolResult {
    pub call_id: String,
    pub content: String,
}

/// Behaviour controls, read once per request.
#[derive(Default)]
struct Controls {
    /// (requests left to fail, status to fail them with)
    fail: Option<(u32, u16)>,
    token_delay: Duration,
    stall_after: Option<usize>,
    reject_keys: HashSet<String>,
    reply: Option<String>,
}

/// How to answer one request, decided when it arrives.
pub(crate) struct Plan {
    pub(crate) fail_with: Option<u16>,
    pub(crate) key_rejected: bool,
    pub(crate) token_delay: Duration,
    pub(crate) stall_after: Option<usize>,
    pub(crate) reply: Option<String>,
}

pub(crate) struct Shared {
    recording: AtomicBool,
    count: AtomicU64,
    requests: Mutex<Vec<RecordedRequest>>,
    controls: Mutex<Controls>,
    /// Bumped by `cut_streams`; every open stream watches it.
    cuts: watch::Sender<u64>,
    /// Set by `shutdown`; the server watches it.
    stopped: watch::Sender<bool>,
    next_id: AtomicU64,
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(recording: bool) -> Shared {
        Shared {
            recording: AtomicBool::new(recording),
            count: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            controls: Mutex::new(Controls::default()),
            cuts: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
            next_id: AtomicU64::new(1),
        }
    }

    /// Counts (and, when recording, records) a request and decides how to answer it.
    pub(crate) fn arrive(&self, path: &str, api_key: &str, body: &[u8]) -> Plan {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            let body = if body.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
                })
            };
            let (tools, tool_results) = tools::recorded(&body);
            lock(&self.requests).push(RecordedRequest {
                path: path.to_owned(),
                api_key: api_key.to_owned(),
                body,
                tools,
                tool_results,
            });
        }
        let mut controls = lock(&self.controls);
        let fail_with = match &mut controls.fail {
            Some((left, status)) if *left > 0 => {
                *left -= 1;
                Some(*status)
            }
            _ => None,
        };
        Plan {
            fail_with,
            key_rejected: api_key.is_empty() || controls.reject_keys.contains(api_key),
            token_delay: controls.token_delay,
            stall_after: controls.stall_after,
            reply: controls.reply.clone(),
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn cut_signal(&self) -> watch::Receiver<u64> {
        self.cuts.subscribe()
    }

    pub(crate) fn cut_streams(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    pub(crate) fn stop(&self) {
        self.stopped.send_replace(true);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn request_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    pub(crate) fn fail_next(&self, n: u32, status: u16) {
        lock(&self.controls).fail = Some((n, status));
    }

    pub(crate) fn set_token_delay(&self, delay: Duration) {
        lock(&self.controls).token_delay = delay;
    }

    pub(crate) fn set_stall_after(&self, deltas: Option<usize>) {
        lock(&self.controls).stall_after = deltas;
    }

    pub(crate) fn reject_key(&self, key: String) {
        lock(&self.controls).reject_keys.insert(key);
    }

    pub(crate) fn set_reply(&self, reply: Option<String>) {
        lock(&self.controls).reply = reply;
    }
}
