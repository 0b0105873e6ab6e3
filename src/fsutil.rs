//! Whole-or-nothing writes that never lose a user's files, shared by every module that writes
//! (result files, skip lists, reports, exports, feature-cache shards, model and split folders).
//!
//! - **Files** ([`write_atomic`], [`write_atomic_with`]): the bytes go to a temporary sibling
//!   `.NAME.tuwen-XXXXXX.tmp`, are synced and renamed into place. An [`OutputBatch`] holds back
//!   the renames of a set of files until all of them are complete.
//! - **Folders** ([`OutputDir`]): staged in a temporary sibling and swapped in with one
//!   `renameat2(RENAME_EXCHANGE)`, so the folder is never absent or a mix of old and new files.
//!   A folder is only replaced when it is absent, empty, or a folder of the same [`DirKind`]
//!   that tuwen wrote (a model's `config.json`, or the marker file [`MARKER`]) holding nothing but
//!   the entries tuwen writes there; never when it is, or holds, one of the command's inputs.
//! - **Leftovers**: temporaries are locked (`flock`) while in use; ones left by a killed run (not
//!   locked, older than [`STALE`]) are removed by the next write into that folder, and a model
//!   folder left aside by an interrupted save is put back ([`recover_dir`]).
use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Marker file that says which kind of tuwen output a folder is (for kinds without a config).
pub const MARKER: &str = ".tuwen-output";
/// A temporary not locked and older than this is a leftover of a killed run. The age guards the
/// instant between a temporary's creation and its lock.
pub const STALE: Duration = Duration::from_secs(10);
/// Part of every temporary's name: `.NAME.tuwen-XXXXXX.tmp` (or `.old`).
const TAG: &str = "tuwen-";

/// How a folder written by tuwen is recognised.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// The marker file [`MARKER`] holding this kind name (written first into every staging).
    Marker(&'static str),
    /// A check on the folder (a model: its `config.json` says so).
    Check(fn(&Path) -> bool),
}

/// A kind of folder tuwen writes as one unit.
#[derive(Debug, Clone, Copy)]
pub struct DirKind {
    /// For messages: "model folder" (… "is not a model folder written by tuwen").
    pub what: &'static str,
    /// The entries tuwen writes there; anything else is the user's and blocks a replacement.
    pub entries: &'static [&'static str],
    pub mark: Mark,
    /// Entries that are folders of another kind, checked the same way (a split's 附件2).
    pub nested: &'static [(&'static str, &'static DirKind)],
}

impl DirKind {
    /// Whether `dir` is a folder of this kind that tuwen wrote.
    pub fn is_marked(&self, dir: &Path) -> bool {
        match self.mark {
            Mark::Marker(kind) => std::fs::read(dir.join(MARKER))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["tuwen"] == kind),
            Mark::Check(f) => f(dir),
        }
    }

    fn allows(&self, name: &OsStr) -> bool {
        (matches!(self.mark, Mark::Marker(_)) && name == MARKER)
            || self.entries.iter().any(|e| OsStr::new(e) == name)
    }

    /// The marker file's bytes for a [`Mark::Marker`] kind.
    pub fn marker_bytes(&self) -> Option<Vec<u8>> {
        match self.mark {
            Mark::Marker(kind) => Some(format!("{{\"tuwen\": \"{kind}\"}}\n").into_bytes()),
            Mark::Check(_) => None,
        }
    }
}

/// `tuwen split --out`: the train/held-out files and the Teddy folders.
pub const SPLIT_DIR: DirKind = DirKind {
    what: "split folder",
    entries: &["train.csv", "heldout.csv", "附件2", "附件3"],
    mark: Mark::Marker("split"),
    nested: &[("附件2", &TEDDY_DIR), ("附件3", &TEDDY_DIR)],
};

/// A Teddy 附件2 / 附件3 folder laid out by tuwen (`split --teddy-layout`, `demo`).
pub const TEDDY_DIR: DirKind = DirKind {
    what: "Teddy folder",
    entries: &[
        "ImageData",
        "word_test.csv",
        "image_data.csv",
        "image_test.csv",
        "word_data.csv",
        "truth.csv",
    ],
    mark: Mark::Marker("teddy-layout"),
    nested: &[],
};

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::file(path, "not a file or folder name"))
}

/// `path` made absolute with its longest existing ancestor resolved (symbolic links, `..`), so
/// two spellings of one place compare equal even before the place exists.
fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |p, n| p.join(n));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                cur = p;
            }
            _ => return abs,
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Refuse an output that is, or holds, one of the command's inputs (files or folders): writing
/// it would overwrite or delete what the command reads.
pub fn check_not_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let o = resolve(out);
    for &input in inputs {
        if resolve(input).starts_with(&o) || same_file(out, input) {
            return Err(Error::file(
                out,
                format!(
                    "is or holds the input {}: writing it would overwrite that input; choose \
                     another output",
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Check that `dir` may be replaced by a folder of `kind`: absent, an empty folder, or a folder
/// of that kind written by tuwen that holds only the entries tuwen writes there, and neither is
/// nor holds any of `inputs`. Anything else is an error naming the folder.
pub fn check_dir_replaceable(dir: &Path, kind: &DirKind, inputs: &[&Path]) -> Result<()> {
    check_not_input(dir, inputs)?;
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::file(
            dir,
            "is a symbolic link: give the folder itself (tuwen replaces output folders whole)",
        ));
    }
    if !meta.is_dir() {
        return Err(Error::file(dir, "exists and is not a folder"));
    }
    let mut names: Vec<String> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let n = e.map_err(|e| Error::io(dir, e))?.file_name();
        if !kind.allows(&n) {
            foreign.push(n.to_string_lossy().into_owned());
        }
        names.push(n.to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(());
    }
    if !kind.is_marked(dir) {
        return Err(Error::file(
            dir,
            format!(
                "is not empty ({}) and is not a {} written by tuwen: refusing to replace it; \
                 choose a new or empty folder",
                listed(&mut names),
                kind.what
            ),
        ));
    }
    if !foreign.is_empty() {
        return Err(Error::file(
            dir,
            format!(
                "this {} also holds files tuwen did not write there ({}): replacing it would \
                 delete them; move them out or choose another folder",
                kind.what,
                listed(&mut foreign)
            ),
        ));
    }
    for (name, inner) in kind.nested {
        check_dir_replaceable(&dir.join(name), inner, &[])?;
    }
    if kind.entries.contains(&IMAGE_DATA) {
        check_image_folder(dir)?;
    }
    Ok(())
}

/// The image folder tuwen lays out beside its CSV files (a Teddy folder's, a demo's data).
const IMAGE_DATA: &str = "ImageData";

/// `dir/ImageData` holds only what tuwen put there: files (or links) each named in one of the
/// CSV files of `dir`, no folders. Anything else is the user's, and replacing `dir` would delete it.
fn check_image_folder(dir: &Path) -> Result<()> {
    let images = dir.join(IMAGE_DATA);
    let Ok(entries) = std::fs::read_dir(&images) else {
        return Ok(());
    };
    let mut named: std::collections::HashSet<String> = Default::default();
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "csv") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                named.extend(
                    text.lines()
                        .flat_map(|l| l.split(','))
                        .map(|f| f.trim().trim_matches('"').to_string()),
                );
            }
        }
    }
    let mut foreign = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(&images, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(true);
        if is_dir || !named.contains(&name) {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::file(
        &images,
        format!(
            "also holds files tuwen did not lay out there ({}): replacing the folder would \
             delete them; move them out or choose another folder",
            listed(&mut foreign)
        ),
    ))
}

/// The first five of `names` (sorted) for a message, and how many more.
fn listed(names: &mut [String]) -> String {
    names.sort();
    let more = names.len().saturating_sub(5);
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

fn try_lock(f: &File) -> bool {
    f.try_lock().is_ok()
}

/// Whether the temporary at `path` is a leftover: not locked by a live writer and not just made.
fn abandoned(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let old = f
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= STALE);
    old && try_lock(&f)
}

/// Remove leftovers of killed runs in `parent`: temporary files of any name, and temporary
/// folders of `name` (also those of tuwen before 0.1.1, `.NAME.XXXXXX.tmp|old`, when they are
/// empty or of `kind`). Best effort: a leftover that cannot be removed is left.
fn clean_leftovers(parent: &Path, name: Option<(&str, &DirKind)>) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_file() && n.starts_with('.') && n.contains(TAG) && n.ends_with(".tmp") {
            if abandoned(&p) {
                let _ = std::fs::remove_file(&p);
            }
            continue;
        }
        let Some((dir_name, kind)) = name else {
            continue;
        };
        if !ft.is_dir() {
            continue;
        }
        let Some(mid) = n
            .strip_prefix(&format!(".{dir_name}."))
            .and_then(|m| m.strip_suffix(".tmp").or_else(|| m.strip_suffix(".old")))
        else {
            continue;
        };
        let ours = if let Some(r) = mid.strip_prefix(TAG) {
            r.len() == 6
        } else {
            // Before 0.1.1: tempfile's six random characters and no lock.
            mid.len() == 6
                && (kind.is_marked(&p)
                    || std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none()))
        };
        if ours && abandoned(&p) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// Folders whose temporary files were already cleaned by this process (once is enough).
static CLEANED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn clean_files_once(dir: &Path) {
    let key = resolve(dir);
    let mut done = CLEANED.lock().unwrap_or_else(|p| p.into_inner());
    if !done.contains(&key) {
        done.push(key);
        drop(done);
        clean_leftovers(dir, None);
    }
}

/// A temporary file beside `path`, locked while it lives.
fn temp_file_for(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    clean_files_once(dir);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.{TAG}", file_name(path)?))
        .suffix(".tmp")
        .rand_bytes(6)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    // A lock only fails where the file system has none; the age check still guards then.
    let _ = tmp.as_file().try_lock();
    Ok(tmp)
}

/// Write a whole file or nothing: the bytes go to a temporary file in the target folder (created
/// if needed), are synced, made readable like any ordinary output (temporary files are
/// owner-only), and renamed into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(data).map_err(|e| Error::io(path, e)))
}

/// [`write_atomic`], streaming: `fill` writes into the temporary file.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.is_dir() {
        return Err(Error::file(path, "is a folder: give a file name"));
    }
    let mut tmp = temp_file_for(path)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(path, e))?;
    if let Some(tmp) = batch_hold(path, tmp) {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

/// [`write_atomic`] that replaces an existing file only when `ours(first bytes)` says tuwen
/// wrote it (or it is empty): an output never overwrites a user's other file
/// ([`check_file_target`]).
pub fn write_atomic_replacing(
    path: &Path,
    data: &[u8],
    what: &str,
    ours: impl Fn(&[u8]) -> bool,
) -> Result<()> {
    check_file_target(path, what, |p| head(p).is_ok_and(|h| ours(&h)))?;
    write_atomic(path, data)
}

/// The first bytes of a file (enough for the header tuwen recognises its files by).
pub fn head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// Check that a `what` output file may be written at `path`, creating and changing nothing (so
/// it can run before a long job): an existing file is replaced only when it is empty or
/// `ours(path)` says tuwen wrote it, never when it is a user's file, a folder, a symbolic link
/// or a device. A file not there yet needs a folder to go in: the nearest existing ancestor must
/// be a folder tuwen may write in (missing folders are created with the file, as for every
/// output).
pub fn check_file_target(path: &Path, what: &str, ours: impl FnOnce(&Path) -> bool) -> Result<()> {
    file_name(path)?;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // Not there, or a folder on its way is a file ("not a directory": named below).
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return check_creatable(parent_of(path))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let refuse = |msg: String| Err(Error::file(path, msg));
    if meta.file_type().is_symlink() {
        return refuse(format!(
            "is a symbolic link: tuwen does not write a {what} through links; remove the link or \
             choose another file name"
        ));
    }
    if meta.is_dir() {
        return refuse(format!("is a folder: give the {what}'s file name"));
    }
    if !meta.is_file() {
        return refuse("exists and is not a regular file: choose another file name".into());
    }
    if meta.len() > 0 && !ours(path) {
        return refuse(format!(
            "exists and is not a {what} written by tuwen: refusing to overwrite it; move it away \
             or choose another file name"
        ));
    }
    Ok(())
}

/// `dir` is, or can be created as, a folder tuwen may create files in: its nearest existing
/// ancestor is a folder with write permission.
fn check_creatable(dir: &Path) -> Result<()> {
    use rustix::fs::{access, Access};
    let mut cur = dir;
    loop {
        match std::fs::metadata(cur) {
            Ok(m) if m.is_dir() => {
                return access(cur, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
                    Error::file(cur, format!("cannot create files in this folder: {e}"))
                })
            }
            Ok(_) => {
                return Err(Error::file(
                    cur,
                    "is not a folder, so the output cannot go there; choose another path",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match cur.parent() {
                Some(p) if !p.as_os_str().is_empty() => cur = p,
                _ => return Ok(()),
            },
            // "Not a directory": an ancestor further up is a file; the loop names it.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => match cur.parent() {
                Some(p) if !p.as_os_str().is_empty() => cur = p,
                _ => return Err(Error::io(cur, e)),
            },
            Err(e) => return Err(Error::io(cur, e)),
        }
    }
}

/// One file of a batch: its target (resolved) and, once written, its staged temporary.
type Staged = (PathBuf, Option<tempfile::NamedTempFile>);

/// The batch open in this process.
static BATCH: Mutex<Option<Vec<Staged>>> = Mutex::new(None);

/// Keep `tmp` for the open batch if `path` is one of its files; otherwise hand it back.
fn batch_hold(path: &Path, tmp: tempfile::NamedTempFile) -> Option<tempfile::NamedTempFile> {
    let key = resolve(path);
    let mut b = BATCH.lock().unwrap_or_else(|p| p.into_inner());
    match b
        .as_mut()
        .and_then(|v| v.iter_mut().find(|(p, _)| *p == key))
    {
        Some(slot) => {
            slot.1 = Some(tmp);
            None
        }
        None => Some(tmp),
    }
}

/// A set of output files replaced together: while the batch is open, a [`write_atomic`] to one
/// of its paths stages the complete file beside it; [`OutputBatch::commit`] then renames them
/// all at once. A run that fails or is killed before the commit leaves every previous file, never
/// a new one beside a stale one (`result1.csv`, `result2.csv`). Dropping the batch discards what
/// it staged. One batch at a time per process.
pub struct OutputBatch(());

impl OutputBatch {
    pub fn begin<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<OutputBatch> {
        let mut b = BATCH.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_some() {
            return Err(Error::Param("an output batch is already open".into()));
        }
        *b = Some(
            paths
                .into_iter()
                .map(|p| (resolve(p.as_ref()), None))
                .collect(),
        );
        Ok(OutputBatch(()))
    }

    /// Rename every staged file into place (files never written are left as they are).
    pub fn commit(self) -> Result<()> {
        let staged = BATCH
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        for (path, tmp) in staged {
            if let Some(tmp) = tmp {
                tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
            }
        }
        Ok(())
    }
}

impl Drop for OutputBatch {
    fn drop(&mut self) {
        // After a commit this is already empty; otherwise the staged files are deleted here.
        BATCH.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Swap the complete folder `staged` in for `dir`. Returns where the previous folder now is (to
/// be removed), if there was one.
fn swap_in(staged: &Path, dir: &Path, name: &str) -> std::io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::rename(staged, dir)?;
        return Ok(None);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, staged, CWD, dir, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(Some(staged.to_path_buf())),
            // File systems without the exchange (some network and FUSE ones): fall back.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    swap_by_renames(staged, dir, name).map(Some)
}

/// The swap in two renames: `dir` goes to a unique `.NAME.tuwen-XXXXXX.old` sibling, `staged`
/// takes its place. Between the two `dir` is absent; [`recover_dir`] puts the `.old` back.
fn swap_by_renames(staged: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let parent = parent_of(dir);
    let old = tempfile::Builder::new()
        .prefix(&format!(".{name}.{TAG}"))
        .suffix(".old")
        .rand_bytes(6)
        .tempdir_in(parent)?
        .keep();
    std::fs::rename(dir, &old)?;
    if let Err(e) = std::fs::rename(staged, dir) {
        let _ = std::fs::rename(&old, dir);
        return Err(e);
    }
    Ok(old)
}

/// If `dir` is absent but a save of it was interrupted between its two renames, put the
/// previous folder back (a complete `.NAME.*.old` sibling of `kind`; the newest if several).
/// Returns whether it did.
pub fn recover_dir(dir: &Path, kind: &DirKind) -> Result<bool> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(false);
    }
    let (parent, name) = (parent_of(dir), file_name(dir)?);
    let Ok(rd) = std::fs::read_dir(parent) else {
        return Ok(false);
    };
    let prefix = format!(".{name}.");
    let best = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(".old") && e.path().is_dir()
        })
        .map(|e| e.path())
        .filter(|p| kind.is_marked(p) && kind.entries.iter().all(|f| p.join(f).exists()))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    match best {
        Some(old) => {
            std::fs::rename(&old, dir).map_err(|e| Error::io(dir, e))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A folder being written as one unit: files go into a locked staging sibling,
/// [`OutputDir::commit`] swaps it in; dropped without a commit, the staging is removed and the
/// previous folder stays as it was.
pub struct OutputDir {
    dir: PathBuf,
    staging: Option<tempfile::TempDir>,
    _lock: File,
}

impl OutputDir {
    /// Check `dir` ([`check_dir_replaceable`]), tidy leftovers of earlier interrupted writes,
    /// and open a staging folder (with the kind's marker file in it).
    pub fn begin(dir: &Path, kind: &DirKind, inputs: &[&Path]) -> Result<OutputDir> {
        let (parent, name) = (parent_of(dir), file_name(dir)?);
        recover_dir(dir, kind)?;
        check_dir_replaceable(dir, kind, inputs)?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        clean_leftovers(parent, Some((&name, kind)));
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.{TAG}"))
            .suffix(".tmp")
            .rand_bytes(6)
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        let lock = File::open(staging.path()).map_err(|e| Error::io(staging.path(), e))?;
        let _ = lock.try_lock();
        let out = OutputDir {
            dir: dir.to_path_buf(),
            staging: Some(staging),
            _lock: lock,
        };
        if let Some(m) = kind.marker_bytes() {
            out.write(MARKER, &m)?;
        }
        Ok(out)
    }

    /// The staging folder to write into.
    pub fn path(&self) -> &Path {
        self.staging.as_ref().map(|s| s.path()).unwrap_or(&self.dir)
    }

    /// Write (and sync) one file of the folder.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        let p = self.path().join(name);
        let mut f = File::create(&p).map_err(|e| Error::io(&p, e))?;
        f.write_all(data).map_err(|e| Error::io(&p, e))?;
        f.sync_all().map_err(|e| Error::io(&p, e))
    }

    /// Swap the staged folder in for the target, then remove the previous one.
    pub fn commit(mut self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let staging = self.staging.take().expect("committed once");
        let staged = staging.path().to_path_buf();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&staged, e))?;
        if let Ok(d) = File::open(&staged) {
            let _ = d.sync_all();
        }
        let staged = staging.keep();
        let name = file_name(&self.dir)?;
        match swap_in(&staged, &self.dir, &name) {
            Ok(old) => {
                // Make the swap durable before the previous copy goes.
                if let Ok(d) = File::open(parent_of(&self.dir)) {
                    let _ = d.sync_all();
                }
                if let Some(old) = old {
                    std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                Err(Error::io(&self.dir, e))
            }
        }
    }
}

/// Put the files `ids` of `src` into the new folder `dst` (created): hard links where the file
/// system allows, else synced copies, so a full disk is an error here, never a truncated file
/// later. Ids without a file in `src` are left out.
pub fn link_or_copy(src: &Path, ids: &[String], dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    for id in ids {
        let (from, to) = (src.join(id), dst.join(id));
        if !from.exists() {
            continue;
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            File::open(&to)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

/// Write a folder of files as one unit ([`OutputDir`]): `dir` never holds a mix of old and new
/// files, is never absent once it existed, and is only replaced under [`check_dir_replaceable`].
pub fn write_dir_atomic(dir: &Path, kind: &DirKind, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let out = OutputDir::begin(dir, kind, &[])?;
    for (name, data) in files {
        out.write(name, data)?;
    }
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: DirKind = DirKind {
        what: "test folder",
        entries: &["a", "stale"],
        mark: Mark::Marker("test"),
        nested: &[],
    };

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn age(p: &Path) {
        let t = SystemTime::now() - Duration::from_secs(3600);
        File::open(p).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn folder_write_replaces_the_whole_folder() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("model");
        write_dir_atomic(&m, &KIND, &[("a", b"1".to_vec()), ("stale", b"x".to_vec())]).unwrap();
        write_dir_atomic(&m, &KIND, &[("a", b"2".to_vec())]).unwrap();
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"2");
        // A file of the old save does not survive next to the new ones.
        assert!(!m.join("stale").exists());
        // No temporary or backup folder is left behind.
        assert_eq!(names(d.path()), ["model"]);
    }

    #[test]
    fn folder_write_refuses_a_file_in_the_way() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("model");
        std::fs::write(&m, b"not a folder").unwrap();
        assert!(write_dir_atomic(&m, &KIND, &[("a", vec![])]).is_err());
        assert_eq!(std::fs::read(&m).unwrap(), b"not a folder");
    }

    #[test]
    fn a_foreign_folder_is_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path().join("userdir");
        std::fs::create_dir_all(u.join("sub")).unwrap();
        std::fs::write(u.join("important.txt"), b"precious").unwrap();
        let e = write_dir_atomic(&u, &KIND, &[("a", vec![])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("userdir") && e.contains("important.txt"), "{e}");
        assert_eq!(std::fs::read(u.join("important.txt")).unwrap(), b"precious");
        assert!(u.join("sub").is_dir());
        assert_eq!(names(d.path()), ["userdir"], "no staging left");
        // An empty folder is fine.
        let e = d.path().join("empty");
        std::fs::create_dir(&e).unwrap();
        write_dir_atomic(&e, &KIND, &[("a", b"1".to_vec())]).unwrap();
        assert_eq!(names(&e), [MARKER, "a"]);
    }

    #[test]
    fn a_file_the_user_added_to_our_folder_blocks_the_replacement() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("out");
        write_dir_atomic(&m, &KIND, &[("a", b"1".to_vec())]).unwrap();
        std::fs::write(m.join("notes.txt"), b"mine").unwrap();
        let e = write_dir_atomic(&m, &KIND, &[("a", b"2".to_vec())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("notes.txt"), "{e}");
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"1");
        // Another kind's folder is not ours either.
        let other = DirKind {
            mark: Mark::Marker("other"),
            ..KIND
        };
        std::fs::remove_file(m.join("notes.txt")).unwrap();
        assert!(write_dir_atomic(&m, &other, &[("a", vec![])]).is_err());
    }

    #[test]
    fn an_output_that_is_or_holds_an_input_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("sdir");
        write_dir_atomic(&s, &KIND, &[("a", b"1".to_vec())]).unwrap();
        let input = s.join("a");
        let e = OutputDir::begin(&s, &KIND, &[&input]).err().unwrap();
        assert!(e.to_string().contains("input"), "{e}");
        // Spelt differently: still the same place.
        let odd = d.path().join("sdir/../sdir/.");
        assert!(check_not_input(&odd, &[&input]).is_err());
        assert!(check_not_input(&input, &[&s.join("./a")]).is_err());
        // A hard link is the same file too.
        std::fs::hard_link(&input, d.path().join("link")).unwrap();
        assert!(check_not_input(&d.path().join("link"), &[&input]).is_err());
        assert!(check_not_input(&d.path().join("other"), &[&input]).is_ok());
    }

    #[test]
    fn the_swap_by_two_renames_and_its_recovery() {
        // The fallback where the file system has no exchange, killed between its renames.
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        write_dir_atomic(&m, &KIND, &[("a", b"old".to_vec()), ("stale", vec![])]).unwrap();
        let old = swap_by_renames_killed(&m);
        assert!(!m.exists() && old.is_dir());
        assert!(recover_dir(&m, &KIND).unwrap());
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"old");
        // And a complete fallback swap.
        let staged = d.path().join("staged");
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("a"), b"new").unwrap();
        let old = swap_by_renames(&staged, &m, "m").unwrap();
        assert_eq!(std::fs::read(m.join("a")).unwrap(), b"new");
        assert_eq!(std::fs::read(old.join("a")).unwrap(), b"old");
    }

    /// The state a save killed between the two renames leaves.
    fn swap_by_renames_killed(dir: &Path) -> PathBuf {
        let old = parent_of(dir).join(".m.tuwen-abcdef.old");
        std::fs::rename(dir, &old).unwrap();
        old
    }

    #[test]
    fn leftovers_of_killed_writes_are_removed_but_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        // A killed save's staging (new style), an old-style backup of a model of this kind, a
        // live writer's staging (locked), one just made, and a user's folder of a similar name.
        let dead = d.path().join(".m.tuwen-aaaaaa.tmp");
        let legacy = d.path().join(".m.Xy12Zq.old");
        let live = d.path().join(".m.tuwen-bbbbbb.tmp");
        let young = d.path().join(".m.tuwen-cccccc.tmp");
        let users = d.path().join(".m.mine.old");
        for p in [&dead, &legacy, &live, &young, &users] {
            std::fs::create_dir(p).unwrap();
        }
        std::fs::write(legacy.join(MARKER), KIND.marker_bytes().unwrap()).unwrap();
        std::fs::write(users.join("x"), b"keep").unwrap();
        for p in [&dead, &legacy, &live, &users] {
            age(p);
        }
        let lock = File::open(&live).unwrap();
        lock.try_lock().unwrap();
        // Temporary files of killed file writes (any target name), one live.
        let dead_file = d.path().join(".result2.csv.tuwen-dddddd.tmp");
        let live_file = d.path().join(".shard-1.safetensors.tuwen-eeeeee.tmp");
        std::fs::write(&dead_file, b"half").unwrap();
        std::fs::write(&live_file, b"half").unwrap();
        age(&dead_file);
        age(&live_file);
        let flock = File::open(&live_file).unwrap();
        flock.try_lock().unwrap();

        write_dir_atomic(&m, &KIND, &[("a", vec![])]).unwrap();
        let n = names(d.path());
        assert_eq!(
            n,
            [
                ".m.mine.old",
                ".m.tuwen-bbbbbb.tmp",
                ".m.tuwen-cccccc.tmp",
                ".shard-1.safetensors.tuwen-eeeeee.tmp",
                "m",
            ]
        );
        drop((lock, flock));
    }

    #[test]
    fn file_writes_name_their_temporaries_and_clean_killed_ones() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join(".result1.csv.tuwen-zzzzzz.tmp");
        std::fs::write(&dead, b"half").unwrap();
        age(&dead);
        write_atomic(&d.path().join("result1.csv"), b"ok").unwrap();
        assert_eq!(names(d.path()), ["result1.csv"]);
        // A folder is not a file name.
        assert!(write_atomic(d.path(), b"x").is_err());
    }

    #[test]
    fn a_file_not_ours_is_not_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("train.csv");
        std::fs::write(&p, b"image_id,caption\n").unwrap();
        let ours = |h: &[u8]| h.starts_with(b"file,row");
        assert!(write_atomic_replacing(&p, b"file,row\n", "skip list", ours).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"image_id,caption\n");
        std::fs::write(&p, b"file,row\nold\n").unwrap();
        write_atomic_replacing(&p, b"file,row\n", "skip list", ours).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"file,row\n");
    }

    #[test]
    fn a_file_target_is_checked_without_creating_anything() {
        let d = tempfile::tempdir().unwrap();
        let yes = |_: &Path| true;
        // Missing folders are fine (created with the file) but not created by the check.
        check_file_target(&d.path().join("new/sub/x.csv"), "list", yes).unwrap();
        assert!(!d.path().join("new").exists());
        // A file on the way, a folder, a link, a user's file: refused, named.
        let f = d.path().join("f");
        std::fs::write(&f, b"mine").unwrap();
        let e = check_file_target(&f.join("x/y.csv"), "list", yes).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
        let e = check_file_target(d.path(), "list", yes).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(check_file_target(&link, "list", yes).is_err());
        let e = check_file_target(&f, "list", |_| false).unwrap_err();
        assert!(e.to_string().contains("not a list written by tuwen"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"mine");
        // An empty file holds nothing to lose.
        std::fs::write(&f, b"").unwrap();
        check_file_target(&f, "list", |_| false).unwrap();
    }

    #[test]
    fn a_batch_replaces_its_files_together_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let (r1, r2) = (d.path().join("result1.csv"), d.path().join("result2.csv"));
        std::fs::write(&r1, b"old1").unwrap();
        std::fs::write(&r2, b"old2").unwrap();
        {
            let _b = OutputBatch::begin([&r1, &r2]).unwrap();
            write_atomic(&r1, b"new1").unwrap();
            // The second task fails: the batch is dropped without a commit.
        }
        assert_eq!(std::fs::read(&r1).unwrap(), b"old1");
        assert_eq!(names(d.path()), ["result1.csv", "result2.csv"]);
        let b = OutputBatch::begin([&r1, &r2]).unwrap();
        write_atomic(&r1, b"new1").unwrap();
        assert_eq!(std::fs::read(&r1).unwrap(), b"old1", "held back");
        // Files outside the batch are written at once.
        write_atomic(&d.path().join("other"), b"x").unwrap();
        assert!(d.path().join("other").exists());
        write_atomic(&r2, b"new2").unwrap();
        b.commit().unwrap();
        assert_eq!(std::fs::read(&r1).unwrap(), b"new1");
        assert_eq!(std::fs::read(&r2).unwrap(), b"new2");
    }
}
