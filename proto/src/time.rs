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

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T22:40:00.000Z` (years 0–9999;
    /// outside them `@<ms>ms`). Formatted by hand: it is on the audit log's hot path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return write!(f, "@{}ms", self.0);
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let put = |b: &mut [u8; 24], at: usize, v: u64, n: usize| {
            let mut v = v;
            for i in (0..n).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(&mut b, 0, y as u64, 4);
        put(&mut b, 5, u64::from(m), 2);
        put(&mut b, 8, u64::from(d), 2);
        put(&mut b, 11, (sod / 3600) as u64, 2);
        put(&mut b, 14, (sod / 60 % 60) as u64, 2);
        put(&mut b, 17, (sod % 60) as u64, 2);
        put(&mut b, 20, ms as u64, 3);
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
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

    proptest::proptest! {
        #[test]
        fn display_agrees_with_the_time_crate(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            let t = Timestamp(ms);
            let o = t.to_offset().unwrap();
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                o.year(), u8::from(o.month()), o.day(), o.hour(), o.minute(), o.second(), o.millisecond()
            );
            proptest::prop_assert_eq!(t.to_string(), want);
        }
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
