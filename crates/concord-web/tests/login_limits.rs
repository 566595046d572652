//! The web UI's login under the limits of issue 16, over real connections on loopback: the
//! same failure quotas as TAXII (per source address and per account, 429 with
//! `Retry-After`), and the session cookie `Secure` when served over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use concord_server::auth::{ADMIN_TOKEN_SETTING, AuthLimits, token_hash};
use concord_server::{AppState, ServerConfig};
use concord_store::{Partner, SqliteStore, Store};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-for-the-login-tests";

/// Only a guard against a hanging test.
const GUARD: Duration = Duration::from_secs(30);

/// A node over a fresh store with partner `acme`: the TAXII and UI router, and its key.
fn app(dir: &std::path::Path, auth_limits: AuthLimits) -> (axum::Router, String) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("c.sqlite")).unwrap());
    store
        .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
        .unwrap();
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .unwrap();
    let (key, key_id, key_hash) = concord_server::auth::new_api_key().unwrap();
    store
        .put_partner(&Partner {
            name: "acme".into(),
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
    let state = AppState::new(
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
    .unwrap();
    let app = concord_server::router(state.clone()).merge(concord_web::router(state));
    (app, key)
}

/// Sends `request` on `s` and reads the whole response (the request says `Connection:
/// close`).
async fn exchange(mut s: impl AsyncRead + AsyncWrite + Unpin, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = Vec::new();
    // A TLS peer may close without close_notify: what was read is the answer.
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut buf))
        .await
        .expect("no answer");
    String::from_utf8_lossy(&buf).into_owned()
}

fn login_request(addr: SocketAddr, token: &str) -> String {
    let body = format!("token={token}&next=%2Fui%2F");
    format!(
        "POST /ui/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn login(addr: SocketAddr, token: &str) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    exchange(tcp, &login_request(addr, token)).await
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));
    addr
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_per_account_are_throttled_with_the_taxii_quota() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AuthLimits {
        failures_per_key: 3,
        failures_per_source: 1000,
        ..AuthLimits::default()
    };
    let (app, key) = app(dir.path(), limits);
    let addr = serve(app).await;
    let id = concord_server::auth::key_id(&key).unwrap().to_owned();
    // One failure over TAXII and two at the login spend the account's quota of three:
    // both doors count against the one authenticator.
    let taxii = format!(
        "GET /taxii2/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/taxii+json;version=2.1\r\n\
         Authorization: Bearer concord_{id}_wrong0\r\nConnection: close\r\n\r\n"
    );
    let r = exchange(TcpStream::connect(addr).await.unwrap(), &taxii).await;
    assert_eq!(status(&r), "401", "{r}");
    for n in 1..3 {
        let r = login(addr, &format!("concord_{id}_wrong{n}")).await;
        assert_eq!(status(&r), "401", "{r}");
    }
    let r = login(addr, &format!("concord_{id}_wrong9")).await;
    assert_eq!(status(&r), "429", "{r}");
    assert!(r.to_ascii_lowercase().contains("\r\nretry-after: "), "{r}");
    assert!(r.contains("Too many login attempts"), "{r}");
    // The admin is another account.
    let r = login(addr, ADMIN).await;
    assert_eq!(status(&r), "303", "{r}");
    // Over plain HTTP the cookie is not `Secure` (a browser would then never send it).
    assert!(!r.to_ascii_lowercase().contains("; secure"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_per_source_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AuthLimits {
        failures_per_source: 2,
        failures_per_key: 1000,
        ..AuthLimits::default()
    };
    let (app, key) = app(dir.path(), limits);
    let addr = serve(app).await;
    for n in 0..2 {
        let r = login(addr, &format!("not-the-admin-token-{n}")).await;
        assert_eq!(status(&r), "401", "{r}");
    }
    // Any account from this source now, before any verification.
    let r = login(addr, &key).await;
    assert_eq!(status(&r), "429", "{r}");
    assert!(r.to_ascii_lowercase().contains("\r\nretry-after: "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_over_tls() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
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
    let tls = concord_server::tls_config(&concord_server::TlsFiles {
        cert: cert.to_string_lossy().into_owned(),
        key: key.to_string_lossy().into_owned(),
        client_ca: None,
    })
    .unwrap();
    let (app, _) = app(dir.path(), AuthLimits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve_tls(
        listener,
        app,
        tls,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .expect("handshake");
    let r = exchange(tls, &login_request(addr, ADMIN)).await;
    assert_eq!(status(&r), "303", "{r}");
    let cookie = r
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: concord_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie: {r}"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

/// Hostile-load fault 1: `/ui/login` takes at most `login_body_bytes` (4 KiB by default),
/// before the admin's limits of any other route: a declared 1,000,000-byte body is answered
/// 413 with none of it sent, a chunked one once it crosses 4 KiB; a body trickled past
/// `body_timeout_secs` is answered 408 and its connection closed; a login of the right
/// size still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_takes_a_small_body_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path(), AuthLimits::default());
    let limits = concord_server::Limits {
        body_timeout_secs: 1,
        ..concord_server::Limits::default()
    };
    let app =
        concord_server::limit_bodies_with(app, concord_server::BodyLimits::with(1 << 20, &limits));
    let addr = serve(app).await;
    let head = |extra: &str| {
        format!(
            "POST /ui/login HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\n"
        )
    };
    // Declared: answered before any body byte is sent.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head("Content-Length: 1000000\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(GUARD, s.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let r = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(status(&r), "413", "{r}");
    assert!(r.contains("login_body_bytes of 4096 bytes"), "{r}");

    // Chunked: 8 KiB of form, cut at 4 KiB.
    let mut req = head("Transfer-Encoding: chunked\r\nConnection: close\r\n").into_bytes();
    let form = format!("token={}", "a".repeat(8192));
    for piece in form.as_bytes().chunks(512) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(
        TcpStream::connect(addr).await.unwrap(),
        &String::from_utf8(req).unwrap(),
    )
    .await;
    assert_eq!(status(&r), "413", "{r}");

    // Trickled: 100 bytes declared, 10 sent, then nothing: 408 and the connection closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}token=abcd", head("Content-Length: 100\r\n")).as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut out))
        .await
        .expect("still open")
        .unwrap();
    let r = String::from_utf8_lossy(&out);
    assert_eq!(status(&r), "408", "{r}");
    assert!(r.contains("body_timeout_secs"), "{r}");

    // The control: a real login.
    let r = login(addr, ADMIN).await;
    assert_eq!(status(&r), "303", "{r}");
}

/// The pages of a partner's web session are its requests too: past
/// `partner_requests_per_sec` and its burst they answer 429 with `Retry-After`, as its TAXII
/// requests do (each page it reads is an audited transfer; attack on issue 17's quota, #4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_web_pages_count_against_its_request_quota() {
    let dir = tempfile::tempdir().unwrap();
    let limits = AuthLimits {
        partner_requests_per_sec: 1,
        partner_request_burst: 3,
        ..AuthLimits::default()
    };
    let (app, key) = app(dir.path(), limits);
    let addr = serve(app).await;
    // The login verifies the key: one request of the burst.
    let r = login(addr, &key).await;
    assert_eq!(status(&r), "303", "{r}");
    let cookie = r
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().starts_with("set-cookie:").then(|| {
                l.split_once(':')
                    .unwrap()
                    .1
                    .trim()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned()
            })
        })
        .expect("a session cookie");
    let page = |addr: SocketAddr, cookie: String| async move {
        let req = format!(
            "GET /ui/pattern HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        exchange(TcpStream::connect(addr).await.unwrap(), &req).await
    };
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = page(addr, cookie.clone()).await;
        if status(&r) == "429" {
            assert!(r.to_ascii_lowercase().contains("\r\nretry-after: "), "{r}");
        }
        codes.push(status(&r).to_owned());
    }
    assert_eq!(codes[0], "200", "{codes:?}");
    assert!(
        codes.iter().any(|c| c == "429"),
        "a session past the burst is refused: {codes:?}"
    );
}
