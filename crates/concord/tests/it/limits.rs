//! Issue 16, items 4 and 6: size limits at every way in, answered early; `serve` stops on
//! SIGTERM whatever is running, and leaves the store consistent.

use std::io::{Read, Write};

use crate::support::{Node, Server, TAXII, TOKEN};

const SMALL: &str = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}"#;

/// An indicator whose `description` makes it about `size` bytes.
fn big(size: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--5d2a9e4b-0c1f-4e3d-9a8b-7c6d5e4f3a2b","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","pattern":"[ipv4-addr:value = '198.51.100.2']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z","description":"{}"}}"#,
        "x".repeat(size)
    )
}

/// Sends only the headers of a request declaring `length` bytes and returns what the server
/// answers (it must answer without waiting for the body).
fn headers_only(s: &Server, method_path: &str, content_type: &str, length: u64) -> String {
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "{method_path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: {TAXII}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer arrives, then the server closes (it will not read the body).
    loop {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_declared_huge_body_gets_413_at_once_on_every_endpoint_that_takes_one() {
    let node = Node::init();
    let s = node.serve();
    const GIB: u64 = 1 << 30;
    // TAXII: the TAXII error resource.
    let head = headers_only(&s, "POST /concord/collections/w/objects/", TAXII, GIB);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("\"http_status\":\"413\""), "{head}");
    // /api/match, the admin API and the web UI's import: JSON {"code", "error", "message"},
    // naming the limit that applies (/api/match has its own, smaller one: match_body_bytes).
    for (path, limit) in [
        ("POST /api/match", "match_body_bytes"),
        ("POST /api/v1/partners", "max_content_length"),
        ("POST /ui/import", "max_content_length"),
    ] {
        let head = headers_only(&s, path, "application/json", GIB);
        assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
        assert!(head.contains("application/json"), "{path}: {head}");
        assert!(
            head.contains(&format!(
                "{{\"code\":\"payload_too_large\",\"error\":\"request body exceeds {limit}"
            )),
            "{path}: {head}"
        );
    }
}

#[test]
fn a_chunked_api_match_body_over_the_limit_gets_413_in_json() {
    let node = Node::init();
    let s = node.serve_with(&[("CONCORD_MAX_CONTENT_LENGTH", "1000")]);
    let addr = s.base.trim_start_matches("http://");
    // /api/match and the admin API (issue 23) cut a chunked body at the same limit.
    for (path, body) in [
        (
            "/api/match",
            format!(r#"{{"collections":[],"lines":["{}"]}}"#, "a".repeat(2000)),
        ),
        (
            "/api/v1/partners",
            format!(r#"{{"name":"{}","jurisdiction":"DE"}}"#, "a".repeat(2000)),
        ),
    ] {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(
            tcp,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 413"), "{path}: {out}");
        assert!(
            out.contains("{\"code\":\"payload_too_large\",\"error\":\"request body exceeds max_content_length of 1000 bytes"),
            "{path}: {out}"
        );
    }
}

#[test]
fn an_oversized_object_is_refused_at_import_and_at_taxii_post_and_nothing_is_stored() {
    let node = Node::init();
    let limit = [("CONCORD_MAX_OBJECT_SIZE", "4096")];
    // CLI import: the file fails, naming the object and the limit; nothing stored.
    let file = node.path().join("big.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{SMALL},{}]}}"#,
            big(10_000)
        ),
    )
    .unwrap();
    let out = crate::support::run(
        crate::support::concord()
            .envs(limit)
            .args(["import", "--json", "--collection", "w", "--data-dir"])
            .arg(node.path())
            .arg(&file),
    );
    assert_ne!(out.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("objects[1]"), "{all}");
    assert!(all.contains("4096 bytes"), "{all}");
    // The failed import left no collection (issue 16, item 7c): make it for the POST.
    let out = crate::support::run(
        crate::support::concord()
            .args(["collection", "create", "w", "--data-dir"])
            .arg(node.path()),
    );
    assert_eq!(out.status.code(), Some(0));
    // TAXII POST: 413 naming the object; nothing of the envelope stored.
    let s = node.serve_with(&limit);
    let r = s.post(
        "/concord/collections/w/objects/",
        &format!(r#"{{"objects":[{SMALL},{}]}}"#, big(10_000)),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("objects[1]"), "{}", r.body);
    let got = s.get("/concord/collections/w/objects/");
    assert!(
        got.status == 404
            || got.json()["objects"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
        "{}",
        got.body
    );
    // Within the limit, the same object goes in.
    let r = s.post(
        "/concord/collections/w/objects/",
        &format!(r#"{{"objects":[{SMALL},{}]}}"#, big(1000)),
    );
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn serve_stops_on_sigterm_during_a_long_request_and_the_store_is_consistent() {
    let node = Node::init();
    let file = node.path().join("small.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{SMALL}]}}"#
        ),
    )
    .unwrap();
    assert_eq!(node.import("w", &[&file]).0, 0);
    let mut s = node.serve();
    // A long request: a POST whose body arrives slowly and never ends.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        tcp,
        "POST /concord/collections/w/objects/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: 100000\r\n\r\n{{\"objects\":[{}",
        big(1000)
    )
    .unwrap();
    tcp.flush().unwrap();
    s.terminate();
    assert!(
        s.exits_within(std::time::Duration::from_secs(120)),
        "serve did not exit after SIGTERM"
    );
    drop(tcp);
    // The store: what was committed is there, the cut request left nothing.
    let s = node.serve();
    let got = s.get("/concord/collections/w/objects/");
    assert_eq!(got.status, 200, "{}", got.body);
    let objects = got.json()["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(objects.len(), 1, "{}", got.body);
}

/// Hostile load H3: a client that reads a large page one byte every 200 ms always makes
/// progress, so `write_timeout_secs` never cuts it, yet it would hold its page slot for
/// days. Below `min_send_rate_bytes_per_sec` (judged over `min_send_rate_window_secs` of
/// waiting) the connection is reset, its slot freed, and a client that reads normally
/// then gets a page (one slot, no queue: it would get 503 while the slot is held).
#[test]
fn a_slow_but_steady_reader_is_cut_and_frees_its_page_slot() {
    let node = Node::init();
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[limits]\npage_concurrency = 1\npage_queue = 0\nwrite_timeout_secs = 3600\n\
         min_send_rate_bytes_per_sec = 65536\nmin_send_rate_window_secs = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    // A page of some 10 MB: far more than the socket buffers and hyper's write buffer hold.
    let objects: Vec<String> = (0..20)
        .map(|i| {
            big(500_000).replace(
                "5d2a9e4b-0c1f-4e3d-9a8b-7c6d5e4f3a2b",
                &format!("5d2a9e4b-0c1f-4e3d-9a8b-7c6d5e4f{i:04}"),
            )
        })
        .collect();
    let file = node.path().join("big.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12","objects":[{}]}}"#,
            objects.join(",")
        ),
    )
    .unwrap();
    let (code, report) = node.import("big", &[&file]);
    assert_eq!(code, 0, "{report}");
    let s = node.serve();
    let page = "/concord/collections/big/objects/?limit=1000";

    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        tcp,
        "GET {page} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: {TAXII}\r\n\r\n"
    )
    .unwrap();
    // One byte every 200 ms (then as fast as it comes), until the connection ends.
    let drain = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (head_tx, head_rx) = std::sync::mpsc::channel();
    let (end_tx, end_rx) = std::sync::mpsc::channel();
    let reader = {
        let drain = drain.clone();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            let mut head = Vec::new();
            let end = loop {
                match tcp.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    Ok(_) => break "closed",
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
                    Err(_) => break "error",
                }
                if head.len() == 12 {
                    let _ = head_tx.send(String::from_utf8_lossy(&head).into_owned());
                }
                if !drain.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            };
            let _ = end_tx.send((end, head.len()));
        })
    };
    // Its page is built and on its way (the slot is taken) once its status line arrives.
    let status_line = head_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .unwrap();
    assert_eq!(status_line, "HTTP/1.1 200");

    // A normal client: 503 while the slow reader holds the one slot, then its page once
    // the server has dropped that connection (polled, with a generous bound: without the
    // minimum rate the slot stays held and this fails).
    let mut busy = 0;
    let start = std::time::Instant::now();
    let got = loop {
        let r = s.get(page);
        busy += usize::from(r.status == 503);
        if r.status != 503 || start.elapsed() > std::time::Duration::from_secs(60) {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        got.status, 200,
        "still busy after {busy} tries: {}",
        got.body
    );
    assert_eq!(got.json()["objects"].as_array().unwrap().len(), 20);
    // The server reset the slow reader's connection: what it still gets, read now at full
    // speed, is what its own socket had received, then the reset; not the megabytes the
    // server's send buffer held (a closed connection without the reset would deliver them,
    // then end).
    drain.store(true, std::sync::atomic::Ordering::Relaxed);
    let (how, read) = end_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the slow reader's connection is still open");
    reader.join().unwrap();
    assert_eq!(how, "reset", "{read} bytes read");
    assert!(read < 2_000_000, "{read} bytes read");
}
