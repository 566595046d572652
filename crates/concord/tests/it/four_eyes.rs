//! Four-eyes release (issue 20, item 3), through the real binary: with `[release] four_eyes =
//! true`, a single releaser cannot widen what a cross-border partner receives — by the CLI,
//! the admin API or the web UI — until a second releaser approves; the approval applies the
//! change and the audit log names both; domestic widening and narrowing apply at once; with
//! four-eyes off (the default) everything applies at once, as before.

use crate::support::{Node, TOKEN, concord, run};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// `concord user add NAME --role ROLE --json`: the password and the login token.
pub(crate) fn add_user(node: &Node, name: &str, role: &str) -> (String, String) {
    let out = run(concord()
        .args(["user", "add", name, "--role", role, "--json", "--data-dir"])
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        j["password"].as_str().unwrap().to_owned(),
        j["login_token"].as_str().unwrap().to_owned(),
    )
}

/// A CLI command (as `--as NAME` when given): success, stdout, stderr.
pub(crate) fn cli(node: &Node, user: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = concord();
    if let Some(u) = user {
        cmd.args(["--as", u]);
    }
    let out = run(cmd.args(args).arg("--data-dir").arg(node.path()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A request to the admin REST API with a Bearer token: status and JSON body.
fn api(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}/api/v1{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.unwrap_or_default().to_owned())
        .unwrap();
    let mut resp = agent().run(req).unwrap();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        resp.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn user_login(base: &str, name: &str, password: &str) -> String {
    let resp = agent()
        .post(format!("{base}/ui/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("user={name}&token={password}&next=%2Fui%2F"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "login of {name}");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("concord_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap()
}

/// GET or POST (a form) with a session cookie: status and body.
fn web(base: &str, cookie: &str, method: &str, path: &str, form: &str) -> (u16, String) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .unwrap();
    let mut resp = agent().run(req).unwrap();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), body)
}

/// The pending approvals (`concord approval list --json`, as the operator).
pub(crate) fn pending(node: &Node) -> Vec<serde_json::Value> {
    let (ok, out, err) = cli(node, None, &["approval", "list", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The collection's sharing, read with the admin token.
pub(crate) fn sharing(base: &str, collection: &str) -> serde_json::Value {
    let (status, s) = api(
        base,
        TOKEN,
        "GET",
        &format!("/collections/{collection}/sharing"),
        None,
    );
    assert_eq!(status, 200);
    s
}

/// The rows of `concord audit show --json` of `door`.
fn audit_rows(node: &Node, door: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = cli(node, None, &["audit", "show", "--limit", "10000", "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.into_iter().filter(|r| r["door"] == door).collect()
}

fn has_both(rows: &[serde_json::Value], requester: &str, approver: &str) -> bool {
    rows.iter().any(|r| {
        r["person"] == approver
            && r["transformations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == &serde_json::json!(format!("requested by {requester}")))
    })
}

/// A node in DE with four-eyes on, a collection `intel` read by a French partner (across the
/// border) and a German one (domestic), two releasers and an analyst.
fn setup(four_eyes: bool) -> Node {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let (ok, _, err) = cli(&node, None, &["collection", "create", "intel"]);
    assert!(ok, "{err}");
    for (name, j) in [("cert-fr", "fr"), ("bsi", "de")] {
        let (ok, _, err) = cli(
            &node,
            None,
            &[
                "partner",
                "add",
                name,
                "--jurisdiction",
                j,
                "--read",
                "intel",
            ],
        );
        assert!(ok, "{err}");
    }
    // Turned on once the partners exist: with it on, the operator (no person) could not
    // give the French partner its read grant (see `partner_add_…` below).
    if four_eyes {
        let path = node.path().join("concord.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n[release]\nfour_eyes = true\n");
        std::fs::write(&path, text).unwrap();
    }
    node
}

#[test]
fn a_single_releaser_cannot_widen_a_cross_border_release_alone() {
    let node = setup(true);
    let (rel1_pw, rel1_tok) = add_user(&node, "rel1", "releaser");
    let (rel2_pw, rel2_tok) = add_user(&node, "rel2", "releaser");
    let (_, ana_tok) = add_user(&node, "ana", "analyst");
    let server = node.serve();
    let b = &server.base;
    assert_eq!(sharing(b, "intel")["recipients"], serde_json::json!([]));

    // CLI: a new AMBER recipient across the border waits.
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["collection", "share", "intel", "--recipient", "cert-fr"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    assert_eq!(
        sharing(b, "intel")["recipients"],
        serde_json::json!([]),
        "nothing applied yet"
    );
    let p = pending(&node);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["requested_by"], "user:rel1");
    assert!(
        p[0]["summary"]
            .as_str()
            .unwrap()
            .contains("cert-fr (FR) receives TLP:AMBER"),
        "{}",
        p[0]
    );
    let id = p[0]["id"].as_str().unwrap().to_owned();
    // The same releaser cannot approve it, an analyst may not release.
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "approve", &id]);
    assert!(
        !ok && err.contains("four-eyes release") && err.contains("another person"),
        "{err}"
    );
    let (ok, _, err) = cli(&node, Some("ana"), &["approval", "approve", &id]);
    assert!(!ok && err.contains("(analyst) may not release"), "{err}");
    assert_eq!(sharing(b, "intel")["recipients"], serde_json::json!([]));
    // A second releaser approves: applied, both names in the audit.
    let (ok, out, err) = cli(&node, Some("rel2"), &["approval", "approve", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("approved"), "{out}");
    assert_eq!(
        sharing(b, "intel")["recipients"],
        serde_json::json!(["cert-fr"])
    );
    assert!(has_both(
        &audit_rows(&node, "collection-share"),
        "user:rel1",
        "user:rel2"
    ));
    let (ok, _, err) = cli(&node, Some("rel2"), &["approval", "approve", &id]);
    assert!(
        !ok && err.contains("approved already by user:rel2"),
        "{err}"
    );

    // Domestic widening and narrowing apply at once.
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &[
            "collection",
            "share",
            "intel",
            "--recipient",
            "cert-fr",
            "--recipient",
            "bsi",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert_eq!(
        sharing(b, "intel")["recipients"],
        serde_json::json!(["cert-fr", "bsi"])
    );
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["collection", "share", "intel", "--default-tlp", "red"],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert_eq!(sharing(b, "intel")["default_tlp"], "red");
    assert!(pending(&node).is_empty());
    assert!(
        audit_rows(&node, "collection-share")
            .iter()
            .any(|r| r["person"] == "user:rel1"),
        "changes applied at once are audited too"
    );

    // Admin API: a lower default TLP waits (202); the requester cannot approve (403).
    let (status, a) = api(
        b,
        &rel1_tok,
        "PATCH",
        "/collections/intel/sharing",
        Some(r#"{"default_tlp":"clear"}"#),
    );
    assert_eq!(status, 202, "{a}");
    let api_id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["requested_by"], "user:rel1");
    let (status, e) = api(
        b,
        &rel1_tok,
        "POST",
        &format!("/approvals/{api_id}/approve"),
        None,
    );
    assert_eq!(status, 403, "{e}");
    assert_eq!(e["code"], "forbidden");
    assert!(e["message"].as_str().unwrap().contains("four-eyes"), "{e}");
    let (status, _) = api(b, &ana_tok, "GET", "/approvals", None);
    assert_eq!(status, 403, "an analyst does not see the approvals");
    let (status, list) = api(b, &rel2_tok, "GET", "/approvals", None);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(sharing(b, "intel")["default_tlp"], "red");
    // The admin token is no named person (`[release] unnamed_persons` is off): it can
    // neither ask for a widening nor approve one.
    let (status, own) = api(
        b,
        TOKEN,
        "PATCH",
        "/collections/intel/sharing",
        Some(r#"{"groups":null,"default_tlp":"green"}"#),
    );
    assert_eq!(status, 403, "{own}");
    assert!(
        own["message"].as_str().unwrap().contains("named person"),
        "{own}"
    );
    let (status, e) = api(
        b,
        TOKEN,
        "POST",
        &format!("/approvals/{api_id}/approve"),
        None,
    );
    assert_eq!(status, 403, "{e}");
    assert_eq!(pending(&node).len(), 1);
    assert_eq!(sharing(b, "intel")["default_tlp"], "red", "nothing applied");

    // Web UI: the requester sees its request without an approve button and is refused
    // when it posts one anyway; the second releaser approves.
    let rel1 = user_login(b, "rel1", &rel1_pw);
    let (status, body) = web(b, &rel1, "GET", "/ui/approvals", "");
    assert_eq!(status, 200);
    assert!(body.contains(&api_id), "the pending approval is listed");
    assert!(!body.contains(&format!("/ui/approvals/{api_id}/approve")));
    let (status, body) = web(b, &rel1, "GET", "/ui/", "");
    assert_eq!(status, 200);
    assert!(
        body.contains("id=\"approvals-count\" data-count=\"1\""),
        "dashboard"
    );
    let (status, body) = web(
        b,
        &rel1,
        "POST",
        &format!("/ui/approvals/{api_id}/approve"),
        "",
    );
    assert_eq!(status, 403);
    assert!(body.contains("four-eyes release"), "the rule is named");
    assert_eq!(sharing(b, "intel")["default_tlp"], "red");
    let rel2 = user_login(b, "rel2", &rel2_pw);
    let (status, body) = web(b, &rel2, "GET", "/ui/approvals", "");
    assert_eq!(status, 200);
    assert!(body.contains(&format!("/ui/approvals/{api_id}/approve")));
    let (status, _) = web(
        b,
        &rel2,
        "POST",
        &format!("/ui/approvals/{api_id}/approve"),
        "",
    );
    assert_eq!(status, 303);
    assert_eq!(sharing(b, "intel")["default_tlp"], "clear");
    let rows = audit_rows(&node, "collection-share");
    assert!(has_both(&rows, "user:rel1", "user:rel2"));
    assert!(pending(&node).is_empty());

    // A grant in an incident to the French partner waits; to the German one, it does not.
    let (ok, out, err) = cli(
        &node,
        None,
        &["incident", "open", "--title", "port ransomware", "--json"],
    );
    assert!(ok, "{err}");
    let incident = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &[
            "incident", "grant", &incident, "--to", "bsi", "--allow", "email",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    let (ok, out, err) = cli(
        &node,
        Some("rel1"),
        &[
            "incident", "grant", &incident, "--to", "cert-fr", "--allow", "email", "--json",
        ],
    );
    assert!(ok, "{err}");
    let g: serde_json::Value = serde_json::from_str(&out).unwrap();
    let grant_id = g["pending_approval"]["id"].as_str().unwrap().to_owned();
    let before = audit_rows(&node, "incident-grant").len();
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "approve", &grant_id]);
    assert!(!ok && err.contains("four-eyes"), "{err}");
    let (status, done) = api(
        b,
        &rel2_tok,
        "POST",
        &format!("/approvals/{grant_id}/approve"),
        None,
    );
    assert_eq!(status, 200, "{done}");
    let rows = audit_rows(&node, "incident-grant");
    assert_eq!(rows.len(), before + 1);
    assert!(has_both(&rows, "user:rel1", "user:rel2"));
    // The grant is in force: the incidents' collection's sharing holds it.
    let store = concord_store::SqliteStore::open(&node.path().join("concord.sqlite")).unwrap();
    assert_eq!(g["pending_approval"]["target"], serde_json::json!(incident));
    let incidents = concord_store::Store::collection(&store, "incidents")
        .unwrap()
        .unwrap();
    let s = concord_store::Store::setting(
        &store,
        &concord_policy::egress::sharing_setting_key(&incidents.id),
    )
    .unwrap()
    .unwrap();
    let s: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(
        s["grants"][&incident]["cert-fr"],
        serde_json::json!(["email"]),
        "{s}"
    );
    assert_eq!(s["grants"][&incident]["bsi"], serde_json::json!(["email"]));
}

#[test]
fn four_eyes_off_keeps_todays_behaviour() {
    let node = setup(false);
    add_user(&node, "rel1", "releaser");
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &[
            "collection",
            "share",
            "intel",
            "--recipient",
            "cert-fr",
            "--default-tlp",
            "clear",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert!(pending(&node).is_empty());
    let server = node.serve();
    let s = sharing(&server.base, "intel");
    assert_eq!(s["recipients"], serde_json::json!(["cert-fr"]));
    assert_eq!(s["default_tlp"], "clear");
    let rows = audit_rows(&node, "collection-share");
    assert!(rows.iter().any(|r| r["person"] == "user:rel1"), "{rows:?}");
    // A cross-border partner added with reads and groups, by the operator, has them at once.
    let (ok, out, err) = cli(
        &node,
        None,
        &[
            "partner",
            "add",
            "cert-it",
            "--jurisdiction",
            "it",
            "--read",
            "intel",
            "--group",
            "eu",
            "--json",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(added.get("pending_approval").is_none(), "{added}");
    let p = partner_json(&node, "cert-it");
    assert_eq!(p["read_names"], serde_json::json!(["intel"]));
    assert_eq!(p["groups"], serde_json::json!(["eu"]));
    assert!(pending(&node).is_empty());
}

/// `concord partner show NAME --json`, as the operator.
fn partner_json(node: &Node, name: &str) -> serde_json::Value {
    let (ok, out, err) = cli(node, None, &["partner", "show", name, "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The id of the one pending approval of kind `partner` (asserted).
fn pending_partner_change(node: &Node) -> (String, serde_json::Value) {
    let p: Vec<_> = pending(node)
        .into_iter()
        .filter(|a| a["kind"] == "partner")
        .collect();
    assert_eq!(p.len(), 1, "{p:?}");
    (p[0]["id"].as_str().unwrap().to_owned(), p[0].clone())
}

/// Issue 20: `partner update` that widens what a cross-border partner receives (a new read
/// grant or group, a jurisdiction that makes it domestic) waits for a releaser's approval
/// on every door (CLI, admin API, web UI); a narrowing or a write grant applies at once; an
/// approval applies the change to the partner as it is then, and refuses (naming why) when
/// the partner changed so that it would widen something else; the pending change reads in
/// Chinese and Arabic on the approvals page; `operator` and the admin token are no persons.
#[test]
fn partner_update_that_widens_a_cross_border_partner_waits_for_a_releaser() {
    let node = setup(true);
    let (ok, _, err) = cli(&node, None, &["collection", "create", "more"]);
    assert!(ok, "{err}");
    let (op_pw, op_tok) = add_user(&node, "op1", "operator");
    let (rel_pw, rel_tok) = add_user(&node, "rel1", "releaser");
    let server = node.serve();
    let b = &server.base;
    let reads = |node: &Node| partner_json(node, "cert-fr")["read_names"].clone();

    // CLI: a new read grant waits; the operator who asked cannot approve it.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "cert-fr", "--read", "more"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    assert_eq!(
        reads(&node),
        serde_json::json!(["intel"]),
        "nothing applied"
    );
    let (id, a) = pending_partner_change(&node);
    assert_eq!(a["requested_by"], "user:op1");
    assert_eq!(a["target"], "cert-fr");
    assert!(
        a["summary"]
            .as_str()
            .unwrap()
            .contains("partner cert-fr: cert-fr (FR) receives TLP:CLEAR from more"),
        "{a}"
    );
    assert_eq!(a["request"]["widens"][0]["what"], "tlp", "{a}");
    let (ok, _, err) = cli(&node, Some("op1"), &["approval", "approve", &id]);
    assert!(!ok && err.contains("may not release"), "{err}");
    // Neither the CLI's operator nor the admin token is a named person.
    let (ok, _, err) = cli(&node, None, &["approval", "approve", &id]);
    assert!(!ok && err.contains("named person"), "{err}");
    let (ok, _, err) = cli(
        &node,
        None,
        &["partner", "update", "cert-fr", "--group", "nato"],
    );
    assert!(!ok && err.contains("named person"), "{err}");
    let (status, e) = api(
        b,
        TOKEN,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"add_groups":["nato"]}"#),
    );
    assert_eq!(status, 403, "{e}");
    assert!(
        partner_json(&node, "cert-fr")["groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A narrowing and a write grant apply at once, by anyone allowed, also meanwhile.
    let (ok, _, err) = cli(
        &node,
        None,
        &["partner", "update", "cert-fr", "--no-read", "intel"],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "cert-fr", "--write", "more"],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert_eq!(reads(&node), serde_json::json!([]));
    assert_eq!(
        partner_json(&node, "cert-fr")["write_names"],
        serde_json::json!(["more"])
    );
    // The approval recomputes on the partner as it is now: what it widens is what was
    // asked, so it applies, and the narrowing made meanwhile stays.
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "approve", &id]);
    assert!(ok, "{err}");
    assert_eq!(reads(&node), serde_json::json!(["more"]));
    assert!(has_both(
        &audit_rows(&node, "partner-update"),
        "user:op1",
        "user:rel1"
    ));

    // Admin API: a new group waits (202); the releaser approves it (200).
    let (status, a) = api(
        b,
        &op_tok,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"add_groups":["eu"]}"#),
    );
    assert_eq!(status, 202, "{a}");
    assert_eq!(a["kind"], "partner");
    let group_id = a["id"].as_str().unwrap().to_owned();
    // Meanwhile a narrowing changes what the group would give (the pseudonyms of `eu` in
    // `more`): the approval is refused, naming why, and applies nothing.
    let (status, p) = api(
        b,
        &op_tok,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"remove_read":["more"]}"#),
    );
    assert_eq!(status, 200, "{p}");
    let (status, e) = api(
        b,
        &rel_tok,
        "POST",
        &format!("/approvals/{group_id}/approve"),
        None,
    );
    assert_eq!(status, 409, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("changed since the request"),
        "{e}"
    );
    assert!(
        partner_json(&node, "cert-fr")["groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = api(
        b,
        &rel_tok,
        "POST",
        &format!("/approvals/{group_id}/reject"),
        Some(r#"{"reason":"stale"}"#),
    );
    assert_eq!(status, 200);
    let (status, a) = api(
        b,
        &op_tok,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"add_groups":["eu"]}"#),
    );
    assert_eq!(status, 202, "{a}");
    let group_id = a["id"].as_str().unwrap().to_owned();
    let (status, done) = api(
        b,
        &rel_tok,
        "POST",
        &format!("/approvals/{group_id}/approve"),
        None,
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        partner_json(&node, "cert-fr")["groups"],
        serde_json::json!(["eu"])
    );

    // Web UI: the partner page's form making cert-fr domestic waits.
    let op = user_login(b, "op1", &op_pw);
    let (status, body) = web(
        b,
        &op,
        "POST",
        "/ui/operator/partners/cert-fr",
        "jurisdiction=DE&groups=eu&write=more",
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(partner_json(&node, "cert-fr")["jurisdiction"], "FR");
    let (web_id, _) = pending_partner_change(&node);
    let (status, body) = web(b, &op, "GET", "/ui/operator/partners/cert-fr?pending=", "");
    assert_eq!(status, 200);
    assert!(
        !body.contains("id=\"partner-pending\""),
        "an empty id is not shown"
    );
    let (status, body) = web(
        b,
        &op,
        "GET",
        &format!("/ui/operator/partners/cert-fr?pending={web_id}"),
        "",
    );
    assert_eq!(status, 200);
    assert!(body.contains("id=\"partner-pending\""), "{body}");
    // The approvals page renders the request in the reader's language, names isolated.
    let rel = user_login(b, "rel1", &rel_pw);
    for (lang, words) in [
        (
            "en",
            "moves from <bdi>FR</bdi> to <bdi>DE</bdi> and becomes domestic",
        ),
        (
            "zh-CN",
            "的管辖地由 <bdi>FR</bdi> 变为 <bdi>DE</bdi>，成为境内合作伙伴",
        ),
        ("ar", "من <bdi>FR</bdi> إلى <bdi>DE</bdi> ويصبح شريكًا محليًا"),
    ] {
        let (status, body) = web(
            b,
            &format!("{rel}; lang={lang}"),
            "GET",
            "/ui/approvals",
            "",
        );
        assert_eq!(status, 200);
        assert!(body.contains(words), "{lang}: {body}");
        assert!(body.contains("<bdi>cert-fr</bdi>"), "{lang}");
    }
    let (status, body) = web(b, &format!("{rel}; lang=ar"), "GET", "/ui/approvals", "");
    assert_eq!(status, 200);
    assert!(body.contains("dir=\"rtl\""));
    assert!(
        body.contains("الشريك <bdi>cert-fr</bdi>"),
        "the subject in Arabic"
    );
    let (status, _) = web(
        b,
        &rel,
        "POST",
        &format!("/ui/approvals/{web_id}/approve"),
        "",
    );
    assert_eq!(status, 303);
    let p = partner_json(&node, "cert-fr");
    assert_eq!(p["jurisdiction"], "DE");
    assert_eq!(p["write_names"], serde_json::json!(["more"]));
    assert!(pending(&node).is_empty());
    assert!(
        audit_rows(&node, "partner-update")
            .iter()
            .filter(|r| r["person"] == "user:rel1")
            .count()
            >= 3,
        "each approval is audited with the approver"
    );
    // A domestic partner's widening applies at once.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &[
            "partner", "update", "bsi", "--read", "more", "--group", "eu",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
}

/// `[release] unnamed_persons = true`: the admin token and the CLI's `operator` count as
/// persons (each one person): the token asks, the operator approves; the token still
/// cannot approve its own request.
#[test]
fn unnamed_persons_count_when_the_configuration_says_so() {
    let node = setup(true);
    let path = node.path().join("concord.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "four_eyes = true",
            "four_eyes = true\nunnamed_persons = true",
        ),
    )
    .unwrap();
    let server = node.serve();
    let b = &server.base;
    let (status, a) = api(
        b,
        TOKEN,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"add_groups":["eu"]}"#),
    );
    assert_eq!(status, 202, "{a}");
    assert_eq!(a["requested_by"], "admin-token");
    let id = a["id"].as_str().unwrap().to_owned();
    let (status, e) = api(b, TOKEN, "POST", &format!("/approvals/{id}/approve"), None);
    assert_eq!(status, 403, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("another person"),
        "{e}"
    );
    let (ok, out, err) = cli(&node, None, &["approval", "approve", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("approved"), "{out}");
    assert_eq!(
        partner_json(&node, "cert-fr")["groups"],
        serde_json::json!(["eu"])
    );
    assert!(has_both(
        &audit_rows(&node, "partner-update"),
        "admin-token",
        "operator"
    ));
}

/// GET of a TAXII path with a partner's key: the status.
fn partner_get(base: &str, key: &str, path: &str) -> u16 {
    let resp = agent()
        .get(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", crate::support::TAXII)
        .call()
        .unwrap();
    resp.status().as_u16()
}

/// Issue 20: `partner add` of a cross-border partner with read grants or groups, by the CLI
/// and by the admin API, creates the partner with its key and write grants but without its
/// reads and groups (it receives nothing); they wait as a `partner` approval that the one
/// who asked cannot approve, and that a second releaser's approval applies, after which the
/// partner reads. Asked by no named person: refused, no partner created. A domestic partner
/// is created whole at once.
#[test]
fn partner_add_of_a_cross_border_partner_waits_for_a_releaser() {
    let node = setup(true);
    let (_, op_tok) = add_user(&node, "op1", "operator");
    let (_, rel_tok) = add_user(&node, "rel1", "releaser");
    let server = node.serve();
    let b = &server.base;
    let objects = "/concord/collections/intel/objects/";

    // CLI, JSON: created without reads and groups, the approval pending.
    let (ok, out, err) = cli(
        &node,
        Some("op1"),
        &[
            "partner",
            "add",
            "cert-it",
            "--jurisdiction",
            "it",
            "--read",
            "intel",
            "--write",
            "intel",
            "--group",
            "eu",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = added["api_key"].as_str().unwrap().to_owned();
    let a = &added["pending_approval"];
    assert_eq!(a["kind"], "partner", "{added}");
    assert_eq!(a["target"], "cert-it");
    assert_eq!(a["requested_by"], "user:op1");
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(pending_partner_change(&node).0, id);
    let p = partner_json(&node, "cert-it");
    assert_eq!(p["jurisdiction"], "IT");
    assert_eq!(p["read_names"], serde_json::json!([]), "{p}");
    assert_eq!(p["groups"], serde_json::json!([]), "{p}");
    assert_eq!(p["write_names"], serde_json::json!(["intel"]), "{p}");
    // The key works; nothing flows to it yet.
    assert_eq!(partner_get(b, &key, "/concord/collections/"), 200);
    let before = partner_get(b, &key, objects);
    assert_ne!(before, 200);
    // The one who asked cannot approve; a second releaser does, and then it reads.
    let (ok, _, err) = cli(&node, Some("op1"), &["approval", "approve", &id]);
    assert!(!ok, "{err}");
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "approve", &id]);
    assert!(ok, "{err}");
    let p = partner_json(&node, "cert-it");
    assert_eq!(p["read_names"], serde_json::json!(["intel"]), "{p}");
    assert_eq!(p["groups"], serde_json::json!(["eu"]), "{p}");
    assert_eq!(partner_get(b, &key, objects), 200);
    assert!(has_both(
        &audit_rows(&node, "partner-update"),
        "user:op1",
        "user:rel1"
    ));

    // CLI, text: the key on stdout, the pending approval named on stderr.
    let (ok, out, err) = cli(
        &node,
        Some("op1"),
        &[
            "partner",
            "add",
            "cert-es",
            "--jurisdiction",
            "es",
            "--read",
            "intel",
        ],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    assert!(out.trim().starts_with("concord_"), "{out}");
    assert_eq!(
        partner_json(&node, "cert-es")["read_names"],
        serde_json::json!([])
    );

    // No named person (the CLI's operator, the admin token): refused, nothing created.
    let (ok, _, err) = cli(
        &node,
        None,
        &[
            "partner",
            "add",
            "cert-pt",
            "--jurisdiction",
            "pt",
            "--read",
            "intel",
        ],
    );
    assert!(!ok && err.contains("named person"), "{err}");
    let (status, e) = api(
        b,
        TOKEN,
        "POST",
        "/partners",
        Some(r#"{"name":"cert-pt","jurisdiction":"PT","read":["intel"]}"#),
    );
    assert_eq!(status, 403, "{e}");
    let (ok, _, _) = cli(&node, None, &["partner", "show", "cert-pt", "--json"]);
    assert!(!ok, "no partner cert-pt was created");

    // Admin API: 202, the partner with its key and the pending approval.
    let (status, added) = api(
        b,
        &op_tok,
        "POST",
        "/partners",
        Some(r#"{"name":"cert-nl","jurisdiction":"NL","read":["intel"],"groups":["eu"]}"#),
    );
    assert_eq!(status, 202, "{added}");
    let key = added["api_key"].as_str().unwrap().to_owned();
    assert_eq!(added["read"], serde_json::json!([]), "{added}");
    assert_eq!(added["groups"], serde_json::json!([]), "{added}");
    assert_eq!(added["pending_approval"]["requested_by"], "user:op1");
    let id = added["pending_approval"]["id"].as_str().unwrap().to_owned();
    assert_ne!(partner_get(b, &key, objects), 200);
    let (status, e) = api(
        b,
        &op_tok,
        "POST",
        &format!("/approvals/{id}/approve"),
        None,
    );
    assert_eq!(status, 403, "{e}");
    let (status, e) = api(
        b,
        &rel_tok,
        "POST",
        &format!("/approvals/{id}/approve"),
        None,
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        partner_json(&node, "cert-nl")["read_names"],
        serde_json::json!(["intel"])
    );
    assert_eq!(partner_get(b, &key, objects), 200);

    // Domestic: whole at once, by anyone allowed (also the operator, no person).
    let (ok, out, err) = cli(
        &node,
        None,
        &[
            "partner",
            "add",
            "bsi2",
            "--jurisdiction",
            "de",
            "--read",
            "intel",
            "--group",
            "eu",
            "--json",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(added.get("pending_approval").is_none(), "{added}");
    assert_eq!(added["read"].as_array().unwrap().len(), 1, "{added}");
    let (status, added) = api(
        b,
        &op_tok,
        "POST",
        "/partners",
        Some(r#"{"name":"bsi3","jurisdiction":"DE","read":["intel"]}"#),
    );
    assert_eq!(status, 201, "{added}");
    assert!(
        pending(&node)
            .iter()
            .all(|a| a["target"] != "bsi2" && a["target"] != "bsi3")
    );
}

/// Issue 20: `invite` + `join` of a cross-border partner with `--read` and `--group` under
/// four-eyes release. The invitation offers the collections and the join succeeds (its
/// preview counts what will flow once approved, and its answer says the reads await
/// approval), but the partner is created without its reads and groups and a `partner`
/// approval is opened, requested by the one who made the invitation; nothing flows until a
/// second releaser approves, and then the next round pulls.
#[test]
fn invite_and_join_of_a_cross_border_partner_waits_for_a_releaser() {
    use crate::sync::{GREEN, cli_ok, import, indicator, sync};
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "FR"]);
    import(
        &a,
        "intel",
        &[
            indicator("a1111111", "green.example.net", &[GREEN]),
            indicator("a2222222", "green2.example.net", &[GREEN]),
        ],
    );
    let config = a.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&config, text).unwrap();
    add_user(&a, "op1", "operator");
    add_user(&a, "rel1", "releaser");
    let sa = a.serve();

    let file = a.path().join("invite.json");
    // Made by no named person (the CLI's `operator`): refused, no file, as for `partner add`.
    let invite = |who: Option<&str>| {
        cli(
            &a,
            who,
            &[
                "invite",
                "--partner",
                "cert-fr",
                "--jurisdiction",
                "FR",
                "--url",
                &sa.base,
                "--read",
                "intel",
                "--group",
                "eu",
                "-o",
                file.to_str().unwrap(),
            ],
        )
    };
    let (ok, _, err) = invite(None);
    assert!(
        !ok,
        "an unnamed invitation with cross-border reads was made"
    );
    assert!(err.contains("must be made by a named person"), "{err}");
    assert!(!file.exists());
    let (ok, _, err) = cli(
        &a,
        Some("op1"),
        &[
            "invite",
            "--partner",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--url",
            &sa.base,
            "--read",
            "intel",
            "--group",
            "eu",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let out = cli_ok(
        &b,
        &[
            "join",
            file.to_str().unwrap(),
            "--name",
            "cert-de",
            "--pull",
            "intel",
            "--json",
        ],
    );
    let joined: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        joined["note"]
            .as_str()
            .unwrap()
            .contains("await a second releaser's approval"),
        "{joined}"
    );
    // The preview counts what will flow once approved.
    let serve = joined["preview"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["direction"] == "serve")
        .cloned()
        .unwrap();
    assert_eq!(serve["objects"], 2, "{joined}");

    // On the inviting node: the partner without reads or groups, the approval pending.
    let p = partner_json(&a, "cert-fr");
    assert_eq!(p["read_names"], serde_json::json!([]), "{p}");
    assert_eq!(p["groups"], serde_json::json!([]), "{p}");
    let (id, req) = pending_partner_change(&a);
    assert_eq!(req["requested_by"], "user:op1");
    assert_eq!(req["target"], "cert-fr");

    // Nothing flows before the approval.
    let (_, reports) = sync(&b, &[]);
    assert_eq!(
        reports[0]["pulled_added"].as_u64().unwrap_or(0),
        0,
        "{reports:?}"
    );
    let intel_b = cli_ok(&b, &["export", "--collection", "intel"]);
    assert!(!intel_b.contains("example.net"), "{intel_b}");

    // The inviter cannot approve; a second releaser does; the next round pulls.
    let (ok, _, err) = cli(&a, Some("op1"), &["approval", "approve", &id]);
    assert!(!ok, "{err}");
    let (ok, _, err) = cli(&a, Some("rel1"), &["approval", "approve", &id]);
    assert!(ok, "{err}");
    let p = partner_json(&a, "cert-fr");
    assert_eq!(p["read_names"], serde_json::json!(["intel"]), "{p}");
    assert_eq!(p["groups"], serde_json::json!(["eu"]), "{p}");
    let (code, reports) = sync(&b, &[]);
    assert_eq!(code, 0, "{reports:?}");
    assert_eq!(reports[0]["pulled_added"], 2, "{reports:?}");
}

/// Issue 20/18: a domestic partner's incident grants travel with it when it moves abroad.
/// `bsi` (DE, as the node) is granted the e-mail addresses of an incident while domestic,
/// which waits for no one. Moving it to FR would send them across the border: on every door
/// that changes a jurisdiction (CLI, admin API, web UI) the move waits, naming the grant,
/// like a grant to a partner abroad; it applies once a second releaser approves.
#[test]
fn moving_a_partner_abroad_holds_its_incident_grants_for_a_releaser() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let (ok, _, err) = cli(
        &node,
        None,
        &["partner", "add", "bsi", "--jurisdiction", "DE"],
    );
    assert!(ok, "{err}");
    let path = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&path, text).unwrap();
    let (op_pw, op_tok) = add_user(&node, "op1", "operator");
    let (rel_pw, _) = add_user(&node, "rel1", "releaser");
    let (ok, out, err) = cli(
        &node,
        None,
        &["incident", "open", "--title", "port ransomware", "--json"],
    );
    assert!(ok, "{err}");
    let incident = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Domestic: the grant applies at once.
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &[
            "incident", "grant", &incident, "--to", "bsi", "--allow", "email",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert!(pending(&node).is_empty());
    let grant = serde_json::json!({
        "what": "grant",
        "partner": "bsi",
        "jurisdiction": "FR",
        "categories": ["email"],
        "incident": incident,
    });
    let words = format!("bsi (FR) receives email as written in {incident}");
    let jurisdiction = |node: &Node| partner_json(node, "bsi")["jurisdiction"].clone();

    // CLI: the move waits, naming the grant; nothing applied.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "bsi", "--jurisdiction", "FR"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    assert_eq!(jurisdiction(&node), "DE", "nothing applied");
    let (id, a) = pending_partner_change(&node);
    assert!(a["summary"].as_str().unwrap().contains(&words), "{a}");
    assert_eq!(a["request"]["widens"], serde_json::json!([grant]), "{a}");
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "reject", &id]);
    assert!(ok, "{err}");

    let server = node.serve();
    let b = &server.base;
    // Admin API: 202, the grant named; nothing applied.
    let (status, a) = api(
        b,
        &op_tok,
        "PATCH",
        "/partners/bsi",
        Some(r#"{"jurisdiction":"FR"}"#),
    );
    assert_eq!(status, 202, "{a}");
    assert_eq!(a["request"]["widens"], serde_json::json!([grant]), "{a}");
    assert_eq!(jurisdiction(&node), "DE", "nothing applied");
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["approval", "reject", a["id"].as_str().unwrap()],
    );
    assert!(ok, "{err}");

    // Web UI: the partner page's form waits too; a second releaser's approval applies it.
    let op = user_login(b, "op1", &op_pw);
    let (status, body) = web(
        b,
        &op,
        "POST",
        "/ui/operator/partners/bsi",
        "jurisdiction=FR",
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(jurisdiction(&node), "DE", "nothing applied");
    let (web_id, a) = pending_partner_change(&node);
    assert_eq!(a["request"]["widens"], serde_json::json!([grant]), "{a}");
    let rel = user_login(b, "rel1", &rel_pw);
    let (status, body) = web(b, &rel, "GET", "/ui/approvals", "");
    assert_eq!(status, 200);
    assert!(
        body.contains(&incident),
        "the approver sees the grant: {body}"
    );
    let (status, _) = web(
        b,
        &rel,
        "POST",
        &format!("/ui/approvals/{web_id}/approve"),
        "",
    );
    assert_eq!(status, 303);
    assert_eq!(jurisdiction(&node), "FR");
    assert!(has_both(
        &audit_rows(&node, "partner-update"),
        "user:op1",
        "user:rel1"
    ));
    // Abroad, a new grant waits as any grant across a border does.
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &[
            "incident", "grant", &incident, "--to", "bsi", "--allow", "phone",
        ],
    );
    assert!(ok && err.contains("pending"), "{err}");
}

/// Attack finding (medium): a partner moving between two foreign jurisdictions kept its
/// incident grants, reads and groups without a second releaser. `cert-fr` (FR, the node is
/// in DE) reads `intel`, is in the sharing group `eu` and was granted the e-mail addresses
/// of an incident. Moving it to US crosses a new border (another agreement, another law):
/// on every door that changes a jurisdiction (CLI, admin API, web UI) the move waits, read
/// as a new cross-border partner in US, naming what it would take across (the grant, the
/// group, what it reads), and applies once a second releaser approves. A partner abroad
/// that takes nothing across (no reads, groups or grants) moves at once.
#[test]
fn moving_a_partner_between_foreign_jurisdictions_waits_for_a_releaser() {
    let node = Node::init_with(&["--jurisdiction", "DE"]);
    let (ok, _, err) = cli(&node, None, &["collection", "create", "intel"]);
    assert!(ok, "{err}");
    for args in [
        &[
            "partner",
            "add",
            "cert-fr",
            "--jurisdiction",
            "FR",
            "--read",
            "intel",
            "--group",
            "eu",
        ][..],
        &["partner", "add", "cert-es", "--jurisdiction", "ES"][..],
    ] {
        let (ok, _, err) = cli(&node, None, args);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = cli(
        &node,
        None,
        &["incident", "open", "--title", "port ransomware", "--json"],
    );
    assert!(ok, "{err}");
    let incident = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Given before four-eyes is on: it applies at once.
    let (ok, _, err) = cli(
        &node,
        None,
        &[
            "incident", "grant", &incident, "--to", "cert-fr", "--allow", "email",
        ],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    let path = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&path, text).unwrap();
    let (op_pw, op_tok) = add_user(&node, "op1", "operator");
    let (rel_pw, _) = add_user(&node, "rel1", "releaser");
    let jurisdiction = |node: &Node| partner_json(node, "cert-fr")["jurisdiction"].clone();
    let grant = serde_json::json!({
        "what": "grant",
        "partner": "cert-fr",
        "jurisdiction": "US",
        "categories": ["email"],
        "incident": incident,
    });
    let group = serde_json::json!({
        "what": "group",
        "partner": "cert-fr",
        "jurisdiction": "US",
        "group": "eu",
    });
    // What the move takes across: the grant, the group, what it reads of `intel`.
    let takes_across = |a: &serde_json::Value| {
        let w = a["request"]["widens"].as_array().unwrap();
        assert!(w.contains(&grant), "{a}");
        assert!(w.contains(&group), "{a}");
        assert!(
            w.iter().any(|x| x["what"] == "tlp"
                && x["tlp"] == "TLP:GREEN"
                && x["jurisdiction"] == "US"),
            "{a}"
        );
    };

    // CLI: the move waits, naming the grant; nothing applied.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "cert-fr", "--jurisdiction", "US"],
    );
    assert!(ok && err.contains("pending approval"), "{err}");
    assert_eq!(jurisdiction(&node), "FR", "nothing applied");
    let (id, a) = pending_partner_change(&node);
    takes_across(&a);
    assert!(
        a["summary"].as_str().unwrap().contains(&format!(
            "cert-fr (US) receives email as written in {incident}"
        )),
        "{a}"
    );
    let (ok, _, err) = cli(&node, Some("rel1"), &["approval", "reject", &id]);
    assert!(ok, "{err}");

    // A partner abroad that takes nothing across moves at once.
    let (ok, _, err) = cli(
        &node,
        Some("op1"),
        &["partner", "update", "cert-es", "--jurisdiction", "PT"],
    );
    assert!(ok && !err.contains("pending"), "{err}");
    assert_eq!(partner_json(&node, "cert-es")["jurisdiction"], "PT");
    assert!(pending(&node).is_empty());

    let server = node.serve();
    let b = &server.base;
    // Admin API: 202, what it takes across named; nothing applied.
    let (status, a) = api(
        b,
        &op_tok,
        "PATCH",
        "/partners/cert-fr",
        Some(r#"{"jurisdiction":"US"}"#),
    );
    assert_eq!(status, 202, "{a}");
    takes_across(&a);
    assert_eq!(jurisdiction(&node), "FR", "nothing applied");
    let (ok, _, err) = cli(
        &node,
        Some("rel1"),
        &["approval", "reject", a["id"].as_str().unwrap()],
    );
    assert!(ok, "{err}");

    // Web UI: the partner page's form (whole lists: its reads and groups as they are)
    // waits too; a second releaser's approval applies it.
    let op = user_login(b, "op1", &op_pw);
    let (status, body) = web(
        b,
        &op,
        "POST",
        "/ui/operator/partners/cert-fr",
        "jurisdiction=US&read=intel&groups=eu",
    );
    assert_eq!(status, 303, "{body}");
    assert_eq!(jurisdiction(&node), "FR", "nothing applied");
    let (web_id, a) = pending_partner_change(&node);
    takes_across(&a);
    let rel = user_login(b, "rel1", &rel_pw);
    let (status, body) = web(b, &rel, "GET", "/ui/approvals", "");
    assert_eq!(status, 200);
    assert!(
        body.contains(&incident),
        "the approver sees the grant: {body}"
    );
    let (status, _) = web(
        b,
        &rel,
        "POST",
        &format!("/ui/approvals/{web_id}/approve"),
        "",
    );
    assert_eq!(status, 303);
    assert_eq!(jurisdiction(&node), "US");
    let p = partner_json(&node, "cert-fr");
    assert_eq!(p["groups"], serde_json::json!(["eu"]), "{p}");
    assert!(has_both(
        &audit_rows(&node, "partner-update"),
        "user:op1",
        "user:rel1"
    ));
}

/// Attack finding (low, with `partner remove`): approvals name a partner by its name, so a
/// grant or a partner change asked for `cert-fr`, still pending when `cert-fr` is removed
/// and another organisation is added under the name, would apply to the new one on a
/// second releaser's approval. Both are refused as stale (nothing applied, still pending,
/// to be rejected), naming why.
#[test]
fn a_pending_approval_does_not_pass_to_a_partner_added_under_a_removed_ones_name() {
    let node = setup(true);
    add_user(&node, "rel1", "releaser");
    add_user(&node, "rel2", "releaser");
    let (ok, out, err) = cli(
        &node,
        None,
        &["incident", "open", "--title", "port ransomware", "--json"],
    );
    assert!(ok, "{err}");
    let incident = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = cli(&node, None, &["collection", "create", "more"]);
    assert!(ok, "{err}");
    add_user(&node, "op1", "operator");
    for (who, args) in [
        (
            "rel1",
            &[
                "incident", "grant", &incident, "--to", "cert-fr", "--allow", "email",
            ][..],
        ),
        (
            "op1",
            &["partner", "update", "cert-fr", "--read", "more"][..],
        ),
    ] {
        let (ok, _, err) = cli(&node, Some(who), args);
        assert!(ok && err.contains("pending"), "{err}");
    }
    let asked = pending(&node);
    assert_eq!(asked.len(), 2, "{asked:?}");
    let (ok, _, err) = cli(&node, None, &["partner", "remove", "cert-fr"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &node,
        None,
        &["partner", "add", "cert-fr", "--jurisdiction", "FR"],
    );
    assert!(ok, "{err}");
    for a in &asked {
        let id = a["id"].as_str().unwrap();
        let (ok, _, err) = cli(&node, Some("rel2"), &["approval", "approve", id]);
        assert!(
            !ok,
            "{} approved for another organisation: {err}",
            a["kind"]
        );
        assert!(err.contains("removed and added again"), "{err}");
    }
    assert_eq!(pending(&node).len(), 2, "still pending, to be rejected");
    let p = partner_json(&node, "cert-fr");
    assert_eq!(p["read_names"], serde_json::json!([]), "{p}");
    assert!(
        audit_rows(&node, "incident-grant").is_empty(),
        "no grant applied"
    );
}
