//! Revocation: `revoked.toml` (the record) and `crl.pem` (the signed list the relay reads).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::error::CertError;
use crate::fsutil::{self, CERT_MODE};
use crate::pki::{Ca, Layout};
use crate::spec::hex;

/// How long a revocation list is valid (its `nextUpdate`): 30 days.
pub const CRL_VALIDITY: Duration = Duration::days(30);

/// Why a certificate is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given (RFC 5280: the CRL entry then has no reason code).
    #[default]
    Unspecified,
    /// The private key was, or may have been, disclosed.
    KeyCompromise,
    /// Replaced by a new certificate.
    Superseded,
    /// The node is no longer in service.
    CessationOfOperation,
}

impl RevocationReason {
    /// Every reason, in the order of their RFC 5280 codes.
    pub const ALL: [RevocationReason; 4] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];

    /// The name used on the command line and in `revoked.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
        }
    }

    fn code(self) -> Option<rcgen::RevocationReason> {
        match self {
            RevocationReason::Unspecified => None,
            RevocationReason::KeyCompromise => Some(rcgen::RevocationReason::KeyCompromise),
            RevocationReason::Superseded => Some(rcgen::RevocationReason::Superseded),
            RevocationReason::CessationOfOperation => {
                Some(rcgen::RevocationReason::CessationOfOperation)
            }
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RevocationReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "unknown revocation reason {s:?} (one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// One revoked certificate, as `revoked.toml` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The serial, lowercase hex.
    pub serial: String,
    /// When it was revoked (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
    /// The certificate's subject, for the reader.
    #[serde(default)]
    pub subject: String,
}

/// `revoked.toml`: the CRL number of the current `crl.pem` and every revocation so far.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// The number of the last CRL written (1 for the empty list `init` writes).
    pub crl_number: u64,
    /// The revoked certificates, oldest first.
    #[serde(default)]
    pub revoked: Vec<Revocation>,
}

const HEADER: &str = "# Certificates revoked by this CA. Written by `filet-certs revoke`;\n\
                      # crl.pem is signed from this file. Do not edit by hand.\n\n";

impl RevocationList {
    /// Reads `revoked.toml`.
    ///
    /// # Errors
    /// [`CertError::Read`] or [`CertError::Invalid`], naming the file. A missing file is an
    /// error: starting again from an empty list would silently un-revoke certificates.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        let text = fs::read_to_string(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| CertError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Whether the serial (hex) is on the list.
    pub fn contains(&self, serial: &str) -> bool {
        self.revoked
            .iter()
            .any(|r| r.serial.eq_ignore_ascii_case(serial))
    }
}

fn parse_hex(path: &Path, s: &str) -> Result<Vec<u8>, CertError> {
    let bad = || CertError::Invalid {
        path: path.to_path_buf(),
        reason: format!("serial {s:?} is not hexadecimal"),
    };
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

impl Ca {
    /// Signs a revocation list (PEM) of `list`'s entries, numbered `list.crl_number`, valid
    /// from now for [`CRL_VALIDITY`]. `source` names the list's file in errors.
    ///
    /// # Errors
    /// [`CertError::Invalid`] for a malformed serial, [`CertError::Generate`].
    pub fn crl(&self, list: &RevocationList, source: &Path) -> Result<String, CertError> {
        let now = OffsetDateTime::now_utc();
        self.crl_dated(list, source, now, now + CRL_VALIDITY)
    }

    /// Signs a revocation list (PEM) as [`Ca::crl`] does, with the given `thisUpdate` and
    /// `nextUpdate` (tests make stale and nearly stale lists with it).
    ///
    /// # Errors
    /// As [`Ca::crl`].
    pub fn crl_dated(
        &self,
        list: &RevocationList,
        source: &Path,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, CertError> {
        let revoked_certs = list
            .revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&parse_hex(source, &r.serial)?),
                    revocation_time: r.revoked_at,
                    reason_code: r.reason.code(),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CertError>>()?;
        let number = list.crl_number.to_be_bytes();
        let skip = number.iter().take_while(|b| **b == 0).count().min(7);
        let generate = |source| CertError::Generate {
            what: format!("revocation list number {}", list.crl_number),
            source,
        };
        CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number[skip..]),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(self.issuer())
        .map_err(generate)?
        .pem()
        .map_err(generate)
    }
}

/// Signs the CRL of `list` and writes `revoked.toml` then `crl.pem` (each atomically).
pub(crate) fn write(
    layout: &Layout,
    ca: &Ca,
    list: &RevocationList,
) -> Result<Vec<PathBuf>, CertError> {
    let (crl_path, revoked_path) = (layout.crl(), layout.revoked());
    let mut list = list.clone();
    if list.crl_number == 0 {
        list.crl_number = 1;
    }
    let crl = ca.crl(&list, &revoked_path)?;
    let text = toml::to_string(&list).map_err(|e| CertError::Invalid {
        path: revoked_path.clone(),
        reason: e.to_string(),
    })?;
    fsutil::write_file(
        &revoked_path,
        format!("{HEADER}{text}").as_bytes(),
        CERT_MODE,
    )?;
    fsutil::write_file(&crl_path, crl.as_bytes(), CERT_MODE)?;
    Ok(vec![crl_path, revoked_path])
}

/// `filet-certs revoke`: adds the certificate in `cert_file` to `revoked.toml` and rewrites
/// `crl.pem` with the next CRL number.
///
/// # Errors
/// [`CertError::NoCa`]; [`CertError::Read`]/[`CertError::Pem`]/[`CertError::Empty`]/
/// [`CertError::Invalid`] for the certificate or `revoked.toml`;
/// [`CertError::RevokeCa`] for a CA certificate; [`CertError::NotIssuedByCa`];
/// [`CertError::AlreadyRevoked`]; [`CertError::Write`].
pub fn revoke(
    dir: &Path,
    cert_file: &Path,
    reason: RevocationReason,
) -> Result<Revocation, CertError> {
    let layout = Layout::new(dir);
    let ca = Ca::load(dir)?;
    let der = CertificateDer::pem_file_iter(cert_file)
        .map_err(|source| crate::load::pem_error(cert_file, source))?
        .next()
        .ok_or_else(|| CertError::Empty {
            path: cert_file.to_path_buf(),
            what: "certificate",
        })?
        .map_err(|source| crate::load::pem_error(cert_file, source))?;
    let invalid = |reason: String| CertError::Invalid {
        path: cert_file.to_path_buf(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| invalid(format!("not a valid certificate: {e}")))?;
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der())
        .map_err(|e| invalid(format!("the CA certificate is not valid: {e}")))?;
    // The CA's own certificate is self-signed, so it passes the issuer check below.
    if der.as_ref() == ca.cert_der().as_ref() || cert.is_ca() {
        return Err(CertError::RevokeCa {
            path: cert_file.to_path_buf(),
        });
    }
    if cert.issuer().as_raw() != ca_cert.subject().as_raw()
        || cert.verify_signature(Some(ca_cert.public_key())).is_err()
    {
        return Err(CertError::NotIssuedByCa {
            path: cert_file.to_path_buf(),
            ca: layout.ca_cert(),
        });
    }
    add(
        &layout,
        &ca,
        hex(cert.raw_serial()),
        cert.subject().to_string(),
        reason,
        cert_file,
    )
}

/// The node certificates this PKI directory holds (`nodes/*.crt.pem`), as (file,
/// certificate DER), in file name order.
fn node_certs(layout: &Layout) -> Result<Vec<(PathBuf, CertificateDer<'static>)>, CertError> {
    let dir = layout.nodes_dir();
    let read = |source| CertError::Read {
        path: dir.clone(),
        source,
    };
    let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(read(e)),
    };
    files.retain(|p| p.to_string_lossy().ends_with(".crt.pem"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Some(der) = crate::load::load_certs(&f)?.into_iter().next() {
            out.push((f, der));
        }
    }
    Ok(out)
}

/// `filet-certs revoke --node NAME`: revokes the node certificate of this PKI directory
/// whose node name (its CN) or whole principal (`PARTY/UNIT/node`) is `name`.
///
/// # Errors
/// [`CertError::Invalid`] naming `nodes/` when no certificate, or more than one, has that
/// name; then as [`revoke`].
pub fn revoke_node(
    dir: &Path,
    name: &str,
    reason: RevocationReason,
) -> Result<Revocation, CertError> {
    let layout = Layout::new(dir);
    let mut found = Vec::new();
    for (file, der) in node_certs(&layout)? {
        if let Ok(p) = crate::identity::principal_of(der.as_ref()) {
            if p.node == name || p.to_string() == name {
                found.push(file);
            }
        }
    }
    match found.as_slice() {
        [file] => revoke(dir, file, reason),
        [] => Err(CertError::Invalid {
            path: layout.nodes_dir(),
            reason: format!(
                "no node certificate named {} (give its node name, PARTY/UNIT/node, or the certificate file)",
                name.escape_debug()
            ),
        }),
        many => Err(CertError::Invalid {
            path: layout.nodes_dir(),
            reason: format!(
                "{} node certificates are named {} ({}): give PARTY/UNIT/node or the certificate file",
                many.len(),
                name.escape_debug(),
                many.iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// A serial as the operator may type it (`0a1b…`, `0A:1B:…`), as lowercase hex without
/// separators; `None` if it is not hexadecimal.
pub fn normalize_serial(serial: &str) -> Option<String> {
    let s: String = serial
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s };
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// `filet-certs revoke --serial HEX`: revokes the certificate of that serial. When a node
/// certificate of this PKI directory has it, its subject is recorded; a serial no longer on
/// disk (a certificate replaced with `node --force`) is revoked all the same, without a
/// subject.
///
/// # Errors
/// [`CertError::BadSerial`] for a serial that is not hexadecimal; then as [`revoke`].
pub fn revoke_serial(
    dir: &Path,
    serial: &str,
    reason: RevocationReason,
) -> Result<Revocation, CertError> {
    let layout = Layout::new(dir);
    let wanted = normalize_serial(serial).ok_or_else(|| CertError::BadSerial {
        serial: serial.to_owned(),
    })?;
    for (file, der) in node_certs(&layout)? {
        if crate::identity::serial_hex(der.as_ref()).ok().as_deref() == Some(wanted.as_str()) {
            return revoke(dir, &file, reason);
        }
    }
    let ca = Ca::load(dir)?;
    let cert_file = layout.nodes_dir();
    add(&layout, &ca, wanted, String::new(), reason, &cert_file)
}

/// Adds one revocation to `revoked.toml` and re-signs `crl.pem` with the next number.
fn add(
    layout: &Layout,
    ca: &Ca,
    serial: String,
    subject: String,
    reason: RevocationReason,
    named: &Path,
) -> Result<Revocation, CertError> {
    let mut list = RevocationList::load(&layout.revoked())?;
    if list.contains(&serial) {
        return Err(CertError::AlreadyRevoked {
            path: named.to_path_buf(),
            serial,
        });
    }
    let revocation = Revocation {
        serial,
        revoked_at: OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        reason,
        subject,
    };
    list.revoked.push(revocation.clone());
    list.crl_number += 1;
    write(layout, ca, &list)?;
    Ok(revocation)
}

/// `filet-certs crl renew`: re-signs `crl.pem` with the same revocations, the next CRL
/// number and a new validity of [`CRL_VALIDITY`] from now, before the relay's copy passes
/// its nextUpdate. Returns the list as written.
///
/// # Errors
/// [`CertError::NoCa`]; [`CertError::Read`]/[`CertError::Invalid`] for `revoked.toml`;
/// [`CertError::Write`].
pub fn renew_crl(dir: &Path) -> Result<RevocationList, CertError> {
    let layout = Layout::new(dir);
    let ca = Ca::load(dir)?;
    let mut list = RevocationList::load(&layout.revoked())?;
    list.crl_number += 1;
    write(&layout, &ca, &list)?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for r in RevocationReason::ALL {
            assert_eq!(r.as_str().parse::<RevocationReason>(), Ok(r));
        }
        let e = "lost".parse::<RevocationReason>().unwrap_err();
        assert!(e.contains("key-compromise"), "{e}");
    }

    #[test]
    fn hex_serials() {
        let p = Path::new("revoked.toml");
        assert_eq!(parse_hex(p, "00ff10").unwrap(), vec![0, 255, 16]);
        assert!(parse_hex(p, "0g").is_err());
        assert!(parse_hex(p, "abc").is_err());
        assert!(parse_hex(p, "").is_err());
    }
}
