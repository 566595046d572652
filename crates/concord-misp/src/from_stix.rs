//! STIX 2.1 → MISP event JSON: a `report` or `grouping` and the objects of its `object_refs`
//! become one event (MISP core format), as misp-stix's `stix2misp` reads them:
//!
//! - `indicator` with a STIX pattern → an attribute whose type and value come back from the
//!   pattern's comparisons through the table of [`crate::types`] (the `misp:type` label, when
//!   present, picks the row); a pattern that fits no row → a `stix2-pattern` attribute;
//!   `yara`/`snort`/`sigma`/`suricata` patterns → attributes of that type;
//! - `observed-data` → an attribute from its SCOs, the same way;
//! - `x-misp-attribute` → the attribute it carries; `indicator`/`observed-data`/`x-misp-object`
//!   with `x_misp_attributes` → a MISP object with those attributes;
//! - `vulnerability`, `campaign` → `vulnerability`, `campaign-name` attributes;
//! - attack-pattern, malware, threat-actor, intrusion-set, tool, course-of-action → galaxy
//!   clusters;
//! - `labels` → tags (except misp-stix's own `misp:type=`/`misp:category=`/`misp:to_ids=`/
//!   `misp:name=`/`misp:meta-category=`/`misp:galaxy-type=` labels, which give type, category,
//!   to_ids); a TLP marking with no `tlp:` label → a `tlp:` tag.
//!
//! Not carried back (listed in the round-trip test): sightings and opinions, relationships
//! other than those implied by MISP objects, SCO properties outside the table, granular
//! markings.

use std::collections::HashMap;
use std::ops::Deref;

use serde_json::{Map, Value, json};

use crate::tlp;
use crate::types;

/// Why a STIX container could not become a MISP event.
#[derive(Debug, thiserror::Error)]
pub enum FromStixError {
    /// The container is not in the objects given.
    #[error("{0}: no such report or grouping among the objects")]
    Missing(String),
}

/// Labels misp-stix writes for its own metadata (not MISP tags).
const META_LABELS: &[&str] = &[
    "misp:type=",
    "misp:category=",
    "misp:to_ids=",
    "misp:name=",
    "misp:meta-category=",
    "misp:galaxy-type=",
    "misp:tool=",
];

fn label_value<'v>(o: &'v Value, key: &str) -> Option<&'v str> {
    o.get("labels")?.as_array()?.iter().find_map(|l| {
        l.as_str()?
            .strip_prefix(key)?
            .strip_prefix('=')
            .map(|v| v.trim_matches('"'))
    })
}

fn tags_of(o: &Value, container_tlp: Option<tlp::Level>) -> Vec<Value> {
    let mut tags: Vec<Value> = o
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|l| !META_LABELS.iter().any(|m| l.starts_with(m)))
        .map(|l| json!({"name": l}))
        .collect();
    let has_tlp = tags
        .iter()
        .any(|t| tlp::from_tag(t["name"].as_str().unwrap_or("")).is_some());
    if !has_tlp && let Some(m) = marking_of(o).filter(|m| Some(m.level) != container_tlp) {
        tags.push(json!({"name": m.tag}));
    }
    tags
}

fn marking_of(o: &Value) -> Option<tlp::Marking> {
    o.get("object_marking_refs")?
        .as_array()?
        .iter()
        .filter_map(|m| tlp::from_id(m.as_str()?))
        .max_by_key(|m| m.level)
}

/// STIX timestamp → epoch seconds as MISP writes them (a string).
fn epoch(ts: Option<&str>) -> String {
    ts.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second().to_string())
        .unwrap_or_default()
}

pub(crate) fn uuid_of(id: &str) -> &str {
    id.split_once("--").map_or(id, |(_, u)| u)
}

/// The default category of a MISP type when the STIX object does not say (describeTypes'
/// `sane_defaults` for the types of the table).
fn default_category(misp_type: &str) -> &'static str {
    match misp_type {
        t if t.starts_with("ip-") || t.starts_with("domain") || t.starts_with("hostname") => {
            "Network activity"
        }
        "url" | "uri" | "AS" | "mac-address" => "Network activity",
        "link" => "External analysis",
        "regkey" | "regkey|value" | "mutex" => "Persistence mechanism",
        "yara" | "snort" | "sigma" | "suricata" | "stix2-pattern" => "Network activity",
        "vulnerability" | "campaign-name" => "External analysis",
        _ => "Payload delivery",
    }
}

/// One MISP event (`{"Event": {…}}`) from the container `container_id` and the objects it
/// refers to, looked up with `get`.
///
/// Errors: [`FromStixError::Missing`] when `get` does not know the container.
pub fn to_misp_event(
    container_id: &str,
    get: &dyn Fn(&str) -> Option<Value>,
) -> Result<Value, FromStixError> {
    to_misp_event_noting(container_id, get, &mut Vec::new())
}

/// What an export did not carry into MISP, one line each (issue 24, item 2: nothing is
/// dropped without a line in the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotCarried {
    /// The STIX object, e.g. `sighting--…`.
    pub id: String,
    /// Why, e.g. `sighting: MISP events have no place for it`.
    pub reason: String,
}

/// As [`to_misp_event`], and appends to `notes` each object of the container that the event
/// does not carry, or carries only in part, with the reason.
pub fn to_misp_event_noting(
    container_id: &str,
    get: &dyn Fn(&str) -> Option<Value>,
    notes: &mut Vec<NotCarried>,
) -> Result<Value, FromStixError> {
    let c = get(container_id).ok_or_else(|| FromStixError::Missing(container_id.into()))?;
    let refs: Vec<String> = c
        .get("object_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    Ok(event_from(&c, &refs, get, notes))
}

/// One MISP event from objects that no report or grouping holds: `title` names it, and its
/// uuid is a UUIDv5 of `key`.
pub fn loose_event(
    title: &str,
    key: &str,
    ids: &[String],
    get: &dyn Fn(&str) -> Option<Value>,
) -> Value {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let c = json!({"type": "report", "id": format!("report--{}", crate::to_stix::v5(&[key])),
        "name": title, "created": now, "modified": now, "published": now});
    event_from(&c, ids, get, &mut Vec::new())
}

/// As [`loose_event`], noting what is not carried as [`to_misp_event_noting`] does.
pub fn loose_event_noting(
    title: &str,
    key: &str,
    ids: &[String],
    get: &dyn Fn(&str) -> Option<Value>,
    notes: &mut Vec<NotCarried>,
) -> Value {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let c = json!({"type": "report", "id": format!("report--{}", crate::to_stix::v5(&[key])),
        "name": title, "created": now, "modified": now, "published": now});
    event_from(&c, ids, get, notes)
}

/// Types an event carries other than as attributes: the identity of `created_by_ref` as
/// `Orgc`, marking definitions as tags, SCOs as the values of the attributes made from the
/// indicators and observed-data that refer to them.
fn carried_elsewhere(t: &str) -> bool {
    matches!(
        t,
        "identity" | "marking-definition" | "extension-definition"
    ) || concord_stix::validate::kind_of(t) == concord_stix::ObjectKind::Sco
}

/// One piece of an event's body, in the order the conversion of a container's references
/// yields them: an entry of the event's `Attribute`, `Object` or `Galaxy` list.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// An entry of `Event.Attribute`.
    Attribute(Value),
    /// An entry of `Event.Object` (a MISP object with its attributes).
    Object(Value),
    /// An entry of `Event.Galaxy` (one cluster).
    Galaxy(Value),
}

pub(crate) fn event_from(
    c: &Value,
    refs: &[String],
    get: &dyn Fn(&str) -> Option<Value>,
    notes: &mut Vec<NotCarried>,
) -> Value {
    let get = |id: &str| get(id).map(Box::new);
    let mut e = event_head(c, &get);
    let mut attributes = Vec::new();
    let mut objects = Vec::new();
    let mut galaxies = Vec::new();
    let parts = event_parts(c, refs.iter().map(String::as_str), &get, notes, &mut |p| {
        match p {
            Part::Attribute(a) => attributes.push(a),
            Part::Object(o) => objects.push(o),
            Part::Galaxy(g) => galaxies.push(g),
        }
        Ok(())
    });
    // The sink above never fails.
    debug_assert!(parts.is_ok());
    e.insert("Attribute".into(), json!(attributes));
    e.insert("Object".into(), json!(objects));
    e.insert("Galaxy".into(), json!(galaxies));
    json!({ "Event": e })
}

/// The object references of a container (`object_refs`), in their order.
pub(crate) fn refs_of(c: &Value) -> impl Iterator<Item = &str> {
    c.get("object_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The fields of the event of container `c` other than its `Attribute`, `Object` and
/// `Galaxy` lists: `uuid`, `info`, `date`, `timestamp`, `published`, `publish_timestamp`,
/// `threat_level_id`, `analysis`, `distribution`, `Orgc` (the identity of
/// `created_by_ref`, looked up with `get`) and `Tag`. Enough for the event's manifest entry
/// ([`crate::feed::manifest_entry`]).
pub fn event_head<B: Deref<Target = Value>>(
    c: &Value,
    get: &dyn Fn(&str) -> Option<B>,
) -> Map<String, Value> {
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let org = c
        .get("created_by_ref")
        .and_then(Value::as_str)
        .and_then(get)
        .map(|i| json!({"uuid": uuid_of(&s(&i, "id")), "name": s(&i, "name")}));
    let created = s(c, "created");
    let published = s(c, "published");
    let date = c
        .get("x_misp_date")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let base = if published.is_empty() {
                &created
            } else {
                &published
            };
            base.get(..10).unwrap_or("").to_owned()
        });
    let mut e = Map::new();
    e.insert("uuid".into(), json!(uuid_of(&s(c, "id"))));
    e.insert("info".into(), json!(s(c, "name")));
    e.insert("date".into(), json!(date));
    e.insert(
        "timestamp".into(),
        json!(epoch(c.get("modified").and_then(Value::as_str))),
    );
    e.insert("published".into(), json!(c["type"] == "report"));
    if !published.is_empty() {
        e.insert("publish_timestamp".into(), json!(epoch(Some(&published))));
    }
    e.insert(
        "threat_level_id".into(),
        json!(
            c.get("x_misp_threat_level_id")
                .and_then(Value::as_str)
                .unwrap_or("4")
        ),
    );
    e.insert(
        "analysis".into(),
        json!(
            c.get("x_misp_analysis")
                .and_then(Value::as_str)
                .unwrap_or("2")
        ),
    );
    e.insert("distribution".into(), json!("0"));
    if let Some(org) = org {
        e.insert("Orgc".into(), org);
    }
    let mut tags = tags_of(c, None);
    if let Some(m) = marking_of(c)
        && !tags
            .iter()
            .any(|t| tlp::from_tag(t["name"].as_str().unwrap_or("")).is_some())
    {
        tags.push(json!({"name": m.tag}));
    }
    e.insert("Tag".into(), json!(tags));
    e
}

/// The body of the event of container `c`: each of `refs` looked up with `get`, converted,
/// and handed to `emit` as it is made ([`Part`]s in event order), so that no more than one
/// referenced object (and, for an `observed-data`, its SCOs) is held at a time. What is not
/// carried is appended to `notes`. Errors: the first error of `emit`.
pub fn event_parts<'r, B: Deref<Target = Value>>(
    c: &Value,
    refs: impl IntoIterator<Item = &'r str>,
    get: &dyn Fn(&str) -> Option<B>,
    notes: &mut Vec<NotCarried>,
    emit: &mut dyn FnMut(Part) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let container_tlp = marking_of(c).map(|m| m.level);
    let mut note = |id: &str, reason: String| {
        notes.push(NotCarried {
            id: id.to_owned(),
            reason,
        })
    };
    for r in refs {
        let Some(o) = get(r) else {
            note(
                r,
                "not among the objects exported (withheld, or not in the collection)".into(),
            );
            continue;
        };
        let o: &Value = &o;
        let t = s(o, "type");
        // The observed side of a MISP object with IDS attributes: its indicator carries the
        // object (`x_misp_attributes`), all of it.
        if t == "observed-data"
            && label_value(o, "misp:name").is_some()
            && o.get("x_misp_attributes").is_none()
        {
            continue;
        }
        if let Some(list) = o.get("x_misp_attributes").and_then(Value::as_array) {
            emit(Part::Object(misp_object(o, list, container_tlp)))?;
            continue;
        }
        let found = match t.as_str() {
            "indicator" => {
                let pattern = s(o, "pattern");
                match s(o, "pattern_type").as_str() {
                    "stix" => {
                        let pairs = types::pattern_pairs(&pattern);
                        Some(
                            types::value_from_pairs(&pairs, label_value(o, "misp:type"))
                                .unwrap_or(("stix2-pattern".into(), pattern)),
                        )
                    }
                    other => Some((other.to_owned(), pattern)),
                }
            }
            "observed-data" => {
                let scos: Vec<B> = o
                    .get("object_refs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|x| get(x.as_str()?))
                    .collect();
                let by_id = |id: &str| scos.iter().find(|x| x["id"] == id).map(|x| (**x).clone());
                let hint = label_value(o, "misp:type");
                scos.iter()
                    .find_map(|root| types::value_from_pairs(&types::sco_pairs(root, &by_id), hint))
            }
            "x-misp-attribute" => Some((s(o, "x_misp_type"), s(o, "x_misp_value"))),
            "vulnerability" => Some(("vulnerability".into(), s(o, "name"))),
            "campaign" => Some(("campaign-name".into(), s(o, "name"))),
            "attack-pattern" | "malware" | "threat-actor" | "intrusion-set" | "tool"
            | "course-of-action" => {
                let kind =
                    label_value(o, "misp:galaxy-type").map_or_else(|| t.clone(), str::to_owned);
                // A malware instance need not have a name (STIX 2.1 §4.11, is_family false):
                // its cluster is named after its id rather than left empty.
                let name = match s(o, "name") {
                    n if n.is_empty() => format!("unnamed {t} {r}"),
                    n => n,
                };
                let galaxy = json!({"type": kind, "name": kind, "GalaxyCluster": [{
                    "uuid": uuid_of(r), "type": kind, "value": name,
                    "description": s(o, "description"),
                    "tag_name": format!("misp-galaxy:{kind}=\"{name}\"")}]});
                // Its samples (`sample_refs`: files, artifacts): their hashes as attributes.
                for sample in o
                    .get("sample_refs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let Some(sco) = get(sample) else {
                        note(
                            sample,
                            format!("sample of {r}: not among the objects exported"),
                        );
                        continue;
                    };
                    let by_id = |id: &str| get(id).map(|x| (*x).clone());
                    let pairs = types::sco_pairs(&sco, &by_id);
                    drop(sco);
                    let mut any = false;
                    for (path, value) in &pairs {
                        let kind = match path.last().map(String::as_str) {
                            Some("MD5") => "md5",
                            Some("SHA-1") => "sha1",
                            Some("SHA-256") => "sha256",
                            Some("SHA-512") => "sha512",
                            _ => continue,
                        };
                        any = true;
                        emit(Part::Attribute(
                            json!({"uuid": crate::to_stix::v5(&[sample, kind]),
                            "type": kind, "category": "Payload delivery", "value": value,
                            "to_ids": false, "comment": format!("sample of {name}"),
                            "timestamp": epoch(o.get("modified").and_then(Value::as_str)),
                            "Tag": tags_of(o, container_tlp)}),
                        ))?;
                    }
                    if !any {
                        note(
                            sample,
                            format!("sample of {r}: no MD5, SHA-1, SHA-256 or SHA-512 to carry"),
                        );
                    }
                }
                emit(Part::Galaxy(galaxy))?;
                None
            }
            "identity" | "marking-definition" => None,
            _ => {
                if !carried_elsewhere(&t) {
                    note(r, format!("{t}: MISP events have no place for it"));
                }
                None
            }
        };
        let Some((kind, value)) = found else {
            if matches!(t.as_str(), "observed-data") {
                note(
                    r,
                    "observed-data: none of its SCOs has a MISP attribute type".into(),
                );
            }
            continue;
        };
        let category = label_value(o, "misp:category")
            .map(str::to_owned)
            .or_else(|| {
                o.get("x_misp_category")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| default_category(&kind).to_owned());
        let to_ids = label_value(o, "misp:to_ids") == Some("True")
            || (t == "indicator" && label_value(o, "misp:type").is_none());
        let comment = o
            .get("description")
            .or_else(|| o.get("x_misp_comment"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut a = json!({"uuid": uuid_of(r), "type": kind, "category": category,
            "value": value, "to_ids": to_ids, "comment": comment,
            "timestamp": epoch(o.get("modified").and_then(Value::as_str)),
            "Tag": tags_of(o, container_tlp)});
        if let Some(d) = o.get("x_misp_data") {
            a["data"] = d.clone();
        }
        emit(Part::Attribute(a))?;
    }
    Ok(())
}

fn misp_object(o: &Value, list: &[Value], container_tlp: Option<tlp::Level>) -> Value {
    let _ = container_tlp;
    let name = label_value(o, "misp:name")
        .map(str::to_owned)
        .or_else(|| {
            o.get("x_misp_name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "misc".into());
    let meta_category = label_value(o, "misp:meta-category")
        .unwrap_or("misc")
        .to_owned();
    let id = o.get("id").and_then(Value::as_str).unwrap_or("");
    let timestamp = epoch(o.get("modified").and_then(Value::as_str));
    let attributes: Vec<Value> = list
        .iter()
        .map(|a| {
            let tags: Vec<Value> = a
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| json!({ "name": t }))
                .collect();
            json!({"uuid": a["uuid"], "type": a["type"], "object_relation": a["object_relation"],
                "category": a["category"], "value": a["value"], "to_ids": a["to_ids"],
                "comment": a["comment"], "timestamp": timestamp, "Tag": tags})
        })
        .collect();
    json!({"uuid": uuid_of(id), "name": name, "meta-category": meta_category,
        "comment": o.get("x_misp_comment").and_then(Value::as_str).unwrap_or(""),
        "timestamp": timestamp, "Attribute": attributes})
}

/// Index of objects by id (the newest `modified` wins), for [`to_misp_event`]'s `get`.
pub fn index(objects: impl IntoIterator<Item = Value>) -> HashMap<String, Value> {
    let mut m: HashMap<String, Value> = HashMap::new();
    for o in objects {
        let Some(id) = o.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let newer = m.get(&id).is_none_or(|old| {
            old.get("modified").and_then(Value::as_str) <= o.get("modified").and_then(Value::as_str)
        });
        if newer {
            m.insert(id, o);
        }
    }
    m
}
