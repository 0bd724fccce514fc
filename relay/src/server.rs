//! The QUIC endpoint: accepting connections, identifying them, serving their streams,
//! pushing deliveries.
//!
//! Every task is owned: connections in the server's `JoinSet`, streams in their
//! connection's, request handlers and the delivery loop in their stream's. Dropping a set
//! aborts what it holds. Every wait on the network has a bound: the handshake
//! ([`HANDSHAKE_TIMEOUT`]), a started frame (`limits.frame_timeout_secs`), an idle
//! connection (`limits.idle_timeout_secs`, QUIC's idle timeout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use filet_client::transport::{read_frame, ReadFrameError};
use filet_proto::agreement::Agreement;
use filet_proto::alert::{Disclosed, Kind};
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::codec::{self, MAX_FRAME_LEN};
use filet_proto::policy::{self, AlertView, AuditRequest, AuditScope, Delivery, NotDelivered};
use filet_proto::wire::{
    close, ClientFrame, EntryWithProof, ErrorCode, RelayError, Request, Response, ServerFrame,
    WhoAmI, MAX_ENTRIES_PER_PAGE, MAX_INBOX_PAGE,
};
use filet_proto::{AlertDraft, AlertId, Principal, UnitRef};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::audit_log::AuditReader;
use crate::clock::Clock;
use crate::commit::{Op, Route};
use crate::config::Limits;
use crate::hub::Hub;
use crate::identity;
use crate::ratelimit::{RateLimiter, Refused};
use crate::store::{AlertRecord, Store};

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

/// The relay is stopping.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the relay is stopping")]
pub struct Stopped;

/// What every connection task shares.
pub struct Shared {
    /// The current agreement (replaced whole on reload).
    pub agreement: RwLock<Arc<Agreement>>,
    /// Published mailboxes.
    pub hub: Arc<Hub>,
    /// Alert records (read side).
    pub store: Store,
    /// Audit log (read side).
    pub audit: AuditReader,
    /// The newest signed checkpoint.
    pub latest_checkpoint: Arc<RwLock<String>>,
    /// To the commit thread.
    pub ops: mpsc::Sender<Op>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Limits.
    pub limits: Limits,
    /// Posts per principal.
    pub rate: RateLimiter,
    /// Open, identified connections (for the connection limit); a slot is taken once the
    /// handshake is done.
    pub connections: Arc<Semaphore>,
    /// Handshakes in progress, per source network and in total.
    pub handshakes: crate::ratelimit::HandshakeBudget,
    /// Open, identified connections (for reloads and metrics).
    pub registry: crate::control::Registry,
    /// Audited refusals per principal or source network and reason: past the limit,
    /// counted and logged together ([`flush_suppressed`]).
    pub refusals: crate::ratelimit::RefusalLimiter,
    /// Serials (lowercase hex) revoked by the CRL in force; replaced on reload before the
    /// open connections are swept.
    pub revoked: RwLock<std::collections::HashSet<String>>,
    /// The CRL in force (replaced on reload, never by an older one).
    pub crl: RwLock<Arc<crate::crl::CrlInForce>>,
    /// What the log last said of the CRL's freshness.
    pub crl_alarm: std::sync::Mutex<crate::crl::Alarm>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    /// The CRL in force.
    pub fn crl(&self) -> Arc<crate::crl::CrlInForce> {
        self.crl.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Logs the CRL's freshness if it is due or stale and the log has not said so within
    /// the hour (or the state changed).
    pub fn check_crl(&self) {
        let crl = self.crl();
        let alarm = self
            .crl_alarm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(&crl, self.clock.now());
        crate::crl::log(alarm);
    }

    /// The current agreement.
    pub fn agreement(&self) -> Arc<Agreement> {
        self.agreement
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends an op to the commit thread (waits while its queue is full).
    async fn op(&self, op: Op) -> Result<(), RelayError> {
        self.ops
            .send(op)
            .await
            .map_err(|_| RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later"))
    }

    /// Audits a refusal with no alert attached, unless `who` is past its limit of
    /// itemized refusals for this reason: then it is counted, and logged with the others
    /// of its window in one entry ([`flush_suppressed`]). `wait`: until it is durable.
    /// Returns whether it got its own entry.
    pub(crate) async fn audit_refusal(
        &self,
        who: Refused,
        principal: Option<String>,
        reason: RefusalReason,
        detail: String,
        wait: bool,
    ) -> Result<bool, RelayError> {
        if !self.refusals.admit(&who, reason, self.clock.now()) {
            debug!("{detail} (not itemized in the audit log: {who} is over its limit of refusals logged per minute; counted)");
            return Ok(false);
        }
        let event = Event::Refused {
            principal,
            reason,
            detail,
            category: None,
            recipient: None,
            alert: None,
        };
        if wait {
            self.audit(event).await?;
        } else {
            self.op(Op::Audit { event, reply: None }).await?;
        }
        Ok(true)
    }

    /// Appends an audit event and waits until it is durable.
    pub(crate) async fn audit(&self, event: Event) -> Result<u64, RelayError> {
        let (tx, rx) = oneshot::channel();
        self.op(Op::Audit {
            event,
            reply: Some(tx),
        })
        .await?;
        rx.await
            .map_err(|_| RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later"))?
    }
}

/// Logs the refusals counted but not itemized whose window has ended (every one if
/// `all`, when the relay stops): one `refused` entry per principal or network and reason,
/// whose detail says how many, since when.
pub async fn flush_suppressed(shared: &Shared, all: bool) {
    for s in shared.refusals.take_suppressed(shared.clock.now(), all) {
        let principal = match &s.who {
            Refused::Principal(p) => Some(p.clone()),
            Refused::Network(_) => None,
        };
        let detail = format!(
            "{} more refusals of {} for {} since {} were not itemized: over the limit of {} itemized per minute",
            s.count,
            s.who,
            s.reason.as_str(),
            s.since,
            crate::ratelimit::REFUSALS_ITEMIZED_PER_MINUTE
        );
        let _ = shared
            .op(Op::Audit {
                event: Event::Refused {
                    principal,
                    reason: s.reason,
                    detail,
                    category: None,
                    recipient: None,
                    alert: None,
                },
                reply: None,
            })
            .await;
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
    shared.registry.add(crate::control::ConnEntry {
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
    let hub = ctx.shared.hub.clone();
    let mut newest = hub.subscribe(ctx.unit());
    let mut cursor = 0u64;
    loop {
        newest.borrow_and_update();
        let batch = hub.pending_after(ctx.unit(), cursor, DELIVERY_CHUNK);
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

/// The alert as this connection's unit may see it now, with the rules and agreement that
/// permit it, or `None` (gone, expired, or no longer permitted — then withheld and
/// audited).
async fn disclose(ctx: &ConnCtx, rec: &AlertRecord, seq: u64) -> Option<(Disclosed, Basis)> {
    let id = rec.envelope.id;
    let unit = ctx.unit();
    let r = rec.recipients.iter().find(|r| r.unit == *unit)?;
    let content = rec.content.as_ref()?;
    // A follow-up is permitted under the original sender's rules (see commit.rs), and
    // carries the state, expiry and history of its alert: published by the commit thread
    // when the alert changes; an alert never changed is active with one step.
    let view = ctx.shared.hub.thread(&rec.root());
    let expires_at = thread_expiry(rec, view.as_ref());
    let mut envelope = rec.envelope.clone();
    envelope.expires_at = expires_at;
    let agreement = ctx.shared.agreement();
    let sender_unit = view
        .as_ref()
        .map(|v| &v.sender_unit)
        .unwrap_or(&rec.envelope.sender.unit);
    let waiting = policy::Waiting {
        kind: rec.envelope.kind,
        category: rec.envelope.category,
        sender_unit,
        recipient: unit,
        legal_bases: &r.legal_bases,
        fields: r.fields,
        expires_at,
    };
    let decision = policy::recheck_delivery(&agreement, &waiting, ctx.shared.clock.now());
    let (state, history) = match view {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    let basis = |rules| Basis {
        rules,
        agreement: agreement.id.clone(),
        version: agreement.version,
    };
    match decision {
        Err(NotDelivered::Expired) => None,
        Err(NotDelivered::NoLongerPermitted(why)) => {
            let _ = ctx
                .shared
                .op(Op::Withheld {
                    alert: id,
                    sender: rec.envelope.sender.clone(),
                    unit: unit.clone(),
                    reason: why.to_string(),
                })
                .await;
            None
        }
        // A closing notice to a unit that received the alert but that no rule permits
        // any more.
        Ok(Delivery::ClosingNotice) => Some((
            policy::closing_notice(envelope, r.rules.clone(), seq, state, history),
            basis(r.rules.clone()),
        )),
        // Never more than was disclosed (and logged) at posting time, nor than the
        // agreement in force allows now: content, note and the notes of the history alike.
        Ok(Delivery::Content { fields, rules }) => Some((
            Disclosed {
                envelope,
                content: content.clone(),
                note: rec.note.clone(),
                rules: r.rules.clone(),
                fields: r.fields,
                seq,
                state,
                history,
            }
            .narrowed(fields),
            basis(rules),
        )),
    }
}

/// When a message stops being delivered: the thread's current expiry (an update may move
/// it, and the records published before keep the old one), but for a closing message
/// (`located`, `cancel`), which lives at least as long and carries its own.
fn thread_expiry(
    rec: &AlertRecord,
    view: Option<&crate::hub::ThreadView>,
) -> filet_proto::Timestamp {
    match (rec.envelope.kind, view) {
        (Kind::Located | Kind::Cancel, _) | (_, None) => rec.envelope.expires_at,
        (_, Some(v)) => v.expires_at,
    }
}

/// `GetAlert`: the sender's own unit sees its whole alert and its recipients; a recipient
/// unit sees what it may (a delivery, logged as such); another unit of the sender's party
/// (which may update, locate or cancel it) sees the envelope, state and history but no
/// content and no recipients; anyone else learns nothing.
async fn get_alert(
    ctx: &ConnCtx,
    id: AlertId,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    let unknown = || {
        RelayError::new(
            ErrorCode::UnknownAlert,
            format!("alert {id} is not visible to {}", ctx.unit()),
        )
    };
    let rec = ctx
        .shared
        .store
        .get(&id)
        .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        // Only what the commit thread has made durable: the store may show a record of a
        // batch whose audit entries are not yet (it is written in parallel with the log).
        .filter(|r| ctx.shared.hub.is_published(r))
        .ok_or_else(unknown)?;
    let view = ctx.shared.hub.thread(&rec.root());
    let mut envelope = rec.envelope.clone();
    envelope.expires_at = thread_expiry(&rec, view.as_ref());
    let (state, history) = match view {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    let seen = policy::alert_view(
        ctx.unit(),
        id,
        &rec.envelope.sender.unit,
        rec.recipients.iter().map(|r| &r.unit),
    )
    .map_err(|e| RelayError::new(ErrorCode::UnknownAlert, e.to_string()))?;
    if seen == AlertView::Sender {
        let content = rec.content.clone().unwrap_or_default();
        let mut fields = content.present();
        if rec.note.is_some() {
            fields = fields.with(filet_proto::FieldPath::Note);
        }
        return Ok(Response::Alert {
            alert: Disclosed {
                envelope,
                fields,
                content,
                note: rec.note.clone(),
                rules: Vec::new(),
                seq: 0,
                state,
                history,
            },
            recipients: rec.recipients.iter().map(|r| r.unit.clone()).collect(),
        });
    }
    if let Some(seq) = rec
        .recipients
        .iter()
        .find(|r| r.unit == *ctx.unit())
        .map(|r| r.seq)
        .filter(|_| seen == AlertView::Recipient)
    {
        let (d, basis) = disclose(ctx, &rec, seq).await.ok_or_else(|| {
            RelayError::new(
                ErrorCode::Closed,
                format!(
                    "alert {id} is expired, purged or no longer permitted for {}",
                    ctx.unit()
                ),
            )
        })?;
        sent.push(Sent {
            alert: id,
            sender: d.envelope.sender.clone(),
            fields: d.fields,
            basis,
            live: ctx.shared.hub.live(ctx.unit(), seq),
        });
        return Ok(Response::Alert {
            alert: d,
            recipients: Vec::new(),
        });
    }
    if seen == AlertView::OwnerParty {
        // The owner party may follow the alert up; it learns nothing of its content here.
        return Ok(Response::Alert {
            alert: policy::owner_party_view(envelope, state, history),
            recipients: Vec::new(),
        });
    }
    Err(unknown())
}

async fn handle(
    ctx: &ConnCtx,
    request: Request,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    match request {
        Request::WhoAmI => Ok(Response::WhoAmI(whoami(ctx))),
        Request::Post {
            draft,
            idempotency_key,
        } => post(ctx, draft, idempotency_key).await,
        Request::Inbox { after_seq } => inbox(ctx, after_seq, sent).await,
        Request::Subscribe => Err(RelayError::new(
            ErrorCode::BadRequest,
            "subscribe is handled by the stream",
        )),
        Request::Ack { alert } => {
            let (tx, rx) = oneshot::channel();
            ctx.shared
                .op(Op::Ack {
                    principal: ctx.principal.clone(),
                    alert,
                    reply: tx,
                })
                .await?;
            let audit_index = rx.await.map_err(|_| {
                RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later")
            })??;
            Ok(Response::Acked { alert, audit_index })
        }
        Request::GetAlert { alert } => get_alert(ctx, alert, sent).await,
        Request::AuditCheckpoint => Ok(Response::Checkpoint(
            ctx.shared
                .latest_checkpoint
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )),
        Request::AuditEntries {
            start,
            end,
            tree_size,
            proofs,
        } => audit_entries(ctx, start, end, tree_size, proofs).await,
        Request::AuditInclusion { index, tree_size } => {
            let scope = audit_scope(ctx, AuditRequest::InclusionProof).await?;
            if scope != AuditScope::Full {
                let entry = ctx
                    .shared
                    .audit
                    .entry(index)
                    .ok()
                    .and_then(|b| Entry::from_bytes(&b).ok());
                policy::inclusion_access(&scope, index, entry.as_ref().map(|e| &e.event))
                    .map_err(|e| RelayError::new(ErrorCode::AuditDenied, e.to_string()))?;
            }
            let proof = ctx
                .shared
                .audit
                .inclusion_proof(index, tree_size)
                .map_err(|e| RelayError::new(ErrorCode::BadRequest, e.to_string()))?;
            Ok(Response::Proof(proof))
        }
        Request::AuditConsistency { old_size, new_size } => {
            // Its hashes include single entries' leaf hashes: audit rights only (the
            // signed checkpoint stays public to every member, to check receipts).
            audit_scope(ctx, AuditRequest::ConsistencyProof).await?;
            let proof = ctx
                .shared
                .audit
                .consistency_proof(old_size, new_size)
                .map_err(|e| RelayError::new(ErrorCode::BadRequest, e.to_string()))?;
            Ok(Response::Proof(proof))
        }
        Request::Status { alert } => status(ctx, alert),
    }
}

/// Where an alert of the asker's party stands with each recipient unit: what the receipt
/// said, and who acknowledged and when. Another party learns nothing, not even that the
/// alert exists.
fn status(ctx: &ConnCtx, id: AlertId) -> Result<Response, RelayError> {
    let rec = ctx
        .shared
        .store
        .get(&id)
        .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        .ok_or_else(|| policy::NotOwnParty {
            alert: id,
            unit: ctx.unit().clone(),
        })
        .and_then(|r| policy::status_access(ctx.unit(), id, &r.envelope.sender.unit).map(|()| r))
        .map_err(|e| RelayError::new(ErrorCode::UnknownAlert, e.to_string()))?;
    let mut recipients = Vec::with_capacity(rec.recipients.len());
    for r in &rec.recipients {
        // Acknowledgements are kept under their own keys (the record is not rewritten).
        let acked = match &r.acked {
            Some(a) => Some(a.clone()),
            None => ctx
                .shared
                .store
                .ack(&id, &r.unit)
                .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?,
        };
        recipients.push(filet_proto::wire::RecipientStatus {
            unit: r.unit.clone(),
            rules: r.rules.clone(),
            legal_bases: r.legal_bases.clone(),
            fields: r.fields,
            disclosed_index: r.disclosed_index,
            acked: acked.map(|a| (a.node, a.at, a.audit_index)),
        });
    }
    Ok(Response::Status {
        alert: id,
        recipients,
    })
}

fn whoami(ctx: &ConnCtx) -> WhoAmI {
    let a = ctx.shared.agreement();
    let unit = ctx.unit();
    WhoAmI {
        principal: ctx.principal.clone(),
        agreement_id: a.id.clone(),
        agreement_version: a.version,
        may_send_under: policy::rules_sending_from(&a, unit),
        may_receive_under: policy::rules_received_by(&a, unit),
        audit_right: policy::audit_right(&a, unit)
            .map_or("none", |s| s.name())
            .into(),
    }
}

async fn post(
    ctx: &ConnCtx,
    draft: AlertDraft,
    idempotency_key: [u8; 16],
) -> Result<Response, RelayError> {
    let now = ctx.shared.clock.now();
    if let Err(wait_ms) = ctx.shared.rate.check(&ctx.principal, now) {
        // Not audited per refusal: a flood must not flood the log. The limiter counts them.
        return Err(RelayError {
            code: ErrorCode::RateLimited,
            message: format!(
                "{} posts faster than the limit of {} per minute; nothing was posted",
                ctx.principal, ctx.shared.limits.posts_per_minute
            ),
            retry_after_ms: Some(wait_ms),
            invalid: None,
        });
    }
    let refuse = |reason, detail: String, recipient: Option<String>| Event::Refused {
        principal: Some(ctx.principal.to_string()),
        reason,
        detail,
        category: Some(draft.category),
        recipient,
        alert: draft.references,
    };
    let valid = match draft.validate(now) {
        Ok(v) => v,
        Err(invalid) => {
            // The audit names the fields at fault, never their content.
            let paths: Vec<&str> = invalid.errors.iter().map(|e| e.path.as_str()).collect();
            ctx.shared
                .audit(refuse(
                    RefusalReason::Invalid,
                    format!("invalid alert: {}", paths.join(", ")),
                    None,
                ))
                .await?;
            return Err(RelayError {
                code: ErrorCode::InvalidAlert,
                message: format!("invalid alert: {invalid}"),
                retry_after_ms: None,
                invalid: Some(invalid),
            });
        }
    };
    let agreement = ctx.shared.agreement();
    if valid.kind != Kind::Alert {
        // The commit thread knows the alert's life: it routes the follow-up.
        return commit_post(ctx, valid, Route::FollowUp(agreement), idempotency_key, now).await;
    }
    let disclosures = match policy::route_alert(&agreement, ctx.unit(), valid.category, &valid.to) {
        Ok(d) => d,
        Err(refusal) => {
            let message = format!("{}: {refusal}", ctx.principal);
            ctx.shared
                .audit(refuse(
                    refusal.reason(),
                    message.clone(),
                    refusal.recipient().map(str::to_owned),
                ))
                .await?;
            return Err(RelayError::new(refusal.code(), message));
        }
    };
    commit_post(ctx, valid, Route::New(disclosures), idempotency_key, now).await
}

async fn commit_post(
    ctx: &ConnCtx,
    draft: AlertDraft,
    route: Route,
    idempotency_key: [u8; 16],
    received_at: filet_proto::Timestamp,
) -> Result<Response, RelayError> {
    let started = std::time::Instant::now();
    let (tx, rx) = oneshot::channel();
    ctx.shared
        .op(Op::Post {
            principal: ctx.principal.clone(),
            draft,
            route,
            idempotency_key,
            received_at,
            reply: tx,
        })
        .await?;
    let receipt = rx
        .await
        .map_err(|_| RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later"))??;
    ctx.shared
        .metrics
        .post_receipt
        .observe(started.elapsed().as_secs_f64());
    Ok(Response::Receipt(receipt))
}

/// One page of the unit's mailbox: at most [`MAX_INBOX_PAGE`] alerts and at most
/// [`PAGE_BUDGET`] bytes of them (`more` says that others wait). A page holds at least
/// one alert: the thread limits (commit.rs) keep every alert within a frame.
async fn inbox(
    ctx: &ConnCtx,
    after_seq: u64,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    let pending = ctx
        .shared
        .hub
        .pending_after(ctx.unit(), after_seq, MAX_INBOX_PAGE + 1);
    let mut more = pending.len() > MAX_INBOX_PAGE;
    let mut alerts = Vec::new();
    let mut used = 0usize;
    for p in pending.into_iter().take(MAX_INBOX_PAGE) {
        let (seq, rec) = (p.seq, p.rec);
        let id = rec.envelope.id;
        let Some((d, basis)) = disclose(ctx, &rec, seq).await else {
            continue;
        };
        let size = codec::encode_value(&d).map_or(usize::MAX, |v| v.len());
        if used.saturating_add(size) > PAGE_BUDGET {
            if alerts.is_empty() {
                return Err(RelayError::new(
                    ErrorCode::Internal,
                    format!("alert {id} at mailbox position {seq} of {} does not fit in a frame; it cannot be delivered", ctx.unit()),
                ));
            }
            more = true;
            break;
        }
        used += size;
        sent.push(Sent {
            alert: id,
            sender: d.envelope.sender.clone(),
            fields: d.fields,
            basis,
            live: Some(p.live),
        });
        alerts.push(d);
    }
    Ok(Response::Inbox { alerts, more })
}

async fn audit_scope(ctx: &ConnCtx, request: AuditRequest) -> Result<AuditScope, RelayError> {
    match policy::audit_scope(&ctx.shared.agreement(), &ctx.principal, request) {
        Ok(s) => Ok(s),
        Err(denied) => {
            let detail = denied.to_string();
            ctx.shared
                .audit_refusal(
                    Refused::Principal(ctx.principal.to_string()),
                    Some(ctx.principal.to_string()),
                    RefusalReason::AuditDenied,
                    detail.clone(),
                    true,
                )
                .await?;
            Err(RelayError::new(ErrorCode::AuditDenied, detail))
        }
    }
}

async fn audit_entries(
    ctx: &ConnCtx,
    start: u64,
    end: u64,
    tree_size: u64,
    proofs: bool,
) -> Result<Response, RelayError> {
    let scope = audit_scope(ctx, AuditRequest::Entries).await?;
    let audit = &ctx.shared.audit;
    let size = audit.size();
    if tree_size > size || end > tree_size || start > end {
        return Err(RelayError::new(
            ErrorCode::BadRequest,
            format!("entries {start}..{end} of a tree of {tree_size} are out of range (the log has {size})"),
        ));
    }
    let proofs = proofs || scope.proofs_required();
    let stop = end.min(start.saturating_add(MAX_ENTRIES_PER_PAGE));
    let mut used = 0usize;
    let mut entries = Vec::new();
    let mut next = start;
    while next < stop {
        let bytes = audit
            .entry(next)
            .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?;
        if scope != AuditScope::Full {
            let visible = Entry::from_bytes(&bytes).is_ok_and(|e| scope.admits(&e.event));
            if !visible {
                next += 1;
                continue;
            }
        }
        let proof = if proofs {
            audit
                .inclusion_proof(next, tree_size)
                .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        } else {
            Vec::new()
        };
        let item = EntryWithProof {
            index: next,
            entry: bytes,
            proof,
        };
        let cost = codec::encode_value(&item).map_or(usize::MAX, |v| v.len());
        if used.saturating_add(cost) > PAGE_BUDGET {
            if entries.is_empty() {
                return Err(RelayError::new(
                    ErrorCode::Internal,
                    format!("audit entry {next} with its proof does not fit in a frame"),
                ));
            }
            break;
        }
        used += cost;
        entries.push(item);
        next += 1;
    }
    Ok(Response::Entries { entries, next })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::commit::{MAX_HISTORY_BYTES, MAX_RECORD_BYTES};
    use crate::store::RecipientRecord;
    use filet_proto::alert::{AlertFile, AlertState, HistoryItem, MAX_NOTE};
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
        let mut draft = AlertFile::from_toml(crate::demo::RUNAWAY)
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
