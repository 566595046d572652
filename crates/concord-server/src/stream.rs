//! The live stream of a collection (issue 21, item 1): `GET
//! /{api-root}/collections/{id}/stream/`, Server-Sent Events (WHATWG HTML §9.2).
//!
//! A stream is a TAXII objects read that does not end: it sends, batch after batch, exactly
//! the pages `GET …/objects/` returns to the same principal, built by the same door
//! ([`concord_egress::Egress::follow`], under the door name `stream`): decided,
//! rewritten, one audit transfer entry per batch appended before the batch is queued.
//! Nothing is queued that the policy has not decided, so a withheld object never appears,
//! not even as a creation followed by a deletion.
//!
//! Wire format, one event per batch:
//!
//! ```text
//! event: objects
//! id: <the TAXII `next` token that resumes after this batch>
//! data: {"more":false,"objects":[…]}      (the TAXII envelope of the batch)
//! ```
//!
//! The `id` is a TAXII `next` token: a client that reconnects with `Last-Event-ID` (or asks
//! `GET …/objects/?next=` with it) continues right after the last batch it received, with
//! no gap and no repeat, in `date_added` order (the commit order: write batches take a
//! strictly growing `date_added` under the store's write lock). Line breaks inside the
//! producer's bytes (insignificant JSON whitespace) are carried as SSE data lines, which a
//! client joins with `\n`.
//!
//! Other events: comment lines (`: heartbeat`) every [`Limits::stream_heartbeat_secs`] when
//! nothing else was sent; `event: dropped` with `data: {"reason":…,"detail":…}` just before
//! the server closes the stream (`slow-client`: its buffer of
//! [`Limits::stream_buffer`] batches stayed full for [`Limits::stream_stall_ms`];
//! `revoked`: the partner was removed, its key rotated, or its read permission on the
//! collection withdrawn; `shutdown`: the node is stopping; `error`: the store failed).
//!
//! Who follows is checked again against the store before every batch and before every
//! heartbeat ([`crate::auth::Authenticator::current`], the partners as authentication reads
//! them, but not from its cache): a change by the CLI or by another `serve` process ends
//! the stream before anything more is sent, and a partner whose profile changed receives
//! the next batches under its new profile.
//!
//! Waking: a write through this node's TAXII POST wakes every stream at once
//! ([`Writes::notify`]); writes by other processes (the CLI's `import`, `sync`, another
//! `concord serve` on the same PostgreSQL) are noticed by polling the collection's version
//! counter ([`concord_store::Store::collection_version`], one primary-key read) every
//! [`Limits::stream_poll_ms`]. A batch is built only when that counter moved.
//!
//! Limits (all in [`Limits`], the `[limits]` section): at most
//! [`Limits::stream_max`] streams at once, one of them kept for the operator (more: 503
//! with `Retry-After`, from the route's [`StreamGate`] layer), at most
//! [`Limits::stream_max_per_partner`] for one partner (more: 429 with `Retry-After`), at most [`Limits::stream_batch`] objects and
//! [`Limits::page_max_bytes`] bytes per batch, at most [`Limits::stream_buffer`] batches
//! queued per connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query as RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use concord_egress::{Audience, Egress, PageQuery, Transfer};
use concord_taxii::query::Endpoint;
use concord_taxii::{ErrorCode, Query, TaxiiError};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::limits::BUSY_RETRY_AFTER_SECS;
use crate::{
    Access, AppState, Error, Handler, Limits, Principal, audience_of, blocking, envelope,
    error_response, filter_of, find_collection,
};

/// The door name of the stream in the audit log.
pub const STREAM_DOOR: &str = "stream";

/// Writes committed by this process: every stream waits on it ([`Writes::notify`]).
#[derive(Debug, Default)]
pub struct Writes {
    notify: Notify,
}

impl Writes {
    /// Wakes every stream of this process: called after a write batch is committed.
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }
}

/// The streams open at once, the layer of the stream route: at most [`Limits::stream_max`]
/// in all, of which partners together hold at most all but one (the last is the
/// operator's, so the operator can always follow a collection however many partners
/// stream), and one partner at most [`Limits::stream_max_per_partner`], so that one
/// partner cannot take every place.
#[derive(Debug)]
pub struct StreamGate {
    open: Mutex<Open>,
    max: usize,
    per_partner: usize,
}

/// The streams open now.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    partners: usize,
    by_partner: HashMap<String, usize>,
}

/// Why a stream was refused a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The partner holds [`Limits::stream_max_per_partner`] streams.
    Partner,
    /// The node holds [`Limits::stream_max`] streams (partners: all but the operator's).
    Node,
}

impl StreamGate {
    /// A gate of `max` streams in all, `per_partner` of them for any one partner (each at
    /// least 1).
    pub fn new(max: usize, per_partner: usize) -> StreamGate {
        StreamGate {
            open: Mutex::default(),
            max: max.max(1),
            per_partner: per_partner.max(1),
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        lock(&self.open).total
    }

    /// Streams `partner` holds now.
    pub fn open_by(&self, partner: &str) -> usize {
        lock(&self.open)
            .by_partner
            .get(partner)
            .copied()
            .unwrap_or(0)
    }

    /// A place for a stream of `partner` (`None`: the operator).
    fn enter(self: &Arc<Self>, partner: Option<&str>) -> Result<StreamPermit, Refused> {
        let mut open = lock(&self.open);
        if open.total >= self.max {
            return Err(Refused::Node);
        }
        if let Some(name) = partner {
            // One place stays the operator's (unless there is only one).
            if open.partners >= self.max.saturating_sub(1).max(1) {
                return Err(Refused::Node);
            }
            let held = open.by_partner.entry(name.to_owned()).or_default();
            if *held >= self.per_partner {
                return Err(Refused::Partner);
            }
            *held += 1;
            open.partners += 1;
        }
        open.total += 1;
        Ok(StreamPermit(Arc::new(Place {
            gate: self.clone(),
            partner: partner.map(str::to_owned),
        })))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One place in the [`StreamGate`], given back when dropped.
#[derive(Debug)]
struct Place {
    gate: Arc<StreamGate>,
    partner: Option<String>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = lock(&self.gate.open);
        open.total = open.total.saturating_sub(1);
        if let Some(name) = &self.partner {
            open.partners = open.partners.saturating_sub(1);
            if let Some(held) = open.by_partner.get_mut(name) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    open.by_partner.remove(name);
                }
            }
        }
    }
}

/// The right to one open stream, held by the stream's task until it ends.
#[derive(Clone, Debug)]
pub struct StreamPermit(#[allow(dead_code)] Arc<Place>);

/// The stream route's layer: takes a [`StreamPermit`] for the request's principal, or
/// answers with `Retry-After` (a TAXII error resource naming the limit): 429 when the
/// partner holds [`Limits::stream_max_per_partner`] streams, 503 when the node holds
/// [`Limits::stream_max`] (for partners: all but the one kept for the operator).
pub(crate) async fn stream_gate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let gate = state.streams.clone();
    let partner = match req.extensions().get::<Principal>() {
        Some(Principal::Partner(p)) => Some(p.profile.name.clone()),
        _ => None,
    };
    match gate.enter(partner.as_deref()) {
        Ok(permit) => {
            req.extensions_mut().insert(permit);
            next.run(req).await
        }
        Err(refused) => {
            let (code, text) = match refused {
                Refused::Partner => (
                    ErrorCode::TooManyRequests,
                    format!(
                        "stream: this partner has {} streams open (stream_max_per_partner); \
                         close one or retry after {BUSY_RETRY_AFTER_SECS} s",
                        gate.per_partner
                    ),
                ),
                Refused::Node => (
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "busy: {} streams are open (stream_max, one kept for the operator); \
                         retry after {BUSY_RETRY_AFTER_SECS} s",
                        gate.max
                    ),
                ),
            };
            let mut resp = error_response(TaxiiError::new(code, text));
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(BUSY_RETRY_AFTER_SECS),
            );
            resp
        }
    }
}

/// `GET …/collections/{id}/stream/`. 404 exactly as `GET …/objects/` for a collection the
/// principal may not read or that does not exist; 400 naming `Last-Event-ID` for a token
/// not issued for this collection and principal. The first batch is built before the
/// response starts, so those errors are HTTP statuses, not events.
pub(crate) async fn stream(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    axum::Extension(permit): axum::Extension<StreamPermit>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let q = Query::parse(&pairs, Endpoint::Objects)?;
    // Authentication may have used the cached partner list: the first batch, as every
    // later one, goes only to a principal the store still knows.
    let principal = {
        let (auth, p) = (state.auth.clone(), principal.clone());
        match blocking(move || Ok(auth.current(&p)?)).await? {
            Some(p) => p,
            None => return Ok(crate::ops::unauthenticated(true)),
        }
    };
    let c = find_collection(&state, &principal, name, Access::Read).await?;
    let limits = state.config.limits.clone();
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    Error(TaxiiError::new(
                        ErrorCode::BadRequest,
                        "Last-Event-ID: not a token issued by this server for this collection",
                    ))
                })?
                .to_owned(),
        ),
        None => None,
    };
    let from_header = last_event_id.is_some();
    let query = PageQuery {
        collection_id: c.id.clone(),
        filter: filter_of(&q),
        limit: q.limit.min(limits.stream_batch).max(1),
        next: last_event_id.or(q.next.clone()),
        want_body: true,
        max_bytes: limits.page_max_bytes,
    };
    let audience = audience_of(&principal);
    let egress = state.egress_for(&principal);
    // The collection's version before the first batch: a write after it is seen by the
    // next check, so none is missed between the first batch and the loop.
    let store = state.store.clone();
    let cid = c.id.clone();
    let version = blocking(move || Ok(store.collection_version(&cid)?)).await?;
    let first = {
        let (egress, audience, query) = (egress.clone(), audience.clone(), query.clone());
        blocking(move || Ok(egress.follow(&audience, STREAM_DOOR, &query)?))
            .await
            .map_err(|e| {
                if from_header && e.0.code == ErrorCode::BadRequest {
                    Error(TaxiiError::new(
                        ErrorCode::BadRequest,
                        "Last-Event-ID: not a token issued by this server for this collection",
                    ))
                } else {
                    e
                }
            })?
    };
    let (tx, rx) = mpsc::channel::<Event>(limits.stream_buffer.max(1));
    let (drop_tx, drop_rx) = oneshot::channel::<Event>();
    let follower = Follower {
        state: state.clone(),
        egress,
        principal,
        audience,
        query,
        version,
        tx,
        drop_tx: Some(drop_tx),
        limits: limits.clone(),
        _permit: permit,
    };
    tokio::spawn(follower.run(first));
    let events =
        futures_util::stream::unfold((rx, Some(drop_rx)), |(mut rx, mut drop_rx)| async move {
            let event = match drop_rx.as_mut() {
                Some(d) => tokio::select! {
                    biased;
                    dropped = d => {
                        drop_rx = None;
                        match dropped {
                            // Said why, then closed: whatever is still queued is not sent
                            // (the client resumes after the last batch it received).
                            Ok(event) => {
                                rx.close();
                                while rx.try_recv().is_ok() {}
                                Some(event)
                            }
                            // The task ended without a reason: what is queued still goes.
                            Err(_) => rx.recv().await,
                        }
                    }
                    out = rx.recv() => out,
                },
                None => rx.recv().await,
            };
            event.map(|e| (Ok::<_, std::convert::Infallible>(e), (rx, drop_rx)))
        });
    // Heartbeats come from the follower, after it has checked the principal again: a
    // stream that may no longer be followed ends instead of being kept alive.
    Ok(Sse::new(events).into_response())
}

/// The task behind one stream: waits for writes, builds batches through the door, queues
/// them while the client keeps up.
struct Follower {
    state: AppState,
    egress: Egress,
    /// Who follows, as last checked against the store ([`Follower::still_allowed`]).
    principal: Principal,
    audience: Audience,
    query: PageQuery,
    /// The collection's version when the last batch was built.
    version: i64,
    tx: mpsc::Sender<Event>,
    drop_tx: Option<oneshot::Sender<Event>>,
    limits: Limits,
    _permit: StreamPermit,
}

/// The SSE event of a batch: its envelope, under the token that resumes after it.
fn batch_event(out: &Transfer) -> Event {
    let event = Event::default().event("objects").data(envelope(out));
    match &out.next {
        Some(next) => event.id(next.clone()),
        None => event,
    }
}

/// The event sent just before the server closes a stream.
fn dropped_event(reason: &str, detail: &str) -> Event {
    Event::default()
        .event("dropped")
        .data(serde_json::json!({"reason": reason, "detail": detail}).to_string())
}

impl Follower {
    async fn run(mut self, first: Transfer) {
        let heartbeat = Duration::from_secs(self.limits.stream_heartbeat_secs.max(1));
        let mut last_sent = tokio::time::Instant::now();
        let mut pending = Some(first);
        loop {
            // Send what is built, then build more while the last batch said `more`.
            while let Some(batch) = pending.take() {
                self.query.next = batch.next.clone();
                let more = batch.more;
                if !batch.entries.is_empty() {
                    if !self.queue(batch).await {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                if more {
                    match self.build_after_reserve().await {
                        Some(b) => pending = Some(b),
                        None => return,
                    }
                }
            }
            // Wait for a write: of this process (notified) or of another (polled). The
            // notification is armed before the version is read, so a write committed in
            // between still wakes this stream.
            loop {
                if self.tx.is_closed() {
                    return;
                }
                if self
                    .state
                    .shutdown
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    self.drop_with("shutdown", "the node is stopping");
                    return;
                }
                let writes = self.state.writes.clone();
                let notified = writes.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let store = self.state.store.clone();
                let cid = self.query.collection_id.clone();
                match tokio::task::spawn_blocking(move || store.collection_version(&cid)).await {
                    Ok(Ok(v)) if v != self.version => {
                        self.version = v;
                        break;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "stream: store error");
                        self.drop_with("error", "the store failed");
                        return;
                    }
                    Err(_) => return,
                }
                // A heartbeat only to a principal that may still follow this collection.
                if last_sent.elapsed() >= heartbeat {
                    if !self.still_allowed().await {
                        return;
                    }
                    // A full buffer has batches to send anyway: no heartbeat needed.
                    let _ = self.tx.try_send(Event::default().comment("heartbeat"));
                    last_sent = tokio::time::Instant::now();
                }
                let poll = Duration::from_millis(self.limits.stream_poll_ms.max(1));
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(poll) => {}
                    () = tokio::time::sleep_until(last_sent + heartbeat) => {}
                    () = self.tx.closed() => return,
                }
            }
            match self.build_after_reserve().await {
                Some(b) => pending = Some(b),
                None => return,
            }
        }
    }

    /// Waits (at most [`Limits::stream_stall_ms`]) for room in the buffer, checks the
    /// principal again ([`Follower::still_allowed`]), then builds the next batch; `None`
    /// when the stream ends (the client left, was dropped as slow, may no longer read, or
    /// the store failed). The room is taken before the batch is built, so a batch is never
    /// audited that cannot be queued.
    async fn build_after_reserve(&mut self) -> Option<Transfer> {
        if !self.wait_for_room().await || !self.still_allowed().await {
            return None;
        }
        let (egress, audience, query) = (
            self.egress.clone(),
            self.audience.clone(),
            self.query.clone(),
        );
        match tokio::task::spawn_blocking(move || egress.follow(&audience, STREAM_DOOR, &query))
            .await
        {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "stream: the door failed");
                self.drop_with("error", &e.to_string());
                None
            }
            Err(_) => None,
        }
    }

    /// Whether the principal may still follow the collection, as the store says now
    /// ([`crate::auth::Authenticator::current`]: the partner is still there, with the key
    /// this stream was opened with, and may still read the collection); the audience takes
    /// the partner's current profile. Otherwise the stream ends with `event: dropped`,
    /// reason `revoked` (or `error` when the store failed).
    async fn still_allowed(&mut self) -> bool {
        let (auth, principal) = (self.state.auth.clone(), self.principal.clone());
        match tokio::task::spawn_blocking(move || auth.current(&principal)).await {
            Ok(Ok(Some(p))) if p.can_read(&self.query.collection_id) => {
                self.audience = audience_of(&p);
                self.principal = p;
                true
            }
            Ok(Ok(_)) => {
                tracing::info!(
                    partner = self.audience.name(),
                    "stream: access revoked, stream ended"
                );
                metrics::counter!("concord_stream_dropped_total", "reason" => "revoked")
                    .increment(1);
                self.drop_with(
                    "revoked",
                    "this key no longer reads this collection (partner removed, key rotated \
                     or read permission withdrawn); the stream ends",
                );
                false
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "stream: store error");
                self.drop_with("error", "the store failed");
                false
            }
            Err(_) => false,
        }
    }

    /// Waits until the buffer has room; `false` (and the client dropped with the reason
    /// `slow-client`) when it stayed full for [`Limits::stream_stall_ms`], or when the
    /// client has gone.
    async fn wait_for_room(&mut self) -> bool {
        let stall = Duration::from_millis(self.limits.stream_stall_ms);
        let room = match tokio::time::timeout(stall, self.tx.reserve()).await {
            Ok(Ok(_permit)) => Some(true),
            Ok(Err(_)) => Some(false),
            Err(_) => None,
        };
        match room {
            Some(ok) => ok,
            None => {
                let detail = format!(
                    "{} batches were waiting for the client for {} ms (stream_buffer, stream_stall_ms); reconnect with Last-Event-ID",
                    self.limits.stream_buffer, self.limits.stream_stall_ms
                );
                tracing::info!(
                    partner = self.audience.name(),
                    "stream: slow client dropped"
                );
                metrics::counter!("concord_stream_dropped_total", "reason" => "slow-client")
                    .increment(1);
                self.drop_with("slow-client", &detail);
                false
            }
        }
    }

    /// Queues one built batch (room was reserved before it was built, or it is the first);
    /// `false` when the stream ends.
    async fn queue(&mut self, batch: Transfer) -> bool {
        if !self.wait_for_room().await {
            return false;
        }
        metrics::counter!("concord_stream_batches_total").increment(1);
        self.tx.send(batch_event(&batch)).await.is_ok()
    }

    /// Ends the stream with an `event: dropped` naming `reason`.
    fn drop_with(&mut self, reason: &str, detail: &str) {
        if let Some(tx) = self.drop_tx.take() {
            let _ = tx.send(dropped_event(reason, detail));
        }
    }
}
