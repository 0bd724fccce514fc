//! The audit log on disk: an append-only file of entries, a derived offset index, and the
//! hashes of complete Merkle subtrees (RFC 9162 §2.1), one file per tree level.
//!
//! Layout of `DATA/audit/`:
//!
//! | file | content | durable by |
//! |---|---|---|
//! | `entries.log` | records `len (u32 BE) ‖ entry bytes ‖ first 4 bytes of the leaf hash` | `fdatasync` at every commit |
//! | `entries.idx` | one `u64` BE byte offset per entry | derived; rebuilt at open |
//! | `level-KK.hashes` | 32-byte hashes of complete subtrees of 2^KK leaves, in order | derived; rebuilt at open |
//! | `answered` | the signed checkpoint last given in answers (receipts, indices), and its size | `fdatasync` before that answer |
//!
//! `entries.log` is the record; the index and hash files are recomputed from it when they
//! lag after a crash. A commit writes the entries and calls `fdatasync` on `entries.log`
//! before any receipt or disclosure depends on them (log before disclose), then records
//! the signed checkpoint it is about to answer with in `answered` and `fdatasync`s that
//! too ([`AuditLog::answer`]). A record past the answered size that is cut short or fails
//! its check at the tail (a torn tail) was never answered: it is removed at open and the
//! relay says so. A record at or below it that fails its check is damage, never a torn
//! tail, and a log shorter than it lost answered entries: the log refuses to open in both
//! cases, as for a damaged record in the middle.
//!
//! Proofs and roots read O(log n) hashes with `pread` and never rebuild the tree.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use filet_proto::merkle::{self, Hash, HashStore, HashStoreMut};

/// Number of level files the tree can have (2^63 leaves).
const LEVELS: usize = 64;
/// Bytes of a record around its entry: length prefix and check.
const RECORD_OVERHEAD: u64 = 8;

/// Errors of the audit log store.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// A file could not be read or written.
    #[error("audit log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A record before the tail fails its check: the log is damaged and must be restored.
    #[error("audit log {path} is damaged at entry {index} (byte {offset}): {problem}; restore the data directory from a backup")]
    Corrupt {
        /// `entries.log`.
        path: PathBuf,
        /// The entry index.
        index: u64,
        /// The byte offset of its record.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// The log holds fewer entries than the checkpoint given in answers covered.
    #[error("audit log {path} holds {size} entries, but answers (receipts) were given with a checkpoint of {answered} entries (recorded in {answered_path}): answered entries were lost; restore the data directory from a backup")]
    Shorter {
        /// `entries.log`.
        path: PathBuf,
        /// Entries it holds.
        size: u64,
        /// The answered size.
        answered: u64,
        /// The `answered` file.
        answered_path: PathBuf,
    },
    /// The `answered` file cannot be read or written, or is damaged.
    #[error("{path}: {problem}")]
    Answered {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An index beyond the committed log.
    #[error("audit entry {index} does not exist (the log has {size} entries)")]
    OutOfRange {
        /// Asked for.
        index: u64,
        /// Committed size.
        size: u64,
    },
    /// An entry is larger than the format allows.
    #[error("audit entry of {0} bytes is too large")]
    TooLarge(usize),
}

type Result<T> = std::result::Result<T, AuditLogError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AuditLogError + '_ {
    move |source| AuditLogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What [`AuditLog::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries in the log.
    pub size: u64,
    /// Bytes of an incomplete last record that were removed (never synced, never
    /// acknowledged).
    pub torn_tail_bytes: u64,
    /// Index and hash entries recomputed because they lagged behind `entries.log`.
    pub rebuilt_derived: u64,
    /// What the full scan of the log learned, for the store's cross-check.
    pub facts: LogFacts,
    /// The signed checkpoint last given in answers (size, note), if any was recorded.
    pub answered: Option<(u64, String)>,
}

/// Facts the start-up scan reads off the entries, without parsing them in full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFacts {
    /// Every `posted` entry: (index, alert id).
    pub posted: Vec<(u64, filet_proto::AlertId)>,
    /// Alerts with a `voided` entry.
    pub voided: std::collections::HashSet<filet_proto::AlertId>,
    /// The highest posted index of any alert with a `delivered` or `acknowledged` entry
    /// (the batch of that post, and every batch before it, reached the store: deliveries
    /// happen only after a batch is durable), or of a `relay_stopped` entry (a clean stop
    /// stores everything first). A post at or below it missing from the store means the
    /// store lost data.
    pub proven: Option<u64>,
}

/// The event name and alert id of an entry, read from its fixed prefix
/// (`{"v":1,"index":N,"time":"…","event":"NAME","alert":"ID"…`).
fn event_and_alert(bytes: &[u8]) -> Option<(&[u8], Option<filet_proto::AlertId>)> {
    const EV: &[u8] = b"\"event\":\"";
    let head = bytes.get(..bytes.len().min(96))?;
    let at = head.windows(EV.len()).position(|w| w == EV)? + EV.len();
    let rest = bytes.get(at..)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let name = &rest[..end];
    const AL: &[u8] = b"\",\"alert\":\"";
    let alert = rest
        .get(end..end + AL.len())
        .filter(|p| *p == AL)
        .and_then(|_| rest.get(end + AL.len()..end + AL.len() + 26))
        .and_then(|id| std::str::from_utf8(id).ok())
        .and_then(|id| id.parse().ok());
    Some((name, alert))
}

/// Read-only files shared by the writer and every reader.
struct Files {
    dir: PathBuf,
    entries: File,
    index: File,
    levels: [OnceLock<File>; LEVELS],
    /// Entries whose bytes, index and hashes are written and synced: readers see `< size`.
    committed: AtomicU64,
}

impl Files {
    fn level_path(dir: &Path, level: usize) -> PathBuf {
        dir.join(format!("level-{level:02}.hashes"))
    }

    fn level(&self, level: usize) -> Result<&File> {
        let slot = self.levels.get(level).ok_or_else(|| AuditLogError::Io {
            path: self.dir.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "tree level out of range"),
        })?;
        if let Some(f) = slot.get() {
            return Ok(f);
        }
        let path = Self::level_path(&self.dir, level);
        let f = File::open(&path).map_err(io_err(&path))?;
        Ok(slot.get_or_init(|| f))
    }

    fn read_hash(&self, level: usize, index: u64) -> Result<Hash> {
        let mut h = [0u8; 32];
        let path = Self::level_path(&self.dir, level);
        self.level(level)?
            .read_exact_at(&mut h, index * 32)
            .map_err(io_err(&path))?;
        Ok(h)
    }

    /// The entry bytes of record `index`, found through the index; `end` is the length
    /// of `entries.log` it may lie in. The offset and the length read from disk are
    /// checked before anything is allocated from them.
    fn read_record(&self, index: u64, end: u64) -> Result<Vec<u8>> {
        let off = self.read_offset(index)?;
        let bad = |problem: String| AuditLogError::Corrupt {
            path: self.dir.join("entries.idx"),
            index,
            offset: off,
            problem,
        };
        if off.checked_add(RECORD_OVERHEAD).is_none_or(|e| e > end) {
            return Err(bad(format!(
                "the index gives byte {off}, past the {end} bytes of entries.log"
            )));
        }
        let path = self.dir.join("entries.log");
        let mut len = [0u8; 4];
        self.entries
            .read_exact_at(&mut len, off)
            .map_err(io_err(&path))?;
        let len = u32::from_be_bytes(len) as u64;
        if len == 0
            || len > filet_proto::audit::MAX_ENTRY_LEN as u64
            || off + RECORD_OVERHEAD + len > end
        {
            return Err(bad(format!(
                "the index gives byte {off}, where entries.log holds no whole record (length {len})"
            )));
        }
        let mut b = vec![0u8; len as usize];
        self.entries
            .read_exact_at(&mut b, off + 4)
            .map_err(io_err(&path))?;
        Ok(b)
    }

    fn read_offset(&self, index: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.index
            .read_exact_at(&mut b, index * 8)
            .map_err(io_err(&self.dir.join("entries.idx")))?;
        Ok(u64::from_be_bytes(b))
    }
}

/// A cheap, cloneable, thread-safe read handle on the committed log.
#[derive(Clone)]
pub struct AuditReader {
    files: Arc<Files>,
}

impl AuditReader {
    /// Entries committed (durable and visible).
    pub fn size(&self) -> u64 {
        self.files.committed.load(Ordering::Acquire)
    }

    /// The bytes of entry `index`, checked against the stored leaf hash.
    ///
    /// # Errors
    /// [`AuditLogError::OutOfRange`] past the committed size, [`AuditLogError::Corrupt`] if
    /// the bytes on disk no longer match their hash, I/O errors.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>> {
        let size = self.size();
        if index >= size {
            return Err(AuditLogError::OutOfRange { index, size });
        }
        let f = &self.files;
        let end = f
            .entries
            .metadata()
            .map_err(io_err(&f.dir.join("entries.log")))?
            .len();
        let bytes = f.read_record(index, end)?;
        let (path, offset) = (f.dir.join("entries.log"), f.read_offset(index)?);
        let want = f.read_hash(0, index)?;
        if merkle::leaf_hash(&bytes) != want {
            return Err(AuditLogError::Corrupt {
                path,
                index,
                offset,
                problem: "entry bytes do not match their leaf hash".into(),
            });
        }
        Ok(bytes)
    }

    /// The root of the tree of the first `size` entries (`size` ≤ committed size).
    ///
    /// # Errors
    /// Out of range or I/O.
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        merkle::root(self, size)
    }

    /// Inclusion proof of `index` in the tree of `size` (RFC 9162 §2.1.3.1).
    ///
    /// # Errors
    /// Out of range or I/O.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        self.check_size(size)?;
        merkle::inclusion_proof(self, index, size).map_err(|e| proof_err(e, index, size))
    }

    /// Consistency proof from `old` to `new` entries (RFC 9162 §2.1.4.1).
    ///
    /// # Errors
    /// Out of range or I/O.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        self.check_size(new)?;
        merkle::consistency_proof(self, old, new).map_err(|e| proof_err(e, old, new))
    }

    fn check_size(&self, size: u64) -> Result<()> {
        let committed = self.size();
        if size > committed {
            return Err(AuditLogError::OutOfRange {
                index: size,
                size: committed,
            });
        }
        Ok(())
    }
}

fn proof_err(e: merkle::ProofError<AuditLogError>, index: u64, size: u64) -> AuditLogError {
    match e {
        merkle::ProofError::Store(e) => e,
        _ => AuditLogError::OutOfRange { index, size },
    }
}

impl HashStore for AuditReader {
    type Error = AuditLogError;
    fn get(&self, level: u8, index: u64) -> Result<Hash> {
        self.files.read_hash(level as usize, index)
    }
}

/// The writer: appends entries, keeps derived files in step, syncs.
///
/// Owned by the single commit thread. Readers get an [`AuditReader`].
pub struct AuditLog {
    files: Arc<Files>,
    entries_w: File,
    index_w: File,
    levels_w: Vec<File>,
    /// Hashes on disk per level (written, maybe not synced).
    level_len: Vec<u64>,
    /// Hashes computed in this batch, not yet written, per level.
    pending: Vec<Vec<Hash>>,
    pending_entries: Vec<u8>,
    pending_index: Vec<u8>,
    /// Entries appended (including pending).
    size: u64,
    /// End of `entries.log` including pending bytes.
    end_offset: u64,
    /// The `answered` file.
    answered: AnsweredFile,
}

impl HashStore for AuditLog {
    type Error = AuditLogError;
    fn get(&self, level: u8, index: u64) -> Result<Hash> {
        let l = level as usize;
        let on_disk = self.level_len.get(l).copied().unwrap_or(0);
        if index >= on_disk {
            let i = (index - on_disk) as usize;
            return self.pending.get(l).and_then(|p| p.get(i)).copied().ok_or(
                AuditLogError::OutOfRange {
                    index,
                    size: on_disk,
                },
            );
        }
        self.files.read_hash(l, index)
    }
}

impl HashStoreMut for AuditLog {
    fn push(&mut self, level: u8, hash: Hash) -> Result<()> {
        let l = level as usize;
        while self.pending.len() <= l {
            self.pending.push(Vec::new());
        }
        self.pending[l].push(hash);
        Ok(())
    }
}

fn open_rw(path: &Path) -> Result<File> {
    create_rw(path, true)
}

/// `answered`: the signed checkpoint last given in answers. Two slots of [`SLOT`] bytes,
/// written in turn and `fdatasync`ed, so that a write cut by a power loss leaves the
/// other, older, slot whole. A slot: `FILETAN1` ‖ size (u64 BE) ‖ note length (u32 BE) ‖
/// note ‖ zero padding ‖ the first 8 bytes of SHA-256 of everything before them.
struct AnsweredFile {
    path: PathBuf,
    file: File,
    /// The slot the next write goes to.
    next: u64,
}

const SLOT: usize = 4096;
const ANSWERED_MAGIC: &[u8; 8] = b"FILETAN1";

impl AnsweredFile {
    fn open(dir: &Path) -> Result<(AnsweredFile, Option<(u64, String)>)> {
        let path = dir.join("answered");
        let bad = |problem: String| AuditLogError::Answered {
            path: path.clone(),
            problem,
        };
        let file = create_rw(&path, false)?;
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        if bytes.len() > 2 * SLOT {
            return Err(bad(format!(
                "{} bytes, at most {} expected: restore the data directory from a backup",
                bytes.len(),
                2 * SLOT
            )));
        }
        let mut best: Option<(u64, String, u64)> = None;
        for slot in 0..2u64 {
            let Some(b) = bytes.get(slot as usize * SLOT..(slot as usize + 1) * SLOT) else {
                continue;
            };
            if let Some((size, note)) = Self::decode(b) {
                if best.as_ref().is_none_or(|(s, _, _)| size > *s) {
                    best = Some((size, note, slot));
                }
            }
        }
        if best.is_none() && bytes.iter().any(|b| *b != 0) {
            return Err(bad(
                "damaged (no slot is whole); it holds the checkpoint last given in receipts: restore the data directory from a backup".into(),
            ));
        }
        let next = best.as_ref().map_or(0, |(_, _, slot)| 1 - slot);
        Ok((
            AnsweredFile { path, file, next },
            best.map(|(size, note, _)| (size, note)),
        ))
    }

    fn decode(b: &[u8]) -> Option<(u64, String)> {
        if b.get(..8)? != ANSWERED_MAGIC {
            return None;
        }
        let size = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        let len = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?) as usize;
        if len > SLOT - 28 {
            return None;
        }
        let body = b.get(..SLOT - 8)?;
        let d = ring::digest::digest(&ring::digest::SHA256, body);
        if d.as_ref()[..8] != *b.get(SLOT - 8..)? {
            return None;
        }
        let note = String::from_utf8(b.get(20..20 + len)?.to_vec()).ok()?;
        Some((size, note))
    }

    fn write(&mut self, size: u64, note: &str) -> Result<()> {
        if note.len() > SLOT - 28 {
            return Err(AuditLogError::Answered {
                path: self.path.clone(),
                problem: format!("a checkpoint of {} bytes does not fit", note.len()),
            });
        }
        let mut b = vec![0u8; SLOT];
        b[..8].copy_from_slice(ANSWERED_MAGIC);
        b[8..16].copy_from_slice(&size.to_be_bytes());
        b[16..20].copy_from_slice(&(note.len() as u32).to_be_bytes());
        b[20..20 + note.len()].copy_from_slice(note.as_bytes());
        let d = ring::digest::digest(&ring::digest::SHA256, &b[..SLOT - 8]);
        b[SLOT - 8..].copy_from_slice(&d.as_ref()[..8]);
        self.file
            .write_all_at(&b, self.next * SLOT as u64)
            .map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.next = 1 - self.next;
        Ok(())
    }
}

/// Opens (or creates, mode 0600, its name made durable) a file for reading and writing;
/// `append` for the record files.
fn create_rw(path: &Path, append: bool) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let existed = path.exists();
    let f = OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    if !existed {
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
    }
    Ok(f)
}

impl AuditLog {
    /// Opens (or creates) the log in `dir`, checks `entries.log`, removes a torn tail past
    /// the answered size, and brings the derived files in step.
    ///
    /// # Errors
    /// [`AuditLogError::Corrupt`] when a record before the tail, or at or below the
    /// answered size, is damaged; [`AuditLogError::Shorter`] when the log holds fewer
    /// entries than were answered; I/O errors.
    pub fn open(dir: &Path) -> Result<(AuditLog, Recovery)> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let entries_path = dir.join("entries.log");
        let index_path = dir.join("entries.idx");
        let entries_w = create_rw(&entries_path, true)?;
        let index_w = open_rw(&index_path)?;
        let mut rec = Recovery::default();
        let (answered, said) = AnsweredFile::open(dir)?;
        let answered_size = said.as_ref().map_or(0, |(size, _)| *size);
        rec.answered = said;

        // 1. How many entries does the index vouch for? Trust it only as far as its last
        //    offset points at a whole, valid record.
        let data_len = entries_w.metadata().map_err(io_err(&entries_path))?.len();
        let idx_len = index_w.metadata().map_err(io_err(&index_path))?.len() / 8;
        let read_record = |offset: u64| -> Option<(u64, Hash)> {
            let mut len = [0u8; 4];
            entries_w.read_exact_at(&mut len, offset).ok()?;
            let len = u32::from_be_bytes(len) as u64;
            if len == 0
                || len > filet_proto::audit::MAX_ENTRY_LEN as u64
                || offset + len + RECORD_OVERHEAD > data_len
            {
                return None;
            }
            let mut buf = vec![0u8; len as usize + 4];
            entries_w.read_exact_at(&mut buf, offset + 4).ok()?;
            let (bytes, check) = buf.split_at(len as usize);
            let leaf = merkle::leaf_hash(bytes);
            (leaf[..4] == *check).then_some((offset + len + RECORD_OVERHEAD, leaf))
        };
        let mut good = idx_len;
        let mut offsets: Vec<u64> = Vec::new();
        let mut tail_leaves: Vec<Hash> = Vec::new();
        let mut end = 0u64;
        while good > 0 {
            let mut b = [0u8; 8];
            index_w
                .read_exact_at(&mut b, (good - 1) * 8)
                .map_err(io_err(&index_path))?;
            if let Some((next, _)) = read_record(u64::from_be_bytes(b)) {
                end = next;
                break;
            }
            good -= 1;
        }
        // 2. Scan forward from there: records written but not indexed (or index lost).
        let mut size = good;
        let mut offset = end;
        while offset < data_len {
            match read_record(offset) {
                Some((next, leaf)) => {
                    offsets.push(offset);
                    tail_leaves.push(leaf);
                    offset = next;
                    size += 1;
                }
                None => break,
            }
        }
        if offset < data_len {
            // Either a torn tail (nothing valid after it) or damage: a record that was
            // answered was synced, so it cannot be torn.
            if size < answered_size {
                return Err(AuditLogError::Corrupt {
                    path: entries_path,
                    index: size,
                    offset,
                    problem: format!(
                        "the record fails its check, and answers were given with a checkpoint of {answered_size} entries ({}): it was synced, so this is damage, not a torn tail",
                        answered.path.display()
                    ),
                });
            }
            if Self::valid_record_after(&entries_w, offset, data_len) {
                return Err(AuditLogError::Corrupt {
                    path: entries_path,
                    index: size,
                    offset,
                    problem: "record fails its check but valid records follow it".into(),
                });
            }
            rec.torn_tail_bytes = data_len - offset;
            entries_w.set_len(offset).map_err(io_err(&entries_path))?;
            entries_w.sync_data().map_err(io_err(&entries_path))?;
        }
        if size < answered_size {
            return Err(AuditLogError::Shorter {
                path: entries_path,
                size,
                answered: answered_size,
                answered_path: answered.path,
            });
        }
        // 3. Index: truncate to `good`, append the scanned offsets.
        index_w.set_len(good * 8).map_err(io_err(&index_path))?;
        let mut buf = Vec::with_capacity(offsets.len() * 8);
        for o in &offsets {
            buf.extend_from_slice(&o.to_be_bytes());
        }
        (&index_w).write_all(&buf).map_err(io_err(&index_path))?;
        rec.rebuilt_derived += offsets.len() as u64;

        let files = Arc::new(Files {
            dir: dir.to_owned(),
            entries: File::open(&entries_path).map_err(io_err(&entries_path))?,
            index: File::open(&index_path).map_err(io_err(&index_path))?,
            levels: std::array::from_fn(|_| OnceLock::new()),
            committed: AtomicU64::new(0),
        });

        // 4. Level files: level k must hold exactly `good >> k` hashes for the indexed part;
        //    truncate extra, then recompute the missing ones by appending leaves again.
        let mut levels_w = Vec::new();
        let mut level_len = Vec::new();
        for k in 0..LEVELS {
            let path = Files::level_path(dir, k);
            if k > 0 && (good >> k) == 0 && !path.exists() {
                break;
            }
            let f = open_rw(&path)?;
            let have = f.metadata().map_err(io_err(&path))?.len() / 32;
            level_len.push(have);
            levels_w.push(f);
        }
        // The hash files are written level by level, unsynced: after a crash a level may
        // lag the ones below it. Keep the longest prefix of L leaves for which every level
        // k holds its floor(L / 2^k) hashes, drop the rest, and rebuild from L.
        let mut leaves_on_disk = level_len.first().copied().unwrap_or(0).min(good);
        for (k, len) in level_len.iter().enumerate().skip(1) {
            let cap = (len.saturating_add(1) << k).saturating_sub(1);
            leaves_on_disk = leaves_on_disk.min(cap);
        }
        let mut log = AuditLog {
            files,
            entries_w,
            index_w,
            levels_w,
            level_len,
            pending: Vec::new(),
            pending_entries: Vec::new(),
            pending_index: Vec::new(),
            size: 0,
            end_offset: offset,
            answered,
        };
        log.truncate_levels(leaves_on_disk)?;
        let mut n = leaves_on_disk;
        while n < good {
            let bytes = log.files.read_record(n, offset)?;
            merkle::append_leaf(&mut log, n, merkle::leaf_hash(&bytes))?;
            n += 1;
            rec.rebuilt_derived += 1;
            if n % 4096 == 0 {
                log.write_pending()?;
            }
        }
        for leaf in tail_leaves {
            merkle::append_leaf(&mut log, n, leaf)?;
            n += 1;
        }
        log.size = n;
        log.write_pending()?;
        log.files.committed.store(n, Ordering::Release);
        rec.size = n;
        rec.facts = log.scan(n)?;
        Ok((log, rec))
    }

    /// Reads every record of the first `n` in order and checks it against the hash the
    /// tree holds for it: a damaged entry anywhere stops the start (the relay never serves
    /// a broken log). Gathers the [`LogFacts`] on the way. One sequential pass.
    fn scan(&self, n: u64) -> Result<LogFacts> {
        use std::io::{BufReader, Read};
        let path = self.files.dir.join("entries.log");
        let lpath = Files::level_path(&self.files.dir, 0);
        let mut entries =
            BufReader::with_capacity(1 << 20, File::open(&path).map_err(io_err(&path))?);
        let mut leaves =
            BufReader::with_capacity(1 << 16, File::open(&lpath).map_err(io_err(&lpath))?);
        let mut facts = LogFacts::default();
        let mut posted_at = std::collections::HashMap::new();
        let mut offset = 0u64;
        let mut buf = Vec::new();
        for index in 0..n {
            let corrupt = |problem: &str| AuditLogError::Corrupt {
                path: path.clone(),
                index,
                offset,
                problem: problem.to_owned(),
            };
            let mut len = [0u8; 4];
            entries
                .read_exact(&mut len)
                .map_err(|_| corrupt("the record is cut short"))?;
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 || len > filet_proto::audit::MAX_ENTRY_LEN {
                return Err(corrupt("the record's length is not valid"));
            }
            buf.resize(len + 4, 0);
            entries
                .read_exact(&mut buf)
                .map_err(|_| corrupt("the record is cut short"))?;
            let (bytes, check) = buf.split_at(len);
            let mut want = [0u8; 32];
            leaves.read_exact(&mut want).map_err(io_err(&lpath))?;
            let leaf = merkle::leaf_hash(bytes);
            if leaf != want || leaf[..4] != *check {
                return Err(corrupt(
                    "the entry's bytes do not match the hash recorded for them",
                ));
            }
            if let Some((name, alert)) = event_and_alert(bytes) {
                match (name, alert) {
                    (b"posted", Some(a)) => {
                        facts.posted.push((index, a));
                        posted_at.insert(a, index);
                    }
                    (b"voided", Some(a)) => {
                        facts.voided.insert(a);
                    }
                    (b"relay_stopped", _) => {
                        // A clean stop: every post before it was stored.
                        facts.proven = Some(facts.proven.map_or(index, |x: u64| x.max(index)));
                    }
                    (b"delivered" | b"acknowledged", Some(a)) => {
                        if let Some(p) = posted_at.get(&a) {
                            facts.proven = Some(facts.proven.map_or(*p, |x: u64| x.max(*p)));
                        }
                    }
                    _ => {}
                }
            }
            offset += len as u64 + RECORD_OVERHEAD;
        }
        Ok(facts)
    }

    /// Whether some valid record starts after `offset` (a cheap scan of the whole tail for
    /// a plausible record boundary; used only on the error path at open).
    fn valid_record_after(f: &File, offset: u64, data_len: u64) -> bool {
        let mut tail = Vec::new();
        let mut buf = vec![0u8; (data_len - offset).min(64 * 1024 * 1024) as usize];
        if f.read_exact_at(&mut buf, offset).is_err() {
            return false;
        }
        tail.extend_from_slice(&buf);
        (1..tail.len()).any(|i| {
            let Some(h) = tail.get(i..i + 4) else {
                return false;
            };
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if len == 0 || len > filet_proto::audit::MAX_ENTRY_LEN {
                return false;
            }
            match tail.get(i + 4..i + 8 + len) {
                Some(rec) => {
                    let (bytes, check) = rec.split_at(len);
                    bytes.first() == Some(&b'{') && merkle::leaf_hash(bytes)[..4] == *check
                }
                None => false,
            }
        })
    }

    /// Keeps only the hashes that derive from the first `leaves` leaves.
    fn truncate_levels(&mut self, leaves: u64) -> Result<()> {
        for (k, f) in self.levels_w.iter().enumerate() {
            let want = leaves >> k;
            if self.level_len[k] > want {
                f.set_len(want * 32)
                    .map_err(io_err(&Files::level_path(&self.files.dir, k)))?;
                self.level_len[k] = want;
            }
        }
        Ok(())
    }

    /// A read handle.
    pub fn reader(&self) -> AuditReader {
        AuditReader {
            files: self.files.clone(),
        }
    }

    /// Entries appended so far (including not yet synced ones).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one entry (its exact bytes); returns its index. Not durable until
    /// [`AuditLog::commit`].
    ///
    /// # Errors
    /// [`AuditLogError::TooLarge`] over the entry limit.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64> {
        if entry.len() > filet_proto::audit::MAX_ENTRY_LEN || entry.is_empty() {
            return Err(AuditLogError::TooLarge(entry.len()));
        }
        let index = self.size;
        let leaf = merkle::leaf_hash(entry);
        self.pending_index
            .extend_from_slice(&self.end_offset.to_be_bytes());
        self.pending_entries
            .extend_from_slice(&(entry.len() as u32).to_be_bytes());
        self.pending_entries.extend_from_slice(entry);
        self.pending_entries.extend_from_slice(&leaf[..4]);
        self.end_offset += entry.len() as u64 + RECORD_OVERHEAD;
        merkle::append_leaf(self, index, leaf)?;
        self.size += 1;
        Ok(index)
    }

    fn write_pending(&mut self) -> Result<()> {
        let dir = self.files.dir.clone();
        if !self.pending_entries.is_empty() {
            (&self.entries_w)
                .write_all(&self.pending_entries)
                .map_err(io_err(&dir.join("entries.log")))?;
            self.pending_entries.clear();
        }
        if !self.pending_index.is_empty() {
            (&self.index_w)
                .write_all(&self.pending_index)
                .map_err(io_err(&dir.join("entries.idx")))?;
            self.pending_index.clear();
        }
        for k in 0..self.pending.len() {
            if self.pending[k].is_empty() {
                continue;
            }
            while self.levels_w.len() <= k {
                let path = Files::level_path(&dir, self.levels_w.len());
                self.levels_w.push(open_rw(&path)?);
                self.level_len.push(0);
            }
            let buf: Vec<u8> = self.pending[k].iter().flatten().copied().collect();
            (&self.levels_w[k])
                .write_all(&buf)
                .map_err(io_err(&Files::level_path(&dir, k)))?;
            self.level_len[k] += self.pending[k].len() as u64;
            self.pending[k].clear();
        }
        Ok(())
    }

    /// Writes everything appended and makes it durable: `fdatasync` on `entries.log` (the
    /// derived files are rebuilt from it after a crash). Then readers see the new entries.
    /// Returns the committed size.
    ///
    /// # Errors
    /// I/O errors; after one, the relay must stop (nothing after it is acknowledged).
    pub fn commit(&mut self) -> Result<u64> {
        self.write_pending()?;
        self.entries_w
            .sync_data()
            .map_err(io_err(&self.files.dir.join("entries.log")))?;
        self.files.committed.store(self.size, Ordering::Release);
        Ok(self.size)
    }

    /// Records, durably (`fdatasync`), the signed checkpoint of `size` entries that is
    /// about to be given in answers. Call it after [`AuditLog::commit`] and before
    /// answering: at open, no record below it is taken for a torn tail, and a log shorter
    /// than it is refused.
    ///
    /// # Errors
    /// I/O errors (nothing may then be answered), a note too long for a slot.
    pub fn answer(&mut self, size: u64, note: &str) -> Result<()> {
        self.answered.write(size, note)
    }

    /// The root of the first `size` entries, as appended (committed or not).
    ///
    /// # Errors
    /// I/O errors.
    pub fn root(&self, size: u64) -> Result<Hash> {
        merkle::root(self, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Vec<u8> {
        format!("{{\"v\":1,\"index\":{i}}}").into_bytes()
    }

    fn reference_root(n: u64) -> Hash {
        let mut t = merkle::MemoryTree::new();
        for i in 0..n {
            t.push_leaf(&entry(i));
        }
        t.root()
    }

    #[test]
    fn appends_commits_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec) = AuditLog::open(dir.path()).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..37 {
            assert_eq!(log.append(&entry(i)).unwrap(), i);
        }
        let reader = log.reader();
        assert_eq!(reader.size(), 0, "nothing visible before commit");
        assert_eq!(log.commit().unwrap(), 37);
        assert_eq!(reader.size(), 37);
        assert_eq!(reader.entry(5).unwrap(), entry(5));
        assert_eq!(reader.root(37).unwrap(), reference_root(37));
        assert_eq!(reader.root(20).unwrap(), reference_root(20));
        let proof = reader.inclusion_proof(5, 37).unwrap();
        merkle::verify_inclusion(
            &merkle::leaf_hash(&entry(5)),
            5,
            37,
            &proof,
            &reference_root(37),
        )
        .unwrap();
        let cproof = reader.consistency_proof(20, 37).unwrap();
        merkle::verify_consistency(20, 37, &reference_root(20), &reference_root(37), &cproof)
            .unwrap();
        drop((log, reader));

        let (mut log, rec) = AuditLog::open(dir.path()).unwrap();
        assert_eq!(rec.size, 37);
        assert_eq!(rec.torn_tail_bytes, 0);
        assert_eq!(log.append(&entry(37)).unwrap(), 37);
        log.commit().unwrap();
        assert_eq!(log.reader().root(38).unwrap(), reference_root(38));
    }

    #[test]
    fn removes_a_torn_tail_and_rebuilds_derived_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AuditLog::open(dir.path()).unwrap();
        for i in 0..10 {
            log.append(&entry(i)).unwrap();
        }
        log.commit().unwrap();
        drop(log);
        // A crash mid-write: half a record at the end; the index and level files lost.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("entries.log"))
            .unwrap();
        f.write_all(&[0, 0, 0, 50, b'{', b'"']).unwrap();
        File::create(dir.path().join("entries.idx")).unwrap();
        File::create(dir.path().join("level-01.hashes")).unwrap();
        let (log, rec) = AuditLog::open(dir.path()).unwrap();
        assert_eq!(rec.size, 10);
        assert_eq!(rec.torn_tail_bytes, 6);
        assert_eq!(log.reader().root(10).unwrap(), reference_root(10));
        assert_eq!(log.reader().entry(9).unwrap(), entry(9));
    }

    #[test]
    fn refuses_damage_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AuditLog::open(dir.path()).unwrap();
        for i in 0..10 {
            log.append(&entry(i)).unwrap();
        }
        log.commit().unwrap();
        drop(log);
        let path = dir.path().join("entries.log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 0x01; // inside entry 1
        std::fs::write(&path, &bytes).unwrap();
        File::create(dir.path().join("entries.idx")).unwrap();
        let err = AuditLog::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, AuditLogError::Corrupt { index: 1, .. }),
            "{err}"
        );
        // A reader also notices a changed byte that the index still points at.
        let dir2 = tempfile::tempdir().unwrap();
        let (mut log, _) = AuditLog::open(dir2.path()).unwrap();
        log.append(&entry(0)).unwrap();
        log.commit().unwrap();
        let r = log.reader();
        let p2 = dir2.path().join("entries.log");
        let mut b = std::fs::read(&p2).unwrap();
        b[6] ^= 0x20;
        std::fs::write(&p2, &b).unwrap();
        assert!(matches!(
            r.entry(0),
            Err(AuditLogError::Corrupt { index: 0, .. })
        ));
    }

    #[test]
    fn an_answered_record_is_never_cut_as_a_torn_tail_and_a_shorter_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AuditLog::open(dir.path()).unwrap();
        for i in 0..4 {
            log.append(&entry(i)).unwrap();
        }
        log.commit().unwrap();
        log.answer(3, "a note").unwrap();
        log.answer(4, "a note again").unwrap();
        drop(log);
        let path = dir.path().join("entries.log");
        let good = std::fs::read(&path).unwrap();
        // The last record damaged: damage, not a torn tail.
        let mut b = good.clone();
        let n = b.len();
        b[n - 6] ^= 0x01;
        std::fs::write(&path, &b).unwrap();
        let err = AuditLog::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, AuditLogError::Corrupt { index: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not a torn tail"), "{err}");
        // The log cut before the answered size: refused, naming both files and sizes.
        std::fs::write(&path, &good[..good.len() - entry(3).len() - 8]).unwrap();
        let err = AuditLog::open(dir.path()).err().unwrap();
        assert!(
            matches!(
                err,
                AuditLogError::Shorter {
                    size: 3,
                    answered: 4,
                    ..
                }
            ),
            "{err}"
        );
        // Whole again, the answered checkpoint is read back.
        std::fs::write(&path, &good).unwrap();
        let (_, rec) = AuditLog::open(dir.path()).unwrap();
        assert_eq!(rec.answered, Some((4, "a note again".to_owned())));
    }

    #[test]
    fn a_damaged_index_offset_is_an_error_naming_the_file_and_offset_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AuditLog::open(dir.path()).unwrap();
        for i in 0..10 {
            log.append(&entry(i)).unwrap();
        }
        log.commit().unwrap();
        let reader = log.reader();
        drop(log);
        let idx = dir.path().join("entries.idx");
        let mut b = std::fs::read(&idx).unwrap();
        let five = u64::from_be_bytes(b[40..48].try_into().unwrap());
        // Entry 3 points inside entry 5's JSON: its "length" is 0x7B22..., about 2 GB.
        let bad = five + 4;
        b[24..32].copy_from_slice(&bad.to_be_bytes());
        std::fs::write(&idx, &b).unwrap();
        let err = reader.entry(3).err().unwrap();
        assert!(
            matches!(&err, AuditLogError::Corrupt { path, index: 3, offset, .. } if path.ends_with("entries.idx") && *offset == bad),
            "{err}"
        );
        // An offset past the end of the file, near u64::MAX.
        b[24..32].copy_from_slice(&(u64::MAX - 2).to_be_bytes());
        std::fs::write(&idx, &b).unwrap();
        assert!(matches!(
            reader.entry(3),
            Err(AuditLogError::Corrupt { index: 3, .. })
        ));
        // At open, rebuilding the hashes through the index meets it too.
        b[24..32].copy_from_slice(&bad.to_be_bytes());
        std::fs::write(&idx, &b).unwrap();
        drop(reader);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("level-00.hashes"))
            .unwrap()
            .set_len(2 * 32)
            .unwrap();
        let err = AuditLog::open(dir.path()).err().unwrap();
        assert!(
            matches!(&err, AuditLogError::Corrupt { path, index: 3, offset, .. } if path.ends_with("entries.idx") && *offset == bad),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("byte {bad}")), "{err}");
    }
}
