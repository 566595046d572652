//! Hand-written recursive-descent parser. Each function parses one production of the grammar
//! in the crate documentation and says which in its doc comment. Operator chains are loops (so
//! long chains cost no stack); only parentheses and brackets recurse, and those are counted
//! against [`MAX_DEPTH`].
//!
//! The checks beyond the grammar (see [`crate::parse`]) are done here too, while the byte
//! offsets are at hand; [`crate::parse_syntax`] switches them off.

use crate::ast::*;
use crate::error::{PatternError, PatternErrorKind};
use crate::lexer::{Kw, Lexer, Tok, Token};

/// The deepest nesting of `(` and `[` accepted. Real patterns nest a handful of levels; the
/// limit keeps hostile input from exhausting the stack of the parser, printer or evaluator.
pub const MAX_DEPTH: usize = 100;

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Token,
    depth: usize,
    checks: bool,
}

type PResult<T> = Result<T, PatternError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, checks: bool) -> PResult<Self> {
        let mut lexer = Lexer::new(src, checks);
        let tok = lexer.next_token()?;
        Ok(Parser {
            lexer,
            tok,
            depth: 0,
            checks,
        })
    }

    fn bump(&mut self) -> PResult<Token> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn at_kw(&self, kw: Kw) -> bool {
        self.tok.tok == Tok::Kw(kw)
    }

    fn expected(&self, what: &str) -> PatternError {
        PatternError::syntax(
            self.tok.start,
            format!("expected {what}, found {}", self.tok.tok.describe()),
        )
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<Token> {
        if self.tok.tok == tok {
            self.bump()
        } else {
            Err(self.expected(what))
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(PatternError {
                offset: self.tok.start,
                message: format!("nesting deeper than {MAX_DEPTH} levels of `(` and `[`"),
                kind: PatternErrorKind::TooDeep,
            });
        }
        Ok(())
    }

    /// `pattern ::= obs_expressions EOF`
    pub(crate) fn pattern(&mut self) -> PResult<Pattern> {
        let expr = self.obs_followed_by()?;
        if self.tok.tok != Tok::Eof {
            return Err(self.expected(
                "`AND`, `OR`, `FOLLOWEDBY`, a qualifier (`WITHIN`, `REPEATS`, `START`) or end of pattern",
            ));
        }
        Ok(Pattern { expr })
    }

    /// `obs_expressions ::= obs_or ( "FOLLOWEDBY" obs_or )*`
    fn obs_followed_by(&mut self) -> PResult<ObservationExpr> {
        let mut items = vec![self.obs_or()?];
        while self.at_kw(Kw::FollowedBy) {
            self.bump()?;
            items.push(self.obs_or()?);
        }
        Ok(one_or(items, ObservationExpr::FollowedBy))
    }

    /// `obs_or ::= obs_and ( "OR" obs_and )*`
    fn obs_or(&mut self) -> PResult<ObservationExpr> {
        let mut items = vec![self.obs_and()?];
        while self.at_kw(Kw::Or) {
            self.bump()?;
            items.push(self.obs_and()?);
        }
        Ok(one_or(items, ObservationExpr::Or))
    }

    /// `obs_and ::= obs_qualified ( "AND" obs_qualified )*`
    fn obs_and(&mut self) -> PResult<ObservationExpr> {
        let mut items = vec![self.obs_qualified()?];
        while self.at_kw(Kw::And) {
            self.bump()?;
            items.push(self.obs_qualified()?);
        }
        Ok(one_or(items, ObservationExpr::And))
    }

    /// `obs_qualified ::= obs_primary qualifier*`
    ///
    /// Check: qualifiers applied directly to the same expression are of distinct kinds
    /// (the rule of the OASIS validator; a parenthesised group starts a new level).
    fn obs_qualified(&mut self) -> PResult<ObservationExpr> {
        let expr = self.obs_primary()?;
        let mut qualifiers: Vec<Qualifier> = Vec::new();
        loop {
            let start = self.tok.start;
            let q = if self.at_kw(Kw::Within) {
                self.within()?
            } else if self.at_kw(Kw::Repeats) {
                self.repeats()?
            } else if self.at_kw(Kw::Start) {
                self.start_stop()?
            } else {
                break;
            };
            if self.checks
                && qualifiers
                    .iter()
                    .any(|o| std::mem::discriminant(o) == std::mem::discriminant(&q))
            {
                let name = match q {
                    Qualifier::Within(_) => "WITHIN",
                    Qualifier::Repeats(_) => "REPEATS",
                    Qualifier::StartStop { .. } => "START/STOP",
                };
                return Err(PatternError::check(
                    start,
                    format!(
                        "duplicate {name} qualifier on the same expression; \
                         group with parentheses to qualify the qualified expression"
                    ),
                ));
            }
            qualifiers.push(q);
        }
        if qualifiers.is_empty() {
            Ok(expr)
        } else {
            Ok(ObservationExpr::Qualified {
                expr: Box::new(expr),
                qualifiers,
            })
        }
    }

    /// `obs_primary ::= "[" comparison_or "]" | "(" obs_expressions ")"`
    fn obs_primary(&mut self) -> PResult<ObservationExpr> {
        match self.tok.tok {
            Tok::LBrack => {
                self.enter()?;
                self.bump()?;
                let c = self.cmp_or()?;
                self.expect(Tok::RBrack, "`AND`, `OR` or `]`")?;
                self.depth -= 1;
                Ok(ObservationExpr::Observation(c))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump()?;
                let e = self.obs_followed_by()?;
                self.expect(Tok::RParen, "`AND`, `OR`, `FOLLOWEDBY`, a qualifier or `)`")?;
                self.depth -= 1;
                Ok(e)
            }
            _ => Err(self.expected("`[` or `(` to start an observation expression")),
        }
    }

    /// `within ::= "WITHIN" (int_pos | float_pos) "SECONDS"`; check: the number is > 0.
    fn within(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let at = self.tok.start;
        let n = match self.tok.tok {
            Tok::Int(v, _) if v >= 0 => Number::Int(v as u64),
            Tok::Float(v, _) if v >= 0.0 => Number::Float(v),
            _ => return Err(self.expected("a positive number of seconds")),
        };
        self.bump()?;
        if self.checks && n.nanos() <= 0 {
            return Err(PatternError::check(
                at,
                "WITHIN needs a duration greater than zero",
            ));
        }
        self.expect(Tok::Kw(Kw::Seconds), "`SECONDS`")?;
        Ok(Qualifier::Within(n))
    }

    /// `repeats ::= "REPEATS" int_pos "TIMES"`; check: the count is at least 1.
    fn repeats(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let at = self.tok.start;
        let n = match self.tok.tok {
            Tok::Int(v, _) if v >= 0 => v as u64,
            _ => return Err(self.expected("a positive integer")),
        };
        self.bump()?;
        if self.checks && n == 0 {
            return Err(PatternError::check(
                at,
                "REPEATS needs a count of at least 1",
            ));
        }
        self.expect(Tok::Kw(Kw::Times), "`TIMES`")?;
        Ok(Qualifier::Repeats(n))
    }

    /// `start_stop ::= "START" timestamp "STOP" timestamp`; check: STOP is not before START.
    /// The window is `>= START` and `< STOP` (STIX 2.1 Patterning §9.6 / the spec's
    /// qualifier table); the spec never requires STOP > START, so `START t'X' STOP t'X'` is
    /// valid, an empty window that matches nothing (issue 24, item 8). A STOP before START
    /// is refused: no such window can be meant.
    fn start_stop(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let start = match &self.tok.tok {
            Tok::Timestamp(t) => t.clone(),
            _ => return Err(self.expected("a timestamp `t'…'`")),
        };
        self.bump()?;
        self.expect(Tok::Kw(Kw::Stop), "`STOP`")?;
        let stop_at = self.tok.start;
        let stop = match &self.tok.tok {
            Tok::Timestamp(t) => t.clone(),
            _ => return Err(self.expected("a timestamp `t'…'`")),
        };
        self.bump()?;
        if self.checks && start.nanos() > stop.nanos() {
            return Err(PatternError::check(
                stop_at,
                "STOP must not be earlier than START",
            ));
        }
        Ok(Qualifier::StartStop { start, stop })
    }

    /// `comparison_or ::= comparison_and ( "OR" comparison_and )*`
    fn cmp_or(&mut self) -> PResult<ComparisonExpr> {
        let mut items = vec![self.cmp_and()?];
        while self.at_kw(Kw::Or) {
            self.bump()?;
            items.push(self.cmp_and()?);
        }
        Ok(one_or(items, ComparisonExpr::Or))
    }

    /// `comparison_and ::= test ( "AND" test )*`
    fn cmp_and(&mut self) -> PResult<ComparisonExpr> {
        let mut items = vec![self.test()?];
        while self.at_kw(Kw::And) {
            self.bump()?;
            items.push(self.test()?);
        }
        Ok(one_or(items, ComparisonExpr::And))
    }

    /// ```text
    /// test ::= "(" comparison_or ")"
    ///        | "EXISTS" object_path
    ///        | object_path "NOT"? ( "=" | "!=" ) literal
    ///        | object_path "NOT"? ( "<" | "<=" | ">" | ">=" ) orderable_literal
    ///        | object_path "NOT"? "IN" set
    ///        | object_path "NOT"? ( "LIKE" | "MATCHES" | "ISSUBSET" | "ISSUPERSET" ) string
    /// ```
    fn test(&mut self) -> PResult<ComparisonExpr> {
        if self.tok.tok == Tok::LParen {
            self.enter()?;
            self.bump()?;
            let c = self.cmp_or()?;
            self.expect(Tok::RParen, "`AND`, `OR` or `)`")?;
            self.depth -= 1;
            return Ok(c);
        }
        if self.at_kw(Kw::Exists) {
            self.bump()?;
            return Ok(ComparisonExpr::Exists(self.object_path()?));
        }
        let path = self.object_path()?;
        let negated = self.at_kw(Kw::Not);
        if negated {
            self.bump()?;
        }
        let op = match self.tok.tok {
            Tok::Eq => Operator::Eq,
            Tok::Ne => Operator::Ne,
            Tok::Lt => Operator::Lt,
            Tok::Le => Operator::Le,
            Tok::Gt => Operator::Gt,
            Tok::Ge => Operator::Ge,
            Tok::Kw(Kw::In) => Operator::In,
            Tok::Kw(Kw::Like) => Operator::Like,
            Tok::Kw(Kw::Matches) => Operator::Matches,
            Tok::Kw(Kw::IsSubset) => Operator::IsSubset,
            Tok::Kw(Kw::IsSuperset) => Operator::IsSuperset,
            _ => {
                let what = if negated {
                    "a comparison operator after `NOT` (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, `LIKE`, `MATCHES`, `ISSUBSET`, `ISSUPERSET`)"
                } else {
                    "`NOT` or a comparison operator (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, `LIKE`, `MATCHES`, `ISSUBSET`, `ISSUPERSET`)"
                };
                return Err(self.expected(what));
            }
        };
        self.bump()?;
        let mut literals: Vec<(usize, Literal)> = Vec::new();
        let operand = match op {
            Operator::In => {
                let set = self.set()?;
                let items = set.iter().map(|(_, l)| l.clone()).collect();
                literals = set;
                Operand::Set(items)
            }
            _ => {
                let at = self.tok.start;
                let lit = match op {
                    Operator::Eq | Operator::Ne => self.literal("a literal")?,
                    Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge => {
                        if matches!(self.tok.tok, Tok::Bool(_)) {
                            return Err(PatternError::syntax(
                                at,
                                format!(
                                    "expected a number, string, binary or timestamp literal \
                                     (booleans have no order), found {}",
                                    self.tok.tok.describe()
                                ),
                            ));
                        }
                        self.literal("a number, string, binary or timestamp literal")?
                    }
                    _ => match &self.tok.tok {
                        Tok::Str(s) => {
                            let l = Literal::String(s.clone());
                            self.bump()?;
                            l
                        }
                        _ => return Err(self.expected("a string literal `'…'`")),
                    },
                };
                literals.push((at, lit.clone()));
                Operand::Literal(lit)
            }
        };
        let test = Test {
            path,
            negated,
            op,
            operand,
        };
        if self.checks {
            check_test(&test, &literals)?;
        }
        Ok(ComparisonExpr::Test(test))
    }

    /// `set ::= "(" ( literal ( "," literal )* )? ")"`
    fn set(&mut self) -> PResult<Vec<(usize, Literal)>> {
        self.expect(Tok::LParen, "`(` to start a set")?;
        let mut items = Vec::new();
        if self.tok.tok != Tok::RParen {
            loop {
                let at = self.tok.start;
                items.push((at, self.literal("a literal")?));
                if self.tok.tok == Tok::Comma {
                    self.bump()?;
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        Ok(items)
    }

    /// `literal ::= int | float | string | bool | binary | hex | timestamp`
    fn literal(&mut self, what: &str) -> PResult<Literal> {
        let lit = match &self.tok.tok {
            Tok::Int(v, _) => Literal::Int(*v),
            Tok::Float(v, _) => Literal::Float(*v),
            Tok::Str(s) => Literal::String(s.clone()),
            Tok::Bool(b) => Literal::Bool(*b),
            Tok::Binary(b) => Literal::Binary(b.clone()),
            Tok::Timestamp(t) => Literal::Timestamp(t.clone()),
            _ => return Err(self.expected(what)),
        };
        self.bump()?;
        Ok(lit)
    }

    /// ```text
    /// object_path ::= object_type ":" first_component step*
    /// object_type ::= identifier-with-hyphens
    /// first_component ::= identifier | string
    /// step ::= "." ( identifier | string ) | "[" ( int | "*" ) "]"
    /// ```
    /// Checks: the type is a well-formed STIX type name and an unquoted first component a
    /// well-formed property name (STIX 2.1 §3.1); keys are not empty. A quoted first
    /// component (`[some-type:'has-hyphen.dot' = 3]`) is any string, as the 2.1 grammar's
    /// `firstPathComponent : (Identifier | StringLiteral)` allows and the reference
    /// validator accepts (issue 24, item 8).
    fn object_path(&mut self) -> PResult<ObjectPath> {
        let type_at = self.tok.start;
        let object_type = match &self.tok.tok {
            Tok::Ident(s, _) => s.clone(),
            _ => return Err(self.expected("an object path such as `file:name`, `(` or `EXISTS`")),
        };
        self.bump()?;
        if self.checks {
            check_type_name(&object_type, type_at)?;
        }
        self.expect(Tok::Colon, "`:` after the object type")?;
        let prop_at = self.tok.start;
        let quoted = matches!(self.tok.tok, Tok::Str(_));
        let property = self.key("a property name")?;
        if self.checks && !quoted {
            check_property_name(&property, prop_at)?;
        }
        let mut steps = Vec::new();
        loop {
            match self.tok.tok {
                Tok::Dot => {
                    self.bump()?;
                    steps.push(PathStep::Key(self.key("a property name or quoted key")?));
                }
                Tok::LBrack => {
                    self.bump()?;
                    let step = match self.tok.tok {
                        Tok::Int(i, _) => PathStep::Index(i),
                        Tok::Star => PathStep::AnyIndex,
                        _ => return Err(self.expected("a list index or `*`")),
                    };
                    self.bump()?;
                    self.expect(Tok::RBrack, "`]` to close the list index")?;
                    steps.push(step);
                }
                _ => break,
            }
        }
        Ok(ObjectPath {
            object_type,
            property,
            steps,
        })
    }

    /// `identifier | string`, where the identifier has no hyphen.
    fn key(&mut self, what: &str) -> PResult<String> {
        let at = self.tok.start;
        let k = match &self.tok.tok {
            Tok::Ident(s, false) => s.clone(),
            Tok::Ident(s, true) => {
                return Err(PatternError::syntax(
                    at,
                    format!(
                        "expected {what}, found `{s}`: a name with `-` must be quoted, as in '{s}'"
                    ),
                ));
            }
            Tok::Str(s) => s.clone(),
            _ => return Err(self.expected(what)),
        };
        self.bump()?;
        if self.checks && k.is_empty() {
            return Err(PatternError::check(at, "empty property name or key"));
        }
        Ok(k)
    }
}

fn one_or<T>(mut items: Vec<T>, make: impl FnOnce(Vec<T>) -> T) -> T {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        make(items)
    }
}

/// STIX 2.1 §3.1: type names use only lower-case a–z, 0–9 and `-`, at most 250 characters.
/// Two relaxations, both for the OASIS test suites' types: `_` is accepted (the grammar's
/// identifiers allow it and the reference suite's `binary_test`/`null_test` types use it),
/// and the minimum of three characters, a rule for defining new types, is not enforced
/// (`x:created` in the validator's vectors).
fn check_type_name(name: &str, at: usize) -> PResult<()> {
    let ok = name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.len() <= 250;
    if ok {
        Ok(())
    } else {
        Err(PatternError::check(
            at,
            format!(
                "object type `{name}` is not a valid STIX type name: \
                 expected a-z, 0-9, `_` and inner `-` only, at most 250 characters (STIX 2.1 §3.1)"
            ),
        ))
    }
}

/// STIX 2.1 §3.1: property names use only a–z, 0–9 and `_`, at most 250 characters.
fn check_property_name(name: &str, at: usize) -> PResult<()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && name.len() <= 250;
    if ok {
        Ok(())
    } else {
        Err(PatternError::check(
            at,
            format!(
                "property name {name:?} is not a valid STIX property name: \
                 expected a-z, 0-9 and `_` only (STIX 2.1 §3.1)"
            ),
        ))
    }
}

/// Hash algorithm names of the STIX 2.1 hash-algorithm-ov (§10.6) with the length of their
/// hex digest, keyed by the name in upper case without `-`.
const HASH_LENGTHS: &[(&str, &str, usize)] = &[
    ("MD5", "MD5", 32),
    ("SHA1", "SHA-1", 40),
    ("SHA224", "SHA-224", 56),
    ("SHA256", "SHA-256", 64),
    ("SHA384", "SHA-384", 96),
    ("SHA512", "SHA-512", 128),
    ("SHA3224", "SHA3-224", 56),
    ("SHA3256", "SHA3-256", 64),
    ("SHA3384", "SHA3-384", 96),
    ("SHA3512", "SHA3-512", 128),
    ("RIPEMD160", "RIPEMD-160", 40),
    ("WHIRLPOOL", "WHIRLPOOL", 128),
];

/// Which kind of value a literal is, for the homogeneity of sets: integers and floats are
/// both numbers, `b''` and `h''` both binary.
fn literal_class(l: &Literal) -> &'static str {
    match l {
        Literal::Int(_) | Literal::Float(_) => "number",
        Literal::String(_) => "string",
        Literal::Bool(_) => "boolean",
        Literal::Binary(_) => "binary",
        Literal::Timestamp(_) => "timestamp",
    }
}

/// The format of a value that a property's type defines (see [`check_test`]).
fn check_value_format(test: &Test, literals: &[(usize, Literal)]) -> PResult<()> {
    if test.path.property != "value" || !test.path.steps.is_empty() {
        return Ok(());
    }
    let (rule, ok): (&str, fn(&str) -> bool) = match test.path.object_type.as_str() {
        "ipv4-addr" => ("an IPv4 address or CIDR block (STIX 2.1 §6.13)", |s| {
            crate::eval::ip::parse_net(s).is_some_and(|n| !n.is_v6()) && !s.contains(':')
        }),
        "ipv6-addr" => ("an IPv6 address or CIDR block (STIX 2.1 §6.14)", |s| {
            crate::eval::ip::parse_net(s).is_some_and(|n| n.is_v6())
        }),
        "mac-addr" => (
            "a colon-delimited, lower-case MAC-48 address with leading zeros, such as \
             'd2:fb:49:24:37:18' (STIX 2.1 §6.15)",
            |s| {
                s.len() == 17
                    && s.split(':').count() == 6
                    && s.split(':').all(|o| {
                        o.len() == 2
                            && o.bytes()
                                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                    })
            },
        ),
        _ => return Ok(()),
    };
    for (at, lit) in literals {
        if !matches!(lit, Literal::String(s) if ok(s)) {
            return Err(PatternError::check(
                *at,
                format!(
                    "{lit} is not a valid {}:value: expected {rule}",
                    test.path.object_type
                ),
            ));
        }
    }
    Ok(())
}

/// Checks of one test beyond the grammar:
/// - `ISSUBSET`/`ISSUPERSET` take an IPv4/IPv6 address or CIDR block (§9.3);
/// - the elements of an `IN` set all have the same type (§9.3, set operator);
/// - a value compared with `hashes.'<algorithm>'` by `=`, `!=` or `IN` is a hex digest of the
///   algorithm's length (§10.6, as the OASIS validator checks);
/// - a value compared with a property whose type defines a format, by `=`, `!=` or `IN`, has
///   that format (issue 24, item 11): `ipv4-addr:value` an IPv4 address or CIDR block
///   (§6.13), `ipv6-addr:value` an IPv6 address or CIDR block (§6.14), `mac-addr:value` a
///   colon-delimited, lower-case MAC-48 address with leading zeros (§6.15). `LIKE` and
///   `MATCHES` take patterns, not values, and are not checked.
fn check_test(test: &Test, literals: &[(usize, Literal)]) -> PResult<()> {
    match test.op {
        Operator::IsSubset | Operator::IsSuperset => {
            if let Some((at, Literal::String(s))) = literals.first()
                && crate::eval::ip::parse_net(s).is_none()
            {
                return Err(PatternError::check(
                    *at,
                    format!(
                        "{} needs an IPv4 or IPv6 address or CIDR block, found {s:?}",
                        test.op.as_str()
                    ),
                ));
            }
        }
        Operator::In => {
            if let Some((_, first)) = literals.first() {
                let class = literal_class(first);
                if let Some((at, other)) = literals.iter().find(|(_, l)| literal_class(l) != class)
                {
                    return Err(PatternError::check(
                        *at,
                        format!(
                            "set mixes {class} and {} values; the elements of a set must have one type",
                            literal_class(other)
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    if !matches!(test.op, Operator::Eq | Operator::Ne | Operator::In) {
        return Ok(());
    }
    check_value_format(test, literals)?;
    let in_hashes = test.path.property == "hashes"
        || test
            .path
            .steps
            .iter()
            .any(|s| matches!(s, PathStep::Key(k) if k == "hashes"));
    let Some(PathStep::Key(algo)) = test.path.steps.last() else {
        return Ok(());
    };
    if !in_hashes {
        return Ok(());
    }
    let norm: String = algo
        .chars()
        .filter(|&c| c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let Some(&(_, name, len)) = HASH_LENGTHS.iter().find(|(k, _, _)| *k == norm) else {
        return Ok(());
    };
    for (at, lit) in literals {
        let ok = matches!(lit, Literal::String(s) if s.len() == len && s.bytes().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(PatternError::check(
                *at,
                format!("{lit} is not a valid {name} hash: expected a string of {len} hex digits"),
            ));
        }
    }
    Ok(())
}
