//! The revocation list in force: what it is, whether it is fresh, and the rule that a
//! reload never goes back to an older list.
//!
//! Policy (docs/security.md, docs/operations.md "Revoke"): a CRL must have a nextUpdate. Less
//! than [`WARN_BEFORE_SECS`] before it, the relay logs a warning; past it the CRL is
//! *stale*: the relay logs an error (again every [`REPEAT_SECS`] while it lasts), sets
//! `filet_crl_stale` to 1 and says so in every reload answer, and **keeps serving with the
//! stale list** (fail-open: every revocation it holds still applies; refusing every node
//! would stop the exchange between the agreement's parties). `filet_crl_next_update_seconds`
//! gives the seconds left (negative when past). A list older than the one in force (lower
//! CRL number; without numbers, an earlier thisUpdate) is refused: loading it would
//! un-revoke certificates.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use filet_certs::CrlInfo;
use filet_proto::audit::Event;
use filet_proto::Timestamp;
use rustls::pki_types::CertificateRevocationListDer;

/// A CRL with less than this left before its nextUpdate is due for renewal (24 h): warned
/// about.
pub const WARN_BEFORE_SECS: i64 = 24 * 3600;

/// While a CRL is due or stale, the log says so again this often (1 h).
pub const REPEAT_SECS: i64 = 3600;

/// The revocation lists of the CRL file, as put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInForce {
    /// The CRL file.
    pub file: PathBuf,
    /// Each list of the file, with its nextUpdate (checked on reading).
    pub lists: Vec<CrlInfo>,
}

/// Where a CRL stands against its nextUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// More than [`WARN_BEFORE_SECS`] left.
    Fresh,
    /// Less than [`WARN_BEFORE_SECS`] left: renew it.
    Due {
        /// Seconds left.
        left: i64,
    },
    /// Past its nextUpdate.
    Stale {
        /// Seconds since its nextUpdate.
        past: i64,
    },
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A duration for people: `3d 4h`, `5h 12m`, `7m`.
fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

/// Orders two decimal CRL numbers (no leading zeros, as [`CrlInfo`] writes them).
fn cmp_number(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl CrlInForce {
    /// Reads the lists of `file`.
    ///
    /// # Errors
    /// A message naming the file: a list that cannot be read, or without a nextUpdate
    /// (its freshness could not be judged).
    pub fn read(file: &Path, crls: &[CertificateRevocationListDer<'_>]) -> Result<Self, String> {
        let mut lists = Vec::new();
        for (i, der) in crls.iter().enumerate() {
            let info = filet_certs::describe_crl(der.as_ref())
                .map_err(|e| format!("{}: revocation list {}: {e}", file.display(), i + 1))?;
            if info.next_update.is_none() {
                return Err(format!(
                    "{}: revocation list {} (number {}) has no nextUpdate, so its freshness cannot be judged: sign a new one with `filet-certs crl renew`",
                    file.display(),
                    i + 1,
                    info.crl_number.as_deref().unwrap_or("none")
                ));
            }
            lists.push(info);
        }
        Ok(CrlInForce {
            file: file.to_path_buf(),
            lists,
        })
    }

    /// The serials (lowercase hex) every list revokes.
    pub fn revoked(&self) -> HashSet<String> {
        self.lists
            .iter()
            .flat_map(|l| l.revoked.iter().map(|r| r.serial.clone()))
            .collect()
    }

    /// The CRL numbers, for messages: `3`, or `3, 7` for a file of two lists.
    pub fn numbers(&self) -> String {
        let n: Vec<&str> = self
            .lists
            .iter()
            .map(|l| l.crl_number.as_deref().unwrap_or("(none)"))
            .collect();
        n.join(", ")
    }

    /// The earliest nextUpdate of the lists.
    pub fn next_update(&self) -> Option<time::OffsetDateTime> {
        self.lists.iter().filter_map(|l| l.next_update).min()
    }

    /// Seconds from `now` to the earliest nextUpdate: negative once past it.
    pub fn seconds_left(&self, now: Timestamp) -> i64 {
        match self.next_update() {
            Some(t) => Timestamp::from_offset(t).ms_since(now).div_euclid(1000),
            None => i64::MAX,
        }
    }

    /// Where the lists stand at `now`.
    pub fn freshness(&self, now: Timestamp) -> Freshness {
        let left = self.seconds_left(now);
        if left <= 0 {
            Freshness::Stale { past: -left }
        } else if left < WARN_BEFORE_SECS {
            Freshness::Due { left }
        } else {
            Freshness::Fresh
        }
    }

    /// What the log says of the lists at `now`, and how loudly; `None` when fresh.
    pub fn alarm(&self, now: Timestamp) -> Option<(tracing::Level, String)> {
        let next = self.next_update().map(rfc3339).unwrap_or_default();
        let file = self.file.display();
        let number = self.numbers();
        match self.freshness(now) {
            Freshness::Fresh => None,
            Freshness::Due { left } => Some((
                tracing::Level::WARN,
                format!(
                    "CRL {file} (number {number}) is due for renewal: its nextUpdate {next} is in {}; renew it (filet-certs crl renew) and reload",
                    span(left)
                ),
            )),
            Freshness::Stale { past } => Some((
                tracing::Level::ERROR,
                format!(
                    "CRL {file} (number {number}) is STALE: past its nextUpdate {next} by {}; the relay keeps using it (every revocation it holds still applies, any made since it was signed are unknown): renew it (filet-certs crl renew) and reload",
                    span(past)
                ),
            )),
        }
    }

    /// A word on freshness for a reload answer: empty when fresh.
    pub fn status_note(&self, now: Timestamp) -> String {
        let next = self.next_update().map(rfc3339).unwrap_or_default();
        match self.freshness(now) {
            Freshness::Fresh => String::new(),
            Freshness::Due { left } => {
                format!(
                    "; the CRL is due for renewal (nextUpdate {next}, in {})",
                    span(left)
                )
            }
            Freshness::Stale { past } => format!(
                "; the CRL is STALE (past its nextUpdate {next} by {}): renew it",
                span(past)
            ),
        }
    }

    /// Whether `other` holds exactly the same lists.
    pub fn same_as(&self, other: &CrlInForce) -> bool {
        self.lists.len() == other.lists.len()
            && self
                .lists
                .iter()
                .zip(&other.lists)
                .all(|(a, b)| a.sha256 == b.sha256)
    }

    /// Checks that `new` may replace these lists: for each list in force, the new file
    /// holds one of the same issuer (and issuing key) that is not older — a higher CRL
    /// number, or the same list; without CRL numbers, a later thisUpdate.
    ///
    /// # Errors
    /// A message naming the new file and both numbers (or dates).
    pub fn check_successor(&self, new: &CrlInForce) -> Result<(), String> {
        let file = new.file.display();
        for old in &self.lists {
            let Some(n) = new
                .lists
                .iter()
                .find(|n| n.issuer == old.issuer && n.authority_key_id == old.authority_key_id)
            else {
                // Another CA (a PKI made again): nothing to compare with.
                if new.lists.iter().any(|n| n.issuer == old.issuer) {
                    continue;
                }
                return Err(format!(
                    "{file}: holds no revocation list of {} (in force: number {}); loading it would un-revoke every certificate that list revokes",
                    old.issuer,
                    old.crl_number.as_deref().unwrap_or("none")
                ));
            };
            if n.sha256 == old.sha256 {
                continue;
            }
            let short = |i: &CrlInfo| {
                let h = i.sha256_hex();
                h.get(..16).unwrap_or(&h).to_owned()
            };
            match (&n.crl_number, &old.crl_number) {
                (Some(a), Some(b)) => match cmp_number(a, b) {
                    Ordering::Greater => {}
                    Ordering::Less => {
                        return Err(format!(
                            "{file}: CRL number {a} is older than the CRL in force (number {b}): loading it would un-revoke the certificates revoked since; sign a new list (filet-certs crl renew) or put back the newest crl.pem"
                        ))
                    }
                    Ordering::Equal => {
                        return Err(format!(
                            "{file}: CRL number {a} (sha256 {}) is not the CRL number {b} in force (sha256 {}): a changed list takes a higher number (filet-certs revoke or crl renew)",
                            short(n),
                            short(old)
                        ))
                    }
                },
                (a, b) => {
                    if n.this_update <= old.this_update {
                        return Err(format!(
                            "{file}: the CRL issued {} (number {}) is not newer than the CRL in force, issued {} (number {}): loading it could un-revoke certificates",
                            rfc3339(n.this_update),
                            a.as_deref().unwrap_or("none"),
                            rfc3339(old.this_update),
                            b.as_deref().unwrap_or("none")
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The `crl_loaded` audit events of the lists.
    pub fn events(&self) -> Vec<Event> {
        self.lists
            .iter()
            .map(|l| Event::CrlLoaded {
                issuer: l.issuer.clone(),
                authority_key_id: l.authority_key_id.clone(),
                crl_number: l.crl_number.clone(),
                sha256: l.sha256_hex(),
                this_update: Timestamp::from_offset(l.this_update),
                next_update: Timestamp::from_offset(l.next_update.unwrap_or(l.this_update)),
                revoked: l.revoked.len() as u64,
            })
            .collect()
    }
}

/// The CRL last in force according to the audit log: for each issuer and issuing key, its
/// newest `crl_loaded` entry. `None` for a log without any.
///
/// # Errors
/// A message naming the entry that cannot be read.
pub fn last_in_log(
    log: &crate::audit_log::AuditReader,
    file: &Path,
) -> Result<Option<CrlInForce>, String> {
    let mut lists: Vec<CrlInfo> = Vec::new();
    for index in 0..log.size() {
        let bytes = log
            .entry(index)
            .map_err(|e| format!("audit entry {index}: {e}"))?;
        // Cheap test first: only `crl_loaded` entries are parsed.
        let head = bytes.get(..bytes.len().min(120)).unwrap_or_default();
        if !head.windows(20).any(|w| w == b"\"event\":\"crl_loaded\"") {
            continue;
        }
        let entry = filet_proto::audit::Entry::from_bytes(&bytes)
            .map_err(|e| format!("audit entry {index}: {e}"))?;
        let Event::CrlLoaded {
            issuer,
            authority_key_id,
            crl_number,
            sha256,
            this_update,
            next_update,
            ..
        } = entry.event
        else {
            continue;
        };
        let colon = sha256
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        let info = CrlInfo {
            issuer,
            crl_number,
            this_update: this_update
                .to_offset()
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            next_update: next_update.to_offset(),
            revoked: Vec::new(),
            sha256: colon,
            authority_key_id,
        };
        lists.retain(|l| !(l.issuer == info.issuer && l.authority_key_id == info.authority_key_id));
        lists.push(info);
    }
    Ok((!lists.is_empty()).then(|| CrlInForce {
        file: file.to_path_buf(),
        lists,
    }))
}

/// When the log last spoke of the CRL's freshness, so that it repeats itself every
/// [`REPEAT_SECS`] and at every change of state, not at every check.
#[derive(Debug, Default)]
pub struct Alarm {
    last: Option<(tracing::Level, Timestamp)>,
}

impl Alarm {
    /// Forgets what was said (a new CRL was put in force).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// What to log now about `crl`, if anything.
    pub fn check(&mut self, crl: &CrlInForce, now: Timestamp) -> Option<(tracing::Level, String)> {
        let Some((level, message)) = crl.alarm(now) else {
            self.last = None;
            return None;
        };
        let due = match self.last {
            Some((l, at)) => l != level || now.ms_since(at) >= REPEAT_SECS * 1000,
            None => true,
        };
        if due {
            self.last = Some((level, now));
            Some((level, message))
        } else {
            None
        }
    }
}

/// Logs an alarm at its level.
pub fn log(alarm: Option<(tracing::Level, String)>) {
    match alarm {
        Some((tracing::Level::ERROR, m)) => tracing::error!("{m}"),
        Some((_, m)) => tracing::warn!("{m}"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(number: Option<&str>, sha: &str, this: i64, next: i64) -> CrlInfo {
        CrlInfo {
            issuer: "O=Filet, CN=Filet CA t".into(),
            crl_number: number.map(str::to_owned),
            this_update: time::OffsetDateTime::from_unix_timestamp(this).unwrap(),
            next_update: Some(time::OffsetDateTime::from_unix_timestamp(next).unwrap()),
            revoked: Vec::new(),
            sha256: sha.into(),
            authority_key_id: Some("aa".into()),
        }
    }

    fn set(lists: Vec<CrlInfo>) -> CrlInForce {
        CrlInForce {
            file: "pki/crl.pem".into(),
            lists,
        }
    }

    const DAY: i64 = 86400;

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(cmp_number("10", "9"), Ordering::Greater);
        assert_eq!(cmp_number("9", "10"), Ordering::Less);
        assert_eq!(
            cmp_number("123456789012345678901234567890", "2"),
            Ordering::Greater
        );
        assert_eq!(cmp_number("7", "7"), Ordering::Equal);
    }

    #[test]
    fn an_older_or_renumbered_crl_is_refused_with_both_numbers() {
        let old = set(vec![info(Some("3"), "AA", 10 * DAY, 40 * DAY)]);
        let mut older = set(vec![info(Some("2"), "BB", 11 * DAY, 41 * DAY)]);
        assert_eq!(
            old.check_successor(&older),
            Err("pki/crl.pem: CRL number 2 is older than the CRL in force (number 3): loading it would un-revoke the certificates revoked since; sign a new list (filet-certs crl renew) or put back the newest crl.pem".into())
        );
        older.lists[0].crl_number = Some("3".into());
        assert!(old
            .check_successor(&older)
            .unwrap_err()
            .contains("CRL number 3 (sha256 bb) is not the CRL number 3 in force (sha256 aa)"));
        assert_eq!(old.check_successor(&old), Ok(()));
        let newer = set(vec![info(Some("4"), "CC", 9 * DAY, 40 * DAY)]);
        assert_eq!(old.check_successor(&newer), Ok(()));
        // Without numbers: thisUpdate.
        let a = set(vec![info(None, "AA", 10 * DAY, 40 * DAY)]);
        let b = set(vec![info(None, "BB", 9 * DAY, 40 * DAY)]);
        assert!(a
            .check_successor(&b)
            .unwrap_err()
            .contains("is not newer than the CRL in force"));
        assert_eq!(b.check_successor(&a), Ok(()));
        // A list of another CA key under the same name: nothing to compare with.
        let mut other_ca = set(vec![info(Some("1"), "DD", 10 * DAY, 40 * DAY)]);
        other_ca.lists[0].authority_key_id = Some("bb".into());
        assert_eq!(old.check_successor(&other_ca), Ok(()));
    }

    #[test]
    fn the_alarm_warns_a_day_ahead_and_repeats_hourly_once_stale() {
        let crl = set(vec![info(Some("5"), "AA", 0, 30 * DAY)]);
        let at = |s: i64| Timestamp(s * 1000);
        let mut alarm = Alarm::default();
        assert_eq!(crl.freshness(at(29 * DAY - 1)), Freshness::Fresh);
        assert_eq!(alarm.check(&crl, at(29 * DAY - 1)), None);
        assert_eq!(crl.seconds_left(at(29 * DAY - 1)), DAY + 1);
        let (level, m) = alarm.check(&crl, at(29 * DAY + 1)).unwrap();
        assert_eq!(level, tracing::Level::WARN);
        assert_eq!(m, "CRL pki/crl.pem (number 5) is due for renewal: its nextUpdate 1970-01-31T00:00:00Z is in 23h 59m; renew it (filet-certs crl renew) and reload");
        assert_eq!(alarm.check(&crl, at(29 * DAY + 60)), None, "said already");
        let (level, m) = alarm.check(&crl, at(30 * DAY)).unwrap();
        assert_eq!(level, tracing::Level::ERROR, "stale at nextUpdate: {m}");
        assert_eq!(crl.seconds_left(at(30 * DAY + 5)), -5);
        assert_eq!(alarm.check(&crl, at(30 * DAY + REPEAT_SECS - 1)), None);
        let (level, m) = alarm.check(&crl, at(30 * DAY + REPEAT_SECS)).unwrap();
        assert_eq!(level, tracing::Level::ERROR);
        assert!(m.contains("is STALE: past its nextUpdate 1970-01-31T00:00:00Z by 1h 0m; the relay keeps using it"), "{m}");
    }
}
