//! `concord export --format suricata|zeek-intel|rpz|csv|plain` and `GET …/feeds/{format}` of
//! a real `concord serve` (issue 21, item 3): the operator's and a partner's feeds through
//! the egress door, audited under `feed-FORMAT`, warninglisted values left out (by
//! `--warninglists` and by `feed_warninglists`), the rules loaded by `suricata -T` and the
//! zone by `named-checkzone` where they are installed (required under
//! `CONCORD_REQUIRE_FEED_TOOLS=1`, as scripts/test sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Node, TOKEN, concord, data, run};

fn cli(node: &Node, args: &[&str]) -> (i32, String, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path of `tool`, or `None` when it is not installed (a failure under
/// `CONCORD_REQUIRE_FEED_TOOLS=1`).
fn tool(tool: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CONCORD_REQUIRE_FEED_TOOLS").as_deref() != Ok("1"),
            "{tool} is not installed and CONCORD_REQUIRE_FEED_TOOLS=1 (apt-get install {package})"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// A node whose collection `iocs` holds maltrail's apt_lazarus trail and two extra lines
/// (8.8.8.8, on MISP's public-dns-v4 warninglist; an e-mail address), shared as CLEAR;
/// partner `reader` may read it. Its API key.
fn node() -> (Node, String) {
    let node = Node::init();
    let extra = node.path().join("extra.txt");
    std::fs::write(&extra, "8.8.8.8\nphish@bad.example\n").unwrap();
    let lazarus = data("ioc/maltrail/malware/apt_lazarus.txt.gz");
    let (code, _, err) = cli(
        &node,
        &[
            "import",
            "--collection",
            "iocs",
            "--format",
            "ioc-list",
            lazarus.to_str().unwrap(),
            extra.to_str().unwrap(),
        ],
    );
    assert!(code == 0 || code == 1, "{err}");
    let (code, _, err) = cli(
        &node,
        &["collection", "share", "iocs", "--default-tlp", "clear"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        &node,
        &[
            "partner",
            "add",
            "reader",
            "--jurisdiction",
            "DE",
            "--read",
            "iocs",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let key = serde_json::from_str::<Value>(&out).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    (node, key)
}

fn export(node: &Node, format: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["export", "--collection", "iocs", "--format", format];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(node, &args);
    assert_eq!(code, 0, "{format}: {err}");
    (out, err)
}

fn load(tool_name: &str, package: &str, args: &[&str], file: &Path) {
    let Some(path) = tool(tool_name, package) else {
        return;
    };
    let dir = file.parent().unwrap();
    let mut cmd = Command::new(path);
    for a in args {
        cmd.arg(a.replace("{dir}", dir.to_str().unwrap()));
    }
    let out = cmd.arg(file).output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool_name}: {log}");
    assert!(
        !log.lines().any(|l| l.starts_with("E:")),
        "{tool_name}: {log}"
    );
}

#[test]
fn export_writes_each_sensor_format_through_the_door() {
    let (node, _) = node();
    let lists = data("misp/warninglists");
    let lists = lists.to_str().unwrap();
    // The operator's plain list: every value; with the warninglists, 8.8.8.8 is left out.
    let (all, _) = export(&node, "plain", &[]);
    assert!(all.lines().any(|l| l == "8.8.8.8"), "{all}");
    let (kept, err) = export(&node, "plain", &["--warninglists", lists]);
    assert!(!kept.lines().any(|l| l == "8.8.8.8"));
    assert!(kept.lines().all(|l| all.lines().any(|a| a == l)));
    let left_out = all.lines().count() - kept.lines().count();
    assert!(left_out >= 1);
    assert!(
        err.contains(&format!("{left_out} on warninglists")),
        "{err}"
    );
    // The partner's files, loaded by the real tools.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("concord.rules");
    let zone = dir.path().join("rpz.zone");
    let p = |f: &Path| f.to_str().unwrap().to_owned();
    export(
        &node,
        "suricata",
        &[
            "--partner",
            "reader",
            "-o",
            &p(&rules),
            "--warninglists",
            lists,
        ],
    );
    export(&node, "rpz", &["--partner", "reader", "-o", &p(&zone)]);
    assert!(
        std::fs::read_to_string(&rules)
            .unwrap()
            .contains("alert dns any any")
    );
    load("suricata", "suricata", &["-T", "-l", "{dir}", "-S"], &rules);
    load("named-checkzone", "bind9-utils", &["rpz.concord."], &zone);
    // The e-mail address is personal data: the operator's feed has it, the partner's copy
    // went through the egress policy's personal-data actions and does not.
    let (zeek, _) = export(&node, "zeek-intel", &[]);
    assert!(zeek.starts_with("#fields\tindicator\tindicator_type\t"));
    assert!(zeek.contains("phish@bad.example\tIntel::EMAIL\t"), "{zeek}");
    let (zeek, _) = export(&node, "zeek-intel", &["--partner", "reader"]);
    assert!(zeek.starts_with("#fields\tindicator\tindicator_type\t"));
    assert!(!zeek.contains("phish@bad.example"), "{zeek}");
    let (csv, _) = export(&node, "csv", &["--partner", "reader"]);
    assert!(csv.starts_with("value,type,indicator_id,name,valid_until\r\n"));
    // Each partner export is audited under its door.
    let (code, shown, err) = cli(
        &node,
        &[
            "audit",
            "show",
            "--partner",
            "reader",
            "--limit",
            "100000",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    for door in ["feed-suricata", "feed-rpz", "feed-zeek-intel", "feed-csv"] {
        assert!(
            shown
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["door"] == door && e["decision"] == "sent"),
            "no {door} record"
        );
    }
    // A partner without read permission gets nothing.
    let (code, _, err) = cli(
        &node,
        &["partner", "add", "outsider", "--jurisdiction", "DE"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        &node,
        &[
            "export",
            "--collection",
            "iocs",
            "--format",
            "plain",
            "--partner",
            "outsider",
        ],
    );
    assert_ne!(code, 0);
    assert!(out.is_empty() && err.contains("may not read"), "{err}");
}

#[test]
fn serve_answers_feeds_with_the_configured_warninglists() {
    let (node, key) = node();
    let lists = data("misp/warninglists");
    let s = node.serve_with(&[("CONCORD_FEED_WARNINGLISTS", lists.to_str().unwrap())]);
    let auth = format!("Bearer {key}");
    let r = s.request(
        "GET",
        "/concord/collections/iocs/feeds/plain",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.lines().any(|l| l == "8.8.8.8"));
    assert!(r.body.lines().any(|l| l.ends_with(".com")), "{}", r.body);
    // Personal data went through the policy: not in the partner's feed.
    assert!(!r.body.contains("phish@bad.example"));
    let tag = r.header("etag").unwrap().to_owned();
    let r = s.request(
        "GET",
        "/concord/collections/iocs/feeds/plain",
        &[("Authorization", &auth), ("If-None-Match", &tag)],
        None,
    );
    assert_eq!(r.status, 304);
    // The admin token works as for TAXII; no credentials: 401.
    let admin = format!("Bearer {TOKEN}");
    let r = s.request(
        "GET",
        "/concord/collections/iocs/feeds/rpz",
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains(" IN SOA "), "{}", r.body);
    let r = s.request(
        "GET",
        "/concord/collections/iocs/feeds/plain",
        &[("Authorization", &admin)],
        None,
    );
    assert!(r.body.lines().any(|l| l == "phish@bad.example"));
    let r = s.request("GET", "/concord/collections/iocs/feeds/rpz", &[], None);
    assert_eq!(r.status, 401);
}
