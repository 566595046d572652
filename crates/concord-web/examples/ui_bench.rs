//! How the web UI scales with a collection: the index build (admin and partner), the
//! object-list filters, the graph neighbourhood, and whole pages over HTTP on loopback.
//!
//! ```sh
//! python3 ../shared/bench/gen_stix.py bundle --n 100000 --seed 1 --out target/bundle-100000.json
//! cargo run --release -p concord-web --example ui_bench -- target/bundle-100000.json
//! cargo run --release -p concord-web --example ui_bench -- "$CONCORD_SHARED_DATA"/stix/attack/ics-attack-18.1.json
//! ```
//!
//! Prints one line per measure: median of the runs, in milliseconds, and the RSS growth of
//! the admin index. Figures go to BENCHMARKS.md §9.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use concord_ingest::{Container, IngestOptions, ingest};
use concord_store::NewCollection;
use support::ADMIN;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let file = std::env::args().nth(1).unwrap_or_else(|| {
        let dir = std::env::var("CONCORD_SHARED_DATA")
            .expect("give BUNDLE.json as argument or set CONCORD_SHARED_DATA");
        format!("{dir}/stix/attack/ics-attack-18.1.json")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(dir.path());
    let c = store
        .create_collection(&NewCollection {
            alias: "bench".into(),
            title: None,
            description: None,
        })
        .unwrap();
    let started = Instant::now();
    let input = std::io::BufReader::new(std::fs::File::open(&file).expect("bundle"));
    let r = ingest(
        store.as_ref(),
        &c.id,
        input,
        IngestOptions {
            container: Container::Bundle,
            list_accepted: false,
            audit: None,
            provenance: &[],
            settings: &[],
            max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
            cancel: None,
            unseen: None,
        },
        |_| {},
    )
    .expect("ingest");
    println!(
        "{file}: {} objects stored ({} rejected) in {:.1} s",
        r.added,
        r.rejected.len(),
        started.elapsed().as_secs_f64()
    );

    // The index, as the admin sees it.
    let before = rss_kib();
    let s = Instant::now();
    let cat = concord_web::catalogue::Catalogue::build(store.as_ref(), &c.id).unwrap();
    let build = s.elapsed().as_secs_f64() * 1000.0;
    let grown = rss_kib().saturating_sub(before);
    println!(
        "admin index build: {build:.0} ms for {} objects; RSS +{:.1} MiB ({:.0} bytes/object)",
        cat.items.len(),
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / cat.items.len().max(1) as f64
    );
    for (what, filter) in [
        (
            "text search (q=\"malware\")",
            concord_web::catalogue::Filter {
                q: "malware".into(),
                ..Default::default()
            },
        ),
        (
            "type filter (indicator)",
            concord_web::catalogue::Filter {
                r#type: "indicator".into(),
                ..Default::default()
            },
        ),
        (
            "marking filter (TLP:AMBER)",
            concord_web::catalogue::Filter {
                marking: "TLP:AMBER".into(),
                ..Default::default()
            },
        ),
    ] {
        let p = filter.compile().unwrap();
        let mut hits = 0;
        let ms = median_ms(11, || hits = cat.items.iter().filter(|i| p(i)).count());
        println!("{what}: {ms:.1} ms median of 11, {hits} hits");
    }
    // The graph around the object with the most references.
    let hub = cat
        .items
        .iter()
        .max_by_key(|i| cat.refs_in(&i.id).len() + cat.refs_out(&i.id).len())
        .map(|i| i.id.clone())
        .unwrap_or_default();
    let mut nodes = 0;
    let ms = median_ms(11, || nodes = cat.neighbourhood(&hub, 2, 201).0.len());
    println!("graph neighbourhood, 2 hops around {hub}: {ms:.2} ms, {nodes} nodes");
    drop(cat);

    // Whole pages over HTTP.
    let key = support::partner(store.as_ref(), "bsi", "DE", std::slice::from_ref(&c.id));
    let base = support::serve_with(store.clone(), 10 << 20);
    let agent = support::agent();
    let login = |token: &str| support::login(&base, token);
    let get = |path: &str, cookie: &str| {
        let r = agent
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.into_body().read_to_string().unwrap().len())
    };
    let admin = login(ADMIN);
    let partner = login(&key);
    let hub_page = format!("/ui/c/bench/o/{hub}");
    let graph_page = format!("{hub_page}/graph");
    for (what, path, cookie, runs) in [
        ("admin: list page, index cold", "/ui/c/bench", &admin, 1),
        ("admin: list page", "/ui/c/bench", &admin, 11),
        (
            "admin: list page, text search",
            "/ui/c/bench?q=malware",
            &admin,
            11,
        ),
        (
            "admin: object page (the hub)",
            hub_page.as_str(),
            &admin,
            11,
        ),
        (
            "admin: graph page (the hub)",
            graph_page.as_str(),
            &admin,
            11,
        ),
        (
            "partner: list page, egress index cold",
            "/ui/c/bench",
            &partner,
            1,
        ),
        ("partner: list page (audited)", "/ui/c/bench", &partner, 11),
        (
            "partner: object page (audited)",
            hub_page.as_str(),
            &partner,
            11,
        ),
    ] {
        let mut answer = (0, 0);
        let ms = median_ms(runs, || answer = get(path, cookie));
        println!(
            "{what}: {ms:.1} ms (median of {runs}), HTTP {}, {} bytes",
            answer.0, answer.1
        );
    }
}
