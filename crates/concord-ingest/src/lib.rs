//! # concord-ingest: the one way in
//!
//! Every object that enters the node — `concord import`, a TAXII POST, later a sync pull —
//! passes [`ingest`]: parse one object, validate it against STIX 2.1
//! ([`concord_stix::validate_object`]), and add it to a collection in one write batch.
//! An invalid object is rejected with its id, property and rule, and the valid ones of the
//! same bundle still go in. A malformed container (bad JSON, a truncated gzip stream, not a
//! bundle) rolls the whole batch back: nothing half-written.
//!
//! Every ingress caps what it reads (issue 16, item 4): each object at
//! [`IngestOptions::max_object_size`] bytes while it is read, so an oversized object fails the
//! whole ingest with its index and the limit and nothing is stored; callers that decompress
//! wrap their input in a [`concord_stix::CappedReader`] first. A set `cancel` flag (the
//! server is stopping) rolls the ingest back at the next read ([`IngestError::Cancelled`]).
//!
//! Why a crate of its own: the CLI and the server both need exactly this, and neither may
//! know the other (only the server knows HTTP).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use concord_stix::{BundleError, BundleReader, Violation, validate_object};
use concord_store::{AddOutcome, AuditRecord, NewObject, Store, StoreError};
use serde::Serialize;
use serde_json::value::RawValue;

/// What is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// A STIX bundle (STIX 2.1 §8), e.g. a file given to `concord import`.
    Bundle,
    /// A TAXII envelope (TAXII 2.1 §3.7), the body of a POST.
    Envelope,
}

/// Why an ingest failed as a whole (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input is not a readable bundle or envelope.
    #[error(transparent)]
    Container(#[from] BundleError<StoreError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `cancel` flag was set (the node is stopping): nothing was stored.
    #[error("cancelled: the node is stopping; nothing was stored")]
    Cancelled,
    /// The caller's last check ([`ingest_batch`]'s `before_commit`) refused the batch; the
    /// string says why. Nothing was stored.
    #[error("{0}")]
    Refused(String),
}

/// One object that was not stored, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Rejection {
    /// Position in `objects` (0-based).
    pub index: usize,
    /// The object's id, when it had a readable one.
    pub id: Option<String>,
    /// Its version (`modified` or `created`) as written, when readable.
    pub version: Option<String>,
    /// Each rule broken, e.g. `modified: must be later than or equal to created (STIX 2.1 §3.2)`.
    pub reasons: Vec<String>,
}

/// One object that was stored or already present.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Accepted {
    /// Object id.
    pub id: String,
    /// Its version as written (empty when it has neither `modified` nor `created`).
    pub version: String,
    /// Whether it was new to the collection.
    pub added: bool,
    /// Its version row (`object_versions.vid`): what the audit log records.
    #[serde(skip)]
    pub vid: i64,
}

/// What an ingest did, object by object.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    /// Objects read.
    pub total: usize,
    /// Objects new to the collection.
    pub added: usize,
    /// Objects whose version was already in the collection.
    pub already_present: usize,
    /// Objects refused, with reasons.
    pub rejected: Vec<Rejection>,
    /// The accepted objects (when asked for: TAXII status resources list them).
    #[serde(skip)]
    pub accepted: Vec<Accepted>,
    /// The `date_added` given to the new entries (ns since the epoch).
    pub date_added_ns: i64,
}

/// Options of one ingest.
#[derive(Clone, Copy)]
pub struct IngestOptions<'a> {
    /// Bundle or envelope.
    pub container: Container,
    /// Keep the list of accepted objects in the report.
    pub list_accepted: bool,
    /// Audit records for accepted objects, appended in the ingest's own transaction every
    /// [`AUDIT_CHUNK`] objects (so memory stays bounded, and the records are durable with
    /// the objects or not at all).
    pub audit: Option<&'a AuditRecords<'a>>,
    /// The names the objects were received from (a sync peer, issue 7, and its partner's
    /// [`concord_store::partner_provenance`]; a partner that POSTs): each accepted
    /// version's provenance is recorded under each name in the ingest's transaction
    /// ([`concord_store::WriteBatch::add_provenance`]). Empty: made or imported here.
    pub provenance: &'a [&'a str],
    /// Node settings written in the ingest's transaction, e.g. a sync cursor that must be
    /// durable with the objects it covers, or not at all.
    pub settings: &'a [(&'a str, &'a str)],
    /// Largest object accepted, in bytes as written
    /// ([`concord_stix::DEFAULT_MAX_OBJECT_SIZE`] unless configured): a larger one fails the
    /// ingest ([`BundleError::ObjectTooLarge`]).
    pub max_object_size: u64,
    /// Checked at every read of the input (once per 64 KiB read buffer): once
    /// set, the ingest stops and rolls back ([`IngestError::Cancelled`]).
    pub cancel: Option<&'a AtomicBool>,
    /// For a writer that does not receive every version the collection holds (a partner,
    /// issues 15 and 18): given an object's header, how its write is taken
    /// ([`concord_store::WriterView`]): the versions it does not receive count as absent
    /// ([`concord_store::WriteBatch::add_unseen`]), so the answer to the writer is the
    /// answer it would get if they did not exist; a new version of an object it receives
    /// but did not create is refused (STIX 2.1 §3.6); one of an object all of whose
    /// versions are others' and withheld from it is added as foreign
    /// ([`concord_store::WriteBatch::mark_foreign`]). `None`: the operator, who sees
    /// everything and may version anything.
    pub unseen: Option<&'a UnseenVersions<'a>>,
}

/// How a writer's write of one object is taken ([`IngestOptions::unseen`]).
/// Given the object's header and its bytes as written.
pub type UnseenVersions<'a> =
    dyn Fn(&concord_stix::ObjectHeader, &str) -> Result<concord_store::WriterView, StoreError> + 'a;

/// The size limits of one node's ingress, from its configuration (`max_object_size`,
/// `max_unpacked` in `concord.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest object, in bytes as written.
    pub max_object_size: u64,
    /// Largest input once decompressed (gzip uploads and files), in bytes.
    pub max_unpacked: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
            max_unpacked: concord_stix::DEFAULT_MAX_UNPACKED,
        }
    }
}

/// Turns accepted objects into their audit records (the caller knows door and principal).
pub type AuditRecords<'a> = dyn Fn(&[Accepted]) -> Vec<AuditRecord> + 'a;

/// How many accepted objects are buffered before their audit records are appended.
pub const AUDIT_CHUNK: usize = 10_000;

/// Reads `input` (a bundle or envelope, streamed one object at a time) into the collection
/// `collection_id`, as one transaction, calling `progress(objects_read)` every 1,000 objects.
///
/// Errors: [`IngestError::Container`] for input that is not a readable bundle/envelope
/// (with line and column for malformed JSON) — then nothing is stored; a store error.
pub fn ingest(
    store: &dyn Store,
    collection_id: &str,
    input: impl Read,
    options: IngestOptions<'_>,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    ingest_into(store.begin_write(collection_id)?, input, options, progress)
}

/// As [`ingest`], into a collection that does not exist yet: `collection` is created in the
/// ingest's transaction ([`Store::begin_write_creating`]), so when the input is not a
/// readable bundle (or the store fails) nothing remains, not even an empty collection.
///
/// Errors: as [`ingest`]; [`StoreError::InvalidAlias`] or [`StoreError::CollectionExists`]
/// (inside [`IngestError::Store`]) when the collection cannot be created.
pub fn ingest_creating(
    store: &dyn Store,
    collection: &concord_store::Collection,
    input: impl Read,
    options: IngestOptions<'_>,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    ingest_into(
        store.begin_write_creating(collection)?,
        input,
        options,
        progress,
    )
}

/// The body of [`ingest`] and [`ingest_creating`] on an open batch.
fn ingest_into(
    batch: Box<dyn concord_store::WriteBatch + '_>,
    input: impl Read,
    options: IngestOptions<'_>,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    ingest_batch(batch, [input], options, &mut |_, _| Ok(()), progress)
}

/// Reads several inputs (each a bundle or an envelope, as `options.container` says) into an
/// open batch, as one transaction: what a transfer package needs, whose objects come in
/// several files and are stored together with the package chain or not at all. Rejections
/// are numbered across the inputs (the first object of the second input follows the last of
/// the first). `before_commit` runs last in the batch's transaction (after the audit records
/// and `options.settings`), with the report so far; an error from it rolls everything back.
///
/// Errors: as [`ingest`], for any input (nothing is stored); what `before_commit` returns.
pub fn ingest_batch<R: Read>(
    mut batch: Box<dyn concord_store::WriteBatch + '_>,
    inputs: impl IntoIterator<Item = R>,
    options: IngestOptions<'_>,
    before_commit: &mut dyn FnMut(
        &mut dyn concord_store::WriteBatch,
        &IngestReport,
    ) -> Result<(), IngestError>,
    mut progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport {
        date_added_ns: batch.date_added_ns(),
        ..Default::default()
    };
    let mut audit_pending: Vec<Accepted> = Vec::new();
    // The position is counted across inputs, not taken from each input's reader.
    let mut on_object = |_: usize, raw: Box<RawValue>| -> Result<(), StoreError> {
        let index = report.total;
        report.total += 1;
        if report.total.is_multiple_of(1000) {
            progress(report.total);
        }
        match check(index, &raw) {
            Err(rejection) => report.rejected.push(rejection),
            Ok((header, value)) => {
                let object = NewObject {
                    header: &header,
                    body: raw.get(),
                    value: &value,
                };
                // A source that writes an id the node does not hold is its creator here.
                let new_id = !options.provenance.is_empty() && !batch.holds_id(&header.id)?;
                let outcome = match options.unseen {
                    Some(view_of) => {
                        let view = view_of(&header, raw.get())?;
                        match view.refused {
                            Some(reason) => AddOutcome::Conflict(reason),
                            None => {
                                let outcome = batch.add_unseen(&object, &view.unseen)?;
                                // A row that is one of the withheld versions (the same bytes)
                                // stays theirs: only a row of the writer's own is foreign.
                                if let (AddOutcome::Added, Some(writer), Some(vid)) =
                                    (&outcome, &view.foreign, batch.last_vid())
                                    && !view.unseen.contains(&vid)
                                {
                                    batch.mark_foreign(vid, writer)?;
                                }
                                outcome
                            }
                        }
                    }
                    None => {
                        let mut outcome = batch.add(&object)?;
                        // The operator's import outranks what partners wrote of the id first
                        // (a predictable id claimed ahead): their versions become foreign,
                        // and what conflicted with them is added as if they were absent.
                        // The operator's own row (added, or the same bytes found) stays
                        // everyone's.
                        let keep = match outcome {
                            AddOutcome::Conflict(_) => None,
                            _ => batch.last_vid(),
                        };
                        if options.provenance.is_empty()
                            && let Some(absent) = batch.take_over(&header.id, keep)?
                            && matches!(outcome, AddOutcome::Conflict(_))
                        {
                            outcome = batch.add_unseen(&object, &absent)?;
                        }
                        // A partner's foreign version, which nobody else reads, never stands
                        // in the way of what the operator (or a pull) adds: in conflict with
                        // one, the object is added as if it were absent.
                        if matches!(outcome, AddOutcome::Conflict(_)) {
                            let foreign = batch.foreign_of(&header.id)?;
                            if !foreign.is_empty() {
                                outcome = batch.add_unseen(&object, &foreign)?;
                            }
                        }
                        // The operator's (or a pull's) very bytes, already there as a
                        // partner's foreign version: now everyone's.
                        if let (AddOutcome::AlreadyPresent, Some(vid)) =
                            (&outcome, batch.last_vid())
                        {
                            batch.adopt_foreign(vid)?;
                        }
                        outcome
                    }
                };
                let version = header.version().map(|t| t.to_string());
                match outcome {
                    AddOutcome::Conflict(reason) => report.rejected.push(Rejection {
                        index,
                        id: Some(header.id),
                        version,
                        reasons: vec![reason],
                    }),
                    AddOutcome::Added | AddOutcome::AlreadyPresent => {
                        let added = outcome == AddOutcome::Added;
                        if added {
                            report.added += 1;
                        } else {
                            report.already_present += 1;
                        }
                        let accepted = Accepted {
                            id: header.id,
                            version: version.unwrap_or_default(),
                            added,
                            vid: batch.last_vid().unwrap_or_default(),
                        };
                        for name in options.provenance {
                            batch.add_provenance(
                                &accepted.id,
                                &accepted.version,
                                name,
                                added && new_id,
                            )?;
                        }
                        if let Some(make) = options.audit {
                            audit_pending.push(accepted.clone());
                            if audit_pending.len() >= AUDIT_CHUNK {
                                batch.append_audit(&make(&audit_pending))?;
                                audit_pending.clear();
                            }
                        }
                        if options.list_accepted {
                            report.accepted.push(accepted);
                        }
                    }
                }
            }
        }
        Ok(())
    };
    let cancelled = || options.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    for input in inputs {
        let reader = BundleReader::new(Cancellable {
            inner: input,
            cancel: options.cancel,
        })
        .max_object_size(options.max_object_size);
        let read = match options.container {
            Container::Bundle => reader.read(&mut on_object),
            Container::Envelope => reader.read_envelope(&mut on_object),
        };
        if cancelled() {
            // Dropping the batch rolls it back.
            return Err(IngestError::Cancelled);
        }
        read?;
    }
    if let Some(make) = options.audit {
        batch.append_audit(&make(&audit_pending))?;
    }
    for (key, value) in options.settings {
        batch.set_setting(key, value)?;
    }
    before_commit(&mut *batch, &report)?;
    batch.commit()?;
    progress(report.total);
    Ok(report)
}

/// The input, failing its next read once `cancel` is set.
struct Cancellable<'a, R> {
    inner: R,
    cancel: Option<&'a AtomicBool>,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

/// Parses and validates one object.
fn check(
    index: usize,
    raw: &RawValue,
) -> Result<(concord_stix::ObjectHeader, serde_json::Value), Rejection> {
    // Strict: a repeated member name is refused (I-JSON, STIX 2.1 §3.1), so that what egress
    // decides on is what the stored bytes say.
    let value = concord_stix::parse_object(raw.get()).map_err(|e| {
        // The id, for the report, from a lenient parse (the last of repeated values).
        let lenient = serde_json::from_str::<serde_json::Value>(raw.get()).ok();
        let text = |k: &str| {
            lenient
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Rejection {
            index,
            id: text("id"),
            version: text("modified").or_else(|| text("created")),
            reasons: vec![format!("objects[{index}]: {e}")],
        }
    })?;
    match validate_object(&value).and_then(|h| check_pattern(&value).map(|()| h)) {
        Ok(header) => Ok((header, value)),
        Err(violations) => {
            let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            Err(Rejection {
                index,
                id: text("id"),
                version: text("modified").or_else(|| text("created")),
                reasons: violations.iter().map(without_id).collect(),
            })
        }
    }
}

/// STIX 2.1 §4.7: an indicator with `pattern_type` `stix` must carry a valid STIX pattern
/// (§9); checked with the full parser, so a partner never receives a pattern that means
/// nothing.
fn check_pattern(value: &serde_json::Value) -> Result<(), Vec<Violation>> {
    if value.get("type").and_then(|t| t.as_str()) != Some("indicator")
        || value.get("pattern_type").and_then(|t| t.as_str()) != Some("stix")
    {
        return Ok(());
    }
    let Some(pattern) = value.get("pattern").and_then(|p| p.as_str()) else {
        return Ok(()); // a missing or non-string pattern is already a violation of §4.7
    };
    concord_pattern::parse(pattern).map(|_| ()).map_err(|e| {
        vec![Violation {
            id: None,
            property: "pattern".to_owned(),
            rule: format!("invalid STIX pattern: {} at byte {}", e.message, e.offset),
            section: "9",
        }]
    })
}

/// A violation's text without the id prefix (the rejection carries the id once).
fn without_id(v: &Violation) -> String {
    Violation {
        id: None,
        ..v.clone()
    }
    .to_string()
}

/// Properties of a generated indicator (an IOC-list line) that say when it was made, not
/// what it says: two generations of one unchanged value differ only in these.
const GENERATION_TIMES: [&str; 3] = ["created", "modified", "valid_from"];

/// Makes generated objects with deterministic ids (IOC-list indicators, whose id is a UUIDv5
/// of the value) agree with what the collection already holds, before they are ingested
/// (issue 24, item 10):
///
/// - an object whose latest held version says the same apart from its generation times
///   (`created`, `modified`, `valid_from`) is replaced by that held version, so ingesting it
///   adds nothing (it is "already present");
/// - an object that says something new (say a new comment, hence `description`) becomes a new
///   version that keeps the held `created`, `created_by_ref` and `valid_from` (STIX 2.1 §3.6:
///   `created` and `created_by_ref` never change between versions), with its own `modified`,
///   which must then be later than the held one.
///
/// Only the collection written to is read. `collection_id` is `None` for a collection that
/// does not exist yet (nothing to reconcile). Returns how many objects were unchanged.
pub fn reconcile_generated(
    store: &dyn Store,
    collection_id: Option<&str>,
    objects: &mut [serde_json::Value],
) -> Result<usize, StoreError> {
    let Some(collection_id) = collection_id else {
        return Ok(0);
    };
    let mut unchanged = 0;
    for chunk in objects.chunks_mut(500) {
        let ids: Vec<String> = chunk
            .iter()
            .filter_map(|o| o["id"].as_str().map(str::to_owned))
            .collect();
        let filter = concord_store::ObjectFilter {
            ids,
            ..Default::default()
        };
        let page = store.entries(
            collection_id,
            &filter,
            &concord_store::PageRequest {
                limit: chunk.len() + 1,
                after: None,
            },
            true,
        )?;
        let held: std::collections::HashMap<String, serde_json::Value> = page
            .entries
            .into_iter()
            .filter_map(|e| Some((e.id, serde_json::from_str(e.body.as_deref()?).ok()?)))
            .collect();
        for object in chunk.iter_mut() {
            let Some(old) = object["id"].as_str().and_then(|id| held.get(id)) else {
                continue;
            };
            let what = |v: &serde_json::Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    for k in GENERATION_TIMES {
                        m.remove(k);
                    }
                }
                v
            };
            if what(old) == what(object) {
                *object = old.clone();
                unchanged += 1;
            } else if let Some(m) = object.as_object_mut() {
                for k in ["created", "created_by_ref", "valid_from"] {
                    match old.get(k) {
                        Some(v) => m.insert(k.to_owned(), v.clone()),
                        None => m.remove(k),
                    };
                }
            }
        }
    }
    Ok(unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_store::{NewCollection, SqliteStore};

    fn indicator(n: usize) -> String {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-{n:012}","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}}"#
        )
    }

    fn options(cancel: Option<&AtomicBool>) -> IngestOptions<'_> {
        IngestOptions {
            container: Container::Bundle,
            list_accepted: false,
            audit: None,
            provenance: &[],
            settings: &[],
            max_object_size: concord_stix::DEFAULT_MAX_OBJECT_SIZE,
            cancel,
            unseen: None,
        }
    }

    /// A bundle whose reading sets `cancel` once `after` bytes have been read: the node
    /// starts stopping in the middle of an import.
    struct StopsHalfway<'a> {
        bytes: &'a [u8],
        after: usize,
        read: usize,
        cancel: &'a AtomicBool,
    }

    impl Read for StopsHalfway<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.read >= self.after {
                self.cancel.store(true, Ordering::Relaxed);
            }
            let n = self.bytes.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn a_cancelled_ingest_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let c = store
            .create_collection(&NewCollection {
                alias: "c".into(),
                ..NewCollection::default()
            })
            .unwrap();
        let objects: Vec<String> = (0..2000).map(indicator).collect();
        let bundle = format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{}]}}"#,
            objects.join(",")
        );
        let cancel = AtomicBool::new(false);
        let input = StopsHalfway {
            bytes: bundle.as_bytes(),
            after: bundle.len() / 2,
            read: 0,
            cancel: &cancel,
        };
        let r = ingest(&store, &c.id, input, options(Some(&cancel)), |_| {});
        assert!(matches!(r, Err(IngestError::Cancelled)), "{r:?}");
        assert_eq!(store.count(&c.id).unwrap(), 0);
        // Not cancelled, the same bundle goes in whole.
        let r = ingest(&store, &c.id, bundle.as_bytes(), options(None), |_| {}).unwrap();
        assert_eq!(r.added, 2000);
        assert_eq!(store.count(&c.id).unwrap(), 2000);
    }

    #[test]
    fn an_oversized_object_fails_the_whole_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let c = store
            .create_collection(&NewCollection {
                alias: "c".into(),
                ..NewCollection::default()
            })
            .unwrap();
        let big = indicator(2).replace(
            "\"pattern_type\"",
            &format!("\"description\":\"{}\",\"pattern_type\"", "x".repeat(5000)),
        );
        let bundle = format!(
            r#"{{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{},{big}]}}"#,
            indicator(1)
        );
        let o = IngestOptions {
            max_object_size: 4096,
            ..options(None)
        };
        let e = ingest(&store, &c.id, bundle.as_bytes(), o, |_| {}).unwrap_err();
        assert!(
            matches!(
                e,
                IngestError::Container(BundleError::ObjectTooLarge {
                    index: 1,
                    limit: 4096
                })
            ),
            "{e:?}"
        );
        assert_eq!(store.count(&c.id).unwrap(), 0);
    }
}
