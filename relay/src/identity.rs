//! Identity: the relay's TLS settings and the principal of a connection.
//!
//! TLS 1.3 only, rustls with *ring*, ALPN `filet/1`, a client certificate required and
//! checked against the agreement's CA and the current CRL (rustls-webpki: chain, validity
//! dates, EKU clientAuth, revocation), no session resumption (no tickets, no session
//! cache, no early data), so every connection is checked in full. The principal is then
//! read from the verified certificate's subject only (SPEC §3) and must name a unit of the
//! current agreement.

use std::sync::Arc;

use filet_proto::agreement::Agreement;
use filet_proto::wire::ALPN;
use filet_proto::Principal;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::{Limits, PkiPaths};

/// Errors building the relay's TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A PKI file cannot be loaded.
    #[error("{0}")]
    Load(String),
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// The relay's certificate material, loaded from disk.
pub struct Pki {
    /// CA certificates.
    pub ca: Vec<CertificateDer<'static>>,
    /// The relay's chain.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The relay's key.
    pub key: PrivateKeyDer<'static>,
    /// Current CRLs.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// What they are: numbers, dates, revoked serials.
    pub crl: crate::crl::CrlInForce,
}

impl Pki {
    /// Loads every file.
    ///
    /// # Errors
    /// [`IdentityError::Load`] naming the file.
    pub fn load(p: &PkiPaths) -> Result<Pki, IdentityError> {
        let l = |e: filet_certs::CertError| IdentityError::Load(e.to_string());
        let crls = filet_certs::load_crls(&p.crl).map_err(l)?;
        let pki = Pki {
            ca: filet_certs::load_certs(&p.ca).map_err(l)?,
            cert_chain: filet_certs::load_certs(&p.cert).map_err(l)?,
            key: filet_certs::load_key(&p.key).map_err(l)?,
            crl: crate::crl::CrlInForce::read(&p.crl, &crls).map_err(IdentityError::Load)?,
            crls,
        };
        // A key of another certificate is named here, with both files, rather than by the
        // TLS layer without them.
        let provider = filet_client::transport::provider();
        let signing = provider
            .key_provider
            .load_private_key(pki.key.clone_key())
            .map_err(|e| IdentityError::Load(format!("{}: {e}", p.key.display())))?;
        if let Err(rustls::Error::InconsistentKeys(_)) =
            rustls::sign::CertifiedKey::new(pki.cert_chain.clone(), signing).keys_match()
        {
            return Err(IdentityError::Load(format!(
                "{}: this private key does not belong to the relay certificate {}",
                p.key.display(),
                p.cert.display()
            )));
        }
        Ok(pki)
    }
}

/// Builds the QUIC server configuration.
///
/// # Errors
/// [`IdentityError::Tls`] if rustls refuses the material.
pub fn server_config(pki: &Pki, limits: &Limits) -> Result<quinn::ServerConfig, IdentityError> {
    let provider = filet_client::transport::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in &pki.ca {
        roots
            .add(c.clone())
            .map_err(|e| IdentityError::Tls(format!("CA certificate: {e}")))?;
    }
    // A CRL past its nextUpdate stays in force (rustls's default; deliberately no
    // `enforce_revocation_expiration`): the relay fails open with alarms (`crate::crl`)
    // rather than refusing every node.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(pki.crls.clone())
        .build()
        .map_err(|e| IdentityError::Tls(format!("client verifier: {e}")))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.cert_chain.clone(), pki.key.clone_key())
        .map_err(|e| IdentityError::Tls(format!("relay certificate or key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    tls.max_early_data_size = 0;
    let qc = QuicServerConfig::try_from(tls).map_err(|e| IdentityError::Tls(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(qc));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(std::time::Duration::from_secs(
            limits.idle_timeout_secs.max(1),
        ))
        .map_err(|e| IdentityError::Tls(e.to_string()))?,
    ));
    cfg.transport_config(Arc::new(transport));
    // Address validation (Retry) is left to quinn's defaults.
    Ok(cfg)
}

/// The peer's leaf certificate (DER), if the handshake produced one.
pub fn peer_leaf(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?
        .into_iter()
        .next()
}

/// Why a verified certificate does not give a principal of the agreement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// No certificate (cannot happen once the handshake required one).
    #[error("no client certificate")]
    NoCertificate,
    /// The subject is malformed (missing, repeated or non-UTF-8 O/OU/CN, bad code).
    #[error("certificate subject: {0}")]
    Subject(String),
    /// The party is not in the agreement.
    #[error("principal {principal}: party {} is not a party of agreement {agreement}", principal.party())]
    UnknownParty {
        /// The principal named by the certificate.
        principal: Principal,
        /// Agreement id and version, e.g. `table-regionale-quebec-esj v1`.
        agreement: String,
    },
    /// The unit is not in the agreement.
    #[error("principal {principal}: unit {} is not a unit of party {} in agreement {agreement}", principal.unit.unit, principal.party())]
    UnknownUnit {
        /// The principal named by the certificate.
        principal: Principal,
        /// Agreement id and version.
        agreement: String,
    },
}

/// The principal of a verified certificate, checked against the agreement.
///
/// # Errors
/// [`PrincipalError`] naming the problem and the principal.
pub fn principal_of(
    cert: Option<&CertificateDer<'_>>,
    agreement: &Agreement,
) -> Result<Principal, PrincipalError> {
    let cert = cert.ok_or(PrincipalError::NoCertificate)?;
    let p = filet_certs::principal_of(cert.as_ref())
        .map_err(|e| PrincipalError::Subject(e.to_string()))?;
    check_principal(&p, agreement)?;
    Ok(p)
}

/// Checks that a principal's unit is in the agreement.
///
/// # Errors
/// [`PrincipalError::UnknownParty`] or [`PrincipalError::UnknownUnit`].
pub fn check_principal(p: &Principal, agreement: &Agreement) -> Result<(), PrincipalError> {
    let agreement_name = || format!("{} v{}", agreement.id, agreement.version);
    match agreement.parties.get(p.party()) {
        None => Err(PrincipalError::UnknownParty {
            principal: p.clone(),
            agreement: agreement_name(),
        }),
        Some(party) if !party.units.contains_key(&p.unit.unit) => {
            Err(PrincipalError::UnknownUnit {
                principal: p.clone(),
                agreement: agreement_name(),
            })
        }
        Some(_) => Ok(()),
    }
}
