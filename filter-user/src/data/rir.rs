//! RIR delegated and delegated-extended statistics:
//! `registry|cc|type|start|value|date|status[|opaque-id|...]`.
//!
//! For IPv4 `value` is an address count, not always a power of two; for IPv6 it is a prefix
//! length. The version line, summary lines and ASN records carry no address data and are
//! passed over; space with no country (available, reserved) is checked, then skipped and counted.

use super::text::{parse_addr, parse_country, range, Addr, Line, Parsed, Record};
use crate::model::country::Country;

pub fn parse_line(line: &Line<'_>) -> Parsed {
    let fields: Vec<&str> = line.text.split('|').map(str::trim).collect();
    // Version line: `2|ripencc|20240101|...` or `2.3|apnic|...`; summary:
    // `ripencc|*|ipv4|*|count|summary`.
    let is_version =
        !fields[0].is_empty() && fields[0].bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if is_version || fields.get(5) == Some(&"summary") {
        return Ok(Record::Other);
    }
    let [_registry, cc, kind, start, value, _date, status, ..] = fields[..] else {
        return Err(format!(
            "expected registry|cc|type|start|value|date|status; found {} fields",
            fields.len()
        ));
    };
    let kind = kind.to_ascii_lowercase();
    if kind == "asn" {
        return Ok(Record::Other);
    }
    if kind != "ipv4" && kind != "ipv6" {
        return Err(format!("{kind:?} is not a record type (asn, ipv4 or ipv6)"));
    }
    // Available and reserved space names no country (or `ZZ`, or anything): its addresses are
    // still checked, with a stand-in country, and the record is counted as skipped.
    let no_country = matches!(
        status.to_ascii_lowercase().as_str(),
        "available" | "reserved"
    );
    let country = if no_country {
        Country::parse("ZZ").expect("ZZ is a known code")
    } else if cc.is_empty() {
        return Err(format!("the record is {status} but names no country"));
    } else {
        parse_country(cc)?
    };
    let start = parse_addr(start)?;
    let parsed = match (kind.as_str(), start) {
        ("ipv4", Addr::V4(first)) => {
            let count: u32 =
                value.parse().ok().filter(|&c| c > 0).ok_or_else(|| {
                    format!("IPv4 address count {value:?} is not a positive number")
                })?;
            let last = first.checked_add(count - 1).ok_or_else(|| {
                format!(
                    "{count} addresses from {} run past 255.255.255.255",
                    std::net::Ipv4Addr::from(first)
                )
            })?;
            range(Addr::V4(first), Addr::V4(last), country)?
        }
        ("ipv6", Addr::V6(first)) => {
            let len: u32 = value
                .parse()
                .ok()
                .filter(|&l| l <= 128)
                .ok_or_else(|| format!("IPv6 prefix length {value:?} is not 0-128"))?;
            let host = u128::MAX.checked_shr(len).unwrap_or(0);
            if first & host != 0 {
                return Err(format!("IPv6 start has bits set beyond /{len}"));
            }
            range(Addr::V6(first), Addr::V6(first | host), country)?
        }
        _ => return Err(format!("start address does not match type {kind}")),
    };
    Ok(if no_country {
        Record::NoCountry
    } else {
        Record::Range(parsed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AnyRange, Range};

    fn parse(text: &str) -> Parsed {
        parse_line(&Line { text, first: false })
    }

    #[test]
    fn ipv4_counts_need_not_be_powers_of_two() {
        let Record::Range(AnyRange::V4(Range {
            start,
            end,
            country,
        })) = parse("ripencc|FR|ipv4|2.0.0.0|768|20100712|allocated").unwrap()
        else {
            panic!()
        };
        assert_eq!((start, end), (0x0200_0000, 0x0200_02ff));
        assert_eq!(country.code(), "FR");
        // Case and surrounding space are normalised.
        assert_eq!(
            parse("ripencc| fr |IPv4|2.0.0.0|768|20100712|Allocated").unwrap(),
            parse("ripencc|FR|ipv4|2.0.0.0|768|20100712|allocated").unwrap()
        );
    }

    #[test]
    fn ipv6_values_are_prefix_lengths() {
        let Record::Range(AnyRange::V6(Range { start, end, .. })) =
            parse("apnic|JP|ipv6|2001:200::|35|19990813|allocated|A91A7381|e-stats").unwrap()
        else {
            panic!()
        };
        assert_eq!(start, 0x2001_0200 << 96);
        assert_eq!(end, (0x2001_0200 << 96) | (u128::MAX >> 35));
    }

    #[test]
    fn lines_without_address_data_are_passed_over() {
        for line in [
            "2|apnic|20240101|55000|19830613|20231231|+1000",
            "2.3|apnic|20240101|55000|19830613|20231231|+1000",
            "apnic|*|ipv4|*|40000|summary",
            "apnic|JP|asn|173|1|20020801|allocated",
        ] {
            assert_eq!(parse(line), Ok(Record::Other), "{line}");
        }
    }

    #[test]
    fn space_without_a_country_is_skipped_and_counted() {
        for line in [
            "arin||ipv4|0.0.0.0|256||reserved",
            "ripencc|ZZ|ipv4|2.56.0.0|1024||available|x",
            "test|XX|ipv6|2001:db8::|32||available|x",
        ] {
            assert_eq!(parse(line), Ok(Record::NoCountry), "{line}");
        }
        let file = crate::data::testing::TempFile::new(
            "delegated-gaps",
            b"2|t|1|3|1|1|+0\nt|GB|ipv4|81.2.69.0|256|1|allocated\nt||ipv4|192.0.2.0|256||reserved\n",
        );
        let data = crate::data::text::load(&file.0, crate::data::Format::Rir, parse_line).unwrap();
        assert_eq!((data.v4.len(), data.info.skipped), (1, 1));
    }

    #[test]
    fn bad_records_are_errors() {
        for (line, expected) in [
            (
                "apnic|JP|ipv4|1.0.0.0|0|20110412|allocated",
                "IPv4 address count \"0\" is not a positive number",
            ),
            (
                "apnic|JP|ipv4|255.255.255.0|512|20110412|allocated",
                "512 addresses from 255.255.255.0 run past 255.255.255.255",
            ),
            (
                "apnic|JP|ipv6|2001:200::1|32|20110412|allocated",
                "IPv6 start has bits set beyond /32",
            ),
            (
                "apnic|JP|ipv6|1.0.0.0|32|20110412|allocated",
                "start address does not match type ipv6",
            ),
            (
                "apnic|JP|ipv4",
                "expected registry|cc|type|start|value|date|status; found 3 fields",
            ),
            (
                "apnic|XX|ipv4|1.0.0.0|256|20110412|allocated",
                "unknown country code \"XX\": did you mean XK, AX, CX, MX, SX?",
            ),
            (
                "apnic|JPN|ipv4|1.0.0.0|256|20110412|allocated",
                "\"JPN\" is not a two-letter country code",
            ),
            (
                "apnic||ipv4|1.0.0.0|256|20110412|allocated",
                "the record is allocated but names no country",
            ),
            (
                "apnic|JP|ipv5|1.0.0.0|256|20110412|allocated",
                "\"ipv5\" is not a record type (asn, ipv4 or ipv6)",
            ),
            (
                "arin||ipv4|0.0.0.0|0||reserved",
                "IPv4 address count \"0\" is not a positive number",
            ),
        ] {
            assert_eq!(parse(line).unwrap_err(), expected, "{line}");
        }
    }
}
