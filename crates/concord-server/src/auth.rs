//! Authentication (TAXII 2.1 §1.6.7.1): HTTP Basic and Bearer, one credential store.
//!
//! Today the node has one credential, the admin token, accepted as `Authorization: Bearer
//! TOKEN` and as the password of HTTP Basic with any user name. It is stored as its SHA-256
//! (not argon2: the token is 256 random bits, so a fast hash is not brute-forceable, and every
//! request checks it), compared in constant time.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The node's administrator: reads and writes every collection.
    Admin,
}

impl Principal {
    /// Whether this principal may read a collection (TAXII `can_read`).
    pub fn can_read(&self, _collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
        }
    }

    /// Whether this principal may write a collection (TAXII `can_write`).
    pub fn can_write(&self, _collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
        }
    }
}

/// Hex SHA-256 of a token, as stored in the node's settings under [`ADMIN_TOKEN_SETTING`].
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The settings key under which the admin token's hash is kept.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// Checks an `Authorization` header against the admin token hash.
pub fn authenticate(header: Option<&str>, admin_hash: &str) -> Option<Principal> {
    let header = header?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    let token = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => rest.trim().to_owned(),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            text.split_once(':')?.1.to_owned()
        }
        _ => return None,
    };
    let given = token_hash(&token);
    bool::from(given.as_bytes().ct_eq(admin_hash.as_bytes())).then_some(Principal::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        let h = token_hash("s3cret");
        assert_eq!(
            authenticate(Some("Bearer s3cret"), &h),
            Some(Principal::Admin)
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        assert_eq!(
            authenticate(Some(&format!("Basic {basic}")), &h),
            Some(Principal::Admin)
        );
        let wrong = base64::engine::general_purpose::STANDARD.encode("anyone:nope");
        assert_eq!(authenticate(Some(&format!("Basic {wrong}")), &h), None);
        assert_eq!(authenticate(Some("Bearer nope"), &h), None);
        assert_eq!(authenticate(None, &h), None);
    }
}
