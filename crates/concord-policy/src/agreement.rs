//! Sharing agreements (issue 19, items 3 and 5): what a partner, or every member of a sharing
//! group, agreed to with this node, as clauses the egress door enforces.
//!
//! An agreement is configuration (`[policy.agreements.NAME]` in concord.toml, held in
//! [`crate::actions::PolicyConfig::agreements`]), so it enters the policy version
//! ([`crate::actions::PolicyConfig::version`]): a change of agreement is a new policy version,
//! recorded in every audit entry made under it, and `concord policy show --version V` gives the
//! agreement (with its legal basis) back from any audit entry.
//!
//! # Clauses
//!
//! From FIRST's Information Exchange Policy 2.0 (IEP 2.0 Framework Definition, the policy
//! statements that can be enforced where information leaves; the JSON names are those of the
//! IEP 2.0 JSON Specification):
//!
//! | clause | IEP 2.0 | what the egress door does |
//! |---|---|---|
//! | `attribution = "must-not"` | §9 Sharing, ATTRIBUTION ("Recipients could be required to attribute or anonymize the Provider when redistributing the information received"): must-not, anonymise | every copy loses `created_by_ref`, and `identity` objects that can name a producer (every `identity_class` but `class`) are withheld; what needs one (a relationship's `source_ref`) is withheld with it |
//! | `encrypt_in_transit = "must"` | §7 Handling, ENCRYPT IN TRANSIT: "Recipients MUST encrypt the information received when it is retransmitted" | no sync round (pull or push) with the partner's peer over plain HTTP, and the server refuses the partner's requests when it serves plain HTTP ([`Agreement::requires_encryption`]) |
//! | `permitted_actions` | §8 Action, PERMITTED ACTIONS | `none` and `contact-for-instruction`: nothing by the automated doors (a machine acts on what it receives, with nobody to refrain or ask first); `internally-visible-actions` and `externally-visible-indirect-actions`: nothing by the feeds (sensor loads: blocking rules and response-policy zones act visibly outside the recipient's networks); `externally-visible-direct-actions` (default): every door |
//! | `start_date`, `end_date` | §11 Metadata, POLICY START DATE / END DATE: the UTC time the policy is effective from / until | before the start and from the end on, every door withholds everything for the partner, and sync with its peer stops |
//!
//! The PAP (Permissible Actions Protocol, as the OASIS "PAP Marking Definition for STIX 2.1"
//! defines its four marking definitions, [`Pap`]) gates the *automated* doors
//! ([`is_automated_door`]: feeds, webhooks, the stream, `/api/match`), by which objects go
//! straight into a partner's sensors, blocklists and enrichment:
//!
//! - `pap_automated` (default `amber`) is the strictest PAP an automated door carries. An
//!   object whose strictest PAP marking (in `object_marking_refs`) is stricter does not go by
//!   those doors; it still goes by the doors a person reads (TAXII, export, sync, web pages).
//! - Why `amber` by default: PAP:RED is "non-detectable actions only. Recipients may not use
//!   PAP:RED information on the network. Only passive actions on logs, that are not detectable
//!   from the outside" (MISP PAP taxonomy, which the OASIS extension represents), and an
//!   automated door exists to put what it carries on the network (a blocking rule, an RPZ
//!   entry, a look-up by an enrichment service). PAP:AMBER allows "online checks, like using
//!   services provided by third parties". An agreement may set `pap_automated = "green"`
//!   (only active-action content, PAP:GREEN and PAP:CLEAR, goes to automation) or `"red"`
//!   (the partner attests its automation is passive).
//! - The same rule applies to a partner without an agreement (the default), so PAP:RED never
//!   reaches a partner's automation unless an agreement says so.
//!
//! A cross-border partner's legal basis and transfer mechanism (`legal_basis`, free text, and
//! `transfer_mechanism`, a [`TransferMechanism`] code such as `pipl-standard-contract` or
//! `gdpr-scc`) are kept with the agreement: they change nothing the door decides, but they are
//! part of the policy version that every audit entry names, and `policy explain` states them.
//!
//! # Which agreement applies
//!
//! The agreement that names the partner in `partners`; else the first agreement (by name) that
//! names one of the partner's sharing groups in `groups`; else none. A partner named by two
//! agreements is refused when the policy is compiled ([`validate`]).
//!
//! # Shared, signed
//!
//! [`Agreement::document_body`] is the content a node signs and serves to the partner
//! (concord-server's `GET /{api-root}/agreement/`, built by `concord_egress`'s agreement
//! module), so the two sides can tell which version each holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::egress::PartnerProfile;

/// IEP 2.0 ATTRIBUTION (Framework §9, Sharing policy statements): whether the recipient may,
/// must or must not attribute the provider when it redistributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribution {
    /// Recipients MAY attribute the provider (the default: nothing removed).
    #[default]
    May,
    /// Recipients MUST attribute the provider: `created_by_ref` leaves as written.
    Must,
    /// Recipients MUST NOT attribute the provider: the door removes the attribution.
    MustNot,
}

/// IEP 2.0 ENCRYPT IN TRANSIT (Framework §7, Handling policy statements).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptInTransit {
    /// Recipients MAY encrypt (the default).
    #[default]
    May,
    /// Recipients MUST encrypt: nothing moves over plain HTTP with this partner.
    Must,
}

/// IEP 2.0 PERMITTED ACTIONS (Framework §8, Action policy statements), from the most
/// restrictive to the least.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermittedActions {
    /// "Recipients MUST NOT act upon the information received."
    None,
    /// "Recipients MUST contact the Providers before acting upon the information received."
    ContactForInstruction,
    /// Actions visible only on the recipient's internal networks and systems.
    InternallyVisibleActions,
    /// Indirect, or passive, actions that are visible outside the recipient's networks.
    ExternallyVisibleIndirectActions,
    /// Direct actions visible outside (the default: no restriction at egress).
    #[default]
    ExternallyVisibleDirectActions,
}

impl PermittedActions {
    /// The IEP 2.0 JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            PermittedActions::None => "none",
            PermittedActions::ContactForInstruction => "contact-for-instruction",
            PermittedActions::InternallyVisibleActions => "internally-visible-actions",
            PermittedActions::ExternallyVisibleIndirectActions => {
                "externally-visible-indirect-actions"
            }
            PermittedActions::ExternallyVisibleDirectActions => "externally-visible-direct-actions",
        }
    }
}

/// A PAP level, as the OASIS PAP marking definitions name them (`pap`: `clear`, `green`,
/// `amber`, `red`; the schema's older `white` is `clear`), ordered from the least
/// restrictive to the most.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Pap {
    /// "No restrictions in using this information."
    #[serde(alias = "white")]
    Clear,
    /// "Active actions allowed."
    Green,
    /// "Passive cross check" (the default of `pap_automated`).
    #[default]
    Amber,
    /// "Non-detectable actions only."
    Red,
}

/// The id of the OASIS extension definition of PAP markings.
pub const PAP_EXTENSION_ID: &str = "extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b";
/// The OASIS PAP:CLEAR marking definition.
pub const PAP_CLEAR_ID: &str = "marking-definition--ad15a0cd-55b6-4588-a14c-a66105329b92";
/// The OASIS PAP:GREEN marking definition.
pub const PAP_GREEN_ID: &str = "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9";
/// The OASIS PAP:AMBER marking definition.
pub const PAP_AMBER_ID: &str = "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab";
/// The OASIS PAP:RED marking definition.
pub const PAP_RED_ID: &str = "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e";
/// PAP:WHITE, as the extension's JSON schema still lists it (PAP:CLEAR's former name).
pub const PAP_WHITE_ID: &str = "marking-definition--a3bea94c-b469-41dc-9cfe-d6e7daba7730";

impl Pap {
    /// The level of one of the OASIS PAP marking definitions, by id. Only these ids are PAP
    /// ("Other instances of a PAP marking definition object MUST NOT be used or created"),
    /// so a PAP marking is known by its id alone and need not be held by the node.
    pub fn from_marking_id(id: &str) -> Option<Pap> {
        Some(match id {
            PAP_CLEAR_ID | PAP_WHITE_ID => Pap::Clear,
            PAP_GREEN_ID => Pap::Green,
            PAP_AMBER_ID => Pap::Amber,
            PAP_RED_ID => Pap::Red,
            _ => return None,
        })
    }

    /// `PAP:RED` and so on.
    pub fn label(self) -> &'static str {
        match self {
            Pap::Clear => "PAP:CLEAR",
            Pap::Green => "PAP:GREEN",
            Pap::Amber => "PAP:AMBER",
            Pap::Red => "PAP:RED",
        }
    }

    /// The strictest PAP of `object_marking_refs`; `None` without a PAP marking.
    pub fn of_object(object: &Value) -> Option<Pap> {
        object
            .get("object_marking_refs")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Pap::from_marking_id)
            .max()
    }
}

/// How personal data crosses the border under an agreement: the legal instrument, as a code
/// (the free text of [`Agreement::legal_basis`] says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferMechanism {
    /// PRC PIPL art. 38(3): the standard contract of the Cyberspace Administration of China.
    PiplStandardContract,
    /// PRC PIPL art. 38(2): personal-information protection certification.
    PiplCertification,
    /// PRC PIPL art. 38(1), art. 40: the CAC security assessment.
    PiplSecurityAssessment,
    /// GDPR art. 45: an adequacy decision of the European Commission.
    GdprAdequacy,
    /// GDPR art. 46(2)(c): the Commission's standard contractual clauses.
    GdprScc,
    /// GDPR art. 47: binding corporate rules.
    GdprBcr,
    /// GDPR art. 49: a derogation for a specific situation.
    GdprDerogation,
    /// Another instrument, named in `legal_basis`.
    Other,
}

/// One agreement: to whom it applies and its clauses (module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Agreement {
    /// Partner names it applies to (before any group's agreement).
    pub partners: Vec<String>,
    /// Sharing groups whose every member it applies to.
    pub groups: Vec<String>,
    /// IEP 2.0 POLICY START DATE (§11): RFC 3339 UTC; nothing flows before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// IEP 2.0 POLICY END DATE (§11): RFC 3339 UTC; nothing flows from then on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// IEP 2.0 ATTRIBUTION (§9).
    pub attribution: Attribution,
    /// IEP 2.0 ENCRYPT IN TRANSIT (§7).
    pub encrypt_in_transit: EncryptInTransit,
    /// IEP 2.0 PERMITTED ACTIONS (§8).
    pub permitted_actions: PermittedActions,
    /// The strictest PAP the automated doors carry to the partner (default `amber`).
    pub pap_automated: Pap,
    /// The legal basis of a cross-border transfer, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// The transfer mechanism, as a code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_mechanism: Option<TransferMechanism>,
}

/// Why a set of agreements is refused, naming the agreement and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.agreements.{agreement}.{key}: {message}")]
pub struct AgreementError {
    /// The agreement's name.
    pub agreement: String,
    /// The key at fault.
    pub key: String,
    /// The rule broken.
    pub message: String,
}

/// The start and end of an agreement, as nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// From (inclusive).
    pub start_ns: Option<i64>,
    /// Until (exclusive).
    pub end_ns: Option<i64>,
}

impl Period {
    /// Whether the agreement is in effect at `now_ns`.
    pub fn in_effect(&self, now_ns: i64) -> bool {
        self.start_ns.is_none_or(|s| now_ns >= s) && self.end_ns.is_none_or(|e| now_ns < e)
    }
}

fn date(name: &str, key: &str, value: Option<&str>) -> Result<Option<i64>, AgreementError> {
    let Some(text) = value else { return Ok(None) };
    concord_stix::Timestamp::parse(text)
        .map(|t| Some(t.unix_nanos()))
        .map_err(|e| AgreementError {
            agreement: name.to_owned(),
            key: key.to_owned(),
            message: format!("{text:?} is no RFC 3339 UTC time (IEP 2.0 §11 dates are UTC): {e}"),
        })
}

/// Checks a set of agreements and reads their dates. Errors: a date that is not an RFC 3339
/// UTC time, an end not after the start, an agreement that names nobody, a partner named by
/// two agreements.
pub fn validate(
    agreements: &BTreeMap<String, Agreement>,
) -> Result<BTreeMap<String, Period>, AgreementError> {
    let mut periods = BTreeMap::new();
    let mut named: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, a) in agreements {
        let err = |key: &str, message: String| AgreementError {
            agreement: name.clone(),
            key: key.to_owned(),
            message,
        };
        if a.partners.is_empty() && a.groups.is_empty() {
            return Err(err(
                "partners",
                "names no partner and no group: it would apply to nobody".to_owned(),
            ));
        }
        for p in &a.partners {
            if let Some(other) = named.insert(p, name) {
                return Err(err(
                    "partners",
                    format!(
                        "partner {p:?} is named by agreement {other:?} too: one agreement per partner"
                    ),
                ));
            }
        }
        let period = Period {
            start_ns: date(name, "start_date", a.start_date.as_deref())?,
            end_ns: date(name, "end_date", a.end_date.as_deref())?,
        };
        if let (Some(s), Some(e)) = (period.start_ns, period.end_ns)
            && e <= s
        {
            return Err(err(
                "end_date",
                "is not after start_date: the agreement would never be in effect".to_owned(),
            ));
        }
        periods.insert(name.clone(), period);
    }
    Ok(periods)
}

/// The agreement that applies to `partner` among `agreements`: the one naming it, else the
/// first (by name) naming one of its groups.
pub fn applicable<'a>(
    agreements: &'a BTreeMap<String, Agreement>,
    partner: &PartnerProfile,
) -> Option<(&'a str, &'a Agreement)> {
    agreements
        .iter()
        .find(|(_, a)| a.partners.contains(&partner.name))
        .or_else(|| {
            agreements
                .iter()
                .find(|(_, a)| a.groups.iter().any(|g| partner.groups.contains(g)))
        })
        .map(|(n, a)| (n.as_str(), a))
}

/// Whether `door` (an audit door name) is automated: what it carries goes into a partner's
/// machines without a person reading it first. Feeds (`feed-*`: Suricata rules, Zeek intel,
/// RPZ, lists), `webhook`, `stream` (SSE), `api-match` (the indicator set a partner's logs are
/// matched against).
pub fn is_automated_door(door: &str) -> bool {
    door.starts_with("feed-") || matches!(door, "webhook" | "stream" | "api-match")
}

/// Whether `door` loads sensors (`feed-*`).
pub fn is_feed_door(door: &str) -> bool {
    door.starts_with("feed-")
}

impl Agreement {
    /// Whether transfers with the partner must be encrypted (IEP 2.0 ENCRYPT IN TRANSIT MUST).
    pub fn requires_encryption(&self) -> bool {
        self.encrypt_in_transit == EncryptInTransit::Must
    }

    /// Whether `door` may carry anything to the partner under PERMITTED ACTIONS; `Err` names
    /// the clause.
    pub fn permits_door(&self, door: &str) -> Result<(), crate::explain::Clause> {
        use crate::explain::Clause;
        let actions = self.permitted_actions;
        if is_automated_door(door) && actions <= PermittedActions::ContactForInstruction {
            return Err(Clause::new("iep-automated-door")
                .with("actions", actions.as_str())
                .with("door", door));
        }
        if is_feed_door(door) && actions < PermittedActions::ExternallyVisibleDirectActions {
            return Err(Clause::new("iep-feed-door")
                .with("actions", actions.as_str())
                .with("door", door));
        }
        Ok(())
    }

    /// The agreement as the partner receives it in the signed document: its clauses, without
    /// the list of other partners and groups it also applies to (those are this node's
    /// business), with its name and this partner.
    pub fn document_body(&self, name: &str, partner: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("partners");
            m.remove("groups");
            m.insert("name".into(), Value::String(name.to_owned()));
            m.insert("partner".into(), Value::String(partner.to_owned()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(name: &str, groups: &[&str]) -> PartnerProfile {
        PartnerProfile {
            name: name.into(),
            jurisdiction: "DE".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn the_partners_own_agreement_wins_over_its_groups() {
        let mut a = BTreeMap::new();
        a.insert(
            "a-eu".to_owned(),
            Agreement {
                groups: vec!["eu".into()],
                ..Agreement::default()
            },
        );
        a.insert(
            "z-bsi".to_owned(),
            Agreement {
                partners: vec!["bsi".into()],
                ..Agreement::default()
            },
        );
        assert_eq!(applicable(&a, &partner("bsi", &["eu"])).unwrap().0, "z-bsi");
        assert_eq!(
            applicable(&a, &partner("anssi", &["eu"])).unwrap().0,
            "a-eu"
        );
        assert!(applicable(&a, &partner("cert-br", &[])).is_none());
    }

    #[test]
    fn validation_names_the_agreement_and_key() {
        let mut a = BTreeMap::new();
        a.insert(
            "x".to_owned(),
            Agreement {
                partners: vec!["bsi".into()],
                end_date: Some("next tuesday".into()),
                ..Agreement::default()
            },
        );
        let e = validate(&a).unwrap_err().to_string();
        assert!(e.starts_with("policy.agreements.x.end_date: "), "{e}");
        a.get_mut("x").unwrap().end_date = Some("2026-01-01T00:00:00Z".into());
        a.get_mut("x").unwrap().start_date = Some("2026-06-01T00:00:00Z".into());
        assert!(validate(&a).unwrap_err().to_string().contains("not after"));
        a.get_mut("x").unwrap().start_date = None;
        a.insert(
            "y".to_owned(),
            Agreement {
                partners: vec!["bsi".into()],
                ..Agreement::default()
            },
        );
        assert!(
            validate(&a)
                .unwrap_err()
                .to_string()
                .contains("one agreement per partner")
        );
        a.insert("y".to_owned(), Agreement::default());
        assert!(
            validate(&a)
                .unwrap_err()
                .to_string()
                .contains("apply to nobody")
        );
    }

    #[test]
    fn periods_and_doors() {
        let p = Period {
            start_ns: Some(10),
            end_ns: Some(20),
        };
        assert!(!p.in_effect(9) && p.in_effect(10) && p.in_effect(19) && !p.in_effect(20));
        let none = Agreement {
            permitted_actions: PermittedActions::None,
            ..Agreement::default()
        };
        assert!(none.permits_door("taxii-objects").is_ok());
        assert!(none.permits_door("webhook").is_err());
        let internal = Agreement {
            permitted_actions: PermittedActions::InternallyVisibleActions,
            ..Agreement::default()
        };
        assert!(internal.permits_door("api-match").is_ok());
        assert!(internal.permits_door("feed-suricata").is_err());
        assert!(Agreement::default().permits_door("feed-rpz").is_ok());
    }
}
