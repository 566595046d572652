//! Matching (issue 4) through the binary and the server: IOC lists become indicators, the
//! handed Zeek logs are matched, sightings are written, and `POST /api/match` answers a SIEM.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::{Value, json};

use crate::support::{Node, TOKEN, concord, data, run};

const LIST: &str = "# a partner's list\n\
videosearch.ubuntu.com\n\
 docs[.]google[.]com \n\
hxxp://evil.example/x\n\
\n\
134.71.3.16\n\
10.47.1.0/24\n\
not a thing\n";

fn cli(node: &Node, args: &[&str]) -> (i32, String, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the handed DNS log holds, counted here independently of Concord: records per query
/// name, and records whose originator is in 10.47.1.0/24.
fn expected_counts() -> (BTreeMap<String, u64>, u64) {
    let f = std::fs::File::open(data("logs/zeek-wrccdc-2018/dns.json.gz")).unwrap();
    let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let (mut queries, mut in_range) = (BTreeMap::new(), 0);
    for line in reader.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some(q) = v["query"].as_str() {
            *queries.entry(q.to_owned()).or_insert(0) += 1;
        }
        if v["id.orig_h"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.47.1."))
        {
            in_range += 1;
        }
    }
    (queries, in_range)
}

#[test]
fn ioc_lists_are_matched_against_the_zeek_logs_and_sightings_written() {
    let node = Node::init();
    let list = node.path().join("list.txt");
    std::fs::write(&list, LIST).unwrap();
    let (code, out, err) = cli(
        &node,
        &[
            "import",
            "--collection",
            "iocs",
            "--format",
            "ioc-list",
            "--json",
            list.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "an unclassified line makes exit 1: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let file = &report["files"][0];
    assert_eq!(file["added"], 5, "{report}");
    assert_eq!(
        file["unclassified"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(file["unclassified"][0]["line"], 8);
    assert_eq!(file["unclassified"][0]["text"], "not a thing");
    let ids = |node: &Node| -> Vec<String> {
        let (_, out, _) = cli(node, &["export", "--collection", "iocs"]);
        let b: Value = serde_json::from_str(&out).unwrap();
        let mut ids: Vec<String> = b["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let first = ids(&node);
    assert_eq!(first.len(), 5);
    // Same values, same ids: a second list with them adds no new indicators.
    let again = node.path().join("again.txt");
    std::fs::write(&again, "docs.google.com\nvideosearch.ubuntu.com\n").unwrap();
    let (code, _, err) = cli(
        &node,
        &[
            "import",
            "--collection",
            "iocs",
            "--format",
            "ioc-list",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&node), first);

    let log = data("logs/zeek-wrccdc-2018/dns.json.gz");
    let (code, out, err) = cli(
        &node,
        &[
            "match",
            "--collection",
            "iocs",
            "--format",
            "zeek",
            "--sightings",
            "seen",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mut per_indicator: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_value: BTreeMap<String, u64> = BTreeMap::new();
    for line in out.lines() {
        let hit: Value = serde_json::from_str(line).unwrap();
        for key in ["file", "line", "indicator", "value", "path"] {
            assert!(!hit[key].is_null(), "{key} missing: {hit}");
        }
        assert!(hit["line"].as_u64().unwrap() >= 1);
        *per_indicator
            .entry(hit["indicator"].as_str().unwrap().to_owned())
            .or_default() += 1;
        let key = match hit["path"].as_str().unwrap() {
            "domain-name:value" => hit["value"].as_str().unwrap().to_owned(),
            p if p.starts_with("ipv4-addr") => "ipv4".to_owned(),
            p => p.to_owned(),
        };
        *per_value.entry(key).or_default() += 1;
    }
    let (queries, in_range) = expected_counts();
    assert_eq!(
        per_value["videosearch.ubuntu.com"],
        queries["videosearch.ubuntu.com"]
    );
    assert_eq!(per_value["docs.google.com"], queries["docs.google.com"]);
    // 10.47.1.0/24 (ISSUBSET) and 134.71.3.16 (in answers) both hit IPv4 fields: at least
    // every record from the range.
    assert!(per_value["ipv4"] >= in_range, "{per_value:?} vs {in_range}");
    // One sighting per indicator, with its count, seen where this node is.
    let (_, out, _) = cli(&node, &["export", "--collection", "seen"]);
    let b: Value = serde_json::from_str(&out).unwrap();
    let objects = b["objects"].as_array().unwrap();
    let identity = objects.iter().find(|o| o["type"] == "identity").unwrap();
    let sightings: Vec<&Value> = objects.iter().filter(|o| o["type"] == "sighting").collect();
    assert_eq!(sightings.len(), per_indicator.len());
    for s in sightings {
        let id = s["sighting_of_ref"].as_str().unwrap();
        assert_eq!(s["count"].as_u64(), Some(per_indicator[id]), "{s}");
        assert_eq!(s["where_sighted_refs"], json!([identity["id"]]));
        assert!(s["first_seen"].as_str().unwrap() <= s["last_seen"].as_str().unwrap());
        assert!(s["first_seen"].as_str().unwrap().starts_with("2018-03-"));
    }
}

/// A node whose collection `iocs` holds the indicators of [`LIST`] (exit 1: its last line
/// is not classified).
fn node_with_list() -> Node {
    let node = Node::init();
    let list = node.path().join("list.txt");
    std::fs::write(&list, LIST).unwrap();
    let (code, _, err) = cli(
        &node,
        &[
            "import",
            "--collection",
            "iocs",
            "--format",
            "ioc-list",
            list.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    node
}

/// Hits on values of a MISP warninglist (issue 6, item 4) carry the lists' names.
#[test]
fn warninglisted_hits_are_flagged() {
    let node = node_with_list();
    let obs = node.path().join("obs.txt");
    std::fs::write(&obs, "docs.google.com\nvideosearch.ubuntu.com\n10.47.1.7\n").unwrap();
    let lists = data("misp/warninglists");
    let (code, out, err) = cli(
        &node,
        &[
            "match",
            "--collection",
            "iocs",
            "--warninglists",
            lists.to_str().unwrap(),
            obs.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let hits: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flags = |line: u64| -> Vec<String> {
        hits.iter()
            .find(|h| h["line"] == line)
            .unwrap_or_else(|| panic!("no hit on line {line}: {out}"))
            .get("warninglists")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    assert!(flags(1).iter().any(|n| n.contains("Tranco")), "{out}");
    assert!(flags(3).iter().any(|n| n.contains("RFC 1918")), "{out}");
    assert!(err.contains("hits on values of a warninglist"), "{err}");
}

/// From stdin, a hit is on stdout while the input is still open: a live log is matched as
/// it grows (the reader's batches and the output do not wait for more input).
#[test]
fn a_live_stdin_gets_its_hits_at_once() {
    use std::io::Write;
    let node = node_with_list();
    let mut child = concord()
        .args(["match", "--collection", "iocs", "--data-dir"])
        .arg(node.path())
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Two lines, the second a hit; stdin stays open.
    stdin
        .write_all(b"no.match.example\nvideosearch.ubuntu.com\n")
        .unwrap();
    stdin.flush().unwrap();
    let hit = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("no hit while stdin is open");
    let hit: Value = serde_json::from_str(&hit).unwrap();
    assert_eq!(hit["line"], 2, "{hit}");
    assert_eq!(hit["value"], "videosearch.ubuntu.com", "{hit}");
    // More input, more hits, still before the end.
    stdin.write_all(b"10.47.1.9\n").unwrap();
    stdin.flush().unwrap();
    let hit: Value = serde_json::from_str(
        &rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("no second hit while stdin is open"),
    )
    .unwrap();
    assert_eq!(
        (hit["line"].clone(), hit["value"].clone()),
        (json!(3), json!("10.47.1.9"))
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_siem_asks_post_api_match() {
    let node = node_with_list();
    let partner = |name: &str, flags: &[&str]| -> String {
        let mut args = vec!["partner", "add", name, "--jurisdiction", "DE", "--json"];
        args.extend_from_slice(flags);
        let (code, out, err) = cli(&node, &args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let reader = partner("reader", &["--read", "iocs"]);
    let outsider = partner("outsider", &[]);
    let s = node.serve();
    let ask = |key: &str, body: &Value| {
        let auth = format!("Bearer {key}");
        s.request(
            "POST",
            "/api/match",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
    };
    let body = json!({"collections": ["iocs"],
                      "lines": ["videosearch.ubuntu.com", "nothing.example", "10.47.1.5",
                                "hxxp://evil.example/x"]});
    let r = ask(TOKEN, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["records"], 4);
    let lines: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 3, 4], "{v}");
    // A partner matches only what the egress policy lets it see: the list's indicators
    // carry no TLP marking, so the collection default (AMBER) withholds them from a
    // partner who is not a recipient.
    let r = ask(&reader, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["hits"], json!([]));
    let (code, _, err) = cli(
        &node,
        &["collection", "share", "iocs", "--default-tlp", "green"],
    );
    assert_eq!(code, 0, "{err}");
    // Now all three match, the CIDR too: under the default policy the IP addresses of
    // indicator patterns are attackers' infrastructure and go to a partner across a border
    // (this node has no jurisdiction) as written (`infrastructure_indicators = "allow"`).
    let r = ask(&reader, &body);
    let lines: Vec<u64> = r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 3, 4], "{}", r.body);
    // Each answer with hits is a transfer in the audit log (issue 17): the ids of the
    // indicators it names, one entry, sent; the answer without hits sent no id.
    let mut hit_ids: Vec<String> = r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["indicator"].as_str().unwrap().to_owned())
        .collect();
    hit_ids.sort();
    hit_ids.dedup();
    let (code, shown, err) = cli(&node, &["audit", "show", "--partner", "reader", "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let mut recorded: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["door"] == "api-match-hits")
        .inspect(|e| assert_eq!(e["decision"], "sent", "{e}"))
        .map(|e| e["object_id"].as_str().unwrap().to_owned())
        .collect();
    recorded.sort();
    assert_eq!(recorded, hit_ids, "{shown}");
    // No read access answers as a collection that does not exist: 404 both (issue 15,
    // item 8: no oracle); a malformed request: 400 naming the field.
    let hidden = ask(&outsider, &body);
    assert_eq!(hidden.status, 404);
    let missing = ask(
        &outsider,
        &json!({"collections": ["no-such"], "lines": ["x"]}),
    );
    assert_eq!(missing.status, 404);
    let r = ask(TOKEN, &json!({"collections": ["iocs"], "lines": "x"}));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("request"), "{}", r.body);
    let r = ask(
        TOKEN,
        &json!({"collections": ["iocs"], "lines": [], "format": "pcap"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("format"), "{}", r.body);
}

/// Issue 24, item 10: importing the same IOC list again adds nothing (before: a new version
/// of every indicator, each with a new `created`), and a changed line becomes a new version
/// that keeps `created` (STIX 2.1 §3.6). The list: the first six entries of signature-base's
/// C2 list (`value;score`, the score becomes the description).
#[test]
fn reimporting_an_ioc_list_adds_nothing_and_changes_keep_created() {
    let node = Node::init();
    let f = std::fs::File::open(data("ioc/signature-base/c2-iocs.txt.gz")).unwrap();
    let lines: Vec<String> = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .lines()
        .map(Result::unwrap)
        .filter(|l| !l.starts_with('#') && l.contains(';'))
        .take(6)
        .collect();
    assert_eq!(lines.len(), 6);
    let list = node.path().join("c2.txt");
    let import = |text: &str| -> Value {
        std::fs::write(&list, text).unwrap();
        let (code, out, err) = cli(
            &node,
            &[
                "import",
                "--collection",
                "c2",
                "--format",
                "ioc-list",
                "--json",
                list.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["files"][0].clone()
    };
    let text = lines.join("\n") + "\n";
    let first = import(&text);
    assert_eq!(
        (&first["added"], &first["already_present"]),
        (&json!(6), &json!(0))
    );
    for _ in 0..2 {
        let again = import(&text);
        assert_eq!(
            (&again["added"], &again["already_present"]),
            (&json!(0), &json!(6)),
            "{again}"
        );
    }
    let export = || -> Vec<Value> {
        let (code, out, err) = cli(&node, &["export", "--collection", "c2"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["objects"]
            .as_array()
            .unwrap()
            .clone()
    };
    let before = export();
    assert_eq!(before.len(), 6);
    // One line's comment changes: one new version, with the first import's `created`.
    let (value, _) = lines[0].split_once(';').unwrap();
    let changed = text.replacen(&lines[0], &format!("{value};changed score"), 1);
    let third = import(&changed);
    assert_eq!(
        (&third["added"], &third["already_present"]),
        (&json!(1), &json!(5)),
        "{third}"
    );
    let after = export();
    let newer = after
        .iter()
        .find(|o| o["description"] == "changed score")
        .expect("the new version");
    let older = before.iter().find(|o| o["id"] == newer["id"]).unwrap();
    assert_eq!(newer["created"], older["created"]);
    assert_eq!(newer["valid_from"], older["valid_from"]);
    assert_ne!(newer["modified"], older["modified"]);
    // And that version, imported again, is already present too.
    let fourth = import(&changed);
    assert_eq!(
        (&fourth["added"], &fourth["already_present"]),
        (&json!(0), &json!(6)),
        "{fourth}"
    );
}
