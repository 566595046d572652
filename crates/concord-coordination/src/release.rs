//! Four-eyes release (issue 20, item 3; DESIGN.md: "releaser … approve what widens a
//! cross-border release").
//!
//! A change that widens what a *cross-border* partner receives — one whose jurisdiction
//! differs from the node's, or every partner when the node names no jurisdiction — waits,
//! when `[release] four_eyes = true`, for a second person's approval: a lower default TLP of
//! a collection, a new AMBER recipient or GREEN sharing group (any change of a collection's
//! sharing after which such a partner may see a TLP level it could not see before,
//! [`concord_policy::egress::may_see`]), or a grant in an incident to such a partner. The
//! change is kept as a pending [`Approval`] (who asked, what, when) and nothing is applied;
//! [`approve`] applies it in the transaction that records the approval, with an audit entry
//! naming both people; the same person cannot approve what it asked (the admin token counts
//! as one person, `admin-token`). Narrowing changes, domestic ones, and every change while
//! four-eyes is off apply at once, audited as well (door `collection-share`).
//!
//! Who may ask and approve is the role table's business (`concord_server::roles`,
//! `Operation::Release`): each door checks it before calling here.
//!
//! The CLI (`concord collection share`, `incident grant`, `approval …`), the admin API
//! (`/api/v1/collections/{name}/sharing`, `/api/v1/incidents/{id}/grants`,
//! `/api/v1/approvals`) and the web UI (`/ui/approvals`) all call these functions.

use concord_egress::{BASE_POLICY_VERSION, Door};
use concord_policy::egress::{CollectionSharing, PartnerProfile, may_see, sharing_setting_key};
use concord_policy::pii::Category;
use concord_policy::tlp::Tlp;
use concord_store::{
    Approval, ApprovalDecision, AuditRecord, Collection, Partner, SettingChange, Store,
};
use serde::{Deserialize, Serialize};

use crate::{DeskError, Node, OPERATOR};

/// The door of a collection's sharing change in the audit log.
pub const SHARING_DOOR: &str = "collection-share";
/// The direction of a sharing change in the audit log: an operator's change that moves no
/// object version (`concord_store::audit::Decision::Changed`, vid 0), as `partner-update`.
pub const RELEASE_DIRECTION: &str = "admin";

/// Why a release operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The request breaks a rule (named), e.g. the four-eyes rule. Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The four-eyes rule: the approver is the person who asked. Nothing was changed.
    #[error("{0}")]
    FourEyes(String),
    /// No such approval (or collection, incident, partner).
    #[error("{0}")]
    NotFound(String),
    /// The approval was decided already (by whom, named). Nothing was changed.
    #[error("{0}")]
    Decided(String),
    /// The incident operation refused or failed (a grant's input).
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] concord_store::StoreError),
    /// A collection's sharing is unreadable.
    #[error(transparent)]
    Egress(#[from] concord_egress::EgressError),
    /// A stored approval's change is unreadable.
    #[error("approval {id}: unreadable change: {reason}")]
    Unreadable {
        /// The approval.
        id: String,
        /// Why.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, ReleaseError>;

/// How releases are made on this node.
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    /// The node's store.
    pub store: &'a dyn Store,
    /// `[release] four_eyes` of concord.toml: widening a cross-border release waits for a
    /// second person's approval.
    pub four_eyes: bool,
    /// The node's jurisdiction (ISO 3166-1 alpha-2, the policy's); `None`: every partner is
    /// across a border.
    pub jurisdiction: Option<&'a str>,
    /// Who acts, as the audit log names a person: `user:NAME`, `admin-token`, `operator`.
    pub person: &'a str,
}

/// A change of a collection's sharing, resolved (what `concord collection share` and the
/// API's `PUT …/sharing` give); absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharingEdit {
    /// A new TLP for unmarked objects, as its label (`TLP:CLEAR`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tlp: Option<String>,
    /// New GREEN sharing groups (`Some(None)`: the whole community).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Option<Vec<String>>>,
    /// New AMBER recipients (partner names, `group:G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

impl SharingEdit {
    /// The sharing after this edit. Errors: a `default_tlp` that is no TLP label.
    pub fn apply(
        &self,
        mut s: CollectionSharing,
    ) -> std::result::Result<CollectionSharing, String> {
        if let Some(t) = &self.default_tlp {
            s.default_tlp =
                Tlp::parse(t).ok_or_else(|| format!("default_tlp {t:?}: not a TLP level"))?;
        }
        if let Some(g) = &self.groups {
            s.groups = g.clone();
        }
        if let Some(r) = &self.recipients {
            s.recipients = r.clone();
        }
        Ok(s)
    }
}

/// A grant in an incident, as kept while it waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEdit {
    /// The partner.
    pub to: String,
    /// The categories of personal data (`email`, …).
    pub allow: Vec<String>,
}

/// What a release operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Applied now (narrowing, domestic, or four-eyes off).
    Applied(T),
    /// Kept as a pending approval, not applied: it widens a cross-border release.
    Pending(Box<Approval>),
}

/// Whether `p` is across a border from a node of `jurisdiction`.
pub fn cross_border(jurisdiction: Option<&str>, p: &Partner) -> bool {
    jurisdiction.is_none_or(|j| !j.eq_ignore_ascii_case(&p.jurisdiction))
}

fn profile(p: &Partner) -> PartnerProfile {
    PartnerProfile {
        name: p.name.clone(),
        jurisdiction: p.jurisdiction.clone(),
        groups: p.groups.clone(),
    }
}

const LEVELS: [Tlp; 5] = [
    Tlp::Clear,
    Tlp::Green,
    Tlp::Amber,
    Tlp::AmberStrict,
    Tlp::Red,
];

/// What a change of `collection_id`'s sharing from `old` to `new` widens for cross-border
/// partners that read the collection, in words (`CERT-X (FR) receives TLP:AMBER`,
/// `CERT-X (FR) receives unmarked objects (TLP:GREEN)`); empty when it widens nothing for
/// them (a narrowing, or a widening for domestic partners only).
pub fn sharing_widens(
    partners: &[Partner],
    jurisdiction: Option<&str>,
    collection_id: &str,
    old: &CollectionSharing,
    new: &CollectionSharing,
) -> Vec<String> {
    let mut out = Vec::new();
    for p in partners
        .iter()
        .filter(|p| cross_border(jurisdiction, p) && p.read.iter().any(|c| c == collection_id))
    {
        let pr = profile(p);
        let sees = |s: &CollectionSharing, t: Tlp| may_see(t, s, &pr).is_ok();
        for t in LEVELS {
            if sees(new, t) && !sees(old, t) {
                out.push(format!(
                    "{} ({}) receives {}",
                    p.name,
                    p.jurisdiction,
                    t.label()
                ));
            }
        }
        if sees(new, new.default_tlp) && !sees(old, old.default_tlp) {
            out.push(format!(
                "{} ({}) receives unmarked objects ({})",
                p.name,
                p.jurisdiction,
                new.default_tlp.label()
            ));
        }
    }
    out
}

fn new_approval(
    r: &Release<'_>,
    kind: &str,
    target: &str,
    change: String,
    summary: String,
) -> Approval {
    let id = concord_incident::new_id("approval");
    Approval {
        id: id.trim_start_matches("approval--").to_owned(),
        kind: kind.to_owned(),
        target: target.to_owned(),
        change,
        summary,
        requested_by: r.person.to_owned(),
        requested_ns: now_ns(),
        status: "pending".to_owned(),
        decided_by: None,
        decided_ns: None,
        reason: None,
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The audit record of a sharing change applied: door [`SHARING_DOOR`], direction
/// [`RELEASE_DIRECTION`], decision `changed`, no version row, by `person`, the change in
/// words (and who asked, when approved).
fn sharing_record(
    collection_id: &str,
    person: &str,
    old: &CollectionSharing,
    new: &CollectionSharing,
    requested_by: Option<&str>,
) -> AuditRecord {
    let door = Door {
        door: SHARING_DOOR,
        partner: OPERATOR,
        person: Some(person),
        collection: collection_id,
        policy_version: BASE_POLICY_VERSION,
    };
    let mut notes = Vec::new();
    if old.default_tlp != new.default_tlp {
        notes.push(format!(
            "default TLP {} to {}",
            old.default_tlp.label(),
            new.default_tlp.label()
        ));
    }
    if old.groups != new.groups {
        let g = |g: &Option<Vec<String>>| {
            g.as_ref()
                .map_or("the community".to_owned(), |g| g.join(", "))
        };
        notes.push(format!(
            "GREEN groups {} to {}",
            g(&old.groups),
            g(&new.groups)
        ));
    }
    if old.recipients != new.recipients {
        notes.push(format!(
            "AMBER recipients {} to {}",
            list(&old.recipients),
            list(&new.recipients)
        ));
    }
    if notes.is_empty() {
        notes.push("unchanged".to_owned());
    }
    if let Some(by) = requested_by {
        notes.push(format!("requested by {by}"));
        notes.push(format!("approved by {person}"));
    }
    door.record(RELEASE_DIRECTION, 0, "", String::new(), "changed", notes)
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// Changes `collection`'s sharing by `edit`: applied at once (with its audit entry, one
/// transaction) unless four-eyes is on and it widens what a cross-border partner receives;
/// then kept as a pending approval. Returns the sharing applied, or the approval.
/// Errors: a `default_tlp` that is no TLP level (refused), the store.
pub fn share(
    r: &Release<'_>,
    collection: &Collection,
    edit: &SharingEdit,
) -> Result<Outcome<CollectionSharing>> {
    let old = concord_egress::collection_sharing(r.store, &collection.id)?;
    let new = edit.apply(old.clone()).map_err(ReleaseError::Refused)?;
    if r.four_eyes {
        let widens = sharing_widens(
            &r.store.partners()?,
            r.jurisdiction,
            &collection.id,
            &old,
            &new,
        );
        if !widens.is_empty() {
            let change =
                serde_json::to_string(edit).map_err(|e| ReleaseError::Refused(e.to_string()))?;
            let name = collection.alias.as_deref().unwrap_or(&collection.id);
            let a = new_approval(
                r,
                "sharing",
                &collection.id,
                change,
                format!("collection {name}: {}", widens.join("; ")),
            );
            r.store.add_approval(&a)?;
            return Ok(Outcome::Pending(Box::new(a)));
        }
    }
    let mut batch = r.store.begin_write(&collection.id)?;
    batch.set_setting(&sharing_setting_key(&collection.id), &new.to_json())?;
    batch.append_audit(&[sharing_record(&collection.id, r.person, &old, &new, None)])?;
    batch.commit()?;
    Ok(Outcome::Applied(new))
}

/// Grants what one request needs ([`crate::grant`]): at once unless four-eyes is on and
/// `to` is across a border; then kept as a pending approval. Errors: those of
/// [`crate::grant`] (checked before anything is kept).
pub fn grant(
    r: &Release<'_>,
    node: &Node<'_>,
    incident_id: &str,
    to: &str,
    allow: &[String],
) -> Result<Outcome<Vec<Category>>> {
    let (categories, ..) = crate::check_grant(node, incident_id, to, allow)?;
    let partner = r
        .store
        .partners()?
        .into_iter()
        .find(|p| p.name == to)
        .ok_or_else(|| ReleaseError::NotFound(format!("no partner named {to:?}")))?;
    if r.four_eyes && cross_border(r.jurisdiction, &partner) {
        let edit = GrantEdit {
            to: to.to_owned(),
            allow: categories.iter().map(|c| c.as_str().to_owned()).collect(),
        };
        let change =
            serde_json::to_string(&edit).map_err(|e| ReleaseError::Refused(e.to_string()))?;
        let a = new_approval(
            r,
            "grant",
            incident_id,
            change,
            format!(
                "{} ({}) receives {} as written in {incident_id}",
                partner.name,
                partner.jurisdiction,
                edit.allow.join(", ")
            ),
        );
        r.store.add_approval(&a)?;
        return Ok(Outcome::Pending(Box::new(a)));
    }
    Ok(Outcome::Applied(crate::grant(
        node,
        incident_id,
        to,
        allow,
    )?))
}

/// A collection's sharing setting as stored (`None`: never set) and as read (defaults when
/// never set), from one read: what an approval's compare-and-set expects.
pub(crate) fn read_sharing(
    store: &dyn Store,
    collection_id: &str,
) -> std::result::Result<(Option<String>, CollectionSharing), concord_egress::EgressError> {
    let raw = store.setting(&sharing_setting_key(collection_id))?;
    let s = match &raw {
        Some(text) => CollectionSharing::from_json(text).map_err(|e| {
            concord_egress::EgressError::Config(format!("sharing of {collection_id}: {e}"))
        })?,
        None => CollectionSharing::default(),
    };
    Ok((raw, s))
}

/// How many times [`approve`] recomputes a change whose setting changed meanwhile.
const APPROVE_ATTEMPTS: usize = 3;

fn pending(store: &dyn Store, id: &str) -> Result<Approval> {
    let a = store
        .approval(id)?
        .ok_or_else(|| ReleaseError::NotFound(format!("no approval {id:?}")))?;
    if a.status != "pending" {
        return Err(decided(&a));
    }
    Ok(a)
}

fn decided(a: &Approval) -> ReleaseError {
    ReleaseError::Decided(format!(
        "approval {} was {} already by {}",
        a.id,
        a.status,
        a.decided_by.as_deref().unwrap_or("?")
    ))
}

/// Approves the pending approval `id` as `r.person` and applies its change, in the
/// transaction that records the approval, with an audit entry naming the requester and the
/// approver. The change is applied to what is current now (a sharing changed meanwhile
/// keeps its other changes). Refused: the approver is the person who asked (the four-eyes
/// rule); not found: no such approval; decided: approved or rejected already.
pub fn approve(r: &Release<'_>, node: &Node<'_>, id: &str) -> Result<Approval> {
    let a = pending(r.store, id)?;
    if a.requested_by == r.person {
        return Err(ReleaseError::FourEyes(format!(
            "approval {id}: four-eyes release: the approver must be another person than the \
             one who asked ({} asked); a second releaser approves",
            a.requested_by
        )));
    }
    let d = ApprovalDecision {
        approve: true,
        by: r.person.to_owned(),
        at_ns: now_ns(),
        reason: None,
    };
    // The change is computed from the setting as read and written only if it still holds
    // that value (compare-and-set in the store's transaction): a sharing changed meanwhile
    // is read again, so that neither change is lost.
    let mut attempt = 0;
    let decided_now = loop {
        attempt += 1;
        let (settings, records) = approved_change(r, node, &a)?;
        match r.store.decide_approval(id, &d, &settings, &records) {
            Err(concord_store::StoreError::Superseded(_)) if attempt < APPROVE_ATTEMPTS => {}
            other => break other?,
        }
    };
    if !decided_now {
        return Err(r.store.approval(id)?.map_or_else(
            || ReleaseError::NotFound(format!("no approval {id:?}")),
            |a| decided(&a),
        ));
    }
    r.store
        .approval(id)?
        .ok_or_else(|| ReleaseError::NotFound(format!("no approval {id:?}")))
}

/// What approving `a` writes, from the state now: its settings and audit records.
fn approved_change(r: &Release<'_>, node: &Node<'_>, a: &Approval) -> Result<crate::Applied> {
    let id = a.id.as_str();
    let unreadable = |reason: String| ReleaseError::Unreadable {
        id: id.to_owned(),
        reason,
    };
    Ok(match a.kind.as_str() {
        "sharing" => {
            let edit: SharingEdit =
                serde_json::from_str(&a.change).map_err(|e| unreadable(e.to_string()))?;
            let (expected, old) = read_sharing(r.store, &a.target)?;
            let new = edit.apply(old.clone()).map_err(unreadable)?;
            (
                vec![SettingChange {
                    key: sharing_setting_key(&a.target),
                    expected,
                    value: new.to_json(),
                }],
                vec![sharing_record(
                    &a.target,
                    r.person,
                    &old,
                    &new,
                    Some(&a.requested_by),
                )],
            )
        }
        "grant" => {
            let edit: GrantEdit =
                serde_json::from_str(&a.change).map_err(|e| unreadable(e.to_string()))?;
            let approver = Node {
                person: Some(r.person),
                ..*node
            };
            crate::grant_parts(&approver, &a.target, &edit.to, &edit.allow, &a.requested_by)?
        }
        other => return Err(unreadable(format!("unknown kind {other:?}"))),
    })
}

/// Rejects the pending approval `id` as `r.person` (the requester may withdraw its own):
/// nothing is applied. Not found, decided: as [`approve`].
pub fn reject(r: &Release<'_>, id: &str, reason: Option<&str>) -> Result<Approval> {
    pending(r.store, id)?;
    let d = ApprovalDecision {
        approve: false,
        by: r.person.to_owned(),
        at_ns: now_ns(),
        reason: reason.map(str::to_owned),
    };
    if !r.store.decide_approval(id, &d, &[], &[])? {
        return Err(r.store.approval(id)?.map_or_else(
            || ReleaseError::NotFound(format!("no approval {id:?}")),
            |a| decided(&a),
        ));
    }
    r.store
        .approval(id)?
        .ok_or_else(|| ReleaseError::NotFound(format!("no approval {id:?}")))
}

/// The pending approvals, oldest first (at most `limit`).
pub fn pending_approvals(store: &dyn Store, limit: usize) -> Result<Vec<Approval>> {
    Ok(store.approvals(Some("pending"), limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str, jurisdiction: &str, groups: &[&str], read: &[&str]) -> Partner {
        Partner {
            name: name.to_owned(),
            jurisdiction: jurisdiction.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            read: read.iter().map(|c| (*c).to_owned()).collect(),
            write: Vec::new(),
            key_id: String::new(),
            key_hash: String::new(),
            created_ns: 0,
            details: Default::default(),
        }
    }

    fn sharing(
        default_tlp: Tlp,
        groups: Option<&[&str]>,
        recipients: &[&str],
    ) -> CollectionSharing {
        let mut s = CollectionSharing::from_json("{}").unwrap();
        s.default_tlp = default_tlp;
        s.groups = groups.map(|g| g.iter().map(|x| (*x).to_owned()).collect());
        s.recipients = recipients.iter().map(|r| (*r).to_owned()).collect();
        s
    }

    /// Each way a sharing change widens (or not) what a partner across the border receives.
    #[test]
    fn what_widens_a_cross_border_release() {
        let partners = [
            partner("fr", "FR", &["eu"], &["c"]),
            partner("de", "DE", &["eu"], &["c"]),
            partner("cn", "CN", &[], &[]),
        ];
        let w = |old: &CollectionSharing, new: &CollectionSharing| {
            sharing_widens(&partners, Some("DE"), "c", old, new)
        };
        let base = sharing(Tlp::Amber, Some(&["eu"]), &[]);
        // A lower default TLP: fr receives unmarked objects.
        let lower = sharing(Tlp::Green, Some(&["eu"]), &[]);
        assert_eq!(
            w(&base, &lower),
            ["fr (FR) receives unmarked objects (TLP:GREEN)"]
        );
        // A stricter one narrows.
        assert!(w(&lower, &base).is_empty());
        // A new recipient across the border; a domestic one; a group naming fr.
        assert_eq!(
            w(&base, &sharing(Tlp::Amber, Some(&["eu"]), &["fr"])).len(),
            3,
            "AMBER, AMBER+STRICT and the unmarked objects"
        );
        assert!(w(&base, &sharing(Tlp::Amber, Some(&["eu"]), &["de"])).is_empty());
        assert_eq!(
            w(&base, &sharing(Tlp::Amber, Some(&["eu"]), &["group:eu"])),
            [
                "fr (FR) receives TLP:AMBER",
                "fr (FR) receives unmarked objects (TLP:AMBER)"
            ]
        );
        // GREEN to the community: fr was outside the groups before.
        let other = sharing(Tlp::Amber, Some(&["nato"]), &[]);
        assert_eq!(
            w(&other, &sharing(Tlp::Amber, None, &[])),
            ["fr (FR) receives TLP:GREEN"]
        );
        // A partner that does not read the collection receives nothing by it.
        assert!(
            !w(&base, &sharing(Tlp::Clear, None, &["cn"]))
                .iter()
                .any(|x| x.starts_with("cn"))
        );
        // Without a jurisdiction every partner is across a border.
        assert_eq!(
            sharing_widens(
                &partners,
                None,
                "c",
                &base,
                &sharing(Tlp::Amber, Some(&["eu"]), &["de"])
            )
            .len(),
            3
        );
    }
}
