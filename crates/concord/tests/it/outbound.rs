//! No blind SSRF through a partner's URL (issue 19): a partner holding an invitation secret
//! gives the URL the inviting node's scheduler will request. Real nodes (`concord serve`,
//! `concord join`, `concord sync`, `concord peer add`) on loopback, with real listeners
//! standing for the internal services a hostile URL would aim at: each must see no byte.
//! These nodes keep the default of `init` ([`Node::init_public_only`]: public addresses
//! only) or allow exactly what the test says.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::{Node, concord, run};
use crate::sync::{cli, cli_ok, sync};

/// A listener standing for an internal service: the first line of every request it got.
struct Trap {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Trap {
    /// Listens on `ip`, answers every connection with `answer` (an HTTP response).
    fn on(ip: &str, answer: String) -> Trap {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                seen.lock().unwrap().push(line.trim_end().to_owned());
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        Trap { port, requests }
    }

    fn not_found(ip: &str) -> Trap {
        Trap::on(
            ip,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        )
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Appends `[outbound] allow = [entries]` to the node's concord.toml.
fn allow(node: &Node, entries: &[&str]) {
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let list: Vec<String> = entries.iter().map(|e| format!("{e:?}")).collect();
    text.push_str(&format!("\n[outbound]\nallow = [{}]\n", list.join(", ")));
    std::fs::write(&config, text).unwrap();
}

/// `concord invite` on `a` for the partner `partner` (FR), reading `intel`.
fn invite(a: &Node, url: &str, partner: &str) -> std::path::PathBuf {
    let file = a.path().join(format!("invite-{partner}.json"));
    cli_ok(
        a,
        &[
            "invite",
            "--partner",
            partner,
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--url",
            url,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    file
}

/// `concord join FILE --name cert-de` on `b`, saying it is reachable at `public_url`.
fn join_as(b: &Node, file: &std::path::Path, public_url: &str) -> (i32, String) {
    let out = run(concord()
        .env("CONCORD_PUBLIC_URL", public_url)
        .args([
            "join",
            file.to_str().unwrap(),
            "--name",
            "cert-de",
            "--data-dir",
        ])
        .arg(b.path()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(node: &Node, what: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(&cli_ok(node, &[what, "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The finding: a joining node says it is reachable at `http://127.0.0.1:PORT/`, a service
/// of the inviting node's own machine. Refused at the join by default, naming the URL, the
/// address and the rule, with nothing created and no byte sent there; allowed once the
/// operator names loopback in `[outbound] allow`, and then requested by the sync round.
#[test]
fn a_joiner_url_on_loopback_is_refused_by_default_and_reached_when_allowed() {
    let a = Node::init_public_only(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    cli_ok(&a, &["collection", "create", "intel"]);
    let trap = Trap::not_found("127.0.0.1");
    let internal = format!("http://127.0.0.1:{}", trap.port);
    let sa = a.serve();
    let file = invite(&a, &sa.base, "cert-fr");
    let (code, err) = join_as(&b, &file, &internal);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the inviting node refused the join: url: URL \"{internal}\": the address \
             127.0.0.1 is loopback (127.0.0.0/8, RFC 1122): requests to a partner's URL reach \
             public addresses only (allow a network or host in [outbound] allow of \
             concord.toml to reach it)"
        )),
        "{err}"
    );
    assert!(names(&a, "partner").is_empty() && names(&a, "peer").is_empty());
    assert!(names(&b, "partner").is_empty() && names(&b, "peer").is_empty());
    // Nothing of A's may reach it either way: `sync` has no peer to run.
    let (code, reports) = sync(&a, &[]);
    assert_eq!((code, reports.len()), (0, 0));
    assert_eq!(trap.requests(), Vec::<String>::new());

    // The operator allows this machine's loopback (peers on one machine): the same URL is
    // accepted, and A's round requests it.
    drop(sa);
    allow(&a, &["127.0.0.1"]);
    let sa = a.serve();
    let file = invite(&a, &sa.base, "cert-fr2");
    let (code, err) = join_as(&b, &file, &internal);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&a, "peer"), ["cert-fr2"]);
    let (code, reports) = sync(&a, &["--peer", "cert-fr2"]);
    assert_eq!(code, 1, "the trap answers 404: {reports:?}");
    let got = trap.requests();
    assert!(
        got.first()
            .is_some_and(|r| r.starts_with("GET /concord/agreement/")),
        "{got:?}"
    );
}

/// DNS at connection time: a name that passes when the URL is accepted is checked again on
/// the addresses it resolves to at each connection. Here A allows only the IPv6 loopback,
/// so `localhost` is accepted at the join (it may resolve to ::1), but where it resolves to
/// 127.0.0.1 the round connects nowhere: the listener there sees nothing.
#[test]
fn a_name_resolving_to_a_refused_address_is_refused_at_connect_time() {
    let a = Node::init_public_only(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    allow(&a, &["::1"]);
    cli_ok(&a, &["collection", "create", "intel"]);
    let trap = Trap::not_found("127.0.0.1");
    let sa = a.serve();
    // A's invitation names its own loopback URL: B allows loopback (its tests' default).
    let file = invite(&a, &sa.base, "cert-fr");
    let by_name = format!("http://localhost:{}", trap.port);
    let (code, err) = join_as(&b, &file, &by_name);
    assert_eq!(code, 0, "{err}");
    let (code, reports) = sync(&a, &["--peer", "cert-fr"]);
    assert_eq!(code, 1, "{reports:?}");
    let error = reports[0]["error"].as_str().unwrap();
    assert!(error.contains("localhost"), "{error}");
    use std::net::ToSocketAddrs;
    let resolved: Vec<_> = ("localhost", trap.port)
        .to_socket_addrs()
        .unwrap()
        .collect();
    if resolved.iter().all(|a| a.is_ipv4()) {
        assert!(
            error.contains(&format!(
                "URL \"{by_name}/concord/agreement/\": the host localhost resolves to \
                 127.0.0.1, loopback (127.0.0.0/8, RFC 1122)"
            )),
            "{error}"
        );
    }
    assert_eq!(trap.requests(), Vec::<String>::new());
}

/// `peer add` (the operator's own input, checked with the same rule and resolved), a peer
/// that redirects to a refused address (not followed: the target sees nothing), and an
/// `[outbound]` entry that is no network, address or host name.
#[test]
fn peer_urls_and_redirects_stay_within_the_rule() {
    let a = Node::init_public_only(&["--jurisdiction", "DE"]);
    let hidden = Trap::not_found("127.0.0.2");
    let hidden_url = format!("http://127.0.0.2:{}/concord/collections/", hidden.port);
    let add = |name: &str, url: &str| {
        cli(
            &a,
            &[
                "peer",
                "add",
                name,
                url,
                "--api-root",
                "/concord/",
                "--collection",
                "intel:intel",
                "--pull",
            ],
        )
    };
    for (url, says) in [
        (
            "http://169.254.169.254/".to_owned(),
            "the address 169.254.169.254 is link-local, where cloud metadata services answer \
             (169.254.0.0/16, RFC 3927)",
        ),
        (
            format!("http://localhost:{}", hidden.port),
            "the host localhost is loopback by name (localhost, RFC 6761)",
        ),
        (
            "http://[::ffff:10.0.0.1]:8080".to_owned(),
            "the address ::ffff:10.0.0.1 is the IPv4-mapped (::ffff:0:0/96) form of 10.0.0.1, \
             private (10.0.0.0/8, RFC 1918)",
        ),
    ] {
        let (code, _, err) = add("evil", &url);
        assert_ne!(code, 0, "{url}: {err}");
        assert!(
            err.contains(&format!("peer URL {url:?}: {says}")) && err.contains("[outbound] allow"),
            "{url}: {err}"
        );
    }
    assert!(names(&a, "peer").is_empty());

    // This machine's 127.0.0.1 allowed, not 127.0.0.2: a peer there answers every request
    // with a redirect to 127.0.0.2.
    allow(&a, &["127.0.0.1"]);
    let (code, _, err) = add("hidden", &format!("http://127.0.0.2:{}", hidden.port));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("the address 127.0.0.2 is loopback"), "{err}");
    let redirecting = Trap::on(
        "127.0.0.1",
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {hidden_url}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    );
    let (code, _, err) = add("hub", &format!("http://127.0.0.1:{}", redirecting.port));
    assert_eq!(code, 0, "{err}");
    let (code, reports) = sync(&a, &["--peer", "hub"]);
    assert_eq!(code, 1, "{reports:?}");
    let error = reports[0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "HTTP 302: a redirect to {hidden_url:?}, not followed (requests go to the peer's \
             URL only)"
        )),
        "{error}"
    );
    assert!(!redirecting.requests().is_empty());
    assert_eq!(hidden.requests(), Vec::<String>::new());

    // A typo in the list stops the command that reads it, naming the entry.
    let config = a.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("allow = [\"127.0.0.1\"]", "allow = [\"10.0.0.1/8\"]"),
    )
    .unwrap();
    let (code, _, err) = cli(&a, &["sync"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("[outbound] allow[0] \"10.0.0.1/8\": bits are set after the prefix"),
        "{err}"
    );
}
