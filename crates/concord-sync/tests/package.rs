//! Transfer packages (issue 22) over real SQLite files. Read from media an attacker may
//! write (attack F6): what is ingested is what was verified. A package is made by hand here
//! (indicators, one zstd file, a signed manifest), verified, then its object file is
//! replaced by name or rewritten in place before the import. The chain: a package is taken
//! once, after the one it names; a fork or a missing package is named. A crash between
//! writing a package and recording it reuses no sequence number, and the receivers of
//! either chain take it to its end.

use std::io::Write as _;
use std::path::Path;

use concord_store::node_key::{NodeKey, hex};
use concord_store::{Collection, NewCollection, SqliteStore, Store};
use concord_sync::package::{
    Compression, Counts, CursorRange, Destination, FORMAT, ImportLimits, MANIFEST, Manifest,
    PackageCollection, PackageFile, Producer, Recipient, SIGNATURE, WriteOptions, fingerprint,
    import_package, verify_package, write_unrecorded,
};
use sha2::Digest as _;

const FILE: &str = "objects-000001.json.zst";

fn indicator_id(n: u32) -> String {
    format!("indicator--{n:08x}-8ff6-4a8b-9c2f-6e5a3b1f0d11")
}

/// A zstd-compressed bundle of indicators `ids`, and its size unpacked.
fn bundle(ids: &[u32]) -> (Vec<u8>, u64) {
    let objects: Vec<serde_json::Value> = ids
        .iter()
        .map(|&n| {
            serde_json::json!({"type": "indicator", "spec_version": "2.1", "id": indicator_id(n),
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                "pattern": format!("[domain-name:value = 'n{n}.example']"),
                "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"})
        })
        .collect();
    let text = serde_json::json!({"type": "bundle",
        "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d14", "objects": objects})
    .to_string();
    (
        zstd::stream::encode_all(text.as_bytes(), 3).unwrap(),
        text.len() as u64,
    )
}

/// Writes package 1 of indicators 1 and 2 from `producer` for `recipient` into `dir`.
fn make(dir: &Path, producer: &NodeKey, recipient: &NodeKey) {
    make_at(dir, producer, recipient, 1, None, &[1, 2]);
}

/// Writes package `sequence` of indicators `ids` from `producer` for `recipient` into
/// `dir`, naming `previous` (sequence, digest) as its previous; returns its digest.
fn make_at(
    dir: &Path,
    producer: &NodeKey,
    recipient: &NodeKey,
    sequence: i64,
    previous: Option<(i64, &str)>,
    ids: &[u32],
) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let (bytes, unpacked) = bundle(ids);
    std::fs::write(dir.join(FILE), &bytes).unwrap();
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        producer: Producer {
            name: "A".to_owned(),
            public_key: hex(&producer.public()),
            fingerprint: fingerprint(&producer.public()),
        },
        partner: "b".to_owned(),
        recipient: Recipient {
            public_key: hex(&recipient.public()),
            fingerprint: fingerprint(&recipient.public()),
        },
        collection: PackageCollection {
            id: "c1".to_owned(),
            title: "intel".to_owned(),
        },
        created: "2026-01-01T00:00:00Z".to_owned(),
        sequence,
        previous_sequence: previous.map_or(0, |p| p.0),
        previous: previous.map(|p| p.1.to_owned()),
        policy_version: "test@0".to_owned(),
        compression: Compression::Zstd,
        cursor: CursorRange {
            after: None,
            through: None,
        },
        counts: Counts {
            objects: ids.len() as u64,
            ..Counts::default()
        },
        files: vec![PackageFile {
            name: FILE.to_owned(),
            objects: ids.len() as u64,
            bytes: bytes.len() as u64,
            unpacked_bytes: unpacked,
            sha256: hex(&sha2::Sha256::digest(&bytes)),
        }],
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(dir.join(MANIFEST), &text).unwrap();
    std::fs::write(
        dir.join(SIGNATURE),
        format!("{}\n", hex(&producer.sign(&text))),
    )
    .unwrap();
    hex(&sha2::Sha256::digest(&text))
}

fn limits() -> ImportLimits {
    ImportLimits {
        max_object_size: 1 << 20,
        max_unpacked: 1 << 30,
        person: None,
    }
}

fn intel() -> Collection {
    NewCollection {
        alias: "intel".to_owned(),
        ..NewCollection::default()
    }
    .with_new_id()
}

/// Another file renamed over the object file after verification (a new file under the
/// same name, two other indicators): the import reads the verified handle and stores the
/// verified indicators, never the replacement's.
#[test]
fn a_file_replaced_after_verification_is_not_what_is_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let dir = tmp.path().join("p1");
    make(&dir, &a, &b);
    let store = SqliteStore::open(&tmp.path().join("b.sqlite")).unwrap();
    let verified = verify_package(&dir, &b.public(), Some(a.public()), &[]).unwrap();
    let swap = tmp.path().join("swap");
    std::fs::write(&swap, bundle(&[3, 4]).0).unwrap();
    std::fs::rename(&swap, dir.join(FILE)).unwrap();
    let report = import_package(
        &store,
        &verified,
        Destination::Create(&intel()),
        limits(),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.added, 2);
    for (n, held) in [(1, true), (2, true), (3, false), (4, false)] {
        let from = store.received_from(&indicator_id(n), None).unwrap();
        assert_eq!(!from.is_empty(), held, "indicator {n}: {from:?}");
    }
}

/// The object file rewritten in place after verification (the same file, other bytes): the
/// import hashes what it reads again, refuses at the file's end, naming it, and stores
/// nothing (not even the collection).
#[test]
fn a_file_rewritten_after_verification_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let dir = tmp.path().join("p1");
    make(&dir, &a, &b);
    let store = SqliteStore::open(&tmp.path().join("b.sqlite")).unwrap();
    let verified = verify_package(&dir, &b.public(), Some(a.public()), &[]).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join(FILE))
        .unwrap();
    f.write_all(&bundle(&[3, 4]).0).unwrap();
    drop(f);
    let err = import_package(
        &store,
        &verified,
        Destination::Create(&intel()),
        limits(),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("{FILE}: changed after it was verified")),
        "{err}"
    );
    assert!(store.collection("intel").unwrap().is_none());
    for n in 1..=4 {
        assert!(
            store
                .received_from(&indicator_id(n), None)
                .unwrap()
                .is_empty()
        );
    }
}

/// The receiver's chain rules, with packages made by hand: a package is taken once, only
/// after the package it names as its previous (by sequence and digest); a package that
/// skips numbers (the producer never completed them) is taken; two packages of one number,
/// or a previous named with another digest than the one imported, are a fork; a previous
/// not imported is named as missing. Each refusal stores nothing.
#[test]
fn a_package_is_taken_once_after_the_one_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let store = SqliteStore::open(&tmp.path().join("b.sqlite")).unwrap();
    let c = intel();
    let import = |dir: &str, dest: Destination<'_>| {
        let v = verify_package(&tmp.path().join(dir), &b.public(), Some(a.public()), &[])?;
        import_package(&store, &v, dest, limits(), |_| {})
    };
    let d1 = make_at(&tmp.path().join("p1"), &a, &b, 1, None, &[1, 2]);
    import("p1", Destination::Create(&c)).unwrap();
    let refused = |dir: &str, reason: &str| {
        let err = import(dir, Destination::Existing(&c.id))
            .unwrap_err()
            .to_string();
        assert!(err.contains(reason), "{dir}: {err}");
    };
    refused("p1", "package 1 from producer A");
    refused(
        "p1",
        "is a repeated package: it was already imported; nothing stored",
    );
    make_at(&tmp.path().join("other-1"), &a, &b, 1, None, &[3, 4]);
    refused(
        "other-1",
        "two packages of one number, so the producer's chain forked",
    );
    make_at(
        &tmp.path().join("p3-after-2"),
        &a,
        &b,
        3,
        Some((2, &"f".repeat(64))),
        &[5],
    );
    refused(
        "p3-after-2",
        "follows package 2, which was not imported here (the last one imported is package \
         1): package 2 is missing",
    );
    make_at(
        &tmp.path().join("p2-forked"),
        &a,
        &b,
        2,
        Some((1, &"e".repeat(64))),
        &[5],
    );
    refused(
        "p2-forked",
        &format!(
            "names package 1 with digest {} as its previous, but package 1 imported here has \
             digest {d1}: the producer's chain forked",
            "e".repeat(64)
        ),
    );
    for n in 3..=5 {
        assert!(
            store
                .received_from(&indicator_id(n), None)
                .unwrap()
                .is_empty()
        );
    }
    // Package 2 never completed by the producer: package 3 names package 1, and is taken.
    let d3 = make_at(&tmp.path().join("p3"), &a, &b, 3, Some((1, &d1)), &[5]);
    let report = import("p3", Destination::Existing(&c.id)).unwrap();
    assert_eq!(report.added, 1);
    make_at(&tmp.path().join("p4"), &a, &b, 4, Some((3, &d3)), &[6]);
    import("p4", Destination::Existing(&c.id)).unwrap();
    // A manifest whose chain fields disagree is refused as such.
    make_at(&tmp.path().join("bad"), &a, &b, 5, Some((5, &d3)), &[7]);
    let err = verify_package(&tmp.path().join("bad"), &b.public(), Some(a.public()), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manifest.json: sequence 5, previous_sequence 5"),
        "{err}"
    );
}

/// Indicator `n`, TLP 2.0 CLEAR: every partner receives it.
fn clear(n: u32) -> String {
    serde_json::json!({"type": "indicator", "spec_version": "2.1", "id": indicator_id(n),
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "pattern": format!("[domain-name:value = 'n{n}.example']"), "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
        "object_marking_refs": ["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"]})
    .to_string()
}

fn add(store: &dyn Store, collection: &str, ids: &[u32]) {
    let mut b = store.begin_write(collection).unwrap();
    for &n in ids {
        let body = clear(n);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let header = concord_stix::validate_object(&value).unwrap();
        b.add(&concord_store::NewObject {
            header: &header,
            body: &body,
            value: &value,
        })
        .unwrap();
    }
    b.commit().unwrap();
}

/// Item 2 of the follow-up: a crash between writing a package and recording it. Package 2
/// is written in full (a tar, renamed into place) and its process stops before recording it
/// ([`write_unrecorded`] dropped unrecorded: what a crash leaves). Its number is not handed
/// out again: the next package is 3, names package 1 as its previous and holds what package
/// 2 held (the cursor did not move). A receiver that imported package 2 and one that never
/// saw it both take the chain to its end (packages 3 and 4) and hold every indicator; before
/// the reservation, package 3 would have been a second package 2, refused by the first
/// receiver, whose chain then stopped.
#[test]
fn a_crash_between_writing_and_recording_reuses_no_sequence_number() {
    use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
    use concord_policy::egress::{CollectionSharing, PartnerProfile, sharing_setting_key};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&tmp.path().join("a.sqlite")).unwrap());
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            ..NewCollection::default()
        })
        .unwrap();
    let sharing = CollectionSharing::default();
    store
        .set_setting(&sharing_setting_key(&c.id), &sharing.to_json())
        .unwrap();
    add(store.as_ref(), &c.id, &[1, 2]);
    let policy = Policy::new(
        PolicyConfig::default(),
        PseudonymKeys {
            node_secret: Some(vec![7; 32]),
            ..PseudonymKeys::default()
        },
    )
    .unwrap();
    let egress = concord_egress::Egress::new(store.clone(), Arc::new(policy));
    let partner = PartnerProfile {
        name: "b".into(),
        jurisdiction: "DE".into(),
        groups: vec![],
    };
    let options = WriteOptions {
        since_last: true,
        producer_name: "A".into(),
        ..WriteOptions::default()
    };
    let write = |name: &str| {
        write_unrecorded(
            &egress,
            &a,
            &partner,
            &b.public(),
            &c,
            &options,
            &tmp.path().join(name),
        )
        .unwrap()
    };
    let p1 = write("p1").record(store.as_ref()).unwrap();
    assert_eq!(p1.manifest.counts.objects, 2);
    add(store.as_ref(), &c.id, &[3]);
    let crashed = write("p2.tar");
    assert_eq!(
        (
            crashed.manifest().sequence,
            crashed.manifest().previous_sequence
        ),
        (2, 1)
    );
    drop(crashed);
    assert!(tmp.path().join("p2.tar").exists());
    let p3 = write("p3").record(store.as_ref()).unwrap();
    let m3 = &p3.manifest;
    assert_eq!(
        (m3.sequence, m3.previous_sequence, m3.previous.as_deref()),
        (3, 1, Some(p1.digest.as_str()))
    );
    assert_eq!(m3.counts.objects, 1, "indicator 3, which package 2 held");
    add(store.as_ref(), &c.id, &[4]);
    let p4 = write("p4.tar").record(store.as_ref()).unwrap();
    assert_eq!(
        (p4.manifest.sequence, p4.manifest.previous_sequence),
        (4, 3)
    );
    for (receiver, packages) in [
        ("b1", &["p1", "p2.tar", "p3", "p4.tar"][..]),
        ("b2", &["p1", "p3", "p4.tar"][..]),
    ] {
        let to = SqliteStore::open(&tmp.path().join(format!("{receiver}.sqlite"))).unwrap();
        let mine = intel();
        for (i, p) in packages.iter().enumerate() {
            let v = verify_package(&tmp.path().join(p), &b.public(), Some(a.public()), &[])
                .unwrap_or_else(|e| panic!("{receiver} {p}: {e}"));
            let dest = if i == 0 {
                Destination::Create(&mine)
            } else {
                Destination::Existing(&mine.id)
            };
            import_package(&to, &v, dest, limits(), |_| {})
                .unwrap_or_else(|e| panic!("{receiver} {p}: {e}"));
        }
        for n in 1..=4 {
            assert!(
                !to.received_from(&indicator_id(n), None).unwrap().is_empty(),
                "{receiver}: indicator {n}"
            );
        }
    }
}
