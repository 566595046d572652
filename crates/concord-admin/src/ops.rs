//! The operations of administration, one function each, called by both the CLI
//! (`concord partner|collection|peer|policy|audit …`) and the admin REST API ([`crate::api`]):
//! the rules (names, jurisdictions, TLP levels, peers' files) are checked here once, and
//! the two front ends differ only in how they print.
//!
//! The audit log records transfers of object versions (every door, [`concord_egress`]); of
//! these operations, which move no object, only the changes of a partner in place are
//! recorded there ([`directory`]: doors `partner-update`, `partner-set`), because they change
//! what a partner may receive under the key it already holds. `policy explain` decides
//! without sending, so it records nothing, as on the CLI.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use concord_coordination::Node;
use concord_coordination::release::{self, Release, ReleaseError, SharingEdit};
use concord_policy::actions::{Policy, PolicyConfig};
use concord_policy::egress::{CollectionSharing, Decision};
use concord_policy::tlp::Tlp;
use concord_server::policy::POLICY_VERSION_PREFIX;
use concord_store::audit::{AuditRecord, TransferEntry};
use concord_store::{
    AuditQuery, Collection, NewCollection, ObjectFilter, PageRequest, Partner, Store, StoreError,
    VersionSelector,
};
use concord_sync::{Mapping, Peer, PeerAuth, PeerError, PeerState, TlsFiles};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why an administrative operation was refused or failed. Each variant has a stable
/// [`AdminError::code`] (the `code` of the API's JSON error) and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// What was named does not exist (a partner, collection, peer, object, policy version).
    #[error("{0}")]
    NotFound(String),
    /// The request breaks a rule; the message names the field and the rule.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken, or the thing was decided already.
    #[error("{0}")]
    Conflict(String),
    /// A rule of who may do it refuses (the four-eyes rule: the approver asked it).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Anything else that is the node's fault (an unreadable stored record, no randomness).
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// The stable machine-readable code: `not_found`, `invalid_request`, `conflict`,
    /// `forbidden`, `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::Invalid(_) => "invalid_request",
            AdminError::Conflict(_) => "conflict",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::Store(_) | AdminError::Internal(_) => "internal",
        }
    }

    /// The HTTP status of [`AdminError::code`]: 404, 400, 409, 403, 500.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::Invalid(_) => 400,
            AdminError::Conflict(_) => 409,
            AdminError::Forbidden(_) => 403,
            AdminError::Store(_) | AdminError::Internal(_) => 500,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CollectionExists(_) => AdminError::Conflict(e.to_string()),
            StoreError::NoSuchCollection(_) => AdminError::NotFound(e.to_string()),
            StoreError::InvalidAlias(_) => AdminError::Invalid(e.to_string()),
            other => AdminError::Store(other),
        }
    }
}

impl From<PeerError> for AdminError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::NotFound(_) => AdminError::NotFound(e.to_string()),
            PeerError::Store(s) => s.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<concord_server::policy::PolicyError> for AdminError {
    fn from(e: concord_server::policy::PolicyError) -> Self {
        match e {
            concord_server::policy::PolicyError::Store(s) => s.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, AdminError>;

pub mod directory;
pub mod webhooks;

// --- collections -------------------------------------------------------------------------

/// A collection as administration shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionInfo {
    /// Its id (a UUID), used in TAXII URLs.
    pub id: String,
    /// Its alias (unique on the node), also accepted in URLs.
    pub alias: Option<String>,
    /// Title served to TAXII clients.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Object versions it holds.
    pub object_versions: u64,
}

/// A collection by alias or id. Errors: [`AdminError::NotFound`] `no collection "NAME"`.
pub fn find_collection(store: &dyn Store, name: &str) -> Result<Collection> {
    store
        .collection(name)?
        .ok_or_else(|| AdminError::NotFound(format!("no collection {name:?}")))
}

fn collection_info(store: &dyn Store, c: Collection) -> Result<CollectionInfo> {
    Ok(CollectionInfo {
        object_versions: store.count(&c.id)?,
        id: c.id,
        alias: c.alias,
        title: c.title,
        description: c.description,
    })
}

/// Every collection with its number of object versions (`concord collection list`).
pub fn list_collections(store: &dyn Store) -> Result<Vec<CollectionInfo>> {
    store
        .collections()?
        .into_iter()
        .map(|c| collection_info(store, c))
        .collect()
}

/// One collection (alias or id).
pub fn show_collection(store: &dyn Store, name: &str) -> Result<CollectionInfo> {
    let c = find_collection(store, name)?;
    collection_info(store, c)
}

/// Creates an empty collection (`concord collection create`). Errors: the alias breaks the
/// rule of [`concord_store::check_alias`] (invalid), or is taken (conflict).
pub fn create_collection(store: &dyn Store, new: &NewCollection) -> Result<CollectionInfo> {
    let c = store.create_collection(new)?;
    collection_info(store, c)
}

/// How a collection is shared (TLP gate), as shown and as set.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Sharing {
    /// TLP of objects without a TLP marking: `clear`, `green`, `amber`, `amber+strict`,
    /// `red`.
    pub default_tlp: String,
    /// Sharing groups that receive TLP:GREEN; `null`: every partner (the community).
    pub groups: Option<Vec<String>>,
    /// Recipients of TLP:AMBER and AMBER+STRICT: partner names, or `group:G`.
    pub recipients: Vec<String>,
}

impl From<&CollectionSharing> for Sharing {
    fn from(s: &CollectionSharing) -> Self {
        Sharing {
            default_tlp: s
                .default_tlp
                .label()
                .trim_start_matches("TLP:")
                .to_ascii_lowercase(),
            groups: s.groups.clone(),
            recipients: s.recipients.clone(),
        }
    }
}

/// A change of a collection's sharing (`concord collection share`): every field is
/// optional, and what is absent stays as it is.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingChange {
    /// New TLP for unmarked objects: `clear`, `green`, `amber`, `amber+strict`, `red`.
    #[serde(default)]
    #[schema(value_type = Option<TlpLevel>)]
    pub default_tlp: Option<String>,
    /// TLP:GREEN goes to these sharing groups only (a non-empty list, replacing the one
    /// before), or, `null`, to every partner (the community). Absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, min_items = 1)]
    pub groups: Option<Option<Vec<String>>>,
    /// Replace the recipients of TLP:AMBER/AMBER+STRICT (partner names, `group:G`).
    #[serde(default)]
    pub recipients: Option<Vec<String>>,
}

/// A TLP level as the API writes it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlpLevel {
    /// TLP:CLEAR.
    Clear,
    /// TLP:GREEN.
    Green,
    /// TLP:AMBER.
    Amber,
    /// TLP:AMBER+STRICT.
    #[serde(rename = "amber+strict")]
    AmberStrict,
    /// TLP:RED.
    Red,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The sharing of a collection id (defaults when never set).
pub fn sharing_of(store: &dyn Store, collection_id: &str) -> Result<CollectionSharing> {
    concord_egress::collection_sharing(store, collection_id)
        .map_err(|e| AdminError::Internal(e.to_string()))
}

/// The sharing of a collection (alias or id).
pub fn show_sharing(store: &dyn Store, collection: &str) -> Result<Sharing> {
    let c = find_collection(store, collection)?;
    Ok(Sharing::from(&sharing_of(store, &c.id)?))
}

/// The TLP levels of `default_tlp`, as written: lower case, `amber+strict`.
const TLP_LEVELS: [(&str, Tlp); 5] = [
    ("clear", Tlp::Clear),
    ("green", Tlp::Green),
    ("amber", Tlp::Amber),
    ("amber+strict", Tlp::AmberStrict),
    ("red", Tlp::Red),
];

/// What a release did: applied at once, or kept for a second releaser's approval
/// (four-eyes release, issue 20).
#[derive(Clone, Debug)]
pub enum Released<T> {
    /// Applied (and audited) now.
    Applied(T),
    /// Kept as a pending approval; nothing is applied yet.
    Pending(Box<ApprovalInfo>),
}

/// A pending (or decided) approval of four-eyes release, as shown (`concord approval list
/// --json`, `GET /api/v1/approvals`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalInfo {
    /// Its id (a UUID): what `approve` and `reject` take.
    pub id: String,
    /// `sharing` (a collection's sharing), `grant` (a grant in an incident) or `partner` (a
    /// partner's grants, groups or jurisdiction).
    pub kind: String,
    /// The collection id (`sharing`), the incident id (`grant`) or the partner's name
    /// (`partner`).
    pub target: String,
    /// What it widens, in English words (which cross-border partner receives what),
    /// rendered from `request`.
    pub summary: String,
    /// What it widens, structured, for a client to render in its reader's language:
    /// `{"subject": …, "widens": [{"what": "tlp", "partner": …, "jurisdiction": …, "tlp":
    /// …}, …]}` (`what`: `tlp`, `unmarked`, `grant`, `group`, `domestic`, `personal-data`,
    /// `agreement`, `pseudonyms`); `null` for approvals asked before schema 22.
    #[schema(value_type = Option<Object>)]
    pub request: Option<serde_json::Value>,
    /// The change, as kept (JSON).
    #[schema(value_type = Object)]
    pub change: serde_json::Value,
    /// Who asked: `user:NAME`, `admin-token` or `operator`.
    pub requested_by: String,
    /// When, nanoseconds since the epoch.
    pub requested_ns: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Who decided, once decided.
    pub decided_by: Option<String>,
    /// When, nanoseconds since the epoch, once decided.
    pub decided_ns: Option<i64>,
    /// A rejection's reason.
    pub reason: Option<String>,
}

impl From<concord_store::Approval> for ApprovalInfo {
    fn from(a: concord_store::Approval) -> Self {
        ApprovalInfo {
            change: serde_json::from_str(&a.change).unwrap_or(serde_json::Value::Null),
            summary: release::summary_english(&a),
            request: a
                .request
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok()),
            id: a.id,
            kind: a.kind,
            target: a.target,
            requested_by: a.requested_by,
            requested_ns: a.requested_ns,
            status: a.status,
            decided_by: a.decided_by,
            decided_ns: a.decided_ns,
            reason: a.reason,
        }
    }
}

impl From<ReleaseError> for AdminError {
    fn from(e: ReleaseError) -> Self {
        match e {
            ReleaseError::Refused(m) => AdminError::Invalid(m),
            ReleaseError::FourEyes(m) => AdminError::Forbidden(m),
            ReleaseError::NotFound(m) => AdminError::NotFound(m),
            ReleaseError::Decided(m) | ReleaseError::Stale(m) => AdminError::Conflict(m),
            ReleaseError::Desk(concord_coordination::DeskError::Refused(r)) => {
                AdminError::Invalid(r.message(concord_coordination::Field::json))
            }
            ReleaseError::Desk(concord_coordination::DeskError::NotFound(r)) => {
                AdminError::NotFound(r.message(concord_coordination::Field::json))
            }
            ReleaseError::Store(s) => s.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// Applies `change` to a collection's sharing: at once (audited, door `collection-share`),
/// or, when `[release] four_eyes` is on and it widens what a cross-border partner receives,
/// kept as a pending approval ([`concord_coordination::release::share`]).
/// Errors: no such collection; `default_tlp` not one of `clear`, `green`, `amber`,
/// `amber+strict`, `red` (written so; the CLI reads other spellings with
/// [`Tlp::parse`] first); an empty `groups`.
pub fn share(
    release: &Release<'_>,
    collection: &str,
    change: &SharingChange,
) -> Result<Released<Sharing>> {
    let c = find_collection(release.store, collection)?;
    let mut edit = SharingEdit::default();
    if let Some(t) = &change.default_tlp {
        let tlp = TLP_LEVELS
            .iter()
            .find(|(name, _)| name == t)
            .map(|(_, tlp)| *tlp)
            .ok_or_else(|| {
                AdminError::Invalid(format!(
                    "default_tlp {t:?}: expected clear, green, amber, amber+strict or red"
                ))
            })?;
        edit.default_tlp = Some(tlp.label().to_owned());
    }
    match &change.groups {
        Some(Some(g)) if g.is_empty() => {
            return Err(AdminError::Invalid(
                "groups: give at least one sharing group (or null for the whole community)".into(),
            ));
        }
        g => edit.groups = g.clone(),
    }
    edit.recipients = change.recipients.clone();
    Ok(match release::share(release, &c, &edit)? {
        release::Outcome::Applied(s) => Released::Applied(Sharing::from(&s)),
        release::Outcome::Pending(a) => Released::Pending(Box::new((*a).into())),
    })
}

/// The approvals of `status` (`pending`, `approved`, `rejected`; all when `None`), oldest
/// first, at most `limit` (`concord approval list`, `GET /api/v1/approvals`).
/// Errors: another status (invalid).
pub fn list_approvals(
    store: &dyn Store,
    status: Option<&str>,
    limit: usize,
) -> Result<Vec<ApprovalInfo>> {
    if let Some(s) = status
        && !["pending", "approved", "rejected"].contains(&s)
    {
        return Err(AdminError::Invalid(format!(
            "status {s:?}: expected pending, approved or rejected"
        )));
    }
    Ok(store
        .approvals(status, limit)?
        .into_iter()
        .map(ApprovalInfo::from)
        .collect())
}

/// Approves a pending approval and applies its change ([`release::approve`]). Errors: the
/// approver asked it (forbidden, the four-eyes rule), no such approval (not found), decided
/// already (conflict).
pub fn approve(release: &Release<'_>, node: &Node<'_>, id: &str) -> Result<ApprovalInfo> {
    Ok(release::approve(release, node, id)?.into())
}

/// Rejects a pending approval ([`release::reject`]); nothing is applied.
pub fn reject(release: &Release<'_>, id: &str, reason: Option<&str>) -> Result<ApprovalInfo> {
    Ok(release::reject(release, id, reason)?.into())
}

// --- partners ----------------------------------------------------------------------------

/// A partner as shown: everything but the hash of its key.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerInfo {
    /// Unique name of the organisation.
    pub name: String,
    /// ISO 3166-1 alpha-2 code of its jurisdiction.
    pub jurisdiction: String,
    /// Sharing groups it belongs to.
    pub groups: Vec<String>,
    /// Ids of the collections it may read.
    pub read: Vec<String>,
    /// Ids of the collections it may write.
    pub write: Vec<String>,
    /// The public half of its API key (`concord_<key_id>_<secret>`).
    pub key_id: String,
}

impl From<&Partner> for PartnerInfo {
    fn from(p: &Partner) -> Self {
        PartnerInfo {
            name: p.name.clone(),
            jurisdiction: p.jurisdiction.clone(),
            groups: p.groups.clone(),
            read: p.read.clone(),
            write: p.write.clone(),
            key_id: p.key_id.clone(),
        }
    }
}

/// A partner with its new API key, shown once (after `add` and `rotate-key`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PartnerWithKey {
    /// The partner.
    #[serde(flatten)]
    pub partner: PartnerInfo,
    /// The API key (Bearer token, or HTTP Basic password): only its argon2id hash is
    /// stored, so it cannot be shown again.
    pub api_key: String,
    /// With `[release] four_eyes`, when the partner was created across a border without
    /// the read grants and groups asked: the pending approval that keeps them for a second
    /// releaser (`partner add`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<Box<ApprovalInfo>>,
}

/// A partner to create (`concord partner add`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    /// Unique name: 1 to 128 characters, no `/`, no control and no format character
    /// (Unicode Cc, Cf).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^/\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"
    )]
    pub name: String,
    /// ISO 3166-1 alpha-2 code of its jurisdiction (e.g. `DE`, `CN`; kept upper case).
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub jurisdiction: String,
    /// Sharing groups it belongs to.
    #[serde(default)]
    #[schema(value_type = Vec<directory::GroupName>)]
    pub groups: Vec<String>,
    /// Collections (alias or id) it may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Collections (alias or id) it may write.
    #[serde(default)]
    pub write: Vec<String>,
}

/// ISO 3166-1 alpha-2 shape: two ASCII letters, kept upper case. Errors: invalid, naming
/// the code.
pub fn jurisdiction_code(code: &str) -> Result<String> {
    let c = code.to_ascii_uppercase();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AdminError::Invalid(format!(
            "jurisdiction {code:?}: expected an ISO 3166-1 alpha-2 code such as DE or CN"
        )));
    }
    Ok(c)
}

/// The rule for a new partner's name: it is a path segment of `/api/v1/partners/{name}` and
/// a name in the audit log. Errors: invalid, naming the name and the rule.
pub(crate) fn check_partner_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().count() > 128
        || name.contains('/')
        || name
            .chars()
            .any(|c| c.is_control() || concord_store::is_format_char(c))
    {
        return Err(AdminError::Invalid(format!(
            "partner name {name:?}: must be 1 to 128 characters, without '/', control or \
             format characters (Unicode Cc, Cf: bidi overrides, zero-width characters)"
        )));
    }
    Ok(())
}

/// Collection aliases or ids → ids; an unknown one is an error naming it.
fn collection_ids(store: &dyn Store, names: &[String]) -> Result<Vec<String>> {
    names
        .iter()
        .map(|n| {
            store.collection(n)?.map(|c| c.id).ok_or_else(|| {
                AdminError::NotFound(format!(
                    "no collection {n:?} (create it first, e.g. by an import)"
                ))
            })
        })
        .collect()
}

/// Every partner, by name.
pub fn list_partners(store: &dyn Store) -> Result<Vec<PartnerInfo>> {
    Ok(store.partners()?.iter().map(PartnerInfo::from).collect())
}

/// The stored partner of this name. Errors: not found, `no partner named "NAME"`.
pub fn find_partner(store: &dyn Store, name: &str) -> Result<Partner> {
    store
        .partners()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| AdminError::NotFound(format!("no partner named {name:?}")))
}

/// Which version of the agreement each side holds (issue 19, item 5; `partner show`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AgreementVersions {
    /// The version of this node's agreement with the partner (`NAME@DIGEST`), `None`
    /// without one.
    pub ours: Option<String>,
    /// The version the partner's node last fetched from this node (`none`: it was told
    /// there is none); `None` when it never fetched.
    pub fetched_by_partner: Option<String>,
    /// The version of the agreement the partner's node holds with this node, as last
    /// fetched from it by sync (through the peer linked to the partner); `none` when it has
    /// none; `None` when never fetched.
    pub theirs: Option<String>,
    /// That agreement's end date (IEP 2.0 end_date), if any.
    pub theirs_end_date: Option<String>,
    /// The peer it was fetched from.
    pub peer: Option<String>,
}

/// [`AgreementVersions`] of the partner `name` under `policy`. Errors: no such partner, the
/// store.
pub fn agreement_versions(
    store: &dyn Store,
    policy: &concord_policy::actions::Policy,
    name: &str,
) -> Result<AgreementVersions> {
    let p = find_partner(store, name)?;
    let profile = concord_policy::egress::PartnerProfile {
        name: p.name.clone(),
        jurisdiction: p.jurisdiction.clone(),
        groups: p.groups.clone(),
    };
    let ours = concord_egress::agreement::partner_agreement(policy, &profile).map(|(v, _)| v);
    let fetched_by_partner = concord_egress::agreement::fetched(store, name)?;
    let mut out = AgreementVersions {
        ours,
        fetched_by_partner,
        ..AgreementVersions::default()
    };
    let peers = concord_sync::peers(store).map_err(|e| AdminError::Internal(e.to_string()))?;
    for peer in peers.iter().filter(|x| x.partner.as_deref() == Some(name)) {
        if let Some(r) = concord_egress::agreement::received(store, &peer.name)? {
            out.theirs = Some(
                r.statement
                    .version
                    .clone()
                    .unwrap_or_else(|| "none".to_owned()),
            );
            out.theirs_end_date = r.end_date().map(str::to_owned);
            out.peer = Some(peer.name.clone());
            break;
        }
    }
    Ok(out)
}

fn new_key() -> Result<(String, String, String)> {
    concord_server::auth::new_api_key().map_err(|e| AdminError::Internal(e.to_string()))
}

/// Creates a partner with a new API key (`concord partner add`), four-eyes release aside
/// (see [`add_partner_released`]). Errors: the name breaks the rule or is taken (conflict),
/// the jurisdiction is no alpha-2 code, a collection does not exist.
pub fn add_partner(store: &dyn Store, new: &NewPartner) -> Result<PartnerWithKey> {
    let (partner, key) = new_partner(store, new)?;
    store.put_partner(&partner)?;
    Ok(PartnerWithKey {
        partner: PartnerInfo::from(&partner),
        api_key: key,
        pending_approval: None,
    })
}

/// Creates a partner with a new API key (`concord partner add`, `POST /api/v1/partners`)
/// under the node's release rules. With `[release] four_eyes`, a cross-border partner
/// asked with read grants or groups that widen what it receives
/// ([`release::split_new_partner`]) is created with its key, jurisdiction and write
/// grants but without those reads and groups, so that it receives nothing yet; they are
/// kept as a pending `partner` approval (the same as `partner update` keeps, requested by
/// `release.person`) in [`PartnerWithKey::pending_approval`], applied when a second
/// releaser approves it. A domestic partner, and write grants, are created at once, as
/// without four-eyes. Errors: those of [`add_partner`]; forbidden (asked by no named person,
/// nothing written). Should keeping the approval fail after the partner was written, the
/// partner stays without reads (it receives nothing) and the error is returned.
pub fn add_partner_released(release: &Release<'_>, new: &NewPartner) -> Result<PartnerWithKey> {
    let store = release.store;
    let (full, key) = new_partner(store, new)?;
    let Some(bare) = release::split_new_partner(release, &full)? else {
        store.put_partner(&full)?;
        return Ok(PartnerWithKey {
            partner: PartnerInfo::from(&full),
            api_key: key,
            pending_approval: None,
        });
    };
    store.put_partner(&bare)?;
    let pending =
        release::hold_partner(release, &bare, &full)?.map(|a| Box::new(ApprovalInfo::from(a)));
    Ok(PartnerWithKey {
        partner: PartnerInfo::from(&bare),
        api_key: key,
        pending_approval: pending,
    })
}

/// The partner record `new` asks for, checked, with its new API key (shown once). Errors:
/// see [`add_partner`].
fn new_partner(store: &dyn Store, new: &NewPartner) -> Result<(Partner, String)> {
    check_partner_name(&new.name)?;
    let jurisdiction = jurisdiction_code(&new.jurisdiction)?;
    // The same rule for a group as `partner update` holds it to.
    for g in &new.groups {
        directory::check_group_name(g)?;
    }
    let read = collection_ids(store, &new.read)?;
    let write = collection_ids(store, &new.write)?;
    if store.partners()?.iter().any(|p| p.name == new.name) {
        return Err(AdminError::Conflict(format!(
            "a partner named {:?} already exists",
            new.name
        )));
    }
    let (key, key_id, key_hash) = new_key()?;
    let partner = Partner {
        read,
        write,
        name: new.name.clone(),
        jurisdiction,
        groups: new.groups.clone(),
        key_id,
        key_hash,
        created_ns: concord_stix::Timestamp::now_micros().unix_nanos(),
        details: concord_store::PartnerDetails {
            origin: Some("operator".to_owned()),
            ..Default::default()
        },
    };
    Ok((partner, key))
}

/// Removes a partner (`concord partner remove`, `DELETE /api/v1/partners/{name}`): its key
/// stops working at its next request on every `serve` process, and its incident grants end
/// with it, in the same transaction ([`release::grants_ended`]): they are kept by name, and
/// a partner added later under the name is another organisation. Errors: not found;
/// conflict (the collections' sharing changed at every attempt).
pub fn remove_partner(store: &dyn Store, name: &str) -> Result<()> {
    // As many as a partner change tries (`directory::change_partner`).
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        let ended = release::grants_ended(store, name).map_err(ReleaseError::from)?;
        match store.remove_partner_with(name, &ended) {
            Ok(true) => return Ok(()),
            Ok(false) => {
                return Err(AdminError::NotFound(format!("no partner named {name:?}")));
            }
            // A sharing changed between the read and the removal: read it again.
            Err(concord_store::StoreError::Superseded(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Conflict(format!(
        "the collections' sharing changed {ATTEMPTS} times while partner {name:?} was \
         removed; try again"
    )))
}

/// Gives a partner a new API key (`concord partner rotate-key`); the old one stops working.
/// Errors: not found.
pub fn rotate_key(store: &dyn Store, name: &str) -> Result<PartnerWithKey> {
    let mut p = find_partner(store, name)?;
    let (key, key_id, key_hash) = new_key()?;
    p.key_id = key_id;
    p.key_hash = key_hash;
    store.put_partner(&p)?;
    Ok(PartnerWithKey {
        partner: PartnerInfo::from(&p),
        api_key: key,
        pending_approval: None,
    })
}

// --- peers -------------------------------------------------------------------------------

/// A peer to add or replace (`concord peer add`). Secrets stay in files on the node (their
/// paths are stored, the files read at every round). Over the admin API the files must be
/// inside the node's `peer_files_dir` ([`PeerFiles`]), or the secret comes inline
/// (`token`, `password`: write-only, written to a file there whose path is stored, as the
/// CLI stores its files' paths; never answered back).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    /// Unique name on this node: 1 to 128 characters, no `/` and no control character.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^/\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"
    )]
    pub name: String,
    /// Base URL of the peer's server: `http://…` or `https://…`; empty (the default) for a
    /// peer known only by its node key, whose transfer packages this node imports
    /// (`concord import DIR`) and with which it never syncs.
    #[serde(default)]
    #[schema(pattern = "^(https?://.*)?$")]
    pub url: String,
    /// Path of the API root on that server, e.g. `/concord/` (required with `url`).
    #[serde(default)]
    pub api_root: String,
    /// `REMOTE:LOCAL` mappings: the remote collection (id, or title when unambiguous) and
    /// the local one (alias or id; created when missing). At least one with `url`; none
    /// needed for a peer known by its `node_key` only.
    #[schema(value_type = Vec<CollectionMapping>)]
    pub collections: Vec<String>,
    /// Pull from the peer (both directions when neither `pull` nor `push` is set).
    #[serde(default)]
    pub pull: bool,
    /// Push to the peer (needs `partner`).
    #[serde(default)]
    pub push: bool,
    /// File on the node holding the Bearer token for the peer (over the admin API: inside
    /// `peer_files_dir`, absolute or relative to it).
    #[serde(default)]
    pub token_file: Option<String>,
    /// The Bearer token itself (admin API only; not with `token_file`): written to a file
    /// of `peer_files_dir` (mode 0600) whose path is stored. Write-only: never answered.
    #[serde(default, skip_serializing)]
    #[schema(write_only, min_length = 1, max_length = 4096)]
    pub token: Option<String>,
    /// User for HTTP Basic (with `password_file` or `password`; not with a token).
    #[serde(default)]
    pub user: Option<String>,
    /// File on the node holding the Basic password (over the admin API: inside
    /// `peer_files_dir`).
    #[serde(default)]
    pub password_file: Option<String>,
    /// The Basic password itself (admin API only; not with `password_file`), stored as
    /// `token` is. Write-only: never answered.
    #[serde(default, skip_serializing)]
    #[schema(write_only, min_length = 1, max_length = 4096)]
    pub password: Option<String>,
    /// The partner whose egress policy decides what goes to the peer.
    #[serde(default)]
    pub partner: Option<String>,
    /// Seconds between rounds under `concord serve`: 1 to 86,400 (default 300).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub interval: Option<u64>,
    /// Seconds one request to the peer may take: 1 to 86,400 (default 60).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout: Option<u64>,
    /// Trusted CA certificates (PEM file on the node) instead of the WebPKI roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate (PEM file on the node) for mutual TLS (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// Its private key (PEM file on the node).
    #[serde(default)]
    pub client_key: Option<String>,
    /// The peer's public node key (Ed25519, 64 hex digits, as `concord node key` prints it):
    /// transfer packages signed with it are imported without `--signed-by`.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub node_key: Option<String>,
}

/// `REMOTE:LOCAL`: the peer's collection (id, or title when unambiguous), then after the
/// last `:` the local collection's alias or id (an alias of a collection to create follows
/// the alias rule).
#[derive(ToSchema)]
#[schema(pattern = r"^[\s\S]+:[A-Za-z0-9._-]{1,64}$")]
pub struct CollectionMapping(pub String);

/// A peer with what its rounds did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PeerInfo {
    /// Its configuration (name, url, api_root, mappings, auth with file paths, partner,
    /// interval_secs, timeout_secs, tls).
    #[schema(value_type = Object)]
    pub peer: Peer,
    /// Its last rounds (last_round, last_success, last_error, last_error_at,
    /// consecutive_failures, pulled, pushed).
    #[schema(value_type = Object)]
    pub state: PeerState,
    /// Its cursors (setting → value); only in the answer for one peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursors: Option<BTreeMap<String, String>>,
}

/// What adding a peer did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PeerAdded {
    /// The peer as stored.
    #[schema(value_type = Object)]
    pub peer: Peer,
    /// Local collections created for its mappings (aliases).
    pub created_collections: Vec<String>,
}

/// Which files a peer may name (`token_file`, `password_file`, `ca_file`, `client_cert`,
/// `client_key`), and where inline secrets go. The token file's content is sent as a
/// Bearer token (the password file's, as a Basic password) to the peer's URL, which the
/// caller chooses: a file the caller may name is a file it can read.
#[derive(Clone, Debug, Default)]
pub struct PeerFiles {
    /// `None`: any file the node can read (the CLI, whose operator has the node's files
    /// anyway). `Some(dir)`: only files inside `dir`, symbolic links resolved, and inline
    /// secrets are written there (the admin API, whose caller must not read the server's
    /// files through a peer's token: `peer_files_dir`). Absolute.
    pub within: Option<std::path::PathBuf>,
    /// The node's own secret files (node key, TLS key, database, configuration), refused
    /// as a peer's file in any case.
    pub refused: Vec<std::path::PathBuf>,
}

impl PeerFiles {
    /// Checks the file a peer's `field` names (`path`, as given) and returns the path to
    /// store: as given on the CLI; under `within`, relative paths are taken from that
    /// directory. The rule is checked on the path's text before the file is touched, so a
    /// refused path outside tells nothing of whether it exists. Also the check of a
    /// webhook's `--secret-file`: its key goes to the receiver, never a node secret.
    pub fn check(&self, field: &str, path: &str) -> Result<String> {
        use std::path::{Component, Path};
        let invalid = |m: String| Err(AdminError::Invalid(m));
        let stored = match &self.within {
            None => std::path::PathBuf::from(path),
            Some(dir) => {
                let outside = || {
                    invalid(format!(
                        "{field} {path:?}: over the admin API a peer's files must be inside \
                         peer_files_dir ({}), or the secret given inline (token, password)",
                        dir.display()
                    ))
                };
                let p = dir.join(path);
                if p.components().any(|c| matches!(c, Component::ParentDir)) || !p.starts_with(dir)
                {
                    return outside();
                }
                // A symbolic link inside that points out is outside too.
                if let (Ok(real), Ok(real_dir)) = (p.canonicalize(), dir.canonicalize())
                    && !real.starts_with(&real_dir)
                {
                    return outside();
                }
                p
            }
        };
        let is_own = |p: &Path| {
            let real = p.canonicalize();
            self.refused.iter().any(|own| {
                own == p || matches!((&real, own.canonicalize()), (Ok(a), Ok(b)) if *a == b)
            })
        };
        if is_own(&stored) {
            return invalid(format!(
                "{field} {path:?}: is one of the node's own secret files (node key, TLS key, \
                 database, configuration); give the peer's secret a file of its own"
            ));
        }
        match std::fs::metadata(&stored).and_then(|m| std::fs::File::open(&stored).map(|_| m)) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return invalid(format!("{field}: cannot read {path}: not a regular file")),
            Err(e) => return invalid(format!("{field}: cannot read {path}: {e}")),
        }
        Ok(stored.to_string_lossy().into_owned())
    }

    /// Writes an inline secret of peer `name` to a file of its own inside `within` (mode
    /// 0600, replaced atomically) and returns its path. `kind`: `token` or `password`.
    fn write_secret(&self, field: &str, name: &str, kind: &str, secret: &str) -> Result<String> {
        self.write_secret_of("peer", field, name, kind, secret)
    }

    /// [`PeerFiles::write_secret`] for any `owner` (`peer`, `webhook`): the file is
    /// `OWNER-DIGEST.KIND`, one per owner's name and kind.
    pub(crate) fn write_secret_of(
        &self,
        owner: &str,
        field: &str,
        name: &str,
        kind: &str,
        secret: &str,
    ) -> Result<String> {
        if self.within.is_none() {
            return Err(AdminError::Invalid(format!(
                "{field}: an inline secret is taken by the admin API only; name a file \
                 ({field}_file)"
            )));
        }
        let secret = secret.trim();
        if secret.is_empty() || secret.len() > 4096 || secret.chars().any(char::is_control) {
            return Err(AdminError::Invalid(format!(
                "{field}: must be 1 to 4096 bytes without control characters"
            )));
        }
        self.write_private_of(owner, field, name, kind, secret.as_bytes())
    }

    /// Writes `contents` for `owner` `name` to a file of its own inside `within`, named
    /// `OWNER-DIGEST.KIND` (mode 0600, replaced atomically), and returns its path: an inline
    /// secret ([`PeerFiles::write_secret_of`]) or a client certificate and its private key
    /// made at join (issue 19, PEM). Errors: no `within`, the file cannot be written.
    pub(crate) fn write_private_of(
        &self,
        owner: &str,
        field: &str,
        name: &str,
        kind: &str,
        contents: &[u8],
    ) -> Result<String> {
        let Some(dir) = &self.within else {
            return Err(AdminError::Invalid(format!(
                "{field}: a file made by the node needs peer_files_dir"
            )));
        };
        // One file per peer and kind, named by a digest of the peer's name (any name is
        // a file name then: no '/', no length over NAME_MAX).
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name.as_bytes());
        let file = dir.join(format!(
            "{owner}-{}.{kind}",
            concord_store::node_key::hex(&digest[..16])
        ));
        let io = |e: std::io::Error| {
            AdminError::Internal(format!("{field}: cannot write {}: {e}", file.display()))
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = file.with_extension(format!("{kind}.tmp"));
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(contents).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &file).map_err(io)?;
        Ok(file.to_string_lossy().into_owned())
    }
}

/// Adds or replaces a peer (`concord peer add`), creating the missing local collections of
/// its mappings; `files` says which files it may name. Errors: a rule broken (name, URL,
/// mapping, `push` without `partner`, a token with `user`, half a client certificate, a
/// file the node cannot read, outside `files.within` or one of the node's own), an unknown
/// partner; a URL `outbound` refuses (`[outbound] allow`: public addresses only by default;
/// a host name is resolved and refused when every address it resolves to is), naming the
/// URL, the address and the rule.
pub fn add_peer(
    store: &dyn Store,
    new: &NewPeer,
    files: &PeerFiles,
    outbound: &concord_sync::Outbound,
) -> Result<PeerAdded> {
    let invalid = |m: String| Err(AdminError::Invalid(m));
    if new.name.is_empty()
        || new.name.chars().count() > 128
        || new.name.contains('/')
        || new
            .name
            .chars()
            .any(|c| c.is_control() || concord_store::is_format_char(c))
    {
        return invalid(format!(
            "peer name {:?}: must be 1 to 128 characters, without '/', control or format \
             characters (Unicode Cc, Cf: bidi overrides, zero-width characters)",
            new.name
        ));
    }
    for (field, v) in [("interval", new.interval), ("timeout", new.timeout)] {
        if v.is_some_and(|v| !(1..=86_400).contains(&v)) {
            return invalid(format!(
                "{field} {}: must be 1 to 86400 seconds",
                v.unwrap_or(0)
            ));
        }
    }
    let node_key = match &new.node_key {
        Some(k) => match concord_store::node_key::unhex32(k.trim()) {
            Some(bytes) => Some(concord_store::node_key::hex(&bytes)),
            None => {
                return invalid(format!(
                    "node_key {k:?}: must be a public node key (64 hex digits, as `concord node key` prints it)"
                ));
            }
        },
        None => None,
    };
    // A peer without a URL is known only by its node key (packages); it never syncs.
    let syncs = !new.url.is_empty();
    if syncs && !(new.url.starts_with("http://") || new.url.starts_with("https://")) {
        return invalid(format!(
            "peer URL {:?}: must start with http:// or https://",
            new.url
        ));
    }
    if syncs {
        outbound
            .check_url(&new.url)
            .map_err(|e| AdminError::Invalid(format!("peer {e}")))?;
    }
    if !syncs && node_key.is_none() {
        return invalid(
            "url: give the peer's URL, or its node_key for a peer known by its packages only"
                .into(),
        );
    }
    if syncs && new.collections.is_empty() {
        return invalid("collections: give at least one REMOTE:LOCAL mapping".into());
    }
    if syncs && new.api_root.trim_matches('/').is_empty() {
        return invalid("api_root: required with a URL (e.g. /concord/)".into());
    }
    let (pull, push) = if new.pull || new.push {
        (new.pull, new.push)
    } else {
        (true, true)
    };
    if let Some(p) = &new.partner
        && !store.partners()?.iter().any(|x| &x.name == p)
    {
        return Err(AdminError::NotFound(format!(
            "no partner named {p:?} (concord partner add)"
        )));
    }
    if push && syncs && new.partner.is_none() {
        return invalid(
            "--push needs --partner P: the partner of this node whose egress policy decides what goes to the peer"
                .into(),
        );
    }
    if new.token_file.is_some() && new.token.is_some() {
        return invalid("token and token_file: give one".into());
    }
    if new.password_file.is_some() && new.password.is_some() {
        return invalid("password and password_file: give one".into());
    }
    let has_token = new.token_file.is_some() || new.token.is_some();
    let has_password = new.password_file.is_some() || new.password.is_some();
    if has_token && new.user.is_some() {
        return invalid("token_file (or token) and user: give one way to authenticate".into());
    }
    if new.user.is_some() != has_password {
        return invalid("user and password_file: give both or neither".into());
    }
    if new.client_cert.is_some() != new.client_key.is_some() {
        return invalid("client_cert and client_key: give both or neither".into());
    }
    let check =
        |field: &str, f: &Option<String>| f.as_deref().map(|p| files.check(field, p)).transpose();
    let token_file = check("token_file", &new.token_file)?;
    let password_file = check("password_file", &new.password_file)?;
    let tls = TlsFiles {
        ca_file: check("ca_file", &new.ca_file)?,
        client_cert: check("client_cert", &new.client_cert)?,
        client_key: check("client_key", &new.client_key)?,
        pin_sha256: None,
    };
    let mut parsed = Vec::new();
    for c in &new.collections {
        match c.rsplit_once(':') {
            Some((remote, local)) if !remote.is_empty() && !local.is_empty() => {
                parsed.push((remote, local));
            }
            _ => return invalid(format!("--collection {c:?}: expected REMOTE:LOCAL")),
        }
    }
    // Aliases checked before anything is created: a refused mapping creates nothing.
    for (_, local) in &parsed {
        if store.collection(local)?.is_none() {
            concord_store::check_alias(local)?;
        }
    }
    let mut mappings = Vec::new();
    let mut created = Vec::new();
    for (remote, local) in parsed {
        let local_id = match store.collection(local)? {
            Some(col) => col.id,
            None => {
                let col = store.create_collection(&NewCollection {
                    alias: local.to_owned(),
                    ..Default::default()
                })?;
                created.push(local.to_owned());
                col.id
            }
        };
        mappings.push(Mapping {
            remote: remote.to_owned(),
            local: local_id,
            pull,
            push,
        });
    }
    // Inline secrets are written last, once every rule holds: a refused request writes
    // nothing.
    let token_file = match &new.token {
        Some(t) => Some(files.write_secret("token", &new.name, "token", t)?),
        None => token_file,
    };
    let password_file = match &new.password {
        Some(p) => Some(files.write_secret("password", &new.name, "password", p)?),
        None => password_file,
    };
    let auth = match (token_file, &new.user, password_file) {
        (Some(file), _, _) => PeerAuth::Token { file },
        (None, Some(user), Some(password_file)) => PeerAuth::Basic {
            user: user.clone(),
            password_file,
        },
        _ => PeerAuth::None,
    };
    let peer = Peer {
        name: new.name.clone(),
        url: new.url.clone(),
        api_root: if syncs {
            format!("/{}/", new.api_root.trim_matches('/'))
        } else {
            String::new()
        },
        mappings,
        auth,
        partner: new.partner.clone(),
        interval_secs: new.interval.unwrap_or(300),
        timeout_secs: new.timeout.unwrap_or(60),
        tls,
        node_key,
    };
    concord_sync::save_peer(store, &peer)?;
    Ok(PeerAdded {
        peer,
        created_collections: created,
    })
}

/// Every peer with its state (`concord peer list`).
pub fn list_peers(store: &dyn Store) -> Result<Vec<PeerInfo>> {
    concord_sync::peers(store)?
        .into_iter()
        .map(|peer| {
            let state = concord_sync::load_state(store, &peer.name)?;
            Ok(PeerInfo {
                peer,
                state,
                cursors: None,
            })
        })
        .collect()
}

/// One peer: configuration, state and cursors (`concord peer show`). Errors: not found.
pub fn show_peer(store: &dyn Store, name: &str) -> Result<PeerInfo> {
    let peer = concord_sync::load_peer(store, name)?;
    let state = concord_sync::load_state(store, name)?;
    let cursors = store
        .settings_with_prefix(&format!("sync/{name}/"))?
        .into_iter()
        .collect();
    Ok(PeerInfo {
        peer,
        state,
        cursors: Some(cursors),
    })
}

/// Removes a peer (its cursors stay). Errors: not found.
pub fn remove_peer(store: &dyn Store, name: &str) -> Result<()> {
    if !concord_sync::remove_peer(store, name)? {
        return Err(AdminError::NotFound(format!("no peer named {name:?}")));
    }
    Ok(())
}

// --- policy ------------------------------------------------------------------------------

/// A policy version and its rules.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PolicyShown {
    /// `LABEL@DIGEST`, as the audit log records it.
    pub version: String,
    /// The `[policy]` section as applied (defaults filled in, the node's jurisdiction and
    /// important-data marking added).
    #[schema(value_type = Object)]
    pub policy: PolicyConfig,
}

/// The active policy, or a version recorded earlier (`concord policy show [--version V]`).
/// Errors: no such version recorded, or its record is unreadable.
pub fn show_policy(
    store: &dyn Store,
    active: &Policy,
    version: Option<&str>,
) -> Result<PolicyShown> {
    match version {
        None => Ok(PolicyShown {
            version: active.version.clone(),
            policy: active.config.clone(),
        }),
        Some(v) => {
            let text = store
                .setting(&format!("{POLICY_VERSION_PREFIX}{v}"))?
                .ok_or_else(|| {
                    AdminError::NotFound(format!("no policy version {v:?} recorded on this node"))
                })?;
            let policy: PolicyConfig = serde_json::from_str(&text).map_err(|e| {
                AdminError::Internal(format!("policy version {v:?}: unreadable record: {e}"))
            })?;
            Ok(PolicyShown {
                version: v.to_owned(),
                policy,
            })
        }
    }
}

/// One rule applied by `policy explain`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Step {
    /// The rule: `permission`, `agreement` (the partner's agreement and the clause that
    /// decided, or the PAP gate of the automated doors), `tlp`, `important-data`,
    /// `granular-markings`, `jurisdiction`, `personal-data`, `references`, `identifier`,
    /// `validation`.
    pub rule: String,
    /// What it found and decided.
    pub detail: String,
}

/// What a partner would receive of an object's newest version in one collection.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExplainedCollection {
    /// The collection's id.
    pub collection: String,
    /// Its alias.
    pub alias: Option<String>,
    /// The version explained (`modified`).
    pub modified: String,
    /// `sent`, `rewritten` or `withheld`.
    pub decision: String,
    /// Why it is withheld.
    pub reason: Option<String>,
    /// The rules, in the order applied.
    pub steps: Vec<Step>,
    /// The partner's copy (absent when withheld).
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// The copy as the door would send it (JSON text), for printing.
    #[serde(skip)]
    pub body_text: Option<String>,
}

/// The answer of `policy explain`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// The partner.
    pub partner: String,
    /// The object.
    pub object_id: String,
    /// The policy version that decided.
    pub policy_version: String,
    /// One item per collection holding the object.
    pub collections: Vec<ExplainedCollection>,
}

impl Explanation {
    /// Whether the partner would receive the object through some collection.
    pub fn receives(&self) -> bool {
        self.collections.iter().any(|c| c.decision != "withheld")
    }
}

/// What `partner` would receive of the newest version of `object_id`, in `collection` or
/// in every collection holding it, and why, rule by rule: the decision the TAXII and export
/// doors make ([`concord_server::policy::explain_for_partner`]). Nothing is sent or
/// audited. Errors: no such partner, collection, or no collection holds the object.
pub fn explain(
    store: &dyn Store,
    egress: &concord_egress::Egress,
    policy_version: &str,
    partner: &str,
    collection: Option<&str>,
    object_id: &str,
) -> Result<Explanation> {
    explain_at(
        store,
        egress,
        policy_version,
        partner,
        collection,
        object_id,
        "taxii-objects",
    )
}

/// [`explain`] at the door `door` (`concord policy explain --door D`): the automated doors
/// (`feed-*`, `webhook`, `stream`, `api-match`) apply an agreement's permitted actions and
/// the PAP gate (issue 19).
pub fn explain_at(
    store: &dyn Store,
    egress: &concord_egress::Egress,
    policy_version: &str,
    partner: &str,
    collection: Option<&str>,
    object_id: &str,
    door: &str,
) -> Result<Explanation> {
    let p = find_partner(store, partner)?;
    let collections = match collection {
        Some(c) => vec![find_collection(store, c)?],
        None => store.collections()?,
    };
    let filter = ObjectFilter {
        ids: vec![object_id.to_owned()],
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    let request = PageRequest {
        limit: 1,
        after: None,
    };
    let mut out = Vec::new();
    for c in collections {
        let Some(entry) = store
            .entries(&c.id, &filter, &request, true)?
            .entries
            .into_iter()
            .next()
        else {
            continue;
        };
        let view = concord_server::policy::explain_for_partner_at(egress, &p, &c, &entry, door)?;
        let (decision, copy, reason) = match view.decision {
            Decision::Unchanged => ("sent", entry.body.clone(), None),
            Decision::Rewritten { body, .. } => ("rewritten", Some(body), None),
            Decision::Withheld { reason } => ("withheld", None, Some(reason)),
        };
        out.push(ExplainedCollection {
            collection: c.id.clone(),
            alias: c.alias.clone(),
            modified: entry.version(),
            decision: decision.to_owned(),
            reason,
            steps: view
                .steps
                .into_iter()
                .map(|s| Step {
                    rule: s.rule.to_owned(),
                    detail: s.detail,
                })
                .collect(),
            body: copy
                .as_deref()
                .map(|b| serde_json::from_str(b).unwrap_or_default()),
            body_text: copy,
        });
    }
    if out.is_empty() {
        return Err(AdminError::NotFound(format!(
            "no collection holds an object {object_id:?}"
        )));
    }
    Ok(Explanation {
        partner: partner.to_owned(),
        object_id: object_id.to_owned(),
        policy_version: policy_version.to_owned(),
        collections: out,
    })
}

// --- audit -------------------------------------------------------------------------------

/// Entries read from the store at once.
const PAGE: usize = 1_000;

/// One object version of a transfer, named: a line of `audit show`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ShownRow {
    /// The entry (transfer).
    pub seq: i64,
    /// When, nanoseconds since the epoch.
    pub time_ns: i64,
    /// The object version and what happened to it: `direction`, `door`, `partner`,
    /// `collection`, `object_id`, `modified`, `decision`, `transformations`,
    /// `policy_version`, `vid`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub record: AuditRecord,
    /// Object versions in the transfer.
    pub count: i64,
    /// SHA-256 of what left in the transfer, hex.
    pub digest: Option<String>,
    /// The agreement with the partner under the entry's policy version (issue 19): its
    /// name, transfer mechanism and legal basis, as that version recorded them; `None`
    /// without one (or for the operator, or a version not recorded here).
    pub agreement: Option<String>,
}

/// The object versions of `entries` (only `vids` when given), named.
fn expand(
    store: &dyn Store,
    entries: &[TransferEntry],
    vids: Option<&HashSet<i64>>,
) -> Result<Vec<ShownRow>> {
    let mut decoded = Vec::with_capacity(entries.len());
    let mut wanted = BTreeSet::new();
    for e in entries {
        let items = e.decoded().unwrap_or_default();
        let items: Vec<_> = items
            .into_iter()
            .filter(|i| vids.is_none_or(|v| v.contains(&i.vid)))
            .collect();
        wanted.extend(items.iter().map(|i| i.vid));
        decoded.push(items);
    }
    let wanted: Vec<i64> = wanted.into_iter().collect();
    let names: HashMap<i64, concord_store::VersionName> = store
        .audit_names(&wanted)?
        .into_iter()
        .map(|n| (n.vid, n))
        .collect();
    let mut out = Vec::new();
    for (e, items) in entries.iter().zip(decoded) {
        for it in items {
            let (object_id, modified) = names.get(&it.vid).map_or_else(
                || (format!("vid:{}", it.vid), "-".to_owned()),
                |n| (n.object_id.clone(), n.version.clone()),
            );
            out.push(ShownRow {
                seq: e.seq,
                time_ns: e.time_ns,
                record: AuditRecord {
                    direction: e.direction.clone(),
                    door: e.door.clone(),
                    partner: e.partner.clone(),
                    person: e.person.clone(),
                    collection: e.collection.clone(),
                    object_id,
                    modified,
                    decision: it.decision.as_str().to_owned(),
                    transformations: it
                        .transformations
                        .iter()
                        .map(|t| e.dictionary.get(*t as usize).cloned().unwrap_or_default())
                        .collect(),
                    policy_version: e.policy_version.clone(),
                    vid: it.vid,
                },
                count: e.count,
                digest: e.digest.as_ref().map(|d| concord_store::node_key::hex(d)),
                agreement: None,
            });
        }
    }
    Ok(out)
}

/// The newest `limit` object versions of the log (of `partner`, of `object`), oldest
/// first (`concord audit show`): entries are read newest first through the partner index or
/// the posting index, so the work is proportional to what is shown. Legacy (per-object)
/// rows follow when the transfers do not fill `limit`.
pub fn show_audit(
    store: &dyn Store,
    partner: Option<&str>,
    object: Option<&str>,
    limit: usize,
) -> Result<Vec<ShownRow>> {
    let vids: Option<Vec<i64>> = match object {
        Some(id) => Some(store.audit_versions_of(id)?.iter().map(|n| n.vid).collect()),
        None => None,
    };
    let mut rows: Vec<ShownRow> = Vec::new();
    if vids.as_ref().is_none_or(|v| !v.is_empty()) {
        let set: Option<HashSet<i64>> = vids.as_ref().map(|v| v.iter().copied().collect());
        let mut before = None;
        while rows.len() < limit {
            let page = store.audit_entries(&AuditQuery {
                after_seq: 0,
                before_seq: before,
                partner: partner.map(str::to_owned),
                vids: vids.clone().unwrap_or_default(),
                limit: PAGE.min(limit.max(1)),
                newest_first: true,
            })?;
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            for mut chunk in expand(store, &page, set.as_ref())?
                .chunk_by(|a, b| a.seq == b.seq)
                .map(<[ShownRow]>::to_vec)
            {
                // Newest first across entries; within an entry, in its order.
                chunk.reverse();
                rows.extend(chunk);
            }
        }
    }
    rows.truncate(limit);
    rows.reverse();
    if rows.len() < limit {
        // Legacy rows (schema 3), oldest first; keep the newest that fit.
        let mut legacy = Vec::new();
        let mut after = 0;
        loop {
            let page = store.audit(after, 10_000, partner)?;
            let Some(l) = page.last() else { break };
            after = l.seq;
            legacy.extend(
                page.into_iter()
                    .filter(|e| object.is_none_or(|o| e.record.object_id == o))
                    .map(|e| ShownRow {
                        seq: e.seq,
                        time_ns: e.time_ns,
                        record: e.record,
                        count: 1,
                        digest: None,
                        agreement: None,
                    }),
            );
        }
        let room = limit - rows.len();
        let skip = legacy.len().saturating_sub(room);
        let mut all: Vec<ShownRow> = legacy.into_iter().skip(skip).collect();
        all.append(&mut rows);
        rows = all;
    }
    name_agreements(store, &mut rows)?;
    Ok(rows)
}

/// Fills [`ShownRow::agreement`]: each entry's policy version leads to the agreement that
/// applied to its partner (the version's recorded configuration, the partner's groups as
/// they are now), named with its transfer mechanism and legal basis.
fn name_agreements(store: &dyn Store, rows: &mut [ShownRow]) -> Result<()> {
    let partners: HashMap<String, Partner> = store
        .partners()?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut configs: HashMap<String, Option<PolicyConfig>> = HashMap::new();
    let mut named: HashMap<(String, String), Option<String>> = HashMap::new();
    for r in rows.iter_mut() {
        let key = (r.record.policy_version.clone(), r.record.partner.clone());
        if let Some(n) = named.get(&key) {
            r.agreement = n.clone();
            continue;
        }
        if !configs.contains_key(&key.0) {
            let config = store
                .setting(&format!("{POLICY_VERSION_PREFIX}{}", key.0))?
                .and_then(|t| serde_json::from_str::<PolicyConfig>(&t).ok());
            configs.insert(key.0.clone(), config);
        }
        let profile = concord_policy::egress::PartnerProfile {
            name: key.1.clone(),
            jurisdiction: String::new(),
            groups: partners
                .get(&key.1)
                .map(|p| p.groups.clone())
                .unwrap_or_default(),
        };
        let n = configs
            .get(&key.0)
            .and_then(Option::as_ref)
            .and_then(|c| concord_policy::agreement::applicable(&c.agreements, &profile))
            .map(|(name, a)| {
                let mechanism = a
                    .transfer_mechanism
                    .and_then(|m| serde_json::to_value(m).ok())
                    .and_then(|v| v.as_str().map(str::to_owned));
                match (mechanism, &a.legal_basis) {
                    (Some(m), Some(b)) => format!("{name} ({m}: {b})"),
                    (Some(m), None) => format!("{name} ({m})"),
                    (None, Some(b)) => format!("{name} ({b})"),
                    (None, None) => name.to_owned(),
                }
            });
        r.agreement = n.clone();
        named.insert(key, n);
    }
    Ok(())
}

/// The result of `audit verify` as one document (`--json` and the API): the counts checked
/// when intact; the first bad entry, its kind and the message when not.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Whether the log is intact.
    pub intact: bool,
    /// Whether everything was checked (else from the last verified checkpoint).
    pub full: bool,
    /// Whether checkpoint signatures were checked against a trusted public key.
    pub key_checked: bool,
    /// The checkpoint an incremental verification started from.
    pub from_checkpoint: Option<i64>,
    /// Legacy (per-object) rows checked.
    pub legacy_entries: u64,
    /// Transfer entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The newest entry checked (seq).
    pub head_seq: i64,
    /// Its hash, hex.
    pub head: String,
    /// The first bad entry (seq), when not intact.
    pub first_bad_seq: Option<i64>,
    /// What is wrong (`edited`, `gap`, `forged`, `rewritten`, `truncated`…), when not intact.
    pub kind: Option<String>,
    /// The problem in words, when not intact.
    pub message: Option<String>,
}

/// Verifies the audit log (`concord audit verify [--full]`): incremental from the last
/// verified checkpoint unless `full`; checkpoints must be signed by `trusted` when given
/// ([`concord_store::audit::verify_log`]).
pub fn verify_audit(
    store: &dyn Store,
    trusted: Option<&[u8; 32]>,
    full: bool,
) -> Result<Verification> {
    let r = concord_store::audit::verify_log(store, trusted, full)?;
    Ok(Verification {
        intact: r.error.is_none(),
        full: r.full,
        key_checked: trusted.is_some(),
        from_checkpoint: r.from_checkpoint,
        legacy_entries: r.legacy_entries,
        entries: r.entries,
        checkpoints: r.checkpoints,
        head_seq: r.head_seq,
        head: r.head_hash.clone(),
        first_bad_seq: r.error.as_ref().map(|e| e.seq()),
        kind: r.error.as_ref().map(|e| e.kind().to_owned()),
        message: r.error.as_ref().map(ToString::to_string),
    })
}

#[cfg(test)]
mod name_tests {
    use super::*;

    /// Hostile-load fault 5: a bidi override, a zero-width or other format character (Cf)
    /// makes a name look like another; partner and peer names refuse them, naming the rule.
    #[test]
    fn partner_and_peer_names_refuse_format_characters() {
        for bad in [
            "bsi\u{202e}",
            "b\u{200b}si",
            "\u{2066}bsi\u{2069}",
            "bsi\u{feff}",
            "bsi\u{e0041}",
            "bsi\u{ad}",
        ] {
            let e = check_partner_name(bad).unwrap_err().to_string();
            assert!(
                e.contains("format characters") && e.contains("Cf"),
                "{bad:?}: {e}"
            );
        }
        for good in ["bsi", "CERT-Bund", "ЦЕРТ", "وكالة", "cert.example"] {
            check_partner_name(good).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = concord_store::SqliteStore::open(&dir.path().join("c.sqlite")).unwrap();
        let peer = NewPeer {
            name: "hub\u{202e}".into(),
            url: "https://hub.example/".into(),
            ..NewPeer::default()
        };
        let e = add_peer(&store, &peer, &PeerFiles::default(), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("peer name") && e.contains("format characters"),
            "{e}"
        );
    }
}
