//! The conflict oracle (issue 15): a partner with write access POSTs a version under the
//! `(id, modified)` of a version withheld from it (TLP:RED), or with another `created`; the
//! status resource, and everything it reads afterwards, is what it gets for a version that
//! is new to the collection. The withheld version stays, untouched by the partner's
//! DELETE.

// Shared with the other tests and `examples/oracle_timing.rs`: not every item is used here.
#[allow(dead_code)]
#[path = "support/oracle.rs"]
mod oracle;

use concord_server::Limits;
use oracle::{BASE, Client};
use serde_json::{Value, json};

const T: &str = "2024-01-01T00:00:00.000Z";

fn indicator(id: &str, created: &str, modified: &str, note: &str) -> Value {
    json!({"type": "indicator", "spec_version": "2.1", "id": id,
        "created": created, "modified": modified, "valid_from": T, "pattern_type": "stix",
        "pattern": "[domain-name:value = 'partner.example']", "description": note})
}

fn envelope(objects: &[Value]) -> String {
    json!({ "objects": objects }).to_string()
}

/// The status resource of a POST without what differs between any two POSTs (its id and
/// time), the object ids replaced by `<id>`.
fn status_shape(a: &oracle::Answer, ids: &[&str]) -> (u16, Value) {
    let mut v: Value = serde_json::from_str(&a.body).expect("status JSON");
    let m = v.as_object_mut().expect("status object");
    m.remove("id");
    m.remove("request_timestamp");
    let mut text = v.to_string();
    for id in ids {
        text = text.replace(id, "<id>");
    }
    (a.status, serde_json::from_str(&text).unwrap())
}

fn objects_of(a: &oracle::Answer) -> Vec<Value> {
    let v: Value = serde_json::from_str(&a.body).expect("JSON");
    v["objects"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_partners_write_over_a_withheld_version_answers_and_reads_back_as_a_new_one() {
    let node = oracle::node(Limits {
        answer_floor_ms: 0,
        ..Limits::default()
    });
    let mut partner = Client::new(node.addr, &node.key);
    let mut admin = Client::new(node.addr, oracle::ADMIN);
    let objects = format!("{BASE}/objects/");
    let red = node.red[0].clone();
    let red_created = node.red[1].clone();
    let fresh = oracle::missing_indicator_id(11, 11);
    let fresh_created = oracle::missing_indicator_id(12, 12);
    let later = "2024-06-01T00:00:00.000Z";

    // The same (id, modified) as a RED version, other content; and an id the node has never
    // held. The status resources are the same.
    let over = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&red, T, T, "mine")]),
    );
    let new = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&fresh, T, T, "mine")]),
    );
    assert_eq!(over.status, 202, "{}", over.body);
    assert_eq!(
        status_shape(&over, &[&red]),
        status_shape(&new, &[&fresh]),
        "{} / {}",
        over.body,
        new.body
    );
    assert!(!over.body.contains("already"), "{}", over.body);
    // A new version with another `created` than the RED one: no conflict, nothing of the
    // RED version (its `created`) in the answer.
    let other = "2023-01-01T00:00:00.000Z";
    let a = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&red_created, other, later, "mine")]),
    );
    let b = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&fresh_created, other, later, "mine")]),
    );
    assert_eq!(
        status_shape(&a, &[&red_created]),
        status_shape(&b, &[&fresh_created]),
        "{} / {}",
        a.body,
        b.body
    );
    assert!(!a.body.contains(T), "{}", a.body);

    // What the partner reads afterwards: its own version, on every door, as for the new id.
    for (held, new_id) in [(&red, &fresh), (&red_created, &fresh_created)] {
        for suffix in ["", "versions/", "?match[version]=all"] {
            let a = partner.exchange("GET", &format!("{objects}{held}/{suffix}"));
            let b = partner.exchange("GET", &format!("{objects}{new_id}/{suffix}"));
            assert_eq!(a.status, 200, "{held} {suffix}: {}", a.body);
            assert_eq!(
                a.body.replace(held.as_str(), "<id>"),
                b.body.replace(new_id.as_str(), "<id>"),
                "{suffix}"
            );
        }
        for q in ["objects", "manifest"] {
            let a = partner.exchange("GET", &format!("{BASE}/{q}/?match[id]={held}"));
            let b = partner.exchange("GET", &format!("{BASE}/{q}/?match[id]={new_id}"));
            let strip = |a: &oracle::Answer, id: &str| {
                let mut v: Value = serde_json::from_str(&a.body).unwrap();
                if let Some(list) = v["objects"].as_array_mut() {
                    for o in list {
                        // `date_added` of the manifest: the two were added a moment apart.
                        o.as_object_mut().unwrap().remove("date_added");
                    }
                }
                v.to_string().replace(id, "<id>")
            };
            assert_eq!(strip(&a, held), strip(&b, new_id), "{q}");
        }
    }
    let mine = objects_of(&partner.exchange("GET", &format!("{objects}{red}/")));
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["description"], "mine");

    // A relationship the partner writes to its version resolves as to a new object's.
    let rel = |id: &str, to: &str| {
        json!({"type": "relationship", "spec_version": "2.1", "id": id, "created": T,
            "modified": T, "relationship_type": "related-to", "source_ref": to,
            "target_ref": fresh_created})
    };
    let (r1, r2) = (
        oracle::missing_indicator_id(21, 21).replace("indicator--", "relationship--"),
        oracle::missing_indicator_id(22, 22).replace("indicator--", "relationship--"),
    );
    let posted = partner.send(
        "POST",
        &objects,
        &envelope(&[rel(&r1, &red), rel(&r2, &fresh)]),
    );
    assert_eq!(posted.status, 202, "{}", posted.body);
    for r in [&r1, &r2] {
        let got = objects_of(&partner.exchange("GET", &format!("{objects}{r}/")));
        assert_eq!(got.len(), 1, "{r}");
        assert!(got[0].get("source_ref").is_some(), "{r}: {}", got[0]);
    }

    // The RED version is still there, for the operator alone: the partner's is foreign (it
    // did not create the object, STIX 2.1 §3.6), read by nobody but the partner.
    let all = objects_of(&admin.exchange("GET", &format!("{objects}{red}/?match[version]=all")));
    let notes: Vec<&str> = all
        .iter()
        .map(|o| o["description"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(notes.iter().all(|d| d.starts_with("ddd")), "{notes:?}");

    // The partner's DELETE removes its own version only, and answers as for a new one.
    let a = partner.exchange("DELETE", &format!("{objects}{red}/"));
    let b = partner.exchange("DELETE", &format!("{objects}{fresh}/"));
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
    for id in [&red, &fresh] {
        let r = partner.exchange("GET", &format!("{objects}{id}/"));
        assert_eq!(r.status, 404, "{id}: {}", r.body);
    }
    let left = objects_of(&admin.exchange("GET", &format!("{objects}{red}/?match[version]=all")));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0]["object_marking_refs"].is_array(),
        "the RED version is the one left: {}",
        left[0]
    );

    // A partner that may only write receives nothing: no version of the collection, CLEAR
    // or RED, shapes its answer.
    let mut inbox = Client::new(node.addr, &node.write_only_key);
    let fresh = oracle::missing_indicator_id(31, 31);
    let new = inbox.send(
        "POST",
        &objects,
        &envelope(&[indicator(&fresh, T, T, "inbox")]),
    );
    for held in [&node.red[5], &node.clear[5]] {
        let over = inbox.send(
            "POST",
            &objects,
            &envelope(&[indicator(held, T, T, "inbox")]),
        );
        assert_eq!(
            status_shape(&over, &[held]),
            status_shape(&new, &[&fresh]),
            "{} / {}",
            over.body,
            new.body
        );
    }
}

/// Only an object's creator makes new versions of it (STIX 2.1 §3.6; issue 18): a partner
/// that writes a new version of an object it receives but did not bring is refused, naming
/// the rule, also after sending the object back unchanged (an echo makes it no creator);
/// its new version of an object withheld from it answers and reads back as a new object's,
/// and nobody else reads it, the operator included (it never becomes the newest version);
/// its own objects it versions as before.
#[test]
fn only_an_objects_creator_makes_new_versions_of_it() {
    let node = oracle::node(Limits {
        answer_floor_ms: 0,
        ..Limits::default()
    });
    let mut partner = Client::new(node.addr, &node.key);
    let mut admin = Client::new(node.addr, oracle::ADMIN);
    let objects = format!("{BASE}/objects/");
    let later = "2025-01-01T00:00:00.000Z";
    let failures = |a: &oracle::Answer| -> Vec<String> {
        let v: Value = serde_json::from_str(&a.body).expect("status JSON");
        v["failures"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|f| f["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let newest = |c: &mut Client, id: &str| -> Vec<Value> {
        objects_of(&c.exchange("GET", &format!("{objects}{id}/")))
    };

    // The operator's CLEAR indicator, which the partner receives: sent back unchanged, it is
    // already held; a new version of it is refused, and the partner still reads the
    // operator's.
    let clear = node.clear[0].clone();
    let held = newest(&mut partner, &clear);
    assert_eq!(held.len(), 1);
    let echo = partner.send("POST", &objects, &envelope(&held));
    assert_eq!(echo.status, 202, "{}", echo.body);
    assert!(failures(&echo).is_empty(), "{}", echo.body);
    let forged = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&clear, T, later, "closed by the partner")]),
    );
    let why = failures(&forged);
    assert_eq!(why.len(), 1, "{}", forged.body);
    assert!(
        why[0].contains("only an object's creator") && why[0].contains("STIX 2.1 §3.6"),
        "{why:?}"
    );
    assert_eq!(newest(&mut partner, &clear), held);
    assert_eq!(newest(&mut admin, &clear)[0]["modified"], T);

    // A RED indicator, withheld from the partner: a new version answers as a new object's,
    // reads back to the partner, and is nobody else's newest version.
    let red = node.red[3].clone();
    let fresh = oracle::missing_indicator_id(41, 41);
    let over = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&red, T, later, "forged")]),
    );
    let new = partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(&fresh, T, later, "forged")]),
    );
    assert_eq!(
        status_shape(&over, &[&red]),
        status_shape(&new, &[&fresh]),
        "{} / {}",
        over.body,
        new.body
    );
    assert_eq!(newest(&mut partner, &red)[0]["description"], "forged");
    let operator = newest(&mut admin, &red);
    assert_eq!(operator.len(), 1, "{operator:?}");
    assert_eq!(
        operator[0]["modified"], T,
        "the operator's newest is the RED one"
    );
    let all = objects_of(&admin.exchange("GET", &format!("{objects}{red}/?match[version]=all")));
    assert!(all.iter().all(|o| o["description"] != "forged"), "{all:?}");
    // A later version of its foreign one stays foreign.
    partner.send(
        "POST",
        &objects,
        &envelope(&[indicator(
            &red,
            T,
            "2026-01-01T00:00:00.000Z",
            "forged again",
        )]),
    );
    assert_eq!(newest(&mut admin, &red)[0]["modified"], T);
    assert_eq!(newest(&mut partner, &red)[0]["description"], "forged again");

    // Its own object: versioned as before, and the operator reads the newest.
    let own = oracle::missing_indicator_id(42, 42);
    for (modified, note) in [(T, "v1"), (later, "v2")] {
        let a = partner.send(
            "POST",
            &objects,
            &envelope(&[indicator(&own, T, modified, note)]),
        );
        assert!(failures(&a).is_empty(), "{}", a.body);
    }
    assert_eq!(newest(&mut admin, &own)[0]["description"], "v2");
    assert_eq!(newest(&mut partner, &own)[0]["description"], "v2");
}

/// An answer as [`masked`] gives it: status, headers, body.
type Masked = (u16, Vec<(String, String)>, String);

/// An answer without what differs between any two requests (`Date`, the request id), the
/// object ids replaced by `<id>`, and without `next` (a token is sealed with a fresh nonce
/// each time; [`pages`] compares the pages it leads to instead).
fn masked(a: &oracle::Answer, id: &str) -> Masked {
    let headers = a
        .headers
        .iter()
        .filter(|(k, _)| k != "date" && k != "x-request-id")
        .map(|(k, v)| (k.clone(), v.replace(id, "<id>")))
        .collect();
    let body = match serde_json::from_str::<Value>(&a.body) {
        Ok(Value::Object(mut m)) => {
            m.remove("next");
            Value::Object(m).to_string()
        }
        _ => a.body.clone(),
    };
    (a.status, headers, body.replace(id, "<id>"))
}

/// The pages of `path` (`limit=1`) up to the last, each [`masked`].
fn pages(c: &mut Client, path: &str, id: &str) -> Vec<Masked> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(n) => format!("{path}&next={n}"),
            None => path.to_owned(),
        };
        let a = c.exchange("GET", &url);
        out.push(masked(&a, id));
        next = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| v["next"].as_str().map(str::to_owned));
        if next.is_none() || out.len() > 10 {
            return out;
        }
    }
}

/// Issue 15, attack round 2 finding 4 of issue 18: a partner's versions of an object
/// withheld from it (TLP:RED), older or newer than the withheld one, read back through every
/// version selector, door and page as the same versions of an object new to the node, byte
/// for byte but the id: `last` (the default) never picks the newer RED version only to
/// withhold it, `first` never the older one. Nobody else's reading changes.
fn versions_over_a_withheld_object_read_back_as_a_new_objects(backend: oracle::Backend<'_>) {
    let node = oracle::node_on(
        Limits {
            answer_floor_ms: 0,
            ..Limits::default()
        },
        backend,
    );
    let mut partner = Client::new(node.addr, &node.key);
    let mut admin = Client::new(node.addr, oracle::ADMIN);
    let objects = format!("{BASE}/objects/");
    // The RED versions are at `T`: the partner's two versions before it, then after it.
    let scenarios = [
        ("2023-01-01T00:00:00.000Z", "2023-06-01T00:00:00.000Z"),
        ("2024-06-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"),
    ];
    for (n, (v1, v2)) in scenarios.into_iter().enumerate() {
        let held = node.red[10 + n].clone();
        let fresh = oracle::missing_indicator_id(50 + n as u64, 50);
        // One envelope: both ids get the same date_added, so the manifests and the
        // X-TAXII-Date-Added headers compare too.
        let posted = partner.send(
            "POST",
            &objects,
            &envelope(&[
                indicator(&held, v1, v1, "mine v1"),
                indicator(&fresh, v1, v1, "mine v1"),
                indicator(&held, v1, v2, "mine v2"),
                indicator(&fresh, v1, v2, "mine v2"),
            ]),
        );
        assert_eq!(posted.status, 202, "{}", posted.body);
        assert_eq!(
            serde_json::from_str::<Value>(&posted.body).unwrap()["success_count"],
            4,
            "{}",
            posted.body
        );
        let selectors = [
            "last",
            "first",
            "all",
            v1,
            v2,
            T,
            "first&match[version]=last",
        ];
        let paths: [fn(&str, &str) -> String; 3] = [
            |id, s| format!("{BASE}/objects/{id}/?match[version]={s}"),
            |id, s| format!("{BASE}/objects/?match[id]={id}&match[version]={s}"),
            |id, s| format!("{BASE}/manifest/?match[id]={id}&match[version]={s}"),
        ];
        let mut compared = Vec::new();
        for path in paths {
            for s in selectors {
                compared.push((path(&held, s), path(&fresh, s)));
            }
        }
        for path in [
            |id: &str| format!("{BASE}/objects/{id}/versions/"),
            |id: &str| format!("{BASE}/objects/{id}/"),
            |id: &str| format!("{BASE}/objects/?match[id]={id}"),
            |id: &str| format!("{BASE}/manifest/?match[id]={id}"),
        ] {
            compared.push((path(&held), path(&fresh)));
        }
        for (a, b) in &compared {
            let got = masked(&partner.exchange("GET", a), &held);
            let want = masked(&partner.exchange("GET", b), &fresh);
            assert_eq!(got, want, "{a}");
        }
        // `added_after` with pages of one entry, every version.
        for page_path in [
            |id: &str| {
                format!(
                    "{BASE}/objects/?match[id]={id}&match[version]=all&limit=1\
                     &added_after=2000-01-01T00:00:00Z"
                )
            },
            |id: &str| {
                format!(
                    "{BASE}/manifest/?match[id]={id}&match[version]=all&limit=1\
                     &added_after=2000-01-01T00:00:00Z"
                )
            },
            |id: &str| format!("{BASE}/objects/{id}/?match[version]=all&limit=1"),
        ] {
            let got = pages(&mut partner, &page_path(&held), &held);
            let want = pages(&mut partner, &page_path(&fresh), &fresh);
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got, want, "{}", page_path(&held));
        }
        // It reads its own newest, and the operator still reads the RED version alone.
        let newest = objects_of(&partner.exchange("GET", &format!("{objects}{held}/")));
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0]["description"], "mine v2");
        let operator =
            objects_of(&admin.exchange("GET", &format!("{objects}{held}/?match[version]=all")));
        assert_eq!(operator.len(), 1, "{operator:?}");
        assert_eq!(operator[0]["modified"], T);
        assert!(operator[0]["object_marking_refs"].is_array());
    }
}

#[test]
fn versions_over_a_withheld_object_read_back_as_a_new_objects_on_sqlite() {
    versions_over_a_withheld_object_read_back_as_a_new_objects(oracle::Backend::Sqlite);
}

#[test]
fn versions_over_a_withheld_object_read_back_as_a_new_objects_on_postgres() {
    let Some(url) = oracle::postgres_url() else {
        return;
    };
    versions_over_a_withheld_object_read_back_as_a_new_objects(oracle::Backend::Postgres(&url));
}
