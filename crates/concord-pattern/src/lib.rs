//! The STIX 2.1 patterning language (STIX 2.1 §9): parser, checks, printer and evaluator.
//!
//! An indicator is only as useful as its pattern, and a pattern crosses borders: a partner
//! must get the same verdict — valid or not, match or not — on every node. So this crate is
//! strict where the specification is, says exactly where a pattern went wrong, and prints a
//! canonical form that parses back to the same tree.
//!
//! # Shape
//!
//! - [`parse`] reads a pattern with a hand-written recursive-descent parser over a pull lexer.
//!   Every error carries the byte offset and what was expected there ([`PatternError`],
//!   [`render_error`] draws a caret under it). Operator chains are n-ary nodes built in loops,
//!   so a pattern of ten thousand `OR`ed hashes is wide rather than deep; only parentheses and
//!   brackets recurse, and their nesting is limited to [`MAX_DEPTH`].
//! - The checks beyond the grammar run during the parse, where offsets are at hand: type and
//!   property names (§3.1), timestamps that exist in the calendar (no 30 February), `START`
//!   before `STOP`, positive `WITHIN`/`REPEATS`, IP/CIDR operands of `ISSUBSET`/`ISSUPERSET`,
//!   homogeneous `IN` sets, hash digests of the right length for `hashes.'SHA-256'` and kin,
//!   and no two qualifiers of one kind on the same expression. [`parse_syntax`] is the grammar
//!   alone, for tools that inspect patterns they do not vouch for.
//! - `Display` on [`Pattern`] prints the canonical text: single spaces, upper-case keywords,
//!   binary literals in hex, keys quoted only when they must be, parentheses only where the
//!   tree needs them.
//! - [`evaluate`] matches a pattern against groups of observed-data (§9.5–§9.7). Comparisons
//!   are decided per observed-data object first; the observation operators and qualifiers are
//!   then a backtracking search for one assignment of observations to the pattern's
//!   observation expressions, with `number_observed` as how often an observed-data object may
//!   be used. The search keeps a step budget and reports [`EvalError::TooComplex`] rather than
//!   hang on adversarial input.
//!
//! This crate does no I/O and depends on neither tokio nor a database.
//!
//! # Grammar
//!
//! The grammar is that of the OASIS `STIXPattern.g4` for STIX 2.1, written as BNF. Keywords are
//! case-sensitive. White space and `/* */` and `//` comments separate tokens.
//!
//! ```text
//! pattern          ::= obs_expressions EOF
//! obs_expressions  ::= obs_or ( "FOLLOWEDBY" obs_or )*
//! obs_or           ::= obs_and ( "OR" obs_and )*
//! obs_and          ::= obs_qualified ( "AND" obs_qualified )*
//! obs_qualified    ::= obs_primary qualifier*
//! obs_primary      ::= "[" comparison_or "]" | "(" obs_expressions ")"
//! qualifier        ::= "WITHIN" ( int_pos | float_pos ) "SECONDS"
//!                    | "REPEATS" int_pos "TIMES"
//!                    | "START" timestamp "STOP" timestamp
//! comparison_or    ::= comparison_and ( "OR" comparison_and )*
//! comparison_and   ::= test ( "AND" test )*
//! test             ::= "(" comparison_or ")"
//!                    | "EXISTS" object_path
//!                    | object_path "NOT"? ( "=" | "!=" ) literal
//!                    | object_path "NOT"? ( "<" | "<=" | ">" | ">=" ) orderable_literal
//!                    | object_path "NOT"? "IN" "(" ( literal ( "," literal )* )? ")"
//!                    | object_path "NOT"? ( "LIKE" | "MATCHES" | "ISSUBSET" | "ISSUPERSET" ) string
//! object_path      ::= object_type ":" ( identifier | string ) step*
//! step             ::= "." ( identifier | string ) | "[" ( int | "*" ) "]"
//! object_type      ::= [a-zA-Z_] [a-zA-Z0-9_-]*
//! identifier       ::= [a-zA-Z_] [a-zA-Z0-9_]*
//! literal          ::= orderable_literal | "true" | "false"
//! orderable_literal ::= int | float | string | binary | hex | timestamp
//! int              ::= [+-]? ( "0" | [1-9] [0-9]* )
//! float            ::= [+-]? [0-9]* "." [0-9]+
//! string           ::= "'" ( [^'\\] | "\'" | "\\" )* "'"
//! binary           ::= "b'" base64 "'"            (padded standard base64)
//! hex              ::= "h'" ( hexdigit hexdigit )* "'"
//! timestamp        ::= "t'" YYYY "-" MM "-" DD "T" hh ":" mm ":" ss ( "." digit+ )? "Z'"
//! ```
//!
//! Precedence, loosest first: `FOLLOWEDBY`, `OR`, `AND`, qualifiers (observation level);
//! `OR`, `AND` (comparison level). All binary operators are left-associative.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod timestamp;

pub use ast::{
    ComparisonExpr, Literal, Number, ObjectPath, ObservationExpr, Operand, Operator, PathStep,
    Pattern, Qualifier, Test,
};
pub use error::{EvalError, PatternError, PatternErrorKind};
pub use eval::{Binding, Match, Observations, evaluate, evaluate_all, evaluate_prepared};
pub use parser::MAX_DEPTH;
pub use timestamp::Timestamp;

/// Parses a pattern and applies every check beyond the grammar (see the crate documentation).
/// This is the function to decide whether an indicator's pattern is valid.
pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    parser::Parser::new(pattern, true)?.pattern()
}

/// Parses a pattern by the grammar alone (STIX 2.1 §9.2 / `STIXPattern.g4`), without the checks
/// of [`parse`]: for inspecting patterns as they are, not for validating them.
pub fn parse_syntax(pattern: &str) -> Result<Pattern, PatternError> {
    parser::Parser::new(pattern, false)?.pattern()
}

/// Renders an error for a terminal: the pattern on one line, a caret under the offending byte
/// on the next, then the message. Line breaks and tabs in the pattern are shown as spaces so
/// the caret stays aligned; the caret column counts characters, not bytes.
pub fn render_error(pattern: &str, err: &PatternError) -> String {
    let line: String = pattern
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut offset = err.offset.min(pattern.len());
    while !pattern.is_char_boundary(offset) {
        offset -= 1;
    }
    let column = pattern[..offset].chars().count();
    format!("{line}\n{}^\n{}", " ".repeat(column), err.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_error_puts_caret_under_offset() {
        let p = "[file:size = ]";
        let e = parse(p).unwrap_err();
        assert_eq!(
            render_error(p, &e),
            "[file:size = ]\n             ^\nexpected a literal, found `]`"
        );
    }
}
