//! Four-eyes release in the admin API (issue 20, item 3): the approvals waiting for a
//! second releaser, and approving or rejecting one, as `concord approval … --json` prints
//! and does them, through the same functions ([`crate::ops::approve`], …).
//!
//! Who may call them is the role table's (`Operation::Release`, checked before routing by
//! [`crate::users::api_operation`]); that the approver is not the person who asked is the
//! four-eyes rule's, answered `403 forbidden` naming it, as is an approval by the admin
//! token unless `[release] unnamed_persons` makes it a person (`admin-token`). An approval
//! whose partner changed since the request so that it would widen something else answers
//! `409 conflict`, naming what differs.

use axum::Json;
use axum::extract::State;
use concord_coordination::Node;
use concord_coordination::release::Release;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Acting, Admin, ApiError, ApiResult, Body, Name, Params, changed};
use crate::ops::{self, AdminError, ApprovalInfo};

/// The approval routes, added to the API's router.
pub(super) fn routes(router: OpenApiRouter<Admin>) -> OpenApiRouter<Admin> {
    router
        .routes(routes!(list_approvals))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// Which approvals to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// `pending` (default), `approved`, `rejected` or `all`.
    #[param(inline)]
    status: Option<StatusFilter>,
}

/// An approval's status, or `all`.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum StatusFilter {
    /// Waiting for a second releaser.
    Pending,
    /// Approved and applied.
    Approved,
    /// Rejected (or withdrawn): nothing applied.
    Rejected,
    /// Every approval.
    All,
}

/// A rejection's reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rejection {
    /// Why (optional), kept with the approval.
    #[serde(default)]
    reason: Option<String>,
}

/// How many approvals a list shows at most.
const LIST_LIMIT: usize = 1000;

/// The approvals of a status, oldest first (`concord approval list`).
#[utoipa::path(get, path = "/approvals", tag = "approvals",
    params(ListQuery),
    responses(
        (status = 200, description = "The approvals", body = Vec<ApprovalInfo>),
        (status = 400, description = "A status that is none of the four", body = ApiError),
    ))]
async fn list_approvals(
    State(a): State<Admin>,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Vec<ApprovalInfo>>> {
    let store = a.store();
    let status = match q.status.unwrap_or(StatusFilter::Pending) {
        StatusFilter::Pending => Some("pending"),
        StatusFilter::Approved => Some("approved"),
        StatusFilter::Rejected => Some("rejected"),
        StatusFilter::All => None,
    };
    Ok(Json(
        super::blocking(move || ops::list_approvals(store.as_ref(), status, LIST_LIMIT)).await?,
    ))
}

/// Runs `f` off the async threads with the release context of the request: the store,
/// `[release] four_eyes` and `unnamed_persons`, the policy and who acts.
pub(super) async fn on_release<T: Send + 'static>(
    a: &Admin,
    acting: &Acting,
    f: impl FnOnce(&Release<'_>, &Node<'_>) -> Result<T, AdminError> + Send + 'static,
) -> ApiResult<T> {
    let store = a.store();
    let four_eyes = a.state.four_eyes();
    let unnamed_persons = a.state.unnamed_persons();
    let policy = a.state.policy();
    let config = a.state.config();
    let title = config.title.clone();
    let max_object_size = config.ingress.max_object_size;
    let person = acting.0.audit_name();
    super::blocking(move || {
        let release = Release {
            store: store.as_ref(),
            four_eyes,
            unnamed_persons,
            policy: &policy,
            person: &person,
        };
        let node = Node {
            store: store.as_ref(),
            max_object_size,
            title: &title,
            jurisdiction: policy.config.jurisdiction.as_deref(),
            person: Some(&person),
        };
        f(&release, &node)
    })
    .await
}

/// Approves a pending approval and applies its change, in one transaction, with an audit
/// entry naming the requester and the approver (`concord approval approve`).
#[utoipa::path(post, path = "/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    responses(
        (status = 200, description = "Approved and applied", body = ApprovalInfo),
        (status = 403, description = "The four-eyes rule: the approver asked it, or is no named person", body = ApiError),
        (status = 404, description = "No such approval", body = ApiError),
        (status = 409, description = "Decided already, or the partner changed since the request", body = ApiError),
    ))]
async fn approve(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
) -> ApiResult<Json<ApprovalInfo>> {
    let i = id.clone();
    let done = on_release(&a, &acting, move |r, node| ops::approve(r, node, &i)).await?;
    changed("approval-approve", &id);
    Ok(Json(done))
}

/// Rejects a pending approval: nothing is applied (`concord approval reject`).
#[utoipa::path(post, path = "/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "The approval's id")),
    request_body = Rejection,
    responses(
        (status = 200, description = "Rejected", body = ApprovalInfo),
        (status = 404, description = "No such approval", body = ApiError),
        (status = 409, description = "Decided already", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn reject(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
    Body(r): Body<Rejection>,
) -> ApiResult<Json<ApprovalInfo>> {
    let i = id.clone();
    let done = on_release(&a, &acting, move |rel, _| {
        ops::reject(rel, &i, r.reason.as_deref())
    })
    .await?;
    changed("approval-reject", &id);
    Ok(Json(done))
}
