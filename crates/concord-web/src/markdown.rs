//! A producer's Markdown made safe to show (issue 25, item 2): descriptions rendered as
//! CommonMark, sanitised, with ATT&CK's `(Citation: NAME)` as numbered footnotes linked to
//! the object's `external_references` entry whose `source_name` is NAME.
//!
//! STIX 2.1 leaves `description` free text; MITRE ATT&CK (and CAPEC, ATLAS) write it in
//! Markdown with links to attack.mitre.org, inline `<code>` and citations. The text comes
//! from another organisation, so it is treated as hostile:
//! 1. pulldown-cmark parses it into events; in the text events only (never in code spans,
//!    code blocks, image descriptions, link destinations or raw HTML), each citation whose
//!    NAME is a reference of the object becomes a footnote, `<sup class="cite"><a
//!    href="#xref-N">[N]</a></sup>`, as an inline HTML event of its own; inside a link's
//!    text the footnote goes right after the link (a link inside a link is not HTML).
//!    Headings are demoted below the page's own `h1`/`h2`. Then the events become HTML (raw
//!    HTML in the text passes through as written, which is why step 2 exists);
//! 2. ammonia parses that HTML as a browser would (html5ever) and keeps only an allow-list
//!    of tags and attributes: no `<script>`, no event handler (`onerror=`), no `style`
//!    (the page's Content-Security-Policy forbids inline styles anyway), no images (the
//!    CSP allows only this origin's; a remote image would also tell a third party who
//!    reads the object), links only to `http:` and `https:` URLs and to the footnote
//!    anchors `#xref-N`, with `rel="noopener noreferrer nofollow"`; `class` only as
//!    `cite` on `sup`. The footnotes pass the sanitiser like everything else: nothing is
//!    put into the HTML after it.

use std::collections::HashSet;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, TextMergeStream};
use serde_json::Value;

/// What ATT&CK writes for a citation: `(Citation: Dragos EKANS)`.
const CITATION: &str = "(Citation: ";

/// The properties shown as Markdown on the object page.
pub const MARKDOWN_KEYS: [&str; 2] = ["description", "x_mitre_detection"];

/// One `external_references` entry (STIX 2.1 §2.5) as the object page shows it.
#[derive(Clone, Debug, Default)]
pub struct ExternalRef {
    /// Its anchor on the page (`xref-1`, …, in the order of the list).
    pub anchor: String,
    /// `source_name`.
    pub source_name: String,
    /// `external_id` (e.g. `T0800`, `CVE-2021-44228`).
    pub external_id: Option<String>,
    /// `description` as safe HTML, once [`Citations::render_references`] has run
    /// (ATT&CK's alias entries cite too); `None` before.
    pub description: Option<String>,
    /// `description` as written (Markdown).
    written: Option<String>,
    /// `url` when its scheme is `http` or `https`: shown as a link.
    pub href: Option<String>,
    /// `url` with any other scheme (or none): shown as text, never as a link.
    pub url_text: Option<String>,
    /// `hashes` of the referenced document: (algorithm, value).
    pub hashes: Vec<(String, String)>,
    /// Its footnote number, when the object's text cites it.
    pub number: Option<usize>,
}

/// The URL of a link when it may be one: `http://` or `https://` (scheme case-insensitive),
/// nothing else (`javascript:`, `data:`, `file:`, relative paths…).
pub fn web_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let (scheme, rest) = url.split_once(':')?;
    let ok = (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && rest.starts_with("//")
        && rest.len() > 2
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(url)
}

/// The footnotes of one object: its `external_references` and the numbers given to those
/// its texts cite, in the order first cited.
#[derive(Debug, Default)]
pub struct Citations {
    refs: Vec<ExternalRef>,
    next: usize,
}

impl Citations {
    /// The `external_references` of `object` (entries that are not objects are skipped).
    pub fn of(object: &Value) -> Citations {
        let refs = object
            .get("external_references")
            .and_then(Value::as_array)
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_object)
            .enumerate()
            .map(|(i, r)| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
                let url = s("url");
                let href = url.as_deref().and_then(web_url).map(str::to_owned);
                ExternalRef {
                    anchor: format!("xref-{}", i + 1),
                    source_name: s("source_name").unwrap_or_default(),
                    external_id: s("external_id"),
                    description: None,
                    written: s("description"),
                    url_text: if href.is_none() { url } else { None },
                    href,
                    hashes: r
                        .get("hashes")
                        .and_then(Value::as_object)
                        .map(|h| {
                            h.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    number: None,
                }
            })
            .collect();
        Citations { refs, next: 0 }
    }

    /// The references, with the numbers of those cited so far. Call after every
    /// [`Citations::render`] of the page, and after [`Citations::render_references`].
    pub fn references(&self) -> &[ExternalRef] {
        &self.refs
    }

    /// Renders the references' own descriptions (ATT&CK's alias entries cite the sources
    /// of the alias), after the object's texts so that their numbers come first.
    pub fn render_references(&mut self) {
        for i in 0..self.refs.len() {
            if let Some(text) = self.refs[i].written.clone() {
                let html = self.render(&text);
                self.refs[i].description = Some(html);
            }
        }
    }

    /// The footnote number of the reference named `name`, given on first use; `None` when
    /// the object has no reference of that `source_name`.
    fn number(&mut self, name: &str) -> Option<usize> {
        let r = self.refs.iter_mut().find(|r| r.source_name == name)?;
        Some(*r.number.get_or_insert_with(|| {
            self.next += 1;
            self.next
        }))
    }

    /// `text` (Markdown) as safe HTML, its citations as footnote links.
    pub fn render(&mut self, text: &str) -> String {
        let mut events: Vec<Event<'_>> = Vec::new();
        // Where the text events are: inside a link's text (footnotes wait for its end), or
        // where text is not prose (a code block, an image's description: no footnotes).
        let (mut links, mut literal) = (0usize, 0usize);
        let mut waiting: Vec<usize> = Vec::new();
        // Merged: the parser splits text at characters that might start markup (`_`, `&`,
        // `[`), which would cut a citation such as `(Citation: Dragos_2020)` in two.
        for event in TextMergeStream::new(Parser::new_ext(text, Options::empty())) {
            match event {
                Event::Text(t) if literal == 0 => {
                    self.split(t, links > 0, &mut events, &mut waiting)
                }
                Event::Start(Tag::Link { .. }) => {
                    links += 1;
                    events.push(event);
                }
                Event::End(TagEnd::Link) => {
                    links = links.saturating_sub(1);
                    events.push(event);
                    if links == 0 {
                        events.extend(waiting.drain(..).map(|n| self.footnote(n)));
                    }
                }
                Event::Start(Tag::CodeBlock(_) | Tag::Image { .. }) => {
                    literal += 1;
                    events.push(event);
                }
                Event::End(TagEnd::CodeBlock | TagEnd::Image) => {
                    literal = literal.saturating_sub(1);
                    events.push(event);
                }
                Event::Start(Tag::Heading {
                    level,
                    id,
                    classes,
                    attrs,
                }) => events.push(Event::Start(Tag::Heading {
                    level: demoted(level),
                    id,
                    classes,
                    attrs,
                })),
                Event::End(TagEnd::Heading(level)) => {
                    events.push(Event::End(TagEnd::Heading(demoted(level))))
                }
                other => events.push(other),
            }
        }
        // A link left open by the parser's end still gets its footnotes.
        events.extend(waiting.drain(..).map(|n| self.footnote(n)));
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, events.into_iter());
        sanitiser().clean(&html).to_string()
    }

    /// Splits a text event at each `(Citation: NAME)` whose NAME is a reference of the
    /// object: the text around it stays text (escaped by the HTML writer), the citation
    /// becomes a footnote event, or waits in `waiting` when `in_link`. Unknown names stay as
    /// written.
    fn split<'a>(
        &mut self,
        text: CowStr<'a>,
        in_link: bool,
        events: &mut Vec<Event<'a>>,
        waiting: &mut Vec<usize>,
    ) {
        if !text.contains(CITATION) {
            events.push(Event::Text(text));
            return;
        }
        let mut plain = String::with_capacity(text.len());
        let mut rest: &str = &text;
        while let Some(at) = rest.find(CITATION) {
            let after = &rest[at + CITATION.len()..];
            let Some(end) = after.find(')') else {
                break;
            };
            // As written first: ATT&CK has names that end in a space, cited alike.
            let name = &after[..end];
            match self.number(name).or_else(|| self.number(name.trim())) {
                Some(n) => {
                    plain.push_str(&rest[..at]);
                    if !plain.is_empty() {
                        events.push(Event::Text(CowStr::from(std::mem::take(&mut plain))));
                    }
                    if in_link {
                        waiting.push(n);
                    } else {
                        events.push(self.footnote(n));
                    }
                }
                None => plain.push_str(&rest[..at + CITATION.len() + end + 1]),
            }
            rest = &after[end + 1..];
        }
        plain.push_str(rest);
        if !plain.is_empty() {
            events.push(Event::Text(CowStr::from(plain)));
        }
    }

    /// The footnote link of reference number `n`, as an inline HTML event: fixed markup,
    /// no text of the producer in it (the anchor and the number are ours).
    fn footnote(&self, n: usize) -> Event<'static> {
        let anchor = self
            .refs
            .iter()
            .find(|r| r.number == Some(n))
            .map_or_else(String::new, |r| r.anchor.clone());
        Event::InlineHtml(CowStr::from(format!(
            "<sup class=\"cite\"><a href=\"#{anchor}\">[{n}]</a></sup>"
        )))
    }
}

/// Headings inside a description sit under the page's `h2` sections.
fn demoted(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// ammonia's defaults narrowed: no images or image maps, no landmarks or page-level
/// headings (the page has its own), `http`/`https` links only, no relative URLs (they would
/// point into this UI) but the footnote anchors `#xref-N`, `class` only as `cite` on `sup`.
fn sanitiser() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.rm_tags([
        "img", "area", "map", "nav", "header", "footer", "article", "aside", "hgroup", "h1", "h2",
    ])
    .url_schemes(HashSet::from(["http", "https"]))
    .url_relative(ammonia::UrlRelative::Custom(Box::new(footnote_anchor)))
    .add_allowed_classes("sup", ["cite"])
    .link_rel(Some("noopener noreferrer nofollow"));
    b
}

/// A relative URL that may stay: the anchor of a footnote's reference, `#xref-` and digits
/// ([`ExternalRef::anchor`]); any other relative URL is removed.
fn footnote_anchor(url: &str) -> Option<std::borrow::Cow<'_, str>> {
    url.strip_prefix("#xref-")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|_| std::borrow::Cow::Borrowed(url))
}

/// `text` (Markdown) as safe HTML, without an object's references: citations stay as
/// written.
pub fn render(text: &str) -> String {
    Citations::default().render(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MITRE ATT&CK for ICS v18.1 as the repository keeps it for the tests
    /// (`tests/data/stix/attack`, under the MITRE ATT&CK terms of use beside it).
    fn ics_attack() -> Vec<Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/stix/attack/ics-attack-18.1.json.gz"
        );
        let file = std::fs::File::open(path).expect(path);
        let bundle: Value =
            serde_json::from_reader(flate2::read::GzDecoder::new(file)).expect("bundle");
        bundle["objects"].as_array().expect("objects").clone()
    }

    fn by_id(objects: &[Value], id: &str) -> Value {
        objects
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in ICS ATT&CK"))
    }

    /// The tags of an HTML text, `<` to `>` (attribute values of sanitised HTML hold no `>`:
    /// html5ever's serialiser escapes it).
    fn tags(html: &str) -> Vec<&str> {
        html.split('<')
            .skip(1)
            .filter_map(|t| t.split_once('>').map(|(tag, _)| tag))
            .collect()
    }

    /// A footnote as the sanitiser writes it.
    fn sup(anchor: &str, n: usize) -> String {
        format!(
            "<sup class=\"cite\"><a href=\"#{anchor}\" rel=\"noopener noreferrer nofollow\">[{n}]</a></sup>"
        )
    }

    #[test]
    fn ekans_reads_as_text_with_numbered_footnotes() {
        let objects = ics_attack();
        // EKANS (S0605): Markdown links to attack.mitre.org, two citations.
        let ekans = by_id(&objects, "malware--00e7d565-9883-4ee5-b642-8fd17fd6a3f5");
        let mut c = Citations::of(&ekans);
        let html = c.render(ekans["description"].as_str().unwrap());
        assert!(!html.contains("(Citation:"), "{html}");
        assert!(!html.contains("]("), "Markdown link left raw: {html}");
        assert!(
            html.contains(
                "<a href=\"https://attack.mitre.org/software/S0605\" rel=\"noopener noreferrer nofollow\">EKANS</a>"
            ),
            "{html}"
        );
        c.render_references();
        let refs = c.references();
        let find = |name: &str| refs.iter().find(|r| r.source_name == name).unwrap();
        // Numbered in the order cited, each linked to its own entry.
        let dragos = find("Dragos EKANS");
        let unit42 = find("Palo Alto Unit 42 EKANS");
        assert_eq!(dragos.number, Some(1));
        assert_eq!(unit42.number, Some(2));
        assert!(
            html.contains(&format!(
                "{}{}",
                sup(&dragos.anchor, 1),
                sup(&unit42.anchor, 2)
            )),
            "{html}"
        );
        assert_eq!(
            dragos.href.as_deref(),
            Some("https://www.dragos.com/blog/industry-news/ekans-ransomware-and-ics-operations/")
        );
        // The alias entry SNAKEHOSE cites a third source, numbered after the description's.
        let fireeye = find("FireEye Ransomware Feb 2020");
        assert_eq!(fireeye.number, Some(3));
        let alias = find("SNAKEHOSE").description.clone().unwrap();
        assert!(
            alias.contains(&format!("href=\"#{}\"", fireeye.anchor)),
            "{alias}"
        );
        // The ATT&CK entry: id and link.
        let attack = find("mitre-attack");
        assert_eq!(attack.external_id.as_deref(), Some("S0605"));
        assert_eq!(attack.number, None);
    }

    #[test]
    fn every_citation_of_ics_attack_finds_its_reference() {
        let objects = ics_attack();
        let (mut cited, mut unmatched, mut texts) = (0, 0, 0);
        for o in &objects {
            let Some(text) = o.get("description").and_then(Value::as_str) else {
                continue;
            };
            texts += 1;
            let mut c = Citations::of(o);
            let html = c.render(text);
            let names: Vec<&str> = text
                .split(CITATION)
                .skip(1)
                .filter_map(|s| s.split_once(')').map(|(n, _)| n))
                .collect();
            for name in &names {
                let found = |n: &str| c.references().iter().find(|r| r.source_name == n);
                match found(name).or_else(|| found(name.trim())) {
                    Some(r) => {
                        cited += 1;
                        let n = r.number.expect("a cited reference is numbered");
                        assert!(
                            html.contains(&sup(&r.anchor, n)),
                            "{}: citation {name} not linked: {html}",
                            o["id"]
                        );
                    }
                    None => {
                        unmatched += 1;
                        let escaped = name.replace('&', "&amp;").replace('<', "&lt;");
                        assert!(html.contains(&format!("(Citation: {escaped})")), "{html}");
                    }
                }
            }
            // Nothing executable.
            assert!(!html.contains("<script"), "{html}");
            assert!(!tags(&html).iter().any(|t| t.contains(" on")), "{html}");
        }
        assert!(texts > 1000, "only {texts} descriptions");
        assert!(cited > 900, "only {cited} citations linked");
        // ICS ATT&CK v18.1 cites two names that none of the object's references carry.
        assert_eq!(unmatched, 2);
    }

    #[test]
    fn scripts_handlers_and_javascript_links_are_neutralised() {
        let cases = [
            "<script>alert(1)</script>hello",
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "<img src=x onerror=alert(1)>",
            "![x](https://tracker.example/p.png)",
            "![x](x\" onerror=\"alert(1))",
            "<p onclick=\"alert(1)\" style=\"color:red\">styled</p>",
            "<svg><script>alert(1)</script></svg>",
            "<iframe src=\"https://evil.example/\"></iframe>",
            "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "<form action=\"https://evil.example/\"><input name=x></form>",
            "<style>body{display:none}</style>",
            "<a href=\"/ui/logout\">relative</a>",
            "\u{E000}1\u{E001} forged marker",
        ];
        let object = serde_json::json!({"external_references": [
            {"source_name": "A", "url": "https://a.example/"}]});
        for md in cases {
            let mut c = Citations::of(&object);
            let html = c.render(md).to_ascii_lowercase();
            // Elements that must not exist (as text, `<` is escaped).
            for bad in [
                "<script", "<img", "<iframe", "<form", "<input", "<svg", "<style",
            ] {
                assert!(!html.contains(bad), "{md:?} gave {html:?} ({bad})");
            }
            // Attributes and URLs that must not be in any tag.
            for tag in tags(&html) {
                for bad in [" on", "style=", "javascript:", "data:", "/ui/logout"] {
                    assert!(!tag.contains(bad), "{md:?} gave {html:?} ({bad} in {tag})");
                }
            }
            assert!(!html.contains("<sup"), "{md:?} forged a citation: {html}");
        }
        // What is safe stays.
        let html = render("**bold** `code` <u>under</u> [ok](https://example.org/a?b=1&c=2)");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(html.contains("<u>under</u>"), "{html}");
        assert!(
            html.contains("href=\"https://example.org/a?b=1&amp;c=2\""),
            "{html}"
        );
        // Headings sit under the page's own.
        assert!(render("# Title").contains("<h3>Title</h3>"));
        // A citation inside a code span or a link destination is not a footnote.
        let object = serde_json::json!({"external_references": [{"source_name": "A"}]});
        let mut c = Citations::of(&object);
        let html = c.render("`(Citation: A)` [x](<https://e.example/(Citation: A)>)");
        assert!(!html.contains("<sup"), "{html}");
        assert_eq!(c.references()[0].number, None);
    }

    #[test]
    fn a_citation_split_by_markup_characters_is_still_one() {
        let object = serde_json::json!({"external_references": [
            {"source_name": "Dragos_2020 & [ICS]"}]});
        let mut c = Citations::of(&object);
        let html = c.render("Seen in 2020.(Citation: Dragos_2020 & [ICS])");
        assert!(html.contains(&sup("xref-1", 1)), "{html}");
    }

    #[test]
    fn only_web_urls_are_links() {
        let object = serde_json::json!({"external_references": [
            {"source_name": "ok", "url": "https://example.org/x"},
            {"source_name": "plain", "url": "HTTP://example.org/"},
            {"source_name": "js", "url": "javascript:alert(1)"},
            {"source_name": "file", "url": "file:///etc/passwd"},
            {"source_name": "rel", "url": "/ui/logout"},
            {"source_name": "space", "url": "https://a.example/ onmouseover=x"},
            {"source_name": "cve", "external_id": "CVE-2021-44228",
             "hashes": {"SHA-256": "6db37f2c2b4dd1d4f8e7e6e9f2a3bd71a4d4b1c3e5f7a9b0c2d4e6f8a0b2c4d6"}},
            "not an object"
        ]});
        let c = Citations::of(&object);
        let r = c.references();
        assert_eq!(r.len(), 7);
        assert_eq!(r[0].href.as_deref(), Some("https://example.org/x"));
        assert_eq!(r[1].href.as_deref(), Some("HTTP://example.org/"));
        for bad in &r[2..6] {
            assert_eq!(bad.href, None, "{}", bad.source_name);
            assert!(
                bad.url_text.is_some(),
                "{}: its URL is shown as text",
                bad.source_name
            );
        }
        assert_eq!(r[6].external_id.as_deref(), Some("CVE-2021-44228"));
        assert_eq!(r[6].hashes[0].0, "SHA-256");
        assert_eq!(r[6].anchor, "xref-7");
    }

    /// Citations where a footnote must not go, or must go elsewhere: the sanitiser sees
    /// every footnote, and every tag of the result is one the allow-list keeps.
    #[test]
    fn hostile_citations_stay_text_or_become_well_formed_footnotes() {
        let object = serde_json::json!({"external_references": [
            {"source_name": "A", "url": "https://a.example/"},
            {"source_name": "B\" onclick=\"x"}]});
        // (Markdown, the footnotes it must have, in order.)
        let cases: [(&str, &[usize]); 16] = [
            // In a link's text: after the link, never an <a> inside an <a>.
            ("[see (Citation: A)](https://e.example/)", &[1]),
            (
                "[**see (Citation: A)**](https://e.example/ \"t\") after",
                &[1],
            ),
            (
                "[outer [inner (Citation: A)](https://i.example/)](https://o.example/)",
                &[1],
            ),
            // In a URL or a link title: not text.
            ("[x](https://e.example/(Citation:%20A))", &[]),
            ("[x](<https://e.example/(Citation: A)>)", &[]),
            ("[x](https://e.example/ \"(Citation: A)\")", &[]),
            ("<https://e.example/(Citation:A)>", &[]),
            // In code.
            ("`(Citation: A)`", &[]),
            ("```\n(Citation: A)\n```", &[]),
            ("    (Citation: A)", &[]),
            // In raw HTML: attributes and elements.
            (
                "<a title=\"(Citation: A)\" href=\"https://e.example/\">t</a>",
                &[],
            ),
            ("<span title='x (Citation: A) y'>z</span>", &[]),
            ("![alt (Citation: A)](https://e.example/p.png)", &[]),
            // A tag the parser does not close is text, the footnote after it a tag of ours.
            ("<a title=\"(Citation: A) x", &[1]),
            // A name with quotes and a handler: the name never reaches the markup.
            ("quoted (Citation: B\" onclick=\"x)", &[1]),
            // Forged footnotes: the producer's own markup, cleaned like any other.
            (
                "<sup class=\"cite evil\" onclick=\"x\"><a href=\"#main\">[9]</a></sup>\
                 <a href=\"#xref-1x\">y</a><a href=\"#xref-2\" style=\"x\">z</a>",
                &[],
            ),
        ];
        for (md, want) in cases {
            let mut c = Citations::of(&object);
            let html = c.render(md);
            let sups: Vec<&str> = html
                .match_indices("<sup")
                .map(|(i, _)| &html[i..])
                .collect();
            assert_eq!(
                sups.iter()
                    .filter(|s| s.starts_with("<sup class=\"cite\"><a href=\"#xref-"))
                    .count(),
                want.len(),
                "{md:?} gave {html}"
            );
            for (i, n) in want.iter().enumerate() {
                let r = c
                    .references()
                    .iter()
                    .find(|r| r.number == Some(*n))
                    .unwrap();
                assert!(
                    sups[i].starts_with(&sup(&r.anchor, *n)),
                    "{md:?} gave {html}"
                );
            }
            let numbered = c.references().iter().filter(|r| r.number.is_some()).count();
            assert_eq!(
                numbered,
                want.len(),
                "{md:?}: only what is shown is numbered"
            );
            for tag in tags(&html) {
                let name = tag
                    .trim_start_matches('/')
                    .split([' ', '/'])
                    .next()
                    .unwrap_or("");
                assert!(
                    [
                        "a", "p", "sup", "code", "pre", "span", "div", "strong", "em"
                    ]
                    .contains(&name),
                    "{md:?} gave {html} (<{tag}>)"
                );
                for bad in [" on", "style=", "cite evil", "#main", "#xref-1x"] {
                    assert!(!tag.contains(bad), "{md:?} gave {html} ({bad} in <{tag}>)");
                }
                if let Some((_, v)) = tag.split_once("href=\"") {
                    let url = v.split('"').next().unwrap_or("");
                    assert!(
                        url.starts_with("https://") || footnote_anchor(url).is_some(),
                        "{md:?} gave {html} (href {url})"
                    );
                }
            }
            // Never a link inside a link.
            let mut depth = 0i32;
            for tag in tags(&html) {
                if tag == "a" || tag.starts_with("a ") {
                    depth += 1;
                    assert_eq!(depth, 1, "{md:?} gave {html}");
                } else if tag == "/a" {
                    depth -= 1;
                }
            }
        }
        // An HTML block left open around a citation: its footnote may end up inside the
        // producer's attribute, where the sanitiser sees it as the attribute's text.
        let html = Citations::of(&object).render("<div title=\"\n\n(Citation: A)\n\">x</div>");
        for tag in tags(&html) {
            for bad in [" on", "style=", "href=\"\"", "javascript:"] {
                assert!(!tag.contains(bad), "{html} ({bad} in <{tag}>)");
            }
        }
        // The footnote of a link's text follows the link.
        let html = Citations::of(&object).render("[see (Citation: A)](https://e.example/)");
        assert!(
            html.contains(&format!(
                "<a href=\"https://e.example/\" rel=\"noopener noreferrer nofollow\">see </a>{}",
                sup("xref-1", 1)
            )),
            "{html}"
        );
    }
}
