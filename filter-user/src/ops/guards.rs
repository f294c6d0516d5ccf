//! Validation guards of `update`: reasons to refuse new data that is complete and well-formed
//! but suspicious next to what is loaded. Each has its own exit code, so a cron job can tell
//! "the vendor shipped an empty file" from "half the world moved".

use std::collections::BTreeSet;

use crate::{
    compile::coverage::Coverage,
    compile::RegionSet,
    model::country::Country,
    model::policy::{Mode, Policy},
    ops::exit::Exit,
};

/// What the guards compare: one data set (and its policy) in numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub prefixes_v4: u64,
    pub prefixes_v6: u64,
    pub coverage: Coverage,
    pub countries: BTreeSet<Country>,
    /// Newest build date of the sources (Unix seconds).
    pub built: u64,
}

impl Summary {
    #[must_use]
    pub fn of(regions: &RegionSet, prefixes_v4: usize, prefixes_v6: usize) -> Self {
        Self {
            prefixes_v4: prefixes_v4 as u64,
            prefixes_v6: prefixes_v6 as u64,
            coverage: Coverage::of(regions),
            countries: regions.countries(),
            built: regions
                .sources
                .iter()
                .map(|s| s.build_epoch)
                .max()
                .unwrap_or(0),
        }
    }
}

/// A refusal; `--force` overrides every one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the new data holds no prefixes at all")]
    Empty,
    #[error("the new data changes {what} {} ({old} -> {new}); the limit is {limit:.1}% (--max-change)", by(*.change))]
    TooDifferent {
        what: &'static str,
        old: String,
        new: String,
        change: f64,
        limit: f64,
    },
    #[error("the policy names {} but the new data has no prefixes for {}", codes(.0), if .0.len() == 1 { "it" } else { "them" })]
    PolicyCountryMissing(Vec<Country>),
    #[error("the new data was built {new}, before the loaded data ({old})")]
    Older { old: String, new: String },
}

/// Every country a policy's rules name (the main rule's and each service's), with whether
/// it is named in an allow-list.
fn named(policy: &Policy) -> BTreeSet<(bool, Country)> {
    policy
        .rules()
        .into_iter()
        .flat_map(|(_, mode, countries)| countries.iter().map(move |c| (mode == Mode::Allow, *c)))
        .collect()
}

/// How much a compared number changed, in words: from zero, any change is no percentage.
fn by(change: f64) -> String {
    if change.is_finite() {
        format!("by {change:.1}%")
    } else {
        "from none".to_owned()
    }
}

fn codes(countries: &[Country]) -> String {
    countries
        .iter()
        .map(|c| c.code())
        .collect::<Vec<_>>()
        .join(",")
}

impl Refusal {
    /// The exit status of `update` for this refusal.
    #[must_use]
    pub fn exit(&self) -> Exit {
        match self {
            Self::Empty => Exit::Empty,
            Self::TooDifferent { .. } => Exit::TooDifferent,
            Self::PolicyCountryMissing(_) => Exit::CountryMissing,
            Self::Older { .. } => Exit::Older,
        }
    }

    #[must_use]
    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }
}

/// Every guard `new` trips against `old` (the loaded data, when known) and `old_policy` (the
/// loaded policy, when known). `max_change` is a share (0.1 = 10%).
#[must_use]
pub fn check(
    old: Option<&Summary>,
    old_policy: Option<&Policy>,
    new: &Summary,
    policy: &Policy,
    max_change: f64,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if new.prefixes_v4 + new.prefixes_v6 == 0 {
        refusals.push(Refusal::Empty);
    }
    // A country the loaded policy already named, in the same kind of list, without prefixes
    // in the loaded data was accepted (attach warns, or someone forced it): the change does not
    // make it worse, and refusing it would refuse every refresh after. Named in an allow-list
    // instead of a deny-list, it is a new decision (it drops that whole country).
    let accepted: BTreeSet<(bool, Country)> = match (old, old_policy) {
        (Some(old), Some(old_policy)) => named(old_policy)
            .into_iter()
            .filter(|(_, c)| !old.countries.contains(c))
            .collect(),
        _ => BTreeSet::new(),
    };
    let missing: Vec<Country> = named(policy)
        .into_iter()
        .filter(|named| !new.countries.contains(&named.1) && !accepted.contains(named))
        .map(|(_, c)| c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        refusals.push(Refusal::PolicyCountryMissing(missing));
    }
    let Some(old) = old else {
        return refusals;
    };
    let compared = [
        (
            "the IPv4 prefix count",
            old.prefixes_v4 as f64,
            new.prefixes_v4 as f64,
            false,
        ),
        (
            "the IPv6 prefix count",
            old.prefixes_v6 as f64,
            new.prefixes_v6 as f64,
            false,
        ),
        (
            "IPv4 address coverage",
            old.coverage.covered_v4 as f64,
            new.coverage.covered_v4 as f64,
            true,
        ),
        (
            "IPv6 address coverage",
            old.coverage.covered_v6 as f64,
            new.coverage.covered_v6 as f64,
            true,
        ),
    ];
    for (what, before, after, is_coverage) in compared {
        if before == 0.0 && after == 0.0 {
            continue;
        }
        let change = if before == 0.0 {
            f64::INFINITY
        } else {
            (after - before).abs() / before
        };
        if change > max_change {
            let show = |v: f64, public: f64| {
                if is_coverage {
                    format!("{:.2}% of public space", 100.0 * v / public)
                } else {
                    format!("{v:.0}")
                }
            };
            let public = if what.starts_with("IPv4") {
                old.coverage.public_v4 as f64
            } else {
                old.coverage.public_v6 as f64
            };
            refusals.push(Refusal::TooDifferent {
                what,
                old: show(before, public),
                new: show(after, public),
                change: 100.0 * change,
                limit: 100.0 * max_change,
            });
        }
    }
    if new.built < old.built {
        refusals.push(Refusal::Older {
            old: crate::sys::time::date(old.built),
            new: crate::sys::time::date(new.built),
        });
    }
    refusals
}

/// The largest change in the data, in percent, that `update` and the agent accept unforced.
pub const DEFAULT_MAX_CHANGE: f64 = 10.0;

/// `--max-change`: a finite, non-negative percentage (`10`, `2.5`, `10%`). NaN would switch the
/// guard off (no comparison with NaN is true) and a negative limit refuse every update.
pub fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match number.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        Ok(_) => Err("give a finite percentage of 0 or more, e.g. 10 or 2.5".to_owned()),
        Err(_) => Err("not a number; give a percentage such as 10 or 2.5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::Mode;

    fn summary(v4: u64, covered_v4: u64, codes: &[&str], built: u64) -> Summary {
        Summary {
            prefixes_v4: v4,
            prefixes_v6: 0,
            coverage: Coverage {
                covered_v4,
                public_v4: 1000,
                covered_v6: 0,
                public_v6: 1000,
            },
            countries: codes.iter().map(|c| Country::parse(c).unwrap()).collect(),
            built,
        }
    }

    fn deny(codes: &[&str]) -> Policy {
        Policy::new(
            Mode::Deny,
            codes.iter().map(|c| Country::parse(c).unwrap()).collect(),
        )
    }

    #[test]
    fn similar_newer_data_passes_every_guard() {
        let old = summary(100, 500, &["GB", "FR"], 10);
        let new = summary(109, 545, &["GB", "FR"], 11);
        assert_eq!(check(Some(&old), None, &new, &deny(&["GB"]), 0.1), vec![]);
    }

    #[test]
    fn each_guard_trips_with_its_own_exit_code() {
        let old = summary(100, 500, &["GB", "FR"], 10);
        let codes = |new: &Summary, policy: &Policy| -> Vec<u8> {
            check(Some(&old), None, new, policy, 0.1)
                .iter()
                .map(Refusal::exit_code)
                .collect()
        };
        assert_eq!(codes(&summary(0, 0, &[], 11), &deny(&[])), vec![5, 6, 6]);
        assert_eq!(codes(&summary(111, 500, &["GB"], 11), &deny(&[])), vec![6]);
        assert_eq!(codes(&summary(100, 440, &["GB"], 11), &deny(&[])), vec![6]);
        assert_eq!(
            codes(&summary(100, 500, &["FR"], 11), &deny(&["GB"])),
            vec![7]
        );
        assert_eq!(codes(&summary(100, 500, &["GB"], 9), &deny(&[])), vec![8]);
        // Without loaded data to compare, only the absolute guards apply.
        assert!(check(
            None,
            None,
            &summary(500, 900, &["GB"], 1),
            &deny(&["GB"]),
            0.1
        )
        .is_empty());
    }

    #[test]
    fn a_country_accepted_without_prefixes_is_refused_only_when_newly_named_or_lost() {
        let old = summary(100, 500, &["GB", "FR"], 10);
        let missing = |old_policy: &Policy, new: &Summary, policy: &Policy| -> Vec<u8> {
            check(Some(&old), Some(old_policy), new, policy, 0.1)
                .iter()
                .map(Refusal::exit_code)
                .collect()
        };
        let refreshed = summary(100, 500, &["GB", "FR"], 11);
        // ZW was named and absent before: a refresh that still lacks it goes ahead.
        assert_eq!(
            missing(&deny(&["GB", "ZW"]), &refreshed, &deny(&["GB", "ZW"])),
            Vec::<u8>::new()
        );
        // Newly named while absent: refused, as before.
        assert_eq!(
            missing(&deny(&["GB"]), &refreshed, &deny(&["GB", "ZW"])),
            vec![7]
        );
        // Present before, lost by the new data: refused.
        let lost_fr = summary(100, 500, &["GB"], 11);
        assert_eq!(missing(&deny(&["FR"]), &lost_fr, &deny(&["FR"])), vec![7]);
    }

    #[test]
    fn an_allow_list_naming_an_accepted_country_is_a_new_decision() {
        let old = summary(100, 500, &["GB", "FR"], 10);
        let new = summary(100, 500, &["GB", "FR"], 11);
        let mut allow = deny(&["ZW"]);
        allow.mode = Mode::Allow;
        let codes: Vec<u8> = check(Some(&old), Some(&deny(&["GB", "ZW"])), &new, &allow, 0.1)
            .iter()
            .map(Refusal::exit_code)
            .collect();
        assert_eq!(codes, vec![7]);
    }

    #[test]
    fn countries_of_services_are_guarded_like_the_main_rule() {
        use crate::model::scope::{parse_ports, Scope, Service};
        let with_service = |codes: &[&str]| {
            let mut policy = deny(&["GB"]);
            policy.scope = Scope::Services {
                services: vec![Service {
                    name: "web".into(),
                    ports: parse_ports("tcp/443").unwrap(),
                    mode: Mode::Allow,
                    countries: codes.iter().map(|c| Country::parse(c).unwrap()).collect(),
                }],
                other_judged: true,
            };
            policy
        };
        let old = summary(100, 500, &["GB", "FR", "SE"], 10);
        let text = |old_policy: &Policy, new: &Summary, policy: &Policy| -> Vec<String> {
            check(Some(&old), Some(old_policy), new, policy, 0.1)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        // Newly named by a service: refused.
        let same = summary(100, 500, &["GB", "FR", "SE"], 11);
        let refused = text(&with_service(&["SE"]), &same, &with_service(&["SE", "ZM"]));
        assert!(
            refused.len() == 1 && refused[0].contains("names ZM"),
            "{refused:?}"
        );
        // Lost by the data while a service allows it: refused.
        let lost_fr = summary(100, 500, &["GB", "SE"], 11);
        let refused = text(
            &with_service(&["FR", "SE"]),
            &lost_fr,
            &with_service(&["FR", "SE"]),
        );
        assert!(
            refused.len() == 1 && refused[0].contains("names FR"),
            "{refused:?}"
        );
    }

    #[test]
    fn messages_say_what_changed_and_how_to_override() {
        let old = summary(100, 500, &["GB"], 10);
        let refusals = check(
            Some(&old),
            None,
            &summary(200, 500, &["GB"], 10),
            &deny(&["GB", "FR"]),
            0.1,
        );
        let text: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("names FR") && text[0].contains("no prefixes for it"),
            "{text:?}"
        );
        assert!(
            text[1].contains("IPv4 prefix count by 100.0% (100 -> 200)"),
            "{text:?}"
        );
        assert!(text[1].contains("--max-change"), "{text:?}");
        // From nothing, a change has no percentage.
        let from_none = check(
            Some(&summary(0, 500, &["GB"], 10)),
            None,
            &summary(5, 500, &["GB"], 10),
            &deny(&["GB"]),
            0.1,
        );
        let text = from_none[0].to_string();
        assert!(
            text.contains("IPv4 prefix count from none (0 -> 5)"),
            "{text}"
        );
    }
}
