//! The QUIC endpoint: accepting connections, identifying them, serving their streams,
//! pushing deliveries. The requests themselves are handled in [`requests`], one function
//! per kind; this module is the machinery around them (frames in, answers and deliveries
//! out, bounded queues, shutdown).
//!
//! Every task is owned: connections in the server's `JoinSet`, streams in their
//! connection's, request handlers and the delivery loop in their stream's. Dropping a set
//! aborts what it holds. Every wait on the network has a bound: the handshake
//! ([`HANDSHAKE_TIMEOUT`]), a started frame (`limits.frame_timeout_secs`), an idle
//! connection (`limits.idle_timeout_secs`, QUIC's idle timeout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filet_net::{read_frame, ReadFrameError};
use filet_proto::audit::RefusalReason;
use filet_proto::codec::{self, MAX_FRAME_LEN};
use filet_proto::wire::{
    close, ClientFrame, ErrorCode, RelayError, Request, Response, ServerFrame,
};
use filet_proto::{AlertId, Principal, UnitRef};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::commit::Op;
use crate::identity;
use crate::ratelimit::Refused;

pub mod requests;

use crate::state::Shared;
use requests::{disclose, handle};

/// Longest a QUIC + TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, in total: a handshake on a working network takes a few
/// round trips, so this is far above what a province's nodes reconnecting together need.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress at once from one source network (/24 or /64): the nodes of an
/// agency behind one NAT reconnecting together, not a flood from one host.
pub const MAX_HANDSHAKES_PER_PREFIX: usize = 32;
/// Frames queued for one stream's writer (their bytes are bounded per connection too, see
/// [`OutQueue`]).
const OUT_QUEUE: usize = 256;
/// Deliveries sent per wake-up of a delivery loop before looking again.
const DELIVERY_CHUNK: usize = 64;
/// How long a shutting-down connection waits for its in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer's items (inbox alerts, audit entries): the frame limit less room
/// for the frame's own fields (variant tags, request id, list length, `more` or `next`).
const PAGE_BUDGET: usize = MAX_FRAME_LEN - 64;

/// A frame for a stream's writer; `written` is told once it is written to the stream
/// (`true`), or that its alerts left the mailbox meanwhile and it was not (`false`).
struct Out {
    bytes: Vec<u8>,
    written: Option<oneshot::Sender<bool>>,
    /// The mailbox entries whose content the frame holds: checked by the writer right
    /// before it writes the frame (a purge clears them before its `purged` entry).
    live: Vec<Arc<AtomicBool>>,
    /// What to write instead if one of them left the mailbox (an answer must still be
    /// answered); nothing for a push.
    instead: Option<Vec<u8>>,
}

impl Out {
    fn plain(bytes: Vec<u8>) -> Out {
        Out {
            bytes,
            written: None,
            live: Vec::new(),
            instead: None,
        }
    }

    /// What the writer writes now, and whether that is the frame itself: never the
    /// content of an entry that left the mailbox (acknowledged, expired, purged) since
    /// the frame was made.
    fn take_for_writing(&mut self) -> (Option<Vec<u8>>, bool) {
        if self.live.iter().all(|l| l.load(Ordering::Acquire)) {
            (Some(std::mem::take(&mut self.bytes)), true)
        } else {
            (self.instead.take(), false)
        }
    }
}

/// An alert in an answer: logged `delivered` once the answer is written, never before.
struct Sent {
    alert: AlertId,
    sender: Principal,
    fields: filet_proto::FieldSet,
    basis: Basis,
    /// Its mailbox entry, while it waits there (see [`Out::live`]).
    live: Option<Arc<AtomicBool>>,
}

/// What the check at delivery time permitted a delivery under: the rules and the
/// agreement in force then (logged in its `delivered` entry).
#[derive(Debug, Clone, PartialEq)]
struct Basis {
    rules: Vec<String>,
    agreement: String,
    version: u64,
}

impl Sent {
    fn delivered(self, node: Principal) -> Op {
        Op::Delivered {
            alert: self.alert,
            sender: self.sender,
            node,
            fields: self.fields,
            rules: self.basis.rules,
            agreement: self.basis.agreement,
            agreement_version: self.basis.version,
        }
    }
}

/// Accepts connections until `shutdown` turns true, then stops accepting, tells every
/// connection, waits for their in-flight requests, and returns.
pub async fn serve(
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if let Some((incoming, handshake)) = admit(&shared, incoming) {
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    conns.spawn(connection(shared, incoming, handshake, shutdown));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { break; }
            }
        }
    }
    info!("shutting down: no new connections; finishing in-flight requests");
    while conns.join_next().await.is_some() {}
    endpoint.close(close::SHUTDOWN.into(), b"relay shutting down");
}

/// Decides what to do with a connection attempt, before any TLS work:
/// - an Initial from an address not yet validated gets a Retry (RFC 9000 §8.1): whoever
///   cannot receive at its source address (a spoofed flood) never gets further;
/// - a relay whose connection slots are all held by identified connections refuses at once;
/// - otherwise the handshake needs a slot of the handshake budget (per source network and
///   in total), held until the handshake ends. The connection slot is taken only once the
///   handshake is done and the principal known (see [`connection`]), so handshakes that
///   never finish cannot keep nodes out.
fn admit(
    shared: &Shared,
    incoming: quinn::Incoming,
) -> Option<(quinn::Incoming, crate::ratelimit::HandshakeSlot)> {
    let remote = incoming.remote_address();
    if !incoming.remote_address_validated() {
        if let Err(e) = incoming.retry() {
            // Cannot happen (an unvalidated Initial may always be retried): refuse it.
            e.into_incoming().refuse();
        }
        return None;
    }
    if shared.connections.available_permits() == 0 {
        warn!(%remote, "connection refused: limit of {} connections reached", shared.limits.max_connections);
        incoming.refuse();
        return None;
    }
    match shared.handshakes.begin(remote.ip()) {
        Ok(slot) => Some((incoming, slot)),
        Err(e) => {
            // At the rate a flood arrives: counted, not logged one by one.
            shared.metrics.handshake_refused(&e);
            debug!(%remote, "connection refused before its handshake: {e}");
            incoming.refuse();
            None
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    incoming: quinn::Incoming,
    handshake: crate::ratelimit::HandshakeSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(%remote, "incoming connection failed: {e}");
            return;
        }
    };
    // A stopping relay does not wait for handshakes in progress.
    let handshake_result = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting) => r,
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    drop(handshake);
    let conn = match handshake_result {
        Ok(Ok(c)) => c,
        Ok(Err(quinn::ConnectionError::ConnectionClosed(c))) => {
            // The node ended the handshake: it refused this relay (its certificate, name
            // or CA). Not a refusal by the relay, so not audited as one.
            warn!(%remote, "a node ended the TLS handshake: {c} (it refused the relay's certificate?)");
            return;
        }
        Ok(Err(e)) => {
            let detail = format!("TLS handshake from {remote} failed: {e}");
            // An unauthenticated peer must not grow the audit log at the rate it can make
            // handshakes: a few entries per network and minute, the rest counted.
            let who = Refused::Network(crate::ratelimit::Prefix::of(remote.ip()));
            warn!("{detail}");
            let _ = shared
                .audit_refusal(who, None, RefusalReason::UnknownIdentity, detail, false)
                .await;
            return;
        }
        Err(_) => {
            debug!(%remote, "handshake timed out");
            return;
        }
    };
    let agreement = shared.agreement();
    let leaf = identity::peer_leaf(&conn);
    let principal = match identity::principal_of(leaf.as_ref(), &agreement) {
        Ok(p) => p,
        Err(e) => {
            let detail = format!("connection from {remote} refused: {e}");
            warn!("{detail}");
            let principal = match &e {
                identity::PrincipalError::UnknownParty { principal, .. }
                | identity::PrincipalError::UnknownUnit { principal, .. } => {
                    Some(principal.to_string())
                }
                _ => None,
            };
            let who = match &principal {
                Some(p) => Refused::Principal(p.clone()),
                None => Refused::Network(crate::ratelimit::Prefix::of(remote.ip())),
            };
            let _ = shared
                .audit_refusal(who, principal, RefusalReason::UnknownIdentity, detail, true)
                .await;
            conn.close(close::UNKNOWN_PRINCIPAL.into(), e.to_string().as_bytes());
            return;
        }
    };
    let span = info_span!("conn", principal = %principal, %remote);
    let max_own = shared.limits.max_connections_per_principal.max(1);
    if shared.registry.count(&principal) >= max_own {
        let reason = format!(
            "{principal} already has {max_own} open connections (the limit per principal); close one and retry"
        );
        warn!(%principal, "connection refused: {reason}");
        conn.close(close::BUSY.into(), reason.as_bytes());
        return;
    }
    // The connection slot, now that the handshake is done and the principal known.
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        let reason = format!(
            "the relay is busy: it has {} open connections, its limit; retry later",
            shared.limits.max_connections
        );
        warn!(%principal, "connection refused: {reason}");
        conn.close(close::BUSY.into(), reason.as_bytes());
        return;
    };
    shared.registry.add(crate::state::ConnEntry {
        principal: principal.clone(),
        serial: serial_of(&leaf),
        conn: conn.clone(),
    });
    // A handshake that began before a reload was checked against the old CRL and
    // agreement, and may register after the reload swept the open connections: check
    // again now that it is registered (the reload replaces both before its sweep).
    let revoked = shared
        .revoked
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&serial_of(&leaf));
    let removed = identity::check_principal(&principal, &shared.agreement()).err();
    if revoked || removed.is_some() {
        let (code, reason) = match removed {
            Some(e) if !revoked => (close::UNKNOWN_PRINCIPAL, e.to_string()),
            _ => (
                close::REVOKED,
                format!(
                    "certificate {} of {principal} is revoked by the CRL in force (number {})",
                    serial_of(&leaf),
                    shared.crl().numbers()
                ),
            ),
        };
        shared.registry.remove(&conn);
        warn!(%principal, "closing: {reason}");
        conn.close(code.into(), reason.as_bytes());
        let _ = shared
            .audit_refusal(
                Refused::Principal(principal.to_string()),
                Some(principal.to_string()),
                RefusalReason::UnknownIdentity,
                format!("connection from {remote} refused: {reason}"),
                true,
            )
            .await;
        return;
    }
    let registry_shared = shared.clone();
    async move {
        info!("connected");
        let ctx = Arc::new(ConnCtx {
            shared,
            principal,
            conn: conn.clone(),
            out_budget: Arc::new(Semaphore::new(
                crate::identity::TRANSPORT_SIZES.out_queue_bytes,
            )),
        });
        let mut streams = JoinSet::new();
        let mut shutdown2 = shutdown.clone();
        loop {
            tokio::select! {
                s = conn.accept_bi() => match s {
                    Ok((send, recv)) => {
                        let ctx = ctx.clone();
                        let shutdown = shutdown.clone();
                        streams.spawn(async move { stream(ctx, send, recv, shutdown).await });
                    }
                    Err(e) => {
                        info!("disconnected: {}", describe_disconnect(&e));
                        break;
                    }
                },
                Some(_) = streams.join_next(), if !streams.is_empty() => {}
                r = shutdown2.changed() => {
                    if r.is_err() || *shutdown2.borrow() { break; }
                }
            }
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while streams.join_next().await.is_some() {}
        })
        .await;
        registry_shared.registry.remove(&conn);
        conn.close(
            close::SHUTDOWN.into(),
            b"relay shutting down; reconnect later",
        );
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Why a node's connection ended, from the relay's side.
fn describe_disconnect(e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError as C;
    match e {
        C::ApplicationClosed(c) => format!(
            "the node closed the connection (code {}){}",
            u64::from(c.error_code),
            if c.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", String::from_utf8_lossy(&c.reason))
            }
        ),
        C::ConnectionClosed(c) => format!("the node's QUIC stack closed the connection: {c}"),
        C::TimedOut => "idle timeout: the node stopped answering".into(),
        C::Reset => "the node reset the connection".into(),
        C::LocallyClosed => "closed by the relay".into(),
        other => other.to_string(),
    }
}

/// The serial of a certificate, lowercase hex (empty if unreadable).
fn serial_of(leaf: &Option<rustls::pki_types::CertificateDer<'static>>) -> String {
    leaf.as_ref()
        .and_then(|c| filet_certs::serial_hex(c.as_ref()).ok())
        .unwrap_or_default()
}

struct ConnCtx {
    shared: Arc<Shared>,
    principal: Principal,
    conn: quinn::Connection,
    /// Bytes of frames queued for this connection's streams.
    out_budget: Arc<Semaphore>,
}

impl ConnCtx {
    fn unit(&self) -> &UnitRef {
        &self.principal.unit
    }
}

fn frame(f: &ServerFrame) -> Option<Vec<u8>> {
    match codec::encode_frame(f) {
        Ok(b) => Some(b),
        Err(e) => {
            warn!("cannot encode a frame: {e}");
            None
        }
    }
}

async fn stream(
    ctx: Arc<ConnCtx>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel(OUT_QUEUE);
    let tx = OutQueue {
        tx,
        budget: ctx.out_budget.clone(),
    };
    // The writer ends (and finishes the stream) once every sender is gone: after the
    // handlers' answers and, at shutdown, after the Closing frame.
    let writer = tokio::spawn(async move {
        while let Some((out, _budget)) = rx.recv().await {
            let mut out: Out = out;
            let (bytes, itself) = out.take_for_writing();
            if let Some(bytes) = bytes {
                if send.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            if let Some(w) = out.written {
                let _ = w.send(itself);
            }
        }
        let _ = send.finish();
    });
    let writer = AbortOnDrop::new(writer);
    let mut tasks = JoinSet::new();
    let mut shutting_down = false;
    let permits = Arc::new(Semaphore::new(
        ctx.shared.limits.max_in_flight_per_stream.max(1),
    ));
    let frame_timeout = ctx.shared.limits.frame_timeout();
    let mut subscribed = false;
    loop {
        let next = tokio::select! {
            f = read_frame::<ClientFrame>(&mut recv, frame_timeout) => f,
            _ = shutdown.changed() => {
                shutting_down = true;
                break;
            }
        };
        let ClientFrame { id, request } = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(ReadFrameError::Stream(_)) => break,
            Err(e) => {
                let reason = format!("protocol error: {e}");
                warn!(principal = %ctx.principal, "{reason}; closing the connection");
                ctx.conn.close(close::PROTOCOL.into(), reason.as_bytes());
                return;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if let Request::Subscribe = request {
            let result = if subscribed {
                Err(RelayError::new(
                    ErrorCode::BadRequest,
                    "this stream is already subscribed",
                ))
            } else {
                subscribed = true;
                Ok(Response::Subscribed)
            };
            let ok = result.is_ok();
            if let Some(b) = frame(&ServerFrame::Response { id, result }) {
                if tx.send(Out::plain(b)).await.is_err() {
                    break;
                }
            }
            if ok {
                tasks.spawn(deliveries(ctx.clone(), tx.clone(), shutdown.clone()));
            }
            drop(permit);
            continue;
        }
        let ctx2 = ctx.clone();
        let tx2 = tx.clone();
        tasks.spawn(async move {
            let mut sent = Vec::new();
            let result = handle(&ctx2, request, &mut sent).await;
            answer(&ctx2, &tx2, id, result, sent).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    // In-flight requests finish and are answered; the delivery loop runs until the
    // connection or the relay ends.
    while tasks.join_next().await.is_some() {}
    if shutting_down {
        // Tell the node why the stream ends, after every answer it was owed.
        if let Some(b) = frame(&ServerFrame::Closing {
            reason: "relay shutting down; reconnect later".into(),
        }) {
            let _ = tx.send(Out::plain(b)).await;
        }
    }
    drop(tx);
    let _ = writer.wait().await;
}

/// Sends the answer to request `id`, then logs `delivered` for the alerts in it once it is
/// written to the stream. An answer that cannot be encoded (over the frame limit) is
/// replaced by an error answer: a request is never left unanswered, and nothing of an
/// answer that was not sent is logged as delivered.
async fn answer(
    ctx: &ConnCtx,
    tx: &OutQueue,
    id: u64,
    result: Result<Response, RelayError>,
    mut sent: Vec<Sent>,
) {
    let bytes = match codec::encode_frame(&ServerFrame::Response { id, result }) {
        Ok(b) => b,
        Err(e) => {
            sent.clear();
            warn!(principal = %ctx.principal, "cannot send the answer to request {id}: {e}");
            let error = RelayError::new(
                ErrorCode::Internal,
                format!("the relay cannot send its answer to this request ({e}); nothing in it was delivered"),
            );
            let Some(b) = frame(&ServerFrame::Response {
                id,
                result: Err(error),
            }) else {
                return;
            };
            b
        }
    };
    let (written, was_written) = oneshot::channel();
    let live: Vec<Arc<AtomicBool>> = sent.iter().filter_map(|s| s.live.clone()).collect();
    // If an alert of the answer leaves the mailbox (a purge) before the writer gets to
    // it, the node is told to ask again instead: nothing of it is written.
    let instead = if live.is_empty() {
        None
    } else {
        frame(&ServerFrame::Response {
            id,
            result: Err(RelayError::new(
                ErrorCode::Busy,
                "an alert of this answer left the mailbox (acknowledged, expired or purged) while it was being sent; nothing in it was delivered: ask again",
            )),
        })
    };
    let out = Out {
        bytes,
        written: (!sent.is_empty()).then_some(written),
        live,
        instead,
    };
    if tx.send(out).await.is_err() || sent.is_empty() || !matches!(was_written.await, Ok(true)) {
        return;
    }
    for s in sent {
        let _ = ctx.shared.op(s.delivered(ctx.principal.clone())).await;
    }
}

/// The frames waiting for one stream's writer. Each holds its size in the connection's
/// byte budget ([`crate::identity::TRANSPORT_SIZES`]`.out_queue_bytes`) until written: a
/// node that does not read makes its own senders wait, not the relay's memory grow.
#[derive(Clone)]
struct OutQueue {
    tx: mpsc::Sender<(Out, tokio::sync::OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
}

impl OutQueue {
    /// Queues a frame once the budget has room for it.
    ///
    /// # Errors
    /// If the stream's writer is gone.
    async fn send(&self, out: Out) -> Result<(), ()> {
        let n = out
            .bytes
            .len()
            .min(crate::identity::TRANSPORT_SIZES.out_queue_bytes);
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| ())?;
        self.tx.send((out, permit)).await.map_err(|_| ())
    }
}

/// A task handle that aborts the task if dropped before it is awaited.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    fn new(h: tokio::task::JoinHandle<()>) -> Self {
        AbortOnDrop(Some(h))
    }

    async fn wait(mut self) -> Result<(), tokio::task::JoinError> {
        match self.0.take() {
            Some(h) => h.await,
            None => Ok(()),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Pushes this unit's mailbox: everything waiting, then each new entry as it is published.
async fn deliveries(ctx: Arc<ConnCtx>, tx: OutQueue, mut shutdown: watch::Receiver<bool>) {
    let mailboxes = ctx.shared.mailboxes.clone();
    let mut newest = mailboxes.subscribe(ctx.unit());
    let mut cursor = 0u64;
    loop {
        newest.borrow_and_update();
        let batch = mailboxes.pending_after(ctx.unit(), cursor, DELIVERY_CHUNK);
        if batch.is_empty() {
            tokio::select! {
                r = newest.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let mut pushed = Vec::with_capacity(batch.len());
        for p in batch {
            let (seq, rec) = (p.seq, p.rec.clone());
            cursor = seq;
            let id = rec.envelope.id;
            let Some((d, basis)) = disclose(&ctx, &rec, seq).await else {
                continue;
            };
            let fields = d.fields;
            let bytes = match codec::encode_frame(&ServerFrame::Delivery(d)) {
                Ok(b) => b,
                Err(e) => {
                    // Impossible within the thread limits (see commit.rs); said, not skipped.
                    let reason = format!("its delivery cannot be sent: {e}");
                    warn!(principal = %ctx.principal, "alert {id}: {reason}");
                    let _ = ctx
                        .shared
                        .op(Op::Withheld {
                            alert: id,
                            sender: rec.envelope.sender.clone(),
                            unit: ctx.unit().clone(),
                            reason,
                        })
                        .await;
                    continue;
                }
            };
            let (written, was_written) = oneshot::channel();
            let out = Out {
                bytes,
                written: Some(written),
                live: vec![p.live.clone()],
                instead: None,
            };
            if tx.send(out).await.is_err() {
                return;
            }
            pushed.push((
                was_written,
                Sent {
                    alert: id,
                    sender: rec.envelope.sender.clone(),
                    fields,
                    basis,
                    live: None,
                },
            ));
        }
        // Logged once written to the stream, never before.
        for (was_written, s) in pushed {
            match was_written.await {
                Ok(true) => {}
                // Left the mailbox before it was written: not sent, not logged.
                Ok(false) => continue,
                Err(_) => return,
            }
            let _ = ctx.shared.op(s.delivered(ctx.principal.clone())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::commit::{MAX_HISTORY_BYTES, MAX_RECORD_BYTES};
    use crate::store::{AlertRecord, RecipientRecord};
    use filet_proto::alert::{AlertFile, AlertState, Disclosed, HistoryItem, Kind, MAX_NOTE};
    use filet_proto::{FieldSet, Timestamp};

    #[test]
    fn a_frame_whose_alert_left_the_mailbox_before_the_writer_got_to_it_is_not_written() {
        let live = Arc::new(AtomicBool::new(true));
        let frame = |instead: Option<Vec<u8>>| Out {
            bytes: b"content".to_vec(),
            written: None,
            live: vec![live.clone()],
            instead,
        };
        // Still in the mailbox: the frame itself.
        assert_eq!(
            frame(None).take_for_writing(),
            (Some(b"content".to_vec()), true)
        );
        // Purged (acknowledged, expired) after the frame was made, before it was written:
        // a push is dropped, an answer replaced by its error, the content never written.
        live.store(false, Ordering::Release);
        assert_eq!(frame(None).take_for_writing(), (None, false));
        assert_eq!(
            frame(Some(b"ask again".to_vec())).take_for_writing(),
            (Some(b"ask again".to_vec()), false)
        );
    }

    /// The thread limits make an inbox page of one always possible: the largest message a
    /// post may store, with the largest history an alert may reach (past the update limit
    /// by a closing step and an expiry), fits in a page and in a frame.
    #[test]
    fn the_largest_message_with_the_largest_history_fits_in_one_page_and_one_frame() {
        let wide = |n: usize| Some("🚨".repeat(n));
        let mut draft = AlertFile::from_toml(crate::examples::RUNAWAY)
            .unwrap()
            .into_draft();
        let c = &mut draft.content;
        c.subject.given_name = wide(filet_proto::alert::MAX_GIVEN_NAME);
        c.subject.description = wide(filet_proto::alert::MAX_DESCRIPTION);
        c.last_seen.place = wide(filet_proto::alert::MAX_PLACE);
        c.instructions = wide(filet_proto::alert::MAX_INSTRUCTIONS);
        c.contact = wide(filet_proto::alert::MAX_CONTACT);
        let id = AlertId([9; 16]);
        let step = |kind| HistoryItem {
            kind,
            id,
            at: Timestamp(i64::MAX),
            note: wide(MAX_NOTE),
        };
        // The longest history an update may leave, then a closing step and an expiry.
        let mut history = Vec::new();
        loop {
            history.push(step(Some(Kind::Update)));
            if codec::encode_value(&history).unwrap().len() > MAX_HISTORY_BYTES {
                history.pop();
                break;
            }
        }
        history.push(step(Some(Kind::Cancel)));
        history.push(step(None));
        // A record as large as a post may store: its recipient's rules fill it.
        let mut rec = AlertRecord {
            envelope: filet_proto::alert::Envelope {
                id,
                kind: Kind::Update,
                references: Some(id),
                category: draft.category,
                status: draft.status,
                risk: draft.risk,
                language: draft.language,
                sender: "SPVQ/ESM/poste-1".parse().unwrap(),
                received_at: Timestamp(i64::MAX),
                expires_at: Timestamp(i64::MAX),
            },
            content: Some(draft.content.clone()),
            note: wide(MAX_NOTE),
            salt: [0xff; 32],
            idempotency_key: [0xff; 16],
            posted_index: u64::MAX,
            recipients: vec![RecipientRecord {
                unit: "DPJ/RTS".parse().unwrap(),
                rules: Vec::new(),
                legal_bases: Vec::new(),
                fields: FieldSet::EMPTY,
                retention_ms: i64::MAX,
                seq: u64::MAX,
                disclosed_index: u64::MAX,
                acked: None,
            }],
            state: AlertState::Active,
            history: Vec::new(),
            closed_at: None,
            purged: false,
        };
        loop {
            rec.recipients[0].rules.push("r".repeat(64));
            if codec::encode_value(&rec).unwrap().len() > MAX_RECORD_BYTES {
                rec.recipients[0].rules.pop();
                break;
            }
        }
        let d = Disclosed {
            envelope: rec.envelope.clone(),
            content: draft.content.clone(),
            note: rec.note.clone(),
            rules: rec.recipients[0].rules.clone(),
            fields: draft.content.present(),
            seq: u64::MAX,
            state: AlertState::Cancelled,
            history,
        };
        let size = codec::encode_value(&d).unwrap().len();
        assert!(size <= PAGE_BUDGET, "{size} bytes");
        for f in [
            ServerFrame::Response {
                id: u64::MAX,
                result: Ok(Response::Inbox {
                    alerts: vec![d.clone()],
                    more: true,
                }),
            },
            ServerFrame::Delivery(d.clone()),
            ServerFrame::Response {
                id: u64::MAX,
                result: Ok(Response::Alert {
                    alert: d.clone(),
                    recipients: vec!["DPJ/RTS".parse().unwrap()],
                }),
            },
        ] {
            codec::encode_frame(&f).unwrap();
        }
    }
}
