//! The auditor's side of the audit log: fetch entries and the signed checkpoint, verify the
//! signature, recompute the RFC 9162 Merkle root (a full auditor) or check each entry's
//! inclusion proof (a party auditor).

use filet_proto::audit::{hex, Entry};
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use filet_proto::merkle::{self, MemoryTree};

use crate::node::{ClientError, Node};

/// Errors of audit verification.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Talking to the relay failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The checkpoint's signature or format is wrong.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// An entry is wrong; the index is the first bad one.
    #[error("audit entry {index}: {problem}")]
    Entry {
        /// The first bad index.
        index: u64,
        /// What is wrong.
        problem: String,
    },
    /// The request is out of range (e.g. an index past the newest checkpoint).
    #[error("{0}")]
    BadRequest(String),
    /// This auditor may not read that entry.
    #[error("{0}")]
    Denied(String),
    /// The recomputed root differs from the signed one.
    #[error("recomputed root {computed} of {size} entries differs from the signed root {signed}")]
    Root {
        /// Tree size.
        size: u64,
        /// Recomputed, hex.
        computed: String,
        /// Signed, hex.
        signed: String,
    },
}

/// A verified view of the log.
#[derive(Debug)]
pub struct VerifiedLog {
    /// The signed checkpoint that was verified.
    pub checkpoint: Checkpoint,
    /// Its note text, as received.
    pub note: String,
    /// The entries this auditor may read, in index order, with their bytes.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Whether every entry was read (a full auditor) and the root recomputed.
    pub complete: bool,
}

/// Fetches the newest checkpoint, verifies its signature with `verifier`, fetches every
/// entry this node may read, and verifies them: a full auditor recomputes the root from
/// all entries; a party auditor checks each entry's inclusion proof against the signed
/// root.
///
/// # Errors
/// [`AuditError`] naming the first bad index, or the checkpoint problem.
pub async fn fetch_and_verify(
    node: &Node,
    verifier: &NoteVerifier,
) -> Result<VerifiedLog, AuditError> {
    let note = node.checkpoint().await?;
    let checkpoint =
        open_checkpoint(&note, verifier).map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    let size = checkpoint.size;
    let mut entries = Vec::new();
    let mut tree = MemoryTree::new();
    let mut complete = true;
    let mut start = 0;
    while start < size {
        let (page, next) = node.audit_entries(start, size, size, false).await?;
        if next <= start {
            return Err(AuditError::Entry {
                index: start,
                problem: "the relay made no progress listing entries".into(),
            });
        }
        for e in page {
            let parsed = Entry::from_bytes(&e.entry).map_err(|err| AuditError::Entry {
                index: e.index,
                problem: err.to_string(),
            })?;
            if parsed.index != e.index {
                return Err(AuditError::Entry {
                    index: e.index,
                    problem: format!("entry says it is at index {}", parsed.index),
                });
            }
            let leaf = merkle::leaf_hash(&e.entry);
            if e.proof.is_empty() && complete && e.index == tree.size() {
                tree.push_leaf_hash(leaf);
            } else {
                complete = false;
                merkle::verify_inclusion(&leaf, e.index, size, &e.proof, &checkpoint.root)
                    .map_err(|err| AuditError::Entry {
                        index: e.index,
                        problem: format!("inclusion proof fails: {err}"),
                    })?;
            }
            entries.push((e.index, e.entry));
        }
        start = next;
    }
    if complete {
        let root = tree.root();
        if tree.size() != size || root != checkpoint.root {
            return Err(AuditError::Root {
                size,
                computed: hex(&root),
                signed: hex(&checkpoint.root),
            });
        }
    }
    Ok(VerifiedLog {
        checkpoint,
        note,
        entries,
        complete,
    })
}

/// One line per entry for people: index, time, event and its main facts.
pub fn entry_line(index: u64, bytes: &[u8]) -> String {
    use filet_proto::audit::Event::*;
    let Ok(e) = Entry::from_bytes(bytes) else {
        return format!("#{index:<6} (unreadable entry)");
    };
    let what = match &e.event {
        RelayStarted { software, origin } => format!("relay started ({software}, log {origin})"),
        RelayStopped { software } => format!("relay stopped cleanly ({software})"),
        AgreementLoaded {
            agreement,
            version,
            sha256,
        } => {
            format!(
                "agreement {agreement} v{version} loaded (sha256 {})",
                &sha256[..16.min(sha256.len())]
            )
        }
        CrlLoaded {
            crl_number,
            sha256,
            next_update,
            revoked,
            ..
        } => format!(
            "CRL number {} loaded ({revoked} revoked, next update {next_update}, sha256 {})",
            crl_number.as_deref().unwrap_or("(none)"),
            sha256.get(..16).unwrap_or(sha256)
        ),
        Posted {
            alert,
            kind,
            category,
            status,
            sender,
            recipients,
            ..
        } => format!(
            "{sender} posted {kind} {category} {alert}{} to {} unit(s)",
            if *status == filet_proto::Status::Actual {
                String::new()
            } else {
                format!(" [{status}]")
            },
            recipients.len()
        ),
        Disclosed {
            alert,
            recipient,
            rules,
            fields,
            ..
        } => format!(
            "{alert} disclosed to {recipient} under {} ({})",
            rules.join("+"),
            if fields.is_all() {
                "all fields".to_string()
            } else {
                fields.paths().join(", ")
            }
        ),
        Delivered {
            alert, recipient, ..
        } => format!("{alert} delivered to {recipient}"),
        Acknowledged {
            alert, recipient, ..
        } => format!("{alert} acknowledged by {recipient}"),
        Withheld {
            alert,
            recipient,
            reason,
            ..
        } => format!("{alert} withheld from {recipient}: {reason}"),
        Refused { reason, detail, .. } => format!("refused ({}): {detail}", reason.as_str()),
        Expired { alert, .. } => format!("{alert} expired"),
        Purged { alert, .. } => format!("{alert} content purged"),
        Voided { alert, reason, .. } => format!("{alert} voided: {reason}"),
    };
    format!("#{index:<6} {}  {what}", e.time)
}

/// One entry proven included in the newest signed checkpoint.
#[derive(Debug)]
pub struct Proven {
    /// The checkpoint the proof is against.
    pub checkpoint: Checkpoint,
    /// The entry's bytes.
    pub entry: Vec<u8>,
    /// The inclusion proof (RFC 9162 §2.1.3.1).
    pub proof: Vec<merkle::Hash>,
}

/// `filet audit prove --index N`: fetches the newest checkpoint (signature checked), entry
/// `index` and its inclusion proof, and verifies the proof.
///
/// # Errors
/// [`AuditError`]: bad checkpoint, index beyond the tree, or a proof that fails.
pub async fn prove(node: &Node, verifier: &NoteVerifier, index: u64) -> Result<Proven, AuditError> {
    let note = node.checkpoint().await?;
    let checkpoint = open_checked(&note, verifier)?;
    if index >= checkpoint.size {
        return Err(AuditError::BadRequest(format!(
            "audit entry {index} does not exist yet: the newest checkpoint covers {} entries",
            checkpoint.size
        )));
    }
    let (page, _) = node
        .audit_entries(index, index + 1, checkpoint.size, true)
        .await?;
    let entry = page
        .into_iter()
        .find(|e| e.index == index)
        .ok_or_else(|| {
            AuditError::Denied(format!(
                "audit entry {index} does not concern this auditor's party"
            ))
        })?
        .entry;
    let proof = node.inclusion_proof(index, checkpoint.size).await?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&entry),
        index,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| AuditError::Entry {
        index,
        problem: format!("inclusion proof fails: {e}"),
    })?;
    Ok(Proven {
        checkpoint,
        entry,
        proof,
    })
}

/// Opens a checkpoint note and checks that its origin is the verifier key's name.
///
/// # Errors
/// [`AuditError::Checkpoint`].
pub fn open_checked(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, AuditError> {
    let cp = open_checkpoint(note, verifier).map_err(|e| AuditError::Checkpoint(e.to_string()))?;
    if cp.origin != verifier.name() {
        return Err(AuditError::Checkpoint(format!(
            "origin {:?} is not the log of key {:?}",
            cp.origin,
            verifier.name()
        )));
    }
    Ok(cp)
}
