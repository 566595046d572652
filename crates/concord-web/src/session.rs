//! Login sessions of the UI. A session is created by logging in with the admin token or a
//! partner's API key (checked by the same [`concord_server::auth::Authenticator`] as TAXII)
//! and lives in this process only: a random 256-bit id in an `HttpOnly`, `SameSite=Strict`
//! cookie (also `Secure` when served over TLS, by `concord_server::serve_tls`), dropped at
//! logout, after [`IDLE`] without a request, or when the server restarts. The token itself
//! is never kept. Failed logins count against the authenticator's limits (issue 16).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use concord_server::Principal;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// The cookie that carries the session id.
pub const COOKIE: &str = "concord_session";

/// One logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who: the admin or a partner (its permissions as of the last request).
    pub principal: Principal,
    /// The id of the partner's API key: each request re-reads the partner's rights by it,
    /// so a rotated key or a removed partner ends the session.
    pub key_id: Option<String>,
    last_seen: Instant,
}

impl Session {
    /// The name shown in the header: `admin` or the partner's name.
    pub fn who(&self) -> String {
        match &self.principal {
            Principal::Admin => "admin".to_owned(),
            Principal::Partner(p) => p.profile.name.clone(),
        }
    }

    /// Whether the operator pages are open to this session.
    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Admin)
    }
}

/// All sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `principal` (a partner's with the id of the key it logged in
    /// with); returns its id (64 hex digits), or `None` when the OS has no randomness.
    pub fn start(&self, principal: Principal, key_id: Option<String>) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.last_seen.elapsed() < IDLE);
        map.insert(
            id.clone(),
            Session {
                principal,
                key_id,
                last_seen: Instant::now(),
            },
        );
        Some(id)
    }

    /// The live session of `id`, touched.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get_mut(id)?;
        if s.last_seen.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    /// Replaces the principal of a live session (the partner's current rights).
    pub fn update(&self, id: &str, principal: Principal) {
        if let Some(s) = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            s.principal = principal;
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
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
        let s = Sessions::default();
        let id = s.start(Principal::Admin, None).expect("randomness");
        assert_eq!(id.len(), 64);
        assert!(s.get(&id).is_some_and(|x| x.is_admin()));
        assert!(s.get("0000").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
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
