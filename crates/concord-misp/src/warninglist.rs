//! MISP warninglists (MISP/misp-warninglists `list.json` format): lists of values known to be
//! benign or too common to be indicators (public DNS resolvers, RFC 1918 space, top domains…).
//!
//! Each list has a `type` that says how a value is compared, as MISP and PyMISPWarningLists
//! compare them:
//! - `string`: the whole value equals an entry (case-insensitive);
//! - `hostname`: the value's host (a URL's host too) equals an entry or is a subdomain of one;
//! - `substring`: an entry occurs in the value (case-insensitive);
//! - `cidr`: the value is an IP address inside one of the networks;
//! - `regex`: one of the regular expressions (PCRE-style `/…/flags` accepted) matches.
//!
//! and `matching_attributes`, the MISP attribute types it applies to (all types when empty).
//! Composite values (`domain|ip`) are checked part by part.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// Why a warninglist could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WarninglistError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a warninglist, or an entry that does not fit its type.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct RawList {
    name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    matching_attributes: Vec<String>,
    list: Vec<String>,
}

enum Matcher {
    Exact(HashSet<String>),
    Hostname(HashSet<String>),
    Substring(Vec<String>),
    Cidr {
        v4: Vec<(u32, u32)>,
        v6: Vec<(u128, u128)>,
    },
    Regex(regex::RegexSet),
}

/// One loaded warninglist.
pub struct Warninglist {
    /// The list's `name`, e.g. `List of RFC 1918 CIDR blocks`.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    matching: HashSet<String>,
    matcher: Matcher,
}

/// A set of warninglists, asked value by value.
#[derive(Default)]
pub struct Warninglists {
    lists: Vec<Warninglist>,
}

impl Warninglist {
    /// Parses one `list.json`; `origin` names it in errors.
    ///
    /// Errors: not the warninglist format, an unknown `type`, an invalid CIDR or regex entry.
    pub fn from_json(text: &str, origin: &str) -> Result<Warninglist, WarninglistError> {
        let invalid = |message: String| WarninglistError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let raw: RawList =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a warninglist: {e}")))?;
        let matcher = match raw.kind.as_str() {
            "string" | "" => Matcher::Exact(raw.list.iter().map(|s| s.to_lowercase()).collect()),
            "hostname" => Matcher::Hostname(
                raw.list
                    .iter()
                    .map(|s| {
                        s.trim_end_matches('.')
                            .trim_start_matches('.')
                            .to_lowercase()
                    })
                    .collect(),
            ),
            "substring" => Matcher::Substring(raw.list.iter().map(|s| s.to_lowercase()).collect()),
            "cidr" => {
                let mut v4 = Vec::new();
                let mut v6 = Vec::new();
                for entry in &raw.list {
                    match cidr_range(entry) {
                        Some(Range::V4(a, b)) => v4.push((a, b)),
                        Some(Range::V6(a, b)) => v6.push((a, b)),
                        None => return Err(invalid(format!("{entry:?} is not a CIDR block"))),
                    }
                }
                Matcher::Cidr {
                    v4: merge(v4),
                    v6: merge(v6),
                }
            }
            "regex" => {
                let patterns: Vec<String> = raw.list.iter().map(|p| pcre_to_rust(p)).collect();
                Matcher::Regex(
                    regex::RegexSet::new(&patterns).map_err(|e| invalid(format!("regex: {e}")))?,
                )
            }
            other => return Err(invalid(format!("unknown warninglist type {other:?}"))),
        };
        Ok(Warninglist {
            name: raw.name,
            kind: raw.kind,
            matching: raw.matching_attributes.into_iter().collect(),
            matcher,
        })
    }

    /// Whether the list applies to this MISP attribute type.
    pub fn applies_to(&self, misp_type: &str) -> bool {
        self.matching.is_empty() || self.matching.contains(misp_type)
    }

    /// Whether `value` (one value, not composite) is on the list.
    pub fn contains(&self, value: &str) -> bool {
        let value = value.trim();
        match &self.matcher {
            Matcher::Exact(set) => set.contains(&value.to_lowercase()),
            Matcher::Hostname(set) => {
                let host = host_of(value).to_lowercase();
                let mut h = host.as_str();
                loop {
                    if set.contains(h) {
                        return true;
                    }
                    match h.split_once('.') {
                        Some((_, rest)) if !rest.is_empty() => h = rest,
                        _ => return false,
                    }
                }
            }
            Matcher::Substring(entries) => {
                let v = value.to_lowercase();
                entries.iter().any(|e| v.contains(e.as_str()))
            }
            Matcher::Cidr { v4, v6 } => match value.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => in_ranges(v4, u32::from(a)),
                Ok(IpAddr::V6(a)) => in_ranges(v6, u128::from(a)),
                Err(_) => false,
            },
            Matcher::Regex(set) => set.is_match(value),
        }
    }
}

impl Warninglists {
    /// Loads every `*/list.json` under `dir` (the layout of misp-warninglists' `lists/`).
    ///
    /// Errors: an unreadable directory or file, an invalid list (named by its path).
    pub fn load_dir(dir: &Path) -> Result<Warninglists, WarninglistError> {
        let io = |path: &Path, source| WarninglistError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let p = entry.map_err(|e| io(dir, e))?.path().join("list.json");
            if p.is_file() {
                paths.push(p);
            }
        }
        paths.sort();
        let mut lists = Warninglists::default();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            lists.push(Warninglist::from_json(&text, &p.display().to_string())?);
        }
        Ok(lists)
    }

    /// Adds a list.
    pub fn push(&mut self, list: Warninglist) {
        self.lists.push(list);
    }

    /// The loaded lists.
    pub fn lists(&self) -> &[Warninglist] {
        &self.lists
    }

    /// The names of the lists that hold a value of MISP type `misp_type`; a composite value
    /// (`domain|ip`) is checked part by part. Empty when none does.
    pub fn matches(&self, misp_type: &str, value: &str) -> Vec<&str> {
        let parts: Vec<&str> = if misp_type.contains('|') {
            value.split('|').collect()
        } else {
            vec![value]
        };
        self.lists
            .iter()
            .filter(|l| l.applies_to(misp_type) && parts.iter().any(|p| l.contains(p)))
            .map(|l| l.name.as_str())
            .collect()
    }

    /// The names of the lists that hold `value`, whatever its type (for `concord match`,
    /// where a log field has no MISP type).
    pub fn matches_any(&self, value: &str) -> Vec<&str> {
        self.lists
            .iter()
            .filter(|l| l.contains(value))
            .map(|l| l.name.as_str())
            .collect()
    }
}

/// The host of a URL, or the value itself.
fn host_of(value: &str) -> &str {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
    .trim_end_matches('.')
}

enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

/// `10.0.0.0/8` or a bare address as an inclusive range.
fn cidr_range(entry: &str) -> Option<Range> {
    let (addr, len) = match entry.trim().split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
        None => (entry.trim(), None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return None;
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let start = u32::from(a) & mask;
            Some(Range::V4(start, start | !mask))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return None;
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let start = u128::from(a) & mask;
            Some(Range::V6(start, start | !mask))
        }
    }
}

/// Sorted, disjoint ranges (so a lookup is one binary search).
fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && x <= ranges[i - 1].1
}

/// `/^abc$/i` → `(?i)^abc$`; a pattern without delimiters is kept.
fn pcre_to_rust(p: &str) -> String {
    if let Some(rest) = p.strip_prefix('/')
        && let Some(end) = rest.rfind('/')
    {
        let (body, flags) = (&rest[..end], &rest[end + 1..]);
        let flags: String = flags.chars().filter(|c| "imsx".contains(*c)).collect();
        return if flags.is_empty() {
            body.to_owned()
        } else {
            format!("(?{flags}){body}")
        };
    }
    p.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: &str, entries: &[&str]) -> Warninglist {
        let text = serde_json::json!({"name": "t", "type": kind, "list": entries,
            "matching_attributes": ["ip-dst", "domain", "url", "email-src"]})
        .to_string();
        Warninglist::from_json(&text, "t").unwrap()
    }

    #[test]
    fn each_type_matches_as_misp_does() {
        let c = list("cidr", &["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]);
        assert!(c.contains("10.1.2.3") && c.contains("192.168.255.1") && c.contains("2001:db8::1"));
        assert!(!c.contains("11.0.0.1") && !c.contains("example.com"));
        let h = list("hostname", &["google.com"]);
        assert!(h.contains("google.com") && h.contains("mail.google.com"));
        assert!(h.contains("https://www.google.com/x?y") && !h.contains("notgoogle.com"));
        let s = list("string", &["8.8.8.8"]);
        assert!(s.contains("8.8.8.8") && !s.contains("8.8.8.80"));
        let sub = list("substring", &["mailinator"]);
        assert!(sub.contains("x@Mailinator.com") && !sub.contains("x@gmail.com"));
        let r = list("regex", &["/^abuse@/i"]);
        assert!(r.contains("ABUSE@example.org") && !r.contains("me@abuse.org"));
    }
}
