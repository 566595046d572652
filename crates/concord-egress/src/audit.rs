//! What the doors record in the audit log: one [`AuditRecord`] per object version that left
//! the node (sent, rewritten or withheld, with the transformations), came in, or was deleted.
//! The records of one page or one batch are appended with one
//! [`concord_store::Store::append_transfer`] call, before anything leaves: the store keeps
//! them as one entry for the transfer (issue 17), with [`transfer_digest`] of what left.

use concord_store::{AuditRecord, Entry};

/// The policy version recorded where no egress policy applies (the operator's own reads,
/// ingress): the TLP gate of the first release.
pub const BASE_POLICY_VERSION: &str = "tlp-v1";

/// Where an egress or ingress happened, by whom, under which policy version.
#[derive(Clone, Debug)]
pub struct Door<'a> {
    /// `taxii-objects`, `taxii-object`, `taxii-versions`, `taxii-manifest`, `taxii-post`,
    /// `taxii-delete`, `taxii-tombstones`, `export`, `import`, `sync-push`,
    /// `sync-push-delete`, `sync-sightings`, `sync-pull`, `sync-tombstones`,
    /// `api-match` (compiling a partner's set), `api-match-hits` (the ids a match answer
    /// names); the web UI's `web-list`, `web-object`, `web-graph`, `web-import`.
    pub door: &'a str,
    /// Partner name, `admin` or `operator`.
    pub partner: &'a str,
    /// Who acted: `user:NAME`, `admin-token`, `operator`, `key:KEY_ID`
    /// (`concord_server::roles::Actor::audit_name`); `None` where no one acts.
    pub person: Option<&'a str>,
    /// Collection id.
    pub collection: &'a str,
    /// Version of the policy applied.
    pub policy_version: &'a str,
}

impl Door<'_> {
    /// One record of this door.
    /// `vid`: the version row ([`Entry::vid`], `concord_store::WriteBatch::last_vid`).
    pub fn record(
        &self,
        direction: &str,
        vid: i64,
        id: &str,
        version: String,
        decision: &str,
        transformations: Vec<String>,
    ) -> AuditRecord {
        AuditRecord {
            vid,
            direction: direction.to_owned(),
            door: self.door.to_owned(),
            partner: self.partner.to_owned(),
            person: self.person.map(str::to_owned),
            collection: self.collection.to_owned(),
            object_id: id.to_owned(),
            modified: version,
            decision: decision.to_owned(),
            transformations,
            policy_version: self.policy_version.to_owned(),
        }
    }

    /// The record of an entry sent as stored (to the operator).
    pub fn sent(&self, entry: &Entry) -> AuditRecord {
        self.record(
            "egress",
            entry.vid,
            &entry.id,
            entry.version(),
            "sent",
            Vec::new(),
        )
    }

    /// The record of one object version an ingest accepted (`added`, else
    /// `already-present`).
    pub fn ingress(&self, vid: i64, id: &str, version: &str, added: bool) -> AuditRecord {
        let decision = if added { "added" } else { "already-present" };
        self.record("ingress", vid, id, version.to_owned(), decision, Vec::new())
    }
}

/// SHA-256 of what left in one transfer, in order: for each object its id, version and
/// bytes (the body as sent; none when only ids went, as in a manifest), each as an 8-byte
/// big-endian length and the bytes (a body absent: length `u64::MAX`). What the audit entry
/// keeps as `digest`: whoever holds the bytes a partner received can show they are the ones
/// recorded.
pub fn transfer_digest<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (id, version, body) in objects {
        for part in [Some(id), Some(version), body] {
            match part {
                Some(p) => {
                    h.update((p.len() as u64).to_be_bytes());
                    h.update(p.as_bytes());
                }
                None => h.update(u64::MAX.to_be_bytes()),
            }
        }
    }
    h.finalize().into()
}

/// [`transfer_digest`] of what a door returns.
pub fn sent_digest(sent: &[crate::Sent]) -> [u8; 32] {
    transfer_digest(
        sent.iter()
            .map(|s| (s.id.as_str(), s.version.as_str(), s.body.as_deref())),
    )
}
