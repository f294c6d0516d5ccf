//! ISO 3166-1 alpha-2 country codes: validation, names and "did you mean" suggestions.

use std::fmt;

use filter_common::{country_code, country_index};

/// Codes the data sources use beyond ISO 3166-1 (user-assigned or exceptionally reserved).
const SPECIAL: &[(&str, &str)] = &[
    ("AP", "Asia/Pacific region (registry)"),
    ("EU", "European Union (registry)"),
    ("XK", "Kosovo"),
    ("ZZ", "Unknown or unassigned"),
];

const ISO_3166: &str = "AD Andorra|AE United Arab Emirates|AF Afghanistan|AG Antigua and Barbuda|\
AI Anguilla|AL Albania|AM Armenia|AO Angola|AQ Antarctica|AR Argentina|AS American Samoa|AT Austria|\
AU Australia|AW Aruba|AX Aland Islands|AZ Azerbaijan|BA Bosnia and Herzegovina|BB Barbados|\
BD Bangladesh|BE Belgium|BF Burkina Faso|BG Bulgaria|BH Bahrain|BI Burundi|BJ Benin|\
BL Saint Barthelemy|BM Bermuda|BN Brunei|BO Bolivia|BQ Bonaire, Sint Eustatius and Saba|BR Brazil|\
BS Bahamas|BT Bhutan|BV Bouvet Island|BW Botswana|BY Belarus|BZ Belize|CA Canada|\
CC Cocos (Keeling) Islands|CD Congo (Democratic Republic)|CF Central African Republic|CG Congo|\
CH Switzerland|CI Cote d'Ivoire|CK Cook Islands|CL Chile|CM Cameroon|CN China|CO Colombia|\
CR Costa Rica|CU Cuba|CV Cabo Verde|CW Curacao|CX Christmas Island|CY Cyprus|CZ Czechia|DE Germany|\
DJ Djibouti|DK Denmark|DM Dominica|DO Dominican Republic|DZ Algeria|EC Ecuador|EE Estonia|EG Egypt|\
EH Western Sahara|ER Eritrea|ES Spain|ET Ethiopia|FI Finland|FJ Fiji|FK Falkland Islands|\
FM Micronesia|FO Faroe Islands|FR France|GA Gabon|GB United Kingdom|GD Grenada|GE Georgia|\
GF French Guiana|GG Guernsey|GH Ghana|GI Gibraltar|GL Greenland|GM Gambia|GN Guinea|GP Guadeloupe|\
GQ Equatorial Guinea|GR Greece|GS South Georgia and the South Sandwich Islands|GT Guatemala|GU Guam|\
GW Guinea-Bissau|GY Guyana|HK Hong Kong|HM Heard Island and McDonald Islands|HN Honduras|HR Croatia|\
HT Haiti|HU Hungary|ID Indonesia|IE Ireland|IL Israel|IM Isle of Man|IN India|\
IO British Indian Ocean Territory|IQ Iraq|IR Iran|IS Iceland|IT Italy|JE Jersey|JM Jamaica|\
JO Jordan|JP Japan|KE Kenya|KG Kyrgyzstan|KH Cambodia|KI Kiribati|KM Comoros|KN Saint Kitts and Nevis|\
KP North Korea|KR South Korea|KW Kuwait|KY Cayman Islands|KZ Kazakhstan|LA Laos|LB Lebanon|\
LC Saint Lucia|LI Liechtenstein|LK Sri Lanka|LR Liberia|LS Lesotho|LT Lithuania|LU Luxembourg|\
LV Latvia|LY Libya|MA Morocco|MC Monaco|MD Moldova|ME Montenegro|MF Saint Martin (French part)|\
MG Madagascar|MH Marshall Islands|MK North Macedonia|ML Mali|MM Myanmar|MN Mongolia|MO Macao|\
MP Northern Mariana Islands|MQ Martinique|MR Mauritania|MS Montserrat|MT Malta|MU Mauritius|\
MV Maldives|MW Malawi|MX Mexico|MY Malaysia|MZ Mozambique|NA Namibia|NC New Caledonia|NE Niger|\
NF Norfolk Island|NG Nigeria|NI Nicaragua|NL Netherlands|NO Norway|NP Nepal|NR Nauru|NU Niue|\
NZ New Zealand|OM Oman|PA Panama|PE Peru|PF French Polynesia|PG Papua New Guinea|PH Philippines|\
PK Pakistan|PL Poland|PM Saint Pierre and Miquelon|PN Pitcairn|PR Puerto Rico|PS Palestine|\
PT Portugal|PW Palau|PY Paraguay|QA Qatar|RE Reunion|RO Romania|RS Serbia|RU Russia|RW Rwanda|\
SA Saudi Arabia|SB Solomon Islands|SC Seychelles|SD Sudan|SE Sweden|SG Singapore|SH Saint Helena|\
SI Slovenia|SJ Svalbard and Jan Mayen|SK Slovakia|SL Sierra Leone|SM San Marino|SN Senegal|\
SO Somalia|SR Suriname|SS South Sudan|ST Sao Tome and Principe|SV El Salvador|\
SX Sint Maarten (Dutch part)|SY Syria|SZ Eswatini|TC Turks and Caicos Islands|TD Chad|\
TF French Southern Territories|TG Togo|TH Thailand|TJ Tajikistan|TK Tokelau|TL Timor-Leste|\
TM Turkmenistan|TN Tunisia|TO Tonga|TR Turkey|TT Trinidad and Tobago|TV Tuvalu|TW Taiwan|\
TZ Tanzania|UA Ukraine|UG Uganda|UM United States Minor Outlying Islands|US United States|\
UY Uruguay|UZ Uzbekistan|VA Holy See|VC Saint Vincent and the Grenadines|VE Venezuela|\
VG Virgin Islands (British)|VI Virgin Islands (U.S.)|VN Vietnam|VU Vanuatu|WF Wallis and Futuna|\
WS Samoa|YE Yemen|YT Mayotte|ZA South Africa|ZM Zambia|ZW Zimbabwe";

/// Common mistakes that are not one letter away from the right code.
const ALIASES: &[(&str, &str)] = &[("UK", "GB"), ("EL", "GR")];

/// A validated two-letter country code, stored as its kernel-side index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country(u16);

/// A code the user typed that is not a known country.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown country code {input:?}{}", suggestion_text(.suggestions))]
pub struct UnknownCountry {
    pub input: String,
    pub suggestions: Vec<String>,
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        " (expected an ISO 3166-1 alpha-2 code such as DE or US)".to_owned()
    } else {
        format!(": did you mean {}?", suggestions.join(", "))
    }
}

impl Country {
    /// Parses a code typed by the user: case-insensitive, must be a known code.
    pub fn parse(input: &str) -> Result<Self, UnknownCountry> {
        let upper = input.trim().to_ascii_uppercase();
        if let Some(country) = Self::from_code(&upper).filter(|c| c.name().is_some()) {
            return Ok(country);
        }
        Err(UnknownCountry {
            input: input.to_owned(),
            suggestions: suggestions(&upper),
        })
    }

    /// Any `[A-Z]{2}` code, known or not: data sources may carry codes newer than this table.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        let bytes: [u8; 2] = code.as_bytes().try_into().ok()?;
        country_index(bytes).map(Self)
    }

    /// The country with this kernel index; `None` for unknown space.
    #[must_use]
    pub fn from_index(index: u16) -> Option<Self> {
        country_code(index).map(|_| Self(index))
    }

    #[must_use]
    pub fn index(self) -> u16 {
        self.0
    }

    #[must_use]
    pub fn code(self) -> String {
        let [a, b] = country_code(self.0).expect("Country always holds a valid index");
        String::from_utf8_lossy(&[a, b]).into_owned()
    }

    /// English short name, for known codes.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        let code = self.code();
        known().find(|(c, _)| *c == code).map(|(_, name)| name)
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    ISO_3166
        .split('|')
        .map(|entry| entry.split_at(2))
        .map(|(code, name)| (code, &name[1..]))
        .chain(SPECIAL.iter().copied())
}

/// The alias of a common mistake, known codes one letter away (same first letter first: a slip
/// on the second key is the commoner typo), and codes whose name starts with the input.
fn suggestions(upper: &str) -> Vec<String> {
    if !upper.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') {
        return vec![];
    }
    let aliases = ALIASES
        .iter()
        .filter(|(wrong, _)| *wrong == upper)
        .map(|(_, right)| *right);
    let one_letter_off = |same_first: bool| {
        known().map(|(code, _)| code).filter(move |code| {
            upper.len() == 2
                && (code[..1] == upper[..1]) == same_first
                && code
                    .chars()
                    .zip(upper.chars())
                    .filter(|(a, b)| a != b)
                    .count()
                    == 1
        })
    };
    let by_name = known()
        .filter(|(_, name)| upper.len() > 2 && name.to_ascii_uppercase().starts_with(upper))
        .map(|(code, _)| code);
    let mut out: Vec<String> = Vec::new();
    for code in aliases
        .chain(one_letter_off(true))
        .chain(one_letter_off(false))
        .chain(by_name)
    {
        if !out.iter().any(|c| c == code) {
            out.push(code.to_owned());
        }
    }
    out.truncate(10);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_codes_case_insensitively() {
        assert_eq!(Country::parse("de").unwrap().code(), "DE");
        assert_eq!(
            Country::parse(" GB ").unwrap().name(),
            Some("United Kingdom")
        );
        assert_eq!(Country::parse("XK").unwrap().name(), Some("Kosovo"));
    }

    #[test]
    fn table_has_every_iso_code_once() {
        let codes: Vec<_> = known().map(|(c, _)| c).collect();
        assert_eq!(codes.len(), 249 + SPECIAL.len());
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len());
        assert!(codes.iter().all(|c| Country::from_code(c).is_some()));
    }

    #[test]
    fn typo_lists_close_matches() {
        let err = Country::parse("UK").unwrap_err();
        assert_eq!(err.suggestions.first().map(String::as_str), Some("GB"));
        assert!(err.suggestions.iter().any(|c| c == "US"), "{err}");
        let err = Country::parse("germany").unwrap_err();
        assert_eq!(err.suggestions, vec!["DE".to_owned()]);
        assert!(err.to_string().contains("did you mean DE?"));
    }

    #[test]
    fn rejects_non_codes_with_a_hint() {
        let err = Country::parse("1x").unwrap_err();
        assert!(err.to_string().contains("ISO 3166-1 alpha-2"), "{err}");
        assert!(Country::parse("QQ").is_err());
    }
}
