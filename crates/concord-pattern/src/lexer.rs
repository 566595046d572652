//! Tokens of the patterning language (the lexer rules of `STIXPattern.g4`, STIX 2.1 §9.2).
//!
//! The lexer is pulled one token at a time by the parser, so errors come out in text order.
//! Literals are decoded here (strings unescaped, base64 and hex decoded, timestamps parsed) so
//! the parser works with values and every token keeps its byte span.

use crate::error::PatternError;
use crate::timestamp::Timestamp;

/// Reserved words, case-sensitive as in the 2.1 grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    And,
    Or,
    Not,
    FollowedBy,
    Like,
    Matches,
    IsSuperset,
    IsSubset,
    Exists,
    Last,
    In,
    Start,
    Stop,
    Seconds,
    Within,
    Repeats,
    Times,
}

impl Kw {
    fn from_word(w: &str) -> Option<Kw> {
        Some(match w {
            "AND" => Kw::And,
            "OR" => Kw::Or,
            "NOT" => Kw::Not,
            "FOLLOWEDBY" => Kw::FollowedBy,
            "LIKE" => Kw::Like,
            "MATCHES" => Kw::Matches,
            "ISSUPERSET" => Kw::IsSuperset,
            "ISSUBSET" => Kw::IsSubset,
            "EXISTS" => Kw::Exists,
            "LAST" => Kw::Last,
            "IN" => Kw::In,
            "START" => Kw::Start,
            "STOP" => Kw::Stop,
            "SECONDS" => Kw::Seconds,
            "WITHIN" => Kw::Within,
            "REPEATS" => Kw::Repeats,
            "TIMES" => Kw::Times,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kw::And => "AND",
            Kw::Or => "OR",
            Kw::Not => "NOT",
            Kw::FollowedBy => "FOLLOWEDBY",
            Kw::Like => "LIKE",
            Kw::Matches => "MATCHES",
            Kw::IsSuperset => "ISSUPERSET",
            Kw::IsSubset => "ISSUBSET",
            Kw::Exists => "EXISTS",
            Kw::Last => "LAST",
            Kw::In => "IN",
            Kw::Start => "START",
            Kw::Stop => "STOP",
            Kw::Seconds => "SECONDS",
            Kw::Within => "WITHIN",
            Kw::Repeats => "REPEATS",
            Kw::Times => "TIMES",
        }
    }
}

/// A token kind with its decoded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Colon,
    Dot,
    Comma,
    Star,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Kw(Kw),
    Bool(bool),
    /// `[a-zA-Z_][a-zA-Z0-9_-]*`; the flag says whether it contains a hyphen.
    Ident(String, bool),
    /// Integer literal; `true` if written with a leading `-` or `+` sign.
    Int(i64, bool),
    Float(f64, bool),
    Str(String),
    Binary(Vec<u8>),
    Timestamp(Timestamp),
    Eof,
}

impl Tok {
    /// How the token is named in "found …" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::LBrack => "`[`".into(),
            Tok::RBrack => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Star => "`*`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Kw(k) => format!("`{}`", k.as_str()),
            Tok::Bool(b) => format!("`{b}`"),
            Tok::Ident(s, _) => format!("identifier `{s}`"),
            Tok::Int(..) => "an integer".into(),
            Tok::Float(..) => "a float".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Binary(_) => "a binary literal".into(),
            Tok::Timestamp(_) => "a timestamp".into(),
            Tok::Eof => "end of pattern".into(),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Whether to apply checks beyond the grammar (calendar dates).
    checks: bool,
}

/// White space as listed in the grammar's `WS` rule.
fn is_ws(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\r'
            | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str, checks: bool) -> Self {
        Lexer {
            src,
            pos: 0,
            checks,
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn byte_at(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    /// Skips white space and `/* … */` and `// …` comments.
    fn skip_trivia(&mut self) -> Result<(), PatternError> {
        loop {
            match self.peek_char() {
                Some(c) if is_ws(c) => self.pos += c.len_utf8(),
                Some('/') if self.byte_at(self.pos + 1) == Some(b'*') => {
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => {
                            return Err(PatternError::syntax(
                                self.pos,
                                "unterminated comment: expected `*/`",
                            ));
                        }
                    }
                }
                Some('/') if self.byte_at(self.pos + 1) == Some(b'/') => {
                    let rest = &self.src[self.pos..];
                    self.pos += rest.find(['\r', '\n']).unwrap_or(rest.len());
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, PatternError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
            });
        };
        let next = self.byte_at(start + 1);
        let simple = |tok, len| (tok, len);
        let (tok, len) = match c {
            '[' => simple(Tok::LBrack, 1),
            ']' => simple(Tok::RBrack, 1),
            '(' => simple(Tok::LParen, 1),
            ')' => simple(Tok::RParen, 1),
            ':' => simple(Tok::Colon, 1),
            ',' => simple(Tok::Comma, 1),
            '*' => simple(Tok::Star, 1),
            '=' if next == Some(b'=') => simple(Tok::Eq, 2),
            '=' => simple(Tok::Eq, 1),
            '!' if next == Some(b'=') => simple(Tok::Ne, 2),
            '<' if next == Some(b'>') => simple(Tok::Ne, 2),
            '<' if next == Some(b'=') => simple(Tok::Le, 2),
            '<' => simple(Tok::Lt, 1),
            '>' if next == Some(b'=') => simple(Tok::Ge, 2),
            '>' => simple(Tok::Gt, 1),
            '\'' => {
                let s = self.string_body(start)?;
                return Ok(Token {
                    tok: Tok::Str(s),
                    start,
                });
            }
            'b' | 'h' | 't' if next == Some(b'\'') => return self.prefixed_literal(c, start),
            '.' if next.is_some_and(|b| b.is_ascii_digit()) => return self.number(start),
            '.' => simple(Tok::Dot, 1),
            '+' | '-' => {
                let digit_follows = next.is_some_and(|b| b.is_ascii_digit())
                    || (next == Some(b'.')
                        && self.byte_at(start + 2).is_some_and(|b| b.is_ascii_digit()));
                if digit_follows {
                    return self.number(start);
                }
                return Err(PatternError::syntax(
                    start,
                    format!("unexpected `{c}`: expected a number after a sign"),
                ));
            }
            c if c.is_ascii_digit() => return self.number(start),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let rest = &self.src[start..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                let tok = match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    w => match Kw::from_word(w) {
                        Some(k) => Tok::Kw(k),
                        None => Tok::Ident(w.to_string(), w.contains('-')),
                    },
                };
                (tok, len)
            }
            other => {
                return Err(PatternError::syntax(
                    start,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        self.pos += len;
        Ok(Token { tok, start })
    }

    /// `'…'` with `\'` and `\\` as the only escapes. `self.pos` is at the opening quote.
    fn string_body(&mut self, start: usize) -> Result<String, PatternError> {
        let mut out = String::new();
        let mut i = start + 1;
        loop {
            let Some(c) = self.src[i..].chars().next() else {
                return Err(PatternError::syntax(
                    start,
                    "unterminated string: expected a closing `'`",
                ));
            };
            match c {
                '\'' => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                '\\' => match self.byte_at(i + 1) {
                    Some(e @ (b'\'' | b'\\')) => {
                        out.push(e as char);
                        i += 2;
                    }
                    _ => {
                        return Err(PatternError::syntax(
                            i,
                            "invalid escape in string: expected `\\'` or `\\\\`",
                        ));
                    }
                },
                c => {
                    out.push(c);
                    i += c.len_utf8();
                }
            }
        }
    }

    /// `b'…'`, `h'…'` and `t'…'`. Their bodies contain no quotes or escapes.
    fn prefixed_literal(&mut self, kind: char, start: usize) -> Result<Token, PatternError> {
        let body_start = start + 2;
        let Some(len) = self.src[body_start..].find('\'') else {
            return Err(PatternError::syntax(
                start,
                "unterminated literal: expected a closing `'`",
            ));
        };
        let body = &self.src[body_start..body_start + len];
        let tok = match kind {
            'h' => Tok::Binary(decode_hex(body).map_err(|o| {
                PatternError::syntax(
                    body_start + o,
                    "invalid hex literal: expected pairs of hex digits",
                )
            })?),
            'b' => Tok::Binary(decode_base64(body).map_err(|(o, m)| {
                PatternError::syntax(body_start + o, format!("invalid binary literal: {m}"))
            })?),
            _ => Tok::Timestamp(
                Timestamp::parse(body, self.checks).map_err(|e| PatternError {
                    offset: body_start + e.offset,
                    message: format!("invalid timestamp: {}", e.message),
                    kind: if e.message.contains("does not exist") {
                        crate::PatternErrorKind::Check
                    } else {
                        crate::PatternErrorKind::Syntax
                    },
                })?,
            ),
        };
        self.pos = body_start + len + 1;
        Ok(Token { tok, start })
    }

    /// `[+-]? ('0' | [1-9][0-9]*)` or `[+-]? [0-9]* '.' [0-9]+`.
    fn number(&mut self, start: usize) -> Result<Token, PatternError> {
        let b = self.src.as_bytes();
        let mut i = start;
        let signed = matches!(b[i], b'+' | b'-');
        if signed {
            i += 1;
        }
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_digits = &self.src[int_start..i];
        let is_float = i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit();
        let text = if is_float {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            &self.src[start..i]
        } else {
            if int_digits.len() > 1 && int_digits.starts_with('0') {
                return Err(PatternError::syntax(
                    int_start,
                    "invalid integer: leading zeros are not allowed",
                ));
            }
            &self.src[start..i]
        };
        let tok = if is_float {
            let v: f64 = text
                .parse()
                .map_err(|_| PatternError::syntax(start, "invalid float literal"))?;
            if !v.is_finite() {
                return Err(PatternError::syntax(start, "float literal out of range"));
            }
            Tok::Float(v, signed)
        } else {
            let v: i64 = text.trim_start_matches('+').parse().map_err(|_| {
                PatternError::syntax(start, "integer literal out of range (64-bit signed)")
            })?;
            Tok::Int(v, signed)
        };
        self.pos = i;
        Ok(Token { tok, start })
    }
}

/// Decodes `TwoHexDigits*`; the error is the offset of the first bad digit.
fn decode_hex(s: &str) -> Result<Vec<u8>, usize> {
    let b = s.as_bytes();
    if let Some(i) = b.iter().position(|c| !c.is_ascii_hexdigit()) {
        return Err(i);
    }
    if b.len() % 2 == 1 {
        return Err(b.len());
    }
    Ok(b.chunks(2)
        .map(|p| (hex_val(p[0]) << 4) | hex_val(p[1]))
        .collect())
}

pub(crate) fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

/// Decodes standard base64 as the grammar's `BinaryLiteral` allows it: one or more groups of
/// four characters, the last of which may end in `=` or `==`.
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, (usize, &'static str)> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return Err((0, "expected base64 characters"));
    }
    if !b.len().is_multiple_of(4) {
        return Err((b.len(), "base64 length must be a multiple of 4"));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (g, chunk) in b.chunks(4).enumerate() {
        let last = (g + 1) * 4 == b.len();
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            let first_pad = chunk.iter().position(|&c| c == b'=').unwrap_or(0);
            return Err((g * 4 + first_pad, "misplaced `=` padding"));
        }
        let mut acc = 0u32;
        for (i, &c) in chunk[..4 - pad].iter().enumerate() {
            let v = val(c).ok_or((g * 4 + i, "expected a base64 character"))?;
            acc |= v << (18 - 6 * i);
        }
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}
