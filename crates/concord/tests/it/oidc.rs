//! The web UI's login through an OpenID Provider (issue 20, item 5), against a real one:
//! npm's `oidc-provider` (panva's, OpenID Certified) run by node from
//! `tests/oidc/provider.mjs`, one client registered, its own login and consent pages. A
//! browser-less client that keeps cookies (per host, as browsers do) follows the redirects:
//! Concord's login button, the provider's login form, its consent, the callback, to a
//! Concord session cookie that opens `/ui/`. Then the refusals: an unknown or replayed
//! `state`, a login finished in another browser, a replayed code, an ID token for another
//! audience, an identity without a user of the node, a role needing a second factor the
//! token does not report, a provider answering too much or too slowly, a callback too long,
//! and the quota of pending logins per source. With PostgreSQL: a login begun on one
//! `serve` is finished by another.
//!
//! Needs node (Node.js 20) and `oidc-provider` installed by `npm ci` from
//! `tests/e2e/package-lock.json` (`scripts/test` does it and sets `CONCORD_E2E_NODE_MODULES`;
//! without that variable, `tests/e2e/node_modules`). Without them a plain `cargo test`
//! skips; with `CONCORD_REQUIRE_E2E=1` (`scripts/test` sets it) a missing piece fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use concord_store::postgres::ScratchSchema;

use crate::people::add_user;
use crate::support::{Node, concord, run};

const SECRET: &str = "test-client-secret-0123456789";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `node_modules` holding oidc-provider, or `None` to skip; panics instead of skipping
/// when `CONCORD_REQUIRE_E2E=1`.
pub(crate) fn modules() -> Option<PathBuf> {
    let modules = std::env::var_os("CONCORD_E2E_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("tests/e2e/node_modules"));
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<String> = [
        (!modules.join("oidc-provider/package.json").exists()).then(|| {
            format!(
                "{}/oidc-provider (npm ci in tests/e2e; scripts/test does)",
                modules.display()
            )
        }),
        (!node_ok).then(|| "node (Node.js 20)".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some(modules);
    }
    assert!(
        std::env::var("CONCORD_REQUIRE_E2E").as_deref() != Ok("1"),
        "CONCORD_REQUIRE_E2E=1 but the OpenID Provider cannot run; missing: {}",
        missing.join(", ")
    );
    eprintln!(
        "skipping the OpenID Connect test; missing: {}",
        missing.join(", ")
    );
    None
}

/// A running `tests/oidc/provider.mjs`, killed at drop.
pub(crate) struct Provider {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider on 127.0.0.1 with the one client `concord` whose redirect URI is
    /// `redirect`.
    pub(crate) fn start(modules: &Path, redirect: &str) -> Provider {
        Provider::start_on(modules, redirect, "127.0.0.1")
    }

    /// [`Provider::start`] on the loopback address `host`.
    pub(crate) fn start_on(modules: &Path, redirect: &str, host: &str) -> Provider {
        let mut child = Command::new("node")
            .arg(repo().join("tests/oidc/provider.mjs"))
            .env("OIDC_HOST", host)
            .env("CONCORD_E2E_NODE_MODULES", modules)
            .env("OIDC_CLIENT_SECRET", SECRET)
            .env("OIDC_REDIRECT_URI", redirect)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node tests/oidc/provider.mjs");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // The rest is drained: a closed pipe would end the provider at its next line (EPIPE).
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let issuer = line
            .strip_prefix("issuer ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .trim()
            .to_owned();
        Provider { child, issuer }
    }

    /// Makes the provider misbehave (`tests/oidc/provider.mjs`: `normal`, `big-token`,
    /// `slow-token`, `other-aud`).
    fn mode(&self, mode: &str) {
        let resp = agent()
            .post(format!("{}/test/mode", self.issuer))
            .send(mode)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// A free port on loopback (the provider must know Concord's redirect URI before either
/// starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An answer: status, `Location`, body.
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
    retry_after: Option<String>,
}

/// A browser without a browser: keeps cookies per host (not per port, RFC 6265 §8.5) and
/// follows redirects one by one.
#[derive(Default, Clone)]
struct Browser {
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned()
}

fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    format!("{scheme}://{}", rest.split('/').next().unwrap())
}

impl Browser {
    fn send(&mut self, method: &str, url: &str, form: Option<&str>) -> Answer {
        let host = host_of(url);
        let cookies: Vec<String> = self
            .jar
            .get(&host)
            .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        if !cookies.is_empty() {
            req = req.header("Cookie", cookies.join("; "));
        }
        if form.is_some() {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
        }
        // A GET carries no body at all (not even an empty chunked one).
        let sent = match form {
            Some(f) => agent().run(req.body(f.to_owned()).unwrap()),
            None => agent().run(req.body(()).unwrap()),
        };
        let mut resp = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            let gone = val.is_empty() || v.contains("Max-Age=0") || v.contains("max-age=0");
            let jar = self.jar.entry(host.clone()).or_default();
            if gone {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_owned(), val.to_owned());
            }
        }
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location").map(|l| {
            if l.starts_with('/') {
                format!("{}{l}", origin_of(url))
            } else {
                l
            }
        });
        let retry_after = header("retry-after");
        Answer {
            status: resp.status().as_u16(),
            location,
            retry_after,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&mut self, url: &str) -> Answer {
        self.send("GET", url, None)
    }

    /// GETs `url` and follows redirects until a page (returned with its URL), or until the
    /// next hop would be Concord's callback (returned then, not followed: the tests deliver
    /// it).
    fn follow_to_callback(&mut self, url: &str) -> Result<String, (String, Answer)> {
        let mut url = url.to_owned();
        for _ in 0..20 {
            if url.contains("/ui/oidc/callback") {
                return Ok(url);
            }
            let a = self.get(&url);
            match (a.status, &a.location) {
                (300..=399, Some(l)) => url = l.clone(),
                _ => return Err((url, a)),
            }
        }
        panic!("too many redirects from {url}");
    }

    /// The provider's login then consent (the interaction of `provider.mjs`), from Concord's
    /// login button to the callback URL the provider redirects to (not yet delivered). A
    /// browser already logged in at the provider goes straight there (`login` unused).
    fn sign_on(&mut self, concord: &str, login: &str, otp: bool) -> String {
        let start = format!("{concord}/ui/oidc/login?next=%2Fui%2Fcollections");
        let (at, form) = match self.follow_to_callback(&start) {
            Ok(u) => return u,
            Err(a) => a,
        };
        assert_eq!(form.status, 200, "{}", form.body);
        let action = action_of(&form.body);
        let issuer = origin_of(&at);
        let answer = self.send(
            "POST",
            &format!("{issuer}{action}"),
            Some(&format!(
                "prompt=login&login={login}&password=x&otp={}",
                if otp { "123456" } else { "" }
            )),
        );
        assert_eq!(answer.status, 303, "login: {}", answer.body);
        let (_, consent) = match self.follow_to_callback(answer.location.as_deref().unwrap()) {
            Ok(u) => return u,
            Err(a) => a,
        };
        let action = action_of(&consent.body);
        let answer = self.send("POST", &format!("{issuer}{action}"), Some("prompt=consent"));
        assert_eq!(answer.status, 303, "consent: {}", answer.body);
        self.follow_to_callback(answer.location.as_deref().unwrap())
            .unwrap_or_else(|(_, a)| panic!("no callback after consent: {} {}", a.status, a.body))
    }
}

/// The `action` of the first form of a page.
fn action_of(html: &str) -> String {
    html.split("action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no form in {html}"))
        .to_owned()
}

/// The `[oidc]` section of the tests: the provider, the client, the redirect URI, a timeout
/// of 2 s (the slow answer's test), and `extra` keys.
pub(crate) fn oidc_section(issuer: &str, redirect: &str, extra: &str) -> String {
    format!(
        "\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"concord\"\n\
         client_secret_file = \"oidc-secret\"\nredirect_url = \"{redirect}\"\n\
         timeout_secs = 2\n{extra}"
    )
}

/// Writes the client secret file and appends `section` to the node's `concord.toml`.
pub(crate) fn configure(node: &Node, section: &str) {
    std::fs::write(node.path().join("oidc-secret"), format!("{SECRET}\n")).unwrap();
    let path = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(section);
    std::fs::write(&path, text).unwrap();
}

/// The session cookie a callback set, if any.
fn session_of(b: &Browser) -> Option<String> {
    b.jar
        .get("127.0.0.1")
        .and_then(|c| c.get("concord_session"))
        .map(|v| format!("concord_session={v}"))
}

/// The whole login, and each refusal, on one node (SQLite).
#[test]
fn login_through_a_real_openid_provider() {
    let Some(modules) = modules() else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/ui/oidc/callback");
    let op = Provider::start(&modules, &redirect);
    let node = Node::init();
    add_user(&node, "alice", "analyst", &[]);
    add_user(&node, "olga", "operator", &["--totp"]);
    configure(&node, "\n[users]\ntotp_required = [\"operator\"]\n");
    configure(&node, &oidc_section(&op.issuer, &redirect, ""));
    let s = node.serve_on(port, &[]);

    // The login page offers the provider.
    let mut b = Browser::default();
    let page = b.get(&format!("{base}/ui/login"));
    assert!(page.body.contains("id=\"login-oidc\""), "{}", page.body);

    // A whole login: Concord -> provider (login, consent) -> callback -> a session.
    let callback = b.sign_on(&s.base, "alice", false);
    let done = b.get(&callback);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("url=/ui/collections"), "{}", done.body);
    let cookie = session_of(&b).expect("a session cookie");
    let home = b.get(&format!("{base}/ui/"));
    assert_eq!(home.status, 200, "the session opens /ui/");
    assert!(home.body.contains("alice"), "{}", home.body);
    // The login is audited, naming the person and the method.
    let out = run(concord()
        .args(["audit", "show", "--json", "--data-dir"])
        .arg(node.path()));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let login = rows
        .iter()
        .find(|r| r["door"] == "web-login")
        .unwrap_or_else(|| panic!("no web-login entry: {rows:?}"));
    assert_eq!(login["person"], "user:alice");
    let text = login.to_string();
    assert!(
        text.contains("method oidc") && text.contains("sub sub-alice"),
        "{text}"
    );

    // The same callback again: its state was used.
    let again = b.get(&callback);
    assert_eq!(again.status, 400, "a replayed state is refused");
    assert!(again.body.contains("already used"), "{}", again.body);
    // A state never issued.
    let bogus = b.get(&format!("{base}/ui/oidc/callback?code=x&state=bogus"));
    assert_eq!(bogus.status, 400);
    // Logout ends the Concord session.
    let out = b.send("POST", &format!("{base}/ui/logout"), Some(""));
    assert_eq!(out.status, 303);
    let mut old = Browser::default();
    old.jar.entry("127.0.0.1".to_owned()).or_default().insert(
        "concord_session".to_owned(),
        cookie.split_once('=').unwrap().1.to_owned(),
    );
    assert_eq!(old.get(&format!("{base}/ui/")).status, 303, "logged out");

    // A login begun in one browser, its answer delivered to another (login CSRF).
    let mut b1 = Browser::default();
    let callback = b1.sign_on(&s.base, "alice", false);
    let mut b2 = Browser::default();
    let other = b2.get(&callback);
    assert_eq!(other.status, 400);
    assert!(other.body.contains("another browser"), "{}", other.body);
    assert!(session_of(&b2).is_none());

    // A replayed code: alice's code, delivered with the state of a newer login.
    let mut b3 = Browser::default();
    let first = b3.sign_on(&s.base, "alice", false);
    assert_eq!(b3.get(&first).status, 200);
    let second = b3.sign_on(&s.base, "alice", false);
    let code = |u: &str| {
        u.split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("code="))
            .unwrap()
            .to_owned()
    };
    let state = |u: &str| {
        u.split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("state="))
            .unwrap()
            .to_owned()
    };
    let replay = b3.get(&format!(
        "{base}/ui/oidc/callback?code={}&state={}",
        code(&first),
        state(&second)
    ));
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body.contains("invalid_grant"), "{}", replay.body);

    // An identity with no user of this node, and one whose role needs a second factor the
    // token does not report: the same page, and no session.
    for (who, otp) in [("mallory", true), ("olga", false)] {
        let mut b = Browser::default();
        let cb = b.sign_on(&s.base, who, otp);
        let refused = b.get(&cb);
        assert_eq!(refused.status, 403, "{who}: {}", refused.body);
        assert!(
            refused
                .body
                .contains("does not open a session on this node"),
            "{}",
            refused.body
        );
        assert!(session_of(&b).is_none());
    }
    // With the second factor (amr "otp"), the operator logs in.
    let mut b = Browser::default();
    let cb = b.sign_on(&s.base, "olga", true);
    assert_eq!(b.get(&cb).status, 200);
    assert!(session_of(&b).is_some());

    // An ID token signed by the provider's key for another audience.
    op.mode("other-aud");
    let mut b = Browser::default();
    let cb = b.sign_on(&s.base, "alice", false);
    let refused = b.get(&cb);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("aud:"), "{}", refused.body);
    assert!(session_of(&b).is_none());

    // A token response larger than [oidc] max_response_bytes (256 KiB by default).
    op.mode("big-token");
    let mut b = Browser::default();
    let cb = b.sign_on(&s.base, "alice", false);
    let refused = b.get(&cb);
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused.body.contains("max_response_bytes"),
        "{}",
        refused.body
    );

    // A token response slower than [oidc] timeout_secs (2 s here; the provider waits 5 s).
    op.mode("slow-token");
    let mut b = Browser::default();
    let cb = b.sign_on(&s.base, "alice", false);
    let refused = b.get(&cb);
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("timeout_secs"), "{}", refused.body);
    op.mode("normal");

    // A callback longer than [oidc] max_callback_bytes (4,096 by default).
    let long = b.get(&format!(
        "{base}/ui/oidc/callback?state=x&code={}",
        "a".repeat(5000)
    ));
    assert_eq!(long.status, 414, "{}", long.body);
    assert!(long.body.contains("max_callback_bytes"), "{}", long.body);
}

/// Issue 20: one who knows a victim's `state` (it travels in URLs: the provider's logs, the
/// browser's history) but not the victim's browser binding can neither use nor end the
/// victim's login: without the cookie, with a cookie of its own, or with the state as the
/// cookie (what the cookie held before), its callback is refused with the answer an unknown
/// state gets, and the victim's callback still logs in.
#[test]
fn a_known_state_alone_neither_uses_nor_ends_a_login() {
    let Some(modules) = modules() else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/ui/oidc/callback");
    let op = Provider::start(&modules, &redirect);
    let node = Node::init();
    add_user(&node, "alice", "analyst", &[]);
    configure(&node, &oidc_section(&op.issuer, &redirect, ""));
    let s = node.serve_on(port, &[]);

    let mut victim = Browser::default();
    let callback = victim.sign_on(&s.base, "alice", false);
    let state = callback
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_owned();
    // The attacker's own login gives it a binding cookie of its own.
    let mut own = Browser::default();
    assert_eq!(own.get(&format!("{base}/ui/oidc/login")).status, 303);
    assert!(own.jar["127.0.0.1"].contains_key("concord_oidc"));
    let as_state = {
        let mut b = Browser::default();
        b.jar
            .entry("127.0.0.1".to_owned())
            .or_default()
            .insert("concord_oidc".to_owned(), state.clone());
        b
    };
    for (what, attacker) in [
        ("no cookie", Browser::default()),
        ("its own cookie", own),
        ("the state as cookie", as_state),
    ] {
        let answer = |st: &str| {
            let a = attacker
                .clone()
                .get(&format!("{base}/ui/oidc/callback?code=x&state={st}"));
            // The page's language switch returns to the URL asked, state included.
            (a.status, a.body.replace(st, "STATE"))
        };
        let known = answer(&state);
        let unknown = answer("bogus-state-never-issued");
        assert_eq!(known.0, 400, "{what}: {}", known.1);
        assert_eq!(
            known, unknown,
            "{what}: a known state answers as an unknown one"
        );
    }
    // The victim's login was neither used nor ended.
    let done = victim.get(&callback);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(session_of(&victim).is_some());
}

/// Logins pending at once from one source are bounded ([oidc] pending_per_source): an
/// anonymous flood of the login button cannot grow the table.
#[test]
fn pending_logins_are_bounded_per_source() {
    let Some(modules) = modules() else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/ui/oidc/callback");
    let op = Provider::start(&modules, &redirect);
    let node = Node::init();
    configure(
        &node,
        &oidc_section(&op.issuer, &redirect, "pending_per_source = 3\n"),
    );
    let s = node.serve_on(port, &[]);
    let mut b = Browser::default();
    for i in 0..3 {
        let a = b.get(&format!("{}/ui/oidc/login", s.base));
        assert_eq!(a.status, 303, "login {i}");
        assert!(a.location.unwrap().starts_with(&op.issuer));
    }
    let a = b.get(&format!("{}/ui/oidc/login", s.base));
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.retry_after.as_deref(), Some("600"));
}

/// Pending logins live in the database: a login begun on one `serve` is finished by another
/// on the same PostgreSQL database, and its session works on the first.
#[test]
fn a_login_begun_on_one_serve_is_finished_by_another() {
    let Some(modules) = modules() else { return };
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
    let (port_a, port_b) = (free_port(), free_port());
    // Both serve the one redirect URI (as behind a load balancer): A's.
    let redirect = format!("http://127.0.0.1:{port_a}/ui/oidc/callback");
    let op = Provider::start(&modules, &redirect);
    let node = Node::init_with(&["--database-url", schema.url()]);
    let out = run(concord()
        .args(["user", "add", "ana", "--role", "analyst", "--database-url"])
        .arg(schema.url())
        .arg("--data-dir")
        .arg(node.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    configure(&node, &oidc_section(&op.issuer, &redirect, ""));
    let env = [("CONCORD_DATABASE_URL", schema.url())];
    let a = node.serve_on(port_a, &env);
    // The second process: its own data directory, the same configuration and database.
    let other = Node {
        dir: tempfile::tempdir().unwrap(),
    };
    for f in ["concord.toml", "oidc-secret"] {
        std::fs::copy(node.path().join(f), other.path().join(f)).unwrap();
    }
    let b_node = other.serve_on(port_b, &env);
    let mut b = Browser::default();
    let callback = b.sign_on(&a.base, "ana", false);
    // The provider's answer, delivered to the other process.
    let on_b = callback.replace(&format!(":{port_a}/"), &format!(":{port_b}/"));
    let done = b.get(&on_b);
    assert_eq!(done.status, 200, "{}", done.body);
    let home = b.get(&format!("{}/ui/", a.base));
    assert_eq!(home.status, 200, "the session works on the first serve");
    assert!(home.body.contains("ana"));
    // And the state is gone from the database: the first process refuses it too.
    assert_eq!(b.get(&callback).status, 400);
    drop(b_node);
}
