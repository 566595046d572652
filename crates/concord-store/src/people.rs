//! Named users of a node and the web UI's sessions (issue 20), as the store keeps them
//! (schema 18, `migrations/*/0018_people.sql`). What a role may do is not here: the store
//! keeps the role's name, `concord_server::roles` decides.

/// A named user: a person of the node's own team (DESIGN.md, "Terms": analyst, releaser,
/// operator, auditor), not a partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The login name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit
    /// ([`check_user_name`]).
    pub name: String,
    /// The role's name (`analyst`, `releaser`, `operator`, `auditor`).
    pub role: String,
    /// 16 hex digits, random: finds the user from a login token
    /// (`concordu_<token_id>_<secret>`) without its name. Unique.
    pub token_id: String,
    /// argon2id PHC hash of the password (the web UI's login).
    pub password_hash: String,
    /// argon2id PHC hash of the login token's secret part (the admin REST API).
    pub token_hash: String,
    /// The RFC 6238 key, hex; `None`: no second factor.
    pub totp_secret: Option<String>,
    /// When the user was added, nanoseconds since the epoch.
    pub created_ns: i64,
}

/// What a web session stands for (`kind` in the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionSubject {
    /// Logged in with the admin token.
    Admin,
    /// Logged in with a partner's API key: its key id (the partner's rights are re-read by it
    /// on each request, so a rotated key or a removed partner ends the session).
    Partner(String),
    /// Logged in as a named user: its name (re-read on each request; removing the user or
    /// resetting its secret deletes its sessions).
    User(String),
}

impl SessionSubject {
    /// `(kind, subject)` as stored.
    pub(crate) fn columns(&self) -> (&'static str, &str) {
        match self {
            SessionSubject::Admin => ("admin", ""),
            SessionSubject::Partner(k) => ("partner", k),
            SessionSubject::User(n) => ("user", n),
        }
    }

    /// From the stored columns. Errors: an unknown kind ([`crate::StoreError::Corrupt`]).
    pub(crate) fn from_columns(kind: &str, subject: String) -> crate::Result<SessionSubject> {
        match kind {
            "admin" => Ok(SessionSubject::Admin),
            "partner" => Ok(SessionSubject::Partner(subject)),
            "user" => Ok(SessionSubject::User(subject)),
            other => Err(crate::StoreError::Corrupt(format!(
                "web_sessions: unknown kind {other:?}"
            ))),
        }
    }
}

/// A web session as stored: found by the SHA-256 of its cookie value, never the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 (hex, 64 digits) of the cookie value.
    pub id_sha256: String,
    /// Who logged in.
    pub subject: SessionSubject,
    /// When it started, nanoseconds since the epoch (the absolute expiry counts from here).
    pub created_ns: i64,
    /// Its last request, nanoseconds since the epoch (the idle expiry counts from here).
    pub last_seen_ns: i64,
}

/// When a session ends, for [`crate::Store::touch_session`] and
/// [`crate::Store::start_session`]: all in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionClock {
    /// Now.
    pub now_ns: i64,
    /// A session unused this long has ended.
    pub idle_ns: i64,
    /// A session this old has ended, used or not.
    pub absolute_ns: i64,
    /// `last_seen` is written only when older than this (a write per page would make every
    /// read of the UI a write; the idle expiry is that much less precise).
    pub touch_every_ns: i64,
}

impl SessionClock {
    /// Whether a session with these times is still live.
    pub fn live(&self, created_ns: i64, last_seen_ns: i64) -> bool {
        self.now_ns.saturating_sub(last_seen_ns) < self.idle_ns
            && self.now_ns.saturating_sub(created_ns) < self.absolute_ns
    }
}

/// Checks a user name: 1–64 of `a-z 0-9 . _ -`, the first a letter or digit (so it is a
/// safe word in a log line, a URL path and an audit entry's `user:NAME`). Errors: the rule
/// broken, naming the name.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
    if name.is_empty() || name.len() > 64 {
        return Err(format!("user name {name:?}: must be 1 to 64 characters"));
    }
    if !name.chars().all(ok_char) {
        return Err(format!(
            "user name {name:?}: only lowercase letters a-z, digits and . _ - are allowed"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "user name {name:?}: must start with a letter or a digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("a.b-c_9").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("Alice").is_err());
        assert!(check_user_name("-x").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn session_clock() {
        let c = SessionClock {
            now_ns: 100,
            idle_ns: 10,
            absolute_ns: 50,
            touch_every_ns: 1,
        };
        assert!(c.live(60, 95));
        assert!(!c.live(60, 90));
        assert!(!c.live(50, 99));
    }
}

/// A change that widens a cross-border release, kept until a second releaser decides on it
/// (issue 20, item 3: four-eyes release; schema 19, `migrations/*/0019_approvals.sql`).
/// What counts as widening, and how the change is applied, is not here: the store keeps the
/// request and its decision, and applies the settings and audit records it is given in the
/// transaction that records an approval ([`crate::Store::decide_approval`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    /// Its id (a UUID).
    pub id: String,
    /// `sharing` (a collection's sharing), `grant` (a grant in an incident) or `partner`
    /// (a partner's grants, groups or jurisdiction, schema 22).
    pub kind: String,
    /// The collection id (`sharing`), the incident id (`grant`) or the partner's name
    /// (`partner`).
    pub target: String,
    /// The change as JSON, applied to what is current when approved.
    pub change: String,
    /// What it widens, in English words, written when asked (shown as stored for approvals
    /// without a `request`).
    pub summary: String,
    /// Who asked, as the audit log names a person (`user:NAME`, `admin-token`, `operator`).
    pub requested_by: String,
    /// When, nanoseconds since the epoch.
    pub requested_ns: i64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Who decided (named like `requested_by`); `None` while pending.
    pub decided_by: Option<String>,
    /// When, nanoseconds since the epoch; `None` while pending.
    pub decided_ns: Option<i64>,
    /// Why it was rejected, if a reason was given.
    pub reason: Option<String>,
    /// What it asks and widens, structured (JSON), so that it is rendered in the reader's
    /// language when shown (schema 22); `None` for approvals asked before.
    pub request: Option<String>,
}

/// A partner record an approval replaces, compare-and-set: replaced only if the stored
/// partner of that name is still exactly `was`, the record the change was computed from, so
/// that an approval never applies a change computed from a stale record
/// ([`crate::Store::decide_approval`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerSwap {
    /// The stored record the change was computed from.
    pub was: crate::Partner,
    /// The record after the change (the same name and key).
    pub now: crate::Partner,
}

/// A setting an approval writes, compare-and-set: written only if the setting still holds
/// `expected` (`None`: absent), the value the change was computed from, so that a change
/// made meanwhile is not lost ([`crate::Store::decide_approval`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingChange {
    /// The setting's key.
    pub key: String,
    /// Its value when the change was computed.
    pub expected: Option<String>,
    /// The new value.
    pub value: String,
}

/// A decision on a pending [`Approval`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// `true`: approved (the settings and audit records given are applied with it);
    /// `false`: rejected (nothing is applied).
    pub approve: bool,
    /// Who decides (named like [`Approval::requested_by`]).
    pub by: String,
    /// When, nanoseconds since the epoch.
    pub at_ns: i64,
    /// Why (a rejection's reason).
    pub reason: Option<String>,
}

/// A web UI login through OpenID Connect between the redirect to the provider and its
/// answer (issue 20, item 5; schema 20, `migrations/*/0020_oidc_logins.sql`): what the
/// callback needs to finish it, in any `serve` process on the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcLogin {
    /// The key the callback finds it by: SHA-256 (hex) of the login's `state` (RFC 6749
    /// §10.12) and of the binding its browser's cookie holds (concord-web's
    /// `oidc::login_key`), so that the `state` alone, which travels in URLs, finds nothing.
    pub state_sha256: String,
    /// The `nonce` sent (OpenID Connect Core 1.0 §3.1.2.1), to be found in the ID token.
    pub nonce: String,
    /// The PKCE `code_verifier` (RFC 7636 §4.1), sent with the code.
    pub code_verifier: String,
    /// The page to return to after the login (a local `/ui/` path).
    pub next_path: String,
    /// The client's address (an IPv6 one by its /64): what the per-source quota counts.
    pub source: String,
    /// When it began, nanoseconds since the epoch.
    pub created_ns: i64,
    /// When it expires, nanoseconds since the epoch: after it the callback is refused.
    pub expires_ns: i64,
}

/// How many logins may be pending at once ([`crate::Store::begin_oidc_login`]): the table
/// cannot be grown without bound by anyone who can reach the login page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OidcQuota {
    /// Pending logins of one source.
    pub per_source: u64,
    /// Pending logins of all sources.
    pub total: u64,
}

/// The answer of [`crate::Store::begin_oidc_login`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OidcBegin {
    /// Stored.
    Stored,
    /// Not stored: the source has [`OidcQuota::per_source`] logins pending.
    SourceFull,
    /// Not stored: [`OidcQuota::total`] logins are pending.
    TableFull,
}
