//! `concord pattern check | match` and pattern validation at import (STIX 2.1 §9).

use crate::support::{Node, concord, read_data, run};

#[test]
fn check_prints_ok_or_a_caret_under_the_offset() {
    let out = run(concord().args(["pattern", "check", "[ipv4-addr:value = '198.51.100.1']"]));
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(0), "ok")
    );
    let out = run(concord().args(["pattern", "check", "[ipv4-addr:value = ]"]));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "[ipv4-addr:value = ]");
    assert_eq!(lines[1], "                   ^");
    assert!(lines[2].contains("expected"), "{text}");
}

#[test]
fn check_reads_patterns_from_stdin() {
    use std::io::Write;
    let mut child = concord()
        .args(["pattern", "check", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[url:value = 'http://x.example/']\n\n[file:name = 'x'\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["valid"], true);
    assert_eq!(report[1]["valid"], false);
    assert_eq!(report[1]["line"], 3);
}

/// Every vector of `match.json` through the CLI would be slow; a few of each outcome.
#[test]
fn match_answers_with_exit_status_and_ids() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&read_data("patterns/match.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = std::collections::HashMap::new();
    for v in vectors["vectors"].as_array().unwrap() {
        let expected = v["expected"].as_str().unwrap();
        if v["stix_version"] != "2.1" || *seen.get(expected).unwrap_or(&0) >= 3 {
            continue;
        }
        *seen.entry(expected).or_insert(0) += 1;
        let set = &vectors["observation_sets"][v["observations"].as_str().unwrap()];
        let mut files = Vec::new();
        for (i, bundle) in set.as_array().unwrap().iter().enumerate() {
            let p = tmp
                .path()
                .join(format!("{}-{i}.json", v["id"].as_str().unwrap()));
            std::fs::write(&p, bundle.to_string()).unwrap();
            files.push(p);
        }
        let out = run(concord()
            .args(["pattern", "match", "--json", v["pattern"].as_str().unwrap()])
            .args(&files));
        let want = match expected {
            "match" => 0,
            "no-match" => 1,
            _ => 2,
        };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}: {}",
            v["id"],
            String::from_utf8_lossy(&out.stderr)
        );
        if want == 0 {
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(!r["observed_data"].as_array().unwrap().is_empty(), "{r}");
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn import_rejects_an_indicator_with_an_invalid_pattern() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let bad = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","pattern":"[file:hashes.'MD5' = 'zz']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}"#;
    let p = tmp.path().join("b.json");
    std::fs::write(
        &p,
        format!(r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{bad}]}}"#),
    )
    .unwrap();
    let (code, r) = node.import("c", &[&p]);
    assert_eq!(code, 1);
    let reason = r["files"][0]["rejected"][0]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("pattern: invalid STIX pattern") && reason.contains("MD5"),
        "{reason}"
    );
}

/// Issue 24, item 9: `pattern match` prints every matching observed-data, not one. The
/// OASIS matcher's complex/1 set: alice (10), bob (17) and carol (22), one file each.
#[test]
fn match_prints_every_matching_observed_data() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&read_data("patterns/match.json")).unwrap();
    let set = vectors["observation_sets"]["complex/1"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, bundle) in set.iter().enumerate() {
        let p = tmp.path().join(format!("{i}.json"));
        std::fs::write(&p, bundle.to_string()).unwrap();
        files.push(p);
    }
    let od = |i: usize| set[i]["objects"][0]["id"].as_str().unwrap().to_owned();
    let out = run(concord()
        .args(["pattern", "match", "[person:age > 15]"])
        .args(&files));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "match");
    let mut ids: Vec<String> = lines[1..].iter().map(|l| l.to_string()).collect();
    ids.sort();
    let mut want = vec![od(1), od(2)];
    want.sort();
    assert_eq!(ids, want);
    let out = run(concord()
        .args(["pattern", "match", "--json", "[person:age > 5]"])
        .args(&files));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["observed_data"].as_array().unwrap().len(), 3, "{r}");
}
