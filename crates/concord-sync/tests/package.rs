//! Transfer packages read from media an attacker may write (issue 22, attack F6): what is
//! ingested is what was verified. A package is made by hand here (two indicators, one zstd
//! file, a signed manifest), verified, then its object file is replaced by name or
//! rewritten in place before the import, over a real SQLite file.

use std::io::Write as _;
use std::path::Path;

use concord_store::node_key::{NodeKey, hex};
use concord_store::{Collection, NewCollection, SqliteStore, Store};
use concord_sync::package::{
    Compression, Counts, CursorRange, Destination, FORMAT, ImportLimits, MANIFEST, Manifest,
    PackageCollection, PackageFile, Producer, Recipient, SIGNATURE, fingerprint, import_package,
    verify_package,
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
    std::fs::create_dir_all(dir).unwrap();
    let (bytes, unpacked) = bundle(&[1, 2]);
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
        sequence: 1,
        previous: None,
        policy_version: "test@0".to_owned(),
        compression: Compression::Zstd,
        cursor: CursorRange {
            after: None,
            through: None,
        },
        counts: Counts {
            objects: 2,
            ..Counts::default()
        },
        files: vec![PackageFile {
            name: FILE.to_owned(),
            objects: 2,
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
}

fn limits() -> ImportLimits {
    ImportLimits {
        max_object_size: 1 << 20,
        max_unpacked: 1 << 30,
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
