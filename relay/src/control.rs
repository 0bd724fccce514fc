//! Operating a running relay: live reload of the agreement and the CRL, and the local
//! control socket (`DATA/control/control.sock`) that
//! `filet-relay reload` talks to.
//!
//! A reload validates everything before changing anything: a bad agreement or PKI file
//! keeps the old one and the answer says why (file, line, rule). A new agreement is logged
//! (`agreement_loaded` with its version and SHA-256) before it is used, and so is a new CRL
//! (`crl_loaded` with its number and SHA-256); a CRL older than the one in force is refused
//! (`crate::crl`). Then every open
//! connection is checked again: a certificate now in the CRL, or a unit no longer in the
//! agreement, is cut at once (and audited); every other connection stays open.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use filet_proto::audit::{Event, RefusalReason};
use filet_proto::wire::close;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::RelayConfig;
use crate::identity::{self, Pki};
use crate::state::Shared;

/// A request to the running relay.
pub enum Control {
    /// Reload the agreement and the CRL.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// What a reload did, for people.
fn summary(
    changed: bool,
    agreement: &str,
    revoked: usize,
    cut_revoked: usize,
    cut_removed: usize,
) -> String {
    format!(
        "{}; CRL with {revoked} revoked certificate(s) in force; {cut_revoked} connection(s) of revoked certificates and {cut_removed} of units no longer in the agreement closed",
        if changed {
            format!("agreement {agreement} loaded")
        } else {
            format!("agreement {agreement} unchanged")
        }
    )
}

/// Reloads the agreement and the CRL (see the module doc). What was done is logged at
/// `info` (`reload: …`), a refusal at `error` (`reload refused: …`), whoever asked (SIGHUP,
/// `filet-relay reload`, [`crate::start::RelayHandle::reload`]).
///
/// # Errors
/// A message naming the file, line and rule; nothing was changed.
pub async fn reload(
    shared: &Shared,
    endpoint: &quinn::Endpoint,
    cfg: &RelayConfig,
) -> Result<String, String> {
    let r = reload_inner(shared, endpoint, cfg).await;
    shared.metrics.reload(r.is_ok());
    if let Err(e) = &r {
        error!("reload refused: {e}");
    }
    r
}

async fn reload_inner(
    shared: &Shared,
    endpoint: &quinn::Endpoint,
    cfg: &RelayConfig,
) -> Result<String, String> {
    let keep = |e: String| format!("{e}; the relay keeps its current agreement and CRL");
    // Reading the files is plain code over untrusted bytes: should it ever panic, the
    // reload is refused and the controller keeps serving later reloads.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_inputs(cfg)))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!(
                "{} or the PKI files: internal error while reading them ({what})",
                cfg.agreement.display(),
            ))
        });
    let (agreement, pki, server_config) = read.map_err(keep)?;
    // Never back to an older CRL: that would un-revoke certificates.
    let crl_before = shared.crl();
    crl_before.check_successor(&pki.crl).map_err(keep)?;
    let crl_changed = !crl_before.same_as(&pki.crl);
    let revoked: HashSet<String> = pki.crl.revoked();
    let old = shared.agreement();
    let changed = old.sha256 != agreement.sha256;
    if agreement.id != old.id {
        return Err(keep(format!(
            "{}: agreement {} is not {}: this relay and its log serve {} (another agreement needs another relay)",
            cfg.agreement.display(),
            agreement.id,
            old.id,
            old.id
        )));
    }
    if changed && agreement.version <= old.version {
        return Err(keep(format!(
            "{}: the agreement changed but its version is {} (in force: v{}); an amendment takes a higher version",
            cfg.agreement.display(),
            agreement.version,
            old.version
        )));
    }
    let name = format!(
        "{} v{} (sha256 {})",
        agreement.id,
        agreement.version,
        agreement.sha256_hex()
    );
    if changed {
        // Logged before it is used.
        shared
            .audit(Event::AgreementLoaded {
                agreement: agreement.id.clone(),
                version: agreement.version,
                sha256: agreement.sha256_hex(),
            })
            .await
            .map_err(|e| keep(e.to_string()))?;
        *shared.agreement.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(agreement);
    }
    if crl_changed {
        // Logged before it is used, as the agreement is.
        for event in pki.crl.events() {
            shared.audit(event).await.map_err(|e| keep(e.to_string()))?;
        }
    }
    let crl = Arc::new(pki.crl);
    *shared.crl.write().unwrap_or_else(|p| p.into_inner()) = crl.clone();
    *shared.revoked.write().unwrap_or_else(|p| p.into_inner()) = revoked.clone();
    endpoint.set_server_config(Some(server_config));
    if crl_changed {
        shared
            .crl_alarm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
    }
    shared.check_crl();
    let revoked_by = if crl_changed {
        format!("the reloaded CRL (number {})", crl.numbers())
    } else {
        format!("the CRL in force (number {})", crl.numbers())
    };
    let agreement = shared.agreement();
    let mut cut = Vec::new();
    {
        let conns = shared.registry.lock();
        for e in conns.values() {
            if revoked.contains(&e.serial) {
                cut.push((
                    e.conn.clone(),
                    e.principal.clone(),
                    close::REVOKED,
                    format!(
                        "certificate {} of {} is revoked by {revoked_by}",
                        e.serial, e.principal
                    ),
                ));
            } else if let Err(err) = identity::check_principal(&e.principal, &agreement) {
                cut.push((
                    e.conn.clone(),
                    e.principal.clone(),
                    close::UNKNOWN_PRINCIPAL,
                    err.to_string(),
                ));
            }
        }
    }
    let (mut cut_revoked, mut cut_removed) = (0, 0);
    for (conn, principal, code, reason) in cut {
        if code == close::REVOKED {
            cut_revoked += 1;
        } else {
            cut_removed += 1;
        }
        warn!(%principal, "closing: {reason}");
        conn.close(code.into(), reason.as_bytes());
        shared.registry.remove(&conn);
        let _ = shared
            .audit(Event::Refused {
                principal: Some(principal.to_string()),
                reason: RefusalReason::UnknownIdentity,
                detail: format!("open connection closed on reload: {reason}"),
                category: None,
                recipient: None,
                alert: None,
            })
            .await;
    }
    let s = summary(changed, &name, revoked.len(), cut_revoked, cut_removed)
        + &crl.status_note(shared.clock.now());
    info!("reload: {s}");
    Ok(s)
}

/// The agreement, the PKI (with its CRL) and the TLS configuration, read and validated.
type Inputs = (filet_proto::agreement::Agreement, Pki, quinn::ServerConfig);

fn read_inputs(cfg: &RelayConfig) -> Result<Inputs, String> {
    let agreement = crate::error::load_agreement(&cfg.agreement).map_err(|e| e.to_string())?;
    let pki = Pki::load(&cfg.pki).map_err(|e| e.to_string())?;
    let server_config = identity::server_config(&pki, &cfg.limits).map_err(|e| e.to_string())?;
    Ok((agreement, pki, server_config))
}

/// The control socket's path in a data directory: `control/control.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control").join("control.sock")
}

/// Makes `dir` a directory of mode 0700 (created so, or set so): a socket bound in it is
/// never reachable by another user, not even between its creation and its chmod.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(std::io::Error::other(
                "exists and is not a directory (remove it)",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Serves the control socket: one line per request (`reload`), one line per answer
/// (`ok: …` or `error: …`). The socket is bound in a directory of mode 0700 (see
/// [`socket_path`]) and then set to 0600.
pub async fn serve_socket(path: PathBuf, control: mpsc::Sender<Control>) {
    if let Some(dir) = path.parent() {
        if let Err(e) = private_dir(dir) {
            warn!(
                "control socket directory {}: {e}; reload with SIGHUP instead",
                dir.display()
            );
            return;
        }
    }
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(
                "control socket {}: {e}; reload with SIGHUP instead",
                path.display()
            );
            return;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let control = control.clone();
        // One short exchange per connection, bounded in time.
        let task = async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut r = BufReader::new(r.take(1024));
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim() {
                "reload" => {
                    let (tx, rx) = oneshot::channel();
                    if control.send(Control::Reload(tx)).await.is_err() {
                        "error: the relay is stopping".to_owned()
                    } else {
                        match rx.await {
                            Ok(Ok(s)) => format!("ok: {s}"),
                            Ok(Err(e)) => format!("error: {e}"),
                            Err(_) => "error: the relay is stopping".to_owned(),
                        }
                    }
                }
                other => format!("error: unknown request {other:?} (known: reload)"),
            };
            let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), task).await;
    }
}

/// `filet-relay reload`: asks the relay running on `data_dir` to reload; returns its
/// answer.
///
/// # Errors
/// The socket cannot be reached, or the relay refused the reload (its message).
pub async fn request_reload(data_dir: &Path) -> Result<String, String> {
    let path = socket_path(data_dir);
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| format!("cannot reach the relay's control socket {}: {e} (is the relay running on this data directory?)", path.display()))?;
    let (r, mut w) = stream.into_split();
    w.write_all(b"reload\n").await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut reader = BufReader::new(r);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .map_err(|_| "no answer from the relay within 60 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let line = line.trim();
    match line.strip_prefix("ok: ") {
        Some(s) => Ok(s.to_owned()),
        None => Err(line.strip_prefix("error: ").unwrap_or(line).to_owned()),
    }
}
