//! Transport limits of the relay configuration (docs/operations.md "Limits") that
//! `limits.rs` does not cover: concurrent streams per connection, pipelined requests per
//! stream, the idle timeout, and admission under a flood of handshakes that never finish,
//! each seen from a hand-made QUIC connection.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filet_client::Node;
use filet_proto::wire::{Request, Response, ServerFrame};
use filet_proto::{Category, Selector};
use filet_tests::raw::{connect, hold_handshakes, node_client_config, FloodCounts, RawConn};
use filet_tests::*;

/// How long a test waits to see that something does NOT happen: long enough for a
/// loopback round trip many times over, short enough to keep the suite fast.
const QUIET: Duration = Duration::from_millis(500);

async fn raw_esm(net: &TestNet, relay: std::net::SocketAddr) -> RawConn {
    let name = net.node_config("SPVQ/ESM", relay).server_name;
    connect(node_client_config(net, "SPVQ/ESM"), relay, &name)
        .await
        .unwrap()
}

/// Writes `WhoAmI` with `id` on an open stream and reads the answer.
async fn ask(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, id: u64) {
    send.write_all(&request_frame(id, Request::WhoAmI))
        .await
        .unwrap();
    match read_server_frame(recv).await {
        ServerFrame::Response {
            id: got,
            result: Ok(Response::WhoAmI(w)),
        } => {
            assert_eq!(got, id);
            assert_eq!(w.principal.to_string(), "SPVQ/ESM/spvq-esm-01");
        }
        other => panic!("expected the answer to WhoAmI {id}, got {other:?}"),
    }
}

fn post_to_rts(reference: &str, key: u8) -> Request {
    let mut draft = alert(Category::Runaway, reference);
    draft.to = vec![Selector::Unit(unit("DPJ/RTS"))];
    Request::Post {
        draft,
        idempotency_key: [key; 16],
    }
}

#[tokio::test]
async fn a_connection_cannot_open_more_streams_than_the_limit_until_one_ends() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_streams_per_connection = 2;
    let relay = TestRelay::start(cfg).await;
    let c = raw_esm(&net, relay.addr).await;
    let (mut send_a, mut recv_a) = c.conn.open_bi().await.unwrap();
    ask(&mut send_a, &mut recv_a, 1).await;
    let (mut send_b, mut recv_b) = c.conn.open_bi().await.unwrap();
    ask(&mut send_b, &mut recv_b, 2).await;

    // A third stream gets no credit from the relay...
    let third = tokio::time::timeout(QUIET, c.conn.open_bi()).await;

    assert!(
        third.is_err(),
        "the relay allowed a third concurrent stream"
    );
    // ...while the two open ones keep working.
    ask(&mut send_a, &mut recv_a, 3).await;
    ask(&mut send_b, &mut recv_b, 4).await;
    // When one ends, the relay grants another.
    send_a.finish().unwrap();
    let rest = tokio::time::timeout(WAIT, recv_a.read_to_end(1024))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "nothing after the answers");
    let (mut send_c, mut recv_c) = tokio::time::timeout(WAIT, c.conn.open_bi())
        .await
        .expect("a stream is granted once another ended")
        .unwrap();
    ask(&mut send_c, &mut recv_c, 5).await;
    ask(&mut send_b, &mut recv_b, 6).await;
    c.conn.close(0u32.into(), b"bye");
    relay.stop().await;
}

#[tokio::test]
async fn requests_pipelined_past_the_in_flight_limit_are_all_answered_and_wait_their_turn() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_in_flight_per_stream = 2;
    let relay = TestRelay::start(cfg).await;
    let c = raw_esm(&net, relay.addr).await;
    // Two posts (each waits for a group commit) fill the limit; the WhoAmI behind them
    // cannot be read, let alone answered, before one of them is done.
    let mut bytes = Vec::new();
    let mut posts = BTreeSet::new();
    for id in 1..=10u64 {
        let request = if id <= 2 || id % 2 == 0 {
            posts.insert(id);
            post_to_rts(&format!("PIPE-{id}"), id as u8)
        } else {
            Request::WhoAmI
        };
        bytes.extend(request_frame(id, request));
    }
    let (mut send, mut recv) = c.send(&bytes).await.unwrap();
    send.finish().unwrap();

    let mut order = Vec::new();
    for _ in 0..10 {
        match read_server_frame(&mut recv).await {
            ServerFrame::Response {
                id,
                result: Ok(Response::Receipt(r)),
            } if posts.contains(&id) => {
                assert_eq!(r.recipients.len(), 1);
                order.push(id);
            }
            ServerFrame::Response {
                id,
                result: Ok(Response::WhoAmI(_)),
            } if !posts.contains(&id) => order.push(id),
            other => panic!("unexpected frame {other:?}"),
        }
    }

    let answered: BTreeSet<u64> = order.iter().copied().collect();
    assert_eq!(
        answered,
        (1..=10).collect(),
        "each request answered once: {order:?}"
    );
    assert!(
        posts.contains(&order[0]),
        "the WhoAmI 3 overtook both posts in flight: {order:?}"
    );
    let rest = tokio::time::timeout(WAIT, recv.read_to_end(1024))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "nothing after the ten answers");
    c.conn.close(0u32.into(), b"bye");
    relay.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.idle_timeout_secs = 1;
    let relay = TestRelay::start(cfg).await;
    // The raw client asks for 30 s and sends no keep-alives: the relay's 1 s applies.
    let c = raw_esm(&net, relay.addr).await;
    raw_whoami(&c).await;
    let silent_since = Instant::now();

    let e = c.closed_within(Duration::from_secs(5)).await;

    let after = silent_since.elapsed();
    assert!(
        matches!(e, quinn::ConnectionError::TimedOut),
        "expected an idle timeout, got {e:?}"
    );
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}, before the idle timeout of 1 s"
    );
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

/// Issue 10, item 1: connection slots were taken before the handshake and held until its
/// 10 s timeout, with no Retry: Initials from one UDP socket, never finished, kept every
/// slot busy and nodes got "the relay is busy".
#[tokio::test]
async fn handshakes_that_never_finish_cannot_keep_a_node_out_of_the_relay() {
    /// Handshakes the flood opens at once, then one more every 10 ms (100 a second).
    const BURST: usize = 64;
    /// Bound on one post → receipt during the flood.
    const POST_BOUND: Duration = Duration::from_secs(2);
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_connections = 16;
    let relay = TestRelay::start(cfg).await;
    let ca = net.node_config("SPVQ/ESM", relay.addr).ca;
    let counts = Arc::new(FloodCounts::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    // From another network than the node's: 127.0.1.0/24 is loopback too.
    let flood = {
        let (counts, addr) = (counts.clone(), relay.addr);
        tokio::spawn(async move {
            let bind = std::net::IpAddr::from([127, 0, 1, 1]);
            hold_handshakes(
                bind,
                addr,
                &ca,
                BURST,
                Duration::from_millis(10),
                counts,
                stop_rx,
            )
            .await;
        })
    };
    // Until the relay has answered every handshake of the burst at least once.
    let deadline = Instant::now() + WAIT;
    while counts.others.load(Ordering::Relaxed) < BURST as u64 {
        assert!(
            Instant::now() < deadline,
            "the relay did not answer the flood's handshakes within {WAIT:?}: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A node connects, and posts, during the flood.
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        Node::connect(&net.node_config("SPVQ/ESM", relay.addr)),
    )
    .await;
    let esm = match connected {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => panic!("SPVQ/ESM cannot connect during the flood: {e} ({counts:?})"),
        Err(_) => panic!("SPVQ/ESM did not connect within 5 s during the flood ({counts:?})"),
    };
    for i in 0..10 {
        let mut draft = alert(Category::Runaway, &format!("FLOOD-{i}"));
        draft.to = vec![Selector::Unit(unit("DPJ/RTS"))];
        let t0 = Instant::now();
        let r = tokio::time::timeout(POST_BOUND, esm.post(draft)).await;
        assert!(
            matches!(r, Ok(Ok(_))),
            "post {i} during the flood: {r:?} after {:?}",
            t0.elapsed()
        );
    }
    // Another node, later in the flood, gets in too.
    let rts = tokio::time::timeout(
        Duration::from_secs(5),
        Node::connect(&net.node_config("DPJ/RTS", relay.addr)),
    )
    .await;
    assert!(
        matches!(rts, Ok(Ok(_))),
        "DPJ/RTS during the flood: {:?}",
        rts.map(|r| r.map(|_| ()))
    );

    let _ = stop.send(true);
    flood.await.unwrap();
    // The flood followed the relay's Retry packets: it is not a spoofed-address flood.
    assert!(
        counts.retries.load(Ordering::Relaxed) >= BURST as u64,
        "the relay sent a Retry to each Initial without a token: {counts:?}"
    );
    esm.close().await;
    relay.stop().await;
}

/// Issue 10, item 11: quinn's defaults were kept, among them a 1.25 MB buffer of QUIC
/// datagrams per connection, which Filet never reads.
#[tokio::test]
async fn the_relay_takes_no_quic_datagrams_it_would_never_read() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let c = raw_esm(&net, relay.addr).await;
    raw_whoami(&c).await;

    let offered = c.conn.max_datagram_size();
    let sent = c.conn.send_datagram(bytes::Bytes::from_static(b"unread"));

    assert_eq!(offered, None, "the relay offers to buffer datagrams");
    assert!(
        matches!(sent, Err(quinn::SendDatagramError::UnsupportedByPeer)),
        "{sent:?}"
    );
    c.conn.close(0u32.into(), b"bye");
    relay.stop().await;
}
