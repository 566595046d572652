//! The admin REST API (issue 23, item 1) over real HTTP against a real `concord serve`:
//! every resource's effect is checked where it matters (a key made by the API opens TAXII,
//! a sharing change changes what a partner reads, a removed partner's key stops working,
//! `audit/verify` finds an edited entry), partners get the answer of a missing path, errors
//! carry a stable `code`; and schemathesis runs against the served OpenAPI document.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Node, Reply, Server, TAXII, TOKEN, concord, run};

const INDICATOR: &str = "indicator--7a3c3b5e-40a4-4a71-9a8f-0d2f3e3b9c11";

fn admin(s: &Server, method: &str, path: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Accept", "application/json"),
    ];
    let text = body.map(|b| b.to_string());
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    s.request(method, path, &headers, text.as_deref())
}

fn with_key(s: &Server, key: &str, method: &str, path: &str, accept: &str) -> Reply {
    let auth = format!("Bearer {key}");
    s.request(
        method,
        path,
        &[("Authorization", &auth), ("Accept", accept)],
        None,
    )
}

/// Polls `f` until it holds, up to `bound` (a generous bound, not a timing assertion).
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

/// A node in DE with collection `intel` holding one unmarked indicator (TLP:AMBER by the
/// collection's default, so no partner receives it until the sharing changes).
fn node() -> Node {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let bundle = node.path().join("b.json");
    std::fs::write(
        &bundle,
        json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001",
            "objects": [{"type": "indicator", "spec_version": "2.1", "id": INDICATOR,
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "pattern": "[domain-name:value = 'c2.example']", "pattern_type": "stix",
                "valid_from": "2026-01-01T00:00:00Z"}]})
        .to_string(),
    )
    .unwrap();
    let (code, report) = node.import("intel", &[&bundle]);
    assert_eq!(code, 0, "{report}");
    node
}

fn objects_seen(s: &Server, key: &str) -> Option<usize> {
    let r = with_key(s, key, "GET", "/concord/collections/intel/objects/", TAXII);
    (r.status == 200).then(|| r.json()["objects"].as_array().map_or(0, Vec::len))
}

fn assert_error(r: &Reply, status: u16, code: &str, says: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let e = r.json();
    assert_eq!(e["code"], code, "{e}");
    assert!(e["message"].as_str().unwrap().contains(says), "{e}");
}

#[test]
fn partners_collections_sharing_policy_and_keys_over_http() {
    let node = node();
    let s = node.serve();

    // No credentials: the TAXII gate's 401.
    let r = s.request("GET", "/api/v1/partners", &[], None);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());

    // Collections: create, refuse a taken alias and a broken one, list, show.
    let r = admin(
        &s,
        "POST",
        "/api/v1/collections",
        Some(json!({"alias": "inbox"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let inbox = r.json();
    assert_eq!(inbox["alias"], "inbox");
    assert_eq!(inbox["object_versions"], 0);
    let r = admin(
        &s,
        "POST",
        "/api/v1/collections",
        Some(json!({"alias": "inbox"})),
    );
    assert_error(&r, 409, "conflict", "already exists");
    let r = admin(
        &s,
        "POST",
        "/api/v1/collections",
        Some(json!({"alias": "a/b"})),
    );
    assert_error(&r, 400, "invalid_request", "collection alias");
    let list = admin(&s, "GET", "/api/v1/collections", None).json();
    let intel = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alias"] == "intel")
        .cloned()
        .unwrap();
    assert_eq!(intel["object_versions"], 1);
    let r = admin(
        &s,
        "GET",
        &format!("/api/v1/collections/{}", intel["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.json()["alias"], "intel");
    let r = admin(&s, "GET", "/api/v1/collections/nope", None);
    assert_error(&r, 404, "not_found", "no collection \"nope\"");

    // Partners: rules first, then a real one whose key opens TAXII.
    for (body, status, code, says) in [
        (
            json!({"name": "x", "jurisdiction": "Germany"}),
            400,
            "invalid_request",
            "jurisdiction \"Germany\"",
        ),
        (
            json!({"name": "", "jurisdiction": "DE"}),
            400,
            "invalid_request",
            "partner name",
        ),
        (
            json!({"name": "x", "jurisdiction": "DE", "read": ["nope"]}),
            404,
            "not_found",
            "no collection \"nope\"",
        ),
        (
            json!({"name": "x", "jurisdiction": "DE", "colour": "red"}),
            400,
            "invalid_request",
            "unknown field `colour`",
        ),
        (
            json!({"jurisdiction": "DE"}),
            400,
            "invalid_request",
            "missing field `name`",
        ),
    ] {
        let r = admin(&s, "POST", "/api/v1/partners", Some(body));
        assert_error(&r, status, code, says);
    }
    let auth = format!("Bearer {TOKEN}");
    let r = s.request(
        "POST",
        "/api/v1/partners",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some("{\"name\": "),
    );
    assert_error(&r, 400, "invalid_request", "line 1 column");
    let r = s.request(
        "POST",
        "/api/v1/partners",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some("{}"),
    );
    assert_error(&r, 415, "unsupported_media_type", "application/json");
    let r = admin(&s, "PUT", "/api/v1/partners", Some(json!({})));
    assert_error(&r, 405, "method_not_allowed", "method not allowed");
    assert!(
        r.header("allow").is_some_and(|a| a.contains("POST")),
        "{:?}",
        r.headers
    );

    let r = admin(
        &s,
        "POST",
        "/api/v1/partners",
        Some(
            json!({"name": "bsi", "jurisdiction": "de", "groups": ["eu-cert"],
            "read": ["intel"], "write": ["inbox"]}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    assert_eq!(created["jurisdiction"], "DE");
    assert_eq!(created["read"], json!([intel["id"]]));
    assert_eq!(created["write"], json!([inbox["id"]]));
    let key = created["api_key"].as_str().unwrap().to_owned();
    let r = admin(
        &s,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "bsi", "jurisdiction": "DE"})),
    );
    assert_error(&r, 409, "conflict", "already exists");

    // The key authenticates on TAXII; the unmarked indicator is AMBER: nothing yet.
    let r = with_key(&s, &key, "GET", "/concord/collections/", TAXII);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["collections"].as_array().unwrap().len(), 2);
    assert_eq!(objects_seen(&s, &key), Some(0));

    // Shown without its key, the same by the API and the CLI (one function).
    let shown = admin(&s, "GET", "/api/v1/partners/bsi", None).json();
    assert!(
        shown.get("api_key").is_none() && shown.get("key_hash").is_none(),
        "{shown}"
    );
    let cli = run(concord()
        .args(["partner", "show", "bsi", "--json", "--data-dir"])
        .arg(node.path()));
    assert_eq!(serde_json::from_slice::<Value>(&cli.stdout).unwrap(), shown);
    let list = admin(&s, "GET", "/api/v1/partners", None).json();
    assert_eq!(list, json!([shown]));

    // Policy explain: withheld by TLP, then sent once the sharing says CLEAR.
    let explain = format!("/api/v1/policy/explain?partner=bsi&object_id={INDICATOR}");
    let e = admin(&s, "GET", &explain, None).json();
    assert_eq!(e["collections"][0]["decision"], "withheld", "{e}");
    assert!(
        e["collections"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|st| st["rule"] == "tlp")
    );
    let r = admin(&s, "GET", "/api/v1/policy/explain?partner=bsi", None);
    assert_error(&r, 400, "invalid_request", "object_id");
    let r = admin(
        &s,
        "GET",
        "/api/v1/policy/explain?partner=nobody&object_id=x",
        None,
    );
    assert_error(&r, 404, "not_found", "no partner named \"nobody\"");

    let sharing = admin(&s, "GET", "/api/v1/collections/intel/sharing", None).json();
    assert_eq!(
        sharing,
        json!({"default_tlp": "amber", "groups": null, "recipients": []})
    );
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!([null, null])),
    );
    assert_error(&r, 400, "invalid_request", "expected a JSON object");
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!({"default_tlp": "pink"})),
    );
    assert_error(&r, 400, "invalid_request", "default_tlp \"pink\"");
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!({"groups": []})),
    );
    assert_error(&r, 400, "invalid_request", "groups");
    // TLP:GREEN to one sharing group, then (null) to the whole community again.
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!({"groups": ["eu-cert"]})),
    );
    assert_eq!(r.json()["groups"], json!(["eu-cert"]), "{}", r.body);
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!({"groups": null})),
    );
    assert_eq!(r.json()["groups"], Value::Null, "{}", r.body);
    let r = admin(
        &s,
        "PATCH",
        "/api/v1/collections/intel/sharing",
        Some(json!({"default_tlp": "clear", "recipients": ["bsi"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"default_tlp": "clear", "groups": null, "recipients": ["bsi"]})
    );
    assert_eq!(
        admin(&s, "GET", "/api/v1/collections/intel/sharing", None).json(),
        r.json()
    );
    assert_eq!(
        objects_seen(&s, &key),
        Some(1),
        "the partner now reads the indicator"
    );
    let e = admin(&s, "GET", &explain, None).json();
    assert_eq!(e["collections"][0]["decision"], "sent", "{e}");
    assert_eq!(e["collections"][0]["body"]["id"], INDICATOR);
    assert!(e["policy_version"].as_str().unwrap().contains('@'));
    let p = admin(&s, "GET", "/api/v1/policy", None).json();
    assert_eq!(p["version"], e["policy_version"]);
    assert_eq!(p["policy"]["jurisdiction"], "DE");
    let r = admin(&s, "GET", "/api/v1/policy?version=nope@0", None);
    assert_error(&r, 404, "not_found", "no policy version");

    // The partner's read is in the audit log, as `audit show` prints it.
    let rows = admin(&s, "GET", "/api/v1/audit?partner=bsi", None).json();
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["door"] == "taxii-objects"
            && r["object_id"] == INDICATOR
            && r["decision"] == "sent"),
        "{rows:?}"
    );
    for bad in ["limit=0", "limit=10001", "limit=-1", "colour=red"] {
        let r = admin(&s, "GET", &format!("/api/v1/audit?{bad}"), None);
        assert_error(&r, 400, "invalid_request", "");
    }

    // A partner gets, on every path and method of the API, the answer of a missing path.
    let missing = with_key(&s, &key, "GET", "/api/no-such-thing", "application/json");
    assert_eq!(missing.status, 404);
    for (method, path) in [
        ("GET", "/api/v1/partners"),
        ("GET", "/api/v1/partners/bsi"),
        ("POST", "/api/v1/partners/bsi/key"),
        ("DELETE", "/api/v1/partners/bsi"),
        ("GET", "/api/v1/openapi.json"),
        ("PUT", "/api/v1/collections"),
        ("GET", "/api/v1/no-such-thing"),
    ] {
        let r = with_key(&s, &key, method, path, "application/json");
        assert_eq!(
            (r.status, r.header("content-type"), &r.body),
            (
                missing.status,
                missing.header("content-type"),
                &missing.body
            ),
            "{method} {path}"
        );
    }
    // The admin gets the API's own 404 there.
    let r = admin(&s, "GET", "/api/v1/no-such-thing", None);
    assert_error(&r, 404, "not_found", "no such resource");

    // Rotate: the new key works, the old one stops within seconds.
    let r = admin(&s, "POST", "/api/v1/partners/bsi/key", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let new_key = r.json()["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert!(eventually(Duration::from_secs(10), || objects_seen(
        &s, &new_key
    ) == Some(1)));
    assert!(eventually(Duration::from_secs(10), || with_key(
        &s,
        &key,
        "GET",
        "/concord/collections/",
        TAXII
    )
    .status
        == 401));

    // Remove: gone from the API, its key refused on TAXII.
    let r = admin(&s, "DELETE", "/api/v1/partners/bsi", None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(
        &admin(&s, "GET", "/api/v1/partners/bsi", None),
        404,
        "not_found",
        "no partner named \"bsi\"",
    );
    assert_error(
        &admin(&s, "DELETE", "/api/v1/partners/bsi", None),
        404,
        "not_found",
        "bsi",
    );
    assert_error(
        &admin(&s, "POST", "/api/v1/partners/bsi/key", None),
        404,
        "not_found",
        "bsi",
    );
    assert!(eventually(Duration::from_secs(10), || with_key(
        &s,
        &new_key,
        "GET",
        "/concord/collections/",
        TAXII
    )
    .status
        == 401));
    assert_eq!(admin(&s, "GET", "/api/v1/partners", None).json(), json!([]));
}

#[test]
fn peers_and_audit_verify_over_http() {
    let node = node();
    let s = node.serve();
    // Over the API a peer's files are in peer_files_dir (DIR/peer-files by default).
    std::fs::create_dir(node.path().join("peer-files")).unwrap();
    let token = node.path().join("peer-files/peer-a.token");
    std::fs::write(&token, "their-key").unwrap();
    let token = token.to_str().unwrap();

    // Peers: rules, then one that creates its local collection.
    let r = admin(
        &s,
        "POST",
        "/api/v1/peers",
        Some(json!({"name": "a", "url": "ftp://x",
        "api_root": "/concord/", "collections": ["r:l"]})),
    );
    assert_error(&r, 400, "invalid_request", "peer URL \"ftp://x\"");
    let r = admin(
        &s,
        "POST",
        "/api/v1/peers",
        Some(json!({"name": "a", "url": "http://127.0.0.1:9",
        "api_root": "/concord/", "collections": ["r:l"], "push": true})),
    );
    assert_error(&r, 400, "invalid_request", "--partner");
    let r = admin(
        &s,
        "POST",
        "/api/v1/peers",
        Some(json!({"name": "a", "url": "http://127.0.0.1:9",
        "api_root": "/concord/", "collections": ["r:l"], "pull": true,
        "token_file": node.path().join("peer-files").to_str().unwrap()})),
    );
    assert_error(&r, 400, "invalid_request", "not a regular file");
    let r = admin(
        &s,
        "POST",
        "/api/v1/peers",
        Some(json!({"name": "a", "url": "http://127.0.0.1:9",
        "api_root": "concord", "collections": ["Shared IOCs:from-a"], "pull": true,
        "token_file": token, "interval": 60})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let added = r.json();
    assert_eq!(added["created_collections"], json!(["from-a"]));
    assert_eq!(added["peer"]["api_root"], "/concord/");
    assert_eq!(added["peer"]["mappings"][0]["remote"], "Shared IOCs");
    assert_eq!(
        admin(&s, "GET", "/api/v1/collections/from-a", None).status,
        200
    );
    let list = admin(&s, "GET", "/api/v1/peers", None).json();
    assert_eq!(list[0]["peer"]["name"], "a");
    assert_eq!(list[0]["state"]["consecutive_failures"], 0);
    let one = admin(&s, "GET", "/api/v1/peers/a", None).json();
    assert_eq!(one["peer"], added["peer"]);
    assert!(one["cursors"].is_object());
    // The CLI sees the peer the API added.
    let cli = run(concord()
        .args(["peer", "show", "a", "--json", "--data-dir"])
        .arg(node.path()));
    assert_eq!(
        serde_json::from_slice::<Value>(&cli.stdout).unwrap()["peer"],
        added["peer"]
    );
    assert_eq!(admin(&s, "DELETE", "/api/v1/peers/a", None).status, 204);
    assert_error(
        &admin(&s, "GET", "/api/v1/peers/a", None),
        404,
        "not_found",
        "no peer named \"a\"",
    );
    assert_error(
        &admin(&s, "DELETE", "/api/v1/peers/a", None),
        404,
        "not_found",
        "no peer named \"a\"",
    );

    // Audit verify: intact against the node key, then an edited entry is named.
    let v = admin(
        &s,
        "POST",
        "/api/v1/audit/verify",
        Some(json!({"full": true})),
    );
    assert_eq!(v.status, 200, "{}", v.body);
    let v = v.json();
    assert_eq!(
        (v["intact"].as_bool(), v["key_checked"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    assert!(v["entries"].as_u64().unwrap() >= 1, "{v}");
    let r = admin(
        &s,
        "POST",
        "/api/v1/audit/verify",
        Some(json!({"full": "yes"})),
    );
    assert_error(&r, 400, "invalid_request", "full");
    let db = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET door = 'export' WHERE seq = 1;",
    )
    .unwrap();
    drop(db);
    let v = admin(
        &s,
        "POST",
        "/api/v1/audit/verify",
        Some(json!({"full": true})),
    )
    .json();
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["first_bad_seq"].as_i64()),
        (Some("edited"), Some(1)),
        "{v}"
    );
}

/// A fake TAXII peer on loopback: answers every request 500 and sends the
/// `Authorization` header of each request it gets on the returned channel.
fn peer_recording_authorization() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line
                    .split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                {
                    let _ = tx.send(v.1.trim().to_owned());
                }
                line.clear();
            }
            let _ = (&stream)
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

/// Hostile load H2: the admin API's caller cannot have the server send one of its files as
/// a peer's token (to a URL the caller chooses): files named over HTTP must be inside
/// peer_files_dir (checked on the path's text first, so a file outside is refused alike
/// whether it exists or not; a symbolic link out of it is refused too), the node's own
/// secret files are refused in any case (the CLI too), and the secret may come inline,
/// write-only: stored in a file there, sent to the peer, never answered back.
#[test]
fn peer_secrets_over_the_api_stay_on_the_node() {
    let node = node();
    let s = node.serve();
    let dir = node.path().join("peer-files");
    std::fs::create_dir(&dir).unwrap();
    let node_key = node.path().join("node.key");
    assert!(node_key.exists());
    std::os::unix::fs::symlink(&node_key, dir.join("link.token")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("secret.token");
    std::fs::write(&outside, "not for the peer").unwrap();
    let peer = |extra: Value| {
        let mut body = json!({"name": "a", "url": "http://127.0.0.1:9",
            "api_root": "/concord/", "collections": ["r:from-a"], "pull": true});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        admin(&s, "POST", "/api/v1/peers", Some(body))
    };
    let outside_s = outside.to_str().unwrap();
    let missing = elsewhere.path().join("missing.token");
    for (field, path) in [
        ("token_file", outside_s),
        ("token_file", missing.to_str().unwrap()),
        ("token_file", "/proc/self/environ"),
        ("token_file", node_key.to_str().unwrap()),
        ("token_file", "../node.key"),
        ("token_file", "link.token"),
        ("password_file", "../concord.toml"),
        ("ca_file", outside_s),
        ("client_key", "../node.key"),
    ] {
        let mut extra = json!({ field: path });
        if field == "password_file" {
            extra["user"] = json!("u");
        }
        if field == "client_key" {
            extra["client_cert"] = json!("../concord.toml");
        }
        let r = peer(extra);
        assert_error(&r, 400, "invalid_request", "must be inside peer_files_dir");
        assert!(
            !r.body.contains("No such file"),
            "{field} {path}: {}",
            r.body
        );
    }
    assert_eq!(admin(&s, "GET", "/api/v1/peers", None).json(), json!([]));
    // Nothing named above was created either (a refused peer creates no collection).
    assert_eq!(
        admin(&s, "GET", "/api/v1/collections/from-a", None).status,
        404
    );

    // Inline: written to a file of peer_files_dir, never answered back.
    const SECRET: &str = "inline-peer-token-5f1c2a";
    let (url, seen) = peer_recording_authorization();
    let r = peer(json!({"url": url, "token": SECRET, "timeout": 5}));
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.body.contains(SECRET), "{}", r.body);
    let file = r.json()["peer"]["auth"]["token"]["file"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Path::new(&file).starts_with(&dir), "{file}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SECRET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for path in ["/api/v1/peers", "/api/v1/peers/a"] {
        let r = admin(&s, "GET", path, None);
        assert_eq!(r.status, 200);
        assert!(!r.body.contains(SECRET), "{path}: {}", r.body);
    }
    assert!(!s.get("/api/v1/openapi.json").body.contains(SECRET));
    // Both ways of giving a token at once: refused.
    let r = peer(json!({"token": "x", "token_file": "peer-a.token"}));
    assert_error(&r, 400, "invalid_request", "token and token_file");
    // The round sends the inline token to the peer, as a CLI token file's content.
    let mut sync = concord()
        .args(["sync", "--peer", "a", "--data-dir"])
        .arg(node.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sent = seen.recv_timeout(Duration::from_secs(120));
    let _ = sync.kill();
    let _ = sync.wait();
    assert_eq!(sent.unwrap(), format!("Bearer {SECRET}"));

    // The CLI may name any file the node can read (its operator has them anyway), but not
    // the node's own secret files.
    let cli = |file: &Path| {
        run(concord()
            .args([
                "peer",
                "add",
                "b",
                "http://127.0.0.1:9",
                "--api-root",
                "/concord/",
            ])
            .args(["--collection", "r:from-b", "--pull", "--token-file"])
            .arg(file)
            .arg("--data-dir")
            .arg(node.path()))
    };
    for own in [
        node_key.clone(),
        node.path().join("concord.sqlite"),
        node.path().join("concord.audit.sqlite"),
        dir.join("link.token"),
    ] {
        let out = cli(&own);
        assert!(!out.status.success(), "{}", own.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the node's own secret files"), "{err}");
    }
    let out = cli(&outside);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What an answer shows a client, less what differs on every request (`Date`,
/// `X-Request-Id`): status, headers in order, body.
fn shown(r: &Reply) -> (u16, Vec<(String, String)>, String) {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("date") && !k.eq_ignore_ascii_case("x-request-id"))
        .cloned()
        .collect();
    (r.status, headers, r.body.clone())
}

/// Hostile load H1: whoever is not the admin (a partner's key, no credentials) learns
/// nothing of the API's routes or methods: every method on a route, on a route with a
/// method it does not take (405 and `Allow` for the admin) and on a path that does not
/// exist answers byte for byte the same, because the gate runs before the API's routing.
#[test]
fn non_admins_get_one_answer_on_every_path_and_method() {
    let node = node();
    let out = run(concord()
        .args([
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "FR",
            "--json",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = node.serve();

    // The admin sees the routes: a method a route does not take is a 405 naming the others.
    let r = admin(&s, "DELETE", "/api/v1/partners", None);
    assert_error(&r, 405, "method_not_allowed", "method not allowed");
    assert!(
        r.header("allow").is_some_and(|a| a.contains("POST")),
        "{:?}",
        r.headers
    );
    assert_error(
        &admin(&s, "GET", "/api/v1/no-such-thing", None),
        404,
        "not_found",
        "no such resource",
    );

    let paths = [
        // Routes, and a resource that exists.
        "/api/v1/partners",
        "/api/v1/partners/bsi",
        "/api/v1/partners/bsi/key",
        "/api/v1/collections/intel/sharing",
        "/api/v1/openapi.json",
        "/api/v1/audit/verify",
        "/api/v1/incidents",
        "/api/v1/incidents/incident--00000000-0000-4000-8000-000000000001/close",
        "/api/v1/tasks/task--00000000-0000-4000-8000-000000000001/answers",
        "/api/v1/incidents/incident--00000000-0000-4000-8000-000000000001/grants",
        "/api/v1/webhooks",
        "/api/v1/webhooks/w",
        "/api/v1/webhooks/w/retry",
        // Paths that do not exist.
        "/api/v1",
        "/api/v1/",
        "/api/v1/no-such-thing",
        "/api/v1/partners/bsi/no/such",
        // A path outside the admin API that does not exist, under `/api/` (where TAXII
        // negotiates no media type): the admin API is not told apart from it.
        "/api/no-such-path",
    ];
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let auth = format!("Bearer {key}");
    for (who, headers) in [
        ("a partner", vec![("Authorization", auth.as_str())]),
        ("no credentials", vec![]),
    ] {
        let mut headers = headers;
        headers.push(("Accept", "application/json"));
        // Compression shows in `Vary` and `Content-Encoding`: asked for, so a layer that
        // one path passes and another does not would show.
        headers.push(("Accept-Encoding", "gzip"));
        for method in methods {
            let body = (!matches!(method, "GET" | "HEAD" | "OPTIONS")).then_some("{}");
            let mut h = headers.clone();
            if body.is_some() {
                h.push(("Content-Type", "application/json"));
            }
            let first = shown(&s.request(method, paths[0], &h, body));
            assert!(
                matches!(first.0, 401 | 404),
                "{who}: {method} {}: {first:?}",
                paths[0]
            );
            for path in &paths[1..] {
                let r = shown(&s.request(method, path, &h, body));
                assert_eq!(r, first, "{who}: {method} {path} differs from {}", paths[0]);
            }
            // HEAD is GET without the body; every other method answers as GET does.
            if method != "HEAD" {
                let get = shown(&s.request("GET", paths[0], &headers, None));
                assert_eq!(first, get, "{who}: {method} differs from GET");
            }
        }
    }

    // The request log and metrics still name the API's own route for the admin.
    let admin_auth = format!("Bearer {TOKEN}");
    let scrape = s
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &admin_auth), ("Accept", "text/plain")],
            None,
        )
        .body;
    assert!(
        scrape.contains("route=\"/api/v1/partners\""),
        "no admin API route in the metrics"
    );
}

/// The OpenAPI document is generated, 3.1, and describes every route; schemathesis
/// (pinned in tests/interop/requirements.txt) runs against it on a throwaway node, mutating
/// operations included, and must find nothing. Skips without `CONCORD_TEST_PYTHON` (fails
/// with `CONCORD_REQUIRE_INTEROP=1`, as the other interop tests).
#[test]
fn openapi_document_and_schemathesis() {
    let node = node();
    // schemathesis sends wrong credentials on purpose (its `ignored_auth` check) and must get
    // 401 for each, not the 429 of the throttle, which `limits.rs` tests.
    let mut config = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    config.push_str("\n[limits]\nfailures_per_source = 1000000\n");
    std::fs::write(node.path().join("concord.toml"), config).unwrap();
    let s = node.serve();
    let r = admin(&s, "GET", "/api/v1/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/api/v1/collections",
        "/api/v1/collections/{collection}",
        "/api/v1/collections/{collection}/sharing",
        "/api/v1/partners",
        "/api/v1/partners/{name}",
        "/api/v1/partners/{name}/key",
        "/api/v1/peers",
        "/api/v1/peers/{name}",
        "/api/v1/policy",
        "/api/v1/policy/explain",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/requests",
        "/api/v1/incidents/{id}/close",
        "/api/v1/tasks/{id}/answers",
        "/api/v1/incidents/{id}/grants",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{name}",
        "/api/v1/webhooks/{name}/retry",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );

    let Some(python) = crate::interop::python() else {
        return;
    };
    let file = node.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let started = Instant::now();
    let out = schemathesis(&python, &file, &s.base);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?})",
        out.status.code()
    );
    // It really ran the operations: a summary that names them, not a skip.
    assert!(stdout.contains("passed"), "{stdout}");
}

/// `schemathesis run` against the served document, bounded: at most 25 examples per
/// operation (about 900 requests, 20 to 40 s; `--max-time` would instead repeat fuzzing until
/// the budget is spent), one worker, 10 s per request; every check (schemathesis 4 runs all by default;
/// one exception, with its reason, in `tests/interop/schemathesis.toml`); the admin token
/// on every request.
fn schemathesis(python: &Path, schema: &Path, base: &str) -> std::process::Output {
    // Its caches (`.schemathesis/`, `.hypothesis/`) go to the throwaway node's directory,
    // not into the source tree.
    let scratch = schema
        .parent()
        .expect("the schema file is in the node's directory");
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/schemathesis.toml");
    Command::new(python)
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(schema)
        .args(["--url", base])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "25"])
        .args(["--request-timeout", "10"])
        .args(["--workers", "1"])
        .args(["--seed", "23"])
        .args(["--generation-database", "none"])
        .args(["--no-color"])
        .current_dir(scratch)
        .output()
        .expect("run schemathesis")
}

/// `concord incident … --json` on `node`, parsed.
fn incident_cli(node: &Node, args: &[&str]) -> Value {
    let out = run(concord()
        .arg("incident")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(node.path()));
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The doors of the audit rows of object `id`.
fn doors_of(s: &Server, id: &str) -> Vec<String> {
    let r = admin(s, "GET", &format!("/api/v1/audit?object={id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["door"].as_str().unwrap().to_owned())
        .collect()
}

/// Incidents over the admin API (issue 23 item 1, issue 18): open → request → show → list
/// → answer a request received from a partner → close, each the CLI's operation (the same
/// documents as `incident show|list --json`, the same audit doors); bad input is 400 naming
/// the field, an unknown incident, request or partner 404.
#[test]
fn incidents_open_request_answer_and_close_over_http() {
    let node = node();
    let s = node.serve();
    assert_eq!(
        admin(
            &s,
            "POST",
            "/api/v1/collections",
            Some(json!({"alias": "incidents"}))
        )
        .status,
        201
    );
    let added = admin(
        &s,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "cert-br", "jurisdiction": "BR",
            "read": ["incidents"], "write": ["incidents"]})),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    let br_key = added.json()["api_key"].as_str().unwrap().to_owned();

    // Open.
    let opened = admin(
        &s,
        "POST",
        "/api/v1/incidents",
        Some(
            json!({"title": "ransomware at a port", "description": "lateral movement",
            "severity": "high", "affects": ["br", "DE"]}),
        ),
    );
    assert_eq!(opened.status, 201, "{}", opened.body);
    let opened = opened.json();
    assert_eq!(opened["collection"], "incidents", "{opened}");
    let incident = opened["id"].as_str().unwrap().to_owned();
    assert!(incident.starts_with("incident--"), "{incident}");
    assert_eq!(doors_of(&s, &incident), ["incident-open"]);

    // Request.
    let requested = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{incident}/requests"),
        Some(json!({"to": "cert-br", "ask": "block c2.example",
            "deadline": "2030-01-01T00:00:00Z", "priority": 75})),
    );
    assert_eq!(requested.status, 201, "{}", requested.body);
    let requested = requested.json();
    assert_eq!(requested["status"], "pending", "{requested}");
    assert_eq!(requested["peers"], json!([]), "{requested}");
    let task = requested["id"].as_str().unwrap().to_owned();
    assert_eq!(doors_of(&s, &task), ["incident-request"]);

    // Show and list: the CLI's documents.
    let shown = admin(&s, "GET", &format!("/api/v1/incidents/{incident}"), None);
    assert_eq!(shown.status, 200, "{}", shown.body);
    let shown = shown.json();
    assert_eq!(shown, incident_cli(&node, &["show", &incident]));
    assert_eq!(shown["criticality"], 75, "{shown}");
    assert_eq!(shown["affects"], json!(["BR", "DE"]), "{shown}");
    assert_eq!(shown["tasks"][0]["id"], task.as_str(), "{shown}");
    assert_eq!(shown["tasks"][0]["priority"], 75, "{shown}");
    assert_eq!(shown["tasks"][0]["delivery"], "not a peer", "{shown}");
    let listed = admin(&s, "GET", "/api/v1/incidents", None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json(), incident_cli(&node, &["list"]));
    let open = admin(&s, "GET", "/api/v1/incidents?status=open", None).json();
    assert_eq!(open["incidents"][0]["id"], incident.as_str(), "{open}");
    assert!(open["incidents"][0].get("events").is_none(), "{open}");
    let closed = admin(&s, "GET", "/api/v1/incidents?status=closed", None).json();
    assert_eq!(closed, json!({"incidents": []}));

    // A request received from a partner: another node's incident and request, POSTed under
    // cert-br's key, answered here.
    let other = Node::init_with(&["--jurisdiction", "BR"]);
    let theirs = incident_cli(&other, &["open", "--title", "phishing wave"]);
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    let out = run(concord()
        .args([
            "partner",
            "add",
            "cert-de",
            "--jurisdiction",
            "DE",
            "--data-dir",
        ])
        .arg(other.path()));
    assert!(out.status.success(), "{out:?}");
    let their_task = incident_cli(
        &other,
        &[
            "request",
            &theirs,
            "--to",
            "cert-de",
            "--ask",
            "takedown",
            "--deadline",
            "2030-01-01T00:00:00Z",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run(concord()
        .args(["export", "--collection", "incidents", "--data-dir"])
        .arg(other.path()));
    assert!(out.status.success(), "{out:?}");
    let objects = serde_json::from_slice::<Value>(&out.stdout).unwrap()["objects"].clone();
    let posted = s.request(
        "POST",
        "/concord/collections/incidents/objects/",
        &[
            ("Authorization", &format!("Bearer {br_key}")),
            ("Accept", TAXII),
            ("Content-Type", TAXII),
        ],
        Some(&json!({ "objects": objects }).to_string()),
    );
    assert_eq!(posted.status, 202, "{}", posted.body);
    assert_eq!(posted.json()["failure_count"], 0, "{}", posted.body);
    let answers = format!("/api/v1/tasks/{their_task}/answers");
    let r = admin(&s, "POST", &answers, Some(json!({"status": "declined"})));
    assert_error(&r, 400, "invalid_request", "note");
    let r = admin(&s, "POST", &answers, Some(json!({"status": "maybe"})));
    assert_error(&r, 400, "invalid_request", "status");
    let answered = admin(&s, "POST", &answers, Some(json!({"status": "accepted"})));
    assert_eq!(answered.status, 200, "{}", answered.body);
    let answered = answered.json();
    assert_eq!(answered["to"], "cert-br", "{answered}");
    assert_eq!(answered["status"], "accepted", "{answered}");
    let answer = answered["id"].as_str().unwrap();
    assert_eq!(doors_of(&s, answer), ["incident-respond"]);
    // Our own request is answered by its recipient, not here.
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/tasks/{task}/answers"),
        Some(json!({"status": "accepted"})),
    );
    assert_error(&r, 400, "invalid_request", "made by this node");
    // Another node's incident is closed by its creator only.
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{theirs}/close"),
        Some(json!({})),
    );
    assert_error(&r, 400, "invalid_request", "opened by another node");

    // Close.
    let close = format!("/api/v1/incidents/{incident}/close");
    let closed = admin(&s, "POST", &close, Some(json!({"outcome": "contained"})));
    assert_eq!(closed.status, 200, "{}", closed.body);
    assert_eq!(
        closed.json(),
        json!({"id": incident, "status": "closed", "outcome": "contained"})
    );
    assert_eq!(doors_of(&s, &incident), ["incident-open", "incident-close"]);
    let shown = admin(&s, "GET", &format!("/api/v1/incidents/{incident}"), None).json();
    assert_eq!(shown["status"], "closed", "{shown}");
    assert_eq!(shown["outcome"], "contained", "{shown}");
    let r = admin(&s, "POST", &close, Some(json!({})));
    assert_error(&r, 400, "invalid_request", "closed");
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{incident}/requests"),
        Some(json!({"to": "cert-br", "ask": "more", "deadline": "2030-01-01T00:00:00Z"})),
    );
    assert_error(&r, 400, "invalid_request", "is closed");

    // Bad input: 400 naming the field; nothing opened.
    let before = admin(&s, "GET", "/api/v1/incidents", None).json();
    for (body, field) in [
        (json!({"title": "  "}), "title"),
        (json!({}), "title"),
        (json!({"title": "t", "severity": 101}), "severity"),
        (json!({"title": "t", "severity": "urgent"}), "severity"),
        (json!({"title": "t", "affects": ["BRA"]}), "affects"),
        (json!({"title": "t", "affects": ["DE", "XK"]}), "affects"),
        (
            json!({"title": "t", "collection": "no spaces"}),
            "collection",
        ),
        (json!({"title": "t", "owner": "x"}), "owner"),
    ] {
        let r = admin(&s, "POST", "/api/v1/incidents", Some(body.clone()));
        assert_error(&r, 400, "invalid_request", field);
        // The API names its JSON field, never the CLI's flag.
        assert!(!r.body.contains("--"), "{body}: {}", r.body);
    }
    // The messages name the field and the rule: an unknown country by its code; a bad
    // level by the forms allowed (not serde's "did not match any variant").
    let r = admin(
        &s,
        "POST",
        "/api/v1/incidents",
        Some(json!({"title": "t", "affects": ["DE", "XK"]})),
    );
    assert_error(
        &r,
        400,
        "invalid_request",
        "affects: \"XK\" is not an officially assigned ISO 3166-1 alpha-2 country code",
    );
    for severity in [json!(101), json!("urgent"), json!(true), json!(-1)] {
        let r = admin(
            &s,
            "POST",
            "/api/v1/incidents",
            Some(json!({"title": "t", "severity": severity})),
        );
        assert_error(
            &r,
            400,
            "invalid_request",
            &format!(
                "severity: {severity} is not a level: an integer from 0 to 100, or one of \"none\", \"low\", \"medium\", \"high\", \"critical\""
            ),
        );
    }
    // The CLI refuses the unknown country too, naming its flag.
    let out = run(concord()
        .args([
            "incident",
            "open",
            "--title",
            "t",
            "--affects",
            "XK",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--affects: \"XK\" is not an officially assigned"),
        "{err}"
    );
    assert_eq!(admin(&s, "GET", "/api/v1/incidents", None).json(), before);
    let open_one = admin(
        &s,
        "POST",
        "/api/v1/incidents",
        Some(json!({"title": "second"})),
    );
    assert_eq!(open_one.status, 201, "{}", open_one.body);
    let second = open_one.json()["id"].as_str().unwrap().to_owned();
    let requests = format!("/api/v1/incidents/{second}/requests");
    for (body, field) in [
        (
            json!({"to": "cert-br", "ask": "x", "deadline": "tomorrow"}),
            "deadline",
        ),
        (
            json!({"to": "cert-br", "ask": "x", "deadline": "2030-01-01T00:00:00+01:00"}),
            "deadline",
        ),
        (
            json!({"to": "cert-br", "ask": " ", "deadline": "2030-01-01T00:00:00Z"}),
            "ask",
        ),
        (
            json!({"to": "cert-br", "ask": "x", "deadline": "2030-01-01T00:00:00Z",
            "priority": "urgent"}),
            "priority",
        ),
        (json!({"to": "cert-br", "ask": "x"}), "deadline"),
        (
            json!({"to": "cert-br", "ask": "x", "deadline": "2020-01-01T00:00:00Z"}),
            "deadline: \"2020-01-01T00:00:00Z\" is in the past",
        ),
    ] {
        let r = admin(&s, "POST", &requests, Some(body.clone()));
        assert_error(&r, 400, "invalid_request", field);
        assert!(!r.body.contains("--"), "{body}: {}", r.body);
    }
    let r = admin(
        &s,
        "POST",
        &requests,
        Some(json!({"to": "cert-br", "ask": "x", "deadline": "tomorrow"})),
    );
    assert_error(
        &r,
        400,
        "invalid_request",
        "deadline: \"tomorrow\" is not an RFC 3339",
    );
    // The CLI keeps naming its flag, and refuses a past deadline too.
    for deadline in ["tomorrow", "2020-01-01T00:00:00Z"] {
        let out = run(concord()
            .args([
                "incident", "request", &second, "--to", "cert-br", "--ask", "x",
            ])
            .args(["--deadline", deadline, "--data-dir"])
            .arg(node.path()));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("--deadline: {deadline:?}")), "{err}");
    }
    assert!(
        admin(&s, "GET", &format!("/api/v1/incidents/{second}"), None).json()["tasks"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no request was made"
    );

    // Grant what a request needs (`concord incident grant`): the CLI's document, audited
    // as door incident-grant, named by policy explain (where the CLI shows a grant: on
    // what the partner receives, here the request addressed to it).
    let asked = admin(
        &s,
        "POST",
        &requests,
        Some(
            json!({"to": "cert-br", "ask": "preserve the logs of 203.0.113.7",
            "deadline": "2030-01-01T00:00:00Z"}),
        ),
    );
    assert_eq!(asked.status, 201, "{}", asked.body);
    let asked = asked.json()["id"].as_str().unwrap().to_owned();
    let explain = format!("/api/v1/policy/explain?partner=cert-br&object_id={asked}");
    let granted_note = format!("granted on {second} for cert-br: ip_address");
    let before = admin(&s, "GET", &explain, None);
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(!before.body.contains(&granted_note), "{}", before.body);
    let grants = format!("/api/v1/incidents/{second}/grants");
    let granted = admin(
        &s,
        "POST",
        &grants,
        Some(json!({"to": "cert-br", "allow": ["ip_address", "email"]})),
    );
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(
        granted.json(),
        json!({"incident": second, "to": "cert-br", "allow": ["ip_address", "email"]})
    );
    assert_eq!(doors_of(&s, &second), ["incident-open", "incident-grant"]);
    let by_cli = incident_cli(
        &node,
        &["grant", &second, "--to", "cert-br", "--allow", "phone"],
    );
    assert_eq!(
        by_cli,
        json!({"incident": second, "to": "cert-br", "allow": ["phone"]})
    );
    let explained = admin(&s, "GET", &explain, None);
    assert_eq!(explained.status, 200, "{}", explained.body);
    assert!(explained.body.contains(&granted_note), "{}", explained.body);
    for (body, status, code, says) in [
        (
            json!({"to": "cert-br", "allow": ["dna"]}),
            400,
            "invalid_request",
            "allow: \"dna\" is not a category of personal data",
        ),
        (
            json!({"to": "cert-br", "allow": []}),
            400,
            "invalid_request",
            "allow: give at least one",
        ),
        (
            json!({"to": "cert-xx", "allow": ["email"]}),
            404,
            "not_found",
            "to: no partner named \"cert-xx\"",
        ),
        (json!({"to": "cert-br"}), 400, "invalid_request", "allow"),
    ] {
        let r = admin(&s, "POST", &grants, Some(body.clone()));
        assert_error(&r, status, code, says);
        assert!(!r.body.contains("--"), "{body}: {}", r.body);
    }
    let r = admin(
        &s,
        "POST",
        "/api/v1/incidents/incident--00000000-0000-4000-8000-00000000dead/grants",
        Some(json!({"to": "cert-br", "allow": ["email"]})),
    );
    assert_error(&r, 404, "not_found", "id: no incident");
    assert_eq!(
        doors_of(&s, &second),
        ["incident-open", "incident-grant", "incident-grant"],
        "one audit record per grant, none for the refused ones"
    );

    // Unknown ids and names: 404.
    let unknown = "incident--00000000-0000-4000-8000-00000000dead";
    let r = admin(&s, "GET", &format!("/api/v1/incidents/{unknown}"), None);
    assert_error(&r, 404, "not_found", unknown);
    let valid = json!({"to": "cert-br", "ask": "x", "deadline": "2030-01-01T00:00:00Z"});
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{unknown}/requests"),
        Some(valid.clone()),
    );
    assert_error(&r, 404, "not_found", unknown);
    let mut to_nobody = valid.clone();
    to_nobody["to"] = json!("cert-xx");
    let r = admin(&s, "POST", &requests, Some(to_nobody));
    assert_error(&r, 404, "not_found", "cert-xx");
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{unknown}/close"),
        Some(json!({})),
    );
    assert_error(&r, 404, "not_found", unknown);
    let no_task = "task--00000000-0000-4000-8000-00000000dead";
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/tasks/{no_task}/answers"),
        Some(json!({"status": "declined"})),
    );
    assert_error(&r, 404, "not_found", no_task);
    // An object of another kind is not the resource named either.
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/tasks/{incident}/answers"),
        Some(json!({"status": "declined"})),
    );
    assert_error(&r, 404, "not_found", "not a request");
    let r = admin(
        &s,
        "POST",
        &format!("/api/v1/incidents/{task}/close"),
        Some(json!({})),
    );
    assert_error(&r, 404, "not_found", "not an incident");
    let r = admin(&s, "GET", &format!("/api/v1/incidents/{task}"), None);
    assert_error(&r, 404, "not_found", &task);

    // A partner's key: the answer of a missing path.
    let r = with_key(&s, &br_key, "GET", "/api/v1/incidents", TAXII);
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A webhook receiver on loopback: answers 503 until `accept` is set, then 200; sends the
/// `X-Concord-Signature` header and body of each request it gets on the returned channel.
fn webhook_receiver() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::mpsc::Receiver<(String, String)>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accept = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepting = accept.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut length, mut signature) = (String::new(), 0, String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if k.eq_ignore_ascii_case("x-concord-signature") {
                        signature = v.trim().to_owned();
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send((signature, String::from_utf8_lossy(&body).into_owned()));
            let answer: &[u8] = if accepting.load(std::sync::atomic::Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = (&stream).write_all(answer);
        }
    });
    (url, accept, rx)
}

/// Webhooks over the admin API (`concord webhook add|list|show|remove|retry`): the CLI's
/// documents and checks; the key inline (write-only, a 0600 file of peer_files_dir) or a
/// file there, never one of the node's own nor outside, never answered back; a URL with
/// credentials refused; each add a new generation; a dead letter retried to the receiver,
/// signed; removal forgets.
#[test]
fn webhooks_over_http() {
    let node = node();
    // One attempt, then a dead letter; deliveries looked at every second.
    let mut config = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    config.push_str("\n[webhooks]\nmax_attempts = 1\nevery_secs = 1\ntimeout_secs = 10\n");
    std::fs::write(node.path().join("concord.toml"), config).unwrap();
    let dir = node.path().join("peer-files");
    std::fs::create_dir(&dir).unwrap();
    let node_key = node.path().join("node.key");
    std::os::unix::fs::symlink(&node_key, dir.join("link.key")).unwrap();
    std::fs::write(dir.join("w.key"), "a key of the receiver, long enough").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("w.key");
    std::fs::write(&outside, "a key of the receiver, long enough").unwrap();
    let s = node.serve();
    let (url, accept, received) = webhook_receiver();
    const SECRET: &str = "inline-webhook-key-7d41e0c9";
    let hook = |extra: Value| {
        let mut body = json!({"name": "w", "url": url, "collections": ["intel"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        admin(&s, "POST", "/api/v1/webhooks", Some(body))
    };

    // Refused, naming the field; nothing stored.
    let outside_s = outside.to_str().unwrap();
    for (extra, status, code, says) in [
        (
            json!({"secret_file": outside_s}),
            400,
            "invalid_request",
            "secret_file",
        ),
        (
            json!({"secret_file": "../node.key"}),
            400,
            "invalid_request",
            "must be inside peer_files_dir",
        ),
        (
            json!({"secret_file": "link.key"}),
            400,
            "invalid_request",
            "must be inside peer_files_dir",
        ),
        (
            json!({"secret_file": "w.key", "secret": SECRET}),
            400,
            "invalid_request",
            "secret and secret_file: give one",
        ),
        (json!({}), 400, "invalid_request", "secret_file: required"),
        (
            json!({"secret": "short"}),
            400,
            "invalid_request",
            "secret: the key must have at least 16 bytes",
        ),
        (
            json!({"secret": SECRET, "url": "http://user:pw@127.0.0.1:9/"}),
            400,
            "invalid_request",
            "must not carry credentials",
        ),
        (
            json!({"secret": SECRET, "url": "ftp://127.0.0.1/"}),
            400,
            "invalid_request",
            "must be an http(s) URL",
        ),
        (
            json!({"secret": SECRET, "partner": "nobody"}),
            404,
            "not_found",
            "partner nobody: no such partner",
        ),
        (
            json!({"secret": SECRET, "collections": ["nowhere"]}),
            404,
            "not_found",
            "collections nowhere: no such collection",
        ),
    ] {
        let r = hook(extra.clone());
        assert_error(&r, status, code, says);
        assert!(!r.body.contains("--"), "{extra}: {}", r.body);
    }
    assert_eq!(admin(&s, "GET", "/api/v1/webhooks", None).json(), json!([]));
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("webhook-")),
        "a refused webhook writes no key"
    );
    // The CLI refuses the node's own files too, naming its flag.
    let out = run(concord()
        .args(["webhook", "add", "x", "--url", &url, "--secret-file"])
        .arg(&node_key)
        .arg("--data-dir")
        .arg(node.path()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret-file") && err.contains("the node's own secret files"),
        "{err}"
    );

    // A key file inside peer_files_dir, then the key inline: each add a new generation.
    let first = hook(json!({"secret_file": "w.key"}));
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.json();
    assert_eq!(
        first["secret_file"],
        dir.join("w.key").to_str().unwrap(),
        "{first}"
    );
    let added = hook(json!({"secret": SECRET}));
    assert_eq!(added.status, 201, "{}", added.body);
    assert!(!added.body.contains(SECRET), "{}", added.body);
    let added = added.json();
    assert_ne!(added["generation"], first["generation"], "{added}");
    let file = added["secret_file"].as_str().unwrap().to_owned();
    assert!(Path::new(&file).starts_with(&dir), "{file}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SECRET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // List and show: the CLI's documents, with the key file's path only.
    let cli = |args: &[&str]| {
        let out = run(concord()
            .arg("webhook")
            .args(args)
            .arg("--data-dir")
            .arg(node.path()));
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let listed = admin(&s, "GET", "/api/v1/webhooks", None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), json!([added]));
    assert_eq!(listed.json(), cli(&["list", "--json"]));

    // A new object: one delivery, answered 503, dead after its one attempt.
    let bundle = node.path().join("new.json");
    std::fs::write(
        &bundle,
        json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000002",
            "objects": [{"type": "indicator", "spec_version": "2.1",
                "id": "indicator--5b0f1a4e-2b8e-4c55-9d0c-6f7a8e9b0c12",
                "created": "2026-02-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z",
                "pattern": "[domain-name:value = 'c3.example']", "pattern_type": "stix",
                "valid_from": "2026-02-01T00:00:00Z"}]})
        .to_string(),
    )
    .unwrap();
    let (code, report) = node.import("intel", &[&bundle]);
    assert_eq!(code, 0, "{report}");
    let show = "/api/v1/webhooks/w";
    assert!(
        eventually(Duration::from_secs(60), || {
            admin(&s, "GET", show, None).json()["dead_letters"]["count"] == 1
        }),
        "no dead letter: {}",
        admin(&s, "GET", show, None).body
    );
    let (signature, body) = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(signature.starts_with("sha256="), "{signature}");
    assert!(body.contains("c3.example"), "{body}");
    let shown = admin(&s, "GET", show, None);
    assert_eq!(shown.status, 200);
    assert!(!shown.body.contains(SECRET), "{}", shown.body);
    assert_eq!(shown.json(), cli(&["show", "w", "--json"]));
    assert_eq!(shown.json()["webhook"], added);
    let dead = shown.json()["dead_letters"]["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();

    // Retry: the receiver now accepts; the letter goes, signed with the inline key.
    accept.store(true, std::sync::atomic::Ordering::SeqCst);
    let retry = "/api/v1/webhooks/w/retry";
    let r = admin(&s, "POST", retry, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"delivered": [dead], "failed": []}));
    let (signature, body) = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(body.contains("c3.example"), "{body}");
    assert_eq!(
        signature,
        concord_sync::notify::signature(SECRET.as_bytes(), body.as_bytes())
    );
    assert_eq!(
        admin(&s, "GET", show, None).json()["dead_letters"]["count"],
        0
    );
    // Nothing left: the CLI's document, empty.
    assert_eq!(
        admin(&s, "POST", retry, None).json(),
        cli(&["retry", "w", "--json"])
    );

    // Remove: gone, and a second removal, show or retry is a 404.
    assert_eq!(admin(&s, "DELETE", show, None).status, 204);
    for (method, path) in [("GET", show), ("DELETE", show), ("POST", retry)] {
        let r = admin(&s, method, path, None);
        assert_error(&r, 404, "not_found", "webhook w: no such webhook");
    }
    assert_eq!(admin(&s, "GET", "/api/v1/webhooks", None).json(), json!([]));
    assert_eq!(cli(&["list", "--json"]), json!([]));
}
