//! Invitations and joins (issue 19, item 1): two nodes become partners and peers of each
//! other in one authenticated exchange, and nobody types or copies a secret.
//!
//! # Documents
//!
//! Three JSON documents, each `{"<kind>": {…}, "signature": "<hex>"}`: the body has a `type`
//! and a `version`, and the signature (Ed25519, the node key of `concord_store::node_key`,
//! the key of audit checkpoints and transfer packages) is over a domain label and the body's
//! canonical bytes ([`canonical`]: object members sorted by code point, no whitespace), so
//! a file re-indented or re-ordered still verifies and one edited in any value does not.
//!
//! - [`Invitation`] (`concord invite`): who invites (its STIX 2.1 identity, §4.5, with the
//!   OASIS identity contact-information extension; its URL, API root, TLS certificate pin,
//!   jurisdiction and node key), what it offers (collections, read and write), the name the
//!   joining organisation gets, its expiry, and a one-time secret of 32 random bytes. The
//!   inviting node keeps only the secret's SHA-256.
//! - [`JoinRequest`] (`concord join`): the invitation's id and secret, the node key the
//!   invitation names, and the joining node's identity, node key, mappings and (when it is
//!   reachable) its URL and the API key it made for the inviting node. Signed by the joining
//!   node's key, so that the key the inviting node records is one the joiner holds.
//! - [`JoinAnswer`]: the inviting node's answer, signed by its node key and bound to the
//!   request ([`JoinAnswer::request_sha256`]): the API key made for the joining node and
//!   what the inviting node will serve it (the preview, counted through its egress door).
//!
//! The agreement exchanged at join (issue 19, item 5) is carried in the request and the
//! answer (`agreement`: the signed document of `concord_egress::agreement`), signed with
//! them; `concord-admin`'s join verifies and keeps it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use concord_egress::Egress;
use concord_policy::egress::PartnerProfile;
use concord_store::node_key::{self, NodeKey};
use concord_store::{ObjectFilter, Store, VersionSelector};

use crate::peer::{Mapping, Peer};

/// `type` of an [`Invitation`].
pub const INVITATION_TYPE: &str = "concord-invitation";
/// `type` of a [`JoinRequest`].
pub const REQUEST_TYPE: &str = "concord-join-request";
/// `type` of a [`JoinAnswer`].
pub const ANSWER_TYPE: &str = "concord-join-answer";
/// The `version` of the three documents this build writes and reads.
pub const VERSION: u32 = 1;
/// The path of the join endpoint on the inviting node's server (not TAXII; outside every
/// API root's resources).
pub const JOIN_PATH: &str = "/concord/join/";
/// The OASIS identity contact-information extension (cti-stix-common-objects, extension
/// definition "Identity Contact Information"): a property extension of `identity`.
pub const CONTACT_EXTENSION: &str = "extension-definition--66e2492a-bbd3-4be6-88f5-cc91a017a498";
/// Largest invitation file, request or answer read, in bytes: a document is a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 10;

/// Domain labels: a signature over one kind of document is never one over another.
const INVITATION_DOMAIN: &[u8] = b"concord invitation v1\n";
const REQUEST_DOMAIN: &[u8] = b"concord join request v1\n";
const ANSWER_DOMAIN: &[u8] = b"concord join answer v1\n";

/// A collection the inviting node offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offered {
    /// Its id on the inviting node (TAXII collection id).
    pub id: String,
    /// Its alias there, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Its title (TAXII 2.1 §5.2).
    pub title: String,
    /// The joining node may read (pull) it.
    pub read: bool,
    /// The joining node may write (push) to it.
    pub write: bool,
}

impl Offered {
    /// Whether `name` names this collection: its id, alias or title.
    pub fn is_named(&self, name: &str) -> bool {
        self.id == name || self.alias.as_deref() == Some(name) || self.title == name
    }

    /// The local alias a pull creates by default: its alias, else its id.
    pub fn default_alias(&self) -> String {
        self.alias.clone().unwrap_or_else(|| self.id.clone())
    }
}

/// An invitation (`concord invite`): single use, signed by the inviting node's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    /// [`INVITATION_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    /// Its id (UUID).
    pub id: String,
    /// The name the joining organisation gets as a partner of the inviting node.
    pub partner: String,
    /// The joining organisation's jurisdiction as the inviting node records it (ISO 3166-1
    /// alpha-2): what its egress policy decides with.
    pub partner_jurisdiction: String,
    /// Sharing groups the joining organisation joins on the inviting node.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The inviting organisation: a STIX 2.1 `identity` (§4.5) with the contact-information
    /// extension ([`CONTACT_EXTENSION`]).
    pub identity: Value,
    /// The inviting node's base URL as partners reach it (`http(s)://host:port`).
    pub url: String,
    /// Its API root path (`/concord/`).
    pub api_root: String,
    /// SHA-256 (hex) of the DER of its TLS certificate, when it serves TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin_sha256: Option<String>,
    /// Its `tls_cert` as configured (PEM; the first certificate is the one pinned), for the
    /// record; the joining node trusts the pin (checked against this when the invitation
    /// is read), not a CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<String>,
    /// The inviting node's jurisdiction (its policy's; absent when the policy names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// What it offers.
    pub collections: Vec<Offered>,
    /// Its public node key (64 hex digits): what signs this invitation and the answer.
    pub node_key: String,
    /// When it was issued (RFC 3339).
    pub created: String,
    /// When it stops admitting a join (RFC 3339).
    pub expires: String,
    /// The one-time secret, 32 random bytes as 64 hex digits; the inviting node keeps only
    /// its SHA-256.
    pub secret: String,
}

/// An invitation as written to its file: the body and the detached signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationFile {
    /// The invitation.
    pub invitation: Invitation,
    /// Ed25519 signature (hex) over [`canonical`] bytes of `invitation`, with its domain.
    pub signature: String,
}

/// What the joining node sends (`POST` [`JOIN_PATH`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// [`REQUEST_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    /// The invitation's id.
    pub invitation: String,
    /// Its secret (the authentication of this one exchange).
    pub secret: String,
    /// The node key the invitation names: the inviting node refuses, without consuming
    /// the invitation, when it does not hold it (a foreign invitation).
    pub inviter_key: String,
    /// The joining organisation: a STIX 2.1 `identity`.
    pub identity: Value,
    /// The joining node's public node key (hex), which signs this request.
    pub node_key: String,
    /// The joining node's jurisdiction (its policy's; absent when the policy names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// The joining node's base URL, when partners can reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its API root path, with `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_root: Option<String>,
    /// The API key the joining node made for the inviting node (its partner there), with
    /// `url`: the inviting node's peer for the joiner authenticates with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Ids of the offered collections the joining node will pull.
    #[serde(default)]
    pub pull: Vec<String>,
    /// Ids of the offered collections the joining node will push into.
    #[serde(default)]
    pub push: Vec<String>,
    /// The agreement the joining node applies to the inviting node (issue 19, item 5): its
    /// signed document, verified and kept by the inviting node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Value>,
    /// SHA-256 (hex) of the DER of the joining node's TLS server certificate, when it is
    /// reachable over TLS (`url`): the inviting node's peer trusts exactly it, as the
    /// joining node trusts the invitation's pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin_sha256: Option<String>,
    /// `join --mtls`: SHA-256 (hex) of the DER of the client certificate the joining node
    /// will present to the inviting node, which binds its partner's API key to it; and a
    /// request for a client certificate of the inviting node (its pin in the answer) when
    /// the joining node is reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
}

/// A [`JoinRequest`] as sent: body and signature by the joining node's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequestFile {
    /// The request.
    pub request: JoinRequest,
    /// Ed25519 signature (hex) by `request.node_key`.
    pub signature: String,
}

/// Objects that will flow in one direction for one collection, after the egress policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowCount {
    /// The collection's id on the node that sends.
    pub collection: String,
    /// Its title (or alias) there.
    pub title: String,
    /// `serve` (the receiver pulls it) or `push` (the sender pushes it).
    pub direction: String,
    /// Object versions the egress door lets go.
    pub objects: u64,
    /// Object versions it withholds; always 0 in a [`JoinAnswer`]'s `serve`: a node never
    /// tells a partner how much it withholds from it (that would tell it exists).
    pub withheld: u64,
}

/// The inviting node's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinAnswer {
    /// [`ANSWER_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    /// The invitation's id.
    pub invitation: String,
    /// SHA-256 (hex) of the request's canonical bytes: this answer is to that request.
    pub request_sha256: String,
    /// `joined`, or `refused` with `reason`.
    pub outcome: String,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The joining node's name as a partner of the inviting node.
    pub partner: String,
    /// The API key the inviting node made for the joining node (when joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The inviting node's key (what signs this answer).
    pub node_key: String,
    /// What the inviting node will serve, per pulled collection ([`FlowCount`]).
    #[serde(default)]
    pub serve: Vec<FlowCount>,
    /// The agreement the inviting node applies to the joining node (issue 19, item 5): its
    /// signed document, verified and kept by the joining node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Value>,
    /// With a request's `client_cert_sha256` from a reachable joining node: SHA-256 (hex) of
    /// the DER of the client certificate the inviting node will present to it, which the
    /// joining node binds the inviting node's partner key to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
}

/// A [`JoinAnswer`] as sent: body and signature by the inviting node's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinAnswerFile {
    /// The answer.
    pub answer: JoinAnswer,
    /// Ed25519 signature (hex) by `answer.node_key`.
    pub signature: String,
}

/// Why an invitation or a join was refused: the reason, in the operator's words.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Not an invitation (request, answer) of this format: the field and the rule.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// `invitation`, `join request` or `join answer`.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The signature does not verify with the key the document names: it was edited.
    #[error(
        "tampered {what}: its signature does not verify with the node key it names ({key}); \
         the file was changed after it was signed"
    )]
    Tampered {
        /// `invitation`, `join request` or `join answer`.
        what: &'static str,
        /// The key named.
        key: String,
    },
    /// Its expiry has passed.
    #[error("expired invitation: it expired at {expires}; ask for a new one")]
    Expired {
        /// When.
        expires: String,
    },
    /// The server at the invitation's URL does not hold the key the invitation names.
    #[error(
        "foreign invitation: the server at {url} does not hold the node key the invitation \
         names ({named}); it answers as {holds}. The invitation was not issued by that node"
    )]
    Foreign {
        /// The URL asked.
        url: String,
        /// The key the invitation names.
        named: String,
        /// The key the server's answer names (or `an unsigned answer`).
        holds: String,
    },
    /// The inviting node refused (used, expired, unknown or wrong secret, a name taken…).
    #[error("the inviting node refused the join: {0}")]
    Refused(String),
    /// The inviting node could not be reached or answered something else.
    #[error("join exchange with {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] concord_store::StoreError),
    /// The egress door failed while counting the preview.
    #[error(transparent)]
    Egress(#[from] concord_egress::EgressError),
}

/// The canonical bytes of a JSON value: object members sorted by code point, no
/// whitespace, strings and numbers as serde_json writes them. What signatures cover.
pub fn canonical(value: &Value) -> Vec<u8> {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                    out.push(b':');
                    write(&m[k], out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(x, out);
                }
                out.push(b']');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn message<T: Serialize>(domain: &[u8], body: &T) -> Vec<u8> {
    let mut m = domain.to_vec();
    // A document of these types always serialises (no maps with non-string keys).
    m.extend(canonical(
        &serde_json::to_value(body).unwrap_or(Value::Null),
    ));
    m
}

fn sign<T: Serialize>(key: &NodeKey, domain: &[u8], body: &T) -> String {
    node_key::hex(&key.sign(&message(domain, body)))
}

fn verify<T: Serialize>(
    what: &'static str,
    key_hex: &str,
    domain: &[u8],
    body: &T,
    sig: &str,
) -> Result<(), JoinError> {
    let key = node_key::unhex32(key_hex).ok_or_else(|| JoinError::Malformed {
        what,
        message: format!("node_key {key_hex:?}: expected 64 hex digits (an Ed25519 public key)"),
    })?;
    let sig = node_key::unhex64(sig).ok_or_else(|| JoinError::Malformed {
        what,
        message: "signature: expected 128 hex digits (an Ed25519 signature)".into(),
    })?;
    if node_key::verify_signature(&key, &message(domain, body), &sig) {
        Ok(())
    } else {
        Err(JoinError::Tampered {
            what,
            key: key_hex.to_owned(),
        })
    }
}

/// SHA-256 (lower-case hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    node_key::hex(&sha2::Sha256::digest(bytes))
}

/// The SHA-256 (hex) of an invitation secret, as the inviting node keeps it. The secret
/// is 256 random bits, so a fast hash is enough: nothing can be guessed from it.
pub fn secret_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// A new one-time secret: 32 random bytes, 64 hex digits. Errors: no randomness.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes: {e}"))?;
    Ok(node_key::hex(&bytes))
}

/// The pin of a certificate: SHA-256 (hex) of its DER.
pub fn certificate_pin(der: &[u8]) -> String {
    sha256_hex(der)
}

/// A client certificate this node made for mutual TLS with one peer (`join --mtls`,
/// issue 19): self-signed, ECDSA P-256 with SHA-256, extended key usage TLS client
/// authentication. The other node trusts it by its pin, so no CA signs it and its validity
/// period is rcgen's default (it is not consulted). The private key is written only to this
/// node's data directory (mode 0600) and never sent.
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// SHA-256 (hex) of the certificate's DER: what the join message carries.
    pub pin: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// Makes a new [`ClientCertificate`] whose subject common name is `name` (this node's
/// title, for the other operator's logs). Errors: no randomness, or rcgen refused.
pub fn new_client_certificate(name: &str) -> Result<ClientCertificate, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("client certificate key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| format!("client certificate: {e}"))?;
    let cn: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        if cn.is_empty() {
            "concord node".into()
        } else {
            cn
        },
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("client certificate: {e}"))?;
    Ok(ClientCertificate {
        pin: certificate_pin(cert.der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether `pin` has the shape of a certificate pin: 64 lower-case hex digits.
pub fn is_pin(pin: &str) -> bool {
    pin.len() == 64 && pin.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The DER of the first certificate of a PEM text, or `None`.
pub fn first_certificate_der(pem: &[u8]) -> Option<Vec<u8>> {
    ureq::tls::parse_pem(pem).find_map(|item| match item {
        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
        _ => None,
    })
}

/// A node's STIX 2.1 `identity` (§4.5) for invitations and joins: `identity_class`
/// `organization`, `name` its title, `contact_information` its contact, and the OASIS
/// identity contact-information extension ([`CONTACT_EXTENSION`], a property extension,
/// §7.3) with the contact's e-mail address, when it has one, as an `email_addresses` entry
/// (`digital_contact_type` `organizational`, `email_address_ref` the id of the `email-addr`
/// SCO of that value, §6.4, deterministic per §2.9).
pub fn node_identity(id: &str, created: &str, title: &str, contact: &str) -> Value {
    let mut extension = serde_json::json!({ "extension_type": "property-extension" });
    if let Some(email) = email_in(contact) {
        extension["email_addresses"] = serde_json::json!([{
            "digital_contact_type": "organizational",
            "email_address_ref": email_addr_id(&email),
        }]);
    }
    let mut identity = serde_json::json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": id,
        "created": created,
        "modified": created,
        "name": title,
        "identity_class": "organization",
        "extensions": { CONTACT_EXTENSION: extension },
    });
    if !contact.is_empty() {
        identity["contact_information"] = Value::String(contact.to_owned());
    }
    identity
}

/// The first word of `text` that has the shape of an e-mail address.
fn email_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>'))
        .map(|w| w.trim_start_matches("mailto:"))
        .find(|w| {
            w.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        })
        .map(str::to_owned)
}

/// The deterministic id of the `email-addr` SCO of `value` (STIX 2.1 §2.9: UUIDv5 in the
/// STIX namespace over the canonical JSON of its id contributing property, `value`).
pub fn email_addr_id(value: &str) -> String {
    let ns = uuid::Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);
    let name = canonical(&serde_json::json!({ "value": value }));
    format!("email-addr--{}", uuid::Uuid::new_v5(&ns, &name))
}

/// Longest URL a join document may name, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest identity `name` a join document may carry, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Whether `c` may not appear in a text one node gives another: a control character
/// (Unicode Cc; `allow_newline` lets `\n` and `\t` through, for free text) or a format
/// character (Cf: bidi overrides and isolates, zero-width characters), which would reach
/// terminals, log lines, files and pages of the receiving node as something else than
/// what they show.
fn hostile_char(c: char, allow_newline: bool) -> bool {
    (c.is_control() && !(allow_newline && matches!(c, '\n' | '\t')))
        || concord_store::is_format_char(c)
}

/// `text` as it may be shown in a message of this node: control and format characters
/// escaped (`\u{1b}`), at most `max` characters. For the other side's free texts (a
/// refusal's reason, an answer that is not JSON), which reach a terminal or a log.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().take(max) {
        if hostile_char(c, false) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a node's base URL as a join document gives it (`field` names it in the error):
/// `http(s)://host[:port][/path]`, at most [`MAX_URL_BYTES`], without whitespace, control
/// or format characters, query or fragment. The other side is hostile: what it names is
/// stored in a peer record and later requested.
pub fn check_url(field: &str, url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && url.len() <= MAX_URL_BYTES
        && !url
            .chars()
            .any(|c| c.is_whitespace() || hostile_char(c, false) || matches!(c, '?' | '#'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {:?}: must be http(s)://host[:port] (at most {MAX_URL_BYTES} bytes, \
             without whitespace, control or format characters, query or fragment)",
            url.chars().take(200).collect::<String>()
        ))
    }
}

/// Checks an API root path as a join document gives it: `/` then segments of letters,
/// digits, `-`, `_`, `.` and `~` (RFC 3986 unreserved), none `.` or `..`, at most 256
/// bytes. A path that climbs or carries a query would make the peer's requests go
/// elsewhere than the API root it names.
pub fn check_api_root(field: &str, root: &str) -> Result<(), String> {
    let inner = root.trim_matches('/');
    let ok = root.len() <= 256
        && !inner.is_empty()
        && inner.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {:?}: must be a path of segments of letters, digits, '-', '_', '.', '~' \
             (no '.' or '..' segment), at most 256 bytes",
            root.chars().take(200).collect::<String>()
        ))
    }
}

/// Checks the texts of an identity one node gives another beyond STIX 2.1 (which allows
/// any string): its `name` is 1 to [`MAX_NAME_CHARS`] characters without control or format
/// characters, and no other string in it holds a control character other than a newline
/// or tab, or a format character. These texts are shown by the receiving node (partner
/// directory, CLI, pages, logs).
pub fn check_identity_texts(field: &str, identity: &Value) -> Result<(), String> {
    let name = identity.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(|c| hostile_char(c, false))
    {
        return Err(format!(
            "{field}.name {:?}: must be 1 to {MAX_NAME_CHARS} characters without control or \
             format characters (Unicode Cc, Cf)",
            name.chars().take(200).collect::<String>()
        ));
    }
    fn walk(v: &Value, path: &mut String, out: &mut Option<String>) {
        if out.is_some() {
            return;
        }
        match v {
            Value::String(s) if s.chars().any(|c| hostile_char(c, true)) => {
                *out = Some(path.clone());
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let n = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(x, path, out);
                    path.truncate(n);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let n = path.len();
                    path.push('.');
                    path.push_str(k);
                    if k.chars().any(|c| hostile_char(c, false)) {
                        *out = Some(path.clone());
                        return;
                    }
                    walk(x, path, out);
                    path.truncate(n);
                }
            }
            _ => {}
        }
    }
    let mut path = field.to_owned();
    let mut found = None;
    walk(identity, &mut path, &mut found);
    match found {
        Some(p) => Err(format!(
            "{:?}: a control or format character (Unicode Cc other than newline and tab, \
             Cf) in a text of the identity",
            p.chars().take(200).collect::<String>()
        )),
        None => Ok(()),
    }
}

/// The signed file of an invitation.
pub fn sign_invitation(key: &NodeKey, invitation: Invitation) -> InvitationFile {
    let signature = sign(key, INVITATION_DOMAIN, &invitation);
    InvitationFile {
        invitation,
        signature,
    }
}

/// Reads and verifies an invitation file at `now_ns`: its format ([`JoinError::Malformed`],
/// naming the field), its signature with the key it names ([`JoinError::Tampered`]), its
/// expiry ([`JoinError::Expired`]), and the pin of the certificate it carries.
pub fn read_invitation(text: &str, now_ns: i64) -> Result<Invitation, JoinError> {
    let what = "invitation";
    let bad = |message: String| JoinError::Malformed { what, message };
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(bad(format!(
            "{} bytes, over the {MAX_DOCUMENT_BYTES} bytes an invitation may have",
            text.len()
        )));
    }
    let file: InvitationFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let inv = file.invitation;
    if inv.kind != INVITATION_TYPE || inv.version != VERSION {
        return Err(bad(format!(
            "type {:?} version {}: this node reads {INVITATION_TYPE:?} version {VERSION}",
            inv.kind, inv.version
        )));
    }
    verify(
        what,
        &inv.node_key,
        INVITATION_DOMAIN,
        &inv,
        &file.signature,
    )?;
    // Signed by the key it names: the rest is the inviting node's word, checked for shape.
    check_url("url", &inv.url).map_err(bad)?;
    check_api_root("api_root", &inv.api_root).map_err(bad)?;
    for (i, c) in inv.collections.iter().enumerate() {
        for (what, text) in [
            ("id", Some(&c.id)),
            ("title", Some(&c.title)),
            ("alias", c.alias.as_ref()),
        ] {
            if let Some(t) = text
                && ((t.is_empty() && what != "title")
                    || t.chars().count() > MAX_NAME_CHARS
                    || t.chars().any(|c| hostile_char(c, false)))
            {
                return Err(bad(format!(
                    "collections[{i}].{what} {:?}: must be at most {MAX_NAME_CHARS} characters \
                     (an id or alias at least one), without control or format characters (Unicode Cc, Cf)",
                    t.chars().take(200).collect::<String>()
                )));
            }
        }
    }
    if node_key::unhex32(&inv.secret).is_none() {
        return Err(bad(
            "secret: expected 64 hex digits (32 random bytes)".into()
        ));
    }
    if inv.collections.is_empty() {
        return Err(bad("collections: the invitation offers none".into()));
    }
    if inv.identity.get("type").and_then(Value::as_str) != Some("identity") {
        return Err(bad("identity: not a STIX identity object".into()));
    }
    if let Err(v) = concord_stix::validate_object(&inv.identity) {
        let v: Vec<String> = v.iter().map(ToString::to_string).collect();
        return Err(bad(format!(
            "identity: not valid STIX 2.1: {}",
            v.join("; ")
        )));
    }
    check_identity_texts("identity", &inv.identity).map_err(bad)?;
    match (&inv.tls_pin_sha256, &inv.tls_certificate) {
        (Some(pin), Some(pem)) => {
            if first_certificate_der(pem.as_bytes())
                .map(|d| certificate_pin(&d))
                .as_deref()
                != Some(pin.as_str())
            {
                return Err(bad(
                    "tls_certificate: its SHA-256 is not tls_pin_sha256".into()
                ));
            }
        }
        (None, None) => {}
        _ => {
            return Err(bad(
                "tls_pin_sha256 and tls_certificate: give both or neither".into(),
            ));
        }
    }
    let expires = concord_stix::Timestamp::parse(&inv.expires)
        .map_err(|e| bad(format!("expires {:?}: {e}", inv.expires)))?;
    if expires.unix_nanos() <= now_ns {
        return Err(JoinError::Expired {
            expires: inv.expires.clone(),
        });
    }
    Ok(inv)
}

/// The signed form of a request.
pub fn sign_request(key: &NodeKey, request: JoinRequest) -> JoinRequestFile {
    let signature = sign(key, REQUEST_DOMAIN, &request);
    JoinRequestFile { request, signature }
}

/// Reads a join request and verifies its signature by the key it names (what the inviting
/// node records as the joining node's key). Errors: malformed, tampered.
pub fn read_request(text: &[u8]) -> Result<JoinRequest, JoinError> {
    let what = "join request";
    let file: JoinRequestFile = serde_json::from_slice(text).map_err(|e| JoinError::Malformed {
        what,
        message: e.to_string(),
    })?;
    let r = file.request;
    if r.kind != REQUEST_TYPE || r.version != VERSION {
        return Err(JoinError::Malformed {
            what,
            message: format!(
                "type {:?} version {}: expected {REQUEST_TYPE:?} version {VERSION}",
                r.kind, r.version
            ),
        });
    }
    verify(what, &r.node_key, REQUEST_DOMAIN, &r, &file.signature)?;
    Ok(r)
}

/// The SHA-256 (hex) of a request's canonical bytes, which the answer names.
pub fn request_digest(request: &JoinRequest) -> String {
    sha256_hex(&canonical(
        &serde_json::to_value(request).unwrap_or(Value::Null),
    ))
}

/// The signed form of an answer.
pub fn sign_answer(key: &NodeKey, answer: JoinAnswer) -> JoinAnswerFile {
    let signature = sign(key, ANSWER_DOMAIN, &answer);
    JoinAnswerFile { answer, signature }
}

/// How many times [`exchange`] sends the request when no answer comes back.
pub const EXCHANGE_ATTEMPTS: u32 = 3;

/// Sends `request` to the inviting node of `invitation` (`POST` [`JOIN_PATH`]) and verifies
/// its answer: signed by the key the invitation names (else [`JoinError::Foreign`]), bound
/// to this request, `joined` (else [`JoinError::Refused`] with the inviting node's reason).
/// TLS: the server must present exactly the certificate the invitation pins
/// ([`Invitation::tls_pin_sha256`]).
///
/// When no answer comes back (connection refused or dropped, timeout, an answer cut off),
/// the same signed request is sent again, up to [`EXCHANGE_ATTEMPTS`] times in all: the
/// inviting node answers a retry of a request it admitted with the answer it gave it (by the
/// request's digest), so an answer lost on the way after the inviting node committed still
/// reaches this node, and nothing is admitted twice.
///
/// The invitation's URL came from outside: the connection goes only to addresses
/// `outbound` allows, on what its host resolves to then ([`JoinError::Transport`] naming
/// the URL, the address and the rule otherwise, not retried); a redirect is not followed.
pub fn exchange(
    invitation: &Invitation,
    request: &JoinRequestFile,
    timeout: Duration,
    outbound: &std::sync::Arc<crate::outbound::Outbound>,
) -> Result<JoinAnswer, JoinError> {
    let url = format!("{}{JOIN_PATH}", invitation.url.trim_end_matches('/'));
    let transport = |message: String| JoinError::Transport {
        url: url.clone(),
        message,
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout));
    // TLS: exactly the pinned certificate, no CA (the invitation is signed by the key that
    // the answer must be signed by too).
    let agent: ureq::Agent = match &invitation.tls_pin_sha256 {
        Some(pin) => crate::pin::pinned_agent(
            crate::outbound::Outbound::config(config),
            pin,
            None,
            outbound.resolver(),
        )
        .map_err(&transport)?,
        None => outbound.agent(config),
    };
    let body = serde_json::to_string(request).map_err(|e| transport(e.to_string()))?;
    // `Err((message, refused))`: a connection the outbound rule refused is not retried.
    let once = || -> Result<(u16, String), (String, bool)> {
        let mut resp = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(body.as_str())
            .map_err(|e| match crate::outbound::refused_in(&e) {
                Some(r) => (r.to_string(), true),
                None => (e.to_string(), false),
            })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES as u64)
            .read_to_string()
            .map_err(|e| (format!("HTTP {status}: {e}"), false))?;
        Ok((status, text))
    };
    let mut wait = Duration::from_millis(250);
    let mut attempt = 1;
    let (status, text) = loop {
        match once() {
            Ok(got) => break got,
            Err((e, true)) => return Err(transport(e)),
            Err((e, _)) if attempt >= EXCHANGE_ATTEMPTS => {
                return Err(transport(format!("{e} (after {attempt} attempts)")));
            }
            Err((e, _)) => {
                tracing::debug!(attempt, %url, error = %e, "join exchange: no answer, sending the request again");
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
        }
    };
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        transport(format!(
            "HTTP {status}: not JSON: {}",
            printable(&text, 200)
        ))
    })?;
    if value.get("answer").is_none() {
        // An unsigned refusal: nothing was proven on either side.
        let reason = value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), |r| printable(r, 1000));
        return Err(JoinError::Refused(reason));
    }
    let file: JoinAnswerFile = serde_json::from_value(value).map_err(|e| JoinError::Malformed {
        what: "join answer",
        message: e.to_string(),
    })?;
    let a = file.answer;
    let foreign = |holds: String| JoinError::Foreign {
        url: invitation.url.clone(),
        named: invitation.node_key.clone(),
        holds,
    };
    if a.node_key != invitation.node_key {
        return Err(foreign(format!("node key {}", a.node_key)));
    }
    match verify(
        "join answer",
        &a.node_key,
        ANSWER_DOMAIN,
        &a,
        &file.signature,
    ) {
        Ok(()) => {}
        Err(JoinError::Tampered { .. }) => {
            return Err(foreign("an answer its key did not sign".into()));
        }
        Err(e) => return Err(e),
    }
    if a.kind != ANSWER_TYPE || a.version != VERSION || a.invitation != invitation.id {
        return Err(JoinError::Malformed {
            what: "join answer",
            message: format!(
                "type {:?} version {} invitation {:?}",
                a.kind, a.version, a.invitation
            ),
        });
    }
    if a.request_sha256 != request_digest(&request.request) {
        return Err(JoinError::Malformed {
            what: "join answer",
            message: "request_sha256: the answer is not to this request".into(),
        });
    }
    if a.outcome != "joined" {
        return Err(JoinError::Refused(a.reason.as_deref().map_or_else(
            || format!("outcome {:?}", a.outcome),
            |r| printable(r, 1000),
        )));
    }
    // What the joining node records and prints of the answer: the name it is known by
    // there and the preview's texts, held to the rule of texts from the other side.
    let bad_text = |field: String, t: &str| JoinError::Malformed {
        what: "join answer",
        message: format!(
            "{field} {:?}: must be 1 to {MAX_NAME_CHARS} characters without control or \
             format characters (Unicode Cc, Cf)",
            printable(t, 200)
        ),
    };
    let fine = |t: &str| {
        !t.is_empty()
            && t.chars().count() <= MAX_NAME_CHARS
            && !t.chars().any(|c| hostile_char(c, false))
    };
    if !fine(&a.partner) {
        return Err(bad_text("partner".into(), &a.partner));
    }
    for (i, f) in a.serve.iter().enumerate() {
        for (what, t) in [
            ("collection", &f.collection),
            ("title", &f.title),
            ("direction", &f.direction),
        ] {
            if !(fine(t) || (what == "title" && t.is_empty())) {
                return Err(bad_text(format!("serve[{i}].{what}"), t));
            }
        }
    }
    if a.api_key.is_none() {
        return Err(JoinError::Malformed {
            what: "join answer",
            message: "api_key: missing in a joined answer".into(),
        });
    }
    if let Some(pin) = &a.client_cert_sha256
        && !is_pin(pin)
    {
        return Err(JoinError::Malformed {
            what: "join answer",
            message: format!(
                "client_cert_sha256 {:?}: expected 64 lower-case hex digits (a SHA-256)",
                printable(pin, 100)
            ),
        });
    }
    Ok(a)
}

/// The partner's profile as the egress policy sees it.
pub fn profile_of(p: &concord_store::Partner) -> PartnerProfile {
    PartnerProfile {
        name: p.name.clone(),
        jurisdiction: p.jurisdiction.clone(),
        groups: p.groups.clone(),
    }
}

/// What the egress door lets `partner` receive of `collection_id` when it pulls it whole
/// (TAXII 2.1 §5.4 with `match[version]=all`, as a sync pull asks): object versions sent
/// and withheld, decided without recording anything (nothing leaves).
pub fn serve_preview(
    store: &dyn Store,
    egress: &Egress,
    partner: &PartnerProfile,
    collection_id: &str,
) -> Result<(u64, u64), JoinError> {
    let filter = ObjectFilter {
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    count_decided(store, egress, partner, collection_id, &filter, |_| Ok(true))
}

/// What the next push of `mapping` to `peer` sends, through the egress door for
/// `partner`: the versions after the mapping's push cursor, minus those received from the
/// peer (no echoes), as the sync round selects them (spec version 2.1, every version);
/// sent and withheld. The peer may already hold some, which the round then skips.
pub fn push_preview(
    store: &dyn Store,
    egress: &Egress,
    peer: &Peer,
    mapping: &Mapping,
    partner: &PartnerProfile,
) -> Result<(u64, u64), JoinError> {
    let filter = ObjectFilter {
        versions: vec![VersionSelector::All],
        spec_versions: vec!["2.1".into()],
        ..ObjectFilter::default()
    };
    let after = store
        .setting(&crate::peer::cursor_key(&peer.name, mapping, "push"))?
        .and_then(|t| crate::round::cursor_from_json(&t));
    let pushed = peer
        .partner
        .as_deref()
        .map(concord_store::partner_provenance);
    count_decided_after(
        store,
        egress,
        partner,
        &mapping.local,
        &filter,
        after,
        |e| {
            let version = e.version_text.clone().unwrap_or_default();
            Ok(!store
                .received_from(&e.id, Some(&version))?
                .iter()
                .any(|p| *p == peer.name || Some(p) == pushed.as_ref()))
        },
    )
}

fn count_decided(
    store: &dyn Store,
    egress: &Egress,
    partner: &PartnerProfile,
    collection_id: &str,
    filter: &ObjectFilter,
    keep: impl FnMut(&concord_store::Entry) -> Result<bool, concord_store::StoreError>,
) -> Result<(u64, u64), JoinError> {
    count_decided_after(store, egress, partner, collection_id, filter, None, keep)
}

fn count_decided_after(
    store: &dyn Store,
    egress: &Egress,
    partner: &PartnerProfile,
    collection_id: &str,
    filter: &ObjectFilter,
    mut after: Option<concord_store::Cursor>,
    mut keep: impl FnMut(&concord_store::Entry) -> Result<bool, concord_store::StoreError>,
) -> Result<(u64, u64), JoinError> {
    let (mut sent, mut withheld) = (0u64, 0u64);
    loop {
        let page = store.entries(
            collection_id,
            filter,
            &concord_store::PageRequest {
                limit: 1000,
                after: after.take(),
            },
            true,
        )?;
        after = page.entries.last().map(concord_store::Entry::cursor);
        let mut chosen = Vec::with_capacity(page.entries.len());
        for e in page.entries {
            if keep(&e)? {
                chosen.push(e);
            }
        }
        for d in egress.decide_unrecorded(partner, collection_id, &chosen)? {
            if d.is_some() {
                sent += 1;
            } else {
                withheld += 1;
            }
        }
        if !page.more {
            return Ok((sent, withheld));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(key: &NodeKey) -> Invitation {
        Invitation {
            kind: INVITATION_TYPE.into(),
            version: VERSION,
            id: "3f1c2b9e-0d4a-4c55-9a77-2f3e1d0c9b8a".into(),
            partner: "cert-b".into(),
            partner_jurisdiction: "FR".into(),
            groups: vec![],
            identity: node_identity(
                "identity--0b6e3a1c-1111-4a2b-8c3d-4e5f60718293",
                "2026-01-01T00:00:00.000Z",
                "CERT A",
                "CERT A <cert@a.example>",
            ),
            url: "http://127.0.0.1:1".into(),
            api_root: "/concord/".into(),
            tls_pin_sha256: None,
            tls_certificate: None,
            jurisdiction: Some("DE".into()),
            collections: vec![Offered {
                id: "c1".into(),
                alias: Some("intel".into()),
                title: "intel".into(),
                read: true,
                write: false,
            }],
            node_key: key.public_hex(),
            created: "2026-01-01T00:00:00.000Z".into(),
            expires: "2099-01-01T00:00:00.000Z".into(),
            secret: "ab".repeat(32),
        }
    }

    #[test]
    fn a_signed_invitation_reads_back_and_any_edit_is_tampering() {
        let key = NodeKey::from_seed(&[7; 32]);
        let file = sign_invitation(&key, invitation(&key));
        let text = serde_json::to_string_pretty(&file).unwrap();
        assert_eq!(read_invitation(&text, 0).unwrap(), file.invitation);
        // Member order and layout do not matter (canonical bytes).
        let compact = serde_json::to_string(&serde_json::to_value(&file).unwrap()).unwrap();
        read_invitation(&compact, 0).unwrap();
        // An edited grant is tampering.
        let edited = text.replace("\"write\": false", "\"write\": true");
        assert_ne!(edited, text);
        let e = read_invitation(&edited, 0).unwrap_err();
        assert!(matches!(e, JoinError::Tampered { .. }), "{e}");
        // Expired.
        let e = read_invitation(&text, i64::MAX).unwrap_err();
        assert!(e.to_string().starts_with("expired invitation"), "{e}");
        // Malformed: an unknown member, a wrong type, not JSON.
        let e = read_invitation(&text.replacen("{", "{\"x\": 1,", 1), 0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("malformed invitation: unknown field"),
            "{e}"
        );
        let e = read_invitation("[]", 0).unwrap_err();
        assert!(e.to_string().starts_with("malformed invitation"), "{e}");
        let mut other = invitation(&key);
        other.kind = "something-else".into();
        let text = serde_json::to_string(&sign_invitation(&key, other)).unwrap();
        let e = read_invitation(&text, 0).unwrap_err();
        assert!(e.to_string().contains("this node reads"), "{e}");
    }

    /// Attack by the inviting side: an invitation signed by the key it names (so not
    /// tampered) whose texts would reach the joining node's peer record, collections,
    /// terminal and pages is refused as malformed, naming the field.
    #[test]
    fn hostile_texts_in_an_invitation_are_refused_naming_the_field() {
        let key = NodeKey::from_seed(&[7; 32]);
        type Edit = Box<dyn Fn(&mut Invitation)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("url", Box::new(|i| i.url = "http://a.example\nX: 1".into())),
            (
                "url",
                Box::new(|i| i.url = "https://a.example/#frag".into()),
            ),
            (
                "api_root",
                Box::new(|i| i.api_root = "/../../api/v1/".into()),
            ),
            ("api_root", Box::new(|i| i.api_root = "/".into())),
            (
                "collections[0].title",
                Box::new(|i| i.collections[0].title = "intel\u{1b}[2J".into()),
            ),
            (
                "collections[0].alias",
                Box::new(|i| i.collections[0].alias = Some("in\u{202e}tel".into())),
            ),
            (
                "identity.name",
                Box::new(|i| i.identity["name"] = Value::String("CERT\u{200b}A".into())),
            ),
        ];
        for (field, edit) in cases {
            let mut inv = invitation(&key);
            edit(&mut inv);
            let text = serde_json::to_string(&sign_invitation(&key, inv)).unwrap();
            let e = read_invitation(&text, 0).unwrap_err().to_string();
            assert!(e.starts_with("malformed invitation"), "{field}: {e}");
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    /// A one-connection HTTP server on loopback that answers the join request it reads
    /// with `answer(request)` (the JSON body); its URL.
    fn hostile_inviter(
        answer: impl FnOnce(&JoinRequestFile) -> Value + Send + 'static,
    ) -> (String, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let request: JoinRequestFile = serde_json::from_slice(&body).unwrap();
            let text = answer(&request).to_string();
            let mut conn = conn;
            write!(
                conn,
                "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .unwrap();
        });
        (url, handle)
    }

    /// Attack by the inviting side's server: its answer's texts (an unsigned error, a
    /// signed refusal's reason, the name and preview of a joined answer) would reach the
    /// joining operator's terminal. Free texts come back with control and format
    /// characters escaped; recorded names with them are a malformed answer.
    #[test]
    fn hostile_texts_in_an_answer_reach_no_terminal() {
        let key = NodeKey::from_seed(&[7; 32]);
        let joiner = NodeKey::from_seed(&[8; 32]);
        let exchange_with = |answer: Box<dyn FnOnce(&JoinRequestFile) -> Value + Send>| {
            let (url, handle) = hostile_inviter(answer);
            let mut inv = invitation(&key);
            inv.url = url;
            let request = sign_request(
                &joiner,
                JoinRequest {
                    kind: REQUEST_TYPE.into(),
                    version: VERSION,
                    invitation: inv.id.clone(),
                    secret: inv.secret.clone(),
                    inviter_key: inv.node_key.clone(),
                    identity: inv.identity.clone(),
                    node_key: joiner.public_hex(),
                    jurisdiction: None,
                    url: None,
                    api_root: None,
                    api_key: None,
                    pull: vec![],
                    push: vec![],
                    agreement: None,
                    tls_pin_sha256: None,
                    client_cert_sha256: None,
                },
            );
            // The hostile inviter listens on loopback: allowed here explicitly.
            let loopback =
                std::sync::Arc::new(crate::Outbound::allowing(&["127.0.0.0/8"]).unwrap());
            let got = exchange(&inv, &request, Duration::from_secs(10), &loopback);
            handle.join().unwrap();
            got.map(|_| ()).unwrap_err().to_string()
        };
        let escape = "\u{1b}]0;owned\u{7}";
        let e = exchange_with(Box::new(move |_| serde_json::json!({ "error": escape })));
        assert!(
            e.contains("\\u{1b}]0;owned\\u{7}") && !e.contains('\u{1b}'),
            "{e}"
        );
        let signed = |edit: fn(&mut JoinAnswer)| {
            move |r: &JoinRequestFile| {
                let key = NodeKey::from_seed(&[7; 32]);
                let mut a = JoinAnswer {
                    kind: ANSWER_TYPE.into(),
                    version: VERSION,
                    invitation: r.request.invitation.clone(),
                    request_sha256: request_digest(&r.request),
                    outcome: "refused".into(),
                    reason: Some("used \u{1b}[2J".into()),
                    partner: "cert-b".into(),
                    api_key: None,
                    node_key: key.public_hex(),
                    serve: vec![],
                    agreement: None,
                    client_cert_sha256: None,
                };
                edit(&mut a);
                serde_json::to_value(sign_answer(&key, a)).unwrap()
            }
        };
        let e = exchange_with(Box::new(signed(|_| {})));
        assert!(
            e.contains("used \\u{1b}[2J") && !e.contains('\u{1b}'),
            "{e}"
        );
        let e = exchange_with(Box::new(signed(|a| {
            a.outcome = "joined".into();
            a.reason = None;
            a.api_key = Some("k".into());
            a.serve = vec![FlowCount {
                collection: "c1".into(),
                title: "intel\u{1b}[2J".into(),
                direction: "serve".into(),
                objects: 1,
                withheld: 0,
            }];
        })));
        assert!(e.contains("serve[0].title") && !e.contains('\u{1b}'), "{e}");
        let e = exchange_with(Box::new(signed(|a| {
            a.outcome = "joined".into();
            a.reason = None;
            a.api_key = Some("k".into());
            a.partner = "cert\u{202e}b".into();
        })));
        assert!(e.contains("malformed join answer: partner"), "{e}");
    }

    #[test]
    fn the_identity_carries_the_contact_extension() {
        let key = NodeKey::from_seed(&[7; 32]);
        let id = &invitation(&key).identity;
        let ext = &id["extensions"][CONTACT_EXTENSION];
        assert_eq!(ext["extension_type"], "property-extension");
        assert_eq!(
            ext["email_addresses"][0]["email_address_ref"],
            email_addr_id("cert@a.example")
        );
        assert_eq!(id["contact_information"], "CERT A <cert@a.example>");
        // The identity is valid STIX 2.1.
        concord_stix::validate_object(id).unwrap();
        // No e-mail address in the contact: no email_addresses.
        let id = node_identity(
            "identity--0b6e3a1c-1111-4a2b-8c3d-4e5f60718293",
            "2026-01-01T00:00:00Z",
            "X",
            "+49 30 1234",
        );
        assert!(
            id["extensions"][CONTACT_EXTENSION]
                .get("email_addresses")
                .is_none()
        );
    }

    #[test]
    fn email_addr_ids_are_deterministic() {
        // STIX 2.1 §2.9 example of an email-addr id contributing property.
        assert_eq!(email_addr_id("a@b.example"), email_addr_id("a@b.example"));
        assert_ne!(email_addr_id("a@b.example"), email_addr_id("c@b.example"));
        assert!(email_addr_id("a@b.example").starts_with("email-addr--"));
    }
}
