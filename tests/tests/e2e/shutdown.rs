//! Stopping and starting a serving relay (docs/operations.md "Stop and start"): SIGTERM in
//! the middle of a burst of posts exits 0, keeps every post that got a receipt, and tells
//! the others clearly; `filet inbox --follow` rides through a restart by itself and prints
//! each alert once.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use filet_client::Node;
use filet_proto::audit::Event;
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::wire::Receipt;
use filet_proto::{AlertDraft, AlertId, Category, Selector};
use filet_tests::*;
use tokio::sync::mpsc;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn start_child(net: &Arc<TestNet>) -> ChildRelay {
    let net = net.clone();
    blocking(move || ChildRelay::start(&net, &net.data_dir())).await
}

fn runaway_to(to: &str, reference: &str) -> AlertDraft {
    let mut d = alert(Category::Runaway, reference);
    d.to = vec![Selector::Unit(unit(to))];
    d
}

/// What one post of the burst got.
type Outcome = (String, Result<Receipt, String>);

/// Senders and the unit each posts to.
const SENDERS: [(&str, &str); 4] = [
    ("SPVQ/ESM", "DPJ/RTS"),
    ("SPVQ/IJP", "DPJ/RTS"),
    ("SQ/EILP", "DPJ/RTS"),
    ("DPJ/RTS", "SPVQ/ESM"),
];
/// Posts in flight per sender.
const IN_FLIGHT: usize = 4;
/// Posts per loop at most (the rate limit is 600 per principal per minute).
const MAX_PER_LOOP: usize = 100;

/// Four nodes posting in a burst to a child relay, [`IN_FLIGHT`] posts in flight each,
/// every loop stopping at its first error; then SIGTERM once `before_stop` receipts have
/// arrived. The relay must exit 0, within the drain bound, saying why.
struct Burst {
    nodes: Vec<(&'static str, Arc<Node>)>,
    loops: tokio::task::JoinSet<()>,
    outcomes: mpsc::Receiver<Outcome>,
    /// Receipts (and errors) received before the SIGTERM.
    before: Vec<Outcome>,
}

impl Burst {
    async fn run_then_sigterm(net: &Arc<TestNet>, before_stop: usize) -> Burst {
        let relay = start_child(net).await;
        let (tx, mut outcomes) = mpsc::channel::<Outcome>(SENDERS.len() * IN_FLIGHT * MAX_PER_LOOP);
        let mut loops = tokio::task::JoinSet::new();
        let mut nodes = Vec::new();
        for (s, (sender, to)) in SENDERS.iter().enumerate() {
            let node = Arc::new(net.node(sender, relay.addr).await);
            nodes.push((*sender, node.clone()));
            for l in 0..IN_FLIGHT {
                let (node, tx) = (node.clone(), tx.clone());
                loops.spawn(async move {
                    for i in 0..MAX_PER_LOOP {
                        let reference = format!("STOP-{s}-{l}-{i}");
                        let r = node
                            .post(runaway_to(to, &reference))
                            .await
                            .map_err(|e| e.to_string());
                        let failed = r.is_err();
                        let _ = tx.send((reference, r)).await;
                        if failed {
                            return;
                        }
                    }
                });
            }
        }
        drop(tx);
        let mut before = Vec::new();
        while before.len() < before_stop {
            let o = tokio::time::timeout(WAIT, outcomes.recv())
                .await
                .expect("receipts keep coming")
                .expect("the burst is still running");
            assert!(o.1.is_ok(), "before the stop: {o:?}");
            before.push(o);
        }

        // Posts are in flight: stop the relay now.
        let started = Instant::now();
        let (status, stderr) = blocking(move || relay.terminate_drained()).await;

        assert_eq!(status.code(), Some(0), "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "in-flight requests get at most 10 s: stopped after {:?}",
            started.elapsed()
        );
        assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
        assert!(
            stderr.lines().last().unwrap().ends_with("stopped"),
            "{stderr}"
        );
        Burst {
            nodes,
            loops,
            outcomes,
            before,
        }
    }
}

#[tokio::test]
async fn sigterm_during_a_burst_exits_0_keeps_every_receipt_and_tells_the_nodes_why() {
    let net = Arc::new(TestNet::new());
    let Burst {
        nodes,
        mut loops,
        mut outcomes,
        before,
    } = Burst::run_then_sigterm(&net, 30).await;

    // Each node is told why its connection ended.
    for (sender, node) in &nodes {
        let why = tokio::time::timeout(WAIT, node.closed_reason())
            .await
            .unwrap();
        assert_eq!(
            why, "the relay closed the connection: relay shutting down; reconnect later",
            "{sender}"
        );
    }
    // The relay has exited and every connection is closed: no receipt can come any more.
    // Whatever the loops still wait for, every receipt they got is checked below.
    loops.abort_all();
    while loops.join_next().await.is_some() {}
    drop(nodes);
    let mut receipts: Vec<(String, Receipt)> = before
        .into_iter()
        .map(|(reference, r)| (reference, r.unwrap()))
        .collect();
    while let Ok((reference, r)) = outcomes.try_recv() {
        if let Ok(r) = r {
            receipts.push((reference, r));
        }
    }

    // After a restart: every receipt's alert waits for its recipient and is in the log.
    let relay = start_child(&net).await;
    let mut waiting: BTreeMap<String, BTreeSet<AlertId>> = BTreeMap::new();
    for (_, r) in &receipts {
        for x in &r.recipients {
            waiting
                .entry(x.unit.to_string())
                .or_default()
                .insert(r.alert);
        }
    }
    assert_eq!(
        waiting.keys().map(String::as_str).collect::<Vec<_>>(),
        ["DPJ/RTS", "SPVQ/ESM"]
    );
    for (u, expected) in &waiting {
        let node = net.node(u, relay.addr).await;
        let inbox: BTreeSet<AlertId> = inbox_ids(&node).await.into_iter().collect();
        let lost: Vec<_> = expected.difference(&inbox).collect();
        assert!(lost.is_empty(), "{u} lost {lost:?}");
        node.close().await;
    }
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &NoteVerifier::parse(&relay.logged_key).unwrap()).await;
    auditor.close().await;
    for (reference, r) in &receipts {
        match at(&log, r.posted_index) {
            Event::Posted { alert, .. } => assert_eq!(*alert, r.alert, "{reference}"),
            other => panic!("entry {} of {reference} is {other:?}", r.posted_index),
        }
    }
    assert_eq!(events(&log, "relay_started").len(), 2);
    assert!(
        events(&log, "voided").is_empty(),
        "a graceful stop voids nothing"
    );
    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    // And in the store, with the relay stopped.
    let store = filet_relay::store::Store::open(&net.data_dir().join("store")).unwrap();
    for (reference, r) in &receipts {
        let rec = store
            .get(&r.alert)
            .unwrap()
            .unwrap_or_else(|| panic!("alert {} ({reference}) is not in the store", r.alert));
        let content = rec.content.as_ref().unwrap();
        assert_eq!(
            content.subject.reference.as_deref(),
            Some(reference.as_str())
        );
    }
}

#[tokio::test]
async fn posts_cut_by_sigterm_fail_at_once_saying_the_relay_is_shutting_down() {
    let net = Arc::new(TestNet::new());
    let Burst {
        nodes,
        mut loops,
        mut outcomes,
        ..
    } = Burst::run_then_sigterm(&net, 30).await;

    // Every loop ends: its last post got a receipt before the stop, or an error.
    tokio::time::timeout(WAIT, async { while loops.join_next().await.is_some() {} })
        .await
        .expect("every post of the burst is answered or failed within WAIT of the relay's exit");
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    while let Ok((_, r)) = outcomes.try_recv() {
        if let Err(e) = r {
            *errors.entry(e).or_default() += 1;
        }
    }
    assert_eq!(
        errors.values().sum::<usize>(),
        SENDERS.len() * IN_FLIGHT,
        "each loop ends on one error: {errors:?}"
    );
    for e in errors.keys() {
        assert!(
            e.contains("shutting down"),
            "a post failed without saying the relay is shutting down: {e:?} (all: {errors:?})"
        );
    }
    drop(nodes);
}

#[tokio::test]
async fn at_shutdown_a_stream_ends_with_the_reason_not_a_bare_end_of_stream() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let name = net.node_config("SPVQ/ESM", relay.addr).server_name;
    let c = filet_tests::raw::connect(
        filet_tests::raw::node_client_config(&net, "SPVQ/ESM"),
        relay.addr,
        &name,
    )
    .await
    .unwrap();
    let (_send, mut recv) = c
        .send(&request_frame(1, filet_proto::wire::Request::WhoAmI))
        .await
        .unwrap();
    assert!(matches!(
        read_server_frame(&mut recv).await,
        filet_proto::wire::ServerFrame::Response {
            id: 1,
            result: Ok(_)
        }
    ));

    relay.stop().await;

    // What a node reads next on its stream: `Closing { reason }` (docs/protocol.md), or
    // the connection's close with its reason; not a silent end of stream.
    let next = tokio::time::timeout(
        WAIT,
        filet_client::transport::read_frame::<filet_proto::wire::ServerFrame>(&mut recv, WAIT),
    )
    .await
    .unwrap();
    match next {
        Ok(Some(filet_proto::wire::ServerFrame::Closing { reason })) => {
            assert!(reason.contains("shutting down"), "{reason}")
        }
        Err(filet_client::transport::ReadFrameError::Stream(quinn::ReadError::ConnectionLost(
            e,
        ))) => {
            let (code, reason) = filet_tests::raw::application_close(&e);
            assert_eq!(
                (code, reason.as_str()),
                (0x30, "relay shutting down; reconnect later")
            );
        }
        other => panic!("the stream ended without the reason: {other:?}"),
    }
}

/// `filet inbox --follow --json` as a child: its stdout lines arrive on a channel, its
/// stderr is kept. Killed when dropped.
struct Follower {
    child: Child,
    lines: std_mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(profile: &std::path::Path) -> Follower {
        let mut child = Command::new(bin("filet"))
            .args([
                "--profile",
                path_str(profile),
                "--json",
                "inbox",
                "--follow",
            ])
            .env("NO_COLOR", "1")
            .env_remove("FILET_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std_mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        let (err, pipe) = (stderr.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                err.lock().unwrap().push(line);
            }
        });
        Follower {
            child,
            lines,
            stderr,
        }
    }

    /// The id of the next alert it prints (at most `limit`).
    fn next_id(&self, limit: Duration) -> AlertId {
        let line = self.lines.recv_timeout(limit).unwrap_or_else(|_| {
            panic!(
                "the follower printed nothing within {limit:?}; its stderr:\n{}",
                self.stderr.lock().unwrap().join("\n")
            )
        });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// Polls its stderr (bounded) for a line containing `needle`.
    fn wait_for_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the follower wrote no {needle:?}:\n{}",
                self.stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn inbox_follow_reconnects_by_itself_after_a_restart_and_prints_each_alert_once() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let addr = relay.addr;
    let profile = net.write_profile("DPJ/RTS", addr);
    let follower = Follower::start(&profile);
    let esm = net.node("SPVQ/ESM", addr).await;
    let first = esm
        .post(runaway_to("DPJ/RTS", "FOLLOW-1"))
        .await
        .unwrap()
        .alert;
    let follower = blocking(move || {
        assert_eq!(follower.next_id(WAIT), first);
        follower
    })
    .await;
    esm.close().await;

    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The reason it prints depends on which the relay's shutdown delivers first, the end
    // of the stream ("connection lost") or the close (see
    // `at_shutdown_a_stream_ends_with_the_reason_not_a_bare_end_of_stream`).
    let follower = blocking(move || {
        let line = follower.wait_for_stderr("filet: disconnected (");
        assert!(line.ends_with("); reconnecting"), "{line}");
        follower
    })
    .await;
    // Same address, same data directory: the unacknowledged first alert is pushed again.
    let relay = {
        let relay = ChildRelay::builder()
            .net(&net)
            .data_dir(&net.data_dir())
            .listen(addr);
        blocking(move || relay.start()).await
    };
    assert_eq!(relay.addr, addr);
    let esm = net.node("SPVQ/ESM", addr).await;
    let second = esm
        .post(runaway_to("DPJ/RTS", "FOLLOW-2"))
        .await
        .unwrap()
        .alert;

    // Mailbox order: the first alert is pushed again before the second; the follower
    // must skip it.
    let follower = blocking(move || {
        assert_eq!(
            follower.next_id(WAIT),
            second,
            "the next line after the restart is the new alert, not the first one again"
        );
        follower
    })
    .await;

    drop(follower);
    esm.close().await;
    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}
