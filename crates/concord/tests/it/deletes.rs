//! Issue 21, item 4: deletes propagate through sync. Real nodes on loopback (`concord serve`
//! over their own SQLite files, `concord sync` processes), and a hostile peer: a small HTTP
//! server on loopback that answers what the test tells it.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{Node, TAXII};
use crate::sync::{GREEN, cli_ok, held, import, indicator, partner, sync};

const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const DEL: &str = "indicator--d0d0d0d0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const KEEP: &str = "indicator--c0c0c0c0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const GONE: &str = "indicator--a0a0a0a0-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const LOCAL: &str = "indicator--5ec2e700-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const EMAIL: &str = "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934";
const V1: &str = "2024-01-01T00:00:00.000Z";
const V2: &str = "2024-02-01T00:00:00.000Z";

/// The ids of the objects of `type_` a node holds in `intel`.
fn ids_of(node: &Node, type_: &str) -> Vec<String> {
    held(node, "intel")
        .keys()
        .filter(|(id, _)| id.starts_with(&format!("{type_}--")))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The doors and partners of the audit entries that name `id` at `node`.
fn audited(node: &Node, id: &str) -> Vec<(String, String)> {
    let audit: Value =
        serde_json::from_str(&cli_ok(node, &["audit", "show", "--object", id, "--json"])).unwrap();
    audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["door"].as_str().unwrap_or_default().to_owned(),
                e["partner"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A peer that is only pushed to (B never pulls, and A's partner at B may only write)
/// learns of A's deletes at A's next round: a TAXII DELETE per version A pushed and then
/// deleted, under the id B received (the pseudonymised e-mail address's keyed id), once. A
/// version A never pushed (a RED indicator, also held at B from B's own import) is not
/// deleted at B, and a version B no longer holds answers 404, which counts as done.
#[test]
fn a_push_round_sends_the_deletes_of_what_it_pushed() {
    let a = Node::init_with(&["--jurisdiction", "CN"]);
    let mut del_v2 = indicator("d0d0d0d0", "deleted.example", &[GREEN]);
    del_v2["modified"] = json!(V2);
    del_v2["name"] = json!("second version");
    import(
        &a,
        "intel",
        &[
            indicator("d0d0d0d0", "deleted.example", &[GREEN]),
            del_v2,
            indicator("c0c0c0c0", "keep.example", &[GREEN]),
            indicator("a0a0a0a0", "gone.example", &[GREEN]),
            indicator("5ec2e700", "local.example", &[RED]),
            json!({"type": "email-addr", "spec_version": "2.1", "id": EMAIL,
                   "value": "john@example.com", "object_marking_refs": [GREEN]}),
        ],
    );
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&b, &["collection", "create", "intel"]);
    // B holds the indicator A keeps to itself, from its own import.
    import(
        &b,
        "intel",
        &[indicator("5ec2e700", "local.example", &[GREEN])],
    );
    let a_at_b = partner(&b, "a-org", "CN", &["--write", "intel"]);
    let sb = b.serve();
    partner(&a, "b", "DE", &["--read", "intel"]);
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
            "--push",
            "--partner",
            "b",
            "--token-file",
            a_at_b.to_str().unwrap(),
        ],
    );
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pushed"], 5, "{}", reports[0]);
    assert_eq!(reports[0]["push_deleted"], 0, "{}", reports[0]);
    let at_b = held(&b, "intel");
    for key in [(DEL, V1), (DEL, V2), (KEEP, V1), (GONE, V1), (LOCAL, V1)] {
        assert!(
            at_b.contains_key(&(key.0.to_owned(), key.1.to_owned())),
            "{key:?} not at B"
        );
    }
    // Across the border the address went pseudonymised, under a keyed id.
    let keyed = ids_of(&b, "email-addr");
    assert_eq!(keyed.len(), 1, "{keyed:?}");
    assert_ne!(keyed[0], EMAIL);

    // B's operator deletes one of them itself; A deletes one version of one indicator, the
    // address, that one, and the indicator it never pushed.
    let r = sb.delete(&format!(
        "/concord/collections/intel/objects/{GONE}/?match[version]=all"
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let sa = a.serve();
    for path in [
        format!("{DEL}/?match[version]={V1}"),
        format!("{EMAIL}/"),
        format!("{GONE}/?match[version]=all"),
        format!("{LOCAL}/?match[version]=all"),
    ] {
        let r = sa.delete(&format!("/concord/collections/intel/objects/{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r["push_deleted"], 2, "{r}");
    assert_eq!(r["push_delete_absent"], 1, "{r}");
    assert_eq!(r["push_failures"], json!([]), "{r}");
    assert_eq!(r["pushed"], 0, "{r}");
    let at_b = held(&b, "intel");
    let has = |id: &str, v: &str| at_b.contains_key(&(id.to_owned(), v.to_owned()));
    assert!(!has(DEL, V1), "the deleted version is still at B");
    assert!(has(DEL, V2), "the other version went too");
    assert!(has(KEEP, V1));
    assert!(
        has(LOCAL, V1),
        "B's own copy of what A never pushed was deleted"
    );
    assert!(
        ids_of(&b, "email-addr").is_empty(),
        "the keyed address is at B"
    );
    // B served the deletes to A's partner; A recorded each before it left.
    assert!(
        audited(&b, DEL).contains(&("taxii-delete".to_owned(), "a-org".to_owned())),
        "{:?}",
        audited(&b, DEL)
    );
    for id in [DEL, EMAIL, GONE] {
        let doors = audited(&a, id);
        assert!(
            doors.contains(&("sync-push-delete".to_owned(), "b".to_owned())),
            "{id}: {doors:?}"
        );
    }
    assert!(
        !audited(&a, LOCAL)
            .iter()
            .any(|(door, _)| door == "sync-push-delete")
    );
    // Each delete is sent once.
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["push_deleted"], 0, "{}", reports[0]);
    assert_eq!(reports[0]["push_delete_absent"], 0, "{}", reports[0]);
    drop(sa);
}

/// A tombstone of an SCO (no `modified`: named by the producer's `date_added`, which is not
/// its version on the receiver) deletes the receiver's copy, like any other.
#[test]
fn a_tombstone_of_an_sco_deletes_the_copy_received() {
    const SCO: &str = "domain-name--3c10e5b3-9d1a-5a7e-8c38-5e1f3b1e0a11";
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[
            json!({"type": "domain-name", "spec_version": "2.1", "id": SCO,
                   "value": "sco.example", "object_marking_refs": [GREEN]}),
            indicator("c0c0c0c0", "keep.example", &[GREEN]),
        ],
    );
    let c_key = partner(&a, "c", "SA", &["--read", "intel"]);
    let sa = a.serve();
    let c = Node::init_with(&["--jurisdiction", "SA"]);
    // C's operator holds its own copy of the indicator (the same bytes): a version held
    // from elsewhere, which A's tombstone must not take (attack on h-del, #2).
    import(
        &c,
        "intel",
        &[indicator("c0c0c0c0", "keep.example", &[GREEN])],
    );
    cli_ok(
        &c,
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
            c_key.to_str().unwrap(),
        ],
    );
    let (code, reports) = sync(&c, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    assert_eq!(reports[0]["pulled_present"], 1, "{}", reports[0]);
    assert_eq!(ids_of(&c, "domain-name").len(), 1);

    for id in [SCO, KEEP] {
        let r = sa.delete(&format!("/concord/collections/intel/objects/{id}/"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (code, reports) = sync(&c, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["deleted"], 1, "{}", reports[0]);
    assert!(ids_of(&c, "domain-name").is_empty());
    assert_eq!(ids_of(&c, "indicator"), [KEEP], "C's own copy stays");
}

/// A partner may delete what its own write stored, not a row that was there before its
/// POST of the same bytes (`already-present`): else anyone who can reproduce an object's
/// bytes (public ATT&CK, a shared feed, an SCO from its value) could delete it, withheld
/// ones included (attack on h-del, #1).
#[test]
fn a_post_of_the_same_bytes_gives_no_right_to_delete() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let red = indicator("a0a0a0a0", "red.example", &[RED]);
    let green = indicator("c0c0c0c0", "keep.example", &[GREEN]);
    import(&a, "intel", &[red.clone(), green.clone()]);
    let key = partner(&a, "w", "DE", &["--read", "intel", "--write", "intel"]);
    let key = std::fs::read_to_string(key).unwrap();
    let sa = a.serve();
    let auth = format!("Bearer {key}");
    for (object, id) in [(&red, GONE), (&green, KEEP)] {
        let body = json!({"objects": [object]}).to_string();
        let r = sa.request(
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
        let r = sa.request(
            "DELETE",
            &format!("/concord/collections/intel/objects/{id}/"),
            &[("Authorization", &auth), ("Accept", TAXII)],
            None,
        );
        if id == GONE {
            assert_eq!(
                r.status, 404,
                "the withheld RED row is not the partner's: {}",
                r.body
            );
        } else {
            // A version it can read it may delete, as before (TAXII 2.1 §5.7).
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    assert_eq!(ids_of(&a, "indicator"), [GONE], "the RED indicator stays");
}

/// A hostile peer on loopback: answers `GET …/collections/` with one collection `coll`,
/// `…/tombstones/` with whatever `tombstones` holds at the time, and `…/objects/` with an
/// envelope of what `objects` holds. Returns its base URL; the thread ends with the test
/// process.
fn hostile_peer(tombstones: Arc<Mutex<String>>, objects: Arc<Mutex<Value>>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let path = path.split('?').next().unwrap_or("/");
            let (status, body) = if path == "/api/collections/" {
                (
                    "200 OK",
                    json!({"collections": [{"id": "coll", "title": "hostile",
                                            "can_read": true, "can_write": false}]})
                    .to_string(),
                )
            } else if path.ends_with("/tombstones/") {
                ("200 OK", tombstones.lock().unwrap().clone())
            } else if path.ends_with("/objects/") {
                (
                    "200 OK",
                    json!({"more": false, "objects": objects.lock().unwrap().clone()}).to_string(),
                )
            } else {
                ("404 Not Found", json!({"title": "not found"}).to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {TAXII}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

/// A peer that answers the tombstones path with something that is not a tombstone list (a
/// catch-all HTML page; a list naming a version this node received from it but without the
/// `next` every answer carries) deletes nothing, and the round still pulls (attack a1,
/// commit 97fdda9).
#[test]
fn a_garbage_tombstones_answer_deletes_nothing_and_the_pull_goes_on() {
    let x = indicator("e1e1e1e1", "hostile.example", &[GREEN]);
    let x_id = x["id"].as_str().unwrap().to_owned();
    let answer = Arc::new(Mutex::new(
        "<html><body>Welcome to our portal</body></html>".to_owned(),
    ));
    let objects = Arc::new(Mutex::new(json!([x])));
    let base = hostile_peer(answer.clone(), objects.clone());
    let node = Node::init();
    cli_ok(&node, &["collection", "create", "intel"]);
    cli_ok(
        &node,
        &[
            "peer",
            "add",
            "evil",
            &base,
            "--api-root",
            "/api/",
            "--collection",
            "coll:intel",
            "--pull",
        ],
    );
    // A page that is not JSON: no tombstones read, the pull goes on.
    let (code, reports) = sync(&node, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    assert_eq!(reports[0]["deleted"], 0, "{}", reports[0]);
    assert_eq!(ids_of(&node, "indicator"), std::slice::from_ref(&x_id));
    // JSON naming the version the peer gave, but not a tombstone list (no `next`).
    *answer.lock().unwrap() =
        json!({"tombstones": [{"id": x_id, "version": V1}], "more": false}).to_string();
    let (code, reports) = sync(&node, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["deleted"], 0, "{}", reports[0]);
    assert_eq!(reports[0]["pulled_present"], 1, "{}", reports[0]);
    assert_eq!(ids_of(&node, "indicator"), std::slice::from_ref(&x_id));
    // The same list as a real answer deletes it: what kept it above was the answer's shape.
    // (The peer no longer serves it, or the pull after the deletion would bring it back.)
    *objects.lock().unwrap() = json!([]);
    *answer.lock().unwrap() =
        json!({"tombstones": [{"id": x_id, "version": V1}], "more": false, "next": "t1"})
            .to_string();
    let (code, reports) = sync(&node, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["deleted"], 1, "{}", reports[0]);
    assert!(ids_of(&node, "indicator").is_empty());
}
