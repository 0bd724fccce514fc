//! End-to-end test support for Filet: everything the tests in `tests/tests/` (the `e2e`
//! binary, and `console_browser`) need to run the relay and its nodes over real QUIC on
//! loopback, and to read what the relay wrote.
//!
//! - [`TestNet`] (`net.rs`): a temporary directory holding the example agreement and a dev
//!   PKI (a CA, the relay's certificate, a certificate, key and profile per unit); starts
//!   relays and connects nodes.
//! - [`TestRelay`]: the relay in the test's own runtime ([`filet_relay::Relay`]) on
//!   `127.0.0.1:0`, stopped gracefully through its handle.
//! - [`ChildRelay`] (`child.rs`): the `filet-relay serve` binary as a child process, the one
//!   way to start one: [`ChildRelay::builder`] sets its data directory, PKI and agreement
//!   or configuration file, address, log options and environment; its stderr is captured;
//!   stopped with SIGTERM or SIGKILL.
//! - [`bin`], [`run`], [`filet_as`] (`bins.rs`): the workspace binaries (`filet-relay`,
//!   `filet`, `filet-certs`), built once per test process, run to completion.
//! - [`raw`]: QUIC connections built by hand (another CA, no client certificate, frames
//!   written byte by byte).
//! - Audit helpers: [`full_log`] (an auditor's verified view, decoded), [`offline_log`]
//!   (the audit files of a stopped relay), [`wait_for_entry`].
//!
//! Waiting is always bounded: on an event with [`WAIT`] (`tokio::time::timeout`, a child's
//! stderr line, a child's exit), and only where there is no event to wait on (an audit
//! entry the relay appends without answering anyone) by polling with a deadline.
//!
//! # Running
//!
//! `cargo test -p filet-tests` (or `cargo test --workspace`). The tests use
//! `#[tokio::test]`'s current-thread runtime, in which an in-process relay serves too: a
//! blocking call (running a binary, waiting for a child relay) goes through
//! `tokio::task::spawn_blocking` when the relay or a node must keep working meanwhile.
//! Each test has its own [`TestNet`] (temporary directory, data directory, relay on its own
//! port), so tests run in parallel. The dev PKI is generated once per test process and
//! copied.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filet_client::audit::fetch_and_verify;
use filet_client::{ClientError, Node};
use filet_proto::alert::{AlertFile, Disclosed};
use filet_proto::audit::{Entry, Event};
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::wire::{ErrorCode, RelayError};
use filet_proto::{AlertDraft, UnitRef};
use filet_relay::commit::CommitStats;
use filet_relay::config::RelayConfig;
use tokio::sync::{mpsc, oneshot};

/// How long a test waits for something that should happen within milliseconds (a pushed
/// alert, a relay start, a close). Generous, since debug builds on a loaded machine are
/// slow; a test that passes never waits this long.
pub const WAIT: Duration = Duration::from_secs(15);

/// `examples/agreement.toml` (as the demo embeds it).
pub const AGREEMENT: &str = include_str!("../../examples/agreement.toml");
/// `examples/alerts/runaway.toml` (as the demo embeds it).
pub const RUNAWAY: &str = include_str!("../../examples/alerts/runaway.toml");
/// `examples/alerts/invalid-too-long.toml`: a description of 291 characters and a
/// reference with spaces.
pub const TOO_LONG: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/alerts/invalid-too-long.toml"
));

/// The agreement's id, as the relay names it in messages.
pub const AGREEMENT_ID: &str = "table-regionale-quebec-esj";

/// A unit reference from `PARTY/UNIT`.
///
/// # Panics
/// If `s` is not a unit reference (a bug in the test).
pub fn unit(s: &str) -> UnitRef {
    s.parse().expect("a PARTY/UNIT reference")
}

/// The runaway alert of `examples/alerts/runaway.toml`, as a draft.
pub fn runaway() -> AlertDraft {
    AlertFile::from_toml(RUNAWAY)
        .expect("runaway.toml parses")
        .into_draft()
}

/// The invalid alert of `examples/alerts/invalid-too-long.toml`, as a draft (not
/// validated: the Node API sends it as it is).
pub fn too_long() -> AlertDraft {
    AlertFile::from_toml(TOO_LONG)
        .expect("invalid-too-long.toml parses")
        .into_draft()
}

/// A minimal valid alert of `category` with this subject reference.
pub fn alert(category: filet_proto::Category, reference: &str) -> AlertDraft {
    AlertDraft::new(
        category,
        filet_proto::Risk::Severe,
        reference,
        "418 555-0100",
    )
}

/// The relay running in the test's tokio runtime. Dropping it asks it to stop; prefer
/// [`TestRelay::stop`], which waits until the store and the audit log are flushed.
pub struct TestRelay {
    /// The bound address.
    pub addr: SocketAddr,
    /// The audit log's verifier key (C2SP signed-note format).
    pub verifier_key: String,
    /// The group-commit counters.
    pub stats: Arc<CommitStats>,
    /// Runs the relay's timers and reloads on demand.
    pub handle: filet_relay::RelayHandle,
    /// The metrics endpoint, when the configuration enables it.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), filet_relay::RelayError>>>,
}

impl TestRelay {
    /// Starts a relay with `cfg` and serves it on a task of this runtime.
    ///
    /// # Panics
    /// If the relay cannot start.
    pub async fn start(cfg: RelayConfig) -> TestRelay {
        TestRelay::start_with_clock(cfg, Arc::new(filet_relay::clock::SystemClock)).await
    }

    /// Starts a relay with `cfg` and `clock` (a [`filet_relay::clock::ManualClock`] to move
    /// time instead of waiting) and serves it on a task of this runtime.
    ///
    /// # Panics
    /// If the relay cannot start.
    pub async fn start_with_clock(
        cfg: RelayConfig,
        clock: Arc<dyn filet_relay::clock::Clock>,
    ) -> TestRelay {
        let relay = filet_relay::Relay::start(cfg, clock)
            .await
            .unwrap_or_else(|e| panic!("the relay cannot start: {e}"));
        let addr = relay.local_addr().expect("a bound address");
        let verifier_key = relay.verifier_key().to_owned();
        let stats = relay.stats();
        let handle = relay.handle();
        let metrics_addr = relay.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async {
            let _ = rx.await;
        }));
        TestRelay {
            addr,
            verifier_key,
            stats,
            handle,
            metrics_addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Runs the relay's timers now (expiry, purge) and waits until their entries are
    /// durable: move a `ManualClock`, then call this.
    ///
    /// # Panics
    /// If the relay stopped.
    pub async fn run_timers(&self) {
        self.handle
            .run_timers()
            .await
            .expect("the relay runs its timers");
    }

    /// The verifier of the audit log's checkpoints.
    ///
    /// # Panics
    /// Never for a key the relay printed.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier::parse(&self.verifier_key).expect("the relay's verifier key parses")
    }

    /// Stops the relay gracefully and waits (bounded) until it has flushed everything.
    ///
    /// # Panics
    /// If it fails or does not stop within [`WAIT`].
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(WAIT, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the relay stopped with an error: {e}"),
                Ok(Err(e)) => panic!("the relay task failed: {e}"),
                Err(_) => panic!("the relay did not stop within {WAIT:?}"),
            }
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits (at most [`WAIT`]) for the next pushed alert.
///
/// # Panics
/// If none arrives in time or the channel closes.
pub async fn next_delivery(rx: &mut mpsc::Receiver<Disclosed>) -> Disclosed {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(d)) => d,
        Ok(None) => panic!("the delivery channel closed"),
        Err(_) => panic!("no alert pushed within {WAIT:?}"),
    }
}

/// The relay's refusal in `r`.
///
/// # Panics
/// If `r` succeeded or failed otherwise.
pub fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> RelayError {
    match r {
        Err(ClientError::Relay(e)) => e,
        other => panic!("expected a refusal by the relay, got {other:?}"),
    }
}

/// The message of a [`ClientError::Connection`] in `r`.
///
/// # Panics
/// If `r` succeeded or failed otherwise.
pub fn connection_error<T>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Connection(m)) => m,
        Err(e) => panic!("expected a connection error, got {e:?}"),
        Ok(_) => panic!("expected a connection error, got success"),
    }
}

/// Asserts that a refusal has this code and exactly this message.
///
/// # Panics
/// If either differs.
pub fn assert_refusal(e: &RelayError, code: ErrorCode, message: &str) {
    assert_eq!(e.code, code, "code of {e:?}");
    assert_eq!(e.message, message, "message of {e:?}");
}

/// An auditor's verified, decoded view of the whole log: [`fetch_and_verify`] (checkpoint
/// signature, root recomputed from every entry), then each entry parsed.
///
/// # Panics
/// If verification fails, or the auditor is not a full auditor.
pub async fn full_log(auditor: &Node, verifier: &NoteVerifier) -> Vec<Entry> {
    let log = fetch_and_verify(auditor, verifier)
        .await
        .unwrap_or_else(|e| panic!("the audit log does not verify: {e}"));
    assert!(log.complete, "a full auditor reads every entry");
    assert_eq!(log.entries.len() as u64, log.checkpoint.size);
    log.entries
        .iter()
        .map(|(i, b)| {
            let e = Entry::from_bytes(b).unwrap_or_else(|e| panic!("entry {i}: {e}"));
            assert_eq!(e.index, *i);
            e
        })
        .collect()
}

/// Polls the verified log (at most [`WAIT`]) until an entry matches `pred`; for entries
/// the relay appends without answering anyone (a refused handshake).
///
/// # Panics
/// If no entry matches in time.
pub async fn wait_for_entry(
    auditor: &Node,
    verifier: &NoteVerifier,
    what: &str,
    pred: impl Fn(&Entry) -> bool,
) -> Entry {
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = full_log(auditor, verifier).await;
        if let Some(e) = entries.into_iter().find(|e| pred(e)) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no audit entry {what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The entries of the audit log of a stopped relay's data directory, read from its files
/// (`audit/`), each checked against its index.
///
/// # Panics
/// If the log cannot be opened or an entry does not parse.
pub fn offline_log(data_dir: &Path) -> Vec<Entry> {
    let (log, _) = filet_relay::audit_log::AuditLog::open(&data_dir.join("audit"))
        .expect("the audit log of a stopped relay opens");
    let reader = log.reader();
    (0..reader.size())
        .map(|i| {
            let bytes = reader.entry(i).expect("an entry");
            let e = Entry::from_bytes(&bytes).expect("an entry parses");
            assert_eq!(e.index, i);
            e
        })
        .collect()
}

/// The events of `entries` with this name (`posted`, `refused`...).
pub fn events<'a>(entries: &'a [Entry], name: &str) -> Vec<&'a Entry> {
    entries.iter().filter(|e| e.event.name() == name).collect()
}

/// The entry at `index`.
///
/// # Panics
/// If the log is shorter.
pub fn at(entries: &[Entry], index: u64) -> &Event {
    &entries
        .get(index as usize)
        .unwrap_or_else(|| panic!("no audit entry {index} in a log of {}", entries.len()))
        .event
}

/// Proves the relay still serves: `SPVQ/ESM` posts a runaway alert to `DPJ/RTS`, which
/// is pushed to a subscribed `DPJ/RTS` node. Fresh nodes, closed afterwards.
///
/// # Panics
/// If any step fails.
pub async fn assert_relay_serves(net: &TestNet, relay: SocketAddr) {
    let esm = net.node("SPVQ/ESM", relay).await;
    let rts = net.node("DPJ/RTS", relay).await;
    let mut rx = rts.subscribe().await.expect("DPJ/RTS subscribes");
    let mut draft = alert(filet_proto::Category::Runaway, "SERVES-1");
    draft.to = vec![filet_proto::Selector::Unit(unit("DPJ/RTS"))];
    let receipt = esm.post(draft).await.expect("SPVQ/ESM posts");
    // Alerts waiting from earlier come first.
    while next_delivery(&mut rx).await.envelope.id != receipt.alert {}
    esm.close().await;
    rts.close().await;
}

mod bins;
mod child;
mod net;
pub mod raw;

pub use bins::{audit_key, bin, filet_as, path_str, run, run_off_runtime, Output};

pub use child::{ChildRelay, ChildRelayBuilder, ChildStart};
pub use net::TestNet;

// ---- the lifecycle and the `filet` command as a unit ----------------------------------

/// A follow-up of alert `id` (`update`, `located` or `cancel`) with this note; an update
/// carries the content of [`alert`] (change what it updates), located and cancel none.
pub fn follow_up(
    kind: filet_proto::Kind,
    id: filet_proto::AlertId,
    note: Option<&str>,
) -> AlertDraft {
    let mut d = alert(filet_proto::Category::Runaway, "unused");
    d.kind = kind;
    d.references = Some(id);
    // An update carries a whole content (reference and contact included); located and
    // cancel carry none.
    if kind != filet_proto::Kind::Update {
        d.content = filet_proto::Content::default();
    }
    d.note = note.map(str::to_owned);
    d
}

/// Polls (at most [`WAIT`]) until `path` exists: a socket or file a child creates without
/// telling anyone.
///
/// # Panics
/// If it does not appear in time.
pub fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {WAIT:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The example agreement as version `version`, without unit `SPVQ/IKAT` (neither in party
/// SPVQ nor in any rule): the amendment the reload tests apply.
pub fn agreement_without_ikat(version: u64) -> String {
    let text = AGREEMENT
        .replace("version = 1\n", &format!("version = {version}\n"))
        .replace(
            "IKAT = \"Surveillance du territoire (hôtels, centres d'achats)\", ",
            "",
        )
        .replace("\"SPVQ/IKAT\", ", "");
    assert!(!text.contains("IKAT"), "the amendment removes every IKAT");
    text
}

/// `text` with the categories of rule `rule` replaced by `["flood"]`, and the 1-based line
/// where it now says so: an agreement that fails validation with "unknown category".
///
/// # Panics
/// If the rule is not in `text`.
pub fn agreement_with_unknown_category(text: &str, rule: &str) -> (String, usize) {
    let header = format!("id = \"{rule}\"");
    let mut in_rule = false;
    let mut line_no = 0;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("id = ") {
            in_rule = line == header;
        }
        if in_rule && line_no == 0 && line.starts_with("categories = ") {
            out.push("categories = [\"flood\"]".to_owned());
            line_no = i + 1;
        } else {
            out.push(line.to_owned());
        }
    }
    assert!(line_no > 0, "no rule {rule} with categories");
    (out.join("\n") + "\n", line_no)
}

/// The lowercase hex SHA-256 of a file, computed by `sha256sum` (coreutils): an
/// independent check of what `agreement_loaded` entries name.
///
/// # Panics
/// If `sha256sum` cannot run or fails.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum: {e}"));
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// A request frame as a node writes it on its stream (for [`raw`] connections).
///
/// # Panics
/// If the request does not encode (a bug in the test).
pub fn request_frame(id: u64, request: filet_proto::wire::Request) -> Vec<u8> {
    filet_proto::codec::encode_frame(&filet_proto::wire::ClientFrame { id, request })
        .expect("a request encodes")
}

/// Reads the relay's next frame on a [`raw`] stream, waiting at most [`WAIT`].
///
/// # Panics
/// If none arrives in time, the stream ends, or the frame is malformed.
pub async fn read_server_frame(recv: &mut quinn::RecvStream) -> filet_proto::wire::ServerFrame {
    let read = filet_client::transport::read_frame(recv, WAIT);
    match tokio::time::timeout(WAIT, read).await {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => panic!("the relay ended the stream"),
        Ok(Err(e)) => panic!("reading a frame from the relay: {e}"),
        Err(_) => panic!("no frame from the relay within {WAIT:?}"),
    }
}

/// Asks `WhoAmI` on a new stream of a [`raw`] connection and returns the answer: proves
/// the relay has identified the connection and serves it.
///
/// # Panics
/// If the stream cannot be opened or the answer is not a `WhoAmI`.
pub async fn raw_whoami(c: &raw::RawConn) -> filet_proto::wire::WhoAmI {
    use filet_proto::wire::{Request, Response, ServerFrame};
    let (mut send, mut recv) = c
        .send(&request_frame(1, Request::WhoAmI))
        .await
        .unwrap_or_else(|e| panic!("cannot open a stream: {e}"));
    let answer = read_server_frame(&mut recv).await;
    let _ = send.finish();
    match answer {
        ServerFrame::Response {
            id: 1,
            result: Ok(Response::WhoAmI(w)),
        } => w,
        other => panic!("expected the answer to WhoAmI, got {other:?}"),
    }
}

// ---- hardening helpers (issue 5) ------------------------------------------------------

/// Copies a directory tree (files and subdirectories) from `from` to a new `to`: a
/// snapshot of a stopped relay's store, to put back later.
///
/// # Panics
/// On I/O errors (tests only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

/// The ids of what waits in `node`'s mailbox (`Node::inbox`), oldest first.
///
/// # Panics
/// If the inbox request fails (tests only).
pub async fn inbox_ids(node: &Node) -> Vec<filet_proto::AlertId> {
    node.inbox()
        .await
        .expect("the inbox")
        .iter()
        .map(|d| d.envelope.id)
        .collect()
}
