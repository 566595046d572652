//! One log record as STIX object paths and values, and its form as observed-data.
//!
//! A [`Record`] is flat: a list of `(object path, value)` [`Field`]s such as
//! `(ipv4-addr:value, "10.0.0.1")`, `(network-traffic:dst_port, 443)` or
//! `(file:hashes.'SHA-256', "…")`. The paths are canonical `concord_pattern` object paths.
//! The indexes of [`crate::IndicatorSet`] look values up in this flat form; the full evaluator
//! gets the same record as STIX objects from [`Record::observations`]. The two agree by
//! construction (the differential test checks it):
//!
//! - one SCO per distinct value of a `T:value` path (so `src_ip = dest_ip` is one object);
//! - `T:x_ref.value` sets `x_ref` of the i-th `T` object to the address object of that value
//!   (an `ipv4-addr`/`ipv6-addr` object, also listed as an `ipv4-addr:value` field by the
//!   readers);
//! - any other path sets that property of the i-th object of its type, where i counts the
//!   earlier fields with the same path;
//! - **each SCO is its own observation**: one `observed-data` per SCO, `number_observed` 1,
//!   `first_observed` = `last_observed` = the record's time. So observation expressions joined
//!   by `AND` / `FOLLOWEDBY` (STIX 2.1 §9.5) match when one record shows all of them, e.g.
//!   `[ipv4-addr:value = '…'] AND [domain-name:value = '…']` on a DNS log line. Records are
//!   matched one at a time: nothing correlates observations across records.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// A value of a record field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A string.
    Str(String),
    /// An integer (ports, counts). Numbers with an integral value are always `Int`.
    Int(i64),
    /// A number with a fractional part.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl FieldValue {
    /// A JSON number as a field value: integral values (also `443.0`) become [`FieldValue::Int`].
    pub fn from_f64(x: f64) -> FieldValue {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            FieldValue::Int(x as i64)
        } else {
            FieldValue::Float(x)
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            FieldValue::Str(s) => Value::String(s.clone()),
            FieldValue::Int(i) => Value::from(*i),
            FieldValue::Float(f) => Value::from(*f),
            FieldValue::Bool(b) => Value::Bool(*b),
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Str(s) => f.write_str(s),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Float(x) => write!(f, "{x}"),
            FieldValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One `(object path, value)` pair of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Canonical object path, e.g. `file:hashes.'SHA-256'`. Shared by every record of a reader.
    pub path: Arc<str>,
    /// The value.
    pub value: FieldValue,
}

/// One log line (or CSV row, or plain observable) ready for matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The input's name (path, or `-` for stdin).
    pub file: Arc<str>,
    /// 1-based line number of the record in the (decompressed) input.
    pub line: u64,
    /// The record's own time in Unix nanoseconds (eve `timestamp`, Zeek `ts`), if it has one.
    pub timestamp: Option<i64>,
    /// The fields, in the order the reader found them.
    pub fields: Vec<Field>,
}

/// An object path split into type, property and keys (the flat paths a record holds).
pub(crate) struct FlatPath<'a> {
    pub object_type: &'a str,
    pub property: String,
    pub keys: Vec<String>,
}

/// Splits a canonical flat path `type:prop(.key)*` (keys possibly quoted `'…'` with `\'`
/// and `\\` escapes). `None` for anything else (list steps).
pub(crate) fn split_flat(path: &str) -> Option<FlatPath<'_>> {
    let (object_type, rest) = path.split_once(':')?;
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => cur.push(chars.next()?),
                '\'' => quoted = false,
                c => cur.push(c),
            }
        } else {
            match c {
                '\'' => quoted = true,
                '.' => parts.push(std::mem::take(&mut cur)),
                '[' => return None,
                c => cur.push(c),
            }
        }
    }
    parts.push(cur);
    let mut it = parts.into_iter();
    let property = it.next()?;
    Some(FlatPath {
        object_type,
        property,
        keys: it.collect(),
    })
}

fn address_type(v: &str) -> &'static str {
    match v.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "ipv4-addr",
        Ok(std::net::IpAddr::V6(_)) => "ipv6-addr",
        Err(_) => "domain-name",
    }
}

/// An SCO being built: type, properties, the value it was deduplicated by (for `T:value`
/// objects), and the indexes of the fields it was made from.
type Sco = (String, Map<String, Value>, Option<String>, Vec<usize>);

fn sco_id(object_type: &str, n: usize) -> String {
    format!("{object_type}--00000000-0000-4000-8000-{n:012x}")
}

impl Record {
    /// The record as STIX objects for `concord_pattern::evaluate`: one observation group (a
    /// JSON array of SCOs and one `observed-data` per SCO; see the module documentation).
    /// `default_time` (Unix nanoseconds) stands in for a record without a time of its own.
    /// The second value maps each SCO (by position in the array) to the indexes of the
    /// fields it was made from.
    pub fn observations(&self, default_time: i64) -> (Value, Vec<Vec<usize>>) {
        // (type, object, value key for deduplication, fields)
        let mut objects: Vec<Sco> = Vec::new();
        let mut slot_counts: Vec<(&str, usize)> = Vec::new();
        let value_object =
            |objects: &mut Vec<Sco>, ty: &str, v: &str, fi: Option<usize>| -> usize {
                if let Some(i) = objects
                    .iter()
                    .position(|(t, _, k, _)| t == ty && k.as_deref() == Some(v))
                {
                    objects[i].3.extend(fi);
                    return i;
                }
                let mut m = Map::new();
                m.insert("type".into(), Value::String(ty.into()));
                m.insert("id".into(), Value::String(sco_id(ty, objects.len())));
                m.insert("value".into(), Value::String(v.into()));
                objects.push((
                    ty.to_string(),
                    m,
                    Some(v.to_string()),
                    fi.into_iter().collect(),
                ));
                objects.len() - 1
            };
        for (fi, field) in self.fields.iter().enumerate() {
            let Some(fp) = split_flat(&field.path) else {
                continue;
            };
            if fp.property == "value"
                && fp.keys.is_empty()
                && let FieldValue::Str(v) = &field.value
            {
                value_object(&mut objects, fp.object_type, v, Some(fi));
                continue;
            }
            let n = {
                let key: &str = &field.path;
                match slot_counts.iter_mut().find(|(p, _)| *p == key) {
                    Some((_, c)) => {
                        *c += 1;
                        *c - 1
                    }
                    None => {
                        slot_counts.push((key, 1));
                        0
                    }
                }
            };
            let is_ref =
                fp.property.ends_with("_ref") && fp.keys.len() == 1 && fp.keys[0] == "value";
            let target_ref = if is_ref {
                let FieldValue::Str(v) = &field.value else {
                    continue;
                };
                let t = value_object(&mut objects, address_type(v), v, None);
                Some(objects[t].1["id"].clone())
            } else {
                None
            };
            // The n-th "slot" object (no value key) of this type; field n-1 of the same
            // path made or used slot n-1, so at most one slot is missing.
            let slots: Vec<usize> = objects
                .iter()
                .enumerate()
                .filter(|(_, (t, _, k, _))| t == fp.object_type && k.is_none())
                .map(|(i, _)| i)
                .collect();
            let i = match slots.get(n) {
                Some(&i) => i,
                None => {
                    let mut m = Map::new();
                    m.insert("type".into(), Value::String(fp.object_type.into()));
                    m.insert(
                        "id".into(),
                        Value::String(sco_id(fp.object_type, objects.len())),
                    );
                    objects.push((fp.object_type.to_string(), m, None, Vec::new()));
                    objects.len() - 1
                }
            };
            let obj = &mut objects[i];
            obj.3.push(fi);
            if let Some(r) = target_ref {
                obj.1.insert(fp.property.clone(), r);
            } else {
                set_nested(&mut obj.1, &fp.property, &fp.keys, field.value.to_json());
            }
        }
        let t = concord_stix::Timestamp::from_unix_nanos(self.timestamp.unwrap_or(default_time), 9);
        let mut group = Vec::with_capacity(objects.len() * 2);
        let mut sources = Vec::with_capacity(objects.len());
        for (n, (_, m, _, fields)) in objects.into_iter().enumerate() {
            let id = m["id"].clone();
            group.push(json!({
                "type": "observed-data",
                "id": format!("observed-data--00000000-0000-4000-8000-{n:012x}"),
                "first_observed": t.as_str(),
                "last_observed": t.as_str(),
                "number_observed": 1,
                "object_refs": [id],
            }));
            group.push(Value::Object(m));
            sources.push(fields);
        }
        (Value::Array(group), sources)
    }
}

fn set_nested(m: &mut Map<String, Value>, prop: &str, keys: &[String], value: Value) {
    let Some((last, init)) = keys.split_last() else {
        m.insert(prop.to_string(), value);
        return;
    };
    let mut cur = m
        .entry(prop.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    for k in init {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("made an object above")
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
        .expect("made an object above")
        .insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_paths() {
        let p = split_flat("file:hashes.'SHA-256'").unwrap();
        assert_eq!((p.object_type, p.property.as_str()), ("file", "hashes"));
        assert_eq!(p.keys, ["SHA-256"]);
        assert!(split_flat("x:a[*].b").is_none());
    }

    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn observations_shape() {
        let f = |p: &str, v: FieldValue| Field {
            path: Arc::from(p),
            value: v,
        };
        let r = Record {
            file: Arc::from("t"),
            line: 1,
            timestamp: Some(0),
            fields: vec![
                f("ipv4-addr:value", FieldValue::Str("10.0.0.1".into())),
                f(
                    "network-traffic:src_ref.value",
                    FieldValue::Str("10.0.0.1".into()),
                ),
                f(
                    "network-traffic:dst_ref.value",
                    FieldValue::Str("10.0.0.2".into()),
                ),
                f("network-traffic:dst_port", FieldValue::Int(443)),
                f("file:hashes.MD5", FieldValue::Str(MD5.into())),
                f("file:hashes.'SHA-256'", FieldValue::Str("b".into())),
            ],
        };
        let (g, src) = r.observations(0);
        let g = g.as_array().unwrap();
        // ipv4 10.0.0.1, network-traffic, ipv4 10.0.0.2, file: 4 SCOs, 4 observed-data.
        assert_eq!(g.len(), 8);
        assert_eq!(src.len(), 4);
        let nt = &g[3];
        assert_eq!(nt["type"], "network-traffic");
        assert_eq!(nt["src_ref"], g[1]["id"]);
        assert_eq!(nt["dst_port"], 443);
        assert_eq!(g[7]["hashes"]["SHA-256"], "b");
        let p = concord_pattern::parse(
            "[network-traffic:dst_ref.value = '10.0.0.2' AND network-traffic:dst_port = 443] \
             AND [file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
        )
        .unwrap();
        assert!(
            concord_pattern::evaluate(&p, &[Value::Array(g.clone())])
                .unwrap()
                .matched
        );
    }
}
