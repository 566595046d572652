//! Ingress records of the audit log: TAXII POST, `concord import`, the web UI's import. What
//! leaves is recorded by the egress door ([`concord_egress`]); [`Door`] is its record maker.

pub use concord_egress::{BASE_POLICY_VERSION, Door};
use concord_ingest::{
    Accepted, Container, IngestError, IngestOptions, IngestReport, ingest, ingest_creating,
};
use concord_store::AuditRecord;

use crate::Principal;

/// Who crossed the door, as the log names it: the partner, or `admin` (the admin token).
pub fn principal_name(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Partner(p) => p.profile.name.clone(),
    }
}

/// Who acted, as the audit entry's `person` names it (issue 20): `admin-token` for the admin
/// token, `key:KEY_ID` for a partner's API key. (A named user's requests are named by its
/// [`crate::roles::Actor::audit_name`], `user:NAME`.)
pub fn person_of(principal: &Principal) -> String {
    match principal {
        Principal::Admin => crate::roles::Actor::AdminToken.audit_name(),
        Principal::Partner(p) => crate::roles::Actor::PartnerKey {
            key_id: p.key_id.clone(),
        }
        .audit_name(),
    }
}

/// The door of an ingress (`import`, `web-import`, `taxii-post`) by `who` (acting: `person`)
/// into a collection: ingress is recorded under the base policy version (no egress policy
/// applies).
pub fn ingress_door<'a>(
    door: &'a str,
    who: &'a str,
    person: Option<&'a str>,
    collection_id: &'a str,
) -> Door<'a> {
    Door {
        door,
        partner: who,
        person,
        collection: collection_id,
        policy_version: BASE_POLICY_VERSION,
    }
}

/// The records of the objects an ingest accepted, at `door` (also counted in
/// `concord_ingest_objects_total`, see [`crate::ops`]).
pub fn ingress_records(door: &Door<'_>, accepted: &[Accepted]) -> Vec<AuditRecord> {
    let added = accepted.iter().filter(|a| a.added).count() as u64;
    for (result, n) in [
        ("added", added),
        ("already-present", accepted.len() as u64 - added),
    ] {
        metrics::counter!("concord_ingest_objects_total", "door" => door.door.to_owned(), "result" => result)
            .increment(n);
    }
    accepted
        .iter()
        .map(|a| door.ingress(a.vid, &a.id, &a.version, a.added))
        .collect()
}

/// Imports one STIX bundle (`input`) into `collection_id` through the one ingest, with one
/// ingress audit record per accepted object version at `door`, by `who` (`person` acting),
/// appended in chunks
/// inside the import's own transaction (bounded memory; durable with the objects or not at
/// all). What `concord import` and the web UI's import both do; `progress` gets the count of
/// objects read; objects over `max_object_size` bytes fail the import. Errors: as [`ingest`]
/// (nothing stored).
#[allow(clippy::too_many_arguments)]
pub fn import_bundle(
    store: &dyn concord_store::Store,
    collection_id: &str,
    door: &str,
    who: &str,
    person: Option<&str>,
    input: impl std::io::Read,
    max_object_size: u64,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let door = ingress_door(door, who, person, collection_id);
    let make = |accepted: &[Accepted]| ingress_records(&door, accepted);
    ingest(
        store,
        collection_id,
        input,
        import_options(&make, max_object_size),
        progress,
    )
}

/// As [`import_bundle`], into a collection that does not exist yet: `collection` is created
/// in the import's transaction, so a failed import leaves no empty collection behind.
/// Errors: as [`import_bundle`]; the collection cannot be created (alias taken or invalid).
#[allow(clippy::too_many_arguments)]
pub fn import_bundle_creating(
    store: &dyn concord_store::Store,
    collection: &concord_store::Collection,
    door: &str,
    who: &str,
    person: Option<&str>,
    input: impl std::io::Read,
    max_object_size: u64,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let door = ingress_door(door, who, person, &collection.id);
    let make = |accepted: &[Accepted]| ingress_records(&door, accepted);
    ingest_creating(
        store,
        collection,
        input,
        import_options(&make, max_object_size),
        progress,
    )
}

fn import_options<'a>(
    make: &'a concord_ingest::AuditRecords<'a>,
    max_object_size: u64,
) -> IngestOptions<'a> {
    IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: Some(make),
        provenance: &[],
        settings: &[],
        max_object_size,
        cancel: None,
        unseen: None,
    }
}
