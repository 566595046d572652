//! # concord-egress: the one egress door
//!
//! Every byte a partner receives of a collection — objects, ids, versions, counts, cursors —
//! is built here, and nowhere else: TAXII objects, object, versions and manifest; `concord
//! export` (STIX, MISP); sync push and sightings home; `POST /api/match`; the web UI's pages;
//! the tombstones of deleted versions ([`tombstones`]).
//! Given an [`Audience`], a door name, a collection and a query, [`Egress`]:
//!
//! 1. reads entries from the store;
//! 2. decides each object version once ([`concord_policy::egress::egress`]: TLP by content
//!    under any marking id, important data, granular markings, personal-data actions), with
//!    the marking definitions it references resolved from the collection — an object whose
//!    markings cannot be resolved is withheld (fail closed, like Cedar's default deny);
//! 3. follows every reference (`*_ref`, `*_refs`, at any depth, markings aside) to the
//!    object it names, decided for the same audience: a reference to an object the audience
//!    does not receive is removed where the property is optional and the copy stays valid
//!    STIX, and the referring object is withheld where it is required (`source_ref`,
//!    `sighting_of_ref`, a last `object_refs` entry);
//! 4. gives every SCO whose copy differs from the stored object a new id from a keyed
//!    mapping of its stored id ([`Egress::audience_id`]): the same on every page, request,
//!    export and sync batch for one audience, so references resolve everywhere, and
//!    unrelated to the value (a stored SCO id is the UUIDv5 of its value: sending it would
//!    let a partner test a guessed e-mail address);
//! 5. appends the audit records of the transfer before anything is returned;
//! 6. returns the page with an opaque `next` cursor, encrypted and authenticated under a key
//!    derived from the node secret and bound to the collection and the audience.
//!
//! What leaves is what was decided on: each stored object is parsed strictly (no repeated
//! member names, [`concord_stix::parse_object`]), so the stored bytes sent unchanged are
//! exactly the value decided on; anything rewritten is re-serialised from the decided copy.
//!
//! The operator (the admin token, the CLI without `--partner`) receives the stored objects
//! as they are; its transfers are audited the same way.
//!
//! "Exists but not for you" answers as "does not exist" in bytes here; in time, the work of
//! deciding a withheld object is hidden by the server's answer floor
//! (`concord_server::limits::AnswerFloor`), which a door that answers a partner's question
//! about an id applies around this crate's page. What a partner writes is answered as if
//! the versions it does not receive did not exist ([`Egress::writer_view`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use concord_policy::actions::Policy;
use concord_policy::egress::{
    CollectionSharing, Decision, EgressContext, ExplainStep, MarkingClass, Markings,
    PartnerProfile, is_reference_key, marking_refs, references, sharing_setting_key,
};
use concord_policy::explain::Clause;
use concord_stix::validate::{ObjectKind, kind_of};
use concord_store::{
    AuditRecord, Cursor, Entry, ForeignVersions, ObjectFilter, PageRequest, Store, StoreError,
    VersionSelector, audit::RowNames, partner_provenance,
};
use keyed::{keyed_id, stored_candidates};

pub mod agreement;
pub mod audit;
mod keyed;
pub mod tombstones;

pub use audit::{BASE_POLICY_VERSION, Door};
pub use tombstones::{Tombstone, TombstonePage, names_date_added};

/// Who receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The node's operator (`admin` over TAXII, `operator` in the CLI): every object as
    /// stored. The name is what the audit log records.
    Operator(String),
    /// A partner organisation, under the node's egress policy.
    Partner(PartnerProfile),
}

impl Audience {
    /// The name the audit log records and cursors are bound to.
    pub fn name(&self) -> &str {
        match self {
            Audience::Operator(n) => n,
            Audience::Partner(p) => &p.name,
        }
    }
}

/// Why the door could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `next` token was not issued by this node for this collection and audience, or
    /// was edited or truncated (TAXII answers 400 naming `next`).
    #[error("next: not a token issued by this server for this collection")]
    BadCursor,
    /// The node's configuration cannot be used (an unreadable sharing setting, no node
    /// secret); the message names it.
    #[error("{0}")]
    Config(String),
    /// The node is stopping ([`Egress::with_cancel`]): the scan gave up between store steps.
    #[error("cancelled: the node is stopping")]
    Cancelled,
}

/// One object version as the audience receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The id the audience sees: the stored id, or for a rewritten SCO its keyed new id.
    pub id: String,
    /// `date_added`, nanoseconds since the epoch.
    pub date_added_ns: i64,
    /// The version (TAXII) as its sortable key ([`concord_stix::Timestamp::sort_key`]).
    pub version_key: String,
    /// The version as text ([`Entry::version`]).
    pub version: String,
    /// The object's type.
    pub object_type: String,
    /// `"2.1"` or `"2.0"`.
    pub spec_version: String,
    /// The object as the audience receives it (stored bytes, or the rewritten copy); `None`
    /// when the caller did not ask for bodies.
    pub body: Option<String>,
    /// Whether the copy differs from what is stored.
    pub rewritten: bool,
    /// The stored version row ([`Entry::vid`]): two entries of a collection may share an
    /// `(id, modified)` ([`concord_store::WriteBatch::add_unseen`]), the row tells them
    /// apart (a partner's DELETE removes only the rows it receives).
    pub vid: i64,
}

impl Sent {
    /// What the audience receives of the stored entry `e`: under `id`, as `body`.
    fn of(e: &Entry, id: String, body: Option<String>, rewritten: bool) -> Sent {
        Sent {
            id,
            date_added_ns: e.date_added_ns,
            version_key: e.version_key.clone(),
            version: e.version(),
            object_type: e.object_type.clone(),
            spec_version: e.spec_version.clone(),
            body,
            rewritten,
            vid: e.vid,
        }
    }
}

/// A page as it leaves the node.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    /// What the audience receives, in `date_added` order.
    pub entries: Vec<Sent>,
    /// Whether more entries may follow (TAXII `more`).
    pub more: bool,
    /// The opaque token that resumes after this page (TAXII `next`), when `more`.
    pub next: Option<String>,
    /// Entries decided for this page and withheld: for the node's own reports (`concord
    /// export`), never sent to the audience.
    pub withheld: usize,
}

/// What [`Egress::explain`] found: the rules in order, and the copy or why there is none.
#[derive(Clone, Debug)]
pub struct Explained {
    /// Rule by rule, in the order applied.
    pub steps: Vec<ExplainStep>,
    /// What the partner receives; `None` when withheld.
    pub sent: Option<Sent>,
    /// Why it is withheld.
    pub withheld: Option<String>,
}

/// A paged read: TAXII's filters, `limit` and `next`.
#[derive(Clone, Debug)]
pub struct PageQuery {
    /// Collection id.
    pub collection_id: String,
    /// The filters of TAXII 2.1 §3.4.2. For a partner, `match[id]` compares with the ids it
    /// receives (a renamed SCO answers to its new id only).
    pub filter: ObjectFilter,
    /// At most this many entries (≥ 1).
    pub limit: usize,
    /// The `next` token of the previous page, as the client sent it.
    pub next: Option<String>,
    /// Whether the caller needs the objects (objects, export) or only ids and versions
    /// (manifest, versions).
    pub want_body: bool,
    /// At most this many bytes of bodies (as the audience receives them) on the page
    /// (issue 16, item 3): the page ends before the object that would cross it, with `more`
    /// and a `next` that resumes at that object. A page always holds at least one object,
    /// whatever its size. Ignored without bodies (`want_body` false). Default
    /// [`DEFAULT_PAGE_BYTES`].
    pub max_bytes: usize,
}

/// The default byte cap of a page ([`PageQuery::max_bytes`]): 16 MiB.
pub const DEFAULT_PAGE_BYTES: usize = 16 << 20;

/// Entries scanned per request at most, in units of `limit` (and at least
/// [`MIN_SCAN_BUDGET`]): a page of a collection whose entries are mostly withheld ends early
/// with `more` and a cursor, so one request's work stays bounded.
pub const SCAN_BUDGET_PAGES: usize = 4;
/// The smallest scan budget of a request, in entries.
pub const MIN_SCAN_BUDGET: usize = 1000;
/// How deep references are followed to decide whether their target is received; deeper
/// targets count as not received (fail closed). Real chains are short but not trivial
/// (ATT&CK: detection strategy → analytic → data component → data source → identity); the
/// bound keeps a hostile chain of references from exhausting the stack, and each object is
/// decided once per request whatever the depth.
pub const MAX_REF_DEPTH: usize = 24;
/// `next` tokens hold their cursor padded to a multiple of this many bytes: one size for
/// every cursor of an id whose type has fewer than about 150 characters (every type in
/// use), and a token of 395 characters, within the TAXII query's 512.
const CURSOR_PAD: usize = 256;
/// The door name under which [`Egress::decide_unrecorded`] decides (an index of what a
/// partner may see, never sent as such; not an automated door).
const INDEX_DOOR: &str = "index";
/// Entries read from the store per step while paging.
const STORE_STEP: usize = 1000;

/// Adds the name of the version row `e` was read from (its object id and `modified` as
/// stored) to `names`, for [`Egress::record`]; not a decoy's (vid 0: no row).
fn name_row(names: &mut RowNames, e: &Entry) {
    if e.vid > 0 {
        names.insert(e.vid, (e.id.clone(), e.version_text.clone()));
    }
}

/// The id of [`decoy_entry`]: a UUIDv4 no producer makes (its random bits spell "decoy").
const DECOY_ID: &str = "indicator--dec0dec0-dec0-4dec-8dec-0dec0dec0dec";

/// What a look-up that finds nothing decides instead, so that its CPU time is that of one
/// that finds an object withheld from the partner ([`Egress::scan`], timing oracle F2): a
/// TLP:RED indicator of a typical size (about 700 bytes). Never sent, never audited as such.
/// Built once; each look-up decides a copy, as one that finds an object decides the copy
/// the store read.
static DECOY: std::sync::LazyLock<Entry> = std::sync::LazyLock::new(decoy_entry);

/// [`DECOY`].
fn decoy_entry() -> Entry {
    const T: &str = "2024-01-01T00:00:00.000Z";
    let body = serde_json::json!({
        "type": "indicator", "spec_version": "2.1", "id": DECOY_ID,
        "created": T, "modified": T, "valid_from": T, "pattern_type": "stix",
        "name": "decoy", "indicator_types": ["malicious-activity"],
        "pattern": "[domain-name:value = 'decoy.example.invalid']",
        "description": "d".repeat(400),
        "object_marking_refs": ["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"],
    })
    .to_string();
    Entry {
        id: DECOY_ID.to_owned(),
        date_added_ns: 0,
        version_key: concord_stix::Timestamp::parse(T)
            .map(|t| t.sort_key())
            .unwrap_or_default(),
        version_text: Some(T.to_owned()),
        spec_version: "2.1".to_owned(),
        object_type: "indicator".to_owned(),
        body: Some(body),
        seq: 0,
        vid: 0,
    }
}

/// Entries whose markings and references are read ahead together (one look-up each). Small:
/// the parsed objects of a chunk (a few KiB of tree each) are decided while still in the
/// CPU's cache; 16 against 128 made a page 5-10 % cheaper (door_bench, issue 15), and the
/// extra look-ups only happen while the fates are not yet kept.
const PREFETCH: usize = 16;

/// What one page may hold: entries and bytes of bodies.
#[derive(Clone, Copy, Debug)]
struct Cap {
    /// Entries (≥ 1).
    limit: usize,
    /// Bytes of bodies; the first entry is always taken.
    bytes: usize,
}

/// The egress door of a node: the store, the compiled policy and the door's keys.
#[derive(Clone)]
pub struct Egress {
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    /// Key of the `next` tokens (derived from the node secret); `None` without a secret.
    cursor_key: Option<[u8; 32]>,
    /// Decided fates of referenced objects, kept between requests.
    fate_cache: Arc<FateCache>,
    /// Set when the node is stopping: a long scan gives up at its next store step, so that
    /// `serve` stops within its grace (issue 16, item 6).
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Who acts through this door (issue 20): recorded as the audit entries' `person`.
    person: Option<Arc<str>>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Egress")
            .field("policy", &self.policy.version)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The TLP the egress door applies to an object ([`Egress::effective_tlp`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EffectiveTlp {
    /// The strictest TLP of the object's `object_marking_refs`.
    Marked(concord_policy::tlp::Tlp),
    /// The object has no TLP marking: the collection's `default_tlp`.
    CollectionDefault(concord_policy::tlp::Tlp),
    /// A marking cannot be resolved (the reason): the object is withheld from partners.
    Undecidable(String),
}

/// Why nothing goes to `partner` at `now_ns`: the agreement its node holds with this node
/// (received by sync, [`agreement::received_for_partner`]) ended; the receiving side
/// enforces it as the issuer does. Errors: the store.
fn received_ended(
    store: &dyn Store,
    partner: &PartnerProfile,
    now_ns: i64,
) -> Result<Option<Clause>, StoreError> {
    Ok(
        agreement::received_for_partner(store, &partner.name)?.and_then(|r| {
            let end = r.end_ns()?;
            (now_ns >= end).then(|| {
                let version: concord_policy::explain::Arg = match r.statement.version.as_deref() {
                    Some(v) => v.into(),
                    None => Clause::new("agreement-version-none").into(),
                };
                Clause::new("agreement-received-ended")
                    .with("partner", &partner.name)
                    .with("version", version)
                    .with("end", r.end_date().unwrap_or("?"))
            })
        }),
    )
}

/// How a collection is shared (`concord collection share`), from the node setting
/// [`sharing_setting_key`]; the default sharing (TLP:AMBER, the whole community) when none
/// was set. The one reader of that setting: the door, `policy explain`, the CLI and the web
/// UI all show what the door applies. Errors: the store, or an unreadable setting
/// ([`EgressError::Config`], naming the collection and the rule broken).
pub fn collection_sharing(
    store: &dyn Store,
    collection_id: &str,
) -> Result<CollectionSharing, EgressError> {
    match store.setting(&sharing_setting_key(collection_id))? {
        Some(text) => CollectionSharing::from_json(&text)
            .map_err(|e| EgressError::Config(format!("sharing of {collection_id}: {e}"))),
        None => Ok(CollectionSharing::default()),
    }
}

impl Egress {
    /// The door over `store` under `policy` (built by the server's `node_policy`, which
    /// also creates the node secret the keys derive from).
    pub fn new(store: Arc<dyn Store>, policy: Arc<Policy>) -> Egress {
        let cursor_key = policy
            .keys
            .node_secret
            .as_deref()
            .map(|s| hmac(s, &[b"concord/next-token/v1"]));
        Egress {
            store,
            policy,
            cursor_key,
            fate_cache: Arc::new(FateCache::with_limit(DEFAULT_DECISION_CACHE_BYTES)),
            cancel: None,
            person: None,
        }
    }

    /// The same door, keeping at most `bytes` of decided page entries between requests
    /// ([`DEFAULT_DECISION_CACHE_BYTES`] unless set; 0 keeps none and decides every entry of
    /// every page). Starts with empty caches: call it when the door is built, before it is
    /// cloned for requests.
    pub fn with_decision_cache(mut self, bytes: usize) -> Egress {
        self.fate_cache = Arc::new(FateCache::with_limit(bytes));
        self
    }

    /// Bytes of decided page entries kept now (an estimate of their heap size, the unit
    /// of [`Egress::with_decision_cache`]); never more than the limit.
    pub fn decision_cache_bytes(&self) -> usize {
        self.fate_cache
            .used
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The same door, giving up long scans once `cancel` is set
    /// ([`EgressError::Cancelled`], checked once per store step).
    pub fn with_cancel(mut self, cancel: Arc<std::sync::atomic::AtomicBool>) -> Egress {
        self.cancel = Some(cancel);
        self
    }

    /// The same door, its audit entries naming `person` as who acted (issue 20):
    /// `user:NAME`, `admin-token`, `operator`, `key:KEY_ID`. A clone is cheap (shared
    /// store, policy and caches), so a door per request is the way to name its actor.
    pub fn acting_as(mut self, person: impl Into<String>) -> Egress {
        self.person = Some(Arc::from(person.into()));
        self
    }

    /// Who acts through this door ([`Egress::acting_as`]); `None`: no one named.
    pub fn person(&self) -> Option<&str> {
        self.person.as_deref()
    }

    /// The node's compiled policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How a collection is shared (`concord collection share`), from its node setting; the
    /// default sharing when none was set. Errors: the store, an unreadable setting.
    pub fn sharing(&self, collection_id: &str) -> Result<CollectionSharing, EgressError> {
        collection_sharing(self.store.as_ref(), collection_id)
    }

    /// A text that changes whenever something the door's decisions on `collection_id` for
    /// `partner` depend on changes, other than the objects themselves: the policy version,
    /// the collection's sharing, the partner's profile, and whether an agreement stops
    /// everything now ([`Egress::agreement_stop`]: its period, with the clock). What a cache
    /// of decided copies (the web UI's index of a partner's copies) keys on, so that it is
    /// never read under rules that no longer hold. Errors: the store, an unreadable sharing
    /// setting.
    pub fn decision_stamp(
        &self,
        partner: &PartnerProfile,
        collection_id: &str,
    ) -> Result<String, EgressError> {
        let sharing = self.sharing(collection_id)?;
        let now = concord_stix::Timestamp::now_micros().unix_nanos();
        Ok(serde_json::json!([
            self.policy.version,
            sharing.to_json(),
            partner.name,
            partner.jurisdiction,
            partner.groups,
            self.agreement_stop(partner, now)?,
        ])
        .to_string())
    }

    /// Why nothing at all goes to `partner` at `now_ns` (ns since the epoch), whatever the
    /// object: this node's agreement with it is outside its period (IEP 2.0 start and end
    /// dates), or the agreement its node holds with this node (received by sync) ended.
    /// `None` when things may flow. For the doors that send something other than objects
    /// decided one by one (tombstones), and for caches of decisions. Errors: the store.
    pub fn agreement_stop(
        &self,
        partner: &PartnerProfile,
        now_ns: i64,
    ) -> Result<Option<String>, EgressError> {
        Ok(self
            .agreement_stop_clause(partner, now_ns)?
            .map(|c| c.to_string()))
    }

    /// [`Egress::agreement_stop`] as a [`Clause`] (`agreement-ended`, `agreement-not-yet`,
    /// `agreement-received-ended`), for explanations in any language.
    pub fn agreement_stop_clause(
        &self,
        partner: &PartnerProfile,
        now_ns: i64,
    ) -> Result<Option<Clause>, EgressError> {
        if let Some((name, a, period)) = self.policy.agreement(partner)
            && !period.in_effect(now_ns)
        {
            return Ok(Some(match (&a.end_date, period.end_ns) {
                (Some(end), Some(e)) if now_ns >= e => Clause::new("agreement-ended")
                    .with("agreement", name)
                    .with("partner", &partner.name)
                    .with("end", end),
                _ => Clause::new("agreement-not-yet")
                    .with("agreement", name)
                    .with("partner", &partner.name)
                    .with("start", a.start_date.as_deref().unwrap_or("?")),
            }));
        }
        Ok(received_ended(self.store.as_ref(), partner, now_ns)?)
    }

    /// The TLP this door applies to `object` (a stored object of `collection_id`): the
    /// strictest TLP of its `object_marking_refs`, each read through the collection's
    /// marking definitions (TLP by content under any id, as the door reads them), else the
    /// collection's `default_tlp` ([`collection_sharing`]). What the web UI's badge shows
    /// (issue 25). Errors: the store, an unreadable sharing setting. A marking that cannot
    /// be resolved gives [`EffectiveTlp::Undecidable`]: the door withholds such an object.
    pub fn effective_tlp(
        &self,
        collection_id: &str,
        object: &Value,
    ) -> Result<EffectiveTlp, EgressError> {
        let mut markings = Markings::default();
        let wanted: Vec<String> = marking_refs(object)
            .into_iter()
            .filter(|m| markings.class(m).is_none())
            .map(str::to_owned)
            .collect();
        if !wanted.is_empty() {
            let filter = ObjectFilter {
                versions: vec![VersionSelector::Last],
                ids: wanted.clone(),
                ..ObjectFilter::default()
            };
            let page = self.store.entries(
                collection_id,
                &filter,
                &PageRequest {
                    limit: wanted.len() + 1,
                    after: None,
                },
                true,
            )?;
            for e in page.entries {
                // Strict, as the door reads definitions: repeated member names resolve to
                // nothing.
                if let Some(v) = e
                    .body
                    .as_deref()
                    .and_then(|b| concord_stix::parse_object(b).ok())
                {
                    markings.add(&v);
                }
            }
        }
        Ok(
            match concord_policy::egress::object_tlp(object, &markings, &self.policy) {
                Ok(Some(t)) => EffectiveTlp::Marked(t),
                Ok(None) => {
                    EffectiveTlp::CollectionDefault(self.sharing(collection_id)?.default_tlp)
                }
                Err(reason) => EffectiveTlp::Undecidable(reason.to_string()),
            },
        )
    }

    /// Appends the records of one transfer to the audit log as one entry with `digest`, the
    /// SHA-256 of what left ([`audit::transfer_digest`]), before anything leaves, and counts
    /// them in the metrics: `concord_egress_objects_total{door, decision}` (sent,
    /// rewritten, withheld) and `concord_audit_records_total`.
    fn record(
        &self,
        records: &[AuditRecord],
        names: &RowNames,
        digest: [u8; 32],
    ) -> Result<(), EgressError> {
        // The names of the rows as this page read them: the entry's names digest needs no
        // look-up of its own (issue 17: the append is on the read's path).
        self.store
            .append_named_transfer(records, names, Some(digest))?;
        metrics::counter!("concord_audit_records_total").increment(records.len() as u64);
        let mut by: Vec<(&str, &str, u64)> = Vec::new();
        for r in records {
            match by
                .iter_mut()
                .find(|(d, x, _)| *d == r.door && *x == r.decision)
            {
                Some(slot) => slot.2 += 1,
                None => by.push((&r.door, &r.decision, 1)),
            }
        }
        for (door, decision, n) in by {
            metrics::counter!(
                "concord_egress_objects_total",
                "door" => door.to_owned(),
                "decision" => decision.to_owned()
            )
            .increment(n);
        }
        Ok(())
    }

    /// One page of `query.collection_id` for `audience` through `door` (its name in the
    /// audit log): decided, rewritten, audited, with an opaque `next`. A partner's page may
    /// hold fewer than `limit` entries (TAXII 2.1 §3.4.1 allows it) when the scan budget
    /// ([`SCAN_BUDGET_PAGES`]) ends it early. Errors: a `next` not issued for this
    /// collection and audience ([`EgressError::BadCursor`]), the store, the configuration.
    pub fn page(
        &self,
        audience: &Audience,
        door: &str,
        query: &PageQuery,
    ) -> Result<Transfer, EgressError> {
        self.page_with(audience, door, query, false)
    }

    /// [`Egress::page`] and [`Egress::follow`]: one scan, one audit entry; `follow` says
    /// which `next` comes back (TAXII's: only when `more`; a stream's: always).
    fn page_with(
        &self,
        audience: &Audience,
        door: &str,
        query: &PageQuery,
        follow: bool,
    ) -> Result<Transfer, EgressError> {
        let after = match &query.next {
            Some(token) => Some(self.open_cursor(token, &query.collection_id, audience)?),
            None => None,
        };
        let cap = Cap {
            limit: query.limit.max(1),
            bytes: if query.want_body {
                query.max_bytes
            } else {
                usize::MAX
            },
        };
        let (transfer, resume) = self.scan_capped(
            audience,
            door,
            &query.collection_id,
            &query.filter,
            after,
            cap,
            query.want_body,
        )?;
        let next = match resume {
            Some(c) if follow || transfer.more => {
                Some(self.seal_cursor(&c, &query.collection_id, audience)?)
            }
            // A stream that decided nothing resumes where it was.
            _ if follow => query.next.clone(),
            _ => None,
        };
        Ok(Transfer { next, ..transfer })
    }

    /// [`Egress::page`] for a door that follows a collection as it grows (the SSE stream):
    /// the same decisions, rewrites, audit entry and page, but `next` is always the token
    /// that resumes after the last entry decided on this page, also when `more` is false (a
    /// TAXII page then has no `next`), and the `query.next` given back unchanged when the
    /// page decided nothing. It is a token of the same kind as TAXII's `next` (sealed for
    /// this collection and audience): a stream resumed from it, or a TAXII page asked with
    /// it, continues exactly after this page, without a gap or a repeat. Errors: as
    /// [`Egress::page`].
    pub fn follow(
        &self,
        audience: &Audience,
        door: &str,
        query: &PageQuery,
    ) -> Result<Transfer, EgressError> {
        self.page_with(audience, door, query, true)
    }

    /// [`Egress::page`] with the store's own cursor, for the node's own loops (export,
    /// `/api/match`, sync push) that never hand a cursor to anyone: returns the transfer
    /// (its `next` is `None`) and the position to resume after, when `more`.
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &self,
        audience: &Audience,
        door: &str,
        collection_id: &str,
        filter: &ObjectFilter,
        after: Option<Cursor>,
        limit: usize,
        want_body: bool,
    ) -> Result<(Transfer, Option<Cursor>), EgressError> {
        let cap = Cap {
            limit: limit.max(1),
            bytes: usize::MAX,
        };
        let (transfer, resume) =
            self.scan_capped(audience, door, collection_id, filter, after, cap, want_body)?;
        let resume = resume.filter(|_| transfer.more);
        Ok((transfer, resume))
    }

    /// [`Egress::scan`] for a door that follows a collection as it grows (webhooks): at most
    /// `limit` entries and `max_bytes` bytes of bodies (the first entry is always taken,
    /// whatever its size), with bodies. Returns the transfer and the position after the last
    /// entry decided (and audited), also when `more` is false, so the caller resumes there
    /// without a gap or a repeat; `None` when nothing was decided. Errors: as
    /// [`Egress::scan`].
    #[allow(clippy::too_many_arguments)]
    pub fn scan_following(
        &self,
        audience: &Audience,
        door: &str,
        collection_id: &str,
        filter: &ObjectFilter,
        after: Option<Cursor>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Transfer, Option<Cursor>), EgressError> {
        let cap = Cap {
            limit: limit.max(1),
            bytes: max_bytes,
        };
        self.scan_capped(audience, door, collection_id, filter, after, cap, true)
    }

    /// [`Egress::scan`] held to `cap`: its entries and the bytes of their bodies. The
    /// position returned is after the last entry decided (and audited), also when `more` is
    /// false; `None` when nothing was decided.
    #[allow(clippy::too_many_arguments)]
    fn scan_capped(
        &self,
        audience: &Audience,
        door: &str,
        collection_id: &str,
        filter: &ObjectFilter,
        after: Option<Cursor>,
        cap: Cap,
        want_body: bool,
    ) -> Result<(Transfer, Option<Cursor>), EgressError> {
        match audience {
            Audience::Operator(name) => {
                self.scan_operator(name, door, collection_id, filter, after, cap, want_body)
            }
            Audience::Partner(partner) => {
                self.scan_partner(partner, door, collection_id, filter, after, cap, want_body)
            }
        }
    }

    /// The operator's page: the stored entries as they are, read in steps of
    /// [`STORE_STEP`] so that a page cut by its byte cap has not read far past it.
    #[allow(clippy::too_many_arguments)]
    fn scan_operator(
        &self,
        name: &str,
        door: &str,
        collection_id: &str,
        filter: &ObjectFilter,
        mut after: Option<Cursor>,
        cap: Cap,
        want_body: bool,
    ) -> Result<(Transfer, Option<Cursor>), EgressError> {
        let d = Door {
            door,
            partner: name,
            person: self.person.as_deref(),
            collection: collection_id,
            policy_version: BASE_POLICY_VERSION,
        };
        let mut kept: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let more = 'scan: loop {
            self.check_cancel()?;
            let step = STORE_STEP.min(cap.limit - kept.len());
            let page = self.store.entries(
                collection_id,
                filter,
                &PageRequest {
                    limit: step,
                    after: after.take(),
                },
                want_body,
            )?;
            for e in page.entries {
                let len = e.body.as_ref().map_or(0, String::len);
                if !kept.is_empty() && bytes.saturating_add(len) > cap.bytes {
                    break 'scan true;
                }
                bytes += len;
                kept.push(e);
            }
            if !page.more {
                break false;
            }
            if kept.len() == cap.limit {
                break true;
            }
            after = kept.last().map(Entry::cursor);
        };
        let records: Vec<AuditRecord> = kept.iter().map(|e| d.sent(e)).collect();
        let mut names = RowNames::with_capacity(kept.len());
        kept.iter().for_each(|e| name_row(&mut names, e));
        let resume = kept.last().map(Entry::cursor);
        let entries: Vec<Sent> = kept
            .into_iter()
            .map(|e| sent_as_stored(e, want_body))
            .collect();
        // Recorded, with the digest of what leaves, before it leaves.
        self.record(&records, &names, audit::sent_digest(&entries))?;
        Ok((
            Transfer {
                entries,
                more,
                next: None,
                withheld: 0,
            },
            resume,
        ))
    }

    /// [`EgressError::Cancelled`] once the node is stopping ([`Egress::with_cancel`]).
    fn check_cancel(&self) -> Result<(), EgressError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(EgressError::Cancelled);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_partner(
        &self,
        partner: &PartnerProfile,
        door: &str,
        collection_id: &str,
        filter: &ObjectFilter,
        mut after: Option<Cursor>,
        cap: Cap,
        want_body: bool,
    ) -> Result<(Transfer, Option<Cursor>), EgressError> {
        // A partner reads its own foreign versions (what it wrote of others' objects that
        // are withheld from it) and nobody else's.
        let own = ObjectFilter {
            foreign: ForeignVersions::Of(partner_provenance(&partner.name)),
            ..filter.clone()
        };
        let filter = &own;
        // A question about ids, first page: what it costs must not tell whether they exist.
        let asked_ids = if after.is_none() {
            let mut asked: Vec<&str> = filter.ids.iter().map(String::as_str).collect();
            asked.sort_unstable();
            asked.dedup();
            asked.len()
        } else {
            0
        };
        let limit = cap.limit;
        let mut bytes = 0usize;
        let mut decider = Decider::new(self, collection_id, partner, door)?;
        decider.reuse = filter.ids.is_empty();
        let d = Door {
            door,
            partner: &partner.name,
            person: self.person.as_deref(),
            collection: collection_id,
            policy_version: &self.policy.version,
        };
        // `match[id]` is answered on the ids the partner receives: the store finds stored
        // ids, and an entry whose id the partner would not see under that name is dropped,
        // so asking for the stored id of a pseudonymised SCO finds nothing.
        let wanted: Option<HashSet<&str>> =
            (!filter.ids.is_empty()).then(|| filter.ids.iter().map(String::as_str).collect());
        // The keyed id of a renamed SCO is the only name the partner knows it by, and the
        // store does not know it: each id asked for is turned back into the stored ids it
        // may come from (eight candidates, [`stored_candidates`]), all looked up by id in
        // one query, whether anything exists or not; `wanted` keeps what the partner
        // receives under the ids asked for.
        let with_stored;
        let filter = match decider.group_key.as_deref() {
            Some(key)
                if filter.ids.iter().any(|id| {
                    id.split_once("--")
                        .is_some_and(|(t, _)| kind_of(t) == ObjectKind::Sco)
                }) =>
            {
                let mut ids = filter.ids.clone();
                for id in &filter.ids {
                    if id
                        .split_once("--")
                        .is_some_and(|(t, _)| kind_of(t) == ObjectKind::Sco)
                    {
                        ids.extend(stored_candidates(key, id));
                    }
                }
                ids.sort();
                ids.dedup();
                with_stored = ObjectFilter {
                    ids,
                    ..filter.clone()
                };
                &with_stored
            }
            _ => filter,
        };
        let budget = (limit * SCAN_BUDGET_PAGES).max(MIN_SCAN_BUDGET);
        // Under the default version selection each entry is its object's newest version in
        // the collection, the one references resolve to: its decision is also the fate of
        // references to it, on this page and (once exact) on the next requests.
        let newest_only = filter.spec_versions.is_empty()
            && filter
                .versions
                .iter()
                .all(|v| matches!(v, VersionSelector::Last));
        let mut out: Vec<Sent> = Vec::new();
        let mut records = Vec::new();
        let mut names = RowNames::new();
        let mut scanned = 0usize;
        let mut withheld = 0usize;
        // The stored ids the store found for the ids asked (each decided and audited).
        let mut found: HashSet<String> = HashSet::new();
        let mut resume: Option<Cursor> = None;
        let more;
        'scan: loop {
            self.check_cancel()?;
            // Read what the page still needs (and one more, to know `more`): entries read
            // and not sent are decided again on the next page.
            let step = STORE_STEP
                .min(budget - scanned)
                .min(limit.saturating_sub(out.len()) + 1)
                .max(1);
            let page = self.store.entries(
                collection_id,
                filter,
                &PageRequest {
                    limit: step,
                    after: after.clone(),
                },
                true,
            )?;
            let mut entries = page.entries;
            for i in 0..entries.len() {
                // Read ahead in chunks: the parsed objects of a chunk stay in the cache
                // until they are decided.
                if i % PREFETCH == 0 {
                    decider.prefetch(&entries[i..entries.len().min(i + PREFETCH)])?;
                }
                let e = &mut entries[i];
                scanned += 1;
                if asked_ids > 0 {
                    found.insert(e.id.clone());
                }
                let cursor = e.cursor();
                let outcome = decider.decide_page_entry(e, newest_only)?;
                let visible = match &outcome {
                    Outcome::Sent { id, .. } => {
                        wanted.as_ref().is_none_or(|w| w.contains(id.as_str()))
                    }
                    Outcome::Withheld(_) => false,
                };
                // The byte cap: a page that holds something ends before the object that
                // would cross it, and the next page starts with that object.
                if visible && want_body && !out.is_empty() {
                    let len = match &outcome {
                        Outcome::Sent { body: Some(b), .. } => b.len(),
                        _ => e.body.as_ref().map_or(0, String::len),
                    };
                    if bytes.saturating_add(len) > cap.bytes {
                        more = true;
                        break 'scan;
                    }
                }
                if out.len() == limit {
                    if visible {
                        // One more entry the partner would receive: `more` is true, and
                        // the next page starts with it.
                        more = true;
                        break 'scan;
                    }
                    // Entries after a full page are decided again on the next page, and
                    // audited there.
                    after = Some(cursor);
                    if scanned >= budget {
                        more = true;
                        break 'scan;
                    }
                    continue;
                }
                records.push(outcome.record(&d, e));
                name_row(&mut names, e);
                if matches!(outcome, Outcome::Withheld(_)) {
                    withheld += 1;
                }
                resume = Some(cursor.clone());
                after = Some(cursor);
                if visible
                    && let Outcome::Sent {
                        id,
                        body,
                        rewritten,
                    } = outcome
                {
                    let body = if want_body {
                        body.or(e.body.take())
                    } else {
                        None
                    };
                    bytes += body.as_ref().map_or(0, String::len);
                    out.push(Sent::of(e, id, body, rewritten));
                }
                if scanned >= budget {
                    more = page.more || out.len() == limit;
                    break 'scan;
                }
            }
            if !page.more {
                more = false;
                break;
            }
            if scanned >= budget {
                more = true;
                break;
            }
        }
        // Timing oracle F2 (issue 15): an id found is read, decided and audited; an id that
        // finds nothing costs as much CPU and the same audit append, so that neither the
        // answer (the same bytes) nor its time under load tells the two apart. A decoy of
        // typical size is decided through the same code path and sent nowhere; what the
        // audit log says is what happened: nothing left (withheld, no version row: 0), because
        // nothing under the id asked was there for the partner.
        let mut missing: Vec<&str> = if asked_ids > 0 {
            own.ids
                .iter()
                .map(String::as_str)
                .filter(|a| {
                    !found.contains(*a)
                        && !decider.group_key.as_deref().is_some_and(|key| {
                            stored_candidates(key, a)
                                .iter()
                                .any(|c| found.contains(c.as_str()))
                        })
                })
                .collect()
        } else {
            Vec::new()
        };
        missing.sort_unstable();
        missing.dedup();
        for asked in missing {
            let decoy = DECOY.clone();
            decider.prefetch(std::slice::from_ref(&decoy))?;
            let outcome = decider.decide_page_entry(&decoy, false)?;
            std::hint::black_box(&outcome);
            records.push(d.record(
                "egress",
                0,
                asked,
                String::new(),
                "withheld",
                vec!["asked about by id: nothing under this id for this partner".to_owned()],
            ));
        }
        self.record(&records, &names, audit::sent_digest(&out))?;
        Ok((
            Transfer {
                entries: out,
                more,
                next: None,
                withheld,
            },
            resume,
        ))
    }

    /// Decides entries the caller read itself (sync push pages with its own persisted
    /// cursor, and drops echoes before deciding): the same decisions, rewrites and
    /// references as [`Egress::page`], one audit append for the batch. Only what is
    /// returned may leave, with the ids given.
    ///
    /// `origin`: the peer the entries go to, when they go by sync; a reference to an object
    /// received from that very peer goes as written (the peer holds it: a sighting goes
    /// home to the producer of its indicator).
    pub fn decide_entries(
        &self,
        partner: &PartnerProfile,
        door: &str,
        collection_id: &str,
        entries: Vec<Entry>,
        origin: Option<&str>,
    ) -> Result<Vec<Sent>, EgressError> {
        let mut decider = Decider::new(self, collection_id, partner, door)?;
        decider.origin = origin;
        if origin.is_some() {
            decider.shared = None;
        }
        let d = Door {
            door,
            partner: &partner.name,
            person: self.person.as_deref(),
            collection: collection_id,
            policy_version: &self.policy.version,
        };
        decider.prefetch(&entries)?;
        let mut records = Vec::with_capacity(entries.len());
        let mut names = RowNames::with_capacity(entries.len());
        let mut out = Vec::new();
        for mut e in entries {
            let outcome = decider.decide(&e, 0)?;
            records.push(outcome.record(&d, &e));
            name_row(&mut names, &e);
            if let Outcome::Sent {
                id,
                body,
                rewritten,
            } = outcome
            {
                let body = body.or(e.body.take());
                out.push(Sent::of(&e, id, body, rewritten));
            }
        }
        self.record(&records, &names, audit::sent_digest(&out))?;
        Ok(out)
    }

    /// The decisions of [`Egress::decide_entries`] without an audit record, one per entry
    /// (`None`: withheld): for an index of what a partner may see (the web UI's search and
    /// graph) that is never sent as such. Whatever of it a page then shows goes through
    /// [`Egress::decide_entries`], which records it.
    pub fn decide_unrecorded(
        &self,
        partner: &PartnerProfile,
        collection_id: &str,
        entries: &[Entry],
    ) -> Result<Vec<Option<Sent>>, EgressError> {
        let mut decider = Decider::new(self, collection_id, partner, INDEX_DOOR)?;
        decider.prefetch(entries)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(match decider.decide(e, 0)? {
                Outcome::Sent {
                    id,
                    body,
                    rewritten,
                } => Some(Sent::of(e, id, body.or_else(|| e.body.clone()), rewritten)),
                Outcome::Withheld(_) => None,
            });
        }
        Ok(out)
    }

    /// How a partner's write of the object `header` (`body`: its bytes as written) into
    /// `collection_id` is taken, decided without recording anything (nothing leaves):
    /// - the version rows of the object, of any version and spec version, that the partner
    ///   does not receive count as absent ([`concord_store::WriteBatch::add_unseen`]; issue
    ///   15, the conflict oracle), and so do other writers' foreign versions;
    /// - when the node holds the object (in any collection) and the partner is not its
    ///   creator here (it did not bring the id first, [`Store::creators`]), only its
    ///   creator makes new versions of it (STIX 2.1 §3.6): a new version (`modified`) is
    ///   refused when the partner receives others' versions of it in this collection;
    ///   otherwise (withheld from it, held only elsewhere, or an object without `modified`
    ///   whose bytes differ) it is added as the partner's foreign version, which it reads
    ///   back as it would a new object and nobody else reads
    ///   ([`concord_store::WriteBatch::mark_foreign`]);
    /// - the same bytes or the same version as one it receives are taken as for anyone
    ///   (already present, or a conflict).
    ///
    /// `reader`: the partner, when it may read the collection; `None` for one that may only
    /// write it, which receives nothing. `writer`: the partner's name. Errors: the store,
    /// the configuration.
    pub fn writer_view(
        &self,
        reader: Option<&PartnerProfile>,
        writer: &str,
        collection_id: &str,
        header: &concord_stix::ObjectHeader,
        body: &str,
    ) -> Result<concord_store::WriterView, EgressError> {
        let own = partner_provenance(writer);
        let filter = |foreign: ForeignVersions| ObjectFilter {
            ids: vec![header.id.clone()],
            versions: vec![VersionSelector::All],
            spec_versions: vec!["2.0".to_owned(), "2.1".to_owned()],
            foreign,
            ..ObjectFilter::default()
        };
        let read = |c: &str, foreign: ForeignVersions| -> Result<Vec<Entry>, EgressError> {
            let filter = filter(foreign);
            let mut entries = Vec::new();
            let mut after = None;
            loop {
                let page = self.store.entries(
                    c,
                    &filter,
                    &PageRequest {
                        limit: STORE_STEP,
                        after: after.take(),
                    },
                    true,
                )?;
                after = page.entries.last().map(Entry::cursor);
                entries.extend(page.entries);
                if !page.more {
                    return Ok(entries);
                }
            }
        };
        let all = read(collection_id, ForeignVersions::All)?;
        // What the writer's own view holds: everything but other writers' foreign versions.
        let mine = read(collection_id, ForeignVersions::Of(own.clone()))?;
        let in_view: HashSet<i64> = mine.iter().map(|e| e.vid).collect();
        let mut unseen: Vec<i64> = all
            .iter()
            .filter(|e| !in_view.contains(&e.vid))
            .map(|e| e.vid)
            .collect();
        let received: Vec<&Entry> = match reader {
            Some(partner) => {
                let decided = self.decide_unrecorded(partner, collection_id, &mine)?;
                let mut received = Vec::new();
                for (e, d) in mine.iter().zip(decided) {
                    match d {
                        Some(_) => received.push(e),
                        None => unseen.push(e.vid),
                    }
                }
                received
            }
            None => {
                unseen.extend(mine.iter().map(|e| e.vid));
                Vec::new()
            }
        };
        let taken = concord_store::WriterView {
            unseen,
            refused: None,
            foreign: None,
        };
        // Its creator here, or an id new to the node: a write like anyone's.
        if self.store.creators(&header.id)?.contains(&own) {
            return Ok(taken);
        }
        // Held here, in another collection, or once (deleted since): not new.
        let held = !all.is_empty() || self.store.ever_held(&header.id)?;
        if !held {
            return Ok(taken);
        }
        // The same bytes, or the same version, as one it receives: already present or a
        // conflict, as for anyone.
        let key = header
            .modified
            .as_ref()
            .map(concord_stix::Timestamp::sort_key);
        if received.iter().any(|e| {
            e.body.as_deref() == Some(body)
                || (key.is_some() && key.as_ref() == Some(&e.version_key))
        }) {
            return Ok(taken);
        }
        // Others' versions it receives here (its own foreign ones are not others').
        let shared: HashSet<i64> = read(collection_id, ForeignVersions::Hidden)?
            .iter()
            .map(|e| e.vid)
            .collect();
        if let Some(version) = &header.modified
            && received.iter().any(|e| shared.contains(&e.vid))
        {
            return Ok(concord_store::WriterView {
                refused: Some(format!(
                    "{}: modified {version}: only an object's creator makes new versions of it \
                     (STIX 2.1 §3.6), and partner {writer} did not create {}",
                    header.id, header.id
                )),
                ..taken
            });
        }
        Ok(concord_store::WriterView {
            foreign: Some(own),
            ..taken
        })
    }

    /// What `partner` would receive of the stored object version `entry` of `collection_id`,
    /// with the rules that decided, without recording anything: `concord policy explain`
    /// and the web UI's "as partner" view. The steps are those of
    /// [`concord_policy::egress::explain`], then `references` and `identifier`.
    pub fn explain(
        &self,
        partner: &PartnerProfile,
        collection_id: &str,
        entry: &Entry,
    ) -> Result<Explained, EgressError> {
        self.explain_at(partner, collection_id, entry, "taxii-objects")
    }

    /// [`Egress::explain`] for the door `door` (its audit name: `feed-suricata`, `webhook`,
    /// `taxii-objects`…): an agreement and the PAP gate decide differently at the automated
    /// doors ([`concord_policy::agreement::is_automated_door`]).
    pub fn explain_at(
        &self,
        partner: &PartnerProfile,
        collection_id: &str,
        entry: &Entry,
        door: &str,
    ) -> Result<Explained, EgressError> {
        let mut decider = Decider::new(self, collection_id, partner, door)?;
        decider.prefetch(std::slice::from_ref(entry))?;
        decider.trace = Some(Vec::new());
        let outcome = decider.decide(entry, 0)?;
        let steps = decider.trace.take().unwrap_or_default();
        Ok(match outcome {
            Outcome::Sent {
                id,
                body,
                rewritten,
            } => Explained {
                steps,
                sent: Some(Sent::of(
                    entry,
                    id,
                    body.or_else(|| entry.body.clone()),
                    rewritten,
                )),
                withheld: None,
            },
            Outcome::Withheld(reason) => Explained {
                steps,
                sent: None,
                withheld: Some(reason),
            },
        })
    }

    /// The id `partner` sees for the stored SCO id `stored_id` when its copy is rewritten:
    /// `type--UUID` where the UUID is a keyed permutation of the stored one under the
    /// partner's pseudonym-group key (see the `keyed` module: a Feistel network over the
    /// UUID's free bits, written with the version and variant bits of a UUIDv5, RFC 9562
    /// §5.5, so it is a well-formed STIX identifier, §2.9). The same for every member of
    /// the group on every door; nobody without the key can link it to the value. `None`
    /// without a key (the SCO is then withheld).
    pub fn audience_id(
        &self,
        sharing: &CollectionSharing,
        partner: &PartnerProfile,
        stored_id: &str,
    ) -> Option<String> {
        let key = self
            .policy
            .keys
            .key(&self.policy.pseudonym_group(sharing, partner))?;
        keyed_id(&key, stored_id)
    }

    fn aad(collection_id: &str, audience: &Audience) -> Vec<u8> {
        let kind = match audience {
            Audience::Operator(_) => "operator",
            Audience::Partner(_) => "partner",
        };
        format!(
            "concord/next/v1\0{collection_id}\0{kind}\0{}",
            audience.name()
        )
        .into_bytes()
    }

    /// Encrypts and authenticates a store cursor into a `next` token bound to the
    /// collection and the audience.
    fn seal_cursor(
        &self,
        cursor: &Cursor,
        collection_id: &str,
        audience: &Audience,
    ) -> Result<String, EgressError> {
        let key = self.cursor_key.ok_or_else(|| {
            EgressError::Config("no node secret: paging needs it for its tokens".to_owned())
        })?;
        let plain = serde_json::to_vec(&serde_json::json!([
            cursor.date_added_ns,
            cursor.id,
            cursor.version_key,
            cursor.seq
        ]))
        .map_err(|e| EgressError::Config(format!("cannot write a token: {e}")))?;
        // Padded to a fixed size (JSON allows trailing white space): the token's length
        // would otherwise tell the type and id length of the entry it resumes after, which
        // may be one the audience does not receive (a page cut by the scan budget).
        let mut plain = plain;
        let padded = plain.len().div_ceil(CURSOR_PAD) * CURSOR_PAD;
        plain.resize(padded, b' ');
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)
            .map_err(|e| EgressError::Config(format!("no randomness for a token: {e}")))?;
        let cipher = XChaCha20Poly1305::new((&key).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &Self::aad(collection_id, audience),
                },
            )
            .map_err(|_| EgressError::Config("token encryption failed".to_owned()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a token made by [`Egress::seal_cursor`] for this collection and audience.
    fn open_cursor(
        &self,
        token: &str,
        collection_id: &str,
        audience: &Audience,
    ) -> Result<Cursor, EgressError> {
        let key = self.cursor_key.ok_or(EgressError::BadCursor)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| EgressError::BadCursor)?;
        if bytes.len() < 24 + 16 {
            return Err(EgressError::BadCursor);
        }
        let (nonce, sealed) = bytes.split_at(24);
        let cipher = XChaCha20Poly1305::new((&key).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &Self::aad(collection_id, audience),
                },
            )
            .map_err(|_| EgressError::BadCursor)?;
        let v: Value = serde_json::from_slice(&plain).map_err(|_| EgressError::BadCursor)?;
        (|| {
            Some(Cursor {
                date_added_ns: v.get(0)?.as_i64()?,
                id: v.get(1)?.as_str()?.to_owned(),
                version_key: v.get(2)?.as_str()?.to_owned(),
                seq: v.get(3)?.as_i64()?,
            })
        })()
        .ok_or(EgressError::BadCursor)
    }
}

fn sent_as_stored(e: Entry, want_body: bool) -> Sent {
    Sent {
        version: e.version(),
        id: e.id,
        date_added_ns: e.date_added_ns,
        version_key: e.version_key.clone(),
        object_type: e.object_type,
        spec_version: e.spec_version,
        body: if want_body { e.body } else { None },
        rewritten: false,
        vid: e.vid,
    }
}

/// The decision on one object version for one audience, after references.
#[derive(Clone, Debug)]
enum Outcome {
    /// Goes, under `id`, as `body`.
    Sent {
        id: String,
        /// The rewritten copy; `None`: the stored bytes.
        body: Option<String>,
        rewritten: bool,
    },
    /// Does not go: why, plus the transformations considered.
    Withheld(String),
}

impl Outcome {
    fn record(&self, d: &Door<'_>, e: &Entry) -> AuditRecord {
        match self {
            Outcome::Sent {
                rewritten: false, ..
            } => d.record("egress", e.vid, &e.id, e.version(), "sent", Vec::new()),
            Outcome::Sent { id, .. } => {
                let mut t = Vec::new();
                if *id != e.id {
                    t.push(format!("id sent as {id}"));
                }
                d.record("egress", e.vid, &e.id, e.version(), "rewritten", t)
            }
            Outcome::Withheld(reason) => d.record(
                "egress",
                e.vid,
                &e.id,
                e.version(),
                "withheld",
                vec![reason.clone()],
            ),
        }
    }
}

/// How long the fates of a collection's objects are reused while the collection is
/// unchanged ([`Store::collection_version`] moves with every add and delete in it). A fate
/// may also rest on what the node holds elsewhere (a reference to an object of another
/// collection, the sync provenance of a target): this bounds how long such a fate is used
/// after that changes.
pub const FATE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Audiences × collections whose fates are kept.
const FATE_CACHE_SETS: usize = 64;
/// Fates kept per set; a set that grows past it starts again.
const FATE_CACHE_IDS: usize = 1 << 20;

/// The fates of referenced objects decided for one audience in one collection, kept between
/// requests while the collection is unchanged ([`Store::collection_version`]) and for at most
/// [`FATE_CACHE_TTL`]: most references of a page point at objects decided on earlier pages
/// (a relationship's source and target, an identity, a marking), and deciding them again on
/// every page would cost more than the page itself.
///
/// The same sets keep the decisions on page entries ([`Decided`]), bounded in bytes across
/// all sets ([`Egress::with_decision_cache`]).
struct FateCache {
    sets: Mutex<HashMap<String, Arc<SharedFates>>>,
    /// Bytes of [`Decided`] kept, all sets together (shared with each set, which gives its
    /// bytes back when dropped).
    used: Arc<std::sync::atomic::AtomicUsize>,
    /// At most this many bytes of [`Decided`]; 0 keeps none.
    limit: usize,
}

/// The default of [`Egress::with_decision_cache`]: 64 MiB of decided page entries, about
/// 200,000 entries sent as stored (a rewritten copy counts its bytes too).
pub const DEFAULT_DECISION_CACHE_BYTES: usize = 64 << 20;

/// A page entry's decision kept between requests, with everything beyond its set's key
/// ([`FateCache::get`]: partner, sharing, policy version, door class, whether the agreement
/// is in effect, the collection's version) that it was decided with: the door, how each of
/// its marking references resolved, and the fate of each reference it followed. The
/// decision is a function of the stored bytes (fixed for an entry) and these, so when they
/// are the same again the outcome is the same, without parsing or deciding the object.
struct Decided {
    /// The door it was decided at (a reason may name it).
    door: String,
    /// Each marking reference of the stored object ([`marking_refs`]) and what it resolved
    /// to ([`Markings::class`]).
    marks: Vec<(String, Option<MarkingClass>)>,
    /// The references of the stored object ([`references`]), read ahead for the page.
    refs: Vec<String>,
    /// The references whose fates the decision followed, with those fates, in order;
    /// `None` when it was settled before references.
    followed: Option<Vec<(String, Fate)>>,
    outcome: Outcome,
}

impl Decided {
    /// About what it holds on the heap, in bytes (the unit of the cache's limit).
    fn bytes(&self) -> usize {
        let fate = |f: &Fate| match f {
            Fate::Received(s) => s.len(),
            Fate::NotReceived(c) => c.heap_bytes(),
        };
        let outcome = match &self.outcome {
            Outcome::Sent { id, body, .. } => id.len() + body.as_ref().map_or(0, String::len),
            Outcome::Withheld(reason) => reason.len(),
        };
        // The map's slot, the Arc and the struct, and each string's own header.
        128 + self.door.len()
            + self.marks.iter().map(|(m, _)| 48 + m.len()).sum::<usize>()
            + self.refs.iter().map(|r| 24 + r.len()).sum::<usize>()
            + self
                .followed
                .iter()
                .flatten()
                .map(|(r, f)| 72 + r.len() + fate(f))
                .sum::<usize>()
            + outcome
    }
}

struct SharedFates {
    version: i64,
    since: Instant,
    fates: Mutex<HashMap<String, Fate>>,
    /// Whether an object version is sent by its own rules (cycles are decided with it).
    base: Mutex<HashMap<String, bool>>,
    /// The marking definitions looked up in the collection by id: the definition, or
    /// `None` when the collection holds none under that id (then it is unresolved, and
    /// what it marks is withheld).
    markings: Mutex<HashMap<String, Option<Value>>>,
    /// Decided page entries, and the bytes they count for.
    decided: Mutex<(HashMap<EntryKey, Arc<Decided>>, usize)>,
    /// The cache's count of bytes kept ([`FateCache::used`]).
    used: Arc<std::sync::atomic::AtomicUsize>,
    /// The cache's limit ([`FateCache::limit`]).
    limit: usize,
}

impl Drop for SharedFates {
    fn drop(&mut self) {
        let held = self
            .decided
            .get_mut()
            .map_or_else(|p| p.into_inner().1, |d| d.1);
        self.used
            .fetch_sub(held, std::sync::atomic::Ordering::Relaxed);
    }
}

impl SharedFates {
    /// The decision kept for the page entry `key`.
    fn decided(&self, key: &EntryKey) -> Option<Arc<Decided>> {
        if self.limit == 0 {
            return None;
        }
        self.decided
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(key)
            .cloned()
    }

    /// Keeps `d` for the page entry `key` within the cache's limit: when it would cross
    /// it, this set's decisions are dropped first, and `d` is not kept if it still would.
    fn put_decided(&self, key: EntryKey, d: Decided) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.limit == 0 {
            return;
        }
        let size = d.bytes();
        let mut slot = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        let (map, held) = &mut *slot;
        if let Some(old) = map.remove(&key) {
            let freed = old.bytes();
            *held -= freed;
            self.used.fetch_sub(freed, Relaxed);
        }
        if self.used.load(Relaxed).saturating_add(size) > self.limit {
            self.used.fetch_sub(*held, Relaxed);
            *held = 0;
            map.clear();
            map.shrink_to_fit();
        }
        // Another set may have taken the room meanwhile: reserved, or not kept.
        let reserved = self
            .used
            .fetch_update(Relaxed, Relaxed, |u| {
                u.checked_add(size).filter(|n| *n <= self.limit)
            })
            .is_ok();
        if reserved {
            *held += size;
            map.insert(key, Arc::new(d));
        }
    }

    fn get(&self, id: &str) -> Option<Fate> {
        self.fates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Whether the fate of `id` is kept, and is: received under `as_id`.
    fn received_as(&self, id: &str, as_id: &str) -> bool {
        matches!(
            self.fates.lock().unwrap_or_else(|p| p.into_inner()).get(id),
            Some(Fate::Received(a)) if a == as_id
        )
    }

    fn contains(&self, id: &str) -> bool {
        self.fates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn base(&self, key: &str) -> Option<bool> {
        self.base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    fn put_base(&self, key: &str, sent: bool) {
        let mut b = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= FATE_CACHE_IDS {
            b.clear();
        }
        b.insert(key.to_owned(), sent);
    }

    fn marking(&self, id: &str) -> Option<Option<Value>> {
        self.markings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn put_marking(&self, id: &str, definition: Option<Value>) {
        let mut m = self.markings.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= FATE_CACHE_IDS {
            m.clear();
        }
        m.insert(id.to_owned(), definition);
    }

    fn put(&self, id: &str, fate: Fate) {
        let mut f = self.fates.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= FATE_CACHE_IDS {
            f.clear();
        }
        f.insert(id.to_owned(), fate);
    }
}

impl FateCache {
    /// An empty cache keeping at most `limit` bytes of decided page entries.
    fn with_limit(limit: usize) -> FateCache {
        FateCache {
            sets: Mutex::new(HashMap::new()),
            used: Arc::default(),
            limit,
        }
    }

    /// The set of `collection_id` for the audience named by `key`, fresh if the collection
    /// changed or the set is older than [`FATE_CACHE_TTL`].
    fn get(
        &self,
        store: &dyn Store,
        collection_id: &str,
        key: &[&str],
    ) -> Result<Arc<SharedFates>, EgressError> {
        let version = match store.collection_version(collection_id) {
            Ok(v) => v,
            // Nothing to decide in a collection that does not exist; nothing kept for it.
            Err(concord_store::StoreError::NoSuchCollection(_)) => -1,
            Err(e) => return Err(e.into()),
        };
        let key = format!("{collection_id}\u{1e}{}", key.join("\u{1e}"));
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sets.get(&key)
            && s.version == version
            && s.since.elapsed() < FATE_CACHE_TTL
        {
            return Ok(s.clone());
        }
        if sets.len() >= FATE_CACHE_SETS {
            sets.retain(|_, s| s.since.elapsed() < FATE_CACHE_TTL);
            if sets.len() >= FATE_CACHE_SETS {
                sets.clear();
            }
        }
        let fresh = Arc::new(SharedFates {
            version,
            since: Instant::now(),
            fates: Mutex::new(HashMap::new()),
            base: Mutex::new(HashMap::new()),
            markings: Mutex::new(HashMap::new()),
            decided: Mutex::new((HashMap::new(), 0)),
            used: self.used.clone(),
            limit: self.limit,
        });
        sets.insert(key, fresh.clone());
        Ok(fresh)
    }
}

/// An entry's row, as a key: its `date_added`, `seq` and version row. Integers only (no id
/// to copy and hash for every look-up); `date_added` grows with every write batch, so a
/// `seq` that SQLite gives again after a delete is another key.
type EntryKey = (i64, i64, i64);

fn entry_key(e: &Entry) -> EntryKey {
    (e.date_added_ns, e.seq, e.vid)
}

/// An entry parsed once (strictly) for its markings, references and decision.
struct Parsed {
    /// The stored object, or why its bytes are not strict JSON.
    value: Result<Value, concord_stix::JsonError>,
    /// Its references ([`references`]), as stored: those of the copy too, unless the
    /// policy rewrites it.
    refs: Vec<String>,
}

/// What [`Decider::decide_fresh`] reports of a decision for [`Decided`].
#[derive(Default)]
struct Capture {
    /// The stored object was read (parsed, or found not to be strict JSON).
    read: bool,
    marks: Vec<(String, Option<MarkingClass>)>,
    refs: Vec<String>,
    followed: Option<Vec<(String, Fate)>>,
}

/// What a reference resolves to for the audience.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    /// The target is received, under this id.
    Received(String),
    /// The target is not received (withheld, not in the collection, too deep): the
    /// reason.
    NotReceived(Clause),
}

/// The per-request state of the door for one partner and collection: the sharing, the
/// marking definitions, and the fate of every referenced object, so that each is decided
/// once per request.
struct Decider<'a> {
    egress: &'a Egress,
    collection_id: &'a str,
    partner: &'a PartnerProfile,
    /// The door the decisions are for (an agreement's clauses and the PAP gate depend on it).
    door: &'a str,
    /// The time of the decisions (an agreement's dates), ns since the epoch: one reading of
    /// the clock per request, so every object of a page is decided at the same time.
    now_ns: i64,
    /// Why nothing goes to this partner at all: the agreement its node holds with this node
    /// (received by sync, [`agreement::received_for_partner`]) ended. The receiving side
    /// enforces it as the issuer does.
    ended: Option<Clause>,
    sharing: CollectionSharing,
    markings: Markings,
    /// Marking ids looked up already (found or not).
    markings_looked_up: HashSet<String>,
    /// Newest version of referenced objects, read ahead.
    prefetched: HashMap<String, Option<Entry>>,
    fates: HashMap<String, Fate>,
    /// Objects being decided, with the entry being decided, innermost last (a handful:
    /// at most [`MAX_REF_DEPTH`] deep).
    in_progress: Vec<(String, EntryKey)>,
    group_key: Option<Vec<u8>>,
    trace: Option<Vec<ExplainStep>>,
    /// Each entry read, parsed once (strictly) for the markings, the references and the
    /// decision.
    parsed: HashMap<EntryKey, Parsed>,
    /// The peer whose own objects the audience holds already (sync), by provenance.
    origin: Option<&'a str>,
    /// The node's other collections, read when first needed.
    collections: Option<Vec<String>>,
    /// Fates of this collection's objects for this audience kept between requests
    /// ([`FateCache`]); `None` for sync (its fates depend on the peer's provenance).
    shared: Option<Arc<SharedFates>>,
    /// Whether page entries' decisions kept in `shared` ([`Decided`]) are used and kept.
    /// Off for a question about ids: what an id that exists costs must stay what the decoy
    /// of one that does not costs (timing oracle F2).
    reuse: bool,
    /// How many fates so far rest on an approximation that is never checked (the depth
    /// bound, a cycle through an SCO): what depends on one is not kept between requests.
    taints: usize,
    /// Objects being decided further up that a cycle assumed received, by their own rules;
    /// checked when their decision completes ([`Decider::resolve`]).
    assumptions: Vec<String>,
    /// The fates this request decided, in order, and whether they may be kept between
    /// requests (objects of this collection): what a wrong assumption invalidates.
    log: Vec<(String, bool)>,
}

impl<'a> Decider<'a> {
    fn new(
        egress: &'a Egress,
        collection_id: &'a str,
        partner: &'a PartnerProfile,
        door: &'a str,
    ) -> Result<Decider<'a>, EgressError> {
        let sharing = egress.sharing(collection_id)?;
        let now_ns = concord_stix::Timestamp::now_micros().unix_nanos();
        let ended = received_ended(egress.store.as_ref(), partner, now_ns)?;
        // Decisions differ by door only between the automated doors and the others (an
        // agreement's permitted actions, the PAP gate), and feeds among the automated ones.
        let door_class = if concord_policy::agreement::is_feed_door(door) {
            "feed"
        } else if concord_policy::agreement::is_automated_door(door) {
            "automated"
        } else {
            "read"
        };
        let group_key = egress
            .policy
            .keys
            .key(&egress.policy.pseudonym_group(&sharing, partner));
        // An agreement's period is the one input of a decision that moves with the clock:
        // decisions kept while it is in effect are not used once it is not, and back.
        let period = match egress.policy.agreement(partner) {
            None => "no agreement",
            Some((.., p)) if p.in_effect(now_ns) => "in effect",
            Some(_) => "not in effect",
        };
        let shared = egress.fate_cache.get(
            egress.store.as_ref(),
            collection_id,
            &[
                &partner.name,
                &partner.jurisdiction,
                &partner.groups.join("\u{1f}"),
                &sharing.to_json(),
                &egress.policy.version,
                door_class,
                period,
            ],
        )?;
        Ok(Decider {
            egress,
            collection_id,
            partner,
            door,
            now_ns,
            sharing,
            markings: Markings::default(),
            markings_looked_up: HashSet::new(),
            prefetched: HashMap::new(),
            fates: HashMap::new(),
            in_progress: Vec::new(),
            group_key,
            trace: None,
            parsed: HashMap::new(),
            origin: None,
            collections: None,
            shared: Some(shared),
            reuse: true,
            ended,
            taints: 0,
            assumptions: Vec::new(),
            log: Vec::new(),
        })
    }

    /// The newest version (in this collection) of each of `ids`, read in few queries.
    fn newest(&self, ids: Vec<String>) -> Result<HashMap<String, Entry>, EgressError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(512) {
            // Lists padded to a power of two (repeating the last id): the store prepares
            // one statement per list length, and a few lengths stay in its statement cache.
            let mut list = chunk.to_vec();
            let padded = list.len().next_power_of_two();
            while list.len() < padded {
                list.push(list[list.len() - 1].clone());
            }
            let filter = ObjectFilter {
                ids: list,
                versions: vec![VersionSelector::Last],
                foreign: ForeignVersions::Of(partner_provenance(&self.partner.name)),
                ..ObjectFilter::default()
            };
            let mut after = None;
            loop {
                let page = self.egress.store.entries(
                    self.collection_id,
                    &filter,
                    &PageRequest {
                        limit: chunk.len() + 1,
                        after,
                    },
                    true,
                )?;
                after = page.entries.last().map(Entry::cursor);
                for e in page.entries {
                    // Of two entries of one object (several spec versions), the newest; of
                    // two of one version (a partner's write beside a version withheld from
                    // it, [`concord_store::WriteBatch::add_unseen`]), the later added, as
                    // page entries decide it ([`Decider::decide_page_entry`]): a reference
                    // then resolves for the writer as it would if the other did not exist.
                    match found.get(&e.id) {
                        Some(Entry { version_key, .. }) if *version_key > e.version_key => {}
                        _ => {
                            found.insert(e.id.clone(), e);
                        }
                    }
                }
                if !page.more {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Reads ahead, in batches, the marking definitions and the referenced objects of
    /// `entries` that are not known yet.
    fn prefetch(&mut self, entries: &[Entry]) -> Result<(), EgressError> {
        self.prefetch_with(entries, true)
    }

    /// [`Decider::prefetch`]; `reuse`: an entry whose decision is kept ([`Decided`]) is not
    /// parsed, its marking references and references are read from what was kept.
    fn prefetch_with(&mut self, entries: &[Entry], reuse: bool) -> Result<(), EgressError> {
        let mut marking_ids = Vec::new();
        let mut ref_ids = Vec::new();
        for e in entries {
            let key = entry_key(e);
            if reuse
                && !self.parsed.contains_key(&key)
                && let Some(d) = self.kept_decision(e)
            {
                for (m, _) in &d.marks {
                    self.want_marking(m, &mut marking_ids);
                }
                for r in &d.refs {
                    self.want_ref(r, &mut ref_ids);
                }
                continue;
            }
            let parsed = self.parsed.entry(key).or_insert_with(|| {
                let value = concord_stix::parse_object(e.body.as_deref().unwrap_or("null"));
                let refs = value.as_ref().map(references).unwrap_or_default();
                Parsed { value, refs }
            });
            let Ok(v) = &parsed.value else {
                continue;
            };
            if v.get("type").and_then(Value::as_str) == Some("marking-definition") {
                self.markings.add(v);
            }
            for m in marking_refs(v) {
                want_marking(
                    &mut self.markings,
                    &mut self.markings_looked_up,
                    self.shared.as_deref(),
                    m,
                    &mut marking_ids,
                );
            }
            for r in &parsed.refs {
                want_ref(
                    &mut self.prefetched,
                    &self.fates,
                    self.shared.as_deref(),
                    r,
                    &mut ref_ids,
                );
            }
        }
        if !marking_ids.is_empty() {
            let found = self.newest(marking_ids.clone())?;
            for id in marking_ids {
                // Strict, as every object that leaves: a definition with repeated member
                // names resolves to nothing, and what it marks is withheld.
                let definition = found
                    .get(&id)
                    .and_then(|e| e.body.as_deref())
                    .and_then(|b| concord_stix::parse_object(b).ok());
                if let Some(v) = &definition {
                    self.markings.add(v);
                }
                if let Some(shared) = &self.shared {
                    shared.put_marking(&id, definition);
                }
            }
        }
        if !ref_ids.is_empty() {
            for (id, e) in self.newest(ref_ids)? {
                self.prefetched.insert(id, Some(e));
            }
        }
        Ok(())
    }

    /// [`want_marking`] on this decider's state.
    fn want_marking(&mut self, m: &str, out: &mut Vec<String>) {
        want_marking(
            &mut self.markings,
            &mut self.markings_looked_up,
            self.shared.as_deref(),
            m,
            out,
        );
    }

    /// [`want_ref`] on this decider's state.
    fn want_ref(&mut self, r: &str, out: &mut Vec<String>) {
        want_ref(
            &mut self.prefetched,
            &self.fates,
            self.shared.as_deref(),
            r,
            out,
        );
    }

    /// The decision kept for the page entry `e` ([`Decided`]), when this decider may use
    /// one: decisions without a trace, kept between requests, at the same door. Marking
    /// definitions are always read: what they define is part of how the page's other
    /// entries are decided.
    fn kept_decision(&self, e: &Entry) -> Option<Arc<Decided>> {
        if !self.reuse || self.trace.is_some() || e.object_type == "marking-definition" {
            return None;
        }
        self.shared
            .as_ref()?
            .decided(&entry_key(e))
            .filter(|d| d.door == self.door)
    }

    fn note(&mut self, rule: &'static str, clauses: impl FnOnce() -> Vec<Clause>) {
        if let Some(t) = &mut self.trace {
            t.push(ExplainStep::new(rule, clauses()));
        }
    }

    /// Notes that `rule` withholds the object because of `reason`; the outcome, its reason
    /// in English.
    fn withhold(&mut self, rule: &'static str, reason: Clause) -> Outcome {
        let english = reason.to_string();
        self.note(rule, || vec![Clause::withheld(reason)]);
        Outcome::Withheld(english)
    }

    /// The fate of references to `id`: its newest version in the collection, decided for
    /// the audience.
    fn fate(&mut self, id: &str, depth: usize) -> Result<Fate, EgressError> {
        if let Some(f) = self.fates.get(id) {
            return Ok(f.clone());
        }
        // Kept between requests: read there again when next asked (no copy in `fates`).
        if let Some(f) = self.shared.as_ref().and_then(|s| s.get(id)) {
            return Ok(f);
        }
        if depth > MAX_REF_DEPTH {
            // Not cached: a shallower path may still decide it.
            self.taints += 1;
            return Ok(Fate::NotReceived(
                Clause::new("ref-too-deep").with("id", id),
            ));
        }
        let entry = match self.prefetched.get(id) {
            Some(Some(e)) => Some(e.clone()),
            Some(None) => None,
            None => self.newest(vec![id.to_owned()])?.remove(id),
        };
        // `fate` is asked while the innermost object in progress follows its references.
        if self.in_progress.last().is_some_and(|(d, _)| d == id)
            && entry
                .as_ref()
                .is_some_and(|e| kind_of(&e.object_type) != ObjectKind::Sco)
        {
            // A reference to itself: wherever the object goes, it goes under its own id.
            return Ok(Fate::Received(id.to_owned()));
        }
        if let Some(key) = self
            .in_progress
            .iter()
            .rev()
            .find(|(d, _)| d == id)
            .map(|(_, k)| *k)
        {
            // A cycle of references (A refers to B, B to A): the target is being decided
            // further up. By its own rules alone: withheld is final (references only ever
            // withhold more); sent is an assumption, checked when its decision completes
            // ([`Decider::resolve`]). An SCO's id may change with its references, and a
            // version other than the one being decided cannot be checked: not followed
            // (fail closed), and nothing that depends on it is kept between requests.
            return Ok(match entry {
                Some(e) if kind_of(&e.object_type) != ObjectKind::Sco && entry_key(&e) == key => {
                    if self.base_sent(&e) {
                        self.assumptions.push(id.to_owned());
                        Fate::Received(id.to_owned())
                    } else {
                        Fate::NotReceived(Clause::new("ref-target-withheld").with("id", id))
                    }
                }
                _ => {
                    self.taints += 1;
                    Fate::NotReceived(Clause::new("ref-cycle").with("id", id))
                }
            });
        }
        let (mark_assumptions, mark_taints, mark_log) =
            (self.assumptions.len(), self.taints, self.log.len());
        let (fate, in_collection) = match entry {
            None => (self.outside(id)?, false),
            // Going by sync to the peer it came from: the peer holds the object (it made or
            // sent it), so the reference goes as written, whatever this node's sharing of its
            // copy says (a sighting, or an incident's answer, going home; issue 18).
            Some(_) if self.received_from_origin(id)? => (Fate::Received(id.to_owned()), false),
            Some(e) => {
                let trace = self.trace.take();
                let outcome = self.decide(&e, depth);
                self.trace = trace;
                let fate = match outcome? {
                    Outcome::Sent { id, .. } => Fate::Received(id),
                    Outcome::Withheld(_) => {
                        Fate::NotReceived(Clause::new("ref-target-withheld").with("id", id))
                    }
                };
                (fate, true)
            }
        };
        self.fates.insert(id.to_owned(), fate.clone());
        self.log.push((id.to_owned(), in_collection));
        self.share_exact(mark_assumptions, mark_taints, mark_log);
        Ok(fate)
    }

    /// Keeps between requests the fates decided since `mark_log`, once they are exact:
    /// every assumption made since `mark_assumptions` is checked and nothing since
    /// `mark_taints` was cut short. Called when a fate is decided and when a decision that
    /// others assumed completes (a page entry at the root of a cycle of references), so
    /// that objects in cycles are not decided again on every request.
    fn share_exact(&self, mark_assumptions: usize, mark_taints: usize, mark_log: usize) {
        if self.assumptions.len() == mark_assumptions
            && self.taints == mark_taints
            && let Some(shared) = &self.shared
        {
            for (x, keep) in self.log.get(mark_log..).unwrap_or_default() {
                if *keep && let Some(f) = self.fates.get(x) {
                    shared.put(x, f.clone());
                }
            }
        }
    }

    /// Checks the assumptions made (since `mark`) that `id`, then being decided, is
    /// received: if it is not, every fate decided since `mark_log` may rest on the wrong
    /// assumption and is forgotten (decided again when next needed).
    fn resolve(&mut self, id: &str, sent: bool, mark: usize, mark_log: usize) {
        let before = self.assumptions.len();
        let mut kept = Vec::with_capacity(before.saturating_sub(mark));
        for a in self.assumptions.drain(mark.min(before)..) {
            if a != id {
                kept.push(a);
            }
        }
        let checked = before - mark.min(before) - kept.len();
        self.assumptions.extend(kept);
        if checked > 0 && !sent {
            for (x, _) in self.log.drain(mark_log.min(self.log.len())..) {
                self.fates.remove(&x);
            }
        }
    }

    /// Whether the audience holds `id` because its node sent it: received from the peer this
    /// batch goes to ([`Decider::origin`]), or from the audience's partner key, by its TAXII
    /// POST or pulled from its node ([`partner_provenance`]). By every door alike, so a
    /// sync push and a TAXII read of one version give the partner the same bytes.
    fn received_from_origin(&self, id: &str) -> Result<bool, EgressError> {
        let own = partner_provenance(&self.partner.name);
        Ok(self
            .egress
            .store
            .received_from(id, None)?
            .iter()
            .any(|p| Some(p.as_str()) == self.origin || *p == own))
    }

    /// The fate of a reference to `id`, which this collection does not hold. The audience
    /// holds it already if it came from the audience's own node (sync provenance); an SCO
    /// id derives from the SCO's value, so it does not go; an object this node holds in
    /// another collection does not go (it is withheld here, whatever it is there); an
    /// object the node holds nowhere is the producer's reference to something outside, and
    /// goes as written (it reveals nothing this node holds).
    fn outside(&mut self, id: &str) -> Result<Fate, EgressError> {
        if self.received_from_origin(id)? {
            return Ok(Fate::Received(id.to_owned()));
        }
        let object_type = id.split_once("--").map_or(id, |(t, _)| t);
        if kind_of(object_type) == ObjectKind::Sco {
            return Ok(Fate::NotReceived(
                Clause::new("ref-sco-not-held").with("id", id),
            ));
        }
        if self.collections.is_none() {
            self.collections = Some(
                self.egress
                    .store
                    .collections()?
                    .into_iter()
                    .map(|c| c.id)
                    .filter(|c| c != self.collection_id)
                    .collect(),
            );
        }
        let filter = ObjectFilter {
            ids: vec![id.to_owned()],
            versions: vec![VersionSelector::Last],
            foreign: ForeignVersions::Of(partner_provenance(&self.partner.name)),
            ..ObjectFilter::default()
        };
        for c in self.collections.as_deref().unwrap_or_default() {
            let page = self.egress.store.entries(
                c,
                &filter,
                &PageRequest {
                    limit: 1,
                    after: None,
                },
                false,
            )?;
            if !page.entries.is_empty() {
                return Ok(Fate::NotReceived(
                    Clause::new("ref-other-collection").with("id", id),
                ));
            }
        }
        Ok(Fate::Received(id.to_owned()))
    }

    /// Whether the policy sends the newest version `e` of an object by its own rules alone
    /// (before references); kept with the shared fates, since it depends on nothing else.
    fn base_sent(&mut self, e: &Entry) -> bool {
        let key = format!("{}\u{1f}{}\u{1f}{}", e.id, e.version_key, e.seq);
        if let Some(b) = self.shared.as_ref().and_then(|s| s.base(&key)) {
            return b;
        }
        let sent = !matches!(self.base_decision(e), Decision::Withheld { .. });
        if let Some(s) = &self.shared {
            s.put_base(&key, sent);
        }
        sent
    }

    /// The policy's decision on one stored object alone (markings, TLP, important data,
    /// personal data), before references.
    fn base_decision(&self, e: &Entry) -> Decision {
        let cx = EgressContext {
            sharing: &self.sharing,
            partner: self.partner,
            policy: &self.egress.policy,
            markings: &self.markings,
            door: self.door,
            now_ns: self.now_ns,
        };
        concord_policy::egress::egress(e.body.as_deref().unwrap_or("null"), &cx)
    }

    /// Decides one stored object version for the audience, references included.
    /// [`Decider::decide`] for an entry of a page. When `newest` (the entry is its object's
    /// newest version in the collection), its decision is also recorded as the fate of
    /// references to its id, kept between requests once exact, so that the objects a
    /// collection's relationships point at are decided once, not once per page.
    fn decide_page_entry(&mut self, e: &Entry, newest: bool) -> Result<Outcome, EgressError> {
        let marks = (self.assumptions.len(), self.taints, self.log.len());
        let outcome = self.decide(e, 0)?;
        // Only a version that is sent sets the fate: of two entries of one newest version
        // (a partner's write beside a version withheld from it,
        // [`concord_store::WriteBatch::add_unseen`]), the one withheld must not decide for
        // references before the other is reached; a withheld target's fate is then decided
        // by [`Decider::fate`], from the entry [`Decider::newest`] picks, and kept as well.
        // Known already from an earlier request: nothing to record.
        if newest
            && let Outcome::Sent { id, .. } = &outcome
            && !self.fates.contains_key(&e.id)
            && !self
                .shared
                .as_ref()
                .is_some_and(|s| s.received_as(&e.id, id))
        {
            self.fates.insert(e.id.clone(), Fate::Received(id.clone()));
            self.log.push((e.id.clone(), true));
            self.share_exact(marks.0, marks.1, marks.2);
        }
        Ok(outcome)
    }

    fn decide(&mut self, e: &Entry, depth: usize) -> Result<Outcome, EgressError> {
        let (mark, mark_log, mark_taints) = (self.assumptions.len(), self.log.len(), self.taints);
        // A reference back to it while it is decided is a cycle ([`Decider::fate`]).
        self.in_progress.push((e.id.clone(), entry_key(e)));
        let outcome = self.decide_inner(e, depth);
        self.in_progress.pop();
        let outcome = outcome?;
        let sent = matches!(outcome, Outcome::Sent { .. });
        self.resolve(&e.id, sent, mark, mark_log);
        self.share_exact(mark, mark_taints, mark_log);
        Ok(outcome)
    }

    fn decide_inner(&mut self, e: &Entry, depth: usize) -> Result<Outcome, EgressError> {
        if let Some(reason) = &self.ended {
            let reason = reason.clone();
            return Ok(self.withhold("agreement", reason));
        }
        let key = entry_key(e);
        // A page entry decided before with the same inputs: the same outcome, after the
        // same steps that touch this request's state (its markings resolved, its
        // references' fates decided, in order), without parsing or deciding it again.
        if depth == 0
            && let Some(d) = self.kept_decision(e)
        {
            self.prefetch(std::slice::from_ref(e))?;
            if d.marks.iter().all(|(m, c)| self.markings.class(m) == *c) {
                let mut same = true;
                for (r, f) in d.followed.iter().flatten() {
                    if self.fate(r, depth + 1)? != *f {
                        same = false;
                        break;
                    }
                }
                if same {
                    self.parsed.remove(&key);
                    return Ok(d.outcome.clone());
                }
            }
        }
        let mut capture = (depth == 0 && self.may_keep(e)).then(Capture::default);
        let outcome = self.decide_fresh(e, depth, &mut capture)?;
        if let Some(c) = capture
            && c.read
            && let Some(shared) = &self.shared
        {
            shared.put_decided(
                key,
                Decided {
                    door: self.door.to_owned(),
                    marks: c.marks,
                    refs: c.refs,
                    followed: c.followed,
                    outcome: outcome.clone(),
                },
            );
        }
        Ok(outcome)
    }

    /// Whether the decision on the page entry `e` may be kept between requests
    /// ([`Decided`]): see [`Decider::kept_decision`].
    fn may_keep(&self, e: &Entry) -> bool {
        self.reuse
            && self.trace.is_none()
            && self.shared.as_ref().is_some_and(|s| s.limit > 0)
            && e.object_type != "marking-definition"
    }

    /// [`Decider::decide_inner`] from the stored bytes; `capture`, when given, receives
    /// what the decision was made with ([`Decided`]).
    fn decide_fresh(
        &mut self,
        e: &Entry,
        depth: usize,
        capture: &mut Option<Capture>,
    ) -> Result<Outcome, EgressError> {
        let key = entry_key(e);
        // Markings and references of an object reached only as a reference target.
        if depth > 0 || !self.parsed.contains_key(&key) {
            self.prefetch_with(std::slice::from_ref(e), false)?;
        }
        let (object, stored_refs) = match self.parsed.remove(&key) {
            Some(Parsed { value: Ok(v), refs }) => (v, refs),
            Some(Parsed {
                value: Err(err), ..
            }) => {
                if let Some(c) = capture.as_mut() {
                    c.read = true;
                }
                let reason = Clause::new("stored-unparsable").with("error", err.to_string());
                return Ok(self.withhold("validation", reason));
            }
            None => return Ok(self.withhold("validation", Clause::new("stored-missing"))),
        };
        if let Some(c) = capture.as_mut() {
            c.read = true;
            c.marks = marking_refs(&object)
                .into_iter()
                .map(|m| (m.to_owned(), self.markings.class(m)))
                .collect();
            c.refs = stored_refs.clone();
        }
        let cx = EgressContext {
            sharing: &self.sharing,
            partner: self.partner,
            policy: &self.egress.policy,
            markings: &self.markings,
            door: self.door,
            now_ns: self.now_ns,
        };
        let (decision, copy) = if self.trace.is_some() {
            let (x, copy) = concord_policy::egress::explain_object(object, &cx);
            if let Some(t) = &mut self.trace {
                t.extend(x.steps);
            }
            (x.decision, copy)
        } else {
            concord_policy::egress::egress_object(object, &cx)
        };
        let (mut copy, mut changed) = match (decision, copy) {
            (Decision::Unchanged, Some(v)) => (v, false),
            (Decision::Rewritten { .. }, Some(v)) => (v, true),
            (Decision::Withheld { reason }, _) => return Ok(Outcome::Withheld(reason)),
            (_, None) => return Ok(self.withhold("validation", Clause::new("no-copy"))),
        };
        // The copy's id as the policy left it (it may have recomputed an SCO's id): the
        // stored id goes back in before references and the keyed id are settled.
        if changed && let Some(obj) = copy.as_object_mut() {
            obj.insert("id".into(), Value::String(e.id.clone()));
        }
        // References: each target decided for the same audience.
        let mut removed = Vec::new();
        let mut renamed = 0usize;
        // Those of the stored object, unless the policy rewrote it.
        let refs = if changed {
            references(&copy)
        } else {
            stored_refs
        };
        // Reached as a reference target (depth > 0), only the fate counts: whether the
        // object is received, and under which id. A non-SCO keeps its id, and if it stays
        // valid STIX without any of its references it is received whatever their fates
        // (references only ever remove): its targets need no decision. This keeps the
        // chains of optional references (CAPEC's parent, child and precedence links) from
        // being followed object by object on every request.
        if depth > 0 && !refs.is_empty() && kind_of(&e.object_type) != ObjectKind::Sco {
            let none: HashMap<String, Fate> = refs
                .iter()
                .map(|r| {
                    (
                        r.clone(),
                        Fate::NotReceived(Clause::new("ref-target-withheld").with("id", r)),
                    )
                })
                .collect();
            let mut probe = copy.clone();
            let (mut probe_removed, mut probe_renamed) = (Vec::new(), 0);
            apply_fates(&mut probe, &none, &mut probe_removed, &mut probe_renamed);
            if concord_stix::validate_object(&probe).is_ok() {
                self.note("references", || vec![Clause::new("ref-valid-without")]);
                return Ok(Outcome::Sent {
                    id: e.id.clone(),
                    body: None,
                    rewritten: changed,
                });
            }
        }
        let mut fates = HashMap::with_capacity(refs.len());
        let mut followed = capture.as_ref().map(|_| Vec::with_capacity(refs.len()));
        // This object is being decided ([`Decider::decide`] marks it): a reference back to
        // it is a cycle ([`Self::fate`]).
        for r in refs {
            let f = self.fate(&r, depth + 1)?;
            if let Some(list) = followed.as_mut() {
                list.push((r.clone(), f.clone()));
            }
            fates.insert(r, f);
        }
        if let Some(c) = capture.as_mut() {
            c.followed = followed;
        }
        if !fates.is_empty() {
            let ref_changed = apply_fates(&mut copy, &fates, &mut removed, &mut renamed);
            changed |= ref_changed;
            if ref_changed {
                if let Err(v) = concord_stix::validate_object(&copy) {
                    let why = v.first().map(ToString::to_string).unwrap_or_default();
                    let reason = Clause::new("ref-withheld")
                        .with("removed", removed)
                        .with("violation", why);
                    return Ok(self.withhold("references", reason));
                }
                self.note("references", || {
                    vec![
                        Clause::new("ref-removed")
                            .with("count", removed.len())
                            .with("removed", removed)
                            .with("renamed", renamed),
                    ]
                });
            } else {
                self.note("references", || vec![Clause::new("ref-all-received")]);
            }
        }
        let mut id = e.id.clone();
        if changed && kind_of(&e.object_type) == ObjectKind::Sco {
            // A stored SCO id is the UUIDv5 of its value (STIX 2.1 §2.9): a changed copy
            // must not carry it.
            let Some(new) = self.group_key.as_deref().and_then(|k| keyed_id(k, &e.id)) else {
                return Ok(self.withhold("identifier", Clause::new("sco-no-key")));
            };
            id = new;
            if let Some(obj) = copy.as_object_mut() {
                obj.insert("id".into(), Value::String(id.clone()));
            }
            self.note("identifier", || {
                vec![Clause::new("keyed-id").with("id", &id)]
            });
        }
        // Unchanged: the stored bytes, which the caller holds already (no copy).
        let body = changed.then(|| copy.to_string());
        Ok(Outcome::Sent {
            id,
            body,
            rewritten: changed,
        })
    }
}

/// Resolves the marking reference `m` as far as known without the store: a fixed id, a
/// definition read already, or one the set `shared` looked up before; otherwise `m` joins
/// `out`, to be looked up (once per request).
fn want_marking(
    markings: &mut Markings,
    looked_up: &mut HashSet<String>,
    shared: Option<&SharedFates>,
    m: &str,
    out: &mut Vec<String>,
) {
    if !markings.contains(m) && markings.class(m).is_none() && !looked_up.contains(m) {
        looked_up.insert(m.to_owned());
        // Looked up once per collection state, not once per request.
        match shared.and_then(|s| s.marking(m)) {
            Some(Some(definition)) => markings.add(&definition),
            Some(None) => {}
            None => out.push(m.to_owned()),
        }
    }
}

/// Notes the reference `r` for reading ahead (into `out`) unless its target is read
/// already or its fate is known (this request's `fates`, or kept in `shared`).
fn want_ref(
    prefetched: &mut HashMap<String, Option<Entry>>,
    fates: &HashMap<String, Fate>,
    shared: Option<&SharedFates>,
    r: &str,
    out: &mut Vec<String>,
) {
    if !prefetched.contains_key(r)
        && !fates.contains_key(r)
        && !shared.is_some_and(|s| s.contains(r))
    {
        prefetched.insert(r.to_owned(), None);
        out.push(r.to_owned());
    }
}

/// Rewrites the references of `value` by their fates: renamed targets get their new id,
/// targets not received are removed (an element of a list; the property itself when it
/// holds one reference or the list becomes empty). `true` when something changed.
fn apply_fates(
    value: &mut Value,
    fates: &HashMap<String, Fate>,
    removed: &mut Vec<Clause>,
    renamed: &mut usize,
) -> bool {
    let mut changed = false;
    match value {
        Value::Object(m) => {
            let mut drop_keys = Vec::new();
            for (k, v) in m.iter_mut() {
                if is_reference_key(k) {
                    match v {
                        Value::Array(a) => {
                            let before = a.len();
                            a.retain_mut(|s| match s.as_str().and_then(|id| fates.get(id)) {
                                Some(Fate::NotReceived(why)) => {
                                    removed.push(
                                        Clause::new("ref-removed-item")
                                            .with("property", k)
                                            .with("why", why.clone()),
                                    );
                                    false
                                }
                                Some(Fate::Received(new)) => {
                                    if s.as_str() != Some(new.as_str()) {
                                        *s = Value::String(new.clone());
                                        *renamed += 1;
                                        changed = true;
                                    }
                                    true
                                }
                                None => true,
                            });
                            if a.len() != before {
                                changed = true;
                                if a.is_empty() {
                                    drop_keys.push(k.clone());
                                }
                            }
                        }
                        s => match s.as_str().and_then(|id| fates.get(id)) {
                            Some(Fate::NotReceived(why)) => {
                                removed.push(
                                    Clause::new("ref-removed-item")
                                        .with("property", k)
                                        .with("why", why.clone()),
                                );
                                drop_keys.push(k.clone());
                                changed = true;
                            }
                            Some(Fate::Received(new)) if s.as_str() != Some(new.as_str()) => {
                                *s = Value::String(new.clone());
                                *renamed += 1;
                                changed = true;
                            }
                            _ => {}
                        },
                    }
                } else {
                    changed |= apply_fates(v, fates, removed, renamed);
                }
            }
            for k in drop_keys {
                m.remove(&k);
            }
        }
        Value::Array(a) => {
            for v in a {
                changed |= apply_fates(v, fates, removed, renamed);
            }
        }
        _ => {}
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_skip_markings_and_fates_remove_or_rename() {
        let mut v = serde_json::json!({
            "type": "report", "object_marking_refs": ["marking-definition--x"],
            "created_by_ref": "identity--a",
            "object_refs": ["indicator--b", "ipv4-addr--c", "malware--d"],
            "granular_markings": [{"marking_ref": "marking-definition--y", "selectors": ["name"]}],
            "extensions": {"x": {"nested_ref": "file--e"}}
        });
        let mut refs = references(&v);
        refs.sort();
        assert_eq!(
            refs,
            [
                "file--e",
                "identity--a",
                "indicator--b",
                "ipv4-addr--c",
                "malware--d"
            ]
            .map(String::from)
        );
        let fates: HashMap<String, Fate> = [
            (
                "identity--a",
                Fate::NotReceived(Clause::new("ref-target-withheld").with("id", "x")),
            ),
            ("indicator--b", Fate::Received("indicator--b".into())),
            ("ipv4-addr--c", Fate::Received("ipv4-addr--z".into())),
            (
                "malware--d",
                Fate::NotReceived(Clause::new("ref-target-withheld").with("id", "x")),
            ),
            (
                "file--e",
                Fate::NotReceived(Clause::new("ref-target-withheld").with("id", "x")),
            ),
        ]
        .into_iter()
        .map(|(k, f)| (k.to_owned(), f))
        .collect();
        let (mut removed, mut renamed) = (Vec::new(), 0);
        assert!(apply_fates(&mut v, &fates, &mut removed, &mut renamed));
        assert_eq!(renamed, 1);
        assert_eq!(removed.len(), 3);
        assert!(v.get("created_by_ref").is_none());
        assert_eq!(
            v["object_refs"],
            serde_json::json!(["indicator--b", "ipv4-addr--z"])
        );
        assert_eq!(
            v["object_marking_refs"],
            serde_json::json!(["marking-definition--x"])
        );
        assert!(v["extensions"]["x"].get("nested_ref").is_none());
    }
}
