//! The audit log (issue 5, item 7; issue 17): every egress and every ingress, append-only,
//! hash-chained, with signed checkpoints and sealed archives.
//!
//! # Shape (RFC 9162 in spirit, CloudTrail's digest chain in letter)
//!
//! One **entry per transfer** ([`TransferEntry`]): a TAXII page, an export page, a sync batch,
//! an import batch, a web page. It names who (partner, `admin`, `operator`, `peer:NAME`; a
//! person once people exist), the direction, the door, the collection, the policy version,
//! the time, and the object versions in compact form: for each, its version row
//! (`object_versions.vid`), a [`Decision`] and indices into the entry's dictionary of
//! transformation strings, delta-varint encoded ([`encode_items`]); plus the SHA-256 of the
//! bytes that left (egress). Object content never enters the log; transformation strings
//! name rules, paths and identifiers, and quoted text in them is cut ([`without_values`]).
//!
//! Entries form one hash chain: [`transfer_hash`] covers every field, the items and the
//! previous entry's hash. Every so often (`concord audit checkpoint`, or automatically every
//! N entries) a [`Checkpoint`] records the chain head — the seq and hash of the last entry —
//! signed with the node's Ed25519 key ([`crate::node_key`]), and chained to the checkpoint
//! before it. A signed head plays the part of RFC 9162's signed tree head: an auditor holding
//! the public key verifies a checkpoint offline, and the entries between two checkpoints
//! prove that the later head extends the earlier one (a linear consistency proof).
//! [`verify_log`] is incremental: from the last checkpoint verified (recorded in the
//! settings) it checks only the new checkpoints and entries.
//!
//! **Retention**: a prefix of the log that ends at a checkpoint is written to a sealed file
//! ([`ArchiveSegment`]) and removed from the database; the database keeps the boundary (last
//! archived seq and hash, the checkpoint), so the chain after it still verifies.
//!
//! **Legacy**: the per-object log of schema 3 (`audit_log`, [`AuditEntry`]) stays, read-only,
//! verified by its own chain ([`verify_chain`]); the transfer chain's first entry links to its
//! last hash, so one chain runs from the first legacy row to the newest transfer. The first
//! archive takes it whole (schema 24): its rows go into the sealed file before the transfer
//! entries (format `concord-audit-archive-v2`, [`ArchiveLine::Legacy`]) and leave the
//! database with them; the boundary records how far the legacy log went
//! ([`ArchiveBoundary::legacy_through`]), which is what lets the database delete those rows.

use sha2::Digest;

use crate::node_key::{NodeKey, hex, verify_signature};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller records: one object version that crossed a door. The records of one
/// `append_audit` call become one [`TransferEntry`] (one per run of records with the same
/// direction, door, partner, collection and policy version); only `vid`, `decision` and
/// `transformations` are kept per object. Also the row [`crate::Store::audit_show`] answers
/// with, and the legacy per-object entry's fields.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// `egress` or `ingress`.
    pub direction: String,
    /// The door: `taxii-objects`, `taxii-object`, `taxii-versions`, `taxii-manifest`,
    /// `taxii-post`, `export` or `import`.
    pub door: String,
    /// The partner's name, or `admin` (TAXII with the admin token) or `operator` (the CLI).
    pub partner: String,
    /// The person, token or key that acted (issue 20): `user:NAME`, `admin-token`,
    /// `operator` (the CLI without a named user), `key:KEY_ID` (a partner's API key);
    /// `None` where no one acts (a scheduled sync round, a webhook delivery).
    #[serde(default)]
    pub person: Option<String>,
    /// Collection id.
    pub collection: String,
    /// Object id.
    pub object_id: String,
    /// The version (`modified`, else `created`, else `date_added`).
    pub modified: String,
    /// What happened: `sent`, `rewritten`, `withheld`, `added`, `already-present`.
    pub decision: String,
    /// The transformations applied (or, when withheld, why).
    pub transformations: Vec<String>,
    /// The version of the policy applied.
    pub policy_version: String,
    /// The version row (`object_versions.vid`, [`crate::Entry::vid`]); 0 in legacy entries.
    #[serde(default)]
    pub vid: i64,
}

/// A stored entry of the legacy (schema 3) per-object audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended, nanoseconds since the epoch.
    pub time_ns: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// `hash` of the entry before (hex), [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// SHA-256 (hex) of the canonical serialisation of this entry's fields and `prev_hash`.
    pub hash: String,
}

/// SHA-256 (lower-case hex) over the canonical serialisation of an entry: the JSON array
/// `[seq, time_ns, direction, door, partner, collection, object_id, modified, decision,
/// [transformations…], policy_version, prev_hash]`, compact, as `serde_json` writes it.
pub fn entry_hash(seq: i64, time_ns: i64, r: &AuditRecord, prev_hash: &str) -> String {
    let canonical = serde_json::json!([
        seq,
        time_ns,
        r.direction,
        r.door,
        r.partner,
        r.collection,
        r.object_id,
        r.modified,
        r.decision,
        r.transformations,
        r.policy_version,
        prev_hash
    ]);
    let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the entries that follow `last` (`None`: an empty log): what backends append.
pub(crate) fn chain_after(
    last: Option<(i64, String)>,
    time_ns: i64,
    records: &[AuditRecord],
) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_owned()));
    records
        .iter()
        .map(|r| {
            seq += 1;
            let hash = entry_hash(seq, time_ns, r, &prev);
            AuditEntry {
                seq,
                time_ns,
                record: r.clone(),
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Reads the stored `transformations` column (a JSON array of strings). Text that is not
/// one (a damaged or edited row) is kept as one string, so that verification reports the
/// entry as edited instead of failing to read the log.
pub(crate) fn parse_transformations(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|_| vec![text.to_owned()])
}

/// Checks a whole audit log, in the order the store returns it (by `seq`): the first entry
/// is seq 1 with the genesis `prev_hash`, every next seq is one more, every `prev_hash` is the
/// hash of the entry before, and every entry's fields give its hash. Names the first bad entry.
///
/// A truncated tail (the newest entries deleted) cannot be told from a shorter log by the
/// chain alone.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<(), AuditError> {
    verify_chain_after(None, entries)
}

/// [`verify_chain`] for a log read page by page: `entries` continue the chain after
/// `previous` (the last entry of the page before, already verified; `None` for the first
/// page). Memory stays one page, whatever the length of the log.
pub fn verify_chain_after(
    previous: Option<&AuditEntry>,
    entries: &[AuditEntry],
) -> Result<(), AuditError> {
    let mut previous = previous;
    for e in entries {
        let (want_seq, want_prev) = match previous {
            None => (1, GENESIS_HASH),
            Some(p) => (p.seq + 1, p.hash.as_str()),
        };
        if e.prev_hash != want_prev
            && let Some(other) = entries
                .iter()
                .find(|o| o.hash == e.prev_hash && !std::ptr::eq(*o, e))
        {
            return Err(AuditError::Reordered {
                seq: e.seq,
                links_to: other.seq,
                previous: previous.map_or(0, |p| p.seq),
            });
        }
        if e.seq != want_seq {
            return Err(AuditError::Deleted {
                seq: e.seq,
                detail: format!("expected seq {want_seq}, found {}", e.seq),
            });
        }
        if e.prev_hash != want_prev {
            return Err(match previous {
                None => AuditError::Deleted {
                    seq: e.seq,
                    detail: "the first entry does not start the chain".to_owned(),
                },
                Some(p) => AuditError::Broken {
                    seq: e.seq,
                    previous: p.seq,
                },
            });
        }
        if entry_hash(e.seq, e.time_ns, &e.record, &e.prev_hash) != e.hash {
            return Err(AuditError::Edited { seq: e.seq });
        }
        previous = Some(e);
    }
    Ok(())
}

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What signs a head for [`crate::Store::add_audit_checkpoint`]: gets the last checkpoint
/// and the head (seq, hash), returns the new checkpoint.
pub type SignHead<'a> = dyn FnMut(Option<&Checkpoint>, (i64, Hash)) -> Checkpoint + 'a;

/// The hash the first entry of an empty log links to.
pub const GENESIS: Hash = [0; 32];

/// What happened to one object version in a transfer: one byte in the items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Left as stored.
    Sent,
    /// Left as a rewritten copy.
    Rewritten,
    /// Did not leave; the first transformation says why.
    Withheld,
    /// Came in, new to the collection.
    Added,
    /// Came in, already in the collection.
    AlreadyPresent,
    /// Deleted from the collection.
    Deleted,
    /// An operator's change that moves no object version (direction `admin`, e.g. door
    /// `partner-update`): its item names no version row (vid 0), and its transformations
    /// say what changed.
    Changed,
}

impl Decision {
    const ALL: [Decision; 7] = [
        Decision::Sent,
        Decision::Rewritten,
        Decision::Withheld,
        Decision::Added,
        Decision::AlreadyPresent,
        Decision::Deleted,
        Decision::Changed,
    ];

    /// Its word: `sent`, `rewritten`, `withheld`, `added`, `already-present`, `deleted`,
    /// `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Sent => "sent",
            Decision::Rewritten => "rewritten",
            Decision::Withheld => "withheld",
            Decision::Added => "added",
            Decision::AlreadyPresent => "already-present",
            Decision::Deleted => "deleted",
            Decision::Changed => "changed",
        }
    }

    /// The decision of a word; `None` for another.
    pub fn parse(word: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.as_str() == word)
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Decision> {
        Decision::ALL.get(usize::from(code)).copied()
    }
}

/// One object version of a transfer, decoded from the items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The version row (`object_versions.vid`).
    pub vid: i64,
    /// What happened to it.
    pub decision: Decision,
    /// Indices into the entry's dictionary of transformation strings.
    pub transformations: Vec<u32>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Encodes items: for each, the vid as a zig-zag varint of its difference from the vid
/// before (the first from 0), one byte `decision | min(n, 31) << 3` where `n` is the number
/// of transformations (`n - 31` follows as a varint when `n ≥ 31`), then `n` varint
/// dictionary indices. A page of consecutive versions sent as stored costs 2 bytes an object.
pub fn encode_items(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 2 + 8);
    let mut last = 0i64;
    for it in items {
        let d = it.vid.wrapping_sub(last);
        put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        last = it.vid;
        let n = it.transformations.len();
        out.push(it.decision.code() | ((n.min(31) as u8) << 3));
        if n >= 31 {
            put_varint(&mut out, (n - 31) as u64);
        }
        for t in &it.transformations {
            put_varint(&mut out, u64::from(*t));
        }
    }
    out
}

/// Decodes [`encode_items`]; `None` when the bytes are not such an encoding.
pub fn decode_items(bytes: &[u8]) -> Option<Vec<Item>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut last = 0i64;
    while at < bytes.len() {
        let z = get_varint(bytes, &mut at)?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        last = last.wrapping_add(d);
        let b = *bytes.get(at)?;
        at += 1;
        let decision = Decision::from_code(b & 7)?;
        let mut n = usize::from(b >> 3);
        if n == 31 {
            n += usize::try_from(get_varint(bytes, &mut at)?).ok()?;
        }
        let mut transformations = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            transformations.push(u32::try_from(get_varint(bytes, &mut at)?).ok()?);
        }
        out.push(Item {
            vid: last,
            decision,
            transformations,
        });
    }
    Some(out)
}

/// A transformation string as the log keeps it: text between quotes (`'…'`, `"…"`) is cut to
/// `…`, so that a reason that quotes a value (a pattern literal in a parse error) does not
/// carry it into the log. Rules, paths, categories and identifiers stay.
pub fn without_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '\'' || c == '"' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

/// A stored entry of the audit log: one transfer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransferEntry {
    /// Position in the chain (continuing the legacy log's), without gaps.
    pub seq: i64,
    /// When it was appended, nanoseconds since the epoch.
    pub time_ns: i64,
    /// `egress`, `ingress`, `delete`, or `admin` (an operator's change, [`Decision::Changed`]).
    pub direction: String,
    /// The door (see `concord_egress::Door`).
    pub door: String,
    /// The partner's name, `admin`, `operator` or `peer:NAME`.
    pub partner: String,
    /// The person, token or key that acted ([`AuditRecord::person`]); `None` in entries
    /// appended before people existed, and where no one acts.
    pub person: Option<String>,
    /// Collection id.
    pub collection: String,
    /// The version of the policy applied.
    pub policy_version: String,
    /// Number of object versions in `items`.
    pub count: i64,
    /// The transformation strings the items refer to.
    pub dictionary: Vec<String>,
    /// The object versions ([`encode_items`]), base64 in JSON.
    #[serde(with = "b64")]
    pub items: Vec<u8>,
    /// SHA-256 of the bytes that left (egress), hex in JSON.
    #[serde(with = "hex_opt")]
    pub digest: Option<Hash>,
    /// [`names_digest`] of the version rows its items name, as the store named them when
    /// the entry was appended (hex in JSON): it binds each vid to its object id and
    /// `modified`, which live outside the log (`object_versions`, `audit_version_names`),
    /// so that renaming a version row is found by `audit verify` instead of redirecting
    /// `audit show`. `None` in entries appended before schema 12 (hashed as
    /// `concord-audit-transfer-v1`).
    #[serde(with = "hex_opt", default)]
    pub names: Option<Hash>,
    /// `hash` of the entry before (hex in JSON).
    #[serde(with = "hex32")]
    pub prev_hash: Hash,
    /// [`transfer_hash`] of this entry (hex in JSON).
    #[serde(with = "hex32")]
    pub hash: Hash,
}

impl TransferEntry {
    /// The decoded items; `None` when the stored bytes are damaged.
    pub fn decoded(&self) -> Option<Vec<Item>> {
        decode_items(&self.items)
    }

    /// The version rows its items name, sorted, without repeats: what the posting index
    /// holds for it. Empty when the items are damaged.
    pub fn vids(&self) -> Vec<i64> {
        let mut vids: Vec<i64> = self
            .decoded()
            .unwrap_or_default()
            .iter()
            .map(|i| i.vid)
            .collect();
        vids.sort_unstable();
        vids.dedup();
        vids
    }

    /// Whether its fields give its hash.
    pub fn hash_ok(&self) -> bool {
        transfer_hash(self) == self.hash
    }
}

fn put_str(h: &mut sha2::Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// SHA-256 over an entry's canonical bytes: the tag `concord-audit-transfer-v2\n` (`-v1`
/// when the entry has no `names`, as entries before schema 12), then
/// `seq`, `time_ns`, `count` as 8-byte big-endian integers; `direction`, `door`, `partner`,
/// `person` (absent: `0xff…ff` as length), `collection`, `policy_version`, each dictionary
/// string (after their number) and `items`, each as an 8-byte big-endian length and its
/// bytes; `digest` (a byte 0, or 1 and 32 bytes); in v2 `names` (32 bytes); `prev_hash`
/// (32 bytes). Every field has a length, so no two entries share canonical bytes.
pub fn transfer_hash(e: &TransferEntry) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update(match e.names {
        Some(_) => &b"concord-audit-transfer-v2\n"[..],
        None => &b"concord-audit-transfer-v1\n"[..],
    });
    h.update(e.seq.to_be_bytes());
    h.update(e.time_ns.to_be_bytes());
    h.update(e.count.to_be_bytes());
    put_str(&mut h, &e.direction);
    put_str(&mut h, &e.door);
    put_str(&mut h, &e.partner);
    match &e.person {
        Some(p) => put_str(&mut h, p),
        None => h.update(u64::MAX.to_be_bytes()),
    }
    put_str(&mut h, &e.collection);
    put_str(&mut h, &e.policy_version);
    h.update((e.dictionary.len() as u64).to_be_bytes());
    for d in &e.dictionary {
        put_str(&mut h, d);
    }
    h.update((e.items.len() as u64).to_be_bytes());
    h.update(&e.items);
    match &e.digest {
        Some(d) => {
            h.update([1]);
            h.update(d);
        }
        None => h.update([0]),
    }
    if let Some(n) = &e.names {
        h.update(n);
    }
    h.update(e.prev_hash);
    h.finalize().into()
}

/// SHA-256 over the names of the version rows `vids` (sorted, without repeats, as
/// [`TransferEntry::vids`] gives them): the tag `concord-audit-names-v1\n`, then for each vid
/// its 8 bytes big-endian and, when `name_of` knows it, the object id and `modified` (absent:
/// `0xff…ff` as length) each as an 8-byte length and its bytes, else (a decoy's vid 0, a row
/// gone without a kept name) `0xff…ff`. `modified` and not the version text: an SCO's
/// version text is its first `date_added`, which changes when that collection entry goes.
pub fn names_digest<'a>(
    vids: &[i64],
    name_of: impl Fn(i64) -> Option<(&'a str, Option<&'a str>)>,
) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update(b"concord-audit-names-v1\n");
    for &vid in vids {
        h.update(vid.to_be_bytes());
        match name_of(vid) {
            Some((id, modified)) => {
                put_str(&mut h, id);
                match modified {
                    Some(m) => put_str(&mut h, m),
                    None => h.update(u64::MAX.to_be_bytes()),
                }
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    h.finalize().into()
}

/// The distinct vids of the `entries` that record a names digest, sorted.
pub fn named_vids(entries: &[TransferEntry]) -> Vec<i64> {
    let mut vids: Vec<i64> = entries
        .iter()
        .filter(|e| e.names.is_some())
        .flat_map(|e| e.vids())
        .collect();
    vids.sort_unstable();
    vids.dedup();
    vids
}

/// The first of `entries` (those with `names`) whose recorded names digest is not the one
/// `names` (the store's names of their version rows) gives: its seq and its first vid (the
/// digest does not tell which row changed); `None` when all agree.
pub fn renamed(entries: &[TransferEntry], names: &[crate::VersionName]) -> Option<(i64, i64)> {
    // One map for every entry (a page of entries shares its names). A vid named twice (a
    // held row and a kept name, or two kept names) is a name added outside the store's own
    // writes: a kept name is written only once its row is gone.
    let mut by_vid = std::collections::HashMap::with_capacity(names.len());
    let mut twice = std::collections::HashSet::new();
    for n in names {
        if by_vid.insert(n.vid, n).is_some() {
            twice.insert(n.vid);
        }
    }
    entries.iter().find_map(|e| {
        let recorded = e.names?;
        let vids = e.vids();
        if let Some(v) = vids.iter().find(|v| twice.contains(v)) {
            return Some((e.seq, *v));
        }
        let digest = names_digest(&vids, |vid| {
            by_vid
                .get(&vid)
                .map(|n: &&crate::VersionName| (n.object_id.as_str(), n.modified.as_deref()))
        });
        (digest != recorded).then(|| (e.seq, vids.first().copied().unwrap_or(0)))
    })
}

/// A transfer about to be appended (what the backends insert; `seq`, time and hashes are set
/// by [`chain_transfers`]).
pub(crate) struct PendingTransfer {
    pub(crate) entry: TransferEntry,
    /// The distinct vids of its items, sorted (the posting index).
    pub(crate) vids: Vec<i64>,
}

/// Groups records into transfers: one per run of records with the same direction, door,
/// partner, collection and policy version (one call of a door is one run). `digest` goes to
/// each.
pub(crate) fn group_records(records: &[AuditRecord], digest: Option<Hash>) -> Vec<PendingTransfer> {
    let mut out: Vec<PendingTransfer> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut dict: Vec<String> = Vec::new();
    let same = |a: &AuditRecord, b: &TransferEntry| {
        a.direction == b.direction
            && a.door == b.door
            && a.partner == b.partner
            && a.person == b.person
            && a.collection == b.collection
            && a.policy_version == b.policy_version
    };
    fn close(out: &mut [PendingTransfer], items: &mut Vec<Item>, dict: &mut Vec<String>) {
        if let Some(last) = out.last_mut() {
            last.entry.items = encode_items(items);
            last.entry.count = items.len() as i64;
            last.entry.dictionary = std::mem::take(dict);
            let mut vids: Vec<i64> = items.iter().map(|i| i.vid).collect();
            vids.sort_unstable();
            vids.dedup();
            last.vids = vids;
            items.clear();
        }
    }
    for r in records {
        if !out.last().is_some_and(|p| same(r, &p.entry)) {
            close(&mut out, &mut items, &mut dict);
            out.push(PendingTransfer {
                entry: TransferEntry {
                    seq: 0,
                    time_ns: 0,
                    direction: r.direction.clone(),
                    door: r.door.clone(),
                    partner: r.partner.clone(),
                    person: r.person.clone(),
                    collection: r.collection.clone(),
                    policy_version: r.policy_version.clone(),
                    count: 0,
                    dictionary: Vec::new(),
                    items: Vec::new(),
                    digest,
                    names: None,
                    prev_hash: GENESIS,
                    hash: GENESIS,
                },
                vids: Vec::new(),
            });
        }
        let decision = Decision::parse(&r.decision).unwrap_or(Decision::Withheld);
        let mut transformations = Vec::with_capacity(r.transformations.len());
        for t in &r.transformations {
            let t = without_values(t);
            let i = match dict.iter().position(|d| *d == t) {
                Some(i) => i,
                None => {
                    dict.push(t);
                    dict.len() - 1
                }
            };
            transformations.push(i as u32);
        }
        items.push(Item {
            vid: r.vid,
            decision,
            transformations,
        });
    }
    close(&mut out, &mut items, &mut dict);
    out
}

/// The distinct vids of `pending`'s items, sorted: the version rows whose names
/// [`name_transfers`] needs.
pub(crate) fn pending_vids(pending: &[PendingTransfer]) -> Vec<i64> {
    let mut vids: Vec<i64> = pending
        .iter()
        .flat_map(|p| p.vids.iter().copied())
        .collect();
    vids.sort_unstable();
    vids.dedup();
    vids
}

/// Names of version rows: vid → (object id, `modified` as stored, `None` for a version
/// without one). What a backend holds ([`crate::Store::audit_names`]'s source), or what a
/// caller read with the rows it sent ([`crate::Store::append_named_transfer`]).
pub type RowNames = std::collections::HashMap<i64, (String, Option<String>)>;

/// The names a backend holds for version rows.
pub(crate) type NameKeys = RowNames;

/// The vids of `pending` that `given` does not name: what a backend looks up.
pub(crate) fn unnamed_vids(pending: &[PendingTransfer], given: &RowNames) -> Vec<i64> {
    let mut vids = pending_vids(pending);
    vids.retain(|v| !given.contains_key(v));
    vids
}

/// Sets the names digest of each pending transfer ([`names_digest`] of its vids, named by
/// `given`, else by `held`), before [`chain_transfers`] hashes them.
pub(crate) fn name_transfers(pending: &mut [PendingTransfer], given: &RowNames, held: &NameKeys) {
    for p in pending {
        p.entry.names = Some(names_digest(&p.vids, |vid| {
            given
                .get(&vid)
                .or_else(|| held.get(&vid))
                .map(|(id, m)| (id.as_str(), m.as_deref()))
        }));
    }
}

/// Sets `seq`, `time_ns`, `prev_hash` and `hash` of transfers appended after `head`.
pub(crate) fn chain_transfers(head: (i64, Hash), time_ns: i64, pending: &mut [PendingTransfer]) {
    let (mut seq, mut prev) = head;
    for p in pending {
        seq += 1;
        p.entry.seq = seq;
        p.entry.time_ns = time_ns;
        p.entry.prev_hash = prev;
        p.entry.hash = transfer_hash(&p.entry);
        prev = p.entry.hash;
    }
}

/// The legacy log's head as the transfer chain continues it: its last seq, and its last
/// hash as bytes (a hex text that is not 32 bytes hashes to itself, so the link breaks).
pub(crate) fn legacy_head(seq: i64, hash_hex: &str) -> (i64, Hash) {
    let h = crate::node_key::unhex32(hash_hex)
        .unwrap_or_else(|| sha2::Sha256::digest(hash_hex.as_bytes()).into());
    (seq, h)
}

/// The version text of a version row: `modified` as written, else its first `date_added`
/// (microseconds, as [`crate::Entry::version`] says it), else `-`.
pub(crate) fn version_text(modified: Option<String>, first_added_ns: Option<i64>) -> String {
    modified.unwrap_or_else(|| {
        first_added_ns.map_or_else(
            || "-".to_owned(),
            |ns| crate::Timestamp::from_unix_nanos(ns, 6).to_string(),
        )
    })
}

/// Checks transfer entries in `seq` order after `previous` (the seq and hash of the entry
/// before, a boundary, the legacy head or `(0, GENESIS)`). Names the first bad entry as
/// [`verify_chain_after`] does.
pub fn verify_transfers_after(
    previous: (i64, Hash),
    entries: &[TransferEntry],
) -> Result<(), AuditError> {
    let (mut prev_seq, mut prev_hash) = previous;
    for e in entries {
        if e.prev_hash != prev_hash
            && let Some(other) = entries
                .iter()
                .find(|o| o.hash == e.prev_hash && !std::ptr::eq(*o, e))
        {
            return Err(AuditError::Reordered {
                seq: e.seq,
                links_to: other.seq,
                previous: prev_seq,
            });
        }
        if e.seq != prev_seq + 1 {
            return Err(AuditError::Deleted {
                seq: e.seq,
                detail: format!("expected seq {}, found {}", prev_seq + 1, e.seq),
            });
        }
        if e.prev_hash != prev_hash {
            return Err(AuditError::Broken {
                seq: e.seq,
                previous: prev_seq,
            });
        }
        if !e.hash_ok() || decode_items(&e.items).map(|i| i.len() as i64) != Some(e.count) {
            return Err(AuditError::Edited { seq: e.seq });
        }
        prev_seq = e.seq;
        prev_hash = e.hash;
    }
    Ok(())
}

/// A signed head of the log: the seq and hash of the last entry it covers, signed with the
/// node key, chained to the checkpoint before it (CloudTrail's digest files, RFC 9162's
/// signed tree head).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// 1, 2, 3… without gaps.
    pub no: i64,
    /// The last entry covered (a legacy seq before any transfer; 0 for an empty log).
    pub entry_seq: i64,
    /// Its hash (hex in JSON).
    #[serde(with = "hex32")]
    pub entry_hash: Hash,
    /// When it was signed, nanoseconds since the epoch.
    pub time_ns: i64,
    /// [`Checkpoint::hash`] of the checkpoint before, [`GENESIS`] for the first (hex).
    #[serde(with = "hex32")]
    pub prev: Hash,
    /// The public key that signed it (hex in JSON).
    #[serde(with = "hex32")]
    pub key: [u8; 32],
    /// Ed25519 signature of [`Checkpoint::message`] (hex in JSON).
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The signed text, one field a line, so that an auditor can check it with any Ed25519
    /// tool: `concord audit checkpoint v1`, `no`, `entry_seq`, `entry_hash` (hex),
    /// `time_ns`, `prev` (hex), `key` (hex), each followed by `\n`.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "concord audit checkpoint v1\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.no,
            self.entry_seq,
            hex(&self.entry_hash),
            self.time_ns,
            hex(&self.prev),
            hex(&self.key)
        )
        .into_bytes()
    }

    /// SHA-256 of the message and the signature: what the next checkpoint's `prev` is.
    pub fn hash(&self) -> Hash {
        let mut h = sha2::Sha256::new();
        h.update(self.message());
        h.update(self.signature);
        h.finalize().into()
    }

    /// A checkpoint of `head` after `previous`, signed with `key`.
    pub fn sign(
        previous: Option<&Checkpoint>,
        head: (i64, Hash),
        time_ns: i64,
        key: &NodeKey,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            no: previous.map_or(1, |p| p.no + 1),
            entry_seq: head.0,
            entry_hash: head.1,
            time_ns,
            prev: previous.map_or(GENESIS, Checkpoint::hash),
            key: key.public(),
            signature: [0; 64],
        };
        c.signature = key.sign(&c.message());
        c
    }

    /// Checks the signature, against `trusted` when given (else against the key the
    /// checkpoint names, which proves integrity but not origin), and the link to `previous`.
    pub fn check(
        &self,
        previous: Option<&Checkpoint>,
        trusted: Option<&[u8; 32]>,
    ) -> Result<(), AuditError> {
        if trusted.is_some_and(|t| *t != self.key)
            || !verify_signature(&self.key, &self.message(), &self.signature)
        {
            return Err(AuditError::Forged { no: self.no });
        }
        let want = previous.map_or((1, GENESIS), |p| (p.no + 1, p.hash()));
        if (self.no, self.prev) != want || previous.is_some_and(|p| self.entry_seq < p.entry_seq) {
            return Err(AuditError::CheckpointBroken { no: self.no });
        }
        Ok(())
    }
}

/// The part of the log moved to archives: the database keeps it to verify what follows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveBoundary {
    /// The last archived entry.
    pub through_seq: i64,
    /// Its hash (hex in JSON).
    #[serde(with = "hex32")]
    pub through_hash: Hash,
    /// The checkpoint that covers it (its `entry_seq` is `through_seq`).
    pub checkpoint_no: i64,
    /// When it was archived, nanoseconds since the epoch.
    pub time_ns: i64,
    /// The file it was written to, as the operator named it.
    pub file: String,
    /// The last row of the legacy (schema 3) per-object log when this archive carried that
    /// log (schema 24; it is then the first archive, and the legacy log went whole, rows
    /// `1..=legacy_through`); `None` otherwise (no legacy log, or archived before). The
    /// database lets legacy rows go only at or below a recorded `legacy_through`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_through: Option<i64>,
}

/// The setting prefix of the node key's word for an archive boundary: the setting
/// `audit.boundary_seal.{through_seq}` holds `{"sha256": …, "signature": …}` (hex), the
/// archive's seal digest and the Ed25519 signature of [`ArchiveBoundary::seal_message`],
/// written by [`write_archive`]. `verify` refuses a boundary without it
/// ([`AuditError::Unarchived`]): a boundary row alone, which anyone who can write the database
/// can add, does not vouch for the entries it lets go.
pub const BOUNDARY_SEAL_PREFIX: &str = "audit.boundary_seal.";

/// The record under [`BOUNDARY_SEAL_PREFIX`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct BoundarySeal {
    /// The archive file's seal digest (SHA-256 of its lines before the seal), hex.
    sha256: String,
    /// Ed25519 signature of [`ArchiveBoundary::seal_message`], hex.
    signature: String,
}

impl ArchiveBoundary {
    /// What the node key signs for this boundary: the tag `concord-audit-boundary-v1\n`,
    /// `through_seq`, `checkpoint_no` and `legacy_through` (-1: none) as 8 bytes big-endian,
    /// `through_hash`, the archive's seal digest `sealed`, then the file name's length (8
    /// bytes) and bytes. `time_ns` is left out.
    pub fn seal_message(&self, sealed: &Hash) -> Vec<u8> {
        let mut m = b"concord-audit-boundary-v1\n".to_vec();
        m.extend_from_slice(&self.through_seq.to_be_bytes());
        m.extend_from_slice(&self.checkpoint_no.to_be_bytes());
        m.extend_from_slice(&self.legacy_through.unwrap_or(-1).to_be_bytes());
        m.extend_from_slice(&self.through_hash);
        m.extend_from_slice(sealed);
        m.extend_from_slice(&(self.file.len() as u64).to_be_bytes());
        m.extend_from_slice(self.file.as_bytes());
        m
    }

    /// Whether the store holds the node key's (`key`) seal of this boundary
    /// ([`BOUNDARY_SEAL_PREFIX`]).
    pub fn sealed_by(&self, store: &dyn crate::Store, key: &[u8; 32]) -> crate::Result<bool> {
        let Some(text) = store.setting(&format!("{BOUNDARY_SEAL_PREFIX}{}", self.through_seq))?
        else {
            return Ok(false);
        };
        let Ok(seal) = serde_json::from_str::<BoundarySeal>(&text) else {
            return Ok(false);
        };
        let (Some(digest), Some(sig)) = (
            crate::node_key::unhex32(&seal.sha256),
            crate::node_key::unhex64(&seal.signature),
        ) else {
            return Ok(false);
        };
        Ok(crate::node_key::verify_signature(
            key,
            &self.seal_message(&digest),
            &sig,
        ))
    }
}

/// What [`crate::Store::archive_audit`] checks before it removes anything, on both backends:
/// `b` grows the boundary `old`; the entry at `b.through_seq` has `b.through_hash`
/// (`entry_hash`: the hash of the transfer entry at that seq, if any; at the legacy log's
/// last row, the [`legacy_head`] of that row); and the legacy log `legacy` (its last seq and
/// hash, when rows are held) goes whole with the first archive, or not at all once an earlier
/// archive left it (nodes that archived before schema 24 keep it).
///
/// Errors: [`crate::StoreError::Corrupt`] naming the rule broken.
pub(crate) fn check_boundary(
    b: &ArchiveBoundary,
    old: Option<&ArchiveBoundary>,
    entry_hash: Option<Hash>,
    legacy: Option<(i64, &str)>,
) -> crate::Result<()> {
    let corrupt = |m: String| Err(crate::StoreError::Corrupt(format!("archive boundary: {m}")));
    if old.is_some_and(|o| o.through_seq >= b.through_seq) {
        return corrupt("entries up to it are already archived".to_owned());
    }
    let legacy_last = legacy.map(|(seq, _)| seq);
    match (b.legacy_through, legacy_last) {
        (Some(l), Some(last)) if l == last && old.is_none() => {
            if b.through_seq < l {
                return corrupt(format!(
                    "entry {} lies inside the legacy per-object log (entries 1..={l}), which \
                     goes whole",
                    b.through_seq
                ));
            }
        }
        (Some(l), _) => {
            return corrupt(format!(
                "legacy_through {l} is not the last row of a legacy log held before any archive \
                 (held: {})",
                legacy_last.map_or_else(|| "none".to_owned(), |x| format!("1..={x}"))
            ));
        }
        (None, Some(last)) if old.is_none() => {
            return corrupt(format!(
                "the legacy per-object log (entries 1..={last}) precedes entry {}: the first \
                 archive must carry it (legacy_through {last})",
                b.through_seq
            ));
        }
        (None, _) => {}
    }
    let at = match legacy {
        Some((seq, hash)) if b.legacy_through == Some(seq) && b.through_seq == seq => {
            Some(legacy_head(seq, hash).1)
        }
        _ => entry_hash,
    };
    if at != Some(b.through_hash) {
        return corrupt(format!(
            "entry {} is not in the log with the archived hash",
            b.through_seq
        ));
    }
    Ok(())
}

/// How a chain, a checkpoint or an archive is broken: the first bad entry and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The entry's fields no longer give its hash.
    #[error("entry {seq} was edited: its fields do not hash to its stored hash")]
    Edited {
        /// The entry.
        seq: i64,
    },
    /// Entries are missing before this one (a gap in the sequence, or the chain does not
    /// start at 1 with the genesis hash).
    #[error("entries before {seq} were deleted: {detail}")]
    Deleted {
        /// The first entry after the missing ones.
        seq: i64,
        /// What shows it.
        detail: String,
    },
    /// The entry links to an entry that is not the one before it, but that is in the log:
    /// entries were moved.
    #[error(
        "entry {seq} was reordered: its prev_hash is the hash of entry {links_to}, not of entry {previous}"
    )]
    Reordered {
        /// The entry.
        seq: i64,
        /// The entry its `prev_hash` names.
        links_to: i64,
        /// The entry before it in the log.
        previous: i64,
    },
    /// The entry does not link to the one before it, nor to any entry in the log.
    #[error(
        "entry {seq} does not follow entry {previous}: prev_hash mismatch (an entry was deleted, or edited and rehashed)"
    )]
    Broken {
        /// The entry.
        seq: i64,
        /// The entry before it in the log.
        previous: i64,
    },
    /// A checkpoint's signature is not the node key's.
    #[error("checkpoint {no} is forged: its signature is not the node key's")]
    Forged {
        /// The checkpoint.
        no: i64,
    },
    /// A checkpoint does not follow the one before it.
    #[error(
        "checkpoint {no} does not follow the checkpoint before it (deleted, reordered or replaced)"
    )]
    CheckpointBroken {
        /// The checkpoint.
        no: i64,
    },
    /// The entry a checkpoint covers does not have the hash the checkpoint signed: entries
    /// up to it were rewritten (and rehashed) after the checkpoint.
    #[error("entry {seq} is not the entry checkpoint {no} signed: the log up to it was rewritten")]
    Rewritten {
        /// The entry.
        seq: i64,
        /// The checkpoint.
        no: i64,
    },
    /// The newest entries covered by a checkpoint are missing.
    #[error("entries up to {seq} were deleted: checkpoint {no} covers them")]
    Truncated {
        /// The last entry the checkpoint covers.
        seq: i64,
        /// The checkpoint.
        no: i64,
    },
    /// The posting index lacks an entry's version row: postings were deleted, so `audit
    /// show --object` would not find the entry (the entry itself is intact).
    #[error(
        "entry {seq} is missing from the posting index (version row {vid}): `audit show --object` would not find it"
    )]
    Unindexed {
        /// The entry.
        seq: i64,
        /// The version row its items name and the index lacks.
        vid: i64,
    },
    /// The names of an entry's version rows (object id, `modified`) are not the ones the
    /// entry recorded: a row of `object_versions` or `audit_version_names` was edited, so
    /// `audit show` would name another object or version (the entry itself is intact).
    #[error(
        "entry {seq} names version rows that were renamed since it was appended (among them version row {vid}'s object id or modified): `audit show` would name other objects or versions"
    )]
    Renamed {
        /// The entry.
        seq: i64,
        /// A version row it names (the first; the digest does not tell which one changed).
        vid: i64,
    },
    /// The database's archive boundary (entries up to `seq` gone from it) is not one an
    /// archive sealed with the node key vouches for: no [`BOUNDARY_SEAL_PREFIX`] record
    /// signed by the key of the checkpoint it names. Whoever can write the database can add
    /// a boundary row at any signed checkpoint and then delete every entry (and legacy row)
    /// up to it; without this check `verify` took that as an archive.
    #[error(
        "entries up to {seq} were removed without an archive: the boundary naming {file:?} is not sealed by the node key"
    )]
    Unarchived {
        /// The boundary's last entry.
        seq: i64,
        /// The file the boundary names.
        file: String,
    },
    /// An archive file is not what was sealed.
    #[error("archive: {0}")]
    Archive(String),
}

impl AuditError {
    /// The first bad entry (for a checkpoint: the entry it covers; 0 when unknown).
    pub fn seq(&self) -> i64 {
        match self {
            AuditError::Edited { seq }
            | AuditError::Deleted { seq, .. }
            | AuditError::Reordered { seq, .. }
            | AuditError::Broken { seq, .. }
            | AuditError::Rewritten { seq, .. }
            | AuditError::Truncated { seq, .. }
            | AuditError::Unindexed { seq, .. }
            | AuditError::Renamed { seq, .. }
            | AuditError::Unarchived { seq, .. } => *seq,
            AuditError::Forged { .. }
            | AuditError::CheckpointBroken { .. }
            | AuditError::Archive(_) => 0,
        }
    }

    /// One word: `edited`, `deleted`, `reordered`, `broken`, `forged`, `checkpoint-broken`,
    /// `rewritten`, `truncated`, `unindexed`, `renamed`, `unarchived`, `archive`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditError::Edited { .. } => "edited",
            AuditError::Deleted { .. } => "deleted",
            AuditError::Reordered { .. } => "reordered",
            AuditError::Broken { .. } => "broken",
            AuditError::Forged { .. } => "forged",
            AuditError::CheckpointBroken { .. } => "checkpoint-broken",
            AuditError::Rewritten { .. } => "rewritten",
            AuditError::Truncated { .. } => "truncated",
            AuditError::Unindexed { .. } => "unindexed",
            AuditError::Renamed { .. } => "renamed",
            AuditError::Unarchived { .. } => "unarchived",
            AuditError::Archive(_) => "archive",
        }
    }
}

/// The setting that records the last checkpoint `verify_log` verified (its `no`).
pub const VERIFIED_SETTING: &str = "audit.verified_checkpoint";

/// The setting that records the [`Checkpoint::hash`] (hex) of the checkpoint
/// [`VERIFIED_SETTING`] names. With the SQLite store's log in a file of its own, the two are
/// an anchor in the main file that the log's file cannot roll back: every verify, `--full`
/// too, requires that checkpoint, the same one, still in the log (a log file put back to an
/// older copy of itself, or replaced by a new one with the same id, lacks it or holds
/// another checkpoint under its number).
pub const VERIFIED_HASH_SETTING: &str = "audit.verified_checkpoint_hash";

/// The setting that records the newest checkpoint this node signed (`NO:HASH`, its
/// [`Checkpoint::hash`] in hex), written by [`checkpoint`] after the checkpoint: the same
/// kind of anchor as [`VERIFIED_SETTING`], there even when no one has run `verify` yet.
pub const SIGNED_SETTING: &str = "audit.signed_checkpoint";

/// The checkpoints the settings name as anchors, `(no, hash)`: each must still be in the log
/// with that hash (`None`: a setting written before hashes were recorded).
fn anchors(store: &dyn crate::Store) -> crate::Result<Vec<(i64, Option<String>)>> {
    let mut out = Vec::new();
    if let Some(no) = store
        .setting(VERIFIED_SETTING)?
        .and_then(|v| v.parse().ok())
    {
        out.push((no, store.setting(VERIFIED_HASH_SETTING)?));
    }
    if let Some(v) = store.setting(SIGNED_SETTING)?
        && let Some((no, hash)) = v.split_once(':')
        && let Ok(no) = no.parse()
    {
        out.push((no, Some(hash.to_owned())));
    }
    Ok(out)
}

/// What [`verify_log`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Whether everything was checked (else: from the last verified checkpoint).
    pub full: bool,
    /// The checkpoint an incremental verification started from.
    pub from_checkpoint: Option<i64>,
    /// Legacy (per-object) rows checked.
    pub legacy_entries: u64,
    /// Transfer entries checked.
    pub entries: u64,
    /// Checkpoints whose signature and link were checked.
    pub checkpoints: u64,
    /// The newest entry checked (seq).
    pub head_seq: i64,
    /// Its hash, hex.
    pub head_hash: String,
    /// The newest checkpoint (now recorded as verified when intact).
    pub last_checkpoint: Option<i64>,
    /// The last archived entry, when a prefix was archived.
    pub archived_through: Option<i64>,
    /// The first problem found; `None`: intact.
    #[serde(skip)]
    pub error: Option<AuditError>,
}

/// Entries and checkpoints read at once.
const VERIFY_PAGE: usize = 10_000;

/// Verifies the log of `store`. Incremental unless `full`: from the checkpoint recorded in
/// [`VERIFIED_SETTING`] (its signature checked again), only newer checkpoints (signature,
/// link, the entry each covers) and newer entries are read, so the work is proportional to
/// what is new. `full`: the legacy log, the archive boundary (covered by a checkpoint), every
/// checkpoint and every entry. `trusted`: the node's public key (checkpoints signed by
/// another key are forged); `None` accepts the key each checkpoint names (integrity, not
/// origin). When intact, the newest checkpoint is recorded as verified.
///
/// Errors: only the store's; a tampered log is a report with `error` set.
pub fn verify_log(
    store: &dyn crate::Store,
    trusted: Option<&[u8; 32]>,
    full: bool,
) -> crate::Result<VerifyReport> {
    let mut report = VerifyReport {
        full,
        ..VerifyReport::default()
    };
    let result = verify_into(store, trusted, full, &mut report)?;
    match result {
        Err(e) => report.error = Some(e),
        Ok(()) => {
            if let Some(no) = report.last_checkpoint {
                let hash = store
                    .audit_checkpoints(no - 1, 1)?
                    .into_iter()
                    .next()
                    .filter(|c| c.no == no)
                    .map(|c| hex(&c.hash()));
                store.set_setting(VERIFIED_SETTING, &no.to_string())?;
                if let Some(hash) = hash {
                    store.set_setting(VERIFIED_HASH_SETTING, &hash)?;
                }
                store.set_setting(CHECKPOINT_CHAIN_SETTING, &no.to_string())?;
            }
        }
    }
    Ok(report)
}

fn verify_into(
    store: &dyn crate::Store,
    trusted: Option<&[u8; 32]>,
    full: bool,
    report: &mut VerifyReport,
) -> crate::Result<Result<(), AuditError>> {
    let boundary = store.audit_boundary()?;
    report.archived_through = boundary.as_ref().map(|b| b.through_seq);
    let verified: Option<i64> = if full {
        None
    } else {
        store
            .setting(VERIFIED_SETTING)?
            .and_then(|v| v.parse().ok())
    };
    // Checkpoints: from the verified one (its signature again), else from the first.
    let mut previous: Option<Checkpoint> = None;
    let mut after_no = 0;
    if let Some(no) = verified {
        let Some(c) = store.audit_checkpoints(no - 1, 1)?.into_iter().next() else {
            return Ok(Err(AuditError::CheckpointBroken { no }));
        };
        if c.no != no {
            return Ok(Err(AuditError::CheckpointBroken { no }));
        }
        if let Err(e) = c.check_signature(trusted) {
            return Ok(Err(e));
        }
        report.checkpoints += 1;
        report.from_checkpoint = Some(no);
        after_no = no;
        previous = Some(c);
    }
    let mut pending: std::collections::BTreeMap<i64, (i64, Hash)> = Default::default();
    loop {
        let page = store.audit_checkpoints(after_no, VERIFY_PAGE)?;
        let Some(last) = page.last() else { break };
        after_no = last.no;
        for c in page {
            if let Err(e) = c.check(previous.as_ref(), trusted) {
                return Ok(Err(e));
            }
            report.checkpoints += 1;
            if c.entry_seq > 0 {
                pending.insert(c.entry_seq, (c.no, c.entry_hash));
            }
            previous = Some(c);
        }
    }
    report.last_checkpoint = previous.as_ref().map(|c| c.no);
    // Where the entries start: after the verified checkpoint, else the boundary, else the
    // legacy log (verified here) and its head.
    let start_from_checkpoint = match (&verified, report.from_checkpoint) {
        (Some(_), Some(_)) => {
            let c = store
                .audit_checkpoints(report.from_checkpoint.unwrap_or(1) - 1, 1)?
                .into_iter()
                .next();
            c.map(|c| (c.entry_seq, c.entry_hash))
        }
        _ => None,
    };
    let mut prev: (i64, Hash) = (0, GENESIS);
    let first_transfer = store
        .audit_entries(&crate::AuditQuery {
            limit: 1,
            ..Default::default()
        })?
        .first()
        .map(|e| e.seq);
    let legacy_needed = match start_from_checkpoint {
        Some((seq, hash)) => {
            prev = (seq, hash);
            // A checkpoint made before the first transfer may cover only part of the legacy
            // log: the (bounded, read-only) legacy log is then checked whole.
            let inside_legacy = match first_transfer {
                Some(f) => seq + 1 < f,
                None => seq < store.audit_head()?.0,
            };
            inside_legacy && boundary.is_none()
        }
        None => boundary.is_none(),
    };
    if legacy_needed {
        prev = (0, GENESIS);
    }
    if let Some(b) = &boundary {
        // The archived prefix: its last hash is signed by the checkpoint the boundary names,
        // and the archive that took it is sealed by the same key. Checked by every verify
        // (a boundary row can be added, and the entries behind it deleted, after the last
        // verified checkpoint).
        let covering = store
            .audit_checkpoints(b.checkpoint_no - 1, 1)?
            .into_iter()
            .next()
            .filter(|c| c.no == b.checkpoint_no);
        match covering {
            Some(c) if c.entry_seq == b.through_seq && c.entry_hash == b.through_hash => {
                if let Err(e) = c.check_signature(trusted) {
                    return Ok(Err(e));
                }
                // A boundary row alone vouches for nothing: the archive that took the
                // entries must have been sealed by the node key.
                if !b.sealed_by(store, &c.key)? {
                    return Ok(Err(AuditError::Unarchived {
                        seq: b.through_seq,
                        file: b.file.clone(),
                    }));
                }
            }
            _ => {
                return Ok(Err(AuditError::Rewritten {
                    seq: b.through_seq,
                    no: b.checkpoint_no,
                }));
            }
        }
        if prev.0 < b.through_seq {
            prev = (b.through_seq, b.through_hash);
        }
    }
    // Legacy rows still held after a boundary (an archive written before schema 24 left
    // them): `audit show` reads them, so a full verify checks their own chain too.
    let legacy_held =
        verified.is_none() && boundary.is_some() && !store.audit(0, 1, None)?.is_empty();
    if legacy_needed || legacy_held {
        let mut last: Option<AuditEntry> = None;
        loop {
            let after = last.as_ref().map_or(0, |e| e.seq);
            let page = store.audit(after, VERIFY_PAGE, None)?;
            if page.is_empty() {
                break;
            }
            if let Err(e) = verify_chain_after(last.as_ref(), &page) {
                return Ok(Err(e));
            }
            for e in &page {
                report.legacy_entries += 1;
                if let Some((no, h)) = pending.remove(&e.seq)
                    && legacy_head(e.seq, &e.hash).1 != h
                {
                    return Ok(Err(AuditError::Rewritten { seq: e.seq, no }));
                }
            }
            last = page.into_iter().last();
        }
        if let Some(l) = last
            && legacy_needed
        {
            prev = legacy_head(l.seq, &l.hash);
        }
    }
    // Checkpoints that cover entries before the start were checked before (or archived).
    pending = pending.split_off(&(prev.0 + 1));
    let mut after = prev.0;
    loop {
        let page = store.audit_entries(&crate::AuditQuery {
            after_seq: after,
            limit: VERIFY_PAGE,
            ..Default::default()
        })?;
        if page.is_empty() {
            break;
        }
        if let Err(e) = verify_transfers_after(prev, &page) {
            return Ok(Err(e));
        }
        // The posting index is derived, outside the chain: each verified entry must be
        // findable by `audit show --object` (deleted postings would hide it).
        if let Some((seq, vid)) = store.audit_unindexed(&page)? {
            return Ok(Err(AuditError::Unindexed { seq, vid }));
        }
        // So are the names of the version rows: each entry binds them by its names digest.
        if let Some((seq, vid)) = renamed(&page, &store.audit_names(&named_vids(&page))?) {
            return Ok(Err(AuditError::Renamed { seq, vid }));
        }
        for e in &page {
            if let Some((no, h)) = pending.remove(&e.seq)
                && h != e.hash
            {
                return Ok(Err(AuditError::Rewritten { seq: e.seq, no }));
            }
        }
        report.entries += page.len() as u64;
        let last = &page[page.len() - 1];
        prev = (last.seq, last.hash);
        after = last.seq;
    }
    if let Some((&seq, &(no, _))) = pending.iter().next() {
        return Ok(Err(AuditError::Truncated { seq, no }));
    }
    // The checkpoints verified or signed before (anchors, kept in the settings: with the
    // SQLite log in a file of its own, outside the log): every verify, a full one too,
    // requires them, the same ones, so that it never passes (and records as verified) a log
    // that lost checkpoints the node had signed or verified. Checked last: a log edited in
    // place is named by what is wrong with it first.
    for (no, hash) in anchors(store)? {
        let held = store
            .audit_checkpoints(no - 1, 1)?
            .into_iter()
            .next()
            .filter(|c| c.no == no);
        match held {
            Some(c) if hash.as_deref().is_none_or(|h| h == hex(&c.hash())) => {}
            _ => return Ok(Err(AuditError::CheckpointBroken { no })),
        }
    }
    report.head_seq = prev.0;
    report.head_hash = hex(&prev.1);
    Ok(Ok(()))
}

/// The setting that records the newest checkpoint whose signature and link were checked
/// (its `no`), by [`verify_shown`] or [`verify_log`]: where the next [`verify_shown`]
/// starts.
pub const CHECKPOINT_CHAIN_SETTING: &str = "audit.verified_checkpoint_chain";

/// What a reader of a few entries checks (the web UI's audit page): the checkpoint chain
/// from the newest checkpoint checked before (by this or by [`verify_log`]; its signature
/// checked again), so only checkpoints added since are read; the checkpoints that signed a
/// shown entry (signature, and the hash they signed); and the `shown` entries themselves —
/// each one's fields against its hash and its link to the entry after it. Returns the number
/// of checkpoints checked. Work: the new checkpoints plus a few look-ups per entry shown,
/// not the log. `concord audit verify` checks the rest.
pub fn verify_shown(
    store: &dyn crate::Store,
    shown: &[TransferEntry],
    trusted: Option<&[u8; 32]>,
) -> crate::Result<Result<u64, AuditError>> {
    let setting = |key: &str| -> crate::Result<Option<i64>> {
        Ok(store.setting(key)?.and_then(|v| v.parse().ok()))
    };
    let from = setting(CHECKPOINT_CHAIN_SETTING)?.max(setting(VERIFIED_SETTING)?);
    let mut previous: Option<Checkpoint> = None;
    let mut n = 0u64;
    let mut after_no = 0;
    if let Some(no) = from {
        let Some(c) = store
            .audit_checkpoints(no - 1, 1)?
            .into_iter()
            .next()
            .filter(|c| c.no == no)
        else {
            return Ok(Err(AuditError::CheckpointBroken { no }));
        };
        if let Err(e) = c.check_signature(trusted) {
            return Ok(Err(e));
        }
        n += 1;
        after_no = no;
        previous = Some(c);
    }
    loop {
        let page = store.audit_checkpoints(after_no, VERIFY_PAGE)?;
        let Some(last) = page.last() else { break };
        after_no = last.no;
        for c in page {
            if let Err(e) = c.check(previous.as_ref(), trusted) {
                return Ok(Err(e));
            }
            n += 1;
            previous = Some(c);
        }
    }
    let mut signed: std::collections::HashMap<i64, (i64, Hash)> = Default::default();
    if let (Some(lo), Some(hi)) = (
        shown.iter().map(|e| e.seq).min(),
        shown.iter().map(|e| e.seq).max(),
    ) {
        for c in store.audit_checkpoints_covering(lo, hi)? {
            if let Err(e) = c.check_signature(trusted) {
                return Ok(Err(e));
            }
            n += 1;
            signed.insert(c.entry_seq, (c.no, c.entry_hash));
        }
    }
    for e in shown {
        if !e.hash_ok() {
            return Ok(Err(AuditError::Edited { seq: e.seq }));
        }
        if let Some((no, h)) = signed.get(&e.seq)
            && *h != e.hash
        {
            return Ok(Err(AuditError::Rewritten {
                seq: e.seq,
                no: *no,
            }));
        }
        let next = store.audit_entries(&crate::AuditQuery {
            after_seq: e.seq,
            limit: 1,
            ..Default::default()
        })?;
        if let Some(next) = next.first() {
            if next.seq != e.seq + 1 {
                return Ok(Err(AuditError::Deleted {
                    seq: next.seq,
                    detail: format!("expected seq {}, found {}", e.seq + 1, next.seq),
                }));
            }
            if next.prev_hash != e.hash {
                return Ok(Err(AuditError::Broken {
                    seq: next.seq,
                    previous: e.seq,
                }));
            }
        }
    }
    if let Some((seq, vid)) = renamed(shown, &store.audit_names(&named_vids(shown))?) {
        return Ok(Err(AuditError::Renamed { seq, vid }));
    }
    if let Some(c) = previous
        && from != Some(c.no)
    {
        store.set_setting(CHECKPOINT_CHAIN_SETTING, &c.no.to_string())?;
    }
    Ok(Ok(n))
}

impl Checkpoint {
    /// Checks only the signature (against `trusted` when given).
    pub fn check_signature(&self, trusted: Option<&[u8; 32]>) -> Result<(), AuditError> {
        if trusted.is_some_and(|t| *t != self.key)
            || !verify_signature(&self.key, &self.message(), &self.signature)
        {
            return Err(AuditError::Forged { no: self.no });
        }
        Ok(())
    }
}

/// Writes a checkpoint of the current head, signed with `key`, unless the newest checkpoint
/// already covers it; returns the newest checkpoint.
pub fn checkpoint(
    store: &dyn crate::Store,
    key: &NodeKey,
    time_ns: i64,
) -> crate::Result<Checkpoint> {
    if let Some(last) = store.last_audit_checkpoint()?
        && store.audit_head()?.0 == last.entry_seq
    {
        return Ok(last);
    }
    let c = store.add_audit_checkpoint(&mut |previous, head| {
        Checkpoint::sign(previous, head, time_ns, key)
    })?;
    store.set_setting(SIGNED_SETTING, &format!("{}:{}", c.no, hex(&c.hash())))?;
    Ok(c)
}

/// Writes a checkpoint when `every` or more entries follow the newest one: what `serve`
/// does now and then. Returns the new checkpoint, if one was written.
pub fn checkpoint_if_due(
    store: &dyn crate::Store,
    key: &NodeKey,
    every: i64,
    time_ns: i64,
) -> crate::Result<Option<Checkpoint>> {
    let last = store.last_audit_checkpoint()?.map_or(0, |c| c.entry_seq);
    if store.audit_head()?.0 - last < every.max(1) {
        return Ok(None);
    }
    checkpoint(store, key, time_ns).map(Some)
}

/// The format of an archive of transfer entries only (what every archive was before schema
/// 24, and what an archive without a legacy log still is, byte for byte).
pub const ARCHIVE_V1: &str = "concord-audit-archive-v1";
/// The format of an archive that carries the legacy (schema 3) per-object log: the header
/// names `legacy_through`, then come [`ArchiveLine::Legacy`] lines `1..=legacy_through`,
/// then the transfer entries, checkpoints, names and the seal as in v1.
pub const ARCHIVE_V2: &str = "concord-audit-archive-v2";

/// One line of an archive file (JSON lines; see [`write_archive`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveLine {
    /// The first line.
    Header {
        /// [`ARCHIVE_V1`] (transfer entries only), or [`ARCHIVE_V2`] (the legacy log's rows
        /// first, then the transfer entries).
        format: String,
        /// The first entry's seq (1 in v2: the legacy log's first row).
        from_seq: i64,
        /// The last entry's seq.
        through_seq: i64,
        /// The hash the first entry links to (the previous archive's last hash, the legacy
        /// head or the genesis), hex. In v2 the genesis, which the first legacy row links to.
        prev_hash: String,
        /// The node's public key, hex.
        public_key: String,
        /// v2 only: the legacy log's last row (its rows are `1..=legacy_through`; the first
        /// transfer entry links to its head: its last hash as 32 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        legacy_through: Option<i64>,
    },
    /// v2 only: a row of the legacy (schema 3) per-object log, in `seq` order, before the
    /// first entry; checked by its own chain ([`entry_hash`]).
    Legacy(AuditEntry),
    /// An entry, in order.
    Entry(TransferEntry),
    /// A checkpoint covering an entry of the segment; the last one covers `through_seq`.
    Checkpoint(Checkpoint),
    /// The name of a version row the entries refer to.
    Name(crate::VersionName),
    /// The last line: the node key's Ed25519 signature (hex) of the SHA-256 of every byte
    /// before this line.
    Seal {
        /// SHA-256 of the bytes before this line, hex.
        sha256: String,
        /// Signature of those 32 bytes, hex.
        signature: String,
    },
}

/// What an archive holds (from [`write_archive`] and [`verify_archive`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveSummary {
    /// The first entry's seq.
    pub from_seq: i64,
    /// The last entry's seq.
    pub through_seq: i64,
    /// Transfer entries.
    pub entries: u64,
    /// Rows of the legacy (schema 3) per-object log (`1..=legacy_entries`, before the
    /// transfer entries); 0, and left out of JSON, when the archive carries none.
    #[serde(skip_serializing_if = "is_zero")]
    pub legacy_entries: u64,
    /// Object versions in them (a legacy row is one).
    pub objects: u64,
    /// The closing checkpoint.
    pub checkpoint_no: i64,
    /// The last entry's hash, hex: where the database's chain continues.
    pub through_hash: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Writes the segment of entries after the archive boundary up to `cut` (its `entry_seq`;
/// the checkpoint is the segment's last) as a sealed archive on `out`, and returns the
/// boundary to record with [`crate::Store::archive_audit`] (which removes the entries) and a
/// summary. Nothing is removed here.
///
/// When nothing was archived yet and the legacy (schema 3) per-object log holds rows, the
/// segment starts with that log, whole ([`ARCHIVE_V2`]): its rows (checked by their own
/// chain), then the transfer entries (the first links to the legacy head), up to `cut`,
/// which may be the legacy log's last row itself (a checkpoint signed before any transfer).
/// Otherwise the file is [`ARCHIVE_V1`], as before schema 24.
///
/// Errors: the store's; [`crate::StoreError::ArchiveRefused`] when `cut` covers only part
/// of the legacy log (a checkpoint inside it: the legacy log goes whole, so the cut must be
/// at its last row or later); [`crate::StoreError::Corrupt`] when the entries read do not form
/// the chain `cut` signs (verify before archiving) or `out` fails.
pub fn write_archive(
    store: &dyn crate::Store,
    key: &NodeKey,
    cut: &Checkpoint,
    file: &str,
    time_ns: i64,
    out: &mut dyn std::io::Write,
) -> crate::Result<(ArchiveBoundary, ArchiveSummary)> {
    let corrupt = |m: String| crate::StoreError::Corrupt(m);
    let boundary = store.audit_boundary()?;
    let after = boundary.as_ref().map_or(0, |b| b.through_seq);
    let first = store
        .audit_entries(&crate::AuditQuery {
            after_seq: after,
            limit: 1,
            ..Default::default()
        })?
        .into_iter()
        .next();
    // The legacy log goes with the first archive only (after one, it is either gone or was
    // left by an archive written before schema 24).
    let legacy_through = match boundary {
        Some(_) => None,
        None if store.audit(0, 1, None)?.is_empty() => None,
        None => Some(match &first {
            Some(f) => f.seq - 1,
            None => store.audit_head()?.0,
        }),
    };
    if let Some(l) = legacy_through
        && cut.entry_seq < l
    {
        return Err(crate::StoreError::ArchiveRefused(format!(
            "checkpoint {} covers entry {}, inside the legacy per-object log (entries 1..={l}): \
             the legacy log is archived whole, so the archive must end at a checkpoint of entry \
             {l} or later (sign one with `concord audit checkpoint` once every entry up to it is \
             old enough)",
            cut.no, cut.entry_seq
        )));
    }
    let first = first.filter(|e| e.seq <= cut.entry_seq);
    let (from_seq, start_hash) = match (legacy_through, &first) {
        (Some(_), _) => (1, GENESIS),
        (None, Some(f)) => (f.seq, f.prev_hash),
        (None, None) => {
            return Err(corrupt(
                "nothing to archive before the checkpoint".to_owned(),
            ));
        }
    };
    let mut sealed = Sealer {
        out,
        hash: sha2::Sha256::new(),
    };
    let io = |e: std::io::Error| corrupt(format!("writing the archive: {e}"));
    sealed
        .line(&ArchiveLine::Header {
            format: if legacy_through.is_some() {
                ARCHIVE_V2
            } else {
                ARCHIVE_V1
            }
            .to_owned(),
            from_seq,
            through_seq: cut.entry_seq,
            prev_hash: hex(&start_hash),
            public_key: key.public_hex(),
            legacy_through,
        })
        .map_err(io)?;
    let mut summary = ArchiveSummary {
        from_seq,
        through_seq: cut.entry_seq,
        entries: 0,
        legacy_entries: 0,
        objects: 0,
        checkpoint_no: cut.no,
        through_hash: hex(&cut.entry_hash),
    };
    let mut prev = (from_seq - 1, start_hash);
    if let Some(l) = legacy_through {
        let mut last: Option<AuditEntry> = None;
        loop {
            let page = store.audit(last.as_ref().map_or(0, |e| e.seq), VERIFY_PAGE, None)?;
            if page.is_empty() {
                break;
            }
            verify_chain_after(last.as_ref(), &page)
                .map_err(|e| corrupt(format!("not archived: legacy log: {e}")))?;
            for e in &page {
                sealed.line(&ArchiveLine::Legacy(e.clone())).map_err(io)?;
            }
            summary.legacy_entries += page.len() as u64;
            last = page.into_iter().last();
        }
        let last = last.filter(|e| e.seq == l).ok_or_else(|| {
            corrupt(format!(
                "not archived: the legacy log does not end at entry {l}, which the first transfer \
                 entry follows"
            ))
        })?;
        summary.objects += summary.legacy_entries;
        prev = legacy_head(last.seq, &last.hash);
    }
    let mut vids = std::collections::BTreeSet::new();
    let mut at = prev.0;
    while at < cut.entry_seq {
        let page = store.audit_entries(&crate::AuditQuery {
            after_seq: at,
            before_seq: Some(cut.entry_seq + 1),
            limit: VERIFY_PAGE,
            ..Default::default()
        })?;
        if page.is_empty() {
            break;
        }
        verify_transfers_after(prev, &page).map_err(|e| corrupt(format!("not archived: {e}")))?;
        if let Some((seq, vid)) = renamed(&page, &store.audit_names(&named_vids(&page))?) {
            let e = AuditError::Renamed { seq, vid };
            return Err(corrupt(format!("not archived: {e}")));
        }
        for e in &page {
            for it in e.decoded().unwrap_or_default() {
                vids.insert(it.vid);
            }
            summary.objects += e.count as u64;
            sealed.line(&ArchiveLine::Entry(e.clone())).map_err(io)?;
        }
        summary.entries += page.len() as u64;
        let last = &page[page.len() - 1];
        prev = (last.seq, last.hash);
        at = last.seq;
    }
    if prev != (cut.entry_seq, cut.entry_hash) {
        return Err(corrupt(format!(
            "not archived: entry {} is not the entry checkpoint {} signed",
            cut.entry_seq, cut.no
        )));
    }
    let mut after_no = 0;
    loop {
        let page = store.audit_checkpoints(after_no, VERIFY_PAGE)?;
        let Some(last) = page.last() else { break };
        after_no = last.no;
        for c in page
            .into_iter()
            .filter(|c| c.entry_seq >= from_seq && c.no <= cut.no)
        {
            sealed.line(&ArchiveLine::Checkpoint(c)).map_err(io)?;
        }
        if after_no >= cut.no {
            break;
        }
    }
    let vids: Vec<i64> = vids.into_iter().collect();
    for chunk in vids.chunks(VERIFY_PAGE) {
        for n in store.audit_names(chunk)? {
            sealed.line(&ArchiveLine::Name(n)).map_err(io)?;
        }
    }
    let digest: Hash = sealed.hash.clone().finalize().into();
    let seal = ArchiveLine::Seal {
        sha256: hex(&digest),
        signature: hex(&key.sign(&digest)),
    };
    let text = serde_json::to_string(&seal).unwrap_or_default();
    writeln!(sealed.out, "{text}").map_err(io)?;
    sealed.out.flush().map_err(io)?;
    let boundary = ArchiveBoundary {
        through_seq: cut.entry_seq,
        through_hash: cut.entry_hash,
        checkpoint_no: cut.no,
        time_ns,
        file: file.to_owned(),
        legacy_through,
    };
    // The node key's word for the boundary, which `verify` requires of it (a boundary row
    // alone can be added by whoever writes the database).
    seal_boundary(store, key, &boundary, &digest)?;
    Ok((boundary, summary))
}

/// Stores the node key's seal of `boundary` ([`BOUNDARY_SEAL_PREFIX`]): its signature of
/// [`ArchiveBoundary::seal_message`] with `sealed`, the seal digest of the archive file that
/// took the entries (the `sha256` of its last line). Written by [`write_archive`], and by
/// [`vouch_boundary`] for a boundary recorded before seals existed.
pub fn seal_boundary(
    store: &dyn crate::Store,
    key: &NodeKey,
    boundary: &ArchiveBoundary,
    sealed: &Hash,
) -> crate::Result<()> {
    let record = BoundarySeal {
        sha256: hex(sealed),
        signature: hex(&key.sign(&boundary.seal_message(sealed))),
    };
    store.set_setting(
        &format!("{BOUNDARY_SEAL_PREFIX}{}", boundary.through_seq),
        &serde_json::to_string(&record).unwrap_or_default(),
    )
}

/// Seals the database's archive boundary from the archive file that took its entries
/// (`concord audit vouch --archive FILE`): for a boundary recorded before seals existed,
/// which `verify` otherwise reports as `unarchived`. The file must verify with `key`
/// ([`verify_archive`]) and end exactly where the boundary says (its last entry's seq and
/// hash, and the checkpoint), so only an archive the node really wrote vouches for it.
/// Returns the boundary sealed.
///
/// Errors: [`crate::StoreError::Corrupt`] naming why the file does not vouch for the
/// boundary (no boundary, a tampered or foreign file, another stretch of the log).
pub fn vouch_boundary(
    store: &dyn crate::Store,
    key: &NodeKey,
    archive: &str,
) -> crate::Result<ArchiveBoundary> {
    let refuse = |m: String| crate::StoreError::Corrupt(m);
    let boundary = store
        .audit_boundary()?
        .ok_or_else(|| refuse("nothing was archived: there is no boundary to vouch for".into()))?;
    let summary = verify_archive(archive, Some(&key.public())).map_err(|e| {
        refuse(format!(
            "the archive does not verify with the node key: {e}"
        ))
    })?;
    if summary.through_seq != boundary.through_seq
        || summary.through_hash != hex(&boundary.through_hash)
        || summary.checkpoint_no != boundary.checkpoint_no
    {
        return Err(refuse(format!(
            "the archive ends at entry {} (checkpoint {}), the database's boundary at entry {} \
             (checkpoint {}, file {:?}): give the archive that boundary names",
            summary.through_seq,
            summary.checkpoint_no,
            boundary.through_seq,
            boundary.checkpoint_no,
            boundary.file
        )));
    }
    let seal_line = archive
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or("");
    let Ok(ArchiveLine::Seal { sha256, .. }) = serde_json::from_str(seal_line) else {
        return Err(refuse("the archive's last line is not its seal".into()));
    };
    let sealed = crate::node_key::unhex32(&sha256)
        .ok_or_else(|| refuse("the archive's seal digest is not 32 bytes of hex".into()))?;
    seal_boundary(store, key, &boundary, &sealed)?;
    Ok(boundary)
}

struct Sealer<'a> {
    out: &'a mut dyn std::io::Write,
    hash: sha2::Sha256,
}

impl Sealer<'_> {
    fn line(&mut self, line: &ArchiveLine) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.hash.update(text.as_bytes());
        self.out.write_all(text.as_bytes())
    }
}

/// Checks an archive file offline: the entries form a chain from the header's `prev_hash`
/// (naming the first edited, deleted or reordered entry), every checkpoint is signed by the
/// key (`trusted`, else the header's) and linked to the one before, the last covers the last
/// entry, and the seal (a signature over every byte before it) holds, so that names and
/// checkpoints cannot be changed either. A v2 file ([`ARCHIVE_V2`]) first holds the legacy
/// per-object log: its rows must form their own chain from the genesis ([`verify_chain`],
/// naming the first bad row by its seq), end at the header's `legacy_through`, and the first
/// transfer entry must link to their head (its last hash as 32 bytes). v1 files read as before.
///
/// Errors: the first problem found, as an [`AuditError`] (`Archive` for a file that is not
/// an archive of a known format).
pub fn verify_archive(
    text: &str,
    trusted: Option<&[u8; 32]>,
) -> Result<ArchiveSummary, AuditError> {
    let bad = |m: &str| AuditError::Archive(m.to_owned());
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| bad("not an archive (fewer than two lines)"))?;
    let (body, seal_line) = text.split_at(body_end);
    let mut lines = body.lines();
    let header: ArchiveLine = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| bad("no header line"))?;
    let ArchiveLine::Header {
        format,
        from_seq,
        through_seq,
        prev_hash,
        public_key,
        legacy_through,
    } = header
    else {
        return Err(bad("the first line is not a header"));
    };
    match (format.as_str(), legacy_through) {
        (ARCHIVE_V1, None) | (ARCHIVE_V2, Some(_)) => {}
        (ARCHIVE_V1 | ARCHIVE_V2, _) => {
            return Err(bad(&format!(
                "header: format {format} {} legacy_through",
                if legacy_through.is_some() {
                    "does not take"
                } else {
                    "needs"
                }
            )));
        }
        _ => {
            return Err(bad(&format!(
                "header: unknown format {format:?} (this program reads {ARCHIVE_V1} and {ARCHIVE_V2})"
            )));
        }
    }
    let key = match trusted {
        Some(k) => *k,
        None => crate::node_key::unhex32(&public_key).ok_or_else(|| bad("bad public key"))?,
    };
    let start = crate::node_key::unhex32(&prev_hash).ok_or_else(|| bad("bad prev_hash"))?;
    // The legacy log may be hundreds of MB: its rows are checked a page at a time, and only
    // their seq and head (40 bytes a row, for the checkpoints that signed one) are kept.
    let mut legacy = LegacyPart::default();
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    let mut names = Vec::new();
    for (i, l) in lines.enumerate() {
        match serde_json::from_str::<ArchiveLine>(l) {
            Ok(ArchiveLine::Legacy(e)) if legacy_through.is_some() && entries.is_empty() => {
                legacy.push(e)?
            }
            Ok(ArchiveLine::Entry(e)) => entries.push(e),
            Ok(ArchiveLine::Checkpoint(c)) => checkpoints.push(c),
            Ok(ArchiveLine::Name(n)) => names.push(n),
            Ok(_) => return Err(bad(&format!("line {}: unexpected line", i + 2))),
            // A damaged entry or legacy line: name it by its seq if that can be read.
            Err(_) => {
                let seq = serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| {
                        v.get("entry")
                            .or_else(|| v.get("legacy"))?
                            .get("seq")?
                            .as_i64()
                    });
                return Err(match seq {
                    Some(seq) => AuditError::Edited { seq },
                    None => bad(&format!("line {} cannot be read", i + 2)),
                });
            }
        }
    }
    // The legacy log: its own chain from the genesis (seq 1), then its head is where the
    // transfer entries start.
    let transfers_from = match legacy_through {
        Some(l) => {
            if (from_seq, start) != (1, GENESIS) {
                return Err(bad(
                    "header: a v2 archive starts at the legacy log's first row (from_seq 1, the genesis prev_hash)",
                ));
            }
            legacy.check()?;
            let head = legacy.heads.last().copied().unwrap_or((0, GENESIS));
            verify_transfers_after(head, &entries)?;
            if head.0 != l {
                return Err(AuditError::Deleted {
                    seq: head.0 + 1,
                    detail: format!(
                        "the legacy rows end at {}, the header says they run to {l}",
                        head.0
                    ),
                });
            }
            head
        }
        None => {
            verify_transfers_after((from_seq - 1, start), &entries)?;
            (from_seq - 1, start)
        }
    };
    // The names the archive carries are the ones each entry recorded (the seal alone would
    // also seal names renamed in the database before the archive was written).
    if let Some((seq, vid)) = renamed(&entries, &names) {
        return Err(AuditError::Renamed { seq, vid });
    }
    let last_seq = match entries.last() {
        Some(e) => e.seq,
        None if !legacy.heads.is_empty() => transfers_from.0,
        None => return Err(bad("no entries")),
    };
    if last_seq != through_seq {
        return Err(AuditError::Truncated {
            seq: through_seq,
            no: checkpoints.last().map_or(0, |c| c.no),
        });
    }
    let mut previous: Option<&Checkpoint> = None;
    for c in &checkpoints {
        match previous {
            Some(p) => c.check(Some(p), Some(&key))?,
            None => c.check_signature(Some(&key))?,
        }
        let signed = match entries.iter().find(|e| e.seq == c.entry_seq) {
            Some(e) => Some(e.hash),
            None => legacy
                .heads
                .binary_search_by_key(&c.entry_seq, |(seq, _)| *seq)
                .ok()
                .map(|i| legacy.heads[i].1),
        };
        if signed.is_some_and(|h| h != c.entry_hash) {
            return Err(AuditError::Rewritten {
                seq: c.entry_seq,
                no: c.no,
            });
        }
        previous = Some(c);
    }
    let Some(closing) = previous.filter(|c| c.entry_seq == through_seq) else {
        return Err(bad("no checkpoint covers the last entry"));
    };
    let seal: ArchiveLine =
        serde_json::from_str(seal_line.trim_end()).map_err(|_| bad("no seal line"))?;
    let ArchiveLine::Seal { sha256, signature } = seal else {
        return Err(bad("the last line is not a seal"));
    };
    let digest: Hash = sha2::Sha256::digest(body.as_bytes()).into();
    let sig = crate::node_key::unhex64(&signature).ok_or_else(|| bad("bad seal signature"))?;
    if hex(&digest) != sha256 || !verify_signature(&key, &digest, &sig) {
        return Err(bad(
            "the seal does not match: the file was changed after it was sealed (names or checkpoints edited), or another key sealed it",
        ));
    }
    Ok(ArchiveSummary {
        from_seq,
        through_seq,
        entries: entries.len() as u64,
        legacy_entries: legacy.heads.len() as u64,
        objects: entries.iter().map(|e| e.count as u64).sum::<u64>() + legacy.heads.len() as u64,
        checkpoint_no: closing.no,
        through_hash: hex(&closing.entry_hash),
    })
}

/// The legacy rows of an archive being verified: checked by [`verify_chain_after`] a page
/// ([`VERIFY_PAGE`] rows) at a time, so that reordered rows within a page are named as such.
#[derive(Default)]
struct LegacyPart {
    /// Rows read and not yet checked.
    page: Vec<AuditEntry>,
    /// The last row checked.
    last: Option<AuditEntry>,
    /// Each checked row's seq and [`legacy_head`], in order.
    heads: Vec<(i64, Hash)>,
}

impl LegacyPart {
    fn push(&mut self, e: AuditEntry) -> Result<(), AuditError> {
        self.page.push(e);
        if self.page.len() >= VERIFY_PAGE {
            self.check()?;
        }
        Ok(())
    }

    /// Checks the rows read since the last call.
    fn check(&mut self) -> Result<(), AuditError> {
        verify_chain_after(self.last.as_ref(), &self.page)?;
        self.heads
            .extend(self.page.iter().map(|e| legacy_head(e.seq, &e.hash)));
        if let Some(l) = self.page.pop() {
            self.last = Some(l);
        }
        self.page.clear();
        Ok(())
    }
}

mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::node_key::hex(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        crate::node_key::unhex32(&t).ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
    }
}

mod hex64 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::node_key::hex(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        crate::node_key::unhex64(&t).ok_or_else(|| serde::de::Error::custom("not 64 hex bytes"))
    }
}

mod hex_opt {
    pub fn serialize<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&crate::node_key::hex(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let t: Option<String> = serde::Deserialize::deserialize(d)?;
        t.map(|t| {
            crate::node_key::unhex32(&t).ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
        })
        .transpose()
    }
}

mod b64 {
    use base64::Engine;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: "acme".into(),
            person: None,
            collection: "c1".into(),
            object_id: format!("indicator--{i}"),
            modified: "2024-01-01T00:00:00.000Z".into(),
            decision: "sent".into(),
            transformations: vec![],
            policy_version: "tlp-v1".into(),
            vid: 0,
        }
    }

    fn log(n: usize) -> Vec<AuditEntry> {
        let records: Vec<_> = (0..n).map(record).collect();
        let first = chain_after(None, 1, &records[..2]);
        let last = first.last().map(|e| (e.seq, e.hash.clone()));
        let mut all = first;
        all.extend(chain_after(last, 2, &records[2..]));
        all
    }

    #[test]
    fn intact() {
        assert_eq!(verify_chain(&log(5)), Ok(()));
        assert_eq!(verify_chain(&[]), Ok(()));
    }

    #[test]
    fn verified_page_by_page_as_a_whole() {
        let l = log(7);
        assert_eq!(verify_chain_after(None, &l[..3]), Ok(()));
        assert_eq!(verify_chain_after(Some(&l[2]), &l[3..]), Ok(()));
        let mut bad = l.clone();
        bad[5].record.decision = "withheld".into();
        assert_eq!(
            verify_chain_after(Some(&bad[2]), &bad[3..]),
            Err(AuditError::Edited { seq: 6 })
        );
        // A page that does not continue the one before.
        assert_eq!(
            verify_chain_after(Some(&l[1]), &l[3..]).map_err(|e| e.kind()),
            Err("deleted")
        );
    }

    #[test]
    fn edited() {
        let mut l = log(5);
        l[2].record.partner = "other".into();
        assert_eq!(verify_chain(&l), Err(AuditError::Edited { seq: 3 }));
    }

    #[test]
    fn edited_and_rehashed() {
        let mut l = log(5);
        l[2].record.partner = "other".into();
        l[2].hash = entry_hash(3, l[2].time_ns, &l[2].record, &l[2].prev_hash);
        assert_eq!(
            verify_chain(&l),
            Err(AuditError::Broken {
                seq: 4,
                previous: 3
            })
        );
    }

    #[test]
    fn deleted() {
        let mut l = log(5);
        l.remove(2);
        assert_eq!(
            verify_chain(&l).map_err(|e| (e.kind(), e.seq())),
            Err(("deleted", 4))
        );
        let mut l = log(5);
        l.remove(0);
        assert_eq!(
            verify_chain(&l).map_err(|e| (e.kind(), e.seq())),
            Err(("deleted", 2))
        );
    }

    #[test]
    fn reordered() {
        // Rows swapped, seq numbers kept in place.
        let mut l = log(5);
        l.swap(1, 2);
        let (a, b) = (l[1].seq, l[2].seq);
        l[1].seq = b;
        l[2].seq = a;
        assert_eq!(
            verify_chain(&l),
            Err(AuditError::Reordered {
                seq: 2,
                links_to: 3,
                previous: 1
            })
        );
        // Rows swapped with their seq numbers.
        let mut l = log(5);
        l.swap(1, 2);
        assert_eq!(verify_chain(&l).map_err(|e| e.kind()), Err("reordered"));
    }
}
