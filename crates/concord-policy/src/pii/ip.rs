//! IP addresses: IPv4 in dotted-decimal (RFC 791; no leading zeros, as `std` parses it) and
//! IPv6 in the text forms of RFC 4291 §2.2 (with `::` compression and embedded IPv4). An
//! address inside one of the configured infrastructure ranges (CIDR, RFC 4632) is not
//! reported.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use super::{Category, Finding};

/// An address range in CIDR notation (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6), such as
/// `10.0.0.0/8` or `2001:db8::/32`. A bare address is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CIDR range: {0:?} (expected e.g. 10.0.0.0/8 or 2001:db8::/32)")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in this range. An IPv4 address never lies in an IPv6 range or the
    /// reverse, except that an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

static V4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}").expect("ipv4 regex"));
/// Runs of hex digits, colons and dots with at least two colons: IPv6 candidates.
static V6: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?")
        .expect("ipv6 regex")
});

fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn v4_bounded(text: &str, start: usize, end: usize) -> bool {
    let mut before = text[..start].chars().rev();
    let left = match before.next() {
        None => true,
        Some(c) if word(c) => false,
        // `1.2.3.4.5` or `v.1.2.3.4`: part of a longer dotted token.
        Some('.') => !before.next().is_some_and(word),
        Some(_) => true,
    };
    let mut after = text[end..].chars();
    let right = match after.next() {
        None => true,
        Some(c) if word(c) => false,
        Some('.') => !after.next().is_some_and(|c| c.is_ascii_digit()),
        Some(_) => true,
    };
    left && right
}

/// Words after which a dotted quad is a version, not an address (`version 2.14.1.3`,
/// `版本号 4.19.0.1`, `الإصدار 1.0.0.1`).
const VERSION_WORDS: &[&str] = &[
    "version",
    "ver",
    "ver.",
    "v",
    "build",
    "release",
    "firmware",
    "fw",
    "update",
    "版本",
    "版本号",
    "الإصدار",
    "إصدار",
    "النسخة",
];

fn after_version_word(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', ':', '\u{00A0}', '：']);
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '.')
        .last()
        .map_or(before.len(), |(i, _)| i);
    let word = before[word_start..].to_lowercase();
    VERSION_WORDS
        .iter()
        .any(|w| word == *w || word.ends_with(w) && !w.is_ascii())
}

fn v6_bounded(text: &str, start: usize, end: usize) -> bool {
    let left = !text[..start]
        .chars()
        .next_back()
        .is_some_and(|c| word(c) || c == ':' || c == '.');
    let right = !text[end..]
        .chars()
        .next()
        .is_some_and(|c| word(c) || c == ':');
    left && right
}

pub(crate) fn find(text: &str, infrastructure: &[Cidr], out: &mut Vec<Finding>) {
    let mut push = |start: usize, end: usize, ip: IpAddr, rule: &'static str| {
        if infrastructure.iter().any(|c| c.contains(ip)) {
            return;
        }
        out.push(Finding {
            category: Category::IpAddress,
            start,
            end,
            value: text[start..end].to_string(),
            normalized: ip.to_string(),
            rule,
        });
    };
    // IPv6 first: an embedded IPv4 (`::ffff:192.0.2.1`) belongs to its IPv6 address.
    let mut v6_spans = Vec::new();
    // Every IPv6 candidate has two colons, every IPv4 candidate three dots: most strings
    // have neither, and skip the searches.
    let colons = text.bytes().filter(|&b| b == b':').nth(1).is_some();
    let dots = text.bytes().filter(|&b| b == b'.').nth(2).is_some();
    for m in V6.find_iter(if colons { text } else { "" }) {
        let (start, mut end) = (m.start(), m.end());
        // A trailing `:` is punctuation ("address 2001:db8::1: blocked") unless it is `::`.
        if text[start..end].ends_with(':') && !text[start..end].ends_with("::") {
            end -= 1;
        }
        let cand = &text[start..end];
        // `a::b` (C++ scope) parses; demand a decimal digit or three non-empty groups.
        let plausible = cand.bytes().any(|b| b.is_ascii_digit())
            || cand.split(':').filter(|g| !g.is_empty()).count() >= 3;
        if let Ok(ip) = cand.parse::<Ipv6Addr>()
            && end - start > 2
            && plausible
            && v6_bounded(text, start, end)
        {
            v6_spans.push(start..end);
            push(start, end, IpAddr::V6(ip), "ipv6");
        }
    }
    for m in V4.find_iter(if dots { text } else { "" }) {
        if let Ok(ip) = m.as_str().parse::<Ipv4Addr>()
            && v4_bounded(text, m.start(), m.end())
            && !after_version_word(text, m.start())
            && !v6_spans
                .iter()
                .any(|r| r.start <= m.start() && m.end() <= r.end)
        {
            push(m.start(), m.end(), IpAddr::V4(ip), "ipv4");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(t: &str, infra: &[&str]) -> Vec<String> {
        let infra: Vec<Cidr> = infra.iter().map(|c| c.parse().unwrap()).collect();
        let mut v = Vec::new();
        find(t, &infra, &mut v);
        v.sort_by_key(|f| f.start);
        v.into_iter().map(|f| f.value).collect()
    }

    #[test]
    fn v4_and_v6() {
        assert_eq!(
            ips(
                "from 203.0.113.7 and [2001:db8::1]:443, fe80::1ff:fe23:4567:890a",
                &[]
            ),
            ["203.0.113.7", "2001:db8::1", "fe80::1ff:fe23:4567:890a"]
        );
        assert_eq!(ips("来自198.51.100.23的连接", &[]), ["198.51.100.23"]);
        assert_eq!(
            ips("::ffff:192.0.2.128 mapped", &[]),
            ["::ffff:192.0.2.128"]
        );
    }

    #[test]
    fn not_addresses() {
        for t in [
            "version 1.2.3.4.5",
            "10.0.19041.1",
            "256.1.1.1",
            "01.02.03.04",
            "12:30:45",
            "00:1A:2B:3C:4D:5E",
            "T1059.001",
            "a::b is C++ syntax",
            "version 2.14.1.3",
            "版本号 4.19.0.1 发布",
            "Firmware: 1.0.0.1",
        ] {
            assert!(ips(t, &[]).is_empty(), "{t}: {:?}", ips(t, &[]));
        }
    }

    #[test]
    fn infrastructure_ranges_are_skipped() {
        let infra = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"];
        assert_eq!(
            ips(
                "10.1.2.3 11.1.2.3 2001:db8::5 2001:db9::5 192.0.2.1 192.0.2.2",
                &infra
            ),
            ["11.1.2.3", "2001:db9::5", "192.0.2.2"]
        );
        assert!(ips("::ffff:10.9.9.9", &infra).is_empty());
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!(
            !"::/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            "2001:db8::/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
    }
}
