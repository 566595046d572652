//! Attacks on the new doors of issue 19 and 20 by a hostile partner, with real HTTP on
//! loopback against real `concord serve` processes: each test is a finding, failing before
//! its fix (see the commit `attack fixes: …` that adds it).

use serde_json::{Value, json};

use concord_store::node_key::NodeKey;
use concord_sync::join::{self as doc, JoinRequest};

use crate::support::{Node, Server};
use crate::sync::{GREEN, cli_ok, import, indicator};

/// A join request for `inv`, signed by `key`, after `edit`.
fn join_request(
    inv: &doc::Invitation,
    key: &NodeKey,
    edit: impl FnOnce(&mut JoinRequest),
) -> String {
    let mut r = JoinRequest {
        kind: doc::REQUEST_TYPE.into(),
        version: doc::VERSION,
        invitation: inv.id.clone(),
        secret: inv.secret.clone(),
        inviter_key: inv.node_key.clone(),
        identity: doc::node_identity(
            &format!("identity--{}", uuid::Uuid::new_v4()),
            "2026-01-01T00:00:00.000Z",
            "CERT B",
            "soc@b.example",
        ),
        node_key: key.public_hex(),
        jurisdiction: Some("FR".into()),
        url: None,
        api_root: None,
        api_key: None,
        pull: vec![inv.collections[0].id.clone()],
        push: vec![],
        agreement: None,
        tls_pin_sha256: None,
        client_cert_sha256: None,
    };
    edit(&mut r);
    serde_json::to_string(&doc::sign_request(key, r)).unwrap()
}

/// `POST /concord/join/`: (status, content type, body).
fn post_join(base: &str, body: &str) -> (u16, String, Value) {
    let mut resp = Server::agent()
        .post(format!("{base}/concord/join/"))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        ctype,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// The join endpoint attacked over HTTP: hostile texts refused without consuming the
/// invitation; six requests racing with the secret admit one, and the inviting node's peer
/// keeps the winner's key file; without the secret, an unknown id, a wrong secret, a used
/// and an expired invitation answer alike.
#[test]
fn the_join_endpoint_under_attack() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f1111111", "attack.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let file = a.path().join("invite.json");
    cli_ok(
        &a,
        &[
            "invite",
            "--partner",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--url",
            &sa.base,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let inv = doc::read_invitation(&std::fs::read_to_string(&file).unwrap(), 0).unwrap();
    let db = || concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();

    // Hostile texts: refused, naming the field; nothing made, the invitation unused.
    let key = NodeKey::from_seed(&[40; 32]);
    for (field, body) in [
        (
            "identity.name",
            join_request(&inv, &key, |r| {
                r.identity["name"] = json!("\u{1b}]0;owned\u{7}")
            }),
        ),
        (
            "url",
            join_request(&inv, &key, |r| {
                r.url = Some("http://b.example\r\nX-Injected: 1".into());
                r.api_root = Some("/concord/".into());
                r.api_key = Some("k".repeat(40));
            }),
        ),
        (
            "api_root",
            join_request(&inv, &key, |r| {
                r.url = Some("http://b.example".into());
                r.api_root = Some("/../../api/v1/".into());
                r.api_key = Some("k".repeat(40));
            }),
        ),
    ] {
        let (status, _, v) = post_join(&sa.base, &body);
        assert_eq!(status, 409, "{field}: {v}");
        let reason = v["answer"]["reason"].as_str().unwrap();
        assert!(reason.contains(field), "{field}: {reason}");
    }
    assert!(db().partners().unwrap().is_empty());
    assert!(db().invitation(&inv.id).unwrap().unwrap().used_ns.is_none());

    // Six racers with the secret (with the three above and one below: the invitation's quota of 10 a minute), each giving its own key and URL.
    let racers: Vec<(String, String)> = (0..6u8)
        .map(|i| {
            let api_key = format!("racer-key-{i}-{}", "x".repeat(30));
            let body = join_request(&inv, &NodeKey::from_seed(&[50 + i; 32]), |r| {
                r.url = Some(format!("http://127.0.0.1:{}", 3000 + u16::from(i)));
                r.api_root = Some("/concord/".into());
                r.api_key = Some(api_key.clone());
            });
            (api_key, body)
        })
        .collect();
    let barrier = std::sync::Barrier::new(racers.len());
    let outcomes: Vec<(String, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = racers
            .iter()
            .map(|(k, body)| {
                let (barrier, base) = (&barrier, &sa.base);
                s.spawn(move || {
                    barrier.wait();
                    (k.clone(), post_join(base, body).0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<_> = outcomes.iter().filter(|(_, s)| *s == 201).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(_, s)| *s == 201 || *s == 409),
        "{outcomes:?}"
    );
    let store = db();
    assert_eq!(store.partners().unwrap().len(), 1);
    let peer = concord_sync::load_peer(store.as_ref(), "cert-fr").unwrap();
    let concord_sync::PeerAuth::Token { file } = &peer.auth else {
        panic!("{:?}", peer.auth)
    };
    let held = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(held.trim(), won[0].0);

    // Without the secret: unknown, wrong, used and expired answer alike.
    let other = NodeKey::from_seed(&[60; 32]);
    let unknown = post_join(
        &sa.base,
        &join_request(&inv, &other, |r| {
            r.invitation = "00000000-0000-4000-8000-000000000000".into()
        }),
    );
    let used_wrong = post_join(
        &sa.base,
        &join_request(&inv, &other, |r| r.secret = "cd".repeat(32)),
    );
    // An expired invitation (its record as `invite` makes it, its expiry passed).
    let mut expired = store.invitation(&inv.id).unwrap().unwrap();
    expired.id = "11111111-1111-4111-8111-111111111111".into();
    expired.partner = "cert-es".into();
    expired.used_ns = None;
    expired.used_by = None;
    expired.expires_ns = 1;
    store.put_invitation(&expired).unwrap();
    let expired_wrong = post_join(
        &sa.base,
        &join_request(&inv, &other, |r| {
            r.invitation = expired.id.clone();
            r.secret = "cd".repeat(32);
        }),
    );
    assert_eq!(unknown.0, 403, "{unknown:?}");
    assert_eq!(unknown, used_wrong);
    assert_eq!(unknown, expired_wrong);
}

/// Attack: the joining partner reads the preview in the inviting node's answer. It says
/// what will be served to it, and nothing of what is withheld from it: a count of withheld
/// versions tells that objects it may not see exist (the same rule as the dashboard's and
/// TAXII's). The inviting node's own `partner preview` still counts them for its operator.
#[test]
fn the_join_answer_does_not_tell_the_joiner_what_is_withheld_from_it() {
    const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[
            indicator("f2222222", "shared.example.net", &[GREEN]),
            indicator("f3333333", "red-one.example.net", &[RED]),
            indicator("f4444444", "red-two.example.net", &[RED]),
        ],
    );
    let sa = a.serve();
    let file = a.path().join("invite.json");
    cli_ok(
        &a,
        &[
            "invite",
            "--partner",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--url",
            &sa.base,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let inv = doc::read_invitation(&std::fs::read_to_string(&file).unwrap(), 0).unwrap();
    let (status, _, v) = post_join(
        &sa.base,
        &join_request(&inv, &NodeKey::from_seed(&[70; 32]), |_| {}),
    );
    assert_eq!(status, 201, "{v}");
    let serve = &v["answer"]["serve"][0];
    assert_eq!(serve["objects"], 1, "{v}");
    assert_eq!(
        serve["withheld"], 0,
        "the joiner learns nothing withheld: {v}"
    );
    // The inviting operator's own preview counts what its policy withholds.
    let mine: Value =
        serde_json::from_str(&cli_ok(&a, &["partner", "preview", "cert-fr", "--json"])).unwrap();
    assert_eq!(mine["preview"][0]["withheld"], 2, "{mine}");
}

/// `GET` the objects of collection `alias` with partner key `key`: the status.
fn partner_reads(s: &Server, key: &str, alias: &str) -> u16 {
    let auth = format!("Bearer {key}");
    s.request(
        "GET",
        &format!("/concord/collections/{alias}/objects/"),
        &[("Authorization", &auth), ("Accept", crate::support::TAXII)],
        None,
    )
    .status
}

/// Attack: a partner whose key was rotated, whose grant was taken back, or who was removed,
/// by another process (the CLI) keeps reading from a running server while it caches the
/// partner list. Its very
/// next request after the change is refused: the server reads the key's partner from the
/// store at each request.
#[test]
fn a_rotated_or_removed_partner_is_refused_at_once() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f5555555", "stale.example.net", &[GREEN])],
    );
    let s = a.serve();
    let key = |n: &str| {
        let out: Value = serde_json::from_str(&cli_ok(
            &a,
            &[
                "partner",
                "add",
                n,
                "--jurisdiction",
                "FR",
                "--read",
                "intel",
                "--json",
            ],
        ))
        .unwrap();
        out["api_key"].as_str().unwrap().to_owned()
    };
    let (k1, k2, k3) = (key("cert-fr"), key("cert-es"), key("cert-it"));
    // The keys verified and the partners read by the server.
    assert_eq!(partner_reads(&s, &k1, "intel"), 200);
    assert_eq!(partner_reads(&s, &k2, "intel"), 200);
    assert_eq!(partner_reads(&s, &k3, "intel"), 200);
    cli_ok(&a, &["partner", "update", "cert-it", "--no-read", "intel"]);
    assert_eq!(
        partner_reads(&s, &k3, "intel"),
        404,
        "a grant taken back (partner update)"
    );
    cli_ok(&a, &["partner", "rotate-key", "cert-fr", "--json"]);
    assert_eq!(
        partner_reads(&s, &k1, "intel"),
        401,
        "the old key after rotate-key"
    );
    cli_ok(&a, &["partner", "remove", "cert-es"]);
    assert_eq!(
        partner_reads(&s, &k2, "intel"),
        401,
        "the key of a removed partner"
    );
}

const PRODUCER: &str = "identity--d1d1d1d1-0000-4000-8000-0000000000a1";
const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";

/// Appends `policy` to the node's concord.toml.
fn with_policy(node: &Node, policy: &str) {
    let config = node.path().join("concord.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{base}\n{policy}")).unwrap();
}

/// Attack on IEP 2.0 attribution must-not: the producer is named by more than the
/// `created_by_ref` of indicators, and the node need not hold its identity (objects pulled
/// from a peer that keeps it; then no decision on the identity removes references to it).
/// A marking definition the producer wrote (a TLP one by content, sent as "public" before
/// any other rule) carries its `created_by_ref` too; a sighting names it in
/// `where_sighted_refs`, a report among its `object_refs`. None of them may carry the
/// producer's identity id to the partner, by TAXII or export.
#[test]
fn attribution_must_not_names_the_producer_nowhere() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    with_policy(
        &a,
        "[policy]\npolicy_version = \"anon-1\"\n[policy.agreements.anonymous]\n\
         partners = [\"anon\"]\nattribution = \"must-not\"\n",
    );
    let ts = "2026-01-01T00:00:00.000Z";
    let own_tlp = "marking-definition--a1a1a1a1-0000-4000-8000-0000000000a2";
    let ind = "indicator--a1a1a1a1-0000-4000-8000-0000000000a3";
    import(
        &a,
        "intel",
        &[
            json!({"type": "marking-definition", "spec_version": "2.1", "id": own_tlp,
                "created": ts, "created_by_ref": PRODUCER, "definition_type": "tlp",
                "name": "TLP:GREEN", "definition": {"tlp": "green"}}),
            json!({"type": "indicator", "spec_version": "2.1", "id": ind, "created": ts,
                "modified": ts, "created_by_ref": PRODUCER, "pattern_type": "stix",
                "pattern": "[domain-name:value = 'anon.example']", "valid_from": ts,
                "object_marking_refs": [own_tlp]}),
            json!({"type": "sighting", "spec_version": "2.1",
                "id": "sighting--a1a1a1a1-0000-4000-8000-0000000000a4", "created": ts,
                "modified": ts, "sighting_of_ref": ind, "where_sighted_refs": [PRODUCER],
                "object_marking_refs": [CLEAR]}),
            json!({"type": "report", "spec_version": "2.1",
                "id": "report--a1a1a1a1-0000-4000-8000-0000000000a5", "created": ts,
                "modified": ts, "name": "r", "published": ts,
                "object_refs": [ind, PRODUCER], "object_marking_refs": [CLEAR]}),
        ],
    );
    let key = std::fs::read_to_string(crate::sync::partner(&a, "anon", "FR", &["--read", "intel"]))
        .unwrap();
    let exported = cli_ok(
        &a,
        &["export", "--collection", "intel", "--partner", "anon"],
    );
    assert!(exported.contains(ind), "the indicator goes: {exported}");
    assert!(
        !exported.contains(PRODUCER),
        "export names the producer: {exported}"
    );
    assert!(!exported.contains("created_by_ref"), "{exported}");
    let s = a.serve();
    let auth = format!("Bearer {}", key.trim());
    let r = s.request(
        "GET",
        "/concord/collections/intel/objects/",
        &[("Authorization", &auth), ("Accept", crate::support::TAXII)],
        None,
    );
    assert_eq!(r.status, 200);
    let body = r.body.clone();
    assert!(body.contains(ind), "{body}");
    assert!(!body.contains(PRODUCER), "TAXII names the producer: {body}");
    assert!(!body.contains("created_by_ref"), "{body}");
}

/// Attack on IEP 2.0 end date through the tombstones resource: after the agreement ended,
/// a partner asks which of the versions it received were deleted since. Nothing flows after
/// the end date: not the ids and versions of deletions either.
#[test]
fn no_tombstone_flows_after_the_end_date() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let agreement = |end: &str| {
        format!(
            "[policy]\npolicy_version = \"end-1\"\n[policy.agreements.a-b]\npartners = [\"b\"]\n\
             end_date = \"{end}\"\n"
        )
    };
    let config = a.path().join("concord.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{base}\n{}", agreement("2099-01-01T00:00:00Z")),
    )
    .unwrap();
    let n1 = "indicator--e1e1e1e1-0000-4000-8000-0000000000b1";
    let ts = "2026-01-01T00:00:00.000Z";
    import(
        &a,
        "intel",
        &[
            json!({"type": "indicator", "spec_version": "2.1", "id": n1, "created": ts,
            "modified": ts, "pattern_type": "stix", "valid_from": ts,
            "pattern": "[domain-name:value = 'gone.example']", "object_marking_refs": [CLEAR]}),
        ],
    );
    let key =
        std::fs::read_to_string(crate::sync::partner(&a, "b", "FR", &["--read", "intel"])).unwrap();
    let auth = format!("Bearer {}", key.trim());
    let get = |s: &Server, path: &str| {
        s.request(
            "GET",
            path,
            &[("Authorization", &auth), ("Accept", crate::support::TAXII)],
            None,
        )
    };
    {
        let s = a.serve();
        let r = get(&s, "/concord/collections/intel/objects/");
        assert!(r.body.contains(n1), "received while in effect: {}", r.body);
    }
    // The agreement ended; the operator deletes what b received.
    std::fs::write(
        &config,
        format!("{base}\n{}", agreement("2020-01-01T00:00:00Z")),
    )
    .unwrap();
    let s = a.serve();
    let r = s.delete(&format!("/concord/collections/intel/objects/{n1}/"));
    assert!(r.status < 300, "{}", r.status);
    let r = get(&s, "/concord/collections/intel/tombstones/");
    assert!(
        !r.body.contains(n1),
        "a tombstone after the end date: {} {}",
        r.status,
        r.body
    );
}

/// Attack on IEP 2.0 end date through the web UI: a partner's pages are built from an index
/// of its copies, kept for a while. The index built just before the agreement ended must not
/// be shown after it: the partner's first page after the end shows nothing of the
/// collection. (The end date is a few seconds after the server starts; the test waits for
/// it to pass, then reads once: no timing is asserted.)
#[test]
fn the_web_ui_shows_nothing_after_the_end_date() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let ts = "2026-01-01T00:00:00.000Z";
    let canary = "after-the-end.example";
    import(
        &a,
        "intel",
        &[json!({"type": "indicator", "spec_version": "2.1",
            "id": "indicator--e2e2e2e2-0000-4000-8000-0000000000c1", "created": ts,
            "modified": ts, "pattern_type": "stix", "valid_from": ts, "name": canary,
            "pattern": format!("[domain-name:value = '{canary}']"),
            "object_marking_refs": [CLEAR]})],
    );
    let key =
        std::fs::read_to_string(crate::sync::partner(&a, "b", "FR", &["--read", "intel"])).unwrap();
    let end = std::time::SystemTime::now() + std::time::Duration::from_secs(8);
    let end_text = concord_stix::Timestamp::from_unix_nanos(
        i64::try_from(
            end.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap(),
        0,
    )
    .to_string();
    with_policy(
        &a,
        &format!(
            "[policy]\npolicy_version = \"soon-1\"\n[policy.agreements.a-b]\n\
             partners = [\"b\"]\nend_date = \"{end_text}\"\n"
        ),
    );
    let s = a.serve();
    let cookie = crate::leak::login(&s, key.trim());
    let page = |s: &Server| s.request("GET", "/ui/c/intel", &[("Cookie", &cookie)], None);
    let before = page(&s);
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(
        before.body.contains(canary),
        "in effect (if this fails, the server took over 8 s to start): {}",
        before.body
    );
    // Wait for the end date to pass.
    while std::time::SystemTime::now() < end + std::time::Duration::from_millis(500) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let after = page(&s);
    assert!(
        !after.body.contains(canary),
        "shown after the end date: {}",
        after.body
    );
}

/// A fake Concord peer on loopback that answers every request with `body` as TAXII JSON.
fn answering_peer(body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    crate::support::TAXII,
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

/// Attack by a peer on its partner's terminal and pages: the agreement document its node
/// serves is signed by its own key, so its texts are its word. A version or an end date with
/// a terminal escape in them is refused with the document (the round stops, as for any
/// document that does not verify); nothing of it reaches `partner show`.
#[test]
fn a_peers_agreement_document_carries_no_escape_to_the_operator() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let key = NodeKey::from_seed(&[80; 32]);
    let statement = json!({
        "format": "concord-agreement/1", "issuer": key.public_hex(), "partner": "a",
        "version": "x\u{1b}]0;owned\u{7}@000000000000",
        "agreement": {"name": "x", "partner": "a",
                      "end_date": "2099-01-01T00:00:00Z\u{1b}[2J"},
        "issued": "2026-01-01T00:00:00Z"
    })
    .to_string();
    let doc = json!({"signed": statement, "key": key.public_hex(),
        "signature": concord_store::node_key::hex(&key.sign(statement.as_bytes()))});
    let url = answering_peer(doc.to_string());
    cli_ok(&a, &["collection", "create", "x"]);
    crate::sync::partner(&a, "m", "FR", &["--read", "x"]);
    let token = a.path().join("m-token");
    std::fs::write(&token, "concord_0123456789abcdef_00").unwrap();
    cli_ok(
        &a,
        &[
            "peer",
            "add",
            "m",
            &url,
            "--api-root",
            "/concord/",
            "--collection",
            "x:x",
            "--pull",
            "--token-file",
            token.to_str().unwrap(),
            "--partner",
            "m",
        ],
    );
    let (_, _, err) = crate::sync::cli(&a, &["sync", "--peer", "m"]);
    let shown = cli_ok(&a, &["partner", "show", "m"]);
    assert!(!shown.contains('\u{1b}'), "partner show: {shown:?}");
    assert!(!err.contains('\u{1b}'), "sync: {err:?}");
    let listed = cli_ok(&a, &["peer", "show", "m"]);
    assert!(!listed.contains('\u{1b}'), "peer show: {listed:?}");
}

/// Attack on IEP 2.0 end date through the automated doors' caches: a partner's compiled
/// indicator set (`POST /api/match`) and its feed's entity tag are kept while the
/// collection does not change. After the end date the partner's match names no indicator,
/// and its feed is not "not modified": it gets the feed as it is now, empty. (The end date
/// is a few seconds after the server starts; the test waits for it, then asks once.)
#[test]
fn the_automated_doors_stop_at_the_end_date() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let ts = "2026-01-01T00:00:00.000Z";
    let canary = "match-after-end.example";
    import(
        &a,
        "intel",
        &[json!({"type": "indicator", "spec_version": "2.1",
            "id": "indicator--e3e3e3e3-0000-4000-8000-0000000000d1", "created": ts,
            "modified": ts, "pattern_type": "stix", "valid_from": ts,
            "pattern": format!("[domain-name:value = '{canary}']"),
            "object_marking_refs": [CLEAR]})],
    );
    let key =
        std::fs::read_to_string(crate::sync::partner(&a, "b", "FR", &["--read", "intel"])).unwrap();
    let auth = format!("Bearer {}", key.trim());
    let end = std::time::SystemTime::now() + std::time::Duration::from_secs(8);
    let end_ns = i64::try_from(
        end.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap();
    with_policy(
        &a,
        &format!(
            "[policy]\npolicy_version = \"soon-2\"\n[policy.agreements.a-b]\n\
             partners = [\"b\"]\nend_date = \"{}\"\n",
            concord_stix::Timestamp::from_unix_nanos(end_ns, 0)
        ),
    );
    let s = a.serve();
    let matched = |s: &Server| {
        s.request(
            "POST",
            "/api/match",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&json!({"collections": ["intel"], "lines": [canary]}).to_string()),
        )
    };
    let feed = |s: &Server, etag: Option<&str>| {
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(t) = etag {
            h.push(("If-None-Match", t));
        }
        s.request("GET", "/concord/collections/intel/feeds/plain", &h, None)
    };
    let r = matched(&s);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["hits"].as_array().unwrap().len(),
        1,
        "in effect: {}",
        r.body
    );
    let f = feed(&s, None);
    assert_eq!(f.status, 200, "{}", f.body);
    assert!(f.body.contains(canary), "in effect: {}", f.body);
    let etag = f.header("etag").unwrap().to_owned();
    while std::time::SystemTime::now() < end + std::time::Duration::from_millis(500) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = matched(&s);
    assert!(
        r.status != 200 || r.json()["hits"].as_array().is_none_or(Vec::is_empty),
        "a hit after the end date: {}",
        r.body
    );
    let f = feed(&s, Some(&etag));
    assert_ne!(
        f.status, 304,
        "the feed of before the end date is still current"
    );
    assert!(!f.body.contains(canary), "{}", f.body);
}

/// Attack by the publisher of a group's directory (another member's node): the identities
/// it publishes are its word. One that claims a partner's node key (public: published
/// directories carry node keys) under another identity id must not replace the identity
/// this node holds for that partner (its name and contacts, whom the operator writes to):
/// a stored identity is replaced only by a newer version of the same id.
#[test]
fn a_directory_cannot_replace_a_partners_identity_by_claiming_its_node_key() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&a, &["collection", "create", "x"]);
    crate::sync::partner(&a, "cert-c", "FR", &["--read", "x"]);
    let ts = "2026-01-01T00:00:00.000Z";
    let real = json!({"type": "identity", "spec_version": "2.1",
        "id": "identity--c0c0c0c0-0000-4000-8000-0000000000e1", "created": ts, "modified": ts,
        "name": "CERT-C", "identity_class": "organization",
        "contact_information": "soc@cert-c.example"});
    let file = a.path().join("real.json");
    std::fs::write(&file, real.to_string()).unwrap();
    let node_key = NodeKey::from_seed(&[90; 32]).public_hex();
    cli_ok(
        &a,
        &[
            "partner",
            "set",
            "cert-c",
            "--identity",
            file.to_str().unwrap(),
            "--node-key",
            &node_key,
        ],
    );
    let forged = json!({"type": "bundle", "id": "bundle--c0c0c0c0-0000-4000-8000-0000000000e2",
        "objects": [{"type": "identity", "spec_version": "2.1",
            "id": "identity--c0c0c0c0-0000-4000-8000-0000000000e3",
            "created": "2026-06-01T00:00:00.000Z", "modified": "2026-06-01T00:00:00.000Z",
            "name": "CERT-C", "identity_class": "organization",
            "contact_information": "soc@attacker.example", "x_concord_node_key": node_key}]});
    let bundle = a.path().join("forged.json");
    std::fs::write(&bundle, forged.to_string()).unwrap();
    cli_ok(
        &a,
        &[
            "partner",
            "directory",
            "import",
            "--file",
            bundle.to_str().unwrap(),
            "--json",
        ],
    );
    let shown = cli_ok(&a, &["partner", "show", "cert-c", "--json"]);
    assert!(!shown.contains("attacker.example"), "{shown}");
    assert!(shown.contains("soc@cert-c.example"), "{shown}");
}

/// Attacks on users and sessions (issue 20) that the node withstands, kept as a test: a
/// fixed session id, a cookie after `user reset` and after logout on another `serve`
/// process (one SQLite database), an analyst's and an auditor's login token on operator
/// routes and their variants, `--as` on the CLI, login throttling by variants of the name,
/// and user enumeration by the answer.
#[test]
fn users_and_sessions_withstand_the_usual_attacks() {
    use crate::people::{add_user, api, cli_as, login, page, user_login};
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let (alice_pw, alice_token, _) = add_user(&a, "alice", "analyst", &[]);
    let (_, bob_token, _) = add_user(&a, "bob", "auditor", &[]);
    let (s1, s2) = (a.serve(), a.serve());

    // Session fixation: a session id chosen by the attacker is not adopted at login.
    let fixed = "concord_session=attacker-chosen-0123456789abcdef";
    let no_redirects: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = no_redirects
        .post(format!("{}/ui/login", s1.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", fixed)
        .send(format!("user=alice&token={alice_pw}&next=%2Fui%2F"))
        .unwrap();
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("concord_session=") && !c.starts_with(fixed)),
        "{set:?}"
    );
    assert_ne!(page(&s1.base, fixed, "/ui/collections").0, 200);

    // A session works on both processes; `user reset` on the CLI ends it on both.
    let cookie = user_login(&s1.base, "alice", &alice_pw);
    assert_eq!(page(&s2.base, &cookie, "/ui/collections").0, 200);
    let out = crate::support::run(
        crate::support::concord()
            .args(["user", "reset", "alice", "--json", "--data-dir"])
            .arg(a.path()),
    );
    assert!(out.status.success());
    let alice_pw: String = serde_json::from_slice::<Value>(&out.stdout).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(page(&s1.base, &cookie, "/ui/collections").0, 200);
    assert_ne!(page(&s2.base, &cookie, "/ui/collections").0, 200);
    // Logout on the second process ends it on the first.
    let cookie = user_login(&s1.base, "alice", &alice_pw);
    let _ = no_redirects
        .post(format!("{}/ui/logout", s2.base))
        .header("Cookie", &cookie)
        .send("")
        .unwrap();
    assert_ne!(page(&s1.base, &cookie, "/ui/collections").0, 200);

    // Role escalation: an analyst's and an auditor's tokens on operator routes, however the
    // path is written, never succeed.
    let body = json!({"name": "evil", "jurisdiction": "FR"}).to_string();
    for token in [&alice_token, &bob_token] {
        for (method, path) in [
            ("POST", "/partners"),
            ("POST", "//partners"),
            ("POST", "/partners/"),
            ("GET", "/partners"),
            ("PATCH", "/partners/evil"),
            ("POST", "/peers"),
            ("POST", "/collections"),
        ] {
            let status = api(&s1.base, token, method, path, Some(&body));
            assert!(!(200..300).contains(&status), "{method} {path}: {status}");
        }
    }
    assert_eq!(api(&s1.base, &bob_token, "GET", "/collections", None), 403);
    let (ok, err) = cli_as(
        &a,
        "alice",
        &["partner", "add", "evil", "--jurisdiction", "FR"],
    );
    assert!(!ok, "{err}");
    assert!(err.contains("analyst"), "{err}");
    let listed = cli_ok(&a, &["partner", "list", "--json"]);
    assert!(!listed.contains("evil"), "{listed}");

    // Enumeration: an unknown user and a wrong password answer alike.
    let (st_unknown, c1, _) = login(&s2.base, "user=mallory&token=wrong-password");
    let (st_wrong, c2, _) = login(&s2.base, "user=alice&token=wrong-password");
    assert_eq!((st_unknown, c1.is_none()), (st_wrong, c2.is_none()));
    let body_of = |form: &str| {
        let mut r = no_redirects
            .post(format!("{}/ui/login", s2.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("{form}&next=%2Fui%2F"))
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    assert_eq!(
        body_of("user=mallory&token=x"),
        body_of("user=alice&token=x")
    );

    // Throttling: the name's case and spaces do not make another account. After the
    // failures a minute for alice, a guess for " alice " is throttled too (a password
    // verified before still passes: a flood of guesses does not lock the user out), and
    // "ALICE" is nobody (alice's password does not log it in).
    let mut statuses = Vec::new();
    for n in 0..12 {
        statuses.push(login(&s1.base, &format!("user=alice&token=guess-{n}")).0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let (st, cookie, _) = login(&s1.base, "user=+alice+&token=another-guess");
    assert_eq!((st, cookie), (429, None));
    let (st, cookie, _) = login(&s1.base, &format!("user=ALICE&token={alice_pw}"));
    assert!(cookie.is_none(), "{st}");
}

/// Attack (issue 19, a key bound to a client certificate): a partner's web session outlives
/// the binding. The key holder logs in to the web UI before its key is bound to a client
/// certificate (`partner set --client-cert-sha256`, as `join --mtls` does); after the
/// binding, its key without the certificate is refused at TAXII, and its session cookie
/// must be refused as well, on a connection that presents no certificate: a session is
/// one more way to present the key, and is held to the same pin at each request.
#[test]
fn a_web_session_does_not_outlive_a_keys_binding_to_a_certificate() {
    use crate::people::{login, page};
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f6666666", "pinned.example.net", &[GREEN])],
    );
    let out: Value = serde_json::from_str(&cli_ok(
        &a,
        &[
            "partner",
            "add",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--json",
        ],
    ))
    .unwrap();
    let key = out["api_key"].as_str().unwrap().to_owned();
    let s = a.serve();
    let (status, cookie, _) = login(&s.base, &format!("user=&token={key}"));
    assert_eq!(status, 303, "the partner logs in with its key");
    let cookie = cookie.unwrap();
    assert_eq!(page(&s.base, &cookie, "/ui/collections").0, 200);
    assert_eq!(partner_reads(&s, &key, "intel"), 200);

    // The operator binds the key to the partner's certificate (its SHA-256 pin).
    cli_ok(
        &a,
        &[
            "partner",
            "set",
            "cert-fr",
            "--client-cert-sha256",
            &"ab".repeat(32),
        ],
    );
    // Without the certificate: TAXII refuses the key, and the web UI the session, as it
    // refuses no session at all (to the login page).
    assert_eq!(partner_reads(&s, &key, "intel"), 401);
    let (status, body) = page(&s.base, &cookie, "/ui/collections");
    assert_ne!(status, 200, "{body}");
    let (none, _) = page(&s.base, "concord_session=none", "/ui/collections");
    assert_eq!(status, none, "the same answer as no session");
    // A new login with the key alone is refused too.
    assert_eq!(login(&s.base, &format!("user=&token={key}")).0, 401);
}

/// Attack (issue 20, four-eyes release): a single releaser moves a cross-border partner into
/// another sharing group's pseudonyms by a sharing change that widens no TLP level. The
/// partner `cert-fr` (FR) is in the groups `a` and `b` and reads `intel`; its personal data
/// is pseudonymised with the key of its first group, `a`. Sharing TLP:GREEN of `intel` with
/// the group `b` only changes nothing it sees, but pseudonymises for it with `b`'s key:
/// its pseudonyms now link with those `b`'s members receive. A partner update that does
/// this waits for a second releaser ([`Widening::Pseudonyms`]); a sharing change must too.
#[test]
fn a_sharing_change_cannot_move_a_cross_border_partner_into_other_pseudonyms_alone() {
    use crate::four_eyes::{add_user, cli, pending};
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    let (ok, _, err) = cli(
        &node,
        None,
        &[
            "partner",
            "add",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--group",
            "a",
            "--group",
            "b",
        ],
    );
    assert!(ok, "{err}");
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&config, text).unwrap();
    add_user(&node, "rel1", "releaser");
    assert!(pending(&node).is_empty());

    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["collection", "share", "intel", "--group", "b"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    let p = pending(&node);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0]["summary"].as_str().unwrap().contains("cert-fr"),
        "{p:?}"
    );
}

/// Attack (issue 20, four-eyes release): a sharing approval widens, when approved, for a
/// partner its request did not name. `rel1` asks to lower `intel`'s default TLP to GREEN
/// (the request names what it widens: `cert-fr` receives the unmarked objects). Before it
/// is approved, `cert-it` (IT) is given a read grant on `intel` (approved on its own, under
/// the sharing as it was then). Approving the first request now would give `cert-it` the
/// unmarked objects too, which no one approved on sight: as a partner change's approval,
/// it is refused as stale, naming why, and applies nothing.
#[test]
fn a_sharing_approval_cannot_widen_for_a_partner_its_request_did_not_name() {
    use crate::four_eyes::{add_user, cli, pending};
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    for (name, read) in [("cert-fr", true), ("cert-it", false)] {
        let mut args = vec!["partner", "add", name, "--jurisdiction", &name[5..]];
        if read {
            args.extend(["--read", "intel"]);
        }
        cli_ok(&node, &args);
    }
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&config, text).unwrap();
    add_user(&node, "rel1", "releaser");
    add_user(&node, "rel2", "releaser");
    add_user(&node, "op1", "operator");
    let id_of = |what: &str| {
        pending(&node)
            .into_iter()
            .find(|a| a["summary"].as_str().unwrap_or_default().contains(what))
            .and_then(|a| a["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no pending approval naming {what:?}"))
    };

    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["collection", "share", "intel", "--default-tlp", "green"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    let lower = id_of("cert-fr (FR) receives unmarked objects");
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "cert-it", "--read", "intel"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    let grant = id_of("cert-it");
    let (ok, _, err) = cli(&node, Some("rel2"), &["approval", "approve", &grant]);
    assert!(ok, "{err}");

    let (ok, _, err) = cli(&node, Some("rel2"), &["approval", "approve", &lower]);
    assert!(!ok && err.contains("changed since the request"), "{err}");
    let s = node.serve();
    assert_eq!(
        crate::four_eyes::sharing(&s.base, "intel")["default_tlp"],
        "amber",
        "nothing applied"
    );
    assert_eq!(pending(&node).len(), 1, "still pending, to be rejected");
}

/// Attack (issue 20, four-eyes release): a single releaser widens a cross-border partner
/// alone in two narrow-looking steps. `bsi` is domestic (DE, as the node): its read grants
/// wait for no one. The same person then moves it abroad (`--jurisdiction FR`): from then on
/// all it reads goes across the border, which no second releaser approved. Moving a
/// domestic partner abroad is read as a new cross-border partner: it waits, naming what it
/// would receive.
#[test]
fn a_releaser_cannot_move_a_partner_abroad_with_its_domestic_grants_alone() {
    use crate::four_eyes::{add_user, cli, pending};
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    cli_ok(&node, &["partner", "add", "bsi", "--jurisdiction", "DE"]);
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&config, text).unwrap();
    add_user(&node, "op1", "operator");
    // Step 1, domestic: applies at once.
    let (ok, out, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "bsi", "--read", "intel"],
    );
    assert!(ok && !err.contains("pending approval"), "{out}{err}");
    // Step 2, abroad: waits.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "bsi", "--jurisdiction", "FR"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    let p = pending(&node);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0]["summary"]
            .as_str()
            .unwrap()
            .contains("bsi (FR) receives TLP:CLEAR"),
        "{p:?}"
    );
    let (ok, out, err) = cli(&node, None, &["partner", "show", "bsi", "--json"]);
    assert!(ok, "{err}");
    let bsi: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(bsi["jurisdiction"], "DE", "nothing applied");
}

/// Attack (issue 20): one who knows only an invitation's id (audit entries, approvals and
/// logs name it; the secret they do not) sends join attempts with wrong secrets, more than
/// the invitation's quota (`failures_per_key`, 10 a minute), to hold the real joiner off
/// with 429. Attempts that prove nothing beyond the id count against their source only: the
/// real joiner still joins. Attempts that prove the secret count against the invitation:
/// its holder retrying past the quota gets 429.
#[test]
fn an_invitation_id_alone_cannot_hold_the_real_joiner_off() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f2222222", "hold.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let file = a.path().join("invite.json");
    cli_ok(
        &a,
        &[
            "invite",
            "--partner",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--url",
            &sa.base,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let inv = doc::read_invitation(&std::fs::read_to_string(&file).unwrap(), 0).unwrap();
    let mallory = NodeKey::from_seed(&[70; 32]);
    for i in 0..15 {
        let (status, _, v) = post_join(
            &sa.base,
            &join_request(&inv, &mallory, |r| r.secret = format!("{i:02x}").repeat(32)),
        );
        assert_eq!(status, 403, "attempt {i}: {v}");
    }
    // The real joiner, after more failures than the invitation's quota.
    let joiner = NodeKey::from_seed(&[71; 32]);
    let body = join_request(&inv, &joiner, |_| {});
    let (status, _, v) = post_join(&sa.base, &body);
    assert_eq!(status, 201, "{v}");
    // Its retries (the same request: the kept answer) count against the invitation.
    let statuses: Vec<u16> = (0..10).map(|_| post_join(&sa.base, &body).0).collect();
    assert_eq!(statuses[..9], [201; 9], "{statuses:?}");
    assert_eq!(statuses[9], 429, "{statuses:?}");
}

/// Attack (issue 19/20) on a peer added without its node key: whoever answers at its URL
/// later (another server there, a proxy) signs an agreement document with a key of its
/// own, e.g. an end date that stops every round with the peer and every door to its
/// partner. The peer is trusted on first use: the key of the first document kept (here
/// the real node B's) is the only one accepted after; another key stops the round, naming
/// both keys, and replaces nothing kept; pinning the new key (`peer add --node-key`) is how
/// the operator accepts it.
#[test]
fn an_unpinned_peer_is_held_to_the_key_of_its_first_agreement_document() {
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    cli_ok(&b, &["collection", "create", "x"]);
    let token = crate::sync::partner(&b, "a", "DE", &["--read", "x"]);
    let sb = b.serve();
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&a, &["collection", "create", "x"]);
    let add_peer = |url: &str, node_key: Option<&std::path::Path>| {
        let mut args = vec![
            "peer",
            "add",
            "b",
            url,
            "--api-root",
            "/concord/",
            "--collection",
            "x:x",
            "--pull",
            "--token-file",
            token.to_str().unwrap(),
        ];
        if let Some(k) = node_key {
            args.extend(["--node-key", k.to_str().unwrap()]);
        }
        cli_ok(&a, &args);
    };
    let kept_key = || {
        let store = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
        concord_egress::agreement::received(store.as_ref(), "b")
            .unwrap()
            .expect("a kept agreement document")
            .signing_key()
            .map(|k| concord_store::node_key::hex(&k))
    };
    // First use: B's own document, kept with B's key.
    add_peer(&sb.base, None);
    cli_ok(&a, &["sync", "--peer", "b"]);
    let b_key: Value = serde_json::from_str(&cli_ok(&b, &["node", "key", "--json"])).unwrap();
    let b_key = b_key["public_key"].as_str().unwrap().to_owned();
    assert_eq!(kept_key().as_deref(), Some(b_key.as_str()));

    // Another server answers at the peer's URL, with an end date signed by its own key.
    let other = NodeKey::from_seed(&[81; 32]);
    let statement = json!({
        "format": "concord-agreement/1", "issuer": other.public_hex(), "partner": "a",
        "version": "forged@000000000000",
        "agreement": {"name": "forged", "partner": "a", "end_date": "2020-01-01T00:00:00Z"},
        "issued": "2026-01-01T00:00:00Z"
    })
    .to_string();
    let doc = json!({"signed": statement, "key": other.public_hex(),
        "signature": concord_store::node_key::hex(&other.sign(statement.as_bytes()))});
    let forged = answering_peer(doc.to_string());
    add_peer(&forged, None);
    let (code, _, err) = crate::sync::cli(&a, &["sync", "--peer", "b"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("trust on first use"), "{err}");
    assert!(
        err.contains(&other.public_hex()) && err.contains(&b_key),
        "both keys named: {err}"
    );
    assert_eq!(
        kept_key().as_deref(),
        Some(b_key.as_str()),
        "nothing replaced"
    );
    // Back at B, B's documents are accepted as before.
    add_peer(&sb.base, None);
    cli_ok(&a, &["sync", "--peer", "b"]);

    // A kept record that cannot be read (damaged, edited) names no key: the forger's
    // document is refused, not taken as a new first use.
    let setting = format!("{}b", concord_egress::agreement::RECEIVED_PREFIX);
    let saved = {
        let store = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
        let saved = store.setting(&setting).unwrap().unwrap();
        store.set_setting(&setting, "{damaged").unwrap();
        saved
    };
    add_peer(&forged, None);
    let (code, _, err) = crate::sync::cli(&a, &["sync", "--peer", "b"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be read"), "{err}");
    {
        let store = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
        assert_eq!(
            store.setting(&setting).unwrap().as_deref(),
            Some("{damaged"),
            "nothing replaced"
        );
        store.set_setting(&setting, &saved).unwrap();
    }
    add_peer(&sb.base, None);
    cli_ok(&a, &["sync", "--peer", "b"]);

    // The operator pins the other key: its document is accepted (and its end date stops
    // the round, as a real one does).
    let key_file = a.path().join("other.key");
    std::fs::write(&key_file, other.public_hex()).unwrap();
    add_peer(&forged, Some(&key_file));
    let (code, _, err) = crate::sync::cli(&a, &["sync", "--peer", "b"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("trust on first use"), "{err}");
    assert!(err.contains("ended"), "{err}");
    assert_eq!(kept_key(), Some(other.public_hex()));
}

/// Attack on main 5a4e94b (the door hands the audit append the names of the rows it read):
/// a partner POSTs objects whose names are odd (SCOs without `modified`, a marking
/// definition with `created` only, two versions of one id, a `modified` written with extra
/// precision, personal data that is pseudonymised across the border), a cross-border
/// partner reads them by every TAXII door (pages, by id, versions, a missing id, which
/// decides a decoy), the operator deletes a version in between, and reads go on. Every
/// entry's names digest must still agree with the store: `audit verify --full` passes.
#[test]
fn attack_names_handed_to_the_audit_agree_with_the_store() {
    use crate::support::TAXII;
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &node,
        "intel",
        &[indicator("c0c0c0c0", "seed.example", &[GREEN])],
    );
    let w = crate::sync::partner(&node, "w", "DE", &["--read", "intel", "--write", "intel"]);
    let r = crate::sync::partner(&node, "r", "CN", &["--read", "intel"]);
    let w = format!("Bearer {}", std::fs::read_to_string(w).unwrap());
    let r = format!("Bearer {}", std::fs::read_to_string(r).unwrap());
    let s = node.serve();
    const IND: &str = "indicator--a1a1a1a1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    let v = |modified: &str, domain: &str| {
        json!({"type": "indicator", "spec_version": "2.1", "id": IND,
               "created": "2024-01-01T00:00:00.000Z", "modified": modified,
               "pattern": format!("[domain-name:value = '{domain}']"), "pattern_type": "stix",
               "valid_from": "2024-01-01T00:00:00Z", "object_marking_refs": [GREEN]})
    };
    let objects = json!([
        {"type": "ipv4-addr", "spec_version": "2.1",
         "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.7",
         "object_marking_refs": [GREEN]},
        {"type": "email-addr", "spec_version": "2.1",
         "id": "email-addr--2d77a846-6264-5d51-b586-e43822ea1ea3", "value": "jane.doe@example.com",
         "object_marking_refs": [GREEN]},
        {"type": "marking-definition", "spec_version": "2.1",
         "id": "marking-definition--3a5ad8b7-6e0b-4b0e-8f11-3f1c0b2e8a01",
         "created": "2024-01-01T00:00:00.000Z", "definition_type": "statement",
         "definition": {"statement": "Copyright 2024 W"}},
        {"type": "identity", "spec_version": "2.1",
         "id": "identity--7b3e6f1c-2d4a-4e8b-9a1c-5f6e7d8c9b0a",
         "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
         "name": "Jane Doe", "identity_class": "individual",
         "contact_information": "jane.doe@example.com", "object_marking_refs": [GREEN]},
        v("2024-01-01T00:00:00.000Z", "v1.example"),
        v("2024-02-01T00:00:00.123456Z", "v2.example"),
    ]);
    let hw = [
        ("Authorization", w.as_str()),
        ("Accept", TAXII),
        ("Content-Type", TAXII),
    ];
    let post = s.request(
        "POST",
        "/concord/collections/intel/objects/",
        &hw,
        Some(&json!({ "objects": objects }).to_string()),
    );
    assert_eq!(post.status, 202, "{}", post.body);
    let hr = [("Authorization", r.as_str()), ("Accept", TAXII)];
    let read_all = || {
        for path in [
            "/concord/collections/intel/objects/".to_owned(),
            "/concord/collections/intel/objects/?limit=1".to_owned(),
            "/concord/collections/intel/objects/?match[version]=all".to_owned(),
            "/concord/collections/intel/manifest/?match[version]=all".to_owned(),
            format!("/concord/collections/intel/objects/{IND}/?match[version]=all"),
            format!("/concord/collections/intel/objects/{IND}/versions/"),
            "/concord/collections/intel/objects/ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd/"
                .to_owned(),
            "/concord/collections/intel/objects/marking-definition--3a5ad8b7-6e0b-4b0e-8f11-3f1c0b2e8a01/"
                .to_owned(),
            "/concord/collections/intel/objects/indicator--dec0dec0-dec0-4dec-8dec-0dec0dec0dec/"
                .to_owned(),
            "/concord/collections/intel/objects/indicator--00000000-0000-4000-8000-000000000000/"
                .to_owned(),
        ] {
            let got = s.request("GET", &path, &hr, None);
            assert!(
                [200, 404].contains(&got.status),
                "{path}: {} {}",
                got.status,
                got.body
            );
        }
    };
    read_all();
    let del = s.delete(&format!(
        "/concord/collections/intel/objects/{IND}/?match[version]=2024-01-01T00:00:00.000Z"
    ));
    assert!(
        [200, 204].contains(&del.status),
        "{} {}",
        del.status,
        del.body
    );
    read_all();
    drop(s);
    let (code, out, err) = crate::sync::cli(&node, &["audit", "verify", "--full", "--json"]);
    assert_eq!(code, 0, "audit verify --full: {out} {err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["entries"].as_i64().unwrap_or(0) >= 20, "{doc}");
}

/// Attack finding (low): incident grants survived `partner remove`, kept by the partner's
/// name in the collection's sharing, so a new partner added under the same name (another
/// organisation) received as written what was granted to the removed one. `cert-fr` is
/// granted the IP addresses of an incident, removed, and a new `cert-fr` added: the new one
/// gets them pseudonymised, as any partner without a grant, and a grant is given anew.
#[test]
fn a_partner_added_under_a_removed_ones_name_inherits_no_incident_grant() {
    use crate::four_eyes::cli;
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let opened: Value = serde_json::from_str(&cli_ok(
        &node,
        &[
            "incident",
            "open",
            "--title",
            "C2 server",
            "--description",
            "Beaconing to 203.0.113.7",
            "--json",
        ],
    ))
    .unwrap();
    let incident = opened["id"].as_str().unwrap().to_owned();
    let add = || {
        cli_ok(
            &node,
            &[
                "partner",
                "add",
                "cert-fr",
                "--jurisdiction",
                "FR",
                "--read",
                "incidents",
            ],
        )
    };
    add();
    let asked: Value = serde_json::from_str(&cli_ok(
        &node,
        &[
            "incident",
            "request",
            &incident,
            "--to",
            "cert-fr",
            "--ask",
            "Check your logs for 203.0.113.7",
            "--deadline",
            "2099-01-01T00:00:00Z",
            "--json",
        ],
    ))
    .unwrap();
    let task = asked["id"].as_str().unwrap().to_owned();
    let explain = || {
        let (_, out, err) = cli(
            &node,
            None,
            &["policy", "explain", "--partner", "cert-fr", &task, "--json"],
        );
        assert!(!out.is_empty(), "{err}");
        out
    };
    cli_ok(
        &node,
        &[
            "incident",
            "grant",
            &incident,
            "--to",
            "cert-fr",
            "--allow",
            "ip_address",
        ],
    );
    let granted = format!("granted on {incident} for cert-fr");
    assert!(explain().contains(&granted), "the grant applies");

    cli_ok(&node, &["partner", "remove", "cert-fr"]);
    add();
    let after = explain();
    assert!(!after.contains(&granted), "inherited: {after}");
    assert!(after.contains("pseudonymised ip_address"), "{after}");
}
