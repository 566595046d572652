//! Validation of the MUST rules of STIX 2.1 on one object.
//!
//! Entry point: [`validate_object`]. It never stops at the first problem: every violated rule
//! is reported, each as a [`Violation`] naming the object id, the property (a JSON path such
//! as `external_references[2].source_name`) and the rule, with its spec section.

use std::fmt;

use serde_json::{Map, Value};

use crate::id::StixId;
use crate::timestamp::Timestamp;

/// The STIX specification version an object is written in (`spec_version`, STIX 2.1 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecVersion {
    /// STIX 2.0: objects without `spec_version` (SCOs excepted).
    V2_0,
    /// STIX 2.1.
    V2_1,
}

impl SpecVersion {
    /// `"2.0"` or `"2.1"`, as written in `spec_version` and in TAXII `match[spec_version]`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V2_0 => "2.0",
            SpecVersion::V2_1 => "2.1",
        }
    }
}

/// The kind of a STIX object (STIX 2.1 §2.2–§2.5, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// STIX Domain Object (§4).
    Sdo,
    /// STIX Relationship Object: `relationship`, `sighting` (§5).
    Sro,
    /// STIX Cyber-observable Object (§6).
    Sco,
    /// Meta object: `marking-definition`, `language-content`, `extension-definition` (§7).
    Meta,
    /// A custom object (§11.2): a type this node does not know, valid as a custom object.
    Custom,
}

/// What the node needs to know about a valid object, read from it once at ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    /// `id`, e.g. `indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f`.
    pub id: String,
    /// `type`, e.g. `indicator`.
    pub object_type: String,
    /// `spec_version` (absent on an SCO means 2.1).
    pub spec_version: SpecVersion,
    /// `created`, when present.
    pub created: Option<Timestamp>,
    /// `modified`, when present.
    pub modified: Option<Timestamp>,
    /// SDO, SRO, SCO, meta or custom.
    pub kind: ObjectKind,
}

impl ObjectHeader {
    /// The version of the object as TAXII 2.1 §3.4.1 defines it: `modified`, else `created`;
    /// `None` for objects without either (most SCOs), whose version is their `date_added`.
    pub fn version(&self) -> Option<&Timestamp> {
        self.modified.as_ref().or(self.created.as_ref())
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The object's `id` when it has a readable one.
    pub id: Option<String>,
    /// JSON path of the property, e.g. `modified` or `external_references[0].source_name`;
    /// empty for the object as a whole.
    pub property: String,
    /// The rule broken, in words.
    pub rule: String,
    /// Where STIX 2.1 states the rule, e.g. `3.2`.
    pub section: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.id {
            write!(f, "{id}: ")?;
        }
        if !self.property.is_empty() {
            write!(f, "{}: ", self.property)?;
        }
        write!(f, "{} (STIX 2.1 §{})", self.rule, self.section)
    }
}

/// Checks one object against the MUST rules of STIX 2.1 and returns its header.
///
/// `object` is the parsed JSON of one object. STIX 2.0 objects (an SDO/SRO without
/// `spec_version`) are refused with a violation on `spec_version`: Concord is a STIX 2.1 node.
///
/// Errors: every violation found, never an empty list.
pub fn validate_object(object: &Value) -> Result<ObjectHeader, Vec<Violation>> {
    let mut v = Checker { id: None, violations: Vec::new() };
    let Some(obj) = object.as_object() else {
        v.push("", "a STIX object must be a JSON object", "3");
        return Err(v.violations);
    };
    v.id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    let header = v.common(obj);
    match header {
        Some(h) if v.violations.is_empty() => Ok(h),
        _ => Err(v.violations),
    }
}

struct Checker {
    id: Option<String>,
    violations: Vec<Violation>,
}

impl Checker {
    fn push(&mut self, property: &str, rule: impl Into<String>, section: &'static str) {
        self.violations.push(Violation {
            id: self.id.clone(),
            property: property.to_owned(),
            rule: rule.into(),
            section,
        });
    }

    fn timestamp(&mut self, obj: &Map<String, Value>, name: &str) -> Option<Timestamp> {
        match obj.get(name)? {
            Value::String(s) => match Timestamp::parse(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.push(name, e.to_string(), "3.2");
                    None
                }
            },
            _ => {
                self.push(name, "must be a timestamp string", "3.2");
                None
            }
        }
    }

    fn common(&mut self, obj: &Map<String, Value>) -> Option<ObjectHeader> {
        let object_type = match obj.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                self.push("type", "must be a string", "3.2");
                return None;
            }
            None => {
                self.push("type", "required property missing", "3.2");
                return None;
            }
        };
        let kind = kind_of(&object_type);
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                self.push("id", "required property missing or not a string", "3.2");
                return None;
            }
        };
        match StixId::parse(&id) {
            Ok(sid) if sid.object_type() != object_type => self.push(
                "id",
                format!("identifier type part '{}' must equal the object's type '{object_type}'", sid.object_type()),
                "2.9",
            ),
            Ok(_) => {}
            Err(e) => self.push("id", e.to_string(), "2.9"),
        }
        let spec_version = match obj.get("spec_version") {
            Some(Value::String(s)) if s == "2.1" => SpecVersion::V2_1,
            Some(other) => {
                self.push("spec_version", format!("must be \"2.1\", found {other}"), "3.2");
                SpecVersion::V2_1
            }
            None if kind == ObjectKind::Sco => SpecVersion::V2_1,
            None => {
                self.push(
                    "spec_version",
                    "required property missing (a STIX 2.0 object? this node accepts STIX 2.1 only)",
                    "3.2",
                );
                SpecVersion::V2_0
            }
        };
        let created = self.timestamp(obj, "created");
        let modified = self.timestamp(obj, "modified");
        if let (Some(c), Some(m)) = (&created, &modified) {
            if m < c {
                self.push("modified", "must be later than or equal to created", "3.2");
            }
        }
        Some(ObjectHeader { id, object_type, spec_version, created, modified, kind })
    }
}

/// The kind of object a `type` names (STIX 2.1 §4–§7); unknown types are [`ObjectKind::Custom`].
pub fn kind_of(object_type: &str) -> ObjectKind {
    const SDOS: &[&str] = &[
        "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident",
        "indicator", "infrastructure", "intrusion-set", "location", "malware", "malware-analysis",
        "note", "observed-data", "opinion", "report", "threat-actor", "tool", "vulnerability",
    ];
    const SCOS: &[&str] = &[
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr",
        "email-message", "file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex",
        "network-traffic", "process", "software", "url", "user-account", "windows-registry-key",
        "x509-certificate",
    ];
    match object_type {
        "relationship" | "sighting" => ObjectKind::Sro,
        "marking-definition" | "language-content" | "extension-definition" => ObjectKind::Meta,
        t if SDOS.contains(&t) => ObjectKind::Sdo,
        t if SCOS.contains(&t) => ObjectKind::Sco,
        _ => ObjectKind::Custom,
    }
}
