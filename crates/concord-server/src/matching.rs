//! Matching observables and log lines against the indicators of collections (issue 4): the
//! compiled indicator set that `concord match` and `POST /api/match` share.

use concord_egress::{Egress, EgressError};
use concord_match::{IndicatorSet, SetBuilder};
use concord_policy::egress::PartnerProfile;
use concord_store::{ObjectFilter, PageRequest, StoreError, VersionSelector};
use serde_json::Value;

/// Who the set is for: the operator (every indicator as stored) or a partner (each indicator
/// as the egress door gives it to that partner, audited; withheld ones are left out, so a
/// partner can only match what it may see).
pub enum Audience<'a> {
    /// The node's own operator or SIEM.
    Operator,
    /// A partner, under the node's policy.
    Partner(&'a PartnerProfile),
}

/// Why a set cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The egress door failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// No such collection.
    #[error("no collection {0:?}")]
    NoCollection(String),
    /// A stored object or setting is unreadable.
    #[error("{0}")]
    Corrupt(String),
    /// The set must be compiled and the compile gate is full (answered 503 with
    /// `Retry-After`).
    #[error(transparent)]
    Busy(#[from] crate::limits::CompileBusy),
}

/// A compiled set and where each indicator in it came from: what `POST /api/match` records
/// in the audit log when a hit names an indicator (the id is what leaves).
pub struct CompiledSet {
    /// The matcher's set.
    pub set: IndicatorSet,
    /// Per indicator id (as the audience receives it): its newest version's collection,
    /// version row and version.
    pub sources: std::collections::HashMap<String, Source>,
}

/// Where an indicator of a [`CompiledSet`] came from.
#[derive(Clone, Debug)]
pub struct Source {
    /// Collection id.
    pub collection: String,
    /// The version row (`object_versions.vid`).
    pub vid: i64,
    /// The version as text ([`concord_store::Entry::version`]).
    pub version: String,
    /// Its sortable key: the newest version of an id is the one the set keeps.
    version_key: String,
}

/// Compiles every version of every indicator of `collections` (aliases or ids) into one set:
/// the newest version of each wins and revoked ones drop out ([`SetBuilder`]). For a
/// partner, every indicator passes the egress door (door `api-match`, audited).
pub fn indicator_set(
    egress: &Egress,
    collections: &[String],
    audience: &Audience<'_>,
) -> Result<IndicatorSet, SetError> {
    compile(egress, collections, audience).map(|c| c.set)
}

/// [`indicator_set`] with the [`Source`] of each indicator.
pub fn compile(
    egress: &Egress,
    collections: &[String],
    audience: &Audience<'_>,
) -> Result<CompiledSet, SetError> {
    let store = egress.store();
    let mut builder = SetBuilder::new();
    let mut sources: std::collections::HashMap<String, Source> = Default::default();
    let filter = ObjectFilter {
        types: vec!["indicator".into()],
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    let mut add = |collection: &str,
                   id: &str,
                   vid: i64,
                   version: String,
                   version_key: &str,
                   body: &str|
     -> Result<(), SetError> {
        let v: Value = serde_json::from_str(body)
            .map_err(|err| SetError::Corrupt(format!("stored object {id}: {err}")))?;
        builder.add(&v);
        if sources
            .get(id)
            .is_none_or(|s| s.version_key.as_str() < version_key)
        {
            sources.insert(
                id.to_owned(),
                Source {
                    collection: collection.to_owned(),
                    vid,
                    version,
                    version_key: version_key.to_owned(),
                },
            );
        }
        Ok(())
    };
    for name in collections {
        let c = store
            .collection(name)?
            .ok_or_else(|| SetError::NoCollection(name.clone()))?;
        let mut after = None;
        loop {
            match audience {
                Audience::Operator => {
                    let p = store.entries(
                        &c.id,
                        &filter,
                        &PageRequest {
                            limit: 5000,
                            after: after.take(),
                        },
                        true,
                    )?;
                    for e in &p.entries {
                        add(
                            &c.id,
                            &e.id,
                            e.vid,
                            e.version(),
                            &e.version_key,
                            e.body.as_deref().unwrap_or("null"),
                        )?;
                    }
                    match (p.more, p.entries.last()) {
                        (true, Some(last)) => after = Some(last.cursor()),
                        _ => break,
                    }
                }
                Audience::Partner(partner) => {
                    let who = concord_egress::Audience::Partner((*partner).clone());
                    let (t, resume) =
                        egress.scan(&who, "api-match", &c.id, &filter, after.take(), 5000, true)?;
                    for e in &t.entries {
                        add(
                            &c.id,
                            &e.id,
                            e.vid,
                            e.version.clone(),
                            &e.version_key,
                            e.body.as_deref().unwrap_or("null"),
                        )?;
                    }
                    match resume {
                        Some(r) if t.more => after = Some(r),
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(CompiledSet {
        set: builder.build(),
        sources,
    })
}

/// What a cached set was compiled from, per collection in key order: its version
/// ([`concord_store::Store::collection_version`]) and its sharing setting (`concord
/// collection share`, which decides what a partner receives of it).
type Stamp = Vec<(i64, Option<String>)>;

/// Which set: the collections (ids, sorted, without repeats), who it is for, and the policy
/// version it was decided under.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SetKey {
    collections: Vec<String>,
    audience: String,
    policy_version: String,
    /// Why nothing goes to the partner now ([`Egress::agreement_stop`]: its agreement's
    /// period), so that a set compiled while it was in effect is not used after its end.
    stop: Option<String>,
}

/// One set of the cache; its mutex is held while the set is compiled, so that concurrent
/// requests for one set compile it once.
#[derive(Default)]
struct Slot {
    built: std::sync::Mutex<Option<(Stamp, std::sync::Arc<CompiledSet>)>>,
}

/// Compiled indicator sets kept between `POST /api/match` requests (issue 16, item 2): one
/// per (collections, audience, policy version), reused while every collection's version
/// and sharing are unchanged, recompiled (once, whatever the number of waiting requests)
/// when one moved. On PostgreSQL the versions are rows of the database, so a write through
/// another `serve` process invalidates a set here too.
///
/// At most `capacity` sets are kept, and at most `per_audience` of them for one audience
/// (the operator, or one partner): an audience at its quota replaces its own least recently
/// used set; when the cache is full, a set of the audience that holds the most goes (the
/// least recently used of those). So one partner asking for many collection sets churns
/// only its own, and an audience with one set keeps it while another holds two. The memory
/// is `capacity` times the largest set (about 1 KiB per indicator).
///
/// Compiling goes through a [`CompileGate`](crate::limits::CompileGate): at most
/// `match_compile_concurrency` at once, `match_compile_queue` waiting, more refused
/// ([`SetError::Busy`]).
pub struct SetCache {
    capacity: usize,
    per_audience: usize,
    compiles: std::sync::Arc<crate::limits::CompileGate>,
    /// Least recently used first.
    slots: std::sync::Mutex<Vec<(SetKey, std::sync::Arc<Slot>)>>,
}

impl SetCache {
    /// A cache of at most `capacity` sets (0 compiles every request's set anew), with the
    /// other bounds at their defaults ([`crate::Limits`]).
    pub fn new(capacity: usize) -> SetCache {
        SetCache::with_limits(&crate::Limits {
            match_cache_sets: capacity,
            ..crate::Limits::default()
        })
    }

    /// A cache sized by `limits`: `match_cache_sets`, `match_cache_sets_per_audience`,
    /// `match_compile_concurrency` and `match_compile_queue`.
    pub fn with_limits(limits: &crate::Limits) -> SetCache {
        SetCache {
            capacity: limits.match_cache_sets,
            per_audience: limits.match_cache_sets_per_audience.max(1),
            compiles: crate::limits::CompileGate::new(
                limits.match_compile_concurrency,
                limits.match_compile_queue,
            ),
            slots: std::sync::Mutex::default(),
        }
    }

    /// The gate compiles go through.
    pub fn compile_gate(&self) -> std::sync::Arc<crate::limits::CompileGate> {
        self.compiles.clone()
    }

    /// Sets kept now.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no set is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set of `collections` (ids) for `audience` with its sources, and whether it was
    /// reused: the cached
    /// one when every collection's version and sharing are what they were when it was
    /// compiled, else [`indicator_set`]'s (audited then, door `api-match`, for a partner),
    /// once the compile gate lets it. The versions are read before compiling, so a write
    /// during the compile makes the next request compile again, never serve a stale set.
    /// Errors: those of [`indicator_set`]; a collection id that does not exist;
    /// [`SetError::Busy`] when the set must be compiled and the gate is full.
    pub fn get(
        &self,
        egress: &Egress,
        collections: &[String],
        audience: &Audience<'_>,
    ) -> Result<(std::sync::Arc<CompiledSet>, bool), SetError> {
        let mut ids = collections.to_vec();
        ids.sort();
        ids.dedup();
        if self.capacity == 0 {
            let _permit = self.compiles.enter()?;
            return Ok((std::sync::Arc::new(compile(egress, &ids, audience)?), false));
        }
        let store = egress.store();
        let mut stamp = Stamp::with_capacity(ids.len());
        for id in &ids {
            let version = store.collection_version(id)?;
            let sharing = store.setting(&concord_policy::egress::sharing_setting_key(id))?;
            stamp.push((version, sharing));
        }
        let key = SetKey {
            audience: match audience {
                Audience::Operator => "operator".to_owned(),
                Audience::Partner(p) => format!(
                    "partner\n{}\n{}\n{}",
                    p.name,
                    p.jurisdiction,
                    p.groups.join("\n")
                ),
            },
            collections: ids,
            policy_version: egress.policy().version.clone(),
            stop: match audience {
                Audience::Operator => None,
                Audience::Partner(p) => {
                    egress.agreement_stop(p, concord_stix::Timestamp::now_micros().unix_nanos())?
                }
            },
        };
        let slot = self.slot(&key);
        let mut built = slot.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, set)) = built.as_ref()
            && *s == stamp
        {
            return Ok((set.clone(), true));
        }
        let _permit = self.compiles.enter()?;
        // Dropped before compiling: the old set's memory is not held twice.
        *built = None;
        let set = std::sync::Arc::new(compile(egress, &key.collections, audience)?);
        *built = Some((stamp, set.clone()));
        Ok((set, false))
    }

    /// The slot of `key`, now the most recently used, and the sets dropped to make room
    /// for it when it is new (see [`SetCache`]).
    fn slot(&self, key: &SetKey) -> std::sync::Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = slots.iter().position(|(k, _)| k == key) {
            let entry = slots.remove(i);
            let slot = entry.1.clone();
            slots.push(entry);
            return slot;
        }
        let own = slots
            .iter()
            .filter(|(k, _)| k.audience == key.audience)
            .count();
        if own >= self.per_audience {
            // Its own least recently used set.
            if let Some(i) = slots.iter().position(|(k, _)| k.audience == key.audience) {
                slots.remove(i);
            }
        } else if slots.len() >= self.capacity {
            // The least recently used set of the audience holding the most.
            let mut held: std::collections::HashMap<&str, usize> = Default::default();
            for (k, _) in slots.iter() {
                *held.entry(k.audience.as_str()).or_default() += 1;
            }
            let most = held.values().copied().max().unwrap_or(0);
            let victim = slots
                .iter()
                .position(|(k, _)| held.get(k.audience.as_str()) == Some(&most));
            if let Some(i) = victim {
                slots.remove(i);
            }
        }
        let slot = std::sync::Arc::<Slot>::default();
        slots.push((key.clone(), slot.clone()));
        slot
    }
}
