//! Whole-or-nothing writes, shared by every module that writes files (result files, skip lists,
//! reports, feature-cache shards, model folders).
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write a whole file or nothing: the bytes go to a temporary file in the target folder (created
/// if needed), are synced, made readable like any ordinary output (temporary files are
/// owner-only), and renamed into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(data).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Write a folder of files as one unit: the files go to a temporary sibling folder, which then
/// replaces `dir` (an existing `dir` is first renamed to a unique `.NAME.*.old` sibling and
/// removed after the swap). `dir` never holds a mix of old and new files; between the two renames
/// it is briefly absent, and a crash there leaves the previous folder as that `.old` sibling.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::file(dir, "exists and is not a folder"));
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::file(dir, "not a folder name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    for (file, data) in files {
        let p = tmp.path().join(file);
        let mut f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
        f.write_all(data).map_err(|e| Error::io(&p, e))?;
        f.sync_all().map_err(|e| Error::io(&p, e))?;
    }
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(tmp.path(), e))?;
    let staged: PathBuf = tmp.keep();
    let had_old = dir.exists();
    // A unique empty folder to rename the old one onto (rename replaces an empty directory).
    let old = if had_old {
        let o = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".old")
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?
            .keep();
        std::fs::rename(dir, &o).map_err(|e| Error::io(dir, e))?;
        o
    } else {
        PathBuf::new()
    };
    if let Err(e) = std::fs::rename(&staged, dir) {
        // Put the previous folder back so a failed save changes nothing.
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(Error::io(dir, e));
    }
    // Make the renames durable before the old copy goes.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_write_replaces_the_whole_folder() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("model");
        write_dir_atomic(&m, &[("a", b"1".to_vec()), ("stale", b"x".to_vec())]).unwrap();
        write_dir_atomic(&m, &[("a", b"2".to_vec())]).unwrap();
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"2");
        // A file of the old save does not survive next to the new ones.
        assert!(!m.join("stale").exists());
        // No temporary or backup folder is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model")]);
    }

    #[test]
    fn folder_write_refuses_a_file_in_the_way() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("model");
        std::fs::write(&m, b"not a folder").unwrap();
        assert!(write_dir_atomic(&m, &[("a", vec![])]).is_err());
        assert_eq!(std::fs::read(&m).unwrap(), b"not a folder");
    }
}
