//! The CRL's freshness and succession (docs/security.md, docs/operations.md "Revoke"): a
//! CRL past its nextUpdate is used with a loud error and `filet_crl_stale` 1 (fail-open),
//! a warning comes a day ahead, a CRL older than the one in force is refused on reload and
//! every revocation stays, and each CRL put in force is audited (`crl_loaded`) with its
//! number and SHA-256.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use filet_certs::{Layout, RevocationList, RevocationReason};
use filet_client::Node;
use filet_proto::audit::{Entry, Event};
use filet_proto::Timestamp;
use filet_relay::clock::ManualClock;
use filet_tests::*;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// The samples of `GET /metrics`: `name{labels}` → value.
async fn scrape(addr: SocketAddr) -> BTreeMap<String, String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text
    };
    let text = tokio::time::timeout(WAIT, exchange).await.unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn gauge(m: &BTreeMap<String, String>, name: &str) -> i64 {
    m.get(name)
        .unwrap_or_else(|| panic!("no {name} in {m:?}"))
        .parse()
        .unwrap()
}

/// Re-signs `crl.pem` from `revoked.toml` (next number) with the given dates.
fn write_dated_crl(pki: &Path, this_update: OffsetDateTime, next_update: OffsetDateTime) {
    let layout = Layout::new(pki);
    let ca = filet_certs::Ca::load(pki).unwrap();
    let mut list = RevocationList::load(&layout.revoked()).unwrap();
    list.crl_number += 1;
    let pem = ca
        .crl_dated(&list, &layout.revoked(), this_update, next_update)
        .unwrap();
    std::fs::write(layout.revoked(), toml_of(&list)).unwrap();
    std::fs::write(layout.crl(), pem).unwrap();
}

fn toml_of(list: &RevocationList) -> String {
    let mut s = format!("crl_number = {}\n", list.crl_number);
    for r in &list.revoked {
        s += &format!(
            "\n[[revoked]]\nserial = \"{}\"\nrevoked_at = \"{}\"\nreason = \"{}\"\nsubject = \"{}\"\n",
            r.serial,
            r.revoked_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
            r.reason,
            r.subject
        );
    }
    s
}

fn serial_of(net: &TestNet, stem: &str) -> String {
    let cert = Layout::new(&net.pki).node_cert(stem);
    filet_certs::serial_hex(filet_certs::load_certs(&cert).unwrap()[0].as_ref()).unwrap()
}

/// The `crl_loaded` entries: (CRL number, sha256, revoked).
fn crl_loaded(log: &[Entry]) -> Vec<(Option<String>, String, u64)> {
    log.iter()
        .filter_map(|e| match &e.event {
            Event::CrlLoaded {
                crl_number,
                sha256,
                revoked,
                ..
            } => Some((crl_number.clone(), sha256.clone(), *revoked)),
            _ => None,
        })
        .collect()
}

/// SHA-256 of the DER of the (single) CRL in `path`, computed here.
fn crl_sha256(path: &Path) -> String {
    let crls = filet_certs::load_crls(path).unwrap();
    assert_eq!(crls.len(), 1);
    filet_proto::audit::hex(ring::digest::digest(&ring::digest::SHA256, crls[0].as_ref()).as_ref())
}

async fn refused_message(net: &TestNet, unit: &str, relay: SocketAddr) -> String {
    let r = Node::connect(&net.node_config(unit, relay)).await;
    let r = match r {
        Ok(node) => node.whoami().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let m = connection_error(r);
    m.strip_prefix(&format!("{relay}: "))
        .unwrap_or(&m)
        .to_owned()
}

const REVOKED_AT_HANDSHAKE: &str = "the relay refused the TLS handshake (TLS alert 44 certificate_revoked: this node's certificate is revoked; ask the operator for a new one): invalid peer certificate: Revoked";

#[tokio::test]
async fn a_stale_crl_at_start_is_kept_in_force_with_an_error_and_the_stale_metric() {
    let net = TestNet::new();
    filet_certs::revoke(
        &net.pki,
        &Layout::new(&net.pki).node_cert("DPJ-RTS"),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    write_dated_crl(&net.pki, now - Duration::days(40), now - Duration::days(10));

    let mut cfg = net.relay_config();
    cfg.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let relay = TestRelay::start(cfg).await;

    // Fail-open: it serves, and the revocations it holds still apply.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    esm.whoami().await.unwrap();
    assert_eq!(
        refused_message(&net, "DPJ/RTS", relay.addr).await,
        REVOKED_AT_HANDSHAKE
    );
    let m = scrape(relay.metrics_addr.unwrap()).await;
    assert_eq!(gauge(&m, "filet_crl_stale"), 1);
    let left = gauge(&m, "filet_crl_next_update_seconds");
    assert!(
        (-10 * DAY - 120..=-10 * DAY).contains(&left),
        "10 days past: {left}"
    );
    // Every reload answer says so.
    let summary = relay.handle.reload().await.unwrap();
    assert!(
        summary.contains("; the CRL is STALE (past its nextUpdate "),
        "{summary}"
    );
    assert!(summary.ends_with(" by 10d 0h): renew it"), "{summary}");
    esm.close().await;
    relay.stop().await;

    // The log of `filet-relay serve` says it at start, as an error.
    let data = net.path().join("child");
    let net = Arc::new(net);
    let child = {
        let (net, data) = (net.clone(), data.clone());
        tokio::task::spawn_blocking(move || ChildRelay::start(&net, &data))
            .await
            .unwrap()
    };
    let line = child.wait_for_log("is STALE", WAIT);
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&format!(
            "CRL {}/crl.pem (number 3) is STALE: past its nextUpdate ",
            net.pki.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with(" by 10d 0h; the relay keeps using it (every revocation it holds still applies, any made since it was signed are unknown): renew it (filet-certs crl renew) and reload"),
        "{line}"
    );
    drop(child);
}

#[tokio::test]
async fn a_crl_passing_its_next_update_while_running_warns_then_turns_stale() {
    let net = TestNet::new();
    let now = OffsetDateTime::now_utc();
    write_dated_crl(&net.pki, now - Duration::days(1), now + Duration::days(2));
    let mut cfg = net.relay_config();
    cfg.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let clock = ManualClock::new(Timestamp::from_offset(now));
    let relay = TestRelay::start_with_clock(cfg, Arc::new(clock.clone())).await;
    let addr = relay.metrics_addr.unwrap();

    let m = scrape(addr).await;
    assert_eq!(gauge(&m, "filet_crl_stale"), 0);
    let left = gauge(&m, "filet_crl_next_update_seconds");
    assert!((2 * DAY - 2..=2 * DAY).contains(&left), "{left}");
    assert!(!relay.handle.reload().await.unwrap().contains("CRL is"));

    clock.advance((DAY + HOUR) * 1000);
    let m = scrape(addr).await;
    assert_eq!(gauge(&m, "filet_crl_stale"), 0);
    let left = gauge(&m, "filet_crl_next_update_seconds");
    assert!((23 * HOUR - 2..=23 * HOUR).contains(&left), "{left}");
    let summary = relay.handle.reload().await.unwrap();
    assert!(
        summary.contains("; the CRL is due for renewal (nextUpdate "),
        "{summary}"
    );

    clock.advance(DAY * 1000);
    let m = scrape(addr).await;
    assert_eq!(gauge(&m, "filet_crl_stale"), 1);
    let left = gauge(&m, "filet_crl_next_update_seconds");
    assert!((-HOUR - 2..=-HOUR).contains(&left), "{left}");
    assert!(relay
        .handle
        .reload()
        .await
        .unwrap()
        .contains("the CRL is STALE"));
    // Still serving.
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    esm.whoami().await.unwrap();

    // A renewed CRL clears the state.
    filet_certs::renew_crl(&net.pki).unwrap();
    clock.advance(-2 * DAY * 1000);
    let summary = relay.handle.reload().await.unwrap();
    assert!(!summary.contains("CRL is"), "{summary}");
    let m = scrape(addr).await;
    assert_eq!(gauge(&m, "filet_crl_stale"), 0);
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_older_crl_on_reload_is_refused_and_every_revocation_stays_in_force() {
    let net = TestNet::new();
    let layout = Layout::new(&net.pki);
    let relay = net.start_relay().await;
    let first = std::fs::read(layout.crl()).unwrap();
    let first_sha = crl_sha256(&layout.crl());
    let rts = serial_of(&net, "DPJ-RTS");
    filet_certs::revoke(
        &net.pki,
        &layout.node_cert("DPJ-RTS"),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    let second_sha = crl_sha256(&layout.crl());
    relay.handle.reload().await.unwrap();
    assert_eq!(
        refused_message(&net, "DPJ/RTS", relay.addr).await,
        REVOKED_AT_HANDSHAKE
    );

    // The operator puts back the first list (a backup, a wrong copy).
    std::fs::write(layout.crl(), &first).unwrap();
    let refused = relay.handle.reload().await;

    assert_eq!(
        refused,
        Err(format!(
            "{}: CRL number 1 is older than the CRL in force (number 2): loading it would un-revoke the certificates revoked since; sign a new list (filet-certs crl renew) or put back the newest crl.pem; the relay keeps its current agreement and CRL",
            layout.crl().display()
        ))
    );
    assert_eq!(
        refused_message(&net, "DPJ/RTS", relay.addr).await,
        REVOKED_AT_HANDSHAKE,
        "certificate {rts} stays revoked"
    );
    // A renewal after the number in force is taken again.
    filet_certs::renew_crl(&net.pki).unwrap();
    let third_sha = crl_sha256(&layout.crl());
    relay.handle.reload().await.unwrap();
    // Reloading the same list changes nothing and logs nothing.
    relay.handle.reload().await.unwrap();
    assert_eq!(
        refused_message(&net, "DPJ/RTS", relay.addr).await,
        REVOKED_AT_HANDSHAKE
    );

    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    assert_eq!(
        crl_loaded(&log),
        [
            (Some("1".to_owned()), first_sha, 0),
            (Some("2".to_owned()), second_sha, 1),
            (Some("3".to_owned()), third_sha, 1),
        ]
    );
    let first_crl = log
        .iter()
        .position(|e| e.event.name() == "crl_loaded")
        .unwrap();
    assert_eq!(
        log[..first_crl]
            .iter()
            .map(|e| e.event.name())
            .collect::<Vec<_>>(),
        ["relay_started", "agreement_loaded"],
        "in force before anything else is logged"
    );
    auditor.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_restart_with_a_crl_older_than_the_one_the_log_records_in_force_is_refused() {
    let net = TestNet::new();
    let layout = Layout::new(&net.pki);
    let first = std::fs::read(layout.crl()).unwrap();
    let relay = net.start_relay().await;
    filet_certs::revoke(
        &net.pki,
        &layout.node_cert("DPJ-RTS"),
        RevocationReason::KeyCompromise,
    )
    .unwrap();
    relay.handle.reload().await.unwrap();
    relay.stop().await;
    // A restored backup of the PKI directory.
    let newest = std::fs::read(layout.crl()).unwrap();
    std::fs::write(layout.crl(), &first).unwrap();

    let refused = filet_relay::Relay::start(
        net.relay_config(),
        Arc::new(filet_relay::clock::SystemClock),
    )
    .await;

    let Err(e) = refused else {
        panic!("the relay started with CRL number 1 after number 2 was in force")
    };
    assert_eq!(
        e.to_string(),
        format!(
            "{}: CRL number 1 is older than the CRL in force (number 2): loading it would un-revoke the certificates revoked since; sign a new list (filet-certs crl renew) or put back the newest crl.pem (the CRL in force is the one the audit log last records as crl_loaded); the relay does not start",
            layout.crl().display()
        )
    );
    // The newest list starts, and the revocation holds.
    std::fs::write(layout.crl(), &newest).unwrap();
    let relay = net.start_relay().await;
    assert_eq!(
        refused_message(&net, "DPJ/RTS", relay.addr).await,
        REVOKED_AT_HANDSHAKE
    );
    relay.stop().await;
}
