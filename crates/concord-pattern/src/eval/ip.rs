//! IPv4/IPv6 addresses and CIDR blocks for `ISSUBSET` and `ISSUPERSET` (STIX 2.1 §9.3):
//! a bare address is a /32 (IPv4) or /128 (IPv6) block; host bits beyond the prefix are
//! ignored, as the reference matcher does (`'192.168.0.1/24'` is `192.168.0.0/24`).

use std::net::IpAddr;

/// A network: address as a 128-bit number, prefix length, and whether it is IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: u128,
    prefix: u32,
    v6: bool,
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`.
pub(crate) fn parse_net(s: &str) -> Option<Net> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) || p.len() > 3 {
                return None;
            }
            (a, Some(p.parse::<u32>().ok()?))
        }
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let (addr, max, v6) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32, false),
        IpAddr::V6(a) => (u128::from(a), 128, true),
    };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return None;
    }
    Some(Net { addr, prefix, v6 })
}

impl Net {
    /// Whether this is an IPv6 network.
    pub(crate) fn is_v6(self) -> bool {
        self.v6
    }

    fn width(self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    /// Whether `self` lies entirely inside `outer`.
    pub(crate) fn within(self, outer: Net) -> bool {
        if self.v6 != outer.v6 || outer.prefix > self.prefix {
            return false;
        }
        let shift = outer.width() - outer.prefix;
        if shift >= 128 {
            return true;
        }
        (self.addr >> shift) == (outer.addr >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        let n = |s| parse_net(s).unwrap();
        assert!(n("11.22.33.44").within(n("11.22.41.123/20")));
        assert!(!n("11.22.33.44").within(n("11.22.123.41/20")));
        assert!(n("11.22.41.123/29").within(n("11.22.33.44/20")));
        assert!(!n("11.22.33.44/13").within(n("11.22.33.44/20")));
        assert!(n("2001:db8::1").within(n("2001:db8::/32")));
        assert!(!n("2001:db8::1").within(n("11.0.0.0/8")));
        assert!(n("1.2.3.4").within(n("0.0.0.0/0")));
        assert!(parse_net("1.2.3.4/33").is_none());
        assert!(parse_net("1234").is_none());
    }
}
