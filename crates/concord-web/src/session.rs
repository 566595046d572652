//! Login sessions of the UI (issue 20: in the database). A session is created by logging in
//! with the admin token or a partner's API key (checked by the same
//! [`concord_server::auth::Authenticator`] as TAXII), or as a named user with name, password
//! and, where the role needs it, a TOTP code. Its id is 256 random bits in an `HttpOnly`,
//! `SameSite=Strict` cookie (also `Secure` when served over TLS, by
//! `concord_server::serve_tls`); the store keeps only the id's SHA-256
//! ([`concord_store::Store::start_session`]), so any `serve` process on the same database
//! serves it, and a copy of the database opens none. A session ends at logout, after
//! [`IDLE`] without a request, [`ABSOLUTE`] after login, when its user is removed or reset,
//! or when its partner's key is rotated or the partner removed. The token or password
//! itself is never kept. Failed logins count against the authenticator's limits (issue 16).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concord_server::Principal;
use concord_server::roles::{Actor, Operation, Role, authorize};
use concord_store::{SessionClock, SessionSubject, Store, StoreError, WebSession};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// A session ends this long after its login, used or not (the cookie's `Max-Age` too).
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);

/// A session's last request is written to the store at most this often (a read of a page
/// is not a write each time); the idle expiry is that much less precise.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The cookie that carries the session id.
pub const COOKIE: &str = "concord_session";

/// One logged-in user, as of this request.
#[derive(Clone, Debug)]
pub struct Session {
    /// What it reads as: the admin (the operator's view, every object as stored: the admin
    /// token and every named user) or a partner (its permissions as of this request).
    pub principal: Principal,
    /// The id of the partner's API key: each request re-reads the partner's rights by it,
    /// so a rotated key or a removed partner ends the session.
    pub key_id: Option<String>,
    /// The named user and its role; `None` for the admin token and partners.
    pub user: Option<(String, Role)>,
}

impl Session {
    /// The name shown in the header: the user's, `admin`, or the partner's name.
    pub fn who(&self) -> String {
        if let Some((name, _)) = &self.user {
            return name.clone();
        }
        match &self.principal {
            Principal::Admin => "admin".to_owned(),
            Principal::Partner(p) => p.profile.name.clone(),
        }
    }

    /// The audit log's `partner` of this session's transfers: `admin` for the operator's
    /// view (the admin token and every named user, who is named as the entry's person),
    /// else the partner's name.
    pub fn audit_partner(&self) -> String {
        match &self.principal {
            Principal::Admin => "admin".to_owned(),
            Principal::Partner(p) => p.profile.name.clone(),
        }
    }

    /// Whether this session reads as the operator (not a partner): every object as stored.
    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Admin)
    }

    /// Who acts, for [`authorize`] and the audit log.
    pub fn actor(&self) -> Actor {
        match (&self.user, &self.key_id) {
            (Some((name, role)), _) => Actor::User {
                name: name.clone(),
                role: *role,
            },
            (None, Some(key_id)) => Actor::PartnerKey {
                key_id: key_id.clone(),
            },
            (None, None) => Actor::AdminToken,
        }
    }

    /// Whether this session may do `op` ([`authorize`], the one table).
    pub fn may(&self, op: Operation) -> bool {
        authorize(&self.actor(), op).is_ok()
    }
}

/// The sessions of the node, in its store.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

/// The SHA-256 (hex) of a cookie value: what the store keeps.
fn id_hash(cookie: &str) -> String {
    concord_server::auth::token_hash(cookie)
}

fn clock() -> SessionClock {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    SessionClock {
        now_ns: i64::try_from(now).unwrap_or(i64::MAX),
        idle_ns: ns(IDLE),
        absolute_ns: ns(ABSOLUTE),
        touch_every_ns: ns(TOUCH_EVERY),
    }
}

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The OS gave no randomness for the id.
    #[error("no randomness for a session id: {0}")]
    Random(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Sessions {
    /// The sessions kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Sessions {
        Sessions { store }
    }

    /// Starts a session for `subject`; returns the cookie value (64 hex digits). Blocking.
    ///
    /// Errors: no randomness, the store failed.
    pub fn start(&self, subject: SessionSubject) -> Result<String, SessionError> {
        self.start_audited(subject, &[])
    }

    /// [`Sessions::start`] with the login's audit records, stored in the session's
    /// transaction ([`Store::start_session_audited`]). Blocking.
    ///
    /// Errors: no randomness, the store failed.
    pub fn start_audited(
        &self,
        subject: SessionSubject,
        audit: &[concord_store::AuditRecord],
    ) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let c = clock();
        self.store.start_session_audited(
            &WebSession {
                id_sha256: id_hash(&id),
                subject,
                created_ns: c.now_ns,
                last_seen_ns: c.now_ns,
            },
            &c,
            audit,
        )?;
        Ok(id)
    }

    /// Who the live session of cookie value `cookie` stands for, touched; `None` when there
    /// is none or it ended. Blocking. Errors: the store failed.
    pub fn find(&self, cookie: &str) -> Result<Option<SessionSubject>, StoreError> {
        // A cookie value is 64 hex digits; anything else is no session (and costs no read).
        if cookie.len() != 64 || !cookie.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .store
            .touch_session(&id_hash(cookie), &clock())?
            .map(|s| s.subject))
    }

    /// Ends a session. Blocking. Errors: the store failed.
    pub fn end(&self, cookie: &str) -> Result<(), StoreError> {
        self.store.end_session(&id_hash(cookie))
    }
}

/// The value of cookie `name` in a `Cookie` header (RFC 6265 §5.4).
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_find_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(concord_store::SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let s = Sessions::new(store.clone());
        let id = s.start(SessionSubject::Admin).expect("a session");
        assert_eq!(id.len(), 64);
        assert_eq!(s.find(&id).unwrap(), Some(SessionSubject::Admin));
        assert!(s.find("0000").unwrap().is_none());
        // Another process on the same database (here: another handle) serves it too.
        assert_eq!(
            Sessions::new(store).find(&id).unwrap(),
            Some(SessionSubject::Admin)
        );
        s.end(&id).unwrap();
        assert!(s.find(&id).unwrap().is_none());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let h = Some("a=1; concord_session=abc; lang=ar");
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie(h, "lang"), Some("ar"));
        assert_eq!(cookie(h, "x"), None);
        assert_eq!(cookie(None, "x"), None);
    }
}
