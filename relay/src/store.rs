//! The alert store: sled 0.34.7, one packed record per alert.
//!
//! Trees: `alerts` (alert id, 16 bytes → [`AlertRecord`] encoded by `proto::codec`) and
//! `meta` (`audit_len` → the audit log size the store has caught up with, u64 BE;
//! `checkpoint` → the newest signed checkpoint). Mailboxes and every other index are
//! rebuilt in memory from the records at start-up, so a post costs one key.
//!
//! **Durability.** sled 0.34.7 makes writes durable only when `flush` returns, and on
//! Linux its flush uses `sync_file_range`, which survives a process crash but not a power
//! loss. [`Store::flush`] therefore calls `flush` and then `fdatasync` on sled's data file:
//! a receipt rests on a real `fdatasync`. sled writes a value too large for its log pages
//! to a file of its own under `blobs/` and never syncs it: after a batch that held such a
//! value, [`Store::flush`] `fdatasync`s those files and their directory too.
//!
//! **Purge.** A record is stored sealed under a key of its alert kept outside sled, in
//! `store.keys` (see [`crate::sealed`]); a purged record, which holds nothing to hide, is
//! stored plain and its key is overwritten after the record is flushed, so the older
//! versions sled keeps are ciphertext without a key. Order: a new key is `fdatasync`ed
//! before the sled batch that uses it (ciphertext never outlives its key by a crash); a
//! key is cleared only after the flush of the purged or removed record (a crash between
//! leaves a key of a plain or absent record: [`Store::open`] clears it).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use filet_proto::alert::{AlertState, Content, Envelope, FieldSet, HistoryItem};
use filet_proto::codec;
use filet_proto::policy::Disclosure;
use filet_proto::{AlertId, Principal, Timestamp, UnitRef};
use serde::{Deserialize, Serialize};

use crate::sealed::{self, ContentKeys};

/// Errors of the alert store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("alert store {path}: {source}")]
    Sled {
        /// The store directory.
        path: PathBuf,
        /// The cause.
        source: sled::Error,
    },
    /// The fsync after sled's flush failed.
    #[error("alert store {path}: fdatasync: {source}")]
    Sync {
        /// sled's data file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process (another relay on this data directory) holds the store's lock.
    #[error("alert store {path}: another process holds it (is another relay running on this data directory?)")]
    InUse {
        /// The store directory.
        path: PathBuf,
    },
    /// `store.mark` cannot be read or written, or is damaged.
    #[error("{path}: {problem}")]
    Mark {
        /// The mark file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `store.keys` (the keys of the alerts' content) cannot be read or written, or is
    /// damaged.
    #[error("{path}: {problem}")]
    Keys {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A record cannot be decoded.
    #[error("alert store record {key} is damaged: {problem}")]
    Corrupt {
        /// The key (alert id or meta name).
        key: String,
        /// What is wrong.
        problem: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// The acknowledgement of one recipient unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    /// The node that acknowledged.
    pub node: Principal,
    /// When.
    pub at: Timestamp,
    /// Index of its audit entry.
    pub audit_index: u64,
}

/// One recipient unit of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientRecord {
    /// The unit.
    pub unit: UnitRef,
    /// The rules that permitted the disclosure.
    pub rules: Vec<String>,
    /// Their legal bases.
    pub legal_bases: Vec<String>,
    /// Fields disclosed.
    pub fields: FieldSet,
    /// Longest retention of the rules, ms.
    pub retention_ms: i64,
    /// Position in the unit's mailbox.
    pub seq: u64,
    /// Index of the `disclosed` audit entry.
    pub disclosed_index: u64,
    /// Set once a node of the unit acknowledges.
    pub acked: Option<AckRecord>,
}

impl RecipientRecord {
    /// A recipient from a routing decision.
    pub fn new(d: &Disclosure, seq: u64, disclosed_index: u64) -> Self {
        RecipientRecord {
            unit: d.recipient.clone(),
            rules: d.rules.clone(),
            legal_bases: d.legal_bases.clone(),
            fields: d.fields,
            retention_ms: d.retention_ms,
            seq,
            disclosed_index,
            acked: None,
        }
    }
}

/// Everything the relay keeps about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Always kept.
    pub envelope: Envelope,
    /// The whole content; `None` once purged at the end of retention.
    pub content: Option<Content>,
    /// Note of a located / cancel.
    pub note: Option<String>,
    /// Salt of the audit commitment (zeroed when purged).
    pub salt: [u8; 32],
    /// The sender's idempotency key.
    pub idempotency_key: [u8; 16],
    /// Index of the `posted` audit entry.
    pub posted_index: u64,
    /// Recipient units, in unit order.
    pub recipients: Vec<RecipientRecord>,
    /// For an original alert: its current state (follow-ups keep `Active`).
    pub state: AlertState,
    /// For an original alert: its life so far (follow-ups keep it empty).
    pub history: Vec<HistoryItem>,
    /// For an original alert: when it was closed (located, cancelled, expired).
    pub closed_at: Option<Timestamp>,
    /// The content was purged at the end of retention.
    pub purged: bool,
}

impl AlertRecord {
    /// The original alert of this message's thread (itself for an original).
    pub fn root(&self) -> AlertId {
        self.envelope.references.unwrap_or(self.envelope.id)
    }
}

/// The sled database and its trees. Cloning is cheap and shares the database: the commit
/// thread writes, connection tasks read.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    alerts: sled::Tree,
    acks: sled::Tree,
    meta: sled::Tree,
    /// sled's data file, for `fdatasync` after `flush` (see the module doc).
    data_file: Option<Arc<File>>,
    /// A value large enough for sled to write it as a blob file was put since the last
    /// flush: sled never syncs those files, [`Store::flush`] does.
    blobs_written: Arc<std::sync::atomic::AtomicBool>,
    /// The keys of the sealed records, and the alerts whose key goes after the next flush.
    keys: Arc<Mutex<Keys>>,
}

struct Keys {
    file: ContentKeys,
    clear_after_flush: Vec<AlertId>,
}

/// sled 0.34 writes a value to its own file under `blobs/` when its message exceeds a
/// quarter of a segment (512 KiB by default); any value over this size may be one.
const BLOB_CANDIDATE: usize = 64 * 1024;

fn sled_err(path: &Path) -> impl FnOnce(sled::Error) -> StoreError + '_ {
    move |source| StoreError::Sled {
        path: path.to_owned(),
        source,
    }
}

const AUDIT_LEN: &[u8] = b"audit_len";
const CHECKPOINT: &[u8] = b"checkpoint";

impl Store {
    /// The key file of the store in `dir`: beside it, `<dir>.keys`.
    pub fn keys_path(dir: &Path) -> PathBuf {
        dir.with_extension("keys")
    }

    /// Opens (or creates) the store in `dir` and its key file ([`Store::keys_path`]);
    /// clears the keys of alerts that are absent or not sealed (left by a crash between a
    /// purge's flush and its key's clearing, or before a new alert's batch reached sled).
    ///
    /// # Errors
    /// sled's error, naming the directory; key file errors, naming the file.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| match e {
                // sled 0.34.7 reports a held `flock` as an `Other` I/O error with this text.
                sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock") => {
                    StoreError::InUse {
                        path: dir.to_owned(),
                    }
                }
                e => sled_err(dir)(e),
            })?;
        let alerts = db.open_tree("alerts").map_err(sled_err(dir))?;
        let meta = db.open_tree("meta").map_err(sled_err(dir))?;
        let acks = db.open_tree("acks").map_err(sled_err(dir))?;
        // sled 0.34 keeps its log and pages in the file `db` of its directory.
        let data_file = File::open(dir.join("db")).ok().map(Arc::new);
        let mut keys = ContentKeys::open(&Self::keys_path(dir))?;
        for id in keys.alerts() {
            let sealed = alerts
                .get(id.0)
                .map_err(sled_err(dir))?
                .is_some_and(|v| sealed::is_sealed(&v));
            if !sealed {
                keys.clear(&id)?;
            }
        }
        keys.sync()?;
        Ok(Store {
            path: dir.to_owned(),
            db,
            alerts,
            acks,
            meta,
            data_file,
            blobs_written: Arc::default(),
            keys: Arc::new(Mutex::new(Keys {
                file: keys,
                clear_after_flush: Vec::new(),
            })),
        })
    }

    fn keys(&self) -> MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decodes a stored value of alert `id`, opening it if sealed.
    fn decode(&self, id: &AlertId, v: &[u8]) -> Result<AlertRecord> {
        let corrupt = |problem: String| StoreError::Corrupt {
            key: id.to_string(),
            problem,
        };
        let plain;
        let bytes = if sealed::is_sealed(v) {
            let keys = self.keys();
            let Some(key) = keys.file.get(id) else {
                return Err(corrupt(format!(
                    "it is sealed, but {} holds no key for it (restore the data directory, with that file, from a backup)",
                    keys.file.path().display()
                )));
            };
            plain = sealed::open(id, key, v).ok_or_else(|| {
                corrupt(format!(
                    "it does not open with its key in {}",
                    keys.file.path().display()
                ))
            })?;
            &plain[..]
        } else {
            v
        };
        codec::decode_value(bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// Reads one alert.
    ///
    /// # Errors
    /// sled errors; [`StoreError::Corrupt`] if the record does not decode.
    pub fn get(&self, id: &AlertId) -> Result<Option<AlertRecord>> {
        match self.alerts.get(id.0).map_err(sled_err(&self.path))? {
            None => Ok(None),
            Some(v) => self.decode(id, &v).map(Some),
        }
    }

    /// Writes the alerts of one group commit in one sled batch (not durable until
    /// [`Store::flush`]). sled applies a batch atomically, also across a crash: after a
    /// restart the store holds all of these records or none of them, never half of a
    /// batch that rewrote an alert and its follow-up.
    ///
    /// A record is sealed under its alert's key (a new one is written to `store.keys` and
    /// `fdatasync`ed before the batch goes to sled); a purged one is stored plain and its
    /// key is cleared after the next [`Store::flush`].
    ///
    /// # Errors
    /// sled errors; key file errors; encoding errors as [`StoreError::Corrupt`].
    pub fn put_all<'a>(&self, records: impl IntoIterator<Item = &'a AlertRecord>) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut keys = self.keys();
        for rec in records {
            let id = rec.envelope.id;
            let mut bytes = codec::encode_value(rec).map_err(|e| StoreError::Corrupt {
                key: id.to_string(),
                problem: e.to_string(),
            })?;
            if rec.purged {
                keys.clear_after_flush.push(id);
            } else {
                keys.clear_after_flush.retain(|c| *c != id);
                let key = keys.file.key_for(&id)?;
                bytes = keys.file.seal(&id, &key, bytes)?;
            }
            if bytes.len() > BLOB_CANDIDATE {
                self.blobs_written
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            batch.insert(&id.0, bytes);
        }
        // The keys before the ciphertext they open.
        keys.file.sync()?;
        drop(keys);
        self.alerts
            .apply_batch(batch)
            .map_err(sled_err(&self.path))?;
        Ok(())
    }

    /// Records a unit's acknowledgement of an alert, under its own key (alert id ‖ unit),
    /// so that the alert's record is not rewritten (not durable until [`Store::flush`]).
    ///
    /// # Errors
    /// sled errors; encoding errors as [`StoreError::Corrupt`].
    pub fn put_ack(&self, alert: &AlertId, unit: &UnitRef, ack: &AckRecord) -> Result<()> {
        let mut key = alert.0.to_vec();
        key.extend_from_slice(unit.to_string().as_bytes());
        let bytes = codec::encode_value(ack).map_err(|e| StoreError::Corrupt {
            key: format!("ack {alert} {unit}"),
            problem: e.to_string(),
        })?;
        self.acks.insert(key, bytes).map_err(sled_err(&self.path))?;
        Ok(())
    }

    /// Removes one acknowledgement (recovery: its audit entry was not durable).
    ///
    /// # Errors
    /// sled errors.
    pub fn remove_ack(&self, alert: &AlertId, unit: &UnitRef) -> Result<()> {
        let mut key = alert.0.to_vec();
        key.extend_from_slice(unit.to_string().as_bytes());
        self.acks.remove(key).map_err(sled_err(&self.path))?;
        Ok(())
    }

    /// One unit's acknowledgement of an alert, if it acknowledged.
    ///
    /// # Errors
    /// sled errors, a damaged value.
    pub fn ack(&self, alert: &AlertId, unit: &UnitRef) -> Result<Option<AckRecord>> {
        let mut key = alert.0.to_vec();
        key.extend_from_slice(unit.to_string().as_bytes());
        match self.acks.get(key).map_err(sled_err(&self.path))? {
            None => Ok(None),
            Some(v) => codec::decode_value(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("ack {alert} {unit}"),
                    problem: e.to_string(),
                }),
        }
    }

    /// Every acknowledgement, by (alert, unit).
    ///
    /// # Errors
    /// sled errors, damaged keys or values.
    pub fn acks(&self) -> Result<std::collections::HashMap<(AlertId, UnitRef), AckRecord>> {
        let mut out = std::collections::HashMap::new();
        for kv in self.acks.iter() {
            let (k, v) = kv.map_err(sled_err(&self.path))?;
            let bad = |problem: String| StoreError::Corrupt {
                key: format!("ack {k:?}"),
                problem,
            };
            let id: [u8; 16] = k
                .get(..16)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("short key".into()))?;
            let unit: UnitRef = std::str::from_utf8(&k[16..])
                .map_err(|e| bad(e.to_string()))?
                .parse()
                .map_err(|e: filet_proto::principal::NameError| bad(e.to_string()))?;
            let ack: AckRecord = codec::decode_value(&v).map_err(|e| bad(e.to_string()))?;
            out.insert((AlertId(id), unit), ack);
        }
        Ok(out)
    }

    /// Removes one alert (not durable until [`Store::flush`], which then clears its key).
    ///
    /// # Errors
    /// sled errors.
    pub fn remove(&self, id: &AlertId) -> Result<()> {
        self.alerts.remove(id.0).map_err(sled_err(&self.path))?;
        self.keys().clear_after_flush.push(*id);
        for kv in self.acks.scan_prefix(id.0) {
            let (k, _) = kv.map_err(sled_err(&self.path))?;
            self.acks.remove(k).map_err(sled_err(&self.path))?;
        }
        Ok(())
    }

    /// Every record, in id (time) order.
    pub fn iter(&self) -> impl Iterator<Item = Result<AlertRecord>> + '_ {
        self.alerts.iter().map(move |kv| {
            let (k, v) = kv.map_err(sled_err(&self.path))?;
            let id: [u8; 16] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: format!("{k:?}"),
                problem: format!("a key of {} bytes, expected 16", k.len()),
            })?;
            self.decode(&AlertId(id), &v)
        })
    }

    /// Records the audit log size and newest checkpoint this store state goes with.
    ///
    /// # Errors
    /// sled errors.
    pub fn set_audit_state(&self, audit_len: u64, checkpoint: &str) -> Result<()> {
        self.meta
            .insert(AUDIT_LEN, &audit_len.to_be_bytes())
            .map_err(sled_err(&self.path))?;
        self.meta
            .insert(CHECKPOINT, checkpoint.as_bytes())
            .map_err(sled_err(&self.path))?;
        Ok(())
    }

    /// The audit log size and checkpoint last recorded by [`Store::set_audit_state`].
    ///
    /// # Errors
    /// sled errors, damaged values.
    pub fn audit_state(&self) -> Result<(u64, Option<String>)> {
        let len = match self.meta.get(AUDIT_LEN).map_err(sled_err(&self.path))? {
            None => 0,
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: "meta/audit_len".into(),
                    problem: format!("{} bytes, expected 8", v.len()),
                })?;
                u64::from_be_bytes(b)
            }
        };
        let cp = match self.meta.get(CHECKPOINT).map_err(sled_err(&self.path))? {
            None => None,
            Some(v) => Some(
                String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt {
                    key: "meta/checkpoint".into(),
                    problem: "not UTF-8".into(),
                })?,
            ),
        };
        Ok((len, cp))
    }

    /// Makes every write so far durable: sled `flush` (durability in sled 0.34.7 exists
    /// only after it returns), then `fdatasync` on sled's data file, because sled's flush
    /// uses `sync_file_range`, which does not flush the drive cache.
    ///
    /// Then the keys of the records purged or removed before the flush are overwritten
    /// and the key file is `fdatasync`ed.
    ///
    /// # Errors
    /// sled, fsync or key file errors; after one, nothing written since the last
    /// successful flush may be acknowledged.
    pub fn flush(&mut self) -> Result<()> {
        self.db.flush().map_err(sled_err(&self.path))?;
        if self.data_file.is_none() {
            self.data_file = File::open(self.path.join("db")).ok().map(Arc::new);
        }
        if let Some(f) = &self.data_file {
            f.sync_data().map_err(|source| StoreError::Sync {
                path: self.path.join("db"),
                source,
            })?;
        }
        if self
            .blobs_written
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.sync_blobs()?;
        }
        let mut keys = self.keys();
        let keys = &mut *keys;
        while let Some(id) = keys.clear_after_flush.last().copied() {
            keys.file.clear(&id)?;
            keys.clear_after_flush.pop();
        }
        keys.file.sync()
    }

    /// `fdatasync`s sled's blob files and their directory (sled writes them, never syncs
    /// them; the page that points at one is synced by [`Store::flush`]).
    fn sync_blobs(&self) -> Result<()> {
        let dir = self.path.join("blobs");
        let sync_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Sync { path, source }
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(sync_err(&dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(sync_err(&dir))?.path();
            match File::open(&path) {
                Ok(f) => f.sync_data().map_err(sync_err(&path))?,
                // Removed meanwhile (sled deletes blobs of replaced values).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(sync_err(&path)(e)),
            }
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(sync_err(&dir))
    }
}

/// `store.mark`, beside the store: the audit log size below which every post is known to
/// be in the alert store (the size after the last group commit whose store `flush`
/// completed). It lives outside sled on purpose: a store that lost data (a truncated or
/// damaged `db`, an older copy put back) also loses whatever it says about itself, but
/// not this file, so start-up can tell "the last batch was cut by a crash" (its posts are
/// voided: no receipt was given) from "the store lost posts whose receipt was given"
/// (the relay refuses to start).
///
/// Format: 24 bytes, `FILETMK1` ‖ size (u64 big-endian) ‖ the first 8 bytes of
/// SHA-256(`FILETMK1` ‖ size), overwritten in place with every group commit (a process
/// crash keeps it: it is in the page cache) and `fdatasync`ed at most once a second, and
/// at a clean stop (a power loss may take it back by up to a second, which only widens the
/// window of posts that a damaged store could lose undetected to that second). An
/// `fdatasync` per batch cost a quarter of the throughput at one post in flight.
pub struct StoreMark {
    path: PathBuf,
    file: File,
    written: Option<u64>,
    synced: Option<u64>,
    synced_at: std::time::Instant,
}

const MARK_MAGIC: &[u8; 8] = b"FILETMK1";

fn mark_bytes(size: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(MARK_MAGIC);
    b[8..16].copy_from_slice(&size.to_be_bytes());
    let d = ring::digest::digest(&ring::digest::SHA256, &b[..16]);
    b[16..].copy_from_slice(&d.as_ref()[..8]);
    b
}

impl StoreMark {
    /// Opens (or creates) the mark at `path` and returns what it says: `None` for a new
    /// file (a new data directory, or one written by a version without the mark).
    ///
    /// # Errors
    /// [`StoreError::Mark`] for I/O errors and for a file that is not a valid mark
    /// (naming the file and what to do).
    pub fn open(path: &Path) -> Result<(StoreMark, Option<u64>)> {
        let io = |e: std::io::Error| StoreError::Mark {
            path: path.to_owned(),
            problem: e.to_string(),
        };
        let file = open_durable(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let said = if bytes.is_empty() {
            None
        } else {
            let damaged = |what: &str| {
                StoreError::Mark {
                path: path.to_owned(),
                problem: format!(
                    "damaged ({what}); it says up to which audit entry the alert store holds every post: restore the data directory from a backup, or remove the file to check the store against deliveries and acknowledgements only"
                ),
            }
            };
            let b: [u8; 24] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| damaged(&format!("{} bytes, expected 24", bytes.len())))?;
            let size = u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8]));
            if &b[..8] != MARK_MAGIC || mark_bytes(size) != b {
                return Err(damaged("its magic or checksum is wrong"));
            }
            Some(size)
        };
        Ok((
            StoreMark {
                path: path.to_owned(),
                file,
                written: said,
                synced: said,
                synced_at: std::time::Instant::now(),
            },
            said,
        ))
    }

    /// Records that every post of the first `size` audit entries is durable in the
    /// store; `fdatasync`s the file if the last sync is a second old (see the type).
    /// Nothing is written when `size` is what the file says.
    ///
    /// # Errors
    /// [`StoreError::Mark`] for I/O errors.
    pub fn set(&mut self, size: u64) -> Result<()> {
        self.write(size)?;
        if self.synced_at.elapsed() >= std::time::Duration::from_secs(1) {
            self.sync()?;
        }
        Ok(())
    }

    /// As [`StoreMark::set`], and `fdatasync`s now (a clean stop).
    ///
    /// # Errors
    /// [`StoreError::Mark`] for I/O errors.
    pub fn set_and_sync(&mut self, size: u64) -> Result<()> {
        self.write(size)?;
        self.sync()
    }

    fn io_err(&self, e: std::io::Error) -> StoreError {
        StoreError::Mark {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }

    fn write(&mut self, size: u64) -> Result<()> {
        if self.written == Some(size) {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(&mark_bytes(size), 0)
            .map_err(|e| self.io_err(e))?;
        self.written = Some(size);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.synced != self.written {
            self.file.sync_data().map_err(|e| self.io_err(e))?;
            self.synced = self.written;
        }
        self.synced_at = std::time::Instant::now();
        Ok(())
    }
}

/// Opens a small file of the data directory for reading and writing, creating it with mode
/// 0600; a new file and its name are made durable (the file and its directory synced), so
/// it cannot vanish with a power loss.
pub(crate) fn open_durable(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if !existed {
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all())?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(n: u8, note: &str) -> AlertRecord {
        use filet_proto::alert::{Category, Kind, Language, Risk, Status};
        AlertRecord {
            envelope: Envelope {
                id: AlertId([n; 16]),
                kind: Kind::Alert,
                references: None,
                category: Category::Runaway,
                status: Status::Actual,
                risk: Risk::Minor,
                language: Language::FrCa,
                sender: "A/B/c".parse().unwrap(),
                received_at: Timestamp(0),
                expires_at: Timestamp(1),
            },
            content: None,
            note: Some(note.to_owned()),
            salt: [7; 32],
            idempotency_key: [0; 16],
            posted_index: 0,
            recipients: Vec::new(),
            state: AlertState::Active,
            history: Vec::new(),
            closed_at: None,
            purged: false,
        }
    }

    fn purge(mut rec: AlertRecord) -> AlertRecord {
        rec.note = None;
        rec.salt = [0; 32];
        rec.purged = true;
        rec
    }

    #[test]
    fn a_record_is_stored_sealed_and_its_key_is_cleared_only_after_the_flush_of_its_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut store = Store::open(&path).unwrap();
        let a = record(1, "NOTE-IN-CLEAR-A");
        store.put_all([&a]).unwrap();
        store.flush().unwrap();
        let raw = store.alerts.get(a.envelope.id.0).unwrap().unwrap();
        assert!(sealed::is_sealed(&raw));
        assert!(!raw.windows(15).any(|w| w == b"NOTE-IN-CLEAR-A"));
        assert_eq!(store.get(&a.envelope.id).unwrap().unwrap(), a);
        let id = a.envelope.id;
        let purged = purge(a);
        store.put_all([&purged]).unwrap();
        // Not flushed yet: the key stays (a crash here keeps the sealed record readable).
        assert!(store.keys().file.get(&id).is_some());
        store.flush().unwrap();
        assert!(store.keys().file.get(&id).is_none());
        assert_eq!(store.get(&id).unwrap().unwrap(), purged);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.iter().map(Result::unwrap).collect::<Vec<_>>(),
            [purged]
        );
    }

    #[test]
    fn a_plain_record_of_an_older_store_opens_and_a_key_left_by_a_crash_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let legacy = record(1, "written before sealing");
        let kept = record(2, "sealed");
        {
            let mut store = Store::open(&path).unwrap();
            // As a store written before sealing existed: plain encoded bytes.
            store
                .alerts
                .insert(legacy.envelope.id.0, codec::encode_value(&legacy).unwrap())
                .unwrap();
            store.put_all([&kept]).unwrap();
            store.flush().unwrap();
        }
        // Keys of alerts whose record is absent (the batch never reached sled) or plain
        // (purged, crash before the key was cleared).
        {
            let mut keys = ContentKeys::open(&Store::keys_path(&path)).unwrap();
            keys.key_for(&AlertId([9; 16])).unwrap();
            keys.key_for(&legacy.envelope.id).unwrap();
            keys.sync().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.keys().file.alerts(),
            [kept.envelope.id],
            "only the key of the sealed record is left"
        );
        assert_eq!(store.get(&legacy.envelope.id).unwrap().unwrap(), legacy);
        assert_eq!(store.get(&kept.envelope.id).unwrap().unwrap(), kept);
    }

    #[test]
    fn a_sealed_record_without_its_key_is_an_error_naming_the_record_and_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let a = record(1, "x");
        {
            let mut store = Store::open(&path).unwrap();
            store.put_all([&a]).unwrap();
            store.flush().unwrap();
            store.keys().file.clear(&a.envelope.id).unwrap();
            let e = store.get(&a.envelope.id).unwrap_err().to_string();
            assert!(e.contains(&a.envelope.id.to_string()), "{e}");
            assert!(
                e.contains(&Store::keys_path(&path).display().to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn a_new_mark_says_nothing_and_a_set_one_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.mark");
        let (mut mark, said) = StoreMark::open(&path).unwrap();
        assert_eq!(said, None);
        mark.set(41).unwrap();
        mark.set(1_000_003).unwrap();
        drop(mark);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"FILETMK1");
        assert_eq!(bytes[8..16], 1_000_003u64.to_be_bytes());
        assert_eq!(bytes.len(), 24);
        assert_eq!(StoreMark::open(&path).unwrap().1, Some(1_000_003));
    }

    #[test]
    fn a_damaged_mark_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.mark");
        StoreMark::open(&path).unwrap().0.set(7).unwrap();
        let good = std::fs::read(&path).unwrap();
        for (what, bytes) in [
            ("a flipped size bit", {
                let mut b = good.clone();
                b[15] ^= 1;
                b
            }),
            ("a cut file", good[..20].to_vec()),
            ("another magic", {
                let mut b = good.clone();
                b[0] = b'X';
                b
            }),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let Err(e) = StoreMark::open(&path) else {
                panic!("{what}: accepted");
            };
            let msg = e.to_string();
            assert!(
                msg.starts_with(&path.display().to_string()),
                "{what}: {msg}"
            );
            assert!(msg.contains("damaged"), "{what}: {msg}");
        }
    }
}
