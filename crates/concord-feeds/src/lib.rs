//! # concord-feeds: indicators in the formats sensors load (issue 21, item 3)
//!
//! A sensor does not speak STIX: Suricata loads rules, Zeek's intel framework a
//! tab-separated file, a DNS resolver a response-policy zone (RPZ), a firewall a plain list.
//! This crate turns the indicators a partner receives (the copies the egress door decided,
//! never the stored objects) into one of those texts, and counts what it left out and why.
//!
//! What converts: an indicator (STIX 2.1 §4.7) with `pattern_type` `stix` whose pattern
//! (parsed by [`concord_pattern::parse`]) is one observation, or an `OR` of observations,
//! without qualifiers, whose comparison expression is an `OR` of `=` tests (or `IN` sets),
//! not negated, on one of
//!
//! | path | kind |
//! |---|---|
//! | `ipv4-addr:value`, `ipv6-addr:value` (one address, not a CIDR block) | [`Kind::Ip`] |
//! | `domain-name:value` | [`Kind::Domain`] |
//! | `url:value` | [`Kind::Url`] |
//! | `file:hashes.MD5`, `file:hashes.'SHA-1'`, `file:hashes.'SHA-256'` | [`Kind::Hash`] |
//! | `email-addr:value` | [`Kind::Email`] |
//!
//! Values are put in the normal forms of [`concord_match::classify`] (the matcher's and the
//! IOC-list reader's). Anything else is skipped and counted ([`Report`]): another pattern
//! language, an unparsable or non-representable pattern (an `AND`, a `!=`, a qualifier, a
//! CIDR, a path not listed), an indicator `revoked`, past its `valid_until` or before its
//! `valid_from`, a value on a MISP warninglist, a value the format cannot carry (a hash in an
//! RPZ zone). Each value is written once, by the first indicator that names it.
//!
//! Formats ([`Format`]): Suricata rules (Suricata 6/7 rule language: `ip` rules for
//! addresses, `dns.query` and `tls.sni` for domains, `http.host` + `http.uri` for URLs);
//! Zeek intel (Zeek `base/frameworks/intel`: `#fields` header, tab-separated,
//! `Intel::ADDR|DOMAIN|URL|FILE_HASH|EMAIL`, URLs without their scheme as Zeek's `seen`
//! scripts see them); an RPZ zone (BIND's response policy zones, `CNAME .` = NXDOMAIN for
//! domains and their subdomains, `rpz-ip` triggers for addresses); CSV (RFC 4180); a plain
//! list, one value per line.
//!
//! This crate does no I/O.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use concord_match::classify::{
    HashAlgo, normalise_domain, normalise_email, normalise_hash, normalise_ip, normalise_url,
};
use concord_misp::warninglist::Warninglists;
use concord_pattern::{
    ComparisonExpr, Literal, ObservationExpr, Operand, Operator, PathStep, Test,
};
use concord_stix::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A format sensors load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Suricata rules (`suricata -T -S FILE` loads them).
    Suricata,
    /// A Zeek intel file (`Intel::read_files`).
    ZeekIntel,
    /// A DNS response-policy zone (BIND `response-policy`, `named-checkzone` accepts it).
    Rpz,
    /// CSV with a header line: `value,type,indicator_id,name,valid_until`.
    Csv,
    /// One value per line.
    Plain,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 5] = [
        Format::Suricata,
        Format::ZeekIntel,
        Format::Rpz,
        Format::Csv,
        Format::Plain,
    ];

    /// Its name in the CLI (`--format`) and the URL (`…/feeds/{format}`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Suricata => "suricata",
            Format::ZeekIntel => "zeek-intel",
            Format::Rpz => "rpz",
            Format::Csv => "csv",
            Format::Plain => "plain",
        }
    }

    /// The format of a name; `None` for an unknown one.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The media type of its HTTP response.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Rpz => "text/dns; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }
}

/// The kind of an indicator value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An IPv4 or IPv6 address.
    Ip,
    /// A domain name (and, for RPZ and Suricata, its subdomains).
    Domain,
    /// A URL.
    Url,
    /// A file hash.
    Hash(HashAlgo),
    /// An e-mail address.
    Email,
}

impl Kind {
    /// The name in CSV's `type` column.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Ip => "ip",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Hash(HashAlgo::Md5) => "md5",
            Kind::Hash(HashAlgo::Sha1) => "sha1",
            Kind::Hash(HashAlgo::Sha256) => "sha256",
            Kind::Email => "email",
        }
    }

    /// The MISP attribute types whose warninglists apply to it.
    fn misp_types(&self) -> &'static [&'static str] {
        match self {
            Kind::Ip => &["ip-dst", "ip-src"],
            Kind::Domain => &["domain", "hostname"],
            Kind::Url => &["url"],
            Kind::Hash(HashAlgo::Md5) => &["md5"],
            Kind::Hash(HashAlgo::Sha1) => &["sha1"],
            Kind::Hash(HashAlgo::Sha256) => &["sha256"],
            Kind::Email => &["email-dst", "email-src"],
        }
    }
}

/// One value of a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// The value in normal form.
    pub value: String,
    /// The id of the indicator it comes from (as the audience received it).
    pub indicator_id: String,
    /// The indicator's `name`, when it has one.
    pub name: Option<String>,
    /// The indicator's `valid_until`, when it has one.
    pub valid_until: Option<String>,
}

/// What a feed left out, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Values written.
    pub written: usize,
    /// Objects that are not indicators.
    pub not_indicator: usize,
    /// Indicators whose `pattern_type` is not `stix`.
    pub other_pattern_type: usize,
    /// Patterns that do not parse.
    pub unparsable: usize,
    /// Patterns that are not simple comparisons of the kinds above.
    pub not_representable: usize,
    /// Indicators with `revoked: true`.
    pub revoked: usize,
    /// Indicators whose `valid_until` is past.
    pub expired: usize,
    /// Indicators whose `valid_from` is still to come.
    pub not_yet_valid: usize,
    /// Values on a warninglist.
    pub warninglisted: usize,
    /// Values of a kind this format cannot carry.
    pub not_in_format: usize,
    /// Values already written from an earlier indicator.
    pub duplicate: usize,
    /// The next instant (ns since the epoch) at which an indicator's validity changes what
    /// this feed holds: the earliest `valid_until` still to come of an indicator written, or
    /// `valid_from` of one not yet valid. `None`: time alone changes nothing.
    pub next_change_ns: Option<i64>,
}

impl Report {
    /// Everything left out, whatever the reason.
    pub fn skipped(&self) -> usize {
        self.not_indicator
            + self.other_pattern_type
            + self.unparsable
            + self.not_representable
            + self.revoked
            + self.expired
            + self.not_yet_valid
            + self.warninglisted
            + self.not_in_format
            + self.duplicate
    }

    fn change_at(&mut self, ns: i64) {
        self.next_change_ns = Some(self.next_change_ns.map_or(ns, |t| t.min(ns)));
    }
}

/// Turns indicators into one feed: [`FeedBuilder::add`] each decided copy, then
/// [`FeedBuilder::finish`].
pub struct FeedBuilder<'a> {
    format: Format,
    warninglists: Option<&'a Warninglists>,
    now_ns: i64,
    entries: Vec<Entry>,
    seen: HashSet<(Kind, String)>,
    report: Report,
}

/// Where and how a feed is written: the parts that are not the indicators.
#[derive(Clone, Debug)]
pub struct Header {
    /// Names the feed in comments (a collection's alias or id).
    pub title: String,
    /// The RPZ zone's SOA serial. [`FeedBuilder::finish_edition`] sets it from the feed's
    /// editions.
    pub serial: u32,
    /// The first Suricata `sid`; the rules take consecutive ones.
    pub sid_base: u32,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            title: "concord".into(),
            serial: 1,
            sid_base: 9_100_000,
        }
    }
}

/// One edition of a feed as one audience received it: the SHA-256 of its text with the SOA
/// serial written as 0 (hex), and the RPZ SOA serial it carried. Kept per (audience,
/// collection, format) by whoever serves the feed (`concord-server` keeps it in the store's
/// settings), so that the next build numbers its zone after this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edition {
    /// Hex SHA-256 of the format's name and the text (serial 0).
    pub digest: String,
    /// The SOA serial (RFC 1035 §3.3.13), compared in serial number arithmetic (RFC 1982).
    pub serial: u32,
}

impl Edition {
    /// The digest of `text` in `format`, as [`Edition::digest`].
    pub fn digest_of(format: Format, text: &str) -> String {
        let mut h = Sha256::new();
        h.update(format.name().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The edition of a text with `digest` that follows `last`: `last` itself when the text
    /// is the same, else the next serial (`last.serial + 1` modulo 2³², which RFC 1982
    /// §3.1 orders after it: an increment below 2³¹). The first edition's serial is the
    /// time, `now_secs` (seconds since the epoch, modulo 2³²; at least 1), as zones are
    /// commonly numbered, so that a zone numbered by an earlier scheme (smaller serials)
    /// is still followed by a greater one.
    pub fn after(last: Option<&Edition>, digest: String, now_secs: i64) -> Edition {
        match last {
            Some(l) if l.digest == digest => l.clone(),
            Some(l) => Edition {
                digest,
                serial: l.serial.wrapping_add(1),
            },
            None => Edition {
                digest,
                serial: (now_secs.rem_euclid(1 << 32) as u32).max(1),
            },
        }
    }

    /// The edition as one line of text (`SERIAL DIGEST`), as [`Edition::parse`] reads it.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.serial, self.digest)
    }

    /// An edition written by [`Edition::to_line`]; `None` for anything else (then the next
    /// build starts a new numbering, [`Edition::after`] of `None`).
    pub fn parse(line: &str) -> Option<Edition> {
        let (serial, digest) = line.split_once(' ')?;
        Some(Edition {
            serial: serial.parse().ok()?,
            digest: digest.to_owned(),
        })
    }
}

impl<'a> FeedBuilder<'a> {
    /// A builder of `format` at the time `now_ns` (nanoseconds since the epoch; validity is
    /// judged against it), leaving out values on `warninglists`.
    pub fn new(format: Format, warninglists: Option<&'a Warninglists>, now_ns: i64) -> Self {
        FeedBuilder {
            format,
            warninglists,
            now_ns,
            entries: Vec::new(),
            seen: HashSet::new(),
            report: Report::default(),
        }
    }

    /// The format this builder writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Adds one object (any type: only indicators convert; the rest is counted).
    pub fn add(&mut self, object: &Value) {
        if object.get("type").and_then(Value::as_str) != Some("indicator") {
            self.report.not_indicator += 1;
            return;
        }
        if object.get("pattern_type").and_then(Value::as_str) != Some("stix") {
            self.report.other_pattern_type += 1;
            return;
        }
        if object.get("revoked").and_then(Value::as_bool) == Some(true) {
            self.report.revoked += 1;
            return;
        }
        let time = |k: &str| {
            object
                .get(k)
                .and_then(Value::as_str)
                .and_then(|t| Timestamp::parse(t).ok())
                .map(|t| t.unix_nanos())
        };
        if time("valid_until").is_some_and(|t| t <= self.now_ns) {
            self.report.expired += 1;
            return;
        }
        if let Some(t) = time("valid_from").filter(|&t| t > self.now_ns) {
            self.report.not_yet_valid += 1;
            self.report.change_at(t);
            return;
        }
        let Some(pattern) = object
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|p| concord_pattern::parse(p).ok())
        else {
            self.report.unparsable += 1;
            return;
        };
        let Some(values) = simple_values(&pattern.expr) else {
            self.report.not_representable += 1;
            return;
        };
        if let Some(t) = time("valid_until") {
            self.report.change_at(t);
        }
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let valid_until = object
            .get("valid_until")
            .and_then(Value::as_str)
            .map(str::to_owned);
        for (kind, value) in values {
            if !self.carries(&kind) {
                self.report.not_in_format += 1;
                continue;
            }
            if let Some(lists) = self.warninglists
                && kind
                    .misp_types()
                    .iter()
                    .any(|t| !lists.matches(t, &value).is_empty())
            {
                self.report.warninglisted += 1;
                continue;
            }
            if !self.seen.insert((kind.clone(), value.clone())) {
                self.report.duplicate += 1;
                continue;
            }
            self.entries.push(Entry {
                kind,
                value,
                indicator_id: id.to_owned(),
                name: name.clone(),
                valid_until: valid_until.clone(),
            });
        }
    }

    /// Whether this format can carry values of `kind`.
    fn carries(&self, kind: &Kind) -> bool {
        match self.format {
            // Suricata matches file hashes only through list files (`filemd5`), and has no
            // stable keyword for mail addresses across 6 and 7.
            Format::Suricata => matches!(kind, Kind::Ip | Kind::Domain | Kind::Url),
            // A resolver sees names and the addresses it answers with.
            Format::Rpz => matches!(kind, Kind::Ip | Kind::Domain),
            Format::ZeekIntel | Format::Csv | Format::Plain => true,
        }
    }

    /// The values so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The feed's text as the edition after `last` ([`Edition::after`]), what was left
    /// out, and that edition: `header.serial` is replaced by the edition's serial. The serial and the entity tag an audience sees derive only from the bytes it
    /// receives, so writes it does not receive (withheld by the egress policy) change
    /// neither: they would otherwise tell it that, and when, something it may not see was
    /// written.
    pub fn finish_edition(
        mut self,
        header: &Header,
        last: Option<&Edition>,
    ) -> (String, Report, Edition) {
        self.report.written = self.entries.len();
        let unnumbered = Header {
            serial: 0,
            ..header.clone()
        };
        let text = self.render(&unnumbered);
        let digest = Edition::digest_of(self.format, &text);
        let edition = Edition::after(last, digest, self.now_ns.div_euclid(1_000_000_000));
        // Only an RPZ zone carries its serial; the other texts are final.
        let text = if self.format == Format::Rpz {
            self.render(&Header {
                serial: edition.serial,
                ..header.clone()
            })
        } else {
            text
        };
        (text, self.report, edition)
    }

    /// The feed's text and what was left out.
    pub fn finish(mut self, header: &Header) -> (String, Report) {
        self.report.written = self.entries.len();
        let text = self.render(header);
        (text, self.report)
    }

    fn render(&self, header: &Header) -> String {
        match self.format {
            Format::Suricata => suricata(&self.entries, header),
            Format::ZeekIntel => zeek_intel(&self.entries, header),
            Format::Rpz => rpz(&self.entries, header),
            Format::Csv => csv(&self.entries),
            Format::Plain => self.entries.iter().fold(String::new(), |mut s, e| {
                s.push_str(&e.value);
                s.push('\n');
                s
            }),
        }
    }
}

/// The values of a pattern that is an `OR` of observations, each an `OR` of `=`/`IN` tests
/// on a supported path; `None` for any other pattern.
fn simple_values(expr: &ObservationExpr) -> Option<Vec<(Kind, String)>> {
    let mut out = Vec::new();
    observation_values(expr, &mut out)?;
    (!out.is_empty()).then_some(out)
}

fn observation_values(expr: &ObservationExpr, out: &mut Vec<(Kind, String)>) -> Option<()> {
    match expr {
        ObservationExpr::Observation(c) => comparison_values(c, out),
        ObservationExpr::Or(list) => list.iter().try_for_each(|e| observation_values(e, out)),
        _ => None,
    }
}

fn comparison_values(expr: &ComparisonExpr, out: &mut Vec<(Kind, String)>) -> Option<()> {
    match expr {
        ComparisonExpr::Or(list) => list.iter().try_for_each(|e| comparison_values(e, out)),
        ComparisonExpr::Test(t) => test_values(t, out),
        _ => None,
    }
}

fn test_values(t: &Test, out: &mut Vec<(Kind, String)>) -> Option<()> {
    if t.negated {
        return None;
    }
    let literals: Vec<&Literal> = match (&t.op, &t.operand) {
        (Operator::Eq, Operand::Literal(l)) => vec![l],
        (Operator::In, Operand::Set(s)) => s.iter().collect(),
        _ => return None,
    };
    let p = &t.path;
    let keys: Vec<&str> = p
        .steps
        .iter()
        .map(|s| match s {
            PathStep::Key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    for l in literals {
        let Literal::String(v) = l else { return None };
        let item = match (p.object_type.as_str(), p.property.as_str(), keys.as_slice()) {
            ("ipv4-addr" | "ipv6-addr", "value", []) => {
                (Kind::Ip, normalise_ip(v).map(|a| a.to_string())?)
            }
            ("domain-name", "value", []) => (Kind::Domain, normalise_domain(v)?),
            ("url", "value", []) => (Kind::Url, normalise_url(v).ok()?),
            ("email-addr", "value", []) => (Kind::Email, normalise_email(v)?),
            ("file", "hashes", [algo]) => {
                let (found, hex) = normalise_hash(v)?;
                let named = match algo.to_ascii_uppercase().as_str() {
                    "MD5" => HashAlgo::Md5,
                    "SHA-1" | "SHA1" => HashAlgo::Sha1,
                    "SHA-256" | "SHA256" => HashAlgo::Sha256,
                    _ => return None,
                };
                if found != named {
                    return None;
                }
                (Kind::Hash(found), hex)
            }
            _ => return None,
        };
        out.push(item);
    }
    Some(())
}

/// Text for a Suricata `msg`: printable ASCII without `"`, `;` and `\`.
fn rule_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | ';' | '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A Suricata `content` string: printable ASCII as is, except `"`, `;`, `\`, `|` and
/// everything else as `|hex|`.
fn content(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b';' | b'\\' | b'|') {
            out.push(b as char);
        } else {
            let _ = write!(out, "|{b:02X}|");
        }
    }
    out
}

fn suricata(entries: &[Entry], h: &Header) -> String {
    let mut out = format!(
        "# Suricata rules from Concord: {} ({} indicator values)\n",
        rule_text(&h.title),
        entries.len()
    );
    let mut sid = h.sid_base;
    let mut rule = |out: &mut String, head: &str, body: &str, e: &Entry| {
        let msg = rule_text(&format!(
            "Concord {} {} {}",
            e.kind.name(),
            e.value,
            e.indicator_id
        ));
        let _ = writeln!(
            out,
            "alert {head} (msg:\"{msg}\"; {body}sid:{sid}; rev:1; metadata:concord_indicator {};)",
            rule_text(&e.indicator_id)
        );
        sid += 1;
    };
    for e in entries {
        match &e.kind {
            Kind::Ip => {
                rule(&mut out, &format!("ip [{}] any <> any any", e.value), "", e);
            }
            Kind::Domain => {
                let c = content(&e.value);
                // The name itself, or any name under it (dotprefix: `.name` at the end).
                let body = format!("dotprefix; content:\".{c}\"; nocase; endswith; ");
                rule(
                    &mut out,
                    "dns any any -> any any",
                    &format!("dns.query; {body}"),
                    e,
                );
                rule(
                    &mut out,
                    "tls any any -> any any",
                    &format!("tls.sni; {body}"),
                    e,
                );
            }
            Kind::Url => {
                let (host, path) = url_parts(&e.value);
                let body = format!(
                    // `http.host` is normalised to lower case (Suricata 7 refuses `nocase` on it).
                    "http.host; content:\"{}\"; endswith; http.uri; content:\"{}\"; startswith; ",
                    content(host),
                    content(path)
                );
                rule(&mut out, "http any any -> any any", &body, e);
            }
            Kind::Hash(_) | Kind::Email => {}
        }
    }
    out
}

/// `(host, path)` of a normalised URL (`scheme://host[:port]/path?query`); the path is `/`
/// when empty; a port is left out of the host.
fn url_parts(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], "/"),
        None => (rest, "/"),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority, |(h, _)| &h[1..])
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    (host, path)
}

/// A field of a Zeek intel line: no tab, no line break; `-` when empty.
fn zeek_field(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

fn zeek_intel(entries: &[Entry], h: &Header) -> String {
    let mut out = String::from("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n");
    let source = zeek_field(&format!("concord {}", h.title));
    for e in entries {
        let (value, ty) = match &e.kind {
            Kind::Ip => (e.value.clone(), "Intel::ADDR"),
            Kind::Domain => (e.value.clone(), "Intel::DOMAIN"),
            // Zeek's intel URLs are what its HTTP scripts see: host and path, no scheme.
            Kind::Url => (
                e.value
                    .split_once("://")
                    .map_or(e.value.as_str(), |(_, r)| r)
                    .to_owned(),
                "Intel::URL",
            ),
            Kind::Hash(_) => (e.value.clone(), "Intel::FILE_HASH"),
            Kind::Email => (e.value.clone(), "Intel::EMAIL"),
        };
        let desc = match &e.name {
            Some(n) => format!("{n} ({})", e.indicator_id),
            None => e.indicator_id.clone(),
        };
        let _ = writeln!(
            out,
            "{}\t{ty}\t{source}\t{}",
            zeek_field(&value),
            zeek_field(&desc)
        );
    }
    out
}

/// The `rpz-ip` trigger owner of an address (BIND ARM, "Response Policy Zone"): the prefix
/// length, then the address's parts in reverse (IPv6: 16-bit groups in hex, the longest run
/// of zero groups as `zz`).
fn rpz_ip(addr: &str) -> Option<String> {
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some(format!("32.{}.{}.{}.{}.rpz-ip", o[3], o[2], o[1], o[0]))
        }
        IpAddr::V6(a) => {
            let g = a.segments();
            // The longest run (≥ 2) of zero groups, as in the compressed text form.
            let (mut best, mut cur) = ((0usize, 0usize), (0usize, 0usize));
            for (i, &x) in g.iter().enumerate() {
                if x == 0 {
                    if cur.1 == 0 {
                        cur.0 = i;
                    }
                    cur.1 += 1;
                    if cur.1 > best.1 {
                        best = cur;
                    }
                } else {
                    cur.1 = 0;
                }
            }
            let mut labels: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 8 {
                if best.1 >= 2 && i == best.0 {
                    labels.push("zz".into());
                    i += best.1;
                } else {
                    labels.push(format!("{:x}", g[i]));
                    i += 1;
                }
            }
            labels.reverse();
            Some(format!("128.{}.rpz-ip", labels.join(".")))
        }
    }
}

fn rpz(entries: &[Entry], h: &Header) -> String {
    let mut out = format!(
        "; response policy zone from Concord: {}\n$TTL 300\n\
         @ IN SOA localhost. hostmaster.localhost. ( {} 3600 600 86400 300 )\n@ IN NS localhost.\n",
        rule_text(&h.title),
        h.serial
    );
    for e in entries {
        match e.kind {
            Kind::Domain => {
                let _ = writeln!(out, "{} IN CNAME .", e.value);
                let _ = writeln!(out, "*.{} IN CNAME .", e.value);
            }
            Kind::Ip => {
                if let Some(owner) = rpz_ip(&e.value) {
                    let _ = writeln!(out, "{owner} IN CNAME .");
                }
            }
            _ => {}
        }
    }
    out
}

/// The first characters that make a spreadsheet read a cell as a formula (OWASP "CSV
/// Injection"): `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. A value
/// that a spreadsheet would run as a formula (it starts with one of [`FORMULA_LEADS`]) is
/// neutralised: prefixed with `'` and quoted, so it is shown as text. Indicator values come
/// from partners, so any of them may be hostile (`=HYPERLINK(…)`, `@SUM(…)`).
fn csv_field(s: &str) -> String {
    if s.starts_with(FORMULA_LEADS) {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(entries: &[Entry]) -> String {
    let mut out = String::from("value,type,indicator_id,name,valid_until\r\n");
    for e in entries {
        let _ = write!(
            out,
            "{},{},{},{},{}\r\n",
            csv_field(&e.value),
            e.kind.name(),
            csv_field(&e.indicator_id),
            csv_field(e.name.as_deref().unwrap_or("")),
            csv_field(e.valid_until.as_deref().unwrap_or(""))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2025-01-01T00:00:00Z";

    fn now() -> i64 {
        Timestamp::parse(NOW).unwrap().unix_nanos()
    }

    fn ind(id: u32, pattern: &str) -> Value {
        json!({"type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{id:08x}-0000-4000-8000-000000000000"),
            "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
            "valid_from": "2024-01-01T00:00:00Z", "pattern_type": "stix", "pattern": pattern})
    }

    fn build(format: Format, objects: &[Value]) -> (String, Report) {
        let mut b = FeedBuilder::new(format, None, now());
        for o in objects {
            b.add(o);
        }
        b.finish(&Header::default())
    }

    #[test]
    fn simple_comparisons_convert_and_the_rest_is_counted() {
        let objects = [
            ind(1, "[ipv4-addr:value = '198.51.100.7']"),
            ind(
                2,
                "[domain-name:value = 'Evil.Example.COM'] OR [url:value = 'HTTP://Evil.example.com/a;b?x=\"1\"']",
            ),
            ind(
                3,
                "[file:hashes.'SHA-256' = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']",
            ),
            ind(
                4,
                "[email-addr:value IN ('a@example.org', 'b@example.org')]",
            ),
            ind(5, "[ipv4-addr:value = '198.51.100.0/24']"),
            ind(
                6,
                "[domain-name:value = 'a.example' AND domain-name:value = 'b.example']",
            ),
            ind(7, "[ipv4-addr:value = '198.51.100.7']"),
            ind(8, "[ipv6-addr:value = '2001:db8::1']"),
            json!({"type": "malware", "id": "malware--00000000-0000-4000-8000-000000000000"}),
        ];
        let mut revoked = ind(9, "[domain-name:value = 'revoked.example']");
        revoked["revoked"] = json!(true);
        let mut expired = ind(10, "[domain-name:value = 'old.example']");
        expired["valid_until"] = json!("2024-06-01T00:00:00Z");
        let mut sigma = ind(11, "title: x");
        sigma["pattern_type"] = json!("sigma");
        let all: Vec<Value> = objects
            .into_iter()
            .chain([revoked, expired, sigma])
            .collect();
        let (text, r) = build(Format::Plain, &all);
        assert_eq!(
            text,
            "198.51.100.7\nevil.example.com\nhttp://evil.example.com/a;b?x=\"1\"\n\
             aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
             a@example.org\nb@example.org\n2001:db8::1\n"
        );
        assert_eq!(
            r,
            Report {
                written: 7,
                not_indicator: 1,
                other_pattern_type: 1,
                not_representable: 2,
                revoked: 1,
                expired: 1,
                duplicate: 1,
                ..Report::default()
            }
        );
        let (zeek, _) = build(Format::ZeekIntel, &all);
        let lines: Vec<&str> = zeek.lines().collect();
        assert_eq!(
            lines[0],
            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"
        );
        assert!(lines.contains(&"evil.example.com/a;b?x=\"1\"\tIntel::URL\tconcord concord\tindicator--00000002-0000-4000-8000-000000000000"));
        assert!(lines.iter().skip(1).all(|l| l.split('\t').count() == 4));
        let (rpz, r) = build(Format::Rpz, &all);
        assert!(
            rpz.contains("\n32.7.100.51.198.rpz-ip IN CNAME .\n"),
            "{rpz}"
        );
        assert!(
            rpz.contains("\n128.1.zz.db8.2001.rpz-ip IN CNAME .\n"),
            "{rpz}"
        );
        assert!(rpz.contains("\n*.evil.example.com IN CNAME .\n"), "{rpz}");
        assert_eq!(r.not_in_format, 4, "URL, hash, two e-mail addresses");
        let (rules, _) = build(Format::Suricata, &all);
        assert!(
            rules.contains("content:\"/a|3B|b?x=|22|1|22|\"; startswith;"),
            "{rules}"
        );
        let (csv, _) = build(Format::Csv, &all);
        assert!(
            csv.contains("\"http://evil.example.com/a;b?x=\"\"1\"\"\",url,"),
            "{csv}"
        );
    }

    /// OWASP "CSV Injection": a cell beginning with `=`, `+`, `-`, `@`, tab or carriage
    /// return is run by spreadsheets; every such field leaves as quoted text led by `'`.
    /// The names carry each lead; the values (e-mail addresses) those their normal form
    /// keeps.
    #[test]
    fn csv_cells_that_spreadsheets_would_run_are_neutralised() {
        let leads = ['=', '+', '-', '@', '\t', '\r'];
        let name = |c: char| format!("{c}HYPERLINK(\"http://evil.example/\",\"x\")");
        let mut objects: Vec<Value> = leads
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let mut v = ind(
                    i as u32 + 1,
                    &format!("[domain-name:value = 'h{i}.example']"),
                );
                v["name"] = json!(name(c));
                v
            })
            .collect();
        for (i, c) in ['=', '+', '-'].iter().enumerate() {
            objects.push(ind(
                i as u32 + 10,
                &format!("[email-addr:value = '{c}cmd{i}@example.org']"),
            ));
        }
        let (text, r) = build(Format::Csv, &objects);
        assert_eq!(r.written, 9, "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 9);
        for (i, &c) in leads.iter().enumerate() {
            assert_eq!(&rows[i][3], format!("'{}", name(c)), "{text:?}");
        }
        for (i, c) in ['=', '+', '-'].iter().enumerate() {
            assert_eq!(
                &rows[6 + i][0],
                format!("'{c}cmd{i}@example.org"),
                "{text:?}"
            );
        }
        for row in &rows {
            for field in row {
                assert!(!field.starts_with(leads), "runs as a formula: {row:?}");
            }
        }
        // Fields with no such lead are written as before.
        assert!(text.contains("\r\nh0.example,domain,indicator--"), "{text}");
    }

    /// The serial moves exactly when the text does, by one in RFC 1982 arithmetic.
    #[test]
    fn an_edition_moves_only_with_the_text() {
        let zone = |values: &[u32], last: Option<&Edition>| {
            let mut b = FeedBuilder::new(Format::Rpz, None, now());
            for v in values {
                b.add(&ind(*v, &format!("[domain-name:value = 'h{v}.example']")));
            }
            b.finish_edition(&Header::default(), last)
        };
        let (text, _, first) = zone(&[1], None);
        assert_eq!(first.serial as i64, now() / 1_000_000_000);
        assert!(text.contains(&format!("( {} 3600", first.serial)), "{text}");
        let (again, _, same) = zone(&[1], Some(&first));
        assert_eq!((again, &same), (text, &first));
        let (text, _, second) = zone(&[1, 2], Some(&first));
        assert_eq!(second.serial, first.serial + 1);
        assert!(
            text.contains(&format!("( {} 3600", second.serial)),
            "{text}"
        );
        assert_eq!(Edition::parse(&second.to_line()), Some(second.clone()));
        // At the top of the range the serial wraps to 0, which RFC 1982 orders after it.
        let top = Edition {
            serial: u32::MAX,
            ..second
        };
        assert_eq!(zone(&[2], Some(&top)).2.serial, 0);
    }

    #[test]
    fn rpz_ip_triggers_follow_bind() {
        assert_eq!(rpz_ip("192.0.2.1").unwrap(), "32.1.2.0.192.rpz-ip");
        assert_eq!(rpz_ip("2001:db8::1").unwrap(), "128.1.zz.db8.2001.rpz-ip");
        assert_eq!(
            rpz_ip("2001:db8:0:1:0:0:0:7").unwrap(),
            "128.7.zz.1.0.db8.2001.rpz-ip"
        );
    }

    #[test]
    fn url_parts_split_host_and_path() {
        assert_eq!(url_parts("http://a.example/x?y"), ("a.example", "/x?y"));
        assert_eq!(url_parts("https://a.example:8443"), ("a.example", "/"));
        assert_eq!(url_parts("http://u@a.example?q"), ("a.example", "/"));
    }
}
