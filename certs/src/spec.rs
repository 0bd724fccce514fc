//! What a certificate says ([`CertSpec`]), and making one ([`IssuedCert`]).
//!
//! The product's certificates come from [`CertSpec::ca`], [`CertSpec::relay`] and
//! [`CertSpec::node`]. Every field is public so that tests can craft hostile certificates
//! (expired, not yet valid, wrong key purpose, missing or repeated subject attributes,
//! self-signed, from another CA) with the same code.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use filet_proto::principal::Principal;
use rcgen::string::{BmpString, Ia5String, PrintableString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::error::CertError;
use crate::fsutil::{self, CERT_MODE, KEY_MODE};

/// Validity of the CA certificate: ten years.
pub const CA_VALIDITY: Duration = Duration::days(3652);
/// Validity of the relay certificate: 825 days.
pub const RELAY_VALIDITY: Duration = Duration::days(825);
/// Validity of a node certificate: 397 days.
pub const NODE_VALIDITY: Duration = Duration::days(397);
/// How far back `not_before` is set, to tolerate clock skew between machines.
pub const BACKDATE: Duration = Duration::minutes(5);
/// Length of the random serial numbers, in bytes.
pub const SERIAL_LEN: usize = 16;

/// A subject attribute type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attr {
    /// countryName (2.5.4.6).
    C,
    /// stateOrProvinceName (2.5.4.8).
    ST,
    /// localityName (2.5.4.7).
    L,
    /// organizationName (2.5.4.10): the party.
    O,
    /// organizationalUnitName (2.5.4.11): the unit.
    OU,
    /// commonName (2.5.4.3): the node.
    CN,
    /// Any other attribute, by object identifier arcs.
    Other(Vec<u64>),
}

impl Attr {
    /// The attribute's object identifier arcs.
    pub fn oid(&self) -> Vec<u64> {
        match self {
            Attr::C => vec![2, 5, 4, 6],
            Attr::ST => vec![2, 5, 4, 8],
            Attr::L => vec![2, 5, 4, 7],
            Attr::O => vec![2, 5, 4, 10],
            Attr::OU => vec![2, 5, 4, 11],
            Attr::CN => vec![2, 5, 4, 3],
            Attr::Other(arcs) => arcs.clone(),
        }
    }

    fn dn_type(&self) -> DnType {
        match self {
            Attr::C => DnType::CountryName,
            Attr::ST => DnType::StateOrProvinceName,
            Attr::L => DnType::LocalityName,
            Attr::O => DnType::OrganizationName,
            Attr::OU => DnType::OrganizationalUnitName,
            Attr::CN => DnType::CommonName,
            Attr::Other(arcs) => DnType::CustomDnType(arcs.clone()),
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::C => f.write_str("C"),
            Attr::ST => f.write_str("ST"),
            Attr::L => f.write_str("L"),
            Attr::O => f.write_str("O"),
            Attr::OU => f.write_str("OU"),
            Attr::CN => f.write_str("CN"),
            Attr::Other(arcs) => {
                let arcs: Vec<String> = arcs.iter().map(u64::to_string).collect();
                f.write_str(&arcs.join("."))
            }
        }
    }
}

impl FromStr for Attr {
    type Err = CertError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "C" => Attr::C,
            "ST" => Attr::ST,
            "L" => Attr::L,
            "O" => Attr::O,
            "OU" => Attr::OU,
            "CN" => Attr::CN,
            other => Attr::Other(
                other
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| CertError::Spec(format!("unknown attribute {other:?}")))?,
            ),
        })
    }
}

/// A subject attribute value and its ASN.1 string type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// UTF8String (what the product writes).
    Utf8(String),
    /// PrintableString.
    Printable(String),
    /// BMPString (UTF-16BE; not acceptable in a node subject).
    Bmp(String),
    /// Any tag with any bytes, e.g. a UTF8String (tag 12) holding invalid UTF-8.
    Raw {
        /// The universal tag number byte (12 = UTF8String, 19 = PrintableString...).
        tag: u8,
        /// The content octets, as they are.
        bytes: Vec<u8>,
    },
}

impl AttrValue {
    /// The ASN.1 tag byte and content octets.
    pub(crate) fn tag_and_bytes(&self) -> (u8, Vec<u8>) {
        match self {
            AttrValue::Utf8(s) => (0x0c, s.as_bytes().to_vec()),
            AttrValue::Printable(s) => (0x13, s.as_bytes().to_vec()),
            AttrValue::Bmp(s) => (0x1e, s.encode_utf16().flat_map(u16::to_be_bytes).collect()),
            AttrValue::Raw { tag, bytes } => (*tag, bytes.clone()),
        }
    }

    fn dn_value(&self) -> Result<DnValue, CertError> {
        let bad = |e: rcgen::Error| CertError::Spec(e.to_string());
        Ok(match self {
            AttrValue::Utf8(s) => DnValue::Utf8String(s.clone()),
            AttrValue::Printable(s) => {
                DnValue::PrintableString(PrintableString::try_from(s.as_str()).map_err(bad)?)
            }
            AttrValue::Bmp(s) => DnValue::BmpString(BmpString::try_from(s.as_str()).map_err(bad)?),
            AttrValue::Raw { .. } => {
                return Err(CertError::Spec("raw values are encoded separately".into()))
            }
        })
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Utf8(s) | AttrValue::Printable(s) | AttrValue::Bmp(s) => f.write_str(s),
            AttrValue::Raw { tag, bytes } => write!(f, "<tag {tag}: {}>", hex(bytes)),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Utf8(s.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Utf8(s)
    }
}

/// An extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eku {
    /// id-kp-serverAuth: the relay.
    ServerAuth,
    /// id-kp-clientAuth: the nodes.
    ClientAuth,
    /// id-kp-codeSigning.
    CodeSigning,
    /// id-kp-emailProtection.
    EmailProtection,
    /// anyExtendedKeyUsage.
    Any,
}

/// A key usage bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    /// digitalSignature: TLS 1.3 handshakes with ECDSA.
    DigitalSignature,
    /// keyEncipherment.
    KeyEncipherment,
    /// keyAgreement.
    KeyAgreement,
    /// keyCertSign: the CA.
    KeyCertSign,
    /// cRLSign: the CA.
    CrlSign,
}

/// Everything a certificate says, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// The subject, in order; an attribute may repeat.
    pub subject: Vec<(Attr, AttrValue)>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Extended key usages (none: no extension).
    pub ekus: Vec<Eku>,
    /// Key usages (none: no extension).
    pub key_usages: Vec<KeyUsage>,
    /// Subject alternative names: an IP address SAN for what parses as one, else DNS.
    pub sans: Vec<String>,
    /// basicConstraints CA (path length 0) rather than end entity.
    pub is_ca: bool,
}

impl CertSpec {
    /// An end-entity specification with this subject, valid from a few minutes ago
    /// ([`BACKDATE`]) for `validity`, with no key usage, EKU or SAN.
    pub fn new(subject: Vec<(Attr, AttrValue)>, validity: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        CertSpec {
            subject,
            not_before: now - BACKDATE,
            not_after: now + validity,
            ekus: Vec::new(),
            key_usages: Vec::new(),
            sans: Vec::new(),
            is_ca: false,
        }
    }

    /// The agreement's CA: `CN=Filet CA <agreement id>, O=Filet`, CA, keyCertSign and
    /// cRLSign, ten years.
    pub fn ca(agreement_id: &str) -> Self {
        let mut spec = CertSpec::new(
            vec![
                (Attr::O, "Filet".into()),
                (Attr::CN, format!("Filet CA {agreement_id}").into()),
            ],
            CA_VALIDITY,
        );
        spec.is_ca = true;
        spec.key_usages = vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign];
        spec
    }

    /// The relay: `CN=<first name>`, a SAN per name, serverAuth only, 825 days.
    ///
    /// # Errors
    /// [`CertError::Spec`] when `names` is empty.
    pub fn relay(names: &[String]) -> Result<Self, CertError> {
        let first = names.first().ok_or_else(|| {
            CertError::Spec("the relay certificate needs at least one name".into())
        })?;
        let mut spec = CertSpec::new(vec![(Attr::CN, first.as_str().into())], RELAY_VALIDITY);
        spec.sans = names.to_vec();
        spec.ekus = vec![Eku::ServerAuth];
        spec.key_usages = vec![KeyUsage::DigitalSignature];
        Ok(spec)
    }

    /// A node: exactly `O=<party>, OU=<unit>, CN=<node>`, clientAuth only,
    /// digitalSignature, 397 days.
    pub fn node(principal: &Principal) -> Self {
        let mut spec = CertSpec::new(
            vec![
                (Attr::O, principal.unit.party.as_str().into()),
                (Attr::OU, principal.unit.unit.as_str().into()),
                (Attr::CN, principal.node.as_str().into()),
            ],
            NODE_VALIDITY,
        );
        spec.ekus = vec![Eku::ClientAuth];
        spec.key_usages = vec![KeyUsage::DigitalSignature];
        spec
    }

    /// Whether rcgen cannot write the subject itself (a repeated attribute or a raw value).
    fn needs_raw_subject(&self) -> bool {
        self.subject.iter().enumerate().any(|(i, (attr, value))| {
            matches!(value, AttrValue::Raw { .. })
                || self.subject[..i]
                    .iter()
                    .any(|(earlier, _)| earlier.oid() == attr.oid())
        })
    }

    fn params(&self, serial: &[u8], raw_subject: bool) -> Result<CertificateParams, CertError> {
        let mut params = CertificateParams::default();
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.distinguished_name = DistinguishedName::new();
        if !raw_subject {
            for (attr, value) in &self.subject {
                params
                    .distinguished_name
                    .push(attr.dn_type(), value.dn_value()?);
            }
        }
        params.subject_alt_names = self
            .sans
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ia5String::try_from(name.as_str())
                    .map(SanType::DnsName)
                    .map_err(|e| CertError::Spec(format!("DNS name {name:?}: {e}"))),
            })
            .collect::<Result<_, _>>()?;
        params.is_ca = if self.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0))
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = self
            .key_usages
            .iter()
            .map(|u| match u {
                KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
                KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
                KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
                KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
                KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
            })
            .collect();
        params.extended_key_usages = self
            .ekus
            .iter()
            .map(|e| match e {
                Eku::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
                Eku::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
                Eku::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
                Eku::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
                Eku::Any => ExtendedKeyUsagePurpose::Any,
            })
            .collect();
        Ok(params)
    }
}

/// A freshly made certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The serial number's content octets (16 bytes, top bit clear).
    pub serial: Vec<u8>,
    key_pkcs8: Vec<u8>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial", &self.serial_hex())
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

impl IssuedCert {
    /// The serial number in lowercase hex, without separators.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }

    /// The private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// Writes the certificate (mode 0644) and the key (mode 0600, never readable by others,
    /// even for an instant). Refuses to replace either file unless `force`.
    ///
    /// # Errors
    /// [`CertError::Exists`], [`CertError::Write`].
    pub fn write(&self, cert_path: &Path, key_path: &Path, force: bool) -> Result<(), CertError> {
        fsutil::refuse_existing(&[cert_path, key_path], force, "")?;
        fsutil::write_file(key_path, self.key_pem.as_bytes(), KEY_MODE)?;
        fsutil::write_file(cert_path, self.cert_pem.as_bytes(), CERT_MODE)
    }
}

/// Lowercase hex, without separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random positive serial of exactly [`SERIAL_LEN`] bytes: the top bit is cleared (so
/// that it is positive) and the first byte is never zero (so that DER keeps all 16 bytes).
pub(crate) fn random_serial() -> Result<[u8; SERIAL_LEN], CertError> {
    let rng = SystemRandom::new();
    loop {
        let mut serial = [0u8; SERIAL_LEN];
        rng.fill(&mut serial).map_err(|_| CertError::Random)?;
        serial[0] &= 0x7f;
        if serial[0] != 0 {
            return Ok(serial);
        }
    }
}

/// PEM text of one DER object.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Makes a certificate for `spec` with a new ECDSA P-256 key, signed by `issuer`, or by
/// its own key when `issuer` is `None`.
pub(crate) fn make(
    spec: &CertSpec,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> Result<IssuedCert, CertError> {
    let what = || {
        let names: Vec<String> = spec
            .subject
            .iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        format!("certificate for [{}]", names.join(", "))
    };
    let generate = |source| CertError::Generate {
        what: what(),
        source,
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let serial = random_serial()?;
    let raw_subject = spec.needs_raw_subject();
    let mut params = spec.params(&serial, raw_subject)?;
    params.use_authority_key_identifier_extension = issuer.is_some();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .map_err(generate)?;
    let (cert_der, cert_pem) = if raw_subject {
        let subject = crate::der::name(&spec.subject).map_err(CertError::Spec)?;
        let der = match issuer {
            Some(issuer) => crate::der::resign_with_names(cert.der(), &subject, None, issuer.key()),
            None => crate::der::resign_with_names(cert.der(), &subject, Some(&subject), &key),
        }
        .map_err(CertError::Spec)?;
        let pem = pem("CERTIFICATE", &der);
        (CertificateDer::from(der), pem)
    } else {
        (cert.der().clone(), cert.pem())
    };
    Ok(IssuedCert {
        cert_pem,
        key_pem: key.serialize_pem(),
        cert_der,
        serial: serial.to_vec(),
        key_pkcs8: key.serialize_der(),
    })
}

/// Makes a self-signed certificate for `spec` (for tests: a certificate that no CA of the
/// agreement vouches for).
///
/// # Errors
/// [`CertError::Spec`] for an unencodable specification, [`CertError::Generate`].
pub fn self_signed(spec: &CertSpec) -> Result<IssuedCert, CertError> {
    make(spec, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_sixteen_positive_bytes() {
        for _ in 0..200 {
            let s = random_serial().unwrap();
            assert!(s[0] != 0 && s[0] < 0x80, "{s:?}");
        }
    }

    #[test]
    fn repeated_or_raw_attributes_need_a_raw_subject() {
        let mut spec = CertSpec::new(
            vec![(Attr::O, "A".into()), (Attr::CN, "n".into())],
            NODE_VALIDITY,
        );
        assert!(!spec.needs_raw_subject());
        spec.subject
            .push((Attr::Other(vec![2, 5, 4, 10]), "B".into()));
        assert!(spec.needs_raw_subject());
        let spec = CertSpec::new(
            vec![(
                Attr::OU,
                AttrValue::Raw {
                    tag: 12,
                    bytes: vec![0xff],
                },
            )],
            NODE_VALIDITY,
        );
        assert!(spec.needs_raw_subject());
    }

    #[test]
    fn attributes_parse_and_print() {
        assert_eq!("OU".parse::<Attr>().unwrap(), Attr::OU);
        assert_eq!(
            "2.5.4.97".parse::<Attr>().unwrap(),
            Attr::Other(vec![2, 5, 4, 97])
        );
        assert_eq!(Attr::Other(vec![2, 5, 4, 97]).to_string(), "2.5.4.97");
        assert!("Organisation".parse::<Attr>().is_err());
    }

    #[test]
    fn pem_wraps_at_64_columns() {
        let text = pem("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}
