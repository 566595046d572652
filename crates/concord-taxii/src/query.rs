//! Query parameters (TAXII 2.1 §3.4): `added_after`, `limit`, `next` and the `match[…]`
//! filters, parsed and checked once, into typed values.

use concord_stix::Timestamp;

use crate::error::{ErrorCode, TaxiiError};

/// Largest page the server returns, whatever `limit` asks (TAXII 2.1 §3.4.1 lets the server
/// return fewer than asked).
pub const MAX_LIMIT: usize = 10_000;
/// Page size when the client gives no `limit`.
pub const DEFAULT_LIMIT: usize = 1_000;

/// One `match[version]` value (TAXII 2.1 §3.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionMatch {
    /// `first`.
    First,
    /// `last` (the default).
    Last,
    /// `all`.
    All,
    /// A timestamp: the version whose `modified` is that instant.
    At(Timestamp),
}

/// The endpoints that take query parameters; each allows a different set (TAXII 2.1 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Get Objects and Get Object Manifests: every filter.
    Objects,
    /// Get An Object: no `match[id]`/`match[type]`.
    Object,
    /// Get Object Versions: `added_after`, `limit`, `next`, `match[spec_version]`.
    Versions,
    /// Delete An Object: `match[version]`, `match[spec_version]`.
    Delete,
}

/// The parsed query of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// `added_after`.
    pub added_after: Option<Timestamp>,
    /// `limit`, capped at [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    pub limit: usize,
    /// `next`, as sent (opaque; see [`check_next`]).
    pub next: Option<String>,
    /// `match[id]` (comma list, ORed).
    pub ids: Vec<String>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]`; empty means `last` (or `all` on the versions endpoint).
    pub versions: Vec<VersionMatch>,
    /// `match[spec_version]`: `"2.0"` and/or `"2.1"`.
    pub spec_versions: Vec<String>,
}

fn bad(description: String) -> TaxiiError {
    TaxiiError::new(ErrorCode::BadRequest, description)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty())
}

impl Query {
    /// Parses URL-decoded `(name, value)` pairs for `endpoint`.
    ///
    /// Errors (400, naming the parameter and value): a parameter the endpoint does not take,
    /// an unknown `match[…]` field, a malformed timestamp, a `limit` that is not a positive
    /// integer, an unknown `match[version]` or `match[spec_version]` value, a `next` token
    /// that this server did not issue, and any parameter given more than once
    /// (`?limit=1&limit=1000`, `?match[type]=a&match[type]=b`): TAXII 2.1 §3.4.2 gives each
    /// filter one value, a comma-separated list for several (`match[type]=a,b`), and does not
    /// say whether a repetition means the first, the last, or all of them — so a client
    /// that repeats one is refused, naming it, rather than answered for a query it did not
    /// mean.
    pub fn parse(pairs: &[(String, String)], endpoint: Endpoint) -> Result<Query, TaxiiError> {
        let mut q = Query {
            limit: DEFAULT_LIMIT,
            ..Query::default()
        };
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(seen, _)| seen == name) {
                return Err(bad(format!(
                    "parameter {name:?} is given more than once; give it once, with several \
                     values as one comma-separated list (TAXII 2.1 §3.4.2)"
                )));
            }
        }
        for (name, value) in pairs {
            let allowed = match (endpoint, name.as_str()) {
                (Endpoint::Delete, "match[version]" | "match[spec_version]") => true,
                (Endpoint::Delete, _) => false,
                (Endpoint::Versions, "added_after" | "limit" | "next" | "match[spec_version]") => {
                    true
                }
                (Endpoint::Versions, _) => false,
                (Endpoint::Object, "match[id]" | "match[type]") => false,
                _ => true,
            };
            if !allowed && (name.starts_with("match[") || KNOWN.contains(&name.as_str())) {
                return Err(bad(format!(
                    "parameter {name:?} is not supported on this endpoint"
                )));
            }
            match name.as_str() {
                "added_after" => {
                    q.added_after = Some(
                        Timestamp::parse(value)
                            .map_err(|e| bad(format!("added_after={value:?}: {e}")))?,
                    );
                }
                "limit" => {
                    let n: usize = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("limit={value:?}: must be a positive integer"))
                    })?;
                    q.limit = n.min(MAX_LIMIT);
                }
                "next" => q.next = Some(check_next(value)?),
                "match[id]" => q.ids.extend(list(value).map(str::to_owned)),
                "match[type]" => q.types.extend(list(value).map(str::to_owned)),
                "match[version]" => {
                    for v in list(value) {
                        q.versions.push(match v {
                            "first" => VersionMatch::First,
                            "last" => VersionMatch::Last,
                            "all" => VersionMatch::All,
                            t => VersionMatch::At(Timestamp::parse(t).map_err(|e| {
                                bad(format!(
                                    "match[version]={t:?}: not first, last, all or a timestamp ({e})"
                                ))
                            })?),
                        });
                    }
                }
                "match[spec_version]" => {
                    for v in list(value) {
                        if v != "2.0" && v != "2.1" {
                            return Err(bad(format!(
                                "match[spec_version]={v:?}: must be 2.0 or 2.1"
                            )));
                        }
                        q.spec_versions.push(v.to_owned());
                    }
                }
                other if other.starts_with("match[") => {
                    return Err(bad(format!(
                        "{other}: unsupported filter (supported: match[id], match[type], match[version], match[spec_version])"
                    )));
                }
                other => return Err(bad(format!("unknown query parameter {other:?}"))),
            }
        }
        Ok(q)
    }
}

const KNOWN: &[&str] = &["added_after", "limit", "next"];

/// Longest `next` token accepted, in bytes; the node's own tokens are far shorter.
pub const MAX_NEXT_LEN: usize = 512;

/// Checks the shape of a `next` token (TAXII 2.1 §3.4.1: opaque to the client): 1 to
/// [`MAX_NEXT_LEN`] characters of URL-safe base64. What it holds, and whether this node
/// issued it for this collection and this principal, only the egress door can tell (it holds
/// the key). Errors: 400 naming `next`.
pub fn check_next(token: &str) -> Result<String, TaxiiError> {
    let ok = !token.is_empty()
        && token.len() <= MAX_NEXT_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(token.to_owned())
    } else {
        Err(bad(format!(
            "next: not a token issued by this server ({} bytes)",
            token.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_filters() {
        let q = Query::parse(
            &pairs(&[
                ("match[type]", "indicator,malware"),
                ("match[version]", "first,2016-01-01T00:00:00.000Z"),
                ("limit", "5000000"),
                ("added_after", "2016-01-01T00:00:00Z"),
            ]),
            Endpoint::Objects,
        )
        .unwrap();
        assert_eq!(q.types, ["indicator", "malware"]);
        assert_eq!(q.versions.len(), 2);
        assert_eq!(q.limit, MAX_LIMIT);
        assert!(q.added_after.is_some());
    }

    #[test]
    fn refuses_bad_parameters() {
        for (k, v) in [
            ("limit", "0"),
            ("limit", "ten"),
            ("added_after", "yesterday"),
            ("match[version]", "newest"),
            ("match[spec_version]", "2.2"),
            ("match[colour]", "red"),
            ("next", "not/base64url"),
            ("next", ""),
            ("frobnicate", "1"),
        ] {
            let e = Query::parse(&pairs(&[(k, v)]), Endpoint::Objects).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{k}={v}");
            assert!(e.description.contains(k), "{e}");
        }
        let e = Query::parse(&pairs(&[("match[type]", "x")]), Endpoint::Versions).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    /// Issue 24, item 7: a repeated parameter is a 400 naming it, whichever it is.
    #[test]
    fn repeated_parameters_are_refused_by_name() {
        for (name, a, b) in [
            (
                "added_after",
                "2016-01-01T00:00:00Z",
                "2017-01-01T00:00:00Z",
            ),
            ("limit", "1", "1000"),
            ("match[type]", "indicator", "malware"),
            ("match[id]", "indicator--x", "indicator--x"),
            ("match[version]", "first", "last"),
            ("match[spec_version]", "2.1", "2.1"),
            ("next", "abc", "def"),
        ] {
            let e = Query::parse(&pairs(&[(name, a), (name, b)]), Endpoint::Objects).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{name}");
            assert!(
                e.description
                    .contains(&format!("{name:?} is given more than once")),
                "{e}"
            );
            // Once, with both values as a list where the parameter takes a list, is fine.
            if name.starts_with("match[") {
                let both = format!("{a},{b}");
                Query::parse(&pairs(&[(name, &both)]), Endpoint::Objects).unwrap();
            }
        }
        // Different parameters together are not a repetition.
        Query::parse(
            &pairs(&[("match[type]", "indicator"), ("match[id]", "indicator--x")]),
            Endpoint::Objects,
        )
        .unwrap();
    }

    #[test]
    fn timestamps_of_any_year_and_leap_seconds_in_filters() {
        let q = Query::parse(
            &pairs(&[
                (
                    "match[version]",
                    "9999-12-31T23:59:59Z,2016-12-31T23:59:60Z",
                ),
                ("added_after", "0001-01-01T00:00:00Z"),
            ]),
            Endpoint::Objects,
        )
        .unwrap();
        assert_eq!(
            q.versions,
            [
                VersionMatch::At(Timestamp::parse("9999-12-31T23:59:59.000Z").unwrap()),
                VersionMatch::At(Timestamp::parse("2016-12-31T23:59:60Z").unwrap()),
            ]
        );
        assert_eq!(q.added_after.unwrap().as_str(), "0001-01-01T00:00:00Z");
    }
}
