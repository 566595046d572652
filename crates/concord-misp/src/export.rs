//! STIX 2.1 → MISP for a whole collection in bounded memory (issue 22): the objects an export
//! receives, page by page, are appended to a spill file the caller hands in ([`Spill`]),
//! with only their ids (and where each body lies) kept in memory; then every report and
//! grouping becomes one event and the objects no report or grouping holds one more event
//! ([`Plan`]), each event written as it is converted ([`write_feed`], [`write_events`]):
//! attribute by attribute, its MISP objects and galaxy clusters through two scratch files,
//! so that one referenced object (and an observed-data's SCOs) is held at a time, never an
//! event or the collection.
//!
//! The bytes are those of [`crate::feed::write_feed`] and of `serde_json::to_string_pretty`
//! on the events [`crate::from_stix::to_misp_event_noting`] and
//! [`crate::from_stix::loose_event_noting`] build (tested).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::feed::{FeedError, attribute_hash_lines, manifest_entry};
use crate::from_stix::{NotCarried, Part, event_head, event_parts, refs_of, uuid_of};

/// Why an export to MISP failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The spill or a scratch file could not be written or read back.
    #[error("MISP export: spill file: {0}")]
    Spill(std::io::Error),
    /// An object body handed to [`Spill::add`] is not a JSON object (`n` counts from 1).
    #[error("MISP export: object {n} of the export is not a STIX object: {message}")]
    NotAnObject {
        /// Its position among the bodies added, from 1.
        n: u64,
        /// What the JSON parser said.
        message: String,
    },
    /// An object body is larger than 4 GiB (the spill's slot length is 32 bits).
    #[error("MISP export: object {id} is {len} bytes, more than the 4 GiB a spill slot holds")]
    TooLarge {
        /// The object.
        id: String,
        /// Its size in bytes.
        len: usize,
    },
    /// A feed file could not be written.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// The MISP event JSON could not be written to the output.
    #[error("MISP export: writing the events: {0}")]
    Output(std::io::Error),
}

/// Where the newest version of one object lies in the spill file.
#[derive(Clone, Copy, Debug)]
struct Slot {
    offset: u64,
    len: u32,
    /// Index into [`Spill::types`].
    kind: u32,
    /// Named in the `object_refs` of a report or grouping (set by [`Spill::finish`]).
    held: bool,
}

/// The fields read from each body while spilling; the rest stays on disk.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    modified: Option<std::borrow::Cow<'a, str>>,
}

/// The objects of an export on disk: each body added is appended to the spill file; in
/// memory only the id of each object, the offset and length of its newest version's body
/// (the newest `modified` wins, a later one on a tie, as
/// [`crate::from_stix::index`]), its type (interned) and whether a report or grouping holds
/// it: about 100 bytes per object, against some kilobytes for a parsed body.
pub struct Spill {
    out: BufWriter<File>,
    len: u64,
    added: u64,
    slots: HashMap<Box<str>, Slot>,
    /// The types seen, interned: name by index, index by name.
    types: Vec<Box<str>>,
    type_index: HashMap<Box<str>, u32>,
    /// Bodies handed out by [`Spill::get`] and not yet dropped, and the most at once.
    live: Cell<usize>,
    most_live: Cell<usize>,
    /// The first read error of [`Spill::get`] (which answers `None` then).
    failed: RefCell<Option<std::io::Error>>,
    finished: bool,
}

/// An object body read back from a [`Spill`]; counted while it lives
/// ([`Spill::most_held`]).
pub struct Held<'s> {
    value: Value,
    live: &'s Cell<usize>,
}

impl Deref for Held<'_> {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.live.set(self.live.get() - 1);
    }
}

impl Spill {
    /// A spill writing to `file` (empty, readable and writable; a `tempfile::tempfile()`
    /// removes itself).
    pub fn new(file: File) -> Spill {
        Spill {
            out: BufWriter::with_capacity(1 << 20, file),
            len: 0,
            added: 0,
            slots: HashMap::new(),
            types: Vec::new(),
            type_index: HashMap::new(),
            live: Cell::new(0),
            most_live: Cell::new(0),
            failed: RefCell::new(None),
            finished: false,
        }
    }

    /// Appends one object body (STIX JSON as the egress door gave it). A body without an
    /// `id`, or `null`, is skipped, as [`crate::from_stix::index`] skips it. Errors: a body
    /// that is neither a JSON object nor `null`; the spill file cannot be written.
    pub fn add(&mut self, body: &str) -> Result<(), ExportError> {
        self.added += 1;
        let head: Option<Head<'_>> =
            serde_json::from_str(body).map_err(|e| ExportError::NotAnObject {
                n: self.added,
                message: e.to_string(),
            })?;
        let Some(Head {
            id: Some(id),
            kind,
            modified,
        }) = head
        else {
            return Ok(());
        };
        let len = u32::try_from(body.len()).map_err(|_| ExportError::TooLarge {
            id: id.to_string(),
            len: body.len(),
        })?;
        if let Some(old) = self.slots.get(id.as_ref()).copied() {
            // Another version of an object already spilled: the newer `modified` wins.
            self.out.flush().map_err(ExportError::Spill)?;
            let old_body = read_at(self.out.get_ref(), old).map_err(ExportError::Spill)?;
            let old_modified = serde_json::from_slice::<Head<'_>>(&old_body)
                .ok()
                .and_then(|h| h.modified.map(|m| m.into_owned()));
            if old_modified.as_deref() > modified.as_deref() {
                return Ok(());
            }
        }
        let kind = self.intern(kind.as_deref().unwrap_or(""));
        self.out
            .write_all(body.as_bytes())
            .map_err(ExportError::Spill)?;
        let slot = Slot {
            offset: self.len,
            len,
            kind,
            held: false,
        };
        self.len += u64::from(len);
        self.slots.insert(id.into(), slot);
        Ok(())
    }

    fn intern(&mut self, kind: &str) -> u32 {
        if let Some(&i) = self.type_index.get(kind) {
            return i;
        }
        // At most one type per object, and fewer than 2^32 objects fit a spill's slots.
        let i = self.types.len() as u32;
        self.types.push(kind.into());
        self.type_index.insert(kind.into(), i);
        i
    }

    /// The number of objects (ids) spilled.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing was spilled.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Ends the adding: flushes the spill file and marks the objects the newest version of
    /// each report and grouping names in its `object_refs`. Errors: the spill file.
    pub fn finish(&mut self) -> Result<(), ExportError> {
        self.out.flush().map_err(ExportError::Spill)?;
        self.finished = true;
        let mut named = Vec::new();
        for id in self.containers() {
            if let Some(c) = self.get(&id) {
                named.extend(refs_of(&c).map(str::to_owned));
            }
            self.check()?;
            for r in named.drain(..) {
                if let Some(slot) = self.slots.get_mut(r.as_str()) {
                    slot.held = true;
                }
            }
        }
        Ok(())
    }

    /// The newest version of object `id`, read back from the spill file (after
    /// [`Spill::finish`]); `None` when it is not among the objects. A read error also
    /// answers `None` and is kept for [`Spill::check`].
    pub fn get(&self, id: &str) -> Option<Held<'_>> {
        debug_assert!(self.finished, "Spill::get before Spill::finish");
        let slot = *self.slots.get(id)?;
        let value = match read_at(self.out.get_ref(), slot)
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(std::io::Error::other))
        {
            Ok(v) => v,
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                return None;
            }
        };
        self.live.set(self.live.get() + 1);
        self.most_live
            .set(self.most_live.get().max(self.live.get()));
        Some(Held {
            value,
            live: &self.live,
        })
    }

    /// The most object bodies that were held in memory at once, read back by
    /// [`Spill::get`] and not yet dropped, since the spill was made: what bounds the
    /// memory of the conversion (the spill holds none itself).
    pub fn most_held(&self) -> usize {
        self.most_live.get()
    }

    /// The first read error of [`Spill::get`], if any.
    pub fn check(&self) -> Result<(), ExportError> {
        match self.failed.borrow_mut().take() {
            Some(e) => Err(ExportError::Spill(e)),
            None => Ok(()),
        }
    }

    /// The ids of the reports and groupings, in id order.
    fn containers(&self) -> Vec<Box<str>> {
        let mut out: Vec<Box<str>> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(self.kind(s), "report" | "grouping"))
            .map(|(id, _)| id.clone())
            .collect();
        out.sort();
        out
    }

    fn kind(&self, slot: &Slot) -> &str {
        self.types
            .get(slot.kind as usize)
            .map_or("", |t| t.as_ref())
    }

    /// What the export makes of the objects (after [`Spill::finish`]): one event per report
    /// and grouping (in id order), and one more for the objects outside every report and
    /// grouping that an event can carry (galaxy SDOs as clusters too), titled `title`,
    /// its uuid a UUIDv5 of `key`; the other objects outside are noted with the reason
    /// (identities, marking definitions, extension definitions and SCOs are carried where
    /// they are referred to, and are not).
    pub fn plan(&self, title: &str, key: &str) -> Plan {
        let mut loose: Vec<Box<str>> = Vec::new();
        let mut notes = Vec::new();
        for (id, slot) in &self.slots {
            if slot.held {
                continue;
            }
            let t = self.kind(slot);
            match t {
                "indicator" | "observed-data" | "x-misp-attribute" | "x-misp-object"
                | "vulnerability" | "campaign" | "attack-pattern" | "malware" | "threat-actor"
                | "intrusion-set" | "tool" | "course-of-action" => loose.push(id.clone()),
                "report"
                | "grouping"
                | "identity"
                | "marking-definition"
                | "extension-definition" => {}
                _ if concord_stix::validate::kind_of(t) == concord_stix::ObjectKind::Sco => {}
                _ => notes.push(NotCarried {
                    id: id.to_string(),
                    reason: format!("{t}: MISP events have no place for it"),
                }),
            }
        }
        loose.sort();
        let loose_container = (!loose.is_empty()).then(|| {
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.000Z")
                .to_string();
            json!({"type": "report", "id": format!("report--{}", crate::to_stix::v5(&[key])),
                "name": title, "created": now, "modified": now, "published": now})
        });
        Plan {
            containers: self.containers(),
            loose,
            loose_container,
            notes,
        }
    }
}

fn read_at(file: &File, slot: Slot) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; slot.len as usize];
    file.read_exact_at(&mut buf, slot.offset)?;
    Ok(buf)
}

/// The events of an export ([`Spill::plan`]): ids only, no bodies.
pub struct Plan {
    containers: Vec<Box<str>>,
    loose: Vec<Box<str>>,
    loose_container: Option<Value>,
    notes: Vec<NotCarried>,
}

impl Plan {
    /// The number of events: one per report and grouping, and one for the objects outside.
    pub fn events(&self) -> usize {
        self.containers.len() + usize::from(self.loose_container.is_some())
    }

    /// What is not carried into MISP, sorted by id, each once (after the events were
    /// written, what their conversion noted too).
    pub fn notes(&mut self) -> &[NotCarried] {
        self.notes.sort_by(|a, b| a.id.cmp(&b.id));
        self.notes.dedup();
        &self.notes
    }
}

/// The two scratch files of the event being written (its MISP objects and galaxy clusters,
/// which follow its attributes in the event's JSON), handed in by the caller (e.g.
/// `tempfile::tempfile()`), truncated for each event.
pub struct Scratch {
    /// For `Event.Object`.
    pub objects: File,
    /// For `Event.Galaxy`.
    pub galaxies: File,
}

/// What one event written was: its uuid and the fields of its manifest entry.
struct Written {
    uuid: String,
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

/// `v` as `serde_json::to_string_pretty` writes it when it stands at nesting depth `level`
/// (its inner lines indented accordingly; a JSON string holds no raw newline).
fn pretty_at(out: &mut dyn Write, v: &Value, level: usize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    if level == 0 {
        return out.write_all(text.as_bytes());
    }
    let pad = format!("\n{}", indent(level));
    out.write_all(text.replace('\n', &pad).as_bytes())
}

/// Writes one event document `{"Event": {…}}` at nesting depth `level` to `out`, its
/// attributes as they are converted, its objects and clusters through `scratch`; each
/// attribute value's `hashes.csv` lines to `hashes` when given. Returns the event's uuid.
#[allow(clippy::too_many_arguments)]
fn write_event(
    out: &mut dyn Write,
    level: usize,
    spill: &Spill,
    container: &Value,
    refs: &mut dyn Iterator<Item = &str>,
    scratch: &mut Scratch,
    mut hashes: Option<&mut dyn Write>,
    notes: &mut Vec<NotCarried>,
) -> std::io::Result<Written> {
    let get = |id: &str| spill.get(id);
    let head = event_head(container, &get);
    let uuid = head
        .get("uuid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    // The keys in the order `Value` serialises them, the three lists among them.
    let mut skeleton = head.clone();
    for k in ["Attribute", "Object", "Galaxy"] {
        skeleton.insert(k.into(), Value::Null);
    }
    scratch.objects.set_len(0)?;
    scratch.objects.rewind()?;
    scratch.galaxies.set_len(0)?;
    scratch.galaxies.rewind()?;
    let mut objects = BufWriter::new(&scratch.objects);
    let mut galaxies = BufWriter::new(&scratch.galaxies);
    let (mut n_objects, mut n_galaxies) = (0usize, 0usize);
    write!(out, "{{\n{}\"Event\": {{", indent(level + 1))?;
    let mut first_key = true;
    let mut parts_done = false;
    for (k, v) in &skeleton {
        write!(
            out,
            "{}\n{}{}: ",
            if first_key { "" } else { "," },
            indent(level + 2),
            Value::String(k.clone())
        )?;
        first_key = false;
        match k.as_str() {
            "Attribute" => {
                // The first list in key order (in both orders serde_json may keep): the
                // attributes go straight out, the rest to the scratch files.
                debug_assert!(!parts_done);
                parts_done = true;
                let mut n = 0usize;
                let mut emit = |p: Part| -> std::io::Result<()> {
                    match p {
                        Part::Attribute(a) => {
                            if let Some(h) = hashes.as_deref_mut() {
                                for line in attribute_hash_lines(&a, &uuid) {
                                    writeln!(h, "{line}")?;
                                }
                            }
                            out.write_all(if n == 0 { b"[" } else { b"," })?;
                            write!(out, "\n{}", indent(level + 3))?;
                            pretty_at(out, &a, level + 3)?;
                            n += 1;
                        }
                        Part::Object(o) => {
                            serde_json::to_writer(&mut objects, &o)?;
                            objects.write_all(b"\n")?;
                            n_objects += 1;
                        }
                        Part::Galaxy(g) => {
                            serde_json::to_writer(&mut galaxies, &g)?;
                            galaxies.write_all(b"\n")?;
                            n_galaxies += 1;
                        }
                    }
                    Ok(())
                };
                event_parts(container, &mut *refs, &get, notes, &mut emit)?;
                if n == 0 {
                    out.write_all(b"[]")?;
                } else {
                    write!(out, "\n{}]", indent(level + 2))?;
                }
                objects.flush()?;
                galaxies.flush()?;
            }
            "Object" | "Galaxy" => {
                debug_assert!(parts_done, "Attribute sorts before Object and Galaxy");
                let (file, n) = if k == "Object" {
                    (&scratch.objects, n_objects)
                } else {
                    (&scratch.galaxies, n_galaxies)
                };
                if n == 0 {
                    out.write_all(b"[]")?;
                    continue;
                }
                let mut reader = BufReader::new(file);
                reader.seek(SeekFrom::Start(0))?;
                let mut line = String::new();
                let mut i = 0usize;
                while {
                    line.clear();
                    reader.read_line(&mut line)? > 0
                } {
                    let v: Value = serde_json::from_str(&line)?;
                    if k == "Object"
                        && let Some(h) = hashes.as_deref_mut()
                    {
                        for a in v
                            .get("Attribute")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            for l in attribute_hash_lines(a, &uuid) {
                                writeln!(h, "{l}")?;
                            }
                        }
                    }
                    out.write_all(if i == 0 { b"[" } else { b"," })?;
                    write!(out, "\n{}", indent(level + 3))?;
                    pretty_at(out, &v, level + 3)?;
                    i += 1;
                }
                write!(out, "\n{}]", indent(level + 2))?;
            }
            _ => pretty_at(out, v, level + 2)?,
        }
    }
    write!(out, "\n{}}}\n{}}}", indent(level + 1), indent(level))?;
    Ok(Written { uuid })
}

/// What [`for_each_event`] calls per event: the container, its references, the notes.
type EventFn<'f> = dyn FnMut(&Value, &mut dyn Iterator<Item = &str>, &mut Vec<NotCarried>) -> Result<(), ExportError>
    + 'f;

/// The events of `plan` in order: each container with its references, then the loose one.
fn for_each_event(spill: &Spill, plan: &mut Plan, f: &mut EventFn<'_>) -> Result<(), ExportError> {
    let mut notes = std::mem::take(&mut plan.notes);
    for id in &plan.containers {
        let Some(c) = spill.get(id) else {
            spill.check()?;
            continue;
        };
        f(&c, &mut refs_of(&c), &mut notes)?;
        spill.check()?;
    }
    if let Some(c) = &plan.loose_container {
        f(c, &mut plan.loose.iter().map(|s| s.as_ref()), &mut notes)?;
        spill.check()?;
    }
    plan.notes = notes;
    Ok(())
}

/// Writes the events of `plan` as a MISP feed in `dir`, as [`crate::feed::write_feed`]
/// writes them: `<uuid>.json` per event as it is converted (through `<uuid>.tmp` and a
/// rename), `hashes.csv` line by line alongside, then `manifest.json` (event uuid order,
/// each entry made again from its container) last. Returns the number of events.
///
/// Errors: a file that cannot be written (named); the spill or scratch files.
pub fn write_feed(
    dir: &Path,
    spill: &Spill,
    plan: &mut Plan,
    scratch: &mut Scratch,
) -> Result<usize, ExportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source: std::io::Error| {
            ExportError::Feed(FeedError::Io {
                path: path.clone(),
                source,
            })
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let hashes_path = dir.join("hashes.csv");
    let hashes_tmp = hashes_path.with_extension("tmp");
    let mut hashes = BufWriter::new(File::create(&hashes_tmp).map_err(io(&hashes_tmp))?);
    // uuid → container id (ids only), for the manifest; the last event of a uuid wins, as
    // its file replaces the earlier one.
    let mut order: Vec<(String, usize)> = Vec::new();
    let mut events = 0usize;
    for_each_event(spill, plan, &mut |c, refs, notes| {
        let uuid = uuid_of(c.get("id").and_then(Value::as_str).unwrap_or(""));
        let path = dir.join(format!("{uuid}.json"));
        let tmp = path.with_extension("tmp");
        let mut f = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
        let w = write_event(&mut f, 0, spill, c, refs, scratch, Some(&mut hashes), notes)
            .map_err(io(&tmp))?;
        let f = f.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        order.push((w.uuid, events));
        events += 1;
        Ok(())
    })?;
    let f = hashes
        .into_inner()
        .map_err(|e| io(&hashes_tmp)(e.into_error()))?;
    f.sync_all().map_err(io(&hashes_tmp))?;
    std::fs::rename(&hashes_tmp, &hashes_path).map_err(io(&hashes_path))?;

    let manifest_path = dir.join("manifest.json");
    let manifest_tmp = manifest_path.with_extension("tmp");
    let mut m = BufWriter::new(File::create(&manifest_tmp).map_err(io(&manifest_tmp))?);
    order.sort();
    let n_containers = plan.containers.len();
    let mut written = 0usize;
    for (i, (uuid, n)) in order.iter().enumerate() {
        if order.get(i + 1).is_some_and(|(next, _)| next == uuid) {
            continue;
        }
        let held;
        let c: &Value = if *n < n_containers {
            match spill.get(&plan.containers[*n]) {
                Some(c) => {
                    held = c;
                    &held
                }
                None => {
                    spill.check()?;
                    continue;
                }
            }
        } else {
            match &plan.loose_container {
                Some(c) => c,
                None => continue,
            }
        };
        let get = |id: &str| spill.get(id);
        let entry = manifest_entry(&Value::Object(event_head(c, &get)));
        spill.check()?;
        let w = &mut m as &mut dyn Write;
        (|| -> std::io::Result<()> {
            w.write_all(if written == 0 { b"{" } else { b"," })?;
            write!(w, "\n  {}: ", Value::String(uuid.clone()))?;
            pretty_at(w, &entry, 1)
        })()
        .map_err(io(&manifest_tmp))?;
        written += 1;
    }
    m.write_all(if written == 0 { b"{}" } else { b"\n}" })
        .map_err(io(&manifest_tmp))?;
    let f = m
        .into_inner()
        .map_err(|e| io(&manifest_tmp)(e.into_error()))?;
    f.sync_all().map_err(io(&manifest_tmp))?;
    std::fs::rename(&manifest_tmp, &manifest_path).map_err(io(&manifest_path))?;
    Ok(events)
}

/// Writes the events of `plan` to `out` as MISP event JSON, pretty-printed as
/// `serde_json::to_string_pretty` does: `{"Event": {…}}` when there is one event,
/// `{"response": [{"Event": …}, …]}` otherwise (no newline after). Returns the number of
/// events. Errors: `out`; the spill or scratch files.
pub fn write_events(
    out: &mut dyn Write,
    spill: &Spill,
    plan: &mut Plan,
    scratch: &mut Scratch,
) -> Result<usize, ExportError> {
    let single = plan.events() == 1;
    if !single {
        out.write_all(b"{\n  \"response\": [")
            .map_err(ExportError::Output)?;
    }
    let mut n = 0usize;
    for_each_event(spill, plan, &mut |c, refs, notes| {
        let level = if single {
            0
        } else {
            out.write_all(if n == 0 { b"\n    " } else { b",\n    " })
                .map_err(ExportError::Output)?;
            2
        };
        write_event(out, level, spill, c, refs, scratch, None, notes)
            .map_err(ExportError::Output)?;
        n += 1;
        Ok(())
    })?;
    if !single {
        out.write_all(if n == 0 { b"]\n}" } else { b"\n  ]\n}" })
            .map_err(ExportError::Output)?;
    }
    Ok(n)
}

/// The events of `plan` as `Value`s, built whole as the export did before it streamed
/// ([`crate::from_stix::to_misp_event_noting`] over the spill, the loose event as
/// [`crate::from_stix::loose_event_noting`] with the plan's container), and what they do not
/// carry: the reference the streamed bytes are tested against. Holds every event: for tests
/// and small collections only.
pub fn events_whole(spill: &Spill, plan: &Plan) -> (Vec<Value>, Vec<NotCarried>) {
    let get = |id: &str| spill.get(id).map(|h| (*h).clone());
    let mut notes = plan.notes.clone();
    let mut out = Vec::new();
    for id in &plan.containers {
        if let Ok(e) = crate::from_stix::to_misp_event_noting(id, &get, &mut notes) {
            out.push(e);
        }
    }
    if let Some(c) = &plan.loose_container {
        let refs: Vec<String> = plan.loose.iter().map(|s| s.to_string()).collect();
        out.push(crate::from_stix::event_from(c, &refs, &get, &mut notes));
    }
    notes.sort_by(|a, b| a.id.cmp(&b.id));
    notes.dedup();
    (out, notes)
}
