//! Hostile input while a well-behaved node is served (issue 5, requirements §9 "bad input of any
//! kind gets a clear error, never a panic, never a hang, and loses nothing already
//! acknowledged"): thousands of streams on one connection, thousands of pipelined requests
//! on one stream, a post flood against the default rate limit, a `to` list of thousands
//! of units, forbidden characters in text and invalid UTF-8 inside a hand-built frame, and
//! an agreement file with each kind of mistake.
//!
//! Each case asserts the exact error or close reason, and that a well-behaved node
//! (`SPVQ/IJP` → `CSSC/PIVOT`, or [`assert_relay_serves`]) posts and receives while or
//! after it happens.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::sync::Arc;
use std::time::Duration;

use filet_client::transport::read_frame;
use filet_client::{ClientError, Node};
use filet_proto::alert::MAX_RECIPIENTS;
use filet_proto::audit::{Event, RefusalReason};
use filet_proto::codec::encode_frame;
use filet_proto::wire::{close, ClientFrame, ErrorCode, Request, Response, ServerFrame};
use filet_proto::{AlertDraft, Category, Selector, Timestamp};
use filet_relay::clock::ManualClock;
use filet_tests::raw::{application_close, connect, node_client_config};
use filet_tests::*;

fn to_rts(reference: &str) -> AlertDraft {
    let mut d = alert(Category::Runaway, reference);
    d.to = vec![Selector::Unit(unit("DPJ/RTS"))];
    d
}

fn whoami_frame(id: u64) -> Vec<u8> {
    encode_frame(&ClientFrame {
        id,
        request: Request::WhoAmI,
    })
    .unwrap()
}

/// A well-behaved exchange beside the attack: `SPVQ/IJP` posts a runaway alert to the
/// schools' `CSSC/PIVOT`, whose subscribed node receives it. Fresh nodes, closed after.
async fn well_behaved(net: &TestNet, relay: std::net::SocketAddr, reference: &str) {
    let ijp = net.node("SPVQ/IJP", relay).await;
    let school = net.node("CSSC/PIVOT", relay).await;
    let mut rx = school.subscribe().await.unwrap();
    let mut d = alert(Category::Runaway, reference);
    d.to = vec![Selector::Unit(unit("CSSC/PIVOT"))];
    let r = ijp.post(d).await.unwrap();
    while next_delivery(&mut rx).await.envelope.id != r.alert {}
    ijp.close().await;
    school.close().await;
}

// ---- streams and requests --------------------------------------------------------------

#[tokio::test]
async fn thousands_of_streams_on_one_connection_are_capped_served_in_turn_and_harm_no_one() {
    /// Streams the attacker opens at once.
    const STREAMS: usize = 1500;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let c = connect(
        node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        "127.0.0.1",
    )
    .await
    .unwrap();
    let conn = c.conn.clone();

    // The relay grants 8 concurrent bidirectional streams and no unidirectional one: the
    // 9th waits for credit (polled once: the limit is known locally from the handshake).
    let mut held = Vec::new();
    for i in 0..8 {
        let s = tokio::time::timeout(Duration::ZERO, conn.open_bi())
            .await
            .unwrap_or_else(|_| panic!("stream {i} is within the limit"))
            .unwrap();
        held.push(s);
    }
    assert!(
        tokio::time::timeout(Duration::ZERO, conn.open_bi())
            .await
            .is_err(),
        "a 9th concurrent stream must wait"
    );
    assert!(
        tokio::time::timeout(Duration::ZERO, conn.open_uni())
            .await
            .is_err(),
        "no unidirectional stream is granted"
    );
    // Thousands more, all at once: each waits for credit, asks, finishes.
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let conn = conn.clone();
        flood.spawn(async move {
            let (mut s, mut r) = conn.open_bi().await.map_err(|e| e.to_string())?;
            let id = 10 + i as u64;
            s.write_all(&whoami_frame(id))
                .await
                .map_err(|e| e.to_string())?;
            s.finish().map_err(|e| e.to_string())?;
            match read_frame::<ServerFrame>(&mut r, WAIT).await {
                Ok(Some(ServerFrame::Response {
                    id: got,
                    result: Ok(Response::WhoAmI(_)),
                })) if got == id => {}
                other => return Err(format!("stream {i}: {other:?}")),
            }
            match read_frame::<ServerFrame>(&mut r, WAIT).await {
                Ok(None) => Ok(()),
                other => Err(format!("stream {i} did not end: {other:?}")),
            }
        });
    }
    // The held streams are served too, then released: the flood proceeds 8 at a time.
    for (i, (mut s, mut r)) in held.into_iter().enumerate() {
        s.write_all(&whoami_frame(i as u64 + 1)).await.unwrap();
        s.finish().unwrap();
        assert!(matches!(
            read_frame::<ServerFrame>(&mut r, WAIT).await.unwrap(),
            Some(ServerFrame::Response {
                result: Ok(Response::WhoAmI(_)),
                ..
            })
        ));
        assert!(read_frame::<ServerFrame>(&mut r, WAIT)
            .await
            .unwrap()
            .is_none());
    }
    // Meanwhile a well-behaved node is served.
    well_behaved(&net, relay.addr, "STREAMS-DURING").await;
    let mut served = 0;
    while let Some(r) = tokio::time::timeout(WAIT, flood.join_next()).await.unwrap() {
        r.unwrap().unwrap();
        served += 1;
    }

    assert_eq!(served, STREAMS, "every stream was answered in turn");
    assert!(conn.close_reason().is_none(), "the connection stays usable");
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&whoami_frame(1)).await.unwrap();
    assert!(matches!(
        read_frame::<ServerFrame>(&mut r, WAIT).await.unwrap(),
        Some(ServerFrame::Response { id: 1, .. })
    ));
    assert_relay_serves(&net, relay.addr).await;
    relay.stop().await;
}

#[tokio::test]
async fn thousands_of_pipelined_requests_on_one_stream_are_all_answered_and_harm_no_one() {
    /// Requests written in one go (the relay keeps at most 64 in flight per stream and
    /// stops reading past that: flow control holds the rest).
    const REQUESTS: u64 = 5000;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let c = connect(
        node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        "127.0.0.1",
    )
    .await
    .unwrap();
    let (mut send, mut recv) = c.conn.open_bi().await.unwrap();
    let mut bytes = Vec::new();
    for id in 1..=REQUESTS {
        bytes.extend(whoami_frame(id));
    }
    let writer = tokio::spawn(async move {
        send.write_all(&bytes).await.unwrap();
        send
    });
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        for _ in 0..REQUESTS {
            match read_frame::<ServerFrame>(&mut recv, WAIT).await.unwrap() {
                Some(ServerFrame::Response {
                    id,
                    result: Ok(Response::WhoAmI(_)),
                }) => ids.push(id),
                other => panic!("unexpected {other:?}"),
            }
        }
        ids
    });

    well_behaved(&net, relay.addr, "PIPELINE-DURING").await;
    let _send = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    let mut ids = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();

    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=REQUESTS).collect::<Vec<_>>(),
        "each answered once"
    );
    assert!(c.conn.close_reason().is_none());
    relay.stop().await;
}

#[tokio::test]
async fn one_node_cannot_take_every_connection_of_the_relay() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.limits.max_connections = 16;
    let relay = TestRelay::start(cfg).await;
    // A compromised node opens as many connections as the relay lets it.
    let mut held = Vec::new();
    for _ in 0..16 {
        match connect(
            node_client_config(&net, "SPVQ/GRIPP"),
            relay.addr,
            "127.0.0.1",
        )
        .await
        {
            Ok(c) => match c.send(&whoami_frame(1)).await {
                Ok(streams) => held.push((c, streams)),
                Err(_) => break,
            },
            Err(_) => break,
        }
    }

    // Every other unit must still get in.
    let r = async {
        let n = Node::connect(&net.node_config("DPJ/RTS", relay.addr)).await?;
        n.whoami().await
    }
    .await;

    assert!(
        r.is_ok(),
        "{} connections of SPVQ/GRIPP lock DPJ/RTS out: {:?}",
        held.len(),
        r.err()
    );
    relay.stop().await;
}

// ---- posts -------------------------------------------------------------------------------

#[tokio::test]
async fn a_node_posting_as_fast_as_it_can_is_held_to_the_default_rate_and_loses_nothing() {
    /// Posts fired at once, more than the default 600 per minute.
    const FLOOD: usize = 700;
    let net = TestNet::new();
    let cfg = net.relay_config();
    assert_eq!(cfg.limits.posts_per_minute, 600, "the default limit");
    // The clock stands still: the bucket does not refill during the flood.
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(cfg, Arc::new(clock.clone())).await;
    let esm = Arc::new(net.node("SPVQ/ESM", relay.addr).await);

    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let esm = esm.clone();
        flood.spawn(async move { esm.post(to_rts(&format!("FLOOD-{i}"))).await });
    }
    well_behaved(&net, relay.addr, "FLOOD-DURING").await;
    let (mut receipts, mut limited) = (Vec::new(), Vec::new());
    while let Some(r) = tokio::time::timeout(WAIT, flood.join_next()).await.unwrap() {
        match r.unwrap() {
            Ok(receipt) => receipts.push(receipt),
            Err(e) => limited.push(refusal::<()>(Err(e))),
        }
    }

    assert_eq!((receipts.len(), limited.len()), (600, FLOOD - 600));
    for e in &limited {
        assert_refusal(
            e,
            ErrorCode::RateLimited,
            "SPVQ/ESM/spvq-esm-01 posts faster than the limit of 600 per minute; nothing was posted",
        );
        assert_eq!(e.retry_after_ms, Some(100), "one post every 100 ms");
    }
    // Nothing acknowledged is lost: every receipt's alert waits for DPJ/RTS.
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut waiting: Vec<_> = inbox_ids(&rts).await;
    let mut promised: Vec<_> = receipts.iter().map(|r| r.alert).collect();
    waiting.sort();
    promised.sort();
    assert_eq!(waiting, promised);
    // The limit is per principal, and refills: after the delay, one more.
    well_behaved(&net, relay.addr, "FLOOD-AFTER").await;
    clock.advance(100);
    esm.post(to_rts("FLOOD-LATER")).await.unwrap();
    rts.close().await;
    relay.stop().await;
    // Rate-limited posts are counted, not audited, by design (a flood must not flood the
    // log): the log holds the 600 + 1 posts of the flooder and the 2 well-behaved ones, and
    // no refusal. (Read from the files: a full auditor cannot page through a log this size,
    // see audit_scale.rs.)
    let log = offline_log(&net.data_dir());
    assert_eq!(events(&log, "posted").len(), 600 + 1 + 2);
    assert!(events(&log, "refused").is_empty());
}

#[tokio::test]
async fn a_to_list_of_thousands_of_units_is_refused_naming_to_and_the_limit() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut d = alert(Category::Runaway, "TO-5000");
    d.to = vec![Selector::Unit(unit("DPJ/RTS")); 5000];

    let e = refusal(esm.post(d).await);

    let message = format!("invalid alert: to: 5000 recipients, the limit is {MAX_RECIPIENTS}");
    assert_refusal(&e, ErrorCode::InvalidAlert, &message);
    let invalid = e.invalid.unwrap().errors;
    assert_eq!(invalid.len(), 1);
    assert_eq!(
        (invalid[0].path.as_str(), invalid[0].problem.as_str()),
        ("to", "5000 recipients, the limit is 64")
    );
    // Too many to even fit in a frame: the node refuses to send it, the relay never sees it.
    let mut huge = alert(Category::Runaway, "TO-40000");
    huge.to = vec![Selector::Unit(unit("CIUSSS/PIVOT")); 40_000];
    match esm.post(huge).await {
        Err(ClientError::Protocol(m)) => assert!(
            m.starts_with("frame of ") && m.ends_with(" bytes is over the limit of 262144 bytes"),
            "{m}"
        ),
        other => panic!("expected the node to refuse the frame, got {other:?}"),
    }
    assert_relay_serves(&net, relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let refused: Vec<&Event> = events(&log, "refused").iter().map(|e| &e.event).collect();
    assert_eq!(
        refused,
        [&Event::Refused {
            principal: Some("SPVQ/ESM/spvq-esm-01".into()),
            reason: RefusalReason::Invalid,
            detail: "invalid alert: to".into(),
            category: Some(Category::Runaway),
            recipient: None,
            alert: None,
        }]
    );
    for n in [esm, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn control_and_bidirectional_override_characters_are_refused_naming_each_field() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut d = to_rts("CTRL-1");
    d.content.subject.given_name = Some("Ma\u{202E}elle".into()); // right-to-left override
    d.content.subject.description = Some("cheveux\u{2066}bruns".into()); // left-to-right isolate
    d.content.instructions = Some("appeler\u{7}vite".into()); // BEL
    d.content.last_seen.place = Some("Gare\u{0}du Palais".into()); // NUL

    let e = refusal(esm.post(d).await);

    assert_refusal(
        &e,
        ErrorCode::InvalidAlert,
        "invalid alert: subject.given_name: character 3 (U+202E) is a control, bidirectional or invisible formatting character; \
         subject.description: character 8 (U+2066) is a control, bidirectional or invisible formatting character; \
         last_seen.place: character 5 (U+0000) is a control, bidirectional or invisible formatting character; \
         instructions: character 8 (U+0007) is a control, bidirectional or invisible formatting character",
    );
    well_behaved(&net, relay.addr, "CTRL-AFTER").await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let refused = events(&log, "refused");
    assert_eq!(refused.len(), 1);
    // The audit names the fields, never their content.
    assert!(matches!(
        &refused[0].event,
        Event::Refused { reason: RefusalReason::Invalid, detail, .. }
            if detail == "invalid alert: subject.given_name, subject.description, last_seen.place, instructions"
    ));
    for n in [esm, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn invalid_utf8_inside_a_string_of_a_hand_built_frame_closes_with_a_protocol_error() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();
    let mut d = to_rts("UTF8-1");
    d.content.contact = Some("QQQQQQQQ".into());
    let mut bytes = encode_frame(&ClientFrame {
        id: 1,
        request: Request::Post {
            draft: d,
            idempotency_key: [9; 16],
        },
    })
    .unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"QQQQQQQQ")
        .expect("the marker is in the frame");
    // A lone continuation byte and an overlong encoding: never valid UTF-8.
    bytes[at + 2] = 0x80;
    bytes[at + 4] = 0xC0;
    bytes[at + 5] = 0xAF;
    let c = connect(
        node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        "127.0.0.1",
    )
    .await
    .unwrap();

    let _streams = c.send(&bytes).await.unwrap();

    let (code, reason) = application_close(&c.closed_within(WAIT).await);
    assert_eq!(code, u64::from(close::PROTOCOL));
    // bincode's own words for the UTF-8 error (its Debug form: see the report).
    assert_eq!(
        reason,
        "protocol error: malformed frame: a string is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 2)"
    );
    // Nothing was posted; the relay serves the others.
    assert_relay_serves(&net, relay.addr).await;
    let d = next_delivery(&mut rx).await;
    assert_eq!(
        d.content.subject.reference.as_deref(),
        Some("SERVES-1"),
        "the hand-built post never reached a mailbox"
    );
    rts.close().await;
    relay.stop().await;
}

// ---- the agreement file ----------------------------------------------------------------

/// A valid agreement whose lines are known: the rule `r1` starts at line 10, its `from` is
/// line 12, `to` 13, `categories` 14, `fields` 15, `legal_basis` 16, `purpose` 17,
/// `retention` 18.
const BASE: &str = "id = \"t\"
version = 1
[parties.A]
name = \"A\"
units = { X = \"x\", Y = \"y\" }
[parties.B]
name = \"B\"
units = { Z = \"z\" }

[[rules]]
id = \"r1\"
from = [\"A/X\"]
to = [\"B\"]
categories = [\"runaway\"]
fields = [\"contact\"]
legal_basis = \"L\"
purpose = \"P\"
retention = \"1d\"
";

/// Writes `text` as `agreement.toml` in a temporary directory, loads it with the relay's
/// loader, and returns the error message with the file's path replaced by `FILE`.
fn load_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agreement.toml");
    std::fs::write(&path, text).unwrap();
    let e = filet_relay::load_agreement(&path).unwrap_err().to_string();
    let shown = path.display().to_string();
    assert!(e.starts_with(&shown), "{e} does not name {shown}");
    e.replacen(&shown, "FILE", 1)
}

fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn the_base_agreement_of_these_cases_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agreement.toml");
    std::fs::write(&path, BASE).unwrap();
    let a = filet_relay::load_agreement(&path).unwrap();
    assert_eq!((a.rules.len(), a.rules[0].line), (1, 10));
}

#[test]
fn an_agreement_naming_an_unknown_party_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("to = [\"B\"]", "to = [\"C\"]")),
        "FILE:13: rule \"r1\": unknown party in C"
    );
}

#[test]
fn an_agreement_naming_an_unknown_unit_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("from = [\"A/X\"]", "from = [\"A/W\"]")),
        "FILE:12: rule \"r1\": unknown unit in A/W"
    );
}

#[test]
fn an_agreement_naming_an_unknown_category_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("[\"runaway\"]", "[\"runaway\", \"flood\"]")),
        "FILE:14: rule \"r1\": unknown category: \"flood\" is not one of runaway, sighting, exploitation-risk"
    );
}

#[test]
fn an_agreement_naming_an_unknown_field_path_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("[\"contact\"]", "[\"contact\", \"subject.photo\"]")),
        "FILE:15: rule \"r1\": unknown field path \"subject.photo\" (known: all, subject.*, last_seen.*, subject.reference, subject.given_name, subject.age, subject.description, last_seen.at, last_seen.place, last_seen.geo, instructions, contact, note)"
    );
}

#[test]
fn an_agreement_with_a_duplicate_rule_id_is_refused_with_file_line_and_rule() {
    let dup = format!("{BASE}\n[[rules]]\nid = \"r1\"\nfrom = [\"A/Y\"]\nto = [\"B\"]\ncategories = [\"sighting\"]\nfields = \"all\"\nlegal_basis = \"L\"\npurpose = \"P\"\nretention = \"1d\"\n");
    assert_eq!(load_error(&dup), "FILE:21: rule \"r1\": duplicate rule id");
}

#[test]
fn an_agreement_whose_rule_sends_to_its_own_senders_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("to = [\"B\"]", "to = [\"B\", \"A\"]")),
        "FILE:12: rule \"r1\": from A/X and to A overlap"
    );
}

#[test]
fn an_agreement_with_an_empty_legal_basis_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("legal_basis = \"L\"", "legal_basis = \"  \"")),
        "FILE:16: rule \"r1\": legal_basis is empty"
    );
}

#[test]
fn an_agreement_with_a_bad_retention_is_refused_with_file_line_and_rule() {
    assert_eq!(
        load_error(&edited("retention = \"1d\"", "retention = \"1 year\"")),
        "FILE:18: rule \"r1\": retention \"1 year\" is not a number of days, hours or minutes such as \"90d\", \"36h\", \"30m\""
    );
    assert_eq!(
        load_error(&edited("retention = \"1d\"", "retention = \"0d\"")),
        "FILE:18: rule \"r1\": retention \"0d\" must be more than 0 and at most 10 years"
    );
}

#[test]
fn an_agreement_with_an_unknown_key_in_a_rule_is_refused_with_file_and_line() {
    assert_eq!(
        load_error(&edited("legal_basis = \"L\"", "legal_bais = \"L\"")),
        "FILE:16: rule \"r1\": unknown field `legal_bais`, expected one of `id`, `from`, `to`, `categories`, `fields`, `legal_basis`, `purpose`, `retention`"
    );
}

#[test]
fn an_agreement_with_an_unknown_key_in_a_rule_names_the_rule_too() {
    let e = load_error(&edited("legal_basis = \"L\"", "legal_bais = \"L\""));
    assert!(
        e.starts_with("FILE:16: rule \"r1\": unknown field `legal_bais`"),
        "{e}"
    );
}

#[test]
fn an_agreement_with_a_toml_syntax_error_is_refused_with_file_and_line() {
    let e = load_error(&edited("purpose = \"P\"", "purpose = \"P"));
    assert_eq!(
        e,
        "FILE:17: rule \"r1\": invalid basic string, expected `\"`"
    );
}

#[tokio::test]
async fn a_reload_of_a_broken_agreement_keeps_the_old_one_and_says_why() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let broken = AGREEMENT.replacen("retention = \"90d\"", "retention = \"90 jours\"", 1);
    assert_ne!(broken, AGREEMENT);
    std::fs::write(&net.agreement, &broken).unwrap();

    let e = relay.handle.reload().await.unwrap_err();

    let file = net.agreement.display().to_string();
    assert_eq!(
        e,
        format!("{file}:65: rule \"police-vers-protection\": retention \"90 jours\" is not a number of days, hours or minutes such as \"90d\", \"36h\", \"30m\"; the relay keeps its current agreement and CRL")
    );
    assert_relay_serves(&net, relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &relay.verifier()).await;
    assert_eq!(
        events(&log, "agreement_loaded").len(),
        1,
        "nothing new was loaded"
    );
    auditor.close().await;
    relay.stop().await;
}
