//! Operator pages, the admin's only (issue 9, item 4): partners and their keys, sharing
//! groups, peers with their last sync state, the active policy (read-only), and the audit
//! log with the verification of its hash chain.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use concord_store::{AuditQuery as StoreAuditQuery, Timestamp, TransferEntry};

use crate::analyst::Badge;
use crate::{Viewer, Web, WebError, blocking, render};

/// Audit entries shown per page.
pub const AUDIT_PAGE: usize = 100;

/// The setting with the node's public key (hex), written by the binary from the key file.
const PUBLIC_KEY_SETTING: &str = "node.public_key";

pub(crate) fn routes(r: Router<Web>) -> Router<Web> {
    r.route("/ui/operator/partners", get(partners))
        .route(
            "/ui/operator/partners/{name}",
            get(partner_page).post(partner_update),
        )
        .route("/ui/operator/groups", get(groups))
        .route("/ui/operator/peers", get(peers))
        .route("/ui/operator/policy", get(policy))
        .route("/ui/operator/audit", get(audit))
}

fn time(ns: i64) -> String {
    Timestamp::from_unix_nanos(ns, 3).to_string()
}

/// A collection's name for these pages: alias, else id.
fn collection_names(store: &dyn concord_store::Store) -> Result<Vec<(String, String)>, WebError> {
    Ok(store
        .collections()?
        .into_iter()
        .map(|c| {
            let name = c.alias.clone().unwrap_or_else(|| c.id.clone());
            (c.id, name)
        })
        .collect())
}

fn named(names: &[(String, String)], ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            names
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| id.clone())
        })
        .collect()
}

// --- partners ---------------------------------------------------------------------------

struct PartnerRow {
    name: String,
    /// `/ui/operator/partners/{name}`, the name percent-encoded.
    href: String,
    organisation: String,
    jurisdiction: String,
    groups: String,
    read: String,
    write: String,
    key_id: String,
    created: String,
    last_activity: String,
}

#[derive(Template)]
#[template(path = "partners.html")]
struct PartnersPage {
    c: crate::Chrome,
    rows: Vec<PartnerRow>,
    jurisdiction: String,
}

async fn partners(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let (rows, jurisdiction) = blocking(move || {
        let names = collection_names(store.as_ref())?;
        let mut rows = Vec::new();
        for p in store.partners()? {
            let last = store.last_activity(&p.name)?;
            rows.push(PartnerRow {
                href: partner_href(&p.name),
                organisation: p
                    .details
                    .identity
                    .as_ref()
                    .and_then(|i| i.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("—")
                    .to_owned(),
                groups: p.groups.join(", "),
                read: named(&names, &p.read).join(", "),
                write: named(&names, &p.write).join(", "),
                name: p.name,
                jurisdiction: p.jurisdiction,
                key_id: p.key_id,
                created: time(p.created_ns),
                last_activity: last.map_or_else(|| "—".to_owned(), time),
            });
        }
        let j = store
            .setting(concord_server::policy::JURISDICTION_SETTING)?
            .unwrap_or_default();
        Ok((rows, j))
    })
    .await?;
    render(&PartnersPage {
        c: v.chrome("partners", v.tr.t("partners-title")),
        rows,
        jurisdiction,
    })
}

/// The page of partner `name`.
fn partner_href(name: &str) -> String {
    format!("/ui/operator/partners/{}", crate::url_encode(name))
}

/// A collection as the update form offers it: whether the partner may read and write it.
struct GrantRow {
    id: String,
    name: String,
    read: bool,
    write: bool,
}

#[derive(Template)]
#[template(path = "partner.html")]
struct PartnerPage {
    c: crate::Chrome,
    e: concord_admin::ops::directory::DirectoryEntry,
    href: String,
    grants: Vec<GrantRow>,
    /// The form's values (as stored, or as submitted when refused).
    form_jurisdiction: String,
    form_groups: String,
    error: Option<String>,
    updated: bool,
    /// The id of the approval the last change waits for (four-eyes release), from the
    /// redirect.
    pending: Option<String>,
}

impl PartnerPage {
    fn time(&self, ns: &i64) -> String {
        time(*ns)
    }

    fn kind_label(&self, kind: &str) -> String {
        self.c.tr.t(&format!("partner-key-{kind}"))
    }

    fn contact_label(&self, kind: &str) -> String {
        self.c.tr.t(&format!("partner-contact-{kind}"))
    }

    /// This node's agreement version with the partner (`NAME@DIGEST`), if any.
    fn agreement_ours(&self) -> Option<String> {
        self.e.agreement.as_ref().and_then(|a| a.ours.clone())
    }

    /// The version the partner's node holds with this node, when known.
    fn agreement_theirs(&self) -> Option<String> {
        self.e.agreement.as_ref().and_then(|a| a.theirs.clone())
    }
}

/// What the update form sends: `jurisdiction`, `groups` (comma-separated), and for each
/// collection checked `read` / `write` with the collection's id (repeated keys).
fn form_change(
    fields: &[(String, String)],
) -> (concord_admin::ops::directory::PartnerChange, String, String) {
    let value = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let all = |k: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let jurisdiction = value("jurisdiction");
    let groups_text = value("groups");
    let groups = groups_text
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    (
        concord_admin::ops::directory::PartnerChange {
            jurisdiction: Some(jurisdiction.clone()),
            read: Some(all("read")),
            write: Some(all("write")),
            groups: Some(groups),
            ..Default::default()
        },
        jurisdiction,
        groups_text,
    )
}

/// Renders the partner page (`error`: the form was refused, its values kept).
async fn partner_view(
    web: &Web,
    v: &Viewer,
    name: String,
    form: Option<(String, String)>,
    error: Option<String>,
    (updated, pending): (bool, Option<String>),
) -> Result<Html<String>, WebError> {
    let store = web.store();
    let policy = web.app.policy();
    let tr = v.tr;
    let (e, grants) = blocking(move || {
        let e = match concord_admin::ops::directory::directory_entry(store.as_ref(), &name)
            .and_then(|e| concord_admin::ops::directory::with_agreement(store.as_ref(), &policy, e))
        {
            Ok(e) => e,
            Err(concord_admin::ops::AdminError::NotFound(_)) => {
                return Err(WebError::not_found(tr.t("partner-not-found")));
            }
            Err(e) => return Err(admin_error(e)),
        };
        let grants = store
            .collections()?
            .into_iter()
            .map(|c| GrantRow {
                read: e.partner.read.contains(&c.id),
                write: e.partner.write.contains(&c.id),
                name: c.alias.clone().unwrap_or_else(|| c.id.clone()),
                id: c.id,
            })
            .collect();
        Ok((e, grants))
    })
    .await?;
    let (form_jurisdiction, form_groups) =
        form.unwrap_or_else(|| (e.partner.jurisdiction.clone(), e.partner.groups.join(", ")));
    render(&PartnerPage {
        c: v.chrome("partners", e.partner.name.clone()),
        href: partner_href(&e.partner.name),
        e,
        grants,
        form_jurisdiction,
        form_groups,
        error,
        updated,
        pending,
    })
}

fn admin_error(e: concord_admin::ops::AdminError) -> WebError {
    match e {
        concord_admin::ops::AdminError::NotFound(m)
        | concord_admin::ops::AdminError::Invalid(m)
        | concord_admin::ops::AdminError::Conflict(m) => WebError::bad_request(m),
        e => {
            tracing::error!(error = %e, "partner operation failed in the web UI");
            WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

#[derive(serde::Deserialize)]
struct PartnerQuery {
    #[serde(default)]
    updated: Option<String>,
    /// The approval a change waits for (four-eyes release).
    #[serde(default)]
    pending: Option<String>,
}

/// `GET /ui/operator/partners/{name}`: the partner's directory entry and the update form.
/// A partner's session gets the admin-only answer before anything is looked up, the same
/// whether the partner exists or not.
async fn partner_page(
    State(web): State<Web>,
    v: Viewer,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(q): Query<PartnerQuery>,
) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    // Only an approval id's characters: it is shown in the page.
    let pending = q.pending.filter(|p| {
        !p.is_empty() && p.len() <= 64 && p.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    });
    partner_view(&web, &v, name, None, None, (q.updated.is_some(), pending)).await
}

/// `POST /ui/operator/partners/{name}`: changes the partner's grants, groups and
/// jurisdiction to what the form holds, through the operation `concord partner update`
/// runs (audited as door `partner-update` by `admin`), then shows the page again (303). A
/// refused change shows the form as submitted with the reason (400). Like every form of the
/// UI, a POST under the same-origin check and the `SameSite=Strict` session.
async fn partner_update(
    State(web): State<Web>,
    v: Viewer,
    axum::extract::Path(name): axum::extract::Path<String>,
    form: Result<axum::Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>,
) -> Result<axum::response::Response, WebError> {
    use axum::response::IntoResponse;
    // The admin-only answer first, whatever the body: a partner's session learns nothing
    // from how its form was read.
    v.require_admin()?;
    let axum::Form(fields) = form.map_err(|e| WebError::bad_request(e.body_text()))?;
    let (change, jurisdiction, groups) = form_change(&fields);
    let store = web.store();
    let n = name.clone();
    let actor = concord_server::audit::principal_name(&v.session.principal);
    let person = v.session.actor().audit_name();
    let (four_eyes, unnamed_persons) = (web.app.four_eyes(), web.app.unnamed_persons());
    let policy = web.app.policy();
    let result = blocking(move || {
        // Four-eyes release: a change that widens what a cross-border partner receives
        // waits for a second releaser, as on every other door.
        let release = concord_coordination::release::Release {
            store: store.as_ref(),
            four_eyes,
            unnamed_persons,
            policy: &policy,
            person: &person,
        };
        Ok(concord_admin::ops::directory::update_partner(
            &release, &n, &change, &actor,
        ))
    })
    .await?;
    match result {
        Ok(concord_admin::ops::Released::Applied(p)) => Ok(axum::response::Redirect::to(&format!(
            "{}?updated=1",
            partner_href(&p.name)
        ))
        .into_response()),
        Ok(concord_admin::ops::Released::Pending(a)) => {
            Ok(
                axum::response::Redirect::to(&format!("{}?pending={}", partner_href(&name), a.id))
                    .into_response(),
            )
        }
        Err(concord_admin::ops::AdminError::Forbidden(m)) => {
            let page = partner_view(
                &web,
                &v,
                name,
                Some((jurisdiction, groups)),
                Some(m),
                (false, None),
            )
            .await?;
            Ok((axum::http::StatusCode::FORBIDDEN, page).into_response())
        }
        Err(concord_admin::ops::AdminError::NotFound(m)) if m.starts_with("no partner named") => {
            Err(WebError::not_found(v.tr.t("partner-not-found")))
        }
        Err(
            concord_admin::ops::AdminError::Invalid(m)
            | concord_admin::ops::AdminError::NotFound(m)
            | concord_admin::ops::AdminError::Conflict(m),
        ) => {
            let page = partner_view(
                &web,
                &v,
                name,
                Some((jurisdiction, groups)),
                Some(m),
                (false, None),
            )
            .await?;
            Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(admin_error(e)),
    }
}

// --- sharing groups ---------------------------------------------------------------------

struct GroupRow {
    name: String,
    members: String,
}

struct SharingRow {
    collection: String,
    default_tlp: Badge,
    groups: String,
    recipients: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    c: crate::Chrome,
    groups: Vec<GroupRow>,
    sharing: Vec<SharingRow>,
}

async fn groups(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let tr = v.tr;
    let (groups, sharing) = blocking(move || {
        let mut by_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for p in store.partners()? {
            for g in &p.groups {
                by_group.entry(g.clone()).or_default().push(p.name.clone());
            }
        }
        let groups = by_group
            .into_iter()
            .map(|(name, members)| GroupRow {
                name,
                members: members.join(", "),
            })
            .collect();
        let mut sharing = Vec::new();
        for c in store.collections()? {
            let s = concord_egress::collection_sharing(store.as_ref(), &c.id)?;
            sharing.push(SharingRow {
                collection: c.alias.clone().unwrap_or_else(|| c.id.clone()),
                default_tlp: Badge::from(s.default_tlp),
                groups: match &s.groups {
                    None => tr.t("groups-community"),
                    Some(g) => g.join(", "),
                },
                recipients: s.recipients.join(", "),
            });
        }
        Ok((groups, sharing))
    })
    .await?;
    render(&GroupsPage {
        c: v.chrome("groups", v.tr.t("groups-title")),
        groups,
        sharing,
    })
}

// --- peers ------------------------------------------------------------------------------

/// A peer and the state of its sync rounds, as the peers page and the dashboard show it.
pub(crate) struct PeerRow {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) collections: String,
    pub(crate) partner: String,
    pub(crate) interval: u64,
    pub(crate) last_round: String,
    pub(crate) last_success: String,
    pub(crate) last_error: String,
    pub(crate) last_error_at: String,
    pub(crate) failures: u32,
    pub(crate) pulled: u64,
    pub(crate) pushed: u64,
}

#[derive(Template)]
#[template(path = "peers.html")]
struct PeersPage {
    c: crate::Chrome,
    rows: Vec<PeerRow>,
}

/// Every peer with its sync state (`concord_sync::peers`, `load_state`); `—` for what has
/// not happened yet.
pub(crate) fn peer_rows(store: &dyn concord_store::Store) -> Result<Vec<PeerRow>, WebError> {
    let failed = |e: concord_sync::PeerError| {
        WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let list = concord_sync::peers(store).map_err(failed)?;
    let mut rows = Vec::new();
    for p in list {
        let s = concord_sync::load_state(store, &p.name).map_err(failed)?;
        let dash = |x: Option<String>| x.unwrap_or_else(|| "—".to_owned());
        rows.push(PeerRow {
            collections: p
                .mappings
                .iter()
                .map(|m| {
                    let dir = match (m.pull, m.push) {
                        (true, true) => "⇄",
                        (true, false) => "←",
                        (false, true) => "→",
                        (false, false) => "·",
                    };
                    format!("{} {dir} {}", m.local, m.remote)
                })
                .collect::<Vec<_>>()
                .join("; "),
            partner: p.partner.clone().unwrap_or_default(),
            interval: p.interval_secs,
            name: p.name,
            url: format!("{}{}", p.url, p.api_root),
            last_round: dash(s.last_round),
            last_success: dash(s.last_success),
            last_error: s.last_error.unwrap_or_default(),
            last_error_at: dash(s.last_error_at),
            failures: s.consecutive_failures,
            pulled: s.pulled,
            pushed: s.pushed,
        });
    }
    Ok(rows)
}

async fn peers(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let rows = blocking(move || peer_rows(store.as_ref())).await?;
    render(&PeersPage {
        c: v.chrome("peers", v.tr.t("peers-title")),
        rows,
    })
}

// --- policy -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    c: crate::Chrome,
    version: String,
    config: String,
}

async fn policy(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let p = web.app.policy();
    render(&PolicyPage {
        c: v.chrome("policy", v.tr.t("policy-title")),
        version: p.version.clone(),
        config: serde_json::to_string_pretty(&p.config).unwrap_or_default(),
    })
}

// --- audit ------------------------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
struct AuditQuery {
    /// Only this partner's entries.
    #[serde(default)]
    partner: String,
    /// Entries with `seq` below this (older pages); the newest without it.
    before: Option<i64>,
}

/// The chain's state, as the page shows it.
struct ChainStatus {
    intact: bool,
    entries: i64,
    checkpoints: u64,
    head: String,
    message: String,
}

/// One transfer as the page shows it.
struct AuditRow {
    seq: i64,
    time_ns: i64,
    direction: String,
    door: String,
    partner: String,
    /// `N: sent 98, withheld 2`.
    objects: String,
    /// The distinct transformations (withheld reasons among them).
    transformations: String,
    policy_version: String,
}

impl AuditRow {
    /// The row of one transfer, its direction and decisions in `tr`'s words (the audit
    /// log's own words when a language has none for them).
    fn of(e: &TransferEntry, tr: &crate::i18n::Locale) -> AuditRow {
        let word = |prefix: &str, w: &str| {
            let key = format!("{prefix}{w}");
            let t = tr.t(&key);
            if t == key { w.to_owned() } else { t }
        };
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for it in e.decoded().unwrap_or_default() {
            let d = it.decision.as_str();
            match counts.iter_mut().find(|(k, _)| *k == d) {
                Some((_, n)) => *n += 1,
                None => counts.push((d, 1)),
            }
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(d, n)| format!("{} {n}", word("audit-decision-", d)))
            .collect();
        AuditRow {
            seq: e.seq,
            time_ns: e.time_ns,
            direction: word("audit-direction-", &e.direction),
            door: e.door.clone(),
            partner: e.partner.clone(),
            objects: format!("{}: {}", e.count, summary.join(", ")),
            transformations: e.dictionary.join("; "),
            policy_version: e.policy_version.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: crate::Chrome,
    status: ChainStatus,
    partner: String,
    rows: Vec<AuditRow>,
    older: Option<String>,
}

impl AuditPage {
    fn time(&self, ns: &i64) -> String {
        time(*ns)
    }
}

/// Verifies what the page shows and the checkpoint chain (signed by the node key recorded
/// in the settings), not the whole log: `concord audit verify` does that.
fn verify(
    store: &dyn concord_store::Store,
    shown: &[TransferEntry],
) -> Result<ChainStatus, WebError> {
    let key = store
        .setting(PUBLIC_KEY_SETTING)?
        .and_then(|k| concord_store::node_key::unhex32(&k));
    let head = store.audit_head()?;
    Ok(
        match concord_store::audit::verify_shown(store, shown, key.as_ref())? {
            Ok(checkpoints) => ChainStatus {
                intact: true,
                entries: shown.len() as i64,
                checkpoints,
                head: concord_store::node_key::hex(&head.1),
                message: String::new(),
            },
            Err(e) => ChainStatus {
                intact: false,
                entries: shown.len() as i64,
                checkpoints: 0,
                head: String::new(),
                message: e.to_string(),
            },
        },
    )
}

async fn audit(
    State(web): State<Web>,
    v: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let tr = v.tr;
    let partner = q.partner.trim().to_owned();
    let who = partner.clone();
    let (status, rows) = blocking(move || {
        // The newest page below `before`, newest first, through the partner index.
        let rows = store.audit_entries(&StoreAuditQuery {
            before_seq: q.before,
            partner: (!who.is_empty()).then_some(who),
            limit: AUDIT_PAGE,
            newest_first: true,
            ..Default::default()
        })?;
        let status = verify(store.as_ref(), &rows)?;
        Ok((
            status,
            rows.iter().map(|e| AuditRow::of(e, tr)).collect::<Vec<_>>(),
        ))
    })
    .await?;
    let older = rows
        .last()
        .filter(|e| e.seq > 1 && rows.len() == AUDIT_PAGE)
        .map(|e| {
            format!(
                "/ui/operator/audit?partner={}&before={}",
                crate::url_encode(&partner),
                e.seq
            )
        });
    render(&AuditPage {
        c: v.chrome("audit", v.tr.t("audit-title")),
        status,
        partner,
        rows,
        older,
    })
}
