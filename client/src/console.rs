//! `filet console`: the node as the web console's backend. One node, held by the console
//! process, reconnected when the relay goes away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use filet_console::audit::{
    AuditFailure, DayCount, Disclosure, Included, Late, Progress, ProgressFn, ReportData,
    ReportQuery, Verified,
};
pub use filet_console::Lang;
use filet_console::{Backend, BackendError, BoxFuture, ConsoleConfig};
use filet_proto::agreement::Agreement;
use filet_proto::alert::Disclosed;
use filet_proto::audit::hex;
use filet_proto::wire::{Receipt, RecipientStatus, WhoAmI};
use filet_proto::Timestamp;
use filet_proto::{AlertDraft, AlertId, UnitRef};
use tokio::sync::{mpsc, Mutex};

use crate::audit::AuditError;
use crate::audit_dir::{self, AuditDirError, Scope};
use crate::report::{self, ReportOptions};
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

    fn audit_pull(
        &self,
        dir: PathBuf,
        verifier_key: Option<String>,
        progress: ProgressFn,
    ) -> BoxFuture<'_, Result<Verified, AuditFailure>> {
        Box::pin(async move {
            let node = self
                .node()
                .await
                .map_err(|e| AuditFailure::new("relay", &[], e.message))?;
            // A local copy that no longer verifies is named precisely (the entry, the
            // checkpoint) before anything is fetched; the pull would only say that it does
            // not verify.
            if dir.join("checkpoints").is_dir() {
                let d = dir.clone();
                tokio::task::spawn_blocking(move || audit_dir::verify(&d, None))
                    .await
                    .map_err(|e| AuditFailure::new("relay", &[], e.to_string()))?
                    .map_err(|e| dir_failure(&e))?;
            }
            let p = progress.clone();
            let tell = move |done, total| p(Progress::Pulling { done, total });
            let pulled = audit_dir::pull_with_progress(&node, &dir, verifier_key.as_deref(), &tell)
                .await
                .map_err(|e| dir_failure(&e))?;
            progress(Progress::Verifying);
            let v = tokio::task::spawn_blocking(move || audit_dir::verify(&dir, None))
                .await
                .map_err(|e| AuditFailure::new("relay", &[], e.to_string()))?
                .map_err(|e| dir_failure(&e))?;
            Ok(Verified {
                size: v.checkpoint.size,
                root: hex(&v.checkpoint.root),
                signed_by: v.checkpoint.origin.clone(),
                new_entries: pulled.new_entries,
                entries: v.entries,
                checkpoints: v.checkpoints,
                previous_size: pulled.previous_size,
                full: v.scope == Scope::Full,
            })
        })
    }

    fn audit_report(
        &self,
        dir: PathBuf,
        query: ReportQuery,
        zone: filet_console::TimeZone,
    ) -> BoxFuture<'_, Result<ReportData, AuditFailure>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || report_data(&dir, &query, &zone, Timestamp::now()))
                .await
                .map_err(|e| AuditFailure::new("relay", &[], e.to_string()))?
        })
    }

    fn audit_prove(
        &self,
        dir: PathBuf,
        index: u64,
    ) -> BoxFuture<'_, Result<Included, AuditFailure>> {
        Box::pin(async move {
            let verifier = audit_dir::AuditDir::open(&dir)
                .and_then(|d| d.verifier(None, false))
                .map_err(|e| dir_failure(&e))?;
            let node = self
                .node()
                .await
                .map_err(|e| AuditFailure::new("relay", &[], e.message))?;
            let p = crate::audit::prove(&node, &verifier, index)
                .await
                .map_err(|e| match &e {
                    AuditError::Client(_) | AuditError::BadRequest(_) | AuditError::Denied(_) => {
                        AuditFailure::new("relay", &[], e.to_string())
                    }
                    AuditError::Checkpoint(_) => {
                        AuditFailure::new("checkpoint", &[("file", "relay".into())], e.to_string())
                    }
                    _ => AuditFailure::new("entry", &[("index", index.to_string())], e.to_string()),
                })?;
            Ok(Included {
                index,
                entry: crate::audit::entry_line(index, &p.entry),
                proof_len: p.proof.len(),
                size: p.checkpoint.size,
                root: hex(&p.checkpoint.root),
                signed_by: verifier.name().to_owned(),
            })
        })
    }
}

/// An audit directory's failure as the console words it (the library's text as detail).
pub fn dir_failure(e: &AuditDirError) -> AuditFailure {
    let detail = e.to_string();
    match e {
        AuditDirError::Client(_) => AuditFailure::new("relay", &[], detail),
        AuditDirError::NoDirectory { path } => AuditFailure::new(
            "no-directory",
            &[("path", path.display().to_string())],
            detail,
        ),
        AuditDirError::File { path, .. } => {
            AuditFailure::new("file", &[("path", path.display().to_string())], detail)
        }
        AuditDirError::Key(_) => AuditFailure::new("key", &[], detail),
        AuditDirError::Checkpoint { file, .. } => {
            AuditFailure::new("checkpoint", &[("file", file.clone())], detail)
        }
        AuditDirError::Fork { size, .. } => {
            AuditFailure::new("fork", &[("size", size.to_string())], detail)
        }
        AuditDirError::Rollback { got, kept } => AuditFailure::new(
            "rollback",
            &[("got", got.to_string()), ("kept", kept.to_string())],
            detail,
        ),
        AuditDirError::Inconsistent { old, new, .. } => AuditFailure::new(
            "inconsistent",
            &[("old", old.to_string()), ("new", new.to_string())],
            detail,
        ),
        AuditDirError::Entry { index, .. } => {
            AuditFailure::new("entry", &[("index", index.to_string())], detail)
        }
    }
}

/// The compliance report of the audit directory `dir` for the console: verified first
/// (as `filet audit report`), computed by [`report::build`], days in `zone`.
///
/// # Errors
/// The directory does not verify, a party it does not name, an unreadable or wrong
/// subject-reference key.
pub fn report_data(
    dir: &Path,
    q: &ReportQuery,
    zone: &filet_console::TimeZone,
    now: Timestamp,
) -> Result<ReportData, AuditFailure> {
    audit_dir::verify(dir, None).map_err(|e| dir_failure(&e))?;
    let entries = audit_dir::AuditDir::open(dir)
        .and_then(|d| d.entries())
        .map_err(|e| dir_failure(&e))?;
    let parties = report::parties(&entries);
    let party = q.party.as_deref().map(|p| p.trim().to_ascii_uppercase());
    if let Some(p) = &party {
        if !parties.contains(p) {
            let named: Vec<&str> = parties.iter().map(String::as_str).collect();
            return Err(AuditFailure::new(
                "bad-party",
                &[("party", p.clone()), ("parties", named.join(", "))],
                "",
            ));
        }
    }
    let subject_ref = match &q.subject {
        None => None,
        Some((key_file, reference)) => {
            let bad = |m: String| {
                AuditFailure::new(
                    "subject-key",
                    &[("path", key_file.display().to_string())],
                    format!("{}: {m}", key_file.display()),
                )
            };
            let key = std::fs::read(key_file).map_err(|e| bad(e.to_string()))?;
            report::check_subject_ref_key(&key).map_err(bad)?;
            Some(report::subject_ref(&key, reference.trim()))
        }
    };
    let o = ReportOptions {
        from: q.from,
        to: q.to,
        party,
        unacked_after_ms: q.unacked_after_min.saturating_mul(60_000),
        now,
        subject_ref,
    };
    let r = report::build(&entries, &o);
    let by_day = report::disclosures_by_day(&r, |t| filet_console::format::local_day(zone, t))
        .into_iter()
        .map(|(day, k, count)| DayCount {
            day,
            status: k.status,
            sender_party: k.sender_party,
            recipient_party: k.recipient_party,
            rule: k.rule,
            legal_basis: k.legal_basis,
            count,
        })
        .collect();
    let late = r
        .unacknowledged
        .iter()
        .filter_map(|u| {
            Some(Late {
                status: u.status.clone(),
                alert: u.alert.clone(),
                recipient: u.recipient.clone(),
                disclosed_at: u.disclosed_at.parse().ok()?,
                acknowledged_at: u.acknowledged_at.as_deref().and_then(|a| a.parse().ok()),
                delay_minutes: u.delay_minutes,
            })
        })
        .collect();
    let disclosures = r
        .disclosed
        .iter()
        .map(|d| Disclosure {
            index: d.index,
            time: d.time,
            alert: d.alert.clone(),
            kind: d.kind.clone(),
            status: d.status.clone(),
            sender: d.sender.clone(),
            recipient: d.recipient.clone(),
            fields: d.fields.clone(),
            rules: d
                .rules
                .iter()
                .cloned()
                .zip(d.legal_bases.iter().cloned())
                .collect(),
            delivered: d.delivered.clone(),
        })
        .collect();
    Ok(ReportData {
        entries: r.entries,
        by_day,
        refusals: r.refusals.into_iter().collect(),
        late,
        disclosures,
        parties: parties.into_iter().collect(),
    })
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
    // The auditing pages' defaults (each can be given in the page too): the audit
    // directory, the relay's verifier key (the variable `filet audit` reads too) and its
    // subject-reference key file.
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    c.audit_dir = var("FILET_AUDIT_DIR").map(PathBuf::from);
    c.verifier_key = var("FILET_AUDIT_KEY");
    c.subject_ref_key = var("FILET_SUBJECT_REF_KEY").map(PathBuf::from);
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
