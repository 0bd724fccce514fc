//! Identity: the relay's TLS settings and the principal of a connection.
//!
//! TLS 1.3 only, rustls with *ring*, ALPN `filet/1`, a client certificate required and
//! checked against the agreement's CA and the current CRL (rustls-webpki: chain, validity
//! dates, EKU clientAuth, revocation), no session resumption (no tickets, no session
//! cache, no early data), so every connection is checked in full. The principal is then
//! read from the verified certificate's subject only (requirements §3) and must name a unit of the
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
        let provider = filet_net::provider();
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
    let provider = filet_net::provider();
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
    let transport = transport_config(limits)?;
    cfg.transport_config(Arc::new(transport));
    // Packets of a connection attempt wait for the accept loop, which decides at once.
    cfg.incoming_buffer_size(INCOMING_BUFFER as u64);
    cfg.incoming_buffer_size_total(INCOMING_BUFFER_TOTAL as u64);
    // Address validation (Retry) is decided per connection attempt: see `server::admit`.
    Ok(cfg)
}

/// One whole frame on the wire: its header and the largest body.
pub const FRAME_BYTES: usize = filet_proto::codec::HEADER_LEN + filet_proto::codec::MAX_FRAME_LEN;
/// Bytes buffered for one connection attempt before the accept loop decides.
const INCOMING_BUFFER: usize = 64 * 1024;
/// Bytes buffered for all connection attempts before the accept loop decides.
const INCOMING_BUFFER_TOTAL: usize = 8 * 1024 * 1024;

/// The flow-control windows and buffers of a node's connection, sized to Filet's frames
/// rather than quinn's defaults (datagrams on with a 1.25 MB buffer, an unlimited
/// connection receive window, a 10 MB send window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportSizes {
    /// Bytes a node may send on one stream ahead of the relay's reading: one whole frame.
    pub stream_receive_window: u32,
    /// Bytes a node may send on all its streams together ahead of the relay's reading:
    /// two whole frames.
    pub receive_window: u32,
    /// Bytes the relay keeps written but not yet acknowledged by the node: four frames.
    pub send_window: u64,
    /// Incoming QUIC datagrams: off (Filet uses none).
    pub datagram_receive_buffer: Option<usize>,
    /// Frames queued for a connection's streams, in bytes, before their senders wait
    /// (see `server::OutQueue`): four frames.
    pub out_queue_bytes: usize,
}

/// The sizes of every node connection.
pub const TRANSPORT_SIZES: TransportSizes = TransportSizes {
    stream_receive_window: FRAME_BYTES as u32,
    receive_window: 2 * FRAME_BYTES as u32,
    send_window: 4 * FRAME_BYTES as u64,
    datagram_receive_buffer: None,
    out_queue_bytes: 4 * FRAME_BYTES,
};

/// The QUIC transport settings of a node's connection: [`TRANSPORT_SIZES`], the stream
/// limits and the idle timeout of `limits`.
///
/// # Errors
/// [`IdentityError::Tls`] if the idle timeout does not fit QUIC's.
pub fn transport_config(limits: &Limits) -> Result<quinn::TransportConfig, IdentityError> {
    let z = TRANSPORT_SIZES;
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(limits.max_streams_per_connection.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(std::time::Duration::from_secs(
            limits.idle_timeout_secs.max(1),
        ))
        .map_err(|e| IdentityError::Tls(e.to_string()))?,
    ));
    t.stream_receive_window(z.stream_receive_window.into());
    t.receive_window(z.receive_window.into());
    t.send_window(z.send_window);
    t.datagram_receive_buffer_size(z.datagram_receive_buffer);
    t.datagram_send_buffer_size(0);
    Ok(t)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_buffers_a_few_frames_at_most_and_no_datagrams() {
        let z = TRANSPORT_SIZES;
        assert_eq!(FRAME_BYTES, 262_148);
        assert_eq!(z.datagram_receive_buffer, None);
        assert_eq!(z.stream_receive_window, 262_148);
        assert_eq!(z.receive_window, 524_296);
        assert_eq!(z.send_window, 1_048_592);
        assert_eq!(z.out_queue_bytes, 1_048_592);
        // What one connection may make the relay hold, whatever the node does: its
        // receive window, its send window, its queued frames.
        let budget = z.receive_window as usize + z.send_window as usize + z.out_queue_bytes;
        assert!(budget < 3 * 1024 * 1024, "{budget}");
        assert!(transport_config(&Limits::default()).is_ok());
    }
}
