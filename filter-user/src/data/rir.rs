//! RIR delegated and delegated-extended statistics:
//! `registry|cc|type|start|value|date|status[|opaque-id|...]`.
//!
//! For IPv4 `value` is an address count, not always a power of two; for IPv6 it is a prefix
//! length. The version line, summary lines, ASN records and space with no country (available,
//! reserved) carry no country data and are skipped.

use super::text::{parse_addr, parse_country, range, Addr, Line, Parsed};

pub fn parse_line(line: &Line<'_>) -> Parsed {
    let fields: Vec<&str> = line.text.split('|').collect();
    // Version line: `2|ripencc|20240101|...`; summary: `ripencc|*|ipv4|*|count|summary`.
    if fields[0].bytes().all(|b| b.is_ascii_digit()) || fields.get(5) == Some(&"summary") {
        return Ok(None);
    }
    let [_registry, cc, kind, start, value, _date, status, ..] = fields[..] else {
        return Err(format!(
            "expected registry|cc|type|start|value|date|status; found {} fields",
            fields.len()
        ));
    };
    if !matches!(kind, "ipv4" | "ipv6")
        || cc.is_empty()
        || matches!(status, "available" | "reserved")
    {
        return Ok(None);
    }
    let country = parse_country(cc)?;
    let start = parse_addr(start)?;
    match (kind, start) {
        ("ipv4", Addr::V4(first)) => {
            let count: u32 =
                value.parse().ok().filter(|&c| c > 0).ok_or_else(|| {
                    format!("IPv4 address count {value:?} is not a positive number")
                })?;
            let last = first.checked_add(count - 1).ok_or_else(|| {
                format!("{count} addresses from {start:?} run past 255.255.255.255")
            })?;
            range(Addr::V4(first), Addr::V4(last), country).map(Some)
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
            range(Addr::V6(first), Addr::V6(first | host), country).map(Some)
        }
        _ => Err(format!("start address does not match type {kind}")),
    }
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
        let Some(AnyRange::V4(Range {
            start,
            end,
            country,
        })) = parse("ripencc|FR|ipv4|2.0.0.0|768|20100712|allocated").unwrap()
        else {
            panic!()
        };
        assert_eq!((start, end), (0x0200_0000, 0x0200_02ff));
        assert_eq!(country.code(), "FR");
    }

    #[test]
    fn ipv6_values_are_prefix_lengths() {
        let Some(AnyRange::V6(Range { start, end, .. })) =
            parse("apnic|JP|ipv6|2001:200::|35|19990813|allocated|A91A7381|e-stats").unwrap()
        else {
            panic!()
        };
        assert_eq!(start, 0x2001_0200 << 96);
        assert_eq!(end, (0x2001_0200 << 96) | (u128::MAX >> 35));
    }

    #[test]
    fn non_country_lines_are_skipped() {
        for line in [
            "2|apnic|20240101|55000|19830613|20231231|+1000",
            "apnic|*|ipv4|*|40000|summary",
            "apnic|JP|asn|173|1|20020801|allocated",
            "arin||ipv4|0.0.0.0|256||reserved",
            "ripencc|ZZ|ipv4|2.56.0.0|1024||available|x",
        ] {
            assert_eq!(parse(line), Ok(None), "{line}");
        }
    }

    #[test]
    fn bad_records_are_errors() {
        for (line, expected) in [
            ("apnic|JP|ipv4|1.0.0.0|0|20110412|allocated", "positive"),
            (
                "apnic|JP|ipv4|255.255.255.0|512|20110412|allocated",
                "run past",
            ),
            (
                "apnic|JP|ipv6|2001:200::1|32|20110412|allocated",
                "bits set",
            ),
            (
                "apnic|JP|ipv6|1.0.0.0|32|20110412|allocated",
                "does not match",
            ),
            ("apnic|JP|ipv4", "3 fields"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }
}
