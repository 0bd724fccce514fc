//! The Filet relay: receives alerts from nodes over mutual-TLS QUIC, checks them against the
//! information-sharing agreement, stores and forwards to each permitted recipient unit only
//! the fields it may see, and writes a tamper-evident audit log of every disclosure.
//!
//! Where things live:
//! - **Identity** — [`identity`]: TLS settings and the principal of a connection
//!   (SPEC §3); [`crl`]: the revocation list in force and its freshness.
//! - **Policy** — the agreement and its decisions are `filet_proto`'s (no I/O); the relay
//!   applies them in [`commit`] (new alerts and follow-ups, at commit) and
//!   [`server::requests`] (the re-check at delivery, who may see an alert, audit scope).
//! - **Routing** — [`commit`]: the group-commit thread decides each op (post, ack,
//!   timers) against its index and is the sole writer of the store and the audit log.
//! - **Storage** — [`store`]: alert records in sled, [`sealed`]: their per-alert keys;
//!   [`datadir`]: the directory's lock, permissions and keys.
//! - **Audit** — [`audit_log`]: the log files, Merkle tree and checkpoints.
//! - **Delivery** — [`mailboxes`]: what each unit has waiting, published after commit;
//!   [`server`]: the QUIC endpoint, connections, streams and pushed deliveries (SPEC §6),
//!   with one handler per request kind in [`server::requests`].
//! - **Running it** — [`start`]: [`Relay`] (start, recovery, run, shutdown); [`state`]:
//!   [`state::Shared`], what every task reads; [`config`]: settings (`relay.toml`, flags)
//!   with documented defaults; [`control`]: live reload and the control socket;
//!   [`metrics`]: Prometheus over HTTP; [`ratelimit`]: post, handshake and refusal
//!   limits; [`clock`]: time, controllable in tests; [`error`]: [`RelayError`].
//!
//! Modules import downwards only: `start` → `server` → `state` → `commit` →
//! `mailboxes`, `store`, `audit_log`; `control` and `metrics` never import `server`.
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
pub mod identity;
pub mod mailboxes;
pub mod metrics;
pub mod ratelimit;
pub mod sealed;
pub mod server;
pub mod start;
pub mod state;
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
