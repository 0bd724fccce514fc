//! Starting and running the relay: [`Relay::start`] opens the data directory (lock,
//! permissions, keys), recovers the store and the audit log after a crash, checks the log
//! against the last signed checkpoint, logs `relay_started`, `agreement_loaded` and the
//! CRL, starts the commit thread and binds the endpoint; [`Relay::run`] serves with its
//! timers, reloads, control socket and metrics until shutdown, then drains and stops the
//! commit thread. [`RelayHandle`]: a weak handle for tests and tools.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use filet_proto::audit::{hex, Event};
use filet_proto::checkpoint::{open_checkpoint, NoteVerifier};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{info, warn};

use crate::audit_log::AuditLog;
use crate::clock::Clock;
use crate::commit::{CommitConfig, CommitError, CommitStats, Committer, Op};
use crate::config::{self, RelayConfig};
use crate::datadir::{self, Keys};
use crate::error::{load_agreement, RelayError};
use crate::identity::{self, IdentityError, Pki};
use crate::mailboxes::Mailboxes;
use crate::ratelimit::{self, RateLimiter};
use crate::state::{self, Registry, Shared, Stopped};
use crate::store::{Store, StoreMark};
use crate::{control, crl, metrics, recovery, server, storage};

fn data_err(path: &std::path::Path, e: impl std::fmt::Display) -> RelayError {
    RelayError::Data {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// A weak handle on a running relay.
#[derive(Clone)]
pub struct RelayHandle {
    ops: mpsc::WeakSender<Op>,
    control: mpsc::Sender<control::Control>,
}

impl RelayHandle {
    /// Runs the timers now (expiry, retention purge) and waits until what they did is
    /// durable; returns the audit log size. Tests move a [`crate::clock::ManualClock`] and call
    /// this instead of sleeping.
    ///
    /// # Errors
    /// [`Stopped`] if the relay is stopping.
    pub async fn run_timers(&self) -> Result<u64, Stopped> {
        let ops = self.ops.upgrade().ok_or(Stopped)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        ops.send(Op::Tick { reply: Some(tx) })
            .await
            .map_err(|_| Stopped)?;
        drop(ops);
        rx.await.map_err(|_| Stopped)?.map_err(|_| Stopped)
    }

    /// Reloads the agreement and the CRL, as SIGHUP and `filet-relay reload` do; returns
    /// what was done, or why nothing was.
    ///
    /// # Errors
    /// The reason the reload was refused (file, line, rule), or that the relay stopped.
    pub async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control
            .send(control::Control::Reload(tx))
            .await
            .map_err(|_| "the relay is stopping".to_owned())?;
        rx.await.map_err(|_| "the relay is stopping".to_owned())?
    }
}

/// A started relay: storage open and recovered, endpoint bound, commit thread running.
pub struct Relay {
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    committer: Option<std::thread::JoinHandle<Result<(), CommitError>>>,
    committer_died: Option<tokio::sync::oneshot::Receiver<()>>,
    control_tx: mpsc::Sender<control::Control>,
    control_rx: Option<mpsc::Receiver<control::Control>>,
    metrics_listener: Option<std::net::TcpListener>,
    cfg: RelayConfig,
    verifier_key: String,
    stats: Arc<CommitStats>,
    /// Held until the commit thread has stopped (dropped last, at the end of `run`).
    _lock: datadir::DataDirLock,
}

impl Relay {
    /// Opens the data directory (recovering after a crash), loads the agreement and PKI,
    /// logs `relay_started` and `agreement_loaded`, and binds the endpoint. Must run inside
    /// a tokio runtime.
    ///
    /// # Errors
    /// [`RelayError`] naming the file or setting at fault.
    pub async fn start(cfg: RelayConfig, clock: Arc<dyn Clock>) -> Result<Relay, RelayError> {
        // `RelayConfig::load` checked a file already; a configuration built in code is
        // checked here, so that no setting can reach a runtime limit and panic.
        config::check_settings(&cfg.limits, &cfg.commit, &cfg.audit).map_err(RelayError::Config)?;
        let agreement = load_agreement(&cfg.agreement)?;
        let pki = Pki::load(&cfg.pki)?;
        // A relay certificate out of its dates serves nobody: say so at start, not in
        // every node's handshake.
        if let Some(leaf) = pki.cert_chain.first() {
            if let Ok(info) = filet_certs::describe(leaf.as_ref()) {
                let now = time::OffsetDateTime::now_utc();
                if now > info.not_after || now < info.not_before {
                    return Err(RelayError::Identity(IdentityError::Load(format!(
                        "{}: the relay certificate is valid from {} to {}, not now: issue a new one (filet-certs relay --force) and restart",
                        cfg.pki.cert.display(),
                        info.not_before,
                        info.not_after
                    ))));
                }
                let days_left = (info.not_after - now).whole_days();
                if days_left < 30 {
                    warn!(
                        "{}: the relay certificate expires in {days_left} days ({}); renew it",
                        cfg.pki.cert.display(),
                        info.not_after
                    );
                }
            }
        }
        let server_config = identity::server_config(&pki, &cfg.limits)?;
        // One relay per data directory, and nothing in it opened before the lock is held:
        // a second relay stops here having changed no file.
        let lock = datadir::DataDirLock::acquire(&cfg.data_dir)?;
        // Readable by the relay's user only: directories 0700, files 0600.
        let opened = datadir::tighten(&cfg.data_dir)?;
        if let Some(first) = opened.paths.first() {
            warn!(
                "data directory {}: {} files or directories were open to other users (the first: {}); they are now 0600 (files) and 0700 (directories)",
                cfg.data_dir.display(),
                opened.paths.len(),
                first.display()
            );
        }
        let keys = Keys::load_or_create(&cfg.data_dir, cfg.audit.origin.as_deref(), &agreement.id)?;
        let verifier_key = keys.signer.verifier_key();

        let (log, rec) = AuditLog::open(&cfg.data_dir.join("audit"))?;
        // Never back to an older CRL, across restarts too: compared with the CRL the log
        // last recorded in force.
        if let Some(before) = crl::last_in_log(&log.reader(), &cfg.pki.crl)
            .map_err(|e| RelayError::Identity(IdentityError::Load(e)))?
        {
            before.check_successor(&pki.crl).map_err(|e| {
                RelayError::Identity(IdentityError::Load(format!(
                    "{e} (the CRL in force is the one the audit log last records as crl_loaded); the relay does not start"
                )))
            })?;
        }
        if rec.torn_tail_bytes > 0 {
            warn!(
                "audit log: removed an incomplete last record of {} bytes (written, never synced, never acknowledged)",
                rec.torn_tail_bytes
            );
        }
        let store = Store::open(&cfg.data_dir.join("store"))?;
        // sled creates its files with the umask's mode; its directory is 0700 already.
        datadir::tighten(&cfg.data_dir.join("store"))?;
        let (mark, stored_below) = StoreMark::open(&cfg.data_dir.join("store.mark"))?;
        let (_watermark, stored_checkpoint) = store.audit_state()?;
        // The checkpoint last given in answers (kept beside the log), and the older one the
        // store keeps: the log must extend both.
        let answered = rec.answered.as_ref().map(|(_, note)| note.clone());
        let verifier = NoteVerifier::parse(&verifier_key)
            .map_err(|e| RelayError::Checkpoint(e.to_string()))?;
        for (what, note) in [
            (
                "the checkpoint last given in receipts (audit/answered)",
                &answered,
            ),
            ("the checkpoint kept in the alert store", &stored_checkpoint),
        ] {
            let Some(note) = note else { continue };
            let cp = open_checkpoint(note, &verifier).map_err(|e| {
                RelayError::Checkpoint(format!(
                    "{what} does not verify with this relay's audit key: {e}"
                ))
            })?;
            if cp.size > log.size() {
                return Err(RelayError::Checkpoint(format!(
                    "checkpoint of {} entries was published but the log holds {}",
                    cp.size,
                    log.size()
                )));
            }
            let root = log.root(cp.size)?;
            if root != cp.root {
                return Err(RelayError::Checkpoint(format!(
                    "the root of the first {} entries is {} but {what} says {}",
                    cp.size,
                    hex(&root),
                    hex(&cp.root)
                )));
            }
        }
        let checkpoint = answered.or(stored_checkpoint);
        let mailboxes = Arc::new(Mailboxes::default());
        let metrics = Arc::new(metrics::Metrics::new());
        let latest_checkpoint = Arc::new(RwLock::new(checkpoint.unwrap_or_default()));
        let storage = storage::embedded::Embedded::new(
            log,
            store.clone(),
            mark,
            keys.signer,
            keys.origin.clone(),
        );
        let audit = storage.audit_reader();
        let mut committer = Committer::new(
            Box::new(storage),
            &keys.subject_ref,
            mailboxes.clone(),
            latest_checkpoint.clone(),
            clock.clone(),
            CommitConfig::new(
                cfg.commit.max_batch.max(1),
                cfg.limits.mailbox_max,
                cfg.limits.mailbox_max_per_sender,
            ),
            metrics.clone(),
        );
        let recovered = recovery::recover(&mut committer, &rec.facts, stored_below)?;
        if recovered.dropped_records > 0 || !recovered.voided.is_empty() {
            warn!(
                "recovered after an unclean stop: {} store records without durable audit entries removed, {} posts voided",
                recovered.dropped_records,
                recovered.voided.len()
            );
        }
        committer.append(Event::RelayStarted {
            software: format!("filet-relay {}", env!("CARGO_PKG_VERSION")),
            origin: keys.origin.clone(),
        });
        committer.append(Event::AgreementLoaded {
            agreement: agreement.id.clone(),
            version: agreement.version,
            sha256: agreement.sha256_hex(),
        });
        // The CRL in force, logged before any connection is checked against it.
        for event in pki.crl.events() {
            committer.append(event);
        }
        committer.sync()?;
        let stats = committer.stats.clone();
        info!(
            "agreement {} v{} (sha256 {}), {} alerts in store, audit log of {} entries, origin {}",
            agreement.id,
            agreement.version,
            agreement.sha256_hex(),
            recovered.alerts,
            audit.size(),
            keys.origin
        );

        let endpoint = quinn::Endpoint::server(server_config, cfg.listen).map_err(|source| {
            RelayError::Bind {
                what: "listen, the QUIC endpoint for nodes",
                addr: cfg.listen,
                source,
            }
        })?;
        let (ops, rx) = mpsc::channel(cfg.commit.queue.max(1));
        let (died_tx, died_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("filet-commit".into())
            .spawn(move || {
                let r = committer.run(rx);
                if let Err(e) = &r {
                    tracing::error!("the commit thread stopped: {e}; the relay stops (nothing after the last receipt was acknowledged)");
                }
                let _ = died_tx.send(());
                r
            })
            .map_err(|e| data_err(&cfg.data_dir, e))?;
        let shared = Arc::new(Shared {
            agreement: RwLock::new(Arc::new(agreement)),
            mailboxes,
            store,
            audit,
            latest_checkpoint,
            ops,
            clock,
            rate: RateLimiter::new(cfg.limits.posts_per_minute),
            connections: Arc::new(Semaphore::new(cfg.limits.max_connections.max(1))),
            handshakes: ratelimit::HandshakeBudget::new(
                server::MAX_HANDSHAKES,
                server::MAX_HANDSHAKES_PER_PREFIX,
            ),
            registry: Registry::default(),
            refusals: ratelimit::RefusalLimiter::new(ratelimit::REFUSALS_ITEMIZED_PER_MINUTE),
            revoked: RwLock::new(pki.crl.revoked()),
            crl: RwLock::new(Arc::new(pki.crl.clone())),
            crl_alarm: std::sync::Mutex::new(crl::Alarm::default()),
            metrics,
            limits: cfg.limits.clone(),
        });
        shared.check_crl();
        let (control_tx, control_rx) = mpsc::channel(16);
        let metrics_listener = match cfg.metrics.listen {
            Some(addr) => {
                Some(
                    std::net::TcpListener::bind(addr).map_err(|source| RelayError::Bind {
                        what: "metrics.listen, the Prometheus endpoint",
                        addr,
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Relay {
            shared,
            endpoint,
            committer: Some(handle),
            committer_died: Some(died_rx),
            control_tx,
            control_rx: Some(control_rx),
            metrics_listener,
            cfg,
            verifier_key,
            stats,
            _lock: lock,
        })
    }

    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The audit log's verifier key, in the C2SP signed-note verifier key format.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// Group-commit counters.
    pub fn stats(&self) -> Arc<CommitStats> {
        self.stats.clone()
    }

    /// The address of the metrics endpoint, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// A handle for tests and tools: run the timers now. It does not keep the relay alive.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            ops: self.shared.ops.downgrade(),
            control: self.control_tx.clone(),
        }
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests
    /// finish, closes connections, and flushes the store and the audit log.
    ///
    /// # Errors
    /// The commit thread's storage error, if it stopped on one.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RelayError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // Timers (expiry, retention purge) run every second inside the relay.
        let ops = self.shared.ops.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if ops.send(Op::Tick { reply: None }).await.is_err() {
                    return;
                }
            }
        });
        // Refusals counted but not itemized are logged once their window ends.
        let flush_shared = self.shared.clone();
        let flusher = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                state::flush_suppressed(&flush_shared, false).await;
            }
        });
        // Reloads: from the handle, the control socket, and SIGHUP.
        let mut control_rx = self.control_rx.take();
        let (shared, endpoint, cfg) =
            (self.shared.clone(), self.endpoint.clone(), self.cfg.clone());
        let controller = tokio::spawn(async move {
            let Some(rx) = control_rx.as_mut() else {
                return;
            };
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                let hup_recv = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    req = rx.recv() => match req {
                        Some(control::Control::Reload(reply)) => {
                            // Refusals are logged in `control::reload`, as for SIGHUP.
                            let r = control::reload(&shared, &endpoint, &cfg).await;
                            let _ = reply.send(r);
                        }
                        None => return,
                    },
                    _ = hup_recv => {
                        info!("SIGHUP: reloading the agreement and the CRL");
                        // No one to answer: the log (written by `control::reload`) says
                        // what happened.
                        let _ = control::reload(&shared, &endpoint, &cfg).await;
                    }
                }
            }
        });
        let socket = tokio::spawn(control::serve_socket(
            control::socket_path(&self.cfg.data_dir),
            self.control_tx.clone(),
        ));
        // The CRL's freshness: a warning a day before its nextUpdate, an error every hour
        // once past it (`crl`); the relay keeps serving.
        let crl_shared = self.shared.clone();
        let crl_watch = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                crl_shared.check_crl();
            }
        });
        let metrics_task = match self.metrics_listener.take() {
            Some(l) => {
                let shared = self.shared.clone();
                tokio::spawn(metrics::serve(l, move || shared.render_metrics()))
            }
            None => tokio::spawn(async {}),
        };
        let serve = server::serve(self.shared.clone(), self.endpoint.clone(), stop_rx);
        tokio::pin!(serve);
        let died = self.committer_died.take();
        let died = async move {
            match died {
                Some(d) => {
                    let _ = d.await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = &mut serve => {}
            _ = shutdown => {
                let _ = stop_tx.send(true);
                serve.await;
            }
            _ = died => {
                // A storage error: stop serving at once; the error is returned below.
                let _ = stop_tx.send(true);
                serve.await;
            }
        }
        for t in [ticker, flusher, controller, socket, metrics_task, crl_watch] {
            t.abort();
            let _ = t.await;
        }
        let _ = std::fs::remove_file(control::socket_path(&self.cfg.data_dir));
        self.endpoint.wait_idle().await;
        // Nothing counted goes unlogged.
        state::flush_suppressed(&self.shared, true).await;
        // Every sender of the op channel is in `shared`: dropping the last one ends the
        // commit thread after it has committed what was queued.
        let handle = self.committer.take();
        drop(self.shared);
        if let Some(h) = handle {
            match tokio::task::spawn_blocking(move || h.join()).await {
                Ok(Ok(r)) => r?,
                _ => warn!("the commit thread panicked"),
            }
        }
        // Files sled wrote while closing.
        datadir::tighten(&self.cfg.data_dir.join("store"))?;
        info!("stopped");
        Ok(())
    }
}
