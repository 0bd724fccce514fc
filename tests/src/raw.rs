//! QUIC connections built by hand, for what [`filet_client::Node`] will not do: connect with
//! a certificate of another CA or none at all, and write arbitrary bytes on a stream.
//!
//! The TLS settings mirror the node's (rustls with *ring*, TLS 1.3, ALPN `filet/1`, no
//! resumption); only the client authentication varies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use filet_client::transport::{describe_connection_error, provider};
use filet_proto::wire::ALPN;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::WAIT;

/// The client's certificate, or none.
pub enum ClientAuth {
    /// Present this chain and key.
    Cert(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    /// Present no certificate.
    None,
}

/// A QUIC client configuration trusting `ca` for the relay, with `auth`.
///
/// # Panics
/// If rustls refuses the material (a bug in the test).
pub fn client_config(ca: &[CertificateDer<'static>], auth: ClientAuth) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).expect("a CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 with ring")
        .with_root_certificates(roots);
    let mut tls = match auth {
        ClientAuth::Cert(chain, key) => builder
            .with_client_auth_cert(chain, key)
            .expect("a usable client certificate"),
        ClientAuth::None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let qc = QuicClientConfig::try_from(tls).expect("a QUIC-capable TLS configuration");
    let mut cfg = quinn::ClientConfig::new(Arc::new(qc));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(30)).expect("a valid idle timeout"),
    ));
    cfg.transport_config(Arc::new(transport));
    cfg
}

/// The configuration of a node of the dev PKI, as [`filet_client::Node`] would build it.
///
/// # Panics
/// If the profile cannot be loaded.
pub fn node_client_config(net: &crate::TestNet, unit: &str) -> quinn::ClientConfig {
    let n = net.node_config(unit, SocketAddr::from(([127, 0, 0, 1], 0)));
    client_config(&n.ca, ClientAuth::Cert(n.cert_chain, n.key))
}

/// A hand-made connection and the endpoint that owns it.
pub struct RawConn {
    /// Keeps the socket open.
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
}

/// Connects to `relay` as `server_name`. The handshake's own failures come back as the
/// error (the client side of TLS 1.3 may finish before the relay has checked the client's
/// certificate: then the refusal arrives as a close, see [`RawConn::closed_within`]).
///
/// # Panics
/// If the local socket cannot be bound or the connection does not resolve in [`WAIT`].
pub async fn connect(
    cfg: quinn::ClientConfig,
    relay: SocketAddr,
    server_name: &str,
) -> Result<RawConn, quinn::ConnectionError> {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a client endpoint on loopback");
    endpoint.set_default_client_config(cfg);
    let connecting = endpoint
        .connect(relay, server_name)
        .expect("a valid address and name");
    let conn = tokio::time::timeout(WAIT, connecting)
        .await
        .unwrap_or_else(|_| panic!("the handshake did not end within {WAIT:?}"))?;
    Ok(RawConn { endpoint, conn })
}

impl RawConn {
    /// Opens the node's stream and writes `bytes` on it (without finishing it).
    ///
    /// # Errors
    /// The stream's error if the connection is already closed.
    pub async fn send(
        &self,
        bytes: &[u8],
    ) -> Result<(quinn::SendStream, quinn::RecvStream), String> {
        let (mut send, recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| describe_connection_error(&e))?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        Ok((send, recv))
    }

    /// Waits (at most `limit`) until the connection is closed; returns why.
    ///
    /// # Panics
    /// If it is still open after `limit`.
    pub async fn closed_within(&self, limit: Duration) -> quinn::ConnectionError {
        tokio::time::timeout(limit, self.conn.closed())
            .await
            .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"))
    }
}

/// The application close code and reason of `e`.
///
/// # Panics
/// If `e` is not an application close by the peer.
pub fn application_close(e: &quinn::ConnectionError) -> (u64, String) {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => (
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected an application close, got {other:?}"),
    }
}

/// What a [`hold_handshakes`] flood saw.
#[derive(Debug, Default)]
pub struct FloodCounts {
    /// Initial packets sent (first ones and those after a Retry).
    pub initials: std::sync::atomic::AtomicU64,
    /// Retry packets received from the relay (and answered).
    pub retries: std::sync::atomic::AtomicU64,
    /// Other datagrams received (handshake packets, refusals), never answered.
    pub others: std::sync::atomic::AtomicU64,
}

/// Floods `relay` with QUIC handshakes that never finish, from one UDP socket bound to
/// `bind`: `burst` at once, then one more every `every` until `stop`. Each presents a
/// ClientHello (no certificate would ever follow), answers the relay's Retry as a real
/// client does (so it passes address validation), and then ignores everything the relay
/// sends: the relay holds the handshake until its timeout. Built on quinn's own state
/// machine, fed only the Retry packets.
///
/// # Panics
/// If the socket cannot be bound or the client configuration is refused (a bug in the test).
pub async fn hold_handshakes(
    bind: std::net::IpAddr,
    relay: SocketAddr,
    ca: &[CertificateDer<'static>],
    burst: usize,
    every: Duration,
    counts: Arc<FloodCounts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(bind, 0))
        .await
        .expect("a UDP socket for the flood");
    let cfg = client_config(ca, ClientAuth::None);
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    type Conns = std::collections::HashMap<quinn_proto::ConnectionHandle, quinn_proto::Connection>;
    let mut conns = Conns::new();
    let mut out = Vec::new();
    fn send_all(conn: &mut quinn_proto::Connection, out: &mut Vec<u8>) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        loop {
            out.clear();
            match conn.poll_transmit(std::time::Instant::now(), 1, out) {
                Some(t) => datagrams.push(out[..t.size].to_vec()),
                None => return datagrams,
            }
        }
    }
    let open = |endpoint: &mut quinn_proto::Endpoint, conns: &mut Conns, out: &mut Vec<u8>| {
        let (handle, mut conn) = endpoint
            .connect(std::time::Instant::now(), cfg.clone(), relay, "127.0.0.1")
            .expect("a valid client configuration");
        let datagrams = send_all(&mut conn, out);
        conns.insert(handle, conn);
        datagrams
    };
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for _ in 0..burst {
        pending.extend(open(&mut endpoint, &mut conns, &mut out));
    }
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut buf = vec![0u8; 65_536];
    loop {
        for d in pending.drain(..) {
            if socket.send_to(&d, relay).await.is_ok() {
                counts.initials.fetch_add(1, Relaxed);
            }
        }
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = tick.tick() => pending.extend(open(&mut endpoint, &mut conns, &mut out)),
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                // A Retry is a long-header packet of type 3 (RFC 9000 §17.2.5).
                if n == 0 || buf[0] & 0xf0 != 0xf0 {
                    counts.others.fetch_add(1, Relaxed);
                    continue;
                }
                counts.retries.fetch_add(1, Relaxed);
                let data = bytes::BytesMut::from(&buf[..n]);
                let event = endpoint.handle(std::time::Instant::now(), from, None, None, data, &mut out);
                if let Some(quinn_proto::DatagramEvent::ConnectionEvent(handle, event)) = event {
                    if let Some(conn) = conns.get_mut(&handle) {
                        conn.handle_event(event);
                        pending.extend(send_all(conn, &mut out));
                    }
                }
            }
        }
    }
}
