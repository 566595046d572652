//! Actions on personal data (issue 5, items 4–5): what the egress function does with each
//! finding of the [`crate::pii`] detectors, per data category, per partner and per
//! jurisdiction pair.
//!
//! | action | effect on the partner's copy |
//! |---|---|
//! | `allow` | the value leaves as written |
//! | `redact` | the detected text becomes a typed placeholder, `[REDACTED:email]` |
//! | `pseudonymise` | the detected text becomes a pseudonym of its type ([`pseudonym`]: an IPv4 address in 240.0.0.0/4, an IPv6 address in 2001:db8::/32, `pseudo-<base32>@pseudonym.invalid`, else `pseudo-phone-<base32>`), chosen by HMAC-SHA-256 under the partner's sharing-group key over the category and the normalised value: every partner of the group sees the same pseudonym for the same value and can correlate, different groups see unrelated pseudonyms, nobody without the key can test a guess |
//! | `drop` | the whole object is withheld |
//!
//! Which action applies to a partner and a category, first match wins: the partner's own
//! table (`partners.NAME`), the jurisdiction pair (node → partner, `pairs`), then `domestic`
//! (partner in the node's jurisdiction) or `cross_border`. In each table a category's entry
//! wins over the table's `default`.
//!
//! Before every table, [`PolicyConfig::infrastructure_indicators`] (default `allow`) lets
//! the IP addresses of indicator patterns and infrastructure SCOs through: they are
//! attackers' machines, and a pseudonym there would never match ([`InfrastructureIndicators`]).
//!
//! **Defaults, privacy first:** personal data is pseudonymised for partners in another
//! jurisdiction than the node's and allowed within it. A node without a configured
//! jurisdiction treats *every* partner as across a border (the reading that can only err on
//! the side of the data subject). A pseudonymisation without a key (no group key and no node
//! secret to derive one from) redacts instead: an unkeyed hash of an e-mail address is no
//! pseudonym, anyone can test a guess.

use crate::explain::{Arg, Clause};
use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::egress::{CollectionSharing, PartnerProfile};
use crate::pii::{Category, ConfigError, DetectorConfig, Detectors, ObjectFinding};

/// What happens to one piece of personal data on its way to a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leaves as written.
    Allow,
    /// Replaced by a keyed pseudonym.
    #[serde(alias = "pseudonymize")]
    Pseudonymise,
    /// Replaced by a typed placeholder.
    Redact,
    /// The whole object is withheld.
    Drop,
}

impl Action {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Pseudonymise => "pseudonymise",
            Action::Redact => "redact",
            Action::Drop => "drop",
        }
    }
}

/// Actions per category, with a default for the categories not named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionTable {
    /// For every category not in `categories`; `None`: this table does not decide.
    pub default: Option<Action>,
    /// Per category.
    pub categories: BTreeMap<Category, Action>,
}

impl ActionTable {
    /// A table that applies `action` to every category.
    pub fn all(action: Action) -> ActionTable {
        ActionTable {
            default: Some(action),
            categories: BTreeMap::new(),
        }
    }

    fn get(&self, category: Category) -> Option<Action> {
        self.categories.get(&category).copied().or(self.default)
    }
}

/// The actions between the node's jurisdiction and a partner's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairRule {
    /// The node's jurisdiction (ISO 3166-1 alpha-2), or `*` for any.
    pub from: String,
    /// The partner's jurisdiction, or `*` for any.
    pub to: String,
    /// The actions.
    pub actions: ActionTable,
}

/// Whether IP addresses that are indicators of attacker infrastructure are exempt from the
/// actions on personal data (issue 15 item 7).
///
/// An IP address can be personal data (a subscriber's home address), and the tables of
/// [`PolicyConfig`] protect it everywhere by default. But the IP address a STIX `indicator`
/// pattern compares an `ipv4-addr`, `ipv6-addr`, `domain-name`, `url` or `network-traffic`
/// path with, and the `value` of such an SCO, are what the exchange exists for: a pseudonym
/// there never matches, and a CIDR block stops being one. Processing them to detect and
/// block attacks is a legitimate interest that data-protection law names (GDPR recital 49:
/// "stopping … attacks and damage to computer and electronic communication systems").
/// Prose (`description`, `name`, notes, opinions, reports), identities, `email-addr` and
/// `user-account` objects and sightings' details stay protected in either case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfrastructureIndicators {
    /// IP addresses in indicator patterns and infrastructure SCOs leave as written, to
    /// every partner (the default).
    #[default]
    Allow,
    /// They are personal data like any other: the category tables decide.
    Protect,
}

/// The SCO types whose `value` names network infrastructure, and the object-path types an
/// indicator pattern compares with infrastructure (STIX 2.1 §6).
const INFRASTRUCTURE_TYPES: [&str; 5] = [
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "network-traffic",
];

/// The policy as configuration: plain data, deserialisable from one TOML section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The version of this policy, recorded with each transfer.
    pub policy_version: String,
    /// The node's jurisdiction (ISO 3166-1 alpha-2); `None`: every partner is across a border.
    pub jurisdiction: Option<String>,
    /// The detectors. With a jurisdiction and no phone regions, the jurisdiction is the
    /// phone region.
    pub detectors: DetectorConfig,
    /// For partners in the node's jurisdiction (default: allow).
    pub domestic: ActionTable,
    /// For partners in another jurisdiction (default: pseudonymise).
    pub cross_border: ActionTable,
    /// Per jurisdiction pair, before `domestic`/`cross_border`; the first matching pair wins.
    pub pairs: Vec<PairRule>,
    /// Per partner name, before everything else (except `infrastructure_indicators`).
    pub partners: BTreeMap<String, ActionTable>,
    /// IP addresses in indicator patterns and in infrastructure SCOs (`ipv4-addr`,
    /// `ipv6-addr`, `domain-name`, `url`, `network-traffic`): `allow` (default: they are
    /// attackers' infrastructure, exchanged to every partner) or `protect` (the tables
    /// decide, as for any personal data). Checked before every table.
    pub infrastructure_indicators: InfrastructureIndicators,
    /// Marking definitions (ids) that mark "important data": an object carrying one in
    /// `object_marking_refs` never goes to a partner across a border, and properties under
    /// one as a granular marking are removed from such a partner's copy. The node's own
    /// important-data marking is added by the node (`concord policy marking` prints it).
    pub important_data_markings: Vec<String>,
    /// Sharing agreements by name (`[policy.agreements.NAME]`, issue 19): IEP 2.0 clauses,
    /// the PAP gate of automated doors, the legal basis of a cross-border transfer
    /// ([`crate::agreement`]). Part of [`PolicyConfig::version`]: a change of agreement is a
    /// new policy version. Left out of the canonical JSON when empty, so the versions of
    /// policies without agreements stay what they were.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub agreements: BTreeMap<String, crate::agreement::Agreement>,
}

/// The version string of the built-in defaults.
/// `builtin-2`: IP addresses of infrastructure indicators allowed by default (issue 15).
pub const DEFAULT_POLICY_VERSION: &str = "builtin-2";

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            policy_version: DEFAULT_POLICY_VERSION.to_owned(),
            jurisdiction: None,
            detectors: DetectorConfig::default(),
            domestic: ActionTable::all(Action::Allow),
            cross_border: ActionTable::all(Action::Pseudonymise),
            pairs: Vec::new(),
            partners: BTreeMap::new(),
            infrastructure_indicators: InfrastructureIndicators::Allow,
            important_data_markings: Vec::new(),
            agreements: BTreeMap::new(),
        }
    }
}

impl PolicyConfig {
    /// The version recorded with each transfer: `policy_version@DIGEST`, where DIGEST is the
    /// first 12 hex digits of the SHA-256 of the configuration's canonical JSON (field order
    /// fixed, maps sorted). Two configurations with the same label but different rules get
    /// different versions, so an audit entry always names the rules that applied.
    pub fn version(&self) -> String {
        let json = serde_json::to_string(self).expect("a policy configuration serialises");
        let digest = <Sha256 as sha2::Digest>::digest(json.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}@{hex}", self.policy_version)
    }
}

/// The pseudonymisation keys: per sharing group, configured or derived from a node secret.
#[derive(Clone, Default)]
pub struct PseudonymKeys {
    /// Configured keys, by sharing-group name.
    pub groups: BTreeMap<String, Vec<u8>>,
    /// The node secret from which the key of a group without a configured key is derived:
    /// `HMAC-SHA-256(secret, "concord/pseudonym-group-key/v1\0" ‖ group)`.
    pub node_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for PseudonymKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("PseudonymKeys")
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .field("node_secret", &self.node_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

impl PseudonymKeys {
    /// The key of `group`: configured, else derived from the node secret, else none.
    pub fn key(&self, group: &str) -> Option<Vec<u8>> {
        if let Some(k) = self.groups.get(group) {
            return Some(k.clone());
        }
        let secret = self.node_secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"concord/pseudonym-group-key/v1\0");
        mac.update(group.as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }
}

/// A compiled policy: configuration, detectors and keys.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The configuration it was built from.
    pub config: PolicyConfig,
    /// The pseudonymisation keys.
    pub keys: PseudonymKeys,
    /// [`PolicyConfig::version`] of `config`, computed once.
    pub version: String,
    detectors: Detectors,
    /// The grant this copy of the policy applies ([`Policy::with_grant`]): its scope and
    /// categories, for explanations.
    granted: Option<(String, Vec<Category>)>,
    /// The period of each agreement, read once.
    periods: BTreeMap<String, crate::agreement::Period>,
}

impl Policy {
    /// Compiles a configuration. Errors: the detector configuration is refused.
    pub fn new(mut config: PolicyConfig, keys: PseudonymKeys) -> Result<Policy, ConfigError> {
        if let Some(j) = &mut config.jurisdiction {
            *j = j.trim().to_ascii_uppercase();
        }
        let mut detectors = config.detectors.clone();
        if detectors.phone_regions.is_empty()
            && let Some(j) = &config.jurisdiction
        {
            detectors.phone_regions.push(j.clone());
        }
        let detectors = match Detectors::new(&detectors) {
            // A jurisdiction that is no phone region (e.g. `EU`): international numbers only.
            Err(ConfigError::UnknownRegion(_)) if config.detectors.phone_regions.is_empty() => {
                Detectors::new(&config.detectors)?
            }
            other => other?,
        };
        for m in &mut config.important_data_markings {
            *m = m.trim().to_owned();
            if concord_stix::id::id_type(m) != Ok("marking-definition") {
                return Err(ConfigError::Invalid(format!(
                    "important_data_markings: {m:?} is not a marking-definition id"
                )));
            }
        }
        let periods = crate::agreement::validate(&config.agreements)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(Policy {
            version: config.version(),
            config,
            keys,
            detectors,
            granted: None,
            periods,
        })
    }

    /// The agreement that applies to `partner` ([`crate::agreement::applicable`]): its name,
    /// its clauses and its period.
    pub fn agreement(
        &self,
        partner: &PartnerProfile,
    ) -> Option<(&str, &crate::agreement::Agreement, crate::agreement::Period)> {
        let (name, a) = crate::agreement::applicable(&self.config.agreements, partner)?;
        let period = self.periods.get(name).copied().unwrap_or_default();
        Some((name, a, period))
    }

    /// Whether `marking_ref` marks important data under this policy.
    pub fn is_important_data_marking(&self, marking_ref: &str) -> bool {
        self.config
            .important_data_markings
            .iter()
            .any(|m| m == marking_ref)
    }

    /// The built-in defaults (privacy first, see the module documentation) for a node in
    /// `jurisdiction` (none: every partner is across a border).
    pub fn node_default(jurisdiction: Option<&str>, keys: PseudonymKeys) -> Policy {
        let config = PolicyConfig {
            jurisdiction: jurisdiction.map(str::to_owned),
            ..PolicyConfig::default()
        };
        Policy::new(config, keys).expect("the default detector configuration is valid")
    }

    /// The detectors.
    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }

    /// This policy with `categories` allowed for `partner` (an operator's grant scoped to
    /// `scope`, [`crate::egress::CollectionSharing::grants`]): the partner's own table
    /// decides them first, and explanations name the grant.
    pub fn with_grant(&self, partner: &str, categories: &[Category], scope: &str) -> Policy {
        let mut p = self.clone();
        let table = p.config.partners.entry(partner.to_owned()).or_default();
        for c in categories {
            table.categories.insert(*c, Action::Allow);
        }
        p.granted = Some((scope.to_owned(), categories.to_vec()));
        p
    }

    /// Whether `partner` is across a border from the node.
    pub fn cross_border(&self, partner: &PartnerProfile) -> bool {
        match &self.config.jurisdiction {
            None => true,
            Some(j) => !j.eq_ignore_ascii_case(&partner.jurisdiction),
        }
    }

    /// The action for `category` on its way to `partner`, and the rule that decided, for
    /// explanations (`partner acme`, `pair CN->DE`, `cross_border`, `domestic`).
    pub fn action(&self, partner: &PartnerProfile, category: Category) -> (Action, Arg) {
        use crate::explain::Clause;
        if let Some(a) = self
            .config
            .partners
            .get(&partner.name)
            .and_then(|t| t.get(category))
        {
            if let Some((scope, cs)) = &self.granted
                && cs.contains(&category)
            {
                return (
                    a,
                    Clause::new("rule-grant")
                        .with("scope", scope)
                        .with("partner", &partner.name)
                        .into(),
                );
            }
            return (
                a,
                Clause::new("rule-partner")
                    .with("partner", &partner.name)
                    .into(),
            );
        }
        let node = self.config.jurisdiction.as_deref().unwrap_or("");
        let matches = |rule: &str, j: &str| rule == "*" || rule.eq_ignore_ascii_case(j);
        for p in &self.config.pairs {
            if matches(&p.from, node)
                && matches(&p.to, &partner.jurisdiction)
                && let Some(a) = p.actions.get(category)
            {
                return (
                    a,
                    Clause::new("rule-pair")
                        .with("from", &p.from)
                        .with("to", &p.to)
                        .into(),
                );
            }
        }
        if self.cross_border(partner) {
            let a = self
                .config
                .cross_border
                .get(category)
                .unwrap_or(Action::Pseudonymise);
            (a, "cross_border".into())
        } else {
            let a = self.config.domestic.get(category).unwrap_or(Action::Allow);
            (a, "domestic".into())
        }
    }

    /// Whether a finding of `category` at `place` in an object of `object_type` is an
    /// indicator of attacker infrastructure that [`InfrastructureIndicators::Allow`] lets
    /// through: an IP address in a pattern literal compared with an infrastructure object
    /// path (`place` = `Pattern(object_path)`), or in the `value` of an `ipv4-addr`,
    /// `ipv6-addr`, `domain-name` or `url`, or anywhere in a `network-traffic`.
    /// `Some(rule)` names the rule, for explanations.
    pub fn infrastructure_exempt(
        &self,
        object_type: &str,
        place: Place<'_>,
        category: Category,
    ) -> Option<&'static str> {
        if self.config.infrastructure_indicators != InfrastructureIndicators::Allow
            || category != Category::IpAddress
        {
            return None;
        }
        let infrastructure = |t: &str| INFRASTRUCTURE_TYPES.contains(&t);
        let exempt = match place {
            Place::Pattern(object_path) => {
                object_type == "indicator"
                    && object_path
                        .split_once(':')
                        .is_some_and(|(t, _)| infrastructure(t))
            }
            Place::Property(path) => {
                object_type == "network-traffic" || (infrastructure(object_type) && path == "value")
            }
            Place::Key(_) => false,
        };
        exempt.then_some("infrastructure_indicators = allow")
    }

    /// The sharing group whose key pseudonymises for `partner` reading a collection shared
    /// as `sharing`: the first (by name) of the partner's groups that the collection is
    /// shared with, else the first of the partner's groups, else the partner alone
    /// (`partner:NAME`).
    pub fn pseudonym_group(&self, sharing: &CollectionSharing, partner: &PartnerProfile) -> String {
        let mut groups: Vec<&String> = partner.groups.iter().collect();
        groups.sort();
        if let Some(shared) = &sharing.groups
            && let Some(g) = groups.iter().find(|g| shared.contains(g))
        {
            return (*g).clone();
        }
        match groups.first() {
            Some(g) => (*g).clone(),
            None => format!("partner:{}", partner.name),
        }
    }
}

/// Where in an object a finding sits, for [`Policy::infrastructure_exempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A property value (string or number) at this JSON path.
    Property(&'a str),
    /// A string literal of an indicator's pattern, compared with this object path
    /// (`ipv4-addr:value`).
    Pattern(&'a str),
    /// A dictionary key at this JSON path.
    Key(&'a str),
}

/// The reserved domain of e-mail pseudonyms: `.invalid` can never resolve (RFC 2606 §2,
/// RFC 6761 §6.4), so a pseudonymous address is a valid address that reaches nobody.
pub const PSEUDONYM_MAIL_DOMAIN: &str = "pseudonym.invalid";

/// The pseudonym of `normalized` (of `category`) under `key`, of the same type as the value
/// so that the copy stays valid where the value was (an `ipv4-addr` `value`, a pattern
/// literal compared with `email-addr:value`):
///
/// | value | pseudonym |
/// |---|---|
/// | IPv4 address | an address in 240.0.0.0/4 (RFC 1112 §4, IANA "Reserved for Future Use"; never routed, and 2^28 addresses keep collisions rare), never 255.255.255.255 |
/// | IPv6 address | an address in 2001:db8::/32 (RFC 3849, documentation only), 96 bits chosen |
/// | e-mail address | `pseudo-<base32>@pseudonym.invalid` ([`PSEUDONYM_MAIL_DOMAIN`]) |
/// | anything else | `pseudo-<category>-<base32>` |
///
/// The bits come from HMAC-SHA-256 under `key` over `label ‖ 0 ‖ normalized` (the label is
/// `email` for both e-mail categories, so that an address in text and an `email-addr` value
/// correlate); base32 is of its first 16 bytes. Same key and value, same pseudonym.
pub fn pseudonym(key: &[u8], category: Category, normalized: &str) -> String {
    let label = pseudonym_label(category);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.update(b"\0");
    mac.update(normalized.as_bytes());
    let digest = mac.finalize().into_bytes();
    match category {
        Category::IpAddress => match normalized.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => {
                let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
                let mut a = 0xF000_0000 | (bits & 0x0FFF_FFFF);
                if a == u32::MAX {
                    a -= 1;
                }
                return std::net::Ipv4Addr::from(a).to_string();
            }
            Ok(std::net::IpAddr::V6(_)) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                b[4..].copy_from_slice(&digest[..12]);
                return std::net::Ipv6Addr::from(b).to_string();
            }
            Err(_) => {}
        },
        Category::Email | Category::EmailAddressObject if normalized.contains('@') => {
            return format!("pseudo-{}@{PSEUDONYM_MAIL_DOMAIN}", base32(&digest[..16]));
        }
        _ => {}
    }
    format!("pseudo-{label}-{}", base32(&digest[..16]))
}

/// A pseudonymous address followed by `/N` in the text (a CIDR block) becomes the network
/// of that prefix length: host bits zero, so `ISSUBSET '…/24'` stays a valid block. Prefixes
/// shorter than the pseudonym range (4 bits for IPv4, 32 for IPv6) keep the address.
fn pseudonym_network(pseudonym: &str, after: &str) -> String {
    let Some(digits) = after.strip_prefix('/') else {
        return pseudonym.to_owned();
    };
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    let Ok(prefix) = digits.parse::<u32>() else {
        return pseudonym.to_owned();
    };
    match pseudonym.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) if (4..=32).contains(&prefix) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            std::net::Ipv4Addr::from(u32::from(a) & mask).to_string()
        }
        Ok(std::net::IpAddr::V6(a)) if (32..=128).contains(&prefix) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            std::net::Ipv6Addr::from(u128::from(a) & mask).to_string()
        }
        _ => pseudonym.to_owned(),
    }
}

/// An e-mail address found in text and the value of an `email-addr` object are the same
/// kind of data: one label, so they correlate.
fn pseudonym_label(category: Category) -> String {
    match category {
        Category::Email | Category::EmailAddressObject => "email".to_owned(),
        c => c.as_str().replace('_', "-"),
    }
}

/// The typed placeholder of a redaction.
pub fn placeholder(category: Category) -> String {
    format!("[REDACTED:{}]", category.as_str())
}

/// RFC 4648 base32, lower case, without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// What applying the actions did to an object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// One clause per rewrite.
    pub changes: Vec<Clause>,
    /// Old id → new id of an SCO whose value-derived id was recomputed.
    pub renamed: Vec<(String, String)>,
    /// Personal data left as written by a rule that is not a category table (today
    /// `infrastructure_indicators`), one line per place, for explanations. Not a change:
    /// an object with only these is sent as stored.
    pub allowed: Vec<Clause>,
}

/// One replacement inside one string.
struct Edit {
    start: usize,
    end: usize,
    category: Category,
    action: Action,
    normalized: String,
    rule: Arg,
}

/// Why [`apply`] changed nothing, for explanations: every category allowed for the partner
/// (and by which rule), or no personal data found.
pub fn describe_unchanged(policy: &Policy, partner: &PartnerProfile) -> Clause {
    let rules: std::collections::BTreeSet<String> = Category::ALL
        .iter()
        .map(|c| policy.action(partner, *c))
        .filter(|(a, _)| *a == Action::Allow)
        .map(|(_, r)| r.to_string())
        .collect();
    if Category::ALL
        .iter()
        .all(|c| policy.action(partner, *c).0 == Action::Allow)
    {
        Clause::new("pii-all-allowed")
            .with("partner", &partner.name)
            .with("rules", rules.into_iter().collect::<Vec<_>>().join(", "))
    } else {
        Clause::new("pii-none-found")
    }
}

/// Applies the actions of `policy` for `partner` to `object` (a STIX object), in place.
/// `Err(reason)`: a `drop` applies, the object is withheld.
///
/// A finding in a string is replaced inside the string; in a JSON number, the number
/// becomes a string (the placeholder or pseudonym); in a dictionary key, the key is renamed
/// (a second key that would get the same name is suffixed ` #2`, ` #3`, …, so that no entry
/// is lost). IP addresses of infrastructure indicators pass when
/// [`PolicyConfig::infrastructure_indicators`] allows them ([`Applied::allowed`] says so).
pub fn apply(
    object: &mut Value,
    policy: &Policy,
    sharing: &CollectionSharing,
    partner: &PartnerProfile,
) -> Result<Applied, Clause> {
    // A partner for whom every category is allowed (the domestic default) receives the
    // object as stored: no need to look for personal data at all.
    if Category::ALL
        .iter()
        .all(|c| policy.action(partner, *c).0 == Action::Allow)
    {
        return Ok(Applied::default());
    }
    let findings = policy.detectors.scan_object(object);
    let mut applied = Applied::default();
    if findings.is_empty() {
        return Ok(applied);
    }
    let object_type = object
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // The id as the contributing properties give it before any rewrite: an id is recomputed
    // only when they changed (a producer's UUIDv4 survives a rewrite of `display_name`).
    let derived_before = deterministic_id(object);
    let key = std::cell::OnceCell::new();
    let key = || {
        key.get_or_init(|| policy.keys.key(&policy.pseudonym_group(sharing, partner)))
            .clone()
    };
    // Edits per place: values by path, pattern literals by (path, literal), keys by
    // (entry path, key).
    let mut plain: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let mut literals: BTreeMap<(String, String, String), Vec<Edit>> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), Vec<Edit>> = BTreeMap::new();
    for ObjectFinding {
        path,
        literal,
        key: in_key,
        finding,
    } in findings
    {
        let place = match (&literal, &in_key) {
            (Some(l), _) => Place::Pattern(&l.object_path),
            (None, Some(_)) => Place::Key(&path),
            (None, None) => Place::Property(&path),
        };
        if let Some(rule) = policy.infrastructure_exempt(&object_type, place, finding.category) {
            let at: Arg = match &literal {
                Some(l) => Clause::new("place-literal")
                    .with("path", &path)
                    .with("literal", &l.object_path)
                    .into(),
                None => path.clone().into(),
            };
            let note = Clause::new("pii-allowed")
                .with("category", finding.category.as_str())
                .with("place", at)
                .with("rule", rule);
            if !applied.allowed.contains(&note) {
                applied.allowed.push(note);
            }
            continue;
        }
        let (action, rule) = policy.action(partner, finding.category);
        if action == Action::Allow {
            continue;
        }
        if action == Action::Drop {
            return Err(Clause::new("pii-drop")
                .with("category", finding.category.as_str())
                .with("place", &path)
                .with("rule", rule));
        }
        let mut normalized = finding.normalized;
        if finding.category == Category::EmailAddressObject && path.ends_with("value") {
            normalized = normalize_email(&normalized);
        }
        let edit = Edit {
            start: finding.start,
            end: finding.end,
            category: finding.category,
            action,
            normalized,
            rule,
        };
        match (literal, in_key) {
            (Some(l), _) => literals
                .entry((path, l.object_path, l.value))
                .or_default()
                .push(edit),
            (None, Some(k)) => keys.entry((path, k)).or_default().push(edit),
            (None, None) => plain.entry(path).or_default().push(edit),
        }
    }
    let replacement = |e: &Edit, after: &str, changes: &mut Vec<Clause>, at: &Arg| -> String {
        let (text, what) = match e.action {
            Action::Pseudonymise => match key() {
                Some(k) => {
                    let p = pseudonym(&k, e.category, &e.normalized);
                    let p = if e.category == Category::IpAddress {
                        pseudonym_network(&p, after)
                    } else {
                        p
                    };
                    (p, "pii-pseudonymised")
                }
                None => (placeholder(e.category), "pii-redacted-no-key"),
            },
            _ => (placeholder(e.category), "pii-redacted"),
        };
        changes.push(
            Clause::new(what)
                .with("category", e.category.as_str())
                .with("place", at.clone())
                .with("rule", e.rule.clone()),
        );
        text
    };
    for (path, edits) in plain {
        let at = Arg::from(&path);
        match lookup(object, &path) {
            Some(Value::String(s)) => {
                let new = rewrite(s, edits, |e, after| {
                    replacement(e, after, &mut applied.changes, &at)
                });
                *s = new;
            }
            Some(v @ Value::Number(_)) => {
                let text = v.to_string();
                let new = rewrite(&text, edits, |e, after| {
                    replacement(e, after, &mut applied.changes, &at)
                });
                *v = Value::String(new);
            }
            _ => {}
        }
    }
    // Pattern literals: through the AST, never by string replacement.
    let mut by_pattern: BTreeMap<String, Vec<(String, String, Vec<Edit>)>> = BTreeMap::new();
    for ((path, object_path, value), edits) in literals {
        by_pattern
            .entry(path)
            .or_default()
            .push((object_path, value, edits));
    }
    for (path, lits) in by_pattern {
        let Some(Value::String(p)) = lookup(object, &path) else {
            continue;
        };
        let mut ast = concord_pattern::parse_syntax(p).map_err(|e| {
            Clause::new("pii-pattern-unparsable")
                .with("path", &path)
                .with("error", e.to_string())
        })?;
        let mut new_values: BTreeMap<(String, String), String> = BTreeMap::new();
        for (object_path, value, edits) in lits {
            let at: Arg = Clause::new("place-literal")
                .with("path", &path)
                .with("literal", &object_path)
                .into();
            let new = rewrite(&value, edits, |e, after| {
                replacement(e, after, &mut applied.changes, &at)
            });
            new_values.insert((object_path, value), new);
        }
        for_each_literal(&mut ast.expr, &mut |object_path, lit| {
            if let concord_pattern::Literal::String(s) = lit
                && let Some(new) = new_values.get(&(object_path.to_owned(), s.clone()))
            {
                *s = new.clone();
            }
        });
        *p = ast.to_string();
    }
    // Keys last (the paths above may run through them), the deepest first (a parent's
    // rename would move its children's paths).
    let mut keys: Vec<_> = keys.into_iter().collect();
    keys.sort_by_key(|((path, _), _)| std::cmp::Reverse(path.len()));
    for ((path, old), edits) in keys {
        let mut entry = String::new();
        crate::pii::push_key(&mut entry, &old);
        let parent = path
            .strip_suffix(entry.as_str())
            .map(|p| p.strip_suffix('.').unwrap_or(p))
            .unwrap_or_default();
        let at: Arg = Clause::new("place-key").with("path", &path).into();
        let new = rewrite(&old, edits, |e, after| {
            replacement(e, after, &mut applied.changes, &at)
        });
        let Some(Value::Object(map)) = lookup(object, parent) else {
            continue;
        };
        let Some(value) = map.remove(&old) else {
            continue;
        };
        let mut name = new.clone();
        let mut n = 1;
        while map.contains_key(&name) {
            n += 1;
            name = format!("{new} #{n}");
        }
        map.insert(name, value);
    }
    if !applied.changes.is_empty()
        && deterministic_id(object) != derived_before
        && let Some(renamed) = recompute_id(object)
    {
        applied.changes.push(
            Clause::new("pii-id-recomputed")
                .with("old", &renamed.0)
                .with("new", &renamed.1),
        );
        let map = [renamed.clone()];
        rewrite_refs(object, &map);
        applied.renamed.push(renamed);
    }
    Ok(applied)
}

/// `Local@Example.ORG` → `Local@example.org`: the domain of an address is case-insensitive.
fn normalize_email(v: &str) -> String {
    match v.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => v.to_owned(),
    }
}

/// Applies edits to `s`: the strictest first, then the widest; overlapping later ones are
/// skipped (a structural finding over the whole value and a text finding inside it).
/// `with` gets the edit and the text after it (a `/24` after an address).
fn rewrite(s: &str, mut edits: Vec<Edit>, mut with: impl FnMut(&Edit, &str) -> String) -> String {
    edits.sort_by(|a, b| {
        (b.action, b.end - b.start, a.start).cmp(&(a.action, a.end - a.start, b.start))
    });
    let mut chosen: Vec<Edit> = Vec::new();
    for e in edits {
        if e.end > s.len() || !s.is_char_boundary(e.start) || !s.is_char_boundary(e.end) {
            continue;
        }
        if chosen.iter().all(|c| e.end <= c.start || e.start >= c.end) {
            chosen.push(e);
        }
    }
    chosen.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for e in &chosen {
        out.push_str(&s[at..e.start]);
        out.push_str(&with(e, &s[e.end..]));
        at = e.end;
    }
    out.push_str(&s[at..]);
    out
}

fn for_each_literal(
    e: &mut concord_pattern::ObservationExpr,
    f: &mut impl FnMut(&str, &mut concord_pattern::Literal),
) {
    use concord_pattern::{ComparisonExpr, ObservationExpr, Operand};
    fn cmp(c: &mut ComparisonExpr, f: &mut impl FnMut(&str, &mut concord_pattern::Literal)) {
        match c {
            ComparisonExpr::And(v) | ComparisonExpr::Or(v) => v.iter_mut().for_each(|c| cmp(c, f)),
            ComparisonExpr::Test(t) => {
                let path = t.path.to_string();
                match &mut t.operand {
                    Operand::Literal(l) => f(&path, l),
                    Operand::Set(v) => v.iter_mut().for_each(|l| f(&path, l)),
                }
            }
            ComparisonExpr::Exists(_) => {}
        }
    }
    match e {
        ObservationExpr::Observation(c) => cmp(c, f),
        ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
            v.iter_mut().for_each(|e| for_each_literal(e, f))
        }
        ObservationExpr::Qualified { expr, .. } => for_each_literal(expr, f),
    }
}

/// Resolves an [`ObjectFinding::path`] in `value`.
fn lookup<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    let mut cur = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            // A JSON string key: find its closing quote (not escaped).
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            let key: String = serde_json::from_str(&format!("\"{}\"", &r[..end])).ok()?;
            cur = cur.as_object_mut()?.get_mut(&key)?;
            rest = r[end + 1..].strip_prefix(']')?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            cur = cur.as_array_mut()?.get_mut(i)?;
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            cur = cur.as_object_mut()?.get_mut(&rest[..end])?;
            rest = &rest[end..];
        }
    }
    Some(cur)
}

/// The SCO deterministic-id namespace (STIX 2.1 §2.9).
pub const SCO_NAMESPACE: uuid::Uuid = uuid::uuid!("00abedb4-aa42-466c-9c01-fed23315a9b7");

/// The ID-contributing properties of the STIX 2.1 SCOs (§6), `None` for types without.
pub fn id_contributing_properties(object_type: &str) -> Option<&'static [&'static str]> {
    Some(match object_type {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "domain-name" => &["value"],
        "email-addr" => &["value"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "extensions", "parent_directory_ref"],
        "ipv4-addr" => &["value"],
        "ipv6-addr" => &["value"],
        "mac-addr" => &["value"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "url" => &["value"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        _ => return None,
    })
}

/// The deterministic id of an SCO (STIX 2.1 §2.9): UUIDv5 in [`SCO_NAMESPACE`] over the JSON
/// canonical form (RFC 8785) of its ID-contributing properties; of `hashes`, one hash only
/// (MD5, SHA-1, SHA-256, SHA-512 in that order of preference, else the first). `None`: not
/// an SCO type with contributing properties, or none of them present.
pub fn deterministic_id(object: &Value) -> Option<String> {
    let map = object.as_object()?;
    let ty = map.get("type")?.as_str()?;
    let props = id_contributing_properties(ty)?;
    let mut contributing = serde_json::Map::new();
    for &p in props {
        let Some(v) = map.get(p) else { continue };
        let v = if p == "hashes" {
            let h = v.as_object()?;
            let k = ["MD5", "SHA-1", "SHA-256", "SHA-512"]
                .into_iter()
                .find(|k| h.contains_key(*k))
                .map(str::to_owned)
                .or_else(|| h.keys().min().cloned())?;
            let mut one = serde_json::Map::new();
            one.insert(k.clone(), h[&k].clone());
            Value::Object(one)
        } else {
            v.clone()
        };
        contributing.insert(p.to_owned(), v);
    }
    if contributing.is_empty() {
        return None;
    }
    let mut canonical = String::new();
    canonical_json(&Value::Object(contributing), &mut canonical);
    Some(format!(
        "{ty}--{}",
        uuid::Uuid::new_v5(&SCO_NAMESPACE, canonical.as_bytes())
    ))
}

/// RFC 8785 canonical form: keys sorted (by UTF-16 code units; equal to byte order for the
/// ASCII keys of STIX), no white space, strings as serde_json escapes them.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Recomputes the id of an SCO after a rewrite: `Some((old, new))` when it changed.
fn recompute_id(object: &mut Value) -> Option<(String, String)> {
    let new = deterministic_id(object)?;
    let old = object.get("id")?.as_str()?.to_owned();
    if old == new {
        return None;
    }
    object["id"] = Value::String(new.clone());
    Some((old, new))
}

/// Makes the references among `objects` (the objects of one response) follow `renamed`
/// (old id → new id, as the egress function reported them); an SCO one of whose
/// ID-contributing properties is such a reference (`email-message.from_ref`,
/// `network-traffic.src_ref`, …) gets its id recomputed in turn, and the references to it
/// follow too (added to `renamed`). Returns which objects changed.
pub fn follow_renames(objects: &mut [Value], renamed: &mut Vec<(String, String)>) -> Vec<bool> {
    let mut changed = vec![false; objects.len()];
    let mut pending = renamed.clone();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for (i, o) in objects.iter_mut().enumerate() {
            if rewrite_refs(o, &pending) {
                changed[i] = true;
                if let Some(r) = recompute_id(o) {
                    next.push(r);
                }
            }
        }
        renamed.extend(next.iter().cloned());
        pending = next;
    }
    changed
}

/// Rewrites every `*_ref` and `*_refs` value (at any depth) that names an old id of
/// `renamed` to the new one; `true` when something changed. For callers that hold several
/// objects of one response (a page, an export).
pub fn rewrite_refs(object: &mut Value, renamed: &[(String, String)]) -> bool {
    let mut changed = false;
    match object {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                if k.ends_with("_ref") || k.ends_with("_refs") {
                    let mut swap = |s: &mut Value| {
                        if let Value::String(id) = s
                            && let Some((_, new)) = renamed.iter().find(|(old, _)| old == id)
                        {
                            *id = new.clone();
                            changed = true;
                        }
                    };
                    match v {
                        Value::Array(a) => a.iter_mut().for_each(&mut swap),
                        s => swap(s),
                    }
                } else {
                    changed |= rewrite_refs(v, renamed);
                }
            }
        }
        Value::Array(a) => {
            for v in a {
                changed |= rewrite_refs(v, renamed);
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
    fn base32_rfc4648_vectors() {
        // RFC 4648 §10, lower case, no padding.
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(base32(b"fo"), "mzxq");
        assert_eq!(base32(b"foo"), "mzxw6");
        assert_eq!(base32(b"foob"), "mzxw6yq");
        assert_eq!(base32(b"fooba"), "mzxw6ytb");
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn pseudonyms_are_of_the_value_type_and_keyed() {
        let key = b"group key";
        // 10,000 IPv4 addresses: all in 240.0.0.0/4, never the limited broadcast, and
        // (2^28 addresses) no collision.
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let v = std::net::Ipv4Addr::from(0x5102_0000 + i).to_string();
            let p: std::net::Ipv4Addr = pseudonym(key, Category::IpAddress, &v).parse().unwrap();
            assert_eq!(p.octets()[0] & 0xF0, 240);
            assert_ne!(p, std::net::Ipv4Addr::BROADCAST);
            assert!(seen.insert(p), "collision at {v}");
        }
        let p: std::net::Ipv6Addr = pseudonym(key, Category::IpAddress, "2a03:2880::1")
            .parse()
            .unwrap();
        assert_eq!(p.segments()[..2], [0x2001, 0x0db8]);
        let mail = pseudonym(key, Category::Email, "eve@corp.cn");
        assert_eq!(
            mail,
            pseudonym(key, Category::EmailAddressObject, "eve@corp.cn")
        );
        assert!(mail.starts_with("pseudo-") && mail.ends_with("@pseudonym.invalid"));
        assert_ne!(
            mail,
            pseudonym(b"other key", Category::Email, "eve@corp.cn")
        );
        // Not an address (an `email-addr` display name): the tagged form.
        assert!(pseudonym(key, Category::EmailAddressObject, "Eve").starts_with("pseudo-email-"));
        // Networks keep their prefix, with the host bits cleared.
        assert_eq!(pseudonym_network("241.2.3.4", "/24']"), "241.2.3.0");
        assert_eq!(pseudonym_network("241.2.3.4", "/2"), "241.2.3.4");
        assert_eq!(pseudonym_network("241.2.3.4", " x"), "241.2.3.4");
        assert_eq!(pseudonym_network("2001:db8:1:2::5", "/48"), "2001:db8:1::");
    }

    #[test]
    fn paths_resolve() {
        let mut v = serde_json::json!({"a": {"b": [1, {"c": "x"}]}, "x_map": {"a.b": "y"},
            "hashes": {"SHA-256": "z"}});
        assert_eq!(lookup(&mut v, "a.b[1].c").unwrap(), "x");
        assert_eq!(lookup(&mut v, "x_map[\"a.b\"]").unwrap(), "y");
        assert_eq!(lookup(&mut v, "hashes.SHA-256").unwrap(), "z");
        assert!(lookup(&mut v, "a.q").is_none());
    }

    #[test]
    fn derived_keys_differ_per_group_and_configured_keys_win() {
        let keys = PseudonymKeys {
            groups: BTreeMap::from([("eu".to_owned(), b"configured".to_vec())]),
            node_secret: Some(b"node secret".to_vec()),
        };
        assert_eq!(keys.key("eu").unwrap(), b"configured");
        assert_ne!(keys.key("asean").unwrap(), keys.key("gcc").unwrap());
        assert_eq!(keys.key("gcc").unwrap().len(), 32);
        assert!(PseudonymKeys::default().key("gcc").is_none());
        assert!(!format!("{keys:?}").contains("configured"));
    }

    #[test]
    fn action_resolution_order() {
        let mut config = PolicyConfig {
            jurisdiction: Some("cn".into()),
            ..PolicyConfig::default()
        };
        config.pairs.push(PairRule {
            from: "CN".into(),
            to: "AE".into(),
            actions: ActionTable {
                default: None,
                categories: BTreeMap::from([(Category::Phone, Action::Drop)]),
            },
        });
        config.partners.insert(
            "acme".into(),
            ActionTable {
                default: None,
                categories: BTreeMap::from([(Category::Email, Action::Redact)]),
            },
        );
        let policy = Policy::new(config, PseudonymKeys::default()).unwrap();
        let p = |name: &str, j: &str| PartnerProfile {
            name: name.into(),
            jurisdiction: j.into(),
            groups: vec![],
        };
        let a = |name, j, c| policy.action(&p(name, j), c).0;
        assert_eq!(a("x", "CN", Category::Email), Action::Allow);
        assert_eq!(a("x", "DE", Category::Email), Action::Pseudonymise);
        assert_eq!(a("x", "AE", Category::Phone), Action::Drop);
        assert_eq!(a("x", "AE", Category::Email), Action::Pseudonymise);
        assert_eq!(a("acme", "CN", Category::Email), Action::Redact);
        assert_eq!(a("acme", "CN", Category::Phone), Action::Allow);
        // No node jurisdiction: every partner is across a border.
        let none = Policy::node_default(None, PseudonymKeys::default());
        assert_eq!(
            none.action(&p("x", "CN"), Category::Email).0,
            Action::Pseudonymise
        );
    }

    #[test]
    fn config_from_json_with_aliases() {
        let c: PolicyConfig = serde_json::from_str(
            r#"{"policy_version": "7", "jurisdiction": "DE",
                "cross_border": {"default": "redact", "categories": {"ip_address": "pseudonymize"}},
                "partners": {"acme": {"categories": {"phone": "drop"}}}}"#,
        )
        .unwrap();
        assert_eq!(c.policy_version, "7");
        assert_eq!(c.cross_border.default, Some(Action::Redact));
        assert_eq!(
            c.cross_border.categories[&Category::IpAddress],
            Action::Pseudonymise
        );
        assert_eq!(c.domestic, ActionTable::all(Action::Allow));
    }
}
