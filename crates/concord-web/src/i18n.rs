//! Languages of the UI: every string of every page comes from one Fluent message file per
//! language (`locales/<tag>.ftl`, embedded in the binary), so a new language is one new file
//! and one line in [`LOCALES`].
//!
//! The language of a request: the `lang` cookie set by the switch in the page header, else
//! the best match of the browser's `Accept-Language` (RFC 9110 §12.5.4), else English.
//! Arabic pages carry `dir="rtl"`; the style sheet uses logical properties only, so the whole
//! layout mirrors, not only the text. Fluent wraps each argument in Unicode bidi isolates
//! (FSI … PDI), so an IP address or an id inside an Arabic sentence keeps its own direction.
//!
//! TLP labels are never translated (FIRST TLP 2.0: "the labels … should not be translated");
//! templates print them from [`concord_policy::tlp::Tlp::label`], never from a message file.

use std::sync::OnceLock;

use concord_policy::explain::{Arg as ClauseArg, Clause};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The languages of the UI: (BCP 47 tag, text direction, message file).
pub const LOCALES: [(&str, Direction, &str); 3] = [
    ("en", Direction::Ltr, include_str!("../locales/en.ftl")),
    (
        "zh-CN",
        Direction::Ltr,
        include_str!("../locales/zh-CN.ftl"),
    ),
    ("ar", Direction::Rtl, include_str!("../locales/ar.ftl")),
];

/// Writing direction of a language (HTML `dir`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Left to right.
    Ltr,
    /// Right to left: the page is mirrored.
    Rtl,
}

/// One language, ready to format messages.
pub struct Locale {
    /// Its BCP 47 tag, e.g. `zh-CN`.
    pub tag: &'static str,
    /// Its direction.
    pub dir: Direction,
    bundle: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locale").field("tag", &self.tag).finish()
    }
}

/// Every language of [`LOCALES`], parsed once. A message file that does not parse is a bug
/// of the build, caught by the tests below, so this panics with the file and the errors.
pub fn locales() -> &'static [Locale] {
    static ALL: OnceLock<Vec<Locale>> = OnceLock::new();
    ALL.get_or_init(|| {
        LOCALES
            .iter()
            .map(|(tag, dir, text)| {
                let id: LanguageIdentifier = tag.parse().expect("a valid language tag");
                let resource = FluentResource::try_new((*text).to_owned())
                    .unwrap_or_else(|(_, e)| panic!("locales/{tag}.ftl: {e:?}"));
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                bundle
                    .add_resource(resource)
                    .unwrap_or_else(|e| panic!("locales/{tag}.ftl: {e:?}"));
                Locale {
                    tag,
                    dir: *dir,
                    bundle,
                }
            })
            .collect()
    })
}

/// The locale for a tag as the switch sets it (`en`, `zh-CN`, `ar`), if the UI has it.
pub fn by_tag(tag: &str) -> Option<&'static Locale> {
    locales().iter().find(|l| l.tag.eq_ignore_ascii_case(tag))
}

/// The best locale for an `Accept-Language` header: entries by descending `q` (ties in
/// header order), each matched by full tag, then by primary language (`zh-TW` → `zh-CN`,
/// `ar-EG` → `ar`); English when nothing matches.
pub fn negotiate(accept_language: Option<&str>) -> &'static Locale {
    let all = locales();
    let mut wanted: Vec<(f32, usize, &str)> = accept_language
        .unwrap_or_default()
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!tag.is_empty() && q > 0.0).then_some((q, i, tag))
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, tag) in wanted {
        if let Some(l) = by_tag(tag) {
            return l;
        }
        let primary = tag.split(['-', '_']).next().unwrap_or(tag);
        if let Some(l) = all.iter().find(|l| {
            l.tag
                .split('-')
                .next()
                .is_some_and(|p| p.eq_ignore_ascii_case(primary))
        }) {
            return l;
        }
    }
    &all[0]
}

impl Locale {
    /// The message `key` without arguments. A key missing from the file shows as the key
    /// itself (and is caught by the coverage test below).
    pub fn t(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with one argument `name` = `value` (numbers select plural forms).
    pub fn t1(&self, key: &str, name: &str, value: impl Into<Arg>) -> String {
        let mut args = FluentArgs::new();
        args.set(name.to_owned(), value.into().0);
        self.format(key, Some(&args))
    }

    /// The message `key` as HTML for a template's `|safe`: the text escaped, and each
    /// left-to-right token isolated in `<bdi>` so that it keeps its order inside Arabic
    /// text (`(concord_…)`, not `(…_concord)`): every argument (Fluent wraps each in FSI …
    /// PDI) and every `backquoted` token of the message file, which is also shown as code.
    pub fn html(&self, key: &str) -> String {
        isolated_html(&self.t(key))
    }

    /// [`Locale::html`] with one argument, as [`Locale::t1`].
    pub fn html1(&self, key: &str, name: &str, value: impl Into<Arg>) -> String {
        isolated_html(&self.t1(key, name, value))
    }

    /// The message `key` with arguments `args` (name, value), as HTML ([`Locale::html`]):
    /// each argument isolated in `<bdi>`.
    pub fn html_args(&self, key: &str, args: &[(&str, Arg)]) -> String {
        let mut a = FluentArgs::new();
        for (name, value) in args {
            a.set((*name).to_owned(), value.0.clone());
        }
        isolated_html(&self.format(key, Some(&a)))
    }

    /// A clause of an explanation ([`concord_policy::explain::Clause`]: `policy explain`,
    /// the object page's "as partner" view) as HTML in this language: the message
    /// `explain-{id}`, each parameter in `<bdi>` (data escaped; a clause inside written the
    /// same way, a list of clauses joined by `explain-and`).
    pub fn clause_html(&self, clause: &Clause) -> String {
        // Each parameter goes into the message as a marker (private-use characters, which
        // the message files do not hold), and the marker is replaced after the message is
        // made HTML: a parameter's own HTML (a clause inside) is never escaped twice, and
        // the data is escaped once.
        let mut args = FluentArgs::new();
        for (k, (name, _)) in clause.args.iter().enumerate() {
            args.set(*name, format!("{MARK_OPEN}{k}{MARK_CLOSE}"));
        }
        let template = isolated_html(&self.format(&format!("explain-{}", clause.id), Some(&args)));
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template.as_str();
        while let Some(at) = rest.find(MARK_OPEN) {
            out.push_str(&rest[..at]);
            let after = &rest[at + MARK_OPEN.len_utf8()..];
            let Some(end) = after.find(MARK_CLOSE) else {
                rest = after;
                continue;
            };
            if let Some((_, arg)) = after[..end]
                .parse::<usize>()
                .ok()
                .and_then(|k| clause.args.get(k))
            {
                out.push_str(&self.arg_html(arg));
            }
            rest = &after[end + MARK_CLOSE.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    /// Clauses as HTML, joined by `explain-and` (`; `, `；`, `؛ `).
    pub fn clauses_html(&self, clauses: &[Clause]) -> String {
        let and = self.t("explain-and");
        clauses
            .iter()
            .map(|c| self.clause_html(c))
            .collect::<Vec<_>>()
            .join(&and)
    }

    fn arg_html(&self, arg: &ClauseArg) -> String {
        match arg {
            ClauseArg::Text(t) => escape(t),
            ClauseArg::Clause(c) => self.clause_html(c),
            ClauseArg::List(cs) => self.clauses_html(cs),
        }
    }

    /// Whether the page is right to left.
    pub fn rtl(&self) -> bool {
        self.dir == Direction::Rtl
    }

    /// `rtl` or `ltr`, for the `dir` attribute.
    pub fn dir_attr(&self) -> &'static str {
        match self.dir {
            Direction::Ltr => "ltr",
            Direction::Rtl => "rtl",
        }
    }

    /// The primary language subtag (`zh` for `zh-CN`), as STIX `language-content` keys use it.
    pub fn primary(&self) -> &'static str {
        self.tag.split('-').next().unwrap_or(self.tag)
    }

    fn format(&self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let Some(pattern) = self.bundle.get_message(key).and_then(|m| m.value()) else {
            return key.to_owned();
        };
        let mut errors = Vec::new();
        let text = self.bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(locale = self.tag, key, ?errors, "message formatting");
        }
        text.into_owned()
    }
}

/// Marks a parameter of a clause inside its formatted message ([`Locale::clause_html`]).
const MARK_OPEN: char = '\u{E000}';
/// Ends the mark.
const MARK_CLOSE: char = '\u{E001}';

/// Text as HTML: `&`, `<`, `>` and quotes escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A formatted message as HTML ([`Locale::html`]): escaped; FSI … PDI (U+2068, U+2069)
/// become `<bdi>` … `</bdi>`; a `backquoted` token becomes `<bdi><code>` … `</code></bdi>`
/// (a lone backquote stays as written).
pub fn isolated_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut in_code = false;
    // Inside an argument, a backquote is the argument's own text.
    let mut depth = 0usize;
    for (i, ch) in text.char_indices() {
        match ch {
            '\u{2068}' => {
                depth += 1;
                out.push_str("<bdi>");
            }
            '\u{2069}' if depth > 0 => {
                depth -= 1;
                out.push_str("</bdi>");
            }
            '\u{2069}' => {}
            '`' if depth == 0 && in_code => {
                out.push_str("</code></bdi>");
                in_code = false;
            }
            '`' if depth == 0 && text[i + 1..].contains('`') => {
                out.push_str("<bdi><code>");
                in_code = true;
            }
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if in_code {
        out.push_str("</code></bdi>");
    }
    for _ in 0..depth {
        out.push_str("</bdi>");
    }
    out
}

/// An argument of a message: text or a number.
pub struct Arg(FluentValue<'static>);

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg(FluentValue::from(v.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg(FluentValue::from(v))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg(FluentValue::from(v.clone()))
    }
}

/// Numbers, by value or by reference (templates pass fields by reference).
macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                Arg(FluentValue::from(v as f64))
            }
        }
        impl From<&$t> for Arg {
            fn from(v: &$t) -> Arg {
                Arg(FluentValue::from(*v as f64))
            }
        }
    )*};
}
number_arg!(usize, u64, i64, u32);

#[cfg(test)]
mod tests {
    use super::*;
    use fluent_bundle::FluentResource;
    use fluent_syntax::ast::Entry;
    use std::collections::BTreeSet;

    fn keys(text: &str) -> BTreeSet<String> {
        let r = FluentResource::try_new(text.to_owned()).expect("parses");
        r.entries()
            .filter_map(|e| match e {
                Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_message_exists_in_every_language() {
        let en = keys(LOCALES[0].2);
        assert!(en.len() > 50, "the English file has {} messages", en.len());
        for (tag, _, text) in &LOCALES[1..] {
            let other = keys(text);
            let missing: Vec<_> = en.difference(&other).collect();
            let extra: Vec<_> = other.difference(&en).collect();
            assert!(missing.is_empty(), "locales/{tag}.ftl lacks {missing:?}");
            assert!(extra.is_empty(), "locales/{tag}.ftl has unknown {extra:?}");
        }
        // Parses and formats in every language.
        assert_eq!(locales().len(), LOCALES.len());
    }

    #[test]
    fn every_message_key_used_in_code_and_templates_exists() {
        let en = keys(LOCALES[0].2);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        let mut used = BTreeSet::new();
        let re = |text: &str, used: &mut BTreeSet<String>| {
            for quote in ['"'] {
                let calls = [".t(", ".t1(", ".html(", ".html1("];
                for (i, _) in calls.iter().flat_map(|c| text.match_indices(c)) {
                    let rest = &text[i..];
                    let Some(start) = rest.find(quote) else {
                        continue;
                    };
                    // A literal key only: `.t("key"`, not `.html1(key, "x"`.
                    if !rest[..start].trim_end().ends_with('(') {
                        continue;
                    }
                    let rest = &rest[start + 1..];
                    if let Some(end) = rest.find(quote) {
                        let key = &rest[..end];
                        if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                            used.insert(key.to_owned());
                        }
                    }
                }
            }
        };
        for sub in ["templates", "src"] {
            for e in std::fs::read_dir(format!("{dir}{sub}")).expect("dir") {
                let path = e.expect("entry").path();
                re(&std::fs::read_to_string(&path).expect("read"), &mut used);
            }
        }
        used.remove("key");
        let missing: Vec<_> = used.difference(&en).collect();
        assert!(
            missing.is_empty(),
            "keys used but not in en.ftl: {missing:?}"
        );
        assert!(used.len() > 30, "found only {} keys in use", used.len());
    }

    #[test]
    fn accept_language_negotiation() {
        assert_eq!(negotiate(None).tag, "en");
        assert_eq!(negotiate(Some("ar-EG,ar;q=0.9,en;q=0.8")).tag, "ar");
        assert_eq!(negotiate(Some("zh-TW;q=0.9, de;q=1")).tag, "zh-CN");
        assert_eq!(negotiate(Some("fr, en;q=0.1, ar;q=0.5")).tag, "ar");
        assert_eq!(negotiate(Some("ar;q=0, fr")).tag, "en");
        assert!(negotiate(Some("ar")).rtl());
    }

    #[test]
    fn arabic_plurals_follow_cldr() {
        // CLDR: 0 zero, 1 one, 2 two, 3–10 few, 11–99 many, 100+ other.
        let ar = by_tag("ar").expect("ar");
        let n = |k: usize| {
            ar.t1("objects-count", "count", k)
                .replace(['\u{2068}', '\u{2069}'], "")
        };
        assert_eq!(n(1), "كائن واحد");
        assert_eq!(n(2), "كائنان");
        assert_eq!(n(5), "5 كائنات");
        assert_eq!(n(19), "19 كائنًا");
        assert_eq!(n(100), "100 كائن");
    }

    #[test]
    fn left_to_right_tokens_are_isolated_in_html() {
        let ar = by_tag("ar").expect("ar");
        let help = ar.html("login-help");
        assert!(
            help.contains("(<bdi><code>concord_…</code></bdi>)"),
            "{help}"
        );
        // Arguments too, and whatever they hold is escaped.
        let html = ar.html1("error-no-object", "id", "<b>x</b>`");
        assert!(html.contains("<bdi>&lt;b&gt;x&lt;/b&gt;`</bdi>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        // Every message of every language gives balanced isolates.
        for l in locales() {
            for line in LOCALES.iter().find(|x| x.0 == l.tag).unwrap().2.lines() {
                let Some((key, _)) = line.split_once(" = ") else {
                    continue;
                };
                if key.starts_with('#') || key.starts_with(' ') {
                    continue;
                }
                let h = l.html1(key, "x", "1");
                assert_eq!(
                    h.matches("<bdi>").count(),
                    h.matches("</bdi>").count(),
                    "{}: {key}: {h}",
                    l.tag
                );
            }
        }
    }

    /// Every clause of an explanation has its message in every language, and none of them
    /// is left in English: a clause written in Chinese or Arabic holds no English word of
    /// its English message (ids, property names and labels aside, which are parameters or
    /// `backquoted`).
    #[test]
    fn every_explanation_clause_is_translated() {
        use concord_policy::explain::ENGLISH;
        let en = keys(LOCALES[0].2);
        for (id, template) in ENGLISH {
            let key = format!("explain-{id}");
            assert!(en.contains(&key), "en.ftl lacks {key}");
            // A clause with every parameter given, in each language.
            let mut clause = Clause::new(id);
            let mut rest = *template;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').unwrap() + open;
                let name: &'static str =
                    Box::leak(rest[open + 1..close].to_owned().into_boxed_str());
                clause = clause.with(name, "P");
                rest = &rest[close + 1..];
            }
            let english = by_tag("en").unwrap().clause_html(&clause);
            assert!(!english.contains("explain-"), "{id}: {english}");
            for tag in ["zh-CN", "ar"] {
                let html = by_tag(tag).unwrap().clause_html(&clause);
                assert!(!html.contains("explain-"), "{tag} {id}: {html}");
                // English words of four letters or more outside code and parameters.
                let mut plain = String::new();
                let mut depth = 0;
                for part in html.split('<') {
                    let (tag_part, text) = part.split_once('>').unwrap_or(("", part));
                    if tag_part.starts_with("bdi") || tag_part.starts_with("code") {
                        depth += 1;
                    } else if tag_part.starts_with("/bdi") || tag_part.starts_with("/code") {
                        depth -= 1;
                    }
                    if depth == 0 {
                        plain.push_str(text);
                        plain.push(' ');
                    }
                }
                let english_words: Vec<&str> = plain
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .filter(|w| {
                        w.len() >= 4 && !["STIX", "IEP", "PAP", "TLP", "CLEAR", "GREEN"].contains(w)
                    })
                    .collect();
                assert!(
                    english_words.is_empty(),
                    "{tag} {id}: English {english_words:?} in {html}"
                );
                assert_eq!(
                    html.matches("<bdi>").count(),
                    html.matches("</bdi>").count(),
                    "{tag} {id}: {html}"
                );
            }
        }
        // Parameters are escaped data, a clause inside is written in the language.
        let ar = by_tag("ar").unwrap();
        let c = Clause::withheld(
            Clause::new("tlp-not-recipient")
                .with("tlp", "TLP:AMBER")
                .with("partner", "<b>bsi</b>"),
        );
        let html = ar.clause_html(&c);
        assert!(html.contains("<bdi>&lt;b&gt;bsi&lt;/b&gt;</bdi>"), "{html}");
        assert!(html.contains("<bdi>TLP:AMBER</bdi>"), "{html}");
        assert!(
            !html.contains("withheld") && !html.contains("named recipients"),
            "{html}"
        );
    }

    #[test]
    fn arguments_are_isolated_for_bidi() {
        let ar = by_tag("ar").expect("ar");
        let text = ar.t1("objects-count", "count", 3usize);
        assert!(
            text.contains('\u{2068}') && text.contains('\u{2069}'),
            "{text:?}"
        );
    }
}
