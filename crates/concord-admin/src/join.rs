//! Invite and join (issue 19, item 1): both sides of the exchange over a store.
//!
//! - [`invite`] (`concord invite`): a signed, single-use invitation; the store keeps its
//!   offer and the SHA-256 of its secret ([`concord_store::InvitationRecord`]).
//! - [`answer_join`] and [`router`] (`POST /concord/join/` on the inviting node): checks the
//!   secret in constant time, then consumes the invitation and creates the joining node's
//!   partner and peer in one transaction ([`Store::consume_invitation`]), and answers,
//!   signed by the node key, with the API key made for the joining node and what this node
//!   will serve it (the preview, counted through the egress door).
//! - [`join`] (`concord join`): reads and verifies the invitation, makes the inviting node's
//!   partner key, sends the one request, verifies the answer against the key the
//!   invitation names, and only then creates the inviting node's partner and peer, in one
//!   transaction ([`Store::admit_partner`]).
//! - [`preview`] (`concord partner preview`): what this node would send a partner.
//!
//! Nothing is created on either side when the exchange fails: the inviting node writes
//! only in the transaction that consumes the invitation, and the joining node only after
//! a verified `joined` answer. A joined answer lost on the way is not lost: the inviting
//! node keeps it, sealed under a key derived from the invitation's secret ([`seal`]), with
//! the digest of the request it answered, and answers a retry of that same signed request
//! (which the joining node sends when no answer came back) with it again, while the
//! invitation is valid; any other request with a used invitation is refused "used".
//!
//! `join --mtls` (issue 19): each node that will call the other makes a self-signed client
//! certificate ([`doc::new_client_certificate`]; its key stays in the node's
//! `peer_files_dir`, mode 0600), sends its pin in its signed message, and keeps the other's
//! pin with the other's partner (`client_cert_sha256`), to which the server then binds that
//! partner's API key (`concord_server::mtls`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use concord_coordination::release;
use concord_egress::Egress;
use concord_policy::egress::PartnerProfile;
use concord_server::AppState;
use concord_store::node_key::NodeKey;
use concord_store::{Admission, InvitationRecord, Partner, PartnerDetails, Store};
use concord_sync::join::{
    self as doc, FlowCount, Invitation, InvitationFile, JoinAnswer, JoinError, JoinRequest, Offered,
};
use concord_sync::{Mapping, Peer, PeerAuth, TlsFiles};

use crate::ops::{AdminError, PeerFiles, Result};

/// What a node says about itself in invitations and joins: from its configuration and
/// key file (only the binary reads them).
#[derive(Clone)]
pub struct NodeSelf {
    /// The node key (what signs invitations and answers).
    pub key: Arc<NodeKey>,
    /// `title` of concord.toml: the identity's name.
    pub title: String,
    /// `contact` of concord.toml: the identity's contact information.
    pub contact: String,
    /// `public_url` of concord.toml: the base URL partners reach this node at; `None` when
    /// not set (then `concord invite` needs `--url`, and a joining node is not reachable).
    pub public_url: Option<String>,
    /// The API root path, `/concord/`.
    pub api_root: String,
    /// The node's TLS certificate (PEM of the first certificate of `tls_cert`), when it
    /// serves TLS: invitations carry it and its pin.
    pub tls_certificate: Option<String>,
    /// The policy's jurisdiction.
    pub jurisdiction: Option<String>,
}

impl std::fmt::Debug for NodeSelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSelf")
            .field("title", &self.title)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The setting that holds the node's identity id and creation time (`{"id", "created"}`):
/// one identity per node, the same in every invitation and join.
const IDENTITY_SETTING: &str = "node/identity";

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

fn rfc3339(ns: i64) -> String {
    concord_stix::Timestamp::from_unix_nanos(ns, 3).to_string()
}

/// The agreement document this node issues to `partner` (issue 19, item 5), as a join
/// message carries it: the same signed document `GET {api-root}/agreement/` serves.
fn agreement_for(egress: &Egress, key: &NodeKey, partner: &PartnerProfile, now: i64) -> Value {
    let doc =
        concord_egress::agreement::build_document(egress.policy(), partner, key, &rfc3339(now));
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The agreement document a join message carries, verified against the sender's node key
/// (`key`, 64 hex digits): what is kept as received from it. `None` when the message
/// carries none (a node from before agreements). Errors: the reason, naming the document.
fn agreement_received(
    document: Option<&Value>,
    key: &str,
    now: i64,
) -> std::result::Result<Option<concord_egress::agreement::Received>, String> {
    let Some(document) = document else {
        return Ok(None);
    };
    let text = document.to_string();
    let pinned = concord_store::node_key::unhex32(key);
    let statement = concord_egress::agreement::verify_document(&text, pinned)?;
    Ok(Some(concord_egress::agreement::Received {
        document: text,
        statement,
        fetched: rfc3339(now),
    }))
}

/// Keeps the agreement exchanged at join: `received` (the other node's, for its peer
/// `peer` and partner `partner`) and that the partner now holds `ours` (its version).
fn keep_agreements(
    store: &dyn Store,
    peer: &str,
    partner: &str,
    received: Option<&concord_egress::agreement::Received>,
    ours: &Value,
) -> std::result::Result<(), concord_store::StoreError> {
    if let Some(r) = received {
        concord_egress::agreement::store_received(store, peer, r)?;
        concord_egress::agreement::store_received_for_partner(store, partner, r)?;
    }
    let version = ours
        .get("signed")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<concord_egress::agreement::Statement>(s).ok())
        .and_then(|s| s.version);
    concord_egress::agreement::record_fetched(store, partner, version.as_deref())
}

/// The node's STIX identity ([`doc::node_identity`]), its id made once and kept.
pub fn identity(store: &dyn Store, me: &NodeSelf) -> Result<Value> {
    let fresh = serde_json::json!({
        "id": format!("identity--{}", uuid::Uuid::new_v4()),
        "created": rfc3339(now_ns()),
    })
    .to_string();
    let kept: Value = serde_json::from_str(&store.setting_or_insert(IDENTITY_SETTING, &fresh)?)
        .map_err(|e| AdminError::Internal(format!("setting {IDENTITY_SETTING}: {e}")))?;
    let field = |k: &str| kept.get(k).and_then(Value::as_str).unwrap_or_default();
    Ok(doc::node_identity(
        field("id"),
        field("created"),
        &me.title,
        &me.contact,
    ))
}

/// An invitation to make (`concord invite`).
#[derive(Clone, Debug, Default)]
pub struct NewInvitation {
    /// The name the joining organisation gets here (the partner name rule).
    pub partner: String,
    /// Its jurisdiction (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// Collections (alias or id) it may read.
    pub read: Vec<String>,
    /// Collections (alias or id) it may write.
    pub write: Vec<String>,
    /// Sharing groups it joins.
    pub groups: Vec<String>,
    /// Seconds the invitation admits a join: 60 to 90 days.
    pub expires_secs: u64,
    /// The URL partners reach this node at; `None`: [`NodeSelf::public_url`].
    pub url: Option<String>,
}

/// Longest validity of an invitation: 90 days.
pub const MAX_INVITATION_SECS: u64 = 90 * 86_400;

/// Makes an invitation (`concord invite`): checks the partner name is free, the
/// jurisdiction, the collections and the URL; records it (its offer and the SHA-256 of its
/// secret) and returns the signed file. Errors: invalid (naming the option and the rule),
/// a collection not found, the name taken (conflict).
pub fn invite(store: &dyn Store, me: &NodeSelf, new: &NewInvitation) -> Result<InvitationFile> {
    crate::ops::check_partner_name(&new.partner)?;
    let partner_jurisdiction = crate::ops::jurisdiction_code(&new.jurisdiction)?;
    for g in &new.groups {
        crate::ops::directory::check_group_name(g)?;
    }
    if !(60..=MAX_INVITATION_SECS).contains(&new.expires_secs) {
        return Err(AdminError::Invalid(format!(
            "--expires: {} s; an invitation is valid from 1 minute to 90 days",
            new.expires_secs
        )));
    }
    taken(store, &new.partner)?;
    let url = new
        .url
        .clone()
        .or_else(|| me.public_url.clone())
        .ok_or_else(|| {
            AdminError::Invalid(
                "--url: give the URL partners reach this node at, or set public_url in \
                 concord.toml"
                    .into(),
            )
        })?;
    let url = url.trim_end_matches('/').to_owned();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['?', '#']) {
        return Err(AdminError::Invalid(format!(
            "--url {url:?}: must be http(s)://host[:port] (the base URL, without a path query)"
        )));
    }
    let mut offered: Vec<Offered> = Vec::new();
    for (names, write) in [(&new.read, false), (&new.write, true)] {
        for n in names {
            let c = store.collection(n)?.ok_or_else(|| {
                AdminError::NotFound(format!(
                    "no collection {n:?} (create it first: concord collection create {n})"
                ))
            })?;
            match offered.iter_mut().find(|o| o.id == c.id) {
                Some(o) if write => o.write = true,
                Some(o) => o.read = true,
                None => offered.push(Offered {
                    id: c.id,
                    alias: c.alias,
                    title: c.title,
                    read: !write,
                    write,
                }),
            }
        }
    }
    if offered.is_empty() {
        return Err(AdminError::Invalid(
            "--read/--write: offer at least one collection".into(),
        ));
    }
    let tls_pin_sha256 = match &me.tls_certificate {
        Some(pem) => Some(
            doc::first_certificate_der(pem.as_bytes())
                .map(|d| doc::certificate_pin(&d))
                .ok_or_else(|| AdminError::Internal("tls_cert: no PEM certificate".into()))?,
        ),
        None => None,
    };
    let created = now_ns();
    let expires =
        created.saturating_add(i64::try_from(new.expires_secs).unwrap_or(0) * 1_000_000_000);
    let secret = doc::new_secret().map_err(AdminError::Internal)?;
    let invitation = Invitation {
        kind: doc::INVITATION_TYPE.into(),
        version: doc::VERSION,
        id: uuid::Uuid::new_v4().to_string(),
        partner: new.partner.clone(),
        partner_jurisdiction,
        groups: new.groups.clone(),
        identity: identity(store, me)?,
        url,
        api_root: me.api_root.clone(),
        tls_pin_sha256,
        tls_certificate: me.tls_certificate.clone(),
        jurisdiction: me.jurisdiction.clone(),
        collections: offered,
        node_key: me.key.public_hex(),
        created: rfc3339(created),
        expires: rfc3339(expires),
        secret: secret.clone(),
    };
    let offer = serde_json::to_string(&Invitation {
        secret: String::new(),
        ..invitation.clone()
    })
    .map_err(|e| AdminError::Internal(e.to_string()))?;
    store.put_invitation(&InvitationRecord {
        id: invitation.id.clone(),
        partner: new.partner.clone(),
        secret_sha256: doc::secret_hash(&secret),
        created_ns: created,
        expires_ns: expires,
        used_ns: None,
        used_by: None,
        offer,
        request_sha256: None,
        answer: None,
    })?;
    Ok(doc::sign_invitation(&me.key, invitation))
}

/// A partner or peer of this name exists: conflict.
fn taken(store: &dyn Store, name: &str) -> Result<()> {
    if store.partners()?.iter().any(|p| p.name == name) {
        return Err(AdminError::Conflict(format!(
            "a partner named {name:?} already exists"
        )));
    }
    if concord_sync::load_peer(store, name).is_ok() {
        return Err(AdminError::Conflict(format!(
            "a peer named {name:?} already exists"
        )));
    }
    Ok(())
}

/// The peer's record as a setting (`peer/NAME`), for [`Store::admit_partner`].
fn peer_setting(peer: &Peer) -> Result<(String, String)> {
    let text = serde_json::to_string(peer).map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok((format!("peer/{}", peer.name), text))
}

// --- the inviting side -------------------------------------------------------------------

/// What [`answer_join`] needs beyond the store: the node itself, its egress door (for the
/// preview) and where the joining node's API key for it is written.
#[derive(Clone, Debug)]
pub struct JoinService {
    /// This node.
    pub me: NodeSelf,
    /// Where a joining node's API key (for this node's peer of it) is written:
    /// `peer_files_dir`.
    pub files: PeerFiles,
    /// `[outbound] allow`: where the joining node's URL may lead (this node's scheduler
    /// will request it). Its address is checked at the join without resolving a name (the
    /// refusal is answered to the joining node); a name, at each connection.
    pub outbound: Arc<concord_sync::Outbound>,
}

/// The setting that names who made invitation `id` (`user:NAME`, `operator`, as the audit
/// log names a person; written by `concord invite`): the requester of the four-eyes approval
/// a join under it opens. Kept outside the offer, which the invitation file carries to the
/// joining organisation.
pub fn requester_setting(id: &str) -> String {
    format!("invitation-requester:{id}")
}

/// The release rules a join is answered under (`[release]` of concord.toml and the active
/// policy): with `four_eyes`, a cross-border partner's read grants and groups that widen what
/// it receives are not given at the join but kept as a pending approval
/// ([`concord_coordination::release::split_new_partner`]).
#[derive(Clone, Debug)]
pub struct JoinRelease {
    /// `[release] four_eyes`.
    pub four_eyes: bool,
    /// The node's active policy.
    pub policy: Arc<concord_policy::actions::Policy>,
}

/// What a `joined` answer's `reason` says when the partner's read grants wait for a second
/// releaser: a constant, so that it tells the joining node nothing but that they wait.
pub const READS_AWAIT_APPROVAL: &str = "joined; the read grants and sharing groups offered \
    await a second releaser's approval on the inviting node (four-eyes release): nothing is \
    served until then, and the serve counts are what will flow once approved";

/// The answer to an unknown invitation id and to a wrong secret: the same status and body,
/// so that a caller without the secret learns nothing, not even whether the id exists.
const NOT_ACCEPTED: &str =
    "invitation not accepted: no such invitation, or the secret does not match";

/// SHA-256 of nothing in particular: what an unknown id's secret is compared with, so that
/// an unknown id and a wrong secret take the same path.
const DUMMY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The inviting node's answer to a join request `body` (`POST /concord/join/`): the HTTP
/// status and the JSON body.
///
/// - 400 `{"error"}`: not a join request, or its signature does not verify with the key
///   it names (nothing about any invitation is looked at);
/// - 403 `{"error": NOT_ACCEPTED}`: an unknown id or a wrong secret, alike;
/// - 409, a signed `refused` answer, once the secret is proven: the invitation was used or
///   expired, names another node key than this node's (foreign), or the request asks for
///   what it does not offer, or the name is taken here;
/// - 201, a signed `joined` answer: the partner and the peer were created with the
///   invitation consumed, in one transaction.
pub fn answer_join(
    store: &dyn Store,
    egress: &Egress,
    service: &JoinService,
    body: &[u8],
) -> (u16, Value) {
    answer_join_released(store, egress, service, None, body)
}

/// [`answer_join`] under the node's release rules: with `[release] four_eyes` and an offer
/// whose read grants or groups widen what the (cross-border) partner receives, the partner
/// is created without them and they are kept as a pending `partner` approval requested by
/// whoever made the invitation ([`requester_setting`]; `operator` when not recorded), as
/// `partner add` keeps them; the `joined` answer then says so in `reason`
/// ([`READS_AWAIT_APPROVAL`]) and its serve counts are what will flow once approved.
pub fn answer_join_released(
    store: &dyn Store,
    egress: &Egress,
    service: &JoinService,
    release: Option<&JoinRelease>,
    body: &[u8],
) -> (u16, Value) {
    match answer_join_gated(store, egress, service, release, body, |_| {
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(answer) => answer,
        Err(never) => match never {},
    }
}

/// [`answer_join_released`], where `gate(invitation id)` is asked once the request has
/// proven its invitation's secret, before anything else is done: its error (the
/// invitation's quota spent, [`router`]) is returned instead of an answer. A request that
/// does not prove the secret never reaches `gate`, so one who knows only an invitation's
/// id cannot spend what `gate` counts.
pub fn answer_join_gated<E>(
    store: &dyn Store,
    egress: &Egress,
    service: &JoinService,
    release: Option<&JoinRelease>,
    body: &[u8],
    gate: impl FnOnce(&str) -> std::result::Result<(), E>,
) -> std::result::Result<(u16, Value), E> {
    let error = |status: u16, m: String| Ok((status, serde_json::json!({ "error": m })));
    let request = match doc::read_request(body) {
        Ok(r) => r,
        Err(e) => return error(400, e.to_string()),
    };
    let record = match store.invitation(&request.invitation) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "join: reading the invitation");
            return error(500, "the node could not read its invitations".into());
        }
    };
    let given = doc::secret_hash(&request.secret);
    let expected = record
        .as_ref()
        .map_or(DUMMY_HASH, |r| r.secret_sha256.as_str());
    let proven: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    let Some(record) = record.filter(|_| proven) else {
        return error(403, NOT_ACCEPTED.into());
    };
    gate(&record.id)?;
    // The caller proved the secret: from here on it may learn why it is refused.
    let me = &service.me;
    // A retry of the request that consumed the invitation: the answer it was given.
    if let Some(answer) = replay(&record, &request) {
        return Ok((201, answer));
    }
    let refuse = |reason: String| {
        let answer = JoinAnswer {
            kind: doc::ANSWER_TYPE.into(),
            version: doc::VERSION,
            invitation: record.id.clone(),
            request_sha256: doc::request_digest(&request),
            outcome: "refused".into(),
            reason: Some(reason),
            partner: record.partner.clone(),
            api_key: None,
            node_key: me.key.public_hex(),
            serve: vec![],
            agreement: None,
            client_cert_sha256: None,
        };
        (
            409,
            serde_json::to_value(doc::sign_answer(&me.key, answer)).unwrap_or(Value::Null),
        )
    };
    match answer_proven(store, egress, service, release, &request, &record) {
        Ok(answer) => Ok((201, answer)),
        Err(Refusal::Refused(reason)) => Ok(refuse(reason)),
        Err(Refusal::Failed(e)) => {
            tracing::error!(error = %e, "join");
            error(500, format!("the node failed: {e}"))
        }
    }
}

/// The key an answer is sealed under: SHA-256 of a domain label and the invitation's
/// secret. The node keeps only SHA-256 of the secret alone, from which this key cannot be
/// computed: the stored answer is readable only by whoever holds the secret, the joining
/// node retrying.
fn answer_key(secret: &str) -> chacha20poly1305::Key {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"concord join answer key v1\n");
    h.update(secret.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    digest.into()
}

/// Seals the signed answer `answer` (its JSON text) for a retry of the request whose digest
/// is `request_sha256` (XChaCha20-Poly1305, random nonce; the invitation id and the digest
/// are authenticated with it): hex of nonce and ciphertext.
pub fn seal(secret: &str, invitation: &str, request_sha256: &str, answer: &str) -> Result<String> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|e| AdminError::Internal(format!("no randomness: {e}")))?;
    let aad = format!("{invitation}\n{request_sha256}");
    let sealed = chacha20poly1305::XChaCha20Poly1305::new(&answer_key(secret))
        .encrypt(
            chacha20poly1305::XNonce::from_slice(&nonce),
            Payload {
                msg: answer.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| AdminError::Internal("sealing the join answer failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(concord_store::node_key::hex(&out))
}

/// Opens what [`seal`] made: the answer's JSON text, or `None` (another secret, invitation
/// or request, or a damaged record).
fn unseal(secret: &str, invitation: &str, request_sha256: &str, sealed: &str) -> Option<String> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    if !sealed.len().is_multiple_of(2) || sealed.len() < 2 * 24 {
        return None;
    }
    let bytes: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(sealed.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let (nonce, ciphertext) = bytes.split_at(24);
    let aad = format!("{invitation}\n{request_sha256}");
    let plain = chacha20poly1305::XChaCha20Poly1305::new(&answer_key(secret))
        .decrypt(
            chacha20poly1305::XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

/// The answer given to `request` before, when the invitation was consumed by this same
/// request (its digest) and is still within its validity: a retry after a lost answer.
fn replay(record: &InvitationRecord, request: &JoinRequest) -> Option<Value> {
    record.used_ns?;
    if record.expires_ns <= now_ns() {
        return None;
    }
    let digest = doc::request_digest(request);
    if record.request_sha256.as_deref() != Some(digest.as_str()) {
        return None;
    }
    let text = unseal(
        &request.secret,
        &record.id,
        &digest,
        record.answer.as_deref()?,
    )?;
    let answer = serde_json::from_str(&text).ok()?;
    tracing::info!(invitation = %record.id, "join: a retry of the admitted request, answered again");
    Some(answer)
}

enum Refusal {
    Refused(String),
    Failed(String),
}

impl From<AdminError> for Refusal {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(_) | AdminError::Internal(_) => Refusal::Failed(e.to_string()),
            _ => Refusal::Refused(e.to_string()),
        }
    }
}

impl From<concord_store::StoreError> for Refusal {
    fn from(e: concord_store::StoreError) -> Self {
        Refusal::Failed(e.to_string())
    }
}

fn answer_proven(
    store: &dyn Store,
    egress: &Egress,
    service: &JoinService,
    release: Option<&JoinRelease>,
    request: &JoinRequest,
    record: &InvitationRecord,
) -> std::result::Result<Value, Refusal> {
    let me = &service.me;
    let now = now_ns();
    if request.inviter_key != me.key.public_hex() {
        return Err(Refusal::Refused(format!(
            "foreign invitation: it names the node key {}, this node's is {}",
            request.inviter_key,
            me.key.public_hex()
        )));
    }
    if record.used_ns.is_some() {
        return Err(Refusal::Refused(format!(
            "used invitation: {} was used at {}; an invitation admits one join",
            record.id,
            rfc3339(record.used_ns.unwrap_or_default())
        )));
    }
    if record.expires_ns <= now {
        return Err(Refusal::Refused(format!(
            "expired invitation: {} expired at {}",
            record.id,
            rfc3339(record.expires_ns)
        )));
    }
    let offer: Invitation = serde_json::from_str(&record.offer)
        .map_err(|e| Refusal::Failed(format!("invitation {}: stored offer: {e}", record.id)))?;
    let offered = |id: &str, write: bool| {
        offer
            .collections
            .iter()
            .find(|c| c.id == id && if write { c.write } else { c.read })
    };
    for (ids, write) in [(&request.pull, false), (&request.push, true)] {
        for id in ids {
            if offered(id, write).is_none() {
                return Err(Refusal::Refused(format!(
                    "{} {id:?}: the invitation does not offer it for {}",
                    if write { "push" } else { "pull" },
                    if write { "writing" } else { "reading" }
                )));
            }
        }
    }
    if concord_store::node_key::unhex32(&request.node_key).is_none() {
        return Err(Refusal::Refused("node_key: expected 64 hex digits".into()));
    }
    // The agreement the joining node proposes, signed by the key it joins with.
    let theirs = agreement_received(request.agreement.as_ref(), &request.node_key, now)
        .map_err(|e| Refusal::Refused(format!("agreement: {e}")))?;
    if request.identity.get("type").and_then(Value::as_str) != Some("identity") {
        return Err(Refusal::Refused(
            "identity: not a STIX identity object".into(),
        ));
    }
    if let Err(violations) = concord_stix::validate_object(&request.identity) {
        return Err(Refusal::Refused(format!(
            "identity: not valid STIX 2.1: {}",
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    doc::check_identity_texts("identity", &request.identity).map_err(Refusal::Refused)?;
    // The identity id is the joining organisation's own: not this node's, nor one a
    // partner here already has (a shared directory or an attribution rule would then take
    // one organisation for another).
    let claimed = request.identity.get("id").and_then(Value::as_str);
    let own = identity(store, me)?;
    if claimed.is_some() && claimed == own.get("id").and_then(Value::as_str) {
        return Err(Refusal::Refused(
            "identity.id: it is the inviting node's own identity".into(),
        ));
    }
    if claimed.is_some()
        && store.partners()?.iter().any(|p| {
            p.details
                .identity
                .as_ref()
                .and_then(|i| i.get("id"))
                .and_then(Value::as_str)
                == claimed
        })
    {
        return Err(Refusal::Refused(
            "identity.id: a partner of the inviting node already has this identity".into(),
        ));
    }
    let url = request.url.clone().unwrap_or_default();
    if !url.is_empty() {
        doc::check_url("url", &url).map_err(Refusal::Refused)?;
        // The joining node's URL is requested by this node's scheduler (agreement,
        // pulls, pushes, sightings): not an address inside this node's network (blind
        // SSRF). Never resolved here: the refusal goes back to the joining node, which must
        // not learn what a name resolves to in this network.
        service
            .outbound
            .check_url_text(&url)
            .map_err(|e| Refusal::Refused(format!("url: {e}")))?;
        if let Some(root) = &request.api_root {
            doc::check_api_root("api_root", root).map_err(Refusal::Refused)?;
        }
    }
    // Mutual TLS (`join --mtls`): the joining node's client certificate, bound to its
    // partner here; over plain HTTP no certificate could be presented.
    if let Some(pin) = &request.client_cert_sha256 {
        if !doc::is_pin(pin) {
            return Err(Refusal::Refused(
                "client_cert_sha256: expected 64 lower-case hex digits (a SHA-256)".into(),
            ));
        }
        if me.tls_certificate.is_none() {
            return Err(Refusal::Refused(
                "--mtls: the inviting node serves plain HTTP (no tls_cert): a client \
                 certificate cannot be presented to it; join without --mtls"
                    .into(),
            ));
        }
        if store
            .partners()?
            .iter()
            .any(|p| p.details.client_cert_sha256.as_deref() == Some(pin.as_str()))
        {
            return Err(Refusal::Refused(
                "client_cert_sha256: a partner of the inviting node already presents this \
                 certificate; make a new one"
                    .into(),
            ));
        }
    }
    if let Some(pin) = &request.tls_pin_sha256
        && !doc::is_pin(pin)
    {
        return Err(Refusal::Refused(
            "tls_pin_sha256: expected 64 lower-case hex digits (a SHA-256)".into(),
        ));
    }
    let (api_key, key_id, key_hash) =
        concord_server::auth::new_api_key().map_err(Refusal::Failed)?;
    let ids = |write: bool| -> Vec<String> {
        offer
            .collections
            .iter()
            .filter(|c| if write { c.write } else { c.read })
            .map(|c| c.id.clone())
            .collect()
    };
    let partner = Partner {
        name: record.partner.clone(),
        jurisdiction: offer.partner_jurisdiction.clone(),
        groups: offer.groups.clone(),
        read: ids(false),
        write: ids(true),
        key_id: key_id.clone(),
        key_hash,
        created_ns: now,
        details: PartnerDetails {
            identity: Some(request.identity.clone()),
            node_key: Some(request.node_key.clone()),
            client_cert_sha256: request.client_cert_sha256.clone(),
            origin: Some(format!("invitation:{}", record.id)),
            updated_ns: now,
        },
    };
    // Four-eyes release: the reads and groups that widen what a cross-border partner
    // receives wait for a second releaser; the partner is admitted without them.
    let requester = match release {
        Some(j) if j.four_eyes => store
            .setting(&requester_setting(&record.id))?
            .unwrap_or_else(|| "operator".to_owned()),
        _ => String::new(),
    };
    let held = match release {
        Some(j) if j.four_eyes => {
            let r = join_release(store, j, &requester);
            release::split_new_partner(&r, &partner).map_err(|e| Refusal::Failed(e.to_string()))?
        }
        _ => None,
    };
    // Files of their own per attempt (the name, with the new key's random id, is hashed): a
    // join refused below, also one that loses a race for this invitation, never touches
    // the files of a peer that exists; they are removed when it is refused.
    let own = format!("{}/join/{}/{key_id}", record.partner, record.id);
    let mut written: Vec<String> = Vec::new();
    let result = (|| -> std::result::Result<(Admission, Value, Value), Refusal> {
        // The joining node's key for this node, kept in a file as every peer secret is;
        // only when it is reachable (it gave its URL).
        let auth = match (&request.api_key, url.is_empty()) {
            (Some(key), false) => {
                let file = service
                    .files
                    .write_secret_of("peer", "api_key", &own, "token", key)?;
                written.push(file.clone());
                PeerAuth::Token { file }
            }
            _ => PeerAuth::None,
        };
        // This node calls a reachable joining node: with `--mtls`, with a client
        // certificate of its own, whose pin the answer carries.
        let mut tls = TlsFiles {
            pin_sha256: request.tls_pin_sha256.clone().filter(|_| !url.is_empty()),
            ..TlsFiles::default()
        };
        let mut client_pin = None;
        if request.client_cert_sha256.is_some() && !url.is_empty() {
            let cert = doc::new_client_certificate(&me.title).map_err(Refusal::Failed)?;
            let cert_file = service.files.write_private_of(
                "peer",
                "client_cert",
                &own,
                "client-cert.pem",
                cert.cert_pem.as_bytes(),
            )?;
            written.push(cert_file.clone());
            let key_file = service.files.write_private_of(
                "peer",
                "client_key",
                &own,
                "client-key.pem",
                cert.key_pem.as_bytes(),
            )?;
            written.push(key_file.clone());
            tls.client_cert = Some(cert_file);
            tls.client_key = Some(key_file);
            client_pin = Some(cert.pin);
        }
        // This node's peer of the joining node: its node key (its packages import without
        // --signed-by), and its URL, key and certificates when it is reachable. No
        // mappings: the joining node pulls and pushes; `concord peer add` adds some later.
        let peer = Peer {
            name: record.partner.clone(),
            url: url.clone(),
            api_root: match (&request.api_root, url.is_empty()) {
                (Some(r), false) => format!("/{}/", r.trim_matches('/')),
                _ => String::new(),
            },
            mappings: vec![],
            auth,
            partner: Some(record.partner.clone()),
            interval_secs: 300,
            timeout_secs: 60,
            tls,
            node_key: Some(request.node_key.clone()),
        };
        // The answer is made before the invitation is consumed, so that it is kept, sealed,
        // in the same transaction (a retry of this request gets it again).
        // The preview: what this node will serve the new partner, through its egress door
        // (as asked: with four-eyes release, what will flow once its reads are approved).
        // Only what it will receive: a count of what the policy withholds from it would
        // tell the partner that objects it may not see exist (`concord partner preview`
        // counts them for this node's operator).
        let profile = doc::profile_of(&partner);
        // The agreements exchanged (issue 19, item 5): ours carried in the answer and held
        // by the joining node from now on.
        let ours = agreement_for(egress, &me.key, &profile, now);
        let mut serve = Vec::new();
        for id in &request.pull {
            let (objects, _withheld) = doc::serve_preview(store, egress, &profile, id)
                .map_err(|e| Refusal::Failed(e.to_string()))?;
            serve.push(FlowCount {
                collection: id.clone(),
                title: offered(id, false)
                    .map(|c| c.title.clone())
                    .unwrap_or_default(),
                direction: "serve".into(),
                objects,
                withheld: 0,
            });
        }
        let digest = doc::request_digest(request);
        let answer = JoinAnswer {
            kind: doc::ANSWER_TYPE.into(),
            version: doc::VERSION,
            invitation: record.id.clone(),
            request_sha256: digest.clone(),
            outcome: "joined".into(),
            reason: held.as_ref().map(|_| READS_AWAIT_APPROVAL.to_owned()),
            partner: record.partner.clone(),
            api_key: Some(api_key),
            node_key: me.key.public_hex(),
            serve,
            agreement: Some(ours.clone()),
            client_cert_sha256: client_pin,
        };
        let signed = serde_json::to_value(doc::sign_answer(&me.key, answer))
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        let sealed = seal(&request.secret, &record.id, &digest, &signed.to_string())?;
        let settings = [peer_setting(&peer)?];
        let used = concord_store::InvitationUse {
            now_ns: now,
            used_by: request.node_key.clone(),
            request_sha256: digest,
            answer: sealed,
        };
        let admitted = store.consume_invitation(
            &record.id,
            &used,
            held.as_ref().unwrap_or(&partner),
            &settings,
        )?;
        Ok((admitted, signed, ours))
    })();
    if !matches!(result, Ok((Admission::Admitted, _, _))) {
        // Nothing of the join stays: not even the files written for it.
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
    }
    let (admitted, signed, ours) = result?;
    match admitted {
        Admission::Admitted => {
            tracing::info!(
                invitation = %record.id,
                partner = %record.partner,
                node_key = %request.node_key,
                mtls = request.client_cert_sha256.is_some(),
                "join: partner and peer created"
            );
        }
        Admission::Used => {
            // The same request, sent again while this one was being answered, won: its
            // answer is this request's answer.
            if let Some(again) = store
                .invitation(&record.id)?
                .and_then(|r| replay(&r, request))
            {
                return Ok(again);
            }
            return Err(Refusal::Refused(format!(
                "used invitation: {} was used by another join; an invitation admits one",
                record.id
            )));
        }
        Admission::Expired => {
            return Err(Refusal::Refused(format!(
                "expired invitation: {}",
                record.id
            )));
        }
        Admission::Unknown => return Err(Refusal::Refused(NOT_ACCEPTED.into())),
        Admission::NameTaken(what) => {
            return Err(Refusal::Refused(format!(
                "{what} already exists on the inviting node; it must issue a new invitation \
                 under another name"
            )));
        }
    }
    // The approval that keeps the reads and groups, requested by the inviter (after the
    // admission: a refused join opens none). Should it fail, the partner stays without
    // them and receives nothing.
    if let (Some(j), Some(bare)) = (release, &held) {
        let r = join_release(store, j, &requester);
        if let Some(a) =
            release::hold_partner(&r, bare, &partner).map_err(|e| Refusal::Failed(e.to_string()))?
        {
            tracing::info!(
                invitation = %record.id,
                partner = %record.partner,
                approval = %a.id,
                "join: read grants and groups kept for four-eyes release"
            );
        }
    }
    // The joining node's agreement, kept as received from it; ours is held by it now.
    keep_agreements(
        store,
        &record.partner,
        &record.partner,
        theirs.as_ref(),
        &ours,
    )
    .map_err(|e| Refusal::Failed(e.to_string()))?;
    Ok(signed)
}

/// The release context of a join: the inviter as the one asking. An inviter that is no
/// named person (`operator`, an invitation made before four-eyes) still asks: the approval
/// it opens needs a named releaser other than it all the same.
fn join_release<'a>(
    store: &'a dyn Store,
    j: &'a JoinRelease,
    requester: &'a str,
) -> release::Release<'a> {
    release::Release {
        store,
        four_eyes: j.four_eyes,
        unnamed_persons: true,
        policy: &j.policy,
        person: requester,
    }
}

/// The join endpoint, `POST /concord/join/` ([`concord_server::JOIN_PATH`]): each attempt
/// counts, before its body is read, against the failure quota of its source
/// ([`concord_server::auth::Authenticator::charge_join`]: the bound on guessing a secret),
/// and an attempt that proves its invitation's secret against that invitation's quota
/// ([`concord_server::auth::Authenticator::charge_join_invitation`]; 429 with
/// `Retry-After` when either is spent). One who knows only an invitation's id (it is no
/// secret: audit entries, approvals, logs name it) spends its source's quota, never the
/// invitation's, so it cannot delay the real joiner (issue 20). The body is held to
/// `join_body_bytes` by the server's body layer, and the answer is [`answer_join`]'s.
pub fn router(state: AppState, service: JoinService) -> Router {
    let path = concord_server::JOIN_PATH;
    let route = axum::routing::post(join_endpoint);
    Router::new()
        .route(path, route.clone())
        .route(path.trim_end_matches('/'), route)
        .with_state((state, Arc::new(service)))
}

async fn join_endpoint(
    State((state, service)): State<(AppState, Arc<JoinService>)>,
    req: Request,
) -> Response {
    let source = concord_server::peer_ip(req.extensions());
    let bytes = match axum::body::to_bytes(req.into_body(), doc::MAX_DOCUMENT_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            if concord_server::is_too_large(&e) {
                return concord_server::too_large_named(
                    concord_server::JOIN_PATH,
                    "join_body_bytes",
                    doc::MAX_DOCUMENT_BYTES as u64,
                );
            }
            return json(400, serde_json::json!({ "error": format!("body: {e}") }));
        }
    };
    let authenticator = state.authenticator();
    if let Err(e) = authenticator.charge_join(source) {
        return concord_server::auth_error_response(&e);
    }
    let store = state.store();
    let egress = state.egress();
    let release = JoinRelease {
        four_eyes: state.four_eyes(),
        policy: state.policy(),
    };
    match tokio::task::spawn_blocking(move || {
        answer_join_gated(
            store.as_ref(),
            &egress,
            &service,
            Some(&release),
            &bytes,
            |id| authenticator.charge_join_invitation(id),
        )
    })
    .await
    {
        Ok(Ok((status, body))) => json(status, body),
        Ok(Err(e)) => concord_server::auth_error_response(&e),
        Err(e) => json(
            500,
            serde_json::json!({ "error": format!("worker failed: {e}") }),
        ),
    }
}

fn json(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

// --- the joining side --------------------------------------------------------------------

/// How to join (`concord join`).
#[derive(Clone, Debug, Default)]
pub struct JoinOptions {
    /// The inviting organisation's name here (its partner and peer); default its
    /// identity's name.
    pub name: Option<String>,
    /// Its jurisdiction as recorded here; default the invitation's.
    pub jurisdiction: Option<String>,
    /// `REMOTE[:LOCAL]`: offered collections to pull (id, alias or title) into local ones
    /// (alias or id; created when missing; default the remote alias). None and no `push`:
    /// every collection offered for reading, each into its alias.
    pub pull: Vec<String>,
    /// `LOCAL:REMOTE`: local collections to push into offered ones.
    pub push: Vec<String>,
    /// Seconds the exchange may take.
    pub timeout_secs: u64,
    /// `--mtls`: exchange client certificates (see the module); refused when either node
    /// serves plain HTTP.
    pub mtls: bool,
    /// `[outbound] allow`: where the invitation's URL may lead (checked, its name
    /// resolved, before the exchange, and at each connection). Default: public addresses
    /// only.
    pub outbound: Arc<concord_sync::Outbound>,
}

/// What a join made.
#[derive(Clone, Debug, Serialize)]
pub struct Joined {
    /// The inviting organisation's name here (partner and peer).
    pub partner: String,
    /// The invitation's id.
    pub invitation: String,
    /// This node's name as a partner of the inviting node.
    pub known_there_as: String,
    /// The inviting node's URL.
    pub url: String,
    /// Its node key.
    pub node_key: String,
    /// Local collections created for pulls (aliases).
    pub created_collections: Vec<String>,
    /// What will flow, per collection and direction: `push` (this node's egress door, for
    /// the new partner) and `serve` (the inviting node's door, from its answer).
    pub preview: Vec<FlowCount>,
    /// What the inviting node said with its `joined` answer (`reason`), control and format
    /// characters escaped: with four-eyes release there, that the read grants await a
    /// second releaser's approval, the serve counts being what will flow once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a join failed: the exchange's reason ([`JoinError`]: malformed, tampered, expired,
/// foreign, refused), or a local rule.
#[derive(Debug, thiserror::Error)]
pub enum JoinFailure {
    /// The invitation or the exchange.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A local rule or the store.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<concord_store::StoreError> for JoinFailure {
    fn from(e: concord_store::StoreError) -> Self {
        JoinFailure::Admin(AdminError::from(e))
    }
}

/// Joins with the invitation `text` (`concord join`): see the module. `files`: where the
/// inviting node's API key (and certificate) are written (`peer_files_dir`).
pub fn join(
    store: &dyn Store,
    egress: &Egress,
    me: &NodeSelf,
    files: &PeerFiles,
    text: &str,
    options: &JoinOptions,
) -> std::result::Result<Joined, JoinFailure> {
    let inv = doc::read_invitation(text, now_ns())?;
    // The inviting node's URL came with its invitation: the exchange and every round after
    // it go there only if it leads to an address the outbound rule allows.
    options
        .outbound
        .check_url(&inv.url)
        .map_err(|e| AdminError::Invalid(format!("invitation {e}")))?;
    let reachable = me.public_url.is_some();
    if options.mtls {
        if inv.tls_pin_sha256.is_none() {
            return Err(AdminError::Invalid(format!(
                "--mtls: the inviting node serves plain HTTP ({}; its invitation pins no TLS \
                 certificate): a client certificate cannot be presented to it. Join without \
                 --mtls, or ask for an invitation of its TLS address (tls_cert set)",
                inv.url
            ))
            .into());
        }
        if me
            .public_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://"))
            || (reachable && me.tls_certificate.is_none())
        {
            return Err(AdminError::Invalid(
                "--mtls: this node serves plain HTTP (public_url and tls_cert of concord.toml): \
                 the inviting node could not present its client certificate to it; serve \
                 TLS, or join without --mtls"
                    .into(),
            )
            .into());
        }
    }
    let name = match &options.name {
        Some(n) => n.clone(),
        None => inv
            .identity
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    crate::ops::check_partner_name(&name)?;
    taken(store, &name)?;
    let jurisdiction = match options.jurisdiction.as_ref().or(inv.jurisdiction.as_ref()) {
        Some(j) => crate::ops::jurisdiction_code(j)?,
        None => {
            return Err(AdminError::Invalid(
                "--jurisdiction: the invitation names no jurisdiction of the inviting node; \
                 give it (ISO 3166-1 alpha-2)"
                    .into(),
            )
            .into());
        }
    };
    let offers = |n: &str, write: bool| -> Result<&Offered> {
        inv.collections
            .iter()
            .find(|c| c.is_named(n) && if write { c.write } else { c.read })
            .ok_or_else(|| {
                AdminError::Invalid(format!(
                    "{} {n:?}: the invitation offers no collection of that id, alias or title \
                     for {} (it offers: {})",
                    if write { "--push" } else { "--pull" },
                    if write { "writing" } else { "reading" },
                    inv.collections
                        .iter()
                        .map(|c| format!(
                            "{} ({}{})",
                            c.alias.as_deref().unwrap_or(&c.id),
                            if c.read { "read" } else { "" },
                            if c.write {
                                if c.read { ", write" } else { "write" }
                            } else {
                                ""
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    };
    // Pulls: (offered, local alias or id); pushes: (local id, offered).
    // Pulls: (offered, local alias or id, named by the operator).
    let mut pulls: Vec<(&Offered, String, bool)> = Vec::new();
    for p in &options.pull {
        let (remote, local) = match p.rsplit_once(':') {
            Some((r, l)) if !r.is_empty() && !l.is_empty() => (r, Some(l.to_owned())),
            _ => (p.as_str(), None),
        };
        let o = offers(remote, false)?;
        let named = local.is_some();
        pulls.push((o, local.unwrap_or_else(|| o.default_alias()), named));
    }
    let mut pushes: Vec<(concord_store::Collection, &Offered)> = Vec::new();
    for p in &options.push {
        let Some((local, remote)) = p
            .split_once(':')
            .filter(|(l, r)| !l.is_empty() && !r.is_empty())
        else {
            return Err(AdminError::Invalid(format!("--push {p:?}: expected LOCAL:REMOTE")).into());
        };
        let c = store.collection(local)?.ok_or_else(|| {
            AdminError::NotFound(format!("--push {p:?}: no local collection {local:?}"))
        })?;
        pushes.push((c, offers(remote, true)?));
    }
    if options.pull.is_empty() && options.push.is_empty() {
        pulls = inv
            .collections
            .iter()
            .filter(|c| c.read)
            .map(|c| (c, c.default_alias(), false))
            .collect();
    }
    if pulls.is_empty() && pushes.is_empty() {
        return Err(AdminError::Invalid(
            "--pull/--push: nothing to sync (the invitation offers no collection for reading)"
                .into(),
        )
        .into());
    }
    for (o, local, named) in &pulls {
        match store.collection(local)? {
            None => concord_store::check_alias(local)?,
            // The inviting node chose this alias: it does not choose which of this node's
            // collections (shared with whom) its objects go into. Only the operator does,
            // by naming it.
            Some(_) if !named => {
                return Err(AdminError::Conflict(format!(
                    "--pull {:?}: this node has a collection {local:?} already; the \
                     invitation's alias does not choose it: name the local collection \
                     (--pull {}:{local} to pull into it, or --pull {}:NEW)",
                    o.default_alias(),
                    o.default_alias(),
                    o.default_alias()
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    // The inviting node's partner here: what this node pushes goes through the egress
    // door for it; it may read what is pushed (a pull from this node, when reachable).
    let (api_key, key_id, key_hash) =
        concord_server::auth::new_api_key().map_err(AdminError::Internal)?;
    let profile = PartnerProfile {
        name: name.clone(),
        jurisdiction: jurisdiction.clone(),
        groups: vec![],
    };
    let mut push_mappings = Vec::new();
    let mut preview = Vec::new();
    let probe = Peer {
        name: name.clone(),
        url: inv.url.clone(),
        api_root: inv.api_root.clone(),
        mappings: vec![],
        auth: PeerAuth::None,
        partner: Some(name.clone()),
        interval_secs: 300,
        timeout_secs: 60,
        tls: TlsFiles::default(),
        node_key: Some(inv.node_key.clone()),
    };
    for (c, o) in &pushes {
        let m = Mapping {
            remote: o.id.clone(),
            local: c.id.clone(),
            pull: false,
            push: true,
        };
        let (objects, withheld) = doc::push_preview(store, egress, &probe, &m, &profile)?;
        preview.push(FlowCount {
            collection: c.id.clone(),
            title: c.alias.clone().unwrap_or_else(|| c.title.clone()),
            direction: "push".into(),
            objects,
            withheld,
        });
        push_mappings.push(m);
    }
    // `--mtls`: this node's client certificate for the inviting node; the key is written
    // only once the join is answered (and removed when this side is not created).
    let client_cert = if options.mtls {
        Some(doc::new_client_certificate(&me.title).map_err(AdminError::Internal)?)
    } else {
        None
    };
    let own_tls_pin = match &me.tls_certificate {
        Some(pem) if reachable => {
            doc::first_certificate_der(pem.as_bytes()).map(|d| doc::certificate_pin(&d))
        }
        _ => None,
    };
    let request = JoinRequest {
        kind: doc::REQUEST_TYPE.into(),
        version: doc::VERSION,
        invitation: inv.id.clone(),
        secret: inv.secret.clone(),
        inviter_key: inv.node_key.clone(),
        identity: identity(store, me)?,
        node_key: me.key.public_hex(),
        jurisdiction: me.jurisdiction.clone(),
        url: me.public_url.clone(),
        api_root: reachable.then(|| me.api_root.clone()),
        api_key: reachable.then(|| api_key.clone()),
        pull: pulls.iter().map(|(o, _, _)| o.id.clone()).collect(),
        push: pushes.iter().map(|(_, o)| o.id.clone()).collect(),
        // The agreement this node applies to the inviting node (issue 19, item 5).
        agreement: Some(agreement_for(egress, &me.key, &profile, now_ns())),
        tls_pin_sha256: own_tls_pin,
        client_cert_sha256: client_cert.as_ref().map(|c| c.pin.clone()),
    };
    let signed = doc::sign_request(&me.key, request);
    let answer = doc::exchange(
        &inv,
        &signed,
        std::time::Duration::from_secs(options.timeout_secs.max(1)),
        &options.outbound,
    )?;
    // The inviting node's agreement, signed by the key the invitation names; checked before
    // anything is created here.
    let theirs =
        agreement_received(answer.agreement.as_ref(), &inv.node_key, now_ns()).map_err(|e| {
            AdminError::Invalid(format!(
                "joined at {}, but its answer's agreement is refused ({e}): nothing was \
                 created here; remove the partner there (concord partner remove {}) and join \
                 again",
                inv.url, answer.partner
            ))
        })?;
    // A reachable node that asked for mutual TLS binds the inviting node's key to its
    // client certificate: an answer without one leaves nothing to bind.
    if options.mtls && reachable && answer.client_cert_sha256.is_none() {
        return Err(AdminError::Invalid(format!(
            "joined at {}, but its answer carries no client certificate for mutual TLS: \
             nothing was created here; remove the partner there (concord partner remove {}) \
             and join again",
            inv.url, answer.partner
        ))
        .into());
    }
    // Joined there: now this side, in one transaction for the partner and the peer.
    preview.extend(answer.serve.iter().cloned());
    let mut created = Vec::new();
    let mut mappings = Vec::new();
    for (o, local, _) in &pulls {
        let id = match store.collection(local)? {
            Some(c) => c.id,
            None => {
                created.push(local.clone());
                store
                    .create_collection(&concord_store::NewCollection {
                        alias: local.clone(),
                        title: Some(o.title.clone()),
                        ..Default::default()
                    })?
                    .id
            }
        };
        mappings.push(Mapping {
            remote: o.id.clone(),
            local: id,
            pull: true,
            push: false,
        });
    }
    mappings.extend(push_mappings);
    // A file of its own per join (the name, with the new key's random id, is hashed): a
    // failed admission below never touches the files of a peer that exists.
    let own = format!("{name}/join/{}/{key_id}", inv.id);
    let token = files.write_secret_of(
        "peer",
        "api_key",
        &own,
        "token",
        answer.api_key.as_deref().unwrap_or_default(),
    )?;
    let mut written = vec![token.clone()];
    let mut tls = TlsFiles {
        // The pinned certificate, and no CA, for every round with it.
        pin_sha256: inv.tls_pin_sha256.clone(),
        ..TlsFiles::default()
    };
    if let Some(cert) = &client_cert {
        let mut write = |field: &str, kind: &str, pem: &str| -> Result<String> {
            let file = files.write_private_of("peer", field, &own, kind, pem.as_bytes());
            if let Ok(f) = &file {
                written.push(f.clone());
            }
            file
        };
        let files_made = write("client_cert", "client-cert.pem", &cert.cert_pem)
            .and_then(|c| Ok((c, write("client_key", "client-key.pem", &cert.key_pem)?)));
        match files_made {
            Ok((c, k)) => {
                tls.client_cert = Some(c);
                tls.client_key = Some(k);
            }
            Err(e) => {
                for f in &written {
                    let _ = std::fs::remove_file(f);
                }
                return Err(e.into());
            }
        }
    }
    let now = now_ns();
    let partner = Partner {
        name: name.clone(),
        jurisdiction,
        groups: vec![],
        read: pushes.iter().map(|(c, _)| c.id.clone()).collect(),
        write: vec![],
        key_id,
        key_hash,
        created_ns: now,
        details: PartnerDetails {
            identity: Some(inv.identity.clone()),
            node_key: Some(inv.node_key.clone()),
            // Its key is accepted here only with the certificate it pinned (`--mtls`).
            client_cert_sha256: answer.client_cert_sha256.clone(),
            origin: Some(format!("invitation:{}", inv.id)),
            updated_ns: now,
        },
    };
    let peer = Peer {
        mappings,
        auth: PeerAuth::Token { file: token },
        tls,
        ..probe
    };
    let admitted = store.admit_partner(&partner, &[peer_setting(&peer)?]);
    if !matches!(admitted, Ok(Admission::Admitted)) {
        // Nothing of this side stays: the files written for the peer.
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
    }
    match admitted? {
        Admission::Admitted => {}
        other => {
            return Err(AdminError::Conflict(format!(
                "joined at {}, but {other:?} here since the join began: nothing was created \
                 here; remove the partner there (concord partner remove {}) and join again",
                inv.url, answer.partner
            ))
            .into());
        }
    }
    keep_agreements(
        store,
        &name,
        &name,
        theirs.as_ref(),
        signed.request.agreement.as_ref().unwrap_or(&Value::Null),
    )?;
    Ok(Joined {
        partner: name,
        invitation: inv.id,
        known_there_as: answer.partner,
        url: inv.url,
        node_key: inv.node_key,
        created_collections: created,
        preview,
        note: answer
            .reason
            .as_deref()
            .map(|r| concord_sync::join::printable(r, 1000)),
    })
}

/// What this node would send the partner `name` now (`concord partner preview`), per
/// collection and direction, after the egress policy: `serve`, every collection it may
/// read, whole (what its first pull receives); `push`, every push mapping of the peers
/// linked to it, from their push cursors (what the next round pushes, less what the peer
/// already holds). Errors: no such partner.
pub fn preview(store: &dyn Store, egress: &Egress, name: &str) -> Result<Vec<FlowCount>> {
    let partner = crate::ops::find_partner(store, name)?;
    let profile = doc::profile_of(&partner);
    let title = |id: &str| -> Result<String> {
        Ok(store
            .collection(id)?
            .map(|c| c.alias.unwrap_or(c.title))
            .unwrap_or_else(|| id.to_owned()))
    };
    let failed = |e: JoinError| AdminError::Internal(e.to_string());
    let mut out = Vec::new();
    for id in &partner.read {
        let (objects, withheld) =
            doc::serve_preview(store, egress, &profile, id).map_err(failed)?;
        out.push(FlowCount {
            collection: id.clone(),
            title: title(id)?,
            direction: "serve".into(),
            objects,
            withheld,
        });
    }
    for peer in concord_sync::peers(store)? {
        if peer.partner.as_deref() != Some(name) {
            continue;
        }
        for m in peer.mappings.iter().filter(|m| m.push) {
            let (objects, withheld) =
                doc::push_preview(store, egress, &peer, m, &profile).map_err(failed)?;
            out.push(FlowCount {
                collection: m.local.clone(),
                title: title(&m.local)?,
                direction: "push".into(),
                objects,
                withheld,
            });
        }
    }
    Ok(out)
}
