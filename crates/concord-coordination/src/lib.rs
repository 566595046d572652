//! # concord-coordination: incident coordination on a node (issue 18)
//!
//! The operations an incident handler performs, against the node's store: open an incident,
//! request assistance from a partner, respond to a request addressed to this node, close an
//! incident, grant what one request needs, and read the board back (list, show). The
//! command line (`concord incident …`) and the web UI (`/ui/incidents…`) both call these
//! functions, so a state change made in either is validated, stored and audited the same
//! way.
//!
//! Every incident, request and answer is a STIX object ([`concord_incident`]) written into a
//! collection by one ingest (validated, one transaction, audited as door `incident-open`,
//! `incident-request`, `incident-respond`, `incident-close` or `incident-grant`, by the
//! `operator`). Who may receive a request or an answer is the egress policy's business: the
//! objects it needs are *addressed* to the recipient in the collection's sharing
//! ([`concord_policy::egress::CollectionSharing::addressed`]), in the same transaction, so
//! sync (push and pull) and TAXII reads deliver them through the egress door to that partner
//! alone, even where the collection is TLP:AMBER.
//!
//! Errors: [`DeskError::Refused`] for invalid input and [`DeskError::NotFound`] for an
//! unknown incident, request or partner, each a [`Refusal`]: the input at fault as a
//! [`Field`], which each front end names its own way (the CLI its flag `--deadline` or
//! argument `INCIDENT`, the admin API its JSON field `deadline`), and the rule broken; the
//! other variants are system errors (store, ingest, unreadable records).

use std::collections::HashMap;

pub mod release;

use concord_egress::{BASE_POLICY_VERSION, Door};
pub use concord_incident::Field;
use concord_incident::{
    AnswerStatus, IncidentError, IncidentState, NewIncident, NewRequest, TaskState,
};
use concord_ingest::{Accepted, Container, IngestOptions};
use concord_policy::egress::sharing_setting_key;
use concord_policy::pii::Category;
use concord_stix::Timestamp;
use concord_store::{
    Collection, NewCollection, ObjectFilter, PageRequest, Store, StoreError, VersionSelector,
};
use serde_json::{Value, json};

/// The setting that holds this node's identity object (STIX JSON): the `created_by_ref` of
/// its incidents, requests and answers.
pub const IDENTITY_SETTING: &str = "incident/identity";
/// The collection incidents go to when none is named.
pub const DEFAULT_COLLECTION: &str = "incidents";
/// Who the audit records of these operations name (the node's operator, whether at the
/// command line or logged in to the web UI with the admin token).
pub const OPERATOR: &str = "operator";

/// What was refused or not found: the input it concerns, if one, and the rule broken or
/// what is missing. `Display` names the input as the command line does
/// ([`Field::flag`], `--deadline: …`); [`Refusal::message`] lets another front end name
/// it its own way (the admin API: [`Field::json`], `deadline: …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The input (flag, argument, JSON field) at fault; `None` when the rule is not one
    /// input's (an object too large, an object the validator refused).
    pub field: Option<Field>,
    /// The rule broken, or what is missing, without the input's name.
    pub rule: String,
}

impl Refusal {
    /// The message with the input named by `name`.
    pub fn message(&self, name: impl Fn(Field) -> &'static str) -> String {
        match self.field {
            Some(f) => format!("{}: {}", name(f), self.rule),
            None => self.rule.clone(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(Field::flag))
    }
}

/// Why an operation did nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// Invalid input: the input and the rule broken. Nothing was written.
    #[error("{0}")]
    Refused(Refusal),
    /// What the input names does not exist on this node (the incident, the request, the
    /// partner): the input and what is missing. Nothing was written. Its own variant so
    /// that the admin API answers it 404, as it answers every other unknown name.
    #[error("{0}")]
    NotFound(Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A collection's sharing is unreadable.
    #[error(transparent)]
    Egress(#[from] concord_egress::EgressError),
    /// The peers are unreadable.
    #[error(transparent)]
    Peers(#[from] concord_sync::PeerError),
    /// The ingest failed (not for invalid input: that is [`DeskError::Refused`]).
    #[error(transparent)]
    Ingest(concord_ingest::IngestError),
    /// A stored record (an object or the identity setting) is not JSON.
    #[error("{what}: unreadable: {source}")]
    Unreadable {
        /// The object id or setting.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl From<IncidentError> for DeskError {
    fn from(e: IncidentError) -> Self {
        DeskError::Refused(match e {
            IncidentError::Invalid { field, rule } => Refusal {
                field: Some(field),
                rule,
            },
            other => Refusal {
                field: None,
                rule: other.to_string(),
            },
        })
    }
}

type Result<T> = std::result::Result<T, DeskError>;

/// Refused: `field` breaks `rule`.
fn refuse<T>(field: Field, rule: impl Into<String>) -> Result<T> {
    Err(DeskError::Refused(Refusal {
        field: Some(field),
        rule: rule.into(),
    }))
}

/// Not found: what `field` names is missing.
fn missing<T>(field: Field, what: impl Into<String>) -> Result<T> {
    Err(DeskError::NotFound(Refusal {
        field: Some(field),
        rule: what.into(),
    }))
}

/// The node the operations act on.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// Its store.
    pub store: &'a dyn Store,
    /// Its `max_object_size` (bytes, concord.toml), the cap every way in applies to each
    /// object; an `--ask` or `--note` that makes an object larger is refused.
    pub max_object_size: u64,
    /// Its `title` (concord.toml), which names its identity when first made (with the
    /// jurisdiction: `CERT-CN CN`); `Concord node` when empty.
    pub title: &'a str,
    /// Its jurisdiction (ISO 3166-1 alpha-2, the `jurisdiction` setting), if recorded: it
    /// names its identity when first made.
    pub jurisdiction: Option<&'a str>,
    /// Who acts (issue 20), as the audit entries name it: `user:NAME`, `admin-token`,
    /// `operator`; `None`: no one named.
    pub person: Option<&'a str>,
}

/// This node's identity object, created on first use (`identity_class` organization, named
/// by the node's title and jurisdiction, e.g. `Concord node CN`) and kept in the settings.
pub fn identity(node: &Node<'_>, now: &Timestamp) -> Result<Value> {
    let store = node.store;
    if let Some(text) = store.setting(IDENTITY_SETTING)? {
        return serde_json::from_str(&text).map_err(|source| DeskError::Unreadable {
            what: format!("setting {IDENTITY_SETTING}"),
            source,
        });
    }
    let jurisdiction = node.jurisdiction;
    let title = if node.title.is_empty() {
        "Concord node"
    } else {
        node.title
    };
    let name = match jurisdiction {
        Some(cc) => format!("{title} {cc}"),
        None => title.to_owned(),
    };
    let v = concord_incident::node_identity(&name, jurisdiction, now);
    store.set_setting(IDENTITY_SETTING, &v.to_string())?;
    Ok(v)
}

/// The id of this node's identity, if it has made one yet.
pub fn me_id(store: &dyn Store) -> Result<Option<String>> {
    Ok(store
        .setting(IDENTITY_SETTING)?
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|v| id_of(&v).to_owned()))
}

fn id_of(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or_default()
}

fn parse_body(id: &str, body: Option<&str>) -> Result<Value> {
    serde_json::from_str(body.unwrap_or("null")).map_err(|source| DeskError::Unreadable {
        what: id.to_owned(),
        source,
    })
}

/// The newest version of object `id` and the collection holding it (the first, in the
/// store's order, when several do).
fn find(store: &dyn Store, id: &str) -> Result<Option<(Collection, Value)>> {
    Ok(find_entry(store, id)?.map(|(c, v, _)| (c, v)))
}

/// [`find`] with the version's entry (its row, for an audit record).
fn find_entry(
    store: &dyn Store,
    id: &str,
) -> Result<Option<(Collection, Value, concord_store::Entry)>> {
    let filter = ObjectFilter {
        ids: vec![id.to_owned()],
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    for c in store.collections()? {
        let page = store.entries(
            &c.id,
            &filter,
            &PageRequest {
                limit: 1,
                after: None,
            },
            true,
        )?;
        if let Some(e) = page.entries.into_iter().next() {
            let v = parse_body(id, e.body.as_deref())?;
            return Ok(Some((c, v, e)));
        }
    }
    Ok(None)
}

/// The newest version of every incident, task, identity and event the node holds, one per
/// id (the newest `modified` when several collections hold one), with its collection.
fn holdings(store: &dyn Store) -> Result<Vec<(String, Value)>> {
    let filter = ObjectFilter {
        types: ["incident", "task", "identity", "event"]
            .map(str::to_owned)
            .to_vec(),
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    let mut newest: HashMap<String, (String, String, Value)> = HashMap::new();
    for c in store.collections()? {
        concord_store::each_entry(store, &c.id, &filter, |e| -> Result<()> {
            let Ok(v) = serde_json::from_str::<Value>(e.body.as_deref().unwrap_or("null")) else {
                return Ok(());
            };
            match newest.get(&e.id) {
                Some((_, key, _)) if *key >= e.version_key => {}
                _ => {
                    newest.insert(e.id.clone(), (c.id.clone(), e.version_key.clone(), v));
                }
            }
            Ok(())
        })?;
    }
    Ok(newest.into_values().map(|(c, _, v)| (c, v)).collect())
}

/// An operator's grant: `partner` receives the `categories` of personal data as written in
/// the object `scope` and what refers to it.
struct Grant<'a> {
    scope: &'a str,
    partner: &'a str,
    categories: &'a [Category],
}

/// Writes `objects` into collection `target` (created when missing) in one ingest: validated,
/// audited as `door` (each record naming the partners it is addressed to), and, in the same
/// transaction, each `(object id, partner)` of `address` added to the collection's
/// addressed objects. Refused (nothing written): an object the node's validator rejects.
fn write(
    node: &Node<'_>,
    target: &str,
    door: &str,
    objects: &[&Value],
    address: &[(&str, &str)],
    grant: Option<&Grant<'_>>,
) -> Result<Collection> {
    let store = node.store;
    let existing = store.collection(target)?;
    let collection = match &existing {
        Some(c) => c.clone(),
        None => {
            if let Err(e) = concord_store::check_alias(target) {
                return refuse(Field::Collection, e.to_string());
            }
            NewCollection {
                alias: target.to_owned(),
                ..Default::default()
            }
            .with_new_id()
        }
    };
    let mut sharing = concord_egress::collection_sharing(store, &collection.id)?;
    let mut notes: HashMap<&str, Vec<String>> = HashMap::new();
    let mut by: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, partner) in address {
        sharing.address(id, partner);
        by.entry(id).or_default().push(partner);
    }
    for (id, partners) in by {
        notes
            .entry(id)
            .or_default()
            .push(format!("addressed to {}", partners.join(", ")));
    }
    if let Some(g) = grant {
        let cs = sharing
            .grants
            .entry(g.scope.to_owned())
            .or_default()
            .entry(g.partner.to_owned())
            .or_default();
        for c in g.categories {
            if !cs.contains(c) {
                cs.push(*c);
            }
        }
        notes.entry(g.scope).or_default().push(format!(
            "grant: {} as written to {} in this incident and what refers to it",
            g.categories
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            g.partner
        ));
    }
    let sharing_key = sharing_setting_key(&collection.id);
    let sharing_json = sharing.to_json();
    let settings: Vec<(&str, &str)> = if address.is_empty() && grant.is_none() {
        Vec::new()
    } else {
        vec![(sharing_key.as_str(), sharing_json.as_str())]
    };
    let d = Door {
        door,
        partner: OPERATOR,
        person: node.person,
        collection: &collection.id,
        policy_version: BASE_POLICY_VERSION,
    };
    let make = |accepted: &[Accepted]| -> Vec<concord_store::AuditRecord> {
        accepted
            .iter()
            .map(|a| {
                let mut r = d.ingress(a.vid, &a.id, &a.version, a.added);
                if let Some(n) = notes.get(a.id.as_str()) {
                    r.transformations = n.clone();
                }
                r
            })
            .collect()
    };
    let bundle = json!({
        "type": "bundle",
        "id": concord_incident::new_id("bundle"),
        "objects": objects,
    })
    .to_string();
    let options = IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: Some(&make),
        provenance: &[],
        settings: &settings,
        max_object_size: node.max_object_size,
        cancel: None,
        unseen: None,
    };
    let report = match existing {
        Some(_) => {
            concord_ingest::ingest(store, &collection.id, bundle.as_bytes(), options, |_| {})
        }
        None => {
            concord_ingest::ingest_creating(store, &collection, bundle.as_bytes(), options, |_| {})
        }
    }
    .map_err(|e| match e {
        // Too large for `max_object_size` (an --ask or --note of megabytes): invalid input.
        concord_ingest::IngestError::Container(b) => DeskError::Refused(Refusal {
            field: None,
            rule: format!("{b} (max_object_size in concord.toml)"),
        }),
        e => DeskError::Ingest(e),
    })?;
    if let Some(r) = report.rejected.first() {
        // Nothing this node makes should be refused by its own validator: say what and why.
        return Err(DeskError::Refused(Refusal {
            field: None,
            rule: format!(
                "{}: {}",
                r.id.as_deref().unwrap_or("?"),
                r.reasons.join("; ")
            ),
        }));
    }
    Ok(collection)
}

/// What `open` records (the flags of `concord incident open`, the fields of the web form).
#[derive(Clone, Debug, Default)]
pub struct OpenInput<'a> {
    /// Its title (`name`); must not be empty.
    pub title: &'a str,
    /// Its description.
    pub description: Option<&'a str>,
    /// Its criticality: 0–100, or none, low, medium, high, critical.
    pub severity: Option<&'a str>,
    /// The collection it is kept in (alias or id; created when missing).
    pub collection: &'a str,
    /// The countries it reaches into (ISO 3166-1 alpha-2).
    pub affects: &'a [String],
}

/// An incident opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// `incident--…`.
    pub id: String,
    /// The collection it is kept in: its alias, else its id.
    pub collection: String,
}

/// Opens an incident (a STIX `incident` with Incident Core, `investigation_status` open),
/// audited as door `incident-open`. Refused: an empty title, a bad severity or country, a
/// new collection alias that breaks the alias rule.
pub fn open(node: &Node<'_>, input: &OpenInput<'_>, now: &Timestamp) -> Result<Opened> {
    let criticality = input
        .severity
        .map(concord_incident::parse_severity)
        .transpose()?;
    let affects = input
        .affects
        .iter()
        .map(|c| concord_incident::parse_country(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let me = identity(node, now)?;
    let incident = concord_incident::incident(&NewIncident {
        title: input.title,
        description: input.description,
        criticality,
        affects: &affects,
        created_by_ref: id_of(&me),
        now,
    })?;
    let c = write(
        node,
        input.collection,
        "incident-open",
        &[&me, &incident],
        &[],
        None,
    )?;
    Ok(Opened {
        id: id_of(&incident).to_owned(),
        collection: c.alias.clone().unwrap_or(c.id),
    })
}

/// The peers that carry collection `collection` to or from `partner`'s node: those whose
/// egress partner is `partner` and that map the collection.
fn peers_for(peers: &[concord_sync::Peer], partner: &str, collection: &str) -> Vec<String> {
    peers
        .iter()
        .filter(|p| p.partner.as_deref() == Some(partner))
        .filter(|p| p.mappings.iter().any(|m| m.local == collection))
        .map(|p| p.name.clone())
        .collect()
}

/// What `request` records.
#[derive(Clone, Debug, Default)]
pub struct RequestInput<'a> {
    /// The incident (its id).
    pub incident: &'a str,
    /// The partner asked (its name on this node).
    pub to: &'a str,
    /// What is asked.
    pub ask: &'a str,
    /// When the answer is due (RFC 3339 in UTC).
    pub deadline: &'a str,
    /// Its priority: 0–100, or none, low, medium, high, critical.
    pub priority: Option<&'a str>,
}

/// A request for assistance made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requested {
    /// The task's id.
    pub id: String,
    /// The incident.
    pub incident: String,
    /// The partner asked.
    pub to: String,
    /// The deadline (RFC 3339).
    pub deadline: String,
    /// The peers that carry it to the partner's node (none: it stays pending here).
    pub peers: Vec<String>,
}

impl Requested {
    /// How the request travels, in a sentence.
    pub fn delivery(&self) -> String {
        if self.peers.is_empty() {
            format!(
                "{} is not a peer of this collection: the request stays pending here",
                self.to
            )
        } else {
            format!(
                "goes to {} with the next sync round (peer {})",
                self.to,
                self.peers.join(", ")
            )
        }
    }
}

/// Asks a partner for assistance: a STIX `task` addressed to it (with its incident and the
/// requester's identity) in the incident's collection, audited as door `incident-request`.
/// Refused: a deadline that is not RFC 3339 in UTC or not after `now`, a bad priority, an
/// empty ask, a closed incident; not found: an unknown partner or incident.
pub fn request(node: &Node<'_>, input: &RequestInput<'_>, now: &Timestamp) -> Result<Requested> {
    let store = node.store;
    let (incident_id, to) = (input.incident, input.to);
    let deadline = concord_incident::parse_deadline(input.deadline)?;
    // A deadline already passed asks for the impossible, and the request would be overdue
    // the moment it arrives.
    if deadline <= *now {
        return refuse(
            Field::Deadline,
            format!(
                "{:?} is in the past: a request's answer is due after now ({now})",
                input.deadline
            ),
        );
    }
    let priority = input
        .priority
        .map(concord_incident::parse_priority)
        .transpose()?;
    if !store.partners()?.iter().any(|p| p.name == to) {
        return missing(
            Field::To,
            format!("no partner named {to:?} on this node (concord partner list)"),
        );
    }
    let Some((c, incident)) = find(store, incident_id)? else {
        return missing(
            Field::Incident,
            format!("no incident {incident_id} on this node"),
        );
    };
    let Some(view) = concord_incident::read_incident(&incident) else {
        return missing(
            Field::Incident,
            format!("{incident_id} is not an incident with the Incident Core extension"),
        );
    };
    if view.status == "closed" {
        return refuse(Field::Incident, format!("{incident_id} is closed"));
    }
    let me = identity(node, now)?;
    // A request addresses the incident to its recipient: only the node that opened it may
    // share it so (another node's incident would be forwarded to a third partner).
    if incident.get("created_by_ref").and_then(Value::as_str) != Some(id_of(&me)) {
        return refuse(
            Field::Incident,
            format!(
                "{incident_id} was opened by another node; a request for assistance \
             on it would share it with {to:?}, which only its creator may do"
            ),
        );
    }
    let task = concord_incident::request(&NewRequest {
        incident_id,
        recipient: to,
        ask: input.ask,
        deadline: &deadline,
        priority,
        created_by_ref: id_of(&me),
        now,
    })?;
    // What the recipient needs to read the request: the task and its incident. No identity
    // is addressed (the egress rule does not follow `created_by_ref`, and an addressed
    // identity is one more object the partner receives); the requester's name travels in
    // the request itself (`sender_name`).
    let mut task = task;
    concord_incident::name_sender(&mut task, &me);
    let address = vec![(id_of(&task), to), (incident_id, to)];
    let c = write(
        node,
        &c.id,
        "incident-request",
        &[&me, &task],
        &address,
        None,
    )?;
    let peers = peers_for(&concord_sync::peers(store)?, to, &c.id);
    Ok(Requested {
        id: id_of(&task).to_owned(),
        incident: incident_id.to_owned(),
        to: to.to_owned(),
        deadline: deadline.to_string(),
        peers,
    })
}

/// The partner a request came from: the partner whose TAXII POST brought it, or the partner
/// of the peer it was pulled from (sync provenance, [`concord_store::partner_provenance`]),
/// else the partner the audit log's ingress names (versions written before provenance was
/// kept for POSTs).
fn requester(store: &dyn Store, task_id: &str) -> Result<Option<String>> {
    let peers = concord_sync::peers(store)?;
    // Its creator first: a partner's foreign write under the request's id is provenance
    // too, and must not turn the answer towards it.
    for name in store.creators(task_id)? {
        if let Some(partner) = name.strip_prefix("partner/") {
            return Ok(Some(partner.to_owned()));
        }
    }
    for name in store.received_from(task_id, None)? {
        if name.starts_with("partner/") {
            continue;
        }
        if let Some(p) = peers
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.partner.clone())
        {
            return Ok(Some(p));
        }
    }
    let vids: Vec<i64> = store
        .audit_versions_of(task_id)?
        .into_iter()
        .map(|v| v.vid)
        .collect();
    if vids.is_empty() {
        return Ok(None);
    }
    let entries = store.audit_entries(&concord_store::AuditQuery {
        after_seq: 0,
        before_seq: None,
        partner: None,
        vids,
        limit: 100,
        newest_first: false,
    })?;
    let partners: Vec<String> = store.partners()?.into_iter().map(|p| p.name).collect();
    Ok(entries
        .into_iter()
        .find(|e| {
            e.direction == "ingress" && e.door == "taxii-post" && partners.contains(&e.partner)
        })
        .map(|e| e.partner))
}

/// An answer given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responded {
    /// The answer's id (the same for every status this node gives the request).
    pub id: String,
    /// The request answered.
    pub task: String,
    /// The status given.
    pub status: AnswerStatus,
    /// The partner the answer goes home to.
    pub to: String,
    /// The answer's new `modified`.
    pub version: Option<String>,
}

/// Answers a request addressed to this node (`status`: acknowledged, accepted, declined,
/// done; `note`: the reason or outcome): a new version of this node's answer, addressed to
/// the partner that sent the request, audited as door `incident-respond`. Not found: an
/// unknown task or one that is not a request. Refused: an unknown status, a decline without
/// a reason, a request this node made, a request whose sender is unknown, a settled
/// request.
pub fn respond(
    node: &Node<'_>,
    task_id: &str,
    status: &str,
    note: Option<&str>,
    now: &Timestamp,
) -> Result<Responded> {
    let store = node.store;
    let Some(status) = AnswerStatus::parse(status) else {
        return refuse(
            Field::Status,
            format!("{status:?} is not acknowledged, accepted, declined or done"),
        );
    };
    // The request first: an unknown one (or an object that is no request) is that, whatever
    // the rest says, so the admin API's 404 does not depend on the other fields.
    let Some((c, task)) = find(store, task_id)? else {
        return missing(Field::Task, format!("no request {task_id} on this node"));
    };
    let Some(req) = concord_incident::read_request(&task) else {
        return missing(
            Field::Task,
            format!(
                "{task_id} is not a request for assistance (a task with Concord's coordination extension)"
            ),
        );
    };
    if status == AnswerStatus::Declined && note.is_none_or(str::is_empty) {
        return refuse(Field::Note, "a request is declined with a reason");
    }
    let me = identity(node, now)?;
    if req.created_by.as_deref() == Some(id_of(&me)) {
        return refuse(
            Field::Task,
            format!("{task_id} was made by this node; its recipient answers it"),
        );
    }
    let Some(home) = requester(store, task_id)? else {
        return refuse(
            Field::Task,
            format!(
                "cannot tell which partner sent {task_id} (it came neither by sync from a peer with a partner nor by a partner's TAXII POST), so the answer could go to no one"
            ),
        );
    };
    // This node's earlier answer, if any: the answer is versioned, not repeated.
    let previous = holdings(store)?
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| {
            concord_incident::read_answer(v).is_some_and(|a| {
                a.answer_to == task_id && a.created_by.as_deref() == Some(id_of(&me))
            })
        })
        .max_by_key(|v| {
            v.get("modified")
                .and_then(Value::as_str)
                .and_then(|m| Timestamp::parse(m).ok())
                .map(|t| t.sort_key())
                .unwrap_or_default()
        });
    let mut answer =
        concord_incident::answer(&task, previous.as_ref(), status, note, id_of(&me), now)?;
    concord_incident::name_sender(&mut answer, &me);
    // The answer alone is addressed home: the request and its incident are the requester's
    // own, and no identity is addressed (the answer carries its sender's name).
    let address = vec![(id_of(&answer), home.as_str())];
    write(
        node,
        &c.id,
        "incident-respond",
        &[&me, &answer],
        &address,
        None,
    )?;
    Ok(Responded {
        id: id_of(&answer).to_owned(),
        task: task_id.to_owned(),
        status,
        to: home.clone(),
        version: answer
            .get("modified")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Closes an incident this node opened (a new version, `investigation_status` closed, with
/// the `outcome`), audited as door `incident-close`. Not found: an unknown incident, or an
/// object that is none.
/// Refused: one opened by another node (only an object's creator may version it), one
/// already closed.
pub fn close(
    node: &Node<'_>,
    incident_id: &str,
    outcome: Option<&str>,
    now: &Timestamp,
) -> Result<()> {
    let store = node.store;
    let Some((c, incident)) = find(store, incident_id)? else {
        return missing(
            Field::Incident,
            format!("no incident {incident_id} on this node"),
        );
    };
    if concord_incident::read_incident(&incident).is_none() {
        return missing(
            Field::Incident,
            format!("{incident_id} is not an incident with the Incident Core extension"),
        );
    }
    let me = identity(node, now)?;
    if incident.get("created_by_ref").and_then(Value::as_str) != Some(id_of(&me)) {
        return refuse(
            Field::Incident,
            format!(
                "{incident_id} was opened by another node; only an object's creator may version it (STIX 2.1 §3.6)"
            ),
        );
    }
    let closed = concord_incident::close(&incident, outcome, now)?;
    // The new version keeps the incident's id, so it goes where the incident was addressed.
    write(node, &c.id, "incident-close", &[&closed], &[], None)?;
    Ok(())
}

/// Grants what one request needs: partner `to` receives the personal data of each category
/// of `allow` (as `email`, `ip_address`, …) as written in the incident and in every object
/// that refers to it; kept in the collection's sharing and audited (door
/// `incident-grant`). Returns the categories. Refused: no category, an unknown one; not
/// found: an unknown partner or incident.
pub fn grant(
    node: &Node<'_>,
    incident_id: &str,
    to: &str,
    allow: &[String],
) -> Result<Vec<Category>> {
    let (categories, c, incident, _) = check_grant(node, incident_id, to, allow)?;
    // The incident's current version again (already present): its audit record carries the
    // grant, in the transaction that writes it.
    let g = Grant {
        scope: incident_id,
        partner: to,
        categories: &categories,
    };
    write(node, &c.id, "incident-grant", &[&incident], &[], Some(&g))?;
    Ok(categories)
}

/// The checks of [`grant`]: the categories read, the incident's collection, its current
/// version and that version's entry.
pub(crate) fn check_grant(
    node: &Node<'_>,
    incident_id: &str,
    to: &str,
    allow: &[String],
) -> Result<(Vec<Category>, Collection, Value, concord_store::Entry)> {
    let store = node.store;
    if allow.is_empty() {
        return refuse(
            Field::Allow,
            "give at least one category of personal data to grant",
        );
    }
    let mut categories = Vec::new();
    for a in allow {
        match serde_json::from_value::<Category>(json!(a)) {
            Ok(c) => categories.push(c),
            Err(_) => {
                return refuse(
                    Field::Allow,
                    format!(
                        "{a:?} is not a category of personal data ({})",
                        Category::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
    if !store.partners()?.iter().any(|p| p.name == to) {
        return missing(
            Field::To,
            format!("no partner named {to:?} on this node (concord partner list)"),
        );
    }
    let Some((c, incident, entry)) = find_entry(store, incident_id)? else {
        return missing(
            Field::Incident,
            format!("no incident {incident_id} on this node"),
        );
    };
    if concord_incident::read_incident(&incident).is_none() {
        return missing(
            Field::Incident,
            format!("{incident_id} is not an incident with the Incident Core extension"),
        );
    }
    Ok((categories, c, incident, entry))
}

/// What an approved change writes: settings and partner records (both compare-and-set) and
/// audit records.
pub(crate) type Applied = (
    Vec<concord_store::SettingChange>,
    Vec<concord_store::PartnerSwap>,
    Vec<concord_store::AuditRecord>,
);

/// What applying a grant approved by a second person (four-eyes release, [`release`])
/// writes, in the transaction that records the approval: the collection's sharing with the
/// grant (a setting), and the audit record of door `incident-grant` on the incident's
/// current version, naming the approver (`node.person`) and `requested_by`.
pub(crate) fn grant_parts(
    node: &Node<'_>,
    incident_id: &str,
    to: &str,
    allow: &[String],
    requested_by: &str,
) -> Result<Applied> {
    let (categories, c, _, entry) = check_grant(node, incident_id, to, allow)?;
    let (expected, mut sharing) = release::read_sharing(node.store, &c.id)?;
    let cs = sharing
        .grants
        .entry(incident_id.to_owned())
        .or_default()
        .entry(to.to_owned())
        .or_default();
    for cat in &categories {
        if !cs.contains(cat) {
            cs.push(*cat);
        }
    }
    let d = Door {
        door: "incident-grant",
        partner: OPERATOR,
        person: node.person,
        collection: &c.id,
        policy_version: BASE_POLICY_VERSION,
    };
    let mut r = d.ingress(entry.vid, &entry.id, &entry.version(), false);
    r.transformations = vec![
        format!(
            "grant: {} as written to {to} in this incident and what refers to it",
            categories
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("requested by {requested_by}"),
        format!("approved by {}", node.person.unwrap_or(OPERATOR)),
    ];
    Ok((
        vec![concord_store::SettingChange {
            key: sharing_setting_key(&c.id),
            expected,
            value: sharing.to_json(),
        }],
        Vec::new(),
        vec![r],
    ))
}

/// How a request travels, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Way {
    /// Made here: the peers that carry it to its recipient (none: it stays pending).
    Outgoing {
        /// Peer names.
        peers: Vec<String>,
    },
    /// Received: the peers it was pulled from (empty when a partner POSTed it).
    Incoming {
        /// Peer names.
        received_from: Vec<String>,
    },
}

/// An incident as this node tracks it: its state (requests, answers, events), the
/// collection holding it, and per request (in the order of `state.tasks`) its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// The incident, its requests with their answers, its events.
    pub state: IncidentState,
    /// The collection's id.
    pub collection: String,
    /// Per request of `state.tasks`, its way.
    pub ways: Vec<Way>,
}

impl Tracked {
    /// The JSON document `concord incident list` and `show` print per incident: the state,
    /// and per request `direction` (`outgoing`, `incoming`), for an outgoing one `peers`
    /// and `delivery` (`by sync` or `not a peer`), for an incoming one `received_from`.
    pub fn to_json(&self) -> Value {
        let mut doc = serde_json::to_value(&self.state).unwrap_or(Value::Null);
        if let Some(tasks) = doc["tasks"].as_array_mut() {
            for (t, way) in tasks.iter_mut().zip(&self.ways) {
                match way {
                    Way::Outgoing { peers } => {
                        t["direction"] = json!("outgoing");
                        t["delivery"] = json!(if peers.is_empty() {
                            "not a peer"
                        } else {
                            "by sync"
                        });
                        t["peers"] = json!(peers);
                    }
                    Way::Incoming { received_from } => {
                        t["direction"] = json!("incoming");
                        t["received_from"] = json!(received_from);
                    }
                }
            }
        }
        doc
    }
}

/// Whether this node (identity `me`) made the request `s`.
pub fn made_by(s: &TaskState, me: &str) -> bool {
    s.from_id.as_deref() == Some(me)
}

/// Every incident this node holds, newest first, with its requests (each with the latest
/// status of every answering node, and whether it is overdue at `now`), its events and the
/// way of each request.
pub fn board(store: &dyn Store, now: &Timestamp) -> Result<Vec<Tracked>> {
    let held = holdings(store)?;
    let collections: HashMap<String, String> = held
        .iter()
        .map(|(c, v)| (id_of(v).to_owned(), c.clone()))
        .collect();
    let objects: Vec<Value> = held.into_iter().map(|(_, v)| v).collect();
    let states = concord_incident::board(&objects, now);
    let me = me_id(store)?;
    let peers = concord_sync::peers(store)?;
    let mut out = Vec::with_capacity(states.len());
    for state in states {
        let mut ways = Vec::with_capacity(state.tasks.len());
        for t in &state.tasks {
            ways.push(if me.as_deref().is_some_and(|me| made_by(t, me)) {
                let c = collections.get(&t.id).map(String::as_str).unwrap_or("");
                Way::Outgoing {
                    peers: peers_for(&peers, &t.to, c),
                }
            } else {
                Way::Incoming {
                    received_from: store.received_from(&t.id, None)?,
                }
            });
        }
        out.push(Tracked {
            collection: collections
                .get(&state.incident.id)
                .cloned()
                .unwrap_or_default(),
            state,
            ways,
        });
    }
    Ok(out)
}

/// One incident as [`board`] reads it; refused when the node holds no incident `id`.
pub fn show(store: &dyn Store, id: &str, now: &Timestamp) -> Result<Tracked> {
    match board(store, now)?
        .into_iter()
        .find(|t| t.state.incident.id == id)
    {
        Some(t) => Ok(t),
        None => missing(Field::Id, format!("no incident {id} on this node")),
    }
}
