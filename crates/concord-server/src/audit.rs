//! What the doors record in the audit log (issue 5, item 7): one [`AuditRecord`] per object
//! version that left the node (sent, rewritten or withheld, with the transformations) or came
//! in. The records of one page or one batch are appended with one
//! [`concord_store::Store::append_audit`] call.

use concord_ingest::{
    Accepted, Container, IngestError, IngestOptions, IngestReport, ingest, ingest_creating,
};
use concord_policy::egress::Decision;
use concord_store::{AuditRecord, Entry};

use crate::Principal;

/// The policy version recorded while the node has no versioned policy of its own: the TLP
/// gate of this release.
pub const BASE_POLICY_VERSION: &str = "tlp-v1";

/// Who crossed the door, as the log names it: the partner, or `admin` (the admin token).
pub fn principal_name(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Partner(p) => p.profile.name.clone(),
    }
}

/// Where an egress or ingress happened, by whom, under which policy version.
#[derive(Clone, Debug)]
pub struct Door<'a> {
    /// `taxii-objects`, `taxii-object`, `taxii-versions`, `taxii-manifest`, `taxii-post`,
    /// `export`, `import`; the web UI's `web-list`, `web-object` (a partner's pages) and
    /// `web-import`.
    pub door: &'a str,
    /// Partner name, `admin` or `operator`.
    pub partner: &'a str,
    /// Collection id.
    pub collection: &'a str,
    /// Version of the policy applied.
    pub policy_version: &'a str,
}

impl Door<'_> {
    fn record(&self, direction: &str, id: &str, modified: String, decision: &str) -> AuditRecord {
        AuditRecord {
            direction: direction.to_owned(),
            door: self.door.to_owned(),
            partner: self.partner.to_owned(),
            collection: self.collection.to_owned(),
            object_id: id.to_owned(),
            modified,
            decision: decision.to_owned(),
            transformations: Vec::new(),
            policy_version: self.policy_version.to_owned(),
        }
    }

    /// The record of one entry that the egress function decided on (`None`: sent as
    /// stored, e.g. to the operator).
    pub fn egress(&self, entry: &Entry, decision: Option<&Decision>) -> AuditRecord {
        let mut r = self.record("egress", &entry.id, entry.version(), "sent");
        match decision {
            None | Some(Decision::Unchanged) => {}
            Some(Decision::Rewritten { changes, .. }) => {
                r.decision = "rewritten".to_owned();
                r.transformations = changes.clone();
            }
            Some(Decision::Withheld { reason }) => {
                r.decision = "withheld".to_owned();
                r.transformations = vec![reason.clone()];
            }
        }
        r
    }

    /// The records of the objects an ingest accepted.
    pub fn ingress(&self, accepted: &[Accepted]) -> Vec<AuditRecord> {
        accepted
            .iter()
            .map(|a| {
                let decision = if a.added { "added" } else { "already-present" };
                self.record("ingress", &a.id, a.version.clone(), decision)
            })
            .collect()
    }
}

/// Imports one STIX bundle (`input`) into `collection_id` through the one ingest, with one
/// ingress audit record per accepted object version at `door`, by `who`, appended in chunks
/// inside the import's own transaction (bounded memory; durable with the objects or not at
/// all). What `concord import` and the web UI's import both do; `progress` gets the count of
/// objects read. Errors: as [`ingest`] (nothing stored).
pub fn import_bundle(
    store: &dyn concord_store::Store,
    collection_id: &str,
    door: &str,
    who: &str,
    input: impl std::io::Read,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let door = Door {
        door,
        partner: who,
        collection: collection_id,
        policy_version: BASE_POLICY_VERSION,
    };
    let make = |accepted: &[Accepted]| door.ingress(accepted);
    ingest(store, collection_id, input, import_options(&make), progress)
}

/// As [`import_bundle`], into a collection that does not exist yet: `collection` is created
/// in the import's transaction, so a failed import leaves no empty collection behind.
/// Errors: as [`import_bundle`]; the collection cannot be created (alias taken or invalid).
pub fn import_bundle_creating(
    store: &dyn concord_store::Store,
    collection: &concord_store::Collection,
    door: &str,
    who: &str,
    input: impl std::io::Read,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let door = Door {
        door,
        partner: who,
        collection: &collection.id,
        policy_version: BASE_POLICY_VERSION,
    };
    let make = |accepted: &[Accepted]| door.ingress(accepted);
    ingest_creating(store, collection, input, import_options(&make), progress)
}

fn import_options<'a>(make: &'a concord_ingest::AuditRecords<'a>) -> IngestOptions<'a> {
    IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: Some(make),
        provenance: None,
        settings: &[],
    }
}
