//! Strict JSON for objects: one value per member name (RFC 8259 §4, I-JSON RFC 7493 §2.3).
//!
//! RFC 8259 §4 says the names within an object SHOULD be unique, and that when they are not,
//! implementations differ: some take the first value, some the last, some both. Concord
//! stores the producer's bytes and decides egress on the parsed value, so a duplicate member
//! would let the decision (on one value) and the bytes sent (holding the other) disagree: a
//! raw e-mail address or a TLP:RED marking hidden behind a second key. STIX 2.1 requires
//! I-JSON (§3.1: "MUST be valid I-JSON"), and I-JSON §2.3 forbids duplicate names. So every
//! object that comes in, and every stored object before it goes out, is parsed with
//! [`parse_object`], which refuses duplicates and names the key and where it is.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why [`parse_object`] refused a text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (serde_json's message, with line and column).
    #[error("{0}")]
    Syntax(String),
    /// A member name appears twice in one JSON object.
    #[error(
        "duplicate member name {key:?} at {path} (RFC 8259 §4, I-JSON RFC 7493 §2.3; STIX 2.1 §3.1 requires I-JSON)"
    )]
    DuplicateKey {
        /// The repeated name.
        key: String,
        /// Where the object holding it is: `$` for the top level, then `.name` and `[index]`.
        path: String,
    },
}

/// Parses `text` as JSON, refusing any JSON object (at any depth) with a repeated member
/// name. Errors: [`JsonError::Syntax`] for malformed JSON, [`JsonError::DuplicateKey`]
/// naming the key and its path (`$.extensions.x[2]`).
pub fn parse_object(text: &str) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut found = None;
    let value = StrictSeed { found: &mut found }.deserialize(&mut de);
    if let Some(Duplicate { key, mut path }) = found {
        path.reverse();
        return Err(JsonError::DuplicateKey {
            key,
            path: render(&path),
        });
    }
    let value = value.map_err(|e| JsonError::Syntax(e.to_string()))?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// One step of the path to a value.
enum Step {
    Key(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut s = String::from("$");
    for step in path {
        match step {
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The repeated name, and the path to its object, innermost step first: each level adds
/// its step while the error unwinds, so that reading valid JSON keeps no path at all.
struct Duplicate {
    key: String,
    path: Vec<Step>,
}

/// Reads one value into a [`Value`], recording the first repeated member name in `found`.
struct StrictSeed<'p> {
    found: &'p mut Option<Duplicate>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let next = seq.next_element_seed(StrictSeed { found: self.found });
            match next {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    if let Some(d) = self.found.as_mut() {
                        d.path.push(Step::Index(out.len()));
                    }
                    return Err(e);
                }
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                // The first duplicate ends the read: the error names it, and the levels
                // above add their steps to its path.
                let message = format!("duplicate member name {key:?}");
                *self.found = Some(Duplicate {
                    key,
                    path: Vec::new(),
                });
                return Err(de::Error::custom(message));
            }
            match map.next_value_seed(StrictSeed { found: self.found }) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => {
                    if let Some(d) = self.found.as_mut() {
                        d.path.push(Step::Key(key));
                    }
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_with_key_and_path() {
        let e = parse_object(r#"{"a":1,"b":{"c":[{"d":1,"d":2}]}}"#).unwrap_err();
        assert_eq!(
            e,
            JsonError::DuplicateKey {
                key: "d".into(),
                path: "$.b.c[0]".into()
            }
        );
        let e = parse_object(r#"{"contact_information":"a@b.cn","contact_information":"x"}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("\"contact_information\" at $"),
            "{e}"
        );
    }

    #[test]
    fn same_value_as_serde_json_without_duplicates() {
        let text = r#"{"type":"x","n":[1,-2,3.5,1e300,18446744073709551615],"s":"é\u0000","o":{},"z":null,"t":true}"#;
        assert_eq!(
            parse_object(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        // The same name in sibling objects is not a duplicate.
        assert!(parse_object(r#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn syntax_errors_and_trailing_text() {
        assert!(matches!(parse_object("{"), Err(JsonError::Syntax(_))));
        assert!(matches!(parse_object("{} {}"), Err(JsonError::Syntax(_))));
    }
}
