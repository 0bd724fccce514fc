//! Identity (requirements §3): the relay accepts only certificates of the agreement's CA that name
//! a unit of the agreement, refuses the others with a clear error and an audit entry, and
//! keeps serving everyone else; a node refuses a relay whose certificate is not for the
//! name it dials.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::net::SocketAddr;

use filet_certs::{Attr, CertSpec, Eku, KeyUsage, RevocationReason, NODE_VALIDITY};
use filet_client::{ClientError, Node, NodeConfig};
use filet_proto::audit::{Event, RefusalReason};
use filet_proto::wire::WhoAmI;
use filet_proto::Principal;
use filet_tests::raw::{client_config, connect, ClientAuth};
use filet_tests::*;

/// Connects and asks who it is: with TLS 1.3 the client may finish its handshake before
/// the relay has checked the client's certificate, so a refusal can surface at either
/// step.
async fn connect_and_ask(cfg: &NodeConfig) -> Result<WhoAmI, ClientError> {
    let node = Node::connect(cfg).await?;
    node.whoami().await
}

/// The reason of a refused connection, without the `ADDR: ` that [`Node::connect`]
/// prefixes when the refusal arrives during the handshake.
fn refused(r: Result<WhoAmI, ClientError>, relay: SocketAddr) -> String {
    let m = connection_error(r);
    m.strip_prefix(&format!("{relay}: "))
        .unwrap_or(&m)
        .to_owned()
}

/// A node configuration of the dev PKI that presents `cert` instead of its own.
fn with_cert(net: &TestNet, relay: SocketAddr, cert: &filet_certs::IssuedCert) -> NodeConfig {
    let mut cfg = net.node_config("SPVQ/ESM", relay);
    cfg.cert_chain = vec![cert.cert_der.clone()];
    cfg.key = cert.key_der();
    cfg
}

fn is_refused_identity(e: &filet_proto::audit::Entry, detail_part: &str) -> bool {
    matches!(&e.event, Event::Refused { reason: RefusalReason::UnknownIdentity, detail, .. }
        if detail.contains(detail_part))
}

#[tokio::test]
async fn a_node_certificate_from_another_ca_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let other = filet_certs::Ca::generate("another-agreement").unwrap();
    let p: Principal = "SPVQ/ESM/intrus-01".parse().unwrap();
    let cert = other.issue(&CertSpec::node(&p)).unwrap();

    let r = connect_and_ask(&with_cert(&net, relay.addr, &cert)).await;

    assert_eq!(
        refused(r, relay.addr),
        "the relay refused the TLS handshake (TLS alert 48 unknown_ca: the certificate is not issued by this agreement's CA): invalid peer certificate: UnknownIssuer"
    );
    assert_relay_serves(&net, relay.addr).await;
    // The relay logs the refused handshake without waiting for anyone: poll for it.
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let e = wait_for_entry(
        &auditor,
        &relay.verifier(),
        "refused unknown_identity",
        |e| is_refused_identity(e, "UnknownIssuer"),
    )
    .await;
    let Event::Refused {
        principal, detail, ..
    } = &e.event
    else {
        unreachable!()
    };
    assert_eq!(
        *principal, None,
        "no principal is taken from an untrusted certificate"
    );
    assert!(
        detail.starts_with("TLS handshake from 127.0.0.1:"),
        "{detail}"
    );
    assert!(
        detail.ends_with("failed: the cryptographic handshake failed: error 48: invalid peer certificate: UnknownIssuer"),
        "{detail}"
    );
    auditor.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_certificate_of_the_agreement_ca_for_a_party_not_in_the_agreement_is_refused_by_name() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let p: Principal = "NOPE/X/nope-x-01".parse().unwrap();
    let cert = net.ca().issue(&CertSpec::node(&p)).unwrap();

    let r = connect_and_ask(&with_cert(&net, relay.addr, &cert)).await;

    let reason = "principal NOPE/X/nope-x-01: party NOPE is not a party of agreement table-regionale-quebec-esj v1";
    assert_eq!(
        refused(r, relay.addr),
        format!("the relay closed the connection: {reason}")
    );
    assert_relay_serves(&net, relay.addr).await;
    // Logged and durable before the relay closed the connection.
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let refusals = events(&log, "refused");
    assert_eq!(refusals.len(), 1);
    let Event::Refused {
        principal,
        reason: why,
        detail,
        category,
        recipient,
        alert,
    } = &refusals[0].event
    else {
        unreachable!()
    };
    assert_eq!(principal.as_deref(), Some("NOPE/X/nope-x-01"));
    assert_eq!(*why, RefusalReason::UnknownIdentity);
    assert!(detail.starts_with("connection from 127.0.0.1:"), "{detail}");
    assert!(detail.ends_with(&format!(" refused: {reason}")), "{detail}");
    assert_eq!((category, recipient, alert), (&None, &None, &None));
    auditor.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn certificates_of_the_agreement_ca_for_an_unknown_unit_or_without_a_unit_are_refused() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let ca = net.ca();
    let unknown_unit = ca
        .issue(&CertSpec::node(&"SPVQ/NOPE/x-01".parse().unwrap()))
        .unwrap();
    let mut no_unit = CertSpec::new(
        vec![(Attr::O, "SPVQ".into()), (Attr::CN, "sans-unite-01".into())],
        NODE_VALIDITY,
    );
    no_unit.ekus = vec![Eku::ClientAuth];
    no_unit.key_usages = vec![KeyUsage::DigitalSignature];
    let no_unit = ca.issue(&no_unit).unwrap();

    let r = connect_and_ask(&with_cert(&net, relay.addr, &unknown_unit)).await;
    assert_eq!(
        refused(r, relay.addr),
        "the relay closed the connection: principal SPVQ/NOPE/x-01: unit NOPE is not a unit of party SPVQ in agreement table-regionale-quebec-esj v1"
    );
    let r = connect_and_ask(&with_cert(&net, relay.addr, &no_unit)).await;
    assert_eq!(
        refused(r, relay.addr),
        "the relay closed the connection: certificate subject: certificate subject has no OU attribute"
    );

    assert_relay_serves(&net, relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let principals: Vec<Option<String>> = events(&log, "refused")
        .iter()
        .map(|e| match &e.event {
            Event::Refused {
                principal,
                reason: RefusalReason::UnknownIdentity,
                ..
            } => principal.clone(),
            other => panic!("unexpected refusal {other:?}"),
        })
        .collect();
    assert_eq!(principals, [Some("SPVQ/NOPE/x-01".to_owned()), None]);
    auditor.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let ca = net.node_config("SPVQ/ESM", relay.addr).ca;

    let c = connect(
        client_config(&ca, ClientAuth::None),
        relay.addr,
        "127.0.0.1",
    )
    .await;

    // Either the handshake fails, or the refusal closes the connection right after it.
    let e = match c {
        Err(e) => e,
        Ok(c) => c.closed_within(WAIT).await,
    };
    match &e {
        quinn::ConnectionError::ConnectionClosed(c) => {
            assert_eq!(
                u64::from(c.error_code),
                0x100 + 116,
                "TLS alert certificate_required"
            );
            assert_eq!(&c.reason[..], b"peer sent no certificates");
        }
        other => panic!("expected a close by the relay, got {other:?}"),
    }
    assert_eq!(
        filet_client::transport::describe_connection_error(&e),
        "the relay refused the TLS handshake (TLS alert 116 certificate_required: the relay requires a client certificate; give the node's certificate and key): peer sent no certificates"
    );
    assert_relay_serves(&net, relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    wait_for_entry(
        &auditor,
        &relay.verifier(),
        "refused unknown_identity",
        |e| is_refused_identity(e, "error 116: peer sent no certificates"),
    )
    .await;
    auditor.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_revoked_node_certificate_is_refused_at_the_handshake() {
    let net = TestNet::new();
    filet_certs::revoke(
        &net.pki,
        &net.pki.join("nodes/CJQ-PIVOT.crt.pem"),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    let relay = net.start_relay().await;

    let r = connect_and_ask(&net.node_config("CJQ/PIVOT", relay.addr)).await;

    assert_eq!(
        refused(r, relay.addr),
        "the relay refused the TLS handshake (TLS alert 44 certificate_revoked: this node's certificate is revoked; ask the operator for a new one): invalid peer certificate: Revoked"
    );
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_node_refuses_a_relay_whose_certificate_is_not_for_the_name_it_dials() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut cfg = net.node_config("SPVQ/ESM", relay.addr);
    cfg.server_name = "relay.invalid".into();

    let m = connection_error(Node::connect(&cfg).await);

    assert!(
        m.starts_with(&format!(
            "{}: this node refused the relay's certificate (TLS alert 42): invalid peer certificate: certificate not valid for name \"relay.invalid\"",
            relay.addr
        )),
        "{m}"
    );
    assert!(
        m.ends_with("certificate is only valid for IpAddress(127.0.0.1); check the profile's server_name and ca"),
        "{m}"
    );
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_relay_certificate_for_another_name_is_not_blamed_on_the_node_certificate() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut cfg = net.node_config("SPVQ/ESM", relay.addr);
    cfg.server_name = "relay.invalid".into();

    let m = connection_error(Node::connect(&cfg).await);

    // The node refused the relay: the advice must be about the relay's name or the profile's
    // server_name, not about this node's certificate.
    assert!(!m.contains("node certificate"), "{m}");
    assert!(m.contains("relay"), "{m}");
    relay.stop().await;
}
