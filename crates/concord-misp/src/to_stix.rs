//! MISP events → STIX 2.1, following misp-stix (MISP's own converter, `misp_to_stix21.py`):
//!
//! | MISP | STIX 2.1 |
//! |---|---|
//! | event | `report--<event uuid>` (or `grouping`, context `suspicious-activity`), `identity--<Orgc uuid>` as `created_by_ref` |
//! | attribute with `to_ids` | `indicator--<uuid>`, STIX pattern (table in [`crate::types`]); `yara`/`snort`/`sigma`/`suricata` with that `pattern_type` |
//! | attribute without `to_ids` | `observed-data--<uuid>` and its SCOs (`type--<uuid>`) |
//! | attribute type without an observable form (`text`, `btc`, …), unknown type, malformed value | `x-misp-attribute--<uuid>` custom object with `x_misp_type`, `x_misp_value`, … (never dropped; unknown and malformed are listed in the report) |
//! | `vulnerability`, `campaign-name` | `vulnerability`, `campaign` |
//! | MISP object | one indicator (any attribute `to_ids`) or observed-data built from its attributes, else `x-misp-object`; all its attributes also in `x_misp_attributes` |
//! | object reference | `relationship` |
//! | tags | `labels` (verbatim), plus `misp:type=…`, `misp:category=…`, `misp:to_ids="True"` labels as misp-stix writes them |
//! | `tlp:*` tag | `object_marking_refs` to the TLP marking definition ([`crate::tlp`]); an attribute takes the stricter of its own and its event's |
//! | galaxy cluster | attack-pattern, malware, threat-actor, intrusion-set, tool, course-of-action, vulnerability (`<type>--<cluster uuid>`), else `x-misp-galaxy-cluster`; relationships as misp-stix's `relationship_specs` |
//! | sighting type 0 / 1 | `sighting` / `opinion` (`strongly-disagree`) |
//!
//! Ids reuse the MISP uuids (misp-stix convention), so converting the same event twice gives
//! the same objects; other ids are UUIDv5 of what they join.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{Attribute, EventMeta, GalaxyCluster, MispObject, Sighting};
use crate::reader::{self, Item, ReadError};
use crate::tlp::{self, Marking};
use crate::types;
use crate::warninglist::Warninglists;

/// What the event becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Container {
    /// A `report` (STIX 2.1 §4.14), misp-stix's form for published events.
    #[default]
    Report,
    /// A `grouping` (§4.5) with context `suspicious-activity`.
    Grouping,
}

/// `created` and `modified` of an organisation's identity. Its id comes from the MISP org
/// uuid, and every event of the org writes it: with the event's time, each event made a new
/// version with another `created`, which STIX 2.1 §3.6 forbids (issue 24, item 10). One fixed
/// time makes it the same object in every event ("already present" after the first).
const ORG_TIME: &str = "1970-01-01T00:00:00.000Z";

/// Options of a MISP → STIX conversion.
#[derive(Clone, Copy, Default)]
pub struct ToStixOptions<'a> {
    /// Report or grouping.
    pub container: Container,
    /// Warninglists to check each attribute value against.
    pub warninglists: Option<&'a Warninglists>,
    /// Drop warninglisted attributes instead of flagging them.
    pub drop_warninglisted: bool,
    /// The one TLP version of the markings written (TLP 2.0 by default; see [`crate::tlp`]).
    pub tlp_version: tlp::TlpVersion,
}

/// One thing the conversion could not carry as is.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Issue {
    /// The event uuid.
    pub event: String,
    /// The attribute (or object) uuid.
    pub attribute: Option<String>,
    /// What happened and the rule, e.g. `md5: MD5 must be 32 hexadecimal digits`.
    pub rule: String,
}

/// What a conversion did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConversionReport {
    /// Events read.
    pub events: usize,
    /// Attributes read (event attributes and object attributes).
    pub attributes: usize,
    /// MISP objects read.
    pub objects: usize,
    /// STIX objects written.
    pub stix_objects: usize,
    /// Attribute types outside describeTypes.json (kept as `x-misp-attribute`).
    pub unknown_types: Vec<Issue>,
    /// Values malformed for their type (kept as `x-misp-attribute`).
    pub malformed: Vec<Issue>,
    /// Things not carried at all (e.g. expiration sightings, references to unknown uuids).
    pub not_carried: Vec<Issue>,
    /// Attributes on a warninglist (flagged in `x_concord_warninglists`, or dropped).
    pub warninglisted: Vec<Issue>,
    /// Attributes dropped because they were warninglisted (with the drop option).
    pub dropped: usize,
    /// Empty events (converted to a report that refers to a `note`, as misp-stix does).
    pub empty_events: Vec<String>,
}

/// Why a conversion failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ToStixError {
    /// The input could not be opened or re-opened (`open` failed).
    #[error("cannot read the input: {0}")]
    Io(#[from] std::io::Error),
    /// Not MISP event JSON (with line and column), or an object refused by the sink.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Converts the MISP events of an input, calling `sink` for each STIX object.
///
/// `open` is called twice (two passes, see [`crate::reader`]); it must give the same bytes.
/// Memory holds the event metadata, one attribute or object at a time, and the ids of the
/// event's objects (for the report's `object_refs`).
///
/// Errors: [`ToStixError::Read`] for input that is not MISP event JSON, before any object is
/// given to `sink` (pass 1 reads the whole input first); a sink error.
pub fn to_stix<R: Read>(
    open: &mut dyn FnMut() -> std::io::Result<R>,
    options: ToStixOptions<'_>,
    sink: &mut dyn FnMut(Value) -> Result<(), String>,
) -> Result<ConversionReport, ToStixError> {
    let metas = reader::read_metas(open()?)?;
    let mut conv = Converter {
        options,
        metas,
        report: ConversionReport::default(),
        event: None,
        markings_sent: HashSet::new(),
        sink,
    };
    conv.report.events = conv.metas.len();
    let input = open()?;
    // Events without items still get their report: `on_end` is called for each.
    let conv = std::cell::RefCell::new(conv);
    reader::read_items(
        input,
        &mut |index, item| conv.borrow_mut().item(index, item),
        &mut |index| conv.borrow_mut().end(index),
    )?;
    Ok(conv.into_inner().report)
}

/// [`to_stix`] writing one STIX bundle to `out`, object by object. The bundle id is a random
/// UUIDv4 (a bundle is only a transport wrapper, STIX 2.1 §8; the objects' ids are
/// deterministic).
///
/// Errors: as [`to_stix`]; a write error is reported as a sink error.
pub fn to_stix_bundle<R: Read>(
    open: &mut dyn FnMut() -> std::io::Result<R>,
    options: ToStixOptions<'_>,
    out: &mut dyn Write,
) -> Result<ConversionReport, ToStixError> {
    let mut n = 0usize;
    let mut started = false;
    let mut sink = |v: Value| -> Result<(), String> {
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            if !started {
                write!(
                    out,
                    "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
                    uuid::Uuid::new_v4()
                )?;
            }
            if n > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"\n")?;
            serde_json::to_writer(&mut *out, &v)?;
            Ok(())
        };
        w(out).map_err(|e| format!("cannot write the bundle: {e}"))?;
        started = true;
        n += 1;
        Ok(())
    };
    let report = to_stix(open, options, &mut sink)?;
    if !started {
        write!(
            out,
            "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
            uuid::Uuid::new_v4()
        )?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(report)
}

/// The namespace of Concord's UUIDv5 ids for MISP conversions (UUIDv5 of "concord-misp" in
/// the URL namespace).
fn namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"https://concord/misp")
}

/// UUIDv5 of `parts` joined by `|`.
pub(crate) fn v5(parts: &[&str]) -> String {
    uuid::Uuid::new_v5(&namespace(), parts.join("|").as_bytes()).to_string()
}

/// A MISP uuid when valid (lower case), else a UUIDv5 of `fallback`.
fn uuid_or(u: &str, fallback: &[&str]) -> String {
    match uuid::Uuid::parse_str(u) {
        Ok(u) => u.to_string(),
        Err(_) => v5(fallback),
    }
}

/// Epoch seconds (as MISP writes them) → STIX timestamp with milliseconds.
fn stix_time(epoch: &str) -> Option<String> {
    let s: i64 = epoch.trim().parse().ok()?;
    let t = jiff::Timestamp::from_second(s).ok()?;
    Some(t.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string())
}

struct EventState {
    index: usize,
    uuid: String,
    time: String,
    /// `created` of the event's objects: the event's `date` (which an update of the event
    /// keeps), or its time when that is earlier. An object's `created` is the earlier of this
    /// and its own time, so a new version of an updated event keeps it (STIX 2.1 §3.6,
    /// issue 24, item 10); `modified` is the object's own time.
    created: String,
    identity: String,
    tlp: Option<Marking>,
    refs: Vec<String>,
    ids: HashMap<String, String>,
    pending: Vec<(String, String, String)>,
    clusters: HashMap<String, String>,
}

struct Converter<'a, 's> {
    options: ToStixOptions<'a>,
    metas: Vec<EventMeta>,
    report: ConversionReport,
    event: Option<EventState>,
    markings_sent: HashSet<&'static str>,
    sink: &'s mut dyn FnMut(Value) -> Result<(), String>,
}

/// Galaxy types → SDO type (misp-stix `tools/galaxy_types.py`).
fn galaxy_sdo_type(galaxy_type: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &[&str])] = &[
        (
            "attack-pattern",
            &[
                "cmtmf-attack-pattern",
                "mitre-attack-pattern",
                "mitre-enterprise-attack-attack-pattern",
                "mitre-ics-techniques",
                "mitre-mobile-attack-attack-pattern",
                "mitre-pre-attack-attack-pattern",
            ],
        ),
        (
            "course-of-action",
            &[
                "mitre-course-of-action",
                "mitre-enterprise-attack-course-of-action",
                "mitre-mobile-attack-course-of-action",
            ],
        ),
        (
            "intrusion-set",
            &[
                "mitre-enterprise-attack-intrusion-set",
                "mitre-intrusion-set",
                "mitre-mobile-attack-intrusion-set",
                "mitre-pre-attack-intrusion-set",
            ],
        ),
        (
            "malware",
            &[
                "android",
                "backdoor",
                "banker",
                "cryptominers",
                "malpedia",
                "mitre-enterprise-attack-malware",
                "mitre-ics-software",
                "mitre-malware",
                "mitre-mobile-attack-malware",
                "ransomware",
                "stealer",
            ],
        ),
        (
            "threat-actor",
            &[
                "360net-threat-actor",
                "microsoft-activity-group",
                "mitre-ics-groups",
                "threat-actor",
            ],
        ),
        (
            "tool",
            &[
                "botnet",
                "rat",
                "exploit-kit",
                "tds",
                "tool",
                "mitre-tool",
                "mitre-enterprise-attack-tool",
                "mitre-mobile-attack-tool",
            ],
        ),
        ("vulnerability", &["branded-vulnerability"]),
    ];
    TABLE
        .iter()
        .find(|(_, types)| types.contains(&galaxy_type))
        .map(|(t, _)| *t)
}

/// misp-stix `relationship_specs`: source type → target type → relationship type.
fn relationship_type(source: &str, target: &str) -> Option<&'static str> {
    Some(match (source, target) {
        ("indicator", "attack-pattern" | "campaign" | "intrusion-set" | "malware")
        | ("indicator", "threat-actor" | "tool") => "indicates",
        ("indicator", "observed-data") => "based-on",
        ("threat-actor" | "intrusion-set" | "campaign", "attack-pattern" | "malware" | "tool") => {
            "uses"
        }
        ("intrusion-set" | "campaign", "threat-actor") => "attributed-to",
        ("malware", "attack-pattern") => "uses",
        ("attack-pattern", "tool") => "uses",
        ("course-of-action", "attack-pattern" | "tool") => "mitigates",
        ("threat-actor" | "intrusion-set" | "campaign" | "attack-pattern", "vulnerability") => {
            "targets"
        }
        _ => return None,
    })
}

fn type_of(id: &str) -> &str {
    id.split("--").next().unwrap_or("")
}

impl Converter<'_, '_> {
    fn emit(&mut self, v: Value) -> Result<(), String> {
        self.report.stix_objects += 1;
        (self.sink)(v)
    }

    /// The state of event `index`, started (identity, event galaxies) on first use.
    fn start(&mut self, index: usize) -> Result<(), String> {
        if self.event.as_ref().is_some_and(|e| e.index == index) {
            return Ok(());
        }
        let meta = self.metas.get(index).cloned().unwrap_or_default();
        let uuid = uuid_or(&meta.uuid, &[&meta.info, &meta.date, &index.to_string()]);
        if uuid::Uuid::parse_str(&meta.uuid).is_err() {
            self.report.not_carried.push(Issue {
                event: meta.uuid.clone(),
                attribute: None,
                rule: format!(
                    "event uuid {:?} is not a UUID; ids derived from {uuid}",
                    meta.uuid
                ),
            });
        }
        let day = meta
            .date
            .get(..10)
            .filter(|d| jiff::civil::Date::strptime("%Y-%m-%d", d).is_ok())
            .map(|d| format!("{d}T00:00:00.000Z"));
        let time = stix_time(&meta.timestamp)
            .or_else(|| day.clone())
            .unwrap_or_else(|| ORG_TIME.into());
        let created = match day {
            Some(d) if d < time => d,
            _ => time.clone(),
        };
        let org = meta.orgc.clone().unwrap_or_default();
        let org_name = if org.name.is_empty() {
            "MISP".to_owned()
        } else {
            org.name.clone()
        };
        let identity = format!("identity--{}", uuid_or(&org.uuid, &[&org_name]));
        let tlp = tlp::strictest_as(
            self.options.tlp_version,
            meta.tags.iter().map(|t| t.name.as_str()),
        );
        self.event = Some(EventState {
            index,
            uuid,
            time: time.clone(),
            created,
            identity: identity.clone(),
            tlp,
            refs: Vec::new(),
            ids: HashMap::new(),
            pending: Vec::new(),
            clusters: HashMap::new(),
        });
        self.emit(
            json!({"type": "identity", "spec_version": "2.1", "id": identity,
            "created": ORG_TIME, "modified": ORG_TIME, "name": org_name,
            "identity_class": "organization"}),
        )?;
        // Event galaxies: the cluster SDOs, in the report, related among themselves as
        // misp-stix's relationship table says (e.g. threat-actor uses attack-pattern).
        let mut ids = Vec::new();
        for g in &meta.galaxies {
            for c in &g.clusters {
                let kind = if c.kind.is_empty() { &g.kind } else { &c.kind };
                let id = self.cluster(kind, c)?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        for s in &ids {
            for t in &ids {
                if let Some(rel) = relationship_type(type_of(s), type_of(t)) {
                    self.relationship(s, rel, t)?;
                }
            }
        }
        Ok(())
    }

    fn ev(&mut self) -> &mut EventState {
        self.event.as_mut().expect("event started")
    }

    fn marking(&mut self, m: Option<Marking>) -> Result<Option<&'static str>, String> {
        let Some(m) = m else { return Ok(None) };
        if self.markings_sent.insert(m.id) {
            self.emit(m.definition())?;
        }
        Ok(Some(m.id))
    }

    /// The SDO of a galaxy cluster (once per event); its id.
    fn cluster(&mut self, galaxy_type: &str, c: &GalaxyCluster) -> Result<String, String> {
        let sdo = galaxy_sdo_type(galaxy_type).unwrap_or("x-misp-galaxy-cluster");
        let ev = self.ev();
        let id = format!(
            "{sdo}--{}",
            uuid_or(&c.uuid, &[galaxy_type, &c.value, &ev.uuid])
        );
        if let Some(first) = ev.clusters.get(&id) {
            if *first != c.value {
                let (event, first) = (ev.uuid.clone(), first.clone());
                self.report.not_carried.push(Issue {
                    event,
                    attribute: Some(id.clone()),
                    rule: format!(
                        "galaxy cluster {:?} has the uuid of cluster {first:?}; only the first is kept",
                        c.value
                    ),
                });
            }
            return Ok(id);
        }
        ev.clusters.insert(id.clone(), c.value.clone());
        let (time, identity) = (ev.time.clone(), ev.identity.clone());
        ev.refs.push(id.clone());
        // A cluster's id is shared by every event that names it: a fixed `created`
        // (STIX 2.1 §3.6), the event's time as `modified`.
        let mut o = json!({"type": sdo, "spec_version": "2.1", "id": id, "created": ORG_TIME,
            "modified": time, "created_by_ref": identity, "name": c.value,
            "labels": [format!("misp:galaxy-type=\"{galaxy_type}\"")]});
        if !c.description.is_empty() {
            o["description"] = json!(c.description);
        }
        let meta = c.meta.clone().unwrap_or(Value::Null);
        let list = |k: &str| -> Vec<String> {
            meta.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut refs: Vec<Value> = list("external_id")
            .into_iter()
            .map(|e| json!({"source_name": if e.starts_with("CAPEC") {"capec"} else {"mitre-attack"}, "external_id": e}))
            .collect();
        refs.extend(
            list("refs")
                .into_iter()
                .filter(|u| u.starts_with("http"))
                .map(|u| json!({"source_name": "url", "url": u})),
        );
        if !refs.is_empty() {
            o["external_references"] = json!(refs);
        }
        let synonyms = list("synonyms");
        if !synonyms.is_empty()
            && matches!(sdo, "threat-actor" | "intrusion-set" | "malware" | "tool")
        {
            o["aliases"] = json!(synonyms);
        }
        match sdo {
            "malware" => o["is_family"] = json!(true),
            "x-misp-galaxy-cluster" => {
                o["x_misp_galaxy_type"] = json!(galaxy_type);
                o["x_misp_value"] = json!(c.value);
                if let Value::Object(m) = &mut o {
                    m.remove("name");
                }
            }
            _ => {}
        }
        self.emit(o)?;
        Ok(id)
    }

    fn relationship(&mut self, source: &str, rel: &str, target: &str) -> Result<(), String> {
        let ev = self.ev();
        let id = format!("relationship--{}", v5(&[source, rel, target]));
        let rel: String = rel
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let o = json!({"type": "relationship", "spec_version": "2.1", "id": id,
            "created": ev.created, "modified": ev.time, "created_by_ref": ev.identity,
            "relationship_type": rel, "source_ref": source, "target_ref": target});
        ev.refs.push(id);
        self.emit(o)
    }

    fn item(&mut self, index: usize, item: Item) -> Result<(), String> {
        self.start(index)?;
        match item {
            Item::Attribute(a) => self.attribute(&a),
            Item::Object(o) => self.object(&o),
        }
    }

    /// Whether the attribute is warninglisted and dropped; records the flag.
    fn warninglisted(&mut self, a: &Attribute, uuid: &str) -> (Vec<String>, bool) {
        let Some(lists) = self.options.warninglists else {
            return (Vec::new(), false);
        };
        let names: Vec<String> = lists
            .matches(&a.kind, &a.value)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return (names, false);
        }
        let drop = self.options.drop_warninglisted;
        let event = self.ev().uuid.clone();
        self.report.warninglisted.push(Issue {
            event,
            attribute: Some(uuid.to_owned()),
            rule: format!(
                "{} {:?} is on warninglist {}{}",
                a.kind,
                a.value,
                names.join(", "),
                if drop { " (dropped)" } else { "" }
            ),
        });
        if drop {
            self.report.dropped += 1;
        }
        (names, drop)
    }

    fn common(&self, time: &str, labels: Vec<String>, marking: Option<&str>) -> Map<String, Value> {
        let ev = self.event.as_ref().expect("event started");
        let mut m = Map::new();
        m.insert("spec_version".into(), json!("2.1"));
        m.insert("created".into(), json!(ev.created.as_str().min(time)));
        m.insert("modified".into(), json!(time));
        m.insert("created_by_ref".into(), json!(ev.identity));
        if !labels.is_empty() {
            m.insert("labels".into(), json!(labels));
        }
        if let Some(id) = marking {
            m.insert("object_marking_refs".into(), json!([id]));
        }
        m
    }

    fn attribute(&mut self, a: &Attribute) -> Result<(), String> {
        self.report.attributes += 1;
        let event_uuid = self.ev().uuid.clone();
        let uuid = uuid_or(&a.uuid, &[&event_uuid, &a.kind, &a.value]);
        let (lists, drop) = self.warninglisted(a, &uuid);
        if drop {
            return Ok(());
        }
        let time = stix_time(&a.timestamp).unwrap_or_else(|| self.ev().time.clone());
        let mut labels = vec![
            format!("misp:type=\"{}\"", a.kind),
            format!("misp:category=\"{}\"", a.category),
        ];
        if a.to_ids {
            labels.push("misp:to_ids=\"True\"".into());
        }
        labels.extend(a.tags.iter().map(|t| t.name.clone()));
        let own = tlp::strictest_as(
            self.options.tlp_version,
            a.tags.iter().map(|t| t.name.as_str()),
        );
        let event_tlp = self.ev().tlp;
        let marking = self.marking(own.max_by_key(event_tlp))?;
        let mut o = self.common(&time, labels, marking);
        let issue = |rule: String| Issue {
            event: event_uuid.clone(),
            attribute: Some(uuid.clone()),
            rule,
        };
        let mut extra: Vec<Value> = Vec::new();
        let rule_type = types::RULE_TYPES.iter().find(|(t, _)| *t == a.kind);
        let id = if let Some((_, pattern_type)) = rule_type {
            let id = format!("indicator--{uuid}");
            o.insert("pattern".into(), json!(a.value));
            o.insert("pattern_type".into(), json!(pattern_type));
            indicator_fields(&mut o, &time, a);
            id
        } else if a.kind == "vulnerability" || a.kind == "campaign-name" {
            let sdo = if a.kind == "vulnerability" {
                "vulnerability"
            } else {
                "campaign"
            };
            o.insert("name".into(), json!(a.value));
            if a.kind == "vulnerability" && a.value.starts_with("CVE-") {
                o.insert(
                    "external_references".into(),
                    json!([{"source_name": "cve", "external_id": a.value}]),
                );
            }
            if !a.comment.is_empty() {
                o.insert("description".into(), json!(a.comment));
            }
            format!("{sdo}--{uuid}")
        } else {
            match types::shape(&a.kind).map(|s| (s, types::components(s, &a.value))) {
                Some((shape, Ok(parts))) => {
                    if a.to_ids {
                        let pattern = types::pattern(types::comparisons(shape, &parts))
                            .map_err(|e| format!("event {event_uuid} attribute {uuid}: {e}"))?;
                        o.insert("pattern".into(), json!(pattern));
                        o.insert("pattern_type".into(), json!("stix"));
                        o.insert("pattern_version".into(), json!("2.1"));
                        indicator_fields(&mut o, &time, a);
                        format!("indicator--{uuid}")
                    } else {
                        let scos = types::scos(shape, &parts, &uuid);
                        let refs: Vec<Value> = scos.iter().map(|s| s["id"].clone()).collect();
                        o.insert("first_observed".into(), json!(time));
                        o.insert("last_observed".into(), json!(time));
                        o.insert("number_observed".into(), json!(1));
                        o.insert("object_refs".into(), json!(refs));
                        if !a.comment.is_empty() {
                            o.insert("x_misp_comment".into(), json!(a.comment));
                        }
                        extra = scos;
                        format!("observed-data--{uuid}")
                    }
                }
                found => {
                    if let Some((_, Err(rule))) = found {
                        self.report.malformed.push(issue(format!(
                            "malformed value {:?} for type {}: {rule}; kept as x-misp-attribute",
                            a.value, a.kind
                        )));
                    } else if !types::is_known_type(&a.kind) {
                        self.report.unknown_types.push(issue(format!(
                            "unknown attribute type {:?} (not in MISP describeTypes); kept as x-misp-attribute",
                            a.kind
                        )));
                    }
                    custom_attribute(&mut o, a);
                    format!("x-misp-attribute--{uuid}")
                }
            }
        };
        o.insert("type".into(), json!(type_of(&id)));
        o.insert("id".into(), json!(id));
        if !lists.is_empty() {
            o.insert("x_concord_warninglists".into(), json!(lists));
        }
        for sco in extra {
            self.emit(sco)?;
        }
        self.emit(Value::Object(o))?;
        let ev = self.ev();
        ev.refs.push(id.clone());
        ev.ids.insert(uuid.clone(), id.clone());
        self.attribute_galaxies_and_sightings(a, &id)
    }

    fn attribute_galaxies_and_sightings(&mut self, a: &Attribute, id: &str) -> Result<(), String> {
        for g in &a.galaxies {
            for c in &g.clusters {
                let kind = if c.kind.is_empty() { &g.kind } else { &c.kind };
                let target = self.cluster(kind, c)?;
                let rel = relationship_type(type_of(id), type_of(&target)).unwrap_or("related-to");
                self.relationship(id, rel, &target)?;
            }
        }
        for s in &a.sightings {
            self.sighting(s, id)?;
        }
        Ok(())
    }

    fn sighting(&mut self, s: &Sighting, target: &str) -> Result<(), String> {
        let ev = self.ev();
        let uuid = uuid_or(&s.uuid, &[target, &s.date_sighting, &s.kind]);
        let time = stix_time(&s.date_sighting).unwrap_or_else(|| ev.time.clone());
        let identity = ev.identity.clone();
        let event = ev.uuid.clone();
        let org = s.org.clone().unwrap_or_default();
        let mut o = json!({"spec_version": "2.1", "created": time, "modified": time,
            "created_by_ref": identity});
        let id = match s.kind.as_str() {
            "0" | "" => {
                let mut where_sighted = Vec::new();
                if !org.name.is_empty() {
                    let oid = format!("identity--{}", uuid_or(&org.uuid, &[&org.name]));
                    self.emit(json!({"type": "identity", "spec_version": "2.1", "id": oid,
                        "created": ORG_TIME, "modified": ORG_TIME, "name": org.name,
                        "identity_class": "organization"}))?;
                    where_sighted.push(oid);
                }
                o["type"] = json!("sighting");
                o["sighting_of_ref"] = json!(target);
                o["count"] = json!(1);
                o["first_seen"] = json!(time);
                o["last_seen"] = json!(time);
                if !where_sighted.is_empty() {
                    o["where_sighted_refs"] = json!(where_sighted);
                }
                if !s.source.is_empty() {
                    o["description"] = json!(s.source);
                }
                format!("sighting--{uuid}")
            }
            "1" => {
                o["type"] = json!("opinion");
                o["opinion"] = json!("strongly-disagree");
                o["explanation"] = json!("False positive Sighting");
                o["object_refs"] = json!([target]);
                if !org.name.is_empty() {
                    o["authors"] = json!([org.name]);
                }
                format!("opinion--{uuid}")
            }
            other => {
                self.report.not_carried.push(Issue {
                    event,
                    attribute: Some(target.to_owned()),
                    rule: format!(
                        "sighting {uuid} of type {other} (expiration) has no STIX 2.1 form"
                    ),
                });
                return Ok(());
            }
        };
        o["id"] = json!(id);
        self.ev().refs.push(id);
        self.emit(o)
    }

    fn object(&mut self, obj: &MispObject) -> Result<(), String> {
        self.report.objects += 1;
        let event_uuid = self.ev().uuid.clone();
        let uuid = uuid_or(&obj.uuid, &[&event_uuid, &obj.name, &obj.timestamp]);
        let time = stix_time(&obj.timestamp).unwrap_or_else(|| self.ev().time.clone());
        // Comparisons of every attribute, and of the IDS ones (as misp-stix: an object with
        // `to_ids` attributes is an indicator of those, and an observed-data of all of them;
        // issue 24, item 1).
        let mut tests = Vec::new();
        let mut ids_tests = Vec::new();
        let mut roots: Vec<Value> = Vec::new();
        let mut children: Vec<Value> = Vec::new();
        let mut kept: Vec<Value> = Vec::new();
        let mut all_lists: Vec<String> = Vec::new();
        let mut tags: Vec<String> = Vec::new();
        let mut to_ids = false;
        for a in &obj.attributes {
            self.report.attributes += 1;
            let auuid = uuid_or(&a.uuid, &[&uuid, &a.object_relation, &a.value]);
            let (lists, drop) = self.warninglisted(a, &auuid);
            if drop {
                continue;
            }
            all_lists.extend(lists);
            to_ids |= a.to_ids;
            tags.extend(a.tags.iter().map(|t| t.name.clone()));
            kept.push(
                json!({"uuid": auuid, "type": a.kind, "object_relation": a.object_relation,
                "category": a.category, "value": a.value, "to_ids": a.to_ids,
                "comment": a.comment, "tags": a.tags.iter().map(|t| &t.name).collect::<Vec<_>>()}),
            );
            self.ev().ids.insert(auuid.clone(), format!("@{uuid}"));
            let Some(shape) = types::shape(&a.kind) else {
                if !types::is_known_type(&a.kind) {
                    self.report.unknown_types.push(Issue {
                        event: event_uuid.clone(),
                        attribute: Some(auuid),
                        rule: format!(
                            "unknown attribute type {:?} in object {}; kept in x_misp_attributes",
                            a.kind, obj.name
                        ),
                    });
                }
                continue;
            };
            match types::components(shape, &a.value) {
                Err(rule) => self.report.malformed.push(Issue {
                    event: event_uuid.clone(),
                    attribute: Some(auuid),
                    rule: format!(
                        "malformed value {:?} for type {}: {rule}; kept in x_misp_attributes",
                        a.value, a.kind
                    ),
                }),
                Ok(parts) => {
                    let comparisons = types::comparisons(shape, &parts);
                    if a.to_ids {
                        ids_tests.extend(comparisons.iter().cloned());
                    }
                    tests.extend(comparisons);
                    let mut scos = types::scos(shape, &parts, &auuid).into_iter();
                    let root = scos.next().expect("a root SCO");
                    children.extend(scos);
                    merge_root(&mut roots, root);
                }
            }
        }
        let own = tlp::strictest_as(self.options.tlp_version, tags.iter().map(String::as_str));
        let event_tlp = self.ev().tlp;
        let marking = self.marking(own.max_by_key(event_tlp))?;
        let mut labels = vec![
            format!("misp:name=\"{}\"", obj.name),
            format!("misp:meta-category=\"{}\"", obj.meta_category),
        ];
        if to_ids {
            labels.push("misp:to_ids=\"True\"".into());
        }
        labels.extend(tags);
        let mut o = self.common(&time, labels, marking);
        // Attributes without `to_ids` beside IDS ones: the observed-data of the whole object
        // too, joined to the indicator by `based-on` (misp-stix's shape), so they are
        // neither put into the pattern nor lost.
        let observed_too = to_ids && !ids_tests.is_empty() && ids_tests.len() < tests.len();
        let mut observed_data: Option<Value> = None;
        if observed_too {
            let mut od = o.clone();
            let refs: Vec<Value> = roots
                .iter()
                .chain(children.iter())
                .map(|s| s["id"].clone())
                .collect();
            od.insert("type".into(), json!("observed-data"));
            od.insert("id".into(), json!(format!("observed-data--{uuid}")));
            od.insert("first_observed".into(), json!(time));
            od.insert("last_observed".into(), json!(time));
            od.insert("number_observed".into(), json!(1));
            od.insert("object_refs".into(), json!(refs));
            for sco in roots.drain(..).chain(children.drain(..)) {
                self.emit(sco)?;
            }
            observed_data = Some(Value::Object(od));
        }
        let tests = if to_ids && !ids_tests.is_empty() {
            ids_tests
        } else {
            tests
        };
        let id = if tests.is_empty() {
            o.insert("x_misp_name".into(), json!(obj.name));
            o.insert("x_misp_meta_category".into(), json!(obj.meta_category));
            format!("x-misp-object--{uuid}")
        } else if to_ids {
            let pattern = types::pattern(tests)
                .map_err(|e| format!("event {event_uuid} object {uuid}: {e}"))?;
            o.insert("pattern".into(), json!(pattern));
            o.insert("pattern_type".into(), json!("stix"));
            o.insert("pattern_version".into(), json!("2.1"));
            o.insert("valid_from".into(), json!(time));
            o.insert(
                "kill_chain_phases".into(),
                json!([{"kill_chain_name": "misp-category", "phase_name": obj.meta_category}]),
            );
            format!("indicator--{uuid}")
        } else {
            let refs: Vec<Value> = roots
                .iter()
                .chain(children.iter())
                .map(|s| s["id"].clone())
                .collect();
            o.insert("first_observed".into(), json!(time));
            o.insert("last_observed".into(), json!(time));
            o.insert("number_observed".into(), json!(1));
            o.insert("object_refs".into(), json!(refs));
            for sco in roots.drain(..).chain(children.drain(..)) {
                self.emit(sco)?;
            }
            format!("observed-data--{uuid}")
        };
        if !obj.comment.is_empty() {
            o.insert("x_misp_comment".into(), json!(obj.comment));
        }
        o.insert("x_misp_attributes".into(), Value::Array(kept));
        if !all_lists.is_empty() {
            all_lists.sort();
            all_lists.dedup();
            o.insert("x_concord_warninglists".into(), json!(all_lists));
        }
        o.insert("type".into(), json!(type_of(&id)));
        o.insert("id".into(), json!(id));
        self.emit(Value::Object(o))?;
        if let Some(od) = observed_data {
            let od_id = od["id"].as_str().unwrap_or_default().to_owned();
            self.emit(od)?;
            self.ev().refs.push(od_id.clone());
            self.relationship(&id, "based-on", &od_id)?;
        }
        let ev = self.ev();
        ev.refs.push(id.clone());
        ev.ids.insert(uuid.clone(), id.clone());
        for r in &obj.references {
            ev.pending.push((
                id.clone(),
                r.referenced_uuid.clone(),
                r.relationship_type.clone(),
            ));
        }
        for a in &obj.attributes {
            for s in &a.sightings {
                self.sighting(s, &id)?;
            }
        }
        Ok(())
    }

    fn end(&mut self, index: usize) -> Result<(), String> {
        self.start(index)?;
        let meta = self.metas.get(index).cloned().unwrap_or_default();
        // Event-level sightings that name their attribute.
        for s in &meta.sightings {
            let target = s
                .get("attribute_uuid")
                .and_then(Value::as_str)
                .and_then(|u| self.ev().ids.get(u).cloned());
            if let (Some(target), Ok(s)) = (target, serde_json::from_value::<Sighting>(s.clone()))
                && !target.starts_with('@')
            {
                self.sighting(&s, &target)?;
            }
        }
        let pending = std::mem::take(&mut self.ev().pending);
        for (source, target_uuid, rel) in pending {
            let target = self.ev().ids.get(&target_uuid).cloned();
            match target {
                Some(t) if !t.starts_with('@') => {
                    let rel = if rel.is_empty() {
                        "related-to".into()
                    } else {
                        rel
                    };
                    self.relationship(&source, &rel, &t)?;
                }
                // An attribute inside an object: relate to its object.
                Some(t) => {
                    let object = self.ev().ids.get(&t[1..]).cloned();
                    if let Some(object) = object.filter(|o| *o != source) {
                        self.relationship(&source, &rel, &object)?;
                    }
                }
                None => {
                    let event = self.ev().uuid.clone();
                    self.report.not_carried.push(Issue {
                        event,
                        attribute: Some(source.clone()),
                        rule: format!(
                            "object reference {rel:?} to {target_uuid}, which is not in the event"
                        ),
                    });
                }
            }
        }
        let mut ev = self.event.take().expect("event started");
        let mut refs = std::mem::take(&mut ev.refs);
        let container = match self.options.container {
            Container::Report => "report",
            Container::Grouping => "grouping",
        };
        let id = format!("{container}--{}", ev.uuid);
        if refs.is_empty() {
            // misp-stix `_handle_empty_object_refs`: a note refers to the empty report.
            self.report.empty_events.push(ev.uuid.clone());
            let note = format!("note--{}", ev.uuid);
            self.emit(json!({"type": "note", "spec_version": "2.1", "id": note,
                "created": ev.created, "modified": ev.time, "created_by_ref": ev.identity,
                "content": "This MISP Event is empty and contains no attribute, object, galaxy or tag.",
                "object_refs": [id]}))?;
            refs.push(note);
        }
        let mut labels: Vec<String> = meta.tags.iter().map(|t| t.name.clone()).collect();
        labels.dedup();
        let marking = self.marking(ev.tlp)?;
        let time = self.event.insert(ev).time.clone();
        let mut o = self.common(&time, labels, marking);
        o.insert("type".into(), json!(container));
        o.insert("id".into(), json!(id));
        o.insert(
            "name".into(),
            json!(if meta.info.is_empty() {
                "MISP event"
            } else {
                &meta.info
            }),
        );
        match self.options.container {
            Container::Report => {
                let published = stix_time(&meta.publish_timestamp)
                    .filter(|p| p.as_str() >= "1970-01-02")
                    .unwrap_or_else(|| time.clone());
                o.insert("published".into(), json!(published));
                o.insert("report_types".into(), json!(["misp-event"]));
            }
            Container::Grouping => {
                o.insert("context".into(), json!("suspicious-activity"));
            }
        }
        o.insert("object_refs".into(), json!(refs));
        for (k, v) in [
            ("x_misp_date", &meta.date),
            ("x_misp_threat_level_id", &meta.threat_level_id),
            ("x_misp_analysis", &meta.analysis),
        ] {
            if !v.is_empty() {
                o.insert(k.into(), json!(v));
            }
        }
        self.event = None;
        self.emit(Value::Object(o))
    }
}

trait MaxBy {
    fn max_by_key(self, other: Option<Marking>) -> Option<Marking>;
}

impl MaxBy for Option<Marking> {
    /// The stricter of two TLP markings (an attribute's own stricter tag wins over its event's).
    fn max_by_key(self, other: Option<Marking>) -> Option<Marking> {
        match (self, other) {
            (Some(a), Some(b)) => Some(if b.level > a.level { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

fn indicator_fields(o: &mut Map<String, Value>, time: &str, a: &Attribute) {
    o.insert("valid_from".into(), json!(time));
    o.insert(
        "kill_chain_phases".into(),
        json!([{"kill_chain_name": "misp-category", "phase_name": a.category}]),
    );
    if !a.comment.is_empty() {
        o.insert("description".into(), json!(a.comment));
    }
}

/// misp-stix's `x-misp-attribute`: every field as a custom property.
fn custom_attribute(o: &mut Map<String, Value>, a: &Attribute) {
    o.insert("x_misp_type".into(), json!(a.kind));
    o.insert("x_misp_value".into(), json!(a.value));
    o.insert("x_misp_category".into(), json!(a.category));
    if !a.comment.is_empty() {
        o.insert("x_misp_comment".into(), json!(a.comment));
    }
    if let Some(d) = &a.data {
        o.insert("x_misp_data".into(), json!(d));
    }
}

/// Merges an SCO into one of the same type where that is one thing seen (a file's name and
/// hashes; a certificate's hashes); otherwise keeps it apart.
fn merge_root(roots: &mut Vec<Value>, new: Value) {
    let t = new["type"].as_str().unwrap_or("").to_owned();
    if matches!(t.as_str(), "file" | "x509-certificate" | "email-message")
        && let Some(Value::Object(existing)) = roots.iter_mut().find(|r| r["type"] == t.as_str())
        && let Value::Object(add) = new
    {
        for (k, v) in add {
            match (existing.get_mut(&k), v) {
                (Some(Value::Object(a)), Value::Object(b)) => {
                    for (hk, hv) in b {
                        a.entry(hk).or_insert(hv);
                    }
                }
                (Some(_), _) => {}
                (None, v) => {
                    existing.insert(k, v);
                }
            }
        }
        return;
    }
    roots.push(new);
}
