//! The walk over a STIX object: every string at any depth, pattern literals, and the
//! structural detectors.

use std::fmt::Write;

use concord_pattern::{ComparisonExpr, Literal, ObservationExpr, Operand, Test};
use serde::Serialize;
use serde_json::Value;

use super::{Category, Detectors, Finding};

/// A finding inside a STIX object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectFinding {
    /// The JSON path of the string property, relative to the scanned value: keys joined by
    /// `.`, array indexes in brackets (`extensions.x.description`,
    /// `external_references[2].url`). A key that is not made of ASCII letters, digits, `_`,
    /// `-` and `$` is written as a JSON string in brackets (`hashes["SHA-256"]` stays
    /// `hashes.SHA-256`; `x_map["a.b"]`).
    pub path: String,
    /// For a finding inside an indicator's pattern (`path` ends in `pattern`): the string
    /// literal it was found in. The finding's offsets are then offsets into
    /// [`PatternLiteral::value`], not into the pattern text.
    pub literal: Option<PatternLiteral>,
    /// For a finding inside a dictionary key (`"x_map": {"grace@corp.cn": …}`): the key as
    /// written. `path` is then the path of the dictionary entry (`x_map["grace@corp.cn"]`)
    /// and the finding's offsets are offsets into the key; the action renames the key.
    pub key: Option<String>,
    /// The finding; for the structural categories it spans the whole property value.
    pub finding: Finding,
}

/// A string literal of a STIX pattern (STIX 2.1 §9.2) that holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatternLiteral {
    /// The object path the literal is compared with, as printed (`email-addr:value`).
    pub object_path: String,
    /// The literal's value, unescaped.
    pub value: String,
}

/// Appends `key` to a JSON path as [`ObjectFinding::path`] writes it.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::String(key.to_string()).to_string());
        path.push(']');
    }
}

fn whole(category: Category, value: &str, rule: &'static str) -> Finding {
    Finding {
        category,
        start: 0,
        end: value.len(),
        value: value.to_string(),
        normalized: value.to_string(),
        rule,
    }
}

/// Properties that make an object's structure personal, per type.
fn structural(map: &serde_json::Map<String, Value>) -> Vec<(&'static str, Category, &'static str)> {
    match map.get("type").and_then(Value::as_str) {
        Some("identity")
            if map.get("identity_class").and_then(Value::as_str) == Some("individual") =>
        {
            vec![("name", Category::PersonName, "identity-individual")]
        }
        Some("user-account") => ["user_id", "account_login", "display_name", "credential"]
            .into_iter()
            .map(|k| (k, Category::UserAccount, "user-account"))
            .collect(),
        Some("email-addr") => ["value", "display_name"]
            .into_iter()
            .map(|k| (k, Category::EmailAddressObject, "email-addr"))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_stix_indicator(map: &serde_json::Map<String, Value>) -> bool {
    map.get("type").and_then(Value::as_str) == Some("indicator")
        && map
            .get("pattern_type")
            .and_then(Value::as_str)
            .is_none_or(|t| t == "stix")
}

pub(crate) fn walk(d: &Detectors, v: &Value, path: &mut String, out: &mut Vec<ObjectFinding>) {
    match v {
        Value::String(s) => {
            for finding in d.scan_text(s) {
                out.push(ObjectFinding {
                    path: path.clone(),
                    literal: None,
                    key: None,
                    finding,
                });
            }
        }
        Value::Number(n) => {
            for finding in d.scan_number(n) {
                out.push(ObjectFinding {
                    path: path.clone(),
                    literal: None,
                    key: None,
                    finding,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(d, item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            let rules = structural(map);
            let indicator = is_stix_indicator(map);
            for (key, value) in map {
                let len = path.len();
                push_key(path, key);
                // A key can be the data itself (a map from address to role): it is
                // scanned like a value, and the action renames it.
                for finding in d.scan_text(key) {
                    out.push(ObjectFinding {
                        path: path.clone(),
                        literal: None,
                        key: Some(key.clone()),
                        finding,
                    });
                }
                if let Some(s) = value.as_str() {
                    for &(_, category, rule) in rules.iter().filter(|(k, ..)| k == key) {
                        if d.is_enabled(category) && !s.is_empty() {
                            out.push(ObjectFinding {
                                path: path.clone(),
                                literal: None,
                                key: None,
                                finding: whole(category, s, rule),
                            });
                        }
                    }
                }
                match value {
                    Value::String(p) if indicator && key == "pattern" => {
                        scan_pattern(d, p, path, out);
                    }
                    _ => walk(d, value, path, out),
                }
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Scans the string literals of a STIX pattern; if the pattern does not parse, its raw text.
fn scan_pattern(d: &Detectors, pattern: &str, path: &str, out: &mut Vec<ObjectFinding>) {
    let Ok(parsed) = concord_pattern::parse_syntax(pattern) else {
        for finding in d.scan_text(pattern) {
            out.push(ObjectFinding {
                path: path.to_string(),
                literal: None,
                key: None,
                finding,
            });
        }
        return;
    };
    // Explicit stack: wide trees, no deep recursion.
    let mut obs = vec![&parsed.expr];
    let mut tests: Vec<&Test> = Vec::new();
    while let Some(e) = obs.pop() {
        match e {
            ObservationExpr::Observation(c) => {
                let mut cmps = vec![c];
                while let Some(c) = cmps.pop() {
                    match c {
                        ComparisonExpr::And(v) | ComparisonExpr::Or(v) => {
                            cmps.extend(v.iter().rev());
                        }
                        ComparisonExpr::Test(t) => tests.push(t),
                        ComparisonExpr::Exists(_) => {}
                    }
                }
            }
            ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
                obs.extend(v.iter().rev());
            }
            ObservationExpr::Qualified { expr, .. } => obs.push(expr),
        }
    }
    for t in tests {
        let literals: &[Literal] = match &t.operand {
            Operand::Literal(l) => std::slice::from_ref(l),
            Operand::Set(v) => v,
        };
        let object_path = t.path.to_string();
        let category = match t.path.object_type.as_str() {
            "user-account" => Some((Category::UserAccount, "user-account")),
            "email-addr" => Some((Category::EmailAddressObject, "email-addr")),
            _ => None,
        };
        for l in literals {
            let Literal::String(s) = l else { continue };
            let literal = || {
                Some(PatternLiteral {
                    object_path: object_path.clone(),
                    value: s.clone(),
                })
            };
            if let Some((category, rule)) = category
                && d.is_enabled(category)
                && !s.is_empty()
            {
                out.push(ObjectFinding {
                    path: path.to_string(),
                    literal: literal(),
                    key: None,
                    finding: whole(category, s, rule),
                });
            }
            for finding in d.scan_text(s) {
                out.push(ObjectFinding {
                    path: path.to_string(),
                    literal: literal(),
                    key: None,
                    finding,
                });
            }
        }
    }
}
