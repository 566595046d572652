//! The compiled indicator set (issue 4, item 2).
//!
//! Indicators (STIX 2.1 §4.7) are added as JSON objects; for each id only the version with
//! the newest `modified` counts, and it is dropped if it is `revoked`. Each pattern (STIX 2.1
//! §9) is parsed by `concord_pattern` and reduced to a **necessary condition**: a set of
//! *atoms* of which at least one must hold on some field of a record for the pattern to match
//! it. An atom is
//!
//! - an exact value: a `=` or `IN` test (not negated) with string or integer literals on a
//!   flat path (see [`crate::record`]), kept in one hash table keyed by (path, value) over a
//!   single value arena;
//! - a CIDR block: an `ISSUBSET` test, kept in one hash table per (path, family, prefix
//!   length) — a record value is looked up once per prefix length present;
//! - a `LIKE` or `MATCHES` test, kept per path as regular expressions behind an Aho–Corasick
//!   prefilter over their required literals (the longest literal run of a `LIKE`; the prefix
//!   literals `regex-syntax` extracts from a `MATCHES`); tests without such literals are
//!   checked on every value of their path.
//!
//! The condition of `A AND B` (comparison or observation level) is the cheaper of the two
//! operands' conditions; `A OR B` needs both; `FOLLOWEDBY` is like `AND`; qualifiers keep
//! their operand's condition. A test that is none of the above (`!=`, `<`, `NOT`, `EXISTS`,
//! list steps, …) has no condition, and a pattern left without one is **residual**: evaluated
//! on every record.
//!
//! A pattern that is one observation of `OR`ed indexable tests (or an `OR` of such
//! observations) is decided by its atom alone. Every other pattern is a **candidate** when an
//! atom holds and is then decided by `concord_pattern::evaluate_prepared` on the record as
//! observed-data ([`crate::Record::observations`]).
//!
//! Validity: an indicator applies to a record when `valid_from <= t < valid_until`, where `t`
//! is the record's own time when it has one (eve `timestamp`, Zeek `ts`) and the matcher's
//! "now" otherwise. A missing `valid_from` counts as the beginning of time.
//!
//! Literals are compared as the evaluator compares them: exactly, case-sensitively. The
//! readers lower-case domains and hashes, so an indicator written with upper-case hex digits
//! matches nothing, under either path.

use std::collections::HashMap;
use std::hash::BuildHasher;

use aho_corasick::AhoCorasick;
use concord_pattern::{ComparisonExpr, Literal, ObservationExpr, Operand, Operator, Pattern, Test};
use serde::Serialize;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::fieldmap::is_flat;

/// An indicator that was not compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The indicator's id (or `"<no id>"`).
    pub indicator: String,
    /// Why, e.g. the pattern's parse error with its byte offset.
    pub reason: String,
}

/// Counts about a compiled set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SetStats {
    /// Objects given to the builder.
    pub objects: u64,
    /// Objects that are not indicators (ignored).
    pub not_indicators: u64,
    /// Older versions replaced by a newer `modified` of the same id.
    pub superseded: u64,
    /// Ids whose newest version is revoked (dropped).
    pub revoked: u64,
    /// Indicators skipped (see [`IndicatorSet::skipped`]).
    pub skipped: u64,
    /// Indicators compiled.
    pub indicators: u64,
    /// Decided by exact values alone.
    pub exact: u64,
    /// Decided by CIDR blocks (and maybe exact values).
    pub cidr: u64,
    /// Decided by LIKE/MATCHES automata (and maybe other atoms).
    pub regex: u64,
    /// Found by the indexes, decided by the evaluator.
    pub candidate: u64,
    /// Evaluated on every record.
    pub residual: u64,
    /// Distinct (path, value) keys in the exact table.
    pub exact_keys: u64,
    /// Bytes of the values themselves (the arena).
    pub value_bytes: u64,
    /// Heap bytes of the exact-value structures beyond the values (hash table, entries,
    /// posting lists) plus the per-indicator records of exact indicators: the figure behind
    /// [`SetStats::exact_overhead_per_indicator`].
    pub exact_overhead_bytes: u64,
}

impl SetStats {
    /// [`SetStats::exact_overhead_bytes`] per exact-value indicator (0 without any).
    pub fn exact_overhead_per_indicator(&self) -> f64 {
        if self.exact == 0 {
            0.0
        } else {
            self.exact_overhead_bytes as f64 / self.exact as f64
        }
    }
}

/// Per indicator: id, validity, and the pattern index for evaluator-decided ones.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub uuid: [u8; 16],
    pub valid_from: i64,
    pub valid_until: i64,
    /// Index into `patterns`, or [`DIRECT`].
    pub pattern: u32,
}

pub(crate) const DIRECT: u32 = u32::MAX;
const MULTI: u32 = 1 << 31;

impl Meta {
    /// `indicator--` and the hyphenated lowercase UUID, written by hand: one id is built per
    /// hit (2.7M in the benchmark), and `format!` through `Uuid`'s `Display` costs several
    /// times the one allocation this needs.
    pub(crate) fn id(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        const PREFIX: &str = "indicator--";
        let mut s = String::with_capacity(PREFIX.len() + 36);
        s.push_str(PREFIX);
        for (i, &b) in self.uuid.iter().enumerate() {
            // Hyphens before bytes 4, 6, 8 and 10: the 8-4-4-4-12 groups.
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }

    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.valid_from <= t && t < self.valid_until
    }
}

/// Value kinds in exact keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Str = 0,
    Int = 1,
}

#[derive(Debug, Clone, Copy)]
struct ExactEntry {
    off: u32,
    len: u32,
    /// `path << 1 | tag`.
    key: u32,
    /// An indicator index, or `MULTI | offset` into the posting lists (`lists[offset]` is
    /// the count, the indicators follow).
    post: u32,
}

/// Postings shared by the exact and CIDR tables.
#[derive(Debug, Default)]
struct Lists {
    lists: Vec<u32>,
}

impl Lists {
    /// The posting of `inds` (not empty): the indicator itself, or a new list.
    fn post(&mut self, inds: &[u32]) -> u32 {
        if let [one] = inds {
            return *one;
        }
        let off = self.lists.len() as u32;
        self.lists.push(inds.len() as u32);
        self.lists.extend(inds);
        MULTI | off
    }

    /// Calls `f` for each indicator of a posting.
    fn each(&self, post: u32, f: &mut impl FnMut(u32)) {
        if post & MULTI == 0 {
            f(post);
        } else {
            let o = (post & !MULTI) as usize;
            let n = self.lists[o] as usize;
            for &i in &self.lists[o + 1..o + 1 + n] {
                f(i);
            }
        }
    }
}

/// The exact values: open addressing over cache-line buckets of 8 slots, entries in
/// insertion order, values in one arena.
///
/// A slot is 0 (empty) or `(hash >> 32) << 32 | (entry + 1)`. A value's home is the bucket
/// its hash names; its slot is the first empty one from there (the next bucket when a bucket
/// is full, which at most half full is rare). So a probe for an absent value (the common case:
/// most log values are in no indicator) reads one cache line and, with the upper half of the
/// hash in the slot, almost never an entry; and that line is known from the hash alone, so a
/// batch of probes can issue all their reads before it needs any of them
/// ([`IndicatorSet::exact_find_batch`]): their cache misses overlap. hashbrown's `HashTable`
/// (used before) keeps 7 bits of the hash per slot (a false match in ~5 % of absent values,
/// each an entry read) and offers no way to read a slot without finishing the probe.
#[derive(Default)]
struct ExactIndex {
    /// Per path id: bit `1 << tag` when the path has keys of that tag, so fields of paths
    /// without exact values (ports, user agents, `*_ref.value`, …) skip the hash probe.
    tags: Vec<u8>,
    /// A power of two long (or empty); at most half the slots used.
    buckets: Vec<Bucket>,
    /// Every entry's hash, for probes of absent values (see [`Bloom`]); built last.
    bloom: Bloom,
    entries: Vec<ExactEntry>,
    arena: Vec<u8>,
    hasher: foldhash::fast::RandomState,
}

/// A split-block Bloom filter (the layout of Apache Parquet's, whose salts it uses) over the
/// exact table's hashes: one 32-byte block per hash, 8 bits set in it.
///
/// At [`BLOOM_BITS_PER_KEY`] bits per value it is ~1.5 MB for a million values, small enough
/// to stay in the caches that the 16-byte-a-value table (~16 MB) cannot: a probe for a value
/// that is in no indicator (most log values) then costs one cached block read instead of a
/// likely trip to memory; ~0.5 % of such probes still go to the table.
#[derive(Default)]
struct Bloom {
    blocks: Vec<[u32; 8]>,
}

/// Bits of [`Bloom`] per exact value (false positives ~0.5 %).
const BLOOM_BITS_PER_KEY: usize = 12;

const BLOOM_SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

impl Bloom {
    fn new(keys: usize) -> Bloom {
        Bloom {
            blocks: vec![[0; 8]; (keys * BLOOM_BITS_PER_KEY).div_ceil(256).max(1)],
        }
    }

    /// The block of hash `h` (its upper half, scaled to the length) and its 8 bits (from
    /// the lower half).
    fn place(&self, h: u64) -> (usize, [u32; 8]) {
        let lo = h as u32;
        (
            self.block(h),
            BLOOM_SALT.map(|s| 1 << (lo.wrapping_mul(s) >> 27)),
        )
    }

    fn insert(&mut self, h: u64) {
        let (b, bits) = self.place(h);
        for (w, bit) in self.blocks[b].iter_mut().zip(bits) {
            *w |= bit;
        }
    }

    fn block(&self, h: u64) -> usize {
        (((h >> 32) * self.blocks.len() as u64) >> 32) as usize
    }

    /// Reads the block of each hash (see [`IndicatorSet::exact_find_batch`]).
    fn touch(&self, hashes: impl Iterator<Item = u64>) {
        if self.blocks.is_empty() {
            return;
        }
        let mut acc = 0;
        for h in hashes {
            acc ^= self.blocks[self.block(h)][0];
        }
        std::hint::black_box(acc);
    }

    /// `false`: no value has hash `h`. `true` for an empty filter (not built yet).
    #[inline]
    fn may_contain(&self, h: u64) -> bool {
        if self.blocks.is_empty() {
            return true;
        }
        let (b, bits) = self.place(h);
        self.blocks[b].iter().zip(bits).all(|(w, bit)| w & bit != 0)
    }
}

/// Eight slots in one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket([u64; 8]);

impl ExactIndex {
    fn hash(&self, key: u32, bytes: &[u8]) -> u64 {
        self.hasher.hash_one((key, bytes))
    }

    fn value(&self, e: &ExactEntry) -> &[u8] {
        &self.arena[e.off as usize..(e.off + e.len) as usize]
    }

    /// The home bucket of hash `h`, `None` for an empty table.
    fn home(&self, h: u64) -> Option<usize> {
        let mask = self.buckets.len().checked_sub(1)?;
        Some(h as usize & mask)
    }

    /// The entries whose slot agrees with hash `h`, from its home bucket on, until the first
    /// empty slot; `f` returns `true` to stop.
    fn each_candidate(&self, h: u64, mut f: impl FnMut(u32) -> bool) {
        let Some(mut b) = self.home(h) else {
            return;
        };
        let mask = self.buckets.len() - 1;
        loop {
            for &s in &self.buckets[b].0 {
                if s == 0 {
                    return;
                }
                if s >> 32 == h >> 32 && f((s as u32).wrapping_sub(1)) {
                    return;
                }
            }
            b = (b + 1) & mask;
        }
    }

    /// The entry of `key` and `bytes` with hash `h`.
    fn find_entry(&self, h: u64, key: u32, bytes: &[u8]) -> Option<u32> {
        let mut found = None;
        self.each_candidate(h, |i| {
            let e = &self.entries[i as usize];
            if e.key == key && self.value(e) == bytes {
                found = Some(i);
            }
            found.is_some()
        });
        found
    }

    fn find_hashed(&self, h: u64, key: u32, bytes: &[u8]) -> Option<u32> {
        if !self.bloom.may_contain(h) {
            return None;
        }
        self.find_entry(h, key, bytes)
            .map(|i| self.entries[i as usize].post)
    }

    /// Builds [`ExactIndex::bloom`] over every entry (after the last insert; inserting
    /// afterwards would be missed by it).
    fn build_bloom(&mut self) {
        let mut bloom = Bloom::new(self.entries.len());
        for e in &self.entries {
            bloom.insert(self.hash(e.key, self.value(e)));
        }
        self.bloom = bloom;
    }

    /// Puts entry `e` with hash `h` in the first empty slot from its home bucket on.
    fn place(buckets: &mut [Bucket], h: u64, e: u32) {
        let mask = buckets.len() - 1;
        let mut b = h as usize & mask;
        loop {
            if let Some(s) = buckets[b].0.iter_mut().find(|s| **s == 0) {
                *s = (h >> 32) << 32 | u64::from(e + 1);
                return;
            }
            b = (b + 1) & mask;
        }
    }

    /// Inserts; returns the entry index and whether it is new.
    fn insert(&mut self, key: u32, bytes: &[u8]) -> (u32, bool) {
        let h = self.hash(key, bytes);
        if let Some(e) = self.find_entry(h, key, bytes) {
            return (e, false);
        }
        if (self.entries.len() + 1) * 2 > self.buckets.len() * 8 {
            let mut buckets = vec![Bucket::default(); (self.buckets.len() * 2).max(2)];
            for (i, e) in self.entries.iter().enumerate() {
                Self::place(&mut buckets, self.hash(e.key, self.value(e)), i as u32);
            }
            self.buckets = buckets;
        }
        debug_assert!(self.bloom.blocks.is_empty(), "inserted after build_bloom");
        let idx = self.entries.len() as u32;
        self.entries.push(ExactEntry {
            off: self.arena.len() as u32,
            len: bytes.len() as u32,
            key,
            post: u32::MAX,
        });
        self.arena.extend_from_slice(bytes);
        Self::place(&mut self.buckets, h, idx);
        (idx, true)
    }

    /// See [`IndicatorSet::exact_find_batch`].
    fn find_batch<'b>(
        &self,
        probes: &[(u64, u32)],
        mut bytes: impl FnMut(usize) -> &'b [u8],
        out: &mut Vec<Option<u32>>,
    ) {
        out.clear();
        let x = self;
        // The filter first, for all: its blocks read back to back (one load each, so that
        // many are in flight at once), then tested: `None` for a value it rules out,
        // `Some(_)` (a placeholder) for one to look up.
        if probes.len() > 1 {
            x.bloom.touch(probes.iter().map(|p| p.0));
        }
        out.extend(
            probes
                .iter()
                .map(|&(h, _)| x.bloom.may_contain(h).then_some(0)),
        );
        let maybe = || {
            probes
                .iter()
                .zip(out.iter())
                .filter(|(_, o)| o.is_some())
                .map(|(p, _)| p.0)
        };
        if maybe().nth(1).is_some() {
            x.touch(maybe());
        }
        for (i, (&(h, key), o)) in probes.iter().zip(out.iter_mut()).enumerate() {
            if o.is_some() {
                *o = x
                    .find_entry(h, key, bytes(i))
                    .map(|e| x.entries[e as usize].post);
            }
        }
    }

    /// Reads, for each hash, its home bucket, then the entries of the slots that agree with
    /// it, then those entries' values, each step for all hashes before the next: a step's
    /// reads are independent of each other, so their cache misses overlap. Finds nothing;
    /// the probes that follow find everything in cache.
    fn touch(&self, hashes: impl Iterator<Item = u64> + Clone) {
        let mut acc = 0u64;
        for h in hashes.clone() {
            if let Some(b) = self.home(h) {
                acc ^= self.buckets[b].0[0];
            }
        }
        std::hint::black_box(acc);
        let mut acc = 0u32;
        for h in hashes.clone() {
            self.each_candidate(h, |i| {
                acc ^= self.entries[i as usize].off;
                false
            });
        }
        std::hint::black_box(acc);
        let mut acc = 0u8;
        for h in hashes {
            self.each_candidate(h, |i| {
                let off = self.entries[i as usize].off as usize;
                acc ^= self.arena.get(off).copied().unwrap_or(0);
                false
            });
        }
        std::hint::black_box(acc);
    }
}

/// A parsed network (the rules of `concord_pattern`'s evaluator for ISSUBSET, STIX 2.1
/// §9.3): address as a 128-bit number, prefix, family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Net {
    pub addr: u128,
    pub prefix: u8,
    pub v6: bool,
}

/// `a.b.c.d`, `a.b.c.d/n`, IPv6, `v6/n`; host bits kept (they are ignored when comparing).
pub(crate) fn parse_net(s: &str) -> Option<Net> {
    // The common value: a plain dotted quad (no `/`), a /32.
    if let Some(a) = crate::classify::dotted_quad(s.as_bytes()) {
        return Some(Net {
            addr: u128::from(a),
            prefix: 32,
            v6: false,
        });
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) || p.len() > 3 {
                return None;
            }
            (a, Some(p.parse::<u32>().ok()?))
        }
        None => (s, None),
    };
    // Most values are dotted quads: read them without the general parser (which tries
    // IPv4 and IPv6 grammars through `IpAddr`); anything else takes the general path.
    if let Some(a) = crate::classify::dotted_quad(addr.as_bytes()) {
        let prefix = prefix.unwrap_or(32);
        return (prefix <= 32).then_some(Net {
            addr: u128::from(a),
            prefix: prefix as u8,
            v6: false,
        });
    }
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let (addr, max, v6) = match ip {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32, false),
        std::net::IpAddr::V6(a) => (u128::from(a), 128, true),
    };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return None;
    }
    Some(Net {
        addr,
        prefix: prefix as u8,
        v6,
    })
}

pub(crate) fn mask(addr: u128, prefix: u8, v6: bool) -> u128 {
    let width = if v6 { 128 } else { 32 };
    let shift = width - u32::from(prefix);
    if shift >= 128 {
        0
    } else {
        (addr >> shift) << shift
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// No block / no indicator.
const NONE: u32 = u32::MAX;

/// One distinct CIDR block of a (path, family): its prefix length, the block directly
/// enclosing it (or [`NONE`]) and its indicators (a posting).
#[derive(Debug, Clone, Copy)]
struct CidrBlock {
    prefix: u8,
    parent: u32,
    post: u32,
}

/// The CIDR blocks of one (path, family) as a partition of the address space into ranges.
///
/// CIDR blocks are either nested or disjoint, so the blocks containing an address form a
/// chain: the innermost one and its ancestors. `starts` (sorted) cut the address space into
/// ranges; `innermost[i]` is the innermost block over `starts[i]..starts[i + 1]`. A lookup
/// is one binary search and a walk up the chain (usually one block), instead of one hash probe
/// per prefix length present.
///
/// Large tables also get a directory over the top 16 bits of the address (`dir[k]` is the
/// number of ranges starting below `k << (width - 16)`), so the binary search runs over the
/// few ranges of one slice of the space: a lookup touches a handful of cache lines instead of
/// one per level of a search over the whole table.
#[derive(Debug, Default)]
struct CidrTable<T> {
    /// `(start, innermost block)`, by start.
    ranges: Vec<(T, u32)>,
    dir: Vec<u32>,
    blocks: Vec<CidrBlock>,
}

/// An address of one family as a table key.
trait CidrKey: Copy + Ord + TryFrom<u128> {
    /// The top 16 bits.
    fn top16(self) -> usize;
}

impl CidrKey for u32 {
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
}

impl CidrKey for u128 {
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
}

/// Tables with fewer ranges are searched without a directory (it would cost 256 KiB).
const CIDR_DIR_MIN: usize = 4096;

impl<T: CidrKey> CidrTable<T> {
    /// Builds the table from distinct blocks `(network, prefix, posting)` of a family
    /// `width` bits wide.
    fn build(mut blocks: Vec<(u128, u8, u32)>, width: u32) -> CidrTable<T> {
        // Outer blocks first among those starting at the same address.
        blocks.sort_unstable_by_key(|&(lo, prefix, _)| (lo, prefix));
        let last = |lo: u128, prefix: u8| {
            let host = width - u32::from(prefix);
            if host == 0 {
                lo
            } else {
                lo | (u128::MAX >> (128 - host))
            }
        };
        let mut t = CidrTable {
            ranges: Vec::new(),
            dir: Vec::new(),
            blocks: Vec::with_capacity(blocks.len()),
        };
        // A range starting at `start` (a later one at the same start replaces it; starts come
        // in ascending order). Starts beyond the family's space (`u32` for IPv4) are dropped.
        let emit = |t: &mut CidrTable<T>, start: u128, block: u32| {
            let Ok(start) = T::try_from(start) else {
                return;
            };
            match t.ranges.last_mut() {
                Some(last) if last.0 == start => last.1 = block,
                _ => t.ranges.push((start, block)),
            }
        };
        // The chain of open blocks (ids), innermost on top, with their last addresses.
        let mut stack: Vec<(u32, u128)> = Vec::new();
        let close_before =
            |t: &mut CidrTable<T>, stack: &mut Vec<(u32, u128)>, at: Option<u128>| {
                while let Some(&(_, end)) = stack.last() {
                    if at.is_some_and(|a| end >= a) {
                        break;
                    }
                    stack.pop();
                    if let Some(next) = end.checked_add(1) {
                        emit(t, next, stack.last().map_or(NONE, |b| b.0));
                    }
                }
            };
        for (lo, prefix, post) in blocks {
            close_before(&mut t, &mut stack, Some(lo));
            let id = t.blocks.len() as u32;
            t.blocks.push(CidrBlock {
                prefix,
                parent: stack.last().map_or(NONE, |b| b.0),
                post,
            });
            stack.push((id, last(lo, prefix)));
            emit(&mut t, lo, id);
        }
        close_before(&mut t, &mut stack, None);
        t.ranges.shrink_to_fit();
        if t.ranges.len() >= CIDR_DIR_MIN {
            let mut i = 0;
            t.dir = (0..=1usize << 16)
                .map(|k| {
                    while i < t.ranges.len() && t.ranges[i].0.top16() < k {
                        i += 1;
                    }
                    i as u32
                })
                .collect();
        }
        t
    }

    /// Calls `f` with the posting of every block that contains the network `addr/prefix`.
    fn lookup(&self, addr: T, prefix: u8, lists: &Lists, f: &mut impl FnMut(u32)) {
        let (lo, hi) = match self.dir.get(addr.top16()..addr.top16() + 2) {
            Some(&[lo, hi]) => (lo as usize, hi as usize),
            _ => (0, self.ranges.len()),
        };
        let i = lo + self.ranges[lo..hi].partition_point(|r| r.0 <= addr);
        let Some(mut b) = i.checked_sub(1).map(|i| self.ranges[i].1) else {
            return;
        };
        while b != NONE {
            let block = &self.blocks[b as usize];
            if block.prefix <= prefix {
                lists.each(block.post, f);
            }
            b = block.parent;
        }
    }
}

/// The CIDR tables of one path.
#[derive(Debug, Default)]
struct PathCidr {
    v4: CidrTable<u32>,
    v6: CidrTable<u128>,
}

/// CIDR blocks per path id.
#[derive(Debug, Default)]
struct CidrIndex {
    paths: Vec<Option<PathCidr>>,
}

/// Up to this many required literals on one path, the prefilter is a DFA (its table grows
/// with the literals: at ~15 bytes each, some 2 MB at this bound).
const AC_DFA_MAX_LITERALS: usize = 1000;

/// One LIKE/MATCHES test.
pub(crate) struct RegexTest {
    pub re: regex::Regex,
    pub indicator: u32,
}

#[derive(Default)]
pub(crate) struct RegexPath {
    pub ac: Option<AhoCorasick>,
    /// For each AC pattern, the tests it stands for.
    pub by_literal: Vec<Vec<u32>>,
    /// Tests without a required literal.
    pub always: Vec<u32>,
}

/// Indicators compiled into indexes. Build with [`SetBuilder`]; match with
/// [`crate::Matcher`].
pub struct IndicatorSet {
    pub(crate) metas: Vec<Meta>,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) paths: FastMap<Box<str>, u32>,
    exact: ExactIndex,
    cidr: CidrIndex,
    lists: Lists,
    pub(crate) regex_tests: Vec<RegexTest>,
    /// Per path id.
    pub(crate) regex_paths: Vec<Option<RegexPath>>,
    pub(crate) residual: Vec<u32>,
    stats: SetStats,
    skipped: Vec<Skipped>,
}

impl std::fmt::Debug for IndicatorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndicatorSet")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// One indicator version as the builder keeps it until [`SetBuilder::build`].
struct Pending {
    /// The version; a [`concord_stix::Timestamp`] (not `i64` ns) so that versions of years
    /// after 2262 or in leap seconds still order exactly.
    modified: concord_stix::Timestamp,
    revoked: bool,
    valid_from: i64,
    valid_until: i64,
    pattern: Box<str>,
}

/// Collects indicator objects (any order, any number of versions) and compiles them.
#[derive(Default)]
pub struct SetBuilder {
    pending: HashMap<String, Pending>,
    order: Vec<String>,
    stats: SetStats,
    skipped: Vec<Skipped>,
}

fn timestamp_of(o: &Value, key: &str) -> Result<Option<concord_stix::Timestamp>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => concord_stix::Timestamp::parse(s)
            .map(Some)
            .map_err(|e| format!("`{key}` {s:?}: {e}")),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

/// A validity bound in nanoseconds, for comparison with log times (`i64` ns): clamped as
/// [`concord_stix::Timestamp::unix_nanos`] says, so `valid_until: 9999-12-31T23:59:59Z` is
/// after every log time and a leap-second bound keeps its order.
fn time_of(o: &Value, key: &str) -> Result<Option<i64>, String> {
    Ok(timestamp_of(o, key)?.map(|t| t.unix_nanos()))
}

impl SetBuilder {
    /// An empty builder.
    pub fn new() -> SetBuilder {
        SetBuilder::default()
    }

    /// Adds one STIX object. Objects that are not indicators are counted and ignored; an
    /// indicator without a usable id, `modified`, `pattern` or with a `pattern_type` other
    /// than `stix` is skipped with the reason.
    pub fn add(&mut self, o: &Value) {
        self.stats.objects += 1;
        if o.get("type").and_then(Value::as_str) != Some("indicator") {
            self.stats.not_indicators += 1;
            return;
        }
        let Some(id) = o.get("id").and_then(Value::as_str) else {
            return self.skip("<no id>", "no `id`".into());
        };
        let fields = (|| -> Result<Pending, String> {
            let modified = timestamp_of(o, "modified")?
                .or(timestamp_of(o, "created")?)
                .ok_or("no `modified` or `created`")?;
            let revoked = o.get("revoked").and_then(Value::as_bool).unwrap_or(false);
            let valid_from = time_of(o, "valid_from")?.unwrap_or(i64::MIN);
            let valid_until = time_of(o, "valid_until")?.unwrap_or(i64::MAX);
            let pattern = o
                .get("pattern")
                .and_then(Value::as_str)
                .ok_or("no `pattern` string")?;
            match o.get("pattern_type").and_then(Value::as_str) {
                Some("stix") | None => {}
                Some(other) => return Err(format!("pattern_type {other:?} is not `stix`")),
            }
            Ok(Pending {
                modified,
                revoked,
                valid_from,
                valid_until,
                pattern: pattern.into(),
            })
        })();
        let p = match fields {
            Ok(p) => p,
            Err(reason) => return self.skip(id, reason),
        };
        match self.pending.get_mut(id) {
            Some(old) => {
                self.stats.superseded += 1;
                if p.modified > old.modified {
                    *old = p;
                }
            }
            None => {
                self.order.push(id.to_string());
                self.pending.insert(id.to_string(), p);
            }
        }
    }

    fn skip(&mut self, id: &str, reason: String) {
        self.stats.skipped += 1;
        self.skipped.push(Skipped {
            indicator: id.to_string(),
            reason,
        });
    }

    /// The newest, unrevoked version of each id, with its parsed pattern, in the order the
    /// ids were first seen; invalid ones go to `skipped`.
    fn finalise(mut self) -> (Vec<(String, Pending, Pattern)>, SetStats, Vec<Skipped>) {
        let mut out = Vec::with_capacity(self.pending.len());
        for id in std::mem::take(&mut self.order) {
            let p = self
                .pending
                .remove(&id)
                .expect("every ordered id is pending");
            if p.revoked {
                self.stats.revoked += 1;
                continue;
            }
            let parsed = match concord_pattern::parse(&p.pattern) {
                Ok(x) => x,
                Err(e) => {
                    self.skip(
                        &id,
                        format!("invalid pattern at byte {}: {}", e.offset, e.message),
                    );
                    continue;
                }
            };
            if has_regex_obs(&parsed.expr)
                && let Err(e) = concord_pattern::evaluate(&parsed, &[])
            {
                self.skip(&id, format!("pattern cannot be evaluated: {e}"));
                continue;
            }
            if uuid_of(&id).is_none() {
                self.skip(&id, "id is not `indicator--<UUID>`".into());
                continue;
            }
            out.push((id, p, parsed));
        }
        (out, self.stats, self.skipped)
    }

    /// Compiles the collected indicators.
    pub fn build(self) -> IndicatorSet {
        let (items, mut stats, skipped) = self.finalise();
        let mut set = IndicatorSet {
            metas: Vec::with_capacity(items.len()),
            patterns: Vec::new(),
            paths: FastMap::default(),
            exact: ExactIndex::default(),
            cidr: CidrIndex::default(),
            lists: Lists::default(),
            regex_tests: Vec::new(),
            regex_paths: Vec::new(),
            residual: Vec::new(),
            stats: SetStats::default(),
            skipped,
        };
        let mut exact_multi: HashMap<u32, Vec<u32>> = HashMap::new();
        // (path, IPv6, network, prefix) -> indicators, in order.
        let mut cidr_build: HashMap<(u32, bool, u128, u8), Vec<u32>> = HashMap::new();
        // Per path id: (required literals, regex test index).
        type RegexBuild = HashMap<u32, Vec<(Option<Vec<Vec<u8>>>, u32)>>;
        let mut regex_build: RegexBuild = HashMap::new();
        let mut exact_indicators = 0u64;
        for (id, p, pattern) in items {
            let ind = set.metas.len() as u32;
            let uuid = uuid_of(&id).expect("checked in finalise");
            let cond = obs_cond(&pattern.expr);
            let direct = cond.is_some() && obs_direct(&pattern.expr);
            let mut meta = Meta {
                uuid,
                valid_from: p.valid_from,
                valid_until: p.valid_until,
                pattern: DIRECT,
            };
            stats.indicators += 1;
            let Some(atoms) = cond else {
                meta.pattern = set.patterns.len() as u32;
                set.patterns.push(pattern);
                set.metas.push(meta);
                set.residual.push(ind);
                stats.residual += 1;
                continue;
            };
            if direct {
                if atoms.iter().any(|a| matches!(a, Atom::Regex { .. })) {
                    stats.regex += 1;
                } else if atoms.iter().any(|a| matches!(a, Atom::Cidr { .. })) {
                    stats.cidr += 1;
                } else {
                    stats.exact += 1;
                    exact_indicators += 1;
                }
            } else {
                stats.candidate += 1;
                meta.pattern = set.patterns.len() as u32;
                set.patterns.push(pattern);
            }
            set.metas.push(meta);
            for atom in atoms {
                match atom {
                    Atom::Exact { path, tag, bytes } => {
                        let pid = set.path_id(&path);
                        if set.exact.tags.len() <= pid as usize {
                            set.exact.tags.resize(pid as usize + 1, 0);
                        }
                        set.exact.tags[pid as usize] |= 1 << tag as u8;
                        let key = (pid << 1) | tag as u32;
                        let (e, new) = set.exact.insert(key, &bytes);
                        let entry = &mut set.exact.entries[e as usize];
                        if new {
                            entry.post = ind;
                        } else if entry.post != ind {
                            let l = exact_multi.entry(e).or_insert_with(|| vec![entry.post]);
                            if l.last() != Some(&ind) {
                                l.push(ind);
                            }
                        }
                    }
                    Atom::Cidr { path, net } => {
                        let pid = set.path_id(&path);
                        let key = (pid, net.v6, mask(net.addr, net.prefix, net.v6), net.prefix);
                        let l = cidr_build.entry(key).or_default();
                        if l.last() != Some(&ind) {
                            l.push(ind);
                        }
                    }
                    Atom::Regex { path, like, text } => {
                        let pid = set.path_id(&path);
                        let text: String = text.nfc().collect();
                        let compiled = if like {
                            like_regex(&text).map(|re| (re, like_literal(&text).map(|l| vec![l])))
                        } else {
                            regex::Regex::new(&text).map(|re| (re, matches_literals(&text)))
                        };
                        let (re, lits) = match compiled {
                            Ok(x) => x,
                            // Checked by the dry run in `finalise`; unreachable in practice (a
                            // regex over the size limit would fail the evaluator there too).
                            Err(_) => continue,
                        };
                        let t = set.regex_tests.len() as u32;
                        set.regex_tests.push(RegexTest { re, indicator: ind });
                        regex_build.entry(pid).or_default().push((lits, t));
                    }
                }
            }
        }
        // Posting lists.
        for (e, inds) in exact_multi {
            set.exact.entries[e as usize].post = set.lists.post(&inds);
        }
        // Per (path, family): distinct blocks with their postings, then one table.
        type Blocks = (Vec<(u128, u8, u32)>, Vec<(u128, u8, u32)>);
        let mut cidr_blocks: HashMap<u32, Blocks> = HashMap::new();
        for ((pid, v6, lo, prefix), inds) in cidr_build {
            let post = set.lists.post(&inds);
            let b = cidr_blocks.entry(pid).or_default();
            if v6 { &mut b.1 } else { &mut b.0 }.push((lo, prefix, post));
        }
        for (pid, (v4, v6)) in cidr_blocks {
            if set.cidr.paths.len() <= pid as usize {
                set.cidr.paths.resize_with(pid as usize + 1, || None);
            }
            set.cidr.paths[pid as usize] = Some(PathCidr {
                v4: CidrTable::build(v4, 32),
                v6: CidrTable::build(v6, 128),
            });
        }
        for (pid, tests) in regex_build {
            let mut rp = RegexPath::default();
            let mut lits: Vec<Vec<u8>> = Vec::new();
            for (l, t) in tests {
                match l {
                    Some(ls) => {
                        for lit in ls {
                            lits.push(lit);
                            rp.by_literal.push(vec![t]);
                        }
                    }
                    None => rp.always.push(t),
                }
            }
            if !lits.is_empty() {
                // A DFA (one table step per byte) while it stays small, else the default
                // (a contiguous NFA for this many literals).
                let dfa = (lits.len() <= AC_DFA_MAX_LITERALS)
                    .then(|| {
                        AhoCorasick::builder()
                            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                            .build(&lits)
                            .ok()
                    })
                    .flatten();
                match dfa.map_or_else(|| AhoCorasick::new(&lits), Ok) {
                    Ok(ac) => rp.ac = Some(ac),
                    // Too large an automaton (partners' literals are outside input): no
                    // prefilter, every test runs on every value of the path: slower, same hits.
                    Err(_) => {
                        rp.always.extend(rp.by_literal.drain(..).flatten());
                        rp.always.sort_unstable();
                        rp.always.dedup();
                    }
                }
            }
            if set.regex_paths.len() <= pid as usize {
                set.regex_paths.resize_with(pid as usize + 1, || None);
            }
            set.regex_paths[pid as usize] = Some(rp);
        }
        set.exact.entries.shrink_to_fit();
        set.exact.arena.shrink_to_fit();
        set.exact.build_bloom();
        set.lists.lists.shrink_to_fit();
        set.metas.shrink_to_fit();
        stats.exact_keys = set.exact.entries.len() as u64;
        stats.value_bytes = set.exact.arena.len() as u64;
        stats.exact_overhead_bytes = (set.exact.buckets.capacity() * std::mem::size_of::<Bucket>()
            + set.exact.bloom.blocks.capacity() * 32
            + set.exact.entries.capacity() * std::mem::size_of::<ExactEntry>()
            + set.lists.lists.capacity() * 4) as u64
            + exact_indicators * std::mem::size_of::<Meta>() as u64;
        set.stats = stats;
        set
    }

    /// Keeps every indicator's pattern for the naive matcher ([`ReferenceMatcher`]):
    /// versions, revocation and validity as [`SetBuilder::build`], no indexes.
    pub fn build_reference(self) -> ReferenceMatcher {
        let (items, _, _) = self.finalise();
        ReferenceMatcher {
            items: items
                .into_iter()
                .map(|(id, p, pattern)| (id, p.valid_from, p.valid_until, pattern))
                .collect(),
        }
    }
}

fn uuid_of(id: &str) -> Option<[u8; 16]> {
    let s = concord_stix::StixId::parse(id).ok()?;
    (s.object_type() == "indicator").then(|| *s.uuid().as_bytes())
}

impl IndicatorSet {
    /// Compiles indicator objects (see [`SetBuilder::add`]).
    pub fn from_values<'a>(objects: impl IntoIterator<Item = &'a Value>) -> IndicatorSet {
        let mut b = SetBuilder::new();
        for o in objects {
            b.add(o);
        }
        b.build()
    }

    /// Counts: kinds of indicators, skipped, residual, memory.
    pub fn stats(&self) -> &SetStats {
        &self.stats
    }

    /// The indicators that were skipped, with the reason.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Number of compiled indicators.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Whether no indicator was compiled.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    fn path_id(&mut self, path: &str) -> u32 {
        if let Some(&p) = self.paths.get(path) {
            return p;
        }
        let p = self.paths.len() as u32;
        self.paths.insert(path.into(), p);
        p
    }

    /// The exact table's key for values of `tag` on `path`; `None` when the path has no such
    /// values, so fields of paths without exact values (ports, user agents, `*_ref.value`, …)
    /// skip the hash probe.
    pub(crate) fn exact_key(&self, path: u32, tag: Tag) -> Option<u32> {
        let has = self.exact.tags.get(path as usize).copied().unwrap_or(0);
        (has & (1 << tag as u8) != 0).then_some((path << 1) | tag as u32)
    }

    /// The hash of an exact key and value, for [`IndicatorSet::exact_find`].
    pub(crate) fn exact_hash(&self, key: u32, bytes: &[u8]) -> u64 {
        self.exact.hash(key, bytes)
    }

    /// The posting of an exact key and value (for [`IndicatorSet::each`]) with its hash.
    pub(crate) fn exact_find(&self, hash: u64, key: u32, bytes: &[u8]) -> Option<u32> {
        self.exact.find_hashed(hash, key, bytes)
    }

    /// The postings of many exact probes, `(hash, key)` as [`IndicatorSet::exact_hash`] and
    /// [`IndicatorSet::exact_key`] give them and `bytes(i)` the value of probe `i`, into `out`
    /// (cleared; one per probe, in order): the same as [`IndicatorSet::exact_find`] on each,
    /// with the reads of all probes issued step by step first, so that their cache misses
    /// overlap instead of following each other (one probe into a table of a million values
    /// is likely a miss in every cache).
    pub(crate) fn exact_find_batch<'b>(
        &self,
        probes: &[(u64, u32)],
        bytes: impl FnMut(usize) -> &'b [u8],
        out: &mut Vec<Option<u32>>,
    ) {
        self.exact.find_batch(probes, bytes, out);
    }

    /// Reads the first indicator's record of each posting found (and gives its index to
    /// `f`, for the caller's own per-indicator state), all before any is needed: after a
    /// batch of probes, the hits' records are read together instead of one miss at a time.
    pub(crate) fn touch_postings(
        &self,
        posts: impl Iterator<Item = u32>,
        mut f: impl FnMut(u32) -> u32,
    ) {
        let mut acc = 0u32;
        for post in posts {
            let ind = if post & MULTI == 0 {
                post
            } else {
                self.lists
                    .lists
                    .get((post & !MULTI) as usize + 1)
                    .copied()
                    .unwrap_or(0)
            };
            if let Some(m) = self.metas.get(ind as usize) {
                acc ^= m.pattern ^ f(ind);
            }
        }
        std::hint::black_box(acc);
    }

    /// Calls `f` with each indicator of a posting.
    pub(crate) fn each(&self, post: u32, f: &mut impl FnMut(u32)) {
        self.lists.each(post, f);
    }

    pub(crate) fn has_cidr(&self, path: u32) -> bool {
        matches!(self.cidr.paths.get(path as usize), Some(Some(_)))
    }

    pub(crate) fn regex_path(&self, path: u32) -> Option<&RegexPath> {
        self.regex_paths.get(path as usize).and_then(Option::as_ref)
    }

    /// Calls `f` with the indicators of every CIDR block containing `value`.
    pub(crate) fn cidr_lookup(&self, path: u32, value: &str, f: &mut impl FnMut(u32)) {
        let Some(Some(t)) = self.cidr.paths.get(path as usize) else {
            return;
        };
        let Some(net) = parse_net(value) else {
            return;
        };
        if net.v6 {
            t.v6.lookup(net.addr, net.prefix, &self.lists, f);
        } else {
            t.v4.lookup(net.addr as u32, net.prefix, &self.lists, f);
        }
    }

    /// Prepares [`IndicatorSet::cidr_lookup_v4`] of many `(path, IPv4 address)`: reads what
    /// their lookups will read first, step by step for all of them, so that the cache misses
    /// overlap instead of following each other. Finds nothing.
    pub(crate) fn cidr_touch_v4(&self, lookups: impl Iterator<Item = (u32, u32)> + Clone) {
        let table = |p: u32| match self.cidr.paths.get(p as usize) {
            Some(Some(t)) if !t.v4.dir.is_empty() => Some(&t.v4),
            _ => None,
        };
        let mut acc = 0;
        for (p, a) in lookups.clone() {
            if let Some(t) = table(p) {
                acc ^= t.dir[a.top16()];
            }
        }
        std::hint::black_box(acc);
        let mut acc = 0;
        for (p, a) in lookups {
            if let Some(t) = table(p)
                && let Some(r) = t.ranges.get(t.dir[a.top16()] as usize)
            {
                acc ^= r.1;
            }
        }
        std::hint::black_box(acc);
    }

    /// [`IndicatorSet::cidr_lookup`] for an IPv4 address already parsed (the value
    /// `a.b.c.d`, a /32).
    pub(crate) fn cidr_lookup_v4(&self, path: u32, addr: u32, f: &mut impl FnMut(u32)) {
        if let Some(Some(t)) = self.cidr.paths.get(path as usize) {
            t.v4.lookup(addr, 32, &self.lists, f);
        }
    }
}

/// The naive matcher: every valid indicator's pattern evaluated by `concord_pattern::evaluate`
/// on every record. The reference the differential test compares the indexes against; also
/// usable for audits of small sets.
pub struct ReferenceMatcher {
    items: Vec<(String, i64, i64, Pattern)>,
}

impl ReferenceMatcher {
    /// Ids of the indicators matching `record` (in the order they were added); `now` (Unix
    /// nanoseconds) stands for the record's time when it has none. Evaluation errors count
    /// as no match and are returned as the second value.
    pub fn matches(&self, record: &crate::Record, now: i64) -> (Vec<String>, u64) {
        let t = record.timestamp.unwrap_or(now);
        let (group, _) = record.observations(now);
        let groups = [group];
        let mut out = Vec::new();
        let mut errors = 0;
        // The observations are read once per record (as `evaluate` would on every call).
        let obs = match concord_pattern::Observations::new(&groups) {
            Ok(o) => o,
            Err(_) => return (out, 1),
        };
        for (id, from, until, p) in &self.items {
            if !(*from <= t && t < *until) {
                continue;
            }
            match concord_pattern::evaluate_prepared(p, &obs) {
                Ok(m) if m.matched => out.push(id.clone()),
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        }
        (out, errors)
    }

    /// Number of indicators.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Necessary conditions.

#[derive(Debug, Clone)]
enum Atom {
    Exact {
        path: String,
        tag: Tag,
        bytes: Vec<u8>,
    },
    Cidr {
        path: String,
        net: Net,
    },
    Regex {
        path: String,
        like: bool,
        text: String,
    },
}

fn exact_of(path: &str, l: &Literal) -> Option<Atom> {
    let (tag, bytes) = match l {
        Literal::String(s) => (Tag::Str, s.as_bytes().to_vec()),
        Literal::Int(i) => (Tag::Int, i.to_le_bytes().to_vec()),
        Literal::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            (Tag::Int, (*f as i64).to_le_bytes().to_vec())
        }
        _ => return None,
    };
    Some(Atom::Exact {
        path: path.to_string(),
        tag,
        bytes,
    })
}

/// The atoms of one test, if it is indexable.
fn test_atoms(t: &Test) -> Option<Vec<Atom>> {
    if t.negated || !is_flat(&t.path) {
        return None;
    }
    let path = t.path.to_string();
    match (t.op, &t.operand) {
        (Operator::Eq, Operand::Literal(l)) => Some(vec![exact_of(&path, l)?]),
        (Operator::In, Operand::Set(items)) => items.iter().map(|l| exact_of(&path, l)).collect(),
        (Operator::IsSubset, Operand::Literal(Literal::String(s))) => Some(vec![Atom::Cidr {
            path,
            net: parse_net(s)?,
        }]),
        (Operator::Like | Operator::Matches, Operand::Literal(Literal::String(s))) => {
            Some(vec![Atom::Regex {
                path,
                like: t.op == Operator::Like,
                text: s.clone(),
            }])
        }
        _ => None,
    }
}

fn cost(atoms: &[Atom]) -> usize {
    atoms
        .iter()
        .map(|a| match a {
            Atom::Exact { .. } => 1,
            Atom::Cidr { .. } => 2,
            Atom::Regex { .. } => 100,
        })
        .sum()
}

fn cheapest(options: impl Iterator<Item = Option<Vec<Atom>>>) -> Option<Vec<Atom>> {
    options.flatten().min_by_key(|a| cost(a))
}

fn union(options: impl Iterator<Item = Option<Vec<Atom>>>) -> Option<Vec<Atom>> {
    let mut all = Vec::new();
    for o in options {
        all.extend(o?);
    }
    Some(all)
}

fn cmp_cond(e: &ComparisonExpr) -> Option<Vec<Atom>> {
    match e {
        ComparisonExpr::Test(t) => test_atoms(t),
        ComparisonExpr::Exists(_) => None,
        ComparisonExpr::And(items) => cheapest(items.iter().map(cmp_cond)),
        ComparisonExpr::Or(items) => union(items.iter().map(cmp_cond)),
    }
}

fn obs_cond(e: &ObservationExpr) -> Option<Vec<Atom>> {
    match e {
        ObservationExpr::Observation(c) => cmp_cond(c),
        ObservationExpr::And(items) | ObservationExpr::FollowedBy(items) => {
            cheapest(items.iter().map(obs_cond))
        }
        ObservationExpr::Or(items) => union(items.iter().map(obs_cond)),
        ObservationExpr::Qualified { expr, .. } => obs_cond(expr),
    }
}

fn cmp_direct(e: &ComparisonExpr) -> bool {
    match e {
        ComparisonExpr::Test(t) => test_atoms(t).is_some(),
        ComparisonExpr::Or(items) => items.iter().all(cmp_direct),
        ComparisonExpr::And(_) | ComparisonExpr::Exists(_) => false,
    }
}

fn obs_direct(e: &ObservationExpr) -> bool {
    match e {
        ObservationExpr::Observation(c) => cmp_direct(c),
        ObservationExpr::Or(items) => items.iter().all(obs_direct),
        _ => false,
    }
}

fn has_regex_cmp(e: &ComparisonExpr) -> bool {
    match e {
        ComparisonExpr::Test(t) => matches!(t.op, Operator::Like | Operator::Matches),
        ComparisonExpr::Exists(_) => false,
        ComparisonExpr::And(items) | ComparisonExpr::Or(items) => items.iter().any(has_regex_cmp),
    }
}

fn has_regex_obs(e: &ObservationExpr) -> bool {
    match e {
        ObservationExpr::Observation(c) => has_regex_cmp(c),
        ObservationExpr::And(items)
        | ObservationExpr::Or(items)
        | ObservationExpr::FollowedBy(items) => items.iter().any(has_regex_obs),
        ObservationExpr::Qualified { expr, .. } => has_regex_obs(expr),
    }
}

/// STIX 2.1 §9.3 `LIKE` as `concord_pattern` evaluates it: `%` any run, `_` one character,
/// whole value, on NFC text.
fn like_regex(nfc_pattern: &str) -> Result<regex::Regex, regex::Error> {
    let mut text = String::from("(?s)^");
    for c in nfc_pattern.chars() {
        match c {
            '%' => text.push_str(".*"),
            '_' => text.push('.'),
            c => text.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    text.push('$');
    // Escaped, so only the size limit can refuse it (a huge LIKE from outside).
    regex::Regex::new(&text)
}

/// The longest literal run of a LIKE pattern (it must occur in every matching value).
fn like_literal(nfc_pattern: &str) -> Option<Vec<u8>> {
    nfc_pattern
        .split(['%', '_'])
        .max_by_key(|s| s.len())
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec())
}

/// Literals one of which starts every match of the regex (so occurs in every matching
/// value), when `regex-syntax` finds a small finite set of non-empty ones.
fn matches_literals(nfc_pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(nfc_pattern).ok()?;
    let seq = regex_syntax::hir::literal::Extractor::new().extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    let mut out: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
    // Too many alternatives (`abc[0-9]{2}` gives 100): cut them shorter. A prefix of a
    // required prefix is still required, and shorter literals collapse into fewer.
    loop {
        out.sort();
        out.dedup();
        if out.len() <= 64 {
            return Some(out);
        }
        let longest = out.iter().map(Vec::len).max().unwrap_or(0);
        if longest <= 1 {
            return None;
        }
        for l in &mut out {
            l.truncate(longest - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(p: &str) -> (Option<usize>, bool) {
        let p = concord_pattern::parse(p).unwrap();
        (obs_cond(&p.expr).map(|a| a.len()), obs_direct(&p.expr))
    }

    #[test]
    fn id_is_the_uuid_crates_form() {
        for uuid in [[0u8; 16], [0xff; 16], *uuid::Uuid::new_v4().as_bytes()] {
            let m = Meta {
                uuid,
                valid_from: 0,
                valid_until: 0,
                pattern: DIRECT,
            };
            assert_eq!(
                m.id(),
                format!("indicator--{}", uuid::Uuid::from_bytes(uuid))
            );
        }
    }

    #[test]
    fn conditions() {
        assert_eq!(cond("[ipv4-addr:value = '1.2.3.4']"), (Some(1), true));
        assert_eq!(
            cond("[domain-name:value IN ('a.com', 'b.com') OR url:value LIKE '%x%']"),
            (Some(3), true)
        );
        assert_eq!(
            cond("[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' AND file:size > 10]"),
            (Some(1), false)
        );
        assert_eq!(cond("[file:size > 10]"), (None, false));
        assert_eq!(cond("[ipv4-addr:value NOT = '1.2.3.4']"), (None, false));
        assert_eq!(
            cond("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'x.com']"),
            (Some(1), false)
        );
        assert_eq!(
            cond("[ipv4-addr:value = '1.2.3.4'] OR [file:size > 1]"),
            (None, false)
        );
        assert_eq!(cond("[x:list[*] = 'a']"), (None, false));
    }

    #[test]
    fn cidr_table_nested_blocks() {
        let lists = Lists::default();
        let net = |s: &str| {
            let n = parse_net(s).unwrap();
            (mask(n.addr, n.prefix, false), n.prefix)
        };
        let blocks = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.2.0.0/16",
            "11.0.0.0/8",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| (net(s).0, net(s).1, i as u32))
        .collect();
        let t = CidrTable::<u32>::build(blocks, 32);
        let hits = |s: &str| {
            let n = parse_net(s).unwrap();
            let mut v = Vec::new();
            t.lookup(n.addr as u32, n.prefix, &lists, &mut |i| v.push(i));
            v.sort();
            v
        };
        assert_eq!(hits("10.1.2.3"), [0, 1, 2]);
        assert_eq!(hits("10.1.3.3"), [0, 1]);
        assert_eq!(hits("10.3.0.1"), [0]);
        assert_eq!(hits("10.2.255.255"), [0, 3]);
        assert_eq!(hits("11.255.255.255"), [4]);
        assert_eq!(hits("9.255.255.255"), Vec::<u32>::new());
        assert_eq!(hits("12.0.0.0"), Vec::<u32>::new());
        // A network value is inside the blocks no longer than itself.
        assert_eq!(hits("10.1.0.0/16"), [0, 1]);
        assert_eq!(hits("10.1.2.0/23"), [0, 1]);
        let all = CidrTable::<u32>::build(vec![(0, 0, 7), (u128::from(u32::MAX), 32, 8)], 32);
        let mut v = Vec::new();
        all.lookup(u32::MAX, 32, &lists, &mut |i| v.push(i));
        assert_eq!(v, [8, 7]);
    }

    /// Random byte strings of 1–40 bytes (xorshift; the test needs no crate for it).
    fn random_values(n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let len = 1 + next() as usize % 40;
                (0..len).map(|_| next() as u8).collect()
            })
            .collect()
    }

    #[test]
    fn exact_index_finds_what_was_inserted_and_nothing_else() {
        let present = random_values(40_000, 1);
        let absent = random_values(40_000, 2);
        let mut x = ExactIndex::default();
        let mut ids = Vec::new();
        for (i, v) in present.iter().enumerate() {
            // Two tags and the same bytes under two keys: keys are part of the identity.
            let key = (i % 3) as u32;
            let (e, new) = x.insert(key, v);
            if new {
                x.entries[e as usize].post = i as u32;
            }
            ids.push((key, e));
        }
        // Inserting again finds the same entry.
        for (i, v) in present.iter().enumerate().take(1000) {
            assert_eq!(x.insert(ids[i].0, v), (ids[i].1, false));
        }
        x.build_bloom();
        assert!(x.entries.len() * 2 <= x.buckets.len() * 8);
        let present_set: std::collections::HashSet<(u32, &[u8])> = present
            .iter()
            .enumerate()
            .map(|(i, v)| ((i % 3) as u32, v.as_slice()))
            .collect();
        let mut probes = Vec::new();
        let mut want = Vec::new();
        let mut values: Vec<&[u8]> = Vec::new();
        for (i, v) in present.iter().enumerate() {
            let key = ids[i].0;
            let h = x.hash(key, v);
            let post = x.entries[ids[i].1 as usize].post;
            assert_eq!(x.find_hashed(h, key, v), Some(post), "value {i}");
            // The same bytes under another key are another value.
            let other = (key + 1) % 3;
            if !present_set.contains(&(other, v.as_slice())) {
                assert_eq!(x.find_hashed(x.hash(other, v), other, v), None);
            }
            probes.push((h, key));
            want.push(Some(post));
            values.push(v);
        }
        let mut false_positives = 0;
        for v in &absent {
            if present_set.contains(&(0, v.as_slice())) {
                continue;
            }
            let h = x.hash(0, v);
            false_positives += usize::from(x.bloom.may_contain(h));
            assert_eq!(x.find_hashed(h, 0, v), None);
            probes.push((h, 0));
            want.push(None);
            values.push(v);
        }
        // ~0.5 % expected at 12 bits per value.
        assert!(false_positives < absent.len() / 50, "{false_positives}");
        // Batches (interleaved present and absent values, any length) answer as single finds.
        let order: Vec<usize> = (0..probes.len())
            .map(|i| (i * 7919) % probes.len())
            .collect();
        let mut out = Vec::new();
        for chunk in order.chunks(37) {
            let p: Vec<(u64, u32)> = chunk.iter().map(|&i| probes[i]).collect();
            x.find_batch(&p, |j| values[chunk[j]], &mut out);
            let w: Vec<Option<u32>> = chunk.iter().map(|&i| want[i]).collect();
            assert_eq!(out, w);
        }
    }

    #[test]
    fn exact_slots_spill_into_the_next_bucket() {
        // Nine entries with one home bucket: the ninth goes to the next bucket, and a probe
        // walks on until an empty slot.
        let mut buckets = vec![Bucket::default(); 4];
        let h = 0x1234_5678_0000_0002u64;
        for e in 0..9 {
            ExactIndex::place(&mut buckets, h, e);
        }
        assert!(buckets[2].0.iter().all(|&s| s != 0));
        assert_eq!(buckets[3].0.iter().filter(|&&s| s != 0).count(), 1);
        let x = ExactIndex {
            buckets,
            ..ExactIndex::default()
        };
        let mut seen = Vec::new();
        x.each_candidate(h, |e| {
            seen.push(e);
            false
        });
        assert_eq!(seen, (0..9).collect::<Vec<u32>>());
        // Another hash half in the same buckets names none of them.
        let mut none = 0;
        x.each_candidate(0x9999_0000_0000_0002, |_| {
            none += 1;
            false
        });
        assert_eq!(none, 0);
        // The last bucket wraps around to the first.
        let mut buckets = vec![Bucket::default(); 2];
        for e in 0..9 {
            ExactIndex::place(&mut buckets, 1, e);
        }
        assert_eq!(buckets[0].0.iter().filter(|&&s| s != 0).count(), 1);
    }

    #[test]
    fn literals() {
        assert_eq!(like_literal("%/admin/%.php"), Some(b"/admin/".to_vec()));
        assert_eq!(like_literal("%"), None);
        let l = matches_literals("^abc[0-9]+").unwrap();
        assert_eq!(l.len(), 10);
        assert!(l.iter().all(|x| x.starts_with(b"abc")));
        let l = matches_literals("^abc[0-9]{2,4}\\.(top|xyz)$").unwrap();
        assert!(
            l.len() <= 64 && l.iter().all(|x| x.starts_with(b"abc")),
            "{l:?}"
        );
        assert!(matches_literals(".*x").is_none());
        assert!(matches_literals("a|").is_none());
    }
}
