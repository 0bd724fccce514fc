//! Limits (requirements §6, relay configuration): a full mailbox, the post rate, the connection
//! limit, and expiry. Time is a [`ManualClock`]: the tests move it instead of waiting.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::sync::Arc;

use filet_client::Node;
use filet_proto::audit::{Event, RefusalReason};
use filet_proto::wire::ErrorCode;
use filet_proto::{AlertDraft, Category, Selector, Timestamp};
use filet_relay::clock::ManualClock;
use filet_tests::*;

const HOUR_MS: i64 = 3600 * 1000;

fn to_rts(reference: &str) -> AlertDraft {
    let mut d = alert(Category::Runaway, reference);
    d.to = vec![Selector::Unit(unit("DPJ/RTS"))];
    d
}

#[tokio::test]
async fn a_full_mailbox_refuses_new_posts_naming_the_unit_and_keeps_what_it_accepted() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.mailbox_max = 2;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let a = esm.post(to_rts("FULL-1")).await.unwrap();
    let b = esm.post(to_rts("FULL-2")).await.unwrap();

    let e = refusal(esm.post(to_rts("FULL-3")).await);

    let message =
        "the mailbox of DPJ/RTS is full (2 alerts waiting, the limit is 2); nothing was posted";
    assert_refusal(&e, ErrorCode::MailboxFull, message);
    let waiting: Vec<_> = inbox_ids(&rts).await;
    assert_eq!(waiting, [a.alert, b.alert], "nothing accepted was dropped");
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let refused: Vec<&Event> = events(&log, "refused").iter().map(|e| &e.event).collect();
    assert_eq!(
        refused,
        [&Event::Refused {
            principal: Some("SPVQ/ESM/spvq-esm-01".into()),
            reason: RefusalReason::MailboxFull,
            detail: message.into(),
            category: Some(Category::Runaway),
            recipient: Some("DPJ/RTS".into()),
            alert: None,
        }]
    );
    // An acknowledgement makes room.
    rts.ack(a.alert).await.unwrap();
    esm.post(to_rts("FULL-4")).await.unwrap();
    for n in [esm, rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn posts_over_the_rate_limit_are_refused_with_the_delay_until_the_next_one() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.posts_per_minute = 3;
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(cfg, Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    for i in 0..3 {
        esm.post(to_rts(&format!("RATE-{i}"))).await.unwrap();
    }

    let e = refusal(esm.post(to_rts("RATE-3")).await);

    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(
        e.message,
        "SPVQ/ESM/spvq-esm-01 posts faster than the limit of 3 per minute; nothing was posted"
    );
    assert_eq!(e.retry_after_ms, Some(20_000), "one post every 20 s");
    // The limit is per principal.
    ijp.post(to_rts("RATE-IJP")).await.unwrap();
    // After the delay, one more.
    clock.advance(20_000);
    esm.post(to_rts("RATE-4")).await.unwrap();
    assert_eq!(
        refusal(esm.post(to_rts("RATE-5")).await).code,
        ErrorCode::RateLimited
    );
    for n in [esm, ijp] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_connection_over_the_limit_is_refused_and_the_others_keep_working() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_connections = 2;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();

    let over = async {
        let n = Node::connect(&net.node_config("CJQ/PIVOT", relay.addr)).await?;
        n.whoami().await
    }
    .await;

    let m = connection_error(over);
    assert!(m.ends_with("the relay is busy: it refused the connection (at its connection limit, or shutting down); retry later"), "{m}");
    let r = esm.post(to_rts("LIMIT-1")).await.unwrap();
    assert_eq!(next_delivery(&mut rx).await.envelope.id, r.alert);
    for n in [esm, rts] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_connection_over_the_limit_is_told_the_relay_is_busy() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_connections = 1;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;

    let over = async {
        let n = Node::connect(&net.node_config("CJQ/PIVOT", relay.addr)).await?;
        n.whoami().await
    }
    .await;

    // Today: "ADDR: the relay closed the connection (code 0x2): " — nothing says why or
    // what to do.
    let m = connection_error(over);
    assert!(m.contains("busy") || m.contains("limit"), "{m}");
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_expired_alert_is_no_longer_delivered() {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let r = esm.post(runaway()).await.unwrap();
    assert_eq!(
        r.expires_at,
        r.received_at.plus_ms(72 * HOUR_MS),
        "72 h by default"
    );
    assert_eq!(rts.inbox().await.unwrap().len(), 1);

    clock.advance(72 * HOUR_MS);

    assert!(rts.inbox().await.unwrap().is_empty());
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    assert!(
        cjq.inbox().await.unwrap().is_empty(),
        "not to a late-comer either"
    );
    for n in [esm, rts, cjq] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn expired_alerts_leave_the_mailbox_and_do_not_keep_it_full() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.mailbox_max = 2;
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(cfg, Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    esm.post(to_rts("EXP-1")).await.unwrap();
    esm.post(to_rts("EXP-2")).await.unwrap();

    clock.advance(73 * HOUR_MS);
    relay.run_timers().await;

    // DPJ/RTS was offline: it never saw them and cannot acknowledge them. Its mailbox
    // holds nothing it can be shown; a new alert must get in.
    let r = esm.post(to_rts("EXP-3")).await;
    assert!(r.is_ok(), "{r:?}");
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let expired = log
        .iter()
        .filter(|e| matches!(e.event, Event::Expired { .. }))
        .count();
    assert_eq!(expired, 2, "each expiry is audited");
    auditor.close().await;
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_full_mailbox_still_takes_located_and_cancel_of_the_alerts_it_holds() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.mailbox_max = 2;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let a = esm.post(to_rts("CLOSE-1")).await.unwrap();
    let b = esm.post(to_rts("CLOSE-2")).await.unwrap();
    let e = refusal(esm.post(to_rts("CLOSE-3")).await);
    assert_eq!(e.code, ErrorCode::MailboxFull);

    let located = esm
        .post(follow_up(
            filet_proto::Kind::Located,
            a.alert,
            Some("Retrouvée"),
        ))
        .await
        .expect("located is accepted into a full mailbox");
    let cancelled = esm
        .post(follow_up(
            filet_proto::Kind::Cancel,
            b.alert,
            Some("Erreur"),
        ))
        .await
        .expect("cancel is accepted into a full mailbox");
    assert_eq!(located.recipients.len(), 1);
    assert_eq!(
        inbox_ids(&rts).await,
        [a.alert, b.alert, located.alert, cancelled.alert]
    );
    // Still full for anything else.
    let e = refusal(esm.post(to_rts("CLOSE-4")).await);
    assert_eq!(e.code, ErrorCode::MailboxFull);
    for n in [esm, rts] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn one_sender_holds_at_most_its_quota_of_a_mailbox_and_other_senders_still_get_in() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.mailbox_max = 10;
    cfg.limits.mailbox_max_per_sender = 3;
    let relay = TestRelay::start(cfg).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(esm.post(to_rts(&format!("QUOTA-{i}"))).await.unwrap().alert);
    }

    let e = refusal(esm.post(to_rts("QUOTA-3")).await);

    let message = "the mailbox of DPJ/RTS holds 3 alerts from SPVQ/ESM waiting, the limit per sender is 3 (limits.mailbox_max_per_sender); nothing was posted";
    assert_refusal(&e, ErrorCode::MailboxFull, message);
    let other = ijp
        .post(to_rts("QUOTA-IJP"))
        .await
        .expect("another sender gets in");
    // Closing messages are not counted against the quota.
    esm.post(follow_up(
        filet_proto::Kind::Cancel,
        mine[0],
        Some("Erreur"),
    ))
    .await
    .expect("cancel is accepted past the quota");
    // The cancel takes a place (3 + 1 waiting); acknowledgements give the sender room.
    rts.ack(mine[1]).await.unwrap();
    let e = refusal(esm.post(to_rts("QUOTA-4")).await);
    assert_eq!(e.code, ErrorCode::MailboxFull);
    rts.ack(mine[2]).await.unwrap();
    esm.post(to_rts("QUOTA-5")).await.unwrap();
    assert!(inbox_ids(&rts).await.contains(&other.alert));
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    assert!(log.iter().any(|e| matches!(
        &e.event,
        Event::Refused { reason: RefusalReason::MailboxFull, detail, .. } if detail == message
    )));
    for n in [esm, ijp, rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_update_that_extends_the_expiry_keeps_the_whole_thread_delivered_until_the_new_expiry() {
    use filet_proto::wire::{Request, Response};
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let first = esm.post(runaway()).await.unwrap();
    let mut u = follow_up(
        filet_proto::Kind::Update,
        first.alert,
        Some("Vue au terminus"),
    );
    let extended = first.received_at.plus_ms(10 * 24 * HOUR_MS);
    u.expires_at = Some(extended);
    let update = esm.post(u).await.unwrap();
    assert_eq!(update.expires_at, extended);

    // Past the original's first expiry, before the new one.
    clock.advance(73 * HOUR_MS);
    relay.run_timers().await;

    let rts = net.node("DPJ/RTS", relay.addr).await;
    let waiting = rts.inbox().await.unwrap();
    assert_eq!(
        waiting.iter().map(|d| d.envelope.id).collect::<Vec<_>>(),
        [first.alert, update.alert],
        "the original is still delivered"
    );
    assert!(
        waiting.iter().all(|d| d.envelope.expires_at == extended),
        "every message shows the thread's expiry: {:?}",
        waiting
            .iter()
            .map(|d| d.envelope.expires_at)
            .collect::<Vec<_>>()
    );
    let mut rx = rts.subscribe().await.unwrap();
    assert_eq!(next_delivery(&mut rx).await.envelope.id, first.alert);
    match rts
        .request(Request::GetAlert { alert: first.alert })
        .await
        .unwrap()
    {
        Response::Alert { alert, .. } => assert_eq!(alert.envelope.expires_at, extended),
        other => panic!("{other:?}"),
    }
    // At the new expiry, the whole thread ends.
    clock.advance(extended.0 - clock_now(&clock).0);
    relay.run_timers().await;
    assert!(rts.inbox().await.unwrap().is_empty());
    for n in [esm, rts] {
        n.close().await;
    }
    relay.stop().await;
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use filet_relay::clock::Clock;
    clock.now()
}
