//! Device state changes as they happen on this node (online, offline, bound, approved,
//! revoked, unbound), for a console to follow: `GET …/devices/events?after=<cursor>` answers
//! at once with what came after the cursor, or waits for the next change (long polling).
//! The last [`KEEP`] events are kept; a cursor older than them, or from before a restart,
//! is answered with `gap: true` (reload the device list, then follow on).

use bastion_core::{AssistantId, DeviceId};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// Events kept for followers that fell behind.
pub const KEEP: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    pub seq: u64,
    pub assistant: AssistantId,
    pub device: DeviceId,
    /// `online`, `offline`, `bound`, `pending_approval`, `approved`, `revoked`, `unbound`.
    pub kind: &'static str,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// What a follower gets: the events after its cursor, and the cursor to ask with next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub cursor: u64,
    pub events: Vec<DeviceEvent>,
    /// Events after the cursor were dropped (or the cursor is from before a restart).
    pub gap: bool,
}

#[derive(Default)]
pub struct DeviceEvents {
    kept: Mutex<VecDeque<DeviceEvent>>,
    changed: Notify,
}

impl DeviceEvents {
    pub fn publish(&self, assistant: AssistantId, device: DeviceId, kind: &'static str) {
        if let Ok(mut kept) = self.kept.lock() {
            let seq = kept.back().map_or(1, |e| e.seq + 1);
            kept.push_back(DeviceEvent {
                seq,
                assistant,
                device,
                kind,
                at: bastion_store::now_ms(),
            });
            if kept.len() > KEEP {
                kept.pop_front();
            }
        }
        self.changed.notify_waiters();
    }

    /// The sequence number of the latest event (0 before any): a page that reads the
    /// devices after taking it and then follows from it misses no change.
    pub fn cursor(&self) -> u64 {
        self.kept
            .lock()
            .ok()
            .and_then(|k| k.back().map(|e| e.seq))
            .unwrap_or(0)
    }

    /// `assistant`'s events after `after`, right away.
    pub fn since(&self, assistant: AssistantId, after: u64) -> Page {
        let Ok(kept) = self.kept.lock() else {
            return Page {
                cursor: after,
                events: Vec::new(),
                gap: true,
            };
        };
        let latest = kept.back().map_or(0, |e| e.seq);
        let oldest = kept.front().map_or(1, |e| e.seq);
        let gap = after > latest || after + 1 < oldest;
        Page {
            cursor: latest,
            events: kept
                .iter()
                .filter(|e| e.seq > after && e.assistant == assistant)
                .cloned()
                .collect(),
            gap,
        }
    }

    /// As [`since`](Self::since), waiting up to `wait` for an event of `assistant` when
    /// there is none yet.
    pub async fn follow(&self, assistant: AssistantId, after: u64, wait: Duration) -> Page {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a change in between is not missed.
            let changed = self.changed.notified();
            let page = self.since(assistant, after);
            if !page.events.is_empty() || page.gap {
                return page;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return page;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_see_their_assistants_events_in_order() {
        let ev = DeviceEvents::default();
        let (a, b) = (AssistantId::new(), AssistantId::new());
        let d = DeviceId::new();
        ev.publish(a, d, "bound");
        ev.publish(b, DeviceId::new(), "bound");
        ev.publish(a, d, "online");
        let p = ev.since(a, 0);
        assert_eq!(
            p.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            ["bound", "online"]
        );
        assert_eq!((p.cursor, p.gap), (3, false));
        assert!(ev.since(a, 3).events.is_empty());
        assert!(ev.since(b, 0).events.iter().all(|e| e.assistant == b));
    }

    #[test]
    fn a_cursor_older_than_what_is_kept_or_from_another_run_is_a_gap() {
        let ev = DeviceEvents::default();
        let a = AssistantId::new();
        for _ in 0..KEEP + 10 {
            ev.publish(a, DeviceId::new(), "online");
        }
        assert!(ev.since(a, 1).gap);
        assert!(ev.since(a, 0).gap);
        assert!(!ev.since(a, (KEEP + 5) as u64).gap);
        assert!(
            ev.since(a, (KEEP + 100) as u64).gap,
            "a cursor from before a restart"
        );
    }

    #[tokio::test]
    async fn a_follower_waits_for_the_next_event() {
        let ev = std::sync::Arc::new(DeviceEvents::default());
        let a = AssistantId::new();
        let e2 = ev.clone();
        let waiting = tokio::spawn(async move { e2.follow(a, 0, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        ev.publish(a, DeviceId::new(), "offline");
        let p = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.events.len(), 1);
        let empty = ev.follow(a, p.cursor, Duration::from_millis(20)).await;
        assert!(empty.events.is_empty() && !empty.gap);
    }
}
