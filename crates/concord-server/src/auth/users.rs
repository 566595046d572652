//! Named users' credentials (issue 20): the password of the web UI's login, the login token
//! of the admin REST API, and the optional second factor, TOTP (RFC 6238).
//!
//! Both secrets are checked by the node's one [`Authenticator`], under the same bounds as
//! partner keys (issue 16): argon2id verifications share its hashing threads, concurrency
//! and queue; an unknown user is verified against the dummy hash, so the answer time does
//! not tell which names exist; attempts not known good are counted per source address and
//! per user (`failures_per_source`, `failures_per_key`) and refused beyond the quota; a
//! secret verified before passes without argon2 while its hash is current.
//!
//! A TOTP code is checked after the password, and every code tried counts against the same
//! quotas (a known password must not open unlimited guesses of six digits). A code is
//! accepted once ([`concord_store::Store::use_totp_step`], RFC 6238 §5.2) and in a window of
//! one step either side of now (§5.2's allowance for clock drift and network delay).

use std::net::IpAddr;
use std::sync::Arc;

use argon2::password_hash::PasswordHasher;
use concord_store::{Store, StoreError, User};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::{AuthError, Authenticator, dummy_hash, hex, lock, token_hash};
use crate::roles::{Actor, Role};

/// The prefix of a user's login token: `concordu_<token_id>_<secret>`.
pub const USER_TOKEN_PREFIX: &str = "concordu_";

/// The TOTP time step, seconds (RFC 6238 §4.1 `X`, the default 30).
pub const TOTP_STEP_SECS: u64 = 30;

/// Digits of a TOTP code (RFC 4226 §5.3: at least 6; what authenticator apps show).
pub const TOTP_DIGITS: u32 = 6;

/// New credentials for a user, shown once: the password and the login token, with what the
/// store keeps of them.
#[derive(Debug)]
pub struct NewCredentials {
    /// The web UI's password (the user types it with its name).
    pub password: String,
    /// The admin REST API's login token (`concordu_<token_id>_<secret>`).
    pub token: String,
    /// The token's id (kept in clear, to find the user).
    pub token_id: String,
    /// argon2id PHC hash of the password.
    pub password_hash: String,
    /// argon2id PHC hash of the token's secret.
    pub token_hash: String,
}

/// Makes new credentials: a password of 24 characters (about 143 bits) and a token of 256
/// random bits, each hashed with argon2id with the parameters of partner keys.
/// Errors: no randomness, or argon2 failed.
pub fn new_credentials() -> Result<NewCredentials, String> {
    let mut bytes = [0u8; 8 + 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let token_id = hex(&bytes[..8]);
    let secret = hex(&bytes[8..]);
    let password = new_password()?;
    let hash = |s: &str| {
        argon2::Argon2::default()
            .hash_password(s.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| format!("argon2: {e}"))
    };
    Ok(NewCredentials {
        token: format!("{USER_TOKEN_PREFIX}{token_id}_{secret}"),
        password_hash: hash(&password)?,
        token_hash: hash(&secret)?,
        password,
        token_id,
    })
}

/// A random password of 24 characters from an alphabet of 62 (letters and digits, so it
/// survives copying from a terminal), drawn without modulo bias.
fn new_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
        // 248 = 4 × 62: bytes at or above it are dropped, so each character is uniform.
        for x in b.into_iter().filter(|x| *x < 248) {
            if out.len() < 24 {
                out.push(char::from(ALPHABET[usize::from(x % 62)]));
            }
        }
    }
    Ok(out)
}

/// A new TOTP key: 20 random bytes (RFC 4226 §4 R6: 160 bits recommended), hex as stored.
/// Errors: no randomness.
pub fn new_totp_secret() -> Result<String, String> {
    let mut key = [0u8; 20];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
    Ok(hex(&key))
}

/// The `otpauth://totp/` URI an authenticator app reads (as a QR code or typed): the key in
/// base32 (RFC 4648 §6, unpadded), SHA1, 6 digits, 30 s; `issuer` and `name` label it.
pub fn otpauth_uri(issuer: &str, name: &str, secret_hex: &str) -> Option<String> {
    let key = unhex(secret_hex)?;
    let label = |s: &str| crate_url_encode(s);
    Some(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
        label(issuer),
        label(name),
        base32(&key),
        label(issuer)
    ))
}

fn crate_url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Base32 (RFC 4648 §6) without padding, as otpauth URIs carry keys.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HOTP (RFC 4226 §5.3) of counter `counter` under `key`: HMAC-SHA1, dynamic truncation,
/// [`TOTP_DIGITS`] digits. SHA-1 is what RFC 6238 defaults to and what authenticator apps
/// implement; HMAC-SHA1 stays sound as a MAC (RFC 4226 Appendix A.4 notes that collision
/// attacks on SHA-1 do not carry over to HMAC).
pub fn hotp(key: &[u8], counter: u64) -> u32 {
    let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&k, &counter.to_be_bytes());
    let hs = tag.as_ref();
    let offset = usize::from(hs[hs.len() - 1] & 0x0f);
    let bin = (u32::from(hs[offset] & 0x7f) << 24)
        | (u32::from(hs[offset + 1]) << 16)
        | (u32::from(hs[offset + 2]) << 8)
        | u32::from(hs[offset + 3]);
    bin % 10u32.pow(TOTP_DIGITS)
}

/// The time step of `unix_secs` (RFC 6238 §4.2: `T = (now - T0) / X`, `T0 = 0`).
pub fn totp_step(unix_secs: u64) -> u64 {
    unix_secs / TOTP_STEP_SECS
}

/// The TOTP code of `unix_secs` under the key `secret_hex`, zero-padded (for tests and a
/// first check at enrolment). `None` when the key is not hex.
pub fn totp_now(secret_hex: &str, unix_secs: u64) -> Option<String> {
    let key = unhex(secret_hex)?;
    Some(format!(
        "{:0width$}",
        hotp(&key, totp_step(unix_secs)),
        width = TOTP_DIGITS as usize
    ))
}

/// What a user's role asks of its login (`[users]` of `concord.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserOptions {
    /// Roles whose users must give a TOTP code at the web UI's login; a user of such a role
    /// without a TOTP key cannot log in (`concord user reset NAME --totp` enrols one).
    pub totp_required: Vec<Role>,
}

impl UserOptions {
    /// Whether `role` must give a TOTP code.
    pub fn totp_required(&self, role: Role) -> bool {
        self.totp_required.contains(&role)
    }
}

/// Why a user's login was refused (beyond wrong credentials, which are `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The authenticator refused or failed (throttled, busy, store).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The stored role is not one of the four.
    #[error("user {name:?} has the unknown role {role:?} in the store")]
    BadRole {
        /// The user.
        name: String,
        /// What the store holds.
        role: String,
    },
}

/// A user whose credentials were checked: its name and role, as the doors act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    /// The user as stored.
    pub user: User,
    /// Its role.
    pub role: Role,
}

impl LoggedIn {
    /// The actor of its requests.
    pub fn actor(&self) -> Actor {
        Actor::User {
            name: self.user.name.clone(),
            role: self.role,
        }
    }
}

/// The role of a stored user. Errors: [`LoginError::BadRole`].
pub fn role_of(user: &User) -> Result<Role, LoginError> {
    user.role.parse().map_err(|_| LoginError::BadRole {
        name: user.name.clone(),
        role: user.role.clone(),
    })
}

/// The throttling key of a user name: short and of fixed length, whatever the name.
fn user_key(name: &str) -> String {
    format!("user:{}", &token_hash(name)[..16])
}

impl Authenticator {
    /// The user `name` if `password` is its password; `None` for an unknown user or a wrong
    /// password (the same answer, after the same work). The second factor is not checked
    /// here ([`Authenticator::check_totp`]).
    ///
    /// Errors: [`AuthError::Throttled`] past the quota of the source or of the user,
    /// [`AuthError::Busy`], a store failure; [`LoginError::BadRole`].
    pub async fn authenticate_password(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<Option<LoggedIn>, LoginError> {
        let store = self.store.clone();
        let n = name.to_owned();
        let user = tokio::task::spawn_blocking(move || store.user(&n))
            .await
            .map_err(|e| AuthError::Worker(e.to_string()))?
            .map_err(AuthError::from)?;
        let hash = user
            .as_ref()
            .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
        let digest = token_hash(&format!("password\0{name}\0{password}"));
        self.check_secret(user, hash, digest, password, source, &user_key(name))
            .await
    }

    /// The user whose login token `token` is (`concordu_<token_id>_<secret>`), for the admin
    /// REST API; `None` for anything else or a wrong secret.
    ///
    /// Errors: as [`Authenticator::authenticate_password`].
    pub async fn authenticate_user_token(
        self: &Arc<Self>,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<Option<LoggedIn>, LoginError> {
        let Some((token_id, secret)) = token
            .strip_prefix(USER_TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let store = self.store.clone();
        let id = token_id.to_owned();
        let user = tokio::task::spawn_blocking(move || store.user_by_token_id(&id))
            .await
            .map_err(|e| AuthError::Worker(e.to_string()))?
            .map_err(AuthError::from)?;
        let hash = user
            .as_ref()
            .map_or_else(|| dummy_hash().to_owned(), |u| u.token_hash.clone());
        let digest = token_hash(token);
        let id: String = token_id.chars().take(32).collect();
        self.check_secret(user, hash, digest, secret, source, &format!("utok:{id}"))
            .await
    }

    /// The common part: a secret verified before passes; otherwise the attempt is charged,
    /// a pair that failed before fails without argon2, and the rest is verified.
    async fn check_secret(
        self: &Arc<Self>,
        user: Option<User>,
        hash: String,
        digest: String,
        secret: &str,
        source: Option<IpAddr>,
        key: &str,
    ) -> Result<Option<LoggedIn>, LoginError> {
        let known = lock(&self.verified).get(&digest) == Some(&hash);
        if !known {
            self.charge(source, Some(key))?;
            let failed_before = lock(&self.failed)
                .get(&digest)
                .is_some_and(|(h, _)| *h == hash);
            if failed_before {
                return Ok(None);
            }
            let ok = self.verify(secret.to_owned(), hash.clone()).await? && user.is_some();
            if ok {
                lock(&self.verified).insert(digest, hash);
            } else {
                self.remember_failure(digest, hash);
                return Ok(None);
            }
        }
        match user {
            Some(user) => {
                let role = role_of(&user)?;
                Ok(Some(LoggedIn { user, role }))
            }
            None => Ok(None),
        }
    }

    /// Checks the TOTP code `code` of `user` at `unix_secs`: charged against the quotas
    /// first (every code tried counts), then compared in constant time with the codes of
    /// the steps one before to one after now, and the matching step used once. `false` for a
    /// wrong, reused or malformed code, or a user without a key.
    ///
    /// Errors: [`AuthError::Throttled`], a store failure.
    pub async fn check_totp(
        self: &Arc<Self>,
        user: &User,
        code: &str,
        unix_secs: u64,
        source: Option<IpAddr>,
    ) -> Result<bool, AuthError> {
        self.charge(source, Some(&user_key(&user.name)))?;
        let Some(key) = user.totp_secret.as_deref().and_then(unhex) else {
            return Ok(false);
        };
        let code = code.trim();
        let now = totp_step(unix_secs);
        let mut matched = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let want = format!("{:0width$}", hotp(&key, step), width = TOTP_DIGITS as usize);
            // Every step is compared (no early exit), in constant time.
            if bool::from(want.as_bytes().ct_eq(code.as_bytes())) {
                matched = Some(step);
            }
        }
        let Some(step) = matched.and_then(|s| i64::try_from(s).ok()) else {
            return Ok(false);
        };
        let store: Arc<dyn Store> = self.store.clone();
        let name = user.name.clone();
        tokio::task::spawn_blocking(move || store.use_totp_step(&name, step))
            .await
            .map_err(|e| AuthError::Worker(e.to_string()))?
            .map_err(|e: StoreError| AuthError::Store(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA1 rows (the key is the ASCII "12345678901234567890"); the
    /// table's 8-digit codes end in these 6 digits.
    #[test]
    fn rfc6238_test_vectors() {
        let key = hex(b"12345678901234567890");
        for (t, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(totp_now(&key, t).as_deref(), Some(code), "T = {t}");
        }
    }

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn credentials_are_fresh_and_hashed() {
        let a = new_credentials().unwrap();
        let b = new_credentials().unwrap();
        assert_ne!(a.password, b.password);
        assert_eq!(a.password.len(), 24);
        assert!(
            a.token
                .starts_with(&format!("{USER_TOKEN_PREFIX}{}_", a.token_id))
        );
        assert!(a.password_hash.starts_with("$argon2id$"));
        let uri = otpauth_uri("Concord node", "alice", &hex(b"12345678901234567890")).unwrap();
        assert!(uri.starts_with(
            "otpauth://totp/Concord%20node:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
    }
}
