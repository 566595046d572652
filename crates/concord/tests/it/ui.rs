//! The web UI in a real browser: Debian's Chromium, headless, driven by Playwright
//! (`playwright-core` from npm) through `tests/e2e/ui.mjs`, against a real `concord serve`.
//!
//! The node holds ATT&CK for ICS (a graph of about 200 objects around a controller asset) and
//! `tests/fixtures/ui-bundle.json`: names and descriptions in Chinese and Arabic, a
//! `language-content` object translating a campaign into `zh` and `ar`, an indicator with two
//! versions and a sighting of it, TLP:GREEN and TLP:AMBER objects, an identity with an e-mail
//! address. A partner in another jurisdiction may read that collection only. The script
//! walks login, search, object pages ("as partner" included), translations, graph, import,
//! pattern check, operator pages, the Arabic layout and accessibility basics, saving a
//! screenshot of each step under `$CARGO_TARGET_DIR/e2e-artifacts/` (default
//! `target/e2e-artifacts/`). Then it walks one list of pages in English, Chinese and Arabic,
//! 1,400 and 390 px wide (issue 25): no page is wider than the window, axe-core finds no
//! serious or critical violation, the focus is visible at each Tab stop, and each page is
//! photographed into `e2e-artifacts/pages/`. The node has `[oidc]` set, with the test's
//! OpenID Provider (`tests/oidc/provider.mjs`): the login page shows its button, and a
//! single sign-on in the browser lands on the page asked for (the session cookie is
//! `SameSite=Strict`, which a real browser does not send on a redirect chain begun by the
//! provider: the callback's page moves on by itself).
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`; `.ci/run` installs it) and `playwright-core`
//! installed by `npm ci` (`scripts/test` does it and sets `CONCORD_E2E_NODE_MODULES`; without
//! that variable, `tests/e2e/node_modules`). Without them a plain `cargo test` skips; with
//! `CONCORD_REQUIRE_E2E=1` (`scripts/test` sets it) a missing piece fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::{Node, TOKEN, concord, data, run};

/// The partner of the test: another jurisdiction than the node's, reads `intel` only.
const PARTNER: &str = "bsi";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser and the `node_modules` holding playwright-core, or `None` to skip; panics
/// instead of skipping when `CONCORD_REQUIRE_E2E=1`.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CONCORD_E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let modules = std::env::var_os("CONCORD_E2E_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("tests/e2e/node_modules"));
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing: Vec<String> = [
        (!chromium.exists()).then(|| {
            format!(
                "{} (apt-get install chromium; .ci/run does)",
                chromium.display()
            )
        }),
        (!modules.join("playwright-core/package.json").exists()).then(|| {
            format!(
                "{}/playwright-core (npm ci in tests/e2e; scripts/test does)",
                modules.display()
            )
        }),
        (!node_ok).then(|| "node (Node.js 20)".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some((chromium, modules));
    }
    assert!(
        std::env::var("CONCORD_REQUIRE_E2E").as_deref() != Ok("1"),
        "CONCORD_REQUIRE_E2E=1 but the browser test cannot run; missing: {}",
        missing.join(", ")
    );
    eprintln!(
        "skipping the web UI browser test; missing: {}",
        missing.join(", ")
    );
    None
}

/// `$CARGO_TARGET_DIR/e2e-artifacts`, else `target/e2e-artifacts` of the workspace.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let target = if target.is_relative() {
        repo().join(target)
    } else {
        target
    };
    target.join("e2e-artifacts")
}

#[test]
fn web_ui_in_chromium() {
    let Some((chromium, modules)) = tools() else {
        return;
    };
    let node = Node::init_with(&["--jurisdiction", "CN"]);
    let ics = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ics-attack-18.1.json.gz");
    let (code, report) = node.import("ics", &[&ics]);
    assert_eq!(code, 0, "{report}");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ui-bundle.json");
    let (code, report) = node.import("intel", &[&fixture]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["files"][0]["added"], 15, "{report}");

    let out = run(concord()
        .args([
            "partner",
            "add",
            PARTNER,
            "--jurisdiction",
            "DE",
            "--read",
            "intel",
            "--json",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(
        out.status.success(),
        "partner add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = doc["api_key"].as_str().unwrap().to_owned();
    // Four-eyes release on (issue 20): a new recipient across the border waits for a second
    // releaser, so the approvals page is walked with one pending approval and its forms
    // (nothing else changes: the sharing stays as it is until approved).
    let config = node.path().join("concord.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[release]\nfour_eyes = true\n");
    std::fs::write(&config, text).unwrap();
    // A widening is asked by a named person (`operator` is none by default), here a
    // releaser; a second pending approval, of a partner change (kind `partner`: a new
    // group), is asked by a named operator, so the page shows both kinds of request.
    for (user, role) in [("rel", "releaser"), ("op", "operator")] {
        let out = run(concord()
            .args(["user", "add", user, "--role", role, "--data-dir"])
            .arg(node.path()));
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(concord()
        .args([
            "--as",
            "op",
            "partner",
            "update",
            PARTNER,
            "--group",
            "eu-cert",
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stderr).contains("pending approval"),
        "partner update: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(concord()
        .args([
            "--as",
            "rel",
            "collection",
            "share",
            "intel",
            "--recipient",
            PARTNER,
            "--data-dir",
        ])
        .arg(node.path()));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stderr).contains("pending approval"),
        "collection share: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Single sign-on (issue 20, item 5): the test's OpenID Provider (tests/oidc/provider.mjs,
    // oidc-provider from the same node_modules), and the user it logs in as. The redirect URI
    // names the server's port, so the port is chosen first. The provider listens on
    // 127.0.0.2, another site than the node's 127.0.0.1 for the browser (sites ignore ports):
    // its redirects back are cross-site, as in real life.
    let port = crate::oidc::free_port();
    let redirect = format!("http://127.0.0.1:{port}/ui/oidc/callback");
    let provider = crate::oidc::Provider::start_on(&modules, &redirect, "127.0.0.2");
    crate::people::add_user(&node, "alice", "analyst", &[]);
    crate::oidc::configure(
        &node,
        &crate::oidc::oidc_section(&provider.issuer, &redirect, ""),
    );

    let server = node.serve_on(port, &[]);
    let dir = artifacts();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = repo().join("tests/e2e/ui.mjs");
    let started = Instant::now();
    let out = Command::new("node")
        .arg(&script)
        .env("CONCORD_E2E_URL", &server.base)
        .env("CONCORD_E2E_ADMIN_TOKEN", TOKEN)
        .env("CONCORD_E2E_PARTNER", PARTNER)
        .env("CONCORD_E2E_PARTNER_KEY", &key)
        .env("CONCORD_E2E_ARTIFACTS", &dir)
        .env(
            "CONCORD_E2E_MISP",
            data("misp/feed-eset-sshdoor/5bbe5659-4794-490a-bb44-7ec50a016219.json"),
        )
        .env(
            "CONCORD_E2E_IOC",
            data("ioc/eset-hashes/agrius__samples.sha256"),
        )
        .env("CONCORD_E2E_NODE_MODULES", &modules)
        .env("CONCORD_E2E_OIDC_USER", "alice")
        .env("CONCORD_E2E_CHROMIUM", &chromium)
        .output()
        .expect("run node tests/e2e/ui.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{stdout}{stderr}browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    assert!(
        out.status.success(),
        "tests/e2e/ui.mjs failed ({}):\n{stdout}{stderr}",
        out.status
    );

    let shots: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    for want in [
        "-login-refused-en.png",
        "-collections-en.png",
        "-dashboard-admin-en.png",
        "-dashboard-partner-en.png",
        "-search-chinese-en.png",
        "-object-indicator-en.png",
        "-as-partner-rewritten-en.png",
        "-translated-zh-CN.png",
        "-graph-zh-CN.png",
        "-import-misp-en.png",
        "-pattern-invalid-en.png",
        "-operator-audit-en.png",
        "-collections-ar.png",
        "-object-ar.png",
        "-graph-ar.png",
        "-partner-collections-en.png",
        "-login-oidc-en.png",
        "-oidc-collections-en.png",
    ] {
        let found = shots.iter().find(|n| n.ends_with(want));
        let size = found.map(|n| std::fs::metadata(dir.join(n)).unwrap().len());
        assert!(
            size.is_some_and(|s| s > 1000),
            "no screenshot *{want} in {} (have {shots:?})",
            dir.display()
        );
    }
    // Issue 25, item 7: every page of the script's list in every language at both widths
    // (the desktop ones are what docs/ui/ holds).
    let pages = dir.join("pages");
    for page in [
        "login",
        "collections",
        "object",
        "graph",
        "audit",
        "not-found",
    ] {
        for lang in ["en", "zh-CN", "ar"] {
            for width in ["desktop", "phone"] {
                let shot = pages.join(format!("{page}-{lang}-{width}.png"));
                assert!(
                    std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
                    "no screenshot {}",
                    shot.display()
                );
            }
        }
    }
}
