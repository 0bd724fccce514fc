//! Filet's shared language: everything the relay, the node client and the PKI tool must
//! agree on, with no I/O.
//!
//! - [`principal`]: units (`PARTY/UNIT`), principals (`PARTY/UNIT/node`), selectors.
//! - [`alert`]: the alert model of requirements §5, its validation and redaction.
//! - [`agreement`]: the information-sharing agreement (requirements §4): parsing and validation
//!   with file/line/rule errors.
//! - [`policy`]: every disclosure decision, as pure functions of the agreement: routing a
//!   new alert or a follow-up, the re-check at delivery, who may see an alert or its
//!   status, which audit entries and proofs a unit may have.
//! - [`audit`]: audit log entries (requirements §7).
//! - [`merkle`]: RFC 9162 Merkle tree hashing, proofs and their verification.
//! - [`checkpoint`]: C2SP tlog-checkpoints and C2SP signed notes (Ed25519).
//! - [`wire`]: the relay protocol's messages; [`codec`]: their frames (the only user of
//!   bincode).
//! - [`cap`]: CAP 1.2 (OASIS) checking, export and import, with safe XML.
//! - [`id`], [`time`]: alert ids and timestamps; [`profile`]: node profiles.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agreement;
pub mod alert;
pub mod audit;
pub mod cap;
pub mod checkpoint;
pub mod codec;
pub mod id;
pub mod merkle;
pub mod policy;
pub mod principal;
pub mod profile;
pub mod time;
pub mod wire;

mod toml_words;

pub use alert::{
    AlertDraft, Category, Content, Disclosed, FieldPath, FieldSet, Kind, Risk, Status,
};
pub use id::AlertId;
pub use principal::{Principal, Selector, UnitRef};
pub use time::Timestamp;
