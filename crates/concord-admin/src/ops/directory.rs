//! The partner directory, and partners that change without new keys (issue 19, items 2 and
//! 4): one function each, called by `concord partner update|show|set`, by the admin API
//! (`PATCH /api/v1/partners/{name}`, `GET /api/v1/partners/{name}`) and by the web UI's
//! partner page and its form, so that the three check the same rules and record the same
//! audit entry.
//!
//! # Audit
//!
//! A change is stored together with its audit entry, in one transaction
//! ([`concord_store::Store::update_partner`]): direction `admin`, door `partner-update`
//! (grants, groups, jurisdiction) or `partner-set` (directory fields), `partner` = who
//! changed it (`operator` on the CLI, `admin` over the API and the web UI, as every other
//! door names them), one item without an object version (vid 0, decision `changed`) whose
//! transformations say what changed: `partner NAME`, then `jurisdiction DE -> FR`,
//! `read +ID`, `read -ID`, `write +ID`, `write -ID`, `group +G`, `group -G`, `identity ID`,
//! `contact`, `node-key FINGERPRINT`, `client-cert SHA256`. An operator's change is therefore
//! not the partner's own activity: [`DirectoryEntry::last_activity_ns`] is the time of the
//! newest entry the partner itself is named in.
//!
//! # Propagation
//!
//! The stored record is what every `serve` process authenticates against; each reads the
//! key's partner from the store at each request, so a grant removed stops working, and one
//! added starts working, at the partner's next request on every process, without a new key.

use concord_egress::BASE_POLICY_VERSION;
use concord_store::{AuditRecord, Partner, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use utoipa::ToSchema;

use concord_coordination::release::{self, Release};

use super::{
    AdminError, ApprovalInfo, PartnerInfo, Released, Result, find_partner, jurisdiction_code,
};

/// The extension definition of the OASIS Identity Contact Information extension (STIX 2.1
/// common objects): `contact_numbers`, `email_addresses`, `websites`, … on an `identity`.
pub const CONTACT_EXTENSION: &str = "extension-definition--66e2492a-bbd3-4be6-88f5-cc91a017a498";

/// How often a change based on a copy that another writer changed meanwhile is recomputed
/// from the new copy before giving up with [`AdminError::Conflict`].
const ATTEMPTS: usize = 8;

/// A change of a partner's grants, groups or jurisdiction (`concord partner update`,
/// `PATCH /api/v1/partners/{name}`, the partner page's form). Its API key stays.
///
/// Each of `read`, `write`, `groups` may be given whole (the list replaces the old one;
/// `[]` removes every entry), or changed by `add_*` / `remove_*`, not both in one change.
/// Absent fields are unchanged. Collections are named by alias or id.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerChange {
    /// New ISO 3166-1 alpha-2 code of its jurisdiction.
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub jurisdiction: Option<String>,
    /// Every collection it may read, replacing the old list.
    pub read: Option<Vec<String>>,
    /// Every collection it may write, replacing the old list.
    pub write: Option<Vec<String>>,
    /// Every sharing group it belongs to, replacing the old list.
    #[schema(value_type = Option<Vec<GroupName>>)]
    pub groups: Option<Vec<String>>,
    /// Collections it may now read too.
    #[serde(default)]
    pub add_read: Vec<String>,
    /// Collections it may no longer read.
    #[serde(default)]
    pub remove_read: Vec<String>,
    /// Collections it may now write too.
    #[serde(default)]
    pub add_write: Vec<String>,
    /// Collections it may no longer write.
    #[serde(default)]
    pub remove_write: Vec<String>,
    /// Sharing groups it joins.
    #[serde(default)]
    #[schema(value_type = Vec<GroupName>)]
    pub add_groups: Vec<String>,
    /// Sharing groups it leaves.
    #[serde(default)]
    #[schema(value_type = Vec<GroupName>)]
    pub remove_groups: Vec<String>,
}

impl PartnerChange {
    fn is_empty(&self) -> bool {
        self.jurisdiction.is_none()
            && self.read.is_none()
            && self.write.is_none()
            && self.groups.is_none()
            && self.add_read.is_empty()
            && self.remove_read.is_empty()
            && self.add_write.is_empty()
            && self.remove_write.is_empty()
            && self.add_groups.is_empty()
            && self.remove_groups.is_empty()
    }
}

/// A sharing group's name as the API documents it (the rule of [`check_group_name`]): the
/// schema of the `groups` lists, so that a client can tell a valid name before sending it.
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 128,
    pattern = r"^[^,\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+$"
)]
pub struct GroupName(pub String);

/// The rule for a sharing group's name (it is written `group:G` among a collection's
/// recipients and shown on every page): 1 to 128 characters, no control or format
/// character, no `,` (lists of groups are written comma-separated). Errors: invalid, naming
/// the group and the rule.
pub fn check_group_name(group: &str) -> Result<()> {
    if group.is_empty()
        || group.chars().count() > 128
        || group.contains(',')
        || group
            .chars()
            .any(|c| c.is_control() || concord_store::is_format_char(c))
    {
        return Err(AdminError::Invalid(format!(
            "group {group:?}: must be 1 to 128 characters, without ',', control or format \
             characters (Unicode Cc, Cf)"
        )));
    }
    Ok(())
}

/// A collection named by alias or id → its id. One the partner holds a grant on is also
/// found by its stored id (so a grant can always be removed). Errors: not found, naming it.
fn collection_id(store: &dyn Store, name: &str, held: &[String]) -> Result<String> {
    if let Some(c) = store.collection(name)? {
        return Ok(c.id);
    }
    if held.iter().any(|h| h == name) {
        return Ok(name.to_owned());
    }
    Err(AdminError::NotFound(format!(
        "no collection {name:?} (create it first, e.g. by an import)"
    )))
}

/// One list of a partner (read, write or groups) after a change; the words it adds to the
/// audit entry (`what +x`, `what -x`).
fn apply_list(
    what: &str,
    old: &[String],
    whole: Option<Vec<String>>,
    add: Vec<String>,
    remove: Vec<String>,
    changes: &mut Vec<String>,
) -> Result<Vec<String>> {
    if whole.is_some() && !(add.is_empty() && remove.is_empty()) {
        return Err(AdminError::Invalid(format!(
            "{what}: give the whole list or additions and removals, not both"
        )));
    }
    if let Some(x) = add.iter().find(|x| remove.contains(x)) {
        return Err(AdminError::Invalid(format!(
            "{what} {x:?}: both added and removed"
        )));
    }
    let mut new: Vec<String> = Vec::new();
    let base = whole.unwrap_or_else(|| old.to_vec());
    for x in base.into_iter().chain(add) {
        if !new.contains(&x) && !remove.contains(&x) {
            new.push(x);
        }
    }
    for x in &new {
        if !old.contains(x) {
            changes.push(format!("{what} +{x}"));
        }
    }
    for x in old {
        if !new.contains(x) {
            changes.push(format!("{what} -{x}"));
        }
    }
    Ok(new)
}

/// The audit record of an operator's change of partner `name` at `door` by `actor`, for
/// `person` (who acted, issue 20: `user:NAME`, `admin-token`, `operator`).
fn change_record(
    door: &str,
    actor: &str,
    person: Option<&str>,
    name: &str,
    changes: &[String],
) -> AuditRecord {
    let mut transformations = vec![format!("partner {name}")];
    transformations.extend(changes.iter().cloned());
    AuditRecord {
        direction: "admin".to_owned(),
        door: door.to_owned(),
        partner: actor.to_owned(),
        person: person.map(str::to_owned),
        collection: String::new(),
        object_id: String::new(),
        modified: String::new(),
        decision: "changed".to_owned(),
        transformations,
        policy_version: BASE_POLICY_VERSION.to_owned(),
        vid: 0,
    }
}

/// Stores `make(current)` in place of the partner `name`, with the audit entry of what
/// changed, compared and set: a change made meanwhile by another writer is read again and
/// `make` applied to it. `make` returns the new partner and the changes; no change: nothing
/// is written. Errors: not found; [`AdminError::Conflict`] after [`ATTEMPTS`] lost races;
/// `make`'s own.
fn change_partner(
    store: &dyn Store,
    name: &str,
    door: &str,
    (actor, person): (&str, Option<&str>),
    make: impl Fn(&Partner) -> Result<(Partner, Vec<String>)>,
) -> Result<Partner> {
    match change_partner_held(store, name, door, (actor, person), make, &|_, _| Ok(None))? {
        Released::Applied(p) => Ok(p),
        Released::Pending(a) => Err(AdminError::Internal(format!(
            "partner {name:?}: kept as approval {} where no approval applies",
            a.id
        ))),
    }
}

/// [`change_partner`], where `hold(was, now)` may keep the change as a pending approval
/// instead (four-eyes release, [`release::hold_partner`]): then nothing is written and the
/// approval is returned.
fn change_partner_held(
    store: &dyn Store,
    name: &str,
    door: &str,
    (actor, person): (&str, Option<&str>),
    make: impl Fn(&Partner) -> Result<(Partner, Vec<String>)>,
    hold: &dyn Fn(&Partner, &Partner) -> Result<Option<ApprovalInfo>>,
) -> Result<Released<Partner>> {
    for _ in 0..ATTEMPTS {
        let was = find_partner(store, name)?;
        let (mut now, changes) = make(&was)?;
        if changes.is_empty() {
            return Ok(Released::Applied(was));
        }
        if let Some(a) = hold(&was, &now)? {
            return Ok(Released::Pending(Box::new(a)));
        }
        now.details.updated_ns = concord_stix::Timestamp::now_micros().unix_nanos();
        let record = change_record(door, actor, person, name, &changes);
        if store.update_partner(&was, &now, &[record])? {
            return Ok(Released::Applied(now));
        }
    }
    Err(AdminError::Conflict(format!(
        "partner {name:?} changed {ATTEMPTS} times while this change was made; try again"
    )))
}

/// Changes a partner's grants, groups or jurisdiction in place, keeping its API key
/// (`concord partner update`, `PATCH /api/v1/partners/{name}`, the partner page's form):
/// stored with its audit entry (door `partner-update`, by `actor`: `operator`, `admin`, for
/// `release.person`) in one transaction; every `serve` process applies it at the partner's
/// next request. A change that changes nothing writes nothing. With `[release] four_eyes`, a
/// change that widens what a cross-border partner receives (a new read grant or group, a
/// jurisdiction that makes it domestic, … [`release::partner_widens`]) is kept as a pending
/// approval instead, for a second releaser ([`Released::Pending`]); a narrowing or a write
/// grant applies at once. A change that does both waits as a whole.
/// Errors: not found (the partner, a collection); invalid (nothing asked, a list given both
/// whole and by additions, a bad jurisdiction or group name); conflict (see
/// [`change_partner`]); forbidden (a widening asked by no named person, the four-eyes
/// rule).
pub fn update_partner(
    release: &Release<'_>,
    name: &str,
    change: &PartnerChange,
    actor: &str,
) -> Result<Released<PartnerInfo>> {
    let store = release.store;
    let person = Some(release.person);
    if change.is_empty() {
        return Err(AdminError::Invalid(
            "nothing to change: give a jurisdiction, or collections to read or write, or \
             groups (whole lists, or additions and removals)"
                .to_owned(),
        ));
    }
    let jurisdiction = change
        .jurisdiction
        .as_deref()
        .map(jurisdiction_code)
        .transpose()?;
    for g in change
        .groups
        .iter()
        .flatten()
        .chain(&change.add_groups)
        .chain(&change.remove_groups)
    {
        check_group_name(g)?;
    }
    let hold = |was: &Partner, now: &Partner| -> Result<Option<ApprovalInfo>> {
        Ok(release::hold_partner(release, was, now)?.map(ApprovalInfo::from))
    };
    let make = |was: &Partner| -> Result<(Partner, Vec<String>)> {
        let ids = |names: &[String], held: &[String]| -> Result<Vec<String>> {
            names
                .iter()
                .map(|n| collection_id(store, n, held))
                .collect()
        };
        let mut changes = Vec::new();
        let mut now = was.clone();
        if let Some(j) = &jurisdiction
            && *j != was.jurisdiction
        {
            changes.push(format!("jurisdiction {} -> {j}", was.jurisdiction));
            now.jurisdiction = j.clone();
        }
        now.read = apply_list(
            "read",
            &was.read,
            change
                .read
                .as_deref()
                .map(|r| ids(r, &was.read))
                .transpose()?,
            ids(&change.add_read, &was.read)?,
            ids(&change.remove_read, &was.read)?,
            &mut changes,
        )?;
        now.write = apply_list(
            "write",
            &was.write,
            change
                .write
                .as_deref()
                .map(|w| ids(w, &was.write))
                .transpose()?,
            ids(&change.add_write, &was.write)?,
            ids(&change.remove_write, &was.write)?,
            &mut changes,
        )?;
        now.groups = apply_list(
            "group",
            &was.groups,
            change.groups.clone(),
            change.add_groups.clone(),
            change.remove_groups.clone(),
            &mut changes,
        )?;
        Ok((now, changes))
    };
    Ok(
        match change_partner_held(
            store,
            name,
            release::PARTNER_DOOR,
            (actor, person),
            make,
            &hold,
        )? {
            Released::Applied(p) => Released::Applied(PartnerInfo::from(&p)),
            Released::Pending(a) => Released::Pending(a),
        },
    )
}

// --- the directory ------------------------------------------------------------------------

/// A way to reach a partner, read from its identity: `contact_information` (kind `text`),
/// or the OASIS contact-information extension's `email_addresses` (`email`),
/// `contact_numbers` (`phone`) and `websites` (`website`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    /// `text`, `email`, `phone` or `website`.
    pub kind: String,
    /// The address, number or text as the identity gives it.
    pub value: String,
    /// The extension's type of it (`work`, `work-phone`, …), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A key the node knows the partner by, with its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// `api-key` (its public key id; the secret is never stored), `node-key` (its node's
    /// Ed25519 public key, hex) or `client-certificate` (the SHA-256 of its mTLS
    /// certificate's DER, hex).
    pub kind: String,
    /// The key id, the public key or the certificate digest.
    pub value: String,
    /// What to compare over the telephone: for a node key the first 16 bytes of its
    /// SHA-256 (as `concord node key` and transfer packages show it), for a certificate its
    /// SHA-256, for an API key its key id.
    pub fingerprint: String,
}

/// One partner's entry in the partner directory (`concord partner show`,
/// `GET /api/v1/partners/{name}`, `/ui/operator/partners/{name}`): what [`PartnerInfo`] holds
/// and who the partner is, how to reach it, the keys it is known by, its agreement and when
/// it was last active.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DirectoryEntry {
    /// Name, jurisdiction, groups, grants (collection ids), API key id.
    #[serde(flatten)]
    pub partner: PartnerInfo,
    /// Aliases (else ids) of the collections it may read, in the order of `read`.
    pub read_names: Vec<String>,
    /// Aliases (else ids) of the collections it may write, in the order of `write`.
    pub write_names: Vec<String>,
    /// The organisation's name, from its identity.
    pub organisation: Option<String>,
    /// Its organisation as a STIX 2.1 `identity` (§4.5), when known.
    #[schema(value_type = Option<Object>)]
    pub identity: Option<Value>,
    /// How to reach it, from the identity.
    pub contacts: Vec<Contact>,
    /// The keys it is known by: always its API key id; its node key and client certificate
    /// when known.
    pub keys: Vec<KeyInfo>,
    /// How it came to be: `operator` (`partner add`) or `invitation:<id>` (a join); `null`
    /// for partners added before the directory existed.
    pub origin: Option<String>,
    /// When it was added, ns since the epoch.
    pub created_ns: i64,
    /// When its grants, groups, jurisdiction or directory fields last changed, ns since the
    /// epoch; 0: never.
    pub updated_ns: i64,
    /// Which version of the agreement (IEP 2.0, PAP, legal basis) each side holds
    /// ([`super::agreement_versions`]), filled by [`with_agreement`]; `null` where the
    /// caller has no policy at hand.
    pub agreement: Option<super::AgreementVersions>,
    /// When it was last active here: the time of the newest audit entry that names it
    /// (its TAXII reads and writes, a sync push to it, its web pages), ns since the epoch;
    /// `null`: never.
    pub last_activity_ns: Option<i64>,
}

/// The contacts an identity gives (see [`Contact`]), in its order.
pub fn contacts_of(identity: &Value) -> Vec<Contact> {
    let mut out = Vec::new();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(t) = identity.get("contact_information").and_then(text) {
        out.push(Contact {
            kind: "text".to_owned(),
            value: t,
            label: None,
        });
    }
    let Some(ext) = identity
        .get("extensions")
        .and_then(|e| e.get(CONTACT_EXTENSION))
    else {
        return out;
    };
    let list = |key: &str| {
        ext.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for e in list("email_addresses") {
        if let Some(v) = e.get("email_address_value").and_then(text) {
            out.push(Contact {
                kind: "email".to_owned(),
                value: v,
                label: e.get("digital_contact_type").and_then(text),
            });
        }
    }
    for n in list("contact_numbers") {
        if let Some(v) = n.get("contact_number").and_then(text) {
            out.push(Contact {
                kind: "phone".to_owned(),
                value: v,
                label: n.get("contact_number_type").and_then(text),
            });
        }
    }
    for w in list("websites") {
        if let Some(v) = text(&w) {
            out.push(Contact {
                kind: "website".to_owned(),
                value: v,
                label: None,
            });
        }
    }
    out
}

/// The fingerprint of a node key given as hex: the first 16 bytes of the SHA-256 of its
/// 32 bytes (as transfer packages show it); `None` when it is not 64 hex digits.
pub fn node_key_fingerprint(hex: &str) -> Option<String> {
    let bytes = decode_hex32(hex)?;
    Some(concord_store::node_key::hex(
        &sha2::Sha256::digest(bytes)[..16],
    ))
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn keys_of(p: &Partner) -> Vec<KeyInfo> {
    let mut keys = vec![KeyInfo {
        kind: "api-key".to_owned(),
        value: p.key_id.clone(),
        fingerprint: p.key_id.clone(),
    }];
    if let Some(k) = &p.details.node_key {
        keys.push(KeyInfo {
            kind: "node-key".to_owned(),
            value: k.clone(),
            fingerprint: node_key_fingerprint(k).unwrap_or_default(),
        });
    }
    if let Some(c) = &p.details.client_cert_sha256 {
        keys.push(KeyInfo {
            kind: "client-certificate".to_owned(),
            value: c.clone(),
            fingerprint: c.clone(),
        });
    }
    keys
}

/// The directory entry of a stored partner (one store look-up for its last activity, one
/// for the collections' names).
pub fn entry_of(store: &dyn Store, p: &Partner) -> Result<DirectoryEntry> {
    let collections = store.collections()?;
    let names = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|id| {
                collections
                    .iter()
                    .find(|c| c.id == *id)
                    .and_then(|c| c.alias.clone())
                    .unwrap_or_else(|| id.clone())
            })
            .collect()
    };
    let identity = p.details.identity.clone();
    Ok(DirectoryEntry {
        partner: PartnerInfo::from(p),
        read_names: names(&p.read),
        write_names: names(&p.write),
        organisation: identity
            .as_ref()
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        contacts: identity.as_ref().map(contacts_of).unwrap_or_default(),
        identity,
        keys: keys_of(p),
        origin: p.details.origin.clone(),
        created_ns: p.created_ns,
        updated_ns: p.details.updated_ns,
        agreement: None,
        last_activity_ns: store.last_activity(&p.name)?,
    })
}

/// `entry` with [`DirectoryEntry::agreement`] under `policy` (the node's active policy).
/// Errors: the store.
pub fn with_agreement(
    store: &dyn Store,
    policy: &concord_policy::actions::Policy,
    mut entry: DirectoryEntry,
) -> Result<DirectoryEntry> {
    entry.agreement = Some(super::agreement_versions(
        store,
        policy,
        &entry.partner.name,
    )?);
    Ok(entry)
}

/// The directory entry of partner `name` (`concord partner show`). Errors: not found.
pub fn directory_entry(store: &dyn Store, name: &str) -> Result<DirectoryEntry> {
    entry_of(store, &find_partner(store, name)?)
}

/// Every partner's directory entry, by name.
pub fn directory(store: &dyn Store) -> Result<Vec<DirectoryEntry>> {
    store
        .partners()?
        .iter()
        .map(|p| entry_of(store, p))
        .collect()
}

/// Directory fields an operator gives a partner added by hand (`concord partner set`).
/// Absent fields are unchanged.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsChange {
    /// Its organisation as a STIX 2.1 `identity` object, valid (every MUST of STIX 2.1),
    /// with the contact-information extension where known.
    #[schema(value_type = Option<Object>)]
    pub identity: Option<Value>,
    /// Free text of how to reach it: the identity's `contact_information` (an identity
    /// named after the partner is made when it has none).
    pub contact: Option<String>,
    /// Its node's Ed25519 public key, 64 hex digits (`concord node key` on its node).
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    pub node_key: Option<String>,
    /// SHA-256 of its mTLS client certificate's DER, 64 hex digits.
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    pub client_cert_sha256: Option<String>,
}

/// A valid STIX 2.1 identity, or an invalid-request error naming the field and rule.
fn check_identity(identity: &Value) -> Result<()> {
    if identity.get("type").and_then(Value::as_str) != Some("identity") {
        return Err(AdminError::Invalid(
            "identity: expected a STIX 2.1 object of type \"identity\" (STIX 2.1 §4.5)".to_owned(),
        ));
    }
    concord_stix::validate_object(identity).map_err(|v| {
        AdminError::Invalid(format!(
            "identity: {}",
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok(())
}

fn hex64(field: &str, value: &str) -> Result<String> {
    let v = value.to_ascii_lowercase();
    if decode_hex32(&v).is_none() {
        return Err(AdminError::Invalid(format!(
            "{field} {value:?}: expected 64 hexadecimal digits (32 bytes)"
        )));
    }
    Ok(v)
}

/// An identity for partner `name` (organization), made when an operator gives a contact
/// to a partner without one: a new UUIDv4 id, `created` = `modified` = `now`.
fn new_identity(name: &str, now: &concord_stix::Timestamp) -> Value {
    serde_json::json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": format!("identity--{}", uuid::Uuid::new_v4()),
        "created": now.to_string(),
        "modified": now.to_string(),
        "name": name,
        "identity_class": "organization",
    })
}

/// Gives a partner directory fields (`concord partner set`): its identity, a contact, its
/// node key, its client certificate's digest; stored with its audit entry (door
/// `partner-set`, by `actor`) in one transaction. A new identity replaces the old one; a
/// contact sets `contact_information` of the identity (a new version: `modified` now), or
/// of a new identity named after the partner. Errors: not found; invalid (nothing given,
/// an identity that is not a valid STIX 2.1 identity, a key that is not 64 hex digits).
pub fn set_details(
    store: &dyn Store,
    name: &str,
    change: &DetailsChange,
    actor: &str,
    person: Option<&str>,
) -> Result<DirectoryEntry> {
    if change.identity.is_none()
        && change.contact.is_none()
        && change.node_key.is_none()
        && change.client_cert_sha256.is_none()
    {
        return Err(AdminError::Invalid(
            "nothing to set: give an identity, a contact, a node key or a client certificate \
             digest"
                .to_owned(),
        ));
    }
    if let Some(i) = &change.identity {
        check_identity(i)?;
    }
    let node_key = change
        .node_key
        .as_deref()
        .map(|k| hex64("node key", k))
        .transpose()?;
    let cert = change
        .client_cert_sha256
        .as_deref()
        .map(|k| hex64("client certificate SHA-256", k))
        .transpose()?;
    let p = change_partner(store, name, "partner-set", (actor, person), |was| {
        let mut now = was.clone();
        let mut changes = Vec::new();
        if let Some(i) = &change.identity
            && was.details.identity.as_ref() != Some(i)
        {
            now.details.identity = Some(i.clone());
            changes.push(format!(
                "identity {}",
                i.get("id").and_then(Value::as_str).unwrap_or_default()
            ));
        }
        if let Some(c) = &change.contact {
            let t = concord_stix::Timestamp::now_micros();
            let mut identity = now
                .details
                .identity
                .clone()
                .unwrap_or_else(|| new_identity(&was.name, &t));
            if identity.get("contact_information").and_then(Value::as_str) != Some(c.as_str()) {
                identity["contact_information"] = Value::String(c.clone());
                // A new version of the identity (STIX 2.1 §3.6): `modified` later than
                // the one before.
                let later = match identity
                    .get("modified")
                    .and_then(Value::as_str)
                    .and_then(|m| concord_stix::Timestamp::parse(m).ok())
                {
                    Some(m) if m.unix_nanos() >= t.unix_nanos() => {
                        concord_stix::Timestamp::from_unix_nanos(
                            m.unix_nanos().saturating_add(1_000),
                            6,
                        )
                    }
                    _ => t,
                };
                identity["modified"] = Value::String(later.to_string());
                check_identity(&identity)?;
                now.details.identity = Some(identity);
                changes.push("contact".to_owned());
            }
        }
        if let Some(k) = &node_key
            && was.details.node_key.as_ref() != Some(k)
        {
            now.details.node_key = Some(k.clone());
            changes.push(format!(
                "node-key {}",
                node_key_fingerprint(k).unwrap_or_default()
            ));
        }
        if let Some(c) = &cert
            && was.details.client_cert_sha256.as_ref() != Some(c)
        {
            now.details.client_cert_sha256 = Some(c.clone());
            changes.push(format!("client-cert {c}"));
        }
        Ok((now, changes))
    })?;
    entry_of(store, &p)
}

// --- a group's shared directory -----------------------------------------------------------

/// The door of [`publish_directory`]'s ingest.
pub const PUBLISH_DOOR: &str = "partner-directory-publish";

/// The door of [`import_directory`]'s changes.
pub const IMPORT_DOOR: &str = "partner-directory-import";

/// What [`publish_directory`] wrote.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Published {
    /// The collection's id.
    pub collection: String,
    /// The identities written (this node's first, then the members', by partner name).
    pub identities: Vec<String>,
    /// Of them, the versions the collection did not hold yet.
    pub added: usize,
    /// Identities the ingest refused, with the rule broken (the others are written).
    pub rejected: Vec<String>,
    /// Members of the group without an identity in the directory: nothing is published for
    /// them (`concord partner set NAME --identity FILE` gives one).
    pub without_identity: Vec<String>,
}

/// The setting that holds this node's identity in shared directories (STIX JSON).
pub const DIRECTORY_IDENTITY_SETTING: &str = "directory/identity";

/// This node's identity as its group directories publish it, made on first use
/// (`identity_class` organization, named by the node's title and jurisdiction as its
/// incident identity is) and kept in [`DIRECTORY_IDENTITY_SETTING`]; `node_key` (64 hex
/// digits) is given as [`NODE_KEY_PROPERTY`], so that members match it to the partner they
/// know by that key. A new key makes a new version (`modified` later, STIX 2.1 §3.6). Not
/// the incident identity: that one is TLP:AMBER+STRICT (it is named only to the partners an
/// incident is addressed to), while a directory is for the whole group; this one carries no
/// marking, so the directory collection's sharing decides who receives it.
pub fn directory_identity(
    node: &concord_coordination::Node<'_>,
    node_key: Option<&str>,
) -> Result<Value> {
    let store = node.store;
    let now = concord_stix::Timestamp::now_micros();
    let existing: Option<Value> = match store.setting(DIRECTORY_IDENTITY_SETTING)? {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            AdminError::Internal(format!("setting {DIRECTORY_IDENTITY_SETTING}: {e}"))
        })?),
        None => None,
    };
    let mut v = match &existing {
        Some(v) => v.clone(),
        None => {
            let title = if node.title.is_empty() {
                "Concord node"
            } else {
                node.title
            };
            let name = match node.jurisdiction {
                Some(cc) => format!("{title} {cc}"),
                None => title.to_owned(),
            };
            let mut v = serde_json::json!({
                "type": "identity",
                "spec_version": "2.1",
                "id": format!("identity--{}", uuid::Uuid::new_v4()),
                "created": now.to_string(),
                "modified": now.to_string(),
                "name": name,
                "identity_class": "organization",
            });
            if let Some(cc) = node.jurisdiction {
                v["description"] = Value::String(format!("Concord node, jurisdiction {cc}"));
            }
            v
        }
    };
    let mut changed = existing.is_none();
    if let Some(k) = node_key
        && v.get(NODE_KEY_PROPERTY).and_then(Value::as_str) != Some(k)
    {
        if existing.is_some() {
            let was = modified_of(&v);
            let later = if was >= now.unix_nanos() {
                concord_stix::Timestamp::from_unix_nanos(was.saturating_add(1_000), 6)
            } else {
                now
            };
            v["modified"] = Value::String(later.to_string());
        }
        v[NODE_KEY_PROPERTY] = Value::String(k.to_owned());
        changed = true;
    }
    if changed {
        check_identity(&v)?;
        store.set_setting(DIRECTORY_IDENTITY_SETTING, &v.to_string())?;
    }
    Ok(v)
}

/// Publishes the directory of sharing group `group` into collection `collection` (created
/// when absent) as STIX 2.1 identities (`concord partner directory publish`): this node's own
/// identity ([`directory_identity`]) and the stored identity of each partner in the group, unchanged (each is the
/// version its maker made; the directory republishes it, it does not re-version it), through
/// the one ingest (validated, one transaction), audited as door
/// [`PUBLISH_DOOR`] by `actor`. The members read it over TAXII, through the egress door, as
/// any collection: grant them `--read` and share it with the group
/// (`concord collection share C --group G --default-tlp green`). Errors: no member in the
/// group; an input the ingest cannot read; the store. An identity the ingest refuses is
/// named in [`Published::rejected`].
pub fn publish_directory(
    node: &concord_coordination::Node<'_>,
    node_key: Option<&str>,
    group: &str,
    collection: &str,
    actor: &str,
) -> Result<Published> {
    check_group_name(group)?;
    let store = node.store;
    let members: Vec<Partner> = store
        .partners()?
        .into_iter()
        .filter(|p| p.groups.iter().any(|g| g == group))
        .collect();
    if members.is_empty() {
        return Err(AdminError::NotFound(format!(
            "group {group:?} has no member (concord partner update NAME --group {group})"
        )));
    }
    let me = directory_identity(node, node_key)?;
    let mut objects = vec![me];
    let mut without_identity = Vec::new();
    for m in &members {
        match &m.details.identity {
            Some(i) => objects.push(i.clone()),
            None => without_identity.push(m.name.clone()),
        }
    }
    let identities: Vec<String> = objects
        .iter()
        .filter_map(|o| o.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let bundle = serde_json::json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v4()),
        "objects": objects,
    })
    .to_string();
    let failed = |e: String| AdminError::Invalid(format!("directory of {group:?}: {e}"));
    let report = match store.collection(collection)? {
        Some(c) => concord_server::audit::import_bundle(
            store,
            &c.id,
            PUBLISH_DOOR,
            actor,
            node.person,
            bundle.as_bytes(),
            node.max_object_size,
            |_| {},
        )
        .map_err(|e| failed(e.to_string()))?,
        None => {
            let c = concord_store::NewCollection {
                alias: collection.to_owned(),
                title: Some(format!("Directory of {group}")),
                description: Some(format!(
                    "The partner directory of sharing group {group}, as STIX identities"
                )),
            }
            .with_new_id();
            concord_server::audit::import_bundle_creating(
                store,
                &c,
                PUBLISH_DOOR,
                actor,
                node.person,
                bundle.as_bytes(),
                node.max_object_size,
                |_| {},
            )
            .map_err(|e| failed(e.to_string()))?
        }
    };
    let c = super::find_collection(store, collection)?;
    Ok(Published {
        collection: c.id,
        identities,
        added: report.added,
        rejected: report
            .rejected
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.id.as_deref().unwrap_or("?"),
                    r.reasons.join("; ")
                )
            })
            .collect(),
        without_identity,
    })
}

/// What [`import_directory`] did with each identity it read.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DirectoryImport {
    /// Identities read (the newest version of each).
    pub read: usize,
    /// Partners whose identity was set or replaced by a newer version: (partner, identity id).
    pub updated: Vec<(String, String)>,
    /// Identities that matched a partner whose stored version is as new or newer.
    pub unchanged: Vec<String>,
    /// Identities that matched no known partner (this node's own among them).
    pub unmatched: Vec<String>,
    /// Identities that matched more than one partner: nothing was set from them.
    pub ambiguous: Vec<String>,
}

/// The property of a published identity that names its node's public key (64 hex digits),
/// when its publisher knows it: the strongest of [`import_directory`]'s matches.
pub const NODE_KEY_PROPERTY: &str = "x_concord_node_key";

/// Which known partner an identity describes, by the first rule that finds exactly one:
/// 1. its `id` is the id of the partner's stored identity;
/// 2. its `x_concord_node_key` is the partner's node key;
/// 3. its `name` is the partner's name (compared case-insensitively), for a partner without
///    a stored identity.
///
/// `Err(())` when a rule finds several (ambiguous), `Ok(None)` when none finds one.
fn match_partner<'p>(
    identity: &Value,
    partners: &'p [Partner],
) -> std::result::Result<Option<&'p Partner>, ()> {
    let id = identity.get("id").and_then(Value::as_str);
    let key = identity
        .get(NODE_KEY_PROPERTY)
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let name = identity.get("name").and_then(Value::as_str);
    let rules: [&dyn Fn(&Partner) -> bool; 3] = [
        &|p| {
            id.is_some()
                && p.details
                    .identity
                    .as_ref()
                    .and_then(|i| i.get("id"))
                    .and_then(Value::as_str)
                    == id
        },
        &|p| key.is_some() && p.details.node_key.as_deref() == key.as_deref(),
        &|p| {
            p.details.identity.is_none()
                && name.is_some_and(|n| n.to_lowercase() == p.name.to_lowercase())
        },
    ];
    for rule in rules {
        let found: Vec<&Partner> = partners.iter().filter(|p| rule(p)).collect();
        match found.len() {
            0 => continue,
            1 => return Ok(Some(found[0])),
            _ => return Err(()),
        }
    }
    Ok(None)
}

/// Fills the directory from a group's shared directory (`concord partner directory import`):
/// for each identity in `identities` (the newest version of each id; other objects are
/// ignored), the known partner it describes ([`match_partner`]'s rules, documented there)
/// gets it as its identity, when it has none or an older version (`modified` earlier) of the
/// same id. Each partner changed is one audited change (door [`IMPORT_DOOR`], by `actor`).
/// Every identity is checked against STIX 2.1 first; an invalid one is refused by name and
/// nothing is changed.
pub fn import_directory(
    store: &dyn Store,
    identities: &[Value],
    actor: &str,
    person: Option<&str>,
) -> Result<DirectoryImport> {
    let mut newest: std::collections::BTreeMap<String, &Value> = Default::default();
    for o in identities
        .iter()
        .filter(|o| o.get("type").and_then(Value::as_str) == Some("identity"))
    {
        check_identity(o)?;
        let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
        let newer = match newest.get(id) {
            Some(was) => modified_of(o) > modified_of(was),
            None => true,
        };
        if newer {
            newest.insert(id.to_owned(), o);
        }
    }
    let partners = store.partners()?;
    let mut out = DirectoryImport {
        read: newest.len(),
        updated: Vec::new(),
        unchanged: Vec::new(),
        unmatched: Vec::new(),
        ambiguous: Vec::new(),
    };
    for (id, identity) in newest {
        let p = match match_partner(identity, &partners) {
            Ok(Some(p)) => p,
            Ok(None) => {
                out.unmatched.push(id);
                continue;
            }
            Err(()) => {
                out.ambiguous.push(id);
                continue;
            }
        };
        let identity = identity.clone();
        let changed = change_partner(store, &p.name, IMPORT_DOOR, (actor, person), |was| {
            let mut now = was.clone();
            // Only a newer version of the same identity replaces one: an identity under
            // another id, matched by the node key it claims (public in every published
            // directory) or by name, is the publisher's word about someone else.
            let older = match &was.details.identity {
                None => true,
                Some(i) => {
                    i.get("id") == identity.get("id") && modified_of(i) < modified_of(&identity)
                }
            };
            if !older {
                return Ok((now, Vec::new()));
            }
            now.details.identity = Some(identity.clone());
            Ok((now, vec![format!("identity {id}")]))
        })?;
        if changed.details.identity.as_ref() == Some(&identity)
            && p.details.identity.as_ref() != Some(&identity)
        {
            out.updated.push((p.name.clone(), id));
        } else {
            out.unchanged.push(id);
        }
    }
    Ok(out)
}

/// An object's `modified` as an instant (ns), for ordering versions; 0 when absent or bad.
fn modified_of(o: &Value) -> i64 {
    o.get("modified")
        .and_then(Value::as_str)
        .and_then(|m| concord_stix::Timestamp::parse(m).ok())
        .map_or(0, |t| t.unix_nanos())
}

/// The newest version of every identity collection `collection` holds (operator's read of
/// its own store: nothing leaves, nothing is audited), for [`import_directory`]. Errors: no
/// such collection; a stored body that is not JSON.
pub fn identities_in(store: &dyn Store, collection: &str) -> Result<Vec<Value>> {
    let c = super::find_collection(store, collection)?;
    let mut out = Vec::new();
    concord_store::each_entry(
        store,
        &c.id,
        &concord_store::ObjectFilter {
            types: vec!["identity".to_owned()],
            versions: vec![concord_store::VersionSelector::Last],
            ..Default::default()
        },
        |e| {
            let body = e.body.unwrap_or_default();
            let v: Value = serde_json::from_str(&body)
                .map_err(|err| AdminError::Internal(format!("stored {}: not JSON: {err}", e.id)))?;
            out.push(v);
            Ok::<(), AdminError>(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str) -> Partner {
        Partner {
            name: name.to_owned(),
            jurisdiction: "DE".to_owned(),
            groups: vec![],
            read: vec![],
            write: vec![],
            key_id: format!("{name}-key"),
            key_hash: String::new(),
            created_ns: 0,
            details: Default::default(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn lists_change_whole_or_by_additions_and_removals_and_say_what_changed() {
        let old = strings(&["a", "b"]);
        let mut what = Vec::new();
        let new = apply_list(
            "read",
            &old,
            None,
            strings(&["c", "a"]),
            strings(&["b"]),
            &mut what,
        )
        .unwrap();
        assert_eq!(new, strings(&["a", "c"]));
        assert_eq!(what, strings(&["read +c", "read -b"]));
        let mut what = Vec::new();
        let new = apply_list("group", &old, Some(vec![]), vec![], vec![], &mut what).unwrap();
        assert!(new.is_empty());
        assert_eq!(what, strings(&["group -a", "group -b"]));
        // Nothing changes: nothing said.
        let mut what = Vec::new();
        apply_list("read", &old, Some(old.clone()), vec![], vec![], &mut what).unwrap();
        assert!(what.is_empty());
        let e = apply_list(
            "read",
            &old,
            Some(vec![]),
            strings(&["c"]),
            vec![],
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = apply_list(
            "write",
            &old,
            None,
            strings(&["c"]),
            strings(&["c"]),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("both added and removed"), "{e}");
    }

    #[test]
    fn contacts_come_from_the_identity_and_its_contact_extension() {
        let identity = serde_json::json!({
            "type": "identity", "name": "X", "contact_information": "desk, 24/7",
            "extensions": {CONTACT_EXTENSION: {
                "extension_type": "property-extension",
                "email_addresses": [{"digital_contact_type": "work", "email_address_value": "a@x.example"}],
                "contact_numbers": [{"contact_number_type": "work-phone", "contact_number": "+1 555 0100"}],
                "websites": ["https://x.example/"]
            }}
        });
        let got: Vec<(String, String)> = contacts_of(&identity)
            .into_iter()
            .map(|c| (c.kind, c.value))
            .collect();
        assert_eq!(
            got,
            [
                ("text", "desk, 24/7"),
                ("email", "a@x.example"),
                ("phone", "+1 555 0100"),
                ("website", "https://x.example/")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(contacts_of(&serde_json::json!({"type": "identity"})).is_empty());
    }

    #[test]
    fn identities_match_by_id_then_node_key_then_name_and_never_two() {
        let mut with_identity = partner("bsi");
        with_identity.details.identity =
            Some(serde_json::json!({"type": "identity", "id": "identity--1", "name": "BSI"}));
        let mut with_key = partner("cert-c");
        with_key.details.node_key = Some("ab".repeat(32));
        let plain = partner("anssi");
        let all = vec![with_identity, with_key, plain];
        let find =
            |v: serde_json::Value| match_partner(&v, &all).map(|p| p.map(|p| p.name.clone()));
        assert_eq!(
            find(serde_json::json!({"id": "identity--1", "name": "anssi"})),
            Ok(Some("bsi".to_owned())),
            "the id first"
        );
        assert_eq!(
            find(serde_json::json!({"id": "identity--2", "x_concord_node_key": "AB".repeat(32)})),
            Ok(Some("cert-c".to_owned())),
            "then the node key, in any case"
        );
        assert_eq!(
            find(serde_json::json!({"id": "identity--3", "name": "ANSSI"})),
            Ok(Some("anssi".to_owned())),
            "then the name"
        );
        assert_eq!(
            find(serde_json::json!({"id": "identity--4", "name": "BSI"})),
            Ok(None),
            "a name matches only partners without an identity"
        );
        let twins = vec![partner("x"), partner("X")];
        assert_eq!(
            match_partner(
                &serde_json::json!({"id": "identity--5", "name": "x"}),
                &twins
            )
            .map(|p| p.is_some()),
            Err(()),
            "ambiguous"
        );
    }

    /// Changes race on one partner from several threads (as from several operators or
    /// processes): compare and set with retries loses none of them, and each is audited.
    #[test]
    fn concurrent_changes_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
            concord_store::SqliteStore::open(&dir.path().join("t.sqlite")).unwrap(),
        );
        let mut names = Vec::new();
        for i in 0..6 {
            let alias = format!("c{i}");
            store
                .create_collection(&concord_store::NewCollection {
                    alias: alias.clone(),
                    ..Default::default()
                })
                .unwrap();
            names.push(alias);
        }
        store.put_partner(&partner("bsi")).unwrap();
        let threads: Vec<_> = names
            .iter()
            .cloned()
            .map(|alias| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let policy = concord_policy::actions::Policy::node_default(
                        Some("DE"),
                        Default::default(),
                    );
                    let release = Release {
                        store: store.as_ref(),
                        four_eyes: false,
                        unnamed_persons: false,
                        policy: &policy,
                        person: "operator",
                    };
                    let change = PartnerChange {
                        add_read: vec![alias],
                        ..Default::default()
                    };
                    match update_partner(&release, "bsi", &change, "operator") {
                        Ok(Released::Applied(p)) => Ok(p),
                        Ok(Released::Pending(_)) => panic!("four-eyes is off"),
                        Err(e) => Err(e),
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let p = find_partner(store.as_ref(), "bsi").unwrap();
        assert_eq!(p.read.len(), 6, "{:?}", p.read);
        let log = store
            .audit_entries(&concord_store::AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(log.len(), 6);
        assert!(log.iter().all(|e| e.door == "partner-update"));
    }

    #[test]
    fn node_key_fingerprints_are_16_bytes_of_sha256() {
        let fp = node_key_fingerprint(&"00".repeat(32)).unwrap();
        assert_eq!(fp.len(), 32);
        assert_eq!(
            fp,
            concord_store::node_key::hex(&sha2::Sha256::digest([0u8; 32])[..16])
        );
        assert_eq!(node_key_fingerprint("abc"), None);
        assert_eq!(node_key_fingerprint(&"zz".repeat(32)), None);
    }
}
