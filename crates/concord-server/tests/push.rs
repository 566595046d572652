//! The doors of issue 21 over real HTTP on loopback against a real SQLite store.
//!
//! The live stream (item 1): the same copies as TAXII pages, resumable with `Last-Event-ID`
//! without a gap or a repeat, one audit entry per batch, a TLP:RED object never on a
//! partner's stream, a slow client dropped with a reason, the cap on open streams,
//! heartbeats, and the 404 of a collection the partner may not read identical to the TAXII
//! 404.
//!
//! Feeds (item 3): what the partner receives, audited, warninglisted values left out,
//! conditional GET with a strong ETag per audience and collection version.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_policy::egress::{CollectionSharing, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_server::auth::{ADMIN_TOKEN_SETTING, new_api_key, token_hash};
use concord_server::{AppState, Limits, ServerConfig};
use concord_store::{AuditQuery, NewCollection, NewObject, Partner, SqliteStore, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-for-the-stream-tests";
const TAXII: &str = "application/taxii+json;version=2.1";
const T: &str = "2024-01-01T00:00:00.000Z";
const RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";

/// Only a guard against a hanging test, never an assertion on speed.
const GUARD: Duration = Duration::from_secs(60);

fn indicator(i: usize, description_len: usize) -> Value {
    json!({"type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{i:08x}-0000-4000-8000-000000000000"),
        "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
        "pattern": format!("[domain-name:value = 'host{i}.example']"),
        "description": "d".repeat(description_len)})
}

fn red(mut v: Value) -> Value {
    v["object_marking_refs"] = json!([RED]);
    v
}

fn put(store: &dyn Store, collection_id: &str, objects: &[Value]) {
    let mut batch = store.begin_write(collection_id).unwrap();
    for v in objects {
        let header = concord_stix::validate_object(v).unwrap();
        let body = v.to_string();
        batch
            .add(&NewObject {
                header: &header,
                body: &body,
                value: v,
            })
            .unwrap();
    }
    batch.commit().unwrap();
}

/// A node: collection `intel` (shared as CLEAR) that partner `acme` reads, collection
/// `private` it does not; the partner's API key.
struct Node {
    _dir: tempfile::TempDir,
    _schema: Option<concord_store::postgres::ScratchSchema>,
    store: Arc<dyn Store>,
    state: AppState,
    addr: std::net::SocketAddr,
    intel: String,
    key: String,
}

async fn node(limits: Limits) -> Node {
    node_with(limits, None).await
}

async fn node_with(limits: Limits, lists: Option<concord_misp::Warninglists>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("c.sqlite")).unwrap());
    node_on(store, dir, None, limits, lists).await
}

async fn node_on(
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    schema: Option<concord_store::postgres::ScratchSchema>,
    limits: Limits,
    lists: Option<concord_misp::Warninglists>,
) -> Node {
    // The stores are synchronous (PostgreSQL's client drives a runtime of its own): set up
    // off the async worker.
    let (ids, key, state) = tokio::task::block_in_place(|| {
        store
            .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
            .unwrap();
        store
            .set_setting(concord_server::policy::JURISDICTION_SETTING, "DE")
            .unwrap();
        let mut ids = Vec::new();
        for alias in ["intel", "private"] {
            let c = store
                .create_collection(&NewCollection {
                    alias: alias.into(),
                    ..Default::default()
                })
                .unwrap();
            let sharing = CollectionSharing {
                groups: None,
                recipients: Vec::new(),
                default_tlp: Tlp::Clear,
                addressed: Default::default(),
                grants: Default::default(),
            };
            store
                .set_setting(&sharing_setting_key(&c.id), &sharing.to_json())
                .unwrap();
            ids.push(c.id);
        }
        let (key, key_id, key_hash) = new_api_key().unwrap();
        store
            .put_partner(&Partner {
                name: "acme".into(),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: vec![ids[0].clone()],
                write: vec![],
                key_id,
                key_hash,
                created_ns: 0,
                details: Default::default(),
            })
            .unwrap();
        let state = AppState::new(
            store.clone(),
            ServerConfig {
                title: "test".into(),
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
        .unwrap();
        (ids, key, state)
    });
    let state = match lists {
        Some(l) => state.with_warninglists(Arc::new(l)),
        None => state,
    };
    let app = concord_server::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));
    Node {
        _dir: dir,
        _schema: schema,
        store,
        state,
        addr,
        intel: ids[0].clone(),
        key,
    }
}

impl Node {
    /// Writes `objects` to `intel` in one batch and wakes the streams, as the TAXII POST does.
    fn write(&self, objects: &[Value]) {
        tokio::task::block_in_place(|| put(self.store.as_ref(), &self.intel, objects));
        self.state.notify_write();
    }

    fn stream_path(&self) -> String {
        format!("/concord/collections/{}/stream/", self.intel)
    }

    /// Transfer entries of the audit log through `door`.
    fn audited(&self, door: &str) -> Vec<concord_store::TransferEntry> {
        let entries = tokio::task::block_in_place(|| {
            self.store.audit_entries(&AuditQuery {
                after_seq: 0,
                before_seq: None,
                partner: None,
                vids: vec![],
                limit: 100_000,
                newest_first: false,
            })
        });
        entries
            .unwrap()
            .into_iter()
            .filter(|e| e.door == door)
            .collect()
    }
}

/// One HTTP/1.1 exchange on a new connection: status, lower-cased head, body.
async fn http(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {TAXII}\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(GUARD, s.read_to_string(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// One SSE event as a client parses it.
#[derive(Debug, Clone, Default)]
struct Ev {
    /// The block as received.
    raw: String,
    event: String,
    id: Option<String>,
    data: String,
}

/// A minimal SSE client over a raw connection: the response head, then the chunked body
/// decoded and split into events (WHATWG HTML §9.2.6).
struct Sse {
    r: BufReader<TcpStream>,
    /// Decoded body bytes not yet parsed into events.
    text: String,
    /// Comment lines seen (heartbeats).
    comments: usize,
    ended: bool,
}

/// Opens a stream; the status and lower-cased head, and the client on 200.
async fn open(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> (u16, String, Option<Sse>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n{resume}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(GUARD, r.read_line(&mut line))
            .await
            .expect("no head")
            .unwrap();
        if n == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status: u16 = head[9..12].parse().unwrap();
    let head = head.to_ascii_lowercase();
    if status != 200 {
        return (status, head, None);
    }
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    (
        status,
        head,
        Some(Sse {
            r,
            text: String::new(),
            comments: 0,
            ended: false,
        }),
    )
}

impl Sse {
    /// Reads one chunk of the body; `false` at its end.
    async fn chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.r.read_line(&mut size).await.unwrap_or(0) == 0 {
            return false;
        }
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        let mut buf = vec![0u8; n + 2];
        if self.r.read_exact(&mut buf).await.is_err() {
            return false;
        }
        if n == 0 {
            return false;
        }
        self.text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        true
    }

    /// The next event (heartbeats counted and skipped); `None` when the stream ended.
    async fn next(&mut self) -> Option<Ev> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut ev = Ev {
                    raw: block.clone(),
                    ..Ev::default()
                };
                let mut has_field = false;
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.is_empty() {
                        continue;
                    }
                    if line.starts_with(':') {
                        self.comments += 1;
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    has_field = true;
                    match k {
                        "event" => ev.event = v.to_owned(),
                        "id" => ev.id = Some(v.to_owned()),
                        "data" => data.push(v.to_owned()),
                        _ => {}
                    }
                }
                if has_field {
                    ev.data = data.join("\n");
                    return Some(ev);
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout(GUARD, self.chunk()).await {
                Ok(true) => {}
                Ok(false) => self.ended = true,
                Err(_) => panic!("no event within {GUARD:?}"),
            }
        }
    }
}

/// The ids (and bodies) of an `objects` event's envelope.
fn objects_of(ev: &Ev) -> Vec<Value> {
    assert_eq!(ev.event, "objects", "{}", ev.raw);
    let v: Value = serde_json::from_str(&ev.data).unwrap();
    v["objects"].as_array().cloned().unwrap_or_default()
}

/// Every object of `intel` as the principal's TAXII pages return them (limit 7).
async fn taxii_objects(n: &Node, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("/concord/collections/{}/objects/?limit=7", n.intel);
        if let Some(t) = &next {
            path.push_str(&format!("&next={t}"));
        }
        let (status, _, body) = http(n.addr, &path, token).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        all.extend(v["objects"].as_array().cloned().unwrap_or_default());
        match v["next"].as_str() {
            Some(t) if v["more"] == true => next = Some(t.to_owned()),
            _ => break,
        }
    }
    all
}

fn small() -> Limits {
    Limits {
        stream_batch: 4,
        stream_poll_ms: 50,
        ..Limits::default()
    }
}

/// Receives objects until `want` of them came (or the stream ended); the objects and the
/// last event id.
async fn collect(s: &mut Sse, want: usize) -> (Vec<Value>, Option<String>) {
    let mut got = Vec::new();
    let mut last = None;
    while got.len() < want {
        let Some(ev) = s.next().await else { break };
        got.extend(objects_of(&ev));
        last = ev.id.clone().or(last);
    }
    (got, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumed_with_last_event_id_has_no_gap_and_no_duplicate() {
    let n = node(small()).await;
    n.write(&(0..10).map(|i| indicator(i, 10)).collect::<Vec<_>>());
    let (status, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    assert_eq!(status, 200);
    let mut s = s.unwrap();
    // What was there: three batches of at most 4 (stream_batch), each one audited entry.
    let (first, last) = collect(&mut s, 10).await;
    assert_eq!(first.len(), 10);
    let audited = n.audited("stream");
    assert_eq!(audited.len(), 3, "one transfer entry per batch");
    assert!(audited.iter().all(|e| e.partner == "acme"));
    // New writes wake the stream.
    n.write(&[indicator(10, 10), indicator(11, 10)]);
    let (more, last2) = collect(&mut s, 2).await;
    assert_eq!(more.len(), 2);
    assert!(last2.is_some() && last2 != last);
    drop(s);
    // Written while no one listens, then resumed from the last event id received.
    for k in 0..5 {
        n.write(&[indicator(12 + k, 10)]);
    }
    let (status, _, s) = open(n.addr, &n.stream_path(), &n.key, last2.as_deref()).await;
    assert_eq!(status, 200);
    let mut s = s.unwrap();
    let (rest, last3) = collect(&mut s, 5).await;
    assert_eq!(rest.len(), 5);
    // Resumed mid-batch this time: a reconnect after every single event.
    n.write(&(17..25).map(|i| indicator(i, 10)).collect::<Vec<_>>());
    drop(s);
    let mut resume = last3;
    let mut tail = Vec::new();
    while tail.len() < 8 {
        let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, resume.as_deref()).await;
        let mut s = s.unwrap();
        let ev = s.next().await.unwrap();
        tail.extend(objects_of(&ev));
        resume = ev.id.clone();
    }
    let streamed: Vec<Value> = [first, more, rest, tail].concat();
    // No gap, no duplicate, and exactly what TAXII pages give the same partner, in order.
    let ids: Vec<&str> = streamed.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 25);
    assert_eq!(unique.len(), 25);
    assert_eq!(streamed, taxii_objects(&n, &n.key).await);
    // The stream's event id is a TAXII `next`: the objects page resumes from it too.
    let (status, _, body) = http(
        n.addr,
        &format!(
            "/concord/collections/{}/objects/?next={}",
            n.intel,
            resume.unwrap()
        ),
        &n.key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v.get("objects").is_none(),
        "nothing after the last event: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tlp_red_object_never_appears_on_a_partners_stream() {
    let n = node(small()).await;
    n.write(&[indicator(0, 10), red(indicator(1, 10)), indicator(2, 10)]);
    let red_id = indicator(1, 10)["id"].as_str().unwrap().to_owned();
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let mut partner = s.unwrap();
    let (_, _, s) = open(n.addr, &n.stream_path(), ADMIN, None).await;
    let mut admin = s.unwrap();
    // Written while both listen: RED in the middle of a batch, and a RED batch of its own.
    n.write(&[indicator(3, 10), red(indicator(4, 10)), indicator(5, 10)]);
    n.write(&[red(indicator(6, 10))]);
    n.write(&[indicator(7, 10)]);
    let (p, _) = collect(&mut partner, 5).await;
    let (a, _) = collect(&mut admin, 8).await;
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (p, a) = (ids(&p), ids(&a));
    assert_eq!(a.len(), 8, "the operator receives every object: {a:?}");
    assert!(a.contains(&red_id));
    assert_eq!(p.len(), 5, "{p:?}");
    for i in [1, 4, 6] {
        let id = indicator(i, 10)["id"].as_str().unwrap().to_owned();
        assert!(!p.contains(&id), "{id} reached the partner");
    }
    // Nothing more is on its way to the partner: the next thing it gets is the next
    // CLEAR object.
    n.write(&[red(indicator(8, 10)), indicator(9, 10)]);
    let ev = partner.next().await.unwrap();
    assert_eq!(
        ids(&objects_of(&ev)),
        vec![indicator(9, 10)["id"].as_str().unwrap()]
    );
    // The withheld ones were decided and audited, never sent.
    let withheld = n
        .audited("stream")
        .iter()
        .filter(|e| e.partner == "acme")
        .map(|e| e.count)
        .sum::<i64>();
    assert_eq!(withheld, 10, "every object decided once for the partner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_with_a_reason() {
    let n = node(Limits {
        stream_batch: 1,
        stream_buffer: 2,
        stream_stall_ms: 300,
        stream_poll_ms: 50,
        ..Limits::default()
    })
    .await;
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let mut s = s.unwrap();
    // 200 objects of 100 kB (20 MB) while the client reads nothing: the socket buffers
    // fill, then the stream's two batches, then the stall ends the stream.
    for chunk in (0..200).collect::<Vec<_>>().chunks(20) {
        n.write(
            &chunk
                .iter()
                .map(|&i| indicator(i, 100_000))
                .collect::<Vec<_>>(),
        );
    }
    let deadline = Instant::now() + GUARD;
    while n.state.stream_gate().open() > 0 {
        assert!(
            Instant::now() < deadline,
            "the slow client was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now it reads: what was in flight, then the reason, then the end of the stream.
    let mut received = 0;
    let mut dropped = None;
    while let Some(ev) = s.next().await {
        if ev.event == "dropped" {
            dropped = Some(ev);
            break;
        }
        received += objects_of(&ev).len();
    }
    let dropped = dropped.expect("an event naming why the stream ended");
    let v: Value = serde_json::from_str(&dropped.data).unwrap();
    assert_eq!(v["reason"], "slow-client", "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("stream_buffer"),
        "{v}"
    );
    assert!(s.next().await.is_none(), "the stream ends after the reason");
    assert!(received < 200, "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_on_open_streams_answers_503_with_retry_after() {
    let n = node(Limits {
        stream_max: 2,
        stream_poll_ms: 50,
        ..Limits::default()
    })
    .await;
    let (_, _, a) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let (_, _, b) = open(n.addr, &n.stream_path(), ADMIN, None).await;
    assert!(a.is_some() && b.is_some());
    let (status, head, _) = open(n.addr, &n.stream_path(), &n.key, None).await;
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    // A closed stream frees its place.
    drop(a);
    let deadline = Instant::now() + GUARD;
    loop {
        let (status, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
        if status == 200 {
            assert!(s.is_some());
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_stream_open() {
    let n = node(Limits {
        stream_heartbeat_secs: 1,
        ..small()
    })
    .await;
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let mut s = s.unwrap();
    // Nothing to send for two seconds: two heartbeat comment lines (`: heartbeat`), no event.
    while s.text.matches(": heartbeat\n\n").count() < 2 {
        let more = tokio::time::timeout(GUARD, s.chunk())
            .await
            .expect("no heartbeat");
        assert!(more, "stream ended");
    }
    assert_eq!(s.text.replace(": heartbeat\n\n", ""), "", "only heartbeats");
    n.write(&[indicator(0, 10)]);
    let ev = s.next().await.unwrap();
    assert_eq!(objects_of(&ev).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_not_shared_answers_exactly_like_one_that_does_not_exist() {
    let n = node(small()).await;
    let private = n.store.collection("private").unwrap().unwrap().id;
    let stream = |c: &str| format!("/concord/collections/{c}/stream/");
    let (s1, h1, _) = open(n.addr, &stream(&private), &n.key, None).await;
    let (_, _, body_private) = http(n.addr, &stream(&private), &n.key).await;
    let (s2, _, _) = open(n.addr, &stream("no-such"), &n.key, None).await;
    assert_eq!((s1, s2), (404, 404), "{h1}");
    // The same bytes as the TAXII 404 of the objects endpoint for that name.
    let (_, _, taxii_private) = http(
        n.addr,
        &format!("/concord/collections/{private}/objects/"),
        &n.key,
    )
    .await;
    assert_eq!(body_private, taxii_private);
    let (_, _, a) = http(n.addr, &stream("x-1"), &n.key).await;
    let (_, _, b) = http(n.addr, "/concord/collections/x-1/objects/", &n.key).await;
    assert_eq!(a, b);
    // A Last-Event-ID not issued for this collection and partner: 400 naming it.
    let (status, _, _) = open(n.addr, &n.stream_path(), &n.key, Some("forged")).await;
    assert_eq!(status, 400);
    let mut s = TcpStream::connect(n.addr).await.unwrap();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nLast-Event-ID: forged\r\n\
         Connection: close\r\n\r\n",
        n.stream_path(),
        n.key
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.contains("Last-Event-ID"), "{out}");
    // Without credentials: 401, as every TAXII route.
    let (status, _, _) = open(n.addr, &n.stream_path(), "wrong", None).await;
    assert_eq!(status, 401);
}

/// One GET with extra header lines: status, lower-cased head, body.
async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    extra: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{extra}\
         Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(GUARD, s.read_to_string(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_holds_what_the_partner_receives_with_a_strong_etag() {
    let lists = concord_misp::Warninglists::load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/misp/warninglists"
    )))
    .unwrap();
    let n = node_with(small(), Some(lists)).await;
    let dns = json!({"type": "indicator", "spec_version": "2.1",
        "id": "indicator--dddddddd-0000-4000-8000-000000000000",
        "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '8.8.8.8']"});
    n.write(&[
        indicator(0, 10),
        red(indicator(1, 10)),
        indicator(2, 10),
        dns,
    ]);
    let plain = format!("/concord/collections/{}/feeds/plain", n.intel);
    let (status, head, body) = get_with(n.addr, &plain, &n.key, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body, "host0.example\nhost2.example\n",
        "no RED, no warninglisted value"
    );
    assert!(head.contains("content-type: text/plain"), "{head}");
    let tag = header(&head, "etag").unwrap().to_owned();
    assert!(
        tag.starts_with('"') && !tag.starts_with("W/"),
        "strong: {tag}"
    );
    assert_eq!(header(&head, "x-concord-feed-written"), Some("2"));
    let audited = n.audited("feed-plain");
    assert_eq!(audited.len(), 1);
    assert_eq!((audited[0].partner.as_str(), audited[0].count), ("acme", 4));
    // The same request with the tag: 304, no body, nothing read, nothing audited.
    let (status, head, body) =
        get_with(n.addr, &plain, &n.key, &format!("If-None-Match: {tag}\r\n")).await;
    assert_eq!(status, 304, "{head}");
    assert_eq!(body, "");
    assert_eq!(header(&head, "etag"), Some(tag.as_str()));
    assert_eq!(n.audited("feed-plain").len(), 1);
    // The operator's feed of the same collection has its own tag and holds the RED one.
    let (_, head, body) =
        get_with(n.addr, &plain, ADMIN, &format!("If-None-Match: {tag}\r\n")).await;
    assert_eq!(body, "host0.example\nhost1.example\nhost2.example\n");
    assert_ne!(header(&head, "etag"), Some(tag.as_str()));
    // A write changes the tag: the old one gets the new feed.
    n.write(&[indicator(3, 10)]);
    let (status, head, body) =
        get_with(n.addr, &plain, &n.key, &format!("If-None-Match: {tag}\r\n")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "host0.example\nhost2.example\nhost3.example\n");
    assert_ne!(header(&head, "etag"), Some(tag.as_str()));
    // Every format answers; an unknown one is a 404 naming the formats.
    for f in ["suricata", "zeek-intel", "rpz", "csv"] {
        let (status, _, body) = get_with(
            n.addr,
            &format!("/concord/collections/{}/feeds/{f}", n.intel),
            &n.key,
            "",
        )
        .await;
        assert_eq!(status, 200, "{f}: {body}");
        assert!(body.contains("host3.example"), "{f}: {body}");
        assert!(!body.contains("host1.example"), "{f}: {body}");
    }
    let (status, _, body) = get_with(
        n.addr,
        &format!("/concord/collections/{}/feeds/snort", n.intel),
        &n.key,
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("zeek-intel"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_of_a_collection_not_shared_answers_like_one_that_does_not_exist() {
    let n = node(small()).await;
    let private = n.store.collection("private").unwrap().unwrap().id;
    let (s1, _, a) = get_with(
        n.addr,
        &format!("/concord/collections/{private}/feeds/plain"),
        &n.key,
        "",
    )
    .await;
    let (_, _, taxii) = http(
        n.addr,
        &format!("/concord/collections/{private}/objects/"),
        &n.key,
    )
    .await;
    assert_eq!(s1, 404);
    assert_eq!(a, taxii);
    // Unknown collection, any format: the collection's 404 comes first.
    let (_, _, b) = get_with(n.addr, "/concord/collections/x-1/feeds/nope", &n.key, "").await;
    let (_, _, taxii) = http(n.addr, "/concord/collections/x-1/objects/", &n.key).await;
    assert_eq!(b, taxii);
    assert!(n.audited("feed-plain").is_empty());
}

/// Two stores on one PostgreSQL database, as two `serve` processes: a write through the
/// other one (no notification reaches this process) is seen by polling the collection's
/// version counter. Skips without `CONCORD_TEST_POSTGRES_URL` (fails under
/// `CONCORD_REQUIRE_POSTGRES=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_write_of_another_process_reaches_the_stream() {
    let url = match std::env::var("CONCORD_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CONCORD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CONCORD_REQUIRE_POSTGRES=1 but CONCORD_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipping: CONCORD_TEST_POSTGRES_URL not set");
            return;
        }
    };
    let (schema, one, two) = tokio::task::block_in_place(|| {
        let schema = concord_store::postgres::ScratchSchema::create(&url).unwrap();
        let open = || -> Arc<dyn Store> {
            Arc::new(concord_store::PostgresStore::open(schema.url()).unwrap())
        };
        let (one, two) = (open(), open());
        (schema, one, two)
    });
    let n = node_on(
        one,
        tempfile::tempdir().unwrap(),
        Some(schema),
        Limits {
            stream_poll_ms: 100,
            ..small()
        },
        None,
    )
    .await;
    n.write(&[indicator(0, 10)]);
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let mut s = s.unwrap();
    let (first, last) = collect(&mut s, 1).await;
    assert_eq!(first.len(), 1);
    // Written by the other "process": no notification, only the version counter moves.
    tokio::task::block_in_place(|| {
        put(
            two.as_ref(),
            &n.intel,
            &[indicator(1, 10), red(indicator(2, 10)), indicator(3, 10)],
        )
    });
    let (next, _) = collect(&mut s, 2).await;
    let ids: Vec<&str> = next.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            indicator(1, 10)["id"].as_str().unwrap(),
            indicator(3, 10)["id"].as_str().unwrap()
        ]
    );
    // Resumed after the first event: the same two, nothing else.
    drop(s);
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, last.as_deref()).await;
    let (again, _) = collect(&mut s.unwrap(), 2).await;
    assert_eq!(again, next);
    // The scratch schema is dropped through the synchronous client.
    tokio::task::block_in_place(|| drop(n));
}

impl Node {
    /// The node's database opened again, as another process (the CLI, another `serve`)
    /// opens it: nothing it changes is notified to this process.
    fn other_process(&self) -> SqliteStore {
        SqliteStore::open(&self._dir.path().join("c.sqlite")).unwrap()
    }

    /// Changes partner `acme` through [`Node::other_process`] (`None`: removes it).
    fn change_acme(&self, change: impl FnOnce(&mut Partner) -> bool) {
        tokio::task::block_in_place(|| {
            let other = self.other_process();
            let mut p = other
                .partners()
                .unwrap()
                .into_iter()
                .find(|p| p.name == "acme")
                .unwrap();
            if change(&mut p) {
                other.put_partner(&p).unwrap();
            } else {
                assert!(other.remove_partner("acme").unwrap());
            }
        });
    }
}

/// The next event must be the reason the stream ends (`revoked`), then the end.
async fn ends_revoked(s: &mut Sse) {
    let ev = s
        .next()
        .await
        .expect("an event naming why the stream ended");
    assert_eq!(ev.event, "dropped", "sent after the change: {}", ev.raw);
    let v: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(v["reason"], "revoked", "{v}");
    assert!(s.next().await.is_none(), "the stream ends after the reason");
}

/// A change to a partner: `false` removes it instead.
type Change = fn(&mut Partner) -> bool;

/// F1: an open stream stops as soon as its principal may no longer read the collection,
/// whichever process changed the partner: removed, key rotated, read permission withdrawn.
/// Every change is made through another connection to the database (as `concord partner`
/// does), then a write is notified: the batch it makes must not reach the partner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_partner_is_removed_rotated_or_loses_read() {
    let changes: [(&str, Change); 3] = [
        ("removed", |_| false),
        ("rotated", |p| {
            let (_, key_id, key_hash) = new_api_key().unwrap();
            (p.key_id, p.key_hash) = (key_id, key_hash);
            true
        }),
        ("read withdrawn", |p| {
            p.read.clear();
            true
        }),
    ];
    for (what, change) in changes {
        let n = node(small()).await;
        n.write(&[indicator(0, 10)]);
        let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
        let mut s = s.unwrap();
        let (got, _) = collect(&mut s, 1).await;
        assert_eq!(got.len(), 1, "{what}");
        n.change_acme(change);
        n.write(&[indicator(1, 10)]);
        ends_revoked(&mut s).await;
        // Nothing was built for it either: the one audited batch is the first.
        assert_eq!(n.audited("stream").len(), 1, "{what}");
        // Opening again with the old key is refused at once (the cache of partners is
        // not trusted for a stream): 401 for a key that is gone, 404 for the collection.
        let (status, _, _) = open(n.addr, &n.stream_path(), &n.key, None).await;
        let want = if what == "read withdrawn" { 404 } else { 401 };
        assert_eq!(status, want, "{what}");
    }
}

/// F1: an idle stream (no writes) is checked before each heartbeat and ends too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_ends_at_the_next_heartbeat_when_its_partner_is_removed() {
    let n = node(Limits {
        stream_heartbeat_secs: 1,
        ..small()
    })
    .await;
    let (_, _, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
    let mut s = s.unwrap();
    n.change_acme(|_| false);
    // Heartbeats are counted, not timed: each is sent only after the check, so at most
    // one may have been on its way while the partner was removed.
    while !s.text.contains("event: dropped") {
        assert!(
            s.text.matches(": heartbeat\n\n").count() <= 1,
            "heartbeats go on to a removed partner: {:?}",
            s.text
        );
        let more = tokio::time::timeout(GUARD, s.chunk())
            .await
            .expect("neither heartbeat nor reason");
        assert!(more, "the stream ended without a reason: {:?}", s.text);
    }
    ends_revoked(&mut s).await;
    assert_eq!(n.state.stream_gate().open(), 0);
}

/// F4: one partner holds at most `stream_max_per_partner` streams (429 naming it), the
/// partners together all but one place (503), and the operator still opens one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partner_cannot_take_every_stream_and_the_operator_keeps_one() {
    let n = node(Limits {
        stream_max: 4,
        stream_max_per_partner: 2,
        ..small()
    })
    .await;
    let (beta, beta_id, beta_hash) = new_api_key().unwrap();
    tokio::task::block_in_place(|| {
        n.store
            .put_partner(&Partner {
                name: "beta".into(),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: vec![n.intel.clone()],
                write: vec![],
                key_id: beta_id,
                key_hash: beta_hash,
                created_ns: 0,
                details: Default::default(),
            })
            .unwrap()
    });
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, head, s) = open(n.addr, &n.stream_path(), &n.key, None).await;
        assert_eq!(status, 200, "{head}");
        held.push(s.unwrap());
    }
    let path = n.stream_path();
    let (status, head, body) =
        get_with(n.addr, &path, &n.key, "Accept: text/event-stream\r\n").await;
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    assert!(body.contains("stream_max_per_partner"), "{body}");
    assert_eq!(n.state.stream_gate().open_by("acme"), 2);
    // Another partner still opens one: the third place of four.
    let (status, head, s) = open(n.addr, &path, &beta, None).await;
    assert_eq!(status, 200, "{head}");
    held.push(s.unwrap());
    // The last place is the operator's: a partner gets 503 naming stream_max ...
    let (status, head, body) =
        get_with(n.addr, &path, &beta, "Accept: text/event-stream\r\n").await;
    assert_eq!(status, 503, "{head}");
    assert!(body.contains("stream_max"), "{body}");
    // ... and the operator opens it.
    let (status, head, s) = open(n.addr, &path, ADMIN, None).await;
    assert_eq!(status, 200, "{head}");
    held.push(s.unwrap());
    assert_eq!(n.state.stream_gate().open(), 4);
}

/// The SOA serial of an RPZ zone.
fn soa_serial(zone: &str) -> u32 {
    let line = zone.lines().find(|l| l.contains(" IN SOA ")).unwrap();
    let after = line.split_once("( ").unwrap().1;
    after.split(' ').next().unwrap().parse().unwrap()
}

/// F2: a partner's feed tag and zone serial derive from what it receives: a write withheld
/// from it (TLP:RED) changes neither (a 304 still answers its tag), a shared write changes
/// both, the serial by one (RFC 1982).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_write_changes_neither_the_feed_tag_nor_the_zone_serial() {
    let n = node(small()).await;
    n.write(&[indicator(0, 10)]);
    let feed = |f: &str| format!("/concord/collections/{}/feeds/{f}", n.intel);
    let (status, head, zone) = get_with(n.addr, &feed("rpz"), &n.key, "").await;
    assert_eq!(status, 200, "{zone}");
    let (zone_tag, serial) = (header(&head, "etag").unwrap().to_owned(), soa_serial(&zone));
    let (_, head, _) = get_with(n.addr, &feed("plain"), &n.key, "").await;
    let plain_tag = header(&head, "etag").unwrap().to_owned();
    let (_, head, _) = get_with(n.addr, &feed("rpz"), ADMIN, "").await;
    let admin_tag = header(&head, "etag").unwrap().to_owned();
    // Withheld from the partner: its version counter moved, its feeds did not.
    n.write(&[red(indicator(1, 10))]);
    for (f, tag) in [("rpz", &zone_tag), ("plain", &plain_tag)] {
        let (status, head, body) = get_with(
            n.addr,
            &feed(f),
            &n.key,
            &format!("If-None-Match: {tag}\r\n"),
        )
        .await;
        assert_eq!((status, body.as_str()), (304, ""), "{f}: {head}");
        assert_eq!(header(&head, "etag"), Some(tag.as_str()), "{f}");
    }
    let (_, head, again) = get_with(n.addr, &feed("rpz"), &n.key, "").await;
    assert_eq!(again, zone);
    assert_eq!(header(&head, "etag"), Some(zone_tag.as_str()));
    assert_eq!(soa_serial(&again), serial);
    // The operator receives it: its zone changed.
    let (_, head, admin_zone) = get_with(n.addr, &feed("rpz"), ADMIN, "").await;
    assert_ne!(header(&head, "etag"), Some(admin_tag.as_str()));
    assert!(admin_zone.contains("host1.example"), "{admin_zone}");
    // Shared with the partner: new bytes, new tag, the next serial.
    n.write(&[indicator(2, 10)]);
    let (status, head, zone) = get_with(
        n.addr,
        &feed("rpz"),
        &n.key,
        &format!("If-None-Match: {zone_tag}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(zone.contains("host2.example"), "{zone}");
    assert_ne!(header(&head, "etag"), Some(zone_tag.as_str()));
    assert_eq!(soa_serial(&zone), serial.wrapping_add(1));
    let (status, _, _) = get_with(
        n.addr,
        &feed("plain"),
        &n.key,
        &format!("If-None-Match: {plain_tag}\r\n"),
    )
    .await;
    assert_eq!(status, 200);
}
