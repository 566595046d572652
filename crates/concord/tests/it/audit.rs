//! The audit log (issue 5, item 7): every door records, `concord audit verify` finds any
//! edited, deleted or reordered entry, `concord audit show --partner P`.

use crate::support::{Node, TAXII, concord, run};

const WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

fn campaign(prefix: &str, marking: &str) -> String {
    format!(
        r#"{{"type":"campaign","spec_version":"2.1","id":"campaign--{prefix}-8ff6-4a8b-9c2f-6e5a3b1f0d11","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z","name":"c{prefix}","object_marking_refs":["{marking}"]}}"#
    )
}

/// `concord ARGS… --data-dir NODE`: exit code, stdout as JSON (or null), stderr.
fn concord_in(node: &Node, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(node: &Node) -> (i32, serde_json::Value) {
    let (code, doc, _) = concord_in(node, &["audit", "verify", "--json"]);
    (code, doc)
}

fn sql(node: &Node, statements: &str) {
    let db = rusqlite::Connection::open(node.path().join("concord.sqlite")).unwrap();
    db.execute_batch(statements).unwrap();
}

#[test]
fn every_door_is_recorded_and_tampering_is_found() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("feed.json");
    std::fs::write(
        &f,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{},{}]}}"#,
            campaign("11111111", WHITE),
            campaign("55555555", RED)
        ),
    )
    .unwrap();
    assert_eq!(node.import("feed", &[&f]).0, 0);
    let (code, doc, err) = concord_in(
        &node,
        &[
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "de",
            "--read",
            "feed",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let key = doc["api_key"].as_str().unwrap().to_owned();
    {
        let s = node.serve();
        let auth = format!("Bearer {key}");
        let headers = [("Authorization", auth.as_str()), ("Accept", TAXII)];
        for door in ["objects", "manifest"] {
            let path = format!("/concord/collections/feed/{door}/");
            assert_eq!(s.request("GET", &path, &headers, None).status, 200);
        }
        assert_eq!(s.get("/concord/collections/feed/objects/").status, 200);
        let envelope = format!(r#"{{"objects":[{}]}}"#, campaign("22222222", WHITE));
        assert_eq!(
            s.post("/concord/collections/feed/objects/", &envelope)
                .status,
            202
        );
    }
    let (code, _, err) = concord_in(
        &node,
        &[
            "export",
            "--collection",
            "feed",
            "--partner",
            "bsi",
            "-o",
            tmp.path().join("out.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");

    // Intact.
    let (code, doc) = verify(&node);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["intact"], true);
    let total = doc["entries"].as_i64().unwrap();
    // import 2 + objects 2 + manifest 2 + admin objects 2 + post 1 + export 3
    assert_eq!(total, 12);

    // What bsi received, and what it did not.
    let (code, shown, _) = concord_in(&node, &["audit", "show", "--partner", "bsi", "--json"]);
    assert_eq!(code, 0);
    let shown = shown.as_array().unwrap().clone();
    assert_eq!(shown.len(), 2 + 2 + 3);
    let row = |door: &str, prefix: &str| {
        shown
            .iter()
            .find(|e| e["door"] == door && e["object_id"].as_str().unwrap().contains(prefix))
            .unwrap_or_else(|| panic!("no {door} record of {prefix}"))
            .clone()
    };
    for door in ["taxii-objects", "taxii-manifest", "export"] {
        let sent = row(door, "11111111");
        assert_eq!(sent["direction"], "egress");
        assert_eq!(sent["decision"], "sent");
        assert_eq!(sent["modified"], "2020-01-01T00:00:00.000Z");
        assert!(!sent["policy_version"].as_str().unwrap().is_empty());
        let withheld = row(door, "55555555");
        assert_eq!(withheld["decision"], "withheld");
        assert!(
            withheld["transformations"][0]
                .as_str()
                .unwrap()
                .contains("RED"),
            "{withheld}"
        );
    }
    let (_, admin, _) = concord_in(&node, &["audit", "show", "--partner", "admin", "--json"]);
    let admin = admin.as_array().unwrap().clone();
    assert_eq!(admin.len(), 3, "2 objects read, 1 posted");
    assert!(
        admin
            .iter()
            .any(|e| e["door"] == "taxii-post" && e["direction"] == "ingress")
    );
    let (_, operator, _) = concord_in(&node, &["audit", "show", "--partner", "operator"]);
    assert!(operator.is_null(), "tab-separated lines without --json");
    let out = run(concord()
        .args(["audit", "show", "--partner", "operator", "--limit", "1"])
        .arg("--data-dir")
        .arg(node.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\tingress\timport\toperator\t"), "{text}");

    // Append-only through SQL, unless the triggers are dropped.
    let db = rusqlite::Connection::open(node.path().join("concord.sqlite")).unwrap();
    assert!(
        db.execute("UPDATE audit_log SET partner = 'x' WHERE seq = 3", [])
            .is_err()
    );
    assert!(
        db.execute("DELETE FROM audit_log WHERE seq = 3", [])
            .is_err()
    );
    drop(db);
    sql(
        &node,
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
    );

    // Edited: one field of entry 4.
    sql(
        &node,
        "CREATE TABLE saved AS SELECT * FROM audit_log;
         UPDATE audit_log SET decision = 'sent' WHERE seq = 4;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        (doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (Some("edited"), Some(4))
    );
    let (code, _, err) = concord_in(&node, &["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("entry 4 was edited"), "{err}");
    // Rehashed too: the next entry no longer follows it.
    sql(
        &node,
        "UPDATE audit_log SET hash = 'ff' || substr(hash, 3) WHERE seq = 4;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1);
    assert_eq!(doc["first_bad_seq"], 4);
    let restore = "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM saved;";
    sql(&node, restore);
    assert_eq!(verify(&node).0, 0);

    // Deleted: entry 6.
    sql(&node, "DELETE FROM audit_log WHERE seq = 6;");
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        (doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (Some("deleted"), Some(7))
    );
    sql(&node, restore);

    // Deleted and the rest renumbered to hide the gap.
    sql(
        &node,
        "DELETE FROM audit_log WHERE seq = 6;
         UPDATE audit_log SET seq = seq - 1 WHERE seq > 6;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["first_bad_seq"], 6);
    sql(&node, restore);

    // Reordered: entries 8 and 9 swapped.
    sql(
        &node,
        "UPDATE audit_log SET seq = -1 WHERE seq = 8;
         UPDATE audit_log SET seq = 8 WHERE seq = 9;
         UPDATE audit_log SET seq = 9 WHERE seq = -1;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        (doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (Some("reordered"), Some(8))
    );
    let (_, _, err) = concord_in(&node, &["audit", "verify"]);
    assert!(err.contains("entry 8 was reordered"), "{err}");
    sql(&node, restore);
    let (code, doc) = verify(&node);
    assert_eq!((code, doc["entries"].as_i64()), (0, Some(total)));
}
