//! Reads country ranges out of MaxMind-format databases: GeoLite2/GeoIP2 and DB-IP
//! (`country.iso_code` and friends) and ip-location-db (a flat `country_code`).

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::{IpNet, Ipv6Net};
use maxminddb::{Reader, WithinOptions};
use serde::{Deserialize, Serialize};

use super::{text::country_code, DataError, Format, Range, SourceData, SourceInfo};
use crate::model::country::Country;

mod tree;

/// Which record field decides a network's country.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CountryField {
    /// Where the network is used: `country`, falling back to `registered_country`.
    #[default]
    Country,
    /// Where the network is registered: `registered_country`, falling back to `country`.
    Registered,
    /// Whom it serves (e.g. a military base abroad): `represented_country`, then as `country`.
    Represented,
}

/// The record fields that name a country, across vendor layouts.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    represented_country: Option<IsoCode<'a>>,
    /// ip-location-db's flat layout.
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

/// What a record says about its network's country.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Country(Country),
    /// No country field at all: unknown space, as the database means it.
    Nowhere,
    /// Only empty codes: unknown space too, but counted as skipped so it is never silent.
    Empty,
}

impl CountryRecord<'_> {
    /// The chosen field with its fallbacks, then the flat `country_code` (which makes no
    /// registered/represented distinction). An empty code counts as absent for the fallbacks.
    /// The first code found follows the rule every reader applies ([`country_code`]): case
    /// and surrounding space are normalised, anything but a known two-letter code is an error
    /// naming the field and the value.
    fn place(&self, field: CountryField) -> Result<Place, String> {
        fn nested<'a>(field: &Option<IsoCode<'a>>) -> Option<&'a str> {
            field.as_ref().and_then(|c| c.iso_code)
        }
        let country = ("country.iso_code", nested(&self.country));
        let registered = (
            "registered_country.iso_code",
            nested(&self.registered_country),
        );
        let represented = (
            "represented_country.iso_code",
            nested(&self.represented_country),
        );
        let flat = ("country_code", self.country_code);
        let order: &[(&str, Option<&str>)] = match field {
            CountryField::Country => &[country, registered, flat],
            CountryField::Registered => &[registered, country, flat],
            CountryField::Represented => &[represented, country, registered, flat],
        };
        let mut empty = false;
        for &(name, value) in order {
            match value {
                None => {}
                Some(code) if code.trim().is_empty() => empty = true,
                Some(code) => {
                    return country_code(code)
                        .map(Place::Country)
                        .map_err(|e| format!("{name} {code:?}: {e}"));
                }
            }
        }
        Ok(if empty { Place::Empty } else { Place::Nowhere })
    }
}

/// IPv6 ranges that alias IPv4 space in MaxMind trees (IPv4-compatible, IPv4-mapped, 6to4,
/// Teredo): skipped so IPv4 space is neither counted twice nor judged through IPv6 keys.
pub(super) fn is_ipv4_alias(net: &Ipv6Net) -> bool {
    const ALIASES: [(&str, u8); 4] = [
        ("::", 96),
        ("::ffff:0:0", 96),
        ("2002::", 16),
        ("2001::", 32),
    ];
    ALIASES.iter().any(|(addr, len)| {
        let alias = Ipv6Net::new(addr.parse().expect("valid alias literal"), *len)
            .expect("valid alias prefix");
        alias.contains(net)
    })
}

/// An opened database, for asking about single addresses the way the database itself answers.
pub struct Database {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
    field: CountryField,
}

impl Database {
    pub fn open(path: &Path, field: CountryField) -> Result<Self, DataError> {
        let reader = Reader::open_readfile(path).map_err(|source| DataError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            reader,
            path: path.to_owned(),
            field,
        })
    }

    /// The country the database gives `addr`, by the same field rules as [`load`].
    pub fn country(&self, addr: IpAddr) -> Result<Option<Country>, DataError> {
        let corrupt = corrupt_at(&self.path);
        let result = self.reader.lookup(addr).map_err(&corrupt)?;
        let record: Option<CountryRecord<'_>> = result.decode().map_err(&corrupt)?;
        let Some(record) = record else {
            return Ok(None);
        };
        match record.place(self.field) {
            Ok(Place::Country(country)) => Ok(Some(country)),
            Ok(Place::Nowhere | Place::Empty) => Ok(None),
            Err(message) => {
                let network = result.network().map_err(&corrupt)?;
                Err(bad_record(
                    &self.path,
                    ip_net(network.ip(), network.prefix()),
                    message,
                ))
            }
        }
    }
}

fn bad_record(path: &Path, network: IpNet, message: String) -> DataError {
    DataError::Record {
        path: path.to_owned(),
        network,
        message,
    }
}

/// A network as maxminddb reports it, which always has a valid prefix length.
pub(super) fn ip_net(ip: IpAddr, prefix: u8) -> IpNet {
    IpNet::new(ip, prefix).expect("maxminddb yields valid prefix lengths")
}

/// Maps a reader error to [`DataError::Corrupt`] naming `path`, or to
/// [`DataError::NotMaps`] when a record decodes as something other than a map: a well-formed
/// database of another kind, which no download would repair.
pub(super) fn corrupt_at(path: &Path) -> impl Fn(maxminddb::MaxMindDbError) -> DataError + '_ {
    move |source| match &source {
        maxminddb::MaxMindDbError::Decoding { message, .. }
            if message.starts_with("expected map") =>
        {
            DataError::NotMaps {
                path: path.to_owned(),
                source,
            }
        }
        _ => DataError::Corrupt {
            path: path.to_owned(),
            source,
        },
    }
}

/// Loads every network that has a country. Walking the whole tree and decoding every record it
/// reaches finds broken trees and pointers; nothing is returned unless the walk completes.
/// (`Reader::verify` is not used: it also demands a non-empty metadata description, which the
/// spec leaves optional and ip-location-db's databases do not carry.)
pub fn load(path: &Path, field: CountryField) -> Result<SourceData, DataError> {
    load_bytes(path, &read(path)?, field)
}

/// The database file's bytes; an error naming it.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::Open {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// A reader over `bytes` whose search tree can be walked to its end ([`tree::check`]).
pub(super) fn open_walkable<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<Reader<&'a [u8]>, DataError> {
    let reader = Reader::from_source(bytes).map_err(|source| DataError::Open {
        path: path.to_owned(),
        source,
    })?;
    let meta = reader.metadata();
    tree::check(bytes, meta.node_count, meta.record_size)
        .map_err(|why| corrupt_at(path)(maxminddb::MaxMindDbError::invalid_database(why)))?;
    Ok(reader)
}

/// [`load`] on a database already in memory; `path` names it in messages.
pub fn load_bytes(path: &Path, bytes: &[u8], field: CountryField) -> Result<SourceData, DataError> {
    let reader = open_walkable(path, bytes)?;
    let corrupt = corrupt_at(path);

    let mut data = SourceData {
        info: SourceInfo {
            path: path.to_owned(),
            format: Format::Mmdb,
            database_type: reader.metadata().database_type.clone(),
            build_epoch: reader.metadata().build_epoch,
            skipped: 0,
        },
        ..SourceData::default()
    };
    // Many networks share one record: decode each record once.
    let mut by_offset: HashMap<usize, Place> = HashMap::new();
    for item in reader
        .networks(WithinOptions::default())
        .map_err(&corrupt)?
    {
        let item = item.map_err(&corrupt)?;
        let Some(offset) = item.offset() else {
            continue;
        };
        let network = item.network().map_err(&corrupt)?;
        let network = ip_net(network.ip(), network.prefix());
        let place = match by_offset.get(&offset) {
            Some(place) => *place,
            None => {
                let record: Option<CountryRecord<'_>> = item.decode().map_err(&corrupt)?;
                let place = match record {
                    Some(record) => record
                        .place(field)
                        .map_err(|message| bad_record(path, network, message))?,
                    None => Place::Nowhere,
                };
                by_offset.insert(offset, place);
                place
            }
        };
        let country = match place {
            Place::Country(country) => country,
            Place::Nowhere => continue,
            Place::Empty => {
                // IPv4 networks seen again through the IPv6 aliases are counted once.
                if !matches!(network, IpNet::V6(net) if is_ipv4_alias(&net)) {
                    data.info.skipped += 1;
                }
                continue;
            }
        };
        match network {
            IpNet::V4(net) => data.v4.push(Range {
                start: net.network().into(),
                end: net.broadcast().into(),
                country,
            }),
            IpNet::V6(net) if !is_ipv4_alias(&net) => data.v6.push(Range {
                start: net.network().into(),
                end: net.broadcast().into(),
                country,
            }),
            IpNet::V6(_) => {}
        }
    }
    if data.v4.is_empty() && data.v6.is_empty() {
        return Err(DataError::NoCountries {
            path: path.to_owned(),
            database_type: data.info.database_type,
            fields: "country.iso_code, registered_country.iso_code, represented_country.iso_code or country_code",
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/maxmind")
            .join(name)
    }

    /// The country of the range holding `addr` (one database's ranges never overlap).
    fn country_of(data: &SourceData, addr: &str) -> Option<String> {
        let country = match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                data.v4.iter().find(|r| r.start <= a && a <= r.end)?.country
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                data.v6.iter().find(|r| r.start <= a && a <= r.end)?.country
            }
        };
        Some(country.code())
    }

    /// First and last address of every range, with its country.
    fn boundaries(data: &SourceData) -> Vec<(IpAddr, Country)> {
        let v4 = data.v4.iter().flat_map(|r| {
            [r.start, r.end].map(|a| (IpAddr::from(std::net::Ipv4Addr::from(a)), r.country))
        });
        let v6 = data.v6.iter().flat_map(|r| {
            [r.start, r.end].map(|a| (IpAddr::from(std::net::Ipv6Addr::from(a)), r.country))
        });
        v4.chain(v6).collect()
    }

    #[test]
    fn loads_maxmind_country_test_database() {
        let data = load(
            &fixture("GeoLite2-Country-Test.mmdb"),
            CountryField::Country,
        )
        .unwrap();
        assert_eq!(data.info.database_type, "GeoLite2-Country");
        assert!(data.info.build_epoch > 0);
        assert_eq!(country_of(&data, "81.2.69.160").as_deref(), Some("GB"));
        assert_eq!(country_of(&data, "89.160.20.130").as_deref(), Some("SE"));
        assert_eq!(country_of(&data, "2001:218::1").as_deref(), Some("JP"));
        assert_eq!(country_of(&data, "192.0.2.1"), None);
    }

    #[test]
    fn ipv4_space_is_not_repeated_through_ipv6_aliases() {
        let data = load(
            &fixture("GeoLite2-Country-Test.mmdb"),
            CountryField::Country,
        )
        .unwrap();
        let aliases = [
            (0u128, 96u32),
            (0xffff << 32, 96),
            (0x2002 << 112, 16),
            (0x2001 << 112, 32),
        ];
        for r in &data.v6 {
            for (net, len) in aliases {
                assert_ne!(
                    r.start >> (128 - len),
                    net >> (128 - len),
                    "{r:?} is an alias"
                );
            }
        }
        assert!(
            data.v4.windows(2).all(|w| w[0].end < w[1].start),
            "IPv4 ranges repeat"
        );
    }

    #[test]
    fn every_network_agrees_with_a_direct_database_lookup() {
        let path = fixture("GeoIP2-Country-Test.mmdb");
        for field in [
            CountryField::Country,
            CountryField::Registered,
            CountryField::Represented,
        ] {
            let data = load(&path, field).unwrap();
            let db = Database::open(&path, field).unwrap();
            for (addr, country) in boundaries(&data) {
                assert_eq!(db.country(addr).unwrap(), Some(country), "{addr} {field:?}");
            }
        }
    }

    #[test]
    fn country_field_chooses_between_use_registration_and_representation() {
        // From fixtures/maxmind/GeoIP2-Country-Test.json: 81.2.69.160/27 is used in GB and
        // registered in US; 202.196.224.0/20 is in PH and represents US.
        let path = fixture("GeoIP2-Country-Test.mmdb");
        for (field, gb_net, ph_net) in [
            (CountryField::Country, "GB", "PH"),
            (CountryField::Registered, "US", "PH"),
            (CountryField::Represented, "GB", "US"),
        ] {
            let data = load(&path, field).unwrap();
            assert_eq!(
                country_of(&data, "81.2.69.170").as_deref(),
                Some(gb_net),
                "{field:?}"
            );
            assert_eq!(
                country_of(&data, "202.196.224.1").as_deref(),
                Some(ph_net),
                "{field:?}"
            );
        }
    }

    fn generated(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/generated")
            .join(name)
    }

    #[test]
    fn flat_country_code_layout_is_read() {
        let data = load(&generated("flat-country-code.mmdb"), CountryField::Country).unwrap();
        assert_eq!(country_of(&data, "1.0.3.255").as_deref(), Some("CN"));
        assert_eq!(country_of(&data, "81.2.69.1").as_deref(), Some("GB"));
        assert_eq!(country_of(&data, "2001:200::1").as_deref(), Some("JP"));
        // A record without any country field places its network in no country.
        assert_eq!(country_of(&data, "2001:db8::1"), None);
        assert_eq!(data.info.build_epoch, 1_700_000_000);
    }

    #[test]
    fn country_codes_are_normalised_and_empty_ones_counted() {
        let path = generated("odd-codes.mmdb");
        let data = load(&path, CountryField::Country).unwrap();
        // `gb` and ` se ` are read as GB and SE, not as unknown space.
        assert_eq!(country_of(&data, "81.2.69.1").as_deref(), Some("GB"));
        assert_eq!(country_of(&data, "89.160.20.1").as_deref(), Some("SE"));
        // The empty code stays unknown space, counted once (not again through IPv6 aliases).
        assert_eq!(country_of(&data, "1.0.1.1"), None);
        assert_eq!(data.info.skipped, 1);
        let db = Database::open(&path, CountryField::Country).unwrap();
        assert_eq!(
            db.country("81.2.69.1".parse().unwrap()).unwrap(),
            Some(Country::parse("GB").unwrap())
        );
    }

    #[test]
    fn codes_that_are_not_known_two_letter_codes_are_refused() {
        for (name, expected) in [
            (
                "three-letter-code.mmdb",
                "network 81.2.69.0/24: country.iso_code \"GBR\": \"GBR\" is not a two-letter \
                 country code",
            ),
            (
                "unknown-code.mmdb",
                "network 81.2.69.0/24: country_code \"XX\": unknown country code \"XX\": did \
                 you mean XK, AX, CX, MX, SX?",
            ),
        ] {
            let path = generated(name);
            let err = load(&path, CountryField::Country).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("database {}: {expected}", path.display())
            );
            let db = Database::open(&path, CountryField::Country).unwrap();
            let err = db.country("81.2.69.1".parse().unwrap()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("database {}: {expected}", path.display())
            );
        }
    }

    #[test]
    fn city_databases_also_carry_countries() {
        let data = load(&fixture("GeoIP2-City-Test.mmdb"), CountryField::Country).unwrap();
        assert!(!data.v4.is_empty());
    }

    #[test]
    fn databases_without_country_fields_are_refused() {
        for name in ["no-country.mmdb", "no-networks.mmdb"] {
            let err = load(&generated(name), CountryField::Country).unwrap_err();
            assert!(matches!(err, DataError::NoCountries { .. }), "{err}");
            assert!(
                err.to_string().contains("-like) has no country data"),
                "{err}"
            );
        }
    }

    #[test]
    fn corrupt_databases_are_refused_with_the_path() {
        for name in [
            "MaxMind-DB-test-broken-pointers-24.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        ] {
            let err = load(&fixture(name), CountryField::Country).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    /// A well-formed database whose records are plain strings is no country database: it is
    /// named as such, not called corrupt (no download would repair it).
    #[test]
    fn records_that_are_not_maps_are_not_called_corrupt() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/generated/string-records.mmdb");
        let err = load(&path, CountryField::Country).unwrap_err();
        assert!(matches!(err, DataError::NotMaps { .. }), "{err}");
        assert!(
            err.to_string().contains("is not a country database"),
            "{err}"
        );
    }

    #[test]
    fn non_database_files_are_refused() {
        let err = load(&fixture("LICENSE-MIT"), CountryField::Country).unwrap_err();
        assert!(matches!(err, DataError::Open { .. }), "{err}");
    }
}
