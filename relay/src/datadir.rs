//! The data directory as a whole: one relay at a time (an exclusive lock taken before any
//! other file is opened), readable by its owner only (directories 0700, files 0600), and
//! the keys and log origin the first start creates in it ([`Keys`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filet_proto::checkpoint::NoteSigner;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::RelayError;

fn data_err(path: &Path, e: impl std::fmt::Display) -> RelayError {
    RelayError::Data {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Creates `dir` and its missing parents with mode 0700 (never more open, whatever the
/// umask: the umask only removes bits).
///
/// # Errors
/// [`RelayError::Data`] naming the directory.
pub fn create_private_dir(dir: &Path) -> Result<(), RelayError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| data_err(dir, e))
}

/// The exclusive lock on a data directory (`DIR/lock`, holding the pid of the relay that
/// holds it). Released when dropped (or when the process ends, however it ends).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Creates the data directory if needed (0700) and takes its lock, before anything in
    /// it is opened: a second relay on the same directory stops here, having changed no
    /// file.
    ///
    /// # Errors
    /// [`RelayError::Data`] naming the directory, and the pid of the relay that holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, RelayError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| data_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .map(|pid| format!("another relay (pid {pid})"))
                    .unwrap_or_else(|| "another relay".to_owned());
                return Err(data_err(
                    data_dir,
                    format!(
                        "{holder} is running on this data directory (it holds {}); stop it first, or give another --data-dir",
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(data_err(&path, e)),
        }
        file.set_len(0).map_err(|e| data_err(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| data_err(&path, e))?;
        Ok(DataDirLock { _file: file })
    }
}
/// What [`tighten`] changed.
#[derive(Debug, Default)]
pub struct Tightened {
    /// Files and directories whose mode was more open than 0600 / 0700, before.
    pub paths: Vec<PathBuf>,
}

/// Sets every directory under `dir` (itself included) to 0700 and every file to 0600,
/// where they are more open; returns what it changed. Symbolic links are left alone.
///
/// # Errors
/// [`RelayError::Data`] naming the file that cannot be read or changed.
pub fn tighten(dir: &Path) -> Result<Tightened, RelayError> {
    let mut out = Tightened::default();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).map_err(|e| data_err(&d, e))?;
        set_mode(&d, &meta, 0o700, &mut out)?;
        for entry in std::fs::read_dir(&d).map_err(|e| data_err(&d, e))? {
            let entry = entry.map_err(|e| data_err(&d, e))?;
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Removed meanwhile (sled renames its snapshots): nothing to protect.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(data_err(&path, e)),
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                set_mode(&path, &meta, 0o600, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn set_mode(
    path: &Path,
    meta: &std::fs::Metadata,
    mode: u32,
    out: &mut Tightened,
) -> Result<(), RelayError> {
    let have = meta.permissions().mode() & 0o7777;
    if have & !mode != 0 {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(have & mode)) {
            Ok(()) => out.paths.push(path.to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(data_err(path, e)),
        }
    }
    Ok(())
}

/// Writes a file readable by its owner only (created with mode 0600, synced).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), RelayError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| data_err(path, e))?;
    f.write_all(bytes).map_err(|e| data_err(path, e))?;
    f.sync_all().map_err(|e| data_err(path, e))?;
    Ok(())
}

/// Reads a file that the relay's first start creates; a missing one is an error saying so.
fn read_existing(path: &Path, what: &str) -> Result<Vec<u8>, RelayError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            data_err(
                path,
                format!("no {what}: the relay creates it at its first start on this data directory (or `filet-relay init --agreement FILE` does); is --data-dir the right directory?"),
            )
        } else {
            data_err(path, e)
        }
    })
}

/// The relay's data-directory keys and the log's origin, created at the first start.
pub struct Keys {
    /// The checkpoint signer (key name = origin).
    pub signer: NoteSigner,
    /// HMAC key of subject references.
    pub subject_ref: Vec<u8>,
    /// The checkpoint origin.
    pub origin: String,
}

impl Keys {
    /// Loads the keys and the origin of a data directory the relay has already started on
    /// (or `filet-relay init --agreement` made), creating nothing.
    ///
    /// # Errors
    /// [`RelayError::Data`] naming the directory or file that is missing or unreadable.
    pub fn load(data_dir: &Path) -> Result<Keys, RelayError> {
        if !data_dir.is_dir() {
            return Err(data_err(
                data_dir,
                "no such data directory: the relay creates it, with its keys, at its first start (or `filet-relay init --agreement FILE` does); is --data-dir the right directory?",
            ));
        }
        let audit_key = data_dir.join("keys/audit-ed25519.pk8");
        let pk8 = read_existing(&audit_key, "audit signing key")?;
        let origin_path = data_dir.join("origin");
        let origin = String::from_utf8(read_existing(&origin_path, "log origin")?)
            .map_err(|e| data_err(&origin_path, e))?
            .trim()
            .to_owned();
        let signer = NoteSigner::from_pkcs8(&origin, &pk8).map_err(|e| data_err(&audit_key, e))?;
        let sr = data_dir.join("keys/subject-ref.key");
        let subject_ref = read_existing(&sr, "subject-reference key")?;
        if subject_ref.len() != 32 {
            return Err(data_err(
                &sr,
                format!("{} bytes, expected 32", subject_ref.len()),
            ));
        }
        Ok(Keys {
            signer,
            subject_ref,
            origin,
        })
    }

    /// Loads the keys of `data_dir`, creating them (and the origin) if absent.
    ///
    /// # Errors
    /// [`RelayError::Data`] naming the file.
    pub fn load_or_create(
        data_dir: &Path,
        origin: Option<&str>,
        agreement_id: &str,
    ) -> Result<Keys, RelayError> {
        let keys = data_dir.join("keys");
        create_private_dir(&keys)?;
        let origin_path = data_dir.join("origin");
        match std::fs::read_to_string(&origin_path) {
            Ok(o) => {
                let o = o.trim();
                if let Some(want) = origin.filter(|want| *want != o) {
                    return Err(data_err(
                        &origin_path,
                        format!("the log's origin is {o:?}; the configuration asks for {want:?}, which would start another log"),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let o = origin
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("filet.relay/{agreement_id}"));
                write_secret(&origin_path, format!("{o}\n").as_bytes())?;
            }
            Err(e) => return Err(data_err(&origin_path, e)),
        }
        let audit_key = keys.join("audit-ed25519.pk8");
        if !audit_key.exists() {
            let pk8 = NoteSigner::generate_pkcs8().map_err(|e| data_err(&audit_key, e))?;
            write_secret(&audit_key, &pk8)?;
        }
        let sr = keys.join("subject-ref.key");
        if !sr.exists() {
            let mut k = [0u8; 32];
            SystemRandom::new()
                .fill(&mut k)
                .map_err(|_| data_err(&sr, "system random source failed"))?;
            write_secret(&sr, &k)?;
        }
        // Everything exists now: read it as `filet-relay audit-key` does.
        Self::load(data_dir)
    }
}
