//! The node of the timing-oracle test (`tests/answer_floor.rs`) and tool
//! (`examples/oracle_timing.rs`, which includes this file): a real SQLite store with a
//! collection shared as TLP:CLEAR that holds objects withheld from a partner abroad, served
//! on loopback, and a keep-alive HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use concord_policy::egress::{CollectionSharing, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_server::auth::{ADMIN_TOKEN_SETTING, token_hash};
use concord_server::{AppState, Limits, ServerConfig};
use concord_store::{NewCollection, NewObject, Partner, SqliteStore, Store};
use serde_json::{Value, json};

/// The TAXII 2.1 media type.
pub const TAXII: &str = "application/taxii+json;version=2.1";
/// The admin token of the node.
pub const ADMIN: &str = "admin-token-of-the-oracle-node";
/// The collection's path.
pub const BASE: &str = "/concord/collections/intel";
const T: &str = "2024-01-01T00:00:00.000Z";
/// TLP:RED (TLP 1.0, its canonical marking definition id, STIX 2.1 §7.2.1.4).
const RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
/// Withheld objects of each kind.
pub const WITHHELD: usize = 64;

/// A well-formed UUIDv4 made of `n` and `salt`.
pub fn uuid4(n: u64, salt: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 16) as u32,
        n & 0xffff,
        salt & 0xfff,
        (salt >> 12) & 0xfff,
        n.wrapping_mul(0x9e37_79b9) & 0xffff_ffff_ffff
    )
}

/// An id of the form of a stored SCO id (a UUIDv5) that no store holds.
pub fn missing_sco_id(n: u64, salt: u64) -> String {
    let u = uuid4(n, salt);
    format!("email-addr--{}5{}", &u[..14], &u[15..])
}

/// An indicator id that no store holds.
pub fn missing_indicator_id(n: u64, salt: u64) -> String {
    format!("indicator--{}", uuid4(n, salt | 0x400))
}

fn put(store: &dyn Store, collection_id: &str, objects: &[Value]) {
    let mut batch = store.begin_write(collection_id).expect("batch");
    for v in objects {
        let header = concord_stix::validate_object(v).expect("valid STIX");
        let body = v.to_string();
        batch
            .add(&NewObject {
                header: &header,
                body: &body,
                value: v,
            })
            .expect("add");
    }
    batch.commit().expect("commit");
}

/// What [`node`] holds: the partner's key, and ids it may not receive.
pub struct Node {
    /// The address served.
    pub addr: SocketAddr,
    /// API key of partner `bsi` (DE; reads and writes `intel`).
    pub key: String,
    /// TLP:RED indicators.
    pub red: Vec<String>,
    /// Stored ids of e-mail address SCOs (the partner receives them under keyed ids).
    pub scos: Vec<String>,
    /// TLP:CLEAR indicators (every partner that reads receives them).
    pub clear: Vec<String>,
    /// API key of partner `inbox` (DE; may only write `intel`).
    pub write_only_key: String,
    /// The node's store.
    pub store: Arc<dyn Store>,
    /// Kept for the node's lifetime.
    _dir: tempfile::TempDir,
    /// The node's PostgreSQL schema ([`node_on`]), dropped with the node.
    _schema: Option<concord_store::postgres::ScratchSchema>,
}

/// The backend of a [`node_on`].
pub enum Backend<'a> {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A schema of its own in the PostgreSQL database at this URL.
    Postgres(&'a str),
}

/// `CONCORD_TEST_POSTGRES_URL`, or `None` after saying that the test skips; panics instead of
/// skipping when `CONCORD_REQUIRE_POSTGRES=1` (scripts/test sets it), so a missing server
/// cannot pass as green.
pub fn postgres_url() -> Option<String> {
    match std::env::var("CONCORD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CONCORD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CONCORD_REQUIRE_POSTGRES=1 but CONCORD_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipping: CONCORD_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// A node in CN with collection `intel` (TLP:CLEAR by default): 200 CLEAR indicators,
/// [`WITHHELD`] RED indicators and [`WITHHELD`] e-mail address SCOs; partner `bsi` in DE
/// reads and writes it. Served on a free loopback port under `limits`, in a thread of its
/// own.
pub fn node(limits: Limits) -> Node {
    node_on(limits, Backend::Sqlite)
}

/// [`node`] on `backend`.
pub fn node_on(limits: Limits, backend: Backend<'_>) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, schema): (Arc<dyn Store>, _) = match backend {
        Backend::Sqlite => (
            Arc::new(SqliteStore::open(&dir.path().join("concord.sqlite")).expect("store")),
            None,
        ),
        Backend::Postgres(url) => {
            let schema =
                concord_store::postgres::ScratchSchema::create(url).expect("a test schema");
            let store = concord_store::PostgresStore::open(schema.url()).expect("store");
            (Arc::new(store), Some(schema))
        }
    };
    store
        .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
        .expect("admin");
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .expect("jurisdiction");
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            ..Default::default()
        })
        .expect("collection");
    let sharing = CollectionSharing {
        groups: None,
        recipients: Vec::new(),
        default_tlp: Tlp::Clear,
        addressed: Default::default(),
        grants: Default::default(),
    };
    store
        .set_setting(&sharing_setting_key(&c.id), &sharing.to_json())
        .expect("sharing");
    let indicator = |id: &str, i: usize, red: bool| {
        let mut v = json!({"type": "indicator", "spec_version": "2.1", "id": id,
            "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
            "pattern": format!("[domain-name:value = 'host{i}.example']"),
            "description": "d".repeat(300)});
        if red {
            v["object_marking_refs"] = json!([RED]);
        }
        v
    };
    let mut objects = Vec::new();
    let mut clear = Vec::new();
    for i in 0..200 {
        let id = format!("indicator--{}", uuid4(i as u64, 1));
        objects.push(indicator(&id, i, false));
        clear.push(id);
    }
    let mut red = Vec::new();
    for i in 0..WITHHELD {
        let id = format!("indicator--{}", uuid4(i as u64, 2));
        objects.push(indicator(&id, 1000 + i, true));
        red.push(id);
    }
    let mut scos = Vec::new();
    for i in 0..WITHHELD {
        let mut v = json!({"type": "email-addr", "spec_version": "2.1",
            "value": format!("person{i}@corp.example.cn")});
        let id = concord_policy::actions::deterministic_id(&v).expect("SCO id");
        v["id"] = json!(id);
        objects.push(v);
        scos.push(id);
    }
    put(store.as_ref(), &c.id, &objects);
    let partner = |name: &str, read: bool| {
        let (key, key_id, key_hash) = concord_server::auth::new_api_key().expect("key");
        store
            .put_partner(&Partner {
                name: name.into(),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: if read { vec![c.id.clone()] } else { vec![] },
                write: vec![c.id.clone()],
                key_id,
                key_hash,
                created_ns: 0,
                details: Default::default(),
            })
            .expect("partner");
        key
    };
    let key = partner("bsi", true);
    let write_only_key = partner("inbox", false);
    let state = AppState::new(
        store.clone(),
        ServerConfig {
            title: "oracle".into(),
            description: None,
            contact: None,
            api_root: "concord".into(),
            max_content_length: 8 << 20,
            ingress: Default::default(),
            limits,
            policy: Default::default(),
            auth_limits: Default::default(),
        },
    )
    .expect("state");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            concord_server::serve(
                listener,
                concord_server::router(state),
                concord_server::ConnLimits::default(),
                std::future::pending(),
            )
            .await
            .expect("serve");
        });
    });
    Node {
        addr,
        key,
        red,
        scos,
        clear,
        write_only_key,
        store,
        _dir: dir,
        _schema: schema,
    }
}

/// One answer: status, headers (names lower case, in order), body, and the time from the
/// first byte written to the last byte read.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Microseconds.
    pub micros: f64,
}

/// One keep-alive HTTP/1.1 connection with a bearer token.
pub struct Client {
    stream: BufReader<TcpStream>,
    host: String,
    token: String,
}

impl Client {
    /// Connects to `addr` with `token`.
    pub fn new(addr: SocketAddr, token: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream: BufReader::new(stream),
            host: addr.to_string(),
            token: token.to_owned(),
        }
    }

    /// Sends one request without a body and reads the whole answer.
    pub fn exchange(&mut self, method: &str, path: &str) -> Answer {
        self.send(method, path, "")
    }

    /// Sends one request with a TAXII body (`Content-Type` the TAXII media type) and reads
    /// the whole answer.
    pub fn send(&mut self, method: &str, path: &str, body: &str) -> Answer {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {TAXII}\r\n\
             Authorization: Bearer {}\r\nContent-Type: {TAXII}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            self.token,
            body.len()
        );
        let t0 = Instant::now();
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status: u16 = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header line");
            let (k, v) = (k.to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                length = v.parse().expect("content-length");
            }
            headers.push((k, v));
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).expect("body");
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            micros: t0.elapsed().as_secs_f64() * 1e6,
        }
    }
}

/// A door that takes an object id: its name, method and path under [`BASE`].
pub type Door = (&'static str, &'static str, fn(&str) -> String);

/// Every door that answers a question about one id.
pub const DOORS: [Door; 5] = [
    ("object", "GET", |id| format!("{BASE}/objects/{id}/")),
    ("versions", "GET", |id| {
        format!("{BASE}/objects/{id}/versions/")
    }),
    ("objects-match", "GET", |id| {
        format!("{BASE}/objects/?match[id]={id}")
    }),
    ("manifest-match", "GET", |id| {
        format!("{BASE}/manifest/?match[id]={id}")
    }),
    ("delete", "DELETE", |id| format!("{BASE}/objects/{id}/")),
];
