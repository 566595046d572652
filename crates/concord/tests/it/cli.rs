//! `concord init | import | export` on real files.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::support::{Node, concord, data, run};

/// Number of entries in a collection, read back through `concord collection list --json`.
fn count(node: &Node, alias: &str) -> u64 {
    let out = run(concord()
        .args(["collection", "list", "--json", "--data-dir"])
        .arg(node.path()));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["alias"] == alias)
        .map_or(0, |c| c["object_versions"].as_u64().unwrap())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const INDICATOR: &str = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","name":"first","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}"#;

fn bundle(objects: &[&str]) -> String {
    format!(
        r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
        objects.join(",")
    )
}

#[test]
fn init_generates_a_token_once_or_takes_one_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(concord()
        .args(["init", "--json", "--data-dir"])
        .arg(dir.path()));
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["admin_token"].as_str().unwrap().len(), 64);
    assert!(dir.path().join("concord.toml").exists());

    let dir = tempfile::tempdir().unwrap();
    let out = run(concord()
        .env("CONCORD_ADMIN_TOKEN", "from-the-environment-123")
        .args(["init", "--json", "--data-dir"])
        .arg(dir.path()));
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc.get("admin_token").is_none(),
        "a given token is not printed back"
    );
}

#[test]
fn import_ics_then_again_adds_nothing() {
    let node = Node::init();
    let ics = data("stix/attack/ics-attack-18.1.json.gz");
    let (code, r) = node.import("ics", &[&ics]);
    assert_eq!(code, 0, "{r}");
    let f = &r["files"][0];
    assert_eq!(
        (f["total"].as_u64(), f["added"].as_u64()),
        (Some(1826), Some(1826)),
        "{f}"
    );
    assert_eq!(f["rejected"].as_array().unwrap().len(), 0);
    let (code, r) = node.import("ics", &[&ics]);
    assert_eq!(code, 0);
    let f = &r["files"][0];
    assert_eq!(
        (f["added"].as_u64(), f["already_present"].as_u64()),
        (Some(0), Some(1826))
    );
    assert_eq!(count(&node, "ics"), 1826);
}

#[test]
fn import_from_stdin_and_gzip() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let text = bundle(&[INDICATOR]);
    let gz = tmp.path().join("one.json.gz");
    let mut enc = flate2_writer(&gz);
    enc.write_all(text.as_bytes()).unwrap();
    drop(enc);
    let (code, r) = node.import("a", &[&gz]);
    assert_eq!((code, r["files"][0]["added"].as_u64()), (0, Some(1)), "{r}");

    let mut child = concord()
        .args(["import", "--json", "--collection", "b", "--data-dir"])
        .arg(node.path())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["files"][0]["added"].as_u64(), Some(1), "{r}");
}

/// A gzip writer through the `gzip` program (no compression crate needed in the tests).
fn flate2_writer(path: &Path) -> impl Write {
    struct Gz(std::process::Child);
    impl Write for Gz {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.stdin.as_mut().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for Gz {
        fn drop(&mut self) {
            drop(self.0.stdin.take());
            self.0.wait().unwrap();
        }
    }
    let file = std::fs::File::create(path).unwrap();
    Gz(std::process::Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .unwrap())
}

#[test]
fn truncated_gzip_is_an_error_and_stores_nothing() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("ics.json.gz");
    let mut w = flate2_writer(&gz);
    w.write_all(&crate::support::read_data(
        "stix/attack/ics-attack-18.1.json.gz",
    ))
    .unwrap();
    drop(w);
    let bytes = std::fs::read(&gz).unwrap();
    let cut = tmp.path().join("cut.json.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, r) = node.import("ics", &[&cut]);
    assert_eq!(code, 1);
    let err = r["files"][0]["error"].as_str().unwrap();
    assert!(err.contains("read error") || err.contains("EOF"), "{err}");
    assert_eq!(count(&node, "ics"), 0, "nothing half-written");
}

#[test]
fn malformed_json_names_line_and_column_and_keeps_what_was_stored() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.json", &bundle(&[INDICATOR]));
    assert_eq!(node.import("c", &[&good]).0, 0);
    let bad = write(
        tmp.path(),
        "bad.json",
        "{\"type\": \"bundle\",\n \"id\": \"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11\",\n \"objects\": [\n  {\"type\": \"note\",}\n]}",
    );
    let (code, r) = node.import("c", &[&bad]);
    assert_eq!(code, 1);
    let err = r["files"][0]["error"].as_str().unwrap();
    assert!(err.contains("line 4, column 19"), "{err}");
    assert_eq!(count(&node, "c"), 1);
}

#[test]
fn a_file_that_is_not_a_bundle() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let arr = write(tmp.path(), "array.json", &format!("[{INDICATOR}]"));
    let obj = write(tmp.path(), "object.json", INDICATOR);
    let (code, r) = node.import("c", &[&arr, &obj]);
    assert_eq!(code, 1);
    for f in r["files"].as_array().unwrap() {
        let err = f["error"].as_str().unwrap();
        assert!(err.contains("not a STIX bundle"), "{err}");
    }
    assert_eq!(count(&node, "c"), 0);
}

#[test]
fn conflicting_content_for_one_version_is_rejected_and_the_first_kept() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let first = write(tmp.path(), "1.json", &bundle(&[INDICATOR]));
    let changed = INDICATOR.replace("\"first\"", "\"second\"");
    let second = write(tmp.path(), "2.json", &bundle(&[&changed]));
    assert_eq!(node.import("c", &[&first]).0, 0);
    let (code, r) = node.import("c", &[&second]);
    assert_eq!(code, 1);
    let rej = &r["files"][0]["rejected"][0];
    assert_eq!(rej["id"], "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f");
    assert!(
        rej["reasons"][0]
            .as_str()
            .unwrap()
            .contains("already holds a different version"),
        "{rej}"
    );
    let out = run(concord()
        .args(["export", "--collection", "c", "--data-dir"])
        .arg(node.path()));
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["objects"][0]["name"], "first");
    // Same content written differently (key order, spacing) is the same version.
    let v: serde_json::Value = serde_json::from_str(INDICATOR).unwrap();
    let pretty = write(
        tmp.path(),
        "3.json",
        &bundle(&[&serde_json::to_string_pretty(&v).unwrap()]),
    );
    let (code, r) = node.import("c", &[&pretty]);
    assert_eq!(
        (code, r["files"][0]["already_present"].as_u64()),
        (0, Some(1)),
        "{r}"
    );
}

#[test]
fn invalid_objects_are_rejected_with_property_and_rule_and_the_rest_imports() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let no_z = INDICATOR
        .replace(
            "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "11111111-17d4-4cbf-938f-98ee46b3cd3f",
        )
        .replace(
            "\"modified\":\"2016-04-06T20:03:48.000Z\"",
            "\"modified\":\"2016-04-06T20:03:48.000\"",
        );
    let seconds = INDICATOR
        .replace(
            "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "22222222-17d4-4cbf-938f-98ee46b3cd3f",
        )
        .replace(
            "\"created\":\"2016-04-06T20:03:48.000Z\"",
            "\"created\":\"2016-04-06T20:03:48Z\"",
        );
    let custom_ok = r#"{"type":"x-acme-widget","spec_version":"2.1","id":"x-acme-widget--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z","x_acme_size":3}"#;
    let custom_bad = r#"{"type":"Bad_Type","spec_version":"2.1","id":"Bad_Type--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z"}"#;
    let deep = format!(
        "{{\"type\":\"note\",\"x\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let f = write(
        tmp.path(),
        "mixed.json",
        &bundle(&[INDICATOR, &no_z, &seconds, custom_ok, custom_bad, &deep]),
    );
    let (code, r) = node.import("c", &[&f]);
    assert_eq!(code, 1);
    let file = &r["files"][0];
    assert_eq!(file["added"].as_u64(), Some(2), "{file}");
    let rejected: HashMap<u64, String> = file["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["index"].as_u64().unwrap(), x["reasons"].to_string()))
        .collect();
    assert!(
        rejected[&1].contains("modified") && rejected[&1].contains("'Z'"),
        "{}",
        rejected[&1]
    );
    assert!(
        rejected[&2].contains("created") && rejected[&2].contains("millisecond"),
        "{}",
        rejected[&2]
    );
    assert!(rejected[&4].contains("type"), "{}", rejected[&4]);
    assert!(rejected[&5].contains("recursion limit"), "{}", rejected[&5]);
    assert_eq!(rejected.len(), 4);
}

#[test]
fn stix_2_0_bundles_are_rejected_with_a_reason() {
    let node = Node::init();
    let (code, r) = node.import(
        "e",
        &[&data(
            "stix/attack/enterprise-attack-18.1-stix20-first40.json.gz",
        )],
    );
    assert_eq!(code, 1);
    let f = &r["files"][0];
    assert_eq!(f["added"].as_u64(), Some(0));
    let first = f["rejected"][0]["reasons"].to_string();
    assert!(
        first.contains("spec_version") && first.contains("2.1 only"),
        "{first}"
    );
    // Issue 24, item 5: one message per object.
    for r in f["rejected"].as_array().unwrap() {
        assert_eq!(r["reasons"].as_array().unwrap().len(), 1, "{r}");
    }
}

/// Every object of every handed STIX 2.1 bundle comes back out unchanged in meaning.
#[test]
fn round_trip_of_every_handed_bundle() {
    let node = Node::init();
    let mut files = vec![
        data("stix/attack/ics-attack-18.1.json.gz"),
        data("stix/attack/mobile-attack-17.1.json.gz"),
        data("stix/capec/capec-3.9-stix21.json.gz"),
        data("stix/atlas/stix-atlas-5.6.0.json.gz"),
    ];
    for dir in [
        "stix/atlas/opencti-bundles",
        "stix/oasis/json-schemas-examples",
        "stix/oasis/cti-documentation",
        "stix/oasis/common-objects",
    ] {
        let mut entries: Vec<_> = std::fs::read_dir(data(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        files.extend(
            entries
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    let mut checked = 0;
    for (i, file) in files.iter().enumerate() {
        let original: serde_json::Value =
            serde_json::from_slice(&crate::support::read_path(file)).unwrap();
        if original.get("type").and_then(|t| t.as_str()) != Some("bundle") {
            continue; // a plain array (incident_sample_infrastructure): not a bundle
        }
        let coll = format!("c{i}");
        let (_, r) = node.import(&coll, &[file]);
        let rejected: Vec<u64> = r["files"][0]["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["index"].as_u64().unwrap())
            .collect();
        let out = run(concord()
            .args(["export", "--collection", &coll, "--data-dir"])
            .arg(node.path()));
        assert!(out.status.success());
        let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let key = |o: &serde_json::Value| {
            format!(
                "{}|{}",
                o["id"],
                o.get("modified").unwrap_or(&serde_json::Value::Null)
            )
        };
        let back: HashMap<String, &serde_json::Value> = exported["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (key(o), o))
            .collect();
        for (idx, o) in original["objects"].as_array().unwrap().iter().enumerate() {
            if rejected.contains(&(idx as u64)) {
                continue;
            }
            assert_eq!(
                back.get(&key(o)).copied(),
                Some(o),
                "{}: objects[{idx}] changed",
                file.display()
            );
            checked += 1;
        }
    }
    // ICS 1,826 + Mobile 2,148 + CAPEC 2,683 + ATLAS 538 + the OASIS and OpenCTI examples.
    assert!(checked > 7_300, "only {checked} objects checked");
}

/// The aliases of the node's collections, through `concord collection list --json`.
fn aliases(node: &Node) -> Vec<String> {
    let out = run(concord()
        .args(["collection", "list", "--json", "--data-dir"])
        .arg(node.path()));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["alias"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn collection_aliases_follow_the_web_ui_rule_on_the_command_line() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.json", &bundle(&[INDICATOR]));
    let long = "x".repeat(5000);
    for alias in ["", "a/b", "a\nb", "caf\u{e9}", long.as_str()] {
        let out = run(concord()
            .args(["import", "--collection", alias, "--data-dir"])
            .arg(node.path())
            .arg(&good));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "import --collection {alias:?}");
        assert!(
            err.contains("collection alias") && err.contains("1 to 64 characters"),
            "{alias:?}: {err}"
        );
        let shown = format!("{:?}", alias.chars().take(40).collect::<String>());
        assert!(err.contains(&shown), "the alias is named: {err}");
        let out = run(concord()
            .args(["collection", "create", alias, "--data-dir"])
            .arg(node.path()));
        assert!(!out.status.success(), "collection create {alias:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 64 characters"));
    }
    assert!(
        String::from_utf8_lossy(
            &run(concord()
                .args(["import", "--collection", &long, "--data-dir"])
                .arg(node.path())
                .arg(&good))
            .stderr
        )
        .contains("(5000 characters)")
    );
    assert_eq!(aliases(&node), Vec::<String>::new());
    // The rule's edges are accepted: 64 characters of every kind allowed.
    let edge = format!("A-z.0_9{}", "y".repeat(57));
    assert_eq!(node.import(&edge, &[&good]).0, 0);
    assert_eq!(aliases(&node), [edge]);
}

#[test]
fn a_failed_import_does_not_create_its_collection() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-file.json");
    let not_json = write(
        tmp.path(),
        "bad.json",
        "{\"type\": \"bundle\", \"objects\": [",
    );
    let not_bundle = write(tmp.path(), "array.json", &format!("[{INDICATOR}]"));
    let out = run(concord()
        .args(["import", "--collection", "fresh", "--data-dir"])
        .arg(node.path())
        .arg(&missing));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
    assert_eq!(aliases(&node), Vec::<String>::new(), "nothing left behind");
    let (code, r) = node.import("fresh", &[&not_json, &not_bundle]);
    assert_eq!(code, 1);
    assert_eq!(r["collection"], serde_json::Value::Null, "{r}");
    assert_eq!(r["files"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(aliases(&node), Vec::<String>::new(), "nothing left behind");
    // A good file after a bad one creates it, once.
    let good = write(tmp.path(), "good.json", &bundle(&[INDICATOR]));
    let (code, r) = node.import("fresh", &[&not_json, &good, &good]);
    assert_eq!(code, 1);
    assert!(r["collection"].is_string(), "{r}");
    assert_eq!(aliases(&node), ["fresh"]);
    assert_eq!(count(&node, "fresh"), 1);
    // IOC lists take the same way: an unreadable list leaves nothing.
    let out = run(concord()
        .args([
            "import",
            "--format",
            "ioc-list",
            "--collection",
            "iocs",
            "--data-dir",
        ])
        .arg(node.path())
        .arg(&missing));
    assert!(!out.status.success());
    assert_eq!(aliases(&node), ["fresh"]);
}

/// Issue 24, item 13: a new user's first tries. A maltrail list given without
/// `--format ioc-list` is refused with the hint to use it; reports say `1 line`, not
/// `1 lines`; the top help says what Concord does.
#[test]
fn a_new_users_first_tries() {
    let node = Node::init();
    let list = data("ioc/maltrail/malware/apt_lazarus.txt.gz");
    let (code, r) = node.import("lazarus", &[&list]);
    assert_eq!(code, 1);
    let error = r["files"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("malformed JSON at line 1,") && error.contains("use --format ioc-list"),
        "{error}"
    );
    // One line: singular.
    let one = node.path().join("one.txt");
    std::fs::write(&one, "203.0.113.7\n").unwrap();
    let out = run(concord()
        .args([
            "import",
            "--format",
            "ioc-list",
            "--collection",
            "one",
            "--data-dir",
        ])
        .arg(node.path())
        .arg(&one));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(": 1 line, 1 indicator, 0 duplicates, 0 lines not classified"),
        "{err}"
    );
    assert!(err.contains(": 1 object read, 1 added"), "{err}");
    let out = run(concord().arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.starts_with("Share cyber-threat intelligence with partners"),
        "{help}"
    );
}
