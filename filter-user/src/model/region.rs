//! Regions a policy can name: a country (`UA`), an ISO 3166-2 subdivision (`UA-43`) or a
//! network by its autonomous system number (`AS4134`), and the rule between them: **the most
//! specific unit a policy names decides** (a network over a subdivision over a country).
//!
//! Subdivision codes come from Debian's iso-codes (`iso_3166-2.json`), kept in
//! `iso3166_2.tsv` beside this file and checked against the package by `cargo xtask lint`
//! (`cargo xtask docs` regenerates it), never typed by hand.

use std::{collections::BTreeMap, fmt};

use super::country::{Country, UnknownCountry};

/// `CODE<TAB>NAME` per line, sorted by code: ISO 3166-2 as Debian's iso-codes has it.
const ISO_3166_2: &str = include_str!("iso3166_2.tsv");

/// A subdivision: a country's part with an ISO 3166-2 code, such as `UA-43`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subdivision {
    /// The whole code, `UA-43`, as the table spells it.
    code: &'static str,
}

/// An autonomous system number, 1 to 4294967294 (0 and 4294967295 are reserved, RFC 7607
/// and RFC 7300).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Asn(u32);

/// A unit a policy names. Ordered most specific first, so a sorted set lists networks, then
/// subdivisions, then countries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    Network(Asn),
    Subdivision(Subdivision),
    Country(Country),
}

/// A region name that is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    #[error(transparent)]
    Country(#[from] UnknownCountry),
    #[error("unknown subdivision {input:?}{}", subdivision_hint(.country, .suggestions))]
    Subdivision {
        input: String,
        country: String,
        suggestions: Vec<String>,
    },
    #[error("network {input:?} is out of range: an AS number is 1 to 4294967294")]
    AsnRange { input: String },
}

fn subdivision_hint(country: &str, suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        format!(" ({country} has no such ISO 3166-2 code)")
    } else {
        format!(": did you mean {}?", suggestions.join(", "))
    }
}

impl Subdivision {
    /// The subdivision with this exact code (`UA-43`, upper case), if ISO 3166-2 has it.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        table()
            .find(|(c, _)| *c == code)
            .map(|(code, _)| Self { code })
    }

    #[must_use]
    pub fn code(self) -> &'static str {
        self.code
    }

    /// The country it belongs to.
    #[must_use]
    pub fn country(self) -> Country {
        Country::from_code(&self.code[..2]).expect("the table's codes start with a country")
    }

    /// Its name in ISO 3166-2 (the romanised local name, e.g. `Avtonomna Respublika Krym`).
    #[must_use]
    pub fn name(self) -> &'static str {
        table()
            .find(|(c, _)| *c == self.code)
            .map_or("", |(_, name)| name)
    }
}

impl Asn {
    /// A checked AS number.
    #[must_use]
    pub fn new(number: u32) -> Option<Self> {
        (1..u32::MAX).contains(&number).then_some(Self(number))
    }

    #[must_use]
    pub fn number(self) -> u32 {
        self.0
    }
}

impl Region {
    /// Parses what a user typed: `AS4134` (or `as4134`), `UA-43`, or a country code.
    pub fn parse(input: &str) -> Result<Self, RegionError> {
        let upper = input.trim().to_ascii_uppercase();
        if let Some(digits) = upper.strip_prefix("AS") {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return digits
                    .parse()
                    .ok()
                    .and_then(Asn::new)
                    .map(Self::Network)
                    .ok_or_else(|| RegionError::AsnRange {
                        input: input.to_owned(),
                    });
            }
        }
        if let Some((country, _)) = upper.split_once('-') {
            let country = Country::parse(country)?;
            return Subdivision::from_code(&upper)
                .map(Self::Subdivision)
                .ok_or_else(|| RegionError::Subdivision {
                    input: input.to_owned(),
                    country: country.code(),
                    suggestions: subdivision_suggestions(&upper),
                });
        }
        Ok(Self::Country(Country::parse(&upper)?))
    }

    /// The country a subdivision or country region belongs to; networks span countries.
    #[must_use]
    pub fn country(self) -> Option<Country> {
        match self {
            Self::Network(_) => None,
            Self::Subdivision(s) => Some(s.country()),
            Self::Country(c) => Some(c),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(asn) => write!(f, "AS{}", asn.0),
            Self::Subdivision(s) => f.write_str(s.code),
            Self::Country(c) => write!(f, "{c}"),
        }
    }
}

/// What the data says about one address: each part may be unknown. City databases give up
/// to two levels of subdivision, largest first (`GB-ENG`, then `GB-WBK`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub country: Option<Country>,
    pub subdivisions: [Option<Subdivision>; 2],
    pub asn: Option<Asn>,
}

/// The named region that decides for `place`, with what the policy says of it: its network
/// if the policy names it, else its smallest named subdivision, else its country if named;
/// `None` when the policy names none of them (the policy's default applies).
pub fn deciding<'a, V>(named: &'a BTreeMap<Region, V>, place: &Place) -> Option<(Region, &'a V)> {
    let candidates = [
        place.asn.map(Region::Network),
        place.subdivisions[1].map(Region::Subdivision),
        place.subdivisions[0].map(Region::Subdivision),
        place.country.map(Region::Country),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|region| named.get(&region).map(|value| (region, value)))
}

fn table() -> impl Iterator<Item = (&'static str, &'static str)> {
    ISO_3166_2.lines().filter_map(|line| line.split_once('\t'))
}

/// Codes of the same country one character away, then codes whose name starts with what
/// follows the dash (`UA-KRYM` finds `UA-43`).
fn subdivision_suggestions(upper: &str) -> Vec<String> {
    let (country, rest) = upper.split_once('-').unwrap_or((upper, ""));
    let prefix = format!("{country}-");
    let same_country = || table().filter(|(code, _)| code.starts_with(&prefix));
    let one_off = same_country().filter(|(code, _)| {
        code.len() == upper.len()
            && code
                .bytes()
                .zip(upper.bytes())
                .filter(|(a, b)| a != b)
                .count()
                == 1
    });
    let by_name = same_country().filter(|(_, name)| {
        rest.len() > 2
            && name
                .to_ascii_uppercase()
                .split(' ')
                .any(|word| word.starts_with(rest))
    });
    let mut out: Vec<String> = Vec::new();
    for (code, name) in one_off.chain(by_name) {
        let text = format!("{code} ({name})");
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out.truncate(6);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(text: &str) -> Region {
        Region::parse(text).unwrap()
    }

    #[test]
    fn parses_each_kind_and_prints_it_back() {
        for text in ["UA", "UA-43", "GB-ENG", "US-CA", "AS4134", "AS64500"] {
            assert_eq!(region(text).to_string(), text);
        }
        assert_eq!(region(" ua-43 ").to_string(), "UA-43");
        assert_eq!(region("as13335").to_string(), "AS13335");
        let crimea = Subdivision::from_code("UA-43").unwrap();
        assert_eq!(crimea.name(), "Avtonomna Respublika Krym");
        assert_eq!(crimea.country().code(), "UA");
        assert_eq!(region("UA-40").country().unwrap().code(), "UA");
        assert_eq!(region("AS1").country(), None);
    }

    #[test]
    fn bad_names_are_refused_with_what_was_meant() {
        let err = Region::parse("UA-99").unwrap_err();
        assert!(
            matches!(&err, RegionError::Subdivision { country, .. } if country == "UA"),
            "{err}"
        );
        let err = Region::parse("UA-KRYM").unwrap_err().to_string();
        assert!(err.contains("UA-43 (Avtonomna Respublika Krym)"), "{err}");
        let err = Region::parse("UA-44").unwrap_err().to_string();
        assert!(
            err.contains("did you mean") && err.contains("UA-43"),
            "{err}"
        );
        // The country part is checked first, with the country's own suggestions.
        assert!(matches!(
            Region::parse("UK-ENG"),
            Err(RegionError::Country(_))
        ));
        for bad in ["AS0", "AS4294967295", "AS4294967296", "AS99999999999"] {
            assert_eq!(
                Region::parse(bad),
                Err(RegionError::AsnRange { input: bad.into() }),
                "{bad}"
            );
        }
        assert!(Region::parse("ASX").is_err());
        assert!(Region::parse("").is_err());
    }

    #[test]
    fn the_table_is_iso_3166_2_sorted_with_every_code_once_under_a_known_country() {
        let codes: Vec<&str> = table().map(|(c, _)| c).collect();
        assert!(codes.len() > 5000, "{}", codes.len());
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        for code in codes {
            let (country, part) = code.split_once('-').unwrap();
            assert!(Country::parse(country).is_ok(), "{code}");
            assert!((1..=3).contains(&part.len()), "{code}");
        }
    }

    /// The two seed cases of the design, and the rule in between.
    #[test]
    fn the_most_specific_named_unit_decides() {
        let place = |country: &str, subdivision: Option<&str>, asn: Option<u32>| Place {
            country: Country::from_code(country),
            subdivisions: [subdivision.and_then(Subdivision::from_code), None],
            asn: asn.and_then(Asn::new),
        };
        // Serve Ukraine but not its sanctioned regions.
        let ukraine: BTreeMap<Region, &str> = [
            (region("UA"), "allow"),
            (region("UA-43"), "deny"),
            (region("UA-40"), "deny"),
            (region("UA-14"), "deny"),
            (region("UA-09"), "deny"),
        ]
        .into();
        let kyiv = place("UA", Some("UA-30"), Some(15895));
        let crimea = place("UA", Some("UA-43"), Some(15895));
        assert_eq!(deciding(&ukraine, &kyiv), Some((region("UA"), &"allow")));
        assert_eq!(
            deciding(&ukraine, &crimea),
            Some((region("UA-43"), &"deny"))
        );
        assert_eq!(deciding(&ukraine, &place("PL", None, Some(5617))), None);

        // Refuse one country but keep a partner network, wherever its addresses are.
        let cloud: BTreeMap<Region, &str> =
            [(region("CN"), "deny"), (region("AS64500"), "allow")].into();
        let partner_in_cn = place("CN", Some("CN-BJ"), Some(64500));
        let other_in_cn = place("CN", Some("CN-BJ"), Some(4134));
        assert_eq!(
            deciding(&cloud, &partner_in_cn),
            Some((region("AS64500"), &"allow"))
        );
        assert_eq!(
            deciding(&cloud, &other_in_cn),
            Some((region("CN"), &"deny"))
        );
        // A subdivision named under a network named: the network decides.
        let both: BTreeMap<Region, &str> =
            [(region("UA-43"), "deny"), (region("AS15895"), "allow")].into();
        assert_eq!(
            deciding(&both, &crimea),
            Some((region("AS15895"), &"allow"))
        );
        // Unknown parts never decide.
        assert_eq!(deciding(&cloud, &Place::default()), None);
        // Two levels: the smaller one named decides, else the larger.
        let berkshire = Place {
            country: Country::from_code("GB"),
            subdivisions: [
                Subdivision::from_code("GB-ENG"),
                Subdivision::from_code("GB-WBK"),
            ],
            asn: None,
        };
        let england: BTreeMap<Region, &str> =
            [(region("GB-ENG"), "deny"), (region("GB-WBK"), "allow")].into();
        assert_eq!(
            deciding(&england, &berkshire),
            Some((region("GB-WBK"), &"allow"))
        );
        let only_england: BTreeMap<Region, &str> = [(region("GB-ENG"), "deny")].into();
        assert_eq!(
            deciding(&only_england, &berkshire),
            Some((region("GB-ENG"), &"deny"))
        );
    }
}
