//! `filet audit log|verify|pull|prove|report`: the audit log, for the agreement's auditors:
//! read and verified online, kept in a local directory and verified offline, reported on.

use filet_client::audit::{entry_line, fetch_and_verify};
use filet_client::audit_dir::{self, Scope};
use filet_client::report::{self, ReportOptions};
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::Timestamp;

use crate::cli::args::{AuditCommand, Cli, ReportFormat};
use crate::cli::connect::connect;
use crate::cli::exit::{Failure, InputError};
use crate::cli::output::{outln, outp, print_json};

/// `filet audit ...`.
pub async fn run(cli: &Cli, cmd: &AuditCommand) -> Result<(), Failure> {
    let key = |k: &str| {
        NoteVerifier::parse(k.trim()).map_err(|e| InputError(format!("--verifier-key: {e}")))
    };
    match cmd {
        AuditCommand::Verify {
            verifier_key,
            dir: Some(dir),
        } => {
            let r = audit_dir::verify(dir, verifier_key.as_deref())?;
            if cli.json {
                print_json(&serde_json::json!({
                    "verified": true, "dir": dir, "tree_size": r.checkpoint.size,
                    "root": filet_proto::audit::hex(&r.checkpoint.root), "checkpoints": r.checkpoints,
                    "entries": r.entries, "scope": if r.scope == Scope::Full { "full" } else { "party" },
                }));
            } else {
                outln!(
                    "verified offline: {} checkpoint(s) signed by {}, consistent; {} entries {}; newest tree {} entries",
                    r.checkpoints,
                    r.checkpoint.origin,
                    r.entries,
                    if r.scope == Scope::Full { "match the signed roots" } else { "each proven included" },
                    r.checkpoint.size
                );
            }
        }
        AuditCommand::Log { verifier_key }
        | AuditCommand::Verify {
            verifier_key: Some(verifier_key),
            dir: None,
        } => {
            let verifier = key(verifier_key)?;
            let node = connect(cli).await?;
            let log = fetch_and_verify(&node, &verifier).await?;
            let is_log = matches!(cmd, AuditCommand::Log { .. });
            if is_log {
                for (i, bytes) in &log.entries {
                    if cli.json {
                        outln!("{}", String::from_utf8_lossy(bytes));
                    } else {
                        outln!("{}", entry_line(*i, bytes));
                    }
                }
            }
            let how = if log.complete {
                "root recomputed from every entry"
            } else {
                "each entry's inclusion proof checked"
            };
            if cli.json && !is_log {
                print_json(&serde_json::json!({
                    "verified": true, "origin": log.checkpoint.origin, "tree_size": log.checkpoint.size,
                    "root": filet_proto::audit::hex(&log.checkpoint.root), "entries_read": log.entries.len(),
                    "complete": log.complete,
                }));
            } else if !cli.json {
                outln!(
                    "verified: checkpoint of {} entries signed by {}; {} entries read, {how}",
                    log.checkpoint.size,
                    verifier.name(),
                    log.entries.len()
                );
            }
            node.close().await;
        }
        AuditCommand::Verify {
            verifier_key: None,
            dir: None,
        } => {
            return Err(InputError(
                "audit verify needs --verifier-key (online) or --dir (offline)".into(),
            )
            .into());
        }
        AuditCommand::Pull { dir, verifier_key } => {
            let node = connect(cli).await?;
            let r = audit_dir::pull(&node, dir, verifier_key.as_deref()).await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "tree_size": r.checkpoint.size, "previous_size": r.previous_size,
                    "new_entries": r.new_entries, "root": filet_proto::audit::hex(&r.checkpoint.root),
                }));
            } else {
                outln!(
                    "pulled {} new entries; checkpoint of {} entries kept{}",
                    r.new_entries,
                    r.checkpoint.size,
                    if r.previous_size > 0 {
                        format!(" (consistent with the previous one of {})", r.previous_size)
                    } else {
                        String::new()
                    }
                );
            }
            node.close().await;
        }
        AuditCommand::Prove {
            index,
            verifier_key,
        } => {
            let verifier = key(verifier_key)?;
            let node = connect(cli).await?;
            let p = filet_client::audit::prove(&node, &verifier, *index).await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "index": index, "tree_size": p.checkpoint.size, "verified": true,
                    "proof": p.proof.iter().map(|h| filet_proto::audit::hex(h)).collect::<Vec<_>>(),
                    "entry": serde_json::from_slice::<serde_json::Value>(&p.entry).unwrap_or_default(),
                }));
            } else {
                outln!("{}", entry_line(*index, &p.entry));
                outln!(
                    "included: inclusion proof of {} hashes verifies against the checkpoint of {} entries signed by {}",
                    p.proof.len(),
                    p.checkpoint.size,
                    verifier.name()
                );
            }
            node.close().await;
        }
        AuditCommand::Report {
            dir,
            from,
            to,
            party,
            unacked_after,
            format,
            subject_ref,
            subject_ref_key,
        } => {
            if let (Some(f), Some(t)) = (from, to) {
                if f >= t {
                    return Err(InputError(format!(
                        "--from {f} is not before --to {t}: the range is empty"
                    ))
                    .into());
                }
            }
            audit_dir::verify(dir, None)?;
            let entries = audit_dir::AuditDir::open(dir)?.entries()?;
            // Party codes are upper case in the agreement and the log.
            let party = party.as_deref().map(|p| p.trim().to_ascii_uppercase());
            if let Some(p) = &party {
                let seen = report::parties(&entries);
                if !seen.contains(p) {
                    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
                    return Err(InputError(format!(
                        "--party {p}: no entry of {} names this party (parties named: {})",
                        dir.display(),
                        if seen.is_empty() {
                            "none".to_owned()
                        } else {
                            seen.join(", ")
                        }
                    ))
                    .into());
                }
            }
            let o = ReportOptions {
                from: *from,
                to: *to,
                party,
                unacked_after_ms: unacked_after.saturating_mul(60_000),
                now: Timestamp::now(),
                subject_ref: match (subject_ref, subject_ref_key) {
                    (Some(r), Some(k)) => {
                        let key = std::fs::read(k).map_err(|e| {
                            InputError(format!("--subject-ref-key {}: {e}", k.display()))
                        })?;
                        report::check_subject_ref_key(&key).map_err(|e| {
                            InputError(format!("--subject-ref-key {}: {e}", k.display()))
                        })?;
                        Some(report::subject_ref(&key, r.trim()))
                    }
                    _ => None,
                },
            };
            let r = report::build(&entries, &o);
            match (format, cli.json) {
                (ReportFormat::Json, _) | (_, true) => print_json(&report::to_json(&r)),
                (ReportFormat::Csv, _) => outp!("{}", report::to_csv(&r)),
                (ReportFormat::Table, _) => outp!("{}", report::to_table(&r, &o)),
            }
        }
    }
    Ok(())
}
