//! Named groups of countries that `--allow`/`--deny` and policy files accept besides codes:
//! the continents, `EU` (the European Union) and groups a policy file defines.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::country::{Country, UnknownCountry};

/// Continents as MaxMind's `continent.code` assigns them (GeoNames' country table), by name.
const CONTINENTS: &[(&str, &str)] = &[
    (
        "africa",
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA \
         MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW",
    ),
    ("antarctica", "AQ BV GS HM TF"),
    (
        "asia",
        "AE AF AM AP AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA \
         LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
    ),
    (
        "europe",
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES EU FI FO FR GB GG GI GR HR HU IE IM IS IT \
         JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK",
    ),
    (
        "north-america",
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX \
         NI PA PM PR SV SX TC TT US VC VG VI",
    ),
    (
        "oceania",
        "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    ),
    ("south-america", "AR BO BR CL CO EC FK GF GY PE PY SR UY VE"),
];

/// The 27 member states of the European Union, plus the `EU` code registries use for
/// networks assigned to the Union as a whole.
const EUROPEAN_UNION: &str =
    "AT BE BG CY CZ DE DK EE ES EU FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK";

/// Why a list item is neither a country nor a group.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error(transparent)]
    Country(#[from] UnknownCountry),
    #[error("unknown group {name:?}; known groups: {known}")]
    UnknownGroup { name: String, known: String },
    #[error("group name {0:?} must be at least 3 letters, digits, '-' or '_' (two letters mean a country code)")]
    BadName(String),
    #[error("group {0:?} is built in; choose another name")]
    Shadows(String),
    #[error("group {0:?} is empty")]
    Empty(String),
    #[error("group {0:?} is defined twice (names are not case-sensitive); keep one")]
    Twice(String),
}

/// Built-in groups plus the user's.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    user: BTreeMap<String, BTreeSet<Country>>,
}

impl Groups {
    /// Adds user-defined groups; members may be codes or built-in groups.
    pub fn with_user(defined: &BTreeMap<String, Vec<String>>) -> Result<Self, GroupError> {
        let mut groups = Self::default();
        for (name, members) in defined {
            let key = name.to_ascii_lowercase();
            if key.len() < 3
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(GroupError::BadName(name.clone()));
            }
            if builtin(&key).is_some() {
                return Err(GroupError::Shadows(name.clone()));
            }
            let mut countries = BTreeSet::new();
            for member in members {
                countries.extend(Self::default().resolve(member)?);
            }
            if countries.is_empty() {
                return Err(GroupError::Empty(name.clone()));
            }
            if groups.user.insert(key, countries).is_some() {
                return Err(GroupError::Twice(name.clone()));
            }
        }
        Ok(groups)
    }

    /// One list item: a country code, `EU`, a continent or a user group.
    pub fn resolve(&self, item: &str) -> Result<BTreeSet<Country>, GroupError> {
        let item = item.trim();
        let key = item.to_ascii_lowercase();
        if key.len() == 2 && key != "eu" {
            return Ok(BTreeSet::from([Country::parse(item)?]));
        }
        if let Some(members) = self.user.get(&key) {
            return Ok(members.clone());
        }
        if let Some(members) = builtin(&key) {
            return Ok(codes(members));
        }
        Err(GroupError::UnknownGroup {
            name: item.to_owned(),
            known: self.names().join(", "),
        })
    }

    /// A comma-separated list of codes and groups, e.g. `"europe,US,sanctioned"`.
    pub fn resolve_list(&self, list: &str) -> Result<BTreeSet<Country>, GroupError> {
        let mut out = BTreeSet::new();
        for item in list.split(',').filter(|s| !s.trim().is_empty()) {
            out.extend(self.resolve(item)?);
        }
        Ok(out)
    }

    /// Every group name, built-in first.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        std::iter::once("EU".to_owned())
            .chain(CONTINENTS.iter().map(|(name, _)| (*name).to_owned()))
            .chain(self.user.keys().cloned())
            .collect()
    }
}

fn builtin(key: &str) -> Option<&'static str> {
    if key == "eu" || key == "european-union" {
        return Some(EUROPEAN_UNION);
    }
    CONTINENTS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, members)| *members)
}

fn codes(members: &str) -> BTreeSet<Country> {
    members
        .split_whitespace()
        .map(|c| Country::parse(c).expect("built-in groups hold valid codes"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_defined_twice_in_different_case_is_refused() {
        let defined = BTreeMap::from([
            ("Sanctioned".to_owned(), vec!["JP".to_owned()]),
            ("sanctioned".to_owned(), vec!["GB".to_owned()]),
        ]);
        let err = Groups::with_user(&defined).unwrap_err().to_string();
        assert!(err.contains("defined twice"), "{err}");
    }

    fn set(codes_: &str) -> BTreeSet<Country> {
        codes(codes_)
    }

    #[test]
    fn every_country_is_on_exactly_one_continent() {
        let mut seen: BTreeMap<Country, &str> = BTreeMap::new();
        for (name, members) in CONTINENTS {
            for c in codes(members) {
                assert!(seen.insert(c, name).is_none(), "{c} is on two continents");
            }
        }
        // Every known code except "unknown" (ZZ) has a continent.
        let known = (1..=filter_common::COUNTRY_SLOTS as u16 - 1)
            .filter_map(Country::from_index)
            .filter(|c| c.name().is_some() && c.code() != "ZZ");
        for c in known {
            assert!(seen.contains_key(&c), "{c} has no continent");
        }
    }

    #[test]
    fn continents_agree_with_maxmind_test_data() {
        let json = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/maxmind/GeoIP2-Country-Test.json"),
        )
        .unwrap();
        let records: Vec<BTreeMap<String, serde_json::Value>> =
            serde_json::from_str(&json).unwrap();
        let names = [
            ("AF", "africa"),
            ("AN", "antarctica"),
            ("AS", "asia"),
            ("EU", "europe"),
            ("NA", "north-america"),
            ("OC", "oceania"),
            ("SA", "south-america"),
        ];
        let groups = Groups::default();
        let mut checked = 0;
        for record in records.iter().flat_map(BTreeMap::values) {
            let (Some(country), Some(continent)) = (
                record["country"]["iso_code"].as_str(),
                record["continent"]["code"].as_str(),
            ) else {
                continue;
            };
            let name = names.iter().find(|(c, _)| *c == continent).unwrap().1;
            let members = groups.resolve(name).unwrap();
            assert!(
                members.contains(&Country::parse(country).unwrap()),
                "{country} in {name}"
            );
            checked += 1;
        }
        assert!(checked > 100);
    }

    #[test]
    fn lists_mix_codes_groups_and_user_groups() {
        let defined = BTreeMap::from([(
            "Sanctioned".to_owned(),
            vec!["CU".to_owned(), "IR".to_owned(), "KP".to_owned()],
        )]);
        let groups = Groups::with_user(&defined).unwrap();
        let got = groups.resolve_list("sanctioned, us").unwrap();
        assert_eq!(got, set("CU IR KP US"));
        assert_eq!(groups.resolve_list("de, fr,NL").unwrap(), set("DE FR NL"));
        let GroupError::Country(bad) = groups.resolve_list("de,XY").unwrap_err() else {
            panic!("XY is a bad code")
        };
        assert_eq!(bad.input, "XY");
        assert_eq!(groups.resolve("EU").unwrap().len(), 28);
        assert!(groups
            .resolve("europe")
            .unwrap()
            .contains(&Country::parse("CH").unwrap()));
        assert!(!groups
            .resolve("eu")
            .unwrap()
            .contains(&Country::parse("CH").unwrap()));
    }

    #[test]
    fn bad_items_and_definitions_are_explained() {
        let groups = Groups::default();
        let err = groups.resolve("erope").unwrap_err().to_string();
        assert!(
            err.contains("unknown group \"erope\"") && err.contains("europe"),
            "{err}"
        );
        assert!(matches!(groups.resolve("UK"), Err(GroupError::Country(_))));
        let bad = |name: &str, members: &[&str]| {
            let defined = BTreeMap::from([(
                name.to_owned(),
                members.iter().map(|m| (*m).to_owned()).collect(),
            )]);
            Groups::with_user(&defined).unwrap_err()
        };
        assert!(matches!(bad("ab", &["DE"]), GroupError::BadName(_)));
        assert!(matches!(bad("Asia", &["DE"]), GroupError::Shadows(_)));
        assert!(matches!(bad("nordic", &[]), GroupError::Empty(_)));
        assert!(matches!(
            bad("nordic", &["DK", "XX"]),
            GroupError::Country(_)
        ));
    }
}
