//! Object paths over JSON and the comparison operators (STIX 2.1 §9.3, §9.7).
//!
//! Type rules, as the specification and the OASIS reference matcher apply them:
//! - numbers compare with numbers (integer or float); strings with strings by code point;
//!   booleans with booleans; timestamps with strings of the data parsed as STIX timestamps
//!   (a string that is not one is an [`EvalError::InvalidTimestamp`]);
//! - binary values (`b''`, `h''`, and data properties named `*_bin` (base64) or `*_hex`)
//!   compare with binary values, and with strings whose code points are all below 256, read
//!   as bytes;
//! - any other pair is unequal and unordered: `=`, `<`… are false, `!=` is true;
//! - `LIKE` and `MATCHES` compare strings after Unicode NFC normalisation of both sides, and
//!   binary values when the pattern's code points are all below 256; anything else is false;
//! - `ISSUBSET`/`ISSUPERSET` are false for values that are not addresses or CIDR blocks;
//! - `NOT` negates the whole test, including a false that came from a type mismatch.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::ip;
use crate::ast::{
    ComparisonExpr, Literal, ObjectPath, ObservationExpr, Operand, Operator, PathStep, Test,
};
use crate::error::EvalError;
use crate::lexer::{decode_base64, hex_val};
use crate::timestamp::Timestamp;

/// Where `_ref`/`_refs` values are looked up: the observed-data's embedded objects by key
/// (STIX 2.0 style), then the group's objects by id. The group's map is shared by every
/// observed-data of the group, not copied: a bundle of 10,000 observed-data objects would
/// otherwise hold 10,000 copies of it.
pub(crate) struct Scope<'a> {
    group: std::sync::Arc<HashMap<&'a str, &'a Value>>,
    embedded: HashMap<&'a str, &'a Value>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(group: std::sync::Arc<HashMap<&'a str, &'a Value>>) -> Self {
        Scope {
            group,
            embedded: HashMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, key: &'a str, v: &'a Value) {
        self.embedded.insert(key, v);
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.embedded
            .get(key)
            .or_else(|| self.group.get(key))
            .copied()
    }
}

/// A value selected by an object path.
pub(crate) enum Val<'a> {
    Json(&'a Value),
    Bytes(Vec<u8>),
    /// The objects a `_refs` list points to.
    Objects(Vec<&'a Value>),
}

fn bad(property: &str, reason: impl Into<String>) -> EvalError {
    EvalError::InvalidData {
        property: property.to_string(),
        reason: reason.into(),
    }
}

/// A key step: the property, decoded by suffix (`_hex`, `_bin`) or dereferenced (`_ref`,
/// `_refs`, §9.5 "object references").
fn step_key<'a>(
    v: &Val<'a>,
    key: &str,
    scope: &Scope<'a>,
    out: &mut Vec<Val<'a>>,
) -> Result<(), EvalError> {
    let Val::Json(Value::Object(map)) = v else {
        return Ok(());
    };
    let Some(x) = map.get(key) else {
        return Ok(());
    };
    if key.ends_with("_ref") {
        match x {
            Value::String(id) => {
                if let Some(o) = scope.get(id.as_str()) {
                    out.push(Val::Json(o));
                }
            }
            Value::Null => {}
            _ => return Err(bad(key, "a reference must be a string")),
        }
    } else if key.ends_with("_refs") {
        let Value::Array(ids) = x else {
            return Err(bad(key, "a reference list must be a list"));
        };
        let mut objs = Vec::new();
        for id in ids {
            let Value::String(id) = id else {
                return Err(bad(key, "a reference must be a string"));
            };
            if let Some(o) = scope.get(id.as_str()) {
                objs.push(o);
            }
        }
        out.push(Val::Objects(objs));
    } else if let (true, Value::String(s)) = (key.ends_with("_hex"), x) {
        let b = s.as_bytes();
        if b.len() % 2 == 1 || !b.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad(key, "not a hexadecimal string"));
        }
        out.push(Val::Bytes(
            b.chunks(2)
                .map(|p| (hex_val(p[0]) << 4) | hex_val(p[1]))
                .collect(),
        ));
    } else if let (true, Value::String(s)) = (key.ends_with("_bin"), x) {
        let bytes = if s.is_empty() {
            Vec::new()
        } else {
            decode_base64(s).map_err(|(_, m)| bad(key, format!("not base64: {m}")))?
        };
        out.push(Val::Bytes(bytes));
    } else {
        out.push(Val::Json(x));
    }
    Ok(())
}

/// The values an object path selects from one root object (§9.3.1). A missing property, an
/// index out of range or a step into the wrong kind of value selects nothing.
pub(crate) fn select<'a>(
    path: &ObjectPath,
    root: &'a Value,
    scope: &Scope<'a>,
) -> Result<Vec<Val<'a>>, EvalError> {
    if root.get("type").and_then(Value::as_str) != Some(path.object_type.as_str()) {
        return Ok(Vec::new());
    }
    let mut cur = Vec::new();
    step_key(&Val::Json(root), &path.property, scope, &mut cur)?;
    for step in &path.steps {
        let mut next = Vec::new();
        for v in &cur {
            match step {
                PathStep::Key(k) => step_key(v, k, scope, &mut next)?,
                PathStep::Index(i) => {
                    let Ok(i) = usize::try_from(*i) else { continue };
                    match v {
                        Val::Json(Value::Array(a)) => next.extend(a.get(i).map(Val::Json)),
                        Val::Objects(o) => next.extend(o.get(i).map(|x| Val::Json(x))),
                        _ => {}
                    }
                }
                PathStep::AnyIndex => match v {
                    Val::Json(Value::Array(a)) => next.extend(a.iter().map(Val::Json)),
                    Val::Objects(o) => next.extend(o.iter().map(|x| Val::Json(x))),
                    _ => {}
                },
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// Compiled regular expressions of the pattern's `LIKE` and `MATCHES` tests, keyed by the
/// test's address in the pattern.
pub(crate) struct CompiledTests {
    map: HashMap<usize, Compiled>,
}

struct Compiled {
    text: regex::Regex,
    /// `None` when the pattern has code points of 256 or above and so cannot match bytes.
    bytes: Option<regex::bytes::Regex>,
}

fn key_of(t: &Test) -> usize {
    t as *const Test as usize
}

impl CompiledTests {
    pub(crate) fn compile(e: &ObservationExpr) -> Result<CompiledTests, EvalError> {
        let mut c = CompiledTests {
            map: HashMap::new(),
        };
        c.walk_obs(e)?;
        Ok(c)
    }

    fn walk_obs(&mut self, e: &ObservationExpr) -> Result<(), EvalError> {
        match e {
            ObservationExpr::Observation(c) => self.walk_cmp(c),
            ObservationExpr::And(items)
            | ObservationExpr::Or(items)
            | ObservationExpr::FollowedBy(items) => items.iter().try_for_each(|i| self.walk_obs(i)),
            ObservationExpr::Qualified { expr, .. } => self.walk_obs(expr),
        }
    }

    fn walk_cmp(&mut self, e: &ComparisonExpr) -> Result<(), EvalError> {
        match e {
            ComparisonExpr::And(items) | ComparisonExpr::Or(items) => {
                items.iter().try_for_each(|i| self.walk_cmp(i))
            }
            ComparisonExpr::Exists(_) => Ok(()),
            ComparisonExpr::Test(t) => {
                let Operand::Literal(Literal::String(s)) = &t.operand else {
                    return Ok(());
                };
                let compiled = match t.op {
                    Operator::Like => like_regexes(s),
                    Operator::Matches => matches_regexes(s)?,
                    _ => return Ok(()),
                };
                self.map.insert(key_of(t), compiled);
                Ok(())
            }
        }
    }
}

/// §9.3 LIKE: SQL semantics, `%` any run of characters, `_` exactly one, whole value.
fn like_regexes(pattern: &str) -> Compiled {
    let pattern: String = pattern.nfc().collect();
    let mut text = String::from("(?s)^");
    let mut bytes = String::from("(?s-u)^");
    let mut bytes_ok = true;
    for c in pattern.chars() {
        match c {
            '%' => {
                text.push_str(".*");
                bytes.push_str(".*");
            }
            '_' => {
                text.push('.');
                bytes.push('.');
            }
            c => {
                text.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                if (c as u32) < 0x80 {
                    bytes.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                } else if (c as u32) < 0x100 {
                    bytes.push_str(&format!("\\x{{{:02X}}}", c as u32));
                } else {
                    bytes_ok = false;
                }
            }
        }
    }
    text.push('$');
    bytes.push('$');
    Compiled {
        text: regex::Regex::new(&text).expect("escaped LIKE pattern is a valid regex"),
        bytes: bytes_ok
            .then(|| regex::bytes::Regex::new(&bytes).ok())
            .flatten(),
    }
}

/// §9.3 MATCHES: a PCRE regular expression, searched anywhere in the value. The `regex` crate
/// supports PCRE's common syntax (classes, repetition, groups, named groups, anchors, flags,
/// Unicode classes) but not look-around, back-references, atomic groups or possessive
/// quantifiers; those are reported as [`EvalError::Regex`].
fn matches_regexes(pattern: &str) -> Result<Compiled, EvalError> {
    let pattern: String = pattern.nfc().collect();
    let text = regex::Regex::new(&pattern).map_err(|e| EvalError::Regex {
        regex: pattern.clone(),
        reason: match e {
            regex::Error::Syntax(s) => s
                .lines()
                .last()
                .unwrap_or("syntax error")
                .trim_start_matches("error: ")
                .to_string(),
            other => other.to_string(),
        },
    })?;
    // For binary data each code point below 256 stands for one byte, as in the reference
    // matcher; bytes 0x80–0xFF are written as escapes so the byte engine sees single bytes.
    let bytes = if pattern.chars().all(|c| (c as u32) < 0x100) {
        let mut b = String::from("(?-u)");
        let mut escaped = false;
        for c in pattern.chars() {
            if (c as u32) >= 0x80 {
                if !escaped {
                    b.push('\\');
                }
                b.push_str(&format!("x{{{:02X}}}", c as u32));
                escaped = false;
            } else {
                b.push(c);
                escaped = c == '\\' && !escaped;
            }
        }
        regex::bytes::RegexBuilder::new(&b)
            .unicode(false)
            .build()
            .ok()
    } else {
        None
    };
    Ok(Compiled { text, bytes })
}

/// Strings as bytes when every code point is below 256 (the spec's rule for comparing
/// strings with binary values).
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

/// Orders a data value against a literal; `None` when the two cannot be compared.
fn compare(v: &Val<'_>, lit: &Literal) -> Result<Option<Ordering>, EvalError> {
    Ok(match (v, lit) {
        (Val::Json(Value::String(s)), Literal::Timestamp(t)) => {
            let parsed = Timestamp::parse(s, true)
                .map_err(|_| EvalError::InvalidTimestamp { value: s.clone() })?;
            Some(parsed.nanos().cmp(&t.nanos()))
        }
        (Val::Json(Value::Number(n)), Literal::Int(i)) => {
            if let Some(x) = n.as_i64() {
                Some(x.cmp(i))
            } else if n.as_u64().is_some() {
                Some(Ordering::Greater)
            } else {
                n.as_f64().and_then(|x| x.partial_cmp(&(*i as f64)))
            }
        }
        (Val::Json(Value::Number(n)), Literal::Float(f)) => {
            n.as_f64().and_then(|x| x.partial_cmp(f))
        }
        (Val::Json(Value::String(s)), Literal::String(l)) => Some(s.as_str().cmp(l.as_str())),
        (Val::Json(Value::Bool(b)), Literal::Bool(l)) => Some(b.cmp(l)),
        (Val::Bytes(b), Literal::Binary(l)) => Some(b.as_slice().cmp(l.as_slice())),
        (Val::Bytes(b), Literal::String(l)) => latin1(l).map(|l| b.as_slice().cmp(&l)),
        (Val::Json(Value::String(s)), Literal::Binary(l)) => {
            latin1(s).map(|s| s.as_slice().cmp(l.as_slice()))
        }
        _ => None,
    })
}

fn value_matches(v: &Val<'_>, t: &Test, compiled: &CompiledTests) -> Result<bool, EvalError> {
    let eq = |lit: &Literal| -> Result<bool, EvalError> {
        Ok(compare(v, lit)? == Some(Ordering::Equal))
    };
    let lit = match &t.operand {
        Operand::Literal(l) => Some(l),
        Operand::Set(_) => None,
    };
    Ok(match (t.op, lit) {
        (Operator::Eq, Some(l)) => eq(l)?,
        (Operator::Ne, Some(l)) => !eq(l)?,
        (Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge, Some(l)) => {
            match compare(v, l)? {
                None => false,
                Some(o) => match t.op {
                    Operator::Lt => o.is_lt(),
                    Operator::Le => o.is_le(),
                    Operator::Gt => o.is_gt(),
                    _ => o.is_ge(),
                },
            }
        }
        (Operator::In, _) => {
            let Operand::Set(items) = &t.operand else {
                return Ok(false);
            };
            let mut any = false;
            for l in items {
                if eq(l)? {
                    any = true;
                    break;
                }
            }
            any
        }
        (Operator::Like | Operator::Matches, _) => {
            let Some(c) = compiled.map.get(&key_of(t)) else {
                return Ok(false);
            };
            match v {
                Val::Json(Value::String(s)) => {
                    let s: String = s.nfc().collect();
                    c.text.is_match(&s)
                }
                Val::Bytes(b) => c.bytes.as_ref().is_some_and(|r| r.is_match(b)),
                _ => false,
            }
        }
        (Operator::IsSubset | Operator::IsSuperset, Some(Literal::String(l))) => {
            let (Val::Json(Value::String(s)), Some(pat)) = (v, ip::parse_net(l)) else {
                return Ok(false);
            };
            match ip::parse_net(s) {
                None => false,
                Some(val) if t.op == Operator::IsSubset => val.within(pat),
                Some(val) => pat.within(val),
            }
        }
        _ => false,
    })
}

/// Whether the test holds for a root object: some selected value satisfies it (`NOT`
/// negating per value, §9.3).
pub(crate) fn test_holds(
    t: &Test,
    root: &Value,
    scope: &Scope<'_>,
    compiled: &CompiledTests,
) -> Result<bool, EvalError> {
    for v in select(&t.path, root, scope)? {
        if value_matches(&v, t, compiled)? != t.negated {
            return Ok(true);
        }
    }
    Ok(false)
}
