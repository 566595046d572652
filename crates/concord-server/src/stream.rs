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
//! `shutdown`: the node is stopping; `error`: the store failed).
//!
//! Waking: a write through this node's TAXII POST wakes every stream at once
//! ([`Writes::notify`]); writes by other processes (the CLI's `import`, `sync`, another
//! `concord serve` on the same PostgreSQL) are noticed by polling the collection's version
//! counter ([`concord_store::Store::collection_version`], one primary-key read) every
//! [`Limits::stream_poll_ms`]. A batch is built only when that counter moved.
//!
//! Limits (all in [`Limits`], the `[limits]` section): at most
//! [`Limits::stream_max`] streams at once (more: 503 with `Retry-After`, from the route's
//! [`StreamGate`] layer), at most [`Limits::stream_batch`] objects and
//! [`Limits::page_max_bytes`] bytes per batch, at most [`Limits::stream_buffer`] batches
//! queued per connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query as RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use concord_egress::{Audience, Egress, PageQuery, Transfer};
use concord_taxii::query::Endpoint;
use concord_taxii::{ErrorCode, Query, TaxiiError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

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

/// At most [`Limits::stream_max`] streams open at once: the layer of the stream route.
#[derive(Debug)]
pub struct StreamGate {
    open: Arc<Semaphore>,
    max: usize,
}

impl StreamGate {
    /// A gate of `max` streams.
    pub fn new(max: usize) -> StreamGate {
        StreamGate {
            open: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max - self.open.available_permits()
    }
}

/// The right to one open stream, held by the stream's task until it ends.
#[derive(Clone, Debug)]
pub struct StreamPermit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The stream route's layer: takes a [`StreamPermit`] for the request, or answers 503 with
/// `Retry-After` (a TAXII error resource naming `stream_max`) when [`Limits::stream_max`]
/// streams are open.
pub(crate) async fn stream_gate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let gate = state.streams.clone();
    match gate.open.clone().try_acquire_owned() {
        Ok(permit) => {
            req.extensions_mut().insert(StreamPermit(Arc::new(permit)));
            next.run(req).await
        }
        Err(_) => {
            let mut resp = error_response(TaxiiError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "busy: {} streams are open (stream_max); retry after {BUSY_RETRY_AFTER_SECS} s",
                    gate.max
                ),
            ));
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
    let egress = state.egress.clone();
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
    let keep_alive = KeepAlive::new()
        .interval(Duration::from_secs(limits.stream_heartbeat_secs.max(1)))
        .text("heartbeat");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// The task behind one stream: waits for writes, builds batches through the door, queues
/// them while the client keeps up.
struct Follower {
    state: AppState,
    egress: Egress,
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
        let mut pending = Some(first);
        loop {
            // Send what is built, then build more while the last batch said `more`.
            while let Some(batch) = pending.take() {
                self.query.next = batch.next.clone();
                let more = batch.more;
                if !batch.entries.is_empty() && !self.queue(batch).await {
                    return;
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
                let poll = Duration::from_millis(self.limits.stream_poll_ms.max(1));
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(poll) => {}
                    () = self.tx.closed() => return,
                }
            }
            match self.build_after_reserve().await {
                Some(b) => pending = Some(b),
                None => return,
            }
        }
    }

    /// Waits (at most [`Limits::stream_stall_ms`]) for room in the buffer, then builds the
    /// next batch; `None` when the stream ends (the client left, was dropped as slow, or the
    /// store failed). The room is taken before the batch is built, so a batch is never
    /// audited that cannot be queued.
    async fn build_after_reserve(&mut self) -> Option<Transfer> {
        if !self.wait_for_room().await {
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
