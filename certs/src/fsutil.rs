//! Writing files with the right permissions, atomically.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::CertError;

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates, revocation lists, profiles.
pub(crate) const CERT_MODE: u32 = 0o644;

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Fails with [`CertError::Exists`] for the first of `paths` that exists, unless `force`.
pub(crate) fn refuse_existing(
    paths: &[&Path],
    force: bool,
    consequence: &'static str,
) -> Result<(), CertError> {
    if force {
        return Ok(());
    }
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(CertError::Exists {
            path: path.to_path_buf(),
            consequence,
        }),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` with permission bits `mode`, replacing any existing file.
///
/// The content goes to a temporary file of the same directory, created with `mode` from
/// the start (a key is never readable by others, even for an instant), synced, then renamed
/// over `path`: a reader (the relay reloading its CRL) sees the old file or the new one,
/// never half of one.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        // The umask may have removed bits from a certificate's 0644; set them exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_exact_modes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        write_file(&key, b"one", 0o600).unwrap();
        write_file(&key, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let cert = dir.path().join("c.pem");
        write_file(&cert, b"c", 0o644).unwrap();
        assert_eq!(
            fs::metadata(&cert).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );
        let e = refuse_existing(&[&cert], false, "").unwrap_err();
        assert!(matches!(e, CertError::Exists { .. }), "{e}");
        refuse_existing(&[&cert], true, "").unwrap();
        let e = write_file(&dir.path().join("missing/x.pem"), b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("missing/x.pem"), "{e}");
    }
}
