//! Plain IOC lists to STIX 2.1 indicators (issue 4, item 0).
//!
//! One observable per line. Accepted around it: blank lines, `#` comment lines and trailing
//! ` # comment`s (maltrail), surrounding white space, defanged forms ([`refang`]), and
//! signature-base's `value;comment` lines (the comment becomes the indicator's
//! `description`). Each observable is classified ([`classify`]) and becomes one `indicator`
//! (STIX 2.1 §4.7) whose pattern is built as an AST and printed by `concord_pattern`, so it
//! is canonical and quoted right:
//!
//! | line | pattern |
//! |---|---|
//! | `1.2.3.4` | `[ipv4-addr:value = '1.2.3.4']` (`ipv6-addr` for IPv6) |
//! | `10.0.0.0/8` | `[ipv4-addr:value ISSUBSET '10.0.0.0/8']` (host bits cleared; `/32` is an address) |
//! | `1.2.3.4:8080` | `[network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = 8080]` |
//! | `x.com` | `[domain-name:value = 'x.com']` |
//! | `http://x.com/a`, `x.com/a` | `[url:value = 'http://x.com/a']` (no scheme: `http://`) |
//! | `/a/b.php` (maltrail: the path on any host) | `[url:value LIKE '%/a/b.php%']` (STIX `LIKE` has no escape: a `_` or `%` in the path is a wildcard, so the pattern may match slightly more) |
//! | MD5 / SHA-1 / SHA-256 | `[file:hashes.MD5 = '…']`, `[file:hashes.'SHA-1' = '…']`, `[file:hashes.'SHA-256' = '…']` |
//! | `a@b.org` | `[email-addr:value = 'a@b.org']` |
//!
//! Ids are deterministic: `indicator--` + UUIDv5 under [`NAMESPACE`] over
//! `"<kind>|<normalised value>"` (kinds: `ipv4-addr`, `ipv6-addr`, `ipv4-net`, `ipv6-net`,
//! `ip-port`, `domain-name`, `url`, `url-path`, `file:MD5`, `file:SHA-1`, `file:SHA-256`, `email-addr`), so
//! the same value in any list, any run, gives the same id, and a value listed twice gives one
//! indicator (later duplicates are counted, not repeated).

use std::collections::HashSet;
use std::io::BufRead;
use std::net::IpAddr;

use concord_pattern::{
    ComparisonExpr, Literal, ObjectPath, ObservationExpr, Operand, Operator, PathStep, Pattern,
    Test,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::classify::{Observable, classify, refang};

/// The UUIDv5 namespace of IOC-list indicator ids (a fixed random UUID chosen for Concord).
pub const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1c_4d0e_9a57_4f2b_b1d3_5e0f_8a24_c7e9);

/// A line that did not become an indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// The list's name as given by the caller (usually its path).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The line as read (trimmed).
    pub text: String,
    /// Why it was not classified.
    pub reason: String,
}

/// What [`read_ioc_list`] produced.
#[derive(Debug, Default)]
pub struct IocList {
    /// The indicators, one per distinct observable, in first-seen order.
    pub indicators: Vec<Value>,
    /// Lines that are not comments or blank and could not be classified.
    pub rejected: Vec<Rejected>,
    /// Lines whose observable was already seen (same normalised value, same id).
    pub duplicates: u64,
    /// Lines read, comments and blank lines included.
    pub lines: u64,
}

/// Options of [`read_ioc_list`].
#[derive(Debug, Clone)]
pub struct IocOptions {
    /// `created`, `modified` and `valid_from` of every indicator (STIX timestamp text,
    /// e.g. `2026-01-01T00:00:00.000Z`).
    pub timestamp: String,
    /// Put into each indicator's `description` when the line has no comment of its own,
    /// e.g. the list's family name (`maltrail: apt_lazarus`). `None`: no description.
    pub default_description: Option<String>,
    /// Shortest IPv4 CIDR prefix accepted (0..=32): a line with a shorter one (a larger
    /// block, such as `0.0.0.0/0`, which would match every address) is rejected, naming the
    /// line. Default [`DEFAULT_MIN_PREFIX_V4`].
    pub min_prefix_v4: u8,
    /// Shortest IPv6 CIDR prefix accepted (0..=128), as `min_prefix_v4` (`::/0`).
    /// Default [`DEFAULT_MIN_PREFIX_V6`].
    pub min_prefix_v6: u8,
}

/// Default shortest IPv4 prefix: `/8`, the largest block IANA ever allocated to one
/// registry or organisation (1/256 of the address space). Real block lists (Spamhaus DROP,
/// FireHOL) list allocations of /8 and longer; anything shorter spans several registries'
/// space and in an IOC list is a typo (`/0`, `/1`) that would flag every address seen.
pub const DEFAULT_MIN_PREFIX_V4: u8 = 8;

/// Default shortest IPv6 prefix: `/16`. IANA allocates /12 blocks to the regional registries
/// and the whole global unicast space is `2000::/3`, so a prefix shorter than /16 covers a
/// registry's space or more; the largest allocations to single operators (/19 to /32) and
/// the networks that Spamhaus DROPv6 lists stay accepted.
pub const DEFAULT_MIN_PREFIX_V6: u8 = 16;

impl IocOptions {
    /// Options with `timestamp`, no default description and the default minimum prefixes.
    pub fn new(timestamp: impl Into<String>) -> IocOptions {
        IocOptions {
            timestamp: timestamp.into(),
            default_description: None,
            min_prefix_v4: DEFAULT_MIN_PREFIX_V4,
            min_prefix_v6: DEFAULT_MIN_PREFIX_V6,
        }
    }
}

/// Errors of [`read_ioc_list`]: only I/O (a bad line is a [`Rejected`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum IocError {
    /// Reading the list failed.
    #[error("{file}:{line}: read error: {source}")]
    Io {
        /// List name.
        file: String,
        /// Line being read.
        line: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads an IOC list (see the module documentation) into indicators. `file` names the list in
/// [`Rejected`] entries. Lines that are not UTF-8 are rejected with that reason.
pub fn read_ioc_list(
    mut input: impl BufRead,
    file: &str,
    options: &IocOptions,
) -> Result<IocList, IocError> {
    let mut out = IocList::default();
    let mut seen: HashSet<uuid::Uuid> = HashSet::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| IocError::Io {
                file: file.to_string(),
                line: out.lines + 1,
                source,
            })?;
        if n == 0 {
            break;
        }
        out.lines += 1;
        let line_no = out.lines;
        let Ok(text) = std::str::from_utf8(&buf) else {
            out.rejected.push(Rejected {
                file: file.to_string(),
                line: line_no,
                text: String::from_utf8_lossy(&buf).trim().to_string(),
                reason: "not UTF-8".to_string(),
            });
            continue;
        };
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (value, comment) = split_comment(text);
        match classify(&refang(value)) {
            Ok(obs) => {
                if let Observable::Cidr(ip, prefix) = obs
                    && let Some(min) = too_wide(ip, prefix, options)
                {
                    out.rejected.push(Rejected {
                        file: file.to_string(),
                        line: line_no,
                        text: text.to_string(),
                        reason: wide_reason(ip, prefix, min),
                    });
                    continue;
                }
                let (kind, norm) = kind_and_value(&obs);
                let uuid = uuid::Uuid::new_v5(&NAMESPACE, format!("{kind}|{norm}").as_bytes());
                if !seen.insert(uuid) {
                    out.duplicates += 1;
                    continue;
                }
                let description = comment
                    .map(str::to_string)
                    .or_else(|| options.default_description.clone());
                out.indicators
                    .push(indicator(uuid, &obs, &norm, description, options));
            }
            Err(why) => out.rejected.push(Rejected {
                file: file.to_string(),
                line: line_no,
                text: text.to_string(),
                reason: why.reason().to_string(),
            }),
        }
    }
    Ok(out)
}

/// The minimum prefix a CIDR block breaks, if it is shorter than the options allow.
fn too_wide(ip: IpAddr, prefix: u8, options: &IocOptions) -> Option<u8> {
    let min = if ip.is_ipv4() {
        options.min_prefix_v4
    } else {
        options.min_prefix_v6
    };
    (prefix < min).then_some(min)
}

/// Why a CIDR block wider than the minimum prefix `min` is refused.
fn wide_reason(ip: IpAddr, prefix: u8, min: u8) -> String {
    let (family, bits) = if ip.is_ipv4() {
        ("IPv4", 32)
    } else {
        ("IPv6", 128)
    };
    format!(
        "CIDR block {ip}/{prefix} is wider than the shortest {family} prefix accepted, /{min} \
         (it holds 2^{} of the 2^{bits} addresses, so its indicator would match almost any \
         address)",
        bits - u32::from(prefix)
    )
}

/// `value;comment` (signature-base) or `value # comment` (maltrail).
fn split_comment(text: &str) -> (&str, Option<&str>) {
    let (v, c) = match text.split_once(';') {
        Some((v, c)) => (v, Some(c)),
        None => match text.find(" #").or_else(|| text.find("\t#")) {
            Some(i) => (&text[..i], Some(&text[i + 2..])),
            None => (text, None),
        },
    };
    let c = c.map(str::trim).filter(|c| !c.is_empty());
    (v.trim(), c)
}

/// The id kind and the normalised value text of an observable.
fn kind_and_value(obs: &Observable) -> (&'static str, String) {
    match obs {
        Observable::Ip(IpAddr::V4(a)) => ("ipv4-addr", a.to_string()),
        Observable::Ip(IpAddr::V6(a)) => ("ipv6-addr", a.to_string()),
        Observable::Cidr(ip, p) => (
            if ip.is_ipv4() { "ipv4-net" } else { "ipv6-net" },
            format!("{ip}/{p}"),
        ),
        Observable::IpPort(ip, p) => ("ip-port", format!("{ip}:{p}")),
        Observable::Domain(d) => ("domain-name", d.clone()),
        Observable::Url(u) => ("url", u.clone()),
        Observable::UrlPath(u) => ("url-path", u.clone()),
        Observable::Hash(a, h) => (
            match a.stix_name() {
                "MD5" => "file:MD5",
                "SHA-1" => "file:SHA-1",
                _ => "file:SHA-256",
            },
            h.clone(),
        ),
        Observable::Email(e) => ("email-addr", e.clone()),
    }
}

fn path(object_type: &str, property: &str, steps: &[&str]) -> ObjectPath {
    ObjectPath {
        object_type: object_type.to_string(),
        property: property.to_string(),
        steps: steps.iter().map(|s| PathStep::Key(s.to_string())).collect(),
    }
}

fn test(path: ObjectPath, op: Operator, lit: Literal) -> ComparisonExpr {
    ComparisonExpr::Test(Test {
        path,
        negated: false,
        op,
        operand: Operand::Literal(lit),
    })
}

fn ip_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ipv4-addr"
    } else {
        "ipv6-addr"
    }
}

/// The pattern of an observable (the table in the module documentation).
pub fn pattern_of(obs: &Observable) -> Pattern {
    let s = |v: &str| Literal::String(v.to_string());
    let cmp = match obs {
        Observable::Ip(ip) => test(
            path(ip_type(ip), "value", &[]),
            Operator::Eq,
            s(&ip.to_string()),
        ),
        Observable::Cidr(ip, p) => test(
            path(ip_type(ip), "value", &[]),
            Operator::IsSubset,
            s(&format!("{ip}/{p}")),
        ),
        Observable::IpPort(ip, port) => ComparisonExpr::And(vec![
            test(
                path("network-traffic", "dst_ref", &["value"]),
                Operator::Eq,
                s(&ip.to_string()),
            ),
            test(
                path("network-traffic", "dst_port", &[]),
                Operator::Eq,
                Literal::Int(i64::from(*port)),
            ),
        ]),
        Observable::Domain(d) => test(path("domain-name", "value", &[]), Operator::Eq, s(d)),
        Observable::Url(u) => test(path("url", "value", &[]), Operator::Eq, s(u)),
        Observable::UrlPath(u) => test(
            path("url", "value", &[]),
            Operator::Like,
            s(&format!("%{u}%")),
        ),
        Observable::Hash(a, h) => {
            test(path("file", "hashes", &[a.stix_name()]), Operator::Eq, s(h))
        }
        Observable::Email(e) => test(path("email-addr", "value", &[]), Operator::Eq, s(e)),
    };
    Pattern {
        expr: ObservationExpr::Observation(cmp),
    }
}

fn indicator(
    uuid: uuid::Uuid,
    obs: &Observable,
    norm: &str,
    description: Option<String>,
    options: &IocOptions,
) -> Value {
    let mut o = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{uuid}"),
        "created": options.timestamp,
        "modified": options.timestamp,
        "name": norm,
        "indicator_types": ["malicious-activity"],
        "pattern": pattern_of(obs).to_string(),
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": options.timestamp,
    });
    if let Some(d) = description {
        o["description"] = Value::String(d);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> IocOptions {
        IocOptions::new("2026-01-01T00:00:00.000Z")
    }

    #[test]
    fn lines_to_indicators() {
        let text = "# comment\n\n  1.2.3.4  \nevil[.]com\n1.2.3.4\n5.63.151.0/24 # rapid7\n\
                    d41d8cd98f00b204e9800998ecf8427e;empty file\nnot a value\n1.2.3.4:443\n";
        let l = read_ioc_list(text.as_bytes(), "t.txt", &opts()).unwrap();
        let pats: Vec<&str> = l
            .indicators
            .iter()
            .map(|i| i["pattern"].as_str().unwrap())
            .collect();
        assert_eq!(
            pats,
            [
                "[ipv4-addr:value = '1.2.3.4']",
                "[domain-name:value = 'evil.com']",
                "[ipv4-addr:value ISSUBSET '5.63.151.0/24']",
                "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
                "[network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = 443]",
            ]
        );
        assert_eq!(l.duplicates, 1);
        assert_eq!(l.indicators[3]["description"], "empty file");
        assert_eq!(l.rejected.len(), 1);
        assert_eq!(l.rejected[0].line, 8);
        assert_eq!(l.rejected[0].reason, "white space inside the value");
        // Same value, same id, whatever the spelling.
        let again = read_ioc_list("1[.]2.3[.]4\n".as_bytes(), "u.txt", &opts()).unwrap();
        assert_eq!(again.indicators[0]["id"], l.indicators[0]["id"]);
    }

    #[test]
    fn refuses_blocks_wider_than_the_minimum_prefix() {
        let text = "0.0.0.0/0\n::/0\n10.0.0.0/8\n8.0.0.0/7\n2001:db8::/16\n2000::/3\n";
        let l = read_ioc_list(text.as_bytes(), "wide.txt", &opts()).unwrap();
        let names: Vec<&str> = l
            .indicators
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["10.0.0.0/8", "2001::/16"]);
        let lines: Vec<(u64, &str)> = l
            .rejected
            .iter()
            .map(|r| (r.line, r.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (1, "0.0.0.0/0"),
                (2, "::/0"),
                (4, "8.0.0.0/7"),
                (6, "2000::/3")
            ]
        );
        assert!(
            l.rejected[0].reason.contains("0.0.0.0/0")
                && l.rejected[0].reason.contains("/8")
                && l.rejected[1].reason.contains("/16"),
            "{:?}",
            l.rejected
        );
        // The minimum is configurable: /0 accepted when asked for.
        let mut o = opts();
        o.min_prefix_v4 = 0;
        let l = read_ioc_list("0.0.0.0/0\n".as_bytes(), "wide.txt", &o).unwrap();
        assert_eq!(l.indicators.len(), 1);
        assert!(l.rejected.is_empty());
    }
}
