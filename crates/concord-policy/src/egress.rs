//! The egress function: what one partner receives of one object version.
//!
//! Every door by which an object leaves the node (TAXII objects/object/versions/manifest,
//! export for a partner; later sync and the web UI) calls [`egress`], and nothing else decides.
//! Today it applies the TLP gate (FIRST TLP 2.0, TLP 1.0 as STIX 2.1 §7.2.1.4 defines it),
//! to the object and to its granular markings (§7.2.3), then the actions on personal data
//! ([`crate::actions`]: allow, redact, pseudonymise, drop) on what the
//! [`crate::pii`] detectors find.

use serde_json::Value;

use crate::actions::Policy;
use crate::tlp::{Tlp, object_tlp};

/// Everything the egress function needs besides the object: one signature for every door.
#[derive(Clone, Copy, Debug)]
pub struct EgressContext<'a> {
    /// How the object's collection is shared.
    pub sharing: &'a CollectionSharing,
    /// Who receives.
    pub partner: &'a PartnerProfile,
    /// The actions on personal data, the node's jurisdiction and the pseudonym keys.
    pub policy: &'a Policy,
}

/// The node setting that holds a collection's [`CollectionSharing`] as JSON.
pub fn sharing_setting_key(collection_id: &str) -> String {
    format!("collection_sharing/{collection_id}")
}

/// A partner as the policy sees it: an organisation with credentials on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerProfile {
    /// Unique name of the organisation.
    pub name: String,
    /// ISO 3166-1 alpha-2 code of its jurisdiction.
    pub jurisdiction: String,
    /// Sharing groups it belongs to.
    pub groups: Vec<String>,
}

/// How a collection is shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionSharing {
    /// Sharing groups the collection is shared with, for TLP:GREEN; `None` means the node's
    /// whole community (every partner).
    pub groups: Option<Vec<String>>,
    /// Recipients of TLP:AMBER and TLP:AMBER+STRICT content: partner names, or
    /// `group:NAME` for every member of a sharing group (AMBER only: AMBER+STRICT is for the
    /// named organisation alone).
    pub recipients: Vec<String>,
    /// TLP of objects that carry no TLP marking (TLP:AMBER unless configured).
    pub default_tlp: Tlp,
}

impl CollectionSharing {
    /// Reads the JSON form `{"groups": null | [..], "recipients": [..], "default_tlp": "amber"}`
    /// (as the node stores it); missing keys take their defaults. Errors: the reason, naming
    /// the key.
    pub fn from_json(text: &str) -> Result<CollectionSharing, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("collection sharing: {e}"))?;
        let strings = |key: &str| -> Result<Option<Vec<String>>, String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{key}: not a string"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(format!("{key}: not a list")),
            }
        };
        let default_tlp = match v.get("default_tlp").and_then(Value::as_str) {
            None => Tlp::Amber,
            Some(t) => {
                Tlp::parse(t).ok_or_else(|| format!("default_tlp: unknown TLP level {t:?}"))?
            }
        };
        Ok(CollectionSharing {
            groups: strings("groups")?,
            recipients: strings("recipients")?.unwrap_or_default(),
            default_tlp,
        })
    }

    /// The JSON form read by [`CollectionSharing::from_json`].
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "groups": self.groups,
            "recipients": self.recipients,
            "default_tlp": self.default_tlp.label().trim_start_matches("TLP:").to_ascii_lowercase(),
        })
        .to_string()
    }
}

impl Default for CollectionSharing {
    fn default() -> Self {
        CollectionSharing {
            groups: None,
            recipients: Vec::new(),
            default_tlp: Tlp::Amber,
        }
    }
}

/// What the partner receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The object as stored, byte for byte.
    Unchanged,
    /// A rewritten copy (JSON text), with what was changed.
    Rewritten {
        /// The copy.
        body: String,
        /// One line per transformation, e.g. `removed description (granular TLP:RED)`.
        changes: Vec<String>,
        /// Old id → new id of an SCO whose value-derived id was recomputed after a rewrite
        /// (STIX 2.1 §2.9): the caller rewrites the references to it in the same response
        /// ([`crate::actions::rewrite_refs`]).
        renamed: Vec<(String, String)>,
    },
    /// Nothing: the object does not leave the node for this partner.
    Withheld {
        /// Why, naming the rule.
        reason: String,
    },
}

/// Whether `partner` may receive content at `tlp` from a collection shared as `sharing`.
pub fn may_see(
    tlp: Tlp,
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
) -> Result<(), String> {
    let named = |allow_groups: bool| {
        sharing
            .recipients
            .iter()
            .any(|r| match r.strip_prefix("group:") {
                Some(g) => allow_groups && partner.groups.iter().any(|pg| pg == g),
                None => *r == partner.name,
            })
    };
    match tlp {
        Tlp::Clear => Ok(()),
        Tlp::Green => match &sharing.groups {
            None => Ok(()),
            Some(gs) if gs.iter().any(|g| partner.groups.contains(g)) => Ok(()),
            Some(gs) => Err(format!(
                "TLP:GREEN is shared with the groups {gs:?}, and {} belongs to none of them",
                partner.name
            )),
        },
        Tlp::Amber if named(true) => Ok(()),
        Tlp::AmberStrict if named(false) => Ok(()),
        Tlp::Amber | Tlp::AmberStrict => Err(format!(
            "{} goes only to the collection's named recipients, and {} is not one",
            tlp.label(),
            partner.name
        )),
        Tlp::Red => Err("TLP:RED never leaves the node".to_owned()),
    }
}

/// Decides what the partner of `cx` receives of the object `body` (the stored JSON text).
///
/// Rules, in order: the TLP marking definitions themselves always go (they are public);
/// the object's TLP is the strictest TLP in `object_marking_refs`, else the collection's
/// `default_tlp`; the gate of [`may_see`] decides; then each granular marking (§7.2.3) whose
/// TLP the partner may not see removes the properties its selectors name; then the actions
/// of the policy on personal data ([`crate::actions::apply`]; a `drop` withholds the
/// object). A rewritten copy must still validate (STIX 2.1) or the object is withheld.
pub fn egress(body: &str, cx: &EgressContext<'_>) -> Decision {
    let (sharing, partner) = (cx.sharing, cx.partner);
    let Ok(object) = serde_json::from_str::<Value>(body) else {
        return Decision::Withheld {
            reason: "stored object is not JSON".to_owned(),
        };
    };
    let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
    if Tlp::is_tlp_definition(id) {
        return Decision::Unchanged;
    }
    let tlp = object_tlp(&object).unwrap_or(sharing.default_tlp);
    if let Err(reason) = may_see(tlp, sharing, partner) {
        return Decision::Withheld { reason };
    }
    let mut copy = object;
    let mut changes = granular(&mut copy, sharing, partner);
    let pii = match crate::actions::apply(&mut copy, cx.policy, sharing, partner) {
        Ok(a) => a,
        Err(reason) => return Decision::Withheld { reason },
    };
    if changes.is_empty() && pii.changes.is_empty() {
        return Decision::Unchanged;
    }
    changes.extend(pii.changes);
    if let Err(violations) = concord_stix::validate_object(&copy) {
        return Decision::Withheld {
            reason: format!(
                "the partner's copy would be invalid ({}) after: {}",
                violations
                    .first()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                changes.join("; ")
            ),
        };
    }
    Decision::Rewritten {
        body: copy.to_string(),
        changes,
        renamed: pii.renamed,
    }
}

/// Removes from `object` the properties under granular markings (§7.2.3) stricter than the
/// partner may see, and those markings; one line per removal.
fn granular(
    object: &mut Value,
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
) -> Vec<String> {
    let Some(Value::Array(granular)) = object.get("granular_markings") else {
        return Vec::new();
    };
    let mut hidden: Vec<(String, Tlp)> = Vec::new();
    let mut kept_markings = Vec::new();
    for g in granular {
        let level = g
            .get("marking_ref")
            .and_then(Value::as_str)
            .and_then(Tlp::from_marking_id);
        match level {
            Some(level) if may_see(level, sharing, partner).is_err() => {
                for s in g
                    .get("selectors")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = s.as_str() {
                        hidden.push((s.to_owned(), level));
                    }
                }
            }
            _ => kept_markings.push(g.clone()),
        }
    }
    if hidden.is_empty() {
        return Vec::new();
    }
    // Deepest and last list elements first, so earlier removals do not shift later ones.
    let mut paths: Vec<(Vec<Step>, String, Tlp)> = hidden
        .into_iter()
        .map(|(s, t)| (parse_selector(&s), s, t))
        .collect();
    paths.sort_by(|a, b| b.0.cmp(&a.0));
    let mut changes = Vec::new();
    for (steps, selector, level) in paths {
        if remove(object, &steps) {
            changes.push(format!("removed {selector} (granular {})", level.label()));
        }
    }
    let map = object.as_object_mut().expect("object");
    if kept_markings.is_empty() {
        map.remove("granular_markings");
    } else {
        map.insert("granular_markings".into(), Value::Array(kept_markings));
    }
    if changes.is_empty() {
        // Only markings of absent properties were dropped: still a change to report.
        changes.push("removed granular markings of absent properties".to_owned());
    }
    changes
}

/// One step of a granular-marking selector (STIX 2.1 §7.2.3.1): a property or a list index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// `external_references.[0].url` → `[Key(external_references), Index(0), Key(url)]`.
fn parse_selector(selector: &str) -> Vec<Step> {
    selector
        .split('.')
        .map(|part| {
            match part
                .strip_prefix('[')
                .and_then(|p| p.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
            {
                Some(i) => Step::Index(i),
                None => Step::Key(part.to_owned()),
            }
        })
        .collect()
}

fn remove(value: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut cur = value;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        (Step::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
    const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
    const STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
    const RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
    const WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";

    fn partner(name: &str, groups: &[&str]) -> PartnerProfile {
        PartnerProfile {
            name: name.into(),
            jurisdiction: "DE".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn campaign(markings: &[&str]) -> String {
        serde_json::json!({
            "type": "campaign", "spec_version": "2.1",
            "id": "campaign--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
            "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
            "name": "Op", "description": "secret detail", "object_marking_refs": markings,
        })
        .to_string()
    }

    /// The egress function under the built-in policy.
    fn egress(body: &str, sharing: &CollectionSharing, partner: &PartnerProfile) -> Decision {
        let policy = Policy::node_default(None, Default::default());
        super::egress(
            body,
            &EgressContext {
                sharing,
                partner,
                policy: &policy,
            },
        )
    }

    fn sent(d: &Decision) -> bool {
        !matches!(d, Decision::Withheld { .. })
    }

    /// The gate, level by level, for a member and a non-member of the sharing.
    #[test]
    fn tlp_gate_matrix() {
        let sharing = CollectionSharing {
            groups: Some(vec!["eu-cert".into()]),
            recipients: vec!["bsi".into(), "group:gov".into()],
            default_tlp: Tlp::Amber,
        };
        let bsi = partner("bsi", &["eu-cert"]);
        let anssi = partner("anssi", &["eu-cert", "gov"]);
        let acme = partner("acme", &["industry"]);
        let cases: &[(&[&str], [bool; 3])] = &[
            (&[WHITE], [true, true, true]),
            (&[GREEN], [true, true, false]),
            (&[AMBER], [true, true, false]), // anssi through group:gov
            (&[STRICT], [true, false, false]), // named organisation alone
            (&[RED], [false, false, false]),
            (&[], [true, true, false]),             // default AMBER
            (&[GREEN, RED], [false, false, false]), // strictest wins
        ];
        for (markings, want) in cases {
            let body = campaign(markings);
            let got = [&bsi, &anssi, &acme].map(|p| sent(&egress(&body, &sharing, p)));
            assert_eq!(&got, want, "{markings:?}");
        }
        // A community collection shares GREEN with everyone.
        let community = CollectionSharing::default();
        assert!(sent(&egress(&campaign(&[GREEN]), &community, &acme)));
        // The TLP definitions themselves always go.
        let def = r#"{"type":"marking-definition","id":"marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"}"#;
        assert_eq!(egress(def, &community, &acme), Decision::Unchanged);
    }

    #[test]
    fn sharing_json_round_trips() {
        let s = CollectionSharing {
            groups: Some(vec!["eu".into()]),
            recipients: vec!["bsi".into()],
            default_tlp: Tlp::AmberStrict,
        };
        assert_eq!(CollectionSharing::from_json(&s.to_json()).unwrap(), s);
        assert_eq!(
            CollectionSharing::from_json("{}").unwrap(),
            CollectionSharing::default()
        );
        assert!(
            CollectionSharing::from_json(r#"{"default_tlp":"pink"}"#)
                .unwrap_err()
                .contains("default_tlp")
        );
    }

    #[test]
    fn granular_markings_remove_properties_and_the_copy_validates() {
        let mut o: Value = serde_json::from_str(&campaign(&[GREEN])).unwrap();
        o["granular_markings"] = serde_json::json!([
            {"marking_ref": RED, "selectors": ["description"]},
            {"marking_ref": GREEN, "selectors": ["name"]},
        ]);
        let body = o.to_string();
        let d = egress(&body, &CollectionSharing::default(), &partner("acme", &[]));
        let Decision::Rewritten { body, changes, .. } = d else {
            panic!("{d:?}")
        };
        let copy: Value = serde_json::from_str(&body).unwrap();
        assert!(copy.get("description").is_none());
        assert_eq!(copy["name"], "Op");
        assert_eq!(copy["granular_markings"].as_array().unwrap().len(), 1);
        assert_eq!(changes, ["removed description (granular TLP:RED)"]);
        assert!(concord_stix::validate_object(&copy).is_ok());
        // Removing a required property would leave an invalid object: withheld instead.
        o["granular_markings"] = serde_json::json!([{"marking_ref": RED, "selectors": ["name"]}]);
        let d = egress(
            &o.to_string(),
            &CollectionSharing::default(),
            &partner("acme", &[]),
        );
        assert!(matches!(d, Decision::Withheld { .. }), "{d:?}");
    }
}
