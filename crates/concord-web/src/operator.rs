//! Operator pages, the admin's only (issue 9, item 4): partners and their keys, sharing
//! groups, peers with their last sync state, the active policy (read-only), and the audit
//! log with the verification of its hash chain.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use concord_store::{AuditEntry, Timestamp, verify_chain_after};

use crate::analyst::Badge;
use crate::{Viewer, Web, WebError, blocking, render};

/// Audit entries shown per page.
pub const AUDIT_PAGE: usize = 100;

/// Entries read at a time when the chain is verified.
const VERIFY_PAGE: usize = 10_000;

pub(crate) fn routes(r: Router<Web>) -> Router<Web> {
    r.route("/ui/operator/partners", get(partners))
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
    jurisdiction: String,
    groups: String,
    read: String,
    write: String,
    key_id: String,
    created: String,
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
        let rows = store
            .partners()?
            .into_iter()
            .map(|p| PartnerRow {
                groups: p.groups.join(", "),
                read: named(&names, &p.read).join(", "),
                write: named(&names, &p.write).join(", "),
                name: p.name,
                jurisdiction: p.jurisdiction,
                key_id: p.key_id,
                created: time(p.created_ns),
            })
            .collect();
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

struct PeerRow {
    name: String,
    url: String,
    collections: String,
    partner: String,
    interval: u64,
    last_round: String,
    last_success: String,
    last_error: String,
    last_error_at: String,
    failures: u32,
    pulled: u64,
    pushed: u64,
}

#[derive(Template)]
#[template(path = "peers.html")]
struct PeersPage {
    c: crate::Chrome,
    rows: Vec<PeerRow>,
}

async fn peers(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let rows = blocking(move || {
        let list = concord_sync::peers(store.as_ref()).map_err(|e| {
            WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?;
        let mut rows = Vec::new();
        for p in list {
            let s = concord_sync::load_state(store.as_ref(), &p.name).map_err(|e| {
                WebError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            })?;
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
    })
    .await?;
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
    head: String,
    message: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: crate::Chrome,
    status: ChainStatus,
    partner: String,
    rows: Vec<AuditEntry>,
    older: Option<String>,
}

impl AuditPage {
    fn time(&self, ns: &i64) -> String {
        time(*ns)
    }
}

/// Verifies the whole chain, one page in memory at a time.
fn verify(store: &dyn concord_store::Store) -> Result<ChainStatus, WebError> {
    let mut last: Option<AuditEntry> = None;
    loop {
        let after = last.as_ref().map_or(0, |e| e.seq);
        let page = store.audit(after, VERIFY_PAGE, None)?;
        if page.is_empty() {
            break;
        }
        if let Err(e) = verify_chain_after(last.as_ref(), &page) {
            return Ok(ChainStatus {
                intact: false,
                entries: page.last().map_or(after, |x| x.seq),
                head: String::new(),
                message: e.to_string(),
            });
        }
        last = page.into_iter().last();
    }
    Ok(ChainStatus {
        intact: true,
        entries: last.as_ref().map_or(0, |e| e.seq),
        head: last.map(|e| e.hash).unwrap_or_default(),
        message: String::new(),
    })
}

async fn audit(
    State(web): State<Web>,
    v: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, WebError> {
    v.require_admin()?;
    let store = web.store();
    let partner = q.partner.trim().to_owned();
    let who = partner.clone();
    let (status, rows) = blocking(move || {
        let status = verify(store.as_ref())?;
        // The newest page below `before`: read forward from a window start. The store reads
        // in seq order only, so step back one page at a time (bounded by the log's length).
        let before = q.before.unwrap_or(i64::MAX);
        let filter = (!who.is_empty()).then_some(who.as_str());
        let mut rows: std::collections::VecDeque<AuditEntry> = Default::default();
        let mut after = 0;
        loop {
            let page = store.audit(after, VERIFY_PAGE, filter)?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            for e in page {
                if e.seq >= before {
                    break;
                }
                if rows.len() == AUDIT_PAGE {
                    rows.pop_front();
                }
                rows.push_back(e);
            }
            if last >= before {
                break;
            }
            after = last;
        }
        let mut rows: Vec<AuditEntry> = rows.into();
        rows.reverse();
        Ok((status, rows))
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
