//! The inviting side of a join (issue 19), on a real SQLite store: what `POST
//! /concord/join/` answers, status and body, before and after the secret is proven.

use std::sync::Arc;

use concord_admin::join::{self, JoinService, NewInvitation, NodeSelf};
use concord_admin::ops::PeerFiles;
use concord_store::Store;
use concord_store::node_key::NodeKey;
use concord_sync::join::{self as doc, JoinRequest};
use serde_json::Value;

struct Inviting {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    egress: concord_egress::Egress,
    service: JoinService,
}

fn inviting() -> Inviting {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(concord_store::SqliteStore::open(&dir.path().join("a.sqlite")).unwrap());
    store
        .create_collection(&concord_store::NewCollection {
            alias: "intel".into(),
            ..Default::default()
        })
        .unwrap();
    let policy = concord_server::policy::node_policy(store.as_ref(), &Default::default()).unwrap();
    let egress = concord_egress::Egress::new(store.clone(), Arc::new(policy));
    let me = NodeSelf {
        key: Arc::new(NodeKey::from_seed(&[1; 32])),
        title: "CERT A".into(),
        contact: "cert@a.example".into(),
        public_url: Some("http://127.0.0.1:9".into()),
        api_root: "/concord/".into(),
        tls_certificate: None,
        jurisdiction: Some("DE".into()),
    };
    let service = JoinService {
        me,
        files: PeerFiles {
            within: Some(dir.path().join("peer-files")),
            refused: vec![],
        },
        // The joining nodes of these tests say they listen on loopback: allowed explicitly.
        outbound: Arc::new(concord_sync::Outbound::allowing(&["127.0.0.0/8"]).unwrap()),
    };
    Inviting {
        _dir: dir,
        store,
        egress,
        service,
    }
}

fn invite(a: &Inviting, expires_secs: u64) -> doc::Invitation {
    join::invite(
        a.store.as_ref(),
        &a.service.me,
        &NewInvitation {
            partner: "cert-fr".into(),
            jurisdiction: "FR".into(),
            read: vec!["intel".into()],
            expires_secs,
            ..Default::default()
        },
    )
    .unwrap()
    .invitation
}

fn request(inv: &doc::Invitation, key: &NodeKey, edit: impl FnOnce(&mut JoinRequest)) -> Vec<u8> {
    let mut r = JoinRequest {
        kind: doc::REQUEST_TYPE.into(),
        version: doc::VERSION,
        invitation: inv.id.clone(),
        secret: inv.secret.clone(),
        inviter_key: inv.node_key.clone(),
        identity: doc::node_identity(
            "identity--5a1f3a8e-2f44-4c0e-9f7e-1d9a0c3b2e11",
            "2026-01-01T00:00:00.000Z",
            "CERT B",
            "",
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
    serde_json::to_vec(&doc::sign_request(key, r)).unwrap()
}

fn answer(a: &Inviting, body: &[u8]) -> (u16, Value) {
    join::answer_join(a.store.as_ref(), &a.egress, &a.service, body)
}

fn reason(v: &Value) -> String {
    v["answer"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An unknown invitation and a wrong secret: the same status and body, and nothing
/// written; once the secret is proven, the reason (foreign, then used), signed.
#[test]
fn answers_differ_only_once_the_secret_is_proven() {
    let a = inviting();
    let inv = invite(&a, 3600);
    let b = NodeKey::from_seed(&[2; 32]);
    let unknown = answer(
        &a,
        &request(&inv, &b, |r| {
            r.invitation = "00000000-0000-4000-8000-000000000000".into()
        }),
    );
    let wrong = answer(&a, &request(&inv, &b, |r| r.secret = "cd".repeat(32)));
    assert_eq!(unknown, wrong);
    assert_eq!(unknown.0, 403);
    assert!(
        unknown.1.get("answer").is_none(),
        "nothing signed: {unknown:?}"
    );
    // A request signed by another key than it names: refused before any look-up.
    let mut forged: Value = serde_json::from_slice(&request(&inv, &b, |_| {})).unwrap();
    forged["request"]["node_key"] = Value::String(NodeKey::from_seed(&[3; 32]).public_hex());
    let (status, body) = answer(&a, forged.to_string().as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("tampered join request"),
        "{body}"
    );
    // Foreign (the secret proven): refused, signed, not consumed.
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| {
            r.inviter_key = NodeKey::from_seed(&[4; 32]).public_hex()
        }),
    );
    assert_eq!(status, 409, "{body}");
    assert!(reason(&body).starts_with("foreign invitation"), "{body}");
    // Asking for what is not offered: refused.
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| r.push = vec![inv.collections[0].id.clone()]),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        reason(&body).contains("does not offer it for writing"),
        "{body}"
    );
    assert!(a.store.partners().unwrap().is_empty());
    // Joined, once: the answer is signed by the node key and carries the preview.
    let (status, body) = answer(&a, &request(&inv, &b, |_| {}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["answer"]["outcome"], "joined");
    assert_eq!(body["answer"]["serve"][0]["objects"], 0);
    let p = &a.store.partners().unwrap()[0];
    assert_eq!(p.details.node_key.as_deref(), Some(b.public_hex().as_str()));
    assert_eq!(p.details.origin, Some(format!("invitation:{}", inv.id)));
    // The same request again (its answer was lost): the same answer, nothing admitted twice.
    let (status, again) = answer(&a, &request(&inv, &b, |_| {}));
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, body);
    assert_eq!(a.store.partners().unwrap().len(), 1);
    // Another request with the used invitation: refused.
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| r.jurisdiction = Some("BE".into())),
    );
    assert_eq!(status, 409, "{body}");
    assert!(reason(&body).starts_with("used invitation"), "{body}");
    // An expired invitation, the secret proven: its reason (the joining node checks the
    // expiry first; this is the inviting node's own check, for a clock that differs).
    let mut expired = a.store.invitation(&inv.id).unwrap().unwrap();
    expired.id = "11111111-1111-4111-8111-111111111111".into();
    expired.partner = "cert-es".into();
    expired.used_ns = None;
    expired.used_by = None;
    expired.request_sha256 = None;
    expired.answer = None;
    expired.expires_ns = 1;
    a.store.put_invitation(&expired).unwrap();
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| r.invitation = expired.id.clone()),
    );
    assert_eq!(status, 409, "{body}");
    assert!(reason(&body).starts_with("expired invitation"), "{body}");
    assert_eq!(a.store.partners().unwrap().len(), 1);
}

/// Attack: many joins racing with one invitation and its secret (a replayed or leaked
/// secret racing the real joiner). Exactly one partner, and the peer it made keeps the key
/// file of the winner's request, whole: a loser never overwrites or removes it (each
/// attempt writes a file of its own).
#[test]
fn racing_joins_leave_the_winners_key_file_alone() {
    let a = inviting();
    let inv = invite(&a, 3600);
    let n = 8;
    let bodies: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let key = NodeKey::from_seed(&[10 + i as u8; 32]);
            let api_key = format!("key-of-racer-{i}");
            let body = request(&inv, &key, |r| {
                r.url = Some(format!("http://127.0.0.1:{}", 2000 + i));
                r.api_root = Some("/concord/".into());
                r.api_key = Some(api_key.clone());
                r.identity["id"] = Value::String(format!(
                    "identity--5a1f3a8e-2f44-4c0e-9f7e-1d9a0c3b2e{i:02}"
                ));
            });
            (api_key, body)
        })
        .collect();
    let barrier = std::sync::Barrier::new(n);
    let outcomes: Vec<(String, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|(k, body)| {
                let (a, barrier) = (&a, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (k.clone(), answer(a, body).0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<&(String, u16)> = outcomes.iter().filter(|(_, s)| *s == 201).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|(_, s)| *s == 201 || *s == 409),
        "{outcomes:?}"
    );
    assert_eq!(a.store.partners().unwrap().len(), 1);
    let peer = concord_sync::load_peer(a.store.as_ref(), "cert-fr").unwrap();
    let concord_sync::PeerAuth::Token { file } = &peer.auth else {
        panic!("{:?}", peer.auth)
    };
    let held = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(held.trim(), won[0].0, "{outcomes:?}");
    // The losers left nothing behind: one key file, no temporary.
    let dir = a.service.files.within.clone().unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Attack: a joining node that claims an identity id known here (the inviting node's own,
/// taken from the invitation, or one a partner already has) is refused, and the
/// invitation stays unused.
#[test]
fn a_joiner_cannot_take_an_identity_known_here() {
    let a = inviting();
    let inv = invite(&a, 3600);
    let b = NodeKey::from_seed(&[2; 32]);
    let own = inv.identity["id"].as_str().unwrap().to_owned();
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| r.identity["id"] = Value::String(own.clone())),
    );
    assert_eq!(status, 409, "{body}");
    assert!(reason(&body).starts_with("identity.id"), "{body}");
    assert!(a.store.partners().unwrap().is_empty());
    // Joined with its own identity; a second invitation, joined claiming that identity.
    let (status, body) = answer(&a, &request(&inv, &b, |_| {}));
    assert_eq!(status, 201, "{body}");
    let second = join::invite(
        a.store.as_ref(),
        &a.service.me,
        &NewInvitation {
            partner: "cert-es".into(),
            jurisdiction: "ES".into(),
            read: vec!["intel".into()],
            expires_secs: 3600,
            ..Default::default()
        },
    )
    .unwrap()
    .invitation;
    let c = NodeKey::from_seed(&[3; 32]);
    let (status, body) = answer(&a, &request(&second, &c, |_| {}));
    assert_eq!(status, 409, "{body}");
    assert!(
        reason(&body).contains("already has this identity"),
        "{body}"
    );
    assert_eq!(a.store.partners().unwrap().len(), 1);
    assert!(
        a.store
            .invitation(&second.id)
            .unwrap()
            .unwrap()
            .used_ns
            .is_none()
    );
}

/// Attack: texts of a join request that reach the inviting node's peer record, partner
/// directory, logs and pages — a URL with a header injected or a query, a URL over 2 KiB,
/// an API root that climbs, an identity name with a bidi override or a terminal escape, a
/// contact with a bell — are refused, naming the field; nothing is created and the
/// invitation stays unused, so the honest request that follows joins.
#[test]
fn hostile_texts_in_a_join_request_are_refused_naming_the_field() {
    let a = inviting();
    let inv = invite(&a, 3600);
    let b = NodeKey::from_seed(&[2; 32]);
    let reachable = |r: &mut JoinRequest, url: &str, root: &str| {
        r.url = Some(url.into());
        r.api_root = Some(root.into());
        r.api_key = Some("k".repeat(40));
    };
    type Edit<'a> = Box<dyn Fn(&mut JoinRequest) + 'a>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "url",
            Box::new(|r| reachable(r, "http://b.example\r\nX-Injected: 1", "/concord/")),
        ),
        (
            "url",
            Box::new(|r| reachable(r, "http://b.example/?x=1", "/concord/")),
        ),
        (
            "url",
            Box::new(|r| reachable(r, &format!("http://b.example/{}", "a".repeat(3000)), "/c/")),
        ),
        (
            "url",
            Box::new(|r| reachable(r, "http:///etc/passwd", "/c/")),
        ),
        (
            "api_root",
            Box::new(|r| reachable(r, "http://b.example", "/../../api/v1/")),
        ),
        (
            "api_root",
            Box::new(|r| reachable(r, "http://b.example", "/concord/?x=")),
        ),
        (
            "identity.name",
            Box::new(|r| r.identity["name"] = Value::String("CERT \u{202e}B".into())),
        ),
        (
            "identity.name",
            Box::new(|r| r.identity["name"] = Value::String("\u{1b}]0;owned\u{7}".into())),
        ),
        (
            "identity.name",
            Box::new(|r| r.identity["name"] = Value::String("B".repeat(300))),
        ),
        (
            "identity.contact_information",
            Box::new(|r| r.identity["contact_information"] = Value::String("ring\u{7}".into())),
        ),
    ];
    for (field, edit) in cases {
        let (status, body) = answer(&a, &request(&inv, &b, |r| edit(r)));
        assert_eq!(status, 409, "{field}: {body}");
        assert!(reason(&body).contains(field), "{field}: {body}");
        assert!(a.store.partners().unwrap().is_empty(), "{field}");
    }
    assert!(
        a.store
            .invitation(&inv.id)
            .unwrap()
            .unwrap()
            .used_ns
            .is_none()
    );
    // A contact on several lines is free text: accepted.
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| {
            reachable(r, "https://b.example:8443", "/concord/");
            r.identity["contact_information"] = Value::String("CERT B\nsoc@b.example".into());
        }),
    );
    assert_eq!(status, 201, "{body}");
}

/// Attack (blind SSRF, issue 19): a joining node that holds the secret gives a URL inside
/// the inviting node's network, for its scheduler to request. Under the default rule
/// (public addresses only) every such address is refused at the join, naming the URL, the
/// address and the rule; nothing is created and the invitation stays unused. A host name
/// is not resolved here (the answer would tell the joining node what it resolves to in
/// this network): it is checked at each connection.
#[test]
fn a_joining_url_inside_the_network_is_refused_by_default() {
    let mut a = inviting();
    a.service.outbound = Arc::new(concord_sync::Outbound::public_only());
    let inv = invite(&a, 3600);
    let b = NodeKey::from_seed(&[2; 32]);
    for (url, says) in [
        (
            "http://127.0.0.1:8080",
            "the address 127.0.0.1 is loopback (127.0.0.0/8, RFC 1122)",
        ),
        (
            "http://169.254.169.254",
            "the address 169.254.169.254 is link-local, where cloud metadata services answer",
        ),
        (
            "http://10.1.2.3:443",
            "the address 10.1.2.3 is private (10.0.0.0/8, RFC 1918)",
        ),
        (
            "https://[fd00::1]:8443",
            "unique local, private (fc00::/7, RFC 4193)",
        ),
        (
            "http://[::ffff:192.168.0.1]",
            "the IPv4-mapped (::ffff:0:0/96) form of 192.168.0.1, private",
        ),
        ("http://100.64.0.1", "CGNAT (100.64.0.0/10, RFC 6598)"),
        (
            "http://2130706433:80",
            "the host 2130706433, the IPv4 address 127.0.0.1, is loopback",
        ),
        (
            "http://localhost:8080",
            "the host localhost is loopback by name",
        ),
        ("http://0.0.0.0:8080", "unspecified"),
    ] {
        let (status, body) = answer(
            &a,
            &request(&inv, &b, |r| {
                r.url = Some(url.into());
                r.api_root = Some("/concord/".into());
                r.api_key = Some("k".repeat(40));
            }),
        );
        assert_eq!(status, 409, "{url}: {body}");
        let why = reason(&body);
        assert!(
            why.starts_with(&format!("url: URL \"{url}\": "))
                && why.contains(says)
                && why.contains("[outbound] allow"),
            "{url}: {why}"
        );
        assert!(a.store.partners().unwrap().is_empty(), "{url}");
        assert!(concord_sync::peers(a.store.as_ref()).unwrap().is_empty());
    }
    assert!(
        a.store
            .invitation(&inv.id)
            .unwrap()
            .unwrap()
            .used_ns
            .is_none()
    );
    // A public address joins.
    let (status, body) = answer(
        &a,
        &request(&inv, &b, |r| {
            r.url = Some("https://192.0.3.10:8443".into());
            r.api_root = Some("/concord/".into());
            r.api_key = Some("k".repeat(40));
        }),
    );
    assert_eq!(status, 201, "{body}");
}

/// Attack by the inviting side: an invitation whose offered alias is the name of a
/// collection the joining node has (and may share with others) does not make the join pull
/// into it unless the operator names it; refused before anything is sent or created.
#[test]
fn an_offered_alias_does_not_choose_an_existing_local_collection() {
    let a = inviting();
    let file = join::invite(
        a.store.as_ref(),
        &a.service.me,
        &NewInvitation {
            partner: "cert-fr2".into(),
            jurisdiction: "FR".into(),
            read: vec!["intel".into()],
            expires_secs: 3600,
            ..Default::default()
        },
    )
    .unwrap();
    let text = serde_json::to_string(&file).unwrap();
    // The joining node B has its own "intel".
    let b = inviting();
    let b_intel = b.store.collection("intel").unwrap().unwrap();
    let me_b = NodeSelf {
        key: Arc::new(NodeKey::from_seed(&[2; 32])),
        ..b.service.me.clone()
    };
    let run = |pull: &[&str]| {
        join::join(
            b.store.as_ref(),
            &b.egress,
            &me_b,
            &b.service.files,
            &text,
            &join::JoinOptions {
                name: Some("cert-de".into()),
                pull: pull.iter().map(|s| s.to_string()).collect(),
                timeout_secs: 2,
                outbound: b.service.outbound.clone(),
                ..Default::default()
            },
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    for pull in [&[][..], &["intel"][..]] {
        let e = run(pull);
        assert!(
            e.contains("this node has a collection \"intel\" already"),
            "{e}"
        );
    }
    assert!(b.store.partners().unwrap().is_empty());
    assert!(concord_sync::peers(b.store.as_ref()).unwrap().is_empty());
    // Named by the operator: accepted (the exchange is then tried: nobody listens there).
    let e = run(&["intel:intel"]);
    assert!(e.contains("join exchange with"), "{e}");
    assert_eq!(b.store.collection("intel").unwrap().unwrap().id, b_intel.id);
}
