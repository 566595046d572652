//! MISP at the command line (issue 6): `concord import` of MISP events and feeds,
//! `concord export --format misp|misp-feed`, warninglists; on the handed data.

use crate::support::{Node, concord, data, run};

fn eset(name: &str) -> std::path::PathBuf {
    data(&format!("misp/eset-events/{name}.gz"))
}

fn import_json(node: &Node, args: &[&str]) -> (i32, serde_json::Value) {
    let out = run(concord()
        .args(["import", "--json", "--collection", "misp", "--data-dir"])
        .arg(node.path())
        .args(args));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

#[test]
fn misp_event_imports_through_the_ingest_and_is_idempotent() {
    let node = Node::init();
    let file = eset("turla_misp-turla-outlook-event.json");
    let (code, doc) = import_json(&node, &[file.to_str().unwrap()]);
    assert_eq!(code, 0, "{doc}");
    let f = &doc["files"][0];
    let added = f["added"].as_u64().unwrap();
    assert!(added > 20, "{doc}");
    assert_eq!(f["misp"]["events"], 1);
    assert_eq!(
        f["misp"]["stix_objects"].as_u64().unwrap(),
        added + f["already_present"].as_u64().unwrap()
    );
    let (code, doc) = import_json(&node, &[file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(doc["files"][0]["added"], 0);
    assert_eq!(
        doc["files"][0]["already_present"], doc["files"][0]["total"],
        "{doc}"
    );
    // audited like any import
    let out = run(concord()
        .args(["audit", "verify", "--data-dir"])
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn invalid_misp_json_stores_nothing() {
    let node = Node::init();
    let good = eset("mozi_mozi.misp-event.json");
    let bad = eset("pypi_backdoor_malicious_pypi_packages.misp-event.json");
    let (code, doc) = import_json(&node, &[bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    let err = doc["files"][0]["error"].as_str().unwrap();
    assert!(err.contains("line 37374"), "{err}");
    // the collection holds nothing; a good file after it imports
    let (code, doc) = import_json(&node, &[good.to_str().unwrap()]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        doc["files"][0]["added"], doc["files"][0]["total"],
        "nothing of the bad file was stored: {doc}"
    );
}

#[test]
fn misp_feed_second_run_reads_nothing() {
    let node = Node::init();
    let feed = data("misp/feed-eset-sshdoor");
    let (code, doc) = import_json(&node, &["--misp-feed", feed.to_str().unwrap()]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["misp_feed"]["events"], 12);
    assert_eq!(doc["misp_feed"]["files"].as_array().unwrap().len(), 12);
    let (code, doc) = import_json(&node, &["--misp-feed", feed.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        doc["misp_feed"]["files"].as_array().unwrap().len(),
        0,
        "{doc}"
    );
}

#[test]
fn export_misp_and_feed_give_back_the_attributes() {
    let node = Node::init();
    let file = eset("sednit_2018-11-20_Zebrocy.json");
    let (code, _) = import_json(&node, &[file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let out_file = node.path().join("out.misp.json");
    let out = run(concord()
        .args(["export", "--collection", "misp", "--format", "misp", "-o"])
        .arg(&out_file)
        .arg("--data-dir")
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    let orig: serde_json::Value =
        serde_json::from_slice(&crate::support::read_path(&file)).unwrap();
    let values = |e: &serde_json::Value| {
        let mut v: Vec<String> = e["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{}|{}", a["type"], a["value"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        values(&back["Event"]),
        values(&orig["response"][0]["Event"])
    );
    let dir = node.path().join("feed");
    let out = run(concord()
        .args([
            "export",
            "--collection",
            "misp",
            "--format",
            "misp-feed",
            "-o",
        ])
        .arg(&dir)
        .arg("--data-dir")
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let uuid = orig["response"][0]["Event"]["uuid"].as_str().unwrap();
    assert!(manifest.get(uuid).is_some(), "{manifest}");
    assert!(dir.join(format!("{uuid}.json")).is_file());
    assert!(
        std::fs::read_to_string(dir.join("hashes.csv"))
            .unwrap()
            .lines()
            .count()
            > 10
    );
}

#[test]
fn warninglisted_values_flagged_or_dropped() {
    let node = Node::init();
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("e.json");
    std::fs::write(
        &event,
        serde_json::json!({"Event": {"uuid": "cccccccc-cccc-4ccc-8ccc-cccccccccccc", "info": "wl",
            "timestamp": "1700000000", "Attribute": [
            {"uuid": "55555555-5555-4555-8555-555555555555", "type": "ip-dst",
             "category": "Network activity", "value": "8.8.8.8", "to_ids": true,
             "timestamp": "1700000000"}]}})
        .to_string(),
    )
    .unwrap();
    let lists = data("misp/warninglists");
    let (code, doc) = import_json(
        &node,
        &[
            "--warninglists",
            lists.to_str().unwrap(),
            event.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{doc}");
    let flagged = &doc["files"][0]["misp"]["warninglisted"];
    assert_eq!(flagged.as_array().unwrap().len(), 1, "{doc}");
    assert!(flagged[0]["rule"].as_str().unwrap().contains("8.8.8.8"));
    let node2 = Node::init();
    let (code, doc) = import_json(
        &node2,
        &[
            "--warninglists",
            lists.to_str().unwrap(),
            "--drop-warninglisted",
            event.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["files"][0]["misp"]["dropped"], 1);
}

/// Issue 24, item 2: STIX → MISP drops nothing without a line. A report holding an unnamed
/// malware with a sample (a SHA-256 of ESET's Agrius list), an observed-data of an address
/// and a sighting; outside it, a named malware and a relationship. The unnamed malware's
/// cluster is named after its id and its sample's hash is an attribute; the address is an
/// `ip-dst` attribute; the malware outside every report is in the collection's event; the
/// sighting and the relationship are named on stderr.
#[test]
fn stix_to_misp_drops_nothing_silently() {
    let node = Node::init();
    let sha256 = std::fs::read_to_string(data("ioc/eset-hashes/agrius__samples.sha256"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let t = "2024-03-01T00:00:00.000Z";
    let id = |kind: &str, n: u32| format!("{kind}--7d1c1f3e-5b2a-4c8d-9e0f-{n:012}");
    let bundle = serde_json::json!({"type": "bundle", "id": id("bundle", 0), "objects": [
        {"type": "file", "spec_version": "2.1", "id": id("file", 1), "hashes": {"SHA-256": sha256}},
        {"type": "malware", "spec_version": "2.1", "id": id("malware", 2), "created": t, "modified": t,
         "is_family": false, "sample_refs": [id("file", 1)]},
        {"type": "ipv4-addr", "spec_version": "2.1", "id": id("ipv4-addr", 3), "value": "198.51.100.23"},
        {"type": "observed-data", "spec_version": "2.1", "id": id("observed-data", 4), "created": t,
         "modified": t, "first_observed": t, "last_observed": t, "number_observed": 1,
         "object_refs": [id("ipv4-addr", 3)]},
        {"type": "identity", "spec_version": "2.1", "id": id("identity", 5), "created": t, "modified": t,
         "name": "a SOC", "identity_class": "organization"},
        {"type": "sighting", "spec_version": "2.1", "id": id("sighting", 6), "created": t, "modified": t,
         "sighting_of_ref": id("malware", 2), "where_sighted_refs": [id("identity", 5)]},
        {"type": "report", "spec_version": "2.1", "id": id("report", 7), "created": t, "modified": t,
         "name": "Agrius sample", "published": t,
         "object_refs": [id("malware", 2), id("observed-data", 4), id("sighting", 6)]},
        {"type": "malware", "spec_version": "2.1", "id": id("malware", 8), "created": t, "modified": t,
         "name": "Apostle", "is_family": true},
        {"type": "relationship", "spec_version": "2.1", "id": id("relationship", 9), "created": t,
         "modified": t, "relationship_type": "variant-of", "source_ref": id("malware", 2),
         "target_ref": id("malware", 8)}
    ]});
    let file = node.path().join("agrius.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    let (code, r) = node.import("agrius", &[&file]);
    assert_eq!(code, 0, "{r}");
    let out = run(concord()
        .args([
            "export",
            "--collection",
            "agrius",
            "--format",
            "misp",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = doc["response"].as_array().expect("two events");
    assert_eq!(events.len(), 2, "{doc}");
    let report = &events[0]["Event"];
    assert_eq!(report["info"], "Agrius sample");
    let attrs: Vec<(String, String)> = report["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap().into(),
                a["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        attrs.contains(&("sha256".into(), sha256.clone())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("ip-dst".into(), "198.51.100.23".into())),
        "{attrs:?}"
    );
    let cluster = &report["Galaxy"][0]["GalaxyCluster"][0];
    assert_eq!(
        cluster["value"],
        format!("unnamed malware {}", id("malware", 2))
    );
    let loose = &events[1]["Event"];
    assert_eq!(
        loose["Galaxy"][0]["GalaxyCluster"][0]["value"], "Apostle",
        "{loose}"
    );
    for (what, why) in [
        (
            id("sighting", 6),
            "sighting: MISP events have no place for it",
        ),
        (
            id("relationship", 9),
            "relationship: MISP events have no place for it",
        ),
    ] {
        assert!(stderr.contains(&format!("  {what}: {why}")), "{stderr}");
    }
    assert!(
        stderr.contains("2 objects not carried into MISP:"),
        "{stderr}"
    );
}

/// Issue 24, item 10, for MISP: an updated event (ESET's Zebrocy event, its timestamp and its
/// first attribute's timestamp and comment moved on a day, as MISP does on an edit) imports as new
/// versions that keep `created` (STIX 2.1 §3.6): nothing is refused (before: the report's
/// new version, whose `created` was the event's new time), the rest is already present.
#[test]
fn an_updated_misp_event_imports_as_new_versions_keeping_created() {
    let node = Node::init();
    let file = eset("sednit_2018-11-20_Zebrocy.json");
    let (code, first) = import_json(&node, &[file.to_str().unwrap()]);
    assert_eq!(code, 0, "{first}");
    let mut event: serde_json::Value =
        serde_json::from_slice(&crate::support::read_path(&file)).unwrap();
    let e = &mut event["response"][0]["Event"];
    let bump = |v: &mut serde_json::Value| {
        let t: i64 = v.as_str().unwrap().parse().unwrap();
        *v = serde_json::json!((t + 86_400).to_string());
    };
    bump(&mut e["timestamp"]);
    let a = e["Attribute"]
        .as_array_mut()
        .unwrap()
        .first_mut()
        .expect("an attribute");
    bump(&mut a["timestamp"]);
    a["comment"] = serde_json::json!("seen again");
    let updated = node.path().join("zebrocy-updated.json");
    std::fs::write(&updated, event.to_string()).unwrap();
    let (code, second) = import_json(&node, &[updated.to_str().unwrap()]);
    assert_eq!(code, 0, "{second}");
    let f = &second["files"][0];
    assert_eq!(f["rejected"].as_array().unwrap().len(), 0, "{f}");
    // The report and the attribute, and the objects whose `modified` is the event's time
    // (its galaxy clusters and their relationships); the other attributes are unchanged.
    let added = f["added"].as_u64().unwrap();
    assert!((2..=4).contains(&added), "{f}");
    assert_eq!(
        f["already_present"].as_u64().unwrap() + added,
        f["total"].as_u64().unwrap(),
        "{f}"
    );
}

/// Issue 22: `export --format misp-feed --partner` reads page by page through the egress door
/// as the other exports do: one audit entry per page of 1,000 (2,501 objects: three), every
/// object version recorded for the partner at door `export`, a RED one withheld and absent
/// from the feed; the 2,500 indicators outside any report make one event of 2,500 attributes.
#[test]
fn misp_feed_export_pages_through_the_door_audited_per_page() {
    let node = Node::init();
    let t = "2024-03-01T00:00:00.000Z";
    let white = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
    let red = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    let mut objects: Vec<serde_json::Value> = (0..2500)
        .map(|i| {
            serde_json::json!({"type": "indicator", "spec_version": "2.1",
                "id": format!("indicator--00000000-0000-4000-8000-{i:012x}"), "created": t,
                "modified": t, "pattern_type": "stix", "valid_from": t,
                "object_marking_refs": [white],
                "pattern": format!("[domain-name:value = 'host{i}.example.org']")})
        })
        .collect();
    objects.push(
        serde_json::json!({"type": "indicator", "spec_version": "2.1",
        "id": "indicator--00000000-0000-4000-8000-ffffffffffff", "created": t, "modified": t,
        "pattern_type": "stix", "valid_from": t, "object_marking_refs": [red],
        "pattern": "[domain-name:value = 'red.example.org']"}),
    );
    let bundle = serde_json::json!({"type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects});
    let file = node.path().join("many.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    assert_eq!(node.import("many", &[&file]).0, 0);
    let concord_in = |args: &[&str]| {
        let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    concord_in(&[
        "partner",
        "add",
        "cert-x",
        "--jurisdiction",
        "de",
        "--read",
        "many",
        "--json",
    ]);
    let entries = |doc: serde_json::Value| doc["entries"].as_i64().unwrap();
    let before = entries(concord_in(&["audit", "verify", "--json"]));
    let dir = node.path().join("feed");
    concord_in(&[
        "export",
        "--collection",
        "many",
        "--partner",
        "cert-x",
        "--format",
        "misp-feed",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let after = concord_in(&["audit", "verify", "--json"]);
    assert_eq!(after["intact"], true, "{after}");
    assert_eq!(entries(after) - before, 3, "one audit entry per page");
    let shown = concord_in(&[
        "audit",
        "show",
        "--partner",
        "cert-x",
        "--limit",
        "5000",
        "--json",
    ]);
    let rows: Vec<_> = shown
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["door"] == "export")
        .collect();
    assert_eq!(rows.len(), 2501);
    let withheld: Vec<_> = rows
        .iter()
        .filter(|r| r["decision"] == "withheld")
        .collect();
    assert_eq!(withheld.len(), 1);
    assert!(
        withheld[0]["object_id"]
            .as_str()
            .unwrap()
            .ends_with("ffffffffffff")
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let uuids: Vec<&String> = manifest.as_object().unwrap().keys().collect();
    assert_eq!(uuids.len(), 1, "{manifest}");
    let event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", uuids[0]))).unwrap())
            .unwrap();
    let attributes = event["Event"]["Attribute"].as_array().unwrap();
    assert_eq!(attributes.len(), 2500);
    assert!(!event.to_string().contains("red.example.org"));
    let hashes = std::fs::read_to_string(dir.join("hashes.csv")).unwrap();
    assert_eq!(hashes.lines().count(), 2500);
}
