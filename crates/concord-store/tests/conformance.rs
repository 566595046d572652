//! One conformance suite for every `Store` backend (quickwit's metastore test-suite shape).
//! Each backend instantiates `store_suite!` with a constructor; today SQLite.

use concord_stix::{ObjectHeader, validate_object};
use concord_store::{
    AddOutcome, NewCollection, NewObject, ObjectFilter, PageRequest, Store, StoreError,
    VersionSelector,
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
    let mut out = Vec::new();
    for v in objects {
        let header: ObjectHeader = validate_object(v).unwrap();
        let body = v.to_string();
        out.push(
            batch
                .add(&NewObject {
                    header: &header,
                    body: &body,
                    value: v,
                })
                .unwrap(),
        );
    }
    batch.commit().unwrap();
    out
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
    assert_eq!(
        add(store, &c.id, &[v1.clone(), v2.clone()]),
        [AddOutcome::Added, AddOutcome::Added]
    );
    assert_eq!(
        add(store, &c.id, std::slice::from_ref(&v1)),
        [AddOutcome::AlreadyPresent]
    );
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
    let at = concord_stix::Timestamp::parse("2016-01-01T00:00:00Z")
        .unwrap()
        .unix_nanos();
    assert_eq!(names(vec![VersionSelector::At(at)]), ["one"]);
    // The version as written is kept.
    let e = all(store, &c.id, &ObjectFilter::default());
    assert_eq!(e[0].version(), "2017-01-01T00:00:00.000Z");
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
    assert!(
        e.iter()
            .all(|e| e.version_ns == e.date_added_ns && e.version_text.is_none())
    );
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
}

macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[test]
            fn collections_are_unique() {
                let (s, _g) = $make;
                super::collections_are_unique(&s)
            }
            #[test]
            fn an_uncommitted_batch_leaves_nothing() {
                let (s, _g) = $make;
                super::an_uncommitted_batch_leaves_nothing(&s)
            }
            #[test]
            fn versions_and_conflicts() {
                let (s, _g) = $make;
                super::versions_and_conflicts(&s)
            }
            #[test]
            fn unversioned_objects_are_versioned_by_content() {
                let (s, _g) = $make;
                super::unversioned_objects_are_versioned_by_content(&s)
            }
            #[test]
            fn date_added_only_grows_and_pages_are_exact() {
                let (s, _g) = $make;
                super::date_added_only_grows_and_pages_are_exact(&s)
            }
            #[test]
            fn delete_keeps_versions_other_collections_hold() {
                let (s, _g) = $make;
                super::delete_keeps_versions_other_collections_hold(&s)
            }
            #[test]
            fn status_and_settings() {
                let (s, _g) = $make;
                super::status_and_settings(&s)
            }
        }
    };
}

fn sqlite() -> (concord_store::SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = concord_store::SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
    (store, dir)
}

store_suite!(sqlite_backend, sqlite());

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
