//! Four-eyes release in the web UI (issue 20, item 3): `/ui/approvals` lists the changes
//! that widen a cross-border release and wait for a second releaser, each with a form to
//! approve (apply) or reject it.
//!
//! The forms call [`concord_coordination::release`], the same functions as `concord
//! approval approve|reject` and `/api/v1/approvals`: the approver must be another person
//! than the one who asked (the admin token is one person, `admin-token`), and an approval
//! applies the change in the transaction that records it, audited with both names. The
//! page and its forms are [`concord_server::roles::Operation::Release`]
//! ([`crate::users::operation_of`]); a partner's session gets the admin-only answer before
//! anything is looked up. Like every state-changing form they are POSTs under the
//! same-origin check and the `SameSite=Strict` session.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use concord_coordination::Node;
use concord_coordination::release::{self, Release, ReleaseError};
use concord_server::roles::Operation;
use concord_stix::Timestamp;
use concord_store::Approval;

use crate::{Viewer, Web, WebError, blocking, render};

pub(crate) fn routes(r: Router<Web>) -> Router<Web> {
    r.route("/ui/approvals", get(list))
        .route("/ui/approvals/{id}/approve", post(approve))
        .route("/ui/approvals/{id}/reject", post(reject))
}

/// How many pending approvals the page (and the dashboard's count) reads at most.
pub(crate) const LIMIT: usize = 500;

/// One pending approval as the page shows it.
struct Row {
    id: String,
    /// What it is about, as HTML in the viewer's language (arguments in `<bdi>`).
    subject: String,
    /// What it widens, one item each, as HTML in the viewer's language; for an approval
    /// asked before schema 22, its stored English summary (escaped).
    widens: Vec<String>,
    requested_by: String,
    requested_at: String,
    /// The viewer asked it: no approve button (the four-eyes rule), only withdraw.
    own: bool,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    c: crate::Chrome,
    rows: Vec<Row>,
    four_eyes: bool,
    /// The viewer counts as a person for four-eyes release (a named user, or the admin
    /// token with `[release] unnamed_persons`): else no approve button, a note why.
    may_approve: bool,
    /// What the last form did (`approved`, `rejected`), from the redirect.
    done: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct Done {
    done: Option<String>,
}

#[derive(serde::Deserialize)]
struct RejectForm {
    #[serde(default)]
    reason: String,
}

fn require_releaser(v: &Viewer) -> Result<(), WebError> {
    if v.session.may(Operation::Release) {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            v.tr.t("error-admin-only"),
        ))
    }
}

async fn page(
    web: &Web,
    v: &Viewer,
    done: Option<String>,
    error: Option<String>,
) -> Result<axum::response::Html<String>, WebError> {
    let store = web.store();
    let me = v.session.actor().audit_name();
    let pending: Vec<Approval> =
        blocking(move || release::pending_approvals(store.as_ref(), LIMIT).map_err(err)).await?;
    let rows = pending
        .into_iter()
        .map(|a| {
            let (subject, widens) = summary_html(v.tr, &a);
            Row {
                own: a.requested_by == me,
                requested_at: Timestamp::from_unix_nanos(a.requested_ns, 0).to_string(),
                subject,
                widens,
                id: a.id,
                requested_by: a.requested_by,
            }
        })
        .collect();
    render(&ApprovalsPage {
        c: v.chrome("approvals", v.tr.t("approvals-title")),
        rows,
        four_eyes: web.app.four_eyes(),
        may_approve: release::is_person(&v.session.actor().audit_name(), web.app.unnamed_persons()),
        done: done.filter(|d| d == "approved" || d == "rejected"),
        error,
    })
}

/// What approval `a` asks, in `tr`'s language, as HTML: its subject and what it widens,
/// one item each, rendered at display time from the structured request
/// ([`release::Request`]), so that each reader sees it in its own language with every
/// name, code and TLP label isolated in `<bdi>` (right to left correct). An approval asked
/// before schema 22 has only its English summary, shown escaped and isolated.
fn summary_html(tr: &crate::i18n::Locale, a: &Approval) -> (String, Vec<String>) {
    use crate::i18n::Arg;
    let Some(request) = release::Request::of(a) else {
        // Escaped and isolated as one argument is.
        return (
            crate::i18n::isolated_html(&format!("\u{2068}{}\u{2069}", a.summary)),
            Vec::new(),
        );
    };
    let subject = match a.kind.as_str() {
        "sharing" => "approval-subject-collection",
        "partner" => "approval-subject-partner",
        _ => "approval-subject-incident",
    };
    let subject = tr.html_args(subject, &[("name", Arg::from(&request.subject))]);
    let list_separator = tr.t("approval-list-separator");
    let items = request
        .widens
        .iter()
        .map(|w| {
            use release::Widening as W;
            let (key, args): (&str, Vec<(&str, Arg)>) = match w {
                W::Tlp {
                    partner,
                    jurisdiction,
                    tlp,
                    collection,
                }
                | W::Unmarked {
                    partner,
                    jurisdiction,
                    tlp,
                    collection,
                } => (
                    match (matches!(w, W::Tlp { .. }), collection.is_some()) {
                        (true, true) => "widens-tlp-from",
                        (true, false) => "widens-tlp",
                        (false, true) => "widens-unmarked-from",
                        (false, false) => "widens-unmarked",
                    },
                    vec![
                        ("partner", partner.into()),
                        ("jurisdiction", jurisdiction.into()),
                        ("tlp", tlp.into()),
                        ("collection", collection.clone().unwrap_or_default().into()),
                    ],
                ),
                W::Grant {
                    partner,
                    jurisdiction,
                    categories,
                    incident,
                } => (
                    "widens-grant",
                    vec![
                        ("partner", partner.into()),
                        ("jurisdiction", jurisdiction.into()),
                        ("categories", categories.join(&list_separator).into()),
                        ("incident", incident.into()),
                    ],
                ),
                W::Group {
                    partner,
                    jurisdiction,
                    group,
                } => (
                    "widens-group",
                    vec![
                        ("partner", partner.into()),
                        ("jurisdiction", jurisdiction.into()),
                        ("group", group.into()),
                    ],
                ),
                W::Domestic { partner, from, to } => (
                    "widens-domestic",
                    vec![
                        ("partner", partner.into()),
                        ("from", from.into()),
                        ("to", to.into()),
                    ],
                ),
                W::PersonalData {
                    partner,
                    jurisdiction,
                    category,
                    from,
                    to,
                } => (
                    "widens-personal-data",
                    vec![
                        ("partner", partner.into()),
                        ("jurisdiction", jurisdiction.into()),
                        ("category", category.into()),
                        ("from", from.into()),
                        ("to", to.into()),
                    ],
                ),
                W::Agreement {
                    partner,
                    jurisdiction,
                    from,
                    to,
                } => match to {
                    Some(to) => (
                        "widens-agreement",
                        vec![
                            ("partner", partner.into()),
                            ("jurisdiction", jurisdiction.into()),
                            ("from", from.into()),
                            ("to", to.into()),
                        ],
                    ),
                    None => (
                        "widens-agreement-none",
                        vec![
                            ("partner", partner.into()),
                            ("jurisdiction", jurisdiction.into()),
                            ("from", from.into()),
                        ],
                    ),
                },
                W::Pseudonyms {
                    partner,
                    jurisdiction,
                    group,
                    collection,
                } => (
                    "widens-pseudonyms",
                    vec![
                        ("partner", partner.into()),
                        ("jurisdiction", jurisdiction.into()),
                        ("group", group.into()),
                        ("collection", collection.into()),
                    ],
                ),
            };
            tr.html_args(key, &args)
        })
        .collect();
    (subject, items)
}

async fn list(
    State(web): State<Web>,
    v: Viewer,
    Query(q): Query<Done>,
) -> Result<axum::response::Html<String>, WebError> {
    require_releaser(&v)?;
    page(&web, &v, q.done, None).await
}

fn err(e: ReleaseError) -> WebError {
    let status = match &e {
        ReleaseError::FourEyes(_) => StatusCode::FORBIDDEN,
        ReleaseError::NotFound(_) => StatusCode::NOT_FOUND,
        ReleaseError::Decided(_) | ReleaseError::Stale(_) => StatusCode::CONFLICT,
        ReleaseError::Refused(_) | ReleaseError::Desk(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "web UI: approval");
    }
    WebError::new(status, e.to_string())
}

/// Decides on approval `id` (approve, or reject with `reason`) as the viewer; then the list
/// again (303), or the list with the refusal (its status: 403 the four-eyes rule, 404, 409).
async fn decide(
    web: Web,
    v: Viewer,
    id: String,
    reject: Option<String>,
) -> Result<Response, WebError> {
    require_releaser(&v)?;
    let store = web.store();
    let person = v.session.actor().audit_name();
    let four_eyes = web.app.four_eyes();
    let unnamed_persons = web.app.unnamed_persons();
    let policy = web.app.policy();
    let config = web.app.config();
    let (title, max_object_size) = (config.title.clone(), config.ingress.max_object_size);
    let approving = reject.is_none();
    let result = blocking(move || {
        let r = Release {
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
        Ok(match &reject {
            None => release::approve(&r, &node, &id),
            Some(reason) => {
                let reason = reason.trim();
                release::reject(&r, &id, (!reason.is_empty()).then_some(reason))
            }
        })
    })
    .await?;
    match result {
        Ok(_) => Ok(Redirect::to(if approving {
            "/ui/approvals?done=approved"
        } else {
            "/ui/approvals?done=rejected"
        })
        .into_response()),
        Err(e) => {
            let e = err(e);
            if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                return Err(e);
            }
            let shown = page(&web, &v, None, Some(e.message.clone())).await?;
            Ok((e.status, shown).into_response())
        }
    }
}

async fn approve(
    State(web): State<Web>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    decide(web, v, id, None).await
}

async fn reject(
    State(web): State<Web>,
    v: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RejectForm>,
) -> Result<Response, WebError> {
    decide(web, v, id, Some(form.reason)).await
}
