//! Agreements (issue 19): the OASIS PAP marking definitions, byte for byte, and the clauses the
//! egress function enforces (IEP 2.0 dates, permitted actions, attribution; the PAP gate of
//! the automated doors), with `explain` naming the agreement and clause.

use std::collections::BTreeMap;

use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use concord_policy::agreement::{
    Agreement, Attribution, PAP_AMBER_ID, PAP_CLEAR_ID, PAP_EXTENSION_ID, PAP_GREEN_ID, PAP_RED_ID,
    PAP_WHITE_ID, Pap, PermittedActions, TransferMechanism,
};
use concord_policy::egress::{
    CollectionSharing, Decision, EgressContext, Markings, PartnerProfile, egress, explain,
};
use concord_policy::tlp::Tlp;
use serde_json::Value;
use sha2::Digest;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pap");

/// The OASIS files as committed (tests/data/pap/LICENSE.md names their source commits):
/// name, SHA-256, the id they define, the level.
const FILES: [(&str, &str, &str, Pap); 4] = [
    (
        "pap-clear.json",
        "d8dfb3402d67cc3b708387a64f9b20e492d07359b530c60ad05e1f980fb8303c",
        PAP_CLEAR_ID,
        Pap::Clear,
    ),
    (
        "pap-green.json",
        "79dbaf405a1a2bb24cc6c46ec061d9a136b180683b4dd8e11e8da7439143b6ab",
        PAP_GREEN_ID,
        Pap::Green,
    ),
    (
        "pap-amber.json",
        "58d0600b01eb115dcd390b730a2049e7368c2b21bd6234627d3530e2ec3b9209",
        PAP_AMBER_ID,
        Pap::Amber,
    ),
    (
        "pap-red.json",
        "af224d196e3438c9c6467c38b7f9cb2384a6eda41c9ba3e923414092730b66dd",
        PAP_RED_ID,
        Pap::Red,
    ),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_oasis_pap_definitions_byte_for_byte_and_their_ids() {
    for (file, sha, id, level) in FILES {
        let bytes = std::fs::read(format!("{DATA}/{file}")).unwrap();
        assert_eq!(hex(&sha2::Sha256::digest(&bytes)), sha, "{file} changed");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "marking-definition");
        assert_eq!(v["id"], id, "{file}");
        assert_eq!(v["name"], level.label(), "{file}");
        let ext = &v["extensions"][PAP_EXTENSION_ID];
        assert_eq!(ext["extension_type"], "property-extension");
        assert_eq!(Pap::from_marking_id(id), Some(level));
        let named: Pap = serde_json::from_value(ext["pap"].clone()).unwrap();
        assert_eq!(named, level, "{file}: its `pap` value reads as its level");
        // Valid STIX 2.1, as the node would store it.
        assert!(concord_stix::validate_object(&v).is_ok(), "{file}");
    }
    // The extension definition's schema lists the same ids (PAP:WHITE for CLEAR, the name
    // it had when the schema was written).
    let bytes = std::fs::read(format!(
        "{DATA}/extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b.json"
    ))
    .unwrap();
    assert_eq!(
        hex(&sha2::Sha256::digest(&bytes)),
        "fc23bdb2fee4373d1d79426056cd3c08bdff7272e746229d1daf498be7856a6d"
    );
    let schema: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        schema["$id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{PAP_EXTENSION_ID}.json"))
    );
    let defs = &schema["allOf"][4]["defs"];
    for (key, id) in [
        ("pap_white", PAP_WHITE_ID),
        ("pap_green", PAP_GREEN_ID),
        ("pap_amber", PAP_AMBER_ID),
        ("pap_red", PAP_RED_ID),
    ] {
        assert_eq!(defs[key]["properties"]["id"]["enum"][0], id, "{key}");
    }
    assert_eq!(Pap::from_marking_id(PAP_WHITE_ID), Some(Pap::Clear));
    assert_eq!(
        Pap::from_marking_id("marking-definition--00000000-0000-4000-8000-000000000000"),
        None
    );
}

const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

fn indicator(markings: &[&str]) -> String {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
        "created_by_ref": "identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12",
        "pattern": "[domain-name:value = 'c2.example.com']", "pattern_type": "stix",
        "valid_from": "2016-01-01T00:00:00Z", "object_marking_refs": markings,
    })
    .to_string()
}

fn policy(agreements: BTreeMap<String, Agreement>) -> Policy {
    Policy::new(
        PolicyConfig {
            jurisdiction: Some("CN".into()),
            agreements,
            ..PolicyConfig::default()
        },
        PseudonymKeys {
            node_secret: Some(vec![7; 32]),
            ..PseudonymKeys::default()
        },
    )
    .unwrap()
}

fn bsi() -> PartnerProfile {
    PartnerProfile {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu".into()],
    }
}

const NOW: i64 = 1_780_000_000_000_000_000; // 2026-05-28

fn decide(policy: &Policy, body: &str, door: &str, now_ns: i64) -> Decision {
    let sharing = CollectionSharing {
        default_tlp: Tlp::Clear,
        ..CollectionSharing::default()
    };
    egress(
        body,
        &EgressContext {
            sharing: &sharing,
            partner: &bsi(),
            policy,
            markings: &Markings::default(),
            door,
            now_ns,
        },
    )
}

fn withheld(d: &Decision) -> &str {
    match d {
        Decision::Withheld { reason } => reason,
        other => panic!("withheld expected: {other:?}"),
    }
}

/// PAP with the OASIS ids: known without the definitions being held; at an automated door,
/// stricter than the agreement's `pap_automated` (default AMBER) does not go; a door a person
/// reads carries it.
#[test]
fn pap_gates_the_automated_doors() {
    let none = policy(BTreeMap::new());
    let automated = [
        "feed-suricata",
        "feed-rpz",
        "webhook",
        "stream",
        "api-match",
    ];
    for door in automated {
        let r = withheld(&decide(&none, &indicator(&[GREEN, PAP_RED_ID]), door, NOW)).to_owned();
        assert!(
            r.contains("PAP:RED") && r.contains("default"),
            "{door}: {r}"
        );
        for ok in [PAP_CLEAR_ID, PAP_GREEN_ID, PAP_AMBER_ID] {
            assert_eq!(
                decide(&none, &indicator(&[GREEN, ok]), door, NOW),
                Decision::Unchanged,
                "{door} {ok}"
            );
        }
    }
    for door in ["taxii-objects", "export", "sync-push", "web-object"] {
        assert_eq!(
            decide(&none, &indicator(&[GREEN, PAP_RED_ID]), door, NOW),
            Decision::Unchanged,
            "{door}"
        );
    }
    // An agreement narrows it to GREEN, or lets RED through.
    let mut a = BTreeMap::new();
    a.insert(
        "eu".to_owned(),
        Agreement {
            groups: vec!["eu".into()],
            pap_automated: Pap::Green,
            ..Agreement::default()
        },
    );
    let green = policy(a.clone());
    let r = withheld(&decide(&green, &indicator(&[PAP_AMBER_ID]), "webhook", NOW)).to_owned();
    assert!(r.contains("agreement eu's pap_automated"), "{r}");
    a.get_mut("eu").unwrap().pap_automated = Pap::Red;
    let red = policy(a);
    assert_eq!(
        decide(&red, &indicator(&[PAP_RED_ID]), "feed-zeek", NOW),
        Decision::Unchanged
    );
}

#[test]
fn nothing_flows_outside_the_agreements_period_by_any_door() {
    let mut a = BTreeMap::new();
    a.insert(
        "bilateral".to_owned(),
        Agreement {
            partners: vec!["bsi".into()],
            start_date: Some("2026-01-01T00:00:00Z".into()),
            end_date: Some("2026-12-31T00:00:00Z".into()),
            ..Agreement::default()
        },
    );
    let p = policy(a);
    let tlp_definition = serde_json::json!({
        "type": "marking-definition", "spec_version": "2.1", "id": GREEN,
        "created": "2022-10-01T00:00:00.000Z", "name": "TLP:GREEN",
        "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":
            {"extension_type": "property-extension", "tlp_2_0": "green"}},
    })
    .to_string();
    let after = 1_800_000_000_000_000_000; // 2027-01-15
    let before = 1_760_000_000_000_000_000; // 2025-10-09
    for door in [
        "taxii-objects",
        "export",
        "sync-push",
        "webhook",
        "feed-rpz",
        "web-list",
    ] {
        assert_eq!(
            decide(&p, &indicator(&[GREEN]), door, NOW),
            Decision::Unchanged
        );
        for body in [indicator(&[GREEN]), tlp_definition.clone()] {
            let r = withheld(&decide(&p, &body, door, after)).to_owned();
            assert!(
                r.contains("agreement bilateral") && r.contains("ended at 2026-12-31T00:00:00Z"),
                "{r}"
            );
            let r = withheld(&decide(&p, &body, door, before)).to_owned();
            assert!(r.contains("start_date"), "{r}");
        }
    }
}

#[test]
fn attribution_must_not_removes_the_producer() {
    let mut a = BTreeMap::new();
    a.insert(
        "anon".to_owned(),
        Agreement {
            partners: vec!["bsi".into()],
            attribution: Attribution::MustNot,
            ..Agreement::default()
        },
    );
    let p = policy(a);
    let Decision::Rewritten { body, changes, .. } =
        decide(&p, &indicator(&[GREEN]), "taxii-objects", NOW)
    else {
        panic!("rewritten expected")
    };
    let copy: Value = serde_json::from_str(&body).unwrap();
    assert!(copy.get("created_by_ref").is_none());
    assert!(concord_stix::validate_object(&copy).is_ok());
    assert_eq!(
        changes,
        ["removed created_by_ref (agreement anon: IEP 2.0 attribution must-not)"]
    );
    let identity = |class: &str| {
        serde_json::json!({
            "type": "identity", "spec_version": "2.1",
            "id": "identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12",
            "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
            "name": "CNCERT", "identity_class": class, "object_marking_refs": [GREEN],
        })
        .to_string()
    };
    let r = withheld(&decide(&p, &identity("organization"), "taxii-objects", NOW)).to_owned();
    assert!(r.contains("attribution must-not"), "{r}");
    // A sector (a class of entities) names no producer.
    assert_eq!(
        decide(&p, &identity("class"), "taxii-objects", NOW),
        Decision::Unchanged
    );
    // Without the agreement: as stored.
    assert_eq!(
        decide(
            &policy(BTreeMap::new()),
            &indicator(&[GREEN]),
            "taxii-objects",
            NOW
        ),
        Decision::Unchanged
    );
}

#[test]
fn permitted_actions_close_automated_doors_and_explain_names_the_clause() {
    let mut a = BTreeMap::new();
    a.insert(
        "ask-first".to_owned(),
        Agreement {
            groups: vec!["eu".into()],
            permitted_actions: PermittedActions::ContactForInstruction,
            legal_basis: Some("CAC standard contract filed 2026-03-02".into()),
            transfer_mechanism: Some(TransferMechanism::PiplStandardContract),
            ..Agreement::default()
        },
    );
    let p = policy(a);
    assert_eq!(
        decide(&p, &indicator(&[GREEN]), "taxii-objects", NOW),
        Decision::Unchanged
    );
    for door in ["webhook", "stream", "api-match", "feed-suricata"] {
        let r = withheld(&decide(&p, &indicator(&[GREEN]), door, NOW)).to_owned();
        assert!(r.contains("contact-for-instruction"), "{door}: {r}");
    }
    let sharing = CollectionSharing::default();
    let partner = bsi();
    let markings = Markings::default();
    let cx = |door| EgressContext {
        sharing: &sharing,
        partner: &partner,
        policy: &p,
        markings: &markings,
        door,
        now_ns: NOW,
    };
    let e = explain(&indicator(&[GREEN]), &cx("webhook"));
    assert_eq!(e.steps[0].rule, "agreement");
    assert!(
        e.steps[0].detail.contains("permitted_actions"),
        "{:?}",
        e.steps
    );
    let e = explain(&indicator(&[GREEN]), &cx("taxii-objects"));
    assert_eq!(e.steps[0].rule, "agreement");
    assert!(
        e.steps[0]
            .detail
            .contains("agreement ask-first applies to bsi")
            && e.steps[0].detail.contains("pipl-standard-contract")
            && e.steps[0].detail.contains("CAC standard contract"),
        "{:?}",
        e.steps
    );
}

/// A change of agreement is a new policy version; a policy without agreements keeps the
/// version it had before agreements existed.
#[test]
fn an_agreement_changes_the_policy_version() {
    let plain = policy(BTreeMap::new());
    let json = serde_json::to_string(&plain.config).unwrap();
    assert!(!json.contains("agreements"), "{json}");
    let mut a = BTreeMap::new();
    a.insert(
        "x".to_owned(),
        Agreement {
            partners: vec!["bsi".into()],
            ..Agreement::default()
        },
    );
    let one = policy(a.clone());
    a.get_mut("x").unwrap().legal_basis = Some("GDPR adequacy".into());
    let two = policy(a);
    assert_ne!(plain.version, one.version);
    assert_ne!(one.version, two.version);
    // What `[policy.agreements.x]` in concord.toml reads as; unknown keys are refused.
    let c: PolicyConfig = serde_json::from_str(
        r#"{"agreements": {"x": {"partners": ["bsi"], "attribution": "must-not",
            "encrypt_in_transit": "must", "pap_automated": "white",
            "transfer_mechanism": "gdpr-scc"}}}"#,
    )
    .unwrap();
    let x = &c.agreements["x"];
    assert!(x.requires_encryption());
    assert_eq!(x.pap_automated, Pap::Clear);
    assert!(
        serde_json::from_str::<PolicyConfig>(r#"{"agreements": {"x": {"partner": ["bsi"]}}}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}
