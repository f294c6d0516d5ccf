//! CIDR lists: one CIDR per line in a per-country file named after the country (`cn.zone`,
//! `de-aggregated.zone`, ipdeny style), or `CIDR CC` lines in any file.

use std::path::Path;

use super::{
    text::{self, parse_cidr, parse_country, Record},
    DataError, Format, SourceData,
};
use crate::model::country::Country;

pub fn load(path: &Path) -> Result<SourceData, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    load_bytes(path, &bytes, super::mtime(path))
}

/// [`load`] on contents already in memory; `path` still gives the country of bare CIDRs.
pub fn load_bytes(path: &Path, bytes: &[u8], build_epoch: u64) -> Result<SourceData, DataError> {
    let from_name = country_in_name(path);
    let mut bare_without_country = false;
    let data = text::load_bytes(path, bytes, build_epoch, Format::Cidr, |line| {
        let mut fields = line.text.split_whitespace();
        let cidr = fields.next().unwrap_or_default();
        let country = match (fields.next(), fields.next(), from_name) {
            (Some(cc), None, _) => parse_country(cc)?,
            (None, _, Some(country)) => country,
            (None, _, None) => {
                bare_without_country = true;
                return Ok(Record::Other);
            }
            (Some(_), Some(_), _) => return Err("expected `CIDR` or `CIDR CC`".to_owned()),
        };
        parse_cidr(cidr, country).map(Record::Range)
    })?;
    if bare_without_country {
        return Err(DataError::NoCountryInName {
            path: path.to_owned(),
        });
    }
    Ok(data)
}

/// `cn.zone`, `CN.txt`, `de-aggregated.zone` name their country; `list.txt` does not.
fn country_in_name(path: &Path) -> Option<Country> {
    let name = path.file_name()?.to_str()?;
    let code = name.split(['.', '-', '_']).next()?;
    (code.len() == 2)
        .then(|| Country::parse(code).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testing::TempFile;

    #[test]
    fn country_comes_from_the_name_or_the_line() {
        let file = TempFile::new("cn-aggregated.zone", b"1.0.1.0/24\n2001:250::/30\n");
        let data = load(&file.0).unwrap();
        assert_eq!(data.v4.len(), 1);
        assert_eq!(data.v6.len(), 1);
        assert_eq!(data.v4[0].country.code(), "CN");

        let file = TempFile::new("list.txt", b"10.0.0.0/8 DE\n# x\n192.0.2.0/24 fr\n");
        let data = load(&file.0).unwrap();
        assert_eq!(data.v4[1].country.code(), "FR");
    }

    #[test]
    fn bare_cidrs_without_a_country_name_are_refused() {
        let file = TempFile::new("list.txt", b"10.0.0.0/8\n");
        let err = load(&file.0).unwrap_err();
        assert!(err.to_string().contains("cn.zone"), "{err}");
    }

    #[test]
    fn country_codes_follow_the_rule_every_reader_uses() {
        let file = TempFile::new("codes.txt", b"10.0.0.0/8  de \n10.1.0.0/16 XX\n");
        let err = load(&file.0).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "codes.txt:2: unknown country code \"XX\": did you mean XK, AX, CX, MX, SX?"
            ),
            "{err}"
        );
        let file = TempFile::new("codes.txt", b"10.0.0.0/8 DEU\n");
        let err = load(&file.0).unwrap_err().to_string();
        assert!(
            err.ends_with("codes.txt:1: \"DEU\" is not a two-letter country code"),
            "{err}"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let file = TempFile::new("de.zone", b"10.0.0.0/8\n\n10.0.0.1/8\n");
        let err = load(&file.0).unwrap_err().to_string();
        assert!(
            err.ends_with("de.zone:3: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"),
            "{err}"
        );
    }
}
