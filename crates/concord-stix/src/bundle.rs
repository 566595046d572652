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

use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::id::StixId;

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
}

impl<R: Read> BundleReader<R> {
    /// Wraps a reader; it is buffered here, so pass the raw file or stream.
    pub fn new(reader: R) -> Self {
        BundleReader { reader }
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
        let seed = BundleSeed {
            on_object: &mut on_object,
            callback_error: &mut callback_error,
        };
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
            1 << 16,
            self.reader,
        ));
        let result = seed.deserialize(&mut de).and_then(|s| de.end().map(|()| s));
        if let Some(e) = callback_error {
            return Err(BundleError::Callback(e));
        }
        let raw = result.map_err(|e| {
            if e.is_io() {
                BundleError::Io(e.to_string())
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
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            if let Err(e) = (self.on_object)(n, raw) {
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
}
