//! The audit log (issue 5, item 7): every egress and every ingress, append-only and
//! hash-chained.
//!
//! Each entry carries the SHA-256 of the entry before it (`prev_hash`) and its own `hash`
//! over the canonical serialisation of its fields plus `prev_hash` ([`entry_hash`]). The
//! first entry's `prev_hash` is [`GENESIS_HASH`]. Backends assign `seq` (1, 2, 3… without
//! gaps), the time and both hashes while holding their write serialisation, so the chain is
//! linear even with several processes on one database. [`verify_chain`] is the one place
//! that checks a chain.

use sha2::Digest;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller records: one object version that crossed a door.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// `egress` or `ingress`.
    pub direction: String,
    /// The door: `taxii-objects`, `taxii-object`, `taxii-versions`, `taxii-manifest`,
    /// `taxii-post`, `export` or `import`.
    pub door: String,
    /// The partner's name, or `admin` (TAXII with the admin token) or `operator` (the CLI).
    pub partner: String,
    /// Collection id.
    pub collection: String,
    /// Object id.
    pub object_id: String,
    /// The version (`modified`, else `created`, else `date_added`).
    pub modified: String,
    /// What happened: `sent`, `rewritten`, `withheld`, `added`, `already-present`.
    pub decision: String,
    /// The transformations applied (or, when withheld, why).
    pub transformations: Vec<String>,
    /// The version of the policy applied.
    pub policy_version: String,
}

/// A stored entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended, nanoseconds since the epoch.
    pub time_ns: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// `hash` of the entry before (hex), [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of the canonical serialisation of this entry's fields and `prev_hash`.
    pub hash: String,
}

/// SHA-256 (lower-case hex) over the canonical serialisation of an entry: the JSON array
/// `[seq, time_ns, direction, door, partner, collection, object_id, modified, decision,
/// [transformations…], policy_version, prev_hash]`, compact, as `serde_json` writes it.
pub fn entry_hash(seq: i64, time_ns: i64, r: &AuditRecord, prev_hash: &str) -> String {
    let canonical = serde_json::json!([
        seq,
        time_ns,
        r.direction,
        r.door,
        r.partner,
        r.collection,
        r.object_id,
        r.modified,
        r.decision,
        r.transformations,
        r.policy_version,
        prev_hash
    ]);
    let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the entries that follow `last` (`None`: an empty log): what backends append.
pub(crate) fn chain_after(
    last: Option<(i64, String)>,
    time_ns: i64,
    records: &[AuditRecord],
) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
    records
        .iter()
        .map(|r| {
            seq += 1;
            let hash = entry_hash(seq, time_ns, r, &prev);
            AuditEntry {
                seq,
                time_ns,
                record: r.clone(),
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Reads the stored `transformations` column (a JSON array of strings). Text that is not
/// one (a damaged or edited row) is kept as one string, so that verification reports the
/// entry as edited instead of failing to read the log.
pub(crate) fn parse_transformations(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|_| vec![text.to_owned()])
}

/// How a chain is broken: the first bad entry and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The entry's fields no longer give its hash.
    #[error("entry {seq} was edited: its fields do not hash to its stored hash")]
    Edited {
        /// The entry.
        seq: i64,
    },
    /// Entries are missing before this one (a gap in the sequence, or the chain does not
    /// start at 1 with the genesis hash).
    #[error("entries before {seq} were deleted: {detail}")]
    Deleted {
        /// The first entry after the missing ones.
        seq: i64,
        /// What shows it.
        detail: String,
    },
    /// The entry links to an entry that is not the one before it, but that is in the log:
    /// entries were moved.
    #[error(
        "entry {seq} was reordered: its prev_hash is the hash of entry {links_to}, not of entry {previous}"
    )]
    Reordered {
        /// The entry.
        seq: i64,
        /// The entry its `prev_hash` names.
        links_to: i64,
        /// The entry before it in the log.
        previous: i64,
    },
    /// The entry does not link to the one before it, nor to any entry in the log.
    #[error(
        "entry {seq} does not follow entry {previous}: prev_hash mismatch (an entry was deleted, or edited and rehashed)"
    )]
    Broken {
        /// The entry.
        seq: i64,
        /// The entry before it in the log.
        previous: i64,
    },
}

impl AuditError {
    /// The first bad entry.
    pub fn seq(&self) -> i64 {
        match self {
            AuditError::Edited { seq }
            | AuditError::Deleted { seq, .. }
            | AuditError::Reordered { seq, .. }
            | AuditError::Broken { seq, .. } => *seq,
        }
    }

    /// One word: `edited`, `deleted`, `reordered`, `broken`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditError::Edited { .. } => "edited",
            AuditError::Deleted { .. } => "deleted",
            AuditError::Reordered { .. } => "reordered",
            AuditError::Broken { .. } => "broken",
        }
    }
}

/// Checks a whole audit log, in the order the store returns it (by `seq`): the first entry
/// is seq 1 with the genesis `prev_hash`, every next seq is one more, every `prev_hash` is the
/// hash of the entry before, and every entry's fields give its hash. Names the first bad entry.
///
/// A truncated tail (the newest entries deleted) cannot be told from a shorter log by the
/// chain alone.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<(), AuditError> {
    verify_chain_after(None, entries)
}

/// [`verify_chain`] for a log read page by page: `entries` continue the chain after
/// `previous` (the last entry of the page before, already verified; `None` for the first
/// page). Memory stays one page, whatever the length of the log.
pub fn verify_chain_after(
    previous: Option<&AuditEntry>,
    entries: &[AuditEntry],
) -> Result<(), AuditError> {
    let mut previous = previous;
    for e in entries {
        let (want_seq, want_prev) = match previous {
            None => (1, GENESIS_HASH),
            Some(p) => (p.seq + 1, p.hash.as_str()),
        };
        if e.prev_hash != want_prev
            && let Some(other) = entries
                .iter()
                .find(|o| o.hash == e.prev_hash && !std::ptr::eq(*o, e))
        {
            return Err(AuditError::Reordered {
                seq: e.seq,
                links_to: other.seq,
                previous: previous.map_or(0, |p| p.seq),
            });
        }
        if e.seq != want_seq {
            return Err(AuditError::Deleted {
                seq: e.seq,
                detail: format!("expected seq {want_seq}, found {}", e.seq),
            });
        }
        if e.prev_hash != want_prev {
            return Err(match previous {
                None => AuditError::Deleted {
                    seq: e.seq,
                    detail: "the first entry does not start the chain".to_owned(),
                },
                Some(p) => AuditError::Broken {
                    seq: e.seq,
                    previous: p.seq,
                },
            });
        }
        if entry_hash(e.seq, e.time_ns, &e.record, &e.prev_hash) != e.hash {
            return Err(AuditError::Edited { seq: e.seq });
        }
        previous = Some(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: "acme".into(),
            collection: "c1".into(),
            object_id: format!("indicator--{i}"),
            modified: "2024-01-01T00:00:00.000Z".into(),
            decision: "sent".into(),
            transformations: vec![],
            policy_version: "tlp-v1".into(),
        }
    }

    fn log(n: usize) -> Vec<AuditEntry> {
        let records: Vec<_> = (0..n).map(record).collect();
        let first = chain_after(None, 1, &records[..2]);
        let last = first.last().map(|e| (e.seq, e.hash.clone()));
        let mut all = first;
        all.extend(chain_after(last, 2, &records[2..]));
        all
    }

    #[test]
    fn intact() {
        assert_eq!(verify_chain(&log(5)), Ok(()));
        assert_eq!(verify_chain(&[]), Ok(()));
    }

    #[test]
    fn verified_page_by_page_as_a_whole() {
        let l = log(7);
        assert_eq!(verify_chain_after(None, &l[..3]), Ok(()));
        assert_eq!(verify_chain_after(Some(&l[2]), &l[3..]), Ok(()));
        let mut bad = l.clone();
        bad[5].record.decision = "withheld".into();
        assert_eq!(
            verify_chain_after(Some(&bad[2]), &bad[3..]),
            Err(AuditError::Edited { seq: 6 })
        );
        // A page that does not continue the one before.
        assert_eq!(
            verify_chain_after(Some(&l[1]), &l[3..]).map_err(|e| e.kind()),
            Err("deleted")
        );
    }

    #[test]
    fn edited() {
        let mut l = log(5);
        l[2].record.partner = "other".into();
        assert_eq!(verify_chain(&l), Err(AuditError::Edited { seq: 3 }));
    }

    #[test]
    fn edited_and_rehashed() {
        let mut l = log(5);
        l[2].record.partner = "other".into();
        l[2].hash = entry_hash(3, l[2].time_ns, &l[2].record, &l[2].prev_hash);
        assert_eq!(
            verify_chain(&l),
            Err(AuditError::Broken {
                seq: 4,
                previous: 3
            })
        );
    }

    #[test]
    fn deleted() {
        let mut l = log(5);
        l.remove(2);
        assert_eq!(
            verify_chain(&l).map_err(|e| (e.kind(), e.seq())),
            Err(("deleted", 4))
        );
        let mut l = log(5);
        l.remove(0);
        assert_eq!(
            verify_chain(&l).map_err(|e| (e.kind(), e.seq())),
            Err(("deleted", 2))
        );
    }

    #[test]
    fn reordered() {
        // Rows swapped, seq numbers kept in place.
        let mut l = log(5);
        l.swap(1, 2);
        let (a, b) = (l[1].seq, l[2].seq);
        l[1].seq = b;
        l[2].seq = a;
        assert_eq!(
            verify_chain(&l),
            Err(AuditError::Reordered {
                seq: 2,
                links_to: 3,
                previous: 1
            })
        );
        // Rows swapped with their seq numbers.
        let mut l = log(5);
        l.swap(1, 2);
        assert_eq!(verify_chain(&l).map_err(|e| e.kind()), Err("reordered"));
    }
}
