//! Issue 22: exchange without a good link. Signed, chained transfer packages written by one
//! node and imported by another (real files, real SQLite), and compressed TAXII over real
//! HTTP, with a sync through a recording proxy.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::{Node, Server, TAXII, TOKEN};
use crate::sync::{GREEN, as_partner, cli, cli_ok, held, import, indicator, partner, same, sync};

/// A producer A (DE) with two GREEN indicators in `intel`, a partner `b` that may read it,
/// whose node is B (DE; its node key recorded on A, so packages for `b` are addressed to
/// B), A's public key in `a.key`, and package 1 for `b` in `p1`; then a third indicator and
/// package 2 (`--since-last`) in `p2`.
struct Producer {
    a: Node,
    b: Node,
    key: PathBuf,
    p1: PathBuf,
    p2: PathBuf,
}

/// Records `to`'s public node key on `from` as the node of `from`'s partner `partner` (a
/// peer reached by packages only, linked to the partner): packages for the partner are
/// addressed to `to`. Returns the key file.
fn address(from: &Node, partner: &str, to: &Node) -> PathBuf {
    let key = to.path().join("own.key");
    cli_ok(to, &["node", "key", "-o", key.to_str().unwrap()]);
    cli_ok(
        from,
        &[
            "peer",
            "add",
            &format!("{partner}-node"),
            "--node-key",
            key.to_str().unwrap(),
            "--partner",
            partner,
        ],
    );
    key
}

fn producer() -> Producer {
    producer_as("")
}

/// [`producer`], its packages written as `p1{ext}` and `p2{ext}` (`.tar`: one file each).
fn producer_as(ext: &str) -> Producer {
    let a = Node::init_with(&["--jurisdiction", "DE"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    import(
        &a,
        "intel",
        &[
            indicator("11111111", "one.example", &[GREEN]),
            indicator("22222222", "two.example", &[GREEN]),
        ],
    );
    partner(&a, "b", "DE", &["--read", "intel"]);
    address(&a, "b", &b);
    let key = a.path().join("a.key");
    cli_ok(&a, &["node", "key", "-o", key.to_str().unwrap()]);
    let p1 = a.path().join(format!("p1{ext}"));
    package(&a, &p1, &[]);
    import(
        &a,
        "intel",
        &[indicator("33333333", "three.example", &[GREEN])],
    );
    let p2 = a.path().join(format!("p2{ext}"));
    package(&a, &p2, &["--since-last"]);
    Producer { a, b, key, p1, p2 }
}

/// `export --collection intel --partner b --package -o DIR ARGS…`.
fn package(a: &Node, dir: &Path, args: &[&str]) {
    let mut all = vec![
        "export",
        "--collection",
        "intel",
        "--partner",
        "b",
        "--package",
        "-o",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    cli_ok(a, &all);
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `import --json --collection C DIR --signed-by KEY`: exit code, stdout, stderr.
fn import_package(node: &Node, dir: &Path, key: Option<&Path>) -> (i32, String, String) {
    let mut args = vec![
        "import",
        "--json",
        "--collection",
        "intel",
        dir.to_str().unwrap(),
    ];
    if let Some(k) = key {
        args.extend(["--signed-by", k.to_str().unwrap()]);
    }
    cli(node, &args)
}

/// A copy of a package directory, to damage.
fn copy(dir: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to.to_owned()
}

fn first_file(dir: &Path) -> PathBuf {
    dir.join(manifest(dir)["files"][0]["name"].as_str().unwrap())
}

/// Refused: exit 1, the reason on stderr, and nothing stored (the collection the import
/// would have made does not exist).
fn refused(b: &Node, (code, out, err): (i32, String, String), reason: &str) {
    assert_eq!(code, 1, "{out}\n{err}");
    // The reason is in the JSON report (stdout) or, without --json, on stderr.
    assert!(
        out.contains(reason) || err.contains(reason),
        "expected {reason:?} in: {out}\n{err}"
    );
    let (_, list, _) = cli(b, &["collection", "list", "--json"]);
    assert!(!list.contains("\"intel\""), "something was stored: {list}");
}

/// Items 1 and 2: a package holds the partner's copies, compressed, with a manifest that
/// names each file's SHA-256, the counts, the cursor range, the policy version and the
/// previous package's digest, signed by the node key; `--since-last` holds only what was
/// added since; the receiver verifies and ingests each with provenance and audit, and holds
/// exactly what the partner receives over TAXII.
#[test]
fn a_chain_of_packages_delivers_what_the_partner_receives() {
    let p = producer();
    let m1 = manifest(&p.p1);
    assert_eq!(m1["format"], "concord-transfer-package/3");
    assert_eq!(m1["sequence"], 1);
    assert_eq!(m1["previous_sequence"], 0);
    assert_eq!(m1["previous"], Value::Null);
    assert_eq!(m1["partner"], "b");
    assert_eq!(m1["counts"]["objects"], 2);
    // What goes to the partner says nothing of what it may not see: no withheld count, and
    // the cursor range as opaque tokens (signatures), not the last entry read.
    assert!(m1["counts"].get("withheld").is_none(), "{m1}");
    let through = m1["cursor"]["through"].as_str().unwrap_or_default();
    assert!(
        through.len() == 128 && through.bytes().all(|b| b.is_ascii_hexdigit()),
        "{m1}"
    );
    assert_eq!(m1["compression"], "zstd");
    assert!(m1["policy_version"].as_str().unwrap().contains('@'), "{m1}");
    assert_eq!(
        m1["producer"]["public_key"].as_str().unwrap(),
        std::fs::read_to_string(&p.key).unwrap().trim()
    );
    let f = &m1["files"][0];
    let bytes = std::fs::read(p.p1.join(f["name"].as_str().unwrap())).unwrap();
    assert_eq!(f["sha256"].as_str().unwrap(), sha256_hex(&bytes));
    assert_eq!(f["bytes"], bytes.len() as u64);
    // Decompressed, each file is a STIX bundle any tool reads.
    let bundle: Value =
        serde_json::from_slice(&zstd::stream::decode_all(&bytes[..]).unwrap()).unwrap();
    assert_eq!(bundle["type"], "bundle");
    assert_eq!(bundle["objects"].as_array().unwrap().len(), 2);
    let m2 = manifest(&p.p2);
    assert_eq!(m2["sequence"], 2);
    assert_eq!(m2["previous_sequence"], 1);
    assert_eq!(m2["counts"]["objects"], 1, "--since-last: only the new one");
    assert_eq!(
        m2["previous"].as_str().unwrap(),
        sha256_hex(&std::fs::read(p.p1.join("manifest.json")).unwrap())
    );
    assert_eq!(m2["cursor"]["after"], m1["cursor"]["through"]);
    // Every package write is audited at the door `package`, for the partner.
    let (_, log, _) = cli(&p.a, &["audit", "show", "--partner", "b", "--json"]);
    let log: Value = serde_json::from_str(&log).unwrap();
    let doors: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["door"].as_str().unwrap())
        .collect();
    assert_eq!(doors, ["package"; 3], "{log}");

    let b = &p.b;
    for (dir, added) in [(&p.p1, 2), (&p.p2, 1)] {
        let (code, out, err) = import_package(b, dir, Some(&p.key));
        assert_eq!(code, 0, "{out}\n{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["files"][0]["added"], added, "{report}");
        assert!(err.contains("verified"), "{err}");
    }
    same(&held(b, "intel"), &as_partner(&p.a, "intel", "b"));
    // Ingress is audited with the producer as the source.
    let (_, log, _) = cli(b, &["audit", "show", "--json"]);
    assert!(log.contains("\"package-import\""), "{log}");
    assert!(log.contains("peer:node:"), "{log}");
    // Nothing new: an empty package keeps the chain going, here gzip.
    let p3 = p.a.path().join("p3");
    package(&p.a, &p3, &["--since-last", "--compression", "gzip"]);
    let m3 = manifest(&p3);
    assert_eq!(
        (m3["sequence"].as_i64(), m3["counts"]["objects"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(m3["compression"], "gzip");
    let (code, _, err) = import_package(b, &p3, Some(&p.key));
    assert_eq!(code, 0, "{err}");
    // A package is written into a new directory only.
    let (code, _, err) = cli(
        &p.a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "b",
            "--package",
            "-o",
            p3.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");
}

/// A file altered after signing: refused, naming the file and its digest; nothing stored,
/// and the untouched package still imports (the chain did not move).
#[test]
fn a_tampered_package_is_refused() {
    let p = producer();
    let b = p.b;
    let bad = copy(&p.p1, &b.path().join("tampered"));
    let file = first_file(&bad);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        "altered after signing",
    );
    // An edited manifest breaks the signature.
    let bad = copy(&p.p1, &b.path().join("edited"));
    let text = std::fs::read_to_string(bad.join("manifest.json")).unwrap();
    std::fs::write(
        bad.join("manifest.json"),
        text.replace("\"partner\": \"b\"", "\"partner\": \"c\""),
    )
    .unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        "manifest.sig: does not verify",
    );
    // A manifest over the 16 MiB cap is not read.
    let bad = copy(&p.p1, &b.path().join("huge"));
    let mut text = std::fs::read(bad.join("manifest.json")).unwrap();
    text.resize((16 << 20) + 1, b' ');
    std::fs::write(bad.join("manifest.json"), text).unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        "more than 16777216 bytes",
    );
    // A file slipped into the package.
    let bad = copy(&p.p1, &b.path().join("extra"));
    std::fs::write(bad.join("objects-000009.json.zst"), b"x").unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        "not named in the manifest",
    );
    let (code, _, err) = import_package(&b, &p.p1, Some(&p.key));
    assert_eq!(code, 0, "{err}");
}

/// A file cut short (a copy to removable media that did not finish): refused, naming the
/// file and its size; a file missing altogether too.
#[test]
fn a_truncated_package_is_refused() {
    let p = producer();
    let b = p.b;
    let bad = copy(&p.p1, &b.path().join("truncated"));
    let file = first_file(&bad);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        &format!("{} bytes, the manifest says {len}", len / 2),
    );
    std::fs::remove_file(&file).unwrap();
    refused(
        &b,
        import_package(&b, &bad, Some(&p.key)),
        "missing from the package",
    );
}

/// Package 2 before package 1: refused, naming package 1 as missing; then both in order;
/// then package 1 again (reordered: it comes after package 2): refused as repeated, package
/// 2 again as repeated.
#[test]
fn a_reordered_or_repeated_package_is_refused() {
    let p = producer();
    let b = p.b;
    refused(
        &b,
        import_package(&b, &p.p2, Some(&p.key)),
        "package 1 is missing",
    );
    for dir in [&p.p1, &p.p2] {
        let (code, _, err) = import_package(&b, dir, Some(&p.key));
        assert_eq!(code, 0, "{err}");
    }
    let before = held(&b, "intel");
    let (code, out, _) = import_package(&b, &p.p1, Some(&p.key));
    assert_eq!(code, 1);
    assert!(
        out.contains("package 1 from producer") && out.contains("is a repeated package"),
        "{out}"
    );
    let (code, out, _) = import_package(&b, &p.p2, Some(&p.key));
    assert_eq!(code, 1);
    assert!(
        out.contains("a repeated package: it was already imported"),
        "{out}"
    );
    assert_eq!(held(&b, "intel"), before);
}

/// A package checked against another node's key (a foreign package, or the wrong key file):
/// refused, naming both fingerprints. Without `--signed-by`, only a known peer's key is
/// trusted: unknown, refused; recorded with `peer add --node-key`, imported with the peer as
/// provenance.
#[test]
fn a_foreign_package_is_refused() {
    let p = producer();
    let b = p.b;
    let c = Node::init();
    let c_key = c.path().join("c.key");
    cli_ok(&c, &["node", "key", "-o", c_key.to_str().unwrap()]);
    refused(
        &b,
        import_package(&b, &p.p1, Some(&c_key)),
        "a foreign package",
    );
    refused(
        &b,
        import_package(&b, &p.p1, None),
        "no known peer has the producer's node key",
    );
    cli_ok(
        &b,
        &["peer", "add", "a", "--node-key", p.key.to_str().unwrap()],
    );
    let (code, _, err) = import_package(&b, &p.p1, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("package 1 from a "), "{err}");
    let (_, log, _) = cli(&b, &["audit", "show", "--json"]);
    assert!(log.contains("peer:a"), "{log}");
    // A package-only peer has nothing to sync.
    let (code, reports) = sync(&b, &[]);
    assert_eq!((code, reports.len()), (0, 0));
}

/// F5: a package is addressed to the node key of the partner's node, and only that node
/// imports it. A producer that knows no node key for the partner writes nothing; node C,
/// given the producer's right key, still refuses B's package, naming both fingerprints,
/// with or without `--verify-only`; B imports it.
#[test]
fn a_package_for_another_node_is_refused() {
    let p = producer();
    let fp = |key: &Path| {
        let hex = std::fs::read_to_string(key).unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        concord_sync::package::fingerprint(&bytes.try_into().unwrap())
    };
    let b_key = p.b.path().join("own.key");
    let m1 = manifest(&p.p1);
    assert_eq!(
        m1["recipient"]["public_key"].as_str().unwrap(),
        std::fs::read_to_string(&b_key).unwrap().trim()
    );
    assert_eq!(m1["recipient"]["fingerprint"], fp(&b_key).as_str());
    // No node key known for partner d: no package for it (exit 2), and no files left.
    partner(&p.a, "d", "DE", &["--read", "intel"]);
    let out = p.a.path().join("for-d");
    let (code, _, err) = cli(
        &p.a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "d",
            "--package",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("partner \"d\": no node key known for its node"),
        "{err}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    // C holds the producer's key but is not the node the package was written for.
    let c = Node::init();
    let c_key = c.path().join("own.key");
    cli_ok(&c, &["node", "key", "-o", c_key.to_str().unwrap()]);
    // Both fingerprints, and the producer's name for the partner (JSON-escaped on stdout).
    let to = format!(
        "manifest.json: recipient: the package is addressed to the node with key fingerprint \
         {} (the producer's partner ",
        fp(&b_key)
    );
    let reason = format!("not to this node (fingerprint {})", fp(&c_key));
    let outcome = import_package(&c, &p.p1, Some(&p.key));
    assert!(outcome.1.contains(&to), "{}", outcome.1);
    refused(&c, outcome, &reason);
    let (code, out, err) = cli(
        &c,
        &[
            "import",
            "--verify-only",
            "--collection",
            "intel",
            "--signed-by",
            p.key.to_str().unwrap(),
            p.p1.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&to) && err.contains(&reason), "{err}");
    // A peer record of the producer on C changes nothing.
    cli_ok(
        &c,
        &["peer", "add", "a", "--node-key", p.key.to_str().unwrap()],
    );
    refused(&c, import_package(&c, &p.p1, None), &reason);
    let (code, _, err) = import_package(&p.b, &p.p1, Some(&p.key));
    assert_eq!(code, 0, "{err}");
}

/// F7: the producer key the manifest names must be the key given with `--signed-by`. A
/// manifest that names C as its producer but is signed with A's key (the producer posing as
/// another node: its name, fingerprint and chain would be C's) is refused, naming both
/// fingerprints; nothing stored.
#[test]
fn a_manifest_naming_another_producer_is_refused() {
    use concord_store::node_key::{NodeKey, hex};
    let p = producer();
    let c = Node::init();
    let c_pub = NodeKey::load_or_create(&c.path().join("node.key"))
        .unwrap()
        .public();
    let a_secret = NodeKey::load_or_create(&p.a.path().join("node.key")).unwrap();
    let bad = copy(&p.p1, &p.b.path().join("posing"));
    let mut m = manifest(&bad);
    m["producer"]["public_key"] = hex(&c_pub).into();
    m["producer"]["fingerprint"] = concord_sync::package::fingerprint(&c_pub).into();
    let text = serde_json::to_vec_pretty(&m).unwrap();
    std::fs::write(bad.join("manifest.json"), &text).unwrap();
    std::fs::write(
        bad.join("manifest.sig"),
        format!("{}\n", hex(&a_secret.sign(&text))),
    )
    .unwrap();
    refused(
        &p.b,
        import_package(&p.b, &bad, Some(&p.key)),
        &format!(
            "a foreign package: the manifest names producer key fingerprint {}, but \
             --signed-by gives key fingerprint {}",
            concord_sync::package::fingerprint(&c_pub),
            concord_sync::package::fingerprint(&a_secret.public())
        ),
    );
    let (code, _, err) = import_package(&p.b, &p.p1, Some(&p.key));
    assert_eq!(code, 0, "{err}");
}

/// `import` of a package, waiting for the process at most `bound` (a generous bound that
/// turns a hang into a failure, not a timing assertion): exit code, stdout, stderr; `None`
/// when it had not exited (it is killed).
fn import_bounded(
    node: &Node,
    dir: &Path,
    key: &Path,
    bound: std::time::Duration,
) -> Option<(i32, String, String)> {
    let mut child = crate::support::concord()
        .args(["import", "--json", "--collection", "intel", "--signed-by"])
        .arg(key)
        .arg(dir)
        .arg("--data-dir")
        .arg(node.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// F6: a package is read from its own regular files only. An object file that is a
/// symbolic link to a file outside the package (its bytes the right ones), a symbolic link
/// as `manifest.json`, the package path itself a link to a package, and a FIFO in place of
/// an object file (which would block a reader forever): each refused at once, naming the
/// file and what it is; nothing stored, and the real package still imports.
#[test]
fn links_and_fifos_in_a_package_are_refused() {
    let p = producer();
    let b = &p.b;
    let name = manifest(&p.p1)["files"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let linked = copy(&p.p1, &b.path().join("linked"));
    std::fs::remove_file(linked.join(&name)).unwrap();
    std::os::unix::fs::symlink(p.p1.join(&name), linked.join(&name)).unwrap();
    refused(
        b,
        import_package(b, &linked, Some(&p.key)),
        &format!("{name}: a symbolic link"),
    );
    let linked = copy(&p.p1, &b.path().join("linked-manifest"));
    std::fs::remove_file(linked.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink(p.p1.join("manifest.json"), linked.join("manifest.json")).unwrap();
    refused(
        b,
        import_package(b, &linked, Some(&p.key)),
        "manifest.json: a symbolic link",
    );
    let link = b.path().join("package-link");
    std::os::unix::fs::symlink(&p.p1, &link).unwrap();
    refused(
        b,
        import_package(b, &link, Some(&p.key)),
        &format!("{}: a symbolic link", link.display()),
    );
    // A trailing slash would make the system follow the link: not here.
    refused(
        b,
        import_package(b, Path::new(&format!("{}/", link.display())), Some(&p.key)),
        &format!("{}: a symbolic link", link.display()),
    );
    let fifo = copy(&p.p1, &b.path().join("fifo"));
    std::fs::remove_file(fifo.join(&name)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(fifo.join(&name))
        .status()
        .unwrap();
    assert!(made.success());
    let outcome = import_bounded(b, &fifo, &p.key, std::time::Duration::from_secs(60))
        .expect("the import hung on a FIFO");
    refused(
        b,
        outcome,
        &format!("{name}: a FIFO, not a regular file: refused"),
    );
    let (code, _, err) = import_package(b, &p.p1, Some(&p.key));
    assert_eq!(code, 0, "{err}");
}

/// What leaves in a package is what the egress door lets the partner see, in every byte: a
/// TLP:RED indicator and a personal e-mail address (pseudonymised across the border, CN to
/// DE) are in the producer's collection; neither the RED object, its id, its pattern's
/// value, nor the raw address or the stored id of its SCO appears anywhere in the package
/// directory, each file decompressed and searched as well as its raw bytes. The GREEN
/// indicator and the address's pseudonym do (the package is not empty).
#[test]
fn a_package_holds_no_red_object_and_no_raw_personal_data() {
    const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    let a = Node::init_with(&["--jurisdiction", "CN"]);
    let b = Node::init_with(&["--jurisdiction", "DE"]);
    let red = indicator("44444444", "red-secret.example", &[RED]);
    let email_id = "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934";
    import(
        &a,
        "intel",
        &[
            red.clone(),
            indicator("22222222", "green.example", &[GREEN]),
            serde_json::json!({"type": "email-addr", "spec_version": "2.1", "id": email_id,
                               "value": "john@example.com", "object_marking_refs": [GREEN]}),
        ],
    );
    partner(&a, "b", "DE", &["--read", "intel"]);
    address(&a, "b", &b);
    for (dir, compression) in [("pz", "zstd"), ("pg", "gzip")] {
        let dir = a.path().join(dir);
        package(&a, &dir, &["--compression", compression]);
        let mut seen = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let raw = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".zst") {
                seen.extend(zstd::stream::decode_all(&raw[..]).unwrap());
            } else if name.ends_with(".gz") {
                let mut text = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut text)
                    .unwrap();
                seen.extend(text);
            }
            seen.extend(raw);
        }
        let seen = String::from_utf8_lossy(&seen);
        for secret in [
            red["id"].as_str().unwrap(),
            "red-secret.example",
            "john@example.com",
            email_id,
        ] {
            assert!(
                !seen.contains(secret),
                "{secret} in the {compression} package"
            );
        }
        assert!(
            seen.contains("indicator--22222222-8ff6-4a8b-9c2f-6e5a3b1f0d11"),
            "{seen}"
        );
        assert!(seen.contains("@pseudonym.invalid"), "{seen}");
        assert_eq!(manifest(&dir)["counts"]["objects"], 2);
        // Package 2 (gzip) follows package 1.
        if compression == "gzip" {
            assert_eq!(manifest(&dir)["sequence"], 2);
        }
    }
}

/// `max_unpacked` holds for package files too: a file whose manifest says it unpacks past
/// it is refused before it is read.
#[test]
fn a_package_over_max_unpacked_is_refused() {
    let p = producer();
    let b = p.b;
    let out = crate::support::run(
        crate::support::concord()
            .env("CONCORD_MAX_UNPACKED", "100")
            .args(["import", "--collection", "intel", "--signed-by"])
            .arg(&p.key)
            .arg(&p.p1)
            .arg("--data-dir")
            .arg(b.path()),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    refused(
        &b,
        (out.status.code().unwrap_or(-1), String::new(), err),
        "over max_unpacked (100 bytes)",
    );
}

/// Item 3: where there is a return path, the receiver makes its own package the other way
/// with the same command: B imports A's package, matches its logs, and packages the
/// sightings for A; A verifies B's package with B's key and holds a sighting of its own
/// indicator (the reference to A's indicator goes as written: A holds it).
#[test]
fn the_receiver_packages_its_sightings_back() {
    let p = producer();
    let b = p.b;
    cli_ok(&b, &["collection", "create", "seen"]);
    partner(&b, "a-org", "DE", &["--read", "seen"]);
    cli_ok(
        &b,
        &[
            "peer",
            "add",
            "a",
            "--node-key",
            p.key.to_str().unwrap(),
            "--partner",
            "a-org",
        ],
    );
    let (code, _, err) = import_package(&b, &p.p1, None);
    assert_eq!(code, 0, "{err}");
    let logs = b.path().join("dns.txt");
    std::fs::write(&logs, "one.example\nunrelated.example\none.example\n").unwrap();
    let out = cli_ok(
        &b,
        &[
            "match",
            "--collection",
            "intel",
            "--sightings",
            "seen",
            logs.to_str().unwrap(),
        ],
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    cli_ok(&b, &["collection", "share", "seen", "--recipient", "a-org"]);
    let b_key = b.path().join("b.key");
    cli_ok(&b, &["node", "key", "-o", b_key.to_str().unwrap()]);
    let back = b.path().join("back1");
    cli_ok(
        &b,
        &[
            "export",
            "--collection",
            "seen",
            "--partner",
            "a-org",
            "--package",
            "-o",
            back.to_str().unwrap(),
        ],
    );
    let m = manifest(&back);
    assert_eq!(m["partner"], "a-org");
    assert!(m["counts"]["objects"].as_u64().unwrap() >= 1, "{m}");
    let out = crate::support::run(
        crate::support::concord()
            .args(["import", "--json", "--collection", "inbox", "--signed-by"])
            .arg(&b_key)
            .arg(&back)
            .arg("--data-dir")
            .arg(p.a.path()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inbox = held(&p.a, "inbox");
    let sighting = inbox
        .values()
        .find(|o| o["type"] == "sighting")
        .expect("the sighting came back");
    assert_eq!(
        sighting["sighting_of_ref"],
        "indicator--11111111-8ff6-4a8b-9c2f-6e5a3b1f0d11"
    );
    assert_eq!(sighting["count"], 2);
}

/// Bytes seen by a recording proxy, per direction.
#[derive(Default)]
struct Recorded {
    requests: Vec<u8>,
    responses: Vec<u8>,
}

/// A TCP proxy on loopback to `upstream` (`host:port`) that records every byte both ways;
/// its threads end with the test process.
fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Recorded>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Recorded::default()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            for (mut from, mut to, up) in [
                (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                ),
                (server, client, false),
            ] {
                let log = log.clone();
                std::thread::spawn(move || {
                    use std::io::Write;
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let mut l = log.lock().unwrap();
                        let side = if up {
                            &mut l.requests
                        } else {
                            &mut l.responses
                        };
                        side.extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (format!("http://{addr}"), seen)
}

/// Item 4: a TAXII page asked for with `Accept-Encoding: gzip` (or `zstd`) comes back
/// compressed, with the TAXII media type, and decodes to the same envelope as the plain
/// one; the sync client asks for gzip, and a pull through a recording proxy moves
/// compressed pages and stores the objects.
#[test]
fn taxii_pages_come_back_compressed_and_sync_uses_them() {
    let a = Node::init();
    // MITRE ATT&CK for ICS, as shipped with Concord.
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ics-attack-18.1.json.gz");
    let (code, report) = a.import("intel", &[&bundle]);
    assert_eq!(code, 0, "{report}");
    let server = a.serve();
    // Every request goes through a proxy that sees the bytes on the wire.
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let (via, seen) = recording_proxy(upstream);
    let path = "/concord/collections/intel/objects/?limit=200";
    let plain = Server::client(via.clone()).get(path);
    assert_eq!(plain.status, 200);
    let auth = format!("Bearer {TOKEN}");
    let wire = |seen: &Mutex<Recorded>| seen.lock().unwrap().responses.len();
    // gzip: this test binary's HTTP client decodes gzip itself (and drops the header); the
    // proxy shows what crossed the wire.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = wire(&seen);
    let mut resp = Server::agent()
        .get(format!("{via}{path}"))
        .header("Authorization", &auth)
        .header("Accept", TAXII)
        .header("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let decoded = resp.body_mut().read_to_string().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let gzip_bytes = wire(&seen) - before;
    {
        let l = seen.lock().unwrap();
        let head = String::from_utf8_lossy(&l.responses[before..]).to_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{}", &head[..200]);
        assert!(head.contains(&format!("content-type: {TAXII}")));
        assert!(head.contains("x-taxii-date-added-last:"));
    }
    assert!(
        gzip_bytes * 3 < plain.body.len(),
        "{gzip_bytes} of {}",
        plain.body.len()
    );
    // The same envelope (`next` is sealed afresh on every answer).
    let same_page = |a: &Value, b: &Value| a["objects"] == b["objects"] && a["more"] == b["more"];
    assert!(same_page(
        &serde_json::from_str(&decoded).unwrap(),
        &plain.json()
    ));
    // zstd: the client leaves it as it came.
    let mut resp = Server::agent()
        .get(format!("{via}{path}"))
        .header("Authorization", &auth)
        .header("Accept", TAXII)
        .header("Accept-Encoding", "zstd")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let header = |k: &str| {
        resp.headers()
            .get(k)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-encoding").as_deref(), Some("zstd"));
    assert_eq!(header("content-type").as_deref(), Some(TAXII));
    let raw = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    assert!(
        raw.len() * 3 < plain.body.len(),
        "{} of {}",
        raw.len(),
        plain.body.len()
    );
    let decoded: Value =
        serde_json::from_slice(&zstd::stream::decode_all(&raw[..]).unwrap()).unwrap();
    assert!(same_page(&decoded, &plain.json()));
    // A sync pull through the same proxy.
    seen.lock().unwrap().requests.clear();
    seen.lock().unwrap().responses.clear();
    let b = Node::init();
    let key = partner(&a, "b", "FR", &["--read", "intel"]);
    cli_ok(
        &a,
        &["collection", "share", "intel", "--default-tlp", "clear"],
    );
    cli_ok(
        &b,
        &[
            "peer",
            "add",
            "a",
            &via,
            "--api-root",
            "/concord/",
            "--collection",
            "intel:intel",
            "--pull",
            "--token-file",
            key.to_str().unwrap(),
        ],
    );
    let (code, reports) = sync(&b, &["--page-size", "300"]);
    assert_eq!(code, 0, "{reports:?}");
    assert!(
        reports[0]["pulled_added"].as_u64().unwrap() > 300,
        "{reports:?}"
    );
    same(&held(&b, "intel"), &as_partner(&a, "intel", "b"));
    let l = seen.lock().unwrap();
    let requests = String::from_utf8_lossy(&l.requests).to_lowercase();
    let responses = String::from_utf8_lossy(&l.responses).to_lowercase();
    assert!(requests.contains("accept-encoding: gzip"), "{requests}");
    assert!(responses.contains("content-encoding: gzip"));
}

/// The members of a tar file, in order, every header its own member (no extension
/// applied): name, type, data.
fn tar_members(path: &Path) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .raw(true)
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, kind, data)
        })
        .collect()
}

/// One member of a tar made by hand: its raw name (what the `tar` crate would refuse to
/// write, such as `../x`, included), type, data and link target.
type Raw<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

/// The bytes of a ustar file of `members`, header by header, with the end-of-archive
/// marker.
fn raw_tar(members: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in members {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Issue 22, the package as one file: `export --package -o FILE.tar` writes the same files
/// as the members of one uncompressed POSIX tar (the system's `tar` extracts it into the
/// directory form, and a tar it packs of those files verifies too); `import FILE.tar` (and
/// `--verify-only`) verifies it as a directory is
/// verified and ingests it after the directory packages of the same chain; the receiver
/// holds what the partner receives. A tar is written as a new file only.
#[test]
fn a_package_as_one_tar_file_round_trips() {
    let p = producer();
    import(
        &p.a,
        "intel",
        &[indicator("44444444", "four.example", &[GREEN])],
    );
    let t3 = p.a.path().join("p3.tar");
    package(&p.a, &t3, &["--since-last"]);
    assert!(!p.a.path().join("p3.tar.partial").exists());
    let members = tar_members(&t3);
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        ["objects-000001.json.zst", "manifest.json", "manifest.sig"]
    );
    assert!(members.iter().all(|m| m.1 == tar::EntryType::Regular));
    // The system's tar reads it: extracted, it is the directory form of package 3.
    let x = p.b.path().join("x3");
    std::fs::create_dir(&x).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&t3)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(status.success());
    let m3 = manifest(&x);
    assert_eq!(
        (
            m3["sequence"].as_i64(),
            m3["previous_sequence"].as_i64(),
            m3["counts"]["objects"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(
        m3["previous"].as_str().unwrap(),
        sha256_hex(&std::fs::read(p.p2.join("manifest.json")).unwrap())
    );
    assert_eq!(
        m3["files"][0]["sha256"].as_str().unwrap(),
        sha256_hex(&members[0].2)
    );
    let b = &p.b;
    for dir in [&p.p1, &p.p2] {
        let (code, _, err) = import_package(b, dir, Some(&p.key));
        assert_eq!(code, 0, "{err}");
    }
    // Packed again by the system's tar (ustar, padded to 10,240-byte records), it verifies.
    let repacked = b.path().join("repacked.tar");
    let status = std::process::Command::new("tar")
        .arg("--format=ustar")
        .arg("-cf")
        .arg(&repacked)
        .arg("-C")
        .arg(&x)
        .args(["manifest.json", "manifest.sig", "objects-000001.json.zst"])
        .status()
        .unwrap();
    assert!(status.success());
    for t in [&repacked, &t3] {
        let (code, out, err) = cli(
            b,
            &[
                "import",
                "--verify-only",
                "--collection",
                "intel",
                "--signed-by",
                p.key.to_str().unwrap(),
                t.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(err.contains("nothing stored (--verify-only)"), "{err}");
    }
    let (code, out, err) = import_package(b, &t3, Some(&p.key));
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"][0]["added"], 1, "{report}");
    same(&held(b, "intel"), &as_partner(&p.a, "intel", "b"));
    let (code, out, _) = import_package(b, &t3, Some(&p.key));
    assert_eq!(code, 1);
    assert!(out.contains("is a repeated package"), "{out}");
    // Written as a new file only.
    let (code, _, err) = cli(
        &p.a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "b",
            "--package",
            "-o",
            t3.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("exists (a package tar is written as a new file)"),
        "{err}"
    );
}

/// A package tar read from media an attacker may write: a tampered member, a tar cut
/// short (inside a member, or after the last one), a member added, a symbolic or hard link
/// member, a directory member, a member named `../…`, by an absolute path or inside a
/// directory, a member twice, non-zero bytes after the end, a manifest member over 16 MiB,
/// a signature by another key, a foreign package, the tar path a symbolic link or a FIFO:
/// each refused with the reason, naming the member; nothing stored. The genuine tar then
/// imports.
#[test]
fn hostile_package_tars_are_refused() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let p = producer_as(".tar");
    let b = &p.b;
    let members = tar_members(&p.p1);
    let (obj, manifest_bytes, sig) = (&members[0], &members[1].2, &members[2].2);
    let name = obj.0.as_bytes();
    let genuine: Vec<Raw<'_>> = members
        .iter()
        .map(|(n, _, d)| (n.as_bytes(), Regular, &d[..], &b""[..]))
        .collect();
    let mut n = 0;
    let mut check = |bytes: Vec<u8>, reason: &str| {
        n += 1;
        let path = b.path().join(format!("bad-{n}.tar"));
        std::fs::write(&path, bytes).unwrap();
        refused(b, import_package(b, &path, Some(&p.key)), reason);
    };
    // The same members, written by hand, import: the refusals below are for the change.
    let mut tampered = obj.2.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    let with = |i: usize, m: Raw<'static>| {
        let mut all = genuine.clone();
        all[i] = m;
        all
    };
    let leak = |v: Vec<u8>| -> &'static [u8] { Box::leak(v.into_boxed_slice()) };
    let obj_name: &'static [u8] = leak(name.to_vec());
    check(
        raw_tar(&with(0, (obj_name, Regular, leak(tampered), b""))),
        &format!("{}: SHA-256", obj.0),
    );
    let whole = std::fs::read(&p.p1).unwrap();
    check(
        whole[..whole.len() / 2].to_vec(),
        "truncated: its header says",
    );
    let cut = raw_tar(&genuine);
    check(
        cut[..cut.len() - 1024].to_vec(),
        "truncated: no end-of-archive marker",
    );
    let mut extra = genuine.clone();
    extra.push((b"objects-000009.json.zst", Regular, b"x", b""));
    check(
        raw_tar(&extra),
        "objects-000009.json.zst: not named in the manifest",
    );
    check(
        raw_tar(&with(0, (obj_name, Symlink, b"", b"/etc/passwd"))),
        &format!("{}: a symbolic link member (to /etc/passwd)", obj.0),
    );
    check(
        raw_tar(&with(0, (obj_name, Link, b"", b"manifest.json"))),
        &format!("{}: a hard link member (to manifest.json)", obj.0),
    );
    let mut dir = genuine.clone();
    dir.insert(0, (b"objects", Directory, b"", b""));
    check(raw_tar(&dir), "objects: a directory member");
    let mut dotdot = genuine.clone();
    dotdot[0].0 = leak([b"../".as_slice(), name].concat());
    check(
        raw_tar(&dotdot),
        &format!("../{}: a path out of the package (`..`)", obj.0),
    );
    let mut absolute = genuine.clone();
    absolute[1].0 = &b"/tmp/manifest.json"[..];
    check(raw_tar(&absolute), "/tmp/manifest.json: an absolute path");
    let mut nested = genuine.clone();
    nested[1].0 = &b"./manifest.json"[..];
    check(
        raw_tar(&nested),
        "./manifest.json: a member inside a directory",
    );
    let mut twice = genuine.clone();
    twice.push((b"manifest.json", Regular, &manifest_bytes[..], b""));
    check(
        raw_tar(&twice),
        "manifest.json: a second member of that name in the tar",
    );
    let mut trailing = raw_tar(&genuine);
    trailing.extend_from_slice(b"hidden");
    check(
        trailing,
        "after the end-of-archive marker that are not zero padding",
    );
    let huge = vec![b' '; (16 << 20) + 1];
    check(
        raw_tar(&with(1, (b"manifest.json", Regular, leak(huge), b""))),
        "manifest.json: more than 16777216 bytes",
    );
    // Signed by another key: the signature does not verify; checked against another key:
    // a foreign package.
    let c = Node::init();
    let c_secret =
        concord_store::node_key::NodeKey::load_or_create(&c.path().join("node.key")).unwrap();
    let forged = format!(
        "{}\n",
        concord_store::node_key::hex(&c_secret.sign(manifest_bytes))
    );
    check(
        raw_tar(&with(
            2,
            (b"manifest.sig", Regular, leak(forged.into_bytes()), b""),
        )),
        "manifest.sig: does not verify",
    );
    assert_ne!(sig.len(), 0);
    let c_key = c.path().join("c.key");
    cli_ok(&c, &["node", "key", "-o", c_key.to_str().unwrap()]);
    refused(
        b,
        import_package(b, &p.p1, Some(&c_key)),
        "a foreign package",
    );
    let link = b.path().join("link.tar");
    std::os::unix::fs::symlink(&p.p1, &link).unwrap();
    refused(
        b,
        import_package(b, &link, Some(&p.key)),
        &format!("{}: a symbolic link", link.display()),
    );
    let fifo = b.path().join("fifo.tar");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let outcome = import_bounded(b, &fifo, &p.key, std::time::Duration::from_secs(60))
        .expect("the import hung on a FIFO");
    refused(b, outcome, &format!("{}: a FIFO", fifo.display()));
    // The same members written by hand, and the genuine tar, import.
    let by_hand = b.path().join("by-hand.tar");
    std::fs::write(&by_hand, raw_tar(&genuine)).unwrap();
    let (code, _, err) = cli(
        b,
        &[
            "import",
            "--verify-only",
            "--collection",
            "intel",
            "--signed-by",
            p.key.to_str().unwrap(),
            by_hand.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    for t in [&p.p1, &p.p2] {
        let (code, _, err) = import_package(b, t, Some(&p.key));
        assert_eq!(code, 0, "{err}");
    }
    same(&held(b, "intel"), &as_partner(&p.a, "intel", "b"));
}

/// Item 3, a partner whose node is no peer here: `export --package --recipient-key KEYFILE`
/// addresses the package to that key (C imports it; B, another node, does not); a key that
/// contradicts the peer linked to the partner is refused and nothing is written.
#[test]
fn a_recipient_key_file_addresses_a_package() {
    let p = producer();
    let c = Node::init();
    let c_key = c.path().join("own.key");
    cli_ok(&c, &["node", "key", "-o", c_key.to_str().unwrap()]);
    partner(&p.a, "d", "DE", &["--read", "intel"]);
    let out = p.a.path().join("for-d.tar");
    cli_ok(
        &p.a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "d",
            "--package",
            "--recipient-key",
            c_key.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    refused(
        &p.b,
        import_package(&p.b, &out, Some(&p.key)),
        "not to this node",
    );
    let (code, _, err) = import_package(&c, &out, Some(&p.key));
    assert_eq!(code, 0, "{err}");
    assert_eq!(held(&c, "intel").len(), 3);
    same(&held(&c, "intel"), &as_partner(&p.a, "intel", "d"));
    let wrong = p.a.path().join("wrong.tar");
    let (code, _, err) = cli(
        &p.a,
        &[
            "export",
            "--collection",
            "intel",
            "--partner",
            "b",
            "--package",
            "--recipient-key",
            c_key.to_str().unwrap(),
            "-o",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("but the peer linked to partner \"b\" has node key fingerprint"),
        "{err}"
    );
    assert!(!wrong.exists());
}
