//! MISP feeds: the directory layout MISP subscribes to (MISP's "feed" format, written by
//! PyMISP's feed generator `tools/feed-generator/generate.py`):
//!
//! - `manifest.json`: event uuid → `{Orgc: {name, uuid}, Tag: [...], info, date, analysis,
//!   threat_level_id, timestamp}` (timestamp in epoch seconds);
//! - `<uuid>.json`: one event as `{"Event": {…}}`;
//! - `hashes.csv`: `md5(value),event uuid` per attribute value (both halves of a composite
//!   value such as `filename|md5`, each hashed), for MISP's feed correlation.
//!
//! Reading is incremental: [`FeedState`] remembers each event's timestamp, and
//! [`changed_events`] lists only the events that are new or whose timestamp changed. The
//! caller persists the state after a successful import.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Why a feed could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// `manifest.json` is not a feed manifest.
    #[error("{path}: not a MISP feed manifest: {message}")]
    Manifest {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path, source: std::io::Error) -> FeedError {
    FeedError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What an earlier run read from a feed: event uuid → the manifest timestamp (epoch seconds).
/// Serialisable (JSON) so the caller can keep it between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedState {
    /// Event uuid → timestamp seen.
    pub events: BTreeMap<String, i64>,
}

/// One event of a feed that is new or changed since the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    /// Event uuid.
    pub uuid: String,
    /// The manifest timestamp (epoch seconds).
    pub timestamp: i64,
    /// `<dir>/<uuid>.json`.
    pub path: PathBuf,
}

fn as_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Reads `dir/manifest.json` and returns the events that are absent from `state` or carry
/// another timestamp, in uuid order, and the number of events in the manifest.
///
/// Errors: an unreadable or malformed manifest; an entry without a timestamp.
pub fn changed_events(dir: &Path, state: &FeedState) -> Result<(Vec<FeedEvent>, usize), FeedError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let bad = |message: String| FeedError::Manifest {
        path: path.display().to_string(),
        message,
    };
    let manifest: Map<String, Value> =
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let total = manifest.len();
    let mut out = Vec::new();
    for (uuid, entry) in &manifest {
        if uuid::Uuid::parse_str(uuid).is_err() {
            return Err(bad(format!("key {uuid:?} is not an event uuid")));
        }
        let timestamp = as_i64(entry.get("timestamp"))
            .ok_or_else(|| bad(format!("{uuid}: timestamp missing or not a number")))?;
        if state.events.get(uuid) != Some(&timestamp) {
            out.push(FeedEvent {
                uuid: uuid.clone(),
                timestamp,
                path: dir.join(format!("{uuid}.json")),
            });
        }
    }
    Ok((out, total))
}

/// The `hashes.csv` lines of one event: `md5(value),uuid` per attribute value (event and
/// object attributes; composite values hashed part by part, as PyMISP's `hash_values`).
pub fn hash_lines(event: &Value) -> Vec<String> {
    let e = event.get("Event").unwrap_or(event);
    let uuid = e.get("uuid").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    for a in e
        .get("Attribute")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.extend(attribute_hash_lines(a, uuid));
    }
    for o in e
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for a in o
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(attribute_hash_lines(a, uuid));
        }
    }
    out
}

/// The `hashes.csv` lines of one attribute of event `uuid`: `md5(value),uuid`, or one line
/// per half of a composite value (`filename|md5`), as [`hash_lines`].
pub fn attribute_hash_lines(a: &Value, uuid: &str) -> Vec<String> {
    let t = a.get("type").and_then(Value::as_str).unwrap_or("");
    let v = a.get("value").and_then(Value::as_str).unwrap_or("");
    let parts: Vec<&str> = if t.contains('|') {
        v.splitn(2, '|').collect()
    } else {
        vec![v]
    };
    parts
        .into_iter()
        .map(|p| {
            let digest = md5::Md5::digest(p.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex},{uuid}")
        })
        .collect()
}

/// The manifest entry of one event (PyMISP `MISPEvent.manifest`).
pub fn manifest_entry(event: &Value) -> Value {
    let e = event.get("Event").unwrap_or(event);
    let int = |k: &str| as_i64(e.get(k)).map_or(Value::Null, |n| json!(n));
    json!({
        "Orgc": {"name": e.pointer("/Orgc/name").cloned().unwrap_or_else(|| json!("")),
                 "uuid": e.pointer("/Orgc/uuid").cloned().unwrap_or_else(|| json!(""))},
        "Tag": e.get("Tag").cloned().unwrap_or_else(|| json!([])),
        "info": e.get("info").cloned().unwrap_or_else(|| json!("")),
        "date": e.get("date").cloned().unwrap_or_else(|| json!("")),
        "analysis": int("analysis"),
        "threat_level_id": int("threat_level_id"),
        "timestamp": int("timestamp"),
    })
}

/// Writes a feed: `<uuid>.json` for each event, then `hashes.csv`, then `manifest.json` last
/// (a subscriber that reads the manifest finds every file it names). Events are
/// `{"Event": {…}}` values with a `uuid`.
///
/// Errors: a file that cannot be written (named).
pub fn write_feed(dir: &Path, events: &[Value]) -> Result<(), FeedError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut manifest = Map::new();
    let mut hashes = Vec::new();
    for event in events {
        let e = event.get("Event").unwrap_or(event);
        let uuid = e
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let path = dir.join(format!("{uuid}.json"));
        write_file(
            &path,
            serde_json::to_string_pretty(&json!({"Event": e}))
                .unwrap_or_default()
                .as_bytes(),
        )?;
        manifest.insert(uuid, manifest_entry(event));
        hashes.extend(hash_lines(event));
    }
    let mut csv = hashes.join("\n");
    if !csv.is_empty() {
        csv.push('\n');
    }
    write_file(&dir.join("hashes.csv"), csv.as_bytes())?;
    let text = serde_json::to_string_pretty(&Value::Object(manifest)).unwrap_or_default();
    write_file(&dir.join("manifest.json"), text.as_bytes())
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FeedError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}
