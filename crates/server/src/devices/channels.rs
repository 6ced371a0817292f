//! This node's open device channels (WebSocket and MQTT), and the MCP sessions devices offer
//! their tools through. Revoking or unbinding a device cuts its channels at once on this
//! node; one poller per node reads the store's `cut_at` every second and cuts them on every
//! other node too. A cut closes only the channels opened before it, so a device that already
//! reconnected with its new token is not thrown off again.

use bastion_core::{AssistantId, DeviceId};
use bastion_store::Store;
use bastion_tools::mcp::McpSession;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How often a node looks for cuts made on other nodes.
pub const CUT_POLL: Duration = Duration::from_secs(1);

/// Channels one device may hold open on a node (a WebSocket and an MQTT connection, and a
/// reconnection overlapping the one it replaces); a newer one closes the oldest, as a new
/// MQTT connection with a client id takes over from the old one, so a device (or a thief of
/// its token) cannot pile up connections.
pub const MAX_PER_DEVICE: usize = 4;

struct Entry {
    serial: u64,
    opened_at: i64,
    cut: Arc<Notify>,
}

struct Offered {
    serial: u64,
    assistant: AssistantId,
    session: Arc<McpSession>,
}

#[derive(Default)]
pub struct Channels {
    live: Mutex<HashMap<DeviceId, Vec<Entry>>>,
    mcp: Mutex<HashMap<DeviceId, Offered>>,
    next: AtomicU64,
    poller: OnceLock<()>,
}

/// An open channel; dropping it forgets the channel and the MCP session it offered.
pub struct Open {
    channels: Arc<Channels>,
    pub device: DeviceId,
    serial: u64,
    /// Notified when the channel must close.
    pub cut: Arc<Notify>,
}

/// Names one open channel without holding it open (for work that finishes after a while).
#[derive(Debug, Clone, Copy)]
pub struct ChannelKey {
    device: DeviceId,
    serial: u64,
}

impl Open {
    pub fn handle(&self) -> ChannelKey {
        ChannelKey {
            device: self.device,
            serial: self.serial,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Ok(mut live) = self.channels.live.lock() {
            if let Some(v) = live.get_mut(&self.device) {
                v.retain(|e| e.serial != self.serial);
                if v.is_empty() {
                    live.remove(&self.device);
                }
            }
        }
        if let Ok(mut mcp) = self.channels.mcp.lock() {
            if mcp
                .get(&self.device)
                .is_some_and(|o| o.serial == self.serial)
            {
                mcp.remove(&self.device);
            }
        }
    }
}

impl Channels {
    /// Registers a channel of `device`, starting this node's cut poller on first use.
    pub fn open(self: &Arc<Self>, device: DeviceId, store: &Store) -> Open {
        self.poll_cuts(store.clone());
        let serial = self.next.fetch_add(1, Ordering::Relaxed);
        let cut = Arc::new(Notify::new());
        if let Ok(mut live) = self.live.lock() {
            let entries = live.entry(device).or_default();
            if entries.len() >= MAX_PER_DEVICE {
                let oldest = entries.remove(0);
                oldest.cut.notify_one();
            }
            entries.push(Entry {
                serial,
                opened_at: bastion_store::now_ms(),
                cut: cut.clone(),
            });
        }
        Open {
            channels: self.clone(),
            device,
            serial,
            cut,
        }
    }

    /// Closes `device`'s channels opened at or before `at` (ms).
    pub fn cut(&self, device: DeviceId, at: i64) {
        if let Ok(live) = self.live.lock() {
            for e in live.get(&device).into_iter().flatten() {
                if e.opened_at <= at {
                    e.cut.notify_one();
                }
            }
        }
    }

    pub fn is_online(&self, device: DeviceId) -> bool {
        self.live.lock().is_ok_and(|l| l.contains_key(&device))
    }

    /// How many channels are open on this node.
    pub fn open_count(&self) -> usize {
        self.live
            .lock()
            .map(|l| l.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Records the MCP session the device of channel `key` offers to `assistant`, if that
    /// channel is still open.
    pub fn offer(&self, key: &ChannelKey, assistant: AssistantId, session: Arc<McpSession>) {
        let open = self.live.lock().is_ok_and(|l| {
            l.get(&key.device)
                .is_some_and(|v| v.iter().any(|e| e.serial == key.serial))
        });
        if !open {
            return;
        }
        if let Ok(mut mcp) = self.mcp.lock() {
            mcp.insert(
                key.device,
                Offered {
                    serial: key.serial,
                    assistant,
                    session,
                },
            );
        }
    }

    /// The MCP session of `device`, if it is connected here and bound to `assistant`.
    pub fn session(&self, device: DeviceId, assistant: AssistantId) -> Option<Arc<McpSession>> {
        let mcp = self.mcp.lock().ok()?;
        let o = mcp.get(&device)?;
        (o.assistant == assistant).then(|| o.session.clone())
    }

    fn poll_cuts(self: &Arc<Self>, store: Store) {
        if self.poller.set(()).is_err() {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut since = bastion_store::now_ms() - CUT_POLL.as_millis() as i64;
            loop {
                tokio::time::sleep(CUT_POLL).await;
                let Some(me) = me.upgrade() else { return };
                match store.devices().cut_since(since).await {
                    Ok(cuts) => {
                        for (device, at) in cuts {
                            me.cut(device, at);
                            since = since.max(at);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "device cut poll failed"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_device_cannot_pile_up_channels() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let c = Arc::new(Channels::default());
        let d = DeviceId::new();
        let first = c.open(d, &store);
        let mut rest: Vec<Open> = (1..MAX_PER_DEVICE).map(|_| c.open(d, &store)).collect();
        assert_eq!(c.open_count(), MAX_PER_DEVICE);
        rest.push(c.open(d, &store));
        tokio::time::timeout(Duration::from_secs(1), first.cut.notified())
            .await
            .expect("the oldest channel is closed");
        assert_eq!(c.open_count(), MAX_PER_DEVICE);
        drop(first);
        assert_eq!(
            c.open_count(),
            MAX_PER_DEVICE,
            "the closed one was already forgotten"
        );
    }

    #[tokio::test]
    async fn a_cut_closes_only_channels_opened_before_it() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let c = Arc::new(Channels::default());
        let d = DeviceId::new();
        let old = c.open(d, &store);
        let at = bastion_store::now_ms();
        assert!(c.is_online(d));
        c.cut(d, at);
        tokio::time::timeout(Duration::from_secs(1), old.cut.notified())
            .await
            .expect("the old channel is cut");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let new = c.open(d, &store);
        c.cut(d, at);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), new.cut.notified())
                .await
                .is_err(),
            "a channel opened after the cut stays"
        );
        drop(old);
        drop(new);
        assert!(!c.is_online(d));
        assert_eq!(c.open_count(), 0);
    }
}
