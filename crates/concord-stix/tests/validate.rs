//! Validation against real STIX 2.1 data (MITRE ATT&CK, CAPEC, ATLAS, OpenCTI exports, OASIS
//! examples and python-stix2 test objects) and one negative case per rule family.

use std::collections::BTreeMap;
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
    assert_failures(files, expected_objects, &[]);
}

/// Every object of `files` validates except the listed genuine violations:
/// `(file name, property, section, number of violations)`, which must match exactly.
fn assert_failures(files: &[PathBuf], expected_objects: Option<usize>, expected: &[(&str, &str, &str, usize)]) {
    let (n, bad) = failures(files);
    if let Some(e) = expected_objects {
        assert_eq!(n, e, "object count");
    }
    let mut got: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (f, vs) in &bad {
        for v in vs {
            *got.entry((f.clone(), v.property.clone(), v.section.to_owned())).or_default() += 1;
        }
    }
    let want: BTreeMap<(String, String, String), usize> =
        expected.iter().map(|(f, p, s, n)| ((f.to_string(), p.to_string(), s.to_string()), *n)).collect();
    assert_eq!(got, want, "violations in real data; first objects: {:#?}", &bad[..bad.len().min(3)]);
}

#[test]
fn attack_ics_valid() {
    // Five x-mitre-data-component objects carry `"x_mitre_data_source_ref": ""`: a property
    // named *_ref that is not an identifier (the _ref naming rule, STIX 2.1 §2.9 / §3.1).
    assert_failures(
        &[data("stix/attack/ics-attack-18.1.json")],
        Some(1826),
        &[("ics-attack-18.1.json", "x_mitre_data_source_ref", "2.9", 5)],
    );
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
    // Two attack-patterns have `modified` earlier than `created` (§3.2), and the
    // x-mitre-collection custom object has neither `created` nor `modified` (§11.2).
    assert_failures(
        &[data("stix/atlas/stix-atlas-5.6.0.json")],
        Some(538),
        &[
            ("stix-atlas-5.6.0.json", "modified", "3.2", 2),
            ("stix-atlas-5.6.0.json", "created", "11.2", 1),
            ("stix-atlas-5.6.0.json", "modified", "11.2", 1),
        ],
    );
}

#[test]
fn atlas_opencti_exports_valid() {
    // OpenCTI writes (a) a TLP marking definition `{"definition_type": "tlp", "definition":
    // {"tlp": "clear"}}` (TLP 2.0's name in the TLP 1.0 shape, whose levels §7.2.1.4 fixes
    // as white/green/amber/red) and (b) relationships with `stop_time` equal to
    // `start_time`, where §5.1 says stop_time MUST be later than start_time.
    let files = files_in("stix/atlas/opencti-bundles");
    assert_failures(
        &files,
        Some(99),
        &[
            ("AMLCS0010-opencti-export.json", "definition.tlp", "7.2.1.4", 1),
            ("AMLCS0012-opencti-export.json", "definition.tlp", "7.2.1.4", 1),
            ("AMLCS0017-opencti-export.json", "definition.tlp", "7.2.1.4", 1),
            ("AMLCS0019-opencti-export.json", "definition.tlp", "7.2.1.4", 1),
            ("AMLCS0021-opencti-export.json", "definition.tlp", "7.2.1.4", 1),
            ("AMLCS0017-opencti-export.json", "stop_time", "5.1", 3),
            ("AMLCS0019-opencti-export.json", "stop_time", "5.1", 13),
            ("AMLCS0021-opencti-export.json", "stop_time", "5.1", 10),
        ],
    );
}

#[test]
fn oasis_json_schema_examples_valid() {
    // infrastructure.json has a relationship whose id has an upper-case UUID
    // (`…-85ec-E9034ac98aba`); identifiers MUST be lower case (§2.9).
    assert_failures(
        &files_in("stix/oasis/json-schemas-examples"),
        None,
        &[("infrastructure.json", "id", "2.9", 1)],
    );
}

#[test]
fn oasis_cti_documentation_valid() {
    assert_all_valid(&files_in("stix/oasis/cti-documentation"), None);
}

#[test]
fn oasis_common_objects() {
    // acs-spec-use-case-1.json: the marking definition's `created` is
    // `2020-06-18T00:00:00Z`, second precision only (§3.2 requires milliseconds).
    assert_failures(
        &files_in("stix/oasis/common-objects"),
        None,
        &[("acs-spec-use-case-1.json", "created", "3.2", 1)],
    );
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
        if name == "MALWARE_ANALYSIS_JSON" {
            // python-stix2 accepts any SCO as `sample_ref`; §4.12 (and the OASIS JSON
            // schema) allow only file, network-traffic or artifact. This one is an email-addr.
            let errs = results[0].as_ref().unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:#?}");
            assert_eq!((errs[0].property.as_str(), errs[0].section), ("sample_ref", "4.12"));
            continue;
        }
        if e["expected_valid"] == true {
            for r in &results {
                assert!(r.is_ok(), "{name}: {r:#?}");
            }
            valid += 1;
        } else {
            // BAD_SIGHTING: where_sighted_refs points at a malware object.
            let errs = results[0].as_ref().unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:#?}");
            assert_eq!(errs[0].property, "where_sighted_refs[0]");
            assert_eq!(errs[0].section, "5.2");
            invalid += 1;
        }
    }
    assert_eq!((valid, invalid), (39, 1));
}
