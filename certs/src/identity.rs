//! Who a certificate names, and what it says (for `filet-certs show`).

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::Path;

use filet_proto::principal::{NameError, Principal};
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::error::CertError;
use crate::spec::hex;

/// Why a certificate's subject does not name a principal (requirements §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The subject has no such attribute (`"O"`, `"OU"` or `"CN"`).
    #[error("certificate subject has no {0} attribute")]
    MissingAttribute(&'static str),
    /// The subject has the attribute more than once.
    #[error("certificate subject has more than one {0} attribute")]
    RepeatedAttribute(&'static str),
    /// The attribute is not a UTF8String or PrintableString of valid UTF-8.
    #[error("certificate subject {0} is not a valid UTF-8 or printable string")]
    NotUtf8(&'static str),
    /// The attributes are strings but not a well-formed party, unit or node name.
    #[error("certificate subject does not name a principal: {0}")]
    Malformed(NameError),
    /// The certificate cannot be parsed at all.
    #[error("certificate cannot be parsed: {0}")]
    Unparsable(String),
}

/// The single value of the attribute `name` among `values`.
fn single<'a>(
    name: &'static str,
    mut values: impl Iterator<Item = &'a AttributeTypeAndValue<'a>>,
) -> Result<&'a str, SubjectError> {
    let first = values.next().ok_or(SubjectError::MissingAttribute(name))?;
    if values.next().is_some() {
        return Err(SubjectError::RepeatedAttribute(name));
    }
    let value = first.attr_value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString => {
            std::str::from_utf8(value.data).map_err(|_| SubjectError::NotUtf8(name))
        }
        _ => Err(SubjectError::NotUtf8(name)),
    }
}

fn principal_of_name(subject: &X509Name<'_>) -> Result<Principal, SubjectError> {
    // Counted first, all three, so that the error names the first attribute at fault.
    let party = single("O", subject.iter_organization());
    let unit = single("OU", subject.iter_organizational_unit());
    let node = single("CN", subject.iter_common_name());
    Principal::new(party?, unit?, node?).map_err(SubjectError::Malformed)
}

fn parse(cert_der: &[u8]) -> Result<X509Certificate<'_>, SubjectError> {
    match X509Certificate::from_der(cert_der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(SubjectError::Unparsable(
            "trailing bytes after the certificate".into(),
        )),
        Err(e) => Err(SubjectError::Unparsable(e.to_string())),
    }
}

/// The principal named by a node certificate: `O` = party, `OU` = unit, `CN` = node, each
/// present exactly once as a UTF8String or PrintableString and well formed
/// ([`Principal::new`]).
///
/// This reads the subject only; that the certificate is valid, chains to the CA and is not
/// revoked is the TLS verifier's business.
///
/// # Errors
/// [`SubjectError`], naming the attribute at fault (`O`, then `OU`, then `CN`).
pub fn principal_of(cert_der: &[u8]) -> Result<Principal, SubjectError> {
    principal_of_name(parse(cert_der)?.subject())
}

/// The serial number of a certificate, lowercase hex as encoded (no separators).
///
/// # Errors
/// [`SubjectError::Unparsable`].
pub fn serial_hex(cert_der: &[u8]) -> Result<String, SubjectError> {
    Ok(hex(parse(cert_der)?.raw_serial()))
}

fn ip_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        IpAddr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        IpAddr::from(v6).to_string()
    } else {
        hex(bytes)
    }
}

fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let parts: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// What a certificate says, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, e.g. `O=SPVQ, OU=ESM, CN=spvq-esm-01`.
    pub subject: String,
    /// The issuer.
    pub issuer: String,
    /// The serial, lowercase hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
    /// Key usages, e.g. `digitalSignature`.
    pub key_usages: Vec<String>,
    /// Extended key usages, e.g. `clientAuth`.
    pub ekus: Vec<String>,
    /// Subject alternative names, e.g. `DNS:relay.example`, `IP:127.0.0.1`.
    pub sans: Vec<String>,
    /// SHA-256 of the DER, colon-separated uppercase hex.
    pub sha256: String,
    /// The principal it names, or why it names none.
    pub principal: Result<Principal, SubjectError>,
}

/// Describes a certificate.
///
/// # Errors
/// [`SubjectError::Unparsable`].
pub fn describe(cert_der: &[u8]) -> Result<CertInfo, SubjectError> {
    let cert = parse(cert_der)?;
    let mut key_usages = Vec::new();
    if let Ok(Some(ku)) = cert.key_usage() {
        let k = ku.value;
        for (on, name) in [
            (k.digital_signature(), "digitalSignature"),
            (k.non_repudiation(), "nonRepudiation"),
            (k.key_encipherment(), "keyEncipherment"),
            (k.data_encipherment(), "dataEncipherment"),
            (k.key_agreement(), "keyAgreement"),
            (k.key_cert_sign(), "keyCertSign"),
            (k.crl_sign(), "cRLSign"),
            (k.encipher_only(), "encipherOnly"),
            (k.decipher_only(), "decipherOnly"),
        ] {
            if on {
                key_usages.push(name.to_owned());
            }
        }
    }
    let mut ekus = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let e = eku.value;
        for (on, name) in [
            (e.any, "any"),
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "ocspSigning"),
        ] {
            if on {
                ekus.push(name.to_owned());
            }
        }
        ekus.extend(e.other.iter().map(|oid| oid.to_id_string()));
    }
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            sans.push(match name {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => format!("IP:{}", ip_text(b)),
                other => format!("{other}"),
            });
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_ca: cert.is_ca(),
        key_usages,
        ekus,
        sans,
        sha256: fingerprint(cert_der),
        principal: principal_of_name(cert.subject()),
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "certificate")?;
        writeln!(f, "  subject:     {}", self.subject)?;
        writeln!(f, "  issuer:      {}", self.issuer)?;
        writeln!(f, "  serial:      {}", self.serial)?;
        writeln!(f, "  not before:  {}", rfc3339(self.not_before))?;
        writeln!(f, "  not after:   {}", rfc3339(self.not_after))?;
        writeln!(
            f,
            "  CA:          {}",
            if self.is_ca { "yes" } else { "no" }
        )?;
        writeln!(f, "  key usage:   {}", list(&self.key_usages))?;
        writeln!(f, "  ext. usage:  {}", list(&self.ekus))?;
        writeln!(f, "  names:       {}", list(&self.sans))?;
        writeln!(f, "  SHA-256:     {}", self.sha256)?;
        match &self.principal {
            Ok(p) => write!(f, "  principal:   {p}"),
            Err(e) => write!(f, "  principal:   none ({e})"),
        }
    }
}

/// One entry of a revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedInfo {
    /// The serial, lowercase hex.
    pub serial: String,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// The reason code's name, when the entry has one (e.g. `KeyCompromise`).
    pub reason: Option<String>,
}

/// What a revocation list says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuer.
    pub issuer: String,
    /// The CRL number, decimal.
    pub crl_number: Option<String>,
    /// When it was issued.
    pub this_update: OffsetDateTime,
    /// When the next one is due.
    pub next_update: Option<OffsetDateTime>,
    /// The revoked certificates.
    pub revoked: Vec<RevokedInfo>,
    /// SHA-256 of the DER, colon-separated uppercase hex.
    pub sha256: String,
    /// The authority key identifier, hex, when the list has one: with the issuer, which
    /// CA key signed it (a CA made again under the same name has another).
    pub authority_key_id: Option<String>,
}

impl CrlInfo {
    /// SHA-256 of the DER, lowercase hex without separators (as audit entries write it).
    pub fn sha256_hex(&self) -> String {
        self.sha256.replace(':', "").to_ascii_lowercase()
    }
}

/// Describes a revocation list.
///
/// # Errors
/// [`SubjectError::Unparsable`].
pub fn describe_crl(crl_der: &[u8]) -> Result<CrlInfo, SubjectError> {
    let (_, crl) = CertificateRevocationList::from_der(crl_der)
        .map_err(|e| SubjectError::Unparsable(e.to_string()))?;
    Ok(CrlInfo {
        issuer: crl.issuer().to_string(),
        crl_number: crl.crl_number().map(ToString::to_string),
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        revoked: crl
            .iter_revoked_certificates()
            .map(|r| RevokedInfo {
                serial: hex(r.raw_serial()),
                revoked_at: r.revocation_date.to_datetime(),
                reason: r.reason_code().map(|(_, code)| code.to_string()),
            })
            .collect(),
        sha256: fingerprint(crl_der),
        authority_key_id: crl
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| hex(k.0))
                }
                _ => None,
            }),
    })
}

impl fmt::Display for CrlInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "revocation list")?;
        writeln!(f, "  issuer:      {}", self.issuer)?;
        writeln!(
            f,
            "  number:      {}",
            self.crl_number.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "  this update: {}", rfc3339(self.this_update))?;
        match self.next_update {
            Some(t) => writeln!(f, "  next update: {}", rfc3339(t))?,
            None => writeln!(f, "  next update: (none)")?,
        }
        writeln!(f, "  SHA-256:     {}", self.sha256)?;
        write!(f, "  revoked:     {}", self.revoked.len())?;
        for r in &self.revoked {
            write!(
                f,
                "\n    {}  {}  {}",
                r.serial,
                rfc3339(r.revoked_at),
                r.reason.as_deref().unwrap_or("unspecified")
            )?;
        }
        Ok(())
    }
}

/// `filet-certs show`: the description of every certificate and revocation list in a PEM
/// file (or of a single DER certificate or revocation list).
///
/// # Errors
/// [`CertError::Read`], [`CertError::Pem`], [`CertError::Empty`] naming the file;
/// [`CertError::Subject`] for an item that cannot be parsed.
pub fn show(path: &Path) -> Result<String, CertError> {
    let bytes = fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let unparsable = |source| CertError::Subject {
        path: path.to_path_buf(),
        source,
    };
    let mut parts = Vec::new();
    if bytes.first() == Some(&0x30) {
        // DER: a certificate, else a revocation list.
        match describe(&bytes) {
            Ok(info) => parts.push(info.to_string()),
            Err(_) => parts.push(describe_crl(&bytes).map_err(unparsable)?.to_string()),
        }
        return Ok(parts.join("\n\n"));
    }
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = item.map_err(|e| crate::load::pem_error(path, e))?;
        match kind {
            SectionKind::Certificate => parts.push(describe(&der).map_err(unparsable)?.to_string()),
            SectionKind::Crl => parts.push(describe_crl(&der).map_err(unparsable)?.to_string()),
            SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => {
                parts.push("private key (not shown)".to_owned())
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err(CertError::Empty {
            path: path.to_path_buf(),
            what: "certificate or revocation list",
        });
    }
    Ok(parts.join("\n\n"))
}
