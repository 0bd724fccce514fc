//! Dates, times and numbers for people: Québec conventions (OQLF) in French, Canadian
//! English otherwise; local time with the zone named. The wire and the audit log stay UTC.

use filet_proto::Timestamp;
use jiff::tz::TimeZone;

use crate::i18n::Lang;

/// The zone times are shown in unless the console is told otherwise.
pub const DEFAULT_ZONE: &str = "America/Toronto";

/// A time zone of the embedded database (works offline).
///
/// # Errors
/// The zone's name is not in the database.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db()
        .get(name)
        .map_err(|e| format!("time zone {name:?}: {e}"))
}

fn to_jiff(t: Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(t.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

const MOIS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The zone's name at `t`: « HNE » / « HAE » in French for Eastern time, EST / EDT in
/// English; other zones by their abbreviation.
pub fn zone_name(lang: Lang, tz: &TimeZone, t: Timestamp) -> String {
    let info = tz.to_offset_info(to_jiff(t));
    let abbr = info.abbreviation().to_owned();
    match (lang, abbr.as_str()) {
        (Lang::Fr, "EST") => "HNE".into(),
        (Lang::Fr, "EDT") => "HAE".into(),
        (Lang::Fr, "UTC") => "UTC".into(),
        _ => abbr,
    }
}

/// A time for people, in `tz`, with the zone named: « le 2 décembre 2026, 22 h 40 HNE »,
/// "December 2, 2026, 10:40 p.m. EST".
pub fn datetime(lang: Lang, tz: &TimeZone, t: Timestamp) -> String {
    let z = to_jiff(t).to_zoned(tz.clone());
    let month = usize::try_from(z.month() - 1).unwrap_or(0).min(11);
    let zone = zone_name(lang, tz, t);
    match lang {
        Lang::Fr => {
            let day = if z.day() == 1 {
                "1er".to_owned()
            } else {
                z.day().to_string()
            };
            let time = if z.minute() == 0 {
                format!("{} h", z.hour())
            } else {
                format!("{} h {:02}", z.hour(), z.minute())
            };
            format!("le {day} {} {}, {time} {zone}", MOIS[month], z.year())
        }
        Lang::En => {
            let (h, ampm) = match z.hour() {
                0 => (12, "a.m."),
                h @ 1..=11 => (h, "a.m."),
                12 => (12, "p.m."),
                h => (h - 12, "p.m."),
            };
            format!(
                "{} {}, {}, {}:{:02} {ampm} {zone}",
                MONTHS[month],
                z.day(),
                z.year(),
                h,
                z.minute()
            )
        }
    }
}

/// The local calendar day of `t` in `tz`: `2026-12-02` (a key: sorts as days do).
pub fn local_day(tz: &TimeZone, t: Timestamp) -> String {
    to_jiff(t)
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d")
        .to_string()
}

/// A day key (`2026-12-02`) for people: « 2 déc. 2026 », "Dec. 2, 2026"; anything else as
/// given.
pub fn day_label(lang: Lang, day: &str) -> String {
    const MOIS_ABR: [&str; 12] = [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juill.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ];
    const MON: [&str; 12] = [
        "Jan.", "Feb.", "Mar.", "Apr.", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.",
        "Dec.",
    ];
    let Ok(d) = day.parse::<jiff::civil::Date>() else {
        return day.to_owned();
    };
    let m = usize::try_from(d.month() - 1).unwrap_or(0).min(11);
    match lang {
        Lang::Fr if d.day() == 1 => format!("1er {} {}", MOIS_ABR[m], d.year()),
        Lang::Fr => format!("{} {} {}", d.day(), MOIS_ABR[m], d.year()),
        Lang::En => format!("{} {}, {}", MON[m], d.day(), d.year()),
    }
}

/// The start of a local day typed as `2026-12-02` (an `<input type="date">`), in `tz`.
///
/// # Errors
/// Not a date.
pub fn parse_day(tz: &TimeZone, s: &str) -> Result<Timestamp, String> {
    let d: jiff::civil::Date = s.trim().parse().map_err(|_| format!("{s:?}"))?;
    let z = d.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
    Ok(Timestamp(z.timestamp().as_millisecond()))
}

/// The value of an `<input type="datetime-local">` for `t` in `tz` (`2026-12-02T22:40`).
pub fn input_value(tz: &TimeZone, t: Timestamp) -> String {
    to_jiff(t)
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

/// Reads a time a person typed: with an offset (`…Z`, `…-05:00`) as given; without one
/// (`2026-12-02T22:40`, `2026-12-02 22:40`) in the local zone `tz`. In the hour the clocks
/// go back, the first (daylight) reading is taken; in the hour that does not exist when they
/// go forward, the time after the change.
///
/// # Errors
/// The text is not a date and time.
pub fn parse_local(tz: &TimeZone, s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime = s
        .replacen(' ', "T", 1)
        .parse()
        .map_err(|_| format!("{s:?}"))?;
    let z = civil.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
    Ok(Timestamp(z.timestamp().as_millisecond()))
}

fn group(digits: &str, sep: &str) -> String {
    let mut out = String::new();
    let n = digits.len();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// An integer for people: « 10 000 » (narrow no-break space) in French, 10,000 in English.
pub fn integer(lang: Lang, n: i64) -> String {
    let sep = match lang {
        Lang::Fr => "\u{202f}",
        Lang::En => ",",
    };
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group(&digits, sep))
}

/// A decimal number with at most `places` decimals (trailing zeros dropped): « 10 000,5 »
/// in French, 10,000.5 in English.
pub fn decimal(lang: Lang, x: f64, places: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{:.*}", places, x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    let int: i64 = int.parse().unwrap_or(0);
    let sign = if x < 0.0 && (int != 0 || !frac.is_empty()) {
        "-"
    } else {
        ""
    };
    let mut s = format!("{sign}{}", integer(lang, int));
    if !frac.is_empty() {
        s.push(match lang {
            Lang::Fr => ',',
            Lang::En => '.',
        });
        s.push_str(frac);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("an RFC 3339 time")
    }

    fn toronto() -> TimeZone {
        zone(DEFAULT_ZONE).expect("the embedded database has America/Toronto")
    }

    #[test]
    fn a_time_is_shown_in_quebec_french_and_local_time_with_the_zone_named() {
        let tz = toronto();
        // The example: seen at 22:40 on December 2 in Québec City.
        let t = ts("2026-12-03T03:40:00Z");
        assert_eq!(
            datetime(Lang::Fr, &tz, t),
            "le 2 décembre 2026, 22 h 40 HNE"
        );
        assert_eq!(
            datetime(Lang::En, &tz, t),
            "December 2, 2026, 10:40 p.m. EST"
        );
        assert_eq!(
            datetime(Lang::Fr, &tz, ts("2026-07-01T13:00:00Z")),
            "le 1er juillet 2026, 9 h HAE"
        );
        assert_eq!(
            datetime(Lang::En, &tz, ts("2026-07-01T04:05:00Z")),
            "July 1, 2026, 12:05 a.m. EDT"
        );
    }

    #[test]
    fn the_days_the_clocks_change_in_toronto_are_shown_with_the_right_zone() {
        let tz = toronto();
        // 2026-03-08: 2 h HNE becomes 3 h HAE.
        assert_eq!(
            datetime(Lang::Fr, &tz, ts("2026-03-08T06:59:00Z")),
            "le 8 mars 2026, 1 h 59 HNE"
        );
        assert_eq!(
            datetime(Lang::Fr, &tz, ts("2026-03-08T07:00:00Z")),
            "le 8 mars 2026, 3 h HAE"
        );
        // 2026-11-01: 2 h HAE becomes 1 h HNE; 1 h 30 happens twice.
        assert_eq!(
            datetime(Lang::Fr, &tz, ts("2026-11-01T05:30:00Z")),
            "le 1er novembre 2026, 1 h 30 HAE"
        );
        assert_eq!(
            datetime(Lang::Fr, &tz, ts("2026-11-01T06:30:00Z")),
            "le 1er novembre 2026, 1 h 30 HNE"
        );
        assert_eq!(
            datetime(Lang::En, &tz, ts("2026-11-01T06:30:00Z")),
            "November 1, 2026, 1:30 a.m. EST"
        );
    }

    #[test]
    fn a_time_typed_without_an_offset_is_read_in_the_local_zone() {
        let tz = toronto();
        assert_eq!(
            parse_local(&tz, "2026-12-02T22:40"),
            Ok(ts("2026-12-03T03:40:00Z"))
        );
        assert_eq!(
            parse_local(&tz, "2026-12-02 22:40"),
            Ok(ts("2026-12-03T03:40:00Z"))
        );
        assert_eq!(
            parse_local(&tz, "2026-07-01T09:00"),
            Ok(ts("2026-07-01T13:00:00Z"))
        );
        // With an offset, as given.
        assert_eq!(
            parse_local(&tz, "2026-12-02T22:40:00Z"),
            Ok(ts("2026-12-02T22:40:00Z"))
        );
        assert!(parse_local(&tz, "hier soir").is_err());
        assert_eq!(
            input_value(&tz, ts("2026-12-03T03:40:00Z")),
            "2026-12-02T22:40"
        );
    }

    #[test]
    fn a_time_typed_on_the_days_the_clocks_change_is_read_without_surprise() {
        let tz = toronto();
        // 2 h 30 on March 8 does not exist: read as the time after the change, 3 h 30 HAE.
        assert_eq!(
            parse_local(&tz, "2026-03-08T02:30"),
            Ok(ts("2026-03-08T07:30:00Z"))
        );
        // 1 h 30 on November 1 happens twice: the first (HAE) is taken.
        assert_eq!(
            parse_local(&tz, "2026-11-01T01:30"),
            Ok(ts("2026-11-01T05:30:00Z"))
        );
        assert_eq!(
            parse_local(&tz, "2026-11-01T03:00"),
            Ok(ts("2026-11-01T08:00:00Z"))
        );
    }

    #[test]
    fn numbers_use_the_quebec_separators_in_french() {
        assert_eq!(decimal(Lang::Fr, 10000.5, 2), "10\u{202f}000,5");
        assert_eq!(decimal(Lang::En, 10000.5, 2), "10,000.5");
        assert_eq!(integer(Lang::Fr, 1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(integer(Lang::Fr, 999), "999");
        assert_eq!(integer(Lang::En, -1000), "-1,000");
        assert_eq!(decimal(Lang::Fr, 46.8123, 4), "46,8123");
        assert_eq!(decimal(Lang::Fr, -71.2345, 4), "-71,2345");
        assert_eq!(decimal(Lang::Fr, 3.0, 2), "3");
    }
}

#[cfg(test)]
mod day_tests {
    use super::*;

    #[test]
    fn a_local_day_is_the_zones_calendar_day_with_its_label() {
        let tz = zone(DEFAULT_ZONE).unwrap();
        // 2026-12-03T03:40Z is 22 h 40 on December 2 in Québec.
        let t: Timestamp = "2026-12-03T03:40:00Z".parse().unwrap();
        assert_eq!(local_day(&tz, t), "2026-12-02");
        assert_eq!(local_day(&TimeZone::UTC, t), "2026-12-03");
        assert_eq!(day_label(Lang::Fr, "2026-12-02"), "2 déc. 2026");
        assert_eq!(day_label(Lang::Fr, "2026-11-01"), "1er nov. 2026");
        assert_eq!(day_label(Lang::En, "2026-12-02"), "Dec. 2, 2026");
        assert_eq!(day_label(Lang::Fr, "x"), "x");
        // The start of a local day: midnight HNE is 05:00 UTC; in July (HAE), 04:00 UTC.
        assert_eq!(
            parse_day(&tz, "2026-12-02").unwrap(),
            "2026-12-02T05:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_day(&tz, "2026-07-02").unwrap(),
            "2026-07-02T04:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_day(&tz, "2 déc").is_err());
    }
}
