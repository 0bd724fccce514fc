//! The auditing pages' data and the one background job of the console process: pull the
//! relay's log into the offline audit directory and verify it, with its progress.
//!
//! The computation is the node library's (`filet audit pull`, `verify`, `report`): the
//! [`crate::Backend`] returns these plain values, the pages ([`crate::audit_pages`]) draw
//! them, [`crate::chart`] and [`crate::csv`] turn them into SVG and CSV.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use filet_proto::Timestamp;

/// Where a pull stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Entries received from the relay so far, of how many.
    Pulling {
        /// Received.
        done: u64,
        /// To receive (0 until the relay's checkpoint is known).
        total: u64,
    },
    /// The whole directory is being verified offline.
    Verifying,
}

/// Told of each step of a pull.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A pull and verification that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The newest signed checkpoint's tree size.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The log (key name) that signed it.
    pub signed_by: String,
    /// Entries this pull added.
    pub new_entries: u64,
    /// Entries the directory holds, all verified.
    pub entries: u64,
    /// Checkpoints kept and checked.
    pub checkpoints: usize,
    /// The tree size before this pull (0 for the first).
    pub previous_size: u64,
    /// Every entry (full auditor) or only this party's (party auditor).
    pub full: bool,
}

/// Why an audit step failed: `kind` picks the French or English sentence
/// (`audit-failure-KIND` in the catalogs), `args` fill it; `detail` is the node library's
/// own text (technical, English), shown below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// no-directory, file, key, checkpoint, fork, rollback, inconsistent, entry, relay,
    /// subject-key, no-pull.
    pub kind: String,
    /// The sentence's variables.
    pub args: Vec<(String, String)>,
    /// The library's message.
    pub detail: String,
}

impl AuditFailure {
    /// A failure of `kind` with `args` and `detail`.
    pub fn new(kind: &str, args: &[(&str, String)], detail: impl Into<String>) -> AuditFailure {
        AuditFailure {
            kind: kind.to_owned(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            detail: detail.into(),
        }
    }
}

/// What the report covers.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// From this time, inclusive.
    pub from: Option<Timestamp>,
    /// Until this time, exclusive.
    pub to: Option<Timestamp>,
    /// Only entries where this party is sender or recipient.
    pub party: Option<String>,
    /// A disclosure not acknowledged within this many minutes is listed.
    pub unacked_after_min: i64,
    /// Only the alerts about one file: the relay's subject-reference key file and the
    /// reference.
    pub subject: Option<(PathBuf, String)>,
}

/// One disclosure (the log's `disclosed` entry, with its deliveries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// The entry's index in the log.
    pub index: u64,
    /// When.
    pub time: Timestamp,
    /// The alert or follow-up.
    pub alert: String,
    /// alert, update, located, cancel.
    pub kind: String,
    /// actual, exercise, test.
    pub status: String,
    /// Who posted it.
    pub sender: String,
    /// The recipient unit.
    pub recipient: String,
    /// The fields disclosed (`all` or paths).
    pub fields: String,
    /// Rules, with their legal bases.
    pub rules: Vec<(String, String)>,
    /// The nodes it was delivered to, and when.
    pub delivered: Vec<(String, Timestamp)>,
}

/// Disclosures of one local day under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    /// The local calendar day, `2026-12-02`.
    pub day: String,
    /// actual, exercise, test.
    pub status: String,
    /// The sender's party.
    pub sender_party: String,
    /// The recipient's party.
    pub recipient_party: String,
    /// The rule.
    pub rule: String,
    /// Its legal basis.
    pub legal_basis: String,
    /// How many.
    pub count: u64,
}

/// A disclosure not acknowledged in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Late {
    /// actual, exercise, test.
    pub status: String,
    /// The alert.
    pub alert: String,
    /// The recipient unit.
    pub recipient: String,
    /// When disclosed.
    pub disclosed_at: Timestamp,
    /// When acknowledged, if ever.
    pub acknowledged_at: Option<Timestamp>,
    /// Minutes from disclosure to acknowledgement (or to now).
    pub delay_minutes: i64,
}

/// The compliance report, from a verified audit directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportData {
    /// Entries considered.
    pub entries: u64,
    /// Disclosures by local day and key.
    pub by_day: Vec<DayCount>,
    /// Refusals by reason (the log's reason codes).
    pub refusals: Vec<(String, u64)>,
    /// Disclosures not acknowledged in time.
    pub late: Vec<Late>,
    /// Each disclosure, in log order.
    pub disclosures: Vec<Disclosure>,
    /// The parties the directory names (the party filter's values).
    pub parties: Vec<String>,
}

/// An entry proven included in the relay's newest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    /// The entry's index.
    pub index: u64,
    /// The entry, one line for people.
    pub entry: String,
    /// Hashes in the inclusion proof.
    pub proof_len: usize,
    /// The checkpoint's tree size.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The log that signed it.
    pub signed_by: String,
}

/// The pull job's state, as the audit page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// No pull since the console started.
    Idle,
    /// Running.
    Running(Progress),
    /// Finished at this time.
    Done(Timestamp, Result<Verified, AuditFailure>),
}

/// The console's one pull job.
pub struct Jobs {
    state: Arc<Mutex<Job>>,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            state: Arc::new(Mutex::new(Job::Idle)),
        }
    }
}

impl Jobs {
    /// The job's state now.
    pub fn now(&self) -> Job {
        self.state.lock().map(|j| j.clone()).unwrap_or(Job::Idle)
    }

    /// Marks a job started, unless one runs: then false (one job at a time).
    pub fn try_start(&self) -> bool {
        let Ok(mut j) = self.state.lock() else {
            return false;
        };
        if matches!(*j, Job::Running(_)) {
            return false;
        }
        *j = Job::Running(Progress::Pulling { done: 0, total: 0 });
        true
    }

    /// What a running job calls with its progress.
    pub fn progress(&self) -> ProgressFn {
        let state = self.state.clone();
        Arc::new(move |p| {
            if let Ok(mut j) = state.lock() {
                if matches!(*j, Job::Running(_)) {
                    *j = Job::Running(p);
                }
            }
        })
    }

    /// The job finished.
    pub fn finish(&self, at: Timestamp, r: Result<Verified, AuditFailure>) {
        if let Ok(mut j) = self.state.lock() {
            *j = Job::Done(at, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_and_progress_only_while_it_runs() {
        let jobs = Jobs::default();
        assert_eq!(jobs.now(), Job::Idle);
        assert!(jobs.try_start());
        assert!(
            !jobs.try_start(),
            "a second start while one runs is refused"
        );
        let p = jobs.progress();
        p(Progress::Pulling { done: 3, total: 10 });
        assert_eq!(
            jobs.now(),
            Job::Running(Progress::Pulling { done: 3, total: 10 })
        );
        jobs.finish(Timestamp(0), Err(AuditFailure::new("relay", &[], "x")));
        p(Progress::Verifying);
        assert!(
            matches!(jobs.now(), Job::Done(_, Err(_))),
            "late progress is ignored"
        );
        assert!(jobs.try_start(), "a finished job lets the next one start");
    }
}
