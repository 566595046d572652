//! The text the detectors read: the scanned string after Unicode compatibility normalisation
//! (NFKC, UAX #15) and re-fanging of the defanged forms of CTI prose, with a map back to the
//! original, so that a finding always covers its original span.
//!
//! Why: a full-width `ｅｖｅ＠corp.cn` or `１２３．１２．４５．６７` is the same address to a
//! reader (and to a mail client after normalisation), and `45[.]33[.]32[.]158`,
//! `a[@]b.cn`, `a(at)b.cn` are how analysts write addresses so that nothing clicks on them.
//! Redacting only the canonical form would let every evasive spelling through.
//!
//! How: the string is cut into segments at starters (canonical combining class 0) and each
//! segment is normalised on its own; composition across a starter boundary (Hangul jamo
//! sequences, a few Indic vowel signs) is therefore not applied, which changes no character
//! the detectors look at (ASCII letters, digits and `@.:`). Then the defanged tokens are
//! replaced. Each replacement remembers the original range it came from; an offset inside
//! an unchanged run maps one to one.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// A piece of the view: `out` in the view comes from `src` in the source; `exact` when the
/// two are the same text (offsets map one to one).
#[derive(Debug, Clone)]
struct Piece {
    out: Range<usize>,
    src: Range<usize>,
    exact: bool,
}

/// A rewritten text and its map back to the source.
#[derive(Debug)]
pub(crate) struct Mapped {
    /// The rewritten text.
    pub(crate) text: String,
    pieces: Vec<Piece>,
}

impl Mapped {
    /// Builds the text of `src` with `edits` (sorted, disjoint source ranges and their
    /// replacements) applied.
    fn from_edits<'a>(
        src: &str,
        edits: impl IntoIterator<Item = (Range<usize>, Cow<'a, str>)>,
    ) -> Mapped {
        let mut text = String::with_capacity(src.len());
        let mut pieces = Vec::new();
        let mut at = 0;
        let mut push = |text: &mut String, src_range: Range<usize>, s: &str, exact: bool| {
            if src_range.is_empty() && s.is_empty() {
                return;
            }
            let start = text.len();
            text.push_str(s);
            pieces.push(Piece {
                out: start..text.len(),
                src: src_range,
                exact,
            });
        };
        for (r, replacement) in edits {
            if r.start > at {
                push(&mut text, at..r.start, &src[at..r.start], true);
            }
            push(&mut text, r.clone(), &replacement, false);
            at = r.end;
        }
        if at < src.len() {
            push(&mut text, at..src.len(), &src[at..], true);
        }
        Mapped { text, pieces }
    }

    /// The source offset of a finding that starts at view offset `v`.
    fn start(&self, v: usize) -> usize {
        let i = self.pieces.partition_point(|p| p.out.end <= v);
        match self.pieces.get(i) {
            Some(p) if p.exact => p.src.start + (v - p.out.start),
            Some(p) => p.src.start,
            None => self.pieces.last().map_or(0, |p| p.src.end),
        }
    }

    /// The source offset of a finding that ends at view offset `v`.
    fn end(&self, v: usize) -> usize {
        if v == 0 {
            return self.pieces.first().map_or(0, |p| p.src.start);
        }
        let i = self.pieces.partition_point(|p| p.out.end < v);
        match self.pieces.get(i) {
            Some(p) if p.exact => p.src.start + (v - p.out.start),
            Some(p) => p.src.end,
            None => self.pieces.last().map_or(0, |p| p.src.end),
        }
    }
}

/// Compatibility-normalises `text` per segment (see the module documentation); `None` when
/// it is already in NFKC (every ASCII string is).
fn nfkc(text: &str) -> Option<Mapped> {
    if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        return None;
    }
    let mut edits: Vec<(Range<usize>, Cow<'_, str>)> = Vec::new();
    let mut segment_start = 0;
    let flush = |edits: &mut Vec<(Range<usize>, Cow<'_, str>)>, r: Range<usize>| {
        if r.is_empty() {
            return;
        }
        let seg = &text[r.clone()];
        if is_nfkc_quick(seg.chars()) == IsNormalized::Yes {
            return;
        }
        let n: String = seg.nfkc().collect();
        if n != seg {
            edits.push((r, Cow::Owned(n)));
        }
    };
    for (i, c) in text.char_indices() {
        if i > 0 && canonical_combining_class(c) == 0 {
            flush(&mut edits, segment_start..i);
            segment_start = i;
        }
    }
    flush(&mut edits, segment_start..text.len());
    if edits.is_empty() {
        return None;
    }
    Some(Mapped::from_edits(text, edits))
}

/// The defanged forms of CTI prose and what they stand for: `[.]`, `(.)`, `{.}`, `[dot]`,
/// `(dot)` → `.`; `[@]`, `(@)`, `{@}`, `[at]`, `(at)` → `@` (a bracketed word may have one
/// space inside and around it: `bob [at] example [dot] org`); `[:]` → `:`; `hxxp`, `hxxps`,
/// `fxp` at a scheme → `http`, `https`, `ftp`. Brackets are required: a bare ` at ` or
/// ` dot ` in prose is never read as punctuation.
static DEFANGED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
          \x20?[\[\(\{]\x20?(?:\.|dot)\x20?[\]\)\}]\x20?   # . 
        | \x20?[\[\(\{]\x20?(?:@|at)\x20?[\]\)\}]\x20?     # @
        | \[:\]                                            # :
        | \b(?:hxxps?|fxp)(?:\[:\]|:)                       # hxxp:// hxxp[:]// fxp://
        ",
    )
    .expect("defanged regex")
});

fn may_be_defanged(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(2).any(|w| {
        matches!(w[0], b'[' | b'(' | b'{')
            && matches!(w[1], b'.' | b'@' | b':' | b'a' | b'A' | b'd' | b'D' | b' ')
    }) || text.contains("xxp")
        || text.contains("fxp")
}

fn refang(text: &str) -> Option<Mapped> {
    if !may_be_defanged(text) {
        return None;
    }
    let mut edits: Vec<(Range<usize>, Cow<'_, str>)> = Vec::new();
    for m in DEFANGED.find_iter(text) {
        let s = m.as_str();
        let t = s.trim().to_ascii_lowercase();
        let replacement = if t.starts_with("hxxp") || t.starts_with("fxp") {
            t.replacen("hxxp", "http", 1)
                .replacen("fxp", "ftp", 1)
                .replace("[:]", ":")
        } else if t.contains('.') || t.contains("dot") {
            ".".to_owned()
        } else if t.contains('@') || t.contains("at") {
            "@".to_owned()
        } else {
            ":".to_owned()
        };
        edits.push((m.range(), Cow::Owned(replacement)));
    }
    if edits.is_empty() {
        return None;
    }
    Some(Mapped::from_edits(text, edits))
}

/// The text to scan and the maps back to the original (compatibility normalisation first,
/// then re-fanging, so that a full-width `［．］` is re-fanged too).
pub(crate) struct View {
    nfkc: Option<Mapped>,
    refanged: Option<Mapped>,
}

impl View {
    /// The view of `text`; both maps `None` (and no allocation) for the common case of text
    /// that is in NFKC and holds no defanged token.
    pub(crate) fn new(text: &str) -> View {
        let nfkc = nfkc(text);
        let refanged = refang(nfkc.as_ref().map_or(text, |m| &m.text));
        View { nfkc, refanged }
    }

    /// Whether the view is the original text itself.
    pub(crate) fn is_identity(&self) -> bool {
        self.nfkc.is_none() && self.refanged.is_none()
    }

    /// The text the detectors read.
    pub(crate) fn text<'a>(&'a self, original: &'a str) -> &'a str {
        match (&self.refanged, &self.nfkc) {
            (Some(r), _) => &r.text,
            (None, Some(n)) => &n.text,
            (None, None) => original,
        }
    }

    /// The original range of the view range `r`: it covers every original character that
    /// contributed to the view's characters in `r`.
    pub(crate) fn original(&self, r: Range<usize>) -> Range<usize> {
        let (mut s, mut e) = (r.start, r.end);
        if let Some(m) = &self.refanged {
            (s, e) = (m.start(s), m.end(e));
        }
        if let Some(m) = &self.nfkc {
            (s, e) = (m.start(s), m.end(e));
        }
        s..e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(t: &str) -> String {
        View::new(t).text(t).to_owned()
    }

    #[test]
    fn normalises_and_refangs() {
        assert_eq!(view("ｅｖｅ＠corp.cn"), "eve@corp.cn");
        assert_eq!(view("45[.]33[.]32[.]158"), "45.33.32.158");
        assert_eq!(view("a(at)b.cn, c [at] d [dot] org"), "a@b.cn, c@d.org");
        assert_eq!(view("hxxps[:]//x(.)y"), "https://x.y");
        assert_eq!(view("１２３．１２［．］４５"), "123.12.45");
        // No brackets, no re-fanging.
        assert_eq!(view("meet at noon, dot the i"), "meet at noon, dot the i");
        assert!(View::new("plain ascii").is_identity());
        assert!(View::new("中文，没有").nfkc.is_some());
        assert!(View::new("中文没有").is_identity());
    }

    #[test]
    fn offsets_map_back_to_the_original_span() {
        let t = "x ｅｖｅ＠corp.cn y";
        let v = View::new(t);
        let vt = v.text(t);
        let s = vt.find("eve").unwrap();
        let r = v.original(s..s + "eve@corp.cn".len());
        assert_eq!(&t[r], "ｅｖｅ＠corp.cn");
        let t = "to zhao[.]lei[@]mail[.]cn.";
        let v = View::new(t);
        let vt = v.text(t);
        let s = vt.find("zhao").unwrap();
        let r = v.original(s..s + "zhao.lei@mail.cn".len());
        assert_eq!(&t[r], "zhao[.]lei[@]mail[.]cn");
        // Through both layers: full-width brackets re-fanged after normalisation.
        let t = "ip １．２［．］３．４!";
        let v = View::new(t);
        let r = v.original(3..10);
        assert_eq!(&v.text(t)[3..10], "1.2.3.4");
        assert_eq!(&t[r], "１．２［．］３．４");
    }
}
