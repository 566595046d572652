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

/// `concord audit verify --full --json`: exit code and report.
fn verify_full(node: &Node) -> (i32, serde_json::Value) {
    let (code, doc, _) = concord_in(node, &["audit", "verify", "--full", "--json"]);
    (code, doc)
}

/// Writes `DIR/PREFIX.json`, a bundle of one campaign marked WHITE (`campaign(prefix, WHITE)`).
fn campaign_bundle(dir: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let f = dir.join(format!("{prefix}.json"));
    std::fs::write(
        &f,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
            campaign(prefix, WHITE)
        ),
    )
    .unwrap();
    f
}

fn sql(node: &Node, statements: &str) {
    let db = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
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

    // Intact: one entry per transfer.
    let (code, doc) = verify(&node);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["intact"], true);
    let total = doc["entries"].as_i64().unwrap();
    // import + objects + manifest + admin objects + post + export (one page)
    assert_eq!(total, 6, "{doc}");

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
    assert_eq!(text.lines().count(), 2, "a header and one entry: {text}");
    assert!(
        text.starts_with("seq\ttime\tdirection\tdoor\tpartner\t"),
        "{text}"
    );
    assert!(text.contains("\tingress\timport\toperator\t"), "{text}");

    // Append-only through SQL, unless the triggers are dropped.
    let db = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
    assert!(
        db.execute("UPDATE audit_entries SET partner = 'x' WHERE seq = 3", [])
            .is_err()
    );
    assert!(
        db.execute("DELETE FROM audit_entries WHERE seq = 3", [])
            .is_err()
    );
    drop(db);
    sql(
        &node,
        "DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete;",
    );

    // Edited: one field of entry 4.
    sql(
        &node,
        "CREATE TABLE saved AS SELECT * FROM audit_entries;
         UPDATE audit_entries SET door = 'export' WHERE seq = 4;",
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
        "UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 4;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1);
    assert_eq!(doc["first_bad_seq"], 4);
    let restore = "DELETE FROM audit_entries; INSERT INTO audit_entries SELECT * FROM saved;";
    sql(&node, restore);
    assert_eq!(verify(&node).0, 0);

    // Deleted: entry 3.
    sql(&node, "DELETE FROM audit_entries WHERE seq = 3;");
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        (doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (Some("deleted"), Some(4))
    );
    sql(&node, restore);

    // Deleted and the rest renumbered to hide the gap.
    sql(
        &node,
        "DELETE FROM audit_entries WHERE seq = 3;
         UPDATE audit_entries SET seq = seq - 1 WHERE seq > 3;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["first_bad_seq"], 3);
    sql(&node, restore);

    // Reordered: entries 4 and 5 swapped.
    sql(
        &node,
        "UPDATE audit_entries SET seq = -1 WHERE seq = 4;
         UPDATE audit_entries SET seq = 4 WHERE seq = 5;
         UPDATE audit_entries SET seq = 5 WHERE seq = -1;",
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        (doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (Some("reordered"), Some(4))
    );
    let (_, _, err) = concord_in(&node, &["audit", "verify"]);
    assert!(err.contains("entry 4 was reordered"), "{err}");
    sql(&node, restore);
    let (code, doc) = verify(&node);
    assert_eq!((code, doc["entries"].as_i64()), (0, Some(total)));
}

/// Issue 17: which versions of an object went to a partner; signed checkpoints, incremental
/// verify, a forged checkpoint; archives that verify offline, and the chain after them.
#[test]
fn checkpoints_archives_and_show_by_object() {
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
    let (code, pubkey, _) = concord_in(&node, &["node", "key", "--json"]);
    assert_eq!(code, 0);
    let pubkey = pubkey["public_key"].as_str().unwrap().to_owned();
    assert_eq!(pubkey.len(), 64);
    {
        let s = node.serve();
        let auth = format!("Bearer {key}");
        let headers = [("Authorization", auth.as_str()), ("Accept", TAXII)];
        for _ in 0..3 {
            let path = "/concord/collections/feed/objects/";
            assert_eq!(s.request("GET", path, &headers, None).status, 200);
        }
    }
    let red = "campaign--55555555-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    let (code, rows, _) = concord_in(
        &node,
        &[
            "audit",
            "show",
            "--object",
            red,
            "--partner",
            "bsi",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["object_id"] == red
        && r["decision"] == "withheld"
        && r["modified"] == "2020-01-01T00:00:00.000Z"
        && r["door"] == "taxii-objects"));
    let (_, all, _) = concord_in(&node, &["audit", "show", "--object", red, "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 4, "the import too");

    // Checkpoint, then verify incrementally with the public key.
    let (code, cp, _) = concord_in(&node, &["audit", "checkpoint", "--json"]);
    assert_eq!((code, cp["no"].as_i64()), (0, Some(1)));
    let (code, doc, _) = concord_in(&node, &["audit", "verify", "--key", &pubkey, "--json"]);
    assert_eq!(
        (code, doc["last_checkpoint"].as_i64()),
        (0, Some(1)),
        "{doc}"
    );
    let (code, doc, _) = concord_in(&node, &["audit", "verify", "--json"]);
    assert_eq!(
        (
            code,
            doc["from_checkpoint"].as_i64(),
            doc["entries"].as_i64()
        ),
        (0, Some(1), Some(0)),
        "{doc}"
    );
    let other = "11".repeat(32);
    let (code, doc, _) = concord_in(&node, &["audit", "verify", "--key", &other, "--json"]);
    assert_eq!((code, doc["kind"].as_str()), (1, Some("forged")), "{doc}");

    // Archive everything so far; the file verifies offline; the log goes on from the boundary.
    let archive = tmp.path().join("audit-1.jsonl");
    let (code, summary, err) = concord_in(
        &node,
        &[
            "audit",
            "archive",
            "--before",
            "2999-01-01T00:00:00Z",
            "-o",
            archive.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            summary["from_seq"].as_i64(),
            summary["through_seq"].as_i64()
        ),
        (Some(1), Some(4)),
        "{summary}"
    );
    let offline = |file: &std::path::Path| {
        let out = run(concord()
            .args(["audit", "verify", "--json", "--key", &pubkey, "--archive"])
            .arg(file));
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default(),
        )
    };
    assert_eq!(offline(&archive).0, 0);
    let text = std::fs::read_to_string(&archive).unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        text.replacen("\"door\":\"taxii-objects\"", "\"door\":\"export\"", 1),
    )
    .unwrap();
    let (code, doc) = offline(&bad);
    assert_eq!(
        (code, doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (1, Some("edited"), Some(2)),
        "{doc}"
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 0, "{doc}");
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (
            code,
            doc["archived_through"].as_i64(),
            doc["entries"].as_i64()
        ),
        (0, Some(4), Some(0)),
        "{doc}"
    );
    {
        let s = node.serve();
        let auth = format!("Bearer {key}");
        let headers = [("Authorization", auth.as_str()), ("Accept", TAXII)];
        assert_eq!(
            s.request("GET", "/concord/collections/feed/objects/", &headers, None)
                .status,
            200
        );
    }
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (code, doc["entries"].as_i64(), doc["head_seq"].as_i64()),
        (0, Some(1), Some(5)),
        "{doc}"
    );
}

/// Issue 17, schema 24: a node upgraded from the per-object log (schema 3) archives it.
/// `audit archive` writes the legacy rows whole before the transfer entries into one sealed
/// file (v2), `audit verify --archive` checks it offline and names a tampered legacy row by
/// its seq, the legacy rows leave the database with the archived entries, the log still
/// verifies, and the database refuses to delete legacy rows by hand before that.
#[test]
fn a_legacy_log_is_archived_with_the_first_archive() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let (_, before) = verify_full(&node);
    assert_eq!(before["entries"].as_i64(), Some(0), "{before}");
    let db = node.path().join("concord.sqlite");
    let records: Vec<concord_store::AuditRecord> = (0..3)
        .map(|i| concord_store::AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: "bsi".into(),
            person: None,
            collection: "c1".into(),
            object_id: format!("campaign--{i}"),
            modified: "2016-01-01T00:00:00.000Z".into(),
            decision: "sent".into(),
            transformations: vec![],
            policy_version: "tlp-v1".into(),
            vid: 0,
        })
        .collect();
    {
        let c = concord_store::sqlite::connect(&db).unwrap();
        concord_store::sqlite::insert_legacy_audit(&c, &records).unwrap();
        let err = c
            .execute_batch("DELETE FROM audit_log WHERE seq = 1")
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let f = campaign_bundle(tmp.path(), "11111111");
    assert_eq!(node.import("feed", &[&f]).0, 0);
    let (code, doc) = verify(&node);
    assert_eq!(
        (code, doc["legacy_entries"].as_i64()),
        (0, Some(3)),
        "{doc}"
    );

    let archive = tmp.path().join("audit-1.jsonl");
    let (code, summary, err) = concord_in(
        &node,
        &[
            "audit",
            "archive",
            "--before",
            "2999-01-01T00:00:00Z",
            "-o",
            archive.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (
            summary["from_seq"].as_i64(),
            summary["legacy_entries"].as_i64(),
            summary["entries"].as_i64()
        ),
        (Some(1), Some(3), Some(1)),
        "{summary}"
    );
    let (_, pubkey, _) = concord_in(&node, &["node", "key", "--json"]);
    let pubkey = pubkey["public_key"].as_str().unwrap().to_owned();
    let offline = |file: &std::path::Path| {
        let out = run(concord()
            .args(["audit", "verify", "--json", "--key", &pubkey, "--archive"])
            .arg(file));
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default(),
        )
    };
    let (code, doc) = offline(&archive);
    assert_eq!(
        (code, doc["legacy_entries"].as_i64()),
        (0, Some(3)),
        "{doc}"
    );
    let text = std::fs::read_to_string(&archive).unwrap();
    assert!(text.starts_with(r#"{"header":{"format":"concord-audit-archive-v2""#));
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        text.replacen(
            r#""object_id":"campaign--1""#,
            r#""object_id":"campaign--9""#,
            1,
        ),
    )
    .unwrap();
    let (code, doc) = offline(&bad);
    assert_eq!(
        (code, doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (1, Some("edited"), Some(2)),
        "{doc}"
    );
    let left: i64 = concord_store::sqlite::connect(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the legacy rows left the database");
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (
            code,
            doc["legacy_entries"].as_i64(),
            doc["archived_through"].as_i64()
        ),
        (0, Some(0), Some(4)),
        "{doc}"
    );
    assert_eq!(node.import("feed", &[&f]).0, 0);
    let (code, doc) = verify(&node);
    assert_eq!((code, doc["head_seq"].as_i64()), (0, Some(5)), "{doc}");
}

/// `concord audit show | head`, `concord export … | head`: a reader that stops early (here,
/// one that closed before the first byte) ends the command quietly with status 141, as a
/// process killed by SIGPIPE, on both ways the binary writes stdout (its `out!` lines and an
/// export's own handle), never with a panic.
#[test]
fn a_closed_stdout_pipe_ends_the_command_quietly() {
    let node = Node::init();
    let f = node.path().join("c.json");
    std::fs::write(
        &f,
        format!(
            r#"{{"type":"bundle","id":"bundle--3c6f2b1e-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
            campaign("1a2b3c4d", WHITE)
        ),
    )
    .unwrap();
    assert_eq!(node.import("feed", &[&f]).0, 0);
    for args in [
        &["audit", "show"][..],
        &["export", "--collection", "feed"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = concord()
            .args(args)
            .arg("--data-dir")
            .arg(node.path())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

/// A node with a legacy (schema 3) log of 3 rows, one transfer entry after it (an import),
/// and a signed checkpoint of the head: (node, the checkpoint's no, entry_seq, entry_hash).
fn legacy_node_with_checkpoint() -> (Node, i64, i64, Vec<u8>) {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let records: Vec<concord_store::AuditRecord> = (0..3)
        .map(|i| concord_store::AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: "bsi".into(),
            person: None,
            collection: "c1".into(),
            object_id: format!("campaign--{i}"),
            modified: "2016-01-01T00:00:00.000Z".into(),
            decision: "sent".into(),
            transformations: vec![],
            policy_version: "tlp-v1".into(),
            vid: 0,
        })
        .collect();
    {
        let c = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
        concord_store::sqlite::insert_legacy_audit(&c, &records).unwrap();
    }
    let f = campaign_bundle(tmp.path(), "11111111");
    assert_eq!(node.import("feed", &[&f]).0, 0);
    let (code, _, err) = concord_in(&node, &["audit", "checkpoint", "--json"]);
    assert_eq!(code, 0, "{err}");
    let c = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
    let (no, seq, hash): (i64, i64, Vec<u8>) = c
        .query_row(
            "SELECT no, entry_seq, entry_hash FROM audit_checkpoints ORDER BY no DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    drop(c);
    let (code, doc) = verify(&node);
    assert_eq!(
        (code, doc["legacy_entries"].as_i64()),
        (0, Some(3)),
        "{doc}"
    );
    (node, no, seq, hash)
}

/// Attack (h-legacy, someone with write access to the node's files but not its key): a
/// boundary row forged at a signed checkpoint lets the legacy log and every transfer entry
/// up to it be deleted with no archive written. `audit verify --full` must not call that
/// log intact: no archive was sealed by the node key for that boundary.
#[test]
fn attack_a_forged_archive_boundary_does_not_hide_deleted_entries() {
    let (node, no, seq, hash) = legacy_node_with_checkpoint();
    {
        let c = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
        c.execute(
            "INSERT INTO audit_archives (through_seq, through_hash, checkpoint_no, time_ns, file, legacy_through)
             VALUES (?1, ?2, ?3, 1, 'nowhere.jsonl', 3)",
            rusqlite::params![seq, hash, no],
        )
        .unwrap();
        // The triggers let them go now: the forged boundary covers them.
        c.execute_batch(&format!(
            "DELETE FROM audit_log; DELETE FROM audit_entries WHERE seq <= {seq};"
        ))
        .unwrap();
    }
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (code, doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (1, Some("unarchived"), Some(seq)),
        "a boundary no archive of this node's key vouches for was taken as one: {doc}"
    );
    assert!(
        doc["message"].as_str().unwrap().contains("nowhere.jsonl"),
        "{doc}"
    );
}

/// Attack (h-legacy): a boundary without `legacy_through` (as an archive written before
/// schema 24 leaves) stops `audit verify --full` from reading the legacy rows still held,
/// so they can be rewritten (hashes recomputed: no key needed) and `audit show` shows the
/// forgery as the log.
#[test]
fn attack_legacy_rows_held_after_a_boundary_are_still_verified() {
    let (node, no, seq, hash) = legacy_node_with_checkpoint();
    {
        let c = concord_store::sqlite::connect(&node.path().join("concord.sqlite")).unwrap();
        c.execute(
            "INSERT INTO audit_archives (through_seq, through_hash, checkpoint_no, time_ns, file)
             VALUES (?1, ?2, ?3, 1, 'audit-1.jsonl')",
            rusqlite::params![seq, hash, no],
        )
        .unwrap();
        // As the node's own archive (sealed by its key) would leave it: only the legacy
        // rows are the attacker's.
        let key = concord_store::node_key::NodeKey::load_or_create(
            &node.path().join(concord_store::node_key::NODE_KEY_FILE),
        )
        .unwrap();
        let b = concord_store::audit::ArchiveBoundary {
            through_seq: seq,
            through_hash: hash.as_slice().try_into().unwrap(),
            checkpoint_no: no,
            time_ns: 1,
            file: "audit-1.jsonl".into(),
            legacy_through: None,
        };
        let digest = [7u8; 32];
        let seal = serde_json::json!({
            "sha256": concord_store::node_key::hex(&digest),
            "signature": concord_store::node_key::hex(&key.sign(&b.seal_message(&digest))),
        });
        c.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)",
            rusqlite::params![
                format!("{}{seq}", concord_store::audit::BOUNDARY_SEAL_PREFIX),
                seal.to_string()
            ],
        )
        .unwrap();
        c.execute_batch(
            "DROP TRIGGER IF EXISTS audit_log_no_update;
             UPDATE audit_log SET partner = 'someone-else' WHERE seq = 2;",
        )
        .unwrap();
    }
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (code, doc["kind"].as_str(), doc["first_bad_seq"].as_i64()),
        (1, Some("edited"), Some(2)),
        "an edited legacy row held in the database passed: {doc}"
    );
}

/// A boundary recorded before boundaries were sealed (here: the node's own archive with its
/// seal taken away, as such a node would hold it) is `unarchived` to `verify`, and
/// `audit vouch --archive FILE` seals it from the archive file that took its entries; a
/// tampered copy of that file, or no archive of this node, vouches for nothing.
#[test]
fn an_unsealed_boundary_is_vouched_for_by_its_archive_file() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let f = campaign_bundle(tmp.path(), "11111111");
    assert_eq!(node.import("feed", &[&f]).0, 0);
    let out = tmp.path().join("audit-1.jsonl");
    let (code, _, err) = concord_in(
        &node,
        &[
            "audit",
            "archive",
            "--before",
            "2999-01-01T00:00:00Z",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(verify(&node).0, 0, "sealed by the archive itself");
    sql(
        &node,
        "DELETE FROM settings WHERE key LIKE 'audit.boundary_seal.%'",
    );
    let (code, doc) = verify(&node);
    assert_eq!(
        (code, doc["kind"].as_str()),
        (1, Some("unarchived")),
        "{doc}"
    );
    // A copy with one byte changed does not verify: refused, nothing sealed.
    let text = std::fs::read_to_string(&out).unwrap();
    let tampered = tmp.path().join("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"egress\"", "\"EGRESS\"", 1)
            .replacen("\"ingress\"", "\"INGRESS\"", 1),
    )
    .unwrap();
    let (code, _, err) = concord_in(
        &node,
        &["audit", "vouch", "--archive", tampered.to_str().unwrap()],
    );
    assert_ne!(code, 0, "a tampered archive vouched: {err}");
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(verify(&node).1["kind"].as_str(), Some("unarchived"));
    let (code, doc, err) = concord_in(
        &node,
        &[
            "audit",
            "vouch",
            "--archive",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!((code, doc["vouched"].as_bool()), (0, Some(true)), "{err}");
    let (code, doc) = verify(&node);
    assert_eq!(code, 0, "{doc}");
    let (code, doc) = verify_full(&node);
    assert_eq!(code, 0, "{doc}");
}

/// A copy of the log's file (`concord.audit.sqlite`), taken the way SQLite copies a live
/// file (its WAL included), to put back later.
fn backup_log(node: &Node, to: &std::path::Path) {
    let log = concord_store::sqlite::audit_path(&node.path().join("concord.sqlite"));
    let c = rusqlite::Connection::open(&log).unwrap();
    c.execute("VACUUM INTO ?1", [to.to_str().unwrap()]).unwrap();
}

/// Puts the log's file back to `from` (its WAL and shared memory dropped).
fn restore_log(node: &Node, from: &std::path::Path) {
    let log = concord_store::sqlite::audit_path(&node.path().join("concord.sqlite"));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", log.display()));
    }
    std::fs::copy(from, &log).unwrap();
}

/// Attack (write access to the files, not the key; the log in a file of its own, schema
/// 26): the log's file put back to an older copy of itself loses the entries and the
/// checkpoint signed since. The main file records the checkpoint `verify` last verified, so
/// the incremental verify finds it; `verify --full` passed it and recorded the older
/// checkpoint as verified, after which the incremental verify passed too (and a node that
/// signed new checkpoints up to the same number after the rollback passed both).
#[test]
fn a_log_file_rolled_back_is_found_by_full_verify_too() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = |prefix: &str| campaign_bundle(tmp.path(), prefix);
    assert_eq!(node.import("feed", &[&bundle("11111111")]).0, 0);
    assert_eq!(concord_in(&node, &["audit", "checkpoint"]).0, 0);
    assert_eq!(verify(&node).0, 0);
    let old = tmp.path().join("old.audit.sqlite");
    backup_log(&node, &old);
    assert_eq!(node.import("feed", &[&bundle("22222222")]).0, 0);
    assert_eq!(concord_in(&node, &["audit", "checkpoint"]).0, 0);
    assert_eq!(verify(&node).0, 0);
    restore_log(&node, &old);
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (code, doc["kind"].as_str()),
        (1, Some("checkpoint-broken")),
        "{doc}"
    );
    let (code, doc) = verify(&node);
    assert_eq!(code, 1, "a full verify laundered the rollback: {doc}");
    // The node goes on after the rollback and signs a checkpoint 2 of its own: not the
    // checkpoint 2 that was verified.
    assert_eq!(node.import("feed", &[&bundle("33333333")]).0, 0);
    assert_eq!(concord_in(&node, &["audit", "checkpoint"]).0, 0);
    let (code, doc) = verify(&node);
    assert_eq!(
        (code, doc["kind"].as_str()),
        (1, Some("checkpoint-broken")),
        "{doc}"
    );
    assert_eq!(verify_full(&node).0, 1);
}

/// Attack: a new log file with the id of the node's own (the id is in the main file's
/// settings, readable by whoever can write the files): the store opens it as its own, and
/// `verify --full` found an empty, intact log. No verify ran before: the checkpoint the node
/// signed is the anchor.
#[test]
fn a_fresh_log_file_with_the_same_id_is_found_by_full_verify() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let f = campaign_bundle(tmp.path(), "11111111");
    // A fresh log of the same layout, before anything was logged.
    let fresh = tmp.path().join("fresh.audit.sqlite");
    backup_log(&node, &fresh);
    assert_eq!(node.import("feed", &[&f]).0, 0);
    assert_eq!(concord_in(&node, &["audit", "checkpoint"]).0, 0);
    restore_log(&node, &fresh);
    let (code, doc) = verify_full(&node);
    assert_eq!(
        (code, doc["kind"].as_str()),
        (1, Some("checkpoint-broken")),
        "{doc}"
    );
}
