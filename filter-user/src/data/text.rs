//! What the line-oriented formats share: reading lines with their numbers, comments, and parsing
//! addresses, CIDRs, ranges and country codes into messages that say what to fix.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use ipnet::IpNet;

use super::{mtime, AnyRange, DataError, Format, Range, SourceData, SourceInfo};
use crate::model::country::Country;

/// One data line handed to a format's parser.
pub struct Line<'a> {
    pub text: &'a str,
    /// True for the first non-blank, non-comment line, the only one that may be a header.
    pub first: bool,
}

/// What a parser makes of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// An address range with its country.
    Range(AnyRange),
    /// A well-formed address record without a country (a CSV row with an empty country, RIR
    /// available or reserved space): skipped by design, and counted in
    /// [`SourceInfo::skipped`](super::SourceInfo::skipped) so it is never dropped silently.
    NoCountry,
    /// Not an address record: a header, an RIR version, summary or ASN line.
    Other,
}

/// A parser's verdict on one line; an error says what is wrong with it (the caller adds
/// `path:line`).
pub type Parsed = Result<Record, String>;

/// Reads `path` line by line through `parse`, failing on the first bad line with `path:line`.
pub fn load(
    path: &Path,
    format: Format,
    parse: impl FnMut(&Line<'_>) -> Parsed,
) -> Result<SourceData, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    load_bytes(path, &bytes, mtime(path), format, parse)
}

/// [`load`] on contents already in memory; `path` names them in messages.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    build_epoch: u64,
    format: Format,
    mut parse: impl FnMut(&Line<'_>) -> Parsed,
) -> Result<SourceData, DataError> {
    let mut data = SourceData {
        info: SourceInfo {
            path: path.to_owned(),
            format,
            database_type: format.to_string(),
            build_epoch,
            skipped: 0,
        },
        ..SourceData::default()
    };
    let mut first = true;
    // A UTF-8 byte order mark (spreadsheet exports) would otherwise hide the first row.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let at_line = |message: String| DataError::Line {
            path: path.to_owned(),
            line: index + 1,
            message,
        };
        let text = std::str::from_utf8(raw)
            .map_err(|_| at_line("the line is not valid UTF-8 text".to_owned()))?;
        let text = strip_comment(text);
        if text.is_empty() {
            continue;
        }
        match parse(&Line { text, first }).map_err(at_line)? {
            Record::Range(range) => data.push(range),
            Record::NoCountry => data.info.skipped += 1,
            Record::Other => {}
        }
        first = false;
    }
    Ok(data)
}

/// The line without a trailing `#` comment and surrounding whitespace (and a CR).
pub fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(data, _)| data).trim()
}

/// An address of either family as an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    V4(u32),
    V6(u128),
}

/// Parses a dotted IPv4, an IPv6, or an integer address (at most 2^32-1 means IPv4, as in
/// ip-location-db's `-num.csv` files).
pub fn parse_addr(field: &str) -> Result<Addr, String> {
    let field = unquote(field);
    if let Ok(ip) = field.parse::<IpAddr>() {
        // An IPv4-mapped address is the IPv4 host it names (the program judges it as one).
        return Ok(match ip {
            IpAddr::V4(a) => Addr::V4(a.into()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Addr::V4(v4.into()),
                None => Addr::V6(a.into()),
            },
        });
    }
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = field.parse::<u128>() {
            return Ok(u32::try_from(n).map_or(Addr::V6(n), Addr::V4));
        }
    }
    Err(format!("{field:?} is not an IP address"))
}

/// An inclusive range from two addresses of one family, start first.
pub fn range(start: Addr, end: Addr, country: Country) -> Result<AnyRange, String> {
    match (start, end) {
        (Addr::V4(start), Addr::V4(end)) if start <= end => Ok(AnyRange::V4(Range {
            start,
            end,
            country,
        })),
        (Addr::V6(start), Addr::V6(end)) if start <= end => Ok(AnyRange::V6(Range {
            start,
            end,
            country,
        })),
        (Addr::V4(s), Addr::V4(e)) => Err(format!(
            "range start {} is after its end {}",
            Ipv4Addr::from(s),
            Ipv4Addr::from(e)
        )),
        (Addr::V6(s), Addr::V6(e)) => Err(format!(
            "range start {} is after its end {}",
            Ipv6Addr::from(s),
            Ipv6Addr::from(e)
        )),
        _ => Err("range mixes an IPv4 and an IPv6 address".to_owned()),
    }
}

/// Parses a CIDR into the range it covers; host bits must be zero, so a typo is not silently
/// widened or narrowed.
pub fn parse_cidr(field: &str, country: Country) -> Result<AnyRange, String> {
    let (start, end) = match crate::model::network::parse_network(unquote(field))? {
        IpNet::V4(n) => (Addr::V4(n.network().into()), Addr::V4(n.broadcast().into())),
        IpNet::V6(n) => (Addr::V6(n.network().into()), Addr::V6(n.broadcast().into())),
    };
    range(start, end, country)
}

/// A country code as data files write it: two letters, any case, maybe quoted or padded. The
/// code must be one a policy can name (ISO 3166-1 alpha-2, or AP, EU, XK, ZZ): data in a
/// country no policy can list would always get the "unlisted" verdict.
pub fn parse_country(field: &str) -> Result<Country, String> {
    country_code(unquote(field))
}

/// The rule every reader (text formats and mmdb) applies to a country code: surrounding space
/// and case are normalised; anything but a known two-letter code is an error.
pub fn country_code(value: &str) -> Result<Country, String> {
    let code = value.trim();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("{value:?} is not a two-letter country code"));
    }
    Country::parse(code).map_err(|e| e.to_string())
}

/// True when a country field holds nothing but quotes and space: a record without a country.
pub fn is_empty_country(field: &str) -> bool {
    unquote(field).trim().is_empty()
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> Country {
        Country::parse("DE").unwrap()
    }

    #[test]
    fn ipv4_mapped_addresses_and_networks_are_read_as_ipv4() {
        assert_eq!(
            parse_addr("::ffff:89.160.20.130"),
            Ok(Addr::V4(0x59a0_1482))
        );
        let AnyRange::V4(r) = parse_cidr("::ffff:89.160.20.0/120", de()).unwrap() else {
            panic!("not IPv4");
        };
        assert_eq!((r.start, r.end), (0x59a0_1400, 0x59a0_14ff));
        assert_eq!(
            crate::model::network::parse_network("::ffff:10.0.0.0/104").unwrap(),
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        // Outside the mapped range nothing changes.
        assert!(matches!(
            parse_cidr("2001:db8::/32", de()),
            Ok(AnyRange::V6(_))
        ));
    }

    #[test]
    fn addresses_in_every_notation() {
        assert_eq!(parse_addr("1.0.1.0"), Ok(Addr::V4(0x0100_0100)));
        assert_eq!(parse_addr("\"16777472\""), Ok(Addr::V4(16_777_472)));
        assert_eq!(parse_addr("2001:db8::"), Ok(Addr::V6(0x2001_0db8 << 96)));
        assert_eq!(parse_addr("4294967296"), Ok(Addr::V6(1 << 32)));
        assert!(parse_addr("1.2.3").is_err());
        assert!(parse_addr("").is_err());
    }

    #[test]
    fn ranges_must_be_ordered_and_of_one_family() {
        let (a, b) = (Addr::V4(10), Addr::V4(20));
        assert!(range(a, b, de()).is_ok());
        assert!(range(a, a, de()).is_ok());
        let err = range(b, a, de()).unwrap_err();
        assert!(err.contains("0.0.0.20 is after its end 0.0.0.10"), "{err}");
        let err = range(a, Addr::V6(30), de()).unwrap_err();
        assert!(err.contains("mixes"), "{err}");
    }

    #[test]
    fn cidrs_with_host_bits_are_refused_with_the_fix() {
        assert_eq!(
            parse_cidr("10.0.0.0/8", de()),
            Ok(AnyRange::V4(Range {
                start: 0x0a00_0000,
                end: 0x0aff_ffff,
                country: de()
            }))
        );
        let err = parse_cidr("10.1.2.3/8", de()).unwrap_err();
        assert!(err.contains("did you mean 10.0.0.0/8?"), "{err}");
        assert!(parse_cidr("10.0.0.0/33", de()).is_err());
    }

    #[test]
    fn comments_and_whitespace_are_stripped() {
        assert_eq!(strip_comment("  1.0.0.0/24 CN # x\r"), "1.0.0.0/24 CN");
        assert_eq!(strip_comment("# all comment"), "");
    }
}
