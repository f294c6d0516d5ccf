//! CSV ranges: `start,end,CC` (ip-location-db, DB-IP lite; dotted or numeric addresses) and
//! `CIDR,CC`. A first line whose first field is a name (no digits, or an underscore or space, as in
//! `ip_start`) is a header; a first line with a mistyped address is an error, not a header.

use super::text::{parse_addr, parse_cidr, parse_country, range, Line, Parsed};

pub fn parse_line(line: &Line<'_>) -> Parsed {
    let fields: Vec<&str> = line.text.split(',').map(str::trim).collect();
    if line.first && is_column_name(fields[0]) {
        return Ok(None);
    }
    match fields[..] {
        // A range or network without a country (unassigned space in some exports).
        [_, ""] | [_, _, ""] => Ok(None),
        [cidr, country] => parse_cidr(cidr, parse_country(country)?).map(Some),
        [start, end, country] => range(
            parse_addr(start)?,
            parse_addr(end)?,
            parse_country(country)?,
        )
        .map(Some),
        _ => Err(format!(
            "expected start,end,CC or CIDR,CC; found {} fields",
            fields.len()
        )),
    }
}

fn is_column_name(field: &str) -> bool {
    !field.bytes().any(|b| b.is_ascii_digit()) || field.contains(['_', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{AnyRange, Range};

    fn parse(text: &str, first: bool) -> Parsed {
        parse_line(&Line { text, first })
    }

    #[test]
    fn reads_dotted_numeric_and_cidr_rows() {
        let Some(AnyRange::V4(r)) = parse("1.0.1.0,1.0.3.255,CN", false).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.start, r.end, r.country.code()),
            (0x0100_0100, 0x0100_03ff, "CN".into())
        );
        let numeric = parse("16777472,16778239,cn", false).unwrap();
        assert_eq!(numeric, Some(AnyRange::V4(r)));
        let Some(AnyRange::V6(Range { start, .. })) =
            parse("\"2001:200::\",\"2001:200:ffff::\",\"JP\"", false).unwrap()
        else {
            panic!()
        };
        assert_eq!(start, 0x2001_0200 << 96);
        assert!(matches!(
            parse("10.0.0.0/8,DE", false),
            Ok(Some(AnyRange::V4(_)))
        ));
    }

    #[test]
    fn only_the_first_line_may_be_a_header() {
        assert_eq!(parse("ip_start,ip_end,country", true), Ok(None));
        assert_eq!(parse("\"start_ipv6\",end,cc", true), Ok(None));
        // A mistyped first row is an error, never silently skipped as a header.
        let err = parse("1.0.0.O,1.0.0.255,DE", true).unwrap_err();
        assert!(err.contains("\"1.0.0.O\" is not an IP address"), "{err}");
        let err = parse("ip_start,ip_end,country", false).unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
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
            ("1.0.0.9,1.0.0.1,DE", "after its end"),
            ("1.0.0.0,2001:db8::,DE", "mixes"),
            ("1.0.0.0,1.0.0.255,Germany", "two-letter"),
            ("1.0.0.0,1.0.0.255,DE,extra", "4 fields"),
            ("1.0.0.0", "1 fields"),
        ] {
            let err = parse(row, false).unwrap_err();
            assert!(err.contains(expected), "{row}: {err}");
        }
        assert_eq!(parse("1.0.0.0,1.0.0.255,", false), Ok(None));
    }
}
