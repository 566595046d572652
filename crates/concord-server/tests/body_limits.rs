//! The body limits of `limit_bodies_with` over real connections on loopback (hostile-load
//! faults 1 and 2): a body trickled slower than `body_timeout_secs` is answered 408 and its
//! connection closed, and `/api/match` refuses a body over `match_body_bytes` with 413
//! before reading it (declared) or as soon as it crosses it (chunked).

use std::sync::Arc;
use std::time::Duration;

use concord_server::auth::{ADMIN_TOKEN_SETTING, token_hash};
use concord_server::{AppState, BodyLimits, ConnLimits, Limits, ServerConfig};
use concord_store::{SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-for-the-body-tests";

/// Only a guard against a hanging test, never an assertion on speed.
const GUARD: Duration = Duration::from_secs(30);

/// A node on loopback under `serve`, with `limits`, behind `limit_bodies_with`.
async fn node(dir: &std::path::Path, limits: Limits) -> std::net::SocketAddr {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("c.sqlite")).unwrap());
    store
        .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
        .unwrap();
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .unwrap();
    let state = AppState::new(
        store,
        ServerConfig {
            title: "test".into(),
            description: None,
            contact: None,
            api_root: "concord".into(),
            max_content_length: 1 << 20,
            ingress: Default::default(),
            limits,
            policy: Default::default(),
            auth_limits: Default::default(),
        },
    )
    .unwrap();
    let bodies = BodyLimits::of(state.config());
    let app = concord_server::limit_bodies_with(concord_server::router(state), bodies);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        ConnLimits::default(),
        std::future::pending(),
    ));
    addr
}

/// Everything the server sends until it closes the connection (a reset counts as the end).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(GUARD, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {GUARD:?}; got {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header(addr: std::net::SocketAddr, method_path: &str, extra: &str) -> String {
    format!(
        "{method_path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n{extra}\r\n"
    )
}

/// A client that declares a body and trickles it (one byte every 200 ms, far slower than
/// needed within `body_timeout_secs`) is answered 408 naming the key, and its connection
/// is closed; a body sent whole on the same node is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_body_timeout_secs_gets_408_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let addr = node(
        dir.path(),
        Limits {
            body_timeout_secs: 1,
            ..Limits::default()
        },
    )
    .await;
    {
        let (route, extra) = ("POST /api/match", "Content-Type: application/json\r\n");
        let mut s = TcpStream::connect(addr).await.unwrap();
        let h = header(addr, route, &format!("{extra}Content-Length: 1000000\r\n"));
        s.write_all(h.as_bytes()).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        // Trickles until the server closes (a write then fails) or the guard ends.
        let trickle = tokio::spawn(async move {
            for _ in 0..(GUARD.as_millis() / 200) {
                if wr.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut out = Vec::new();
        let read = tokio::time::timeout(GUARD, rd.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(read.is_ok(), "{route}: still open after {GUARD:?}: {text}");
        assert!(text.starts_with("HTTP/1.1 408"), "{route}: {text}");
        assert!(text.contains("body_timeout_secs"), "{route}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{route}: {text}"
        );
        assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
        trickle.abort();
    }
    // The control: a small body sent at once is read (here: refused as a malformed request,
    // which needs the whole body).
    let body = "{}";
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = header(
        addr,
        "POST /api/match",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ),
    );
    s.write_all(format!("{h}{body}").as_bytes()).await.unwrap();
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}

/// `/api/match` over `match_body_bytes`: a declared `Content-Length` is answered 413 before
/// any of the body is sent; a chunked body is answered 413 once it crosses the limit,
/// although the client goes on sending; a body under the limit is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_match_refuses_a_body_over_match_body_bytes_before_buffering_it() {
    let dir = tempfile::tempdir().unwrap();
    let addr = node(
        dir.path(),
        Limits {
            match_body_bytes: 1000,
            ..Limits::default()
        },
    )
    .await;
    // Declared: the answer comes with no body byte sent.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = header(
        addr,
        "POST /api/match",
        "Content-Type: application/json\r\nContent-Length: 48000000\r\n",
    );
    s.write_all(h.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(GUARD, s.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("request body exceeds match_body_bytes of 1000 bytes"),
        "{text}"
    );

    // Chunked, 2,000 bytes of a JSON document in 100-byte chunks, then a last chunk the
    // server need not wait for.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = header(
        addr,
        "POST /api/match",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
    );
    let mut req = h.into_bytes();
    let mut doc = String::from("{\"collections\":[\"x\"],\"lines\":[\"");
    doc.push_str(&"a".repeat(2000));
    for piece in doc.as_bytes().chunks(100) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    let _ = s.write_all(&req).await;
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("match_body_bytes of 1000 bytes"), "{text}");

    // Under the limit: read and judged (an unknown collection: 404).
    let body = r#"{"collections":["none"],"lines":["198.51.100.7"]}"#;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = header(
        addr,
        "POST /api/match",
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ),
    );
    s.write_all(format!("{h}{body}").as_bytes()).await.unwrap();
    let text = until_closed(&mut s).await;
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

/// The limits of a route: its own when smaller than `max_content_length`, else that.
#[test]
fn each_route_gets_the_smaller_of_its_own_limit_and_max_content_length() {
    let limits = Limits {
        login_body_bytes: 4096,
        match_body_bytes: 4 << 20,
        ..Limits::default()
    };
    let b = BodyLimits::with(1 << 20, &limits);
    assert_eq!(b.max_for("/ui/login"), ("login_body_bytes", 4096));
    assert_eq!(b.max_for("/concord/join/"), ("join_body_bytes", 64 << 10));
    assert_eq!(b.max_for("/concord/join"), ("join_body_bytes", 64 << 10));
    assert_eq!(b.max_for("/api/match"), ("max_content_length", 1 << 20));
    assert_eq!(b.max_for("/ui/import"), ("max_content_length", 1 << 20));
    let b = BodyLimits::with(8 << 20, &limits);
    assert_eq!(b.max_for("/api/match"), ("match_body_bytes", 4 << 20));
    assert_eq!(b.timeout, Duration::from_secs(30));
    let zero = BodyLimits::with(
        1,
        &Limits {
            body_timeout_secs: 0,
            ..Limits::default()
        },
    );
    assert_eq!(zero.timeout, Duration::from_secs(1));
}
