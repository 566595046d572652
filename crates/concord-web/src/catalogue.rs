//! The UI's index of one collection: the newest version of each object with what the pages
//! filter and draw on (type, name, markings, `date_added`, searchable text), the references
//! between objects in both directions, and the `language-content` objects per object.
//!
//! Built by one pass over the store's entries and kept until the collection's version count
//! changes (or [`MAX_AGE`] passes), so searching, "references in" and the graph do not scan
//! the store on every request. The store stays the only truth: the object page reads its
//! versions from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_policy::tlp::Tlp;
use concord_store::{ObjectFilter, PageRequest, Store, VersionSelector};

use crate::WebError;
use serde_json::Value;

/// How long an index is trusted without looking at the store's count again.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// One object (its newest version) as the pages list it.
#[derive(Clone, Debug)]
pub struct Item {
    /// STIX id.
    pub id: Arc<str>,
    /// STIX type.
    pub object_type: Arc<str>,
    /// `name` (or, for objects without one, a short label built from their content).
    pub name: String,
    /// `object_marking_refs`.
    pub markings: Vec<Arc<str>>,
    /// The strictest TLP of `object_marking_refs` (`None`: no TLP marking).
    pub tlp: Option<Tlp>,
    /// `date_added` of the newest version, ns since the epoch.
    pub date_added_ns: i64,
    /// `modified` (or `created`) of the newest version.
    pub modified: String,
    /// Lower-cased name, description, aliases and every translation of them: what the text
    /// search matches (substring, so CJK and Arabic need no word splitting).
    search: String,
}

/// A reference from one object to another: the property that holds it (`created_by_ref`,
/// `object_refs`, …), or for a relationship object its `relationship_type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Where it starts.
    pub from: Arc<str>,
    /// Where it points.
    pub to: Arc<str>,
    /// The property, or the relationship type.
    pub label: Arc<str>,
    /// The relationship (or sighting) object that carries it, when it is one.
    pub via: Option<Arc<str>>,
}

/// The index of one collection.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Every object, newest version, in `date_added` order.
    pub items: Vec<Item>,
    by_id: HashMap<Arc<str>, usize>,
    /// References out, by source id.
    out: HashMap<Arc<str>, Vec<Edge>>,
    /// References in, by target id.
    incoming: HashMap<Arc<str>, Vec<Edge>>,
    /// `language-content` ids by the id of the object they translate.
    translations: HashMap<Arc<str>, Vec<String>>,
    /// Every id, type, marking and label once: items and edges share these (an id is
    /// referenced many times over; interning keeps the index a few hundred bytes an object).
    names: std::collections::HashSet<Arc<str>>,
    /// References not yet indexed ([`Catalogue::finish`]).
    pending: Vec<Edge>,
    /// Stored id → the id of the viewer's copy, where they differ.
    renamed: HashMap<Arc<str>, Arc<str>>,
    /// The other way.
    stored_of: HashMap<Arc<str>, Arc<str>>,
    count: u64,
}

/// Filters of the object list; empty fields do not filter.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Filter {
    /// Exact STIX type.
    #[serde(default)]
    pub r#type: String,
    /// A marking definition id in `object_marking_refs`, or a TLP label (`TLP:AMBER`), or
    /// `none` for objects without markings.
    #[serde(default)]
    pub marking: String,
    /// `date_added` on or after this day or timestamp (RFC 3339, UTC).
    #[serde(default)]
    pub added_after: String,
    /// `date_added` before this day or timestamp.
    #[serde(default)]
    pub added_before: String,
    /// Text in the name, description, aliases or a translation (case-insensitive).
    #[serde(default)]
    pub q: String,
}

/// A filter value that cannot be read.
#[derive(Debug)]
pub struct BadFilter {
    /// The query parameter.
    pub parameter: &'static str,
    /// Why.
    pub reason: String,
}

impl Filter {
    /// The predicate, or which parameter is wrong. Dates: `YYYY-MM-DD` (midnight UTC) or a
    /// STIX timestamp.
    pub fn compile(&self) -> Result<impl Fn(&Item) -> bool + '_, BadFilter> {
        let day = |p: &'static str, s: &str| -> Result<Option<i64>, BadFilter> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let text = if s.len() == 10 {
                format!("{s}T00:00:00Z")
            } else {
                s.to_owned()
            };
            concord_stix::Timestamp::parse(&text)
                .map(|t| Some(t.unix_nanos()))
                .map_err(|e| BadFilter {
                    parameter: p,
                    reason: format!(
                        "{s:?}: expected YYYY-MM-DD or an RFC 3339 UTC timestamp ({e})"
                    ),
                })
        };
        let after = day("added_after", &self.added_after)?;
        let before = day("added_before", &self.added_before)?;
        let q = self.q.trim().to_lowercase();
        let marking = self.marking.trim();
        let tlp = if marking
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("tlp:"))
        {
            Tlp::parse(marking)
        } else {
            None
        };
        Ok(move |i: &Item| {
            (self.r#type.is_empty() || *i.object_type == *self.r#type)
                && after.is_none_or(|a| i.date_added_ns >= a)
                && before.is_none_or(|b| i.date_added_ns < b)
                && (q.is_empty() || i.search.contains(&q))
                && match (marking, tlp) {
                    ("", _) => true,
                    ("none", _) => i.markings.is_empty(),
                    (_, Some(t)) => i.tlp == Some(t),
                    (m, None) => i.markings.iter().any(|x| **x == *m),
                }
        })
    }
}

impl Catalogue {
    /// Reads the newest version of every object of `collection_id`.
    pub fn build(store: &dyn Store, collection_id: &str) -> Result<Catalogue, WebError> {
        Catalogue::build_seen(store, collection_id, |entries| {
            Ok(entries
                .iter()
                .map(|e| Some((e.id.clone(), e.body.clone().unwrap_or_default())))
                .collect())
        })
    }

    /// The index over what a viewer sees of each object: `see` maps a page of stored
    /// entries to the viewer's copies, `(id as shown, body)` (a partner's copies from the
    /// egress door), or `None` for an object withheld from it; search, references and the
    /// graph then know only those copies and ids.
    pub fn build_seen(
        store: &dyn Store,
        collection_id: &str,
        mut see: impl FnMut(&[concord_store::Entry]) -> Result<Vec<Option<(String, String)>>, WebError>,
    ) -> Result<Catalogue, WebError> {
        let count = store.count(collection_id)?;
        let filter = ObjectFilter {
            versions: vec![VersionSelector::Last],
            ..ObjectFilter::default()
        };
        let mut request = PageRequest {
            limit: 2000,
            after: None,
        };
        let mut c = Catalogue {
            count,
            ..Catalogue::default()
        };
        let mut contents: Vec<(String, Value)> = Vec::new();
        loop {
            let page = store.entries(collection_id, &filter, &request, true)?;
            let seen = see(&page.entries)?;
            for (e, copy) in page.entries.iter().zip(seen) {
                let Some((shown, body)) = copy else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&body) else {
                    continue;
                };
                if e.object_type == "language-content" {
                    contents.push((shown.clone(), v.clone()));
                }
                // A viewer's copy may carry another id: an SCO whose copy the egress door
                // rewrote gets a keyed id. The viewer knows it by that id only; the stored
                // id would give the raw value away.
                if shown != e.id {
                    let (stored, shown) = (c.intern(&e.id), c.intern(&shown));
                    c.renamed.insert(stored.clone(), shown.clone());
                    c.stored_of.insert(shown, stored);
                }
                c.add(&shown, &e.object_type, e.date_added_ns, &v);
            }
            request.after = page.entries.last().map(|e| e.cursor());
            if !page.more || request.after.is_none() {
                break;
            }
        }
        c.add_translations(contents);
        c.finish();
        Ok(c)
    }

    /// Indexes the references both ways, each end under the id the viewer knows.
    fn finish(&mut self) {
        for mut edge in std::mem::take(&mut self.pending) {
            for end in [&mut edge.from, &mut edge.to] {
                if let Some(shown) = self.renamed.get(end) {
                    *end = shown.clone();
                }
            }
            self.incoming
                .entry(edge.to.clone())
                .or_default()
                .push(edge.clone());
            self.out.entry(edge.from.clone()).or_default().push(edge);
        }
    }

    /// The stored id of an object the viewer knows as `shown` (they differ for an SCO whose
    /// value egress rewrote).
    pub fn stored_id<'a>(&'a self, shown: &'a str) -> &'a str {
        self.stored_of.get(shown).map_or(shown, |s| s)
    }

    /// Every rename of this viewer's copies, stored id → shown id, for
    /// references in a copy shown outside the index.
    pub fn renames(&self) -> Vec<(String, String)> {
        self.renamed
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Translations are searchable on the object they translate.
    fn add_translations(&mut self, contents: Vec<(String, Value)>) {
        for (lc_id, v) in contents {
            let Some(target) = v.get("object_ref").and_then(Value::as_str) else {
                continue;
            };
            let target = self.intern(target);
            self.translations
                .entry(target.clone())
                .or_default()
                .push(lc_id);
            if let (Some(&i), Some(langs)) = (
                self.by_id.get(&target),
                v.get("contents").and_then(Value::as_object),
            ) {
                for fields in langs.values().filter_map(Value::as_object) {
                    for text in fields.values() {
                        push_text(&mut self.items[i].search, text);
                    }
                }
            }
        }
    }

    fn add(&mut self, id: &str, object_type: &str, date_added_ns: i64, v: &Value) {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let markings: Vec<Arc<str>> = strings(v, "object_marking_refs")
            .iter()
            .map(|m| self.intern(m))
            .collect();
        let tlp = markings
            .iter()
            .filter_map(|m| Tlp::from_marking_id(m))
            .max();
        let name = label(object_type, v);
        let mut search = String::new();
        push_text(&mut search, &Value::String(name.clone()));
        for k in [
            "description",
            "aliases",
            "x_mitre_aliases",
            "pattern",
            "value",
        ] {
            if let Some(x) = v.get(k) {
                push_text(&mut search, x);
            }
        }
        let modified = if s("modified").is_empty() {
            s("created")
        } else {
            s("modified")
        };
        let id = self.intern(id);
        let item = Item {
            id: id.clone(),
            object_type: self.intern(object_type),
            name,
            markings,
            tlp,
            date_added_ns,
            modified: modified.to_owned(),
            search,
        };
        self.by_id.insert(id.clone(), self.items.len());
        self.items.push(item);
        let mut found = edges(&id, object_type, v, &mut |x| self.intern(x));
        self.pending.append(&mut found);
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(a.clone());
        a
    }

    /// The item of an id.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.by_id.get(id).map(|&i| &self.items[i])
    }

    /// References out of `id` (for a relationship: to its source and target).
    pub fn refs_out(&self, id: &str) -> &[Edge] {
        self.out.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    /// References into `id`.
    pub fn refs_in(&self, id: &str) -> &[Edge] {
        self.incoming.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The `language-content` objects that translate `id`.
    pub fn translations(&self, id: &str) -> &[String] {
        self.translations
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every STIX type present, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .items
            .iter()
            .map(|i| i.object_type.to_string())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The graph around `id`: objects within `depth` hops (relationship objects count as
    /// edges, not hops), at most `max_nodes` of them, nearest first.
    pub fn neighbourhood(
        &self,
        id: &str,
        depth: usize,
        max_nodes: usize,
    ) -> (Vec<&Item>, Vec<Edge>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        let Some(start) = self.get(id) else {
            return (Vec::new(), Vec::new());
        };
        seen.insert(&start.id, 0);
        order.push(&start.id);
        let mut frontier = vec![&*start.id];
        let mut edges: Vec<Edge> = Vec::new();
        for d in 1..=depth {
            let mut next = Vec::new();
            for node in frontier {
                // Past the start, `created_by_ref` is left out: every object of one
                // producer points at its identity, which would pull in the collection.
                for e in self.collapsed_edges(node, d == 1) {
                    let other = if *e.from == *node { &e.to } else { &e.from };
                    let Some(item) = self.get(other) else {
                        continue;
                    };
                    if !seen.contains_key(&*item.id) {
                        if order.len() >= max_nodes {
                            continue;
                        }
                        seen.insert(&item.id, d);
                        order.push(&item.id);
                        next.push(&*item.id);
                    }
                    if !edges.contains(&e) {
                        edges.push(e);
                    }
                }
            }
            frontier = next;
        }
        edges.retain(|e| seen.contains_key(&*e.from) && seen.contains_key(&*e.to));
        let nodes = order.into_iter().filter_map(|i| self.get(i)).collect();
        (nodes, edges)
    }

    /// Edges at `id` (`created_by_ref` only `with_producer`), with each relationship object folded into one edge from its source to
    /// its target (so the graph shows `malware uses attack-pattern`, not three nodes).
    fn collapsed_edges(&self, id: &str, with_producer: bool) -> Vec<Edge> {
        let mut all = Vec::new();
        for e in self.refs_out(id).iter().chain(self.refs_in(id)) {
            if e.via.is_some() {
                all.push(e.clone());
                continue;
            }
            let other = if *e.from == *id { &e.to } else { &e.from };
            // A reference to or from a relationship object: follow it to its far end.
            if self
                .get(other)
                .is_some_and(|i| is_relationship(&i.object_type))
            {
                continue;
            }
            if !with_producer && &*e.label == "created_by_ref" {
                continue;
            }
            all.push(e.clone());
        }
        all
    }

    /// The version count this index was built at.
    pub fn count(&self) -> u64 {
        self.count
    }
}

fn is_relationship(t: &str) -> bool {
    t == "relationship" || t == "sighting"
}

/// The references held by one object. A relationship gives one edge source → target
/// labelled with its `relationship_type`; a sighting one edge per `where_sighted_refs`
/// entry to its `sighting_of_ref`… plus every `*_ref`/`*_refs` property at the top level.
fn edges(
    id: &Arc<str>,
    object_type: &str,
    v: &Value,
    intern: &mut dyn FnMut(&str) -> Arc<str>,
) -> Vec<Edge> {
    let mut out = Vec::new();
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if object_type == "relationship"
        && let (Some(src), Some(dst)) = (s("source_ref"), s("target_ref"))
    {
        out.push(Edge {
            from: intern(src),
            to: intern(dst),
            label: intern(s("relationship_type").unwrap_or("related-to")),
            via: Some(id.clone()),
        });
    }
    if object_type == "sighting"
        && let Some(of) = s("sighting_of_ref")
    {
        for w in strings(v, "where_sighted_refs") {
            out.push(Edge {
                from: intern(&w),
                to: intern(of),
                label: intern("sighted"),
                via: Some(id.clone()),
            });
        }
    }
    let Some(map) = v.as_object() else {
        return out;
    };
    for (k, val) in map {
        // Markings are the item's own (`Item::markings`), not references to draw or list:
        // every object of a collection would be "in" its TLP definition.
        if k == "object_marking_refs" {
            continue;
        }
        let targets: Vec<&str> = if k.ends_with("_ref") {
            val.as_str().into_iter().collect()
        } else if k.ends_with("_refs") {
            val.as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        } else {
            continue;
        };
        let label = intern(k);
        for t in targets {
            out.push(Edge {
                from: id.clone(),
                to: intern(t),
                label: label.clone(),
                via: None,
            });
        }
    }
    out
}

/// A display name: `name`, else a property that says what the object is (`value` of an SCO,
/// `pattern`, `relationship_type`, …), else the type.
pub fn label(object_type: &str, v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
    let text = s("name")
        .or_else(|| s("value"))
        .or_else(|| s("pattern"))
        .or_else(|| s("relationship_type"))
        .or_else(|| s("opinion"))
        .or_else(|| s("content"))
        .or_else(|| s("abstract"))
        .or_else(|| s("path"))
        .unwrap_or(object_type);
    let mut t: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        t.push('…');
    }
    t
}

/// The strings of a list property (`object_marking_refs`, `where_sighted_refs`, …); empty
/// when absent or not a list.
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => {
            out.push('\n');
            out.push_str(&s.to_lowercase());
        }
        Value::Array(a) => a.iter().for_each(|x| push_text(out, x)),
        _ => {}
    }
}

/// How long a partner's index stays cached without being read: dropped after that, so the
/// cache holds the indexes of the viewers of the last minutes only.
pub const IDLE: Duration = Duration::from_secs(300);

/// One cached index.
struct Slot {
    /// When the index was built (for [`MAX_AGE`]).
    built: Instant,
    /// When it was last read (for [`IDLE`]).
    used: Instant,
    index: Arc<Catalogue>,
    /// A rebuild runs in the background.
    rebuilding: bool,
    /// [`Catalogues::invalidate`] was called since it was built.
    stale: bool,
}

/// How a viewer's index is rebuilt: the store's `count` is compared at every read.
pub type Build = Box<dyn FnOnce() -> Result<Catalogue, WebError> + Send + 'static>;

/// The indexes of all collections, one per collection and viewer, rebuilt when a
/// collection's version count changes or [`MAX_AGE`] passes.
///
/// **A partner's index is rebuilt off the request path.** Its rebuild reads and decides
/// every object of the collection, withheld ones included, so a request that waited for it
/// would be slow exactly when the collection changed: a partner timing its pages would
/// learn when something was added, also something it may not see. A partner's request is
/// therefore answered from the index it has, and a stale one (another version count, past
/// [`MAX_AGE`], or invalidated) is rebuilt by a background thread, at most one per index;
/// the request after the rebuild sees it. Only a partner's first page (after [`IDLE`]) or
/// a change of the rules its copies are decided under (a new key, [`Catalogues::get_for`])
/// builds inline: both happen whatever the collection holds. The admin's index (`viewer`
/// `""`) is rebuilt inline, so the operator sees an import at once: the operator knows
/// everything the node holds.
#[derive(Default)]
pub struct Catalogues {
    cache: Arc<Mutex<HashMap<String, Slot>>>,
}

impl std::fmt::Debug for Catalogues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogues").finish_non_exhaustive()
    }
}

impl Catalogues {
    /// The index of `collection_id` as the admin sees it, built or rebuilt when needed.
    /// Blocking (store reads).
    pub fn get(
        &self,
        store: &Arc<dyn Store>,
        collection_id: &str,
    ) -> Result<Arc<Catalogue>, WebError> {
        let (s, id) = (store.clone(), collection_id.to_owned());
        self.get_for(
            store.as_ref(),
            collection_id,
            "",
            Box::new(move || Catalogue::build(s.as_ref(), &id)),
        )
    }

    /// The index of `collection_id` for one viewer (`viewer` names it and the rules its
    /// copies are decided under, e.g. a partner's decision stamp; `""` is the admin).
    /// Missing: built by `build` now. Stale (read at another version count of the
    /// collection, older than [`MAX_AGE`], or invalidated): for the admin rebuilt now; for
    /// any other viewer the index it has is returned and `build` runs on a thread of its
    /// own, unless a rebuild of that index already runs. Errors: the store, the build.
    pub fn get_for(
        &self,
        store: &dyn Store,
        collection_id: &str,
        viewer: &str,
        build: Build,
    ) -> Result<Arc<Catalogue>, WebError> {
        let key = format!("{collection_id}\n{viewer}");
        let count = store.count(collection_id)?;
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = cache.get_mut(&key) {
                slot.used = now;
                let fresh =
                    !slot.stale && slot.built.elapsed() < MAX_AGE && slot.index.count() == count;
                if fresh {
                    return Ok(slot.index.clone());
                }
                if !viewer.is_empty() {
                    let index = slot.index.clone();
                    if !slot.rebuilding {
                        slot.rebuilding = true;
                        drop(cache);
                        self.rebuild_later(key, build);
                    }
                    return Ok(index);
                }
            }
        }
        let fresh = Arc::new(build()?);
        self.put(key, fresh.clone());
        Ok(fresh)
    }

    /// Stores a built index under `key`, dropping those not read for [`IDLE`].
    fn put(&self, key: String, index: Arc<Catalogue>) {
        put(&self.cache, key, index);
    }

    /// Runs `build` on a thread of its own and stores what it built; on failure the old
    /// index stays (and the next read tries again).
    fn rebuild_later(&self, key: String, build: Build) {
        let cache = self.cache.clone();
        let cache_on_fail = self.cache.clone();
        let key_on_fail = key.clone();
        let spawned = std::thread::Builder::new()
            .name("concord-catalogue".to_owned())
            .spawn(move || match build() {
                Ok(index) => put(&cache, key, Arc::new(index)),
                Err(e) => {
                    tracing::warn!(error = %e.message, "rebuilding a catalogue");
                    if let Some(slot) = cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&key)
                    {
                        slot.rebuilding = false;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "starting a catalogue rebuild");
            if let Some(slot) = cache_on_fail
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&key_on_fail)
            {
                slot.rebuilding = false;
            }
        }
    }

    /// Marks every index of a collection stale (after an import through the UI): the
    /// admin's is rebuilt at its next read, a partner's in the background
    /// ([`Catalogues::get_for`]).
    pub fn invalidate(&self, collection_id: &str) {
        let prefix = format!("{collection_id}\n");
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for (_, slot) in cache.iter_mut().filter(|(k, _)| k.starts_with(&prefix)) {
            slot.stale = true;
        }
    }
}

fn put(cache: &Mutex<HashMap<String, Slot>>, key: String, index: Arc<Catalogue>) {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|_, slot| slot.used.elapsed() < IDLE);
    let now = Instant::now();
    cache.insert(
        key,
        Slot {
            built: now,
            used: now,
            index,
            rebuilding: false,
            stale: false,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value, c: &mut Catalogue) {
        let id = v["id"].as_str().unwrap().to_owned();
        let t = v["type"].as_str().unwrap().to_owned();
        c.add(&id, &t, 1_000, &v);
    }

    /// Attack: a partner times its pages to learn when the collection changed (also by
    /// objects withheld from it). Its request must not wait for the rebuild that a change
    /// causes: it gets the index it had, and the rebuild runs elsewhere, once. The admin's
    /// index is rebuilt at once.
    #[test]
    fn a_partners_request_never_waits_for_a_rebuild() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(concord_store::SqliteStore::open(&dir.path().join("c.sqlite")).unwrap());
        let c = store
            .create_collection(&concord_store::NewCollection {
                alias: "intel".into(),
                title: None,
                description: None,
            })
            .unwrap();
        let add = |n: u32| {
            let t = "2026-01-01T00:00:00.000Z";
            let bundle = serde_json::json!({"type": "bundle",
                "id": "bundle--6b1f0c0e-2f7c-4a8e-9d2a-0c1e2f3a4b5c", "objects": [
                {"type": "malware", "spec_version": "2.1",
                 "id": format!("malware--{n:08x}-6d3f-4c1e-9a7e-2c0d1f0e9a11"),
                 "created": t, "modified": t, "name": "x", "is_family": true}]});
            concord_ingest::ingest(
                store.as_ref(),
                &c.id,
                bundle.to_string().as_bytes(),
                concord_ingest::IngestOptions {
                    container: concord_ingest::Container::Bundle,
                    list_accepted: false,
                    audit: None,
                    provenance: &[],
                    settings: &[],
                    max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
                    cancel: None,
                    unseen: None,
                },
                |_| {},
            )
            .unwrap();
        };
        let builds = Arc::new(AtomicUsize::new(0));
        let plain = |store: &Arc<dyn Store>, builds: &Arc<AtomicUsize>| -> Build {
            let (s, id, b) = (store.clone(), c.id.clone(), builds.clone());
            Box::new(move || {
                b.fetch_add(1, Ordering::SeqCst);
                Catalogue::build(s.as_ref(), &id)
            })
        };
        let cats = Catalogues::default();
        add(1);
        // First read: built now.
        let first = cats
            .get_for(store.as_ref(), &c.id, "partner", plain(&store, &builds))
            .unwrap();
        assert_eq!((first.items.len(), builds.load(Ordering::SeqCst)), (1, 1));
        add(2);
        // The collection changed: the partner's request gets the index it had, while the
        // rebuild waits (on another thread) until the test lets it go.
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let (s, id) = (store.clone(), c.id.clone());
        let blocked: Build = Box::new(move || {
            started_tx.send(()).unwrap();
            // A guard against a hang: an inline rebuild would return after it, and the
            // assertion below would fail.
            let _ = release_rx.recv_timeout(Duration::from_secs(120));
            Catalogue::build(s.as_ref(), &id)
        });
        let during = cats
            .get_for(store.as_ref(), &c.id, "partner", blocked)
            .unwrap();
        assert_eq!(during.items.len(), 1, "the index it had, not a rebuild");
        started.recv().unwrap();
        // One rebuild at a time: another read neither builds nor waits.
        let again = cats
            .get_for(store.as_ref(), &c.id, "partner", plain(&store, &builds))
            .unwrap();
        assert_eq!(again.items.len(), 1);
        assert_eq!(builds.load(Ordering::SeqCst), 1, "no second rebuild");
        release.send(()).unwrap();
        let mut waited = 0;
        let after = loop {
            let i = cats
                .get_for(store.as_ref(), &c.id, "partner", plain(&store, &builds))
                .unwrap();
            if i.items.len() == 2 || waited > 1200 {
                break i;
            }
            waited += 1;
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(after.items.len(), 2, "the background rebuild is read next");
        // Invalidated (an import through the UI): the partner's request still gets what it
        // had; the admin's is rebuilt at once.
        cats.invalidate(&c.id);
        add(3);
        let p = cats
            .get_for(store.as_ref(), &c.id, "partner", plain(&store, &builds))
            .unwrap();
        assert_eq!(p.items.len(), 2, "the partner's request does not rebuild");
        let admin = cats.get(&store, &c.id).unwrap();
        assert_eq!(admin.items.len(), 3, "the admin's index is built inline");
        add(4);
        let admin = cats.get(&store, &c.id).unwrap();
        assert_eq!(admin.items.len(), 4, "and rebuilt inline");
    }

    #[test]
    fn relationships_fold_into_edges_and_search_finds_cjk_and_arabic() {
        let mut c = Catalogue::default();
        item(
            serde_json::json!({"type": "malware", "id": "malware--1", "name": "灰鸽子",
            "description": "远程访问木马", "object_marking_refs":
            ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"]}),
            &mut c,
        );
        item(
            serde_json::json!({"type": "attack-pattern", "id": "attack-pattern--2",
            "name": "تصيد احتيالي"}),
            &mut c,
        );
        item(
            serde_json::json!({"type": "relationship", "id": "relationship--3",
            "relationship_type": "uses", "source_ref": "malware--1",
            "target_ref": "attack-pattern--2"}),
            &mut c,
        );
        c.finish();
        let (nodes, edges) = c.neighbourhood("malware--1", 2, 200);
        assert_eq!(
            nodes.len(),
            2,
            "the relationship object is an edge, not a node"
        );
        assert_eq!(edges.len(), 1);
        assert_eq!(&*edges[0].label, "uses");
        assert_eq!(
            c.refs_in("attack-pattern--2").len(),
            2,
            "target_ref and the folded edge"
        );
        let f = Filter {
            q: "访问".into(),
            ..Filter::default()
        };
        let p = f.compile().unwrap();
        assert_eq!(c.items.iter().filter(|i| p(i)).count(), 1);
        let f = Filter {
            q: "احتيالي".into(),
            ..Filter::default()
        };
        let p = f.compile().unwrap();
        assert_eq!(
            c.items
                .iter()
                .filter(|i| p(i))
                .map(|i| &*i.id)
                .collect::<Vec<_>>(),
            ["attack-pattern--2"]
        );
        let f = Filter {
            marking: "TLP:AMBER".into(),
            ..Filter::default()
        };
        let p = f.compile().unwrap();
        assert_eq!(c.items.iter().filter(|i| p(i)).count(), 1);
        let f = Filter {
            added_after: "2020-13-01".into(),
            ..Filter::default()
        };
        assert_eq!(f.compile().err().unwrap().parameter, "added_after");
    }
}
