//! A node's connection to the relay: mutual-TLS QUIC, one long-lived bidirectional stream,
//! pipelined requests, pushed deliveries.
//!
//! ```no_run
//! # async fn f() -> Result<(), filet_client::ClientError> {
//! use filet_client::{Node, NodeConfig};
//! let cfg = NodeConfig::from_profile_file("PKI/profiles/SPVQ-ESM.toml".as_ref())?;
//! let node = Node::connect(&cfg).await?;
//! println!("{}", node.whoami().await?.principal);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filet_proto::alert::{AlertDraft, Disclosed};
use filet_proto::codec;
use filet_proto::profile::Profile;
use filet_proto::wire::{
    ClientFrame, EntryWithProof, Receipt, RelayError, Request, Response, ServerFrame, WhoAmI, ALPN,
};
use filet_proto::AlertId;
use quinn::crypto::rustls::QuicClientConfig;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::transport::{describe_connection_error, provider, read_frame, ReadFrameError};

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting (QUIC + TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval, so that NATs and the relay's idle timeout do not drop a quiet node.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Idle timeout of the connection: a relay that vanished (crash, network) is noticed
/// within this time (QUIC uses the smaller of the two sides' timeouts).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Time a started frame may take to arrive.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries buffered for the application before the node stops reading the stream.
pub const DELIVERY_BUFFER: usize = 1024;

/// Errors of a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file of the profile could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The node profile cannot be read or is not valid.
    #[error("profile {path}: {message}")]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The relay address could not be resolved or bound.
    #[error("relay address {addr}: {message}")]
    Address {
        /// As given.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// TLS settings could not be built (bad key, bad certificate).
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The connection failed or was closed; the message says why (TLS alert, relay close
    /// reason).
    #[error("{0}")]
    Connection(String),
    /// The relay refused or failed the request.
    #[error("{0}")]
    Relay(RelayError),
    /// The relay sent something this node does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("no answer from the relay within {0:?}")]
    Timeout(Duration),
}

impl ClientError {
    /// The relay's refusal, if that is what this is.
    pub fn relay_error(&self) -> Option<&RelayError> {
        match self {
            ClientError::Relay(e) => Some(e),
            _ => None,
        }
    }
}

/// What a node needs to connect: the relay's address and name, the CA, its certificate.
#[derive(Debug)]
pub struct NodeConfig {
    /// `host:port` of the relay.
    pub relay: String,
    /// Name the relay's certificate must carry.
    pub server_name: String,
    /// The agreement's CA certificates.
    pub ca: Vec<CertificateDer<'static>>,
    /// This node's certificate chain.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl NodeConfig {
    /// Loads the CA, certificate and key a profile names.
    ///
    /// # Errors
    /// [`ClientError::File`] naming the file that is missing or unreadable.
    pub fn from_profile(p: &Profile) -> Result<Self, ClientError> {
        let file_err = |path: &Path, e: &dyn std::fmt::Display| ClientError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let ca = filet_certs::load_certs(&p.ca).map_err(|e| file_err(&p.ca, &e))?;
        let cert_chain = filet_certs::load_certs(&p.cert).map_err(|e| file_err(&p.cert, &e))?;
        let key = filet_certs::load_key(&p.key).map_err(|e| file_err(&p.key, &e))?;
        Ok(NodeConfig {
            relay: p.relay.clone(),
            server_name: p.server_name.clone(),
            ca,
            cert_chain,
            key,
        })
    }

    /// Reads a profile file and loads what it names.
    ///
    /// # Errors
    /// [`ClientError::Profile`] for the profile, [`ClientError::File`] for a file it names.
    pub fn from_profile_file(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClientError::Profile {
            path: path.to_owned(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => "not found".to_owned(),
                _ => e.to_string(),
            },
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let p = Profile::parse(&text, base).map_err(|e| ClientError::Profile {
            path: path.to_owned(),
            message: e,
        })?;
        Self::from_profile(&p)
    }

    fn quinn_config(&self) -> Result<quinn::ClientConfig, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| ClientError::Tls(format!("CA certificate: {e}")))?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => ClientError::Tls(
                    "the node's private key does not belong to its certificate: check `cert` and `key` in the profile (a key of another node?)".into(),
                ),
                e => ClientError::Tls(format!("node certificate or key: {e}")),
            })?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        // No session resumption: every connection presents and checks certificates.
        tls.resumption = rustls::client::Resumption::disabled();
        tls.enable_early_data = false;
        let qc = QuicClientConfig::try_from(tls).map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(qc));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
                .map_err(|e| ClientError::Tls(e.to_string()))?,
        ));
        cfg.transport_config(Arc::new(transport));
        Ok(cfg)
    }
}

/// Requests waiting for their answer; `None` once the connection's reader has ended (a
/// request sent then fails at once with the reason instead of waiting for a timeout).
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Response, RelayError>>>>>>;

/// A connected node.
pub struct Node {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    out: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    closed_reason: Arc<Mutex<Option<String>>>,
    /// Turns true once the reader has recorded why the connection ended.
    reader_done: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    rng: SystemRandom,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"bye");
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    let mut it = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ClientError::Address {
            addr: addr.to_owned(),
            message: e.to_string(),
        })?;
    it.next().ok_or_else(|| ClientError::Address {
        addr: addr.to_owned(),
        message: "resolves to no address".into(),
    })
}

impl Node {
    /// Connects to the relay and opens the node's stream.
    ///
    /// # Errors
    /// [`ClientError::Address`], [`ClientError::Tls`], [`ClientError::Connection`] with the
    /// reason (e.g. the relay's certificate is for another name or from another CA).
    pub async fn connect(cfg: &NodeConfig) -> Result<Node, ClientError> {
        let addr = resolve(&cfg.relay).await?;
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
                .parse()
                .map_err(|_| ClientError::Tls("bind".into()))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| ClientError::Tls("bind".into()))?
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| ClientError::Address {
            addr: bind.to_string(),
            message: e.to_string(),
        })?;
        endpoint.set_default_client_config(cfg.quinn_config()?);
        let connecting = endpoint
            .connect(addr, &cfg.server_name)
            .map_err(|e| ClientError::Connection(format!("cannot connect to {addr}: {e}")))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| ClientError::Connection(format!("{addr}: no answer within {CONNECT_TIMEOUT:?}; is the relay running and reachable?")))?
            .map_err(|e| {
                ClientError::Connection(format!("{addr}: {}", describe_connection_error(&e)))
            })?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Connection(describe_connection_error(&e)))?;
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let closed_reason: Arc<Mutex<Option<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            while let Some(buf) = out_rx.recv().await {
                if send.write_all(&buf).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
        });
        let reader_done = tokio::sync::watch::Sender::new(false);
        tasks.spawn(reader(
            recv,
            conn.clone(),
            pending.clone(),
            closed_reason.clone(),
            reader_done.clone(),
        ));
        Ok(Node {
            endpoint,
            conn,
            out,
            pending,
            next_id: AtomicU64::new(1),
            closed_reason,
            reader_done,
            tasks: Mutex::new(tasks),
            rng: SystemRandom::new(),
        })
    }

    fn closed(&self) -> ClientError {
        let reason = self
            .closed_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .or_else(|| {
                self.conn
                    .close_reason()
                    .map(|e| describe_connection_error(&e))
            })
            .unwrap_or_else(|| "the connection to the relay is closed".into());
        ClientError::Connection(reason)
    }

    /// Sends one request and waits for its answer (requests may run concurrently on one
    /// node: they are pipelined on the stream).
    ///
    /// # Errors
    /// [`ClientError::Relay`] for a refusal, [`ClientError::Connection`] if the
    /// connection fails, [`ClientError::Timeout`] after [`REQUEST_TIMEOUT`].
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = codec::encode_frame(&ClientFrame { id, request })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let open = match self.pending.lock() {
            Ok(mut p) => match p.as_mut() {
                Some(m) => {
                    m.insert(id, tx);
                    true
                }
                None => false,
            },
            Err(_) => false,
        };
        if !open {
            return Err(self.closed());
        }
        if self.out.send(frame).await.is_err() {
            // The stream is gone; the reader is about to record why: give it a moment.
            let mut done = self.reader_done.subscribe();
            if !*done.borrow_and_update() {
                let _ = tokio::time::timeout(Duration::from_secs(2), done.changed()).await;
            }
            return Err(self.closed());
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Err(_) => {
                if let Ok(mut p) = self.pending.lock() {
                    if let Some(m) = p.as_mut() {
                        m.remove(&id);
                    }
                }
                Err(ClientError::Timeout(REQUEST_TIMEOUT))
            }
            Ok(Err(_)) => Err(self.closed()),
            Ok(Ok(Err(e))) => Err(ClientError::Relay(e)),
            Ok(Ok(Ok(r))) => Ok(r),
        }
    }

    /// Who this node is, per the relay.
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        match self.request(Request::WhoAmI).await? {
            Response::WhoAmI(w) => Ok(w),
            other => Err(unexpected(&other)),
        }
    }

    /// Posts an alert with a fresh idempotency key; returns the durable receipt.
    ///
    /// # Errors
    /// As [`Node::request`]; refusals carry [`RelayError`] (invalid alert with each field,
    /// not permitted with the recipient).
    pub async fn post(&self, draft: AlertDraft) -> Result<Receipt, ClientError> {
        let mut key = [0u8; 16];
        self.rng
            .fill(&mut key)
            .map_err(|_| ClientError::Tls("system random source failed".into()))?;
        self.post_with_key(draft, key).await
    }

    /// Posts with a given idempotency key: posting again with the same key (after a lost
    /// answer) returns the first receipt, marked `duplicate`.
    ///
    /// # Errors
    /// As [`Node::post`].
    pub async fn post_with_key(
        &self,
        draft: AlertDraft,
        idempotency_key: [u8; 16],
    ) -> Result<Receipt, ClientError> {
        match self
            .request(Request::Post {
                draft,
                idempotency_key,
            })
            .await?
        {
            Response::Receipt(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Everything waiting in this unit's mailbox, oldest first (all pages).
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn inbox(&self) -> Result<Vec<Disclosed>, ClientError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            match self.request(Request::Inbox { after_seq: after }).await? {
                Response::Inbox { alerts, more } => {
                    after = alerts.last().map(|d| d.seq).unwrap_or(after);
                    let empty = alerts.is_empty();
                    all.extend(alerts);
                    if !more || empty {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Asks the relay to push this unit's alerts; returns the channel they arrive on
    /// (waiting ones first). At least once: the same id may arrive again after a
    /// reconnection. Deliveries come on their own QUIC stream, so an application that
    /// sends requests (acks) while it reads deliveries never blocks its own answers: when
    /// it stops reading, only the delivery stream waits (QUIC flow control tells the relay).
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn subscribe(&self) -> Result<mpsc::Receiver<Disclosed>, ClientError> {
        let (mut send, mut recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Connection(describe_connection_error(&e)))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = codec::encode_frame(&ClientFrame {
            id,
            request: Request::Subscribe,
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        send.write_all(&frame)
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let first = tokio::time::timeout(
            REQUEST_TIMEOUT,
            read_frame::<ServerFrame>(&mut recv, FRAME_TIMEOUT),
        )
        .await
        .map_err(|_| ClientError::Timeout(REQUEST_TIMEOUT))?;
        match first {
            Ok(Some(ServerFrame::Response {
                result: Ok(Response::Subscribed),
                ..
            })) => {}
            Ok(Some(ServerFrame::Response { result: Err(e), .. })) => {
                return Err(ClientError::Relay(e))
            }
            Ok(Some(other)) => {
                return Err(ClientError::Protocol(format!(
                    "unexpected answer {other:?}"
                )))
            }
            Ok(None) | Err(ReadFrameError::Stream(_)) => return Err(self.closed()),
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        let reason = self.closed_reason.clone();
        if let Ok(mut t) = self.tasks.lock() {
            t.spawn(async move {
                // Keep the send side open: finishing it would end the subscription.
                let _send = send;
                loop {
                    match read_frame::<ServerFrame>(&mut recv, FRAME_TIMEOUT).await {
                        Ok(Some(ServerFrame::Delivery(d))) => {
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                        Ok(Some(ServerFrame::Closing { reason: r })) => {
                            if let Ok(mut x) = reason.lock() {
                                x.get_or_insert(format!("the relay is closing: {r}"));
                            }
                            return;
                        }
                        Ok(Some(ServerFrame::Response { .. })) => {}
                        Ok(None) | Err(_) => return,
                    }
                }
            });
        }
        Ok(rx)
    }

    /// Acknowledges an alert for this unit; returns the audit index of the
    /// acknowledgement.
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn ack(&self, alert: AlertId) -> Result<u64, ClientError> {
        match self.request(Request::Ack { alert }).await? {
            Response::Acked { audit_index, .. } => Ok(audit_index),
            other => Err(unexpected(&other)),
        }
    }

    /// One alert: for the sender's party the whole alert and its recipient units; for a
    /// recipient unit what it may see (a delivery, audited).
    ///
    /// # Errors
    /// As [`Node::request`]; `UnknownAlert` when this unit may not see it.
    pub async fn get_alert(
        &self,
        alert: AlertId,
    ) -> Result<(Disclosed, Vec<filet_proto::UnitRef>), ClientError> {
        match self.request(Request::GetAlert { alert }).await? {
            Response::Alert { alert, recipients } => Ok((alert, recipients)),
            other => Err(unexpected(&other)),
        }
    }

    /// Where an alert of this node's party stands with each recipient unit: rules, legal
    /// bases, fields, and who acknowledged and when.
    ///
    /// # Errors
    /// As [`Node::request`]; `UnknownAlert` for an alert of another party.
    pub async fn status(
        &self,
        alert: AlertId,
    ) -> Result<Vec<filet_proto::wire::RecipientStatus>, ClientError> {
        match self.request(Request::Status { alert }).await? {
            Response::Status { recipients, .. } => Ok(recipients),
            other => Err(unexpected(&other)),
        }
    }

    /// The newest signed checkpoint (note text).
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn checkpoint(&self) -> Result<String, ClientError> {
        match self.request(Request::AuditCheckpoint).await? {
            Response::Checkpoint(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of audit entries; see [`Request::AuditEntries`]. Returns the entries and
    /// the index to continue from.
    ///
    /// # Errors
    /// As [`Node::request`]; [`filet_proto::wire::ErrorCode::AuditDenied`] without audit
    /// rights.
    pub async fn audit_entries(
        &self,
        start: u64,
        end: u64,
        tree_size: u64,
        proofs: bool,
    ) -> Result<(Vec<EntryWithProof>, u64), ClientError> {
        match self
            .request(Request::AuditEntries {
                start,
                end,
                tree_size,
                proofs,
            })
            .await?
        {
            Response::Entries { entries, next } => Ok((entries, next)),
            other => Err(unexpected(&other)),
        }
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size`.
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<[u8; 32]>, ClientError> {
        match self
            .request(Request::AuditInclusion { index, tree_size })
            .await?
        {
            Response::Proof(p) => Ok(p),
            other => Err(unexpected(&other)),
        }
    }

    /// Consistency proof between two tree sizes.
    ///
    /// # Errors
    /// As [`Node::request`].
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<[u8; 32]>, ClientError> {
        match self
            .request(Request::AuditConsistency { old_size, new_size })
            .await?
        {
            Response::Proof(p) => Ok(p),
            other => Err(unexpected(&other)),
        }
    }

    /// A handle that can close this node's connection cleanly later, even after the node
    /// itself is gone (a command that fails must still tell the relay it is leaving, or
    /// the relay keeps the connection until its idle timeout).
    pub fn closer(&self) -> Closer {
        Closer {
            conn: self.conn.clone(),
            endpoint: self.endpoint.clone(),
        }
    }

    /// Why the connection ended, once it has (the relay's close reason, a TLS alert...).
    pub fn close_reason(&self) -> Option<String> {
        self.conn
            .close_reason()
            .map(|e| describe_connection_error(&e))
    }

    /// Waits until the connection is closed (by either side); returns why.
    pub async fn closed_reason(&self) -> String {
        describe_connection_error(&self.conn.closed().await)
    }

    /// Closes the connection cleanly and waits for the relay to learn of it (bounded).
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

/// Closes a node's connection cleanly; see [`Node::closer`].
pub struct Closer {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
}

impl Closer {
    /// Sends the close and waits (at most 2 s) until the relay has it.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

fn unexpected(r: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {r:?}"))
}

async fn reader(
    mut recv: quinn::RecvStream,
    conn: quinn::Connection,
    pending: Pending,
    closed_reason: Arc<Mutex<Option<String>>>,
    reader_done: tokio::sync::watch::Sender<bool>,
) {
    let reason = loop {
        match read_frame::<ServerFrame>(&mut recv, FRAME_TIMEOUT).await {
            Ok(Some(ServerFrame::Response { id, result })) => {
                let tx = pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.as_mut().and_then(|m| m.remove(&id)));
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            Ok(Some(ServerFrame::Delivery(_))) => {
                // Deliveries come on the subscription's own stream, not this one.
            }
            Ok(Some(ServerFrame::Closing { reason })) => {
                break format!("the relay is closing: {reason}");
            }
            Ok(None) => break "the relay ended the stream".to_owned(),
            Err(ReadFrameError::Stream(quinn::ReadError::ConnectionLost(e))) => {
                break describe_connection_error(&e);
            }
            Err(e) => {
                conn.close(0x20u32.into(), b"protocol error");
                break format!("protocol error from the relay: {e}");
            }
        }
    };
    if let Ok(mut r) = closed_reason.lock() {
        *r = Some(reason);
    }
    // Dropping the senders fails every waiting request with the reason above; later
    // requests see `None` and fail at once.
    if let Ok(mut p) = pending.lock() {
        *p = None;
    }
    reader_done.send_replace(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_profile_is_named_as_the_profile() {
        let e = NodeConfig::from_profile_file(Path::new("no-such-profile.toml")).unwrap_err();
        assert_eq!(e.to_string(), "profile no-such-profile.toml: not found");
    }
}
