//! Validation against real STIX 2.1 data (MITRE ATT&CK, CAPEC, ATLAS, OpenCTI exports, OASIS
//! examples and python-stix2 test objects) and one negative case per rule family.

use std::path::{Path, PathBuf};

use concord_stix::{validate_object, ObjectKind, Violation};
use serde_json::{json, Value};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

fn data(rel: &str) -> PathBuf {
    Path::new(DATA).join(rel)
}

/// The objects of a file that holds a bundle, a plain array of objects, or one object.
fn objects_of(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match v {
        Value::Array(a) => a,
        Value::Object(ref m) if m.contains_key("objects") => m["objects"].as_array().unwrap().clone(),
        other => vec![other],
    }
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {dir}");
    out
}

/// Validates every object of `files`; returns the failures as (file name, violations).
fn failures(files: &[PathBuf]) -> (usize, Vec<(String, Vec<Violation>)>) {
    let mut n = 0;
    let mut bad = Vec::new();
    for f in files {
        for o in objects_of(f) {
            n += 1;
            if let Err(v) = validate_object(&o) {
                bad.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
            }
        }
    }
    (n, bad)
}

fn assert_all_valid(files: &[PathBuf], expected_objects: Option<usize>) {
    let (n, bad) = failures(files);
    if let Some(e) = expected_objects {
        assert_eq!(n, e);
    }
    assert!(bad.is_empty(), "{} of {n} objects rejected; first: {:#?}", bad.len(), &bad[..bad.len().min(5)]);
}

#[test]
fn attack_ics_valid() {
    assert_all_valid(&[data("stix/attack/ics-attack-18.1.json")], Some(1826));
}

#[test]
fn attack_mobile_valid() {
    assert_all_valid(&[data("stix/attack/mobile-attack-17.1.json")], Some(2148));
}

#[test]
fn capec_valid() {
    assert_all_valid(&[data("stix/capec/capec-3.9-stix21.json")], Some(2683));
}

#[test]
fn atlas_valid() {
    assert_all_valid(&[data("stix/atlas/stix-atlas-5.6.0.json")], Some(538));
}

#[test]
fn atlas_opencti_exports_valid() {
    assert_all_valid(&files_in("stix/atlas/opencti-bundles"), None);
}

#[test]
fn oasis_json_schema_examples_valid() {
    assert_all_valid(&files_in("stix/oasis/json-schemas-examples"), None);
}

#[test]
fn oasis_cti_documentation_valid() {
    assert_all_valid(&files_in("stix/oasis/cti-documentation"), None);
}

#[test]
fn oasis_common_objects() {
    let (n, bad) = failures(&files_in("stix/oasis/common-objects"));
    assert!(n > 20, "{n}");
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn python_stix2_test_objects() {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(data("stix/oasis/python-stix2-test-objects.json")).unwrap())
            .unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 41);
    let (mut valid, mut invalid) = (0, 0);
    for e in entries {
        let name = e["name"].as_str().unwrap();
        let object = &e["object"];
        let objects: Vec<&Value> = if object["type"] == "bundle" {
            object["objects"].as_array().unwrap().iter().collect()
        } else {
            vec![object]
        };
        let results: Vec<_> = objects.iter().map(|o| validate_object(o)).collect();
        if e["expected_valid"] == true {
            for r in &results {
                assert!(r.is_ok(), "{name}: {r:#?}");
            }
            valid += 1;
        } else {
            assert!(results.iter().any(Result::is_err), "{name} should be rejected");
            invalid += 1;
        }
    }
    assert_eq!((valid, invalid), (40, 1));
}
