//! Hostile frames (requirements §6, STYLE habit 2): a node with a valid certificate writes bytes
//! the protocol does not allow. The relay closes that connection with the protocol-error
//! code and a reason the client can read, and keeps serving everyone else.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::time::{Duration, Instant};

use filet_proto::codec::{encode_frame, MAX_FRAME_LEN};
use filet_proto::wire::{close, ClientFrame, Request};
use filet_tests::raw::{application_close, connect, node_client_config};
use filet_tests::*;

/// Sends `bytes` on the stream of a fresh `SPVQ/ESM` connection (kept open), waits for the
/// relay to close the connection, checks that it still serves others, and returns the
/// close code and reason.
async fn close_after(net: &TestNet, relay: &TestRelay, bytes: &[u8]) -> (u64, String) {
    let c = connect(node_client_config(net, "SPVQ/ESM"), relay.addr, "127.0.0.1")
        .await
        .unwrap();
    let _streams = c.send(bytes).await.unwrap();
    let closed = application_close(&c.closed_within(WAIT).await);
    assert_relay_serves(net, relay.addr).await;
    closed
}

fn frame_with_body(body: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

const PROTOCOL: u64 = close::PROTOCOL as u64;

#[tokio::test]
async fn a_length_prefix_over_the_frame_limit_closes_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut bytes = u32::try_from(MAX_FRAME_LEN + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(&[0; 64]);

    let (code, reason) = close_after(&net, &relay, &bytes).await;

    assert_eq!(code, PROTOCOL);
    assert_eq!(
        reason,
        "protocol error: frame of 262145 bytes is over the limit of 262144 bytes"
    );
    relay.stop().await;
}

#[tokio::test]
async fn an_empty_frame_closes_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;

    let (code, reason) = close_after(&net, &relay, &[0, 0, 0, 0]).await;

    assert_eq!(
        (code, reason.as_str()),
        (PROTOCOL, "protocol error: empty frame")
    );
    relay.stop().await;
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;

    let (code, reason) = close_after(&net, &relay, &frame_with_body(&[0xff; 16])).await;

    assert_eq!(code, PROTOCOL);
    assert_eq!(
        reason,
        "protocol error: malformed frame: InvalidIntegerType { expected: U32, found: Reserved }"
    );
    relay.stop().await;
}

#[tokio::test]
async fn an_unknown_request_variant_closes_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    // Request id 1, then request variant 200 of 11 (the last is Status).
    let body = [1, 200];

    let (code, reason) = close_after(&net, &relay, &frame_with_body(&body)).await;

    assert_eq!(code, PROTOCOL);
    assert_eq!(
        reason,
        "protocol error: malformed frame: invalid value: integer `200`, expected variant index 0 <= i < 11"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_frame_with_trailing_bytes_closes_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let whoami = encode_frame(&ClientFrame {
        id: 1,
        request: Request::WhoAmI,
    })
    .unwrap();
    let mut body = whoami[4..].to_vec();
    body.extend_from_slice(&[1, 2, 3]);

    let (code, reason) = close_after(&net, &relay, &frame_with_body(&body)).await;

    assert_eq!(code, PROTOCOL);
    assert_eq!(
        reason,
        "protocol error: frame has 3 trailing bytes after the message"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_stream_that_ends_inside_a_frame_closes_the_connection_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let c = connect(
        node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        "127.0.0.1",
    )
    .await
    .unwrap();
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 10]);

    let (mut send, _recv) = c.send(&bytes).await.unwrap();
    send.finish().unwrap();

    let (code, reason) = application_close(&c.closed_within(WAIT).await);
    assert_eq!(code, PROTOCOL);
    assert_eq!(
        reason,
        "protocol error: stream ended inside a frame (10 of 100 bytes)"
    );
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_truncated_frame_then_silence_is_closed_after_the_frame_timeout() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.frame_timeout_secs = 1;
    let relay = TestRelay::start(cfg).await;
    let c = connect(
        node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        "127.0.0.1",
    )
    .await
    .unwrap();
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 10]);

    let started = Instant::now();
    let _streams = c.send(&bytes).await.unwrap();
    let (code, reason) = application_close(&c.closed_within(WAIT).await);

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed after {:?}, before the frame timeout",
        started.elapsed()
    );
    assert_eq!(code, PROTOCOL);
    assert_eq!(reason, "protocol error: frame not completed within 1s");
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}
