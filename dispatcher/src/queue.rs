//! The one FIFO between `/enqueue` and the drain, bounded by item count and by bytes.
//!
//! `/enqueue` handlers push from any thread; the drain is the single consumer. A push that does
//! not fit is refused (the handler answers 503 + `Retry-After`): nothing is ever dropped here.
//! On shutdown the queue stops accepting under the same lock that pushes take, so no item can
//! slip in after the final sweep.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use prometheus::IntGauge;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One image waiting to be classified.
#[derive(Debug)]
pub struct Item {
    /// The client's id, or a generated UUID.
    pub id: String,
    /// The base64 payload as received (UTF-8, validated, never decoded here): usually a slice
    /// of the request body, which the queue then keeps alive instead of a copy.
    pub image: Bytes,
    /// Monotonic enqueue time: every later timestamp of the item is measured from it.
    pub enqueued_at: Instant,
    /// Wall-clock enqueue time, Unix epoch ms (the record's `enqueuedAtMs`).
    pub enqueued_at_ms: f64,
}

impl Item {
    /// What the item counts against `--queue-max-bytes`.
    pub fn bytes(&self) -> usize {
        self.image.len() + self.id.len()
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// `--queue-capacity` items are waiting.
    Full { length: usize },
    /// The item would take the queue over `--queue-max-bytes`.
    BytesFull { bytes: usize },
    /// Shutdown has begun.
    Closed,
}

/// A bounded FIFO with a single async consumer.
#[derive(Debug)]
pub struct Queue {
    inner: Mutex<Inner>,
    /// Woken on every push and on close. `notify_one` keeps a permit when the drain is not
    /// waiting yet, so a wake-up between its check and its wait is not lost.
    changed: Notify,
    capacity: usize,
    max_bytes: usize,
    length_gauge: IntGauge,
    bytes_gauge: IntGauge,
}

#[derive(Debug)]
struct Inner {
    items: VecDeque<Item>,
    bytes: usize,
    accepting: bool,
}

impl Queue {
    pub fn new(capacity: usize, max_bytes: usize, length: IntGauge, bytes: IntGauge) -> Self {
        Self {
            inner: Mutex::new(Inner {
                // Grows on demand: an idle dispatcher should not reserve 10 000 slots.
                items: VecDeque::new(),
                bytes: 0,
                accepting: true,
            }),
            changed: Notify::new(),
            capacity,
            max_bytes,
            length_gauge: length,
            bytes_gauge: bytes,
        }
    }

    /// Appends an item; returns the queue length including it.
    pub fn push(&self, item: Item) -> Result<usize, PushError> {
        let mut inner = self.lock();
        if !inner.accepting {
            return Err(PushError::Closed);
        }
        if inner.items.len() >= self.capacity {
            return Err(PushError::Full {
                length: inner.items.len(),
            });
        }
        let bytes = inner.bytes + item.bytes();
        if bytes > self.max_bytes {
            return Err(PushError::BytesFull { bytes: inner.bytes });
        }
        inner.bytes = bytes;
        inner.items.push_back(item);
        let length = inner.items.len();
        self.publish(&inner);
        drop(inner);
        self.changed.notify_one();
        Ok(length)
    }

    /// Takes the oldest item.
    pub fn pop(&self) -> Option<Item> {
        let mut inner = self.lock();
        let item = inner.items.pop_front()?;
        inner.bytes -= item.bytes();
        self.publish(&inner);
        Some(item)
    }

    /// Waits until an item is ready to pop (`true`), or until the queue is empty and no longer
    /// accepting (`false`: the drain is done). Only the single consumer may call this.
    pub async fn wait_for_item(&self) -> bool {
        loop {
            {
                let inner = self.lock();
                if !inner.items.is_empty() {
                    return true;
                }
                if !inner.accepting {
                    return false;
                }
            }
            self.changed.notified().await;
        }
    }

    /// Refuses every later push (shutdown). Items already queued stay for the drain.
    pub fn stop_accepting(&self) {
        self.lock().accepting = false;
        self.changed.notify_one();
    }

    /// Empties the queue (the shutdown deadline passed), oldest first.
    pub fn take_all(&self) -> Vec<Item> {
        let mut inner = self.lock();
        let items: Vec<Item> = inner.items.drain(..).collect();
        inner.bytes = 0;
        self.publish(&inner);
        items
    }

    pub fn is_accepting(&self) -> bool {
        self.lock().accepting
    }

    /// `(length, bytes)`.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.items.len(), inner.bytes)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn publish(&self, inner: &Inner) {
        self.length_gauge.set(inner.items.len() as i64);
        self.bytes_gauge.set(inner.bytes as i64);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        harness_core::sync::lock(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, image_len: usize) -> Item {
        Item {
            id: id.into(),
            image: Bytes::from("A".repeat(image_len)),
            enqueued_at: Instant::now(),
            enqueued_at_ms: 0.0,
        }
    }

    fn queue(capacity: usize, max_bytes: usize) -> Queue {
        let g = || IntGauge::new("g", "g").expect("gauge");
        Queue::new(capacity, max_bytes, g(), g())
    }

    #[test]
    fn fifo_bounded_by_count_and_bytes() {
        let q = queue(2, 100);
        assert_eq!(q.push(item("a", 9)), Ok(1));
        assert_eq!(q.push(item("b", 79)), Ok(2));
        assert_eq!(q.push(item("c", 1)), Err(PushError::Full { length: 2 }));
        assert_eq!(q.pop().map(|i| i.id), Some("a".into()));
        assert_eq!(q.usage(), (1, 80));
        assert_eq!(
            q.push(item("d", 20)),
            Err(PushError::BytesFull { bytes: 80 })
        );
        assert_eq!(q.push(item("e", 19)), Ok(2));
        assert_eq!(q.usage(), (2, 100));
        assert_eq!(q.pop().map(|i| i.id), Some("b".into()));
        assert_eq!(q.pop().map(|i| i.id), Some("e".into()));
        assert!(q.pop().is_none());
        assert_eq!(q.usage(), (0, 0));
    }

    #[test]
    fn closing_refuses_pushes_and_take_all_empties() {
        let q = queue(10, 1000);
        q.push(item("a", 1)).expect("fits");
        q.push(item("b", 1)).expect("fits");
        q.stop_accepting();
        assert_eq!(q.push(item("c", 1)), Err(PushError::Closed));
        let ids: Vec<_> = q.take_all().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(q.usage(), (0, 0));
    }

    #[tokio::test]
    async fn consumer_wakes_on_push_and_ends_on_close() {
        let q = std::sync::Arc::new(queue(10, 1000));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.wait_for_item().await }
        });
        tokio::task::yield_now().await;
        q.push(item("a", 1)).expect("fits");
        assert!(waiter.await.expect("joins"));
        q.pop();
        q.stop_accepting();
        assert!(!q.wait_for_item().await);
    }
}
