//! Writing result files so that a reader never sees half a file and a failed run leaves the
//! previous file in place: a temporary file next to the target (`tempfile`), synced, then
//! persisted over the target (a rename, atomic on one file system).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    path.file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    (|| -> Result<()> {
        let mut temporary = tempfile::Builder::new();
        // The permissions `File::create` gives (0o666 less the umask), not a temporary file's
        // 0o600.
        #[cfg(unix)]
        temporary.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let mut file = temporary.tempfile_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path)?;
        Ok(())
    })()
    .with_context(|| format!("writing {}", path.display()))
}
