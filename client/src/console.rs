//! `filet console`: the node as the web console's backend. One node, held by the console
//! process, reconnected when the relay goes away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use filet_console::Lang;
use filet_console::{Backend, BackendError, BoxFuture, ConsoleConfig};
use filet_proto::agreement::Agreement;
use filet_proto::alert::Disclosed;
use filet_proto::wire::{Receipt, RecipientStatus, WhoAmI};
use filet_proto::{AlertDraft, AlertId, UnitRef};
use tokio::sync::{mpsc, Mutex};

use crate::{ClientError, Node, NodeConfig};

/// A node that connects on first use and again after its connection ends.
pub struct NodeBackend {
    cfg: NodeConfig,
    node: Mutex<Option<Arc<Node>>>,
}

impl NodeBackend {
    /// A backend for the node `cfg` describes (not connected yet).
    pub fn new(cfg: NodeConfig) -> NodeBackend {
        NodeBackend {
            cfg,
            node: Mutex::new(None),
        }
    }

    /// A backend already connected.
    pub fn with_node(cfg: NodeConfig, node: Node) -> NodeBackend {
        NodeBackend {
            cfg,
            node: Mutex::new(Some(Arc::new(node))),
        }
    }

    async fn node(&self) -> Result<Arc<Node>, BackendError> {
        let mut n = self.node.lock().await;
        if let Some(node) = n.as_ref() {
            if node.close_reason().is_none() {
                return Ok(node.clone());
            }
        }
        let node = Arc::new(Node::connect(&self.cfg).await.map_err(err)?);
        *n = Some(node.clone());
        Ok(node)
    }
}

fn err(e: ClientError) -> BackendError {
    BackendError {
        relay: e.relay_error().cloned(),
        message: e.to_string(),
    }
}

impl Backend for NodeBackend {
    fn whoami(&self) -> BoxFuture<'_, Result<WhoAmI, BackendError>> {
        Box::pin(async move { self.node().await?.whoami().await.map_err(err) })
    }

    fn post(&self, draft: AlertDraft) -> BoxFuture<'_, Result<Receipt, BackendError>> {
        Box::pin(async move { self.node().await?.post(draft).await.map_err(err) })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<mpsc::Receiver<Disclosed>, BackendError>> {
        Box::pin(async move { self.node().await?.subscribe().await.map_err(err) })
    }

    fn ack(&self, alert: AlertId) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move { self.node().await?.ack(alert).await.map_err(err) })
    }

    fn get_alert(
        &self,
        alert: AlertId,
    ) -> BoxFuture<'_, Result<(Disclosed, Vec<UnitRef>), BackendError>> {
        Box::pin(async move { self.node().await?.get_alert(alert).await.map_err(err) })
    }

    fn status(&self, alert: AlertId) -> BoxFuture<'_, Result<Vec<RecipientStatus>, BackendError>> {
        Box::pin(async move { self.node().await?.status(alert).await.map_err(err) })
    }
}

/// The legal basis of each rule of an agreement file.
///
/// # Errors
/// The file cannot be read or is not a valid agreement (the message names it).
pub fn legal_bases(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--agreement {}: {e}", path.display()))?;
    let a = Agreement::parse(&text, &path.display().to_string())
        .map_err(|e| format!("--agreement {}: {e}", path.display()))?;
    Ok(a.rules.into_iter().map(|r| (r.id, r.legal_basis)).collect())
}

/// The console's settings for `filet console`.
///
/// # Errors
/// A listening address that is not loopback, an unknown zone, an unreadable agreement.
pub fn config(
    listen: SocketAddr,
    lang: Option<Lang>,
    zone: Option<&str>,
    agreement: Option<&Path>,
) -> Result<ConsoleConfig, String> {
    filet_console::security::check_listen(listen)?;
    let mut c = ConsoleConfig::new(listen, lang.unwrap_or_else(Lang::from_env));
    if let Some(z) = zone {
        c.zone = filet_console::format::zone(z)?;
    }
    if let Some(a) = agreement {
        c.legal_bases = legal_bases(a)?;
    }
    Ok(c)
}

/// Runs `filet console`: connects the node, serves the console, prints the one-time
/// sign-in address with `print`, and serves until Ctrl-C.
///
/// # Errors
/// A bad setting (non-loopback `listen`, unknown zone, unreadable agreement), or the
/// address cannot be bound.
pub async fn run(node: NodeConfig, cfg: ConsoleConfig, print: impl Fn(&str)) -> Result<(), String> {
    let lang = cfg.lang;
    let backend = Arc::new(NodeBackend::new(node));
    let running = filet_console::start(backend, cfg).await?;
    print(&filet_console::i18n::tr(
        lang,
        "cli-open",
        &[("url", running.login_url())],
    ));
    let _ = tokio::signal::ctrl_c().await;
    running.stop();
    Ok(())
}
