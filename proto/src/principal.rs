//! Who is who: units of the agreement (`PARTY/UNIT`) and principals (`PARTY/UNIT/node`).
//!
//! A principal is derived by the relay from the subject of a node certificate only
//! (`O` = party, `OU` = unit, `CN` = node; requirements §3). Nothing a client writes in a message
//! can change it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest party or unit code, in characters.
pub const MAX_CODE_LEN: usize = 32;
/// Longest node name (the certificate's `CN`), in characters.
pub const MAX_NODE_LEN: usize = 64;

/// Why a party code, unit code, node name or `PARTY/UNIT[/node]` string is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A party or unit code is empty, too long, or has a character outside `[A-Z0-9_-]`.
    #[error("{what} code {value:?} is not 1-32 characters of A-Z, 0-9, '_' or '-'")]
    BadCode {
        /// `party` or `unit`.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// A node name is empty, too long, or has a character outside `[A-Za-z0-9._-]`.
    #[error("node name {0:?} is not 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
    BadNode(String),
    /// The string does not have the expected number of `/`-separated parts.
    #[error("{value:?} is not of the form {expected}")]
    Shape {
        /// The offending value.
        value: String,
        /// The expected form, e.g. `PARTY/UNIT`.
        expected: &'static str,
    },
}

/// Checks a party or unit code: 1–32 characters of `[A-Z0-9_-]`.
///
/// # Errors
/// [`NameError::BadCode`] naming `what` (`"party"` or `"unit"`).
pub fn check_code(what: &'static str, value: &str) -> Result<(), NameError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_CODE_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError::BadCode {
            what,
            value: value.to_owned(),
        })
    }
}

/// Checks a node name: 1–64 characters of `[A-Za-z0-9._-]`.
///
/// # Errors
/// [`NameError::BadNode`].
pub fn check_node(value: &str) -> Result<(), NameError> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_NODE_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError::BadNode(value.to_owned()))
    }
}

/// A unit of a party of the agreement, written `PARTY/UNIT` (e.g. `DPJ/RTS`).
///
/// Mailboxes, rules and recipients are kept per unit: every node of a unit sees the same
/// mailbox.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitRef {
    /// Party code, e.g. `SPVQ`.
    pub party: String,
    /// Unit code within the party, e.g. `ESM`.
    pub unit: String,
}

impl UnitRef {
    /// Builds a unit reference after checking both codes.
    ///
    /// # Errors
    /// [`NameError::BadCode`] for a malformed party or unit code.
    pub fn new(party: &str, unit: &str) -> Result<Self, NameError> {
        check_code("party", party)?;
        check_code("unit", unit)?;
        Ok(Self {
            party: party.to_owned(),
            unit: unit.to_owned(),
        })
    }
}

impl fmt::Display for UnitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.party, self.unit)
    }
}

impl FromStr for UnitRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split('/').collect::<Vec<_>>().as_slice() {
            [party, unit] => Self::new(party, unit),
            _ => Err(NameError::Shape {
                value: s.to_owned(),
                expected: "PARTY/UNIT",
            }),
        }
    }
}

/// The authenticated identity of a connected node, written `PARTY/UNIT/node`
/// (e.g. `SPVQ/ESM/esm-poste-01`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Principal {
    /// The unit the node belongs to.
    pub unit: UnitRef,
    /// The node name (certificate `CN`).
    pub node: String,
}

impl Principal {
    /// Builds a principal after checking every part.
    ///
    /// # Errors
    /// [`NameError`] for a malformed party, unit or node.
    pub fn new(party: &str, unit: &str, node: &str) -> Result<Self, NameError> {
        let unit = UnitRef::new(party, unit)?;
        check_node(node)?;
        Ok(Self {
            unit,
            node: node.to_owned(),
        })
    }

    /// The party code.
    pub fn party(&self) -> &str {
        &self.unit.party
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.unit, self.node)
    }
}

impl FromStr for Principal {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split('/').collect::<Vec<_>>().as_slice() {
            [party, unit, node] => Self::new(party, unit, node),
            _ => Err(NameError::Shape {
                value: s.to_owned(),
                expected: "PARTY/UNIT/node",
            }),
        }
    }
}

/// A party (`SPVQ`) or one unit of a party (`SPVQ/ESM`), as the agreement's rules and a
/// post's explicit recipients name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// Every unit of the party.
    Party(String),
    /// One unit.
    Unit(UnitRef),
}

impl Selector {
    /// Whether `unit` is selected.
    pub fn matches(&self, unit: &UnitRef) -> bool {
        match self {
            Selector::Party(p) => *p == unit.party,
            Selector::Unit(u) => u == unit,
        }
    }

    /// The party code named.
    pub fn party(&self) -> &str {
        match self {
            Selector::Party(p) => p,
            Selector::Unit(u) => &u.party,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Party(p) => f.write_str(p),
            Selector::Unit(u) => u.fmt(f),
        }
    }
}

impl FromStr for Selector {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') {
            s.parse().map(Selector::Unit)
        } else {
            check_code("party", s)?;
            Ok(Selector::Party(s.to_owned()))
        }
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(UnitRef);
string_serde!(Principal);
string_serde!(Selector);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units_and_principals() {
        let u: UnitRef = "DPJ/RTS".parse().unwrap();
        assert_eq!(u.party, "DPJ");
        assert_eq!(u.unit, "RTS");
        assert_eq!(u.to_string(), "DPJ/RTS");
        let p: Principal = "SPVQ/ESM/esm-poste-01".parse().unwrap();
        assert_eq!(p.party(), "SPVQ");
        assert_eq!(p.node, "esm-poste-01");
        assert_eq!(p.to_string(), "SPVQ/ESM/esm-poste-01");
    }

    #[test]
    fn refuses_malformed_names() {
        assert_eq!(
            "DPJ".parse::<UnitRef>(),
            Err(NameError::Shape {
                value: "DPJ".into(),
                expected: "PARTY/UNIT"
            })
        );
        assert!(matches!(
            "dpj/RTS".parse::<UnitRef>(),
            Err(NameError::BadCode { what: "party", .. })
        ));
        assert!(matches!(
            "DPJ/R TS".parse::<UnitRef>(),
            Err(NameError::BadCode { what: "unit", .. })
        ));
        assert!(matches!(
            "DPJ/RTS/a b".parse::<Principal>(),
            Err(NameError::BadNode(_))
        ));
        assert!(UnitRef::new(&"A".repeat(33), "X").is_err());
        assert!(UnitRef::new(&"A".repeat(32), "X").is_ok());
    }
}
