//! The leak suite (issue 15, item 8): partners × markings × placements of personal data ×
//! doors. One node in CN holds a collection with every marking form (TLP 1.0 and 2.0 under
//! their canonical ids, TLP by content under producer ids in both forms, granular markings,
//! the node's important-data marking, mixed markings, a marking that cannot be resolved) and
//! personal data in every placement (prose, dictionary keys, numbers, defanged and full-width
//! forms, SCO values referenced from other pages, duplicate member names refused at import).
//! Six partners read it through every door: TAXII objects (limit 1 following `next`, limit
//! 1000), manifest, versions, single objects, `concord export` (STIX and MISP), a push to a
//! real second node, the web UI logged in as the partner (pages, search, object pages,
//! graphs), `POST /api/match`, the live stream (batches of 1 and the default), every
//! feed format and a webhook of each partner to a real receiver on loopback (issue 21). Every byte a partner receives — bodies, headers, `next`
//! tokens and their base64-decoded bytes — is searched for what it must not get (raw
//! personal values across the border, the stored ids of withheld and renamed objects,
//! withheld content), and what it must get is asserted to arrive.
//!
//! A second test attacks the door as a partner holding a key would: forged, edited,
//! truncated and foreign `next` tokens, the stored id of a pseudonymised SCO in
//! `match[id]`, and "exists but withheld" against "does not exist" on every door that
//! answers about one object.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Node, Reply, Server, TAXII, concord, run};

/// Placements of personal data that the detectors of issue 15 item 5 (dictionary keys,
/// numbers, defanged forms, NFKC) find; they are developed on another branch. The cases are
/// built and sent through every door today; the "raw value never crosses the border"
/// assertion is switched on for them with [`DETECTORS_MERGED`] once that branch is merged.
const DETECTOR_DEPENDENT: &[&str] = &[
    "dict-key",
    "number",
    "defanged-email",
    "defanged-ip",
    "full-width",
];
/// Set to `true` after the detectors of issue 15 item 5 are merged.
const DETECTORS_MERGED: bool = true;

/// The suite's policy: the stricter rule for infrastructure (README, "The egress policy":
/// one line away from the default), so that IP addresses in SCOs and patterns are personal
/// data here too and every placement of one is checked for leaks.
const POLICY: &str = r#"
[policy]
policy_version = "leak-1"
infrastructure_indicators = "protect"
[policy.cross_border]
default = "redact"
categories = { email = "pseudonymise" }
"#;

const COLL: &str = "leak";
const BASE: &str = "/concord/collections/leak";

// TLP 1.0 and 2.0 canonical marking definitions.
const TLP1_WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const TLP1_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const TLP1_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const TLP1_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
// A producer's own ids for TLP, recognised by content.
const P_RED_1: &str = "marking-definition--a1a1a1a1-0000-4000-8000-000000000001";
const P_RED_2: &str = "marking-definition--a1a1a1a1-0000-4000-8000-000000000002";
const P_CLEAR_2: &str = "marking-definition--a1a1a1a1-0000-4000-8000-000000000003";
const P_GREEN_1: &str = "marking-definition--a1a1a1a1-0000-4000-8000-000000000004";
/// Referenced, never defined: cannot be resolved, so withheld.
const UNKNOWN: &str = "marking-definition--a1a1a1a1-0000-4000-8000-0000000000ff";
const IMPORTANT: &str = "@important";

const IDENTITY: &str = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5";

/// The effective TLP of a marking case, for the oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Clear,
    Green,
    Amber,
    Strict,
    /// Never leaves (RED, unresolvable, mixed with RED).
    Never,
    /// GREEN and important data: domestic community members only.
    Important,
}

/// (name, marking refs, level).
const MARKINGS: &[(&str, &[&str], Level)] = &[
    ("tlp1-white", &[TLP1_WHITE], Level::Clear),
    ("tlp1-green", &[TLP1_GREEN], Level::Green),
    ("tlp1-amber", &[TLP1_AMBER], Level::Amber),
    ("tlp1-red", &[TLP1_RED], Level::Never),
    ("tlp2-clear", &[CLEAR], Level::Clear),
    ("tlp2-green", &[GREEN], Level::Green),
    ("tlp2-amber", &[AMBER], Level::Amber),
    ("tlp2-amber-strict", &[STRICT], Level::Strict),
    ("tlp2-red", &[RED], Level::Never),
    ("producer-tlp1-red", &[P_RED_1], Level::Never),
    ("producer-tlp2-red", &[P_RED_2], Level::Never),
    ("producer-tlp2-clear", &[P_CLEAR_2], Level::Clear),
    ("producer-tlp1-green", &[P_GREEN_1], Level::Green),
    ("important-data", &[GREEN, IMPORTANT], Level::Important),
    ("mixed-clear-red", &[CLEAR, RED], Level::Never),
    ("mixed-clear-producer-red", &[CLEAR, P_RED_2], Level::Never),
    ("mixed-green-amber", &[GREEN, AMBER], Level::Amber),
    ("unresolvable", &[UNKNOWN], Level::Never),
    ("unresolvable-with-clear", &[CLEAR, UNKNOWN], Level::Never),
];

struct Partner {
    name: &'static str,
    jurisdiction: &'static str,
    groups: &'static [&'static str],
    read: bool,
    write: bool,
}

const PARTNERS: &[Partner] = &[
    // Domestic, community member (asia) and named recipient: raw personal data.
    Partner {
        name: "cncert",
        jurisdiction: "CN",
        groups: &["asia"],
        read: true,
        write: true,
    },
    // Abroad, community member, reads and writes.
    Partner {
        name: "bsi",
        jurisdiction: "DE",
        groups: &["asia"],
        read: true,
        write: true,
    },
    // Abroad, read-only, no community.
    Partner {
        name: "jpcert",
        jurisdiction: "JP",
        groups: &[],
        read: true,
        write: false,
    },
    // Write-only.
    Partner {
        name: "inbox",
        jurisdiction: "DE",
        groups: &["eu-cert"],
        read: false,
        write: true,
    },
    // A member of a recipient group (`group:eu-cert`).
    Partner {
        name: "anssi",
        jurisdiction: "FR",
        groups: &["eu-cert"],
        read: true,
        write: false,
    },
    // A named recipient, outside every community.
    Partner {
        name: "acme",
        jurisdiction: "US",
        groups: &[],
        read: true,
        write: false,
    },
];

impl Partner {
    fn domestic(&self) -> bool {
        self.jurisdiction == "CN"
    }
    fn community(&self) -> bool {
        self.groups.iter().any(|g| ["asia", "eu-cert"].contains(g))
    }
    fn named(&self) -> bool {
        ["cncert", "acme"].contains(&self.name)
    }
    fn receives(&self, level: Level) -> bool {
        self.read
            && match level {
                Level::Clear => true,
                Level::Green => self.community(),
                Level::Amber => self.named() || self.groups.contains(&"eu-cert"),
                Level::Strict => self.named(),
                Level::Never => false,
                Level::Important => self.community() && self.domestic(),
            }
    }
}

fn marking_note_id(i: usize) -> String {
    format!("note--1000{i:04}-8ff6-4a8b-9c2f-6e5a3b1f0d11")
}
fn marking_canary(i: usize) -> String {
    format!("CANARY-MARKING-{i:02}-{}", MARKINGS[i].0)
}

/// (placement, raw value, the object carrying it). Every carrier is CLEAR.
fn placements() -> Vec<(&'static str, &'static str, Value)> {
    let note = |n: u32, extra: Value| {
        let mut o = json!({"type": "note", "spec_version": "2.1",
            "id": format!("note--2000{n:04}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "content": format!("placement {n}"), "object_refs": [IDENTITY],
            "object_marking_refs": [CLEAR]});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    vec![
        (
            "prose",
            "grace.prose@corp.cn",
            note(
                1,
                json!({"content": "Write to grace.prose@corp.cn about the phishing wave."}),
            ),
        ),
        (
            "dict-key",
            "grace.key@corp.cn",
            note(2, json!({"x_map": {"grace.key@corp.cn": 1}})),
        ),
        (
            "number",
            "8613800138001",
            note(3, json!({"x_phone": 8613800138001u64})),
        ),
        (
            "defanged-email",
            "dana[@]corp.cn",
            note(
                4,
                json!({"content": "Sender seen: dana[@]corp.cn (defanged)."}),
            ),
        ),
        (
            "defanged-ip",
            "45[.]33[.]32[.]158",
            note(
                5,
                json!({"content": "Victim host 45[.]33[.]32[.]158 beaconed."}),
            ),
        ),
        (
            "full-width",
            "ｅｖｅ＠corp.cn",
            note(6, json!({"content": "Reply-To: ｅｖｅ＠corp.cn"})),
        ),
    ]
}

const EMAIL_SCO: &str = "email-addr--7f0a5b5e-4d2c-5b1a-9b7e-2f6d9c1a0e01";
const EMAIL_VALUE: &str = "sco.mail@corp.cn";
const IP_SCO: &str = "ipv4-addr--7f0a5b5e-4d2c-5b1a-9b7e-2f6d9c1a0e02";
const IP_VALUE: &str = "81.2.69.160";
const IND_CLEAR: &str = "indicator--3000000a-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const IND_RED: &str = "indicator--3000000b-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const RED_DOMAIN: &str = "red-canary-c2.example";
const CLEAR_DOMAIN: &str = "clear-c2.example";
const REL_TO_RED: &str = "relationship--3000000c-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const NOTE_TO_RED: &str = "note--3000000d-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const OBSERVED: &str = "observed-data--3000000e-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const REL_TO_IP: &str = "relationship--3000000f-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const NOTE_TO_EMAIL: &str = "note--30000010-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const GRANULAR: &str = "note--30000011-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const GRANULAR_CANARY: &str = "CANARY-GRANULAR-RED-ABSTRACT";
const HEAD_RED: &str = "note--30000012-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const TAIL_RED: &str = "note--30000013-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const DUP: &str = "note--30000014-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const DUP_VALUE: &str = "dup.first@corp.cn";
/// A CLEAR indicator whose pattern holds an e-mail address (personal data): abroad, the
/// feeds and the stream carry it pseudonymised, never raw.
const IND_EMAIL: &str = "indicator--30000015-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const IND_EMAIL_VALUE: &str = "ind.mail@corp.cn";
const MISSING: &str = "note--3000ffff-8ff6-4a8b-9c2f-6e5a3b1f0d11";

fn ts() -> Value {
    json!("2024-01-01T00:00:00.000Z")
}

/// The objects around the SCOs and the references to withheld objects.
fn graph_objects() -> Vec<Value> {
    let t = ts();
    vec![
        json!({"type": "email-addr", "spec_version": "2.1", "id": EMAIL_SCO, "value": EMAIL_VALUE}),
        json!({"type": "ipv4-addr", "spec_version": "2.1", "id": IP_SCO, "value": IP_VALUE}),
        json!({"type": "indicator", "spec_version": "2.1", "id": IND_CLEAR, "created": t,
               "modified": t, "name": "clear c2", "pattern_type": "stix",
               "pattern": format!("[domain-name:value = '{CLEAR_DOMAIN}']"),
               "valid_from": "2024-01-01T00:00:00Z", "object_marking_refs": [CLEAR]}),
        json!({"type": "indicator", "spec_version": "2.1", "id": IND_EMAIL, "created": t,
               "modified": t, "name": "phishing sender", "pattern_type": "stix",
               "pattern": format!("[email-addr:value = '{IND_EMAIL_VALUE}']"),
               "valid_from": "2024-01-01T00:00:00Z", "object_marking_refs": [CLEAR]}),
        json!({"type": "indicator", "spec_version": "2.1", "id": IND_RED, "created": t,
               "modified": t, "name": "CANARY-RED-INDICATOR", "pattern_type": "stix",
               "pattern": format!("[domain-name:value = '{RED_DOMAIN}']"),
               "valid_from": "2024-01-01T00:00:00Z", "object_marking_refs": [RED]}),
        json!({"type": "relationship", "spec_version": "2.1", "id": REL_TO_RED, "created": t,
               "modified": t, "relationship_type": "related-to", "source_ref": IND_CLEAR,
               "target_ref": IND_RED, "object_marking_refs": [CLEAR]}),
        json!({"type": "note", "spec_version": "2.1", "id": NOTE_TO_RED, "created": t,
               "modified": t, "content": "about both indicators",
               "object_refs": [IND_RED, IND_CLEAR], "object_marking_refs": [CLEAR]}),
        json!({"type": "observed-data", "spec_version": "2.1", "id": OBSERVED, "created": t,
               "modified": t, "first_observed": t, "last_observed": t, "number_observed": 1,
               "object_refs": [EMAIL_SCO, IP_SCO], "object_marking_refs": [CLEAR]}),
        json!({"type": "relationship", "spec_version": "2.1", "id": REL_TO_IP, "created": t,
               "modified": t, "relationship_type": "related-to", "source_ref": IND_CLEAR,
               "target_ref": IP_SCO, "object_marking_refs": [CLEAR]}),
        json!({"type": "note", "spec_version": "2.1", "id": NOTE_TO_EMAIL, "created": t,
               "modified": t, "content": "the sender address", "object_refs": [EMAIL_SCO],
               "object_marking_refs": [CLEAR]}),
        json!({"type": "note", "spec_version": "2.1", "id": GRANULAR, "created": t,
               "modified": t, "content": "granular public part", "abstract": GRANULAR_CANARY,
               "object_refs": [IDENTITY], "object_marking_refs": [CLEAR],
               "granular_markings": [{"marking_ref": RED, "selectors": ["abstract"]}]}),
    ]
}

fn red_note(id: &str, canary: &str) -> Value {
    json!({"type": "note", "spec_version": "2.1", "id": id, "created": ts(), "modified": ts(),
           "content": canary, "object_refs": [IDENTITY], "object_marking_refs": [RED]})
}

fn producer_markings() -> Vec<Value> {
    let t = ts();
    let ext = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
    vec![
        json!({"type": "marking-definition", "spec_version": "2.1", "id": P_RED_1, "created": t,
               "definition_type": "tlp", "definition": {"tlp": "red"}}),
        json!({"type": "marking-definition", "spec_version": "2.1", "id": P_RED_2, "created": t,
               "name": "internal handling", "extensions": {ext: {
                   "extension_type": "property-extension", "tlp_2_0": "red"}}}),
        json!({"type": "marking-definition", "spec_version": "2.1", "id": P_CLEAR_2,
               "created": t, "name": "public", "extensions": {ext: {
                   "extension_type": "property-extension", "tlp_2_0": "clear"}}}),
        json!({"type": "marking-definition", "spec_version": "2.1", "id": P_GREEN_1,
               "created": t, "definition_type": "tlp", "definition": {"tlp": "green"}}),
    ]
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

fn import(node: &Node, name: &str, objects: &[Value]) {
    let f = node.path().join(format!("import-{name}.json"));
    let bundle = json!({"type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d15",
                        "objects": objects});
    std::fs::write(&f, bundle.to_string()).unwrap();
    let (code, report) = node.import(COLL, &[&f]);
    assert_eq!(code, 0, "{name}: {report}");
}

fn get(s: &Server, key: &str, path: &str) -> Reply {
    let auth = format!("Bearer {key}");
    s.request(
        "GET",
        path,
        &[("Authorization", &auth), ("Accept", TAXII)],
        None,
    )
}

/// What a reply to a question about `asked` tells beyond the question: a refusal may echo
/// the id asked about (the partner wrote it), an answer may not hold what is forbidden.
fn received(r: &Reply, asked: &str) -> String {
    if r.status == 200 {
        bytes_of(r)
    } else {
        bytes_of(r).replace(asked, "<asked>")
    }
}

/// Everything of a reply a client sees: status line, headers, body, and the `next` token
/// decoded (base64url, standard) as far as it decodes.
fn bytes_of(r: &Reply) -> String {
    let mut t = format!("{}\n", r.status);
    for (k, v) in &r.headers {
        t.push_str(&format!("{k}: {v}\n"));
    }
    t.push_str(&r.body);
    t.push('\n');
    if let Ok(v) = serde_json::from_str::<Value>(&r.body)
        && let Some(n) = v["next"].as_str()
    {
        t.push_str(&decoded(n));
    }
    t
}

fn decoded(token: &str) -> String {
    let mut t = String::new();
    for e in [
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ] {
        if let Ok(b) = e.decode(token.trim_end_matches('=')) {
            t.push_str(&String::from_utf8_lossy(&b));
            t.push('\n');
        }
    }
    t
}

/// What one door gave one partner.
#[derive(Default)]
struct Seen {
    /// Objects by id (the door's copies), where the door shows objects.
    objects: BTreeMap<String, Value>,
    /// Ids the door named (manifest, versions, objects).
    ids: BTreeSet<String>,
    /// Every byte received.
    text: String,
}

impl Seen {
    fn add_object(&mut self, o: &Value) {
        let id = o["id"].as_str().unwrap().to_owned();
        self.ids.insert(id.clone());
        self.objects.insert(id, o.clone());
    }
}

/// TAXII objects (or manifest) at `limit`, following `next` to the end.
fn paged(s: &Server, key: &str, endpoint: &str, limit: usize) -> Seen {
    let mut seen = Seen::default();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{BASE}/{endpoint}/?limit={limit}");
        if let Some(n) = &next {
            path.push_str(&format!("&next={n}"));
        }
        let r = get(s, key, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        seen.text.push_str(&bytes_of(&r));
        let page = r.json();
        for o in page["objects"].as_array().into_iter().flatten() {
            if endpoint == "objects" {
                seen.add_object(o);
            } else {
                seen.ids.insert(o["id"].as_str().unwrap().to_owned());
            }
        }
        pages += 1;
        assert!(pages < 1000, "{endpoint} does not end");
        match page["next"].as_str() {
            Some(n) if page["more"] == true => next = Some(n.to_owned()),
            _ => {
                assert_ne!(page["more"], true, "more without next: {}", r.body);
                break;
            }
        }
    }
    seen
}

/// The tombstones door (`…/tombstones/`, issue 21), following `next` while `more`: the ids
/// it names, every byte received.
fn tombstones(s: &Server, key: &str) -> Seen {
    let mut seen = Seen::default();
    let mut next: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("{BASE}/tombstones/");
        if let Some(n) = &next {
            path.push_str(&format!("?next={n}"));
        }
        let r = get(s, key, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        seen.text.push_str(&bytes_of(&r));
        let page = r.json();
        for t in page["tombstones"].as_array().unwrap() {
            seen.ids.insert(t["id"].as_str().unwrap().to_owned());
        }
        if page["more"] != true {
            return seen;
        }
        next = Some(page["next"].as_str().unwrap().to_owned());
    }
    panic!("tombstones do not end");
}

/// One request per id: `objects/{id}/` or `objects/{id}/versions/`.
fn each(s: &Server, key: &str, ids: &BTreeSet<String>, versions: bool) -> Seen {
    let mut seen = Seen::default();
    for id in ids {
        let path = if versions {
            format!("{BASE}/objects/{id}/versions/")
        } else {
            format!("{BASE}/objects/{id}/")
        };
        let r = get(s, key, &path);
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.body);
        seen.text.push_str(&received(&r, id));
        if r.status == 200 {
            let v = r.json();
            if versions {
                assert!(!v["versions"].as_array().unwrap().is_empty());
                seen.ids.insert(id.clone());
            } else {
                for o in v["objects"].as_array().unwrap() {
                    seen.add_object(o);
                }
            }
        }
    }
    seen
}

fn export(node: &Node, partner: &str, format: &str) -> Option<Seen> {
    let (code, out, err) = cli(
        node,
        &[
            "export",
            "--collection",
            COLL,
            "--partner",
            partner,
            "--format",
            format,
        ],
    );
    if code != 0 {
        assert!(err.contains("may not read"), "{err}");
        return None;
    }
    // What the partner gets is stdout; stderr is the operator's.
    let mut seen = Seen {
        text: out.clone(),
        ..Seen::default()
    };
    if format == "stix" {
        let bundle: Value = serde_json::from_str(&out).unwrap();
        for o in bundle["objects"].as_array().unwrap() {
            seen.add_object(o);
        }
    }
    Some(seen)
}

/// The feed formats of `…/feeds/{format}` (issue 21).
const FEED_FORMATS: [&str; 5] = ["suricata", "zeek-intel", "rpz", "csv", "plain"];

/// The live stream of the collection as `key` follows it (batches of `limit`), read until
/// its first heartbeat: the follower sends one only once every batch of what the
/// collection holds was queued before it. Every byte received, the event ids (TAXII `next`
/// tokens) decoded too.
fn stream(s: &Server, key: &str, limit: Option<usize>) -> Seen {
    use std::io::BufRead as _;
    let path = match limit {
        Some(l) => format!("{BASE}/stream/?limit={l}"),
        None => format!("{BASE}/stream/"),
    };
    let resp = Server::agent()
        .get(format!("{}{path}", s.base))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "text/event-stream")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    let mut seen = Seen::default();
    for (k, v) in resp.headers() {
        seen.text
            .push_str(&format!("{k}: {}\n", v.to_str().unwrap_or_default()));
    }
    let mut r = std::io::BufReader::new(resp.into_body().into_reader());
    let (mut event, mut data) = (String::new(), Vec::<String>::new());
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "{path}: the stream ended"
        );
        seen.text.push_str(&line);
        let line = line.trim_end_matches('\n');
        if line == ": heartbeat" {
            break;
        }
        if line.is_empty() {
            assert_eq!(event, "objects", "{path}: {data:?}");
            let page: Value = serde_json::from_str(&data.join("\n")).unwrap();
            for o in page["objects"].as_array().into_iter().flatten() {
                seen.add_object(o);
            }
            (event, data) = (String::new(), Vec::new());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push(v.to_owned());
        } else if let Some(v) = line.strip_prefix("id: ") {
            seen.text.push_str(&decoded(v));
        }
    }
    seen
}

/// Logs in to the web UI with `key`: the session cookie.
pub(crate) fn login(s: &Server, key: &str) -> String {
    // Not following the redirect: the cookie is on the login answer.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent
        .post(format!("{}/ui/login", s.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("token={key}&next=%2Fui%2F"))
        .unwrap();
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("concord_session="))
        .unwrap_or_else(|| panic!("no session: {}", resp.status()))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn web(s: &Server, cookie: &str, path: &str) -> Reply {
    s.request("GET", path, &[("Cookie", cookie)], None)
}

/// The web UI as the partner: the collection list, the catalogue (every page), searches,
/// and the page and graph of every id.
fn through_web(s: &Server, key: &str, ids: &BTreeSet<String>) -> Seen {
    let cookie = login(s, key);
    let mut seen = Seen::default();
    for path in ["/ui/".to_owned(), format!("/ui/c/{COLL}")]
        .into_iter()
        .chain((1..4).map(|p| format!("/ui/c/{COLL}?page={p}")))
        .chain(
            [
                "corp.cn", "CANARY", "grace", "sco.mail", "81.2", "c2", "red",
            ]
            .iter()
            .map(|q| format!("/ui/c/{COLL}?q={q}")),
        )
    {
        let r = web(s, &cookie, &path);
        seen.text.push_str(&bytes_of(&r));
    }
    for id in ids {
        for suffix in ["", "/graph"] {
            let r = web(s, &cookie, &format!("/ui/c/{COLL}/o/{id}{suffix}"));
            if r.status == 200 && suffix.is_empty() {
                seen.ids.insert(id.clone());
            }
            seen.text.push_str(&received(&r, id));
        }
    }
    seen
}

fn api_match(s: &Server, key: &str, lines: &[&str]) -> Reply {
    let auth = format!("Bearer {key}");
    let body = json!({"collections": [COLL], "lines": lines}).to_string();
    s.request(
        "POST",
        "/api/match",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
}

/// The node of the suite: collection, partners and their keys, the push peer.
struct Fixture {
    node: Node,
    keys: BTreeMap<&'static str, String>,
    important: String,
    /// Each partner's webhook (`hook-NAME`) and what its receiver got, when asked for.
    hooks: BTreeMap<&'static str, Receiver>,
}

/// What a webhook's receiver on loopback got: each POST's request line, headers and body.
type Receiver = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A webhook receiver on loopback: answers every POST 204 and keeps what it got. Its URL.
fn receiver(got: Receiver) -> String {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut text = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
                text.push_str(&line);
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            text.push_str("\r\n");
            text.push_str(&String::from_utf8_lossy(&body));
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
            got.lock().unwrap().push(text);
        }
    });
    url
}

/// The webhook door of `p`: waits until its webhook has decided the whole collection (its
/// cursor is at the last entry, [`TAIL_RED`], withheld or not) and posted every delivery,
/// then what its receiver got. A partner that may not read follows nothing; its receiver is
/// read once the others are done (the deliverer serves the webhooks in turn).
fn webhook_door(f: &Fixture, p: &Partner) -> Seen {
    let name = format!("hook-{}", p.name);
    let start = std::time::Instant::now();
    loop {
        let doc: Value =
            serde_json::from_str(&cli_ok(&f.node, &["webhook", "show", &name, "--json"])).unwrap();
        assert_eq!(doc["dead_letters"]["count"], 0, "{doc}");
        let at_end = doc["cursors"]
            .as_object()
            .is_some_and(|c| c.values().any(|c| c["id"] == TAIL_RED));
        let sent = doc["queue"].as_array().is_some_and(|q| q.is_empty());
        if !p.read {
            assert!(doc["cursors"].as_object().unwrap().is_empty(), "{doc}");
            break;
        }
        if at_end && sent {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "{name} never got to the end: {doc}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let mut seen = Seen::default();
    for got in f.hooks[p.name].lock().unwrap().iter() {
        seen.text.push_str(got);
        seen.text.push('\n');
        let body = &got[got.find("\r\n\r\n").unwrap() + 4..];
        let doc: Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["webhook"], json!(name));
        for o in doc["objects"].as_array().unwrap() {
            seen.add_object(o);
        }
    }
    if p.read {
        assert!(!seen.objects.is_empty(), "{name}: nothing delivered");
    } else {
        assert!(seen.text.is_empty(), "{name}: {}", seen.text);
    }
    seen
}

/// The suite's node; with `hooks`, a webhook for each partner (`hook-NAME`, added before
/// anything is imported: a webhook sends what is added after it).
fn fixture(hooks: bool) -> Fixture {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let config = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // A stream read by the suite ends at its first heartbeat ([`stream`]): soon. Webhooks
    // look for new objects every second.
    std::fs::write(
        &config,
        format!(
            "{text}\n{POLICY}\n[limits]\nstream_heartbeat_secs = 1\n\
             [webhooks]\nevery_secs = 1\n"
        ),
    )
    .unwrap();
    let marking: Value = serde_json::from_str(&cli_ok(&node, &["policy", "marking"])).unwrap();
    let important = marking["id"].as_str().unwrap().to_owned();

    for c in [COLL, "other"] {
        cli_ok(&node, &["collection", "create", c]);
    }
    let mut keys = BTreeMap::new();
    for p in PARTNERS {
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
            args.extend(["--read", COLL]);
        }
        if p.write {
            args.extend(["--write", COLL]);
        }
        if p.name == "bsi" {
            args.extend(["--read", "other"]);
        }
        let doc: Value = serde_json::from_str(&cli_ok(&node, &args)).unwrap();
        keys.insert(p.name, doc["api_key"].as_str().unwrap().to_owned());
    }
    let mut receivers = BTreeMap::new();
    if hooks {
        let secret = node.path().join("hook.key");
        std::fs::write(&secret, "a-webhook-secret-of-32-characters").unwrap();
        for p in PARTNERS {
            let got = Receiver::default();
            let url = receiver(got.clone());
            let name = format!("hook-{}", p.name);
            let mut args = vec![
                "webhook",
                "add",
                &name,
                "--url",
                &url,
                "--secret-file",
                secret.to_str().unwrap(),
                "--partner",
                p.name,
            ];
            // The suite's collection (bsi reads another one too); a partner that may not
            // read follows what it may read: nothing.
            if p.read {
                args.extend(["--collection", COLL]);
            }
            cli_ok(&node, &args);
            receivers.insert(p.name, got);
        }
    }

    // A RED head before everything and a RED tail after everything: the headers and
    // `more` of the last page must not reveal them.
    import(&node, "head", &[red_note(HEAD_RED, "CANARY-RED-HEAD")]);
    let mut objects = vec![marking];
    objects.extend(producer_markings());
    for (i, (_, refs, _)) in MARKINGS.iter().enumerate() {
        let refs: Vec<&str> = refs
            .iter()
            .map(|r| {
                if *r == IMPORTANT {
                    important.as_str()
                } else {
                    *r
                }
            })
            .collect();
        objects.push(json!({"type": "note", "spec_version": "2.1",
            "id": marking_note_id(i), "created": ts(), "modified": ts(),
            "content": marking_canary(i), "object_refs": [IDENTITY],
            "object_marking_refs": refs}));
    }
    objects.extend(placements().into_iter().map(|(_, _, o)| o));
    objects.extend(graph_objects());
    import(&node, "main", &objects);
    import(&node, "tail", &[red_note(TAIL_RED, "CANARY-RED-TAIL")]);

    // Duplicate member names are refused at import, naming the key; nothing is stored.
    let f = node.path().join("dup.json");
    std::fs::write(
        &f,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d16","objects":[{{"type":"note","spec_version":"2.1","id":"{DUP}","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","content":"{DUP_VALUE}","content":"harmless","object_refs":["{IDENTITY}"],"object_marking_refs":["{CLEAR}"]}}]}}"#
        ),
    )
    .unwrap();
    let (code, report) = node.import(COLL, &[&f]);
    assert_ne!(code, 0, "duplicate member names imported: {report}");
    assert!(report.to_string().contains("content"), "{report}");

    // A second collection bsi reads, and one nobody reads.
    cli_ok(&node, &["collection", "create", "secret"]);
    let other: Vec<Value> = (0..3)
        .map(|i| {
            json!({"type": "note", "spec_version": "2.1",
                "id": format!("note--4000000{i}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
                "created": ts(), "modified": ts(), "content": "other", "object_refs": [IDENTITY],
                "object_marking_refs": [CLEAR]})
        })
        .collect();
    let file = node.path().join("other.json");
    std::fs::write(
        &file,
        json!({"type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d17",
               "objects": other})
        .to_string(),
    )
    .unwrap();
    assert_eq!(node.import("other", &[&file]).0, 0);
    cli_ok(
        &node,
        &[
            "collection",
            "share",
            COLL,
            "--default-tlp",
            "clear",
            "--group",
            "eu-cert",
            "--group",
            "asia",
            "--recipient",
            "cncert",
            "--recipient",
            "acme",
            "--recipient",
            "group:eu-cert",
        ],
    );
    Fixture {
        node,
        keys,
        important,
        hooks: receivers,
    }
}

/// What `p` must not receive by any door, with why.
fn forbidden(p: &Partner) -> Vec<(String, String)> {
    let mut f = Vec::new();
    for (i, (name, _, level)) in MARKINGS.iter().enumerate() {
        if !p.receives(*level) {
            f.push((marking_note_id(i), format!("id of withheld {name}")));
            f.push((marking_canary(i), format!("content of withheld {name}")));
        }
    }
    for (id, why) in [
        (IND_RED, "RED indicator"),
        (REL_TO_RED, "relationship to a RED object"),
        (HEAD_RED, "RED head"),
        (TAIL_RED, "RED tail"),
        (DUP, "object refused at import"),
    ] {
        f.push((id.to_owned(), why.to_owned()));
    }
    for (s, why) in [
        ("CANARY-RED-INDICATOR", "RED indicator name"),
        (RED_DOMAIN, "RED indicator pattern"),
        ("CANARY-RED-HEAD", "RED head content"),
        ("CANARY-RED-TAIL", "RED tail content"),
        (GRANULAR_CANARY, "property under a granular RED marking"),
        (DUP_VALUE, "refused duplicate member"),
    ] {
        f.push((s.to_owned(), why.to_owned()));
    }
    if p.read && !p.domestic() {
        for (name, raw, _) in placements() {
            if DETECTORS_MERGED || !DETECTOR_DEPENDENT.contains(&name) {
                f.push((raw.to_owned(), format!("raw personal value ({name})")));
            }
        }
        for (v, id) in [(EMAIL_VALUE, EMAIL_SCO), (IP_VALUE, IP_SCO)] {
            f.push((v.to_owned(), "raw SCO value".to_owned()));
            f.push((id.to_owned(), "stored id of a renamed SCO".to_owned()));
        }
        f.push((
            IND_EMAIL_VALUE.to_owned(),
            "raw personal value in an indicator's pattern".to_owned(),
        ));
    }
    f
}

/// The ids `p` must receive (SCOs aside: abroad they arrive under keyed ids).
fn expected_ids(p: &Partner) -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    if !p.read {
        return want;
    }
    for (i, (_, _, level)) in MARKINGS.iter().enumerate() {
        if p.receives(*level) {
            want.insert(marking_note_id(i));
        }
    }
    for (_, _, o) in placements() {
        want.insert(o["id"].as_str().unwrap().to_owned());
    }
    for id in [
        IND_CLEAR,
        IND_EMAIL,
        NOTE_TO_RED,
        OBSERVED,
        REL_TO_IP,
        NOTE_TO_EMAIL,
        GRANULAR,
    ] {
        want.insert(id.to_owned());
    }
    want
}

fn check_no_leak(p: &Partner, door: &str, text: &str, forbidden: &[(String, String)]) -> usize {
    for (s, why) in forbidden {
        // An id counts with its UUID alone too (MISP keeps the UUIDs of STIX ids).
        let uuid = s.split_once("--").map(|(_, u)| u);
        for needle in std::iter::once(s.as_str()).chain(uuid) {
            assert!(
                !text.contains(needle),
                "{} received {needle:?} ({why}) through {door}",
                p.name
            );
        }
    }
    forbidden.len()
}

/// SCO ids a door gave: type → ids.
fn sco_ids(seen: &Seen, ty: &str) -> BTreeSet<String> {
    seen.ids
        .iter()
        .filter(|i| i.starts_with(&format!("{ty}--")))
        .cloned()
        .collect()
}

/// Checks an object door: leaks, everything expected arrived, nothing unexpected, the copies
/// are what the partner should get, and renamed SCOs resolve.
fn check_objects(p: &Partner, door: &str, seen: &Seen, forbidden: &[(String, String)]) -> usize {
    let mut checks = check_no_leak(p, door, &seen.text, forbidden);
    let want = expected_ids(p);
    let got: BTreeSet<String> = seen
        .ids
        .iter()
        .filter(|i| {
            !i.starts_with("marking-definition--")
                && !i.starts_with("email-addr--")
                && !i.starts_with("ipv4-addr--")
        })
        .cloned()
        .collect();
    assert_eq!(got, want, "{} through {door}", p.name);
    checks += want.len();
    if seen.objects.is_empty() {
        return checks;
    }
    // Withheld references are gone, the rest stays.
    let n = &seen.objects[NOTE_TO_RED];
    assert_eq!(n["object_refs"], json!([IND_CLEAR]), "{door}: {n}");
    let g = &seen.objects[GRANULAR];
    assert_eq!(g["content"], "granular public part", "{door}: {g}");
    // The placements: raw at home, never raw abroad (where the detectors exist).
    for (name, raw, o) in placements() {
        let got = seen.objects[o["id"].as_str().unwrap()].to_string();
        if p.domestic() {
            let raw_json = serde_json::to_string(raw).unwrap();
            assert!(
                got.contains(raw.trim_matches('"')) || got.contains(raw_json.trim_matches('"')),
                "{door}: {name} not raw at home: {got}"
            );
        }
        checks += 1;
    }
    for (i, _) in MARKINGS.iter().enumerate() {
        if let Some(o) = seen.objects.get(&marking_note_id(i)) {
            assert_eq!(o["content"], marking_canary(i), "{door}");
        }
    }
    // SCOs: at home as stored; abroad under keyed ids that the referring objects use.
    for (ty, stored, raw) in [
        ("email-addr", EMAIL_SCO, EMAIL_VALUE),
        ("ipv4-addr", IP_SCO, IP_VALUE),
    ] {
        let ids = sco_ids(seen, ty);
        assert_eq!(ids.len(), 1, "{} {door}: {ty} {ids:?}", p.name);
        let id = ids.into_iter().next().unwrap();
        let sco = &seen.objects[&id];
        if p.domestic() {
            assert_eq!(id, stored);
            assert_eq!(sco["value"], raw);
        } else {
            assert_ne!(id, stored);
            assert_ne!(sco["value"], raw);
        }
        assert!(
            seen.objects[OBSERVED]["object_refs"]
                .as_array()
                .unwrap()
                .contains(&json!(id)),
            "{door}: observed-data does not name {id}"
        );
        checks += 1;
    }
    let ip = sco_ids(seen, "ipv4-addr").into_iter().next().unwrap();
    assert_eq!(seen.objects[REL_TO_IP]["target_ref"], json!(ip), "{door}");
    let email = sco_ids(seen, "email-addr").into_iter().next().unwrap();
    assert_eq!(
        seen.objects[NOTE_TO_EMAIL]["object_refs"],
        json!([email]),
        "{door}"
    );
    checks
}

/// Pushes the collection to a real second node as partner `partner`; what that node holds.
fn push(f: &Fixture, partner: &str) -> Seen {
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    cli_ok(&b, &["collection", "create", "in"]);
    let doc: Value = serde_json::from_str(&cli_ok(
        &b,
        &[
            "partner",
            "add",
            "origin",
            "--jurisdiction",
            "CN",
            "--write",
            "in",
            "--json",
        ],
    ))
    .unwrap();
    let key_file = f.node.path().join(format!("push-key-{partner}"));
    std::fs::write(&key_file, doc["api_key"].as_str().unwrap()).unwrap();
    let sb = b.serve();
    cli_ok(
        &f.node,
        &[
            "peer",
            "add",
            &format!("b-{partner}"),
            &sb.base,
            "--api-root",
            "/concord/",
            "--collection",
            &format!("in:{COLL}"),
            "--push",
            "--token-file",
            key_file.to_str().unwrap(),
            "--partner",
            partner,
        ],
    );
    let (code, out, err) = cli(
        &f.node,
        &["sync", "--json", "--peer", &format!("b-{partner}")],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    drop(sb);
    let (code, held, err) = cli(&b, &["export", "--collection", "in"]);
    assert_eq!(code, 0, "{err}");
    // What the second node holds is what it received (the sync report is the operator's).
    let mut seen = Seen {
        text: held.clone(),
        ..Seen::default()
    };
    let bundle: Value = serde_json::from_str(&held).unwrap();
    for o in bundle["objects"].as_array().into_iter().flatten() {
        seen.add_object(o);
    }
    seen
}

#[test]
fn nothing_leaves_that_the_policy_forbids() {
    let f = fixture(true);
    let s = f.node.serve();
    let mut combinations = 0usize;
    let mut checks = 0usize;
    // Every id anyone could ask about: stored ids, the keyed ids partners saw, unknown ones.
    let mut universe: BTreeSet<String> = BTreeSet::new();
    let admin = paged(&s, crate::support::TOKEN, "objects", 1000);
    universe.extend(admin.ids.iter().cloned());
    assert!(universe.contains(TAIL_RED) && universe.contains(EMAIL_SCO));
    universe.insert(MISSING.to_owned());
    universe.insert(DUP.to_owned());
    let mut keyed: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    // The ids each partner receives, under the ids it receives them by: what its
    // tombstones must name once everything is deleted (below).
    let mut received_ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for p in PARTNERS.iter().filter(|p| p.read) {
        let seen = paged(&s, &f.keys[p.name], "objects", 1000);
        received_ids.insert(p.name, seen.ids.clone());
        keyed.insert(p.name, sco_ids(&seen, "email-addr"));
        universe.extend(sco_ids(&seen, "email-addr"));
        universe.extend(sco_ids(&seen, "ipv4-addr"));
    }

    for p in PARTNERS {
        let key = &f.keys[p.name];
        let forbid = forbidden(p);
        let mut doors: Vec<(&str, Seen, bool)> = Vec::new();
        if p.read {
            doors.push(("objects limit=1", paged(&s, key, "objects", 1), true));
            doors.push(("objects limit=1000", paged(&s, key, "objects", 1000), true));
            doors.push(("manifest limit=1", paged(&s, key, "manifest", 1), true));
            doors.push((
                "manifest limit=1000",
                paged(&s, key, "manifest", 1000),
                true,
            ));
            doors.push(("object", each(&s, key, &universe, false), true));
            doors.push(("versions", each(&s, key, &universe, true), true));
            doors.push(("export", export(&f.node, p.name, "stix").unwrap(), true));
            let misp = export(&f.node, p.name, "misp").unwrap();
            assert!(
                misp.text.contains(CLEAR_DOMAIN),
                "MISP export: {}",
                misp.text
            );
            doors.push(("export misp", misp, false));
            doors.push(("stream", stream(&s, key, None), true));
            doors.push(("stream limit=1", stream(&s, key, Some(1)), true));
            for format in FEED_FORMATS {
                let r = get(&s, key, &format!("{BASE}/feeds/{format}"));
                assert_eq!(r.status, 200, "{format}: {}", r.body);
                assert!(r.body.contains(CLEAR_DOMAIN), "{format}: {}", r.body);
                let seen = Seen {
                    text: bytes_of(&r),
                    ..Seen::default()
                };
                doors.push((format, seen, false));
            }
        } else {
            // No read permission: the collection cannot be read, export refuses.
            let r = get(&s, key, &format!("{BASE}/objects/"));
            assert!(r.status == 403 || r.status == 404, "{}", r.body);
            let mut seen = Seen {
                text: bytes_of(&r),
                ..Seen::default()
            };
            for id in &universe {
                seen.text.push_str(&received(
                    &get(&s, key, &format!("{BASE}/objects/{id}/")),
                    id,
                ));
            }
            assert!(export(&f.node, p.name, "stix").is_none());
            // The stream and the feeds: refused as the objects are, with the same body.
            let paths = std::iter::once(format!("{BASE}/stream/"))
                .chain(FEED_FORMATS.iter().map(|f| format!("{BASE}/feeds/{f}")));
            for path in paths {
                let refused = get(&s, key, &path);
                assert_eq!(
                    (refused.status, &refused.body),
                    (r.status, &r.body),
                    "{path}"
                );
                seen.text.push_str(&bytes_of(&refused));
            }
            doors.push(("taxii without read", seen, false));
        }
        if ["bsi", "cncert"].contains(&p.name) {
            doors.push(("push", push(&f, p.name), true));
        }
        // Delivered in the background since `serve` started.
        doors.push(("webhook", webhook_door(&f, p), p.read));
        let webseen = through_web(&s, key, &universe);
        if p.read {
            // Every object the partner receives has a page; nothing else does.
            let want = expected_ids(p);
            let got: BTreeSet<String> = webseen
                .ids
                .iter()
                .filter(|i| !i.contains("-addr--") && !i.starts_with("marking-definition--"))
                .cloned()
                .collect();
            assert_eq!(got, want, "{} web object pages", p.name);
            assert!(webseen.text.contains(&marking_canary(4)), "web shows CLEAR");
        } else {
            assert!(webseen.ids.is_empty(), "{:?}", webseen.ids);
        }
        doors.push(("web", webseen, false));
        let mut lines: Vec<&str> = vec![RED_DOMAIN, CLEAR_DOMAIN, EMAIL_VALUE, IP_VALUE];
        let raws: Vec<(&str, &str, Value)> = placements();
        lines.extend(raws.iter().map(|(_, r, _)| *r));
        let r = api_match(&s, key, &lines);
        if p.read {
            assert_eq!(r.status, 200, "{}", r.body);
            let hits: Vec<String> = r.json()["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["indicator"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(hits, vec![IND_CLEAR.to_owned()], "{}: {}", p.name, r.body);
        } else {
            assert_eq!(r.status, 404, "{}", r.body);
        }
        doors.push((
            "/api/match",
            Seen {
                text: bytes_of(&r),
                ..Seen::default()
            },
            false,
        ));

        for (door, seen, objects) in &doors {
            combinations += MARKINGS.len() + placements().len() + 1 + graph_objects().len();
            checks += if *objects {
                check_objects(p, door, seen, &forbid)
            } else {
                check_no_leak(p, door, &seen.text, &forbid)
            };
        }
        // Abroad, the keyed SCO ids are the same through every door (one audience, one
        // mapping), and differ between partners.
        if p.read && !p.domestic() {
            for (door, seen, objects) in &doors {
                if *objects && !seen.objects.is_empty() {
                    assert_eq!(sco_ids(seen, "email-addr"), keyed[p.name], "{door}");
                }
            }
        }
    }
    let abroad: Vec<&BTreeSet<String>> = ["bsi", "jpcert", "anssi", "acme"]
        .iter()
        .map(|n| &keyed[n])
        .collect();
    let distinct: BTreeSet<&BTreeSet<String>> = abroad.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        abroad.len(),
        "keyed ids shared between partners"
    );
    // The tombstones door (issue 21), last, since it needs deletions: the operator deletes
    // every version of every object, and each partner is told of the deletions of exactly
    // what it received, under the ids it received them by (keyed SCO ids abroad), and of
    // nothing withheld; one without read permission is refused as for the objects.
    for id in &admin.ids {
        let r = s.delete(&format!("{BASE}/objects/{id}/?match[version]=all"));
        assert_eq!(r.status, 200, "DELETE {id}: {}", r.body);
    }
    for p in PARTNERS {
        let key = &f.keys[p.name];
        let forbid = forbidden(p);
        if p.read {
            let seen = tombstones(&s, key);
            checks += check_no_leak(p, "tombstones", &seen.text, &forbid);
            assert_eq!(seen.ids, received_ids[p.name], "{} tombstones", p.name);
            if !p.domestic() {
                assert_eq!(sco_ids(&seen, "email-addr"), keyed[p.name], "tombstones");
            }
        } else {
            let r = get(&s, key, &format!("{BASE}/tombstones/"));
            let objects = get(&s, key, &format!("{BASE}/objects/"));
            assert_eq!((r.status, &r.body), (objects.status, &objects.body));
            checks += check_no_leak(p, "tombstones without read", &bytes_of(&r), &forbid);
        }
        combinations += MARKINGS.len() + placements().len() + 1 + graph_objects().len();
    }
    let _ = &f.important;
    eprintln!(
        "leak suite: {} partners x {} markings x {} placements x doors: {combinations} \
         combinations, {checks} assertions",
        PARTNERS.len(),
        MARKINGS.len(),
        placements().len() + 3
    );
    assert!(combinations > 1000, "{combinations}");
    // Every door above appended its transfers: the whole log verifies, each entry's names
    // digest included (a door that appended before its version rows were named, or named
    // rows a later write renames, would show here as `renamed`).
    let (code, out, err) = cli(&f.node, &["audit", "verify", "--full"]);
    assert_eq!(code, 0, "audit verify --full after every door: {out}{err}");
}

/// `next` of the first page of `path` (which must have more).
fn first_next(s: &Server, key: &str, path: &str) -> String {
    let r = get(s, key, path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let v = r.json();
    assert_eq!(v["more"], true, "{path}: {}", r.body);
    v["next"].as_str().unwrap().to_owned()
}

/// Two answers look alike: the same status, and the same body once the two names asked
/// about are made equal.
fn alike(what: &str, a: &Reply, a_name: &str, b: &Reply, b_name: &str) {
    assert_eq!(a.status, b.status, "{what}: {} / {}", a.body, b.body);
    assert_eq!(
        a.body.replace(a_name, "X"),
        b.body.replace(b_name, "X"),
        "{what}"
    );
    let names = |r: &Reply| -> BTreeSet<String> {
        r.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k != "date" && k != "content-length")
            .collect()
    };
    assert_eq!(names(a), names(b), "{what}: headers");
}

/// The door as a partner with a key would try it: cursors, stored ids of renamed SCOs,
/// and "exists but not for you" against "does not exist".
#[test]
fn a_partner_learns_nothing_from_cursors_ids_or_errors() {
    let f = fixture(false);
    let s = f.node.serve();
    let bsi = &f.keys["bsi"];
    let anssi = &f.keys["anssi"];

    // --- next tokens: forged, edited, truncated, foreign: 400 naming `next` ---------------
    let page1 = format!("{BASE}/objects/?limit=1");
    let token = first_next(&s, bsi, &page1);
    let mut edited = token.clone().into_bytes();
    let mid = edited.len() / 2;
    edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        json!([0, "note--30000013-8ff6-4a8b-9c2f-6e5a3b1f0d11", 0, 0])
            .to_string()
            .as_bytes(),
    );
    let foreign_collection = first_next(&s, bsi, "/concord/collections/other/objects/?limit=1");
    let foreign_partner = first_next(&s, anssi, &page1);
    let cases: [(&str, &str, String); 6] = [
        ("forged", bsi, forged),
        ("edited", bsi, edited),
        ("truncated", bsi, token[..token.len() - 3].to_owned()),
        ("empty", bsi, String::new()),
        ("another collection", bsi, foreign_collection),
        ("another partner", bsi, foreign_partner),
    ];
    for endpoint in [
        "objects",
        "manifest",
        "objects/note--10000004-8ff6-4a8b-9c2f-6e5a3b1f0d11/versions",
    ] {
        for (what, key, t) in &cases {
            let r = get(&s, key, &format!("{BASE}/{endpoint}/?limit=1&next={t}"));
            assert_eq!(r.status, 400, "{what} token at {endpoint}: {}", r.body);
            assert!(r.body.contains("next"), "{what}: {}", r.body);
        }
    }
    // The genuine token works, for the partner and the collection it was issued for.
    assert_eq!(get(&s, bsi, &format!("{page1}&next={token}")).status, 200);

    // --- the stored id of a pseudonymised SCO finds nothing --------------------------------
    for path in [
        format!("{BASE}/objects/?match[id]={EMAIL_SCO}"),
        format!("{BASE}/manifest/?match[id]={EMAIL_SCO}"),
        format!("{BASE}/objects/?match[id]={IP_SCO},{EMAIL_SCO}&limit=1"),
    ] {
        let r = get(&s, bsi, &path);
        assert_eq!(r.status, 200, "{path}");
        let v = r.json();
        assert!(v.get("objects").is_none(), "{path}: {}", r.body);
        assert_eq!(v["more"], false, "{path}: {}", r.body);
        assert!(!bytes_of(&r).contains("-addr--"), "{path}");
    }
    let missing_sco = "email-addr--00000000-0000-5000-8000-000000000000";
    for suffix in ["", "versions/"] {
        let a = get(&s, bsi, &format!("{BASE}/objects/{EMAIL_SCO}/{suffix}"));
        let b = get(&s, bsi, &format!("{BASE}/objects/{missing_sco}/{suffix}"));
        alike("stored SCO id", &a, EMAIL_SCO, &b, missing_sco);
    }

    // --- exists but withheld == does not exist ---------------------------------------------
    for (name, key) in [("bsi", bsi), ("inbox", &f.keys["inbox"])] {
        for (what, withheld) in [("RED", TAIL_RED), ("unresolvable", &*marking_note_id(17))] {
            for suffix in ["", "versions/", "?match[version]=all"] {
                let a = get(&s, key, &format!("{BASE}/objects/{withheld}/{suffix}"));
                let b = get(&s, key, &format!("{BASE}/objects/{MISSING}/{suffix}"));
                alike(
                    &format!("{name} GET {what} {suffix}"),
                    &a,
                    withheld,
                    &b,
                    MISSING,
                );
            }
            // With a genuine cursor of this collection as well.
            if name == "bsi" {
                let a = get(&s, key, &format!("{BASE}/objects/{withheld}/?next={token}"));
                let b = get(&s, key, &format!("{BASE}/objects/{MISSING}/?next={token}"));
                alike(
                    &format!("{name} GET {what} with next"),
                    &a,
                    withheld,
                    &b,
                    MISSING,
                );
            }
            let auth = format!("Bearer {key}");
            let h = [("Authorization", auth.as_str()), ("Accept", TAXII)];
            let a = s.request(
                "DELETE",
                &format!("{BASE}/objects/{withheld}/?match[version]=all"),
                &h,
                None,
            );
            let b = s.request(
                "DELETE",
                &format!("{BASE}/objects/{MISSING}/?match[version]=all"),
                &h,
                None,
            );
            alike(&format!("{name} DELETE {what}"), &a, withheld, &b, MISSING);
        }
    }
    // Nothing withheld was deleted.
    let admin = s.get(&format!("{BASE}/objects/{TAIL_RED}/"));
    assert_eq!(admin.status, 200, "{}", admin.body);

    // Collections: unreadable and unknown alike, on TAXII and /api/match.
    for (what, path) in [
        ("collection", "/concord/collections/{}/"),
        ("objects", "/concord/collections/{}/objects/"),
        ("manifest", "/concord/collections/{}/manifest/"),
    ] {
        let a = get(&s, bsi, &path.replace("{}", "secret"));
        let b = get(&s, bsi, &path.replace("{}", "nosuch"));
        alike(what, &a, "secret", &b, "nosuch");
    }
    let auth = format!("Bearer {bsi}");
    let m = |c: &str| {
        s.request(
            "POST",
            "/api/match",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&json!({"collections": [c], "lines": [RED_DOMAIN]}).to_string()),
        )
    };
    alike("/api/match", &m("secret"), "secret", &m("nosuch"), "nosuch");
    // /api/match on a readable collection: a withheld indicator is no hit.
    let r = m(COLL);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains(IND_RED) && r.json()["hits"] == json!([]),
        "{}",
        r.body
    );

    // Status resources: another principal's and an unknown one alike.
    let env = json!({"objects": [{"type": "note", "spec_version": "2.1",
        "id": "note--50000000-8ff6-4a8b-9c2f-6e5a3b1f0d11", "created": ts(), "modified": ts(),
        "content": "x", "object_refs": [IDENTITY], "object_marking_refs": [CLEAR]}]});
    let posted = s.post("/concord/collections/other/objects/", &env.to_string());
    assert_eq!(posted.status, 202, "{}", posted.body);
    let status_id = posted.json()["id"].as_str().unwrap().to_owned();
    let unknown = "2d086da7-4bdc-4f91-900e-d77486753710";
    assert_eq!(s.get(&format!("/concord/status/{status_id}/")).status, 200);
    let a = get(&s, bsi, &format!("/concord/status/{status_id}/"));
    let b = get(&s, bsi, &format!("/concord/status/{unknown}/"));
    alike("status", &a, &status_id, &b, unknown);

    // Web object pages and graphs: withheld, a renamed SCO's stored id, and unknown alike.
    let cookie = login(&s, bsi);
    for suffix in ["", "/graph"] {
        for withheld in [TAIL_RED, IND_RED, EMAIL_SCO, REL_TO_RED] {
            let a = web(&s, &cookie, &format!("/ui/c/{COLL}/o/{withheld}{suffix}"));
            let missing = format!(
                "{}--00000000-0000-4000-8000-000000000000",
                withheld.split("--").next().unwrap()
            );
            let b = web(&s, &cookie, &format!("/ui/c/{COLL}/o/{missing}{suffix}"));
            alike(
                &format!("web {withheld}{suffix}"),
                &a,
                withheld,
                &b,
                &missing,
            );
        }
        let a = web(&s, &cookie, &format!("/ui/c/secret/o/{TAIL_RED}{suffix}"));
        let b = web(&s, &cookie, &format!("/ui/c/nosuch/o/{TAIL_RED}{suffix}"));
        alike("web collection", &a, "secret", &b, "nosuch");
    }

    // --- headers and `more` reveal no withheld head or tail ---------------------------------
    let manifest = get(&s, bsi, &format!("{BASE}/manifest/?limit=1000")).json();
    let dates: Vec<&str> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["date_added"].as_str().unwrap())
        .collect();
    let all = get(&s, bsi, &format!("{BASE}/objects/?limit=1000"));
    assert_eq!(
        all.header("x-taxii-date-added-first"),
        dates.first().copied()
    );
    assert_eq!(all.header("x-taxii-date-added-last"), dates.last().copied());
    let admin_manifest = s.get(&format!("{BASE}/manifest/?limit=1000")).json();
    let admin_dates: Vec<&str> = admin_manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["date_added"].as_str().unwrap())
        .collect();
    // The RED head and tail were added before and after everything the partner receives.
    assert!(admin_dates.first() < dates.first() && admin_dates.last() > dates.last());
    // Paging at limit=1: every page carries one object, and the last says no more.
    let mut next: Option<String> = None;
    let mut pages = 0;
    let mut token_lengths = BTreeSet::new();
    loop {
        let path = match &next {
            Some(n) => format!("{page1}&next={n}"),
            None => page1.clone(),
        };
        let r = get(&s, bsi, &path);
        let v = r.json();
        assert_eq!(
            v["objects"].as_array().map(Vec::len),
            Some(1),
            "page {pages}: {}",
            r.body
        );
        let added = r.header("x-taxii-date-added-first").unwrap().to_owned();
        assert_eq!(added, dates[pages], "page {pages}");
        assert_eq!(r.header("x-taxii-date-added-last"), Some(added.as_str()));
        pages += 1;
        match v["next"].as_str() {
            Some(n) => {
                token_lengths.insert(n.len());
                next = Some(n.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, dates.len());
    // A token's length says nothing of the entry it resumes after (its type, its id): the
    // same for every page, whether it resumes after a note or an observed-data.
    assert_eq!(token_lengths.len(), 1, "{token_lengths:?}");
}

// --- agreements (issue 19) -----------------------------------------------------------------

/// The OASIS PAP marking definitions (extension-definition--f8d78575…), by id only.
const PAP_RED: &str = "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e";
const PAP_AMBER: &str = "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab";
const PAP_GREEN: &str = "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9";
/// The producer, named by every object's `created_by_ref`.
const PRODUCER: &str = "identity--d1d1d1d1-0000-4000-8000-000000000001";
const PRODUCER_NAME: &str = "CANARY-PRODUCER-NAME";
/// The last object imported: where a webhook's cursor ends.
const AG_TAIL: &str = "note--d1d1d1d1-0000-4000-8000-0000000000ff";

/// The indicators: id, the domain of its pattern (what a feed carries), its PAP marking.
const AG_INDICATORS: [(&str, &str, Option<&str>); 4] = [
    (
        "indicator--d1d1d1d1-0000-4000-8000-000000000011",
        "pap-red.agreement.example",
        Some(PAP_RED),
    ),
    (
        "indicator--d1d1d1d1-0000-4000-8000-000000000012",
        "pap-amber.agreement.example",
        Some(PAP_AMBER),
    ),
    (
        "indicator--d1d1d1d1-0000-4000-8000-000000000013",
        "pap-green.agreement.example",
        Some(PAP_GREEN),
    ),
    (
        "indicator--d1d1d1d1-0000-4000-8000-000000000014",
        "no-pap.agreement.example",
        None,
    ),
];

/// One partner per clause: `ended` (IEP 2.0 end_date passed), `anon` (attribution
/// must-not), `ask` (permitted_actions contact-for-instruction), `green` (by its group:
/// pap_automated green), `plain` (encrypt_in_transit must, on a plain-HTTP node), `ctl` (no
/// agreement: the default PAP gate).
const AG_POLICY: &str = r#"
[policy]
policy_version = "agreements-1"
[policy.agreements.ended]
partners = ["ended"]
end_date = "2020-01-01T00:00:00Z"
[policy.agreements.anonymous]
partners = ["anon"]
attribution = "must-not"
transfer_mechanism = "gdpr-scc"
legal_basis = "SCC module 1"
[policy.agreements.ask-first]
partners = ["ask"]
permitted_actions = "contact-for-instruction"
[policy.agreements.active-only]
groups = ["active"]
pap_automated = "green"
[policy.agreements.tls-only]
partners = ["plain"]
encrypt_in_transit = "must"
"#;

const AG_PARTNERS: [(&str, &[&str]); 6] = [
    ("ended", &[]),
    ("anon", &[]),
    ("ask", &[]),
    ("green", &["active"]),
    ("plain", &[]),
    ("ctl", &[]),
];

fn ag_objects() -> Vec<Value> {
    let mut out = vec![
        json!({"type": "identity", "spec_version": "2.1", "id": PRODUCER,
        "created": ts(), "modified": ts(), "name": PRODUCER_NAME,
        "identity_class": "organization", "object_marking_refs": [CLEAR]}),
    ];
    for (id, domain, pap) in AG_INDICATORS {
        let mut markings = vec![CLEAR];
        markings.extend(pap);
        out.push(json!({"type": "indicator", "spec_version": "2.1", "id": id,
            "created": ts(), "modified": ts(), "created_by_ref": PRODUCER,
            "name": format!("CANARY {domain}"), "indicator_types": ["malicious-activity"],
            "pattern": format!("[domain-name:value = '{domain}']"), "pattern_type": "stix",
            "valid_from": ts(), "object_marking_refs": markings}));
    }
    out.push(json!({"type": "note", "spec_version": "2.1", "id": AG_TAIL,
        "created": ts(), "modified": ts(), "created_by_ref": PRODUCER,
        "content": "the tail", "object_refs": [AG_INDICATORS[3].0],
        "object_marking_refs": [CLEAR]}));
    out
}

/// What `partner` must receive and must not receive through a door: the indicators by id,
/// and whether the producer's identity may be named. `automated`: feeds, webhook, stream,
/// `/api/match`.
fn ag_expected(partner: &str, automated: bool) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let all: BTreeSet<&str> = AG_INDICATORS.iter().map(|i| i.0).collect();
    let by_pap = |allowed: &[Option<&str>]| -> BTreeSet<&'static str> {
        AG_INDICATORS
            .iter()
            .filter(|i| allowed.contains(&i.2))
            .map(|i| i.0)
            .collect()
    };
    let must: BTreeSet<&str> = match (partner, automated) {
        ("ended" | "plain", _) => BTreeSet::new(),
        ("ask", true) => BTreeSet::new(),
        ("green", true) => by_pap(&[Some(PAP_GREEN), None]),
        (_, true) => by_pap(&[Some(PAP_AMBER), Some(PAP_GREEN), None]),
        (_, false) => all.clone(),
    };
    let must_not = all.difference(&must).copied().collect();
    (must, must_not)
}

/// A push of the suite's collection to a fresh second node as `partner`: the sync's exit
/// code and error, and what the second node then holds.
fn ag_push(node: &Node, partner: &str) -> (i32, String, Seen) {
    let b = Node::init_with(&["--jurisdiction", "CN"]);
    cli_ok(&b, &["collection", "create", "in"]);
    let doc: Value = serde_json::from_str(&cli_ok(
        &b,
        &[
            "partner",
            "add",
            "origin",
            "--jurisdiction",
            "CN",
            "--write",
            "in",
            "--json",
        ],
    ))
    .unwrap();
    let key_file = node.path().join(format!("ag-push-key-{partner}"));
    std::fs::write(&key_file, doc["api_key"].as_str().unwrap()).unwrap();
    let sb = b.serve();
    let peer = format!("ag-{partner}");
    cli_ok(
        node,
        &[
            "peer",
            "add",
            &peer,
            &sb.base,
            "--api-root",
            "/concord/",
            "--collection",
            &format!("in:{COLL}"),
            "--push",
            "--token-file",
            key_file.to_str().unwrap(),
            "--partner",
            partner,
        ],
    );
    let (code, out, err) = cli(node, &["sync", "--json", "--peer", &peer]);
    drop(sb);
    let (c, held, e) = cli(&b, &["export", "--collection", "in"]);
    assert_eq!(c, 0, "{e}");
    let mut seen = Seen {
        text: held.clone(),
        ..Seen::default()
    };
    for o in serde_json::from_str::<Value>(&held).unwrap()["objects"]
        .as_array()
        .into_iter()
        .flatten()
    {
        seen.add_object(o);
    }
    (code, format!("{out}{err}"), seen)
}

/// A partner's webhook once it decided the whole collection (its cursor at [`AG_TAIL`]) and
/// posted everything, or (`refused`) once it recorded why it takes nothing.
fn ag_webhook(node: &Node, name: &str, got: &Receiver, refused: Option<&str>) -> Seen {
    let hook = format!("hook-{name}");
    let start = std::time::Instant::now();
    loop {
        let doc: Value =
            serde_json::from_str(&cli_ok(node, &["webhook", "show", &hook, "--json"])).unwrap();
        let done = match refused {
            Some(why) => doc["last_error"].as_str().is_some_and(|e| e.contains(why)),
            None => {
                doc["cursors"]
                    .as_object()
                    .is_some_and(|c| c.values().any(|c| c["id"] == AG_TAIL))
                    && doc["queue"].as_array().is_some_and(|q| q.is_empty())
            }
        };
        if done {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "{hook} never got to the end: {doc}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let mut seen = Seen::default();
    for text in got.lock().unwrap().iter() {
        seen.text.push_str(text);
        seen.text.push('\n');
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let doc: Value = serde_json::from_str(body).unwrap();
        for o in doc["objects"].as_array().unwrap() {
            seen.add_object(o);
        }
    }
    seen
}

/// Partner × IEP 2.0 clause (and PAP) × door, 0 violations (issue 19): every door a partner
/// reaches — TAXII objects, manifest, object, versions, `export` (STIX), a sync push to a
/// real second node, the web UI as the partner, every feed format, the live stream, a
/// webhook to a real receiver, `/api/match` — gives each partner exactly what its agreement
/// allows: nothing after the end date; no `created_by_ref` and no producer identity under
/// attribution must-not; nothing by the automated doors under contact-for-instruction; PAP
/// (the OASIS ids) above the agreement's `pap_automated` (default AMBER) by no automated door
/// and by every door a person reads; over plain HTTP nothing for a partner whose agreement
/// requires encryption in transit.
#[test]
fn no_door_breaks_an_agreement() {
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let config = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n{AG_POLICY}\n[limits]\nstream_heartbeat_secs = 1\n[webhooks]\nevery_secs = 1\n"
        ),
    )
    .unwrap();
    cli_ok(&node, &["collection", "create", COLL]);
    cli_ok(
        &node,
        &["collection", "share", COLL, "--default-tlp", "clear"],
    );
    let secret = node.path().join("hook.key");
    std::fs::write(&secret, "a-webhook-secret-of-32-characters").unwrap();
    let mut keys = BTreeMap::new();
    let mut hooks = BTreeMap::new();
    for (name, groups) in AG_PARTNERS {
        let mut args = vec![
            "partner",
            "add",
            name,
            "--jurisdiction",
            "CN",
            "--read",
            COLL,
            "--json",
        ];
        for g in groups {
            args.extend(["--group", g]);
        }
        let doc: Value = serde_json::from_str(&cli_ok(&node, &args)).unwrap();
        keys.insert(name, doc["api_key"].as_str().unwrap().to_owned());
        let got = Receiver::default();
        let url = receiver(got.clone());
        cli_ok(
            &node,
            &[
                "webhook",
                "add",
                &format!("hook-{name}"),
                "--url",
                &url,
                "--secret-file",
                secret.to_str().unwrap(),
                "--partner",
                name,
                "--collection",
                COLL,
            ],
        );
        hooks.insert(name, got);
    }
    import(&node, "agreements", &ag_objects());
    let s = node.serve();
    let mut universe: BTreeSet<String> = ag_objects()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    universe.insert(MISSING.to_owned());
    let domains: Vec<&str> = AG_INDICATORS.iter().map(|i| i.1).collect();
    let mut violations: Vec<String> = Vec::new();
    let mut combinations = 0usize;
    for (name, _) in AG_PARTNERS {
        let key = &keys[name];
        // (door, what it gave, automated)
        let mut doors: Vec<(String, Seen, bool)> = Vec::new();
        if name == "plain" {
            // Every request over plain HTTP is refused, naming the clause.
            let mut paths: Vec<String> = vec![
                format!("{BASE}/objects/"),
                format!("{BASE}/manifest/"),
                format!("{BASE}/stream/"),
                "/concord/agreement/".to_owned(),
            ];
            paths.extend(universe.iter().map(|id| format!("{BASE}/objects/{id}/")));
            paths.extend(
                universe
                    .iter()
                    .map(|id| format!("{BASE}/objects/{id}/versions/")),
            );
            paths.extend(FEED_FORMATS.iter().map(|f| format!("{BASE}/feeds/{f}")));
            let mut seen = Seen::default();
            for path in paths {
                let r = get(&s, key, &path);
                if r.status != 403 || !r.body.contains("encrypt_in_transit must") {
                    violations.push(format!("plain {path}: {} {}", r.status, r.body));
                }
                seen.text.push_str(&bytes_of(&r));
            }
            let r = api_match(&s, key, &domains);
            if r.status != 403 {
                violations.push(format!("plain /api/match: {} {}", r.status, r.body));
            }
            seen.text.push_str(&bytes_of(&r));
            doors.push((
                "taxii, feeds, stream, api-match over HTTP".into(),
                seen,
                false,
            ));
            let cookie = login(&s, key);
            let r = web(&s, &cookie, &format!("/ui/c/{COLL}"));
            if r.status != 403 {
                violations.push(format!("plain web: {} {}", r.status, r.body));
            }
            doors.push((
                "web".into(),
                Seen {
                    text: bytes_of(&r),
                    ..Seen::default()
                },
                false,
            ));
            doors.push((
                "webhook".into(),
                ag_webhook(&node, name, &hooks[name], Some("encrypt_in_transit must")),
                true,
            ));
        } else {
            doors.push(("objects".into(), paged(&s, key, "objects", 1000), false));
            doors.push((
                "objects limit=1".into(),
                paged(&s, key, "objects", 1),
                false,
            ));
            doors.push(("manifest".into(), paged(&s, key, "manifest", 1000), false));
            doors.push(("object".into(), each(&s, key, &universe, false), false));
            doors.push(("versions".into(), each(&s, key, &universe, true), false));
            doors.push((
                "export".into(),
                export(&node, name, "stix").expect("export for a reader"),
                false,
            ));
            doors.push(("web".into(), through_web(&s, key, &universe), false));
            doors.push(("stream".into(), stream(&s, key, None), true));
            for format in FEED_FORMATS {
                let r = get(&s, key, &format!("{BASE}/feeds/{format}"));
                if r.status != 200 {
                    violations.push(format!("{name} feed {format}: {} {}", r.status, r.body));
                }
                doors.push((
                    format!("feed {format}"),
                    Seen {
                        text: bytes_of(&r),
                        ..Seen::default()
                    },
                    true,
                ));
            }
            // The same feeds written by the CLI for the partner (`export --format`).
            for format in ["suricata", "rpz"] {
                let (code, out, err) = cli(
                    &node,
                    &[
                        "export",
                        "--collection",
                        COLL,
                        "--partner",
                        name,
                        "--format",
                        format,
                    ],
                );
                if code != 0 {
                    violations.push(format!("{name} export --format {format}: {err}"));
                }
                doors.push((
                    format!("feed export {format}"),
                    Seen {
                        text: out,
                        ..Seen::default()
                    },
                    true,
                ));
            }
            let r = api_match(&s, key, &domains);
            if r.status != 200 {
                violations.push(format!("{name} /api/match: {} {}", r.status, r.body));
            }
            doors.push((
                "/api/match".into(),
                Seen {
                    text: bytes_of(&r),
                    ..Seen::default()
                },
                true,
            ));
            doors.push((
                "webhook".into(),
                ag_webhook(&node, name, &hooks[name], None),
                true,
            ));
        }
        // The sync push: refused with the clause after the end date and over plain HTTP.
        let (code, report, seen) = ag_push(&node, name);
        match name {
            "ended" if code == 0 || !report.contains("ended at 2020-01-01T00:00:00Z") => {
                violations.push(format!("ended push: {code} {report}"))
            }
            "plain" if code == 0 || !report.contains("encrypt_in_transit must") => {
                violations.push(format!("plain push: {code} {report}"))
            }
            "ended" | "plain" => {}
            _ if code != 0 => violations.push(format!("{name} push: {code} {report}")),
            _ => {}
        }
        doors.push(("sync push".into(), seen, false));

        for (door, seen, automated) in &doors {
            let (must, must_not) = ag_expected(name, *automated);
            for (id, domain, _) in AG_INDICATORS {
                combinations += 1;
                let arrived = seen.ids.contains(id)
                    || seen.text.contains(id)
                    || (door.starts_with("feed") && seen.text.contains(domain));
                if must_not.contains(id) && (arrived || seen.text.contains(domain)) {
                    violations.push(format!("{name} {door}: received {id} ({domain})"));
                }
                if must.contains(id) && !arrived {
                    violations.push(format!("{name} {door}: did not receive {id} ({domain})"));
                }
            }
            combinations += 1;
            if name == "anon"
                && (seen.text.contains("created_by_ref")
                    || seen.text.contains(PRODUCER)
                    || seen.text.contains(PRODUCER_NAME))
            {
                violations.push(format!("{name} {door}: the producer is named"));
            }
            if name == "ended" && (seen.text.contains(PRODUCER_NAME) || seen.text.contains(AG_TAIL))
            {
                violations.push(format!("{name} {door}: something flowed after the end"));
            }
        }
        // Control: without attribution must-not, the producer goes with the objects.
        if name == "ctl" {
            let objects = &doors[0].1;
            assert!(
                objects.text.contains(PRODUCER_NAME) && objects.text.contains("created_by_ref")
            );
        }
    }
    eprintln!(
        "agreement suite: {} partners x IEP clauses x doors: {combinations} combinations, {} violations",
        AG_PARTNERS.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(combinations > 300, "{combinations}");
    // `policy explain` cites the agreement and the clause that decided, door by door.
    // Withheld: a negative answer, exit 1.
    let (code, out, _) = cli(
        &node,
        &[
            "policy",
            "explain",
            "--partner",
            "ask",
            "--door",
            "webhook",
            AG_INDICATORS[3].0,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("agreement")
            && out.contains("ask-first")
            && out.contains("contact-for-instruction"),
        "{out}"
    );
    let (code, out, _) = cli(
        &node,
        &[
            "policy",
            "explain",
            "--partner",
            "ctl",
            "--door",
            "feed-suricata",
            AG_INDICATORS[0].0,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PAP:RED is stricter than PAP:AMBER"), "{out}");
    // A door a person reads carries it.
    let out = cli_ok(
        &node,
        &["policy", "explain", "--partner", "ctl", AG_INDICATORS[0].0],
    );
    assert!(
        out.contains("PAP:RED: taxii-objects is read by a person"),
        "{out}"
    );
    let (code, out, _) = cli(
        &node,
        &[
            "policy",
            "explain",
            "--partner",
            "ended",
            AG_INDICATORS[3].0,
        ],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("ended at 2020-01-01T00:00:00Z (IEP 2.0 end_date)"),
        "{out}"
    );
    // Every door appended its transfers: the whole log verifies.
    let (code, out, err) = cli(&node, &["audit", "verify", "--full"]);
    assert_eq!(code, 0, "{out}{err}");
}
