//! Tests of concord-misp on the MISP data of tests/data/misp (tests/data/README.md) and on bad
//! input.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use concord_misp::feed::{self, FeedState};
use concord_misp::{Container, ToStixOptions, Warninglists, to_misp_event, to_stix};
use serde_json::{Value, json};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/misp")
        .join(rel)
}

/// A file's bytes; `.gz` files (the ESET events) are decompressed.
fn read(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|x| x == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out
    } else {
        raw
    }
}

fn eset_events() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data("eset-events"))
        .expect("handed ESET events")
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains("pypi_backdoor"))
        .collect();
    v.sort();
    v
}

/// Converts bytes, checking every object against STIX 2.1 and every pattern with the parser.
fn convert(
    bytes: &[u8],
    options: ToStixOptions<'_>,
) -> (Vec<Value>, concord_misp::ConversionReport) {
    let mut out = Vec::new();
    let report = to_stix(&mut || Ok(bytes), options, &mut |v| {
        out.push(v);
        Ok(())
    })
    .expect("conversion");
    for o in &out {
        if let Err(v) = concord_stix::validate_object(o) {
            panic!("invalid STIX object {o}: {v:?}");
        }
        if o["type"] == "indicator" && o["pattern_type"] == "stix" {
            concord_pattern::parse(o["pattern"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("pattern {}: {}", o["pattern"], e.message));
        }
    }
    (out, report)
}

fn count_types(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objects {
        *m.entry(o["type"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    m
}

#[test]
fn eset_events_convert_to_valid_stix() {
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for path in eset_events() {
        let bytes = read(&path);
        let (objects, report) = convert(&bytes, ToStixOptions::default());
        assert_eq!(report.events, 1, "{}", path.display());
        assert!(
            report.malformed.is_empty(),
            "{}: {:?}",
            path.display(),
            report.malformed
        );
        assert!(
            report.unknown_types.is_empty(),
            "{:?}",
            report.unknown_types
        );
        let reports: Vec<&Value> = objects.iter().filter(|o| o["type"] == "report").collect();
        assert_eq!(reports.len(), 1);
        // every object_ref of the report is an object of the output
        let ids: std::collections::HashSet<&str> =
            objects.iter().map(|o| o["id"].as_str().unwrap()).collect();
        for r in reports[0]["object_refs"].as_array().unwrap() {
            assert!(ids.contains(r.as_str().unwrap()), "dangling {r}");
        }
        for (k, v) in count_types(&objects) {
            *totals.entry(k).or_default() += v;
        }
    }
    eprintln!("ESET totals: {totals:?}");
    assert!(totals["indicator"] + totals["observed-data"] > 1000 && totals["attack-pattern"] > 100);
}

#[test]
fn grouping_option_and_tlp_markings() {
    let event = json!({"Event": {"uuid": "5bad262f-c810-4775-9e84-4a7d0a016219", "info": "t",
    "date": "2024-01-02", "timestamp": "1700000000",
    "Tag": [{"name": "tlp:green"}, {"name": "apt"}],
    "Attribute": [
        {"uuid": "11111111-1111-4111-8111-111111111111", "type": "ip-dst", "category": "Network activity",
         "value": "203.0.113.5", "to_ids": true, "timestamp": "1700000000",
         "Tag": [{"name": "tlp:amber+strict"}]},
        {"uuid": "22222222-2222-4222-8222-222222222222", "type": "domain", "category": "Network activity",
         "value": "evil.example", "to_ids": false, "timestamp": "1700000000",
         "Tag": [{"name": "tlp:clear"}]}
    ]}});
    let bytes = event.to_string();
    let (objs, _) = convert(
        bytes.as_bytes(),
        ToStixOptions {
            container: Container::Grouping,
            ..Default::default()
        },
    );
    let by_id: HashMap<&str, &Value> = objs
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    let g = by_id["grouping--5bad262f-c810-4775-9e84-4a7d0a016219"];
    assert_eq!(g["context"], "suspicious-activity");
    // TLP 2.0 GREEN: one version in one conversion (the default, 2.0).
    assert_eq!(
        g["object_marking_refs"],
        json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"])
    );
    // own stricter tag wins (AMBER+STRICT, TLP 2.0) ...
    let i = by_id["indicator--11111111-1111-4111-8111-111111111111"];
    assert_eq!(
        i["object_marking_refs"],
        json!(["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"])
    );
    assert_eq!(
        i["pattern"],
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.5']"
    );
    // ... a laxer own tag does not loosen the event's GREEN
    let o = by_id["observed-data--22222222-2222-4222-8222-222222222222"];
    assert_eq!(
        o["object_marking_refs"],
        json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"])
    );
    assert!(by_id.contains_key("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"));
    assert_eq!(
        by_id["domain-name--22222222-2222-4222-8222-222222222222"]["value"],
        "evil.example"
    );
}

#[test]
fn bad_input_unknown_type_malformed_value_empty_event() {
    let event = json!({"response": [{"Event": {"uuid": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "info": "bad",
        "timestamp": "1700000000", "Attribute": [
            {"uuid": "33333333-3333-4333-8333-333333333333", "type": "quantum-flux", "category": "Other",
             "value": "42", "to_ids": true, "timestamp": "1700000000"},
            {"uuid": "44444444-4444-4444-8444-444444444444", "type": "md5", "category": "Payload delivery",
             "value": "not-a-hash", "to_ids": true, "timestamp": "1700000000"}]}},
        {"Event": {"uuid": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "info": "empty", "timestamp": "1700000000"}}]});
    let bytes = event.to_string();
    let (objs, report) = convert(bytes.as_bytes(), ToStixOptions::default());
    assert_eq!(report.events, 2);
    assert_eq!(report.unknown_types.len(), 1);
    assert_eq!(
        report.unknown_types[0].attribute.as_deref(),
        Some("33333333-3333-4333-8333-333333333333")
    );
    assert_eq!(
        report.unknown_types[0].event,
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    );
    assert_eq!(report.malformed.len(), 1);
    assert!(
        report.malformed[0].rule.contains("32 hexadecimal digits"),
        "{:?}",
        report.malformed
    );
    assert_eq!(
        report.malformed[0].attribute.as_deref(),
        Some("44444444-4444-4444-8444-444444444444")
    );
    // neither is dropped: both kept as x-misp-attribute with their value
    let customs: Vec<&Value> = objs
        .iter()
        .filter(|o| o["type"] == "x-misp-attribute")
        .collect();
    assert_eq!(customs.len(), 2);
    assert!(
        customs
            .iter()
            .any(|o| o["x_misp_type"] == "quantum-flux" && o["x_misp_value"] == "42")
    );
    // the empty event: a report referring to a note (misp-stix convention)
    assert_eq!(
        report.empty_events,
        vec!["bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"]
    );
    assert!(
        objs.iter()
            .any(|o| o["id"] == "note--bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
    );
}

#[test]
fn invalid_json_is_a_clean_error_before_any_object() {
    let bytes = read(&data(
        "eset-events/pypi_backdoor_malicious_pypi_packages.misp-event.json.gz",
    ));
    let mut n = 0;
    let err = to_stix(
        &mut || Ok(&bytes[..]),
        ToStixOptions::default(),
        &mut |_| {
            n += 1;
            Ok(())
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("line 37374"), "{err}");
    assert_eq!(n, 0, "nothing emitted before the whole input was read");
}

/// MISP → STIX → MISP on every handed ESET event: each attribute's value, type, category,
/// to_ids, comment, tags (hence TLP tags) come back. Listed losses (not compared here):
/// galaxies come back as clusters without their meta; sightings, ObjectReferences, event
/// fields other than uuid/info/date/threat level/analysis/Orgc/tags are not carried.
#[test]
fn round_trip_keeps_every_attribute() {
    let mut compared = 0;
    for path in eset_events() {
        let bytes = read(&path);
        let (objs, _) = convert(&bytes, ToStixOptions::default());
        let index = concord_misp::from_stix::index(objs.clone());
        let report = objs.iter().find(|o| o["type"] == "report").unwrap();
        let back =
            to_misp_event(report["id"].as_str().unwrap(), &|id| index.get(id).cloned()).unwrap();
        let orig: Value = serde_json::from_slice(&bytes).unwrap();
        let orig = &orig["response"][0]["Event"];
        assert_eq!(back["Event"]["uuid"], orig["uuid"]);
        assert_eq!(back["Event"]["info"], orig["info"]);
        let key = |a: &Value| {
            let tags: Vec<String> = a["Tag"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            json!([
                a["uuid"],
                a["type"],
                a["category"],
                a["value"],
                a["to_ids"] == json!(true) || a["to_ids"] == json!("1"),
                a["comment"],
                tags
            ])
        };
        let mut want: Vec<Value> = orig["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(key)
            .collect();
        let mut got: Vec<Value> = back["Event"]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(key)
            .collect();
        for o in orig["Object"].as_array().into_iter().flatten() {
            want.extend(o["Attribute"].as_array().unwrap().iter().map(key));
        }
        for o in back["Event"]["Object"].as_array().into_iter().flatten() {
            got.extend(o["Attribute"].as_array().unwrap().iter().map(key));
        }
        want.sort_by_key(|v| v.to_string());
        got.sort_by_key(|v| v.to_string());
        assert_eq!(got, want, "{}", path.display());
        compared += want.len();
    }
    eprintln!("round trip: {compared} attributes compared");
    assert!(compared > 1500);
}

#[test]
fn warninglists_flag_or_drop() {
    let lists = Warninglists::load_dir(&data("warninglists")).expect("handed warninglists");
    assert_eq!(lists.lists().len(), 35);
    assert!(!lists.matches("ip-dst", "8.8.8.8").is_empty());
    assert!(!lists.matches("ip-dst", "10.1.2.3").is_empty());
    assert!(
        lists
            .matches("ip-dst", "203.0.113.77")
            .iter()
            .all(|n| !n.contains("1918"))
    );
    let event = json!({"Event": {"uuid": "cccccccc-cccc-4ccc-8ccc-cccccccccccc", "info": "wl", "timestamp": "1700000000",
        "Attribute": [
            {"uuid": "55555555-5555-4555-8555-555555555555", "type": "ip-dst", "category": "Network activity",
             "value": "8.8.8.8", "to_ids": true, "timestamp": "1700000000"},
            {"uuid": "66666666-6666-4666-8666-666666666666", "type": "ip-dst", "category": "Network activity",
             "value": "198.18.0.1", "to_ids": true, "timestamp": "1700000000"},
            {"uuid": "77777777-7777-4777-8777-777777777777", "type": "domain", "category": "Network activity",
             "value": "zz-not-listed-concord.example", "to_ids": true, "timestamp": "1700000000"}]}});
    let bytes = event.to_string();
    let opts = ToStixOptions {
        warninglists: Some(&lists),
        ..Default::default()
    };
    let (objs, report) = convert(bytes.as_bytes(), opts);
    assert_eq!(report.warninglisted.len(), 2, "{:?}", report.warninglisted);
    let flagged = objs
        .iter()
        .find(|o| o["id"] == "indicator--55555555-5555-4555-8555-555555555555")
        .unwrap();
    assert!(
        flagged["x_concord_warninglists"]
            .to_string()
            .contains("DNS"),
        "{flagged}"
    );
    let drop = ToStixOptions {
        warninglists: Some(&lists),
        drop_warninglisted: true,
        ..Default::default()
    };
    let (objs, report) = convert(bytes.as_bytes(), drop);
    assert_eq!(report.dropped, 2);
    assert_eq!(objs.iter().filter(|o| o["type"] == "indicator").count(), 1);
}

#[test]
fn feed_incremental_and_written_like_pymisp() {
    let dir = data("feed-eset-sshdoor");
    let (all, total) = feed::changed_events(&dir, &FeedState::default()).unwrap();
    assert_eq!((all.len(), total), (12, 12));
    let mut state = FeedState::default();
    for e in &all {
        state.events.insert(e.uuid.clone(), e.timestamp);
    }
    let state: FeedState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert!(feed::changed_events(&dir, &state).unwrap().0.is_empty());
    let mut older = state.clone();
    *older.events.get_mut(&all[3].uuid).unwrap() -= 1;
    let (changed, _) = feed::changed_events(&dir, &older).unwrap();
    assert_eq!(
        changed.iter().map(|e| &e.uuid).collect::<Vec<_>>(),
        vec![&all[3].uuid]
    );
    // hashes.csv and manifest as the handed feed (generated with PyMISP's logic)
    let mut events = Vec::new();
    for e in &all {
        events.push(serde_json::from_slice::<Value>(&std::fs::read(&e.path).unwrap()).unwrap());
    }
    let out = tempfile::tempdir().unwrap();
    feed::write_feed(out.path(), &events).unwrap();
    let mut ours: Vec<String> = std::fs::read_to_string(out.path().join("hashes.csv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut theirs: Vec<String> = std::fs::read_to_string(dir.join("hashes.csv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let m1: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    let m2: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for (k, v) in m2.as_object().unwrap() {
        for f in [
            "info",
            "date",
            "timestamp",
            "analysis",
            "threat_level_id",
            "Orgc",
        ] {
            assert_eq!(m1[k][f], v[f], "{k} {f}");
        }
    }
}

/// The interpreter of the interop virtual environment (`scripts/test` makes it from
/// tests/interop/requirements.txt, which pins misp-stix), or `None` to skip; panics instead of
/// skipping when `CONCORD_REQUIRE_INTEROP=1` (as crates/concord/tests/it/interop.rs does).
fn python() -> Option<PathBuf> {
    match std::env::var_os("CONCORD_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("CONCORD_REQUIRE_INTEROP").as_deref() != Ok("1"),
                "CONCORD_REQUIRE_INTEROP=1 but CONCORD_TEST_PYTHON is not set: run scripts/test"
            );
            eprintln!(
                "skipping: CONCORD_TEST_PYTHON not set (scripts/test sets it to a virtual \
                 environment with misp-stix from tests/interop/requirements.txt)"
            );
            None
        }
    }
}

/// misp-stix (MISP's converter, pinned in tests/interop/requirements.txt) on the handed ESET
/// events: object types and counts compared with ours, file by file. Equal where both follow
/// the same convention; every difference must be one of `EXPLAINED`, which says why.
#[test]
fn counts_against_misp_stix() {
    let Some(python) = python() else { return };
    const SCRIPT: &str = r#"
import gzip, json, sys, collections
from misp_stix_converter import MISPtoSTIX21Parser
out = {}
for path in sys.argv[1:]:
    d = json.load(gzip.open(path, 'rt') if path.endswith('.gz') else open(path))
    c = collections.Counter()
    try:
        for e in d['response']:
            p = MISPtoSTIX21Parser()
            p.parse_misp_event({'Event': e['Event']})
            for o in p.stix_objects:
                c[o['type']] += 1
                if o['type'] == 'relationship':
                    c['relationship:' + o['relationship_type']] += 1
        out[path] = dict(c)
    except Exception as e:
        out[path] = {'error': type(e).__name__ + ': ' + str(e)[:160]}
print(json.dumps(out))
"#;
    /// Types whose counts differ, and why.
    const EXPLAINED: &[(&str, &str)] = &[
        (
            "report",
            "misp-stix writes a grouping for an unpublished event (all ESET exports); Concord a report unless --misp-grouping: report+grouping compared as one",
        ),
        ("grouping", "as report"),
        (
            "observed-data",
            "misp-stix writes an indicator AND an observed-data (joined by based-on) for every MISP object with to_ids; Concord does so only when some of the object's attributes are not to_ids (issue 24, item 1), else the indicator alone, with the object's attributes in x_misp_attributes",
        ),
        (
            "relationship",
            "misp-stix's based-on relationships (above) and its object-reference verbs; Concord adds `uses` between the event's threat-actor/intrusion-set and attack-pattern clusters (misp-stix relationship_specs)",
        ),
        ("file", "SCOs of misp-stix's extra observed-data (above)"),
        (
            "domain-name",
            "SCOs of misp-stix's extra observed-data (above)",
        ),
        (
            "ipv4-addr",
            "SCOs of misp-stix's extra observed-data; misp-stix also writes ip-dst observables for domain-ip objects",
        ),
        (
            "network-traffic",
            "SCOs of misp-stix's extra observed-data (above)",
        ),
        ("url", "SCOs of misp-stix's extra observed-data (above)"),
        (
            "windows-registry-key",
            "SCOs of misp-stix's extra observed-data (above)",
        ),
        (
            "directory",
            "misp-stix maps file/path to a directory SCO; Concord keeps path in x_misp_attributes",
        ),
        (
            "email-addr",
            "Concord writes email-src/email-dst as email-message with from_ref/to_refs email-addr (misp-stix's pattern paths); misp-stix's observable form differs",
        ),
        ("email-message", "as email-addr"),
        (
            "x-misp-object",
            "templates misp-stix maps to STIX that Concord's table does not (elf, macho, av-signature, yara, vulnerability…), and the reverse",
        ),
        (
            "x-misp-attribute",
            "attribute types mapped by one side only (e.g. misp-stix: port, filename|… variants; Concord: link/uri as url)",
        ),
        (
            "indicator",
            "misp-stix turns yara/vulnerability objects into indicators/SDOs; Concord keeps them as x-misp-object",
        ),
        ("vulnerability", "as indicator"),
        (
            "identity",
            "misp-stix writes the Orgc identity once per conversion; Concord once per event",
        ),
        ("mutex", "SCOs of misp-stix's extra observed-data (above)"),
    ];
    let files = eset_events();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(&files)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: BTreeMap<String, BTreeMap<String, Value>> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut both = 0;
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for path in &files {
        let t = &theirs[&path.display().to_string()];
        if let Some(e) = t.get("error") {
            // misp-stix refuses clusters without a uuid (two ESET events); ours derive one.
            eprintln!("misp-stix failed on {}: {e}", path.display());
            assert!(
                e.as_str().unwrap().contains("not a valid STIX identifier"),
                "{e}"
            );
            continue;
        }
        both += 1;
        let (objects, _) = convert(&read(path), ToStixOptions::default());
        let ours = count_types(&objects);
        let get =
            |m: &BTreeMap<String, Value>, k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
        // the event itself: one container each
        assert_eq!(
            ours.get("report").copied().unwrap_or(0) as i64,
            get(t, "report") + get(t, "grouping"),
            "{}",
            path.display()
        );
        // galaxies: the same clusters
        for k in ["attack-pattern", "threat-actor", "intrusion-set"] {
            assert_eq!(
                ours.get(k).copied().unwrap_or(0) as i64,
                get(t, k),
                "{k} in {}",
                path.display()
            );
        }
        let keys: std::collections::BTreeSet<String> = ours
            .keys()
            .cloned()
            .chain(t.keys().filter(|k| !k.contains(':')).cloned())
            .collect();
        for k in keys {
            let e = totals.entry(k.clone()).or_default();
            e.0 += ours.get(&k).copied().unwrap_or(0) as i64;
            e.1 += get(t, &k);
        }
    }
    assert!(both >= 15, "misp-stix converted only {both} events");
    eprintln!("type: Concord / misp-stix ({both} events)");
    for (k, (a, b)) in &totals {
        eprintln!("  {k}: {a} / {b}");
        if a != b && k != "marking-definition" {
            let why = EXPLAINED.iter().find(|(t, _)| t == k);
            assert!(why.is_some(), "unexplained difference in {k}: {a} vs {b}");
        }
    }
}

/// Issue 24, item 12: indicators of bare addresses (`[ipv4-addr:value = '…']`, as IOC lists
/// and most producers write them) become typed `ip-dst` attributes, which MISP correlates,
/// not `stix2-pattern` ones; observed-data of an address SCO likewise. The addresses: every
/// `ip-dst` value of the ESET events.
#[test]
fn bare_address_indicators_export_as_ip_dst() {
    let mut addresses = Vec::new();
    for path in eset_events() {
        let event: Value = serde_json::from_slice(&read(&path)).unwrap();
        let event = &event["response"][0]["Event"];
        for a in event["Attribute"].as_array().into_iter().flatten() {
            if a["type"] == "ip-dst" {
                addresses.push(a["value"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(addresses.len() > 20, "{}", addresses.len());
    let uuid = |i: usize, kind: u8| format!("{:08x}-0000-4000-8000-{kind:012x}", i);
    let mut objects = Vec::new();
    let mut refs = Vec::new();
    for (i, ip) in addresses.iter().enumerate() {
        let sco = if ip.contains(':') {
            "ipv6-addr"
        } else {
            "ipv4-addr"
        };
        let id = format!("indicator--{}", uuid(i, 1));
        objects.push(json!({"type": "indicator", "spec_version": "2.1", "id": id,
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "pattern": format!("[{sco}:value = '{ip}']"), "pattern_type": "stix",
            "valid_from": "2024-01-01T00:00:00Z"}));
        refs.push(id);
        let addr = format!("{sco}--{}", uuid(i, 2));
        objects.push(json!({"type": sco, "spec_version": "2.1", "id": addr, "value": ip}));
        let od = format!("observed-data--{}", uuid(i, 3));
        objects.push(
            json!({"type": "observed-data", "spec_version": "2.1", "id": od,
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "first_observed": "2024-01-01T00:00:00Z", "last_observed": "2024-01-01T00:00:00Z",
            "number_observed": 1, "object_refs": [addr]}),
        );
        refs.push(od);
    }
    let report_id = format!("report--{}", uuid(0, 4));
    objects.push(
        json!({"type": "report", "spec_version": "2.1", "id": report_id,
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "name": "addresses", "published": "2024-01-01T00:00:00Z", "object_refs": refs}),
    );
    for o in &objects {
        concord_stix::validate_object(o).unwrap_or_else(|v| panic!("{o}: {v:?}"));
    }
    let index = concord_misp::from_stix::index(objects);
    let event = to_misp_event(&report_id, &|id| index.get(id).cloned()).unwrap();
    let attributes = event["Event"]["Attribute"].as_array().unwrap();
    assert_eq!(attributes.len(), 2 * addresses.len());
    for (a, ip) in attributes
        .iter()
        .zip(addresses.iter().flat_map(|ip| [ip, ip]))
    {
        assert_eq!(
            (a["type"].as_str(), a["value"].as_str()),
            (Some("ip-dst"), Some(ip.as_str())),
            "{a}"
        );
    }
}

/// Issue 24, item 3: one conversion, one TLP version. CIRCL's Xorist event (PyMISP's test
/// files; its event tag is `tlp:white`) converted as is, then re-tagged on the event and on
/// each attribute in turn with every TLP tag MISP has: with the default, only TLP 2.0 marking
/// definitions are written, with `TlpVersion::V1` only TLP 1.0 ones (AMBER+STRICT, which
/// TLP 1.0 lacks, excepted); every object whose labels carry a `tlp:` tag is marked (not a
/// label only), with the strictest of its own and its event's.
#[test]
fn one_tlp_version_per_conversion() {
    use concord_misp::tlp::{Level, TlpVersion, from_id, from_tag, from_tag_as};
    let original: Value = serde_json::from_slice(&read(&data(
        "pymisp-testfiles/57c4445b-c548-4654-af0b-4be3950d210f.json",
    )))
    .unwrap();
    let tags = [
        "tlp:white",
        "tlp:clear",
        "tlp:green",
        "tlp:amber",
        "tlp:amber+strict",
        "tlp:red",
    ];
    let mut events = vec![original.clone()];
    for (i, event_tag) in tags.iter().enumerate() {
        let mut e = original.clone();
        e["Event"]["Tag"][0]["name"] = json!(event_tag);
        for (j, a) in e["Event"]["Attribute"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            a["Tag"] = json!([{"name": tags[(i + j) % tags.len()].to_ascii_uppercase()}]);
        }
        events.push(e);
    }
    let mut marked = 0;
    for version in [TlpVersion::V2, TlpVersion::V1] {
        for event in &events {
            let bytes = event.to_string();
            let (objs, _) = convert(
                bytes.as_bytes(),
                ToStixOptions {
                    tlp_version: version,
                    ..Default::default()
                },
            );
            let definitions: HashMap<&str, &Value> = objs
                .iter()
                .filter(|o| o["type"] == "marking-definition")
                .map(|o| (o["id"].as_str().unwrap(), o))
                .collect();
            assert!(!definitions.is_empty());
            for d in definitions.values() {
                let v2 = d["extensions"]
                    ["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]["tlp_2_0"]
                    .as_str();
                let expect_v2 = version == TlpVersion::V2 || v2 == Some("amber+strict");
                assert_eq!(v2.is_some(), expect_v2, "{version:?}: {d}");
                assert_eq!(
                    d["definition_type"] == "tlp",
                    !expect_v2,
                    "{version:?}: {d}"
                );
            }
            let event_level = event["Event"]["Tag"][0]["name"].as_str().and_then(from_tag);
            for o in &objs {
                let own = o["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| from_tag(l.as_str()?))
                    .map(|m| m.level)
                    .max();
                let Some(own) = own else { continue };
                let want = own.max(event_level.map_or(Level::Clear, |m| m.level));
                let refs: Vec<&str> = o["object_marking_refs"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{}: a TLP label and no marking", o["id"]))
                    .iter()
                    .map(|m| m.as_str().unwrap())
                    .collect();
                let tlp: Vec<&str> = refs
                    .iter()
                    .copied()
                    .filter(|r| definitions.contains_key(r))
                    .collect();
                assert_eq!(tlp.len(), 1, "{}: {refs:?}", o["id"]);
                assert_eq!(from_id(tlp[0]).unwrap().level, want, "{}", o["id"]);
                marked += 1;
            }
        }
    }
    assert!(marked > 100, "{marked}");
    // The tags that exist in one version only, and the fixed ids.
    let v1 = |t| from_tag_as(TlpVersion::V1, t).unwrap();
    let v2 = |t| from_tag_as(TlpVersion::V2, t).unwrap();
    assert_eq!(
        v2("tlp:white").id,
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
    );
    assert_eq!(
        v1("tlp:clear").id,
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
    );
    assert_eq!(
        v2("TLP:RED").id,
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
    );
    assert_eq!(
        v1("tlp:red").id,
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
    );
    assert_eq!(
        v1("tlp:green").id,
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
    );
    assert_eq!(
        v2("tlp:green").id,
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
    );
    assert_eq!(v1("tlp:amber+strict").id, v2("tlp:amber+strict").id);
}

/// Issue 24, item 1: a MISP `file` object whose hashes are `to_ids` and whose file name is
/// not (ESET's CloudMensis event, object `eb4fcd68-…`; a `size-in-bytes` attribute added, as
/// MISP's file template has one): the indicator's pattern holds the IDS hashes only, and an
/// observed-data of the whole object (`based-on`) holds the name and the size as well, as
/// misp-stix writes them. The round trip still gives back the object's attributes once.
#[test]
fn file_object_ids_attributes_in_the_pattern_the_rest_observed() {
    let path = data("eset-events/cloudmensis_cloudmensis.misp.json.gz");
    let mut event: Value = serde_json::from_slice(&read(&path)).unwrap();
    let object_uuid = "eb4fcd68-6d14-4d6c-bb26-5cf60436e25e";
    let object = event["response"][0]["Event"]["Object"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["uuid"] == object_uuid)
        .unwrap();
    let attrs = object["Attribute"].as_array_mut().unwrap();
    let name = attrs
        .iter()
        .find(|a| a["object_relation"] == "filename")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let sha256 = attrs
        .iter()
        .find(|a| a["object_relation"] == "sha256")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    attrs.push(
        json!({"uuid": "4c6e5a1b-2d3f-4a5b-8c7d-9e0f1a2b3c4d", "object_relation": "size-in-bytes",
        "type": "size-in-bytes", "category": "Other", "value": "101400", "to_ids": false,
        "timestamp": "1539244800"}),
    );
    let (objs, _) = convert(event.to_string().as_bytes(), ToStixOptions::default());
    let by_id: HashMap<&str, &Value> = objs
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    let indicator = by_id[format!("indicator--{object_uuid}").as_str()];
    let pattern = indicator["pattern"].as_str().unwrap();
    assert!(pattern.contains(&sha256), "{pattern}");
    assert!(
        !pattern.contains(&name) && !pattern.contains("file:name"),
        "{pattern}"
    );
    assert!(!pattern.contains("file:size"), "{pattern}");
    let observed = by_id[format!("observed-data--{object_uuid}").as_str()];
    let file = observed["object_refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| by_id[r.as_str().unwrap()])
        .find(|o| o["type"] == "file")
        .expect("a file SCO");
    assert_eq!(file["name"], name.as_str());
    assert_eq!(file["size"], 101400);
    assert_eq!(file["hashes"]["SHA-256"], sha256.as_str());
    assert!(objs.iter().any(|o| o["type"] == "relationship"
        && o["relationship_type"] == "based-on"
        && o["source_ref"] == indicator["id"]
        && o["target_ref"] == observed["id"]));
    // Back to MISP: the object once, with the size.
    let index = concord_misp::from_stix::index(objs.clone());
    let report = objs.iter().find(|o| o["type"] == "report").unwrap();
    let back = to_misp_event(report["id"].as_str().unwrap(), &|id| index.get(id).cloned()).unwrap();
    let back_objects: Vec<&Value> = back["Event"]["Object"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["uuid"] == object_uuid)
        .collect();
    assert_eq!(back_objects.len(), 1);
    assert!(
        back_objects[0]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "size-in-bytes" && a["value"] == "101400")
    );
    assert!(
        !back["Event"]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["value"] == name.as_str())
    );
}

/// The objects of a collection for the export tests: every handed ESET event as STIX (its
/// report, attributes, MISP objects, galaxy clusters, identities, markings), then a grouping
/// over two of them and an observed-data, objects outside every report (an indicator, a
/// malware with a sample, an observed-data of an address, a relationship and a sighting,
/// which MISP has no place for), a reference to an object that is not there, and two
/// versions of one indicator (the newer one, added first, must win).
fn export_collection() -> Vec<String> {
    let mut objects: Vec<Value> = Vec::new();
    for path in eset_events() {
        let (objs, _) = convert(&read(&path), ToStixOptions::default());
        objects.extend(objs);
    }
    let t = "2024-03-01T00:00:00.000Z";
    let id = |kind: &str, n: u32| format!("{kind}--7d1c1f3e-5b2a-4c8d-9e0f-{n:012}");
    let first_indicator = objects.iter().find(|o| o["type"] == "indicator").unwrap()["id"].clone();
    let extra = json!([
        {"type": "file", "spec_version": "2.1", "id": id("file", 1),
         "hashes": {"SHA-256": "0f5b1c1f1f5a3e7c4c9d2f9e0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"}},
        {"type": "malware", "spec_version": "2.1", "id": id("malware", 2), "created": t,
         "modified": t, "is_family": false, "sample_refs": [id("file", 1)]},
        {"type": "ipv4-addr", "spec_version": "2.1", "id": id("ipv4-addr", 3), "value": "198.51.100.23"},
        {"type": "observed-data", "spec_version": "2.1", "id": id("observed-data", 4), "created": t,
         "modified": t, "first_observed": t, "last_observed": t, "number_observed": 1,
         "object_refs": [id("ipv4-addr", 3)]},
        {"type": "sighting", "spec_version": "2.1", "id": id("sighting", 6), "created": t,
         "modified": t, "sighting_of_ref": id("malware", 2)},
        {"type": "grouping", "spec_version": "2.1", "id": id("grouping", 7), "created": t,
         "modified": t, "name": "two of them", "context": "suspicious-activity",
         "object_marking_refs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
         "object_refs": [first_indicator, id("observed-data", 4), id("indicator", 404)]},
        {"type": "relationship", "spec_version": "2.1", "id": id("relationship", 9), "created": t,
         "modified": t, "relationship_type": "variant-of", "source_ref": id("malware", 2),
         "target_ref": id("malware", 2)},
        {"type": "indicator", "spec_version": "2.1", "id": id("indicator", 10), "created": t,
         "modified": "2024-03-02T00:00:00.000Z", "pattern_type": "stix", "valid_from": t,
         "pattern": "[domain-name:value = 'newer.example.org']"},
        {"type": "indicator", "spec_version": "2.1", "id": id("indicator", 10), "created": t,
         "modified": t, "pattern_type": "stix", "valid_from": t,
         "pattern": "[domain-name:value = 'older.example.org']"},
        {"type": "indicator", "spec_version": "2.1", "id": id("indicator", 11), "created": t,
         "modified": t, "pattern_type": "stix", "valid_from": t,
         "pattern": "[url:value = 'http://a.example.org/x\\'y']", "labels": ["outside"]}
    ]);
    objects.extend(extra.as_array().unwrap().iter().cloned());
    objects.iter().map(|o| o.to_string()).collect()
}

/// A spill skips `null` and objects without an id, and names a body that is not an object.
#[test]
fn spill_skips_what_has_no_id_and_names_what_is_not_an_object() {
    let mut spill = concord_misp::export::Spill::new(tempfile::tempfile().unwrap());
    spill.add("null").unwrap();
    spill.add(r#"{"type": "indicator"}"#).unwrap();
    let err = spill.add("[1, 2]").unwrap_err().to_string();
    assert!(err.contains("object 3 of the export"), "{err}");
    spill.finish().unwrap();
    assert!(spill.is_empty());
}

fn spill_of(bodies: &[String]) -> concord_misp::export::Spill {
    let mut spill = concord_misp::export::Spill::new(tempfile::tempfile().unwrap());
    for b in bodies {
        spill.add(b).unwrap();
    }
    spill.finish().unwrap();
    spill
}

fn scratch() -> concord_misp::export::Scratch {
    concord_misp::export::Scratch {
        objects: tempfile::tempfile().unwrap(),
        galaxies: tempfile::tempfile().unwrap(),
    }
}

/// Issue 22: the streamed export writes, byte for byte, what building every event whole and
/// writing it with `feed::write_feed` / `serde_json::to_string_pretty` writes (the export
/// before it streamed): every file of the feed, and the MISP event JSON; and notes the same
/// objects as not carried.
#[test]
fn streamed_export_writes_the_bytes_of_whole_events() {
    let bodies = export_collection();
    let spill = spill_of(&bodies);
    let mut plan = spill.plan("Concord collection test", "test");
    let (events, whole_notes) = concord_misp::export::events_whole(&spill, &plan);
    assert_eq!(events.len(), plan.events());
    assert!(events.len() > 20, "{}", events.len());
    let loose = &events.last().unwrap()["Event"];
    assert_eq!(loose["info"], "Concord collection test");
    let attrs = |e: &Value| e["Attribute"].as_array().unwrap().len();
    assert_eq!(attrs(loose), 3, "{loose}");
    assert!(loose.to_string().contains("newer.example.org"), "{loose}");
    assert!(!loose.to_string().contains("older.example.org"), "{loose}");
    assert!(
        events
            .iter()
            .any(|e| !e["Event"]["Object"].as_array().unwrap().is_empty()
                && !e["Event"]["Galaxy"].as_array().unwrap().is_empty()),
        "some event carries MISP objects and galaxy clusters"
    );

    let whole = tempfile::tempdir().unwrap();
    feed::write_feed(whole.path(), &events).unwrap();
    let streamed = tempfile::tempdir().unwrap();
    let n = concord_misp::export::write_feed(streamed.path(), &spill, &mut plan, &mut scratch())
        .unwrap();
    assert_eq!(n, events.len());
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(whole.path()), names(streamed.path()));
    assert_eq!(names(whole.path()).len(), events.len() + 2);
    for name in names(whole.path()) {
        let a = std::fs::read(whole.path().join(&name)).unwrap();
        let b = std::fs::read(streamed.path().join(&name)).unwrap();
        assert!(a == b, "{name:?} differs");
    }
    assert_eq!(plan.notes(), &whole_notes[..]);
    let noted: Vec<&str> = whole_notes.iter().map(|n| n.id.as_str()).collect();
    for id in [
        "relationship--7d1c1f3e-5b2a-4c8d-9e0f-000000000009",
        "sighting--7d1c1f3e-5b2a-4c8d-9e0f-000000000006",
        "indicator--7d1c1f3e-5b2a-4c8d-9e0f-000000000404",
    ] {
        assert!(noted.contains(&id), "{id} noted: {noted:?}");
    }

    let mut plan = spill.plan("Concord collection test", "test");
    let (events, _) = concord_misp::export::events_whole(&spill, &plan);
    let mut out = Vec::new();
    concord_misp::export::write_events(&mut out, &spill, &mut plan, &mut scratch()).unwrap();
    let expected = serde_json::to_string_pretty(&json!({ "response": events })).unwrap();
    assert!(out == expected.as_bytes(), "MISP event JSON differs");

    // One event: the event alone; none: an empty response.
    let (objs, _) = convert(&read(&eset_events()[0]), ToStixOptions::default());
    let one: Vec<String> = objs.iter().map(Value::to_string).collect();
    let spill = spill_of(&one);
    let mut plan = spill.plan("t", "t");
    let (events, _) = concord_misp::export::events_whole(&spill, &plan);
    assert_eq!(events.len(), 1);
    let mut out = Vec::new();
    concord_misp::export::write_events(&mut out, &spill, &mut plan, &mut scratch()).unwrap();
    let expected = serde_json::to_string_pretty(&events[0]).unwrap();
    assert!(out == expected.as_bytes(), "one event differs");
    let spill = spill_of(&[]);
    let mut plan = spill.plan("t", "t");
    let mut out = Vec::new();
    concord_misp::export::write_events(&mut out, &spill, &mut plan, &mut scratch()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        serde_json::to_string_pretty(&json!({"response": []})).unwrap()
    );
    let empty = tempfile::tempdir().unwrap();
    concord_misp::export::write_feed(empty.path(), &spill, &mut plan, &mut scratch()).unwrap();
    assert_eq!(
        std::fs::read_to_string(empty.path().join("manifest.json")).unwrap(),
        "{}"
    );
    assert_eq!(
        std::fs::read_to_string(empty.path().join("hashes.csv")).unwrap(),
        ""
    );
}

/// Issue 22, memory without timing: writing a feed holds at most the event's container, one
/// referenced object and that object's SCOs at a time (bodies read back from the spill and
/// alive at once, counted by the spill), however many objects the collection has; the
/// events were 20 GiB when built whole for 1.47M objects.
#[test]
fn streamed_export_holds_one_object_at_a_time() {
    let bodies = |n: usize| {
        let t = "2024-03-01T00:00:00.000Z";
        let mut v = Vec::new();
        let mut refs = Vec::new();
        for i in 0..n {
            let id = format!("indicator--00000000-0000-4000-8000-{i:012x}");
            v.push(
                json!({"type": "indicator", "spec_version": "2.1", "id": id, "created": t,
                "modified": t, "pattern_type": "stix", "valid_from": t,
                "pattern": format!("[domain-name:value = 'host{i}.example.org']")}),
            );
            if i % 2 == 0 {
                refs.push(id);
            }
            let sco = format!("ipv4-addr--00000000-0000-4000-9000-{i:012x}");
            v.push(
                json!({"type": "ipv4-addr", "spec_version": "2.1", "id": sco,
                "value": format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)}),
            );
            let od = format!("observed-data--00000000-0000-4000-a000-{i:012x}");
            v.push(
                json!({"type": "observed-data", "spec_version": "2.1", "id": od,
                "created": t, "modified": t, "first_observed": t, "last_observed": t,
                "number_observed": 1, "object_refs": [sco]}),
            );
            if i % 3 == 0 {
                refs.push(od);
            }
        }
        v.push(json!({"type": "report", "spec_version": "2.1",
            "id": "report--00000000-0000-4000-8000-000000000000", "created": t, "modified": t,
            "published": t, "name": "half of them", "object_refs": refs}));
        v.iter().map(Value::to_string).collect::<Vec<_>>()
    };
    for n in [10, 3000] {
        let spill = spill_of(&bodies(n));
        assert_eq!(spill.len(), 3 * n + 1);
        let mut plan = spill.plan("t", "t");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            concord_misp::export::write_feed(dir.path(), &spill, &mut plan, &mut scratch())
                .unwrap(),
            2
        );
        let lines = std::fs::read_to_string(dir.path().join("hashes.csv"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 2 * n, "every indicator and observed-data once");
        // the report, an observed-data and its address
        assert_eq!(spill.most_held(), 3, "n = {n}");
    }
}
