//! The MISP attribute types that have a STIX Cyber-observable form, as one table that drives
//! both directions: MISP → STIX (pattern comparisons and SCOs) and STIX → MISP (which
//! comparisons or SCO properties give back the value).
//!
//! The object paths are those misp-stix writes (misp-stix `documentation/mapping/`,
//! `misp_attributes_to_stix21.json`): e.g. `ip-dst` is
//! `[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '…']`,
//! `domain|ip` is `[domain-name:value = … AND domain-name:resolves_to_refs[*].value = …]`.
//! Types without a row (`text`, `other`, `btc`, `port`, …) are carried as misp-stix carries
//! them: an `x-misp-attribute` custom object.

use std::net::IpAddr;

use concord_pattern::{
    ComparisonExpr, Literal, ObjectPath, ObservationExpr, Operand, Operator, PathStep, Pattern,
    Test,
};
use serde_json::{Map, Value, json};

/// One path of a component: `[object type, property, steps…]`, `*` for any list index.
pub type Path = &'static [&'static str];

/// The STIX form of one MISP attribute type: one path per `|`-separated part of the value.
pub struct Shape {
    /// The MISP type, e.g. `filename|sha1`.
    pub misp_type: &'static str,
    /// One object path per component of the value, in order.
    pub components: &'static [Path],
}

macro_rules! shapes {
    ($($t:literal => [$($p:expr),+]),+ $(,)?) => {
        &[$(Shape { misp_type: $t, components: &[$($p),+] }),+]
    };
}

const NAME: Path = &["file", "name"];
/// The table (order matters for STIX → MISP without `misp:type` labels: the first type
/// whose every component is present wins, and composite types come before their parts).
pub const SHAPES: &[Shape] = shapes![
    "domain|ip" => [&["domain-name", "value"], &["domain-name", "resolves_to_refs", "*", "value"]],
    "ip-dst|port" => [&["network-traffic", "dst_ref", "value"], &["network-traffic", "dst_port"]],
    "ip-src|port" => [&["network-traffic", "src_ref", "value"], &["network-traffic", "src_port"]],
    "hostname|port" => [&["network-traffic", "dst_ref", "value"], &["network-traffic", "dst_port"]],
    "filename|md5" => [NAME, &["file", "hashes", "MD5"]],
    "filename|sha1" => [NAME, &["file", "hashes", "SHA-1"]],
    "filename|sha256" => [NAME, &["file", "hashes", "SHA-256"]],
    "filename|sha512" => [NAME, &["file", "hashes", "SHA-512"]],
    "filename|sha3-256" => [NAME, &["file", "hashes", "SHA3-256"]],
    "filename|sha3-512" => [NAME, &["file", "hashes", "SHA3-512"]],
    "filename|ssdeep" => [NAME, &["file", "hashes", "SSDEEP"]],
    "filename|tlsh" => [NAME, &["file", "hashes", "TLSH"]],
    "regkey|value" => [&["windows-registry-key", "key"], &["windows-registry-key", "values", "*", "data"]],
    "ip-dst" => [&["network-traffic", "dst_ref", "value"]],
    "ip-src" => [&["network-traffic", "src_ref", "value"]],
    "domain" => [&["domain-name", "value"]],
    "hostname" => [&["domain-name", "value"]],
    "url" => [&["url", "value"]],
    "link" => [&["url", "value"]],
    "uri" => [&["url", "value"]],
    "email" => [&["email-addr", "value"]],
    "email-src" => [&["email-message", "from_ref", "value"]],
    "email-dst" => [&["email-message", "to_refs", "*", "value"]],
    "email-subject" => [&["email-message", "subject"]],
    "email-body" => [&["email-message", "body"]],
    "email-message-id" => [&["email-message", "message_id"]],
    "filename" => [NAME],
    "md5" => [&["file", "hashes", "MD5"]],
    "sha1" => [&["file", "hashes", "SHA-1"]],
    "sha256" => [&["file", "hashes", "SHA-256"]],
    "sha512" => [&["file", "hashes", "SHA-512"]],
    "sha3-256" => [&["file", "hashes", "SHA3-256"]],
    "sha3-512" => [&["file", "hashes", "SHA3-512"]],
    "ssdeep" => [&["file", "hashes", "SSDEEP"]],
    "tlsh" => [&["file", "hashes", "TLSH"]],
    "regkey" => [&["windows-registry-key", "key"]],
    "mutex" => [&["mutex", "name"]],
    "mac-address" => [&["mac-addr", "value"]],
    "AS" => [&["autonomous-system", "number"]],
    "x509-fingerprint-md5" => [&["x509-certificate", "hashes", "MD5"]],
    "x509-fingerprint-sha1" => [&["x509-certificate", "hashes", "SHA-1"]],
    "x509-fingerprint-sha256" => [&["x509-certificate", "hashes", "SHA-256"]],
    // STIX → MISP only (a type's first row is its MISP → STIX form): a bare address, as
    // IOC lists and most producers write it, is MISP's `ip-dst`, the type MISP correlates
    // and exports to IDS rules (issue 24, item 12); `ip-src` only where the pattern says
    // source (`network-traffic:src_ref`, above).
    "ip-dst" => [&["ipv4-addr", "value"]],
    "ip-dst" => [&["ipv6-addr", "value"]],
    // A file object's size (issue 24, item 1: it was lost), STIX 2.1 §6.7 `size`.
    "size-in-bytes" => [&["file", "size"]],
];

/// Attribute types whose value is itself a detection rule in another language: an indicator
/// with that `pattern_type` (misp-stix convention; STIX 2.1 §10.14 pattern-type-ov).
pub const RULE_TYPES: &[(&str, &str)] = &[
    ("yara", "yara"),
    ("snort", "snort"),
    ("sigma", "sigma"),
    ("suricata", "suricata"),
];

/// The shape of a MISP type, when it has a STIX Cyber-observable form.
pub fn shape(misp_type: &str) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.misp_type == misp_type)
}

/// Every MISP attribute type named in PyMISP's `describeTypes.json` (format/ in the handed
/// data), so that a type outside it can be reported as unknown rather than merely unmapped.
pub fn is_known_type(misp_type: &str) -> bool {
    KNOWN_TYPES.binary_search(&misp_type).is_ok()
}

/// Splits a value into the shape's components (`|` separates them; the last part keeps any
/// further `|`), or says why it does not fit the type.
pub fn components<'v>(shape: &Shape, value: &'v str) -> Result<Vec<&'v str>, String> {
    let n = shape.components.len();
    let parts: Vec<&str> = value.splitn(n, '|').collect();
    if parts.len() != n {
        return Err(format!(
            "a {} value has {n} parts separated by '|', found {}",
            shape.misp_type,
            parts.len()
        ));
    }
    for (part, path) in parts.iter().zip(shape.components) {
        check_component(path, part).map_err(|e| format!("{}: {e}", shape.misp_type))?;
    }
    Ok(parts)
}

/// The rule a component's value must follow for its path.
fn check_component(path: Path, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty value".into());
    }
    let last = path[path.len() - 1];
    let second = path[1];
    let hex = |n: usize| -> Result<(), String> {
        if v.len() == n && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!("{last} must be {n} hexadecimal digits, got {v:?}"))
        }
    };
    match (path[0], second, last) {
        (_, "hashes", "MD5") => hex(32),
        (_, "hashes", "SHA-1") => hex(40),
        (_, "hashes", "SHA-256" | "SHA3-256") => hex(64),
        (_, "hashes", "SHA-512" | "SHA3-512") => hex(128),
        ("network-traffic", "src_ref" | "dst_ref", _) | ("domain-name", "resolves_to_refs", _) => {
            if path[0] == "network-traffic" && is_hostname(v) {
                return Ok(()); // hostname|port
            }
            v.parse::<IpAddr>()
                .map(|_| ())
                .map_err(|_| format!("{v:?} is not an IPv4 or IPv6 address"))
        }
        (_, "dst_port" | "src_port", _) => v
            .parse::<u16>()
            .map(|_| ())
            .map_err(|_| format!("{v:?} is not a port number (0–65535)")),
        ("autonomous-system", _, _) => as_number(v)
            .map(|_| ())
            .ok_or_else(|| format!("{v:?} is not an AS number")),
        ("domain-name", "value", _) => {
            if is_hostname(v) {
                Ok(())
            } else {
                Err(format!("{v:?} is not a domain name"))
            }
        }
        ("email-addr", _, _) | ("email-message", "from_ref" | "to_refs", _) => {
            if v.contains('@') && !v.contains(char::is_whitespace) {
                Ok(())
            } else {
                Err(format!("{v:?} is not an e-mail address"))
            }
        }
        _ => Ok(()),
    }
}

/// A domain or host name: labels of letters (any script), digits, `-` and `_`, with a dot,
/// and a top-level label that is not all digits (so `1.2.3.999` is no host name).
fn is_hostname(v: &str) -> bool {
    let v = v.strip_suffix('.').unwrap_or(v);
    v.contains('.')
        && v.rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(|c| !c.is_ascii_digit()))
        && v.parse::<IpAddr>().is_err()
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// `AS1234`, `as1234` or `1234`.
fn as_number(v: &str) -> Option<u64> {
    v.trim_start_matches("AS")
        .trim_start_matches("as")
        .parse()
        .ok()
}

/// Whether a component is numeric in STIX (ports, AS number).
fn is_int(path: Path) -> bool {
    matches!(
        path[path.len() - 1],
        "dst_port" | "src_port" | "number" | "size"
    )
}

/// The STIX type of an address component: `ipv4-addr`, `ipv6-addr` or `domain-name`.
fn address_type(v: &str) -> &'static str {
    match v.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "ipv4-addr",
        Ok(IpAddr::V6(_)) => "ipv6-addr",
        Err(_) => "domain-name",
    }
}

fn object_path(path: Path) -> ObjectPath {
    ObjectPath {
        object_type: path[0].to_owned(),
        property: path[1].to_owned(),
        steps: path[2..]
            .iter()
            .map(|s| match *s {
                "*" => PathStep::AnyIndex,
                k => PathStep::Key(k.to_owned()),
            })
            .collect(),
    }
}

fn test(path: ObjectPath, literal: Literal) -> ComparisonExpr {
    ComparisonExpr::Test(Test {
        path,
        negated: false,
        op: Operator::Eq,
        operand: Operand::Literal(literal),
    })
}

/// The comparisons of one attribute (already split into components), for a pattern. For an
/// address behind `src_ref`/`dst_ref`, a `….type = 'ipv4-addr'` comparison comes first, as
/// misp-stix writes it.
pub fn comparisons(shape: &Shape, parts: &[&str]) -> Vec<ComparisonExpr> {
    let mut out = Vec::new();
    for (path, v) in shape.components.iter().zip(parts) {
        if path[0] == "network-traffic" && matches!(path[1], "src_ref" | "dst_ref") {
            let mut p = object_path(&path[..2]);
            p.steps.push(PathStep::Key("type".into()));
            out.push(test(p, Literal::String(address_type(v).into())));
        }
        let literal = if is_int(path) {
            match as_number(v).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => Literal::Int(n),
                None => Literal::String((*v).to_owned()),
            }
        } else {
            Literal::String((*v).to_owned())
        };
        out.push(test(object_path(path), literal));
    }
    out
}

/// A pattern of one observation that holds all `tests`, printed by concord-pattern's
/// printer (quotes and backslashes escaped) and checked by its parser.
pub fn pattern(tests: Vec<ComparisonExpr>) -> Result<String, String> {
    let expr = if tests.len() == 1 {
        tests.into_iter().next().expect("one test")
    } else {
        ComparisonExpr::And(tests)
    };
    let text = Pattern {
        expr: ObservationExpr::Observation(expr),
    }
    .to_string();
    concord_pattern::parse(&text)
        .map(|_| text.clone())
        .map_err(|e| format!("pattern {text}: {} at byte {}", e.message, e.offset))
}

/// Builds the SCOs of one attribute: the root object first, then the objects it refers to.
/// Ids are `type--<uuid>` with the attribute's UUID (misp-stix convention), so they are
/// deterministic; `uuid` must be a UUID.
pub fn scos(shape: &Shape, parts: &[&str], uuid: &str) -> Vec<Value> {
    let root_type = shape.components[0][0];
    let mut root = Map::new();
    root.insert("type".into(), json!(root_type));
    root.insert("spec_version".into(), json!("2.1"));
    root.insert("id".into(), json!(format!("{root_type}--{uuid}")));
    let mut children: Vec<Value> = Vec::new();
    for (path, v) in shape.components.iter().zip(parts) {
        if path[0] != root_type {
            continue; // every row of the table has one root type
        }
        let prop = path[1];
        if prop.ends_with("_ref") || prop.ends_with("_refs") {
            let child_type = match prop {
                "from_ref" | "to_refs" => "email-addr",
                _ => address_type(v),
            };
            let child_id = format!("{child_type}--{uuid}");
            children.push(
                json!({"type": child_type, "spec_version": "2.1", "id": child_id, "value": v}),
            );
            if prop.ends_with("_refs") {
                root.insert(prop.into(), json!([child_id]));
            } else {
                root.insert(prop.into(), json!(child_id));
            }
        } else if path.len() == 2 {
            let value = if is_int(path) {
                as_number(v).map_or_else(|| json!(v), |n| json!(n))
            } else {
                json!(v)
            };
            root.insert(prop.into(), value);
        } else if path[2] == "*" {
            // values[*].data: a list with one dictionary
            root.insert(prop.into(), json!([{ path[3]: v }]));
        } else {
            let entry = root
                .entry(prop.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(path[2].to_owned(), json!(v));
            }
        }
    }
    // STIX 2.1 §6.12: network-traffic requires `protocols`; §6.9 email-message `is_multipart`.
    if root_type == "network-traffic" {
        root.insert("protocols".into(), json!(["tcp"]));
    }
    if root_type == "email-message" {
        root.insert("is_multipart".into(), json!(false));
    }
    let mut out = vec![Value::Object(root)];
    out.extend(children);
    out
}

/// `(path, value)` pairs of one comparison or SCO property, the common ground of the reverse
/// direction; `*` for list indexes.
pub type Pair = (Vec<String>, String);

/// The `(path, value)` pairs of a pattern's equality tests (other operators are ignored).
pub fn pattern_pairs(pattern: &str) -> Vec<Pair> {
    let Ok(p) = concord_pattern::parse_syntax(pattern) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![&p.expr];
    let mut comps: Vec<&ComparisonExpr> = Vec::new();
    while let Some(e) = stack.pop() {
        match e {
            ObservationExpr::Observation(c) => comps.push(c),
            ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
                stack.extend(v.iter().rev())
            }
            ObservationExpr::Qualified { expr, .. } => stack.push(expr),
        }
    }
    while let Some(c) = comps.pop() {
        match c {
            ComparisonExpr::And(v) | ComparisonExpr::Or(v) => comps.extend(v.iter().rev()),
            ComparisonExpr::Test(t) if t.op == Operator::Eq && !t.negated => {
                let Operand::Literal(l) = &t.operand else {
                    continue;
                };
                let value = match l {
                    Literal::String(s) => s.clone(),
                    Literal::Int(n) => n.to_string(),
                    _ => continue,
                };
                let mut path = vec![t.path.object_type.clone(), t.path.property.clone()];
                path.extend(t.path.steps.iter().map(|s| match s {
                    PathStep::Key(k) => k.clone(),
                    PathStep::Index(_) | PathStep::AnyIndex => "*".into(),
                }));
                out.push((path, value));
            }
            _ => {}
        }
    }
    out
}

/// The `(path, value)` pairs of an SCO and the SCOs it refers to (found in `by_id`).
pub fn sco_pairs(root: &Value, by_id: &dyn Fn(&str) -> Option<Value>) -> Vec<Pair> {
    let mut out = Vec::new();
    let Some(t) = root.get("type").and_then(Value::as_str) else {
        return out;
    };
    flatten(&mut vec![t.to_owned()], root, by_id, &mut out, 0);
    out
}

fn flatten(
    prefix: &mut Vec<String>,
    v: &Value,
    by_id: &dyn Fn(&str) -> Option<Value>,
    out: &mut Vec<Pair>,
    depth: usize,
) {
    if depth > 4 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if depth == 0 && matches!(k.as_str(), "id" | "spec_version" | "type") {
                    continue;
                }
                prefix.push(k.clone());
                if k.ends_with("_ref") {
                    if let Some(child) = x.as_str().and_then(by_id) {
                        flatten_child(prefix, &child, by_id, out, depth);
                    }
                } else if k.ends_with("_refs") {
                    prefix.push("*".into());
                    for r in x.as_array().into_iter().flatten() {
                        if let Some(child) = r.as_str().and_then(by_id) {
                            flatten_child(prefix, &child, by_id, out, depth);
                        }
                    }
                    prefix.pop();
                } else {
                    flatten(prefix, x, by_id, out, depth + 1);
                }
                prefix.pop();
            }
        }
        Value::Array(items) => {
            prefix.push("*".into());
            for x in items {
                flatten(prefix, x, by_id, out, depth + 1);
            }
            prefix.pop();
        }
        Value::String(s) => out.push((prefix.clone(), s.clone())),
        Value::Number(n) => out.push((prefix.clone(), n.to_string())),
        _ => {}
    }
}

fn flatten_child(
    prefix: &mut Vec<String>,
    child: &Value,
    by_id: &dyn Fn(&str) -> Option<Value>,
    out: &mut Vec<Pair>,
    depth: usize,
) {
    if let Some(t) = child.get("type").and_then(Value::as_str) {
        prefix.push("type".into());
        out.push((prefix.clone(), t.to_owned()));
        prefix.pop();
    }
    if let Value::Object(m) = child {
        for (k, x) in m {
            if matches!(k.as_str(), "id" | "spec_version" | "type") || k.ends_with("_refs") {
                continue;
            }
            prefix.push(k.clone());
            flatten(prefix, x, by_id, out, depth + 2);
            prefix.pop();
        }
    }
}

/// The MISP type and value that `pairs` carry: the type `hint` (a `misp:type` label) when its
/// components are all there, else the first row of [`SHAPES`] whose components are.
pub fn value_from_pairs(pairs: &[Pair], hint: Option<&str>) -> Option<(String, String)> {
    let find = |path: Path| -> Option<&str> {
        pairs
            .iter()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, v)| v.as_str())
    };
    let try_shape = |s: &Shape| -> Option<(String, String)> {
        let parts: Option<Vec<&str>> = s.components.iter().map(|p| find(p)).collect();
        parts.map(|p| (s.misp_type.to_owned(), p.join("|")))
    };
    if let Some(found) = hint.and_then(shape).and_then(try_shape) {
        return Some(found);
    }
    SHAPES.iter().find_map(try_shape)
}

/// The attribute types of PyMISP's describeTypes.json, sorted (for binary search).
const KNOWN_TYPES: &[&str] = &[
    "AS",
    "aba-rtn",
    "anonymised",
    "attachment",
    "authentihash",
    "azure-application-id",
    "bank-account-nr",
    "bic",
    "bin",
    "boolean",
    "bro",
    "btc",
    "campaign-id",
    "campaign-name",
    "cc-number",
    "cdhash",
    "chrome-extension-id",
    "comment",
    "community-id",
    "cookie",
    "cortex",
    "counter",
    "country-of-residence",
    "cpe",
    "dash",
    "date-of-birth",
    "datetime",
    "dkim",
    "dkim-signature",
    "dns-soa-email",
    "dom-hash",
    "domain",
    "domain|ip",
    "edge-extension-id",
    "email",
    "email-attachment",
    "email-body",
    "email-dst",
    "email-dst-display-name",
    "email-header",
    "email-message-id",
    "email-mime-boundary",
    "email-reply-to",
    "email-src",
    "email-src-display-name",
    "email-subject",
    "email-thread-index",
    "email-x-mailer",
    "eppn",
    "favicon-mmh3",
    "filename",
    "filename-pattern",
    "filename|authentihash",
    "filename|impfuzzy",
    "filename|imphash",
    "filename|md5",
    "filename|pehash",
    "filename|sha1",
    "filename|sha224",
    "filename|sha256",
    "filename|sha3-224",
    "filename|sha3-256",
    "filename|sha3-384",
    "filename|sha3-512",
    "filename|sha384",
    "filename|sha512",
    "filename|sha512/224",
    "filename|sha512/256",
    "filename|ssdeep",
    "filename|tlsh",
    "filename|vhash",
    "first-name",
    "float",
    "frequent-flyer-number",
    "full-name",
    "gender",
    "gene",
    "git-commit-id",
    "github-organisation",
    "github-repository",
    "github-username",
    "hassh-md5",
    "hasshserver-md5",
    "hex",
    "hostname",
    "hostname|port",
    "http-method",
    "iban",
    "identity-card-number",
    "impfuzzy",
    "imphash",
    "integer",
    "ip-dst",
    "ip-dst|port",
    "ip-src",
    "ip-src|port",
    "issue-date-of-the-visa",
    "ja3-fingerprint-md5",
    "jabber-id",
    "jarm-fingerprint",
    "kusto-query",
    "last-name",
    "link",
    "mac-address",
    "mac-eui-64",
    "malware-sample",
    "malware-type",
    "md5",
    "middle-name",
    "mime-type",
    "mobile-application-id",
    "mutex",
    "named pipe",
    "nationality",
    "onion-address",
    "other",
    "passenger-name-record-locator-number",
    "passport-country",
    "passport-expiration",
    "passport-number",
    "pattern-in-file",
    "pattern-in-memory",
    "pattern-in-traffic",
    "payment-details",
    "pdb",
    "pehash",
    "pgp-private-key",
    "pgp-public-key",
    "phone-number",
    "place-of-birth",
    "place-port-of-clearance",
    "place-port-of-onward-foreign-destination",
    "place-port-of-original-embarkation",
    "port",
    "primary-residence",
    "process-state",
    "prtn",
    "redress-number",
    "regkey",
    "regkey|value",
    "sha1",
    "sha224",
    "sha256",
    "sha3-224",
    "sha3-256",
    "sha3-384",
    "sha3-512",
    "sha384",
    "sha512",
    "sha512/224",
    "sha512/256",
    "sigma",
    "size-in-bytes",
    "snort",
    "special-service-request",
    "ssdeep",
    "ssh-fingerprint",
    "stix2-pattern",
    "suricata",
    "target-email",
    "target-external",
    "target-location",
    "target-machine",
    "target-org",
    "target-user",
    "telfhash",
    "text",
    "threat-actor",
    "tlsh",
    "travel-details",
    "twitter-id",
    "uri",
    "url",
    "user-agent",
    "uuid",
    "vhash",
    "visa-number",
    "vulnerability",
    "weakness",
    "whois-creation-date",
    "whois-registrant-email",
    "whois-registrant-name",
    "whois-registrant-org",
    "whois-registrant-phone",
    "whois-registrar",
    "windows-scheduled-task",
    "windows-service-displayname",
    "windows-service-name",
    "x509-fingerprint-md5",
    "x509-fingerprint-sha1",
    "x509-fingerprint-sha256",
    "xmr",
    "yara",
    "zeek",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_sorted_and_match_describe_types() {
        let mut sorted = KNOWN_TYPES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KNOWN_TYPES, "KNOWN_TYPES must stay sorted");
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/misp/format/describeTypes.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let d: Value = serde_json::from_str(&text).unwrap();
        let types = d["result"]["types"].as_array().unwrap();
        for t in types {
            let t = t.as_str().unwrap();
            assert!(is_known_type(t), "describeTypes.json type {t} missing");
        }
    }

    #[test]
    fn patterns_escape_quotes_and_backslashes() {
        let s = shape("regkey|value").unwrap();
        let parts = components(s, r"HKLM\Soft'ware|%DATA%\x").unwrap();
        let p = pattern(comparisons(s, &parts)).unwrap();
        assert_eq!(
            p,
            r"[windows-registry-key:key = 'HKLM\\Soft\'ware' AND windows-registry-key:values[*].data = '%DATA%\\x']"
        );
        let pairs = pattern_pairs(&p);
        assert_eq!(
            value_from_pairs(&pairs, Some("regkey|value")).unwrap().1,
            r"HKLM\Soft'ware|%DATA%\x"
        );
    }

    #[test]
    fn malformed_values_are_refused_with_the_rule() {
        let e = components(shape("md5").unwrap(), "abc").unwrap_err();
        assert!(e.contains("32 hexadecimal digits"), "{e}");
        let e = components(shape("ip-dst").unwrap(), "1.2.3.999").unwrap_err();
        assert!(e.contains("not an IPv4 or IPv6"), "{e}");
        let e = components(shape("ip-dst|port").unwrap(), "1.2.3.4|99999").unwrap_err();
        assert!(e.contains("port"), "{e}");
        assert!(components(shape("domain").unwrap(), "evil.example").is_ok());
    }
}
