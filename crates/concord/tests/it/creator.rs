//! Only an object's creator makes new versions of it (STIX 2.1 §3.6; issue 18), tried as
//! hostile partners holding keys would: through a second collection, through DELETE of a
//! foreign version, by deleting the object and writing it again, with objects that have no
//! `modified` (a TLP marking definition), and by squatting the operator's next version. Real `concord serve`, real HTTP, the CLI.

use serde_json::{Value, json};

use crate::support::{Node, Reply, Server, TAXII, concord, run};

const T1: &str = "2026-01-01T00:00:00.000Z";
const T2: &str = "2026-06-01T00:00:00.000Z";
const T3: &str = "2026-09-01T00:00:00.000Z";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const IDENTITY: &str = "identity--0b1d0000-0000-4000-8000-000000000001";
const SHARED: &str = "indicator--0b1d0000-0000-4000-8000-000000000002";
const SECRET: &str = "indicator--0b1d0000-0000-4000-8000-000000000003";
const RED_DEF: &str = "marking-definition--7d7f0000-0000-4000-8000-000000000004";
const RED_MARKED: &str = "indicator--0b1d0000-0000-4000-8000-000000000005";
const DELETED: &str = "indicator--0b1d0000-0000-4000-8000-000000000006";
const BLOCKED: &str = "indicator--0b1d0000-0000-4000-8000-000000000007";
const CLAIMED: &str = "indicator--0b1d0000-0000-4000-8000-000000000008";
const CLAIMED_DEF: &str = "marking-definition--7d7f0000-0000-4000-8000-000000000009";
const CLAIMED_MARKED: &str = "indicator--0b1d0000-0000-4000-8000-00000000000a";
const SOFTWARE: &str = "software--0b1d0000-0000-5000-8000-00000000000b";
const PUBLIC: &str = "attack-pattern--0b1d0000-0000-4000-8000-00000000000c";

fn cli(node: &Node, args: &[&str]) -> String {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn key(node: &Node, name: &str, flags: &[&str]) -> String {
    let mut args = vec!["partner", "add", name, "--jurisdiction", "DE", "--json"];
    args.extend_from_slice(flags);
    let doc: Value = serde_json::from_str(&cli(node, &args)).unwrap();
    doc["api_key"].as_str().unwrap().to_owned()
}

fn indicator(id: &str, modified: &str, note: &str, markings: &[&str]) -> Value {
    let mut v = json!({"type": "indicator", "spec_version": "2.1", "id": id,
        "created": T1, "modified": modified, "valid_from": T1, "pattern_type": "stix",
        "pattern": "[domain-name:value = 'bad.example']", "description": note});
    if !markings.is_empty() {
        v["object_marking_refs"] = json!(markings);
    }
    v
}

fn identity(modified: &str, name: &str) -> Value {
    json!({"type": "identity", "spec_version": "2.1", "id": IDENTITY, "created": T1,
        "modified": modified, "name": name, "identity_class": "organization"})
}

fn red_definition(tlp: &str) -> Value {
    json!({"type": "marking-definition", "spec_version": "2.1", "id": RED_DEF, "created": T1,
        "definition_type": "tlp", "definition": {"tlp": tlp}})
}

fn import(node: &Node, objects: &[Value]) {
    let file = node.path().join("bundle.json");
    let bundle = json!({"type": "bundle", "id": "bundle--0b1d0000-0000-4000-8000-0000000000ff",
        "objects": objects});
    std::fs::write(&file, bundle.to_string()).unwrap();
    let (code, report) = node.import("intel", &[&file]);
    assert_eq!(code, 0, "{report}");
}

struct Door<'a> {
    server: &'a Server,
}

impl Door<'_> {
    fn call(&self, key: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let text = body.map(|b| json!({ "objects": [b] }).to_string());
        self.server.request(
            method,
            &format!("/concord/collections/{path}"),
            &[
                ("Authorization", auth.as_str()),
                ("Accept", TAXII),
                ("Content-Type", TAXII),
            ],
            text.as_deref(),
        )
    }

    /// POSTs one object; the status resource.
    fn post(&self, key: &str, collection: &str, object: &Value) -> Value {
        let r = self.call(key, "POST", &format!("{collection}/objects/"), Some(object));
        assert_eq!(r.status, 202, "{}", r.body);
        r.json()
    }

    /// The newest version of `id` in `intel` as `key` reads it (`None`: not received).
    fn newest(&self, key: &str, id: &str) -> Option<Value> {
        let r = self.call(key, "GET", &format!("intel/objects/{id}/"), None);
        (r.status == 200).then(|| r.json()["objects"][0].clone())
    }
}

#[test]
fn a_hostile_partner_cannot_become_the_creator_of_anothers_object() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    for c in ["intel", "inbox"] {
        cli(&node, &["collection", "create", c]);
    }
    cli(
        &node,
        &[
            "collection",
            "share",
            "intel",
            "--default-tlp",
            "clear",
            "--recipient",
            "good",
        ],
    );
    let evil = key(
        &node,
        "evil",
        &["--read", "intel", "--write", "intel", "--write", "inbox"],
    );
    let good = key(&node, "good", &["--read", "intel", "--read", "inbox"]);
    let wo = key(&node, "wo", &["--write", "intel"]);
    import(
        &node,
        &[
            identity(T1, "Operator CERT"),
            indicator(SHARED, T1, "bad domain", &[]),
            indicator(SECRET, T1, "amber secret", &[AMBER]),
            red_definition("red"),
            indicator(RED_MARKED, T1, "RED secret", &[RED_DEF]),
            indicator(DELETED, T1, "operator's", &[]),
            indicator(BLOCKED, T1, "operator's v1", &[]),
        ],
    );
    let server = node.serve();
    let door = Door { server: &server };

    // 1. An echo into another collection makes no creator: the new version is refused.
    door.post(&evil, "inbox", &identity(T1, "echo"));
    let st = door.post(&evil, "intel", &identity(T2, "renamed by evil"));
    assert_eq!(st["failure_count"], 1, "{st}");
    assert_eq!(
        door.newest(&good, IDENTITY).unwrap()["name"],
        "Operator CERT"
    );

    // 2. A foreign version deleted, then a new one: still foreign, never the AMBER
    //    recipient's newest.
    door.post(&evil, "intel", &indicator(SECRET, T1, "probe", &[]));
    let r = door.call(&evil, "DELETE", &format!("intel/objects/{SECRET}/"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    door.post(&evil, "intel", &indicator(SECRET, T2, "EVIL v2", &[]));
    assert_eq!(
        door.newest(&good, SECRET).unwrap()["description"],
        "amber secret"
    );

    // 3. A write-only partner's marking definition under the producer's id and `created`
    //    (it has no `modified`) releases nothing: the RED object stays withheld.
    door.post(&wo, "intel", &red_definition("white"));
    for k in [&good, &evil] {
        assert!(door.newest(k, RED_MARKED).is_none(), "RED released");
    }
    let export = cli(&node, &["export", "--collection", "intel"]);
    assert!(!export.contains("\"white\""), "{export}");

    // 4. Deleting an object (a partner deletes what it receives) makes no one its creator:
    //    written again, it is the writer's foreign version, which nobody else reads.
    let st = door.post(&evil, "intel", &indicator(DELETED, T2, "EVIL v2", &[]));
    assert_eq!(st["failure_count"], 1, "{st}");
    let r = door.call(&evil, "DELETE", &format!("intel/objects/{DELETED}/"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let st = door.post(&evil, "intel", &indicator(DELETED, T2, "EVIL v2", &[]));
    assert_eq!(st["success_count"], 1, "{st}");
    assert!(
        door.newest(&good, DELETED).is_none(),
        "evil became the creator"
    );
    assert_eq!(
        door.newest(&evil, DELETED).unwrap()["description"],
        "EVIL v2"
    );

    // 5. Squatting the operator's next version: when the operator imports those very bytes,
    //    they are everyone's.
    let v3 = indicator(SHARED, T3, "operator v3", &[]);
    door.post(&wo, "intel", &v3);
    assert_eq!(door.newest(&good, SHARED).unwrap()["modified"], T1);
    import(&node, &[v3]);
    assert_eq!(door.newest(&good, SHARED).unwrap()["modified"], T3);
    assert_eq!(
        door.newest(&evil, SHARED).unwrap()["description"],
        "operator v3"
    );

    // 6. Other bytes under the operator's next version (a foreign version nobody else
    //    reads) do not block the operator's import of it.
    door.post(&wo, "intel", &indicator(BLOCKED, T2, "squatted", &[]));
    import(&node, &[indicator(BLOCKED, T2, "operator's v2", &[])]);
    assert_eq!(
        door.newest(&good, BLOCKED).unwrap()["description"],
        "operator's v2"
    );

    // 7. Ids claimed ahead (an IOC list's, a MISP event's, a public bundle's are
    //    predictable): the operator's import outranks the partner that wrote them first.
    door.post(
        &evil,
        "intel",
        &indicator(CLAIMED, "2099-01-01T00:00:00.000Z", "squat", &[]),
    );
    let mut white = red_definition("white");
    white["id"] = json!(CLAIMED_DEF);
    door.post(&evil, "intel", &white);
    let mut red = red_definition("red");
    red["id"] = json!(CLAIMED_DEF);
    import(
        &node,
        &[
            indicator(CLAIMED, T2, "operator's", &[]),
            red,
            indicator(CLAIMED_MARKED, T1, "RED by the operator", &[CLAIMED_DEF]),
        ],
    );
    assert_eq!(
        door.newest(&good, CLAIMED).unwrap()["description"],
        "operator's"
    );
    let st = door.post(
        &evil,
        "intel",
        &indicator(CLAIMED, "2100-01-01T00:00:00.000Z", "again", &[]),
    );
    assert_eq!(st["failure_count"], 1, "{st}");
    assert!(door.newest(&good, CLAIMED_MARKED).is_none(), "RED released");

    // 8. An object without `modified` claimed first with other bytes: the operator's
    //    import of it is everyone's (its own row is never made foreign).
    let software = |name: &str| json!({"type": "software", "spec_version": "2.1", "id": SOFTWARE, "name": name});
    door.post(&wo, "intel", &software("claimed"));
    import(&node, &[software("operator's")]);
    assert_eq!(door.newest(&good, SOFTWARE).unwrap()["name"], "operator's");

    // 9. A public object's exact bytes posted first: the operator's import of the same
    //    bytes ends the partner's claim, and its rewrite is refused.
    let public = |modified: &str, name: &str| {
        json!({"type": "attack-pattern", "spec_version": "2.1", "id": PUBLIC, "created": T1,
            "modified": modified, "name": name})
    };
    door.post(&evil, "intel", &public(T1, "Phishing"));
    import(&node, &[public(T1, "Phishing")]);
    let st = door.post(&evil, "intel", &public(T2, "EVIL rewrite"));
    assert_eq!(st["failure_count"], 1, "{st}");
    assert_eq!(door.newest(&good, PUBLIC).unwrap()["name"], "Phishing");
}
