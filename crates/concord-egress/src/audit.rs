//! What the doors record in the audit log: one [`AuditRecord`] per object version that left
//! the node (sent, rewritten or withheld, with the transformations), came in, or was deleted.
//! The records of one page or one batch are appended with one
//! [`concord_store::Store::append_audit`] call, before anything leaves.

use concord_store::{AuditRecord, Entry};

/// The policy version recorded where no egress policy applies (the operator's own reads,
/// ingress): the TLP gate of the first release.
pub const BASE_POLICY_VERSION: &str = "tlp-v1";

/// Where an egress or ingress happened, by whom, under which policy version.
#[derive(Clone, Debug)]
pub struct Door<'a> {
    /// `taxii-objects`, `taxii-object`, `taxii-versions`, `taxii-manifest`, `taxii-post`,
    /// `taxii-delete`, `export`, `import`, `sync-push`, `sync-sightings`, `sync-pull`,
    /// `api-match`; the web UI's `web-list`, `web-object`, `web-graph`, `web-import`.
    pub door: &'a str,
    /// Partner name, `admin` or `operator`.
    pub partner: &'a str,
    /// Collection id.
    pub collection: &'a str,
    /// Version of the policy applied.
    pub policy_version: &'a str,
}

impl Door<'_> {
    /// One record of this door.
    pub fn record(
        &self,
        direction: &str,
        id: &str,
        version: String,
        decision: &str,
        transformations: Vec<String>,
    ) -> AuditRecord {
        AuditRecord {
            direction: direction.to_owned(),
            door: self.door.to_owned(),
            partner: self.partner.to_owned(),
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
        self.record("egress", &entry.id, entry.version(), "sent", Vec::new())
    }

    /// The record of one object version an ingest accepted (`added`, else
    /// `already-present`).
    pub fn ingress(&self, id: &str, version: &str, added: bool) -> AuditRecord {
        let decision = if added { "added" } else { "already-present" };
        self.record("ingress", id, version.to_owned(), decision, Vec::new())
    }
}
