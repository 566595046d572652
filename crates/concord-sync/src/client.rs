//! A TAXII 2.1 client for one peer's API root, with retries and backoff.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::outbound::{Outbound, Refused, refused_in};
use crate::peer::{Peer, PeerAuth};

/// The TAXII 2.1 media type (TAXII 2.1 §1.6.8).
const TAXII: &str = "application/taxii+json;version=2.1";

/// TLS options of a peer: PEM files read when the client is built.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// Trusted roots (PEM), instead of the WebPKI roots: a partner network's own CA.
    pub ca_file: Option<String>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_cert: Option<String>,
    /// Its private key (PEM).
    pub client_key: Option<String>,
    /// SHA-256 (hex) of the DER of the one server certificate trusted, instead of any CA
    /// (`ca_file` and the WebPKI roots are then not used): the pin of an invitation
    /// (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_sha256: Option<String>,
}

/// Why a request to a peer failed (after its retries).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A configuration file (token, password, certificate) cannot be used.
    #[error("{file}: {message}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// No answer: connection refused, timeout, TLS failure (e.g. a wrong certificate).
    #[error("{method} {url}: {message} (after {attempts} attempts)")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The transport error.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An HTTP error status.
    #[error("{method} {url}: HTTP {status}: {message} (after {attempts} attempts)")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The TAXII error title, or the start of the body.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An answer longer than this node reads from a peer (not retried: the peer would send
    /// the same again).
    #[error("{method} {url}: the answer is over {setting} ({limit} bytes): refused")]
    TooLarge {
        /// HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The setting that holds the cap.
        setting: &'static str,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The peer's URL (or the name it resolves to now) is refused by the node's outbound
    /// rule ([`Outbound`], `[outbound] allow`): no connection was made (not retried).
    #[error("{method} {url}: {refused}")]
    Refused {
        /// HTTP method.
        method: &'static str,
        /// The URL of the request.
        url: String,
        /// The URL, the address and the rule.
        refused: Box<Refused>,
    },
    /// An answer that is not the TAXII resource expected.
    #[error("{method} {url}: unreadable answer: {message} (after {attempts} attempts)")]
    Garbage {
        /// HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What is wrong with it.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// The cap on any answer read from a peer (a page of objects is bounded by the peer's
/// `max_content_length` in practice; this bounds a hostile one): 1 GiB.
const ANSWER_CAP: Cap = ("the sync client's answer cap", 1 << 30);

/// A cap on an answer's bytes: the setting that holds it, and its value.
type Cap = (&'static str, u64);

/// How one request failed.
enum Once {
    Transport(String),
    TooLarge,
    Refused(Box<Refused>),
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The body.
    pub body: String,
    /// `X-TAXII-Date-Added-Last`, if sent (TAXII 2.1 §3.3.1).
    pub date_added_last: Option<String>,
    /// `Location` of a 3xx answer: a redirect, which is never followed.
    pub location: Option<String>,
}

/// A page of objects: the envelope's text and its paging fields.
#[derive(Debug)]
pub struct ObjectsPage {
    /// The envelope as received (ingested as such).
    pub body: String,
    /// `more`.
    pub more: bool,
    /// `next`.
    pub next: Option<String>,
    /// `X-TAXII-Date-Added-Last`.
    pub date_added_last: Option<String>,
    /// Whether the envelope has objects: `objects` is optional (TAXII 2.1 §3.7), and a page
    /// whose every object the peer's policy withheld may come without.
    pub has_objects: bool,
}

/// An answer of [`Client::tombstones`].
#[derive(Debug)]
pub struct Tombstones {
    /// Deleted versions: `(id, version)`.
    pub deleted: Vec<(String, String)>,
    /// Whether more follow at once.
    pub more: bool,
    /// The cursor to ask with next.
    pub next: String,
}

/// A client of one peer's API root.
pub struct Client {
    agent: ureq::Agent,
    root: String,
    authorization: Option<String>,
    attempts: u32,
    backoff: Duration,
}

impl Client {
    /// Builds the client of `peer`: reads its secret and TLS files; `attempts` requests at
    /// most per call, waiting `backoff`, then twice that, … between them. Every connection
    /// goes only to addresses `outbound` allows, checked on the addresses the peer's host
    /// resolves to at that moment ([`ClientError::Refused`] otherwise); redirects are not
    /// followed (a 3xx answer is a [`ClientError::Status`] naming its `Location`) and no
    /// proxy from the environment is used.
    pub fn new(
        peer: &Peer,
        attempts: u32,
        backoff: Duration,
        outbound: &Arc<Outbound>,
    ) -> Result<Client, ClientError> {
        let read = |file: &str| {
            std::fs::read(file).map_err(|e| ClientError::Config {
                file: file.to_owned(),
                message: e.to_string(),
            })
        };
        let secret = |file: &str| -> Result<String, ClientError> {
            let text = String::from_utf8(read(file)?).map_err(|_| ClientError::Config {
                file: file.to_owned(),
                message: "not UTF-8".into(),
            })?;
            Ok(text.trim().to_owned())
        };
        let authorization = match &peer.auth {
            PeerAuth::None => None,
            PeerAuth::Token { file } => Some(format!("Bearer {}", secret(file)?)),
            PeerAuth::Basic {
                user,
                password_file,
            } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", secret(password_file)?))
            )),
        };
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &peer.tls.ca_file {
            let pem = read(ca)?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ClientError::Config {
                    file: ca.clone(),
                    message: "no PEM certificate in it".into(),
                });
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        match (&peer.tls.client_cert, &peer.tls.client_key) {
            (Some(cert), Some(key)) => {
                let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&read(cert)?)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                let key_pem = read(key)?;
                let key = PrivateKey::from_pem(&key_pem).map_err(|e| ClientError::Config {
                    file: key.clone(),
                    message: e.to_string(),
                })?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => {
                return Err(ClientError::Config {
                    file: peer.tls.client_cert.clone().unwrap_or_default(),
                    message: "a client certificate needs both --client-cert and --client-key"
                        .into(),
                });
            }
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(peer.timeout_secs.clamp(1, 10))))
            .timeout_global(Some(Duration::from_secs(peer.timeout_secs.max(1))));
        let agent: ureq::Agent = match &peer.tls.pin_sha256 {
            Some(pin) => {
                let client_cert = match (&peer.tls.client_cert, &peer.tls.client_key) {
                    (Some(cert), Some(key)) => Some(crate::pin::client_cert(cert, key)?),
                    _ => None,
                };
                crate::pin::pinned_agent(
                    Outbound::config(config),
                    pin,
                    client_cert,
                    outbound.resolver(),
                )
                .map_err(|message| ClientError::Config {
                    file: "tls.pin_sha256".into(),
                    message,
                })?
            }
            None => outbound.agent(config.tls_config(tls.build())),
        };
        let mut root = peer.url.trim_end_matches('/').to_owned();
        root.push('/');
        root.push_str(peer.api_root.trim_matches('/'));
        root.push('/');
        Ok(Client {
            agent,
            root,
            authorization,
            attempts: attempts.max(1),
            backoff,
        })
    }

    /// The API root's URL, ending in `/`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// One request with retries: transport errors, 5xx, 429 and unreadable JSON are retried
    /// with exponential backoff; other statuses fail at once. `Ok` only for 2xx with a JSON
    /// body.
    fn request(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(Answer, Value), ClientError> {
        self.request_as(method, path, query, body, true, ANSWER_CAP)
    }

    /// [`Client::request`], with `json`: whether a 2xx answer must be a JSON object (a
    /// DELETE's answer has no body: TAXII 2.1 §5.7); without, its body is not read as
    /// JSON and the value is `null`.
    fn request_as(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
        json: bool,
        cap: Cap,
    ) -> Result<(Answer, Value), ClientError> {
        let url = format!("{}{path}", self.root);
        let mut wait = self.backoff;
        let mut last = None;
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            match self.once(method, &url, query, body, cap.1) {
                Err(Once::Refused(refused)) => {
                    return Err(ClientError::Refused {
                        method,
                        url,
                        refused,
                    });
                }
                Err(Once::TooLarge) => {
                    return Err(ClientError::TooLarge {
                        method,
                        url,
                        setting: cap.0,
                        limit: cap.1,
                    });
                }
                Ok((status, answer)) if (200..300).contains(&status) && !json => {
                    return Ok((answer, Value::Null));
                }
                Ok((status, answer)) if (200..300).contains(&status) => {
                    match serde_json::from_str::<Value>(&answer.body) {
                        Ok(v) if v.is_object() => return Ok((answer, v)),
                        Ok(_) => {
                            last = Some(ClientError::Garbage {
                                method,
                                url: url.clone(),
                                message: "not a JSON object".into(),
                                attempts: attempt,
                            })
                        }
                        Err(e) => {
                            last = Some(ClientError::Garbage {
                                method,
                                url: url.clone(),
                                message: e.to_string(),
                                attempts: attempt,
                            })
                        }
                    }
                }
                Ok((status, answer)) => {
                    let message = match &answer.location {
                        Some(to) if (300..400).contains(&status) => format!(
                            "a redirect to {:?}, not followed (requests go to the peer's URL \
                             only)",
                            crate::join::printable(to, 200)
                        ),
                        _ => serde_json::from_str::<Value>(&answer.body)
                            .ok()
                            .and_then(|v| v.get("title").and_then(Value::as_str).map(str::to_owned))
                            .unwrap_or_else(|| answer.body.chars().take(200).collect()),
                    };
                    let err = ClientError::Status {
                        method,
                        url: url.clone(),
                        status,
                        message,
                        attempts: attempt,
                    };
                    if status < 500 && status != 429 {
                        return Err(err);
                    }
                    last = Some(err);
                }
                Err(Once::Transport(message)) => {
                    last = Some(ClientError::Transport {
                        method,
                        url: url.clone(),
                        message,
                        attempts: attempt,
                    })
                }
            }
            tracing::debug!(attempt, %url, "request to peer failed, retrying");
        }
        Err(last.expect("at least one attempt"))
    }

    fn once(
        &self,
        method: &'static str,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
        limit: u64,
    ) -> Result<(u16, Answer), Once> {
        let result = match body {
            None => {
                let mut req = if method == "DELETE" {
                    self.agent.delete(url)
                } else {
                    self.agent.get(url)
                }
                .header("Accept", TAXII);
                if let Some(a) = &self.authorization {
                    req = req.header("Authorization", a);
                }
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                req.call()
            }
            Some(body) => {
                let mut req = self
                    .agent
                    .post(url)
                    .header("Accept", TAXII)
                    .header("Content-Type", TAXII);
                if let Some(a) = &self.authorization {
                    req = req.header("Authorization", a);
                }
                req.send(body)
            }
        };
        let mut resp = result.map_err(|e| match refused_in(&e) {
            Some(r) => Once::Refused(Box::new(r.clone())),
            None => Once::Transport(e.to_string()),
        })?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let date_added_last = resp
            .headers()
            .get("X-TAXII-Date-Added-Last")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Once::TooLarge,
                e => Once::Transport(format!("{method} body: {e}")),
            })?;
        Ok((
            status,
            Answer {
                body,
                date_added_last,
                location,
            },
        ))
    }

    /// The API root resource (TAXII 2.1 §4.2).
    pub fn api_root(&self) -> Result<Value, ClientError> {
        Ok(self.request("GET", "", &[], None)?.1)
    }

    /// The collections resource's `collections` (TAXII 2.1 §5.1).
    pub fn collections(&self) -> Result<Vec<Value>, ClientError> {
        let (_, v) = self.request("GET", "collections/", &[], None)?;
        Ok(v.get("collections")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// One page of every version (`match[version]=all`) added after `added_after`, or the
    /// page `next` names (TAXII 2.1 §5.4).
    pub fn objects_page(
        &self,
        collection_id: &str,
        added_after: Option<&str>,
        next: Option<&str>,
        limit: usize,
    ) -> Result<ObjectsPage, ClientError> {
        let limit = limit.to_string();
        let mut query = vec![("match[version]", "all"), ("limit", limit.as_str())];
        if let Some(a) = added_after {
            query.push(("added_after", a));
        }
        if let Some(n) = next {
            query.push(("next", n));
        }
        let path = format!("collections/{collection_id}/objects/");
        let (answer, v) = self.request("GET", &path, &query, None)?;
        Ok(ObjectsPage {
            more: v.get("more").and_then(Value::as_bool).unwrap_or(false),
            next: v.get("next").and_then(Value::as_str).map(str::to_owned),
            date_added_last: answer.date_added_last,
            has_objects: v
                .get("objects")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            body: answer.body,
        })
    }

    /// Which of `(id, version)` the collection already holds, from one manifest request
    /// (TAXII 2.1 §5.3, `match[id]` with the ids comma-separated, every version).
    pub fn held(
        &self,
        collection_id: &str,
        wanted: &[(String, String)],
    ) -> Result<std::collections::HashSet<(String, String)>, ClientError> {
        let mut held = std::collections::HashSet::new();
        if wanted.is_empty() {
            return Ok(held);
        }
        let mut ids: Vec<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let ids = ids.join(",");
        let path = format!("collections/{collection_id}/manifest/");
        let mut next: Option<String> = None;
        loop {
            let mut query = vec![("match[id]", ids.as_str()), ("match[version]", "all")];
            if let Some(n) = &next {
                query.push(("next", n.as_str()));
            }
            let (_, v) = self.request("GET", &path, &query, None)?;
            for m in v
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(version)) = (
                    m.get("id").and_then(Value::as_str),
                    m.get("version").and_then(Value::as_str),
                ) {
                    held.insert((id.to_owned(), version.to_owned()));
                }
            }
            match (
                v.get("more").and_then(Value::as_bool),
                v.get("next").and_then(Value::as_str),
            ) {
                (Some(true), Some(n)) => next = Some(n.to_owned()),
                _ => break,
            }
        }
        Ok(held)
    }

    /// The peer's agreement with this node as a signed document
    /// (`GET {api-root}agreement/`, not TAXII: issue 19), as its JSON text, to verify with
    /// `concord_egress::agreement::verify_document`. `None` from a server without the
    /// resource: any 4xx (404 from a node without a key; other TAXII servers answer an
    /// unknown path 404, 400, 403 or 405). A refusal that matters (credentials, encryption)
    /// stops the round at its next request, which names it. A JSON answer without the
    /// document's `signed` member is some other server's answer to a path it does not know:
    /// `None` too (read from the answer already parsed, not parsed again).
    ///
    /// The document is read up to `max_bytes` (`peer_agreement_bytes`), not the general
    /// answer cap: a longer one is [`ClientError::TooLarge`], naming the setting.
    pub fn agreement(&self, max_bytes: u64) -> Result<Option<String>, ClientError> {
        let cap = ("peer_agreement_bytes", max_bytes);
        match self.request_as("GET", "agreement/", &[], None, true, cap) {
            Ok((answer, v)) => Ok(v.get("signed").is_some().then_some(answer.body)),
            Err(ClientError::Status { status, .. }) if (400..500).contains(&status) => Ok(None),
            // Not JSON: not a Concord node's answer.
            Err(ClientError::Garbage { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The deletions of a Concord peer's collection since `next`
    /// (`GET …/collections/{id}/tombstones/`, not TAXII: issue 21): the deleted versions
    /// `(id, version)` this node received, whether more follow at once, and the cursor to
    /// ask with next. `None` from a server without the resource (404: any other TAXII
    /// server), which then tells no deletions.
    pub fn tombstones(
        &self,
        collection_id: &str,
        next: Option<&str>,
    ) -> Result<Option<Tombstones>, ClientError> {
        let path = format!("collections/{collection_id}/tombstones/");
        let query: Vec<(&str, &str)> = next.map(|n| ("next", n)).into_iter().collect();
        let v = match self.request("GET", &path, &query, None) {
            Ok((_, v)) => v,
            Err(ClientError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let garbage = |message: &str| ClientError::Garbage {
            method: "GET",
            url: format!("{}{path}", self.root),
            message: message.to_owned(),
            attempts: 1,
        };
        let next = v
            .get("next")
            .and_then(Value::as_str)
            .ok_or_else(|| garbage("no next"))?
            .to_owned();
        let deleted = v
            .get("tombstones")
            .and_then(Value::as_array)
            .ok_or_else(|| garbage("no tombstones"))?
            .iter()
            .filter_map(|t| {
                Some((
                    t.get("id")?.as_str()?.to_owned(),
                    t.get("version")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        Ok(Some(Tombstones {
            deleted,
            more: v.get("more").and_then(Value::as_bool).unwrap_or(false),
            next,
        }))
    }

    /// Deletes an object's version from the peer's collection (TAXII 2.1 §5.7 Delete An
    /// Object: `DELETE …/collections/{id}/objects/{object_id}/?match[version]=V`), every
    /// version with `version` `None` (`match[version]=all`). A 404 is the peer's answer for
    /// an object it does not hold (or not for this node), returned as the
    /// [`ClientError::Status`] it is; retried like every request.
    pub fn delete_object(
        &self,
        collection_id: &str,
        object_id: &str,
        version: Option<&str>,
    ) -> Result<(), ClientError> {
        let path = format!("collections/{collection_id}/objects/{object_id}/");
        let query = [("match[version]", version.unwrap_or("all"))];
        self.request_as("DELETE", &path, &query, None, false, ANSWER_CAP)?;
        Ok(())
    }

    /// POSTs an envelope (TAXII 2.1 §5.5); the status resource it answers with.
    pub fn post_envelope(&self, collection_id: &str, envelope: &str) -> Result<Value, ClientError> {
        let path = format!("collections/{collection_id}/objects/");
        Ok(self.request("POST", &path, &[], Some(envelope))?.1)
    }

    /// A status resource (TAXII 2.1 §4.3).
    pub fn status(&self, status_id: &str) -> Result<Value, ClientError> {
        Ok(self
            .request("GET", &format!("status/{status_id}/"), &[], None)?
            .1)
    }
}
