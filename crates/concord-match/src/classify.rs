//! Classification of one observable written as text: an IP address, CIDR block, `ip:port`,
//! domain name, URL, hash (MD5, SHA-1, SHA-256) or e-mail address, after refanging the
//! defanged forms analysts use (`hxxp`, `[.]`, `(.)`, `[@]`, `[:]`). Shared by the IOC-list
//! reader ([`crate::ioc_list`]) and the plain-observable log reader ([`crate::input`]).
//!
//! Normal forms (so the same observable always gives the same indicator id and the same key):
//! IP addresses as `std::net` prints them (IPv6 compressed, lower case); CIDR blocks with the
//! host bits cleared; domains in lower case without a trailing dot; hashes in lower-case hex;
//! URLs with scheme and host in lower case (path and query kept as written); e-mail addresses
//! with the domain in lower case (the local part is case-sensitive, RFC 5321 §2.4).

use std::borrow::Cow;
use std::net::IpAddr;

/// A hash algorithm recognised by digest length (STIX 2.1 §10.1 hash-algorithm-ov names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// 32 hex digits.
    Md5,
    /// 40 hex digits.
    Sha1,
    /// 64 hex digits.
    Sha256,
}

impl HashAlgo {
    /// The key in a STIX `hashes` dictionary: `MD5`, `SHA-1`, `SHA-256`.
    pub fn stix_name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "MD5",
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Sha256 => "SHA-256",
        }
    }

    /// The algorithm whose hex digest has `len` digits.
    pub fn from_hex_len(len: usize) -> Option<HashAlgo> {
        match len {
            32 => Some(HashAlgo::Md5),
            40 => Some(HashAlgo::Sha1),
            64 => Some(HashAlgo::Sha256),
            _ => None,
        }
    }
}

/// One classified observable, in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observable {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A CIDR block with host bits cleared; the prefix is shorter than the address width.
    Cidr(IpAddr, u8),
    /// `ip:port` (maltrail's form for a C2 endpoint): the destination of a connection.
    IpPort(IpAddr, u16),
    /// A domain name.
    Domain(String),
    /// A URL; `host/path` without a scheme is read as `http://host/path`.
    Url(String),
    /// A URL path without a host (`/path/x.php`, maltrail's form for "this path on any
    /// host"), kept as written.
    UrlPath(String),
    /// A file hash.
    Hash(HashAlgo, String),
    /// An e-mail address.
    Email(String),
}

/// Undoes the usual defanging: `hxxp`/`hxxps`/`fxp` schemes, `[.]`, `(.)`, `{.}`, `[dot]`,
/// `[@]`, `[at]`, `[:]`, `[://]`. Returns the input unchanged (borrowed) when nothing is
/// defanged, which is the common case.
pub fn refang(s: &str) -> Cow<'_, str> {
    if !s.contains(['[', '(', '{']) && !starts_with_ci(s, "hxxp") && !starts_with_ci(s, "fxp") {
        return Cow::Borrowed(s);
    }
    let mut out = s.to_string();
    for (from, to) in [
        ("[://]", "://"),
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("[DOT]", "."),
        ("[@]", "@"),
        ("[at]", "@"),
        ("[AT]", "@"),
        ("[:]", ":"),
    ] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    if starts_with_ci(&out, "hxxp") {
        out.replace_range(..4, "http");
    } else if starts_with_ci(&out, "fxp") {
        out.replace_range(..3, "ftp");
    }
    Cow::Owned(out)
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Why a text is not an observable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclassified {
    /// Empty after trimming.
    Empty,
    /// Has white space inside.
    Spaces,
    /// A CIDR block with a prefix longer than the address or not a number.
    BadCidr,
    /// A port outside 1–65535.
    BadPort,
    /// A URL whose host is not a domain name or an IP address.
    BadUrl,
    /// Hex digits of a length that is no known hash (not 32, 40 or 64).
    HexOfUnknownLength,
    /// None of the forms matched.
    Unknown,
}

impl Unclassified {
    /// A short reason for reports.
    pub fn reason(self) -> &'static str {
        match self {
            Unclassified::Empty => "empty",
            Unclassified::Spaces => "white space inside the value",
            Unclassified::BadCidr => "CIDR prefix is not a number within the address width",
            Unclassified::BadPort => "port is not a number in 1-65535",
            Unclassified::BadUrl => "URL host is neither a domain name nor an IP address",
            Unclassified::HexOfUnknownLength => {
                "hex string of a length that is no MD5/SHA-1/SHA-256 digest"
            }
            Unclassified::Unknown => {
                "not an IP, CIDR, ip:port, domain, URL, URL path, MD5/SHA-1/SHA-256 hash or e-mail address"
            }
        }
    }
}

/// Whether `s` is a host name: dot-separated labels of letters, digits, `-` and `_` (seen in
/// real DNS data), at least two labels, a last label that is not all digits, at most 253
/// bytes. Case is not checked (callers lower-case).
pub fn is_domain(s: &str) -> bool {
    domain_bytes(s.as_bytes())
}

/// [`is_domain`] in one pass over the bytes.
fn domain_bytes(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > 253 {
        return false;
    }
    // The current label's length and whether it is all digits; the dots so far.
    let (mut label, mut digits, mut dots) = (0usize, true, 0);
    for &c in b {
        if c == b'.' {
            if label == 0 {
                return false;
            }
            dots += 1;
            label = 0;
            digits = true;
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            label += 1;
            if label > 63 {
                return false;
            }
            digits &= c.is_ascii_digit();
        } else {
            return false;
        }
    }
    dots > 0 && label > 0 && !digits
}

/// [`domain_bytes`] for bytes that are all of [`classify_simple`]'s `HOST` class (letters,
/// digits, `.`, `-`, `_`): only the labels' lengths and the digits of the last are left to
/// check.
fn host_domain(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > 253 {
        return false;
    }
    let (mut label, mut digits, mut dots) = (0usize, true, 0);
    for &c in b {
        if c == b'.' {
            if label == 0 {
                return false;
            }
            dots += 1;
            label = 0;
            digits = true;
        } else {
            label += 1;
            digits &= c.is_ascii_digit();
        }
        if label > 63 {
            return false;
        }
    }
    dots > 0 && label > 0 && !digits
}

/// Lower-cases and strips one trailing dot; `None` when the result is no domain name.
pub fn normalise_domain(s: &str) -> Option<String> {
    let mut out = String::new();
    normalise_domain_into(s, &mut out).then_some(out)
}

/// [`normalise_domain`] into `out` (replacing its content, keeping its allocation); whether
/// the result is a domain name.
pub fn normalise_domain_into(s: &str, out: &mut String) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    out.clear();
    out.push_str(s);
    out.make_ascii_lowercase();
    is_domain(out)
}

/// Lower-case hex digest with its algorithm; colons (certificate fingerprints as
/// `aa:bb:…`) are removed first.
pub fn normalise_hash(s: &str) -> Option<(HashAlgo, String)> {
    let mut out = String::new();
    normalise_hash_into(s, &mut out).map(|a| (a, out))
}

/// [`normalise_hash`] into `out` (replacing its content, keeping its allocation).
pub fn normalise_hash_into(s: &str, out: &mut String) -> Option<HashAlgo> {
    out.clear();
    // Most digests are hex digits only: found so eight bytes at a time, with no search for
    // colons and no second pass over the digits.
    if all_hex(s.as_bytes()) {
        out.push_str(s);
        let algo = HashAlgo::from_hex_len(out.len())?;
        out.make_ascii_lowercase();
        return Some(algo);
    }
    if s.contains(':') {
        out.extend(s.split(':'));
    } else {
        out.push_str(s);
    }
    let algo = HashAlgo::from_hex_len(out.len())?;
    if !out.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    out.make_ascii_lowercase();
    Some(algo)
}

/// Whether every byte of `b` is an ASCII hex digit, eight at a time (bytes below 0x80 add
/// without carries: `x + (0x80 - a)` has its top bit set when `x >= a`, `x + (0x7f - b)`
/// when `x > b`): a digit, or with the 0x20 bit set (A-F to a-f) a letter `a`-`f`.
fn all_hex(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = LO * 0x80;
    let within =
        |x: u64, a: u64, b: u64| x.wrapping_add(LO * (0x80 - a)) & !x.wrapping_add(LO * (0x7f - b));
    let (chunks, rest) = b.as_chunks::<8>();
    for c in chunks {
        let x = u64::from_le_bytes(*c);
        let hex = within(x, 0x30, 0x39) | within(x | (LO * 0x20), 0x61, 0x66);
        if (x & HI) | (!hex & HI) != 0 {
            return false;
        }
    }
    rest.iter().all(u8::is_ascii_hexdigit)
}

/// An e-mail address with the domain part lower-cased; `Name <a@b>` gives `a@b`.
pub fn normalise_email(s: &str) -> Option<String> {
    let s = s.trim();
    let s = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s,
    };
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty()
        || local.contains(['@', ' ', '<', '>', ',', ';', '"'])
        || !local.bytes().all(|c| c.is_ascii_graphic())
    {
        return None;
    }
    let domain = normalise_domain(domain)?;
    Some(format!("{local}@{domain}"))
}

/// The IP address in `s` in normal form (IPv4 dotted quad without leading zeros as `std`
/// parses it; IPv6 as `std` prints it).
pub fn normalise_ip(s: &str) -> Option<IpAddr> {
    // Most values are dotted quads: read them without trying both grammars of `IpAddr`.
    if let Some(a) = dotted_quad(s.as_bytes()) {
        return Some(IpAddr::V4(a.into()));
    }
    // `std`'s IPv4 grammar is the dotted quad above, and every IPv6 form has a colon: the
    // general parser can only accept text with one (domains and hashes skip it).
    if !s.as_bytes().contains(&b':') {
        return None;
    }
    s.parse::<IpAddr>().ok()
}

/// An IPv4 address in exactly the form `std::net::Ipv4Addr` accepts (four decimal octets of
/// one to three digits, no leading zero, each at most 255), or `None` for anything else,
/// which the caller then gives to the general parser.
pub(crate) fn dotted_quad(s: &[u8]) -> Option<u32> {
    // Octet by octet, without a state per byte (the shortest form is `0.0.0.0`, the longest
    // `255.255.255.255`).
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let digit = |i: usize| {
        s.get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d < 10)
            .map(u32::from)
    };
    let (mut i, mut addr) = (0, 0u32);
    for k in 0..4 {
        let mut v = digit(i)?;
        i += 1;
        // Up to two more digits after a first that is not `0`; at most 255.
        if v != 0
            && let Some(d) = digit(i)
        {
            v = v * 10 + d;
            i += 1;
            if let Some(d) = digit(i) {
                v = v * 10 + d;
                i += 1;
                if v > 255 {
                    return None;
                }
            }
        }
        addr = addr << 8 | v;
        if k < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == s.len()).then_some(addr)
}

/// A URL with scheme and host lower-cased; `None` when there is no `scheme://host`.
pub fn normalise_url(s: &str) -> Result<String, Unclassified> {
    let mut out = String::new();
    normalise_url_into(s, &mut out).map(|()| out)
}

/// [`normalise_url`] into `out` (replacing its content, keeping its allocation).
pub fn normalise_url_into(s: &str, out: &mut String) -> Result<(), Unclassified> {
    // The scheme's characters, then `://` (a `://` further on would leave a character the
    // scheme may not have before it): no substring search.
    let p = s
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
        .unwrap_or(s.len());
    if p == 0 || !s[p..].starts_with("://") {
        return Err(Unclassified::BadUrl);
    }
    let (scheme, rest) = (&s[..p], &s[p + 3..]);
    let end = rest
        .bytes()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        let Some((h, _)) = v6.split_once(']') else {
            return Err(Unclassified::BadUrl);
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Unclassified::BadUrl);
        }
    } else {
        let host = match hostport.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => hostport,
        };
        // `is_domain` and the IPv4 syntax do not depend on case: no lower-cased copy.
        if !(is_domain(host)
            || host.parse::<std::net::Ipv4Addr>().is_ok()
            || host.eq_ignore_ascii_case("localhost"))
        {
            return Err(Unclassified::BadUrl);
        }
    }
    out.clear();
    out.push_str(scheme);
    out.make_ascii_lowercase();
    out.push_str("://");
    out.push_str(&authority[..authority.len() - hostport.len()]);
    let host_at = out.len();
    out.push_str(hostport);
    out[host_at..].make_ascii_lowercase();
    out.push_str(tail);
    Ok(())
}

/// Classifies one trimmed, refanged token (no comment, no `;` suffix). See the module
/// documentation for the normal forms.
pub fn classify(s: &str) -> Result<Observable, Unclassified> {
    let mut text = String::new();
    Ok(match classify_into(s, &mut text)? {
        Kind::Ip(ip) => Observable::Ip(ip),
        Kind::Cidr(ip, p) => Observable::Cidr(ip, p),
        Kind::IpPort(ip, p) => Observable::IpPort(ip, p),
        Kind::Domain => Observable::Domain(text),
        Kind::Url => Observable::Url(text),
        Kind::UrlPath => Observable::UrlPath(text),
        Kind::Hash(a) => Observable::Hash(a, text),
        Kind::Email => Observable::Email(text),
    })
}

/// The kind of an observable classified by [`classify_into`], whose normal text is in the
/// caller's buffer (for addresses: the address as [`Observable`] would print it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A CIDR block (text `addr/prefix`, host bits cleared).
    Cidr(IpAddr, u8),
    /// `ip:port` (text: the address).
    IpPort(IpAddr, u16),
    /// A domain name.
    Domain,
    /// A URL.
    Url,
    /// A URL path without a host.
    UrlPath,
    /// A file hash.
    Hash(HashAlgo),
    /// An e-mail address.
    Email,
}

/// [`classify`] without allocating in the common cases: the normal text goes into `out`
/// (its content replaced, its allocation kept), the kind is returned. The log reader calls
/// this once per plain observable with a reused buffer.
pub fn classify_into(s: &str, out: &mut String) -> Result<Kind, Unclassified> {
    if s.is_empty() {
        return Err(Unclassified::Empty);
    }
    if s.contains(char::is_whitespace) {
        return Err(Unclassified::Spaces);
    }
    let b = s.as_bytes();
    // Hashes first: a 32/40/64 hex string is never anything else.
    if b.iter().all(u8::is_ascii_hexdigit) && b.len() >= 24 {
        return normalise_hash_into(s, out)
            .map(Kind::Hash)
            .ok_or(Unclassified::HexOfUnknownLength);
    }
    if let Some(ip) = normalise_ip(s) {
        ip_text_into(s, ip, out);
        return Ok(Kind::Ip(ip));
    }
    if s.len() > 1 && s.starts_with('/') && !s.starts_with("//") {
        out.clear();
        out.push_str(s);
        return Ok(Kind::UrlPath);
    }
    if s.contains("://") {
        return normalise_url_into(s, out).map(|()| Kind::Url);
    }
    if s.contains('@') {
        let e = normalise_email(s).ok_or(Unclassified::Unknown)?;
        out.clear();
        out.push_str(&e);
        return Ok(Kind::Email);
    }
    if let Some((addr, prefix)) = s.split_once('/')
        && let Some(ip) = normalise_ip(addr)
    {
        if let Ok(p) = prefix.parse::<u8>()
            && prefix.bytes().all(|c| c.is_ascii_digit())
        {
            return cidr(ip, p, out);
        }
        if prefix.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Unclassified::BadCidr);
        }
        // `1.2.3.4/path`: a URL on a bare IP.
    }
    let host_end = s.find('/').unwrap_or(s.len());
    let (hostport, path) = s.split_at(host_end);
    if let Some((h, port)) = hostport.rsplit_once(':')
        && !h.contains(':')
    {
        let port_ok = port.parse::<u16>().ok().filter(|&p| p > 0);
        if path.is_empty()
            && let Some(ip) = normalise_ip(h)
        {
            let p = port_ok.ok_or(Unclassified::BadPort)?;
            ip_text_into(h, ip, out);
            return Ok(Kind::IpPort(ip, p));
        }
        if port_ok.is_none() {
            return Err(Unclassified::BadPort);
        }
        if is_domain(&h.to_ascii_lowercase()) || normalise_ip(h).is_some() {
            return normalise_url_into(&format!("http://{s}"), out).map(|()| Kind::Url);
        }
        return Err(Unclassified::Unknown);
    }
    if !path.is_empty() {
        let host = hostport.to_ascii_lowercase();
        if is_domain(&host) || host.parse::<std::net::Ipv4Addr>().is_ok() {
            return normalise_url_into(&format!("http://{s}"), out).map(|()| Kind::Url);
        }
        return Err(Unclassified::Unknown);
    }
    if normalise_domain_into(s, out) {
        Ok(Kind::Domain)
    } else {
        Err(Unclassified::Unknown)
    }
}

/// [`classify_into`] of `refang(line.trim())` for the common plain observables, decided
/// without the general steps: a lower-case-or-not hex digest of 32, 40 or 64 digits, a dotted
/// quad, a domain name, an `http://`/`https://` URL. `line` is the raw line without its end;
/// only lines whose trimmed text is printable ASCII without `[`, `(`, `{` (so nothing to
/// refang) and not a comment are taken. `None`: not decided here (the caller runs the general
/// path, which also words the errors); `Some` only for results equal to the general path's.
pub(crate) fn classify_simple(line: &[u8], out: &mut String) -> Option<Kind> {
    let line = std::str::from_utf8(line).ok()?;
    out.clear();
    classify_simple_str(line, out)
}

/// [`classify_simple`] of a line already known to be UTF-8 (the reader checks a buffer of
/// lines at once), its normal text appended to `out` (left as it was on `None`).
pub(crate) fn classify_simple_str(line: &str, out: &mut String) -> Option<Kind> {
    // `str::trim` removes these (and non-ASCII white space, which the check below refuses).
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let bytes = line.as_bytes();
    let start = bytes.iter().position(|c| !ws(c))?;
    let end = bytes.iter().rposition(|c| !ws(c))? + 1;
    // ASCII white space ends at character boundaries.
    let s = &line[start..end];
    let b = s.as_bytes();
    // The classes every byte has in common.
    let class = b.iter().fold(!0u8, |acc, &c| acc & CLASS[usize::from(c)]);
    // Comments, and what `refang` would change (brackets are refused by the classes).
    if class & PRINT == 0
        || b[0] == b'#'
        || starts_with_ci_b(b, b"hxxp")
        || starts_with_ci_b(b, b"fxp")
    {
        return None;
    }
    // ASCII throughout from here on: any byte position is a character boundary.
    let at = out.len();
    let lower = |out: &mut String, from: usize| {
        if class & NO_UPPER == 0 {
            out[from..].make_ascii_lowercase();
        }
    };
    if class & HEX != 0 {
        // `classify_into`: an all-hex token of 24 digits or more is a hash or nothing.
        let algo = HashAlgo::from_hex_len(b.len())?;
        out.push_str(s);
        lower(out, at);
        return Some(Kind::Hash(algo));
    }
    if class & QUAD != 0
        && let Some(a) = dotted_quad(b)
    {
        out.push_str(s);
        return Some(Kind::Ip(IpAddr::V4(a.into())));
    }
    if class & HOST != 0 {
        // Not hex, not a dotted quad, no colon, slash or `@`: `classify_into` ends in
        // `normalise_domain_into`.
        let d = b.strip_suffix(b".").unwrap_or(b);
        if !host_domain(d) {
            return None;
        }
        out.push_str(&s[..d.len()]);
        lower(out, at);
        return Some(Kind::Domain);
    }
    let scheme = if starts_with_ci_b(b, b"http://") {
        4
    } else if starts_with_ci_b(b, b"https://") {
        5
    } else {
        return None;
    };
    // Not an address (an `h` is no hex digit), not a path: `classify_into` gives
    // `normalise_url_into`. Its common case here: a host of letters, digits, `.`, `-`, `_`
    // (no user, port or IPv6 literal) that is a domain name or a dotted quad; any other host
    // is left to the general path.
    let rest = &b[scheme + 3..];
    let host_len = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..host_len];
    if !host.iter().all(|&c| CLASS[usize::from(c)] & HOST != 0)
        || !(host_domain(host)
            || dotted_quad(host).is_some()
            || host.eq_ignore_ascii_case(b"localhost"))
    {
        return None;
    }
    out.push_str(&s[..scheme + 3 + host_len]);
    lower(out, at);
    out.push_str(&s[scheme + 3 + host_len..]);
    Some(Kind::Url)
}

/// Byte classes of [`classify_simple`]: printable ASCII other than `[`, `(`, `{`.
const PRINT: u8 = 1;
/// A hex digit.
const HEX: u8 = 2;
/// A digit or `.`.
const QUAD: u8 = 4;
/// A letter, digit, `.`, `-` or `_`.
const HOST: u8 = 8;
/// Not an upper-case letter (a text of such bytes is its own lower case).
const NO_UPPER: u8 = 16;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x21;
    while c <= 0x7e {
        let b = c as u8;
        let mut k = 0;
        if !matches!(b, b'[' | b'(' | b'{') {
            k |= PRINT;
        }
        if b.is_ascii_hexdigit() {
            k |= HEX;
        }
        if b.is_ascii_digit() || b == b'.' {
            k |= QUAD;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            k |= HOST;
        }
        if !b.is_ascii_uppercase() {
            k |= NO_UPPER;
        }
        // Every class implies printable (an all-`[` text is no host).
        if k & PRINT == 0 {
            k = 0;
        }
        t[c] = k;
        c += 1;
    }
    t
};

fn starts_with_ci_b(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The normal text of an address parsed from `s`: `std` accepts only the canonical dotted
/// quad for IPv4 (no leading zeros), so `s` is reused; IPv6 is printed compressed.
pub(crate) fn ip_text_into(s: &str, ip: IpAddr, out: &mut String) {
    out.clear();
    if ip.is_ipv4() {
        out.push_str(s);
    } else {
        use std::fmt::Write;
        let _ = write!(out, "{ip}");
    }
}

/// A block with its host bits cleared (a full-length prefix is the address); its text into
/// `out`.
fn cidr(ip: IpAddr, prefix: u8, out: &mut String) -> Result<Kind, Unclassified> {
    use std::fmt::Write;
    let width = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > width {
        return Err(Unclassified::BadCidr);
    }
    out.clear();
    if prefix == width {
        let _ = write!(out, "{ip}");
        return Ok(Kind::Ip(ip));
    }
    let net = match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    let _ = write!(out, "{net}/{prefix}");
    Ok(Kind::Cidr(net, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_quad_accepts_what_std_accepts() {
        for s in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.0004",
            "10.0.0.1",
            "199.200.201.255",
            "::1",
            "",
            "0.0.0.00",
            "00.0.0.0",
            "1.2.3.4.",
            "999.1.1.1",
            "1.2.3.25a",
            "100.200.250.255",
        ]
        .into_iter()
        .map(String::from)
        .chain((0..50_000u64).map(|i| {
            // Random texts of digits and dots.
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151;
            let n = 5 + (x % 13) as usize;
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    b"0123456789.9.5.2.1"[(x >> 40) as usize % 18] as char
                })
                .collect()
        })) {
            let s = s.as_str();
            assert_eq!(
                dotted_quad(s.as_bytes()),
                s.parse::<std::net::Ipv4Addr>().ok().map(u32::from),
                "{s}"
            );
        }
    }

    #[test]
    fn host_domain_agrees_with_domain_bytes() {
        let alphabet = b"0123456789azAZ.-_";
        let (mut seed, mut yes) = (3u64, 0);
        for _ in 0..50_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = match (seed >> 60) as usize {
                0 => 62 + (seed >> 40) as usize % 4,
                1 => 250 + (seed >> 40) as usize % 6,
                k => k,
            };
            let b: Vec<u8> = (0..n)
                .map(|i| {
                    let x = seed.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x9e37);
                    // Long labels need few dots.
                    if n > 60 && !x.is_multiple_of(40) {
                        b'a'
                    } else {
                        alphabet[(x % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            assert!(b.iter().all(|&c| CLASS[usize::from(c)] & HOST != 0));
            assert_eq!(
                host_domain(&b),
                domain_bytes(&b),
                "{:?}",
                String::from_utf8_lossy(&b)
            );
            yes += usize::from(host_domain(&b));
        }
        // Both answers are common.
        assert!((1000..49_000).contains(&yes), "{yes}");
        for s in [
            "", ".", "a.", ".a", "a..b", "a.b", "1.2", "1.b", "a.1", "a-.b", "_.x",
        ] {
            assert_eq!(host_domain(s.as_bytes()), domain_bytes(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn classify_simple_agrees_with_classify_into() {
        let mut inputs: Vec<String> = [
            "1.2.3.4",
            " 1.2.3.4\t",
            "01.2.3.4",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3",
            "::1",
            "2001:DB8::1",
            "1.2.3.4:80",
            "1.2.3.4/24",
            "1.2.3.4/32",
            "Evil.COM",
            "evil.com.",
            "evil..com",
            "a_b.example",
            "-x.com",
            "x",
            "1234",
            "1.2.3.4a",
            "evil.123",
            "D41D8CD98F00B204E9800998ECF8427E",
            "d41d8cd98f00b204e9800998ecf8427",
            "d41d8cd98f00b204e9800998ecf8427ed41d8cd98f00b204e9800998ecf8427e",
            "aaaaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaaaaa.com",
            "HTTP://Evil.COM/A?b=1",
            "https://evil.com",
            "http://evil",
            "http://1.2.3.4:8080/x",
            "http://[::1]/x",
            "http://a@b.com/x",
            "http:///x",
            "hxxp://evil.com/x",
            "hXXps://evil.com",
            "fxp://x.com",
            "evil[.]com",
            "evil(.)com",
            "/x/y.php",
            "//x",
            "evil.com/a.php",
            "evil.com:8080",
            "a@b.com",
            "#1.2.3.4",
            "# c",
            "",
            " ",
            "a b.com",
            "é.com",
            "x\u{a0}",
            "\u{a0}1.2.3.4",
            "\u{b}1.2.3.4\u{c}",
            "1.2.3.4\u{0}",
            "ftp://x.com/a",
            "foo://bar.com",
            "xn--bcher-kva.example",
            "a.b.c.d.e.f",
            "hxxpevil.com",
            "HXXP.com",
            "fxpa.com",
            "FXP.com",
            "http://hxxp.com/x",
            ".",
            "a.",
            "a..",
            ".a.com",
            "http://LOCALHOST/x",
            "http://localhost",
            "http://a.b:/x",
            "http://a.b#x",
            "http://a.b?x",
            "https://1.2.3.4/",
            "http://1.2.3/x",
            "http://evil.com/hxxp(x)",
            "1.2.3.4.",
            "1.2.3.4.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 7u64;
        let alphabet = b"0123456789abcdefABCDEF.:/-_@[]()hxtp #%?=";
        for _ in 0..20000 {
            let mut t = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (seed >> 59) as usize + 1;
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.push(alphabet[(seed >> 33) as usize % alphabet.len()] as char);
            }
            inputs.push(t);
        }
        for s in &inputs {
            let mut fast = String::new();
            // The appending form leaves what `out` held before and adds the same text.
            let mut appended = String::from("before|");
            let kind2 = classify_simple_str(s, &mut appended);
            let Some(kind) = classify_simple(s.as_bytes(), &mut fast) else {
                assert_eq!((kind2, appended.as_str()), (None, "before|"), "{s:?}");
                continue;
            };
            assert_eq!(kind2, Some(kind), "{s:?}");
            assert_eq!(appended, format!("before|{fast}"), "{s:?}");
            let mut slow = String::new();
            let t = s.trim();
            assert!(!t.starts_with('#'), "{s:?}");
            assert_eq!(classify_into(&refang(t), &mut slow), Ok(kind), "{s:?}");
            assert_eq!(fast, slow, "{s:?}");
        }
    }

    #[test]
    fn urls_as_before() {
        // The definition before the scheme was read without a substring search.
        fn reference(s: &str, out: &mut String) -> Result<(), Unclassified> {
            let Some((scheme, rest)) = s.split_once("://") else {
                return Err(Unclassified::BadUrl);
            };
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
            {
                return Err(Unclassified::BadUrl);
            }
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if let Some(v6) = hostport.strip_prefix('[') {
                let Some((h, _)) = v6.split_once(']') else {
                    return Err(Unclassified::BadUrl);
                };
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(Unclassified::BadUrl);
                }
            } else {
                let host = match hostport.rsplit_once(':') {
                    Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
                    _ => hostport,
                };
                if !(is_domain(host)
                    || host.parse::<std::net::Ipv4Addr>().is_ok()
                    || host.eq_ignore_ascii_case("localhost"))
                {
                    return Err(Unclassified::BadUrl);
                }
            }
            out.clear();
            out.push_str(scheme);
            out.make_ascii_lowercase();
            out.push_str("://");
            out.push_str(&authority[..authority.len() - hostport.len()]);
            let host_at = out.len();
            out.push_str(hostport);
            out[host_at..].make_ascii_lowercase();
            out.push_str(tail);
            Ok(())
        }
        let mut inputs: Vec<String> = [
            "http://a.com/x",
            "HTTP://A.COM:80/x?y#z",
            "://a.com",
            "h:ttp://a.com",
            "http:/a.com",
            "http//a.com",
            "ht tp://a.com",
            "é://a.com",
            "http://a.com://b",
            "a+b-c.d://[::1]:8/",
            "http://u:p@a.com",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x = 23u64;
        for _ in 0..40_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = (x >> 59) as usize + 1;
            let t: String = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    [
                        "http", "://", ":", "/", "a.com", "A", "@", "?", "#", "[::1]", "1.2.3.4",
                        "é", "+", " ", "8",
                    ][(x >> 40) as usize % 15]
                })
                .collect();
            inputs.push(t);
        }
        for s in &inputs {
            let (mut a, mut b) = (String::new(), String::new());
            let (ra, rb) = (normalise_url_into(s, &mut a), reference(s, &mut b));
            assert_eq!(ra.is_ok(), rb.is_ok(), "{s:?}");
            if ra.is_ok() {
                assert_eq!(a, b, "{s:?}");
            }
        }
    }

    #[test]
    fn hashes_as_before() {
        // The definition before `all_hex`.
        fn reference(s: &str, out: &mut String) -> Option<HashAlgo> {
            out.clear();
            if s.contains(':') {
                out.extend(s.split(':'));
            } else {
                out.push_str(s);
            }
            let algo = HashAlgo::from_hex_len(out.len())?;
            if !out.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.make_ascii_lowercase();
            Some(algo)
        }
        let mut x = 7u64;
        let mut inputs: Vec<String> = Vec::new();
        for i in 0..60_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = [32, 40, 64, 47, 59, 95][i % 6] + (x >> 62) as usize % 2;
            // Mostly hex digits; sometimes any byte of 0..0x80 (each neighbour of a range
            // end), a colon or a multi-byte character.
            let t: String = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    match (x >> 58) % 16 {
                        0 => char::from((x >> 30) as u8 % 0x80),
                        1 => ':',
                        2 => 'é',
                        _ => char::from(b"0123456789abcdefABCDEF"[(x >> 40) as usize % 22]),
                    }
                })
                .collect();
            inputs.push(t);
        }
        for s in &inputs {
            let (mut a, mut b) = (String::new(), String::new());
            assert_eq!(
                normalise_hash_into(s, &mut a),
                reference(s, &mut b),
                "{s:?}"
            );
            assert_eq!(a, b, "{s:?}");
        }
        for c in 0..=255u8 {
            let s = [c; 16];
            assert_eq!(all_hex(&s), s.iter().all(u8::is_ascii_hexdigit), "{c}");
        }
    }

    #[test]
    fn is_domain_as_before() {
        // The split-based definition the one-pass version replaces.
        fn reference(s: &str) -> bool {
            if s.is_empty() || s.len() > 253 || !s.contains('.') {
                return false;
            }
            let mut last = "";
            for label in s.split('.') {
                if label.is_empty()
                    || label.len() > 63
                    || !label
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                {
                    return false;
                }
                last = label;
            }
            !last.bytes().all(|c| c.is_ascii_digit())
        }
        let long = "a".repeat(63);
        let mut inputs = vec![
            format!("{long}.com"),
            format!("{long}a.com"),
            format!("{long}.{long}.{long}.{long}"),
            format!("{long}.{long}.{long}.{}", "a".repeat(61)),
            "é.com".to_string(),
            "1.2".to_string(),
            "1.2a".to_string(),
        ];
        let mut x = 3u64;
        for _ in 0..30_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = (x >> 59) as usize;
            inputs.push(
                (0..n)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        b"ab1.-_.9Z.:"[(x >> 40) as usize % 11] as char
                    })
                    .collect(),
            );
        }
        for s in &inputs {
            assert_eq!(is_domain(s), reference(s), "{s:?}");
        }
    }

    #[test]
    fn forms() {
        let c = |s: &str| classify(&refang(s));
        assert_eq!(c("1.2.3.4"), Ok(Observable::Ip("1.2.3.4".parse().unwrap())));
        assert_eq!(
            c("1[.]2[.]3[.]4"),
            Ok(Observable::Ip("1.2.3.4".parse().unwrap()))
        );
        assert_eq!(
            c("10.1.2.3/8"),
            Ok(Observable::Cidr("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(
            c("1.2.3.4/32"),
            Ok(Observable::Ip("1.2.3.4".parse().unwrap()))
        );
        assert_eq!(c("1.2.3.4/33"), Err(Unclassified::BadCidr));
        assert_eq!(
            c("1.2.3.4:8080"),
            Ok(Observable::IpPort("1.2.3.4".parse().unwrap(), 8080))
        );
        assert_eq!(c("1.2.3.4:0"), Err(Unclassified::BadPort));
        assert_eq!(
            c("Evil.Example.COM."),
            Ok(Observable::Domain("evil.example.com".into()))
        );
        assert_eq!(
            c("evil(.)example[.]com"),
            Ok(Observable::Domain("evil.example.com".into()))
        );
        assert_eq!(
            c("hxxps://Evil.COM/a/B?x=1"),
            Ok(Observable::Url("https://evil.com/a/B?x=1".into()))
        );
        assert_eq!(
            c("evil.com/include/a.php"),
            Ok(Observable::Url("http://evil.com/include/a.php".into()))
        );
        assert_eq!(
            c("evil.com:8080/x"),
            Ok(Observable::Url("http://evil.com:8080/x".into()))
        );
        assert_eq!(
            c("D41D8CD98F00B204E9800998ECF8427E"),
            Ok(Observable::Hash(
                HashAlgo::Md5,
                "d41d8cd98f00b204e9800998ecf8427e".into()
            ))
        );
        assert_eq!(
            c("d41d8cd98f00b204e9800998ecf8427"),
            Err(Unclassified::HexOfUnknownLength)
        );
        assert_eq!(
            c("bad[@]Evil.ORG"),
            Ok(Observable::Email("bad@evil.org".into()))
        );
        assert_eq!(
            c("2001:DB8::1"),
            Ok(Observable::Ip("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(c("/x/y.php"), Ok(Observable::UrlPath("/x/y.php".into())));
        assert_eq!(c("notes"), Err(Unclassified::Unknown));
        assert_eq!(c("1234"), Err(Unclassified::Unknown));
        assert_eq!(c("a b"), Err(Unclassified::Spaces));
    }
}
