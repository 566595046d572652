//! Validation of the MUST rules of STIX 2.1 on one object.
//!
//! Entry point: [`validate_object`]. It never stops at the first problem: every violated rule
//! is reported, each as a [`Violation`] naming the object id, the property (a JSON path such
//! as `external_references[2].source_name`) and the rule, with its spec section.

use std::fmt;

use serde_json::{Map, Value};

mod path;
mod tables;

use path::Path;
use tables::Target;

use crate::id::{id_type, is_type_name};
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
/// What is checked, by section of STIX 2.1 (OASIS Standard, 10 June 2021):
/// - §3.1/§11.1 property names; §2.9 identifiers (form, type prefix); §3.2 common properties:
///   `spec_version` "2.1", `created`/`modified` present on SDOs, SROs, meta and custom objects,
///   RFC 3339 UTC `Z`, at least millisecond precision, `modified` ≥ `created`; `revoked`,
///   `labels`, `confidence` 0–100, `lang`, `defanged`; which common properties SCOs may carry.
/// - §2.5 external references, §2.7 hashes, §2.11 kill-chain phases, §2.12 no empty lists.
/// - §7.2.2/§7.2.3 object and granular markings (selectors resolve in the object, exactly one
///   of `lang`/`marking_ref`), §7.3 `extensions` (extension-definition ids or predefined
///   extension names; §6 predefined extensions' own rules), §11.3 custom extension names.
/// - Per type (§4, §5, §6, §7): required properties, timestamp order, integer ranges, closed
///   enumerations, "at least one of" and "MUST NOT both" rules — see `tables::TYPES`.
/// - Every `*_ref`/`*_refs` at any depth (except inside the deprecated `observed-data.objects`,
///   whose references are local keys): an identifier / a non-empty list of identifiers, of a
///   type allowed by the spec where it restricts one (`tables::REF_RULES`).
/// - §11.2 custom objects: unknown types are accepted as [`ObjectKind::Custom`] when the type
///   name is valid and `id`, `spec_version`, `created`, `modified` are present (not
///   `created`/`modified` for an SCO defined by a `new-sco` extension definition).
///
/// Valid objects are checked without allocating except for the header (id, type, the two
/// timestamps) and one small allocation per other timestamp property.
///
/// Errors: every violation found, never an empty list.
pub fn validate_object(object: &Value) -> Result<ObjectHeader, Vec<Violation>> {
    let Some(obj) = object.as_object() else {
        let mut v = Checker {
            id: None,
            violations: Vec::new(),
        };
        v.push(&Path::ROOT, "a STIX object must be a JSON object", "3");
        return Err(v.violations);
    };
    let mut v = Checker {
        id: obj.get("id").and_then(Value::as_str),
        violations: Vec::new(),
    };
    let header = v.object(obj);
    match header {
        Some(h) if v.violations.is_empty() => Ok(h),
        _ => Err(v.violations),
    }
}

/// Collects violations for one object.
struct Checker<'a> {
    id: Option<&'a str>,
    violations: Vec<Violation>,
}

/// Common properties that STIX 2.1 §3.2 does not give to SCOs (its table marks them not
/// applicable): an SCO carrying one is not a 2.1 SCO.
const NOT_ON_SCOS: &[&str] = &[
    "created",
    "modified",
    "created_by_ref",
    "revoked",
    "labels",
    "confidence",
    "lang",
    "external_references",
];

/// Properties every SCO may have (§3.2, §6): not counted by "at least one property" rules.
const SCO_COMMON: &[&str] = &[
    "type",
    "id",
    "spec_version",
    "object_marking_refs",
    "granular_markings",
    "defanged",
    "extensions",
];

/// What the checker knows about the object while walking it.
#[derive(Clone, Copy)]
struct Ctx<'o> {
    object_type: &'o str,
    kind: ObjectKind,
}

fn has(obj: &Map<String, Value>, name: &str) -> bool {
    obj.get(name).is_some_and(|v| !v.is_null())
}

impl<'a> Checker<'a> {
    fn push(&mut self, path: &Path<'_>, rule: impl Into<String>, section: &'static str) {
        self.violations.push(Violation {
            id: self.id.map(str::to_owned),
            property: path.render(),
            rule: rule.into(),
            section,
        });
    }

    fn top(&mut self, name: &str, rule: impl Into<String>, section: &'static str) {
        self.push(&Path::ROOT.key(name), rule, section);
    }

    /// A timestamp property; reports a malformed one.
    fn timestamp(
        &mut self,
        path: &Path<'_>,
        value: &Value,
        section: &'static str,
    ) -> Option<Timestamp> {
        match value {
            Value::String(s) => match Timestamp::parse(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.push(path, e.to_string(), section);
                    None
                }
            },
            _ => {
                self.push(path, "must be a timestamp string", section);
                None
            }
        }
    }

    fn object(&mut self, obj: &'a Map<String, Value>) -> Option<ObjectHeader> {
        let object_type = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                self.top("type", "must be a string", "3.2");
                return None;
            }
            None => {
                self.top("type", "required property missing", "3.2");
                return None;
            }
        };
        let mut kind = kind_of(object_type);
        if kind == ObjectKind::Custom && !is_type_name(object_type) {
            self.top(
                "type",
                "a custom object type name MUST be 3–250 characters of a–z, 0–9 and hyphen, without '--'",
                "11.2",
            );
        }
        // An SCO defined by an extension definition (§7.3, extension_type "new-sco") follows
        // the SCO rules for common properties.
        let new_sco = kind == ObjectKind::Custom
            && obj
                .get("extensions")
                .and_then(Value::as_object)
                .is_some_and(|m| {
                    m.values()
                        .any(|e| e.get("extension_type").and_then(Value::as_str) == Some("new-sco"))
                });
        let sco_like = kind == ObjectKind::Sco || new_sco;
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) => id,
            None => {
                self.top("id", "required property missing or not a string", "3.2");
                return None;
            }
        };
        match id_type(id) {
            Ok(t) if t != object_type => self.top(
                "id",
                format!("identifier type part '{t}' must equal the object's type '{object_type}'"),
                "2.9",
            ),
            Ok(_) => {}
            Err(e) => self.top("id", e.to_string(), "2.9"),
        }
        let spec_version = match obj.get("spec_version") {
            Some(Value::String(s)) if s == "2.1" => SpecVersion::V2_1,
            // A STIX 2.0 object (issue 24, item 5): one message, the one that says what it
            // is. Checked further against the rules of 2.1, it would also break rules that
            // do not apply to it (2.0 has no `pattern_type`), and those would only confuse.
            Some(Value::String(s)) if s == "2.0" => {
                self.top(
                    "spec_version",
                    "must be \"2.1\", found \"2.0\" (a STIX 2.0 object; this node accepts \
                     STIX 2.1 only)",
                    "3.2",
                );
                return None;
            }
            Some(other) => {
                self.top(
                    "spec_version",
                    format!("must be \"2.1\", found {other}"),
                    "3.2",
                );
                SpecVersion::V2_1
            }
            None if sco_like => SpecVersion::V2_1,
            None => {
                self.top(
                    "spec_version",
                    "required property missing (a STIX 2.0 object? this node accepts STIX 2.1 only)",
                    "3.2",
                );
                return None;
            }
        };
        let ctx = Ctx { object_type, kind };
        let (created, modified) = self.versioning(obj, ctx, sco_like);
        self.common(obj, ctx, sco_like);
        if let Some(spec) = tables::type_spec(object_type) {
            self.type_rules(obj, ctx, spec);
        }
        self.walk(ctx, object_type, true, &Path::ROOT, obj);
        if new_sco {
            kind = ObjectKind::Custom;
        }
        Some(ObjectHeader {
            id: id.to_owned(),
            object_type: object_type.to_owned(),
            spec_version,
            created,
            modified,
            kind,
        })
    }

    /// `created` and `modified` (§3.2; §11.2 for custom objects).
    fn versioning(
        &mut self,
        obj: &Map<String, Value>,
        ctx: Ctx<'_>,
        sco_like: bool,
    ) -> (Option<Timestamp>, Option<Timestamp>) {
        let mut out = [None, None];
        for (slot, name) in out.iter_mut().zip(["created", "modified"]) {
            let path = Path::ROOT.key(name);
            match obj.get(name) {
                Some(v) => {
                    *slot = self.timestamp(&path, v, "3.2");
                    // §3.2: "The created/modified timestamp MUST be precise to the nearest
                    // millisecond"; the WD07 change note and the OASIS JSON schema
                    // (`\.\d{3,}Z`) read this as "at least 3 fraction digits".
                    if let Some(t) = slot
                        .as_ref()
                        .filter(|t| t.fraction_digits() < 3 && !sco_like)
                    {
                        self.push(
                            &path,
                            format!("must be precise to at least the millisecond (3 fraction digits), found {t}"),
                            "3.2",
                        );
                    }
                }
                None if sco_like => {}
                // §7.2.1: marking definitions are not versioned and have no `modified`.
                None if name == "modified" && ctx.object_type == "marking-definition" => {}
                None if ctx.kind == ObjectKind::Custom => self.push(
                    &path,
                    "required property of a custom object missing",
                    "11.2",
                ),
                None => self.push(&path, "required property missing", "3.2"),
            }
        }
        let [created, modified] = out;
        if let (Some(c), Some(m)) = (&created, &modified)
            && m < c
        {
            self.top("modified", "must be later than or equal to created", "3.2");
        }
        (created, modified)
    }

    /// Property names and the optional common properties (§3.1, §3.2, §2.5, §2.11, §2.12,
    /// §7.2.3, §7.3, §11.1).
    fn common(&mut self, obj: &Map<String, Value>, ctx: Ctx<'_>, sco_like: bool) {
        for (k, v) in obj {
            if k != "id" && !is_property_name(k) {
                self.top(
                    k,
                    "property names MUST be 3–250 characters of a–z, 0–9 and underscore, starting with a letter",
                    "11.1",
                );
            }
            if matches!(v, Value::Array(a) if a.is_empty()) && !k.ends_with("_refs") {
                self.top(k, "lists MUST NOT be empty", "2.12");
            }
            if sco_like && NOT_ON_SCOS.contains(&k.as_str()) {
                self.top(k, "not a common property of SCOs in STIX 2.1", "3.2");
            }
        }
        if !sco_like && obj.contains_key("defanged") {
            self.top("defanged", "defanged applies only to SCOs", "3.2");
        }
        for name in ["revoked", "defanged"] {
            if obj.get(name).is_some_and(|v| !v.is_boolean()) {
                self.top(name, "must be a boolean", "3.2");
            }
        }
        if let Some(v) = obj.get("labels") {
            self.string_list(&Path::ROOT.key("labels"), v, "3.2");
        }
        if let Some(v) = obj.get("confidence")
            && !v.as_i64().is_some_and(|n| (0..=100).contains(&n))
        {
            self.top("confidence", "must be an integer from 0 to 100", "3.2");
        }
        if let Some(v) = obj.get("lang")
            && !v.as_str().is_some_and(is_language_tag)
        {
            self.top("lang", "must be an RFC 5646 language tag", "3.2");
        }
        if let Some(v) = obj.get("external_references") {
            self.external_references(v);
        }
        if let Some(v) = obj.get("kill_chain_phases") {
            self.kill_chain_phases(v);
        }
        if let Some(v) = obj.get("granular_markings") {
            self.granular_markings(obj, v);
        }
        if let Some(v) = obj.get("extensions") {
            self.extensions(ctx, v);
        }
    }

    fn string_list(&mut self, path: &Path<'_>, v: &Value, section: &'static str) {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    if !x.is_string() {
                        self.push(&path.index(i), "must be a string", section);
                    }
                }
            }
            _ => self.push(path, "must be a list of strings", section),
        }
    }

    /// §2.5: each external reference has `source_name` and at least one of `description`,
    /// `url`, `external_id` (its `hashes` are checked by the walk, §2.7).
    fn external_references(&mut self, v: &Value) {
        let path = Path::ROOT.key("external_references");
        let Value::Array(list) = v else {
            self.push(&path, "must be a list of external references", "2.5");
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(r) = r else {
                self.push(&p, "must be an external reference object", "2.5");
                continue;
            };
            match r.get("source_name") {
                Some(Value::String(_)) => {}
                Some(_) => self.push(&p.key("source_name"), "must be a string", "2.5"),
                None => self.push(&p.key("source_name"), "required property missing", "2.5"),
            }
            match r.get("url") {
                Some(Value::String(u)) if !is_uri(u) => self.push(
                    &p.key("url"),
                    "must be a URL (RFC 3986: a scheme, then no spaces or control characters)",
                    "2.5",
                ),
                Some(Value::String(_)) | None => {}
                Some(_) => self.push(&p.key("url"), "must be a string", "2.5"),
            }
            if !["description", "url", "external_id"]
                .iter()
                .any(|k| has(r, k))
            {
                self.push(
                    &p,
                    "at least one of description, url or external_id MUST be present",
                    "2.5",
                );
            }
        }
    }

    /// §2.11: each kill-chain phase has string `kill_chain_name` and `phase_name`.
    fn kill_chain_phases(&mut self, v: &Value) {
        let path = Path::ROOT.key("kill_chain_phases");
        let Value::Array(list) = v else {
            self.push(&path, "must be a list of kill-chain phases", "2.11");
            return;
        };
        for (i, k) in list.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(k) = k else {
                self.push(&p, "must be a kill-chain phase object", "2.11");
                continue;
            };
            for name in ["kill_chain_name", "phase_name"] {
                if !k.get(name).is_some_and(Value::is_string) {
                    self.push(&p.key(name), "required string property missing", "2.11");
                }
            }
        }
    }

    /// §7.2.3: `selectors` a non-empty list of selectors that resolve in this object, and
    /// exactly one of `lang` and `marking_ref` (`marking_ref` is checked by the walk).
    fn granular_markings(&mut self, obj: &Map<String, Value>, v: &Value) {
        let path = Path::ROOT.key("granular_markings");
        let Value::Array(list) = v else {
            self.push(&path, "must be a list of granular markings", "7.2.3");
            return;
        };
        for (i, g) in list.iter().enumerate() {
            let p = path.index(i);
            let Value::Object(g) = g else {
                self.push(&p, "must be a granular-marking object", "7.2.3");
                continue;
            };
            let sp = p.key("selectors");
            match g.get("selectors") {
                Some(Value::Array(sel)) if !sel.is_empty() => {
                    for (j, s) in sel.iter().enumerate() {
                        match s.as_str() {
                            Some(s) if selector_resolves(obj, s) => {}
                            Some(s) => self.push(
                                &sp.index(j),
                                format!("selector '{s}' MUST refer to a property or list item present in the object"),
                                "7.2.3.1",
                            ),
                            None => self.push(&sp.index(j), "must be a string", "7.2.3"),
                        }
                    }
                }
                Some(_) => self.push(&sp, "must be a non-empty list of selectors", "7.2.3"),
                None => self.push(&sp, "required property missing", "7.2.3"),
            }
            match (has(g, "lang"), has(g, "marking_ref")) {
                (true, true) => {
                    self.push(&p, "lang and marking_ref MUST NOT both be present", "7.2.3")
                }
                (false, false) => {
                    self.push(&p, "one of lang or marking_ref MUST be present", "7.2.3")
                }
                (true, false) if !g["lang"].as_str().is_some_and(is_language_tag) => {
                    self.push(&p.key("lang"), "must be an RFC 5646 language tag", "7.2.3")
                }
                _ => {}
            }
        }
    }

    /// §7.3: `extensions` is a non-empty dictionary keyed by extension-definition ids, by
    /// the predefined extension names of §6 (on their own SCO type), or (deprecated, §11.3)
    /// by custom extension names; each value is a non-empty dictionary.
    fn extensions(&mut self, ctx: Ctx<'_>, v: &Value) {
        let path = Path::ROOT.key("extensions");
        let Value::Object(exts) = v else {
            self.push(&path, "must be a dictionary", "7.3");
            return;
        };
        if exts.is_empty() {
            self.push(&path, "dictionaries MUST NOT be empty", "7.3");
        }
        for (name, body) in exts {
            let p = path.key(name);
            let Value::Object(body) = body else {
                self.push(&p, "an extension must be a dictionary", "7.3");
                continue;
            };
            if body.is_empty() {
                self.push(&p, "an extension MUST NOT be empty", "7.3");
            }
            if name.starts_with("extension-definition--") {
                if let Err(e) = id_type(name) {
                    self.push(
                        &p,
                        format!("not an extension-definition identifier: {e}"),
                        "7.3",
                    );
                }
                match body.get("extension_type") {
                    Some(Value::String(t)) if tables::EXTENSION_TYPES.contains(&t.as_str()) => {}
                    Some(t) => self.push(
                        &p.key("extension_type"),
                        format!(
                            "must be one of {}, found {t}",
                            tables::EXTENSION_TYPES.join(", ")
                        ),
                        "7.3",
                    ),
                    None => self.push(&p.key("extension_type"), "required property missing", "7.3"),
                }
                for k in body.keys() {
                    if k != "id" && !is_property_name(k) {
                        self.push(
                            &p.key(k),
                            "property names MUST be 3–250 characters of a–z, 0–9 and underscore, starting with a letter",
                            "3.1",
                        );
                    }
                }
            } else if let Some(spec) = tables::ext_spec(name) {
                if spec.on_type != ctx.object_type {
                    self.push(
                        &p,
                        format!(
                            "the {name} extension applies only to {} objects",
                            spec.on_type
                        ),
                        spec.section,
                    );
                }
                for r in spec.required {
                    if !has(body, r) {
                        self.push(&p.key(r), "required property missing", spec.section);
                    }
                }
                if spec.one_of == ["*"] {
                    // "at least one property from this extension MUST be included"
                } else if !spec.one_of.is_empty() && !spec.one_of.iter().any(|k| has(body, k)) {
                    self.push(
                        &p,
                        format!("at least one of {} MUST be present", spec.one_of.join(", ")),
                        spec.section,
                    );
                }
                self.ints(&p, body, spec.ints, spec.section);
                self.enums(&p, body, spec.enums, spec.section);
                for t in spec.timestamps {
                    if let Some(v) = body.get(*t) {
                        self.timestamp(&p.key(t), v, spec.section);
                    }
                }
                for (k, v) in body {
                    if matches!(v, Value::Array(a) if a.is_empty()) && !k.ends_with("_refs") {
                        self.push(&p.key(k), "lists MUST NOT be empty", "2.12");
                    }
                }
            } else if !is_type_name(name) {
                self.push(
                    &p,
                    "an extension key must be an extension-definition id, a predefined extension name, or a custom \
                     extension name of 3–250 characters of a–z, 0–9 and hyphen",
                    "11.3",
                );
            }
        }
    }

    /// The rules of the type's table entry, then its code-only rules.
    fn type_rules(&mut self, obj: &Map<String, Value>, ctx: Ctx<'_>, spec: &tables::TypeSpec) {
        let sec = spec.section;
        for r in spec.required {
            if !has(obj, r) {
                self.top(r, "required property missing", sec);
            }
        }
        if !spec.one_of.is_empty() && !spec.one_of.iter().any(|k| has(obj, k)) {
            self.push(
                &Path::ROOT,
                format!("at least one of {} MUST be present", spec.one_of.join(", ")),
                sec,
            );
        }
        let mut ts: [Option<Timestamp>; 6] = [const { None }; 6];
        for (slot, name) in ts.iter_mut().zip(spec.timestamps) {
            if let Some(v) = obj.get(*name) {
                *slot = self.timestamp(&Path::ROOT.key(name), v, sec);
            }
        }
        let find = |name: &str| {
            spec.timestamps
                .iter()
                .position(|t| *t == name)
                .and_then(|i| ts.get(i))
                .and_then(Option::as_ref)
        };
        for (earlier, later, strict) in spec.order {
            if let (Some(a), Some(b)) = (find(earlier), find(later)) {
                if *strict && b <= a {
                    self.top(later, format!("must be later than {earlier}"), sec);
                } else if b < a {
                    self.top(
                        later,
                        format!("must be later than or equal to {earlier}"),
                        sec,
                    );
                }
            }
        }
        self.ints(&Path::ROOT, obj, spec.ints, sec);
        self.enums(&Path::ROOT, obj, spec.enums, sec);
        self.extra(obj, ctx, spec);
    }

    fn ints(
        &mut self,
        path: &Path<'_>,
        obj: &Map<String, Value>,
        ints: &[(&str, i64, i64)],
        sec: &'static str,
    ) {
        for (name, lo, hi) in ints {
            if let Some(v) = obj.get(*name)
                && !v.as_i64().is_some_and(|n| (*lo..=*hi).contains(&n))
            {
                self.push(
                    &path.key(name),
                    format!("must be an integer from {lo} to {hi}"),
                    sec,
                );
            }
        }
    }

    fn enums(
        &mut self,
        path: &Path<'_>,
        obj: &Map<String, Value>,
        enums: &[(&str, &[&str])],
        sec: &'static str,
    ) {
        for (name, allowed) in enums {
            let p = path.key(name);
            let ok = |v: &Value| v.as_str().is_some_and(|s| allowed.contains(&s));
            match obj.get(*name) {
                None => {}
                Some(Value::Array(a)) => {
                    for (i, v) in a.iter().enumerate() {
                        if !ok(v) {
                            self.push(
                                &p.index(i),
                                format!("must be one of {}, found {v}", allowed.join(", ")),
                                sec,
                            );
                        }
                    }
                }
                Some(v) if ok(v) => {}
                Some(v) => self.push(
                    &p,
                    format!("must be one of {}, found {v}", allowed.join(", ")),
                    sec,
                ),
            }
        }
    }

    /// Rules that do not fit the tables.
    fn extra(&mut self, obj: &Map<String, Value>, ctx: Ctx<'_>, spec: &tables::TypeSpec) {
        use tables::Extra;
        let sec = spec.section;
        match spec.extra {
            Extra::None => {}
            Extra::Malware => match obj.get("is_family") {
                Some(Value::Bool(true)) if !has(obj, "name") => {
                    self.top("name", "required when is_family is true", sec)
                }
                Some(Value::Bool(_)) | None => {}
                Some(_) => self.top("is_family", "must be a boolean", sec),
            },
            Extra::MalwareAnalysis => {}
            Extra::ObservedData => {
                match (has(obj, "objects"), has(obj, "object_refs")) {
                    (true, true) => self.push(
                        &Path::ROOT,
                        "objects and object_refs MUST NOT both be present",
                        sec,
                    ),
                    (false, false) => self.push(
                        &Path::ROOT,
                        "one of objects or object_refs MUST be present",
                        sec,
                    ),
                    _ => {}
                }
                if let Some(Value::Array(refs)) = obj.get("object_refs") {
                    let any_sco = refs.iter().filter_map(Value::as_str).any(|r| {
                        id_type(r).is_ok_and(|t| {
                            matches!(kind_of(t), ObjectKind::Sco | ObjectKind::Custom)
                        })
                    });
                    if !refs.is_empty() && !any_sco {
                        self.top(
                            "object_refs",
                            "MUST contain at least one SCO reference",
                            sec,
                        );
                    }
                }
            }
            Extra::Location => {
                let lat = obj.get("latitude");
                let lon = obj.get("longitude");
                for (name, v, limit) in [("latitude", lat, 90.0), ("longitude", lon, 180.0)] {
                    if let Some(v) = v
                        && !v.as_f64().is_some_and(|x| (-limit..=limit).contains(&x))
                    {
                        self.top(
                            name,
                            format!("must be a number from -{limit} to {limit}"),
                            sec,
                        );
                    }
                }
                match (lat.is_some(), lon.is_some()) {
                    (true, false) => {
                        self.top("longitude", "required when latitude is present", sec)
                    }
                    (false, true) => {
                        self.top("latitude", "required when longitude is present", sec)
                    }
                    _ => {}
                }
                if obj
                    .get("precision")
                    .is_some_and(|p| !p.as_f64().is_some_and(|x| x >= 0.0))
                {
                    self.top("precision", "must be a number of metres, 0 or more", sec);
                }
                if has(obj, "precision") && !(lat.is_some() && lon.is_some()) {
                    self.top(
                        "precision",
                        "latitude and longitude MUST be present when precision is",
                        sec,
                    );
                }
                if !(has(obj, "region") || has(obj, "country") || (lat.is_some() && lon.is_some()))
                {
                    self.push(&Path::ROOT, "at least one of region, country, or latitude and longitude MUST be present", sec);
                }
            }
            Extra::MarkingDefinition => self.marking_definition(obj, sec),
            Extra::Artifact => {
                if has(obj, "payload_bin") && has(obj, "url") {
                    self.push(
                        &Path::ROOT,
                        "payload_bin and url MUST NOT both be present",
                        sec,
                    );
                }
                if has(obj, "url") && !has(obj, "hashes") {
                    self.top("hashes", "required when url is present", sec);
                }
                if has(obj, "decryption_key") && !has(obj, "encryption_algorithm") {
                    self.top(
                        "decryption_key",
                        "MUST NOT be present when encryption_algorithm is absent",
                        sec,
                    );
                }
            }
            Extra::EmailMessage => {
                match obj.get("is_multipart") {
                    Some(Value::Bool(true)) if has(obj, "body") => {
                        self.top("body", "MUST NOT be present when is_multipart is true", sec)
                    }
                    Some(Value::Bool(false)) if has(obj, "body_multipart") => self.top(
                        "body_multipart",
                        "MUST NOT be present when is_multipart is false",
                        sec,
                    ),
                    Some(Value::Bool(_)) | None => {}
                    Some(_) => self.top("is_multipart", "must be a boolean", sec),
                }
                if let Some(Value::Array(parts)) = obj.get("body_multipart") {
                    let path = Path::ROOT.key("body_multipart");
                    for (i, part) in parts.iter().enumerate() {
                        match part {
                            Value::Object(m) if has(m, "body") || has(m, "body_raw_ref") => {}
                            Value::Object(_) => self.push(
                                &path.index(i),
                                "one of body or body_raw_ref MUST be present",
                                "6.6.2",
                            ),
                            _ => self.push(&path.index(i), "must be a MIME part object", "6.6.2"),
                        }
                    }
                }
            }
            Extra::NetworkTraffic => {
                if obj.get("is_active") == Some(&Value::Bool(true)) && has(obj, "end") {
                    self.top("end", "MUST NOT be present when is_active is true", sec);
                }
            }
            Extra::MacAddr => {
                if let Some(v) = obj.get("value")
                    && !v.as_str().is_some_and(is_mac48)
                {
                    self.top(
                        "value",
                        "must be a colon-delimited lower-case MAC-48 address with leading zeros",
                        sec,
                    );
                }
            }
            Extra::WindowsRegistryKey => {
                self.any_property(obj, ctx, sec);
                if let Some(Value::Array(values)) = obj.get("values") {
                    let path = Path::ROOT.key("values");
                    for (i, v) in values.iter().enumerate() {
                        if let Value::Object(m) = v {
                            self.enums(
                                &path.index(i),
                                m,
                                &[("data_type", tables::REGISTRY_DATATYPES)],
                                "6.17.2",
                            );
                        }
                    }
                }
            }
            Extra::AnyProperty => self.any_property(obj, ctx, sec),
        }
    }

    /// §6.13, §6.16, §6.17, §6.18: at least one property of the object (or, for process,
    /// of its extensions) besides the common ones.
    fn any_property(&mut self, obj: &Map<String, Value>, ctx: Ctx<'_>, sec: &'static str) {
        let own = obj.keys().any(|k| !SCO_COMMON.contains(&k.as_str()));
        let ext = ctx.object_type == "process" && has(obj, "extensions");
        if !own && !ext {
            self.push(
                &Path::ROOT,
                "at least one property specific to this object type MUST be present",
                sec,
            );
        }
    }

    /// §7.2.1: `definition_type` and `definition` together (TLP §7.2.1.4 / statement
    /// §7.2.1.3 shapes), or else an `extensions` property defining the marking.
    fn marking_definition(&mut self, obj: &Map<String, Value>, sec: &'static str) {
        match (obj.get("definition_type"), obj.get("definition")) {
            (None, None) => {
                if !has(obj, "extensions") {
                    self.push(&Path::ROOT, "a marking definition MUST have definition_type and definition, or extensions", sec);
                }
            }
            (Some(_), None) => self.top(
                "definition",
                "required when definition_type is present",
                sec,
            ),
            (None, Some(_)) => self.top(
                "definition_type",
                "required when definition is present",
                sec,
            ),
            (Some(t), Some(d)) => {
                let dp = Path::ROOT.key("definition");
                match (t.as_str(), d) {
                    (Some("tlp"), Value::Object(d)) => {
                        if !d
                            .get("tlp")
                            .and_then(Value::as_str)
                            .is_some_and(|l| ["white", "green", "amber", "red"].contains(&l))
                        {
                            self.push(
                                &dp.key("tlp"),
                                "must be one of white, green, amber, red",
                                "7.2.1.4",
                            );
                        }
                    }
                    (Some("statement"), Value::Object(d)) => {
                        if !d.get("statement").is_some_and(Value::is_string) {
                            self.push(
                                &dp.key("statement"),
                                "required string property missing",
                                "7.2.1.3",
                            );
                        }
                    }
                    (Some(_), Value::Object(_)) => {}
                    (Some(_), _) => self.push(&dp, "must be an object", sec),
                    (None, _) => self.top("definition_type", "must be a string", sec),
                }
            }
        }
    }

    /// Walks every property at any depth: `*_ref` / `*_refs` (§2.9, with the target rules of
    /// `tables::REF_RULES`) and `hashes` dictionaries (§2.7). `context` is the object type
    /// at the top level, else the name of the enclosing property.
    fn walk(
        &mut self,
        ctx: Ctx<'_>,
        context: &str,
        top: bool,
        path: &Path<'_>,
        map: &Map<String, Value>,
    ) {
        for (k, v) in map {
            if top && k.starts_with("x_") && v.as_str() == Some("") {
                // A custom property (§11.1) whose producer writes "" for "no reference"
                // (MITRE ATT&CK's x_mitre_data_source_ref); its meaning is the producer's,
                // so an empty value is tolerated. Any other value must still be an id.
            } else if k.ends_with("_ref") {
                self.reference(context, top, &path.key(k), k, v);
            } else if k.ends_with("_refs") {
                let p = path.key(k);
                match v {
                    Value::Array(a) if !a.is_empty() => {
                        for (i, r) in a.iter().enumerate() {
                            self.reference(context, top, &p.index(i), k, r);
                        }
                    }
                    Value::Array(_) => self.push(
                        &p,
                        "a _refs property MUST be a non-empty list of identifiers",
                        "2.12",
                    ),
                    _ => self.push(&p, "a _refs property MUST be a list of identifiers", "2.9"),
                }
            } else if k == "hashes" {
                match v {
                    Value::Object(h) => {
                        self.hashes(&path.key(k), h, context == "external_references")
                    }
                    _ => self.push(&path.key(k), "must be a hashes dictionary", "2.7"),
                }
            }
            match v {
                Value::Object(m) => {
                    if top && k == "objects" && ctx.object_type == "observed-data" {
                        continue; // deprecated: references there are local keys, not ids
                    }
                    self.walk(ctx, k, false, &path.key(k), m);
                }
                Value::Array(a) if a.first().is_some_and(Value::is_object) => {
                    let p = path.key(k);
                    for (i, x) in a.iter().enumerate() {
                        if let Value::Object(m) = x {
                            self.walk(ctx, k, false, &p.index(i), m);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn reference(&mut self, context: &str, top: bool, path: &Path<'_>, prop: &str, v: &Value) {
        let Value::String(s) = v else {
            self.push(path, "a _ref property MUST be an identifier string", "2.9");
            return;
        };
        match id_type(s) {
            Err(e) => self.push(path, format!("not a valid identifier: {e}"), "2.9"),
            Ok(t) => {
                if let Some((target, sec)) = tables::ref_rule(context, prop, top)
                    && !target_allows(target, t)
                {
                    self.push(
                        path,
                        format!("MUST reference {}, not {t}", describe(target)),
                        sec,
                    );
                }
            }
        }
    }

    /// §2.7: keys of 3–250 characters of a–z, A–Z, 0–9, hyphen, underscore; values strings;
    /// hex of the right length for the algorithms of `hash-algorithm-ov` that are hex digests.
    /// In external references (§2.5) the keys MUST come from `hash-algorithm-ov`.
    fn hashes(&mut self, path: &Path<'_>, h: &Map<String, Value>, only_ov: bool) {
        if h.is_empty() {
            self.push(path, "a hashes dictionary MUST NOT be empty", "2.7");
        }
        for (k, v) in h {
            let p = path.key(k);
            let key_ok = (3..=250).contains(&k.len())
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
            let algo = tables::HASH_ALGORITHMS.iter().find(|(n, _)| *n == k);
            if !key_ok {
                self.push(
                    &p,
                    "hash names MUST be 3–250 characters of a–z, A–Z, 0–9, hyphen, underscore",
                    "2.7",
                );
            } else if only_ov && algo.is_none() {
                self.push(
                    &p,
                    "hash names in external references MUST come from hash-algorithm-ov",
                    "2.5",
                );
            }
            match (v.as_str(), algo) {
                (None, _) => self.push(&p, "a hash value must be a string", "2.7"),
                (Some(s), Some((name, Some(len))))
                    if (s.len() != *len || !s.bytes().all(|c| c.is_ascii_hexdigit())) =>
                {
                    self.push(
                        &p,
                        format!("a {name} value MUST be {len} hexadecimal digits"),
                        "2.7",
                    );
                }
                _ => {}
            }
        }
    }
}

/// Whether a reference to type `t` satisfies `target`.
fn target_allows(target: Target, t: &str) -> bool {
    let k = kind_of(t);
    match target {
        Target::Types(ts) => ts.contains(&t),
        Target::Sdo => matches!(k, ObjectKind::Sdo | ObjectKind::Custom),
        Target::Sco => matches!(k, ObjectKind::Sco | ObjectKind::Custom),
        Target::SdoOrSco => matches!(k, ObjectKind::Sdo | ObjectKind::Sco | ObjectKind::Custom),
        Target::ScoOrSro => matches!(k, ObjectKind::Sco | ObjectKind::Sro | ObjectKind::Custom),
    }
}

fn describe(target: Target) -> String {
    match target {
        Target::Types(ts) => ts.join(" or "),
        Target::Sdo => "an SDO or custom object".into(),
        Target::Sco => "an SCO".into(),
        Target::SdoOrSco => "an SDO or SCO".into(),
        Target::ScoOrSro => "an SCO or SRO".into(),
    }
}

/// §3.1 / §11.1: property names are 3–250 ASCII characters of a–z, 0–9 and underscore and
/// begin with a letter (`id` is the spec's own exception).
fn is_property_name(name: &str) -> bool {
    (3..=250).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// RFC 5646 language tag, structurally: subtags of 1–8 letters/digits separated by hyphens,
/// the first alphabetic.
fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .split('-')
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric()))
        && tag
            .split('-')
            .next()
            .is_some_and(|s| s.bytes().all(|c| c.is_ascii_alphabetic()))
}

/// §6.10: `xx:xx:xx:xx:xx:xx`, lower-case hex, leading zeros.
fn is_mac48(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_digit() || (b'a'..=b'f').contains(c)
            }
        })
}

/// §7.2.3.1: whether a granular-marking selector (`a.b.[2].c`) names something present.
fn selector_resolves(obj: &Map<String, Value>, selector: &str) -> bool {
    let mut segs = selector.split('.');
    let Some(first) = segs.next() else {
        return false;
    };
    let Some(mut cur) = obj.get(first) else {
        return false;
    };
    for seg in segs {
        let next = match seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.as_array()?.get(i)),
            None => cur.as_object().and_then(|m| m.get(seg)),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

/// RFC 3986 §3 in brief: `scheme ":" …` where the scheme is a letter followed by letters,
/// digits, `+`, `-` or `.`, and nothing in the URI is whitespace or a control character.
fn is_uri(u: &str) -> bool {
    let Some((scheme, _)) = u.split_once(':') else {
        return false;
    };
    let mut sc = scheme.chars();
    sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The kind of object a `type` names (STIX 2.1 §4–§7); unknown types are [`ObjectKind::Custom`].
pub fn kind_of(object_type: &str) -> ObjectKind {
    const SDOS: &[&str] = &[
        "attack-pattern",
        "campaign",
        "course-of-action",
        "grouping",
        "identity",
        "incident",
        "indicator",
        "infrastructure",
        "intrusion-set",
        "location",
        "malware",
        "malware-analysis",
        "note",
        "observed-data",
        "opinion",
        "report",
        "threat-actor",
        "tool",
        "vulnerability",
    ];
    const SCOS: &[&str] = &[
        "artifact",
        "autonomous-system",
        "directory",
        "domain-name",
        "email-addr",
        "email-message",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "network-traffic",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
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
