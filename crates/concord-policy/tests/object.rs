//! `scan_object`: paths, nesting, extensions, patterns, structural detectors.

use concord_policy::pii::{Category, DetectorConfig, Detectors, ObjectFinding};
use serde_json::json;

fn summary(f: &[ObjectFinding]) -> Vec<(String, Category, String)> {
    f.iter()
        .map(|f| (f.path.clone(), f.finding.category, f.finding.value.clone()))
        .collect()
}

#[test]
fn every_string_at_any_depth() {
    let d = super::detectors();
    let obj = json!({
        "type": "report",
        "spec_version": "2.1",
        "id": "report--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
        "created": "2024-01-15T10:20:30.000Z",
        "modified": "2024-01-15T10:20:30.000Z",
        "name": "Campaign against 13812345678",
        "description": "Contact analyst@cert.example.org",
        "external_references": [
            {"source_name": "a"},
            {"source_name": "b", "description": "ok"},
            {"source_name": "c", "url": "https://example.org/u?mail=x.y@example.com"}
        ],
        "extensions": {
            "x": {"description": "IBAN GB82WEST12345698765432"},
            "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e": {
                "extension_type": "property-extension",
                "notes": [{"deep": {"deeper": ["from 203.0.113.9"]}}]
            }
        },
        "x_custom": {"weird.key": "card 4111 1111 1111 1111"},
        "object_refs": ["identity--311b2d2d-f010-4473-83ec-1edf84858f4c"]
    });
    let mut got = summary(&d.scan_object(&obj));
    got.sort();
    let mut want = vec![
        ("name".to_string(), Category::Phone, "13812345678".to_string()),
        ("description".into(), Category::Email, "analyst@cert.example.org".into()),
        ("external_references[2].url".into(), Category::Email, "x.y@example.com".into()),
        ("extensions.x.description".into(), Category::Iban, "GB82WEST12345698765432".into()),
        (
            "extensions.extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e.notes[0].deep.deeper[0]".into(),
            Category::IpAddress,
            "203.0.113.9".into(),
        ),
        (r#"x_custom["weird.key"]"#.into(), Category::PaymentCard, "4111 1111 1111 1111".into()),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn structural_detectors() {
    let d = super::detectors();
    let individual = json!({
        "type": "identity", "id": "identity--311b2d2d-f010-4473-83ec-1edf84858f4c",
        "name": "Wang Fang", "identity_class": "individual",
        "contact_information": "wang.fang@example.cn, +86 139 1234 5678"
    });
    let got = summary(&d.scan_object(&individual));
    assert!(got.contains(&("name".into(), Category::PersonName, "Wang Fang".into())));
    assert!(got.contains(&(
        "contact_information".into(),
        Category::Email,
        "wang.fang@example.cn".into()
    )));
    assert!(got.contains(&(
        "contact_information".into(),
        Category::Phone,
        "+86 139 1234 5678".into()
    )));

    let org = json!({"type": "identity", "name": "ACME CERT", "identity_class": "organization"});
    assert!(d.scan_object(&org).is_empty());

    let account = json!({
        "type": "user-account", "id": "user-account--0d5b424b-93b8-5cd8-ac36-306e1789d63c",
        "user_id": "1001", "account_login": "jdoe", "display_name": "John Doe",
        "account_type": "unix"
    });
    // serde_json maps iterate in key order.
    let got = summary(&d.scan_object(&account));
    assert_eq!(
        got,
        [
            ("account_login".into(), Category::UserAccount, "jdoe".into()),
            (
                "display_name".into(),
                Category::UserAccount,
                "John Doe".into()
            ),
            ("user_id".into(), Category::UserAccount, "1001".into()),
        ]
    );

    // Inside a bundle, the paths say where.
    let bundle = json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [org, {"type": "email-addr", "value": "jdoe@example.com", "display_name": "John Doe"}]});
    let got = summary(&d.scan_object(&bundle));
    assert_eq!(
        got,
        [
            (
                "objects[1].display_name".into(),
                Category::EmailAddressObject,
                "John Doe".into()
            ),
            (
                "objects[1].value".into(),
                Category::EmailAddressObject,
                "jdoe@example.com".into()
            ),
            (
                "objects[1].value".into(),
                Category::Email,
                "jdoe@example.com".into()
            ),
        ]
    );
}

#[test]
fn pattern_literals() {
    let d = super::detectors();
    let ind = json!({
        "type": "indicator", "spec_version": "2.1", "pattern_type": "stix",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "pattern": "([email-message:from_ref.value = 'boss@corp.example' AND email-message:subject = 'call 13812345678'] OR [user-account:account_login IN ('jdoe', 'root')]) FOLLOWEDBY [ipv4-addr:value = '198.51.100.1'] WITHIN 600 SECONDS",
        "valid_from": "2024-01-15T10:20:30Z"
    });
    let f = d.scan_object(&ind);
    let got: Vec<_> = f
        .iter()
        .map(|f| {
            let l = f
                .literal
                .as_ref()
                .expect("pattern findings carry their literal");
            assert_eq!(f.path, "pattern");
            assert_eq!(&l.value[f.finding.start..f.finding.end], f.finding.value);
            (
                l.object_path.as_str(),
                f.finding.category,
                f.finding.value.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "email-message:from_ref.value",
                Category::Email,
                "boss@corp.example"
            ),
            ("email-message:subject", Category::Phone, "13812345678"),
            ("user-account:account_login", Category::UserAccount, "jdoe"),
            ("user-account:account_login", Category::UserAccount, "root"),
            ("ipv4-addr:value", Category::IpAddress, "198.51.100.1"),
        ]
    );

    // A pattern that does not parse is scanned as text.
    let broken = json!({"type": "indicator", "pattern_type": "stix", "pattern": "[ipv4-addr:value = '198.51.100.1'"});
    let f = d.scan_object(&broken);
    assert_eq!(f.len(), 1);
    assert!(f[0].literal.is_none());
    assert_eq!(f[0].finding.value, "198.51.100.1");

    // Other pattern languages are plain strings.
    let sigma = json!({"type": "indicator", "pattern_type": "sigma", "pattern": "user: a@b.org"});
    assert_eq!(d.scan_object(&sigma)[0].finding.category, Category::Email);
}

#[test]
fn categories_can_be_switched_off() {
    let d = Detectors::new(&DetectorConfig {
        categories: vec![Category::PersonName],
        ..DetectorConfig::default()
    })
    .unwrap();
    let individual = json!({"type": "identity", "name": "Wang Fang", "identity_class": "individual",
        "contact_information": "wang.fang@example.cn"});
    let got = summary(&d.scan_object(&individual));
    assert_eq!(
        got,
        [("name".into(), Category::PersonName, "Wang Fang".into())]
    );
}

#[test]
fn infrastructure_ranges_from_config() {
    let d = Detectors::new(&DetectorConfig {
        infrastructure: vec!["198.51.100.0/24".into(), "2001:db8::/32".into()],
        ..DetectorConfig::default()
    })
    .unwrap();
    let f = d.scan_text("198.51.100.7 203.0.113.7 2001:db8::7 2001:db9::7");
    let v: Vec<_> = f.iter().map(|f| f.value.as_str()).collect();
    assert_eq!(v, ["203.0.113.7", "2001:db9::7"]);
}
