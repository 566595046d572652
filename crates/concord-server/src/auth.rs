//! Authentication (TAXII 2.1 §1.6.7.1): HTTP Basic and Bearer, two kinds of credential.
//!
//! - The **admin token** (from `concord init`), accepted as `Authorization: Bearer TOKEN` and
//!   as the password of HTTP Basic with any user name. Stored as its SHA-256 (it is 256 random
//!   bits, so a fast hash is not brute-forceable), compared in constant time.
//! - **Partner API keys** `concord_<key_id>_<secret>`, the same two ways. The `key_id` finds
//!   the partner; the secret is checked against its argon2id hash. Argon2 costs tens of
//!   milliseconds by design, so a key once verified is remembered (by its SHA-256) together
//!   with the hash it matched: a rotated or removed key stops working as soon as the partner
//!   list is re-read (every [`PARTNER_CACHE_TTL`]), on every `serve` process of the node.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use concord_policy::egress::PartnerProfile;
use concord_store::{Partner, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long the partner list is cached by a server process.
pub const PARTNER_CACHE_TTL: Duration = Duration::from_secs(5);

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The node's operator: reads and writes every collection, sees every object as stored.
    Admin,
    /// A partner organisation: its permissions, and the egress policy for what it reads.
    Partner(Arc<PartnerAccess>),
}

/// A partner's rights, as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerAccess {
    /// Name, jurisdiction and sharing groups, as the policy sees them.
    pub profile: PartnerProfile,
    /// Collection ids it may read.
    pub read: HashSet<String>,
    /// Collection ids it may write.
    pub write: HashSet<String>,
}

impl Principal {
    /// Whether this principal may read a collection (TAXII `can_read`).
    pub fn can_read(&self, collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Partner(p) => p.read.contains(collection_id),
        }
    }

    /// Whether this principal may write a collection (TAXII `can_write`).
    pub fn can_write(&self, collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Partner(p) => p.write.contains(collection_id),
        }
    }
}

/// Hex SHA-256 of a token, as stored in the node's settings under [`ADMIN_TOKEN_SETTING`].
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The settings key under which the admin token's hash is kept.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// A new partner API key: `(key, key_id, argon2id PHC hash of the secret)`. The key is shown
/// once and never stored. Errors: the OS random source failed.
pub fn new_api_key() -> Result<(String, String, String), String> {
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let key_id = hex(&bytes[..8]);
    let secret = hex(&bytes[8..]);
    let hash = argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| format!("argon2: {e}"))?
        .to_string();
    Ok((format!("concord_{key_id}_{secret}"), key_id, hash))
}

/// The credential carried by an `Authorization` header: Bearer, or the Basic password.
fn credential(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_owned()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split_once(':')?.1.to_owned())
        }
        _ => None,
    }
}

/// Checks credentials against the admin token and the partners of a store.
pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_hash: String,
    partners: Mutex<Option<(Instant, Arc<Vec<Partner>>)>>,
    /// SHA-256 of a verified key → the argon2 hash it was verified against.
    verified: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over a store, with the admin token's SHA-256.
    pub fn new(store: Arc<dyn Store>, admin_hash: String) -> Authenticator {
        Authenticator {
            store,
            admin_hash,
            partners: Mutex::new(None),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The partner list, re-read when older than `max_age`.
    fn partners(&self, max_age: Duration) -> Result<Arc<Vec<Partner>>, StoreError> {
        let mut cache = self.partners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, list)) = cache.as_ref()
            && at.elapsed() < max_age
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.store.partners()?);
        *cache = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// The principal an `Authorization` header authenticates, or `None`. Blocking (store
    /// reads, argon2): call it from a blocking thread.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Option<Principal>, StoreError> {
        let Some(token) = header.and_then(credential) else {
            return Ok(None);
        };
        if let Some(rest) = token.strip_prefix("concord_")
            && let Some((key_id, secret)) = rest.split_once('_')
        {
            return self.partner(&token, key_id, secret);
        }
        let given = token_hash(&token);
        Ok(
            bool::from(given.as_bytes().ct_eq(self.admin_hash.as_bytes()))
                .then_some(Principal::Admin),
        )
    }

    fn partner(
        &self,
        token: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let mut partners = self.partners(PARTNER_CACHE_TTL)?;
        if !partners.iter().any(|p| p.key_id == key_id) {
            // A key made or rotated since the last read works within a second; unknown keys
            // cost at most one store read a second.
            partners = self.partners(Duration::from_secs(1))?;
        }
        let Some(p) = partners.iter().find(|p| p.key_id == key_id) else {
            return Ok(None);
        };
        let digest = token_hash(token);
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned();
        let ok = match known {
            Some(hash) => hash == p.key_hash,
            None => {
                let ok = argon2::Argon2::default()
                    .verify_password(secret.as_bytes(), p.key_hash.as_str())
                    .is_ok();
                if ok {
                    self.verified
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(digest, p.key_hash.clone());
                }
                ok
            }
        };
        Ok(ok.then(|| access(p)))
    }

    /// The current rights of the partner whose key has id `key_id`, for a session that
    /// authenticated with that key earlier (the web UI): `None` once the key was rotated or
    /// the partner removed, and new permissions, within [`PARTNER_CACHE_TTL`] (as TAXII
    /// sees them). Blocking (a store read at most once a second for an unknown key).
    pub fn partner_by_key_id(&self, key_id: &str) -> Result<Option<Principal>, StoreError> {
        let mut partners = self.partners(PARTNER_CACHE_TTL)?;
        if !partners.iter().any(|p| p.key_id == key_id) {
            partners = self.partners(Duration::from_secs(1))?;
        }
        Ok(partners.iter().find(|p| p.key_id == key_id).map(access))
    }
}

/// The key id of a partner API key (`concord_<key id>_<secret>`), if it is one.
pub fn key_id(token: &str) -> Option<&str> {
    token
        .strip_prefix("concord_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
}

fn access(p: &Partner) -> Principal {
    Principal::Partner(Arc::new(PartnerAccess {
        profile: PartnerProfile {
            name: p.name.clone(),
            jurisdiction: p.jurisdiction.clone(),
            groups: p.groups.clone(),
        },
        read: p.read.iter().cloned().collect(),
        write: p.write.iter().cloned().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        assert_eq!(credential("Bearer s3cret").as_deref(), Some("s3cret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        assert_eq!(
            credential(&format!("Basic {basic}")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(credential("Digest x"), None);
    }

    #[test]
    fn api_keys_verify_with_argon2() {
        let (key, key_id, hash) = new_api_key().unwrap();
        assert!(key.starts_with(&format!("concord_{key_id}_")));
        let secret = key.rsplit('_').next().unwrap();
        let argon = argon2::Argon2::default();
        assert!(
            argon
                .verify_password(secret.as_bytes(), hash.as_str())
                .is_ok()
        );
        assert!(argon.verify_password(b"wrong", hash.as_str()).is_err());
        assert!(hash.starts_with("$argon2id$"));
    }
}
