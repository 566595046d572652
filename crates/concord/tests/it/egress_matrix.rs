//! The egress matrix (issue 5, "Tests"): partners × markings × data categories × doors. One
//! node in CN with a `[policy]` section in concord.toml; five partners at home, abroad,
//! with a partner rule, and without read permission; 49 notes (7 markings × 7 payloads).
//! Through every door (TAXII objects paged, object, versions, manifest, and export) each
//! partner receives exactly what an oracle written here from the rules allows, and no raw
//! personal value reaches a partner whose policy rewrites or drops it. The transfers are
//! audited with the policy version, `policy explain` agrees with what was sent, and
//! `stix2-validator` accepts the rewritten copies.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::support::{Node, Server, TAXII, concord, run};

const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

const POLICY: &str = r#"
[policy]
policy_version = "matrix-1"
[policy.cross_border]
default = "redact"
categories = { email = "pseudonymise", payment_card = "drop" }
[policy.partners.acme]
default = "allow"
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Marking {
    Clear,
    Green,
    Amber,
    Strict,
    Red,
    /// No TLP marking: the collection's default (AMBER).
    Unmarked,
    /// GREEN and the node's important-data marking.
    Important,
}

const MARKINGS: [Marking; 7] = [
    Marking::Clear,
    Marking::Green,
    Marking::Amber,
    Marking::Strict,
    Marking::Red,
    Marking::Unmarked,
    Marking::Important,
];

/// (category, raw value written into the note, what a redacted copy holds instead).
const PAYLOADS: [(&str, &str, &str); 7] = [
    ("none", "nothing personal", "nothing personal"),
    ("email", "victim.one@example.org", "pseudo-"),
    ("phone", "+86 138 1234 5678", "[REDACTED:phone]"),
    ("payment_card", "4111 1111 1111 1111", ""),
    ("iban", "DE89 3704 0044 0532 0130 00", "[REDACTED:iban]"),
    (
        "national_id",
        "11010519491231002X",
        "[REDACTED:national_id]",
    ),
    ("ip_address", "81.2.69.160", "[REDACTED:ip_address]"),
];

struct PartnerSpec {
    name: &'static str,
    jurisdiction: &'static str,
    groups: &'static [&'static str],
    read: bool,
}

const PARTNERS: [PartnerSpec; 5] = [
    PartnerSpec {
        name: "cncert",
        jurisdiction: "CN",
        groups: &["asia"],
        read: true,
    },
    PartnerSpec {
        name: "bsi",
        jurisdiction: "DE",
        groups: &["eu-cert"],
        read: true,
    },
    PartnerSpec {
        name: "anssi",
        jurisdiction: "FR",
        groups: &["eu-cert"],
        read: true,
    },
    PartnerSpec {
        name: "acme",
        jurisdiction: "US",
        groups: &["industry"],
        read: true,
    },
    PartnerSpec {
        name: "outsider",
        jurisdiction: "DE",
        groups: &["eu-cert"],
        read: false,
    },
];

/// The id of the note for a marking and a payload: `note--0000MMPP-…`.
fn note_id(m: usize, p: usize) -> String {
    format!("note--0000{m:02}{p:02}-8ff6-4a8b-9c2f-6e5a3b1f0d11")
}

/// The oracle: what `partner` must receive of the note (marking, payload): `None` nothing,
/// `Some(true)` the raw value, `Some(false)` a rewritten copy.
fn expected(partner: &PartnerSpec, marking: Marking, category: &str) -> Option<bool> {
    if !partner.read {
        return None;
    }
    let green = partner
        .groups
        .iter()
        .any(|g| ["eu-cert", "asia"].contains(g));
    let named = ["bsi", "cncert"].contains(&partner.name);
    let domestic = partner.jurisdiction == "CN";
    let tlp_ok = match marking {
        Marking::Clear => true,
        Marking::Green => green,
        // Recipients: bsi, cncert and `group:eu-cert`.
        Marking::Amber | Marking::Unmarked => named || partner.groups.contains(&"eu-cert"),
        // AMBER+STRICT: the named organisations alone.
        Marking::Strict => named,
        Marking::Red => false,
        Marking::Important => green && domestic,
    };
    if !tlp_ok {
        return None;
    }
    let allowed = domestic || partner.name == "acme" || category == "none";
    if !allowed && category == "payment_card" {
        return None; // drop
    }
    Some(allowed)
}

fn cli(node: &Node, args: &[&str]) -> (i32, String, String) {
    let out = run(concord().args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(node: &Node, args: &[&str]) -> String {
    let (code, out, err) = cli(node, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn get(s: &Server, key: &str, path: &str) -> crate::support::Reply {
    let auth = format!("Bearer {key}");
    s.request(
        "GET",
        path,
        &[("Authorization", &auth), ("Accept", TAXII)],
        None,
    )
}

const BASE: &str = "/concord/collections/matrix";

/// What one door gave a partner: note id → content (`None` where the door has no bodies),
/// and the raw text of every response, to search for leaks.
#[derive(Default)]
struct Seen {
    notes: BTreeMap<String, Option<String>>,
    text: String,
}

fn through_objects(s: &Server, key: &str) -> Seen {
    let mut seen = Seen::default();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("{BASE}/objects/?match[type]=note&limit=10");
        if let Some(n) = &next {
            path.push_str(&format!("&next={n}"));
        }
        let r = get(s, key, &path);
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        for o in page["objects"].as_array().into_iter().flatten() {
            let id = o["id"].as_str().unwrap().to_owned();
            let content = o["content"].as_str().map(str::to_owned);
            assert!(seen.notes.insert(id, content).is_none(), "duplicate");
        }
        seen.text.push_str(&r.body);
        match page["next"].as_str() {
            Some(n) if page["more"] == true => next = Some(n.to_owned()),
            _ => break,
        }
    }
    seen
}

fn through_manifest(s: &Server, key: &str) -> Seen {
    let r = get(
        s,
        key,
        &format!("{BASE}/manifest/?match[type]=note&limit=100"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut seen = Seen::default();
    for o in r.json()["objects"].as_array().into_iter().flatten() {
        seen.notes
            .insert(o["id"].as_str().unwrap().to_owned(), None);
    }
    seen.text = r.body;
    seen
}

/// One request per note: `objects/{id}/` (bodies) or `objects/{id}/versions/`.
fn through_each(s: &Server, key: &str, versions: bool) -> Seen {
    let mut seen = Seen::default();
    for m in 0..MARKINGS.len() {
        for p in 0..PAYLOADS.len() {
            let id = note_id(m, p);
            let path = if versions {
                format!("{BASE}/objects/{id}/versions/")
            } else {
                format!("{BASE}/objects/{id}/")
            };
            let r = get(s, key, &path);
            assert!(r.status == 200 || r.status == 404, "{path}: {}", r.body);
            if r.status == 200 {
                let v = r.json();
                let content = v["objects"][0]["content"].as_str().map(str::to_owned);
                if versions {
                    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{}", r.body);
                }
                seen.notes.insert(id, content);
            }
            seen.text.push_str(&r.body);
        }
    }
    seen
}

fn through_export(node: &Node, partner: &str) -> Option<Seen> {
    let (code, out, err) = cli(
        node,
        &["export", "--collection", "matrix", "--partner", partner],
    );
    if code != 0 {
        assert!(err.contains("may not read"), "{err}");
        return None;
    }
    let bundle: Value = serde_json::from_str(&out).unwrap();
    let mut seen = Seen::default();
    for o in bundle["objects"].as_array().unwrap() {
        if o["type"] == "note" {
            seen.notes.insert(
                o["id"].as_str().unwrap().to_owned(),
                o["content"].as_str().map(str::to_owned),
            );
        }
    }
    seen.text = out;
    Some(seen)
}

#[test]
fn nothing_reaches_a_partner_that_the_policy_forbids() {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let config = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n{POLICY}")).unwrap();

    // The node's own important-data marking: created on first use, stable afterwards.
    let marking: Value = serde_json::from_str(&cli_ok(&node, &["policy", "marking"])).unwrap();
    let important = marking["id"].as_str().unwrap().to_owned();
    assert!(important.starts_with("marking-definition--"));
    assert_eq!(
        serde_json::from_str::<Value>(&cli_ok(&node, &["policy", "marking"])).unwrap(),
        marking
    );
    concord_stix::validate_object(&marking).unwrap();

    let mut objects = vec![marking.clone()];
    for (m, marking) in MARKINGS.iter().enumerate() {
        let refs: Vec<&str> = match marking {
            Marking::Clear => vec![CLEAR],
            Marking::Green => vec![GREEN],
            Marking::Amber => vec![AMBER],
            Marking::Strict => vec![STRICT],
            Marking::Red => vec![RED],
            Marking::Unmarked => vec![],
            Marking::Important => vec![GREEN, &important],
        };
        for (p, (_, raw, _)) in PAYLOADS.iter().enumerate() {
            let mut note = json!({
                "type": "note", "spec_version": "2.1", "id": note_id(m, p),
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                "content": format!("Contact: {raw}."),
                "object_refs": ["identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"],
            });
            if !refs.is_empty() {
                note["object_marking_refs"] = json!(refs);
            }
            objects.push(note);
        }
    }
    let bundle = json!({"type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d13",
                        "objects": objects});
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("matrix.json");
    std::fs::write(&f, bundle.to_string()).unwrap();
    let (code, report) = node.import("matrix", &[&f]);
    assert_eq!(code, 0, "{report}");
    cli_ok(
        &node,
        &[
            "collection",
            "share",
            "matrix",
            "--group",
            "eu-cert",
            "--group",
            "asia",
            "--recipient",
            "bsi",
            "--recipient",
            "cncert",
            "--recipient",
            "group:eu-cert",
        ],
    );
    let mut keys = BTreeMap::new();
    for p in &PARTNERS {
        let mut args = vec![
            "partner",
            "add",
            p.name,
            "--jurisdiction",
            p.jurisdiction,
            "--json",
        ];
        for g in p.groups {
            args.extend(["--group", g]);
        }
        if p.read {
            args.extend(["--read", "matrix"]);
        }
        let doc: Value = serde_json::from_str(&cli_ok(&node, &args)).unwrap();
        keys.insert(p.name, doc["api_key"].as_str().unwrap().to_owned());
    }

    let s = node.serve();
    let mut cells = 0;
    for p in &PARTNERS {
        let key = &keys[p.name];
        if !p.read {
            // No read permission: the collection is not even visible, and export refuses.
            let r = get(&s, key, &format!("{BASE}/objects/"));
            assert!(r.status == 403 || r.status == 404, "{}", r.body);
            assert!(through_export(&node, p.name).is_none());
            continue;
        }
        let doors = [
            ("objects", through_objects(&s, key)),
            ("manifest", through_manifest(&s, key)),
            ("object", through_each(&s, key, false)),
            ("versions", through_each(&s, key, true)),
            ("export", through_export(&node, p.name).expect("export")),
        ];
        for (door, seen) in &doors {
            let mut want = BTreeSet::new();
            for (m, marking) in MARKINGS.iter().enumerate() {
                for (i, (category, raw, redacted)) in PAYLOADS.iter().enumerate() {
                    cells += 1;
                    let id = note_id(m, i);
                    let expect = expected(p, *marking, category);
                    if expect.is_some() {
                        want.insert(id.clone());
                    }
                    // Whatever the door: a value the policy never lets this partner see
                    // raw (under any marking) appears nowhere in what it received.
                    let ever_raw = MARKINGS
                        .iter()
                        .any(|m| expected(p, *m, category) == Some(true));
                    if !ever_raw {
                        assert!(
                            !seen.text.contains(raw),
                            "{} received {raw:?} ({category}, {marking:?}) through {door}",
                            p.name
                        );
                    }
                    let Some(Some(content)) = seen.notes.get(&id) else {
                        continue;
                    };
                    match expect {
                        Some(true) => assert_eq!(content, &format!("Contact: {raw}.")),
                        Some(false) => assert!(
                            content.starts_with(&format!("Contact: {redacted}")),
                            "{} {door} {category}: {content}",
                            p.name
                        ),
                        None => {}
                    }
                }
            }
            let got: BTreeSet<String> = seen.notes.keys().cloned().collect();
            assert_eq!(got, want, "{} through {door}", p.name);
        }
    }
    assert!(cells >= 4 * 5 * 49, "{cells}");

    // Every transfer is audited with the version of the policy that decided it.
    let shown: Value = serde_json::from_str(&cli_ok(&node, &["policy", "show", "--json"])).unwrap();
    let version = shown["version"].as_str().unwrap();
    assert!(version.starts_with("matrix-1@"), "{version}");
    assert_eq!(shown["policy"]["jurisdiction"], "CN");
    assert!(
        shown["policy"]["important_data_markings"]
            .as_array()
            .unwrap()
            .contains(&json!(important))
    );
    let audit: Value = serde_json::from_str(&cli_ok(
        &node,
        &[
            "audit",
            "show",
            "--partner",
            "bsi",
            "--limit",
            "100000",
            "--json",
        ],
    ))
    .unwrap();
    let entries = audit.as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        assert_eq!(e["policy_version"], version, "{e}");
    }
    let withheld_important = entries.iter().any(|e| {
        e["decision"] == "withheld"
            && e["transformations"][0]
                .as_str()
                .is_some_and(|t| t.contains("important data"))
    });
    assert!(
        withheld_important,
        "no audit entry names the important-data rule"
    );
    // The recorded version can be looked up later.
    let old: Value = serde_json::from_str(&cli_ok(
        &node,
        &["policy", "show", "--version", version, "--json"],
    ))
    .unwrap();
    assert_eq!(old["policy"], shown["policy"]);

    // `policy explain` says what was sent and why.
    let email_green = note_id(1, 1);
    let (code, out, err) = cli(
        &node,
        &[
            "policy",
            "explain",
            "--partner",
            "bsi",
            &email_green,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let x: Value = serde_json::from_str(&out).unwrap();
    let c = &x["collections"][0];
    assert_eq!(c["decision"], "rewritten");
    let sent = through_each(&s, &keys["bsi"], false);
    assert_eq!(
        c["body"]["content"].as_str(),
        sent.notes[&email_green].as_deref()
    );
    let rules: Vec<&str> = c["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules[0], "permission");
    assert!(rules.contains(&"personal-data") && rules.contains(&"tlp"));
    let important_note = note_id(6, 0);
    let (code, out, _) = cli(
        &node,
        &["policy", "explain", "--partner", "bsi", &important_note],
    );
    assert_eq!(code, 1, "withheld: exit 1\n{out}");
    assert!(out.contains("important data"), "{out}");

    // The copies partners receive validate with the ecosystem's reference validator.
    if let Some(python) = crate::interop::python() {
        let url = format!("{}/taxii2/", s.base);
        for name in ["bsi", "acme"] {
            let (_, summary) = crate::interop::run_check(
                &python,
                &[
                    "validate",
                    "--url",
                    &url,
                    "--user",
                    name,
                    "--password",
                    &keys[name],
                    "--collection",
                    "matrix",
                ],
            );
            let c = &summary["collections"]["matrix"];
            assert!(c["validated"].as_u64().unwrap() > 0, "{summary}");
            assert_eq!(c["errors"], 0, "{name}: {summary}");
        }
    }
}

/// A refused `[policy]` stops the node before anything leaves, naming the key.
#[test]
fn a_bad_policy_section_is_refused_with_its_key() {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let config = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let cases = [
        (
            "[policy.cross_border]\ncategories = { email = \"shred\" }\n",
            "shred",
        ),
        (
            "[policy]\nimportant_data_markings = [\"x\"]\n",
            "important_data_markings",
        ),
        (
            "[policy]\njurisdiction = \"DE\"\n",
            "differs from the node's \"CN\"",
        ),
        ("[policy]\nretention = 3\n", "retention"),
    ];
    for (section, needle) in cases {
        std::fs::write(&config, format!("{text}\n{section}")).unwrap();
        for args in [
            &["policy", "show"][..],
            &["serve", "--listen", "127.0.0.1:0"],
        ] {
            let (code, _, err) = cli(&node, args);
            assert_eq!(code, 2, "{section}: {args:?}");
            assert!(err.contains(needle), "{section}: {args:?}: {err}");
        }
    }
}

/// Issue 15 items 3 and 7 through the CLI: under the default policy an indicator's IP
/// addresses and an `ipv4-addr` go to a partner across a border as written (and `policy
/// explain` names the rule), people's data does not; one uncommented line of the
/// concord.toml that `init` writes protects the indicators too, and then every pseudonym is
/// of its value's type: the export for the partner passes this node's validator and
/// stix2-validator.
#[test]
fn infrastructure_by_default_and_typed_pseudonyms_one_line_away() {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let indicator = "indicator--0f4a1c0e-2b8e-4f0e-9d6a-7c3b5e1f2a40";
    let bundle = json!({"type": "bundle", "id": "bundle--1f4a1c0e-2b8e-4f0e-9d6a-7c3b5e1f2a41",
    "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": indicator,
         "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
         "pattern": "[ipv4-addr:value = '81.2.69.160'] OR [ipv4-addr:value ISSUBSET '45.33.32.0/24'] OR [email-addr:value = 'grace@corp.cn']",
         "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z",
         "object_marking_refs": [CLEAR]},
        {"type": "ipv4-addr", "spec_version": "2.1",
         "id": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", "value": "198.51.100.3",
         "object_marking_refs": [CLEAR]},
        {"type": "ipv6-addr", "spec_version": "2.1",
         "id": "ipv6-addr--58a8e237-ab8a-52a8-9760-a7bed6e5e467", "value": "2a03:2880:f12f:83::25de",
         "object_marking_refs": [CLEAR]},
        {"type": "email-addr", "spec_version": "2.1",
         "id": "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934", "value": "john@example.com",
         "object_marking_refs": [CLEAR]},
        {"type": "note", "spec_version": "2.1",
         "id": "note--2f4a1c0e-2b8e-4f0e-9d6a-7c3b5e1f2a42",
         "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
         "content": "Victim ｅｖｅ＠corp.cn, home router 91[.]198[.]174[.]192",
         "object_refs": [indicator], "x_phone": 8613800138001u64,
         "x_map": {"grace@corp.cn": "victim"}, "object_marking_refs": [CLEAR]}
    ]});
    let file = node.path().join("typed.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    let (code, out) = node.import("typed", &[file.as_path()]);
    assert_eq!(code, 0, "{out}");
    cli_ok(
        &node,
        &[
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "DE",
            "--read",
            "typed",
        ],
    );
    let export = |name: &str| -> (std::path::PathBuf, Vec<Value>) {
        let path = node.path().join(name);
        cli_ok(
            &node,
            &[
                "export",
                "--collection",
                "typed",
                "--partner",
                "bsi",
                "-o",
                path.to_str().unwrap(),
            ],
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        (path, v["objects"].as_array().unwrap().clone())
    };
    let by_type = |objects: &[Value], t: &str| -> Value {
        objects.iter().find(|o| o["type"] == t).unwrap().clone()
    };
    // The default: infrastructure as written, people protected.
    let (_, objects) = export("default.json");
    let pattern = by_type(&objects, "indicator")["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        pattern.contains("'81.2.69.160'") && pattern.contains("'45.33.32.0/24'"),
        "{pattern}"
    );
    assert!(!pattern.contains("grace@corp.cn"), "{pattern}");
    assert_eq!(by_type(&objects, "ipv4-addr")["value"], "198.51.100.3");
    let note = by_type(&objects, "note").to_string();
    for raw in [
        "ｅｖｅ＠corp.cn",
        "91[.]198[.]174[.]192",
        "8613800138001",
        "grace@corp.cn",
    ] {
        assert!(!note.contains(raw), "{raw} in {note}");
    }
    let explained = cli_ok(&node, &["policy", "explain", "--partner", "bsi", indicator]);
    assert!(
        explained.contains("infrastructure_indicators = allow"),
        "{explained}"
    );
    // One line of the written concord.toml away: the stricter rule.
    let config = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = "# policy.infrastructure_indicators = \"protect\"";
    assert!(text.contains(line), "the commented line is in concord.toml");
    std::fs::write(&config, text.replace(line, &line[2..])).unwrap();
    let shown: Value = serde_json::from_str(&cli_ok(&node, &["policy", "show", "--json"])).unwrap();
    assert!(shown.to_string().contains("\"protect\""), "{shown}");
    let (path, objects) = export("strict.json");
    let ip4: std::net::Ipv4Addr = by_type(&objects, "ipv4-addr")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ip4.octets()[0] & 0xF0, 240, "{ip4}");
    let ip6: std::net::Ipv6Addr = by_type(&objects, "ipv6-addr")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ip6.segments()[..2], [0x2001, 0x0db8], "{ip6}");
    let mail = by_type(&objects, "email-addr")["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mail.ends_with("@pseudonym.invalid"), "{mail}");
    let pattern = by_type(&objects, "indicator")["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !pattern.contains("81.2.69.160") && !pattern.contains("45.33.32.0"),
        "{pattern}"
    );
    concord_pattern::parse(&pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}"));
    for o in &objects {
        concord_stix::validate_object(o).unwrap_or_else(|e| panic!("{e:?}: {o}"));
    }
    if let Some(python) = crate::interop::python() {
        let out = run(std::process::Command::new(&python).args([
            "-c",
            "import sys\nfrom stix2validator import validate_file, print_results\n\
             r = validate_file(sys.argv[1])\nprint_results(r)\nsys.exit(0 if r.is_valid else 1)",
            path.to_str().unwrap(),
        ]));
        assert!(
            out.status.success(),
            "stix2-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
