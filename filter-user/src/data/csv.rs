//! CSV ranges: `start,end,CC` (ip-location-db, DB-IP lite; dotted or numeric addresses) and
//! `CIDR,CC`. A first line whose first field is a name (no digits, or an underscore or space, as in
//! `ip_start`) and not an address (`::`, `fe80::`) is a header; a first line with a mistyped
//! address is an error, not a header. Rows with an empty country are checked, then skipped and
//! counted.

use super::{
    text::{is_empty_country, parse_addr, parse_cidr, parse_country, range, Line, Parsed, Record},
    AnyRange, Range,
};
use crate::model::country::Country;

pub fn parse_line(line: &Line<'_>) -> Parsed {
    let fields: Vec<&str> = line.text.split(',').map(str::trim).collect();
    if line.first && is_column_name(fields[0]) {
        return Ok(Record::Other);
    }
    let (addresses, country) = match fields[..] {
        [_, country] => (&fields[..1], country),
        [_, _, country] => (&fields[..2], country),
        _ => {
            return Err(format!(
                "expected start,end,CC or CIDR,CC; found {} fields",
                fields.len()
            ))
        }
    };
    // The addresses first, with a stand-in country: a row without a country (unassigned space
    // in some exports) is skipped only when they are right, never because it is broken.
    let stand_in = Country::parse("ZZ").expect("ZZ is a known code");
    let parsed: AnyRange = match addresses {
        [cidr] => parse_cidr(cidr, stand_in)?,
        [start, end] => range(parse_addr(start)?, parse_addr(end)?, stand_in)?,
        _ => unreachable!("one or two address fields"),
    };
    if is_empty_country(country) {
        return Ok(Record::NoCountry);
    }
    let country = parse_country(country)?;
    Ok(Record::Range(match parsed {
        AnyRange::V4(r) => AnyRange::V4(Range { country, ..r }),
        AnyRange::V6(r) => AnyRange::V6(Range { country, ..r }),
    }))
}

fn is_column_name(field: &str) -> bool {
    (!field.bytes().any(|b| b.is_ascii_digit()) || field.contains(['_', ' ']))
        && parse_addr(field).is_err()
        && parse_cidr(field, Country::parse("ZZ").expect("ZZ is a known code")).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, first: bool) -> Parsed {
        parse_line(&Line { text, first })
    }

    #[test]
    fn reads_dotted_numeric_and_cidr_rows() {
        let Record::Range(AnyRange::V4(r)) = parse("1.0.1.0,1.0.3.255,CN", false).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.start, r.end, r.country.code()),
            (0x0100_0100, 0x0100_03ff, "CN".into())
        );
        let numeric = parse("16777472,16778239,cn", false).unwrap();
        assert_eq!(numeric, Record::Range(AnyRange::V4(r)));
        assert_eq!(
            parse("16777472,16778239, \" cn \" ", false).unwrap(),
            numeric
        );
        let Record::Range(AnyRange::V6(Range { start, .. })) =
            parse("\"2001:200::\",\"2001:200:ffff::\",\"JP\"", false).unwrap()
        else {
            panic!()
        };
        assert_eq!(start, 0x2001_0200 << 96);
        assert!(matches!(
            parse("10.0.0.0/8,DE", false),
            Ok(Record::Range(AnyRange::V4(_)))
        ));
    }

    #[test]
    fn only_the_first_line_may_be_a_header() {
        assert_eq!(parse("ip_start,ip_end,country", true), Ok(Record::Other));
        assert_eq!(parse("\"start_ipv6\",end,cc", true), Ok(Record::Other));
        // A mistyped first row is an error, never silently skipped as a header.
        let err = parse("1.0.0.O,1.0.0.255,DE", true).unwrap_err();
        assert!(err.contains("\"1.0.0.O\" is not an IP address"), "{err}");
        let err = parse("ip_start,ip_end,country", false).unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
    }

    /// `::` and `fe80::` have no digits, but they are addresses, not column names.
    #[test]
    fn a_first_row_of_addresses_without_digits_is_data() {
        for row in [
            "::,::ffff,US",
            "abcd::,abcd::ffff,US",
            "::/8,US",
            "\"::\",\"::ff\",\"US\"",
        ] {
            assert!(
                matches!(parse(row, true), Ok(Record::Range(AnyRange::V6(_)))),
                "{row}: {:?}",
                parse(row, true)
            );
        }
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_first_row() {
        let file = crate::data::testing::TempFile::new(
            "bom.csv",
            b"\xef\xbb\xbf1.0.0.0,1.0.0.255,AU\r\n1.0.1.0,1.0.1.255,CN\r\n",
        );
        let data = crate::data::text::load(&file.0, crate::data::Format::Csv, parse_line).unwrap();
        assert_eq!(data.v4.len(), 2);
        assert_eq!(data.v4[0].country.code(), "AU");
    }

    #[test]
    fn bad_rows_say_what_is_wrong() {
        for (row, expected) in [
            (
                "1.0.0.9,1.0.0.1,DE",
                "range start 1.0.0.9 is after its end 1.0.0.1",
            ),
            (
                "1.0.0.0,2001:db8::,DE",
                "range mixes an IPv4 and an IPv6 address",
            ),
            (
                "1.0.0.0,1.0.0.255,Germany",
                "\"Germany\" is not a two-letter country code",
            ),
            (
                "1.0.0.0,1.0.0.255,DEU",
                "\"DEU\" is not a two-letter country code",
            ),
            (
                "1.0.0.0,1.0.0.255,XX",
                "unknown country code \"XX\": did you mean XK, AX, CX, MX, SX?",
            ),
            (
                "1.0.0.0,1.0.0.255,DE,extra",
                "expected start,end,CC or CIDR,CC; found 4 fields",
            ),
            (
                "1.0.0.0",
                "expected start,end,CC or CIDR,CC; found 1 fields",
            ),
            // Rows without a country are skipped only when their addresses are right.
            (
                "1.0.0.9,1.0.0.1,",
                "range start 1.0.0.9 is after its end 1.0.0.1",
            ),
            (
                "garbage,",
                "\"garbage\" is not a CIDR (expected e.g. 192.0.2.0/24)",
            ),
            (
                "10.0.0.1/8,\"\"",
                "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
            ),
        ] {
            assert_eq!(parse(row, false).unwrap_err(), expected, "{row}");
        }
    }

    #[test]
    fn rows_without_a_country_are_skipped_and_counted() {
        for row in [
            "1.0.0.0,1.0.0.255,",
            "1.0.0.0,1.0.0.255,\"\"",
            "10.0.0.0/8, ",
        ] {
            assert_eq!(parse(row, false), Ok(Record::NoCountry), "{row}");
        }
        let file = crate::data::testing::TempFile::new(
            "gaps.csv",
            b"start,end,cc\n1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,\n1.0.2.0,1.0.2.255,\"\"\n",
        );
        let data = crate::data::text::load(&file.0, crate::data::Format::Csv, parse_line).unwrap();
        assert_eq!(data.v4.len(), 1);
        assert_eq!(data.info.skipped, 2);
    }
}
