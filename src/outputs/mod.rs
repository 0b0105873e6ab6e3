//! What the tool writes: Teddy result files, skip lists, and the HTML result sheet.
pub mod csv;
pub mod report;

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Write a whole file or nothing: the bytes go to a temporary file in the target folder (created
/// if needed), are synced, made readable like any ordinary output (temporary files are
/// owner-only), and renamed into place.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(data).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
