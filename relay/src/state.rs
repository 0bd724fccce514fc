//! The relay's shared state: what every connection task, the control socket and the
//! metrics endpoint read, built once at start ([`crate::start`]) and held in an
//! `Arc<Shared>`.
//!
//! It holds the agreement and the CRL in force (replaced whole on reload), the published
//! mailboxes, the read sides of the store and the audit log, the sender of the commit
//! thread's op queue (the only way to change anything durable), the limits and rate
//! limiters, and the registry of open connections. It imports none of the modules that
//! use it (server, control, metrics), so they do not import each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use filet_proto::agreement::Agreement;
use filet_proto::audit::{Event, RefusalReason};
use filet_proto::wire::{ErrorCode, RelayError};
use filet_proto::Principal;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::debug;

use crate::audit_log::AuditReader;
use crate::clock::Clock;
use crate::commit::Op;
use crate::config::Limits;
use crate::crl::{Alarm, CrlInForce};
use crate::mailboxes::Mailboxes;
use crate::metrics::{Gauges, Metrics};
use crate::ratelimit::{HandshakeBudget, RateLimiter, RefusalLimiter, Refused};
use crate::store::Store;

/// The relay is stopping.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the relay is stopping")]
pub struct Stopped;

/// What every connection task shares.
pub struct Shared {
    /// The current agreement (replaced whole on reload).
    pub agreement: RwLock<Arc<Agreement>>,
    /// Published mailboxes (written by the commit thread, read by deliveries and inboxes).
    pub mailboxes: Arc<Mailboxes>,
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
    pub handshakes: HandshakeBudget,
    /// Open, identified connections (for reloads and metrics).
    pub registry: Registry,
    /// Audited refusals per principal or source network and reason: past the limit,
    /// counted and logged together ([`flush_suppressed`]).
    pub refusals: RefusalLimiter,
    /// Serials (lowercase hex) revoked by the CRL in force; replaced on reload before the
    /// open connections are swept.
    pub revoked: RwLock<std::collections::HashSet<String>>,
    /// The CRL in force (replaced on reload, never by an older one).
    pub crl: RwLock<Arc<CrlInForce>>,
    /// What the log last said of the CRL's freshness.
    pub crl_alarm: Mutex<Alarm>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The CRL in force.
    pub fn crl(&self) -> Arc<CrlInForce> {
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
    pub(crate) async fn op(&self, op: Op) -> Result<(), RelayError> {
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

    /// The metrics' text exposition, with the gauges read from this state now.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(Gauges {
            connected_by_party: self.registry.by_party(),
            mailbox_depths: self.mailboxes.depths(),
            audit_entries: self.audit.size(),
            crl_seconds_left: self.crl().seconds_left(self.clock.now()),
        })
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

/// One open, identified connection.
pub struct ConnEntry {
    /// Who.
    pub principal: Principal,
    /// The certificate's serial, lowercase hex.
    pub serial: String,
    /// The connection, to close it.
    pub conn: quinn::Connection,
}

/// Open connections by QUIC stable id.
#[derive(Default)]
pub struct Registry {
    conns: Mutex<HashMap<usize, ConnEntry>>,
}

impl Registry {
    /// Records an identified connection.
    pub fn add(&self, e: ConnEntry) {
        let id = e.conn.stable_id();
        self.lock().insert(id, e);
    }

    /// Forgets a connection.
    pub fn remove(&self, conn: &quinn::Connection) {
        self.lock().remove(&conn.stable_id());
    }

    /// Open connections of one principal.
    pub fn count(&self, p: &Principal) -> usize {
        self.lock().values().filter(|e| e.principal == *p).count()
    }

    /// Open connections per party.
    pub fn by_party(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for e in self.lock().values() {
            *out.entry(e.principal.party().to_owned()).or_default() += 1;
        }
        out
    }

    /// The open connections, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}
