//! The data directory as a whole: one relay at a time (an exclusive lock taken before any
//! other file is opened), readable by its owner only (directories 0700, files 0600).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::RelayError;

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
