//! [`RelayError`]: why the relay cannot start or stopped, each naming the file or setting
//! at fault; and [`load_agreement`], the agreement file read and checked (at start and at
//! each reload).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use filet_proto::agreement::{Agreement, AgreementError};

use crate::audit_log::AuditLogError;
use crate::commit::CommitError;
use crate::identity::IdentityError;
use crate::store::StoreError;

/// Why the relay cannot start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A setting is out of its bounds (see [`crate::config::BOUNDS`]); the message names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// The agreement file cannot be read.
    #[error("agreement {path}: {source}")]
    AgreementRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The agreement is invalid (file, line, rule).
    #[error(transparent)]
    Agreement(#[from] AgreementError),
    /// The PKI cannot be loaded or used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A file of the data directory cannot be used.
    #[error("data directory: {path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The commit thread failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The audit log does not match what the relay has published.
    #[error("the audit log does not match the last signed checkpoint: {0}; the relay will not serve a broken log (restore the data directory from a backup)")]
    Checkpoint(String),
    /// A socket cannot be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener: the QUIC endpoint (`listen`) or the metrics (`metrics.listen`).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Reads and validates an agreement file.
///
/// # Errors
/// [`RelayError::AgreementRead`] or [`RelayError::Agreement`] (file, line, rule).
pub fn load_agreement(path: &Path) -> Result<Agreement, RelayError> {
    let text = std::fs::read_to_string(path).map_err(|source| RelayError::AgreementRead {
        path: path.to_owned(),
        source,
    })?;
    Ok(Agreement::parse(&text, &path.display().to_string())?)
}
