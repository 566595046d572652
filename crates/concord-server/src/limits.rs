//! What one request may cost the node in memory and work (issue 16, items 2 and 3), beyond
//! credentials ([`crate::auth::AuthLimits`]), bodies ([`crate::limit_bodies`]) and
//! connections ([`crate::ConnLimits`]): [`Limits`], the [`PageGate`] every page-serving
//! TAXII route goes through (its permit held by the page's body, [`PermitBody`], until the
//! page has been handed to the connection), and the [`CompileGate`] of `/api/match`'s
//! indicator sets.

use std::collections::BinaryHeap;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use std::time::Duration;

/// The request limits of a node, from the `[limits]` section of `concord.toml`; each has a
/// safe default ([`Limits::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `POST /api/match`: most distinct collections one request names (after removing
    /// repeats); more answer 400 naming `collections`. Default 16.
    pub match_collections: usize,
    /// `POST /api/match`: most lines in `lines`, counted after splitting each entry at its
    /// newlines (the entries are read as one newline-separated text); more answer 400
    /// naming `lines`. Default 50,000.
    pub match_lines: usize,
    /// `POST /api/match`: most bytes of `lines` together (UTF-8, newlines not counted);
    /// more answer 400 naming `lines`. Default 1 MiB.
    pub match_bytes: usize,
    /// `POST /api/match`: compiled indicator sets kept between requests, one per
    /// (collections, audience, policy version) ([`crate::matching::SetCache`]); 0 keeps
    /// none. When full, a set of the audience holding the most is dropped (its least
    /// recently used). Default 8.
    pub match_cache_sets: usize,
    /// `POST /api/match`: sets one audience (the operator, or one partner) may keep; an
    /// audience at its quota replaces its own least recently used set, never another's, so
    /// one partner cycling through collection sets cannot evict everyone. Default 2; at
    /// least 1.
    pub match_cache_sets_per_audience: usize,
    /// `POST /api/match`: indicator sets compiled at once ([`CompileGate`]); a compile
    /// decides every indicator at the egress door for a partner (about 3 s of one core per
    /// 100,000). Default 1; at least 1.
    pub match_compile_concurrency: usize,
    /// `POST /api/match`: requests that may wait for a compile slot; more answer 503 with
    /// `Retry-After`. Default 8.
    pub match_compile_queue: usize,
    /// TAXII pages (objects, manifest, object, versions) built at once. Default: the
    /// number of CPU cores, at most 4 ([`default_page_concurrency`]); at least 1. One page
    /// of at most [`SMALL_PAGE`] objects may be built besides, in a slot of its own
    /// ([`PageGate`]).
    pub page_concurrency: usize,
    /// TAXII pages that may wait for one of those; more answer 503 with `Retry-After`.
    /// Default 32.
    pub page_queue: usize,
    /// Bytes of objects on one page ([`concord_egress::PageQuery::max_bytes`]): a page ends
    /// before the object that would cross it (with `more` and `next`), and holds at least
    /// one object. Default 16 MiB.
    pub page_max_bytes: usize,
    /// Bytes of decided page entries the egress door keeps between requests
    /// ([`concord_egress::Egress::with_decision_cache`]): a page entry decided for a
    /// partner before, under the same policy version, sharing, partner, door, agreement
    /// period, collection version, marking definitions and references' fates, is not
    /// parsed or decided again. Past it, the decisions of the set that would cross it are
    /// dropped. 0 keeps none. Default 64 MiB.
    pub decision_cache_bytes: usize,
    /// The answer floor of a partner's look-up by id ([`AnswerFloor`]), in milliseconds per
    /// id named: `GET …/objects/{id}/`, `…/versions/`, `DELETE …/objects/{id}/`, and
    /// `objects/` or `manifest/` with `match[id]`. The answer leaves no earlier than this
    /// many milliseconds (times the ids named) after the request reached the route, so that
    /// "exists but withheld" and "does not exist" take the same time. 0 turns it off.
    /// Default 5.
    pub answer_floor_ms: u64,
    /// A random delay of up to this many milliseconds added to the floor of
    /// [`Limits::answer_floor_ms`] (uniform). Default 5: on a node whose CPUs are saturated
    /// the extra CPU time of deciding a withheld object still shifts the answer by some
    /// 0.1 ms after any floor (it is paid back in scheduling delay), and a jitter of 5 ms
    /// buries that shift (BENCHMARKS.md §14).
    pub answer_jitter_ms: u64,
    /// Live streams (`…/stream/`, issue 21) open at once; more answer 503 with
    /// `Retry-After`. One place is kept for the operator
    /// ([`Limits::stream_max_per_partner`]). Default 64; at least 1.
    pub stream_max: usize,
    /// Live streams one partner may hold open at once; one more answers 429 with
    /// `Retry-After`, naming this limit. Partners together hold at most `stream_max - 1`:
    /// the last place is the operator's. Default 4; at least 1.
    pub stream_max_per_partner: usize,
    /// Batches queued per stream for a client that reads slower than they come; a buffer
    /// full for [`Limits::stream_stall_ms`] drops the client (`event: dropped`, reason
    /// `slow-client`). Default 16 (each batch at most [`Limits::stream_batch`] objects and
    /// [`Limits::page_max_bytes`] bytes).
    pub stream_buffer: usize,
    /// Milliseconds a stream waits for room in a full buffer before it drops the client.
    /// Default 10,000.
    pub stream_stall_ms: u64,
    /// Objects per stream batch at most (one event, one audit entry). Default 1,000.
    pub stream_batch: usize,
    /// Seconds between heartbeats (SSE comment lines) while nothing else is sent.
    /// Default 15.
    pub stream_heartbeat_secs: u64,
    /// Milliseconds between two looks at a collection's version counter, for writes made
    /// by other processes (CLI import, sync, another `serve` on the same PostgreSQL);
    /// writes of the TAXII POST of this process wake streams at once. Default 500.
    pub stream_poll_ms: u64,
    /// Seconds a client has to send a whole request body, from the end of its header
    /// ([`crate::BodyLimits::timeout`]); then the request is answered 408 and the
    /// connection closed. Every route. Default 30; at least 1.
    pub body_timeout_secs: u64,
    /// Bytes of a `POST /ui/login` body (a login form is one API key, < 4 KiB); more answer
    /// 413 before any of it is buffered. Default 4,096.
    pub login_body_bytes: usize,
    /// Bytes of a `POST /api/match` body; more answer 413 before any of it is buffered (a
    /// declared `Content-Length`) or as soon as the body crosses it (chunked), so at most
    /// this many bytes are read and parsed. Default 4 MiB: [`Limits::match_bytes`] of lines
    /// with room for JSON quoting and escapes. The smaller of this and
    /// `max_content_length` applies.
    pub match_body_bytes: usize,
    /// Bytes of a `POST /concord/join/` body (a join request, issue 19: a few KiB, sent
    /// before anyone is authenticated); more answer 413 before any of it is buffered.
    /// Default 65,536.
    pub join_body_bytes: usize,
    /// The web UI's home dashboard (`/ui/`): most sightings of its window that the charts
    /// count, the first received; past it the page says so. Only sightings the viewer may
    /// see count towards it (a partner's copies from the egress door), so the note tells a
    /// partner nothing of sightings withheld from it. Bounds the sightings read for one
    /// page. Default 10,000.
    pub dashboard_max_sightings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            match_collections: 16,
            match_lines: 50_000,
            match_bytes: 1 << 20,
            match_cache_sets: 8,
            match_cache_sets_per_audience: 2,
            match_compile_concurrency: 1,
            match_compile_queue: 8,
            page_concurrency: default_page_concurrency(),
            page_queue: 32,
            page_max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
            decision_cache_bytes: concord_egress::DEFAULT_DECISION_CACHE_BYTES,
            answer_floor_ms: 5,
            answer_jitter_ms: 5,
            stream_max: 64,
            stream_max_per_partner: 4,
            stream_buffer: 16,
            stream_stall_ms: 10_000,
            stream_batch: 1_000,
            stream_heartbeat_secs: 15,
            stream_poll_ms: 500,
            body_timeout_secs: 30,
            login_body_bytes: 4096,
            match_body_bytes: 4 << 20,
            join_body_bytes: 64 << 10,
            dashboard_max_sightings: 10_000,
        }
    }
}

/// The default of [`Limits::page_concurrency`]: the CPU cores this process may use, at
/// most 4 (1 when unknown). Building a partner's page is CPU-bound (the egress door decides
/// every object), so more builders than cores only make each one, and the small page
/// beside them, wait for a core: on 2 cores, 4 builders gave a small page a p99 of 277–600 ms
/// during a flood of 10,000-object pages, 2 builders 176 ms (BENCHMARKS.md §10).
pub fn default_page_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Limits {
    /// The answer floor of a partner's look-ups by id ([`Limits::answer_floor_ms`],
    /// [`Limits::answer_jitter_ms`]).
    pub fn answer_floor(&self) -> AnswerFloor {
        AnswerFloor {
            per_id: Duration::from_millis(self.answer_floor_ms),
            jitter: Duration::from_millis(self.answer_jitter_ms),
        }
    }
}

/// The time floor of a partner's answers to look-ups by id (issue 15, timing oracle F2).
///
/// A partner asks about an id: the door finds an object version that exists but is
/// withheld from it (TLP:RED, not shared with it, the stored id of an SCO it receives
/// under a keyed id), or finds nothing. The two answers are the same bytes, but not the
/// same work: a version that exists is read, parsed, decided for the partner (markings,
/// personal data, references) and audited; a missing one costs one index look-up. On
/// loopback that was 0.35–0.39 ms against 0.15–0.18 ms, which a partner tells apart over
/// a few hundred requests, and which undoes everything else: a stored SCO id is the UUIDv5
/// of its value, so a guessed e-mail address is confirmed by the time it takes.
///
/// Why a floor, and not equal work: the work of the withheld path is the decision of that
/// object for that partner, which depends on its size, markings and references, on what the
/// decision caches hold, and on what else the node is doing; a miss cannot be made to cost
/// "the same" without deciding an object of the same cost, which the node does not know
/// for an id it does not hold. Skipping the look-up of ids the partner cannot legitimately
/// know (the stored id of a renamed SCO) does not help either: whether a stored SCO is
/// renamed for a partner is itself the outcome of its decision. A floor makes the time of
/// the answer independent of the work below it: the answer waits until a deadline fixed
/// at the start of the request. The deadline is a whole number of floors after the start
/// (one floor per id named, more floors when the work took longer), plus a uniform jitter:
/// work that outgrows the floor moves the answer by whole floors only. What a floor cannot
/// hide is CPU time itself: on a node whose CPUs are saturated (measured at a load average
/// of 6–11 on 2 cores), the extra tenth of a millisecond of deciding a withheld object is
/// paid back as scheduling delay after the floor, and shifts the answer by about that much;
/// the jitter (5 ms by default) buries that shift (BENCHMARKS.md §14 gives the figures).
///
/// It is applied in one place, the [`answer_floor`] layer on the TAXII routes that take an
/// id, for partners only (the operator may read everything, so it has nothing to learn),
/// around the page gate: the wait holds no page slot and no thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerFloor {
    /// The floor per id named; zero: no floor.
    pub per_id: Duration,
    /// The largest random delay added.
    pub jitter: Duration,
}

impl AnswerFloor {
    /// When the answer to a request that reached the route at `started`, named `ids` ids
    /// and whose answer was ready at `ready`, may leave: `started` plus the smallest whole
    /// number of floors, at least `ids` of them, that is not before `ready`, plus a
    /// uniform jitter in `[0, jitter]`. `None` when there is nothing to wait for (no id
    /// named, or a zero floor).
    pub fn deadline(
        &self,
        started: tokio::time::Instant,
        ids: usize,
        ready: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        if ids == 0 || self.per_id.is_zero() {
            return None;
        }
        let floor = self.per_id.as_nanos();
        let took = ready.saturating_duration_since(started).as_nanos();
        let floors = (ids as u128).max(took.div_ceil(floor));
        let wait = Duration::from_nanos(u64::try_from(floors * floor).unwrap_or(u64::MAX));
        Some(started + wait + self.jitter_sample())
    }

    /// A uniform sample of `[0, jitter]` (from the OS random source; none when it fails).
    fn jitter_sample(&self) -> Duration {
        let span = self.jitter.as_nanos();
        if span == 0 {
            return Duration::ZERO;
        }
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            return Duration::ZERO;
        }
        let n = u128::from(u64::from_le_bytes(b)) % (span + 1);
        Duration::from_nanos(u64::try_from(n).unwrap_or(0))
    }
}

/// How many object ids a TAXII request names: the `{object_id}` of its route (`route`, the
/// matched route's template: object, versions, delete) and the ids of its `match[id]`
/// parameters (`pairs`, the query percent-decoded; comma-separated, each counted as
/// written).
pub fn ids_named(route: Option<&str>, pairs: &[(String, String)]) -> usize {
    let in_path = usize::from(route.is_some_and(|r| r.contains("{object_id}")));
    let in_query: usize = pairs
        .iter()
        .filter(|(name, _)| name == "match[id]")
        .map(|(_, v)| v.split(',').filter(|s| !s.trim().is_empty()).count())
        .sum();
    in_path + in_query
}

/// Seconds a client told "busy" (503) waits before it tries again (`Retry-After`).
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// A page of at most this many objects is small: it may also be built in the one slot
/// [`PageGate`] keeps for small pages, so that a client paging 10 objects at a time does
/// not wait for 10,000-object pages to finish (its memory and work are a thousandth of
/// theirs).
pub const SMALL_PAGE: usize = 100;

/// At most `concurrency` pages built at once, plus one small page ([`SMALL_PAGE`]) in a
/// slot of its own; at most `queue` more waiting; beyond, the caller is answered 503 at
/// once. The waiting page that asked for the fewest objects goes first (then the oldest),
/// so a small page is not held behind a queue of large ones; a large page waits at most
/// while smaller ones keep arriving, which the queue bound limits.
///
/// One gate per node ([`crate::AppState`]), applied as one layer on every page route by
/// [`crate::router`]; a permit is held until the page's body has been handed to the
/// connection ([`PermitBody`]): a client that does not read its page keeps its slot (until
/// [`crate::ConnLimits::write`] drops it), so the bytes of built but unsent pages are
/// bounded by the slots, not by the number of clients.
#[derive(Debug)]
pub struct PageGate {
    concurrency: usize,
    queue: usize,
    state: Mutex<GateState>,
}

/// Which slot a page is built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// One of the `concurrency` slots.
    Any,
    /// The slot kept for a small page.
    Small,
}

#[derive(Debug, Default)]
struct GateState {
    /// Pages built in the `concurrency` slots.
    building: usize,
    /// Whether the small page slot is taken.
    small_building: bool,
    waiting: BinaryHeap<Waiter>,
    seq: u64,
}

#[derive(Debug)]
struct Waiter {
    cost: usize,
    seq: u64,
    wake: tokio::sync::oneshot::Sender<Lane>,
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

/// The gate is full: every slot building and `queue` pages waiting.
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
    lane: Lane,
}

impl Drop for PagePermit {
    fn drop(&mut self) {
        self.gate.release(self.lane);
    }
}

/// A waiting page. Given up (the client went away): it leaves the queue, or, when it had
/// been woken already, the slot it was handed goes on to the next.
struct Waiting {
    gate: Arc<PageGate>,
    seq: u64,
    rx: Option<tokio::sync::oneshot::Receiver<Lane>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            match rx.try_recv() {
                Ok(lane) => self.gate.release(lane),
                Err(_) => {
                    let seq = self.seq;
                    self.gate.lock().waiting.retain(|w| w.seq != seq);
                }
            }
        }
    }
}

impl PageGate {
    /// A gate of `concurrency` (at least 1) pages at once, one more small page, and `queue`
    /// waiting.
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
        let permit = |lane| PagePermit {
            gate: self.clone(),
            lane,
        };
        let (rx, seq) = {
            let mut s = self.lock();
            if s.building < self.concurrency {
                s.building += 1;
                return Ok(permit(Lane::Any));
            }
            if cost <= SMALL_PAGE && !s.small_building {
                s.small_building = true;
                return Ok(permit(Lane::Small));
            }
            if s.waiting.len() >= self.queue {
                return Err(Busy {
                    building: s.building + usize::from(s.small_building),
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
        // to a live receiver: an error cannot happen here.
        let lane = rx.await.unwrap_or(Lane::Any);
        waiting.rx = None;
        Ok(permit(lane))
    }

    /// Hands the slot of a finished page to the cheapest waiting page it may take (any
    /// page for a `concurrency` slot, a small one for the small slot), or frees it.
    fn release(&self, lane: Lane) {
        let mut s = self.lock();
        while let Some(top) = s.waiting.peek() {
            if lane == Lane::Small && top.cost > SMALL_PAGE {
                break;
            }
            let w = s.waiting.pop().expect("peeked");
            if w.wake.send(lane).is_ok() {
                return;
            }
        }
        match lane {
            Lane::Any => s.building = s.building.saturating_sub(1),
            Lane::Small => s.small_building = false,
        }
    }

    /// Pages being built (the small slot included) and pages waiting, now.
    pub fn load(&self) -> (usize, usize) {
        let s = self.lock();
        (s.building + usize::from(s.small_building), s.waiting.len())
    }
}

/// How much of a page body [`PermitBody`] hands to the connection at a time, in bytes:
/// hyper asks for the next piece only once its write buffer (about 400 KiB) has room, so
/// the permit is released when at most that buffer and the socket's hold the page's tail.
pub const BODY_PIECE: usize = 64 * 1024;

/// A response body that holds a [`PagePermit`] until the last of its bytes has been handed
/// to the connection (or the body is dropped: the client went away, or
/// [`crate::ConnLimits::write`] dropped it). The body is handed over in pieces of
/// [`BODY_PIECE`] bytes, so that hyper takes it as the client reads rather than all at
/// once.
pub struct PermitBody {
    inner: axum::body::Body,
    /// The rest of a frame larger than [`BODY_PIECE`], handed over piece by piece.
    rest: Bytes,
    permit: Option<PagePermit>,
}

impl PermitBody {
    /// `inner`, holding `permit` until it has been handed over.
    pub fn new(inner: axum::body::Body, permit: PagePermit) -> PermitBody {
        PermitBody {
            inner,
            rest: Bytes::new(),
            permit: Some(permit),
        }
    }

    /// The next piece of `rest`; the permit is released with the last piece of the body.
    fn piece(&mut self) -> Bytes {
        let n = self.rest.len().min(BODY_PIECE);
        let piece = self.rest.split_to(n);
        if self.rest.is_empty() && http_body::Body::is_end_stream(&self.inner) {
            self.permit = None;
        }
        piece
    }
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if !this.rest.is_empty() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(this.piece()))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    this.rest = data;
                    Poll::Ready(Some(Ok(http_body::Frame::data(this.piece()))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(other) => {
                this.permit = None;
                Poll::Ready(other)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// At most `concurrency` indicator sets of `/api/match` compiled at once, at most `queue`
/// requests waiting for a slot (blocking their worker thread: compiling runs on the blocking
/// pool; no order among them is promised), more refused at once with [`CompileBusy`]. One per node
/// ([`crate::matching::SetCache`]); a request whose set is cached never enters it.
#[derive(Debug)]
pub struct CompileGate {
    concurrency: usize,
    queue: usize,
    state: Mutex<CompileState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct CompileState {
    running: usize,
    waiting: usize,
}

/// The compile gate is full: every slot compiling and `queue` requests waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "busy: {running} indicator sets are being compiled and {waiting} wait \
     (match_compile_concurrency, match_compile_queue); retry after {BUSY_RETRY_AFTER_SECS} s"
)]
pub struct CompileBusy {
    /// Sets being compiled.
    pub running: usize,
    /// Requests waiting.
    pub waiting: usize,
}

/// The right to compile one set; the next waiting request goes when it is dropped.
#[derive(Debug)]
pub struct CompilePermit {
    gate: Arc<CompileGate>,
}

impl Drop for CompilePermit {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.running -= 1;
        drop(s);
        self.gate.freed.notify_one();
    }
}

impl CompileGate {
    /// A gate of `concurrency` (at least 1) compiles at once and `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Arc<CompileGate> {
        Arc::new(CompileGate {
            concurrency: concurrency.max(1),
            queue,
            state: Mutex::default(),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CompileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (blocking the thread) for the right to compile. Errors: [`CompileBusy`] at
    /// once when `queue` requests already wait.
    pub fn enter(self: &Arc<Self>) -> Result<CompilePermit, CompileBusy> {
        let mut s = self.lock();
        if s.running >= self.concurrency {
            if s.waiting >= self.queue {
                return Err(CompileBusy {
                    running: s.running,
                    waiting: s.waiting,
                });
            }
            s.waiting += 1;
            while s.running >= self.concurrency {
                s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.waiting -= 1;
        }
        s.running += 1;
        Ok(CompilePermit { gate: self.clone() })
    }

    /// Sets being compiled and requests waiting, now.
    pub fn load(&self) -> (usize, usize) {
        let s = self.lock();
        (s.running, s.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn ids_are_counted_in_the_route_and_in_match_id() {
        let object = Some("/concord/collections/{collection}/objects/{object_id}/");
        let objects = Some("/concord/collections/{collection}/objects/");
        assert_eq!(ids_named(object, &[]), 1);
        assert_eq!(ids_named(objects, &[]), 0);
        assert_eq!(
            ids_named(
                objects,
                &pairs(&[("match[type]", "indicator"), ("limit", "5")])
            ),
            0
        );
        assert_eq!(
            ids_named(
                objects,
                &pairs(&[("match[id]", "a--1,b--2"), ("match[id]", "c--3")])
            ),
            3
        );
        assert_eq!(ids_named(object, &pairs(&[("match[id]", "a--1,,")])), 2);
    }

    #[test]
    fn the_deadline_is_whole_floors_per_id_plus_a_bounded_jitter() {
        let ms = Duration::from_millis;
        let floor = AnswerFloor {
            per_id: ms(5),
            jitter: Duration::ZERO,
        };
        let t = Instant::now();
        assert_eq!(floor.deadline(t, 0, t + ms(1)), None);
        let off = AnswerFloor {
            per_id: Duration::ZERO,
            jitter: ms(3),
        };
        assert_eq!(off.deadline(t, 3, t + ms(1)), None);
        assert_eq!(floor.deadline(t, 1, t + ms(1)), Some(t + ms(5)));
        assert_eq!(floor.deadline(t, 2, t + ms(1)), Some(t + ms(10)));
        // Work past the floor moves the answer by whole floors.
        assert_eq!(floor.deadline(t, 1, t + ms(12)), Some(t + ms(15)));
        assert_eq!(floor.deadline(t, 1, t + ms(10)), Some(t + ms(10)));
        let jittered = AnswerFloor {
            per_id: ms(5),
            jitter: ms(2),
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = jittered.deadline(t, 1, t + ms(1)).unwrap();
            assert!(d >= t + ms(5) && d <= t + ms(7), "{:?}", d - t);
            seen.insert(d);
        }
        assert!(seen.len() > 1, "the jitter varies");
        let limits = Limits {
            answer_floor_ms: 5,
            answer_jitter_ms: 2,
            ..Limits::default()
        };
        assert_eq!(limits.answer_floor(), jittered);
    }
}
