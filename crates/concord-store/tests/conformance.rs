//! One conformance suite for every `Store` backend (quickwit's metastore test-suite shape).
//! Each backend instantiates `store_suite!` with a constructor: SQLite always, PostgreSQL when
//! `CONCORD_TEST_POSTGRES_URL` names a database (each test then works in a schema of its own,
//! dropped at the end, so the tests run in parallel).

use concord_stix::{ObjectHeader, validate_object};
use concord_store::postgres::ScratchSchema;
use concord_store::{
    AddOutcome, AuditError, AuditRecord, NewCollection, NewObject, ObjectFilter, PageRequest,
    PostgresStore, SessionSubject, Store, StoreError, VersionSelector,
};
use serde_json::{Value, json};

fn obj(id: &str, modified: Option<&str>, name: &str) -> Value {
    match modified {
        Some(m) => json!({
            "type": "campaign", "spec_version": "2.1", "id": format!("campaign--{id}"),
            "created": "2016-01-01T00:00:00.000Z", "modified": m, "name": name,
        }),
        None => json!({
            "type": "ipv4-addr", "spec_version": "2.1", "id": format!("ipv4-addr--{id}"), "value": name,
        }),
    }
}

fn add(store: &dyn Store, coll: &str, objects: &[Value]) -> Vec<AddOutcome> {
    let mut batch = store.begin_write(coll).unwrap();
    let out = objects.iter().map(|v| add_in(batch.as_mut(), v)).collect();
    batch.commit().unwrap();
    out
}

/// Adds `v` (validated as an import does) to `batch`.
fn add_in(batch: &mut (dyn concord_store::WriteBatch + '_), v: &Value) -> AddOutcome {
    let header: ObjectHeader = validate_object(v).unwrap();
    let body = v.to_string();
    batch
        .add(&NewObject {
            header: &header,
            body: &body,
            value: v,
        })
        .unwrap()
}

fn all(store: &dyn Store, coll: &str, filter: &ObjectFilter) -> Vec<concord_store::Entry> {
    store
        .entries(
            coll,
            filter,
            &PageRequest {
                limit: 10_000,
                after: None,
            },
            true,
        )
        .unwrap()
        .entries
}

const A: &str = "6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
const B: &str = "7ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";

fn collections_are_unique(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "x".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.collection("x").unwrap().unwrap().id, c.id);
    assert_eq!(
        store.collection(&c.id).unwrap().unwrap().alias.as_deref(),
        Some("x")
    );
    assert!(matches!(
        store.create_collection(&NewCollection {
            alias: "x".into(),
            ..Default::default()
        }),
        Err(StoreError::CollectionExists(_))
    ));
    assert!(matches!(
        store.begin_write("no-such").err(),
        Some(StoreError::NoSuchCollection(_))
    ));
}

fn an_uncommitted_batch_leaves_nothing(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "r".into(),
            ..Default::default()
        })
        .unwrap();
    {
        let mut batch = store.begin_write(&c.id).unwrap();
        let v = obj(A, Some("2016-01-01T00:00:00.000Z"), "n");
        let h = validate_object(&v).unwrap();
        batch
            .add(&NewObject {
                header: &h,
                body: &v.to_string(),
                value: &v,
            })
            .unwrap();
    } // dropped: rolled back
    assert_eq!(store.count(&c.id).unwrap(), 0);
}

fn versions_and_conflicts(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "v".into(),
            ..Default::default()
        })
        .unwrap();
    let v1 = obj(A, Some("2016-01-01T00:00:00.000Z"), "one");
    let v2 = obj(A, Some("2017-01-01T00:00:00.000Z"), "two");
    assert_eq!(store.last_added(&c.id).unwrap(), None);
    assert_eq!(
        add(store, &c.id, &[v1.clone(), v2.clone()]),
        [AddOutcome::Added, AddOutcome::Added]
    );
    let first = store.last_added(&c.id).unwrap().expect("a date_added");
    assert_eq!(
        add(store, &c.id, std::slice::from_ref(&v1)),
        [AddOutcome::AlreadyPresent]
    );
    // A batch that adds nothing leaves the collection as it was; one that adds moves it on.
    assert_eq!(store.last_added(&c.id).unwrap(), Some(first));
    let other = store
        .create_collection(&NewCollection {
            alias: "v-other".into(),
            ..Default::default()
        })
        .unwrap();
    add(store, &other.id, std::slice::from_ref(&v1));
    let later = store.last_added(&other.id).unwrap().unwrap();
    assert!(later > first);
    // Another collection's batch does not move this one.
    assert_eq!(store.last_added(&c.id).unwrap(), Some(first));
    let changed = obj(A, Some("2016-01-01T00:00:00.000000Z"), "changed"); // same instant, other content
    assert!(matches!(
        add(store, &c.id, &[changed])[0],
        AddOutcome::Conflict(_)
    ));
    let names = |sel: Vec<VersionSelector>| -> Vec<String> {
        let f = ObjectFilter {
            versions: sel,
            ..Default::default()
        };
        all(store, &c.id, &f)
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e.body.as_ref().unwrap()).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(names(vec![]), ["two"]);
    assert_eq!(names(vec![VersionSelector::First]), ["one"]);
    assert_eq!(names(vec![VersionSelector::All]), ["one", "two"]);
    assert_eq!(
        names(vec![VersionSelector::First, VersionSelector::Last]),
        ["one", "two"]
    );
    let at = concord_stix::Timestamp::parse("2016-01-01T00:00:00Z").unwrap();
    assert_eq!(names(vec![VersionSelector::At(at)]), ["one"]);
    // The version as written is kept.
    let e = all(store, &c.id, &ObjectFilter::default());
    assert_eq!(e[0].version(), "2017-01-01T00:00:00.000Z");
}

/// Issue 24, item 14: a writer of one collection learns nothing of what other collections
/// hold. Each write is answered as it would be on a node where the other collection does not
/// hold the object; each collection keeps and serves its own content.
fn versions_are_decided_per_collection(store: &dyn Store) {
    let mk = |alias: &str| {
        store
            .create_collection(&NewCollection {
                alias: alias.into(),
                ..Default::default()
            })
            .unwrap()
    };
    let (secret, partner, control) = (mk("secret"), mk("partner"), mk("control"));
    let mut held = obj(A, Some("2016-01-01T00:00:00.000Z"), "held elsewhere");
    held["created"] = json!("2015-06-01T00:00:00.000Z");
    add(store, &secret.id, std::slice::from_ref(&held));
    // The partner writes the same (id, modified) with other content, twice, then an
    // identical copy of the secret collection's version, then a new version whose `created`
    // differs from the secret collection's (not from the partner's own): every answer is the
    // one of the control collection, which nothing else shadows.
    let probe = obj(A, Some("2016-01-01T00:00:00.000Z"), "probe");
    let later = obj(A, Some("2018-01-01T00:00:00.000Z"), "later");
    for batch in [
        vec![probe.clone()],
        vec![probe.clone()],
        vec![held.clone()],
        vec![later.clone()],
    ] {
        let in_partner = add(store, &partner.id, &batch);
        let in_control = add(store, &control.id, &batch);
        assert_eq!(in_partner, in_control, "{batch:?}");
    }
    // The identical copy conflicts inside the partner's own collection (it holds "probe").
    let fresh = mk("fresh");
    assert_eq!(
        add(store, &fresh.id, std::slice::from_ref(&held)),
        [AddOutcome::Added]
    );
    assert!(matches!(
        &add(store, &partner.id, std::slice::from_ref(&held))[0],
        AddOutcome::Conflict(m) if m.contains("this collection") && m.contains("§3.6")
    ));
    let name = |c: &str| -> Vec<String> {
        all(
            store,
            c,
            &ObjectFilter {
                versions: vec![VersionSelector::All],
                ..Default::default()
            },
        )
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e.body.as_ref().unwrap()).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
    };
    assert_eq!(name(&secret.id), ["held elsewhere"]);
    assert_eq!(name(&partner.id), ["probe", "later"]);
    assert_eq!(name(&fresh.id), ["held elsewhere"]);
    // Deleting the object from one collection leaves the other's content.
    let every = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    store
        .delete_object(&partner.id, &format!("campaign--{A}"), &every)
        .unwrap();
    assert_eq!(name(&partner.id), Vec::<String>::new());
    assert_eq!(name(&secret.id), ["held elsewhere"]);
}

/// Issue 24, item 10: STIX 2.1 §3.6 — `created` and `created_by_ref` never change between
/// versions; a version that changes either is refused with the rule, and nothing is written.
fn created_and_created_by_ref_never_change(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "created".into(),
            ..Default::default()
        })
        .unwrap();
    let v1 = obj(B, Some("2016-01-01T00:00:00.000Z"), "one");
    let mut v2 = obj(B, Some("2017-01-01T00:00:00.000Z"), "two");
    // The same instant at another precision is the same `created`.
    v2["created"] = json!("2016-01-01T00:00:00.000000Z");
    let mut moved = obj(B, Some("2018-01-01T00:00:00.000Z"), "moved");
    moved["created"] = json!("2016-01-02T00:00:00.000Z");
    let mut claimed = obj(B, Some("2019-01-01T00:00:00.000Z"), "claimed");
    claimed["created_by_ref"] = json!(format!("identity--{A}"));
    // In one batch (the new version is checked against one added just before) …
    let out = add(store, &c.id, &[v1, v2, moved.clone(), claimed.clone()]);
    assert_eq!(out[..2], [AddOutcome::Added, AddOutcome::Added]);
    assert!(
        matches!(&out[2], AddOutcome::Conflict(m) if m.contains(&format!("campaign--{B}: created:"))
            && m.contains("§3.6")),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3], AddOutcome::Conflict(m) if m.contains("created_by_ref") && m.contains("§3.6")),
        "{:?}",
        out[3]
    );
    // … and in a later one.
    let out = add(store, &c.id, &[moved, claimed]);
    assert!(
        out.iter().all(|o| matches!(o, AddOutcome::Conflict(_))),
        "{out:?}"
    );
    let f = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    assert_eq!(all(store, &c.id, &f).len(), 2);
}

/// `add_unseen` (issue 15, the conflict oracle): versions the writer does not receive do not
/// decide its write; a conflicting version goes beside them, the same content is the same
/// row; `delete_versions` removes one of two entries of one `(id, modified)`.
fn unseen_versions_do_not_conflict(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "unseen".into(),
            ..Default::default()
        })
        .unwrap();
    let t = "2016-01-01T00:00:00.000Z";
    let held = obj(A, Some(t), "held");
    add(store, &c.id, std::slice::from_ref(&held));
    let all_versions = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    let held_vid = all(store, &c.id, &all_versions)[0].vid;
    let add_unseen = |objects: &[Value], unseen: &[i64]| {
        let mut batch = store.begin_write(&c.id).unwrap();
        let mut out = Vec::new();
        for v in objects {
            let header: ObjectHeader = validate_object(v).unwrap();
            let body = v.to_string();
            let o = NewObject {
                header: &header,
                body: &body,
                value: v,
            };
            out.push(batch.add_unseen(&o, unseen).unwrap());
        }
        batch.commit().unwrap();
        out
    };
    let mine = obj(A, Some(t), "mine");
    let mut moved = obj(A, Some("2017-01-01T00:00:00.000Z"), "moved");
    moved["created"] = json!("2015-01-01T00:00:00.000Z");
    // Seen, they conflict, as always.
    let out = add_unseen(&[mine.clone(), moved.clone()], &[]);
    assert!(
        out.iter().all(|o| matches!(o, AddOutcome::Conflict(_))),
        "{out:?}"
    );
    // Unseen, the same content is already present (one row), other content is added beside.
    let out = add_unseen(&[held.clone(), mine.clone()], &[held_vid]);
    assert_eq!(out, [AddOutcome::AlreadyPresent, AddOutcome::Added]);
    let entries = all(store, &c.id, &all_versions);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].version_key, entries[1].version_key);
    // A new version with another `created` is checked against the seen versions only: the
    // writer's own ("mine") has the old `created`, so "moved" conflicts with it, and not
    // when both are unseen.
    let mine_vid = entries.iter().find(|e| e.vid != held_vid).unwrap().vid;
    let out = add_unseen(std::slice::from_ref(&moved), &[held_vid]);
    assert!(
        matches!(&out[0], AddOutcome::Conflict(m) if m.contains("created")),
        "{out:?}"
    );
    let out = add_unseen(std::slice::from_ref(&moved), &[held_vid, mine_vid]);
    assert_eq!(out, [AddOutcome::Added]);
    // `last` selects both entries of the newest version that tie; deleting one by its row
    // leaves the other.
    let v = store.collection_version(&c.id).unwrap();
    assert_eq!(
        store
            .delete_versions(&c.id, &format!("campaign--{A}"), &[mine_vid])
            .unwrap(),
        1
    );
    assert!(store.collection_version(&c.id).unwrap() > v);
    assert_eq!(
        store
            .delete_versions(&c.id, &format!("campaign--{A}"), &[])
            .unwrap(),
        0
    );
    let left: Vec<i64> = all(store, &c.id, &all_versions)
        .iter()
        .map(|e| e.vid)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(
        left.contains(&held_vid) && !left.contains(&mine_vid),
        "{left:?}"
    );
}

/// A campaign version with `modified` = `t` (any year, leap seconds), created at the first
/// instant STIX can write (`created` never changes between versions, STIX 2.1 §3.6).
fn at(id: &str, t: &str, name: &str) -> Value {
    json!({
        "type": "campaign", "spec_version": "2.1", "id": format!("campaign--{id}"),
        "created": "0001-01-01T00:00:00.000Z", "modified": t, "name": name,
    })
}

/// Issue 16, item 5: versions of years 0001 and 9999 and in a leap second are stored, served
/// as written, ordered by instant, paged and selected exactly.
fn timestamps_over_the_whole_range(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "time".into(),
            ..Default::default()
        })
        .unwrap();
    // In time order; added out of order in one batch (one date_added).
    // `created`/`modified` must have milliseconds (STIX 2.1 §3.2).
    let times = [
        "0001-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999999999Z",
        "2016-12-31T23:59:59.999Z",
        "2016-12-31T23:59:60.000Z",
        "2016-12-31T23:59:60.500Z",
        "2017-01-01T00:00:00.000Z",
        "2262-04-11T23:47:16.854775808Z",
        "9999-12-31T23:59:59.000Z",
        "9999-12-31T23:59:60.999999999Z",
    ];
    let objects: Vec<Value> = [4, 0, 8, 2, 6, 1, 7, 3, 5]
        .iter()
        .map(|&i| at(A, times[i], &format!("v{i}")))
        .collect();
    assert!(
        add(store, &c.id, &objects)
            .iter()
            .all(|o| *o == AddOutcome::Added)
    );
    // The same versions again: already present; a different 9999 one: a conflict.
    assert_eq!(
        add(store, &c.id, &objects[2..3]),
        [AddOutcome::AlreadyPresent]
    );
    assert!(matches!(
        add(
            store,
            &c.id,
            &[at(A, "9999-12-31T23:59:60.999999999Z", "other")]
        )[..],
        [AddOutcome::Conflict(_)]
    ));
    let every = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    let e = all(store, &c.id, &every);
    let served: Vec<String> = e.iter().map(concord_store::Entry::version).collect();
    assert_eq!(served, times, "ordered by instant, served as written");
    for (e, o) in e.iter().zip(&objects) {
        let body: Value = serde_json::from_str(e.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["created"], "0001-01-01T00:00:00.000Z");
        let _ = o;
    }
    // Bodies byte for byte.
    let mut bodies: Vec<String> = e.iter().map(|e| e.body.clone().unwrap()).collect();
    let mut sent: Vec<String> = objects.iter().map(Value::to_string).collect();
    bodies.sort();
    sent.sort();
    assert_eq!(bodies, sent);
    // Page by page with cursors, one version a page: the same order, nothing skipped.
    let mut after = None;
    let mut paged = Vec::new();
    loop {
        let p = store
            .entries(&c.id, &every, &PageRequest { limit: 1, after }, false)
            .unwrap();
        paged.extend(p.entries.iter().map(concord_store::Entry::version));
        if !p.more {
            break;
        }
        after = p.entries.last().map(concord_store::Entry::cursor);
    }
    assert_eq!(paged, times);
    // match[version]: first, last and exact instants (written differently).
    let one = |v: VersionSelector| -> Vec<String> {
        let f = ObjectFilter {
            versions: vec![v],
            ..Default::default()
        };
        all(store, &c.id, &f).iter().map(|e| e.version()).collect()
    };
    let ts = |t: &str| concord_stix::Timestamp::parse(t).unwrap();
    assert_eq!(one(VersionSelector::First), ["0001-01-01T00:00:00.000Z"]);
    assert_eq!(
        one(VersionSelector::Last),
        ["9999-12-31T23:59:60.999999999Z"]
    );
    assert_eq!(
        one(VersionSelector::At(ts("9999-12-31T23:59:59Z"))),
        ["9999-12-31T23:59:59.000Z"]
    );
    assert_eq!(
        one(VersionSelector::At(ts("2016-12-31T23:59:60.5Z"))),
        ["2016-12-31T23:59:60.500Z"]
    );
    assert_eq!(
        one(VersionSelector::At(ts("0001-01-01T00:00:00Z"))),
        ["0001-01-01T00:00:00.000Z"]
    );
    assert!(one(VersionSelector::At(ts("9999-12-31T23:59:58Z"))).is_empty());
    // Deleting the 9999 version by its instant.
    let f = ObjectFilter {
        versions: vec![VersionSelector::At(ts("9999-12-31T23:59:59Z"))],
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_object(&c.id, &format!("campaign--{A}"), &f)
            .unwrap(),
        1
    );
    assert_eq!(all(store, &c.id, &every).len(), times.len() - 1);
}

/// Issue 16, item 7: a collection made with its batch exists only if the batch commits; the
/// alias rule holds for every way of making one.
fn a_collection_made_with_its_batch(store: &dyn Store) {
    let new = NewCollection {
        alias: "made-with.batch_1".into(),
        ..Default::default()
    }
    .with_new_id();
    let batch = store.begin_write_creating(&new).unwrap();
    drop(batch);
    assert_eq!(store.collection("made-with.batch_1").unwrap(), None);
    let mut batch = store.begin_write_creating(&new).unwrap();
    let v = obj(A, Some("2017-01-01T00:00:00.000Z"), "one");
    let header = validate_object(&v).unwrap();
    let body = v.to_string();
    batch
        .add(&NewObject {
            header: &header,
            body: &body,
            value: &v,
        })
        .unwrap();
    batch.commit().unwrap();
    assert_eq!(
        store.collection("made-with.batch_1").unwrap(),
        Some(new.clone())
    );
    assert_eq!(store.count(&new.id).unwrap(), 1);
    let again = NewCollection {
        alias: "made-with.batch_1".into(),
        ..Default::default()
    }
    .with_new_id();
    assert!(matches!(
        store.begin_write_creating(&again).err(),
        Some(StoreError::CollectionExists(_))
    ));
    for bad in ["", "a/b", "a\nb", &"x".repeat(65)] {
        let n = NewCollection {
            alias: bad.to_owned(),
            ..Default::default()
        };
        assert!(
            matches!(
                store.create_collection(&n),
                Err(StoreError::InvalidAlias(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            store.begin_write_creating(&n.with_new_id()).err(),
            Some(StoreError::InvalidAlias(_))
        ));
    }
    assert_eq!(store.collections().unwrap().len(), 1);
}

fn unversioned_objects_are_versioned_by_content(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "s".into(),
            ..Default::default()
        })
        .unwrap();
    let a = obj(A, None, "198.51.100.1");
    assert_eq!(
        add(store, &c.id, std::slice::from_ref(&a)),
        [AddOutcome::Added]
    );
    assert_eq!(add(store, &c.id, &[a]), [AddOutcome::AlreadyPresent]);
    let b = obj(A, None, "198.51.100.2");
    assert_eq!(add(store, &c.id, &[b]), [AddOutcome::Added]);
    let f = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    let e = all(store, &c.id, &f);
    assert_eq!(e.len(), 2);
    // Their version is their date_added.
    assert!(e.iter().all(|e| e.version_key
        == concord_stix::Timestamp::from_unix_nanos(e.date_added_ns, 9).sort_key()
        && e.version_text.is_none()));
}

fn date_added_only_grows_and_pages_are_exact(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "p".into(),
            ..Default::default()
        })
        .unwrap();
    let many: Vec<Value> = (0..250)
        .map(|i| {
            obj(
                &format!("{i:08x}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
                Some("2016-01-01T00:00:00.000Z"),
                "n",
            )
        })
        .collect();
    add(store, &c.id, &many);
    add(
        store,
        &c.id,
        &[obj(B, Some("2016-01-01T00:00:00.000Z"), "late")],
    );
    let e = all(store, &c.id, &ObjectFilter::default());
    assert_eq!(e.len(), 251);
    assert!(
        e[249].date_added_ns < e[250].date_added_ns,
        "a later batch has a later date_added"
    );
    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 17,
        after: None,
    };
    loop {
        let p = store
            .entries(&c.id, &ObjectFilter::default(), &page, false)
            .unwrap();
        seen.extend(p.entries.iter().map(|e| e.id.clone()));
        match (p.more, p.entries.last()) {
            (true, Some(last)) => page.after = Some(last.cursor()),
            _ => break,
        }
    }
    assert_eq!(seen, e.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    let f = ObjectFilter {
        added_after_ns: Some(e[0].date_added_ns),
        ..Default::default()
    };
    assert_eq!(all(store, &c.id, &f).len(), 1);
}

fn delete_keeps_versions_other_collections_hold(store: &dyn Store) {
    let c1 = store
        .create_collection(&NewCollection {
            alias: "d1".into(),
            ..Default::default()
        })
        .unwrap();
    let c2 = store
        .create_collection(&NewCollection {
            alias: "d2".into(),
            ..Default::default()
        })
        .unwrap();
    let v = obj(A, Some("2016-01-01T00:00:00.000Z"), "shared");
    add(store, &c1.id, std::slice::from_ref(&v));
    add(store, &c2.id, &[v]);
    let all_versions = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_object(&c1.id, &format!("campaign--{A}"), &all_versions)
            .unwrap(),
        1
    );
    assert_eq!(store.count(&c1.id).unwrap(), 0);
    assert_eq!(all(store, &c2.id, &ObjectFilter::default()).len(), 1);
}

/// Issue 16, item 2: the collection version moves with every batch that adds and every
/// delete that removes, in the writer's transaction, and only then.
fn collection_version_moves_with_adds_and_deletes(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "v".into(),
            ..Default::default()
        })
        .unwrap();
    let other = store
        .create_collection(&NewCollection {
            alias: "w".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.collection_version(&c.id).unwrap(), 0);
    let a = obj(A, Some("2016-01-01T00:00:00.000Z"), "a");
    add(store, &c.id, std::slice::from_ref(&a));
    let v1 = store.collection_version(&c.id).unwrap();
    assert_ne!(v1, 0);
    // Another collection's write does not move it; nor does a batch that adds nothing new,
    // nor one rolled back.
    add(store, &other.id, std::slice::from_ref(&a));
    add(store, &c.id, std::slice::from_ref(&a));
    {
        let mut batch = store.begin_write(&c.id).unwrap();
        let b = obj(B, Some("2016-01-01T00:00:00.000Z"), "b");
        let header = validate_object(&b).unwrap();
        let body = b.to_string();
        batch
            .add(&NewObject {
                header: &header,
                body: &body,
                value: &b,
            })
            .unwrap();
    }
    assert_eq!(store.collection_version(&c.id).unwrap(), v1);
    // A delete that removes nothing leaves it; one that removes moves it.
    let all_versions = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    assert_eq!(
        store
            .delete_object(&c.id, "campaign--nosuch", &all_versions)
            .unwrap(),
        0
    );
    assert_eq!(store.collection_version(&c.id).unwrap(), v1);
    let id = format!("campaign--{A}");
    assert_eq!(store.delete_object(&c.id, &id, &all_versions).unwrap(), 1);
    let v2 = store.collection_version(&c.id).unwrap();
    assert!(v2 != v1 && v2 != 0, "{v1} -> {v2}");
    assert!(matches!(
        store.collection_version("no-such-id"),
        Err(StoreError::NoSuchCollection(_))
    ));
}

fn status_and_settings(store: &dyn Store) {
    store.put_status("s1", "{\"id\":\"s1\"}").unwrap();
    assert_eq!(
        store.status("s1").unwrap().as_deref(),
        Some("{\"id\":\"s1\"}")
    );
    assert_eq!(store.status("s2").unwrap(), None);
    store.set_setting("k", "a").unwrap();
    store.set_setting("k", "b").unwrap();
    assert_eq!(store.setting("k").unwrap().as_deref(), Some("b"));
    // First insert wins; later calls return it and change nothing.
    assert_eq!(store.setting_or_insert("once", "x").unwrap(), "x");
    assert_eq!(store.setting_or_insert("once", "y").unwrap(), "x");
    assert_eq!(store.setting("once").unwrap().as_deref(), Some("x"));
    assert_eq!(store.setting_or_insert("k", "z").unwrap(), "b");
}

/// Provenance and a batch's settings commit with the batch, or not at all.
fn provenance_and_cursors_commit_with_the_batch(store: &dyn Store) {
    let c = store
        .create_collection(&NewCollection {
            alias: "pulled".into(),
            ..Default::default()
        })
        .unwrap();
    let version = "2016-01-01T00:00:00.000Z";
    {
        let mut batch = store.begin_write(&c.id).unwrap();
        batch.add_provenance(A, version, "peer-b", true).unwrap();
        batch.set_setting("sync/peer-b/cursor", "1").unwrap();
    } // dropped: rolled back
    assert!(store.received_from(A, Some(version)).unwrap().is_empty());
    assert_eq!(store.setting("sync/peer-b/cursor").unwrap(), None);
    let mut batch = store.begin_write(&c.id).unwrap();
    batch.add_provenance(A, version, "peer-b", true).unwrap();
    batch.add_provenance(A, version, "peer-b", false).unwrap(); // twice: no error, still first
    batch.add_provenance(A, version, "peer-a", false).unwrap(); // an echo
    batch.add_provenance(A, version, "peer-c", false).unwrap();
    batch.add_provenance(A, version, "peer-c", true).unwrap(); // first after all
    batch.set_setting("sync/peer-b/cursor", "2").unwrap();
    batch.commit().unwrap();
    assert_eq!(
        store.received_from(A, Some(version)).unwrap(),
        ["peer-a", "peer-b", "peer-c"]
    );
    assert_eq!(store.creators(A).unwrap(), ["peer-b", "peer-c"]);
    assert!(store.creators(B).unwrap().is_empty());
    assert!(
        store
            .received_from(A, Some("2017-01-01T00:00:00.000Z"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.received_from(A, None).unwrap(),
        ["peer-a", "peer-b", "peer-c"]
    );
    store.set_setting("sync/peer-c/cursor", "3").unwrap();
    store.set_setting("syncx", "no").unwrap();
    assert_eq!(
        store.settings_with_prefix("sync/").unwrap(),
        [
            ("sync/peer-b/cursor".to_owned(), "2".to_owned()),
            ("sync/peer-c/cursor".to_owned(), "3".to_owned())
        ]
    );
    assert!(store.settings_with_prefix("nothing/").unwrap().is_empty());
    // Leases: one holder at a time, renewable by it, free again after expiry or release.
    assert!(store.try_lease("lease/p", "one", 100, 200).unwrap());
    assert!(!store.try_lease("lease/p", "two", 150, 250).unwrap());
    assert!(store.try_lease("lease/p", "one", 150, 300).unwrap()); // renewed
    assert!(!store.try_lease("lease/p", "two", 299, 400).unwrap());
    assert!(store.try_lease("lease/p", "two", 301, 400).unwrap()); // expired
    assert!(store.try_lease("lease/p", "two", 302, 0).unwrap()); // released
    assert!(store.try_lease("lease/p", "one", 303, 500).unwrap());
}

fn partners_round_trip(store: &dyn Store) {
    let p = concord_store::Partner {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
        read: vec!["c1".into()],
        write: vec![],
        key_id: "0123456789abcdef".into(),
        key_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_ns: 1,
        details: Default::default(),
    };
    store.put_partner(&p).unwrap();
    let mut q = p.clone();
    q.name = "anssi".into();
    q.key_id = "fedcba9876543210".into();
    store.put_partner(&q).unwrap();
    assert_eq!(
        store.partners().unwrap(),
        [q.clone(), p.clone()],
        "ordered by name"
    );
    let mut rotated = p.clone();
    rotated.key_id = "1111111111111111".into();
    store.put_partner(&rotated).unwrap();
    assert_eq!(store.partners().unwrap()[1], rotated, "replaced by name");
    // By key id (what the server reads at each request): the rotated key finds it, the old
    // one nothing.
    assert_eq!(
        store.partner_by_key_id("1111111111111111").unwrap(),
        Some(rotated.clone())
    );
    assert_eq!(store.partner_by_key_id("0123456789abcdef").unwrap(), None);
    assert_eq!(
        store.partner_by_key_id("fedcba9876543210").unwrap(),
        Some(q.clone())
    );
    // What the partner created is no longer its once it is removed, nor that of a later
    // partner of the same name (issue 18).
    let c = store
        .create_collection(&NewCollection {
            alias: "written".into(),
            ..Default::default()
        })
        .unwrap();
    let mut batch = store.begin_write(&c.id).unwrap();
    let bsi = concord_store::partner_provenance("bsi");
    batch
        .add_provenance(B, "2016-01-01T00:00:00.000Z", &bsi, true)
        .unwrap();
    batch.commit().unwrap();
    assert_eq!(store.creators(B).unwrap(), std::slice::from_ref(&bsi));
    assert!(store.remove_partner("bsi").unwrap());
    assert!(!store.remove_partner("bsi").unwrap());
    assert_eq!(store.partner_by_key_id("1111111111111111").unwrap(), None);
    assert_eq!(store.partners().unwrap(), [q.clone()]);
    assert!(store.creators(B).unwrap().is_empty());
    assert_eq!(store.received_from(B, None).unwrap(), [bsi]);
    // Removed with settings (its incident grants ended), compare-and-set: a setting changed
    // meanwhile removes nothing; then both, or, with no such partner, neither.
    store.set_setting("grants-of", "cert-fr").unwrap();
    let ending = |expected: &str| concord_store::SettingChange {
        key: "grants-of".into(),
        expected: Some(expected.into()),
        value: "none".into(),
    };
    assert!(matches!(
        store.remove_partner_with(&q.name, &[ending("stale")]),
        Err(concord_store::StoreError::Superseded(_))
    ));
    assert_eq!(store.partners().unwrap(), [q.clone()], "nothing removed");
    assert_eq!(
        store.setting("grants-of").unwrap().as_deref(),
        Some("cert-fr")
    );
    assert!(
        !store
            .remove_partner_with("nobody", &[ending("cert-fr")])
            .unwrap()
    );
    assert_eq!(
        store.setting("grants-of").unwrap().as_deref(),
        Some("cert-fr")
    );
    assert!(
        store
            .remove_partner_with(&q.name, &[ending("cert-fr")])
            .unwrap()
    );
    assert!(store.partners().unwrap().is_empty());
    assert_eq!(store.setting("grants-of").unwrap().as_deref(), Some("none"));
}

/// Issue 19: an invitation admits one join. Two joins racing with it: one is admitted,
/// the other finds it used, and only the first's partner and peer exist; an expired or
/// unknown invitation, or a name already taken, writes nothing.
fn invitations_are_single_use(store: &(dyn Store + Sync)) {
    use concord_store::{Admission, InvitationRecord, InvitationUse};
    let used = |now_ns: i64, by: &str| InvitationUse {
        now_ns,
        used_by: by.into(),
        request_sha256: format!("{by}-request"),
        answer: format!("{by}-answer"),
    };
    let record = |id: &str, expires_ns: i64| InvitationRecord {
        id: id.into(),
        partner: "cert-x".into(),
        secret_sha256: "ab".repeat(32),
        created_ns: 10,
        expires_ns,
        used_ns: None,
        used_by: None,
        offer: "{}".into(),
        request_sha256: None,
        answer: None,
    };
    let partner = |name: &str, key_id: &str| concord_store::Partner {
        name: name.into(),
        jurisdiction: "FR".into(),
        groups: vec![],
        read: vec![],
        write: vec![],
        key_id: key_id.into(),
        key_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_ns: 1,
        details: Default::default(),
    };
    store.put_invitation(&record("inv-1", 1_000)).unwrap();
    store.put_invitation(&record("inv-old", 50)).unwrap();
    assert!(
        store.put_invitation(&record("inv-1", 1_000)).is_err(),
        "ids are unique"
    );
    assert_eq!(
        store.invitation("inv-1").unwrap(),
        Some(record("inv-1", 1_000))
    );
    assert_eq!(store.invitation("nope").unwrap(), None);
    assert_eq!(store.invitations().unwrap().len(), 2);
    let settings = |n: &str| vec![(format!("peer/{n}"), format!("{{\"name\":\"{n}\"}}"))];
    // Expired and unknown: nothing written.
    assert_eq!(
        store
            .consume_invitation(
                "inv-old",
                &used(100, "k"),
                &partner("p-old", "1000000000000000"),
                &settings("p-old")
            )
            .unwrap(),
        Admission::Expired
    );
    assert_eq!(
        store
            .consume_invitation(
                "nope",
                &used(100, "k"),
                &partner("p-no", "2000000000000000"),
                &settings("p-no")
            )
            .unwrap(),
        Admission::Unknown
    );
    assert!(store.partners().unwrap().is_empty());
    assert!(store.setting("peer/p-old").unwrap().is_none());
    // Two joins at once: exactly one admitted.
    let outcomes: Vec<Admission> = std::thread::scope(|s| {
        let joins: Vec<_> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = partner(&format!("p-{n}"), &format!("{i}00000000000000a"));
                let st = settings(&format!("p-{n}"));
                s.spawn(move || {
                    store
                        .consume_invitation("inv-1", &used(100, n), &p, &st)
                        .unwrap()
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let admitted = outcomes
        .iter()
        .filter(|o| **o == Admission::Admitted)
        .count();
    assert_eq!(admitted, 1, "{outcomes:?}");
    assert!(outcomes.contains(&Admission::Used), "{outcomes:?}");
    let partners = store.partners().unwrap();
    assert_eq!(partners.len(), 1, "{partners:?}");
    let winner = partners[0].name.clone();
    let loser = if winner == "p-a" { "p-b" } else { "p-a" };
    assert!(store.setting(&format!("peer/{winner}")).unwrap().is_some());
    assert!(store.setting(&format!("peer/{loser}")).unwrap().is_none());
    let kept = store.invitation("inv-1").unwrap().unwrap();
    assert_eq!(kept.used_ns, Some(100));
    assert_eq!(kept.used_by.as_deref(), Some(&winner[2..]));
    // Schema 21: the winner's request digest and sealed answer, kept for its retry.
    assert_eq!(
        kept.request_sha256,
        Some(format!("{}-request", &winner[2..]))
    );
    assert_eq!(kept.answer, Some(format!("{}-answer", &winner[2..])));
    // Used: refused again.
    assert_eq!(
        store
            .consume_invitation(
                "inv-1",
                &used(101, "c"),
                &partner("p-c", "3000000000000000"),
                &settings("p-c")
            )
            .unwrap(),
        Admission::Used
    );
    // A taken name refuses the whole admission, and leaves the invitation unused.
    store.put_invitation(&record("inv-2", 1_000)).unwrap();
    assert_eq!(
        store
            .consume_invitation(
                "inv-2",
                &used(100, "d"),
                &partner(&winner, "4000000000000000"),
                &settings("p-d")
            )
            .unwrap(),
        Admission::NameTaken(format!("partner {winner:?}"))
    );
    assert!(store.setting("peer/p-d").unwrap().is_none());
    assert_eq!(store.invitation("inv-2").unwrap().unwrap().used_ns, None);
    store.set_setting("peer/p-e", "{}").unwrap();
    assert_eq!(
        store
            .admit_partner(&partner("p-e", "5000000000000000"), &settings("p-e"))
            .unwrap(),
        Admission::NameTaken("setting \"peer/p-e\"".into())
    );
    assert_eq!(
        store.partners().unwrap().len(),
        1,
        "the partner was rolled back"
    );
    // A removed record (empty) may be taken again.
    store.set_setting("peer/p-e", "").unwrap();
    assert_eq!(
        store
            .admit_partner(&partner("p-e", "5000000000000000"), &settings("p-e"))
            .unwrap(),
        Admission::Admitted
    );
    assert_eq!(store.partners().unwrap().len(), 2);
}

/// Issue 19, item 4: a partner changes in place with the audit entry of the change, in one
/// transaction, compared and set; its last activity is its newest transfer entry's time.
fn partners_change_with_their_audit_entry(store: &dyn Store) {
    use concord_store::audit;
    let p = concord_store::Partner {
        name: "bsi".into(),
        jurisdiction: "DE".into(),
        groups: vec!["eu-cert".into()],
        read: vec!["c1".into()],
        write: vec![],
        key_id: "0123456789abcdef".into(),
        key_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_ns: 1,
        details: Default::default(),
    };
    store.put_partner(&p).unwrap();
    let change = |what: &str| AuditRecord {
        direction: "admin".into(),
        door: "partner-update".into(),
        partner: "operator".into(),
        person: Some("user:olga".into()),
        collection: String::new(),
        object_id: String::new(),
        modified: String::new(),
        decision: "changed".into(),
        transformations: vec!["partner bsi".into(), what.into()],
        policy_version: "tlp-v1".into(),
        vid: 0,
    };
    let mut q = p.clone();
    q.read = vec!["c2".into()];
    q.groups = vec![];
    q.details.updated_ns = 5;
    assert!(
        store
            .update_partner(&p, &q, &[change("read -c1 +c2")])
            .unwrap()
    );
    assert_eq!(store.partners().unwrap(), [q.clone()]);
    let log = store
        .audit_entries(&concord_store::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert_eq!(
        (e.direction.as_str(), e.door.as_str(), e.partner.as_str()),
        ("admin", "partner-update", "operator")
    );
    assert_eq!(e.person.as_deref(), Some("user:olga"), "who acted");
    let items = e.decoded().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].decision, audit::Decision::Changed);
    assert_eq!(e.dictionary, ["partner bsi", "read -c1 +c2"]);
    // Based on a stale copy (p): refused, nothing written, not the partner, not the log.
    let mut stale = p.clone();
    stale.write = vec!["c3".into()];
    assert!(
        !store
            .update_partner(&p, &stale, &[change("write +c3")])
            .unwrap()
    );
    // A rename, or a partner that is gone: refused too.
    let mut renamed = q.clone();
    renamed.name = "anssi".into();
    assert!(!store.update_partner(&q, &renamed, &[change("x")]).unwrap());
    let mut ghost = q.clone();
    ghost.name = "nobody".into();
    assert!(
        !store
            .update_partner(&ghost, &ghost, &[change("x")])
            .unwrap()
    );
    assert_eq!(store.partners().unwrap(), [q.clone()]);
    assert_eq!(
        store.audit_head().unwrap().0,
        1,
        "no entry for a refused change"
    );
    // The chain holds the change's entry like any other.
    let r = audit::verify_log(store, None, true).unwrap();
    assert_eq!((r.error.clone(), r.entries), (None, 1));

    // Last activity: the newest entry whose partner is the partner; the operator's change
    // above is the operator's, not bsi's.
    assert_eq!(store.last_activity("bsi").unwrap(), None);
    assert!(store.last_activity("operator").unwrap().is_some());
    store
        .append_audit(&[audit_record("bsi", 0), audit_record("anssi", 1)])
        .unwrap();
    store.append_audit(&[audit_record("bsi", 2)]).unwrap();
    let newest = |who: &str| {
        store
            .audit_entries(&concord_store::AuditQuery {
                partner: Some(who.into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|e| e.time_ns)
            .max()
    };
    assert_eq!(store.last_activity("bsi").unwrap(), newest("bsi"));
    assert!(newest("bsi").is_some());
    assert_eq!(store.last_activity("anssi").unwrap(), newest("anssi"));
    assert_eq!(store.last_activity("bs").unwrap(), None, "exact names only");
}

/// Appends from many threads at once (SQLite writes them in groups, one transaction each):
/// every one is recorded once, and the chain verifies whole.
fn concurrent_appends_chain_whole(store: &dyn Store) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            scope.spawn(move || {
                for i in 0..40 {
                    let partner = format!("p{t}");
                    store
                        .append_transfer(&[audit_record(&partner, i)], Some([t as u8; 32]))
                        .unwrap();
                }
            });
        }
    });
    let report = concord_store::audit::verify_log(store, None, true).unwrap();
    assert_eq!((report.error, report.head_seq), (None, 320));
    for t in 0..8 {
        let mine = store
            .audit_entries(&concord_store::AuditQuery {
                partner: Some(format!("p{t}")),
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(mine.len(), 40, "partner p{t}");
        assert!(mine.iter().all(|e| e.digest == Some([t as u8; 32])));
    }
}

/// Look-up by version row among many entries naming its neighbours (SQLite keeps one posting
/// per block of 64 rows, schema 25): only entries naming the row come back, `limit` of them
/// in either order, however many neighbours share its block.
fn audit_look_up_by_version_skips_neighbours(store: &dyn Store) {
    let mut naming_5 = Vec::new();
    for i in 1..=300i64 {
        let mut records = vec![AuditRecord {
            vid: i,
            ..audit_record("bsi", 0)
        }];
        if i % 7 == 0 {
            records.push(AuditRecord {
                vid: 5,
                ..audit_record("bsi", 0)
            });
        }
        store.append_transfer(&records, None).unwrap();
        if i % 7 == 0 || i == 5 {
            naming_5.push(i);
        }
    }
    let seqs = |limit: usize, newest_first: bool, after_seq: i64| {
        store
            .audit_entries(&concord_store::AuditQuery {
                vids: vec![5],
                limit,
                newest_first,
                after_seq,
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(1000, false, 0),
        naming_5,
        "every entry naming vid 5, no neighbour"
    );
    assert_eq!(seqs(10, false, 0), naming_5[..10]);
    assert_eq!(seqs(10, false, naming_5[10]), naming_5[11..21]);
    let newest: Vec<i64> = naming_5.iter().rev().take(10).copied().collect();
    assert_eq!(seqs(10, true, 0), newest);
    assert_eq!(seqs(0, false, 0), Vec::<i64>::new());
    // Two rows at once, one of which no entry names.
    let both = store
        .audit_entries(&concord_store::AuditQuery {
            vids: vec![64, 100_000],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(both.iter().map(|e| e.seq).collect::<Vec<_>>(), [64]);
}

fn audit_record(partner: &str, i: usize) -> AuditRecord {
    AuditRecord {
        direction: if i.is_multiple_of(2) {
            "egress"
        } else {
            "ingress"
        }
        .into(),
        door: "taxii-objects".into(),
        partner: partner.into(),
        person: None,
        collection: "c1".into(),
        object_id: format!("campaign--{i}"),
        modified: "2016-01-01T00:00:00.000Z".into(),
        decision: "rewritten".into(),
        transformations: vec![format!("removed description (granular TLP:RED) {i}")],
        policy_version: "tlp-v1".into(),
        vid: i as i64 + 1,
    }
}

fn key(seed: u8) -> concord_store::node_key::NodeKey {
    concord_store::node_key::NodeKey::from_seed(&[seed; 32])
}

/// Egress records of the versions `entries` of collection `coll` for `partner`.
fn sent(
    partner: &str,
    coll: &str,
    entries: &[concord_store::Entry],
    decision: &str,
) -> Vec<AuditRecord> {
    entries
        .iter()
        .map(|e| AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: partner.into(),
            person: None,
            collection: coll.into(),
            object_id: e.id.clone(),
            modified: e.version(),
            decision: decision.into(),
            transformations: if decision == "withheld" {
                vec!["pattern at pattern does not parse: unexpected 'secret@example.org'".into()]
            } else {
                vec![]
            },
            policy_version: "p@1".into(),
            vid: e.vid,
        })
        .collect()
}

/// Issue 25: transfers by time window (the dashboard's "what went to each partner this
/// week"), newest first, by partner and direction, bounded by `limit`.
fn audit_window_reads_by_time(store: &dyn Store) {
    use concord_store::AuditWindow;
    let now = || concord_stix::Timestamp::now_micros().unix_nanos();
    let coll = store
        .create_collection(&NewCollection {
            alias: "w".into(),
            ..Default::default()
        })
        .unwrap();
    let objects: Vec<Value> = (0..3)
        .map(|i| {
            obj(
                &format!("{i:08x}-7ff6-4a8b-9c2f-6e5a3b1f0d11"),
                Some("2016-01-01T00:00:00.000Z"),
                "n",
            )
        })
        .collect();
    add(store, &coll.id, &objects);
    let e = all(store, &coll.id, &ObjectFilter::default());
    let before = now();
    store
        .append_audit(&sent("acme", &coll.id, &e[..1], "sent"))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mid = now();
    store
        .append_audit(&sent("bsi", &coll.id, &e[..2], "withheld"))
        .unwrap();
    store
        .append_audit(&sent("acme", &coll.id, &e, "sent"))
        .unwrap();
    let mut ingress = sent("acme", &coll.id, &e[..1], "sent");
    ingress[0].direction = "ingress".into();
    store.append_audit(&ingress).unwrap();
    let after = now() + 1;
    let window = |since: i64, until: i64, partner: Option<&str>, direction: Option<&str>, limit| {
        store
            .audit_window(&AuditWindow {
                since_ns: since,
                until_ns: until,
                partner: partner.map(str::to_owned),
                direction: direction.map(str::to_owned),
                limit,
            })
            .unwrap()
            .iter()
            .map(|t| (t.seq, t.partner.clone(), t.count))
            .collect::<Vec<_>>()
    };
    let acme = |seq, count| (seq, "acme".to_owned(), count);
    let bsi = |seq, count| (seq, "bsi".to_owned(), count);
    assert_eq!(
        window(before, after, None, None, 10),
        [acme(4, 1), acme(3, 3), bsi(2, 2), acme(1, 1)],
        "newest first"
    );
    assert_eq!(
        window(mid, after, None, None, 10),
        [acme(4, 1), acme(3, 3), bsi(2, 2)],
        "the entry before the window is left out"
    );
    assert_eq!(
        window(before, mid, None, None, 10),
        [acme(1, 1)],
        "until is exclusive of what came after"
    );
    assert_eq!(
        window(before, after, Some("acme"), Some("egress"), 10),
        [acme(3, 3), acme(1, 1)]
    );
    assert_eq!(window(before, after, Some("bsi"), None, 10), [bsi(2, 2)]);
    assert_eq!(
        window(before, after, None, Some("egress"), 2),
        [acme(3, 3), bsi(2, 2)],
        "at most limit, the newest"
    );
    assert!(window(after, after + 1_000_000_000, None, None, 10).is_empty());
    assert!(window(before, after, Some("nobody"), None, 10).is_empty());
}

/// Issue 17: one entry per transfer, postings by version row, names kept after a delete,
/// checkpoints, incremental verify, archives.
fn audit_log_is_a_chain(store: &dyn Store) {
    use concord_store::AuditQuery;
    use concord_store::audit::{self, GENESIS};
    assert!(
        store
            .audit_entries(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.audit_head().unwrap(), (0, GENESIS));
    store.append_audit(&[]).unwrap();
    let coll = store
        .create_collection(&NewCollection {
            alias: "c".into(),
            ..Default::default()
        })
        .unwrap();
    let objects: Vec<Value> = (0..6)
        .map(|i| {
            obj(
                &format!("{i:08x}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
                Some("2016-01-01T00:00:00.000Z"),
                "n",
            )
        })
        .collect();
    add(store, &coll.id, &objects);
    let e = all(store, &coll.id, &ObjectFilter::default());
    assert_eq!(e.len(), 6);
    store
        .append_transfer(&sent("acme", &coll.id, &e[..4], "sent"), Some([7; 32]))
        .unwrap();
    store
        .append_transfer(&sent("bsi", &coll.id, &e[2..], "withheld"), None)
        .unwrap();
    let log = store
        .audit_entries(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        log.iter().map(|e| (e.seq, e.count)).collect::<Vec<_>>(),
        [(1, 4), (2, 4)]
    );
    assert_eq!(log[0].prev_hash, GENESIS);
    assert_eq!(log[1].prev_hash, log[0].hash, "the chain crosses appends");
    assert_eq!(log[0].digest, Some([7; 32]));
    let items = log[1].decoded().unwrap();
    assert_eq!(
        items.iter().map(|i| i.vid).collect::<Vec<_>>(),
        e[2..].iter().map(|e| e.vid).collect::<Vec<_>>()
    );
    assert!(
        items
            .iter()
            .all(|i| i.decision == concord_store::Decision::Withheld && i.transformations == [0])
    );
    assert_eq!(
        log[1].dictionary.len(),
        1,
        "one dictionary string for the four"
    );
    assert!(
        !log[1].dictionary[0].contains("secret@"),
        "quoted values are cut: {:?}",
        log[1].dictionary
    );
    // By version row and by partner.
    let by = |vid: i64, partner: Option<&str>| {
        store
            .audit_entries(&AuditQuery {
                vids: vec![vid],
                partner: partner.map(str::to_owned),
                limit: 10,
                newest_first: true,
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(by(e[0].vid, None), [1]);
    assert_eq!(by(e[3].vid, None), [2, 1]);
    assert_eq!(by(e[3].vid, Some("bsi")), [2]);
    assert_eq!(by(e[5].vid, Some("acme")), Vec::<i64>::new());
    // Names, also of a deleted version; its vid is not reused.
    let names = store.audit_versions_of(&e[0].id).unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(
        (names[0].vid, names[0].version.as_str(), names[0].deleted),
        (e[0].vid, "2016-01-01T00:00:00.000Z", false)
    );
    let max_vid = e.iter().map(|e| e.vid).max().unwrap();
    let last = e.iter().find(|x| x.vid == max_vid).unwrap().clone();
    assert_eq!(
        store
            .delete_object(
                &coll.id,
                &last.id,
                &ObjectFilter {
                    versions: vec![VersionSelector::All],
                    ..Default::default()
                }
            )
            .unwrap(),
        1
    );
    let names = store.audit_names(&[last.vid]).unwrap();
    assert_eq!(
        (names[0].object_id.as_str(), names[0].deleted),
        (last.id.as_str(), true)
    );
    add(
        store,
        &coll.id,
        &[obj(
            "0000beef-8ff6-4a8b-9c2f-6e5a3b1f0d11",
            Some("2017-01-01T00:00:00.000Z"),
            "new",
        )],
    );
    let fresh = all(
        store,
        &coll.id,
        &ObjectFilter {
            ids: vec!["campaign--0000beef-8ff6-4a8b-9c2f-6e5a3b1f0d11".into()],
            ..Default::default()
        },
    );
    assert!(fresh[0].vid > last.vid, "a deleted vid is not reused");
    // Verify, checkpoint, verify incrementally.
    let k = key(1);
    let trusted = k.public();
    let r = audit::verify_log(store, Some(&trusted), false).unwrap();
    assert_eq!((r.error.clone(), r.entries, r.head_seq), (None, 2, 2));
    let c1 = audit::checkpoint(store, &k, 10).unwrap();
    assert_eq!((c1.no, c1.entry_seq, c1.entry_hash), (1, 2, log[1].hash));
    assert_eq!(
        audit::checkpoint(store, &k, 11).unwrap(),
        c1,
        "nothing new: the same checkpoint"
    );
    let r = audit::verify_log(store, Some(&trusted), false).unwrap();
    assert_eq!((r.error.clone(), r.last_checkpoint), (None, Some(1)));
    for i in 0..3 {
        store
            .append_transfer(&sent("acme", &coll.id, &e[i..i + 1], "sent"), None)
            .unwrap();
    }
    let r = audit::verify_log(store, Some(&trusted), false).unwrap();
    assert_eq!(
        (r.error.clone(), r.from_checkpoint, r.entries, r.head_seq),
        (None, Some(1), 3, 5),
        "only what is new"
    );
    assert!(
        audit::checkpoint_if_due(store, &k, 10, 12)
            .unwrap()
            .is_none()
    );
    let c2 = audit::checkpoint_if_due(store, &k, 3, 12).unwrap().unwrap();
    assert_eq!((c2.no, c2.entry_seq, c2.prev), (2, 5, c1.hash()));
    let r = audit::verify_log(store, Some(&trusted), true).unwrap();
    assert_eq!((r.error.clone(), r.entries, r.checkpoints), (None, 5, 2));
    // The page of the web UI: what it shows and the checkpoint chain.
    let shown = store
        .audit_entries(&AuditQuery {
            partner: Some("acme".into()),
            limit: 2,
            newest_first: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        audit::verify_shown(store, &shown, Some(&trusted)).unwrap(),
        Ok(2)
    );
    // The next look starts from the newest checkpoint checked (its signature again), so a
    // page view reads the checkpoints added since, not all of them.
    assert_eq!(
        store
            .setting(audit::CHECKPOINT_CHAIN_SETTING)
            .unwrap()
            .as_deref(),
        Some("2")
    );
    // Archive entries 1..=5 (checkpoint 2), tamper with copies of the file.
    store
        .append_transfer(&sent("acme", &coll.id, &e[..1], "sent"), None)
        .unwrap();
    let mut file = Vec::new();
    let (boundary, summary) =
        audit::write_archive(store, &k, &c2, "a.jsonl", 13, &mut file).unwrap();
    assert_eq!(
        (
            summary.from_seq,
            summary.through_seq,
            summary.entries,
            summary.objects
        ),
        (1, 5, 5, 11)
    );
    let text = String::from_utf8(file).unwrap();
    assert_eq!(
        audit::verify_archive(&text, Some(&trusted)).map(|s| s.entries),
        Ok(5)
    );
    assert_eq!(
        audit::verify_archive(&text, Some(&key(2).public())).map_err(|e| e.kind()),
        Err("forged"),
        "another key"
    );
    let edited = text.replacen("\"partner\":\"bsi\"", "\"partner\":\"bfv\"", 1);
    assert_eq!(
        audit::verify_archive(&edited, Some(&trusted)),
        Err(AuditError::Edited { seq: 2 })
    );
    let lines: Vec<&str> = text.lines().collect();
    let without: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert_eq!(
        audit::verify_archive(&without, Some(&trusted)).map_err(|e| (e.kind(), e.seq())),
        Err(("deleted", 4))
    );
    let swapped: String = {
        let mut l = lines.clone();
        l.swap(2, 3);
        l.iter().map(|l| format!("{l}\n")).collect()
    };
    assert_eq!(
        audit::verify_archive(&swapped, Some(&trusted)).map_err(|e| e.kind()),
        Err("reordered")
    );
    let renamed = text.replacen(
        &e[1].id,
        "campaign--99999999-8ff6-4a8b-9c2f-6e5a3b1f0d11",
        1,
    );
    assert_eq!(
        audit::verify_archive(&renamed, Some(&trusted)).map_err(|e| e.kind()),
        Err("renamed"),
        "a name edited: not the one the entry recorded (the seal breaks too)"
    );
    store.archive_audit(&boundary).unwrap();
    assert!(store.archive_audit(&boundary).is_err(), "archived once");
    assert_eq!(store.audit_boundary().unwrap(), Some(boundary));
    let left = store
        .audit_entries(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
    assert!(
        by(e[3].vid, None).is_empty(),
        "postings of archived entries go too"
    );
    let r = audit::verify_log(store, Some(&trusted), true).unwrap();
    assert_eq!(
        (r.error.clone(), r.entries, r.archived_through),
        (None, 1, Some(5)),
        "the chain after the boundary verifies"
    );
    store
        .append_audit(&sent("acme", &coll.id, &e[..1], "sent"))
        .unwrap();
    assert_eq!(
        audit::verify_log(store, Some(&trusted), false)
            .unwrap()
            .error,
        None
    );
    // A checkpoint signed by another key is forged.
    store
        .add_audit_checkpoint(&mut |prev, head| {
            concord_store::Checkpoint::sign(prev, head, 14, &key(2))
        })
        .unwrap();
    assert_eq!(
        audit::verify_log(store, Some(&trusted), false)
            .unwrap()
            .error,
        Some(AuditError::Forged { no: 3 })
    );
}

/// Tampering through SQL (triggers bypassed by `exec`) is named by a full verify.
/// `unindex`: SQL that removes entry 3's postings (the index is per backend), and SQL that
/// puts them back.
fn audit_tampering_is_named(store: &dyn Store, exec: &dyn Fn(&str), unindex: (&str, &str)) {
    use concord_store::audit;
    let k = key(1);
    for p in ["a", "b", "c", "d", "e"] {
        store
            .append_audit(&[audit_record(p, 0), audit_record(p, 2)])
            .unwrap();
    }
    assert_eq!(audit::verify_log(store, None, true).unwrap().error, None);
    exec("CREATE TABLE saved AS SELECT * FROM audit_entries");
    let restore = "DELETE FROM audit_entries; INSERT INTO audit_entries SELECT * FROM saved";
    let check = |sql: &str| {
        exec(sql);
        let e = audit::verify_log(store, None, true)
            .unwrap()
            .error
            .expect(sql);
        exec(restore);
        (e.kind(), e.seq())
    };
    assert_eq!(
        check("UPDATE audit_entries SET partner = 'x' WHERE seq = 3"),
        ("edited", 3)
    );
    assert_eq!(
        check("UPDATE audit_entries SET count = count + 1 WHERE seq = 2"),
        ("edited", 2)
    );
    assert_eq!(
        check("DELETE FROM audit_entries WHERE seq = 3"),
        ("deleted", 4)
    );
    assert_eq!(
        check("DELETE FROM audit_entries WHERE seq = 1"),
        ("deleted", 2)
    );
    assert_eq!(
        check(
            "UPDATE audit_entries SET seq = -1 WHERE seq = 2; UPDATE audit_entries SET seq = 2 WHERE seq = 3; UPDATE audit_entries SET seq = 3 WHERE seq = -1"
        ),
        ("reordered", 2)
    );
    // Postings deleted: the entries are intact, but `audit show --object` would miss one.
    exec(unindex.0);
    assert_eq!(
        audit::verify_log(store, None, true).unwrap().error,
        Some(AuditError::Unindexed { seq: 3, vid: 1 })
    );
    let hidden = store
        .audit_entries(&concord_store::AuditQuery {
            vids: vec![1],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        hidden.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 4, 5],
        "what the missing postings hide"
    );
    exec(unindex.1);
    assert_eq!(audit::verify_log(store, None, true).unwrap().error, None);
    // The newest entry deleted after a checkpoint covered it.
    audit::checkpoint(store, &k, 1).unwrap();
    assert_eq!(
        check("DELETE FROM audit_entries WHERE seq = 5"),
        ("truncated", 5)
    );
    assert_eq!(
        audit::verify_log(store, Some(&k.public()), true)
            .unwrap()
            .error,
        None
    );
    // Rows of the checkpoint table edited: the signature no longer holds.
    exec("UPDATE audit_checkpoints SET entry_seq = 4 WHERE no = 1");
    assert_eq!(
        audit::verify_log(store, Some(&k.public()), true)
            .unwrap()
            .error,
        Some(AuditError::Forged { no: 1 })
    );
}

/// Issue 17, attack a1 #1: the names `audit show` prints for an entry's version rows (object
/// id and `modified`, in `object_versions`, else `audit_version_names` once a row is deleted)
/// lie outside the chain. Each entry binds them by its names digest, so a renamed row is named
/// by `verify`, by the web UI's check of the entries it shows and by `archive`, before and
/// after the row is deleted; an SCO version (no `modified`) whose first `date_added` goes is
/// not a rename.
fn audit_renames_are_named(store: &dyn Store, exec: &dyn Fn(&str)) {
    use concord_store::audit;
    let coll = store
        .create_collection(&NewCollection {
            alias: "r".into(),
            ..Default::default()
        })
        .unwrap();
    let other = store
        .create_collection(&NewCollection {
            alias: "r2".into(),
            ..Default::default()
        })
        .unwrap();
    let sco = obj("0000a5c0-8ff6-4a8b-9c2f-6e5a3b1f0d11", None, "198.51.100.7");
    let objects: Vec<Value> = (0..3)
        .map(|i| {
            obj(
                &format!("{i:08x}-1111-4a8b-9c2f-6e5a3b1f0d11"),
                Some("2016-01-01T00:00:00.000Z"),
                "n",
            )
        })
        .chain([sco.clone()])
        .collect();
    add(store, &coll.id, &objects);
    add(store, &other.id, &[sco]);
    let e = all(store, &coll.id, &ObjectFilter::default());
    assert_eq!(e.len(), 4);
    store
        .append_transfer(&sent("acme", &coll.id, &e, "sent"), None)
        .unwrap();
    store
        .append_transfer(&sent("bsi", &coll.id, &e[..1], "sent"), None)
        .unwrap();
    let log = store
        .audit_entries(&concord_store::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(
        log.iter().all(|e| e.names.is_some()),
        "new entries bind names"
    );
    assert_eq!(audit::verify_log(store, None, true).unwrap().error, None);
    let verify = || audit::verify_log(store, None, true).unwrap().error;
    let shown = || {
        let log = store
            .audit_entries(&concord_store::AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        audit::verify_shown(store, &log, None).unwrap().err()
    };
    let first = e.iter().min_by_key(|x| x.vid).unwrap().clone();
    let campaign = e
        .iter()
        .find(|x| x.id.starts_with("campaign--"))
        .unwrap()
        .clone();
    let ip = e
        .iter()
        .find(|x| x.id.starts_with("ipv4-addr--"))
        .unwrap()
        .clone();
    // A held row renamed: `audit show --object` would find another object.
    exec(&format!(
        "UPDATE object_versions SET id = 'campaign--ffffffff-1111-4a8b-9c2f-6e5a3b1f0d11' WHERE vid = {}",
        campaign.vid
    ));
    let found = verify().expect("a renamed version row is found");
    assert_eq!(
        (found.kind(), found.seq()),
        ("renamed", 1),
        "the first entry that names it"
    );
    assert_eq!(
        shown().map(|e| e.kind()),
        Some("renamed"),
        "the web UI's check too"
    );
    exec(&format!(
        "UPDATE object_versions SET id = '{}' WHERE vid = {}",
        campaign.id, campaign.vid
    ));
    assert_eq!(verify(), None, "restored");
    // A kept name added beside a held row (a name read back by `show` that the store never
    // wrote: kept names are written once a row is gone) is named too.
    exec(&format!(
        "INSERT INTO audit_version_names (vid, object_id, version, modified) VALUES ({}, '{}', '2031-05-05T00:00:00.000Z', '2016-01-01T00:00:00.000Z')",
        campaign.vid, campaign.id
    ));
    assert_eq!(
        verify().map(|e| (e.kind(), e.seq())),
        Some(("renamed", 1)),
        "a second name for a held row"
    );
    exec(&format!(
        "DELETE FROM audit_version_names WHERE vid = {}",
        campaign.vid
    ));
    assert_eq!(verify(), None);
    // Its `modified` edited: `audit show` would name another version.
    exec(&format!(
        "UPDATE object_versions SET modified = '2030-01-01T00:00:00.000Z' WHERE vid = {}",
        campaign.vid
    ));
    assert_eq!(verify().map(|e| e.kind()), Some("renamed"));
    exec(&format!(
        "UPDATE object_versions SET modified = '2016-01-01T00:00:00.000Z' WHERE vid = {}",
        campaign.vid
    ));
    assert_eq!(verify(), None);
    // The SCO's first date_added goes (its entry in the other collection is deleted or it
    // was first added there): its version text may change, which is not a rename.
    let every = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..Default::default()
    };
    assert_eq!(store.delete_object(&other.id, &ip.id, &every).unwrap(), 1);
    assert_eq!(verify(), None, "an SCO's version text is not bound");
    // Deleted rows keep their names, bound as before; a kept name edited is found too.
    assert_eq!(store.delete_object(&coll.id, &first.id, &every).unwrap(), 1);
    assert_eq!(
        verify(),
        None,
        "a deleted row's kept name is the one recorded"
    );
    exec(&format!(
        "UPDATE audit_version_names SET object_id = 'campaign--eeeeeeee-1111-4a8b-9c2f-6e5a3b1f0d11' WHERE vid = {}",
        first.vid
    ));
    let found = verify().expect("a renamed kept name is found");
    assert_eq!(found.kind(), "renamed");
    assert!(
        found.to_string().contains("renamed"),
        "the message says what: {found}"
    );
    // An archive is not written over renamed rows.
    let k = key(3);
    let cut = audit::checkpoint(store, &k, 5).unwrap();
    let mut out = Vec::new();
    let err = audit::write_archive(store, &k, &cut, "a.jsonl", 6, &mut out).unwrap_err();
    assert!(err.to_string().contains("renamed"), "{err}");
    exec(&format!(
        "UPDATE audit_version_names SET object_id = '{}' WHERE vid = {}",
        first.id, first.vid
    ));
    assert_eq!(verify(), None);
    // A sealed archive carries the names and checks them offline.
    let mut out = Vec::new();
    audit::write_archive(store, &k, &cut, "a.jsonl", 6, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(audit::verify_archive(&text, Some(&k.public())).is_ok());
    // … and names a kept name edited before the archive was sealed (resealed here with the
    // node key, as a writer with the key and a renamed database would have sealed it).
    use sha2::Digest;
    let body_end = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
    let body = text[..body_end].replace(
        &format!("\"{}\"", first.id),
        "\"campaign--eeeeeeee-1111-4a8b-9c2f-6e5a3b1f0d11\"",
    );
    assert_ne!(
        body,
        text[..body_end],
        "the archive names the deleted version"
    );
    let digest: [u8; 32] = sha2::Sha256::digest(body.as_bytes()).into();
    let seal = audit::ArchiveLine::Seal {
        sha256: concord_store::node_key::hex(&digest),
        signature: concord_store::node_key::hex(&k.sign(&digest)),
    };
    let resealed = format!("{body}{}\n", serde_json::to_string(&seal).unwrap());
    let err = audit::verify_archive(&resealed, Some(&k.public())).unwrap_err();
    assert_eq!((err.kind(), err.seq()), ("renamed", log[0].seq));
}

/// A log of the per-object format (schema 3) stays verifiable after the migration, and the
/// transfer chain continues it.
fn legacy_log_stays_verifiable(store: &dyn Store, exec: &dyn Fn(&str)) {
    use concord_store::audit;
    let r = audit::verify_log(store, None, true).unwrap();
    assert_eq!((r.error.clone(), r.legacy_entries), (None, 3));
    let legacy = store.audit(0, 10, None).unwrap();
    assert_eq!(legacy.len(), 3);
    store.append_audit(&[audit_record("acme", 7)]).unwrap();
    let t = store
        .audit_entries(&concord_store::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(t[0].seq, 4, "the transfers continue the legacy seq");
    assert_eq!(
        concord_store::node_key::hex(&t[0].prev_hash),
        legacy[2].hash,
        "and its hash"
    );
    let r = audit::verify_log(store, None, true).unwrap();
    assert_eq!((r.error.clone(), r.legacy_entries, r.entries), (None, 3, 1));
    let c = audit::checkpoint(store, &key(1), 1).unwrap();
    assert_eq!(c.entry_seq, 4);
    assert_eq!(audit::verify_log(store, None, false).unwrap().error, None);
    exec("UPDATE audit_log SET partner = 'x' WHERE seq = 2");
    assert_eq!(
        audit::verify_log(store, None, true).unwrap().error,
        Some(AuditError::Edited { seq: 2 })
    );
}

/// Issue 17, schema 24: the first archive of a node upgraded from the per-object log takes
/// that log whole (format v2: legacy rows, then transfer entries, one seal), verifies
/// offline (the legacy rows' own chain, the link from the legacy head to the first transfer,
/// the rest as before), and removes the legacy rows with the archived entries; the chain
/// after it still verifies, and so does the next archive (v1). Outside an archive the
/// database still refuses to delete legacy rows. `try_sql` runs SQL as Concord's own
/// connection would, triggers in place, and returns the database's error text.
fn legacy_log_is_archived(store: &dyn Store, try_sql: &dyn Fn(&str) -> Result<(), String>) {
    use concord_store::audit::{self, ARCHIVE_V1, ARCHIVE_V2, ArchiveBoundary, ArchiveLine};
    use concord_store::{AuditQuery, StoreError};
    let k = key(1);
    let trusted = k.public();
    let seqs = || {
        store
            .audit_entries(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    let refused = |sql: &str| {
        let err = try_sql(sql).expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    };
    refused("DELETE FROM audit_log WHERE seq = 1");
    refused("DELETE FROM audit_log");
    assert_eq!(store.audit(0, 10, None).unwrap().len(), 3);
    store.append_audit(&[audit_record("acme", 7)]).unwrap();
    store.append_audit(&[audit_record("acme", 8)]).unwrap();
    let c1 = audit::checkpoint(store, &k, 1).unwrap();
    assert_eq!(c1.entry_seq, 5);
    store.append_audit(&[audit_record("acme", 9)]).unwrap();
    let mut file = Vec::new();
    let (boundary, summary) =
        audit::write_archive(store, &k, &c1, "a.jsonl", 2, &mut file).unwrap();
    assert_eq!(
        (
            summary.from_seq,
            summary.through_seq,
            summary.entries,
            summary.legacy_entries,
            summary.objects
        ),
        (1, 5, 2, 3, 5)
    );
    assert_eq!(
        (boundary.through_seq, boundary.legacy_through),
        (5, Some(3))
    );
    let text = String::from_utf8(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains(ARCHIVE_V2), "{}", lines[0]);
    assert!(lines[1].starts_with("{\"legacy\":"), "{}", lines[1]);
    assert_eq!(
        audit::verify_archive(&text, Some(&trusted)),
        Ok(summary.clone())
    );
    let join = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // A legacy row edited in the file: named by its seq.
    let mut edited = owned.clone();
    edited[2] = edited[2].replacen("\"partner\":\"bsi\"", "\"partner\":\"bfv\"", 1);
    assert_ne!(edited[2], owned[2]);
    assert_eq!(
        audit::verify_archive(&join(&edited), Some(&trusted)),
        Err(AuditError::Edited { seq: 2 })
    );
    // A legacy row removed: the first transfer no longer follows the legacy head.
    let mut without = owned.clone();
    without.remove(3);
    assert_eq!(
        audit::verify_archive(&join(&without), Some(&trusted)).map_err(|e| (e.kind(), e.seq())),
        Err(("deleted", 4))
    );
    // The last legacy row edited and rehashed: the link legacy head -> first transfer breaks.
    let mut rehashed = owned.clone();
    let Ok(ArchiveLine::Legacy(mut row)) = serde_json::from_str::<ArchiveLine>(&owned[3]) else {
        panic!("line 4 is not a legacy row: {}", owned[3]);
    };
    row.record.decision = "withheld".into();
    row.hash = audit::entry_hash(row.seq, row.time_ns, &row.record, &row.prev_hash);
    rehashed[3] = serde_json::to_string(&ArchiveLine::Legacy(row)).unwrap();
    assert_eq!(
        audit::verify_archive(&join(&rehashed), Some(&trusted)),
        Err(AuditError::Broken {
            seq: 4,
            previous: 3
        })
    );
    // The database takes a boundary only with the whole legacy log.
    let partial = ArchiveBoundary {
        legacy_through: None,
        ..boundary.clone()
    };
    assert!(
        matches!(store.archive_audit(&partial), Err(StoreError::Corrupt(m)) if m.contains("legacy per-object log (entries 1..=3)"))
    );
    let short = ArchiveBoundary {
        legacy_through: Some(2),
        ..boundary.clone()
    };
    assert!(matches!(
        store.archive_audit(&short),
        Err(StoreError::Corrupt(_))
    ));
    refused("DELETE FROM audit_log WHERE seq <= 3");
    assert_eq!(
        store.audit(0, 10, None).unwrap().len(),
        3,
        "nothing removed"
    );
    store.archive_audit(&boundary).unwrap();
    assert!(
        store.audit(0, 10, None).unwrap().is_empty(),
        "the legacy rows went"
    );
    assert_eq!(seqs(), [6]);
    assert_eq!(store.audit_boundary().unwrap(), Some(boundary.clone()));
    let r = audit::verify_log(store, Some(&trusted), true).unwrap();
    assert_eq!(
        (
            r.error.clone(),
            r.legacy_entries,
            r.entries,
            r.archived_through
        ),
        (None, 0, 1, Some(5)),
        "the chain after the boundary verifies"
    );
    assert_eq!(
        audit::verify_log(store, Some(&trusted), false)
            .unwrap()
            .error,
        None
    );
    let shown = store
        .audit_entries(&AuditQuery {
            limit: 10,
            newest_first: true,
            ..Default::default()
        })
        .unwrap();
    assert!(
        audit::verify_shown(store, &shown, Some(&trusted))
            .unwrap()
            .is_ok()
    );
    // The next archive: transfer entries only, v1, from the boundary.
    store.append_audit(&[audit_record("acme", 10)]).unwrap();
    let c2 = audit::checkpoint(store, &k, 3).unwrap();
    assert_eq!(c2.entry_seq, 7);
    let mut file = Vec::new();
    let (b2, s2) = audit::write_archive(store, &k, &c2, "b.jsonl", 4, &mut file).unwrap();
    let text = String::from_utf8(file).unwrap();
    assert!(text.lines().next().unwrap().contains(ARCHIVE_V1));
    assert!(!text.contains("legacy"), "{text}");
    assert_eq!(
        (s2.from_seq, s2.through_seq, s2.entries, s2.legacy_entries),
        (6, 7, 2, 0)
    );
    assert_eq!(audit::verify_archive(&text, Some(&trusted)), Ok(s2));
    assert_eq!(b2.legacy_through, None);
    store.archive_audit(&b2).unwrap();
    store.append_audit(&[audit_record("acme", 11)]).unwrap();
    let r = audit::verify_log(store, Some(&trusted), true).unwrap();
    assert_eq!(
        (r.error.clone(), r.entries, r.archived_through, r.head_seq),
        (None, 1, Some(7), 8)
    );
}

/// Issue 17, schema 24: a checkpoint signed before the first transfer. One inside the legacy
/// log (rows were added after it) cannot cut the log, which goes whole: refused, naming why;
/// one at the legacy log's last row archives the legacy log alone, and the first transfer
/// after it links to the archived legacy head. `add_legacy` appends legacy rows.
fn legacy_log_alone_is_archived(store: &dyn Store, add_legacy: &dyn Fn(&[AuditRecord])) {
    use concord_store::audit::{self, ARCHIVE_V2};
    use concord_store::{AuditQuery, StoreError};
    let k = key(1);
    let trusted = k.public();
    let c1 = audit::checkpoint(store, &k, 1).unwrap();
    assert_eq!(c1.entry_seq, 3);
    add_legacy(&[audit_record("bsi", 3), audit_record("bsi", 4)]);
    let mut file = Vec::new();
    match audit::write_archive(store, &k, &c1, "a.jsonl", 2, &mut file) {
        Err(StoreError::ArchiveRefused(m)) => assert!(
            m.contains(
                "checkpoint 1 covers entry 3, inside the legacy per-object log (entries 1..=5)"
            ),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(file.is_empty(), "nothing written");
    let c2 = audit::checkpoint(store, &k, 3).unwrap();
    assert_eq!(c2.entry_seq, 5);
    let (boundary, summary) =
        audit::write_archive(store, &k, &c2, "a.jsonl", 4, &mut file).unwrap();
    assert_eq!(
        (
            summary.from_seq,
            summary.through_seq,
            summary.entries,
            summary.legacy_entries,
            summary.checkpoint_no
        ),
        (1, 5, 0, 5, 2)
    );
    let text = String::from_utf8(file).unwrap();
    assert!(text.lines().next().unwrap().contains(ARCHIVE_V2));
    assert_eq!(
        audit::verify_archive(&text, Some(&trusted)),
        Ok(summary.clone())
    );
    let head = store.audit_head().unwrap();
    store.archive_audit(&boundary).unwrap();
    assert!(store.audit(0, 10, None).unwrap().is_empty());
    assert_eq!(
        store.audit_head().unwrap(),
        head,
        "the head stays the legacy head"
    );
    assert_eq!(
        audit::verify_log(store, Some(&trusted), true)
            .unwrap()
            .error,
        None
    );
    store.append_audit(&[audit_record("acme", 7)]).unwrap();
    let t = store
        .audit_entries(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((t[0].seq, t[0].prev_hash), (6, head.1));
    let r = audit::verify_log(store, Some(&trusted), true).unwrap();
    assert_eq!((r.error.clone(), r.entries, r.head_seq), (None, 1, 6));
    assert_eq!(
        audit::verify_log(store, Some(&trusted), false)
            .unwrap()
            .error,
        None
    );
}

/// Issue 22: the chains of transfer packages and the `--since-last` cursors. A chain moves
/// only from the sequence its writer read (so two writers never both take sequence n), the
/// outgoing link and cursor move together, and an incoming link moves with its batch or not
/// at all.
fn package_chains_and_cursors(store: &dyn Store) {
    use concord_store::{Cursor, PackageDirection::*, PackageLink};
    let link = |sequence: i64, d: char| PackageLink {
        sequence,
        digest: d.to_string().repeat(64),
    };
    let cursor = |ns: i64| Cursor {
        date_added_ns: ns,
        id: format!("campaign--{A}"),
        version_key: "20160101T000000.000000000Z".into(),
        seq: 7,
    };
    assert_eq!(store.package_chain(Out, "", "p").unwrap(), None);
    assert_eq!(store.package_cursor("p", "c1").unwrap(), None);
    assert!(
        store
            .advance_package_out("p", "c1", 0, &link(1, 'a'), Some(&cursor(10)))
            .unwrap()
    );
    // A second writer that read "none yet" lost: nothing changes.
    assert!(
        !store
            .advance_package_out("p", "c1", 0, &link(1, 'b'), Some(&cursor(99)))
            .unwrap()
    );
    assert_eq!(
        store.package_chain(Out, "", "p").unwrap(),
        Some(link(1, 'a'))
    );
    assert_eq!(store.package_cursor("p", "c1").unwrap(), Some(cursor(10)));
    // An empty package moves the chain, not the cursor; another collection has its own.
    assert!(
        store
            .advance_package_out("p", "c1", 1, &link(2, 'c'), None)
            .unwrap()
    );
    assert!(
        !store
            .advance_package_out("p", "c2", 1, &link(2, 'd'), Some(&cursor(5)))
            .unwrap()
    );
    assert_eq!(store.package_cursor("p", "c1").unwrap(), Some(cursor(10)));
    assert_eq!(store.package_cursor("p", "c2").unwrap(), None);
    assert_eq!(store.package_chain(Out, "", "other").unwrap(), None);
    // Sequence numbers are handed out before a package is written, one more than any
    // handed out or recorded before: one never recorded (a crash) is not handed out again.
    assert_eq!(
        store.reserve_package_out("p").unwrap(),
        (3, Some(link(2, 'c')))
    );
    assert_eq!(
        store.reserve_package_out("p").unwrap(),
        (4, Some(link(2, 'c')))
    );
    assert!(
        store
            .advance_package_out("p", "c1", 2, &link(4, 'g'), None)
            .unwrap()
    );
    assert_eq!(
        store.reserve_package_out("p").unwrap(),
        (5, Some(link(4, 'g')))
    );
    assert_eq!(store.reserve_package_out("other").unwrap(), (1, None));
    // Incoming: with the batch, or not at all.
    let c = store
        .create_collection(&NewCollection {
            alias: "in".into(),
            ..Default::default()
        })
        .unwrap();
    {
        let mut batch = store.begin_write(&c.id).unwrap();
        assert!(
            batch
                .advance_package_in("key-a", "p", &link(1, 'e'))
                .unwrap()
        );
    } // dropped: rolled back
    assert_eq!(store.package_chain(In, "key-a", "p").unwrap(), None);
    assert_eq!(
        store
            .package_imports("key-a", "p", 1, &"e".repeat(64))
            .unwrap(),
        []
    );
    let mut batch = store.begin_write(&c.id).unwrap();
    assert!(
        batch
            .advance_package_in("key-a", "p", &link(1, 'e'))
            .unwrap()
    );
    // The same sequence, or the same digest, is imported once.
    assert!(
        !batch
            .advance_package_in("key-a", "p", &link(1, 'f'))
            .unwrap()
    );
    assert!(
        !batch
            .advance_package_in("key-a", "p", &link(3, 'e'))
            .unwrap()
    );
    assert!(
        batch
            .advance_package_in("key-a", "p", &link(3, 'f'))
            .unwrap()
    );
    // A lower sequence imported later (the producer's chain skipped it, or it came late)
    // is kept; the chain stays at the highest.
    assert!(
        batch
            .advance_package_in("key-a", "p", &link(2, 'h'))
            .unwrap()
    );
    batch.commit().unwrap();
    assert_eq!(
        store.package_chain(In, "key-a", "p").unwrap(),
        Some(link(3, 'f'))
    );
    assert_eq!(
        store
            .package_imports("key-a", "p", 2, &"f".repeat(64))
            .unwrap(),
        [link(2, 'h'), link(3, 'f')]
    );
    assert_eq!(
        store
            .package_imports("key-b", "p", 2, &"f".repeat(64))
            .unwrap(),
        []
    );
    assert_eq!(store.package_chain(In, "key-b", "p").unwrap(), None);
    assert_eq!(store.package_chain(Out, "key-a", "p").unwrap(), None);
}

/// Issue 15, attack round 2 finding 4 of issue 18: a partner's foreign version of an object
/// withheld from it shadows the node's versions of that object for the partner alone. Every
/// version selector, `added_after` and paging answer it exactly as for the same write under
/// an id the node never held, even when the node's versions are newer (a `last` over all of
/// them would pick a withheld one). Nobody else's view changes; the foreign versions an
/// operator's take-over made shadow nothing (their writer created the object).
fn foreign_versions_shadow_the_nodes_for_their_writer(store: &dyn Store) {
    use concord_store::ForeignVersions;
    let c = store
        .create_collection(&NewCollection {
            alias: "shadow".into(),
            ..Default::default()
        })
        .unwrap();
    let (t1, t2, t3) = (
        "2016-01-01T00:00:00.000Z",
        "2016-06-01T00:00:00.000Z",
        "2017-01-01T00:00:00.000Z",
    );
    const HELD: &str = "0ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    const FRESH: &str = "1ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    const CLAIMED: &str = "2ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
    add(
        store,
        &c.id,
        &[
            obj(HELD, Some(t1), "node v1"),
            obj(HELD, Some(t3), "node v3"),
        ],
    );
    let before = store.last_added(&c.id).unwrap().unwrap();
    // The partner's writes, in one batch (one date_added): over the held id (foreign), and
    // the same under an id new to the node.
    let mut batch = store.begin_write(&c.id).unwrap();
    for (id, foreign) in [(HELD, true), (FRESH, false)] {
        for (t, note) in [(t1, "mine v1"), (t2, "mine v2")] {
            let v = obj(id, Some(t), note);
            let header: ObjectHeader = validate_object(&v).unwrap();
            let body = v.to_string();
            let o = NewObject {
                header: &header,
                body: &body,
                value: &v,
            };
            // As the door asks it: the node's versions count as absent.
            let unseen: Vec<i64> = if foreign {
                all(
                    store,
                    &c.id,
                    &ObjectFilter {
                        ids: vec![format!("campaign--{HELD}")],
                        versions: vec![VersionSelector::All],
                        ..Default::default()
                    },
                )
                .iter()
                .map(|e| e.vid)
                .collect()
            } else {
                Vec::new()
            };
            assert_eq!(batch.add_unseen(&o, &unseen).unwrap(), AddOutcome::Added);
            if foreign {
                let vid = batch.last_vid().unwrap();
                batch.mark_foreign(vid, "partner/p").unwrap();
            }
        }
    }
    batch.commit().unwrap();
    let (held, fresh) = (format!("campaign--{HELD}"), format!("campaign--{FRESH}"));
    let at = |t: &str| VersionSelector::At(concord_stix::Timestamp::parse(t).unwrap());
    // What one reader gets of `id`: (date_added, version, body with the id masked).
    let read = |foreign: ForeignVersions, id: &str, f: &ObjectFilter| {
        let filter = ObjectFilter {
            ids: vec![id.to_owned()],
            foreign,
            ..f.clone()
        };
        all(store, &c.id, &filter)
            .into_iter()
            .map(|e| {
                (
                    e.date_added_ns,
                    e.version_key,
                    e.body.unwrap().replace(id, "<id>"),
                )
            })
            .collect::<Vec<_>>()
    };
    let mine = || ForeignVersions::Of("partner/p".into());
    let selectors = [
        vec![],
        vec![VersionSelector::Last],
        vec![VersionSelector::First],
        vec![VersionSelector::All],
        vec![VersionSelector::First, VersionSelector::Last],
        vec![at(t1)],
        vec![at(t2)],
        vec![at(t3)],
    ];
    for versions in &selectors {
        for (added_after_ns, spec_versions) in [
            (None, vec![]),
            (Some(before), vec![]),
            (None, vec!["2.1".to_owned()]),
        ] {
            let f = ObjectFilter {
                versions: versions.clone(),
                added_after_ns,
                spec_versions,
                ..Default::default()
            };
            let got = read(mine(), &held, &f);
            assert_eq!(got, read(mine(), &fresh, &f), "{f:?}");
            assert!(got.iter().all(|(_, _, b)| b.contains("mine")), "{f:?}");
        }
    }
    let last = read(mine(), &held, &ObjectFilter::default());
    assert_eq!(last.len(), 1);
    assert!(last[0].2.contains("mine v2"), "{last:?}");
    // A page of one entry at a time, over the whole collection: the same entries.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .entries(
                &c.id,
                &ObjectFilter {
                    versions: vec![VersionSelector::All],
                    foreign: mine(),
                    ..Default::default()
                },
                &PageRequest { limit: 1, after },
                true,
            )
            .unwrap();
        after = page.entries.last().map(|e| e.cursor());
        seen.extend(page.entries.into_iter().map(|e| e.body.unwrap()));
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|b| b.contains("mine")), "{seen:?}");

    // Everyone else reads the node's versions, the newest as before.
    for other in [
        ForeignVersions::Hidden,
        ForeignVersions::Of("partner/q".into()),
    ] {
        let last = read(other.clone(), &held, &ObjectFilter::default());
        assert_eq!(last.len(), 1);
        assert!(last[0].2.contains("node v3"), "{other:?}: {last:?}");
        let every = read(
            other.clone(),
            &held,
            &ObjectFilter {
                versions: vec![VersionSelector::All],
                ..Default::default()
            },
        );
        assert_eq!(every.len(), 2, "{other:?}");
        assert!(
            read(other, &fresh, &ObjectFilter::default())[0]
                .2
                .contains("mine v2")
        );
    }
    let every = read(
        ForeignVersions::All,
        &held,
        &ObjectFilter {
            versions: vec![VersionSelector::All],
            ..Default::default()
        },
    );
    assert_eq!(every.len(), 4);

    // A take-over: the partner created the object here, the operator's version outranks it;
    // the partner's version is foreign and shadows nothing, so the partner still reads the
    // operator's.
    let claimed = format!("campaign--{CLAIMED}");
    let mut batch = store.begin_write(&c.id).unwrap();
    let v = obj(CLAIMED, Some(t1), "claimed first");
    let header: ObjectHeader = validate_object(&v).unwrap();
    let body = v.to_string();
    batch
        .add(&NewObject {
            header: &header,
            body: &body,
            value: &v,
        })
        .unwrap();
    batch
        .add_provenance(&claimed, t1, "partner/p", true)
        .unwrap();
    batch.commit().unwrap();
    let mut batch = store.begin_write(&c.id).unwrap();
    let v = obj(CLAIMED, Some(t2), "operator's");
    let header: ObjectHeader = validate_object(&v).unwrap();
    let body = v.to_string();
    batch
        .add(&NewObject {
            header: &header,
            body: &body,
            value: &v,
        })
        .unwrap();
    let keep = batch.last_vid();
    assert_eq!(
        batch.take_over(&claimed, keep).unwrap().map(|v| v.len()),
        Some(1)
    );
    batch.commit().unwrap();
    let theirs = read(
        mine(),
        &claimed,
        &ObjectFilter {
            versions: vec![VersionSelector::All],
            ..Default::default()
        },
    );
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert!(
        read(mine(), &claimed, &ObjectFilter::default())[0]
            .2
            .contains("operator's")
    );
    let others = read(
        ForeignVersions::Hidden,
        &claimed,
        &ObjectFilter {
            versions: vec![VersionSelector::All],
            ..Default::default()
        },
    );
    assert_eq!(others.len(), 1, "{others:?}");
}

fn user(name: &str, role: &str, token_id: &str) -> concord_store::User {
    concord_store::User {
        name: name.to_owned(),
        role: role.to_owned(),
        token_id: token_id.to_owned(),
        password_hash: format!("password-of-{name}"),
        token_hash: format!("token-of-{name}"),
        totp_secret: None,
        created_ns: 1,
    }
}

/// Users (issue 20): added once per name, found by name and by token id, reset and removed
/// together with their sessions; TOTP steps are accepted once, in order.
fn users_round_trip(store: &dyn Store) {
    assert!(store.users().unwrap().is_empty());
    let mut bob = user("bob", "releaser", "00000000000000b0");
    bob.totp_secret = Some("3132".to_owned());
    assert!(store.add_user(&bob).unwrap());
    assert!(
        store
            .add_user(&user("alice", "analyst", "00000000000000a1"))
            .unwrap()
    );
    assert!(
        !store
            .add_user(&user("alice", "operator", "00000000000000a2"))
            .unwrap(),
        "a name is added once"
    );
    let names: Vec<String> = store.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(store.user("bob").unwrap(), Some(bob.clone()));
    assert_eq!(
        store
            .user_by_token_id("00000000000000a1")
            .unwrap()
            .unwrap()
            .role,
        "analyst"
    );
    assert!(
        store
            .user_by_token_id("00000000000000a2")
            .unwrap()
            .is_none()
    );
    // A token id is unique.
    assert!(
        store
            .add_user(&user("carol", "auditor", "00000000000000a1"))
            .is_err()
    );

    assert!(store.use_totp_step("bob", 10).unwrap());
    assert!(
        !store.use_totp_step("bob", 10).unwrap(),
        "a step is used once"
    );
    assert!(
        !store.use_totp_step("bob", 9).unwrap(),
        "an earlier step never"
    );
    assert!(store.use_totp_step("bob", 11).unwrap());

    let clock = clock(1_000);
    store
        .start_session(
            &session("s-bob", SessionSubject::User("bob".into()), 1_000),
            &clock,
        )
        .unwrap();
    store
        .start_session(
            &session("s-alice", SessionSubject::User("alice".into()), 1_000),
            &clock,
        )
        .unwrap();
    assert!(
        store
            .reset_user("bob", "00000000000000b1", "new-hash", "new-token", None)
            .unwrap()
    );
    assert!(
        !store
            .reset_user("nobody", "00000000000000c1", "h", "t", None)
            .unwrap()
    );
    let reset = store.user("bob").unwrap().unwrap();
    assert_eq!(
        (
            reset.token_id.as_str(),
            reset.password_hash.as_str(),
            reset.token_hash.as_str(),
            reset.totp_secret
        ),
        ("00000000000000b1", "new-hash", "new-token", None)
    );
    assert!(
        store.use_totp_step("bob", 1).unwrap(),
        "a reset clears the last step"
    );
    assert!(
        store.touch_session("s-bob", &clock).unwrap().is_none(),
        "a reset ends the user's sessions"
    );
    assert!(
        store.touch_session("s-alice", &clock).unwrap().is_some(),
        "and no one else's"
    );
    assert!(store.remove_user("alice").unwrap());
    assert!(!store.remove_user("alice").unwrap());
    assert!(
        store.touch_session("s-alice", &clock).unwrap().is_none(),
        "removing a user ends its sessions"
    );
    assert!(store.user("alice").unwrap().is_none());
}

fn clock(now_ns: i64) -> concord_store::SessionClock {
    concord_store::SessionClock {
        now_ns,
        idle_ns: 100,
        absolute_ns: 1_000,
        touch_every_ns: 10,
    }
}

fn session(id: &str, subject: SessionSubject, at: i64) -> concord_store::WebSession {
    concord_store::WebSession {
        id_sha256: id.to_owned(),
        subject,
        created_ns: at,
        last_seen_ns: at,
    }
}

/// Web sessions (issue 20): found by the id's hash, touched, ended by idle and absolute
/// expiry, by logout and per subject.
fn web_sessions_expire(store: &dyn Store) {
    store
        .start_session(&session("a", SessionSubject::Admin, 1_000), &clock(1_000))
        .unwrap();
    store
        .start_session(
            &session("p", SessionSubject::Partner("k1".into()), 1_000),
            &clock(1_000),
        )
        .unwrap();
    store
        .start_session(
            &session("u", SessionSubject::User("bob".into()), 1_000),
            &clock(1_000),
        )
        .unwrap();
    assert!(
        store
            .start_session(&session("a", SessionSubject::Admin, 1_000), &clock(1_000))
            .is_err(),
        "an id is unique"
    );
    let got = store.touch_session("p", &clock(1_005)).unwrap().unwrap();
    assert_eq!(got.subject, SessionSubject::Partner("k1".into()));
    assert_eq!(got.last_seen_ns, 1_000, "not written within touch_every");
    let got = store.touch_session("p", &clock(1_050)).unwrap().unwrap();
    assert_eq!(got.last_seen_ns, 1_050);
    assert_eq!(
        store
            .touch_session("p", &clock(1_051))
            .unwrap()
            .unwrap()
            .last_seen_ns,
        1_050
    );
    // Idle: "a" was last seen at 1000, "p" at 1050.
    assert!(
        store.touch_session("a", &clock(1_100)).unwrap().is_none(),
        "idle expiry"
    );
    assert!(
        store.touch_session("a", &clock(1_000)).unwrap().is_none(),
        "an ended session is deleted"
    );
    assert!(store.touch_session("p", &clock(1_140)).unwrap().is_some());
    assert_eq!(
        store
            .touch_session("u", &clock(1_090))
            .unwrap()
            .unwrap()
            .subject,
        SessionSubject::User("bob".into())
    );
    // Absolute: used all along, still ended 1000 after its start.
    for t in (1_140..2_000).step_by(50) {
        assert!(
            store.touch_session("p", &clock(t)).unwrap().is_some(),
            "at {t}"
        );
    }
    assert!(
        store.touch_session("p", &clock(2_000)).unwrap().is_none(),
        "absolute expiry"
    );
    assert_eq!(
        store
            .end_sessions_of(&SessionSubject::User("bob".into()))
            .unwrap(),
        1
    );
    assert!(store.touch_session("u", &clock(1_090)).unwrap().is_none());
    store
        .start_session(&session("x", SessionSubject::Admin, 5_000), &clock(5_000))
        .unwrap();
    store.end_session("x").unwrap();
    store.end_session("x").unwrap();
    assert!(
        store.touch_session("x", &clock(5_000)).unwrap().is_none(),
        "logout"
    );
    assert!(
        store
            .touch_session("nothing", &clock(5_000))
            .unwrap()
            .is_none()
    );
}

fn approval(id: &str, requested_ns: i64) -> concord_store::Approval {
    concord_store::Approval {
        id: id.to_owned(),
        kind: "sharing".to_owned(),
        target: "c1".to_owned(),
        change: r#"{"default_tlp":"clear"}"#.to_owned(),
        summary: "default TLP amber to clear".to_owned(),
        requested_by: "user:alice".to_owned(),
        requested_ns,
        status: "pending".to_owned(),
        decided_by: None,
        decided_ns: None,
        reason: None,
        request: Some(r#"{"subject":"c1","widens":[]}"#.to_owned()),
    }
}

/// Four-eyes release (issue 20, schema 19): a pending approval is decided once; an approval
/// sets its settings and appends its audit records in the transaction that records it, a
/// rejection applies nothing.
fn approvals_are_decided_once(store: &dyn Store) {
    use concord_store::ApprovalDecision;
    assert!(store.approvals(None, 10).unwrap().is_empty());
    store.add_approval(&approval("a1", 10)).unwrap();
    store.add_approval(&approval("a2", 20)).unwrap();
    assert!(
        store.add_approval(&approval("a1", 30)).is_err(),
        "ids are unique"
    );
    let pending = store.approvals(Some("pending"), 10).unwrap();
    assert_eq!(
        pending.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    assert_eq!(pending[0], approval("a1", 10));
    assert_eq!(store.approvals(None, 1).unwrap().len(), 1, "the limit");
    let (seq, _) = store.audit_head().unwrap();
    let record = concord_store::AuditRecord {
        direction: "admin".into(),
        door: "collection-share".into(),
        partner: "operator".into(),
        person: Some("user:bob".into()),
        collection: "c1".into(),
        object_id: String::new(),
        modified: String::new(),
        decision: "changed".into(),
        transformations: vec!["requested by user:alice".into()],
        policy_version: "base".into(),
        vid: 0,
    };
    let approve = ApprovalDecision {
        approve: true,
        by: "user:bob".into(),
        at_ns: 40,
        reason: None,
    };
    let change = |expected: Option<&str>, value: &str| concord_store::SettingChange {
        key: "sharing.c1".to_owned(),
        expected: expected.map(str::to_owned),
        value: value.to_owned(),
    };
    // A setting changed since the change was computed: nothing applied, still pending.
    store.set_setting("sharing.c1", "[]").unwrap();
    assert!(matches!(
        store.decide_approval(
            "a1",
            &approve,
            &[change(None, "{}")],
            &[],
            std::slice::from_ref(&record)
        ),
        Err(concord_store::StoreError::Superseded(_))
    ));
    assert_eq!(store.setting("sharing.c1").unwrap().as_deref(), Some("[]"));
    assert_eq!(store.audit_head().unwrap().0, seq);
    assert_eq!(store.approval("a1").unwrap().unwrap().status, "pending");
    let settings = [change(Some("[]"), "{}")];
    assert!(
        store
            .decide_approval(
                "a1",
                &approve,
                &settings,
                &[],
                std::slice::from_ref(&record)
            )
            .unwrap()
    );
    assert_eq!(store.setting("sharing.c1").unwrap().as_deref(), Some("{}"));
    let (after, _) = store.audit_head().unwrap();
    assert_eq!(after, seq + 1, "one audit entry with the approval");
    let a1 = store.approval("a1").unwrap().unwrap();
    assert_eq!(a1.status, "approved");
    assert_eq!(a1.decided_by.as_deref(), Some("user:bob"));
    assert_eq!(a1.decided_ns, Some(40));
    // Decided once: a second decision (another process too) changes nothing.
    let other = [change(Some("{}"), "{\"x\":1}")];
    assert!(
        !store
            .decide_approval("a1", &approve, &other, &[], std::slice::from_ref(&record))
            .unwrap()
    );
    assert_eq!(store.setting("sharing.c1").unwrap().as_deref(), Some("{}"));
    assert_eq!(store.audit_head().unwrap().0, after);
    assert!(
        !store
            .decide_approval("nothing", &approve, &other, &[], &[])
            .unwrap()
    );
    // A rejection applies nothing it is given.
    let reject = ApprovalDecision {
        approve: false,
        by: "user:carol".into(),
        at_ns: 50,
        reason: Some("not this one".into()),
    };
    assert!(
        store
            .decide_approval("a2", &reject, &other, &[], &[record])
            .unwrap()
    );
    assert_eq!(store.setting("sharing.c1").unwrap().as_deref(), Some("{}"));
    assert_eq!(store.audit_head().unwrap().0, after);
    let a2 = store.approval("a2").unwrap().unwrap();
    assert_eq!(
        (a2.status.as_str(), a2.reason.as_deref()),
        ("rejected", Some("not this one"))
    );
    assert!(store.approvals(Some("pending"), 10).unwrap().is_empty());
    assert_eq!(store.approvals(Some("rejected"), 10).unwrap(), [a2]);
    assert!(store.approval("nothing").unwrap().is_none());
}

/// Four-eyes release of a partner change (issue 20, schema 22): the approval replaces the
/// partner record only if it is still the one the change was computed from (compare and
/// set in the approval's transaction); a partner changed meanwhile leaves everything as it
/// was and the approval pending; the structured request is kept.
fn approved_partner_changes_are_compare_and_set(store: &dyn Store) {
    use concord_store::{ApprovalDecision, PartnerSwap};
    let was = concord_store::Partner {
        name: "cert-fr".into(),
        jurisdiction: "FR".into(),
        groups: Vec::new(),
        read: vec!["c1".into()],
        write: Vec::new(),
        key_id: "kfr".into(),
        key_hash: "h".into(),
        created_ns: 1,
        details: Default::default(),
    };
    store.put_partner(&was).unwrap();
    let stored = |store: &dyn Store| {
        store
            .partners()
            .unwrap()
            .into_iter()
            .find(|p| p.name == "cert-fr")
            .unwrap()
    };
    let mut a = approval("p1", 10);
    a.kind = "partner".into();
    a.target = "cert-fr".into();
    store.add_approval(&a).unwrap();
    assert_eq!(store.approval("p1").unwrap().unwrap().request, a.request);
    let mut now = was.clone();
    now.read.push("c2".into());
    let mut meanwhile = was.clone();
    meanwhile.groups.push("eu".into());
    let record = concord_store::AuditRecord {
        direction: "admin".into(),
        door: "partner-update".into(),
        partner: "operator".into(),
        person: Some("user:bob".into()),
        collection: String::new(),
        object_id: String::new(),
        modified: String::new(),
        decision: "changed".into(),
        transformations: vec!["partner cert-fr".into(), "read +c2".into()],
        policy_version: "base".into(),
        vid: 0,
    };
    let approve = ApprovalDecision {
        approve: true,
        by: "user:bob".into(),
        at_ns: 40,
        reason: None,
    };
    let (seq, _) = store.audit_head().unwrap();
    // Changed meanwhile: nothing applied, still pending.
    assert!(store.update_partner(&was, &meanwhile, &[]).unwrap());
    let swap = PartnerSwap {
        was: was.clone(),
        now: now.clone(),
    };
    assert!(matches!(
        store.decide_approval(
            "p1",
            &approve,
            &[],
            std::slice::from_ref(&swap),
            std::slice::from_ref(&record)
        ),
        Err(concord_store::StoreError::Superseded(m)) if m.contains("cert-fr")
    ));
    assert_eq!(stored(store), meanwhile);
    assert_eq!(store.audit_head().unwrap().0, seq);
    assert_eq!(store.approval("p1").unwrap().unwrap().status, "pending");
    // A swap that would rename the partner is refused the same way.
    let mut renamed = meanwhile.clone();
    renamed.name = "other".into();
    let rename = PartnerSwap {
        was: meanwhile.clone(),
        now: renamed,
    };
    assert!(matches!(
        store.decide_approval("p1", &approve, &[], &[rename], &[]),
        Err(concord_store::StoreError::Superseded(_))
    ));
    // Computed from the record as stored: applied with its audit entry.
    let mut now = meanwhile.clone();
    now.read.push("c2".into());
    let swap = PartnerSwap {
        was: meanwhile,
        now: now.clone(),
    };
    assert!(
        store
            .decide_approval("p1", &approve, &[], &[swap], &[record])
            .unwrap()
    );
    assert_eq!(stored(store), now);
    assert_eq!(store.audit_head().unwrap().0, seq + 1);
    assert_eq!(store.approval("p1").unwrap().unwrap().status, "approved");
}

/// Pending OpenID Connect logins (issue 20, item 5; schema 20): taken once, refused after
/// their expiry, bounded per source and in all; and a session started with its login's audit
/// entry in one transaction.
fn oidc_logins_are_single_use_and_bounded(store: &dyn Store) {
    use concord_store::{OidcBegin, OidcLogin, OidcQuota};
    let login = |state: &str, source: &str, at: i64| OidcLogin {
        state_sha256: state.to_owned(),
        nonce: format!("n-{state}"),
        code_verifier: format!("v-{state}"),
        next_path: "/ui/".to_owned(),
        source: source.to_owned(),
        created_ns: at,
        expires_ns: at + 100,
    };
    let quota = OidcQuota {
        per_source: 2,
        total: 3,
    };
    let begin = |l: &OidcLogin, now: i64| store.begin_oidc_login(l, now, quota).unwrap();
    assert_eq!(begin(&login("a", "s1", 0), 0), OidcBegin::Stored);
    assert_eq!(begin(&login("b", "s1", 0), 0), OidcBegin::Stored);
    assert_eq!(
        begin(&login("c", "s1", 0), 0),
        OidcBegin::SourceFull,
        "two per source"
    );
    assert_eq!(begin(&login("d", "s2", 0), 0), OidcBegin::Stored);
    assert_eq!(
        begin(&login("e", "s3", 0), 0),
        OidcBegin::TableFull,
        "three in all"
    );
    // Taken once, with what was stored.
    let got = store.take_oidc_login("a", 10).unwrap().expect("pending");
    assert_eq!(got, login("a", "s1", 0));
    assert!(
        store.take_oidc_login("a", 10).unwrap().is_none(),
        "used once"
    );
    assert!(store.take_oidc_login("nothing", 10).unwrap().is_none());
    // Expired: refused, and deleted all the same.
    assert!(
        store.take_oidc_login("b", 100).unwrap().is_none(),
        "expired"
    );
    // Expired logins free their places: "d" (expired at 100) is deleted by this begin.
    assert_eq!(begin(&login("f", "s2", 150), 150), OidcBegin::Stored);
    assert_eq!(begin(&login("g", "s2", 150), 150), OidcBegin::Stored);
    assert!(store.take_oidc_login("d", 150).unwrap().is_none());

    // A session and the audit entry of its login, together.
    let (seq, _) = store.audit_head().unwrap();
    let record = AuditRecord {
        direction: "admin".to_owned(),
        door: "web-login".to_owned(),
        partner: "admin".to_owned(),
        person: Some("user:ana".to_owned()),
        collection: String::new(),
        object_id: String::new(),
        modified: String::new(),
        decision: "login".to_owned(),
        transformations: vec!["method oidc".to_owned()],
        policy_version: String::new(),
        vid: 0,
    };
    store
        .start_session_audited(
            &session("o", SessionSubject::User("ana".into()), 1_000),
            &clock(1_000),
            std::slice::from_ref(&record),
        )
        .unwrap();
    assert!(store.touch_session("o", &clock(1_001)).unwrap().is_some());
    assert_eq!(store.audit_head().unwrap().0, seq + 1, "one entry");
    // A session id taken: neither the session nor its entry is stored.
    assert!(
        store
            .start_session_audited(
                &session("o", SessionSubject::User("ana".into()), 1_000),
                &clock(1_000),
                &[record],
            )
            .is_err()
    );
    assert_eq!(
        store.audit_head().unwrap().0,
        seq + 1,
        "nothing half-written"
    );
}

macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[test]
            fn concurrent_appends_chain_whole() {
                let Some((s, _g)) = $make else { return };
                super::concurrent_appends_chain_whole(&s)
            }
            #[test]
            fn audit_look_up_by_version_skips_neighbours() {
                let Some((s, _g)) = $make else { return };
                super::audit_look_up_by_version_skips_neighbours(&s)
            }
            #[test]
            fn collections_are_unique() {
                let Some((s, _g)) = $make else { return };
                super::collections_are_unique(&s)
            }
            #[test]
            fn an_uncommitted_batch_leaves_nothing() {
                let Some((s, _g)) = $make else { return };
                super::an_uncommitted_batch_leaves_nothing(&s)
            }
            #[test]
            fn versions_and_conflicts() {
                let Some((s, _g)) = $make else { return };
                super::versions_and_conflicts(&s)
            }
            #[test]
            fn unversioned_objects_are_versioned_by_content() {
                let Some((s, _g)) = $make else { return };
                super::unversioned_objects_are_versioned_by_content(&s)
            }
            #[test]
            fn date_added_only_grows_and_pages_are_exact() {
                let Some((s, _g)) = $make else { return };
                super::date_added_only_grows_and_pages_are_exact(&s)
            }
            #[test]
            fn delete_keeps_versions_other_collections_hold() {
                let Some((s, _g)) = $make else { return };
                super::delete_keeps_versions_other_collections_hold(&s)
            }
            #[test]
            fn collection_version_moves_with_adds_and_deletes() {
                let Some((s, _g)) = $make else { return };
                super::collection_version_moves_with_adds_and_deletes(&s)
            }
            #[test]
            fn status_and_settings() {
                let Some((s, _g)) = $make else { return };
                super::status_and_settings(&s)
            }
            #[test]
            fn provenance_and_cursors_commit_with_the_batch() {
                let Some((s, _g)) = $make else { return };
                super::provenance_and_cursors_commit_with_the_batch(&s)
            }
            #[test]
            fn package_chains_and_cursors() {
                let Some((s, _g)) = $make else { return };
                super::package_chains_and_cursors(&s)
            }
            #[test]
            fn approvals_are_decided_once() {
                let Some((s, _g)) = $make else { return };
                super::approvals_are_decided_once(&s)
            }
            #[test]
            fn approved_partner_changes_are_compare_and_set() {
                let Some((s, _g)) = $make else { return };
                super::approved_partner_changes_are_compare_and_set(&s)
            }
            #[test]
            fn users_round_trip() {
                let Some((s, _g)) = $make else { return };
                super::users_round_trip(&s)
            }
            #[test]
            fn web_sessions_expire() {
                let Some((s, _g)) = $make else { return };
                super::web_sessions_expire(&s)
            }
            #[test]
            fn oidc_logins_are_single_use_and_bounded() {
                let Some((s, _g)) = $make else { return };
                super::oidc_logins_are_single_use_and_bounded(&s)
            }
            #[test]
            fn partners_round_trip() {
                let Some((s, _g)) = $make else { return };
                super::partners_round_trip(&s)
            }
            #[test]
            fn partners_change_with_their_audit_entry() {
                let Some((s, _g)) = $make else { return };
                super::partners_change_with_their_audit_entry(&s)
            }
            #[test]
            fn invitations_are_single_use() {
                let Some((s, _g)) = $make else { return };
                super::invitations_are_single_use(&s)
            }
            #[test]
            fn timestamps_over_the_whole_range() {
                let Some((s, _g)) = $make else { return };
                super::timestamps_over_the_whole_range(&s)
            }
            #[test]
            fn a_collection_made_with_its_batch() {
                let Some((s, _g)) = $make else { return };
                super::a_collection_made_with_its_batch(&s)
            }
            #[test]
            fn versions_are_decided_per_collection() {
                let Some((s, _g)) = $make else { return };
                super::versions_are_decided_per_collection(&s)
            }
            #[test]
            fn created_and_created_by_ref_never_change() {
                let Some((s, _g)) = $make else { return };
                super::created_and_created_by_ref_never_change(&s)
            }
            #[test]
            fn unseen_versions_do_not_conflict() {
                let Some((s, _g)) = $make else { return };
                super::unseen_versions_do_not_conflict(&s)
            }
            #[test]
            fn foreign_versions_shadow_the_nodes_for_their_writer() {
                let Some((s, _g)) = $make else { return };
                super::foreign_versions_shadow_the_nodes_for_their_writer(&s)
            }
            #[test]
            fn audit_log_is_a_chain() {
                let Some((s, _g)) = $make else { return };
                super::audit_log_is_a_chain(&s)
            }
            #[test]
            fn audit_renames_are_named() {
                let Some((s, g)) = $make else { return };
                super::audit_renames_are_named(&s, &|sql| bypass(&g, sql))
            }
            #[test]
            fn audit_window_reads_by_time() {
                let Some((s, _g)) = $make else { return };
                super::audit_window_reads_by_time(&s)
            }
            #[test]
            fn audit_tampering_is_named() {
                let Some((s, g)) = $make else { return };
                super::audit_tampering_is_named(&s, &|sql| bypass(&g, sql), g.unindex())
            }
        }
    };
}

fn sqlite() -> Option<(concord_store::SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = concord_store::SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
    Some((store, dir))
}

store_suite!(sqlite_backend, sqlite());

/// Runs SQL on a test store's database with the audit tables' triggers out of the way (what
/// someone with the database file or a superuser login can do).
trait Bypass {
    fn exec(&self, sql: &str);
    /// SQL that drops entry 3's postings (version rows 1 and 3; on SQLite, their block 0), and
    /// SQL that restores them.
    fn unindex(&self) -> (&'static str, &'static str);
}

impl Bypass for tempfile::TempDir {
    fn exec(&self, sql: &str) {
        let c = concord_store::sqlite::connect(&self.path().join("t.sqlite")).unwrap();
        c.execute_batch(
            "DROP TRIGGER IF EXISTS audit_entries_no_update; DROP TRIGGER IF EXISTS audit_entries_no_delete;
             DROP TRIGGER IF EXISTS audit_checkpoints_no_update; DROP TRIGGER IF EXISTS audit_log_no_update;",
        )
        .unwrap();
        c.execute_batch(sql).unwrap();
    }
    fn unindex(&self) -> (&'static str, &'static str) {
        (
            "DELETE FROM audit_postings WHERE seq = 3",
            "INSERT INTO audit_postings (bucket, seq) VALUES (0, 3)",
        )
    }
}

impl Bypass for ScratchSchema {
    fn exec(&self, sql: &str) {
        let mut c = postgres::Client::connect(self.url(), postgres::NoTls).unwrap();
        c.batch_execute("SET session_replication_role = replica")
            .unwrap();
        c.batch_execute(sql).unwrap();
    }
    fn unindex(&self) -> (&'static str, &'static str) {
        (
            "UPDATE audit_entries SET vids = '{3}' WHERE seq = 3",
            "UPDATE audit_entries SET vids = '{1,3}' WHERE seq = 3",
        )
    }
}

fn bypass(g: &dyn Bypass, sql: &str) {
    g.exec(sql)
}

/// The dashboard's window read is served by the time indexes of schema 14, with and without
/// a partner, not by a scan of the log (SQLite's plan of the statement `audit_window` runs).
#[test]
fn sqlite_audit_window_uses_the_time_indexes() {
    let Some((_store, dir)) = sqlite() else {
        return;
    };
    let c = concord_store::sqlite::connect(&dir.path().join("t.sqlite")).unwrap();
    for (partner, index) in [
        ("", "audit_entries_time"),
        (" AND partner = ?3", "audit_entries_partner_time"),
    ] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT * FROM audit_entries WHERE time_ns >= ?1 AND time_ns < ?2{partner} \
             AND direction = 'egress' ORDER BY time_ns DESC, seq DESC LIMIT 10"
        );
        let plan: Vec<String> = c
            .prepare(&sql)
            .unwrap()
            .query_map(
                rusqlite::params_from_iter(vec![0i64; 2 + usize::from(!partner.is_empty())]),
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains(index), "{plan}");
        assert!(
            !plan.contains("TEMP B-TREE"),
            "sorted apart from the index: {plan}"
        );
    }
}

/// A store at schema 24's layout in `dir`/t.sqlite (the log in the main file, a posting per
/// version row, no log file): 70 transfers naming vids 1..=70 and 201..=270.
fn sqlite_at_schema_24(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("t.sqlite");
    let store = concord_store::SqliteStore::open(&path).unwrap();
    for i in 1..=70i64 {
        let records: Vec<AuditRecord> = [i, 200 + i]
            .iter()
            .map(|&vid| AuditRecord {
                vid,
                ..audit_record("bsi", 0)
            })
            .collect();
        store.append_transfer(&records, None).unwrap();
    }
    drop(store);
    // The log as schema 24 kept it: in the main file, one posting per (vid, seq).
    log_back_into_main(
        &path,
        "CREATE TABLE main.audit_postings (vid INTEGER NOT NULL, seq INTEGER NOT NULL,
                                           PRIMARY KEY (vid, seq)) WITHOUT ROWID;
         INSERT INTO main.audit_postings (vid, seq) SELECT seq, seq FROM audit.audit_entries;
         INSERT INTO main.audit_postings (vid, seq) SELECT 200 + seq, seq FROM audit.audit_entries;",
        2,
    );
    assert_eq!(
        concord_store::sqlite::audit_path(&path),
        dir.join("t.audit.sqlite")
    );
    path
}

/// Puts the log of the store at `path` back into its main file, as schema 26's move finds
/// it: the log's tables copied in (`audit_postings` by the SQL `postings`), the main file's
/// setting `audit.file` gone, its schema version `back` lower, and the log's file removed.
fn log_back_into_main(path: &std::path::Path, postings: &str, back: i64) {
    let c = concord_store::sqlite::connect(path).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE main.audit_log AS SELECT * FROM audit.audit_log;
         CREATE TABLE main.audit_entries AS SELECT * FROM audit.audit_entries;
         CREATE TABLE main.audit_checkpoints AS SELECT * FROM audit.audit_checkpoints;
         CREATE TABLE main.audit_archives AS SELECT * FROM audit.audit_archives;
         {postings}
         DELETE FROM main.settings WHERE key = 'audit.file';"
    ))
    .unwrap();
    let version: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    c.pragma_update(Some("main"), "user_version", version - back)
        .unwrap();
    drop(c);
    let audit_file = concord_store::sqlite::audit_path(path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", audit_file.display()));
    }
}

/// Schema 25 turns a posting per version row into a posting per block, and schema 26 moves
/// the log into its own file: a log written with the old index in the main file verifies
/// whole after both migrations, and its entries are found by version.
#[test]
fn sqlite_postings_migrate_to_blocks_and_the_log_to_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_at_schema_24(dir.path());
    let store = concord_store::SqliteStore::open(&path).unwrap();
    let main_only = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = main_only
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('audit_log', 'audit_entries', \
             'audit_postings', 'audit_checkpoints', 'audit_archives')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the main file let the log go");
    let c = concord_store::sqlite::connect(&path).unwrap();
    let blocks: Vec<i64> = c
        .prepare("SELECT DISTINCT bucket FROM audit.audit_postings ORDER BY bucket")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // vids 1..=70 and 201..=270 lie in the blocks of 64 numbered 0, 1, 3 and 4.
    assert_eq!(blocks, [0, 1, 3, 4]);
    let report = concord_store::audit::verify_log(&store, None, true).unwrap();
    assert_eq!((report.error, report.head_seq), (None, 70));
    for vid in [1, 64, 70, 201, 270] {
        let found = store
            .audit_entries(&concord_store::AuditQuery {
                vids: vec![vid],
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let seq = if vid > 200 { vid - 200 } else { vid };
        assert_eq!(
            found.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [seq],
            "vid {vid}"
        );
    }
}

/// Attack (write access to the files): a log file put beside a main file that still holds
/// its log (schema 25) was taken by the move as one an interrupted move had made: the main
/// file dropped its log, and `verify --full` found the other file's (here an empty one)
/// intact. The move now takes a file there only if it holds the main file's log.
#[test]
fn sqlite_move_refuses_a_log_file_that_does_not_hold_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let store = concord_store::SqliteStore::open(&path).unwrap();
    for i in 1..=3i64 {
        let records = [AuditRecord {
            vid: i,
            ..audit_record("bsi", 0)
        }];
        store.append_transfer(&records, None).unwrap();
    }
    drop(store);
    log_back_into_main(
        &path,
        "CREATE TABLE main.audit_postings AS SELECT * FROM audit.audit_postings;",
        1,
    );
    let audit_file = concord_store::sqlite::audit_path(&path);
    // Another store's log file (empty), put where the moved log would go.
    let other = dir.path().join("o.sqlite");
    drop(concord_store::SqliteStore::open(&other).unwrap());
    std::fs::copy(concord_store::sqlite::audit_path(&other), &audit_file).unwrap();
    let err = concord_store::SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::AuditFile(m) if m.contains("does not hold the audit log")),
        "{err}"
    );
    let main_only = rusqlite::Connection::open(&path).unwrap();
    let entries: i64 = main_only
        .query_row("SELECT COUNT(*) FROM main.audit_entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, 3, "the main file kept its log");
    drop(main_only);
    std::fs::remove_file(&audit_file).unwrap();
    let store = concord_store::SqliteStore::open(&path).unwrap();
    let report = concord_store::audit::verify_log(&store, None, true).unwrap();
    assert_eq!((report.error, report.head_seq), (None, 3));
}

/// Processes opening an old file at once (`serve` and a CLI command) migrate it once: the
/// others wait for the migration lock and find the work done; the log is moved once, whole.
#[test]
fn sqlite_concurrent_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_at_schema_24(dir.path());
    let opened: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| concord_store::SqliteStore::open(&path).map(|_| ())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &opened {
        assert!(o.is_ok(), "{o:?}");
    }
    let store = concord_store::SqliteStore::open(&path).unwrap();
    let report = concord_store::audit::verify_log(&store, None, true).unwrap();
    assert_eq!((report.error, report.head_seq), (None, 70));
    assert!(concord_store::sqlite::migration_lock_path(&path).exists());
}

/// An audit append changes the log's file only: the main file's readers keep their page
/// caches (SQLite drops a connection's cache of a file whose WAL changed; issue 17). A
/// connection sees another's commit to a file as a change of `PRAGMA data_version`.
#[test]
fn sqlite_audit_appends_leave_the_main_file_alone() {
    let (store, dir) = sqlite().unwrap();
    let coll = store
        .create_collection(&NewCollection {
            alias: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    add(
        &store,
        &coll.id,
        &[
            obj(A, Some("2016-01-01T00:00:00.000Z"), "one"),
            obj(B, Some("2016-01-01T00:00:00.000Z"), "two"),
        ],
    );
    let probe = concord_store::sqlite::connect(&dir.path().join("t.sqlite")).unwrap();
    let versions = || -> (i64, i64) {
        (
            probe
                .pragma_query_value(Some("main"), "data_version", |r| r.get(0))
                .unwrap(),
            probe
                .pragma_query_value(Some("audit"), "data_version", |r| r.get(0))
                .unwrap(),
        )
    };
    let (main_before, audit_before) = versions();
    let entries = all(&store, &coll.id, &ObjectFilter::default());
    assert_eq!(entries.len(), 2);
    let records = sent("bsi", &coll.id, &entries, "sent");
    store.append_transfer(&records, Some([1; 32])).unwrap();
    let (main_after, audit_after) = versions();
    assert_eq!(
        main_after, main_before,
        "an append left the main file as it was"
    );
    assert_ne!(
        audit_after, audit_before,
        "the append went to the log's file"
    );
    // The probe sees main-file commits (it can fail).
    store.set_setting("x", "y").unwrap();
    assert_ne!(versions().0, main_after);
}

/// A store does not open beside a missing audit log file or another store's: it would start
/// a new, empty chain and `audit verify` would find nothing amiss.
#[test]
fn sqlite_store_refuses_a_missing_or_foreign_audit_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    drop(concord_store::SqliteStore::open(&a).unwrap());
    drop(concord_store::SqliteStore::open(&b).unwrap());
    let (a_log, b_log) = (
        concord_store::sqlite::audit_path(&a),
        concord_store::sqlite::audit_path(&b),
    );
    std::fs::rename(&a_log, dir.path().join("kept")).unwrap();
    let err = concord_store::SqliteStore::open(&a).unwrap_err();
    assert!(matches!(err, StoreError::AuditFile(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("missing") && text.contains("a.audit.sqlite"),
        "{text}"
    );
    assert!(!a_log.exists(), "no new log was made");
    std::fs::copy(&b_log, &a_log).unwrap();
    let text = concord_store::SqliteStore::open(&a)
        .unwrap_err()
        .to_string();
    assert!(text.contains("is not the audit log file of"), "{text}");
    std::fs::rename(dir.path().join("kept"), &a_log).unwrap();
    drop(concord_store::SqliteStore::open(&a).unwrap());
}

/// A crash after the log's commit of a write batch and before the main file's (found with
/// `strace` fault injection) left an entry naming version rows the main file never stored:
/// `verify` read it as rows renamed, for good. The log keeps the batch's names until the main
/// file has committed, and the next open turns names of rows never stored into names of
/// deleted rows, so the log verifies and `show` names the version.
#[test]
fn sqlite_a_crash_between_the_two_commits_leaves_the_log_verifiable() {
    let (store, dir) = sqlite().unwrap();
    let path = dir.path().join("t.sqlite");
    let coll = store
        .create_collection(&NewCollection {
            alias: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    let import = |store: &dyn Store, v: &Value| -> i64 {
        let mut batch = store.begin_write(&coll.id).unwrap();
        add_in(batch.as_mut(), v);
        let vid = batch.last_vid().unwrap();
        batch
            .append_audit(&[AuditRecord {
                vid,
                object_id: v["id"].as_str().unwrap().to_owned(),
                ..audit_record("bsi", 1)
            }])
            .unwrap();
        batch.commit().unwrap();
        vid
    };
    import(&store, &obj(A, Some("2016-01-01T00:00:00.000Z"), "one"));
    let names_left = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT COUNT(*) FROM audit.audit_batch_names", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let c = concord_store::sqlite::connect(&path).unwrap();
    assert_eq!(
        names_left(&c),
        0,
        "a committed batch leaves no names in the log"
    );
    // The main file as it was before the second batch.
    let before = dir.path().join("before.sqlite");
    c.execute("VACUUM main INTO ?1", [before.to_str().unwrap()])
        .unwrap();
    drop(c);
    let lost = import(&store, &obj(B, Some("2016-01-01T00:00:00.000Z"), "two"));
    drop(store);
    let c = concord_store::sqlite::connect(&path).unwrap();
    let (id, modified): (String, Option<String>) = c
        .query_row(
            "SELECT id, modified FROM object_versions WHERE vid = ?1",
            [lost],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // What the crash leaves: the log's commit (its entry, the batch's names), not the main
    // file's.
    c.execute(
        "INSERT INTO audit.audit_batch_names (vid, object_id, modified) VALUES (?1, ?2, ?3)",
        rusqlite::params![lost, id, modified],
    )
    .unwrap();
    drop(c);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::rename(&before, &path).unwrap();
    let store = concord_store::SqliteStore::open(&path).unwrap();
    let report = concord_store::audit::verify_log(&store, None, true).unwrap();
    assert_eq!((report.error, report.head_seq), (None, 2));
    let names = store.audit_versions_of(&id).unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!((names[0].vid, names[0].deleted), (lost, true));
    assert_eq!(
        names_left(&concord_store::sqlite::connect(&path).unwrap()),
        0
    );
    // Its vid stays taken.
    let next = import(&store, &obj(B, Some("2017-01-01T00:00:00.000Z"), "again"));
    assert!(next > lost);
}

/// A write batch records its transfers in the log before the main file commits; the vids it
/// named stay taken even if the main file then loses them (a crash between the two), so the
/// log never names another object with them.
#[test]
fn sqlite_vids_named_by_the_log_are_not_given_again() {
    let (store, dir) = sqlite().unwrap();
    let coll = store
        .create_collection(&NewCollection {
            alias: "c1".into(),
            ..Default::default()
        })
        .unwrap();
    let mut batch = store.begin_write(&coll.id).unwrap();
    add_in(
        batch.as_mut(),
        &obj(A, Some("2016-01-01T00:00:00.000Z"), "one"),
    );
    let vid = batch.last_vid().unwrap();
    batch
        .append_audit(&[AuditRecord {
            vid,
            ..audit_record("bsi", 1)
        }])
        .unwrap();
    batch.commit().unwrap();
    // The main file as a crash before its commit would leave it.
    let c = concord_store::sqlite::connect(&dir.path().join("t.sqlite")).unwrap();
    c.execute_batch("DELETE FROM collection_entries; DELETE FROM object_versions;")
        .unwrap();
    drop(c);
    let mut batch = store.begin_write(&coll.id).unwrap();
    add_in(
        batch.as_mut(),
        &obj(B, Some("2016-01-01T00:00:00.000Z"), "two"),
    );
    let next = batch.last_vid().unwrap();
    batch.commit().unwrap();
    assert!(next > vid, "vid {vid} was given again ({next})");
}

#[test]
fn sqlite_legacy_audit_log_migrates() {
    let (store, dir) = sqlite_with_legacy_log();
    legacy_log_stays_verifiable(&store, &|sql| bypass(&dir, sql));
}

/// An SQLite store migrated from schema 5 with a legacy log of 3 rows (partner `bsi`).
fn sqlite_with_legacy_log() -> (concord_store::SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/sqlite/0002_partners.sql"),
        include_str!("../migrations/sqlite/0003_audit.sql"),
        include_str!("../migrations/sqlite/0004_provenance.sql"),
        include_str!("../migrations/sqlite/0005_timestamp_keys.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 5).unwrap();
    let records: Vec<_> = (0..3)
        .map(|i| AuditRecord {
            vid: 0,
            ..audit_record("bsi", i)
        })
        .collect();
    concord_store::sqlite::insert_legacy_audit(&conn, &records).unwrap();
    drop(conn);
    (concord_store::SqliteStore::open(&path).unwrap(), dir)
}

#[test]
fn sqlite_legacy_audit_log_is_archived() {
    let (store, dir) = sqlite_with_legacy_log();
    let path = dir.path().join("t.sqlite");
    legacy_log_is_archived(&store, &|sql| {
        concord_store::sqlite::connect(&path)
            .unwrap()
            .execute_batch(sql)
            .map_err(|e| e.to_string())
    });
    let (store, dir) = sqlite_with_legacy_log();
    let path = dir.path().join("t.sqlite");
    legacy_log_alone_is_archived(&store, &|records| {
        let conn = concord_store::sqlite::connect(&path).unwrap();
        concord_store::sqlite::insert_legacy_audit(&conn, records).unwrap();
    });
}

/// `CONCORD_TEST_POSTGRES_URL`, or `None` after saying that the test skips; panics instead of
/// skipping when `CONCORD_REQUIRE_POSTGRES=1` (scripts/test sets it), so a missing server
/// cannot pass as green.
fn postgres_url() -> Option<String> {
    match std::env::var("CONCORD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CONCORD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CONCORD_REQUIRE_POSTGRES=1 but CONCORD_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipping: CONCORD_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// A fresh schema in the test database (dropped at drop).
fn scratch() -> Option<ScratchSchema> {
    Some(ScratchSchema::create(&postgres_url()?).expect("create a test schema"))
}

fn postgres() -> Option<(PostgresStore, ScratchSchema)> {
    let schema = scratch()?;
    let store = PostgresStore::open(schema.url()).unwrap();
    Some((store, schema))
}

store_suite!(postgres_backend, postgres());

mod postgres_only {
    //! What only the PostgreSQL backend has: several processes on one database, migrations
    //! with a version table, bulk writes, query plans, the copy from SQLite.

    use super::*;

    fn campaign(i: usize) -> Value {
        obj(
            &format!("{i:08x}-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
            Some("2016-01-01T00:00:00.000Z"),
            "n",
        )
    }

    fn psql(url: &str, sql: &str) -> Vec<postgres::Row> {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.query(sql, &[]).unwrap()
    }

    /// The migrations up to `version` applied by hand, as an earlier Concord left them.
    fn old_schema(url: &str, version: usize) {
        const OLD: [&str; 5] = [
            include_str!("../migrations/postgres/0001_initial.sql"),
            include_str!("../migrations/postgres/0002_partners.sql"),
            include_str!("../migrations/postgres/0003_audit.sql"),
            include_str!("../migrations/postgres/0004_provenance.sql"),
            include_str!("../migrations/postgres/0005_timestamp_keys.sql"),
        ];
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(
            "CREATE TABLE concord_schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)",
        )
        .unwrap();
        for (i, sql) in OLD[..version].iter().enumerate() {
            c.batch_execute(sql).unwrap();
            c.execute(
                "INSERT INTO concord_schema_migrations VALUES ($1, 'old', 0)",
                &[&(i as i32 + 1)],
            )
            .unwrap();
        }
    }

    /// Issue 16, item 2: two stores on one database (two `serve` processes) see each
    /// other's writes move a collection's version: it is a row, not process memory.
    #[test]
    fn collection_version_is_shared_by_processes_on_one_database() {
        let Some(schema) = scratch() else { return };
        let one = PostgresStore::open(schema.url()).unwrap();
        let two = PostgresStore::open(schema.url()).unwrap();
        let c = one
            .create_collection(&NewCollection {
                alias: "shared".into(),
                ..Default::default()
            })
            .unwrap();
        let before = one.collection_version(&c.id).unwrap();
        assert_eq!(two.collection_version(&c.id).unwrap(), before);
        add(&two, &c.id, &[campaign(1)]);
        let after = one.collection_version(&c.id).unwrap();
        assert_ne!(after, before);
        let filter = ObjectFilter {
            versions: vec![VersionSelector::All],
            ..ObjectFilter::default()
        };
        let id = campaign(1)["id"].as_str().unwrap().to_owned();
        assert_eq!(two.delete_object(&c.id, &id, &filter).unwrap(), 1);
        assert_ne!(one.collection_version(&c.id).unwrap(), after);
    }

    /// Issue 17: a per-object log of schema 5 stays verifiable through migration 0007.
    #[test]
    fn legacy_audit_log_migrates() {
        let Some(schema) = scratch() else { return };
        old_schema(schema.url(), 5);
        let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
        let records: Vec<_> = (0..3)
            .map(|i| AuditRecord {
                vid: 0,
                ..audit_record("bsi", i)
            })
            .collect();
        concord_store::postgres::insert_legacy_audit(&mut c, &records).unwrap();
        let store = PostgresStore::open(schema.url()).unwrap();
        legacy_log_stays_verifiable(&store, &|sql| bypass(&schema, sql));
    }

    /// A PostgreSQL store migrated from schema 5 with a legacy log of 3 rows (partner `bsi`).
    fn with_legacy_log() -> Option<(PostgresStore, ScratchSchema)> {
        let schema = scratch()?;
        old_schema(schema.url(), 5);
        let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
        let records: Vec<_> = (0..3)
            .map(|i| AuditRecord {
                vid: 0,
                ..audit_record("bsi", i)
            })
            .collect();
        concord_store::postgres::insert_legacy_audit(&mut c, &records).unwrap();
        Some((PostgresStore::open(schema.url()).unwrap(), schema))
    }

    /// Issue 17, schema 24: the legacy log is archived with the first archive, and only then
    /// may its rows be deleted.
    #[test]
    fn legacy_audit_log_is_archived() {
        let Some((store, schema)) = with_legacy_log() else {
            return;
        };
        legacy_log_is_archived(&store, &|sql| {
            let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
            c.batch_execute(sql).map_err(|e| match e.as_db_error() {
                Some(d) => d.message().to_owned(),
                None => e.to_string(),
            })
        });
        let Some((store, schema)) = with_legacy_log() else {
            return;
        };
        legacy_log_alone_is_archived(&store, &|records| {
            let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
            concord_store::postgres::insert_legacy_audit(&mut c, records).unwrap();
        });
    }

    /// Issue 16, item 5: a database of schema 4 (versions as BIGINT nanoseconds) keeps its
    /// entries, their order and their versions through migration 0005.
    #[test]
    fn versions_stored_as_nanoseconds_survive_the_migration_to_keys() {
        let Some(schema) = scratch() else { return };
        old_schema(schema.url(), 4);
        let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
        c.batch_execute(&old_rows_sql(|h| format!("'\\x{h}'::bytea")))
            .unwrap();
        drop(c);
        let store = PostgresStore::open(schema.url()).unwrap();
        assert_eq!(
            store.migration_report().applied,
            [
                "0005_timestamp_keys",
                "0006_collection_version",
                "0007_audit_transfers",
                "0008_versions_per_collection",
                "0009_packages",
                "0010_foreign_versions",
                "0011_foreign_shadows",
                "0012_audit_names",
                "0013_package_reservations",
                "0014_audit_time",
                "0015_invitations",
                "0018_people",
                "0019_approvals",
                "0020_oidc_logins",
                "0021_join_answers",
                "0022_approval_requests",
                "0024_legacy_archive"
            ]
        );
        check_migrated(&store);
    }

    #[test]
    fn migrations_from_an_empty_schema_and_refusal_of_a_newer_one() {
        let Some(schema) = scratch() else { return };
        let store = PostgresStore::open(schema.url()).unwrap();
        let report = store.migration_report().clone();
        assert_eq!(report.from, 0);
        assert!(report.to >= 1);
        assert_eq!(report.applied.len() as i64, report.to);
        let rows = psql(
            schema.url(),
            "SELECT version, name FROM concord_schema_migrations ORDER BY version",
        );
        assert_eq!(rows.len() as i64, report.to);
        assert_eq!(rows[0].get::<_, String>(1), "0001_initial");
        drop(store);
        // Reopening an up-to-date schema applies nothing.
        let again = PostgresStore::open(schema.url()).unwrap();
        assert!(again.migration_report().applied.is_empty());
        assert_eq!(again.migration_report().from, report.to);
        drop(again);
        // From an earlier release's schema (version 1, before partners): only what is
        // newer is applied.
        let Some(old) = scratch() else { return };
        old_schema(old.url(), 1);
        let upgraded = PostgresStore::open(old.url()).unwrap();
        assert_eq!(upgraded.migration_report().from, 1);
        assert_eq!(upgraded.migration_report().applied[0], "0002_partners");
        assert!(upgraded.partners().unwrap().is_empty());
        drop(upgraded);
        psql(
            schema.url(),
            "INSERT INTO concord_schema_migrations VALUES (99, 'future', 0)",
        );
        assert!(matches!(
            PostgresStore::open(schema.url()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn two_processes_opening_an_empty_schema_at_once_migrate_it_once() {
        let Some(schema) = scratch() else { return };
        let url = schema.url().to_owned();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    PostgresStore::open(&url).map(|s| s.migration_report().clone())
                })
            })
            .collect();
        let reports: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert_eq!(reports.iter().filter(|r| !r.applied.is_empty()).count(), 1);
    }

    #[test]
    fn writers_in_several_processes_date_entries_in_commit_order() {
        let Some(schema) = scratch() else { return };
        // Separate stores stand for separate `concord serve` processes.
        let stores: Vec<PostgresStore> = (0..3)
            .map(|_| PostgresStore::open(schema.url()).unwrap())
            .collect();
        let c = stores[0]
            .create_collection(&NewCollection {
                alias: "w".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(stores[1].collection("w").unwrap().unwrap().id, c.id);
        std::thread::scope(|scope| {
            for (t, store) in stores.iter().enumerate() {
                let id = c.id.clone();
                scope.spawn(move || {
                    for round in 0..10 {
                        let objects: Vec<Value> = (0..20)
                            .map(|i| campaign(t * 10_000 + round * 100 + i))
                            .collect();
                        add(store, &id, &objects);
                    }
                });
            }
        });
        let e = all(&stores[2], &c.id, &ObjectFilter::default());
        assert_eq!(e.len(), 3 * 10 * 20);
        // Entries in seq (commit) order have non-decreasing date_added, and each batch has
        // its own date_added.
        let mut by_seq = e.clone();
        by_seq.sort_by_key(|e| e.seq);
        assert!(
            by_seq
                .windows(2)
                .all(|w| w[0].date_added_ns <= w[1].date_added_ns)
        );
        let mut dates: Vec<i64> = e.iter().map(|e| e.date_added_ns).collect();
        dates.dedup();
        assert_eq!(dates.len(), 30, "30 batches, 30 distinct date_added");
    }

    #[test]
    fn audit_appends_in_several_processes_form_one_chain() {
        let Some(schema) = scratch() else { return };
        let stores: Vec<PostgresStore> = (0..3)
            .map(|_| PostgresStore::open(schema.url()).unwrap())
            .collect();
        std::thread::scope(|scope| {
            for (t, store) in stores.iter().enumerate() {
                scope.spawn(move || {
                    for round in 0..10 {
                        let records: Vec<_> = (0..5)
                            .map(|i| audit_record(&format!("p{t}"), round * 10 + i))
                            .collect();
                        store.append_audit(&records).unwrap();
                    }
                });
            }
        });
        let log = stores[0]
            .audit_entries(&concord_store::AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        // One entry per run of one direction (the records alternate egress and ingress).
        assert_eq!(log.len(), 3 * 10 * 5);
        let r = concord_store::audit::verify_log(&stores[0], None, true).unwrap();
        assert_eq!((r.error, r.entries), (None, 150));
        // Append-only for SQL too.
        let mut c = postgres::Client::connect(schema.url(), postgres::NoTls).unwrap();
        assert!(
            c.execute("DELETE FROM audit_entries WHERE seq = 1", &[])
                .is_err()
        );
        assert!(
            c.execute("UPDATE audit_entries SET partner = 'x' WHERE seq = 1", &[])
                .is_err()
        );
    }

    #[test]
    fn a_large_batch_is_flushed_in_chunks_and_still_exact() {
        let Some((store, _schema)) = postgres() else {
            return;
        };
        let c = store
            .create_collection(&NewCollection {
                alias: "big".into(),
                ..Default::default()
            })
            .unwrap();
        // More than one flush (5,000 rows), with repeats inside the batch and across flushes.
        let mut objects: Vec<Value> = (0..12_000).map(campaign).collect();
        objects.push(campaign(3));
        objects.push(campaign(11_999));
        let mut conflicting = campaign(7);
        conflicting["name"] = "other".into();
        objects.push(conflicting);
        let out = add(&store, &c.id, &objects);
        assert_eq!(
            out.iter().filter(|o| **o == AddOutcome::Added).count(),
            12_000
        );
        assert_eq!(out[12_000], AddOutcome::AlreadyPresent);
        assert_eq!(out[12_001], AddOutcome::AlreadyPresent);
        assert!(matches!(out[12_002], AddOutcome::Conflict(_)));
        assert_eq!(store.count(&c.id).unwrap(), 12_000);
        let again = add(&store, &c.id, &objects[..10]);
        assert!(again.iter().all(|o| *o == AddOutcome::AlreadyPresent));
    }

    #[test]
    fn the_page_query_uses_the_keyset_index() {
        let Some((store, _schema)) = postgres() else {
            return;
        };
        let c = store
            .create_collection(&NewCollection {
                alias: "plan".into(),
                ..Default::default()
            })
            .unwrap();
        let objects: Vec<Value> = (0..2_000).map(campaign).collect();
        add(&store, &c.id, &objects);
        let page = store
            .entries(
                &c.id,
                &ObjectFilter::default(),
                &PageRequest {
                    limit: 10,
                    after: None,
                },
                false,
            )
            .unwrap();
        let after = PageRequest {
            limit: 100,
            after: Some(page.entries.last().unwrap().cursor()),
        };
        let plan = store
            .explain_entries(&c.id, &ObjectFilter::default(), &after)
            .unwrap();
        eprintln!("{plan}");
        // The cursor is an index condition on entries_page: a page starts with an index seek,
        // however deep into the collection it is.
        assert!(
            plan.lines().any(|l| l.contains("Index Cond")
                && l.contains("ROW(date_added_ns, id, version_key, seq) >")),
            "{plan}"
        );
        assert!(plan.contains("entries_page"), "{plan}");
        let by_type = ObjectFilter {
            types: vec!["campaign".into()],
            ..Default::default()
        };
        let plan = store.explain_entries(&c.id, &by_type, &after).unwrap();
        assert!(plan.contains("entries_"), "{plan}");
    }

    #[test]
    fn copy_from_sqlite_keeps_everything_and_the_checksums_agree() {
        let Some((pg, _schema)) = postgres() else {
            return;
        };
        let (lite, dir) = sqlite().unwrap();
        let c1 = lite
            .create_collection(&NewCollection {
                alias: "one".into(),
                title: Some("One".into()),
                description: Some("first".into()),
            })
            .unwrap();
        let c2 = lite
            .create_collection(&NewCollection {
                alias: "two".into(),
                ..Default::default()
            })
            .unwrap();
        let objects: Vec<Value> = (0..300).map(campaign).collect();
        add(&lite, &c1.id, &objects[..200]);
        add(&lite, &c2.id, &objects[100..]);
        add(
            &lite,
            &c2.id,
            &[obj(A, None, "198.51.100.7"), obj(A, None, "198.51.100.8")],
        );
        lite.put_status("st-1", "{\"id\":\"st-1\"}").unwrap();
        lite.set_setting("admin", "hash").unwrap();
        let partner = concord_store::Partner {
            name: "bsi".into(),
            jurisdiction: "DE".into(),
            groups: vec!["eu-cert".into()],
            read: vec![c1.id.clone()],
            write: vec![],
            key_id: "0123456789abcdef".into(),
            key_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_ns: 1,
            details: Default::default(),
        };
        lite.put_partner(&partner).unwrap();
        let records: Vec<_> = (0..3).map(|i| audit_record("bsi", i)).collect();
        lite.append_audit(&records).unwrap();
        // Issue 18: a partner's foreign version (newer than the operator's, which it shadows
        // for the partner alone), and a creator.
        add(
            &lite,
            &c2.id,
            &[obj(B, Some("2016-01-01T00:00:00.000Z"), "operator's")],
        );
        let mut batch = lite.begin_write(&c2.id).unwrap();
        let forged = obj(B, Some("2030-01-01T00:00:00.000Z"), "forged");
        let header: ObjectHeader = validate_object(&forged).unwrap();
        let body = forged.to_string();
        batch
            .add(&NewObject {
                header: &header,
                body: &body,
                value: &forged,
            })
            .unwrap();
        let vid = batch.last_vid().unwrap();
        batch.mark_foreign(vid, "partner/bsi").unwrap();
        batch
            .add_provenance(
                "campaign--x",
                "2016-01-01T00:00:00.000Z",
                "partner/bsi",
                true,
            )
            .unwrap();
        batch.commit().unwrap();
        let path = dir.path().join("t.sqlite");
        let before = concord_store::postgres::summarize_sqlite(&path).unwrap();
        assert_eq!(
            (before.collections, before.object_versions, before.entries),
            (2, 304, 404)
        );
        assert!(pg.is_empty().unwrap());
        let mut calls = 0;
        pg.copy_from_sqlite(&path, &mut |_| calls += 1).unwrap();
        assert!(calls > 0);
        let after = pg.summary().unwrap();
        assert_eq!(before, after);
        assert_eq!(after.partners, 1);
        assert_eq!(pg.partners().unwrap(), vec![partner]);
        // The audit log, chain intact, and appends continue it.
        let q = concord_store::AuditQuery {
            limit: 100,
            ..Default::default()
        };
        let log = pg.audit_entries(&q).unwrap();
        assert_eq!(log, lite.audit_entries(&q).unwrap());
        pg.append_audit(&records[..1]).unwrap();
        assert_eq!(pg.audit_entries(&q).unwrap().len(), 4);
        assert_eq!(
            pg.audit_entries(&concord_store::AuditQuery {
                vids: vec![1],
                ..q.clone()
            })
            .unwrap()
            .len(),
            2,
            "the posting index rebuilt from the items"
        );
        let r = concord_store::audit::verify_log(&pg, None, true).unwrap();
        assert_eq!((r.error, r.entries), (None, 4));
        // Served identically: same pages, same date_added, same bytes.
        let f = ObjectFilter {
            versions: vec![VersionSelector::All],
            ..Default::default()
        };
        let strip = |v: Vec<concord_store::Entry>| {
            v.into_iter()
                .map(|e| (e.id, e.date_added_ns, e.version_key, e.body))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(all(&lite, &c2.id, &f)), strip(all(&pg, &c2.id, &f)));
        // Foreign versions and creators as they were: the forged version is nobody's but
        // its writer's.
        for foreign in [
            concord_store::ForeignVersions::Hidden,
            concord_store::ForeignVersions::Of("partner/bsi".into()),
            concord_store::ForeignVersions::Of("partner/other".into()),
        ] {
            let f = ObjectFilter {
                ids: vec![format!("campaign--{B}")],
                foreign,
                ..Default::default()
            };
            assert_eq!(
                strip(all(&lite, &c2.id, &f)),
                strip(all(&pg, &c2.id, &f)),
                "{f:?}"
            );
        }
        let newest = all(
            &pg,
            &c2.id,
            &ObjectFilter {
                ids: vec![format!("campaign--{B}")],
                ..Default::default()
            },
        );
        assert!(newest[0].body.as_deref().unwrap().contains("operator's"));
        assert_eq!(
            pg.creators("campaign--x").unwrap(),
            lite.creators("campaign--x").unwrap()
        );
        assert_eq!(pg.creators("campaign--x").unwrap(), ["partner/bsi"]);
        assert_eq!(
            pg.status("st-1").unwrap().as_deref(),
            Some("{\"id\":\"st-1\"}")
        );
        // New batches are dated after every copied entry.
        let last = all(&pg, &c2.id, &f)
            .iter()
            .map(|e| e.date_added_ns)
            .max()
            .unwrap();
        let mut b = pg.begin_write(&c1.id).unwrap();
        assert!(b.date_added_ns() > last);
        drop(b);
        b = pg.begin_write(&c1.id).unwrap();
        drop(b);
        // The target must be empty.
        assert!(matches!(
            pg.copy_from_sqlite(&path, &mut |_| {}),
            Err(StoreError::CollectionExists(_))
        ));
        assert_eq!(pg.summary().unwrap(), after);
    }

    #[test]
    fn a_database_that_cannot_be_reached_is_a_clear_error() {
        let err = PostgresStore::open("postgres://nobody@127.0.0.1:1/none").unwrap_err();
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
    }
}

/// Rows as schema 4 stored them: versions in nanoseconds, one before 1970, one unversioned
/// (its version is its date_added).
/// `blob` writes a content hash as the backend's byte-string literal.
fn old_rows_sql(blob: fn(&str) -> String) -> String {
    let body = |name: &str, m: &str| obj(A, Some(m), name).to_string().replace('\'', "''");
    let hash = |name: &str, m: &str| {
        let h = concord_store::content_hash(&obj(A, Some(m), name));
        blob(&h.iter().map(|b| format!("{b:02x}")).collect::<String>())
    };
    format!(
        "INSERT INTO collections (id, alias, title, description, created_ns)
             VALUES ('c1', 'old', 'old', NULL, 0);
         INSERT INTO object_versions (vid, id, type, spec_version, modified_ns, modified,
                                      content_hash, body) VALUES
             (1, 'campaign--{A}', 'campaign', '2.1', -1, '1969-12-31T23:59:59.999999999Z', {}, '{}'),
             (2, 'campaign--{A}', 'campaign', '2.1', 1483228799999000000, '2016-12-31T23:59:59.999Z', {}, '{}'),
             (3, 'ipv4-addr--{B}', 'ipv4-addr', '2.1', NULL, NULL, {}, '{{}}');
         INSERT INTO collection_entries (seq, collection_id, vid, date_added_ns, id, type,
                                         spec_version, version_ns) VALUES
             (1, 'c1', 1, 1700000000000000000, 'campaign--{A}', 'campaign', '2.1', -1),
             (2, 'c1', 2, 1700000000000000000, 'campaign--{A}', 'campaign', '2.1', 1483228799999000000),
             (3, 'c1', 3, 1700000000000001000, 'ipv4-addr--{B}', 'ipv4-addr', '2.1', 1700000000000001000);",
        hash("one", "1969-12-31T23:59:59.999999999Z"),
        body("one", "1969-12-31T23:59:59.999999999Z"),
        hash("two", "2016-12-31T23:59:59.999Z"),
        body("two", "2016-12-31T23:59:59.999Z"),
        blob(&"00".repeat(32)),
    )
}

/// What [`old_rows_sql`] holds, read back after migrating.
fn check_migrated(store: &dyn Store) {
    let every = ObjectFilter {
        versions: vec![VersionSelector::All],
        spec_versions: vec!["2.1".into()],
        ..Default::default()
    };
    let e = all(store, "c1", &every);
    let got: Vec<(String, String)> = e
        .iter()
        .map(|e| (e.version_key.clone(), e.version()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "19691231T235959.999999999Z".to_owned(),
                "1969-12-31T23:59:59.999999999Z".to_owned()
            ),
            (
                "20161231T235959.999000000Z".to_owned(),
                "2016-12-31T23:59:59.999Z".to_owned()
            ),
            (
                "20231114T221320.000001000Z".to_owned(),
                "2023-11-14T22:13:20.000001Z".to_owned()
            ),
        ]
    );
    let at = |t: &str| ObjectFilter {
        versions: vec![VersionSelector::At(
            concord_stix::Timestamp::parse(t).unwrap(),
        )],
        ..Default::default()
    };
    assert_eq!(
        all(store, "c1", &at("2016-12-31T23:59:59.999000Z")).len(),
        1
    );
    // The same version again is recognised (the key of the new code equals the migrated one).
    let v = obj(A, Some("2016-12-31T23:59:59.999Z"), "two");
    assert_eq!(add(store, "c1", &[v]), [AddOutcome::AlreadyPresent]);
    let v = obj(A, Some("2016-12-31T23:59:59.999Z"), "changed");
    assert!(matches!(
        add(store, "c1", &[v])[..],
        [AddOutcome::Conflict(_)]
    ));
}

#[test]
fn sqlite_versions_stored_as_nanoseconds_survive_the_migration_to_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/sqlite/0002_partners.sql"),
        include_str!("../migrations/sqlite/0003_audit.sql"),
        include_str!("../migrations/sqlite/0004_provenance.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 4).unwrap();
    conn.execute_batch(&old_rows_sql(|h| format!("X'{h}'")))
        .unwrap();
    drop(conn);
    let store = concord_store::SqliteStore::open(&path).unwrap();
    check_migrated(&store);
}

#[test]
fn sqlite_migrations_refuse_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    drop(concord_store::SqliteStore::open(&path).unwrap());
    // Reopening an up-to-date file applies nothing and works.
    drop(concord_store::SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        concord_store::SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}
