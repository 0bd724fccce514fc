//! Live reloads (requirements §3, §4; docs/operations.md "Change the agreement, live", "Revoke"):
//! an amended agreement is logged before it is used and cuts only the connections of the
//! units it removed, while posts keep flowing and nothing is lost; a broken agreement is
//! refused with file, line and rule and changes nothing; a reloaded CRL cuts the revoked
//! certificate's connections and refuses its new handshakes; `filet-relay reload` (with
//! `--config` or `--data-dir`) and SIGHUP do the same on a `filet-relay serve` process.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use filet_certs::RevocationReason;
use filet_client::{ClientError, Node, NodeConfig};
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::wire::{close, Receipt, WhoAmI};
use filet_proto::{AlertId, Category, Selector};
use filet_tests::raw::{application_close, connect, node_client_config, RawConn};
use filet_tests::*;
use tokio::sync::{mpsc, watch};

/// Recipients of a `SPVQ/ESM` runaway alert without `to`, under the example agreement.
const V1_RECIPIENTS: [&str; 4] = ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"];
/// The same under the amendment without `SPVQ/IKAT`.
const V2_RECIPIENTS: [&str; 3] = ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP"];
/// Most posts of the continuous poster: it stops earlier when told, but never runs away
/// (and never fills a node's delivery buffer of 1024).
const MAX_POSTS: usize = 400;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn units(r: &Receipt) -> Vec<String> {
    r.recipients.iter().map(|x| x.unit.to_string()).collect()
}

/// A raw connection with the default node certificate of `unit`, identified by the relay
/// (it has answered `WhoAmI`).
async fn raw_node(net: &TestNet, unit: &str, relay: SocketAddr) -> RawConn {
    let name = net.node_config(unit, relay).server_name;
    let c = connect(node_client_config(net, unit), relay, &name)
        .await
        .unwrap_or_else(|e| panic!("{unit} cannot connect: {e}"));
    assert_eq!(raw_whoami(&c).await.principal.unit, filet_tests::unit(unit));
    c
}

async fn connect_and_ask(cfg: &NodeConfig) -> Result<WhoAmI, ClientError> {
    let node = Node::connect(cfg).await?;
    node.whoami().await
}

/// Waits for the next receipt of the poster (at most [`WAIT`]).
async fn next_receipt(rx: &mut mpsc::Receiver<Receipt>) -> Receipt {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the poster keeps getting receipts")
        .expect("the poster stopped early: see its errors")
}

/// Reads pushed alerts until every id of `expected` has arrived (each wait bounded).
async fn receive_all(
    unit: &str,
    rx: &mut mpsc::Receiver<filet_proto::Disclosed>,
    expected: &BTreeSet<AlertId>,
) {
    let mut missing = expected.clone();
    while !missing.is_empty() {
        let d = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{unit}: {} of {} alerts never pushed, e.g. {:?}",
                    missing.len(),
                    expected.len(),
                    missing.first()
                )
            })
            .unwrap_or_else(|| panic!("{unit}: the delivery channel closed"));
        missing.remove(&d.envelope.id);
    }
}

fn agreement_loaded(log: &[Entry]) -> Vec<(u64, u64, String)> {
    log.iter()
        .filter_map(|e| match &e.event {
            Event::AgreementLoaded {
                agreement,
                version,
                sha256,
            } => {
                assert_eq!(agreement, AGREEMENT_ID);
                Some((e.index, *version, sha256.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The `refused` entries about `principal`, as (reason, detail).
fn refusals_of(log: &[Entry], principal: &str) -> Vec<(RefusalReason, String)> {
    log.iter()
        .filter_map(|e| match &e.event {
            Event::Refused {
                principal: Some(p),
                reason,
                detail,
                ..
            } if p == principal => Some((*reason, detail.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_amended_agreement_reloaded_under_traffic_cuts_only_the_removed_unit_and_loses_nothing()
{
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.posts_per_minute = 0; // the poster posts as fast as the relay answers
    let relay = TestRelay::start(cfg).await;
    let mut kept = BTreeMap::new();
    for u in V2_RECIPIENTS {
        let node = net.node(u, relay.addr).await;
        let rx = node.subscribe().await.unwrap();
        kept.insert(u, (node, rx));
    }
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    let _ikat_rx = ikat.subscribe().await.unwrap();
    let ikat_raw = raw_node(&net, "SPVQ/IKAT", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;

    // The poster: one post after another until told to stop (at most MAX_POSTS).
    let (stop_tx, stop_rx) = watch::channel(false);
    let (receipts_tx, mut receipts) = mpsc::channel::<Receipt>(MAX_POSTS);
    let poster = tokio::spawn(async move {
        let mut errors = Vec::new();
        for i in 0..MAX_POSTS {
            if *stop_rx.borrow() {
                break;
            }
            match esm
                .post(alert(Category::Runaway, &format!("LIVE-{i}")))
                .await
            {
                Ok(r) => {
                    let _ = receipts_tx.send(r).await;
                }
                Err(e) => {
                    errors.push(format!("LIVE-{i}: {e}"));
                    break;
                }
            }
        }
        (esm, errors)
    });
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(next_receipt(&mut receipts).await);
    }

    let v2 = agreement_without_ikat(2);
    std::fs::write(&net.agreement, &v2).unwrap();
    let v2_sha = sha256sum(&net.agreement);
    let summary = relay.handle.reload().await;

    assert_eq!(
        summary,
        Ok(format!(
            "agreement {AGREEMENT_ID} v2 (sha256 {v2_sha}) loaded; CRL with 0 revoked certificate(s) in force; 0 connection(s) of revoked certificates and 2 of units no longer in the agreement closed"
        ))
    );
    let reason = format!(
        "principal SPVQ/IKAT/spvq-ikat-01: unit IKAT is not a unit of party SPVQ in agreement {AGREEMENT_ID} v2"
    );
    let closed = ikat_raw.closed_within(WAIT).await;
    assert_eq!(
        application_close(&closed),
        (u64::from(close::UNKNOWN_PRINCIPAL), reason.clone())
    );
    let why = tokio::time::timeout(WAIT, ikat.closed_reason())
        .await
        .unwrap();
    assert_eq!(why, format!("the relay closed the connection: {reason}"));
    // Posts go on during and after the reload.
    for _ in 0..10 {
        got.push(next_receipt(&mut receipts).await);
    }
    stop_tx.send(true).unwrap();
    let (esm, errors) = tokio::time::timeout(WAIT, poster).await.unwrap().unwrap();
    assert_eq!(errors, Vec::<String>::new(), "every post succeeded");
    while let Ok(r) = receipts.try_recv() {
        got.push(r);
    }

    let log = full_log(&auditor, &relay.verifier()).await;
    let loaded = agreement_loaded(&log);
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert_eq!(loaded[0].1, 1);
    assert_eq!(
        (loaded[1].1, loaded[1].2.as_str()),
        (2, v2_sha.as_str()),
        "v2 and the new file's SHA-256"
    );
    let v2_index = loaded[1].0;
    let (mut under_v1, mut under_v2) = (0, 0);
    for r in &got {
        let u = units(r);
        if u == V2_RECIPIENTS {
            under_v2 += 1;
            assert!(
                r.posted_index > v2_index,
                "alert {} routed by v2 is logged at {}, before agreement_loaded v2 at {v2_index}",
                r.alert,
                r.posted_index
            );
        } else {
            assert_eq!(u, V1_RECIPIENTS, "receipt of {}", r.alert);
            under_v1 += 1;
        }
    }
    assert!(under_v1 >= 10 && under_v2 >= 10, "{under_v1} {under_v2}");
    // The cut is audited, once per connection.
    let detail = format!("open connection closed on reload: {reason}");
    assert_eq!(
        refusals_of(&log, "SPVQ/IKAT/spvq-ikat-01"),
        [
            (RefusalReason::UnknownIdentity, detail.clone()),
            (RefusalReason::UnknownIdentity, detail)
        ]
    );
    // Nobody else was cut: each answers under v2 and got every alert routed to it.
    for (u, (node, rx)) in &mut kept {
        assert_eq!(node.whoami().await.unwrap().agreement_version, 2, "{u}");
        let expected: BTreeSet<AlertId> = got
            .iter()
            .filter(|r| units(r).iter().any(|x| x.as_str() == *u))
            .map(|r| r.alert)
            .collect();
        assert_eq!(
            expected.len(),
            got.len(),
            "{u} is a recipient of every post"
        );
        receive_all(u, rx, &expected).await;
    }
    assert_eq!(auditor.whoami().await.unwrap().agreement_version, 2);

    // A broken amendment changes nothing.
    let (broken, line) =
        agreement_with_unknown_category(&agreement_without_ikat(3), "protection-vers-sante");
    std::fs::write(&net.agreement, broken).unwrap();

    let r = relay.handle.reload().await;

    assert_eq!(
        r,
        Err(format!(
            "{}:{line}: rule \"protection-vers-sante\": unknown category: \"flood\" is not one of runaway, sighting, exploitation-risk; the relay keeps its current agreement and CRL",
            net.agreement.display()
        ))
    );
    assert_eq!(esm.whoami().await.unwrap().agreement_version, 2);
    let r = esm
        .post(alert(Category::Runaway, "AFTER-BROKEN"))
        .await
        .unwrap();
    assert_eq!(units(&r), V2_RECIPIENTS, "still routed by v2");
    let log = full_log(&auditor, &relay.verifier()).await;
    assert_eq!(agreement_loaded(&log).len(), 2, "nothing logged for v3");

    esm.close().await;
    auditor.close().await;
    for (_, (node, _)) in kept {
        node.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_reloaded_crl_cuts_the_revoked_certificate_and_refuses_its_new_handshakes() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    rts.whoami().await.unwrap(); // the relay has identified the connection
    let rts_raw = raw_node(&net, "DPJ/RTS", relay.addr).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let mut cjq_rx = cjq.subscribe().await.unwrap();
    let cert = net.pki.join("nodes/DPJ-RTS.crt.pem");
    let serial =
        filet_certs::serial_hex(filet_certs::load_certs(&cert).unwrap()[0].as_ref()).unwrap();
    filet_certs::revoke(&net.pki, &cert, RevocationReason::KeyCompromise).unwrap();

    let summary = relay.handle.reload().await;

    assert_eq!(
        summary,
        Ok(format!(
            "agreement {AGREEMENT_ID} v1 (sha256 {}) unchanged; CRL with 1 revoked certificate(s) in force; 2 connection(s) of revoked certificates and 0 of units no longer in the agreement closed",
            sha256sum(&net.agreement)
        ))
    );
    let reason = format!(
        "certificate {serial} of DPJ/RTS/dpj-rts-01 is revoked by the reloaded CRL (number 2)"
    );
    let closed = rts_raw.closed_within(WAIT).await;
    assert_eq!(
        application_close(&closed),
        (u64::from(close::REVOKED), reason.clone())
    );
    let why = tokio::time::timeout(WAIT, rts.closed_reason())
        .await
        .unwrap();
    assert_eq!(why, format!("the relay closed the connection: {reason}"));
    // A new connection with the same certificate fails at the handshake.
    let m = connection_error(connect_and_ask(&net.node_config("DPJ/RTS", relay.addr)).await);
    assert_eq!(
        m.strip_prefix(&format!("{}: ", relay.addr)).unwrap_or(&m),
        "the relay refused the TLS handshake (TLS alert 44 certificate_revoked: this node's certificate is revoked; ask the operator for a new one): invalid peer certificate: Revoked"
    );
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let e = wait_for_entry(&auditor, &relay.verifier(), "refused handshake", |e| {
        matches!(&e.event, Event::Refused { principal: None, reason: RefusalReason::UnknownIdentity, detail, .. }
            if detail.ends_with("failed: the cryptographic handshake failed: error 44: invalid peer certificate: Revoked"))
    })
    .await;
    let Event::Refused { detail, .. } = &e.event else {
        unreachable!()
    };
    assert!(
        detail.starts_with("TLS handshake from 127.0.0.1:"),
        "{detail}"
    );
    let log = full_log(&auditor, &relay.verifier()).await;
    let cut = format!("open connection closed on reload: {reason}");
    assert_eq!(
        refusals_of(&log, "DPJ/RTS/dpj-rts-01"),
        [
            (RefusalReason::UnknownIdentity, cut.clone()),
            (RefusalReason::UnknownIdentity, cut)
        ]
    );
    assert_eq!(
        agreement_loaded(&log).len(),
        1,
        "the agreement did not change"
    );
    // The other nodes did not notice.
    assert_eq!(
        esm.whoami().await.unwrap().principal.to_string(),
        "SPVQ/ESM/spvq-esm-01"
    );
    let mut d = alert(Category::Runaway, "AFTER-CRL");
    d.to = vec![Selector::Unit(unit("CJQ/PIVOT"))];
    let r = esm.post(d).await.unwrap();
    assert_eq!(next_delivery(&mut cjq_rx).await.envelope.id, r.alert);
    assert_eq!(
        cjq.whoami().await.unwrap().principal.to_string(),
        "CJQ/PIVOT/cjq-pivot-01"
    );
    for n in [esm, cjq, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn filet_relay_reload_and_sighup_reload_a_serving_relay_and_refuse_a_broken_agreement() {
    let net = Arc::new(TestNet::new());
    let config = net.path().join("relay.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\nagreement = \"agreement.toml\"\npki_dir = \"pki\"\n",
    )
    .unwrap();
    let cfg = path_str(&config).to_owned();
    let relay = {
        let cfg = cfg.clone();
        blocking(move || {
            ChildRelay::builder()
                .config(std::path::Path::new(&cfg))
                .start()
        })
        .await
    };
    let socket = filet_relay::control::socket_path(&net.data_dir());
    blocking(move || wait_for_path(&socket)).await;
    let data_dir = path_str(&net.data_dir()).to_owned();
    let reload = |args: Vec<String>| {
        blocking(move || {
            let mut all = vec!["reload"];
            all.extend(args.iter().map(String::as_str));
            run("filet-relay", &all)
        })
    };
    let summary = |version: u64, sha: &str| {
        format!("agreement {AGREEMENT_ID} v{version} (sha256 {sha}) loaded; CRL with 0 revoked certificate(s) in force; 0 connection(s) of revoked certificates and 0 of units no longer in the agreement closed")
    };

    // --config
    std::fs::write(&net.agreement, agreement_without_ikat(2)).unwrap();
    let v2_sha = sha256sum(&net.agreement);
    let out = reload(vec!["--config".into(), cfg.clone()]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), format!("{}\n", summary(2, &v2_sha)).as_str(), "")
    );

    // A broken agreement: exit 1, file and line.
    let (broken, line) =
        agreement_with_unknown_category(&agreement_without_ikat(3), "police-vers-ecoles");
    std::fs::write(&net.agreement, &broken).unwrap();
    let refused = format!(
        "{}:{line}: rule \"police-vers-ecoles\": unknown category: \"flood\" is not one of runaway, sighting, exploitation-risk; the relay keeps its current agreement and CRL",
        net.agreement.display()
    );
    let out = reload(vec!["--config".into(), cfg.clone()]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            Some(1),
            "",
            format!("filet-relay: reload refused: {refused}\n").as_str()
        )
    );
    // Regression: a refusal asked through the control socket was not logged by the relay
    // (a SIGHUP refusal was).
    let relay = {
        let refused = refused.clone();
        blocking(move || {
            let line = relay.wait_for_log(&format!("reload refused: {refused}"), WAIT);
            assert!(line.contains("ERROR"), "{line}");
            relay
        })
        .await
    };

    // --data-dir
    std::fs::write(&net.agreement, agreement_without_ikat(3)).unwrap();
    let v3_sha = sha256sum(&net.agreement);
    let out = reload(vec!["--data-dir".into(), data_dir]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), format!("{}\n", summary(3, &v3_sha)).as_str(), "")
    );

    // SIGHUP: no answer to wait for; the relay logs what it did.
    std::fs::write(&net.agreement, agreement_without_ikat(4)).unwrap();
    let v4_sha = sha256sum(&net.agreement);
    relay.signal("HUP");
    let relay = blocking(move || {
        relay.wait_for_log(&format!("reload: {}", summary(4, &v4_sha)), WAIT);
        relay
    })
    .await;
    std::fs::write(&net.agreement, &broken).unwrap();
    relay.signal("HUP");
    let relay = blocking(move || {
        wait_for_log_count(&relay, &format!("reload refused: {refused}"), 2);
        relay
    })
    .await;

    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    assert_eq!(auditor.whoami().await.unwrap().agreement_version, 4);
    let verifier = filet_proto::checkpoint::NoteVerifier::parse(&relay.logged_key).unwrap();
    let log = full_log(&auditor, &verifier).await;
    let versions: Vec<(u64, String)> = agreement_loaded(&log)
        .into_iter()
        .map(|(_, v, sha)| (v, sha))
        .collect();
    assert_eq!(
        versions,
        [
            (1, sha256_of(AGREEMENT)),
            (2, sha256_of(&agreement_without_ikat(2))),
            (3, sha256_of(&agreement_without_ikat(3))),
            (4, sha256_of(&agreement_without_ikat(4))),
        ]
    );
    auditor.close().await;
    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Polls the relay's log (at most [`WAIT`]) until `needle` is on `n` lines: the second
/// refusal of the same file logs the same line as the first.
fn wait_for_log_count(relay: &ChildRelay, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while relay
        .stderr()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
        < n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} not logged {n} times within {WAIT:?}:\n{}",
            relay.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The SHA-256 of `text` as a file, by `sha256sum`.
fn sha256_of(text: &str) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    sha256sum(f.path())
}

#[tokio::test]
async fn a_request_after_the_relay_cut_the_connection_fails_at_once_with_the_reason() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    rts.whoami().await.unwrap(); // the relay has identified the connection
    let cert = net.pki.join("nodes/DPJ-RTS.crt.pem");
    let serial =
        filet_certs::serial_hex(filet_certs::load_certs(&cert).unwrap()[0].as_ref()).unwrap();
    filet_certs::revoke(&net.pki, &cert, RevocationReason::KeyCompromise).unwrap();
    relay.handle.reload().await.unwrap();
    let reason = format!(
        "the relay closed the connection: certificate {serial} of DPJ/RTS/dpj-rts-01 is revoked by the reloaded CRL (number 2)"
    );
    let why = tokio::time::timeout(WAIT, rts.closed_reason())
        .await
        .unwrap();
    assert_eq!(why, reason);

    // The node knows its connection is closed: asking anything must fail now, with why.
    let r = tokio::time::timeout(std::time::Duration::from_secs(2), rts.whoami())
        .await
        .expect("a request on a closed connection fails at once, not after REQUEST_TIMEOUT");

    assert_eq!(connection_error(r), reason);
    relay.stop().await;
}

#[tokio::test]
async fn a_connection_whose_handshake_straddles_a_crl_reload_is_cut_too() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cert = net.pki.join("nodes/DPJ-RTS.crt.pem");
    let serial =
        filet_certs::serial_hex(filet_certs::load_certs(&cert).unwrap()[0].as_ref()).unwrap();
    // The node's side of the handshake is done; the relay's (its check of the node's
    // certificate, with the CRL in force when the handshake began) is not yet.
    let rts = net.node("DPJ/RTS", relay.addr).await;
    filet_certs::revoke(&net.pki, &cert, RevocationReason::KeyCompromise).unwrap();

    relay.handle.reload().await.unwrap();

    // Whatever the moment of the handshake, once the reload has answered, a revoked
    // certificate has no open connection: either refused or cut.
    match tokio::time::timeout(WAIT, rts.closed_reason()).await {
        Ok(why) => assert!(why.contains("revoked"), "{why}"),
        Err(_) => {
            let still = rts.whoami().await.map(|w| w.principal.to_string());
            panic!("the connection of revoked certificate {serial} is still open after the reload; it answers WhoAmI: {still:?}")
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_unit_that_lost_its_rule_since_the_original_still_gets_the_closing_notice_envelope_only()
{
    use filet_proto::alert::{AlertState, FieldSet, Kind};
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let gripp = net.node("SPVQ/GRIPP", relay.addr).await;
    let original = esm.post(runaway()).await.unwrap();
    assert_eq!(inbox_ids(&gripp).await, [original.alert]);
    gripp.ack(original.alert).await.unwrap();
    // The amendment: the patrol of the bars no longer receives runaway alerts.
    let v2 = AGREEMENT.replace("version = 1\n", "version = 2\n").replace(
        "to = [\"SPVQ/IKAT\", \"SPVQ/GRIPP\"]",
        "to = [\"SPVQ/IKAT\"]",
    );
    std::fs::write(&net.agreement, &v2).unwrap();
    relay.handle.reload().await.unwrap();
    let update = esm
        .post(follow_up(
            Kind::Update,
            original.alert,
            Some("Vue rue Saint-Joseph"),
        ))
        .await
        .unwrap();
    assert!(
        update
            .recipients
            .iter()
            .all(|r| r.unit != unit("SPVQ/GRIPP")),
        "an update is not a closing notice"
    );

    let located = esm
        .post(follow_up(
            Kind::Located,
            original.alert,
            Some("Retrouvée chez sa tante, 12 rue des Lilas"),
        ))
        .await
        .unwrap();

    let notice = located
        .recipients
        .iter()
        .find(|r| r.unit == unit("SPVQ/GRIPP"))
        .expect("a closing notice to SPVQ/GRIPP");
    assert_eq!(notice.fields, FieldSet::EMPTY);
    assert_eq!(notice.rules, ["enquete-vers-patrouille"]);
    let got = gripp.inbox().await.unwrap();
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.envelope.id, located.alert);
    assert_eq!(d.envelope.kind, Kind::Located);
    assert_eq!(d.envelope.references, Some(original.alert));
    assert_eq!(d.state, AlertState::Located);
    assert_eq!(d.fields, FieldSet::EMPTY);
    assert_eq!(d.content, filet_proto::Content::default());
    assert_eq!(d.note, None, "no content, the note neither");
    assert!(d.history.iter().all(|h| h.note.is_none()));
    assert!(
        d.history.iter().all(|h| h.id != update.alert),
        "nothing of what it was not told"
    );
    // Still permitted units get the located as their rule allows it: IKAT's rule lists its
    // fields without `note`, so it learns the youth was located, not the note's words.
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    let full = ikat.inbox().await.unwrap();
    let l = full
        .iter()
        .find(|d| d.envelope.id == located.alert)
        .unwrap();
    assert_eq!(l.state, AlertState::Located);
    assert_eq!(l.note, None);
    assert!(!l.fields.is_empty(), "{:?}", l.fields);
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let disclosed = log
        .iter()
        .find_map(|e| match &e.event {
            Event::Disclosed {
                alert,
                recipient,
                rules,
                legal_bases,
                fields,
                ..
            } if *alert == located.alert && *recipient == unit("SPVQ/GRIPP") => {
                Some((rules.clone(), legal_bases.clone(), *fields))
            }
            _ => None,
        })
        .expect("the closing notice is audited as a disclosure");
    assert_eq!(
        disclosed,
        (
            vec!["enquete-vers-patrouille".to_string()],
            vec!["closing-notice".to_string()],
            FieldSet::EMPTY
        )
    );
    for n in [esm, gripp, ikat, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_agreement_whose_retention_ends_in_a_multibyte_character_is_refused_at_reload_and_a_later_reload_succeeds(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let v1 = std::fs::read_to_string(&net.agreement).unwrap();
    let line = v1.lines().position(|l| l == "retention = \"14d\"").unwrap() + 1;
    for bad in ["14é", "é", "14d\u{301}"] {
        let broken = agreement_without_ikat(2).replacen(
            "retention = \"14d\"",
            &format!("retention = \"{bad}\""),
            1,
        );
        std::fs::write(&net.agreement, broken).unwrap();

        let r = relay.handle.reload().await;

        let e = r.unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}:{}: rule \"police-vers-ecoles\": retention {bad:?} is not a number",
                net.agreement.display(),
                // The amendment removes no line before this rule.
                line
            )),
            "{e}"
        );
        assert!(
            e.ends_with("; the relay keeps its current agreement and CRL"),
            "{e}"
        );
        assert_eq!(esm.whoami().await.unwrap().agreement_version, 1);
    }
    // The controller still serves: a valid amendment is taken.
    std::fs::write(&net.agreement, agreement_without_ikat(2)).unwrap();
    let summary = relay.handle.reload().await.unwrap();
    assert!(summary.contains("v2"), "{summary}");
    assert_eq!(esm.whoami().await.unwrap().agreement_version, 2);
    esm.close().await;
    relay.stop().await;
}

/// Issue 10, item 25: the control socket was bound in the data directory and chmod'ed
/// after: for an instant it had the umask's mode, reachable by other users.
#[tokio::test]
async fn the_control_socket_is_bound_in_a_directory_only_the_relay_user_can_enter() {
    use std::os::unix::fs::PermissionsExt;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let socket = filet_relay::control::socket_path(&net.data_dir());
    let found = socket.clone();
    tokio::task::spawn_blocking(move || wait_for_path(&found))
        .await
        .unwrap();

    let dir = socket.parent().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    assert_eq!(
        mode(dir),
        0o700,
        "{} holds the control socket with mode {:o}",
        dir.display(),
        mode(dir)
    );
    // The socket itself is set to 0600 just after its bind.
    let deadline = std::time::Instant::now() + WAIT;
    while mode(&socket) != 0o600 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(mode(&socket), 0o600);
    relay.stop().await;
}
