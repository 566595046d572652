//! Analyst pages: collections, objects with filters, the object page (with "as partner"),
//! the relationship graph, import and pattern check (issue 9, items 2–3).
//!
//! A partner's session sees what TAXII would give it: only collections it may read, and of
//! each object the copy the egress function makes for it (rewritten or withheld), found and
//! shown from that copy.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use concord_policy::egress::Decision;
use concord_policy::tlp::Tlp;
use concord_server::Principal;
use concord_store::{Collection, ObjectFilter, PageRequest, Store, VersionSelector};
use serde_json::Value;

use crate::catalogue::{Catalogue, Edge, Filter, Item, label, strings};
use crate::{Viewer, Web, WebError, blocking, render, url_encode};

/// Rows per page of the object list.
pub const PAGE_SIZE: usize = 50;

/// Most references in (and out, and sightings) an object page lists.
pub const MAX_REFS: usize = 500;

/// Most nodes the graph draws.
pub const GRAPH_MAX_NODES: usize = 200;

/// The analyst routes. Uploads may be as large as the API root's `max_content_length`
/// (`max_upload`, bytes), the limit of a TAXII POST, instead of axum's 2 MB default.
pub(crate) fn routes(r: Router<Web>, max_upload: usize) -> Router<Web> {
    r.route("/ui/collections", get(collections))
        .route("/ui/c/{collection}", get(objects))
        .route("/ui/c/{collection}/o/{id}", get(object))
        .route("/ui/c/{collection}/o/{id}/graph", get(graph))
        .route(
            "/ui/import",
            get(import_form)
                .post(import)
                .layer(axum::extract::DefaultBodyLimit::max(max_upload)),
        )
        .route("/ui/pattern", get(pattern_form).post(pattern_check))
}

/// A TLP badge: the label as FIRST writes it (never translated) and its CSS class.
#[derive(Clone, Debug)]
pub struct Badge {
    /// `TLP:AMBER+STRICT`.
    pub label: &'static str,
    /// `tlp-amber-strict`.
    pub class: &'static str,
}

impl From<Tlp> for Badge {
    fn from(t: Tlp) -> Badge {
        Badge {
            label: t.label(),
            class: match t {
                Tlp::Clear => "tlp-clear",
                Tlp::Green => "tlp-green",
                Tlp::Amber => "tlp-amber",
                Tlp::AmberStrict => "tlp-amber-strict",
                Tlp::Red => "tlp-red",
            },
        }
    }
}

/// A collection and how to name it in links.
#[derive(Clone, Debug)]
pub struct CollectionRef {
    /// Its id.
    pub id: String,
    /// Alias, else id: the path segment of its pages.
    pub key: String,
    /// Title.
    pub title: String,
}

impl From<&Collection> for CollectionRef {
    fn from(c: &Collection) -> CollectionRef {
        CollectionRef {
            id: c.id.clone(),
            key: c.alias.clone().unwrap_or_else(|| c.id.clone()),
            title: c.title.clone(),
        }
    }
}

/// The collection of a path segment, if the viewer may read it (404 otherwise: a partner
/// does not learn what it may not read).
pub(crate) fn readable(store: &dyn Store, v: &Viewer, key: &str) -> Result<Collection, WebError> {
    match store.collection(key)? {
        Some(c) if v.session.principal.can_read(&c.id) => Ok(c),
        _ => Err(WebError::not_found(v.tr.t1(
            "error-no-collection",
            "name",
            key,
        ))),
    }
}

/// What a session may see of stored objects: the stored objects for the admin, the egress
/// door's copies for a partner (`None`: withheld).
#[derive(Clone)]
pub(crate) struct Lens {
    principal: Principal,
    collection_id: String,
    egress: concord_egress::Egress,
}

impl Lens {
    pub(crate) fn new(
        web: &Web,
        _store: &dyn Store,
        v: &Viewer,
        c: &Collection,
    ) -> Result<Lens, WebError> {
        Ok(Lens {
            principal: v.session.principal.clone(),
            collection_id: c.id.clone(),
            egress: web.app.egress().acting_as(v.session.actor().audit_name()),
        })
    }

    /// What this session sees of `entries`, without recording: `(id as shown, body)`, or
    /// `None` when withheld. For indexes and for choosing what a page shows; what the page
    /// then shows is recorded by [`Lens::audit`].
    pub(crate) fn see_all(
        &self,
        entries: &[concord_store::Entry],
    ) -> Result<Vec<Option<(String, String)>>, WebError> {
        match &self.principal {
            Principal::Admin => Ok(entries
                .iter()
                .map(|e| Some((e.id.clone(), e.body.clone().unwrap_or_default())))
                .collect()),
            Principal::Partner(p) => Ok(self
                .egress
                .decide_unrecorded(&p.profile, &self.collection_id, entries)?
                .into_iter()
                .map(|s| s.map(|s| (s.id, s.body.unwrap_or_default())))
                .collect()),
        }
    }

    /// The session's copy of one entry (`None`: withheld), without recording.
    fn see(&self, entry: &concord_store::Entry) -> Result<Option<String>, WebError> {
        Ok(self
            .see_all(std::slice::from_ref(entry))?
            .pop()
            .flatten()
            .map(|(_, body)| body))
    }

    /// The audit records of the entries a partner's page shows (door `web-list` or
    /// `web-object`), decided by the egress door and appended before the page leaves, as
    /// TAXII does for its pages. The admin's own views are not transfers and are not
    /// recorded, as in TAXII.
    fn audit(
        &self,
        _store: &dyn Store,
        door: &str,
        shown: &[&concord_store::Entry],
    ) -> Result<(), WebError> {
        let Principal::Partner(p) = &self.principal else {
            return Ok(());
        };
        if shown.is_empty() {
            return Ok(());
        }
        let entries: Vec<concord_store::Entry> = shown.iter().map(|e| (*e).clone()).collect();
        self.egress
            .decide_entries(&p.profile, door, &self.collection_id, entries, None)?;
        Ok(())
    }

    /// The audit records of objects a partner's page names from the index (the graph's
    /// nodes), by the ids the partner knows: their newest versions, decided and recorded by
    /// the door as [`Lens::audit`] does.
    pub(crate) fn audit_shown(
        &self,
        store: &dyn Store,
        door: &str,
        cat: &Catalogue,
        shown: &[&str],
    ) -> Result<(), WebError> {
        if self.is_admin() || shown.is_empty() {
            return Ok(());
        }
        let filter = concord_store::ObjectFilter {
            ids: shown.iter().map(|s| cat.stored_id(s).to_owned()).collect(),
            versions: vec![concord_store::VersionSelector::Last],
            ..Default::default()
        };
        let page = store.entries(
            &self.collection_id,
            &filter,
            &PageRequest {
                limit: shown.len() + 1,
                after: None,
            },
            true,
        )?;
        self.audit(store, door, &page.entries.iter().collect::<Vec<_>>())
    }

    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Admin)
    }
}

/// For a partner, the catalogue as the partner's copies make it: withheld objects are left
/// out and the rest indexed from their egress copies (so search cannot find redacted text).
/// A partner's stale index is rebuilt in the background ([`crate::catalogue::Catalogues`]:
/// a request that waited for it would show when the collection changed).
pub(crate) fn catalogue_for(
    web: &Web,
    store: &dyn Store,
    lens: &Lens,
    c: &Collection,
) -> Result<Arc<Catalogue>, WebError> {
    let Principal::Partner(p) = &lens.principal else {
        return web.catalogues.get(&web.store(), &c.id);
    };
    // Cached per what the partner's copies depend on (its profile, the collection's sharing,
    // the policy): a change of any of them shows at the partner's next page, never an index
    // built under rules that no longer hold.
    let viewer = lens.egress.decision_stamp(&p.profile, &c.id)?;
    let (owned, lens, id) = (web.store(), lens.clone(), c.id.clone());
    web.catalogues.get_for(
        store,
        &c.id,
        &viewer,
        Box::new(move || {
            Catalogue::build_seen(owned.as_ref(), &id, |entries| lens.see_all(entries))
        }),
    )
}

// --- collections ------------------------------------------------------------------------

struct CollectionRow {
    c: CollectionRef,
    description: String,
    versions: Option<u64>,
}

#[derive(Template)]
#[template(path = "collections.html")]
struct CollectionsPage {
    c: crate::Chrome,
    rows: Vec<CollectionRow>,
}

async fn collections(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    let store = web.store();
    let principal = v.session.principal.clone();
    let rows = blocking(move || {
        let mut rows = Vec::new();
        for c in store.collections()? {
            if !principal.can_read(&c.id) {
                continue;
            }
            rows.push(CollectionRow {
                c: CollectionRef::from(&c),
                description: c.description.clone().unwrap_or_default(),
                // Withheld versions count too: the admin's figure only.
                versions: match principal {
                    Principal::Admin => Some(store.count(&c.id)?),
                    Principal::Partner(_) => None,
                },
            });
        }
        Ok(rows)
    })
    .await?;
    render(&CollectionsPage {
        c: v.chrome("collections", v.tr.t("collections-title")),
        rows,
    })
}

// --- objects ----------------------------------------------------------------------------

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    #[serde(flatten)]
    filter: Filter,
    #[serde(default)]
    page: usize,
}

struct Row {
    id: String,
    name: String,
    object_type: String,
    badge: Option<Badge>,
    date_added: String,
    modified: String,
}

#[derive(Template)]
#[template(path = "objects.html")]
struct ObjectsPage {
    c: crate::Chrome,
    coll: CollectionRef,
    filter_type: String,
    filter: Filter,
    filter_error: Option<String>,
    types: Vec<String>,
    tlps: Vec<&'static str>,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

fn date(ns: i64) -> String {
    concord_stix::Timestamp::from_unix_nanos(ns, 3).to_string()
}

async fn objects(
    State(web): State<Web>,
    v: Viewer,
    Path(key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let store = web.store();
    let tr = v.tr;
    let (coll, cat, lens) = {
        let web = web.clone();
        let store = store.clone();
        let vv = v.clone();
        blocking(move || {
            let c = readable(store.as_ref(), &vv, &key)?;
            let lens = Lens::new(&web, store.as_ref(), &vv, &c)?;
            let cat = catalogue_for(&web, store.as_ref(), &lens, &c)?;
            Ok((CollectionRef::from(&c), cat, lens))
        })
        .await?
    };
    let (matching, filter_error): (Vec<&Item>, _) = match q.filter.compile() {
        Ok(p) => (cat.items.iter().rev().filter(|i| p(i)).collect(), None),
        Err(e) => (
            Vec::new(),
            Some(tr.t1("error-filter", "parameter", e.parameter) + ": " + &e.reason),
        ),
    };
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.min(pages - 1);
    let shown: Vec<&Item> = matching
        .iter()
        .skip(page * PAGE_SIZE)
        .take(PAGE_SIZE)
        .copied()
        .collect();
    if !lens.is_admin() && !shown.is_empty() {
        // A partner's list is a transfer of what it shows: audited like a TAXII page.
        let ids: Vec<String> = shown.iter().map(|i| i.id.to_string()).collect();
        blocking(move || {
            let filter = ObjectFilter {
                ids,
                versions: vec![VersionSelector::Last],
                ..ObjectFilter::default()
            };
            let page = store.entries(
                &lens.collection_id,
                &filter,
                &PageRequest {
                    limit: PAGE_SIZE,
                    after: None,
                },
                true,
            )?;
            let entries: Vec<_> = page.entries.iter().collect();
            lens.audit(store.as_ref(), "web-list", &entries)
        })
        .await?;
    }
    let rows = shown
        .iter()
        .map(|i| Row {
            id: i.id.to_string(),
            name: i.name.clone(),
            object_type: i.object_type.to_string(),
            badge: i.tlp.map(Badge::from),
            date_added: date(i.date_added_ns),
            modified: i.modified.clone(),
        })
        .collect();
    let link = |p: usize| {
        let f = &q.filter;
        format!(
            "/ui/c/{}?type={}&marking={}&added_after={}&added_before={}&q={}&page={p}",
            url_encode(&coll.key),
            url_encode(&f.r#type),
            url_encode(&f.marking),
            url_encode(&f.added_after),
            url_encode(&f.added_before),
            url_encode(&f.q)
        )
    };
    render(&ObjectsPage {
        c: v.chrome("collections", coll.title.clone()),
        prev: (page > 0).then(|| link(page - 1)),
        next: (page + 1 < pages).then(|| link(page + 1)),
        types: cat.types(),
        tlps: [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ]
        .map(Tlp::label)
        .to_vec(),
        coll,
        filter_type: q.filter.r#type.clone(),
        filter: q.filter,
        filter_error,
        rows,
        total,
        page: page + 1,
        pages,
    })
}

// --- object page ------------------------------------------------------------------------

/// A link to another object, named.
struct Link {
    href: Option<String>,
    text: String,
    id: String,
}

/// One property of the object as shown.
struct Prop {
    key: String,
    /// The text shown (translated when a translation in the page's language exists).
    text: String,
    /// The original, when `text` is a translation.
    original: Option<String>,
    /// The language of the translation.
    lang: String,
    /// References, shown as links.
    links: Vec<Link>,
    /// Nested JSON (pretty), for objects and lists of objects.
    code: bool,
    /// `text` as safe HTML, for the Markdown properties ([`crate::markdown::MARKDOWN_KEYS`]).
    html: Option<String>,
    /// `original` as safe HTML, likewise.
    original_html: Option<String>,
    /// A map of strings (`hashes`): (key, value), each value easy to copy.
    pairs: Vec<(String, String)>,
}

struct VersionRow {
    version: String,
    date_added: String,
    href: String,
    current: bool,
}

/// The objects at the other end of one kind of reference (issue 25, item 4): all that
/// `uses` this object in one row, each named, instead of one row per relationship object.
struct RefGroup {
    /// The relationship type (`uses`), or the property that holds the reference
    /// (`created_by_ref`, `object_refs`).
    label: String,
    /// The objects, by name.
    items: Vec<RefItem>,
}

/// One object at the other end of a reference.
struct RefItem {
    link: Link,
    object_type: String,
    /// The relationship (or sighting) object that carries the reference, when one does:
    /// its page holds the relationship's own description and sources.
    via: Option<String>,
}

struct SightingRow {
    link: Link,
    count: String,
    first_seen: String,
    last_seen: String,
    where_sighted: Vec<Link>,
}

struct AsPartner {
    partner: String,
    decision: &'static str,
    /// Why it is withheld, as HTML in the page's language (the clause of the step that
    /// withheld it).
    reason: Option<String>,
    /// (rule, its name in the page's language, what it decided as HTML in that language).
    steps: Vec<(String, String, String)>,
    copy: Option<String>,
    /// What was changed in the copy, rule by rule, as HTML in the page's language.
    changes: Vec<String>,
}

#[derive(Template)]
#[template(path = "object.html")]
struct ObjectPage {
    c: crate::Chrome,
    coll: CollectionRef,
    id: String,
    name: String,
    object_type: String,
    badges: Vec<Badge>,
    markings: Vec<Link>,
    props: Vec<Prop>,
    versions: Vec<VersionRow>,
    version_shown: String,
    refs_out: Vec<RefGroup>,
    refs_out_more: usize,
    refs_in: Vec<RefGroup>,
    refs_in_more: usize,
    /// `external_references`, with the footnote numbers of those the texts cite.
    external_refs: Vec<crate::markdown::ExternalRef>,
    /// Where the TLP of the badge comes from when the object has no TLP marking: the
    /// collection's `default_tlp` (the one the egress door applies).
    tlp_from_default: bool,
    sightings: Vec<SightingRow>,
    translated: bool,
    partners: Vec<String>,
    as_partner: Option<AsPartner>,
    raw: String,
    graph_href: String,
}

#[derive(serde::Deserialize, Default)]
struct ObjectQuery {
    /// Show the object as this partner would receive it (admin only).
    #[serde(rename = "as", default)]
    as_partner: String,
    /// One version (`modified`); the newest without it.
    #[serde(default)]
    version: String,
}

pub(crate) fn object_href(coll: &str, id: &str) -> String {
    format!("/ui/c/{}/o/{}", url_encode(coll), url_encode(id))
}

fn link_to(cat: &Catalogue, coll: &str, id: &str) -> Link {
    match cat.get(id) {
        Some(i) => Link {
            href: Some(object_href(coll, id)),
            text: i.name.clone(),
            id: id.to_owned(),
        },
        None => Link {
            href: None,
            text: id.to_owned(),
            id: id.to_owned(),
        },
    }
}

/// The translations of one object into `lang` (primary subtag): field → text, from its
/// `language-content` objects (STIX 2.1 §7.1), the newest `modified` winning.
fn translations(
    store: &dyn Store,
    lens: &Lens,
    coll: &Collection,
    ids: &[String],
    lang: &str,
) -> Result<Vec<(String, Value)>, WebError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let filter = ObjectFilter {
        ids: ids.to_vec(),
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    let page = store.entries(
        &coll.id,
        &filter,
        &PageRequest {
            limit: 100,
            after: None,
        },
        true,
    )?;
    let mut found: Vec<(String, String, Value)> = Vec::new();
    for e in page.entries {
        let Some(copy) = lens.see(&e)? else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&copy) else {
            continue;
        };
        let modified = v["modified"].as_str().unwrap_or_default().to_owned();
        if let Some(langs) = v.get("contents").and_then(Value::as_object) {
            for (tag, fields) in langs {
                let primary = tag.split('-').next().unwrap_or(tag);
                if primary.eq_ignore_ascii_case(lang)
                    && let Some(fields) = fields.as_object()
                {
                    for (k, val) in fields {
                        found.push((modified.clone(), k.clone(), val.clone()));
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, Value)> = Vec::new();
    for (_, k, v) in found {
        out.retain(|(x, _)| *x != k);
        out.push((k, v));
    }
    Ok(out)
}

fn text_of(v: &Value) -> (String, bool) {
    match v {
        Value::String(s) => (s.clone(), false),
        Value::Array(a) if a.iter().all(|x| x.is_string() || x.is_number()) => (
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
            false,
        ),
        Value::Object(_) | Value::Array(_) => {
            (serde_json::to_string_pretty(v).unwrap_or_default(), true)
        }
        other => (other.to_string(), false),
    }
}

async fn object(
    State(web): State<Web>,
    v: Viewer,
    Path((key, id)): Path<(String, String)>,
    Query(q): Query<ObjectQuery>,
) -> Result<Html<String>, WebError> {
    let store = web.store();
    let tr = v.tr;
    let vv = v.clone();
    let page = blocking(move || {
        let c = readable(store.as_ref(), &vv, &key)?;
        let lens = Lens::new(&web, store.as_ref(), &vv, &c)?;
        let cat = catalogue_for(&web, store.as_ref(), &lens, &c)?;
        let coll = CollectionRef::from(&c);
        let not_found = || WebError::not_found(tr.t1("error-no-object", "id", id.as_str()));
        // A partner knows an object by the id of its copy, and only objects its index holds
        // (a renamed SCO's stored id would confirm the raw value: 404).
        if !lens.is_admin() && cat.get(&id).is_none() {
            return Err(not_found());
        }
        let stored_id = cat.stored_id(&id).to_owned();
        // Every version, oldest first.
        let filter = ObjectFilter {
            ids: vec![stored_id],
            versions: vec![VersionSelector::All],
            ..ObjectFilter::default()
        };
        let entries = store
            .entries(
                &c.id,
                &filter,
                &PageRequest {
                    limit: 1000,
                    after: None,
                },
                true,
            )?
            .entries;
        let seen = lens.see_all(&entries)?;
        let visible: Vec<_> = entries
            .iter()
            .zip(seen)
            .filter_map(|(e, s)| Some((e, s?.1)))
            .collect();
        let wanted = q.version.trim();
        let (entry, body) = visible
            .iter()
            .rev()
            .find(|(e, _)| wanted.is_empty() || e.version() == wanted)
            .ok_or_else(|| match wanted {
                "" => not_found(),
                v => WebError::not_found(tr.t1("error-no-version", "version", v)),
            })?;
        // The door's copy: references already follow the ids this viewer knows.
        let body = &body.clone();
        let value: Value = serde_json::from_str(body).map_err(|_| not_found())?;
        lens.audit(store.as_ref(), "web-object", &[*entry])?;
        let version_shown = entry.version();
        let versions = visible
            .iter()
            .rev()
            .map(|(e, _)| VersionRow {
                version: e.version(),
                date_added: date(e.date_added_ns),
                href: format!(
                    "{}?version={}",
                    object_href(&coll.key, &id),
                    url_encode(&e.version())
                ),
                current: e.version() == version_shown,
            })
            .collect();
        let translated_fields = translations(
            store.as_ref(),
            &lens,
            &c,
            cat.translations(&id),
            tr.primary(),
        )?;
        let mut props = Vec::new();
        // Footnotes are numbered in the order the texts cite them.
        let mut cites = crate::markdown::Citations::of(&value);
        if let Some(map) = value.as_object() {
            for (k, val) in map {
                if matches!(
                    k.as_str(),
                    "type" | "id" | "object_marking_refs" | "external_references"
                ) {
                    continue;
                }
                let is_ref = k.ends_with("_ref") || k.ends_with("_refs");
                let links = if is_ref {
                    let ids: Vec<&str> = match val {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        _ => Vec::new(),
                    };
                    ids.into_iter()
                        .map(|r| link_to(&cat, &coll.key, r))
                        .collect()
                } else {
                    Vec::new()
                };
                let (text, code) = text_of(val);
                let translation = translated_fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, t)| text_of(t).0);
                let (text, original) = match translation {
                    Some(t) if t != text => (t, Some(text)),
                    _ => (text, None),
                };
                let markdown = crate::markdown::MARKDOWN_KEYS.contains(&k.as_str()) && !code;
                let html = markdown.then(|| cites.render(&text));
                let original_html = original
                    .as_deref()
                    .filter(|_| markdown)
                    .map(|o| cites.render(o));
                // `hashes` (files, artifacts, external references): algorithm → value.
                let pairs: Vec<(String, String)> = match val.as_object() {
                    Some(m) if k == "hashes" && m.values().all(Value::is_string) => m
                        .iter()
                        .map(|(a, h)| (a.clone(), h.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                    _ => Vec::new(),
                };
                props.push(Prop {
                    key: k.clone(),
                    code: code && pairs.is_empty(),
                    text,
                    original,
                    lang: tr.tag.to_owned(),
                    links,
                    html,
                    original_html,
                    pairs,
                });
            }
        }
        let markings = strings(&value, "object_marking_refs");
        // The TLP the egress door applies: the strictest marking, else the collection's
        // default_tlp (issue 25: an unmarked object is not "no TLP").
        let (badges, tlp_from_default) = match web.app.egress().effective_tlp(&c.id, &value)? {
            concord_egress::EffectiveTlp::Marked(t) => (vec![Badge::from(t)], false),
            concord_egress::EffectiveTlp::CollectionDefault(t) => (vec![Badge::from(t)], true),
            concord_egress::EffectiveTlp::Undecidable(_) => (Vec::new(), false),
        };
        let markings = markings
            .iter()
            .map(|m| match Tlp::from_marking_id(m) {
                Some(t) => Link {
                    href: cat.get(m).map(|_| object_href(&coll.key, m)),
                    text: t.label().to_owned(),
                    id: m.clone(),
                },
                None => link_to(&cat, &coll.key, m),
            })
            .collect();
        // References both ways, grouped by relationship type or property, each naming the
        // object at the other end. A relationship object is read as the edge it stands
        // for ("APT28 uses this"), not as a reference from an object called "uses"; so
        // are a sighting's `where_sighted_refs` ("CERT X sighted this").
        let is_edge_object = |other: &str| {
            cat.get(other)
                .is_some_and(|i| matches!(&*i.object_type, "relationship" | "sighting"))
        };
        let out_edges: Vec<(&Edge, &str)> = cat
            .refs_out(&id)
            .iter()
            .filter(|e| e.via.as_deref() != Some(id.as_str()))
            .map(|e| (e, &*e.to))
            .collect();
        let in_edges: Vec<(&Edge, &str)> = cat
            .refs_in(&id)
            .iter()
            .filter(|e| e.via.is_some() || !is_edge_object(&e.from))
            .map(|e| (e, &*e.from))
            .collect();
        let refs_out_more = out_edges.len().saturating_sub(MAX_REFS);
        let refs_in_more = in_edges.len().saturating_sub(MAX_REFS);
        let group = |edges: &[(&Edge, &str)]| -> Vec<RefGroup> {
            let mut groups: Vec<RefGroup> = Vec::new();
            for (e, other) in edges.iter().take(MAX_REFS) {
                let item = RefItem {
                    link: link_to(&cat, &coll.key, other),
                    object_type: cat
                        .get(other)
                        .map(|i| i.object_type.to_string())
                        .unwrap_or_default(),
                    via: e.via.as_deref().map(|v| object_href(&coll.key, v)),
                };
                match groups.iter_mut().find(|g| *g.label == *e.label) {
                    Some(g) => g.items.push(item),
                    None => groups.push(RefGroup {
                        label: e.label.to_string(),
                        items: vec![item],
                    }),
                }
            }
            for g in &mut groups {
                g.items.sort_by(|a, b| a.link.text.cmp(&b.link.text));
            }
            groups
        };
        let refs_out = group(&out_edges);
        let refs_in = group(&in_edges);
        // The objects named in the reference lists (ids, names), and the relationship
        // objects linked, are shown too: recorded.
        let named: Vec<&str> = out_edges
            .iter()
            .take(MAX_REFS)
            .chain(in_edges.iter().take(MAX_REFS))
            .flat_map(|(e, other)| [Some(*other), e.via.as_deref()])
            .flatten()
            .filter(|n| cat.get(n).is_some())
            .collect();
        lens.audit_shown(store.as_ref(), "web-references", &cat, &named)?;
        let mut sightings = Vec::new();
        for e in cat
            .refs_in(&id)
            .iter()
            .filter(|e| &*e.label == "sighting_of_ref")
            .take(MAX_REFS)
        {
            let f = ObjectFilter {
                ids: vec![e.from.to_string()],
                versions: vec![VersionSelector::Last],
                ..ObjectFilter::default()
            };
            let Some(found) = store
                .entries(
                    &c.id,
                    &f,
                    &PageRequest {
                        limit: 1,
                        after: None,
                    },
                    true,
                )?
                .entries
                .into_iter()
                .next()
            else {
                continue;
            };
            let Some(s) = lens
                .see(&found)?
                .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            else {
                continue;
            };
            lens.audit(store.as_ref(), "web-object", &[&found])?;
            let t = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("—").to_owned();
            sightings.push(SightingRow {
                link: link_to(&cat, &coll.key, &e.from),
                count: s
                    .get("count")
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "—".to_owned()),
                first_seen: t("first_seen"),
                last_seen: t("last_seen"),
                where_sighted: strings(&s, "where_sighted_refs")
                    .iter()
                    .map(|w| link_to(&cat, &coll.key, w))
                    .collect(),
            });
        }
        // "As partner P": the admin's view of what P would receive, and why.
        let partners = if lens.is_admin() {
            store.partners()?.into_iter().map(|p| p.name).collect()
        } else {
            Vec::new()
        };
        let as_partner = if lens.is_admin() && !q.as_partner.is_empty() {
            let p = store
                .partners()?
                .into_iter()
                .find(|p| p.name == q.as_partner)
                .ok_or_else(|| {
                    WebError::not_found(tr.t1("error-no-partner", "name", q.as_partner.as_str()))
                })?;
            let view =
                concord_server::policy::explain_for_partner(&web.app.egress(), &p, &c, entry)?;
            let pretty = |b: &str| {
                serde_json::from_str::<Value>(b)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| b.to_owned())
            };
            let (decision, copy) = match view.decision {
                Decision::Unchanged => ("sent", Some(pretty(body))),
                Decision::Rewritten { body, .. } => ("rewritten", Some(pretty(&body))),
                Decision::Withheld { .. } => ("withheld", None),
            };
            // Every word from the clauses (issue 25): the policy explains itself as data,
            // written here in the page's language; the decision's English reason is for
            // the CLI and the audit.
            let rule_name = |rule: &str| {
                let key = format!("rule-{rule}");
                let name = tr.t(&key);
                if name == key { rule.to_owned() } else { name }
            };
            let reason = (decision == "withheld")
                .then(|| view.steps.iter().find_map(|s| s.withheld()))
                .flatten()
                .map(|c| tr.clause_html(c));
            let changes = if decision == "rewritten" {
                view.steps
                    .iter()
                    .filter(|s| {
                        matches!(
                            s.rule,
                            "granular-markings" | "personal-data" | "references" | "identifier"
                        )
                    })
                    .map(|s| {
                        format!(
                            "{}{} {}",
                            crate::i18n::isolated_html(&rule_name(s.rule)),
                            tr.t("explain-colon"),
                            tr.clauses_html(&s.clauses)
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Some(AsPartner {
                partner: p.name,
                decision,
                reason,
                steps: view
                    .steps
                    .iter()
                    .map(|s| {
                        (
                            s.rule.to_owned(),
                            rule_name(s.rule),
                            tr.clauses_html(&s.clauses),
                        )
                    })
                    .collect(),
                copy,
                changes,
            })
        } else {
            None
        };
        let object_type = value["type"].as_str().unwrap_or_default().to_owned();
        // The heading follows a translated name, like the property itself.
        let name = props
            .iter()
            .find(|p| p.key == "name" && p.original.is_some())
            .map(|p| p.text.clone())
            .unwrap_or_else(|| label(&object_type, &value));
        Ok(ObjectPage {
            c: vv.chrome("collections", name.clone()),
            graph_href: format!("{}/graph", object_href(&coll.key, &id)),
            name,
            translated: props.iter().any(|p| p.original.is_some()),
            coll,
            id: id.clone(),
            object_type,
            badges,
            markings,
            props,
            versions,
            version_shown,
            refs_out,
            refs_out_more,
            refs_in,
            refs_in_more,
            external_refs: {
                cites.render_references();
                cites.references().to_vec()
            },
            tlp_from_default,
            sightings,
            partners,
            as_partner,
            raw: serde_json::to_string_pretty(&value).unwrap_or_default(),
        })
    })
    .await?;
    render(&page)
}

// --- graph ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "graph.html")]
struct GraphPage {
    c: crate::Chrome,
    coll: CollectionRef,
    id: String,
    name: String,
    depth: usize,
    nodes: Vec<Link>,
    /// (type, colour) of the types drawn.
    legend: Vec<(String, &'static str)>,
    layout: crate::graph::Layout,
    truncated: bool,
    object_href: String,
}

#[derive(serde::Deserialize, Default)]
struct GraphQuery {
    depth: Option<usize>,
    /// Groups to draw as their objects (keys `PARENT.TYPE`, comma-separated).
    #[serde(default)]
    expand: String,
}

async fn graph(
    State(web): State<Web>,
    v: Viewer,
    Path((key, id)): Path<(String, String)>,
    Query(q): Query<GraphQuery>,
) -> Result<Html<String>, WebError> {
    let store = web.store();
    let tr = v.tr;
    let vv = v.clone();
    let depth = q.depth.unwrap_or(2).clamp(1, 4);
    let expanded: std::collections::BTreeSet<String> = q
        .expand
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    let page = blocking(move || {
        let c = readable(store.as_ref(), &vv, &key)?;
        let lens = Lens::new(&web, store.as_ref(), &vv, &c)?;
        let cat = catalogue_for(&web, store.as_ref(), &lens, &c)?;
        let coll = CollectionRef::from(&c);
        let start = cat
            .get(&id)
            .ok_or_else(|| WebError::not_found(tr.t1("error-no-object", "id", id.as_str())))?;
        let (nodes, edges) = cat.neighbourhood(&id, depth, GRAPH_MAX_NODES + 1);
        let truncated = nodes.len() > GRAPH_MAX_NODES;
        let nodes: Vec<&Item> = nodes.into_iter().take(GRAPH_MAX_NODES).collect();
        // What the graph shows a partner (ids, names, types) is a transfer: recorded.
        let shown: Vec<&str> = nodes.iter().map(|n| &*n.id).collect();
        lens.audit_shown(store.as_ref(), "web-graph", &cat, &shown)?;
        let index: std::collections::HashMap<&str, usize> =
            nodes.iter().enumerate().map(|(i, n)| (&*n.id, i)).collect();
        let inputs: Vec<crate::graph::Input> = nodes
            .iter()
            .map(|n| crate::graph::Input {
                id: n.id.to_string(),
                name: n.name.clone(),
                object_type: n.object_type.to_string(),
                href: object_href(&coll.key, &n.id),
            })
            .collect();
        let links: Vec<(usize, usize, String)> = edges
            .iter()
            .filter_map(|e| {
                Some((
                    *index.get(&*e.from)?,
                    *index.get(&*e.to)?,
                    e.label.to_string(),
                ))
            })
            .collect();
        let base = format!("{}/graph?depth={depth}", object_href(&coll.key, &id));
        let layout = crate::graph::layout(&inputs, &links, &expanded, |with| {
            let keys: Vec<&str> = with.iter().map(String::as_str).collect();
            format!("{base}&expand={}#graph", url_encode(&keys.join(",")))
        });
        // A key that names no group of this drawing is refused, not ignored: the link that
        // carried it is stale or made by hand.
        if let Some(bad) = expanded.iter().find(|k| !layout.opened.contains(k)) {
            return Err(WebError::bad_request(tr.t1(
                "graph-no-group",
                "key",
                bad.as_str(),
            )));
        }
        let mut legend: Vec<(String, &'static str)> = layout
            .nodes
            .iter()
            .map(|n| (n.object_type.clone(), n.colour))
            .collect();
        legend.sort();
        legend.dedup();
        Ok(GraphPage {
            c: vv.chrome("collections", start.name.clone()),
            name: start.name.clone(),
            object_href: object_href(&coll.key, &id),
            id: id.clone(),
            depth,
            nodes: nodes
                .iter()
                .map(|n| Link {
                    href: Some(object_href(&coll.key, &n.id)),
                    text: n.name.clone(),
                    id: n.object_type.to_string(),
                })
                .collect(),
            legend,
            layout,
            truncated,
            coll,
        })
    })
    .await?;
    render(&page)
}

// --- import -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    c: crate::Chrome,
    collections: Vec<CollectionRef>,
    /// The collection and format chosen last (kept after an import).
    selected: String,
    format: String,
    report: Option<crate::import::Report>,
    error: Option<String>,
}

fn writable(store: &dyn Store, v: &Viewer) -> Result<Vec<CollectionRef>, WebError> {
    Ok(store
        .collections()?
        .iter()
        .filter(|c| v.session.principal.can_write(&c.id))
        .map(CollectionRef::from)
        .collect())
}

async fn import_form(State(web): State<Web>, v: Viewer) -> Result<Html<String>, WebError> {
    let store = web.store();
    let vv = v.clone();
    let collections = blocking(move || writable(store.as_ref(), &vv)).await?;
    render(&ImportPage {
        c: v.chrome("import", v.tr.t("import-title")),
        collections,
        selected: String::new(),
        format: "auto".to_owned(),
        report: None,
        error: None,
    })
}

async fn import(
    State(web): State<Web>,
    v: Viewer,
    mut form: Multipart,
) -> Result<axum::response::Response, WebError> {
    use axum::response::IntoResponse;
    let tr = v.tr;
    let mut collection = String::new();
    let mut new_collection = String::new();
    let mut format = String::from("auto");
    let mut file: Option<(String, axum::body::Bytes)> = None;
    let max = web.app.config().max_content_length;
    let limits = web.app.config().ingress;
    // A body cut at max_content_length (chunked, so not refused from its Content-Length by
    // `limit_bodies`) answers the same 413 as a declared one.
    let too_large = |e: &axum::extract::multipart::MultipartError| {
        (e.status() == StatusCode::PAYLOAD_TOO_LARGE)
            .then(|| concord_server::too_large_response("/ui/import", max))
    };
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        WebError::bad_request(format!(
            "{e} (an upload may be at most {max} bytes, max_content_length)"
        ))
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return too_large(&e).ok_or_else(|| unreadable(e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let fname = field.file_name().unwrap_or("upload").to_owned();
                // Kept as received: decompression and parsing stream from it (no copy).
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => return too_large(&e).ok_or_else(|| unreadable(e)),
                };
                file = Some((fname, bytes));
            }
            "collection" | "new_collection" | "format" => {
                let text = field.text().await.map_err(unreadable)?;
                match name.as_str() {
                    "collection" => collection = text,
                    "new_collection" => new_collection = text,
                    _ => format = text,
                }
            }
            _ => {}
        }
    }
    let store = web.store();
    let vv = v.clone();
    let web2 = web.clone();
    let chosen_format = format.clone();
    let (collections, result, selected) = blocking(move || {
        let target = if new_collection.trim().is_empty() {
            collection.trim().to_owned()
        } else {
            new_collection.trim().to_owned()
        };
        let result = (|| {
            let (name, bytes) = file
                .filter(|(_, b)| !b.is_empty())
                .ok_or_else(|| tr.t("import-no-file"))?;
            if target.is_empty() {
                return Err(tr.t("import-no-collection"));
            }
            // The operator's door: a partner writes through TAXII POST, where the writer's
            // view applies (what it does not receive shapes no answer; only an object's
            // creator versions it, issues 15 and 18). One door for partners' writes.
            let allowed = vv.session.is_admin();
            if !allowed {
                return Err(tr.t1("import-not-allowed", "name", target.as_str()));
            }
            let kind = crate::import::Kind::parse(&format).ok_or_else(|| {
                format!("format {format:?}: expected auto, stix, misp or ioc-list")
            })?;
            let who = vv.session.audit_partner();
            let person = vv.session.actor().audit_name();
            let report = crate::import::import(
                store.as_ref(),
                &target,
                &name,
                &bytes,
                kind,
                &who,
                Some(&person),
                limits,
            )
            .map_err(|e| e.to_string())?;
            web2.catalogues.invalidate(&report.collection_id);
            Ok(report)
        })();
        // A new collection is now in the list: select it.
        let selected = store
            .collection(&target)?
            .map(|c| CollectionRef::from(&c).key)
            .unwrap_or(target);
        Ok((writable(store.as_ref(), &vv)?, result, selected))
    })
    .await?;
    let (status, report, error) = match result {
        Ok(r) => (StatusCode::OK, Some(r), None),
        Err(e) => (StatusCode::BAD_REQUEST, None, Some(e)),
    };
    Ok((
        status,
        render(&ImportPage {
            c: v.chrome("import", tr.t("import-title")),
            collections,
            selected,
            format: chosen_format,
            report,
            error,
        })?,
    )
        .into_response())
}

// --- pattern check ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "pattern.html")]
struct PatternPage {
    c: crate::Chrome,
    pattern: String,
    checked: bool,
    error: Option<String>,
    observations: usize,
}

async fn pattern_form(v: Viewer) -> Result<Html<String>, WebError> {
    render(&PatternPage {
        c: v.chrome("pattern", v.tr.t("pattern-title")),
        pattern: String::new(),
        checked: false,
        error: None,
        observations: 0,
    })
}

#[derive(serde::Deserialize)]
struct PatternForm {
    pattern: String,
}

async fn pattern_check(
    v: Viewer,
    axum::Form(form): axum::Form<PatternForm>,
) -> Result<Html<String>, WebError> {
    let (error, observations) = match concord_pattern::parse(&form.pattern) {
        Ok(p) => (None, observations(&p.expr)),
        Err(e) => (Some(concord_pattern::render_error(&form.pattern, &e)), 0),
    };
    render(&PatternPage {
        c: v.chrome("pattern", v.tr.t("pattern-title")),
        pattern: form.pattern,
        checked: true,
        error,
        observations,
    })
}

/// The observation expressions `[…]` of a pattern.
fn observations(e: &concord_pattern::ObservationExpr) -> usize {
    use concord_pattern::ObservationExpr as O;
    match e {
        O::Observation(_) => 1,
        O::And(v) | O::Or(v) | O::FollowedBy(v) => v.iter().map(observations).sum(),
        O::Qualified { expr, .. } => observations(expr),
    }
}
