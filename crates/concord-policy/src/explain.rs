//! The words of an explanation as data (issue 25): each statement of `policy explain` and of
//! the web UI's "as partner" view is a [`Clause`], the id of a rule's clause and its
//! parameters, never a sentence. [`Clause`]'s `Display` writes it in English (the CLI, the
//! audit's reasons, [`crate::egress::Decision::Withheld`]); the web UI writes it in each of
//! its languages from its message files (`explain-{id}`, the parameters as Fluent
//! arguments), so a Chinese or Arabic reader never meets an English sentence.
//!
//! The parameters are the data the rule looked at (partner and agreement names, ids,
//! TLP and PAP labels, property paths, jurisdictions) or clauses themselves (why a reference
//! was removed, where a rule came from). [`ENGLISH`] holds every clause id with its English
//! template: the list a message file must cover.

use std::fmt::{self, Display};

/// One statement of an explanation: the id of a policy's clause and its parameters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Clause {
    /// The clause, one of [`ENGLISH`]'s ids (`tlp-not-recipient`, `agreement-ended`, …).
    pub id: &'static str,
    /// Its parameters by name, in the order the template names them.
    pub args: Vec<(&'static str, Arg)>,
}

/// A parameter of a [`Clause`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Arg {
    /// A value from the data: a name, an id, a label, a path. Shown as written (in right-to-
    /// left text, isolated: it is a left-to-right token).
    Text(String),
    /// A clause inside a clause (a reason, a rule, a place).
    Clause(Box<Clause>),
    /// Several clauses, written one after the other (`; ` in English).
    List(Vec<Clause>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg::Text(s.clone())
    }
}

impl From<Clause> for Arg {
    fn from(c: Clause) -> Arg {
        Arg::Clause(Box::new(c))
    }
}

impl From<Vec<Clause>> for Arg {
    fn from(c: Vec<Clause>) -> Arg {
        Arg::List(c)
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Arg {
        Arg::Text(n.to_string())
    }
}

impl Clause {
    /// About what the clause holds on the heap, in bytes: its parameters' slots and texts,
    /// and the clauses inside (for memory limits that count kept explanations).
    pub fn heap_bytes(&self) -> usize {
        self.args
            .iter()
            .map(|(_, a)| {
                std::mem::size_of::<(&str, Arg)>()
                    + match a {
                        Arg::Text(t) => t.len(),
                        Arg::Clause(c) => std::mem::size_of::<Clause>() + c.heap_bytes(),
                        Arg::List(cs) => cs
                            .iter()
                            .map(|c| std::mem::size_of::<Clause>() + c.heap_bytes())
                            .sum(),
                    }
            })
            .sum()
    }

    /// A clause without parameters. `id` must be one of [`ENGLISH`]'s.
    pub fn new(id: &'static str) -> Clause {
        Clause {
            id,
            args: Vec::new(),
        }
    }

    /// With one more parameter.
    pub fn with(mut self, name: &'static str, value: impl Into<Arg>) -> Clause {
        self.args.push((name, value.into()));
        self
    }

    /// The parameter `name`.
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
    }

    /// `withheld: REASON`.
    pub fn withheld(reason: Clause) -> Clause {
        Clause::new("withheld").with("reason", reason)
    }

    /// The reason of a `withheld` clause; any other clause is its own reason.
    pub fn reason(&self) -> &Clause {
        match (self.id, self.arg("reason")) {
            ("withheld", Some(Arg::Clause(c))) => c,
            _ => self,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Text(t) => f.write_str(t),
            Arg::Clause(c) => c.fmt(f),
            Arg::List(cs) => write_list(f, cs),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, cs: &[Clause]) -> fmt::Result {
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        c.fmt(f)?;
    }
    Ok(())
}

/// Clauses in English, `; ` between them.
pub fn english(clauses: &[Clause]) -> String {
    struct L<'a>(&'a [Clause]);
    impl fmt::Display for L<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_list(f, self.0)
        }
    }
    L(clauses).to_string()
}

impl fmt::Display for Clause {
    /// In English: the template of [`ENGLISH`] with each `{name}` replaced by the parameter
    /// (`?` for one not given; the id itself for a clause not in the table).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((_, template)) = ENGLISH.iter().find(|(id, _)| *id == self.id) else {
            return f.write_str(self.id);
        };
        let mut rest = *template;
        while let Some(open) = rest.find('{') {
            f.write_str(&rest[..open])?;
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let name = &rest[open + 1..open + close];
            match self.arg(name) {
                Some(a) => a.fmt(f)?,
                None => f.write_str("?")?,
            }
            rest = &rest[open + close + 1..];
        }
        f.write_str(rest)
    }
}

/// Every clause id with its English template (`{name}`: a parameter). The web UI's message
/// files hold `explain-{id}` for each, in every language; a test there walks this list.
pub const ENGLISH: &[(&str, &str)] = &[
    ("withheld", "withheld: {reason}"),
    // The collection's read permission (concord-server).
    (
        "permission-may-read",
        "{partner} may read collection {collection}",
    ),
    (
        "permission-may-not-read",
        "{partner} may not read collection {collection} (partner add --read): nothing leaves by this collection",
    ),
    ("permission-none", "no read permission"),
    // The stored object.
    (
        "stored-unparsable",
        "the stored object cannot be decided: {error}",
    ),
    ("stored-missing", "the stored object is missing"),
    ("no-copy", "no copy was made"),
    // TLP.
    (
        "tlp-definition-public",
        "a TLP marking definition: public, always sent",
    ),
    ("tlp-level", "{tlp} ({whence})"),
    (
        "tlp-from-markings",
        "the strictest TLP of object_marking_refs",
    ),
    (
        "tlp-from-default",
        "no TLP marking: the collection's default_tlp",
    ),
    ("tlp-may-receive", "{partner} may receive it: {why}"),
    (
        "tlp-clear-everyone",
        "TLP:CLEAR goes to every partner with read access",
    ),
    (
        "tlp-green-community",
        "the collection is shared with the whole community",
    ),
    (
        "tlp-green-shared-groups",
        "it shares the group(s) {groups} with the collection",
    ),
    (
        "tlp-named-recipient",
        "a named recipient of the collection ({recipients})",
    ),
    (
        "tlp-green-not-in-groups",
        "TLP:GREEN is shared with the groups {groups}, and {partner} belongs to none of them",
    ),
    (
        "tlp-not-recipient",
        "{tlp} goes only to the collection's named recipients, and {partner} is not one",
    ),
    ("tlp-red-never", "TLP:RED never leaves the node"),
    ("markings-not-list", "object_marking_refs is not a list"),
    (
        "markings-non-string",
        "object_marking_refs holds a non-string {value}",
    ),
    ("marking-undecidable", "{detail}"),
    (
        "marking-unknown",
        "object_marking_refs: {marking} is no marking definition this collection holds, so what it asks cannot be decided",
    ),
    // Addressed objects (requests for assistance and their answers).
    ("addressed-to", "addressed to {names}"),
    ("addressed-via", "refers to {request}, addressed to {names}"),
    (
        "addressed-named",
        "{partner} is a named recipient of this object",
    ),
    (
        "addressed-none-in-common",
        "its addressed references name no partner in common, so {partner} may not receive it",
    ),
    (
        "addressed-others",
        "addressed to {names} only, and {partner} is not one of them",
    ),
    // Agreements (IEP 2.0, PAP).
    (
        "agreement-ended",
        "agreement {agreement} with {partner} ended at {end} (IEP 2.0 end_date): nothing flows after it",
    ),
    (
        "agreement-not-yet",
        "agreement {agreement} with {partner} takes effect at {start} (IEP 2.0 start_date): nothing flows before it",
    ),
    (
        "agreement-received-ended",
        "the agreement {partner}'s node holds with this node ({version}) ended at {end} (IEP 2.0 end_date): nothing flows after it",
    ),
    ("agreement-version-none", "none"),
    ("agreement-door", "agreement {agreement}: {reason}"),
    (
        "iep-automated-door",
        "IEP 2.0 permitted_actions {actions}: the automated door {door} carries nothing (a machine would act on it)",
    ),
    (
        "iep-feed-door",
        "IEP 2.0 permitted_actions {actions}: the feed {door} carries nothing (sensor rules act visibly outside the recipient's networks)",
    ),
    (
        "agreement-applies",
        "agreement {agreement} applies to {partner}",
    ),
    (
        "agreement-until",
        "in effect until {end} (IEP 2.0 end_date)",
    ),
    ("agreement-permitted-actions", "permitted_actions {actions}"),
    (
        "agreement-transfer",
        "transfer mechanism {mechanism}, legal basis: {basis}",
    ),
    ("no-mechanism-code", "no mechanism code"),
    ("not-stated", "not stated"),
    (
        "pap-too-strict",
        "{pap} is stricter than {limit}, the strictest PAP the automated door {door} carries to {partner} under {whose}",
    ),
    ("pap-of-agreement", "agreement {agreement}'s pap_automated"),
    ("pap-default", "the default (no agreement)"),
    (
        "pap-within",
        "{pap} is within {limit}, the strictest PAP the automated door {door} carries",
    ),
    (
        "pap-person",
        "{pap}: {door} is read by a person, not an automated door",
    ),
    (
        "attribution-created-by-removed",
        "removed created_by_ref (agreement {agreement}: IEP 2.0 attribution must-not)",
    ),
    (
        "attribution-identity",
        "agreement {agreement}: IEP 2.0 attribution must-not: an identity that can name the producer does not leave",
    ),
    (
        "attribution-identity-ref",
        "agreement {agreement}: IEP 2.0 attribution must-not: its {property} names an identity",
    ),
    ("attribution-removed", "{removed}"),
    (
        "attribution-refs-removed",
        "removed references to identities from {properties} (agreement {agreement}: IEP 2.0 attribution must-not)",
    ),
    // Jurisdiction and important data.
    (
        "jurisdiction-none",
        "the node has no jurisdiction: {partner} ({partner_jurisdiction}) counts as across a border",
    ),
    (
        "jurisdiction-cross",
        "node {node}, {partner} {partner_jurisdiction}: across a border",
    ),
    (
        "jurisdiction-domestic",
        "node {node}, {partner} {partner_jurisdiction}: domestic",
    ),
    ("important-none", "no important-data marking"),
    (
        "important-cross",
        "marked as important data ({marking}): never crosses a border",
    ),
    (
        "important-domestic",
        "marked as important data ({marking}); the partner is domestic, so it may go",
    ),
    (
        "important-withheld",
        "marked as important data ({marking}), which never crosses a border (node {node}, {partner} {partner_jurisdiction})",
    ),
    ("node-without-jurisdiction", "without jurisdiction"),
    // Granular markings (STIX 2.1 §7.2.3).
    ("granular-nothing", "nothing removed"),
    ("granular-removed", "removed {selector} (granular {why})"),
    ("granular-important", "important data"),
    ("granular-unresolved", "unresolved {marking}"),
    (
        "granular-absent",
        "removed granular markings of absent properties",
    ),
    // Grants and personal data.
    (
        "grant",
        "granted on {scope} for {partner}: {categories} as written",
    ),
    ("pii-allowed", "allowed {category} at {place} (rule {rule})"),
    (
        "pii-pseudonymised",
        "pseudonymised {category} at {place} (rule {rule})",
    ),
    (
        "pii-redacted",
        "redacted {category} at {place} (rule {rule})",
    ),
    (
        "pii-redacted-no-key",
        "redacted (no pseudonym key) {category} at {place} (rule {rule})",
    ),
    ("pii-drop", "{category} at {place} (rule {rule}: drop)"),
    (
        "pii-pattern-unparsable",
        "pattern at {path} does not parse: {error}",
    ),
    ("pii-id-recomputed", "id {old} recomputed as {new}"),
    (
        "pii-all-allowed",
        "every category of personal data is allowed for {partner} (rule {rules}): not scanned",
    ),
    (
        "pii-none-found",
        "no personal data found that the policy does not allow",
    ),
    ("place-literal", "{path} literal {literal}"),
    ("place-key", "{path} (key)"),
    ("rule-grant", "grant on {scope} for {partner}"),
    ("rule-partner", "partner {partner}"),
    ("rule-pair", "pair {from}->{to}"),
    // The copy.
    ("sent-as-stored", "sent as stored, byte for byte"),
    ("copy-validates", "the rewritten copy validates (STIX 2.1)"),
    (
        "copy-invalid",
        "the partner's copy would be invalid ({violation}) after: {changes}",
    ),
    // References and identifiers (the egress door, concord-egress).
    (
        "ref-valid-without",
        "valid without any of its references: received whatever their fates",
    ),
    (
        "ref-withheld",
        "refers to objects this partner does not receive ({removed}), and without the reference it is not valid STIX: {violation}",
    ),
    (
        "ref-removed",
        "{count} reference(s) removed ({removed}), {renamed} following renamed objects",
    ),
    ("ref-removed-item", "{property}: {why}"),
    (
        "ref-all-received",
        "every object referred to is received as referred to",
    ),
    (
        "ref-too-deep",
        "{id} is too far along a chain of references to be decided",
    ),
    ("ref-target-withheld", "{id} is withheld"),
    (
        "ref-cycle",
        "{id}: a cycle of references that cannot be decided",
    ),
    (
        "ref-sco-not-held",
        "{id}: an SCO this collection does not hold (its id derives from its value)",
    ),
    (
        "ref-other-collection",
        "{id} is held in another collection, not shared by this one",
    ),
    (
        "sco-no-key",
        "a rewritten SCO needs a keyed id, and the node has no key",
    ),
    (
        "keyed-id",
        "the copy differs from the stored SCO: sent under the keyed id {id}",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_fills_the_template_and_nests() {
        let c = Clause::withheld(
            Clause::new("tlp-not-recipient")
                .with("tlp", "TLP:AMBER")
                .with("partner", "bsi"),
        );
        assert_eq!(
            c.to_string(),
            "withheld: TLP:AMBER goes only to the collection's named recipients, and bsi is not one"
        );
        assert_eq!(c.reason().id, "tlp-not-recipient");
        let list = Clause::new("ref-removed")
            .with("count", 2usize)
            .with(
                "removed",
                vec![
                    Clause::new("ref-removed-item")
                        .with("property", "object_refs")
                        .with("why", Clause::new("ref-target-withheld").with("id", "x--1")),
                    Clause::new("ref-removed-item")
                        .with("property", "created_by_ref")
                        .with("why", Clause::new("ref-target-withheld").with("id", "x--2")),
                ],
            )
            .with("renamed", 0usize);
        assert_eq!(
            list.to_string(),
            "2 reference(s) removed (object_refs: x--1 is withheld; created_by_ref: x--2 is withheld), 0 following renamed objects"
        );
    }

    #[test]
    fn ids_are_unique_and_message_keys() {
        let mut seen = std::collections::HashSet::new();
        for (id, template) in ENGLISH {
            assert!(seen.insert(id), "{id} twice");
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id}: a Fluent identifier after `explain-`"
            );
            assert_eq!(
                template.matches('{').count(),
                template.matches('}').count(),
                "{id}"
            );
        }
    }
}
