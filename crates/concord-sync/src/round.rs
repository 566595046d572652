//! One sync round with one peer: pull, push, sightings home.

use std::time::Duration;

use serde_json::Value;

use concord_egress::{Audience, BASE_POLICY_VERSION, Door, Egress, EgressError, names_date_added};
use concord_ingest::{Accepted, Container, IngestOptions, ingest};
use concord_policy::egress::PartnerProfile;
use concord_store::{Cursor, ObjectFilter, PageRequest, Store, VersionSelector};

use crate::client::{Client, ClientError};
use crate::peer::{Mapping, Peer, PeerError, cursor_key, load_state, save_state};

/// Local entries read per push step.
const PUSH_PAGE: usize = 500;
/// Bytes kept free in a pushed envelope for `{"objects":[…]}` and separators.
const ENVELOPE_OVERHEAD: usize = 64;

/// How a round talks to the peer.
#[derive(Clone, Debug)]
pub struct RoundOptions {
    /// Requests per call before the round gives up.
    pub attempts: u32,
    /// First wait between two attempts; doubled each time.
    pub backoff: Duration,
    /// Objects per pulled page (`limit`); a server may return fewer (TAXII 2.1 §3.4.1).
    pub page_size: usize,
    /// Bytes of the peer's agreement document read at most (`peer_agreement_bytes`, issue
    /// 19): a document is a few KiB, so a longer one is refused and stops the round, rather
    /// than read under the general answer cap (1 GiB). Default 256 KiB.
    pub agreement_max_bytes: u64,
    /// Where the round's requests may go (`[outbound] allow`): the peer's host is resolved
    /// at each connection and only the addresses this rule allows are connected to
    /// ([`crate::ClientError::Refused`] otherwise). Default: public addresses only.
    pub outbound: std::sync::Arc<crate::outbound::Outbound>,
}

/// The default of [`RoundOptions::agreement_max_bytes`]: 256 KiB.
pub const DEFAULT_AGREEMENT_MAX_BYTES: u64 = 256 << 10;

impl Default for RoundOptions {
    fn default() -> Self {
        RoundOptions {
            attempts: 4,
            backoff: Duration::from_millis(250),
            page_size: 500,
            agreement_max_bytes: DEFAULT_AGREEMENT_MAX_BYTES,
            outbound: std::sync::Arc::default(),
        }
    }
}

/// What the node's policy needs from the caller: the node's one egress door, built once per
/// process by the binary over the policy of `concord_server::policy::node_policy`, so sync
/// and TAXII send exactly what the same door decides.
pub struct PolicyContext<'a> {
    /// The egress door (store, compiled policy, keys).
    pub egress: &'a Egress,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundReport {
    /// The peer.
    pub peer: String,
    /// Object versions received and newly stored.
    pub pulled_added: usize,
    /// Received but already held (e.g. a rewound cursor, a ring).
    pub pulled_present: usize,
    /// Received and refused by validation: `id: reason`.
    pub pulled_rejected: Vec<String>,
    /// Pages fetched.
    pub pages: usize,
    /// Versions pushed (sent in envelopes the peer completed).
    pub pushed: usize,
    /// Not pushed: received from this peer (no echoes).
    pub skipped_echo: usize,
    /// Not pushed: the peer already holds them.
    pub skipped_held: usize,
    /// Not pushed: withheld by the egress policy.
    pub withheld: usize,
    /// Versions deleted here because the peer deleted them: its tombstones (issue 21),
    /// applied only to versions received from it.
    pub deleted: usize,
    /// Versions deleted at the peer because they were deleted here after being pushed to
    /// it (issue 21): the peer answered the TAXII DELETE with success.
    pub push_deleted: usize,
    /// Deletes sent to the peer that it answered 404: it did not hold the version (any
    /// more), or does not let this node delete it. Counted as done, not sent again.
    pub push_delete_absent: usize,
    /// Sightings sent home to this peer.
    pub sightings_home: usize,
    /// Answers to this peer's requests for assistance sent home to it (issue 18).
    pub answers_home: usize,
    /// Objects the peer's status resource reported as failed: `id: message`.
    pub push_failures: Vec<String>,
    /// Bytes of the pulled pages (response bodies).
    pub bytes_received: u64,
    /// Bytes of the pushed envelopes (request bodies).
    pub bytes_sent: u64,
}

/// How long a round's lease lasts without renewal; renewed at every page and envelope, so a
/// process killed mid-round blocks the peer's next round for at most this long.
pub const LEASE: Duration = Duration::from_secs(10);

/// The node-wide lease on one peer's rounds ([`Store::try_lease`]): one round per peer at a
/// time, whether from `concord serve`'s scheduler, another serve process on the same
/// database, or `concord sync`.
struct Lease<'a> {
    store: &'a dyn Store,
    key: String,
    holder: String,
}

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

impl<'a> Lease<'a> {
    fn acquire(store: &'a dyn Store, peer: &str) -> Result<Option<Lease<'a>>, SyncError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| SyncError::Config(format!("no randomness for a lease: {e}")))?;
        let lease = Lease {
            store,
            key: format!("sync_lease/{peer}"),
            holder: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let now = now_ns();
        let until = now + LEASE.as_nanos() as i64;
        Ok(store
            .try_lease(&lease.key, &lease.holder, now, until)?
            .then_some(lease))
    }

    /// Extends the lease; an error if another holder took it (this round ran too long
    /// without renewing, and must stop).
    fn renew(&self) -> Result<(), SyncError> {
        let now = now_ns();
        if self
            .store
            .try_lease(&self.key, &self.holder, now, now + LEASE.as_nanos() as i64)?
        {
            Ok(())
        } else {
            Err(SyncError::Busy(self.key.clone()))
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let _ = self.store.try_lease(&self.key, &self.holder, now_ns(), 0);
    }
}

/// Why a round failed. Whatever was committed before the failure stays (with its cursor).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Talking to the peer failed (after retries).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] concord_store::StoreError),
    /// Peers or state are unreadable.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Ingesting a page failed.
    #[error("ingest of a page from {peer}: {message}")]
    Ingest {
        /// The peer.
        peer: String,
        /// The error.
        message: String,
    },
    /// The configuration does not allow what the mapping asks.
    #[error("{0}")]
    Config(String),
    /// The egress door failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// An agreement stops the round (issue 19): its end date passed, on either side, or it
    /// requires encryption in transit and the peer's URL is plain HTTP. The reason names
    /// the agreement and the clause.
    #[error("{0}")]
    Agreement(String),
    /// Another process runs a round with this peer (it holds the lease).
    #[error("another process is syncing with this peer ({0}); its lease lapses within 10 s")]
    Busy(String),
}

/// Runs one round for `peer`: every pull mapping, every push mapping, then sightings home;
/// records the outcome in the peer's state ([`crate::PeerState`]).
pub fn round(
    store: &dyn Store,
    peer: &Peer,
    cx: &PolicyContext<'_>,
    options: &RoundOptions,
) -> Result<RoundReport, SyncError> {
    let Some(lease) = Lease::acquire(store, &peer.name)? else {
        return Err(SyncError::Busy(format!("sync_lease/{}", peer.name)));
    };
    let mut state = load_state(store, &peer.name)?;
    state.last_round = Some(now());
    let result = run(store, peer, cx, options, &lease);
    match &result {
        Ok(r) => {
            state.last_success = Some(now());
            state.consecutive_failures = 0;
            state.pulled += r.pulled_added as u64;
            state.pushed += r.pushed as u64;
            if !r.push_failures.is_empty() || !r.pulled_rejected.is_empty() {
                state.last_error = Some(format!(
                    "{} objects refused by the peer, {} received objects invalid: {}",
                    r.push_failures.len(),
                    r.pulled_rejected.len(),
                    r.push_failures
                        .iter()
                        .chain(&r.pulled_rejected)
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                state.last_error_at = state.last_success.clone();
            }
        }
        Err(e) => {
            state.consecutive_failures += 1;
            state.last_error = Some(e.to_string());
            state.last_error_at = Some(now());
        }
    }
    save_state(store, &peer.name, &state)?;
    // The node's dashboards: rounds by outcome, objects moved, and when a round last
    // succeeded (a Prometheus timestamp: the lag is `time() - it`).
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!("concord_sync_rounds_total", "peer" => peer.name.clone(), "outcome" => outcome)
        .increment(1);
    if let Ok(r) = &result {
        metrics::counter!("concord_sync_objects_total", "peer" => peer.name.clone(), "direction" => "pulled")
            .increment(r.pulled_added as u64);
        metrics::counter!("concord_sync_objects_total", "peer" => peer.name.clone(), "direction" => "pushed")
            .increment(r.pushed as u64);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("concord_sync_last_success_timestamp_seconds", "peer" => peer.name.clone())
            .set(unix);
    }
    result
}

fn now() -> String {
    concord_stix::Timestamp::now_micros().to_string()
}

fn run(
    store: &dyn Store,
    peer: &Peer,
    cx: &PolicyContext<'_>,
    options: &RoundOptions,
    lease: &Lease<'_>,
) -> Result<RoundReport, SyncError> {
    agreements_before(store, peer, cx)?;
    let client = Client::new(peer, options.attempts, options.backoff, &options.outbound)?;
    agreement_fetched(store, peer, &client, options.agreement_max_bytes)?;
    let mut report = RoundReport {
        peer: peer.name.clone(),
        ..RoundReport::default()
    };
    let remote_collections = client.collections()?;
    let mut resolved = Vec::new();
    for m in &peer.mappings {
        resolved.push((m, resolve(&remote_collections, &m.remote, &peer.name)?));
    }
    for (m, remote) in &resolved {
        if m.pull {
            // Deletions first: a version deleted at the peer and added there again since
            // comes back with this round's pull instead of being deleted after it.
            deletions(
                store,
                cx.egress.person(),
                &client,
                peer,
                m,
                remote,
                lease,
                &mut report,
            )?;
            pull(
                store,
                cx.egress,
                &client,
                peer,
                m,
                remote,
                options.page_size,
                lease,
                &mut report,
            )?;
        }
    }
    let pushes = resolved.iter().any(|(m, _)| m.push);
    let egress_for = match &peer.partner {
        Some(name) => Some(partner_profile(store, name)?),
        None if pushes => {
            return Err(SyncError::Config(format!(
                "peer {} has push mappings but no partner: its policy decides what may go \
                 (concord peer add --partner P)",
                peer.name
            )));
        }
        None => None,
    };
    if let Some(partner) = &egress_for {
        let max = client
            .api_root()?
            .get("max_content_length")
            .and_then(Value::as_u64)
            .unwrap_or(10 << 20) as usize;
        for (m, remote) in &resolved {
            if m.push {
                // Deletions first, as for a pull: a version deleted here and added again
                // since is pushed again after its delete, not deleted after its push.
                push_deletes(
                    store,
                    &client,
                    peer,
                    m,
                    remote,
                    partner,
                    cx,
                    lease,
                    &mut report,
                )?;
                push(
                    store,
                    &client,
                    peer,
                    m,
                    remote,
                    partner,
                    cx,
                    max,
                    lease,
                    &mut report,
                )?;
            }
        }
        sightings_home(
            store,
            &client,
            peer,
            &resolved,
            partner,
            cx,
            max,
            lease,
            &mut report,
        )?;
    }
    Ok(report)
}

/// The agreements that stop a round before any request is made (issue 19): this node's
/// agreement with the peer's partner (out of its period, IEP 2.0 start/end dates; or
/// ENCRYPT IN TRANSIT must over a plain-HTTP URL), and the agreement last received from the
/// peer's node (its end date passed, or it requires encryption and the URL is plain HTTP).
fn agreements_before(
    store: &dyn Store,
    peer: &Peer,
    cx: &PolicyContext<'_>,
) -> Result<(), SyncError> {
    let now = now_ns();
    let plain = peer.url.to_ascii_lowercase().starts_with("http://");
    if let Some(name) = &peer.partner {
        let partner = partner_profile(store, name)?;
        if let Some((agreement, a, period)) = cx.egress.policy().agreement(&partner) {
            if !period.in_effect(now) {
                return Err(SyncError::Agreement(match (&a.end_date, period.end_ns) {
                    (Some(end), Some(e)) if now >= e => format!(
                        "agreement {agreement} with {name} ended at {end} (IEP 2.0 end_date): no sync with peer {} after it",
                        peer.name
                    ),
                    _ => format!(
                        "agreement {agreement} with {name} takes effect at {} (IEP 2.0 start_date): no sync with peer {} before it",
                        a.start_date.as_deref().unwrap_or("?"),
                        peer.name
                    ),
                }));
            }
            if plain && a.requires_encryption() {
                return Err(SyncError::Agreement(format!(
                    "agreement {agreement} with {name} requires encryption in transit (IEP 2.0 encrypt_in_transit must), and peer {} is at plain HTTP {}: no push or pull",
                    peer.name, peer.url
                )));
            }
        }
    }
    if let Some(r) = concord_egress::agreement::received(store, &peer.name)? {
        check_received(peer, &r, now, plain)?;
    }
    Ok(())
}

/// The checks of an agreement received from the peer's node: its end date, its encryption.
fn check_received(
    peer: &Peer,
    r: &concord_egress::agreement::Received,
    now: i64,
    plain: bool,
) -> Result<(), SyncError> {
    let version = r.statement.version.as_deref().unwrap_or("none");
    if let (Some(end), Some(text)) = (r.end_ns(), r.end_date())
        && now >= end
    {
        return Err(SyncError::Agreement(format!(
            "the agreement peer {} holds with this node ({version}) ended at {text} (IEP 2.0 end_date): no sync after it",
            peer.name
        )));
    }
    if plain && r.requires_encryption() {
        return Err(SyncError::Agreement(format!(
            "the agreement peer {} holds with this node ({version}) requires encryption in transit (IEP 2.0 encrypt_in_transit must), and its URL is plain HTTP: no push or pull",
            peer.name
        )));
    }
    Ok(())
}

/// Fetches the peer's agreement with this node (a Concord peer; any other TAXII server has
/// none), verifies it (signature; the peer's node key when pinned), keeps it with its version,
/// and stops the round if it ended. A document that does not verify stops the round: what the
/// peer's node agreed cannot be known.
///
/// A peer without a pinned node key (`peer add` without `--node-key`, not joined) is trusted
/// on first use: the key that signed the first document kept from it is the only one
/// accepted after ([`concord_egress::agreement::Received::signing_key`]); a document signed
/// by another key stops the round, naming both keys and how to pin the right one, and
/// replaces nothing kept. Else whoever answers at the peer's URL once (a server put there,
/// a proxy) could sign an end date that stops every round with the peer and every door to
/// its partner, or texts shown to this node's operator as the peer's.
fn agreement_fetched(
    store: &dyn Store,
    peer: &Peer,
    client: &Client,
    max_bytes: u64,
) -> Result<(), SyncError> {
    // `None`: no such resource, or some other server's answer; a Concord document is
    // verified strictly.
    let Some(text) = client.agreement(max_bytes)? else {
        return Ok(());
    };
    let kept = concord_egress::agreement::received(store, &peer.name)?;
    let first_use = match peer.node_key_bytes() {
        Some(_) => None,
        None => concord_egress::agreement::kept_signing_key(store, &peer.name)
            .map_err(SyncError::Agreement)?,
    };
    let statement = match peer.node_key_bytes() {
        Some(pinned) => concord_egress::agreement::verify_document(&text, Some(pinned))
            .map_err(|e| SyncError::Agreement(format!("peer {}: {e}", peer.name)))?,
        None => concord_egress::agreement::verify_document(&text, first_use).map_err(|e| {
            let tofu = first_use.map_or(String::new(), |k| {
                format!(
                    " (trust on first use: peer {} has no pinned node key, and {} signed the \
                     first agreement document this node kept from it; if the peer's node key \
                     really changed, pin the new one: `concord peer add {} … --node-key \
                     KEYFILE` with the key its operator gives you)",
                    peer.name,
                    concord_store::node_key::hex(&k),
                    peer.name
                )
            });
            SyncError::Agreement(format!("peer {}: {e}{tofu}", peer.name))
        })?,
    };
    let received = concord_egress::agreement::Received {
        document: text,
        statement,
        fetched: now(),
    };
    if kept.as_ref().map(|k| &k.statement.version) != Some(&received.statement.version)
        || kept.as_ref().map(|k| &k.statement.agreement) != Some(&received.statement.agreement)
        || kept.as_ref().and_then(|k| k.signing_key()) != received.signing_key()
    {
        concord_egress::agreement::store_received(store, &peer.name, &received)?;
        // By the partner's name too: this node's egress door enforces what the partner's
        // node agreed (its end date) on every door, as the issuer does.
        if let Some(partner) = &peer.partner {
            concord_egress::agreement::store_received_for_partner(store, partner, &received)?;
        }
    }
    let plain = peer.url.to_ascii_lowercase().starts_with("http://");
    check_received(peer, &received, now_ns(), plain)
}

/// The remote collection's id: the mapping names its id, or its title when exactly one
/// collection has it.
fn resolve(collections: &[Value], remote: &str, peer: &str) -> Result<String, SyncError> {
    let field = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(c) = collections
        .iter()
        .find(|c| field(c, "id").as_deref() == Some(remote))
    {
        return Ok(field(c, "id").unwrap_or_default());
    }
    let by_title: Vec<&Value> = collections
        .iter()
        .filter(|c| field(c, "title").as_deref() == Some(remote))
        .collect();
    match by_title.as_slice() {
        [one] => Ok(field(one, "id").unwrap_or_default()),
        [] => Err(SyncError::Config(format!(
            "peer {peer} has no collection with id or title {remote:?} (it offers: {})",
            collections
                .iter()
                .map(|c| format!(
                    "{} {:?}",
                    field(c, "id").unwrap_or_default(),
                    field(c, "title").unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(SyncError::Config(format!(
            "peer {peer} has {} collections titled {remote:?}: name one by its id",
            by_title.len()
        ))),
    }
}

fn partner_profile(store: &dyn Store, name: &str) -> Result<PartnerProfile, SyncError> {
    let p = store
        .partners()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| SyncError::Config(format!("no partner named {name:?} on this node")))?;
    Ok(PartnerProfile {
        name: p.name,
        jurisdiction: p.jurisdiction,
        groups: p.groups,
    })
}

/// `ts` minus one microsecond, written with microseconds: the resume point that re-reads
/// the versions sharing the cursor's `date_added` instead of missing those a killed run had
/// not reached. A cursor that does not parse is used as it is.
fn rewind(ts: &str) -> String {
    match concord_stix::Timestamp::parse(ts) {
        Ok(t) => concord_stix::Timestamp::from_unix_nanos(t.unix_nanos() - 1_000, 6).to_string(),
        Err(_) => ts.to_owned(),
    }
}

/// Pulls one mapping's new objects from the peer into `m.local`. A peer linked to a
/// partner (`peer add --partner P`) is that partner's node, and what it serves of the
/// node's own objects (made or imported here) is taken as P's TAXII POST would be
/// ([`Egress::writer_view`]): only an object's creator makes new versions of it (STIX 2.1
/// §3.6), so a peer cannot rewrite or close the node's incidents or indicators by serving
/// newer versions of them; such a version is refused (listed in `pulled_rejected`) or kept
/// as P's foreign version. Objects another source brought first are taken as before (a
/// first-writer claim there could be raced by a relay). A peer without a partner is a
/// source the operator configured and trusts as such.
#[allow(clippy::too_many_arguments)]
fn pull(
    store: &dyn Store,
    egress: &Egress,
    client: &Client,
    peer: &Peer,
    m: &Mapping,
    remote: &str,
    page_size: usize,
    lease: &Lease<'_>,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let key = cursor_key(&peer.name, m, "pull");
    let mut cursor = store.setting(&key)?;
    let added_after = cursor.as_deref().map(rewind);
    let who = format!("peer:{}", peer.name);
    let door = Door {
        door: "sync-pull",
        partner: &who,
        person: egress.person(),
        collection: &m.local,
        policy_version: BASE_POLICY_VERSION,
    };
    let make = |accepted: &[Accepted]| -> Vec<concord_store::AuditRecord> {
        accepted
            .iter()
            .map(|a| door.ingress(a.vid, &a.id, &a.version, a.added))
            .collect()
    };
    // Held because the peer's node sent it: by the peer's name, and by its partner's (the
    // same node's objects also arrive by its TAXII POSTs; egress reads either).
    let pushed = peer
        .partner
        .as_deref()
        .map(concord_store::partner_provenance);
    let names: Vec<&str> = std::iter::once(peer.name.as_str())
        .chain(pushed.as_deref())
        .collect();
    // The creator rule for the peer's partner: `Some(None)` when it may not read the
    // collection (it receives nothing of it here).
    let local_id = store
        .collection(&m.local)?
        .map(|c| c.id)
        .unwrap_or_else(|| m.local.clone());
    let writer: Option<(String, Option<PartnerProfile>)> = match peer.partner.as_deref() {
        None => None,
        Some(name) => {
            let p = store
                .partners()?
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    SyncError::Config(format!("no partner named {name:?} on this node"))
                })?;
            let reader = p.read.contains(&local_id).then(|| PartnerProfile {
                name: p.name.clone(),
                jurisdiction: p.jurisdiction.clone(),
                groups: p.groups.clone(),
            });
            Some((p.name, reader))
        }
    };
    let unseen = |header: &concord_stix::ObjectHeader,
                  body: &str|
     -> Result<concord_store::WriterView, concord_store::StoreError> {
        let Some((name, reader)) = &writer else {
            return Ok(Default::default());
        };
        // Another source brought the id first (another partner's object): a pull keeps
        // taking its versions as before. Holding them to a first-writer claim would let a
        // relay that served an object first lock out its real producer's updates (attack
        // a1 #2); what the rule protects here is the node's own objects.
        let creators = store.creators(&header.id)?;
        if !creators.is_empty() && !creators.contains(&concord_store::partner_provenance(name)) {
            return Ok(Default::default());
        }
        egress
            .writer_view(reader.as_ref(), name, &local_id, header, body)
            .map_err(|e| match e {
                EgressError::Store(e) => e,
                other => concord_store::StoreError::Corrupt(other.to_string()),
            })
    };
    let mut next: Option<String> = None;
    loop {
        lease.renew()?;
        let page =
            client.objects_page(remote, added_after.as_deref(), next.as_deref(), page_size)?;
        report.pages += 1;
        report.bytes_received += page.body.len() as u64;
        if let Some(last) = &page.date_added_last {
            cursor = Some(last.clone());
        }
        if !page.has_objects {
            if let Some(c) = &cursor {
                store.set_setting(&key, c)?;
            }
            match (page.more, page.next) {
                (true, Some(n)) => {
                    next = Some(n);
                    continue;
                }
                _ => break,
            }
        }
        let settings: Vec<(&str, &str)> = cursor
            .as_deref()
            .map(|c| (key.as_str(), c))
            .into_iter()
            .collect();
        let options = IngestOptions {
            container: Container::Envelope,
            list_accepted: false,
            audit: Some(&make),
            provenance: &names,
            settings: &settings,
            max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
            cancel: None,
            unseen: Some(&unseen),
        };
        let r = ingest(store, &m.local, page.body.as_bytes(), options, |_| {}).map_err(|e| {
            SyncError::Ingest {
                peer: peer.name.clone(),
                message: e.to_string(),
            }
        })?;
        report.pulled_added += r.added;
        report.pulled_present += r.already_present;
        report.pulled_rejected.extend(r.rejected.iter().map(|x| {
            format!(
                "{}: {}",
                x.id.as_deref().unwrap_or("?"),
                x.reasons.join("; ")
            )
        }));
        match (page.more, page.next) {
            (true, Some(n)) => next = Some(n),
            _ => break,
        }
    }
    Ok(())
}

/// Deletions at the peer reach this node (issue 21, item 4): the peer's tombstones of the
/// remote collection since the last round ([`Client::tombstones`]: the versions it deleted
/// that it had given this node) delete, in the local collection, the same versions if they
/// were received from this peer (a version held here only from elsewhere stays), audited
/// as door `sync-tombstones` (direction `delete`, by `peer:NAME`) — so the deletion is in
/// this node's tombstones in turn, for the nodes that pull from it. The cursor is stored
/// after each answer. A peer without tombstones (any TAXII server but Concord) deletes
/// nothing. An SCO, which has no `modified` and is named by its `date_added` at the peer
/// (not its version here, [`names_date_added`]), is matched by id: the tombstone deletes
/// its copies here without a version of their own that came from the peer.
#[allow(clippy::too_many_arguments)]
fn deletions(
    store: &dyn Store,
    person: Option<&str>,
    client: &Client,
    peer: &Peer,
    m: &Mapping,
    remote: &str,
    lease: &Lease<'_>,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let key = cursor_key(&peer.name, m, "tombstones");
    let mut next = store.setting(&key)?;
    let who = format!("peer:{}", peer.name);
    let door = Door {
        door: "sync-tombstones",
        partner: &who,
        person,
        collection: &m.local,
        policy_version: BASE_POLICY_VERSION,
    };
    loop {
        lease.renew()?;
        // A peer that answers the tombstones path with something else than a list of
        // tombstones (a TAXII server with a catch-all page) deletes nothing, and its objects
        // are still pulled: one bad answer does not stop the round (attack a1).
        let page = match client.tombstones(remote, next.as_deref()) {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(()),
            Err(e @ ClientError::Garbage { .. }) => {
                tracing::warn!(peer = %peer.name, error = %e, "sync: no tombstones read");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut records = Vec::new();
        for (id, version) in &page.deleted {
            // An object without a version of its own (an SCO) is named by the peer's
            // `date_added`, which is not its version here: its copies here without a
            // version of their own are the ones (an SCO is not versioned, STIX 2.1 §3.6;
            // their provenance is recorded under the empty version).
            let unversioned = names_date_added(id);
            let selector = if unversioned {
                VersionSelector::All
            } else {
                match concord_stix::Timestamp::parse(version) {
                    Ok(at) => VersionSelector::At(at),
                    Err(_) => continue,
                }
            };
            let provenance = if unversioned { "" } else { version.as_str() };
            if !came_from(store, peer, id, Some(provenance))? {
                continue;
            }
            let filter = ObjectFilter {
                ids: vec![id.clone()],
                versions: vec![selector],
                spec_versions: vec!["2.0".into(), "2.1".into()],
                ..ObjectFilter::default()
            };
            let held: Vec<concord_store::Entry> = store
                .entries(
                    &m.local,
                    &filter,
                    &PageRequest {
                        limit: PUSH_PAGE,
                        after: None,
                    },
                    false,
                )?
                .entries
                .into_iter()
                .filter(|e| !unversioned || e.version_text.is_none())
                .collect();
            // A row goes only when this peer alone brought it here (its pulls, or its pushes
            // as its partner): a copy the operator imported, or another source brought too,
            // stays (attack on h-del, #2: `came_from` asks only whether the peer is among
            // the sources, and an SCO's id can be guessed from its value).
            let mut only_peers = Vec::with_capacity(held.len());
            for e in held {
                if only_from(store, peer, &m.local, e.vid)? {
                    only_peers.push(e);
                }
            }
            let held = only_peers;
            let vids: Vec<i64> = held.iter().map(|e| e.vid).collect();
            if vids.is_empty() {
                continue;
            }
            report.deleted += store.delete_versions(&m.local, id, &vids)?;
            records.extend(
                held.iter()
                    .map(|e| door.record("delete", e.vid, id, e.version(), "deleted", Vec::new())),
            );
        }
        if !records.is_empty() {
            store.append_audit(&records)?;
        }
        store.set_setting(&key, &page.next)?;
        next = Some(page.next);
        if !page.more {
            return Ok(());
        }
    }
}

/// Where the deletes pushed to a peer stand: the tombstone cursor of the answer being sent
/// (`None`: the start of the log) and how many of that answer's tombstones are done.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
struct DeleteCursor {
    next: Option<String>,
    done: usize,
}

/// Deletions here reach a peer that is pushed to (issue 21), which never asks for
/// tombstones: for each version of `m.local` pushed to the peer (door `sync-push`, to the
/// peer's partner) and deleted here since, a TAXII 2.1 §5.7 DELETE of that version in the
/// remote collection, under the id and version the peer received it by. The tombstones are
/// the egress door's ([`Egress::tombstones_unrecorded`], the ones the tombstones endpoint
/// gives, here only of pushed versions); each DELETE is recorded before it is sent (door
/// `sync-push-delete`, direction `egress`, one entry per request). An object without a
/// version of its own (an SCO, [`names_date_added`]) is deleted with `match[version]=all`:
/// its version here is this node's `date_added`, which names nothing at the peer.
///
/// The cursor (tombstone token and how many of its answer are done) is stored after each
/// DELETE, so each is sent once. A 404 counts as done (the peer does not hold it, or not
/// for this node). Any other refusal (4xx: no write permission, a server without DELETE)
/// is listed in `push_failures` and ends this mapping's deletes for the round, the cursor
/// kept at it: it is sent again next round, and the push goes on. A transport error or 5xx
/// (after retries) fails the round, as a failed POST does.
#[allow(clippy::too_many_arguments)]
fn push_deletes(
    store: &dyn Store,
    client: &Client,
    peer: &Peer,
    m: &Mapping,
    remote: &str,
    partner: &PartnerProfile,
    cx: &PolicyContext<'_>,
    lease: &Lease<'_>,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let key = cursor_key(&peer.name, m, "push-deletes");
    let mut at: DeleteCursor = match store.setting(&key)? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| SyncError::Config(format!("setting {key}: not a delete cursor: {e}")))?,
        None => DeleteCursor::default(),
    };
    let audience = Audience::Partner(partner.clone());
    let policy = cx.egress.policy().version.clone();
    let door = Door {
        door: "sync-push-delete",
        partner: &partner.name,
        person: cx.egress.person(),
        collection: &m.local,
        policy_version: &policy,
    };
    loop {
        lease.renew()?;
        let page = match cx.egress.tombstones_unrecorded(
            &audience,
            &m.local,
            at.next.as_deref(),
            Some("sync-push"),
        ) {
            Ok(page) => page,
            // Sealed for another audience: the peer's partner was changed (`peer add`
            // again). Its deletes start over from the log's start; what the peer no longer
            // holds answers 404.
            Err(EgressError::BadCursor) if at.next.is_some() => {
                tracing::warn!(peer = %peer.name, "sync: delete cursor of another partner; starting over");
                at = DeleteCursor::default();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for t in page.tombstones.iter().skip(at.done) {
            let version = (!names_date_added(&t.id)).then_some(t.version.as_str());
            store.append_audit(&[door.record(
                "egress",
                t.vid,
                &t.id,
                t.version.clone(),
                "sent",
                Vec::new(),
            )])?;
            match client.delete_object(remote, &t.id, version) {
                Ok(()) => report.push_deleted += 1,
                Err(ClientError::Status { status: 404, .. }) => report.push_delete_absent += 1,
                Err(
                    e @ ClientError::Status {
                        status: 400..=499, ..
                    },
                ) => {
                    report
                        .push_failures
                        .push(format!("{} (version {}): delete: {e}", t.id, t.version));
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            at.done += 1;
            store.set_setting(&key, &delete_cursor_json(&at))?;
        }
        at = DeleteCursor {
            next: Some(page.next),
            done: 0,
        };
        store.set_setting(&key, &delete_cursor_json(&at))?;
        if !page.more {
            return Ok(());
        }
    }
}

fn delete_cursor_json(c: &DeleteCursor) -> String {
    serde_json::json!({"next": c.next, "done": c.done}).to_string()
}

fn cursor_to_json(c: &Cursor) -> String {
    serde_json::json!([c.date_added_ns, c.id, c.version_key, c.seq]).to_string()
}

/// A stored push cursor; the version is a sort key, or `i64` nanoseconds in cursors saved
/// before issue 16 (read as the same position).
pub(crate) fn cursor_from_json(text: &str) -> Option<Cursor> {
    let v: Value = serde_json::from_str(text).ok()?;
    let version = v.get(2)?;
    let version_key = match version.as_i64() {
        Some(ns) => concord_stix::Timestamp::from_unix_nanos(ns, 9).sort_key(),
        None => concord_stix::Timestamp::from_sort_key(version.as_str()?)
            .ok()?
            .sort_key(),
    };
    Some(Cursor {
        date_added_ns: v.get(0)?.as_i64()?,
        id: v.get(1)?.as_str()?.to_owned(),
        version_key,
        seq: v.get(3)?.as_i64()?,
    })
}

/// A version ready to go: its id, version (as the manifest says it) and the partner's copy.
struct Outgoing {
    id: String,
    version_key: String,
    body: String,
}

#[allow(clippy::too_many_arguments)]
fn push(
    store: &dyn Store,
    client: &Client,
    peer: &Peer,
    m: &Mapping,
    remote: &str,
    partner: &PartnerProfile,
    cx: &PolicyContext<'_>,
    max: usize,
    lease: &Lease<'_>,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let key = cursor_key(&peer.name, m, "push");
    let filter = ObjectFilter {
        versions: vec![VersionSelector::All],
        spec_versions: vec!["2.1".into()],
        ..ObjectFilter::default()
    };
    pages_after_cursor(store, &m.local, &filter, &key, lease, |entries| {
        send(
            store, client, peer, &m.local, remote, partner, cx, max, entries, report, None,
        )
        .map(|_| ())
    })
}

/// Calls `f` with each page of `collection` (under `filter`) after the cursor stored in the
/// setting `key`, and stores the cursor after each page `f` took: a page is never sent
/// twice, and a failure resumes at the page that failed. Renews the lease at each page.
fn pages_after_cursor(
    store: &dyn Store,
    collection: &str,
    filter: &ObjectFilter,
    key: &str,
    lease: &Lease<'_>,
    mut f: impl FnMut(Vec<concord_store::Entry>) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let mut after = store.setting(key)?.and_then(|t| cursor_from_json(&t));
    loop {
        lease.renew()?;
        let page = store.entries(
            collection,
            filter,
            &PageRequest {
                limit: PUSH_PAGE,
                after: after.clone(),
            },
            true,
        )?;
        let Some(last) = page.entries.last().map(|e| e.cursor()) else {
            return Ok(());
        };
        let more = page.more;
        f(page.entries)?;
        store.set_setting(key, &cursor_to_json(&last))?;
        after = Some(last);
        if !more {
            return Ok(());
        }
    }
}

/// Sends `entries` of the local collection `local` to `remote`: minus echoes and what the
/// peer holds, through the egress function, in envelopes under `max` bytes, each polled to
/// completion. With `home`, only the objects that go home to the peer (sightings of indicators,
/// answers to requests received from the peer) go.
#[allow(clippy::too_many_arguments)]
fn send(
    store: &dyn Store,
    client: &Client,
    peer: &Peer,
    local: &str,
    remote: &str,
    partner: &PartnerProfile,
    cx: &PolicyContext<'_>,
    max: usize,
    entries: Vec<concord_store::Entry>,
    report: &mut RoundReport,
    home: Option<Home>,
) -> Result<usize, SyncError> {
    let mut candidates = Vec::new();
    for e in entries {
        let version = e.version_text.clone().unwrap_or_default();
        if came_from(store, peer, &e.id, Some(&version))? {
            report.skipped_echo += 1;
            continue;
        }
        if let Some(home) = home {
            let target = e
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|v| home.target(&v).map(str::to_owned));
            match target {
                Some(t) if came_from(store, peer, &t, None)? => {}
                _ => continue,
            }
        }
        candidates.push(e);
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    // The door decides first (and records every decision before anything leaves): even
    // the manifest question below carries ids, and they must be the ones the peer may see.
    let door = home.map_or("sync-push", Home::door);
    let decided =
        cx.egress
            .decide_entries(partner, door, local, candidates.clone(), Some(&peer.name))?;
    report.withheld += candidates.len() - decided.len();
    if decided.is_empty() {
        return Ok(0);
    }
    // What the peer already holds (one manifest request per batch): a version goes round a
    // ring of nodes once.
    let wanted: Vec<(String, String)> = decided
        .iter()
        .map(|e| (e.id.clone(), e.version.clone()))
        .collect();
    // A peer that lets this node write but not read the collection cannot be asked: then
    // everything goes, and the peer finds what it already holds (TAXII 2.1 §5.5).
    let held = match client.held(remote, &wanted) {
        Ok(h) => h,
        Err(ClientError::Status {
            status: 401 | 403, ..
        }) => Default::default(),
        Err(e) => return Err(e.into()),
    };
    let held: std::collections::HashSet<(String, String)> = held
        .into_iter()
        .filter_map(|(id, v)| {
            concord_stix::Timestamp::parse(&v)
                .ok()
                .map(|t| (id, t.sort_key()))
        })
        .collect();
    let mut outgoing = Vec::new();
    for e in decided {
        if held.contains(&(e.id.clone(), e.version_key.clone())) {
            report.skipped_held += 1;
            continue;
        }
        outgoing.push(Outgoing {
            id: e.id,
            version_key: e.version_key,
            body: e.body.unwrap_or_default(),
        });
    }
    let mut sent = 0;
    let mut envelope: Vec<&Outgoing> = Vec::new();
    let mut size = ENVELOPE_OVERHEAD;
    for o in &outgoing {
        if o.body.len() + ENVELOPE_OVERHEAD > max {
            report.push_failures.push(format!(
                "{} (version {}): {} bytes, over the peer's max_content_length {max}",
                o.id,
                o.version_key,
                o.body.len()
            ));
            continue;
        }
        if size + o.body.len() + 1 > max && !envelope.is_empty() {
            sent += post(client, remote, &envelope, report)?;
            envelope.clear();
            size = ENVELOPE_OVERHEAD;
        }
        size += o.body.len() + 1;
        envelope.push(o);
    }
    if !envelope.is_empty() {
        sent += post(client, remote, &envelope, report)?;
    }
    match home {
        Some(Home::Sightings) => report.sightings_home += sent,
        Some(Home::Answers) => report.answers_home += sent,
        None => report.pushed += sent,
    }
    Ok(sent)
}

/// Whether `peer` holds `id` (`version`, or any) because it sent it: pulled from it, or
/// pushed by it as its partner ([`concord_store::partner_provenance`]). A request for
/// assistance reaches a node by either way, and its answer goes home by both.
fn came_from(
    store: &dyn Store,
    peer: &Peer,
    id: &str,
    version: Option<&str>,
) -> Result<bool, SyncError> {
    let pushed = peer
        .partner
        .as_deref()
        .map(concord_store::partner_provenance);
    Ok(store
        .received_from(id, version)?
        .iter()
        .any(|p| *p == peer.name || Some(p) == pushed.as_ref()))
}

/// Whether every write that brought the row `vid` into `collection` came from `peer`: its
/// pulls (`peer:NAME`) or its pushes as its partner. A row with no recorded ingress (from
/// before the audit recorded transfers) is not.
fn only_from(
    store: &dyn Store,
    peer: &Peer,
    collection: &str,
    vid: i64,
) -> Result<bool, SyncError> {
    let pulled = format!("peer:{}", peer.name);
    let sources = concord_store::ingress_of(store, collection, vid)?;
    Ok(!sources.is_empty()
        && sources
            .iter()
            .all(|(who, _)| *who == pulled || peer.partner.as_deref() == Some(who.as_str())))
}

/// What goes home to the peer that produced what it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    /// Sightings of indicators received from the peer (`sighting_of_ref`).
    Sightings,
    /// Answers to requests for assistance received from the peer (a `task` whose
    /// coordination extension has `answer_to_ref`, [`concord_incident::answer_to`]).
    Answers,
}

impl Home {
    /// The object types read.
    fn object_type(self) -> &'static str {
        match self {
            Home::Sightings => "sighting",
            Home::Answers => "task",
        }
    }

    /// The door's name in the audit log.
    fn door(self) -> &'static str {
        match self {
            Home::Sightings => "sync-sightings",
            Home::Answers => "sync-answers",
        }
    }

    /// The id of the peer's object that `v` refers to, which makes `v` go home.
    fn target(self, v: &Value) -> Option<&str> {
        match self {
            Home::Sightings => v.get("sighting_of_ref").and_then(Value::as_str),
            Home::Answers => concord_incident::answer_to(v),
        }
    }

    /// The setting of the cursor over collection `c` for `peer`.
    fn cursor_key(self, peer: &str, c: &str) -> String {
        match self {
            Home::Sightings => format!("sync/{peer}/sightings/{c}"),
            Home::Answers => format!("sync/{peer}/answers/{c}"),
        }
    }
}

/// POSTs one envelope and polls its status resource until complete (TAXII 2.1 §4.3.1:
/// `status` is `pending` until every object is processed). Returns the objects the peer
/// took (successes, pending ones counted as failures when the wait ends).
fn post(
    client: &Client,
    remote: &str,
    envelope: &[&Outgoing],
    report: &mut RoundReport,
) -> Result<usize, SyncError> {
    let mut text = String::from("{\"objects\":[");
    for (i, o) in envelope.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&o.body);
    }
    text.push_str("]}");
    report.bytes_sent += text.len() as u64;
    let mut status = client.post_envelope(remote, &text)?;
    let mut wait = Duration::from_millis(50);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while status.get("status").and_then(Value::as_str) != Some("complete") {
        if std::time::Instant::now() > deadline {
            return Err(SyncError::Config(format!(
                "status {} still pending after 120 s",
                status.get("id").and_then(Value::as_str).unwrap_or("?")
            )));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(2));
        let id = status
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| SyncError::Config("status resource without id".into()))?
            .to_owned();
        status = client.status(&id)?;
    }
    for f in status
        .get("failures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        report.push_failures.push(format!(
            "{}: {}",
            f.get("id").and_then(Value::as_str).unwrap_or("?"),
            f.get("message")
                .and_then(Value::as_str)
                .unwrap_or("refused")
        ));
    }
    let failures = status
        .get("failure_count")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    Ok(envelope.len().saturating_sub(failures))
}

/// Sightings of indicators received from the peer go home to it (issue 7, item 5), and so
/// do answers to its requests for assistance (issue 18): from every local collection, the
/// sightings (answers) added since the last round whose `sighting_of_ref` (`answer_to_ref`)
/// was received from this peer, to the remote collection of the peer's first pull mapping,
/// within the peer's policy.
#[allow(clippy::too_many_arguments)]
fn sightings_home(
    store: &dyn Store,
    client: &Client,
    peer: &Peer,
    resolved: &[(&Mapping, String)],
    partner: &PartnerProfile,
    cx: &PolicyContext<'_>,
    max: usize,
    lease: &Lease<'_>,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let Some((_, home)) = resolved.iter().find(|(m, _)| m.pull) else {
        return Ok(());
    };
    for kind in [Home::Sightings, Home::Answers] {
        let filter = ObjectFilter {
            types: vec![kind.object_type().into()],
            versions: vec![VersionSelector::All],
            spec_versions: vec!["2.1".into()],
            ..ObjectFilter::default()
        };
        for c in store.collections()? {
            let key = kind.cursor_key(&peer.name, &c.id);
            pages_after_cursor(store, &c.id, &filter, &key, lease, |entries| {
                send(
                    store,
                    client,
                    peer,
                    &c.id,
                    home,
                    partner,
                    cx,
                    max,
                    entries,
                    report,
                    Some(kind),
                )
                .map(|_| ())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewind_is_one_microsecond_earlier() {
        assert_eq!(
            rewind("2026-01-01T00:00:00.000001Z"),
            "2026-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            rewind("2026-01-01T00:00:00Z"),
            "2025-12-31T23:59:59.999999Z"
        );
        assert_eq!(rewind("garbage"), "garbage");
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            date_added_ns: 1,
            id: "x--1".into(),
            version_key: "99991231T235959.000000000Z".into(),
            seq: 3,
        };
        assert_eq!(cursor_from_json(&cursor_to_json(&c)), Some(c));
        // Saved by an earlier Concord: the version in nanoseconds.
        assert_eq!(
            cursor_from_json(r#"[1,"x--1",2,3]"#).map(|c| c.version_key),
            Some("19700101T000000.000000002Z".to_owned())
        );
        assert_eq!(cursor_from_json("[1]"), None);
    }

    #[test]
    fn remote_collections_by_id_or_unique_title() {
        let cs = vec![
            serde_json::json!({"id": "a", "title": "Intel"}),
            serde_json::json!({"id": "b", "title": "Dup"}),
            serde_json::json!({"id": "c", "title": "Dup"}),
        ];
        assert_eq!(resolve(&cs, "a", "p").unwrap(), "a");
        assert_eq!(resolve(&cs, "Intel", "p").unwrap(), "a");
        assert!(
            resolve(&cs, "Dup", "p")
                .unwrap_err()
                .to_string()
                .contains("2 collections")
        );
        assert!(
            resolve(&cs, "x", "p")
                .unwrap_err()
                .to_string()
                .contains("it offers")
        );
    }
}
