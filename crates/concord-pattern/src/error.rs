//! The crate's two error types: [`PatternError`] for a pattern that is not valid (always with
//! the byte offset where it went wrong) and [`EvalError`] for a valid pattern that could not be
//! evaluated against the given data.

/// What kind of rule a [`PatternError`] broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternErrorKind {
    /// The text does not follow the grammar (STIX 2.1 §9.2, `STIXPattern.g4`).
    Syntax,
    /// The text follows the grammar but breaks a rule stated elsewhere in the specification
    /// (names, calendar dates, operand types, hash formats, qualifier rules).
    Check,
    /// Parentheses or brackets nest deeper than [`crate::MAX_DEPTH`].
    TooDeep,
}

/// An invalid pattern: where (byte offset into the pattern) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct PatternError {
    /// Byte offset into the pattern text where the problem starts.
    pub offset: usize,
    /// What was wrong, usually "expected X, found Y".
    pub message: String,
    /// Grammar, semantic check, or nesting limit.
    pub kind: PatternErrorKind,
}

impl PatternError {
    pub(crate) fn syntax(offset: usize, message: impl Into<String>) -> Self {
        PatternError {
            offset,
            message: message.into(),
            kind: PatternErrorKind::Syntax,
        }
    }

    pub(crate) fn check(offset: usize, message: impl Into<String>) -> Self {
        PatternError {
            offset,
            message: message.into(),
            kind: PatternErrorKind::Check,
        }
    }
}

/// A valid pattern that could not be evaluated against the given observations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An element of the input is neither a bundle, an observed-data object nor a list of
    /// objects, or an observed-data object lacks what §4.13 requires for matching.
    #[error("observation group {group}: {reason}")]
    InvalidObservations {
        /// Index of the group in the `observations` slice.
        group: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A string in the data was compared with a timestamp literal but is not a STIX timestamp
    /// (§3.2), e.g. `2010-05-21T13:21:43` without `Z`.
    #[error("invalid timestamp in data: {value:?}")]
    InvalidTimestamp {
        /// The offending string.
        value: String,
    },
    /// A property of the data has the wrong shape for how the pattern uses it, e.g. a `_ref`
    /// property that is not a string or a `_hex` property that is not hexadecimal.
    #[error("property {property:?}: {reason}")]
    InvalidData {
        /// The property name.
        property: String,
        /// What was wrong with its value.
        reason: String,
    },
    /// A `MATCHES` regular expression uses a construct the `regex` crate does not support
    /// (look-around, back-references) or is malformed.
    #[error("unsupported or invalid regular expression {regex:?}: {reason}")]
    Regex {
        /// The regular expression from the pattern.
        regex: String,
        /// The regex engine's explanation.
        reason: String,
    },
    /// The search for a matching set of observations exceeded its step or depth budget.
    #[error("pattern too complex to evaluate: {reason}")]
    TooComplex {
        /// Which budget was exceeded.
        reason: String,
    },
}
