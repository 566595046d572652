//! False positives on real threat intelligence: the MITRE ATT&CK ICS bundle contains no
//! personal data worth the name (author names of `x_mitre_contributors` aside), yet is full
//! of identifiers, timestamps, versions and technique ids.

use std::collections::BTreeMap;

use concord_policy::pii::Category;

/// The ICS bundle of the repository's test data (tests/data/README.md).
const ICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/stix/attack/ics-attack-18.1.json.gz"
);

fn ics_text() -> String {
    use std::io::Read;
    let raw = std::fs::read(ICS).unwrap_or_else(|e| panic!("{ICS}: {e}"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{ICS}: {e}"));
    text
}

#[test]
fn ics_bundle_has_few_findings() {
    let raw = ics_text();
    let bundle: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let d = super::detectors();
    let findings = d.scan_object(&bundle);
    let mut per: BTreeMap<Category, usize> = BTreeMap::new();
    for f in &findings {
        *per.entry(f.finding.category).or_default() += 1;
        println!(
            "{:<14} {:<45} {:?}",
            f.finding.category.as_str(),
            f.path,
            f.finding.value
        );
    }
    println!("{per:?}");
    let objects = bundle["objects"].as_array().unwrap().len();
    println!("{} findings in {objects} objects", findings.len());
    // Numbers that look like personal data are the real risk; ATT&CK has none.
    for cat in [
        Category::Phone,
        Category::PaymentCard,
        Category::NationalId,
        Category::Iban,
    ] {
        assert!(
            per.get(&cat).copied().unwrap_or(0) <= 2,
            "{cat}: {:?}",
            findings
                .iter()
                .filter(|f| f.finding.category == cat)
                .map(|f| (&f.path, &f.finding.value))
                .collect::<Vec<_>>()
        );
    }
    assert!(findings.len() <= 20, "{} findings", findings.len());
}

/// With the private, link-local and documentation ranges declared as infrastructure, what is
/// left on the ICS bundle.
#[test]
fn ics_bundle_with_infrastructure_ranges() {
    let raw = ics_text();
    let bundle: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let d = concord_policy::pii::Detectors::new(&concord_policy::pii::DetectorConfig {
        phone_regions: super::REGIONS.iter().map(|r| r.to_string()).collect(),
        infrastructure: [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "192.0.2.0/24",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "fc00::/7",
            "fe80::/10",
            "2001:db8::/32",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        ..Default::default()
    })
    .unwrap();
    let findings = d.scan_object(&bundle);
    for f in &findings {
        println!(
            "{:<14} {:<45} {:?}",
            f.finding.category.as_str(),
            f.path,
            f.finding.value
        );
    }
    // What remains is the one known false positive: `January 1686-2013` (IEEE 1686-2013 without
    // the word IEEE) reads as a valid Chinese number `+86 1686 2013`.
    assert!(
        findings
            .iter()
            .all(|f| f.finding.category != Category::IpAddress)
            && findings.len() <= 1,
        "{} findings",
        findings.len()
    );
}
