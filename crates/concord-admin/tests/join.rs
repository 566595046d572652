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
    let (status, body) = answer(&a, &request(&inv, &b, |_| {}));
    assert_eq!(status, 409, "{body}");
    assert!(reason(&body).starts_with("used invitation"), "{body}");
    // An expired invitation, the secret proven: its reason (the joining node checks the
    // expiry first; this is the inviting node's own check, for a clock that differs).
    let mut expired = a.store.invitation(&inv.id).unwrap().unwrap();
    expired.id = "11111111-1111-4111-8111-111111111111".into();
    expired.partner = "cert-es".into();
    expired.used_ns = None;
    expired.used_by = None;
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
