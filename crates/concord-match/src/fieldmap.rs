//! Field maps: which log field goes to which STIX object path (issue 4, item 1).
//!
//! A map has rules `log field → object path`, optionally only for one stream (Zeek's `_path`
//! / `@stream` / TSV `#path`, eve's `event_type`), the fields that hold the record time and
//! the stream name, and URL compositions (`url:value` from a host field and a path field).
//! [`FieldMap::eve`] and [`FieldMap::zeek`] are built in; [`FieldMap::from_toml`] reads a user
//! map. Values are normalised by their target, so the same observable has one spelling in
//! records and in IOC-list indicators:
//!
//! | target | value kept |
//! |---|---|
//! | `ipv4-addr:value` or `ipv6-addr:value` | an IP address; the family picks the type (both targets mean "an IP") |
//! | `T:x_ref.value` (e.g. `network-traffic:dst_ref.value`) | an IP address (also listed as `ipv4-addr:value`/`ipv6-addr:value`) |
//! | `domain-name:value` | a domain name, lower case, no trailing dot (IP addresses are dropped) |
//! | `url:value` | a URL with scheme and host lower case |
//! | `email-addr:value` | an address; `Name <a@b>` gives `a@b` |
//! | `T:hashes` | a hex digest; the key (`MD5`, `'SHA-1'`, `'SHA-256'`) by its length |
//! | `T:hashes.K` | a hex digest, lower case, colons removed |
//! | anything else | the value as the log has it (string, integer, number, boolean) |
//!
//! Unset values (JSON `null`, Zeek `-` and `(empty)`) and values a target refuses are skipped.
//! A JSON array gives one field per element.
//!
//! # TOML format
//!
//! ```toml
//! # All keys are optional.
//! timestamp = ["timestamp", "ts"]   # fields holding the record time: RFC 3339 text or Unix seconds
//! stream = ["event_type"]           # fields naming the record's stream
//!
//! [fields]                          # rules for every record
//! "src_ip" = ["ipv4-addr:value", "network-traffic:src_ref.value"]
//! "dns.rrname" = "domain-name:value" # one path or a list
//!
//! [streams.http.fields]             # rules only for records of stream "http"
//! "http.http_user_agent" = "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"
//!
//! [[urls]]                          # url:value = scheme://<host><path>
//! host = "http.hostname"
//! path = "http.url"                 # an absolute URL here is taken as it is
//! scheme = "http"                   # default "http"
//! stream = "http"                   # optional
//! ```
//!
//! Field names are looked up as written, and a dotted name also through nested JSON objects
//! (`dns.rrname` is the key `dns.rrname` or the key `rrname` inside `dns`), through arrays.
//! Object paths are STIX 2.1 §9.3.1 paths without list steps; `type`, `id`, `*_refs`, `*_hex`
//! and `*_bin` properties are refused, and `_ref` only as `x_ref.value`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;

use crate::classify::{
    HashAlgo, ip_text_into, normalise_domain_into, normalise_email, normalise_hash_into,
    normalise_ip, normalise_url_into,
};
use crate::record::{Field, FieldValue};

/// A compiled field map. Cheap to clone (shared paths).
#[derive(Debug, Clone, Default)]
pub struct FieldMap {
    pub(crate) timestamp: Vec<String>,
    pub(crate) stream: Vec<String>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) urls: Vec<UrlRule>,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub field: String,
    pub stream: Option<String>,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub(crate) struct UrlRule {
    pub host: String,
    pub path: String,
    pub scheme: String,
    pub stream: Option<String>,
    pub target: Arc<str>,
}

/// What a rule does with a value.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Ip {
        v4: Arc<str>,
        v6: Arc<str>,
    },
    /// `path` for the reference, and the address object's own paths.
    AddrRef {
        path: Arc<str>,
        v4: Arc<str>,
        v6: Arc<str>,
    },
    Domain(Arc<str>),
    Url(Arc<str>),
    Email(Arc<str>),
    HashAuto([Arc<str>; 3]),
    HashFixed(Arc<str>),
    Plain(Arc<str>),
}

/// Errors of building a field map.
#[derive(Debug, thiserror::Error)]
pub enum FieldMapError {
    /// The TOML text does not parse or has keys of the wrong type.
    #[error("field map {file}: {message}")]
    Toml {
        /// The map's name.
        file: String,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A target is not a usable object path.
    #[error("field map {file}: field {field:?}: target {path:?}: {reason}")]
    Target {
        /// The map's name.
        file: String,
        /// The log field.
        field: String,
        /// The target as written.
        path: String,
        /// The rule broken.
        reason: String,
    },
}

fn canonical_path(path: &str) -> Result<concord_pattern::ObjectPath, String> {
    let p = concord_pattern::parse_syntax(&format!("[{path} = 1]"))
        .map_err(|e| format!("not an object path (STIX 2.1 §9.3.1): {}", e.message))?;
    match p.expr {
        concord_pattern::ObservationExpr::Observation(concord_pattern::ComparisonExpr::Test(t)) => {
            Ok(t.path)
        }
        _ => Err("not a single object path".into()),
    }
}

/// Whether a path's values are fully represented by a record's flat fields (see
/// [`crate::record`]): no list steps, no `type`/`id`, no `_refs`/`_hex`/`_bin`, and `_ref`
/// only as `x_ref.value`. Targets must be such paths; indicator tests on other paths are not
/// indexed.
pub(crate) fn is_flat(p: &concord_pattern::ObjectPath) -> bool {
    use concord_pattern::PathStep;
    let bad = |k: &str| k.ends_with("_refs") || k.ends_with("_hex") || k.ends_with("_bin");
    if matches!(p.property.as_str(), "type" | "id") || bad(&p.property) {
        return false;
    }
    let mut keys = Vec::new();
    for s in &p.steps {
        match s {
            PathStep::Key(k) => keys.push(k.as_str()),
            _ => return false,
        }
    }
    if keys.iter().any(|k| bad(k) || k.ends_with("_ref")) {
        return false;
    }
    if p.property.ends_with("_ref") {
        return keys == ["value"];
    }
    true
}

impl Target {
    fn parse(path: &str) -> Result<Target, String> {
        let p = canonical_path(path)?;
        if !is_flat(&p) {
            return Err(
                "list steps, `type`, `id`, `*_refs`, `*_hex`, `*_bin` and `_ref` other than \
                 `x_ref.value` cannot be record fields"
                    .into(),
            );
        }
        let text: Arc<str> = Arc::from(p.to_string());
        let ty = p.object_type.as_str();
        let plain = p.steps.is_empty();
        Ok(match (ty, p.property.as_str()) {
            ("ipv4-addr" | "ipv6-addr", "value") if plain => Target::Ip {
                v4: Arc::from("ipv4-addr:value"),
                v6: Arc::from("ipv6-addr:value"),
            },
            (_, prop) if prop.ends_with("_ref") => Target::AddrRef {
                path: text,
                v4: Arc::from("ipv4-addr:value"),
                v6: Arc::from("ipv6-addr:value"),
            },
            ("domain-name", "value") if plain => Target::Domain(text),
            ("url", "value") if plain => Target::Url(text),
            ("email-addr", "value") if plain => Target::Email(text),
            (_, "hashes") if plain => {
                let k = |a: HashAlgo| {
                    let mut q = p.clone();
                    q.steps = vec![concord_pattern::PathStep::Key(a.stix_name().into())];
                    Arc::from(q.to_string())
                };
                Target::HashAuto([k(HashAlgo::Md5), k(HashAlgo::Sha1), k(HashAlgo::Sha256)])
            }
            (_, "hashes") if p.steps.len() == 1 => Target::HashFixed(text),
            _ => Target::Plain(text),
        })
    }

    /// Normalises `value` for this target and pushes the resulting fields. The strings of
    /// the new fields come from `pool` (spare buffers of earlier records) when it has any, so
    /// a reader in steady state does not allocate per field.
    #[cfg(test)]
    pub(crate) fn apply(&self, value: Val<'_>, out: &mut Vec<Field>, pool: &mut Vec<String>) {
        self.apply_noted(value, out, pool, &mut None, &mut Vec::new());
    }

    /// `Target::apply` that shares the address parsed from `value` with the other rules of
    /// the same value (`ip`: `None` until parsed, then what [`normalise_ip`] gave) and notes
    /// `(field index, address)` in `v4` for each `ipv4-addr:value` field it pushes (the
    /// matcher's CIDR lookup then need not parse the text again).
    pub(crate) fn apply_noted(
        &self,
        value: Val<'_>,
        out: &mut Vec<Field>,
        pool: &mut Vec<String>,
        ip: &mut Option<Option<IpAddr>>,
        v4: &mut Vec<(usize, u32)>,
    ) {
        let s = match value {
            // Printable ASCII at both ends (the usual value) has nothing to trim.
            Val::Str(s) => match (s.as_bytes().first(), s.as_bytes().last()) {
                (Some(0x21..=0x7e), Some(0x21..=0x7e)) => s,
                _ => s.trim(),
            },
            other => {
                if let Target::Plain(p) = self {
                    out.push(Field {
                        path: Arc::clone(p),
                        value: other.to_owned(),
                    });
                }
                return;
            }
        };
        if s.is_empty() {
            return;
        }
        let mut buf = pool.pop().unwrap_or_default();
        let mut push = |path: &Arc<str>, v: String| {
            out.push(Field {
                path: Arc::clone(path),
                value: FieldValue::Str(v),
            })
        };
        match self {
            Target::Ip { v4: p4, v6: p6 } => {
                if let Some(ip) = *ip.get_or_insert_with(|| normalise_ip(s)) {
                    ip_text_into(s, ip, &mut buf);
                    if let IpAddr::V4(a) = ip {
                        v4.push((out.len(), u32::from(a)));
                    }
                    out.push(Field {
                        path: Arc::clone(if ip.is_ipv4() { p4 } else { p6 }),
                        value: FieldValue::Str(buf),
                    });
                    return;
                }
            }
            Target::AddrRef {
                path,
                v4: p4,
                v6: p6,
            } => {
                if let Some(ip) = *ip.get_or_insert_with(|| normalise_ip(s)) {
                    ip_text_into(s, ip, &mut buf);
                    let own = if ip.is_ipv4() { p4 } else { p6 };
                    // The referenced object is an SCO of its own; list it so the flat form
                    // holds every value the observed-data form holds.
                    if !out
                        .iter()
                        .any(|f| f.path == *own && f.value.as_str() == Some(&buf))
                    {
                        let mut copy = pool.pop().unwrap_or_default();
                        copy.clear();
                        copy.push_str(&buf);
                        if let IpAddr::V4(a) = ip {
                            v4.push((out.len(), u32::from(a)));
                        }
                        out.push(Field {
                            path: Arc::clone(own),
                            value: FieldValue::Str(copy),
                        });
                    }
                    out.push(Field {
                        path: Arc::clone(path),
                        value: FieldValue::Str(buf),
                    });
                    return;
                }
            }
            Target::Domain(p) => {
                if ip.get_or_insert_with(|| normalise_ip(s)).is_none()
                    && normalise_domain_into(s, &mut buf)
                {
                    return push(p, buf);
                }
            }
            Target::Url(p) => {
                if normalise_url_into(s, &mut buf).is_ok() {
                    return push(p, buf);
                }
            }
            Target::Email(p) => {
                if let Some(e) = normalise_email(s) {
                    buf.clear();
                    buf.push_str(&e);
                    return push(p, buf);
                }
            }
            Target::HashAuto(paths) => {
                if let Some(a) = normalise_hash_into(s, &mut buf) {
                    let i = match a {
                        HashAlgo::Md5 => 0,
                        HashAlgo::Sha1 => 1,
                        HashAlgo::Sha256 => 2,
                    };
                    return push(&paths[i], buf);
                }
            }
            Target::HashFixed(p) => {
                buf.clear();
                buf.extend(s.split(':'));
                if !buf.is_empty() && buf.bytes().all(|c| c.is_ascii_hexdigit()) {
                    buf.make_ascii_lowercase();
                    return push(p, buf);
                }
            }
            Target::Plain(p) => {
                buf.clear();
                buf.push_str(s);
                return push(p, buf);
            }
        }
        pool.push(buf);
    }
}

/// A borrowed [`FieldValue`]: a value as a reader captured it, before normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl<'a> Val<'a> {
    pub(crate) fn to_owned(self) -> FieldValue {
        match self {
            Val::Str(s) => FieldValue::Str(s.to_string()),
            Val::Int(i) => FieldValue::Int(i),
            Val::Float(f) => FieldValue::Float(f),
            Val::Bool(b) => FieldValue::Bool(b),
        }
    }

    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StreamToml {
    #[serde(default)]
    fields: BTreeMap<String, OneOrMany>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlToml {
    host: String,
    path: String,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    stream: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MapToml {
    #[serde(default)]
    timestamp: Option<OneOrMany>,
    #[serde(default)]
    stream: Option<OneOrMany>,
    #[serde(default)]
    fields: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    streams: BTreeMap<String, StreamToml>,
    #[serde(default)]
    urls: Vec<UrlToml>,
}

impl FieldMap {
    /// An empty map (records get no fields until rules are added).
    pub fn new() -> FieldMap {
        FieldMap::default()
    }

    /// Adds a rule: `field` (as found in the log) to the object path `path`, for every record
    /// or only for records of `stream`. Errors: the path is not a usable target (see the module
    /// documentation); `file` names the map in the error.
    pub fn add(
        &mut self,
        field: &str,
        path: &str,
        stream: Option<&str>,
        file: &str,
    ) -> Result<(), FieldMapError> {
        let target = Target::parse(path).map_err(|reason| FieldMapError::Target {
            file: file.into(),
            field: field.into(),
            path: path.into(),
            reason,
        })?;
        self.rules.push(Rule {
            field: field.into(),
            stream: stream.map(str::to_string),
            target,
        });
        Ok(())
    }

    /// Adds a URL composition: `url:value` = `scheme://` + value of `host` + value of `path`
    /// (a `path` value that is already an absolute URL is used alone).
    pub fn add_url(&mut self, host: &str, path: &str, scheme: &str, stream: Option<&str>) {
        self.urls.push(UrlRule {
            host: host.into(),
            path: path.into(),
            scheme: scheme.into(),
            stream: stream.map(str::to_string),
            target: Arc::from("url:value"),
        });
    }

    /// Reads a user map in the TOML format of the module documentation. `file` names the map
    /// in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<FieldMap, FieldMapError> {
        let t: MapToml = toml::from_str(text).map_err(|e| FieldMapError::Toml {
            file: file.into(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut m = FieldMap {
            timestamp: t.timestamp.map(OneOrMany::into_vec).unwrap_or_default(),
            stream: t.stream.map(OneOrMany::into_vec).unwrap_or_default(),
            ..FieldMap::default()
        };
        for (field, paths) in t.fields {
            for p in paths.into_vec() {
                m.add(&field, &p, None, file)?;
            }
        }
        for (stream, s) in t.streams {
            for (field, paths) in s.fields {
                for p in paths.into_vec() {
                    m.add(&field, &p, Some(&stream), file)?;
                }
            }
        }
        for u in t.urls {
            m.add_url(
                &u.host,
                &u.path,
                u.scheme.as_deref().unwrap_or("http"),
                u.stream.as_deref(),
            );
        }
        Ok(m)
    }

    fn builtin(rules: &[(&str, Option<&str>, &str)]) -> FieldMap {
        let mut m = FieldMap::new();
        for (field, stream, path) in rules {
            m.add(field, path, *stream, "built-in")
                .expect("built-in field maps use valid targets");
        }
        m
    }

    /// The built-in map for Suricata `eve.json` (Suricata docs, "Eve JSON Format"): flow
    /// endpoints and ports, DNS names (v1 `dns.rrname`, v2 `dns.queries[].rrname`, answer
    /// names and addresses), HTTP host, URL and user agent, TLS SNI, certificate SHA-1
    /// fingerprint, subject, issuer and serial, file names, sizes and hashes, SMTP/e-mail
    /// addresses. Time from `timestamp`, stream from `event_type`.
    pub fn eve() -> FieldMap {
        const UA: &str =
            "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'";
        let mut m = FieldMap::builtin(&[
            ("src_ip", None, "ipv4-addr:value"),
            ("src_ip", None, "network-traffic:src_ref.value"),
            ("dest_ip", None, "ipv4-addr:value"),
            ("dest_ip", None, "network-traffic:dst_ref.value"),
            ("src_port", None, "network-traffic:src_port"),
            ("dest_port", None, "network-traffic:dst_port"),
            ("dns.rrname", None, "domain-name:value"),
            ("dns.queries.rrname", None, "domain-name:value"),
            ("dns.answers.rrname", None, "domain-name:value"),
            ("dns.answers.rdata", None, "ipv4-addr:value"),
            ("dns.answers.rdata", None, "domain-name:value"),
            ("dns.rdata", None, "ipv4-addr:value"),
            ("dns.rdata", None, "domain-name:value"),
            ("http.hostname", None, "domain-name:value"),
            ("http.http_user_agent", None, UA),
            ("tls.sni", None, "domain-name:value"),
            ("tls.fingerprint", None, "x509-certificate:hashes.'SHA-1'"),
            ("tls.subject", None, "x509-certificate:subject"),
            ("tls.issuerdn", None, "x509-certificate:issuer"),
            ("tls.serial", None, "x509-certificate:serial_number"),
            ("fileinfo.filename", None, "file:name"),
            ("fileinfo.size", None, "file:size"),
            ("fileinfo.md5", None, "file:hashes"),
            ("fileinfo.sha1", None, "file:hashes"),
            ("fileinfo.sha256", None, "file:hashes"),
            ("smtp.mail_from", None, "email-addr:value"),
            ("smtp.rcpt_to", None, "email-addr:value"),
            ("email.from", None, "email-addr:value"),
            ("email.to", None, "email-addr:value"),
            ("email.cc", None, "email-addr:value"),
        ]);
        m.timestamp = vec!["timestamp".into()];
        m.stream = vec!["event_type".into()];
        m.add_url("http.hostname", "http.url", "http", None);
        m
    }

    /// The built-in map for Zeek logs (JSON or TSV; `id.orig_h` and `id_orig_h` spellings):
    /// connection endpoints and ports (every stream); `dns` query and answers; `http` host,
    /// URL (`host` + `uri`) and user agent; `files` hashes, name, size and hosts; `ssl` SNI,
    /// subject, issuer, certificate fingerprints; `x509` fingerprint, subject, issuer, serial,
    /// SAN names; `smtp` addresses; `notice` source and destination. Time from `ts`, stream from
    /// `_path` / `@stream` (TSV: the `#path` header).
    pub fn zeek() -> FieldMap {
        const UA: &str =
            "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'";
        let rules: &[(&str, Option<&str>, &str)] = &[
            ("id.orig_h", None, "ipv4-addr:value"),
            ("id.orig_h", None, "network-traffic:src_ref.value"),
            ("id.resp_h", None, "ipv4-addr:value"),
            ("id.resp_h", None, "network-traffic:dst_ref.value"),
            ("id.orig_p", None, "network-traffic:src_port"),
            ("id.resp_p", None, "network-traffic:dst_port"),
            ("query", Some("dns"), "domain-name:value"),
            ("answers", Some("dns"), "ipv4-addr:value"),
            ("answers", Some("dns"), "domain-name:value"),
            ("host", Some("http"), "domain-name:value"),
            ("host", Some("http"), "ipv4-addr:value"),
            ("user_agent", Some("http"), UA),
            ("md5", Some("files"), "file:hashes"),
            ("sha1", Some("files"), "file:hashes"),
            ("sha256", Some("files"), "file:hashes"),
            ("filename", Some("files"), "file:name"),
            ("total_bytes", Some("files"), "file:size"),
            ("tx_hosts", Some("files"), "ipv4-addr:value"),
            ("rx_hosts", Some("files"), "ipv4-addr:value"),
            ("md5", Some("pe"), "file:hashes"),
            ("server_name", Some("ssl"), "domain-name:value"),
            ("subject", Some("ssl"), "x509-certificate:subject"),
            ("issuer", Some("ssl"), "x509-certificate:issuer"),
            ("cert_chain_fps", Some("ssl"), "x509-certificate:hashes"),
            (
                "resp_certificate_sha1",
                Some("ssl"),
                "x509-certificate:hashes",
            ),
            ("fingerprint", Some("x509"), "x509-certificate:hashes"),
            (
                "certificate.subject",
                Some("x509"),
                "x509-certificate:subject",
            ),
            (
                "certificate.issuer",
                Some("x509"),
                "x509-certificate:issuer",
            ),
            (
                "certificate.serial",
                Some("x509"),
                "x509-certificate:serial_number",
            ),
            ("san.dns", Some("x509"), "domain-name:value"),
            ("san.email", Some("x509"), "email-addr:value"),
            ("san.ip", Some("x509"), "ipv4-addr:value"),
            ("mailfrom", Some("smtp"), "email-addr:value"),
            ("rcptto", Some("smtp"), "email-addr:value"),
            ("from", Some("smtp"), "email-addr:value"),
            ("to", Some("smtp"), "email-addr:value"),
            ("src", Some("notice"), "ipv4-addr:value"),
            ("dst", Some("notice"), "ipv4-addr:value"),
        ];
        let mut m = FieldMap::builtin(rules);
        // Zeek's JSON writers flatten record fields with `.` or (OTRF's logs) `_`.
        let underscored: Vec<_> = rules
            .iter()
            .filter(|(f, _, _)| f.contains('.'))
            .map(|(f, s, p)| (f.replace('.', "_"), *s, *p))
            .collect();
        for (f, s, p) in &underscored {
            m.add(f, p, *s, "built-in")
                .expect("built-in targets are valid");
        }
        m.timestamp = vec!["ts".into()];
        m.stream = vec!["_path".into(), "@stream".into()];
        m.add_url("host", "uri", "http", Some("http"));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_map() {
        let m = FieldMap::from_toml(
            r#"
timestamp = "time"
[fields]
"a.b" = ["domain-name:value"]
"h" = "file:hashes"
[streams.x.fields]
"p" = "network-traffic:dst_port"
[[urls]]
host = "h"
path = "u"
"#,
            "m.toml",
        )
        .unwrap();
        assert_eq!(m.timestamp, ["time"]);
        assert_eq!(m.rules.len(), 3);
        assert_eq!(m.urls.len(), 1);
        let err = FieldMap::from_toml("[fields]\n\"a\" = \"file:x_refs\"\n", "m.toml").unwrap_err();
        assert!(
            err.to_string().starts_with("field map m.toml: field \"a\""),
            "{err}"
        );
        let err = FieldMap::from_toml("[fields]\n\"a\" = 3\n", "m.toml").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn targets_normalise() {
        let mut out = Vec::new();
        let t = Target::parse("file:hashes").unwrap();
        t.apply(Val::Str(&"AA".repeat(20)), &mut out, &mut Vec::new());
        assert_eq!(&*out[0].path, "file:hashes.'SHA-1'");
        assert_eq!(out[0].value, FieldValue::Str("aa".repeat(20)));
        out.clear();
        Target::parse("network-traffic:dst_ref.value")
            .unwrap()
            .apply(Val::Str("2001:DB8::1"), &mut out, &mut Vec::new());
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0].path, "ipv6-addr:value");
        assert_eq!(out[1].value, FieldValue::Str("2001:db8::1".into()));
    }
}
