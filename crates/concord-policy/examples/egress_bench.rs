//! Egress throughput with and without the actions on personal data, over the MITRE ATT&CK
//! ICS bundle and a generated bundle of 100,000 objects (objects/s).
//!
//! ```text
//! cargo run --release -p concord-policy --example egress_bench [BUNDLE.json]
//! ```
//!
//! "TLP only" is the egress function with every category allowed by a policy that detects
//! nothing (categories empty): JSON parse + TLP gate. "Full policy" detects every category and
//! pseudonymises for a partner across a border (the defaults).

use std::time::Instant;

use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use concord_policy::egress::{CollectionSharing, Decision, EgressContext, PartnerProfile, egress};
use concord_policy::pii::DetectorConfig;
use concord_policy::tlp::Tlp;

/// A deterministic generated bundle of `n` objects: indicators, notes, identities and
/// observed SCOs in turn; about one object in five carries personal data (an e-mail address,
/// a phone number, an IP address, a card or IBAN), as a SOC's case notes would.
fn generated(n: usize) -> Vec<String> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pii = [
        "analyst j.doe@cert.example.org",
        "call +49 30 901820",
        "seen from 81.2.69.160",
        "card 4111 1111 1111 1111",
        "IBAN DE89 3704 0044 0532 0130 00",
    ];
    (0..n)
        .map(|i| {
            let r = next();
            let uuid = format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                r as u32,
                (r >> 32) as u16,
                (r >> 48) & 0xfff,
                i & 0xfff,
                i
            );
            let text = if r % 5 == 0 {
                format!(
                    "Case {i}: {} reported the lure.",
                    pii[(r >> 8) as usize % pii.len()]
                )
            } else {
                format!(
                    "Campaign wave {} against the energy sector, tracked since 2019 (T0817).",
                    r % 1000
                )
            };
            let created = "2024-03-01T12:00:00.000Z";
            let o = match i % 4 {
                0 => serde_json::json!({"type": "indicator", "spec_version": "2.1",
                    "id": format!("indicator--{uuid}"), "created": created, "modified": created,
                    "pattern": format!("[domain-name:value = 'c2-{}.example.net']", r % 100_000),
                    "pattern_type": "stix", "valid_from": created, "description": text}),
                1 => serde_json::json!({"type": "note", "spec_version": "2.1",
                    "id": format!("note--{uuid}"), "created": created, "modified": created,
                    "content": text, "object_refs": [format!("indicator--{uuid}")]}),
                2 => serde_json::json!({"type": "identity", "spec_version": "2.1",
                    "id": format!("identity--{uuid}"), "created": created, "modified": created,
                    "name": format!("Org {}", r % 997), "identity_class": "organization",
                    "description": text}),
                _ => serde_json::json!({"type": "domain-name", "spec_version": "2.1",
                    "id": format!("domain-name--{uuid}"),
                    "value": format!("host{}.example.com", r % 100_000)}),
            };
            o.to_string()
        })
        .collect()
}

fn main() {
    // Default: ATT&CK for ICS from the full data collection named by CONCORD_SHARED_DATA.
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        let dir = std::env::var("CONCORD_SHARED_DATA")
            .expect("give BUNDLE.json as argument or set CONCORD_SHARED_DATA");
        format!("{dir}/stix/attack/ics-attack-18.1.json")
    });
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let bundle: serde_json::Value = serde_json::from_str(&raw).expect("bundle JSON");
    let ics: Vec<String> = bundle["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o.to_string())
        .collect();
    let sharing = CollectionSharing {
        default_tlp: Tlp::Clear,
        ..CollectionSharing::default()
    };
    let partner = PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
    };
    let keys = PseudonymKeys {
        node_secret: Some(vec![7; 32]),
        ..PseudonymKeys::default()
    };
    let off = Policy::new(
        PolicyConfig {
            detectors: DetectorConfig {
                categories: Vec::new(),
                ..DetectorConfig::default()
            },
            ..PolicyConfig::default()
        },
        keys.clone(),
    )
    .expect("policy");
    let on = Policy::node_default(Some("CN"), keys);
    let sets = [("ICS", ics, 5), ("generated", generated(100_000), 1)];
    for (set, bodies, rounds) in &sets {
        let mut rates = Vec::new();
        for (name, policy) in [("TLP only", &off), ("full policy", &on)] {
            let cx = EgressContext {
                sharing: &sharing,
                partner: &partner,
                policy,
                markings: &concord_policy::egress::Markings::default(),
                door: "taxii-objects",
                now_ns: 0,
            };
            // One round untimed: the phone-number metadata and the regexes compile on first
            // use, once per process, as in a server.
            for b in bodies.iter().take(2000) {
                egress(b, &cx);
            }
            let t = Instant::now();
            let (mut rewritten, mut withheld) = (0, 0);
            for _ in 0..*rounds {
                for b in bodies {
                    match egress(b, &cx) {
                        Decision::Rewritten { .. } => rewritten += 1,
                        Decision::Withheld { .. } => withheld += 1,
                        Decision::Unchanged => {}
                    }
                }
            }
            let secs = t.elapsed().as_secs_f64();
            let rate = (bodies.len() * rounds) as f64 / secs;
            rates.push(rate);
            println!(
                "{set:10} {name:12} {} objects x {rounds}: {rate:.0} objects/s ({} rewritten, {} withheld per round)",
                bodies.len(),
                rewritten / rounds,
                withheld / rounds
            );
        }
        println!(
            "{set:10} policy cost: {:.2}x the TLP-only path",
            rates[0] / rates[1]
        );
    }
}
