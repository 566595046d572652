//! Query parameters (TAXII 2.1 §3.4): `added_after`, `limit`, `next` and the `match[…]`
//! filters, parsed and checked once, into typed values.

use base64::Engine as _;
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
    /// `next`, decoded.
    pub next: Option<NextToken>,
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
    /// that this server did not issue. Repeated parameters are joined as one comma list.
    pub fn parse(pairs: &[(String, String)], endpoint: Endpoint) -> Result<Query, TaxiiError> {
        let mut q = Query {
            limit: DEFAULT_LIMIT,
            ..Query::default()
        };
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
                "next" => q.next = Some(NextToken::decode(value)?),
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

/// The opaque `next` token (TAXII 2.1 §3.4.1): the position of the last entry of a page in
/// the `(date_added, id, version, seq)` order. Self-contained, so any server process of the
/// node can continue a paging started on another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextToken {
    /// `date_added` of the last entry, ns.
    pub date_added_ns: i64,
    /// Its object id.
    pub id: String,
    /// Its version: the [`Timestamp::sort_key`] (any year 0001–9999, leap seconds).
    pub version_key: String,
    /// Its sequence number.
    pub seq: i64,
}

impl NextToken {
    /// The token as sent to clients (URL-safe base64 of
    /// `2:<date_added ns>:<seq>:<version key>:<id>`; the version key has no `:`).
    pub fn encode(&self) -> String {
        let text = format!(
            "2:{}:{}:{}:{}",
            self.date_added_ns, self.seq, self.version_key, self.id
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a token made by [`NextToken::encode`], or by an earlier Concord (format `1`,
    /// with the version in `i64` nanoseconds, so pagings started before an upgrade go on).
    /// Errors: 400 for anything else.
    pub fn decode(token: &str) -> Result<NextToken, TaxiiError> {
        let invalid = || bad(format!("next={token:?}: not a token issued by this server"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(5, ':');
        let format = parts.next();
        let mut int = || {
            parts
                .next()
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(invalid)
        };
        let (date_added_ns, seq, version_key) = match format {
            Some("1") => {
                let (d, v, s) = (int()?, int()?, int()?);
                (d, s, Timestamp::from_unix_nanos(v, 9).sort_key())
            }
            Some("2") => {
                let (d, s) = (int()?, int()?);
                let key = parts.next().ok_or_else(invalid)?;
                // Only keys this server makes: they are bound into SQL comparisons.
                let t = Timestamp::from_sort_key(key).map_err(|_| invalid())?;
                (d, s, t.sort_key())
            }
            _ => return Err(invalid()),
        };
        let id = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(invalid)?
            .to_owned();
        Ok(NextToken {
            date_added_ns,
            id,
            version_key,
            seq,
        })
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
            ("next", "garbage"),
            ("frobnicate", "1"),
        ] {
            let e = Query::parse(&pairs(&[(k, v)]), Endpoint::Objects).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{k}={v}");
            assert!(e.description.contains(k), "{e}");
        }
        let e = Query::parse(&pairs(&[("match[type]", "x")]), Endpoint::Versions).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[test]
    fn next_token_round_trips() {
        for v in [
            "0001-01-01T00:00:00Z",
            "2016-12-31T23:59:60.5Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let t = NextToken {
                date_added_ns: 1,
                id: "indicator--a:b".into(),
                version_key: Timestamp::parse(v).unwrap().sort_key(),
                seq: 3,
            };
            assert_eq!(NextToken::decode(&t.encode()).unwrap(), t);
        }
        // A token of the earlier format (version in i64 ns) still reads.
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1:5:-2:3:x--y");
        let t = NextToken::decode(&old).unwrap();
        assert_eq!((t.date_added_ns, t.seq, t.id.as_str()), (5, 3, "x--y"));
        assert_eq!(t.version_key, "19691231T235959.999999998Z");
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("2:5:3:x' OR 1:x--y");
        assert!(NextToken::decode(&forged).is_err());
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
