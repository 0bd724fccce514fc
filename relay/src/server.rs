//! The QUIC endpoint: accepting connections, identifying them, serving their streams,
//! pushing deliveries.
//!
//! Every task is owned: connections in the server's `JoinSet`, streams in their
//! connection's, request handlers and the delivery loop in their stream's. Dropping a set
//! aborts what it holds. Every wait on the network has a bound: the handshake
//! ([`HANDSHAKE_TIMEOUT`]), a started frame (`limits.frame_timeout_secs`), an idle
//! connection (`limits.idle_timeout_secs`, QUIC's idle timeout).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use filet_client::transport::{read_frame, ReadFrameError};
use filet_proto::agreement::{Agreement, AuditScope};
use filet_proto::alert::{Disclosed, Kind};
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::codec::{self, MAX_FRAME_LEN};
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
use crate::ratelimit::RateLimiter;
use crate::store::{AlertRecord, Store};

/// Longest a QUIC + TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one stream's writer.
const OUT_QUEUE: usize = 256;
/// Deliveries sent per wake-up of a delivery loop before looking again.
const DELIVERY_CHUNK: usize = 64;
/// How long a shutting-down connection waits for its in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Open connections (for the connection limit).
    pub connections: Arc<Semaphore>,
    /// Open, identified connections (for reloads and metrics).
    pub registry: crate::control::Registry,
    /// Audit entries for failed handshakes, per source address.
    pub handshake_refusals: crate::ratelimit::PerAddress,
    /// Serials (lowercase hex) revoked by the CRL in force; replaced on reload before the
    /// open connections are swept.
    pub revoked: RwLock<std::collections::HashSet<String>>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
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
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    warn!(remote = %incoming.remote_address(), "connection refused: limit of {} connections reached", shared.limits.max_connections);
                    incoming.refuse();
                    continue;
                };
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                conns.spawn(async move {
                    connection(shared, incoming, shutdown).await;
                    drop(permit);
                });
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

async fn connection(
    shared: Arc<Shared>,
    incoming: quinn::Incoming,
    shutdown: watch::Receiver<bool>,
) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(%remote, "incoming connection failed: {e}");
            return;
        }
    };
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(quinn::ConnectionError::ConnectionClosed(c))) => {
            // The node ended the handshake: it refused this relay (its certificate, name
            // or CA). Not a refusal by the relay, so not audited as one.
            warn!(%remote, "a node ended the TLS handshake: {c} (it refused the relay's certificate?)");
            return;
        }
        Ok(Err(e)) => {
            let mut detail = format!("TLS handshake from {remote} failed: {e}");
            // An unauthenticated peer must not grow the audit log at the rate it can make
            // handshakes: at most a few entries per address and minute; the next entry
            // says how many were not itemized.
            let Some(skipped) = shared
                .handshake_refusals
                .admit(remote.ip(), shared.clock.now())
            else {
                debug!("{detail} (not itemized in the audit log: this address is over its limit)");
                return;
            };
            if skipped > 0 {
                detail.push_str(&format!(
                    " ({skipped} earlier refused handshakes from this address were not itemized)"
                ));
            }
            warn!("{detail}");
            let _ = shared
                .op(Op::Audit {
                    event: Event::Refused {
                        principal: None,
                        reason: RefusalReason::UnknownIdentity,
                        detail,
                        category: None,
                        recipient: None,
                        alert: None,
                    },
                    reply: None,
                })
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
            let _ = shared
                .audit(Event::Refused {
                    principal: match &e {
                        identity::PrincipalError::UnknownParty { principal, .. }
                        | identity::PrincipalError::UnknownUnit { principal, .. } => {
                            Some(principal.to_string())
                        }
                        _ => None,
                    },
                    reason: RefusalReason::UnknownIdentity,
                    detail: detail.clone(),
                    category: None,
                    recipient: None,
                    alert: None,
                })
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
                    "certificate {} of {principal} is revoked (CRL reloaded)",
                    serial_of(&leaf)
                ),
            ),
        };
        shared.registry.remove(&conn);
        warn!(%principal, "closing: {reason}");
        conn.close(code.into(), reason.as_bytes());
        let _ = shared
            .audit(Event::Refused {
                principal: Some(principal.to_string()),
                reason: RefusalReason::UnknownIdentity,
                detail: format!("connection from {remote} refused: {reason}"),
                category: None,
                recipient: None,
                alert: None,
            })
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
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    // The writer ends (and finishes the stream) once every sender is gone: after the
    // handlers' answers and, at shutdown, after the Closing frame.
    let writer = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if send.write_all(&buf).await.is_err() {
                return;
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
                if tx.send(b).await.is_err() {
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
            let result = handle(&ctx2, request).await;
            if let Some(b) = frame(&ServerFrame::Response { id, result }) {
                let _ = tx2.send(b).await;
            }
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
            let _ = tx.send(b).await;
        }
    }
    drop(tx);
    let _ = writer.wait().await;
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
async fn deliveries(
    ctx: Arc<ConnCtx>,
    tx: mpsc::Sender<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
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
        for (seq, rec) in batch {
            cursor = seq;
            let id = rec.envelope.id;
            let Some(d) = disclose(&ctx, &rec, seq).await else {
                continue;
            };
            let fields = d.fields;
            let Some(b) = frame(&ServerFrame::Delivery(d)) else {
                continue;
            };
            if tx.send(b).await.is_err() {
                return;
            }
            let _ = ctx
                .shared
                .op(Op::Delivered {
                    alert: id,
                    sender: rec.envelope.sender.clone(),
                    node: ctx.principal.clone(),
                    fields,
                })
                .await;
        }
    }
}

/// The alert as this connection's unit may see it now, or `None` (gone, expired, or no
/// longer permitted — then withheld and audited).
async fn disclose(ctx: &ConnCtx, rec: &AlertRecord, seq: u64) -> Option<Disclosed> {
    let id = rec.envelope.id;
    let unit = ctx.unit();
    let r = rec.recipients.iter().find(|r| r.unit == *unit)?;
    let content = rec.content.as_ref()?;
    if ctx.shared.clock.now() >= rec.envelope.expires_at {
        return None;
    }
    // A follow-up is permitted under the original sender's rules (see commit.rs), and
    // carries the state and history of its alert: both published by the commit thread
    // when the alert changes; an alert never changed is active with one step.
    let view = ctx.shared.hub.thread(&rec.root());
    let sender_unit = view
        .as_ref()
        .map(|v| &v.sender_unit)
        .unwrap_or(&rec.envelope.sender.unit);
    let agreement = ctx.shared.agreement();
    let Some(now) = agreement.permits(sender_unit, unit, rec.envelope.category) else {
        let reason = format!(
            "no rule of agreement {} v{} permits {} to send {} alerts to {} any more",
            agreement.id, agreement.version, sender_unit, rec.envelope.category, unit
        );
        let _ = ctx
            .shared
            .op(Op::Withheld {
                alert: id,
                sender: rec.envelope.sender.clone(),
                unit: unit.clone(),
                reason,
            })
            .await;
        return None;
    };
    let (state, history) = match view {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    // Never more than was disclosed (and logged) at posting time.
    let fields = r.fields.intersection(now.fields);
    Some(Disclosed {
        envelope: rec.envelope.clone(),
        content: content.redact(fields),
        note: rec.note.clone(),
        rules: r.rules.clone(),
        fields,
        seq,
        state,
        history,
    })
}

/// `GetAlert`: the sender's own unit sees its whole alert and its recipients; a recipient
/// unit sees what it may (a delivery, logged as such); another unit of the sender's party
/// (which may update, locate or cancel it) sees the envelope, state and history but no
/// content and no recipients; anyone else learns nothing.
async fn get_alert(ctx: &ConnCtx, id: AlertId) -> Result<Response, RelayError> {
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
        .ok_or_else(unknown)?;
    let (state, history) = match ctx.shared.hub.thread(&rec.root()) {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    if rec.envelope.sender.unit == *ctx.unit() {
        let content = rec.content.clone().unwrap_or_default();
        return Ok(Response::Alert {
            alert: Disclosed {
                envelope: rec.envelope.clone(),
                fields: content.present(),
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
    {
        let d = disclose(ctx, &rec, seq).await.ok_or_else(|| {
            RelayError::new(
                ErrorCode::Closed,
                format!(
                    "alert {id} is expired, purged or no longer permitted for {}",
                    ctx.unit()
                ),
            )
        })?;
        ctx.shared
            .op(Op::Delivered {
                alert: id,
                sender: d.envelope.sender.clone(),
                node: ctx.principal.clone(),
                fields: d.fields,
            })
            .await?;
        return Ok(Response::Alert {
            alert: d,
            recipients: Vec::new(),
        });
    }
    if rec.envelope.sender.party() == ctx.principal.party() {
        // The owner party may follow the alert up; it learns nothing of its content here.
        return Ok(Response::Alert {
            alert: Disclosed {
                envelope: rec.envelope.clone(),
                content: filet_proto::Content::default(),
                fields: filet_proto::FieldSet::EMPTY,
                note: None,
                rules: Vec::new(),
                seq: 0,
                state,
                history: history
                    .into_iter()
                    .map(|mut h| {
                        h.note = None;
                        h
                    })
                    .collect(),
            },
            recipients: Vec::new(),
        });
    }
    Err(unknown())
}

async fn handle(ctx: &ConnCtx, request: Request) -> Result<Response, RelayError> {
    match request {
        Request::WhoAmI => Ok(Response::WhoAmI(whoami(ctx))),
        Request::Post {
            draft,
            idempotency_key,
        } => post(ctx, draft, idempotency_key).await,
        Request::Inbox { after_seq } => inbox(ctx, after_seq).await,
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
        Request::GetAlert { alert } => get_alert(ctx, alert).await,
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
            let scope = audit_scope(ctx, "an inclusion proof").await?;
            if let AuditScope::Party(p) = &scope {
                let visible = ctx
                    .shared
                    .audit
                    .entry(index)
                    .ok()
                    .and_then(|b| Entry::from_bytes(&b).ok())
                    .is_some_and(|e| e.event.concerns_party(p));
                if !visible {
                    return Err(RelayError::new(
                        ErrorCode::AuditDenied,
                        format!("audit entry {index} does not concern party {p}"),
                    ));
                }
            }
            let proof = ctx
                .shared
                .audit
                .inclusion_proof(index, tree_size)
                .map_err(|e| RelayError::new(ErrorCode::BadRequest, e.to_string()))?;
            Ok(Response::Proof(proof))
        }
        Request::AuditConsistency { old_size, new_size } => {
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
        .filter(|r| r.envelope.sender.unit.party == ctx.unit().party)
        .ok_or_else(|| {
            RelayError::new(
                ErrorCode::UnknownAlert,
                format!("alert {id} is not an alert of {}'s party", ctx.unit()),
            )
        })?;
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
        may_send_under: a
            .rules
            .iter()
            .filter(|r| r.from.iter().any(|s| s.matches(unit)))
            .map(|r| r.id.clone())
            .collect(),
        may_receive_under: a
            .rules
            .iter()
            .filter(|r| r.to.iter().any(|s| s.matches(unit)))
            .map(|r| r.id.clone())
            .collect(),
        audit_right: match a.audit_scope(unit) {
            Some(AuditScope::Full) => "full".into(),
            Some(AuditScope::Party(_)) => "party".into(),
            None => "none".into(),
        },
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
    let disclosures = match agreement.route(ctx.unit(), valid.category, &valid.to) {
        Ok(d) => d,
        Err(refusal) => {
            let recipient = match &refusal {
                filet_proto::agreement::Refusal::NotPermitted { recipient, .. }
                | filet_proto::agreement::Refusal::UnknownRecipient { recipient, .. } => {
                    Some(recipient.clone())
                }
                filet_proto::agreement::Refusal::NoRecipient { .. } => None,
            };
            let message = format!("{}: {refusal}", ctx.principal);
            ctx.shared
                .audit(refuse(
                    RefusalReason::NotPermitted,
                    message.clone(),
                    recipient,
                ))
                .await?;
            return Err(RelayError::new(ErrorCode::NotPermitted, message));
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

async fn inbox(ctx: &ConnCtx, after_seq: u64) -> Result<Response, RelayError> {
    let pending = ctx
        .shared
        .hub
        .pending_after(ctx.unit(), after_seq, MAX_INBOX_PAGE + 1);
    let more = pending.len() > MAX_INBOX_PAGE;
    let mut alerts = Vec::new();
    for (seq, rec) in pending.into_iter().take(MAX_INBOX_PAGE) {
        let id = rec.envelope.id;
        if let Some(d) = disclose(ctx, &rec, seq).await {
            ctx.shared
                .op(Op::Delivered {
                    alert: id,
                    sender: d.envelope.sender.clone(),
                    node: ctx.principal.clone(),
                    fields: d.fields,
                })
                .await?;
            alerts.push(d);
        }
    }
    Ok(Response::Inbox { alerts, more })
}

async fn audit_scope(ctx: &ConnCtx, what: &str) -> Result<AuditScope, RelayError> {
    match ctx.shared.agreement().audit_scope(ctx.unit()) {
        Some(s) => Ok(s),
        None => {
            let detail = format!(
                "{} asked for {what} but {} has no audit right in the agreement",
                ctx.principal,
                ctx.unit()
            );
            ctx.shared
                .audit(Event::Refused {
                    principal: Some(ctx.principal.to_string()),
                    reason: RefusalReason::AuditDenied,
                    detail: detail.clone(),
                    category: None,
                    recipient: None,
                    alert: None,
                })
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
    let scope = audit_scope(ctx, "audit entries").await?;
    let audit = &ctx.shared.audit;
    let size = audit.size();
    if tree_size > size || end > tree_size || start > end {
        return Err(RelayError::new(
            ErrorCode::BadRequest,
            format!("entries {start}..{end} of a tree of {tree_size} are out of range (the log has {size})"),
        ));
    }
    let party = match &scope {
        AuditScope::Full => None,
        AuditScope::Party(p) => Some(p.clone()),
    };
    let proofs = proofs || party.is_some();
    let stop = end.min(start.saturating_add(MAX_ENTRIES_PER_PAGE));
    // Leave room for the frame's envelope.
    let budget = MAX_FRAME_LEN - 4096;
    let mut used = 0usize;
    let mut entries = Vec::new();
    let mut next = start;
    while next < stop {
        let bytes = audit
            .entry(next)
            .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?;
        if let Some(p) = &party {
            let visible = Entry::from_bytes(&bytes).is_ok_and(|e| e.event.concerns_party(p));
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
        let cost = bytes.len() + proof.len() * 33 + 16;
        if used + cost > budget && !entries.is_empty() {
            break;
        }
        used += cost;
        entries.push(EntryWithProof {
            index: next,
            entry: bytes,
            proof,
        });
        next += 1;
    }
    Ok(Response::Entries { entries, next })
}
