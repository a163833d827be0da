//! Outbound safety: targets that resolve to private, loopback, link-local,
//! metadata or other non-public addresses are refused at connect time,
//! unless the server's allow-list (`egress.allow`) covers them.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Arc<Vec<IpNet>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} is not a public address; add it to egress.allow to permit it")]
pub struct Blocked(pub IpAddr);

impl EgressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow: Arc::new(allow) }
    }

    /// Parses `127.0.0.1/32,::1/128` (as in `SWITCHYARD_EGRESS_ALLOW`).
    pub fn parse_list(list: &str) -> Result<Vec<IpNet>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<IpNet>().map_err(|_| format!("`{s}` is not a CIDR such as 127.0.0.1/32")))
            .collect()
    }

    /// Refuses a non-public address unless `egress.allow` covers it. An IPv6
    /// spelling of an IPv4 address (mapped, compatible) is judged as that
    /// IPv4 address, and so is allowed by the same entry.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        let canonical = canonical(ip);
        if is_public(ip) || self.allow.iter().any(|net| net.contains(&ip) || net.contains(&canonical)) {
            Ok(())
        } else {
            Err(Blocked(ip))
        }
    }

    /// Checks a URL's or a server's host when it is a literal address (`[…]`
    /// for IPv6); names are checked where they are resolved.
    pub fn check_host(&self, host: &str) -> Result<(), Blocked> {
        match literal(host) {
            Some(ip) => self.check(ip),
            None => Ok(()),
        }
    }
}

/// Whether every address `host` resolves to is public (a literal is judged
/// as it is). For answers given while a request waits: what a non-public
/// target said must not be echoed, or the API would tell which internal
/// ports answer.
pub async fn resolves_public(host: &str) -> bool {
    if let Some(ip) = literal(host) {
        return is_public(ip);
    }
    match tokio::net::lookup_host((host, 0)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| is_public(a.ip()))
        }
        Err(_) => false,
    }
}

/// The address a host names literally: `10.0.0.1`, `[::1]` or `::1`.
pub fn literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()
}

/// An IPv6 address that carries an IPv4 one as the connection reaches it
/// (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`) as that
/// IPv4 address; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4() {
            // `::` and `::1` are themselves, not 0.0.0.0 and 0.0.0.1.
            Some(v4) if !v6.is_unspecified() && !v6.is_loopback() => IpAddr::V4(v4),
            _ => ip,
        },
        v4 => v4,
    }
}

/// The IPv4 address a translation prefix embeds: NAT64 (`64:ff9b::/96`,
/// RFC 6052) and 6to4 (`2002::/16`, RFC 3056) lead to it.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let (hi, lo) = match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => (hi, lo),
        [0x2002, hi, lo, ..] => (hi, lo),
        _ => return None,
    };
    Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
}

/// Globally routable unicast, not a metadata, documentation, translation or
/// other special-purpose address (IANA's special-purpose registries), in
/// every spelling: an IPv6 address that leads to an IPv4 one is judged as
/// that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 88 && c == 99)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // The rest of ::/8 (reserved), discard-only 100::/64, local-use NAT64 64:ff9b:1::/48.
                || s[0] < 0x100
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
                || (s[0] == 0x64 && s[1] == 0xff9b)
                // IETF protocol assignments 2001::/23 (Teredo, ORCHID, benchmarking…).
                || (s[0] == 0x2001 && s[1] < 0x200)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[0] == 0x3fff
                || s[0] == 0x5f00)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_blocked_unless_allowed() {
        let policy = EgressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
            "100.64.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "fec0::1",
            "100::1",
            "192.0.0.8",
            "255.255.255.255",
        ] {
            assert!(policy.check(ip.parse().unwrap()).is_err(), "{ip} must be blocked");
        }
        for ip in
            ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101", "2002:101:101::"]
        {
            assert!(policy.check(ip.parse().unwrap()).is_ok(), "{ip} is public");
        }
        let allowed = EgressPolicy::new(EgressPolicy::parse_list("127.0.0.1/32, ::1/128").unwrap());
        assert!(allowed.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowed.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(allowed.check("::1".parse().unwrap()).is_ok());
        assert!(allowed.check("::ffff:127.0.0.1".parse().unwrap()).is_ok(), "the IPv4 entry covers its mapped form");
        assert!(allowed.check("::ffff:127.0.0.2".parse().unwrap()).is_err());
        assert!(EgressPolicy::parse_list("127.0.0.1/33").is_err());
    }

    #[test]
    fn literal_hosts_are_checked_in_every_spelling() {
        let policy = EgressPolicy::default();
        for host in ["127.0.0.1", "[::1]", "::1", "[::ffff:7f00:1]", "[64:ff9b::a9fe:a9fe]"] {
            assert!(policy.check_host(host).is_err(), "{host} must be blocked");
        }
        for host in ["example.com", "1.1.1.1", "[2606:4700::1111]"] {
            assert!(policy.check_host(host).is_ok(), "{host} passes here (names are checked when resolved)");
        }
    }
}
