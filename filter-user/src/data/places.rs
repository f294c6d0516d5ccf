//! What city and ASN databases say about networks beyond their country: the ISO 3166-2
//! subdivisions (MaxMind and DB-IP City: `subdivisions[].iso_code` under `country.iso_code`,
//! largest first) and the autonomous system (`autonomous_system_number`, as in GeoLite2-ASN;
//! ip-location-db's ASN and city layouts are not read yet).
//!
//! Groundwork for regions in policies (issue 23): read and checked here, not compiled yet.

use std::{collections::BTreeMap, path::Path};

use ipnet::IpNet;
use maxminddb::WithinOptions;
use serde::Deserialize;

use super::{mmdb, DataError};
use crate::model::region::{Asn, Subdivision};

/// The record fields that name subdivisions and networks.
#[derive(Deserialize)]
struct PlaceRecord<'a> {
    #[serde(borrow)]
    country: Option<Code<'a>>,
    #[serde(borrow, default)]
    subdivisions: Vec<Code<'a>>,
    autonomous_system_number: Option<u32>,
}

#[derive(Deserialize)]
struct Code<'a> {
    iso_code: Option<&'a str>,
}

/// One network's subdivisions (at most two levels, largest first) and network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkPlace {
    pub network: IpNet,
    pub subdivisions: [Option<Subdivision>; 2],
    pub asn: Option<Asn>,
}

/// Everything one database says, and what it said that no table knows.
#[derive(Debug, Default)]
pub struct Places {
    pub networks: Vec<NetworkPlace>,
    /// Subdivision codes the ISO 3166-2 table lacks, with how many networks carry each:
    /// reported, never guessed.
    pub unknown_subdivisions: BTreeMap<String, u64>,
    /// AS numbers out of range (0, 4294967295), with their network counts.
    pub bad_asns: BTreeMap<u32, u64>,
}

/// Reads every network's subdivisions and AS number from a MaxMind-format database. Refuses
/// one that has neither (a country database), naming the fields it looked for.
pub fn load(path: &Path) -> Result<Places, DataError> {
    let bytes = mmdb::read(path)?;
    let reader = mmdb::open_walkable(path, &bytes)?;
    let corrupt = mmdb::corrupt_at(path);
    let database_type = reader.metadata().database_type.clone();
    let mut places = Places::default();
    for item in reader
        .networks(WithinOptions::default())
        .map_err(&corrupt)?
    {
        let item = item.map_err(&corrupt)?;
        let network = item.network().map_err(&corrupt)?;
        let network = mmdb::ip_net(network.ip(), network.prefix());
        // IPv4 networks seen again through the IPv6 aliases are taken once.
        if matches!(network, IpNet::V6(net) if mmdb::is_ipv4_alias(&net)) {
            continue;
        }
        let Some(record) = item.decode::<PlaceRecord<'_>>().map_err(&corrupt)? else {
            continue;
        };
        let place = places.place(network, &record);
        if place.subdivisions[0].is_some() || place.asn.is_some() {
            places.networks.push(place);
        }
    }
    if places.networks.is_empty()
        && places.unknown_subdivisions.is_empty()
        && places.bad_asns.is_empty()
    {
        return Err(DataError::NoPlaces {
            path: path.to_owned(),
            database_type,
            fields: "subdivisions[].iso_code or autonomous_system_number".into(),
        });
    }
    Ok(places)
}

impl Places {
    /// What `record` says of `network`, counting what cannot be used.
    fn place(&mut self, network: IpNet, record: &PlaceRecord<'_>) -> NetworkPlace {
        let country = record.country.as_ref().and_then(|c| c.iso_code);
        let mut subdivisions = [None; 2];
        if let Some(country) = country {
            let codes = record.subdivisions.iter().filter_map(|s| s.iso_code);
            for (slot, code) in subdivisions.iter_mut().zip(codes) {
                let full = format!(
                    "{}-{}",
                    country.to_ascii_uppercase(),
                    code.to_ascii_uppercase()
                );
                *slot = Subdivision::from_code(&full);
                if slot.is_none() {
                    *self.unknown_subdivisions.entry(full).or_insert(0) += 1;
                }
            }
        }
        let asn = record.autonomous_system_number.and_then(|n| {
            let asn = Asn::new(n);
            if asn.is_none() {
                *self.bad_asns.entry(n).or_insert(0) += 1;
            }
            asn
        });
        NetworkPlace {
            network,
            subdivisions,
            asn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/maxmind")
            .join(name)
    }

    fn at(places: &Places, addr: &str) -> Option<NetworkPlace> {
        let addr: std::net::IpAddr = addr.parse().unwrap();
        places
            .networks
            .iter()
            .filter(|p| p.network.contains(&addr))
            .max_by_key(|p| p.network.prefix_len())
            .copied()
    }

    #[test]
    fn a_city_database_gives_subdivisions_as_iso_3166_2_codes_largest_first() {
        let places = load(&fixture("GeoIP2-City-Test.mmdb")).unwrap();
        // MaxMind's source data: 2.125.160.216/29 is in England, West Berkshire.
        let place = at(&places, "2.125.160.218").unwrap();
        let codes: Vec<&str> = place
            .subdivisions
            .iter()
            .flatten()
            .map(|s| s.code())
            .collect();
        assert_eq!(codes, ["GB-ENG", "GB-WBK"]);
        assert_eq!(
            at(&places, "81.2.69.142").unwrap().subdivisions[0]
                .unwrap()
                .code(),
            "GB-ENG"
        );
        // Networks without subdivisions are not listed.
        assert!(places
            .networks
            .iter()
            .all(|p| p.subdivisions[0].is_some() || p.asn.is_some()));
    }

    #[test]
    fn an_asn_database_gives_networks() {
        let places = load(&fixture("GeoLite2-ASN-Test.mmdb")).unwrap();
        // MaxMind's source data: 1.0.0.0/24 is AS15169, 12.81.92.0/22 AS7018.
        assert_eq!(at(&places, "1.0.0.1").unwrap().asn.unwrap().number(), 15169);
        assert_eq!(
            at(&places, "12.81.92.9").unwrap().asn.unwrap().number(),
            7018
        );
        assert!(places.networks.iter().all(|p| p.subdivisions[0].is_none()));
        assert!(places.bad_asns.is_empty());
    }

    #[test]
    fn a_country_database_has_no_places_and_is_refused_by_name() {
        let err = load(&fixture("GeoLite2-Country-Test.mmdb")).unwrap_err();
        assert!(matches!(err, DataError::NoPlaces { .. }), "{err}");
        assert!(
            err.to_string().contains("autonomous_system_number"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_databases_are_refused() {
        for name in [
            "MaxMind-DB-test-broken-pointers-24.mmdb",
            "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        ] {
            assert!(load(&fixture(name)).is_err(), "{name}");
        }
    }
}
