//! The ingest refuses objects with repeated member names (I-JSON, RFC 7493 §2.3; STIX 2.1
//! §3.1), naming the object and the key, and stores the rest of the batch.

use concord_ingest::{Container, IngestOptions, ingest};
use concord_store::{NewCollection, ObjectFilter, PageRequest, Store};

#[test]
fn duplicate_member_names_are_refused_with_object_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = concord_store::SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            ..NewCollection::default()
        })
        .unwrap();
    let t = "2024-01-01T00:00:00.000Z";
    let bundle = format!(
        r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12","objects":[
        {{"type":"identity","spec_version":"2.1","id":"identity--00000000-0000-4000-8000-000000000001","created":"{t}","modified":"{t}","name":"ok"}},
        {{"type":"identity","spec_version":"2.1","id":"identity--00000000-0000-4000-8000-000000000002","created":"{t}","modified":"{t}","name":"grace@corp.cn","contact_information":"x","name":"harmless"}},
        {{"type":"identity","spec_version":"2.1","id":"identity--00000000-0000-4000-8000-000000000003","created":"{t}","modified":"{t}","name":"n","extensions":{{"x":{{"a":1,"a":2}}}}}}
        ]}}"#
    );
    let options = IngestOptions {
        container: Container::Bundle,
        list_accepted: true,
        audit: None,
        provenance: &[],
        settings: &[],
        max_object_size: concord_ingest::Limits::default().max_object_size,
        cancel: None,
        unseen: None,
    };
    let report = ingest(&store, &c.id, bundle.as_bytes(), options, |_| {}).unwrap();
    assert_eq!(report.accepted.len(), 1);
    assert_eq!(report.rejected.len(), 2);
    let r = &report.rejected[0];
    assert_eq!(
        r.id.as_deref(),
        Some("identity--00000000-0000-4000-8000-000000000002")
    );
    assert!(
        r.reasons[0].contains("duplicate member name \"name\" at $"),
        "{:?}",
        r.reasons
    );
    assert!(
        report.rejected[1].reasons[0].contains("\"a\" at $.extensions.x"),
        "{:?}",
        report.rejected[1].reasons
    );
    let page = store
        .entries(
            &c.id,
            &ObjectFilter::default(),
            &PageRequest {
                limit: 10,
                after: None,
            },
            false,
        )
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}
