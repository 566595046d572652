//! Login through an OpenID Provider (issue 20, item 5; `[oidc]` of `concord.toml`): the
//! authorization code flow with PKCE, `state` and `nonce` ([`concord_oidc`]), finished by
//! any `serve` process on the database.
//!
//! - `GET /ui/oidc/login?next=…` begins: the provider's metadata (cached), fresh `state`,
//!   `nonce` and `code_verifier` kept as a pending login in the store
//!   ([`concord_store::Store::begin_oidc_login`]: expires after [`OidcOptions::pending_ttl`];
//!   at most [`OidcQuota::per_source`] pending per client address and
//!   [`OidcQuota::total`] in all, else 429 with `Retry-After`), a fresh random *binding*
//!   (32 bytes, hex) in a cookie that binds the login to this browser (`SameSite=Lax`: the
//!   provider's redirect back is a cross-site navigation), and a 303 to the provider's
//!   authorization endpoint. The pending login is stored under [`login_key`]`(state,
//!   binding)`: only who holds both finds it.
//! - `GET /ui/oidc/callback?code=…&state=…` finishes: the query bounded
//!   ([`OidcOptions::max_callback_bytes`], else 414); without the binding cookie, refused
//!   before the store is asked (a login begun in another browser, as in a login CSRF); else
//!   the pending login taken (deleted) from the store by [`login_key`] of the `state` and
//!   the cookie, so a state, and the code sent with it, are used once. A `state` travels in
//!   URLs (the provider's logs, the browser's history), the binding never leaves the
//!   browser that began the login: one who knows a victim's `state` but not its cookie finds
//!   nothing, so can neither use nor end the victim's login (issue 20), and gets the answer
//!   an unknown `state` gets, after the same one query. `iss`, when the provider sends it,
//!   must be the issuer (RFC 9207 §2.4); the
//!   code exchanged and the ID token validated ([`concord_oidc::Client::finish`], OpenID
//!   Connect Core 1.0 §3.1.3.7).
//!
//! Who logs in: the ID token's claim [`UserClaim`] names a user of this node, and the role is
//! the user's own record's; the provider grants nothing (fail closed). A user whose role must
//! give a second factor (`[users] totp_required`) logs in only when the token's `amr` holds
//! one of [`OidcOptions::second_factor_amr`]. An identity without a user, and one refused for
//! its second factor, get the same page (the reason is in the node's log), so the page tells
//! no more about which users exist than the password login does.
//!
//! A login makes the same database session as a password login, stored with its audit entry
//! (direction `admin`, door `web-login`, person `user:NAME`, the method in its
//! transformations) in one transaction. The session cookie is `SameSite=Strict`, which a
//! browser does not send on a redirect chain begun by another site, so the callback answers
//! with a page that moves on to `next` itself (a same-site navigation).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use concord_oidc::OidcError;
use concord_store::{AuditRecord, OidcBegin, OidcLogin, OidcQuota, SessionSubject};

use crate::i18n::Locale;
use crate::{Chrome, Lang, Web, WebError, blocking, local_path, render, session};

/// The cookie that binds a login in progress to the browser that began it (its `state`).
pub const STATE_COOKIE: &str = "concord_oidc";

/// Which claim of the ID token names the user of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserClaim {
    /// The claim's string value is the user's name (`preferred_username` by default). Trusts
    /// the provider to keep that claim unique and to let no one choose it freely (OpenID
    /// Connect Core 1.0 §5.7 does not promise either).
    Claim(String),
    /// The ID token's `sub` (stable and unique per provider, Core §2), linked to a user
    /// explicitly: `sub` → user name (`[oidc.subjects]`).
    Subject(BTreeMap<String, String>),
}

/// The web UI's OpenID Connect login (`[oidc]`).
#[derive(Debug)]
pub struct OidcOptions {
    /// The relying party (provider, client, limits of the provider's answers).
    pub client: concord_oidc::Client,
    /// Which claim names the user.
    pub user_claim: UserClaim,
    /// `amr` values (RFC 8176) that count as a second factor for a role of
    /// `[users] totp_required`.
    pub second_factor_amr: Vec<String>,
    /// How long a begun login may take to come back.
    pub pending_ttl: Duration,
    /// How many logins may be pending.
    pub quota: OidcQuota,
    /// The largest query of the callback, in bytes.
    pub max_callback_bytes: usize,
}

/// The routes, when `[oidc]` is set.
pub fn routes(ui: Router<Web>) -> Router<Web> {
    ui.route("/ui/oidc/login", get(begin))
        .route("/ui/oidc/callback", get(callback))
}

fn now_ns() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    )
    .unwrap_or(i64::MAX)
}

/// The key under which a pending login is stored ([`concord_store::OidcLogin::state_sha256`]):
/// SHA-256 (hex) of its `state` and the browser binding its cookie holds ([`STATE_COOKIE`]),
/// `STATE` `\n` `BINDING`. A `state` alone (it travels in URLs) finds no login.
pub fn login_key(state: &str, binding: &str) -> String {
    concord_server::auth::token_hash(&format!("{state}\n{binding}"))
}

/// A fresh browser binding: 32 random bytes, hex. Errors: the system's random source failed.
fn new_binding() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("random binding: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The quota's key of a client address: an IPv4 address, or an IPv6 address's /64 (one
/// host usually holds a whole /64, so counting single IPv6 addresses would count nothing).
pub fn source_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{STATE_COOKIE}={value}; Path=/ui/oidc/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// An error of the provider, as a page: 502 when the provider failed or answered what it
/// must not (too large, too slow, invalid), 401 when it refused the code or the ID token
/// broke a rule.
fn provider_error(tr: &'static Locale, e: &OidcError) -> WebError {
    tracing::warn!(error = %e, "OpenID Connect login");
    let status = match e {
        OidcError::CodeRefused { .. } | OidcError::IdToken { .. } => StatusCode::UNAUTHORIZED,
        OidcError::Config(_) | OidcError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    };
    WebError::new(status, tr.t1("oidc-failed", "reason", e.to_string()))
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/oidc/login`: begins a login (see the module's documentation).
async fn begin(
    State(web): State<Web>,
    Lang(tr): Lang,
    secure: Option<axum::Extension<concord_server::TlsConnection>>,
    source: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Query(q): Query<NextQuery>,
) -> Result<Response, WebError> {
    let Some(o) = web.oidc.clone() else {
        return Err(WebError::not_found(tr.t("error-no-page")));
    };
    let next = local_path(q.next.as_deref());
    let source = source_key(source.map(|s| s.0.0.ip()));
    let store = web.store();
    let ttl = o.pending_ttl;
    let o2 = o.clone();
    let (auth, binding, begun) = blocking(move || {
        let auth = o2.client.begin().map_err(|e| provider_error(tr, &e))?;
        let binding = new_binding()
            .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let now = now_ns();
        let login = OidcLogin {
            state_sha256: login_key(&auth.state, &binding),
            nonce: auth.nonce.clone(),
            code_verifier: auth.code_verifier.clone(),
            next_path: next,
            source,
            created_ns: now,
            expires_ns: now.saturating_add(i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX)),
        };
        let begun = store.begin_oidc_login(&login, now, o2.quota)?;
        Ok((auth, binding, begun))
    })
    .await?;
    if begun != OidcBegin::Stored {
        tracing::warn!(?begun, "OpenID Connect login refused: too many pending");
        let mut resp =
            WebError::new(StatusCode::TOO_MANY_REQUESTS, tr.t("oidc-busy")).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(ttl.as_secs().max(1)));
        return Ok(resp);
    }
    let cookie = state_cookie(&binding, ttl.as_secs(), secure.is_some());
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&auth.url), // 303 See Other
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

#[derive(Template)]
#[template(path = "oidc_done.html")]
struct DonePage {
    c: Chrome,
    next: String,
}

/// The user an ID token names, and why not when it names none (for the log only).
fn user_of(
    web: &Web,
    o: &OidcOptions,
    token: &concord_oidc::IdToken,
) -> Result<Result<concord_store::User, String>, WebError> {
    let name = match &o.user_claim {
        UserClaim::Claim(c) => token.string(c).map(str::to_owned),
        UserClaim::Subject(links) => links.get(token.sub()).cloned(),
    };
    let Some(name) = name else {
        return Ok(Err("no user linked to this identity".to_owned()));
    };
    if concord_store::people::check_user_name(&name).is_err() {
        return Ok(Err(format!("{name:?} is not a user name")));
    }
    let Some(user) = web.store().user(&name)? else {
        return Ok(Err(format!("no user named {name:?}")));
    };
    let Ok(role) = user.role.parse::<concord_server::roles::Role>() else {
        return Ok(Err(format!("user {name:?} has an unknown role")));
    };
    if web.app.users().totp_required(role) {
        let amr = token.amr();
        if !amr.iter().any(|m| o.second_factor_amr.contains(m)) {
            return Ok(Err(format!(
                "the role {} needs a second factor ([users] totp_required) and the ID token's \
                 amr {amr:?} has none of [oidc] second_factor_amr {:?}",
                role.as_str(),
                o.second_factor_amr
            )));
        }
    }
    Ok(Ok(user))
}

/// `GET /ui/oidc/callback`: finishes a login (see the module's documentation).
async fn callback(
    State(web): State<Web>,
    Lang(tr): Lang,
    secure: Option<axum::Extension<concord_server::TlsConnection>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let Some(o) = web.oidc.clone() else {
        return Err(WebError::not_found(tr.t("error-no-page")));
    };
    let raw = raw.unwrap_or_default();
    if raw.len() > o.max_callback_bytes {
        return Err(WebError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "{} ([oidc] max_callback_bytes)",
                tr.t1("oidc-too-long", "limit", o.max_callback_bytes)
            ),
        ));
    }
    let q: CallbackQuery = Query::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| WebError::bad_request(tr.t("oidc-state")))?,
    )
    .map_err(|e| WebError::bad_request(e.body_text()))?
    .0;
    let Some(state) = q.state.clone() else {
        return Err(WebError::bad_request(tr.t("oidc-state")));
    };
    // The binding first: without it nothing is asked of the store, whatever the state, so
    // the answer cannot tell a known state from an unknown one; with it, the one query finds
    // the login only by state and binding together (a wrong binding finds nothing, as an
    // unknown state does, and takes nothing).
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let Some(binding) = session::cookie(cookies, STATE_COOKIE).filter(|c| !c.is_empty()) else {
        return Err(WebError::bad_request(tr.t("oidc-browser")));
    };
    let store = web.store();
    let key = login_key(&state, binding);
    let now = now_ns();
    let Some(pending) = blocking(move || Ok(store.take_oidc_login(&key, now)?)).await? else {
        return Err(WebError::bad_request(tr.t("oidc-state")));
    };
    let settings = o.client.settings();
    if let Some(iss) = &q.iss
        && *iss != settings.issuer
    {
        return Err(WebError::bad_request(tr.t1(
            "oidc-failed",
            "reason",
            format!(
                "the answer names the issuer {:?}, not {:?} (RFC 9207)",
                concord_oidc::printable(iss, 200),
                settings.issuer
            ),
        )));
    }
    if let Some(error) = &q.error {
        let description = q
            .error_description
            .as_deref()
            .map(|d| format!(": {}", concord_oidc::printable(d, 300)))
            .unwrap_or_default();
        return Err(WebError::new(
            StatusCode::UNAUTHORIZED,
            tr.t1(
                "oidc-provider-error",
                "error",
                format!("{}{description}", concord_oidc::printable(error, 100)),
            ),
        ));
    }
    let Some(code) = q.code.clone() else {
        return Err(WebError::bad_request(tr.t("oidc-state")));
    };
    let web2 = web.clone();
    let o2 = o.clone();
    let (user, token) = blocking(move || {
        let secs = |ns: i64| ns / 1_000_000_000;
        let token = o2
            .client
            .finish(
                &code,
                &pending.code_verifier,
                &pending.nonce,
                secs(pending.created_ns),
                secs(now_ns()),
            )
            .map_err(|e| provider_error(tr, &e))?;
        let user = user_of(&web2, &o2, &token)?;
        Ok((user, token))
    })
    .await?;
    let user = match user {
        Ok(u) => u,
        Err(why) => {
            let shown = match &o.user_claim {
                UserClaim::Claim(c) => token.string(c).unwrap_or_default().to_owned(),
                UserClaim::Subject(_) => token.sub().to_owned(),
            };
            tracing::warn!(
                issuer = %settings.issuer,
                sub = %concord_oidc::printable(token.sub(), 200),
                reason = %why,
                "OpenID Connect login refused"
            );
            if shown.is_empty()
                && let UserClaim::Claim(c) = &o.user_claim
            {
                return Err(WebError::new(
                    StatusCode::FORBIDDEN,
                    tr.t1("oidc-no-claim", "claim", c.clone()),
                ));
            }
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                tr.t1("oidc-refused", "name", concord_oidc::printable(&shown, 200)),
            ));
        }
    };
    let method = vec![
        "method oidc".to_owned(),
        format!("issuer {}", settings.issuer),
        format!("sub {}", concord_oidc::printable(token.sub(), 255)),
        format!("amr {}", token.amr().join(" ")),
    ];
    let sessions = web.sessions.clone();
    let name = user.name.clone();
    let id = blocking(move || {
        sessions
            .start_audited(
                SessionSubject::User(name.clone()),
                &[login_record(&name, method)],
            )
            .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
    .await?;
    let secure = secure.is_some();
    let next = local_path(Some(&pending.next_path));
    let page = render(&DonePage {
        c: Chrome {
            tr,
            who: None,
            admin: false,
            releaser: false,
            section: "login",
            back: "/ui/login".to_owned(),
            title: tr.t("oidc-done-title"),
        },
        next,
    })?;
    let mut resp = page.into_response();
    // The binding cookie stays until its Max-Age: it finds nothing any more (its login was
    // taken), and a replay of this callback in this browser is then told "already used".
    if let Ok(v) = HeaderValue::from_str(&crate::session_cookie(&id, secure)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The audit record of a named user's login (door `web-login`): who, and by which method
/// (`method password`, `method password+totp`, `method oidc` with issuer, `sub` and `amr`).
pub fn login_record(name: &str, method: Vec<String>) -> AuditRecord {
    AuditRecord {
        direction: "admin".to_owned(),
        door: "web-login".to_owned(),
        partner: "admin".to_owned(),
        person: Some(format!("user:{name}")),
        collection: String::new(),
        object_id: String::new(),
        modified: String::new(),
        decision: "login".to_owned(),
        transformations: method,
        policy_version: String::new(),
        vid: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        assert_eq!(source_key(Some("192.0.2.7".parse().unwrap())), "192.0.2.7");
        assert_eq!(
            source_key(Some("2001:db8:1:2:3:4:5:6".parse().unwrap())),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            source_key(Some("2001:db8:1:2:ffff::1".parse().unwrap())),
            "2001:db8:1:2::/64"
        );
        // An IPv4 address mapped into IPv6 counts as itself.
        assert_eq!(
            source_key(Some("::ffff:192.0.2.7".parse().unwrap())),
            "192.0.2.7"
        );
        assert_eq!(source_key(None), "unknown");
    }
}
