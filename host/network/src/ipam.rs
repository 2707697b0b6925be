//! IPv4 address management: subnet choice, address allocation, MACs.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Subnets tried in order for networks without an explicit subnet:
/// 172.17.0.0/16 ... 172.31.0.0/16, 192.168.0.0/20 ... 192.168.240.0/20,
/// 10.88.0.0/24 ... 10.88.255.0/24.
pub fn candidate_subnets() -> impl Iterator<Item = Ipv4Net> {
    let private_172 = (17u8..=31).map(|b| net(Ipv4Addr::new(172, b, 0, 0), 16));
    let private_192 = (0u8..16).map(|i| net(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    let private_10 = (0u8..=255).map(|c| net(Ipv4Addr::new(10, 88, c, 0), 24));
    private_172.chain(private_192).chain(private_10)
}

fn net(address: Ipv4Addr, prefix_len: u8) -> Ipv4Net {
    // Prefix lengths above are all <= 32.
    Ipv4Net::new(address, prefix_len).unwrap_or_default()
}

/// Whether two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first candidate that overlaps none of `taken`.
pub fn choose_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    candidate_subnets().find(|candidate| !taken.iter().any(|t| overlaps(candidate, t)))
}

/// The gateway of a subnet: its first host address.
pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(1))
}

/// Whether a subnet is large enough for a gateway and one container.
pub fn usable(subnet: &Ipv4Net) -> bool {
    subnet.prefix_len() <= 30
}

/// Picks a free host address of `subnet`, round-robin after `last` so that
/// a released address is not reused at once. Skips the network, broadcast
/// and gateway addresses and everything in `used`.
pub fn allocate(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.network()).checked_add(1)?;
    let end = u32::from(subnet.broadcast()); // exclusive
    if first >= end {
        return None;
    }
    let size = end - first;
    let start = match last {
        Some(last) if subnet.contains(&last) && u32::from(last) >= first => {
            (u32::from(last) - first + 1) % size
        }
        _ => 0,
    };
    (0..size)
        .map(|i| Ipv4Addr::from(first + (start + i) % size))
        .find(|ip| *ip != gateway && !used.contains(ip))
}

/// Docker's MAC scheme: `02:42` followed by the four bytes of the address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_candidate_is_docker_default() {
        assert_eq!(
            candidate_subnets().next(),
            Some("172.17.0.0/16".parse().unwrap())
        );
    }

    #[test]
    fn choose_skips_overlapping_subnets() {
        let taken: Vec<Ipv4Net> = vec![
            "172.16.0.0/12".parse().unwrap(),
            "192.168.1.0/24".parse().unwrap(),
        ];
        assert_eq!(
            choose_subnet(&taken),
            Some("192.168.16.0/20".parse().unwrap())
        );
    }

    #[test]
    fn allocation_skips_gateway_and_used_and_wraps() {
        let subnet: Ipv4Net = "10.1.2.0/29".parse().unwrap();
        let gw = gateway(&subnet);
        assert_eq!(gw, Ipv4Addr::new(10, 1, 2, 1));
        let mut used = HashSet::new();
        let a = allocate(&subnet, gw, &used, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 2, 2));
        used.insert(a);
        let b = allocate(&subnet, gw, &used, Some(a)).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 1, 2, 3));
        // After .6 (the last host) it wraps to the first free one.
        let c = allocate(&subnet, gw, &used, Some(Ipv4Addr::new(10, 1, 2, 6))).unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 1, 2, 3));
        for host in 2..=6 {
            used.insert(Ipv4Addr::new(10, 1, 2, host));
        }
        assert_eq!(allocate(&subnet, gw, &used, None), None);
    }

    #[test]
    fn mac_follows_docker_scheme() {
        let mac = mac_for(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(format_mac(&mac), "02:42:ac:11:00:02");
    }
}
