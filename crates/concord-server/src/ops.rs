//! Operating a node (issue 23, items 2 and 3): `/healthz`, `/readyz`, `/metrics`, and what
//! every request leaves behind (a metric and one log line).
//!
//! - `GET /healthz`: 200 while the process answers. No credentials: it says nothing else.
//! - `GET /readyz`: 200 when the database answers a read, 503 when it does not (the cause
//!   in the log, not in the public answer). The store migrates when it opens, so a node that answers is migrated.
//! - `GET /metrics`: the Prometheus text exposition format (version 0.0.4), for the admin
//!   token only (`Authorization: Bearer …`; a partner gets exactly what a path that does not
//!   exist gives it, since counts of what was served and withheld are the node's own
//!   business).
//!
//! Libraries record through the `metrics` facade; this module installs the one recorder
//! of the process and renders it. The metrics:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `concord_http_requests_total` | counter | `route`, `method`, `status` | requests answered; `route` is the route template (`/concord/collections/{collection}/objects/`), `unmatched` for no route |
//! | `concord_http_request_duration_seconds` | histogram | `route` | time to the response head |
//! | `concord_egress_objects_total` | counter | `door`, `decision` | object versions decided at the egress door: `sent`, `rewritten`, `withheld` |
//! | `concord_audit_records_total` | counter | — | audit records appended by the egress door |
//! | `concord_ingest_objects_total` | counter | `door`, `result` | object versions a POST or web import brought: `added`, `already-present` |
//! | `concord_sync_rounds_total` | counter | `peer`, `outcome` | sync rounds run by `serve`'s scheduler: `ok`, `failed` |
//! | `concord_sync_objects_total` | counter | `peer`, `direction` | object versions `pulled` (added) and `pushed` |
//! | `concord_sync_last_success_timestamp_seconds` | gauge | `peer` | Unix time of the last successful round: the lag is `time() - it` |

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{AppState, Principal};

/// Upper bounds of the request-duration buckets, seconds: from a cached discovery answer
/// (under a millisecond) to a 10,000-object page.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics recorder, installed on first use. When another recorder holds the
/// global slot (a test harness), a local one answers instead: `/metrics` then renders what
/// it recorded, nothing.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("concord_http_request_duration_seconds".into()),
                    &DURATION_BUCKETS,
                )
                .expect("the buckets are not empty")
        };
        builder()
            .install_recorder()
            .unwrap_or_else(|_| builder().build_recorder().handle())
    })
}

/// The routes of this module, outside the TAXII gate (they negotiate no TAXII media type).
pub(crate) fn routes(state: AppState) -> Router {
    // The recorder is in place before the first request records anything.
    metrics_handle();
    // Every method is taken here, and any but GET and HEAD answers as on a path that does
    // not exist (401 without credentials, else the TAXII 404 or 406): a 405, with its
    // `Allow`, would tell these routes apart.
    Router::new()
        .route("/healthz", axum::routing::any(healthz))
        .route("/readyz", axum::routing::any(readyz))
        .route("/metrics", axum::routing::any(scrape))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            only_get,
        ))
        .with_state(state)
}

async fn only_get(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        next.run(req).await
    } else {
        wrong_method(State(state), req).await
    }
}

async fn wrong_method(State(state): State<AppState>, req: Request) -> Response {
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match state
        .auth
        .authenticate(
            authz,
            crate::peer_ip(req.extensions()),
            crate::mtls::client_cert_sha256(req.extensions()),
        )
        .await
    {
        Ok(Some(_)) => crate::no_such_resource(accept),
        Ok(None) => unauthenticated(authz.is_some()),
        Err(e) => crate::auth_error_response(&e),
    }
}

/// 401 for a request without credentials or with wrong ones: the TAXII gate's answer,
/// these routes' and the admin API's.
pub fn unauthenticated(had_credentials: bool) -> Response {
    crate::error_response(concord_taxii::TaxiiError::new(
        concord_taxii::ErrorCode::Unauthorized,
        if had_credentials {
            "invalid credentials"
        } else {
            "credentials required"
        },
    ))
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || store.collections().map(|c| c.len())).await;
    let (status, body) = match read {
        Ok(Ok(_)) => (StatusCode::OK, serde_json::json!({"ready": true})),
        // The cause goes to the log: the answer is public, and a database error may name
        // paths and hosts.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"ready": false, "cause": "the database does not answer (see the node's log)"}),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "readyz: worker failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"ready": false, "cause": "the node cannot check its database (see its log)"}),
            )
        }
    };
    (status, axum::Json(body)).into_response()
}

async fn scrape(State(state): State<AppState>, req: Request) -> Response {
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let source = crate::peer_ip(req.extensions());
    let cert = crate::mtls::client_cert_sha256(req.extensions());
    match state.auth.authenticate(authz, source, cert).await {
        Ok(Some(Principal::Admin)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics_handle().render(),
        )
            .into_response(),
        Ok(Some(Principal::Partner(_))) => crate::no_such_resource(
            req.headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        ),
        Ok(None) => unauthenticated(authz.is_some()),
        Err(e) => crate::auth_error_response(&e),
    }
}

/// What the inner layer learns once the request is routed and authenticated, carried out
/// to [`observe`]'s outer layer on the response.
#[derive(Clone)]
struct Seen {
    route: MatchedPath,
    principal: Option<String>,
}

/// Wraps the whole app (TAXII, `/api/`, the web UI): every request is counted
/// (`concord_http_requests_total`), timed (`concord_http_request_duration_seconds`), given
/// an `X-Request-Id` (a UUID, or the client's own when it sent one of at most 64 visible
/// ASCII characters) and logged as one line at `info` under the target `concord::request`
/// with its request id, method, route template, status, principal and duration. Apply it
/// after every `merge`, so that it sees every route.
pub fn observe(app: Router) -> Router {
    app.route_layer(axum::middleware::from_fn(tag))
        .layer(axum::middleware::from_fn(track))
}

/// Inner: the route template and the principal, known only inside the router.
async fn tag(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    // A router served as one route (the admin API behind its gate) names its own, finer
    // template on the response.
    let route = res.extensions_mut().remove::<MatchedPath>().or(route);
    if let Some(route) = route {
        // The gate runs inside this layer; what it decided travels on the response.
        let principal = res
            .extensions()
            .get::<Principal>()
            .map(crate::audit::principal_name);
        res.extensions_mut().insert(Seen { route, principal });
    }
    res
}

/// The method as a label: the methods the node answers, `other` for the rest.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Outer: counts, times and logs every request, routed or not.
async fn track(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let mut res = next.run(req).await;
    let elapsed = start.elapsed();
    let seen = res.extensions().get::<Seen>().cloned();
    let route = seen
        .as_ref()
        .map_or("unmatched", |s| s.route.as_str())
        .to_owned();
    let status = res.status().as_u16();
    // A fixed set of labels, whatever method a client invents (any token is a method to
    // HTTP): one series each, not one per request.
    let method = method_label(&method);
    metrics::counter!(
        "concord_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("concord_http_request_duration_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "concord::request",
        request_id = %id,
        method,
        route = %route,
        status,
        principal = seen.as_ref().and_then(|s| s.principal.as_deref()).unwrap_or("-"),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}
