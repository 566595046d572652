//! Issue 21, item 4: indicators that change together across borders. Three real nodes on
//! loopback (`concord serve` over their own SQLite files), synced by `concord sync`.

use serde_json::Value;

use crate::support::Node;
use crate::sync::{GREEN, cli, cli_ok, import, indicator, partner, sync};

const FP: &str = "indicator--f0f0f0f0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const EXP: &str = "indicator--e0e0e0e0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const KEEP: &str = "indicator--c0c0c0c0-8ff6-4a8b-9c2f-6e5a3b1f0d11";

/// `concord match` of `values` (one per line) against `intel`: the indicator ids hit.
fn hits(node: &Node, values: &[&str]) -> Vec<String> {
    let obs = node.path().join("observed.txt");
    std::fs::write(&obs, values.join("\n")).unwrap();
    let out = cli_ok(
        node,
        &["match", "--collection", "intel", obs.to_str().unwrap()],
    );
    let mut ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["indicator"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// The plain feed of `intel` as the operator exports it.
fn plain_feed(node: &Node) -> String {
    cli_ok(
        node,
        &["export", "--collection", "intel", "--format", "plain"],
    )
}

fn peer_add(node: &Node, base: &str, key: &std::path::Path, extra: &[&str]) {
    let mut args = vec![
        "peer",
        "add",
        "a",
        base,
        "--api-root",
        "/concord/",
        "--collection",
        "intel:intel",
        "--pull",
        "--token-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli_ok(node, &args);
}

/// The proof of issue 21: a false positive reported at B goes home to A (the producer),
/// which counts it and revokes the indicator (and expires another); after one round C,
/// which pulls from A, no longer matches either, and its feeds leave them out. B may not
/// version A's indicator itself.
#[test]
fn a_false_positive_reported_at_b_revokes_at_a_and_c_stops_matching_after_one_round() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[
            indicator("f0f0f0f0", "fp.example", &[GREEN]),
            indicator("e0e0e0e0", "expiring.example", &[GREEN]),
            indicator("c0c0c0c0", "keep.example", &[GREEN]),
        ],
    );
    let b_key = partner(&a, "b", "FR", &["--read", "intel", "--write", "intel"]);
    let c_key = partner(&a, "c", "SA", &["--read", "intel"]);
    let sa = a.serve();
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    let c = Node::init_with(&["--jurisdiction", "SA"]);
    for n in [&b, &c] {
        cli_ok(n, &["collection", "create", "intel"]);
    }
    // B sends sightings home within its policy for A's organisation.
    partner(&b, "a-org", "DE", &["--read", "intel"]);
    peer_add(&b, &sa.base, &b_key, &["--partner", "a-org"]);
    peer_add(&c, &sa.base, &c_key, &[]);
    for n in [&b, &c] {
        let (code, reports) = sync(n, &[]);
        assert_eq!(code, 0, "{reports:?}");
        assert_eq!(reports[0]["pulled_added"], 3, "{}", reports[0]);
    }
    let observed = [
        "fp.example",
        "expiring.example",
        "keep.example",
        "other.example",
    ];
    assert_eq!(
        hits(&c, &observed),
        [KEEP, EXP, FP].map(str::to_owned).to_vec()
    );
    assert_eq!(hits(&b, &observed).len(), 3);

    // B reports the false positive; only A, the indicator's creator, may version it.
    let (code, _, err) = cli(&b, &["indicator", "revoke", FP]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only an object's creator"), "{err}");
    let doc: Value = serde_json::from_str(&cli_ok(
        &b,
        &[
            "indicator",
            "false-positive",
            FP,
            "--sightings",
            "seen",
            "--reason",
            "our own resolver",
            "--json",
        ],
    ))
    .unwrap();
    let report_id = doc["sighting"].as_str().unwrap().to_owned();
    // A's node shows nothing before the report arrives …
    let shown: Value =
        serde_json::from_str(&cli_ok(&a, &["indicator", "show", FP, "--json"])).unwrap();
    assert_eq!(shown["false_positives"], 0, "{shown}");
    // … and it goes home like any sighting, through B's egress door.
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["sightings_home"], 1, "{}", reports[0]);
    let shown: Value =
        serde_json::from_str(&cli_ok(&a, &["indicator", "show", FP, "--json"])).unwrap();
    assert_eq!(shown["false_positives"], 1, "{shown}");
    assert_eq!(shown["state"], "valid");
    assert_eq!(shown["created_here"], true);
    let r = &shown["false_positive_reports"][0];
    assert_eq!(r["sighting"], report_id.as_str());
    assert_eq!(r["description"], "our own resolver");
    assert_eq!(r["received_from"], serde_json::json!(["partner/b"]));
    let listed: Value = serde_json::from_str(&cli_ok(
        &a,
        &["indicator", "list", "--false-positives", "--json"],
    ))
    .unwrap();
    let ids: Vec<&str> = listed["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [FP], "{listed}");

    // A revokes it and ends the other's validity: new versions.
    let revoked: Value = serde_json::from_str(&cli_ok(
        &a,
        &[
            "indicator",
            "revoke",
            FP,
            "--reason",
            "reported by b",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(revoked["revoked"], true);
    cli_ok(&a, &["indicator", "expire", EXP, "--json"]);
    // A revoked indicator is final.
    let (code, _, err) = cli(&a, &["indicator", "revoke", FP]);
    assert_eq!(code, 1, "{err}");
    // Both writes are in A's audit log as the operator's.
    for (id, door) in [(FP, "indicator-revoke"), (EXP, "indicator-expire")] {
        let audit: Value =
            serde_json::from_str(&cli_ok(&a, &["audit", "show", "--object", id, "--json"]))
                .unwrap();
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["door"] == door && e["partner"] == "operator"),
            "{audit}"
        );
    }

    // One round: C pulls the new versions, and matches neither any more.
    let (code, reports) = sync(&c, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(hits(&c, &observed), [KEEP.to_owned()]);
    let feed = plain_feed(&c);
    assert!(feed.contains("keep.example"), "{feed}");
    assert!(
        !feed.contains("fp.example") && !feed.contains("expiring.example"),
        "{feed}"
    );
    let at_c: Value =
        serde_json::from_str(&cli_ok(&c, &["indicator", "show", FP, "--json"])).unwrap();
    assert_eq!(at_c["state"], "revoked", "{at_c}");
    assert_eq!(at_c["received_from"], serde_json::json!(["a"]));
    let at_c: Value =
        serde_json::from_str(&cli_ok(&c, &["indicator", "show", EXP, "--json"])).unwrap();
    assert_eq!(at_c["state"], "expired", "{at_c}");
    // B too, after its round; the reason travels as a note on the indicator.
    sync(&b, &[]);
    assert_eq!(hits(&b, &observed), [KEEP.to_owned()]);
    let bundle: Value =
        serde_json::from_str(&cli_ok(&b, &["export", "--collection", "intel"])).unwrap();
    assert!(
        bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["type"] == "note"
                && o["object_refs"][0] == FP
                && o["content"] == "reported by b"),
        "no note of the revocation at B"
    );
}

/// Deletes travel as tombstones (issue 21, item 4): an indicator deleted at A over TAXII is
/// deleted at C by C's next round, because C received it; a RED indicator C never received
/// is deleted at A too, and its tombstone is never shown to C (neither in the round nor when
/// C asks A itself).
#[test]
fn a_delete_at_the_producer_reaches_only_the_nodes_that_received_the_object() {
    const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    const DEL: &str = "indicator--d0d0d0d0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    const SECRET: &str = "indicator--5ec2e700-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[
            indicator("d0d0d0d0", "deleted.example", &[GREEN]),
            indicator("5ec2e700", "secret.example", &[RED]),
            indicator("c0c0c0c0", "keep.example", &[GREEN]),
        ],
    );
    let c_key = partner(&a, "c", "SA", &["--read", "intel"]);
    let sa = a.serve();
    let c = Node::init_with(&["--jurisdiction", "SA"]);
    cli_ok(&c, &["collection", "create", "intel"]);
    peer_add(&c, &sa.base, &c_key, &[]);
    let (code, reports) = sync(&c, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 2, "{}", reports[0]);
    assert_eq!(reports[0]["deleted"], 0, "{}", reports[0]);
    let observed = ["deleted.example", "secret.example", "keep.example"];
    assert_eq!(hits(&c, &observed), [KEEP.to_owned(), DEL.to_owned()]);

    for id in [DEL, SECRET] {
        let r = sa.delete(&format!("/concord/collections/intel/objects/{id}/"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // What C may ask A directly: the tombstone of what it received, nothing of the rest.
    let key = std::fs::read_to_string(&c_key).unwrap();
    let auth = format!("Bearer {}", key.trim());
    let ask = |next: Option<&str>| {
        let path = match next {
            Some(n) => format!("/concord/collections/intel/tombstones/?next={n}"),
            None => "/concord/collections/intel/tombstones/".to_owned(),
        };
        sa.request(
            "GET",
            &path,
            &[("Authorization", &auth), ("Accept", crate::support::TAXII)],
            None,
        )
    };
    let r = ask(None);
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(
        page["tombstones"],
        serde_json::json!([{"id": DEL, "version": "2024-01-01T00:00:00.000Z"}]),
        "{page}"
    );
    assert!(!r.body.contains(SECRET));
    // Nothing more after its cursor; a cursor not sealed for C is refused.
    let after = ask(page["next"].as_str());
    assert_eq!(after.json()["tombstones"], serde_json::json!([]));
    assert_eq!(ask(Some("AAAA")).status, 400);

    // One round: C deletes what A deleted, and only that.
    let (code, reports) = sync(&c, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["deleted"], 1, "{}", reports[0]);
    assert_eq!(hits(&c, &observed), [KEEP.to_owned()]);
    let held = crate::sync::held(&c, "intel");
    assert!(held.keys().all(|(id, _)| id != DEL), "{:?}", held.keys());
    assert!(held.keys().any(|(id, _)| id == KEEP));
    // Audited at C as a deletion by the peer.
    let audit: Value =
        serde_json::from_str(&cli_ok(&c, &["audit", "show", "--object", DEL, "--json"])).unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["door"] == "sync-tombstones" && e["partner"] == "peer:a"),
        "{audit}"
    );
    // The next round deletes nothing more.
    let (_, reports) = sync(&c, &[]);
    assert_eq!(reports[0]["deleted"], 0, "{}", reports[0]);
}
