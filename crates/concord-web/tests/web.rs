//! The web UI over real HTTP on loopback, on a real SQLite store: sessions, what a partner's
//! session may see (the egress policy, as TAXII applies it), search over CJK and Arabic text
//! and translations, the "as partner" explanation, languages, import and its report, and
//! the same-origin check. The browser-level tests are in `crates/concord/tests/it/ui.rs`.

mod support;

use std::sync::Arc;

use concord_ingest::{Container, IngestOptions, ingest};
use concord_store::{NewCollection, Store};
use serde_json::json;
use support::{ADMIN, agent};
const AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const CLEAR: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";

struct Node {
    base: String,
    store: Arc<dyn Store>,
    partner_key: String,
    _dir: tempfile::TempDir,
}

fn bundle() -> serde_json::Value {
    let t = "2026-01-01T00:00:00.000Z";
    json!({"type": "bundle", "id": "bundle--6b1f0c0e-2f7c-4a8e-9d2a-0c1e2f3a4b5c", "objects": [
        {"type": "malware", "spec_version": "2.1", "id": "malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11",
         "created": t, "modified": t, "name": "灰鸽子", "is_family": true,
         "description": "远程访问木马", "object_marking_refs": [GREEN]},
        {"type": "report", "spec_version": "2.1", "id": "report--3f0a1b2c-4d5e-4f60-8a9b-0c1d2e3f4a5b",
         "created": t, "modified": t, "name": "机密报告", "published": t,
         "object_refs": ["malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11"],
         "object_marking_refs": [AMBER]},
        {"type": "attack-pattern", "spec_version": "2.1", "id": "attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
         "created": t, "modified": t, "name": "Spearphishing Attachment",
         "description": "Adversaries send e-mail with a malicious attachment.",
         "object_marking_refs": [CLEAR]},
        {"type": "language-content", "spec_version": "2.1", "id": "language-content--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
         "created": t, "modified": t,
         "object_ref": "attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "object_modified": t,
         "contents": {"zh": {"name": "鱼叉式钓鱼附件"}, "ar": {"name": "مرفق التصيد بالرمح"}},
         "object_marking_refs": [CLEAR]},
        {"type": "relationship", "spec_version": "2.1", "id": "relationship--7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
         "created": t, "modified": t, "relationship_type": "uses",
         "source_ref": "malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11",
         "target_ref": "attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
         "object_marking_refs": [GREEN]}
    ]})
}

fn node() -> Node {
    node_with(Default::default())
}

/// [`node`] under `limits`.
fn node_with(limits: concord_server::Limits) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(dir.path());
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            title: Some("Intel".into()),
            description: None,
        })
        .unwrap();
    store
        .create_collection(&NewCollection {
            alias: "private".into(),
            title: Some("Private".into()),
            description: None,
        })
        .unwrap();
    let options = IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: None,
        provenance: &[],
        settings: &[],
        max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
        cancel: None,
        unseen: None,
    };
    let r = ingest(
        store.as_ref(),
        &c.id,
        bundle().to_string().as_bytes(),
        options,
        |_| {},
    )
    .unwrap();
    assert_eq!(r.added, 5, "{:?}", r.rejected);
    let partner_key = support::partner(store.as_ref(), "bsi", "DE", std::slice::from_ref(&c.id));
    Node {
        base: support::serve_limits(store.clone(), 10 << 20, limits),
        store,
        partner_key,
        _dir: dir,
    }
}

struct Resp {
    status: u16,
    location: String,
    cookie: String,
    body: String,
}

fn read(r: ureq::http::Response<ureq::Body>) -> Resp {
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (location, cookie) = (h("location"), h("set-cookie"));
    let status = r.status().as_u16();
    let body = r.into_body().read_to_string().unwrap_or_default();
    Resp {
        status,
        location,
        cookie,
        body,
    }
}

impl Node {
    fn get(&self, path: &str, cookie: &str) -> Resp {
        read(
            agent()
                .get(format!("{}{path}", self.base))
                .header("cookie", cookie)
                .call()
                .unwrap(),
        )
    }

    fn login(&self, token: &str) -> String {
        support::login(&self.base, token)
    }

    fn upload(&self, cookie: &str, format: &str, name: &str, content: impl AsRef<[u8]>) -> Resp {
        let boundary = "----concordtestboundary";
        let mut body = Vec::new();
        for (k, v) in [("collection", "intel"), ("format", format)] {
            body.extend(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .bytes(),
            );
        }
        body.extend(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).bytes());
        body.extend(content.as_ref());
        body.extend(format!("\r\n--{boundary}--\r\n").bytes());
        read(
            agent()
                .post(format!("{}/ui/import", self.base))
                .header("cookie", cookie)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .send(&body[..])
                .unwrap(),
        )
    }
}

/// The number in `#result-count` (digits only; Fluent isolates the argument).
fn count(body: &str) -> usize {
    let at = body.find("id=\"result-count\"").expect("result count");
    let text = &body[at..at + body[at..].find("</p>").unwrap()];
    let digits: String = text
        .split('>')
        .nth(1)
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| {
        // "One object"
        usize::from(text.contains("One"))
    })
}

#[test]
fn sessions_search_partner_view_languages_and_import() {
    let n = node();
    // Without a session: to the login page, and back afterwards.
    let r = n.get("/ui/c/intel", "");
    assert_eq!(r.status, 303);
    assert_eq!(r.location, "/ui/login?next=%2Fui%2Fc%2Fintel");
    let r = read(
        agent()
            .post(format!("{}/ui/login", n.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .send("token=wrong&next=%2Fui%2F")
            .unwrap(),
    );
    assert_eq!(r.status, 401);
    assert!(r.body.contains("id=\"login-error\""));
    assert!(r.cookie.is_empty());

    let admin = n.login(ADMIN);
    // Search: CJK, Arabic through a translation, type and TLP filters.
    assert_eq!(
        count(&n.get("/ui/c/intel?q=%E6%9C%A8%E9%A9%AC", &admin).body),
        1
    ); // 木马
    assert_eq!(
        count(&n.get("/ui/c/intel?q=%E6%9C%BA%E5%AF%86", &admin).body),
        1
    ); // 机密
    let r = n.get("/ui/c/intel?q=%D8%A7%D9%84%D8%AA%D8%B5%D9%8A%D8%AF", &admin); // التصيد
    assert_eq!(count(&r.body), 1, "the attack pattern, by its translation");
    assert_eq!(count(&n.get("/ui/c/intel?type=malware", &admin).body), 1);
    assert_eq!(
        count(&n.get("/ui/c/intel?marking=TLP%3AAMBER", &admin).body),
        1
    );
    assert_eq!(
        count(&n.get("/ui/c/intel?marking=TLP%3ACLEAR", &admin).body),
        2
    );
    let r = n.get("/ui/c/intel?added_after=2026-13-40", &admin);
    assert!(r.body.contains("added_after"), "the bad filter is named");

    // The admin sees the AMBER report, and what partner bsi would get: nothing, by TLP.
    let report = "/ui/c/intel/o/report--3f0a1b2c-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    let r = n.get(report, &admin);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("TLP:AMBER") && r.body.contains("灰鸽子"),
        "ref named"
    );
    let r = n.get(&format!("{report}?as=bsi"), &admin);
    assert!(r.body.contains("decision-withheld"), "{}", r.body);
    // Each rule by its translated name, with its key for the reader who knows the policy.
    assert!(
        r.body.contains(r#"data-rule="tlp">tlp</code>"#)
            && r.body
                .contains(r#"data-rule="permission">permission</code>"#),
        "{}",
        r.body
    );
    // Why, in words of the page's language: the clause of the TLP gate, its parameters
    // (the label, the partner) isolated in <bdi> inside Arabic text, no English sentence.
    let reason = |body: &str| -> String {
        let at = body.find("id=\"egress-reason\"").expect("a reason");
        body[at..at + body[at..].find("</p>").unwrap()].to_owned()
    };
    let en = reason(&r.body);
    assert!(
        en.contains("named recipients, and <bdi>bsi</bdi> is not one"),
        "{en}"
    );
    let ar = reason(
        &n.get(&format!("{report}?as=bsi"), &format!("{admin}; lang=ar"))
            .body,
    );
    assert!(
        ar.contains("<bdi>TLP:AMBER</bdi>")
            && ar.contains("<bdi>bsi</bdi>")
            && ar.contains("المستلمين المسمّين"),
        "{ar}"
    );
    let zh_page = n.get(&format!("{report}?as=bsi"), &format!("{admin}; lang=zh-CN"));
    let zh = reason(&zh_page.body);
    assert!(
        zh.contains("指定接收方") && zh.contains("<bdi>bsi</bdi>"),
        "{zh}"
    );
    for english in [
        "named recipients",
        "may read collection",
        "withheld:",
        "object_marking_refs (",
    ] {
        assert!(
            !ar.contains(english) && !zh_page.body.contains(english),
            "{english} left in English"
        );
    }
    let r = n.get(&format!("{report}?as=nobody"), &admin);
    assert_eq!(r.status, 404);

    // The partner: only what egress gives it, searched in its own copies.
    let partner = n.login(&n.partner_key);
    let r = n.get("/ui/collections", &partner);
    assert!(r.body.contains("/ui/c/intel") && !r.body.contains("/ui/c/private"));
    assert_eq!(n.get("/ui/c/private", &partner).status, 404);
    assert_eq!(
        count(&n.get("/ui/c/intel?q=%E6%9C%BA%E5%AF%86", &partner).body),
        0
    );
    let r = n.get("/ui/c/intel", &partner);
    assert_eq!(count(&r.body), 4, "all but the AMBER report");
    assert!(!r.body.contains("report--"));
    assert_eq!(n.get(report, &partner).status, 404);
    let r = n.get(
        "/ui/c/intel/o/malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11",
        &partner,
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("机密报告"),
        "the withheld report is not named as a reference"
    );
    assert!(
        !r.body.contains("id=\"as\""),
        "no 'as partner' for partners"
    );
    assert_eq!(n.get("/ui/operator/partners", &partner).status, 403);
    // What the partner's pages showed is in the audit log, like a TAXII read.
    let entries = n
        .store
        .audit_entries(&concord_store::AuditQuery {
            partner: Some("bsi".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let mut log: Vec<(String, String)> = Vec::new();
    for e in &entries {
        assert!(e.policy_version.contains('@'));
        let vids: Vec<i64> = e.decoded().unwrap().iter().map(|i| i.vid).collect();
        for name in n.store.audit_names(&vids).unwrap() {
            log.push((e.door.clone(), name.object_id));
        }
    }
    let doors = |door: &str| {
        log.iter()
            .filter(|(d, _)| d == door)
            .map(|(_, id)| id.as_str())
            .collect::<Vec<_>>()
    };
    assert!(doors("web-object").contains(&"malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11"));
    assert!(
        doors("web-list").contains(&"attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|(_, id)| id.starts_with("report--")),
        "the withheld report was never shown"
    );
    assert_eq!(n.get("/ui/operator/audit", &admin).status, 200);

    // Languages: Accept-Language, then the switch's cookie; translations with the original.
    let r = read(
        agent()
            .get(format!("{}/ui/login", n.base))
            .header("accept-language", "ar-SA,ar;q=0.9")
            .call()
            .unwrap(),
    );
    assert!(r.body.contains("<html lang=\"ar\" dir=\"rtl\">"));
    let r = n.get("/ui/lang?set=zh-CN&back=%2Fui%2F", &admin);
    assert_eq!(r.status, 303);
    assert!(r.cookie.starts_with("lang=zh-CN"));
    let zh = format!("{admin}; lang=zh-CN");
    let r = n.get(
        "/ui/c/intel/o/attack-pattern--5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
        &zh,
    );
    assert!(r.body.contains("<html lang=\"zh-CN\" dir=\"ltr\">"));
    assert!(r.body.contains("鱼叉式钓鱼附件"), "translated name");
    assert!(
        r.body.contains("class=\"original\"") && r.body.contains("Spearphishing Attachment"),
        "original one click away"
    );
    assert!(
        r.body.contains("TLP:CLEAR"),
        "TLP labels are never translated"
    );
    let r = n.get("/ui/lang?set=ar&back=https%3A%2F%2Fevil.example%2F", &admin);
    assert_eq!(r.location, "/ui/", "no open redirect");

    // Import: an IOC list, then a broken bundle that stores nothing.
    let before = n
        .store
        .count(&n.store.collection("intel").unwrap().unwrap().id)
        .unwrap();
    let r = n.upload(
        &admin,
        "ioc-list",
        "list.txt",
        "198.51.100.7\nevil[.]example\nnot an ioc!\n",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"import-added\">2<"), "{}", r.body);
    assert!(
        r.body.contains("line 3"),
        "the unclassified line is reported"
    );
    let r = n.upload(
        &admin,
        "stix",
        "bad.json",
        "{\"type\": \"bundle\", \"objects\": [",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nothing imported"), "{}", r.body);
    let after = n
        .store
        .count(&n.store.collection("intel").unwrap().unwrap().id)
        .unwrap();
    assert_eq!(after, before + 2);
    // A gzip upload is read decompressed: the same two values (same ids, new versions).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"198.51.100.7\nevil[.]example\n").unwrap();
    let r = n.upload(&admin, "ioc-list", "list.txt.gz", gz.finish().unwrap());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"import-total\">2<"), "{}", r.body);
    assert!(r.body.contains("<code>ioc-list</code>"));
    // A partner without write permission cannot import.
    let r = n.upload(&partner, "ioc-list", "list.txt", "203.0.113.9\n");
    assert_eq!(r.status, 400);

    // A POST from another site is refused before it reaches the handler.
    let r = read(
        agent()
            .post(format!("{}/ui/pattern", n.base))
            .header("cookie", &admin)
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .send("pattern=%5Bx%5D")
            .unwrap(),
    );
    assert_eq!(r.status, 403);

    // Logout ends the session.
    let r = read(
        agent()
            .post(format!("{}/ui/logout", n.base))
            .header("cookie", &admin)
            .send("")
            .unwrap(),
    );
    assert_eq!(r.status, 303);
    assert_eq!(n.get("/ui/", &admin).status, 303);
}

#[test]
fn graph_folds_relationships_and_escapes_its_data() {
    let n = node();
    let admin = n.login(ADMIN);
    let path = "/ui/c/intel/o/malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11/graph";
    let r = n.get(path, &admin);
    assert_eq!(r.status, 200);
    // The drawing is rendered on the server: one <a class="node"> per object, names as text.
    let nodes: Vec<&str> = r
        .body
        .match_indices("<a class=\"node")
        .map(|(i, _)| &r.body[i..])
        .collect();
    assert_eq!(
        nodes.len(),
        4,
        "malware, attack pattern, report, the translation"
    );
    assert!(
        r.body.contains(">灰鸽子</text>")
            && r.body.contains("attack-pattern: Spearphishing Attachment")
    );
    assert!(
        r.body.contains(">Spearphishing Attachm…</text>"),
        "a label is cut to its column, the full name in its title"
    );
    assert!(
        r.body.contains(">机密报告</text>"),
        "the report refers to the malware"
    );
    assert!(
        !r.body.contains("data-type=\"relationship\""),
        "the relationship is an edge, not a node"
    );
    assert!(
        r.body.contains("class=\"edge-label\""),
        "edges are labelled"
    );
    assert!(r.body.contains(">uses</text>") && r.body.contains("→ uses →"));
    assert!(!r.body.contains("style="), "no inline style under the CSP");
    // A group key that names no group of the drawing is refused, naming the parameter.
    let r = n.get(
        &format!("{path}?expand=malware--0b1c6a3e-6d3f-4c1e-9a7e-2c0d1f0e9a11.tool"),
        &admin,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("expand"), "{}", r.body);
}

#[test]
fn uploads_may_be_as_large_as_max_content_length_and_no_larger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(dir.path());
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            title: None,
            description: None,
        })
        .unwrap();
    let n = Node {
        base: support::serve_with(store.clone(), 4 << 20),
        store,
        partner_key: String::new(),
        _dir: dir,
    };
    let admin = n.login(ADMIN);
    // 3 MB: above axum's 2 MB default, below the node's 4 MiB.
    let t = "2026-01-01T00:00:00.000Z";
    let bundle = json!({"type": "bundle", "id": "bundle--0e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b",
        "objects": [{"type": "indicator", "spec_version": "2.1",
            "id": "indicator--8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "created": t, "modified": t,
            "pattern": "[domain-name:value = 'big.example']", "pattern_type": "stix",
            "valid_from": t, "description": "x".repeat(3_000_000)}]});
    let r = n.upload(&admin, "stix", "big.json", bundle.to_string());
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(2000)]);
    assert!(r.body.contains("id=\"import-added\">1<"));
    assert_eq!(n.store.count(&c.id).unwrap(), 1);
    // Above the limit: refused, naming it; nothing stored. A node with a 64 KiB limit and a
    // 100 kB upload: small enough that the whole request is written before the server
    // answers and closes (a multi-MB refusal races the client's writes into a broken pipe).
    let small = Node {
        base: support::serve_with(n.store.clone(), 64 << 10),
        store: n.store.clone(),
        partner_key: String::new(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let admin = small.login(ADMIN);
    let r = small.upload(&admin, "ioc-list", "huge.txt", "y".repeat(100_000));
    assert_eq!(r.status, 413);
    assert!(
        r.body.contains("65536 bytes"),
        "{}",
        &r.body[..r.body.len().min(2000)]
    );
    assert_eq!(n.store.count(&c.id).unwrap(), 1);
}

#[test]
fn a_removed_partner_loses_its_session() {
    let n = node();
    let partner = n.login(&n.partner_key);
    assert_eq!(n.get("/ui/c/intel", &partner).status, 200);
    assert!(n.store.remove_partner("bsi").unwrap());
    // The authenticator reads the partner from the store at each request: the very next
    // page is refused.
    let r = n.get("/ui/c/intel", &partner);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.starts_with("/ui/login"));
    // And the session is gone for good.
    assert_eq!(n.get("/ui/", &partner).status, 303);
}

#[test]
fn a_partner_knows_a_pseudonymised_sco_only_by_its_new_id() {
    let n = node();
    let c = n.store.collection("intel").unwrap().unwrap();
    let stored = "email-addr--54f89e99-abbb-5997-a7a9-ed84dda2ffe2";
    let bundle = json!({"type": "bundle", "id": "bundle--15cd5c59-1dca-4a6a-bf41-9535c0258599",
        "objects": [{"type": "email-addr", "spec_version": "2.1", "id": stored,
            "value": "bob.secret@victim.example", "object_marking_refs": [CLEAR]}]});
    let options = IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: None,
        provenance: &[],
        settings: &[],
        max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
        cancel: None,
        unseen: None,
    };
    let r = ingest(
        n.store.as_ref(),
        &c.id,
        bundle.to_string().as_bytes(),
        options,
        |_| {},
    )
    .unwrap();
    assert_eq!(r.added, 1, "{:?}", r.rejected);
    let admin = n.login(ADMIN);
    assert!(
        n.get("/ui/c/intel?type=email-addr", &admin)
            .body
            .contains(stored)
    );
    // bsi is across the border: the address is pseudonymised, the SCO gets a new id.
    let partner = n.login(&n.partner_key);
    let list = n.get("/ui/c/intel?type=email-addr", &partner).body;
    assert_eq!(count(&list), 1);
    assert!(
        !list.contains(stored) && !list.contains("bob.secret"),
        "{list}"
    );
    let at = list
        .find("/ui/c/intel/o/email-addr--")
        .expect("a link to the copy");
    let shown: String = list[at + "/ui/c/intel/o/".len()..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert_ne!(shown, stored);
    let page = n.get(&format!("/ui/c/intel/o/{shown}"), &partner);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(stored) && !page.body.contains("bob.secret"));
    // The stored id confirms nothing.
    assert_eq!(
        n.get(&format!("/ui/c/intel/o/{stored}"), &partner).status,
        404
    );
    // A version that does not exist is said so, not replaced by the newest.
    let r = n.get(&format!("/ui/c/intel/o/{stored}?version=1999"), &admin);
    assert_eq!(r.status, 404);
}

#[test]
fn errors_are_html_pages_and_bad_uploads_leave_nothing() {
    let n = node();
    let admin = n.login(ADMIN);
    for path in [
        "/ui/c/intel?page=-1",
        "/ui/operator/audit?before=x",
        "/ui/nowhere",
        "/ui/c/",
    ] {
        let r = n.get(path, &admin);
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        assert!(
            r.body.contains("id=\"error-message\""),
            "{path}: {}",
            r.body
        );
    }
    // A new collection needs a valid alias, and is made only for a file that reads.
    let upload = |alias: &str, content: &str| {
        let boundary = "----b";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"new_collection\"\r\n\r\n{alias}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.json\"\r\n\r\n{content}\r\n--{boundary}--\r\n"
        );
        read(
            agent()
                .post(format!("{}/ui/import", n.base))
                .header("cookie", &admin)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .send(body)
                .unwrap(),
        )
    };
    let before = n.store.collections().unwrap().len();
    let r = upload("a/b c", "{}");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("alias"), "{}", r.body);
    let r = upload("fresh", "\u{1}\u{2} not json");
    assert_eq!(r.status, 400);
    // JSON, but not a bundle: it fails in the import's transaction, which made the collection.
    let r = upload("fresh", "[1, 2]");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("nothing imported"), "{}", r.body);
    assert_eq!(
        n.store.collections().unwrap().len(),
        before,
        "no collection left behind"
    );
    assert!(n.store.collection("fresh").unwrap().is_none());
}

/// A gzip file that unpacks to `size` bytes: a bundle of one indicator whose `description`
/// is `size` spaces' worth of padding (about 1,000 times smaller compressed).
fn bomb(size: usize) -> Vec<u8> {
    use std::io::Write;
    let t = "2026-01-01T00:00:00.000Z";
    let head = format!(
        r#"{{"type":"bundle","id":"bundle--0e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b","objects":[{{"type":"indicator","spec_version":"2.1","id":"indicator--8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","created":"{t}","modified":"{t}","pattern":"[domain-name:value = 'bomb.example']","pattern_type":"stix","valid_from":"{t}","description":""#
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..size / chunk.len() {
        gz.write_all(&chunk).unwrap();
    }
    gz.write_all(br#""}]}"#).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_gzip_bomb_stops_at_max_unpacked_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(dir.path());
    let gz = bomb(64 << 20);
    assert!(gz.len() < 1 << 20, "{}", gz.len());
    let limits = concord_ingest::Limits {
        max_object_size: 256 << 20,
        max_unpacked: 1 << 20,
    };
    let kind = concord_web::import::Kind::Stix;
    let e = concord_web::import::import(
        store.as_ref(),
        "intel",
        "bomb.json.gz",
        &gz,
        kind,
        "t",
        None,
        limits,
    )
    .unwrap_err();
    assert!(
        e.contains("bomb.json.gz") && e.contains("max_unpacked"),
        "{e}"
    );
    assert!(e.contains("1048576 bytes"), "{e}");
    assert!(store.collection("intel").unwrap().is_none());
}

#[test]
fn a_single_oversized_object_in_a_gzip_upload_is_refused_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(dir.path());
    let c = store
        .create_collection(&NewCollection {
            alias: "intel".into(),
            title: None,
            description: None,
        })
        .unwrap();
    // 64 MiB of one object from a small file: the default limits (8 MiB per object) refuse
    // it while reading, naming the object.
    let gz = bomb(64 << 20);
    let kind = concord_web::import::Kind::Auto;
    let e = concord_web::import::import(
        store.as_ref(),
        "intel",
        "one.json.gz",
        &gz,
        kind,
        "t",
        None,
        concord_ingest::Limits::default(),
    )
    .unwrap_err();
    assert!(
        e.contains("objects[0]") && e.contains("max_object_size"),
        "{e}"
    );
    assert_eq!(store.count(&c.id).unwrap(), 0);
}

/// A form POST (`application/x-www-form-urlencoded`) with `cookie`.
fn post_form(base: &str, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Resp {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", concord_web::url_encode(v)))
        .collect();
    read(
        agent()
            .post(format!("{base}{path}"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body.join("&"))
            .unwrap(),
    )
}

/// The audit entries of `door`, oldest first.
fn audited(store: &dyn Store, door: &str) -> Vec<concord_store::TransferEntry> {
    store
        .audit_entries(&concord_store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.door == door)
        .collect()
}

/// Issue 18 item 5 over real HTTP: the admin opens an incident by the form, requests
/// assistance from a partner (one request past its deadline), answers a request another
/// node's partner POSTed by TAXII; the board lists the overdue request first; the incident
/// page shows the timeline in English, Chinese and Arabic (`dir="rtl"`); every change is
/// audited as `concord incident` audits it; a partner's session and a client without one
/// reach none of it.
#[test]
fn incident_board_forms_timeline_in_three_languages() {
    let n = node();
    // Another node's partner, cert-br, that may write to collection "inbox" (made before the
    // first login: the server caches the partner list for a few seconds).
    let inbox = n
        .store
        .create_collection(&NewCollection {
            alias: "inbox".into(),
            title: None,
            description: None,
        })
        .unwrap();
    let (key, key_id, key_hash) = concord_server::auth::new_api_key().unwrap();
    n.store
        .put_partner(&concord_store::Partner {
            name: "cert-br".into(),
            jurisdiction: "BR".into(),
            groups: vec![],
            read: vec![inbox.id.clone()],
            write: vec![inbox.id.clone()],
            key_id,
            key_hash,
            created_ns: 0,
            details: Default::default(),
        })
        .unwrap();
    let admin = n.login(ADMIN);
    let partner = n.login(&n.partner_key);
    let incidents_held = || {
        let all =
            concord_coordination::board(n.store.as_ref(), &concord_stix::Timestamp::now_micros())
                .unwrap();
        all.len()
    };

    // Without a session: to the login page; a POST opens nothing.
    let r = n.get("/ui/incidents", "");
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/ui/login?next=%2Fui%2Fincidents")
    );
    let r = post_form(&n.base, "/ui/incidents", "", &[("title", "sneaky")]);
    assert_eq!(r.status, 303);
    assert_eq!(incidents_held(), 0);
    // A partner's session: the admin-only answer, and nothing opened.
    assert_eq!(n.get("/ui/incidents", &partner).status, 403);
    let r = post_form(&n.base, "/ui/incidents", &partner, &[("title", "sneaky")]);
    assert_eq!(r.status, 403);
    assert_eq!(incidents_held(), 0);
    // A form from another site: refused, nothing opened.
    let r = read(
        agent()
            .post(format!("{}/ui/incidents", n.base))
            .header("cookie", &admin)
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .send("title=csrf")
            .unwrap(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(incidents_held(), 0);

    // The empty board, then a refused form: the error names the flag and the rule, and the
    // form keeps what was typed.
    let r = n.get("/ui/incidents", &admin);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("id=\"no-incidents\""), "{}", r.body);
    let r = post_form(
        &n.base,
        "/ui/incidents",
        &admin,
        &[
            ("title", "C2 beaconing"),
            ("severity", "extreme"),
            ("collection", "incidents"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("id=\"incident-error\""));
    assert!(
        r.body.contains("--severity: &#34;extreme&#34;")
            || r.body.contains("--severity: &quot;extreme&quot;"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"C2 beaconing\""));
    assert_eq!(incidents_held(), 0);

    // Open by the form: to the incident's page.
    let r = post_form(
        &n.base,
        "/ui/incidents",
        &admin,
        &[
            ("title", "C2 beaconing to 203.0.113.7"),
            ("description", "seen from three ministries"),
            ("severity", "high"),
            ("affects", "br, ZA"),
            ("collection", "incidents"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let ours = r
        .location
        .strip_prefix("/ui/incidents/")
        .expect("to the incident")
        .to_owned();
    assert!(ours.starts_with("incident--"), "{ours}");
    let opened = audited(n.store.as_ref(), "incident-open");
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].partner.as_str(), opened[0].direction.as_str()),
        ("operator", "ingress")
    );

    // Two requests to the partner: one due far ahead, then one already past its deadline.
    let path = format!("/ui/incidents/{ours}/request");
    let r = post_form(
        &n.base,
        &path,
        &admin,
        &[
            ("to", "bsi"),
            ("ask", "preserve the logs of 203.0.113.7"),
            ("deadline", "2099-01-01T00:00"),
            ("priority", "low"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // A deadline in the past is refused (no request can be answered before it); one due in
    // 2 s is taken, and passes while the test goes on.
    let r = post_form(
        &n.base,
        &path,
        &admin,
        &[
            ("to", "bsi"),
            ("ask", "take down the C2 server"),
            ("deadline", "2020-01-01T00:00:00Z"),
            ("priority", "critical"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is in the past"), "{}", r.body);
    let soon = concord_stix::Timestamp::from_unix_nanos(
        concord_stix::Timestamp::now_micros().unix_nanos() + 2_000_000_000,
        0,
    )
    .to_string();
    let r = post_form(
        &n.base,
        &path,
        &admin,
        &[
            ("to", "bsi"),
            ("ask", "take down the C2 server"),
            ("deadline", &soon),
            ("priority", "critical"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // Refused: a partner that does not exist, a deadline that is not RFC 3339.
    let r = post_form(
        &n.base,
        &path,
        &admin,
        &[
            ("to", "nobody"),
            ("ask", "x"),
            ("deadline", "2099-01-01T00:00"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("--to: no partner named"), "{}", r.body);
    let r = post_form(
        &n.base,
        &path,
        &admin,
        &[("to", "bsi"), ("ask", "x"), ("deadline", "next week")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("--deadline"), "{}", r.body);
    let requested = audited(n.store.as_ref(), "incident-request");
    assert_eq!(
        requested.len(),
        2,
        "one transfer per request, none for the refused ones"
    );
    assert!(
        requested.iter().all(
            |e| e.partner == "operator" && e.dictionary.iter().any(|d| d == "addressed to bsi")
        ),
        "{:?}",
        requested.iter().map(|e| &e.dictionary).collect::<Vec<_>>()
    );
    // Until the 2 s deadline has passed (a generous bound, not a timing assertion).
    let show = || {
        concord_coordination::show(
            n.store.as_ref(),
            &ours,
            &concord_stix::Timestamp::now_micros(),
        )
        .unwrap()
    };
    let started = std::time::Instant::now();
    while !show().state.tasks[1].overdue && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let state = show();
    let (future, past) = (
        state.state.tasks[0].id.clone(),
        state.state.tasks[1].id.clone(),
    );
    assert_eq!(state.state.tasks[0].deadline, "2099-01-01T00:00:00Z");
    assert!(state.state.tasks[1].overdue && !state.state.tasks[0].overdue);

    // A request to this node: another node's identity, incident and task, POSTed by TAXII
    // by its partner (cert-br, who may write to collection "inbox").
    let now = concord_stix::Timestamp::now_micros();
    let br = concord_incident::node_identity("CERT-BR", Some("BR"), &now);
    let br_id = br["id"].as_str().unwrap();
    let theirs = concord_incident::incident(&concord_incident::NewIncident {
        title: "Phishing kit hosted in CN",
        description: None,
        criticality: Some(50),
        affects: &["CN".into()],
        created_by_ref: br_id,
        now: &now,
    })
    .unwrap();
    let theirs_id = theirs["id"].as_str().unwrap().to_owned();
    let deadline = concord_stix::Timestamp::parse("2099-06-01T00:00:00Z").unwrap();
    let asked = concord_incident::request(&concord_incident::NewRequest {
        incident_id: &theirs_id,
        recipient: "cert-cn",
        ask: "take down the phishing site",
        deadline: &deadline,
        priority: Some(75),
        created_by_ref: br_id,
        now: &now,
    })
    .unwrap();
    let asked_id = asked["id"].as_str().unwrap().to_owned();
    let r = agent()
        .post(format!(
            "{}/concord/collections/{}/objects/",
            n.base, inbox.id
        ))
        .header("authorization", format!("Bearer {key}"))
        .header("accept", "application/taxii+json;version=2.1")
        .header("content-type", "application/taxii+json;version=2.1")
        .send(json!({"objects": [br, theirs, asked]}).to_string())
        .unwrap();
    assert_eq!(r.status(), 202);

    // Respond by the form: a decline needs a reason; acknowledged, then declined with one.
    let respond = format!("/ui/incidents/{theirs_id}/respond");
    let page = n.get(&format!("/ui/incidents/{theirs_id}"), &admin);
    assert!(
        page.body.contains(&format!("data-task=\"{asked_id}\"")),
        "{}",
        page.body
    );
    let r = post_form(
        &n.base,
        &respond,
        &admin,
        &[("task", &asked_id), ("status", "declined"), ("note", "")],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("--note: a request is declined with a reason"),
        "{}",
        r.body
    );
    let r = post_form(
        &n.base,
        &respond,
        &admin,
        &[("task", &asked_id), ("status", "acknowledged")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post_form(
        &n.base,
        &respond,
        &admin,
        &[
            ("task", &asked_id),
            ("status", "declined"),
            ("note", "no legal basis here"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location, format!("/ui/incidents/{theirs_id}"));
    // Settled: the form says so, and one more answer is refused.
    let r = post_form(
        &n.base,
        &respond,
        &admin,
        &[("task", &asked_id), ("status", "done"), ("note", "x")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("already declined"), "{}", r.body);
    let answered = audited(n.store.as_ref(), "incident-respond");
    assert_eq!(answered.len(), 2);
    assert!(answered.iter().all(
        |e| e.partner == "operator" && e.dictionary.iter().any(|d| d == "addressed to cert-br")
    ));
    // Our own request is not ours to answer.
    let r = post_form(
        &n.base,
        &format!("/ui/incidents/{ours}/respond"),
        &admin,
        &[("task", &past), ("status", "acknowledged")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("was made by this node"), "{}", r.body);

    // The board: both incidents open; requests overdue first, then by status.
    let board = n.get("/ui/incidents", &admin);
    assert_eq!(board.status, 200);
    let at = |id: &str| {
        board
            .body
            .find(&format!("data-task=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} on the board"))
    };
    assert!(at(&past) < at(&future), "overdue first");
    assert!(at(&future) < at(&asked_id), "then pending before declined");
    assert!(
        board
            .body
            .contains(&format!("class=\"request overdue\" data-task=\"{past}\""))
    );
    assert!(
        board
            .body
            .contains(&format!("class=\"request\" data-task=\"{future}\""))
    );
    assert!(
        board.body.contains("C2 beaconing to 203.0.113.7")
            && board.body.contains("Phishing kit hosted in CN")
    );
    assert!(board.body.contains("data-status=\"declined\""));

    // The incident page: its timeline in order, with who and when, in three languages.
    let page = n.get(&format!("/ui/incidents/{theirs_id}"), &admin);
    assert_eq!(page.status, 200);
    let b = &page.body;
    let opened_at = b.find("data-kind=\"opened\"").expect("opened");
    let request_at = b.find("data-kind=\"request\"").expect("request");
    let answer_at = b.find("data-kind=\"answer\"").expect("answer");
    assert!(opened_at < request_at && request_at < answer_at);
    assert!(
        b.contains("CERT-BR") && b.contains("no legal basis here") && b.contains("Settled"),
        "{b}"
    );
    assert!(b.contains("<time dir=\"ltr\" datetime=\"20"));
    let ar = n.get(
        &format!("/ui/incidents/{ours}"),
        &format!("{admin}; lang=ar"),
    );
    assert_eq!(ar.status, 200);
    assert!(
        ar.body.contains("<html lang=\"ar\" dir=\"rtl\">"),
        "{}",
        &ar.body[..200]
    );
    assert!(ar.body.contains("الخط الزمني") && ar.body.contains("متأخر"));
    assert!(ar.body.contains("C2 beaconing to 203.0.113.7"));
    assert!(ar.body.contains("id=\"request-form\""));
    let zh = n.get(
        &format!("/ui/incidents/{ours}"),
        &format!("{admin}; lang=zh-CN"),
    );
    assert!(zh.body.contains("<html lang=\"zh-CN\" dir=\"ltr\">") && zh.body.contains("时间线"));
    let en = n.get(&format!("/ui/incidents/{ours}"), &admin);
    assert!(en.body.contains("Timeline") && en.body.contains("overdue"));

    // A partner: the same answer for an incident that exists and one that does not.
    let there = n.get(&format!("/ui/incidents/{ours}"), &partner);
    let nowhere = n.get(
        "/ui/incidents/incident--00000000-0000-4000-8000-000000000000",
        &partner,
    );
    assert_eq!(there.status, 403);
    // The page echoes the path asked for (the language switch's way back), so each id is
    // replaced by the same word before the answers are compared.
    let nowhere_id = "incident--00000000-0000-4000-8000-000000000000";
    assert_eq!(
        (there.status, there.body.replace(ours.as_str(), "ID")),
        (nowhere.status, nowhere.body.replace(nowhere_id, "ID"))
    );
    let r = post_form(
        &n.base,
        &path,
        &partner,
        &[
            ("to", "bsi"),
            ("ask", "x"),
            ("deadline", "2099-01-01T00:00"),
        ],
    );
    assert_eq!(r.status, 403);
    assert_eq!(audited(n.store.as_ref(), "incident-request").len(), 2);
    // The admin: an unknown incident is a 404 page.
    assert_eq!(
        n.get(
            "/ui/incidents/incident--00000000-0000-4000-8000-000000000000",
            &admin
        )
        .status,
        404
    );
}

/// Timing oracle F2 (issue 15) on the web UI: a partner's object page (and its graph) of an
/// object withheld from it and of one that does not exist answer alike, and both wait for
/// the answer floor (`[limits] answer_floor_ms`), the TAXII routes' mechanism. The only time
/// asserted is the lower bound that the floor's sleep guarantees.
#[test]
fn a_partners_object_pages_wait_for_the_answer_floor() {
    let floor = std::time::Duration::from_millis(300);
    let n = node_with(concord_server::Limits {
        answer_floor_ms: 300,
        answer_jitter_ms: 0,
        ..Default::default()
    });
    let partner = n.login(&n.partner_key);
    let admin = n.login(ADMIN);
    // The AMBER report is withheld from bsi (abroad, not a recipient); the other id exists
    // nowhere.
    let withheld = "report--3f0a1b2c-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    let missing = "report--3f0a1b2c-4d5e-4f60-8a9b-0c1d2e3f4a5c";
    assert_eq!(
        n.get(&format!("/ui/c/intel/o/{withheld}"), &admin).status,
        200
    );
    for suffix in ["", "/graph"] {
        let mut answers = Vec::new();
        for id in [withheld, missing] {
            let t0 = std::time::Instant::now();
            let r = n.get(&format!("/ui/c/intel/o/{id}{suffix}"), &partner);
            assert!(t0.elapsed() >= floor, "{id}{suffix}: {:?}", t0.elapsed());
            answers.push((r.status, r.body.replace(id, "<id>")));
        }
        assert_eq!(answers[0], answers[1], "{suffix}");
        assert_eq!(answers[0].0, 404, "{suffix}");
    }
}

/// Ingests `objects` into `collection` as received from `from` (a provenance name).
fn ingest_from(store: &dyn Store, collection: &str, from: &str, objects: serde_json::Value) {
    let c = store.collection(collection).unwrap().unwrap();
    let bundle = json!({"type": "bundle", "id": "bundle--0c2d9a4e-5b6f-4a7b-8c9d-0e1f2a3b4c5d",
                        "objects": objects});
    let r = ingest(
        store,
        &c.id,
        bundle.to_string().as_bytes(),
        IngestOptions {
            container: Container::Bundle,
            list_accepted: false,
            audit: None,
            provenance: &[from],
            settings: &[],
            max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
            cancel: None,
            unseen: None,
        },
        |_| {},
    )
    .unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

/// Issue 25: the home page. New objects since the last visit (kept in the database),
/// sightings per indicator and per partner, what went to each partner this week from the
/// audit log; a partner's names no other partner and no object withheld from it.
#[test]
fn the_dashboard_shows_what_is_new_and_a_partners_only_what_is_theirs() {
    let n = node();
    let store = n.store.as_ref();
    let intel = store.collection("intel").unwrap().unwrap();
    let private = store.collection("private").unwrap().unwrap();
    let acme_key = support::partner(store, "acme", "FR", &[intel.id.clone(), private.id.clone()]);
    let t = "2026-02-01T00:00:00.000Z";
    const INDICATOR: &str = "indicator--4d5e6f70-8192-4a3b-9c4d-5e6f708192a3";
    const REPORT: &str = "report--3f0a1b2c-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    let indicator = json!({"type": "indicator", "spec_version": "2.1", "id": INDICATOR,
        "created": t, "modified": t, "name": "Grey Pigeon C2", "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '203.0.113.9']", "valid_from": t,
        "object_marking_refs": [GREEN]});
    let sighting = |i: u32, of: &str, count: u32, marking: &str| {
        json!({"type": "sighting", "spec_version": "2.1",
               "id": format!("sighting--{i:08x}-1111-4111-8111-111111111111"),
               "created": t, "modified": t, "sighting_of_ref": of, "count": count,
               "object_marking_refs": [marking]})
    };
    ingest_from(
        store,
        "intel",
        "partner/acme",
        json!([indicator, sighting(1, INDICATOR, 5, GREEN)]),
    );
    ingest_from(
        store,
        "intel",
        "partner/bsi",
        json!([sighting(2, INDICATOR, 2, GREEN)]),
    );
    // A sighting of the AMBER report, which bsi does not receive, and one in a collection
    // bsi does not read.
    ingest_from(
        store,
        "intel",
        "partner/acme",
        json!([sighting(3, REPORT, 7, GREEN)]),
    );
    ingest_from(
        store,
        "private",
        "partner/acme",
        json!([sighting(4, INDICATOR, 9, GREEN)]),
    );
    // The audit: what went to acme and to bsi (one of bsi's withheld).
    let entries = |c: &str| {
        let mut out = Vec::new();
        concord_store::each_entry(
            store,
            c,
            &Default::default(),
            |e| -> Result<(), concord_store::StoreError> {
                out.push(e);
                Ok(())
            },
        )
        .unwrap();
        out
    };
    let record =
        |partner: &str, e: &concord_store::Entry, decision: &str| concord_store::AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: partner.into(),
            person: None,
            collection: intel.id.clone(),
            object_id: e.id.clone(),
            modified: e.version(),
            decision: decision.into(),
            transformations: if decision == "withheld" {
                vec!["tlp".into()]
            } else {
                vec![]
            },
            policy_version: "p@1".into(),
            vid: e.vid,
        };
    let held = entries(&intel.id);
    let to_acme: Vec<_> = held
        .iter()
        .take(4)
        .map(|e| record("acme", e, "sent"))
        .collect();
    store.append_audit(&to_acme).unwrap();
    let to_bsi: Vec<_> = held
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, e)| record("bsi", e, if i == 0 { "withheld" } else { "sent" }))
        .collect();
    store.append_audit(&to_bsi).unwrap();

    // The admin: everything, and the last visit is kept in the database.
    let admin = n.login(ADMIN);
    let r = n.get("/ui/", &admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"dashboard\"") && r.body.contains("aria-current=\"page\""));
    assert!(
        store.setting("ui.visit.admin").unwrap().is_some(),
        "the visit is stored"
    );
    assert!(
        r.body.contains("data-type=\"report\""),
        "new objects by type"
    );
    assert!(r.body.contains("id=\"sightings-by-indicator\"") && r.body.contains("Grey Pigeon C2"));
    let by_partner = section(&r.body, "sightings-by-partner");
    assert!(
        by_partner.contains("acme") && by_partner.contains("bsi"),
        "{by_partner}"
    );
    let week = section(&r.body, "sent-this-week");
    assert!(week.contains(">acme<") && week.contains(">bsi<"), "{week}");
    assert!(
        r.body.contains("<svg class=\"bars\"")
            && r.body.contains("<table id=\"sent-this-week-table\"")
    );
    assert!(!r.body.contains("style="), "no inline style under the CSP");
    // bsi's row: 2 received, 1 withheld, 1 transfer; acme's: 4 received.
    let row = |chart: &str, who: &str| -> Vec<u64> {
        let at = chart
            .find(&format!("<bdi>{who}</bdi></th>"))
            .unwrap_or_else(|| panic!("{who} in {chart}"));
        let tr = &chart[at..at + chart[at..].find("</tr>").unwrap()];
        tr.split("<td class=\"num\">")
            .skip(1)
            .map(|c| c[..c.find('<').unwrap()].parse().unwrap())
            .collect()
    };
    let bsi = row(week, "bsi");
    assert_eq!(
        bsi[bsi.len() - 3..],
        [2, 1, 1],
        "total, withheld, transfers: {bsi:?}"
    );
    assert_eq!(row(week, "acme")[7], 4);
    // Nothing new when the stored visit says the last one ended after everything was added.
    let later = concord_stix::Timestamp::now_micros().unix_nanos() + 60_000_000_000;
    store
        .set_setting(
            "ui.visit.admin",
            &format!("{{\"since_ns\":{later},\"last_ns\":{later}}}"),
        )
        .unwrap();
    let r = n.get("/ui/", &admin);
    assert!(
        r.body.contains("id=\"no-new\""),
        "{}",
        section(&r.body, "new")
    );

    // The partner bsi: its collection, its copies, itself only.
    let partner = n.login(&n.partner_key);
    let r = n.get("/ui/", &partner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(store.setting("ui.visit.partner/bsi").unwrap().is_some());
    for other in [
        "acme",
        "private",
        "Private",
        REPORT,
        "机密报告",
        "sighting--00000003",
        "sighting--00000004",
    ] {
        assert!(!r.body.contains(other), "bsi's dashboard names {other}");
    }
    assert!(
        !r.body.contains("data-type=\"report\""),
        "the withheld report is not counted"
    );
    assert!(!r.body.contains("id=\"waiting\"") && !r.body.contains("id=\"sync-health\""));
    let week = section(&r.body, "sent-this-week");
    // Received and transfers, no withheld: the two objects sent above, and the indicator
    // this very page named (door web-dashboard, recorded before the week was read).
    let own = row(week, "bsi");
    assert_eq!(own[own.len() - 2..], [3, 2], "{own:?}");
    assert!(
        !week.contains(&n_withheld_head()),
        "no withheld column for a partner"
    );
    let by_indicator = section(&r.body, "sightings-by-indicator");
    assert!(by_indicator.contains("Grey Pigeon C2"));
    // Its own sighting only is attributed, to itself.
    let by_partner = section(&r.body, "sightings-by-partner");
    assert!(by_partner.contains(">bsi<"), "{by_partner}");
    // The indicator's name it was shown is recorded as a transfer.
    assert!(!audited(store, "web-dashboard").is_empty());

    // acme, for contrast, sees what it may read in both collections.
    let acme = n.login(&acme_key);
    let r = n.get("/ui/", &acme);
    assert!(!r.body.contains(">bsi<"), "acme's dashboard names bsi");
}

/// The English heading of the withheld column.
fn n_withheld_head() -> String {
    ">Withheld<".to_owned()
}

/// The element with `id` up to its closing `</figure>`, `</section>` or end of page.
fn section<'a>(body: &'a str, id: &str) -> &'a str {
    let Some(at) = body.find(&format!("id=\"{id}\"")) else {
        return "";
    };
    let rest = &body[at..];
    let end = ["</figure>", "</section>"]
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Issue 19, items 2 and 4 over real HTTP: the partner list links to each partner's page,
/// which shows its directory entry (organisation, contacts, keys with fingerprints,
/// agreement, last activity) in English, Chinese and Arabic; the form there changes its
/// grants, groups and jurisdiction in place (the key stays: the partner's session and its
/// TAXII reads go on, now with the new rights), audited as door `partner-update` by
/// `admin`; a refused change keeps what was typed and says why; a partner's session, a
/// client without one and a form from another site change nothing.
#[test]
fn partner_page_shows_the_directory_and_its_form_changes_access_in_place() {
    let n = node();
    let intel = n.store.collection("intel").unwrap().unwrap();
    let private = n.store.collection("private").unwrap().unwrap();
    let was = n.store.partners().unwrap().remove(0);
    // Directory fields an operator gave (`partner set`).
    concord_admin::ops::directory::set_details(
        n.store.as_ref(),
        "bsi",
        &concord_admin::ops::directory::DetailsChange {
            identity: Some(serde_json::json!({
                "type": "identity", "spec_version": "2.1",
                "id": "identity--6c2a3b0e-8a7e-4d5c-9a51-2f0f4d1c7b11",
                "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                "name": "Bundesamt für Sicherheit in der Informationstechnik",
                "identity_class": "organization",
                "contact_information": "CERT-Bund, Bonn",
                "extensions": {
                    concord_admin::ops::directory::CONTACT_EXTENSION: {
                        "extension_type": "property-extension",
                        "email_addresses": [{"digital_contact_type": "work",
                                             "email_address_value": "certbund@bsi.example"}]
                    }
                }
            })),
            node_key: Some("11".repeat(32)),
            ..Default::default()
        },
        "operator",
        None,
    )
    .unwrap();
    let before = n.store.partners().unwrap();
    let admin = n.login(ADMIN);
    let partner = n.login(&n.partner_key);
    let page = "/ui/operator/partners/bsi";
    // The partner reads a page of objects (audited as door `web-list`): its last activity.
    assert_eq!(n.get("/ui/c/intel", &partner).status, 200);

    // Without a session: to the login page; a partner's session: the admin-only answer,
    // the same for a partner that does not exist; nothing changes.
    assert_eq!(n.get(page, "").status, 303);
    assert_eq!(n.get(page, &partner).status, 403);
    assert_eq!(n.get("/ui/operator/partners/nobody", &partner).status, 403);
    let grab = [("jurisdiction", "FR"), ("read", private.id.as_str())];
    assert_eq!(post_form(&n.base, page, &partner, &grab).status, 403);
    // Whatever the body: the admin-only answer before the form is read.
    let r = read(
        agent()
            .post(format!("{}{page}", n.base))
            .header("cookie", &partner)
            .header("content-type", "text/plain")
            .send("not a form")
            .unwrap(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(post_form(&n.base, page, "", &grab).status, 303);
    let r = read(
        agent()
            .post(format!("{}{page}", n.base))
            .header("cookie", &admin)
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .send(format!("jurisdiction=FR&read={}", private.id))
            .unwrap(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(n.store.partners().unwrap(), before);

    // The list links to the page; the page shows the directory.
    let r = n.get("/ui/operator/partners", &admin);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("href=\"/ui/operator/partners/bsi\""),
        "{}",
        r.body
    );
    let r = n.get(page, &admin);
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = section(&r.body, "partner-directory");
    assert!(dir.contains("Bundesamt für Sicherheit"), "{dir}");
    assert!(dir.contains("certbund@bsi.example") && dir.contains("CERT-Bund, Bonn"));
    assert!(section(&r.body, "partner-agreement").contains("none"));
    let keys = section(&r.body, "partner-keys");
    assert!(keys.contains(&was.key_id), "{keys}");
    let fp = concord_admin::ops::directory::node_key_fingerprint(&"11".repeat(32)).unwrap();
    assert!(
        keys.contains(&fp) && keys.contains(&"11".repeat(32)),
        "{keys}"
    );
    assert!(!section(&r.body, "partner-last-activity").contains("never"));
    for (lang, word) in [("zh-CN", "最近活动"), ("ar", "آخر نشاط")] {
        let r = n.get(page, &format!("{admin}; lang={lang}"));
        assert_eq!(r.status, 200);
        assert!(r.body.contains(word), "{lang}");
    }
    assert!(
        n.get(page, &format!("{admin}; lang=ar"))
            .body
            .contains("dir=\"rtl\"")
    );
    assert_eq!(n.get("/ui/operator/partners/nobody", &admin).status, 404);

    // A refused change: the reason, the form as typed, nothing changed or audited.
    let r = post_form(
        &n.base,
        page,
        &admin,
        &[("jurisdiction", "Germany"), ("groups", "eu-cert")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"partner-error\"") && r.body.contains("ISO 3166-1"));
    assert!(r.body.contains("value=\"Germany\"") && r.body.contains("value=\"eu-cert\""));
    assert!(audited(n.store.as_ref(), "partner-update").is_empty());

    // The change: read intel → read private, write intel, group eu-cert, jurisdiction FR.
    let r = post_form(
        &n.base,
        page,
        &admin,
        &[
            ("jurisdiction", "fr"),
            ("groups", "eu-cert, csirts"),
            ("read", private.id.as_str()),
            ("write", intel.id.as_str()),
        ],
    );
    assert_eq!(
        (r.status, r.location.as_str()),
        (303, "/ui/operator/partners/bsi?updated=1")
    );
    let now = n.store.partners().unwrap().remove(0);
    assert_eq!(
        (&now.jurisdiction, &now.groups, &now.read, &now.write),
        (
            &"FR".to_owned(),
            &vec!["eu-cert".to_owned(), "csirts".to_owned()],
            &vec![private.id.clone()],
            &vec![intel.id.clone()]
        )
    );
    assert_eq!(
        (&now.key_id, &now.key_hash),
        (&was.key_id, &was.key_hash),
        "same key"
    );
    let log = audited(n.store.as_ref(), "partner-update");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].direction.as_str(), log[0].partner.as_str()),
        ("admin", "admin")
    );
    for w in [
        "partner bsi".to_owned(),
        "jurisdiction DE -> FR".to_owned(),
        format!("read -{}", intel.id),
        format!("read +{}", private.id),
        format!("write +{}", intel.id),
        "group +eu-cert".to_owned(),
    ] {
        assert!(
            log[0].dictionary.contains(&w),
            "{w}: {:?}",
            log[0].dictionary
        );
    }
    let r = n.get(&r.location, &admin);
    assert!(r.body.contains("id=\"partner-updated\""));
    assert!(section(&r.body, "partner-read").contains("private"));
    // The same form again changes nothing and records nothing.
    let r = post_form(
        &n.base,
        page,
        &admin,
        &[
            ("jurisdiction", "FR"),
            ("groups", "eu-cert,csirts"),
            ("read", private.id.as_str()),
            ("write", intel.id.as_str()),
        ],
    );
    assert_eq!(r.status, 303);
    assert_eq!(audited(n.store.as_ref(), "partner-update").len(), 1);
}

/// Attack: a partner's pages are built from an index of its copies (the catalogue), kept
/// for a while. When the operator narrows the collection's sharing, the partner's very next
/// list must not show what it may no longer receive (the index was built under the old
/// sharing): its name and id would leave after the change.
#[test]
fn a_narrowed_sharing_shows_at_the_partners_next_page() {
    let n = node();
    let partner = n.login(&n.partner_key);
    let r = n.get("/ui/c/intel", &partner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("灰鸽子"), "GREEN to the community");
    // TLP:GREEN now for the group "eu-cert" only; bsi is in no group.
    let c = n.store.collection("intel").unwrap().unwrap();
    n.store
        .set_setting(
            &concord_policy::egress::sharing_setting_key(&c.id),
            r#"{"groups": ["eu-cert"], "recipients": [], "default_tlp": "amber"}"#,
        )
        .unwrap();
    let r = n.get("/ui/c/intel", &partner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("灰鸽子"), "withheld since the change");
    assert!(
        r.body.contains("Spearphishing Attachment"),
        "CLEAR still goes"
    );
}

/// Attack: the dashboard's note "more sightings were received than counted" must not tell a
/// partner that sightings withheld from it exist. Only what the viewer may see counts
/// towards `[limits] dashboard_max_sightings`: three AMBER sightings withheld from bsi and
/// two GREEN ones under a limit of two give the operator the note and bsi none, until a
/// third sighting that bsi may see arrives.
#[test]
fn the_sightings_limit_counts_only_what_the_viewer_may_see() {
    let n = node_with(concord_server::Limits {
        dashboard_max_sightings: 2,
        ..Default::default()
    });
    let store = n.store.as_ref();
    let t = "2026-02-01T00:00:00.000Z";
    const INDICATOR: &str = "indicator--4d5e6f70-8192-4a3b-9c4d-5e6f708192a3";
    let indicator = json!({"type": "indicator", "spec_version": "2.1", "id": INDICATOR,
        "created": t, "modified": t, "name": "Grey Pigeon C2", "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '203.0.113.9']", "valid_from": t,
        "object_marking_refs": [GREEN]});
    let sighting = |i: u32, marking: &str| {
        json!({"type": "sighting", "spec_version": "2.1",
               "id": format!("sighting--{i:08x}-2222-4222-8222-222222222222"),
               "created": t, "modified": t, "sighting_of_ref": INDICATOR, "count": 1,
               "object_marking_refs": [marking]})
    };
    // The withheld ones first: received first, so a limit that counted them would be
    // reached before bsi's own were read.
    ingest_from(
        store,
        "intel",
        "partner/acme",
        json!([
            indicator,
            sighting(1, AMBER),
            sighting(2, AMBER),
            sighting(3, AMBER)
        ]),
    );
    ingest_from(
        store,
        "intel",
        "partner/bsi",
        json!([sighting(4, GREEN), sighting(5, GREEN)]),
    );
    let admin = n.login(ADMIN);
    let r = n.get("/ui/", &admin);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("id=\"sightings-cut\""),
        "five received, two counted"
    );
    assert!(r.body.contains("<bdi>2</bdi>"), "the limit is named");
    let partner = n.login(&n.partner_key);
    let r = n.get("/ui/", &partner);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("id=\"sightings-cut\""),
        "bsi may see two sightings, all counted: the three withheld do not show"
    );
    assert!(section(&r.body, "sightings-by-indicator").contains("Grey Pigeon C2"));
    // A third that bsi may see: now its window holds more than it counts.
    ingest_from(store, "intel", "partner/bsi", json!([sighting(6, GREEN)]));
    let r = n.get("/ui/", &partner);
    assert!(
        r.body.contains("id=\"sightings-cut\""),
        "three seen, two counted"
    );
}
