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
use crate::explain::{Arg, Clause};
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::tlp::{Tlp, definition_tlp};

/// Everything the egress function needs besides the object: one signature for every door.
#[derive(Clone, Copy, Debug)]
pub struct EgressContext<'a> {
    /// How the object's collection is shared.
    pub sharing: &'a CollectionSharing,
    /// Who receives.
    pub partner: &'a PartnerProfile,
    /// The actions on personal data, the node's jurisdiction and the pseudonym keys.
    pub policy: &'a Policy,
    /// The marking definitions the object may reference, by id: a marking the node does not
    /// hold cannot be decided, so an object that carries one is withheld (fail closed).
    pub markings: &'a Markings,
    /// The door the object leaves by, as the audit log names it (`taxii-objects`,
    /// `feed-suricata`, `webhook`…): an agreement's clauses and the PAP gate differ for the
    /// automated doors ([`crate::agreement::is_automated_door`]).
    pub door: &'a str,
    /// The time of the decision, nanoseconds since the epoch: an agreement's start and end
    /// dates are compared with it (passed in: this crate reads no clock).
    pub now_ns: i64,
}

/// What a marking definition means for egress, read from its content
/// ([`crate::tlp::definition_tlp`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkingClass {
    /// A TLP marking, whatever its id (STIX 2.1 §7.2.1.4, TLP 2.0).
    Tlp(Tlp),
    /// A marking that says nothing of TLP (a statement, an important-data marking).
    Other,
    /// A marking that claims TLP but names no level this node knows: the reason.
    Undecidable(String),
}

/// The marking definitions an egress decision may need, by id. The fixed TLP ids (STIX 2.1
/// §7.2.1.4, TLP 2.0) are always known; any other id must have been [`Markings::add`]ed
/// from its definition, else [`Markings::class`] answers `None` and the object that
/// references it is withheld.
#[derive(Clone, Debug, Default)]
pub struct Markings {
    classes: HashMap<String, MarkingClass>,
}

impl Markings {
    /// Records what the marking definition `definition` (a STIX object) means; objects that
    /// are not marking definitions are ignored.
    pub fn add(&mut self, definition: &Value) {
        if definition.get("type").and_then(Value::as_str) != Some("marking-definition") {
            return;
        }
        let Some(id) = definition.get("id").and_then(Value::as_str) else {
            return;
        };
        let class = match definition_tlp(definition) {
            Ok(Some(t)) => MarkingClass::Tlp(t),
            Ok(None) => MarkingClass::Other,
            Err(reason) => MarkingClass::Undecidable(reason),
        };
        self.classes.insert(id.to_owned(), class);
    }

    /// Whether `id` was recorded.
    pub fn contains(&self, id: &str) -> bool {
        self.classes.contains_key(id)
    }

    /// What the marking `id` means; `None` when the node does not know it.
    pub fn class(&self, id: &str) -> Option<MarkingClass> {
        if let Some(t) = Tlp::from_marking_id(id) {
            return Some(MarkingClass::Tlp(t));
        }
        // The OASIS PAP definitions are fixed ids ("the only instances of PAP marking
        // definitions permitted"): known without being held, and no TLP.
        if crate::agreement::Pap::from_marking_id(id).is_some() {
            return Some(MarkingClass::Other);
        }
        self.classes.get(id).cloned()
    }
}

/// The marking references of `object` (`object_marking_refs` and every granular
/// `marking_ref`), as written; what a door must resolve into [`Markings`] before it decides.
pub fn marking_refs(object: &Value) -> Vec<&str> {
    let mut refs: Vec<&str> = object
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    refs.extend(
        object
            .get("granular_markings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("marking_ref").and_then(Value::as_str)),
    );
    refs
}

/// The strictest TLP of `object_marking_refs` (STIX 2.1 §7.2.2), read through `markings`
/// (TLP by content under any id); `Ok(None)` without a TLP marking. Errors (the object must
/// be withheld): a reference that is not a string, names a marking the node does not hold,
/// or whose TLP level cannot be read: why, as a [`Clause`].
pub fn object_tlp(
    object: &Value,
    markings: &Markings,
    policy: &Policy,
) -> Result<Option<Tlp>, Clause> {
    let Some(refs) = object.get("object_marking_refs") else {
        return Ok(None);
    };
    let Some(refs) = refs.as_array() else {
        return Err(Clause::new("markings-not-list"));
    };
    let mut strictest = None;
    for r in refs {
        let Some(r) = r.as_str() else {
            return Err(Clause::new("markings-non-string").with("value", r.to_string()));
        };
        match markings.class(r) {
            Some(MarkingClass::Tlp(t)) => strictest = strictest.max(Some(t)),
            Some(MarkingClass::Other) => {}
            Some(MarkingClass::Undecidable(reason)) => {
                return Err(Clause::new("marking-undecidable")
                    .with("marking", r)
                    .with("detail", reason));
            }
            None if policy.is_important_data_marking(r) => {}
            None => return Err(Clause::new("marking-unknown").with("marking", r)),
        }
    }
    Ok(strictest)
}

/// Whether a property name holds references to objects (STIX 2.1 §2.9: `*_ref`, `*_refs`),
/// markings aside (they are resolved as markings, and a marking definition's id says
/// nothing of the object).
pub fn is_reference_key(key: &str) -> bool {
    (key.ends_with("_ref") || key.ends_with("_refs"))
        && key != "object_marking_refs"
        && key != "marking_ref"
}

/// Every id referenced by `value` (at any depth), markings aside, without repeats.
pub fn references(value: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>, seen: &mut HashSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if is_reference_key(k) {
                        let mut push = |s: &Value| {
                            if let Some(s) = s.as_str()
                                && s.contains("--")
                                && seen.insert(s.to_owned())
                            {
                                out.push(s.to_owned());
                            }
                        };
                        match v {
                            Value::Array(a) => a.iter().for_each(&mut push),
                            s => push(s),
                        }
                    } else {
                        walk(v, out, seen);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out, seen)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out, &mut HashSet::new());
    out
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
    /// Objects addressed to named partners, by object id (issue 18: an incident's request
    /// for assistance, and the objects it needs, addressed to its recipient; an answer
    /// addressed to the requester). An addressed object goes to the partners named here and
    /// to no one else, whatever the collection's recipients and groups; a named partner
    /// receives it at any TLP but RED, as a named recipient of AMBER+STRICT does. Objects
    /// not listed follow the TLP gate alone.
    pub addressed: BTreeMap<String, Vec<String>>,
    /// Grants scoped to one object and one partner (issue 18: what one request for
    /// assistance needs): object id → partner → categories of personal data that partner
    /// receives as written, in that object and in every object that refers to it (an
    /// incident's requests and answers), whatever the tables of the policy say.
    pub grants: BTreeMap<String, BTreeMap<String, Vec<crate::pii::Category>>>,
}

impl CollectionSharing {
    /// Reads the JSON form `{"groups": null | [..], "recipients": [..], "default_tlp": "amber",
    /// "addressed": {"task--…": ["bsi"]}}` (as the node stores it); missing keys take their
    /// defaults. Errors: the reason, naming the key.
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
        let mut addressed = BTreeMap::new();
        match v.get("addressed") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (id, names) in m {
                    let names = names
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|n| n.as_str().map(str::to_owned))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| format!("addressed.{id}: not a list of partner names"))?;
                    addressed.insert(id.clone(), names);
                }
            }
            Some(_) => return Err("addressed: not an object".to_owned()),
        }
        let grants = match v.get("grants") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(g) => serde_json::from_value(g.clone()).map_err(|e| {
                format!(
                    "grants: {e} (expected {{\"OBJECT-ID\": {{\"PARTNER\": [\"ip_address\", …]}}}})"
                )
            })?,
        };
        Ok(CollectionSharing {
            groups: strings("groups")?,
            recipients: strings("recipients")?.unwrap_or_default(),
            default_tlp,
            addressed,
            grants,
        })
    }

    /// The JSON form read by [`CollectionSharing::from_json`].
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({
            "groups": self.groups,
            "recipients": self.recipients,
            "default_tlp": self.default_tlp.label().trim_start_matches("TLP:").to_ascii_lowercase(),
        });
        // Written only when some object is addressed: the form of every earlier setting
        // (and the egress door's cache keys built from it) stays the same.
        if !self.addressed.is_empty() {
            v["addressed"] = serde_json::json!(self.addressed);
        }
        if !self.grants.is_empty() {
            v["grants"] = serde_json::json!(self.grants);
        }
        v.to_string()
    }

    /// Addresses the object `id` to `partner` as well ([`CollectionSharing::addressed`]);
    /// `false` when it already was.
    pub fn address(&mut self, id: &str, partner: &str) -> bool {
        let names = self.addressed.entry(id.to_owned()).or_default();
        if names.iter().any(|n| n == partner) {
            return false;
        }
        names.push(partner.to_owned());
        true
    }
}

impl Default for CollectionSharing {
    fn default() -> Self {
        CollectionSharing {
            groups: None,
            recipients: Vec::new(),
            default_tlp: Tlp::Amber,
            addressed: BTreeMap::new(),
            grants: BTreeMap::new(),
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
        /// Why, naming the rule, in English (the [`Clause`] of the explanation's step
        /// written out: [`explain`] has it as data).
        reason: String,
    },
}

/// Whether `partner` may receive content at `tlp` from a collection shared as `sharing`;
/// `Err`: why not.
pub fn may_see(
    tlp: Tlp,
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
) -> Result<(), Clause> {
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
            Some(gs) => Err(Clause::new("tlp-green-not-in-groups")
                .with("groups", gs.join(", "))
                .with("partner", &partner.name)),
        },
        Tlp::Amber if named(true) => Ok(()),
        Tlp::AmberStrict if named(false) => Ok(()),
        Tlp::Amber | Tlp::AmberStrict => Err(Clause::new("tlp-not-recipient")
            .with("tlp", tlp.label())
            .with("partner", &partner.name)),
        Tlp::Red => Err(Clause::new("tlp-red-never")),
    }
}

/// One rule's verdict in an explanation ([`explain`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExplainStep {
    /// The rule: `agreement` (the partner's agreement and its clause, or the PAP gate of
    /// the automated doors), `tlp`, `addressed`, `important-data`, `granular-markings`,
    /// `jurisdiction`, `personal-data`, `validation`.
    pub rule: &'static str,
    /// What the rule found and decided, in English: [`crate::explain::english`] of
    /// `clauses` (what `concord policy explain` prints).
    pub detail: String,
    /// The same as data: the clauses of the rule with their parameters, one statement
    /// each, `withheld` last when this rule withheld the object (what the web UI writes in
    /// each of its languages).
    pub clauses: Vec<Clause>,
}

impl ExplainStep {
    /// The step of `rule` saying `clauses`.
    pub fn new(rule: &'static str, clauses: Vec<Clause>) -> ExplainStep {
        ExplainStep {
            rule,
            detail: crate::explain::english(&clauses),
            clauses,
        }
    }

    /// Why this step withheld the object, when it did.
    pub fn withheld(&self) -> Option<&Clause> {
        self.clauses
            .iter()
            .rev()
            .find(|c| c.id == "withheld")
            .map(Clause::reason)
    }
}

/// What [`explain`] returns: the decision of [`egress`] and the rules that shaped it, in
/// the order they were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Rule by rule.
    pub steps: Vec<ExplainStep>,
    /// The decision, exactly as [`egress`] makes it.
    pub decision: Decision,
}

/// The trace of one decision: `None` in [`egress`], where nothing is formatted.
struct Trace(Option<Vec<ExplainStep>>);

impl Trace {
    fn note(&mut self, rule: &'static str, clauses: impl FnOnce() -> Vec<Clause>) {
        if let Some(steps) = &mut self.0 {
            steps.push(ExplainStep::new(rule, clauses()));
        }
    }

    /// Notes that `rule` withholds the object because of `reason`, and returns the
    /// decision's reason in English.
    fn withhold(&mut self, rule: &'static str, reason: Clause) -> String {
        let english = reason.to_string();
        self.note(rule, || vec![Clause::withheld(reason)]);
        english
    }
}

/// Decides what the partner of `cx` receives of the object `body` (the stored JSON text).
///
/// Rules, in order: the TLP marking definitions themselves always go (they are public);
/// the object's TLP is the strictest TLP in `object_marking_refs`, else the collection's
/// `default_tlp`; the gate of [`may_see`] decides; an object marked as important data (one of
/// the policy's `important_data_markings`, [`crate::actions::PolicyConfig`]) never goes to a
/// partner across a border; then each granular marking (§7.2.3) whose TLP the partner may not
/// see, or that marks important data for a partner across a border, removes the properties
/// its selectors name; then the actions of the policy on personal data
/// ([`crate::actions::apply`]; a `drop` withholds the object). A rewritten copy must still
/// validate (STIX 2.1) or the object is withheld.
pub fn egress(body: &str, cx: &EgressContext<'_>) -> Decision {
    decide(body, cx, &mut Trace(None))
}

/// The decision of [`egress`] with the rules that shaped it, rule by rule: what `concord
/// policy explain` prints and the web UI's "as partner" view shows.
pub fn explain(body: &str, cx: &EgressContext<'_>) -> Explanation {
    let mut trace = Trace(Some(Vec::new()));
    let decision = decide(body, cx, &mut trace);
    Explanation {
        steps: trace.0.unwrap_or_default(),
        decision,
    }
}

fn decide(body: &str, cx: &EgressContext<'_>, trace: &mut Trace) -> Decision {
    // Strict (no repeated member names): what is decided on is exactly what the bytes say,
    // so the stored bytes may go out unchanged (I-JSON, RFC 7493 §2.3).
    let object = match concord_stix::parse_object(body) {
        Ok(o) => o,
        Err(e) => {
            let reason = trace.withhold(
                "validation",
                Clause::new("stored-unparsable").with("error", e.to_string()),
            );
            return Decision::Withheld { reason };
        }
    };
    decide_object(object, cx, trace).0
}

/// [`egress`] on an object already parsed (strictly: [`concord_stix::parse_object`]):
/// the decision, and the object the partner receives as a value (the object itself when
/// unchanged, the rewritten copy), so that a caller that goes on with it (the egress door
/// follows its references) does not parse it again. `None` when withheld.
pub fn egress_object(object: Value, cx: &EgressContext<'_>) -> (Decision, Option<Value>) {
    decide_object(object, cx, &mut Trace(None))
}

/// [`explain`] on an object already parsed; see [`egress_object`].
pub fn explain_object(object: Value, cx: &EgressContext<'_>) -> (Explanation, Option<Value>) {
    let mut trace = Trace(Some(Vec::new()));
    let (decision, copy) = decide_object(object, cx, &mut trace);
    (
        Explanation {
            steps: trace.0.unwrap_or_default(),
            decision,
        },
        copy,
    )
}

fn decide_object(
    object: Value,
    cx: &EgressContext<'_>,
    trace: &mut Trace,
) -> (Decision, Option<Value>) {
    let (sharing, partner, policy) = (cx.sharing, cx.partner, cx.policy);
    // The agreement first: after its end date nothing flows, not even public definitions.
    if let Err(reason) = agreement_gate(&object, cx, trace) {
        return (Decision::Withheld { reason }, None);
    }
    let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
    let is_marking = object.get("type").and_then(Value::as_str) == Some("marking-definition");
    if is_marking
        && (Tlp::is_tlp_definition(id) || matches!(definition_tlp(&object), Ok(Some(_))))
        && object.get("object_marking_refs").is_none()
        && object.get("granular_markings").is_none()
    {
        trace.note("tlp", || vec![Clause::new("tlp-definition-public")]);
        // Public, but written by someone: under attribution must-not its author goes too
        // (a definition of the producer's own names it as any object does).
        let must_not = policy
            .agreement(partner)
            .filter(|(_, a, _)| a.attribution == crate::agreement::Attribution::MustNot)
            .map(|(name, ..)| name.to_owned());
        if let Some(name) = must_not
            && object.get("created_by_ref").is_some()
        {
            let mut copy = object;
            if let Some(m) = copy.as_object_mut() {
                m.remove("created_by_ref");
            }
            let clause = Clause::new("attribution-created-by-removed").with("agreement", &name);
            let change = clause.to_string();
            trace.note("agreement", || vec![clause]);
            return (
                Decision::Rewritten {
                    body: copy.to_string(),
                    changes: vec![change],
                    renamed: Vec::new(),
                },
                Some(copy),
            );
        }
        return (Decision::Unchanged, Some(object));
    }
    let marked = match object_tlp(&object, cx.markings, policy) {
        Ok(m) => m,
        Err(reason) => {
            let reason = trace.withhold("tlp", reason);
            return (Decision::Withheld { reason }, None);
        }
    };
    let level = |tlp: Tlp| {
        Clause::new("tlp-level").with("tlp", tlp.label()).with(
            "whence",
            Clause::new(if marked.is_some() {
                "tlp-from-markings"
            } else {
                "tlp-from-default"
            }),
        )
    };
    let tlp = marked.unwrap_or(sharing.default_tlp);
    if let Some((names, why)) = addressees(&object, id, sharing) {
        let named = names.contains(&partner.name);
        let gate = match (named, tlp) {
            (_, Tlp::Red) => Err(Clause::new("tlp-red-never")),
            (true, _) => Ok(()),
            (false, _) if names.is_empty() => {
                Err(Clause::new("addressed-none-in-common").with("partner", &partner.name))
            }
            (false, _) => Err(Clause::new("addressed-others")
                .with("names", names.join(", "))
                .with("partner", &partner.name)),
        };
        trace.note("addressed", || {
            let mut said = why.clone();
            match &gate {
                Ok(()) => {
                    said.insert(0, level(tlp));
                    said.push(Clause::new("addressed-named").with("partner", &partner.name));
                }
                Err(reason) => said.push(Clause::withheld(reason.clone())),
            }
            said
        });
        if let Err(reason) = gate {
            return (
                Decision::Withheld {
                    reason: reason.to_string(),
                },
                None,
            );
        }
        return after_gate(object, cx, trace);
    }
    let gate = may_see(tlp, sharing, partner);
    trace.note("tlp", || match &gate {
        Ok(()) => vec![
            level(tlp),
            Clause::new("tlp-may-receive")
                .with("partner", &partner.name)
                .with("why", why_allowed(tlp, sharing, partner)),
        ],
        Err(reason) => vec![level(tlp), Clause::withheld(reason.clone())],
    });
    if let Err(reason) = gate {
        return (
            Decision::Withheld {
                reason: reason.to_string(),
            },
            None,
        );
    }
    after_gate(object, cx, trace)
}

/// The gates of the agreement that applies to the partner ([`crate::agreement`]), in order:
/// its period (IEP 2.0 start and end dates, §11), its permitted actions at this door (§8),
/// then the PAP gate of the automated doors (the agreement's `pap_automated`, else the
/// default PAP:AMBER). `Err`: why the object is withheld, naming the agreement and clause.
/// Noted in a trace (rule `agreement`) when an agreement applies or the object carries a
/// PAP marking.
fn agreement_gate(object: &Value, cx: &EgressContext<'_>, trace: &mut Trace) -> Result<(), String> {
    use crate::agreement::{Pap, is_automated_door};
    let partner = cx.partner;
    let found = cx.policy.agreement(partner);
    let pap = Pap::of_object(object);
    if found.is_none() && pap.is_none() {
        return Ok(());
    }
    let mut said = Vec::new();
    if let Some((name, a, period)) = found {
        if !period.in_effect(cx.now_ns) {
            let reason = match (period.end_ns, &a.end_date) {
                (Some(end), Some(text)) if cx.now_ns >= end => Clause::new("agreement-ended")
                    .with("agreement", name)
                    .with("partner", &partner.name)
                    .with("end", text),
                _ => Clause::new("agreement-not-yet")
                    .with("agreement", name)
                    .with("partner", &partner.name)
                    .with("start", a.start_date.as_deref().unwrap_or("?")),
            };
            return Err(trace.withhold("agreement", reason));
        }
        if let Err(e) = a.permits_door(cx.door) {
            let reason = Clause::new("agreement-door")
                .with("agreement", name)
                .with("reason", e);
            return Err(trace.withhold("agreement", reason));
        }
        said.push(
            Clause::new("agreement-applies")
                .with("agreement", name)
                .with("partner", &partner.name),
        );
        if let Some(end) = &a.end_date {
            said.push(Clause::new("agreement-until").with("end", end));
        }
        said.push(
            Clause::new("agreement-permitted-actions")
                .with("actions", a.permitted_actions.as_str()),
        );
        if a.legal_basis.is_some() || a.transfer_mechanism.is_some() {
            let mechanism: Arg = a
                .transfer_mechanism
                .and_then(|m| serde_json::to_value(m).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .map_or_else(|| Clause::new("no-mechanism-code").into(), Arg::Text);
            let basis: Arg = a
                .legal_basis
                .as_deref()
                .map_or_else(|| Clause::new("not-stated").into(), Arg::from);
            said.push(
                Clause::new("agreement-transfer")
                    .with("mechanism", mechanism)
                    .with("basis", basis),
            );
        }
    }
    let limit = found.map_or(Pap::default(), |(_, a, _)| a.pap_automated);
    if let Some(p) = pap {
        if is_automated_door(cx.door) && p > limit {
            let whose = match found {
                Some((name, ..)) => Clause::new("pap-of-agreement").with("agreement", name),
                None => Clause::new("pap-default"),
            };
            let reason = Clause::new("pap-too-strict")
                .with("pap", p.label())
                .with("limit", limit.label())
                .with("door", cx.door)
                .with("partner", &partner.name)
                .with("whose", whose);
            return Err(trace.withhold("agreement", reason));
        }
        said.push(if is_automated_door(cx.door) {
            Clause::new("pap-within")
                .with("pap", p.label())
                .with("limit", limit.label())
                .with("door", cx.door)
        } else {
            Clause::new("pap-person")
                .with("pap", p.label())
                .with("door", cx.door)
        });
    }
    trace.note("agreement", || said);
    Ok(())
}

/// The property, inside an extension of an object (`extensions.<definition>.answer_to_ref`),
/// by which an answer names the request it answers (issue 18). It is the one reference the
/// addressed rule follows: an answer goes where its request went.
pub const ANSWER_LINK: &str = "answer_to_ref";

/// The references by which an object is part of an addressed request/answer exchange: the
/// [`ANSWER_LINK`] of each of its extensions. Never `created_by_ref`, `object_marking_refs`
/// or any generic reference (`object_refs`, `sighting_of_ref`…): an object the node created,
/// or a note about an addressed incident, follows its own markings.
fn addressed_links(object: &Value) -> Vec<&str> {
    object
        .get("extensions")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|e| e.get(ANSWER_LINK).and_then(Value::as_str))
        .collect()
}

/// The partners an object is addressed to ([`CollectionSharing::addressed`]), and why as
/// clauses: those named for the object itself, narrowed to those named for the addressed
/// request it answers ([`ANSWER_LINK`], the only reference followed): an answer that refers
/// to a request addressed to one partner goes to that partner alone, wherever it was made.
/// `None` when neither the object nor the request it answers is addressed.
fn addressees(
    object: &Value,
    id: &str,
    sharing: &CollectionSharing,
) -> Option<(Vec<String>, Vec<Clause>)> {
    if sharing.addressed.is_empty() {
        return None;
    }
    let mut names: Option<Vec<String>> = sharing.addressed.get(id).cloned();
    let mut why: Vec<Clause> = names
        .iter()
        .map(|n| Clause::new("addressed-to").with("names", n.join(", ")))
        .collect();
    for r in addressed_links(object) {
        if r == id {
            continue;
        }
        if let Some(theirs) = sharing.addressed.get(r) {
            why.push(
                Clause::new("addressed-via")
                    .with("request", r)
                    .with("names", theirs.join(", ")),
            );
            names = Some(match names {
                None => theirs.clone(),
                Some(mine) => mine.into_iter().filter(|n| theirs.contains(n)).collect(),
            });
        }
    }
    names.map(|n| (n, why))
}

/// The grant ([`CollectionSharing::grants`]) for `partner` on one of `ids` (an object's id
/// and its references): the scope and the categories granted, every grant that applies
/// merged; `None` without one.
fn grant(
    ids: &[String],
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
) -> Option<(String, Vec<crate::pii::Category>)> {
    let mut scopes = Vec::new();
    let mut categories = Vec::new();
    for id in ids {
        if let Some(cs) = sharing.grants.get(id).and_then(|g| g.get(&partner.name)) {
            scopes.push(id.clone());
            for c in cs {
                if !categories.contains(c) {
                    categories.push(*c);
                }
            }
        }
    }
    (!categories.is_empty()).then(|| (scopes.join(", "), categories))
}

/// The rules after the TLP gate (or the addressed-object gate): jurisdiction, important
/// data, granular markings, personal data, validation of the copy.
fn after_gate(
    object: Value,
    cx: &EgressContext<'_>,
    trace: &mut Trace,
) -> (Decision, Option<Value>) {
    let (sharing, partner, policy) = (cx.sharing, cx.partner, cx.policy);
    // The object's id and what it refers to, for a grant scoped to one of them.
    let scope_refs: Vec<String> = if sharing.grants.is_empty() {
        Vec::new()
    } else {
        let mut r = references(&object);
        if let Some(id) = object.get("id").and_then(Value::as_str) {
            r.push(id.to_owned());
        }
        r
    };
    let cross_border = policy.cross_border(partner);
    trace.note("jurisdiction", || {
        let c = match &policy.config.jurisdiction {
            None => Clause::new("jurisdiction-none"),
            Some(node) if cross_border => Clause::new("jurisdiction-cross").with("node", node),
            Some(node) => Clause::new("jurisdiction-domestic").with("node", node),
        };
        vec![
            c.with("partner", &partner.name)
                .with("partner_jurisdiction", &partner.jurisdiction),
        ]
    });
    let important = important_marking(&object, policy);
    if let (Some(m), true) = (important, cross_border) {
        let node: Arg = match policy.config.jurisdiction.as_deref() {
            Some(j) => j.into(),
            None => Clause::new("node-without-jurisdiction").into(),
        };
        let reason = Clause::new("important-withheld")
            .with("marking", m)
            .with("node", node)
            .with("partner", &partner.name)
            .with("partner_jurisdiction", &partner.jurisdiction);
        trace.note("important-data", || {
            vec![
                Clause::new("important-cross").with("marking", m),
                Clause::withheld(reason.clone()),
            ]
        });
        return (
            Decision::Withheld {
                reason: reason.to_string(),
            },
            None,
        );
    }
    trace.note("important-data", || match important {
        None => vec![Clause::new("important-none")],
        Some(m) => vec![Clause::new("important-domestic").with("marking", m)],
    });
    // IEP 2.0 ATTRIBUTION must-not (§9): the producer is named neither by reference nor by
    // its identity object. Every identity class but `class` (a sector, a class of
    // entities) can be a producer.
    let attribution = policy
        .agreement(partner)
        .filter(|(_, a, _)| a.attribution == crate::agreement::Attribution::MustNot)
        .map(|(name, ..)| name.to_owned());
    if let Some(name) = &attribution
        && object.get("type").and_then(Value::as_str) == Some("identity")
        && object.get("identity_class").and_then(Value::as_str) != Some("class")
    {
        let reason = trace.withhold(
            "agreement",
            Clause::new("attribution-identity").with("agreement", name),
        );
        return (Decision::Withheld { reason }, None);
    }
    let mut copy = object;
    let mut attribution_removed: Vec<Clause> = match (&attribution, copy.as_object_mut()) {
        (Some(name), Some(m)) => m
            .remove("created_by_ref")
            .map(|_| Clause::new("attribution-created-by-removed").with("agreement", name))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    // The producer is named by other references to identities too (a sighting's
    // `where_sighted_refs`, a report's `object_refs`), also when the node does not hold the
    // identity (then no decision on it removes the reference): under must-not, references
    // to identities leave no copy; an object that needs one (a relationship's `source_ref`)
    // is withheld.
    if let (Some(name), Some(m)) = (&attribution, copy.as_object_mut()) {
        let is_identity = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("identity--"));
        if let Some((key, _)) = m
            .iter()
            .find(|(k, v)| k.ends_with("_ref") && is_identity(v))
        {
            let reason = trace.withhold(
                "agreement",
                Clause::new("attribution-identity-ref")
                    .with("agreement", name)
                    .with("property", key),
            );
            return (Decision::Withheld { reason }, None);
        }
        let mut emptied = Vec::new();
        for (k, v) in m.iter_mut() {
            if let Some(a) = v.as_array_mut().filter(|_| k.ends_with("_refs")) {
                let before = a.len();
                a.retain(|x| !is_identity(x));
                if a.len() != before {
                    emptied.push(k.clone());
                }
            }
        }
        // A list left empty goes (STIX 2.1 §3.3: no empty lists); a required one makes the
        // copy invalid, and the validation below withholds it.
        m.retain(|k, v| !(emptied.contains(k) && v.as_array().is_some_and(Vec::is_empty)));
        if !emptied.is_empty() {
            attribution_removed.push(
                Clause::new("attribution-refs-removed")
                    .with("properties", emptied.join(", "))
                    .with("agreement", name),
            );
        }
    }
    let mut changes = granular(
        &mut copy,
        cx.markings,
        sharing,
        partner,
        policy,
        cross_border,
    );
    trace.note("granular-markings", || {
        if changes.is_empty() {
            vec![Clause::new("granular-nothing")]
        } else {
            changes.clone()
        }
    });
    if !attribution_removed.is_empty() {
        trace.note("agreement", || attribution_removed.clone());
        // One change, as before: the attribution's removals together.
        changes.insert(
            0,
            Clause::new("attribution-removed").with("removed", attribution_removed),
        );
    }
    let granted = grant(&scope_refs, sharing, partner).map(|(scope, categories)| {
        trace.note("grant", || {
            vec![
                Clause::new("grant")
                    .with("scope", &scope)
                    .with("partner", &partner.name)
                    .with(
                        "categories",
                        categories
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
            ]
        });
        policy.with_grant(&partner.name, &categories, &scope)
    });
    let policy = granted.as_ref().unwrap_or(policy);
    let pii = match crate::actions::apply(&mut copy, policy, sharing, partner) {
        Ok(a) => a,
        Err(reason) => {
            let reason = trace.withhold("personal-data", reason);
            return (Decision::Withheld { reason }, None);
        }
    };
    trace.note("personal-data", || {
        let mut lines = pii.allowed.clone();
        if pii.changes.is_empty() {
            lines.push(crate::actions::describe_unchanged(policy, partner));
        } else {
            lines.extend(pii.changes.iter().cloned());
        }
        lines
    });
    if changes.is_empty() && pii.changes.is_empty() {
        trace.note("validation", || vec![Clause::new("sent-as-stored")]);
        return (Decision::Unchanged, Some(copy));
    }
    changes.extend(pii.changes);
    // The copy must be what this node itself would accept: STIX 2.1 valid and, for an
    // indicator, a pattern that parses with its checks (§9). A pseudonym in place of an IP
    // address inside `ISSUBSET '…/24'` is no CIDR block any more.
    let invalid = match concord_stix::validate_object(&copy) {
        Err(violations) => violations.first().map(|v| v.to_string()),
        Ok(_) => pattern_error(&copy),
    };
    if let Some(violation) = invalid {
        let reason = trace.withhold(
            "validation",
            Clause::new("copy-invalid")
                .with("violation", violation)
                .with("changes", changes),
        );
        return (Decision::Withheld { reason }, None);
    }
    trace.note("validation", || vec![Clause::new("copy-validates")]);
    let body = copy.to_string();
    (
        Decision::Rewritten {
            body,
            changes: changes.iter().map(ToString::to_string).collect(),
            renamed: pii.renamed,
        },
        Some(copy),
    )
}

/// The error of a STIX indicator's pattern (`pattern_type` `stix`), if it does not parse.
fn pattern_error(object: &Value) -> Option<String> {
    if object.get("type").and_then(Value::as_str) != Some("indicator")
        || object.get("pattern_type").and_then(Value::as_str) != Some("stix")
    {
        return None;
    }
    let pattern = object.get("pattern").and_then(Value::as_str)?;
    concord_pattern::parse(pattern).err().map(|e| {
        format!(
            "pattern: invalid STIX pattern: {} at byte {} (STIX 2.1 §9)",
            e.message, e.offset
        )
    })
}

/// Why [`may_see`] let `tlp` through.
fn why_allowed(tlp: Tlp, sharing: &CollectionSharing, partner: &PartnerProfile) -> Clause {
    match tlp {
        Tlp::Clear => Clause::new("tlp-clear-everyone"),
        Tlp::Green => match &sharing.groups {
            None => Clause::new("tlp-green-community"),
            Some(gs) => Clause::new("tlp-green-shared-groups").with(
                "groups",
                partner
                    .groups
                    .iter()
                    .filter(|g| gs.contains(g))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        },
        _ => Clause::new("tlp-named-recipient").with("recipients", sharing.recipients.join(", ")),
    }
}

/// The first of the policy's important-data markings in the object's `object_marking_refs`.
fn important_marking<'a>(object: &'a Value, policy: &Policy) -> Option<&'a str> {
    let refs = object.get("object_marking_refs")?.as_array()?;
    refs.iter()
        .filter_map(Value::as_str)
        .find(|r| policy.is_important_data_marking(r))
}

/// Removes from `object` the properties under granular markings (§7.2.3) stricter than the
/// partner may see, and those markings; one clause per removal.
fn granular(
    object: &mut Value,
    markings: &Markings,
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
    policy: &Policy,
    cross_border: bool,
) -> Vec<Clause> {
    let Some(Value::Array(granular)) = object.get("granular_markings") else {
        return Vec::new();
    };
    let mut hidden: Vec<(String, Arg)> = Vec::new();
    let mut kept_markings = Vec::new();
    for g in granular {
        let marking = g.get("marking_ref").and_then(Value::as_str).unwrap_or("");
        let why = match markings.class(marking) {
            Some(MarkingClass::Tlp(level)) if may_see(level, sharing, partner).is_err() => {
                Some(Arg::from(level.label()))
            }
            _ if cross_border && policy.is_important_data_marking(marking) => {
                Some(Clause::new("granular-important").into())
            }
            Some(MarkingClass::Tlp(_) | MarkingClass::Other) => None,
            _ if policy.is_important_data_marking(marking) => None,
            // Fail closed: what a marking the node cannot read asks is not known, so the
            // properties it covers do not go.
            Some(MarkingClass::Undecidable(_)) | None => Some(
                Clause::new("granular-unresolved")
                    .with("marking", marking)
                    .into(),
            ),
        };
        match why {
            Some(why) => {
                for s in g
                    .get("selectors")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = s.as_str() {
                        hidden.push((s.to_owned(), why.clone()));
                    }
                }
            }
            None => kept_markings.push(g.clone()),
        }
    }
    if hidden.is_empty() {
        return Vec::new();
    }
    // Deepest and last list elements first, so earlier removals do not shift later ones.
    let mut paths: Vec<(Vec<Step>, String, Arg)> = hidden
        .into_iter()
        .map(|(s, t)| (parse_selector(&s), s, t))
        .collect();
    paths.sort_by(|a, b| b.0.cmp(&a.0));
    let mut changes = Vec::new();
    for (steps, selector, why) in paths {
        if remove(object, &steps) {
            changes.push(
                Clause::new("granular-removed")
                    .with("selector", selector)
                    .with("why", why),
            );
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
        changes.push(Clause::new("granular-absent"));
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
                markings: &Markings::default(),
                door: "taxii-objects",
                now_ns: 0,
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
            addressed: Default::default(),
            grants: Default::default(),
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

    /// An addressed object (issue 18) goes to its named partners at any TLP but RED, even
    /// where the collection is AMBER and they are not its recipients, and to nobody else:
    /// not to the collection's recipients, not to a community that receives CLEAR.
    #[test]
    fn addressed_objects_go_to_their_named_partners_only() {
        let id = "campaign--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
        let mut sharing = CollectionSharing {
            groups: None,
            recipients: vec!["bsi".into()],
            default_tlp: Tlp::Amber,
            addressed: Default::default(),
            grants: Default::default(),
        };
        assert!(sharing.address(id, "cert-br"));
        assert!(!sharing.address(id, "cert-br"), "addressed once");
        let br = partner("cert-br", &[]);
        let bsi = partner("bsi", &[]);
        for markings in [&[][..], &[AMBER], &[STRICT], &[WHITE]] {
            let body = campaign(markings);
            assert!(sent(&egress(&body, &sharing, &br)), "{markings:?}");
            match egress(&body, &sharing, &bsi) {
                Decision::Withheld { reason } => {
                    assert!(reason.contains("addressed to cert-br only"), "{reason}")
                }
                d => panic!("{markings:?}: {d:?}"),
            }
        }
        assert!(!sent(&egress(&campaign(&[RED]), &sharing, &br)));
        // Other objects of the collection follow the TLP gate alone.
        let other = campaign(&[]).replace(id, "campaign--7ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d12");
        assert!(sent(&egress(&other, &sharing, &bsi)));
        assert!(!sent(&egress(&other, &sharing, &br)));
        // The setting keeps the addresses; an unreadable one names the key.
        let back = CollectionSharing::from_json(&sharing.to_json()).unwrap();
        assert_eq!(back, sharing);
        assert_eq!(
            CollectionSharing::from_json(r#"{"addressed": {"x--1": "bsi"}}"#).unwrap_err(),
            "addressed.x--1: not a list of partner names"
        );
        // An answer (its extension's `answer_to_ref` names an addressed request) is
        // addressed with it: it goes where the request went.
        let answer = serde_json::json!({
            "type": "task", "spec_version": "2.1",
            "id": "task--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d13",
            "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
            "name": "declined",
            "extensions": {"extension-definition--066c6efb-93cd-4e44-920f-9180cbf56905": {
                "extension_type": "property-extension", "answer_to_ref": id,
            }},
        })
        .to_string();
        assert!(sent(&egress(&answer, &sharing, &br)));
        assert!(!sent(&egress(&answer, &sharing, &bsi)));
        // Any other reference to an addressed object (an analyst's note about it, its
        // creator's identity as `created_by_ref`) addresses nothing: such an object follows
        // its own markings, here the collection's TLP gate (bsi yes, cert-br no).
        sharing.address("identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d14", "cert-br");
        let note = serde_json::json!({
            "type": "note", "spec_version": "2.1",
            "id": "note--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d13",
            "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
            "created_by_ref": "identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d14",
            "content": "internal: suspect the ministry's contractor", "object_refs": [id],
        })
        .to_string();
        assert!(!sent(&egress(&note, &sharing, &br)));
        assert!(sent(&egress(&note, &sharing, &bsi)));
        // explain names the rule.
        let policy = Policy::node_default(None, Default::default());
        let x = super::explain(
            &campaign(&[]),
            &EgressContext {
                sharing: &sharing,
                partner: &bsi,
                policy: &policy,
                markings: &Markings::default(),
                door: "taxii-objects",
                now_ns: 0,
            },
        );
        assert_eq!(x.steps[0].rule, "addressed");
        assert!(
            x.steps[0].detail.contains("not one of them"),
            "{:?}",
            x.steps
        );
    }

    /// A grant (issue 18) lets one partner receive a category as written in one object and
    /// in what refers to it; everyone else, and every other object, keeps the policy's
    /// tables (here: an IP address pseudonymised across a border).
    #[test]
    fn a_grant_is_scoped_to_its_object_and_partner() {
        let scope = "campaign--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11";
        let mut sharing = CollectionSharing {
            default_tlp: Tlp::Clear,
            ..CollectionSharing::default()
        };
        sharing
            .grants
            .entry(scope.into())
            .or_default()
            .insert("cert-br".into(), vec![crate::pii::Category::IpAddress]);
        let back = CollectionSharing::from_json(&sharing.to_json()).unwrap();
        assert_eq!(back, sharing);
        let with_ip = |id: &str, refs: &[&str]| {
            serde_json::json!({
                "type": "note", "spec_version": "2.1", "id": id,
                "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
                "content": "victim at 198.51.100.23", "object_refs": refs,
            })
            .to_string()
        };
        let br = partner("cert-br", &[]);
        let za = partner("cert-za", &[]);
        let raw = |d: Decision| matches!(d, Decision::Unchanged);
        let this = with_ip(scope, &["identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11"]);
        let referring = with_ip("note--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d15", &[scope]);
        let other = with_ip(
            "note--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d16",
            &["identity--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11"],
        );
        assert!(raw(egress(&this, &sharing, &br)));
        assert!(raw(egress(&referring, &sharing, &br)));
        assert!(!raw(egress(&other, &sharing, &br)));
        assert!(!raw(egress(&this, &sharing, &za)));
        assert!(
            CollectionSharing::from_json(r#"{"grants": {"x--1": {"p": ["ipaddress"]}}}"#)
                .unwrap_err()
                .starts_with("grants: ")
        );
    }

    const IMPORTANT: &str = "marking-definition--0b7c1a52-3f0e-4c61-9d8f-6a2b1c3d4e5f";

    fn cn_policy() -> Policy {
        Policy::new(
            crate::actions::PolicyConfig {
                jurisdiction: Some("CN".into()),
                important_data_markings: vec![IMPORTANT.into()],
                ..Default::default()
            },
            crate::actions::PseudonymKeys {
                node_secret: Some(vec![1; 32]),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn important_data_never_crosses_a_border() {
        let policy = cn_policy();
        let sharing = CollectionSharing::default();
        let domestic = PartnerProfile {
            jurisdiction: "CN".into(),
            ..partner("cncert", &[])
        };
        let abroad = partner("bsi", &[]);
        let markings = Markings::default();
        let cx = |p| EgressContext {
            sharing: &sharing,
            partner: p,
            policy: &policy,
            markings: &markings,
            door: "taxii-objects",
            now_ns: 0,
        };
        // Marked as a whole: withheld abroad, sent at home.
        let body = campaign(&[GREEN, IMPORTANT]);
        let d = super::egress(&body, &cx(&abroad));
        let Decision::Withheld { reason } = &d else {
            panic!("{d:?}")
        };
        assert!(
            reason.contains("important data") && reason.contains(IMPORTANT),
            "{reason}"
        );
        assert_eq!(super::egress(&body, &cx(&domestic)), Decision::Unchanged);
        // A granular marking: the property is removed abroad, the copy still validates.
        let mut o: Value = serde_json::from_str(&campaign(&[GREEN])).unwrap();
        o["granular_markings"] =
            serde_json::json!([{"marking_ref": IMPORTANT, "selectors": ["description"]}]);
        let body = o.to_string();
        let Decision::Rewritten {
            body: copy,
            changes,
            ..
        } = super::egress(&body, &cx(&abroad))
        else {
            panic!("not rewritten")
        };
        assert_eq!(changes, ["removed description (granular important data)"]);
        let copy: Value = serde_json::from_str(&copy).unwrap();
        assert!(copy.get("description").is_none() && copy.get("granular_markings").is_none());
        assert_eq!(super::egress(&body, &cx(&domestic)), Decision::Unchanged);
        // A policy naming something else than a marking definition is refused.
        let bad = Policy::new(
            crate::actions::PolicyConfig {
                important_data_markings: vec![
                    "indicator--0b7c1a52-3f0e-4c61-9d8f-6a2b1c3d4e5f".into(),
                ],
                ..Default::default()
            },
            Default::default(),
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("important_data_markings")
        );
    }

    #[test]
    fn explain_gives_the_decision_of_egress_and_every_rule() {
        let policy = cn_policy();
        let sharing = CollectionSharing::default();
        let bsi = partner("bsi", &[]);
        let cx = EgressContext {
            sharing: &sharing,
            partner: &bsi,
            policy: &policy,
            markings: &Markings::default(),
            door: "taxii-objects",
            now_ns: 0,
        };
        let mut o: Value = serde_json::from_str(&campaign(&[GREEN])).unwrap();
        o["description"] = "write to victim@example.org".into();
        let body = o.to_string();
        let e = super::explain(&body, &cx);
        assert_eq!(e.decision, super::egress(&body, &cx));
        let rules: Vec<&str> = e.steps.iter().map(|s| s.rule).collect();
        assert_eq!(
            rules,
            [
                "tlp",
                "jurisdiction",
                "important-data",
                "granular-markings",
                "personal-data",
                "validation"
            ]
        );
        assert!(
            e.steps[0].detail.starts_with("TLP:GREEN"),
            "{:?}",
            e.steps[0]
        );
        assert!(e.steps[1].detail.contains("across a border"));
        assert!(
            e.steps[4]
                .detail
                .contains("pseudonymised email at description (rule cross_border)"),
            "{:?}",
            e.steps[4]
        );
        // A withheld object: the rule that withheld it is the last step.
        let e = super::explain(&campaign(&[RED]), &cx);
        assert!(matches!(e.decision, Decision::Withheld { .. }));
        assert_eq!(e.steps.len(), 1);
        assert!(e.steps[0].detail.contains("never leaves the node"));
    }

    /// An IP range in an indicator pattern is attackers' infrastructure: under the default
    /// policy it goes as written across a border (and `explain` names the rule); under
    /// `infrastructure_indicators = "protect"` its pseudonym is a network of the same prefix
    /// in 240.0.0.0/4, so the copy still parses and validates.
    #[test]
    fn infrastructure_cidr_in_a_pattern_goes_or_stays_a_valid_block() {
        let policy = cn_policy();
        let sharing = CollectionSharing::default();
        let bsi = partner("bsi", &[]);
        let cx = EgressContext {
            sharing: &sharing,
            partner: &bsi,
            policy: &policy,
            markings: &Markings::default(),
            door: "taxii-objects",
            now_ns: 0,
        };
        let indicator = serde_json::json!({
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
            "created": "2016-01-01T00:00:00.000Z", "modified": "2016-01-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value ISSUBSET '81.2.69.0/24']", "pattern_type": "stix",
            "valid_from": "2016-01-01T00:00:00Z", "object_marking_refs": [GREEN],
        });
        let e = super::explain(&indicator.to_string(), &cx);
        assert_eq!(e.decision, Decision::Unchanged);
        assert!(
            e.steps.iter().any(|s| s.rule == "personal-data"
                && s.detail.contains("infrastructure_indicators = allow")),
            "{:?}",
            e.steps
        );
        let mut strict = policy.config.clone();
        strict.infrastructure_indicators = crate::actions::InfrastructureIndicators::Protect;
        let strict = Policy::new(strict, policy.keys.clone()).unwrap();
        let cx = EgressContext {
            policy: &strict,
            ..cx
        };
        let Decision::Rewritten { body, .. } = super::egress(&indicator.to_string(), &cx) else {
            panic!("rewritten expected")
        };
        let copy: Value = serde_json::from_str(&body).unwrap();
        let pattern = copy["pattern"].as_str().unwrap();
        let block = pattern
            .split('\'')
            .nth(1)
            .and_then(|b| b.strip_suffix("/24"))
            .unwrap_or_else(|| panic!("{pattern}"));
        let net: std::net::Ipv4Addr = block.parse().unwrap();
        assert_eq!(net.octets()[0] & 0xF0, 240, "{pattern}");
        assert_eq!(net.octets()[3], 0, "host bits zero: {pattern}");
        // A placeholder where the pattern needs a block: the copy would not parse, so the
        // indicator is withheld rather than sent invalid (fail closed).
        let mut redact = strict.config.clone();
        redact.cross_border = crate::actions::ActionTable::all(crate::actions::Action::Redact);
        let redact = Policy::new(redact, policy.keys.clone()).unwrap();
        let Decision::Withheld { reason } = super::egress(
            &indicator.to_string(),
            &EgressContext {
                policy: &redact,
                ..cx
            },
        ) else {
            panic!("withheld expected")
        };
        assert!(
            reason.contains("ISSUBSET") && reason.contains("redacted"),
            "{reason}"
        );
        // Equality with an address: the pseudonym is an address too.
        let mut eq = indicator.clone();
        eq["pattern"] = "[ipv4-addr:value = '81.2.69.160']".into();
        let Decision::Rewritten { body, .. } = super::egress(&eq.to_string(), &cx) else {
            panic!("rewritten expected")
        };
        let copy: Value = serde_json::from_str(&body).unwrap();
        let pattern = copy["pattern"].as_str().unwrap();
        let addr: std::net::Ipv4Addr = pattern.split('\'').nth(1).unwrap().parse().unwrap();
        assert_eq!(addr.octets()[0] & 0xF0, 240, "{pattern}");
    }

    #[test]
    fn sharing_json_round_trips() {
        let s = CollectionSharing {
            groups: Some(vec!["eu".into()]),
            recipients: vec!["bsi".into()],
            default_tlp: Tlp::AmberStrict,
            addressed: Default::default(),
            grants: Default::default(),
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
