//! The egress door's cost: partner paging (limit 100 and 1000) and a partner export, in
//! objects/s, against the per-object path the doors used before the door (store page,
//! the policy's `egress` per object, one audit append per page; no references followed, no
//! keyed ids, plain cursors), in the same run over the same SQLite file.
//!
//! ```text
//! CONCORD_SHARED_DATA=../shared/data cargo run --release -p concord-egress --example door_bench [BUNDLE.json ...]
//! ```
//!
//! Default bundles (from the full data set in the folder `CONCORD_SHARED_DATA` names): MITRE
//! ATT&CK for ICS 18.1, Mobile 17.1 and CAPEC 3.9 in one collection (6,657 objects, most of
//! them relationships and objects that refer to an identity and a statement marking).
//! "TLP only" is a policy that detects nothing; "full" is the node's default policy for a
//! partner across a border.
//!
//! For a profiler: `DOOR_BENCH_POLICY=TLP` (or `full`) runs one policy only;
//! `DOOR_BENCH_ONLY=100` runs only the door at limit 100 (`path100`: only the per-object
//! path), `DOOR_BENCH_ROUNDS` times over the collection (default 5) after one pass to warm
//! up, and skips the export; `valgrind --tool=callgrind --toggle-collect='*profiled*'`
//! then counts the instructions of those rounds alone. `DOOR_BENCH_LIMIT=100` measures at
//! that limit only; `DOOR_BENCH_RUNS` (default 3) rounds of `DOOR_BENCH_REPEAT` (default 8)
//! passes per side, best of the rounds, with the median of the rounds' ratios.

use std::path::PathBuf;
use std::sync::Arc;

use concord_egress::{Audience, Egress, PageQuery};
use concord_ingest::{Container, IngestOptions, ingest};
use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use concord_policy::egress::{
    CollectionSharing, Decision, EgressContext, Markings, PartnerProfile, sharing_setting_key,
};
use concord_policy::pii::DetectorConfig;
use concord_policy::tlp::Tlp;
use concord_store::{AuditRecord, NewCollection, ObjectFilter, PageRequest, Store};

/// CPU time of this thread (user + system): on a shared 2-core machine the wall clock
/// measures the neighbours too. The first field of `/proc/thread-self/schedstat` (the
/// scheduler's run time, nanoseconds); `/proc/thread-self/stat`, used before, counts in
/// ticks of 10 ms.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .expect("/proc/thread-self/schedstat: run time in nanoseconds");
    ns as f64 / 1e9
}

/// Passes over the collection per measurement (`DOOR_BENCH_REPEAT`, default 8: about a CPU
/// second).
fn repeat() -> usize {
    env_number("DOOR_BENCH_REPEAT", 8)
}

/// A count from the environment, else `default`.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` and returns its result with the CPU seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = cpu_seconds();
    let t = f();
    (t, (cpu_seconds() - start).max(1e-6))
}

fn data_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CONCORD_SHARED_DATA")
            .expect("give BUNDLE.json arguments or set CONCORD_SHARED_DATA"),
    )
}

/// The per-object path of the doors before the door: one store page, the policy's decision
/// per object, one audit append; returns the objects sent.
fn per_object_path(
    store: &dyn Store,
    collection: &str,
    cx: &EgressContext<'_>,
    limit: usize,
) -> usize {
    let mut after = None;
    let mut sent = 0;
    loop {
        let page = store
            .entries(
                collection,
                &ObjectFilter::default(),
                &PageRequest { limit, after },
                true,
            )
            .unwrap();
        let mut records = Vec::with_capacity(page.entries.len());
        for e in &page.entries {
            let d = concord_policy::egress::egress(e.body.as_deref().unwrap_or("null"), cx);
            let decision = match d {
                Decision::Withheld { .. } => "withheld",
                _ => {
                    sent += 1;
                    "sent"
                }
            };
            records.push(AuditRecord {
                direction: "egress".into(),
                door: "bench".into(),
                partner: cx.partner.name.clone(),
                person: None,
                collection: collection.to_owned(),
                object_id: e.id.clone(),
                modified: e.version(),
                decision: decision.into(),
                transformations: Vec::new(),
                policy_version: cx.policy.version.clone(),
                vid: e.vid,
            });
        }
        store.append_audit(&records).unwrap();
        after = page.entries.last().map(|e| e.cursor());
        if !page.more {
            return sent;
        }
    }
}

/// Every page through the door, following `next`.
fn door_pages(egress: &Egress, who: &Audience, collection: &str, limit: usize) -> usize {
    let mut next = None;
    let mut sent = 0;
    loop {
        let t = egress
            .page(
                who,
                "bench",
                &PageQuery {
                    collection_id: collection.to_owned(),
                    filter: ObjectFilter::default(),
                    limit,
                    next: next.take(),
                    want_body: true,
                    max_bytes: concord_egress::DEFAULT_PAGE_BYTES,
                },
            )
            .unwrap();
        sent += t.entries.len();
        match t.next {
            Some(n) if t.more => next = Some(n),
            _ => return sent,
        }
    }
}

/// Runs `f` `rounds` times; its own function, for a profiler to count it alone.
#[inline(never)]
fn profiled(rounds: usize, f: impl Fn() -> usize) -> usize {
    (0..rounds).map(|_| f()).sum()
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let bundles = if args.is_empty() {
        let d = data_dir();
        vec![
            d.join("stix/attack/ics-attack-18.1.json"),
            d.join("stix/attack/mobile-attack-17.1.json"),
            d.join("stix/capec/capec-3.9-stix21.json"),
        ]
    } else {
        args
    };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(concord_store::SqliteStore::open(&dir.path().join("bench.sqlite")).unwrap());
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
    let mut total = 0;
    for b in &bundles {
        let f = std::fs::File::open(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
        let options = IngestOptions {
            container: Container::Bundle,
            list_accepted: false,
            audit: None,
            provenance: &[],
            settings: &[],
            max_object_size: concord_ingest::Limits::default().max_object_size,
            cancel: None,
            unseen: None,
        };
        total += ingest(
            store.as_ref(),
            &c.id,
            std::io::BufReader::new(f),
            options,
            |_| {},
        )
        .unwrap()
        .total;
    }
    let partner = PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
    };
    let keys = PseudonymKeys {
        node_secret: Some(vec![7; 32]),
        ..PseudonymKeys::default()
    };
    let tlp_only = Arc::new(
        Policy::new(
            PolicyConfig {
                detectors: DetectorConfig {
                    categories: Vec::new(),
                    ..DetectorConfig::default()
                },
                ..PolicyConfig::default()
            },
            keys.clone(),
        )
        .unwrap(),
    );
    let full = Arc::new(Policy::node_default(Some("CN"), keys));
    // The per-object path knew only the fixed TLP ids; give it the collection's markings so
    // that it decides the same objects as the door.
    let mut markings = Markings::default();
    let all = store
        .entries(
            &c.id,
            &ObjectFilter {
                types: vec!["marking-definition".into()],
                ..ObjectFilter::default()
            },
            &PageRequest {
                limit: 1000,
                after: None,
            },
            true,
        )
        .unwrap();
    for e in &all.entries {
        markings.add(&serde_json::from_str(e.body.as_deref().unwrap()).unwrap());
    }
    let (runs, repeat) = (env_number("DOOR_BENCH_RUNS", 3).max(1), repeat());
    println!(
        "{total} objects in {} bundle(s); {} CPU(s); objects per CPU second (this thread), best of {runs} rounds of {repeat} passes",
        bundles.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let who = Audience::Partner(partner.clone());
    for (name, policy) in [("TLP only", &tlp_only), ("full", &full)] {
        // DOOR_BENCH_POLICY=full: only that policy (for a profiler).
        if std::env::var("DOOR_BENCH_POLICY").is_ok_and(|p| !name.starts_with(p.as_str())) {
            continue;
        }
        let egress = Egress::new(store.clone(), policy.clone());
        let cx = EgressContext {
            sharing: &sharing,
            partner: &partner,
            policy,
            markings: &markings,
            door: "taxii-objects",
            now_ns: 0,
        };
        for limit in [100, 1000] {
            // DOOR_BENCH_LIMIT=100: measure at that limit only.
            if std::env::var("DOOR_BENCH_LIMIT").is_ok_and(|l| l != limit.to_string()) {
                continue;
            }
            // DOOR_BENCH_ONLY=100: only the door at limit 100 (for a profiler);
            // DOOR_BENCH_ONLY=path100: only the per-object path at limit 100.
            if let Ok(only) = std::env::var("DOOR_BENCH_ONLY") {
                let path = only.strip_prefix("path");
                if path.unwrap_or(&only) != limit.to_string() {
                    continue;
                }
                let rounds = env_number("DOOR_BENCH_ROUNDS", 5);
                let one = || {
                    if path.is_some() {
                        per_object_path(store.as_ref(), &c.id, &cx, limit)
                    } else {
                        door_pages(&egress, &who, &c.id, limit)
                    }
                };
                // A first pass outside `profiled`: the fates a node keeps between requests.
                one();
                profiled(rounds, one);
                continue;
            }
            let mut best = [0f64; 2];
            let mut counts = [0usize; 2];
            // Each round measures one side, then the other: the ratio of a round is what
            // one stretch of the machine's load gave both.
            let mut ratios = Vec::new();
            for _ in 0..runs {
                let (n, cpu) = timed(|| {
                    (0..repeat).fold(0, |_, _| per_object_path(store.as_ref(), &c.id, &cx, limit))
                });
                counts[0] = n;
                let path = (total * repeat) as f64 / cpu;
                best[0] = best[0].max(path);
                let (n, cpu) =
                    timed(|| (0..repeat).fold(0, |_, _| door_pages(&egress, &who, &c.id, limit)));
                counts[1] = n;
                let door = (total * repeat) as f64 / cpu;
                best[1] = best[1].max(door);
                ratios.push(path / door);
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "{name:>8}, limit {limit:>4}: per-object path {:>8.0} ({} sent) | door {:>8.0} ({} sent) | door/per-object cost {:.2}x (median of {runs} rounds {:.2}x)",
                best[0],
                counts[0],
                best[1],
                counts[1],
                best[0] / best[1],
                ratios[ratios.len() / 2]
            );
        }
    }
    // Export for a partner: the door at 1000 per step with the node's own cursor (not with
    // DOOR_BENCH_ONLY, which profiles one door alone).
    if std::env::var_os("DOOR_BENCH_ONLY").is_some() {
        return;
    }
    let egress = Egress::new(store.clone(), full.clone());
    let mut best = 0f64;
    for _ in 0..runs {
        let start = cpu_seconds();
        for _ in 0..repeat {
            let mut after = None;
            let mut n = 0;
            loop {
                let (page, resume) = egress
                    .scan(
                        &who,
                        "export",
                        &c.id,
                        &ObjectFilter::default(),
                        after,
                        1000,
                        true,
                    )
                    .unwrap();
                n += page.entries.len();
                match resume {
                    Some(r) if page.more => after = Some(r),
                    _ => break,
                }
            }
            assert!(n > 0);
        }
        best = best.max((total * repeat) as f64 / (cpu_seconds() - start).max(1e-6));
    }
    println!("    full, export --partner (scan 1000): door {best:>8.0}");
}
