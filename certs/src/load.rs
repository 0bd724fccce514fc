//! Loading certificates, keys and revocation lists for rustls (used by the relay and the
//! node client). Every error names the file.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::CertError;

/// The error for a PEM file: [`CertError::Read`] for an I/O error, else [`CertError::Pem`].
pub(crate) fn pem_error(path: &Path, source: pem::Error) -> CertError {
    match source {
        pem::Error::Io(source) => CertError::Read {
            path: path.to_path_buf(),
            source,
        },
        source => CertError::Pem {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn load_all<T: PemObject>(path: &Path, what: &'static str) -> Result<Vec<T>, CertError> {
    let items = T::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if items.is_empty() {
        return Err(CertError::Empty {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(items)
}

/// Every certificate of a PEM file (at least one).
///
/// # Errors
/// [`CertError::Read`], [`CertError::Pem`], [`CertError::Empty`].
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    load_all(path, "certificate")
}

/// The first private key (PKCS#8, SEC1 or PKCS#1) of a PEM file.
///
/// This does not check the file's permissions: see [`check_key_permissions`].
///
/// # Errors
/// [`CertError::Read`], [`CertError::Pem`], [`CertError::Empty`].
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(CertError::Empty {
            path: path.to_path_buf(),
            what: "private key",
        }),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// Every revocation list of a PEM file (at least one).
///
/// # Errors
/// [`CertError::Read`], [`CertError::Pem`], [`CertError::Empty`].
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let crls: Vec<CertificateRevocationListDer<'static>> = load_all(path, "revocation list")?;
    // Read each one now, so that a damaged file is named here rather than reported by the
    // TLS layer without its path.
    for (i, crl) in crls.iter().enumerate() {
        match x509_parser::parse_x509_crl(crl.as_ref()) {
            Ok(([], _)) => {}
            Ok((rest, _)) => {
                return Err(CertError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!(
                        "revocation list {} has {} bytes after its end: not a valid CRL",
                        i + 1,
                        rest.len()
                    ),
                })
            }
            Err(e) => {
                return Err(CertError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("revocation list {} is not a valid CRL: {e}", i + 1),
                })
            }
        }
    }
    Ok(crls)
}

/// Checks that a private key file is not readable or writable by its group or others.
///
/// # Errors
/// [`CertError::KeyPermissions`], a warning ([`CertError::is_warning`]) that the caller
/// may report and go on; [`CertError::Read`] when the file cannot be examined.
pub fn check_key_permissions(path: &Path) -> Result<(), CertError> {
    let mode = fs::metadata(path)
        .map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        Err(CertError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        })
    } else {
        Ok(())
    }
}
