//! Timing oracle F2 (issue 15): a partner's question about an id answers the same for an
//! object that exists but is withheld from it as for one that does not exist, byte for
//! byte (status, every header but `Date`, body), on every door that takes an id; and the
//! answer floor (`[limits] answer_floor_ms`, `answer_jitter_ms`) holds those answers.
//!
//! The time itself is measured by `examples/oracle_timing.rs` (BENCHMARKS.md), not here:
//! the only time this test asserts is a lower bound that a `sleep` guarantees.

// Shared with the other tests and `examples/oracle_timing.rs`: not every item is used here.
#[allow(dead_code)]
#[path = "support/oracle.rs"]
mod oracle;

use std::time::{Duration, Instant};

use concord_server::Limits;
use oracle::{BASE, Client, DOORS};

/// The answer as bytes a client compares: status, headers but `Date`, body, with the id
/// asked about replaced.
fn bytes(a: &oracle::Answer, asked: &str) -> String {
    let mut t = format!("{}\n", a.status);
    for (k, v) in &a.headers {
        if k != "date" {
            t.push_str(&format!("{k}: {}\n", v.replace(asked, "<id>")));
        }
    }
    t.push_str(&a.body.replace(asked, "<id>"));
    t
}

#[test]
fn withheld_and_missing_ids_answer_byte_for_byte_alike_on_every_door() {
    // No floor: the bytes must be equal on their own.
    let node = oracle::node(Limits {
        answer_floor_ms: 0,
        answer_jitter_ms: 0,
        ..Limits::default()
    });
    let mut client = Client::new(node.addr, &node.key);
    // The withheld objects exist: the operator reads them.
    let mut admin = Client::new(node.addr, oracle::ADMIN);
    for id in [&node.red[0], &node.scos[0]] {
        let a = admin.exchange("GET", &format!("{BASE}/objects/{id}/"));
        assert_eq!(a.status, 200, "{id}: {}", a.body);
    }
    let mut compared = 0;
    for (name, method, path) in DOORS {
        for (i, (held, missing)) in [
            (&node.red[1], oracle::missing_indicator_id(7, 7)),
            (&node.scos[1], oracle::missing_sco_id(7, 7)),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(held.len(), missing.len());
            let a = client.exchange(method, &path(held));
            let b = client.exchange(method, &path(&missing));
            assert_eq!(
                bytes(&a, held),
                bytes(&b, &missing),
                "{name}, case {i}: {held} (withheld) answers unlike {missing} (missing)"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 10);
    // The same work whether the id exists or not: one audit append each (the look-up of a
    // missing id decides a decoy and records that nothing left, for no version row), and
    // nothing of the id asked in it.
    let last = |store: &dyn concord_store::Store| {
        store
            .audit_entries(&concord_store::AuditQuery {
                limit: 1,
                newest_first: true,
                ..Default::default()
            })
            .unwrap()
            .pop()
            .expect("an audit entry")
    };
    for (name, method, path) in DOORS {
        for (held, missing) in [
            (&node.red[4], oracle::missing_indicator_id(8, 8)),
            (&node.scos[4], oracle::missing_sco_id(8, 8)),
        ] {
            let before = last(node.store.as_ref()).seq;
            client.exchange(method, &path(held));
            let after_held = last(node.store.as_ref());
            client.exchange(method, &path(&missing));
            let after_missing = last(node.store.as_ref());
            assert_eq!(after_held.seq, before + 1, "{name} {held}");
            assert_eq!(after_missing.seq, after_held.seq + 1, "{name} {missing}");
            assert_eq!(after_missing.count, 1, "{name}");
            let items = after_missing.decoded().unwrap();
            assert_eq!(items[0].vid, 0, "{name}: no version row");
            assert_eq!(items[0].decision.as_str(), "withheld", "{name}");
            assert!(
                after_missing.dictionary[0].contains("nothing under this id"),
                "{name}: {:?}",
                after_missing.dictionary
            );
        }
    }
    // Nothing withheld was deleted by the partner's DELETEs.
    for id in [&node.red[1], &node.scos[1]] {
        let a = admin.exchange("GET", &format!("{BASE}/objects/{id}/"));
        assert_eq!(a.status, 200, "{id}: {}", a.body);
    }
}

#[test]
fn a_partners_answers_about_ids_wait_for_the_floor_and_the_jitter_bound_holds() {
    let floor = Duration::from_millis(300);
    let node = oracle::node(Limits {
        answer_floor_ms: 300,
        answer_jitter_ms: 0,
        ..Limits::default()
    });
    let mut client = Client::new(node.addr, &node.key);
    let missing = oracle::missing_indicator_id(1, 1);
    for (name, method, path) in DOORS {
        for id in [&node.red[2], &missing] {
            let t0 = Instant::now();
            let a = client.exchange(method, &path(id));
            assert!(t0.elapsed() >= floor, "{name} {id}: {:?}", t0.elapsed());
            assert!(a.status == 200 || a.status == 404, "{name}: {}", a.body);
        }
    }
    // A partner's POST waits for one floor too, whether it writes over a withheld id (kept
    // as its foreign version) or a new one.
    for id in [&node.red[2], &missing] {
        let envelope = format!(
            r#"{{"objects": [{{"type": "indicator", "spec_version": "2.1", "id": "{id}",
                "created": "2030-01-01T00:00:00.000Z", "modified": "2030-01-01T00:00:00.000Z",
                "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix",
                "valid_from": "2030-01-01T00:00:00Z"}}]}}"#
        );
        let t0 = Instant::now();
        let a = client.send("POST", &format!("{BASE}/objects/"), &envelope);
        assert!(t0.elapsed() >= floor, "POST {id}: {:?}", t0.elapsed());
        assert_eq!(a.status, 202, "POST {id}: {}", a.body);
    }
    // One floor per id named.
    let t0 = Instant::now();
    let a = client.exchange(
        "GET",
        &format!("{BASE}/objects/?match[id]={},{missing}", node.red[3]),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(t0.elapsed() >= 2 * floor, "{:?}", t0.elapsed());
}
