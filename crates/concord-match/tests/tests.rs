//! Integration tests: IOC lists from `tests/data/ioc`, the logs of `tests/data/logs` and the
//! eve fixture, and the differential test (indexes vs. the full evaluator on every indicator
//! and every record).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use concord_match::ioc_list::{IocOptions, read_ioc_list};
use concord_match::{
    FieldValue, Format, IndicatorSet, Matcher, Record, RecordReader, SetBuilder, open,
};
use serde_json::{Value, json};

/// The repository's test data (tests/data/README.md says what each file is and its licence).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");
const EVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eve.json");
const TS: &str = "2020-01-01T00:00:00.000Z";

fn data(p: &str) -> PathBuf {
    Path::new(DATA).join(p)
}

fn opts() -> IocOptions {
    IocOptions::new(TS)
}

/// A file's bytes; `.gz` files are decompressed.
fn read_bytes(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if p.extension().is_some_and(|x| x == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out
    } else {
        raw
    }
}

fn ioc_file(p: &Path) -> concord_match::ioc_list::IocList {
    let bytes = read_bytes(p);
    read_ioc_list(&bytes[..], &p.display().to_string(), &opts()).unwrap()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("LICENSE")
        {
            out.push(p);
        }
    }
}

fn check_indicator(i: &Value) {
    if let Err(v) = concord_stix::validate_object(i) {
        panic!("{i}: {v:?}");
    }
    concord_pattern::parse(i["pattern"].as_str().unwrap()).unwrap();
}

#[test]
fn ioc_lists_from_test_data() {
    let mut files = Vec::new();
    files_under(&data("ioc/maltrail"), &mut files);
    files_under(&data("ioc/eset-hashes"), &mut files);
    files.push(data("ioc/signature-base/c2-iocs.txt.gz"));
    files.push(data("ioc/signature-base/hash-iocs.txt.gz"));
    let (mut indicators, mut rejected, mut ids) = (0usize, Vec::new(), HashSet::new());
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for f in &files {
        let l = ioc_file(f);
        for i in &l.indicators {
            check_indicator(i);
            ids.insert(i["id"].as_str().unwrap().to_string());
            let p = i["pattern"].as_str().unwrap();
            let kind = p[1..p.find([' ', ':']).unwrap()].to_string();
            *kinds.entry(kind).or_default() += 1;
        }
        indicators += l.indicators.len();
        rejected.extend(l.rejected);
    }
    eprintln!(
        "{} files, {indicators} indicators, {} distinct ids, {} rejected lines, kinds {kinds:?}",
        files.len(),
        ids.len(),
        rejected.len()
    );
    for r in rejected.iter().take(15) {
        eprintln!(
            "  rejected {}:{}: {:?}: {}",
            r.file, r.line, r.text, r.reason
        );
    }
    // The 23 files of tests/data/ioc (12 maltrail trails, 9 ESET hash lists, signature-base's
    // C2 and hash lists): what the reader made of them on the day they were copied.
    assert_eq!(files.len(), 23);
    assert_eq!((indicators, ids.len(), rejected.len()), (18_846, 18_825, 2));
    assert_eq!(
        kinds,
        [
            ("domain-name", 6_592),
            ("file", 3_218),
            ("ipv4-addr", 1_242),
            ("network-traffic", 5_918),
            ("url", 1_876)
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect()
    );
    assert!(
        rejected.len() * 1000 < indicators,
        "more than 0.1% rejected: {}",
        rejected.len()
    );
    for k in ["ipv4-addr", "domain-name", "url", "file", "network-traffic"] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 100, "{k}: {kinds:?}");
    }
    // Same value, same id across files: ids are fewer than or equal to indicators.
    assert!(ids.len() <= indicators);
    // Every rejected line names file and line.
    assert!(
        rejected
            .iter()
            .all(|r| r.line > 0 && !r.file.is_empty() && !r.reason.is_empty())
    );
}

fn read_all(path: &Path, format: Format, limit: usize) -> (Vec<Record>, RecordReader) {
    let mut r = open(path.to_str().unwrap(), format, None).unwrap();
    let mut recs = Vec::new();
    let mut rec = Record::default();
    while recs.len() < limit && r.next_into(&mut rec).unwrap() {
        recs.push(rec.clone());
    }
    (recs, r)
}

fn has(rec: &Record, path: &str, value: &str) -> bool {
    rec.fields
        .iter()
        .any(|f| &*f.path == path && f.value.to_string() == value)
}

#[test]
fn logs_from_test_data() {
    // Zeek TSV, gzip: the first 5,000 records of the WRCCDC DNS log (tests/data/README.md).
    let (recs, r) = read_all(
        &data("logs/zeek-wrccdc-2018/dns.log.gz"),
        Format::Zeek,
        usize::MAX,
    );
    assert_eq!(recs.len(), 5_000);
    assert_eq!(
        r.malformed_count(),
        0,
        "{:?}",
        &r.malformed()[..r.malformed().len().min(3)]
    );
    let first = &recs[0];
    assert_eq!(first.line, 9, "8 header lines come first");
    assert_eq!(first.timestamp, Some(1_521_911_720_865_716_000));
    assert!(has(first, "domain-name:value", "ise.wrccdc.org"));
    assert!(has(first, "domain-name:value", "ise.wrccdc.cpp.edu"));
    assert!(has(first, "ipv4-addr:value", "134.71.3.16"));
    assert!(has(first, "network-traffic:dst_port", "53"));
    assert!(has(first, "network-traffic:src_ref.value", "10.47.1.100"));
    // The same events as Zeek JSON: the same fields and times.
    let (json_recs, r) = read_all(
        &data("logs/zeek-wrccdc-2018/dns.json.gz"),
        Format::Zeek,
        usize::MAX,
    );
    assert_eq!(json_recs.len(), 5_000);
    assert_eq!(r.malformed_count(), 0);
    for (a, b) in recs.iter().zip(&json_recs).step_by(997) {
        assert_eq!(a.timestamp, b.timestamp);
        let fa: BTreeSet<_> = a
            .fields
            .iter()
            .map(|f| (f.path.to_string(), f.value.to_string()))
            .collect();
        let fb: BTreeSet<_> = b
            .fields
            .iter()
            .map(|f| (f.path.to_string(), f.value.to_string()))
            .collect();
        assert_eq!(fa, fb, "line {} vs {}", a.line, b.line);
    }
    // ssl (SNI, certificate fingerprints) and x509.
    let (ssl, r) = read_all(
        &data("logs/zeek-wrccdc-2018/ssl.log.gz"),
        Format::Zeek,
        usize::MAX,
    );
    assert_eq!(ssl.len(), 3_000);
    assert_eq!(r.malformed_count(), 0);
    assert!(has(
        &ssl[0],
        "x509-certificate:hashes.'SHA-256'",
        "b2dafbcdbc75210672f137f27ce882ccb799887631655d4f11191d5a678e44fe"
    ));
    assert!(
        ssl.iter()
            .any(|r| r.fields.iter().any(|f| &*f.path == "domain-name:value"))
    );
    let (x509, _) = read_all(&data("logs/zeek-wrccdc-2018/x509.log.gz"), Format::Zeek, 10);
    assert!(has(&x509[0], "domain-name:value", "localhost.localdomain"));
    // OTRF combined log: `@stream`, `id_orig_h`.
    let (otrf, r) = read_all(
        &data("logs/zeek-otrf-apt29-day1/combined_zeek.log.gz"),
        Format::Zeek,
        usize::MAX,
    );
    assert_eq!(otrf.len(), 2_140);
    assert_eq!(r.malformed_count(), 0);
    assert!(has(&otrf[0], "ipv4-addr:value", "10.0.1.6"));
    let files = otrf
        .iter()
        .filter(|r| r.fields.iter().any(|f| &*f.path == "file:hashes.MD5"))
        .count();
    let urls = otrf
        .iter()
        .filter(|r| r.fields.iter().any(|f| &*f.path == "url:value"))
        .count();
    assert!(files > 100 && urls == 62, "files {files}, urls {urls}");
    // A `dns` query in the conn stream is not taken as a domain (stream-specific rules).
    assert!(
        otrf[0]
            .fields
            .iter()
            .all(|f| &*f.path != "domain-name:value")
    );
}

#[test]
fn eve_fixture() {
    let (recs, r) = read_all(Path::new(EVE), Format::Eve, usize::MAX);
    assert_eq!(recs.len(), 11);
    assert_eq!(r.malformed_count(), 1);
    assert_eq!(r.malformed()[0].line, 11);
    assert!(
        r.malformed()[0]
            .to_string()
            .contains("eve.json:11: invalid JSON: EOF while parsing a string"),
        "{}",
        r.malformed()[0]
    );
    assert!(has(&recs[1], "ipv4-addr:value", "185.142.236.226"));
    assert!(has(&recs[2], "domain-name:value", "suroot.com"));
    assert!(has(
        &recs[3],
        "url:value",
        "http://apshenyihl.com/include/arc.speclist.class.php"
    ));
    assert!(has(
        &recs[4],
        "url:value",
        "http://203.0.113.9:8080/ServiceDeskPlus/products.do"
    ));
    assert!(has(
        &recs[5],
        "x509-certificate:hashes.'SHA-1'",
        "3b6a2f0daa19623c0c54113d5249b5124f0a56e1"
    ));
    assert!(has(&recs[5], "domain-name:value", "effers.com"));
    assert!(has(
        &recs[6],
        "file:hashes.MD5",
        "273ce653c457c9220ce53d0dfd3c60f1"
    ));
    assert!(has(&recs[6], "file:size", "4120"));
    assert!(has(
        &recs[8],
        "email-addr:value",
        "billing@evil-invoices.example"
    ));
    assert!(has(&recs[9], "ipv6-addr:value", "2001:db8::99"));
    assert_eq!(recs[0].timestamp, Some(1_709_633_701_104_121_000));
    // Matching the IOC lists the fixture borrows from.
    let mut b = SetBuilder::new();
    for f in [
        "ioc/signature-base/c2-iocs.txt.gz",
        "ioc/signature-base/hash-iocs.txt.gz",
        "ioc/maltrail/malware/apt_lazarus.txt.gz",
    ] {
        for i in ioc_file(&data(f)).indicators {
            b.add(&i);
        }
    }
    let set = b.build();
    let mut m = Matcher::new(&set, 0);
    let mut hits = Vec::new();
    for r in &recs {
        m.match_record(r, &mut |h| hits.push(h));
    }
    let lines: BTreeSet<u64> = hits.iter().map(|h| h.line).collect();
    for h in &hits {
        eprintln!("{}", serde_json::to_string(h).unwrap());
    }
    assert!(lines.is_superset(&[2, 3, 4, 6, 7].into()), "{lines:?}");
    let agg = m.aggregates();
    assert_eq!(agg.iter().map(|a| a.count).sum::<u64>(), hits.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// Differential test.

/// splitmix64: a seeded generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn lit(v: &FieldValue) -> String {
    match v {
        FieldValue::Str(s) => quote(s),
        other => other.to_string(),
    }
}

fn indicator(n: usize, pattern: &str) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{}", uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 | n as u128)),
        "created": TS, "modified": TS, "pattern": pattern, "pattern_type": "stix", "valid_from": "2000-01-01T00:00:00Z",
    })
}

/// Patterns of every kind built from the values of `records`.
fn patterns_from(records: &[Record], rng: &mut Rng, n: usize) -> Vec<String> {
    let fields: Vec<(String, FieldValue, usize)> = records
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.fields
                .iter()
                .map(move |f| (f.path.to_string(), f.value.clone(), i))
        })
        .filter(|(_, v, _)| matches!(v, FieldValue::Str(_) | FieldValue::Int(_)))
        .collect();
    let strs: Vec<&(String, FieldValue, usize)> = fields
        .iter()
        .filter(|(_, v, _)| matches!(v, FieldValue::Str(_)))
        .collect();
    let ips: Vec<&str> = fields
        .iter()
        .filter(|(p, _, _)| p == "ipv4-addr:value")
        .filter_map(|(_, v, _)| v.as_str())
        .collect();
    let mut out = Vec::new();
    let field_test = |rng: &mut Rng| {
        let (p, v, _) = rng.pick(&fields);
        format!("{p} = {}", lit(v))
    };
    while out.len() < n {
        let p = match rng.below(16) {
            0..=3 => format!("[{}]", field_test(rng)),
            4 => {
                let (p, v, _) = rng.pick(&fields);
                let (_, w, _) = rng.pick(&fields);
                format!("[{p} IN ({}, {})]", lit(v), lit(w))
            }
            5 if !ips.is_empty() => {
                let ip: std::net::Ipv4Addr = rng.pick(&ips).parse().unwrap();
                let len = *rng.pick(&[8u32, 16, 24, 28, 32]);
                let net = u32::from(ip) & (u32::MAX.checked_shl(32 - len).unwrap_or(0));
                let path = rng.pick(&["ipv4-addr:value", "network-traffic:dst_ref.value"]);
                format!(
                    "[{path} ISSUBSET '{}/{len}']",
                    std::net::Ipv4Addr::from(net)
                )
            }
            6 => {
                let (p, v, _) = rng.pick(&strs);
                let s = v.as_str().unwrap();
                let cut = s
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(s.chars().count() / 2)
                    .unwrap_or(0);
                let like = match rng.below(3) {
                    0 => format!("%{}", &s[cut..]),
                    1 => format!("{}%", &s[..cut]),
                    _ => format!("%{}_%", &s[..cut]),
                };
                format!("[{p} LIKE {}]", quote(&like))
            }
            7 => {
                let (p, v, _) = rng.pick(&strs);
                let s = v.as_str().unwrap();
                let piece: String = s.chars().take(4).collect();
                let re = match rng.below(3) {
                    0 => format!("^{}", regex::escape(&piece)),
                    1 => format!("{}[a-z0-9.]*$", regex::escape(&piece)),
                    _ => "^[0-9]+\\.[0-9]+\\.".to_string(),
                };
                format!("[{p} MATCHES {}]", quote(&re))
            }
            8 => {
                // Two objects of one record (matches), or of two records (does not).
                let (p, v, i) = rng.pick(&fields);
                let same: Vec<_> = fields.iter().filter(|(_, _, j)| j == i).collect();
                let (q, w, _) = if rng.below(2) == 0 {
                    rng.pick(&same)
                } else {
                    rng.pick(&fields)
                };
                let op = rng.pick(&["AND", "FOLLOWEDBY", "OR"]);
                format!("[{p} = {}] {op} [{q} = {}]", lit(v), lit(w))
            }
            9 => format!("[{} AND {}]", field_test(rng), field_test(rng)),
            10 => format!("[{} OR {}]", field_test(rng), field_test(rng)),
            11 => {
                let q = rng.pick(&[
                    "WITHIN 5 SECONDS",
                    "REPEATS 2 TIMES",
                    "START t'2018-01-01T00:00:00Z' STOP t'2019-01-01T00:00:00Z'",
                    "START t'2020-01-01T00:00:00Z' STOP t'2021-01-01T00:00:00Z'",
                ]);
                format!("[{}] {q}", field_test(rng))
            }
            12 => {
                // Residual: no indexable condition.
                let (p, v, _) = rng.pick(&fields);
                match rng.below(4) {
                    0 => format!("[{p} != {}]", lit(v)),
                    1 => format!("[{p} NOT = {}]", lit(v)),
                    2 => format!("[{p} > {}]", lit(v)),
                    _ => format!("[EXISTS {p}]"),
                }
            }
            13 => format!(
                "[network-traffic:dst_port = {} AND network-traffic:src_ref.value ISSUBSET '10.0.0.0/8']",
                rng.pick(&[53, 80, 443, 8080])
            ),
            14 => {
                let (p, v, _) = rng.pick(&fields);
                format!("[{p} = {}] OR [network-traffic:dst_port < 100]", lit(v))
            }
            _ => format!(
                "[{p} = 'not-in-the-logs.example']",
                p = rng.pick(&["domain-name:value", "url:value"])
            ),
        };
        if concord_pattern::parse(&p).is_ok() {
            out.push(p);
        }
    }
    out
}

/// Compares the indexes with the naive evaluation of every indicator on every record.
fn differential(records: &[Record], indicators: &[Value]) -> (usize, usize) {
    let mut b = SetBuilder::new();
    let mut r = SetBuilder::new();
    for i in indicators {
        b.add(i);
        r.add(i);
    }
    let set = b.build();
    let reference = r.build_reference();
    let now = 1_600_000_000_000_000_000;
    let mut m = Matcher::new(&set, now);
    let mut total = 0;
    for rec in records {
        let mut fast = BTreeSet::new();
        m.match_record(rec, &mut |h| {
            assert!(
                fast.insert(h.indicator.clone()),
                "two hits of one indicator on one record"
            );
            assert!(h.line == rec.line && h.file == rec.file);
        });
        let (slow, _) = reference.matches(rec, now);
        let slow: BTreeSet<String> = slow.into_iter().collect();
        if fast != slow {
            let (g, _) = rec.observations(now);
            let pattern = |id: &String| {
                let i = indicators.iter().rev().find(|i| i["id"] == **id).unwrap();
                format!("{id} {}", i["pattern"])
            };
            panic!(
                "{}:{}: fast only {:?}, evaluator only {:?}\nrecord {g}",
                rec.file,
                rec.line,
                fast.difference(&slow).map(pattern).collect::<Vec<_>>(),
                slow.difference(&fast).map(pattern).collect::<Vec<_>>()
            );
        }
        total += fast.len();
    }
    let s = set.stats();
    eprintln!(
        "{} records, {} indicators ({} exact, {} cidr, {} regex, {} candidate, {} residual, {} skipped), {total} hits, {:?}",
        records.len(),
        set.len(),
        s.exact,
        s.cidr,
        s.regex,
        s.candidate,
        s.residual,
        s.skipped,
        m.stats()
    );
    (total, set.len())
}

#[test]
fn differential_on_test_logs() {
    let mut records = Vec::new();
    for (f, n) in [
        ("logs/zeek-wrccdc-2018/dns.log.gz", 1500),
        ("logs/zeek-wrccdc-2018/ssl.log.gz", 800),
        ("logs/zeek-wrccdc-2018/x509.log.gz", 200),
        ("logs/zeek-wrccdc-2018/smtp.log.gz", 200),
        ("logs/zeek-wrccdc-2018/notice.log.gz", 100),
        ("logs/zeek-otrf-apt29-day1/combined_zeek.log.gz", usize::MAX),
    ] {
        records.extend(read_all(&data(f), Format::Zeek, n).0);
    }
    records.extend(read_all(Path::new(EVE), Format::Eve, usize::MAX).0);
    let mut rng = Rng(4);
    let mut indicators: Vec<Value> = patterns_from(&records, &mut rng, 700)
        .iter()
        .enumerate()
        .map(|(n, p)| indicator(n, p))
        .collect();
    // IOC lists (parts): IPs, CIDRs, ip:port, domains, URLs, hashes.
    for (f, n) in [
        ("ioc/signature-base/c2-iocs.txt.gz", 400),
        ("ioc/signature-base/hash-iocs.txt.gz", 200),
        ("ioc/maltrail/mass_scanner_cidr.txt.gz", 200),
        ("ioc/maltrail/malware/apt_lazarus.txt.gz", 300),
    ] {
        indicators.extend(ioc_file(&data(f)).indicators.into_iter().take(n));
    }
    // Versions: a newer version replaces the pattern; a revoked one removes the indicator;
    // an expired one matches nothing.
    let first = records[0].fields[0].clone();
    let mut v1 = indicator(900_001, "[domain-name:value = 'never.example']");
    let mut v2 = v1.clone();
    v2["modified"] = json!("2021-01-01T00:00:00Z");
    v2["pattern"] = json!(format!("[{} = {}]", first.path, lit(&first.value)));
    v1["modified"] = json!("2020-06-01T00:00:00Z");
    let mut rev = indicator(900_002, v2["pattern"].as_str().unwrap());
    let mut rev2 = rev.clone();
    rev2["modified"] = json!("2021-01-01T00:00:00Z");
    rev2["revoked"] = json!(true);
    let mut expired = indicator(900_003, v2["pattern"].as_str().unwrap());
    expired["valid_until"] = json!("2001-01-01T00:00:00Z");
    rev["x"] = json!(1);
    indicators.extend([v2, v1, rev, rev2, expired]);
    let (hits, n) = differential(&records, &indicators);
    assert!(n > 1500, "{n}");
    assert!(hits > 1000, "the logs must hit many indicators, got {hits}");
}

#[test]
fn differential_on_generated_data() {
    let mut rng = Rng(0x5eed);
    let domains = [
        "a.example",
        "b.example",
        "evil.test",
        "x.y.evil.test",
        "ÄÖ.example",
        "q'uote.example",
    ];
    let ips = [
        "10.0.0.1",
        "10.0.0.2",
        "10.1.2.3",
        "192.168.7.9",
        "8.8.8.8",
        "2001:db8::1",
    ];
    let paths = ["/", "/admin/login.php", "/a%20b", "/index.html?q=1"];
    let mut lines = String::new();
    for i in 0..1500 {
        let mut o = serde_json::Map::new();
        o.insert(
            "timestamp".into(),
            json!(format!("2020-06-01T00:00:{:02}.000000+0000", i % 60)),
        );
        o.insert("src_ip".into(), json!(rng.pick(&ips)));
        o.insert("dest_ip".into(), json!(rng.pick(&ips)));
        o.insert("dest_port".into(), json!(rng.pick(&[53, 80, 443, 4444])));
        if rng.below(2) == 0 {
            o.insert("dns".into(), json!({"rrname": rng.pick(&domains)}));
        }
        if rng.below(3) == 0 {
            o.insert(
                "http".into(),
                json!({"hostname": rng.pick(&domains), "url": rng.pick(&paths)}),
            );
        }
        if rng.below(4) == 0 {
            o.insert(
                "fileinfo".into(),
                json!({"md5": format!("{:032x}", rng.below(5)), "size": rng.below(3)}),
            );
        }
        lines.push_str(&Value::Object(o).to_string());
        lines.push('\n');
    }
    let reader = RecordReader::new(
        "gen",
        Box::new(std::io::Cursor::new(lines.into_bytes())),
        Format::Eve,
        None,
    );
    let records: Vec<Record> = reader.map(Result::unwrap).collect();
    let mut indicators: Vec<Value> = patterns_from(&records, &mut rng, 400)
        .iter()
        .enumerate()
        .map(|(n, p)| indicator(n, p))
        .collect();
    for (n, p) in [
        "[ipv6-addr:value ISSUBSET '2001:db8::/32']",
        "[url:value LIKE 'http://%.example/admin/%']",
        "[domain-name:value MATCHES '(?i)^ä']",
        "[domain-name:value LIKE '%evil.test'] AND [network-traffic:dst_port = 4444]",
        "[file:size IN (0, 2)]",
        "[file:size = 1.0]",
        "[domain-name:value IN ()]",
    ]
    .iter()
    .enumerate()
    {
        indicators.push(indicator(10_000 + n, p));
    }
    let (hits, _) = differential(&records, &indicators);
    assert!(hits > 500, "{hits}");
}

#[test]
fn invalid_patterns_are_skipped_with_reason() {
    let set = IndicatorSet::from_values(&[
        indicator(1, "[ipv4-addr:value = '1.2.3.4'"),
        indicator(2, "[domain-name:value MATCHES '(?<=a)b']"),
        indicator(3, "[ipv4-addr:value = '1.2.3.4']"),
        json!({"type": "malware", "id": "malware--1"}),
    ]);
    assert_eq!(set.len(), 1);
    assert_eq!(set.stats().not_indicators, 1);
    let s = set.skipped();
    assert_eq!(s.len(), 2);
    assert!(
        s[0].reason.starts_with("invalid pattern at byte 28"),
        "{:?}",
        s[0]
    );
    assert!(
        s[1].reason.contains("look-around") || s[1].reason.contains("regex"),
        "{:?}",
        s[1]
    );
}

/// Matches `fast` with `match_reader` and `slow` record by record with `match_record` (two
/// readers over the same input) and asserts the same hits in the same order, counts,
/// malformed lines, statistics and aggregates; the number of hits.
fn reader_matches_as_records(
    set: &IndicatorSet,
    now: i64,
    mut fast_r: RecordReader,
    mut slow_r: RecordReader,
) -> usize {
    let mut fast_m = Matcher::new(set, now);
    let mut fast = Vec::new();
    let summary =
        concord_match::match_reader(&mut fast_m, &mut fast_r, &mut |h| fast.push(h)).unwrap();
    let mut slow_m = Matcher::new(set, now);
    let mut slow = Vec::new();
    let mut rec = Record::default();
    while slow_r.next_into(&mut rec).unwrap() {
        slow_m.match_record(&rec, &mut |h| slow.push(h));
    }
    assert_eq!(fast, slow);
    assert_eq!(summary.hits as usize, slow.len());
    assert_eq!(summary.records, slow_r.records());
    assert_eq!(fast_r.records(), slow_r.records());
    assert_eq!(fast_r.malformed(), slow_r.malformed());
    assert_eq!(fast_r.malformed_count(), slow_r.malformed_count());
    assert_eq!(fast_m.stats(), slow_m.stats());
    assert_eq!(fast_m.aggregates(), slow_m.aggregates());
    slow.len()
}

/// The record-free path of `match_reader` for plain observables reports exactly the hits
/// (file, line, indicator, value, path, in order), counts and aggregates of matching the
/// records the reader makes, with and without evaluator-decided and residual indicators.
#[test]
fn plain_observables_without_records_match_as_records() {
    let mut rng = Rng(0x9a1);
    let values = [
        "10.0.0.1",
        "10.0.0.2",
        "10.1.2.3",
        "192.168.7.9",
        "2001:db8::1",
        "2001:DB8::2",
        "10.0.0.1:4444",
        "10.9.9.9:80",
        "10.0.0.0/8",
        "10.0.0.7/32",
        "evil.test",
        "Evil.TEST.",
        "a.example",
        "x.y.evil.test",
        "abc12.top",
        "abc123.xyz",
        "evil[.]test",
        "http://evil.test/admin/login.php",
        "HTTP://Evil.TEST/admin/gate.php?x=1",
        "hxxp://a.example/gate.php",
        "evil.test/admin/x.php",
        "http://10.0.0.1:8080/x",
        "d41d8cd98f00b204e9800998ecf8427e",
        "D41D8CD98F00B204E9800998ECF8427E",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "bad@evil.test",
        "/admin/login.php",
        "# comment",
        "",
        "   ",
        "not an observable",
        "1234",
        " 10.0.0.2\t",
        "\u{a0}evil.test",
    ];
    let mut text = String::new();
    for _ in 0..3000 {
        text.push_str(values[rng.below(values.len())]);
        text.push(if rng.below(10) == 0 { '\r' } else { ' ' });
        text.push('\n');
    }
    // A last line without its line end.
    text.push_str("10.0.0.1");
    let base = [
        "[ipv4-addr:value = '10.0.0.1']",
        "[ipv4-addr:value = '10.0.0.1' OR domain-name:value = 'evil.test']",
        "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
        "[ipv4-addr:value ISSUBSET '10.1.0.0/16']",
        "[ipv6-addr:value ISSUBSET '2001:db8::/32']",
        "[ipv6-addr:value = '2001:db8::2']",
        "[network-traffic:dst_port = 4444]",
        "[network-traffic:dst_ref.value = '10.9.9.9']",
        "[domain-name:value = 'evil.test']",
        "[domain-name:value LIKE '%.evil.test']",
        "[domain-name:value MATCHES '^abc[0-9]{2,4}\\\\.(top|xyz)$']",
        "[url:value = 'http://evil.test/admin/login.php']",
        "[url:value LIKE '%/admin/%']",
        "[url:value MATCHES 'gate']",
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
        "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']",
        "[file:hashes.'SHA-256' IN ('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '0000000000000000000000000000000000000000000000000000000000000000')]",
        "[email-addr:value = 'bad@evil.test']",
    ];
    // Evaluator-decided (candidates) and one residual indicator.
    let candidates = [
        "[domain-name:value = 'evil.test' AND domain-name:value LIKE 'evil%']",
        "[ipv4-addr:value = '10.0.0.2'] AND [ipv4-addr:value LIKE '10.%']",
    ];
    let residual = ["[ipv4-addr:value != '10.0.0.1']"];
    let expired = {
        let mut i = indicator(90, "[ipv4-addr:value = '10.0.0.2']");
        i["valid_until"] = json!("2001-01-01T00:00:00Z");
        i
    };
    let sets: [Vec<&str>; 3] = [
        base.to_vec(),
        base.iter().chain(&candidates).copied().collect(),
        base.iter()
            .chain(&candidates)
            .chain(&residual)
            .copied()
            .collect(),
    ];
    for patterns in sets {
        let mut inds: Vec<Value> = patterns
            .iter()
            .enumerate()
            .map(|(n, p)| indicator(n, p))
            .collect();
        inds.push(expired.clone());
        let set = IndicatorSet::from_values(&inds);
        assert_eq!(set.skipped(), &[]);
        let now = 1_600_000_000_000_000_000;
        // A small buffer for the record-free path: lines across the buffer's end too.
        let reader = |buffer: usize| {
            RecordReader::new(
                "plain",
                Box::new(std::io::BufReader::with_capacity(
                    buffer,
                    std::io::Cursor::new(text.clone().into_bytes()),
                )),
                Format::Lines,
                None,
            )
        };
        // Through a small buffer (batches of one or two lines) and a large one (full
        // batches of the record-free path).
        for buffer in [61, 1 << 16] {
            let hits = reader_matches_as_records(&set, now, reader(buffer), reader(8192));
            assert!(hits > 1000, "{hits}");
        }
    }
}

/// `match_reader` on JSON and Zeek logs (which hands the matcher the IPv4 addresses the field
/// map parsed, for the CIDR lookups) reports exactly the hits (in order), counts and
/// aggregates of matching the records one by one with `match_record` (read through a
/// smaller buffer).
#[test]
fn logs_through_match_reader_match_as_records() {
    let mut rng = Rng(0x1e4);
    let ips = [
        "10.0.0.1",
        "10.0.0.2",
        "10.1.2.3",
        " 10.1.2.4",
        "010.1.2.5",
        "192.168.7.9",
        "8.8.8.8",
        "2001:db8::1",
        "::ffff:10.0.0.9",
        "evil.test",
        "",
    ];
    let mut lines = String::new();
    for i in 0..2000 {
        let mut o = serde_json::Map::new();
        o.insert(
            "timestamp".into(),
            json!(format!("2020-06-01T00:00:{:02}.000000+0000", i % 60)),
        );
        o.insert(
            "event_type".into(),
            json!(rng.pick(&["dns", "http", "flow"])),
        );
        o.insert("src_ip".into(), json!(rng.pick(&ips)));
        o.insert("dest_ip".into(), json!(rng.pick(&ips)));
        o.insert("dest_port".into(), json!(rng.pick(&[53, 80, 443, 4444])));
        if rng.below(2) == 0 {
            o.insert(
                "dns".into(),
                json!({"rrname": "a.example", "answers": [
                    {"rrname": "a.example", "rdata": rng.pick(&ips)},
                    {"rrname": "a.example", "rdata": rng.pick(&ips)},
                ]}),
            );
        }
        if rng.below(3) == 0 {
            o.insert(
                "http".into(),
                json!({"hostname": rng.pick(&ips), "url": "/x.php"}),
            );
        }
        lines.push_str(&Value::Object(o).to_string());
        lines.push('\n');
    }
    let patterns = [
        "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
        "[ipv4-addr:value ISSUBSET '10.1.0.0/16']",
        "[ipv4-addr:value ISSUBSET '10.0.0.2/32']",
        "[ipv4-addr:value ISSUBSET '192.168.0.0/16']",
        "[ipv6-addr:value ISSUBSET '2001:db8::/32']",
        "[network-traffic:dst_ref.value ISSUBSET '10.0.0.0/8']",
        "[network-traffic:src_ref.value ISSUBSET '8.8.8.0/24']",
        "[ipv4-addr:value = '10.0.0.1']",
        "[domain-name:value = 'evil.test']",
        "[url:value LIKE '%10.1.%']",
        "[network-traffic:dst_port = 4444]",
    ];
    let inds: Vec<Value> = patterns
        .iter()
        .enumerate()
        .map(|(n, p)| indicator(n, p))
        .collect();
    let set = IndicatorSet::from_values(&inds);
    assert_eq!(set.skipped(), &[]);
    let now = 1_600_000_000_000_000_000;
    let inputs: Vec<(Format, Vec<u8>)> = vec![
        (Format::Eve, lines.into_bytes()),
        (Format::Eve, std::fs::read(EVE).unwrap()),
        (
            Format::Zeek,
            read_bytes(&data("logs/zeek-otrf-apt29-day1/combined_zeek.log.gz")),
        ),
    ];
    let mut total = 0;
    for (format, bytes) in inputs {
        let reader = |buffer: usize| {
            RecordReader::new(
                "log",
                Box::new(std::io::BufReader::with_capacity(
                    buffer,
                    std::io::Cursor::new(bytes.clone()),
                )),
                format,
                None,
            )
        };
        // Batches of one or two records (a line longer than the buffer is read by
        // `read_until`), of some, and full ones.
        for buffer in [307, 8192, 1 << 16] {
            let hits = reader_matches_as_records(&set, now, reader(buffer), reader(307));
            assert!(hits > 0, "{format:?}");
            total += hits;
        }
    }
    assert!(total > 3000, "{total}");
}

/// Issue 16, item 5: indicators whose validity or versions lie outside `i64` nanoseconds
/// (years 0001 and 9999) or in a leap second are matched by their real bounds, and of two
/// versions in year 9999 the later one counts.
#[test]
fn validity_and_versions_over_the_whole_timestamp_range() {
    let (recs, _) = read_all(Path::new(EVE), Format::Eve, usize::MAX);
    let rec = &recs[1];
    assert!(has(rec, "ipv4-addr:value", "185.142.236.226"));
    let with = |n: usize, modified: &str, ip: &str, from: &str, until: Option<&str>| {
        let mut v = indicator(n, &format!("[ipv4-addr:value = '{ip}']"));
        v["modified"] = json!(modified);
        v["valid_from"] = json!(from);
        if let Some(u) = until {
            v["valid_until"] = json!(u);
        }
        v
    };
    let hit = "185.142.236.226";
    let set = IndicatorSet::from_values(&[
        // Never expires, valid since year 1: matches.
        with(
            1,
            TS,
            hit,
            "0001-01-01T00:00:00Z",
            Some("9999-12-31T23:59:59Z"),
        ),
        // Expired at a leap second in 2016: no match in 2024.
        with(
            2,
            TS,
            hit,
            "2000-01-01T00:00:00Z",
            Some("2016-12-31T23:59:60Z"),
        ),
        // Two versions in year 9999, the later (given first) points elsewhere: no match.
        with(
            3,
            "9999-12-31T23:59:59.000Z",
            "192.0.2.1",
            "2000-01-01T00:00:00Z",
            None,
        ),
        with(
            3,
            "9999-12-31T23:59:58.000Z",
            hit,
            "2000-01-01T00:00:00Z",
            None,
        ),
    ]);
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    let mut m = Matcher::new(&set, 0);
    let mut hits = Vec::new();
    m.match_record(rec, &mut |h| hits.push(h.indicator));
    assert_eq!(hits, [indicator(1, "")["id"].as_str().unwrap()]);
}
