//! Alert identifiers: 128 bits, time-ordered, printed as 26 characters of Crockford base32.
//!
//! The layout is that of a ULID (github.com/ulid/spec): 48 bits of Unix milliseconds (the
//! relay's receive time), then 80 random bits. Ids sort by time as bytes and as text, which
//! keeps the store's keys in posting order. The relay assigns ids; nodes never choose them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A relay-assigned alert id, e.g. `01KB6Z8N3F9Q2W5X7Y0A4C6E8G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertId(pub [u8; 16]);

/// An alert id string is not 26 Crockford base32 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an alert id (26 characters of 0-9 and A-Z without I, L, O, U, the first one 0-7)"
)]
pub struct AlertIdError(pub String);

impl AlertId {
    /// Builds an id from the receive time (Unix milliseconds, low 48 bits kept) and 80 random
    /// bits.
    pub fn from_parts(unix_ms: u64, random: [u8; 10]) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        Self(b)
    }

    /// The Unix milliseconds stored in the id.
    pub fn unix_ms(&self) -> u64 {
        let mut t = [0u8; 8];
        t[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(t)
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = u128::from_be_bytes(self.0);
        let mut out = [0u8; 26];
        for (i, c) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *c = CROCKFORD[((v >> shift) & 0x1f) as usize];
        }
        // The alphabet is ASCII, so this cannot fail; fall back to hex rather than panic.
        match std::str::from_utf8(&out) {
            Ok(s) => f.write_str(s),
            Err(_) => write!(f, "{v:032x}"),
        }
    }
}

impl FromStr for AlertId {
    type Err = AlertIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AlertIdError(s.to_owned());
        let bytes = s.trim().as_bytes();
        if bytes.len() != 26 {
            return Err(err());
        }
        let mut v: u128 = 0;
        for (i, &c) in bytes.iter().enumerate() {
            let c = c.to_ascii_uppercase();
            let d = match c {
                b'O' => 0,
                b'I' | b'L' => 1,
                _ => CROCKFORD.iter().position(|&x| x == c).ok_or_else(err)? as u128,
            };
            // The first character carries only 3 bits (26 * 5 = 130 = 128 + 2).
            if i == 0 && d > 7 {
                return Err(err());
            }
            v = (v << 5) | d;
        }
        Ok(Self(v.to_be_bytes()))
    }
}

impl Serialize for AlertId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for AlertId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(AlertId)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer() {
        let id = AlertId::from_parts(0x0123_4567_89ab, [0xff; 10]);
        assert_eq!(id.to_string(), "014D2PF2DBZZZZZZZZZZZZZZZZ");
        assert_eq!(id.unix_ms(), 0x0123_4567_89ab);
        assert_eq!(AlertId([0; 16]).to_string(), "00000000000000000000000000");
        assert!("80000000000000000000000000".parse::<AlertId>().is_err());
        assert!("0000000000000000000000000".parse::<AlertId>().is_err());
        assert!("0000000000000000000000000U".parse::<AlertId>().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 16]>()) {
            let id = AlertId(bytes);
            let text = id.to_string();
            prop_assert_eq!(text.parse::<AlertId>().unwrap(), id);
            prop_assert_eq!(text.to_lowercase().parse::<AlertId>().unwrap(), id);
        }

        #[test]
        fn text_order_is_byte_order(a in any::<[u8; 16]>(), b in any::<[u8; 16]>()) {
            prop_assert_eq!(AlertId(a).cmp(&AlertId(b)), AlertId(a).to_string().cmp(&AlertId(b).to_string()));
        }
    }
}
