//! Shared by the integration tests: the example agreement and a realistic client
//! certificate check (rustls's WebPKI client verifier with the ring provider).
#![allow(dead_code)] // each test file uses a different part of this module
#![allow(clippy::unwrap_used)] // test helpers: a panic is a test failure with its place

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// `examples/agreement.toml`.
pub fn example_agreement() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/agreement.toml"
    ))
}

/// Units in the example agreement (5 SPVQ + 1 SQ + 3 DPJ + 3 CJQ + 7 one-unit parties).
pub const EXAMPLE_UNITS: usize = 19;

/// The verifier the relay would build: this CA, these CRLs.
pub fn verifier(
    ca: &CertificateDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Arc<dyn ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .with_crls(crls)
    .build()
    .unwrap()
}

/// Verifies a client certificate as the relay would, now.
pub fn verify_client(
    verifier: &dyn ClientCertVerifier,
    cert: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map(|_| ())
}
