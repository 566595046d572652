//! The feeds of every indicator the repository's IOC lists hold (tests/data/ioc: maltrail,
//! ESET, signature-base; 18,846 indicators through `concord_match::ioc_list`), loaded by the
//! real tools: `suricata -T` (Debian's `suricata`) with 0 errors, `named-checkzone`
//! (`bind9-utils`) OK; the Zeek intel file checked against the intel framework's documented
//! format (no Zeek package in Debian); CSV read back by the `csv` crate. A missing tool
//! skips its check with a message under a bare `cargo test`, and fails the test when
//! `CONCORD_REQUIRE_FEED_TOOLS=1` (scripts/test sets it; .ci/run installs the tools).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use concord_feeds::{FeedBuilder, Format, Header, Report};
use concord_match::ioc_list::{IocOptions, read_ioc_list};
use concord_misp::Warninglists;
use concord_stix::Timestamp;
use serde_json::{Value, json};

/// The repository's test data (tests/data/README.md says what each file is and its licence).
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            files(&p, out);
        } else if !name.starts_with("LICENSE") && !name.starts_with("README") {
            out.push(p);
        }
    }
}

/// Every indicator of tests/data/ioc, and a few that exercise validity and the kinds IOC
/// lists do not hold (IPv6, e-mail).
fn indicators() -> Vec<Value> {
    let mut paths = Vec::new();
    files(&Path::new(DATA).join("ioc"), &mut paths);
    assert_eq!(paths.len(), 23, "{paths:?}");
    let mut all = Vec::new();
    for p in &paths {
        let f = std::fs::File::open(p).unwrap();
        let input: Box<dyn Read> = if p.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(f))
        } else {
            Box::new(f)
        };
        let list = read_ioc_list(
            BufReader::new(input),
            &p.display().to_string(),
            &IocOptions::new("2024-01-01T00:00:00.000Z"),
        )
        .unwrap();
        all.extend(list.indicators);
    }
    let extra = |n: u32, pattern: &str| {
        json!({"type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{n:08x}-1111-4000-8000-000000000000"),
            "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
            "valid_from": "2024-01-01T00:00:00Z", "pattern_type": "stix",
            "name": "tab\there, \"quoted\"; and\nbroken", "pattern": pattern})
    };
    all.push(extra(1, "[ipv6-addr:value = '2a0b:4342:1a31:1::7']"));
    all.push(extra(2, "[email-addr:value = 'phish@bad.example']"));
    let mut revoked = extra(3, "[domain-name:value = 'revoked.example']");
    revoked["revoked"] = json!(true);
    all.push(revoked);
    let mut expired = extra(4, "[domain-name:value = 'expired.example']");
    expired["valid_until"] = json!("2024-06-01T00:00:00Z");
    all.push(expired);
    // On the public-dns-v4 warninglist.
    all.push(extra(5, "[ipv4-addr:value = '8.8.8.8']"));
    all
}

fn build(format: Format, objects: &[Value], lists: &Warninglists) -> (String, Report) {
    let now = Timestamp::parse("2025-01-01T00:00:00Z")
        .unwrap()
        .unix_nanos();
    let mut b = FeedBuilder::new(format, Some(lists), now);
    for o in objects {
        b.add(o);
    }
    b.finish(&Header {
        title: "tests/data/ioc".into(),
        serial: 7,
        ..Header::default()
    })
}

fn warninglists() -> Warninglists {
    Warninglists::load_dir(&Path::new(DATA).join("misp/warninglists")).unwrap()
}

/// The path of `tool`, or `None` (with a message) when it is not installed; a missing tool
/// fails when `CONCORD_REQUIRE_FEED_TOOLS=1`.
fn tool(tool: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CONCORD_REQUIRE_FEED_TOOLS").as_deref() != Ok("1"),
            "{tool} is not installed and CONCORD_REQUIRE_FEED_TOOLS=1 (apt-get install {package}; .ci/run does)"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {package})");
    }
    found
}

#[test]
fn suricata_loads_the_rules_with_no_error() {
    let objects = indicators();
    let (rules, report) = build(Format::Suricata, &objects, &warninglists());
    assert!(report.written > 5_000, "{report:?}");
    assert!(report.not_in_format > 3_000, "file hashes: {report:?}");
    assert_eq!(report.revoked, 1);
    assert_eq!(report.expired, 1);
    let Some(suricata) = tool("suricata", "suricata") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concord.rules");
    std::fs::write(&path, &rules).unwrap();
    let out = Command::new(suricata)
        .arg("-T")
        .arg("-S")
        .arg(&path)
        .arg("-l")
        .arg(dir.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(out.status.success(), "suricata -T failed:\n{log}");
    assert!(
        errors.is_empty(),
        "{} errors:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(log.contains("successfully loaded"), "{log}");
}

#[test]
fn named_checkzone_accepts_the_rpz_zone() {
    let objects = indicators();
    let (zone, report) = build(Format::Rpz, &objects, &warninglists());
    assert!(report.written > 5_000, "{report:?}");
    assert!(
        zone.contains("\n128.7.zz.1.1a31.4342.2a0b.rpz-ip IN CNAME .\n"),
        "{report:?} {:?}",
        zone.lines()
            .filter(|l| l.starts_with("128."))
            .collect::<Vec<_>>()
    );
    assert!(!zone.contains("revoked.example") && !zone.contains("expired.example"));
    assert!(
        !zone.contains("32.8.8.8.8.rpz-ip"),
        "8.8.8.8 is on a warninglist"
    );
    assert!(report.warninglisted >= 1, "{report:?}");
    let Some(checkzone) = tool("named-checkzone", "bind9-utils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpz.zone");
    std::fs::write(&path, &zone).unwrap();
    let out = Command::new(checkzone)
        .arg("rpz.concord.")
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "named-checkzone failed:\n{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("loaded serial 7") && log.trim_end().ends_with("OK"),
        "{log}"
    );
}

/// Zeek's intel framework (`base/frameworks/intel/input.zeek`, Input::READER_ASCII): a
/// `#fields` header naming `indicator` and `indicator_type` (and `meta.*`), then one
/// tab-separated line per indicator with as many fields, none empty (`-` for unset),
/// `indicator_type` one of the `Intel::Type` values; ADDR a literal address, URL without
/// its scheme.
#[test]
fn the_zeek_intel_file_follows_the_intel_framework_format() {
    let objects = indicators();
    let (text, report) = build(Format::ZeekIntel, &objects, &warninglists());
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header,
        "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"
    );
    let n = header.split('\t').count() - 1;
    let mut kinds = std::collections::BTreeMap::new();
    let mut count = 0;
    for line in lines {
        count += 1;
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), n, "{line:?}");
        assert!(f.iter().all(|x| !x.is_empty()), "{line:?}");
        assert!(!f[0].contains(' '), "{line:?}");
        match f[1] {
            "Intel::ADDR" => assert!(f[0].parse::<std::net::IpAddr>().is_ok(), "{line:?}"),
            "Intel::URL" => assert!(!f[0].contains("://"), "{line:?}"),
            "Intel::FILE_HASH" => assert!(
                matches!(f[0].len(), 32 | 40 | 64) && f[0].bytes().all(|b| b.is_ascii_hexdigit()),
                "{line:?}"
            ),
            "Intel::DOMAIN" | "Intel::EMAIL" => {}
            other => panic!("not an Intel::Type: {other}"),
        }
        *kinds.entry(f[1]).or_insert(0) += 1;
    }
    assert_eq!(count, report.written);
    for k in [
        "Intel::ADDR",
        "Intel::DOMAIN",
        "Intel::URL",
        "Intel::FILE_HASH",
        "Intel::EMAIL",
    ] {
        assert!(kinds.contains_key(k), "{k}: {kinds:?}");
    }
    // The name with a tab and a line break stays one field.
    assert!(text.contains("phish@bad.example\tIntel::EMAIL\t"));
}

#[test]
fn csv_and_plain_lists_read_back() {
    let objects = indicators();
    let lists = warninglists();
    let (csv_text, report) = build(Format::Csv, &objects, &lists);
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec!["value", "type", "indicator_id", "name", "valid_until"]
    );
    let records: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(records.len(), report.written);
    let email = records
        .iter()
        .find(|r| &r[0] == "phish@bad.example")
        .unwrap();
    assert_eq!(&email[1], "email");
    assert_eq!(&email[3], "tab\there, \"quoted\"; and\nbroken");
    let (plain, p) = build(Format::Plain, &objects, &lists);
    assert_eq!(p.written, report.written);
    let values: Vec<&str> = plain.lines().collect();
    assert_eq!(values.len(), p.written);
    assert!(values.iter().zip(&records).all(|(v, r)| *v == &r[0]));
    assert!(!values.contains(&"8.8.8.8"));
}
