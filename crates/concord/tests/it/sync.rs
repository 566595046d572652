//! Federation (issue 7): real nodes on loopback, each a `concord serve` process over its own
//! SQLite file, synced by `concord sync` processes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Node, Server, concord, run};

const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
pub(crate) const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

pub(crate) fn cli(node: &Node, args: &[&str]) -> (i32, String, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn cli_ok(node: &Node, args: &[&str]) -> String {
    let (code, out, err) = cli(node, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// `partner add` with the given flags; the API key written to a file, its path returned.
pub(crate) fn partner(node: &Node, name: &str, jurisdiction: &str, flags: &[&str]) -> PathBuf {
    let mut args = vec![
        "partner",
        "add",
        name,
        "--jurisdiction",
        jurisdiction,
        "--json",
    ];
    args.extend_from_slice(flags);
    let doc: Value = serde_json::from_str(&cli_ok(node, &args)).unwrap();
    let file = node.path().join(format!("key-{name}"));
    std::fs::write(&file, doc["api_key"].as_str().unwrap()).unwrap();
    file
}

pub(crate) fn import(node: &Node, collection: &str, objects: &[Value]) {
    let f = node.path().join(format!("import-{}.json", objects.len()));
    let bundle = json!({"type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d14",
                        "objects": objects});
    std::fs::write(&f, bundle.to_string()).unwrap();
    let (code, report) = node.import(collection, &[&f]);
    assert_eq!(code, 0, "{report}");
}

/// Every object version a node holds in a collection, as the operator exports it: id and
/// version → body.
pub(crate) fn held(node: &Node, collection: &str) -> BTreeMap<(String, String), Value> {
    let out = cli_ok(node, &["export", "--collection", collection]);
    objects(&out)
}

/// What `partner` receives of a collection (the egress function, as `export --partner`).
pub(crate) fn as_partner(
    node: &Node,
    collection: &str,
    partner: &str,
) -> BTreeMap<(String, String), Value> {
    let out = cli_ok(
        node,
        &["export", "--collection", collection, "--partner", partner],
    );
    objects(&out)
}

fn objects(bundle: &str) -> BTreeMap<(String, String), Value> {
    let b: Value = serde_json::from_str(bundle).unwrap();
    b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let version = o
                .get("modified")
                .or(o.get("created"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            ((o["id"].as_str().unwrap().to_owned(), version), o.clone())
        })
        .collect()
}

/// Two holdings are the same, version by version and byte for byte; the difference named
/// by keys when not (never the whole maps: they can be megabytes).
pub(crate) fn same(
    got: &BTreeMap<(String, String), Value>,
    want: &BTreeMap<(String, String), Value>,
) {
    let only_got: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let only_want: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let differ: Vec<_> = got
        .iter()
        .filter(|(k, v)| want.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        only_got.is_empty() && only_want.is_empty() && differ.is_empty(),
        "only here: {only_got:?}\nmissing: {only_want:?}\ndifferent: {differ:?}"
    );
}

pub(crate) fn sync(node: &Node, extra: &[&str]) -> (i32, Vec<Value>) {
    let mut args = vec!["sync", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(node, &args);
    let reports: Vec<Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sync --json ({e}): {out}\n{err}"));
    (code, reports)
}

fn note(uuid_prefix: &str, content: &str, marking: &str) -> Value {
    json!({"type": "note", "spec_version": "2.1",
           "id": format!("note--{uuid_prefix}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
           "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
           "content": content, "object_refs": ["identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"],
           "object_marking_refs": [marking]})
}

pub(crate) fn indicator(uuid_prefix: &str, domain: &str, markings: &[&str]) -> Value {
    let mut o = json!({"type": "indicator", "spec_version": "2.1",
           "id": format!("indicator--{uuid_prefix}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
           "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
           "pattern": format!("[domain-name:value = '{domain}']"), "pattern_type": "stix",
           "valid_from": "2024-01-01T00:00:00Z"});
    if !markings.is_empty() {
        o["object_marking_refs"] = json!(markings);
    }
    o
}

/// Only an object's creator makes new versions of it (STIX 2.1 §3.6), by a sync pull too: a
/// peer linked to a partner is that partner's node, and serving newer versions of the
/// node's own objects neither rewrites a version the partner receives (refused) nor one
/// withheld from it (kept as the partner's foreign version, which nobody else reads). Its
/// own objects arrive as before.
#[test]
fn a_peer_cannot_rewrite_the_nodes_objects_by_serving_newer_versions() {
    let a = Node::init_with(&["--jurisdiction", "CN"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    let shared = indicator("66666666", "c2.example.net", &[GREEN]);
    let red = indicator("77777777", "red.example.net", &[RED]);
    import(&a, "intel", &[shared.clone(), red.clone()]);
    partner(&a, "bsi", "DE", &["--read", "intel", "--write", "intel"]);
    cli_ok(&b, &["collection", "create", "intel"]);
    let forged = |o: &Value| {
        let mut o = o.clone();
        o["modified"] = json!("2025-06-01T00:00:00.000Z");
        o["pattern"] = json!("[domain-name:value = 'benign.example.org']");
        o["revoked"] = json!(true);
        o
    };
    import(
        &b,
        "intel",
        &[
            forged(&shared),
            // Served to A: B marks its version GREEN.
            {
                let mut o = forged(&red);
                o["object_marking_refs"] = json!([GREEN]);
                o
            },
            indicator("88888888", "own.example.de", &[GREEN]),
        ],
    );
    // Sightings go home by POST: the key A holds for B also writes.
    let key_for_a = partner(&b, "cncert", "CN", &["--read", "intel", "--write", "intel"]);
    let sb = b.serve();
    cli_ok(
        &a,
        &[
            "peer",
            "add",
            "b",
            &sb.base,
            "--api-root",
            "/concord/",
            "--collection",
            "intel:intel",
            "--token-file",
            key_for_a.to_str().unwrap(),
            "--partner",
            "bsi",
        ],
    );
    let (_, reports) = sync(&a, &[]);
    let r = &reports[0];
    assert_eq!(
        r["pulled_added"], 2,
        "B's own indicator, and the foreign version: {r}"
    );
    let rejected = r["pulled_rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{r}");
    assert!(
        rejected[0]
            .as_str()
            .unwrap()
            .contains("indicator--66666666"),
        "{r}"
    );
    let held_a = held(&a, "intel");
    let versions = |prefix: &str| -> Vec<String> {
        held_a
            .keys()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        versions("indicator--66666666"),
        ["2024-01-01T00:00:00.000Z"]
    );
    assert_eq!(
        versions("indicator--77777777"),
        ["2024-01-01T00:00:00.000Z"]
    );
    assert_eq!(versions("indicator--88888888").len(), 1, "B's own object");

    // Another partner's object is not held to a first-writer claim in a pull: a relay that
    // served it first must not lock out the updates of whoever else serves it (attack a1
    // #2). C serves a newer version of B's indicator, and A takes it.
    let c = Node::init_with(&["--jurisdiction", "FR"]);
    cli_ok(&c, &["collection", "create", "intel"]);
    let mut newer = indicator("88888888", "own.example.de", &[GREEN]);
    newer["modified"] = json!("2025-07-01T00:00:00.000Z");
    import(&c, "intel", &[newer]);
    partner(&a, "certfr", "FR", &["--read", "intel", "--write", "intel"]);
    let key_c = partner(&c, "cncert", "CN", &["--read", "intel", "--write", "intel"]);
    let sc = c.serve();
    cli_ok(
        &a,
        &[
            "peer",
            "add",
            "c",
            &sc.base,
            "--api-root",
            "/concord/",
            "--collection",
            "intel:intel",
            "--token-file",
            key_c.to_str().unwrap(),
            "--partner",
            "certfr",
        ],
    );
    let (_, reports) = sync(&a, &["--peer", "c"]);
    let r = &reports[0];
    assert_eq!(r["pulled_rejected"], json!([]), "{r}");
    assert_eq!(r["pulled_added"], 1, "{r}");
    let held_a = held(&a, "intel");
    assert!(
        held_a.contains_key(&(newer_id(), "2025-07-01T00:00:00.000Z".to_owned())),
        "the newer version from C"
    );
}

fn newer_id() -> String {
    indicator("88888888", "own.example.de", &[])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Three nodes in CN, DE and SA: B pulls from A and pushes to A, A pushes to C. Each holds,
/// object by object, what the sender's policy lets the receiving partner see; a second round
/// moves nothing; nothing received from a peer is pushed back to it.
#[test]
fn three_nodes_hold_what_their_policies_allow() {
    let a = Node::init_with(&["--jurisdiction", "CN"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    let c = Node::init_with(&["--jurisdiction", "SA"]);
    import(
        &a,
        "intel",
        &[
            note("11111111", "Reported by analyst@cert.example.cn", CLEAR),
            indicator("22222222", "c2.example.net", &[GREEN]),
            indicator("33333333", "red.example.net", &[RED]),
            // No marking: the collection's default, AMBER; bsi is a named recipient.
            indicator("44444444", "amber.example.net", &[]),
        ],
    );
    cli_ok(&a, &["collection", "share", "intel", "--recipient", "bsi"]);
    cli_ok(&b, &["collection", "create", "intel"]);
    cli_ok(&c, &["collection", "create", "intel"]);
    // A's partners: B's organisation reads and writes; C's organisation is pushed to.
    let bsi_key = partner(&a, "bsi", "DE", &["--read", "intel", "--write", "intel"]);
    partner(&a, "sacert", "SA", &["--read", "intel"]);
    // B's partner for what B sends to A; C's partner for what A sends to C.
    partner(&b, "cncert", "CN", &["--read", "intel"]);
    let c_key_for_a = partner(&c, "cncert", "CN", &["--write", "intel"]);
    import(
        &b,
        "intel",
        &[note(
            "55555555",
            "Call the duty officer on +49 30 901820",
            CLEAR,
        )],
    );
    let (sa, sc) = (a.serve(), c.serve());
    let key = |p: &Path| p.to_str().unwrap().to_owned();
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
            "intel:intel",
            "--token-file",
            &key(&bsi_key),
            "--partner",
            "cncert",
        ],
    );
    cli_ok(
        &a,
        &[
            "peer",
            "add",
            "c",
            &sc.base,
            "--api-root",
            "/concord/",
            "--collection",
            "intel:intel",
            "--push",
            "--token-file",
            &key(&c_key_for_a),
            "--partner",
            "sacert",
        ],
    );

    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    let r = &reports[0];
    // A's CLEAR note, GREEN indicator and AMBER indicator; not the RED one.
    assert_eq!(r["pulled_added"], 3, "{r}");
    assert_eq!(r["pushed"], 1, "B's own note only: {r}");
    assert_eq!(r["skipped_echo"], 3, "{r}");
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    // B holds exactly what A's policy gives bsi, plus its own note (which A now holds too,
    // as B's policy gave it).
    let mut want_b = as_partner(&a, "intel", "bsi");
    let mut got_b = held(&b, "intel");
    let own: Vec<_> = got_b
        .keys()
        .filter(|(id, _)| id.starts_with("note--55555555"))
        .cloned()
        .collect();
    assert_eq!(own.len(), 1);
    got_b.remove(&own[0]);
    assert!(want_b.remove(&own[0]).is_some());
    same(&got_b, &want_b);
    let pulled_note = got_b.values().find(|o| o["type"] == "note").unwrap();
    assert!(
        pulled_note["content"]
            .as_str()
            .unwrap()
            .contains("@pseudonym.invalid"),
        "{pulled_note}"
    );
    assert!(
        !got_b
            .keys()
            .any(|(id, _)| id.starts_with("indicator--33333333"))
    );
    // A received B's note as B's policy gives a partner in CN: the phone number pseudonymised.
    let got_a = held(&a, "intel");
    let from_b = got_a
        .iter()
        .find(|((id, _), _)| id.starts_with("note--55555555"))
        .unwrap()
        .1;
    assert!(
        from_b["content"]
            .as_str()
            .unwrap()
            .contains("pseudo-phone-"),
        "{from_b}"
    );
    // C holds exactly what A's policy gives sacert (A's own objects and B's note, which A
    // may forward: it came from B, not from C).
    same(&held(&c, "intel"), &as_partner(&a, "intel", "sacert"));
    assert!(
        !held(&c, "intel")
            .keys()
            .any(|(id, _)| id.starts_with("indicator--44444444"))
    );

    // A second round moves nothing.
    let (_, reports) = sync(&b, &[]);
    assert_eq!(reports[0]["pulled_added"], 0, "{}", reports[0]);
    assert_eq!(reports[0]["pushed"], 0, "{}", reports[0]);
    let (_, reports) = sync(&a, &[]);
    assert_eq!(reports[0]["pushed"], 0, "{}", reports[0]);
    // Provenance and state are visible.
    let shown: Value = serde_json::from_str(&cli_ok(&b, &["peer", "show", "a", "--json"])).unwrap();
    assert!(shown["state"]["last_success"].is_string(), "{shown}");
    assert_eq!(shown["state"]["pulled"], 3);
    assert!(
        shown["cursors"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("/pull"))
    );
}

/// A ring A → B → C → A, push only: after two passes each node holds the three versions,
/// each arrived once (one ingress entry per version in each node's audit log), and a third
/// pass moves nothing.
#[test]
fn a_ring_of_three_delivers_each_version_once() {
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node::init_with(&["--jurisdiction", "DE"]))
        .collect();
    let names = ["ring-a", "ring-b", "ring-c"];
    for (i, n) in nodes.iter().enumerate() {
        cli_ok(n, &["collection", "create", "ring"]);
        import(
            n,
            "ring",
            &[indicator(
                &format!("{i}{i}{i}{i}{i}{i}{i}{i}"),
                &format!("{}.example.org", names[i]),
                &[CLEAR],
            )],
        );
    }
    let servers: Vec<Server> = nodes.iter().map(Node::serve).collect();
    for i in 0..3 {
        let next = (i + 1) % 3;
        // The successor accepts the predecessor's pushes; the predecessor's policy partner
        // for the successor.
        let key = partner(
            &nodes[next],
            names[i],
            "DE",
            &["--write", "ring", "--read", "ring"],
        );
        partner(&nodes[i], names[next], "DE", &["--read", "ring"]);
        cli_ok(
            &nodes[i],
            &[
                "peer",
                "add",
                names[next],
                &servers[next].base,
                "--api-root",
                "/concord/",
                "--collection",
                "ring:ring",
                "--push",
                "--token-file",
                key.to_str().unwrap(),
                "--partner",
                names[next],
            ],
        );
    }
    for pass in 0..2 {
        for (i, n) in nodes.iter().enumerate() {
            let (code, reports) = sync(n, &[]);
            assert_eq!(code, 0, "{reports:?}");
            eprintln!("pass {pass} node {i}: {}", reports[0]);
        }
    }
    let all: BTreeSet<String> = nodes
        .iter()
        .flat_map(|n| held(n, "ring").into_keys().map(|(id, _)| id))
        .collect();
    assert_eq!(all.len(), 3);
    for n in &nodes {
        let ids: Vec<String> = held(n, "ring").into_keys().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        let audit: Value =
            serde_json::from_str(&cli_ok(n, &["audit", "show", "--limit", "1000", "--json"]))
                .unwrap();
        for id in &all {
            let arrivals: Vec<&Value> = audit
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["direction"] == "ingress" && e["object_id"] == id.as_str())
                .collect();
            if arrivals.len() != 1 {
                for e in audit.as_array().unwrap() {
                    eprintln!(
                        "{} {} {} {} {} {}",
                        e["seq"],
                        e["direction"],
                        e["door"],
                        e["partner"],
                        e["object_id"],
                        e["decision"]
                    );
                }
            }
            assert_eq!(arrivals.len(), 1, "{id}: {arrivals:?}");
            assert_eq!(arrivals[0]["decision"], "added");
        }
    }
    for n in &nodes {
        let (_, reports) = sync(n, &[]);
        assert_eq!(reports[0]["pushed"], 0, "{}", reports[0]);
    }
}

/// A `concord sync` killed with SIGKILL in the middle of a pull resumes with no duplicate
/// and no gap: afterwards B holds exactly A's 1,826 ICS versions, as A's policy gives them.
#[test]
fn a_sync_killed_midway_resumes_without_gaps_or_duplicates() {
    let a = Node::init();
    let ics = crate::support::data("stix/attack/ics-attack-18.1.json.gz");
    assert_eq!(a.import("ics", &[&ics]).0, 0);
    cli_ok(
        &a,
        &["collection", "share", "ics", "--default-tlp", "clear"],
    );
    let b = Node::init();
    let key = partner(&a, "b", "DE", &["--read", "ics"]);
    let sa = a.serve();
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
            "ics:ics",
            "--pull",
            "--token-file",
            key.to_str().unwrap(),
        ],
    );
    let count = |n: &Node| -> u64 {
        let v: Value = serde_json::from_str(&cli_ok(n, &["collection", "list", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["alias"] == "ics")
            .map_or(0, |c| c["object_versions"].as_u64().unwrap_or(0))
    };
    let total = count(&a);
    assert_eq!(total, 1826);
    let mut child = concord()
        .args(["sync", "--page-size", "3", "--data-dir"])
        .arg(b.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some pages are in, well before the end.
    let start = std::time::Instant::now();
    loop {
        let n = count(&b);
        if n >= 100 {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "the sync never got going ({n})"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync ended before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = count(&b);
    assert!(
        partial < total,
        "killed too late to prove anything ({partial})"
    );
    let (code, reports) = sync(&b, &["--page-size", "100"]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(
        reports[0]["pulled_added"].as_u64().unwrap() + partial,
        total,
        "{}",
        reports[0]
    );
    assert_eq!(count(&b), total);
    // What A's policy gives b (a few ATT&CK descriptions hold personal data: pseudonymised).
    same(&held(&b, "ics"), &as_partner(&a, "ics", "b"));
}

/// A private PKI made with openssl (as on every Debian machine): a CA, a server certificate
/// for 127.0.0.1 and a client certificate, all signed by the CA. PEM file paths.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Concord test CA",
            "-keyout",
            &file("ca.key"),
            "-out",
            &file("ca.pem"),
        ]);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(file(&format!("{name}.cnf")), ext).unwrap();
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &file(&format!("{name}.key")),
                "-out",
                &file(&format!("{name}.csr")),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &file(&format!("{name}.csr")),
                "-CA",
                &file("ca.pem"),
                "-CAkey",
                &file("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &file(&format!("{name}.pem")),
                "-extfile",
                &file(&format!("{name}.cnf")),
            ]);
        }
        Pki {
            ca: file("ca.pem"),
            server_cert: file("server.pem"),
            server_key: file("server.key"),
            client_cert: file("client.pem"),
            client_key: file("client.key"),
        }
    }
}

/// Nodes over TLS with client certificates: a node serving TLS that requires a client
/// certificate from its CA syncs with a peer that presents one, and refuses one that does
/// not, at the handshake.
#[test]
fn nodes_sync_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let a = Node::init();
    import(
        &a,
        "intel",
        &[indicator("77777777", "tls.example.net", &[CLEAR])],
    );
    let key = partner(&a, "b", "DE", &["--read", "intel"]);
    // b's agreement requires encryption in transit (issue 19): over TLS it is served, and
    // b's node, which fetches the agreement, syncs over https.
    let config = a.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[policy]\n[policy.agreements.tls-only]\npartners = [\"b\"]\n\
             encrypt_in_transit = \"must\"\n"
        ),
    )
    .unwrap();
    let sa = a.serve_with(&[
        ("CONCORD_TLS_CERT", &pki.server_cert),
        ("CONCORD_TLS_KEY", &pki.server_key),
        ("CONCORD_TLS_CLIENT_CA", &pki.ca),
    ]);
    assert!(sa.base.starts_with("https://127.0.0.1:"), "{}", sa.base);
    let b = Node::init();
    let common = |name: &'static str| {
        vec![
            "peer".to_owned(),
            "add".into(),
            name.into(),
            sa.base.clone(),
            "--api-root".into(),
            "/concord/".into(),
            "--collection".into(),
            "intel:intel".into(),
            "--pull".into(),
            "--token-file".into(),
            key.to_str().unwrap().into(),
            "--ca-file".into(),
            pki.ca.clone(),
            "--timeout".into(),
            "5".into(),
        ]
    };
    let mut with_cert = common("a");
    with_cert.extend([
        "--client-cert".into(),
        pki.client_cert.clone(),
        "--client-key".into(),
        pki.client_key.clone(),
    ]);
    cli_ok(
        &b,
        &with_cert.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (code, reports) = sync(&b, &["--peer", "a"]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    // No client certificate: refused in the handshake, before any token is looked at.
    let without = common("a-nocert");
    cli_ok(&b, &without.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, reports) = sync(&b, &["--peer", "a-nocert"]);
    assert_eq!(code, 1, "{reports:?}");
    let error = reports[0]["error"].as_str().unwrap().to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("alert"),
        "{error}"
    );
    // A bad certificate file stops `serve` before it listens, naming the file.
    let out = run(concord()
        .env("CONCORD_TLS_CERT", dir.path().join("nothing.pem"))
        .env("CONCORD_TLS_KEY", &pki.server_key)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(a.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing.pem"));
}

/// A fake peer on loopback that answers every request with `answer` after `delay`; the
/// thread ends with the test process.
fn fake_peer(answer: &'static str, delay: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                std::thread::sleep(delay);
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    format!("http://{addr}")
}

/// A peer that is down, slow, answers 500, answers garbage, or presents a certificate this
/// node does not trust: the round fails after its retries, the error is recorded where
/// `peer show` tells it, and a serving node keeps serving while its scheduler fails.
#[test]
fn faults_are_retried_recorded_and_the_node_keeps_serving() {
    let node = Node::init();
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }; // dropped: nothing listens there any more
    let no_delay = std::time::Duration::ZERO;
    let error500 = fake_peer(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/taxii+json;version=2.1\r\nContent-Length: 31\r\nConnection: close\r\n\r\n{\"title\":\"database is on fire\"}",
        no_delay,
    );
    let garbage = fake_peer(
        "HTTP/1.1 200 OK\r\nContent-Type: application/taxii+json;version=2.1\r\nContent-Length: 15\r\nConnection: close\r\n\r\nnot JSON at all",
        no_delay,
    );
    let slow = fake_peer(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        std::time::Duration::from_secs(5),
    );
    // A TLS server whose certificate a private CA signed: untrusted by default, trusted
    // with --ca-file.
    let tls_dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(tls_dir.path());
    let (cert, key, ca) = (
        pki.server_cert.clone(),
        pki.server_key.clone(),
        pki.ca.clone(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s_server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let wrong_cert = format!("https://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cases = [
        ("down", down.as_str(), "Connection refused"),
        (
            "error500",
            error500.as_str(),
            "HTTP 500: database is on fire",
        ),
        ("garbage", garbage.as_str(), "unreadable answer"),
        ("slow", slow.as_str(), "timeout"),
        ("wrongcert", wrong_cert.as_str(), "certificate"),
    ];
    cli_ok(&node, &["collection", "create", "in"]);
    for (name, url, _) in &cases {
        cli_ok(
            &node,
            &[
                "peer",
                "add",
                name,
                url,
                "--api-root",
                "/taxii/",
                "--collection",
                "x:in",
                "--pull",
                "--timeout",
                "1",
            ],
        );
    }
    for (name, _, expected) in &cases {
        let start = std::time::Instant::now();
        let (code, reports) = sync(&node, &["--peer", name]);
        assert_eq!(code, 1, "{name}: {reports:?}");
        let error = reports[0]["error"].as_str().unwrap().to_owned();
        assert!(
            error.to_lowercase().contains(&expected.to_lowercase()),
            "{name}: {error}"
        );
        // Retried with backoff (0.25 + 0.5 + 1 s between the four attempts), not forever.
        assert!(error.contains("after 4 attempts"), "{name}: {error}");
        assert!(start.elapsed().as_secs() < 30, "{name}");
        let shown: Value =
            serde_json::from_str(&cli_ok(&node, &["peer", "show", name, "--json"])).unwrap();
        assert_eq!(shown["state"]["last_error"], error.as_str(), "{name}");
        assert_eq!(shown["state"]["consecutive_failures"], 1, "{name}");
        assert!(shown["state"]["last_success"].is_null());
    }
    // Trusting the certificate (--ca-file) gets past TLS: the failure is then the plain
    // web page s_server answers, not JSON.
    cli_ok(
        &node,
        &[
            "peer",
            "add",
            "wrongcert",
            &wrong_cert,
            "--api-root",
            "/taxii/",
            "--collection",
            "x:in",
            "--pull",
            "--timeout",
            "1",
            "--ca-file",
            &ca,
        ],
    );
    let (_, reports) = sync(&node, &["--peer", "wrongcert"]);
    let error = reports[0]["error"].as_str().unwrap();
    assert!(!error.contains("certificate"), "{error}");
    let _ = s_server.kill();
    let _ = s_server.wait();
    // A serving node whose scheduler fails keeps serving, and records the errors.
    for (name, ..) in &cases[1..] {
        cli_ok(&node, &["peer", "remove", name]);
    }
    let server = node.serve_with(&[("CONCORD_SYNC_SCHEDULE", "true")]);
    let start = std::time::Instant::now();
    loop {
        assert_eq!(server.get("/taxii2/").status, 200);
        let shown: Value =
            serde_json::from_str(&cli_ok(&node, &["peer", "show", "down", "--json"])).unwrap();
        if shown["state"]["consecutive_failures"].as_u64() >= Some(2) {
            let error = shown["state"]["last_error"].as_str().unwrap();
            assert!(error.contains("Connection refused"), "{error}");
            break;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "the scheduler never ran: {shown}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(server.get("/taxii2/").status, 200);
}

/// medallion, the OASIS reference TAXII 2.1 server (from the interop virtual environment),
/// is a peer like any other: node A pushes ATT&CK for ICS objects to it (as A's policy gives the
/// partner linked to it), node B pulls it back from there page by page, and holds exactly
/// that, object by object.
#[test]
fn medallion_is_a_peer_to_push_to_and_pull_from() {
    let Some(python) = crate::interop::python() else {
        return;
    };
    let medallion = python.with_file_name("medallion");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let collection = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";
    let data = json!({
        "/discovery": {"title": "medallion", "default": format!("{base}/api1/"),
                       "api_roots": [format!("{base}/api1/")]},
        "api1": {"information": {"title": "api1", "versions": ["application/taxii+json;version=2.1"],
                                 "max_content_length": 10_485_760},
                 "status": [],
                 "collections": [{"id": collection, "title": "medallion-intel", "can_read": true,
                                  "can_write": true, "media_types": ["application/stix+json;version=2.1"],
                                  "objects": [], "manifest": []}]}
    });
    let data_file = dir.path().join("data.json");
    std::fs::write(&data_file, data.to_string()).unwrap();
    let config = json!({"backend": {"module": "medallion.backends.memory_backend",
                                    "module_class": "MemoryBackend", "filename": data_file},
                        "users": {"admin": "Password0"}, "taxii": {"max_page_size": 100}});
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "Password0").unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        std::process::Command::new(&medallion)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&config_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start medallion"),
    );
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed().as_secs() < 30, "medallion did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // 300 objects of ATT&CK for ICS: medallion's memory backend filters `added_after` in
    // time quadratic in the collection (every object against every manifest entry), which
    // makes the whole bundle a minutes-long test.
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let ics: Value = serde_json::from_str(
        &String::from_utf8(crate::support::read_data(
            "stix/attack/ics-attack-18.1.json.gz",
        ))
        .unwrap(),
    )
    .unwrap();
    // With the marking definitions they reference: a marking the node does not hold cannot
    // be decided, and the egress door withholds what carries it (fail closed).
    let all = ics["objects"].as_array().unwrap();
    let mut subset: Vec<Value> = all[..300].to_vec();
    subset.extend(
        all[300..]
            .iter()
            .filter(|o| o["type"] == "marking-definition")
            .cloned(),
    );
    let n = subset.len();
    import(&a, "ics", &subset);
    cli_ok(
        &a,
        &["collection", "share", "ics", "--default-tlp", "clear"],
    );
    partner(&a, "oasis", "US", &["--read", "ics"]);
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "peer",
            "add",
            "medallion",
            &base,
            "--api-root",
            "/api1/",
            "--collection",
            "medallion-intel:ics",
            "--user",
            "admin",
            "--password-file",
            password.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let push: Vec<String> = args(&["--push", "--partner", "oasis"]);
    cli_ok(&a, &push.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pushed"], n, "{}", reports[0]);
    assert_eq!(reports[0]["push_failures"], json!([]));
    // Nothing twice: a second round asks medallion's manifest and sends nothing.
    let (_, reports) = sync(&a, &[]);
    assert_eq!(reports[0]["pushed"], 0, "{}", reports[0]);

    let b = Node::init();
    let pull: Vec<String> = args(&["--pull"]);
    cli_ok(&b, &pull.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, reports) = sync(&b, &["--page-size", "100"]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], n, "{}", reports[0]);
    assert!(reports[0]["pages"].as_u64().unwrap() >= 3, "{}", reports[0]);
    same(&held(&b, "ics"), &as_partner(&a, "ics", "oasis"));
    // And a second pull fetches nothing new.
    let (_, reports) = sync(&b, &[]);
    assert_eq!(reports[0]["pulled_added"], 0, "{}", reports[0]);

    // A delete at A reaches medallion at A's next push round: a TAXII 2.1 §5.7 DELETE of
    // the version pushed (medallion asks for read and write access; its user has both).
    let gone = subset
        .iter()
        .find(|o| o["type"] == "attack-pattern")
        .expect("an attack-pattern in the subset");
    let (gone_id, gone_version) = (
        gone["id"].as_str().unwrap(),
        gone["modified"].as_str().unwrap(),
    );
    let at_medallion = |id: &str| {
        crate::support::Server::agent()
            .get(format!(
                "{base}/api1/collections/{collection}/objects/{id}/"
            ))
            .header("Accept", crate::support::TAXII)
            .header("Authorization", "Basic YWRtaW46UGFzc3dvcmQw") // admin:Password0
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(at_medallion(gone_id), 200);
    let sa = a.serve();
    let r = sa.delete(&format!(
        "/concord/collections/ics/objects/{gone_id}/?match[version]={gone_version}"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["push_deleted"], 1, "{}", reports[0]);
    assert_eq!(reports[0]["push_failures"], json!([]), "{}", reports[0]);
    assert_eq!(at_medallion(gone_id), 404);
    // Sent once.
    let (_, reports) = sync(&a, &[]);
    assert_eq!(reports[0]["push_deleted"], 0, "{}", reports[0]);
    assert_eq!(reports[0]["push_delete_absent"], 0, "{}", reports[0]);
}

/// Sightings go home (issue 7, item 5): B pulls A's indicators, matches its own observables
/// against them, and the next round sends the sighting back to A, within B's policy for A.
#[test]
fn a_sighting_goes_home_to_the_producer_of_the_indicator() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("88888888", "c2.home.example", &[GREEN])],
    );
    let key = partner(&a, "b", "DE", &["--read", "intel", "--write", "intel"]);
    let sa = a.serve();
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&b, &["collection", "create", "intel"]);
    partner(&b, "a-org", "DE", &["--read", "intel"]);
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
            "intel:intel",
            "--pull",
            "--token-file",
            key.to_str().unwrap(),
            "--partner",
            "a-org",
        ],
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1);
    let obs = b.path().join("obs.txt");
    std::fs::write(&obs, "c2.home.example\nc2.home.example\nother.example\n").unwrap();
    let out = cli_ok(
        &b,
        &[
            "match",
            "--collection",
            "intel",
            "--sightings",
            "seen",
            obs.to_str().unwrap(),
        ],
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    // Unmarked, the sighting is AMBER by the collection's default: withheld from a-org …
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["withheld"], 1, "{}", reports[0]);
    assert_eq!(reports[0]["sightings_home"], 0, "{}", reports[0]);
    // … until the operator names a-org a recipient of the sightings collection. The
    // sightings cursor has moved on, so a new match makes the sighting that goes home.
    cli_ok(&b, &["collection", "share", "seen", "--recipient", "a-org"]);
    cli_ok(
        &b,
        &[
            "match",
            "--collection",
            "intel",
            "--sightings",
            "seen",
            obs.to_str().unwrap(),
        ],
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["sightings_home"], 1, "{}", reports[0]);
    let at_a = held(&a, "intel");
    let sighting = at_a
        .values()
        .find(|o| o["type"] == "sighting")
        .expect("the sighting reached A");
    assert_eq!(
        sighting["sighting_of_ref"],
        "indicator--88888888-8ff6-4a8b-9c2f-6e5a3b1f0d11"
    );
    assert_eq!(sighting["count"], 2);
    // Sent once: the next round sends nothing home.
    let (_, reports) = sync(&b, &[]);
    assert_eq!(reports[0]["sightings_home"], 0, "{}", reports[0]);
}

/// Issue 15: sightings going home pass the same egress door as everything else. A node in
/// CN sends its sightings of a German producer's indicator home: the copy the producer gets
/// has no raw personal data (the e-mail address and phone number in the description and a
/// custom property are pseudonymised across the border), no reference to the SOC's own RED
/// identity (optional, removed), and the RED sighting and the RED identity stay home.
#[test]
fn sightings_going_home_pass_the_egress_door() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("77777777", "c2.home.example", &[GREEN])],
    );
    let key = partner(&a, "b", "CN", &["--read", "intel", "--write", "intel"]);
    let sa = a.serve();
    let b = Node::init_with(&["--jurisdiction", "CN"]);
    cli_ok(&b, &["collection", "create", "intel"]);
    partner(&b, "a-org", "DE", &["--read", "intel"]);
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
            "intel:intel",
            "--pull",
            "--token-file",
            key.to_str().unwrap(),
            "--partner",
            "a-org",
        ],
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1);
    let indicator_id = "indicator--77777777-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    let soc = "identity--5e5e5e5e-0000-4000-8000-000000000001";
    let (green_sighting, red_sighting) = (
        "sighting--5e5e5e5e-0000-4000-8000-000000000002",
        "sighting--5e5e5e5e-0000-4000-8000-000000000003",
    );
    let t = "2026-01-01T00:00:00.000Z";
    let sighting = |id: &str, marking: &str| {
        json!({"type": "sighting", "spec_version": "2.1", "id": id, "created": t,
            "modified": t, "sighting_of_ref": indicator_id, "count": 3,
            "where_sighted_refs": [soc],
            "description": "beacon from the laptop of grace.hopper@corp.cn, call +86 138 0013 8001",
            "x_reported_by": "li.wei@corp.cn",
            "object_marking_refs": [marking]})
    };
    import(
        &b,
        "seen",
        &[
            json!({"type": "identity", "spec_version": "2.1", "id": soc, "created": t,
                "modified": t, "name": "SOC of corp.cn", "identity_class": "organization",
                "object_marking_refs": [RED]}),
            sighting(green_sighting, GREEN),
            sighting(red_sighting, RED),
        ],
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["sightings_home"], 1, "{}", reports[0]);
    let at_a = cli_ok(&a, &["export", "--collection", "intel"]);
    for forbidden in [
        "grace.hopper@corp.cn",
        "li.wei@corp.cn",
        "138 0013 8001",
        soc,
        red_sighting,
    ] {
        assert!(!at_a.contains(forbidden), "{forbidden} went home: {at_a}");
    }
    let got = objects(&at_a);
    let s = got
        .values()
        .find(|o| o["id"] == green_sighting)
        .expect("the GREEN sighting went home");
    assert_eq!(s["sighting_of_ref"], indicator_id);
    assert_eq!(s["count"], 3);
    assert!(s.get("where_sighted_refs").is_none(), "{s}");
    // Pseudonymised, not dropped: the sighting still says what was seen.
    assert!(
        s["description"]
            .as_str()
            .unwrap()
            .contains("beacon from the laptop of"),
        "{s}"
    );
    // And the node that sent it recorded what it decided.
    let log = cli_ok(&b, &["audit", "show", "--partner", "a-org", "--json"]);
    let log: Vec<Value> = serde_json::from_str(&log).unwrap();
    let home: Vec<&Value> = log
        .iter()
        .filter(|e| e["door"] == "sync-sightings")
        .collect();
    assert!(
        home.iter()
            .any(|e| e["object_id"] == green_sighting && e["decision"] == "rewritten"),
        "{home:?}"
    );
    assert!(
        home.iter()
            .any(|e| e["object_id"] == red_sighting && e["decision"] == "withheld"),
        "{home:?}"
    );
}

/// Issue 16, item 5: versions of years 0001 and 9999 (`valid_until: 9999-12-31T23:59:59Z`)
/// and of a leap second travel by pull like any other, byte for byte, and a second round
/// moves nothing either way (the manifest's versions compare exactly).
#[test]
fn far_dates_and_leap_seconds_sync() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    let version = |modified: &str, until: Option<&str>| {
        let mut o = indicator("77777777", "far.example.org", &[CLEAR]);
        o["created"] = json!("0001-01-01T00:00:00.000Z");
        o["modified"] = json!(modified);
        o["valid_from"] = json!("0001-01-01T00:00:00Z");
        if let Some(u) = until {
            o["valid_until"] = json!(u);
        }
        o
    };
    import(
        &a,
        "far",
        &[
            version("9999-12-31T23:59:59.000Z", Some("9999-12-31T23:59:59Z")),
            version("2016-12-31T23:59:60.250Z", Some("2016-12-31T23:59:60Z")),
            version("0001-01-01T00:00:00.000Z", None),
        ],
    );
    cli_ok(&b, &["collection", "create", "far"]);
    let key = partner(&a, "b-org", "DE", &["--read", "far", "--write", "far"]);
    partner(&b, "a-org", "DE", &["--read", "far"]);
    let sa = a.serve();
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
            "far:far",
            "--token-file",
            key.to_str().unwrap(),
            "--partner",
            "a-org",
        ],
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    let want = held(&a, "far");
    assert_eq!(want.len(), 3);
    same(&held(&b, "far"), &want);
    let exported = cli_ok(&b, &["export", "--collection", "far"]);
    assert!(
        exported.contains(r#""modified":"9999-12-31T23:59:59.000Z""#)
            && exported.contains(r#""valid_until":"9999-12-31T23:59:59Z""#)
            && exported.contains(r#""modified":"2016-12-31T23:59:60.250Z""#),
        "{exported}"
    );
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pushed"], 0, "{}", reports[0]);
    same(&held(&b, "far"), &want);
    same(&held(&a, "far"), &want);
}

/// An agreement whose end date passed stops the flow both ways within one round (issue 19):
/// A's agreement with B ends; A's next round with B stops before any request, and B's next
/// round with A stops as soon as it fetched A's signed agreement (which A serves B at
/// `GET /concord/agreement/`). Before that, both rounds run, and `partner show` says which
/// agreement version each side holds; the audit log names the agreement's legal basis.
#[test]
fn an_ended_agreement_stops_sync_both_ways() {
    let a = Node::init_with(&["--jurisdiction", "CN"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    let config = a.path().join("concord.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let with_end = |end: &str| {
        format!(
            "{base}\n[policy]\npolicy_version = \"ab\"\n[policy.agreements.a-b]\n\
             partners = [\"b\"]\nend_date = \"{end}\"\ntransfer_mechanism = \"gdpr-scc\"\n\
             legal_basis = \"SCC module 1, signed 2026-03-02\"\n"
        )
    };
    std::fs::write(&config, with_end("2099-01-01T00:00:00Z")).unwrap();
    cli_ok(&a, &["collection", "create", "x"]);
    cli_ok(&b, &["collection", "create", "y"]);
    let key_of_b = partner(&a, "b", "DE", &["--read", "x", "--write", "x"]);
    let key_of_a = partner(&b, "a", "CN", &["--read", "y", "--write", "y"]);
    import(&a, "x", &[note("a0000001", "from a, before", CLEAR)]);
    import(&b, "y", &[note("b0000001", "from b, before", CLEAR)]);
    let sa = a.serve();
    let sb = b.serve();
    let peer = |node: &Node, name: &str, url: &str, mapping: &str, key: &Path, partner: &str| {
        cli_ok(
            node,
            &[
                "peer",
                "add",
                name,
                url,
                "--api-root",
                "/concord/",
                "--collection",
                mapping,
                "--pull",
                "--push",
                "--token-file",
                key.to_str().unwrap(),
                "--partner",
                partner,
            ],
        );
    };
    peer(&a, "b", &sb.base, "y:x", &key_of_a, "b");
    peer(&b, "a", &sa.base, "x:y", &key_of_b, "a");
    let ids = |node: &Node, c: &str| -> BTreeSet<String> {
        held(node, c).into_keys().map(|(id, _)| id).collect()
    };
    let (code, r) = sync(&a, &["--peer", "b"]);
    assert_eq!(code, 0, "{r:?}");
    let (code, r) = sync(&b, &["--peer", "a"]);
    assert_eq!(code, 0, "{r:?}");
    let both: BTreeSet<String> = [
        "note--a0000001-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        "note--b0000001-8ff6-4a8b-9c2f-6e5a3b1f0d11",
    ]
    .map(String::from)
    .into();
    assert_eq!(ids(&a, "x"), both);
    assert_eq!(ids(&b, "y"), both);
    // Which version each side holds: `partner show` (its `agreement:` line).
    let shown = |node: &Node, p: &str| -> String {
        cli_ok(node, &["partner", "show", p])
            .lines()
            .find(|l| l.starts_with("agreement: "))
            .unwrap_or_else(|| panic!("no agreement line"))
            .to_owned()
    };
    let on_a = shown(&a, "b");
    let ours = on_a
        .strip_prefix("agreement: ours ")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    assert!(
        ours.starts_with("a-b@") && ours.len() == "a-b@".len() + 12,
        "{on_a}"
    );
    assert_eq!(
        on_a,
        format!(
            "agreement: ours {ours}; fetched by the partner {ours}; the partner holds none (peer b)"
        )
    );
    assert_eq!(
        shown(&b, "a"),
        format!(
            "agreement: ours -; fetched by the partner none; the partner holds {ours} \
             (until 2099-01-01T00:00:00Z) (peer a)"
        )
    );
    // The same over the admin API.
    let api = sa
        .request(
            "GET",
            "/api/v1/partners/b/agreement",
            &[(
                "Authorization",
                &format!("Bearer {}", crate::support::TOKEN),
            )],
            None,
        )
        .json();
    assert_eq!(
        api,
        json!({"ours": ours, "fetched_by_partner": ours, "theirs": "none",
               "theirs_end_date": null, "peer": "b"})
    );
    // The document A serves b: its own agreement only, signed with A's node key; the
    // operator (no partner) gets the answer of a missing path.
    let admin = sa.request(
        "GET",
        "/concord/agreement/",
        &[
            (
                "Authorization",
                &format!("Bearer {}", crate::support::TOKEN),
            ),
            ("Accept", crate::support::TAXII),
        ],
        None,
    );
    assert_eq!(admin.status, 404, "{}", admin.body);
    let b_key = std::fs::read_to_string(&key_of_b).unwrap();
    let doc = sa
        .request(
            "GET",
            "/concord/agreement/",
            &[
                ("Authorization", &format!("Bearer {b_key}")),
                ("Accept", crate::support::TAXII),
            ],
            None,
        )
        .json();
    let a_key_file = a.path().join("a-node.key");
    cli_ok(&a, &["node", "key", "-o", a_key_file.to_str().unwrap()]);
    let a_key = std::fs::read_to_string(&a_key_file).unwrap();
    assert_eq!(doc["key"].as_str().unwrap(), a_key.trim());
    let signed: Value = serde_json::from_str(doc["signed"].as_str().unwrap()).unwrap();
    assert_eq!(signed["partner"], "b");
    assert_eq!(signed["version"], ours.as_str());
    assert_eq!(
        signed["agreement"]["legal_basis"],
        "SCC module 1, signed 2026-03-02"
    );
    assert!(signed["agreement"].get("partners").is_none(), "{signed}");
    // A peer pinned to another node key refuses the document, and the round.
    let b_key_file = b.path().join("b-node.key");
    cli_ok(&b, &["node", "key", "-o", b_key_file.to_str().unwrap()]);
    cli_ok(
        &b,
        &[
            "peer",
            "add",
            "a-pinned-wrong",
            &sa.base,
            "--api-root",
            "/concord/",
            "--collection",
            "x:y",
            "--pull",
            "--token-file",
            key_of_b.to_str().unwrap(),
            "--partner",
            "a",
            "--node-key",
            b_key_file.to_str().unwrap(),
        ],
    );
    let (code, r) = sync(&b, &["--peer", "a-pinned-wrong"]);
    assert_eq!(code, 1, "{r:?}");
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap()
            .contains("not by the peer's node key"),
        "{r:?}"
    );
    cli_ok(&b, &["peer", "remove", "a-pinned-wrong"]);
    // The audit log names the agreement of each of A's transfers to b, with its legal basis.
    let audit: Value =
        serde_json::from_str(&cli_ok(&a, &["audit", "show", "--partner", "b", "--json"])).unwrap();
    assert!(
        audit.as_array().unwrap().iter().any(|r| r["agreement"]
            == "a-b (gdpr-scc: SCC module 1, signed 2026-03-02)"
            && r["door"] == "sync-push"),
        "{audit}"
    );

    // The agreement ends: a new policy version, A serving it.
    drop(sa);
    std::fs::write(&config, with_end("2020-01-01T00:00:00Z")).unwrap();
    let sa = a.serve();
    cli_ok(&b, &["peer", "remove", "a"]);
    peer(&b, "a", &sa.base, "x:y", &key_of_b, "a");
    // Pinned to A's node key from now on: the document verifies against it.
    cli_ok(
        &b,
        &[
            "peer",
            "add",
            "a-pinned",
            &sa.base,
            "--api-root",
            "/concord/",
            "--collection",
            "x:y",
            "--pull",
            "--token-file",
            key_of_b.to_str().unwrap(),
            "--partner",
            "a",
            "--node-key",
            a_key_file.to_str().unwrap(),
        ],
    );
    import(&a, "x", &[note("a0000002", "from a, after", CLEAR)]);
    import(&b, "y", &[note("b0000002", "from b, after", CLEAR)]);
    let (code, r) = sync(&a, &["--peer", "b"]);
    assert_eq!(code, 1, "{r:?}");
    let error = r[0]["error"].as_str().unwrap();
    assert!(
        error.contains("agreement a-b with b ended at 2020-01-01T00:00:00Z (IEP 2.0 end_date)"),
        "{error}"
    );
    for peer in ["a", "a-pinned"] {
        let (code, r) = sync(&b, &["--peer", peer]);
        assert_eq!(code, 1, "{r:?}");
        let error = r[0]["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("the agreement peer {peer} holds with this node"))
                && error.contains("ended at 2020-01-01T00:00:00Z"),
            "{error}"
        );
    }
    let plus = |id: &str| -> BTreeSet<String> {
        let mut s = both.clone();
        s.insert(format!("note--{id}-8ff6-4a8b-9c2f-6e5a3b1f0d11"));
        s
    };
    assert_eq!(
        ids(&a, "x"),
        plus("a0000002"),
        "nothing came from b after the end"
    );
    assert_eq!(
        ids(&b, "y"),
        plus("b0000002"),
        "nothing came from a after the end"
    );
    // B holds A's new version now: the one that ended.
    let on_b = shown(&b, "a");
    assert!(
        on_b.contains("(until 2020-01-01T00:00:00Z)") && !on_b.contains(&ours),
        "{on_b}"
    );
    // And A's doors give b nothing any more.
    let r = sa.request(
        "GET",
        "/concord/collections/x/objects/",
        &[
            (
                "Authorization",
                &format!("Bearer {}", std::fs::read_to_string(&key_of_b).unwrap()),
            ),
            ("Accept", crate::support::TAXII),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["objects"].as_array().is_none_or(|o| o.is_empty()),
        "{}",
        r.body
    );
    // Nor may b write to A any more (a node that ignored the end date).
    let envelope = json!({"objects": [note("b0000003", "from b, refused", CLEAR)]}).to_string();
    let r = sa.request(
        "POST",
        "/concord/collections/x/objects/",
        &[
            (
                "Authorization",
                &format!("Bearer {}", std::fs::read_to_string(&key_of_b).unwrap()),
            ),
            ("Accept", crate::support::TAXII),
            ("Content-Type", crate::support::TAXII),
        ],
        Some(&envelope),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body
            .contains("agreement a-b with b ended at 2020-01-01T00:00:00Z"),
        "{}",
        r.body
    );
    assert_eq!(ids(&a, "x"), plus("a0000002"));
    // Nor do B's doors give a anything: B enforces the agreement it received from A.
    let r = sb.request(
        "GET",
        "/concord/collections/y/objects/",
        &[
            (
                "Authorization",
                &format!("Bearer {}", std::fs::read_to_string(&key_of_a).unwrap()),
            ),
            ("Accept", crate::support::TAXII),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["objects"].as_array().is_none_or(|o| o.is_empty()),
        "{}",
        r.body
    );
    let (code, out, _) = cli(
        &b,
        &[
            "policy",
            "explain",
            "--partner",
            "a",
            "note--b0000001-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the agreement a's node holds with this node")
            && out.contains("ended at 2020"),
        "{out}"
    );
    drop(sb);
}
