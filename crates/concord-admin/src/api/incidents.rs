//! Incidents in the admin API (issue 23, item 1; issue 18): the board, one incident, and
//! the handler's operations — open, request assistance, answer a request, close — as
//! `concord incident … --json` prints and does them.
//!
//! Every operation is [`concord_coordination`]'s (the one implementation the CLI and the
//! web UI call): the same validation, the same objects, the same addressing and the same
//! audit (doors `incident-open`, `incident-request`, `incident-respond`,
//! `incident-close`, by `operator`). This module only maps JSON to its inputs and its
//! results to JSON: invalid input ([`DeskError::Refused`]) is `400 invalid_request`, an
//! unknown incident, request or partner ([`DeskError::NotFound`]) `404 not_found`; the
//! message names the JSON field (`deadline`, or `id` for the path's) and the rule.
//!
//! The request schemas state the rules a field obeys on its own (patterns, enums, ranges),
//! so that what the schema calls valid is what the operations take; rules across fields or
//! against the node's state (a decline needs a `note`, a closed incident takes no request)
//! are answered 400 for a request that exists.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use concord_coordination::{DeskError, Field, Node};
use concord_stix::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Acting, Admin, ApiError, ApiResult, Body, Name, Params, changed};

/// The incident routes, added to the API's router.
pub(super) fn routes(router: OpenApiRouter<Admin>) -> OpenApiRouter<Admin> {
    router
        .routes(routes!(list_incidents, open_incident))
        .routes(routes!(show_incident))
        .routes(routes!(request_assistance))
        .routes(routes!(answer_request))
        .routes(routes!(close_incident))
        .routes(routes!(grant))
}

impl From<DeskError> for ApiError {
    fn from(e: DeskError) -> Self {
        match e {
            // The API names an input by its JSON field (`deadline`), never the CLI's flag.
            DeskError::Refused(r) => ApiError::invalid(r.message(Field::json)),
            DeskError::NotFound(r) => ApiError::new(404, "not_found", r.message(Field::json)),
            e => {
                tracing::error!(error = %e, "admin API: incident operation");
                ApiError::new(500, "internal", e.to_string())
            }
        }
    }
}

/// Runs `f` off the async threads on the node as `concord incident` sees it: the store,
/// `max_object_size`, `title` and the recorded jurisdiction, at the current time, by who
/// acts in the request (its audit entries name it).
async fn on_node<T: Send + 'static>(
    a: &Admin,
    acting: &Acting,
    f: impl FnOnce(&Node<'_>, &Timestamp) -> Result<T, DeskError> + Send + 'static,
) -> ApiResult<T> {
    let store = a.store();
    let config = a.state.config();
    let title = config.title.clone();
    let max_object_size = config.ingress.max_object_size;
    let person = acting.0.audit_name();
    tokio::task::spawn_blocking(move || {
        let jurisdiction = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
        let node = Node {
            store: store.as_ref(),
            max_object_size,
            title: &title,
            jurisdiction: jurisdiction.as_deref(),
            person: Some(&person),
        };
        f(&node, &Timestamp::now_micros())
    })
    .await
    .map_err(|e| ApiError::new(500, "internal", format!("worker failed: {e}")))?
    .map_err(ApiError::from)
}

// --- request bodies ----------------------------------------------------------------------

/// A criticality or priority (Incident Core §2.1, Incident Extension Suite §2.4): a number
/// from 0 to 100, or a word (none 0, low 25, medium 50, high 75, critical 100).
/// Anything else is refused with a message naming the allowed forms (the body reader
/// prefixes the field, `severity` or `priority`), not serde's "did not match any variant".
///
/// (`Serialize` is derived only for its `serde` attributes, which utoipa reads: the schema
/// is the untagged `oneOf` of the two forms.)
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum Level {
    /// 0 to 100.
    Number(Percent),
    /// A word.
    Word(LevelWord),
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let word = |w: &str| {
            Some(match w {
                "none" => LevelWord::None,
                "low" => LevelWord::Low,
                "medium" => LevelWord::Medium,
                "high" => LevelWord::High,
                "critical" => LevelWord::Critical,
                _ => return None,
            })
        };
        let level = match &v {
            Value::Number(n) => n
                .as_u64()
                .filter(|n| *n <= 100)
                .map(|n| Level::Number(Percent(n as u8))),
            Value::String(w) => word(w).map(Level::Word),
            _ => None,
        };
        level.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{v} is not a level: an integer from 0 to 100, or one of \"none\", \"low\", \
                 \"medium\", \"high\", \"critical\""
            ))
        })
    }
}

/// A number from 0 to 100.
#[derive(Debug, Serialize, ToSchema)]
#[schema(minimum = 0, maximum = 100)]
pub(super) struct Percent(u8);

/// A level by name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum LevelWord {
    /// 0.
    None,
    /// 25.
    Low,
    /// 50.
    Medium,
    /// 75.
    High,
    /// 100.
    Critical,
}

impl Level {
    /// As `--severity`/`--priority` take it.
    fn text(&self) -> String {
        match self {
            Level::Number(Percent(n)) => n.to_string(),
            Level::Word(w) => match w {
                LevelWord::None => "none",
                LevelWord::Low => "low",
                LevelWord::Medium => "medium",
                LevelWord::High => "high",
                LevelWord::Critical => "critical",
            }
            .to_owned(),
        }
    }
}

/// An ISO 3166-1 alpha-2 country code (two letters; lower case is upper-cased).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(pattern = "^[A-Za-z]{2}$")]
pub(super) struct CountryCode(String);

/// An incident to open (`concord incident open`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenIncident {
    /// Its title (STIX `name`): not empty, not only white space.
    #[schema(pattern = r"\S")]
    title: String,
    /// Its description.
    #[serde(default)]
    description: Option<String>,
    /// Its criticality (Incident Core `criticality`).
    #[serde(default)]
    severity: Option<Level>,
    /// The collection it is kept in: alias or id, created when missing (default
    /// `incidents`). An alias is 1 to 64 letters, digits, `.`, `_`, `-`, not `.` or `..`.
    #[serde(default)]
    #[schema(pattern = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$")]
    collection: Option<String>,
    /// The countries it reaches into.
    #[serde(default)]
    affects: Vec<CountryCode>,
}

/// A request for assistance (`concord incident request`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestAssistance {
    /// The partner asked: its name on this node (404 when there is none).
    to: String,
    /// What is asked: not empty, not only white space.
    #[schema(pattern = r"\S")]
    ask: String,
    /// When the answer is due: an RFC 3339 timestamp in UTC (STIX 2.1 §3.2), e.g.
    /// `2026-12-08T12:00:00Z`. (The schema leaves out 29 February and leap seconds, which
    /// the node also takes.)
    #[schema(
        pattern = r"^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?Z$"
    )]
    deadline: String,
    /// Its priority (Incident Extension Suite `priority`).
    #[serde(default)]
    priority: Option<Level>,
}

/// A status this node gives a request addressed to it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum AnswerStatusName {
    /// Received and read; not yet decided.
    Acknowledged,
    /// This node will do what is asked.
    Accepted,
    /// This node will not (say why in `note`). Terminal.
    Declined,
    /// Done (say the outcome in `note`). Terminal.
    Done,
}

/// An answer to a request for assistance (`concord incident respond`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerRequest {
    /// The status given.
    status: AnswerStatusName,
    /// The reason (required to decline) or the outcome.
    #[serde(default)]
    note: Option<String>,
}

/// How an incident is closed (`concord incident close`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseIncident {
    /// The outcome.
    #[serde(default)]
    outcome: Option<String>,
}

/// A category of personal data (`concord incident grant --allow`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only: the categories are read by concord_coordination::grant
pub(super) enum CategoryName {
    /// An e-mail address in text.
    Email,
    /// A telephone number.
    Phone,
    /// An IP address outside the infrastructure ranges.
    IpAddress,
    /// A national identity number.
    NationalId,
    /// A payment card number.
    PaymentCard,
    /// An IBAN.
    Iban,
    /// The `name` of an individual's `identity`.
    PersonName,
    /// An identifying property of a `user-account`.
    UserAccount,
    /// The `value` or `display_name` of an `email-addr`.
    EmailAddressObject,
}

/// What one request needs (`concord incident grant`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewGrant {
    /// The partner: its name on this node (404 when there is none).
    to: String,
    /// The categories of personal data it receives as written: at least one. (Read as
    /// text and checked by the same function as the CLI's `--allow`, so that an unknown
    /// one gets the same message.)
    #[schema(value_type = Vec<CategoryName>, min_items = 1)]
    allow: Vec<String>,
}

// --- response bodies ---------------------------------------------------------------------

/// A grant recorded, as `concord incident grant --json` prints it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Granted {
    /// The incident.
    incident: String,
    /// The partner.
    to: String,
    /// The categories it now receives as written in the incident and in every object that
    /// refers to it.
    #[schema(value_type = Vec<CategoryName>)]
    allow: Vec<String>,
}

/// The latest status one answering node gave a request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerDoc {
    /// The answer's id (`task--…`).
    id: String,
    /// Who answered: its identity's name where the node holds it, else its id.
    by: String,
    /// acknowledged, accepted, declined or done.
    status: String,
    /// When (the answer's `modified`, RFC 3339).
    at: String,
    /// The reason (declined) or outcome (done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// A request for assistance with its answers and its way.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskDoc {
    /// The request's id (`task--…`).
    id: String,
    /// The partner asked, as the requester names it.
    to: String,
    /// The requester: its identity's name where held, else the name the request carries,
    /// else its id.
    from: String,
    /// The requester's identity (`created_by_ref`).
    from_id: Option<String>,
    /// The latest status of any answer; `pending` without one.
    status: String,
    /// When that status was given (`null` while pending).
    status_at: Option<String>,
    /// The deadline (RFC 3339).
    deadline: String,
    /// The deadline passed without a terminal answer (declined, done).
    overdue: bool,
    /// What is asked.
    ask: String,
    /// Its priority (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u64>,
    /// When asked.
    created: String,
    /// Per answering node, the latest status and when.
    answers: Vec<AnswerDoc>,
    /// `outgoing` (made here) or `incoming` (received).
    direction: String,
    /// Outgoing: `by sync` (a peer carries it) or `not a peer` (it stays pending here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<String>,
    /// Outgoing: the peers that carry it to the partner's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<String>>,
    /// Incoming: the peers it was pulled from (empty when a partner POSTed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    received_from: Option<Vec<String>>,
}

/// An event the incident lists.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventDoc {
    /// `event--…`.
    id: String,
    /// Its `name`, else its `description`.
    name: String,
    /// Its `status` (event-status-enum).
    status: String,
    /// Its `start_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
}

/// An incident as the node tracks it: the document `concord incident list --json` prints
/// per incident (no `events`, no `collection`) and `incident show --json` prints (both).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IncidentDoc {
    /// `incident--…`.
    id: String,
    /// Its `name`.
    title: String,
    /// `open` or `closed` (Incident Core `investigation_status`).
    status: String,
    /// Its `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Incident Core `criticality` (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    criticality: Option<u64>,
    /// Incident Core `determination`.
    determination: String,
    /// The countries it reaches into (ISO 3166-1 alpha-2).
    affects: Vec<String>,
    /// When closed: the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    /// Its `created_by_ref`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by_ref: Option<String>,
    /// Its `created`.
    created: String,
    /// Its `modified` (the newest version's).
    modified: String,
    /// Who opened it: its creator identity's name where held, else its id.
    opened_by: String,
    /// Its requests, oldest first.
    tasks: Vec<TaskDoc>,
    /// Its events the node holds, oldest first (one incident only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventDoc>>,
    /// The collection holding it, its id (one incident only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collection: Option<String>,
}

impl IncidentDoc {
    /// The typed form of [`concord_coordination::Tracked::to_json`] (the CLI's document),
    /// so that the API answers exactly what the CLI prints and the schema describes it:
    /// a field one adds and the other lacks is an error here, not a silent difference.
    fn of(doc: Value) -> ApiResult<IncidentDoc> {
        serde_json::from_value(doc).map_err(|e| {
            tracing::error!(error = %e, "admin API: incident document");
            ApiError::new(500, "internal", format!("incident document: {e}"))
        })
    }
}

/// The board.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct IncidentList {
    /// Every incident the node holds (or only the open or closed ones), newest first.
    incidents: Vec<IncidentDoc>,
}

/// An incident opened.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Opened {
    /// Its id (`incident--…`).
    id: String,
    /// The collection it is kept in: its alias, else its id.
    collection: String,
}

/// A request for assistance made.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Requested {
    /// Its id (`task--…`).
    id: String,
    /// The incident.
    incident: String,
    /// The partner asked.
    to: String,
    /// `pending`.
    status: String,
    /// The deadline (RFC 3339).
    deadline: String,
    /// The peers that carry it to the partner's node (empty: it stays pending here).
    peers: Vec<String>,
}

/// An answer given.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Answered {
    /// The answer's id (`task--…`; the same for every status this node gives the request).
    id: String,
    /// The request answered.
    task: String,
    /// The status given.
    status: String,
    /// The partner it goes home to.
    to: String,
    /// The answer's new `modified`.
    version: Option<String>,
}

/// An incident closed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Closed {
    /// The incident.
    id: String,
    /// `closed`.
    status: String,
    /// The outcome recorded.
    outcome: Option<String>,
}

// --- handlers ----------------------------------------------------------------------------

/// An incident's `investigation_status`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum IncidentStatus {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

/// `GET /api/v1/incidents` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only open or only closed incidents.
    #[param(inline)]
    status: Option<IncidentStatus>,
}

/// The board: every incident with its requests, per request who asked whom, the latest
/// status, the deadline and whether it is overdue (`concord incident list --json`).
#[utoipa::path(get, path = "/incidents", tag = "incidents",
    params(ListParams),
    responses(
        (status = 200, description = "The incidents, newest first", body = IncidentList),
        (status = 400, description = "Unknown parameter or status", body = ApiError),
    ))]
async fn list_incidents(
    State(a): State<Admin>,
    acting: Acting,
    Params(q): Params<ListParams>,
) -> ApiResult<Json<IncidentList>> {
    let all = on_node(&a, &acting, |node, now| {
        concord_coordination::board(node.store, now)
    })
    .await?;
    let want = q.status.map(|s| match s {
        IncidentStatus::Open => "open",
        IncidentStatus::Closed => "closed",
    });
    let mut incidents = Vec::new();
    for t in all
        .iter()
        .filter(|t| want.is_none_or(|w| t.state.incident.status == w))
    {
        let mut doc = IncidentDoc::of(t.to_json())?;
        // As `incident list`: the events are `show`'s.
        doc.events = None;
        incidents.push(doc);
    }
    Ok(Json(IncidentList { incidents }))
}

/// Opens an incident: a STIX `incident` with the Incident Core extension, TLP:AMBER+STRICT,
/// audited as door `incident-open` (`concord incident open`).
#[utoipa::path(post, path = "/incidents", tag = "incidents",
    request_body = OpenIncident,
    responses(
        (status = 201, description = "Opened", body = Opened),
        (status = 400, description = "A field breaks a rule (named)", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn open_incident(
    State(a): State<Admin>,
    acting: Acting,
    Body(new): Body<OpenIncident>,
) -> ApiResult<(StatusCode, Json<Opened>)> {
    let o = on_node(&a, &acting, move |node, now| {
        let severity = new.severity.as_ref().map(Level::text);
        let affects: Vec<String> = new.affects.into_iter().map(|c| c.0).collect();
        concord_coordination::open(
            node,
            &concord_coordination::OpenInput {
                title: &new.title,
                description: new.description.as_deref(),
                severity: severity.as_deref(),
                collection: new
                    .collection
                    .as_deref()
                    .unwrap_or(concord_coordination::DEFAULT_COLLECTION),
                affects: &affects,
            },
            now,
        )
    })
    .await?;
    changed("incident-open", &o.id);
    Ok((
        StatusCode::CREATED,
        Json(Opened {
            id: o.id,
            collection: o.collection,
        }),
    ))
}

/// One incident: its requests with every answer (per answering node the latest status
/// and when), its events and its collection (`concord incident show --json`).
#[utoipa::path(get, path = "/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id (`incident--…`)")),
    responses(
        (status = 200, description = "The incident", body = IncidentDoc),
        (status = 404, description = "No such incident", body = ApiError),
    ))]
async fn show_incident(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
) -> ApiResult<Json<IncidentDoc>> {
    let t = on_node(&a, &acting, move |node, now| {
        concord_coordination::show(node.store, &id, now)
    })
    .await?;
    let mut doc = IncidentDoc::of(t.to_json())?;
    doc.collection = Some(t.collection);
    Ok(Json(doc))
}

/// Asks a partner for assistance: a STIX `task` addressed to it, which sync carries to its
/// node and to no other partner, audited as door `incident-request` (`concord incident
/// request`).
#[utoipa::path(post, path = "/incidents/{id}/requests", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id (`incident--…`)")),
    request_body = RequestAssistance,
    responses(
        (status = 201, description = "Requested", body = Requested),
        (status = 400, description = "A field breaks a rule (named), or the incident is closed", body = ApiError),
        (status = 404, description = "No such incident or partner", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn request_assistance(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
    Body(req): Body<RequestAssistance>,
) -> ApiResult<(StatusCode, Json<Requested>)> {
    let r = on_node(&a, &acting, move |node, now| {
        let priority = req.priority.as_ref().map(Level::text);
        concord_coordination::request(
            node,
            &concord_coordination::RequestInput {
                incident: &id,
                to: &req.to,
                ask: &req.ask,
                deadline: &req.deadline,
                priority: priority.as_deref(),
            },
            now,
        )
    })
    .await?;
    changed("incident-request", &r.id);
    Ok((
        StatusCode::CREATED,
        Json(Requested {
            id: r.id,
            incident: r.incident,
            to: r.to,
            status: "pending".to_owned(),
            deadline: r.deadline,
            peers: r.peers,
        }),
    ))
}

/// Answers a request addressed to this node: a new version of this node's answer, which
/// goes home by sync to the partner that sent the request, audited as door
/// `incident-respond` (`concord incident respond`).
#[utoipa::path(post, path = "/tasks/{id}/answers", tag = "incidents",
    params(("id" = String, Path, description = "The request's id (`task--…`)")),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "Answered", body = Answered),
        (status = 400, description = "A field breaks a rule (named), or this node may not answer the request", body = ApiError),
        (status = 404, description = "No such request", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn answer_request(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
    Body(answer): Body<AnswerRequest>,
) -> ApiResult<Json<Answered>> {
    let status = match answer.status {
        AnswerStatusName::Acknowledged => "acknowledged",
        AnswerStatusName::Accepted => "accepted",
        AnswerStatusName::Declined => "declined",
        AnswerStatusName::Done => "done",
    };
    let r = on_node(&a, &acting, move |node, now| {
        concord_coordination::respond(node, &id, status, answer.note.as_deref(), now)
    })
    .await?;
    changed("incident-respond", &r.task);
    Ok(Json(Answered {
        id: r.id,
        task: r.task,
        status: r.status.as_str().to_owned(),
        to: r.to,
        version: r.version,
    }))
}

/// Closes an incident this node opened: a new version, `investigation_status` closed, with
/// the outcome, audited as door `incident-close` (`concord incident close`).
#[utoipa::path(post, path = "/incidents/{id}/close", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id (`incident--…`)")),
    request_body = CloseIncident,
    responses(
        (status = 200, description = "Closed", body = Closed),
        (status = 400, description = "Already closed, or opened by another node", body = ApiError),
        (status = 404, description = "No such incident", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn close_incident(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
    Body(close): Body<CloseIncident>,
) -> ApiResult<Json<Closed>> {
    let (i, outcome) = (id.clone(), close.outcome.clone());
    on_node(&a, &acting, move |node, now| {
        concord_coordination::close(node, &i, outcome.as_deref(), now)
    })
    .await?;
    changed("incident-close", &id);
    Ok(Json(Closed {
        id,
        status: "closed".to_owned(),
        outcome: close.outcome,
    }))
}

/// Grants what one request needs: the partner receives the personal data of each category
/// as written (not pseudonymised, redacted or dropped) in this incident and in every object
/// that refers to it, whatever the policy's tables say; kept in the collection's sharing,
/// audited as door `incident-grant`, named by `GET /api/v1/policy/explain` (`concord
/// incident grant`).
#[utoipa::path(post, path = "/incidents/{id}/grants", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id (`incident--…`)")),
    request_body = NewGrant,
    responses(
        (status = 200, description = "Granted", body = Granted),
        (status = 202, description = "Kept for a second releaser's approval (`[release] four_eyes`, a cross-border partner)", body = crate::ops::ApprovalInfo),
        (status = 400, description = "A field breaks a rule (named): an unknown category, none", body = ApiError),
        (status = 404, description = "No such incident or partner", body = ApiError),
        (status = 415, description = "Not JSON", body = ApiError),
    ))]
async fn grant(
    State(a): State<Admin>,
    acting: Acting,
    Name(id): Name,
    Body(g): Body<NewGrant>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use concord_coordination::release::{self, Outcome};
    let (i, to, allow) = (id.clone(), g.to.clone(), g.allow);
    let outcome = super::approvals::on_release(&a, &acting, move |r, node| {
        release::grant(r, node, &i, &to, &allow).map_err(crate::ops::AdminError::from)
    })
    .await?;
    changed("incident-grant", &id);
    Ok(match outcome {
        Outcome::Applied(categories) => Json(Granted {
            incident: id,
            to: g.to,
            allow: categories.iter().map(|c| c.as_str().to_owned()).collect(),
        })
        .into_response(),
        Outcome::Pending(p) => (
            StatusCode::ACCEPTED,
            Json(crate::ops::ApprovalInfo::from(*p)),
        )
            .into_response(),
    })
}
