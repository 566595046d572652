//! Invite and join (issue 19, item 1): two fresh nodes, real `concord serve` processes on
//! loopback, become partners and peers of each other with `concord invite` and `concord
//! join` only, and one `concord sync` round moves what the preview said it would.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Node, TAXII};
use crate::sync::{GREEN, cli, cli_ok, import, indicator, sync};

const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

/// `concord invite` on `node`: the invitation file's path.
fn invite(node: &Node, url: &str, partner: &str, flags: &[&str]) -> PathBuf {
    let file = node.path().join(format!("invite-{partner}.json"));
    let mut args = vec![
        "invite",
        "--partner",
        partner,
        "--jurisdiction",
        "FR",
        "--url",
        url,
        "-o",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    cli_ok(node, &args);
    file
}

fn join(node: &Node, file: &Path, flags: &[&str]) -> (i32, String, String) {
    let mut args = vec!["join", file.to_str().unwrap()];
    args.extend_from_slice(flags);
    cli(node, &args)
}

fn partners(node: &Node) -> Vec<Value> {
    serde_json::from_str::<Value>(&cli_ok(node, &["partner", "list", "--json"]))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn peers(node: &Node) -> Vec<Value> {
    serde_json::from_str::<Value>(&cli_ok(node, &["peer", "list", "--json"]))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `(direction, collection title) → (objects, withheld)` of a preview.
fn flows(preview: &Value) -> std::collections::BTreeMap<(String, String), (u64, u64)> {
    preview
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                (
                    f["direction"].as_str().unwrap().to_owned(),
                    f["title"].as_str().unwrap().to_owned(),
                ),
                (
                    f["objects"].as_u64().unwrap(),
                    f["withheld"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The proof of issue 19: two fresh nodes joined by `invite` and `join` only, then one
/// `sync`; the objects arrive, and what flows is what the preview said, in both directions
/// (and what `partner preview` says on either node).
#[test]
fn two_fresh_nodes_join_and_sync_in_three_commands() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    import(
        &a,
        "intel",
        &[
            indicator("a1111111", "green.example.net", &[GREEN]),
            indicator("a2222222", "clear.example.net", &[CLEAR]),
            indicator("a3333333", "red.example.net", &[RED]),
        ],
    );
    cli_ok(&a, &["collection", "create", "inbox"]);
    // An agreement for the partner to be: exchanged at join (issue 19, item 5).
    let config = a.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[policy]\n[policy.agreements.de-fr]\npartners = [\"cert-fr\"]\n\
             end_date = \"2099-01-01T00:00:00Z\"\ntransfer_mechanism = \"gdpr-adequacy\"\n"
        ),
    )
    .unwrap();
    import(
        &b,
        "outbox",
        &[
            indicator("b1111111", "seen-in-fr.example.net", &[GREEN]),
            indicator("b2222222", "secret-fr.example.net", &[RED]),
        ],
    );
    let (sa, _sb) = (a.serve(), b.serve());

    // 1. invite, 2. join, 3. sync.
    let file = invite(
        &a,
        &sa.base,
        "cert-fr",
        &["--read", "intel", "--write", "inbox"],
    );
    let (code, out, err) = join(
        &b,
        &file,
        &[
            "--name",
            "cert-de",
            "--push",
            "outbox:inbox",
            "--pull",
            "intel",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let joined: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(joined["partner"], "cert-de");
    assert_eq!(joined["known_there_as"], "cert-fr");
    let preview = flows(&joined["preview"]);
    assert_eq!(
        preview,
        [
            (("push".to_owned(), "outbox".to_owned()), (1, 1)),
            // A does not tell B what it withholds from it.
            (("serve".to_owned(), "intel".to_owned()), (2, 0)),
        ]
        .into_iter()
        .collect(),
        "{joined}"
    );
    // The agreements were exchanged at join, before any round: each side holds the
    // other's signed document and knows the other holds its own.
    let shown = |node: &Node, p: &str| -> String {
        cli_ok(node, &["partner", "show", p])
            .lines()
            .find(|l| l.starts_with("agreement: "))
            .unwrap_or_else(|| panic!("no agreement line"))
            .to_owned()
    };
    let on_a = shown(&a, "cert-fr");
    let ours = on_a
        .strip_prefix("agreement: ours ")
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_owned();
    assert!(ours.starts_with("de-fr@"), "{on_a}");
    assert_eq!(
        on_a,
        format!(
            "agreement: ours {ours}; fetched by the partner {ours}; the partner holds none \
             (peer cert-fr)"
        )
    );
    assert_eq!(
        shown(&b, "cert-de"),
        format!(
            "agreement: ours -; fetched by the partner none; the partner holds {ours} \
             (until 2099-01-01T00:00:00Z) (peer cert-de)"
        )
    );
    // Either node says the same of what it would send its new partner.
    let on_a: Value =
        serde_json::from_str(&cli_ok(&a, &["partner", "preview", "cert-fr", "--json"])).unwrap();
    let on_b: Value =
        serde_json::from_str(&cli_ok(&b, &["partner", "preview", "cert-de", "--json"])).unwrap();
    let mut both = flows(&on_a["preview"]);
    both.extend(flows(&on_b["preview"]));
    // B also serves what it pushes (the inviting node may pull it too).
    assert_eq!(
        both.remove(&("serve".to_owned(), "outbox".to_owned())),
        Some((1, 1))
    );
    // A's operator sees what A withholds from B (B's answer did not say).
    assert_eq!(
        both.insert(("serve".to_owned(), "intel".to_owned()), (2, 0)),
        Some((2, 1))
    );
    assert_eq!(both, preview);

    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    let r = &reports[0];
    assert_eq!(r["peer"], "cert-de");
    // The preview equals what the first round moved.
    assert_eq!(r["pulled_added"], 2, "{r}");
    assert_eq!(r["pushed"], 1, "{r}");
    assert_eq!(r["withheld"], 1, "{r}");
    // The objects arrived, on both sides.
    let intel_b = cli_ok(&b, &["export", "--collection", "intel"]);
    assert!(intel_b.contains("green.example.net") && intel_b.contains("clear.example.net"));
    assert!(!intel_b.contains("red.example.net"));
    let inbox_a = cli_ok(&a, &["export", "--collection", "inbox"]);
    assert!(inbox_a.contains("seen-in-fr.example.net"), "{inbox_a}");
    assert!(!inbox_a.contains("secret-fr.example.net"));
    // Nothing left to push.
    let on_b: Value =
        serde_json::from_str(&cli_ok(&b, &["partner", "preview", "cert-de", "--json"])).unwrap();
    assert_eq!(
        flows(&on_b["preview"])[&("push".to_owned(), "outbox".to_owned())],
        (0, 0)
    );

    // Both sides know each other: identities, node keys, origin, and the peers' keys.
    let key = |n: &Node| cli_ok(n, &["node", "key"]).trim().to_owned();
    let (key_a, key_b) = (key(&a), key(&b));
    let on_a = partners(&a);
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a[0]["name"], "cert-fr");
    let peers_a = peers(&a);
    assert_eq!(peers_a[0]["node_key"], key_b.as_str());
    let peers_b = peers(&b);
    assert_eq!(peers_b[0]["node_key"], key_a.as_str());
    assert_eq!(peers_b[0]["partner"], "cert-de");
    let db_a = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    let p = &db_a.partners().unwrap()[0];
    assert_eq!(p.details.node_key.as_deref(), Some(key_b.as_str()));
    assert!(
        p.details
            .origin
            .as_deref()
            .unwrap()
            .starts_with("invitation:")
    );
    assert_eq!(p.details.identity.as_ref().unwrap()["type"], "identity");
    let db_b = concord_store::open(b.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    let p = &db_b.partners().unwrap()[0];
    assert_eq!(p.details.node_key.as_deref(), Some(key_a.as_str()));
    let identity = p.details.identity.as_ref().unwrap();
    assert!(
        identity["extensions"]
            .get(concord_sync::join::CONTACT_EXTENSION)
            .is_some(),
        "{identity}"
    );
    // Transfer packages between them import without --signed-by: each side's peer holds
    // the other's node key.
    import(
        &a,
        "intel",
        &[indicator("a4444444", "by-package.example.net", &[GREEN])],
    );
    let pkg = a.path().join("pkg");
    cli_ok(
        &a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "cert-fr",
            "--package",
            "-o",
            pkg.to_str().unwrap(),
        ],
    );
    let (code, out, err) = cli(
        &b,
        &[
            "import",
            "--json",
            "--collection",
            "by-package",
            pkg.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        cli_ok(&b, &["export", "--collection", "by-package"]).contains("by-package.example.net")
    );
    // The invitation holds no secret in the inviting node's store.
    let text = std::fs::read_to_string(&file).unwrap();
    let secret = serde_json::from_str::<Value>(&text).unwrap()["invitation"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let inv = &db_a.invitations().unwrap()[0];
    assert!(!inv.offer.contains(&secret) && inv.secret_sha256 != secret);
    assert_eq!(inv.used_by.as_deref(), Some(key_b.as_str()));
}

/// Re-signs an invitation file after `edit`, with the key in `key_file`.
fn resign(
    file: &Path,
    key: &concord_store::node_key::NodeKey,
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let text = std::fs::read_to_string(file).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    edit(&mut doc["invitation"]);
    let inv: concord_sync::join::Invitation =
        serde_json::from_value(doc["invitation"].clone()).unwrap();
    let signed = concord_sync::join::sign_invitation(key, inv);
    let out = file.with_extension(format!("{}.json", rand_suffix()));
    std::fs::write(&out, serde_json::to_string(&signed).unwrap()).unwrap();
    out
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("edit{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A used, expired, tampered, foreign or malformed invitation is refused with the reason,
/// and nothing is created on either side; an unknown invitation and a wrong secret get the
/// same answer; a refused foreign invitation is not consumed.
#[test]
fn bad_invitations_are_refused_with_the_reason_and_create_nothing() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    import(
        &a,
        "intel",
        &[indicator("c1111111", "x.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let file = invite(&a, &sa.base, "cert-fr", &["--read", "intel"]);
    let key_a =
        concord_store::node_key::NodeKey::load_or_create(&a.path().join("node.key")).unwrap();
    let other = concord_store::node_key::NodeKey::from_seed(&[9; 32]);
    let refused = |f: &Path, want: &str| {
        let (code, _, err) = join(&b, f, &["--name", "cert-de"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(partners(&b).is_empty() && peers(&b).is_empty(), "{err}");
        assert!(partners(&a).is_empty() && peers(&a).is_empty(), "{err}");
        err
    };
    // Tampered: a grant edited after signing.
    let tampered = file.with_extension("tampered.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &tampered,
        text.replacen("\"write\": false", "\"write\": true", 1),
    )
    .unwrap();
    refused(&tampered, "tampered invitation");
    // Malformed: not an invitation, a member missing.
    let malformed = file.with_extension("malformed.json");
    std::fs::write(&malformed, "{\"invitation\": {}, \"signature\": \"00\"}").unwrap();
    refused(&malformed, "malformed invitation");
    // Expired (signed by the inviting node, so only the date is wrong).
    let expired = resign(&file, &key_a, |i| {
        i["expires"] = json!("2020-01-01T00:00:00.000Z")
    });
    refused(&expired, "expired invitation");
    // Foreign: signed by a key the server at its URL does not hold.
    let foreign = resign(&file, &other, |i| i["node_key"] = json!(other.public_hex()));
    refused(&foreign, "foreign invitation");
    // An unknown invitation and a wrong secret: the same answer.
    let unknown = resign(&file, &key_a, |i| {
        i["id"] = json!("00000000-0000-4000-8000-000000000000")
    });
    let wrong = resign(&file, &key_a, |i| i["secret"] = json!("cd".repeat(32)));
    let e1 = refused(&unknown, "no such invitation, or the secret does not match");
    let e2 = refused(&wrong, "no such invitation, or the secret does not match");
    let tail = |e: &str| e.split_once("refused the join").unwrap().1.to_owned();
    assert_eq!(tail(&e1), tail(&e2));
    // --mtls with a node serving plain HTTP is refused with the reason, before anything
    // is sent.
    let (code, _, err) = join(&b, &file, &["--name", "cert-de", "--mtls"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--mtls: the inviting node serves plain HTTP"),
        "{err}"
    );
    // None of that consumed the invitation: it still joins, once.
    let (code, _, err) = join(&b, &file, &["--name", "cert-de"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(partners(&a).len(), 1);
    let c = Node::init();
    let (code, _, err) = cli(&c, &["join", file.to_str().unwrap(), "--name", "cert-de"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("used invitation"), "{err}");
    assert!(partners(&c).is_empty() && peers(&c).is_empty());
    assert_eq!(partners(&a).len(), 1);
}

/// The join endpoint's limits are the server's layers: a body over `join_body_bytes` is
/// refused 413 before it is read, and attempts beyond `failures_per_source` per minute from
/// one address are refused 429 with `Retry-After`.
#[test]
fn the_join_endpoint_is_held_to_its_limits() {
    let a = Node::init();
    let sa = a.serve();
    let agent = crate::support::Server::agent();
    let url = format!("{}/concord/join/", sa.base);
    let big = "x".repeat(70_000);
    let resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(big.as_str())
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Each attempt names another invitation: the per-source quota (30 a minute) is hit,
    // not the per-invitation one (10).
    let mut statuses = Vec::new();
    for n in 0..31 {
        let resp = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", TAXII)
            .send(
                json!({"request": {"invitation": format!("inv-{n}")}})
                    .to_string()
                    .as_str(),
            )
            .unwrap();
        statuses.push((
            resp.status().as_u16(),
            resp.headers().get("retry-after").is_some(),
        ));
    }
    assert!(
        statuses[..30].iter().all(|(s, _)| *s == 400),
        "{statuses:?}"
    );
    assert_eq!(statuses[30], (429, true), "{statuses:?}");
    // One invitation id named by attempts that prove no secret: they spend the source's
    // quota, not the invitation's (10), which only attempts proving the secret spend
    // (`attack::an_invitation_id_alone_cannot_hold_the_real_joiner_off`).
    let b = Node::init();
    let sb = b.serve();
    let url = format!("{}/concord/join/", sb.base);
    let statuses: Vec<u16> = (0..11)
        .map(|_| {
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(
                    json!({"request": {"invitation": "one"}})
                        .to_string()
                        .as_str(),
                )
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [400; 11], "{statuses:?}");
}

/// A self-signed certificate and its key (openssl's defaults: a CA certificate, which no
/// chain validation accepts as a server's, so only a pin can trust it).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `concord invite` with the TLS settings `tls` (it reads tls_cert as `serve` does).
fn invite_tls(a: &Node, url: &str, tls: &[(&str, &str)], file: &Path) {
    let out = crate::support::run(
        crate::support::concord()
            .envs(tls.iter().copied())
            .args([
                "invite",
                "--partner",
                "cert-fr",
                "--jurisdiction",
                "FR",
                "--read",
                "intel",
            ])
            .args(["--url", url, "-o", file.to_str().unwrap(), "--data-dir"])
            .arg(a.path()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node that serves TLS pins its certificate in the invitation: the joining node trusts
/// exactly that certificate, no CA (a self-signed CA certificate, which chain validation
/// refuses as a server's, works), for the exchange and for every round; a server that
/// presents another certificate is refused before anything is sent.
#[test]
fn a_join_over_tls_trusts_the_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "node-a");
    let (other, _) = self_signed(dir.path(), "not-a");
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    import(
        &a,
        "intel",
        &[indicator("d1111111", "tls-join.example.net", &[GREEN])],
    );
    let tls = [
        ("CONCORD_TLS_CERT", cert.to_str().unwrap()),
        ("CONCORD_TLS_KEY", key.to_str().unwrap()),
    ];
    let sa = a.serve_with(&tls);
    assert!(sa.base.starts_with("https://"), "{}", sa.base);
    // An invitation pinning another certificate than the server presents: refused in the
    // handshake, nothing created.
    let wrong = a.path().join("wrong.json");
    invite_tls(
        &a,
        &sa.base,
        &[("CONCORD_TLS_CERT", other.to_str().unwrap())],
        &wrong,
    );
    let (code, _, err) = join(&b, &wrong, &["--name", "cert-de"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not the pinned one"), "{err}");
    assert!(partners(&a).is_empty() && partners(&b).is_empty());
    // The right pin: joined, and the round trusts the same certificate.
    let file = a.path().join("invite.json");
    invite_tls(&a, &sa.base, &tls, &file);
    let inv: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let pin = inv["invitation"]["tls_pin_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(pin.len(), 64);
    let (code, _, err) = join(&b, &file, &["--name", "cert-de"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(peers(&b)[0]["tls"]["pin_sha256"], pin.as_str());
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    // A pin edited in the file: its signature breaks.
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&pin, &"0".repeat(64));
    let f = a.path().join("other-pin.json");
    std::fs::write(&f, edited).unwrap();
    let (code, _, err) = join(&b, &f, &["--name", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("tampered invitation"), "{err}");
}
/// Two nodes join with one invitation at the same time: one is admitted, the other is told
/// the invitation was used, and only the first has a partner and a peer on either side.
#[test]
fn two_joins_racing_with_one_invitation_admit_one() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("e1111111", "race.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let file = invite(&a, &sa.base, "cert-fr", &["--read", "intel"]);
    let (b, c) = (Node::init(), Node::init());
    let outcomes: Vec<(i32, String)> = std::thread::scope(|s| {
        let joins: Vec<_> = [&b, &c]
            .into_iter()
            .map(|n| {
                let file = file.clone();
                s.spawn(move || {
                    let (code, _, err) = join(n, &file, &["--name", "cert-de"]);
                    (code, err)
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let won: Vec<&(i32, String)> = outcomes.iter().filter(|(c, _)| *c == 0).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    let lost = outcomes.iter().find(|(c, _)| *c != 0).unwrap();
    assert_eq!(lost.0, 1, "{outcomes:?}");
    assert!(lost.1.contains("used invitation"), "{outcomes:?}");
    assert_eq!(partners(&a).len(), 1);
    assert_eq!(peers(&a).len(), 1);
    assert_eq!(partners(&b).len() + partners(&c).len(), 1);
    assert_eq!(peers(&b).len() + peers(&c).len(), 1);
}

/// `concord ARGS --data-dir NODE` with extra environment variables (settings of
/// concord.toml, `CONCORD_*`).
fn cli_env(node: &Node, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = crate::support::run(
        crate::support::concord()
            .envs(env.iter().copied())
            .args(args)
            .arg("--data-dir")
            .arg(node.path()),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The peer record `name` of `node`, as the store keeps it.
fn peer_record(node: &Node, name: &str) -> concord_sync::Peer {
    let db = concord_store::open(node.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    concord_sync::load_peer(db.as_ref(), name).unwrap()
}

/// The partner `name` of `node`, as the store keeps it.
fn partner_record(node: &Node, name: &str) -> concord_store::Partner {
    let db = concord_store::open(node.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    db.partners()
        .unwrap()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

/// SHA-256 (hex) of the DER of the first certificate of a PEM file.
fn pem_pin(file: &str) -> String {
    let pem = std::fs::read(file).unwrap();
    concord_sync::join::certificate_pin(&concord_sync::join::first_certificate_der(&pem).unwrap())
}

/// `GET {api-root}collections/` as `peer` says (its URL, key, pinned server certificate and
/// client certificate): the number of collections, or the error.
fn collections_as(peer: &concord_sync::Peer) -> Result<usize, String> {
    // The test nodes are on loopback: allowed explicitly, as their concord.toml does.
    let loopback = std::sync::Arc::new(concord_sync::Outbound::allowing(&["127.0.0.0/8"]).unwrap());
    let client =
        concord_sync::Client::new(peer, 1, std::time::Duration::from_millis(10), &loopback)
            .map_err(|e| e.to_string())?;
    client
        .collections()
        .map(|c| c.len())
        .map_err(|e| e.to_string())
}

/// The proof of `join --mtls` (issue 19): both nodes serve TLS with self-signed
/// certificates; the join exchanges client certificates (made by each node, keys kept in
/// its data directory, 0600), each node binds the other's API key to the other's
/// certificate, and the first rounds, both ways, use them. A key presented without its
/// certificate, or with another partner's, is refused exactly as a wrong key; a certificate
/// no partner pinned is refused in the handshake. The peer's agreement document is read
/// under `peer_agreement_bytes`.
#[test]
fn a_join_with_mtls_binds_each_key_to_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = self_signed(dir.path(), "node-a");
    let (cert_b, key_b) = self_signed(dir.path(), "node-b");
    let (cert_x, key_x) = self_signed(dir.path(), "someone-else");
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    import(
        &a,
        "intel",
        &[indicator("f1111111", "mtls-intel.example.net", &[GREEN])],
    );
    cli_ok(&a, &["collection", "create", "inbox"]);
    import(
        &b,
        "outbox",
        &[indicator("f2222222", "mtls-outbox.example.net", &[GREEN])],
    );
    let tls_a = [
        ("CONCORD_TLS_CERT", cert_a.to_str().unwrap()),
        ("CONCORD_TLS_KEY", key_a.to_str().unwrap()),
    ];
    let tls_b = [
        ("CONCORD_TLS_CERT", cert_b.to_str().unwrap()),
        ("CONCORD_TLS_KEY", key_b.to_str().unwrap()),
    ];
    let (sa, sb) = (a.serve_with(&tls_a), b.serve_with(&tls_b));
    assert!(sa.base.starts_with("https://") && sb.base.starts_with("https://"));
    let file = a.path().join("invite.json");
    let out = crate::support::run(
        crate::support::concord()
            .envs(tls_a.iter().copied())
            .args(["invite", "--partner", "cert-fr", "--jurisdiction", "FR"])
            .args(["--read", "intel", "--write", "inbox", "--url", &sa.base])
            .args(["-o", file.to_str().unwrap(), "--data-dir"])
            .arg(a.path()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // B is reachable at its TLS address: A gets a client certificate for calling it too.
    let mut env_b = tls_b.to_vec();
    env_b.push(("CONCORD_PUBLIC_URL", sb.base.as_str()));
    let (code, _, err) = cli_env(
        &b,
        &env_b,
        &[
            "join",
            file.to_str().unwrap(),
            "--name",
            "cert-de",
            "--mtls",
            "--pull",
            "intel",
            "--push",
            "outbox:inbox",
        ],
    );
    assert_eq!(code, 0, "{err}");

    // Each side made its own client certificate; the other side holds its pin.
    let peer_b = peer_record(&b, "cert-de");
    let peer_a = peer_record(&a, "cert-fr");
    let b_cert = peer_b
        .tls
        .client_cert
        .clone()
        .expect("B's client certificate");
    let a_cert = peer_a
        .tls
        .client_cert
        .clone()
        .expect("A's client certificate");
    let pin_b = pem_pin(&b_cert);
    let pin_a = pem_pin(&a_cert);
    assert_ne!(pin_a, pin_b);
    assert_eq!(
        partner_record(&a, "cert-fr").details.client_cert_sha256,
        Some(pin_b.clone())
    );
    assert_eq!(
        partner_record(&b, "cert-de").details.client_cert_sha256,
        Some(pin_a.clone())
    );
    // The private keys stay where they were made: in the data directory, owner-only.
    for (node, peer) in [(&a, &peer_a), (&b, &peer_b)] {
        let key = peer.tls.client_key.clone().unwrap();
        assert!(std::path::Path::new(&key).starts_with(node.path()), "{key}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
    }
    // Each trusts the other's server by its pin.
    assert_eq!(
        peer_b.tls.pin_sha256.as_deref(),
        Some(pem_pin(cert_a.to_str().unwrap()).as_str())
    );
    assert_eq!(
        peer_a.tls.pin_sha256.as_deref(),
        Some(pem_pin(cert_b.to_str().unwrap()).as_str())
    );

    // B's round with A: pull and push over mutual TLS.
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    assert_eq!(reports[0]["pushed"], 1, "{}", reports[0]);
    assert!(cli_ok(&a, &["export", "--collection", "inbox"]).contains("mtls-outbox.example.net"));
    // A's round with B: A pulls what B lets it read, presenting its own certificate.
    {
        let db = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
        let outbox = concord_store::open(b.path().join("concord.sqlite").to_str().unwrap())
            .unwrap()
            .collection("outbox")
            .unwrap()
            .unwrap();
        let mut p = concord_sync::load_peer(db.as_ref(), "cert-fr").unwrap();
        cli_ok(&a, &["collection", "create", "from-fr"]);
        p.mappings.push(concord_sync::Mapping {
            remote: outbox.id,
            local: db.collection("from-fr").unwrap().unwrap().id,
            pull: true,
            push: false,
        });
        db.set_setting("peer/cert-fr", &serde_json::to_string(&p).unwrap())
            .unwrap();
    }
    let (code, reports) = sync(&a, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
    assert!(cli_ok(&a, &["export", "--collection", "from-fr"]).contains("mtls-outbox.example.net"));

    // B's key at A: with its certificate it works; without it, or with another partner's,
    // the answer is exactly that of a wrong key.
    assert_eq!(collections_as(&peer_b), Ok(2));
    let wrong_key_file = dir.path().join("wrong.token");
    let token = std::fs::read_to_string(match &peer_b.auth {
        concord_sync::PeerAuth::Token { file } => file,
        other => panic!("{other:?}"),
    })
    .unwrap();
    // The same key id, another secret.
    let (prefix, secret) = token.trim().rsplit_once('_').unwrap();
    let flipped: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    std::fs::write(&wrong_key_file, format!("{prefix}_{flipped}")).unwrap();
    let as_b = |key: Option<&std::path::Path>, cert: Option<(&str, &str)>| {
        let mut p = peer_b.clone();
        if let Some(k) = key {
            p.auth = concord_sync::PeerAuth::Token {
                file: k.to_str().unwrap().to_owned(),
            };
        }
        p.tls.client_cert = cert.map(|c| c.0.to_owned());
        p.tls.client_key = cert.map(|c| c.1.to_owned());
        collections_as(&p)
    };
    let wrong_key = as_b(Some(&wrong_key_file), None).unwrap_err();
    assert!(wrong_key.contains("HTTP 401"), "{wrong_key}");
    let without_cert = as_b(None, None).unwrap_err();
    assert_eq!(without_cert, wrong_key);
    // Another partner of A, with a pinned certificate of its own.
    cli_ok(&a, &["partner", "add", "cert-xx", "--jurisdiction", "IT"]);
    cli_ok(
        &a,
        &[
            "partner",
            "set",
            "cert-xx",
            "--client-cert-sha256",
            &pem_pin(cert_x.to_str().unwrap()),
        ],
    );
    let other_cert = (cert_x.to_str().unwrap(), key_x.to_str().unwrap());
    // Read again within a second of the handshake (ClientPins::MAX_AGE); the client retries.
    let with_other = (0..20)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            as_b(None, Some(other_cert)).unwrap_err()
        })
        .find(|e| e.contains("HTTP"))
        .expect("a handshake with another partner's pinned certificate");
    assert_eq!(with_other, wrong_key);
    // Another partner's certificate with a wrong key: the same answer again.
    assert_eq!(
        as_b(Some(&wrong_key_file), Some(other_cert)).unwrap_err(),
        wrong_key
    );
    // A certificate no partner pinned is refused in the handshake, before any request.
    let b_key = peer_b.tls.client_key.clone().unwrap();
    let mut stray = peer_b.clone();
    let (cert_s, key_s) = self_signed(dir.path(), "stray");
    stray.tls.client_cert = Some(cert_s.to_str().unwrap().to_owned());
    stray.tls.client_key = Some(key_s.to_str().unwrap().to_owned());
    let e = collections_as(&stray).unwrap_err();
    assert!(!e.contains("HTTP"), "{e}");
    // B's own certificate with B's key still works.
    assert_eq!(as_b(None, Some((&b_cert, &b_key))), Ok(2));

    // The peer's agreement document is read under peer_agreement_bytes.
    let config = b.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[limits]\npeer_agreement_bytes = 64\n"),
    )
    .unwrap();
    let (code, out, err) = cli(&b, &["sync", "--json"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("the answer is over peer_agreement_bytes (64 bytes)"),
        "{out}\n{err}"
    );
}

/// A join answer lost on the way (issue 19): the same signed request sent again, within the
/// invitation's validity, gets the same answer, and nothing is admitted twice; any other
/// request with that invitation is refused "used".
#[test]
fn a_join_request_sent_twice_gets_the_same_answer() {
    use concord_sync::join::{self as doc, JoinRequest};
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f3333333", "twice.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let file = invite(&a, &sa.base, "cert-fr", &["--read", "intel"]);
    let inv = doc::read_invitation(&std::fs::read_to_string(&file).unwrap(), 0).unwrap();
    let joiner = concord_store::node_key::NodeKey::from_seed(&[5; 32]);
    let request = |identity_id: &str| {
        doc::sign_request(
            &joiner,
            JoinRequest {
                kind: doc::REQUEST_TYPE.into(),
                version: doc::VERSION,
                invitation: inv.id.clone(),
                secret: inv.secret.clone(),
                inviter_key: inv.node_key.clone(),
                identity: doc::node_identity(
                    identity_id,
                    "2026-01-01T00:00:00.000Z",
                    "CERT FR",
                    "cert@fr.example",
                ),
                node_key: joiner.public_hex(),
                jurisdiction: Some("FR".into()),
                url: None,
                api_root: None,
                api_key: None,
                pull: vec![inv.collections[0].id.clone()],
                push: vec![],
                agreement: None,
                tls_pin_sha256: None,
                client_cert_sha256: None,
            },
        )
    };
    let first = request("identity--7c1a0f4e-2b53-4c8e-9d61-0a1b2c3d4e5f");
    let post = |r: &doc::JoinRequestFile| {
        let mut resp = crate::support::Server::agent()
            .post(format!("{}/concord/join/", sa.base))
            .header("Content-Type", "application/json")
            .send(serde_json::to_string(r).unwrap().as_str())
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let (s1, body1) = post(&first);
    assert_eq!(s1, 201, "{body1}");
    // The answer was lost: the same request again.
    let (s2, body2) = post(&first);
    assert_eq!(s2, 201, "{body2}");
    assert_eq!(body1, body2, "the same answer, byte for byte");
    let answer: Value = serde_json::from_str(&body2).unwrap();
    assert_eq!(answer["answer"]["outcome"], "joined");
    assert_eq!(
        answer["answer"]["request_sha256"],
        doc::request_digest(&first.request).as_str()
    );
    assert!(
        answer["answer"]["api_key"]
            .as_str()
            .unwrap()
            .starts_with("concord_")
    );
    // One partner, one peer: nothing admitted twice.
    assert_eq!(partners(&a).len(), 1);
    assert_eq!(peers(&a).len(), 1);
    // The key the repeated answer carries is the partner's key.
    let key = answer["answer"]["api_key"].as_str().unwrap();
    let bearer = format!("Bearer {key}");
    let reply = sa.request(
        "GET",
        "/concord/collections/",
        &[("Authorization", &bearer), ("Accept", TAXII)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Another request with the used invitation (another identity, so another digest).
    let (s3, body3) = post(&request("identity--8d2b1f5e-3c64-4d9f-8e72-1b2c3d4e5f60"));
    assert_eq!(s3, 409, "{body3}");
    assert!(body3.contains("used invitation"), "{body3}");
    // The stored answer is sealed: the row holds neither the key nor the answer's text.
    let db = concord_store::open(a.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    let row = db.invitation(&inv.id).unwrap().unwrap();
    let sealed = row.answer.unwrap();
    assert!(!sealed.contains(key) && !sealed.contains("joined"));
    assert_eq!(
        row.request_sha256.as_deref(),
        Some(doc::request_digest(&first.request).as_str())
    );
}

/// Reads one HTTP/1.1 message (a header ending in an empty line, then `Content-Length`
/// bytes) from `from`: its bytes.
fn read_message(from: &mut impl std::io::Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(from.read(&mut byte).unwrap(), 1, "the message ended early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    from.read_exact(&mut body).unwrap();
    buf.extend(body);
    buf
}

/// A relay on loopback to `target` that loses the first answer: it passes the first
/// request on, reads the whole answer and closes the client's connection without a byte of
/// it (a connection dropped after the inviting node committed). The next connection is
/// relayed both ways. Its URL.
fn losing_relay(target: &str) -> String {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    let target = target.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(&target).unwrap();
        let request = read_message(&mut client);
        server.write_all(&request).unwrap();
        let _lost = read_message(&mut server);
        drop(client);
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(&target).unwrap();
        let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c1, &mut s1);
            let _ = s1.shutdown(std::net::Shutdown::Write);
        });
        let (mut c2, mut s2) = (client, server);
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Both);
        let _ = up.join();
    });
    url
}

/// A join whose answer is lost after the inviting node committed (issue 19): `concord join`
/// sends the same signed request again, gets the same answer, and both sides end with the
/// partner and peer of one join.
#[test]
fn a_lost_join_answer_is_recovered_by_the_retry() {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[indicator("f4444444", "lost-answer.example.net", &[GREEN])],
    );
    let sa = a.serve();
    let relay = losing_relay(&sa.base);
    let file = invite(&a, &relay, "cert-fr", &["--read", "intel"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    let (code, _, err) = join(&b, &file, &["--name", "cert-de"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(partners(&a).len(), 1);
    assert_eq!(peers(&a).len(), 1);
    assert_eq!(partners(&b).len(), 1);
    assert_eq!(peers(&b).len(), 1);
    // The key B holds is the one A admitted: the first round pulls through the relay… which
    // is gone, so through A directly.
    let db = concord_store::open(b.path().join("concord.sqlite").to_str().unwrap()).unwrap();
    let mut p = concord_sync::load_peer(db.as_ref(), "cert-de").unwrap();
    p.url = sa.base.clone();
    db.set_setting("peer/cert-de", &serde_json::to_string(&p).unwrap())
        .unwrap();
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 1, "{}", reports[0]);
}
