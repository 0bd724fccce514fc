//! The identity matrix (requirements §3, issue 5): every way a certificate can fail to name a
//! principal of the agreement, each asserted with the exact error the node sees and the
//! `refused` audit entry (reason `unknown_identity`, detail naming the cause); a unit
//! removed from the agreement and a certificate revoked while their connections are open
//! (cut on reload, refused after); and a relay certificate from another CA, refused by the
//! node. `identity.rs` holds the first cases (another CA, unknown party or unit, no OU, no
//! certificate, revoked at the handshake, wrong server name); this file does not repeat
//! them.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::net::SocketAddr;

use filet_certs::{
    Attr, AttrValue, CertSpec, Eku, IssuedCert, KeyUsage, RevocationReason, NODE_VALIDITY,
};
use filet_client::transport::read_frame;
use filet_client::{ClientError, Node, NodeConfig};
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::codec::encode_frame;
use filet_proto::wire::{close, ClientFrame, Request, Response, ServerFrame, WhoAmI};
use filet_proto::Principal;
use filet_tests::raw::{application_close, connect, RawConn};
use filet_tests::*;

// ---- helpers ---------------------------------------------------------------------------

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

/// The dev node configuration of `SPVQ/ESM`, presenting `cert` instead of its own.
fn with_cert(net: &TestNet, relay: SocketAddr, cert: &IssuedCert) -> NodeConfig {
    let mut cfg = net.node_config("SPVQ/ESM", relay);
    cfg.cert_chain = vec![cert.cert_der.clone()];
    cfg.key = cert.key_der();
    cfg
}

/// A node specification for `O=SPVQ, OU=ESM, CN=<node>` (clientAuth, digitalSignature).
fn esm_spec(node: &str) -> CertSpec {
    let p: Principal = format!("SPVQ/ESM/{node}").parse().unwrap();
    CertSpec::node(&p)
}

/// A subject built attribute by attribute, otherwise a valid node certificate.
fn subject_spec(subject: Vec<(Attr, AttrValue)>) -> CertSpec {
    let mut s = CertSpec::new(subject, NODE_VALIDITY);
    s.ekus = vec![Eku::ClientAuth];
    s.key_usages = vec![KeyUsage::DigitalSignature];
    s
}

/// The `refused` event of `e`: (principal, reason, detail).
fn refusal_of(e: &Entry) -> (Option<&str>, RefusalReason, &str) {
    match &e.event {
        Event::Refused {
            principal,
            reason,
            detail,
            category,
            recipient,
            alert,
        } => {
            assert_eq!(
                (category, recipient, alert),
                (&None, &None, &None),
                "an identity refusal names no category, recipient or alert"
            );
            (principal.as_deref(), *reason, detail.as_str())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Waits for the `refused` entry whose detail contains `part` (refused handshakes are
/// logged without anyone waiting for the entry).
async fn refused_entry(net: &TestNet, relay: &TestRelay, part: &str) -> Entry {
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let e = wait_for_entry(
        &auditor,
        &relay.verifier(),
        part,
        |e| matches!(&e.event, Event::Refused { detail, .. } if detail.contains(part)),
    )
    .await;
    auditor.close().await;
    e
}

/// Asserts a refused TLS handshake's audit entry: no principal (nothing is read from a
/// certificate the TLS layer refused), `unknown_identity`, and the detail
/// `TLS handshake from 127.0.0.1:PORT failed: the cryptographic handshake failed: <tail>`.
fn assert_handshake_refusal(e: &Entry, tail: &str) {
    let (principal, reason, detail) = refusal_of(e);
    assert_eq!(principal, None, "{detail}");
    assert_eq!(reason, RefusalReason::UnknownIdentity);
    assert!(
        detail.starts_with("TLS handshake from 127.0.0.1:"),
        "{detail}"
    );
    assert!(
        detail.ends_with(&format!(
            "failed: the cryptographic handshake failed: {tail}"
        )),
        "{detail}"
    );
}

/// Asserts the audit entry of a connection refused after the handshake (the certificate
/// chains to the CA but names no principal of the agreement).
fn assert_subject_refusal(e: &Entry, principal: Option<&str>, reason_text: &str) {
    let (p, reason, detail) = refusal_of(e);
    assert_eq!(p, principal, "{detail}");
    assert_eq!(reason, RefusalReason::UnknownIdentity);
    assert!(detail.starts_with("connection from 127.0.0.1:"), "{detail}");
    assert!(
        detail.ends_with(&format!(" refused: {reason_text}")),
        "{detail}"
    );
}

/// Presents `cert` as `SPVQ/ESM` and returns what the node is told.
async fn present(net: &TestNet, relay: &TestRelay, cert: &IssuedCert) -> String {
    refused(
        connect_and_ask(&with_cert(net, relay.addr, cert)).await,
        relay.addr,
    )
}

/// A raw connection of the dev node of `unit` that has been answered once (so the relay
/// has identified and registered it), kept open with its stream.
async fn raw_node(
    net: &TestNet,
    unit: &str,
    relay: SocketAddr,
) -> (RawConn, quinn::SendStream, quinn::RecvStream) {
    let c = connect(raw::node_client_config(net, unit), relay, "127.0.0.1")
        .await
        .unwrap();
    let frame = encode_frame(&ClientFrame {
        id: 1,
        request: Request::WhoAmI,
    })
    .unwrap();
    let (send, mut recv) = c.send(&frame).await.unwrap();
    match read_frame::<ServerFrame>(&mut recv, WAIT).await.unwrap() {
        Some(ServerFrame::Response {
            id: 1,
            result: Ok(Response::WhoAmI(w)),
        }) => assert_eq!(w.principal.unit.to_string(), unit),
        other => panic!("expected the WhoAmI answer, got {other:?}"),
    }
    (c, send, recv)
}

/// What a node is told when the relay refuses its certificate's dates.
const DATES_ALERT: &str = "the relay refused the TLS handshake (TLS alert 45 certificate_expired: this node's certificate is expired or not yet valid; check the dates and the clock)";

/// The relay's verification time (UNIX seconds) in a dates refusal, checked to be now.
fn verification_time(m: &str) -> i64 {
    let t: i64 = m
        .split("verification time ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no verification time in {m:?}"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now - 60..=now).contains(&t),
        "verification time {t}, now {now}"
    );
    t
}

// ---- certificates the TLS layer refuses ------------------------------------------------

#[tokio::test]
async fn a_self_signed_node_certificate_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cert = filet_certs::self_signed(&esm_spec("auto-signe-01")).unwrap();

    let m = present(&net, &relay, &cert).await;

    assert_eq!(
        m,
        "the relay refused the TLS handshake (TLS alert 48 unknown_ca: the certificate is not issued by this agreement's CA): invalid peer certificate: UnknownIssuer"
    );
    let e = refused_entry(&net, &relay, "UnknownIssuer").await;
    assert_handshake_refusal(&e, "error 48: invalid peer certificate: UnknownIssuer");
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn an_expired_node_certificate_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut spec = esm_spec("expire-01");
    spec.not_after = spec.not_before - time::Duration::days(1);
    spec.not_before = spec.not_after - time::Duration::days(30);
    let cert = net.ca().issue(&spec).unwrap();

    let m = present(&net, &relay, &cert).await;

    let not_after = spec.not_after.unix_timestamp();
    let t = verification_time(&m);
    let why = format!(
        "invalid peer certificate: certificate expired: verification time {t} (UNIX), but certificate is not valid after {not_after} ({} seconds ago)",
        t - not_after
    );
    assert_eq!(m, format!("{DATES_ALERT}: {why}"));
    let e = refused_entry(&net, &relay, "certificate expired").await;
    assert_handshake_refusal(&e, &format!("error 45: {why}"));
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_node_certificate_not_yet_valid_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut spec = esm_spec("futur-01");
    spec.not_before += time::Duration::days(2);
    let cert = net.ca().issue(&spec).unwrap();

    let m = present(&net, &relay, &cert).await;

    let not_before = spec.not_before.unix_timestamp();
    let t = verification_time(&m);
    let why = format!(
        "invalid peer certificate: certificate not valid yet: verification time {t} (UNIX), but certificate is not valid before {not_before} ({} seconds in future)",
        not_before - t
    );
    assert_eq!(m, format!("{DATES_ALERT}: {why}"));
    let e = refused_entry(&net, &relay, "certificate not valid yet").await;
    assert_handshake_refusal(&e, &format!("error 45: {why}"));
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_certificate_for_server_auth_only_is_refused_at_the_handshake_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut spec = esm_spec("serveur-01");
    spec.ekus = vec![Eku::ServerAuth];
    let cert = net.ca().issue(&spec).unwrap();

    let m = present(&net, &relay, &cert).await;

    let why = "invalid peer certificate: certificate does not allow extended key usage for client authentication, allows server authentication";
    assert_eq!(
        m,
        format!("the relay refused the TLS handshake (TLS alert 43 unsupported_certificate: the certificate's type or key usage is not accepted: a node certificate needs EKU clientAuth): {why}")
    );
    let e = refused_entry(&net, &relay, "error 43").await;
    assert_handshake_refusal(&e, &format!("error 43: {why}"));
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

// ---- subjects that name no principal ---------------------------------------------------

/// Presents a certificate of the agreement's CA with `subject`; asserts the node is told
/// `the relay closed the connection: <reason>` and that the refusal is audited with
/// `principal`.
async fn assert_subject_refused(
    subject: Vec<(Attr, AttrValue)>,
    reason: &str,
    principal: Option<&str>,
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cert = net.ca().issue(&subject_spec(subject)).unwrap();

    let m = present(&net, &relay, &cert).await;

    assert_eq!(m, format!("the relay closed the connection: {reason}"));
    // Logged and durable before the relay closed the connection: no wait needed.
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    auditor.close().await;
    let refusals = events(&log, "refused");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_subject_refusal(refusals[0], principal, reason);
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_subject_without_o_is_refused_naming_the_attribute_and_audited() {
    assert_subject_refused(
        vec![(Attr::OU, "ESM".into()), (Attr::CN, "sans-o-01".into())],
        "certificate subject: certificate subject has no O attribute",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_subject_without_cn_is_refused_naming_the_attribute_and_audited() {
    assert_subject_refused(
        vec![(Attr::O, "SPVQ".into()), (Attr::OU, "ESM".into())],
        "certificate subject: certificate subject has no CN attribute",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_subject_with_two_o_is_refused_and_not_read_as_either_party() {
    assert_subject_refused(
        vec![
            (Attr::O, "SPVQ".into()),
            (Attr::O, "DPJ".into()),
            (Attr::OU, "ESM".into()),
            (Attr::CN, "deux-o-01".into()),
        ],
        "certificate subject: certificate subject has more than one O attribute",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_subject_with_invalid_utf8_in_ou_is_refused() {
    assert_subject_refused(
        vec![
            (Attr::O, "SPVQ".into()),
            (
                Attr::OU,
                AttrValue::Raw {
                    tag: 12,
                    bytes: vec![b'E', 0xff, b'M'],
                },
            ),
            (Attr::CN, "utf8-01".into()),
        ],
        "certificate subject: certificate subject OU is not a valid UTF-8 or printable string",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_unit_code_of_another_party_is_refused_by_name_and_audited() {
    // SPVQ is a party and RTS a unit of the agreement, but RTS is DPJ's, not SPVQ's.
    assert_subject_refused(
        vec![
            (Attr::O, "SPVQ".into()),
            (Attr::OU, "RTS".into()),
            (Attr::CN, "spvq-rts-01".into()),
        ],
        "principal SPVQ/RTS/spvq-rts-01: unit RTS is not a unit of party SPVQ in agreement table-regionale-quebec-esj v1",
        Some("SPVQ/RTS/spvq-rts-01"),
    )
    .await;
}

// ---- changes while connected -----------------------------------------------------------

#[tokio::test]
async fn a_unit_removed_from_the_agreement_is_cut_on_reload_and_refused_afterwards() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let pivot = net.node("DPJ/PIVOT", relay.addr).await;
    pivot.whoami().await.unwrap();
    let (raw_pivot, _s, _r) = raw_node(&net, "DPJ/PIVOT", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rts_rx = rts.subscribe().await.unwrap();
    let old_units = "units = { RTS = \"Réception et traitement des signalements\", PIVOT = \"Intervenants pivots\", CONFORMITE = \"Conformité\" }";
    assert!(AGREEMENT.contains(old_units) && AGREEMENT.contains("\nversion = 1\n"));
    let amended = AGREEMENT
        .replace("\nversion = 1\n", "\nversion = 2\n")
        .replace(
            old_units,
            "units = { RTS = \"Réception et traitement des signalements\", CONFORMITE = \"Conformité\" }",
        );
    std::fs::write(&net.agreement, amended).unwrap();

    let summary = relay.handle.reload().await.unwrap();

    assert!(
        summary.starts_with("agreement table-regionale-quebec-esj v2 (sha256 "),
        "{summary}"
    );
    assert!(
        summary.ends_with(") loaded; CRL with 0 revoked certificate(s) in force; 0 connection(s) of revoked certificates and 2 of units no longer in the agreement closed"),
        "{summary}"
    );
    let reason = "principal DPJ/PIVOT/dpj-pivot-01: unit PIVOT is not a unit of party DPJ in agreement table-regionale-quebec-esj v2";
    let (code, why) = application_close(&raw_pivot.closed_within(WAIT).await);
    assert_eq!(
        (code, why.as_str()),
        (u64::from(close::UNKNOWN_PRINCIPAL), reason)
    );
    let told = tokio::time::timeout(WAIT, pivot.closed_reason())
        .await
        .unwrap();
    assert_eq!(told, format!("the relay closed the connection: {reason}"));
    // A new connection of the removed unit is refused by name.
    let again = refused(
        connect_and_ask(&net.node_config("DPJ/PIVOT", relay.addr)).await,
        relay.addr,
    );
    assert_eq!(again, format!("the relay closed the connection: {reason}"));
    // The other units of the party keep their connection and their deliveries.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let r = esm.post(runaway()).await.unwrap();
    assert_eq!(next_delivery(&mut rts_rx).await.envelope.id, r.alert);

    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let loaded: Vec<&Entry> = events(&log, "agreement_loaded");
    assert_eq!(loaded.len(), 2);
    assert!(matches!(
        &loaded[1].event,
        Event::AgreementLoaded { version: 2, .. }
    ));
    let refusals = events(&log, "refused");
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    for e in &refusals[..2] {
        assert!(
            e.index > loaded[1].index,
            "the new agreement is logged first"
        );
        let (p, why, detail) = refusal_of(e);
        assert_eq!(
            (p, why, detail),
            (
                Some("DPJ/PIVOT/dpj-pivot-01"),
                RefusalReason::UnknownIdentity,
                format!("open connection closed on reload: {reason}").as_str()
            )
        );
    }
    assert_subject_refusal(refusals[2], Some("DPJ/PIVOT/dpj-pivot-01"), reason);
    for n in [esm, rts, auditor, pivot] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_certificate_revoked_while_connected_is_cut_when_the_crl_is_reloaded() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cert_path = net.pki.join("nodes/CJQ-PIVOT.crt.pem");
    let serial =
        filet_certs::serial_hex(filet_certs::load_certs(&cert_path).unwrap()[0].as_ref()).unwrap();
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    cjq.whoami().await.unwrap();
    let (raw_cjq, _s, _r) = raw_node(&net, "CJQ/PIVOT", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rts_rx = rts.subscribe().await.unwrap();
    filet_certs::revoke(&net.pki, &cert_path, RevocationReason::KeyCompromise).unwrap();

    let summary = relay.handle.reload().await.unwrap();

    assert!(
        summary.ends_with("unchanged; CRL with 1 revoked certificate(s) in force; 2 connection(s) of revoked certificates and 0 of units no longer in the agreement closed"),
        "{summary}"
    );
    let reason = format!(
        "certificate {serial} of CJQ/PIVOT/cjq-pivot-01 is revoked by the reloaded CRL (number 2)"
    );
    let (code, why) = application_close(&raw_cjq.closed_within(WAIT).await);
    assert_eq!(
        (code, why.as_str()),
        (u64::from(close::REVOKED), reason.as_str())
    );
    let told = tokio::time::timeout(WAIT, cjq.closed_reason())
        .await
        .unwrap();
    assert_eq!(told, format!("the relay closed the connection: {reason}"));
    // A new connection with the revoked certificate fails at the handshake.
    let again = refused(
        connect_and_ask(&net.node_config("CJQ/PIVOT", relay.addr)).await,
        relay.addr,
    );
    assert_eq!(
        again,
        "the relay refused the TLS handshake (TLS alert 44 certificate_revoked: this node's certificate is revoked; ask the operator for a new one): invalid peer certificate: Revoked"
    );
    // Others keep working.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let r = esm.post(runaway()).await.unwrap();
    assert_eq!(next_delivery(&mut rts_rx).await.envelope.id, r.alert);

    let e = refused_entry(&net, &relay, "invalid peer certificate: Revoked").await;
    assert_handshake_refusal(&e, "error 44: invalid peer certificate: Revoked");
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let cut: Vec<&Entry> = events(&log, "refused")
        .into_iter()
        .filter(|e| refusal_of(e).0.is_some())
        .collect();
    assert_eq!(cut.len(), 2, "{cut:?}");
    for e in cut {
        assert_eq!(
            refusal_of(e),
            (
                Some("CJQ/PIVOT/cjq-pivot-01"),
                RefusalReason::UnknownIdentity,
                format!("open connection closed on reload: {reason}").as_str()
            )
        );
    }
    for n in [esm, rts, auditor, cjq] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn alerts_waiting_for_a_unit_the_agreement_no_longer_permits_are_withheld_or_narrowed() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    // CJQ/PIVOT and SPVQ/IKAT are offline: the alert waits in their mailboxes.
    let r = esm.post(runaway()).await.unwrap();
    let to = "to = [\"DPJ/RTS\", \"CJQ/PIVOT\"]";
    let patrol = "fields = [\"subject.given_name\", \"subject.age\", \"subject.description\", \"last_seen.place\", \"last_seen.at\", \"instructions\", \"contact\"]";
    assert!(AGREEMENT.contains(to) && AGREEMENT.contains(patrol));
    let amended = AGREEMENT
        .replace("\nversion = 1\n", "\nversion = 2\n")
        .replace(to, "to = [\"DPJ/RTS\"]")
        .replace(patrol, "fields = [\"subject.given_name\", \"contact\"]");
    std::fs::write(&net.agreement, amended).unwrap();
    relay.handle.reload().await.unwrap();

    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    let cjq_inbox = cjq.inbox().await.unwrap();
    let ikat_inbox = ikat.inbox().await.unwrap();

    assert!(cjq_inbox.is_empty(), "no rule permits CJQ/PIVOT any more");
    assert_eq!(ikat_inbox.len(), 1);
    let d = &ikat_inbox[0];
    assert_eq!(d.envelope.id, r.alert);
    assert_eq!(d.fields.paths(), ["subject.given_name", "contact"]);
    assert_eq!(
        d.content.present(),
        d.fields,
        "only the fields the rule permits now"
    );
    let reason = "no rule of agreement table-regionale-quebec-esj v2 permits SPVQ/ESM to send runaway alerts to CJQ/PIVOT any more";
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let e = wait_for_entry(&auditor, &relay.verifier(), "withheld", |e| {
        matches!(e.event, Event::Withheld { .. })
    })
    .await;
    assert_eq!(
        e.event,
        Event::Withheld {
            alert: r.alert,
            sender: "SPVQ/ESM/spvq-esm-01".parse().unwrap(),
            recipient: "CJQ/PIVOT".parse().unwrap(),
            reason: reason.into(),
        }
    );
    let log = full_log(&auditor, &relay.verifier()).await;
    let delivered: Vec<&Event> = events(&log, "delivered").iter().map(|e| &e.event).collect();
    assert_eq!(
        delivered,
        [&Event::Delivered {
            alert: r.alert,
            sender: "SPVQ/ESM/spvq-esm-01".parse().unwrap(),
            recipient: "SPVQ/IKAT/spvq-ikat-01".parse().unwrap(),
            fields: d.fields,
            rules: vec!["enquete-vers-patrouille".into()],
            agreement: Some(AGREEMENT_ID.into()),
            agreement_version: Some(2),
        }],
        "the narrowed fields are what the log says was sent"
    );
    for n in [esm, cjq, ikat, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

// ---- the relay's own certificate -------------------------------------------------------

#[tokio::test]
async fn a_node_refuses_a_relay_certificate_from_another_ca() {
    let net = TestNet::new();
    let other = filet_certs::Ca::generate("une-autre-entente").unwrap();
    let impostor = other
        .issue(&CertSpec::relay(&["127.0.0.1".to_owned()]).unwrap())
        .unwrap();
    let mut cfg = net.relay_config();
    cfg.pki.cert = net.path().join("impostor.crt.pem");
    cfg.pki.key = net.path().join("impostor.key.pem");
    impostor.write(&cfg.pki.cert, &cfg.pki.key, false).unwrap();
    let relay = TestRelay::start(cfg).await;

    let m = connection_error(Node::connect(&net.node_config("SPVQ/ESM", relay.addr)).await);

    assert_eq!(
        m,
        format!("{}: this node refused the relay's certificate (TLS alert 48): invalid peer certificate: UnknownIssuer; check the profile's server_name and ca", relay.addr)
    );
    relay.stop().await;
    // The relay only sees a handshake the node aborted: the node refused the relay, the
    // relay refused nobody, so nothing is logged as a refusal.
    let log = offline_log(&net.data_dir());
    assert!(
        events(&log, "refused").is_empty(),
        "{:?}",
        events(&log, "refused")
    );
}

#[tokio::test]
async fn a_request_on_a_connection_the_relay_closed_fails_at_once_with_the_reason() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    cjq.whoami().await.unwrap();
    filet_certs::revoke(
        &net.pki,
        &net.pki.join("nodes/CJQ-PIVOT.crt.pem"),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    relay.handle.reload().await.unwrap();
    let told = tokio::time::timeout(WAIT, cjq.closed_reason())
        .await
        .unwrap();

    // The node knows the connection is closed: a new request must say so, not wait.
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), cjq.whoami()).await;

    let r = r.expect("the request on a closed connection waited more than 5 s");
    assert_eq!(connection_error(r), told);
    relay.stop().await;
}
