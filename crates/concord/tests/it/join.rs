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
    // --mtls is refused with its reason, before anything is sent.
    let (code, _, err) = join(&b, &file, &["--name", "cert-de", "--mtls"]);
    assert_eq!(code, 1);
    assert!(err.contains("--mtls"), "{err}");
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
    // One invitation id: its own quota (10 a minute), from any source.
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
    assert_eq!(statuses[..10], [400; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
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
