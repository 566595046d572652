//! The node on PostgreSQL: `init`/`import`/`export` with `--database-url`, `concord migrate`,
//! two `concord serve` processes on one database acting as one node, and `concord
//! migrate-store` from SQLite. Each test works in a schema of its own (dropped at the end);
//! without `CONCORD_TEST_POSTGRES_URL` they say that they skip, or fail under
//! `CONCORD_REQUIRE_POSTGRES=1` (scripts/test).

use std::collections::HashSet;

use concord_store::postgres::ScratchSchema;

use crate::support::{Node, Server, TOKEN, concord, data, run};

const C: &str = "/concord/collections/ics";

/// A fresh schema in the test database, or `None` (after saying so) without one; panics
/// instead of skipping when `CONCORD_REQUIRE_POSTGRES=1` (scripts/test sets it).
fn scratch() -> Option<ScratchSchema> {
    match std::env::var("CONCORD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            Some(ScratchSchema::create(&url).expect("create a test schema"))
        }
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

fn ics() -> std::path::PathBuf {
    data("stix/attack/ics-attack-18.1.json.gz")
}

fn ics_ids() -> HashSet<String> {
    let v: serde_json::Value = serde_json::from_slice(&crate::support::read_path(&ics())).unwrap();
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A data directory with nothing in it: the node's state is in the database only.
fn empty_dir() -> Node {
    Node {
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A server on the database at `url`, from a data directory of its own.
fn serve_on(url: &str) -> (Node, Server) {
    let dir = empty_dir();
    let server = dir.serve_with(&[("CONCORD_DATABASE_URL", url)]);
    (dir, server)
}

fn indicator(n: usize) -> String {
    format!(
        r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--{n:08x}-0000-4000-8000-000000000000","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","name":"i{n}","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}}"#
    )
}

#[test]
fn init_import_export_collection_on_postgres() {
    let Some(schema) = scratch() else { return };
    let node = Node::init_with(&["--database-url", schema.url()]);
    // init remembers the URL in concord.toml, so later commands need no flag.
    let config = std::fs::read_to_string(node.path().join("concord.toml")).unwrap();
    assert!(config.contains(&format!("database_url = \"{}\"", schema.url())));
    assert!(!node.path().join("concord.sqlite").exists());
    let (code, report) = node.import("ics", &[&ics()]);
    assert_eq!(code, 0, "{report}");
    let added = report["files"][0]["added"].as_u64().unwrap();
    assert_eq!(added as usize, ics_ids().len());
    let (code, report) = node.import("ics", &[&ics()]);
    assert_eq!(code, 0);
    assert_eq!(report["files"][0]["added"], 0);
    let out = run(concord()
        .args(["collection", "list", "--json", "--data-dir"])
        .arg(node.path()));
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["object_versions"].as_u64(), Some(added));
    let out = run(concord()
        .args(["export", "--collection", "ics", "--data-dir"])
        .arg(node.path()));
    assert!(out.status.success());
    let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: HashSet<String> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ics_ids());
}

#[test]
fn migrate_from_an_empty_database_then_nothing_to_do() {
    let Some(schema) = scratch() else { return };
    let dir = empty_dir();
    let migrate = || {
        let out = run(concord()
            .args([
                "migrate",
                "--json",
                "--database-url",
                schema.url(),
                "--data-dir",
            ])
            .arg(dir.path()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = migrate();
    assert_eq!(first["from"], 0);
    assert!(first["to"].as_i64().unwrap() >= 1);
    assert_eq!(first["applied"][0], "0001_initial");
    let second = migrate();
    assert_eq!(second["from"], first["to"]);
    assert_eq!(second["applied"].as_array().unwrap().len(), 0);
    // SQLite too.
    let node = Node::init();
    let out = run(concord()
        .args(["migrate", "--json", "--data-dir"])
        .arg(node.path()));
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["from"], j["to"]);
}

#[test]
fn two_servers_on_one_database_act_as_one_node() {
    let Some(schema) = scratch() else { return };
    let node = Node::init_with(&["--database-url", schema.url()]);
    let (code, _) = node.import("ics", &[&ics()]);
    assert_eq!(code, 0);
    // Two processes, each from a data directory of its own that holds nothing.
    let (_a_dir, a) = serve_on(schema.url());
    let (_b_dir, b) = serve_on(schema.url());

    // An object POSTed through one is readable through the other at once.
    let r = a.post(
        &format!("{C}/objects/"),
        &format!(r#"{{"objects":[{}]}}"#, indicator(1)),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let st = r.json();
    assert_eq!(st["success_count"], 1, "{st}");
    let id = "indicator--00000001-0000-4000-8000-000000000000";
    let got = b.get(&format!("{C}/objects/{id}/"));
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["objects"][0]["name"], "i1");

    // A status resource created by one is readable through the other.
    let status_id = st["id"].as_str().unwrap();
    let again = b.get(&format!("/concord/status/{status_id}/"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json(), st);

    // Pagination started on one continues on the other, alternating, while both write.
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    let mut written = 1;
    loop {
        let server = if pages % 2 == 0 { &a } else { &b };
        let writer = if pages % 2 == 0 { &b } else { &a };
        let url = match &next {
            Some(n) => format!("{C}/objects/?limit=50&next={n}"),
            None => format!("{C}/objects/?limit=50"),
        };
        let r = server.get(&url);
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        pages += 1;
        ids.extend(
            j["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        // A write between pages lands after the cursor, never before it.
        if pages < 6 {
            written += 1;
            let r = writer.post(
                &format!("{C}/objects/"),
                &format!(r#"{{"objects":[{}]}}"#, indicator(written)),
            );
            assert_eq!(r.status, 202);
        }
        if j["more"] == true {
            next = Some(j["next"].as_str().unwrap().to_owned());
        } else {
            break;
        }
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no entry twice");
    let mut expected = ics_ids();
    expected
        .extend((1..=written).map(|n| format!("indicator--{n:08x}-0000-4000-8000-000000000000")));
    assert_eq!(unique.len(), expected.len());
    assert!(pages > 4);
}

#[test]
fn migrate_store_copies_a_sqlite_node_and_verifies_it() {
    let Some(schema) = scratch() else { return };
    let node = Node::init();
    let (code, _) = node.import("ics", &[&ics()]);
    assert_eq!(code, 0);
    let lite = node.serve();
    let r = lite.post(
        &format!("{C}/objects/"),
        &format!(r#"{{"objects":[{}]}}"#, indicator(7)),
    );
    assert_eq!(r.status, 202);
    let status_id = r.json()["id"].as_str().unwrap().to_owned();
    let before = lite.get(&format!("{C}/objects/?limit=100000&match[version]=all"));
    drop(lite);

    let from = format!("sqlite:{}", node.path().join("concord.sqlite").display());
    let copy = || {
        run(concord().args([
            "migrate-store",
            "--json",
            "--from",
            &from,
            "--to",
            schema.url(),
        ]))
    };
    let out = copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["verified"], true, "{j}");
    assert_eq!(j["source"], j["target"]);
    assert_eq!(j["source"]["collections"], 1);
    assert_eq!(
        j["source"]["entries"].as_u64().unwrap() as usize,
        ics_ids().len() + 1
    );
    assert_eq!(j["source"]["status_resources"], 1);
    assert_eq!(j["source"]["checksum"].as_str().unwrap().len(), 64);

    // The PostgreSQL node serves the same objects with the same date_added, the same
    // status resource, and accepts the same admin token.
    let (_dir, pg) = serve_on(schema.url());
    let after = pg.get(&format!("{C}/objects/?limit=100000&match[version]=all"));
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(before.json()["objects"], after.json()["objects"]);
    for h in ["X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"] {
        assert_eq!(before.header(h), after.header(h), "{h}");
    }
    assert_eq!(pg.get(&format!("/concord/status/{status_id}/")).status, 200);

    // A second copy into the now non-empty target is refused.
    let out = copy();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let _ = TOKEN;
}

#[test]
fn a_bad_database_url_is_a_usage_error() {
    let dir = empty_dir();
    let out = run(concord()
        .args([
            "collection",
            "list",
            "--database-url",
            "mysql://x/y",
            "--data-dir",
        ])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"));
    let out = run(concord()
        .args([
            "collection",
            "list",
            "--database-url",
            "postgres://nobody:secret@127.0.0.1:1/none",
            "--data-dir",
        ])
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("secret"),
        "the password is not printed: {err}"
    );
}
