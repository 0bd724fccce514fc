//! The Filet node: a library to connect to the relay and exchange alerts, and the `filet`
//! command built on it.
//!
//! - [`node`]: [`Node`], a mutual-TLS QUIC connection with pipelined requests and pushed
//!   deliveries; [`NodeConfig`] from a profile.
//! - [`transport`]: frames over QUIC streams and the crypto provider (from `filet-net`,
//!   shared with the relay), and connection errors described for people.
//! - [`audit`]: the auditor's verification of the log online; [`audit_dir`]: the
//!   auditor's local, append-only copy, pulled and verified offline; [`report`]:
//!   compliance reports.
//! - [`render`]: human and JSON output.
//! - [`console`]: the node as the web console's backend (`filet console`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod audit_dir;
pub mod console;
pub mod node;
pub mod render;
pub mod report;
pub mod transport;

pub use node::{ClientError, Closer, Node, NodeConfig};
