//! What one request may cost the node in memory and work (issue 16, items 2 and 3), beyond
//! credentials ([`crate::auth::AuthLimits`]) and bodies ([`crate::limit_bodies`]):
//! [`Limits`], and the [`PageGate`] every page-serving TAXII route goes through.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

/// The request limits of a node, from the `[limits]` section of `concord.toml`; each has a
/// safe default ([`Limits::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `POST /api/match`: most distinct collections one request names (after removing
    /// repeats); more answer 400 naming `collections`. Default 16.
    pub match_collections: usize,
    /// `POST /api/match`: most entries of `lines`; more answer 400 naming `lines`.
    /// Default 50,000.
    pub match_lines: usize,
    /// `POST /api/match`: most bytes of `lines` together (UTF-8, newlines not counted);
    /// more answer 400 naming `lines`. Default 1 MiB.
    pub match_bytes: usize,
    /// `POST /api/match`: compiled indicator sets kept between requests, one per
    /// (collections, audience, policy version), the least recently used dropped first
    /// ([`crate::matching::SetCache`]); 0 keeps none. Default 8.
    pub match_cache_sets: usize,
    /// TAXII pages (objects, manifest, object, versions) built at once. Default 4; at
    /// least 1.
    pub page_concurrency: usize,
    /// TAXII pages that may wait for one of those; more answer 503 with `Retry-After`.
    /// Default 32.
    pub page_queue: usize,
    /// Bytes of objects on one page ([`concord_egress::PageQuery::max_bytes`]): a page ends
    /// before the object that would cross it (with `more` and `next`), and holds at least
    /// one object. Default 16 MiB.
    pub page_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            match_collections: 16,
            match_lines: 50_000,
            match_bytes: 1 << 20,
            match_cache_sets: 8,
            page_concurrency: 4,
            page_queue: 32,
            page_max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
        }
    }
}

/// Seconds a client told "busy" (503) waits before it tries again (`Retry-After`).
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// At most `concurrency` pages built at once, at most `queue` more waiting; beyond, the
/// caller is answered 503 at once. The waiting page that asked for the fewest objects goes
/// first (then the oldest), so a small page of a well-behaved client is not held behind a
/// queue of 10,000-object pages; a large page waits at most while smaller ones keep
/// arriving, which the queue bound limits.
///
/// One gate per node ([`crate::AppState`]), applied as one layer on every page route by
/// [`crate::router`]; a permit is held until the page's response is built (its body is
/// then one string, the decided entries freed).
#[derive(Debug)]
pub struct PageGate {
    concurrency: usize,
    queue: usize,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    building: usize,
    waiting: BinaryHeap<Waiter>,
    seq: u64,
}

#[derive(Debug)]
struct Waiter {
    cost: usize,
    seq: u64,
    wake: tokio::sync::oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.cost, self.seq) == (other.cost, other.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// The max-heap's greatest is the cheapest, then the oldest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.cost, other.seq).cmp(&(self.cost, self.seq))
    }
}

/// The gate is full: `concurrency` pages building and `queue` waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "busy: {building} pages are being built and {waiting} wait (page_concurrency, page_queue); retry after {BUSY_RETRY_AFTER_SECS} s"
)]
pub struct Busy {
    /// Pages being built.
    pub building: usize,
    /// Pages waiting.
    pub waiting: usize,
}

/// The right to build one page; the next waiting page goes when it is dropped.
#[derive(Debug)]
pub struct PagePermit {
    gate: Arc<PageGate>,
}

impl Drop for PagePermit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A waiting page. Given up (the client went away): it leaves the queue, or, when it had
/// been woken already, the slot it was handed goes on to the next.
struct Waiting {
    gate: Arc<PageGate>,
    seq: u64,
    rx: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release();
            } else {
                let seq = self.seq;
                self.gate.lock().waiting.retain(|w| w.seq != seq);
            }
        }
    }
}

impl PageGate {
    /// A gate of `concurrency` (at least 1) pages at once and `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Arc<PageGate> {
        Arc::new(PageGate {
            concurrency: concurrency.max(1),
            queue,
            state: Mutex::new(GateState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the right to build a page of at most `cost` objects (its `limit`).
    /// Errors: [`Busy`] at once when `queue` pages already wait.
    pub async fn enter(self: &Arc<Self>, cost: usize) -> Result<PagePermit, Busy> {
        let (rx, seq) = {
            let mut s = self.lock();
            if s.building < self.concurrency {
                s.building += 1;
                return Ok(PagePermit { gate: self.clone() });
            }
            if s.waiting.len() >= self.queue {
                return Err(Busy {
                    building: s.building,
                    waiting: s.waiting.len(),
                });
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.seq += 1;
            let seq = s.seq;
            s.waiting.push(Waiter {
                cost,
                seq,
                wake: tx,
            });
            (rx, seq)
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            seq,
            rx: Some(rx),
        };
        let rx = waiting.rx.as_mut().expect("set above");
        // The sender is dropped only by `release` after a failed send, which it never does
        // to a live receiver: an error here cannot happen, and would mean "go" anyway.
        let _ = rx.await;
        waiting.rx = None;
        Ok(PagePermit { gate: self.clone() })
    }

    /// Hands the slot of a finished page to the best waiting one, or frees it.
    fn release(&self) {
        let mut s = self.lock();
        while let Some(w) = s.waiting.pop() {
            if w.wake.send(()).is_ok() {
                return;
            }
        }
        s.building = s.building.saturating_sub(1);
    }

    /// Pages being built and pages waiting, now.
    pub fn load(&self) -> (usize, usize) {
        let s = self.lock();
        (s.building, s.waiting.len())
    }
}
