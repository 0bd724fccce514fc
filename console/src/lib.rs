//! Filet's web console: `filet console` serves it from the organization's own node, on
//! loopback only, in French first (English available). It reaches the relay through the
//! node's own mutual-TLS identity: one [`Backend`] (the node) held by the console process.
//!
//! - [`security`]: loopback, one-time login token, session cookie, Host and Origin checks,
//!   form token, idle timeout.
//! - [`i18n`]: Fluent catalogs; [`format`]: dates, times (local zone, named) and numbers.
//! - [`store`]: the alerts this unit received, fed by the node's subscription.
//! - [`pages`] and [`form`]: the server-rendered pages and the alert form.
//! - [`audit`] (the pull job and the report's data), [`audit_pages`], [`chart`] (SVG drawn
//!   on the server) and [`csv`]: the auditing pages.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod audit_pages;
pub mod chart;
pub mod csv;
pub mod form;
pub mod format;
pub mod i18n;
pub mod pages;
pub mod security;
pub mod server;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use filet_proto::alert::Disclosed;
use filet_proto::wire::{Receipt, RecipientStatus, RelayError, WhoAmI};
use filet_proto::{AlertDraft, AlertId, UnitRef};
use tokio::sync::mpsc;

pub use i18n::Lang;
pub use jiff::tz::TimeZone;
pub use server::{start, ConsoleConfig, Running};

/// A boxed future, for [`Backend`]'s methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a request to the relay failed.
#[derive(Debug, Clone)]
pub struct BackendError {
    /// The relay's refusal, when it refused.
    pub relay: Option<RelayError>,
    /// For people (from the node library, in English).
    pub message: String,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the console needs from the node: `filet_client::Node` implements it (in the
/// `filet-client` crate, which depends on this one).
pub trait Backend: Send + Sync + 'static {
    /// Who this node is, per the relay.
    fn whoami(&self) -> BoxFuture<'_, Result<WhoAmI, BackendError>>;
    /// Posts an alert or a follow-up.
    fn post(&self, draft: AlertDraft) -> BoxFuture<'_, Result<Receipt, BackendError>>;
    /// This unit's deliveries, waiting ones first; the channel ends when the connection
    /// does (the console subscribes again).
    fn subscribe(&self) -> BoxFuture<'_, Result<mpsc::Receiver<Disclosed>, BackendError>>;
    /// Acknowledges one message for this unit.
    fn ack(&self, alert: AlertId) -> BoxFuture<'_, Result<u64, BackendError>>;
    /// One alert: for the sender's party, the whole alert and its recipient units.
    fn get_alert(
        &self,
        alert: AlertId,
    ) -> BoxFuture<'_, Result<(Disclosed, Vec<UnitRef>), BackendError>>;
    /// Where an alert of this party stands with each recipient unit.
    fn status(&self, alert: AlertId) -> BoxFuture<'_, Result<Vec<RecipientStatus>, BackendError>>;
    /// Pulls the relay's log into the audit directory `dir` and verifies the directory
    /// (`filet audit pull`, then `verify`), telling `progress` as it goes.
    fn audit_pull(
        &self,
        dir: PathBuf,
        verifier_key: Option<String>,
        progress: audit::ProgressFn,
    ) -> BoxFuture<'_, Result<audit::Verified, audit::AuditFailure>> {
        let _ = (dir, verifier_key, progress);
        Box::pin(async { Err(unsupported()) })
    }
    /// The compliance report of the audit directory `dir`, verified first
    /// (`filet audit report`); days are local days in `zone`.
    fn audit_report(
        &self,
        dir: PathBuf,
        query: audit::ReportQuery,
        zone: TimeZone,
    ) -> BoxFuture<'_, Result<audit::ReportData, audit::AuditFailure>> {
        let _ = (dir, query, zone);
        Box::pin(async { Err(unsupported()) })
    }
    /// Entry `index` and its inclusion proof against the relay's newest checkpoint, checked
    /// with the key pinned in `dir` (`filet audit prove`).
    fn audit_prove(
        &self,
        dir: PathBuf,
        index: u64,
    ) -> BoxFuture<'_, Result<audit::Included, audit::AuditFailure>> {
        let _ = (dir, index);
        Box::pin(async { Err(unsupported()) })
    }
}

fn unsupported() -> audit::AuditFailure {
    audit::AuditFailure::new("relay", &[], "this node cannot audit")
}
