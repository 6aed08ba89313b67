//! IP network ranges: lists of networks an address may lie in, and the network an address is
//! counted by (IPv6 per prefix, IPv4 per address).

use std::net::{IpAddr, Ipv6Addr};

/// IP networks (`a.b.c.d`, `::1`, `10.0.0.0/8`, `fd00::/8`), e.g. those exempt from the throttle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    nets: Vec<(IpAddr, u8)>,
}

impl Exemptions {
    /// Parses the configured list; returns the entries it could not understand as well.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> (Self, Vec<&'a str>) {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            match parse_net(entry.trim()) {
                Some(net) => nets.push(net),
                None => bad.push(entry),
            }
        }
        (Self { nets }, bad)
    }

    /// Whether `ip` lies in one of the networks. Unparseable addresses are never exempt.
    pub fn contains(&self, ip: &str) -> bool {
        let Some(ip) = parse_ip(ip) else { return false };
        self.nets.iter().any(|&(net, bits)| in_net(ip, net, bits))
    }
}

/// Parses an address, seeing IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// The throttle's key for an address: an IPv4 address itself (IPv4-mapped IPv6 included), an
/// IPv6 address's network of `ipv6_prefix` bits, or unparseable text as it is.
pub fn network_key(ip: &str, ipv6_prefix: u8) -> String {
    match parse_ip(ip) {
        Some(IpAddr::V6(v6)) => {
            let bits = ipv6_prefix.min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            format!("{}/{bits}", Ipv6Addr::from(u128::from(v6) & mask))
        }
        Some(v4) => v4.to_string(),
        None => ip.to_owned(),
    }
}

/// How much of the Internet one exemption entry covers, for the configuration check: `None`
/// when it is not an address or network, else the address family's width (32 or 128) and the
/// prefix length (0 = every address of that family).
pub fn entry_prefix(entry: &str) -> Option<(u8, u8)> {
    let (ip, bits) = parse_net(entry.trim())?;
    Some((if ip.is_ipv4() { 32 } else { 128 }, bits))
}

fn parse_net(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let ip = parse_ip(addr)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    fn prefix_eq(a: u128, b: u128, width: u32, bits: u8) -> bool {
        let bits = u32::from(bits);
        if bits == 0 {
            return true;
        }
        let shift = width - bits;
        (a >> shift) == (b >> shift)
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(u128::from(u32::from(a)), u128::from(u32::from(b)), 32, bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(u128::from(a), u128::from(b), 128, bits),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemption_lists_parse_cidr() {
        let (list, bad) = Exemptions::parse(["192.168.0.0/16", " ::1 ", "nonsense", "10.0.0.0/33", "::/0"]);
        assert_eq!(bad, vec!["nonsense", "10.0.0.0/33"]);
        assert!(list.contains("192.168.200.1"));
        assert!(!list.contains("192.169.0.1"));
        assert!(list.contains("2001:db8::1"), "::/0 covers all of IPv6");
        assert!(!list.contains("not an ip"));
        let (all_v4, _) = Exemptions::parse(["0.0.0.0/0"]);
        assert!(all_v4.contains("203.0.113.9"));
        assert!(!all_v4.contains("2001:db8::1"));
    }

    #[test]
    fn addresses_are_counted_by_network() {
        assert_eq!(network_key("2001:db8:1:2::1", 64), "2001:db8:1:2::/64");
        assert_eq!(network_key("::ffff:192.0.2.1", 64), "192.0.2.1");
        assert_eq!(network_key("2001:db8::1", 0), "::/0");
        assert_eq!(network_key("2001:db8::1", 200), "2001:db8::1/128");
        assert_eq!(network_key("not an address", 64), "not an address");
    }
}
