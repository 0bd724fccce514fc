//! An auditor's local copy of the audit log, kept append-only over time and verifiable
//! offline with nothing but the directory and the relay's verifier key.
//!
//! Layout of the directory `D`:
//!
//! | file | content |
//! |---|---|
//! | `verifier.key` | the relay's verifier key (C2SP signed-note format), pinned at the first pull |
//! | `checkpoints/SIZE.note` | every signed checkpoint kept, by tree size (20 digits) |
//! | `consistency/OLD-NEW.proof` | the consistency proof between two kept checkpoints (base64 hashes, one per line) |
//! | `entries.jsonl` | the entries, one per line, exactly the bytes that were hashed |
//! | `leaves.bin` | full auditors: the 32-byte leaf hash of every entry, authenticated by the signed roots |
//! | `proofs.jsonl` | party auditors: for each line of `entries.jsonl`, `{"index","tree_size","proof"}` |
//! | `indices` | party auditors: the index of every entry received, one decimal number a line, appended by each pull |
//! | `scope` | `full` or `party` |
//!
//! A pull verifies the new checkpoint's signature, its consistency with the last kept one
//! (an append-only view over time: a smaller tree is a rollback, the same size with another
//! root is a fork), then the new entries (a full auditor recomputes the root; a party
//! auditor checks each inclusion proof), and only then keeps the checkpoint. Nothing is
//! written to `D` before the relay has answered every request of the pull and everything
//! fetched has verified: a refused or failed first pull leaves no directory behind.
//!
//! A party auditor's entries are sparse (only its party's), so their proofs cannot show
//! that an entry was removed from the copy; `indices` lists what each pull received, so a
//! lost or truncated entry is named. It does not stop an editor who also edits `indices`:
//! only a full copy (the roots are recomputed) or pulling again from the relay proves that
//! nothing is missing.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use filet_proto::audit::{hex, Entry};
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use filet_proto::merkle::{self, Hash, MemoryTree};
use filet_proto::wire::EntryWithProof;
use serde::{Deserialize, Serialize};

use crate::audit::{check_full_entries, check_party_entries, AuditError};
use crate::node::{ClientError, Node};

/// Why a pull or an offline verification failed. Each names the file or the first bad
/// index.
#[derive(Debug, thiserror::Error)]
pub enum AuditDirError {
    /// Talking to the relay failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The audit directory does not exist (bad input, not a failed verification).
    #[error("{}: no such audit directory (make one with `filet audit pull --dir`)", path.display())]
    NoDirectory {
        /// The directory given.
        path: PathBuf,
    },
    /// A file of the directory cannot be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The verifier key is missing, malformed, or not the one the directory is pinned to.
    #[error("verifier key: {0}")]
    Key(String),
    /// A checkpoint is not signed by the verifier key, or malformed.
    #[error("checkpoint {file}: {problem}")]
    Checkpoint {
        /// The note file (or `relay` for a fetched one).
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// Two checkpoints of the same size with different roots: the log was forked.
    #[error("fork: two checkpoints of {size} entries have different roots ({first} and {second}); keep this directory as evidence")]
    Fork {
        /// The tree size.
        size: u64,
        /// One root, hex.
        first: String,
        /// The other root, hex.
        second: String,
    },
    /// The relay's newest checkpoint is smaller than one already kept.
    #[error(
        "rollback: the relay's checkpoint has {got} entries but checkpoint {kept} was kept before"
    )]
    Rollback {
        /// Size offered now.
        got: u64,
        /// Size kept.
        kept: u64,
    },
    /// A consistency proof fails: the newer tree does not extend the older one.
    #[error("checkpoints of {old} and {new} entries are not consistent: {problem}")]
    Inconsistent {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
        /// What is wrong.
        problem: String,
    },
    /// An entry is wrong: the first bad index and what is wrong with it.
    #[error("entry {index}: {problem}")]
    Entry {
        /// The first bad index.
        index: u64,
        /// What is wrong.
        problem: String,
    },
}

type Result<T> = std::result::Result<T, AuditDirError>;

fn file_err(path: &Path, e: impl std::fmt::Display) -> AuditDirError {
    AuditDirError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// What the directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every entry (the agreement's full auditor).
    Full,
    /// The entries of one party, each with its inclusion proof.
    Party,
}

/// A party auditor's proof line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProofLine {
    index: u64,
    tree_size: u64,
    proof: Vec<String>,
}

/// An auditor's directory.
pub struct AuditDir {
    path: PathBuf,
}

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    /// The newest checkpoint, now kept.
    pub checkpoint: Checkpoint,
    /// The size of the last checkpoint kept before this pull (0 for the first pull).
    pub previous_size: u64,
    /// Entries added to the directory.
    pub new_entries: u64,
    /// Full or party.
    pub scope: Scope,
}

/// What an offline verification checked.
#[derive(Debug)]
pub struct VerifyReport {
    /// The newest kept checkpoint.
    pub checkpoint: Checkpoint,
    /// How many checkpoints were checked (signature and consistency chain).
    pub checkpoints: usize,
    /// Entries checked.
    pub entries: u64,
    /// Full or party.
    pub scope: Scope,
}

/// The hashes of a proof kept in `file` (base64, one per line), for the entry or
/// checkpoint pair `what`. A malformed hash is damage to the directory: it is named with
/// its file and line, as a failed verification (never as a bad verifier key).
fn decode_hashes(lines: &[String], file: &Path, what: &str) -> Result<Vec<Hash>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let bad = |e: &dyn std::fmt::Display| {
                file_err(
                    file,
                    format!(
                        "{what}: hash {} is not a base64 SHA-256 hash ({e}): the proof was changed",
                        i + 1
                    ),
                )
            };
            let b = STANDARD.decode(l.trim()).map_err(|e| bad(&e))?;
            merkle::hash_from_slice(&b).map_err(|e| bad(&e))
        })
        .collect()
}

impl AuditDir {
    /// The existing directory at `path` (nothing is created: only a pull that succeeds
    /// makes one).
    ///
    /// # Errors
    /// [`AuditDirError::NoDirectory`] if `path` is not a directory.
    pub fn open(path: &Path) -> Result<AuditDir> {
        if !path.is_dir() {
            return Err(AuditDirError::NoDirectory {
                path: path.to_owned(),
            });
        }
        Ok(AuditDir {
            path: path.to_owned(),
        })
    }

    /// Makes the directory and its subdirectories, once a pull has something to keep.
    fn create(&self) -> Result<()> {
        for d in [
            self.path.clone(),
            self.p("checkpoints"),
            self.p("consistency"),
        ] {
            fs::create_dir_all(&d).map_err(|e| file_err(&d, e))?;
        }
        Ok(())
    }

    /// A full copy whose `leaves.bin` is missing gets it back from `entries.jsonl`: it is
    /// only the entries' leaf hashes, and the verification that follows checks both
    /// against the signed roots.
    fn rebuild_missing_leaves(&self) -> Result<()> {
        let path = self.p("leaves.bin");
        if self.scope()? != Some(Scope::Full) || path.exists() {
            return Ok(());
        }
        let mut hashes = Vec::new();
        for line in self.lines("entries.jsonl")? {
            hashes.extend_from_slice(&merkle::leaf_hash(&line));
        }
        self.write_atomic(&path, &hashes)
    }

    /// The `indices` file of a party copy: the index of every entry received, in order.
    /// `None` if the file is absent.
    fn indices(&self) -> Result<Option<Vec<u64>>> {
        let path = self.p("indices");
        if !path.exists() {
            return Ok(None);
        }
        self.lines("indices")?
            .iter()
            .enumerate()
            .map(|(i, l)| {
                std::str::from_utf8(l)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        file_err(
                            &path,
                            format!(
                                "line {}: {:?} is not an entry index",
                                i + 1,
                                String::from_utf8_lossy(l)
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<u64>>>()
            .map(Some)
    }

    fn p(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The verifier to use: the pinned key, or `given` (pinned if nothing is).
    ///
    /// # Errors
    /// [`AuditDirError::Key`] if none is known, or `given` differs from the pinned key.
    pub fn verifier(&self, given: Option<&str>, pin: bool) -> Result<NoteVerifier> {
        let path = self.p("verifier.key");
        let pinned = match fs::read_to_string(&path) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(file_err(&path, e)),
        };
        let key = match (pinned, given.map(str::trim)) {
            (Some(p), Some(g)) if p != g => {
                return Err(AuditDirError::Key(format!(
                    "{} is pinned to {p}, not {g}: a different key means a different log",
                    self.path.display()
                )))
            }
            (Some(p), _) => p,
            (None, Some(g)) => {
                if pin {
                    fs::write(&path, format!("{g}\n")).map_err(|e| file_err(&path, e))?;
                }
                g.to_owned()
            }
            (None, None) => {
                return Err(AuditDirError::Key(format!(
                    "{} has no pinned key: give --verifier-key (filet-relay audit-key prints it)",
                    self.path.display()
                )))
            }
        };
        NoteVerifier::parse(&key).map_err(|e| AuditDirError::Key(format!("{key:?}: {e}")))
    }

    fn scope(&self) -> Result<Option<Scope>> {
        let path = self.p("scope");
        match fs::read_to_string(&path) {
            Ok(s) => match s.trim() {
                "full" => Ok(Some(Scope::Full)),
                "party" => Ok(Some(Scope::Party)),
                other => Err(file_err(&path, format!("unknown scope {other:?}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_err(&path, e)),
        }
    }

    /// Every kept checkpoint, opened with `verifier`, sorted by size: `(file name, note,
    /// checkpoint)`.
    fn checkpoints(&self, verifier: &NoteVerifier) -> Result<Vec<(String, String, Checkpoint)>> {
        let dir = self.p("checkpoints");
        let mut out = Vec::new();
        let rd = fs::read_dir(&dir).map_err(|e| file_err(&dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| file_err(&dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".note") {
                continue;
            }
            let note = fs::read_to_string(ent.path()).map_err(|e| file_err(&ent.path(), e))?;
            let cp =
                open_checked(&note, verifier).map_err(|problem| AuditDirError::Checkpoint {
                    file: format!("checkpoints/{name}"),
                    problem,
                })?;
            out.push((name, note, cp));
        }
        out.sort_by_key(|(_, _, c)| c.size);
        for w in out.windows(2) {
            if w[0].2.size == w[1].2.size && w[0].2.root != w[1].2.root {
                return Err(AuditDirError::Fork {
                    size: w[0].2.size,
                    first: hex(&w[0].2.root),
                    second: hex(&w[1].2.root),
                });
            }
        }
        Ok(out)
    }

    fn proof_path(&self, old: u64, new: u64) -> PathBuf {
        self.p(&format!("consistency/{old:020}-{new:020}.proof"))
    }

    fn lines(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        let path = self.p(name);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_err(&path, e)),
        };
        let mut out = Vec::new();
        for line in BufReader::new(f).split(b'\n') {
            out.push(line.map_err(|e| file_err(&path, e))?);
        }
        Ok(out)
    }

    fn leaves(&self) -> Result<Vec<Hash>> {
        let path = self.p("leaves.bin");
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| file_err(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(&path, e)),
        }
        if bytes.len() % 32 != 0 {
            return Err(file_err(
                &path,
                format!(
                    "{} bytes is not a whole number of 32-byte hashes",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect())
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.p(name);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| file_err(&path, e))?;
        f.write_all(bytes).map_err(|e| file_err(&path, e))?;
        f.sync_data().map_err(|e| file_err(&path, e))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, bytes).map_err(|e| file_err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| file_err(path, e))
    }

    /// The entries kept, each with its index.
    ///
    /// # Errors
    /// File errors; a line that is not an entry, with its position.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.lines("entries.jsonl")?
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Entry::from_bytes(l).map_err(|e| AuditDirError::Entry {
                    index: i as u64,
                    problem: format!("line {} of entries.jsonl: {e}", i + 1),
                })
            })
            .collect()
    }
}

fn open_checked(note: &str, verifier: &NoteVerifier) -> std::result::Result<Checkpoint, String> {
    let cp = open_checkpoint(note, verifier).map_err(|e| e.to_string())?;
    if cp.origin != verifier.name() {
        return Err(format!(
            "origin {:?} is not the log of key {:?}",
            cp.origin,
            verifier.name()
        ));
    }
    Ok(cp)
}

/// `filet audit pull --dir D`: fetches the newest checkpoint and the new entries, proves
/// consistency with the last checkpoint kept in `D`, verifies, and keeps everything. `D`
/// is created (or written to) only once every request succeeded and everything verified.
///
/// # Errors
/// [`AuditDirError`]: the relay's checkpoint is not signed by the pinned key, is smaller
/// than the kept one (rollback), has the same size and another root (fork), is not
/// consistent, or an entry fails verification (nothing is kept then).
pub async fn pull(node: &Node, dir: &Path, verifier_key: Option<&str>) -> Result<PullReport> {
    pull_with_progress(node, dir, verifier_key, &|_, _| {}).await
}

/// [`pull`], telling `progress(fetched, to_fetch)` after each page of entries the relay
/// sends (the console shows it).
///
/// # Errors
/// As [`pull`].
pub async fn pull_with_progress(
    node: &Node,
    dir: &Path,
    verifier_key: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PullReport> {
    // Not `open`: the directory may not exist yet, and is made only at the end.
    let d = AuditDir {
        path: dir.to_owned(),
    };
    let existed = d.p("checkpoints").is_dir();
    let verifier = d.verifier(verifier_key, false)?;
    let kept = if existed {
        d.checkpoints(&verifier)?
    } else {
        Vec::new()
    };
    if !kept.is_empty() {
        d.rebuild_missing_leaves()?;
        // A damaged local copy must be named as such, not blamed on the relay.
        verify(dir, verifier_key).map_err(|e| AuditDirError::File {
            path: dir.to_owned(),
            message: format!(
                "this audit directory does not verify before the pull ({e}); nothing was fetched"
            ),
        })?;
    }
    let note = node.checkpoint().await?;
    let cp = open_checked(&note, &verifier).map_err(|problem| AuditDirError::Checkpoint {
        file: "from the relay".into(),
        problem,
    })?;
    let previous_size = kept.last().map(|k| k.2.size).unwrap_or(0);
    let mut consistency = None;
    if let Some((_, _, last)) = kept.last() {
        if cp.size < last.size {
            return Err(AuditDirError::Rollback {
                got: cp.size,
                kept: last.size,
            });
        }
        if let Some((_, _, same)) = kept.iter().find(|k| k.2.size == cp.size) {
            if same.root != cp.root {
                let evidence = d.p(&format!("checkpoints/{:020}.fork.evidence", cp.size));
                let _ = fs::write(&evidence, &note);
                return Err(AuditDirError::Fork {
                    size: cp.size,
                    first: hex(&same.root),
                    second: hex(&cp.root),
                });
            }
        }
        if cp.size > last.size {
            let proof = node.consistency_proof(last.size, cp.size).await?;
            merkle::verify_consistency(last.size, cp.size, &last.root, &cp.root, &proof).map_err(
                |e| AuditDirError::Inconsistent {
                    old: last.size,
                    new: cp.size,
                    problem: e.to_string(),
                },
            )?;
            let text: String = proof
                .iter()
                .map(|h| format!("{}\n", STANDARD.encode(h)))
                .collect();
            consistency = Some((d.proof_path(last.size, cp.size), text));
        }
    }
    let who = node.whoami().await?;
    let scope = match who.audit_right.as_str() {
        "full" => Scope::Full,
        _ => Scope::Party,
    };
    let kept_scope = d.scope()?;
    if kept_scope.is_some_and(|s| s != scope) {
        return Err(file_err(
            &d.p("scope"),
            "this directory was pulled by an auditor of another scope",
        ));
    }
    let fetched = match scope {
        Scope::Full => pull_full(node, &d, &cp, progress).await?,
        Scope::Party => pull_party(node, &cp, previous_size, progress).await?,
    };
    // Everything the relay sent has verified: only now is anything written.
    d.create()?;
    if kept_scope.is_none() {
        let text = if scope == Scope::Full {
            "full\n"
        } else {
            "party\n"
        };
        fs::write(d.p("scope"), text).map_err(|e| file_err(&d.p("scope"), e))?;
    }
    if let Some((path, text)) = consistency {
        d.write_atomic(&path, text.as_bytes())?;
    }
    d.append("entries.jsonl", &fetched.entries)?;
    for (name, bytes) in &fetched.beside {
        d.append(name, bytes)?;
    }
    d.write_atomic(
        &d.p(&format!("checkpoints/{:020}.note", cp.size)),
        note.as_bytes(),
    )?;
    // Pinned only once a checkpoint signed by it is kept.
    d.verifier(verifier_key, true)?;
    Ok(PullReport {
        checkpoint: cp,
        previous_size,
        new_entries: fetched.count,
        scope,
    })
}

/// What a pull fetched and verified, to be appended once the whole pull has succeeded.
struct Fetched {
    /// How many entries.
    count: u64,
    /// Lines for `entries.jsonl`.
    entries: Vec<u8>,
    /// Bytes for the files kept beside the entries (`leaves.bin`; `proofs.jsonl` and
    /// `indices`), appended in this order.
    beside: Vec<(&'static str, Vec<u8>)>,
}

/// Pages of entries `start..cp.size` (with inclusion proofs when `proofs`), as the relay
/// returns them; a page that does not advance, or advances past the tree, is refused.
async fn fetch_entries(
    node: &Node,
    cp: &Checkpoint,
    start: u64,
    proofs: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<EntryWithProof>> {
    let mut received = Vec::new();
    let first = start;
    let mut start = start;
    progress(0, cp.size.saturating_sub(first));
    while start < cp.size {
        let (page, next) = node.audit_entries(start, cp.size, cp.size, proofs).await?;
        if next <= start || next > cp.size {
            return Err(AuditDirError::Entry {
                index: start,
                problem: format!(
                    "the relay answered entries from {start} with a next index of {next}, outside {}..={}",
                    start + 1,
                    cp.size
                ),
            });
        }
        received.extend(page);
        start = next;
        progress(start - first, cp.size - first);
    }
    Ok(received)
}

/// An entry check of [`crate::audit`] (the same a later offline verification makes) as
/// this module's error; `from` is where the pull started.
fn refused(e: AuditError, from: u64) -> AuditDirError {
    match e {
        AuditError::Entry { index, problem } => AuditDirError::Entry { index, problem },
        AuditError::Root {
            size,
            computed,
            signed,
        } => AuditDirError::Entry {
            index: from,
            problem: format!(
                "the root recomputed from {size} entries is {computed} but the signed checkpoint says {signed}"
            ),
        },
        other => AuditDirError::Entry {
            index: from,
            problem: other.to_string(),
        },
    }
}

async fn pull_full(
    node: &Node,
    d: &AuditDir,
    cp: &Checkpoint,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Fetched> {
    let leaves = d.leaves()?;
    let have = leaves.len() as u64;
    if d.lines("entries.jsonl")?.len() as u64 != have {
        return Err(file_err(
            &d.p("entries.jsonl"),
            "entries.jsonl and leaves.bin disagree; run `filet audit verify --dir` to see why",
        ));
    }
    let received = fetch_entries(node, cp, have, false, progress).await?;
    let mut tree = MemoryTree::new();
    for l in &leaves {
        tree.push_leaf_hash(*l);
    }
    // Every entry is checked as `verify` will check it, before anything is written.
    let new_leaves = check_full_entries(cp, have, tree, &received).map_err(|e| refused(e, have))?;
    let mut text = Vec::new();
    let mut hashes = Vec::new();
    for (e, leaf) in received.iter().zip(&new_leaves) {
        text.extend_from_slice(&e.entry);
        text.push(b'\n');
        hashes.extend_from_slice(leaf);
    }
    Ok(Fetched {
        count: received.len() as u64,
        entries: text,
        beside: vec![("leaves.bin", hashes)],
    })
}

/// Party auditors scan from the size of the last kept checkpoint: everything before it
/// was scanned by an earlier pull.
async fn pull_party(
    node: &Node,
    cp: &Checkpoint,
    scanned: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Fetched> {
    let received = fetch_entries(node, cp, scanned, true, progress).await?;
    // Order, range, index match, no newline, inclusion proof: as `verify` will check them,
    // before anything is written.
    check_party_entries(cp, scanned, &received).map_err(|e| refused(e, scanned))?;
    let mut text = Vec::new();
    let mut ptext = Vec::new();
    let mut itext = String::new();
    for e in &received {
        text.extend_from_slice(&e.entry);
        text.push(b'\n');
        let line = ProofLine {
            index: e.index,
            tree_size: cp.size,
            proof: e.proof.iter().map(|h| STANDARD.encode(h)).collect(),
        };
        ptext.extend_from_slice(serde_json::to_string(&line).unwrap_or_default().as_bytes());
        ptext.push(b'\n');
        itext.push_str(&format!("{}\n", e.index));
    }
    Ok(Fetched {
        count: received.len() as u64,
        entries: text,
        beside: vec![("proofs.jsonl", ptext), ("indices", itext.into_bytes())],
    })
}

/// `filet audit verify --dir D`: offline. Checks every kept checkpoint's signature (with the
/// pinned key, or `verifier_key` which must equal it), that no two have the same size and
/// different roots, the consistency chain between them, and every entry: a full auditor's
/// entries must be exactly the leaves under the signed roots, in order; a party auditor's
/// each carry an inclusion proof that verifies.
///
/// # Errors
/// The first problem found, naming the file or the first bad index and what is wrong.
pub fn verify(dir: &Path, verifier_key: Option<&str>) -> Result<VerifyReport> {
    let d = AuditDir::open(dir)?;
    let verifier = d.verifier(verifier_key, false)?;
    let cps = d.checkpoints(&verifier)?;
    let Some(latest) = cps.last().map(|c| c.2.clone()) else {
        return Err(AuditDirError::Checkpoint {
            file: "checkpoints/".into(),
            problem: "no checkpoint kept: run `filet audit pull --dir` first".into(),
        });
    };
    for w in cps.windows(2) {
        let (a, b) = (&w[0].2, &w[1].2);
        if a.size == b.size {
            continue;
        }
        let path = d.proof_path(a.size, b.size);
        let text = fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let proof = decode_hashes(
            &lines,
            &path,
            &format!("consistency proof {} to {}", a.size, b.size),
        )?;
        merkle::verify_consistency(a.size, b.size, &a.root, &b.root, &proof).map_err(|e| {
            AuditDirError::Inconsistent {
                old: a.size,
                new: b.size,
                problem: e.to_string(),
            }
        })?;
    }
    let scope = d.scope()?.unwrap_or(Scope::Full);
    let lines = d.lines("entries.jsonl")?;
    let entries = lines.len() as u64;
    match scope {
        Scope::Full => verify_full(&d, &cps, &lines)?,
        Scope::Party => verify_party(&d, &cps, &lines)?,
    }
    Ok(VerifyReport {
        checkpoint: latest,
        checkpoints: cps.len(),
        entries,
        scope,
    })
}

fn verify_full(
    d: &AuditDir,
    cps: &[(String, String, Checkpoint)],
    lines: &[Vec<u8>],
) -> Result<()> {
    let leaves_missing = !d.p("leaves.bin").exists();
    let leaves = d.leaves()?;
    let latest = cps.last().map(|c| c.2.size).unwrap_or(0);
    // 1. The leaf hashes are authentic if they give every signed root.
    let mut tree = MemoryTree::new();
    let mut next_cp = cps.iter().peekable();
    let mut leaves_ok = leaves.len() as u64 >= latest;
    for (i, l) in leaves.iter().enumerate() {
        tree.push_leaf_hash(*l);
        while let Some((_, _, c)) = next_cp.peek() {
            if c.size == i as u64 + 1 {
                if tree.root() != c.root {
                    leaves_ok = false;
                }
                next_cp.next();
            } else {
                break;
            }
        }
    }
    // 2. Each entry, in order (a damaged leaves.bin is named after the entries are checked:
    //    the entries are the record, leaves.bin a copy of their hashes).
    for (i, line) in lines.iter().enumerate() {
        let index = i as u64;
        let e = Entry::from_bytes(line).map_err(|err| AuditDirError::Entry {
            index,
            problem: format!("not a valid entry ({err}): it was changed"),
        })?;
        if e.index != index {
            // Reordered if every index is still there exactly once; else removed or added.
            let mut all: Vec<u64> = lines
                .iter()
                .filter_map(|l| Entry::from_bytes(l).ok().map(|e| e.index))
                .collect();
            all.sort_unstable();
            let reordered =
                all.len() == lines.len() && all.iter().enumerate().all(|(k, v)| *v == k as u64);
            return Err(AuditDirError::Entry {
                index,
                problem: format!(
                    "the entry at this position says it is entry {}: {}",
                    e.index,
                    if reordered {
                        "the order of the entries was changed"
                    } else if e.index > index {
                        "an entry was removed before it"
                    } else {
                        "an entry was inserted or duplicated"
                    }
                ),
            });
        }
        if leaves_ok {
            if let Some(l) = leaves.get(i) {
                if merkle::leaf_hash(line) != *l {
                    return Err(AuditDirError::Entry {
                        index,
                        problem:
                            "its bytes differ from the entry under the signed root: it was changed"
                                .into(),
                    });
                }
            }
        }
    }
    if (lines.len() as u64) > latest {
        return Err(AuditDirError::Entry {
            index: latest,
            problem: format!(
                "the directory holds {} entries but the newest signed checkpoint covers {latest}: entries were added that no checkpoint vouches for",
                lines.len()
            ),
        });
    }
    if (lines.len() as u64) < latest {
        return Err(AuditDirError::Entry {
            index: lines.len() as u64,
            problem: format!(
                "missing: the directory holds {} entries but the signed checkpoint covers {latest}: the log was truncated",
                lines.len()
            ),
        });
    }
    // 3. The entries themselves give every signed root (this catches what the leaves file
    //    could not localize: the bad entry is after the last checkpoint that still matches).
    let leaves_damaged = !leaves_ok;
    let mut tree = MemoryTree::new();
    let mut next_cp = cps.iter().peekable();
    let mut last_good = 0u64;
    for (i, line) in lines.iter().enumerate() {
        tree.push_leaf(line);
        while let Some((name, _, c)) = next_cp.peek() {
            if c.size != i as u64 + 1 {
                break;
            }
            if tree.root() != c.root {
                return Err(AuditDirError::Entry {
                    index: last_good,
                    problem: format!(
                        "entries {last_good}..{} do not give the root signed in checkpoints/{name}: one of them was changed",
                        c.size
                    ),
                });
            }
            last_good = c.size;
            next_cp.next();
        }
    }
    if leaves_damaged && leaves_missing {
        return Err(file_err(
            &d.p("leaves.bin"),
            "missing, although every entry matches the signed roots: this copy's hash file was deleted (the entries are intact; pull again to rebuild it)",
        ));
    }
    if leaves_damaged {
        return Err(file_err(
            &d.p("leaves.bin"),
            "does not match the signed roots although every entry does: this copy's hash file was changed (the entries are intact; delete leaves.bin and pull again to rebuild it)",
        ));
    }
    Ok(())
}

fn verify_party(
    d: &AuditDir,
    cps: &[(String, String, Checkpoint)],
    lines: &[Vec<u8>],
) -> Result<()> {
    let proofs = d.lines("proofs.jsonl")?;
    if proofs.len() != lines.len() {
        return Err(file_err(
            &d.p("proofs.jsonl"),
            format!(
                "{} proofs for {} entries: an entry or a proof was removed",
                proofs.len(),
                lines.len()
            ),
        ));
    }
    let mut last: Option<u64> = None;
    for (line, p) in lines.iter().zip(&proofs) {
        let p: ProofLine =
            serde_json::from_slice(p).map_err(|e| file_err(&d.p("proofs.jsonl"), e))?;
        let e = Entry::from_bytes(line).map_err(|err| AuditDirError::Entry {
            index: p.index,
            problem: format!("not a valid entry ({err}): it was changed"),
        })?;
        if e.index != p.index || last.is_some_and(|l| l >= p.index) {
            return Err(AuditDirError::Entry {
                index: p.index,
                problem: format!(
                    "out of order (the entry says {}): entries were reordered",
                    e.index
                ),
            });
        }
        last = Some(p.index);
        let cp = cps
            .iter()
            .find(|c| c.2.size == p.tree_size)
            .ok_or_else(|| AuditDirError::Entry {
                index: p.index,
                problem: format!(
                    "its proof refers to a tree of {} entries whose checkpoint is not kept",
                    p.tree_size
                ),
            })?;
        let proof = decode_hashes(
            &p.proof,
            &d.p("proofs.jsonl"),
            &format!("inclusion proof of entry {}", p.index),
        )?;
        merkle::verify_inclusion(
            &merkle::leaf_hash(line),
            p.index,
            p.tree_size,
            &proof,
            &cp.2.root,
        )
        .map_err(|err| AuditDirError::Entry {
            index: p.index,
            problem: format!("inclusion proof fails ({err}): it was changed"),
        })?;
    }
    check_indices(d, &proofs, lines)
}

/// A party copy's entries against `indices`, the list of what its pulls received: names the
/// first index received but no longer in `entries.jsonl`, or the first one there that no
/// pull received. The proofs' indices are already known to match the entries'.
fn check_indices(d: &AuditDir, proofs: &[Vec<u8>], lines: &[Vec<u8>]) -> Result<()> {
    let Some(received) = d.indices()? else {
        return Err(file_err(
            &d.p("indices"),
            "missing: it lists the entries each pull received, without it a removed entry cannot be seen (pull again into a new directory)",
        ));
    };
    let mut held = Vec::with_capacity(proofs.len());
    for p in proofs {
        let p: ProofLine =
            serde_json::from_slice(p).map_err(|e| file_err(&d.p("proofs.jsonl"), e))?;
        held.push(p.index);
    }
    let mut h = held.iter().peekable();
    for &want in &received {
        match h.peek() {
            Some(&&got) if got == want => {
                h.next();
            }
            Some(&&got) if got < want => {
                return Err(AuditDirError::Entry {
                    index: got,
                    problem: "in entries.jsonl and proofs.jsonl but no pull received it (it is not in indices): it was added".into(),
                });
            }
            _ => {
                return Err(AuditDirError::Entry {
                    index: want,
                    problem: format!(
                        "missing from entries.jsonl and proofs.jsonl: a pull received it (indices lists it) but the copy holds {} of the {} entries received: it was removed or lost",
                        lines.len(),
                        received.len()
                    ),
                });
            }
        }
    }
    if let Some(&extra) = h.next() {
        return Err(AuditDirError::Entry {
            index: extra,
            problem: "in entries.jsonl and proofs.jsonl but no pull received it (it is not in indices): it was added".into(),
        });
    }
    Ok(())
}
