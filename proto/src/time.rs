//! Instants on the wire and in files: [`Timestamp`], Unix milliseconds in UTC.
//!
//! On the wire (bincode) a timestamp is an `i64` of milliseconds since 1970-01-01T00:00:00Z;
//! in human-readable formats (JSON, TOML) it is an RFC 3339 string in UTC with millisecond
//! precision, e.g. `2026-11-28T22:40:00.000Z`. TOML datetimes (`at = 2026-11-28T22:40:00Z`)
//! are accepted where a timestamp is read from a file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant in UTC, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A timestamp string is not RFC 3339 or is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an RFC 3339 date-time with offset (e.g. 2026-11-28T22:40:00Z)")]
pub struct TimestampError {
    /// The offending text.
    pub value: String,
}

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl Timestamp {
    /// The current time of the system clock.
    pub fn now() -> Self {
        Self::from_offset(OffsetDateTime::now_utc())
    }

    /// Converts from a `time` date-time (any offset), truncating to milliseconds.
    pub fn from_offset(t: OffsetDateTime) -> Self {
        Self((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Converts to a UTC `time` date-time; `None` when out of `time`'s range.
    pub fn to_offset(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }

    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn ms_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_offset() {
            Some(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Self::from_offset)
            .map_err(|_| TimestampError {
                value: s.to_owned(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            /// A TOML datetime or a string.
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Text {
                Toml(toml::value::Datetime),
                Str(String),
            }
            let text = match Text::deserialize(d)? {
                Text::Toml(t) => t.to_string(),
                Text::Str(s) => s,
            };
            text.parse().map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let t: Timestamp = "2026-11-28T22:40:00Z".parse().unwrap();
        assert_eq!(t.0, 1_795_905_600_000);
        assert_eq!(t.to_string(), "2026-11-28T22:40:00.000Z");
        let t2: Timestamp = "2026-11-28T17:40:00.250-05:00".parse().unwrap();
        assert_eq!(t2.0, t.0 + 250);
        assert!("2026-11-28 22:40".parse::<Timestamp>().is_err());
    }

    #[test]
    fn reads_toml_datetimes_and_strings() {
        #[derive(Deserialize)]
        struct F {
            a: Timestamp,
            b: Timestamp,
        }
        let f: F =
            toml::from_str("a = 2026-11-28T22:40:00Z\nb = \"2026-11-28T22:40:01Z\"").unwrap();
        assert_eq!(f.b.0 - f.a.0, 1000);
    }
}
