//! Streaming bundle reader (STIX 2.1 §8).
//!
//! A bundle of 40 MB must not cost 40 MB: [`BundleReader`] walks the JSON with serde's
//! visitor and hands each element of `objects` to a callback as soon as it is read, as the
//! raw bytes of that one object ([`RawValue`]). Peak memory is one object plus what the
//! callback keeps.
//!
//! The bundle's own properties are checked too: `type` MUST be `"bundle"` and `id` MUST be a
//! `bundle--UUID`. Because JSON objects are unordered, those may come after `objects`; the
//! caller learns of such a failure at the end and is expected to roll back (the import is one
//! transaction per file).
//!
//! Each object is capped while it is read ([`BundleReader::max_object_size`], 8 MiB by
//! default): the bytes are counted as serde_json pulls them, and the read that crosses the cap
//! fails with [`BundleError::ObjectTooLarge`] naming the object's index, so an object of a
//! gigabyte costs at most the cap, never the gigabyte.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::id::StixId;
use crate::limit::{DEFAULT_MAX_OBJECT_SIZE, TooLarge};

/// Why a bundle could not be read. Each variant gives the place.
#[derive(Debug, thiserror::Error)]
pub enum BundleError<E: fmt::Display + fmt::Debug> {
    /// The input is not JSON (or is cut short); line and column are 1-based.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// Reading the input failed (includes a truncated or corrupt gzip stream).
    #[error("read error: {0}")]
    Io(String),
    /// An element of `objects` is larger than the per-object limit; reading stopped there.
    #[error(
        "objects[{index}]: larger than the limit of {limit} bytes per object (max_object_size)"
    )]
    ObjectTooLarge {
        /// Position of the object in `objects` (0-based).
        index: usize,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The input is larger than its cap once decompressed ([`crate::CappedReader`]).
    #[error("input larger than the limit of {limit} bytes once decompressed (max_unpacked)")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// Valid JSON that is not a STIX bundle.
    #[error("not a STIX bundle: {0} (STIX 2.1 §8)")]
    NotABundle(String),
    /// The callback refused an object and asked to stop.
    #[error("{0}")]
    Callback(E),
}

/// What was read besides the objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleSummary {
    /// The bundle's `id`.
    pub id: String,
    /// The bundle's `spec_version` when present (STIX 2.0 bundles carry `"2.0"`; 2.1 bundles
    /// have none).
    pub spec_version: Option<String>,
    /// Number of elements seen in `objects`.
    pub objects: usize,
}

/// Reads one bundle from a byte stream, object by object.
pub struct BundleReader<R> {
    reader: R,
    max_object_size: u64,
}

impl<R: Read> BundleReader<R> {
    /// Wraps a reader; it is buffered here, so pass the raw file or stream. Objects are
    /// capped at [`DEFAULT_MAX_OBJECT_SIZE`] bytes.
    pub fn new(reader: R) -> Self {
        BundleReader {
            reader,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
        }
    }

    /// Caps each element of `objects` at `limit` bytes as written (the separator and
    /// whitespace before it count too). An object over the cap stops the read with
    /// [`BundleError::ObjectTooLarge`] once `limit` bytes of it have been read.
    pub fn max_object_size(mut self, limit: u64) -> Self {
        self.max_object_size = limit;
        self
    }

    /// Calls `on_object(index, raw)` for each element of `objects`, in order (index 0-based).
    ///
    /// Errors: [`BundleError::Json`] with line and column for malformed input, [`BundleError::NotABundle`] for valid JSON that is not a
    /// bundle, [`BundleError::Callback`] when `on_object` returns an error (reading stops).
    pub fn read<E, F>(self, on_object: F) -> Result<BundleSummary, BundleError<E>>
    where
        E: fmt::Display + fmt::Debug,
        F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
    {
        self.read_container(Container::Bundle, on_object)
    }

    /// Like [`BundleReader::read`] for a TAXII envelope (TAXII 2.1 §3.7): a JSON object whose
    /// `objects` holds the objects; it has no `type` or `id`. Errors:
    /// [`BundleError::NotABundle`] when `objects` is missing.
    pub fn read_envelope<E, F>(self, on_object: F) -> Result<BundleSummary, BundleError<E>>
    where
        E: fmt::Display + fmt::Debug,
        F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
    {
        self.read_container(Container::Envelope, on_object)
    }

    fn read_container<E, F>(
        self,
        container: Container,
        on_object: F,
    ) -> Result<BundleSummary, BundleError<E>>
    where
        E: fmt::Display + fmt::Debug,
        F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
    {
        let mut callback_error = None;
        let mut on_object = on_object;
        let meter = Rc::new(Meter::default());
        let seed = BundleSeed {
            on_object: &mut on_object,
            callback_error: &mut callback_error,
            meter: ObjectMeter {
                meter: meter.clone(),
                limit: self.max_object_size,
            },
        };
        // The meter sits outside the buffer: serde_json pulls bytes one at a time, so what it
        // counts is exactly what the parser has consumed.
        let mut de = serde_json::Deserializer::from_reader(Metered {
            inner: std::io::BufReader::with_capacity(1 << 16, self.reader),
            meter: meter.clone(),
        });
        let result = seed.deserialize(&mut de).and_then(|s| de.end().map(|()| s));
        if let Some(e) = callback_error {
            return Err(BundleError::Callback(e));
        }
        if let Some(index) = meter.tripped.get() {
            return Err(BundleError::ObjectTooLarge {
                index,
                limit: self.max_object_size,
            });
        }
        let raw = result.map_err(|e| {
            if e.is_io() {
                let e = io::Error::from(e);
                match TooLarge::find(&e) {
                    Some(TooLarge { limit }) => BundleError::TooLarge { limit },
                    None => BundleError::Io(e.to_string()),
                }
            } else {
                let message = e.to_string();
                // serde_json appends " at line L column C"; keep only the description.
                let message = match message.rfind(" at line ") {
                    Some(i) => message[..i].to_owned(),
                    None => message,
                };
                if message.starts_with("not a bundle:") {
                    BundleError::NotABundle(message["not a bundle: ".len()..].to_owned())
                } else {
                    BundleError::Json {
                        line: e.line(),
                        column: e.column(),
                        message,
                    }
                }
            }
        })?;
        if container == Container::Envelope {
            if !raw.seen_objects {
                return Err(BundleError::NotABundle(
                    "an envelope needs an \"objects\" list (TAXII 2.1 §3.7)".to_owned(),
                ));
            }
            return Ok(BundleSummary {
                id: String::new(),
                spec_version: None,
                objects: raw.objects,
            });
        }
        if raw.ty.as_deref() != Some("bundle") {
            return Err(BundleError::NotABundle(match raw.ty {
                Some(t) => format!("its type is {t:?}, not \"bundle\""),
                None => "it has no \"type\": \"bundle\" property".to_owned(),
            }));
        }
        let id = raw
            .id
            .ok_or_else(|| BundleError::NotABundle("it has no \"id\"".to_owned()))?;
        match StixId::parse(&id) {
            Ok(sid) if sid.object_type() == "bundle" => {}
            Ok(_) => {
                return Err(BundleError::NotABundle(format!(
                    "its id {id:?} is not a bundle id"
                )));
            }
            Err(e) => return Err(BundleError::NotABundle(format!("id {id:?}: {e}"))),
        }
        Ok(BundleSummary {
            id,
            spec_version: raw.spec_version,
            objects: raw.objects,
        })
    }
}

/// Bytes consumed by the parser, and where the object being read must end.
#[derive(Default)]
struct Meter {
    consumed: Cell<u64>,
    /// The read that would go past this position fails; `None`: no object is being read.
    stop_at: Cell<Option<u64>>,
    /// The object being read, and whether it crossed its cap.
    index: Cell<usize>,
    tripped: Cell<Option<usize>>,
    /// Once reading has failed (a cap crossed, the caller refused an object), every later
    /// read fails too: serde_json still looks for the closing `]`/`}` after an error, and
    /// must not read on through endless whitespace.
    halted: Cell<bool>,
}

struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let m = &self.meter;
        if m.halted.get() {
            return Err(io::Error::other("reading stopped"));
        }
        let buf = match m.stop_at.get() {
            Some(stop) => {
                let room = stop.saturating_sub(m.consumed.get());
                if room == 0 {
                    m.tripped.set(Some(m.index.get()));
                    m.halted.set(true);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "object larger than max_object_size",
                    ));
                }
                let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                &mut buf[..n]
            }
            None => buf,
        };
        let n = self.inner.read(buf)?;
        m.consumed.set(m.consumed.get() + n as u64);
        Ok(n)
    }
}

/// The visitor's handle on the meter: arms the cap before each element of `objects`.
struct ObjectMeter {
    meter: Rc<Meter>,
    limit: u64,
}

impl ObjectMeter {
    fn arm(&self, index: usize) {
        let m = &self.meter;
        m.index.set(index);
        m.stop_at
            .set(Some(m.consumed.get().saturating_add(self.limit)));
    }

    fn disarm(&self) {
        self.meter.stop_at.set(None);
    }

    fn halt(&self) {
        self.meter.halted.set(true);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Bundle,
    Envelope,
}

struct RawSummary {
    seen_objects: bool,
    ty: Option<String>,
    id: Option<String>,
    spec_version: Option<String>,
    objects: usize,
}

struct BundleSeed<'a, E, F> {
    on_object: &'a mut F,
    callback_error: &'a mut Option<E>,
    meter: ObjectMeter,
}

impl<'de, E, F> DeserializeSeed<'de> for BundleSeed<'_, E, F>
where
    F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
{
    type Value = RawSummary;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawSummary, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E, F> Visitor<'de> for BundleSeed<'_, E, F>
where
    F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
{
    type Value = RawSummary;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a STIX bundle (a JSON object with \"type\": \"bundle\")")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<RawSummary, A::Error> {
        Err(de::Error::custom(
            "not a bundle: the top level is a JSON array, not a bundle object",
        ))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSummary, A::Error> {
        let mut s = RawSummary {
            seen_objects: false,
            ty: None,
            id: None,
            spec_version: None,
            objects: 0,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => s.ty = Some(map.next_value()?),
                "id" => s.id = Some(map.next_value()?),
                "spec_version" => s.spec_version = Some(map.next_value()?),
                "objects" => {
                    if s.seen_objects {
                        return Err(de::Error::custom("not a bundle: \"objects\" appears twice"));
                    }
                    s.seen_objects = true;
                    s.objects = map.next_value_seed(ObjectsSeed {
                        on_object: &mut *self.on_object,
                        callback_error: &mut *self.callback_error,
                        meter: &self.meter,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(s)
    }
}

struct ObjectsSeed<'a, E, F> {
    on_object: &'a mut F,
    callback_error: &'a mut Option<E>,
    meter: &'a ObjectMeter,
}

impl<'de, E, F> DeserializeSeed<'de> for ObjectsSeed<'_, E, F>
where
    F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
{
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E, F> Visitor<'de> for ObjectsSeed<'_, E, F>
where
    F: FnMut(usize, Box<RawValue>) -> Result<(), E>,
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"objects\": a JSON array of STIX objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        loop {
            self.meter.arm(n);
            let next = seq.next_element::<Box<RawValue>>();
            self.meter.disarm();
            let Some(raw) = next? else { break };
            if let Err(e) = (self.on_object)(n, raw) {
                self.meter.halt();
                *self.callback_error = Some(e);
                return Err(de::Error::custom("stopped by the caller"));
            }
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> (Result<BundleSummary, BundleError<String>>, Vec<String>) {
        let mut seen = Vec::new();
        let r = BundleReader::new(input.as_bytes()).read(|_, raw| {
            seen.push(raw.get().to_owned());
            Ok::<(), String>(())
        });
        (r, seen)
    }

    #[test]
    fn streams_objects_verbatim() {
        let (r, seen) = read(
            r#"{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":[{"a": 1.50},{"b":"x"}]}"#,
        );
        assert_eq!(r.unwrap().objects, 2);
        assert_eq!(seen, vec![r#"{"a": 1.50}"#, r#"{"b":"x"}"#]);
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let (r, _) = read("{\"type\":\"bundle\",\n\"objects\":[{\"a\":1,}]}");
        match r {
            Err(BundleError::Json { line, column, .. }) => assert_eq!((line, column), (2, 19)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_a_bundle() {
        let (r, _) = read(r#"[{"type":"indicator"}]"#);
        assert!(matches!(r, Err(BundleError::NotABundle(_))), "{r:?}");
        let (r, _) =
            read(r#"{"type":"indicator","id":"indicator--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11"}"#);
        assert!(matches!(r, Err(BundleError::NotABundle(_))), "{r:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "{{\"type\":\"bundle\",\"id\":\"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11\",\"objects\":[{}{}]}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        // The reader skips over the raw object without recursion; parsing that one object
        // is where serde_json's depth limit (128) turns it into an error.
        let (r, seen) = read(&deep);
        assert_eq!(r.unwrap().objects, 1);
        let err = serde_json::from_str::<serde_json::Value>(&seen[0]).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    const BUNDLE_HEAD: &str =
        r#"{"type":"bundle","id":"bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11","objects":["#;

    #[test]
    fn an_oversized_object_is_named_and_not_handed_over() {
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(10_000));
        let input = format!(r#"{BUNDLE_HEAD}{{"a":1}},{big},{{"b":2}}]}}"#);
        let mut seen = Vec::new();
        let r = BundleReader::new(input.as_bytes())
            .max_object_size(1000)
            .read(|i, _| {
                seen.push(i);
                Ok::<(), String>(())
            });
        match r {
            Err(
                e @ BundleError::ObjectTooLarge {
                    index: 1,
                    limit: 1000,
                },
            ) => {
                assert!(e.to_string().contains("objects[1]"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen, vec![0]);
    }

    #[test]
    fn an_object_of_a_gigabyte_costs_the_cap_only() {
        // An endless object: the reader must stop at the cap, not read to the end.
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b' ');
                self.0 += buf.len() as u64;
                Ok(buf.len())
            }
        }
        let head = format!(r#"{BUNDLE_HEAD}{{"x":"#);
        let mut endless = Endless(0);
        let r = BundleReader::new(head.as_bytes().chain(&mut endless))
            .max_object_size(1 << 20)
            .read(|_, _| Ok::<(), String>(()));
        assert!(
            matches!(r, Err(BundleError::ObjectTooLarge { index: 0, .. })),
            "{r:?}"
        );
        // One buffer of 64 KiB past the cap at most.
        assert!(endless.0 < (1 << 20) + (1 << 17), "{}", endless.0);
    }

    #[test]
    fn objects_within_the_cap_pass_whatever_the_bundle_size() {
        let obj = format!(r#"{{"x":"{}"}}"#, "a".repeat(900));
        let objects = vec![obj; 100].join(",");
        let input = format!("{BUNDLE_HEAD}{objects}]}}");
        let r = BundleReader::new(input.as_bytes())
            .max_object_size(1000)
            .read(|_, _| Ok::<(), String>(()));
        assert_eq!(r.unwrap().objects, 100);
    }

    #[test]
    fn a_capped_input_names_its_limit() {
        let input = format!(r#"{BUNDLE_HEAD}{{"a":1}},{{"b":2}}]}}"#);
        let r = BundleReader::new(crate::CappedReader::new(input.as_bytes(), 80))
            .read(|_, _| Ok::<(), String>(()));
        assert!(
            matches!(r, Err(BundleError::TooLarge { limit: 80 })),
            "{r:?}"
        );
    }
}
