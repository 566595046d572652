//! Matching benchmark (issue 4, "Benchmarks"): 1M mixed indicators against N log lines.
//!
//! ```sh
//! cargo run --release -p concord-match --example match_bench -- [LINES] [INDICATORS]
//! ```
//!
//! `LINES` defaults to 10,000,000 and `INDICATORS` to 1,000,000. Prints the index build time,
//! the memory per indicator, single-threaded lines/s for eve.json and for plain observables,
//! and GNU `grep -F -f` over the same plain list (written with the indicator values to a temp
//! directory) as a reference. `MATCH_BENCH_NO_GREP=1` skips grep (it takes ~15 minutes at
//! 10M lines and 1M patterns). `MATCH_BENCH_SKIP=eve` or `=plain` skips matching that input
//! (its lines are still generated, so the other input is the same): for profiles of one
//! input (e.g. `valgrind --tool=callgrind --toggle-collect='match_bench::run*'`).
//!
//! Memory is measured two ways: the set's own accounting of its exact-value structures
//! ([`concord_match::SetStats`]), and the process's resident set (`VmRSS` in
//! `/proc/self/status`) before and after building. A counting global allocator would need
//! `unsafe impl GlobalAlloc`, which the workspace forbids (`unsafe_code = "forbid"`).

use std::io::{BufRead, Read, Write};
use std::time::Instant;

use concord_match::{Format, Matcher, Record, RecordReader, SetBuilder};
use serde_json::json;

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn label(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
    fn ip(&mut self) -> String {
        std::net::Ipv4Addr::from(self.next() as u32).to_string()
    }
    fn domain(&mut self) -> String {
        let tld = ["com", "net", "org", "top", "xyz", "ru", "info"][self.below(7) as usize];
        let n = 6 + self.below(8) as usize;
        format!("{}.{tld}", self.label(n))
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }
    fn url(&mut self) -> String {
        format!(
            "http://{}/{}/{}.php",
            self.domain(),
            self.label(5),
            self.label(6)
        )
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Sampled indicator values, to put hits into the logs.
#[derive(Default)]
struct Pools {
    ips: Vec<String>,
    domains: Vec<String>,
    urls: Vec<String>,
    hashes: Vec<String>,
}

/// A reader that yields `pool` again and again until `lines` lines were produced.
struct Repeat {
    pool: Vec<u8>,
    pool_lines: u64,
    left_rounds: u64,
    tail: Vec<u8>,
    pos: usize,
    in_tail: bool,
}

impl Repeat {
    fn new(pool: Vec<u8>, pool_lines: u64, lines: u64) -> Repeat {
        let rounds = lines / pool_lines;
        let rest = (lines % pool_lines) as usize;
        let cut = pool
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == b'\n')
            .nth(rest.wrapping_sub(1))
            .map_or(0, |(i, _)| i + 1);
        let tail = if rest == 0 {
            Vec::new()
        } else {
            pool[..cut].to_vec()
        };
        Repeat {
            pool,
            pool_lines,
            left_rounds: rounds,
            tail,
            pos: 0,
            in_tail: rounds == 0,
        }
    }
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let src = if self.in_tail { &self.tail } else { &self.pool };
            if self.pos < src.len() {
                let n = buf.len().min(src.len() - self.pos);
                buf[..n].copy_from_slice(&src[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.in_tail {
                return Ok(0);
            }
            self.pos = 0;
            self.left_rounds -= 1;
            if self.left_rounds == 0 {
                self.in_tail = true;
            }
            let _ = self.pool_lines;
        }
    }
}

/// CPU seconds (user + system) of the calling thread, from `/proc/thread-self/stat`
/// (clock ticks of 10 ms): on a shared machine the per-core rate is lines per CPU second, and
/// wall-clock time is printed next to it.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Matches every record through [`concord_match::match_reader`] (the loop of `concord
/// match`); (records, hits, wall seconds, CPU seconds).
fn run(reader: &mut RecordReader, matcher: &mut Matcher<'_>) -> (u64, u64, f64, f64) {
    let t = Instant::now();
    let c = cpu_secs();
    let s = concord_match::match_reader(matcher, reader, &mut |_| {}).expect("in-memory input");
    (s.records, s.hits, t.elapsed().as_secs_f64(), cpu_secs() - c)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lines: u64 = args
        .get(1)
        .map_or(10_000_000, |s| s.parse().expect("LINES"));
    let n_ind: u64 = args
        .get(2)
        .map_or(1_000_000, |s| s.parse().expect("INDICATORS"));
    let mut rng = Rng(42);
    println!("match_bench: {n_ind} indicators, {lines} lines per input");

    // ---- Indicators.
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let mut b = SetBuilder::new();
    let mut pools = Pools::default();
    let mut gen_time = 0.0;
    let mut grep_patterns = Vec::new();
    for i in 0..n_ind {
        let tg = Instant::now();
        let sample = i % 50 == 0;
        let k = rng.below(1000);
        let (pattern, plain) = if i < 50 {
            let tok = rng.label(6);
            (format!("[url:value LIKE '%/{tok}/gate.php%']"), None)
        } else if i < 100 {
            let tok = rng.label(5);
            (
                format!("[domain-name:value MATCHES '^{tok}[0-9]{{2,4}}\\\\.(top|xyz)$']"),
                None,
            )
        } else if k < 400 {
            let ip = rng.ip();
            if sample {
                pools.ips.push(ip.clone());
            }
            (format!("[ipv4-addr:value = '{ip}']"), Some(ip))
        } else if k < 450 {
            let len = 16 + rng.below(13) as u32;
            let net = (rng.next() as u32) & (u32::MAX << (32 - len));
            (
                format!(
                    "[ipv4-addr:value ISSUBSET '{}/{len}']",
                    std::net::Ipv4Addr::from(net)
                ),
                None,
            )
        } else if k < 700 {
            let d = rng.domain();
            if sample {
                pools.domains.push(d.clone());
            }
            (format!("[domain-name:value = '{d}']"), Some(d))
        } else if k < 800 {
            let u = rng.url();
            if sample {
                pools.urls.push(u.clone());
            }
            (format!("[url:value = '{u}']"), Some(u))
        } else {
            let (n, key) = match rng.below(3) {
                0 => (32, "MD5"),
                1 => (40, "'SHA-1'"),
                _ => (64, "'SHA-256'"),
            };
            let h = rng.hex(n);
            if sample {
                pools.hashes.push(h.clone());
            }
            (format!("[file:hashes.{key} = '{h}']"), Some(h))
        };
        if let Some(p) = plain {
            grep_patterns.push(p);
        }
        let o = json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{:08x}-0000-4000-8000-{:012x}", i >> 16, i),
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
        });
        gen_time += tg.elapsed().as_secs_f64();
        b.add(&o);
    }
    let set = b.build();
    let total = t0.elapsed().as_secs_f64();
    let build = total - gen_time;
    let rss1 = rss_kib();
    let s = set.stats().clone();
    println!(
        "index build: {build:.2} s ({:.0} indicators/s; generating the JSON took another {gen_time:.2} s)",
        n_ind as f64 / build
    );
    println!(
        "set: {} indicators: {} exact, {} cidr, {} regex, {} candidate, {} residual, {} skipped",
        s.indicators, s.exact, s.cidr, s.regex, s.candidate, s.residual, s.skipped
    );
    println!(
        "memory: exact-value overhead {:.1} bytes/indicator beyond the values ({} keys, {} value bytes = {:.1} bytes/value); RSS +{:.1} MiB = {:.1} bytes/indicator all in",
        s.exact_overhead_per_indicator(),
        s.exact_keys,
        s.value_bytes,
        s.value_bytes as f64 / s.exact_keys.max(1) as f64,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 * 1024.0 / n_ind as f64
    );

    // ---- eve.json lines: a pool of 200k generated lines, repeated.
    let pick = |rng: &mut Rng, pool: &[String], fresh: &dyn Fn(&mut Rng) -> String| {
        if rng.below(100) == 0 && !pool.is_empty() {
            pool[rng.below(pool.len() as u64) as usize].clone()
        } else {
            fresh(rng)
        }
    };
    let skip = std::env::var("MATCH_BENCH_SKIP").unwrap_or_default();
    let pool_n = lines.min(200_000);
    let mut eve = Vec::new();
    for i in 0..pool_n {
        let src = format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        );
        let dst = pick(&mut rng, &pools.ips, &|r| r.ip());
        let ts = format!(
            "2026-03-05T10:{:02}:{:02}.{:06}+0000",
            (i / 60) % 60,
            i % 60,
            rng.below(1_000_000)
        );
        let common = json!({"timestamp": ts, "flow_id": rng.next() >> 12, "in_iface": "eth0",
            "src_ip": src, "src_port": 1024 + rng.below(60000), "dest_ip": dst, "proto": "TCP"});
        let mut o = common.as_object().expect("object").clone();
        match rng.below(5) {
            0 => {
                o.insert("event_type".into(), json!("dns"));
                o.insert("dest_port".into(), json!(53));
                let d = pick(&mut rng, &pools.domains, &|r| r.domain());
                o.insert(
                    "dns".into(),
                    json!({"version": 2, "type": "answer", "id": rng.below(65536), "rrname": d, "rrtype": "A", "rcode": "NOERROR",
                        "answers": [{"rrname": d, "rrtype": "A", "ttl": 300, "rdata": rng.ip()}]}),
                );
            }
            1 => {
                o.insert("event_type".into(), json!("http"));
                o.insert("dest_port".into(), json!(80));
                let u = pick(&mut rng, &pools.urls, &|r| r.url());
                let rest = u.strip_prefix("http://").expect("generated URL");
                let (host, path) = rest.split_at(rest.find('/').expect("path"));
                o.insert(
                    "http".into(),
                    json!({"hostname": host, "url": path, "http_user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                        "http_content_type": "text/html", "http_method": "GET", "protocol": "HTTP/1.1", "status": 200, "length": rng.below(100000)}),
                );
            }
            2 => {
                o.insert("event_type".into(), json!("tls"));
                o.insert("dest_port".into(), json!(443));
                let d = pick(&mut rng, &pools.domains, &|r| r.domain());
                o.insert(
                    "tls".into(),
                    json!({"subject": format!("CN={d}"), "issuerdn": "C=US, O=Let's Encrypt, CN=R3", "sni": d,
                        "version": "TLS 1.2", "fingerprint": rng.hex(40), "ja3": {"hash": rng.hex(32)}}),
                );
            }
            3 => {
                o.insert("event_type".into(), json!("fileinfo"));
                o.insert("dest_port".into(), json!(80));
                let h = pick(&mut rng, &pools.hashes, &|r| r.hex(64));
                let (md5, sha1, sha256) = match h.len() {
                    32 => (h, rng.hex(40), rng.hex(64)),
                    40 => (rng.hex(32), h, rng.hex(64)),
                    _ => (rng.hex(32), rng.hex(40), h),
                };
                o.insert(
                    "fileinfo".into(),
                    json!({"filename": "/download/setup.exe", "gaps": false, "state": "CLOSED", "md5": md5, "sha1": sha1, "sha256": sha256, "stored": false, "size": rng.below(1_000_000), "tx_id": 0}),
                );
            }
            _ => {
                o.insert("event_type".into(), json!("flow"));
                o.insert("dest_port".into(), json!(rng.below(65535) + 1));
                o.insert(
                    "flow".into(),
                    json!({"pkts_toserver": rng.below(100), "pkts_toclient": rng.below(100), "bytes_toserver": rng.below(100000), "bytes_toclient": rng.below(100000), "state": "closed", "reason": "timeout", "alerted": false}),
                );
            }
        }
        serde_json::to_writer(&mut eve, &o).expect("in memory");
        eve.push(b'\n');
    }
    let eve_bytes_per_line = eve.len() as f64 / pool_n as f64;
    let now = 1_780_000_000_000_000_000;
    let mut reader = RecordReader::new(
        "eve.json",
        Box::new(std::io::BufReader::with_capacity(
            256 * 1024,
            Repeat::new(eve.clone(), pool_n, lines),
        )),
        Format::Eve,
        None,
    );
    // Reading alone (JSON to records), for the split between reading and matching.
    if skip == "eve" {
        reader = RecordReader::new("-", Box::new(std::io::empty()), Format::Eve, None);
    }
    let c = cpu_secs();
    let mut rec = Record::default();
    let mut fields = 0usize;
    while reader.next_into(&mut rec).expect("in-memory input") {
        fields += rec.fields.len();
    }
    let read_cpu = cpu_secs() - c;
    println!(
        "eve.json reading only: {:.0} lines per CPU second ({:.1} fields/line)",
        reader.records() as f64 / read_cpu,
        fields as f64 / reader.records().max(1) as f64
    );
    let mut reader = RecordReader::new(
        "eve.json",
        Box::new(std::io::BufReader::with_capacity(
            256 * 1024,
            Repeat::new(eve, pool_n, lines),
        )),
        Format::Eve,
        None,
    );
    if skip == "eve" {
        reader = RecordReader::new("-", Box::new(std::io::empty()), Format::Eve, None);
    }
    let mut matcher = Matcher::new(&set, now);
    let (n, hits, secs, cpu) = run(&mut reader, &mut matcher);
    println!(
        "eve.json: {n} lines ({eve_bytes_per_line:.0} bytes/line) in {secs:.2} s wall, {cpu:.2} s CPU: {:.0} lines/s/core ({:.0} MB/s per core), {hits} hits, {} evaluations",
        n as f64 / cpu,
        n as f64 * eve_bytes_per_line / cpu / 1e6,
        matcher.stats().evaluations
    );

    // ---- Plain observables: written to a temp file, read by the reader and by grep.
    let dir = std::env::temp_dir().join(format!("match_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("observables.txt");
    let pats = dir.join("indicators.txt");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&list).expect("create"));
        for _ in 0..lines {
            let v = match rng.below(4) {
                0 => pick(&mut rng, &pools.ips, &|r| r.ip()),
                1 => pick(&mut rng, &pools.domains, &|r| r.domain()),
                2 => pick(&mut rng, &pools.urls, &|r| r.url()),
                _ => pick(&mut rng, &pools.hashes, &|r| r.hex(64)),
            };
            writeln!(w, "{v}").expect("write");
        }
        let mut w = std::io::BufWriter::new(std::fs::File::create(&pats).expect("create"));
        for p in &grep_patterns {
            writeln!(w, "{p}").expect("write");
        }
    }
    let size = std::fs::metadata(&list).map(|m| m.len()).unwrap_or(0);
    // Warm the page cache so both readers start alike.
    let mut warm = std::io::BufReader::new(std::fs::File::open(&list).expect("open"));
    while warm.fill_buf().map(|b| !b.is_empty()).unwrap_or(false) {
        let n = warm.buffer().len();
        warm.consume(n);
    }
    let mut reader = concord_match::open(list.to_str().expect("utf-8 path"), Format::Lines, None)
        .expect("open list");
    if skip == "plain" {
        reader = RecordReader::new("-", Box::new(std::io::empty()), Format::Lines, None);
    }
    let mut matcher = Matcher::new(&set, now);
    let (n, hits, secs, cpu) = run(&mut reader, &mut matcher);
    println!(
        "plain observables: {n} lines ({:.0} MB) in {secs:.2} s wall, {cpu:.2} s CPU: {:.0} lines/s/core, {hits} hits, {} malformed",
        size as f64 / 1e6,
        n as f64 / cpu,
        reader.malformed_count()
    );
    if std::env::var_os("MATCH_BENCH_NO_GREP").is_some() {
        println!("grep: skipped (MATCH_BENCH_NO_GREP)");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let t = Instant::now();
    let out = std::process::Command::new("grep")
        .arg("-F")
        .arg("-c")
        .arg("-f")
        .arg(&pats)
        .arg(&list)
        .env("LC_ALL", "C")
        .output();
    let secs = t.elapsed().as_secs_f64();
    match out {
        Ok(o) => println!(
            "grep -F -c -f ({} patterns, LC_ALL=C): {} matching lines in {secs:.2} s (pattern compile included): {:.0} lines/s",
            grep_patterns.len(),
            String::from_utf8_lossy(&o.stdout).trim(),
            lines as f64 / secs
        ),
        Err(e) => println!("grep: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
