//! Tombstones (issue 21, item 4): which object versions that an audience received were
//! deleted from a collection since it last asked, so that a peer pulling the collection
//! deletes its copies too.
//!
//! TAXII 2.1 has no way to learn of a deletion (§5.7 deletes; nothing reports it), so this
//! is a Concord resource beside the collection's objects. It is built from the audit log,
//! which already names every deleted version (direction `delete`: a TAXII DELETE, or a
//! deletion by a received tombstone, so a chain of nodes passes it on) and every version
//! that left to each partner. A tombstone is given to an audience only for a version the
//! log shows it received from this collection (`sent` or `rewritten`, before the
//! deletion): a tombstone never names an id the partner was not given, and a partner learns
//! nothing of deletions of what it never saw. Its cursor is sealed like a TAXII `next`
//! token (bound to the collection and the audience) and it reads up to the log's head in
//! one request, so neither the cursor nor a `more` flag tells how busy the node is.

use std::collections::HashSet;

use concord_policy::egress::PartnerProfile;
use concord_stix::validate::{ObjectKind, kind_of};
use concord_store::audit::Decision;
use concord_store::{AuditQuery, Cursor, TransferEntry};

use crate::{Audience, Door, Egress, EgressError, collection_sharing};

/// Audit entries read per step of a scan.
const SCAN_STEP: usize = 1000;
/// Tombstones per answer at most (then `more`).
pub const MAX_TOMBSTONES: usize = 1000;
/// The `id` a tombstone cursor carries in place of an object id, so that a TAXII `next`
/// token is never taken for one (an object id always has `--`).
const MARK: &str = "tombstones";

/// One deleted object version, as the audience received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// The id the audience received (a keyed id for an SCO it received rewritten).
    pub id: String,
    /// The version (TAXII 2.1 §3.4.1): `modified` (else `created`) as the producer wrote
    /// it; for an object without either, the `date_added` it had here
    /// ([`concord_store::Entry::version`]), which names no version on another node (see
    /// [`names_date_added`]).
    pub version: String,
    /// The deleted version row ([`concord_store::Entry::vid`]): what the audit log names.
    pub vid: i64,
}

/// Whether the versions of the object `id` are named by their `date_added` rather than by
/// a version of their own: an SCO has neither `modified` nor `created` (STIX 2.1 §6.1, its
/// common properties), so its TAXII version (TAXII 2.1 §3.4.1) is the `date_added` of the
/// node that holds it, different on every node. A tombstone of such an object names it by
/// the sender's `date_added`: the receiver matches it by id (an SCO is not versioned, STIX
/// 2.1 §3.6), among its own copies without a version of their own.
pub fn names_date_added(id: &str) -> bool {
    id.split_once("--")
        .is_some_and(|(t, _)| kind_of(t) == ObjectKind::Sco)
}

/// An answer of [`Egress::tombstones`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TombstonePage {
    /// The deleted versions, in the order they were deleted.
    pub tombstones: Vec<Tombstone>,
    /// Whether more follow at once (only when [`MAX_TOMBSTONES`] were given).
    pub more: bool,
    /// The cursor to ask with next time (opaque, sealed).
    pub next: String,
}

impl Egress {
    /// The versions of `collection_id` deleted after the cursor `after` (from the start of
    /// the log without one) that `audience` received from the collection before they were
    /// deleted; recorded in the audit log (door `taxii-tombstones`, one record per
    /// tombstone, direction `egress`) before they are returned. The operator receives every
    /// deletion. Errors: [`EgressError::BadCursor`] for a cursor not sealed for this
    /// collection and audience, the store.
    pub fn tombstones(
        &self,
        audience: &Audience,
        collection_id: &str,
        after: Option<&str>,
    ) -> Result<TombstonePage, EgressError> {
        let page = self.tombstones_unrecorded(audience, collection_id, after, None)?;
        let door = Door {
            door: "taxii-tombstones",
            partner: audience.name(),
            person: self.person(),
            collection: collection_id,
            policy_version: &self.policy().version,
        };
        let records: Vec<_> = page
            .tombstones
            .iter()
            .map(|t| {
                door.record(
                    "egress",
                    t.vid,
                    &t.id,
                    t.version.clone(),
                    "sent",
                    Vec::new(),
                )
            })
            .collect();
        if !records.is_empty() {
            self.store.append_audit(&records)?;
        }
        Ok(page)
    }

    /// What [`Egress::tombstones`] answers, without recording it: for a caller that sends
    /// each tombstone on its own and records it as it leaves (sync push sends each as a
    /// TAXII DELETE, door `sync-push-delete`). `via`: only versions the audience received
    /// through this door (`sync-push`: what was pushed to it), rather than through any.
    /// The same `after` gives the same tombstones first (the log only grows), so a caller
    /// may resume within an answer by skipping those it already sent. Errors: as
    /// [`Egress::tombstones`].
    pub fn tombstones_unrecorded(
        &self,
        audience: &Audience,
        collection_id: &str,
        after: Option<&str>,
        via: Option<&str>,
    ) -> Result<TombstonePage, EgressError> {
        let mut seq = match after {
            Some(t) => {
                let c = self.open_cursor(t, collection_id, audience)?;
                if c.id != MARK {
                    return Err(EgressError::BadCursor);
                }
                c.seq
            }
            None => 0,
        };
        // Outside the partner's agreement (IEP 2.0 dates) nothing flows, deletions neither:
        // none now, and the cursor stays where it was, so they are told if the agreement
        // is renewed.
        if let Audience::Partner(p) = audience
            && self
                .agreement_stop(p, concord_stix::Timestamp::now_micros().unix_nanos())?
                .is_some()
        {
            let next = self.seal_cursor(
                &Cursor {
                    date_added_ns: 0,
                    id: MARK.to_owned(),
                    version_key: String::new(),
                    seq,
                },
                collection_id,
                audience,
            )?;
            return Ok(TombstonePage {
                tombstones: Vec::new(),
                more: false,
                next,
            });
        }
        let sharing = match audience {
            Audience::Partner(_) => Some(collection_sharing(self.store.as_ref(), collection_id)?),
            Audience::Operator(_) => None,
        };
        let mut found: Vec<Tombstone> = Vec::new();
        let mut given = HashSet::new();
        let mut more = false;
        'scan: loop {
            let entries = self.store.audit_entries(&AuditQuery {
                after_seq: seq,
                limit: SCAN_STEP,
                ..AuditQuery::default()
            })?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                break;
            };
            debug_assert!(last > seq);
            for e in &entries {
                if e.direction == "delete" && e.collection == collection_id {
                    for item in e.decoded().unwrap_or_default() {
                        if item.decision != Decision::Deleted || !given.insert(item.vid) {
                            continue;
                        }
                        if let Some(t) =
                            self.tombstone(audience, sharing.as_ref(), e, item.vid, via)?
                        {
                            found.push(t);
                        }
                    }
                }
                seq = e.seq;
                if found.len() >= MAX_TOMBSTONES {
                    more = true;
                    break 'scan;
                }
            }
            if entries.len() < SCAN_STEP {
                break;
            }
            seq = last;
        }
        let next = self.seal_cursor(
            &Cursor {
                date_added_ns: 0,
                id: MARK.to_owned(),
                version_key: String::new(),
                seq,
            },
            collection_id,
            audience,
        )?;
        Ok(TombstonePage {
            tombstones: found,
            more,
            next,
        })
    }

    /// The tombstone of the version row `vid` deleted by `deletion`, as `audience` received
    /// it; `None` when it did not receive it from this collection before the deletion
    /// (through the door `via`, when given).
    fn tombstone(
        &self,
        audience: &Audience,
        sharing: Option<&concord_policy::egress::CollectionSharing>,
        deletion: &TransferEntry,
        vid: i64,
        via: Option<&str>,
    ) -> Result<Option<Tombstone>, EgressError> {
        let Some(name) = self.store.audit_names(&[vid])?.into_iter().next() else {
            return Ok(None);
        };
        let partner: &PartnerProfile = match audience {
            Audience::Operator(_) => {
                return Ok(Some(Tombstone {
                    id: name.object_id,
                    version: name.version,
                    vid,
                }));
            }
            Audience::Partner(p) => p,
        };
        // How it left to this partner from this collection, if it did: as stored, or
        // rewritten (then an SCO carries the partner's keyed id).
        let mut how = None;
        let mut before = Some(deletion.seq);
        'entries: loop {
            let entries = self.store.audit_entries(&AuditQuery {
                before_seq: before,
                partner: Some(partner.name.clone()),
                vids: vec![vid],
                limit: SCAN_STEP,
                newest_first: true,
                ..AuditQuery::default()
            })?;
            for e in &entries {
                if e.direction != "egress"
                    || e.collection != deletion.collection
                    || via.is_some_and(|door| e.door != door)
                {
                    continue;
                }
                for item in e.decoded().unwrap_or_default() {
                    if item.vid == vid
                        && matches!(item.decision, Decision::Sent | Decision::Rewritten)
                    {
                        how = Some(item.decision);
                        break 'entries;
                    }
                }
            }
            match entries.last() {
                Some(e) if entries.len() == SCAN_STEP => before = Some(e.seq),
                _ => break,
            }
        }
        let id = match how {
            None => return Ok(None),
            Some(Decision::Rewritten) => {
                let kind = name
                    .object_id
                    .split_once("--")
                    .map(|(t, _)| kind_of(t))
                    .unwrap_or(ObjectKind::Custom);
                match (kind, sharing) {
                    (ObjectKind::Sco, Some(s)) => {
                        match self.audience_id(s, partner, &name.object_id) {
                            Some(id) => id,
                            None => return Ok(None),
                        }
                    }
                    _ => name.object_id,
                }
            }
            Some(_) => name.object_id,
        };
        Ok(Some(Tombstone {
            id,
            version: name.version,
            vid,
        }))
    }
}
