//! The request limits of issue 16, items 2 and 3, over real connections on loopback:
//! `POST /api/match`'s fields capped with a 400 naming the field, its compiled sets reused
//! until a collection changes (on PostgreSQL across two stores on one database, as two
//! `serve` processes), the page gate's 503 with `Retry-After`, and pages capped in bytes.
//! No assertion on time: where a request must be waiting, the test waits until the gate
//! says so.

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
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
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
    let objects: Vec<Value> = (0..10)
        .map(|i| indicator(i, &format!("host{i}.example")))
        .collect();
    put(store, &c.id, &objects);
    c.id
}

async fn serve(store: Arc<dyn Store>, limits: Limits) -> (std::net::SocketAddr, AppState) {
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
        concord_server::ConnTimeouts::default(),
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
    assert_eq!(set.len(), 10);
    // The same collection named twice is the same set.
    let twice = [id.to_owned(), id.to_owned()];
    assert!(cache.get(&e1, &twice, &op).unwrap().1);
    let (pset, reused) = cache.get(&e1, &ids, &partner).unwrap();
    assert!(!reused, "a partner's set is its own");
    assert_eq!(pset.len(), 10);
    assert!(cache.get(&e1, &ids, &partner).unwrap().1);

    // A write through the other store (another process on PostgreSQL).
    put(two.as_ref(), id, &[indicator(50, "added.example")]);
    let (set, reused) = cache.get(&e1, &ids, &op).unwrap();
    assert!(!reused, "an add invalidates");
    assert_eq!(set.len(), 11);
    assert!(cache.get(&e1, &ids, &op).unwrap().1);
    let all = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    let gone = format!("indicator--{:08x}-0000-4000-8000-000000000000", 50);
    assert_eq!(two.delete_object(id, &gone, &all).unwrap(), 1);
    let (set, reused) = cache.get(&e1, &ids, &op).unwrap();
    assert!(!reused, "a delete invalidates");
    assert_eq!(set.len(), 10);

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
        pset.len(),
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
