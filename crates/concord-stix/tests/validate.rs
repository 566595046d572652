//! Validation against real STIX 2.1 data (MITRE ATT&CK, CAPEC, ATLAS, OpenCTI exports, OASIS
//! examples and python-stix2 test objects) and one negative case per rule family.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use concord_stix::{ObjectKind, Violation, validate_object};
use serde_json::{Value, json};

/// The repository's test data (tests/data/README.md says what each file is and its licence).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

fn data(rel: &str) -> PathBuf {
    Path::new(DATA).join(rel)
}

/// A file's text; `.gz` files are decompressed.
fn read_text(path: &Path) -> String {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|x| x == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text
    } else {
        String::from_utf8(raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The objects of a file that holds a bundle, a plain array of objects, or one object.
fn objects_of(path: &Path) -> Vec<Value> {
    let text = read_text(path);
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match v {
        Value::Array(a) => a,
        Value::Object(ref m) if m.contains_key("objects") => {
            m["objects"].as_array().unwrap().clone()
        }
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
fn assert_failures(
    files: &[PathBuf],
    expected_objects: Option<usize>,
    expected: &[(&str, &str, &str, usize)],
) {
    let (n, bad) = failures(files);
    if let Some(e) = expected_objects {
        assert_eq!(n, e, "object count");
    }
    let mut got: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (f, vs) in &bad {
        for v in vs {
            *got.entry((f.clone(), v.property.clone(), v.section.to_owned()))
                .or_default() += 1;
        }
    }
    let want: BTreeMap<(String, String, String), usize> = expected
        .iter()
        .map(|(f, p, s, n)| ((f.to_string(), p.to_string(), s.to_string()), *n))
        .collect();
    assert_eq!(
        got,
        want,
        "violations in real data; first objects: {:#?}",
        &bad[..bad.len().min(3)]
    );
}

#[test]
fn attack_ics_valid() {
    // Five x-mitre-data-component objects carry `"x_mitre_data_source_ref": ""`: a custom
    // property whose empty value means "no reference"; tolerated (see `walk` in validate.rs).
    assert_failures(
        &[data("stix/attack/ics-attack-18.1.json.gz")],
        Some(1826),
        &[],
    );
}

#[test]
fn attack_mobile_valid() {
    assert_all_valid(
        &[data("stix/attack/mobile-attack-17.1.json.gz")],
        Some(2148),
    );
}

#[test]
fn capec_valid() {
    // Two attack-patterns have an external reference `url` with a leading space
    // (' https://…'), not an RFC 3986 URL (§2.5); the OASIS validator refuses them too.
    assert_failures(
        &[data("stix/capec/capec-3.9-stix21.json.gz")],
        Some(2683),
        &[
            (
                "capec-3.9-stix21.json.gz",
                "external_references[3].url",
                "2.5",
                1,
            ),
            (
                "capec-3.9-stix21.json.gz",
                "external_references[4].url",
                "2.5",
                1,
            ),
        ],
    );
}

#[test]
fn atlas_valid() {
    // Two attack-patterns have `modified` earlier than `created` (§3.2), and the
    // x-mitre-collection custom object has neither `created` nor `modified` (§11.2).
    assert_failures(
        &[data("stix/atlas/stix-atlas-5.6.0.json.gz")],
        Some(538),
        &[
            ("stix-atlas-5.6.0.json.gz", "modified", "3.2", 2),
            ("stix-atlas-5.6.0.json.gz", "created", "11.2", 1),
            ("stix-atlas-5.6.0.json.gz", "modified", "11.2", 1),
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
            (
                "AMLCS0010-opencti-export.json",
                "definition.tlp",
                "7.2.1.4",
                1,
            ),
            (
                "AMLCS0012-opencti-export.json",
                "definition.tlp",
                "7.2.1.4",
                1,
            ),
            (
                "AMLCS0017-opencti-export.json",
                "definition.tlp",
                "7.2.1.4",
                1,
            ),
            (
                "AMLCS0019-opencti-export.json",
                "definition.tlp",
                "7.2.1.4",
                1,
            ),
            (
                "AMLCS0021-opencti-export.json",
                "definition.tlp",
                "7.2.1.4",
                1,
            ),
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
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(data("stix/oasis/python-stix2-test-objects.json")).unwrap(),
    )
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
            assert_eq!(
                (errs[0].property.as_str(), errs[0].section),
                ("sample_ref", "4.12")
            );
            continue;
        }
        if name == "EXPECTED_INFRASTRUCTURE" {
            // python-stix2 accepts any UUID; its id has version nibble `f`, which neither
            // RFC 4122 nor RFC 9562 defines (§2.9; stix2-validator refuses it).
            let errs = results[0].as_ref().unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:#?}");
            assert_eq!((errs[0].property.as_str(), errs[0].section), ("id", "2.9"));
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
    assert_eq!((valid, invalid), (38, 1));
}

// ---------------------------------------------------------------------------------------------
// Negative cases: one per rule family, each asserting the exact property and section.

const IDENTITY: &str = "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff";
const TLP_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

fn indicator() -> Value {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created_by_ref": IDENTITY,
        "created": "2016-04-06T20:03:48.000Z",
        "modified": "2016-04-06T20:03:48.000Z",
        "name": "Poison Ivy Malware",
        "pattern": "[file:hashes.'SHA-256' = 'ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c']",
        "pattern_type": "stix",
        "valid_from": "2016-01-01T00:00:00Z",
        "object_marking_refs": [TLP_GREEN],
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

/// Asserts that `object` is rejected with exactly one violation, on `property` in `section`.
#[track_caller]
fn rejects(object: &Value, property: &str, section: &str) -> Violation {
    let errs = validate_object(object).expect_err("object should be rejected");
    assert_eq!(errs.len(), 1, "expected one violation, got {errs:#?}");
    assert_eq!(
        (errs[0].property.as_str(), errs[0].section),
        (property, section),
        "{errs:#?}"
    );
    errs.into_iter().next().unwrap()
}

/// Asserts that `object` is rejected with (at least) a violation on `property` in `section`.
#[track_caller]
fn rejects_with(object: &Value, property: &str, section: &str) {
    let errs = validate_object(object).expect_err("object should be rejected");
    assert!(
        errs.iter()
            .any(|e| e.property == property && e.section == section),
        "no violation on {property} (§{section}): {errs:#?}"
    );
}

#[test]
fn baseline_indicator_is_valid() {
    let h = validate_object(&indicator()).unwrap();
    assert_eq!(h.kind, ObjectKind::Sdo);
    assert_eq!(h.object_type, "indicator");
    assert_eq!(h.created.unwrap().as_str(), "2016-04-06T20:03:48.000Z");
}

#[test]
fn bad_id_prefix() {
    let v = rejects(
        &with(
            indicator(),
            "id",
            json!("malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
        ),
        "id",
        "2.9",
    );
    assert!(v.rule.contains("'malware'"), "{v}");
    assert_eq!(
        v.id.as_deref(),
        Some("malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")
    );
}

#[test]
fn uppercase_uuid() {
    rejects(
        &with(
            indicator(),
            "id",
            json!("indicator--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F"),
        ),
        "id",
        "2.9",
    );
}

#[test]
fn missing_spec_version_is_stix_2_0() {
    rejects(&without(indicator(), "spec_version"), "spec_version", "3.2");
    rejects(
        &with(indicator(), "spec_version", json!("2.0")),
        "spec_version",
        "3.2",
    );
}

#[test]
fn timestamp_without_z() {
    rejects(
        &with(
            indicator(),
            "modified",
            json!("2016-04-06T20:03:48.000+00:00"),
        ),
        "modified",
        "3.2",
    );
    rejects(
        &with(indicator(), "valid_from", json!("2016-01-01T00:00:00")),
        "valid_from",
        "4.7",
    );
}

#[test]
fn created_with_second_precision_only() {
    // Both are at second precision, so only the precision rule fires, once per property.
    let o = with(indicator(), "created", json!("2016-04-06T20:03:48Z"));
    let v = rejects(&o, "created", "3.2");
    assert!(v.rule.contains("millisecond"), "{v}");
    // Finer than milliseconds is fine: millisecond is the minimum precision.
    assert!(
        validate_object(&with(
            indicator(),
            "modified",
            json!("2016-04-06T20:03:48.123456Z")
        ))
        .is_ok()
    );
}

#[test]
fn modified_before_created() {
    rejects(
        &with(indicator(), "modified", json!("2016-04-06T20:03:47.999Z")),
        "modified",
        "3.2",
    );
}

#[test]
fn missing_created_on_sdo() {
    rejects(&without(indicator(), "created"), "created", "3.2");
}

#[test]
fn indicator_required_and_valid_until() {
    rejects(&without(indicator(), "pattern"), "pattern", "4.7");
    rejects(&without(indicator(), "pattern_type"), "pattern_type", "4.7");
    rejects(&without(indicator(), "valid_from"), "valid_from", "4.7");
    // valid_until MUST be later than valid_from (equal is not enough).
    rejects(
        &with(
            indicator(),
            "valid_until",
            json!("2016-01-01T00:00:00.000Z"),
        ),
        "valid_until",
        "4.7",
    );
    assert!(
        validate_object(&with(
            indicator(),
            "valid_until",
            json!("2017-01-01T00:00:00Z")
        ))
        .is_ok()
    );
}

fn sdo(ty: &str, uuid: &str, props: Value) -> Value {
    let mut o = json!({
        "type": ty,
        "spec_version": "2.1",
        "id": format!("{ty}--{uuid}"),
        "created": "2020-01-01T00:00:00.000Z",
        "modified": "2020-01-01T00:00:00.000Z",
    });
    for (k, v) in props.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

#[test]
fn malware_required() {
    let m = sdo(
        "malware",
        "0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
        json!({"is_family": false}),
    );
    assert!(validate_object(&m).is_ok());
    rejects(&without(m.clone(), "is_family"), "is_family", "4.11");
    // A malware family MUST have a name.
    rejects(&with(m, "is_family", json!(true)), "name", "4.11");
}

fn relationship() -> Value {
    sdo(
        "relationship",
        "44298a74-ba52-4f0c-87a3-1824e67d7fad",
        json!({
            "relationship_type": "indicates",
            "source_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
        }),
    )
}

#[test]
fn relationship_required_and_targets() {
    assert_eq!(
        validate_object(&relationship()).unwrap().kind,
        ObjectKind::Sro
    );
    rejects(
        &without(relationship(), "relationship_type"),
        "relationship_type",
        "5.1",
    );
    rejects(&without(relationship(), "source_ref"), "source_ref", "5.1");
    rejects(&without(relationship(), "target_ref"), "target_ref", "5.1");
    // Relationships connect SDOs and SCOs, not markings or other SROs.
    rejects(
        &with(relationship(), "target_ref", json!(TLP_GREEN)),
        "target_ref",
        "5.1",
    );
}

fn sighting() -> Value {
    sdo(
        "sighting",
        "ee20065d-2555-424f-ad9e-0f8428623c75",
        json!({
            "sighting_of_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "where_sighted_refs": [IDENTITY],
            "count": 3,
            "first_seen": "2020-01-01T00:00:00Z",
            "last_seen": "2020-01-02T00:00:00Z",
        }),
    )
}

#[test]
fn sighting_rules() {
    assert!(validate_object(&sighting()).is_ok());
    rejects(
        &without(sighting(), "sighting_of_ref"),
        "sighting_of_ref",
        "5.2",
    );
    rejects(
        &with(sighting(), "count", json!(1_000_000_000)),
        "count",
        "5.2",
    );
    rejects(&with(sighting(), "count", json!(-1)), "count", "5.2");
    rejects(
        &with(sighting(), "last_seen", json!("2019-12-31T00:00:00Z")),
        "last_seen",
        "5.2",
    );
    // sighting_of_ref MUST be an SDO; where_sighted_refs identity or location.
    rejects(
        &with(
            sighting(),
            "sighting_of_ref",
            json!("file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33"),
        ),
        "sighting_of_ref",
        "5.2",
    );
    rejects(
        &with(
            sighting(),
            "where_sighted_refs",
            json!([IDENTITY, "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"]),
        ),
        "where_sighted_refs[1]",
        "5.2",
    );
}

fn observed_data() -> Value {
    sdo(
        "observed-data",
        "b67d30ff-02ac-498a-92f9-32f845f448cf",
        json!({
            "first_observed": "2015-12-21T19:00:00Z",
            "last_observed": "2015-12-21T19:00:00Z",
            "number_observed": 50,
            "object_refs": ["ipv4-addr--efcd5e80-570d-4131-b213-62cb18eaa6a8"],
        }),
    )
}

#[test]
fn observed_data_rules() {
    assert!(validate_object(&observed_data()).is_ok());
    for p in ["first_observed", "last_observed", "number_observed"] {
        rejects(&without(observed_data(), p), p, "4.14");
    }
    rejects(
        &with(observed_data(), "number_observed", json!(0)),
        "number_observed",
        "4.14",
    );
    rejects(
        &with(
            observed_data(),
            "last_observed",
            json!("2015-12-21T18:59:59Z"),
        ),
        "last_observed",
        "4.14",
    );
    // Exactly one of objects / object_refs.
    rejects(&without(observed_data(), "object_refs"), "", "4.14");
    rejects(
        &with(
            observed_data(),
            "objects",
            json!({"0": {"type": "ipv4-addr", "value": "10.0.0.1"}}),
        ),
        "",
        "4.14",
    );
    // object_refs: SCOs and SROs, at least one SCO.
    let errs =
        validate_object(&with(observed_data(), "object_refs", json!([IDENTITY]))).unwrap_err();
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.property.as_str(), e.section))
        .collect();
    assert_eq!(got, [("object_refs", "4.14"), ("object_refs[0]", "4.14")]);
}

#[test]
fn report_required() {
    let r = sdo(
        "report",
        "84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
        json!({"name": "The Black Vine Cyberespionage Group", "published": "2016-01-20T17:00:00.000Z",
               "object_refs": ["indicator--26ffb872-1dd9-446e-b6f5-d58527e5b5d2"]}),
    );
    assert!(validate_object(&r).is_ok());
    rejects(&without(r.clone(), "published"), "published", "4.16");
    rejects(&without(r.clone(), "name"), "name", "4.16");
    // object_refs is required and, being a _refs, MUST NOT be empty.
    rejects(&without(r.clone(), "object_refs"), "object_refs", "4.16");
    rejects(&with(r, "object_refs", json!([])), "object_refs", "2.12");
}

#[test]
fn sco_required_and_common_properties() {
    let ip = json!({"type": "ipv4-addr", "spec_version": "2.1",
                    "id": "ipv4-addr--efcd5e80-570d-4131-b213-62cb18eaa6a8", "value": "198.51.100.3"});
    let h = validate_object(&ip).unwrap();
    assert_eq!((h.kind, h.created), (ObjectKind::Sco, None));
    // spec_version is optional on SCOs.
    assert!(validate_object(&without(ip.clone(), "spec_version")).is_ok());
    rejects(&without(ip.clone(), "value"), "value", "6.8");
    // SCOs have no created/modified/labels in STIX 2.1.
    rejects(
        &with(ip.clone(), "created", json!("2020-01-01T00:00:00.000Z")),
        "created",
        "3.2",
    );
    // file: at least one of hashes or name.
    let file =
        json!({"type": "file", "id": "file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33", "size": 25536});
    rejects(&file, "", "6.7");
    // network-traffic: protocols, and src_ref or dst_ref (of an address type).
    let nt = json!({"type": "network-traffic", "id": "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d",
                    "src_ref": "ipv4-addr--efcd5e80-570d-4131-b213-62cb18eaa6a8", "protocols": ["tcp"]});
    assert!(validate_object(&nt).is_ok());
    rejects(&without(nt.clone(), "protocols"), "protocols", "6.12");
    rejects(&without(nt.clone(), "src_ref"), "", "6.12");
    rejects(
        &with(
            nt,
            "src_ref",
            json!("file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33"),
        ),
        "src_ref",
        "6.12",
    );
    // email-message: is_multipart required.
    let em = json!({"type": "email-message", "id": "email-message--72b7698f-10c2-565a-a2a6-b4996a2f2265",
                    "is_multipart": false, "subject": "hi"});
    assert!(validate_object(&em).is_ok());
    rejects(&without(em, "is_multipart"), "is_multipart", "6.6");
}

#[test]
fn hashes_well_formed() {
    let file = json!({"type": "file", "id": "file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33",
                      "hashes": {"SHA-256": "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"}});
    assert!(validate_object(&file).is_ok());
    rejects(
        &with(file, "hashes", json!({"MD5": "not-hex"})),
        "hashes.MD5",
        "2.7",
    );
    let er = with(
        indicator(),
        "external_references",
        json!([{"source_name": "x", "url": "https://example.org",
                                                                "hashes": {"sha256": "ab"}}]),
    );
    rejects(&er, "external_references[0].hashes.sha256", "2.5");
}

#[test]
fn external_references_rules() {
    let o = with(
        indicator(),
        "external_references",
        json!([
            {"source_name": "capec", "external_id": "CAPEC-163"},
            {"source_name": "only a name"},
            {"url": "https://example.org"},
        ]),
    );
    let errs = validate_object(&o).unwrap_err();
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.property.as_str(), e.section))
        .collect();
    assert_eq!(
        got,
        [
            ("external_references[1]", "2.5"),
            ("external_references[2].source_name", "2.5")
        ]
    );
}

#[test]
fn bad_ref() {
    // Not an identifier at all.
    rejects(
        &with(indicator(), "created_by_ref", json!("ACME Corp")),
        "created_by_ref",
        "2.9",
    );
    // An identifier of the wrong type: created_by_ref MUST be an identity.
    rejects(
        &with(indicator(), "created_by_ref", json!(TLP_GREEN)),
        "created_by_ref",
        "3.2",
    );
    // Not a string.
    rejects(
        &with(indicator(), "created_by_ref", json!([IDENTITY])),
        "created_by_ref",
        "2.9",
    );
    // Custom *_ref properties follow the same naming rule, at any depth.
    rejects(
        &with(indicator(), "x_acme_source", json!({"origin_ref": "nope"})),
        "x_acme_source.origin_ref",
        "2.9",
    );
}

#[test]
fn empty_refs() {
    rejects(
        &with(indicator(), "object_marking_refs", json!([])),
        "object_marking_refs",
        "2.12",
    );
    rejects(&with(indicator(), "labels", json!([])), "labels", "2.12");
}

#[test]
fn object_marking_refs_to_non_marking() {
    rejects(
        &with(
            indicator(),
            "object_marking_refs",
            json!([TLP_GREEN, IDENTITY]),
        ),
        "object_marking_refs[1]",
        "3.2",
    );
}

#[test]
fn granular_markings_rules() {
    let ok = with(
        indicator(),
        "granular_markings",
        json!([
            {"selectors": ["description", "name"], "marking_ref": TLP_GREEN},
            {"selectors": ["name"], "lang": "en"},
        ]),
    );
    let ok = with(ok, "description", json!("text"));
    assert!(validate_object(&ok).is_ok());
    let both = with(
        indicator(),
        "granular_markings",
        json!([{"selectors": ["name"], "lang": "en", "marking_ref": TLP_GREEN}]),
    );
    rejects(&both, "granular_markings[0]", "7.2.3");
    let neither = with(
        indicator(),
        "granular_markings",
        json!([{"selectors": ["name"]}]),
    );
    rejects(&neither, "granular_markings[0]", "7.2.3");
    let empty = with(
        indicator(),
        "granular_markings",
        json!([{"selectors": [], "marking_ref": TLP_GREEN}]),
    );
    rejects(&empty, "granular_markings[0].selectors", "7.2.3");
    let not_marking = with(
        indicator(),
        "granular_markings",
        json!([{"selectors": ["name"], "marking_ref": IDENTITY}]),
    );
    rejects(&not_marking, "granular_markings[0].marking_ref", "7.2.3");
    let dangling = with(
        indicator(),
        "granular_markings",
        json!([{"selectors": ["kill_chain_phases.[0]"], "marking_ref": TLP_GREEN}]),
    );
    rejects(&dangling, "granular_markings[0].selectors[0]", "7.2.3.1");
}

#[test]
fn invalid_custom_property_name() {
    assert!(validate_object(&with(indicator(), "x_acme_score", json!(3))).is_ok());
    rejects(
        &with(indicator(), "x-acme-score", json!(3)),
        "x-acme-score",
        "11.1",
    );
    rejects(&with(indicator(), "X_ACME", json!(3)), "X_ACME", "11.1");
    rejects(&with(indicator(), "xa", json!(3)), "xa", "11.1");
    rejects(&with(indicator(), "_x_acme", json!(3)), "_x_acme", "11.1");
}

#[test]
fn common_property_types() {
    rejects(
        &with(indicator(), "confidence", json!(101)),
        "confidence",
        "3.2",
    );
    rejects(
        &with(indicator(), "revoked", json!("yes")),
        "revoked",
        "3.2",
    );
    rejects(
        &with(indicator(), "labels", json!(["ok", 3])),
        "labels[1]",
        "3.2",
    );
    rejects(&with(indicator(), "lang", json!("en us")), "lang", "3.2");
    rejects(
        &with(indicator(), "defanged", json!(true)),
        "defanged",
        "3.2",
    );
    rejects(
        &with(
            indicator(),
            "kill_chain_phases",
            json!([{"kill_chain_name": "lockheed-martin-cyber-kill-chain"}]),
        ),
        "kill_chain_phases[0].phase_name",
        "2.11",
    );
}

#[test]
fn extensions_rules() {
    let ext = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
    let ok = with(
        indicator(),
        "extensions",
        json!({ext: {"extension_type": "property-extension", "x": "1"}}),
    );
    // `x` is not a valid property name (too short).
    rejects(&ok, &format!("extensions.{ext}.x"), "3.1");
    let bad_type = with(
        indicator(),
        "extensions",
        json!({ext: {"extension_type": "sideways", "level": "1"}}),
    );
    rejects(
        &bad_type,
        &format!("extensions.{ext}.extension_type"),
        "7.3",
    );
    // A predefined SCO extension on the wrong type, and missing its required property.
    let file = json!({"type": "file", "id": "file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33", "name": "a.zip",
                      "extensions": {"archive-ext": {"comment": "zip"}}});
    rejects(&file, "extensions.archive-ext.contains_refs", "6.7.2");
    let ip = json!({"type": "ipv4-addr", "id": "ipv4-addr--efcd5e80-570d-4131-b213-62cb18eaa6a8", "value": "10.0.0.1",
                    "extensions": {"archive-ext": {"contains_refs": ["file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33"]}}});
    rejects(&ip, "extensions.archive-ext", "6.7.2");
    // Nested refs in extensions are checked against their own target rule.
    let file = json!({"type": "file", "id": "file--6cb8c3dc-7f3f-4ae1-a5a7-9d5a0e5a4c33", "name": "a.zip",
                      "extensions": {"archive-ext": {"contains_refs": [IDENTITY]}}});
    rejects(&file, "extensions.archive-ext.contains_refs[0]", "6.7.2");
}

#[test]
fn meta_objects() {
    let loc = sdo(
        "location",
        "a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
        json!({"latitude": 48.8566, "region": "europe"}),
    );
    rejects(&loc, "longitude", "4.10");
    let loc = sdo(
        "location",
        "a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
        json!({"name": "nowhere"}),
    );
    rejects(&loc, "", "4.10");
    let loc = sdo(
        "location",
        "a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
        json!({"latitude": 91.0, "longitude": 2.35}),
    );
    rejects(&loc, "latitude", "4.10");
    let op = sdo(
        "opinion",
        "b01efc25-77b4-4003-b18b-f6e24b5cd9f7",
        json!({"opinion": "maybe", "object_refs": [IDENTITY]}),
    );
    rejects(&op, "opinion", "4.15");
    let md = json!({"type": "marking-definition", "spec_version": "2.1", "id": TLP_GREEN,
                    "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "definition": {"tlp": "green"}});
    assert_eq!(validate_object(&md).unwrap().kind, ObjectKind::Meta);
    rejects(&without(md, "definition"), "definition", "7.2.1");
}

#[test]
fn unknown_type_valid_custom_object_is_accepted() {
    let o = sdo(
        "x-acme-widget",
        "1d3fa741-e3bd-451a-acf5-b2f01d075ba7",
        json!({"x_acme_size": 3}),
    );
    let h = validate_object(&o).unwrap();
    assert_eq!(h.kind, ObjectKind::Custom);
    assert_eq!(h.object_type, "x-acme-widget");
    // An SCO defined by an extension definition needs no created/modified.
    let sco = json!({"type": "x-acme-gadget", "spec_version": "2.1",
                     "id": "x-acme-gadget--1d3fa741-e3bd-451a-acf5-b2f01d075ba7",
                     "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":
                                    {"extension_type": "new-sco"}}});
    assert_eq!(validate_object(&sco).unwrap().kind, ObjectKind::Custom);
}

#[test]
fn unknown_type_invalid_custom_object_is_rejected() {
    // Missing created and modified.
    let o = json!({"type": "x-acme-widget", "spec_version": "2.1",
                   "id": "x-acme-widget--1d3fa741-e3bd-451a-acf5-b2f01d075ba7"});
    let errs = validate_object(&o).unwrap_err();
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.property.as_str(), e.section))
        .collect();
    assert_eq!(got, [("created", "11.2"), ("modified", "11.2")]);
    // A type name with upper case letters.
    let o = sdo("x-Acme", "1d3fa741-e3bd-451a-acf5-b2f01d075ba7", json!({}));
    rejects_with(&o, "type", "11.2");
}

#[test]
fn collects_all_violations() {
    let o = json!({
        "type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2016-04-06T20:03:48Z", "modified": "2016-04-06T20:03:48.000Z",
        "confidence": 200, "created_by_ref": TLP_GREEN,
    });
    let errs = validate_object(&o).unwrap_err();
    let mut got: Vec<_> = errs.iter().map(|e| e.property.as_str()).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "confidence",
            "created",
            "created_by_ref",
            "pattern",
            "pattern_type",
            "valid_from"
        ]
    );
}

#[test]
fn custom_ref_empty_tolerated_but_malformed_rejected() {
    let mut o = serde_json::json!({
        "type": "x-mitre-data-component", "spec_version": "2.1",
        "id": "x-mitre-data-component--2b3bfe19-d59a-460d-93bb-2f546adc2d2c",
        "created": "2021-10-20T15:05:19.272Z", "modified": "2021-10-20T15:05:19.272Z",
        "x_mitre_data_source_ref": ""
    });
    assert!(concord_stix::validate_object(&o).is_ok());
    o["x_mitre_data_source_ref"] = "not-an-id".into();
    let v = concord_stix::validate_object(&o).unwrap_err();
    assert_eq!(v[0].property, "x_mitre_data_source_ref");
    assert_eq!(v[0].section, "2.9");
}

/// Issue 24, item 4: the OASIS C2 indicator with its timestamps written with ten and twelve
/// fraction digits (STIX 2.1 §3.2 allows any number) is valid, and keeps each as written.
#[test]
fn timestamps_with_more_than_nine_fraction_digits() {
    let path = data("stix/oasis/json-schemas-examples/indicator-for-c2-ip-address.json");
    let mut indicator = objects_of(&path)
        .into_iter()
        .find(|o| o["type"] == "indicator")
        .expect("an indicator");
    indicator["valid_from"] = json!("2016-04-06T20:03:48.1234567891Z");
    indicator["modified"] = json!("2016-04-06T20:03:48.123456789012Z");
    indicator["created"] = json!("2016-04-06T20:03:48.0000000001Z");
    let header = validate_object(&indicator).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(
        header.modified.as_ref().unwrap().as_str(),
        "2016-04-06T20:03:48.123456789012Z"
    );
    assert_eq!(
        header.created.as_ref().unwrap().as_str(),
        "2016-04-06T20:03:48.0000000001Z"
    );
    // Compared at nanoseconds: a `modified` equal to `created` there is not earlier.
    indicator["modified"] = json!("2016-04-06T20:03:48.0000000000Z");
    validate_object(&indicator).unwrap_or_else(|v| panic!("{v:?}"));
    // A `valid_until` earlier than `valid_from` at nanoseconds is still refused.
    indicator["valid_until"] = json!("2016-04-06T20:03:48.1234567880Z");
    let v = validate_object(&indicator).unwrap_err();
    assert!(v.iter().any(|v| v.property == "valid_until"), "{v:?}");
}

/// Issue 24, item 6: the OASIS C2 indicator re-identified with UUIDs of versions 6, 7 and 8
/// (RFC 9562, which obsoletes RFC 4122) is valid; with version 9 or 0 it is refused on `id`
/// with the rule (§2.9).
#[test]
fn ids_with_every_uuid_version_of_rfc_9562() {
    let path = data("stix/oasis/json-schemas-examples/indicator-for-c2-ip-address.json");
    let indicator = objects_of(&path)
        .into_iter()
        .find(|o| o["type"] == "indicator")
        .expect("an indicator");
    // A UUIDv7 as a producer makes it today: 48-bit Unix milliseconds first.
    for (version, uuid, ok) in [
        (6, "1f0b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", true),
        (7, "01936b2e-8f00-7c4a-9d3e-5b6a7c8d9e0f", true),
        (8, "320c3d4d-c8ef-8e5a-9f2b-1a2b3c4d5e6f", true),
        (9, "01936b2e-8f00-9c4a-9d3e-5b6a7c8d9e0f", false),
        (0, "01936b2e-8f00-0c4a-9d3e-5b6a7c8d9e0f", false),
    ] {
        let mut o = indicator.clone();
        o["id"] = json!(format!("indicator--{uuid}"));
        match validate_object(&o) {
            Ok(h) => {
                assert!(ok, "version {version} accepted");
                assert_eq!(h.id, format!("indicator--{uuid}"));
            }
            Err(v) => {
                assert!(!ok, "version {version}: {v:?}");
                assert_eq!(v.len(), 1, "{v:?}");
                assert_eq!((v[0].property.as_str(), v[0].section), ("id", "2.9"));
                assert!(
                    v[0].rule
                        .contains(&format!("version {version} is not one RFC 9562 defines")),
                    "{v:?}"
                );
            }
        }
    }
}

/// Issue 24, item 5: each object of the first 40 of Enterprise ATT&CK in STIX 2.0 (no
/// `spec_version`; indicators there would have no `pattern_type`) gets exactly one message,
/// the one that says it is STIX 2.0; the same with `spec_version: "2.0"` written out.
#[test]
fn stix_2_0_objects_get_one_message_each() {
    let objects = objects_of(&data(
        "stix/attack/enterprise-attack-18.1-stix20-first40.json.gz",
    ));
    assert_eq!(objects.len(), 40);
    // A 2.0 indicator (STIX 2.0 has no `pattern_type`; before: a second error for it).
    let mut indicator_20 = without(indicator(), "spec_version");
    indicator_20.as_object_mut().unwrap().remove("pattern_type");
    for (i, o) in objects.iter().chain([&indicator_20]).enumerate() {
        let v = validate_object(o).unwrap_err();
        assert_eq!(v.len(), 1, "object {i}: {v:#?}");
        assert_eq!(
            (v[0].property.as_str(), v[0].section),
            ("spec_version", "3.2")
        );
        assert!(v[0].rule.contains("2.1 only"), "{v:?}");
        let mut written = o.clone();
        written["spec_version"] = json!("2.0");
        let v = validate_object(&written).unwrap_err();
        assert_eq!(v.len(), 1, "object {i} with spec_version 2.0: {v:#?}");
        assert!(v[0].rule.contains("found \"2.0\"") && v[0].rule.contains("2.1 only"));
    }
}
