//! A node for the web UI's tests and its benchmark: a real SQLite store, the TAXII router
//! with the UI merged in, served on a free loopback port.

use std::sync::Arc;

use concord_server::{AppState, ServerConfig};
use concord_store::{Partner, SqliteStore, Store};

/// The admin token of every test node.
pub const ADMIN: &str = "admin-token-for-the-web-tests";

/// A store in `dir` with the admin token set and jurisdiction CN.
pub fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("concord.sqlite")).expect("store"));
    store
        .set_setting(
            concord_server::auth::ADMIN_TOKEN_SETTING,
            &concord_server::auth::token_hash(ADMIN),
        )
        .expect("admin token");
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .expect("jurisdiction");
    store
}

/// Adds partner `name` in `jurisdiction` that may read `read` (collection ids); returns its
/// API key.
pub fn partner(store: &dyn Store, name: &str, jurisdiction: &str, read: &[String]) -> String {
    let (key, key_id, key_hash) = concord_server::auth::new_api_key().expect("key");
    store
        .put_partner(&Partner {
            name: name.into(),
            jurisdiction: jurisdiction.into(),
            groups: vec![],
            read: read.to_vec(),
            write: vec![],
            key_id,
            key_hash,
            created_ns: 0,
            details: Default::default(),
        })
        .expect("partner");
    key
}

/// Serves TAXII and the UI over `store` on a free port, in a thread of its own, with the
/// API root's `max_content_length` (bytes); returns the base URL (`http://127.0.0.1:PORT`).
pub fn serve_with(store: Arc<dyn Store>, max_content_length: u64) -> String {
    serve_limits(store, max_content_length, Default::default())
}

/// [`serve_with`] under `limits` (the server's `[limits]`).
pub fn serve_limits(
    store: Arc<dyn Store>,
    max_content_length: u64,
    limits: concord_server::Limits,
) -> String {
    let state = AppState::new(
        store,
        ServerConfig {
            title: "test".into(),
            description: None,
            contact: None,
            api_root: "concord".into(),
            max_content_length,
            ingress: Default::default(),
            limits,
            policy: Default::default(),
            auth_limits: Default::default(),
        },
    )
    .expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = concord_server::router(state.clone()).merge(concord_web::router(state));
            let app = concord_server::limit_bodies(app, max_content_length);
            axum::serve(listener, app).await.expect("serve");
        });
    });
    base
}

/// A client that shows redirects and error statuses instead of following or failing.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

/// Logs in with `token`; returns the session cookie (`name=value`).
pub fn login(base: &str, token: &str) -> String {
    let r = agent()
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={token}&next=%2Fui%2F"))
        .expect("login");
    assert_eq!(r.status(), 303, "login refused");
    r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned()
}
