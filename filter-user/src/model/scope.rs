//! Which packets the country policy judges: destination ports (`--ports`) and services (a
//! policy file's `[[service]]` tables, each with its own countries).

use std::{collections::BTreeSet, fmt, str::FromStr};

use filter_common::{
    PortChunk, MAX_SERVICES, PORTS_UDP, PORT_CHUNKS, ROW_FIRST_SERVICE, ROW_MAIN, ROW_OUT_OF_SCOPE,
};
use serde::{Deserialize, Serialize};

use crate::{model::country::Country, model::policy::Mode};

/// A transport protocol with ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// IP protocol number.
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// `tcp/443` or `udp/8000-8100`: destination ports of one protocol, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub proto: Proto,
    pub first: u16,
    pub last: u16,
}

/// A port list that does not parse, or overlaps.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("{0:?} is not a port range: give PROTO/PORT or PROTO/FIRST-LAST, e.g. tcp/443 or udp/8000-8100 (PROTO is tcp or udp)")]
    Syntax(String),
    #[error("{0:?}: port 0 is not a destination port; ports are 1-65535")]
    PortZero(String),
    #[error("{0:?}: the range is reversed; did you mean {1}?")]
    Reversed(String, String),
    #[error("the port list is empty: give at least one, e.g. tcp/443")]
    Empty,
    #[error(
        "{port} is in service {first:?} and in service {second:?}: a port belongs to one service"
    )]
    Overlap {
        port: String,
        first: String,
        second: String,
    },
    #[error("service name {0:?} is not valid: use 1-32 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("two services are named {0:?}")]
    DuplicateName(String),
    #[error("{0} services; at most {MAX_SERVICES} fit")]
    TooMany(usize),
    #[error("service {0:?} has an empty country list")]
    NoCountries(String),
}

impl FromStr for PortRange {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, ScopeError> {
        let syntax = || ScopeError::Syntax(text.to_owned());
        let (proto, ports) = text.trim().split_once('/').ok_or_else(syntax)?;
        let proto = match proto.trim().to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(syntax()),
        };
        let port = |p: &str| {
            let p = p.trim();
            // Digits only: `u16::from_str` would take a leading `+`.
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            p.parse::<u16>().map_err(|_| syntax())
        };
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        if first == 0 {
            return Err(ScopeError::PortZero(text.to_owned()));
        }
        if first > last {
            let fixed = PortRange {
                proto,
                first: last,
                last: first,
            };
            return Err(ScopeError::Reversed(text.to_owned(), fixed.to_string()));
        }
        Ok(Self { proto, first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}/{}", self.proto.name(), self.first)
        } else {
            write!(f, "{}/{}-{}", self.proto.name(), self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A comma-separated port list (`--ports`), sorted and deduplicated.
pub fn parse_ports(list: &str) -> Result<Vec<PortRange>, ScopeError> {
    let ports: BTreeSet<PortRange> = list
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if ports.is_empty() {
        return Err(ScopeError::Empty);
    }
    Ok(merge(ports.into_iter().collect()))
}

/// Sorted ranges with the overlapping and touching ones of a protocol joined.
#[must_use]
pub fn merge(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last)
                if last.proto == r.proto && u32::from(r.first) <= u32::from(last.last) + 1 =>
            {
                last.last = last.last.max(r.last);
            }
            _ => out.push(r),
        }
    }
    out
}

/// `tcp/443,udp/443`.
#[must_use]
pub fn ports_text(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A named set of ports judged by its own countries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub ports: Vec<PortRange>,
    pub mode: Mode,
    pub countries: BTreeSet<Country>,
}

/// Which packets the policy judges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The main rule judges every packet.
    #[default]
    Host,
    /// The main rule judges packets to these ports; everything else passes, out of scope.
    Ports(Vec<PortRange>),
    /// Each service's rule judges packets to its ports; other packets are judged by the main
    /// rule when `other_judged`, otherwise pass out of scope.
    Services {
        services: Vec<Service>,
        other_judged: bool,
    },
}

/// Where the program reads each packet's policy row.
pub struct PortTable {
    /// `PORT_CHUNKS` chunks: TCP ports 0-65535, then UDP.
    pub chunks: Vec<PortChunk>,
    /// Row for IP packets without ports (ICMP, ESP, ...).
    pub portless_row: u8,
}

impl Scope {
    /// Checks names, sizes and overlaps; every error names what to fix.
    pub fn validate(&self) -> Result<(), ScopeError> {
        match self {
            Self::Host => Ok(()),
            Self::Ports(ports) if ports.is_empty() => Err(ScopeError::Empty),
            Self::Ports(_) => Ok(()),
            Self::Services { services, .. } => {
                if services.len() > MAX_SERVICES {
                    return Err(ScopeError::TooMany(services.len()));
                }
                let mut names = BTreeSet::new();
                for service in services {
                    let name = &service.name;
                    let valid = (1..=32).contains(&name.len())
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !valid {
                        return Err(ScopeError::BadName(name.clone()));
                    }
                    if !names.insert(name.as_str()) {
                        return Err(ScopeError::DuplicateName(name.clone()));
                    }
                    if service.ports.is_empty() {
                        return Err(ScopeError::Empty);
                    }
                    if service.countries.is_empty() {
                        return Err(ScopeError::NoCountries(name.clone()));
                    }
                }
                for (i, a) in services.iter().enumerate() {
                    for b in &services[i + 1..] {
                        if let Some(port) = overlap(&a.ports, &b.ports) {
                            return Err(ScopeError::Overlap {
                                port,
                                first: a.name.clone(),
                                second: b.name.clone(),
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The ports array and the row of portless packets; `None` for [`Scope::Host`], which
    /// reads no transport header.
    #[must_use]
    pub fn port_table(&self) -> Option<PortTable> {
        let (named, other): (Vec<(&[PortRange], u8)>, u8) = match self {
            Self::Host => return None,
            Self::Ports(ports) => (vec![(ports, ROW_MAIN)], ROW_OUT_OF_SCOPE),
            Self::Services {
                services,
                other_judged,
            } => (
                (ROW_FIRST_SERVICE..)
                    .zip(services)
                    .map(|(row, s)| (s.ports.as_slice(), row))
                    .collect(),
                if *other_judged {
                    ROW_MAIN
                } else {
                    ROW_OUT_OF_SCOPE
                },
            ),
        };
        let mut rows = vec![other; PORT_CHUNKS as usize * 256];
        for (ports, row) in named {
            for range in ports {
                let base = match range.proto {
                    Proto::Tcp => 0,
                    Proto::Udp => PORTS_UDP as usize,
                };
                rows[base + usize::from(range.first)..=base + usize::from(range.last)].fill(row);
            }
        }
        let chunks = rows
            .chunks_exact(256)
            .map(|c| c.try_into().expect("256 entries"))
            .collect();
        Some(PortTable {
            chunks,
            portless_row: other,
        })
    }

    /// Every scoped port range, for the ephemeral-range warning.
    #[must_use]
    pub fn port_ranges(&self) -> Vec<PortRange> {
        match self {
            Self::Host => vec![],
            Self::Ports(ports) => ports.clone(),
            Self::Services { services, .. } => {
                services.iter().flat_map(|s| s.ports.clone()).collect()
            }
        }
    }

    /// `whole host`, `ports tcp/443`, or the services in one line.
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::Host => "scope whole host".to_owned(),
            Self::Ports(ports) => format!("scope ports {}", ports_text(ports)),
            Self::Services {
                services,
                other_judged,
            } => {
                let each: Vec<String> = services
                    .iter()
                    .map(|s| {
                        let codes: Vec<String> = s.countries.iter().map(|c| c.code()).collect();
                        format!(
                            "{} {} {} {}",
                            s.name,
                            ports_text(&s.ports),
                            mode_name(s.mode),
                            codes.join(",")
                        )
                    })
                    .collect();
                format!(
                    "services [{}]; other traffic {}",
                    each.join("; "),
                    if *other_judged {
                        "judged by the main rule"
                    } else {
                        "out of scope"
                    }
                )
            }
        }
    }
}

#[must_use]
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Allow => "allow",
        Mode::Deny => "deny",
    }
}

/// The first port two lists share, as `tcp/443`.
fn overlap(a: &[PortRange], b: &[PortRange]) -> Option<String> {
    a.iter().find_map(|x| {
        b.iter().find_map(|y| {
            let first = x.first.max(y.first);
            (x.proto == y.proto && first <= x.last.min(y.last))
                .then(|| format!("{}/{first}", x.proto.name()))
        })
    })
}

/// Scoped ports that fall in the host's ephemeral range (`net.ipv4.ip_local_port_range`,
/// which IPv6 shares): replies to the host's own connections arrive on those ports and would
/// be judged.
#[must_use]
pub fn ephemeral_overlap(scope: &Scope, range: (u16, u16)) -> Vec<PortRange> {
    scope
        .port_ranges()
        .into_iter()
        .filter(|r| r.first <= range.1 && range.0 <= r.last)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_print_and_refuse_with_a_reason() {
        let r: PortRange = "TCP/8000-8100".parse().unwrap();
        assert_eq!(r.to_string(), "tcp/8000-8100");
        assert_eq!(
            "udp/443".parse::<PortRange>().unwrap().to_string(),
            "udp/443"
        );
        for bad in [
            "443",
            "icmp/1",
            "tcp/",
            "tcp/+443",
            "tcp/70000",
            "tcp/1-2-3",
            "tcp/a",
        ] {
            assert!(
                matches!(bad.parse::<PortRange>(), Err(ScopeError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "tcp/0".parse::<PortRange>(),
            Err(ScopeError::PortZero("tcp/0".to_owned()))
        );
        assert_eq!(
            "tcp/90-80".parse::<PortRange>().unwrap_err().to_string(),
            "\"tcp/90-80\": the range is reversed; did you mean tcp/80-90?"
        );
        assert_eq!(
            ports_text(&parse_ports("udp/443, tcp/443,tcp/443").unwrap()),
            "tcp/443,udp/443"
        );
        assert_eq!(parse_ports(" , "), Err(ScopeError::Empty));
        assert_eq!(
            ports_text(&parse_ports("tcp/440-450,tcp/445,tcp/451,udp/1-2,tcp/500").unwrap()),
            "tcp/440-451,tcp/500,udp/1-2"
        );
    }

    fn service(name: &str, ports: &str) -> Service {
        Service {
            name: name.to_owned(),
            ports: parse_ports(ports).unwrap(),
            mode: Mode::Allow,
            countries: [Country::parse("DE").unwrap()].into(),
        }
    }

    #[test]
    fn services_must_not_share_a_port() {
        let scope = Scope::Services {
            services: vec![
                service("api", "tcp/400-500"),
                service("web", "udp/443,tcp/450"),
            ],
            other_judged: false,
        };
        assert_eq!(
            scope.validate().unwrap_err().to_string(),
            "tcp/450 is in service \"api\" and in service \"web\": a port belongs to one service"
        );
        let fine = Scope::Services {
            services: vec![service("api", "tcp/443"), service("dns", "udp/443")],
            other_judged: false,
        };
        fine.validate().unwrap();
        let bad_name = Scope::Services {
            services: vec![service("../x", "tcp/1")],
            other_judged: false,
        };
        assert!(matches!(bad_name.validate(), Err(ScopeError::BadName(_))));
    }

    #[test]
    fn the_port_table_picks_each_services_row() {
        let scope = Scope::Services {
            services: vec![service("api", "tcp/443,udp/443"), service("ssh", "tcp/22")],
            other_judged: true,
        };
        let table = scope.port_table().unwrap();
        let row = |index: usize| table.chunks[index / 256][index % 256];
        assert_eq!(row(443), ROW_FIRST_SERVICE);
        assert_eq!(row(PORTS_UDP as usize + 443), ROW_FIRST_SERVICE);
        assert_eq!(row(22), ROW_FIRST_SERVICE + 1);
        assert_eq!(row(PORTS_UDP as usize + 22), ROW_MAIN);
        assert_eq!(table.portless_row, ROW_MAIN);
        let ports = Scope::Ports(parse_ports("tcp/8000-8100").unwrap())
            .port_table()
            .unwrap();
        assert_eq!(ports.chunks[8050 / 256][8050 % 256], ROW_MAIN);
        assert_eq!(ports.chunks[8101 / 256][8101 % 256], ROW_OUT_OF_SCOPE);
        assert_eq!(ports.portless_row, ROW_OUT_OF_SCOPE);
        assert!(Scope::Host.port_table().is_none());
    }

    #[test]
    fn ephemeral_overlap_names_the_offending_ranges() {
        let scope = Scope::Ports(parse_ports("tcp/443,udp/30000-40000").unwrap());
        assert_eq!(
            ports_text(&ephemeral_overlap(&scope, (32768, 60999))),
            "udp/30000-40000"
        );
        assert!(ephemeral_overlap(&scope, (50000, 60000)).is_empty());
    }
}
