//! The request limits of issue 16, items 1 to 3, over real connections on loopback:
//! `POST /api/match`'s fields capped with a 400 naming the field (lines counted after
//! splitting entries at newlines), its compiled sets reused until a collection changes (on
//! PostgreSQL across two stores on one database, as two `serve` processes), kept per
//! audience so one cannot evict everyone, compiled a few at a time (then 503 with
//! `Retry-After`); the page gate's 503 with `Retry-After`, its reading of `limit` (decoded,
//! largest of repeats), its slot held until the page has been read, a client that does not
//! read dropped after the write timeout, and pages capped in bytes. No assertion on time:
//! where a request must be waiting, the test waits until the gate says so.

use std::sync::Arc;
use std::time::Duration;

use concord_egress::Egress;
use concord_policy::actions::{Policy, PseudonymKeys};
use concord_policy::egress::{CollectionSharing, PartnerProfile, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_server::auth::{ADMIN_TOKEN_SETTING, token_hash};
use concord_server::matching::{Audience, SetCache};
use concord_server::{AppState, Limits, ServerConfig};
use concord_store::{NewCollection, NewObject, ObjectFilter, SqliteStore, Store, VersionSelector};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-token-for-the-request-limit-tests";
const TAXII: &str = "application/taxii+json;version=2.1";
const T: &str = "2024-01-01T00:00:00.000Z";

/// Only a guard against a hanging test, never an assertion on speed.
const GUARD: Duration = Duration::from_secs(60);

fn indicator(i: usize, domain: &str) -> Value {
    json!({"type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{i:08x}-0000-4000-8000-000000000000"),
        "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
        "pattern": format!("[domain-name:value = '{domain}']"),
        "description": "d".repeat(200)})
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

/// A node with collection `intel` (ten indicators, host0…host9.example) shared as CLEAR.
fn store(dir: &std::path::Path) -> (Arc<dyn Store>, String) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("c.sqlite")).unwrap());
    let id = seed(store.as_ref());
    (store, id)
}

fn seed(store: &dyn Store) -> String {
    store
        .set_setting(ADMIN_TOKEN_SETTING, &token_hash(ADMIN))
        .unwrap();
    store
        .set_setting(concord_server::policy::JURISDICTION_SETTING, "CN")
        .unwrap();
    let objects: Vec<Value> = (0..10)
        .map(|i| indicator(i, &format!("host{i}.example")))
        .collect();
    shared_collection(store, "intel", &objects)
}

/// A new collection `alias` holding `objects`, shared as CLEAR; its id.
fn shared_collection(store: &dyn Store, alias: &str, objects: &[Value]) -> String {
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
    put(store, &c.id, objects);
    c.id
}

async fn serve(store: Arc<dyn Store>, limits: Limits) -> (std::net::SocketAddr, AppState) {
    serve_with(store, limits, concord_server::ConnLimits::default()).await
}

async fn serve_with(
    store: Arc<dyn Store>,
    limits: Limits,
    conn: concord_server::ConnLimits,
) -> (std::net::SocketAddr, AppState) {
    let state = AppState::new(
        store,
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
    let app = concord_server::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        conn,
        std::future::pending(),
    ));
    (addr, state)
}

/// One HTTP/1.1 exchange on a new connection: status, lower-cased head, body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {TAXII}\r\n\
         Authorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
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

async fn api_match(addr: std::net::SocketAddr, request: &Value) -> (u16, String, String) {
    http(addr, "POST", "/api/match", Some(&request.to_string())).await
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_fields_are_deduplicated_and_capped_with_a_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let limits = Limits {
        match_collections: 2,
        match_lines: 3,
        match_bytes: 40,
        ..Limits::default()
    };
    let (addr, _) = serve(store, limits).await;

    // One collection named 2,000 times is one collection: answered, not 400.
    let r = api_match(
        addr,
        &json!({"collections": vec!["intel"; 2000], "lines": ["host3.example", "x.example"]}),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let v: Value = serde_json::from_str(&r.2).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 1, "{v}");

    // Three distinct names over a cap of two.
    let r = api_match(
        addr,
        &json!({"collections": ["intel", "a", "b"], "lines": []}),
    )
    .await;
    assert_eq!(r.0, 400, "{}", r.2);
    assert!(r.1.contains("content-type: application/json"), "{}", r.1);
    let e = error_of(&r.2);
    assert!(
        e.starts_with("collections:") && e.contains("match_collections"),
        "{e}"
    );
    // None at all.
    let r = api_match(addr, &json!({"collections": [], "lines": []})).await;
    assert_eq!(r.0, 400, "{}", r.2);
    assert!(error_of(&r.2).starts_with("collections:"));

    // Four lines over a cap of three.
    let r = api_match(
        addr,
        &json!({"collections": ["intel"], "lines": ["a", "b", "c", "d"]}),
    )
    .await;
    assert_eq!(r.0, 400, "{}", r.2);
    let e = error_of(&r.2);
    assert!(e.starts_with("lines:") && e.contains("match_lines"), "{e}");

    // 41 bytes over a cap of 40, in two lines.
    let r = api_match(
        addr,
        &json!({"collections": ["intel"], "lines": ["a".repeat(20), "b".repeat(21)]}),
    )
    .await;
    assert_eq!(r.0, 400, "{}", r.2);
    let e = error_of(&r.2);
    assert!(e.starts_with("lines:") && e.contains("match_bytes"), "{e}");
    // Exactly at the caps: answered.
    let r = api_match(
        addr,
        &json!({"collections": ["intel"], "lines": ["a".repeat(20), "b".repeat(20)]}),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);

    // One entry holding four lines is four lines: over the cap of three.
    let r = api_match(
        addr,
        &json!({"collections": ["intel"], "lines": ["a\nb\nc\nd"]}),
    )
    .await;
    assert_eq!(r.0, 400, "{}", r.2);
    let e = error_of(&r.2);
    assert!(
        e.starts_with("lines:") && e.contains("match_lines") && e.contains("got 4"),
        "{e}"
    );
    // Three lines in two entries, one of them with a newline: at the cap, answered, and
    // the second line of the first entry is matched.
    let r = api_match(
        addr,
        &json!({"collections": ["intel"], "lines": ["a\nhost4.example", "c"]}),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let v: Value = serde_json::from_str(&r.2).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["hits"][0]["line"], 2, "{v}");
    assert_eq!(v["malformed"].as_array().unwrap().len(), 2, "{v}");
}

/// A new indicator is matched on the next request: the cached set is invalidated by the
/// collection's version, over HTTP end to end (a TAXII POST, then a TAXII DELETE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_sees_every_add_and_delete_of_its_collections() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let (addr, _) = serve(store, Limits::default()).await;
    let ask = json!({"collections": ["intel"], "lines": ["new.example", "host1.example"]});
    let lines = |body: &str| -> Vec<u64> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["line"].as_u64().unwrap())
            .collect()
    };
    let r = api_match(addr, &ask).await;
    assert_eq!((r.0, lines(&r.2)), (200, vec![2]), "{}", r.2);
    // Twice, so that the second answer comes from the cache.
    let r = api_match(addr, &ask).await;
    assert_eq!((r.0, lines(&r.2)), (200, vec![2]), "{}", r.2);

    let new = indicator(99, "new.example");
    let envelope = json!({"objects": [new]}).to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /concord/collections/intel/objects/ HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: {TAXII}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: {TAXII}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{envelope}",
        envelope.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(GUARD, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    let r = api_match(addr, &ask).await;
    assert_eq!((r.0, lines(&r.2)), (200, vec![1, 2]), "{}", r.2);

    let id = new["id"].as_str().unwrap();
    let r = http(
        addr,
        "DELETE",
        &format!("/concord/collections/intel/objects/{id}/"),
        None,
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let r = api_match(addr, &ask).await;
    assert_eq!((r.0, lines(&r.2)), (200, vec![2]), "{}", r.2);
}

fn partner() -> PartnerProfile {
    PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: Vec::new(),
    }
}

fn egress(store: Arc<dyn Store>) -> Egress {
    let keys = PseudonymKeys {
        node_secret: Some(b"a node secret of 32 bytes, fixed".to_vec()),
        ..PseudonymKeys::default()
    };
    Egress::new(store, Arc::new(Policy::node_default(Some("CN"), keys)))
}

/// The cache itself: reused while nothing changed, for the operator and a partner apart;
/// recompiled after an add, a delete, or a new sharing of the collection; the least
/// recently used set dropped past the bound.
fn cache_is_invalidated_by_versions(one: Arc<dyn Store>, two: Arc<dyn Store>, id: &str) {
    let (e1, e2) = (egress(one), egress(two.clone()));
    let cache = SetCache::new(2);
    let ids = [id.to_owned()];
    let p = partner();
    let (op, partner) = (Audience::Operator, Audience::Partner(&p));
    let other = PartnerProfile {
        name: "other".into(),
        ..p.clone()
    };
    let (set, reused) = cache.get(&e1, &ids, &op).unwrap();
    assert!(!reused);
    assert_eq!(set.set.len(), 10);
    // The same collection named twice is the same set.
    let twice = [id.to_owned(), id.to_owned()];
    assert!(cache.get(&e1, &twice, &op).unwrap().1);
    let (pset, reused) = cache.get(&e1, &ids, &partner).unwrap();
    assert!(!reused, "a partner's set is its own");
    assert_eq!(pset.set.len(), 10);
    assert!(cache.get(&e1, &ids, &partner).unwrap().1);

    // A write through the other store (another process on PostgreSQL).
    put(two.as_ref(), id, &[indicator(50, "added.example")]);
    let (set, reused) = cache.get(&e1, &ids, &op).unwrap();
    assert!(!reused, "an add invalidates");
    assert_eq!(set.set.len(), 11);
    assert!(cache.get(&e1, &ids, &op).unwrap().1);
    let all = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    let gone = format!("indicator--{:08x}-0000-4000-8000-000000000000", 50);
    assert_eq!(two.delete_object(id, &gone, &all).unwrap(), 1);
    let (set, reused) = cache.get(&e1, &ids, &op).unwrap();
    assert!(!reused, "a delete invalidates");
    assert_eq!(set.set.len(), 10);

    // The partner's set was compiled before the add and the delete: compiled again, once.
    assert!(!cache.get(&e1, &ids, &partner).unwrap().1);
    assert!(cache.get(&e1, &ids, &partner).unwrap().1);
    // Sharing decides what a partner receives: a new sharing recompiles its set.
    let red = CollectionSharing {
        groups: None,
        recipients: Vec::new(),
        default_tlp: Tlp::Red,
        addressed: Default::default(),
        grants: Default::default(),
    };
    two.set_setting(&sharing_setting_key(id), &red.to_json())
        .unwrap();
    let (pset, reused) = cache.get(&e1, &ids, &partner).unwrap();
    assert!(!reused);
    assert_eq!(
        pset.set.len(),
        0,
        "unmarked indicators of a RED default go to nobody"
    );

    // Bound of two: a third set drops the least recently used (the operator's).
    assert!(!cache.get(&e2, &ids, &Audience::Partner(&other)).unwrap().1);
    assert!(!cache.get(&e1, &ids, &op).unwrap().1, "evicted");
}

#[test]
fn match_sets_are_reused_until_a_collection_changes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let one: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let id = seed(one.as_ref());
    let two: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    cache_is_invalidated_by_versions(one, two, &id);
}

/// Two stores on one PostgreSQL database, as two `serve` processes: a write through one
/// invalidates the other's cached set. Skips without `CONCORD_TEST_POSTGRES_URL` (fails
/// under `CONCORD_REQUIRE_POSTGRES=1`).
#[test]
fn match_sets_are_invalidated_across_processes_on_postgres() {
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
    let schema = concord_store::postgres::ScratchSchema::create(&url).unwrap();
    let one: Arc<dyn Store> = Arc::new(concord_store::PostgresStore::open(schema.url()).unwrap());
    let two: Arc<dyn Store> = Arc::new(concord_store::PostgresStore::open(schema.url()).unwrap());
    let id = seed(one.as_ref());
    cache_is_invalidated_by_versions(one, two, &id);
}

/// Waits (never asserting on time) until the gate holds `waiting` pages in its queue.
async fn until_waiting(state: &AppState, waiting: usize) {
    tokio::time::timeout(GUARD, async {
        while state.page_gate().load().1 != waiting {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the page never queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_beyond_the_gate_and_its_queue_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let limits = Limits {
        page_concurrency: 1,
        page_queue: 1,
        ..Limits::default()
    };
    let (addr, state) = serve(store, limits).await;
    let objects = "/concord/collections/intel/objects/?limit=5";
    // The one slot and the small page's slot, taken.
    let held = state.page_gate().enter(10_000).await.unwrap();
    let held_small = state.page_gate().enter(1).await.unwrap();
    assert_eq!(state.page_gate().load(), (2, 0));
    // The first page waits in the queue…
    let queued = tokio::spawn(http(addr, "GET", objects, None));
    until_waiting(&state, 1).await;
    // …and the next, on any page route, is refused at once.
    for path in [
        objects,
        "/concord/collections/intel/manifest/",
        "/concord/collections/intel/objects/indicator--00000001-0000-4000-8000-000000000000/",
        "/concord/collections/intel/objects/indicator--00000001-0000-4000-8000-000000000000/versions/",
    ] {
        let (status, head, body) = http(addr, "GET", path, None).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(head.contains(&format!("content-type: {TAXII}")), "{head}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["http_status"], "503", "{body}");
    }
    // Routes that build no page are not held by it.
    let (status, _, body) = http(addr, "GET", "/concord/collections/intel/", None).await;
    assert_eq!(status, 200, "{body}");
    // The slot freed: the waiting page is served, then the gate is empty again.
    drop(held);
    let (status, _, body) = queued.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(state.page_gate().load(), (1, 0));
    drop(held_small);
    assert_eq!(state.page_gate().load(), (0, 0));
    let (status, _, body) = http(addr, "GET", objects, None).await;
    assert_eq!(status, 200, "{body}");
}

/// The cheapest waiting page goes first: a limit=1 page that arrives after a limit=10000
/// page is served before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smallest_waiting_page_goes_first() {
    let gate = concord_server::limits::PageGate::new(1, 8);
    let held = gate.enter(1).await.unwrap();
    let held_small = gate.enter(1).await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let spawn = |cost: usize| {
        let (gate, order) = (gate.clone(), order.clone());
        tokio::spawn(async move {
            let permit = gate.enter(cost).await.unwrap();
            order.lock().unwrap().push(cost);
            drop(permit);
        })
    };
    let big = spawn(10_000);
    while gate.load().1 != 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let small = spawn(1);
    while gate.load().1 != 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A waiter that gives up leaves the queue.
    let gone = spawn(5);
    while gate.load().1 != 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gone.abort();
    let _ = gone.await;
    assert_eq!(gate.load(), (2, 2));
    drop(held);
    tokio::time::timeout(GUARD, async {
        big.await.unwrap();
        small.await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(*order.lock().unwrap(), [1, 10_000]);
    assert_eq!(gate.load(), (1, 0));
    drop(held_small);
    assert_eq!(gate.load(), (0, 0));
}

/// A small page (at most `SMALL_PAGE` objects) does not wait for large ones: it has a slot
/// of its own, which a large page never takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_page_has_a_slot_large_ones_do_not_take() {
    use concord_server::limits::{PageGate, SMALL_PAGE};
    let gate = PageGate::new(1, 8);
    let big = gate.enter(10_000).await.unwrap();
    // Another large page waits…
    let waiting = {
        let gate = gate.clone();
        tokio::spawn(async move { gate.enter(SMALL_PAGE + 1).await.map(drop) })
    };
    while gate.load().1 != 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // …while a small one is let in at once.
    let small = gate.enter(SMALL_PAGE).await.unwrap();
    assert_eq!(gate.load(), (2, 1));
    // The small slot freed is not handed to the large page.
    drop(small);
    assert_eq!(gate.load(), (1, 1));
    drop(big);
    tokio::time::timeout(GUARD, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gate.load(), (0, 0));
}

/// A page stops at `page_max_bytes` of objects with `more` and a `next` that resumes
/// exactly: every object once over the pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_capped_in_bytes_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let limits = Limits {
        page_max_bytes: 1000,
        ..Limits::default()
    };
    let (addr, _) = serve(store, limits).await;
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/concord/collections/intel/objects/?limit=100".to_owned();
        if let Some(n) = &next {
            path.push_str("&next=");
            path.push_str(
                &n.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D"),
            );
        }
        let (status, _, body) = http(addr, "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let objects = v["objects"].as_array().unwrap();
        assert!(!objects.is_empty());
        let bytes: usize = objects.iter().map(|o| o.to_string().len()).sum();
        assert!(bytes <= 1000, "{bytes} bytes in {} objects", objects.len());
        ids.extend(objects.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        pages += 1;
        if v["more"] == true {
            next = Some(v["next"].as_str().unwrap().to_owned());
        } else {
            assert!(v.get("next").is_none());
            break;
        }
        assert!(pages < 50);
    }
    // Ten indicators of ~450 bytes under 1,000 bytes a page: two per page.
    assert_eq!(pages, 5);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 10, "{ids:?}");
}

/// The gate reads `limit` as the handler does (percent-decoded, the largest of repeated
/// ones, unreadable as the default of 1,000): with the one slot for any page taken, a page
/// that may be small is let into the small page's slot at once, and every spelling of a
/// large one waits in the queue. A gate that read the raw query, or the first `limit`,
/// would fail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_gate_decodes_limit_as_the_handler_does() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let limits = Limits {
        page_concurrency: 1,
        page_queue: 4,
        ..Limits::default()
    };
    let (addr, state) = serve(store, limits).await;
    let gate = state.page_gate();
    let objects = "/concord/collections/intel/objects/";
    let mut held = gate.enter(10_000).await.unwrap();
    // Small: served while the large slot is held.
    for query in [
        "limit=5",
        "li%6Dit=5",
        "limit=%35",
        "limit=%2B5",
        "limit=100",
    ] {
        let path = format!("{objects}?{query}");
        let (status, _, body) = tokio::time::timeout(GUARD, http(addr, "GET", &path, None))
            .await
            .unwrap_or_else(|_| panic!("{query}: queued as a large page"));
        assert_eq!(status, 200, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let n = v["objects"].as_array().unwrap().len();
        assert!(n <= 10, "{query}: {n} objects");
    }
    assert_eq!(gate.load(), (1, 0));
    // Large, however spelled: queued until the slot is free. The handler answers some of
    // them 400 (repeated or unreadable `limit`), but only once let through.
    for (query, want) in [
        ("limit=10000", 200),
        ("li%6Dit=10000", 200),
        ("limit=%31%30%30%30%30", 200),
        ("limit=%2B10000", 200),
        ("limit=5000000", 200),
        ("limit=101", 200),
        ("", 200),
        ("limit=1&limit=10000", 400),
        ("limit=10000&limit=1", 400),
        ("limit=5&li%6Dit=10000", 400),
        ("limit=99999999999999999999", 400),
        ("limit=-1", 400),
        ("limit=ten", 400),
        ("limit=%ZZ", 400),
    ] {
        let path = format!("{objects}?{query}");
        let queued = tokio::spawn(async move { http(addr, "GET", &path, None).await });
        until_waiting(&state, 1).await;
        drop(held);
        let (status, _, body) = tokio::time::timeout(GUARD, queued)
            .await
            .expect("never served")
            .unwrap();
        assert_eq!(status, want, "{query}: {body}");
        held = gate.enter(10_000).await.unwrap();
        assert_eq!(gate.load(), (1, 0), "{query}");
    }
}

/// A collection `big` of 1,200 indicators of about 10 KB each: one page of them (12 MB) is
/// far more than the socket buffers between a client that does not read and the server.
fn big(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "big".into(),
            ..Default::default()
        })
        .unwrap();
    let objects: Vec<Value> = (0..1200)
        .map(|i| {
            let mut o = indicator(10_000 + i, &format!("big{i}.example"));
            o["description"] = json!("d".repeat(10_000));
            o
        })
        .collect();
    put(store, &c.id, &objects);
}

/// A connection with a small receive buffer that asks for `big`'s page of 1,200 objects
/// and reads only the response head; the head and the `Content-Length`.
async fn ask_for_the_big_page(addr: std::net::SocketAddr) -> (TcpStream, usize) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let req = format!(
        "GET /concord/collections/big/objects/?limit=10000 HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: {TAXII}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Byte by byte up to the end of the head, so that no byte of the body is taken.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(GUARD, s.read_u8())
            .await
            .expect("no answer")
            .unwrap();
        head.push(b);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    assert!(length > 11_000_000, "{length}");
    (s, length)
}

/// Waits (never asserting on time) until the gate is empty.
async fn until_free(state: &AppState) {
    tokio::time::timeout(GUARD, async {
        while state.page_gate().load() != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the page slot was never freed");
}

/// Finding F6: the page's slot is held until its body has been handed to the connection,
/// not only until it was built: a client that has its page's head but has not read the
/// body keeps the slot (so pages built and unsent are bounded by `page_concurrency`, not
/// by the number of clients), and frees it by reading to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_its_slot_until_the_client_has_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    big(store.as_ref());
    let limits = Limits {
        page_concurrency: 1,
        ..Limits::default()
    };
    let (addr, state) = serve(store, limits).await;
    let (mut s, length) = ask_for_the_big_page(addr).await;
    // Built (its head was sent), not read: the slot is still taken.
    assert_eq!(state.page_gate().load(), (1, 0));
    let mut body = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut body))
        .await
        .expect("the page never came")
        .unwrap();
    assert_eq!(body.len(), length);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["objects"].as_array().unwrap().len(), 1200);
    until_free(&state).await;
}

/// Finding F6: a client that stops taking bytes is dropped once `write_timeout` passes
/// without progress; its page's slot is freed and it gets less than the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_page_is_dropped_after_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    big(store.as_ref());
    let limits = Limits {
        page_concurrency: 1,
        ..Limits::default()
    };
    let conn = concord_server::ConnLimits {
        write: Duration::from_secs(1),
        ..concord_server::ConnLimits::default()
    };
    let (addr, state) = serve_with(store, limits, conn).await;
    let (mut s, length) = ask_for_the_big_page(addr).await;
    // Dropped by the server: the slot is free although the client read nothing more.
    until_free(&state).await;
    let mut body = Vec::new();
    // What was in the sockets' buffers still arrives, then the end (or a reset).
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut body))
        .await
        .expect("the connection was never closed");
    assert!(
        body.len() < length,
        "{} of {length} bytes: the page was sent whole",
        body.len()
    );
    // The server serves others meanwhile.
    let (status, _, body) = http(addr, "GET", "/concord/collections/intel/objects/", None).await;
    assert_eq!(status, 200, "{body}");
}

/// Another collection `alias`, one indicator (number `n`, of `domain`), shared as CLEAR.
fn other(store: &dyn Store, alias: &str, n: usize, domain: &str) -> String {
    shared_collection(store, alias, &[indicator(n, domain)])
}

/// Finding F7: compiles go through a gate (`match_compile_concurrency`, then
/// `match_compile_queue` waiting, then 503 with `Retry-After` as JSON naming the limit); a
/// request whose set is cached does not enter it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_compiles_past_the_gate_and_its_queue_get_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    other(store.as_ref(), "other", 777, "other.example");
    let limits = Limits {
        match_compile_concurrency: 1,
        match_compile_queue: 1,
        ..Limits::default()
    };
    let (addr, state) = serve(store, limits).await;
    let gate = state.match_sets().compile_gate();
    let intel = json!({"collections": ["intel"], "lines": ["host1.example"]});
    let other = json!({"collections": ["other"], "lines": ["other.example"]});
    // The one compile slot taken: the first set's compile waits in the queue…
    let held = gate.enter().unwrap();
    let queued = {
        let intel = intel.clone();
        tokio::spawn(async move { api_match(addr, &intel).await })
    };
    tokio::time::timeout(GUARD, async {
        while gate.load() != (1, 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the compile never queued");
    // …and another set's is refused at once.
    let (status, head, body) = api_match(addr, &other).await;
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let e = error_of(&body);
    assert!(e.contains("match_compile_queue"), "{e}");
    // The slot freed: the waiting compile runs and answers.
    drop(held);
    let (status, _, body) = tokio::time::timeout(GUARD, queued).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(gate.load(), (0, 0));
    // With the slot and the queue taken again, a cached set is still answered.
    let held = gate.enter().unwrap();
    let (status, _, body) = api_match(addr, &intel).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 1, "{v}");
    drop(held);
    let (status, _, body) = api_match(addr, &other).await;
    assert_eq!(status, 200, "{body}");
}

/// Finding F7: one audience cannot evict everyone. A partner cycling through more
/// collection sets than its quota replaces only its own; when the cache is full, a new
/// audience's set replaces one of the audience holding the most.
#[test]
fn match_sets_are_kept_per_audience() {
    let dir = tempfile::tempdir().unwrap();
    let (store, intel) = store(dir.path());
    let ids: Vec<String> = (0..3)
        .map(|i| {
            other(
                store.as_ref(),
                &format!("c{i}"),
                800 + i,
                &format!("c{i}.example"),
            )
        })
        .collect();
    let e = egress(store);
    let cache = SetCache::with_limits(&Limits {
        match_cache_sets: 3,
        match_cache_sets_per_audience: 2,
        ..Limits::default()
    });
    let p = partner();
    let q = PartnerProfile {
        name: "cert-fr".into(),
        jurisdiction: "FR".into(),
        groups: Vec::new(),
    };
    let (op, partner, q) = (
        Audience::Operator,
        Audience::Partner(&p),
        Audience::Partner(&q),
    );
    let one = |id: &String| vec![id.clone()];
    let operator_set = one(&intel);
    assert!(!cache.get(&e, &operator_set, &op).unwrap().1);
    // The partner cycles through three sets, twice, with a quota of two: each is compiled
    // every time (its own sets evict each other)…
    for _ in 0..2 {
        for id in &ids {
            assert!(!cache.get(&e, &one(id), &partner).unwrap().1);
        }
    }
    assert_eq!(cache.len(), 3);
    // …and the operator's set, older than all of them, is still there.
    assert!(cache.get(&e, &operator_set, &op).unwrap().1);
    // The partner's two newest are kept.
    assert!(cache.get(&e, &one(&ids[2]), &partner).unwrap().1);
    assert!(cache.get(&e, &one(&ids[1]), &partner).unwrap().1);
    // A third audience, the cache full: the partner (two sets) gives one up, the least
    // recently used of its own (ids[2]); the operator keeps its one.
    assert!(!cache.get(&e, &one(&ids[0]), &q).unwrap().1);
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&e, &operator_set, &op).unwrap().1);
    assert!(cache.get(&e, &one(&ids[1]), &partner).unwrap().1);
    assert!(cache.get(&e, &one(&ids[0]), &q).unwrap().1);
    assert!(
        !cache.get(&e, &one(&ids[2]), &partner).unwrap().1,
        "evicted"
    );
}
