//! The egress door over a real SQLite store: markings by content, references to withheld
//! objects, keyed SCO ids, strict JSON, cursors that reveal nothing and cannot be forged.

use std::sync::Arc;

use concord_egress::{Audience, Egress, EgressError, PageQuery};
use concord_policy::actions::{Policy, PseudonymKeys};
use concord_policy::egress::{CollectionSharing, PartnerProfile, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_store::{NewCollection, NewObject, ObjectFilter, Store};
use serde_json::{Value, json};

const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const OWN_RED_V1: &str = "marking-definition--aaaaaaaa-0000-4000-8000-000000000001";
const OWN_RED_V2: &str = "marking-definition--aaaaaaaa-0000-4000-8000-000000000002";
const UNKNOWN_MARKING: &str = "marking-definition--aaaaaaaa-0000-4000-8000-00000000dead";
const T: &str = "2024-01-01T00:00:00.000Z";

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    egress: Egress,
    collection: String,
}

/// A node in CN with one collection shared `--default-tlp clear` with the community.
fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(concord_store::sqlite::SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            ..NewCollection::default()
        })
        .unwrap();
    let sharing = CollectionSharing {
        groups: None,
        recipients: Vec::new(),
        default_tlp: Tlp::Clear,
        addressed: Default::default(),
        grants: Default::default(),
    };
    store
        .set_setting(&sharing_setting_key(&c.id), &sharing.to_json())
        .unwrap();
    let keys = PseudonymKeys {
        node_secret: Some(b"a node secret of 32 bytes, fixed".to_vec()),
        ..PseudonymKeys::default()
    };
    let policy = Arc::new(Policy::node_default(Some("CN"), keys));
    Node {
        _dir: dir,
        egress: Egress::new(store.clone(), policy),
        store,
        collection: c.id,
    }
}

/// Stores `objects` in one batch as they are (the store, not the ingest: so that bytes the
/// ingest would now refuse can be stored as an older node did).
fn store_raw(n: &Node, bodies: &[String]) {
    let mut batch = n.store.begin_write(&n.collection).unwrap();
    for body in bodies {
        let value: Value = serde_json::from_str(body).unwrap();
        let header =
            concord_stix::validate_object(&value).unwrap_or_else(|v| panic!("{v:?}: {body}"));
        batch
            .add(&NewObject {
                header: &header,
                body,
                value: &value,
            })
            .unwrap();
    }
    batch.commit().unwrap();
}

fn put(n: &Node, objects: &[Value]) {
    store_raw(n, &objects.iter().map(Value::to_string).collect::<Vec<_>>());
}

fn abroad() -> Audience {
    Audience::Partner(PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
    })
}

fn note(id: &str, markings: &[&str], refs: &[&str]) -> Value {
    json!({"type": "note", "spec_version": "2.1", "id": id, "created": T, "modified": T,
        "content": format!("note {id}"), "object_refs": refs, "object_marking_refs": markings})
}

fn identity(id: &str, markings: &[&str]) -> Value {
    json!({"type": "identity", "spec_version": "2.1", "id": id, "created": T, "modified": T,
        "name": format!("org {id}"), "identity_class": "organization",
        "object_marking_refs": markings})
}

/// Everything `who` receives of the collection through TAXII-style paging at `limit`,
/// following `next`: the bodies and the raw tokens.
fn read_all(n: &Node, who: &Audience, limit: usize) -> (Vec<Value>, Vec<String>) {
    read_via(&n.egress, n, who, limit)
}

/// [`read_all`] through the door `egress`.
fn read_via(egress: &Egress, n: &Node, who: &Audience, limit: usize) -> (Vec<Value>, Vec<String>) {
    let mut next = None;
    let mut objects = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..1000 {
        let t = egress
            .page(
                who,
                "test",
                &PageQuery {
                    collection_id: n.collection.clone(),
                    filter: ObjectFilter::default(),
                    limit,
                    next: next.clone(),
                    want_body: true,
                    max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
                },
            )
            .unwrap();
        objects.extend(
            t.entries
                .iter()
                .map(|e| serde_json::from_str::<Value>(e.body.as_deref().unwrap()).unwrap()),
        );
        match t.next {
            Some(tok) if t.more => {
                tokens.push(tok.clone());
                next = Some(tok);
            }
            _ => return (objects, tokens),
        }
    }
    panic!("paging did not end");
}

fn ids(objects: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn tlp_by_content_under_a_producers_id_is_enforced_and_unknown_markings_withhold() {
    let n = node();
    put(
        &n,
        &[
            json!({"type": "marking-definition", "spec_version": "2.1", "id": OWN_RED_V1,
                "created": T, "definition_type": "tlp", "definition": {"tlp": "red"}}),
            json!({"type": "marking-definition", "spec_version": "2.1", "id": OWN_RED_V2,
                "created": T, "name": "red for us",
                "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":
                    {"extension_type": "property-extension", "tlp_2_0": "red"}}}),
            note(
                "note--00000000-0000-4000-8000-000000000001",
                &[OWN_RED_V1],
                &[],
            ),
            note(
                "note--00000000-0000-4000-8000-000000000002",
                &[OWN_RED_V2],
                &[],
            ),
            // A RED marking placed before a CLEAR one: the strictest decides.
            note(
                "note--00000000-0000-4000-8000-000000000003",
                &[OWN_RED_V1, CLEAR],
                &[],
            ),
            note(
                "note--00000000-0000-4000-8000-000000000004",
                &[UNKNOWN_MARKING],
                &[],
            ),
            note("note--00000000-0000-4000-8000-000000000005", &[CLEAR], &[]),
        ]
        .map(|mut v| {
            // object_refs must be non-empty: point the notes at the CLEAR one.
            if v["type"] == "note" {
                v["object_refs"] = json!(["note--00000000-0000-4000-8000-000000000005"]);
            }
            v
        }),
    );
    let (got, _) = read_all(&n, &abroad(), 1000);
    // The two producer-id TLP definitions themselves go (they are public); of the notes,
    // only the CLEAR one.
    assert_eq!(
        ids(&got),
        [
            OWN_RED_V1,
            OWN_RED_V2,
            "note--00000000-0000-4000-8000-000000000005"
        ]
    );
    // The door says why the unknown marking withholds.
    let entry = n
        .store
        .entries(
            &n.collection,
            &ObjectFilter {
                ids: vec!["note--00000000-0000-4000-8000-000000000004".into()],
                ..ObjectFilter::default()
            },
            &concord_store::PageRequest {
                limit: 1,
                after: None,
            },
            true,
        )
        .unwrap()
        .entries
        .remove(0);
    let Audience::Partner(p) = abroad() else {
        unreachable!()
    };
    let x = n.egress.explain(&p, &n.collection, &entry).unwrap();
    assert!(x.sent.is_none());
    assert!(x.withheld.unwrap().contains(UNKNOWN_MARKING));
}

#[test]
fn references_to_withheld_objects_are_removed_or_withhold_the_referrer() {
    let n = node();
    let red_identity = "identity--00000000-0000-4000-8000-00000000000a";
    let clear_identity = "identity--00000000-0000-4000-8000-00000000000b";
    let rel = |id: &str, target: &str| {
        json!({"type": "relationship", "spec_version": "2.1", "id": id, "created": T,
            "modified": T, "relationship_type": "related-to", "source_ref": clear_identity,
            "target_ref": target, "object_marking_refs": [CLEAR]})
    };
    let mut n1 = note(
        "note--00000000-0000-4000-8000-000000000011",
        &[CLEAR],
        &[red_identity, clear_identity],
    );
    n1["created_by_ref"] = json!(red_identity);
    put(
        &n,
        &[
            identity(red_identity, &[RED]),
            identity(clear_identity, &[CLEAR]),
            n1,
            // Only reference withheld: the note would be invalid without it.
            note(
                "note--00000000-0000-4000-8000-000000000012",
                &[CLEAR],
                &[red_identity],
            ),
            rel(
                "relationship--00000000-0000-4000-8000-000000000013",
                red_identity,
            ),
            rel(
                "relationship--00000000-0000-4000-8000-000000000014",
                clear_identity,
            ),
        ],
    );
    for limit in [1, 1000] {
        let (got, tokens) = read_all(&n, &abroad(), limit);
        let text = serde_json::to_string(&got).unwrap() + &tokens.concat();
        assert!(!text.contains(red_identity), "limit {limit}: {text}");
        assert_eq!(
            ids(&got),
            [
                clear_identity,
                "note--00000000-0000-4000-8000-000000000011",
                "relationship--00000000-0000-4000-8000-000000000014"
            ],
            "limit {limit}"
        );
        let kept = got.iter().find(|o| o["type"] == "note").unwrap();
        assert_eq!(kept["object_refs"], json!([clear_identity]));
        assert!(kept.get("created_by_ref").is_none());
        for o in &got {
            concord_stix::validate_object(o).unwrap_or_else(|v| panic!("{v:?}: {o}"));
        }
    }
    // The operator receives everything as stored.
    let (all, _) = read_all(&n, &Audience::Operator("admin".into()), 2);
    assert_eq!(all.len(), 6);
}

#[test]
fn rewritten_scos_get_keyed_ids_that_hold_on_every_page_and_door() {
    let n = node();
    let email_id = "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934"; // john@example.com
    let observed = |id: &str| {
        json!({"type": "observed-data", "spec_version": "2.1", "id": id, "created": T,
            "modified": T, "first_observed": T, "last_observed": T, "number_observed": 1,
            "object_refs": [email_id], "object_marking_refs": [CLEAR]})
    };
    put(
        &n,
        &[
            json!({"type": "email-addr", "spec_version": "2.1", "id": email_id,
            "value": "john@example.com", "object_marking_refs": [CLEAR]}),
        ],
    );
    // The observed-data objects come in later batches: never on the SCO's page at limit 1.
    put(
        &n,
        &[observed(
            "observed-data--00000000-0000-4000-8000-000000000021",
        )],
    );
    put(
        &n,
        &[observed(
            "observed-data--00000000-0000-4000-8000-000000000022",
        )],
    );
    let (one, tokens) = read_all(&n, &abroad(), 1);
    let (all, _) = read_all(&n, &abroad(), 1000);
    assert_eq!(one, all);
    let text = serde_json::to_string(&one).unwrap() + &tokens.concat();
    assert!(
        !text.contains(email_id) && !text.contains("john@example.com"),
        "{text}"
    );
    let sco = one.iter().find(|o| o["type"] == "email-addr").unwrap();
    for od in one.iter().filter(|o| o["type"] == "observed-data") {
        assert_eq!(od["object_refs"], json!([sco["id"]]));
    }
    // match[id] is answered on the ids the partner sees: the stored id finds nothing, the
    // keyed id finds the copy.
    let by_id = |id: &str| {
        n.egress
            .page(
                &abroad(),
                "test",
                &PageQuery {
                    collection_id: n.collection.clone(),
                    filter: ObjectFilter {
                        ids: vec![id.to_owned()],
                        ..ObjectFilter::default()
                    },
                    limit: 10,
                    next: None,
                    want_body: false,
                    max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
                },
            )
            .unwrap()
            .entries
    };
    assert!(by_id(email_id).is_empty());
    let found = by_id(sco["id"].as_str().unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, sco["id"].as_str().unwrap());
}

#[test]
fn stored_duplicate_member_names_are_never_sent() {
    let n = node();
    // Stored before the ingest refused them: "description" twice, a raw e-mail address
    // first and a harmless text last (what a lenient parser decides on).
    let body = format!(
        r#"{{"type":"note","spec_version":"2.1","id":"note--00000000-0000-4000-8000-000000000031","created":"{T}","modified":"{T}","content":"grace@corp.cn","content":"nothing","object_refs":["note--00000000-0000-4000-8000-000000000031"],"object_marking_refs":["{CLEAR}"]}}"#
    );
    store_raw(&n, &[body]);
    let (got, _) = read_all(&n, &abroad(), 10);
    assert!(got.is_empty(), "{got:?}");
    // The operator gets the stored bytes, as stored.
    let (all, _) = read_all(&n, &Audience::Operator("admin".into()), 10);
    assert_eq!(all.len(), 1);
}

#[test]
fn next_tokens_are_opaque_and_refused_when_forged_edited_or_foreign() {
    let n = node();
    let objects: Vec<Value> = (0..5)
        .map(|i| {
            let marking = if i % 2 == 0 { RED } else { CLEAR };
            identity(
                &format!("identity--00000000-0000-4000-8000-0000000000{i:02}"),
                &[marking],
            )
        })
        .collect();
    put(&n, &objects);
    let (got, tokens) = read_all(&n, &abroad(), 1);
    assert_eq!(got.len(), 2);
    assert!(!tokens.is_empty());
    for t in &tokens {
        // Nothing readable in a token: no id, no time.
        let raw =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, t).unwrap();
        let lossy = String::from_utf8_lossy(&raw);
        assert!(
            !lossy.contains("identity--") && !lossy.contains("0000-4000"),
            "{lossy}"
        );
    }
    let page = |who: &Audience, collection: &str, next: &str| {
        n.egress.page(
            who,
            "test",
            &PageQuery {
                collection_id: collection.to_owned(),
                filter: ObjectFilter::default(),
                limit: 1,
                next: Some(next.to_owned()),
                want_body: true,
                max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
            },
        )
    };
    let good = &tokens[0];
    assert!(page(&abroad(), &n.collection, good).is_ok());
    let other_partner = Audience::Partner(PartnerProfile {
        name: "anssi".into(),
        jurisdiction: "FR".into(),
        groups: vec!["eu-cert".into()],
    });
    let mut edited = good.clone().into_bytes();
    let last = edited.len() - 5;
    edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for (who, coll, tok) in [
        (abroad(), n.collection.clone(), edited.as_str()),
        (abroad(), n.collection.clone(), &good[..good.len() - 3]),
        (abroad(), "another-collection".to_owned(), good.as_str()),
        (other_partner, n.collection.clone(), good.as_str()),
        (
            Audience::Operator("admin".into()),
            n.collection.clone(),
            good.as_str(),
        ),
        (abroad(), n.collection.clone(), "AAAA"),
    ] {
        assert!(
            matches!(page(&who, &coll, tok), Err(EgressError::BadCursor)),
            "{tok} for {who:?} on {coll}"
        );
    }
}

#[test]
fn cycles_of_references_resolve_by_each_objects_own_rules() {
    let n = node();
    let (a, b, c) = (
        "note--00000000-0000-4000-8000-000000000041",
        "note--00000000-0000-4000-8000-000000000042",
        "note--00000000-0000-4000-8000-000000000043",
    );
    put(
        &n,
        &[
            // a and b refer to each other; c refers to itself and to the RED b2.
            note(a, &[CLEAR], &[b]),
            note(b, &[CLEAR], &[a]),
            note(
                c,
                &[CLEAR],
                &[c, "note--00000000-0000-4000-8000-000000000044"],
            ),
            note("note--00000000-0000-4000-8000-000000000044", &[RED], &[a]),
        ],
    );
    let (got, _) = read_all(&n, &abroad(), 1000);
    assert_eq!(ids(&got), [a, b, c]);
    let by = |id: &str| got.iter().find(|o| o["id"] == id).unwrap().clone();
    assert_eq!(by(a)["object_refs"], json!([b]));
    assert_eq!(by(b)["object_refs"], json!([a]));
    assert_eq!(by(c)["object_refs"], json!([c]));
}

#[test]
fn an_object_withheld_inside_a_cycle_is_not_referred_to_on_any_page() {
    let n = node();
    let (x, y, w, z) = (
        "relationship--00000000-0000-4000-8000-000000000051",
        "note--00000000-0000-4000-8000-000000000052",
        "note--00000000-0000-4000-8000-000000000053",
        "identity--00000000-0000-4000-8000-000000000054",
    );
    put(
        &n,
        &[
            // x is CLEAR by its own rules but withheld: its target z is RED (required).
            json!({"type": "relationship", "spec_version": "2.1", "id": x, "created": T,
                "modified": T, "relationship_type": "related-to", "source_ref": y,
                "target_ref": z, "object_marking_refs": [CLEAR]}),
            // y refers back to x: a cycle through an object that is withheld.
            note(y, &[CLEAR], &[x, w]),
            note(w, &[CLEAR], &[w]),
            identity(z, &[RED]),
        ],
    );
    // Every page size, and twice (the second time from the fates kept between requests).
    for limit in [1, 2, 1000, 1, 1000] {
        let (got, tokens) = read_all(&n, &abroad(), limit);
        let text = serde_json::to_string(&got).unwrap() + &tokens.concat();
        assert!(
            !text.contains(x) && !text.contains(z),
            "limit {limit}: {text}"
        );
        assert_eq!(ids(&got), [y, w], "limit {limit}");
        let yy = got.iter().find(|o| o["id"] == y).unwrap();
        assert_eq!(yy["object_refs"], json!([w]));
    }
}

#[test]
fn fates_hold_across_pages_and_requests_and_optional_references_never_withhold_a_target() {
    let n = node();
    let (a, z) = (
        "identity--00000000-0000-4000-8000-000000000061",
        "identity--00000000-0000-4000-8000-000000000062",
    );
    let (x, p, q) = (
        "relationship--00000000-0000-4000-8000-000000000063",
        "attack-pattern--00000000-0000-4000-8000-000000000064",
        "attack-pattern--00000000-0000-4000-8000-000000000065",
    );
    let (n1, n2, r2, r3) = (
        "note--00000000-0000-4000-8000-000000000066",
        "note--00000000-0000-4000-8000-000000000067",
        "relationship--00000000-0000-4000-8000-000000000068",
        "relationship--00000000-0000-4000-8000-000000000069",
    );
    let rel = |id: &str, source: &str, target: &str| {
        json!({"type": "relationship", "spec_version": "2.1", "id": id, "created": T,
            "modified": T, "relationship_type": "related-to", "source_ref": source,
            "target_ref": target, "object_marking_refs": [CLEAR]})
    };
    // An attack pattern whose only link to the RED identity is an optional custom reference.
    let pattern = |id: &str| {
        json!({"type": "attack-pattern", "spec_version": "2.1", "id": id, "created": T,
            "modified": T, "name": format!("pattern {id}"), "x_acme_related_refs": [z],
            "object_marking_refs": [CLEAR]})
    };
    // One batch after the other: the page order follows `date_added`. x is decided as an
    // entry of an early page (withheld: its required target is RED) before the notes that
    // refer to it; q is first reached as a reference (from r3) and only later as an entry.
    put(
        &n,
        &[identity(a, &[CLEAR]), identity(z, &[RED]), rel(x, a, z)],
    );
    put(&n, &[pattern(p)]);
    put(
        &n,
        &[
            note(n1, &[CLEAR], &[x]),
            note(n2, &[CLEAR], &[x, p]),
            rel(r2, p, a),
            rel(r3, q, a),
        ],
    );
    put(&n, &[pattern(q)]);
    // Twice at each size: the second time from the fates kept between requests.
    for limit in [1, 1, 1000, 1000, 2] {
        let (got, tokens) = read_all(&n, &abroad(), limit);
        let text = serde_json::to_string(&got).unwrap() + &tokens.concat();
        assert!(
            !text.contains(x) && !text.contains(z),
            "limit {limit}: {text}"
        );
        let mut want = vec![a, p, q, n2, r2, r3];
        want.sort();
        assert_eq!(ids(&got), want, "limit {limit}");
        let by = |id: &str| got.iter().find(|o| o["id"] == id).unwrap().clone();
        assert_eq!(by(n2)["object_refs"], json!([p]), "limit {limit}");
        for id in [p, q] {
            assert!(by(id).get("x_acme_related_refs").is_none(), "limit {limit}");
        }
        assert_eq!(by(r3)["source_ref"], json!(q), "limit {limit}");
    }
}

#[test]
fn a_renamed_sco_is_found_by_its_keyed_id_in_a_collection_larger_than_any_scan() {
    let n = node();
    // 1,500 e-mail addresses (more than a page's scan budget of 1,000 entries), each
    // pseudonymised across the border, so each travels under a keyed id.
    let objects: Vec<Value> = (0..1500)
        .map(|i| {
            let value = format!("person{i}@corp.cn");
            let id = format!(
                "email-addr--{}",
                uuid::Uuid::new_v5(
                    &uuid::Uuid::parse_str("00abedb4-aa42-466c-9c01-fed23315a9b7").unwrap(),
                    format!("{{\"value\":\"{value}\"}}").as_bytes()
                )
            );
            json!({"type": "email-addr", "spec_version": "2.1", "id": id, "value": value,
                "object_marking_refs": [CLEAR]})
        })
        .collect();
    put(&n, &objects);
    let (all, _) = read_all(&n, &abroad(), 1000);
    assert_eq!(all.len(), 1500);
    // The copies that come last in page order: beyond any scan from the start.
    for sco in &all[1490..] {
        let keyed = sco["id"].as_str().unwrap();
        assert!(
            !objects.iter().any(|o| o["id"] == keyed),
            "{keyed} is a stored id"
        );
        let t = n
            .egress
            .page(
                &abroad(),
                "test",
                &PageQuery {
                    collection_id: n.collection.clone(),
                    filter: ObjectFilter {
                        ids: vec![keyed.to_owned()],
                        ..ObjectFilter::default()
                    },
                    limit: 1,
                    next: None,
                    want_body: true,
                    max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
                },
            )
            .unwrap();
        assert_eq!(t.entries.len(), 1, "{keyed}");
        assert_eq!(t.entries[0].id, keyed);
        let body: Value = serde_json::from_str(t.entries[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(&body, sco);
    }
}

/// Issue 16, item 3: a page is capped in bytes of bodies as well as in objects. Each page
/// holds at most `max_bytes` of bodies (or a single object larger than it), ends with `more`
/// and a `next`, and the pages together give every object once, in order: for the operator
/// and for a partner alike.
#[test]
fn pages_are_capped_in_bytes_and_resume_exactly() {
    let n = node();
    let objects: Vec<Value> = (0..12)
        .map(|i| {
            let mut v = identity(
                &format!("identity--{i:08x}-0000-4000-8000-000000000000"),
                &[CLEAR],
            );
            // One object far over the cap: it still goes, alone on its page.
            let size = if i == 5 { 5000 } else { 300 };
            v["description"] = json!("x".repeat(size));
            v
        })
        .collect();
    put(&n, &objects);
    let cap = 1000;
    for who in [Audience::Operator("admin".into()), abroad()] {
        let mut next = None;
        let mut got = Vec::new();
        let mut pages = 0;
        loop {
            let t = n
                .egress
                .page(
                    &who,
                    "test",
                    &PageQuery {
                        collection_id: n.collection.clone(),
                        filter: ObjectFilter::default(),
                        limit: 100,
                        next: next.take(),
                        want_body: true,
                        max_bytes: cap,
                    },
                )
                .unwrap();
            pages += 1;
            let bytes: usize = t
                .entries
                .iter()
                .map(|e| e.body.as_ref().unwrap().len())
                .sum();
            assert!(!t.entries.is_empty(), "{who:?}: an empty page");
            assert!(
                bytes <= cap || t.entries.len() == 1,
                "{who:?}: {bytes} bytes in {} objects",
                t.entries.len()
            );
            got.extend(t.entries.iter().map(|e| e.id.clone()));
            match t.next {
                Some(tok) if t.more => next = Some(tok),
                _ => break,
            }
            assert!(pages < 100, "{who:?}: no end");
        }
        let want: Vec<String> = objects
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want, "{who:?}: every object once");
        // ~550-byte identities under a 1,000-byte cap: two per page, the big one alone.
        assert!(pages >= 6, "{who:?}: {pages} pages");
    }
}

#[test]
fn a_delete_is_seen_by_the_next_request_not_after_the_fates_expire() {
    let n = node();
    let (a, x, r) = (
        "identity--00000000-0000-4000-8000-000000000071",
        "identity--00000000-0000-4000-8000-000000000072",
        "relationship--00000000-0000-4000-8000-000000000073",
    );
    let t2 = "2024-06-01T00:00:00.000Z";
    let mut x_red = identity(x, &[RED]);
    x_red["modified"] = json!(t2);
    put(&n, &[identity(a, &[CLEAR]), identity(x, &[CLEAR])]);
    put(&n, &[x_red]);
    put(
        &n,
        &[
            json!({"type": "relationship", "spec_version": "2.1", "id": r, "created": T,
            "modified": T, "relationship_type": "related-to", "source_ref": a,
            "target_ref": x, "object_marking_refs": [CLEAR]}),
        ],
    );
    // The newest version of x is RED: the relationship, which needs it, is withheld.
    let (got, _) = read_all(&n, &abroad(), 1);
    assert_eq!(ids(&got), [a]);
    // The RED version is deleted: x is CLEAR again, and the very next request knows it (the
    // fates kept between requests follow the collection's version, which a delete moves).
    let removed = n
        .store
        .delete_object(
            &n.collection,
            x,
            &ObjectFilter {
                versions: vec![concord_store::VersionSelector::At(
                    concord_store::Timestamp::parse(t2).unwrap(),
                )],
                ..ObjectFilter::default()
            },
        )
        .unwrap();
    assert_eq!(removed, 1);
    let (got, _) = read_all(&n, &abroad(), 1);
    assert_eq!(ids(&got), [a, x, r]);
}

/// Tombstones (issue 21): a deletion is told only to an audience that received the deleted
/// version, under the id it received (the keyed id of a rewritten SCO, never the stored
/// one), once; the cursor is bound to the collection and the audience.
#[test]
fn tombstones_name_only_what_the_audience_received_as_it_received_it() {
    let n = node();
    let email_id = "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934"; // john@example.com
    let note_id = "note--00000000-0000-4000-8000-000000000031";
    put(
        &n,
        &[
            json!({"type": "email-addr", "spec_version": "2.1", "id": email_id,
            "value": "john@example.com", "object_marking_refs": [CLEAR]}),
            note(note_id, &[CLEAR], &[email_id]),
        ],
    );
    let (received, tokens) = read_all(&n, &abroad(), 1);
    let keyed = received.iter().find(|o| o["type"] == "email-addr").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(keyed, email_id);
    // Another partner that never read the collection.
    let other = Audience::Partner(PartnerProfile {
        name: "other".into(),
        jurisdiction: "FR".into(),
        groups: Vec::new(),
    });
    // Deleted as the TAXII DELETE does: the rows, then their `delete` records.
    let door = concord_egress::Door {
        door: "taxii-delete",
        partner: "admin",
        person: None,
        collection: &n.collection,
        policy_version: concord_egress::BASE_POLICY_VERSION,
    };
    let held = n
        .store
        .entries(
            &n.collection,
            &ObjectFilter::default(),
            &concord_store::PageRequest {
                limit: 10,
                after: None,
            },
            false,
        )
        .unwrap()
        .entries;
    let mut records = Vec::new();
    for e in &held {
        assert_eq!(
            n.store
                .delete_versions(&n.collection, &e.id, &[e.vid])
                .unwrap(),
            1
        );
        records.push(door.record("delete", e.vid, &e.id, e.version(), "deleted", Vec::new()));
    }
    n.store.append_audit(&records).unwrap();

    let page = n.egress.tombstones(&abroad(), &n.collection, None).unwrap();
    let mut got: Vec<&str> = page.tombstones.iter().map(|t| t.id.as_str()).collect();
    got.sort();
    let mut want = vec![keyed.as_str(), note_id];
    want.sort();
    assert_eq!(got, want);
    assert!(!page.more);
    let none = n.egress.tombstones(&other, &n.collection, None).unwrap();
    assert!(none.tombstones.is_empty(), "{:?}", none.tombstones);
    // Through one door only (sync push sends the deletes of what it pushed): the reads
    // above went through door `test`, none through `sync-push`. Nothing of it is recorded.
    let via = |door: &str| {
        n.egress
            .tombstones_unrecorded(&abroad(), &n.collection, None, Some(door))
            .unwrap()
            .tombstones
    };
    assert!(via("sync-push").is_empty());
    let by_test = via("test");
    assert_eq!(by_test, page.tombstones);
    // An SCO's version is the `date_added` it had here: named so.
    for t in &by_test {
        assert_eq!(
            concord_egress::names_date_added(&t.id),
            t.id.starts_with("email-addr--"),
            "{}",
            t.id
        );
    }
    let all = n
        .egress
        .tombstones(&Audience::Operator("admin".into()), &n.collection, None)
        .unwrap();
    let mut stored: Vec<&str> = all.tombstones.iter().map(|t| t.id.as_str()).collect();
    stored.sort();
    let mut want = vec![email_id, note_id];
    want.sort();
    assert_eq!(stored, want);
    // Once: nothing after the cursor. Another audience's cursor, or a TAXII `next`, is no
    // tombstone cursor.
    let again = n
        .egress
        .tombstones(&abroad(), &n.collection, Some(&page.next))
        .unwrap();
    assert!(again.tombstones.is_empty());
    assert!(matches!(
        n.egress.tombstones(&other, &n.collection, Some(&page.next)),
        Err(EgressError::BadCursor)
    ));
    assert!(matches!(
        n.egress
            .tombstones(&abroad(), &n.collection, Some(&tokens[0])),
        Err(EgressError::BadCursor)
    ));
    // What was told is audited.
    let told = n
        .store
        .audit_entries(&concord_store::AuditQuery {
            partner: Some("bsi".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(
        told.iter()
            .any(|e| e.door == "taxii-tombstones" && e.count == 2)
    );
    assert_eq!(
        told.iter().filter(|e| e.door == "taxii-tombstones").count(),
        1,
        "the unrecorded reads were recorded"
    );
}

const PAP_RED: &str = "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e";
const PAP_GREEN: &str = "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9";

/// The PAP gate of the automated doors (issue 19), with the OASIS marking ids (known without
/// their definitions being held): a PAP:RED object goes by the doors a person reads and by no
/// automated door (feeds, webhook, stream, api-match); what refers to it through an optional
/// reference goes without the reference there; a PAP:GREEN object goes everywhere. The
/// decision is the same on every page, and the fates kept between requests are not shared
/// between the two kinds of door.
#[test]
fn pap_red_leaves_by_no_automated_door_and_references_follow() {
    let n = node();
    let red = note(
        "note--9a000001-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        &[CLEAR, PAP_RED],
        &["identity--9a000000-8ff6-4a8b-9c2f-6e5a3b1f0d11"],
    );
    let green = note(
        "note--9a000002-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        &[CLEAR, PAP_GREEN],
        &["identity--9a000000-8ff6-4a8b-9c2f-6e5a3b1f0d11"],
    );
    let report = json!({"type": "report", "spec_version": "2.1",
        "id": "report--9a000003-8ff6-4a8b-9c2f-6e5a3b1f0d11", "created": T, "modified": T,
        "name": "r", "published": T, "object_marking_refs": [CLEAR],
        "object_refs": [red["id"], green["id"]]});
    put(
        &n,
        &[
            identity("identity--9a000000-8ff6-4a8b-9c2f-6e5a3b1f0d11", &[CLEAR]),
            red.clone(),
            green.clone(),
            report,
        ],
    );
    let who = abroad();
    let through = |door: &str| -> Vec<Value> {
        let (t, _) = n
            .egress
            .scan(
                &who,
                door,
                &n.collection,
                &ObjectFilter::default(),
                None,
                100,
                true,
            )
            .unwrap();
        t.entries
            .iter()
            .map(|e| serde_json::from_str(e.body.as_deref().unwrap()).unwrap())
            .collect()
    };
    for door in ["taxii-objects", "export", "sync-push", "web-list"] {
        let got = through(door);
        assert_eq!(got.len(), 4, "{door}");
        let report = got.iter().find(|o| o["type"] == "report").unwrap();
        assert_eq!(report["object_refs"].as_array().unwrap().len(), 2, "{door}");
    }
    for door in [
        "feed-suricata",
        "feed-rpz",
        "webhook",
        "stream",
        "api-match",
    ] {
        let got = through(door);
        let got_ids = ids(&got);
        assert!(
            !got_ids.contains(&red["id"].as_str().unwrap().to_owned()),
            "{door}"
        );
        assert!(
            got_ids.contains(&green["id"].as_str().unwrap().to_owned()),
            "{door}"
        );
        let report = got.iter().find(|o| o["type"] == "report").unwrap();
        assert_eq!(report["object_refs"], json!([green["id"]]), "{door}");
    }
    // The read doors again, after the automated ones filled the fate cache: unchanged.
    assert_eq!(through("taxii-objects").len(), 4);
    // Why, naming the PAP level, the limit and the door.
    let explained = n
        .egress
        .explain_at(
            &PartnerProfile {
                name: "bsi".into(),
                jurisdiction: "DE".into(),
                groups: vec!["eu-cert".into()],
            },
            &n.collection,
            &n.store
                .entries(
                    &n.collection,
                    &ObjectFilter {
                        ids: vec![red["id"].as_str().unwrap().to_owned()],
                        ..ObjectFilter::default()
                    },
                    &concord_store::PageRequest {
                        limit: 1,
                        after: None,
                    },
                    true,
                )
                .unwrap()
                .entries[0],
            "webhook",
        )
        .unwrap();
    let why = explained.withheld.unwrap();
    assert!(
        why.contains("PAP:RED is stricter than PAP:AMBER") && why.contains("webhook"),
        "{why}"
    );
    assert_eq!(explained.steps[0].rule, "agreement");
}

/// Decisions on page entries kept between requests (issue 17, the partner page's cost): a
/// collection read again gives the same objects, byte for byte, as the first read and as a
/// door that keeps none, rewritten copies (a reference removed, personal data redacted)
/// included; a change of the collection's sharing is seen by the very next request; the
/// bytes kept never cross the limit (`decision_cache_bytes`), and a limit of 0 keeps none.
#[test]
fn kept_decisions_give_the_same_pages_within_their_limit() {
    let n = node();
    let red = "identity--00000000-0000-4000-8000-0000000000e1";
    let mut objects: Vec<Value> = (0..30)
        .map(|i| {
            identity(
                &format!("identity--00000000-0000-4000-8000-0000000001{i:02}"),
                &[CLEAR],
            )
        })
        .collect();
    objects.push(identity(red, &[RED]));
    // Refers to a withheld object: sent rewritten, the reference removed.
    objects.push(note(
        "note--00000000-0000-4000-8000-0000000000e2",
        &[CLEAR],
        &["identity--00000000-0000-4000-8000-000000000100", red],
    ));
    // Personal data across a border: sent rewritten, redacted.
    let mut mail = note(
        "note--00000000-0000-4000-8000-0000000000e3",
        &[CLEAR],
        &["identity--00000000-0000-4000-8000-000000000101"],
    );
    mail["content"] = json!("write to li.wei@example.cn for the samples");
    objects.push(mail);
    // No TLP marking: the collection's default_tlp decides it.
    let mut unmarked = identity("identity--00000000-0000-4000-8000-0000000000e4", &[]);
    unmarked
        .as_object_mut()
        .unwrap()
        .remove("object_marking_refs");
    objects.push(unmarked);
    put(&n, &objects);
    let policy = n.egress.policy().clone();
    let none = Egress::new(n.store.clone(), policy.clone()).with_decision_cache(0);
    let (want, _) = read_via(&none, &n, &abroad(), 7);
    assert_eq!(none.decision_cache_bytes(), 0, "a limit of 0 keeps nothing");
    assert_eq!(want.len(), 33, "all but the RED identity");
    let text = serde_json::to_string(&want).unwrap();
    assert!(
        !text.contains(red),
        "the reference to the RED identity is removed"
    );
    assert!(
        !text.contains("li.wei@example.cn"),
        "the address is redacted"
    );
    // The default door, twice: the second read comes from the decisions kept.
    let first = read_via(&n.egress, &n, &abroad(), 7).0;
    let kept = n.egress.decision_cache_bytes();
    assert!(kept > 0, "decisions are kept");
    let second = read_via(&n.egress, &n, &abroad(), 7).0;
    assert_eq!(first, want);
    assert_eq!(second, want);
    // A small limit: some decisions kept, never more bytes than it allows.
    let limit = kept / 3;
    let small = Egress::new(n.store.clone(), policy).with_decision_cache(limit);
    for _ in 0..3 {
        assert_eq!(read_via(&small, &n, &abroad(), 7).0, want);
        let used = small.decision_cache_bytes();
        assert!(
            used > 0 && used <= limit,
            "{used} bytes kept, limit {limit}"
        );
    }
    // The collection's default_tlp becomes RED: the object without a TLP marking is
    // withheld from the next request on, by every door.
    let sharing = CollectionSharing {
        groups: None,
        recipients: Vec::new(),
        default_tlp: Tlp::Red,
        addressed: Default::default(),
        grants: Default::default(),
    };
    n.store
        .set_setting(&sharing_setting_key(&n.collection), &sharing.to_json())
        .unwrap();
    let after = read_via(&n.egress, &n, &abroad(), 7).0;
    assert_eq!(after.len(), 32);
    assert!(!ids(&after).contains(&"identity--00000000-0000-4000-8000-0000000000e4".to_owned()));
    assert_eq!(after, read_via(&none, &n, &abroad(), 7).0);
}
