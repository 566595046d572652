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
//! A partner's grants, groups and jurisdiction (`concord partner update`) are held the same
//! way ([`partner_widens`], [`hold_partner`]): a new read grant, a new sharing group, a
//! jurisdiction that makes a cross-border partner domestic, and anything else of its record
//! after which the egress door gives it more (a less strict action on a category of personal
//! data, an agreement that no longer applies, the pseudonyms of a group it shares with
//! others). A partner that crosses a new border ([`crosses_border`]: a domestic partner
//! moving abroad, or one abroad moving to another foreign jurisdiction, whose agreement and
//! law differ) is read as a new cross-border partner there: its read grants, its groups and
//! its incident grants ([`grants_to`]) all wait. Its approval replaces the partner record
//! compare-and-set in the transaction that records it; a partner changed since the request
//! is recomputed, and refused, naming what differs, when the change would now widen
//! something else than what was asked.
//!
//! # Who is a person
//!
//! Four eyes are two *named* people. `user:NAME` is one; `operator` (the CLI without `--as`
//! or a mapped OS user) and `admin-token` (whoever holds the token) are not, unless
//! `[release] unnamed_persons = true` says that on this node they are: anyone who can run
//! the CLI or holds the token could otherwise ask as one and approve as a named user. So by
//! default a widening change asked by either is refused, naming the rule, and neither may
//! approve; rejecting (which applies nothing) is open to every releaser.
//!
//! # What an approval shows
//!
//! What a pending change widens is kept structured ([`Request`], one [`Widening`] per thing
//! a cross-border partner receives), so that each reader sees it in its own language: the
//! CLI and the API in English ([`Request::english`]), the web UI in the viewer's.
//!
//! Who may ask and approve is the role table's business (`concord_server::roles`,
//! `Operation::Release`): each door checks it before calling here.
//!
//! The CLI (`concord collection share`, `incident grant`, `approval …`), the admin API
//! (`/api/v1/collections/{name}/sharing`, `/api/v1/incidents/{id}/grants`,
//! `/api/v1/approvals`) and the web UI (`/ui/approvals`) all call these functions.

use concord_egress::{BASE_POLICY_VERSION, Door};
use concord_policy::actions::Policy;
use concord_policy::egress::{CollectionSharing, PartnerProfile, may_see, sharing_setting_key};
use concord_policy::pii::Category;
use concord_policy::tlp::Tlp;
use concord_store::{
    Approval, ApprovalDecision, AuditRecord, Collection, Partner, PartnerSwap, SettingChange, Store,
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
    /// What the approval would apply now differs from what was asked (the partner changed
    /// since the request), named. Nothing was changed; the approval is still pending.
    #[error("{0}")]
    Stale(String),
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
    /// `[release] unnamed_persons` of concord.toml: `operator` and `admin-token` count as
    /// persons who may ask for and approve a widening (see the module documentation).
    pub unnamed_persons: bool,
    /// The node's active policy: its jurisdiction (none: every partner is across a
    /// border), and what a partner's record feeds into the door's decisions (personal data
    /// actions, agreements, pseudonym groups).
    pub policy: &'a Policy,
    /// Who acts, as the audit log names a person: `user:NAME`, `admin-token`, `operator`.
    pub person: &'a str,
}

impl Release<'_> {
    /// The node's jurisdiction (ISO 3166-1 alpha-2, the policy's).
    pub fn jurisdiction(&self) -> Option<&str> {
        self.policy.config.jurisdiction.as_deref()
    }

    /// Whether the one acting counts as a person for four-eyes release: a named user
    /// (`user:NAME`), or `operator`/`admin-token` when `[release] unnamed_persons`.
    pub fn acts_as_person(&self) -> bool {
        is_person(self.person, self.unnamed_persons)
    }

    /// Refused unless the one acting counts as a person: a widening asked by no one named.
    fn require_person(&self, what: &str) -> Result<()> {
        if self.acts_as_person() {
            return Ok(());
        }
        Err(ReleaseError::FourEyes(format!(
            "four-eyes release: {what} must be done by a named person, and {} is none on this \
             node (act as a named releaser: --as NAME, a user's login token or web login; or \
             set [release] unnamed_persons = true)",
            self.person
        )))
    }
}

/// Whether `person` (as the audit log names it) counts as a person for four-eyes release:
/// `user:NAME` always; `operator` and `admin-token` only when `unnamed_persons`.
pub fn is_person(person: &str, unnamed_persons: bool) -> bool {
    person.starts_with("user:") || (unnamed_persons && matches!(person, "operator" | "admin-token"))
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

/// One thing a pending change widens for a cross-border partner: what it would receive
/// that it does not receive now. Kept structured with the approval (schema 22) and rendered
/// per language when shown: [`Widening::english`] here, the web UI's message files there.
/// `partner` and `jurisdiction` are the partner's name and its jurisdiction after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum Widening {
    /// Content at `tlp` (a TLP label) of `collection` (its alias, else id; `None`: the
    /// collection whose sharing changes).
    Tlp {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The TLP label (`TLP:AMBER`).
        tlp: String,
        /// The collection, when the subject is not the collection itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
    },
    /// The objects without a TLP marking, which the collection shares as `tlp`.
    Unmarked {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The collection's default TLP label.
        tlp: String,
        /// The collection, when the subject is not the collection itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
    },
    /// Personal data of `categories` as written, in `incident` and what refers to it.
    Grant {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The categories (`email`, …).
        categories: Vec<String>,
        /// The incident's id.
        incident: String,
    },
    /// Membership of sharing group `group`: what is shared with the group, now and later.
    Group {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The group.
        group: String,
    },
    /// A jurisdiction that makes the partner domestic (important data may go to it, the
    /// domestic actions on personal data apply).
    Domestic {
        /// The partner.
        partner: String,
        /// Its jurisdiction before.
        from: String,
        /// Its jurisdiction after (the node's).
        to: String,
    },
    /// Personal data of `category` treated by a less strict action (`allow` instead of
    /// `pseudonymise`, …).
    PersonalData {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The category (`email`, …).
        category: String,
        /// The action before.
        from: String,
        /// The action after.
        to: String,
    },
    /// The agreement `from` no longer applies to the partner (`to`: the one that does now).
    Agreement {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The agreement that applied.
        from: String,
        /// The agreement that applies after, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Its pseudonyms in `collection` become those of sharing group `group` (which other
    /// members of the group see too, so that they can be linked).
    Pseudonyms {
        /// The partner.
        partner: String,
        /// Its jurisdiction.
        jurisdiction: String,
        /// The group whose key pseudonymises.
        group: String,
        /// The collection.
        collection: String,
    },
}

impl Widening {
    /// In English words (`cert-fr (FR) receives TLP:AMBER`): the CLI's and the API's
    /// `summary`.
    pub fn english(&self) -> String {
        let from = |c: &Option<String>| c.as_ref().map_or(String::new(), |c| format!(" from {c}"));
        match self {
            Widening::Tlp {
                partner,
                jurisdiction,
                tlp,
                collection,
            } => format!(
                "{partner} ({jurisdiction}) receives {tlp}{}",
                from(collection)
            ),
            Widening::Unmarked {
                partner,
                jurisdiction,
                tlp,
                collection,
            } => format!(
                "{partner} ({jurisdiction}) receives unmarked objects ({tlp}){}",
                from(collection)
            ),
            Widening::Grant {
                partner,
                jurisdiction,
                categories,
                incident,
            } => format!(
                "{partner} ({jurisdiction}) receives {} as written in {incident}",
                categories.join(", ")
            ),
            Widening::Group {
                partner,
                jurisdiction,
                group,
            } => format!("{partner} ({jurisdiction}) joins the sharing group {group}"),
            Widening::Domestic { partner, from, to } => {
                format!("{partner} moves from {from} to {to} and becomes domestic")
            }
            Widening::PersonalData {
                partner,
                jurisdiction,
                category,
                from,
                to,
            } => format!("{partner} ({jurisdiction}) receives {category} by {to}, not {from}"),
            Widening::Agreement {
                partner,
                jurisdiction,
                from,
                to,
            } => match to {
                Some(to) => {
                    format!("{partner} ({jurisdiction}) leaves the agreement {from} for {to}")
                }
                None => {
                    format!("{partner} ({jurisdiction}) leaves the agreement {from}; none applies")
                }
            },
            Widening::Pseudonyms {
                partner,
                jurisdiction,
                group,
                collection,
            } => format!(
                "{partner} ({jurisdiction}) receives the pseudonyms of group {group} in {collection}"
            ),
        }
    }
}

/// What a pending approval asks, structured (schema 22, the approval's `request`): its
/// subject (the collection's alias or id for `sharing`, the incident id for `grant`, the
/// partner's name for `partner`) and what it widens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The collection, incident or partner.
    pub subject: String,
    /// What it widens, one item each.
    pub widens: Vec<Widening>,
}

impl Request {
    /// The request of a stored approval; `None` for approvals asked before schema 22 (or
    /// unreadable), whose stored `summary` is what there is.
    pub fn of(a: &Approval) -> Option<Request> {
        serde_json::from_str(a.request.as_deref()?).ok()
    }

    /// In English, for an approval of `kind`: `collection intel: cert-fr (FR) receives
    /// TLP:AMBER; …`, `partner cert-fr: …`; a grant's items alone.
    pub fn english(&self, kind: &str) -> String {
        let items = self
            .widens
            .iter()
            .map(Widening::english)
            .collect::<Vec<_>>()
            .join("; ");
        match kind {
            "sharing" => format!("collection {}: {items}", self.subject),
            "partner" => format!("partner {}: {items}", self.subject),
            _ => items,
        }
    }
}

/// The summary of approval `a` in English: rendered from its request, else as stored.
pub fn summary_english(a: &Approval) -> String {
    Request::of(a).map_or_else(|| a.summary.clone(), |r| r.english(&a.kind))
}

/// What a change of `collection_id`'s sharing from `old` to `new` widens for cross-border
/// partners that read the collection (`cert-fr (FR) receives TLP:AMBER`, `cert-fr (FR)
/// receives unmarked objects (TLP:GREEN)`), and the sharing group whose key pseudonymises
/// for them when it becomes another shared one (the GREEN groups choose it,
/// [`Policy::pseudonym_group`]: its pseudonyms then link with that group's, as
/// [`partner_widens`] counts it); empty when it widens nothing for them (a narrowing, or a
/// widening for domestic partners only). Across a border: [`Policy::cross_border`].
pub fn sharing_widens(
    partners: &[Partner],
    policy: &Policy,
    collection_id: &str,
    old: &CollectionSharing,
    new: &CollectionSharing,
) -> Vec<Widening> {
    let mut out = Vec::new();
    for p in partners
        .iter()
        .filter(|p| p.read.iter().any(|c| c == collection_id))
    {
        let pr = profile(p);
        if !policy.cross_border(&pr) {
            continue;
        }
        tlp_widens(p, None, Some((old, &pr)), (new, &pr), &mut out);
        let group = policy.pseudonym_group(new, &pr);
        if !group.starts_with("partner:") && policy.pseudonym_group(old, &pr) != group {
            out.push(Widening::Pseudonyms {
                partner: p.name.clone(),
                jurisdiction: p.jurisdiction.clone(),
                group,
                collection: collection_id.to_owned(),
            });
        }
    }
    out
}

/// The TLP levels (and unmarked objects) `p` sees of a collection shared as `new` with
/// profile `new_profile` that it did not see before (`old`: the sharing and profile before;
/// `None`: it did not read the collection), pushed to `out`.
fn tlp_widens(
    p: &Partner,
    collection: Option<&str>,
    old: Option<(&CollectionSharing, &PartnerProfile)>,
    (new, new_profile): (&CollectionSharing, &PartnerProfile),
    out: &mut Vec<Widening>,
) {
    let saw = |t: Tlp| old.is_some_and(|(s, pr)| may_see(t, s, pr).is_ok());
    let sees = |t: Tlp| may_see(t, new, new_profile).is_ok();
    for t in LEVELS {
        if sees(t) && !saw(t) {
            out.push(Widening::Tlp {
                partner: p.name.clone(),
                jurisdiction: new_profile.jurisdiction.clone(),
                tlp: t.label().to_owned(),
                collection: collection.map(str::to_owned),
            });
        }
    }
    let saw_unmarked = old.is_some_and(|(s, pr)| may_see(s.default_tlp, s, pr).is_ok());
    if sees(new.default_tlp) && !saw_unmarked {
        out.push(Widening::Unmarked {
            partner: p.name.clone(),
            jurisdiction: new_profile.jurisdiction.clone(),
            tlp: new.default_tlp.label().to_owned(),
            collection: collection.map(str::to_owned),
        });
    }
}

/// What changing partner `was` into `now` widens for it, when it is across a border before
/// or after the change (empty otherwise, and for a change that narrows or gives a write
/// grant only): read through the same rules the egress door applies to its record —
/// the TLP gate of each collection it reads after ([`may_see`] with the collection's
/// sharing, `sharing(collection id)`), its sharing groups, its jurisdiction (important data
/// and the domestic actions), the policy's actions on personal data
/// ([`Policy::action`]), the agreement that applies to it, and the sharing group whose key
/// pseudonymises for it. `name(collection id)`: how a collection is shown.
///
/// `grants`: the incident grants given to the partner's name (issue 18: `(incident id,
/// categories)`, [`CollectionSharing::grants`] of every collection, [`grants_to`]). A
/// partner that crosses a new border ([`crosses_border`]: a domestic partner moving abroad,
/// or one abroad moving to another foreign jurisdiction) takes them across it: each is then
/// a [`Widening::Grant`], as a grant to a cross-border partner waits ([`grant`]), and its
/// read grants and groups are widenings, as for a new cross-border partner.
pub fn partner_widens(
    policy: &Policy,
    was: &Partner,
    now: &Partner,
    grants: &[(String, Vec<Category>)],
    sharing: &dyn Fn(&str) -> std::result::Result<CollectionSharing, concord_egress::EgressError>,
    name: &dyn Fn(&str) -> String,
) -> std::result::Result<Vec<Widening>, concord_egress::EgressError> {
    let (old_p, new_p) = (profile(was), profile(now));
    let mut out = Vec::new();
    if !policy.cross_border(&old_p) && !policy.cross_border(&new_p) {
        return Ok(out);
    }
    // A partner that crosses a new border sends across it all it reads, for the first
    // time: it is read as a new cross-border partner there would be (nothing read, no
    // groups, no incident grants, before), else a releaser widens a partner alone in two
    // narrow-looking steps (grants where they wait for no one or were approved for another
    // country, then the jurisdiction). The rules that depend on the jurisdiction itself
    // (actions on personal data, agreements) still compare with where it was.
    let crosses = crosses_border(policy, was, now);
    let fresh;
    let was = if crosses {
        fresh = Partner {
            read: Vec::new(),
            groups: Vec::new(),
            ..was.clone()
        };
        &fresh
    } else {
        was
    };
    let who = || (now.name.clone(), now.jurisdiction.clone());
    if crosses {
        for (incident, categories) in grants {
            let (partner, jurisdiction) = who();
            out.push(Widening::Grant {
                partner,
                jurisdiction,
                categories: categories.iter().map(|c| c.as_str().to_owned()).collect(),
                incident: incident.clone(),
            });
        }
    }
    for g in &now.groups {
        if !was.groups.contains(g) {
            let (partner, jurisdiction) = who();
            out.push(Widening::Group {
                partner,
                jurisdiction,
                group: g.clone(),
            });
        }
    }
    if policy.cross_border(&old_p) && !policy.cross_border(&new_p) {
        out.push(Widening::Domestic {
            partner: now.name.clone(),
            from: was.jurisdiction.clone(),
            to: now.jurisdiction.clone(),
        });
    }
    for c in Category::ALL {
        let (before, _) = policy.action(&old_p, c);
        let (after, _) = policy.action(&new_p, c);
        if after < before {
            let (partner, jurisdiction) = who();
            out.push(Widening::PersonalData {
                partner,
                jurisdiction,
                category: c.as_str().to_owned(),
                from: before.as_str().to_owned(),
                to: after.as_str().to_owned(),
            });
        }
    }
    let agreement = |p: &PartnerProfile| policy.agreement(p).map(|(n, ..)| n.to_owned());
    if let Some(from) = agreement(&old_p)
        && agreement(&new_p).as_ref() != Some(&from)
    {
        let (partner, jurisdiction) = who();
        out.push(Widening::Agreement {
            partner,
            jurisdiction,
            from,
            to: agreement(&new_p),
        });
    }
    for c in &now.read {
        let s = sharing(c)?;
        let shown = name(c);
        let before = was.read.contains(c).then_some((&s, &old_p));
        tlp_widens(now, Some(shown.as_str()), before, (&s, &new_p), &mut out);
        let group = policy.pseudonym_group(&s, &new_p);
        let shared = !group.starts_with("partner:");
        if shared && (before.is_none() || policy.pseudonym_group(&s, &old_p) != group) {
            let (partner, jurisdiction) = who();
            out.push(Widening::Pseudonyms {
                partner,
                jurisdiction,
                group,
                collection: shown,
            });
        }
    }
    Ok(out)
}

/// Whether changing partner `was` into `now` takes it across a border it did not cross
/// before: its jurisdiction changes to one across a border from the node
/// ([`Policy::cross_border`]) — a domestic partner moving abroad, or a partner abroad
/// moving to another foreign jurisdiction, whose agreement and law differ. Such a move is
/// read as a new cross-border partner there ([`partner_widens`]).
pub fn crosses_border(policy: &Policy, was: &Partner, now: &Partner) -> bool {
    !was.jurisdiction.eq_ignore_ascii_case(&now.jurisdiction) && policy.cross_border(&profile(now))
}

/// Keeps a pending approval of `kind` on `target`: `change` as JSON, `request` structured
/// with its English summary. Refused (nothing kept) when the one asking is no person
/// ([`Release::acts_as_person`]).
fn hold(
    r: &Release<'_>,
    kind: &str,
    target: &str,
    change: &impl Serialize,
    request: &Request,
) -> Result<Approval> {
    r.require_person(&format!(
        "a change that widens what a cross-border partner receives ({})",
        request.english(kind)
    ))?;
    let id = concord_incident::new_id("approval");
    let change = serde_json::to_string(change).map_err(|e| ReleaseError::Refused(e.to_string()))?;
    let request_json =
        serde_json::to_string(request).map_err(|e| ReleaseError::Refused(e.to_string()))?;
    let a = Approval {
        id: id.trim_start_matches("approval--").to_owned(),
        kind: kind.to_owned(),
        target: target.to_owned(),
        change,
        summary: request.english(kind),
        requested_by: r.person.to_owned(),
        requested_ns: now_ns(),
        status: "pending".to_owned(),
        decided_by: None,
        decided_ns: None,
        reason: None,
        request: Some(request_json),
    };
    r.store.add_approval(&a)?;
    Ok(a)
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
        let widens = sharing_widens(&r.store.partners()?, r.policy, &collection.id, &old, &new);
        if !widens.is_empty() {
            let request = Request {
                subject: collection
                    .alias
                    .clone()
                    .unwrap_or_else(|| collection.id.clone()),
                widens,
            };
            let a = hold(r, "sharing", &collection.id, edit, &request)?;
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
    if r.four_eyes && cross_border(r.jurisdiction(), &partner) {
        let edit = GrantEdit {
            to: to.to_owned(),
            allow: categories.iter().map(|c| c.as_str().to_owned()).collect(),
        };
        let request = Request {
            subject: incident_id.to_owned(),
            widens: vec![Widening::Grant {
                partner: partner.name.clone(),
                jurisdiction: partner.jurisdiction.clone(),
                categories: edit.allow.clone(),
                incident: incident_id.to_owned(),
            }],
        };
        let a = hold(r, "grant", incident_id, &edit, &request)?;
        return Ok(Outcome::Pending(Box::new(a)));
    }
    Ok(Outcome::Applied(crate::grant(
        node,
        incident_id,
        to,
        allow,
    )?))
}

/// The door of a partner's change in the audit log (as `concord partner update` records it).
pub const PARTNER_DOOR: &str = "partner-update";

/// A change of a partner's grants, groups or jurisdiction as an approval keeps it: what to
/// add and remove (collection ids, group names), so that it applies to the partner record
/// current when approved. Absent fields change nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerEdit {
    /// A new jurisdiction (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Collections it may now read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_read: Vec<String>,
    /// Collections it may no longer read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_read: Vec<String>,
    /// Collections it may now write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_write: Vec<String>,
    /// Collections it may no longer write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_write: Vec<String>,
    /// Sharing groups it joins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_groups: Vec<String>,
    /// Sharing groups it leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_groups: Vec<String>,
}

impl PartnerEdit {
    /// The edit that turns `was` into `now` (their lists compared as sets).
    pub fn between(was: &Partner, now: &Partner) -> PartnerEdit {
        let plus = |a: &[String], b: &[String]| -> Vec<String> {
            b.iter().filter(|x| !a.contains(x)).cloned().collect()
        };
        PartnerEdit {
            jurisdiction: (was.jurisdiction != now.jurisdiction).then(|| now.jurisdiction.clone()),
            add_read: plus(&was.read, &now.read),
            remove_read: plus(&now.read, &was.read),
            add_write: plus(&was.write, &now.write),
            remove_write: plus(&now.write, &was.write),
            add_groups: plus(&was.groups, &now.groups),
            remove_groups: plus(&now.groups, &was.groups),
        }
    }

    /// `p` with this edit, and what changed in the audit log's words (`jurisdiction FR ->
    /// DE`, `read +ID`, `read -ID`, `write +ID`, `group +G`, …; empty: nothing changes).
    pub fn apply(&self, p: &Partner) -> (Partner, Vec<String>) {
        let mut now = p.clone();
        let mut changes = Vec::new();
        if let Some(j) = &self.jurisdiction
            && *j != p.jurisdiction
        {
            changes.push(format!("jurisdiction {} -> {j}", p.jurisdiction));
            now.jurisdiction = j.clone();
        }
        let edit = |what: &str,
                    list: &mut Vec<String>,
                    add: &[String],
                    remove: &[String],
                    changes: &mut Vec<String>| {
            for x in remove {
                if let Some(i) = list.iter().position(|y| y == x) {
                    list.remove(i);
                    changes.push(format!("{what} -{x}"));
                }
            }
            for x in add {
                if !list.contains(x) {
                    list.push(x.clone());
                    changes.push(format!("{what} +{x}"));
                }
            }
        };
        edit(
            "read",
            &mut now.read,
            &self.add_read,
            &self.remove_read,
            &mut changes,
        );
        edit(
            "write",
            &mut now.write,
            &self.add_write,
            &self.remove_write,
            &mut changes,
        );
        edit(
            "group",
            &mut now.groups,
            &self.add_groups,
            &self.remove_groups,
            &mut changes,
        );
        (now, changes)
    }
}

/// The incident grants given to partner `name` on this node: `(incident id, categories)`
/// from the sharing of every collection ([`CollectionSharing::grants`]), in the order of
/// the collections and then of the incident ids; the categories of one incident merged.
/// Errors: the store, a collection's sharing that is unreadable.
pub fn grants_to(
    store: &dyn Store,
    name: &str,
) -> std::result::Result<Vec<(String, Vec<Category>)>, concord_egress::EgressError> {
    let mut out: Vec<(String, Vec<Category>)> = Vec::new();
    for c in store.collections()? {
        let s = concord_egress::collection_sharing(store, &c.id)?;
        for (incident, to) in &s.grants {
            let Some(cs) = to.get(name).filter(|cs| !cs.is_empty()) else {
                continue;
            };
            match out.iter_mut().find(|(i, _)| i == incident) {
                Some((_, have)) => {
                    for c in cs {
                        if !have.contains(c) {
                            have.push(*c);
                        }
                    }
                }
                None => out.push((incident.clone(), cs.clone())),
            }
        }
    }
    Ok(out)
}

/// The settings that end the incident grants given to partner `name` (`partner remove`):
/// each collection's sharing whose [`CollectionSharing::grants`] name it, without them
/// (an incident left with no grant dropped), compare-and-set on the sharing as read, for
/// [`Store::remove_partner_with`]. Grants are kept by name, so a later partner of the same
/// name, another organisation, would otherwise receive as written what was granted to the
/// one removed. Empty when none names it. Errors: the store, an unreadable sharing.
pub fn grants_ended(
    store: &dyn Store,
    name: &str,
) -> std::result::Result<Vec<SettingChange>, concord_egress::EgressError> {
    let mut out = Vec::new();
    for c in store.collections()? {
        let (expected, mut s) = read_sharing(store, &c.id)?;
        let before = s.grants.len();
        let mut named = false;
        s.grants.retain(|_, to| {
            named |= to.remove(name).is_some();
            !to.is_empty()
        });
        if named || s.grants.len() != before {
            out.push(SettingChange {
                key: sharing_setting_key(&c.id),
                expected,
                value: s.to_json(),
            });
        }
    }
    Ok(out)
}

/// What changing `was` into `now` widens for it ([`partner_widens`] over this node's
/// store: each collection's sharing, its alias, the incident grants to its name).
fn partner_widens_here(r: &Release<'_>, was: &Partner, now: &Partner) -> Result<Vec<Widening>> {
    let grants = grants_to(r.store, &was.name)?;
    let collections = r.store.collections()?;
    let name = |id: &str| {
        collections
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.alias.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    let sharing = |id: &str| concord_egress::collection_sharing(r.store, id);
    Ok(partner_widens(
        r.policy, was, now, &grants, &sharing, &name,
    )?)
}

/// Four-eyes release of a partner change (`concord partner update`, `PATCH
/// /api/v1/partners/{name}`, the partner page's form): when `[release] four_eyes` is on and
/// changing `was` (the stored record) into `now` widens what the partner receives across a
/// border ([`partner_widens`]), the change is kept as a pending approval (kind `partner`,
/// as a [`PartnerEdit`]) and returned; nothing is applied. `None`: it may apply at once (the
/// caller stores it, compare-and-set, with its audit entry). Refused: the one asking is no
/// person ([`Release::acts_as_person`]).
pub fn hold_partner(r: &Release<'_>, was: &Partner, now: &Partner) -> Result<Option<Approval>> {
    if !r.four_eyes {
        return Ok(None);
    }
    let edit = PartnerEdit::between(was, now);
    let (edited, _) = edit.apply(was);
    let widens = partner_widens_here(r, was, &edited)?;
    if widens.is_empty() {
        return Ok(None);
    }
    let request = Request {
        subject: was.name.clone(),
        widens,
    };
    Ok(Some(hold(r, "partner", &was.name, &edit, &request)?))
}

/// Four-eyes release of a new partner (`concord partner add`, `POST /api/v1/partners`, the
/// partner a join creates): `full` is the partner as asked. `None`: it may be created as it
/// is (four-eyes off, or nothing it is given widens what a cross-border partner receives:
/// a domestic partner, write grants only). `Some(bare)`: create `bare` instead — `full`
/// with its key, identity, jurisdiction and write grants but no read grants and no groups,
/// which receives nothing — then keep the rest as a pending approval with
/// [`hold_partner`]`(r, &bare, full)`, the same `partner` approval `partner update` keeps.
/// Refused before anything is written: the one asking is no person
/// ([`Release::acts_as_person`]) and `full` would widen something.
pub fn split_new_partner(r: &Release<'_>, full: &Partner) -> Result<Option<Partner>> {
    if !r.four_eyes {
        return Ok(None);
    }
    let bare = Partner {
        read: Vec::new(),
        groups: Vec::new(),
        ..full.clone()
    };
    let widens = partner_widens_here(r, &bare, full)?;
    if widens.is_empty() {
        return Ok(None);
    }
    let request = Request {
        subject: full.name.clone(),
        widens,
    };
    r.require_person(&format!(
        "a new partner that receives across a border ({})",
        request.english("partner")
    ))?;
    Ok(Some(bare))
}

/// Refused as stale unless `widens` (what approving `a` would widen now) is what its
/// request named, and the approver saw: `subject` (`partner "cert-fr"`, `collection
/// "intel"`) changed since, or what it applies to (a partner given a read grant meanwhile).
fn as_asked(a: &Approval, subject: &str, widens: &[Widening]) -> Result<()> {
    let asked = Request::of(a).map(|q| q.widens).unwrap_or_default();
    if widens == asked.as_slice() {
        return Ok(());
    }
    let words = |w: &[Widening]| {
        if w.is_empty() {
            "nothing".to_owned()
        } else {
            w.iter()
                .map(Widening::english)
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    Err(ReleaseError::Stale(format!(
        "approval {}: {subject} changed since the request: approving it now would widen {} \
         instead of what was asked ({}); nothing was applied (reject it and ask again)",
        a.id,
        words(widens),
        words(&asked)
    )))
}

/// Refused as stale unless `partner` existed when `a` was requested: a partner removed
/// and added again under its name since is another organisation, which no one approved
/// anything for (partners are named by name in approvals and grants). Partners stored
/// before they had a creation time (0) pass.
fn same_organisation(a: &Approval, partner: &Partner) -> Result<()> {
    if partner.created_ns <= a.requested_ns {
        return Ok(());
    }
    Err(ReleaseError::Stale(format!(
        "approval {}: partner {:?} was removed and added again since the request (another \
         organisation under the name); nothing was applied (reject the approval)",
        a.id, partner.name
    )))
}

/// What approving the partner change `a` writes: the partner record as current now with the
/// edit (compare-and-set on it in the approval's transaction) and the audit record of door
/// [`PARTNER_DOOR`] naming both people. Stale (nothing applied, still pending): the partner
/// was removed (and perhaps added again: another organisation), or changed so that the edit
/// would now widen something else than what was asked and approved on sight.
fn approved_partner(r: &Release<'_>, a: &Approval, edit: &PartnerEdit) -> Result<crate::Applied> {
    let name = &a.target;
    let current = r
        .store
        .partners()?
        .into_iter()
        .find(|p| p.name == *name)
        .ok_or_else(|| {
            ReleaseError::Stale(format!(
                "approval {}: partner {name:?} was removed since the request; nothing was \
                 applied (reject the approval)",
                a.id
            ))
        })?;
    same_organisation(a, &current)?;
    let (mut now, changes) = edit.apply(&current);
    let widens = partner_widens_here(r, &current, &now)?;
    as_asked(a, &format!("partner {name:?}"), &widens)?;
    now.details.updated_ns = now_ns();
    let door = Door {
        door: PARTNER_DOOR,
        partner: OPERATOR,
        person: Some(r.person),
        collection: "",
        policy_version: BASE_POLICY_VERSION,
    };
    let mut notes = vec![format!("partner {name}")];
    notes.extend(changes);
    notes.push(format!("requested by {}", a.requested_by));
    notes.push(format!("approved by {}", r.person));
    Ok((
        Vec::new(),
        vec![PartnerSwap { was: current, now }],
        vec![door.record(RELEASE_DIRECTION, 0, "", String::new(), "changed", notes)],
    ))
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
/// keeps its other changes), if it widens there exactly what its request named (stale,
/// nothing applied, still pending, otherwise: a partner changed, or given a read grant on
/// the collection, since); a grant or partner change is stale too when its partner was
/// removed and added again under its name since the request. Refused: the approver is the person who asked (the four-eyes
/// rule); not found: no such approval; decided: approved or rejected already.
pub fn approve(r: &Release<'_>, node: &Node<'_>, id: &str) -> Result<Approval> {
    let a = pending(r.store, id)?;
    r.require_person(&format!("approving {id}"))?;
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
        let (settings, partners, records) = approved_change(r, node, &a)?;
        match r
            .store
            .decide_approval(id, &d, &settings, &partners, &records)
        {
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
            // What it widens now, for the partners that read the collection now: what the
            // request named, or stale (a partner given a read grant meanwhile would receive
            // what no one approved on sight).
            let widens = sharing_widens(&r.store.partners()?, r.policy, &a.target, &old, &new);
            as_asked(a, &format!("collection {:?}", a.target), &widens)?;
            (
                vec![SettingChange {
                    key: sharing_setting_key(&a.target),
                    expected,
                    value: new.to_json(),
                }],
                Vec::new(),
                vec![sharing_record(
                    &a.target,
                    r.person,
                    &old,
                    &new,
                    Some(&a.requested_by),
                )],
            )
        }
        "partner" => {
            let edit: PartnerEdit =
                serde_json::from_str(&a.change).map_err(|e| unreadable(e.to_string()))?;
            approved_partner(r, a, &edit)?
        }
        "grant" => {
            let edit: GrantEdit =
                serde_json::from_str(&a.change).map_err(|e| unreadable(e.to_string()))?;
            if let Some(p) = r.store.partners()?.iter().find(|p| p.name == edit.to) {
                same_organisation(a, p)?;
            }
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
    if !r.store.decide_approval(id, &d, &[], &[], &[])? {
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
        let de = Policy::node_default(Some("DE"), Default::default());
        let w = |old: &CollectionSharing, new: &CollectionSharing| {
            sharing_widens(&partners, &de, "c", old, new)
                .iter()
                .map(Widening::english)
                .collect::<Vec<_>>()
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
                &Policy::node_default(None, Default::default()),
                "c",
                &base,
                &sharing(Tlp::Amber, Some(&["eu"]), &["de"])
            )
            .len(),
            3
        );
        // GREEN to one of fr's two groups: nothing new to see, but pseudonymised with
        // the other group's key (its first, `a`, before): a widening.
        let two = [partner("fr", "FR", &["b", "a"], &["c"])];
        let community = sharing(Tlp::Amber, None, &[]);
        let to_b = sharing_widens(
            &two,
            &de,
            "c",
            &community,
            &sharing(Tlp::Amber, Some(&["b"]), &[]),
        );
        assert_eq!(
            to_b.iter().map(Widening::english).collect::<Vec<_>>(),
            [Widening::Pseudonyms {
                partner: "fr".into(),
                jurisdiction: "FR".into(),
                group: "b".into(),
                collection: "c".into(),
            }
            .english()]
        );
    }

    /// Each way a partner change widens (or not) what the partner receives across a border,
    /// read through the door's rules (TLP gate, groups, jurisdiction, personal data).
    #[test]
    fn what_a_partner_change_widens() {
        let policy = Policy::node_default(Some("DE"), Default::default());
        let green_to_eu = sharing(Tlp::Amber, Some(&["eu"]), &[]);
        let share =
            |id: &str| -> std::result::Result<CollectionSharing, concord_egress::EgressError> {
                Ok(if id == "c" {
                    green_to_eu.clone()
                } else {
                    sharing(Tlp::Amber, None, &[])
                })
            };
        let name = |id: &str| format!("#{id}");
        let w = |was: &Partner, now: &Partner| {
            partner_widens(&policy, was, now, &[], &share, &name)
                .unwrap()
                .iter()
                .map(Widening::english)
                .collect::<Vec<_>>()
        };
        let fr = partner("fr", "FR", &[], &["c"]);
        // A new read grant: what the new collection shares with it.
        assert_eq!(
            w(&fr, &partner("fr", "FR", &[], &["c", "d"])),
            [
                "fr (FR) receives TLP:CLEAR from #d",
                "fr (FR) receives TLP:GREEN from #d"
            ]
        );
        // A write grant, a read grant removed: nothing.
        let mut writes = fr.clone();
        writes.write.push("d".into());
        assert!(w(&fr, &writes).is_empty());
        assert!(w(&fr, &partner("fr", "FR", &[], &[])).is_empty());
        // A new group: the membership, GREEN of the collection shared with it, its
        // pseudonyms.
        assert_eq!(
            w(&fr, &partner("fr", "FR", &["eu"], &["c"])),
            [
                "fr (FR) joins the sharing group eu",
                "fr (FR) receives TLP:GREEN from #c",
                "fr (FR) receives the pseudonyms of group eu in #c"
            ]
        );
        // Becoming domestic: the jurisdiction and every category of personal data.
        let domestic = w(&fr, &partner("fr", "DE", &[], &["c"]));
        assert_eq!(domestic[0], "fr moves from FR to DE and becomes domestic");
        assert!(domestic.contains(&"fr (DE) receives email by allow, not pseudonymise".to_owned()));
        assert_eq!(domestic.len(), 1 + Category::ALL.len());
        // A domestic partner: nothing waits.
        let bsi = partner("bsi", "DE", &[], &["c"]);
        assert!(w(&bsi, &partner("bsi", "DE", &["eu"], &["c", "d"])).is_empty());
        // Leaving the country: all it reads and its groups go across the border from now
        // on, as for a new cross-border partner; without grants or groups, nothing.
        assert_eq!(
            w(&bsi, &partner("bsi", "FR", &[], &["c"])),
            ["bsi (FR) receives TLP:CLEAR from #c"]
        );
        assert_eq!(
            w(
                &partner("bsi", "DE", &["eu"], &["c"]),
                &partner("bsi", "FR", &["eu"], &["c"])
            )[0],
            "bsi (FR) joins the sharing group eu"
        );
        assert!(
            w(
                &partner("bsi", "DE", &[], &[]),
                &partner("bsi", "FR", &[], &[])
            )
            .is_empty()
        );
        // Its incident grants go with it (issue 18): each waits as a grant abroad does;
        // staying at home they do not.
        let grants = [("incident--1".to_owned(), vec![Category::Email])];
        let g = |was: &Partner, now: &Partner| {
            partner_widens(&policy, was, now, &grants, &share, &name)
                .unwrap()
                .iter()
                .map(Widening::english)
                .collect::<Vec<_>>()
        };
        let bare = |j: &str| partner("bsi", j, &[], &[]);
        assert_eq!(
            g(&bare("DE"), &bare("FR")),
            ["bsi (FR) receives email as written in incident--1"]
        );
        assert!(g(&bare("DE"), &partner("bsi", "DE", &["eu"], &[])).is_empty());
        // A partner abroad moving to another foreign jurisdiction crosses a new border
        // (another agreement, another law): read as a new cross-border partner there too,
        // its grants, groups and reads all wait. Nothing to take across: nothing waits; the
        // same jurisdiction in other letters is no move.
        assert_eq!(
            g(&bare("FR"), &bare("US")),
            ["bsi (US) receives email as written in incident--1"]
        );
        assert_eq!(
            w(
                &partner("fr", "FR", &["eu"], &["c"]),
                &partner("fr", "US", &["eu"], &["c"])
            ),
            [
                "fr (US) joins the sharing group eu",
                "fr (US) receives TLP:CLEAR from #c",
                "fr (US) receives TLP:GREEN from #c",
                "fr (US) receives the pseudonyms of group eu in #c"
            ]
        );
        assert!(w(&bare("FR"), &bare("US")).is_empty());
        assert!(g(&bare("FR"), &bare("fr")).is_empty());
        // The edit kept with an approval turns the old record into the new one.
        let now = partner("fr", "DE", &["eu"], &["d"]);
        let edit = PartnerEdit::between(&fr, &now);
        let (applied, changes) = edit.apply(&fr);
        assert_eq!(applied, now);
        assert_eq!(
            changes,
            ["jurisdiction FR -> DE", "read -c", "read +d", "group +eu"]
        );
    }
}
