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
