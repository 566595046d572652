//! # concord-server: TAXII 2.1 over HTTP
//!
//! The only crate that knows HTTP. It maps TAXII 2.1 (OASIS Standard, 2021) requests onto
//! [`concord_store::Store`] calls and [`concord_ingest::ingest`], and store results onto TAXII
//! resources. Every rule of the transport lives here, once:
//!
//! - authentication first (401 with `WWW-Authenticate`; 429 or 503 with `Retry-After` past
//!   the limits of [`auth::AuthLimits`]), then content negotiation (406), as middleware on
//!   every route (§1.6.7, §1.6.8);
//! - query parameters parsed into typed filters by [`concord_taxii::Query`] (400 on anything
//!   malformed, naming the parameter);
//! - POST bodies bounded by the API root's `max_content_length` before they are read (413),
//!   media type checked (415), stored durably before the 202 answer;
//! - errors always as the TAXII error message resource ([`concord_taxii::TaxiiError`]).
//!
//! Endpoints (TAXII 2.1 §4–§5): `/taxii2/` (discovery), `/{api-root}/`,
//! `/{api-root}/status/{id}/`, `/{api-root}/collections/`, `…/collections/{id}/`,
//! `…/manifest/`, `…/objects/` (GET, POST), `…/objects/{object-id}/` (GET, DELETE),
//! `…/objects/{object-id}/versions/`. A collection may be named by its id or its alias.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query as RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use concord_egress::{Audience, Egress, EgressError, PageQuery, Sent, Transfer};
use concord_ingest::{Container, IngestError, IngestOptions, ingest};
use concord_stix::{BundleError, Timestamp};
use concord_store::{Collection, ObjectFilter, Store, VersionSelector};
use concord_taxii::media::{self, TAXII_21};
use concord_taxii::query::Endpoint;
use concord_taxii::resources::{
    ApiRoot, CollectionResource, Collections, Discovery, Manifest, ManifestRecord, Status,
    StatusDetails, Versions,
};
use concord_taxii::{ErrorCode, Query, TaxiiError, VersionMatch};

pub mod audit;
pub mod auth;
pub mod conn;
pub mod feeds;
pub mod limits;
pub mod matching;
pub mod mtls;
pub mod ops;
pub mod policy;
pub mod roles;
pub mod stream;

pub use auth::Principal;

/// The path of the join endpoint (issue 19), where a joining node presents an invitation:
/// not TAXII, outside every API root's resources. Its body limit
/// ([`Limits::join_body_bytes`]) and its attempt quotas ([`auth::Authenticator::charge_join`],
/// [`auth::Authenticator::charge_join_invitation`])
/// are this crate's layers; the route itself is `concord_admin::join`'s.
pub const JOIN_PATH: &str = "/concord/join/";
pub use limits::Limits;

/// What the server says about itself; from the node's configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Discovery and API root title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Contact information for the discovery resource.
    pub contact: Option<String>,
    /// The API root's path segment, e.g. `concord` for `/concord/`.
    pub api_root: String,
    /// Largest POST body accepted, in bytes (TAXII `max_content_length`); every route that
    /// takes a body is held to it by [`limit_bodies`].
    pub max_content_length: u64,
    /// Largest object and largest decompressed upload (`max_object_size`, `max_unpacked`).
    pub ingress: concord_ingest::Limits,
    /// What one request may cost: `/api/match`'s fields and cache, page building
    /// ([`Limits`]; its defaults when the node's configuration says nothing).
    pub limits: Limits,
    /// The `[policy]` section of the node's configuration (built-in defaults when absent),
    /// compiled once at start by [`policy::node_policy`].
    pub policy: concord_policy::actions::PolicyConfig,
    /// What credentials may cost: hashing concurrency, failure quotas, negative cache
    /// ([`auth::AuthLimits`]; its defaults when the node's configuration says nothing).
    pub auth_limits: auth::AuthLimits,
}

/// What connections served by [`serve`] or [`serve_tls`] may hold (issue 16): how many are
/// open at once, and how long one may take to send what it must or to take what it is sent;
/// one that takes longer is closed (a client that connects and sends nothing, or that asks
/// for pages and never reads them, holds no task, socket or page for long).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// From the TCP accept to the end of the TLS handshake. Default 10 s.
    pub handshake: std::time::Duration,
    /// From the start of a request (or of a keep-alive connection's wait for the next one)
    /// to the end of its header, as hyper's `header_read_timeout`. Default 10 s.
    pub header_read: std::time::Duration,
    /// How long a write of the response may wait without the client taking a byte
    /// ([`conn::WriteTimeout`]); then the connection is dropped, and with it the response
    /// and the page slot it held. Default 30 s.
    pub write: std::time::Duration,
    /// The slowest a client may take its response, in bytes per second of time spent
    /// waiting for it, judged over each [`ConnLimits::send_rate_window`]
    /// ([`conn::WriteTimeout`]); a slower one is reset (what its socket still held for it
    /// is discarded, [`conn::DiscardOnClose`]), and with it go the response and the
    /// page slot it held (a client reading a large page a few bytes a second, which
    /// [`ConnLimits::write`] never cuts). Idle keep-alive connections and live streams
    /// between events are not waiting and are never judged. 0 turns it off. Default 4096.
    pub min_send_rate: u64,
    /// The waiting time over which [`ConnLimits::min_send_rate`] is judged; the first
    /// window is every client's grace. Default 10 s.
    pub send_rate_window: std::time::Duration,
    /// Connections open at once (at least 1). Beyond it, new connections are not accepted
    /// but left in the kernel's listen queue (bounded by the listen backlog; past it the
    /// kernel refuses them) and accepted, in order, as open ones close: a waiting
    /// connection costs the process nothing, and a burst of clients is served late rather
    /// than refused. Default 1024.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake: std::time::Duration::from_secs(10),
            header_read: std::time::Duration::from_secs(10),
            write: std::time::Duration::from_secs(30),
            min_send_rate: 4096,
            send_rate_window: std::time::Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Set by [`serve_tls`] in every request's extensions: the connection is TLS (the web UI
/// marks its session cookie `Secure` then).
#[derive(Clone, Copy, Debug)]
pub struct TlsConnection;

/// The address of the peer of a request: from axum's `ConnectInfo`, set by [`serve`] and
/// [`serve_tls`]; `None` under another server (a test's `axum::serve`).
pub fn peer_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// A refused authentication as the TAXII error resource: 429 (throttled) or 503 (busy)
/// with `Retry-After`, 500 for a failure. Public for the web UI's login, which answers
/// with the same status and header.
pub fn auth_error_response(e: &auth::AuthError) -> Response {
    let code = match e {
        auth::AuthError::Throttled { .. } | auth::AuthError::PartnerRate { .. } => {
            ErrorCode::TooManyRequests
        }
        auth::AuthError::Busy { .. } => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::Internal,
    };
    if code == ErrorCode::Internal {
        tracing::error!(error = %e, "authentication failed");
    }
    let mut resp = error_response(TaxiiError::new(code, e.to_string()));
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Shared state of the server.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    config: Arc<ServerConfig>,
    auth: Arc<auth::Authenticator>,
    policy: Arc<concord_policy::actions::Policy>,
    egress: Egress,
    /// Compiled indicator sets of `/api/match` ([`Limits::match_cache_sets`]).
    match_sets: Arc<matching::SetCache>,
    /// Pages built at once ([`Limits::page_concurrency`], [`Limits::page_queue`]).
    page_gate: Arc<limits::PageGate>,
    /// Set when the node starts stopping: long work (an ingest) checks it and rolls back.
    shutdown: Arc<std::sync::atomic::AtomicBool>,
    /// Open live streams ([`Limits::stream_max`]).
    streams: Arc<stream::StreamGate>,
    /// Wakes the live streams after a write of this process.
    writes: Arc<stream::Writes>,
    /// Feed settings and the entity tags of the last feeds built.
    feeds: Arc<feeds::Feeds>,
    /// What named users' roles ask of their login (`[users]`; issue 20).
    users: Arc<auth::users::UserOptions>,
    /// The node's signing key: the agreement documents served to partners are signed with
    /// it (issue 19); `None`: `GET /{api-root}/agreement/` answers as a missing path.
    node_key: Option<Arc<concord_store::node_key::NodeKey>>,
    /// `[release] four_eyes` (issue 20): widening a cross-border release waits for a second
    /// releaser's approval.
    four_eyes: bool,
    /// `[release] unnamed_persons` (issue 20): `operator` and `admin-token` count as persons
    /// who may ask for and approve a widening.
    unnamed_persons: bool,
}

impl AppState {
    /// State over a store. Errors: the store has no admin token (run `concord init`), the
    /// policy is refused ([`policy::node_policy`]).
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Result<AppState, ServerError> {
        let admin_hash = store
            .setting(auth::ADMIN_TOKEN_SETTING)?
            .ok_or(ServerError::NotInitialised)?;
        let policy = policy::node_policy(store.as_ref(), &config.policy)?;
        tracing::info!(version = %policy.version, "egress policy");
        let policy = Arc::new(policy);
        let shutdown = Arc::<std::sync::atomic::AtomicBool>::default();
        Ok(AppState {
            egress: Egress::new(store.clone(), policy.clone())
                .with_decision_cache(config.limits.decision_cache_bytes)
                .with_cancel(shutdown.clone()),
            policy,
            auth: Arc::new(auth::Authenticator::with_limits(
                store.clone(),
                admin_hash,
                config.auth_limits.clone(),
            )),
            store,
            match_sets: Arc::new(matching::SetCache::with_limits(&config.limits)),
            page_gate: limits::PageGate::new(
                config.limits.page_concurrency,
                config.limits.page_queue,
            ),
            streams: Arc::new(stream::StreamGate::new(
                config.limits.stream_max,
                config.limits.stream_max_per_partner,
            )),
            writes: Arc::default(),
            feeds: Arc::default(),
            users: Arc::default(),
            node_key: None,
            four_eyes: false,
            unnamed_persons: false,
            config: Arc::new(config),
            shutdown,
        })
    }
}

impl AppState {
    /// The node's compiled egress policy, as the doors of this state apply it (sync uses
    /// the same one).
    pub fn policy(&self) -> Arc<concord_policy::actions::Policy> {
        self.policy.clone()
    }

    /// The node's one egress door: every door that serves a partner goes through it.
    pub fn egress(&self) -> Egress {
        self.egress.clone()
    }

    /// The egress door for a request of `principal`: its audit entries name who acted
    /// ([`audit::person_of`]: the admin token, or the partner's key).
    pub fn egress_for(&self, principal: &Principal) -> Egress {
        self.egress.clone().acting_as(audit::person_of(principal))
    }

    /// The node's store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The flag set when the node starts stopping ([`AppState::stop`]); long work checks it
    /// between steps and gives up (issue 16, item 6).
    pub fn shutdown_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.shutdown.clone()
    }

    /// Tells long work to stop: called when the shutdown signal arrives, so that the grace
    /// period is not spent waiting for an import that will not finish in time.
    pub fn stop(&self) {
        self.shutdown
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the server says about itself.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The one authenticator of admin tokens and partner API keys (the web UI's login uses
    /// it too).
    pub fn authenticator(&self) -> Arc<auth::Authenticator> {
        self.auth.clone()
    }

    /// The same state, signing the agreement documents it serves with `key` (issue 19).
    pub fn with_node_key(mut self, key: Arc<concord_store::node_key::NodeKey>) -> AppState {
        self.node_key = Some(key);
        self
    }

    /// The same state, leaving values on `lists` out of every feed (`…/feeds/{format}`).
    pub fn with_warninglists(mut self, lists: Arc<concord_misp::Warninglists>) -> AppState {
        self.feeds = Arc::new(feeds::Feeds::new(Some(lists)));
        self
    }

    /// The same state with `[users]` of the node's configuration (issue 20; default: no
    /// role needs a second factor).
    pub fn with_users(mut self, users: auth::users::UserOptions) -> AppState {
        self.users = Arc::new(users);
        self
    }

    /// The same state with `[release] four_eyes` of the node's configuration (issue 20;
    /// default off: a single operator's node works as before).
    pub fn with_four_eyes(mut self, four_eyes: bool) -> AppState {
        self.four_eyes = four_eyes;
        self
    }

    /// Whether widening a cross-border release waits for a second releaser's approval
    /// ([`AppState::with_four_eyes`]).
    pub fn four_eyes(&self) -> bool {
        self.four_eyes
    }

    /// The same state with `[release] unnamed_persons` of the node's configuration (issue
    /// 20; default off: only named users ask for and approve a widening).
    pub fn with_unnamed_persons(mut self, unnamed_persons: bool) -> AppState {
        self.unnamed_persons = unnamed_persons;
        self
    }

    /// Whether `operator` and `admin-token` count as persons for four-eyes release
    /// ([`AppState::with_unnamed_persons`]).
    pub fn unnamed_persons(&self) -> bool {
        self.unnamed_persons
    }

    /// What named users' roles ask of their login ([`AppState::with_users`]).
    pub fn users(&self) -> &auth::users::UserOptions {
        &self.users
    }

    /// Wakes this process's live streams: to call after a write batch committed outside
    /// the TAXII POST (which calls it itself); streams also notice other writes by polling.
    pub fn notify_write(&self) {
        self.writes.notify();
    }

    /// The gate of the live streams ([`Limits::stream_max`]).
    pub fn stream_gate(&self) -> Arc<stream::StreamGate> {
        self.streams.clone()
    }

    /// The gate every TAXII page goes through ([`Limits::page_concurrency`]).
    pub fn page_gate(&self) -> Arc<limits::PageGate> {
        self.page_gate.clone()
    }

    /// The compiled indicator sets of `/api/match` ([`Limits::match_cache_sets`]) and their
    /// compile gate ([`Limits::match_compile_concurrency`]).
    pub fn match_sets(&self) -> Arc<matching::SetCache> {
        self.match_sets.clone()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] concord_store::StoreError),
    /// No admin token in the store.
    #[error("the data directory is not initialised (no admin token): run `concord init` first")]
    NotInitialised,
    /// The egress policy cannot be built.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// Listening or serving failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The router with every TAXII route, authentication and negotiation.
pub fn router(state: AppState) -> Router {
    let root = format!("/{}", state.config.api_root);
    // Every route that builds a page of objects goes through the one page gate (issue 16,
    // item 3): GET objects, manifest, object and versions.
    let paged = |m: axum::routing::MethodRouter<AppState>| {
        m.layer(middleware::from_fn_with_state(state.clone(), page_gate))
    };
    // Every route that answers a partner's question about an id goes through the one answer
    // floor (issue 15, timing oracle F2), around the page gate: object, versions, DELETE,
    // and objects and manifest with `match[id]` (the layer counts the ids).
    let floored = |m: axum::routing::MethodRouter<AppState>| {
        m.layer(middleware::from_fn_with_state(state.clone(), answer_floor))
    };
    let routes: [(String, axum::routing::MethodRouter<AppState>); 13] = [
        ("/taxii2/".into(), get(discovery)),
        (format!("{root}/"), get(api_root)),
        (format!("{root}/status/{{status_id}}/"), get(status)),
        (format!("{root}/collections/"), get(collections)),
        (
            format!("{root}/collections/{{collection}}/"),
            get(collection),
        ),
        (
            format!("{root}/collections/{{collection}}/manifest/"),
            floored(paged(get(manifest))),
        ),
        (
            format!("{root}/collections/{{collection}}/objects/"),
            floored(paged(get(objects)).post(add_objects)),
        ),
        (
            format!("{root}/collections/{{collection}}/objects/{{object_id}}/"),
            floored(paged(get(object)).delete(delete_object)),
        ),
        (
            format!("{root}/collections/{{collection}}/objects/{{object_id}}/versions/"),
            floored(paged(get(versions))),
        ),
        // Not TAXII: the partner's own agreement, signed (issue 19).
        (format!("{root}/agreement/"), get(agreement)),
        // Not TAXII: the deletions a peer pulls (issue 21), read like a page.
        (
            format!("{root}/collections/{{collection}}/tombstones/"),
            paged(get(tombstones)),
        ),
        // Not TAXII: feeds for sensors (issue 21), built like pages.
        (
            format!("{root}/collections/{{collection}}/feeds/{{format}}/"),
            paged(get(feeds::feed)),
        ),
        // Not TAXII: the live stream (issue 21), held to `stream_max` by its own layer.
        (
            format!("{root}/collections/{{collection}}/stream/"),
            get(stream::stream).layer(middleware::from_fn_with_state(
                state.clone(),
                stream::stream_gate,
            )),
        ),
    ];
    // Not TAXII: matching for SIEMs (issue 4), plain JSON in and out.
    let mut router = Router::new().route("/api/match", axum::routing::post(api_match));
    for (path, route) in routes {
        // TAXII URLs end in '/'; accept them without it too.
        router = router
            .route(path.trim_end_matches('/'), route.clone())
            .route(&path, route);
    }
    router
        .fallback(|| async { no_such_resource(Some(TAXII_21)) })
        .method_not_allowed_fallback(|| async {
            error_response(TaxiiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this resource",
            ))
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state.clone())
        .merge(ops::routes(state))
        // Outermost, over the operations routes too: a partner's `/metrics` must answer
        // header for header as a path that does not exist (the fallback above), so both
        // pass the same compression.
        .layer(compression())
}

/// Compressed answers for the TAXII routes, `/api/match` and the operations routes (issue 22,
/// item 4): a client
/// that sends `Accept-Encoding: gzip` or `zstd` (RFC 9110 §12.5.3) gets the body compressed
/// with `Content-Encoding` and `Vary: accept-encoding`; its `Content-Type` (the TAXII media
/// type) and the `X-TAXII-*` headers are unchanged. Pages are built and byte-capped
/// (`page_max_bytes`) before they are compressed, so the caps count the objects' own bytes.
/// Only these routes: the web UI's pages mix secrets (session-bound forms) with reflected
/// input, the shape of a compression side channel (BREACH), and are small anyway.
///
/// Public for the admin API (`concord-admin`), whose answers to anyone but the admin must be
/// those of a path that does not exist here, header for header.
pub fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .zstd(true)
        .quality(tower_http::CompressionLevel::Default)
}

/// The page gate of [`router`]: waits for a [`limits::PagePermit`] (the cheapest waiting page
/// first, by its `limit`), held by the response body until the page has been handed to the
/// connection ([`limits::PermitBody`]); 503 with `Retry-After` as a TAXII error resource
/// when [`Limits::page_queue`] pages already wait.
async fn page_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The cost is read as the handler will read it (percent-decoded), and a repeated
    // `limit` (refused by the handler) counts at its largest: no spelling of the query
    // makes a large page queue as a small one.
    let cost = RawQuery::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|RawQuery(pairs)| {
            pairs
                .iter()
                .filter(|(name, _)| name == "limit")
                .map(|(_, v)| {
                    v.parse::<usize>()
                        .unwrap_or(concord_taxii::query::DEFAULT_LIMIT)
                })
                .max()
                .unwrap_or(concord_taxii::query::DEFAULT_LIMIT)
        })
        .unwrap_or(concord_taxii::query::MAX_LIMIT)
        .min(concord_taxii::query::MAX_LIMIT);
    let permit = match state.page_gate.enter(cost).await {
        Ok(p) => p,
        Err(busy) => {
            let mut resp = error_response(TaxiiError::new(
                ErrorCode::ServiceUnavailable,
                busy.to_string(),
            ));
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(limits::BUSY_RETRY_AFTER_SECS),
            );
            return resp;
        }
    };
    next.run(req)
        .await
        .map(|body| axum::body::Body::new(limits::PermitBody::new(body, permit)))
}

/// The answer floor of [`router`] ([`limits::AnswerFloor`]): a partner's answer to a request
/// that names ids ([`limits::ids_named`]; a POST of objects counts as one) leaves at the deadline the floor sets from the
/// moment the request reached the route, whatever the answer (200, 404, 400), so that its
/// time does not tell a withheld object from a missing one. The operator's answers are not
/// held: it receives everything, so there is nothing for it to learn.
async fn answer_floor(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let ids = match req.extensions().get::<Principal>() {
        Some(Principal::Partner(_)) => {
            let route = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|m| m.as_str().to_owned());
            // Percent-decoded as the handlers read it; an unreadable query is refused by
            // them, and held like any other answer (as if it named one id).
            RawQuery::<Vec<(String, String)>>::try_from_uri(req.uri())
                .map(|RawQuery(pairs)| limits::ids_named(route.as_deref(), &pairs))
                .unwrap_or(1)
                // A POST names the objects of its envelope: at least one floor, so that the
                // time of its answer does not tell a write over an id the node holds (kept
                // as the writer's foreign version, or refused) from a write of a new one.
                .max(usize::from(req.method() == axum::http::Method::POST))
        }
        _ => 0,
    };
    let resp = next.run(req).await;
    hold_answer(state.config.limits.answer_floor(), started, ids, resp).await
}

/// Holds `resp`, the answer to a request that reached its route at `started` and named
/// `ids` ids, until the deadline `floor` sets ([`limits::AnswerFloor::deadline`]): the one
/// mechanism of the answer floor, for the TAXII routes ([`router`]) and the web UI's object
/// pages a partner reads (issue 15, timing oracle F2). Not held when `ids` is 0 or the floor
/// is zero. The body is read into memory first: an answer that cannot be read is answered
/// 500.
pub async fn hold_answer(
    floor: limits::AnswerFloor,
    started: tokio::time::Instant,
    ids: usize,
    resp: Response,
) -> Response {
    if floor.deadline(started, ids, started).is_none() {
        return resp;
    }
    // The body is taken first (it is a page already built in memory): that hands it over
    // and releases the page gate's permit ([`limits::PermitBody`]), so the wait holds no
    // slot of the gate.
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(TaxiiError::new(
                ErrorCode::Internal,
                format!("building the answer: {e}"),
            ));
        }
    };
    if let Some(until) = floor.deadline(started, ids, tokio::time::Instant::now()) {
        tokio::time::sleep_until(until).await;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// What [`limit_bodies`] holds request bodies to (issue 16, items 4 and fixload 1–2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Bytes of any body (TAXII `max_content_length`).
    pub max: u64,
    /// Time to receive a whole body, from the moment its request reached the layer
    /// ([`Limits::body_timeout_secs`]); then the request is answered 408 and its connection
    /// closed.
    pub timeout: std::time::Duration,
    /// Smaller limits of single routes, by exact path, in bytes: `/ui/login`
    /// ([`Limits::login_body_bytes`]), `/api/match` ([`Limits::match_body_bytes`]) and
    /// [`JOIN_PATH`] ([`Limits::join_body_bytes`]),
    /// each with the name of its configuration key.
    pub routes: Vec<(&'static str, &'static str, u64)>,
}

impl BodyLimits {
    /// `max` bytes for any body, the other limits at their defaults ([`Limits::default`]).
    pub fn new(max: u64) -> BodyLimits {
        BodyLimits::with(max, &Limits::default())
    }

    /// `max` bytes for any body, the rest from `limits` (a zero timeout is taken as 1 s).
    pub fn with(max: u64, limits: &Limits) -> BodyLimits {
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        BodyLimits {
            max,
            timeout: std::time::Duration::from_secs(limits.body_timeout_secs.max(1)),
            routes: vec![
                (
                    "/ui/login",
                    "login_body_bytes",
                    bytes(limits.login_body_bytes),
                ),
                (
                    "/api/match",
                    "match_body_bytes",
                    bytes(limits.match_body_bytes),
                ),
                (JOIN_PATH, "join_body_bytes", bytes(limits.join_body_bytes)),
                (
                    JOIN_PATH.trim_end_matches('/'),
                    "join_body_bytes",
                    bytes(limits.join_body_bytes),
                ),
            ],
        }
    }

    /// The limits of a node's configuration: `max_content_length` and its `[limits]`.
    pub fn of(config: &ServerConfig) -> BodyLimits {
        BodyLimits::with(config.max_content_length, &config.limits)
    }

    /// The limit of the body of a request to `path`, with the name of its key: the route's
    /// own when it has one smaller than `max`, else `max`.
    pub fn max_for(&self, path: &str) -> (&'static str, u64) {
        self.routes
            .iter()
            .find(|(p, _, n)| *p == path && *n < self.max)
            .map_or(("max_content_length", self.max), |(_, key, n)| (*key, *n))
    }
}

/// Holds every request body of `app` to `max` bytes and the default [`BodyLimits`]:
/// [`limit_bodies_with`] of [`BodyLimits::new`].
pub fn limit_bodies(app: Router, max: u64) -> Router {
    limit_bodies_with(app, BodyLimits::new(max))
}

/// Holds every request body of `app` to `limits`, as a layer around the whole router
/// (TAXII, `/api/` and the web UI alike), so no handler can forget it (issue 16, item 4):
///
/// - a `Content-Length` over the route's limit ([`BodyLimits::max_for`]: `/ui/login` and
///   `/api/match` have their own, smaller ones) is answered 413 at once, before any of the
///   body is read;
/// - any other body (chunked) is cut at that limit: reading past it fails, and the handler
///   answers 413 ([`is_too_large`]), having buffered at most the limit;
/// - a body not received whole within [`BodyLimits::timeout`] of the request reaching the
///   layer fails to read; the request is answered 408 (`Connection: close`), whatever the
///   handler made of the failure, and hyper closes the connection, since the body was not
///   read to its end. A client that trickles its body holds its connection that long.
///
/// The 413 and 408 speak the route's language: a TAXII error resource on TAXII routes,
/// JSON `{"error": …}` on `/api/` and the web UI.
pub fn limit_bodies_with(app: Router, limits: BodyLimits) -> Router {
    let limits = Arc::new(limits);
    app.layer(middleware::from_fn(move |req: Request, next: Next| {
        limit_body(limits.clone(), req, next)
    }))
}

async fn limit_body(limits: Arc<BodyLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let (key, max) = limits.max_for(&path);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large_named(&path, key, max);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timeout = limits.timeout;
    let flag = timed_out.clone();
    let req = req.map(move |body| {
        axum::body::Body::new(conn::BodyDeadline::new(
            http_body_util::Limited::new(body, limit),
            timeout,
            flag,
        ))
    });
    let response = next.run(req).await;
    if timed_out.load(std::sync::atomic::Ordering::Relaxed) {
        let message = format!(
            "the request body was not received within {} s (body_timeout_secs)",
            timeout.as_secs()
        );
        let mut r = if is_json_path(&path) {
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "code": "request_timeout", "error": message, "message": message })
                    .to_string(),
            )
                .into_response()
        } else {
            let mut r = error_response(TaxiiError::new(ErrorCode::BadRequest, message));
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            r
        };
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    response
}

/// Whether errors of `path` are JSON `{"error": …}` (`/api/`, the web UI) rather than TAXII
/// error resources.
fn is_json_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/" || path.starts_with("/ui")
}

/// Whether a body read failed because the body crossed the limit of [`limit_bodies`].
pub fn is_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The 413 of `path` over `max_content_length` ([`too_large_named`]).
pub fn too_large_response(path: &str, max: u64) -> Response {
    too_large_named(path, "max_content_length", max)
}

/// The 413 of `path`, whose body crossed the limit `key` of `max` bytes: a TAXII error
/// resource under the API root and `/taxii2/`, JSON `{"error": …}` elsewhere (`/api/`, the
/// web UI).
pub fn too_large_named(path: &str, key: &str, max: u64) -> Response {
    let message = format!("request body exceeds {key} of {max} bytes");
    if is_json_path(path) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(header::CONTENT_TYPE, "application/json")],
            // `code`: the stable error code of the admin API's JSON errors.
            serde_json::json!({ "code": "payload_too_large", "error": message, "message": message })
                .to_string(),
        )
            .into_response();
    }
    error_response(TaxiiError::new(ErrorCode::PayloadTooLarge, message))
}

/// Serves `app` (the TAXII [`router`], with whatever the caller merged into it, such as the
/// web UI) over plain HTTP until `shutdown` completes: [`serve_tls`] without TLS, with the
/// same connection loop, so the same `limits.header_read` closes a client that does not
/// finish a request header (slowloris), the same `limits.write` one that does not read its
/// response, the same `limits.max_connections` bounds them, and the same grace applies at
/// shutdown. `limits.handshake` does not apply (there is no handshake).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_connections(listener, app, None, limits, shutdown).await
}

/// How long open connections may take to finish after the shutdown signal.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A TAXII error as an HTTP response.
struct Error(TaxiiError);

impl From<TaxiiError> for Error {
    fn from(e: TaxiiError) -> Self {
        Error(e)
    }
}

impl From<EgressError> for Error {
    fn from(e: EgressError) -> Self {
        match e {
            EgressError::BadCursor => Error(TaxiiError::new(ErrorCode::BadRequest, e.to_string())),
            EgressError::Store(e) => e.into(),
            EgressError::Config(m) => Error(TaxiiError::new(ErrorCode::Internal, m)),
            EgressError::Cancelled => Error(TaxiiError::new(
                ErrorCode::ServiceUnavailable,
                e.to_string(),
            )),
        }
    }
}

impl From<concord_store::StoreError> for Error {
    fn from(e: concord_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Error(TaxiiError::new(ErrorCode::Internal, e.to_string()))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

/// The error message resource as a response, with `WWW-Authenticate` on 401.
fn error_response(e: TaxiiError) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&e.resource()).unwrap_or_default();
    let mut resp = (status, [(header::CONTENT_TYPE, TAXII_21)], body).into_response();
    if e.code == ErrorCode::Unauthorized {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"concord\", Bearer realm=\"concord\""),
        );
    }
    resp
}

type Handler<T> = Result<T, Error>;

/// Authentication, then content negotiation, for every route.
async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let has_credentials = authz.is_some();
    // Every limit on the cost of credentials is applied inside (auth.rs).
    let source = peer_ip(req.extensions());
    let principal = match state
        .auth
        .authenticate(
            authz.as_deref(),
            source,
            mtls::client_cert_sha256(req.extensions()),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return auth_error_response(&e),
    };
    let Some(principal) = principal else {
        return ops::unauthenticated(has_credentials);
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    // `/api/` answers plain JSON and a stream `text/event-stream`; only the TAXII
    // resources negotiate the TAXII media type (their errors stay TAXII error resources).
    if !req.uri().path().starts_with("/api/")
        && !is_push_path(req.uri().path())
        && !media::accepts_taxii(accept)
    {
        return not_acceptable(accept);
    }
    // IEP 2.0 ENCRYPT IN TRANSIT must (issue 19): a partner whose agreement requires it is
    // refused over plain HTTP, when this connection says which it is ([`Transport`]).
    if let Principal::Partner(p) = &principal
        && req.extensions().get::<Transport>().is_some_and(|t| !t.tls)
        && let Some((name, a, _)) = state.policy.agreement(&p.profile)
        && a.requires_encryption()
    {
        return error_response(TaxiiError::new(
            ErrorCode::Forbidden,
            format!(
                "agreement {name} with {} requires encryption in transit (IEP 2.0 \
                 encrypt_in_transit must), and this server serves plain HTTP: connect over HTTPS",
                p.profile.name
            ),
        ));
    }
    // IEP 2.0 end date (§11), the other way (issue 19): outside its agreement's period a
    // partner writes and deletes nothing here either (what it reads, the egress door
    // withholds).
    if let Principal::Partner(p) = &principal
        && matches!(
            *req.method(),
            axum::http::Method::POST | axum::http::Method::DELETE
        )
        && req.uri().path().contains("/objects/")
        && let Some((name, a, period)) = state.policy.agreement(&p.profile)
    {
        let now = Timestamp::now_micros().unix_nanos();
        if !period.in_effect(now) {
            let when = match (&a.end_date, period.end_ns) {
                (Some(end), Some(e)) if now >= e => format!("ended at {end} (IEP 2.0 end_date)"),
                _ => format!(
                    "takes effect at {} (IEP 2.0 start_date)",
                    a.start_date.as_deref().unwrap_or("?")
                ),
            };
            return error_response(TaxiiError::new(
                ErrorCode::Forbidden,
                format!(
                    "agreement {name} with {} {when}: nothing flows outside it, in either direction",
                    p.profile.name
                ),
            ));
        }
    }
    req.extensions_mut().insert(principal.clone());
    let mut res = next.run(req).await;
    // For the request log ([`ops::observe`]), which sees only the response.
    res.extensions_mut().insert(principal);
    res
}

/// Whether `path` is a door of issue 21 under a collection (`…/stream/`,
/// `…/feeds/{format}`), which answers its own media type rather than TAXII's.
fn is_push_path(path: &str) -> bool {
    let Some((_, rest)) = path.split_once("/collections/") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    let mut parts = rest.split('/').skip(1);
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("stream"), None, _) | (Some("feeds"), Some(_), None)
    )
}

/// 406: the TAXII resources answer only their media type (TAXII 2.1 §1.6.8).
fn not_acceptable(accept: Option<&str>) -> Response {
    error_response(TaxiiError::new(
        ErrorCode::NotAcceptable,
        format!(
            "Accept {:?} allows no {TAXII_21} response",
            accept.unwrap_or_default()
        ),
    ))
}

/// What an authenticated partner gets for a path that is no resource of its: the gate's
/// 406 unless it accepts TAXII, then the fallback's 404, exactly as for a path that does
/// not exist. Under `/api/` the gate negotiates nothing, so the answer there is
/// `no_such_resource(Some(TAXII_21))` (the admin API's answer to a partner).
pub fn no_such_resource(accept: Option<&str>) -> Response {
    if !media::accepts_taxii(accept) {
        return not_acceptable(accept);
    }
    error_response(TaxiiError::new(
        ErrorCode::NotFound,
        "no such TAXII resource",
    ))
}

/// A JSON TAXII response.
fn taxii_json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, TAXII_21)], body).into_response()
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    taxii_json(
        StatusCode::OK,
        serde_json::to_string(value).unwrap_or_default(),
    )
}

fn date_added(ns: i64) -> String {
    Timestamp::from_unix_nanos(ns, 6).to_string()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error(TaxiiError::new(
            ErrorCode::Internal,
            format!("worker failed: {e}"),
        ))
    })?
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}")
}

async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let root = format!("{}/{}/", base_url(&headers), state.config.api_root);
    json(&Discovery {
        title: state.config.title.clone(),
        description: state.config.description.clone(),
        contact: state.config.contact.clone(),
        default: Some(root.clone()),
        api_roots: vec![root],
    })
}

async fn api_root(State(state): State<AppState>) -> Response {
    json(&ApiRoot {
        title: state.config.title.clone(),
        description: state.config.description.clone(),
        versions: vec![TAXII_21.to_owned()],
        max_content_length: state.config.max_content_length,
    })
}

/// The node setting naming who made the POST of a status resource.
fn status_owner_key(status_id: &str) -> String {
    format!("status_owner/{status_id}")
}

/// TAXII 2.1 §4.3 Get Status: readable by the principal that made the POST and by the
/// admin; for anyone else it does not exist (404, as for an unknown id).
async fn status(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(status_id): Path<String>,
) -> Handler<Response> {
    let store = state.store.clone();
    let id = status_id.clone();
    let who = audit::principal_name(&principal);
    let found = blocking(move || {
        if principal != Principal::Admin
            && store.setting(&status_owner_key(&id))?.as_deref() != Some(who.as_str())
        {
            return Ok(None);
        }
        Ok(store.status(&id)?)
    })
    .await?;
    match found {
        Some(body) => Ok(taxii_json(StatusCode::OK, body)),
        None => Err(TaxiiError::new(
            ErrorCode::NotFound,
            format!("no status resource {status_id:?}"),
        )
        .into()),
    }
}

fn collection_resource(c: Collection, principal: &Principal) -> CollectionResource {
    CollectionResource {
        can_read: principal.can_read(&c.id),
        can_write: principal.can_write(&c.id),
        id: c.id,
        title: c.title,
        description: c.description,
        alias: c.alias,
        media_types: vec![media::STIX_21.to_owned()],
    }
}

async fn collections(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Handler<Response> {
    let store = state.store.clone();
    let list = blocking(move || Ok(store.collections()?)).await?;
    Ok(json(&Collections {
        collections: list
            .into_iter()
            .filter(|c| principal.can_read(&c.id) || principal.can_write(&c.id))
            .map(|c| collection_resource(c, &principal))
            .collect(),
    }))
}

/// Which access a handler needs on a collection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// Listing the collection resource itself: any principal that can read or write.
    See,
}

/// Finds a collection by id or alias and checks access: 404 when unknown or invisible to the
/// principal, 403 when the principal may see it but not do what is asked (TAXII 2.1 §5.2).
async fn find_collection(
    state: &AppState,
    principal: &Principal,
    name: String,
    access: Access,
) -> Handler<Collection> {
    let store = state.store.clone();
    let n = name.clone();
    let not_found = || TaxiiError::new(ErrorCode::NotFound, format!("no collection {name:?}"));
    let c = blocking(move || Ok(store.collection(&n)?))
        .await?
        .ok_or_else(not_found)?;
    // A collection the principal may neither read nor write does not exist for it (404, so
    // as not to reveal it); one it may only read or only write answers 403 for the other.
    if !(principal.can_read(&c.id) || principal.can_write(&c.id)) {
        return Err(not_found().into());
    }
    let ok = match access {
        Access::Read => principal.can_read(&c.id),
        Access::Write => principal.can_write(&c.id),
        Access::See => principal.can_read(&c.id) || principal.can_write(&c.id),
    };
    if !ok {
        let what = if access == Access::Write {
            "write to"
        } else {
            "read"
        };
        return Err(TaxiiError::new(
            ErrorCode::Forbidden,
            format!("you may not {what} collection {name:?}"),
        )
        .into());
    }
    Ok(c)
}

async fn collection(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Handler<Response> {
    let c = find_collection(&state, &principal, name, Access::See).await?;
    Ok(json(&collection_resource(c, &principal)))
}

/// TAXII query → store filter.
fn filter_of(q: &Query) -> ObjectFilter {
    ObjectFilter {
        added_after_ns: q.added_after.as_ref().map(Timestamp::unix_nanos),
        ids: q.ids.clone(),
        types: q.types.clone(),
        versions: q
            .versions
            .iter()
            .map(|v| match v {
                VersionMatch::First => VersionSelector::First,
                VersionMatch::Last => VersionSelector::Last,
                VersionMatch::All => VersionSelector::All,
                VersionMatch::At(t) => VersionSelector::At(t.clone()),
            })
            .collect(),
        spec_versions: q.spec_versions.clone(),
        // The egress door widens it to the partner's own foreign versions.
        foreign: Default::default(),
    }
}

/// The audience of a principal: the admin token is the operator.
pub fn audience_of(principal: &Principal) -> Audience {
    match principal {
        Principal::Admin => Audience::Operator("admin".to_owned()),
        Principal::Partner(p) => Audience::Partner(p.profile.clone()),
    }
}

/// One page through the egress door (`concord_egress`): decided, rewritten, audited under
/// `door`, with an opaque `next` (400 naming `next` for a token not issued for this
/// collection and principal).
async fn door_page(
    state: &AppState,
    principal: &Principal,
    door: &'static str,
    mut query: PageQuery,
) -> Handler<Transfer> {
    query.max_bytes = state.config.limits.page_max_bytes;
    let egress = state.egress_for(principal);
    let audience = audience_of(principal);
    blocking(move || Ok(egress.page(&audience, door, &query)?)).await
}

fn page_query(
    collection_id: String,
    q: &Query,
    filter: ObjectFilter,
    want_body: bool,
) -> PageQuery {
    PageQuery {
        collection_id,
        filter,
        limit: q.limit,
        next: q.next.clone(),
        want_body,
        // Set from the node's limits by `door_page`.
        max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
    }
}

/// A JSON TAXII response with `X-TAXII-Date-Added-First/Last` headers of what is sent.
fn taxii_page(body: String, entries: &[Sent]) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, TAXII_21)], body).into_response();
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        for (name, e) in [
            ("x-taxii-date-added-first", first),
            ("x-taxii-date-added-last", last),
        ] {
            if let Ok(v) = HeaderValue::from_str(&date_added(e.date_added_ns)) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    resp
}

/// An envelope of what the door decided: stored bytes or the rewritten copies, joined
/// without re-serialising.
fn envelope(out: &Transfer) -> String {
    let mut text = String::with_capacity(
        64 + out
            .entries
            .iter()
            .map(|e| e.body.as_ref().map_or(0, String::len) + 1)
            .sum::<usize>(),
    );
    text.push_str(if out.more {
        "{\"more\":true"
    } else {
        "{\"more\":false"
    });
    if let Some(next) = &out.next {
        text.push_str(",\"next\":");
        text.push_str(&serde_json::Value::String(next.clone()).to_string());
    }
    if !out.entries.is_empty() {
        text.push_str(",\"objects\":[");
        for (i, e) in out.entries.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(e.body.as_deref().unwrap_or("null"));
        }
        text.push(']');
    }
    text.push('}');
    text
}

async fn objects(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let q = Query::parse(&pairs, Endpoint::Objects)?;
    let c = find_collection(&state, &principal, name, Access::Read).await?;
    let query = page_query(c.id, &q, filter_of(&q), true);
    let out = door_page(&state, &principal, "taxii-objects", query).await?;
    Ok(taxii_page(envelope(&out), &out.entries))
}

async fn manifest(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let q = Query::parse(&pairs, Endpoint::Objects)?;
    let c = find_collection(&state, &principal, name, Access::Read).await?;
    let query = page_query(c.id, &q, filter_of(&q), false);
    let p = door_page(&state, &principal, "taxii-manifest", query).await?;
    let m = Manifest {
        more: p.more,
        next: p.next.clone(),
        objects: p
            .entries
            .iter()
            .map(|e| ManifestRecord {
                id: e.id.clone(),
                date_added: date_added(e.date_added_ns),
                version: e.version.clone(),
                media_type: media::STIX_21.to_owned(),
            })
            .collect(),
    };
    Ok(taxii_page(
        serde_json::to_string(&m).unwrap_or_default(),
        &p.entries,
    ))
}

/// The answer for an object the principal does not receive: the same whether it does not
/// exist, is withheld, or only its stored id was asked for (TAXII 2.1 §5.5, 404).
fn no_object(object_id: &str) -> Error {
    Error(TaxiiError::new(
        ErrorCode::NotFound,
        format!("no object {object_id:?} in this collection"),
    ))
}

/// The common start of the per-object endpoints: parse the query, find the collection
/// (403/404), and filter on the object's id.
async fn object_request(
    state: &AppState,
    principal: &Principal,
    (name, object_id): (String, String),
    pairs: &[(String, String)],
    endpoint: Endpoint,
    access: Access,
) -> Handler<(Query, Collection, ObjectFilter)> {
    let q = Query::parse(pairs, endpoint)?;
    let c = find_collection(state, principal, name, access).await?;
    let mut filter = filter_of(&q);
    filter.ids = vec![object_id];
    Ok((q, c, filter))
}

async fn object(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(path): Path<(String, String)>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let object_id = path.1.clone();
    let (q, c, filter) = object_request(
        &state,
        &principal,
        path,
        &pairs,
        Endpoint::Object,
        Access::Read,
    )
    .await?;
    let query = page_query(c.id, &q, filter, true);
    let out = door_page(&state, &principal, "taxii-object", query).await?;
    if out.entries.is_empty() && q.next.is_none() {
        return Err(no_object(&object_id));
    }
    Ok(taxii_page(envelope(&out), &out.entries))
}

async fn versions(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(path): Path<(String, String)>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let object_id = path.1.clone();
    let (q, c, mut filter) = object_request(
        &state,
        &principal,
        path,
        &pairs,
        Endpoint::Versions,
        Access::Read,
    )
    .await?;
    filter.versions = vec![VersionSelector::All];
    let query = page_query(c.id, &q, filter, false);
    let p = door_page(&state, &principal, "taxii-versions", query).await?;
    if p.entries.is_empty() && q.next.is_none() {
        return Err(no_object(&object_id));
    }
    let v = Versions {
        more: p.more,
        next: p.next.clone(),
        versions: p.entries.iter().map(|e| e.version.clone()).collect(),
    };
    Ok(taxii_page(
        serde_json::to_string(&v).unwrap_or_default(),
        &p.entries,
    ))
}

/// TAXII 2.1 §5.7 Delete An Object. Needs write access (403 otherwise, as TAXII asks); a
/// partner removes only the versions it would receive by reading (the door decides, so a
/// withheld or newer RED version stays, and a stored id of a renamed SCO finds nothing)
/// and the version rows its own writes stored (its TAXII POSTs, a peer's pushes linked to
/// it: the audit log's ingress entries by it, [`wrote`]), whether or not it may read the
/// collection: it learns nothing it did not send, and a node that only pushes here can pass
/// its deletes on (issue 21). A partner cannot destroy what it may neither see nor wrote,
/// and the answer for such a version is the 404 of one that does not exist. Every delete is
/// audited (`taxii-delete`).
async fn delete_object(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(path): Path<(String, String)>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let object_id = path.1.clone();
    let (_, c, filter) = object_request(
        &state,
        &principal,
        path,
        &pairs,
        Endpoint::Delete,
        Access::Write,
    )
    .await?;
    let egress = state.egress_for(&principal);
    let audience = audience_of(&principal);
    let id = object_id.clone();
    let deleted = blocking(move || {
        let store = egress.store().clone();
        // Every version the filter selects, as the principal would read them; a partner
        // without read access reads nothing, so deletes nothing.
        let mut selected: Vec<(i64, String)> = Vec::new();
        if principal.can_read(&c.id) {
            let mut after = None;
            loop {
                let (t, resume) = egress.scan(
                    &audience,
                    "taxii-delete-check",
                    &c.id,
                    &filter,
                    after,
                    concord_taxii::query::MAX_LIMIT,
                    false,
                )?;
                selected.extend(
                    t.entries
                        .into_iter()
                        .filter(|e| e.id == id)
                        .map(|e| (e.vid, e.version)),
                );
                match resume {
                    Some(r) if t.more => after = Some(r),
                    _ => break,
                }
            }
        }
        // What a partner wrote itself, by version row (a withheld version beside one it
        // wrote under the same `(id, modified)` is another row, and stays).
        if let Principal::Partner(p) = &principal {
            let own = concord_store::partner_provenance(&p.profile.name);
            let mut mine = filter.clone();
            mine.foreign = concord_store::ForeignVersions::Of(own);
            let mut after = None;
            loop {
                let page = store.entries(
                    &c.id,
                    &mine,
                    &concord_store::PageRequest {
                        limit: concord_taxii::query::MAX_LIMIT,
                        after,
                    },
                    false,
                )?;
                for e in &page.entries {
                    if !selected.iter().any(|(vid, _)| *vid == e.vid)
                        && wrote(store.as_ref(), &p.profile.name, &c.id, e.vid)?
                    {
                        selected.push((e.vid, e.version()));
                    }
                }
                match page.entries.last() {
                    Some(e) if page.more => after = Some(e.cursor()),
                    _ => break,
                }
            }
        }
        let mut n = 0;
        let mut records = Vec::new();
        let person = audit::person_of(&principal);
        let door = concord_egress::Door {
            door: "taxii-delete",
            partner: audience.name(),
            person: Some(&person),
            collection: &c.id,
            policy_version: concord_egress::BASE_POLICY_VERSION,
        };
        for (vid, version) in &selected {
            // By its row: another entry may share its `(id, modified)` and be withheld from
            // the principal ([`concord_store::WriteBatch::add_unseen`]).
            let removed = store.delete_versions(&c.id, &id, &[*vid])?;
            if removed > 0 {
                n += removed;
                records.push(door.record(
                    "delete",
                    *vid,
                    &id,
                    version.clone(),
                    "deleted",
                    Vec::new(),
                ));
            }
        }
        store.append_audit(&records)?;
        Ok(n)
    })
    .await?;
    if deleted == 0 {
        return Err(no_object(&object_id));
    }
    Ok(taxii_json(StatusCode::OK, String::new()))
}

/// Whether `partner`'s own writes into `collection_id` stored or found the version row
/// `vid`: an ingress entry of the audit log by it names the row as added or already present.
fn wrote(
    store: &dyn Store,
    partner: &str,
    collection_id: &str,
    vid: i64,
) -> Result<bool, concord_store::StoreError> {
    // Only a write that stored the row counts: a POST of bytes identical to a row already
    // there (`already-present`) is no claim on it, or anyone who can reproduce an object's
    // bytes (public ATT&CK, a shared feed, an SCO) could delete it (attack on h-del, #1).
    Ok(concord_store::ingress_of(store, collection_id, vid)?
        .iter()
        .any(|(who, d)| who == partner && *d == concord_store::audit::Decision::Added))
}

/// `GET …/collections/{id}/tombstones/[?next=TOKEN]` (not TAXII; issue 21, item 4): the
/// versions of the collection deleted since `next` (from the beginning without it) that the
/// principal received before they were deleted ([`concord_egress::Egress::tombstones`]),
/// as `{"tombstones": [{"id", "version"}], "more": bool, "next": TOKEN}`. A collection the
/// principal may not read answers as the TAXII 404 for it; a token not sealed for this
/// collection and principal, 400.
/// How a connection reached the server, set per connection by [`serve`] and [`serve_tls`]:
/// what an agreement's ENCRYPT IN TRANSIT clause is checked against. Absent (a router driven
/// without a listener): the server cannot tell, and checks nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// The connection is TLS.
    pub tls: bool,
}

/// `GET /{api-root}/agreement/` (issue 19): the partner's own agreement with this node, as a
/// document signed with the node key ([`concord_egress::agreement`]); a signed "none" when no
/// agreement applies. Only a partner asks (the operator and a node without a key get the
/// answer of a missing path); the version it fetched is recorded, so `partner show` can say
/// which version it holds.
async fn agreement(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Handler<Response> {
    let (Principal::Partner(p), Some(key)) = (&principal, state.node_key.clone()) else {
        return Ok(no_such_resource(Some(TAXII_21)));
    };
    let profile = p.profile.clone();
    let policy = state.policy.clone();
    let store = state.store.clone();
    let doc = blocking(move || {
        let now = concord_stix::Timestamp::now_micros().to_string();
        let doc = concord_egress::agreement::build_document(&policy, &profile, &key, &now);
        let version =
            concord_egress::agreement::partner_agreement(&policy, &profile).map(|(v, _)| v);
        concord_egress::agreement::record_fetched(
            store.as_ref(),
            &profile.name,
            version.as_deref(),
        )?;
        Ok(doc)
    })
    .await?;
    Ok(json(&serde_json::to_value(&doc).unwrap_or_default()))
}

async fn tombstones(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(pairs): RawQuery<Vec<(String, String)>>,
) -> Handler<Response> {
    let c = find_collection(&state, &principal, name, Access::Read).await?;
    let next = pairs
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.clone());
    let audience = audience_of(&principal);
    let egress = state.egress_for(&principal);
    let page = blocking(move || Ok(egress.tombstones(&audience, &c.id, next.as_deref())?)).await?;
    let list: Vec<serde_json::Value> = page
        .tombstones
        .iter()
        .map(|t| serde_json::json!({"id": t.id, "version": t.version}))
        .collect();
    Ok(json(&serde_json::json!({
        "tombstones": list, "more": page.more, "next": page.next,
    })))
}

async fn add_objects(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> Handler<Response> {
    let max = state.config.max_content_length;
    let too_large = || {
        Error(TaxiiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds max_content_length of {max} bytes"),
        ))
    };
    // 413 from Content-Length before reading anything.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !media::is_taxii_content_type(ct) {
        return Err(TaxiiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {:?} is not {TAXII_21}",
                ct.unwrap_or_default()
            ),
        )
        .into());
    }
    let c = find_collection(&state, &principal, name, Access::Write).await?;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if is_too_large(&e) || e.to_string().contains("length limit") {
                too_large()
            } else {
                Error(TaxiiError::new(
                    ErrorCode::BadRequest,
                    format!("reading the body: {e}"),
                ))
            }
        })?;
    let max_object_size = state.config.ingress.max_object_size;
    let cancel = state.shutdown.clone();
    let request_timestamp = Timestamp::now_micros().to_string();
    let store = state.store.clone();
    let who = audit::principal_name(&principal);
    let person = audit::person_of(&principal);
    let egress = state.egress_for(&principal);
    // `None`: the operator, who sees everything; `Some(None)`: a partner that may only
    // write, which receives nothing of the collection.
    let writer = match &principal {
        Principal::Admin => None,
        Principal::Partner(p) => Some(p.read.contains(&c.id).then(|| p.profile.clone())),
    };
    // What a partner writes is its own: sync does not echo it back to the partner's node,
    // and what answers it goes home there.
    let partner_name = match &principal {
        Principal::Admin => None,
        Principal::Partner(p) => Some(p.profile.name.clone()),
    };
    let provenance = partner_name
        .as_deref()
        .map(concord_store::partner_provenance);
    let report = blocking(move || {
        let door = audit::ingress_door("taxii-post", &who, Some(&person), &c.id);
        // A partner's write is answered as if the versions it does not receive did not
        // exist (issue 15, the conflict oracle): a version under the `(id, modified)` of one
        // withheld from it, or with another `created`, is added beside it, as a new one
        // would be, and the partner reads back what it wrote; the status resource, the
        // audit and what it later reads are those of a new version.
        let unseen = |header: &concord_stix::ObjectHeader,
                      body: &str|
         -> Result<concord_store::WriterView, concord_store::StoreError> {
            let (Some(reader), Some(name)) = (&writer, &partner_name) else {
                return Ok(Default::default());
            };
            egress
                .writer_view(reader.as_ref(), name, &c.id, header, body)
                .map_err(|e| match e {
                    EgressError::Store(e) => e,
                    other => concord_store::StoreError::Corrupt(other.to_string()),
                })
        };
        // Ingress records go into the ingest's own transaction: durable with the objects.
        let make = |accepted: &[concord_ingest::Accepted]| audit::ingress_records(&door, accepted);
        let names: Vec<&str> = provenance.as_deref().into_iter().collect();
        let options = IngestOptions {
            container: Container::Envelope,
            list_accepted: true,
            audit: Some(&make),
            provenance: &names,
            settings: &[],
            max_object_size,
            cancel: Some(&cancel),
            unseen: Some(&unseen),
        };
        let report =
            ingest(store.as_ref(), &c.id, &body[..], options, |_| {}).map_err(|e| match e {
                IngestError::Container(other @ BundleError::ObjectTooLarge { .. }) => Error(
                    TaxiiError::new(ErrorCode::PayloadTooLarge, other.to_string()),
                ),
                IngestError::Cancelled => Error(TaxiiError::new(
                    ErrorCode::ServiceUnavailable,
                    IngestError::Cancelled.to_string(),
                )),
                IngestError::Container(BundleError::Json {
                    line,
                    column,
                    message,
                }) => Error(TaxiiError::new(
                    ErrorCode::BadRequest,
                    format!("malformed JSON at line {line}, column {column}: {message}"),
                )),
                IngestError::Container(other @ BundleError::NotABundle(_)) => Error(
                    TaxiiError::new(ErrorCode::UnprocessableEntity, other.to_string()),
                ),
                IngestError::Container(other) => {
                    Error(TaxiiError::new(ErrorCode::BadRequest, other.to_string()))
                }
                IngestError::Store(e) => e.into(),
                // A POST has no final check of its own; kept for completeness.
                e @ IngestError::Refused(_) => Error(TaxiiError::new(
                    ErrorCode::UnprocessableEntity,
                    e.to_string(),
                )),
            })?;
        Ok(report)
    })
    .await?;
    // Live streams of this process look at once (issue 21).
    if report.accepted.iter().any(|a| a.added) {
        state.writes.notify();
    }
    // "Already present" is the operator's to know: to a partner it would confirm that the
    // collection holds an object it may not read (an SCO's id is derived from its value, so
    // a writer could test guessed values). A partner's version that is already held is
    // simply a success.
    let tell_present = principal == Principal::Admin;
    let status = Status {
        id: uuid::Uuid::new_v4().to_string(),
        status: "complete".into(),
        request_timestamp,
        total_count: report.total as u64,
        success_count: report.accepted.len() as u64,
        successes: report
            .accepted
            .iter()
            .map(|a| StatusDetails {
                id: a.id.clone(),
                version: a.version.clone(),
                message: (tell_present && !a.added)
                    .then(|| "already present in the collection".to_owned()),
            })
            .collect(),
        failure_count: report.rejected.len() as u64,
        failures: report
            .rejected
            .iter()
            .map(|r| StatusDetails {
                id: r
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("objects[{}]", r.index)),
                version: r.version.clone().unwrap_or_default(),
                message: Some(r.reasons.join("; ")),
            })
            .collect(),
        pending_count: 0,
        pendings: Vec::new(),
    };
    let body = serde_json::to_string(&status).unwrap_or_default();
    let store = state.store.clone();
    let (id, stored) = (status.id.clone(), body.clone());
    let owner = audit::principal_name(&principal);
    blocking(move || {
        store.set_setting(&status_owner_key(&id), &owner)?;
        Ok(store.put_status(&id, &stored)?)
    })
    .await?;
    Ok(taxii_json(StatusCode::ACCEPTED, body))
}

/// TLS for `serve_tls`: the server's certificate chain and key, and optionally the CA whose
/// client certificates the server requires (mutual TLS). PEM files.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// Certificate chain (PEM), leaf first.
    pub cert: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// CA certificates (PEM) a client certificate must chain to; `None`: no client
    /// certificate asked for.
    pub client_ca: Option<String>,
}

/// Builds the rustls server configuration of `files`, without client certificates pinned
/// to partners ([`tls_server`] has them). Errors name the file and what is wrong with it.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    build_tls(files, None)
}

/// What [`serve_tls`] serves with: the rustls configuration, and the partners' client
/// certificate pins its verifier reads ([`mtls::ClientPins`], refreshed by the connection
/// loop before a handshake), when it has them.
#[derive(Clone, Debug)]
pub struct TlsServer {
    /// The rustls server configuration.
    pub config: Arc<tokio_rustls::rustls::ServerConfig>,
    /// The pins its client certificate verifier accepts; `None`: no pinned client
    /// certificates ([`tls_config`]).
    pub pins: Option<Arc<mtls::ClientPins>>,
}

impl From<Arc<tokio_rustls::rustls::ServerConfig>> for TlsServer {
    fn from(config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        TlsServer { config, pins: None }
    }
}

/// The TLS of `concord serve` (issue 19, `join --mtls`): [`tls_config`], and client
/// certificates accepted when pinned by a partner of `store` (optional client
/// authentication; with `files.client_ca`, CA-issued ones too, and then required), through
/// [`mtls::PinnedClientVerifier`]. Errors name the file and what is wrong with it.
pub fn tls_server(files: &TlsFiles, store: Arc<dyn Store>) -> Result<TlsServer, String> {
    let pins = mtls::ClientPins::new(store);
    Ok(TlsServer {
        config: build_tls(files, Some(pins.clone()))?,
        pins: Some(pins),
    })
}

fn build_tls(
    files: &TlsFiles,
    pins: Option<Arc<mtls::ClientPins>>,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs = |path: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{path}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{path}: no PEM certificate in it"));
        }
        Ok(certs)
    };
    let chain = certs(&files.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("{}: {e}", files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let ca = match &files.client_ca {
        None => None,
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| format!("{ca}: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("{ca}: {e}"))?;
            Some(verifier)
        }
    };
    let builder = match (pins, ca) {
        (Some(pins), ca) => builder.with_client_cert_verifier(Arc::new(
            mtls::PinnedClientVerifier::new(pins, ca, provider),
        )),
        (None, Some(ca)) => builder.with_client_cert_verifier(ca),
        (None, None) => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} / {}: {e}", files.cert, files.key))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the TAXII routes over TLS on `listener` until `shutdown` completes: each accepted
/// connection is handshaken by rustls (a client without an acceptable certificate, under
/// mutual TLS, never reaches a handler) and served by hyper's HTTP/1.1 connection. A failed
/// handshake is logged and costs only that connection; so does one that does not finish its
/// handshake or a request header, or does not read its response, within `limits`. Requests carry the peer's address
/// (`ConnectInfo`, see [`peer_ip`]), [`TlsConnection`] and, when the client presented a
/// certificate, its pin ([`mtls::ClientCertificate`]). `tls`: a [`tls_config`], or a
/// [`tls_server`] whose partners' pins are read before handshakes.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: impl Into<TlsServer>,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = tls.into();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    serve_connections(listener, app, Some((acceptor, tls.pins)), limits, shutdown).await
}

/// The one connection loop of [`serve`] and [`serve_tls`]: at most `limits.max_connections`
/// accepted at once (the next is accepted when one closes), handshake (TLS) within
/// `limits.handshake`, then hyper's HTTP/1.1 connection with `limits.header_read`, every
/// write under `limits.write` and `limits.min_send_rate` ([`conn::WriteTimeout`], beneath
/// TLS), each connection in its
/// own task. When `shutdown` completes, no connection is accepted any
/// more, each open one is asked to finish its request in flight and close (hyper's graceful
/// shutdown: an idle keep-alive closes at once), and after [`SHUTDOWN_GRACE`] whatever is
/// still open is left to the runtime's shutdown.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<(tokio_rustls::TlsAcceptor, Option<Arc<mtls::ClientPins>>)>,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // A slot first: while every one is taken, connections wait in the listen queue.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: this connection is lost, the
                // listener is not.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Finished connection tasks are reaped as new ones come.
        while connections.try_join_next().is_some() {}
        let tls = tls.clone();
        let app = app.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _slot = slot;
            let tcp = conn::WriteTimeout::new(tcp, limits.write).with_min_rate(conn::MinSendRate {
                bytes_per_sec: limits.min_send_rate,
                window: limits.send_rate_window,
            });
            let app = app
                .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
                .layer(axum::Extension(Transport { tls: tls.is_some() }));
            let http = || {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_read);
                b
            };
            let result = match tls {
                Some((acceptor, pins)) => {
                    let handshake = async {
                        // The partners' pins, as the store holds them (mtls.rs): read before
                        // the handshake, which reads nothing.
                        if let Some(pins) = &pins {
                            pins.refresh().await;
                        }
                        acceptor.accept(tcp).await
                    };
                    let stream =
                        match tokio::time::timeout(limits.handshake, handshake).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%peer, timeout = ?limits.handshake, "TLS handshake timed out");
                                return;
                            }
                        };
                    let mut app = app.layer(axum::Extension(TlsConnection));
                    // The client certificate it presented, for the partner binding of
                    // `auth` (issue 19, mtls.rs).
                    if let Some(cert) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                        app = app.layer(axum::Extension(mtls::ClientCertificate(
                            mtls::certificate_pin(cert.as_ref()),
                        )));
                    }
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let conn =
                        http().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    drive(conn, &mut stopped).await
                }
                None => {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let conn = http().serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    drive(conn, &mut stopped).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, open = connections.len(), "connections still open after the shutdown grace: closed");
        connections.abort_all();
    }
    Ok(())
}

/// Runs one hyper connection until it ends, or, once `stopped` turns true, asks it to
/// finish what is in flight and close.
async fn drive<I, S>(
    conn: hyper::server::conn::http1::Connection<I, S>,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// An error of `/api/`: JSON `{"error": "FIELD: RULE"}` (the field first when one is at
/// fault), the same shape as the 413 of [`too_large_response`].
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.1, "/api/match failed");
        }
        let mut resp = (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": self.1 }).to_string(),
        )
            .into_response();
        // Every 503 of `/api/` is "busy" or "stopping": try again later.
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(limits::BUSY_RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// The body of `POST /api/match`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchRequest {
    collections: Vec<String>,
    #[serde(default)]
    format: Option<String>,
    lines: Vec<String>,
}

impl MatchRequest {
    /// Holds the request to `limits` ([`Limits::match_collections`], [`Limits::match_lines`],
    /// [`Limits::match_bytes`]) and removes repeated collections (first place kept).
    /// Errors: a 400 naming the field and the rule.
    fn check(&mut self, limits: &Limits) -> Result<(), ApiError> {
        let mut seen = std::collections::HashSet::new();
        self.collections.retain(|c| seen.insert(c.clone()));
        let n = self.collections.len();
        if n == 0 || n > limits.match_collections {
            return Err(bad_request(format!(
                "collections: must name 1 to {} distinct collections (match_collections), \
                 names {n}",
                limits.match_collections
            )));
        }
        // The entries are joined with newlines and read line by line, so an entry holding
        // newlines is that many lines: counted after splitting.
        let lines: usize = self
            .lines
            .iter()
            .map(|l| 1 + l.bytes().filter(|&b| b == b'\n').count())
            .sum();
        if lines > limits.match_lines {
            return Err(bad_request(format!(
                "lines: at most {} lines (match_lines), got {lines} \
                 (entries split at newlines)",
                limits.match_lines
            )));
        }
        let bytes: usize = self.lines.iter().map(String::len).sum();
        if bytes > limits.match_bytes {
            return Err(bad_request(format!(
                "lines: at most {} bytes together (match_bytes), got {bytes}",
                limits.match_bytes
            )));
        }
        Ok(())
    }
}

/// Appends the audit entries of one `POST /api/match` answer: each distinct indicator its
/// `hits` name, as the version the set holds (its id left, nothing else of it: the
/// transformation `id only (match hit)`), under door `api-match-hits`, one entry per
/// collection, with the digest of the ids and versions sent. Nothing when there is no hit.
fn record_match_hits(
    egress: &Egress,
    principal: &Principal,
    set: &matching::CompiledSet,
    hits: &[serde_json::Value],
) -> Result<(), concord_store::StoreError> {
    let mut named: Vec<(&str, &matching::Source)> = hits
        .iter()
        .filter_map(|h| h["indicator"].as_str())
        .filter_map(|id| set.sources.get(id).map(|s| (id, s)))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    named.sort_by(|a, b| (&a.1.collection, a.0).cmp(&(&b.1.collection, b.0)));
    named.dedup_by(|a, b| a.0 == b.0);
    let partner = audit::principal_name(principal);
    let policy_version = match principal {
        Principal::Admin => audit::BASE_POLICY_VERSION,
        Principal::Partner(_) => egress.policy().version.as_str(),
    };
    // One entry per collection, each with the digest of its own ids and versions.
    for run in named.chunk_by(|a, b| a.1.collection == b.1.collection) {
        let door = concord_egress::Door {
            door: "api-match-hits",
            partner: &partner,
            person: egress.person(),
            collection: &run[0].1.collection,
            policy_version,
        };
        let records: Vec<_> = run
            .iter()
            .map(|(id, s)| {
                door.record(
                    "egress",
                    s.vid,
                    id,
                    s.version.clone(),
                    "sent",
                    vec!["id only (match hit)".to_owned()],
                )
            })
            .collect();
        let digest = concord_egress::audit::transfer_digest(
            run.iter().map(|(id, s)| (*id, s.version.as_str(), None)),
        );
        egress.store().append_transfer(&records, Some(digest))?;
    }
    Ok(())
}

/// `POST /api/match` (issue 4): `{"collections": [C, …], "format": "lines" | "eve" | "zeek",
/// "lines": [L, …]}` — observables (one per line, format `lines`, the default) or log lines —
/// matched against the indicators of the collections the principal may read, valid now.
/// Answers `{"hits": [{"line", "indicator", "value", "path"}, …], "records": n,
/// "malformed": ["line N: why", …]}`. A partner matches only the indicators the egress
/// door lets it see.
///
/// The indicator set of (collections, principal) is compiled once and reused while the
/// collections are unchanged ([`matching::SetCache`], issue 16 item 2). Errors, as JSON
/// `{"error": …}` naming the field: 400 for a malformed request or one over the limits of
/// [`Limits`] (`collections`: 1 to `match_collections` distinct, repeats removed; `lines`:
/// `match_lines` lines, an entry holding newlines counting as that many, and `match_bytes`
/// bytes), 404 for a collection that does not exist or that it may not read (the same
/// answer), 413 over `max_content_length`, 503 with `Retry-After` when the set must be
/// compiled and `match_compile_queue` requests already wait for it.
async fn api_match(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    req: Request,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_owned();
    let (key, max) = BodyLimits::of(&state.config).max_for(&path);
    // The body is held to match_body_bytes (or max_content_length, the smaller) by
    // `limit_bodies`, and again here, for a router served without it: crossing it answers
    // 413 in /api/'s JSON, not axum's plain text, having buffered at most that many bytes.
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let body = match axum::body::to_bytes(req.into_body(), cap).await {
        Ok(b) => b,
        Err(e) if is_too_large(&e) => return Ok(too_large_named(&path, key, max)),
        Err(e) => return Err(bad_request(format!("reading the body: {e}"))),
    };
    let mut req: MatchRequest =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("request: {e}")))?;
    drop(body);
    req.check(&state.config.limits)?;
    let format: concord_match::Format = req
        .format
        .as_deref()
        .unwrap_or("lines")
        .parse()
        .map_err(|e| bad_request(format!("format: {e}")))?;
    if matches!(
        format,
        concord_match::Format::Json | concord_match::Format::Csv
    ) {
        return Err(bad_request(
            "format: json and csv need a field map; use lines, eve or zeek",
        ));
    }
    let store = state.store.clone();
    let egress = state.egress_for(&principal);
    let sets = state.match_sets.clone();
    let work = move || -> Result<Response, ApiError> {
        let internal =
            |e: &dyn std::fmt::Display| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let mut ids = Vec::new();
        for name in &req.collections {
            // Unknown and unreadable answer alike (404), as TAXII's collection endpoints do.
            let c = store
                .collection(name)
                .map_err(|e| internal(&e))?
                .filter(|c| principal.can_read(&c.id))
                .ok_or_else(|| {
                    ApiError(
                        StatusCode::NOT_FOUND,
                        format!("collections: no collection {name:?}"),
                    )
                })?;
            ids.push(c.id);
        }
        let audience = match &principal {
            Principal::Admin => matching::Audience::Operator,
            Principal::Partner(p) => matching::Audience::Partner(&p.profile),
        };
        let (set, _reused) = sets.get(&egress, &ids, &audience).map_err(|e| match e {
            matching::SetError::Egress(EgressError::Cancelled) | matching::SetError::Busy(_) => {
                ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            e => internal(&e),
        })?;
        let now = Timestamp::now_micros().unix_nanos();
        let mut matcher = concord_match::Matcher::new(&set.set, now).validity_at(now);
        let input = req.lines.join("\n").into_bytes();
        drop(req);
        let mut reader = concord_match::RecordReader::new(
            "request",
            Box::new(std::io::Cursor::new(input)),
            format,
            None,
        );
        let mut hits = Vec::new();
        let summary = concord_match::match_reader(&mut matcher, &mut reader, &mut |h| {
            hits.push(serde_json::json!({
                "line": h.line, "indicator": h.indicator, "value": h.value, "path": h.path,
            }))
        })
        .map_err(|e| bad_request(format!("lines: {e}")))?;
        let malformed: Vec<String> = reader.malformed().iter().map(|m| m.to_string()).collect();
        // What leaves is the ids of the indicators hit: one audit entry per collection for
        // this answer (door `api-match-hits`), appended before it is sent (issue 17).
        record_match_hits(&egress, &principal, &set, &hits).map_err(|e| internal(&e))?;
        let body = serde_json::json!({
            "hits": hits, "records": summary.records, "malformed": malformed,
        });
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response())
    };
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}
