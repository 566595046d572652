//! Incident pages, the admin's only (issue 18, item 5): the board (open incidents; every
//! request of an open incident by status, overdue first), an incident's page with its
//! timeline (opened, requests, answers, events, closed: who and when), and the forms to open
//! an incident, request assistance from a partner and respond to a request addressed to
//! this node.
//!
//! The forms call the operations of [`concord_coordination`], the same functions as
//! `concord incident open|request|respond`, so what they write is validated, addressed and
//! audited exactly as from the command line (doors `incident-open`, `incident-request`,
//! `incident-respond`, by the `operator`). Like every state-changing form of the UI they are
//! POSTs under the same-origin check and the `SameSite=Strict` session; a partner's session
//! gets the admin-only answer before anything is looked up, so it is the same whether the
//! incident exists or not.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use concord_coordination::{DeskError, Node, Tracked, Way};
use concord_stix::Timestamp;
use concord_store::Store;

use crate::{Viewer, Web, WebError, blocking, render};

pub(crate) fn routes(r: Router<Web>) -> Router<Web> {
    r.route("/ui/incidents", get(board).post(open))
        .route("/ui/incidents/{id}", get(incident))
        .route("/ui/incidents/{id}/request", post(request))
        .route("/ui/incidents/{id}/respond", post(respond))
}

/// The order of a request's statuses on the board, after the overdue ones.
const STATUS_ORDER: [&str; 5] = ["pending", "acknowledged", "accepted", "declined", "done"];

pub(crate) fn status_rank(status: &str) -> usize {
    STATUS_ORDER
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUS_ORDER.len())
}

impl From<DeskError> for WebError {
    fn from(e: DeskError) -> WebError {
        match e {
            DeskError::Refused(m) | DeskError::NotFound(m) => WebError::bad_request(m.to_string()),
            e => {
                tracing::error!(error = %e, "incident operation failed in the web UI");
                WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// The node as the operations need it: the store, `max_object_size`, title and
/// jurisdiction (the same values `concord incident` reads from concord.toml and the store).
fn with_node<T>(
    web: &Web,
    store: &dyn Store,
    person: &str,
    f: impl FnOnce(&Node<'_>) -> Result<T, DeskError>,
) -> Result<T, DeskError> {
    let config = web.app.config();
    let jurisdiction = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
    let node = Node {
        store,
        max_object_size: config.ingress.max_object_size,
        title: &config.title,
        jurisdiction: jurisdiction.as_deref(),
        person: Some(person),
    };
    f(&node)
}

// --- board ------------------------------------------------------------------------------

/// One open incident on the board.
pub(crate) struct IncidentRow {
    id: String,
    title: String,
    criticality: String,
    affects: String,
    opened_by: String,
    created: String,
    requests: usize,
    overdue: usize,
}

/// One request on the board.
pub(crate) struct RequestRow {
    pub(crate) incident_id: String,
    pub(crate) incident_title: String,
    pub(crate) id: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) status: String,
    pub(crate) deadline: String,
    pub(crate) overdue: bool,
    pub(crate) incoming: bool,
    pub(crate) ask: String,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct BoardPage {
    c: crate::Chrome,
    incidents: Vec<IncidentRow>,
    requests: Vec<RequestRow>,
    /// (status, count) for each status that has requests.
    counts: Vec<(String, usize)>,
    form: OpenForm,
    error: Option<String>,
}

impl BoardPage {
    fn status_label(&self, s: &str) -> String {
        self.c.tr.t(&format!("incident-status-{s}"))
    }
}

/// The board's rows: open incidents newest first; their requests, overdue first, then by
/// status (pending, acknowledged, accepted, declined, done), then by deadline.
pub(crate) fn board_rows(
    all: &[Tracked],
) -> (Vec<IncidentRow>, Vec<RequestRow>, Vec<(String, usize)>) {
    let mut incidents = Vec::new();
    let mut requests = Vec::new();
    for t in all.iter().filter(|t| t.state.incident.status == "open") {
        let i = &t.state.incident;
        incidents.push(IncidentRow {
            id: i.id.clone(),
            title: i.title.clone(),
            criticality: i.criticality.map(|c| c.to_string()).unwrap_or_default(),
            affects: i.affects.join(", "),
            opened_by: t.state.opened_by.clone(),
            created: i.created.clone(),
            requests: t.state.tasks.len(),
            overdue: t.state.tasks.iter().filter(|r| r.overdue).count(),
        });
        for (r, way) in t.state.tasks.iter().zip(&t.ways) {
            requests.push(RequestRow {
                incident_id: i.id.clone(),
                incident_title: i.title.clone(),
                id: r.id.clone(),
                from: r.from.clone(),
                to: r.to.clone(),
                status: r.status.clone(),
                deadline: r.deadline.clone(),
                overdue: r.overdue,
                incoming: matches!(way, Way::Incoming { .. }),
                ask: r.ask.clone(),
            });
        }
    }
    let when = |s: &str| {
        Timestamp::parse(s)
            .map(|t| t.sort_key())
            .unwrap_or_default()
    };
    requests.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then(status_rank(&a.status).cmp(&status_rank(&b.status)))
            .then(when(&a.deadline).cmp(&when(&b.deadline)))
    });
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in &requests {
        match counts.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.status.clone(), 1)),
        }
    }
    counts.sort_by_key(|(s, _)| status_rank(s));
    (incidents, requests, counts)
}

/// What the open form holds (kept when it is refused).
#[derive(serde::Deserialize, Default)]
struct OpenForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    collection: String,
    /// Countries, separated by commas or spaces.
    #[serde(default)]
    affects: String,
}

async fn board_page(
    web: &Web,
    v: &Viewer,
    form: OpenForm,
    error: Option<String>,
) -> Result<Html, WebError> {
    let store = web.store();
    let all = blocking(move || {
        Ok(concord_coordination::board(
            store.as_ref(),
            &Timestamp::now_micros(),
        )?)
    })
    .await?;
    let (incidents, requests, counts) = board_rows(&all);
    render(&BoardPage {
        c: v.chrome("incidents", v.tr.t("incidents-title")),
        incidents,
        requests,
        counts,
        form,
        error,
    })
}

type Html = axum::response::Html<String>;

async fn board(State(web): State<Web>, v: Viewer) -> Result<Html, WebError> {
    v.require_admin()?;
    board_page(
        &web,
        &v,
        OpenForm {
            collection: concord_coordination::DEFAULT_COLLECTION.to_owned(),
            ..OpenForm::default()
        },
        None,
    )
    .await
}

fn optional(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// `POST /ui/incidents`: opens an incident, then shows its page (303); refused input shows
/// the board again with the form as filled and the error (400).
async fn open(
    State(web): State<Web>,
    v: Viewer,
    axum::Form(form): axum::Form<OpenForm>,
) -> Result<Response, WebError> {
    v.require_admin()?;
    let store = web.store();
    let w = web.clone();
    let (title, description, severity, collection, affects) = (
        form.title.clone(),
        form.description.clone(),
        form.severity.clone(),
        form.collection.clone(),
        form.affects.clone(),
    );
    let person = v.session.actor().audit_name();
    let result = blocking(move || {
        let affects: Vec<String> = affects
            .split([',', ' '])
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        let collection = optional(&collection).unwrap_or(concord_coordination::DEFAULT_COLLECTION);
        Ok(with_node(&w, store.as_ref(), &person, |node| {
            concord_coordination::open(
                node,
                &concord_coordination::OpenInput {
                    title: title.trim(),
                    description: optional(&description),
                    severity: optional(&severity),
                    collection,
                    affects: &affects,
                },
                &Timestamp::now_micros(),
            )
        }))
    })
    .await?;
    match result {
        Ok(o) => Ok(
            Redirect::to(&format!("/ui/incidents/{}", crate::url_encode(&o.id))).into_response(),
        ),
        Err(DeskError::Refused(m) | DeskError::NotFound(m)) => {
            let page = board_page(&web, &v, form, Some(m.to_string())).await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// --- incident page ----------------------------------------------------------------------

/// One entry of the timeline.
struct Entry {
    /// When (RFC 3339).
    at: String,
    /// Who: an identity's name (or id), or the partner asked.
    who: String,
    /// `opened`, `request`, `answer`, `event`, `closed`.
    kind: &'static str,
    /// The text: what is asked, the status given, the event's name.
    what: String,
    /// The answer's status, the event's status.
    status: String,
    /// The reason or outcome.
    note: String,
    /// For a request: to whom, and the deadline.
    to: String,
    deadline: String,
    overdue: bool,
    /// The request or answer's id.
    id: String,
}

/// A request this node was asked, with the form to answer it.
struct Incoming {
    id: String,
    from: String,
    ask: String,
    status: String,
    settled: bool,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    c: crate::Chrome,
    t: Tracked,
    timeline: Vec<Entry>,
    incoming: Vec<Incoming>,
    partners: Vec<String>,
    error: Option<String>,
}

impl IncidentPage {
    fn status_label(&self, s: &str) -> String {
        self.c.tr.t(&format!("incident-status-{s}"))
    }
}

/// The timeline of an incident: opened, each request, each answer (per answering node its
/// latest status), each event, closed; oldest first.
fn timeline(t: &Tracked) -> Vec<Entry> {
    let s = &t.state;
    let i = &s.incident;
    let blank = |at: &str, who: &str, kind: &'static str| Entry {
        at: at.to_owned(),
        who: who.to_owned(),
        kind,
        what: String::new(),
        status: String::new(),
        note: String::new(),
        to: String::new(),
        deadline: String::new(),
        overdue: false,
        id: String::new(),
    };
    let mut out = vec![Entry {
        what: i.title.clone(),
        id: i.id.clone(),
        ..blank(&i.created, &s.opened_by, "opened")
    }];
    for r in &s.tasks {
        out.push(Entry {
            what: r.ask.clone(),
            status: r.status.clone(),
            to: r.to.clone(),
            deadline: r.deadline.clone(),
            overdue: r.overdue,
            id: r.id.clone(),
            ..blank(&r.created, &r.from, "request")
        });
        for a in &r.answers {
            out.push(Entry {
                what: r.id.clone(),
                status: a.status.as_str().to_owned(),
                note: a.note.clone().unwrap_or_default(),
                id: a.id.clone(),
                ..blank(&a.at, &a.by, "answer")
            });
        }
    }
    for e in &s.events {
        out.push(Entry {
            what: e.name.clone(),
            status: e.status.clone(),
            id: e.id.clone(),
            ..blank(e.start_time.as_deref().unwrap_or(&i.created), "", "event")
        });
    }
    if i.status == "closed" {
        out.push(Entry {
            note: i.outcome.clone().unwrap_or_default(),
            ..blank(&i.modified, &s.opened_by, "closed")
        });
    }
    let when = |s: &str| {
        Timestamp::parse(s)
            .map(|t| t.sort_key())
            .unwrap_or_default()
    };
    out.sort_by_key(|e| when(&e.at));
    out
}

async fn incident_page(
    web: &Web,
    v: &Viewer,
    id: String,
    error: Option<String>,
) -> Result<Html, WebError> {
    let store = web.store();
    let tr = v.tr;
    let (t, partners) = blocking(move || {
        let all = concord_coordination::board(store.as_ref(), &Timestamp::now_micros())?;
        let Some(t) = all.into_iter().find(|t| t.state.incident.id == id) else {
            return Err(WebError::not_found(tr.t1(
                "incident-none",
                "id",
                id.as_str(),
            )));
        };
        let partners = store.partners()?.into_iter().map(|p| p.name).collect();
        Ok((t, partners))
    })
    .await?;
    let incoming = t
        .state
        .tasks
        .iter()
        .zip(&t.ways)
        .filter(|(_, w)| matches!(w, Way::Incoming { .. }))
        .map(|(r, _)| Incoming {
            id: r.id.clone(),
            from: r.from.clone(),
            ask: r.ask.clone(),
            status: r.status.clone(),
            settled: matches!(r.status.as_str(), "declined" | "done"),
        })
        .collect();
    render(&IncidentPage {
        c: v.chrome("incidents", t.state.incident.title.clone()),
        timeline: timeline(&t),
        incoming,
        partners,
        error,
        t,
    })
}

async fn incident(
    State(web): State<Web>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Html, WebError> {
    v.require_admin()?;
    incident_page(&web, &v, id, None).await
}

/// A deadline as the form sends it: a browser's `datetime-local` value (`2026-12-08T12:00`,
/// read as UTC, the zone the form names) becomes RFC 3339 in UTC; anything else is passed
/// on as written, for the one check of [`concord_incident::parse_deadline`].
fn deadline_utc(s: &str) -> String {
    let s = s.trim();
    let b = s.as_bytes();
    let local = |n: usize| b.len() == n && b[10] == b'T' && !s.ends_with('Z');
    if local(16) {
        format!("{s}:00Z")
    } else if local(19) {
        format!("{s}Z")
    } else {
        s.to_owned()
    }
}

#[derive(serde::Deserialize)]
struct RequestForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    ask: String,
    #[serde(default)]
    deadline: String,
    #[serde(default)]
    priority: String,
}

/// After a form on the incident page: back to the page (303), or the page with the error
/// (400) when the input was refused.
async fn after(
    web: &Web,
    v: &Viewer,
    id: String,
    result: Result<(), DeskError>,
) -> Result<Response, WebError> {
    match result {
        Ok(()) => {
            Ok(Redirect::to(&format!("/ui/incidents/{}", crate::url_encode(&id))).into_response())
        }
        Err(DeskError::Refused(m) | DeskError::NotFound(m)) => {
            let page = incident_page(web, v, id, Some(m.to_string())).await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /ui/incidents/{id}/request`: asks a partner for assistance (`concord incident
/// request`).
async fn request(
    State(web): State<Web>,
    v: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RequestForm>,
) -> Result<Response, WebError> {
    v.require_admin()?;
    let store = web.store();
    let (w, incident) = (web.clone(), id.clone());
    let person = v.session.actor().audit_name();
    let result = blocking(move || {
        let deadline = deadline_utc(&form.deadline);
        Ok(with_node(&w, store.as_ref(), &person, |node| {
            concord_coordination::request(
                node,
                &concord_coordination::RequestInput {
                    incident: &incident,
                    to: form.to.trim(),
                    ask: form.ask.trim(),
                    deadline: &deadline,
                    priority: optional(&form.priority),
                },
                &Timestamp::now_micros(),
            )
            .map(|_| ())
        }))
    })
    .await?;
    after(&web, &v, id, result).await
}

#[derive(serde::Deserialize)]
struct RespondForm {
    #[serde(default)]
    task: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    note: String,
}

/// `POST /ui/incidents/{id}/respond`: answers a request addressed to this node (`concord
/// incident respond`).
async fn respond(
    State(web): State<Web>,
    v: Viewer,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<RespondForm>,
) -> Result<Response, WebError> {
    v.require_admin()?;
    let store = web.store();
    let w = web.clone();
    let person = v.session.actor().audit_name();
    let result = blocking(move || {
        Ok(with_node(&w, store.as_ref(), &person, |node| {
            concord_coordination::respond(
                node,
                form.task.trim(),
                form.status.trim(),
                optional(&form.note),
                &Timestamp::now_micros(),
            )
            .map(|_| ())
        }))
    })
    .await?;
    after(&web, &v, id, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datetime_local_deadline_is_read_as_utc() {
        assert_eq!(deadline_utc("2026-12-08T12:00"), "2026-12-08T12:00:00Z");
        assert_eq!(deadline_utc("2026-12-08T12:00:30"), "2026-12-08T12:00:30Z");
        assert_eq!(
            deadline_utc(" 2026-12-08T12:00:00Z "),
            "2026-12-08T12:00:00Z"
        );
        assert_eq!(deadline_utc("tomorrow"), "tomorrow");
    }
}
