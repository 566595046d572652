//! The partner directory and partners that change without new keys (issue 19, items 2 and
//! 4), against a real `concord serve` on loopback and a real SQLite file: `partner update`
//! (CLI) and `PATCH /api/v1/partners/{name}` change a partner's grants while its key keeps
//! working, and the running server applies the change; each change is in the audit log;
//! `partner show` is the directory entry; `partner set` gives it its identity and keys.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Node, Reply, Server, TAXII, TOKEN, concord, run};

/// `concord ARGS --data-dir NODE`: (exit code, stdout as JSON or null, stderr).
fn cli(node: &Node, args: &[&str]) -> (i32, Value, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(node: &Node, args: &[&str]) -> Value {
    let (code, doc, err) = cli(node, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    doc
}

fn admin(s: &Server, method: &str, path: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let text = body.map(|b| b.to_string());
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Accept", "application/json"),
    ];
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    s.request(method, path, &headers, text.as_deref())
}

/// The status of a partner's TAXII read of collection `alias`.
fn reads(s: &Server, key: &str, alias: &str) -> u16 {
    let auth = format!("Bearer {key}");
    s.request(
        "GET",
        &format!("/concord/collections/{alias}/objects/"),
        &[("Authorization", &auth), ("Accept", TAXII)],
        None,
    )
    .status
}

/// Polls `f` until it holds, up to `bound`: the servers re-read the partner list every few
/// seconds (a generous bound, not a timing assertion).
fn eventually(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < bound {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A node in DE with collections `intel` and `other`, one indicator each.
fn node() -> Node {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    for (alias, n) in [("intel", 1), ("other", 2)] {
        let bundle = node.path().join(format!("{alias}.json"));
        std::fs::write(
            &bundle,
            json!({"type": "bundle", "id": format!("bundle--00000000-0000-4000-8000-00000000000{n}"),
                "objects": [{"type": "indicator", "spec_version": "2.1",
                    "id": format!("indicator--7a3c3b5e-40a4-4a71-9a8f-0d2f3e3b9c1{n}"),
                    "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                    "pattern": format!("[domain-name:value = 'c{n}.example']"),
                    "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}]})
            .to_string(),
        )
        .unwrap();
        let (code, report) = node.import(alias, &[&bundle]);
        assert_eq!(code, 0, "{report}");
    }
    node
}

fn entries(node: &Node, who: &str) -> Vec<Value> {
    cli_ok(node, &["audit", "show", "--partner", who, "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_partner_changes_in_place_and_the_running_server_follows() {
    let node = node();
    let collections = cli_ok(&node, &["collection", "list", "--json"]);
    let id_of = |alias: &str| -> String {
        collections
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["alias"] == alias)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (intel, other) = (id_of("intel"), id_of("other"));
    let added = cli_ok(
        &node,
        &[
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "DE",
            "--read",
            "intel",
            "--json",
        ],
    );
    let key = added["api_key"].as_str().unwrap().to_owned();
    let key_id = added["key_id"].as_str().unwrap().to_owned();
    let s = node.serve();
    assert_eq!(reads(&s, &key, "intel"), 200);
    assert_eq!(reads(&s, &key, "other"), 404, "not readable: as if absent");

    // CLI: read other instead of intel, join a group. Same key.
    let p = cli_ok(
        &node,
        &[
            "partner",
            "update",
            "bsi",
            "--read",
            "other",
            "--no-read",
            "intel",
            "--group",
            "eu-cert",
            "--json",
        ],
    );
    assert_eq!(p["read"], json!([other]));
    assert_eq!(p["groups"], json!(["eu-cert"]));
    assert_eq!(p["key_id"], key_id.as_str());
    assert!(
        eventually(Duration::from_secs(20), || reads(&s, &key, "other") == 200
            && reads(&s, &key, "intel") == 404),
        "the running server applies the change, with the same key"
    );

    // API: the same operation (additions), then its refusals.
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/partners/bsi",
        Some(json!({"add_read": ["intel"], "jurisdiction": "fr"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["read"], json!([other, intel]));
    assert_eq!(r.json()["jurisdiction"], "FR");
    assert!(eventually(Duration::from_secs(20), || reads(
        &s, &key, "intel"
    ) == 200));
    for (body, status, says) in [
        (json!({}), 400, "nothing to change"),
        (
            json!({"read": ["intel"], "add_read": ["other"]}),
            400,
            "not both",
        ),
        (json!({"jurisdiction": "France"}), 400, "ISO 3166-1"),
        (json!({"add_write": ["nope"]}), 404, "no collection"),
        (json!({"groups": ["a,b"]}), 400, "group"),
        (json!({"key_id": "x"}), 400, "unknown field"),
    ] {
        let r = admin(&s, "PATCH", "/api/v1/partners/bsi", Some(body.clone()));
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(says), "{body}: {}", r.body);
    }
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/partners/nobody",
        Some(json!({"add_read": ["intel"]})),
    );
    assert_eq!(r.status, 404);
    // A partner's key gets the answer of a missing path, and changes nothing.
    let auth = format!("Bearer {key}");
    let r = s.request(
        "PATCH",
        "/api/v1/partners/bsi",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(r#"{"add_write":["intel"]}"#),
    );
    assert_eq!(r.status, 404);
    // The CLI refuses with the reason and exit status 1 or 2, nothing written.
    let (code, _, err) = cli(&node, &["partner", "update", "bsi", "--read", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("no collection \"nope\""), "{err}");
    let (code, _, err) = cli(&node, &["partner", "update", "bsi"]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing to change"), "{err}");

    // Audited: who changed what, in the chain.
    let ops = entries(&node, "operator");
    let update: Vec<&Value> = ops
        .iter()
        .filter(|e| e["door"] == "partner-update")
        .collect();
    assert_eq!(update.len(), 1, "{ops:?}");
    assert_eq!(update[0]["direction"], "admin");
    assert_eq!(update[0]["decision"], "changed");
    let what: Vec<&str> = update[0]["transformations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        what,
        [
            "partner bsi".to_owned(),
            format!("read +{other}"),
            format!("read -{intel}"),
            "group +eu-cert".to_owned()
        ]
    );
    let by_admin: Vec<Value> = entries(&node, "admin")
        .into_iter()
        .filter(|e| e["door"] == "partner-update")
        .collect();
    assert_eq!(by_admin.len(), 1, "refused changes record nothing");
    let (code, _, err) = cli(&node, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");

    // The directory entry: the same by the CLI and the API.
    let shown = cli_ok(&node, &["partner", "show", "bsi", "--json"]);
    assert_eq!(shown, admin(&s, "GET", "/api/v1/partners/bsi", None).json());
    assert_eq!(shown["key_id"], key_id.as_str());
    assert_eq!(shown["keys"][0]["kind"], "api-key");
    assert_eq!(shown["origin"], "operator");
    assert_eq!(
        shown["agreement"]["ours"],
        Value::Null,
        "no agreement set: {shown}"
    );
    assert!(shown["updated_ns"].as_i64().unwrap() > 0);
    assert!(
        shown["last_activity_ns"].as_i64().is_some(),
        "its TAXII reads: {shown}"
    );
    assert_eq!(shown["read_names"], json!(["other", "intel"]));

    // Directory fields for a partner added by hand.
    let identity = node.path().join("bsi-identity.json");
    std::fs::write(
        &identity,
        json!({"type": "identity", "spec_version": "2.1",
            "id": "identity--6c2a3b0e-8a7e-4d5c-9a51-2f0f4d1c7b11",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "BSI", "identity_class": "organization",
            "extensions": {"extension-definition--66e2492a-bbd3-4be6-88f5-cc91a017a498": {
                "extension_type": "property-extension",
                "email_addresses": [{"digital_contact_type": "work",
                    "email_address_value": "certbund@bsi.example"}]}}})
        .to_string(),
    )
    .unwrap();
    let node_key = "ab".repeat(32);
    let set = cli_ok(
        &node,
        &[
            "partner",
            "set",
            "bsi",
            "--identity",
            identity.to_str().unwrap(),
            "--node-key",
            &node_key,
            "--json",
        ],
    );
    assert_eq!(set["organisation"], "BSI");
    assert_eq!(
        set["contacts"],
        json!([{"kind": "email", "value": "certbund@bsi.example", "label": "work"}])
    );
    assert_eq!(set["keys"][1]["kind"], "node-key");
    assert_eq!(set["keys"][1]["value"], node_key.as_str());
    assert_eq!(set["keys"][1]["fingerprint"].as_str().unwrap().len(), 32);
    let set = cli_ok(
        &node,
        &[
            "partner",
            "set",
            "bsi",
            "--contact",
            "+49 228 99 9582-0",
            "--json",
        ],
    );
    assert_eq!(set["contacts"][0]["value"], "+49 228 99 9582-0");
    assert!(
        set["identity"]["modified"].as_str().unwrap() > "2026-01-01T00:00:00.000Z",
        "a new version of the identity"
    );
    // Refused: an identity that is not one, a key that is not 64 hex digits.
    std::fs::write(&identity, r#"{"type": "identity", "name": "x"}"#).unwrap();
    let (code, _, err) = cli(
        &node,
        &[
            "partner",
            "set",
            "bsi",
            "--identity",
            identity.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("identity"), "{err}");
    let (code, _, err) = cli(&node, &["partner", "set", "bsi", "--node-key", "abc"]);
    assert_ne!(code, 0);
    assert!(err.contains("64 hexadecimal digits"), "{err}");
    let sets = entries(&node, "operator")
        .into_iter()
        .filter(|e| e["door"] == "partner-set")
        .count();
    assert_eq!(sets, 2);

    // The text form: one line each, the agreement's line included.
    let out = run(concord()
        .args(["partner", "show", "bsi", "--data-dir"])
        .arg(node.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "name: bsi\n",
        "organisation: BSI\n",
        "jurisdiction: FR\n",
        "groups: eu-cert\n",
        "read: other, intel\n",
        "agreement: ours -; fetched by the partner -; the partner holds -\n",
        "contact email: certbund@bsi.example (work)\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("last activity: never"), "{text}");
}

/// Issue 19, item 4: the README's partner examples run in order, as written (by `sh`, with
/// `concord` on the PATH and the data directory in `CONCORD_DATA_DIR`), on the node the
/// quickstart leaves (ATT&CK for ICS in `ics-attack`).
#[test]
fn readme_partner_examples_run_in_order() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("### `concord partner add")
        .expect("the partner section");
    let section = &readme[start + 4..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let mut lines = Vec::new();
    let mut inside = false;
    for l in section.lines() {
        if l.starts_with("```") {
            inside = l == "```sh";
        } else if inside && l.starts_with("concord ") {
            lines.push(l);
        }
    }
    assert!(lines.len() >= 6, "{lines:?}");
    let node = Node::init();
    let (code, report) = node.import(
        "ics-attack",
        &[&crate::support::data("stix/attack/ics-attack-18.1.json.gz")],
    );
    assert_eq!(code, 0, "{report}");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_concord"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in lines {
        let out = std::process::Command::new("sh")
            .args(["-c", line])
            .env("PATH", &path)
            .env("CONCORD_DATA_DIR", node.path())
            .env("CONCORD_LOG", "warn")
            .env_remove("CONCORD_ADMIN_TOKEN")
            .env_remove("CONCORD_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README: {line}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shown = cli_ok(&node, &["partner", "show", "BSI", "--json"]);
    assert_eq!(
        shown["contacts"][0]["value"],
        "CERT-Bund, +49 228 99 9582-0"
    );
    assert_eq!(
        shown["read_names"],
        json!(["ics-attack", "inbox", "eu-cert-directory"])
    );
}

/// Issue 19, item 2: a regional group's directory shared between its nodes as STIX
/// identities. Node A publishes group `region` (its own identity and its members') into
/// collection `directory`, audited; member B pulls it over TAXII through A's egress door
/// (`concord sync`) and fills the identities of the partners it knows: `cert-c` by its node
/// key (`x_concord_node_key`), A by its name; a newer version published later replaces the
/// older one (matched by the identity's id); B's own identity matches nobody on B.
#[test]
fn a_groups_directory_is_shared_between_its_nodes() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    let c_key = "cd".repeat(32);

    // On A: members b and c of group `region`, with their identities.
    let key_b = cli_ok(
        &a,
        &[
            "partner",
            "add",
            "b",
            "--jurisdiction",
            "FR",
            "--group",
            "region",
            "--json",
        ],
    )["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    cli_ok(
        &a,
        &[
            "partner",
            "add",
            "c",
            "--jurisdiction",
            "BE",
            "--group",
            "region",
        ],
    );
    let c_identity = a.path().join("c.json");
    std::fs::write(
        &c_identity,
        json!({"type": "identity", "spec_version": "2.1",
            "id": "identity--0c0c0c0c-8a7e-4d5c-9a51-2f0f4d1c7b11",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "CERT-C", "identity_class": "organization", "x_concord_node_key": c_key,
            "contact_information": "cert@c.example"})
        .to_string(),
    )
    .unwrap();
    cli_ok(
        &a,
        &[
            "partner",
            "set",
            "c",
            "--identity",
            c_identity.to_str().unwrap(),
        ],
    );
    cli_ok(&a, &["partner", "set", "b", "--contact", "cert@b.example"]);
    // A member without a partner entry's identity is named, not published.
    cli_ok(
        &a,
        &[
            "partner",
            "add",
            "d",
            "--jurisdiction",
            "NL",
            "--group",
            "region",
        ],
    );
    let published = cli_ok(
        &a,
        &[
            "partner",
            "directory",
            "publish",
            "--group",
            "region",
            "--collection",
            "directory",
            "--json",
        ],
    );
    assert_eq!(published["identities"].as_array().unwrap().len(), 3);
    assert_eq!(published["added"], 3);
    assert_eq!(published["without_identity"], json!(["d"]));
    let a_identity = published["identities"][0].as_str().unwrap().to_owned();
    let directory = published["collection"].as_str().unwrap().to_owned();
    let log: Vec<Value> = entries(&a, "operator")
        .into_iter()
        .filter(|e| e["door"] == "partner-directory-publish")
        .collect();
    assert_eq!(log.len(), 3, "one ingress record per identity: {log:?}");
    // Publishing again adds nothing (the same versions).
    let again = cli_ok(
        &a,
        &[
            "partner",
            "directory",
            "publish",
            "--group",
            "region",
            "--collection",
            "directory",
            "--json",
        ],
    );
    assert_eq!(again["added"], 0);
    // The group reads it: member b may read the collection, shared with the group.
    cli_ok(&a, &["partner", "update", "b", "--read", "directory"]);
    cli_ok(
        &a,
        &[
            "collection",
            "share",
            "directory",
            "--group",
            "region",
            "--default-tlp",
            "green",
        ],
    );
    let sa = a.serve();

    // On B: A as a peer (pull with b's key), partners for A and for c, without identities.
    let token = b.path().join("a.token");
    std::fs::write(&token, &key_b).unwrap();
    cli_ok(
        &b,
        &[
            "peer",
            "add",
            "a",
            &sa.base,
            "--api-root",
            "/concord/",
            "--collection",
            &format!("{directory}:directory"),
            "--token-file",
            token.to_str().unwrap(),
            "--pull",
        ],
    );
    let a_name = {
        let out = run(concord()
            .args(["export", "--collection", "directory", "--data-dir"])
            .arg(a.path()));
        let bundle: Value = serde_json::from_slice(&out.stdout).unwrap();
        bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == a_identity.as_str())
            .unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    cli_ok(&b, &["partner", "add", &a_name, "--jurisdiction", "DE"]);
    cli_ok(&b, &["partner", "add", "cert-c", "--jurisdiction", "BE"]);
    cli_ok(&b, &["partner", "set", "cert-c", "--node-key", &c_key]);
    let (code, _, err) = cli(&b, &["sync", "--json"]);
    assert_eq!(code, 0, "{err}");
    let imported = cli_ok(
        &b,
        &[
            "partner",
            "directory",
            "import",
            "--collection",
            "directory",
            "--json",
        ],
    );
    assert_eq!(imported["read"], 3, "{imported}");
    let mut updated: Vec<(String, String)> =
        serde_json::from_value(imported["updated"].clone()).unwrap();
    updated.sort();
    let mut want = vec![
        (
            "cert-c".to_owned(),
            "identity--0c0c0c0c-8a7e-4d5c-9a51-2f0f4d1c7b11".to_owned(),
        ),
        (a_name.clone(), a_identity.clone()),
    ];
    want.sort();
    assert_eq!(updated, want);
    assert_eq!(
        imported["unmatched"].as_array().unwrap().len(),
        1,
        "B's own"
    );
    let c_on_b = cli_ok(&b, &["partner", "show", "cert-c", "--json"]);
    assert_eq!(c_on_b["organisation"], "CERT-C");
    // Through A's egress door: across the border (DE → FR) the default policy pseudonymises
    // the e-mail address, as in any object B pulls.
    let first_contact = c_on_b["contacts"][0]["value"].as_str().unwrap().to_owned();
    assert!(
        first_contact.ends_with("@pseudonym.invalid"),
        "{first_contact}"
    );
    assert_eq!(
        entries(&b, "operator")
            .iter()
            .filter(|e| e["door"] == "partner-directory-import")
            .count(),
        2
    );

    // A newer version of c's identity: published, pulled, and it replaces the old one.
    cli_ok(&a, &["partner", "set", "c", "--contact", "soc@c.example"]);
    cli_ok(
        &a,
        &[
            "partner",
            "directory",
            "publish",
            "--group",
            "region",
            "--collection",
            "directory",
        ],
    );
    let (code, _, err) = cli(&b, &["sync", "--json"]);
    assert_eq!(code, 0, "{err}");
    let imported = cli_ok(
        &b,
        &[
            "partner",
            "directory",
            "import",
            "--collection",
            "directory",
            "--json",
        ],
    );
    assert_eq!(
        imported["updated"].as_array().unwrap().len(),
        1,
        "{imported}"
    );
    let c_on_b = cli_ok(&b, &["partner", "show", "cert-c", "--json"]);
    let second_contact = c_on_b["contacts"][0]["value"].as_str().unwrap();
    assert!(
        second_contact.ends_with("@pseudonym.invalid") && second_contact != first_contact,
        "{second_contact}"
    );
    // Importing again changes nothing.
    let imported = cli_ok(
        &b,
        &[
            "partner",
            "directory",
            "import",
            "--collection",
            "directory",
            "--json",
        ],
    );
    assert!(
        imported["updated"].as_array().unwrap().is_empty(),
        "{imported}"
    );
    // From a bundle file (what b receives of it, exported on A): the same identities, and
    // nothing newer to set.
    let file = b.path().join("directory.json");
    let out = run(concord()
        .args([
            "export",
            "--collection",
            "directory",
            "--partner",
            "b",
            "-o",
        ])
        .arg(&file)
        .arg("--data-dir")
        .arg(a.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = cli_ok(
        &b,
        &[
            "partner",
            "directory",
            "import",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(imported["read"], 3, "{imported}");
    assert!(
        imported["updated"].as_array().unwrap().is_empty(),
        "{imported}"
    );
    std::fs::write(&file, r#"{"type": "identity"}"#).unwrap();
    let (code, _, err) = cli(
        &b,
        &[
            "partner",
            "directory",
            "import",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("not a STIX 2.1 bundle"), "{err}");
}
