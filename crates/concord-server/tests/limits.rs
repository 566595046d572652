//! The limits of issue 16 over real connections on loopback: failed authentications
//! answered 429 with `Retry-After` by `serve`, a partner over its request quota answered 429, `serve_tls` closing clients that do not
//! finish their TLS handshake or their request header in time, and `max_connections`
//! leaving connections past it in the listen queue until one closes.

use std::sync::Arc;
use std::time::Duration;

use concord_server::auth::{ADMIN_TOKEN_SETTING, AuthLimits, new_api_key, token_hash};
use concord_server::{AppState, ConnLimits, ServerConfig};
use concord_store::{Partner, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-for-the-limit-tests";

/// Only a guard against a hanging test, never an assertion on speed: every timeout under
/// test is far shorter.
const GUARD: Duration = Duration::from_secs(30);

fn state(dir: &std::path::Path, auth_limits: AuthLimits) -> AppState {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("c.sqlite")).unwrap());
    store
        .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
        .unwrap();
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .unwrap();
    AppState::new(
        store,
        ServerConfig {
            title: "test".into(),
            description: None,
            contact: None,
            api_root: "concord".into(),
            max_content_length: 1 << 20,
            ingress: Default::default(),
            limits: Default::default(),
            policy: Default::default(),
            auth_limits,
        },
    )
    .unwrap()
}

/// One HTTP/1.1 request on a new connection; the whole response as text.
async fn get(addr: std::net::SocketAddr, token: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /taxii2/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/taxii+json;version=2.1\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(GUARD, s.read_to_string(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_from_one_source_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AuthLimits {
        failures_per_source: 3,
        ..AuthLimits::default()
    };
    let app = concord_server::router(state(dir.path(), limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));

    for n in 0..3 {
        let r = get(addr, &format!("wrong-{n}")).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    }
    let r = get(addr, "wrong-9").await;
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: "), "{r}");
    assert!(r.contains(r#""http_status":"429""#), "{r}");
    // The right token is never throttled.
    let r = get(addr, ADMIN).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// A partner whose key is good is held to `partner_requests_per_sec` with its burst (each of
/// its reads is an audited transfer, so this bounds how fast it grows the audit log): past
/// the burst it gets 429 with `Retry-After`, naming the limit; another partner and the
/// admin token are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_request_quota_gets_429_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AuthLimits {
        partner_requests_per_sec: 1,
        partner_request_burst: 3,
        ..AuthLimits::default()
    };
    let state = state(dir.path(), limits);
    let store = SqliteStore::open(&dir.path().join("c.sqlite")).unwrap();
    let mut keys = Vec::new();
    for name in ["acme", "bsi"] {
        let (key, key_id, key_hash) = new_api_key().unwrap();
        store
            .put_partner(&Partner {
                name: name.into(),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: vec![],
                write: vec![],
                key_id,
                key_hash,
                created_ns: 0,
                details: Default::default(),
            })
            .unwrap();
        keys.push(key);
    }
    let app = concord_server::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));
    // The burst: three at once (one token comes back per second, so a slow machine may
    // see a fourth pass; the fifth in a row cannot within a second of the fourth).
    for _ in 0..3 {
        let r = get(addr, &keys[0]).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let mut refused = None;
    for _ in 0..3 {
        let r = get(addr, &keys[0]).await;
        if !r.starts_with("HTTP/1.1 200") {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("a partner past its burst is refused");
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
        "{r}"
    );
    assert!(
        r.contains("partner_requests_per_sec"),
        "names the limit: {r}"
    );
    assert!(r.contains(r#""http_status":"429""#), "{r}");
    // Another partner and the admin are served.
    let r = get(addr, &keys[1]).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = get(addr, ADMIN).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // The quota comes back: a token a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(addr, &keys[0]).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// A self-signed certificate for 127.0.0.1 made with openssl (as on every Debian machine);
/// `(cert, key)` PEM paths.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
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
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

/// `serve_tls` on a free loopback port with `timeouts`; its address and the certificate.
async fn serve_tls(dir: &std::path::Path, timeouts: ConnLimits) -> (std::net::SocketAddr, String) {
    let (cert, key) = certificate(dir);
    let tls = concord_server::tls_config(&concord_server::TlsFiles {
        cert: cert.clone(),
        key,
        client_ca: None,
    })
    .unwrap();
    let app = concord_server::router(state(dir, AuthLimits::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve_tls(
        listener,
        app,
        tls,
        timeouts,
        std::future::pending(),
    ));
    (addr, cert)
}

/// Reads until the peer closes; `true` when it did (end of stream or a reset), `false`
/// when it sent bytes instead.
async fn closed(mut s: impl tokio::io::AsyncRead + Unpin) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(GUARD, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("still open after {GUARD:?}"),
    }
}

fn short() -> ConnLimits {
    ConnLimits {
        handshake: Duration::from_millis(300),
        header_read: Duration::from_millis(300),
        ..ConnLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_starts_its_tls_handshake_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _) = serve_tls(dir.path(), short()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(closed(tcp).await);
}

/// A TLS client trusting `cert` only, connected to `addr`.
async fn tls_client(
    addr: std::net::SocketAddr,
    cert: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .expect("handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_sends_no_request_header_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, cert) = serve_tls(dir.path(), short()).await;
    // Nothing at all after the handshake.
    let silent = tls_client(addr, &cert).await;
    assert!(closed(silent).await);
    // Half a header, then nothing.
    let mut half = tls_client(addr, &cert).await;
    half.write_all(b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    half.flush().await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(GUARD, half.read_to_end(&mut buf))
        .await
        .expect("still open");
    // hyper may answer 408 before it closes; either way no request reached a handler.
    let text = String::from_utf8_lossy(&buf);
    assert!(
        read.is_err() || buf.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_with_a_whole_request_is_answered() {
    // The control of the two tests above: the same server answers a prompt client.
    let dir = tempfile::tempdir().unwrap();
    let (addr, cert) = serve_tls(dir.path(), ConnLimits::default()).await;
    let mut s = tls_client(addr, &cert).await;
    let req = format!(
        "GET /taxii2/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/taxii+json;version=2.1\r\n\
         Authorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut buf))
        .await
        .expect("no answer");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_client_that_sends_half_a_header_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let app = concord_server::router(state(dir.path(), AuthLimits::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        short(),
        std::future::pending(),
    ));
    // Connected, nothing sent.
    assert!(closed(TcpStream::connect(addr).await.unwrap()).await);
    // Half a header, then nothing (slowloris).
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(GUARD, half.read_to_end(&mut buf))
        .await
        .expect("still open");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        read.is_err() || buf.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // The control: a whole request on the same server is answered.
    let r = get(addr, ADMIN).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_returns_at_shutdown_although_a_client_holds_an_idle_connection() {
    let dir = tempfile::tempdir().unwrap();
    let app = concord_server::router(state(dir.path(), AuthLimits::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(concord_server::serve(
        listener,
        app,
        ConnLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    // A keep-alive connection that has had its answer and now waits.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /taxii2/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/taxii+json;version=2.1\r\n\
         Authorization: Bearer {ADMIN}\r\n\r\n"
    );
    idle.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    stop.send(()).unwrap();
    // Well before the shutdown grace ends: the idle connection is closed, not waited for.
    tokio::time::timeout(concord_server::SHUTDOWN_GRACE / 2, server)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// `max_connections`: with one connection open (a keep-alive that has had its answer), a
/// second is not served, only queued by the kernel; when the first closes, the second is
/// accepted and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let app = concord_server::router(state(dir.path(), AuthLimits::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ConnLimits {
        max_connections: 1,
        ..ConnLimits::default()
    };
    tokio::spawn(concord_server::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    let req = format!(
        "GET /taxii2/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/taxii+json;version=2.1\r\n\
         Authorization: Bearer {ADMIN}\r\n\r\n"
    );
    // The one connection: answered, and kept open.
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(GUARD, first.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The second: the kernel completes its handshake (listen queue), the server does not
    // accept it. A second of silence is the sign (an answer would come in milliseconds).
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(req.as_bytes()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), second.read(&mut buf)).await;
    assert!(early.is_err(), "answered past max_connections: {early:?}");
    // The first closes: the second is accepted and answered.
    drop(first);
    let n = tokio::time::timeout(GUARD, second.read(&mut buf))
        .await
        .expect("the queued connection was never served")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}
