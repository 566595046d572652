//! The node's egress policy as the doors use it: one constructor for TAXII and export, so
//! both doors apply the same policy with the same keys.

use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use concord_policy::egress::{Decision, ExplainStep, PartnerProfile};
use concord_store::{Collection, Partner, Store, StoreError};

/// The node setting holding the node's jurisdiction (ISO 3166-1 alpha-2).
pub const JURISDICTION_SETTING: &str = "jurisdiction";

/// The node setting holding the node secret (hex, 32 random bytes) from which each sharing
/// group's pseudonymisation key is derived (HMAC-SHA-256, see
/// [`concord_policy::actions::PseudonymKeys`]). Created on first use, race-free
/// ([`Store::setting_or_insert`]): every process of the node derives the same keys.
pub const NODE_SECRET_SETTING: &str = "policy/node_secret";

/// The node setting holding the node's own important-data marking definition (STIX JSON),
/// created on first use with a random id.
pub const IMPORTANT_DATA_MARKING_SETTING: &str = "policy/important_data_marking";

/// Prefix of the node settings that keep every policy version applied so far
/// (`policy/version/LABEL@DIGEST` → the configuration as JSON), so that the version in an
/// audit entry can always be looked up.
pub const POLICY_VERSION_PREFIX: &str = "policy/version/";

/// Why the node's policy cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `[policy]` section is refused; the message names the key.
    #[error("[policy]: {0}")]
    Config(String),
}

/// The node's policy: `config` (the `[policy]` section of `concord.toml`; the built-in,
/// privacy-first defaults when absent) for the node's jurisdiction (the store's
/// `jurisdiction` setting; without one, every partner counts as across a border), with the
/// node's own important-data marking added to `important_data_markings`, and group keys
/// derived from the node secret (created from the OS's randomness if missing). The version
/// ([`PolicyConfig::version`]) is registered under [`POLICY_VERSION_PREFIX`].
///
/// Errors: `config.jurisdiction` set and different from the store's (`concord init
/// --jurisdiction` is the one place that sets it), a refused detector configuration or
/// marking id, or the store.
pub fn node_policy(store: &dyn Store, config: &PolicyConfig) -> Result<Policy, PolicyError> {
    let mut config = config.clone();
    let stored = store
        .setting(JURISDICTION_SETTING)?
        .map(|j| j.trim().to_ascii_uppercase())
        .filter(|j| !j.is_empty());
    match (&config.jurisdiction, stored) {
        (Some(c), Some(s)) if !c.trim().eq_ignore_ascii_case(&s) => {
            return Err(PolicyError::Config(format!(
                "jurisdiction {c:?} differs from the node's {s:?} (set by concord init \
                 --jurisdiction); remove the key or make them agree"
            )));
        }
        (Some(_), _) => {}
        (None, s) => config.jurisdiction = s,
    }
    let secret = match random_hex(32) {
        Some(fresh) => unhex(&store.setting_or_insert(NODE_SECRET_SETTING, &fresh)?),
        // No randomness: an existing secret still works; else no key, and pseudonymisation
        // redacts (privacy first).
        None => store.setting(NODE_SECRET_SETTING)?.and_then(|h| unhex(&h)),
    };
    let marking = important_data_marking(store, config.jurisdiction.as_deref())?;
    if let Some(id) = marking.get("id").and_then(|v| v.as_str())
        && !config.important_data_markings.iter().any(|m| m == id)
    {
        config.important_data_markings.push(id.to_owned());
    }
    let keys = PseudonymKeys {
        node_secret: secret,
        ..PseudonymKeys::default()
    };
    let policy = Policy::new(config, keys).map_err(|e| PolicyError::Config(e.to_string()))?;
    let key = format!("{POLICY_VERSION_PREFIX}{}", policy.version);
    if store.setting(&key)?.is_none() {
        let json = serde_json::to_string(&policy.config).expect("a policy serialises");
        store.setting_or_insert(&key, &json)?;
    }
    Ok(policy)
}

/// The node's own important-data marking definition (STIX 2.1 §7.2.1, a statement marking),
/// created on first use: objects a producer marks with it never leave for a partner across
/// a border. Import it into a collection so that producers can reference it.
pub fn important_data_marking(
    store: &dyn Store,
    jurisdiction: Option<&str>,
) -> Result<serde_json::Value, StoreError> {
    let fresh = match random_hex(16) {
        Some(h) => {
            // A version 4 UUID from 16 random bytes (RFC 9562 §5.4).
            let mut b = unhex(&h).expect("hex");
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex(&b);
            let id = format!(
                "marking-definition--{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            );
            let place = jurisdiction.unwrap_or("the node's jurisdiction");
            serde_json::json!({
                "type": "marking-definition",
                "spec_version": "2.1",
                "id": id,
                "created": concord_stix::Timestamp::now_micros().as_str(),
                "name": format!("Important data ({place})"),
                "definition_type": "statement",
                "definition": {
                    "statement": format!("Important data of {place}: it does not leave {place}.")
                }
            })
            .to_string()
        }
        None => match store.setting(IMPORTANT_DATA_MARKING_SETTING)? {
            Some(s) => s,
            None => return Ok(serde_json::Value::Null),
        },
    };
    let text = store.setting_or_insert(IMPORTANT_DATA_MARKING_SETTING, &fresh)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// What a partner would receive of one stored object version through a collection, and
/// why: the TAXII permission check first (step `permission`), then the steps of
/// [`concord_policy::egress::explain`]. The one explanation that `concord policy explain`
/// prints and the web UI's "as partner" view shows.
#[derive(Clone, Debug)]
pub struct PartnerView {
    /// Rule by rule, in the order applied.
    pub steps: Vec<ExplainStep>,
    /// The decision; [`Decision::Withheld`] with reason `no read permission` when the
    /// partner may not read the collection (the TAXII doors answer 403 there).
    pub decision: Decision,
}

/// [`PartnerView`] of the stored object version `entry` in `collection`, for `partner`,
/// as the egress door decides it (markings resolved, references followed, keyed SCO ids).
/// Errors: the store, or an unreadable sharing setting.
pub fn explain_for_partner(
    egress: &concord_egress::Egress,
    partner: &Partner,
    collection: &Collection,
    entry: &concord_store::Entry,
) -> Result<PartnerView, PolicyError> {
    explain_for_partner_at(egress, partner, collection, entry, "taxii-objects")
}

/// [`explain_for_partner`] at the door `door` (its audit name: `feed-suricata`, `webhook`,
/// `stream`, `api-match`, `taxii-objects`…): an agreement's permitted actions and the PAP gate
/// decide differently at the automated doors (issue 19).
pub fn explain_for_partner_at(
    egress: &concord_egress::Egress,
    partner: &Partner,
    collection: &Collection,
    entry: &concord_store::Entry,
    door: &str,
) -> Result<PartnerView, PolicyError> {
    let name = collection.alias.as_deref().unwrap_or(&collection.id);
    let who = &partner.name;
    let can_read = partner.read.contains(&collection.id);
    use concord_policy::explain::Clause;
    let mut said = vec![
        Clause::new(if can_read {
            "permission-may-read"
        } else {
            "permission-may-not-read"
        })
        .with("partner", who)
        .with("collection", name),
    ];
    if !can_read {
        said.push(Clause::withheld(Clause::new("permission-none")));
    }
    let mut steps = vec![ExplainStep::new("permission", said)];
    let profile = PartnerProfile {
        name: partner.name.clone(),
        jurisdiction: partner.jurisdiction.clone(),
        groups: partner.groups.clone(),
    };
    let e = egress
        .explain_at(&profile, &collection.id, entry, door)
        .map_err(|e| match e {
            concord_egress::EgressError::Store(s) => PolicyError::Store(s),
            other => PolicyError::Config(other.to_string()),
        })?;
    let changes: Vec<String> = e
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.rule,
                "granular-markings" | "personal-data" | "references" | "identifier"
            )
        })
        .map(|s| format!("{}: {}", s.rule, s.detail))
        .collect();
    steps.extend(e.steps);
    let decision = match (can_read, e.sent, e.withheld) {
        (false, _, _) => Decision::Withheld {
            reason: Clause::new("permission-none").to_string(),
        },
        (true, Some(sent), _) if sent.rewritten => Decision::Rewritten {
            body: sent.body.unwrap_or_default(),
            changes,
            renamed: Vec::new(),
        },
        (true, Some(_), _) => Decision::Unchanged,
        (true, None, reason) => Decision::Withheld {
            reason: reason.unwrap_or_default(),
        },
    };
    Ok(PartnerView { steps, decision })
}

/// `n` random bytes from the OS, hex; `None` without randomness.
fn random_hex(n: usize) -> Option<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::unhex(&super::hex(&b)).unwrap(), b);
        assert!(super::unhex("abc").is_none());
        assert!(super::unhex("zz").is_none());
    }
}
