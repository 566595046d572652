//! Benchmark of the live stream (issue 21, item 1; BENCHMARKS.md §12). Not a test: nothing
//! here asserts a time.
//!
//! A node on loopback (SQLite in a temporary directory, or a scratch schema of the
//! PostgreSQL database `CONCORD_BENCH_POSTGRES_URL`), one partner reading collection `intel` (shared as CLEAR).
//! A writer commits `WRITES` indicators in commits of `PER_COMMIT` and wakes the streams as
//! the TAXII POST does; one consumer follows `…/stream/` over HTTP and is killed (its
//! connection dropped) and resumed with `Last-Event-ID` `KILLS` times while the writer
//! writes. At the end: objects received, duplicates, gaps (written, never received), order
//! violations, and the time from commit to event (p50, p99, max) for the objects committed
//! while the consumer was connected, and for all.
//!
//! ```text
//! cargo run --release -p concord-server --example stream_bench [WRITES [PER_COMMIT [KILLS]]]
//! ```
//! Defaults: 50,000 writes, 10 per commit, 20 kills.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use concord_policy::egress::{CollectionSharing, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_server::auth::{ADMIN_TOKEN_SETTING, new_api_key, token_hash};
use concord_server::{AppState, Limits, ServerConfig};
use concord_store::{NewCollection, NewObject, Partner, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const T: &str = "2024-01-01T00:00:00.000Z";

fn indicator(i: usize) -> Value {
    json!({"type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{i:08x}-0000-4000-8000-000000000000"),
        "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
        "pattern": format!("[domain-name:value = 'host{i}.example']")})
}

fn number_of(id: &str) -> usize {
    usize::from_str_radix(&id["indicator--".len().."indicator--".len() + 8], 16).unwrap()
}

/// A minimal SSE reader over a chunked HTTP/1.1 body.
struct Sse {
    r: BufReader<TcpStream>,
    text: String,
}

impl Sse {
    async fn open(addr: std::net::SocketAddr, path: &str, key: &str, last: Option<&str>) -> Sse {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {key}\r\n{resume}\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut r = BufReader::new(s);
        let mut first = true;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            if first {
                assert!(line.starts_with("HTTP/1.1 200"), "{line}");
                first = false;
            }
            if line == "\r\n" {
                break;
            }
        }
        Sse {
            r,
            text: String::new(),
        }
    }

    /// The next event's `(id, data)`; heartbeats skipped.
    async fn next(&mut self) -> Option<(Option<String>, String, String)> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    }
                }
                if !event.is_empty() {
                    return Some((id, event, data.join("\n")));
                }
            }
            let mut size = String::new();
            if self.r.read_line(&mut size).await.ok()? == 0 {
                return None;
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut buf = vec![0u8; n + 2];
            self.r.read_exact(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.text.push_str(std::str::from_utf8(&buf[..n]).ok()?);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: WRITES PER_COMMIT KILLS"))
        .collect();
    let writes = args.first().copied().unwrap_or(50_000);
    let per_commit = args.get(1).copied().unwrap_or(10).max(1);
    let kills = args.get(2).copied().unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    // The stores are synchronous (PostgreSQL's client drives a runtime of its own).
    let (store, backend, schema, c, key, state) = tokio::task::block_in_place(|| {
        // On PostgreSQL, a scratch schema of its own, dropped at the end.
        let mut schema = None;
        let (store, backend): (Arc<dyn Store>, &str) =
            match std::env::var("CONCORD_BENCH_POSTGRES_URL") {
                Ok(url) => {
                    let scratch = concord_store::postgres::ScratchSchema::create(&url).unwrap();
                    let s = concord_store::PostgresStore::open(scratch.url()).unwrap();
                    schema = Some(scratch);
                    (Arc::new(s), "postgresql")
                }
                Err(_) => (
                    Arc::new(
                        concord_store::SqliteStore::open(&dir.path().join("c.sqlite")).unwrap(),
                    ),
                    "sqlite",
                ),
            };
        store
            .set_setting(ADMIN_TOKEN_SETTING, &token_hash("bench-admin"))
            .unwrap();
        store
            .set_setting(concord_server::policy::JURISDICTION_SETTING, "DE")
            .unwrap();
        let c = store
            .create_collection(&NewCollection {
                alias: format!("intel-{}", std::process::id()),
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
        let (key, key_id, key_hash) = new_api_key().unwrap();
        store
            .put_partner(&Partner {
                name: format!("bench-{}", std::process::id()),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: vec![c.id.clone()],
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
                title: "bench".into(),
                description: None,
                contact: None,
                api_root: "concord".into(),
                max_content_length: 8 << 20,
                ingress: Default::default(),
                limits: Limits::default(),
                policy: Default::default(),
                auth_limits: Default::default(),
            },
        )
        .unwrap();
        (store, backend, schema, c, key, state)
    });
    let app = concord_server::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(concord_server::serve(
        listener,
        app,
        concord_server::ConnLimits::default(),
        std::future::pending(),
    ));
    let path = format!("/concord/collections/{}/stream/", c.id);
    let start = Instant::now();
    // Commit time of each object, ns after `start` (0: not yet committed).
    let committed: Arc<Vec<AtomicI64>> = Arc::new((0..writes).map(|_| AtomicI64::new(0)).collect());
    let writer = {
        let (store, state, committed, cid) = (
            store.clone(),
            state.clone(),
            committed.clone(),
            c.id.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut i = 0;
            while i < writes {
                let n = per_commit.min(writes - i);
                let objects: Vec<Value> = (i..i + n).map(indicator).collect();
                let mut batch = store.begin_write(&cid).unwrap();
                for v in &objects {
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
                let t = start.elapsed().as_nanos() as i64;
                for k in i..i + n {
                    committed[k].store(t, Ordering::Relaxed);
                }
                state.notify_write();
                i += n;
            }
            start.elapsed()
        })
    };
    // The consumer: killed after every `writes / (kills + 1)` objects received, resumed
    // after a pause of 20 ms with the last event id it had.
    let per_life = writes / (kills + 1) + 1;
    let mut seen: HashSet<usize> = HashSet::with_capacity(writes);
    let (mut duplicates, mut out_of_order, mut resumed) = (0usize, 0usize, 0usize);
    let mut last_n: Option<usize> = None;
    let mut last_id: Option<String> = None;
    let mut connected_lat = Vec::with_capacity(writes);
    let mut all_lat = Vec::with_capacity(writes);
    let mut events = 0usize;
    let mut early = 0usize;
    while seen.len() < writes {
        let connected_at = start.elapsed().as_nanos() as i64;
        let mut s = Sse::open(addr, &path, &key, last_id.as_deref()).await;
        let mut this_life = 0;
        while this_life < per_life || resumed >= kills {
            let Some((id, event, data)) = s.next().await else {
                panic!("stream ended")
            };
            assert_eq!(event, "objects", "{data}");
            events += 1;
            let now = start.elapsed().as_nanos() as i64;
            let v: Value = serde_json::from_str(&data).unwrap();
            for o in v["objects"].as_array().into_iter().flatten() {
                let n = number_of(o["id"].as_str().unwrap());
                if !seen.insert(n) {
                    duplicates += 1;
                }
                if last_n.is_some_and(|l| n <= l) {
                    out_of_order += 1;
                }
                last_n = Some(n);
                // 0: the event came before the writer noted the end of its commit (the
                // stream polled the version counter in between): no measurable delay.
                let t = committed[n].load(Ordering::Relaxed);
                if t == 0 {
                    early += 1;
                }
                let ms = if t == 0 { 0.0 } else { (now - t) as f64 / 1e6 };
                all_lat.push(ms);
                if t > connected_at {
                    connected_lat.push(ms);
                }
                this_life += 1;
            }
            last_id = id.or(last_id);
            if seen.len() >= writes {
                break;
            }
        }
        if seen.len() < writes {
            drop(s);
            resumed += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let write_time = writer.await.unwrap();
    let total = start.elapsed();
    let gaps = (0..writes).filter(|n| !seen.contains(n)).count();
    connected_lat.sort_by(f64::total_cmp);
    all_lat.sort_by(f64::total_cmp);
    println!("backend: {backend}");
    println!(
        "writes: {writes} objects in {} commits of {per_commit}, written in {:.2} s ({:.0} objects/s)",
        writes.div_ceil(per_commit),
        write_time.as_secs_f64(),
        writes as f64 / write_time.as_secs_f64()
    );
    println!(
        "consumer: killed and resumed {resumed} times; {} objects in {events} events; \
         {duplicates} duplicates, {gaps} gaps, {out_of_order} out of commit order; done after {:.2} s \
         ({early} objects arrived before the writer noted its commit's end: counted as 0 ms)",
        seen.len(),
        total.as_secs_f64()
    );
    for (name, lat) in [("while connected", &connected_lat), ("all", &all_lat)] {
        println!(
            "commit to event, {name} ({} objects): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
    }
    tokio::task::block_in_place(|| drop(schema));
}
