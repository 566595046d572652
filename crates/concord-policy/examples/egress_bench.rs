//! Egress throughput with and without the actions on personal data, over the MITRE ATT&CK
//! ICS bundle (objects/s).
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

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/stix/attack/ics-attack-18.1.json"
        )
        .to_owned()
    });
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let bundle: serde_json::Value = serde_json::from_str(&raw).expect("bundle JSON");
    let bodies: Vec<String> = bundle["objects"]
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
    for (name, policy) in [("TLP only", &off), ("full policy", &on)] {
        let cx = EgressContext {
            sharing: &sharing,
            partner: &partner,
            policy,
        };
        // One round untimed: the phone-number metadata and the regexes compile on first use,
        // once per process, as in a server.
        for b in &bodies {
            egress(b, &cx);
        }
        let rounds = 5;
        let t = Instant::now();
        let mut rewritten = 0;
        for _ in 0..rounds {
            for b in &bodies {
                if let Decision::Rewritten { .. } = egress(b, &cx) {
                    rewritten += 1;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name:12} {} objects x {rounds}: {:.0} objects/s ({} rewritten per round)",
            bodies.len(),
            (bodies.len() * rounds) as f64 / secs,
            rewritten / rounds
        );
    }
}
