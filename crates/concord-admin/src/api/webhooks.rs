//! Webhooks in the admin API (issue 23, item 1; issue 21, item 2): list, show, add, remove
//! and retry, as `concord webhook … --json` prints and does them, through the same
//! functions ([`crate::ops::webhooks`]).
//!
//! A webhook's HMAC key is handed to its receiver, so it is a secret of the node's as a
//! peer's token is, and handled the same way ([`ops::PeerFiles`]): the key file is inside
//! `peer_files_dir` and none of the node's own secret files, or the key comes inline
//! (`secret`, write-only) and is written to a file there. No answer carries a key: a
//! webhook is answered with its key file's path.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Admin, ApiError, ApiResult, Body, Name, blocking, changed};
use crate::ops::{self, webhooks};

/// The webhook routes, added to the API's router.
pub(super) fn routes(router: OpenApiRouter<Admin>) -> OpenApiRouter<Admin> {
    router
        .routes(routes!(list_webhooks, add_webhook))
        .routes(routes!(show_webhook, remove_webhook))
        .routes(routes!(retry_webhook))
}

/// A webhook as stored (`concord webhook add --json`, one entry of `list --json`).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the answer is concord_sync's record, serialised
pub(super) struct WebhookDoc {
    /// Its name.
    name: String,
    /// The receiver's URL.
    url: String,
    /// The path of its HMAC key file (never the key).
    secret_file: String,
    /// The partner whose egress policy applies; `null`: the operator's webhook.
    partner: Option<String>,
    /// Collection ids followed; empty: every collection (the partner's readable ones).
    collections: Vec<String>,
    /// STIX types sent; empty: every type.
    types: Vec<String>,
    /// Only objects added after this instant are sent (ns since the Unix epoch).
    since_ns: i64,
    /// This configuration's generation (a UUID, new at each add).
    generation: String,
    /// The partner's API key id when the webhook was added (not the key).
    partner_key: Option<String>,
}

/// What a retry did (`concord webhook retry --json`).
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: the answer is concord_sync's report, serialised
pub(super) struct RetryDoc {
    /// Dead letters delivered (and removed): their delivery ids.
    delivered: Vec<String>,
    /// Dead letters that failed again (kept): `[delivery id, error]`.
    #[schema(value_type = Vec<Vec<String>>)]
    failed: Vec<(String, String)>,
}

/// Every webhook, by name (`concord webhook list --json`).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, description = "The webhooks", body = Vec<WebhookDoc>)))]
async fn list_webhooks(State(a): State<Admin>) -> ApiResult<Json<Value>> {
    let store = a.store();
    let hooks = blocking(move || webhooks::list_webhooks(store.as_ref())).await?;
    Ok(Json(json_of(&hooks)?))
}

fn json_of<T: serde::Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::new(500, "internal", e.to_string()))
}

/// Adds (or replaces: a new generation) a webhook (`concord webhook add`): objects added
/// from now on are POSTed, signed with its key, to its URL. The key file is inside the
/// node's `peer_files_dir` (relative to it, or absolute) and none of the node's own secret
/// files; or the key comes inline (`secret`), written to a file there. The key is never
/// answered back, only its file's path.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks",
    request_body = webhooks::NewWebhook,
    responses(
        (status = 201, description = "Stored", body = WebhookDoc),
        (status = 400, description = "A field breaks a rule (named)", body = ApiError),
        (status = 404, description = "The partner or a collection named does not exist", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn add_webhook(
    State(a): State<Admin>,
    Body(new): Body<webhooks::NewWebhook>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(dir) = a.config.peer_files_dir.clone() else {
        return Err(ApiError::invalid(
            "secret_file and secret: this node has no peer_files_dir; add the webhook with \
             `concord webhook add`",
        ));
    };
    let files = ops::PeerFiles {
        within: Some(dir),
        refused: a.config.own_files.clone(),
    };
    let store = a.store();
    let hook =
        blocking(move || webhooks::add_webhook(store.as_ref(), &new, &files, webhooks::json_names))
            .await?;
    changed("webhook-add", &hook.name);
    Ok((StatusCode::CREATED, Json(json_of(&hook)?)))
}

/// One webhook with its progress: configuration, cursors, last success and error, queue,
/// dead letters (`concord webhook show --json`).
#[utoipa::path(get, path = "/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "The webhook's name")),
    responses(
        (status = 200, description = "The webhook (`webhook`, `cursors`, `last_success`, `last_error`, `delivered`, `attempts`, `queue`, `dead_letters`)", body = Object),
        (status = 404, description = "No such webhook", body = ApiError),
    ))]
async fn show_webhook(State(a): State<Admin>, Name(name): Name) -> ApiResult<Json<Value>> {
    let store = a.store();
    Ok(Json(
        blocking(move || webhooks::show_webhook(store.as_ref(), &name)).await?,
    ))
}

/// Removes a webhook: nothing more is sent to it, its queue and dead letters are forgotten
/// (`concord webhook remove`).
#[utoipa::path(delete, path = "/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "The webhook's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such webhook", body = ApiError),
    ))]
async fn remove_webhook(State(a): State<Admin>, Name(name): Name) -> ApiResult<StatusCode> {
    let store = a.store();
    let n = name.clone();
    blocking(move || webhooks::remove_webhook(store.as_ref(), &n)).await?;
    changed("webhook-remove", &name);
    Ok(StatusCode::NO_CONTENT)
}

/// POSTs each dead letter of a webhook once, oldest first; those answered 2xx are removed
/// (`concord webhook retry --json`). Answered 200 whether or not some failed again (the
/// CLI's exit status 1): `failed` names them.
#[utoipa::path(post, path = "/webhooks/{name}/retry", tag = "webhooks",
    params(("name" = String, Path, description = "The webhook's name")),
    responses(
        (status = 200, description = "What was delivered and what failed again", body = RetryDoc),
        (status = 404, description = "No such webhook", body = ApiError),
    ))]
async fn retry_webhook(State(a): State<Admin>, Name(name): Name) -> ApiResult<Json<Value>> {
    let Some(opts) = a.config.webhook_options.clone() else {
        return Err(ApiError::invalid(
            "this node's admin API has no [webhooks] limits; retry with `concord webhook retry`",
        ));
    };
    let store = a.store();
    let n = name.clone();
    let report = blocking(move || webhooks::retry_webhook(store.as_ref(), &n, &opts)).await?;
    changed("webhook-retry", &name);
    Ok(Json(json_of(&report)?))
}
