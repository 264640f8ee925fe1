//! The in-process settlement bus: a bounded channel, for the embedded deployment (`switch demo`)
//! where relay, consumer and ledger share one process.
//!
//! One partition per topic; the offset of a message is its outbox sequence, so after a restart
//! the relay resumes at the ledger's stored offset and nothing published but not applied is
//! lost (the queue itself is memory only).

use super::{BusError, BusSubscriber, Delivery, Outbound, SettlementBus};
use futures_core::future::BoxFuture;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

/// Bounded in-memory bus with one subscriber.
#[derive(Debug)]
pub struct InProcessBus {
    tx: mpsc::Sender<Delivery>,
    rx: Mutex<Option<mpsc::Receiver<Delivery>>>,
}

impl InProcessBus {
    /// A bus holding at most `capacity` unconsumed messages (publishers wait when full).
    pub fn new(capacity: usize) -> Result<Self, BusError> {
        if capacity == 0 || capacity > 1_000_000 {
            return Err(BusError::Config(format!(
                "in-process capacity {capacity} outside 1..=1000000"
            )));
        }
        let (tx, rx) = mpsc::channel(capacity);
        Ok(InProcessBus {
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// The single subscriber (None if already taken).
    pub async fn subscribe(&self) -> Option<InProcessSubscriber> {
        self.rx
            .lock()
            .await
            .take()
            .map(|rx| InProcessSubscriber { rx })
    }
}

impl SettlementBus for InProcessBus {
    fn publish<'a>(&'a self, batch: &'a [Outbound]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            for m in batch {
                self.tx
                    .send(Delivery {
                        topic: m.topic.clone(),
                        partition: 0,
                        offset: m.source_seq,
                        payload: m.payload.clone(),
                    })
                    .await
                    .map_err(|_| BusError::Closed)?;
            }
            Ok(())
        })
    }
}

/// The consuming end of an [`InProcessBus`].
#[derive(Debug)]
pub struct InProcessSubscriber {
    rx: mpsc::Receiver<Delivery>,
}

impl BusSubscriber for InProcessSubscriber {
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, BusError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Err(_) => return Ok(out),
                Ok(None) => return Err(BusError::Closed),
                Ok(Some(d)) => out.push(d),
            }
            while out.len() < max {
                match self.rx.try_recv() {
                    Ok(d) => out.push(d),
                    Err(_) => break,
                }
            }
            Ok(out)
        })
    }

    fn seek(&mut self, _topic: &str, _partition: i32, _offset: i64) -> Result<bool, BusError> {
        // Offsets are outbox sequences and the relay resumes from the ledger's offset; there is
        // nothing to rewind in memory.
        Ok(false)
    }

    fn take_rebalanced(&mut self) -> bool {
        false
    }

    fn applied(&mut self, _offsets: &[(String, i32, i64)]) {}
}
