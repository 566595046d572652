//! `concord incident open|request|respond|list|show|close` (issue 18): cross-border incident
//! coordination over the node's ordinary doors.
//!
//! Every incident, request and answer is a STIX object ([`concord_incident`]) written into a
//! collection by one ingest (validated, one transaction, audited as door `incident-open`,
//! `incident-request`, `incident-respond` or `incident-close`). Who may receive a request or
//! an answer is the egress policy's business: the objects it needs are *addressed* to the
//! recipient in the collection's sharing ([`CollectionSharing::addressed`]), in the same
//! transaction, so sync (push and pull) and TAXII reads deliver them through the egress door
//! to that partner alone, even where the collection is TLP:AMBER.

use std::collections::HashMap;

use anyhow::{Context, Result};
use clap::Subcommand;
use concord_egress::{BASE_POLICY_VERSION, Door};
use concord_incident::{
    AnswerStatus, IncidentError, IncidentState, NewIncident, NewRequest, TaskState,
};
use concord_ingest::{Accepted, Container, IngestOptions};
use concord_policy::egress::sharing_setting_key;
use concord_policy::pii::Category;
use concord_stix::Timestamp;
use concord_store::{Collection, NewCollection, ObjectFilter, PageRequest, Store, VersionSelector};
use serde_json::{Value, json};

use crate::DataDirArg;
use crate::config::Config;

/// The setting that holds this node's identity object (STIX JSON): the `created_by_ref` of
/// its incidents, requests and answers.
const IDENTITY_SETTING: &str = "incident/identity";
/// The collection incidents go to without `--collection`.
const DEFAULT_COLLECTION: &str = "incidents";

/// `concord incident …`.
#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Open an incident (a STIX `incident` with the Incident Core extension); prints its id.
    Open {
        #[command(flatten)]
        data: DataDirArg,
        /// Its title (`name`).
        #[arg(long, value_name = "T")]
        title: String,
        /// Its description.
        #[arg(long, value_name = "D")]
        description: Option<String>,
        /// Its criticality: 0–100, or none, low, medium, high, critical.
        #[arg(long, value_name = "S")]
        severity: Option<String>,
        /// The collection it is kept in (alias or id; created when missing).
        #[arg(long, value_name = "C", default_value = DEFAULT_COLLECTION)]
        collection: String,
        /// A country the incident reaches into (ISO 3166-1 alpha-2); repeatable.
        #[arg(long, value_name = "CC")]
        affects: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Ask a partner for assistance (a STIX `task` addressed to it); prints the task's id.
    /// The request travels by sync to the partner's node, and to no other partner.
    Request {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The partner asked (its name on this node).
        #[arg(long, value_name = "PARTNER")]
        to: String,
        /// What is asked.
        #[arg(long, value_name = "TEXT")]
        ask: String,
        /// When the answer is due (RFC 3339 in UTC, e.g. 2026-12-08T12:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        deadline: String,
        /// Its priority: 0–100, or none, low, medium, high, critical.
        #[arg(long, value_name = "P")]
        priority: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Answer a request addressed to this node: acknowledged, accepted, declined (say why
    /// in --note) or done (say the outcome in --note). The answer goes home by sync.
    Respond {
        #[command(flatten)]
        data: DataDirArg,
        /// The request (its task id).
        task: String,
        /// acknowledged, accepted, declined or done.
        #[arg(long, value_name = "STATUS")]
        status: String,
        /// The reason (declined) or the outcome (done).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List incidents with their requests: per request who asked whom, the latest status,
    /// the deadline and whether it is overdue.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Only open or only closed incidents.
        #[arg(long, value_name = "STATUS", value_parser = ["open", "closed"])]
        status: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident: its requests with every answer (per answering node the latest
    /// status and when) and its events.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        id: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Grant what one request needs: PARTNER receives the personal data of each CATEGORY as
    /// written (not pseudonymised, redacted or dropped) in this incident and in every object
    /// that refers to it (its requests and answers), whatever the policy's tables say.
    /// Audited (door `incident-grant`); `policy explain` names the grant.
    Grant {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The partner (its name on this node).
        #[arg(long, value_name = "PARTNER")]
        to: String,
        /// A category of personal data: email, phone, ip_address, national_id, payment_card,
        /// iban, person_name, user_account, email_address_object; repeatable.
        #[arg(long, value_name = "CATEGORY", required = true)]
        allow: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Close an incident this node opened (a new version, `investigation_status` closed).
    Close {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The outcome.
        #[arg(long, value_name = "TEXT")]
        outcome: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `incident` subcommand. Invalid input (a bad flag value, an unknown partner or
/// object, a request this node may not answer) prints the error naming the place and rule
/// and answers `Ok(false)` (exit 1).
pub fn run(command: IncidentCommand) -> Result<bool> {
    let (data, json) = match &command {
        IncidentCommand::Open { data, json, .. }
        | IncidentCommand::Request { data, json, .. }
        | IncidentCommand::Respond { data, json, .. }
        | IncidentCommand::List { data, json, .. }
        | IncidentCommand::Show { data, json, .. }
        | IncidentCommand::Grant { data, json, .. }
        | IncidentCommand::Close { data, json, .. } => (data.clone(), *json),
    };
    let store = crate::open_store(&data)?;
    let max = Config::load(&crate::data_dir(&data).dir)?.max_object_size;
    let w = Writer {
        store: store.as_ref(),
        max_object_size: max,
    };
    let now = Timestamp::now_micros();
    let result = match command {
        IncidentCommand::Open {
            title,
            description,
            severity,
            collection,
            affects,
            ..
        } => open(
            &data,
            &w,
            &title,
            description.as_deref(),
            severity.as_deref(),
            &collection,
            &affects,
            &now,
        ),
        IncidentCommand::Request {
            incident,
            to,
            ask,
            deadline,
            priority,
            ..
        } => request(
            &data,
            &w,
            &incident,
            &to,
            &ask,
            &deadline,
            priority.as_deref(),
            &now,
        ),
        IncidentCommand::Respond {
            task, status, note, ..
        } => respond(&data, &w, &task, &status, note.as_deref(), &now),
        IncidentCommand::List { status, .. } => list(store.as_ref(), status.as_deref(), &now),
        IncidentCommand::Show { id, .. } => show(store.as_ref(), &id, &now),
        IncidentCommand::Close {
            incident, outcome, ..
        } => close(&data, &w, &incident, outcome.as_deref(), &now),
        IncidentCommand::Grant {
            incident,
            to,
            allow,
            ..
        } => grant(&w, &incident, &to, &allow),
    };
    match result {
        Ok(Done { doc, text }) => {
            if json {
                println!("{doc}");
            } else {
                print!("{text}");
            }
            Ok(true)
        }
        Err(Failure::Refused(message)) => {
            eprintln!("error: {message}");
            if json {
                println!("{}", json!({ "error": message }));
            }
            Ok(false)
        }
        Err(Failure::System(e)) => Err(e),
    }
}

/// What a subcommand prints: the JSON document, or the text for a terminal.
struct Done {
    doc: Value,
    text: String,
}

/// Why a subcommand did nothing: invalid input (exit 1) or a system error (exit 2).
enum Failure {
    Refused(String),
    System(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::System(e)
    }
}

impl From<IncidentError> for Failure {
    fn from(e: IncidentError) -> Self {
        Failure::Refused(e.to_string())
    }
}

impl From<concord_store::StoreError> for Failure {
    fn from(e: concord_store::StoreError) -> Self {
        Failure::System(e.into())
    }
}

type Step<T> = std::result::Result<T, Failure>;

fn refuse<T>(message: impl Into<String>) -> Step<T> {
    Err(Failure::Refused(message.into()))
}

/// This node's identity object, created on first use (`identity_class` organization, named
/// by `title` in concord.toml and the node's jurisdiction, e.g. `Concord node CN`).
fn identity(data: &DataDirArg, store: &dyn Store, now: &Timestamp) -> Result<Value> {
    if let Some(text) = store.setting(IDENTITY_SETTING)? {
        return serde_json::from_str(&text).context("the node's identity setting is unreadable");
    }
    let config = Config::load(&crate::data_dir(data).dir)?;
    let jurisdiction = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
    let title = if config.title.is_empty() {
        "Concord node"
    } else {
        config.title.as_str()
    };
    let name = match &jurisdiction {
        Some(cc) => format!("{title} {cc}"),
        None => title.to_owned(),
    };
    let v = concord_incident::node_identity(&name, jurisdiction.as_deref(), now);
    store.set_setting(IDENTITY_SETTING, &v.to_string())?;
    Ok(v)
}

fn id_of(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// The newest version of object `id` and the collection holding it (the first, in the
/// store's order, when several do).
fn find(store: &dyn Store, id: &str) -> Result<Option<(Collection, Value)>> {
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
            let v: Value = serde_json::from_str(e.body.as_deref().unwrap_or("null"))
                .with_context(|| format!("{id}: stored object unreadable"))?;
            return Ok(Some((c, v)));
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
        let mut after = None;
        loop {
            let page = store.entries(
                &c.id,
                &filter,
                &PageRequest {
                    limit: 1000,
                    after: after.clone(),
                },
                true,
            )?;
            after = page.entries.last().map(concord_store::Entry::cursor);
            for e in page.entries {
                let Ok(v) = serde_json::from_str::<Value>(e.body.as_deref().unwrap_or("null"))
                else {
                    continue;
                };
                match newest.get(&e.id) {
                    Some((_, key, _)) if *key >= e.version_key => {}
                    _ => {
                        newest.insert(e.id.clone(), (c.id.clone(), e.version_key.clone(), v));
                    }
                }
            }
            if !page.more {
                break;
            }
        }
    }
    Ok(newest.into_values().map(|(c, _, v)| (c, v)).collect())
}

/// Where a subcommand writes: the store, and the node's `max_object_size` (concord.toml),
/// the cap every way in applies to each object.
struct Writer<'a> {
    store: &'a dyn Store,
    max_object_size: u64,
}

/// An operator's grant (`incident grant`): `partner` receives the `categories` of personal
/// data as written in the object `scope` and what refers to it.
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
    w: &Writer<'_>,
    target: &str,
    door: &str,
    objects: &[&Value],
    address: &[(&str, &str)],
    grant: Option<&Grant<'_>>,
) -> Step<Collection> {
    let store = w.store;
    let existing = store.collection(target)?;
    let collection = match &existing {
        Some(c) => c.clone(),
        None => {
            if let Err(e) = concord_store::check_alias(target) {
                return refuse(format!("--collection: {e}"));
            }
            NewCollection {
                alias: target.to_owned(),
                ..Default::default()
            }
            .with_new_id()
        }
    };
    let mut sharing =
        concord_admin::ops::sharing_of(store, &collection.id).map_err(anyhow::Error::from)?;
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
        partner: "operator",
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
        provenance: None,
        settings: &settings,
        max_object_size: w.max_object_size,
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
        concord_ingest::IngestError::Container(b) => {
            Failure::Refused(format!("{b} (max_object_size in concord.toml)"))
        }
        e => Failure::System(e.into()),
    })?;
    if let Some(r) = report.rejected.first() {
        // Nothing this node makes should be refused by its own validator: say what and why.
        return refuse(format!(
            "{}: {}",
            r.id.as_deref().unwrap_or("?"),
            r.reasons.join("; ")
        ));
    }
    Ok(collection)
}

#[allow(clippy::too_many_arguments)]
fn open(
    data: &DataDirArg,
    w: &Writer<'_>,
    title: &str,
    description: Option<&str>,
    severity: Option<&str>,
    collection: &str,
    affects: &[String],
    now: &Timestamp,
) -> Step<Done> {
    let store = w.store;
    let criticality = severity.map(concord_incident::parse_severity).transpose()?;
    let affects = affects
        .iter()
        .map(|c| concord_incident::parse_country(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let me = identity(data, store, now)?;
    let incident = concord_incident::incident(&NewIncident {
        title,
        description,
        criticality,
        affects: &affects,
        created_by_ref: id_of(&me),
        now,
    })?;
    let c = write(w, collection, "incident-open", &[&me, &incident], &[], None)?;
    let id = id_of(&incident).to_owned();
    Ok(Done {
        text: format!("{id}\n"),
        doc: json!({"id": id, "collection": c.alias.clone().unwrap_or(c.id)}),
    })
}

/// The peers that carry collection `collection` to or from `partner`'s node: those whose
/// egress partner is `partner` and that map the collection (push, or pull by which the
/// partner's node reads ours is not configured here: a push mapping is what delivers).
fn peers_for(store: &dyn Store, partner: &str, collection: &str) -> Result<Vec<String>> {
    Ok(concord_sync::peers(store)?
        .into_iter()
        .filter(|p| p.partner.as_deref() == Some(partner))
        .filter(|p| p.mappings.iter().any(|m| m.local == collection))
        .map(|p| p.name)
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn request(
    data: &DataDirArg,
    w: &Writer<'_>,
    incident_id: &str,
    to: &str,
    ask: &str,
    deadline: &str,
    priority: Option<&str>,
    now: &Timestamp,
) -> Step<Done> {
    let store = w.store;
    let deadline = concord_incident::parse_deadline(deadline)?;
    let priority = priority.map(concord_incident::parse_priority).transpose()?;
    if !store.partners()?.iter().any(|p| p.name == to) {
        return refuse(format!(
            "--to: no partner named {to:?} on this node (concord partner list)"
        ));
    }
    let Some((c, incident)) = find(store, incident_id)? else {
        return refuse(format!("INCIDENT: no incident {incident_id} on this node"));
    };
    let Some(view) = concord_incident::read_incident(&incident) else {
        return refuse(format!(
            "INCIDENT: {incident_id} is not an incident with the Incident Core extension"
        ));
    };
    if view.status == "closed" {
        return refuse(format!("INCIDENT: {incident_id} is closed"));
    }
    let me = identity(data, store, now)?;
    let task = concord_incident::request(&NewRequest {
        incident_id,
        recipient: to,
        ask,
        deadline: &deadline,
        priority,
        created_by_ref: id_of(&me),
        now,
    })?;
    // What the recipient needs to read the request: the task and its incident. No identity
    // is addressed (the egress rule would not follow `created_by_ref` anyway, and an
    // addressed identity is one more object the partner receives); the requester's name
    // travels in the request itself (`sender_name`).
    let mut task = task;
    concord_incident::name_sender(&mut task, &me);
    let address = vec![(id_of(&task), to), (incident_id, to)];
    let c = write(w, &c.id, "incident-request", &[&me, &task], &address, None)?;
    let peers = peers_for(store, to, &c.id)?;
    let id = id_of(&task).to_owned();
    let delivery = if peers.is_empty() {
        format!("{to} is not a peer of this collection: the request stays pending here")
    } else {
        format!(
            "goes to {to} with the next sync round (peer {})",
            peers.join(", ")
        )
    };
    eprintln!("request {id} to {to}: {delivery}");
    Ok(Done {
        text: format!("{id}\n"),
        doc: json!({
            "id": id, "incident": incident_id, "to": to, "status": "pending",
            "deadline": deadline.to_string(), "peers": peers,
        }),
    })
}

/// The partner a request came from: the partner of the peer it was pulled from (sync
/// provenance), else the partner whose TAXII POST brought it (the audit log's ingress).
fn requester(store: &dyn Store, task_id: &str) -> Result<Option<String>> {
    let peers = concord_sync::peers(store)?;
    for name in store.received_from(task_id, None)? {
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

fn respond(
    data: &DataDirArg,
    w: &Writer<'_>,
    task_id: &str,
    status: &str,
    note: Option<&str>,
    now: &Timestamp,
) -> Step<Done> {
    let store = w.store;
    let Some(status) = AnswerStatus::parse(status) else {
        return refuse(format!(
            "--status: {status:?} is not acknowledged, accepted, declined or done"
        ));
    };
    if status == AnswerStatus::Declined && note.is_none_or(str::is_empty) {
        return refuse("--note: a request is declined with a reason");
    }
    let Some((c, task)) = find(store, task_id)? else {
        return refuse(format!("TASK: no request {task_id} on this node"));
    };
    let Some(req) = concord_incident::read_request(&task) else {
        return refuse(format!(
            "TASK: {task_id} is not a request for assistance (a task with Concord's coordination extension)"
        ));
    };
    let me = identity(data, store, now)?;
    if req.created_by.as_deref() == Some(id_of(&me)) {
        return refuse(format!(
            "TASK: {task_id} was made by this node; its recipient answers it"
        ));
    }
    let Some(home) = requester(store, task_id)? else {
        return refuse(format!(
            "TASK: cannot tell which partner sent {task_id} (it came neither by sync from a peer with a partner nor by a partner's TAXII POST), so the answer could go to no one"
        ));
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
        w,
        &c.id,
        "incident-respond",
        &[&me, &answer],
        &address,
        None,
    )?;
    let id = id_of(&answer).to_owned();
    Ok(Done {
        text: format!("{id}\n"),
        doc: json!({
            "id": id, "task": task_id, "status": status.as_str(), "to": home,
            "version": answer.get("modified"),
        }),
    })
}

/// Adds to each request what this node knows of its way: `direction` (`outgoing`: made
/// here; `incoming`: received), and for an outgoing one the peers that carry it (`peers`)
/// or, with none, `delivery: "not a peer"` (it stays pending).
fn annotate(
    store: &dyn Store,
    me: Option<&str>,
    collections: &HashMap<String, String>,
    state: &IncidentState,
) -> Result<Value> {
    let mut doc = serde_json::to_value(state)?;
    let tasks = doc["tasks"].as_array_mut().expect("tasks is a list");
    for (t, s) in tasks.iter_mut().zip(&state.tasks) {
        let made_here = me.is_some_and(|me| made_by(s, me));
        if made_here {
            t["direction"] = json!("outgoing");
            let c = collections.get(&s.id).cloned().unwrap_or_default();
            let peers = peers_for(store, &s.to, &c)?;
            t["delivery"] = json!(if peers.is_empty() {
                "not a peer"
            } else {
                "by sync"
            });
            t["peers"] = json!(peers);
        } else {
            t["direction"] = json!("incoming");
            t["received_from"] = json!(store.received_from(&s.id, None)?);
        }
    }
    Ok(doc)
}

/// Whether this node (identity `me`) made the request `s`.
fn made_by(s: &TaskState, me: &str) -> bool {
    s.from_id.as_deref() == Some(me)
}

fn me_id(store: &dyn Store) -> Result<Option<String>> {
    Ok(store
        .setting(IDENTITY_SETTING)?
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|v| id_of(&v).to_owned()))
}

fn text_of(states: &[Value]) -> String {
    let mut out = String::new();
    for i in states {
        out.push_str(&format!(
            "{}\t{}\t{}\n",
            i["id"].as_str().unwrap_or_default(),
            i["status"].as_str().unwrap_or_default(),
            i["title"].as_str().unwrap_or_default()
        ));
        for t in i["tasks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}\t{} -> {}\t{}\tdue {}{}\n",
                t["id"].as_str().unwrap_or_default(),
                t["from"].as_str().unwrap_or_default(),
                t["to"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default(),
                t["deadline"].as_str().unwrap_or_default(),
                if t["overdue"] == true {
                    "\tOVERDUE"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

fn board(
    store: &dyn Store,
    now: &Timestamp,
) -> Result<(Vec<IncidentState>, HashMap<String, String>)> {
    let held = holdings(store)?;
    let collections: HashMap<String, String> = held
        .iter()
        .map(|(c, v)| (id_of(v).to_owned(), c.clone()))
        .collect();
    let objects: Vec<Value> = held.into_iter().map(|(_, v)| v).collect();
    Ok((concord_incident::board(&objects, now), collections))
}

fn list(store: &dyn Store, status: Option<&str>, now: &Timestamp) -> Step<Done> {
    let (states, collections) = board(store, now)?;
    let me = me_id(store)?;
    let mut docs = Vec::new();
    for s in states
        .iter()
        .filter(|s| status.is_none_or(|w| s.incident.status == w))
    {
        let mut d = annotate(store, me.as_deref(), &collections, s)?;
        if let Some(o) = d.as_object_mut() {
            o.remove("events");
        }
        docs.push(d);
    }
    Ok(Done {
        text: text_of(&docs),
        doc: json!({ "incidents": docs }),
    })
}

fn show(store: &dyn Store, id: &str, now: &Timestamp) -> Step<Done> {
    let (states, collections) = board(store, now)?;
    let Some(s) = states.iter().find(|s| s.incident.id == id) else {
        return refuse(format!("ID: no incident {id} on this node"));
    };
    let me = me_id(store)?;
    let mut doc = annotate(store, me.as_deref(), &collections, s)?;
    doc["collection"] = json!(collections.get(id));
    let mut text = text_of(std::slice::from_ref(&doc));
    for t in &s.tasks {
        for a in &t.answers {
            text.push_str(&format!(
                "  {} answered by {}: {} at {}{}\n",
                t.id,
                a.by,
                a.status.as_str(),
                a.at,
                a.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    for e in &s.events {
        text.push_str(&format!("  event {} {} {}\n", e.id, e.status, e.name));
    }
    Ok(Done { text, doc })
}

fn close(
    data: &DataDirArg,
    w: &Writer<'_>,
    incident_id: &str,
    outcome: Option<&str>,
    now: &Timestamp,
) -> Step<Done> {
    let store = w.store;
    let Some((c, incident)) = find(store, incident_id)? else {
        return refuse(format!("INCIDENT: no incident {incident_id} on this node"));
    };
    let me = identity(data, store, now)?;
    if incident.get("created_by_ref").and_then(Value::as_str) != Some(id_of(&me)) {
        return refuse(format!(
            "INCIDENT: {incident_id} was opened by another node; only an object's creator may version it (STIX 2.1 §3.6)"
        ));
    }
    let closed = concord_incident::close(&incident, outcome, now)?;
    // The new version keeps the incident's id, so it goes where the incident was addressed.
    write(w, &c.id, "incident-close", &[&closed], &[], None)?;
    Ok(Done {
        text: format!("{incident_id} closed\n"),
        doc: json!({"id": incident_id, "status": "closed", "outcome": outcome}),
    })
}

fn grant(w: &Writer<'_>, incident_id: &str, to: &str, allow: &[String]) -> Step<Done> {
    let store = w.store;
    let mut categories = Vec::new();
    for a in allow {
        match serde_json::from_value::<Category>(json!(a)) {
            Ok(c) => categories.push(c),
            Err(_) => {
                return refuse(format!(
                    "--allow: {a:?} is not a category of personal data ({})",
                    Category::ALL
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if !store.partners()?.iter().any(|p| p.name == to) {
        return refuse(format!(
            "--to: no partner named {to:?} on this node (concord partner list)"
        ));
    }
    let Some((c, incident)) = find(store, incident_id)? else {
        return refuse(format!("INCIDENT: no incident {incident_id} on this node"));
    };
    if concord_incident::read_incident(&incident).is_none() {
        return refuse(format!(
            "INCIDENT: {incident_id} is not an incident with the Incident Core extension"
        ));
    }
    // The incident's current version again (already present): its audit record carries the
    // grant, in the transaction that writes it.
    let g = Grant {
        scope: incident_id,
        partner: to,
        categories: &categories,
    };
    write(w, &c.id, "incident-grant", &[&incident], &[], Some(&g))?;
    let names: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
    Ok(Done {
        text: format!(
            "{to} receives {} as written in {incident_id}\n",
            names.join(", ")
        ),
        doc: json!({"incident": incident_id, "to": to, "allow": names}),
    })
}

/// The setting that records that the request `task` was announced (its time).
fn notified_key(task: &str) -> String {
    format!("incident/notified/{task}")
}

/// The requests made by another node that this node holds and has not announced yet, as
/// the JSON document a notice carries.
fn unannounced(store: &dyn Store) -> Result<Vec<(String, Value)>> {
    let now = Timestamp::now_micros();
    let (states, _) = board(store, &now)?;
    let me = me_id(store)?;
    let mut out = Vec::new();
    for s in &states {
        for t in &s.tasks {
            if me.as_deref().is_some_and(|me| made_by(t, me))
                || store.setting(&notified_key(&t.id))?.is_some()
            {
                continue;
            }
            let doc = json!({
                "event": "request-received",
                "task": t.id, "incident": s.incident.id, "title": s.incident.title,
                "from": t.from, "to": t.to, "ask": t.ask, "deadline": t.deadline,
                "priority": t.priority, "received_from": store.received_from(&t.id, None)?,
            });
            out.push((t.id.clone(), doc));
        }
    }
    Ok(out)
}

/// Runs `command` with `sh -c`, `doc` on its stdin and `CONCORD_TASK_ID` set; an error
/// unless it exits 0.
fn run_command(command: &str, task: &str, doc: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CONCORD_TASK_ID", task)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("notify_command {command:?} cannot start"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is no error.
        let _ = stdin.write_all(doc.as_bytes());
    }
    let status = child.wait().context("notify_command")?;
    anyhow::ensure!(status.success(), "notify_command {command:?}: {status}");
    Ok(())
}

/// Starts `serve`'s notifier when `[incident]` configures a command or a webhook: every
/// `notify_every_secs` it announces each request for assistance made by another node that
/// arrived since (by sync pull or a partner's TAXII POST), once: the command runs and the
/// webhook is POSTed, signed ([`concord_sync::notify`]); a request is marked announced only
/// when both succeeded, so a failed one is tried again at the next look. Errors (before
/// anything starts): a webhook without a readable secret of at least 16 bytes, an interval
/// of 0.
pub fn spawn_notifier(
    dir: &std::path::Path,
    store: std::sync::Arc<dyn Store>,
    config: &crate::config::IncidentConfig,
) -> Result<()> {
    if config.notify_command.is_empty() && config.notify_webhook.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        config.notify_every_secs >= 1,
        "[incident] notify_every_secs: must be at least 1"
    );
    let secret = if config.notify_webhook.is_empty() {
        Vec::new()
    } else {
        anyhow::ensure!(
            config.notify_webhook.starts_with("http://")
                || config.notify_webhook.starts_with("https://"),
            "[incident] notify_webhook {:?}: must be an http(s) URL",
            config.notify_webhook
        );
        anyhow::ensure!(
            !config.notify_secret_file.is_empty(),
            "[incident] notify_webhook needs notify_secret_file (the HMAC key)"
        );
        let path = dir.join(&config.notify_secret_file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "[incident] notify_secret_file {}: cannot read",
                path.display()
            )
        })?;
        let key = text.trim().as_bytes().to_vec();
        anyhow::ensure!(
            key.len() >= 16,
            "[incident] notify_secret_file {}: the key must have at least 16 bytes",
            path.display()
        );
        key
    };
    let config = config.clone();
    std::thread::Builder::new()
        .name("concord-incident-notify".into())
        .spawn(move || {
            loop {
                match unannounced(store.as_ref()) {
                    Ok(found) => {
                        for (task, doc) in found {
                            let text = doc.to_string();
                            let mut ok = true;
                            if !config.notify_command.is_empty()
                                && let Err(e) = run_command(&config.notify_command, &task, &text)
                            {
                                tracing::warn!(%task, error = %e, "incident notice: command failed");
                                ok = false;
                            }
                            if !config.notify_webhook.is_empty()
                                && let Err(e) = concord_sync::notify::post_signed(
                                    &config.notify_webhook,
                                    &secret,
                                    &text,
                                    std::time::Duration::from_secs(10),
                                )
                            {
                                tracing::warn!(%task, error = %e, "incident notice: webhook failed");
                                ok = false;
                            }
                            if ok {
                                let at = Timestamp::now_micros().to_string();
                                if let Err(e) = store.set_setting(&notified_key(&task), &at) {
                                    tracing::warn!(%task, error = %e, "incident notice: not recorded");
                                }
                                tracing::info!(%task, "incident notice: request announced");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "incident notice: cannot read requests"),
                }
                std::thread::sleep(std::time::Duration::from_secs(config.notify_every_secs));
            }
        })
        .context("cannot start the incident notifier")?;
    Ok(())
}
