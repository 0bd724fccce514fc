//! Metrics in the Prometheus / OpenMetrics text format (prometheus-client), served over HTTP
//! on a separate listener (`[metrics] listen`, loopback in the `init` template; off when not
//! set). `GET /metrics` answers; anything else is 404. No alert content, principal names
//! only as party codes and unit codes.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `filet_posts_total` | counter | `status`, `kind` | messages accepted (receipt given) |
//! | `filet_disclosures_total` | counter | | `disclosed` audit entries |
//! | `filet_refusals_total` | counter | `reason` | `refused` audit entries, by reason |
//! | `filet_deliveries_total` | counter | | `delivered` audit entries |
//! | `filet_acks_total` | counter | | `acknowledged` audit entries |
//! | `filet_expired_total`, `filet_purged_total` | counter | | alerts expired, contents purged |
//! | `filet_connected_nodes` | gauge | `party` | open, identified connections |
//! | `filet_mailbox_depth` | gauge | `unit` | alerts waiting per unit |
//! | `filet_audit_log_entries` | gauge | | size of the committed audit log |
//! | `filet_post_receipt_seconds` | histogram | | post received → receipt sent |
//! | `filet_commit_flush_seconds` | histogram | | one group commit: audit fsync, checkpoint, store flush + fsync |
//! | `filet_commit_batch_ops` | histogram | | operations per group commit |
//! | `filet_reloads_total` | counter | `result` (`ok`, `refused`) | agreement/CRL reloads |
//! | `filet_handshakes_refused_total` | counter | `limit` (`total`, `network`) | connection attempts refused before their handshake: too many handshakes in progress |
//! | `filet_crl_next_update_seconds` | gauge | | seconds until the CRL's nextUpdate, negative once past |
//! | `filet_crl_stale` | gauge | | 1 when the CRL in force is past its nextUpdate (still used: fail-open), else 0 |

use std::collections::HashMap;
use std::time::Duration;

use filet_proto::audit::Event;
use filet_proto::UnitRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

/// The gauges, read from the relay's state at each scrape (`state::Shared::render_metrics`).
pub struct Gauges {
    /// Open, identified connections per party.
    pub connected_by_party: HashMap<String, usize>,
    /// Alerts waiting per unit.
    pub mailbox_depths: Vec<(UnitRef, usize)>,
    /// Size of the committed audit log.
    pub audit_entries: u64,
    /// Seconds until the CRL's nextUpdate, negative once past.
    pub crl_seconds_left: i64,
}

/// `status` and `kind` of a post.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PostLabels {
    /// actual, exercise, test.
    pub status: String,
    /// alert, update, located, cancel.
    pub kind: String,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The refusal reason.
    pub reason: String,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Party {
    /// The party code.
    pub party: String,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Unit {
    /// `PARTY/UNIT`.
    pub unit: String,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok` or `refused`.
    pub result: String,
}

/// Every metric of the relay.
pub struct Metrics {
    registry: Registry,
    posts: Family<PostLabels, Counter>,
    disclosures: Counter,
    refusals: Family<Reason, Counter>,
    deliveries: Counter,
    acks: Counter,
    expired: Counter,
    purged: Counter,
    connected: Family<Party, Gauge>,
    mailbox: Family<Unit, Gauge>,
    audit_entries: Gauge,
    /// Post → receipt latency, seconds.
    pub post_receipt: Histogram,
    /// Group commit duration, seconds.
    pub flush: Histogram,
    /// Operations per group commit.
    pub batch: Histogram,
    reloads: Family<Outcome, Counter>,
    handshakes_refused: Family<Limit, Counter>,
    crl_next_update: Gauge,
    crl_stale: Gauge,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    /// `total` or `network`.
    pub limit: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("filet");
        let m = Metrics {
            posts: Family::default(),
            disclosures: Counter::default(),
            refusals: Family::default(),
            deliveries: Counter::default(),
            acks: Counter::default(),
            expired: Counter::default(),
            purged: Counter::default(),
            connected: Family::default(),
            mailbox: Family::default(),
            audit_entries: Gauge::default(),
            post_receipt: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            flush: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            reloads: Family::default(),
            handshakes_refused: Family::default(),
            crl_next_update: Gauge::default(),
            crl_stale: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "posts",
            "Messages accepted (receipt given)",
            m.posts.clone(),
        );
        registry.register("disclosures", "Disclosures logged", m.disclosures.clone());
        registry.register("refusals", "Refusals logged, by reason", m.refusals.clone());
        registry.register(
            "deliveries",
            "Deliveries to nodes logged",
            m.deliveries.clone(),
        );
        registry.register("acks", "Acknowledgements logged", m.acks.clone());
        registry.register("expired", "Alerts expired", m.expired.clone());
        registry.register(
            "purged",
            "Alert contents purged at the end of retention",
            m.purged.clone(),
        );
        registry.register(
            "connected_nodes",
            "Open identified connections, by party",
            m.connected.clone(),
        );
        registry.register(
            "mailbox_depth",
            "Alerts waiting, by unit",
            m.mailbox.clone(),
        );
        registry.register(
            "audit_log_entries",
            "Entries in the committed audit log",
            m.audit_entries.clone(),
        );
        registry.register(
            "post_receipt_seconds",
            "Post received to receipt sent",
            m.post_receipt.clone(),
        );
        registry.register(
            "commit_flush_seconds",
            "Duration of one group commit",
            m.flush.clone(),
        );
        registry.register(
            "commit_batch_ops",
            "Operations per group commit",
            m.batch.clone(),
        );
        registry.register(
            "reloads",
            "Agreement and CRL reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "handshakes_refused",
            "Connection attempts refused before their handshake, by limit reached",
            m.handshakes_refused.clone(),
        );
        registry.register(
            "crl_next_update_seconds",
            "Seconds until the nextUpdate of the CRL in force, negative once past",
            m.crl_next_update.clone(),
        );
        registry.register(
            "crl_stale",
            "1 when the CRL in force is past its nextUpdate (it is still used), else 0",
            m.crl_stale.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one appended audit event.
    pub fn event(&self, e: &Event) {
        match e {
            Event::Posted { status, kind, .. } => {
                self.posts
                    .get_or_create(&PostLabels {
                        status: status.to_string(),
                        kind: kind.to_string(),
                    })
                    .inc();
            }
            Event::Disclosed { .. } => {
                self.disclosures.inc();
            }
            Event::Refused { reason, .. } => {
                self.refusals
                    .get_or_create(&Reason {
                        reason: reason.as_str().to_owned(),
                    })
                    .inc();
            }
            Event::Delivered { .. } => {
                self.deliveries.inc();
            }
            Event::Acknowledged { .. } => {
                self.acks.inc();
            }
            Event::Expired { .. } => {
                self.expired.inc();
            }
            Event::Purged { .. } => {
                self.purged.inc();
            }
            _ => {}
        }
    }

    /// Counts a connection attempt refused by the handshake budget.
    pub fn handshake_refused(&self, e: &crate::ratelimit::HandshakeRefusal) {
        let limit = match e {
            crate::ratelimit::HandshakeRefusal::Total(_) => "total",
            crate::ratelimit::HandshakeRefusal::Prefix(..) => "network",
        };
        self.handshakes_refused
            .get_or_create(&Limit {
                limit: limit.into(),
            })
            .inc();
    }

    /// Counts a reload.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&Outcome {
                result: if ok { "ok" } else { "refused" }.into(),
            })
            .inc();
    }

    /// The text exposition, with the gauges read from the relay's state now.
    pub fn render(&self, gauges: Gauges) -> String {
        self.connected.clear();
        for (party, n) in gauges.connected_by_party {
            self.connected.get_or_create(&Party { party }).set(n as i64);
        }
        self.mailbox.clear();
        for (unit, n) in gauges.mailbox_depths {
            self.mailbox
                .get_or_create(&Unit {
                    unit: unit.to_string(),
                })
                .set(n as i64);
        }
        self.audit_entries.set(gauges.audit_entries as i64);
        let left = gauges.crl_seconds_left;
        self.crl_next_update.set(left);
        self.crl_stale.set(i64::from(left <= 0));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            warn!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is aborted, answering with
/// `render()` (the relay passes `Shared::render_metrics`). Each request is read with a
/// bound on size (8 KiB) and time (5 s).
pub async fn serve(listener: std::net::TcpListener, render: impl Fn() -> String) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics listener: {e}; metrics are off");
            return;
        }
    };
    if let Ok(a) = listener.local_addr() {
        info!("metrics on http://{a}/metrics");
    }
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let render = &render;
        let answer = async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while n < buf.len() {
                let Ok(k) = stream.read(&mut buf[n..]).await else {
                    return;
                };
                if k == 0 {
                    break;
                }
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?")
            {
                let body = render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        };
        // Bounded: a slow client is dropped after 5 s. Serving inline keeps no task
        // unowned; a scrape is short.
        let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
    }
}
