//! Matching records against a compiled [`IndicatorSet`]: hits and per-indicator aggregates
//! (issue 4, items 3 and 4).

use std::collections::HashMap;
use std::sync::Arc;

use concord_pattern::{ComparisonExpr, ObservationExpr, Observations, Pattern};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::classify::Kind;
use crate::input::{PlainBatch, PlainLine, PlainPaths, RecordBatch};
use crate::record::{FieldValue, Record};
use crate::set::{DIRECT, IndicatorSet, RegexPath, Tag};

/// One indicator matching one record: one JSON line of `concord match`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The input's name.
    pub file: Arc<str>,
    /// 1-based line number of the record.
    pub line: u64,
    /// The indicator's id.
    pub indicator: String,
    /// The matched value (for an evaluator-decided pattern: a value of the observation it
    /// matched, preferably on a path the pattern tests).
    pub value: FieldValue,
    /// The STIX object path of that value, e.g. `domain-name:value`.
    pub path: Arc<str>,
}

/// Hits of one indicator over a run: what the caller turns into one sighting (STIX 2.1 §5.7:
/// `count`, `first_seen`, `last_seen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    /// The indicator's id (`sighting_of_ref`).
    pub indicator: String,
    /// Number of records it matched.
    pub count: u64,
    /// Earliest record time (the run's "now" for records without a time), STIX timestamp.
    pub first_seen: String,
    /// Latest record time, STIX timestamp.
    pub last_seen: String,
}

/// Counters of a matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchStats {
    /// Records matched.
    pub records: u64,
    /// Hits reported.
    pub hits: u64,
    /// Pattern evaluations by `concord_pattern` (candidates and residual).
    pub evaluations: u64,
    /// Evaluations that failed (counted as no match), e.g. a MATCHES on a value the regex
    /// engine refuses, or the evaluator's step budget.
    pub eval_errors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    count: u64,
    first: i64,
    last: i64,
}

/// Matches records one at a time. Holds scratch space sized to the set; one per thread.
pub struct Matcher<'s> {
    set: &'s IndicatorSet,
    now: i64,
    seen: Vec<u32>,
    generation: u32,
    regex_seen: Vec<u32>,
    /// Stamps `regex_seen` per field value (a test is checked once per value, not per record).
    regex_generation: u32,
    path_cache: Vec<(Arc<str>, Option<u32>)>,
    /// Path ids by the path's address, direct-mapped ([`PATH_SLOTS`] slots).
    path_slots: Vec<Option<(Arc<str>, Option<u32>)>>,
    /// Per field of the current record: its path id.
    pids: Vec<Option<u32>>,
    /// Exact-table probes of the current record: (hash, key, field), then their postings.
    probes: Vec<(u64, u32, usize)>,
    posts: Vec<Option<u32>>,
    candidates: Vec<(u32, usize)>,
    direct: Vec<(u32, usize)>,
    aggregates: HashMap<u32, Agg, foldhash::fast::RandomState>,
    stats: MatchStats,
    nfc: String,
    validity_at: Option<i64>,
    /// The record of a plain observable that [`Matcher::match_plain`] cannot decide alone.
    plain_record: Record,
    /// The `(hash, key)` of [`Matcher::probes`], for [`IndicatorSet::exact_find_batch`].
    probe_keys: Vec<(u64, u32)>,
    /// Per probe of a record: the bytes of an integer value (see `exact_bytes`).
    probe_ints: Vec<[u8; 8]>,
    /// Per probe of a record: the record's place in its batch.
    probe_records: Vec<usize>,
    /// Per observable of a plain batch: its path id.
    plain_pids: Vec<Option<u32>>,
    /// Per record of a batch, where its path ids (in `pids`) and probes (in `probes`) start;
    /// one more at the end.
    record_starts: Vec<(usize, usize)>,
}

const PATH_CACHE: usize = 256;
/// Plain observables matched per batch (see [`Matcher::match_plain_batch`]).
const PLAIN_BATCH: usize = 64;
/// Records matched per batch (see [`Matcher::match_records`]).
const RECORD_BATCH: usize = 32;
const PATH_SLOT_BITS: u32 = 8;
const PATH_SLOTS: usize = 1 << PATH_SLOT_BITS;

impl<'s> Matcher<'s> {
    /// A matcher over `set`. `now` (Unix nanoseconds) is the time of records without their
    /// own: for validity (`valid_from`/`valid_until`) and for the aggregates.
    pub fn new(set: &'s IndicatorSet, now: i64) -> Matcher<'s> {
        Matcher {
            set,
            now,
            seen: vec![0; set.metas.len()],
            generation: 0,
            regex_seen: vec![0; set.regex_tests.len()],
            regex_generation: 0,
            path_cache: Vec::new(),
            path_slots: vec![None; PATH_SLOTS],
            pids: Vec::new(),
            probes: Vec::new(),
            posts: Vec::new(),
            candidates: Vec::new(),
            direct: Vec::new(),
            aggregates: HashMap::default(),
            stats: MatchStats::default(),
            nfc: String::new(),
            validity_at: None,
            plain_record: Record::default(),
            probe_keys: Vec::new(),
            probe_ints: Vec::new(),
            probe_records: Vec::new(),
            record_starts: Vec::new(),
            plain_pids: Vec::new(),
        }
    }

    /// Decides `valid_from`/`valid_until` at `at` (Unix nanoseconds) for every record,
    /// instead of at each record's own time: "which indicators are valid now" when old logs
    /// are searched for what is known today (retro-hunting; `concord match` does this).
    pub fn validity_at(mut self, at: i64) -> Matcher<'s> {
        self.validity_at = Some(at);
        self
    }

    /// A new stamp for `seen` (one per record): indicators met under an older stamp count as
    /// not met yet. On wrap-around the stamps are reset.
    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.seen.fill(0);
            self.generation = 1;
        }
        self.generation
    }

    fn path_id(&mut self, path: &Arc<str>) -> Option<u32> {
        // First a slot chosen by the address (one comparison for the paths a reader shares
        // among its records), then the list.
        // Fibonacci hashing of the address: paths allocated next to each other (a field map's)
        // land in different slots.
        let slot = ((Arc::as_ptr(path) as *const u8 as usize as u64 >> 3)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            >> (64 - PATH_SLOT_BITS)) as usize;
        if let Some((p, id)) = &self.path_slots[slot]
            && Arc::ptr_eq(p, path)
        {
            return *id;
        }
        let id = match self.path_cache.iter().find(|(p, _)| Arc::ptr_eq(p, path)) {
            Some((_, id)) => *id,
            None => {
                let id = self.set.paths.get(&**path).copied();
                if self.path_cache.len() < PATH_CACHE {
                    self.path_cache.push((Arc::clone(path), id));
                }
                id
            }
        };
        // The caches keep their `Arc`s alive, so an address cannot be reused by another path
        // while it is cached.
        self.path_slots[slot] = Some((Arc::clone(path), id));
        id
    }

    /// Matches one record; calls `out` once per matching indicator, in no particular order.
    pub fn match_record(&mut self, rec: &Record, out: &mut impl FnMut(Hit)) {
        self.match_record_v4(rec, &[], out);
    }

    /// [`Matcher::match_record`] with the IPv4 addresses of some of the record's fields
    /// already parsed (`(field index, address)` by field index, as
    /// [`crate::RecordReader`] notes them): their CIDR lookups do not parse the text again.
    pub(crate) fn match_record_v4(
        &mut self,
        rec: &Record,
        v4: &[(usize, u32)],
        out: &mut impl FnMut(Hit),
    ) {
        self.match_records([(rec, v4)].into_iter(), out);
    }

    /// [`Matcher::match_record_v4`] on each record, in order, with the reads of their exact
    /// probes and IPv4 CIDR lookups issued first, step by step for all of them (see
    /// [`IndicatorSet::exact_find_batch`]): a probe is a likely cache miss, and this way the
    /// misses of several records overlap.
    pub(crate) fn match_records<'r>(
        &mut self,
        recs: impl Iterator<Item = (&'r Record, &'r [(usize, u32)])> + Clone,
        out: &mut impl FnMut(Hit),
    ) {
        let set = self.set;
        // Every field's path id and exact probe; per record where its own start.
        self.pids.clear();
        self.probes.clear();
        self.probe_ints.clear();
        self.probe_records.clear();
        self.record_starts.clear();
        for (rec, _) in recs.clone() {
            self.record_starts
                .push((self.pids.len(), self.probes.len()));
            for (fi, field) in rec.fields.iter().enumerate() {
                let pid = self.path_id(&field.path);
                self.pids.push(pid);
                let mut int = [0; 8];
                if let Some(pid) = pid
                    && let Some((tag, bytes)) = exact_bytes(&field.value, &mut int)
                    && let Some(key) = set.exact_key(pid, tag)
                {
                    self.probes.push((set.exact_hash(key, bytes), key, fi));
                    self.probe_ints.push(int);
                    self.probe_records.push(self.record_starts.len() - 1);
                }
            }
        }
        self.record_starts
            .push((self.pids.len(), self.probes.len()));
        self.probe_keys.clear();
        self.probe_keys
            .extend(self.probes.iter().map(|&(h, k, _)| (h, k)));
        // The values of the probes, by record.
        let list: Vec<&Record> = recs.clone().map(|(rec, _)| rec).collect();
        let (probes, ints, of) = (&self.probes, &self.probe_ints, &self.probe_records);
        let mut posts = std::mem::take(&mut self.posts);
        set.exact_find_batch(
            &self.probe_keys,
            |j| match &list[of[j]].fields[probes[j].2].value {
                FieldValue::Str(s) => s.as_bytes(),
                // The integer's bytes as `exact_bytes` gives them, kept with the probe.
                _ => &ints[j][..],
            },
            &mut posts,
        );
        let starts = &self.record_starts;
        // The CIDR lookups of the addresses the reader parsed.
        let pids = &self.pids;
        set.cidr_touch_v4(recs.clone().zip(starts).flat_map(|((_, v4), &(p0, _))| {
            v4.iter()
                .filter_map(move |&(fi, a)| pids.get(p0 + fi).copied().flatten().map(|p| (p, a)))
        }));
        let seen = &self.seen;
        set.touch_postings(posts.iter().flatten().copied(), |i| {
            seen.get(i as usize).copied().unwrap_or(0)
        });
        for (r, (rec, v4)) in recs.enumerate() {
            let (p0, q0) = self.record_starts[r];
            let (p1, q1) = self.record_starts[r + 1];
            self.finish_record(rec, v4, p0..p1, q0..q1, &posts, out);
        }
        self.posts = posts;
    }

    /// The rest of [`Matcher::match_records`] for one record, whose path ids are
    /// `self.pids[pids]` and exact probes `self.probes[probes]` with postings `posts[probes]`.
    fn finish_record(
        &mut self,
        rec: &Record,
        v4: &[(usize, u32)],
        pids: std::ops::Range<usize>,
        probes: std::ops::Range<usize>,
        posts: &[Option<u32>],
        out: &mut impl FnMut(Hit),
    ) {
        self.stats.records += 1;
        let generation = self.next_generation();
        let set = self.set;
        let t = rec.timestamp.unwrap_or(self.now);
        // Validity at the record's time, or at one fixed time (see `validity_at`).
        let vt = self.validity_at.unwrap_or(t);
        self.candidates.clear();
        self.direct.clear();
        let seen = &mut self.seen;
        let candidates = &mut self.candidates;
        let direct = &mut self.direct;
        let mut on_atom = |ind: u32, fi: usize| match first_valid(set, seen, generation, vt, ind) {
            Some(true) => direct.push((ind, fi)),
            Some(false) => candidates.push((ind, fi)),
            None => {}
        };
        for (&(_, _, fi), post) in self.probes[probes.clone()].iter().zip(&posts[probes]) {
            if let Some(post) = *post {
                set.each(post, &mut |ind| on_atom(ind, fi));
            }
        }
        // CIDR blocks and LIKE/MATCHES, per field.
        let mut v4 = v4.iter().peekable();
        for (fi, field) in rec.fields.iter().enumerate() {
            let (Some(pid), FieldValue::Str(s)) = (self.pids[pids.start + fi], &field.value) else {
                continue;
            };
            if set.has_cidr(pid) {
                while v4.next_if(|&&(i, _)| i < fi).is_some() {}
                match v4.next_if(|&&(i, _)| i == fi) {
                    // The text is the dotted quad of this address (a /32 for `parse_net`).
                    Some(&(_, a)) => set.cidr_lookup_v4(pid, a, &mut |ind| on_atom(ind, fi)),
                    None => set.cidr_lookup(pid, s, &mut |ind| on_atom(ind, fi)),
                }
            }
            if let Some(rp) = set.regex_path(pid) {
                self.regex_generation = regex_atoms(
                    set,
                    rp,
                    s,
                    &mut self.regex_seen,
                    self.regex_generation,
                    &mut self.nfc,
                    &mut |ind| on_atom(ind, fi),
                );
            }
        }
        for k in 0..self.direct.len() {
            let (ind, fi) = self.direct[k];
            self.hit(rec, ind, fi, t, out);
        }
        let residual_live = set
            .residual
            .iter()
            .any(|&i| set.metas[i as usize].valid_at(vt));
        if self.candidates.is_empty() && !residual_live {
            return;
        }
        let (group, sources) = rec.observations(self.now);
        let groups = [group];
        let obs = match Observations::new(&groups) {
            Ok(o) => o,
            Err(_) => {
                self.stats.eval_errors += 1;
                return;
            }
        };
        for k in 0..self.candidates.len() {
            let (ind, fi) = self.candidates[k];
            let p = &set.patterns[set.metas[ind as usize].pattern as usize];
            self.stats.evaluations += 1;
            match concord_pattern::evaluate_prepared(p, &obs) {
                Ok(m) if m.matched => self.hit(rec, ind, fi, t, out),
                Ok(_) => {}
                Err(_) => self.stats.eval_errors += 1,
            }
        }
        for &ind in &set.residual {
            let meta = &set.metas[ind as usize];
            if !meta.valid_at(vt) {
                continue;
            }
            let p = &set.patterns[meta.pattern as usize];
            self.stats.evaluations += 1;
            match concord_pattern::evaluate_prepared(p, &obs) {
                Ok(m) if m.matched => {
                    let fi = binding_field(rec, p, &m, &sources);
                    self.hit(rec, ind, fi, t, out);
                }
                Ok(_) => {}
                Err(_) => self.stats.eval_errors += 1,
            }
        }
    }

    fn hit(&mut self, rec: &Record, ind: u32, fi: usize, t: i64, out: &mut impl FnMut(Hit)) {
        let (value, path) = match rec.fields.get(fi) {
            Some(f) => (f.value.clone(), Arc::clone(&f.path)),
            None => (FieldValue::Str(String::new()), Arc::from("")),
        };
        self.hit_of(&rec.file, rec.line, ind, t, value, path, out);
    }

    /// Counts a hit of indicator `ind` at time `t` and reports it.
    #[allow(clippy::too_many_arguments)]
    fn hit_of(
        &mut self,
        file: &Arc<str>,
        line: u64,
        ind: u32,
        t: i64,
        value: FieldValue,
        path: Arc<str>,
        out: &mut impl FnMut(Hit),
    ) {
        self.stats.hits += 1;
        let a = self.aggregates.entry(ind).or_insert(Agg {
            count: 0,
            first: t,
            last: t,
        });
        a.count += 1;
        a.first = a.first.min(t);
        a.last = a.last.max(t);
        out(Hit {
            file: Arc::clone(file),
            line,
            indicator: self.set.metas[ind as usize].id(),
            value,
            path,
        });
    }

    /// [`Matcher::match_plain`] on each observable of a batch, in order, with the reads of
    /// their exact probes and IPv4 CIDR lookups issued first, step by step for all of them
    /// (see [`IndicatorSet::exact_find_batch`]): one observable's probe is a likely cache
    /// miss, and this way the misses of a batch overlap.
    pub(crate) fn match_plain_batch(
        &mut self,
        batch: &PlainBatch,
        file: &Arc<str>,
        paths: &PlainPaths,
        out: &mut impl FnMut(Hit),
    ) {
        let set = self.set;
        // Per observable its path id, and the exact probes of the batch: (hash, key) and the
        // observable they are for.
        self.probes.clear();
        self.plain_pids.clear();
        for (i, p) in batch.lines(file, paths).enumerate() {
            let pid = self.path_id(p.paths.path(p.kind));
            self.plain_pids.push(pid);
            if matches!(
                p.kind,
                Kind::Ip(std::net::IpAddr::V4(_)) | Kind::Domain | Kind::Url | Kind::Hash(_)
            ) && let Some(key) = pid.and_then(|pid| set.exact_key(pid, Tag::Str))
            {
                self.probes
                    .push((set.exact_hash(key, p.text.as_bytes()), key, i));
            }
        }
        // The CIDR lookups of the batch's IPv4 addresses (one path: `ipv4-addr:value`).
        if let Some(pid) =
            self.path_id(paths.path(Kind::Ip(std::net::Ipv4Addr::UNSPECIFIED.into())))
            && set.has_cidr(pid)
        {
            set.cidr_touch_v4(batch.kinds().filter_map(|k| match k {
                Kind::Ip(std::net::IpAddr::V4(a)) => Some((pid, u32::from(a))),
                _ => None,
            }));
        }
        let mut posts = std::mem::take(&mut self.posts);
        let probes = std::mem::take(&mut self.probes);
        let mut pk = std::mem::take(&mut self.probe_keys);
        pk.clear();
        pk.extend(probes.iter().map(|&(h, k, _)| (h, k)));
        set.exact_find_batch(&pk, |j| batch.text_of(probes[j].2).as_bytes(), &mut posts);
        let seen = &self.seen;
        set.touch_postings(posts.iter().flatten().copied(), |i| {
            seen.get(i as usize).copied().unwrap_or(0)
        });
        let mut next = probes.iter().zip(&posts).peekable();
        for (i, p) in batch.lines(file, paths).enumerate() {
            let exact = next
                .next_if(|((_, _, k), _)| *k == i)
                .map(|(_, &post)| post);
            // Not `pids`: an observable matched through its record uses that.
            let pid = self.plain_pids[i];
            self.match_plain(&p, pid, exact, out);
        }
        self.posts = posts;
        self.probes = probes;
        self.probe_keys = pk;
    }

    /// Matches one plain observable without making it a [`Record`]: the same hits, in the
    /// same order, as [`Matcher::match_record`] on the record the reader would have made
    /// (one field of the observable's path; no time of its own). IPv4 addresses, domains,
    /// URLs and hashes take the direct way (one exact probe, the CIDR table with the address
    /// already parsed, the automata); anything else (`ip:port`, IPv6, e-mail), and any
    /// observable that makes an evaluator-decided indicator a candidate or meets a residual
    /// one, goes through the record.
    /// `pid`: the path id of the observable's path; `exact`: the result of the exact probe
    /// (the posting, or `None` for no value) when the batch already made it.
    fn match_plain(
        &mut self,
        p: &PlainLine<'_>,
        pid: Option<u32>,
        exact: Option<Option<u32>>,
        out: &mut impl FnMut(Hit),
    ) {
        let v4 = match p.kind {
            Kind::Ip(std::net::IpAddr::V4(a)) => Some(u32::from(a)),
            Kind::Domain | Kind::Url | Kind::Hash(_) => None,
            _ => return self.match_plain_record(p, out),
        };
        let set = self.set;
        if !set.residual.is_empty() {
            return self.match_plain_record(p, out);
        }
        let path = p.paths.path(p.kind);
        self.stats.records += 1;
        let generation = self.next_generation();
        let t = self.now;
        let vt = self.validity_at.unwrap_or(t);
        self.direct.clear();
        let mut candidate = false;
        if let Some(pid) = pid {
            let seen = &mut self.seen;
            let direct = &mut self.direct;
            let mut on_atom = |ind: u32| match first_valid(set, seen, generation, vt, ind) {
                Some(true) => direct.push((ind, 0)),
                Some(false) => candidate = true,
                None => {}
            };
            let bytes = p.text.as_bytes();
            let post = match exact {
                Some(post) => post,
                None => set
                    .exact_key(pid, Tag::Str)
                    .and_then(|key| set.exact_find(set.exact_hash(key, bytes), key, bytes)),
            };
            if let Some(post) = post {
                set.each(post, &mut on_atom);
            }
            if set.has_cidr(pid) {
                match v4 {
                    Some(a) => set.cidr_lookup_v4(pid, a, &mut on_atom),
                    None => set.cidr_lookup(pid, p.text, &mut on_atom),
                }
            }
            if let Some(rp) = set.regex_path(pid) {
                self.regex_generation = regex_atoms(
                    set,
                    rp,
                    p.text,
                    &mut self.regex_seen,
                    self.regex_generation,
                    &mut self.nfc,
                    &mut on_atom,
                );
            }
        }
        if candidate {
            // The evaluator needs the record: start again on it.
            self.stats.records -= 1;
            return self.match_plain_record(p, out);
        }
        for k in 0..self.direct.len() {
            let (ind, _) = self.direct[k];
            let value = FieldValue::Str(p.text.to_string());
            self.hit_of(p.file, p.line, ind, t, value, Arc::clone(path), out);
        }
    }

    /// [`Matcher::match_plain`] through the record the reader would have made.
    fn match_plain_record(&mut self, p: &PlainLine<'_>, out: &mut impl FnMut(Hit)) {
        let mut rec = std::mem::take(&mut self.plain_record);
        rec.file = Arc::clone(p.file);
        rec.line = p.line;
        rec.timestamp = None;
        rec.fields.clear();
        p.paths.fields(p.kind, p.text.to_string(), &mut rec.fields);
        self.match_record(&rec, out);
        self.plain_record = rec;
    }

    /// One aggregate per indicator that hit, ordered by indicator id.
    pub fn aggregates(&self) -> Vec<Aggregate> {
        let ts = |n: i64| {
            concord_stix::Timestamp::from_unix_nanos(n, 3)
                .as_str()
                .to_string()
        };
        let mut v: Vec<Aggregate> = self
            .aggregates
            .iter()
            .map(|(&ind, a)| Aggregate {
                indicator: self.set.metas[ind as usize].id(),
                count: a.count,
                first_seen: ts(a.first),
                last_seen: ts(a.last),
            })
            .collect();
        v.sort_by(|a, b| a.indicator.cmp(&b.indicator));
        v
    }

    /// Counters so far.
    pub fn stats(&self) -> &MatchStats {
        &self.stats
    }
}

/// Runs the LIKE/MATCHES tests of one path on `s` (tests behind the Aho-Corasick prefilter
/// when one of their literals occurs, the others always), each test once per value; calls
/// `on_atom` with the indicator of each test that matches. `regex_seen` is stamped with the
/// next generation, which is returned.
fn regex_atoms(
    set: &IndicatorSet,
    rp: &RegexPath,
    s: &str,
    regex_seen: &mut [u32],
    generation: u32,
    nfc: &mut String,
    on_atom: &mut impl FnMut(u32),
) -> u32 {
    let mut regex_generation = generation.wrapping_add(1);
    if regex_generation == 0 {
        regex_seen.fill(0);
        regex_generation = 1;
    }
    let v: &str = if s.is_ascii() {
        s
    } else {
        nfc.clear();
        nfc.extend(s.nfc());
        nfc
    };
    let tests = &set.regex_tests;
    let mut check = |ti: u32| {
        if regex_seen[ti as usize] == regex_generation {
            return;
        }
        regex_seen[ti as usize] = regex_generation;
        let rt = &tests[ti as usize];
        if rt.re.is_match(v) {
            on_atom(rt.indicator);
        }
    };
    // Most values contain no literal: `is_match` (which can skip ahead with the automaton's
    // prefilter) rules them out before the overlapping search, which steps through every byte.
    if let Some(ac) = &rp.ac
        && ac.is_match(v)
    {
        for m in ac.find_overlapping_iter(v) {
            for &ti in &rp.by_literal[m.pattern().as_usize()] {
                check(ti);
            }
        }
    }
    for &ti in &rp.always {
        check(ti);
    }
    regex_generation
}

/// The exact-table form of a value: strings as their bytes, integers as 8 little-endian bytes
/// (in `int`); other values have none.
/// An atom of indicator `ind` holds on the current record (stamped `generation` in `seen`):
/// `None` when the record already met it or it is not valid at `vt`; else whether the indexes
/// decide it alone (`Some(true)`) or the evaluator must (`Some(false)`).
fn first_valid(
    set: &IndicatorSet,
    seen: &mut [u32],
    generation: u32,
    vt: i64,
    ind: u32,
) -> Option<bool> {
    let s = &mut seen[ind as usize];
    if *s == generation {
        return None;
    }
    *s = generation;
    let meta = &set.metas[ind as usize];
    meta.valid_at(vt).then_some(meta.pattern == DIRECT)
}

fn exact_bytes<'a>(v: &'a FieldValue, int: &'a mut [u8; 8]) -> Option<(Tag, &'a [u8])> {
    match v {
        FieldValue::Str(s) => Some((Tag::Str, s.as_bytes())),
        FieldValue::Int(i) => {
            *int = i.to_le_bytes();
            Some((Tag::Int, &int[..]))
        }
        FieldValue::Float(_) | FieldValue::Bool(_) => None,
    }
}

/// For an evaluator match without a triggering field: a field of the first bound
/// observation, preferring one whose path the pattern tests.
fn binding_field(
    rec: &Record,
    p: &Pattern,
    m: &concord_pattern::Match,
    sources: &[Vec<usize>],
) -> usize {
    let Some(b) = m.bindings.first() else {
        return usize::MAX;
    };
    let n = b
        .observed_data
        .rsplit('-')
        .next()
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .unwrap_or(usize::MAX);
    let Some(fields) = sources.get(n) else {
        return usize::MAX;
    };
    let mut paths = Vec::new();
    obs_paths(&p.expr, &mut paths);
    fields
        .iter()
        .copied()
        .find(|&fi| paths.iter().any(|p| *p == *rec.fields[fi].path))
        .or_else(|| fields.first().copied())
        .unwrap_or(usize::MAX)
}

fn cmp_paths(e: &ComparisonExpr, out: &mut Vec<String>) {
    match e {
        ComparisonExpr::Test(t) => out.push(t.path.to_string()),
        ComparisonExpr::Exists(p) => out.push(p.to_string()),
        ComparisonExpr::And(items) | ComparisonExpr::Or(items) => {
            items.iter().for_each(|i| cmp_paths(i, out))
        }
    }
}

fn obs_paths(e: &ObservationExpr, out: &mut Vec<String>) {
    match e {
        ObservationExpr::Observation(c) => cmp_paths(c, out),
        ObservationExpr::And(items)
        | ObservationExpr::Or(items)
        | ObservationExpr::FollowedBy(items) => items.iter().for_each(|i| obs_paths(i, out)),
        ObservationExpr::Qualified { expr, .. } => obs_paths(expr, out),
    }
}

/// What [`match_reader`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Records read.
    pub records: u64,
    /// Lines that were not records.
    pub malformed: u64,
    /// Hits reported.
    pub hits: u64,
}

/// Reads every record of `reader` and matches it: the loop behind `concord match FILE`.
/// Errors: the reader's I/O errors (malformed lines are not errors; see
/// [`crate::RecordReader::malformed`]).
pub fn match_reader(
    matcher: &mut Matcher<'_>,
    reader: &mut crate::RecordReader,
    out: &mut impl FnMut(Hit),
) -> Result<RunSummary, crate::InputError> {
    let mut hits = 0;
    let mut count = |h: Hit| {
        hits += 1;
        out(h)
    };
    if reader.is_plain() {
        // Plain observables: classified and matched without a `Record` per line.
        let mut batch = PlainBatch::default();
        while reader.next_plain_batch(&mut batch, PLAIN_BATCH)? {
            let (file, paths) = reader.plain_context();
            matcher.match_plain_batch(&batch, file, paths, &mut count);
        }
    } else {
        let mut batch = RecordBatch::default();
        while reader.next_batch(&mut batch, RECORD_BATCH)? {
            matcher.match_records(batch.records(), &mut count);
        }
    }
    Ok(RunSummary {
        records: reader.records(),
        malformed: reader.malformed_count(),
        hits,
    })
}
