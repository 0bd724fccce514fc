//! The library's error type.

use std::io;
use std::path::PathBuf;

use filet_proto::agreement::AgreementError;
use filet_proto::principal::{NameError, UnitRef};

use crate::identity::SubjectError;

/// Everything that can go wrong while issuing, loading or revoking certificates.
///
/// Every variant that concerns a file names it. [`CertError::KeyPermissions`] is a warning:
/// see [`CertError::is_warning`].
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file or directory cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A PEM file is malformed.
    #[error("{path}: malformed PEM")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file holds no item of the expected kind.
    #[error("{path}: no {what} found")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was expected: `certificate`, `private key`, `revocation list`.
        what: &'static str,
    },
    /// A certificate, key or revocation list is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The agreement file is not valid.
    #[error("invalid agreement")]
    Agreement(#[source] AgreementError),
    /// A party that the agreement does not list.
    #[error("party {party} is not in agreement {agreement} (its parties: {known})")]
    UnknownParty {
        /// The party code.
        party: String,
        /// The agreement file.
        agreement: PathBuf,
        /// The parties it lists, comma-separated.
        known: String,
    },
    /// A unit that the party does not have in the agreement.
    #[error("unit {unit} is not in agreement {agreement} (units of {party}: {known})")]
    UnknownUnit {
        /// The unit.
        unit: UnitRef,
        /// The party code.
        party: String,
        /// The agreement file.
        agreement: PathBuf,
        /// The party's units, comma-separated.
        known: String,
    },
    /// A party, unit or node name is malformed.
    #[error("invalid {what} {value:?}")]
    Name {
        /// `party`, `unit`, `node`, `principal`.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is malformed.
        #[source]
        source: NameError,
    },
    /// Two units of the agreement would write the same files.
    #[error("units {first} and {second} would both be written as {stem}: rename one of them")]
    FileNameClash {
        /// The first unit.
        first: UnitRef,
        /// The second unit.
        second: UnitRef,
        /// The shared file stem.
        stem: String,
    },
    /// The CA (certificate or key) is missing.
    #[error("no CA: {path} does not exist; run `filet-certs init` first")]
    NoCa {
        /// The missing file.
        path: PathBuf,
    },
    /// A file that would be replaced already exists.
    #[error("{path} already exists (use --force to replace it{consequence})")]
    Exists {
        /// The file.
        path: PathBuf,
        /// What replacing it implies, if anything (starts with `; `).
        consequence: &'static str,
    },
    /// A relay address is not `HOST:PORT`.
    #[error("relay address {0:?} is not HOST:PORT")]
    RelayAddress(String),
    /// A certificate specification cannot be encoded.
    #[error("invalid certificate specification: {0}")]
    Spec(String),
    /// rcgen refused to make a certificate, key or revocation list.
    #[error("cannot generate the {what}")]
    Generate {
        /// What was being made.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A certificate to revoke was not issued by this directory's CA.
    #[error("{path} was not issued by the CA in {ca}")]
    NotIssuedByCa {
        /// The certificate file.
        path: PathBuf,
        /// The CA certificate file.
        ca: PathBuf,
    },
    /// A certificate to revoke is a CA certificate (this directory's own, or another CA's
    /// it signed): a CRL revokes the certificates a CA issued to nodes and relays.
    #[error("{path} is a CA certificate, not a node's or the relay's: only certificates this CA issued to nodes and relays can be revoked (a compromised CA needs a new PKI: filet-certs init in a new directory, then new certificates for every node)")]
    RevokeCa {
        /// The certificate file.
        path: PathBuf,
    },
    /// A certificate is already on the revocation list.
    #[error("{path}: serial {serial} is already revoked")]
    AlreadyRevoked {
        /// The certificate file.
        path: PathBuf,
        /// Its serial, in hex.
        serial: String,
    },
    /// A serial given on the command line is not hexadecimal.
    #[error("--serial: {serial:?} is not a hexadecimal serial number")]
    BadSerial {
        /// The serial as given.
        serial: String,
    },
    /// A certificate's subject does not name a principal.
    #[error("{path}")]
    Subject {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        #[source]
        source: SubjectError,
    },
    /// Warning: a private key file is readable by its group or by others.
    #[error("{path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl CertError {
    /// Whether this is only a warning that the caller may report and go on
    /// ([`CertError::KeyPermissions`]).
    pub fn is_warning(&self) -> bool {
        matches!(self, CertError::KeyPermissions { .. })
    }
}

impl From<AgreementError> for CertError {
    fn from(e: AgreementError) -> Self {
        CertError::Agreement(e)
    }
}
