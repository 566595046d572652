//! # concord-incident: cross-border incident coordination in STIX 2.1
//!
//! A CERT handling an incident that reaches into another country asks that country's CERT
//! for help, follows up, and both keep a record (issue 18). Concord keeps no private format
//! for this: everything is an ordinary STIX 2.1 object, stored in a collection, so that every
//! door of the node (the egress door, the audit log, sync, TAXII) applies to it unchanged,
//! and any TAXII 2.1 server can carry it.
//!
//! - An **incident** is a STIX 2.1 `incident` SDO (§4.6) with the OASIS *Incident Core*
//!   property extension ([`INCIDENT_CORE_EXTENSION`]: `determination`,
//!   `investigation_status`, `criticality`), from the Incident Extension Suite of
//!   `oasis-open/cti-stix-common-objects` (`extension-definition-specifications/incident-core/`).
//! - A **request for assistance** is a `task` SDO of that suite ([`TASK_EXTENSION`], a
//!   `new-sdo` extension): what is asked (`name`, `description`), a `priority` (0–100, §2.4)
//!   and `outcome` `pending`; the Concord coordination extension
//!   ([`COORDINATION_EXTENSION`]) adds what the suite has no property for: the incident it
//!   belongs to (`incident_ref`), the recipient (`recipient`, the partner as the requester
//!   names it) and the `deadline`.
//! - An **answer** is the recipient's own `task` (only an object's creator may version it,
//!   STIX 2.1 §3.6), created by the recipient node's identity, whose coordination extension
//!   refers to the request (`answer_to_ref`) and gives its `status`: `acknowledged`,
//!   `accepted`, `declined` (with a reason, `note`) or `done` (with an outcome, `note`). Each
//!   new status is a new version of that answer; its `outcome` follows the status
//!   ([`AnswerStatus::outcome`]).
//! - **Events** (`event`, [`EVENT_EXTENSION`]) and **impacts** (`impact`,
//!   [`IMPACT_EXTENSION`]) of the suite are read where an incident lists them (Incident Core's
//!   `events` entries and `impact_refs`).
//!
//! This crate builds those objects and reads the state of incidents back from the objects a
//! node holds ([`board`]): per request the latest status of each answering node and when,
//! and whether it is overdue (its deadline passed and no terminal answer). It does no I/O.

use std::collections::{BTreeMap, HashMap};

use concord_stix::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The Incident Core extension (property extension of `incident`), Incident Extension Suite
/// §2.1.
pub const INCIDENT_CORE_EXTENSION: &str =
    "extension-definition--ef765651-680c-498d-9894-99799f2fa126";
/// The Event SDO extension (`new-sdo`), Incident Extension Suite §2.2.
pub const EVENT_EXTENSION: &str = "extension-definition--4ca6de00-5b0d-45ef-a1dc-ea7279ea910e";
/// The Impact SDO extension (`new-sdo`), Incident Extension Suite §2.3.
pub const IMPACT_EXTENSION: &str = "extension-definition--7cc33dd6-f6a1-489b-98ea-522d351d71b9";
/// The Task SDO extension (`new-sdo`), Incident Extension Suite §2.4.
pub const TASK_EXTENSION: &str = "extension-definition--2074a052-8be4-4932-849e-f5e7798e0030";
/// Concord's coordination extension (a property extension of `incident` and `task`): what
/// the suite has no property for. On an incident: `affected_countries` (ISO 3166-1
/// alpha-2), `outcome` (when closed). On a request: `incident_ref`, `recipient`,
/// `deadline`. On an answer: `answer_to_ref`, `incident_ref`, `status`, `note`.
pub const COORDINATION_EXTENSION: &str =
    "extension-definition--066c6efb-93cd-4e44-920f-9180cbf56905";

/// TLP:AMBER+STRICT (FIRST TLP 2.0, its STIX marking definition id): every object this crate
/// makes carries it. Beyond the partners an object is addressed to (the egress policy's
/// addressed objects), an incident's records go to no organisation that is not named, on the
/// requester's node and on the recipient's.
pub const TLP_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";

/// An input of an incident operation, named by each front end in its own words: the
/// command line by its flag or argument ([`Field::flag`], `--deadline`), the admin API by
/// its JSON field or path parameter ([`Field::json`], `deadline`). Errors carry the field,
/// not a name, so that neither front end names the other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The incident's title (`name`).
    Title,
    /// The incident's criticality.
    Severity,
    /// The collection an incident is kept in.
    Collection,
    /// A country the incident reaches into.
    Affects,
    /// The partner asked or granted.
    To,
    /// What a request asks.
    Ask,
    /// When a request's answer is due.
    Deadline,
    /// A request's priority.
    Priority,
    /// The status an answer gives.
    Status,
    /// An answer's reason or outcome.
    Note,
    /// A category of personal data granted.
    Allow,
    /// The incident operated on (an argument on the command line, the path's `{id}` in the
    /// API).
    Incident,
    /// The request answered (likewise).
    Task,
    /// The incident shown (`incident show ID`; the path's `{id}` in the API).
    Id,
}

impl Field {
    /// Its name on the command line: `--deadline`, or an argument such as `INCIDENT`.
    pub fn flag(self) -> &'static str {
        match self {
            Field::Title => "--title",
            Field::Severity => "--severity",
            Field::Collection => "--collection",
            Field::Affects => "--affects",
            Field::To => "--to",
            Field::Ask => "--ask",
            Field::Deadline => "--deadline",
            Field::Priority => "--priority",
            Field::Status => "--status",
            Field::Note => "--note",
            Field::Allow => "--allow",
            Field::Incident => "INCIDENT",
            Field::Task => "TASK",
            Field::Id => "ID",
        }
    }

    /// Its name in the admin API's JSON bodies (`deadline`), or `id` for the path's
    /// parameter.
    pub fn json(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Severity => "severity",
            Field::Collection => "collection",
            Field::Affects => "affects",
            Field::To => "to",
            Field::Ask => "ask",
            Field::Deadline => "deadline",
            Field::Priority => "priority",
            Field::Status => "status",
            Field::Note => "note",
            Field::Allow => "allow",
            Field::Incident | Field::Task | Field::Id => "id",
        }
    }
}

/// Why an incident object cannot be made: the field and the rule. `Display` names the
/// field as the command line does ([`Field::flag`]); [`IncidentError::message`] lets a
/// front end name it its own way.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IncidentError {
    /// An input breaks a rule: the field and the rule.
    #[error("{}: {rule}", field.flag())]
    Invalid {
        /// The input, e.g. [`Field::Deadline`].
        field: Field,
        /// The rule broken.
        rule: String,
    },
    /// The object is not what the operation needs (not an incident, not a request).
    #[error("{id}: {rule}")]
    WrongObject {
        /// The object's id.
        id: String,
        /// What it should have been.
        rule: String,
    },
}

impl IncidentError {
    /// The message with the field named by `name` (e.g. [`Field::json`]).
    pub fn message(&self, name: impl Fn(Field) -> &'static str) -> String {
        match self {
            IncidentError::Invalid { field, rule } => format!("{}: {rule}", name(*field)),
            other => other.to_string(),
        }
    }
}

fn invalid(field: Field, rule: impl Into<String>) -> IncidentError {
    IncidentError::Invalid {
        field,
        rule: rule.into(),
    }
}

/// What an answer says of a request: the status a recipient gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerStatus {
    /// Received and read; not yet decided.
    Acknowledged,
    /// The recipient will do what is asked.
    Accepted,
    /// The recipient will not, for a reason (`note`). Terminal.
    Declined,
    /// Done, with an outcome (`note`). Terminal.
    Done,
}

impl AnswerStatus {
    /// Every status, in the order of a request's life.
    pub const ALL: [AnswerStatus; 4] = [
        AnswerStatus::Acknowledged,
        AnswerStatus::Accepted,
        AnswerStatus::Declined,
        AnswerStatus::Done,
    ];

    /// Reads `acknowledged`, `accepted`, `declined` or `done`.
    pub fn parse(text: &str) -> Option<AnswerStatus> {
        AnswerStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The status as written in the object and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerStatus::Acknowledged => "acknowledged",
            AnswerStatus::Accepted => "accepted",
            AnswerStatus::Declined => "declined",
            AnswerStatus::Done => "done",
        }
    }

    /// Whether the request is settled: after `declined` or `done` nothing is owed, so the
    /// request can no longer be overdue.
    pub fn is_terminal(self) -> bool {
        matches!(self, AnswerStatus::Declined | AnswerStatus::Done)
    }

    /// The answer task's `outcome` (task-outcome-enum, Incident Extension Suite §2.4):
    /// acknowledged → `pending`, accepted → `ongoing`, declined → `cancelled`, done →
    /// `successful`.
    pub fn outcome(self) -> &'static str {
        match self {
            AnswerStatus::Acknowledged => "pending",
            AnswerStatus::Accepted => "ongoing",
            AnswerStatus::Declined => "cancelled",
            AnswerStatus::Done => "successful",
        }
    }
}

/// A fresh STIX identifier of `object_type` (UUIDv4, STIX 2.1 §2.9).
pub fn new_id(object_type: &str) -> String {
    format!("{object_type}--{}", uuid::Uuid::new_v4())
}

/// The criticality (0–100, Incident Extension Suite §2.1) of `--severity`: a number from 0
/// to 100, or `none` (0), `low` (25), `medium` (50), `high` (75), `critical` (100).
pub fn parse_severity(text: &str) -> Result<u8, IncidentError> {
    let words = [
        ("none", 0),
        ("low", 25),
        ("medium", 50),
        ("high", 75),
        ("critical", 100),
    ];
    if let Some((_, n)) = words.iter().find(|(w, _)| w.eq_ignore_ascii_case(text)) {
        return Ok(*n);
    }
    match text.parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(invalid(
            Field::Severity,
            format!(
                "{text:?} is not a criticality: a number from 0 to 100, or none, low, medium, high, critical (Incident Core §2.1)"
            ),
        )),
    }
}

/// The priority (0–100, Incident Extension Suite §2.4) of `--priority`: the same words and
/// numbers as [`parse_severity`].
pub fn parse_priority(text: &str) -> Result<u8, IncidentError> {
    parse_severity(text).map_err(|_| {
        invalid(
            Field::Priority,
            format!(
                "{text:?} is not a priority: a number from 0 to 100, or none, low, medium, high, critical (Incident Extension Suite §2.4)"
            ),
        )
    })
}

/// A deadline: an RFC 3339 timestamp in UTC (STIX 2.1 §3.2), e.g. `2026-12-08T12:00:00Z`.
pub fn parse_deadline(text: &str) -> Result<Timestamp, IncidentError> {
    Timestamp::parse(text).map_err(|e| {
        invalid(
            Field::Deadline,
            format!("{text:?} is not an RFC 3339 timestamp in UTC ending in 'Z': {e}"),
        )
    })
}

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted: a code outside them
/// names no country (user-assigned `XK`, `ZZ`, reserved `UK`, `EU` are none). Checked
/// equal to the alpha-2 codes of pycountry 24.6.1 (pinned in tests/interop/requirements.txt).
pub const ISO_3166_1_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An ISO 3166-1 alpha-2 country code (`BR`; lower case is accepted and upper-cased).
/// Refused: anything but two letters, and two letters that are no officially assigned code
/// ([`ISO_3166_1_ALPHA_2`]), named.
pub fn parse_country(text: &str) -> Result<String, IncidentError> {
    let upper = text.to_ascii_uppercase();
    if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(invalid(
            Field::Affects,
            format!("{text:?} is not an ISO 3166-1 alpha-2 country code (two letters, e.g. BR)"),
        ));
    }
    if ISO_3166_1_ALPHA_2.binary_search(&upper.as_str()).is_err() {
        return Err(invalid(
            Field::Affects,
            format!("{text:?} is not an officially assigned ISO 3166-1 alpha-2 country code"),
        ));
    }
    Ok(upper)
}

/// A version timestamp after `previous` (STIX 2.1 §3.6: a new version's `modified` is later
/// than the one it replaces): `now`, or one microsecond after `previous` when the clock has
/// not moved past it.
fn later_than(now: &Timestamp, previous: Option<&str>) -> Timestamp {
    match previous.and_then(|p| Timestamp::parse(p).ok()) {
        Some(p) if p >= *now => Timestamp::from_unix_nanos(p.unix_nanos() + 1_000, 6),
        _ => now.clone(),
    }
}

/// The identity object (STIX 2.1 §4.5, `identity_class` `organization`) a node creates its
/// incidents, requests and answers by (`created_by_ref`).
pub fn node_identity(name: &str, jurisdiction: Option<&str>, now: &Timestamp) -> Value {
    let mut v = json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": new_id("identity"),
        "created": now.to_string(),
        "modified": now.to_string(),
        "name": name,
        "identity_class": "organization",
        "object_marking_refs": [TLP_AMBER_STRICT],
    });
    if let Some(cc) = jurisdiction {
        v["sectors"] = json!(["government-national"]);
        v["description"] = json!(format!("Concord node, jurisdiction {cc}"));
    }
    v
}

/// What `concord incident open` records.
#[derive(Clone, Debug)]
pub struct NewIncident<'a> {
    /// `name`.
    pub title: &'a str,
    /// `description`.
    pub description: Option<&'a str>,
    /// Incident Core `criticality` (0–100).
    pub criticality: Option<u8>,
    /// The countries the incident reaches into (ISO 3166-1 alpha-2).
    pub affects: &'a [String],
    /// The node's identity.
    pub created_by_ref: &'a str,
    /// `created` and `modified`.
    pub now: &'a Timestamp,
}

/// A new incident (STIX 2.1 §4.6 with Incident Core): `determination` `suspected` (the
/// suite's SHOULD until researched), `investigation_status` `open`.
pub fn incident(n: &NewIncident<'_>) -> Result<Value, IncidentError> {
    if n.title.trim().is_empty() {
        return Err(invalid(
            Field::Title,
            "must not be empty (STIX 2.1 §4.6: name)",
        ));
    }
    let mut core = json!({
        "extension_type": "property-extension",
        "determination": "suspected",
        "investigation_status": "open",
    });
    if let Some(c) = n.criticality {
        core["criticality"] = json!(c);
    }
    let mut v = json!({
        "type": "incident",
        "spec_version": "2.1",
        "id": new_id("incident"),
        "created": n.now.to_string(),
        "modified": n.now.to_string(),
        "created_by_ref": n.created_by_ref,
        "name": n.title,
        "object_marking_refs": [TLP_AMBER_STRICT],
        "extensions": { INCIDENT_CORE_EXTENSION: core },
    });
    if let Some(d) = n.description.filter(|d| !d.is_empty()) {
        v["description"] = json!(d);
    }
    if !n.affects.is_empty() {
        v["extensions"][COORDINATION_EXTENSION] = json!({
            "extension_type": "property-extension",
            "affected_countries": n.affects,
        });
    }
    Ok(v)
}

/// The next version of `incident`, closed (`investigation_status` `closed`), with the
/// `outcome` in the coordination extension. Errors: not an incident, or already closed.
pub fn close(
    incident: &Value,
    outcome: Option<&str>,
    now: &Timestamp,
) -> Result<Value, IncidentError> {
    let id = str_of(incident, "id").unwrap_or_default().to_owned();
    let Some(view) = read_incident(incident) else {
        return Err(IncidentError::WrongObject {
            id,
            rule: "not an incident with the Incident Core extension".into(),
        });
    };
    if view.status == "closed" {
        return Err(IncidentError::WrongObject {
            id,
            rule: "already closed".into(),
        });
    }
    let mut v = incident.clone();
    v["modified"] = json!(later_than(now, str_of(incident, "modified")).to_string());
    // The stored object may come from elsewhere: a malformed `extensions` is an error named
    // here, never a panic of JSON indexing.
    let malformed = |what: &str| IncidentError::WrongObject {
        id: id.clone(),
        rule: format!("{what} is not a JSON object"),
    };
    let extensions = v
        .get_mut("extensions")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("extensions"))?;
    extensions
        .get_mut(INCIDENT_CORE_EXTENSION)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("the Incident Core extension"))?
        .insert("investigation_status".into(), json!("closed"));
    if let Some(o) = outcome.filter(|o| !o.is_empty()) {
        extensions
            .entry(COORDINATION_EXTENSION)
            .or_insert_with(|| json!({"extension_type": "property-extension"}))
            .as_object_mut()
            .ok_or_else(|| malformed("the coordination extension"))?
            .insert("outcome".into(), json!(o));
    }
    Ok(v)
}

/// What `concord incident request` records.
#[derive(Clone, Debug)]
pub struct NewRequest<'a> {
    /// The incident the request belongs to.
    pub incident_id: &'a str,
    /// The partner asked, as this node names it.
    pub recipient: &'a str,
    /// What is asked.
    pub ask: &'a str,
    /// When the answer is due.
    pub deadline: &'a Timestamp,
    /// `priority` (0–100).
    pub priority: Option<u8>,
    /// The node's identity.
    pub created_by_ref: &'a str,
    /// `created`, `modified` and `start_time`.
    pub now: &'a Timestamp,
}

/// A request for assistance: a `task` (Incident Extension Suite §2.4) with `outcome`
/// `pending`, `task_types` `["request-for-assistance"]`, and the coordination extension.
pub fn request(r: &NewRequest<'_>) -> Result<Value, IncidentError> {
    if r.ask.trim().is_empty() {
        return Err(invalid(Field::Ask, "must not be empty"));
    }
    if !r.incident_id.starts_with("incident--") {
        return Err(invalid(
            Field::Incident,
            format!("{:?} is not an incident id (incident--UUID)", r.incident_id),
        ));
    }
    let name: String = r.ask.chars().take(80).collect();
    let mut v = json!({
        "type": "task",
        "spec_version": "2.1",
        "id": new_id("task"),
        "created": r.now.to_string(),
        "modified": r.now.to_string(),
        "created_by_ref": r.created_by_ref,
        "name": name,
        "description": r.ask,
        "task_types": ["request-for-assistance"],
        "outcome": "pending",
        "start_time": r.now.to_string(),
        "object_marking_refs": [TLP_AMBER_STRICT],
        "extensions": {
            TASK_EXTENSION: {"extension_type": "new-sdo"},
            COORDINATION_EXTENSION: {
                "extension_type": "property-extension",
                "incident_ref": r.incident_id,
                "recipient": r.recipient,
                "deadline": r.deadline.to_string(),
            },
        },
    });
    if let Some(p) = r.priority {
        v["priority"] = json!(p);
    }
    Ok(v)
}

/// The answer of this node (identity `created_by_ref`) to `request`: a new `task` when
/// `previous` is `None`, else the next version of `previous` (this node's earlier answer to
/// the same request). Errors: `request` is not a request, `previous` is not this node's
/// answer to it, or the request is settled already (declined or done).
pub fn answer(
    request: &Value,
    previous: Option<&Value>,
    status: AnswerStatus,
    note: Option<&str>,
    created_by_ref: &str,
    now: &Timestamp,
) -> Result<Value, IncidentError> {
    let request_id = str_of(request, "id").unwrap_or_default().to_owned();
    let Some(req) = read_request(request) else {
        return Err(IncidentError::WrongObject {
            id: request_id,
            rule: "not a request for assistance (a task with the coordination extension and a recipient)".into(),
        });
    };
    let ext = json!({
        "extension_type": "property-extension",
        "answer_to_ref": request_id,
        "incident_ref": req.incident_id,
        "status": status.as_str(),
    });
    let name = format!("{} request {}", status.as_str(), request_id);
    match previous {
        None => {
            let mut ext = ext;
            if let Some(n) = note.filter(|n| !n.is_empty()) {
                ext["note"] = json!(n);
            }
            Ok(json!({
                "type": "task",
                "spec_version": "2.1",
                "id": new_id("task"),
                "created": now.to_string(),
                "modified": now.to_string(),
                "created_by_ref": created_by_ref,
                "name": name,
                "task_types": ["answer"],
                "outcome": status.outcome(),
                "start_time": now.to_string(),
                "object_marking_refs": [TLP_AMBER_STRICT],
                "extensions": {
                    TASK_EXTENSION: {"extension_type": "new-sdo"},
                    COORDINATION_EXTENSION: ext,
                },
            }))
        }
        Some(prev) => {
            let pid = str_of(prev, "id").unwrap_or_default().to_owned();
            match read_answer(prev) {
                Some(a)
                    if a.answer_to == request_id
                        && a.created_by.as_deref() == Some(created_by_ref) =>
                {
                    if a.status.is_terminal() {
                        return Err(IncidentError::WrongObject {
                            id: request_id,
                            rule: format!(
                                "already {} (a settled request takes no further answer)",
                                a.status.as_str()
                            ),
                        });
                    }
                }
                _ => {
                    return Err(IncidentError::WrongObject {
                        id: pid,
                        rule: "not this node's answer to the request".into(),
                    });
                }
            }
            let mut v = prev.clone();
            v["modified"] = json!(later_than(now, str_of(prev, "modified")).to_string());
            v["name"] = json!(name);
            v["outcome"] = json!(status.outcome());
            let mut ext = ext;
            if let Some(n) = note.filter(|n| !n.is_empty()) {
                ext["note"] = json!(n);
            }
            v["extensions"][COORDINATION_EXTENSION] = ext;
            if status.is_terminal() {
                v["end_time"] = v["modified"].clone();
            }
            Ok(v)
        }
    }
}

/// Writes the name of `identity` (this node's identity object) into the coordination
/// extension of `task` (a request or an answer) as `sender_name`: how the other node names
/// the sender without receiving the identity object itself. Nothing happens to an object
/// without the extension or an identity without a `name`.
pub fn name_sender(task: &mut Value, identity: &Value) {
    if let (Some(name), Some(ext)) = (
        str_of(identity, "name").map(str::to_owned),
        task.get_mut("extensions")
            .and_then(|e| e.get_mut(COORDINATION_EXTENSION))
            .and_then(Value::as_object_mut),
    ) {
        ext.insert("sender_name".into(), json!(name));
    }
}

/// The `sender_name` of an object's coordination extension ([`name_sender`]).
fn sender_name(v: &Value) -> Option<&str> {
    coordination(v)?.get("sender_name")?.as_str()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn coordination(v: &Value) -> Option<&Map<String, Value>> {
    v.get("extensions")?
        .get(COORDINATION_EXTENSION)?
        .as_object()
}

/// The request an answer task refers to (`answer_to_ref` of its coordination extension):
/// how sync knows that an answer goes home to the node it received the request from.
pub fn answer_to(v: &Value) -> Option<&str> {
    if str_of(v, "type") != Some("task") {
        return None;
    }
    coordination(v)?.get("answer_to_ref")?.as_str()
}

/// An incident as read from its newest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentView {
    /// `incident--…`.
    pub id: String,
    /// `name`.
    pub title: String,
    /// `open` or `closed` (Incident Core `investigation_status`; anything else reads as
    /// open).
    pub status: String,
    /// `description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Incident Core `criticality` (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criticality: Option<u64>,
    /// Incident Core `determination`.
    pub determination: String,
    /// ISO 3166-1 alpha-2 codes.
    pub affects: Vec<String>,
    /// When closed: the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// `created_by_ref`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<String>,
    /// `created`.
    pub created: String,
    /// `modified`.
    pub modified: String,
    /// Event ids the incident lists (Incident Core `events[].event_ref`).
    #[serde(skip)]
    pub event_refs: Vec<String>,
}

/// Reads an incident with the Incident Core extension; `None` for anything else.
pub fn read_incident(v: &Value) -> Option<IncidentView> {
    if str_of(v, "type") != Some("incident") {
        return None;
    }
    let core = v.get("extensions")?.get(INCIDENT_CORE_EXTENSION)?;
    let co = coordination(v);
    let status = match core.get("investigation_status").and_then(Value::as_str) {
        Some("closed") => "closed",
        _ => "open",
    };
    Some(IncidentView {
        id: str_of(v, "id")?.to_owned(),
        title: str_of(v, "name").unwrap_or_default().to_owned(),
        status: status.to_owned(),
        description: str_of(v, "description").map(str::to_owned),
        criticality: core.get("criticality").and_then(Value::as_u64),
        determination: core
            .get("determination")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        affects: co
            .and_then(|c| c.get("affected_countries"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        outcome: co
            .and_then(|c| c.get("outcome"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        created_by_ref: str_of(v, "created_by_ref").map(str::to_owned),
        created: str_of(v, "created").unwrap_or_default().to_owned(),
        modified: str_of(v, "modified").unwrap_or_default().to_owned(),
        event_refs: core
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("event_ref").and_then(Value::as_str))
            .map(str::to_owned)
            .collect(),
    })
}

/// A request for assistance as read from its newest version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestView {
    /// `task--…`.
    pub id: String,
    /// The incident it belongs to.
    pub incident_id: String,
    /// The partner asked, as the requester names it.
    pub recipient: String,
    /// What is asked (`description`, else `name`).
    pub ask: String,
    /// When the answer is due.
    pub deadline: String,
    /// `priority`.
    pub priority: Option<u64>,
    /// The requester's identity.
    pub created_by: Option<String>,
    /// The requester's name as the request carries it ([`name_sender`]).
    pub sender_name: Option<String>,
    /// `created`.
    pub created: String,
}

/// Reads a request (a `task` whose coordination extension names an incident and a
/// recipient); `None` for anything else.
pub fn read_request(v: &Value) -> Option<RequestView> {
    if str_of(v, "type") != Some("task") {
        return None;
    }
    let co = coordination(v)?;
    if co.contains_key("answer_to_ref") {
        return None;
    }
    let s = |k: &str| co.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(RequestView {
        id: str_of(v, "id")?.to_owned(),
        incident_id: s("incident_ref")?,
        recipient: s("recipient")?,
        ask: str_of(v, "description")
            .or_else(|| str_of(v, "name"))
            .unwrap_or_default()
            .to_owned(),
        deadline: s("deadline")?,
        priority: v.get("priority").and_then(Value::as_u64),
        created_by: str_of(v, "created_by_ref").map(str::to_owned),
        sender_name: sender_name(v).map(str::to_owned),
        created: str_of(v, "created").unwrap_or_default().to_owned(),
    })
}

/// An answer as read from one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerView {
    /// `task--…` (the answer's own id).
    pub id: String,
    /// The request it answers.
    pub answer_to: String,
    /// Its status.
    pub status: AnswerStatus,
    /// The reason or outcome.
    pub note: Option<String>,
    /// The answering node's identity.
    pub created_by: Option<String>,
    /// The answering node's name as the answer carries it ([`name_sender`]).
    pub sender_name: Option<String>,
    /// `modified`: when this status was given.
    pub modified: String,
}

/// Reads an answer (a `task` whose coordination extension has `answer_to_ref` and a
/// status); `None` for anything else.
pub fn read_answer(v: &Value) -> Option<AnswerView> {
    let answer_to = answer_to(v)?.to_owned();
    let co = coordination(v)?;
    Some(AnswerView {
        id: str_of(v, "id")?.to_owned(),
        answer_to,
        status: AnswerStatus::parse(co.get("status")?.as_str()?)?,
        note: co.get("note").and_then(Value::as_str).map(str::to_owned),
        created_by: str_of(v, "created_by_ref").map(str::to_owned),
        sender_name: sender_name(v).map(str::to_owned),
        modified: str_of(v, "modified").unwrap_or_default().to_owned(),
    })
}

/// The latest status one answering node gave a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnswerState {
    /// The answer's id.
    pub id: String,
    /// Who answered: the name of its identity where the node holds it, else its id.
    pub by: String,
    /// The latest status.
    pub status: AnswerStatus,
    /// When it was given (the answer's `modified`).
    pub at: String,
    /// The reason (declined) or outcome (done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A request with its answers, as `incident list` and `show` print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskState {
    /// The request's id.
    pub id: String,
    /// The partner asked, as the requester names it.
    pub to: String,
    /// The requester: the name of its identity where held, else the `sender_name` the request
    /// carries, else its id.
    pub from: String,
    /// The requester's identity (`created_by_ref`).
    pub from_id: Option<String>,
    /// The latest status of any answer, `pending` without one.
    pub status: String,
    /// When that status was given (`null` while pending).
    pub status_at: Option<String>,
    /// The deadline (RFC 3339).
    pub deadline: String,
    /// Deadline passed and no terminal answer (declined, done).
    pub overdue: bool,
    /// What is asked.
    pub ask: String,
    /// `priority` (0–100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    /// When asked.
    pub created: String,
    /// Per answering node, the latest status and when.
    pub answers: Vec<AnswerState>,
}

/// An event the incident lists, as `show` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventState {
    /// `event--…`.
    pub id: String,
    /// `name`, else `description`.
    pub name: String,
    /// `status` (event-status-enum).
    pub status: String,
    /// `start_time`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
}

/// An incident with its requests and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncidentState {
    /// The incident.
    #[serde(flatten)]
    pub incident: IncidentView,
    /// Who opened it: the name of its creator's identity where the node holds it, else its
    /// id (empty without `created_by_ref`).
    pub opened_by: String,
    /// Its requests, oldest first.
    pub tasks: Vec<TaskState>,
    /// Its events (those the node holds), oldest first.
    pub events: Vec<EventState>,
}

/// Whether a request with `deadline` and the latest status `latest` is overdue at `now`:
/// the deadline passed and no terminal answer. An unreadable deadline is not overdue.
pub fn overdue(deadline: &str, latest: Option<AnswerStatus>, now: &Timestamp) -> bool {
    let passed = Timestamp::parse(deadline).is_ok_and(|d| d < *now);
    passed && !latest.is_some_and(AnswerStatus::is_terminal)
}

/// The incidents among `objects` (the newest version of each object the node holds; other
/// types are ignored), each with its requests, their answers and its events, at `now`;
/// newest incident first.
pub fn board(objects: &[Value], now: &Timestamp) -> Vec<IncidentState> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut events: HashMap<&str, &Value> = HashMap::new();
    for o in objects {
        match str_of(o, "type") {
            Some("identity") => {
                if let (Some(id), Some(n)) = (str_of(o, "id"), str_of(o, "name")) {
                    names.insert(id, n);
                }
            }
            Some("event") => {
                if let Some(id) = str_of(o, "id") {
                    events.insert(id, o);
                }
            }
            _ => {}
        }
    }
    // The name of the identity where held, else the name the object carries, else the id.
    let name_of = |id: Option<&str>, carried: Option<&str>| -> String {
        match (id.and_then(|id| names.get(id)), carried, id) {
            (Some(n), _, _) => (*n).to_owned(),
            (None, Some(c), _) => c.to_owned(),
            (None, None, Some(id)) => id.to_owned(),
            (None, None, None) => String::new(),
        }
    };
    let mut answers: BTreeMap<String, Vec<AnswerView>> = BTreeMap::new();
    let mut requests: BTreeMap<String, Vec<RequestView>> = BTreeMap::new();
    for o in objects {
        if let Some(a) = read_answer(o) {
            answers.entry(a.answer_to.clone()).or_default().push(a);
        } else if let Some(r) = read_request(o) {
            requests.entry(r.incident_id.clone()).or_default().push(r);
        }
    }
    let mut out: Vec<IncidentState> = objects
        .iter()
        .filter_map(read_incident)
        .map(|incident| {
            let mut tasks: Vec<TaskState> = requests
                .get(&incident.id)
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut given: Vec<AnswerState> = answers
                        .get(&r.id)
                        .into_iter()
                        .flatten()
                        .map(|a| AnswerState {
                            id: a.id.clone(),
                            by: name_of(a.created_by.as_deref(), a.sender_name.as_deref()),
                            status: a.status,
                            at: a.modified.clone(),
                            note: a.note.clone(),
                        })
                        .collect();
                    given.sort_by_key(|a| stamp(&a.at));
                    let latest = given.last();
                    TaskState {
                        id: r.id.clone(),
                        to: r.recipient.clone(),
                        from: name_of(r.created_by.as_deref(), r.sender_name.as_deref()),
                        from_id: r.created_by.clone(),
                        status: latest.map_or("pending", |a| a.status.as_str()).to_owned(),
                        status_at: latest.map(|a| a.at.clone()),
                        deadline: r.deadline.clone(),
                        overdue: overdue(&r.deadline, latest.map(|a| a.status), now),
                        ask: r.ask.clone(),
                        priority: r.priority,
                        created: r.created.clone(),
                        answers: given,
                    }
                })
                .collect();
            tasks.sort_by_key(|t| stamp(&t.created));
            let mut evs: Vec<EventState> = incident
                .event_refs
                .iter()
                .filter_map(|id| events.get(id.as_str()))
                .map(|e| EventState {
                    id: str_of(e, "id").unwrap_or_default().to_owned(),
                    name: str_of(e, "name")
                        .or_else(|| str_of(e, "description"))
                        .unwrap_or_default()
                        .to_owned(),
                    status: str_of(e, "status").unwrap_or_default().to_owned(),
                    start_time: str_of(e, "start_time").map(str::to_owned),
                })
                .collect();
            evs.sort_by(|a, b| a.start_time.cmp(&b.start_time));
            IncidentState {
                opened_by: name_of(incident.created_by_ref.as_deref(), None),
                incident,
                tasks,
                events: evs,
            }
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(stamp(&s.incident.created)));
    out
}

/// A timestamp's sort key (exact order whatever the precision); unreadable text sorts first.
fn stamp(text: &str) -> String {
    Timestamp::parse(text)
        .map(|t| t.sort_key())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn inputs_are_checked_naming_the_flag() {
        assert_eq!(parse_severity("high").unwrap(), 75);
        assert_eq!(parse_severity("40").unwrap(), 40);
        assert!(
            parse_severity("101")
                .unwrap_err()
                .to_string()
                .starts_with("--severity: \"101\"")
        );
        assert!(
            parse_priority("x")
                .unwrap_err()
                .to_string()
                .starts_with("--priority")
        );
        assert_eq!(parse_country("br").unwrap(), "BR");
        assert!(
            parse_country("BRA")
                .unwrap_err()
                .to_string()
                .contains("alpha-2")
        );
        assert!(
            parse_deadline("2026-12-08 12:00")
                .unwrap_err()
                .to_string()
                .starts_with("--deadline")
        );
        assert!(parse_deadline("2026-12-08T12:00:00Z").is_ok());
        // Two letters that name no country: refused, naming the code; each front end
        // names the field its own way.
        for code in ["XK", "ZZ", "UK", "EU", "xx"] {
            let e = parse_country(code).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "--affects: {code:?} is not an officially assigned ISO 3166-1 alpha-2 country code"
                )
            );
            assert!(
                e.message(Field::json)
                    .starts_with(&format!("affects: {code:?}"))
            );
        }
        for code in ["GB", "ss", "BQ", "ZW", "AD"] {
            assert_eq!(parse_country(code).unwrap(), code.to_ascii_uppercase());
        }
        // Sorted and without repeats (binary search), the 249 assigned codes.
        assert!(ISO_3166_1_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
    }

    /// A request, two answers of the recipient (two versions of its own task), a close:
    /// valid STIX 2.1 for this node's validator, and the state read back.
    #[test]
    fn request_answer_close_and_state() {
        let now = ts("2026-12-06T10:00:00.000000Z");
        let a = node_identity("CERT-CN", Some("CN"), &now);
        let b = node_identity("CERT-BR", Some("BR"), &now);
        let aid = a["id"].as_str().unwrap();
        let bid = b["id"].as_str().unwrap();
        let inc = incident(&NewIncident {
            title: "C2 in BR",
            description: Some("beaconing"),
            criticality: Some(75),
            affects: &["BR".into()],
            created_by_ref: aid,
            now: &now,
        })
        .unwrap();
        let deadline = ts("2026-12-07T00:00:00Z");
        let req = request(&NewRequest {
            incident_id: inc["id"].as_str().unwrap(),
            recipient: "cert-br",
            ask: "take down 203.0.113.7",
            deadline: &deadline,
            priority: Some(80),
            created_by_ref: aid,
            now: &now,
        })
        .unwrap();
        let t1 = ts("2026-12-06T11:00:00.000000Z");
        let ack = answer(&req, None, AnswerStatus::Acknowledged, None, bid, &t1).unwrap();
        let t2 = ts("2026-12-06T12:00:00.000000Z");
        let dec = answer(
            &req,
            Some(&ack),
            AnswerStatus::Declined,
            Some("no legal basis"),
            bid,
            &t2,
        )
        .unwrap();
        assert_eq!(dec["id"], ack["id"], "a new version of the same answer");
        assert_eq!(dec["outcome"], "cancelled");
        // Settled: no further answer; another node's answer cannot be versioned.
        assert!(answer(&req, Some(&dec), AnswerStatus::Done, None, bid, &t2).is_err());
        assert!(answer(&req, Some(&ack), AnswerStatus::Done, None, aid, &t2).is_err());
        let closed = close(&inc, Some("handled"), &t2).unwrap();
        assert!(close(&closed, None, &t2).is_err());
        // A stored incident whose coordination extension is not an object (written
        // elsewhere): an error naming it, not a panic.
        let mut odd = inc.clone();
        odd["extensions"][COORDINATION_EXTENSION] = json!("not an object");
        match close(&odd, Some("handled"), &t2) {
            Err(IncidentError::WrongObject { rule, .. }) => {
                assert!(rule.contains("coordination extension"), "{rule}")
            }
            other => panic!("{other:?}"),
        }
        for o in [&a, &b, &inc, &req, &ack, &dec, &closed] {
            concord_stix::validate_object(o).unwrap_or_else(|v| panic!("{o}: {v:?}"));
        }
        assert_eq!(answer_to(&dec), req["id"].as_str());
        assert_eq!(answer_to(&req), None);

        // Before the answers, after the deadline: pending and overdue.
        let late = ts("2026-12-08T00:00:00Z");
        let s = board(&[a.clone(), inc.clone(), req.clone()], &late);
        assert_eq!(s[0].tasks[0].status, "pending");
        assert!(s[0].tasks[0].overdue);
        assert_eq!(s[0].tasks[0].from, "CERT-CN");
        assert_eq!(s[0].opened_by, "CERT-CN");
        // Acknowledged only: still owed, so still overdue.
        let s = board(&[inc.clone(), req.clone(), ack.clone()], &late);
        assert_eq!(s[0].tasks[0].status, "acknowledged");
        assert!(s[0].tasks[0].overdue);
        // Declined (the newest version), the incident closed: settled.
        let s = board(&[a, b, closed, req, dec], &late);
        let t = &s[0].tasks[0];
        assert_eq!((t.status.as_str(), t.overdue), ("declined", false));
        assert_eq!(t.answers[0].by, "CERT-BR");
        assert_eq!(t.answers[0].note.as_deref(), Some("no legal basis"));
        assert_eq!(t.status_at.as_deref(), Some("2026-12-06T12:00:00.000000Z"));
        assert_eq!(s[0].incident.status, "closed");
        assert_eq!(s[0].incident.outcome.as_deref(), Some("handled"));
        assert_eq!(s[0].incident.affects, ["BR"]);
    }

    #[test]
    fn a_new_version_is_later_even_when_the_clock_is_not() {
        let t = ts("2026-12-06T10:00:00.000000Z");
        assert_eq!(
            later_than(&t, Some("2026-12-06T10:00:00.000000Z")).to_string(),
            "2026-12-06T10:00:00.000001Z"
        );
        assert_eq!(later_than(&t, Some("2026-12-06T09:00:00Z")), t);
    }
}
