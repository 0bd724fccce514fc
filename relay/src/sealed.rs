//! Alert records sealed under a key per alert, the keys in a file of their own, so that a
//! purge can make the content unrecoverable: sled keeps old versions of a value in its log
//! and pages until it reuses the space, but once an alert's key is overwritten those
//! versions are ciphertext without a key.
//!
//! **The key file** (`store.keys`, beside the store, mode 0600): fixed-size slots of 64
//! bytes, `alert id (16) ‖ key (32) ‖ check (16)`, where the check is the first 16 bytes
//! of SHA-256(`FILETCK1` ‖ id ‖ key); a free slot is 64 zero bytes. A new key is written to
//! a free slot (the first one; the file grows only when none is free, so its size is
//! bounded by the most alerts ever unpurged at once) and `fdatasync`ed before the sled
//! write that uses it; a key is overwritten with zeros, and `fdatasync`ed, after the
//! purged (or removed) record has been flushed to sled.
//!
//! **A sealed value**: `0xFF 'F' 'S' '1'` ‖ nonce (12, random) ‖ ChaCha20-Poly1305 of the
//! encoded record with the alert id as associated data. A record written before sealing
//! existed (and a purged one, which holds nothing to hide) is stored as plain encoded
//! bytes, whose first byte is the first byte of the alert id: the top of its 48-bit
//! millisecond time, never 0xFF before the year 10800.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use filet_proto::AlertId;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::files::open_durable;

/// Bytes of one slot.
pub const SLOT_LEN: usize = 64;
const CHECK_TAG: &[u8; 8] = b"FILETCK1";
/// The first bytes of a sealed value.
pub const SEALED_MAGIC: &[u8; 4] = b"\xffFS1";

/// `store.keys` cannot be read or written, or is damaged (the store reports it as
/// [`crate::store::StoreError::Keys`]).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct KeyFileError {
    /// The key file.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub problem: String,
}

type Result<T> = std::result::Result<T, KeyFileError>;

fn check(id: &[u8; 16], key: &[u8; 32]) -> [u8; 16] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(CHECK_TAG);
    ctx.update(id);
    ctx.update(key);
    let d = ctx.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// The key file: one key per unpurged alert.
pub struct ContentKeys {
    path: PathBuf,
    file: File,
    keys: HashMap<AlertId, (u64, [u8; 32])>,
    free: BTreeSet<u64>,
    slots: u64,
    unsynced: bool,
    rng: SystemRandom,
}

impl ContentKeys {
    /// Opens (or creates, 0600) the key file at `path` and reads every slot.
    ///
    /// # Errors
    /// [`KeyFileError`] for I/O errors, a length that is not whole slots, a damaged
    /// slot or two slots of one alert, naming the file and the slot.
    pub fn open(path: &Path) -> Result<ContentKeys> {
        let io = |e: std::io::Error| KeyFileError {
            path: path.to_owned(),
            problem: e.to_string(),
        };
        let file = open_durable(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let damaged = |problem: String| {
            KeyFileError {
            path: path.to_owned(),
            problem: format!(
                "{problem}; it holds the keys of the alerts' content: restore the data directory (with this file) from a backup"
            ),
        }
        };
        if bytes.len() % SLOT_LEN != 0 {
            return Err(damaged(format!(
                "{} bytes, not a whole number of {SLOT_LEN}-byte slots",
                bytes.len()
            )));
        }
        let mut keys = HashMap::new();
        let mut free = BTreeSet::new();
        for (n, slot) in bytes.chunks_exact(SLOT_LEN).enumerate() {
            let n = n as u64;
            if slot.iter().all(|b| *b == 0) {
                free.insert(n);
                continue;
            }
            let mut id = [0u8; 16];
            let mut key = [0u8; 32];
            id.copy_from_slice(&slot[..16]);
            key.copy_from_slice(&slot[16..48]);
            if slot[48..] != check(&id, &key) {
                return Err(damaged(format!("slot {n} is damaged (its check is wrong)")));
            }
            if let Some((other, _)) = keys.insert(AlertId(id), (n, key)) {
                return Err(damaged(format!(
                    "slots {other} and {n} both hold a key of alert {}",
                    AlertId(id)
                )));
            }
        }
        Ok(ContentKeys {
            path: path.to_owned(),
            file,
            keys,
            free,
            slots: (bytes.len() / SLOT_LEN) as u64,
            unsynced: false,
            rng: SystemRandom::new(),
        })
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, e: impl std::fmt::Display) -> KeyFileError {
        KeyFileError {
            path: self.path.clone(),
            problem: e.to_string(),
        }
    }

    /// The key of `id`, if the file holds one.
    pub fn get(&self, id: &AlertId) -> Option<&[u8; 32]> {
        self.keys.get(id).map(|(_, k)| k)
    }

    /// The alerts the file holds a key of.
    pub fn alerts(&self) -> Vec<AlertId> {
        self.keys.keys().copied().collect()
    }

    /// How many slots the file has (used and free).
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// The key of `id`: the one the file holds, or a new random one written to a free
    /// slot (durable only after [`ContentKeys::sync`]).
    ///
    /// # Errors
    /// [`KeyFileError`] for I/O or randomness errors.
    pub fn key_for(&mut self, id: &AlertId) -> Result<[u8; 32]> {
        if let Some((_, k)) = self.keys.get(id) {
            return Ok(*k);
        }
        let mut key = [0u8; 32];
        self.rng
            .fill(&mut key)
            .map_err(|_| self.io_err("the system's random generator failed"))?;
        let n = self.free.pop_first().unwrap_or(self.slots);
        let mut slot = [0u8; SLOT_LEN];
        slot[..16].copy_from_slice(&id.0);
        slot[16..48].copy_from_slice(&key);
        slot[48..].copy_from_slice(&check(&id.0, &key));
        if let Err(e) = self.file.write_all_at(&slot, n * SLOT_LEN as u64) {
            self.free.insert(n);
            return Err(self.io_err(e));
        }
        self.slots = self.slots.max(n + 1);
        self.keys.insert(*id, (n, key));
        self.unsynced = true;
        Ok(key)
    }

    /// Overwrites the key of `id` with zeros (durable only after [`ContentKeys::sync`]);
    /// nothing if the file holds none.
    ///
    /// # Errors
    /// [`KeyFileError`] for I/O errors.
    pub fn clear(&mut self, id: &AlertId) -> Result<()> {
        let Some((n, mut key)) = self.keys.remove(id) else {
            return Ok(());
        };
        key.fill(0);
        if let Err(e) = self
            .file
            .write_all_at(&[0u8; SLOT_LEN], n * SLOT_LEN as u64)
        {
            self.keys.insert(*id, (n, key));
            return Err(self.io_err(e));
        }
        self.free.insert(n);
        self.unsynced = true;
        Ok(())
    }

    /// `fdatasync`s the file if it was written since the last sync.
    ///
    /// # Errors
    /// [`KeyFileError`] for I/O errors.
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file.sync_data().map_err(|e| self.io_err(e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Seals `plain` (an encoded record of `id`) under `key`.
    ///
    /// # Errors
    /// [`KeyFileError`] if randomness or sealing fails.
    pub fn seal(&self, id: &AlertId, key: &[u8; 32], plain: Vec<u8>) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| self.io_err("the system's random generator failed"))?;
        let k = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| self.io_err("bad key"))?,
        );
        let mut data = plain;
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.0),
            &mut data,
        )
        .map_err(|_| self.io_err("sealing failed"))?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + NONCE_LEN + data.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }
}

/// Whether a stored value is sealed (else it is a plain encoded record).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(SEALED_MAGIC)
}

/// Opens a sealed value of `id`; `None` if it does not open with `key` (damaged, or
/// another alert's).
pub fn open(id: &AlertId, key: &[u8; 32], value: &[u8]) -> Option<Vec<u8>> {
    let rest = value.strip_prefix(SEALED_MAGIC.as_slice())?;
    if rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?);
    let mut data = sealed.to_vec();
    let len = k
        .open_in_place(nonce, Aad::from(id.0), &mut data)
        .ok()?
        .len();
    data.truncate(len);
    Some(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_file_reads_back_its_keys_after_reopening_reuses_cleared_slots_and_names_a_damaged_slot(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.keys");
        let (a, b, c) = (AlertId([1; 16]), AlertId([2; 16]), AlertId([3; 16]));
        let mut keys = ContentKeys::open(&path).unwrap();
        let ka = keys.key_for(&a).unwrap();
        let kb = keys.key_for(&b).unwrap();
        assert_ne!(ka, kb);
        assert_eq!(keys.key_for(&a).unwrap(), ka, "one key per alert");
        keys.sync().unwrap();
        drop(keys);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let mut keys = ContentKeys::open(&path).unwrap();
        assert_eq!(keys.get(&a), Some(&ka));
        assert_eq!(keys.get(&b), Some(&kb));
        let sealed = keys.seal(&a, &ka, b"the content".to_vec()).unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(open(&a, &ka, &sealed).unwrap(), b"the content");
        assert_eq!(open(&b, &ka, &sealed), None, "bound to its alert id");
        assert_eq!(open(&a, &kb, &sealed), None);

        keys.clear(&a).unwrap();
        keys.sync().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * SLOT_LEN);
        assert!(bytes[..SLOT_LEN].iter().all(|x| *x == 0), "slot 0 zeroed");
        assert!(!bytes.windows(32).any(|w| w == ka), "the key is gone");
        // A new alert takes the freed slot: the file does not grow.
        let kc = keys.key_for(&c).unwrap();
        keys.sync().unwrap();
        assert_eq!(keys.slots(), 2);
        drop(keys);
        let keys = ContentKeys::open(&path).unwrap();
        assert_eq!(keys.get(&a), None);
        assert_eq!(keys.get(&c), Some(&kc));
        drop(keys);

        // One flipped bit in slot 1 (b's key).
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT_LEN + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let Err(e) = ContentKeys::open(&path) else {
            panic!("a damaged slot was accepted");
        };
        let msg = e.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("slot 1 is damaged"), "{msg}");

        // A cut file.
        std::fs::write(&path, &bytes[..SLOT_LEN + 10]).unwrap();
        let Err(e) = ContentKeys::open(&path) else {
            panic!("a cut file was accepted");
        };
        assert!(e.to_string().contains("whole number"), "{e}");
    }
}
