//! Shared text helpers: digits of several scripts, token boundaries, the noise mask, and the
//! search for the sub-run of digit groups that a validator accepts.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// The digit class used by every numeric detector: ASCII, Arabic-Indic (U+0660–0669), Extended
/// Arabic-Indic (Persian/Urdu, U+06F0–06F9) and full-width (U+FF10–FF19, common in Chinese
/// text). Written out instead of `\d`, which would admit every script's digits.
pub(crate) const DIGIT: &str = r"[0-9\x{0660}-\x{0669}\x{06F0}-\x{06F9}\x{FF10}-\x{FF19}]";

/// The value of a decimal digit of one of the scripts in [`DIGIT`].
pub(crate) fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '\u{0660}'..='\u{0669}' => Some(c as u32 - 0x0660),
        '\u{06F0}'..='\u{06F9}' => Some(c as u32 - 0x06F0),
        '\u{FF10}'..='\u{FF19}' => Some(c as u32 - 0xFF10),
        _ => None,
    }
}

/// The ASCII digits of `s`, every other character dropped (digits of other scripts mapped).
pub(crate) fn ascii_digits(s: &str) -> String {
    s.chars()
        .filter_map(digit_value)
        .map(|d| char::from(b'0' + d as u8))
        .collect()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || digit_value(c).is_some()
}

/// Whether a numeric token may start at byte `start`: the character before is not a letter,
/// digit or `_`, and not a `.`, `-` or `/` glued to one (`T1059.001`, `v2-12345678`, `a/123`).
pub(crate) fn left_ok(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        None => true,
        Some(c) if is_word(c) => false,
        Some('.' | '-' | '/' | '@' | '#') => !before.next().is_some_and(is_word),
        Some(_) => true,
    }
}

/// Whether a numeric token may end at byte `end`: the character after is not a letter, digit
/// or `_`, and not a `.`, `-` or `/` followed by one (`1.2` continuing, `123-abc`).
pub(crate) fn right_ok(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    match after.next() {
        None => true,
        Some(c) if is_word(c) => false,
        Some('.' | '-' | '/' | '@') => !after.next().is_some_and(is_word),
        Some(_) => true,
    }
}

/// Byte ranges of tokens that look like numbers but are not personal data: STIX identifiers
/// and other UUIDs, hex digests, ISO 8601 dates and times, CVE and ATT&CK identifiers,
/// dotted version numbers, year ranges and case numbers (`2015-2025`, `2024-000123`), and
/// numbers of standards (`IEEE 1686-2013`, `ISO 27001:2013`). Numeric detectors drop any candidate that overlaps one.
pub(crate) struct NoiseMask {
    ranges: Vec<Range<usize>>,
}

static NOISE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          [0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}  # UUID
        | [0-9A-Fa-f]{32,}                                                            # digests
        | (?:19|20)[0-9]{2}[-/.][0-9]{1,2}[-/.][0-9]{1,2}(?:[T\x20][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?  # dates
        | \b[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:19|20)[0-9]{2}\b                          # d/m/yyyy
        | [0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?                                           # times
        | (?i:CVE|CWE|CAPEC|GHSA|KB)-[0-9]{1,4}(?:-[0-9]+)*                           # advisories
        | \b[TSGMCA][0-9]{4}(?:\.[0-9]{3})?\b                                         # ATT&CK ids
        | \bv?[0-9]+\.[0-9]+\.[0-9]+(?:[.-][0-9A-Za-z]+)*                             # versions
        | \b(?:IEEE|IEC|ISO|ISA|ANSI|NIST|SP|EN|BS|GB/T|GB|RFC|ITU-T)\x20[0-9][0-9.:/-]*  # standards
        | \b(?:19|20)[0-9]{2}[-\x{2013}](?:(?:19|20)[0-9]{2}|[0-9]{2,6})\b             # 2015-2025, case 2024-000123
        ",
    )
    .expect("noise regex")
});

impl NoiseMask {
    /// Finds the noise in `text`.
    pub(crate) fn new(text: &str) -> NoiseMask {
        NoiseMask {
            ranges: NOISE.find_iter(text).map(|m| m.range()).collect(),
        }
    }

    /// Whether `r` overlaps any noise token.
    pub(crate) fn overlaps(&self, r: &Range<usize>) -> bool {
        // `ranges` is sorted and non-overlapping (leftmost-first matches).
        let i = self.ranges.partition_point(|m| m.end <= r.start);
        self.ranges.get(i).is_some_and(|m| m.start < r.end)
    }
}

/// The digit groups of a candidate run like `+86 138-1234 5678`: byte ranges (in the text) of
/// the pieces between separators. A leading `+` or `(` stays with the first group, a `)` with
/// the group it closes.
pub(crate) fn groups(text: &str, run: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text[run.clone()].char_indices() {
        let at = run.start + i;
        let sep = matches!(c, ' ' | '-' | '.' | '\u{00A0}' | '\u{2009}' | '\u{202F}');
        if sep {
            if let Some(s) = start.take() {
                out.push(s..at);
            }
        } else if start.is_none() {
            start = Some(at);
        }
    }
    if let Some(s) = start {
        out.push(s..run.end);
    }
    out
}

/// Tries windows of consecutive groups, longest first from each starting group, and returns
/// the accepted ones (non-overlapping, left to right). A window must sit on token boundaries
/// in the full text and avoid the noise mask; `accept` then decides on the window's text.
/// A window never starts right after a group that begins with `+`: that group is a country
/// code, and what follows it is not a number on its own.
pub(crate) fn best_windows<T>(
    text: &str,
    groups: &[Range<usize>],
    mask: &NoiseMask,
    mut accept: impl FnMut(&str) -> Option<T>,
) -> Vec<(Range<usize>, T)> {
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < groups.len() {
        if i > 0
            && text[groups[i - 1].clone()]
                .trim_start_matches('(')
                .starts_with('+')
        {
            i += 1;
            continue;
        }
        for j in (i..groups.len()).rev() {
            let mut r = groups[i].start..groups[j].end;
            // Parentheses that open or close outside the window are punctuation:
            // `(+44 7911 123456)`.
            let w = &text[r.clone()];
            let (open, close) = (w.matches('(').count(), w.matches(')').count());
            if w.ends_with('(') || (w.ends_with(')') && close > open) {
                r.end -= 1;
            }
            if w.starts_with('(') && open > close {
                r.start += 1;
            }
            // `(…)` around the whole window.
            if w.starts_with('(') && w.find(')') == Some(w.len() - 1) {
                r.start += 1;
                r.end -= 1;
            }
            if r.is_empty() || !left_ok(text, r.start) || !right_ok(text, r.end) {
                continue;
            }
            if mask.overlaps(&r) {
                continue;
            }
            if let Some(t) = accept(&text[r.clone()]) {
                out.push((r, t));
                i = j + 1;
                continue 'outer;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_other_scripts() {
        assert_eq!(ascii_digits("٠١٢٣٤٥٦٧٨٩"), "0123456789");
        assert_eq!(ascii_digits("۰۱۲"), "012");
        assert_eq!(ascii_digits("１３８"), "138");
        assert_eq!(ascii_digits("+86 (10) 1-2"), "861012");
    }

    #[test]
    fn boundaries() {
        let t = "T1059.001 v1-2345 电话13812345678。";
        assert!(!left_ok(t, 1));
        assert!(!left_ok(t, 6)); // after "T1059."
        let p = t.find("138").unwrap();
        assert!(left_ok(t, p), "a Han character is a boundary for numbers");
        assert!(right_ok(t, p + 11));
    }

    #[test]
    fn noise() {
        let t = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f at 2024-01-15T10:20:30Z, CVE-2021-44228, T1059.001, 1.2.3";
        let m = NoiseMask::new(t);
        assert_eq!(m.ranges.len(), 5, "{:?}", m.ranges);
        let t = "IEEE 1686-2013, ISO 27001:2013, years 2015-2025, case 2024-000123";
        assert_eq!(NoiseMask::new(t).ranges.len(), 4);
    }

    #[test]
    fn groups_split_on_separators() {
        let t = "x +86 138-1234\u{a0}5678 y";
        let g = groups(t, 2..t.len() - 2);
        let parts: Vec<_> = g.iter().map(|r| &t[r.clone()]).collect();
        assert_eq!(parts, ["+86", "138", "1234", "5678"]);
    }
}
