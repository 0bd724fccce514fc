//! The auditor's side of the audit log: fetch entries and the signed checkpoint, verify the
//! signature, recompute the RFC 9162 Merkle root (a full auditor) or check each entry's
//! inclusion proof (a party auditor).

use filet_proto::audit::{hex, Entry};
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use filet_proto::merkle::{self, MemoryTree};
use filet_proto::wire::EntryWithProof;

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
/// entry this node may read, and verifies them: a full auditor (its audit right, asked of
/// the relay) must receive every entry `0..size`, contiguous, whose leaves rebuild the
/// signed root; a party auditor checks each entry's inclusion proof against the signed
/// root. A full auditor never falls back to inclusion proofs: a relay that skips an index
/// is named at that index.
///
/// # Errors
/// [`AuditError`] naming the first bad index, or the checkpoint problem.
pub async fn fetch_and_verify(
    node: &Node,
    verifier: &NoteVerifier,
) -> Result<VerifiedLog, AuditError> {
    let note = node.checkpoint().await?;
    let checkpoint = open_checked(&note, verifier)?;
    let full = node.whoami().await?.audit_right == "full";
    let size = checkpoint.size;
    let mut received = Vec::new();
    let mut start = 0;
    while start < size {
        let (page, next) = node.audit_entries(start, size, size, !full).await?;
        if next <= start || next > size {
            return Err(AuditError::Entry {
                index: start,
                problem: format!(
                    "the relay answered entries from {start} with a next index of {next}, outside {}..={size}",
                    start + 1
                ),
            });
        }
        received.extend(page);
        start = next;
    }
    if full {
        check_full_entries(&checkpoint, 0, MemoryTree::new(), &received)?;
    } else {
        check_party_entries(&checkpoint, 0, &received)?;
    }
    Ok(VerifiedLog {
        checkpoint,
        note,
        entries: received.into_iter().map(|e| (e.index, e.entry)).collect(),
        complete: full,
    })
}

/// One entry as the relay returned it, checked as offline verification of an audit
/// directory checks it: its index is inside the tree, its bytes hold no newline (one entry
/// is one line of `entries.jsonl`), they are a readable entry, and the entry states the
/// same index. Returns the parsed entry.
///
/// # Errors
/// [`AuditError::Entry`] naming the index and the reason.
pub fn check_entry(e: &EntryWithProof, tree_size: u64) -> Result<Entry, AuditError> {
    let bad = |problem: String| AuditError::Entry {
        index: e.index,
        problem,
    };
    if e.index >= tree_size {
        return Err(bad(format!(
            "outside the signed tree of {tree_size} entries"
        )));
    }
    if e.entry.contains(&b'\n') {
        return Err(bad(
            "its bytes hold a newline: an entry is one line of the log".into(),
        ));
    }
    let parsed = Entry::from_bytes(&e.entry).map_err(|err| bad(err.to_string()))?;
    if parsed.index != e.index {
        return Err(bad(format!(
            "the entry says it is at index {}",
            parsed.index
        )));
    }
    Ok(parsed)
}

/// A full auditor's entries `from..checkpoint.size`: each at exactly the next index (no
/// gap, no repeat, no reorder), each passing [`check_entry`], and `tree` (the leaves of
/// entries `0..from`) extended by them must give the signed root. Returns the new leaf
/// hashes.
///
/// # Errors
/// [`AuditError::Entry`] naming the first index that is missing or wrong;
/// [`AuditError::Root`] if every entry is there but the root differs.
pub fn check_full_entries(
    checkpoint: &Checkpoint,
    from: u64,
    mut tree: MemoryTree,
    entries: &[EntryWithProof],
) -> Result<Vec<merkle::Hash>, AuditError> {
    let size = checkpoint.size;
    let mut leaves = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let expected = from + i as u64;
        if e.index != expected {
            return Err(AuditError::Entry {
                index: expected,
                problem: format!(
                    "missing: the relay returned entry {} in its place (a full auditor reads every entry in order)",
                    e.index
                ),
            });
        }
        check_entry(e, size)?;
        let leaf = merkle::leaf_hash(&e.entry);
        tree.push_leaf_hash(leaf);
        leaves.push(leaf);
    }
    let got = from + entries.len() as u64;
    if got != size {
        return Err(AuditError::Entry {
            index: got,
            problem: format!(
                "missing: the relay returned entries up to {got} of a signed tree of {size}"
            ),
        });
    }
    let root = tree.root();
    if root != checkpoint.root {
        return Err(AuditError::Root {
            size,
            computed: hex(&root),
            signed: hex(&checkpoint.root),
        });
    }
    Ok(leaves)
}

/// A party auditor's entries, each at an index of `from..checkpoint.size`, in strictly
/// increasing order, each passing [`check_entry`] and carrying an inclusion proof that
/// verifies against the signed root.
///
/// # Errors
/// [`AuditError::Entry`] naming the first bad index and the reason.
pub fn check_party_entries(
    checkpoint: &Checkpoint,
    from: u64,
    entries: &[EntryWithProof],
) -> Result<(), AuditError> {
    let mut last: Option<u64> = None;
    for e in entries {
        if e.index < from {
            return Err(AuditError::Entry {
                index: e.index,
                problem: format!("returned, but only entries from {from} were asked for"),
            });
        }
        if let Some(l) = last.filter(|l| *l >= e.index) {
            return Err(AuditError::Entry {
                index: e.index,
                problem: format!("out of order: it comes after entry {l}"),
            });
        }
        check_entry(e, checkpoint.size)?;
        merkle::verify_inclusion(
            &merkle::leaf_hash(&e.entry),
            e.index,
            checkpoint.size,
            &e.proof,
            &checkpoint.root,
        )
        .map_err(|err| AuditError::Entry {
            index: e.index,
            problem: format!("inclusion proof fails: {err}"),
        })?;
        last = Some(e.index);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use filet_proto::audit::Event;
    use filet_proto::Timestamp;

    fn entry_bytes(index: u64, software: &str) -> Vec<u8> {
        Entry::new(
            index,
            Timestamp::now(),
            Event::RelayStopped {
                software: software.into(),
            },
        )
        .to_bytes()
    }

    /// A log of these entries (as a relay hashed them), its checkpoint, and each entry with
    /// its inclusion proof.
    fn log_of(bytes: Vec<Vec<u8>>) -> (Checkpoint, Vec<EntryWithProof>) {
        let mut tree = MemoryTree::new();
        for b in &bytes {
            tree.push_leaf(b);
        }
        let n = tree.size();
        let cp = Checkpoint {
            origin: "test/log".into(),
            size: n,
            root: tree.root(),
            extensions: vec![],
        };
        let entries = bytes
            .into_iter()
            .enumerate()
            .map(|(i, entry)| EntryWithProof {
                index: i as u64,
                entry,
                proof: merkle::inclusion_proof(&tree, i as u64, n).unwrap(),
            })
            .collect();
        (cp, entries)
    }

    fn log(n: u64) -> (Checkpoint, Vec<EntryWithProof>) {
        log_of(
            (0..n)
                .map(|i| entry_bytes(i, &format!("test {i}")))
                .collect(),
        )
    }

    fn without_proof(mut e: EntryWithProof) -> EntryWithProof {
        e.proof.clear();
        e
    }

    fn entry_error(r: Result<impl std::fmt::Debug, AuditError>) -> (u64, String) {
        match r {
            Err(AuditError::Entry { index, problem }) => (index, problem),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn a_full_auditor_refuses_a_gap_even_when_entries_come_with_inclusion_proofs() {
        let (cp, all) = log(5);
        // Entry 0 without proof, then proofs (each valid), and entry 2 skipped.
        let received = vec![
            without_proof(all[0].clone()),
            all[1].clone(),
            all[3].clone(),
            all[4].clone(),
        ];
        let (index, problem) =
            entry_error(check_full_entries(&cp, 0, MemoryTree::new(), &received));
        assert_eq!(index, 2, "{problem}");
        assert!(problem.contains("missing"), "{problem}");
        // A truncated answer: the last entry is named.
        let (index, _) = entry_error(check_full_entries(&cp, 0, MemoryTree::new(), &all[..4]));
        assert_eq!(index, 4);
        // A repeat and a reorder are named at the position they take.
        let repeated = vec![all[0].clone(), all[1].clone(), all[1].clone()];
        assert_eq!(
            entry_error(check_full_entries(&cp, 0, MemoryTree::new(), &repeated)).0,
            2
        );
        let reordered = vec![all[1].clone(), all[0].clone()];
        assert_eq!(
            entry_error(check_full_entries(&cp, 0, MemoryTree::new(), &reordered)).0,
            0
        );
        // Everything, with or without proofs: the root is rebuilt.
        assert_eq!(
            check_full_entries(&cp, 0, MemoryTree::new(), &all)
                .unwrap()
                .len(),
            5
        );
        // Every entry present but one changed: the root differs.
        let mut changed = all.clone();
        changed[2].entry = entry_bytes(2, "forged");
        assert!(matches!(
            check_full_entries(&cp, 0, MemoryTree::new(), &changed),
            Err(AuditError::Root { size: 5, .. })
        ));
    }

    #[test]
    fn a_party_auditor_refuses_entries_that_offline_verification_would_reject() {
        let (cp, all) = log(6);
        assert!(check_party_entries(&cp, 0, &[all[1].clone(), all[4].clone()]).is_ok());
        // Order.
        let (i, p) = entry_error(check_party_entries(
            &cp,
            0,
            &[all[4].clone(), all[1].clone()],
        ));
        assert_eq!(i, 1, "{p}");
        assert!(p.contains("out of order"), "{p}");
        // A repeat.
        let (i, p) = entry_error(check_party_entries(
            &cp,
            0,
            &[all[2].clone(), all[2].clone()],
        ));
        assert_eq!(i, 2, "{p}");
        // Range: before the pull's start, or past the signed tree.
        let (i, p) = entry_error(check_party_entries(&cp, 3, &[all[1].clone()]));
        assert_eq!(i, 1, "{p}");
        let mut past = all[5].clone();
        past.index = 6;
        let (i, p) = entry_error(check_party_entries(&cp, 0, &[past]));
        assert_eq!(i, 6, "{p}");
        // Index match: position 1 of the log holds an entry that says it is entry 3 (its
        // inclusion proof is valid: the relay hashed it there).
        let (cp2, bad) = log_of(vec![entry_bytes(0, "a"), entry_bytes(3, "b")]);
        let (i, p) = entry_error(check_party_entries(&cp2, 0, &bad[1..]));
        assert_eq!(i, 1, "{p}");
        assert!(p.contains("says it is at index 3"), "{p}");
        // A newline inside an entry (valid JSON, valid proof: the relay hashed it so).
        let mut bytes = entry_bytes(0, "x");
        bytes.insert(1, b'\n');
        let (cp1, nl) = log_of(vec![bytes]);
        let (i, p) = entry_error(check_party_entries(&cp1, 0, &nl));
        assert_eq!(i, 0);
        assert!(p.contains("newline"), "{p}");
        // The same entry is refused to a full auditor too.
        let (_, p) = entry_error(check_full_entries(&cp1, 0, MemoryTree::new(), &nl));
        assert!(p.contains("newline"), "{p}");
    }
}
