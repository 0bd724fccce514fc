//! The Filet relay: receives alerts from nodes over mutual-TLS QUIC, checks them against the
//! information-sharing agreement, stores and forwards to each permitted recipient unit only
//! the fields it may see, and writes a tamper-evident audit log of every disclosure.
//!
//! Where things live:
//! - **Identity** — [`identity`]: TLS settings and the principal of a connection
//!   (requirements §3); [`crl`]: the revocation list in force and its freshness.
//! - **Policy** — the agreement and its decisions are `filet_proto`'s (no I/O); the relay
//!   applies them in [`ledger`] (new alerts and follow-ups, at commit) and
//!   [`server::requests`] (the re-check at delivery, who may see an alert, audit scope).
//! - **Routing** — [`ledger`]: the alert lifecycle without I/O (threads, mailboxes'
//!   accounting, timers, follow-ups, limits, the audit entries each op produces);
//!   [`commit`]: the group-commit thread, sole writer of the storage: runs the ledger,
//!   commits each batch, then publishes and answers; [`recovery`]: start-up repair.
//! - **Storage** — [`storage`]: the storage trait at the batch and its data-directory
//!   implementation over [`store`] (alert records in sled; [`sealed`]: their per-alert
//!   keys) and [`audit_log`]; [`record`]: what is kept of each alert; [`datadir`]: the
//!   directory's lock, permissions and keys.
//! - **Audit** — [`audit_log`]: the log files, Merkle tree and checkpoints.
//! - **Delivery** — [`mailboxes`]: what each unit has waiting, published after commit;
//!   [`server`]: the QUIC endpoint, connections, streams and pushed deliveries (requirements §6),
//!   with one handler per request kind in [`server::requests`].
//! - **Running it** — [`start`]: [`Relay`] (start, recovery, run, shutdown); [`state`]:
//!   [`state::Shared`], what every task reads; [`config`]: settings (`relay.toml`, flags)
//!   with documented defaults; [`control`]: live reload and the control socket;
//!   [`metrics`]: Prometheus over HTTP; [`ratelimit`]: post, handshake and refusal
//!   limits; [`clock`]: time, controllable in tests; [`error`]: [`RelayError`].
//!
//! Modules import downwards only: `start` → `server` → `state` → `commit` → `ledger`,
//! `storage` → `mailboxes`, `store`, `audit_log`, `record`; `control` and `metrics` never import `server`.
//!
//! Data directory (0700, its files 0600): `lock` (held by the running relay, see
//! [`datadir`]), `store/` (sled), `store.keys` (the keys of its sealed records, see
//! [`sealed`]), `store.mark`, `audit/` (see [`audit_log`]), `keys/audit-ed25519.pk8`
//! (the checkpoint signing key), `keys/subject-ref.key` (the HMAC key of subject
//! references), `origin` (the log's checkpoint origin), `control/control.sock` (the
//! control socket, in a directory of mode 0700).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit_log;
pub mod clock;
pub mod commit;
pub mod config;
pub mod control;
pub mod crl;
pub mod datadir;
pub mod error;
pub mod files;
pub mod identity;
pub mod ledger;
pub mod mailboxes;
pub mod metrics;
pub mod ratelimit;
pub mod record;
pub mod recovery;
pub mod sealed;
pub mod server;
pub mod start;
pub mod state;
pub mod storage;
pub mod store;

pub use datadir::Keys;
pub use error::{load_agreement, RelayError};
pub use start::{Relay, RelayHandle};

/// The repository's example agreement and alert (those of the README's tour and the demo),
/// for the unit tests.
#[cfg(test)]
pub(crate) mod examples {
    /// `examples/agreement.toml`.
    pub const AGREEMENT: &str = include_str!("../../examples/agreement.toml");
    /// `examples/alerts/runaway.toml`.
    pub const RUNAWAY: &str = include_str!("../../examples/alerts/runaway.toml");
}
