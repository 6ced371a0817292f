//! Writes what model calls leave behind — their trace rows and the usage counters — in the
//! background, in batches, so that no call waits on the database for them. The queue is
//! bounded; when it is full a caller waits for room rather than dropping a record.

use super::meter::Meter;
use bastion_store::llm_calls::LlmCall;
use bastion_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const QUEUE: usize = 16_384;
const BATCH: usize = 512;

#[derive(Clone)]
pub struct Recorder {
    calls: mpsc::Sender<LlmCall>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    stopped: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Recorder {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store, meter: Arc<Meter>, every: Duration) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(store, meter, rx, stop_rx, every));
        Recorder {
            calls: tx,
            stop: Arc::new(stop),
            stopped: Arc::new(tokio::sync::Mutex::new(Some(task))),
        }
    }

    /// Writes everything queued and stops the writer: at shutdown, after the last request.
    pub async fn finish(&self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.stopped.lock().await.take() {
            let _ = task.await;
        }
    }

    pub async fn call(&self, call: LlmCall) {
        if let Err(mpsc::error::TrySendError::Full(call)) = self.calls.try_send(call) {
            metrics::counter!("bastion_recorder_backpressure_total").increment(1);
            let _ = self.calls.send(call).await;
        }
    }
}

async fn run(
    store: Store,
    meter: Arc<Meter>,
    mut rx: mpsc::Receiver<LlmCall>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut open = tokio::select! {
            _ = tick.tick() => true,
            _ = stop.changed() => false,
        };
        loop {
            match rx.try_recv() {
                Ok(call) => batch.push(call),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
            if batch.len() >= BATCH {
                write(&store, &mut batch).await;
            }
        }
        write(&store, &mut batch).await;
        meter.flush().await;
        if !open {
            return;
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<LlmCall>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..3 {
        match store.llm_calls().insert_batch(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, "model call records could not be written");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    metrics::counter!("bastion_llm_call_records_lost_total").increment(batch.len() as u64);
    batch.clear();
}
