//! Audit paging at scale (requirements §7, issue 5): a full auditor must be able to pull and verify
//! a log of thousands of entries, page by page. Pinned: it cannot today — a page the
//! relay sizes under `MAX_FRAME_LEN` by its encoded bytes is refused by the node's decoder,
//! whose limit counts every varint integer at its native size (a `u64` index claims 8
//! bytes for the 1 to 3 it takes on the wire).
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::sync::Arc;

use filet_proto::codec::{decode_body, encode_frame, MAX_FRAME_LEN};
use filet_proto::wire::{EntryWithProof, Response, ServerFrame};
use filet_proto::Category;
use filet_tests::*;

#[test]
fn a_frame_that_encodes_under_the_limit_decodes() {
    // 2400 entries of 100 bytes: 252 KB on the wire, under the 256 KiB limit.
    let entries: Vec<EntryWithProof> = (0..2400)
        .map(|index| EntryWithProof {
            index,
            entry: vec![b'x'; 100],
            proof: Vec::new(),
        })
        .collect();
    let frame = encode_frame(&ServerFrame::Response {
        id: 1,
        result: Ok(Response::Entries {
            entries,
            next: 2400,
        }),
    })
    .unwrap();
    assert!(
        frame.len() - 4 <= MAX_FRAME_LEN,
        "{} bytes",
        frame.len() - 4
    );

    let back = decode_body::<ServerFrame>(&frame[4..]);

    assert!(back.is_ok(), "{:?}", back.err());
}

#[tokio::test]
async fn a_full_auditor_verifies_a_log_of_thousands_of_entries() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.posts_per_minute = 0;
    let relay = TestRelay::start(cfg).await;
    let esm = Arc::new(net.node("SPVQ/ESM", relay.addr).await);
    // 400 runaway alerts to 4 units each: 2000 entries of `posted` and `disclosed`.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..400 {
        let esm = esm.clone();
        posts.spawn(async move {
            esm.post(alert(Category::Runaway, &format!("BIG-{i}")))
                .await
        });
    }
    while let Some(r) = tokio::time::timeout(WAIT, posts.join_next()).await.unwrap() {
        r.unwrap().unwrap();
    }
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;

    let log = full_log(&auditor, &relay.verifier()).await;

    assert_eq!(events(&log, "posted").len(), 400);
    auditor.close().await;
    relay.stop().await;
}
