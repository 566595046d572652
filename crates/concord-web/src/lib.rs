//! # concord-web: the web UI of a Concord node
//!
//! Served by `concord serve` beside TAXII (issue 9): `/` redirects to `/ui/`. Pages are
//! rendered on the server from askama templates (`templates/`, compiled into the binary)
//! with every string from the Fluent message files of [`i18n`]; the style sheet and the one
//! script (the relationship graph) are embedded too, so a fresh machine needs no build step
//! and a browser downloads no framework.
//!
//! - **Login** with the admin token or a partner's API key ([`session`]). The admin sees
//!   every object as stored and the operator pages; a partner sees what the egress policy
//!   gives it, exactly as its TAXII reads do ([`concord_policy::egress::egress`]).
//! - **Home** ([`dashboard`], `/ui/`): what is new since the last visit, sightings received,
//!   requests waiting for an answer, sync health, what went to each partner this week, in
//!   charts drawn on the server ([`svg`]).
//! - **Analyst pages** ([`analyst`]): collections (`/ui/collections`), objects with filters, the object page
//!   (versions, markings, references in and out, sightings, translations from
//!   `language-content`, "as partner P" through [`concord_server::policy::explain_for_partner`]),
//!   the relationship graph, import, pattern check.
//! - **Operator pages** ([`operator`]): partners, sharing groups, peers, policy, audit log.
//! - **Incident pages** ([`incidents`], the admin's only): the board, an incident's timeline,
//!   and the forms to open, request and respond, calling [`concord_coordination`] as
//!   `concord incident` does.
//!
//! Every response carries a Content-Security-Policy that allows only this origin's scripts
//! and styles; forms that change state are POSTs, refused when `Origin` names another site
//! (the session cookie is `SameSite=Strict` as well).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use concord_server::{AppState, Principal};
use concord_store::Store;

pub mod analyst;
pub mod approvals;
pub mod catalogue;
pub mod dashboard;
pub mod graph;
pub mod i18n;
pub mod import;
pub mod incidents;
pub mod markdown;
pub mod oidc;
pub mod operator;
pub mod session;
pub mod svg;
pub mod users;

use i18n::Locale;
use session::{Session, Sessions};

/// State of the UI: the server's (store, policy, authenticator) plus sessions and indexes.
#[derive(Clone)]
pub struct Web {
    app: AppState,
    sessions: Sessions,
    catalogues: Arc<catalogue::Catalogues>,
    /// The OpenID Connect login, when `[oidc]` is set.
    oidc: Option<Arc<oidc::OidcOptions>>,
}

/// What the UI is given beyond the server's state ([`router_with`]).
#[derive(Clone, Debug, Default)]
pub struct WebOptions {
    /// The OpenID Connect login (`[oidc]`; issue 20, item 5); `None`: password, token and key
    /// logins only.
    pub oidc: Option<Arc<oidc::OidcOptions>>,
}

impl Web {
    /// The node's store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.app.store()
    }
}

/// The UI's routes (`/`, `/ui/…`), to merge into the TAXII router of the same state.
pub fn router(app: AppState) -> Router {
    router_with(app, WebOptions::default())
}

/// [`router`] with `options` (the OpenID Connect login).
pub fn router_with(app: AppState, options: WebOptions) -> Router {
    let web = Web {
        sessions: Sessions::new(app.store()),
        catalogues: Arc::new(catalogue::Catalogues::default()),
        oidc: options.oidc,
        app,
    };
    let ui = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/lang", get(set_language))
        .route("/ui/assets/{name}", get(asset))
        // Any other path under /ui/ is a page that does not exist (not a TAXII resource).
        .route(
            "/ui/{*rest}",
            axum::routing::any(|Lang(tr): Lang| async move {
                WebError::not_found(tr.t("error-no-page"))
            }),
        );
    let max_upload = usize::try_from(web.app.config().max_content_length).unwrap_or(usize::MAX);
    let ui = analyst::routes(ui, max_upload);
    let ui = operator::routes(ui);
    let ui = incidents::routes(ui);
    let ui = approvals::routes(ui);
    let ui = dashboard::routes(ui);
    let ui = if web.oidc.is_some() {
        oidc::routes(ui)
    } else {
        ui
    };
    ui.layer(middleware::from_fn_with_state(web.clone(), object_floor))
        .layer(middleware::from_fn(headers))
        .layer(middleware::from_fn_with_state(web.clone(), error_pages))
        .with_state(web)
}

/// The pages that answer a question about one object id: a partner's answer from them is
/// held to the answer floor, as TAXII's are.
const OBJECT_PAGES: [&str; 2] = [
    "/ui/c/{collection}/o/{id}",
    "/ui/c/{collection}/o/{id}/graph",
];

/// The answer floor (`[limits] answer_floor_ms`, `answer_jitter_ms`; issue 15, timing oracle
/// F2) on the object pages ([`OBJECT_PAGES`]) a partner's session reads: the page of an object
/// withheld from it is the "no such object" page of one that does not exist, and its time
/// must not tell them apart either. The same mechanism as TAXII's
/// ([`concord_server::hold_answer`]); the operator's pages are not held (it reads
/// everything, so there is nothing for it to learn).
async fn object_floor(State(web): State<Web>, req: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let by_id = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|m| OBJECT_PAGES.contains(&m.as_str()));
    let partner = by_id
        && req
            .extensions()
            .get::<Current>()
            .and_then(|c| c.session.as_ref())
            .is_some_and(|s| !s.is_admin());
    let resp = next.run(req).await;
    if !partner {
        return resp;
    }
    let floor = web.app.config().limits.answer_floor();
    concord_server::hold_answer(floor, started, 1, resp).await
}

/// Error pages in the page frame (issue 25): a [`WebError`] is rendered where it is raised
/// without knowing who asks; here, where the request is known, its page is rendered again
/// with the header, the navigation of the session (if any) and the language switch, in the
/// request's language. Status and headers (the Content-Security-Policy among them) stay.
async fn error_pages(State(web): State<Web>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Lang(tr) = Lang::from_request_parts(&mut parts, &web)
        .await
        .unwrap_or_else(|never| match never {});
    let current = Current::load(&web, &parts).await;
    let session = current.session.clone();
    parts.extensions.insert(current);
    let back = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/ui/".to_owned());
    let resp = next.run(Request::from_parts(parts, body)).await;
    let Some(shown) = resp.extensions().get::<ErrorShown>().cloned() else {
        return resp;
    };
    let c = Chrome {
        tr,
        who: session.as_ref().map(Session::who),
        admin: session.as_ref().is_some_and(Session::is_admin),
        releaser: session
            .as_ref()
            .is_some_and(|s| s.may(concord_server::roles::Operation::Release)),
        section: "",
        back: if back.starts_with("/ui/") {
            back
        } else {
            "/ui/".to_owned()
        },
        title: String::new(),
    };
    let Ok(page) = ErrorPage::new(c, shown.status, shown.message).render() else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(page))
}

/// The session of a request, looked up once by [`error_pages`] (the outermost layer) and
/// handed to the inner layers and [`Viewer`] in the request's extensions.
#[derive(Clone)]
struct Current {
    /// The cookie's value, when the request carries one.
    cookie: Option<String>,
    /// The store's session for it, if live.
    subject: Option<concord_store::SessionSubject>,
    /// Who it is as of this request (`None`: no session, or it stands for a user or a
    /// partner's key that is gone).
    session: Option<Session>,
}

impl Current {
    /// Looks the request's session up in the store and resolves it: a user's role and a
    /// partner's rights as they are now. A store failure counts as no session (logged).
    async fn load(web: &Web, parts: &Parts) -> Current {
        let cookies = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        let cert = concord_server::mtls::client_cert_sha256(&parts.extensions).map(str::to_owned);
        let cookie = session::cookie(cookies, session::COOKIE).map(str::to_owned);
        let Some(value) = cookie.clone() else {
            return Current {
                cookie,
                subject: None,
                session: None,
            };
        };
        let web2 = web.clone();
        let found = tokio::task::spawn_blocking(move || {
            let subject = web2.sessions.find(&value)?;
            let session = match &subject {
                None => None,
                Some(s) => resolve(&web2, s, cert.as_deref())?,
            };
            Ok::<_, concord_store::StoreError>((subject, session))
        })
        .await;
        let (subject, session) = match found {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading a web session");
                (None, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a web session");
                (None, None)
            }
        };
        Current {
            cookie,
            subject,
            session,
        }
    }
}

/// Who a stored session stands for now: the admin token; a partner by its key's id (its
/// current rights; `None` once the key was rotated or the partner removed); a named user
/// with its current role (`None` once removed). A partner whose key is bound to a client
/// certificate is `None` too over a connection that does not present it (`client_cert`: the
/// pin of the one presented; issue 19): the session is its key presented again, and TAXII
/// asks the certificate of each request.
/// Blocking.
fn resolve(
    web: &Web,
    subject: &concord_store::SessionSubject,
    client_cert: Option<&str>,
) -> Result<Option<Session>, concord_store::StoreError> {
    use concord_store::SessionSubject as S;
    Ok(match subject {
        S::Admin => Some(Session {
            principal: Principal::Admin,
            key_id: None,
            user: None,
        }),
        S::Partner(key_id) => web
            .app
            .authenticator()
            .partner_by_key_id(key_id)?
            .filter(|principal| match principal {
                Principal::Partner(p) => p.presented_by(client_cert),
                Principal::Admin => true,
            })
            .map(|principal| Session {
                principal,
                key_id: Some(key_id.clone()),
                user: None,
            }),
        S::User(name) => web.store().user(name)?.and_then(|u| {
            let role = u.role.parse().ok()?;
            Some(Session {
                principal: Principal::Admin,
                key_id: None,
                user: Some((u.name, role)),
            })
        }),
    })
}

/// Security headers on every UI response, and the same-origin check of state-changing
/// requests (a POST whose `Origin` is another site is refused).
async fn headers(req: Request, next: Next) -> Response {
    if req.method() == Method::POST
        && let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
    {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let same = origin
            .split_once("://")
            .is_some_and(|(_, h)| h.eq_ignore_ascii_case(host));
        if !same {
            return WebError::new(
                StatusCode::FORBIDDEN,
                "cross-site request refused (Origin is another site)".to_owned(),
            )
            .into_response();
        }
    }
    let mut resp = next.run(req).await;
    // Rejections of axum's extractors (a malformed query or form, say) are plain text: the
    // UI answers every error with its HTML error page, carrying the same message.
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if plain && (resp.status().is_client_error() || resp.status().is_server_error()) {
        let status = resp.status();
        let text = axum::body::to_bytes(std::mem::take(resp.body_mut()), 64 << 10)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        resp = WebError::new(status, text).into_response();
    }
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The embedded style sheet, script and icon.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match name.as_str() {
        "style.css" => (
            include_str!("../assets/style.css"),
            "text/css; charset=utf-8",
        ),
        "graph.js" => (
            include_str!("../assets/graph.js"),
            "text/javascript; charset=utf-8",
        ),
        "favicon.svg" => (include_str!("../assets/favicon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The language of a request: the `lang` cookie, else `Accept-Language`.
pub struct Lang(pub &'static Locale);

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Lang, Self::Rejection> {
        let cookies = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        let chosen = session::cookie(cookies, "lang").and_then(i18n::by_tag);
        Ok(Lang(chosen.unwrap_or_else(|| {
            i18n::negotiate(
                parts
                    .headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })))
    }
}

/// A logged-in request: the session and the language. Without a session, the request is
/// sent to the login page (and back here after it).
#[derive(Clone)]
pub struct Viewer {
    /// The session.
    pub session: Session,
    /// The language.
    pub tr: &'static Locale,
    /// Path and query of the request (the language switch returns to it).
    pub path: String,
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Viewer, Response> {
        let Lang(tr) = Lang::from_request_parts(parts, web)
            .await
            .unwrap_or_else(|never| match never {});
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/ui/".to_owned());
        let current = match parts.extensions.get::<Current>() {
            Some(c) => c.clone(),
            None => Current::load(web, parts).await,
        };
        // A partner's rights and a user's role are re-read on each request (a partner's
        // cached for a few seconds by the authenticator), as TAXII re-authenticates each
        // request. A session whose partner key or user is gone is ended.
        if let (Some(_), None, Some(cookie)) = (&current.subject, &current.session, &current.cookie)
        {
            let web2 = web.clone();
            let cookie = cookie.clone();
            let ended = tokio::task::spawn_blocking(move || web2.sessions.end(&cookie)).await;
            if let Ok(Err(e)) = ended {
                tracing::error!(error = %e, "ending a web session");
            }
        }
        // A page of a partner's session is one of its requests: held to the same quota as
        // its TAXII requests (each page it reads is audited too).
        if let Some(Session {
            principal: Principal::Partner(p),
            ..
        }) = &current.session
            && let Err(e) = web.app.authenticator().charge_partner(&p.profile.name)
        {
            return Err(concord_server::auth_error_response(&e));
        }
        // IEP 2.0 ENCRYPT IN TRANSIT must (issue 19): as for its TAXII requests, a partner
        // whose agreement requires it reads no page over plain HTTP.
        if let Some(Session {
            principal: Principal::Partner(p),
            ..
        }) = &current.session
            && parts
                .extensions
                .get::<concord_server::Transport>()
                .is_some_and(|t| !t.tls)
            && let Some((name, a, _)) = web.app.policy().agreement(&p.profile)
            && a.requires_encryption()
        {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "agreement {name} with {} requires encryption in transit (IEP 2.0 \
                     encrypt_in_transit must), and this server serves plain HTTP: connect over \
                     HTTPS",
                    p.profile.name
                ),
            )
                .into_response());
        }
        // The role check of every page of a named user ([`users::operation_of`]).
        if let Some(s) = &current.session
            && s.user.is_some()
        {
            let route = parts
                .extensions
                .get::<axum::extract::MatchedPath>()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            let op = users::operation_of(&parts.method, &route);
            if !s.may(op) {
                let role = s.user.as_ref().map(|(_, r)| r.as_str()).unwrap_or_default();
                return Err(WebError::new(
                    StatusCode::FORBIDDEN,
                    tr.t1("error-role", "role", role),
                )
                .into_response());
            }
        }
        match current.session {
            Some(session) => Ok(Viewer { session, tr, path }),
            None => {
                let next = if parts.method == Method::GET {
                    path
                } else {
                    "/ui/".to_owned()
                };
                Err(Redirect::to(&format!("/ui/login?next={}", url_encode(&next))).into_response())
            }
        }
    }
}

impl Viewer {
    /// The page frame for this viewer: `section` is the navigation entry to highlight.
    pub fn chrome(&self, section: &'static str, title: String) -> Chrome {
        Chrome {
            tr: self.tr,
            who: Some(self.session.who()),
            admin: self.session.is_admin(),
            releaser: self.session.may(concord_server::roles::Operation::Release),
            section,
            back: self.path.clone(),
            title,
        }
    }

    /// The operator pages are the admin's only.
    pub fn require_admin(&self) -> Result<(), WebError> {
        if self.session.is_admin() {
            Ok(())
        } else {
            Err(WebError::new(
                StatusCode::FORBIDDEN,
                self.tr.t("error-admin-only"),
            ))
        }
    }
}

/// What every page's frame (`templates/base.html`) needs: language, user, navigation.
pub struct Chrome {
    /// The language.
    pub tr: &'static Locale,
    /// Who is logged in (`None` on the login page).
    pub who: Option<String>,
    /// Whether the operator navigation shows.
    pub admin: bool,
    /// Whether the viewer may release (the approvals of four-eyes release show).
    pub releaser: bool,
    /// The navigation entry of this page.
    pub section: &'static str,
    /// Where the language switch returns.
    pub back: String,
    /// The page title.
    pub title: String,
}

impl Chrome {
    /// Whether `section` is this page's navigation entry.
    pub fn is(&self, section: &str) -> bool {
        self.section == section
    }

    /// Whether `tag` is the page's language.
    pub fn is_lang(&self, tag: &str) -> bool {
        self.tr.tag == tag
    }

    /// The languages for the switch: (tag, its own name).
    pub fn languages(&self) -> Vec<(&'static str, String)> {
        i18n::locales()
            .iter()
            .map(|l| (l.tag, l.t("language-name")))
            .collect()
    }
}

/// An error page: status and a message already in the viewer's language.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    /// An error with its status.
    pub fn new(status: StatusCode, message: String) -> WebError {
        WebError { status, message }
    }

    /// 404 with a message.
    pub fn not_found(message: String) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, message)
    }

    /// 400 with a message.
    pub fn bad_request(message: String) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<concord_store::StoreError> for WebError {
    fn from(e: concord_store::StoreError) -> WebError {
        tracing::error!(error = %e, "store error in the web UI");
        WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<concord_egress::EgressError> for WebError {
    fn from(e: concord_egress::EgressError) -> WebError {
        match e {
            concord_egress::EgressError::Store(e) => e.into(),
            other => WebError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<concord_server::policy::PolicyError> for WebError {
    fn from(e: concord_server::policy::PolicyError) -> WebError {
        WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// What [`error_pages`] needs to render an error again in the page frame.
#[derive(Clone, Debug)]
struct ErrorShown {
    status: StatusCode,
    message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    message: String,
}

impl ErrorPage {
    /// The page of an error: its title is the status and what it means, in `c`'s language.
    fn new(mut c: Chrome, status: StatusCode, message: String) -> ErrorPage {
        let key = match status.as_u16() {
            400 => "error-title-400",
            401 => "error-title-401",
            403 => "error-title-403",
            404 => "error-title-404",
            413 => "error-title-413",
            429 => "error-title-429",
            503 => "error-title-503",
            _ => "error-title-other",
        };
        c.title = format!("{} {}", status.as_u16(), c.tr.t(key));
        ErrorPage { c, message }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // Rendered in English without a session here; [`error_pages`] renders it again for
        // the request.
        let tr = i18n::negotiate(None);
        let c = Chrome {
            tr,
            who: None,
            admin: false,
            releaser: false,
            section: "",
            back: "/ui/".to_owned(),
            title: String::new(),
        };
        let shown = ErrorShown {
            status: self.status,
            message: self.message.clone(),
        };
        let mut resp = match ErrorPage::new(c, self.status, self.message).render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => (self.status, e.to_string()).into_response(),
        };
        resp.extensions_mut().insert(shown);
        resp
    }
}

/// A rendered page, or the error of rendering it.
pub fn render(t: &impl Template) -> Result<Html<String>, WebError> {
    t.render()
        .map(Html)
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Runs store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local path to return to: only `/ui/…` paths of this site (no open redirect).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with("/ui/")
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next_encoded: String,
    next: String,
    failed: bool,
    /// Whether the single sign-on button shows (`[oidc]` set).
    oidc: bool,
}

impl LoginPage {
    /// The login page in `tr`, returning to `next`; `failed` after a refused token; `oidc`:
    /// with the button of the OpenID Connect login.
    fn new(tr: &'static Locale, next: String, failed: bool, oidc: bool) -> LoginPage {
        LoginPage {
            next_encoded: url_encode(&next),
            oidc,
            c: Chrome {
                tr,
                who: None,
                admin: false,
                releaser: false,
                section: "login",
                back: "/ui/login".to_owned(),
                title: tr.t("login-title"),
            },
            next,
            failed,
        }
    }
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(web): State<Web>,
    Lang(tr): Lang,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Html<String>, WebError> {
    render(&LoginPage::new(
        tr,
        local_path(q.next.as_deref()),
        false,
        web.oidc.is_some(),
    ))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    /// The password of a named user, or the admin token or a partner's API key.
    token: String,
    /// A named user's name; empty: `token` is the admin token or an API key.
    #[serde(default)]
    user: String,
    /// A named user's TOTP code (RFC 6238), when its role needs one or it has a key.
    #[serde(default)]
    totp: String,
    next: Option<String>,
}

/// The answer to a refused credential check: 429 (or 503 when every verification slot is
/// busy) with `Retry-After`, or 500 for a failure.
fn refused_login(tr: &'static Locale, e: &concord_server::auth::AuthError) -> Response {
    let Some(secs) = e.retry_after() else {
        tracing::error!(error = %e, "login check failed");
        return WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    };
    let status = match e {
        concord_server::auth::AuthError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut resp = WebError::new(status, tr.t("login-throttled")).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A named user's login: name and password through the authenticator (its limits, the
/// dummy hash for an unknown name), then the TOTP code when the user has a key or its role
/// needs one (`[users] totp_required`); every code tried is charged. `Ok(None)`: refused,
/// with the one answer for every reason (no such user, wrong password, wrong or missing
/// code, a role that needs a code and a user without a key).
async fn login_user(
    web: &Web,
    tr: &'static Locale,
    form: &LoginForm,
    source: Option<std::net::IpAddr>,
) -> Result<
    Option<(
        concord_store::SessionSubject,
        Vec<concord_store::AuditRecord>,
    )>,
    Response,
> {
    use concord_server::auth::users::LoginError;
    let auth = web.app.authenticator();
    let name = form.user.trim();
    let logged = match auth.authenticate_password(name, &form.token, source).await {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(LoginError::Auth(e)) => return Err(refused_login(tr, &e)),
        Err(e @ LoginError::BadRole { .. }) => {
            tracing::error!(error = %e, "login");
            return Err(
                WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            );
        }
    };
    let totp = web.app.users().totp_required(logged.role) || logged.user.totp_secret.is_some();
    if totp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        match auth.check_totp(&logged.user, &form.totp, now, source).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(refused_login(tr, &e)),
        }
    }
    let method = if totp { "password+totp" } else { "password" };
    Ok(Some((
        concord_store::SessionSubject::User(logged.user.name.clone()),
        vec![oidc::login_record(
            &logged.user.name,
            vec![format!("method {method}")],
        )],
    )))
}

/// `POST /ui/login`: the token through the same [`concord_server::auth::Authenticator`] as
/// TAXII, so under the same limits: past the failure quota of the source address or of the
/// account (the key id), 429 with `Retry-After` and no verification at all; 503 with
/// `Retry-After` when every verification slot is busy.
async fn login(
    State(web): State<Web>,
    Lang(tr): Lang,
    secure: Option<axum::Extension<concord_server::TlsConnection>>,
    source: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    cert: Option<axum::Extension<concord_server::mtls::ClientCertificate>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, WebError> {
    let auth = web.app.authenticator();
    let source = source.map(|s| s.0.0.ip());
    let next = local_path(form.next.as_deref());
    let subject = if form.user.trim().is_empty() {
        let token = form.token.trim().to_owned();
        let key_id = concord_server::auth::key_id(&token).map(str::to_owned);
        // A partner whose key is bound to a client certificate logs in over a connection
        // that presents it (issue 19), as its TAXII requests must.
        let cert = cert.as_ref().map(|c| c.0.0.as_str());
        match auth
            .authenticate(Some(&format!("Bearer {token}")), source, cert)
            .await
        {
            Ok(None) => None,
            Ok(Some(Principal::Admin)) => Some((concord_store::SessionSubject::Admin, vec![])),
            Ok(Some(Principal::Partner(_))) => {
                key_id.map(|k| (concord_store::SessionSubject::Partner(k), vec![]))
            }
            Err(e) => return Ok(refused_login(tr, &e)),
        }
    } else {
        match login_user(&web, tr, &form, source).await {
            Ok(s) => s,
            Err(resp) => return Ok(resp),
        }
    };
    let Some((subject, audit)) = subject else {
        let page = render(&LoginPage::new(tr, next, true, web.oidc.is_some()))?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let sessions = web.sessions.clone();
    let id = blocking(move || {
        sessions
            .start_audited(subject, &audit)
            .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
    .await?;
    let cookie = session_cookie(&id, secure.is_some());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

/// The `Set-Cookie` value of a new session `id`: `HttpOnly`, `SameSite=Strict`, for
/// [`session::ABSOLUTE`]; `Secure` over TLS (the browser must never send it over plain HTTP,
/// RFC 6265 §4.1.2.5).
fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::COOKIE,
        session::ABSOLUTE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

async fn logout(State(web): State<Web>, req: Request) -> Response {
    let cookies = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok());
    if let Some(id) = session::cookie(cookies, session::COOKIE) {
        let (sessions, id) = (web.sessions.clone(), id.to_owned());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || sessions.end(&id)).await {
            tracing::error!(error = %e, "ending a web session");
        }
    }
    let secure = req
        .extensions()
        .get::<concord_server::TlsConnection>()
        .is_some();
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/ui/login")).into_response()
}

#[derive(serde::Deserialize)]
struct LangQuery {
    set: String,
    back: Option<String>,
}

/// The language switch: remembers the choice in a cookie for a year.
async fn set_language(axum::extract::Query(q): axum::extract::Query<LangQuery>) -> Response {
    let back = match q.back.as_deref() {
        Some("/ui/login") => "/ui/login".to_owned(),
        other => local_path(other),
    };
    match i18n::by_tag(&q.set) {
        Some(l) => {
            let cookie = format!("lang={}; Path=/; SameSite=Strict; Max-Age=31536000", l.tag);
            ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
        }
        None => Redirect::to(&back).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_ui_paths_are_followed() {
        assert_eq!(local_path(Some("/ui/c/x?q=1")), "/ui/c/x?q=1");
        assert_eq!(local_path(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(local_path(Some("https://evil.example/")), "/ui/");
        assert_eq!(local_path(Some("/ui/\\evil")), "/ui/");
        assert_eq!(local_path(Some("/ui/\r\nSet-Cookie: x")), "/ui/");
        assert_eq!(local_path(Some("/ui/\u{0}")), "/ui/");
        assert_eq!(local_path(None), "/ui/");
    }

    #[test]
    fn url_encoding_keeps_unreserved() {
        assert_eq!(url_encode("/ui/c?q=a b&x"), "%2Fui%2Fc%3Fq%3Da%20b%26x");
    }
}
