//! Named users and roles (issue 20), through the real binary: `concord user …`, the role of
//! each user checked at every door (CLI `--as`, the admin REST API with a login token, the
//! web UI's session), login throttling and the TOTP second factor, and web sessions kept in
//! the database, so that two `serve` processes on one PostgreSQL database share them.

use concord_store::postgres::ScratchSchema;

use crate::support::{Node, Server, concord, data, run};

/// `concord user add NAME --role ROLE --json` on `node` (plus `extra` arguments): the
/// password and the login token.
pub(crate) fn add_user(
    node: &Node,
    name: &str,
    role: &str,
    extra: &[&str],
) -> (String, String, Option<String>) {
    let out = run(concord()
        .args(["user", "add", name, "--role", role, "--json", "--data-dir"])
        .arg(node.path())
        .args(extra));
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["role"], role);
    let totp = j["totp_uri"].as_str().map(|u| {
        // The key, back from base32 to hex, as the store keeps it.
        let b32 = u
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        unbase32(b32)
    });
    (
        j["password"].as_str().unwrap().to_owned(),
        j["login_token"].as_str().unwrap().to_owned(),
        totp,
    )
}

fn unbase32(s: &str) -> String {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u64, 0, String::new());
    for c in s.chars() {
        acc = (acc << 5) | A.find(c).unwrap() as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push_str(&format!("{:02x}", (acc >> bits) & 0xff));
        }
    }
    out
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// POST /ui/login with a form: (status, the session cookie if one was set, Retry-After).
pub(crate) fn login(base: &str, form: &str) -> (u16, Option<String>, Option<String>) {
    let resp = agent()
        .post(format!("{base}/ui/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("{form}&next=%2Fui%2F"))
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("concord_session="))
        .map(|v| v.split(';').next().unwrap().to_owned());
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status().as_u16(), cookie, retry)
}

pub(crate) fn user_login(base: &str, name: &str, password: &str) -> String {
    let (status, cookie, _) = login(base, &format!("user={name}&token={password}"));
    assert_eq!(status, 303, "login of {name}");
    cookie.unwrap_or_else(|| panic!("no session cookie for {name}"))
}

/// GET with a session cookie: the status.
pub(crate) fn page(base: &str, cookie: &str, path: &str) -> (u16, String) {
    let mut resp = agent()
        .get(format!("{base}{path}"))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), body)
}

/// A request to the admin REST API with a Bearer token: the status.
pub(crate) fn api(base: &str, token: &str, method: &str, path: &str, body: Option<&str>) -> u16 {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}/api/v1{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.unwrap_or_default().to_owned())
        .unwrap();
    agent().run(req).unwrap().status().as_u16()
}

/// A CLI command as `--as NAME`: whether it succeeded, and its stderr.
pub(crate) fn cli_as(node: &Node, name: &str, args: &[&str]) -> (bool, String) {
    let out = run(concord()
        .args(["--as", name])
        .args(args)
        .arg("--data-dir")
        .arg(node.path()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each role × a representative operation of each door (CLI, admin API, web UI): one it
/// may do, answered as usual, and one it may not, refused naming its role; nothing done by
/// the refused ones.
#[test]
fn each_role_is_enforced_on_every_door() {
    let node = Node::init();
    let (code, _) = node.import("ics", &[&data("stix/attack/ics-attack-18.1.json.gz")]);
    assert_eq!(code, 0);
    let (ana_pw, ana_tok, _) = add_user(&node, "ana", "analyst", &[]);
    let (rel_pw, rel_tok, _) = add_user(&node, "rel", "releaser", &[]);
    let (ops_pw, ops_tok, _) = add_user(&node, "ops", "operator", &[]);
    let (aud_pw, aud_tok, _) = add_user(&node, "aud", "auditor", &[]);
    let stix = data("stix/attack/ics-attack-18.1.json.gz");
    let stix = stix.to_str().unwrap();

    // CLI.
    let (ok, _) = cli_as(&node, "ana", &["import", "--collection", "ics2", stix]);
    assert!(ok, "an analyst imports");
    let (ok, err) = cli_as(&node, "ana", &["partner", "list"]);
    assert!(
        !ok && err.contains("user ana (analyst) may not manage partners"),
        "{err}"
    );
    let (ok, err) = cli_as(
        &node,
        "rel",
        &["collection", "share", "ics", "--default-tlp", "green"],
    );
    assert!(ok, "a releaser shares: {err}");
    let (ok, err) = cli_as(&node, "rel", &["import", "--collection", "ics3", stix]);
    assert!(!ok && err.contains("(releaser) may not import"), "{err}");
    let (ok, _) = cli_as(&node, "ops", &["partner", "list"]);
    assert!(ok, "an operator lists partners");
    let (ok, err) = cli_as(&node, "ops", &["audit", "show"]);
    assert!(!ok && err.contains("may not read the audit log"), "{err}");
    let (ok, _) = cli_as(&node, "aud", &["audit", "verify"]);
    assert!(ok, "an auditor verifies the audit log");
    let (ok, err) = cli_as(&node, "aud", &["collection", "list"]);
    assert!(!ok && err.contains("(auditor) may not browse"), "{err}");
    let (ok, err) = cli_as(&node, "nobody", &["collection", "list"]);
    assert!(!ok && err.contains("no user of that name"), "{err}");
    let out = run(concord()
        .args(["collection", "list", "--json", "--data-dir"])
        .arg(node.path()));
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("ics2") && !list.contains("ics3"), "{list}");

    let server = node.serve();
    let b = &server.base;
    // Admin REST API, with each user's login token.
    assert_eq!(api(b, &ana_tok, "GET", "/collections", None), 200);
    assert_eq!(api(b, &ana_tok, "GET", "/partners", None), 403);
    let share = r#"{"default_tlp":"amber"}"#;
    assert_eq!(
        api(
            b,
            &rel_tok,
            "PATCH",
            "/collections/ics/sharing",
            Some(share)
        ),
        200
    );
    assert_eq!(
        api(
            b,
            &rel_tok,
            "POST",
            "/collections",
            Some(r#"{"alias":"new"}"#)
        ),
        403
    );
    assert_eq!(api(b, &ops_tok, "GET", "/partners", None), 200);
    assert_eq!(api(b, &ops_tok, "GET", "/audit", None), 403);
    assert_eq!(api(b, &aud_tok, "GET", "/audit", None), 200);
    assert_eq!(api(b, &aud_tok, "GET", "/collections", None), 403);
    // A wrong token is a wrong credential, not a refusal.
    // (The last hex digit changed: never the token itself.)
    let last = if ana_tok.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &ana_tok[..ana_tok.len() - 1]);
    assert_eq!(api(b, &wrong, "GET", "/collections", None), 401);

    // Web UI, with each user's session.
    let ana = user_login(b, "ana", &ana_pw);
    assert_eq!(page(b, &ana, "/ui/collections").0, 200);
    let (status, body) = page(b, &ana, "/ui/operator/partners");
    assert_eq!(status, 403);
    assert!(body.contains("analyst"), "the refusal names the role");
    let rel = user_login(b, "rel", &rel_pw);
    assert_eq!(page(b, &rel, "/ui/c/ics").0, 200);
    assert_eq!(page(b, &rel, "/ui/operator/audit").0, 403);
    let ops = user_login(b, "ops", &ops_pw);
    assert_eq!(page(b, &ops, "/ui/operator/partners").0, 200);
    assert_eq!(page(b, &ops, "/ui/operator/audit").0, 403);
    let aud = user_login(b, "aud", &aud_pw);
    assert_eq!(page(b, &aud, "/ui/operator/audit").0, 200);
    assert_eq!(page(b, &aud, "/ui/collections").0, 403);
    let (status, body) = page(b, &ana, "/ui/");
    assert_eq!(status, 200);
    assert!(body.contains("ana"), "the header names the user");

    // Removing a user ends its sessions and its token at once.
    let out = run(concord()
        .args(["user", "remove", "ana", "--data-dir"])
        .arg(node.path()));
    assert!(out.status.success());
    assert_eq!(page(b, &ana, "/ui/collections").0, 303, "to the login page");
    assert_eq!(api(b, &ana_tok, "GET", "/collections", None), 401);
}

/// Login throttling per user (`failures_per_key`) in the authenticator's quota, and the TOTP
/// second factor: required by `[users] totp_required` for the role, checked, used once.
#[test]
fn user_logins_are_throttled_and_totp_is_required_per_role() {
    let node = Node::init();
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[users]\ntotp_required = [\"operator\"]\n[limits]\nfailures_per_key = 5\n");
    std::fs::write(&config, text).unwrap();
    let (pw, _, key) = add_user(&node, "olga", "operator", &[]);
    let key = key.expect("a role that needs TOTP gets a key at once");
    let (ana_pw, _, none) = add_user(&node, "ana", "analyst", &[]);
    assert!(none.is_none());
    let server = node.serve();
    let b = &server.base;

    // Without the code, with a wrong one: the same refusal as a wrong password.
    assert_eq!(login(b, &format!("user=olga&token={pw}")).0, 401);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A code that none of the steps around now has (so it is wrong in every run).
    let near: Vec<String> = [
        now.saturating_sub(60),
        now.saturating_sub(30),
        now,
        now + 30,
        now + 60,
    ]
    .iter()
    .map(|t| concord_server::auth::users::totp_now(&key, *t).unwrap())
    .collect();
    let wrong = ["000000", "111111", "222222", "333333", "444444", "555555"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap();
    assert_eq!(
        login(b, &format!("user=olga&token={pw}&totp={wrong}")).0,
        401
    );
    let code = concord_server::auth::users::totp_now(&key, now).unwrap();
    let (status, cookie, _) = login(b, &format!("user=olga&token={pw}&totp={code}"));
    assert_eq!(status, 303, "password and code");
    assert_eq!(page(b, &cookie.unwrap(), "/ui/operator/partners").0, 200);
    // The same code again (RFC 6238 §5.2: used once).
    assert_eq!(
        login(b, &format!("user=olga&token={pw}&totp={code}")).0,
        401
    );

    // Wrong passwords for ana: refused, then throttled (429 with Retry-After) past the
    // per-user quota, before any verification; an unknown user is answered as a wrong
    // password.
    assert_eq!(login(b, "user=nobody&token=x").0, 401);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let (status, _, retry) = login(b, &format!("user=ana&token=wrong{i}"));
        if status == 429 {
            assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right password now waits for the quota (it was never verified before).
    assert_eq!(login(b, &format!("user=ana&token={ana_pw}")).0, 429);
}

/// Sessions live in the database: logged in on one `serve`, the cookie works on a second
/// `serve` on the same PostgreSQL database; logging out on the second ends it on the first.
#[test]
fn two_serve_processes_on_one_postgres_share_a_session() {
    let url = match std::env::var("CONCORD_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CONCORD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CONCORD_REQUIRE_POSTGRES=1 but CONCORD_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipping: CONCORD_TEST_POSTGRES_URL not set");
            return;
        }
    };
    let schema = ScratchSchema::create(&url).expect("a test schema");
    let node = Node::init_with(&["--database-url", schema.url()]);
    let out = run(concord()
        .args([
            "user",
            "add",
            "ana",
            "--role",
            "analyst",
            "--json",
            "--database-url",
        ])
        .arg(schema.url())
        .arg("--data-dir")
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pw = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let serve = || {
        let dir = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        let s: Server = dir.serve_with(&[("CONCORD_DATABASE_URL", schema.url())]);
        (dir, s)
    };
    let (_a_dir, a) = serve();
    let (_b_dir, b) = serve();
    let cookie = user_login(&a.base, "ana", &pw);
    let (status, body) = page(&b.base, &cookie, "/ui/collections");
    assert_eq!(status, 200, "the second serve knows the session");
    assert!(body.contains("ana"));
    let resp = agent()
        .post(format!("{}/ui/logout", b.base))
        .header("Cookie", &cookie)
        .send("")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        page(&a.base, &cookie, "/ui/collections").0,
        303,
        "ended everywhere"
    );
}

/// Every audit entry names who acted (issue 20, item 4): CLI actions (as a named user and as
/// the operator), TAXII reads with the admin token and with a partner's key, the admin API
/// with a user's login token, the web UI's pages and import of a user's session. `audit
/// show` prints the person; no entry is without one.
#[test]
fn every_audit_entry_names_the_person() {
    let node = Node::init();
    let (_, ana_tok, _) = add_user(&node, "ana", "analyst", &[]);
    // CLI: an import as the user ana, an export as the operator.
    let stix = data("stix/attack/ics-attack-18.1.json.gz");
    let (ok, err) = cli_as(
        &node,
        "ana",
        &["import", "--collection", "ics", stix.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let out = run(concord()
        .args(["export", "--collection", "ics", "-o"])
        .arg(node.path().join("out.json"))
        .arg("--data-dir")
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(concord()
        .args([
            "partner",
            "add",
            "bsi",
            "--jurisdiction",
            "de",
            "--read",
            "ics",
            "--json",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(out.status.success());
    let key = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    // A fresh password for ana, to log in to the web UI.
    let out = run(concord()
        .args(["user", "reset", "ana", "--json", "--data-dir"])
        .arg(node.path()));
    let reset: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ana_pw = reset["password"].as_str().unwrap().to_owned();
    let ana_tok_new = reset["login_token"].as_str().unwrap().to_owned();
    assert_ne!(ana_tok, ana_tok_new, "a reset gives a new token");

    let server = node.serve();
    let b = &server.base;
    // TAXII: the admin token and the partner's key.
    let r = server.get("/concord/collections/ics/objects/?limit=5");
    assert_eq!(r.status, 200);
    let r = server.request(
        "GET",
        "/concord/collections/ics/objects/?limit=5",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Accept", crate::support::TAXII),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The admin API with ana's login token: an incident opened (objects written, audited).
    let body = r#"{"title":"port ransomware"}"#;
    assert_eq!(api(b, &ana_tok_new, "POST", "/incidents", Some(body)), 201);
    // The web UI: ana's session imports a file.
    let cookie = user_login(b, "ana", &ana_pw);
    let bundle = r#"{"type":"bundle","id":"bundle--6f2d1b9e-0000-4000-8000-000000000001","objects":[{"type":"indicator","spec_version":"2.1","id":"indicator--6f2d1b9e-0000-4000-8000-000000000002","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}]}"#;
    let boundary = "XpeopleX";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"collection\"\r\n\r\nics\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\nauto\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.json\"\r\n\
         Content-Type: application/json\r\n\r\n{bundle}\r\n--{boundary}--\r\n"
    );
    let resp = agent()
        .post(format!("{b}/ui/import"))
        .header("Cookie", &cookie)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .send(form)
        .unwrap();
    assert!(
        resp.status().as_u16() < 400,
        "web import: {}",
        resp.status()
    );

    let out = run(concord()
        .args(["audit", "show", "--limit", "10000", "--json", "--data-dir"])
        .arg(node.path()));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            let person = r["person"]
                .as_str()
                .unwrap_or_else(|| panic!("an entry without a person: {r}"));
            (r["door"].as_str().unwrap().to_owned(), person.to_owned())
        })
        .collect();
    for want in [
        ("import", "user:ana"),
        ("export", "operator"),
        ("taxii-objects", "admin-token"),
        ("taxii-objects", format!("key:{key_id}").as_str()),
        ("incident-open", "user:ana"),
        ("web-import", "user:ana"),
    ] {
        assert!(
            pairs.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {pairs:?}"
        );
    }
    // `audit show` prints the person as a column.
    let out = run(concord()
        .args(["audit", "show", "--limit", "5", "--data-dir"])
        .arg(node.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("seq\ttime\tdirection\tdoor\tpartner\tperson\t"),
        "{text}"
    );
}
