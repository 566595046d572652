//! Partners, their keys and permissions, and the TLP gate at every door (issue 5, items 1–2).

use std::collections::BTreeSet;

use base64::Engine as _;

use crate::support::{Node, Server, TAXII, concord, run};

const WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

/// One campaign per marking (uuid prefix tells which): white, green, amber, strict, red, none.
fn marked_bundle() -> String {
    let markings: [(&str, Option<&str>); 6] = [
        ("11111111", Some(WHITE)),
        ("22222222", Some(GREEN)),
        ("33333333", Some(AMBER)),
        ("44444444", Some(STRICT)),
        ("55555555", Some(RED)),
        ("66666666", None),
    ];
    let objects: Vec<String> = markings
        .iter()
        .map(|(p, m)| {
            let refs = m.map(|m| format!(r#","object_marking_refs":["{m}"]"#)).unwrap_or_default();
            format!(
                r#"{{"type":"campaign","spec_version":"2.1","id":"campaign--{p}-8ff6-4a8b-9c2f-6e5a3b1f0d11","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z","name":"c{p}"{refs}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
        objects.join(",")
    )
}

fn cli(node: &Node, args: &[&str]) -> serde_json::Value {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn add_partner(node: &Node, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["partner", "add", name, "--jurisdiction", "de", "--json"];
    args.extend_from_slice(extra);
    let doc = cli(node, &args);
    assert_eq!(doc["jurisdiction"], "DE");
    doc["api_key"].as_str().unwrap().to_owned()
}

fn get(s: &Server, key: &str, path: &str) -> crate::support::Reply {
    let auth = format!("Bearer {key}");
    s.request(
        "GET",
        path,
        &[("Authorization", &auth), ("Accept", TAXII)],
        None,
    )
}

/// The campaign prefixes a partner receives through each door.
fn seen(s: &Server, node: &Node, key: &str, partner: &str) -> [BTreeSet<String>; 4] {
    let prefix = |id: &str| id["campaign--".len().."campaign--".len() + 8].to_owned();
    let objects = get(
        s,
        key,
        "/concord/collections/marked/objects/?match[type]=campaign",
    )
    .json();
    let by_objects = objects["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| prefix(o["id"].as_str().unwrap()))
        .collect();
    let manifest = get(
        s,
        key,
        "/concord/collections/marked/manifest/?match[type]=campaign",
    )
    .json();
    let by_manifest = manifest["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| prefix(o["id"].as_str().unwrap()))
        .collect();
    let by_object = [
        "11111111", "22222222", "33333333", "44444444", "55555555", "66666666",
    ]
    .into_iter()
    .filter(|p| {
        let r = get(
            s,
            key,
            &format!(
                "/concord/collections/marked/objects/campaign--{p}-8ff6-4a8b-9c2f-6e5a3b1f0d11/"
            ),
        );
        assert!(r.status == 200 || r.status == 404, "{}", r.body);
        r.status == 200
    })
    .map(str::to_owned)
    .collect();
    let out = run(concord()
        .args([
            "export",
            "--collection",
            "marked",
            "--partner",
            partner,
            "--data-dir",
        ])
        .arg(node.path()));
    let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_export = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| prefix(o["id"].as_str().unwrap()))
        .collect();
    [by_objects, by_manifest, by_object, by_export]
}

#[test]
fn tlp_gate_at_every_door() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("marked.json");
    std::fs::write(&f, marked_bundle()).unwrap();
    assert_eq!(node.import("marked", &[&f]).0, 0);
    cli(
        &node,
        &[
            "collection",
            "share",
            "marked",
            "--group",
            "eu-cert",
            "--recipient",
            "bsi",
            "--recipient",
            "group:gov",
            "--json",
        ],
    );
    let bsi = add_partner(&node, "bsi", &["--group", "eu-cert", "--read", "marked"]);
    let anssi = add_partner(
        &node,
        "anssi",
        &["--group", "eu-cert", "--group", "gov", "--read", "marked"],
    );
    let acme = add_partner(&node, "acme", &["--group", "industry", "--read", "marked"]);
    let s = node.serve();
    let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
    // white, green, amber, strict, red, unmarked (collection default: AMBER)
    let expect = [
        (
            "bsi",
            &bsi,
            set(&["11111111", "22222222", "33333333", "44444444", "66666666"]),
        ),
        (
            "anssi",
            &anssi,
            set(&["11111111", "22222222", "33333333", "66666666"]),
        ),
        ("acme", &acme, set(&["11111111"])),
    ];
    for (name, key, want) in &expect {
        for (door, got) in ["objects", "manifest", "object", "export"]
            .iter()
            .zip(seen(&s, &node, key, name))
        {
            assert_eq!(&got, want, "{name} through {door}");
        }
    }
    // TLP:RED never leaves: not even for the named recipient, by any door (checked above).
    // The operator's own export keeps everything.
    let out = run(concord()
        .args(["export", "--collection", "marked", "--data-dir"])
        .arg(node.path()));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["objects"].as_array().unwrap().len(), 6);
}

#[test]
fn keys_permissions_rotation_and_removal() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("marked.json");
    std::fs::write(&f, marked_bundle()).unwrap();
    node.import("marked", &[&f]);
    node.import("other", &[&f]);
    cli(&node, &["collection", "create", "inbox", "--json"]);
    let key = add_partner(&node, "bsi", &["--read", "marked", "--write", "inbox"]);
    // Stored hashed: the secret is nowhere in the database file, an argon2id hash is.
    // WAL mode: recent pages are in the -wal file until a checkpoint.
    let mut db = std::fs::read(node.path().join("concord.sqlite")).unwrap();
    db.extend(std::fs::read(node.path().join("concord.sqlite-wal")).unwrap_or_default());
    let secret = key.rsplit('_').next().unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(db.windows(10).any(|w| w == b"$argon2id$"));
    let listed = cli(&node, &["partner", "list", "--json"]);
    assert!(
        listed[0].get("api_key").is_none() && listed[0].get("key_hash").is_none(),
        "{listed}"
    );

    let s = node.serve();
    // Bearer and Basic.
    assert_eq!(get(&s, &key, "/concord/collections/").status, 200);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bsi:{key}"))
    );
    let r = s.request(
        "GET",
        "/concord/collections/",
        &[("Authorization", &basic), ("Accept", TAXII)],
        None,
    );
    assert_eq!(r.status, 200);
    let names: BTreeSet<String> = r.json()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["alias"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["inbox", "marked"].iter().map(|x| x.to_string()).collect(),
        "only its collections"
    );
    let last = if key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(get(&s, &forged, "/concord/collections/").status, 401);
    // Invisible → 404; read-only → 403 on POST; write-only → 403 on GET.
    assert_eq!(
        get(&s, &key, "/concord/collections/other/objects/").status,
        404
    );
    let auth = format!("Bearer {key}");
    let post = |path: &str| {
        s.request(
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Accept", TAXII),
                ("Content-Type", TAXII),
            ],
            Some("{\"objects\":[]}"),
        )
        .status
    };
    assert_eq!(post("/concord/collections/marked/objects/"), 403);
    assert_eq!(post("/concord/collections/inbox/objects/"), 202);
    assert_eq!(
        get(&s, &key, "/concord/collections/inbox/objects/").status,
        403
    );

    // Rotation: the new key works within a second (unknown key ids re-read the partner list
    // at most once a second), the old one stops within the partner-cache TTL (5 s).
    let rotated = cli(&node, &["partner", "rotate-key", "bsi", "--json"])["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&s, &rotated, "/concord/collections/").status, 200);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(get(&s, &key, "/concord/collections/").status, 401);
    // Removal.
    cli(&node, &["partner", "remove", "bsi"]);
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(get(&s, &rotated, "/concord/collections/").status, 401);
}

#[test]
fn bad_partner_input_is_refused_with_a_reason() {
    let node = Node::init();
    let dir = tempfile::tempdir().unwrap();
    let out = run(concord()
        .args(["init", "--jurisdiction", "China", "--data-dir"])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("concord.sqlite").exists(),
        "nothing written"
    );
    let out = run(concord()
        .args([
            "partner",
            "add",
            "x",
            "--jurisdiction",
            "Germany",
            "--data-dir",
        ])
        .arg(node.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ISO 3166-1"));
    let out = run(concord()
        .args([
            "partner",
            "add",
            "x",
            "--jurisdiction",
            "DE",
            "--read",
            "nope",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collection \"nope\""));
    let out = run(concord()
        .args([
            "collection",
            "share",
            "nope",
            "--default-tlp",
            "pink",
            "--data-dir",
        ])
        .arg(node.path()));
    assert_eq!(out.status.code(), Some(2));
}

/// Personal data on its way to partners (issue 5, items 4–5): a node in CN, its default
/// policy. A partner in DE (across the border) receives keyed pseudonyms — the same ones as
/// another member of its sharing group, through TAXII and export alike — with the SCO id
/// recomputed and the reference to it followed in the same page; a partner in CN receives
/// the objects as stored.
#[test]
fn personal_data_is_pseudonymised_across_the_border() {
    let node = Node::init_with(&["--jurisdiction", "cn"]);
    let email_id = "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934"; // value john@example.com
    let bundle = serde_json::json!({
        "type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12",
        "objects": [
            {"type": "email-addr", "spec_version": "2.1", "id": email_id,
             "value": "john@example.com", "object_marking_refs": [WHITE]},
            {"type": "email-message", "spec_version": "2.1",
             "id": "email-message--de91677e-8cd0-5997-88aa-a66f60743c65",
             "is_multipart": false, "from_ref": email_id, "subject": "invoice",
             "object_marking_refs": [WHITE]},
            {"type": "note", "spec_version": "2.1",
             "id": "note--0c7b5b88-8ff7-4a4d-aa9c-feb398cd0061",
             "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
             "content": "Victim john@example.com called from +86 138 1234 5678",
             "object_refs": [email_id], "object_marking_refs": [WHITE]},
        ]
    });
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("pii.json");
    std::fs::write(&f, bundle.to_string()).unwrap();
    let (code, report) = node.import("pii", &[&f]);
    assert_eq!(code, 0, "{report}");
    let bsi = add_partner(&node, "bsi", &["--group", "eu-cert", "--read", "pii"]);
    let anssi = add_partner(&node, "anssi", &["--group", "eu-cert", "--read", "pii"]);
    let doc = cli(
        &node,
        &[
            "partner",
            "add",
            "cncert",
            "--jurisdiction",
            "cn",
            "--read",
            "pii",
            "--json",
        ],
    );
    let cncert = doc["api_key"].as_str().unwrap().to_owned();
    let s = node.serve();
    let page = |key: &str| {
        let r = get(&s, key, "/concord/collections/pii/objects/");
        assert_eq!(r.status, 200, "{}", r.body);
        let objects = r.json()["objects"].as_array().unwrap().clone();
        let by_type = |t: &str| {
            objects
                .iter()
                .find(|o| o["type"] == t)
                .unwrap_or_else(|| panic!("no {t}"))
                .clone()
        };
        (
            by_type("email-addr"),
            by_type("email-message"),
            by_type("note"),
        )
    };
    // Across the border: pseudonyms, a keyed id (not the UUIDv5 of the raw value, nor of
    // the pseudonym), references followed.
    let (email, message, note) = page(&bsi);
    let value = email["value"].as_str().unwrap();
    assert!(
        value.starts_with("pseudo-") && value.ends_with("@pseudonym.invalid"),
        "an e-mail pseudonym is an e-mail address: {email}"
    );
    assert_ne!(email["id"], email_id);
    assert_ne!(
        email["id"],
        concord_policy::actions::deterministic_id(&email).unwrap()
    );
    assert_eq!(message["from_ref"], email["id"]);
    // The e-mail message's copy differs (its from_ref): it is sent under a keyed id too.
    assert_ne!(
        message["id"],
        "email-message--de91677e-8cd0-5997-88aa-a66f60743c65"
    );
    assert_eq!(note["object_refs"][0], email["id"]);
    // The same ids on every request: references resolve across pages.
    let (again_email, again_message, _) = page(&bsi);
    assert_eq!(again_email["id"], email["id"]);
    assert_eq!(again_message["id"], message["id"]);
    let content = note["content"].as_str().unwrap();
    assert_eq!(
        content,
        format!(
            "Victim {value} called from {}",
            content.rsplit(' ').next().unwrap()
        )
    );
    assert!(content.contains("pseudo-phone-"), "{content}");
    assert!(!content.contains("john@example.com") && !content.contains("138"));
    for o in [&email, &message, &note] {
        concord_stix::validate_object(o).unwrap_or_else(|e| panic!("{e:?}: {o}"));
    }
    // Another member of the group sees the same pseudonyms; export gives the same copy.
    let (email2, _, note2) = page(&anssi);
    assert_eq!(email2, email);
    assert_eq!(note2, note);
    let out = run(concord()
        .args([
            "export",
            "--collection",
            "pii",
            "--partner",
            "bsi",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(out.status.success());
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exported = exported["objects"].as_array().unwrap();
    assert!(exported.contains(&email) && exported.contains(&message) && exported.contains(&note));
    // Within the node's jurisdiction: as stored.
    let (email, _, note) = page(&cncert);
    assert_eq!(email["value"], "john@example.com");
    assert_eq!(email["id"], email_id);
    assert_eq!(
        note["content"],
        "Victim john@example.com called from +86 138 1234 5678"
    );
}

/// Issue 24, item 13: `partner show` names collections by the alias they were given, not by
/// their UUID (ATT&CK for ICS imported as `ics`).
#[test]
fn partner_show_lists_collections_by_alias() {
    let node = Node::init();
    let (code, _) = node.import(
        "ics",
        &[&crate::support::data("stix/attack/ics-attack-18.1.json.gz")],
    );
    assert_eq!(code, 0);
    add_partner(&node, "bsi", &["--read", "ics", "--write", "ics"]);
    let out = run(concord()
        .args(["partner", "show", "bsi", "--data-dir"])
        .arg(node.path()));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\nread: ics\n") && text.contains("\nwrite: ics\n"),
        "{text}"
    );
}

/// A writer's POST answers alike whether the collection already holds the object or not:
/// an SCO's id is derived from its value, so "already present" would let a partner test
/// guessed values it only ever receives pseudonymised. The admin is told.
#[test]
fn a_partners_post_does_not_say_what_is_already_held() {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let held = node.path().join("held.json");
    let email = |id: &str, value: &str| {
        serde_json::json!({"type": "email-addr", "spec_version": "2.1", "id": id,
            "value": value, "object_marking_refs": [RED]})
    };
    let held_id = "email-addr--ab4de341-d7ae-56e4-8b90-bc80df75bc35";
    let fresh_id = "email-addr--0f5b4c58-5c7f-5c3e-9c1a-1f6d2f1a0b7e";
    std::fs::write(
        &held,
        serde_json::json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000009",
            "objects": [email(held_id, "user1@corp.cn")]})
        .to_string(),
    )
    .unwrap();
    let (code, report) = node.import("intel", &[&held]);
    assert_eq!(code, 0, "{report}");
    let key = add_partner(&node, "bsi", &["--read", "intel", "--write", "intel"]);
    let s = node.serve();
    let post = |key: &str, object: serde_json::Value| {
        let auth = format!("Bearer {key}");
        let body = serde_json::json!({"objects": [object]}).to_string();
        let r = s.request(
            "POST",
            "/concord/collections/intel/objects/",
            &[
                ("Authorization", &auth),
                ("Accept", TAXII),
                ("Content-Type", TAXII),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        let mut status = r.json();
        status.as_object_mut().unwrap().remove("id");
        status.as_object_mut().unwrap().remove("request_timestamp");
        status
    };
    let guessed = post(&key, email(held_id, "user1@corp.cn"));
    let unheld = post(&key, email(fresh_id, "nobody@corp.cn"));
    assert_eq!(
        guessed.to_string().replace(held_id, "X"),
        unheld.to_string().replace(fresh_id, "X")
    );
    assert!(!guessed.to_string().contains("already"), "{guessed}");
    // The operator is told.
    let admin = post(crate::support::TOKEN, email(held_id, "user1@corp.cn"));
    assert!(admin.to_string().contains("already present"), "{admin}");
}
