//! `concord indicator show|list|false-positive|revoke|expire` (issue 21, item 4): indicators
//! that change together across borders.
//!
//! - A partner that finds an indicator it received to be a false positive writes a
//!   `sighting` of it with `x_opencti_negative: true` (OpenCTI's false-positive sighting; see
//!   [`is_false_positive`]). It is an ordinary sighting, so `concord sync` sends it home to
//!   the indicator's producer through the egress door like any other.
//! - The producer counts the sightings and false-positive reports of each indicator
//!   (`show`, `list --false-positives`) and, for the indicators it created, writes new
//!   versions (STIX 2.1 §3.6): `revoked: true`, or a new `valid_until`. They travel by sync
//!   as any new version does, and `concord match` and the feeds read only the newest
//!   version of an indicator, dropping revoked and expired ones.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use concord_stix::Timestamp;
use concord_store::{Collection, ObjectFilter, Store, VersionSelector};
use serde_json::{Value, json};

use crate::DataDirArg;

use concord_match::sighting::{FALSE_POSITIVE_PROPERTY, Tally, is_false_positive};

/// `concord indicator …`.
#[derive(Subcommand)]
pub enum IndicatorCommand {
    /// One indicator: its newest version, validity, who created it, its sightings and
    /// false-positive reports.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// The indicator's id.
        id: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Indicators with their sightings and false-positive reports, newest version each.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Only the indicators of this collection (alias or id).
        #[arg(long, value_name = "C")]
        collection: Option<String>,
        /// Only indicators with at least one false-positive report, most reported first.
        #[arg(long)]
        false_positives: bool,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Report an indicator held here as a false positive: a sighting of it with
    /// `x_opencti_negative: true`, which `concord sync` sends home to its producer.
    FalsePositive {
        #[command(flatten)]
        data: DataDirArg,
        /// The indicator's id.
        id: String,
        /// Collection (alias or id) the sighting is written into; created when missing.
        #[arg(long, value_name = "C")]
        sightings: String,
        /// Why it is a false positive (the sighting's `description`).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an indicator this node created: a new version with `revoked: true`.
    Revoke {
        #[command(flatten)]
        data: DataDirArg,
        /// The indicator's id.
        id: String,
        /// Why (written as a STIX `note` on the indicator, beside the new version).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// End an indicator's validity: a new version with `valid_until` set.
    Expire {
        #[command(flatten)]
        data: DataDirArg,
        /// The indicator's id.
        id: String,
        /// When it stops being valid (RFC 3339; default: now). Must be after `valid_from`.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// The `modified` of a new version of an object whose newest `modified` is `previous`: now,
/// or one microsecond after `previous` when the clock is not past it (STIX 2.1 §3.2: a new
/// version's `modified` is later than the previous one's). Microsecond precision.
pub fn next_modified(previous: Option<&str>, now: &Timestamp) -> Timestamp {
    let floor = previous
        .and_then(|p| Timestamp::parse(p).ok())
        .map(|p| p.unix_nanos() + 1_000);
    match floor {
        Some(f) if f > now.unix_nanos() => Timestamp::from_unix_nanos(f, 6),
        _ => Timestamp::from_unix_nanos(now.unix_nanos(), 6),
    }
}

/// Why a new version cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

fn check_indicator(v: &Value) -> std::result::Result<(), Refused> {
    if v.get("type").and_then(Value::as_str) != Some("indicator") {
        return Err(Refused(format!(
            "{} is not an indicator",
            v.get("id").and_then(Value::as_str).unwrap_or("?")
        )));
    }
    if v.get("revoked").and_then(Value::as_bool) == Some(true) {
        // STIX 2.1 §3.6: a revoked object is never versioned again.
        return Err(Refused(format!(
            "{} is revoked: a revoked object has no further versions (STIX 2.1 §3.6)",
            v["id"].as_str().unwrap_or("?")
        )));
    }
    Ok(())
}

/// The revoked version of indicator `v` (its newest version): `revoked: true`, `modified`
/// advanced ([`next_modified`]). Refused: not an indicator, already revoked.
pub fn revoked_version(v: &Value, now: &Timestamp) -> std::result::Result<Value, Refused> {
    check_indicator(v)?;
    let mut new = v.clone();
    new["revoked"] = json!(true);
    new["modified"] = json!(next_modified(v["modified"].as_str(), now).as_str());
    Ok(new)
}

/// The version of indicator `v` valid until `at`, `modified` advanced. Refused: not an
/// indicator, revoked, `at` not after `valid_from` (STIX 2.1 §4.7: `valid_until` MUST be
/// greater than `valid_from`).
pub fn expired_version(
    v: &Value,
    at: &Timestamp,
    now: &Timestamp,
) -> std::result::Result<Value, Refused> {
    check_indicator(v)?;
    if let Some(from) = v["valid_from"]
        .as_str()
        .and_then(|t| Timestamp::parse(t).ok())
        && at.unix_nanos() <= from.unix_nanos()
    {
        return Err(Refused(format!(
            "--at {at}: not after the indicator's valid_from {from} (STIX 2.1 §4.7)"
        )));
    }
    let mut new = v.clone();
    new["valid_until"] = json!(at.as_str());
    new["modified"] = json!(next_modified(v["modified"].as_str(), now).as_str());
    Ok(new)
}

/// A false-positive report on `indicator` by the node whose identity id is `me`: a STIX
/// sighting (§5.2) of it, `count` 1, `where_sighted_refs` and `created_by_ref` the node,
/// `x_opencti_negative: true`, the reason as `description`, marked as the indicator is (a
/// report on it is shared no wider than the indicator itself).
pub fn false_positive_sighting(
    indicator: &Value,
    me: &str,
    reason: Option<&str>,
    now: &Timestamp,
) -> Value {
    // STIX 2.1 §3.2: `created`/`modified` at least to the millisecond, whatever `now` says.
    let now = Timestamp::from_unix_nanos(now.unix_nanos(), 6);
    let mut s = json!({
        "type": "sighting", "spec_version": "2.1",
        "id": format!("sighting--{}", uuid::Uuid::new_v4()),
        "created": now.as_str(), "modified": now.as_str(),
        "created_by_ref": me,
        "sighting_of_ref": indicator["id"],
        "count": 1,
        "where_sighted_refs": [me],
        FALSE_POSITIVE_PROPERTY: true,
    });
    if let Some(r) = reason {
        s["description"] = json!(r);
    }
    if let Some(m) = indicator.get("object_marking_refs") {
        s["object_marking_refs"] = m.clone();
    }
    s
}

/// The newest version of one object: its version key, its JSON, and the aliases (or ids)
/// of the collections holding it.
type Newest = (String, Value, Vec<String>);

/// Every newest version of the objects of `types` in `collections`, one per id (the newest
/// `modified` when several collections hold one), with the aliases (or ids) of the
/// collections holding it.
fn newest(
    store: &dyn Store,
    collections: &[Collection],
    types: &[&str],
    ids: &[String],
) -> Result<BTreeMap<String, Newest>> {
    let filter = ObjectFilter {
        ids: ids.to_vec(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    let mut out: BTreeMap<String, Newest> = BTreeMap::new();
    for c in collections {
        let name = c.alias.clone().unwrap_or_else(|| c.id.clone());
        concord_store::each_entry(store, &c.id, &filter, |e| -> Result<()> {
            let Ok(v) = serde_json::from_str::<Value>(e.body.as_deref().unwrap_or("null")) else {
                return Ok(());
            };
            let slot = out
                .entry(e.id.clone())
                .or_insert_with(|| (e.version_key.clone(), v.clone(), Vec::new()));
            if e.version_key > slot.0 {
                slot.0 = e.version_key.clone();
                slot.1 = v;
            }
            if !slot.2.contains(&name) {
                slot.2.push(name.clone());
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The sightings of every indicator the node holds sightings of, by indicator id.
fn tallies(store: &dyn Store) -> Result<BTreeMap<String, Tally>> {
    let mut out: BTreeMap<String, Tally> = BTreeMap::new();
    let mut counted = HashSet::new();
    for (id, (_, v, _)) in newest(store, &store.collections()?, &["sighting"], &[])? {
        if !counted.insert(id.clone()) {
            continue;
        }
        if let Some(of) = v.get("sighting_of_ref").and_then(Value::as_str) {
            // Who sent it is asked only of false-positive reports (one look-up each).
            let from = if is_false_positive(&v) {
                store.received_from(&id, None)?
            } else {
                Vec::new()
            };
            out.entry(of.to_owned()).or_default().add(&v, &from);
        }
    }
    Ok(out)
}

/// The state of an indicator's newest version, for `show` and `list`.
fn state(v: &Value, now: &Timestamp) -> &'static str {
    if v.get("revoked").and_then(Value::as_bool) == Some(true) {
        return "revoked";
    }
    let until = v
        .get("valid_until")
        .and_then(Value::as_str)
        .and_then(|t| Timestamp::parse(t).ok());
    if until.is_some_and(|u| u.unix_nanos() <= now.unix_nanos()) {
        "expired"
    } else {
        "valid"
    }
}

/// `concord indicator …`. Exit 1 (`Ok(false)`): an unknown indicator, or a new version
/// refused (not created here, revoked, a bad `--at`).
pub fn run(command: IndicatorCommand) -> Result<bool> {
    let now = Timestamp::now_micros();
    match command {
        IndicatorCommand::Show { data, id, json } => {
            let store = crate::open_store(&data)?;
            show(store.as_ref(), &id, json, &now)
        }
        IndicatorCommand::List {
            data,
            collection,
            false_positives,
            json,
        } => {
            let store = crate::open_store(&data)?;
            list(
                store.as_ref(),
                collection.as_deref(),
                false_positives,
                json,
                &now,
            )
        }
        IndicatorCommand::FalsePositive {
            data,
            id,
            sightings,
            reason,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let Some((_, indicator, _)) = find(store.as_ref(), &id)? else {
                eprintln!("no indicator {id} on this node");
                return Ok(false);
            };
            if indicator.get("type").and_then(Value::as_str) != Some("indicator") {
                eprintln!("{id} is not an indicator");
                return Ok(false);
            }
            let identity = crate::matching::node_identity(store.as_ref(), "Concord node")?;
            let me = identity["id"].as_str().unwrap_or_default().to_owned();
            let sighting = false_positive_sighting(&indicator, &me, reason.as_deref(), &now);
            let sid = sighting["id"].as_str().unwrap_or_default().to_owned();
            write(
                store.as_ref(),
                &sightings,
                "indicator-false-positive",
                &[identity, sighting],
            )?;
            if json {
                out!(
                    "{}",
                    json!({"sighting": sid, "indicator": id, "collection": sightings})
                );
            } else {
                out!("{sid}");
                eprintln!(
                    "false positive of {id} written to {sightings}; `concord sync` sends it home"
                );
            }
            Ok(true)
        }
        IndicatorCommand::Revoke {
            data,
            id,
            reason,
            json,
        } => {
            let store = crate::open_store(&data)?;
            version(store.as_ref(), &id, json, "indicator-revoke", |v| {
                let new = revoked_version(v, &now)?;
                let mut objects = vec![new];
                if let Some(r) = &reason {
                    objects.push(revocation_note(v, r, &now));
                }
                Ok(objects)
            })
        }
        IndicatorCommand::Expire { data, id, at, json } => {
            let at = match &at {
                Some(t) => Timestamp::parse(t).with_context(|| format!("--at {t}"))?,
                None => Timestamp::from_unix_nanos(now.unix_nanos(), 6),
            };
            let store = crate::open_store(&data)?;
            version(store.as_ref(), &id, json, "indicator-expire", |v| {
                Ok(vec![expired_version(v, &at, &now)?])
            })
        }
    }
}

/// A STIX note (§4.9) on the indicator `v` giving why it was revoked: by the indicator's
/// creator, marked as it is.
fn revocation_note(v: &Value, reason: &str, now: &Timestamp) -> Value {
    let now = Timestamp::from_unix_nanos(now.unix_nanos(), 6);
    let mut note = json!({
        "type": "note", "spec_version": "2.1",
        "id": format!("note--{}", uuid::Uuid::new_v4()),
        "created": now.as_str(), "modified": now.as_str(),
        "abstract": "Revoked",
        "content": reason,
        "object_refs": [v["id"]],
    });
    for k in ["created_by_ref", "object_marking_refs"] {
        if let Some(x) = v.get(k) {
            note[k] = x.clone();
        }
    }
    note
}

/// The newest version of object `id` and the collections (aliases or ids) holding it.
fn find(store: &dyn Store, id: &str) -> Result<Option<Newest>> {
    Ok(newest(store, &store.collections()?, &[], &[id.to_owned()])?.remove(id))
}

/// Writes a new version of indicator `id`, made by `make` from its newest version, into
/// every collection holding it, audited as `door` by `operator`. Refused (exit 1): an
/// unknown id, an object another node created (only its creator versions it, STIX 2.1
/// §3.6; [`Store::creators`] names who brought it here first), `make`'s refusal.
fn version(
    store: &dyn Store,
    id: &str,
    json: bool,
    door: &str,
    make: impl FnOnce(&Value) -> std::result::Result<Vec<Value>, Refused>,
) -> Result<bool> {
    let Some((_, newest, collections)) = find(store, id)? else {
        eprintln!("no indicator {id} on this node");
        return Ok(false);
    };
    let creators = store.creators(id)?;
    if !creators.is_empty() {
        eprintln!(
            "{id} was brought here by {}: only an object's creator makes new versions of it \
             (STIX 2.1 §3.6); report a false positive instead (`concord indicator \
             false-positive {id} --sightings C`)",
            creators.join(", ")
        );
        return Ok(false);
    }
    let objects = match make(&newest) {
        Ok(o) => o,
        Err(Refused(why)) => {
            eprintln!("{why}");
            return Ok(false);
        }
    };
    for c in &collections {
        write(store, c, door, &objects)?;
    }
    let modified = objects[0]["modified"].clone();
    if json {
        out!(
            "{}",
            json!({"id": id, "modified": modified, "collections": collections,
                   "revoked": objects[0].get("revoked").cloned().unwrap_or(json!(false)),
                   "valid_until": objects[0].get("valid_until").cloned().unwrap_or(Value::Null)})
        );
    } else {
        eprintln!(
            "{id}: new version {} in {}; `concord sync` carries it to peers",
            modified.as_str().unwrap_or_default(),
            collections.join(", ")
        );
    }
    Ok(true)
}

/// Writes `objects` into `collection` (created when missing) as one bundle: one
/// transaction, validated and audited (door `door`, by `operator`) like any import.
fn write(store: &dyn Store, collection: &str, door: &str, objects: &[Value]) -> Result<()> {
    let bundle = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()),
                        "objects": objects});
    let mut target = crate::transfer::Target::resolve(store, collection)?;
    let report = crate::transfer::import_as(
        store,
        &mut target,
        door,
        Box::new(std::io::Cursor::new(bundle.to_string().into_bytes())),
    )?;
    if !report.rejected.is_empty() {
        bail!(
            "refused by validation: {}",
            report
                .rejected
                .iter()
                .map(|r| r.reasons.join("; "))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}

fn show(store: &dyn Store, id: &str, json: bool, now: &Timestamp) -> Result<bool> {
    let Some((_, v, collections)) = find(store, id)? else {
        eprintln!("no indicator {id} on this node");
        return Ok(false);
    };
    let tally = tallies(store)?.remove(id).unwrap_or_default();
    let creators = store.creators(id)?;
    let doc = json!({
        "id": id, "type": v["type"], "name": v.get("name"), "pattern": v.get("pattern"),
        "modified": v.get("modified"), "valid_from": v.get("valid_from"),
        "valid_until": v.get("valid_until"), "state": state(&v, now),
        "collections": collections, "created_here": creators.is_empty(),
        "received_from": creators,
        "sightings": tally.sightings, "seen": tally.seen,
        "false_positives": tally.false_positives, "false_positive_reports": tally.reports,
    });
    if json {
        out!("{doc}");
        return Ok(true);
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    out!("{id}  {}", state(&v, now));
    out!("  name:        {}", text("name"));
    out!("  pattern:     {}", text("pattern"));
    out!("  modified:    {}", text("modified"));
    out!(
        "  valid:       {} .. {}",
        text("valid_from"),
        text("valid_until")
    );
    out!("  collections: {}", collections.join(", "));
    out!(
        "  created:     {}",
        if creators.is_empty() {
            "here".to_owned()
        } else {
            format!("elsewhere, received from {}", creators.join(", "))
        }
    );
    out!(
        "  sightings:   {} ({} times seen)",
        tally.sightings,
        tally.seen
    );
    out!("  false positives: {}", tally.false_positives);
    for r in &tally.reports {
        let from: Vec<&str> = r["received_from"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out!(
            "    {} by {} (from {}) at {}: {}",
            r["sighting"].as_str().unwrap_or("?"),
            r["by"].as_str().unwrap_or("?"),
            if from.is_empty() {
                "here".to_owned()
            } else {
                from.join(", ")
            },
            r["created"].as_str().unwrap_or("?"),
            r["description"].as_str().unwrap_or("-")
        );
    }
    Ok(true)
}

fn list(
    store: &dyn Store,
    collection: Option<&str>,
    false_positives: bool,
    json: bool,
    now: &Timestamp,
) -> Result<bool> {
    let collections = match collection {
        Some(c) => match store.collection(c)? {
            Some(c) => vec![c],
            None => {
                eprintln!("no collection {c}");
                return Ok(false);
            }
        },
        None => store.collections()?,
    };
    let mut tallies = tallies(store)?;
    let mut rows: Vec<(Value, Tally, Vec<String>)> =
        newest(store, &collections, &["indicator"], &[])?
            .into_iter()
            .map(|(id, (_, v, cs))| (v, tallies.remove(&id).unwrap_or_default(), cs))
            .filter(|(_, t, _)| !false_positives || t.false_positives > 0)
            .collect();
    if false_positives {
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.false_positives));
    }
    if json {
        let doc: Vec<Value> = rows
            .iter()
            .map(|(v, t, cs)| {
                json!({"id": v["id"], "name": v.get("name"), "pattern": v.get("pattern"),
                       "state": state(v, now), "collections": cs,
                       "sightings": t.sightings, "seen": t.seen,
                       "false_positives": t.false_positives})
            })
            .collect();
        out!("{}", json!({ "indicators": doc }));
        return Ok(true);
    }
    out!("FALSE+  SIGHTINGS  STATE    ID  PATTERN");
    for (v, t, _) in &rows {
        out!(
            "{:>6}  {:>9}  {:<7}  {}  {}",
            t.false_positives,
            t.sightings,
            state(v, now),
            v["id"].as_str().unwrap_or("?"),
            v["pattern"].as_str().unwrap_or("-")
        );
    }
    eprintln!("{} indicators", rows.len());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(t: &str) -> Timestamp {
        Timestamp::parse(t).unwrap()
    }

    fn indicator() -> Value {
        json!({"type": "indicator", "spec_version": "2.1",
               "id": "indicator--11111111-1111-4111-8111-111111111111",
               "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-02T00:00:00.000Z",
               "pattern": "[domain-name:value = 'x.example']", "pattern_type": "stix",
               "valid_from": "2024-01-01T00:00:00Z",
               "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]})
    }

    #[test]
    fn a_new_version_is_later_than_the_last_even_when_the_clock_is_behind() {
        let now = ts("2026-01-01T00:00:00.000001Z");
        assert_eq!(
            next_modified(Some("2024-01-01T00:00:00.000Z"), &now).as_str(),
            "2026-01-01T00:00:00.000001Z"
        );
        // A `modified` in the future (another clock): one microsecond after it.
        assert_eq!(
            next_modified(Some("2030-05-05T00:00:00.123456789Z"), &now).as_str(),
            "2030-05-05T00:00:00.123457Z"
        );
        assert_eq!(next_modified(None, &now).as_str(), now.as_str());
    }

    #[test]
    fn revoking_sets_revoked_and_advances_modified_once() {
        let now = ts("2026-01-01T00:00:00Z");
        let r = revoked_version(&indicator(), &now).unwrap();
        assert_eq!(r["revoked"], true);
        assert_eq!(r["modified"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(r["created"], indicator()["created"]);
        // Revoked is final (STIX 2.1 §3.6).
        assert!(revoked_version(&r, &now).unwrap_err().0.contains("revoked"));
        assert!(expired_version(&r, &now, &now).is_err());
        let mut note = indicator();
        note["type"] = json!("note");
        assert!(revoked_version(&note, &now).is_err());
    }

    #[test]
    fn expiring_sets_valid_until_after_valid_from_only() {
        let now = ts("2026-01-01T00:00:00Z");
        let e = expired_version(&indicator(), &ts("2025-06-01T00:00:00Z"), &now).unwrap();
        assert_eq!(e["valid_until"], "2025-06-01T00:00:00Z");
        assert_eq!(e.get("revoked"), None);
        assert!(
            expired_version(&indicator(), &ts("2024-01-01T00:00:00Z"), &now)
                .unwrap_err()
                .0
                .contains("valid_from")
        );
    }

    #[test]
    fn a_false_positive_is_a_negative_sighting_marked_as_its_indicator() {
        let now = ts("2026-01-01T00:00:00Z");
        let me = "identity--22222222-2222-4222-8222-222222222222";
        let s = false_positive_sighting(&indicator(), me, Some("our own mail server"), &now);
        assert!(is_false_positive(&s));
        assert_eq!(s["sighting_of_ref"], indicator()["id"]);
        assert_eq!(s["where_sighted_refs"], json!([me]));
        assert_eq!(s["object_marking_refs"], indicator()["object_marking_refs"]);
        assert_eq!(s["description"], "our own mail server");
        // Valid STIX 2.1, with the node's own validator.
        assert!(
            concord_stix::validate_object(&s).is_ok(),
            "{:?}",
            concord_stix::validate_object(&s)
        );
        let mut positive = s.clone();
        positive[FALSE_POSITIVE_PROPERTY] = json!(false);
        assert!(!is_false_positive(&positive));
    }

    #[test]
    fn a_tally_counts_reports_apart_from_sightings() {
        let now = ts("2026-01-01T00:00:00Z");
        let me = "identity--22222222-2222-4222-8222-222222222222";
        let mut t = Tally::default();
        t.add(
            &false_positive_sighting(&indicator(), me, None, &now),
            &["partner/b".to_owned()],
        );
        t.add(
            &json!({"type": "sighting", "id": "sighting--x", "count": 5}),
            &[],
        );
        t.add(&json!({"type": "sighting", "id": "sighting--y"}), &[]);
        assert_eq!((t.sightings, t.seen, t.false_positives), (2, 6, 1));
        assert_eq!(t.reports[0]["by"], me);
        assert_eq!(t.reports[0]["received_from"], json!(["partner/b"]));
    }
}
