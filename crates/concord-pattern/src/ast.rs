//! The abstract syntax tree of a pattern and its canonical printer.
//!
//! Chains of the same operator are n-ary (`A AND B AND C` is one `And` with three operands), so
//! a pattern of ten thousand alternatives is a wide tree, not a deep one, and nothing that walks
//! the tree recurses more deeply than the parentheses do. Parentheses themselves are not kept:
//! the printer puts them back exactly where the tree needs them, so `Display` output parses to
//! an equal tree.

use std::fmt::{self, Write};

use crate::timestamp::Timestamp;

/// A parsed, checked pattern (STIX 2.1 §9.2 `pattern`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The top-level observation expression.
    pub expr: ObservationExpr,
}

/// An observation expression (§9.5): what one or more observations must show.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationExpr {
    /// `[ comparison ]`: one observation (observed-data) satisfies the comparison.
    Observation(ComparisonExpr),
    /// `A AND B AND …`: each operand matched by distinct observations (§9.5).
    And(Vec<ObservationExpr>),
    /// `A OR B OR …`: at least one operand matches.
    Or(Vec<ObservationExpr>),
    /// `A FOLLOWEDBY B FOLLOWEDBY …`, left-associative: each operand's observations are no
    /// earlier than those of the operands before it (§9.5).
    FollowedBy(Vec<ObservationExpr>),
    /// An expression with qualifiers applied in order, innermost first (§9.6):
    /// `[a] REPEATS 2 TIMES WITHIN 5 SECONDS` is `([a] REPEATS 2 TIMES) WITHIN 5 SECONDS`.
    Qualified {
        /// The qualified expression.
        expr: Box<ObservationExpr>,
        /// The qualifiers, never empty, each of a different kind.
        qualifiers: Vec<Qualifier>,
    },
}

/// An observation expression qualifier (§9.6).
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// `WITHIN n SECONDS`: all observations fall within a window of this length.
    Within(Number),
    /// `REPEATS n TIMES`: the expression matches `n` times on distinct observations.
    Repeats(u64),
    /// `START t'…' STOP t'…'`: observations lie in `[start, stop)`.
    StartStop {
        /// Inclusive start.
        start: Timestamp,
        /// Exclusive stop.
        stop: Timestamp,
    },
}

/// A non-negative number of seconds as written in `WITHIN`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer literal.
    Int(u64),
    /// A float literal.
    Float(f64),
}

impl Number {
    /// The value in nanoseconds, rounded.
    pub fn nanos(self) -> i128 {
        match self {
            Number::Int(n) => i128::from(n) * 1_000_000_000,
            Number::Float(f) => (f * 1e9).round() as i128,
        }
    }
}

/// A comparison expression (§9.4) inside `[ … ]`.
#[derive(Debug, Clone, PartialEq)]
pub enum ComparisonExpr {
    /// All operands hold for the same root object.
    And(Vec<ComparisonExpr>),
    /// At least one operand holds.
    Or(Vec<ComparisonExpr>),
    /// A single property test.
    Test(Test),
    /// `EXISTS path`: the path selects at least one value.
    Exists(ObjectPath),
}

/// `path [NOT] op operand` (§9.3 comparison operators).
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The object path on the left.
    pub path: ObjectPath,
    /// Whether `NOT` precedes the operator.
    pub negated: bool,
    /// The operator.
    pub op: Operator,
    /// The operand on the right: a set for `IN`, a literal otherwise.
    pub operand: Operand,
}

/// Comparison operators (§9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `IN`
    In,
    /// `LIKE`
    Like,
    /// `MATCHES`
    Matches,
    /// `ISSUBSET`
    IsSubset,
    /// `ISSUPERSET`
    IsSuperset,
}

impl Operator {
    /// The operator as written in a pattern.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::In => "IN",
            Operator::Like => "LIKE",
            Operator::Matches => "MATCHES",
            Operator::IsSubset => "ISSUBSET",
            Operator::IsSuperset => "ISSUPERSET",
        }
    }
}

/// The right-hand side of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A single literal.
    Literal(Literal),
    /// `( a, b, … )` for `IN`.
    Set(Vec<Literal>),
}

/// A literal value (§9.2 literals).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Integer, e.g. `-5`.
    Int(i64),
    /// Float, e.g. `7.0`, `.5`.
    Float(f64),
    /// String `'…'` (unescaped).
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// Bytes from `b'…'` (base64) or `h'…'` (hex); printed as hex.
    Binary(Vec<u8>),
    /// `t'…'`.
    Timestamp(Timestamp),
}

impl Literal {
    /// A short name of the literal's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Literal::Int(_) => "integer",
            Literal::Float(_) => "float",
            Literal::String(_) => "string",
            Literal::Bool(_) => "boolean",
            Literal::Binary(_) => "binary",
            Literal::Timestamp(_) => "timestamp",
        }
    }
}

/// An object path (§9.3.1): `type:property(.key | [n] | [*])*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    /// The SCO type, e.g. `file`.
    pub object_type: String,
    /// The property of the object, e.g. `hashes`.
    pub property: String,
    /// Further steps into the property's value.
    pub steps: Vec<PathStep>,
}

/// One step of an object path after the first property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// `.name` or `.'quoted name'`: a dictionary key or sub-property.
    Key(String),
    /// `[n]`: a list element.
    Index(i64),
    /// `[*]`: any list element.
    AnyIndex,
}

/// Words the lexer reads as keywords; a key spelled like one must be quoted.
pub(crate) const RESERVED: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "FOLLOWEDBY",
    "LIKE",
    "MATCHES",
    "ISSUPERSET",
    "ISSUBSET",
    "EXISTS",
    "LAST",
    "IN",
    "START",
    "STOP",
    "SECONDS",
    "TRUE",
    "FALSE",
    "WITHIN",
    "REPEATS",
    "TIMES",
    "true",
    "false",
];

fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    let mut chars = key.chars();
    let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&key);
    if plain {
        f.write_str(key)
    } else {
        write_string(f, key)
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('\'')
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object_type)?;
        f.write_char(':')?;
        write_key(f, &self.property)?;
        for step in &self.steps {
            match step {
                PathStep::Key(k) => {
                    f.write_char('.')?;
                    write_key(f, k)?;
                }
                PathStep::Index(i) => write!(f, "[{i}]")?,
                PathStep::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write_float(f, *x),
            Literal::String(s) => write_string(f, s),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Binary(bytes) => {
                f.write_str("h'")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                f.write_char('\'')
            }
            Literal::Timestamp(t) => write!(f, "t'{t}'"),
        }
    }
}

/// Rust prints the shortest decimal that reads back to the same `f64`, never with an
/// exponent; the grammar needs a `.` to tell a float from an integer.
fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    let s = format!("{x}");
    f.write_str(&s)?;
    if !s.contains('.') {
        f.write_str(".0")?;
    }
    Ok(())
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write_float(f, *x),
        }
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Within(n) => write!(f, "WITHIN {n} SECONDS"),
            Qualifier::Repeats(n) => write!(f, "REPEATS {n} TIMES"),
            Qualifier::StartStop { start, stop } => write!(f, "START t'{start}' STOP t'{stop}'"),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if self.negated {
            f.write_str(" NOT")?;
        }
        write!(f, " {} ", self.op.as_str())?;
        match &self.operand {
            Operand::Literal(l) => write!(f, "{l}"),
            Operand::Set(items) => {
                f.write_char('(')?;
                for (i, l) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_char(')')
            }
        }
    }
}

impl ComparisonExpr {
    /// Binding strength for the printer: OR < AND < atom.
    fn precedence(&self) -> u8 {
        match self {
            ComparisonExpr::Or(_) => 1,
            ComparisonExpr::And(_) => 2,
            ComparisonExpr::Test(_) | ComparisonExpr::Exists(_) => 3,
        }
    }
}

fn write_cmp_operand(
    f: &mut fmt::Formatter<'_>,
    child: &ComparisonExpr,
    parent: u8,
) -> fmt::Result {
    if child.precedence() <= parent {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

impl fmt::Display for ComparisonExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (items, word) = match self {
            ComparisonExpr::Test(t) => return write!(f, "{t}"),
            ComparisonExpr::Exists(p) => return write!(f, "EXISTS {p}"),
            ComparisonExpr::And(items) => (items, " AND "),
            ComparisonExpr::Or(items) => (items, " OR "),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(word)?;
            }
            write_cmp_operand(f, item, self.precedence())?;
        }
        Ok(())
    }
}

impl ObservationExpr {
    /// Binding strength for the printer: FOLLOWEDBY < OR < AND < qualified < atom
    /// (the order of `STIXPattern.g4`).
    fn precedence(&self) -> u8 {
        match self {
            ObservationExpr::FollowedBy(_) => 1,
            ObservationExpr::Or(_) => 2,
            ObservationExpr::And(_) => 3,
            ObservationExpr::Qualified { .. } => 4,
            ObservationExpr::Observation(_) => 5,
        }
    }
}

fn write_obs_operand(
    f: &mut fmt::Formatter<'_>,
    child: &ObservationExpr,
    parent: u8,
) -> fmt::Result {
    if child.precedence() <= parent {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

impl fmt::Display for ObservationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (items, word) = match self {
            ObservationExpr::Observation(c) => return write!(f, "[{c}]"),
            ObservationExpr::Qualified { expr, qualifiers } => {
                write_obs_operand(f, expr, self.precedence())?;
                for q in qualifiers {
                    write!(f, " {q}")?;
                }
                return Ok(());
            }
            ObservationExpr::And(items) => (items, " AND "),
            ObservationExpr::Or(items) => (items, " OR "),
            ObservationExpr::FollowedBy(items) => (items, " FOLLOWEDBY "),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(word)?;
            }
            write_obs_operand(f, item, self.precedence())?;
        }
        Ok(())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}
