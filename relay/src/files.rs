//! Small files of the data directory that must survive a power loss once created.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens a small file of the data directory for reading and writing, creating it with mode
/// 0600; a new file and its name are made durable (the file and its directory synced), so
/// it cannot vanish with a power loss.
pub fn open_durable(path: &Path) -> std::io::Result<File> {
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
