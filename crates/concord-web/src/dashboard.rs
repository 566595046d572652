//! The home page, `/ui/` (issue 25, item 3): what an analyst looks at first.
//!
//! - **New since your last visit**: per readable collection and STIX type, the objects whose
//!   newest version was added since then, each a link to the object list so filtered. The
//!   last visit is kept in the database (setting [`visit_key`]), not in the process: the
//!   design keeps no state outside the database, and several `concord serve` may share one.
//! - **Sightings received** over the last [`SIGHTING_DAYS`] days, per indicator and per
//!   partner (who brought them: the store's provenance), counted as `concord indicator`
//!   counts them ([`concord_match::sighting`]).
//! - **Requests waiting for an answer** (admin): the requests of open incidents without a
//!   final answer, as the incident board reads them ([`concord_coordination::board`]).
//! - **Sync health** per peer (admin): the peers page's figures.
//! - **What went to each partner this week**, from the audit log
//!   ([`concord_store::Store::audit_window`]: the week's transfers only, never the whole log).
//!
//! - **Approvals pending** (releasers and the admin; issue 20, four-eyes release): how many
//!   changes that widen a cross-border release wait for a second releaser, a link to
//!   `/ui/approvals` ([`crate::approvals`]).
//!
//! A partner's dashboard is built only from what is theirs: their readable collections seen
//! through the egress door ([`crate::analyst::Lens`]), sightings counted from their copies
//! and attributed to no one but themselves, their own transfers (objects they received; not
//! what was withheld from them, which would tell that it exists). The indicator names it
//! shows are recorded as a transfer (door `web-dashboard`), as the graph's are.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use concord_match::sighting::{Tally, is_false_positive};
use concord_server::Principal;
use concord_stix::Timestamp;
use concord_store::{AuditWindow, Decision, ObjectFilter, Store, VersionSelector};
use serde_json::Value;

use crate::analyst::{CollectionRef, Lens, catalogue_for, object_href};
use crate::incidents::RequestRow;
use crate::operator::PeerRow;
use crate::svg::{Chart, Row};
use crate::{Viewer, Web, WebError, blocking, render, url_encode};

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Requests a gap longer than this apart are two visits: "new since your last visit" counts
/// from the end of the visit before the current one (so reloading the page within a visit
/// keeps showing the same news).
pub const VISIT_GAP_NS: i64 = 30 * 60 * 1_000_000_000;

/// Days of the sightings charts, today (UTC) included.
pub const SIGHTING_DAYS: usize = 14;

/// Days of "this week", today (UTC) included.
pub const WEEK_DAYS: usize = 7;

/// Sightings decided at once while counting a partner's: one call of the egress door.
const SIGHTING_BATCH: usize = 1_000;

/// Most transfers of the week read from the audit log (the newest).
pub const MAX_TRANSFERS: usize = 10_000;

/// Rows of a chart: the largest series; the rest are summed into one "others" row.
pub const CHART_ROWS: usize = 8;

/// Requests listed; the board has them all.
pub const MAX_REQUESTS: usize = 20;

/// The door that records the objects a partner's dashboard names.
pub const DOOR: &str = "web-dashboard";

pub(crate) fn routes(r: Router<Web>) -> Router<Web> {
    r.route("/ui/", get(dashboard))
}

/// The setting that keeps a user's visits: `ui.visit.admin`, or `ui.visit.partner/NAME` for
/// a partner (its provenance name, which no peer name can take).
pub fn visit_key(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "ui.visit.admin".to_owned(),
        Principal::Partner(p) => format!(
            "ui.visit.{}",
            concord_store::partner_provenance(&p.profile.name)
        ),
    }
}

/// A user's visits as stored: `since_ns`, where "new" starts (the end of the visit before),
/// and `last_ns`, the last request of the current visit. Nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Visits {
    /// "New" is what was added at or after this.
    pub since_ns: i64,
    /// The last dashboard request.
    pub last_ns: i64,
}

impl Visits {
    /// The visits after a request at `now_ns`, from the stored ones (`None`: a first visit,
    /// which counts the last [`WEEK_DAYS`] days as new). A request more than
    /// [`VISIT_GAP_NS`] after the last one starts a new visit: "new" then starts where the
    /// last visit ended.
    pub fn advance(stored: Option<Visits>, now_ns: i64) -> Visits {
        match stored {
            None => Visits {
                since_ns: now_ns - WEEK_DAYS as i64 * DAY_NS,
                last_ns: now_ns,
            },
            Some(v) if now_ns - v.last_ns > VISIT_GAP_NS => Visits {
                since_ns: v.last_ns,
                last_ns: now_ns,
            },
            Some(v) => Visits {
                since_ns: v.since_ns,
                last_ns: now_ns.max(v.last_ns),
            },
        }
    }
}

/// Reads, advances and stores the visits of `principal`; returns them and whether this was
/// the first visit. A stored value that does not parse (written by hand) counts as no visit
/// and is replaced.
fn visit(
    store: &dyn Store,
    principal: &Principal,
    now_ns: i64,
) -> Result<(Visits, bool), WebError> {
    let key = visit_key(principal);
    let stored = store.setting(&key)?.and_then(|s| {
        serde_json::from_str::<Visits>(&s)
            .map_err(|e| tracing::warn!(setting = %key, error = %e, "unreadable last visit"))
            .ok()
    });
    let v = Visits::advance(stored, now_ns);
    let text = serde_json::to_string(&v).map_err(|e| {
        WebError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("last visit: {e}"),
        )
    })?;
    store.set_setting(&key, &text)?;
    Ok((v, stored.is_none()))
}

/// Midnight UTC of the day of `ns`.
fn day_start(ns: i64) -> i64 {
    ns.div_euclid(DAY_NS) * DAY_NS
}

/// `YYYY-MM-DD` of `ns`.
fn day_label(ns: i64) -> String {
    let t = Timestamp::from_unix_nanos(ns, 0).to_string();
    t.get(..10).unwrap_or(&t).to_owned()
}

/// The `days` days ending today: (first midnight, labels).
fn days(now_ns: i64, days: usize) -> (i64, Vec<String>) {
    let first = day_start(now_ns) - (days as i64 - 1) * DAY_NS;
    let labels = (0..days as i64)
        .map(|d| day_label(first + d * DAY_NS))
        .collect();
    (first, labels)
}

/// The day index of `ns` in a chart starting at `first` of `n` days.
fn day_of(first: i64, n: usize, ns: i64) -> Option<usize> {
    let d = usize::try_from((ns - first).div_euclid(DAY_NS)).ok()?;
    (d < n).then_some(d)
}

// --- the page -------------------------------------------------------------------------

/// New objects of one type in one collection.
struct NewRow {
    coll: CollectionRef,
    object_type: String,
    count: usize,
    href: String,
}

/// A peer's sync health.
struct Health {
    peer: PeerRow,
    /// `ok`, `failing` or `never` (no round yet).
    state: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    c: crate::Chrome,
    since: String,
    first_visit: bool,
    new_rows: Vec<NewRow>,
    new_total: usize,
    sighting_days: usize,
    /// More sightings that the viewer may see were received than
    /// [`concord_server::Limits::dashboard_max_sightings`]: the charts count that many.
    sightings_cut: Option<usize>,
    by_indicator: Option<Chart>,
    by_partner: Option<Chart>,
    /// `None` for a partner (the incident board is the admin's).
    requests: Option<Vec<RequestRow>>,
    requests_more: usize,
    /// `None` for a partner (peers are the node's configuration).
    peers: Option<Vec<Health>>,
    /// Pending approvals of four-eyes release; `None` for who may not release.
    approvals: Option<usize>,
    transfers_cut: bool,
    week: Option<Chart>,
}

impl Dashboard {
    fn status_label(&self, s: &str) -> String {
        self.c.tr.t(&format!("incident-status-{s}"))
    }

    fn health_label(&self, s: &str) -> String {
        self.c.tr.t(&format!("dashboard-health-{s}"))
    }
}

async fn dashboard(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    let store = web.store();
    let vv = v.clone();
    let page = blocking(move || build(&web, store.as_ref(), &vv)).await?;
    render(&page)
}

fn build(web: &Web, store: &dyn Store, v: &Viewer) -> Result<Dashboard, WebError> {
    let tr = v.tr;
    let principal = &v.session.principal;
    let now_ns = Timestamp::now_micros().unix_nanos();
    let (visits, first_visit) = visit(store, principal, now_ns)?;

    // Every readable collection, through the viewer's lens, with its index.
    let mut views = Vec::new();
    for c in store.collections()? {
        if !principal.can_read(&c.id) {
            continue;
        }
        let lens = Lens::new(web, store, v, &c)?;
        let cat = catalogue_for(web, store, &lens, &c)?;
        views.push((c, lens, cat));
    }

    // New since the last visit.
    let since = Timestamp::from_unix_nanos(visits.since_ns, 3).to_string();
    let mut new_rows = Vec::new();
    for (c, _, cat) in &views {
        let coll = CollectionRef::from(c);
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for i in cat
            .items
            .iter()
            .filter(|i| i.date_added_ns >= visits.since_ns)
        {
            *by_type.entry(&*i.object_type).or_default() += 1;
        }
        let mut rows: Vec<NewRow> = by_type
            .into_iter()
            .map(|(t, count)| NewRow {
                href: format!(
                    "/ui/c/{}?type={}&added_after={}",
                    url_encode(&coll.key),
                    url_encode(t),
                    url_encode(&since)
                ),
                coll: coll.clone(),
                object_type: t.to_owned(),
                count,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.object_type.cmp(&b.object_type))
        });
        new_rows.extend(rows);
    }
    let new_total = new_rows.iter().map(|r| r.count).sum();

    // Sightings received.
    let (first, labels) = days(now_ns, SIGHTING_DAYS);
    let max_sightings = web.app.config().limits.dashboard_max_sightings;
    let sightings = sightings(store, principal, &views, first, max_sightings)?;
    let sightings_cut = sightings.cut.then_some(max_sightings);
    let mut by_indicator = None;
    let mut by_partner = None;
    if !sightings.list.is_empty() {
        // Per indicator: its name from the index of a collection that holds it.
        let mut per: HashMap<String, (Vec<u64>, Tally)> = HashMap::new();
        let mut per_source: HashMap<String, Vec<u64>> = HashMap::new();
        for s in &sightings.list {
            let slot = per
                .entry(s.of.clone())
                .or_insert_with(|| (vec![0; SIGHTING_DAYS], Tally::default()));
            slot.1.add(&s.value, &[]);
            if !s.false_positive {
                slot.0[s.day] += 1;
                for from in &s.from {
                    per_source
                        .entry(from.clone())
                        .or_insert_with(|| vec![0; SIGHTING_DAYS])[s.day] += 1;
                }
            }
        }
        // Each row's object, by its link: (view, id), for the audit of what is named.
        let mut named: HashMap<String, (usize, String)> = HashMap::new();
        let rows: Vec<Row> = per
            .into_iter()
            .map(|(of, (values, tally))| {
                let found = views
                    .iter()
                    .enumerate()
                    .find_map(|(i, (c, _, cat))| cat.get(&of).map(|it| (i, c, it)));
                let (label, href) = match found {
                    Some((i, c, it)) => {
                        let href = object_href(&CollectionRef::from(c).key, &of);
                        named.insert(href.clone(), (i, of.clone()));
                        (it.name.clone(), Some(href))
                    }
                    None => (of.clone(), None),
                };
                Row {
                    label,
                    href,
                    values,
                    extra: vec![tally.seen, tally.false_positives],
                }
            })
            .collect();
        let rows = top_rows(rows, tr.t("dashboard-others"));
        // What a partner's page names is a transfer of those objects: recorded per
        // collection, as the graph records its nodes.
        for (i, (_, lens, cat)) in views.iter().enumerate() {
            let shown: Vec<&str> = rows
                .iter()
                .filter_map(|r| named.get(r.href.as_deref()?))
                .filter(|(at, _)| *at == i)
                .map(|(_, id)| id.as_str())
                .collect();
            lens.audit_shown(store, DOOR, cat, &shown)?;
        }
        by_indicator = Some(Chart::new(
            "sightings-by-indicator",
            tr.t("dashboard-sightings-by-indicator"),
            labels.clone(),
            (
                tr.t("dashboard-indicator"),
                tr.t("dashboard-sightings"),
                vec![
                    tr.t("dashboard-times-seen"),
                    tr.t("dashboard-false-positives"),
                ],
            ),
            rows,
        ));
        if !per_source.is_empty() {
            let rows = top_rows(
                per_source
                    .into_iter()
                    .map(|(from, values)| Row {
                        label: source_label(tr, &from),
                        href: None,
                        values,
                        extra: Vec::new(),
                    })
                    .collect(),
                tr.t("dashboard-others"),
            );
            by_partner = Some(Chart::new(
                "sightings-by-partner",
                tr.t("dashboard-sightings-by-partner"),
                labels,
                (tr.t("col-partner"), tr.t("dashboard-sightings"), Vec::new()),
                rows,
            ));
        }
    }

    // The admin's: requests waiting for an answer, sync health.
    let (requests, requests_more, peers) = if v.session.is_admin() {
        let board = concord_coordination::board(store, &Timestamp::now_micros())?;
        let (_, all, _) = crate::incidents::board_rows(&board);
        let mut waiting: Vec<RequestRow> = all
            .into_iter()
            .filter(|r| !matches!(r.status.as_str(), "declined" | "done"))
            .collect();
        let more = waiting.len().saturating_sub(MAX_REQUESTS);
        waiting.truncate(MAX_REQUESTS);
        let peers = crate::operator::peer_rows(store)?
            .into_iter()
            .map(|p| Health {
                state: if p.failures > 0 {
                    "failing"
                } else if p.last_success == "—" {
                    "never"
                } else {
                    "ok"
                },
                peer: p,
            })
            .collect();
        (Some(waiting), more, Some(peers))
    } else {
        (None, 0, None)
    };

    // The releasers': changes waiting for a second releaser.
    let approvals = if v.session.may(concord_server::roles::Operation::Release) {
        Some(
            concord_coordination::release::pending_approvals(store, crate::approvals::LIMIT)
                .map_err(|e| {
                    crate::WebError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        e.to_string(),
                    )
                })?
                .len(),
        )
    } else {
        None
    };

    // What went to each partner this week.
    let (week_first, week_labels) = days(now_ns, WEEK_DAYS);
    let (week, transfers_cut) = week_chart(store, principal, v, week_first, week_labels)?;

    Ok(Dashboard {
        c: v.chrome("home", tr.t("dashboard-title")),
        since,
        first_visit,
        new_rows,
        new_total,
        sighting_days: SIGHTING_DAYS,
        sightings_cut,
        by_indicator,
        by_partner,
        requests,
        requests_more,
        peers,
        approvals,
        transfers_cut,
        week,
    })
}

/// The largest [`CHART_ROWS`]` - 1` rows by total, and the rest summed as `others` (when
/// there are more than [`CHART_ROWS`]); ties by label.
fn top_rows(mut rows: Vec<Row>, others: String) -> Vec<Row> {
    rows.sort_by(|a, b| b.total().cmp(&a.total()).then(a.label.cmp(&b.label)));
    if rows.len() <= CHART_ROWS {
        return rows;
    }
    let rest = rows.split_off(CHART_ROWS - 1);
    let mut sum = vec![0u64; rest.first().map_or(0, |r| r.values.len())];
    let mut extra = vec![0u64; rest.first().map_or(0, |r| r.extra.len())];
    for r in rest {
        for (s, v) in sum.iter_mut().zip(&r.values) {
            *s += v;
        }
        for (s, v) in extra.iter_mut().zip(&r.extra) {
            *s += v;
        }
    }
    rows.push(Row {
        label: others,
        href: None,
        values: sum,
        extra,
    });
    rows
}

/// How a provenance name reads: `partner/NAME` as the partner's name, a peer by its name,
/// and the empty string (made on this node) as "this node".
fn source_label(tr: &crate::i18n::Locale, from: &str) -> String {
    if from.is_empty() {
        return tr.t("dashboard-this-node");
    }
    from.strip_prefix("partner/").unwrap_or(from).to_owned()
}

/// One sighting received in the chart's window, as the viewer sees it.
struct Seen {
    /// `sighting_of_ref` (in the viewer's copy).
    of: String,
    /// Day index of its `date_added`.
    day: usize,
    false_positive: bool,
    /// Who brought it (provenance names; `""` for one made here). For a partner, only
    /// itself when it did: no other source is named.
    from: Vec<String>,
    /// The viewer's copy.
    value: Value,
}

struct Sightings {
    list: Vec<Seen>,
    /// More than the limit that the viewer may see were received in the window.
    cut: bool,
}

/// The sightings received since `first` in the readable collections, newest version of
/// each, each counted once however many collections hold it; for a partner, its copies (a
/// withheld sighting is not counted). At most `max` (`[limits] dashboard_max_sightings`),
/// the first received; `cut` when one more that the viewer may see follows. Only sightings
/// the viewer may see count towards the limit: a cut that counted withheld ones would tell
/// a partner that sightings it may not see exist, and how many.
fn sightings(
    store: &dyn Store,
    principal: &Principal,
    views: &[(
        concord_store::Collection,
        Lens,
        std::sync::Arc<crate::catalogue::Catalogue>,
    )],
    first: i64,
    max: usize,
) -> Result<Sightings, WebError> {
    let filter = ObjectFilter {
        types: vec!["sighting".to_owned()],
        versions: vec![VersionSelector::Last],
        added_after_ns: Some(first - 1),
        ..ObjectFilter::default()
    };
    let mut counted = std::collections::HashSet::new();
    let mut list = Vec::new();
    for (c, lens, _) in views {
        let mut after = None;
        loop {
            // A page of stored entries, then the viewer's copies of them: counted until the
            // limit, and one more seen tells that the window holds more.
            let page = store.entries(
                &c.id,
                &filter,
                &concord_store::PageRequest {
                    limit: SIGHTING_BATCH,
                    after: after.take(),
                },
                true,
            )?;
            after = page.entries.last().map(concord_store::Entry::cursor);
            let seen = lens.see_all(&page.entries)?;
            for (e, s) in page.entries.iter().zip(seen) {
                let Some((_, body)) = s else { continue };
                if counted.contains(&e.id) {
                    continue;
                }
                let Ok(value) = serde_json::from_str::<Value>(&body) else {
                    continue;
                };
                let Some(of) = value.get("sighting_of_ref").and_then(Value::as_str) else {
                    continue;
                };
                let Some(day) = day_of(first, SIGHTING_DAYS, e.date_added_ns) else {
                    continue;
                };
                if list.len() == max {
                    return Ok(Sightings { list, cut: true });
                }
                counted.insert(e.id.clone());
                let received = store.received_from(&e.id, None)?;
                let from = match principal {
                    Principal::Admin if received.is_empty() => vec![String::new()],
                    Principal::Admin => received,
                    Principal::Partner(p) => {
                        let me = concord_store::partner_provenance(&p.profile.name);
                        received.into_iter().filter(|r| *r == me).collect()
                    }
                };
                list.push(Seen {
                    of: of.to_owned(),
                    day,
                    false_positive: is_false_positive(&value),
                    from,
                    value,
                });
            }
            if !page.more || after.is_none() {
                break;
            }
        }
    }
    Ok(Sightings { list, cut: false })
}

/// What went to each partner in the week from `first`: objects received (sent as stored or
/// rewritten) per day, from the egress entries of the audit log; for the admin also what
/// was withheld and the number of transfers. A partner's chart is its own row, without what
/// was withheld.
fn week_chart(
    store: &dyn Store,
    principal: &Principal,
    v: &Viewer,
    first: i64,
    labels: Vec<String>,
) -> Result<(Option<Chart>, bool), WebError> {
    let tr = v.tr;
    let (partner, names): (Option<String>, Vec<String>) = match principal {
        Principal::Admin => (
            None,
            store.partners()?.into_iter().map(|p| p.name).collect(),
        ),
        Principal::Partner(p) => (Some(p.profile.name.clone()), vec![p.profile.name.clone()]),
    };
    let entries = store.audit_window(&AuditWindow {
        since_ns: first,
        // Read now, not at the start of the request: what this page itself recorded (the
        // names it shows a partner) is part of the week.
        until_ns: Timestamp::now_micros().unix_nanos() + 1,
        direction: Some("egress".to_owned()),
        partner,
        limit: MAX_TRANSFERS,
    })?;
    let cut = entries.len() >= MAX_TRANSFERS;
    // name -> (received per day, withheld, transfers)
    let mut per: BTreeMap<&str, (Vec<u64>, u64, u64)> = BTreeMap::new();
    for e in &entries {
        let Some(name) = names.iter().find(|n| **n == e.partner) else {
            continue;
        };
        let Some(day) = day_of(first, WEEK_DAYS, e.time_ns) else {
            continue;
        };
        let slot = per
            .entry(name)
            .or_insert_with(|| (vec![0; WEEK_DAYS], 0, 0));
        slot.2 += 1;
        for item in e.decoded().unwrap_or_default() {
            match item.decision {
                Decision::Sent | Decision::Rewritten => slot.0[day] += 1,
                Decision::Withheld => slot.1 += 1,
                _ => {}
            }
        }
    }
    if per.is_empty() {
        return Ok((None, cut));
    }
    let admin = matches!(principal, Principal::Admin);
    let rows = per
        .into_iter()
        .map(|(name, (values, withheld, transfers))| Row {
            label: name.to_owned(),
            href: None,
            values,
            extra: if admin {
                vec![withheld, transfers]
            } else {
                vec![transfers]
            },
        })
        .collect();
    let extra_heads = if admin {
        vec![tr.t("dashboard-withheld"), tr.t("dashboard-transfers")]
    } else {
        vec![tr.t("dashboard-transfers")]
    };
    Ok((
        Some(Chart::new(
            "sent-this-week",
            tr.t("dashboard-week-caption"),
            labels,
            (
                tr.t("col-partner"),
                tr.t("dashboard-objects-received"),
                extra_heads,
            ),
            top_rows(rows, tr.t("dashboard-others")),
        )),
        cut,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_ends_after_a_gap() {
        let t0 = 1_000 * DAY_NS;
        let first = Visits::advance(None, t0);
        assert_eq!(first.since_ns, t0 - WEEK_DAYS as i64 * DAY_NS);
        // Within the visit: the same news.
        let again = Visits::advance(Some(first), t0 + VISIT_GAP_NS);
        assert_eq!(again.since_ns, first.since_ns);
        assert_eq!(again.last_ns, t0 + VISIT_GAP_NS);
        // After a gap: news since the last request of the visit before.
        let next = Visits::advance(Some(again), again.last_ns + VISIT_GAP_NS + 1);
        assert_eq!(next.since_ns, again.last_ns);
        // A clock that went back does not move the visit backwards.
        assert_eq!(
            Visits::advance(Some(next), next.last_ns - 5).last_ns,
            next.last_ns
        );
    }

    #[test]
    fn days_end_today_in_utc() {
        let now = Timestamp::parse("2026-12-07T05:00:00Z")
            .unwrap()
            .unix_nanos();
        let (first, labels) = days(now, 3);
        assert_eq!(labels, ["2026-12-05", "2026-12-06", "2026-12-07"]);
        assert_eq!(day_of(first, 3, now), Some(2));
        assert_eq!(day_of(first, 3, first - 1), None);
        assert_eq!(day_of(first, 3, first + 3 * DAY_NS), None);
    }

    #[test]
    fn others_sum_the_smallest_rows() {
        let rows: Vec<Row> = (0..CHART_ROWS as u64 + 2)
            .map(|i| Row {
                label: format!("p{i:02}"),
                href: None,
                values: vec![i, 1],
                extra: vec![1],
            })
            .collect();
        let top = top_rows(rows, "others".into());
        assert_eq!(top.len(), CHART_ROWS);
        assert_eq!(top[0].label, format!("p{:02}", CHART_ROWS + 1));
        let last = top.last().unwrap();
        assert_eq!(last.label, "others");
        // p00, p01, p02 remain for "others": values 0+1+2 and 1+1+1, extras 3.
        assert_eq!(
            (last.values.clone(), last.extra.clone()),
            (vec![3, 3], vec![3])
        );
    }
}
