//! Operating a node (issue 23, items 2 and 3): `/healthz`, `/readyz`, `/metrics` (parsed by
//! the reference parser, Python's `prometheus_client`), and the per-request JSON log lines.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Node, Reply, Server, TAXII, TOKEN, run};

fn get(s: &Server, key: Option<&str>, path: &str, accept: &str) -> Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Accept", accept)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    s.request("GET", path, &headers, None)
}

/// The scrape parsed by `prometheus_client`: family → {type, samples}.
fn parse(python: &Path, scrape: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/parse_metrics.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        out.status.success(),
        "the scrape does not parse: {v}\n{scrape}"
    );
    v
}

fn sample<'a>(families: &'a Value, family: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    families[family]["samples"]
        .as_array()?
        .iter()
        .find(|s| labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
}

#[test]
fn health_readiness_metrics_and_request_logs() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let bundle = node.path().join("b.json");
    std::fs::write(
        &bundle,
        json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001",
            "objects": [{"type": "indicator", "spec_version": "2.1",
                "id": "indicator--00000000-0000-4000-8000-000000000002",
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "pattern": "[domain-name:value = 'c2.example']", "pattern_type": "stix",
                "valid_from": "2026-01-01T00:00:00Z",
                "object_marking_refs": ["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"]}]})
        .to_string(),
    )
    .unwrap();
    let (code, report) = node.import("intel", &[&bundle]);
    assert_eq!(code, 0, "{report}");
    let out = run(crate::support::concord()
        .args([
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "DE",
            "--read",
            "intel",
            "--json",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let log_path = node.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let s = node.serve_logging(
        &[("CONCORD_LOG", "info"), ("CONCORD_LOG_FORMAT", "json")],
        log,
    );

    // Liveness and readiness: no credentials, nothing but the answer.
    let h = get(&s, None, "/healthz", "text/plain");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(&s, None, "/readyz", "application/json");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ready": true}));

    // Traffic to count: the partner pages the collection, an unknown route.
    let objects = get(&s, Some(&key), "/concord/collections/intel/objects/", TAXII);
    assert_eq!(objects.status, 200, "{}", objects.body);
    assert_eq!(get(&s, Some(&key), "/nowhere", TAXII).status, 404);

    // /metrics: the admin only. A partner gets exactly what an unknown resource gives.
    assert_eq!(get(&s, None, "/metrics", "text/plain").status, 401);
    let names = |r: &Reply| -> BTreeSet<String> {
        r.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k != "date" && k != "content-length")
            .collect()
    };
    for (accept, status) in [("text/plain", 406), (TAXII, 404)] {
        let as_partner = get(&s, Some(&key), "/metrics", accept);
        let unknown = get(&s, Some(&key), "/concord/no-such-thing/", accept);
        assert_eq!(as_partner.status, status, "{accept}");
        assert_eq!(
            (as_partner.status, as_partner.body.clone()),
            (unknown.status, unknown.body.clone())
        );
        assert_eq!(names(&as_partner), names(&unknown));
    }
    // Another method on /metrics answers as on a path that does not exist, with or without
    // credentials (no 405 that tells the route apart).
    for key in [None, Some(key.as_str())] {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Accept", TAXII)];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let a = s.request("POST", "/metrics", &headers, Some("{}"));
        let b = s.request("POST", "/concord/no-such-thing/", &headers, Some("{}"));
        assert_eq!(
            (a.status, a.body.clone()),
            (b.status, b.body.clone()),
            "{key:?}"
        );
        assert_eq!(names(&a), names(&b), "{key:?}");
    }
    // A method a client invents is one label, `other`, however many there are (and gets
    // what it gets on a path that does not exist). ureq sends only known methods: raw HTTP.
    for m in ["BREW", "BREWXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"] {
        use std::io::{Read, Write};
        let addr = s.base.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "{m} /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let scrape = get(&s, Some(TOKEN), "/metrics", "text/plain");
    assert!(!scrape.body.contains("BREW"), "{}", scrape.body);
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        scrape.headers
    );

    // Parsed by the reference parser (under scripts/test; skipped without the venv).
    if let Some(python) = crate::interop::python() {
        let m = parse(&python, &scrape.body);
        let page = sample(
            &m,
            "concord_http_requests",
            &[
                ("route", "/concord/collections/{collection}/objects/"),
                ("method", "GET"),
                ("status", "200"),
            ],
        )
        .unwrap_or_else(|| panic!("no page counted: {}", m["concord_http_requests"]));
        assert!(page[2].as_f64().unwrap() >= 1.0);
        assert!(
            sample(
                &m,
                "concord_http_requests",
                &[("route", "unmatched"), ("status", "404")]
            )
            .is_some(),
            "{}",
            m["concord_http_requests"]
        );
        assert_eq!(
            m["concord_http_request_duration_seconds"]["type"],
            "histogram"
        );
        assert!(
            sample(
                &m,
                "concord_http_requests",
                &[("route", "/healthz"), ("method", "other")]
            )
            .is_some(),
            "{}",
            m["concord_http_requests"]
        );
        let sent = sample(
            &m,
            "concord_egress_objects",
            &[("door", "taxii-objects"), ("decision", "sent")],
        )
        .unwrap_or_else(|| panic!("{}", m["concord_egress_objects"]));
        assert_eq!(sent[2].as_f64(), Some(1.0));
        assert!(
            m["concord_audit_records"]["samples"][0][2]
                .as_f64()
                .unwrap()
                >= 1.0
        );
        // The store's pool: the reader connections of this SQLite node, none lent out
        // between requests, and the ones the requests above used kept for the next.
        assert_eq!(m["concord_store_connections"]["type"], "gauge");
        let pool = |state| {
            sample(
                &m,
                "concord_store_connections",
                &[("backend", "sqlite"), ("state", state)],
            )
            .unwrap_or_else(|| panic!("{}", m["concord_store_connections"]))[2]
                .as_f64()
                .unwrap()
        };
        assert_eq!(pool("in_use"), 0.0);
        assert!(pool("idle") >= 1.0, "{}", m["concord_store_connections"]);
    }

    // One JSON line per request, with its id, route, status, principal and duration.
    drop(s);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "concord::request")
        .collect();
    let page = lines
        .iter()
        .find(|v| v["route"] == "/concord/collections/{collection}/objects/")
        .unwrap_or_else(|| panic!("no request line in {text}"));
    assert_eq!(page["status"], 200);
    assert_eq!(page["principal"], "bsi");
    assert_eq!(page["method"], "GET");
    assert!(page["duration_ms"].as_f64().is_some(), "{page}");
    let id = page["request_id"].as_str().unwrap();
    assert_eq!(id, objects.header("x-request-id").unwrap());
    assert!(lines.len() >= 6, "{text}");
}
