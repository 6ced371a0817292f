//! Playing a scripted event stream: a pause before each event, an optional stall that never
//! ends, and an abrupt cut (the connection breaks mid-body) on `cut_streams`.

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tokio::sync::watch;

/// The events of one streamed answer.
pub(crate) struct Script {
    pub(crate) events: Vec<Event>,
    /// Stop before this event and wait forever (a stalled provider).
    pub(crate) stall_at: Option<usize>,
}

impl Script {
    /// `stall_after` content deltas counted from `first_delta`, the index of the first
    /// content event; with more than there are, the stall comes after the last.
    pub(crate) fn stall_index(
        stall_after: Option<usize>,
        first_delta: usize,
        deltas: usize,
    ) -> Option<usize> {
        stall_after.map(|k| first_delta + k.min(deltas))
    }
}

struct Player {
    events: std::vec::IntoIter<Event>,
    sent: usize,
    stall_at: Option<usize>,
    delay: Duration,
    cut: watch::Receiver<u64>,
    over: bool,
}

/// The error a cut ends the body with: hyper then drops the connection without the final
/// chunk, which is what a client sees when a provider dies mid-answer.
fn cut_error() -> std::io::Error {
    std::io::Error::other("stream cut by the test")
}

impl Player {
    async fn next(mut self) -> Option<(Result<Event, std::io::Error>, Player)> {
        if self.over {
            return None;
        }
        if self.stall_at == Some(self.sent) {
            // Stalled: nothing more unless cut. A closed signal (the fake is gone) stalls on.
            if self.cut.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            self.over = true;
            return Some((Err(cut_error()), self));
        }
        let event = self.events.next()?;
        let cut = if self.delay.is_zero() {
            // The benchmark path: no timer, no select.
            self.cut.has_changed().unwrap_or(false)
        } else {
            tokio::select! {
                _ = tokio::time::sleep(self.delay) => false,
                changed = self.cut.changed() => changed.is_ok(),
            }
        };
        if cut {
            self.over = true;
            return Some((Err(cut_error()), self));
        }
        self.sent += 1;
        Some((Ok(event), self))
    }
}

pub(crate) fn play(script: Script, delay: Duration, cut: watch::Receiver<u64>) -> Response {
    let player = Player {
        events: script.events.into_iter(),
        sent: 0,
        stall_at: script.stall_at,
        delay,
        cut,
        over: false,
    };
    Sse::new(futures::stream::unfold(player, Player::next)).into_response()
}
