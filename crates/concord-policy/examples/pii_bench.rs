//! Detector throughput over the description texts of the MITRE ATT&CK ICS and mobile bundles.
//!
//! ```text
//! cargo run --release -p concord-policy --example pii_bench [BUNDLE.json ...]
//! ```
//!
//! Without arguments it reads `$CONCORD_SHARED_DATA/stix/attack/{ics-attack-18.1,mobile-attack-17.1}.json`
//! from the full data collection (not in the repository; tests/data/README.md). Prints MB/s for `scan_text` over every `description`
//! (the prose where personal data would hide) and for `scan_object` over whole objects.

use std::time::Instant;

use concord_policy::pii::{DetectorConfig, Detectors};

fn main() {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let root = format!(
            "{}/stix/attack",
            std::env::var("CONCORD_SHARED_DATA")
                .expect("give BUNDLE.json arguments or set CONCORD_SHARED_DATA")
        );
        paths = vec![
            format!("{root}/ics-attack-18.1.json"),
            format!("{root}/mobile-attack-17.1.json"),
        ];
    }
    let mut descriptions = Vec::new();
    let mut objects = Vec::new();
    for p in &paths {
        let raw = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let bundle: serde_json::Value = serde_json::from_str(&raw).expect("bundle JSON");
        for o in bundle["objects"].as_array().expect("objects") {
            if let Some(d) = o["description"].as_str() {
                descriptions.push(d.to_string());
            }
            objects.push(o.clone());
        }
    }
    let text_bytes: usize = descriptions.iter().map(String::len).sum();
    let object_bytes: usize = objects.iter().map(|o| o.to_string().len()).sum();

    let config = DetectorConfig {
        phone_regions: ["CN", "SA", "AE", "EG", "GB", "US", "DE", "FR"]
            .iter()
            .map(|r| r.to_string())
            .collect(),
        ..DetectorConfig::default()
    };
    let d = Detectors::new(&config).expect("config");

    let rounds = 5;
    let mut found = 0;
    let t = Instant::now();
    for _ in 0..rounds {
        for s in &descriptions {
            found += d.scan_text(s).len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "scan_text:   {} descriptions, {:.2} MB x {rounds}: {:.1} MB/s ({} findings per round)",
        descriptions.len(),
        text_bytes as f64 / 1e6,
        (text_bytes * rounds) as f64 / 1e6 / secs,
        found / rounds
    );

    let mut found = 0;
    let t = Instant::now();
    for _ in 0..rounds {
        for o in &objects {
            found += d.scan_object(o).len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "scan_object: {} objects, {:.2} MB of JSON x {rounds}: {:.1} MB/s, {:.0} objects/s ({} findings per round)",
        objects.len(),
        object_bytes as f64 / 1e6,
        (object_bytes * rounds) as f64 / 1e6 / secs,
        (objects.len() * rounds) as f64 / secs,
        found / rounds
    );
}
