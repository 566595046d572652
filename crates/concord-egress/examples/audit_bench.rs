//! The audit log's cost (issue 17), on one SQLite file (and PostgreSQL when
//! `CONCORD_TEST_POSTGRES_URL` names a database):
//!
//! 1. database growth per object served: a partner pages a 15,000-object collection with
//!    limit 100, five times, through the egress door; bytes of the audit tables (SQLite:
//!    file size after a WAL checkpoint; PostgreSQL: `pg_total_relation_size`) per object
//!    version recorded;
//! 2. the same paging with the audit append stubbed out (a store wrapper whose
//!    `append_transfer` does nothing: a benchmark-only switch), in the same run;
//! 3. verify: a synthetic log of `AUDIT_BENCH_PAGES` pages of 100 object versions (default
//!    10^5; 10^6 pages = 10^8 object transfers) written through the store API in batches,
//!    then a full verify, a checkpoint, `AUDIT_BENCH_NEW` new pages and an incremental
//!    verify; and `audit show` by object and partner (posting look-ups) on that log.
//!
//! ```text
//! cargo run --release -p concord-egress --example audit_bench
//! ```
//!
//! `AUDIT_BENCH_ONE_SIDE=audited|stubbed`: instead, loads `AUDIT_BENCH_OBJECTS` (default
//! 3,000) objects and pages them `AUDIT_BENCH_PASSES` times (default 2) on that side only,
//! single-threaded, for an instruction count under `valgrind --tool=callgrind`: the
//! difference between two pass counts is the paging's own cost, repeatable to the
//! instruction where wall time on a shared 2-core machine is not (BENCHMARKS §11).

use std::sync::Arc;
use std::time::Instant;

use concord_egress::{Audience, Egress, PageQuery};
use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use concord_policy::egress::{CollectionSharing, PartnerProfile, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_store::bench_stub::NoAudit;
use concord_store::*;

fn indicator(i: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{i:08x}-8ff6-4a8b-9c2f-6e5a3b1f0d11","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"bench {i}","pattern":"[ipv4-addr:value = '198.51.{}.{}']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z","object_marking_refs":["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"]}}"#,
        (i / 256) % 256,
        i % 256
    )
}

fn load(store: &dyn Store, n: usize) -> String {
    let c = store
        .create_collection(&NewCollection {
            alias: "bench".into(),
            ..NewCollection::default()
        })
        .unwrap();
    let sharing = CollectionSharing {
        default_tlp: Tlp::Clear,
        ..CollectionSharing::default()
    };
    store
        .set_setting(&sharing_setting_key(&c.id), &sharing.to_json())
        .unwrap();
    let mut b = store.begin_write(&c.id).unwrap();
    for i in 0..n {
        let body = indicator(i);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let header = concord_stix::validate_object(&value).unwrap();
        b.add(&NewObject {
            header: &header,
            body: &body,
            value: &value,
        })
        .unwrap();
    }
    b.commit().unwrap();
    c.id
}

fn pages(egress: &Egress, who: &Audience, collection: &str, passes: usize) -> usize {
    let mut n = 0;
    for _ in 0..passes {
        let mut next = None;
        loop {
            let t = egress
                .page(
                    who,
                    "taxii-objects",
                    &PageQuery {
                        collection_id: collection.to_owned(),
                        filter: ObjectFilter::default(),
                        limit: 100,
                        next: next.take(),
                        want_body: true,
                        max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
                    },
                )
                .unwrap();
            n += t.entries.len() + t.withheld;
            match t.next {
                Some(x) if t.more => next = Some(x),
                _ => break,
            }
        }
    }
    n
}

fn policy() -> Arc<Policy> {
    Arc::new(
        Policy::new(
            PolicyConfig::default(),
            PseudonymKeys {
                node_secret: Some(vec![7; 32]),
                ..PseudonymKeys::default()
            },
        )
        .unwrap(),
    )
}

/// Bytes of both files of an SQLite store (the main file and the audit log's), WALs
/// checkpointed into them.
fn sqlite_size(path: &std::path::Path) -> u64 {
    let c = concord_store::sqlite::connect(path).unwrap();
    c.execute_batch("PRAGMA main.wal_checkpoint(TRUNCATE); PRAGMA audit.wal_checkpoint(TRUNCATE);")
        .unwrap();
    let log = concord_store::sqlite::audit_path(path);
    std::fs::metadata(path).unwrap().len() + std::fs::metadata(log).unwrap().len()
}

fn growth_and_stub(store: Arc<dyn Store>, size: &dyn Fn() -> u64, label: &str) {
    let coll = load(store.as_ref(), 15_000);
    let who = Audience::Partner(PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
    });
    let with = Egress::new(store.clone(), policy());
    let without = Egress::new(Arc::new(NoAudit(store.clone())), policy());
    pages(&with, &who, &coll, 1); // warm caches (recorded too; measured from here)
    let before = size();
    let t = Instant::now();
    let served = pages(&with, &who, &coll, 5);
    let audited = t.elapsed().as_secs_f64();
    let after = size();
    println!(
        "{label}: growth {} bytes over {served} objects served (5 passes of limit 100): {:.1} bytes/object",
        after - before,
        (after - before) as f64 / served as f64
    );
    // Alternate the two sides, three rounds each, medians.
    let mut a = vec![audited];
    let mut s = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        pages(&without, &who, &coll, 5);
        s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        pages(&with, &who, &coll, 5);
        a.push(t.elapsed().as_secs_f64());
    }
    a.sort_by(f64::total_cmp);
    s.sort_by(f64::total_cmp);
    let (am, sm) = (a[a.len() / 2], s[s.len() / 2]);
    println!(
        "{label}: paging 5x15k with audit {:.0} objects/s, audit stubbed {:.0} objects/s: ratio {:.2}",
        served as f64 / am,
        served as f64 / sm,
        sm / am
    );
}

fn synthetic(store: &dyn Store, pages: usize, vids: i64, label: &str) {
    let coll = store
        .create_collection(&NewCollection {
            alias: "synthetic".into(),
            ..NewCollection::default()
        })
        .unwrap();
    let k = concord_store::node_key::NodeKey::from_seed(&[9; 32]);
    let record = |p: usize, j: usize| AuditRecord {
        direction: "egress".into(),
        door: "taxii-objects".into(),
        partner: format!("partner-{}", p % 1000),
        person: None,
        collection: coll.id.clone(),
        object_id: String::new(),
        modified: String::new(),
        decision: if j.is_multiple_of(50) {
            "withheld"
        } else {
            "sent"
        }
        .into(),
        transformations: if j.is_multiple_of(50) {
            vec!["TLP:AMBER: bsi is not in the sharing group".into()]
        } else {
            vec![]
        },
        policy_version: "default@0123456789ab".into(),
        vid: ((p * 100 + j) as i64) % vids + 1,
    };
    let write = |from: usize, to: usize| {
        let t = Instant::now();
        let mut p = from;
        while p < to {
            let mut b = store.begin_write(&coll.id).unwrap();
            for q in p..(p + 10_000).min(to) {
                let recs: Vec<AuditRecord> = (0..100).map(|j| record(q, j)).collect();
                b.append_audit(&recs).unwrap();
            }
            b.commit().unwrap();
            p = (p + 10_000).min(to);
        }
        t.elapsed().as_secs_f64()
    };
    let w = write(0, pages);
    println!(
        "{label}: wrote {pages} pages ({} object transfers) in {w:.0} s",
        pages * 100
    );
    audit::checkpoint(store, &k, 1).unwrap();
    let t = Instant::now();
    let r = audit::verify_log(store, Some(&k.public()), true).unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    println!(
        "{label}: full verify of {} entries ({} object transfers): {:.1} s",
        r.entries,
        pages * 100,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = audit::verify_log(store, Some(&k.public()), false).unwrap();
    println!(
        "{label}: incremental verify, nothing new: {:.1} ms ({} entries read)",
        t.elapsed().as_secs_f64() * 1e3,
        r.entries
    );
    let new: usize = std::env::var("AUDIT_BENCH_NEW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    write(pages, pages + new);
    audit::checkpoint(store, &k, 2).unwrap();
    let t = Instant::now();
    let r = audit::verify_log(store, Some(&k.public()), false).unwrap();
    assert!(r.error.is_none());
    println!(
        "{label}: incremental verify after {new} new pages: {:.1} ms ({} entries read)",
        t.elapsed().as_secs_f64() * 1e3,
        r.entries
    );
    // Show: one version's transfers to one partner, newest 100 (posting index).
    for (vid, partner) in [(12_345i64, Some("partner-123")), (777, None)] {
        let t = Instant::now();
        let hits = store
            .audit_entries(&AuditQuery {
                vids: vec![vid],
                partner: partner.map(str::to_owned),
                limit: 100,
                newest_first: true,
                ..AuditQuery::default()
            })
            .unwrap();
        println!(
            "{label}: show vid {vid} partner {partner:?}: {} entries in {:.2} ms",
            hits.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// `AUDIT_BENCH_ONE_SIDE`: one side of the comparison, for callgrind (see the module doc).
fn one_side(dir: &std::path::Path, side: &str) {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("one.sqlite")).unwrap());
    let coll = load(store.as_ref(), var("AUDIT_BENCH_OBJECTS", 3_000));
    let who = Audience::Partner(PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
    });
    let egress = match side {
        "audited" => Egress::new(store, policy()),
        "stubbed" => Egress::new(Arc::new(NoAudit(store)), policy()),
        other => panic!("AUDIT_BENCH_ONE_SIDE={other}: audited or stubbed"),
    };
    let served = pages(&egress, &who, &coll, var("AUDIT_BENCH_PASSES", 2));
    println!("{side}: {served} objects served");
}

fn main() {
    let dir =
        tempfile::tempdir_in(std::env::var_os("AUDIT_BENCH_DIR").unwrap_or(".".into())).unwrap();
    if let Ok(side) = std::env::var("AUDIT_BENCH_ONE_SIDE") {
        return one_side(dir.path(), &side);
    }
    let path = dir.path().join("bench.sqlite");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let p = path.clone();
    growth_and_stub(store, &move || sqlite_size(&p), "sqlite");
    if let Ok(url) = std::env::var("CONCORD_TEST_POSTGRES_URL") {
        let schema = concord_store::postgres::ScratchSchema::create(&url).unwrap();
        let store: Arc<dyn Store> = Arc::new(PostgresStore::open(schema.url()).unwrap());
        let u = schema.url().to_owned();
        let size = move || {
            let mut c = ::postgres::Client::connect(&u, ::postgres::NoTls).unwrap();
            c.batch_execute("VACUUM audit_entries").unwrap();
            let r = c
                .query_one(
                    "SELECT (pg_total_relation_size('audit_entries')
                           + pg_total_relation_size('audit_version_names'))::BIGINT",
                    &[],
                )
                .unwrap();
            r.get::<_, i64>(0) as u64
        };
        growth_and_stub(store, &size, "postgres");
    }
    let n: usize = std::env::var("AUDIT_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let path = dir.path().join("synthetic.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    synthetic(&store, n, 1_000_000, "sqlite");
    println!(
        "sqlite: synthetic database {:.2} GB",
        sqlite_size(&path) as f64 / 1e9
    );
}
