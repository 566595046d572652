//! The TAXII 2.1 server over real HTTP on loopback.

use std::collections::HashSet;

use base64::Engine as _;

use crate::support::{Node, Server, TAXII, TOKEN, data};

const C: &str = "/concord/collections/ics";

fn ics_node() -> (Node, Server) {
    let node = Node::init();
    let (code, _) = node.import("ics", &[&data("stix/attack/ics-attack-18.1.json.gz")]);
    assert_eq!(code, 0);
    let server = node.serve();
    (node, server)
}

fn ics_ids() -> HashSet<String> {
    let v: serde_json::Value = serde_json::from_slice(&crate::support::read_data(
        "stix/attack/ics-attack-18.1.json.gz",
    ))
    .unwrap();
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

fn indicator(uuid: &str, modified: &str, name: &str) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{uuid}","created":"2016-04-06T20:03:48.000Z","modified":"{modified}","name":"{name}","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}}"#
    )
}

fn envelope(objects: &[String]) -> String {
    format!(r#"{{"objects":[{}]}}"#, objects.join(","))
}

/// Pages through `path` (which has a query with `limit`) and returns every object id in order.
fn page_all(s: &Server, path: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &next {
            Some(n) => format!("{path}&next={n}"),
            None => path.to_owned(),
        };
        let r = s.get(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        pages += 1;
        for o in j["objects"].as_array().into_iter().flatten() {
            ids.push(o["id"].as_str().unwrap().to_owned());
        }
        if j["more"] == true {
            next = Some(j["next"].as_str().unwrap().to_owned());
        } else {
            assert!(j.get("next").is_none());
            return (ids, pages);
        }
    }
}

#[test]
fn discovery_api_root_collections() {
    let (_node, s) = ics_node();
    let r = s.get("/taxii2/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(TAXII));
    assert_eq!(r.json()["api_roots"][0], format!("{}/concord/", s.base));
    let root = s.get("/concord/").json();
    assert_eq!(root["versions"][0], TAXII);
    assert_eq!(root["max_content_length"], 67108864);
    let cols = s.get("/concord/collections/").json();
    let c = &cols["collections"][0];
    assert_eq!(
        (
            c["alias"].as_str(),
            c["can_read"].as_bool(),
            c["can_write"].as_bool()
        ),
        (Some("ics"), Some(true), Some(true))
    );
    // By id as well as by alias.
    let by_id = s.get(&format!(
        "/concord/collections/{}/",
        c["id"].as_str().unwrap()
    ));
    assert_eq!(by_id.json()["alias"], "ics");
    assert_eq!(s.get("/concord/collections/nope/").status, 404);
    assert_eq!(s.get("/nope/").status, 404);
    assert_eq!(s.get("/concord/status/nope/").status, 404);
}

#[test]
fn authentication_and_negotiation() {
    let (_node, s) = ics_node();
    let r = s.request("GET", "/taxii2/", &[("Accept", TAXII)], None);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(r.json()["http_status"], "401");
    let r = s.request(
        "GET",
        "/taxii2/",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        None,
    );
    assert_eq!(r.status, 401);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anyone:{TOKEN}"))
    );
    let r = s.request(
        "GET",
        "/taxii2/",
        &[("Authorization", &basic), ("Accept", TAXII)],
        None,
    );
    assert_eq!(r.status, 200);
    let r = s.request(
        "GET",
        "/taxii2/",
        &[("Authorization", &basic), ("Accept", "application/json")],
        None,
    );
    assert_eq!(r.status, 406);
    assert_eq!(r.json()["title"], "Not acceptable");
    let r = s.request(
        "POST",
        &format!("{C}/objects/"),
        &[
            ("Authorization", &basic),
            ("Accept", TAXII),
            ("Content-Type", "application/json"),
        ],
        Some("{\"objects\":[]}"),
    );
    assert_eq!(r.status, 415);
    let r = s.request(
        "PUT",
        &format!("{C}/objects/"),
        &[("Authorization", &basic)],
        None,
    );
    assert_eq!(r.status, 405);
}

#[test]
fn paging_never_skips_or_repeats() {
    let (_node, s) = ics_node();
    let (ids, pages) = page_all(&s, &format!("{C}/objects/?limit=7"));
    assert_eq!(pages, 1826usize.div_ceil(7));
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "an object was repeated");
    assert_eq!(unique, ics_ids());
    // The manifest pages the same way.
    let (m, _) = page_all(&s, &format!("{C}/manifest/?limit=500"));
    assert_eq!(m, ids);
    // All 1,826 share one date_added (one import): the headers say so.
    let r = s.get(&format!("{C}/objects/?limit=3"));
    assert_eq!(
        r.header("x-taxii-date-added-first"),
        r.header("x-taxii-date-added-last")
    );
    assert!(r.header("x-taxii-date-added-first").unwrap().ends_with('Z'));
}

#[test]
fn paging_is_stable_while_others_write() {
    let (_node, s) = ics_node();
    let base = s.base.clone();
    let writer = std::thread::spawn(move || {
        let s2 = Server::client(base);
        for i in 0..40 {
            let id = format!("{i:08x}-17d4-4cbf-938f-98ee46b3cd3f");
            let r = s2.post(
                &format!("{C}/objects/"),
                &envelope(&[indicator(&id, "2017-01-01T00:00:00.000Z", "w")]),
            );
            assert_eq!(r.status, 202, "{}", r.body);
        }
    });
    let (ids, _) = page_all(&s, &format!("{C}/objects/?limit=25"));
    writer.join().unwrap();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "an object was repeated");
    assert!(ics_ids().is_subset(&unique), "an object was skipped");
    // Continuing from the last page's position later finds exactly the rest.
    let (all, _) = page_all(&s, &format!("{C}/objects/?limit=1000"));
    assert_eq!(all.len(), 1826 + 40);
}

#[test]
fn filters() {
    let (_node, s) = ics_node();
    let r = s
        .get(&format!(
            "{C}/objects/?match[type]=malware,campaign&limit=1000"
        ))
        .json();
    let objs = r["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 30 + 8);
    assert!(
        objs.iter()
            .all(|o| o["type"] == "malware" || o["type"] == "campaign")
    );
    let ids: Vec<String> = ics_ids().into_iter().take(3).collect();
    let r = s
        .get(&format!("{C}/objects/?match[id]={}", ids.join(",")))
        .json();
    assert_eq!(r["objects"].as_array().unwrap().len(), 3);
    let r = s
        .get(&format!("{C}/objects/?match[spec_version]=2.0"))
        .json();
    assert!(r.get("objects").is_none(), "{r}");
    let r = s
        .get(&format!(
            "{C}/objects/?match[spec_version]=2.1&match[type]=x-mitre-matrix"
        ))
        .json();
    assert_eq!(r["objects"].as_array().unwrap().len(), 1);
    // added_after: strictly later than the import's date_added → nothing.
    let first = s.get(&format!("{C}/objects/?limit=1"));
    let added = first.header("x-taxii-date-added-first").unwrap().to_owned();
    let r = s.get(&format!("{C}/objects/?added_after={added}")).json();
    assert!(r.get("objects").is_none());
    for bad in [
        "limit=0",
        "added_after=yesterday",
        "match[version]=newest",
        "match[colour]=red",
        "next=zzz",
    ] {
        let r = s.get(&format!("{C}/objects/?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(!r.json()["description"].as_str().unwrap().is_empty());
    }
    // Issue 24, item 7: a repeated parameter is a 400 that names it, on objects and manifest,
    // percent-encoded or not; not "the last wins" nor "OR-ed".
    for (name, query) in [
        (
            "added_after",
            format!("added_after={added}&added_after=2016-01-01T00:00:00Z"),
        ),
        ("limit", "limit=1&limit=1000".to_owned()),
        (
            "match[type]",
            "match[type]=malware&match[type]=campaign".to_owned(),
        ),
        (
            "match[type]",
            "match%5Btype%5D=malware&match[type]=campaign".to_owned(),
        ),
    ] {
        for endpoint in ["objects", "manifest"] {
            let r = s.get(&format!("{C}/{endpoint}/?{query}"));
            assert_eq!(r.status, 400, "{query}: {}", r.body);
            let d = r.json()["description"].as_str().unwrap().to_owned();
            assert!(
                d.contains(&format!("{name:?} is given more than once")),
                "{d}"
            );
        }
    }
}

#[test]
fn versions_post_status_delete() {
    let node = Node::init();
    let (code, _) = node.import(
        "w",
        &[&data(
            "stix/oasis/cti-documentation/indicator-for-malicious-url.json",
        )],
    );
    assert_eq!(code, 0);
    let s = node.serve();
    let c = "/concord/collections/w";
    let uuid = "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let id = format!("indicator--{uuid}");
    let v1 = indicator(uuid, "2016-04-06T20:03:48.000Z", "one");
    let v2 = indicator(uuid, "2017-01-01T00:00:00.123456789Z", "two");
    let conflict = indicator(uuid, "2016-04-06T20:03:48.000Z", "changed");
    let r = s.post(&format!("{c}/objects/"), &envelope(&[v1, v2.clone()]));
    assert_eq!(r.status, 202, "{}", r.body);
    let st = r.json();
    assert_eq!(
        (
            st["status"].as_str(),
            st["total_count"].as_u64(),
            st["success_count"].as_u64()
        ),
        (Some("complete"), Some(2), Some(2))
    );
    // The status resource stays readable at its URL.
    let again = s.get(&format!("/concord/status/{}/", st["id"].as_str().unwrap()));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["success_count"], 2);
    // Re-posting v2 and a conflicting v1: one success (already present), one failure.
    let r = s
        .post(
            &format!("{c}/objects/"),
            &envelope(&[v2, conflict, "{\"type\":\"note\"}".to_owned()]),
        )
        .json();
    assert_eq!(
        (r["success_count"].as_u64(), r["failure_count"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    assert!(
        r["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already holds a different version")
    );

    let versions = s.get(&format!("{c}/objects/{id}/versions/")).json();
    assert_eq!(
        versions["versions"],
        serde_json::json!(["2016-04-06T20:03:48.000Z", "2017-01-01T00:00:00.123456789Z"])
    );
    let last = s.get(&format!("{c}/objects/{id}/")).json();
    assert_eq!(last["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        last["objects"][0]["modified"], "2017-01-01T00:00:00.123456789Z",
        "precision kept"
    );
    let first = s
        .get(&format!("{c}/objects/{id}/?match[version]=first"))
        .json();
    assert_eq!(first["objects"][0]["name"], "one");
    let all = s
        .get(&format!("{c}/objects/{id}/?match[version]=all"))
        .json();
    assert_eq!(all["objects"].as_array().unwrap().len(), 2);
    let at = s
        .get(&format!(
            "{c}/objects/{id}/?match[version]=2016-04-06T20:03:48Z"
        ))
        .json();
    assert_eq!(at["objects"][0]["name"], "one");
    let manifest = s
        .get(&format!("{c}/manifest/?match[id]={id}&match[version]=all"))
        .json();
    assert_eq!(manifest["objects"].as_array().unwrap().len(), 2);
    assert_eq!(
        manifest["objects"][1]["version"],
        "2017-01-01T00:00:00.123456789Z"
    );
    assert_eq!(
        manifest["objects"][1]["media_type"],
        "application/stix+json;version=2.1"
    );

    // Delete the first version only, then the object.
    assert_eq!(
        s.delete(&format!("{c}/objects/{id}/?match[version]=first"))
            .status,
        200
    );
    let v = s.get(&format!("{c}/objects/{id}/versions/")).json();
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.delete(&format!("{c}/objects/{id}/?match[version]=all"))
            .status,
        200
    );
    assert_eq!(s.get(&format!("{c}/objects/{id}/")).status, 404);
    assert_eq!(s.get(&format!("{c}/objects/{id}/versions/")).status, 404);
    let m = s.get(&format!("{c}/manifest/?match[id]={id}")).json();
    assert!(m.get("objects").is_none());
    assert_eq!(s.delete(&format!("{c}/objects/{id}/")).status, 404);
}

#[test]
fn bodies_over_max_content_length_get_413() {
    let node = Node::init();
    node.import(
        "w",
        &[&data(
            "stix/oasis/cti-documentation/indicator-for-malicious-url.json",
        )],
    );
    let s = node.serve();
    // A declared 100 MB body is refused before it is sent.
    use std::io::{Read, Write};
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST /concord/collections/w/objects/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {TAXII}\r\nContent-Length: 104857600\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(s);
    // A body really sent over a small limit, without a usable Content-Length check.
    let s = node.serve_with(&[("CONCORD_MAX_CONTENT_LENGTH", "1000")]);
    assert_eq!(s.get("/concord/").json()["max_content_length"], 1000);
    let big = envelope(&[indicator(
        "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "2016-04-06T20:03:48.000Z",
        &"x".repeat(2000),
    )]);
    let r = s.post("/concord/collections/w/objects/", &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["http_status"], "413");
}

#[test]
fn malformed_post_bodies() {
    let node = Node::init();
    node.import(
        "w",
        &[&data(
            "stix/oasis/cti-documentation/indicator-for-malicious-url.json",
        )],
    );
    let s = node.serve();
    let r = s.post("/concord/collections/w/objects/", "{\"objects\": [");
    assert_eq!(r.status, 400);
    assert!(r.json()["description"].as_str().unwrap().contains("line 1"));
    let r = s.post("/concord/collections/w/objects/", "{\"more\": false}");
    assert_eq!(r.status, 422);
    let deep = format!(
        "{{\"objects\":[{}{}]}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = s.post("/concord/collections/w/objects/", &deep);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["failure_count"], 1);
}

/// Issue 16, item 5: an indicator whose versions are of year 0001, a leap second and year
/// 9999 (`valid_until: 9999-12-31T23:59:59Z`, the "never expires" of real feeds) imports,
/// is served byte for byte, in time order, and is selected exactly by `match[version]`,
/// `added_after` and paging.
#[test]
fn timestamps_of_years_0001_and_9999_and_leap_seconds_round_trip() {
    let node = Node::init();
    let tmp = tempfile::tempdir().unwrap();
    let uuid = "3b0e7c3e-6d8e-4a4b-9d1c-2f1e0a9b8c7d";
    let id = format!("indicator--{uuid}");
    // Unusual spacing on purpose: only the producer's bytes come out like this.
    let version = |created: &str, modified: &str, extra: &str| {
        format!(
            r#"{{ "type":"indicator", "spec_version":"2.1","id":"{id}", "created":"{created}","modified" : "{modified}","name":"never expires","pattern":"[ipv4-addr:value = '203.0.113.9']","pattern_type":"stix","valid_from":"0001-01-01T00:00:00Z"{extra} }}"#
        )
    };
    let objects = [
        version(
            "0001-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.000Z",
            r#","valid_until":"9999-12-31T23:59:59Z""#,
        ),
        version("0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z", ""),
        version(
            "0001-01-01T00:00:00.000Z",
            "2016-12-31T23:59:60.500Z",
            r#","valid_until":"2016-12-31T23:59:60Z""#,
        ),
    ];
    let file = tmp.path().join("far.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
            objects.join(",")
        ),
    )
    .unwrap();
    let (code, r) = node.import("far", &[&file]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["files"][0]["added"], 3, "{r}");
    let s = node.serve();
    let c = "/concord/collections/far";
    // Every version, byte for byte, in time order: 0001, the leap second, 9999.
    let all = s.get(&format!("{c}/objects/?match[version]=all"));
    assert_eq!(all.status, 200, "{}", all.body);
    let at = |o: &String| {
        all.body
            .find(o.as_str())
            .unwrap_or_else(|| panic!("{o} not served as written"))
    };
    assert!(at(&objects[1]) < at(&objects[2]) && at(&objects[2]) < at(&objects[0]));
    let versions = s.get(&format!("{c}/objects/{id}/versions/")).json();
    assert_eq!(
        versions["versions"],
        serde_json::json!([
            "0001-01-01T00:00:00.000Z",
            "2016-12-31T23:59:60.500Z",
            "9999-12-31T23:59:59.000Z"
        ])
    );
    // The default (last) is the year-9999 version.
    let last = s.get(&format!("{c}/objects/{id}/"));
    assert!(last.body.contains(&objects[0]), "{}", last.body);
    // match[version] by instant, written another way than stored.
    for (asked, want) in [
        ("9999-12-31T23:59:59Z", &objects[0]),
        ("0001-01-01T00:00:00Z", &objects[1]),
        ("2016-12-31T23:59:60.5Z", &objects[2]),
    ] {
        let r = s.get(&format!("{c}/objects/?match[version]={asked}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["objects"].as_array().unwrap().len(), 1, "{asked}");
        assert!(r.body.contains(want.as_str()), "{asked}: {}", r.body);
    }
    let none = s.get(&format!("{c}/objects/?match[version]=2016-12-31T23:59:60Z"));
    assert!(none.json()["objects"].as_array().is_none_or(Vec::is_empty));
    // added_after over the whole range: everything is after 0001, nothing after 9999.
    let after = |t: &str| {
        s.get(&format!("{c}/objects/?match[version]=all&added_after={t}"))
            .json()["objects"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(after("0001-01-01T00:00:00Z"), 3);
    assert_eq!(after("9999-12-31T23:59:60.999Z"), 0);
    // Paging one version at a time with next tokens: the same three, once each.
    let (ids, pages) = page_all(&s, &format!("{c}/objects/?match[version]=all&limit=1"));
    assert_eq!((ids.len(), pages), (3, 3));
}
