//! The metrics endpoint (docs/operations.md "Watch it", `relay/src/metrics.rs`): `GET
//! /metrics` in the Prometheus text format over plain HTTP, with values that match what
//! happened exactly; anything else is 404.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use filet_proto::wire::ErrorCode;
use filet_proto::{AlertDraft, Category, Selector, Status};
use filet_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTP/1.1 with a plain TCP stream, read to the end (the relay closes).
/// Returns the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).await.unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let text = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within {WAIT:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head.lines().next().unwrap().to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head:?}"))
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "content-length");
    (status, body.to_owned())
}

/// The samples of a text exposition: `name{labels}` → value, comments skipped.
fn samples(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        assert!(
            out.insert(key.to_owned(), value.to_owned()).is_none(),
            "{key} twice"
        );
    }
    out
}

/// The samples whose name is `name` (with any labels).
fn family<'a>(s: &'a BTreeMap<String, String>, name: &str) -> BTreeMap<&'a str, &'a str> {
    s.iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn scrape(addr: SocketAddr) -> BTreeMap<String, String> {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    samples(&body)
}

fn to_rts(reference: &str) -> AlertDraft {
    let mut d = alert(Category::Runaway, reference);
    d.to = vec![Selector::Unit(unit("DPJ/RTS"))];
    d
}

#[tokio::test]
async fn the_metrics_endpoint_counts_exactly_what_happened() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let relay = TestRelay::start(cfg).await;
    let addr = relay.metrics_addr.expect("metrics are on");
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(esm.post(to_rts(&format!("MET-{i}"))).await.unwrap().alert);
    }
    let mut exercise = to_rts("MET-EX");
    exercise.status = Status::Exercise;
    ids.push(esm.post(exercise).await.unwrap().alert);
    let mut not_permitted = alert(Category::Runaway, "MET-NO");
    not_permitted.to = vec![Selector::Unit(unit("DPCP/PROCUREURS"))];
    assert_eq!(
        refusal(esm.post(not_permitted).await).code,
        ErrorCode::NotPermitted
    );
    assert_eq!(rts.inbox().await.unwrap().len(), 4, "four deliveries");
    rts.ack(ids[0]).await.unwrap();
    let log = full_log(&auditor, &relay.verifier()).await;

    let m = scrape(addr).await;

    let one = |k: &str| m.get(k).map(String::as_str);
    assert_eq!(
        family(&m, "filet_posts_total"),
        BTreeMap::from([
            ("filet_posts_total{status=\"actual\",kind=\"alert\"}", "3"),
            ("filet_posts_total{status=\"exercise\",kind=\"alert\"}", "1"),
        ])
    );
    assert_eq!(one("filet_disclosures_total"), Some("4"));
    assert_eq!(
        family(&m, "filet_refusals_total"),
        BTreeMap::from([("filet_refusals_total{reason=\"not_permitted\"}", "1")])
    );
    assert_eq!(one("filet_deliveries_total"), Some("4"));
    assert_eq!(one("filet_acks_total"), Some("1"));
    assert_eq!(one("filet_expired_total"), Some("0"));
    assert_eq!(one("filet_purged_total"), Some("0"));
    assert_eq!(
        family(&m, "filet_connected_nodes"),
        BTreeMap::from([
            ("filet_connected_nodes{party=\"DPJ\"}", "1"),
            ("filet_connected_nodes{party=\"SPVQ\"}", "1"),
            ("filet_connected_nodes{party=\"TABLE\"}", "1"),
        ])
    );
    assert_eq!(
        family(&m, "filet_mailbox_depth"),
        BTreeMap::from([("filet_mailbox_depth{unit=\"DPJ/RTS\"}", "3")]),
        "four disclosed, one acknowledged"
    );
    // relay_started, agreement_loaded, crl_loaded, 4 × (posted, disclosed), refused,
    // 4 delivered, acked.
    assert_eq!(log.len(), 17);
    assert_eq!(one("filet_audit_log_entries"), Some("17"));
    assert_eq!(one("filet_post_receipt_seconds_count"), Some("4"));
    assert_eq!(
        one("filet_post_receipt_seconds_bucket{le=\"+Inf\"}"),
        Some("4")
    );
    assert!(
        family(&m, "filet_reloads_total").is_empty(),
        "no reload yet"
    );

    // Reloads, by result.
    relay.handle.reload().await.unwrap();
    let (broken, _) = agreement_with_unknown_category(AGREEMENT, "police-vers-ecoles");
    std::fs::write(&net.agreement, broken).unwrap();
    relay.handle.reload().await.unwrap_err();
    relay.handle.reload().await.unwrap_err();
    let m = scrape(addr).await;
    assert_eq!(
        family(&m, "filet_reloads_total"),
        BTreeMap::from([
            ("filet_reloads_total{result=\"ok\"}", "1"),
            ("filet_reloads_total{result=\"refused\"}", "2"),
        ])
    );
    // A node that leaves is no longer counted. The relay tells nobody when it has
    // noticed: scrape until it has (bounded).
    rts.close().await;
    let left = BTreeMap::from([
        ("filet_connected_nodes{party=\"SPVQ\"}", "1"),
        ("filet_connected_nodes{party=\"TABLE\"}", "1"),
    ]);
    let deadline = Instant::now() + WAIT;
    loop {
        let m = scrape(addr).await;
        if family(&m, "filet_connected_nodes") == left {
            break;
        }
        assert!(Instant::now() < deadline, "DPJ still counted: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Anything but /metrics is 404.
    for path in ["/other", "/", "/metricsx"] {
        let (status, body) = get(addr, path).await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 404 Not Found", ""),
            "{path}"
        );
    }
    esm.close().await;
    auditor.close().await;
    relay.stop().await;
}
