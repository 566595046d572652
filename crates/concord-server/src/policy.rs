//! The node's egress policy as the doors use it: one constructor for TAXII and export, so
//! both doors apply the same policy with the same keys.

use concord_policy::actions::{Policy, PseudonymKeys};
use concord_store::{Store, StoreError};

/// The node setting holding the node's jurisdiction (ISO 3166-1 alpha-2).
pub const JURISDICTION_SETTING: &str = "jurisdiction";

/// The node setting holding the node secret (hex, 32 random bytes) from which each sharing
/// group's pseudonymisation key is derived (HMAC-SHA-256, see
/// [`concord_policy::actions::PseudonymKeys`]). Created on first use.
pub const NODE_SECRET_SETTING: &str = "policy/node_secret";

/// The node's policy: today the built-in, privacy-first defaults
/// ([`Policy::node_default`]) for the node's jurisdiction if the store has the
/// `jurisdiction` setting — without one, every partner counts as across a border — with group
/// keys derived from the node secret (created, from the OS's randomness, if missing).
pub fn node_policy(store: &dyn Store) -> Result<Policy, StoreError> {
    let jurisdiction = store
        .setting(JURISDICTION_SETTING)?
        .map(|j| j.trim().to_ascii_uppercase())
        .filter(|j| !j.is_empty());
    let secret = match store.setting(NODE_SECRET_SETTING)?.and_then(|h| unhex(&h)) {
        Some(s) => Some(s),
        None => {
            let mut bytes = [0u8; 32];
            match getrandom::fill(&mut bytes) {
                Ok(()) => {
                    store.set_setting(NODE_SECRET_SETTING, &hex(&bytes))?;
                    Some(bytes.to_vec())
                }
                // No randomness: no key; pseudonymisation then redacts (privacy first).
                Err(_) => None,
            }
        }
    };
    let keys = PseudonymKeys {
        node_secret: secret,
        ..PseudonymKeys::default()
    };
    Ok(Policy::node_default(jurisdiction.as_deref(), keys))
}

/// Makes every reference in `bodies` (the objects of one response) follow the SCO ids that
/// the egress function recomputed (`renamed`, old → new; see
/// [`concord_policy::actions::follow_renames`]), re-serialising only the objects that
/// change.
pub fn follow_renames(bodies: Vec<&mut String>, renamed: &[(String, String)]) {
    if renamed.is_empty() {
        return;
    }
    let mut values: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap_or(serde_json::Value::Null))
        .collect();
    let mut renamed = renamed.to_vec();
    let changed = concord_policy::actions::follow_renames(&mut values, &mut renamed);
    for ((body, value), changed) in bodies.into_iter().zip(values).zip(changed) {
        if changed {
            *body = value.to_string();
        }
    }
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
