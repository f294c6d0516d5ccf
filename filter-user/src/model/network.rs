//! The one rule for networks written as text (data files, policy files, `--allow-cidr`) and
//! for the IPv6 ranges that carry IPv4 addresses, which the program judges by that address.

/// Parses a CIDR whose host bits are zero: the one rule for networks in data files, policy
/// files and `--allow-cidr`/`--deny-cidr`, so a typo is refused rather than silently widened or
/// narrowed to another network. Surrounding space is ignored.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    let net: ipnet::IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR (expected e.g. 192.0.2.0/24)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(unmap(net))
}

/// An exception CIDR: a network as [`parse_network`] reads it, refused when it lies inside the
/// IPv6 ranges that embed IPv4 addresses (6to4, Teredo, NAT64, IPv4-compatible): the program
/// judges those sources by their IPv4 address, so such an exception would never match.
pub fn parse_exception(text: &str) -> Result<ipnet::IpNet, String> {
    let net = parse_network(text)?;
    if let ipnet::IpNet::V6(v6) = net {
        let (first, last) = (v6.network(), v6.broadcast());
        // With no NAT64 prefix declared: an undeclared local-use NAT64 source is never judged
        // by its address either (it is dropped), so an exception there could never match.
        let embeds = |a: std::net::Ipv6Addr| {
            filter_common::embedded_ipv4(&a.octets(), &filter_common::Nat64Prefixes::default())
                != filter_common::Embedding::None
                || a.to_ipv4_mapped().is_some()
        };
        if embeds(first) && embeds(last) {
            return Err(format!(
                "{text} lies in IPv6 space that carries IPv4 addresses (6to4, Teredo, NAT64 or \
                 IPv4-compatible), whose sources are judged by that IPv4 address: give the IPv4 \
                 network instead"
            ));
        }
    }
    Ok(net)
}

/// The IPv6 prefixes whose sources the program judges by the IPv4 address they carry.
pub const EMBEDDING_PREFIXES: &[(&str, &str)] = &[
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "NAT64 local use"),
    ("2001::/32", "Teredo"),
    ("2002::/16", "6to4"),
];

/// For an exception that covers part of the IPv4-carrying IPv6 space (the whole of it is
/// refused by [`parse_exception`]), the embedding it overlaps: sources there are judged by
/// their IPv4 address, so the exception does not apply to them.
#[must_use]
pub fn overlapped_embedding(net: &ipnet::IpNet) -> Option<(ipnet::IpNet, &'static str)> {
    let ipnet::IpNet::V6(v6) = net else {
        return None;
    };
    EMBEDDING_PREFIXES.iter().find_map(|&(prefix, name)| {
        let p: ipnet::Ipv6Net = prefix.parse().expect("a valid built-in prefix");
        (v6.contains(&p) || p.contains(v6)).then_some((ipnet::IpNet::V6(p), name))
    })
}

/// An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) as the IPv4 network it names: the
/// program judges mapped sources as IPv4, so kept as IPv6 it would never match anything.
#[must_use]
pub fn unmap(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_over_part_of_the_ipv4_carrying_space_are_found() {
        let net = |t: &str| t.parse::<ipnet::IpNet>().unwrap();
        assert_eq!(
            overlapped_embedding(&net("64:ff9b::/64")).map(|(_, n)| n),
            Some("NAT64")
        );
        assert_eq!(
            overlapped_embedding(&net("2001::/16")).map(|(_, n)| n),
            Some("Teredo")
        );
        assert_eq!(overlapped_embedding(&net("2a00::/16")), None);
        assert_eq!(overlapped_embedding(&net("10.0.0.0/8")), None);
    }
}
