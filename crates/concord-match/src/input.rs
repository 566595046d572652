//! Log readers: an input (a file, `-` for stdin, gzip detected by its magic bytes) in one of
//! the [`Format`]s, turned into [`Record`]s through a [`FieldMap`] (issue 4, item 1).
//!
//! - [`Format::Eve`]: Suricata `eve.json`, one JSON object per line, [`FieldMap::eve`].
//! - [`Format::Zeek`]: Zeek JSON lines (`id.orig_h` or `id_orig_h`, `_path` or `@stream`) or
//!   Zeek TSV with its `#separator`/`#fields`/`#types` header (told apart by the first byte
//!   of each line), [`FieldMap::zeek`].
//! - [`Format::Json`]: any JSON lines with a user map.
//! - [`Format::Lines`]: one observable per line (IP, domain, URL, MD5/SHA-1/SHA-256 hash,
//!   e-mail address; `ip:port` too), classified as IOC lists are ([`crate::classify`]).
//! - [`Format::Csv`]: CSV with a header row, columns named in a user map.
//!
//! A line that cannot be read (bad JSON, wrong column count, unclassifiable observable, not
//! UTF-8) is counted and kept as a [`Malformed`] (the first [`MAX_MALFORMED_KEPT`]), never
//! fatal. Line numbers are 1-based, in the decompressed text.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::classify::{HashAlgo, Kind, classify_into, refang};
use crate::fieldmap::{FieldMap, Target, Val};
use crate::record::{Field, FieldValue, Record};

/// How many [`Malformed`] entries a reader keeps (all are counted).
pub const MAX_MALFORMED_KEPT: usize = 1000;

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Suricata eve.json.
    Eve,
    /// Zeek JSON or TSV logs.
    Zeek,
    /// JSON lines with a user field map.
    Json,
    /// One observable per line.
    Lines,
    /// CSV with a header row and a user field map.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Ok(match s {
            "eve" => Format::Eve,
            "zeek" => Format::Zeek,
            "json" => Format::Json,
            "lines" => Format::Lines,
            "csv" => Format::Csv,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (eve, zeek, json, lines, csv)"
                ));
            }
        })
    }
}

/// A line that did not become a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// The input's name.
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Errors that stop a reader: I/O only.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening the input failed.
    #[error("{file}: cannot open: {source}")]
    Open {
        /// The input's name.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading failed (also a corrupt gzip stream).
    #[error("{file}:{line}: read error: {source}")]
    Read {
        /// The input's name.
        file: String,
        /// The line being read.
        line: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One selector: a log field name and what it feeds.
#[derive(Debug, Default, Clone)]
struct Selector {
    rules: Vec<usize>,
    timestamp: bool,
    stream: bool,
}

/// The values captured from one line: `(selector, value)` in the order found, strings as
/// byte ranges of one text: `text` (no allocation per value once the buffers have grown), or
/// for the JSON fast path the line itself (no copy at all).
#[derive(Debug, Default)]
struct Caps {
    list: Vec<(u32, Cap)>,
    text: String,
}

#[derive(Debug, Clone, Copy)]
enum Cap {
    Str(u32, u32),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Caps {
    fn clear(&mut self) {
        self.list.clear();
        self.text.clear();
    }

    /// Pushes a string for each of `sels` (copied once).
    fn push_str(&mut self, sels: &[u32], v: &str) {
        if sels.is_empty() {
            return;
        }
        let start = self.text.len() as u32;
        self.text.push_str(v);
        let end = self.text.len() as u32;
        // A loop of pushes: `sels` has one or two items, too few for `extend`'s set-up.
        for &s in sels {
            self.list.push((s, Cap::Str(start, end)));
        }
    }

    fn push(&mut self, sels: &[u32], v: Cap) {
        for &s in sels {
            self.list.push((s, v));
        }
    }

    /// The value of `c`, its string a range of `text` (`self.text` or the line).
    fn val<'t>(&self, text: &'t str, c: Cap) -> Val<'t> {
        match c {
            Cap::Str(a, b) => Val::Str(&text[a as usize..b as usize]),
            Cap::Int(i) => Val::Int(i),
            Cap::Float(f) => Val::Float(f),
            Cap::Bool(b) => Val::Bool(b),
        }
    }

    fn iter<'t>(&'t self, text: &'t str) -> impl Iterator<Item = (u32, Val<'t>)> + 't {
        self.list.iter().map(move |&(s, c)| (s, self.val(text, c)))
    }
}

/// A trie over the dotted field names, for JSON: every way of splitting a name at its dots
/// is a path, so `id.orig_h` matches the key `id.orig_h` and the key `orig_h` inside `id`.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Trie {
    nodes: Vec<FastMap<Box<str>, Slot>>,
    leaves: Vec<Vec<u32>>,
    /// The keys of `nodes` for the fast path ([`Trie::index`] builds them).
    tables: Vec<KeyTable>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    leaf: Option<u32>,
    child: Option<u32>,
}

/// The keys of one trie node, found without hashing the whole key (the line's keys are
/// looked up by the fast path some 20 times a line): a key is told by its length and its first
/// and last eight bytes (the whole key up to 16 bytes), which a multiplier chosen for the node
/// sends to distinct slots of a small table; longer keys are then compared in full.
#[derive(Debug, Default)]
struct KeyTable {
    mul: u64,
    shift: u32,
    slots: Vec<KeySlot>,
    /// No multiplier separated the keys (long keys with the same ends): the node's hash map
    /// decides.
    fallback: bool,
}

#[derive(Debug, Clone)]
struct KeySlot {
    /// `u32::MAX`: an empty slot.
    len: u32,
    lo: u64,
    hi: u64,
    key: Box<[u8]>,
    slot: Slot,
}

/// Eight bytes of `b` from `at` (little-endian), zeros past its end.
#[inline(always)]
fn word_at(b: &[u8], at: usize) -> u64 {
    if let Some(w) = b.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        return u64::from_le_bytes(*w);
    }
    let r = b.get(at..).unwrap_or_default();
    let mut w = [0u8; 8];
    w[..r.len()].copy_from_slice(r);
    u64::from_le_bytes(w)
}

/// The key `b[start..end]` as `(first 8 bytes, last 8 bytes)`, zero-padded, the last part 0
/// for keys of up to 8 bytes. Bytes of `b` past `end` may be read (the line goes on after a
/// key) but do not count.
#[inline(always)]
fn key_words(b: &[u8], start: usize, end: usize) -> (u64, u64) {
    let len = end - start;
    if len <= 8 {
        let mask = 1u64.checked_shl(8 * len as u32).map_or(u64::MAX, |m| m - 1);
        (word_at(b, start) & mask, 0)
    } else {
        (word_at(b, start), word_at(b, end - 8))
    }
}

impl KeyTable {
    #[inline(always)]
    fn index(&self, len: usize, lo: u64, hi: u64) -> usize {
        let h = (lo ^ hi.rotate_left(29) ^ len as u64).wrapping_mul(self.mul);
        (h >> self.shift) as usize
    }

    fn build(map: &FastMap<Box<str>, Slot>) -> KeyTable {
        let keys: Vec<(&[u8], u64, u64, Slot)> = map
            .iter()
            .map(|(k, s)| {
                let b = k.as_bytes();
                let (lo, hi) = key_words(b, 0, b.len());
                (b, lo, hi, *s)
            })
            .collect();
        let empty = KeySlot {
            len: u32::MAX,
            lo: 0,
            hi: 0,
            key: Box::default(),
            slot: Slot::default(),
        };
        let min_bits = (keys.len().max(1).next_power_of_two().trailing_zeros() + 1).min(40);
        // Fixed multipliers (odd, from a SplitMix64 sequence): the same table every run.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for bits in min_bits..min_bits + 4 {
            for _ in 0..64 {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let mut t = KeyTable {
                    mul: (z ^ (z >> 31)) | 1,
                    shift: 64 - bits,
                    slots: vec![empty.clone(); 1 << bits],
                    fallback: false,
                };
                let placed = keys.iter().all(|&(k, lo, hi, slot)| {
                    let i = t.index(k.len(), lo, hi);
                    if t.slots[i].len != u32::MAX {
                        return false;
                    }
                    t.slots[i] = KeySlot {
                        len: k.len() as u32,
                        lo,
                        hi,
                        key: k.into(),
                        slot,
                    };
                    true
                });
                if placed {
                    return t;
                }
            }
        }
        KeyTable {
            fallback: true,
            ..KeyTable::default()
        }
    }
}

impl Trie {
    /// Builds the key tables once every name is inserted.
    fn index(&mut self) {
        self.tables = self.nodes.iter().map(KeyTable::build).collect();
    }

    /// The slot of the key `b[start..end]` in `node`, as `nodes[node].get(key)` gives it.
    /// `b` may go on past `end`.
    #[inline(always)]
    fn find(&self, node: u32, b: &[u8], start: usize, end: usize) -> Option<Slot> {
        let t = &self.tables[node as usize];
        if t.fallback {
            let key = std::str::from_utf8(&b[start..end]).ok()?;
            return self.nodes[node as usize].get(key).copied();
        }
        let len = end - start;
        let (lo, hi) = key_words(b, start, end);
        let s = &t.slots[t.index(len, lo, hi)];
        (s.len as usize == len
            && s.lo == lo
            && s.hi == hi
            && (len <= 16 || *s.key == b[start..end]))
            .then_some(s.slot)
    }

    fn insert(&mut self, name: &str, sel: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(FastMap::default());
        }
        let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
        // Dotted names are short; 2^dots splittings, capped to keep a hostile map small.
        let n = dots.len().min(10);
        for mask in 0u32..(1 << n) {
            let mut node = 0usize;
            let mut start = 0;
            let cuts = dots
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < n && mask & (1 << i) != 0);
            for (_, &d) in cuts {
                let label = &name[start..d];
                let next = self.nodes.len() as u32;
                let slot = self.nodes[node].entry(label.into()).or_default();
                let child = match slot.child {
                    Some(c) => c,
                    None => {
                        slot.child = Some(next);
                        self.nodes.push(FastMap::default());
                        next
                    }
                };
                node = child as usize;
                start = d + 1;
            }
            let label = &name[start..];
            let nl = self.leaves.len() as u32;
            let slot = self.nodes[node].entry(label.into()).or_default();
            let leaf = match slot.leaf {
                Some(l) => l,
                None => {
                    slot.leaf = Some(nl);
                    self.leaves.push(Vec::new());
                    nl
                }
            };
            if !self.leaves[leaf as usize].contains(&sel) {
                self.leaves[leaf as usize].push(sel);
            }
        }
    }
}

/// A field map prepared for reading: selectors by name and the JSON trie.
#[derive(Debug)]
struct Prepared {
    map: FieldMap,
    selectors: Vec<Selector>,
    by_name: HashMap<String, u32>,
    trie: Trie,
    /// For each URL rule: (host selector, path selector).
    urls: Vec<(u32, u32)>,
    /// For each URL rule: its target.
    url_targets: Vec<Target>,
}

impl Prepared {
    fn new(map: FieldMap) -> Prepared {
        let mut p = Prepared {
            map: FieldMap::default(),
            selectors: Vec::new(),
            by_name: HashMap::new(),
            trie: Trie::default(),
            urls: Vec::new(),
            url_targets: Vec::new(),
        };
        for (i, r) in map.rules.iter().enumerate() {
            let s = p.selector(&r.field);
            p.selectors[s as usize].rules.push(i);
        }
        for name in &map.timestamp {
            let s = p.selector(name);
            p.selectors[s as usize].timestamp = true;
        }
        for name in &map.stream {
            let s = p.selector(name);
            p.selectors[s as usize].stream = true;
        }
        for u in &map.urls {
            let h = p.selector(&u.host);
            let q = p.selector(&u.path);
            p.urls.push((h, q));
            p.url_targets.push(Target::Url(Arc::clone(&u.target)));
        }
        p.trie.index();
        p.map = map;
        p
    }

    fn selector(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.by_name.get(name) {
            return s;
        }
        let s = self.selectors.len() as u32;
        self.selectors.push(Selector::default());
        self.by_name.insert(name.to_string(), s);
        self.trie.insert(name, s);
        s
    }

    /// Turns the captured `(selector, value)` pairs of one line into the record's fields;
    /// their strings are ranges of `text` (see [`Caps`]).
    fn finish(
        &self,
        caps: &Caps,
        text: &str,
        stream_hint: Option<&str>,
        rec: &mut Record,
        pool: &mut Vec<String>,
        v4: &mut Vec<(usize, u32)>,
    ) {
        v4.clear();
        // Values are made (`Caps::val`) only for the captures a step takes.
        let stream = caps
            .list
            .iter()
            .find(|(s, _)| self.selectors[*s as usize].stream)
            .and_then(|&(_, c)| caps.val(text, c).as_str())
            .or(stream_hint);
        rec.timestamp = caps
            .list
            .iter()
            .filter(|(s, _)| self.selectors[*s as usize].timestamp)
            .find_map(|&(_, c)| match caps.val(text, c) {
                Val::Str(s) => parse_time(s),
                Val::Int(i) => i.checked_mul(1_000_000_000),
                Val::Float(f) => {
                    let n = (f * 1e9).round();
                    (n.abs() < 9.2e18).then_some(n as i64)
                }
                Val::Bool(_) => None,
            });
        let stream_ok =
            |want: &Option<String>| want.is_none() || stream.is_none() || want.as_deref() == stream;
        for (s, v) in caps.iter(text) {
            // The rules of one value share its parsed address.
            let mut ip = None;
            for &r in &self.selectors[s as usize].rules {
                let rule = &self.map.rules[r];
                if stream_ok(&rule.stream) {
                    rule.target
                        .apply_noted(v, &mut rec.fields, pool, &mut ip, v4);
                }
            }
        }
        for ((u, &(h, p)), target) in self.map.urls.iter().zip(&self.urls).zip(&self.url_targets) {
            if !stream_ok(&u.stream) {
                continue;
            }
            let get = |sel: u32| {
                caps.list
                    .iter()
                    .find(|(s, _)| *s == sel)
                    .and_then(|&(_, c)| caps.val(text, c).as_str())
            };
            let (Some(host), Some(path)) = (get(h), get(p)) else {
                continue;
            };
            let mut url = pool.pop().unwrap_or_default();
            url.clear();
            if path.contains("://") {
                url.push_str(path);
            } else {
                url.push_str(&u.scheme);
                url.push_str("://");
                url.push_str(host);
                if !path.starts_with('/') {
                    url.push('/');
                }
                url.push_str(path);
            }
            target.apply_noted(Val::Str(&url), &mut rec.fields, pool, &mut None, v4);
            pool.push(url);
        }
    }
}

/// Up to 9 fraction digits as nanoseconds.
fn frac_nanos(digits: &str) -> Option<i64> {
    let mut n = 0i64;
    for (i, c) in digits.bytes().enumerate() {
        if i >= 9 || !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n * 10i64.pow(9 - digits.len() as u32))
}

/// Parses a record time: RFC 3339 (`2024-01-02T03:04:05.123456Z`, `+00:00`, eve's `+0000`,
/// a space for `T`) or Unix seconds with a fraction (`1521911720.865716`). Unix nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    // Printable ASCII at both ends (the usual value) has nothing to trim.
    let s = match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(0x21..=0x7e), Some(0x21..=0x7e)) => s,
        _ => s.trim(),
    };
    let b = s.as_bytes();
    // An RFC 3339 time has a `-` at 4: no search for one then.
    if b.first().is_some_and(u8::is_ascii_digit) && b.get(4) != Some(&b'-') && !s.contains('-') {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 9
            || !int.bytes().all(|c| c.is_ascii_digit())
            || !frac.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let secs: i64 = int.parse().ok()?;
        let nanos = frac_nanos(frac)?;
        return secs.checked_mul(1_000_000_000)?.checked_add(nanos);
    }
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    // Digits only (so also no multi-byte character inside), read without `str::parse`.
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i64;
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Digits beyond nanoseconds are ignored.
        nanos = r[..n.min(9)]
            .iter()
            .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'))
            * 10i64.pow(9 - n.min(9) as u32);
        rest = &r[n..];
    }
    let offset = match rest {
        b"Z" | b"z" | b"" => 0,
        _ => {
            let sign = match rest[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            // `hhmm` with any colons left out (`+00:00`, eve's `+0000`).
            let mut t = [0i64; 4];
            let mut k = 0;
            for &c in rest[1..].iter().filter(|&&c| c != b':') {
                if k == 4 || !c.is_ascii_digit() {
                    return None;
                }
                t[k] = i64::from(c - b'0');
                k += 1;
            }
            if k != 4 {
                return None;
            }
            sign * ((t[0] * 10 + t[1]) * 3600 + (t[2] * 10 + t[3]) * 60)
        }
    };
    // Days from civil (H. Hinnant's algorithm).
    let (yy, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

// ---------------------------------------------------------------------------------------------
// JSON: one pass over the line with serde, capturing only the mapped fields.

struct ValueSeed<'a> {
    trie: &'a Trie,
    leaf: &'a [u32],
    child: Option<u32>,
    out: &'a mut Caps,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn push(self, v: Cap) -> bool {
        self.out.push(self.leaf, v);
        false
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        self.out.push_str(self.leaf, v);
        Ok(false)
    }
    fn visit_i64<E>(self, v: i64) -> Result<bool, E> {
        Ok(self.push(Cap::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<bool, E> {
        Ok(self.push(match i64::try_from(v) {
            Ok(i) => Cap::Int(i),
            Err(_) => Cap::Float(v as f64),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<bool, E> {
        Ok(self.push(match FieldValue::from_f64(v) {
            FieldValue::Int(i) => Cap::Int(i),
            _ => Cap::Float(v),
        }))
    }
    fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
        Ok(self.push(Cap::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq
            .next_element_seed(ValueSeed {
                trie: self.trie,
                leaf: self.leaf,
                child: self.child,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let Some(node) = self.child else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(true);
        };
        let node = &self.trie.nodes[node as usize];
        while let Some(slot) = map.next_key_seed(KeySeed(node))? {
            match slot {
                Some(s) => {
                    map.next_value_seed(ValueSeed {
                        trie: self.trie,
                        leaf: s
                            .leaf
                            .map_or(&[][..], |l| &self.trie.leaves[l as usize][..]),
                        child: s.child,
                        out: &mut *self.out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }
}

struct KeySeed<'a>(&'a FastMap<Box<str>, Slot>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<Slot>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Slot>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<Slot>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<Slot>, E> {
        Ok(self.0.get(v).copied())
    }
}

// ---------------------------------------------------------------------------------------------
// Zeek TSV header state.

#[derive(Debug, Default)]
struct Tsv {
    separator: Vec<u8>,
    set_separator: String,
    empty: String,
    unset: String,
    path: Option<String>,
    /// Per column: the selector, and the Zeek type.
    columns: Vec<(Option<u32>, String)>,
}

/// Zeek's `\xHH` escapes (in `#separator`). Read on bytes: what follows `\x` may be any
/// text, and only two ASCII hex digits make an escape (a `str` slice there could cut a
/// character, and `from_str_radix` would take a sign).
fn unescape_zeek(s: &str) -> Vec<u8> {
    let hex = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let (Some(high), Some(low)) = (hex(b[i + 2]), hex(b[i + 3]))
        {
            out.push((high << 4) | low);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Captures one Zeek TSV cell of type `ty` for `sel`.
fn zeek_value(caps: &mut Caps, sel: u32, ty: &str, text: &str) {
    let v = match ty {
        "count" | "int" | "port" => text.parse().ok().map(Cap::Int),
        "double" | "interval" => text.parse().ok().map(|x| match FieldValue::from_f64(x) {
            FieldValue::Int(i) => Cap::Int(i),
            _ => Cap::Float(x),
        }),
        "bool" => match text {
            "T" => Some(Cap::Bool(true)),
            "F" => Some(Cap::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    match v {
        Some(v) => caps.push(&[sel], v),
        None => caps.push_str(&[sel], text),
    }
}

// ---------------------------------------------------------------------------------------------

enum Body {
    Lines(Box<dyn BufRead + Send>),
    Csv(Box<csv::Reader<Box<dyn BufRead + Send>>>),
}

/// Reads records from one input. Use [`RecordReader::next_into`] in hot loops (it reuses the
/// record's buffers), or iterate.
pub struct RecordReader {
    file: Arc<str>,
    format: Format,
    body: Body,
    prepared: Prepared,
    tsv: Option<Tsv>,
    csv_columns: Vec<Option<u32>>,
    line: u64,
    buf: Vec<u8>,
    caps: Caps,
    /// Strings of earlier records' fields, reused for the next record's (see
    /// [`RecordReader::next_into`]).
    pool: Vec<String>,
    malformed: Vec<Malformed>,
    malformed_count: u64,
    records: u64,
    plain_paths: PlainPaths,
    /// The normal text of the current plain observable.
    plain_text: String,
    /// `(field index, address)` of the current record's `ipv4-addr:value` fields whose
    /// address the field map parsed, by field index; a field not listed may still hold an
    /// address (the matcher then parses its text).
    v4: Vec<(usize, u32)>,
    /// Bytes known to be left in the input's buffer after the last line read in place
    /// ([`RecordReader::plain_in_place`]); 0 when unknown. While it is not 0, reading the
    /// next line does not wait for the input (see [`RecordReader::next_plain_batch`]).
    buffered: usize,
    /// Set by [`RecordReader::next_batch`]: read only lines whole in the input's buffer.
    no_wait: bool,
}

/// Records read ahead of matching (see [`RecordReader::next_batch`]), each with the IPv4
/// addresses the field map parsed (`(field index, address)`, as
/// [`crate::Matcher`]'s CIDR lookups take them).
#[derive(Debug, Default)]
pub(crate) struct RecordBatch {
    records: Vec<(Record, Vec<(usize, u32)>)>,
    len: usize,
}

impl RecordBatch {
    /// The records, in input order, with their parsed addresses.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&Record, &[(usize, u32)])> + Clone + '_ {
        self.records[..self.len]
            .iter()
            .map(|(r, v4)| (r, v4.as_slice()))
    }
}

/// Plain observables classified ahead of matching (see [`RecordReader::next_plain_batch`]):
/// their normal texts one after another in `text`, and per observable its kind, line and
/// the end of its text.
#[derive(Debug, Default)]
pub(crate) struct PlainBatch {
    text: String,
    items: Vec<(Kind, u64, usize)>,
    /// Scratch: the ends of the lines in the input's buffer.
    ends: Vec<usize>,
}

impl PlainBatch {
    /// The observables of the batch, in input order.
    pub(crate) fn lines<'a>(
        &'a self,
        file: &'a Arc<str>,
        paths: &'a PlainPaths,
    ) -> impl Iterator<Item = PlainLine<'a>> + 'a {
        let mut start = 0;
        self.items.iter().map(move |&(kind, line, end)| {
            let text = &self.text[start..end];
            start = end;
            PlainLine {
                file,
                line,
                kind,
                text,
                paths,
            }
        })
    }

    /// The kinds of the observables, in input order.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = Kind> + Clone + '_ {
        self.items.iter().map(|i| i.0)
    }

    /// The normal text of observable `i`.
    pub(crate) fn text_of(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.items[j].2);
        &self.text[start..self.items[i].2]
    }
}

/// One classified plain observable (see [`RecordReader::next_plain`]): the record it stands
/// for is [`PlainPaths::fields`] of `kind` and `text`.
pub(crate) struct PlainLine<'a> {
    pub file: &'a Arc<str>,
    pub line: u64,
    pub kind: Kind,
    /// The normal text ([`classify_into`]).
    pub text: &'a str,
    pub paths: &'a PlainPaths,
}

/// The object paths of plain observables, shared by every record of a reader.
pub(crate) struct PlainPaths {
    v4: Arc<str>,
    v6: Arc<str>,
    domain: Arc<str>,
    url: Arc<str>,
    email: Arc<str>,
    md5: Arc<str>,
    sha1: Arc<str>,
    sha256: Arc<str>,
    dst_ref: Arc<str>,
    dst_port: Arc<str>,
}

impl PlainPaths {
    /// The fields of the record of one plain observable of `kind` (not a CIDR block or URL
    /// path) with normal text `v`: one field, and for `ip:port` also the destination
    /// reference and port.
    pub(crate) fn fields(&self, kind: Kind, v: String, fields: &mut Vec<Field>) {
        let path = self.path(kind);
        if let Kind::IpPort(_, port) = kind {
            fields.push(Field {
                path: Arc::clone(path),
                value: FieldValue::Str(v.clone()),
            });
            fields.push(Field {
                path: Arc::clone(&self.dst_ref),
                value: FieldValue::Str(v),
            });
            fields.push(Field {
                path: Arc::clone(&self.dst_port),
                value: FieldValue::Int(i64::from(port)),
            });
        } else {
            fields.push(Field {
                path: Arc::clone(path),
                value: FieldValue::Str(v),
            });
        }
    }

    /// The path of the first field of an observable of `kind`.
    pub(crate) fn path(&self, kind: Kind) -> &Arc<str> {
        match kind {
            Kind::Ip(ip) | Kind::IpPort(ip, _) | Kind::Cidr(ip, _) => {
                if ip.is_ipv4() {
                    &self.v4
                } else {
                    &self.v6
                }
            }
            Kind::Domain => &self.domain,
            Kind::Url | Kind::UrlPath => &self.url,
            Kind::Email => &self.email,
            Kind::Hash(HashAlgo::Md5) => &self.md5,
            Kind::Hash(HashAlgo::Sha1) => &self.sha1,
            Kind::Hash(HashAlgo::Sha256) => &self.sha256,
        }
    }
}

impl Default for PlainPaths {
    fn default() -> Self {
        PlainPaths {
            v4: Arc::from("ipv4-addr:value"),
            v6: Arc::from("ipv6-addr:value"),
            domain: Arc::from("domain-name:value"),
            url: Arc::from("url:value"),
            email: Arc::from("email-addr:value"),
            md5: Arc::from("file:hashes.MD5"),
            sha1: Arc::from("file:hashes.'SHA-1'"),
            sha256: Arc::from("file:hashes.'SHA-256'"),
            dst_ref: Arc::from("network-traffic:dst_ref.value"),
            dst_port: Arc::from("network-traffic:dst_port"),
        }
    }
}

/// Opens `path` (`-` is stdin) for reading in `format`. `map` replaces the built-in map of
/// `eve`/`zeek` and is required for `json` and `csv` (an empty map gives records without
/// fields). Gzip input is recognised by its magic bytes, whatever the name.
pub fn open(path: &str, format: Format, map: Option<FieldMap>) -> Result<RecordReader, InputError> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path).map_err(|source| InputError::Open {
                file: path.into(),
                source,
            })?,
        )
    };
    let mut r = BufReader::with_capacity(256 * 1024, raw);
    let gz = r
        .fill_buf()
        .map_err(|source| InputError::Open {
            file: path.into(),
            source,
        })?
        .starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    };
    Ok(RecordReader::new(path, input, format, map))
}

impl RecordReader {
    /// A reader over any buffered input (an HTTP body, a test string). `name` is the file name
    /// put into records and reports. See [`open`] for `map`.
    pub fn new(
        name: &str,
        input: Box<dyn BufRead + Send>,
        format: Format,
        map: Option<FieldMap>,
    ) -> RecordReader {
        let map = map.unwrap_or_else(|| match format {
            Format::Eve => FieldMap::eve(),
            Format::Zeek => FieldMap::zeek(),
            _ => FieldMap::default(),
        });
        let body = if format == Format::Csv {
            Body::Csv(Box::new(
                csv::ReaderBuilder::new().flexible(false).from_reader(input),
            ))
        } else {
            Body::Lines(input)
        };
        RecordReader {
            file: Arc::from(name),
            format,
            body,
            prepared: Prepared::new(map),
            tsv: None,
            csv_columns: Vec::new(),
            line: 0,
            buf: Vec::new(),
            caps: Caps::default(),
            pool: Vec::new(),
            malformed: Vec::new(),
            malformed_count: 0,
            records: 0,
            plain_paths: PlainPaths::default(),
            plain_text: String::new(),
            v4: Vec::new(),
            buffered: 0,
            no_wait: false,
        }
    }

    /// The input's name.
    pub fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// Lines that did not become records, the first [`MAX_MALFORMED_KEPT`].
    pub fn malformed(&self) -> &[Malformed] {
        &self.malformed
    }

    /// How many lines did not become records.
    pub fn malformed_count(&self) -> u64 {
        self.malformed_count
    }

    /// How many records were returned.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn bad(&mut self, line: u64, reason: impl Into<String>) {
        self.malformed_count += 1;
        if self.malformed.len() < MAX_MALFORMED_KEPT {
            self.malformed.push(Malformed {
                file: Arc::clone(&self.file),
                line,
                reason: reason.into(),
            });
        }
    }

    /// Reads the next line that is not blank into `buf` (without its line end) and counts
    /// it; its first byte that is not white space, or `None` at the end of the input. With
    /// [`RecordReader::no_wait`] set, also `None` instead of waiting for the input: when no
    /// whole line is in the input's buffer.
    fn next_line(&mut self) -> Result<Option<u8>, InputError> {
        loop {
            self.buf.clear();
            let Body::Lines(input) = &mut self.body else {
                unreachable!("csv is read by next_csv")
            };
            if self.no_wait && self.buffered == 0 {
                return Ok(None);
            }
            let read = |source| InputError::Read {
                file: self.file.to_string(),
                line: self.line + 1,
                source,
            };
            // A line whole in the input's buffer is copied from there, and what is left is
            // noted (`buffered`: reading on does not wait); any other goes to `read_until`.
            let avail = input.fill_buf().map_err(read)?;
            let n = match memchr::memchr(b'\n', avail) {
                Some(end) => {
                    self.buf.extend_from_slice(&avail[..=end]);
                    self.buffered = avail.len() - end - 1;
                    input.consume(end + 1);
                    end + 1
                }
                None if self.no_wait => return Ok(None),
                None => {
                    self.buffered = 0;
                    input.read_until(b'\n', &mut self.buf).map_err(read)?
                }
            };
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if let Some(&first) = self.buf.iter().find(|c| !c.is_ascii_whitespace()) {
                return Ok(Some(first));
            }
        }
    }

    /// Reads the next record into `rec` (its previous content is replaced). `Ok(false)` at
    /// the end of the input. Malformed lines are skipped and recorded.
    pub fn next_into(&mut self, rec: &mut Record) -> Result<bool, InputError> {
        if let Body::Csv(_) = self.body {
            return self.next_csv(rec);
        }
        loop {
            let Some(first) = self.next_line()? else {
                return Ok(false);
            };
            recycle(rec, &mut self.pool);
            self.v4.clear();
            let ok = match (self.format, first) {
                (Format::Lines, _) => self.plain_line(rec),
                (Format::Zeek, b'#') => {
                    self.tsv_header();
                    continue;
                }
                (Format::Zeek, b) if b != b'{' => self.tsv_line(rec),
                _ => self.json_line(rec),
            };
            if ok {
                if !Arc::ptr_eq(&rec.file, &self.file) {
                    rec.file = Arc::clone(&self.file);
                }
                rec.line = self.line;
                self.records += 1;
                return Ok(true);
            }
        }
    }

    /// [`Prepared::finish`] of captures whose strings are in the capture buffer (the serde
    /// path, TSV and CSV; the JSON fast path's are ranges of the line).
    fn finish_captured(&mut self, stream_hint: Option<&str>, rec: &mut Record) {
        self.prepared.finish(
            &self.caps,
            &self.caps.text,
            stream_hint,
            rec,
            &mut self.pool,
            &mut self.v4,
        );
    }

    fn json_line(&mut self, rec: &mut Record) -> bool {
        self.caps.clear();
        let trie = &self.prepared.trie;
        let root = if trie.nodes.is_empty() { None } else { Some(0) };
        if let Some(text) = fast_json(&self.buf, trie, root, &mut self.caps) {
            self.prepared
                .finish(&self.caps, text, None, rec, &mut self.pool, &mut self.v4);
            return true;
        }
        // Anything the fast scanner does not take (escapes, not UTF-8, not an object, deep
        // nesting, errors) goes through serde_json, which also words the errors.
        self.caps.clear();
        let mut de = serde_json::Deserializer::from_slice(&self.buf);
        let seed = ValueSeed {
            trie,
            leaf: &[],
            child: root,
            out: &mut self.caps,
        };
        let res = seed.deserialize(&mut de).and_then(|was_map| {
            de.end()?;
            Ok(was_map)
        });
        match res {
            Ok(true) => {
                self.finish_captured(None, rec);
                true
            }
            Ok(false) => {
                self.bad(self.line, "not a JSON object");
                false
            }
            Err(e) => {
                let line = self.line;
                self.bad(line, format!("invalid JSON: {e}"));
                false
            }
        }
    }

    fn tsv_header(&mut self) {
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let t = self.tsv.get_or_insert_with(|| Tsv {
            separator: b"\t".to_vec(),
            set_separator: ",".into(),
            empty: "(empty)".into(),
            unset: "-".into(),
            ..Tsv::default()
        });
        if let Some(sep) = text.strip_prefix("#separator ") {
            t.separator = unescape_zeek(sep.trim_end());
            return;
        }
        let sep = String::from_utf8_lossy(&t.separator).into_owned();
        let mut parts = text.split(sep.as_str());
        let key = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        match key {
            "#set_separator" => t.set_separator = rest.first().copied().unwrap_or(",").into(),
            "#empty_field" => t.empty = rest.first().copied().unwrap_or("(empty)").into(),
            "#unset_field" => t.unset = rest.first().copied().unwrap_or("-").into(),
            "#path" => t.path = rest.first().map(|s| s.to_string()),
            "#fields" => {
                t.columns = rest
                    .iter()
                    .map(|f| (self.prepared.by_name.get(*f).copied(), String::new()))
                    .collect();
            }
            "#types" => {
                for (c, ty) in t.columns.iter_mut().zip(&rest) {
                    c.1 = ty.to_string();
                }
            }
            _ => {}
        }
    }

    fn tsv_line(&mut self, rec: &mut Record) -> bool {
        let Some(t) = &self.tsv else {
            self.bad(self.line, "Zeek TSV data before the #fields header");
            return false;
        };
        if t.columns.is_empty() {
            self.bad(self.line, "Zeek TSV data before the #fields header");
            return false;
        }
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            self.bad(self.line, "not UTF-8");
            return false;
        };
        let sep = std::str::from_utf8(&t.separator).unwrap_or("\t");
        self.caps.clear();
        let mut n = 0;
        for (i, cell) in text.split(sep).enumerate() {
            n = i + 1;
            let Some((Some(sel), ty)) = t.columns.get(i) else {
                continue;
            };
            if cell == t.unset || cell == t.empty {
                continue;
            }
            if let Some(inner) = ty
                .strip_prefix("vector[")
                .or_else(|| ty.strip_prefix("set["))
                .and_then(|s| s.strip_suffix(']'))
            {
                for item in cell.split(t.set_separator.as_str()) {
                    zeek_value(&mut self.caps, *sel, inner, item);
                }
            } else if ty == "time" {
                self.caps.push_str(&[*sel], cell);
            } else {
                zeek_value(&mut self.caps, *sel, ty, cell);
            }
        }
        if n != t.columns.len() {
            let (want, line) = (t.columns.len(), self.line);
            self.bad(line, format!("{n} columns, the #fields header has {want}"));
            return false;
        }
        let path = t.path.clone();
        self.finish_captured(path.as_deref(), rec);
        true
    }

    /// Classifies the plain observable in `buf` into `plain_text`: its kind, or `None` for a
    /// comment or a malformed line (recorded).
    fn classify_plain(&mut self) -> Option<Kind> {
        if let Some(kind) = crate::classify::classify_simple(&self.buf, &mut self.plain_text) {
            return Some(kind);
        }
        let Ok(text) = std::str::from_utf8(&self.buf) else {
            self.bad(self.line, "not UTF-8");
            return None;
        };
        let text = text.trim();
        if text.starts_with('#') {
            return None;
        }
        match classify_into(&refang(text), &mut self.plain_text) {
            Ok(Kind::Cidr(..)) => {
                self.bad(self.line, "a CIDR block is not an observable");
                None
            }
            Ok(Kind::UrlPath) => {
                self.bad(self.line, "a URL path without a host is not an observable");
                None
            }
            Ok(kind) => Some(kind),
            Err(e) => {
                self.bad(self.line, e.reason());
                None
            }
        }
    }

    fn plain_line(&mut self, rec: &mut Record) -> bool {
        let Some(kind) = self.classify_plain() else {
            return false;
        };
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.push_str(&self.plain_text);
        self.plain_paths.fields(kind, v, &mut rec.fields);
        true
    }

    /// The next plain observable of a [`Format::Lines`] input, classified but not made into
    /// a [`Record`] (the record-free path of [`crate::match_reader`]); `Ok(None)` at the end.
    /// Lines, counts and malformed lines exactly as [`RecordReader::next_into`] has them.
    pub(crate) fn next_plain(&mut self) -> Result<Option<PlainLine<'_>>, InputError> {
        debug_assert_eq!(self.format, Format::Lines);
        loop {
            // The common line (whole in the input's buffer, a form `classify_simple` takes)
            // is classified in place, without copying it out.
            if let Some(kind) = self.plain_in_place()? {
                self.records += 1;
                return Ok(Some(PlainLine {
                    file: &self.file,
                    line: self.line,
                    kind,
                    text: &self.plain_text,
                    paths: &self.plain_paths,
                }));
            }
            if self.next_line()?.is_none() {
                return Ok(None);
            }
            if let Some(kind) = self.classify_plain() {
                self.records += 1;
                return Ok(Some(PlainLine {
                    file: &self.file,
                    line: self.line,
                    kind,
                    text: &self.plain_text,
                    paths: &self.plain_paths,
                }));
            }
        }
    }

    /// Reads and classifies the next line where it lies in the input's buffer when it is
    /// whole there (ends in `\n`) and [`crate::classify::classify_simple`] takes it; the line
    /// is then consumed and counted. `None` (nothing consumed) leaves it to
    /// [`RecordReader::next_line`].
    fn plain_in_place(&mut self) -> Result<Option<Kind>, InputError> {
        let Body::Lines(input) = &mut self.body else {
            unreachable!("plain input is read by lines")
        };
        let avail = fill(input, &self.file, self.line)?;
        let Some(end) = newline(avail) else {
            return Ok(None);
        };
        let mut line = &avail[..end];
        while let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let Some(kind) = crate::classify::classify_simple(line, &mut self.plain_text) else {
            return Ok(None);
        };
        self.buffered = avail.len() - end - 1;
        input.consume(end + 1);
        self.line += 1;
        Ok(Some(kind))
    }

    /// Fills `batch` with up to `max` records (`false`: the input has ended and the batch is
    /// empty). The first is read as [`RecordReader::next_into`] reads it, the others only
    /// while their lines are whole in the input's buffer: a batch never waits for more input,
    /// so hits on a live stream are not held back. CSV is read one record at a time. Lines,
    /// counts and malformed lines exactly as [`RecordReader::next_into`] has them.
    pub(crate) fn next_batch(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
    ) -> Result<bool, InputError> {
        batch.len = 0;
        let max = if matches!(self.body, Body::Csv(_)) {
            1
        } else {
            max
        };
        while batch.len < max {
            if batch.records.len() == batch.len {
                batch.records.push(Default::default());
            }
            self.no_wait = batch.len > 0;
            let (rec, v4) = &mut batch.records[batch.len];
            let more = self.next_into(rec);
            self.no_wait = false;
            if !more? {
                break;
            }
            v4.clear();
            v4.extend_from_slice(&self.v4);
            batch.len += 1;
        }
        Ok(batch.len > 0)
    }

    /// Fills `batch` with up to `max` plain observables (`false`: the input has ended and
    /// the batch is empty). The first is read as [`RecordReader::next_plain`] reads it, the
    /// others only while they are whole in the input's buffer and of a form
    /// [`crate::classify::classify_simple`] takes: a batch never waits for more input, so
    /// hits on a live stream are not held back. Lines, counts and malformed lines exactly
    /// as [`RecordReader::next_into`] has them.
    pub(crate) fn next_plain_batch(
        &mut self,
        batch: &mut PlainBatch,
        max: usize,
    ) -> Result<bool, InputError> {
        batch.text.clear();
        batch.items.clear();
        let Some(p) = self.next_plain()? else {
            return Ok(false);
        };
        batch.text.push_str(p.text);
        batch.items.push((p.kind, p.line, batch.text.len()));
        if batch.items.len() >= max || self.buffered == 0 {
            return Ok(true);
        }
        // The others: the lines whole in the input's buffer, checked as UTF-8 at once (per
        // line the check would cost as much as classifying) and classified into the batch
        // until one is not of a form `classify_simple` takes (the next call reads it).
        let Body::Lines(input) = &mut self.body else {
            unreachable!("plain input is read by lines")
        };
        // `buffered` bytes are in the input's buffer: this does not wait.
        let avail = fill(input, &self.file, self.line)?;
        // The line ends, then one check of the lines up to the last.
        let ends = &mut batch.ends;
        ends.clear();
        let mut span = 0;
        for _ in batch.items.len()..max {
            // Plain lines are short: the word scan beats `memchr`'s set-up.
            match newline(&avail[span..]) {
                Some(i) => {
                    span += i + 1;
                    ends.push(span);
                }
                None => break,
            }
        }
        let text = match std::str::from_utf8(&avail[..span]) {
            Ok(t) => t,
            // The lines before the first bad byte; the line that holds it goes to the
            // general path (which reports it).
            Err(e) => std::str::from_utf8(&avail[..e.valid_up_to()]).unwrap_or_default(),
        };
        let mut used = 0;
        for &end in ends.iter() {
            // `end - 1` is a line end, so a character boundary.
            let Some(line) = text.get(used..end - 1) else {
                break;
            };
            let Some(kind) = crate::classify::classify_simple_str(line, &mut batch.text) else {
                break;
            };
            used = end;
            self.line += 1;
            self.records += 1;
            batch.items.push((kind, self.line, batch.text.len()));
        }
        self.buffered = avail.len() - used;
        input.consume(used);
        Ok(true)
    }

    /// The name of the input and the paths of its plain observables, for
    /// [`PlainBatch::lines`].
    pub(crate) fn plain_context(&self) -> (&Arc<str>, &PlainPaths) {
        (&self.file, &self.plain_paths)
    }

    /// Whether this reader reads [`Format::Lines`].
    pub(crate) fn is_plain(&self) -> bool {
        self.format == Format::Lines
    }

    fn next_csv(&mut self, rec: &mut Record) -> Result<bool, InputError> {
        let Body::Csv(r) = &mut self.body else {
            unreachable!("called for csv only")
        };
        if self.csv_columns.is_empty() {
            let headers = r.headers().map_err(|e| csv_io(&self.file, 1, e))?;
            self.csv_columns = headers
                .iter()
                .map(|h| self.prepared.by_name.get(h.trim()).copied())
                .collect();
        }
        let mut row = csv::StringRecord::new();
        loop {
            let Body::Csv(r) = &mut self.body else {
                unreachable!("called for csv only")
            };
            match r.read_record(&mut row) {
                Ok(false) => return Ok(false),
                Ok(true) => {
                    let line = row.position().map_or(self.line + 1, |p| p.line());
                    self.line = line;
                    self.caps.clear();
                    for (cell, sel) in row.iter().zip(&self.csv_columns) {
                        let Some(sel) = sel else { continue };
                        let cell = cell.trim();
                        if cell.is_empty() {
                            continue;
                        }
                        // CSV has no types: integers are integers (ports, sizes).
                        let int = cell.parse::<i64>().ok().filter(|_| {
                            !(cell.starts_with('+') || (cell.starts_with('0') && cell.len() > 1))
                        });
                        // Targets that want text (addresses, hashes…) get the text back.
                        let wants_text =
                            self.prepared.selectors[*sel as usize]
                                .rules
                                .iter()
                                .any(|&r| {
                                    !matches!(self.prepared.map.rules[r].target, Target::Plain(_))
                                });
                        match int {
                            Some(i) if wants_text => self.caps.push_str(&[*sel], &i.to_string()),
                            Some(i) => self.caps.push(&[*sel], Cap::Int(i)),
                            None => self.caps.push_str(&[*sel], cell),
                        }
                    }
                    recycle(rec, &mut self.pool);
                    self.finish_captured(None, rec);
                    rec.file = Arc::clone(&self.file);
                    rec.line = line;
                    self.records += 1;
                    return Ok(true);
                }
                Err(e) => {
                    let line = e.position().map_or(self.line + 1, |p| p.line());
                    if let csv::ErrorKind::Io(_) = e.kind() {
                        return Err(csv_io(&self.file, line, e));
                    }
                    self.line = line;
                    self.bad(line, format!("CSV: {e}"));
                }
            }
        }
    }
}

/// The bytes in `input`'s buffer (read when it is empty), as `BufRead::fill_buf`; an error
/// names the file and the line after `line`.
fn fill<'a>(
    input: &'a mut Box<dyn BufRead + Send>,
    file: &str,
    line: u64,
) -> Result<&'a [u8], InputError> {
    input.fill_buf().map_err(|source| InputError::Read {
        file: file.to_string(),
        line: line + 1,
        source,
    })
}

fn csv_io(file: &str, line: u64, e: csv::Error) -> InputError {
    InputError::Read {
        file: file.into(),
        line,
        source: std::io::Error::other(e.to_string()),
    }
}

/// Empties `rec` for the next record, keeping the strings of its fields in `pool` (bounded)
/// for the fields of the next records: reading then allocates nothing per field.
fn recycle(rec: &mut Record, pool: &mut Vec<String>) {
    const POOL: usize = 64;
    for f in rec.fields.drain(..) {
        if let FieldValue::Str(s) = f.value
            && pool.len() < POOL
        {
            pool.push(s);
        }
    }
    rec.timestamp = None;
}

// ---------------------------------------------------------------------------------------------
// JSON fast path: a strict scanner over the line's bytes for the common case (valid UTF-8, no
// backslash anywhere, an object at the top), capturing mapped values as the serde path does.

/// serde_json's nesting limit is 128; deeper lines go to serde_json for its error.
const FAST_DEPTH: u32 = 100;

/// Scans one JSON line and captures the values at the trie's paths into `caps`, exactly as
/// [`ValueSeed`] does; the line as text, which the captured strings are ranges of. `None`
/// (with `caps` in any state) when the line is not for the fast path or is not valid JSON:
/// the caller then runs serde_json on it. Strings without escapes are the JSON text itself,
/// so they are not copied.
fn fast_json<'a>(
    line: &'a [u8],
    trie: &Trie,
    root: Option<u32>,
    caps: &mut Caps,
) -> Option<&'a str> {
    // Captured ranges are `u32`s.
    if u32::try_from(line.len()).is_err() {
        return None;
    }
    // A backslash (an escape) stops `Scan::string` and so the fast path.
    let text = std::str::from_utf8(line).ok()?;
    let mut sc = Scan {
        s: text,
        b: line,
        i: 0,
        trie,
        caps,
    };
    sc.ws();
    if sc.peek() != Some(b'{') {
        return None;
    }
    sc.value(root, &[], 0)?;
    sc.ws();
    (sc.i == line.len()).then_some(text)
}

/// The position of the first `"`, `\` or control character (below 0x20) in `b`: the end of a
/// JSON string without escapes (at a backslash the caller gives the line to serde_json).
/// Eight bytes at a time (the usual bit tricks on a `u64`: a zero byte of `x ^ '"'…` or
/// `x ^ '\'…`, or a byte of `x` below 0x20), then byte by byte in the eight that hold it.
#[inline(always)]
fn string_end(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    for chunk in b.as_chunks::<8>().0 {
        let x = u64::from_le_bytes(*chunk);
        let q = x ^ (LO * u64::from(b'"'));
        let e = x ^ (LO * u64::from(b'\\'));
        let found = (q.wrapping_sub(LO) & !q)
            | (e.wrapping_sub(LO) & !e)
            | (x.wrapping_sub(LO * 0x20) & !x);
        // The lowest flagged byte is always a true one (a borrow only runs upwards from a
        // byte that is flagged itself).
        if found & HI != 0 {
            return Some(i + (found & HI).trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// The position of the first `\n` in `b`, eight bytes at a time (a zero byte of
/// `x ^ '\n'…`, as in [`string_end`]), then byte by byte in the eight that hold it.
fn newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    for chunk in b.as_chunks::<8>().0 {
        let x = u64::from_le_bytes(*chunk) ^ (LO * u64::from(b'\n'));
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

struct Scan<'a, 'c> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    trie: &'a Trie,
    caps: &'c mut Caps,
}

impl<'a> Scan<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// A string (at its opening quote) without escapes; the range of its content.
    #[inline(always)]
    fn span(&mut self) -> Option<(usize, usize)> {
        self.i += 1;
        let start = self.i;
        let len = string_end(&self.b[start..])?;
        self.i = start + len;
        self.eat(b'"')?;
        Some((start, start + len))
    }

    /// A value. `node`: the trie node for an object here (`None`: not a mapped path);
    /// `leaf`: the selectors this value feeds.
    fn value(&mut self, node: Option<u32>, leaf: &[u32], depth: u32) -> Option<()> {
        match self.peek()? {
            b'{' => {
                if depth >= FAST_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                let trie = self.trie;
                loop {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    let (ks, ke) = self.span()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    let slot = node.and_then(|n| trie.find(n, self.b, ks, ke));
                    match slot {
                        Some(s) => {
                            let leaf = s.leaf.map_or(&[][..], |l| &trie.leaves[l as usize][..]);
                            self.value(s.child, leaf, depth + 1)?;
                        }
                        None => self.value(None, &[], depth + 1)?,
                    }
                    self.ws();
                    if self.eat(b',').is_some() {
                        self.ws();
                        continue;
                    }
                    return self.eat(b'}');
                }
            }
            b'[' => {
                if depth >= FAST_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(node, leaf, depth + 1)?;
                    self.ws();
                    if self.eat(b',').is_some() {
                        self.ws();
                        continue;
                    }
                    return self.eat(b']');
                }
            }
            b'"' => {
                let (start, end) = self.span()?;
                for &l in leaf {
                    self.caps.list.push((l, Cap::Str(start as u32, end as u32)));
                }
                Some(())
            }
            b't' => self.literal(b"true", leaf, Some(Cap::Bool(true))),
            b'f' => self.literal(b"false", leaf, Some(Cap::Bool(false))),
            b'n' => self.literal(b"null", leaf, None),
            b'-' | b'0'..=b'9' => self.number(node, leaf),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], leaf: &[u32], v: Option<Cap>) -> Option<()> {
        if !self.b[self.i..].starts_with(word) {
            return None;
        }
        self.i += word.len();
        if let Some(v) = v {
            self.caps.push(leaf, v);
        }
        Some(())
    }

    /// A number (JSON grammar checked here). Values serde_json would visit (the path is in
    /// the trie) are converted by serde_json itself unless they are small non-negative
    /// integers, so the captured value and any range error are serde_json's.
    fn number(&mut self, node: Option<u32>, leaf: &[u32]) -> Option<()> {
        let start = self.i;
        let digits = |sc: &mut Self| {
            let n = sc.b[sc.i..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            sc.i += n;
            n
        };
        self.eat(b'-');
        let int_at = self.i;
        match digits(self) {
            0 => return None,
            n if n > 1 && self.b[int_at] == b'0' => return None,
            _ => {}
        }
        let mut plain = true;
        if self.eat(b'.').is_some() {
            plain = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            plain = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        if leaf.is_empty() && node.is_none() {
            return Some(());
        }
        let text = &self.s[start..self.i];
        if plain && !text.starts_with('-') && text.len() <= 18 {
            let v = text.bytes().fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
            self.caps.push(leaf, Cap::Int(v));
            return Some(());
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = ValueSeed {
            trie: self.trie,
            leaf,
            child: node,
            out: &mut *self.caps,
        };
        seed.deserialize(&mut de).ok().map(|_| ())
    }
}

impl Iterator for RecordReader {
    type Item = Result<Record, InputError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut r = Record::default();
        match self.next_into(&mut r) {
            Ok(true) => Some(Ok(r)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: Format, text: &str, map: Option<FieldMap>) -> (Vec<Record>, Vec<Malformed>) {
        let mut r = RecordReader::new(
            "t",
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            format,
            map,
        );
        let recs: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
        (recs, r.malformed().to_vec())
    }

    fn fields(r: &Record) -> Vec<(String, String)> {
        r.fields
            .iter()
            .map(|f| (f.path.to_string(), f.value.to_string()))
            .collect()
    }

    /// `parse_time` as it was before it read the bytes itself (with `str::parse` and an
    /// allocating `replace`): the reference for the rewrite.
    fn parse_time_ref(s: &str) -> Option<i64> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.first().is_some_and(u8::is_ascii_digit) && !s.contains('-') {
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            if frac.len() > 9
                || !int.bytes().all(|c| c.is_ascii_digit())
                || !frac.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let secs: i64 = int.parse().ok()?;
            let nanos = frac_nanos(frac)?;
            return secs.checked_mul(1_000_000_000)?.checked_add(nanos);
        }
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())
                .flatten()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut nanos = 0i64;
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            nanos = frac_nanos(&r[..n.min(9)])?;
            rest = &r[n..];
        }
        let offset = match rest {
            "Z" | "z" | "" => 0,
            _ => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let t = rest[1..].replace(':', "");
                if t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let oh: i64 = t[..2].parse().ok()?;
                let om: i64 = t[2..].parse().ok()?;
                sign * (oh * 3600 + om * 60)
            }
        };
        // Days from civil (H. Hinnant's algorithm).
        let (yy, m) = if mo <= 2 {
            (y - 1, mo + 9)
        } else {
            (y, mo - 3)
        };
        let era = yy.div_euclid(400);
        let yoe = yy - era * 400;
        let doy = (153 * m + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }

    #[test]
    fn times_as_before() {
        let mut inputs: Vec<String> = [
            "2026-03-05T10:00:00.123456+0000",
            "2026-03-05T10:00:00.123456+00:00",
            "2026-03-05T10:00:00.123456-05:30",
            "2026-03-05t10:00:00Z",
            "2026-03-05 10:00:00z",
            "2026-03-05T10:00:00",
            "2026-03-05T10:00:00.",
            "2026-03-05T10:00:00.1234567891234Z",
            "2026-03-05T10:00:00+0:000",
            "2026-03-05T10:00:00+00000",
            "2026-03-05T10:00:00+000",
            "2026-03-05T10:00:00+0a00",
            "2026-03-05T10:00:00+00é0",
            "2026-13-05T10:00:00Z",
            "2026-03-32T10:00:00Z",
            "2026-03-05T24:00:00Z",
            "2026-03-05T23:59:60Z",
            "2026-0é-05T10:00:00Z",
            "+026-03-05T10:00:00Z",
            "1521911720.865716",
            "1521911720-865716",
            "1521-11720.865716",
            "\u{a0}2026-03-05T10:00:00Z\u{2003}",
            " 2026-03-05T10:00:00Z ",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x = 99u64;
        for _ in 0..20_000 {
            let mut t: Vec<u8> = b"2026-03-05T10:00:00.123456+0000".to_vec();
            for _ in 0..3 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let at = (x >> 33) as usize % t.len();
                t[at] = b"0123456789:+-.Zz T"[(x >> 50) as usize % 18];
            }
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            t.truncate(10 + (x >> 40) as usize % 25);
            inputs.push(String::from_utf8(t).expect("ASCII"));
        }
        for s in &inputs {
            assert_eq!(parse_time(s), parse_time_ref(s), "{s:?}");
        }
    }

    /// `Trie::find` against the node's hash map: the built-in maps' tries and generated ones
    /// (with long keys alike at both ends, which the tables leave to the map), queried with
    /// every key, changed keys, random bytes (also not UTF-8), with and without line bytes
    /// after the key.
    #[test]
    fn key_tables_find_what_the_maps_find() {
        let mut x = 17u64;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            x >> 33
        };
        let mut tries = vec![
            Prepared::new(FieldMap::eve()).trie,
            Prepared::new(FieldMap::zeek()).trie,
        ];
        let mut fell_back = false;
        for round in 0..60 {
            let mut t = Trie::default();
            let n = 1 + next() as usize % if round % 10 == 0 { 300 } else { 30 };
            for sel in 0..n as u32 {
                let len = next() as usize % 24;
                let name: String = (0..len)
                    .map(|_| ['a', 'b', '.', '_', 'x', 'é'][next() as usize % 6])
                    .collect();
                t.insert(&name, sel);
            }
            if round % 3 == 0 {
                t.insert("aaaaaaaaa1zzzzzzzz", 0);
                t.insert("aaaaaaaaa2zzzzzzzz", 1);
            }
            t.index();
            fell_back |= t.tables.iter().any(|k| k.fallback);
            tries.push(t);
        }
        assert!(fell_back, "no node fell back to its map");
        assert!(
            !tries[..2]
                .iter()
                .any(|t| t.tables.iter().any(|k| k.fallback)),
            "a built-in map's node falls back to its map"
        );
        for t in &tries {
            for (n, map) in t.nodes.iter().enumerate() {
                let mut queries: Vec<Vec<u8>> = Vec::new();
                for k in map.keys() {
                    let k = k.as_bytes().to_vec();
                    queries.push(k.clone());
                    for _ in 0..3 {
                        let mut q = k.clone();
                        match next() % 4 {
                            0 if !q.is_empty() => {
                                let at = next() as usize % q.len();
                                q[at] = [b'a', b'b', 0xc3, 0xff, b'.'][next() as usize % 5];
                            }
                            1 => q.push(b'a'),
                            2 => {
                                q.pop();
                            }
                            _ => q.insert(0, b'x'),
                        }
                        queries.push(q);
                    }
                }
                for _ in 0..20 {
                    let len = next() as usize % 30;
                    queries.push(
                        (0..len)
                            .map(|_| [b'a', b'.', b'_', 0xc3, 0xa9, 0x80][next() as usize % 6])
                            .collect(),
                    );
                }
                for q in &queries {
                    let want = std::str::from_utf8(q)
                        .ok()
                        .and_then(|k| map.get(k))
                        .map(|s| (s.leaf, s.child));
                    let got = t.find(n as u32, q, 0, q.len()).map(|s| (s.leaf, s.child));
                    assert_eq!(got, want, "{q:?} alone");
                    let mut line = b"{\"".to_vec();
                    line.extend_from_slice(q);
                    line.extend_from_slice(b"\":\"aaaaaaaaaaaaaaaa\"}");
                    let got = t
                        .find(n as u32, &line, 2, 2 + q.len())
                        .map(|s| (s.leaf, s.child));
                    assert_eq!(got, want, "{q:?} in a line");
                }
            }
        }
    }

    #[test]
    fn newline_finds_the_first_line_end() {
        let mut seed = 11u64;
        for n in 0..200usize {
            let mut b = Vec::new();
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b.push([b'a', b'\n', 0x8a, 0x0b, 0xff, b'\r', 0][(seed >> 61) as usize % 7]);
            }
            for k in 0..b.len().min(20) {
                let s = &b[k..];
                assert_eq!(newline(s), s.iter().position(|&c| c == b'\n'), "{s:?}");
            }
        }
    }

    #[test]
    fn string_end_finds_the_first_quote_or_control() {
        let mut x = 5u64;
        for n in 0..3000 {
            let len = n % 40;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Mostly plain text, sometimes a quote, a backslash, a control or a high
                    // byte.
                    match (x >> 58) as u8 {
                        0 => b'"',
                        4 => b'\\',
                        1 => (x >> 40) as u8 & 0x1f,
                        2 => 0x80 | (x >> 40) as u8,
                        3 => 0x20,
                        _ => b'a' + (x >> 40) as u8 % 26,
                    }
                })
                .collect();
            let want = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(string_end(&b), want, "{b:?}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(
            parse_time("2018-03-24T17:15:20.865716Z"),
            parse_time("1521911720.865716")
        );
        assert_eq!(
            parse_time("2018-03-24T19:15:20.865716+0200"),
            parse_time("1521911720.865716")
        );
        assert_eq!(parse_time("2018-13-24T17:15:20Z"), None);
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn json_nested_dotted_and_arrays() {
        let line = r#"{"timestamp":"2024-01-01T00:00:00.000000+0000","event_type":"dns","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dest_port":53,"dns":{"queries":[{"rrname":"Evil.COM"}],"answers":[{"rrname":"evil.com","rdata":"1.2.3.4"}]}}
not json
[1]
"#;
        let (recs, bad) = read(Format::Eve, line, None);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].line, 1);
        assert_eq!(recs[0].timestamp, Some(1_704_067_200_000_000_000));
        let f = fields(&recs[0]);
        assert!(
            f.contains(&("domain-name:value".into(), "evil.com".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("ipv4-addr:value".into(), "1.2.3.4".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("network-traffic:dst_port".into(), "53".into())),
            "{f:?}"
        );
        assert_eq!(bad.len(), 2);
        assert_eq!((bad[0].line, bad[1].line), (2, 3));
        assert!(bad[0].reason.starts_with("invalid JSON"), "{:?}", bad[0]);
    }

    #[test]
    fn zeek_tsv() {
        let text = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n\
                    #fields\tts\tid.orig_h\tid.resp_p\tquery\tanswers\n#types\ttime\taddr\tport\tstring\tvector[string]\n\
                    1521911720.5\t10.0.0.1\t53\tx.org\ta.x.org,1.2.3.4\n1521911720.5\t10.0.0.1\n";
        let (recs, bad) = read(Format::Zeek, text, None);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].line, 8);
        assert_eq!(recs[0].timestamp, Some(1_521_911_720_500_000_000));
        let f = fields(&recs[0]);
        assert!(
            f.contains(&("domain-name:value".into(), "a.x.org".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("ipv4-addr:value".into(), "1.2.3.4".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("network-traffic:dst_port".into(), "53".into())),
            "{f:?}"
        );
        assert_eq!(bad[0].line, 9);
    }

    /// An input that gives its first chunk and then fails the test if read again: a batch
    /// must not wait for more input than the buffer holds.
    struct OneChunk(Option<&'static [u8]>);

    impl std::io::Read for OneChunk {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let chunk = self
                .0
                .take()
                .expect("read again: the batch waited for input");
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn batches_take_only_whole_buffered_lines() {
        let input = |chunk: &'static [u8], format| {
            RecordReader::new(
                "live",
                Box::new(std::io::BufReader::new(OneChunk(Some(chunk)))),
                format,
                None,
            )
        };
        // Two whole lines, a blank one and half a third: two records, nothing read again.
        let mut r = input(
            b"{\"src_ip\":\"10.0.0.1\"}\n\n{\"dest_ip\":\"10.0.0.2\"}\n{\"src_i",
            Format::Eve,
        );
        let mut batch = RecordBatch::default();
        assert!(r.next_batch(&mut batch, 16).unwrap());
        let lines: Vec<u64> = batch.records().map(|(rec, _)| rec.line).collect();
        assert_eq!(lines, [1, 3]);
        let v4: Vec<Vec<(usize, u32)>> = batch.records().map(|(_, v)| v.to_vec()).collect();
        assert_eq!(v4, [vec![(0, 0x0a00_0001)], vec![(0, 0x0a00_0002)]]);
        // Plain observables: the same rule.
        let mut r = input(b"10.0.0.1\nevil.test\n# note\nexample.", Format::Lines);
        let mut batch = PlainBatch::default();
        assert!(r.next_plain_batch(&mut batch, 32).unwrap());
        assert_eq!(batch.text_of(0), "10.0.0.1");
        assert_eq!(batch.text_of(1), "evil.test");
        assert_eq!(batch.items.len(), 2);
        // At most `max`, the rest on the next call; then the end.
        let text = b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
        let mut r = input(text, Format::Eve);
        let mut batch = RecordBatch::default();
        assert!(r.next_batch(&mut batch, 2).unwrap());
        assert_eq!(batch.records().count(), 2);
        assert!(r.next_batch(&mut batch, 2).unwrap());
        assert_eq!(
            batch.records().map(|(rec, _)| rec.line).collect::<Vec<_>>(),
            [3]
        );
        let mut r = RecordReader::new("x", Box::new(&text[..]), Format::Eve, None);
        for _ in 0..2 {
            r.next_batch(&mut batch, 2).unwrap();
        }
        assert!(!r.next_batch(&mut batch, 2).unwrap());
    }

    #[test]
    fn plain_and_csv() {
        let (recs, bad) = read(
            Format::Lines,
            "1.2.3.4\n\nEVIL.com\n10.0.0.0/8\nfoo bar\n",
            None,
        );
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].line, 3);
        assert_eq!(bad.len(), 2);
        let map = FieldMap::from_toml(
            "[fields]\n\"dst\" = \"ipv4-addr:value\"\n\"port\" = \"network-traffic:dst_port\"\n",
            "m",
        )
        .unwrap();
        let (recs, _) = read(
            Format::Csv,
            "dst,port\n1.2.3.4,443\n\"5.6.7.8\",80\n",
            Some(map),
        );
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].line, 3);
        assert_eq!(recs[1].fields[1].value, FieldValue::Int(80));
    }

    /// Found by the `log_records` fuzz target (fuzz/): a `#separator` header whose `\x` is
    /// followed by bytes that are not UTF-8 (read as U+FFFD, 3 bytes) sliced a `str` inside a
    /// character and panicked. The first line is the crashing input's, shortened.
    #[test]
    fn zeek_separator_escape_before_a_multibyte_character_does_not_panic() {
        let mut input = b"#separator \\x".to_vec();
        input.extend_from_slice(&[0x97; 8]);
        input.extend_from_slice(b"09\n#fields\tts\tquery\n1588187912.7\tevil.example\n");
        let mut r = RecordReader::new(
            "t",
            Box::new(std::io::Cursor::new(input)),
            Format::Zeek,
            None,
        );
        let recs: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
        assert!(recs.len() <= 1);
        for sep in ["\\x\u{20ac}", "\\xa\u{20ac}", "\\x\u{e9}\u{e9}", "\\x+f"] {
            let text = format!("#separator {sep}\n#fields\tquery\nevil.example\n");
            let _ = read(Format::Zeek, &text, None);
            // Only two ASCII hex digits make an escape; anything else is kept as it is.
            assert_eq!(unescape_zeek(sep), sep.as_bytes(), "{sep:?}");
        }
        assert_eq!(unescape_zeek("\\x09"), b"\t");
        assert_eq!(unescape_zeek("\\x7C\\x2c"), b"|,");
    }
}
