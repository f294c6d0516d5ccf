//! Reads country prefixes out of MaxMind-format databases (GeoLite2/GeoIP2, DB-IP, ip-location-db).

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use maxminddb::{Reader, WithinOptions};
use serde::{Deserialize, Serialize};

use crate::country::Country;

/// Country prefixes of one database, split by family.
#[derive(Clone, Debug, Default)]
pub struct RegionData {
    pub v4: Vec<(Ipv4Net, Country)>,
    pub v6: Vec<(Ipv6Net, Country)>,
    pub source: SourceInfo,
}

/// Where the data came from, shown by `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub database_type: String,
    /// Unix time the database was built.
    pub build_epoch: u64,
}

/// Why a database could not be used. Nothing is loaded when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read database {path}: {source}")]
    Open {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("database {path} is corrupt: {source}; download it again")]
    Corrupt {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("database {path} ({database_type}) has no country data: no network carries country.iso_code, registered_country.iso_code or country_code")]
    NoCountries {
        path: PathBuf,
        database_type: String,
    },
}

/// The record fields that name a country, across vendor layouts.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    /// ip-location-db's flat layout.
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

impl<'a> CountryRecord<'a> {
    /// `country`, falling back to `registered_country`, then the flat `country_code`.
    fn country(&self) -> Option<Country> {
        fn nested<'a>(field: &Option<IsoCode<'a>>) -> Option<&'a str> {
            field.as_ref().and_then(|c| c.iso_code)
        }
        nested(&self.country)
            .or_else(|| nested(&self.registered_country))
            .or(self.country_code)
            .and_then(Country::from_code)
    }
}

/// IPv6 ranges that alias IPv4 space in MaxMind trees (IPv4-compatible, IPv4-mapped, 6to4,
/// Teredo): skipped so IPv4 space is neither counted twice nor judged through IPv6 keys.
fn is_ipv4_alias(net: &Ipv6Net) -> bool {
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
}

impl Database {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let reader = Reader::open_readfile(path).map_err(|source| DataError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            reader,
            path: path.to_owned(),
        })
    }

    /// The country the database gives `addr`, by the same field rules as [`load`].
    pub fn country(&self, addr: IpAddr) -> Result<Option<Country>, DataError> {
        let corrupt = corrupt_at(&self.path);
        let result = self.reader.lookup(addr).map_err(&corrupt)?;
        let record: Option<CountryRecord<'_>> = result.decode().map_err(&corrupt)?;
        Ok(record.and_then(|r| r.country()))
    }
}

/// Maps a reader error to [`DataError::Corrupt`] naming `path`.
fn corrupt_at(path: &Path) -> impl Fn(maxminddb::MaxMindDbError) -> DataError + '_ {
    move |source| DataError::Corrupt {
        path: path.to_owned(),
        source,
    }
}

/// Loads every network that has a country. Verifies the whole file first, so a corrupt database
/// fails here rather than half way through filling maps.
pub fn load(path: &Path) -> Result<RegionData, DataError> {
    let reader = Database::open(path)?.reader;
    let corrupt = corrupt_at(path);
    reader.verify().map_err(&corrupt)?;

    let mut data = RegionData {
        source: SourceInfo {
            path: path.to_owned(),
            database_type: reader.metadata().database_type.clone(),
            build_epoch: reader.metadata().build_epoch,
        },
        ..RegionData::default()
    };
    // Many networks share one record: decode each record once.
    let mut by_offset: HashMap<usize, Option<Country>> = HashMap::new();
    for item in reader
        .networks(WithinOptions::default())
        .map_err(&corrupt)?
    {
        let item = item.map_err(&corrupt)?;
        let Some(offset) = item.offset() else {
            continue;
        };
        let country = match by_offset.get(&offset) {
            Some(country) => *country,
            None => {
                let record: Option<CountryRecord<'_>> = item.decode().map_err(&corrupt)?;
                let country = record.and_then(|r| r.country());
                by_offset.insert(offset, country);
                country
            }
        };
        let Some(country) = country else { continue };
        let network = item.network().map_err(&corrupt)?;
        match IpNet::new(network.ip(), network.prefix()) {
            Ok(IpNet::V4(net)) => data.v4.push((net, country)),
            Ok(IpNet::V6(net)) if !is_ipv4_alias(&net) => data.v6.push((net, country)),
            Ok(IpNet::V6(_)) => {}
            Err(_) => unreachable!("maxminddb yields valid prefix lengths"),
        }
    }
    if data.v4.is_empty() && data.v6.is_empty() {
        return Err(DataError::NoCountries {
            path: path.to_owned(),
            database_type: data.source.database_type,
        });
    }
    Ok(data)
}

#[cfg(test)]
impl RegionData {
    /// First and last address of every network, with its country.
    pub(crate) fn boundaries(&self) -> Vec<(IpAddr, Country)> {
        let v4 = self
            .v4
            .iter()
            .flat_map(|(n, c)| [(n.network().into(), *c), (n.broadcast().into(), *c)]);
        let v6 = self
            .v6
            .iter()
            .flat_map(|(n, c)| [(n.network().into(), *c), (n.broadcast().into(), *c)]);
        v4.chain(v6).collect()
    }

    /// Naive longest-prefix match over every network: the oracle tests compare against.
    pub(crate) fn country_of(&self, addr: IpAddr) -> Option<Country> {
        fn longest<N: Copy>(
            nets: &[(N, Country)],
            contains: impl Fn(&N) -> bool,
            len: impl Fn(&N) -> u8,
        ) -> Option<Country> {
            nets.iter()
                .filter(|(n, _)| contains(n))
                .max_by_key(|(n, _)| len(n))
                .map(|(_, c)| *c)
        }
        match addr {
            IpAddr::V4(a) => longest(&self.v4, |n| n.contains(&a), Ipv4Net::prefix_len),
            IpAddr::V6(a) => longest(&self.v6, |n| n.contains(&a), Ipv6Net::prefix_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/maxmind")
            .join(name)
    }

    fn country_of(data: &RegionData, addr: &str) -> Option<String> {
        data.country_of(addr.parse().unwrap()).map(Country::code)
    }

    #[test]
    fn loads_maxmind_country_test_database() {
        let data = load(&fixture("GeoLite2-Country-Test.mmdb")).unwrap();
        assert_eq!(data.source.database_type, "GeoLite2-Country");
        assert!(data.source.build_epoch > 0);
        assert_eq!(country_of(&data, "81.2.69.160").as_deref(), Some("GB"));
        assert_eq!(country_of(&data, "89.160.20.130").as_deref(), Some("SE"));
        assert_eq!(country_of(&data, "2001:218::1").as_deref(), Some("JP"));
        assert_eq!(country_of(&data, "192.0.2.1"), None);
    }

    #[test]
    fn ipv4_space_is_not_repeated_through_ipv6_aliases() {
        let data = load(&fixture("GeoLite2-Country-Test.mmdb")).unwrap();
        assert!(data.v6.iter().all(|(n, _)| !is_ipv4_alias(n)));
        let mut v4: Vec<_> = data.v4.iter().map(|(n, _)| *n).collect();
        v4.sort_unstable();
        v4.dedup();
        assert_eq!(v4.len(), data.v4.len(), "an IPv4 network was yielded twice");
    }

    #[test]
    fn every_network_agrees_with_a_direct_database_lookup() {
        let path = fixture("GeoIP2-Country-Test.mmdb");
        let data = load(&path).unwrap();
        let db = Database::open(&path).unwrap();
        for (addr, country) in data.boundaries() {
            assert_eq!(db.country(addr).unwrap(), Some(country), "{addr}");
        }
    }

    #[test]
    fn city_databases_also_carry_countries() {
        let data = load(&fixture("GeoIP2-City-Test.mmdb")).unwrap();
        assert!(!data.v4.is_empty());
    }

    #[test]
    fn corrupt_databases_are_refused_with_the_path() {
        for name in [
            "MaxMind-DB-test-broken-pointers-24.mmdb",
            "MaxMind-DB-test-broken-search-tree-24.mmdb",
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        ] {
            let err = load(&fixture(name)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn non_database_files_are_refused() {
        let err = load(&fixture("LICENSE-MIT")).unwrap_err();
        assert!(matches!(err, DataError::Open { .. }), "{err}");
    }
}
