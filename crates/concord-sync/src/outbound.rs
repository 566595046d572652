//! Where this node connects on a partner's word (issue 19, the blind SSRF left open): every
//! request to a URL that came from outside the node — a peer's URL (`peer add`, the
//! joining node's URL kept at `join`, an invitation's URL) and a partner's webhook — goes
//! only to the addresses an [`Outbound`] rule allows: public addresses by default, and the
//! networks and host names the operator names (`[outbound] allow` of concord.toml).
//!
//! # Shape
//!
//! - Refused by default ([`not_public`]): IPv4 `0.0.0.0/8` (unspecified, "this network"),
//!   loopback `127.0.0.0/8`, private (RFC 1918) `10/8`, `172.16/12`, `192.168/16`, CGNAT
//!   `100.64.0.0/10`, link-local `169.254.0.0/16` (cloud metadata services), IETF, TEST-NET
//!   and benchmarking ranges, multicast `224/4`, reserved and broadcast `240/4`; IPv6 `::`,
//!   `::1`, unique local `fc00::/7` (RFC 4193), link-local `fe80::/10`, site-local
//!   `fec0::/10`, multicast `ff00::/8`, documentation, discard, Teredo, anything outside
//!   global unicast `2000::/3`; and the IPv4-mapped (`::ffff:a.b.c.d`), NAT64
//!   (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) forms of refused IPv4 addresses.
//!   The host names `localhost` and `*.localhost` are loopback by name (RFC 6761), and a
//!   host ending in a number is an IPv4 address in any of the forms a resolver takes
//!   (`2130706433`, `0x7f.1`: WHATWG URL §3.5), checked as such.
//! - Checked twice. When a URL is accepted ([`Outbound::check_url`] for the operator's
//!   input, resolving a name; [`Outbound::check_url_text`] for a partner's, which is answered
//!   back and so never resolved: an answer must not tell what a name resolves to inside the
//!   node's network). And at each connection, on the addresses the name resolves to then
//!   (DNS can change): [`Outbound::agent`] builds the ureq agent with a resolver that drops
//!   refused addresses and fails with [`Refused`] when none is left, so no byte is sent.
//! - Such an agent follows no redirect (a 3xx is an answer like any other) and uses no
//!   proxy from the environment (`HTTP_PROXY`…): through a proxy, the node would not see
//!   where the connection goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::Arc;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`; an address
/// alone is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `A.B.C.D[/N]` or `IPV6[/N]`. Errors (a message): not an address, a prefix
    /// longer than the address, bits set after the prefix (`10.0.0.1/8` is taken for a
    /// typo of `10.0.0.0/8` or of `10.0.0.1/32`, not guessed).
    pub fn parse(text: &str) -> Result<Net, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?}: not an IP address or network (CIDR)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        let net = Net { addr, prefix };
        if bits(addr) & !net.mask() != 0 {
            return Err(format!(
                "{text:?}: bits are set after the prefix (write {}/{prefix}, or the address \
                 alone)",
                net.first()
            ));
        }
        Ok(net)
    }

    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let ones = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        // Aligned to the address's width.
        if width == 32 {
            (ones >> 96) & u128::from(u32::MAX)
        } else {
            ones
        }
    }

    fn first(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(
                u32::try_from(bits(self.addr) & self.mask()).unwrap_or(0),
            )),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits(self.addr) & self.mask())),
        }
    }

    /// Whether `ip` is in this network (an IPv4 network holds IPv4 addresses only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && bits(ip) & self.mask() == bits(self.addr)
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// IPv4 ranges that are not public addresses, most specific first: (network, what it is).
const V4_SPECIAL: &[(&str, &str)] = &[
    (
        "0.0.0.0/8",
        "unspecified, \"this network\" (0.0.0.0/8, RFC 791)",
    ),
    ("10.0.0.0/8", "private (10.0.0.0/8, RFC 1918)"),
    (
        "100.64.0.0/10",
        "shared address space, CGNAT (100.64.0.0/10, RFC 6598)",
    ),
    ("127.0.0.0/8", "loopback (127.0.0.0/8, RFC 1122)"),
    (
        "169.254.0.0/16",
        "link-local, where cloud metadata services answer (169.254.0.0/16, RFC 3927)",
    ),
    ("172.16.0.0/12", "private (172.16.0.0/12, RFC 1918)"),
    (
        "192.0.0.0/24",
        "IETF protocol assignments (192.0.0.0/24, RFC 6890)",
    ),
    ("192.0.2.0/24", "documentation (192.0.2.0/24, RFC 5737)"),
    (
        "192.88.99.0/24",
        "6to4 relay anycast (192.88.99.0/24, RFC 7526)",
    ),
    ("192.168.0.0/16", "private (192.168.0.0/16, RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15, RFC 2544)"),
    (
        "198.51.100.0/24",
        "documentation (198.51.100.0/24, RFC 5737)",
    ),
    ("203.0.113.0/24", "documentation (203.0.113.0/24, RFC 5737)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4, RFC 5771)"),
    (
        "240.0.0.0/4",
        "reserved or broadcast (240.0.0.0/4, RFC 1112; 255.255.255.255, RFC 919)",
    ),
];

/// IPv6 ranges that are not public addresses (those embedding an IPv4 address are handled
/// before), most specific first.
const V6_SPECIAL: &[(&str, &str)] = &[
    ("::/128", "unspecified (::/128, RFC 4291)"),
    ("::1/128", "loopback (::1/128, RFC 4291)"),
    ("::/96", "IPv4-compatible, deprecated (::/96, RFC 4291)"),
    (
        "64:ff9b:1::/48",
        "local-use NAT64 (64:ff9b:1::/48, RFC 8215)",
    ),
    ("100::/64", "discard-only (100::/64, RFC 6666)"),
    ("2001::/32", "Teredo (2001::/32, RFC 4380)"),
    ("2001:db8::/32", "documentation (2001:db8::/32, RFC 3849)"),
    (
        "2001::/23",
        "IETF protocol assignments (2001::/23, RFC 2928)",
    ),
    ("3fff::/20", "documentation (3fff::/20, RFC 9637)"),
    (
        "5f00::/16",
        "SRv6 segment identifiers (5f00::/16, RFC 9602)",
    ),
    ("fc00::/7", "unique local, private (fc00::/7, RFC 4193)"),
    ("fe80::/10", "link-local (fe80::/10, RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (fec0::/10, RFC 3879)"),
    ("ff00::/8", "multicast (ff00::/8, RFC 4291)"),
];

fn special(table: &[(&'static str, &'static str)], ip: IpAddr) -> Option<&'static str> {
    table.iter().find_map(|(net, what)| {
        Net::parse(net)
            .ok()
            .filter(|n| n.contains(ip))
            .map(|_| *what)
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:0:0/96`, RFC 4291),
/// NAT64 (`64:ff9b::/96`, RFC 6052), 6to4 (`2002::/16`, RFC 3056); with the form's name.
fn embedded_v4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let b = u128::from(ip);
    let low = Ipv4Addr::from(u32::try_from(b & 0xffff_ffff).unwrap_or(0));
    if b >> 32 == 0xffff {
        Some((low, "IPv4-mapped (::ffff:0:0/96)"))
    } else if b >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        Some((low, "NAT64 (64:ff9b::/96)"))
    } else if b >> 112 == 0x2002 {
        let v4 = u32::try_from((b >> 80) & 0xffff_ffff).unwrap_or(0);
        Some((Ipv4Addr::from(v4), "6to4 (2002::/16)"))
    } else {
        None
    }
}

/// Why `ip` is not a public address (the range, named), or `None` for a public one: see
/// the module for the ranges. An IPv6 address embedding an IPv4 one is judged by it.
pub fn not_public(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(_) => special(V4_SPECIAL, ip).map(str::to_owned),
        IpAddr::V6(v6) => {
            if let Some((v4, form)) = embedded_v4(v6) {
                return special(V4_SPECIAL, IpAddr::V4(v4))
                    .map(|what| format!("the {form} form of {v4}, {what}"));
            }
            if let Some(what) = special(V6_SPECIAL, ip) {
                return Some(what.to_owned());
            }
            let global = Net::parse("2000::/3").is_ok_and(|n| n.contains(ip));
            (!global).then(|| "not global unicast (outside 2000::/3, RFC 4291)".to_owned())
        }
    }
}

/// One entry of the allow list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    Net(Net),
    /// A host name, lower case, without a final dot: every address it resolves to.
    Host(String),
}

/// The rule of where outbound requests to URLs from outside may go: public addresses,
/// plus the networks and host names allowed ([`Outbound::allowing`]). The default allows
/// public addresses only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbound {
    allow: Vec<Allowed>,
}

/// A URL refused by the rule: which URL, which host, which address (`None` when the host
/// itself is refused: `localhost`, a malformed number) and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "URL {url:?}: {subject} {rule}: requests to a partner's URL reach public addresses only \
     (allow a network or host in [outbound] allow of concord.toml to reach it)"
)]
pub struct Refused {
    /// The URL.
    pub url: String,
    /// Its host, as written (brackets of an IPv6 address removed).
    pub host: String,
    /// The address refused.
    pub address: Option<IpAddr>,
    /// What the address (or the host) is: the range, named, and its RFC.
    pub rule: String,
    /// How the address was found, for the message: "the address A is", "the host H
    /// resolves to A,", "the host H is".
    subject: String,
}

impl Refused {
    /// `resolved`: the address is one `host` resolved to (else it is `host`, written as an
    /// address in some form).
    fn new(
        url: &str,
        host: &str,
        address: Option<IpAddr>,
        rule: String,
        resolved: bool,
    ) -> Refused {
        let subject = match address {
            Some(a) if host.parse::<IpAddr>().ok() == Some(a) => format!("the address {a} is"),
            Some(a) if resolved => format!("the host {host} resolves to {a},"),
            Some(a) => format!("the host {host}, the IPv4 address {a}, is"),
            None if host.is_empty() => "it is".to_owned(),
            None => format!("the host {host} is"),
        };
        Refused {
            url: url.to_owned(),
            host: host.to_owned(),
            address,
            rule,
            subject,
        }
    }
}

/// Whether `name` may be an allowed host name: letters, digits, `-` and `_` in labels of
/// 1 to 63 bytes, at most 253 bytes.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A host as compared: lower case, without a final dot.
fn normal(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A host that ends in a number is an IPv4 address (WHATWG URL §3.5 "ends in a number"):
/// what resolvers make of `2130706433`, `0x7f.1` or `127.1` (inet_aton's forms: each part
/// decimal, octal with a leading 0, or hex with 0x; the last part fills the remaining
/// bytes). `None`: not such a host; `Some(None)`: ends in a number but is no address.
fn numeric_v4(host: &str) -> Option<Option<Ipv4Addr>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if last.is_empty() || !(hex || last.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let number = |p: &str| -> Option<u64> {
        if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                Some(0)
            } else {
                u64::from_str_radix(h, 16).ok()
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return Some(None);
    }
    let mut value: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let Some(n) = number(p) else {
            return Some(None);
        };
        if i + 1 < parts.len() {
            if n > 255 {
                return Some(None);
            }
            value |= n << (8 * (3 - i));
        } else {
            let room = 8 * (4 - i as u32);
            if n >= 1u64 << room {
                return Some(None);
            }
            value |= n;
        }
    }
    Some(u32::try_from(value).ok().map(Ipv4Addr::from))
}

impl Outbound {
    /// Public addresses only: the default.
    pub fn public_only() -> Outbound {
        Outbound::default()
    }

    /// Public addresses and `entries`: networks (`10.20.0.0/16`, `fd00:1::/48`), addresses
    /// (`192.0.2.7`, `::1`) and host names (`taxii.partner.lan`: whatever it resolves to).
    /// Errors: the entry (index and text) and why it is none of these.
    pub fn allowing<S: AsRef<str>>(entries: &[S]) -> Result<Outbound, String> {
        let mut allow = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref().trim();
            let looks_like_address = e.contains(':') || e.contains('/') || numeric_v4(e).is_some();
            let entry = if looks_like_address {
                Allowed::Net(Net::parse(e).map_err(|m| format!("allow[{i}] {m}"))?)
            } else if is_host_name(&normal(e)) && !e.is_empty() {
                Allowed::Host(normal(e))
            } else {
                return Err(format!(
                    "allow[{i}] {e:?}: neither a network (CIDR), an address nor a host name"
                ));
            };
            allow.push(entry);
        }
        Ok(Outbound { allow })
    }

    /// The entries allowed, as written back (`10.0.0.0/8`, `peer.lan`).
    pub fn allowed(&self) -> Vec<String> {
        self.allow
            .iter()
            .map(|a| match a {
                Allowed::Net(n) => n.to_string(),
                Allowed::Host(h) => h.clone(),
            })
            .collect()
    }

    /// Whether the host name `host` is allowed by name.
    fn host_allowed(&self, host: &str) -> bool {
        let host = normal(host);
        self.allow
            .iter()
            .any(|a| matches!(a, Allowed::Host(h) if *h == host))
    }

    /// Why a connection to `ip` is refused, or `None` when it is allowed: an allowed
    /// network holds it (an IPv4-mapped address counts as its IPv4 address), or it is
    /// public.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = self.allow.iter().any(|a| match a {
            Allowed::Net(n) => n.contains(ip) || mapped.is_some_and(|m| n.contains(m)),
            Allowed::Host(_) => false,
        });
        if allowed { None } else { not_public(ip) }
    }

    /// The host and port of `url` (brackets of an IPv6 address removed). Errors: not an
    /// absolute http(s) URL with a host.
    fn host_port(url: &str) -> Result<(String, u16), Refused> {
        let bad = |rule: &str| Refused::new(url, "", None, rule.to_owned(), false);
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|_| bad("not a URL (http(s)://host[:port])"))?;
        let port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(bad("not an http(s) URL")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("a URL without a host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok((host, uri.port_u16().unwrap_or(port)))
    }

    /// The check of a host without asking DNS: an address (also one in a numeric form)
    /// against the rule, `localhost` and `*.localhost` as loopback; a host name allowed by
    /// name passes. `Ok(true)`: a host name still to resolve.
    fn check_host_text(&self, url: &str, host: &str) -> Result<bool, Refused> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return match self.refusal(ip) {
                Some(rule) => Err(Refused::new(url, host, Some(ip), rule, false)),
                None => Ok(false),
            };
        }
        if self.host_allowed(host) {
            return Ok(false);
        }
        match numeric_v4(host) {
            Some(Some(ip)) => {
                return match self.refusal(IpAddr::V4(ip)) {
                    Some(rule) => Err(Refused::new(url, host, Some(IpAddr::V4(ip)), rule, false)),
                    None => Ok(false),
                };
            }
            Some(None) => {
                return Err(Refused::new(
                    url,
                    host,
                    None,
                    "not a valid IPv4 address (a host that ends in a number is one, WHATWG \
                     URL §3.5)"
                        .into(),
                    false,
                ));
            }
            None => {}
        }
        let name = normal(host);
        // Loopback by name: refused without asking DNS unless a loopback address is
        // allowed (then the addresses it resolves to are checked at the connection).
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        if (name == "localhost" || name.ends_with(".localhost"))
            && self.refusal(v4).is_some()
            && self.refusal(v6).is_some()
        {
            return Err(Refused::new(
                url,
                host,
                None,
                "loopback by name (localhost, RFC 6761)".into(),
                false,
            ));
        }
        Ok(true)
    }

    /// Checks a URL a partner gave without resolving it (a join request's `url`, whose
    /// refusal is answered to the partner: what a name resolves to inside this node's
    /// network must not show in an answer): its address when it is one, or a loopback name.
    /// A host name is checked at each connection ([`Outbound::agent`]).
    pub fn check_url_text(&self, url: &str) -> Result<(), Refused> {
        let (host, _) = Outbound::host_port(url)?;
        self.check_host_text(url, &host).map(|_| ())
    }

    /// Checks a URL the operator gives (`peer add`, the invitation `join` reads): as
    /// [`Outbound::check_url_text`], then a host name is resolved and refused when every
    /// address it resolves to is (the connection would find none left). A name that does
    /// not resolve now passes: it is checked at each connection.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let (host, port) = Outbound::host_port(url)?;
        if !self.check_host_text(url, &host)? {
            return Ok(());
        }
        let Ok(addrs) = (host.as_str(), port).to_socket_addrs() else {
            return Ok(());
        };
        let mut first = None;
        for a in addrs {
            match self.refusal(a.ip()) {
                None => return Ok(()),
                Some(rule) => {
                    first.get_or_insert((a.ip(), rule));
                }
            }
        }
        match first {
            Some((ip, rule)) => Err(Refused::new(url, &host, Some(ip), rule, true)),
            None => Ok(()),
        }
    }

    /// The resolver of [`Outbound::agent`].
    pub(crate) fn resolver(self: &Arc<Self>) -> Guard {
        Guard { rule: self.clone() }
    }

    /// `config` for an agent under this rule: no redirect followed, no proxy from the
    /// environment.
    pub(crate) fn config(
        builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    ) -> ureq::config::Config {
        builder.max_redirects(0).proxy(None).build()
    }

    /// An agent whose every connection goes only to addresses this rule allows, resolved
    /// at connection time ([`Guard`]); with `config`'s other settings (timeouts, statuses,
    /// TLS), no redirect followed, no proxy. A refused connection fails with
    /// `ureq::Error::Other` holding a [`Refused`] ([`refused_in`]).
    pub fn agent(
        self: &Arc<Self>,
        builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    ) -> ureq::Agent {
        ureq::Agent::with_parts(
            Outbound::config(builder),
            ureq::unversioned::transport::DefaultConnector::new(),
            self.resolver(),
        )
    }
}

/// The [`Refused`] in a ureq error, when the rule refused the connection.
pub fn refused_in(e: &ureq::Error) -> Option<&Refused> {
    match e {
        ureq::Error::Other(inner) => inner.downcast_ref::<Refused>(),
        _ => None,
    }
}

/// A ureq resolver that resolves as ureq does, then keeps only the addresses an
/// [`Outbound`] rule allows; none left: `ureq::Error::Other(Refused)`, before any
/// connection is tried. Every connection resolves (also the one to a redirect's target,
/// were redirects followed), so a name that resolved to a public address when it was
/// accepted and to an internal one now is refused now.
#[derive(Debug)]
pub(crate) struct Guard {
    rule: Arc<Outbound>,
}

impl Resolver for Guard {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let url = uri.to_string();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let refuse = |r: Refused| ureq::Error::Other(Box::new(r));
        let by_name = self.rule.check_host_text(&url, &host).map_err(refuse)?;
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if !by_name && self.rule.host_allowed(&host) {
            return Ok(addrs);
        }
        let mut kept = self.empty();
        let mut first = None;
        for a in addrs.iter() {
            match self.rule.refusal(a.ip()) {
                None => kept.push(*a),
                Some(rule) => {
                    first.get_or_insert((a.ip(), rule));
                }
            }
        }
        match first {
            Some((ip, rule)) if kept.is_empty() => {
                tracing::warn!(%url, address = %ip, %rule, "outbound connection refused");
                Err(refuse(Refused::new(&url, &host, Some(ip), rule, true)))
            }
            _ => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(rule: &Outbound, ip: &str) -> bool {
        rule.refusal(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn the_default_refuses_every_non_public_range_and_its_ipv6_forms() {
        let rule = Outbound::public_only();
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
        ] {
            assert!(refused(&rule, ip), "{ip} should be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.3.1",
            "223.255.255.255",
            "2a00:1450:4001::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(&rule, ip), "{ip} should be allowed");
        }
        let why = rule.refusal("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            why,
            "the IPv4-mapped (::ffff:0:0/96) form of 127.0.0.1, loopback (127.0.0.0/8, RFC 1122)"
        );
    }

    #[test]
    fn allowed_networks_and_hosts_are_parsed_and_applied() {
        let rule =
            Outbound::allowing(&["127.0.0.1", "10.20.0.0/16", "fd00:1::/48", "Peer.LAN."]).unwrap();
        assert_eq!(
            rule.allowed(),
            ["127.0.0.1/32", "10.20.0.0/16", "fd00:1::/48", "peer.lan"]
        );
        assert!(!refused(&rule, "127.0.0.1"));
        assert!(!refused(&rule, "::ffff:127.0.0.1"));
        assert!(refused(&rule, "127.0.0.2"));
        assert!(!refused(&rule, "10.20.255.1"));
        assert!(refused(&rule, "10.21.0.1"));
        assert!(!refused(&rule, "fd00:1:0:1::5"));
        assert!(refused(&rule, "fd00:2::5"));
        assert!(rule.host_allowed("peer.lan"));
        assert!(rule.host_allowed("PEER.lan."));
        for (bad, says) in [
            (
                "10.0.0.1/8",
                "bits are set after the prefix (write 10.0.0.0/8",
            ),
            ("10.0.0.0/33", "prefix length must be 0 to 32"),
            ("::1/129", "prefix length must be 0 to 128"),
            ("300.1.1.1", "not an IP address"),
            ("*.lan", "neither a network"),
            ("", "neither a network"),
        ] {
            let e = Outbound::allowing(&["8.8.8.8", bad]).unwrap_err();
            assert!(e.starts_with("allow[1] ") && e.contains(says), "{bad}: {e}");
        }
        // Everything, when an operator wants it so.
        let all = Outbound::allowing(&["0.0.0.0/0", "::/0"]).unwrap();
        assert!(!refused(&all, "127.0.0.1") && !refused(&all, "::1"));
    }

    #[test]
    fn urls_are_checked_by_address_numeric_form_and_loopback_name() {
        let rule = Outbound::public_only();
        let e = rule.check_url_text("http://127.0.0.1:8080/").unwrap_err();
        assert_eq!(e.address, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            e.to_string(),
            "URL \"http://127.0.0.1:8080/\": the address 127.0.0.1 is loopback (127.0.0.0/8, \
             RFC 1122): requests to a partner's URL reach public addresses only (allow a \
             network or host in [outbound] allow of concord.toml to reach it)"
        );
        for (url, addr) in [
            ("http://2130706433/", Some("127.0.0.1")),
            ("http://0x7f.1:9/", Some("127.0.0.1")),
            ("http://127.1/", Some("127.0.0.1")),
            ("http://0251.0376.0251.0376/", Some("169.254.169.254")),
            ("https://[::ffff:7f00:1]:443/", Some("::ffff:127.0.0.1")),
            ("http://[fd00::1]/", Some("fd00::1")),
            ("http://LocalHost:80/", None),
            ("http://a.localhost./", None),
            ("http://1.2.3.4.5/", None),
            ("http://999/x", Some("0.0.3.231")),
        ] {
            let e = rule.check_url_text(url).unwrap_err();
            assert_eq!(e.address, addr.map(|a| a.parse().unwrap()), "{url}: {e}");
        }
        rule.check_url_text("https://taxii.example.org:8443/")
            .unwrap();
        rule.check_url_text("http://8.8.8.8/").unwrap();
        assert!(rule.check_url_text("ftp://8.8.8.8/").is_err());
        // Resolved (the operator's input): localhost is refused by name already; a name
        // allowed by name passes unresolved.
        assert!(rule.check_url("http://localhost:1/").is_err());
        let named = Outbound::allowing(&["localhost"]).unwrap();
        named.check_url("http://localhost:1/").unwrap();
        named.check_url_text("http://localhost:1/").unwrap();
    }

    /// A listener on `ip` that answers each connection with `answer` (an HTTP response) and
    /// counts the connections it accepted.
    fn listener(ip: &str, answer: String) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { break };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        (port, seen)
    }

    #[test]
    fn the_resolver_keeps_only_the_allowed_addresses_a_name_resolves_to() {
        // `localhost` resolves to 127.0.0.1 (and ::1 on some hosts); only ::1 allowed: the
        // name passes the check by name, and what it resolves to is filtered.
        let rule = Arc::new(Outbound::allowing(&["::1"]).unwrap());
        let uri: ureq::http::Uri = "http://localhost:9/".parse().unwrap();
        let config = ureq::config::Config::default();
        let plain = DefaultResolver::default()
            .resolve(&uri, &config, NextTimeout::default())
            .unwrap();
        assert!(
            plain
                .iter()
                .any(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        match rule
            .resolver()
            .resolve(&uri, &config, NextTimeout::default())
        {
            Ok(kept) => assert!(
                kept.iter()
                    .all(|a| a.ip() == IpAddr::V6(Ipv6Addr::LOCALHOST))
            ),
            Err(e) => {
                let r = refused_in(&e).expect("a refusal");
                assert_eq!(r.address, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
                assert!(
                    e.to_string()
                        .contains("the host localhost resolves to 127.0.0.1, loopback"),
                    "{e}"
                );
            }
        }
    }

    /// Redirects: the rule's agent follows none; and were one followed, its target would be
    /// resolved through the same filter (each connection is), so it could not leave the
    /// rule either.
    #[test]
    fn a_redirect_to_a_refused_address_goes_nowhere() {
        let (inner, inner_seen) = listener(
            "127.0.0.2",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into(),
        );
        let to = format!("http://127.0.0.2:{inner}/secret");
        let (outer, outer_seen) = listener(
            "127.0.0.1",
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"),
        );
        let rule = Arc::new(Outbound::allowing(&["127.0.0.1"]).unwrap());
        let url = format!("http://127.0.0.1:{outer}/");
        let builder = || ureq::Agent::config_builder().http_status_as_error(false);
        let answer = rule.agent(builder()).get(&url).call().unwrap();
        assert_eq!(answer.status().as_u16(), 302);
        // An agent that follows redirects, with the rule's resolver.
        let following = ureq::Agent::with_parts(
            builder().max_redirects(5).proxy(None).build(),
            ureq::unversioned::transport::DefaultConnector::new(),
            rule.resolver(),
        );
        let e = following.get(&url).call().unwrap_err();
        let r = refused_in(&e).expect("refused");
        assert_eq!(r.address, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(outer_seen.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(inner_seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
