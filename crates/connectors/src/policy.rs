//! Outbound safety: targets that resolve to private, loopback, link-local,
//! metadata or other non-public addresses are refused at connect time,
//! unless the server's allow-list (`egress.allow`) covers them.
use std::net::IpAddr;
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

    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        if is_public(ip) || self.allow.iter().any(|net| net.contains(&ip)) {
            Ok(())
        } else {
            Err(Blocked(ip))
        }
    }
}

/// Globally routable unicast, not a metadata or documentation address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
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
        ] {
            assert!(policy.check(ip.parse().unwrap()).is_err(), "{ip} must be blocked");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(policy.check(ip.parse().unwrap()).is_ok(), "{ip} is public");
        }
        let allowed = EgressPolicy::new(EgressPolicy::parse_list("127.0.0.1/32, ::1/128").unwrap());
        assert!(allowed.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowed.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(allowed.check("::1".parse().unwrap()).is_ok());
        assert!(EgressPolicy::parse_list("127.0.0.1/33").is_err());
    }
}
