//! Webhooks (issue 21, item 2): a real `concord serve` POSTs to a real receiver on loopback,
//! which checks each signature over the exact body bytes (with `openssl`, not Concord's
//! code).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Node;
use crate::sync::{GREEN, cli, cli_ok, import, indicator, partner};

const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const SECRET: &str = "a-webhook-secret-of-32-characters";

/// One request the receiver got.
struct Got {
    headers: BTreeMap<String, String>,
    body: String,
}

/// A receiver on loopback: answers each POST with the next status of `answers` (204 once
/// they are used up; a 3xx carries `Location: redirect`; 0: no answer, the connection held
/// open), and sends what it got.
fn receiver(answers: Arc<Mutex<VecDeque<u16>>>, redirect: String) -> (String, Receiver<Got>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = answers.lock().unwrap().pop_front().unwrap_or(204);
            if status == 0 {
                // No answer: the connection held open far longer than any test runs.
                let _ = tx.send(Got {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(600));
                    drop(conn);
                });
                continue;
            }
            let reply = if (300..400).contains(&status) {
                format!(
                    "HTTP/1.1 {status} Moved\r\nLocation: {redirect}\r\nContent-Length: 0\r\n\r\n"
                )
            } else {
                format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n")
            };
            let _ = conn.write_all(reply.as_bytes());
            let body = String::from_utf8(body).unwrap();
            let _ = tx.send(Got { headers, body });
        }
    });
    (url, rx)
}

/// `sha256=HEX` of `body` under [`SECRET`], by `openssl dgst -hmac`.
fn openssl_signature(body: &str) -> String {
    let mut openssl = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = String::from_utf8(openssl.wait_with_output().unwrap().stdout).unwrap();
    format!("sha256={}", out.split_whitespace().next().unwrap())
}

/// Every object id of a delivery, after checking its signature, its delivery id and its
/// webhook name.
fn checked_ids(got: &Got, hook: &str) -> Vec<String> {
    assert_eq!(
        got.headers.get("x-concord-signature"),
        Some(&openssl_signature(&got.body)),
        "signature of {}",
        got.body
    );
    assert!(got.headers.contains_key("x-concord-delivery"));
    let doc: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(doc["webhook"], hook);
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

fn show(node: &Node, name: &str) -> Value {
    serde_json::from_str(&cli_ok(node, &["webhook", "show", name, "--json"])).unwrap()
}

/// Waits (up to `secs`) until `f` holds of `webhook show NAME --json`.
fn wait_show(node: &Node, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let doc = show(node, name);
        if f(&doc) {
            return doc;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "webhook {name} never got there: {doc}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Collects deliveries from `rx` until every id of `want` was seen (up to 30 s); the ids
/// seen, in order, with repeats.
fn collect_until(rx: &Receiver<Got>, hook: &str, want: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    let start = Instant::now();
    while !want.iter().all(|w| seen.iter().any(|s| s == w)) {
        let left = Duration::from_secs(30).saturating_sub(start.elapsed());
        let got = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{hook}: only {seen:?} within 30 s, want {want:?}"));
        seen.extend(checked_ids(&got, hook));
    }
    seen
}

fn hook_args<'a>(name: &'a str, url: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "webhook",
        "add",
        name,
        "--url",
        url,
        "--secret-file",
        key,
        "--json",
    ];
    args.extend_from_slice(extra);
    args
}

/// A partner's webhook sends the new objects that partner would receive, each once, signed
/// over the exact body, and never its TLP:RED object, across a restart of `serve`; the
/// operator's webhook sends the stored objects, RED too; objects held before `add` are not
/// sent; `webhook show` gives cursors, last success and no dead letters; the door is
/// audited as `webhook`.
#[test]
fn webhooks_send_new_objects_once_signed_and_a_partner_never_red() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    partner(&node, "cert-br", "BR", &["--read", "intel"]);
    std::fs::write(node.path().join("hook.key"), SECRET).unwrap();
    let key = node.path().join("hook.key");
    let key = key.to_str().unwrap();
    import(
        &node,
        "intel",
        &[indicator("00000001", "old.example", &[GREEN])],
    );
    let no_answers = || Arc::new(Mutex::new(VecDeque::new()));
    let (p_url, p_rx) = receiver(no_answers(), String::new());
    let (o_url, o_rx) = receiver(no_answers(), String::new());
    cli_ok(
        &node,
        &hook_args(
            "to-br",
            &p_url,
            key,
            &["--partner", "cert-br", "--collection", "intel"],
        ),
    );
    cli_ok(
        &node,
        &hook_args("ops", &o_url, key, &["--type", "indicator"]),
    );
    let listed: Value =
        serde_json::from_str(&cli_ok(&node, &["webhook", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let green = indicator("00000002", "green.example", &[GREEN]);
    let red = indicator("00000003", "red.example", &[RED]);
    import(&node, "intel", &[green.clone(), red.clone()]);
    let server = node.serve();
    let green_id = green["id"].as_str().unwrap();
    let red_id = red["id"].as_str().unwrap();
    let mut partner_seen = collect_until(&p_rx, "to-br", &[green_id]);
    let mut operator_seen = collect_until(&o_rx, "ops", &[green_id, red_id]);

    // Killed and started again: the next object arrives once, nothing before it again.
    drop(server);
    let later = indicator("00000004", "later.example", &[GREEN]);
    let later_id = later["id"].as_str().unwrap();
    import(&node, "intel", std::slice::from_ref(&later));
    let _server = node.serve();
    partner_seen.extend(collect_until(&p_rx, "to-br", &[later_id]));
    operator_seen.extend(collect_until(&o_rx, "ops", &[later_id]));
    // Until both are idle (their cursors at the last object), then nothing more arrives.
    for hook in ["to-br", "ops"] {
        wait_show(&node, hook, 30, |d| {
            d["queue"].as_array().unwrap().is_empty()
                && d["cursors"]
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|c| c["id"] == later_id)
        });
    }
    while let Ok(got) = p_rx.recv_timeout(Duration::from_millis(100)) {
        partner_seen.extend(checked_ids(&got, "to-br"));
    }
    while let Ok(got) = o_rx.recv_timeout(Duration::from_millis(100)) {
        operator_seen.extend(checked_ids(&got, "ops"));
    }
    assert_eq!(partner_seen, [green_id, later_id]);
    operator_seen.sort();
    assert_eq!(operator_seen, [green_id, red_id, later_id]);

    let doc = show(&node, "to-br");
    assert!(doc["last_success"].is_string(), "{doc}");
    assert_eq!(doc["last_error"], Value::Null);
    assert_eq!(doc["dead_letters"]["count"], 0);
    assert_eq!(doc["webhook"]["partner"], "cert-br");
    // The webhook's door is audited for the partner, like a page.
    let audit: Value = serde_json::from_str(&cli_ok(
        &node,
        &["audit", "show", "--json", "--partner", "cert-br"],
    ))
    .unwrap();
    let decisions: BTreeMap<&str, &str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["door"] == "webhook")
        .map(|e| {
            (
                e["object_id"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        BTreeMap::from([(green_id, "sent"), (red_id, "withheld"), (later_id, "sent")])
    );
}

/// A delivery redirected (never followed), not answered within `timeout_secs`, or answered
/// 5xx is retried with backoff under the same delivery id, then after `max_attempts`
/// dead-lettered and shown; `webhook retry` delivers it.
#[test]
fn failed_deliveries_are_retried_dead_lettered_and_retried_by_hand() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    std::fs::write(node.path().join("hook.key"), SECRET).unwrap();
    let key = node.path().join("hook.key");
    let key = key.to_str().unwrap();
    // Where a followed redirect would go: it must never see a request.
    let (elsewhere, elsewhere_rx) = receiver(Arc::new(Mutex::new(VecDeque::new())), String::new());
    let answers = Arc::new(Mutex::new(VecDeque::from([302, 0, 500])));
    let (url, rx) = receiver(answers.clone(), elsewhere);
    let mut toml = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    toml.push_str(
        "\n[webhooks]\nmax_attempts = 3\nbackoff_initial_secs = 1\nbackoff_max_secs = 1\ntimeout_secs = 1\nevery_secs = 1\n",
    );
    std::fs::write(node.path().join("concord.toml"), toml).unwrap();
    cli_ok(&node, &hook_args("flaky", &url, key, &[]));
    let server = node.serve();
    let obj = indicator("00000005", "flaky.example", &[GREEN]);
    import(&node, "intel", std::slice::from_ref(&obj));
    let doc = wait_show(&node, "flaky", 60, |d| d["dead_letters"]["count"] == 1);
    drop(server);
    let dead_id = doc["dead_letters"]["ids"][0].as_str().unwrap().to_owned();
    assert!(doc["queue"].as_array().unwrap().is_empty(), "{doc}");
    let last = doc["last_error"].as_str().unwrap();
    assert!(last.contains("HTTP 500"), "{doc}");
    // Three attempts, one body, one delivery id.
    let tries: Vec<Got> = (0..3)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("three attempts")
        })
        .collect();
    assert!(rx.try_recv().is_err(), "more than max_attempts");
    for t in &tries {
        assert_eq!(checked_ids(t, "flaky"), [obj["id"].as_str().unwrap()]);
        assert_eq!(t.headers["x-concord-delivery"], dead_id);
        assert_eq!(t.body, tries[0].body);
    }
    assert!(elsewhere_rx.try_recv().is_err(), "a redirect was followed");

    // By hand, now that the receiver answers 204.
    let out: Value =
        serde_json::from_str(&cli_ok(&node, &["webhook", "retry", "flaky", "--json"])).unwrap();
    assert_eq!(out["delivered"], json!([dead_id]));
    let again = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(again.headers["x-concord-delivery"], dead_id);
    assert_eq!(again.body, tries[0].body);
    assert_eq!(show(&node, "flaky")["dead_letters"]["count"], 0);
    // Nothing is left to retry.
    let out: Value =
        serde_json::from_str(&cli_ok(&node, &["webhook", "retry", "flaky", "--json"])).unwrap();
    assert_eq!(out["delivered"], json!([]));
}

/// `max_body_bytes` and `max_objects`: objects are batched under both, and an object alone over it is
/// dead-lettered unsent, its error naming the setting; a bad value stops `webhook retry`
/// and `serve` naming the key.
#[test]
fn deliveries_stay_under_max_body_bytes() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    std::fs::write(node.path().join("hook.key"), SECRET).unwrap();
    let key = node.path().join("hook.key");
    let key = key.to_str().unwrap();
    let (url, rx) = receiver(Arc::new(Mutex::new(VecDeque::new())), String::new());
    let config = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    std::fs::write(
        node.path().join("concord.toml"),
        format!("{config}\n[webhooks]\nmax_body_bytes = 100\n"),
    )
    .unwrap();
    let (code, _, err) = cli(&node, &["webhook", "retry", "capped"]);
    assert_ne!(code, 0);
    assert!(err.contains("[webhooks] max_body_bytes"), "{err}");
    std::fs::write(
        node.path().join("concord.toml"),
        format!("{config}\n[webhooks]\nmax_body_bytes = 2048\nmax_objects = 5\nevery_secs = 1\n"),
    )
    .unwrap();
    cli_ok(&node, &hook_args("capped", &url, key, &[]));
    let _server = node.serve();
    let mut big = indicator("00000006", "big.example", &[GREEN]);
    big["description"] = Value::from("x".repeat(3000));
    let small: Vec<Value> = (0..12)
        .map(|i| indicator(&format!("0000010{i:x}"), &format!("s{i}.example"), &[GREEN]))
        .collect();
    let mut all = small.clone();
    all.push(big.clone());
    import(&node, "intel", &all);
    let want: Vec<&str> = small.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let start = Instant::now();
    let mut seen = Vec::new();
    while !want.iter().all(|w| seen.iter().any(|s| s == w)) {
        let got = rx
            .recv_timeout(Duration::from_secs(30).saturating_sub(start.elapsed()))
            .expect("small objects within 30 s");
        assert!(got.body.len() <= 2048, "{} bytes", got.body.len());
        let ids = checked_ids(&got, "capped");
        assert!(ids.len() <= 5, "{} objects", ids.len());
        seen.extend(ids);
    }
    let doc = wait_show(&node, "capped", 30, |d| d["dead_letters"]["count"] == 1);
    let why = doc["dead_letters"]["last_errors"][0].as_str().unwrap();
    assert!(why.contains("max_body_bytes"), "{doc}");
    assert!(!seen.iter().any(|s| s == big["id"].as_str().unwrap()));
    seen.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(seen, want_sorted, "each small object once");
}

/// `[webhooks] concurrency`: a receiver that holds its POST open (up to `timeout_secs`)
/// holds one delivery thread. With one thread the other webhook waits behind it; with two it
/// is delivered while the slow one is still held. A value out of bounds names the key.
#[test]
fn a_slow_receiver_holds_one_delivery_thread_not_the_others() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    std::fs::write(node.path().join("hook.key"), SECRET).unwrap();
    let key = node.path().join("hook.key");
    let key = key.to_str().unwrap();
    let config = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    let set = |concurrency: usize| {
        std::fs::write(
            node.path().join("concord.toml"),
            format!(
                "{config}\n[webhooks]\nconcurrency = {concurrency}\ntimeout_secs = 120\nevery_secs = 1\n"
            ),
        )
        .unwrap();
    };
    set(0);
    let (code, _, err) = cli(&node, &["webhook", "retry", "a-slow"]);
    assert_ne!(code, 0);
    assert!(err.contains("[webhooks] concurrency"), "{err}");
    // "a-slow" is listed first: with one thread it takes its turn first. Its receiver
    // never answers (0); "b-fast" answers 204.
    let (slow_url, slow_rx) = receiver(
        Arc::new(Mutex::new(VecDeque::from([0, 0, 0, 0]))),
        String::new(),
    );
    let (fast_url, fast_rx) = receiver(Arc::new(Mutex::new(VecDeque::new())), String::new());
    cli_ok(&node, &hook_args("a-slow", &slow_url, key, &[]));
    cli_ok(&node, &hook_args("b-fast", &fast_url, key, &[]));
    let obj = indicator("00000009", "slow.example", &[GREEN]);
    import(&node, "intel", std::slice::from_ref(&obj));
    let id = obj["id"].as_str().unwrap();

    set(1);
    let server = node.serve();
    slow_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the slow receiver got its POST");
    assert!(
        fast_rx.recv_timeout(Duration::from_secs(5)).is_err(),
        "one thread: b-fast waits while a-slow holds it"
    );
    drop(server);

    // The killed process's lease on a-slow lasts past this test: a new slow webhook,
    // listed first again, and a new object for it.
    cli_ok(&node, &["webhook", "remove", "a-slow"]);
    let (slow_url, slow_rx) = receiver(
        Arc::new(Mutex::new(VecDeque::from([0, 0, 0, 0]))),
        String::new(),
    );
    cli_ok(&node, &hook_args("a-slow-2", &slow_url, key, &[]));
    let obj2 = indicator("0000000a", "slow2.example", &[GREEN]);
    import(&node, "intel", std::slice::from_ref(&obj2));
    let id2 = obj2["id"].as_str().unwrap();
    set(2);
    let _server = node.serve();
    slow_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the new slow receiver got its POST");
    let mut seen = collect_until(&fast_rx, "b-fast", &[id, id2]);
    seen.sort();
    assert_eq!(seen, [id, id2]);
    assert!(
        show(&node, "a-slow-2")["last_success"].is_null(),
        "a-slow-2 still held"
    );
}

/// A dead letter belongs to the webhook as it was when it was taken: re-pointed at another
/// URL (or another audience), or removed, the webhook sends none of its old letters, which
/// are dropped (an attack: the operator's letters went to a partner's URL after `add`).
#[test]
fn dead_letters_never_follow_a_webhook_to_its_new_settings() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&node, &["collection", "create", "intel"]);
    std::fs::write(node.path().join("hook.key"), SECRET).unwrap();
    let key = node.path().join("hook.key");
    let key = key.to_str().unwrap();
    let answers = Arc::new(Mutex::new(VecDeque::from([500, 500])));
    let (url, _rx) = receiver(answers, String::new());
    let mut toml = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    toml.push_str(
        "\n[webhooks]\nmax_attempts = 2\nbackoff_initial_secs = 1\nbackoff_max_secs = 1\ntimeout_secs = 1\nevery_secs = 1\n",
    );
    std::fs::write(node.path().join("concord.toml"), toml).unwrap();
    // The key goes to the receiver: the node's own key file is refused.
    let node_key = node.path().join("node.key");
    let (code, _, err) = cli(
        &node,
        &hook_args("ops", &url, node_key.to_str().unwrap(), &[]),
    );
    assert_ne!(code, 0);
    assert!(err.contains("own secret files"), "{err}");
    // Nor may the URL carry credentials (shown by `webhook list` and in logs).
    let with_password = url.replacen("http://", "http://user:S3cret@", 1);
    let (code, _, err) = cli(&node, &hook_args("ops", &with_password, key, &[]));
    assert_ne!(code, 0);
    assert!(err.contains("must not carry credentials"), "{err}");
    assert!(!err.contains("S3cret"), "{err}");
    cli_ok(&node, &hook_args("ops", &url, key, &[]));
    let server = node.serve();
    import(
        &node,
        "intel",
        &[indicator("00000009", "ops-only.example", &[GREEN])],
    );
    wait_show(&node, "ops", 60, |d| d["dead_letters"]["count"] == 1);
    drop(server);
    // Re-pointed elsewhere: the old letter is not this webhook's any more.
    let (other, other_rx) = receiver(Arc::new(Mutex::new(VecDeque::new())), String::new());
    cli_ok(&node, &hook_args("ops", &other, key, &[]));
    assert_eq!(show(&node, "ops")["dead_letters"]["count"], 0);
    let out: Value =
        serde_json::from_str(&cli_ok(&node, &["webhook", "retry", "ops", "--json"])).unwrap();
    assert_eq!(out["delivered"], json!([]), "{out}");
    assert!(
        other_rx.try_recv().is_err(),
        "an old letter reached the new URL"
    );
}
