//! Shared helpers: a node in a temporary data directory, started as a real process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The token every test node is initialised with.
pub const TOKEN: &str = "test-admin-token-0123456789";
/// The TAXII 2.1 media type.
pub const TAXII: &str = "application/taxii+json;version=2.1";

/// `tests/data/REL` of the repository, the test data (tests/data/README.md says what each
/// file is, where it comes from and its licence).
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(rel)
}

/// The bytes of a file; a `.gz` file is decompressed.
pub fn read_path(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|x| x == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out
    } else {
        raw
    }
}

/// The bytes of `tests/data/REL`, decompressed if it ends in `.gz`.
pub fn read_data(rel: &str) -> Vec<u8> {
    read_path(&data(rel))
}

/// A `concord` command.
pub fn concord() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_concord"));
    c.env_remove("CONCORD_ADMIN_TOKEN")
        .env_remove("CONCORD_DATA_DIR")
        .env_remove("CONCORD_DATABASE_URL")
        .env("CONCORD_LOG", "warn");
    c
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run concord")
}

/// What every test node's concord.toml says of outbound requests (issue 19): the tests run
/// their peers, inviting nodes and webhook receivers on loopback, which the default refuses
/// (public addresses only), so they opt in explicitly. `outbound.rs` tests the default.
pub const LOOPBACK_ALLOWED: &str = "\n[outbound]\nallow = [\"127.0.0.0/8\", \"::1\"]\n";

/// An initialised data directory, removed at drop.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    /// `concord init --admin-token TOKEN` in a fresh directory.
    pub fn init() -> Node {
        Node::init_with(&[])
    }

    /// `concord init --admin-token TOKEN ARGS…` in a fresh directory, whose concord.toml then
    /// allows loopback for outbound requests ([`LOOPBACK_ALLOWED`]).
    pub fn init_with(args: &[&str]) -> Node {
        let node = Node::init_public_only(args);
        let config = node.path().join("concord.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(LOOPBACK_ALLOWED);
        std::fs::write(&config, text).unwrap();
        node
    }

    /// `concord init --admin-token TOKEN ARGS…` in a fresh directory, concord.toml as
    /// `init` writes it: requests to a partner's URL reach public addresses only.
    pub fn init_public_only(args: &[&str]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let out = run(concord()
            .args(["init", "--admin-token", TOKEN, "--data-dir"])
            .arg(dir.path())
            .args(args));
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Node { dir }
    }

    /// Path of the data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `concord import --json --collection C FILES…`: exit code and the JSON report.
    pub fn import(&self, collection: &str, files: &[&Path]) -> (i32, serde_json::Value) {
        let out = run(concord()
            .args(["import", "--json", "--collection", collection, "--data-dir"])
            .arg(self.path())
            .args(files));
        let code = out.status.code().unwrap_or(-1);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "import report not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, report)
    }

    /// Starts `concord serve` on a free port.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// Starts `concord serve` on a free port with extra environment variables.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Server {
        self.serve_logging(env, Stdio::inherit())
    }

    /// [`Node::serve_with`], its log (stderr) going to `log`. The per-request log lines
    /// are off unless `env` sets `CONCORD_LOG` (thousands of requests per test).
    pub fn serve_logging(&self, env: &[(&str, &str)], log: impl Into<Stdio>) -> Server {
        self.serve_listening("127.0.0.1:0", env, log)
    }

    /// [`Node::serve_with`] on a given port of loopback (a URL that must be known before the
    /// server starts, as an OpenID Provider's redirect URI).
    pub fn serve_on(&self, port: u16, env: &[(&str, &str)]) -> Server {
        self.serve_listening(&format!("127.0.0.1:{port}"), env, Stdio::inherit())
    }

    fn serve_listening(&self, listen: &str, env: &[(&str, &str)], log: impl Into<Stdio>) -> Server {
        // Sync rounds are driven by the tests (`concord sync`), not by the scheduler.
        let mut child = concord()
            .env("CONCORD_SYNC_SCHEDULE", "false")
            .env("CONCORD_LOG", "info,concord::request=off")
            .envs(env.iter().copied())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(self.path())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn concord serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "listening on http://127.0.0.1:PORT/taxii2/ (API root /concord/)"
        let url = line
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let base = url.trim_end_matches("/taxii2/").to_owned();
        Server { child, base }
    }
}

/// A running `concord serve`, killed at drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends SIGTERM to the process, as a service manager stopping it would.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Whether the process has exited, polling up to `bound` (a generous bound, not a
    /// timing assertion).
    pub fn exits_within(&mut self, bound: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < bound {
            if self.child.try_wait().expect("try_wait").is_some() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// A client for a server started elsewhere (no process owned).
    pub fn client(base: String) -> Client {
        Client { base }
    }

    /// An HTTP agent that returns error statuses as responses instead of errors.
    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// GET with the admin token and the TAXII Accept header: (status, headers, body).
    pub fn get(&self, path: &str) -> Reply {
        let resp = Self::agent()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Accept", TAXII)
            .call()
            .unwrap();
        Reply::from(resp)
    }

    /// A request with the given method and headers (no credentials unless given).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.unwrap_or_default().to_owned()).unwrap();
        Reply::from(Self::agent().run(req).unwrap())
    }

    /// DELETE with the admin token.
    pub fn delete(&self, path: &str) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        self.request(
            "DELETE",
            path,
            &[("Authorization", &auth), ("Accept", TAXII)],
            None,
        )
    }

    /// POST an envelope with the admin token.
    pub fn post(&self, path: &str, body: &str) -> Reply {
        Server::client(self.base.clone()).post(path, body)
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn from(mut resp: ureq::http::Response<ureq::Body>) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client of a server owned by someone else (e.g. another thread).
pub struct Client {
    base: String,
}

impl Client {
    /// GET with the admin token and the TAXII Accept header.
    pub fn get(&self, path: &str) -> Reply {
        let resp = Server::agent()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Accept", TAXII)
            .call()
            .unwrap();
        Reply::from(resp)
    }

    /// POST an envelope with the admin token.
    pub fn post(&self, path: &str, body: &str) -> Reply {
        let resp = Server::agent()
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Accept", TAXII)
            .header("Content-Type", TAXII)
            .send(body)
            .unwrap();
        Reply::from(resp)
    }
}
