//! Which installed versions are in use, which is current, and what may be removed.
//!
//! Each version folder (`ROOT/<name>/<version>/`) has a `.lock` file. A [`Lease`] holds a shared lock on it for as
//! long as an engine (or the app) uses that version; removing a folder takes the exclusive lock first, without
//! waiting, so a version in use — in this process or another — is never removed. The kernel drops the locks of a
//! killed process. `.lock`'s modification time is when the version was last ensured: the newest of a name is its
//! current version, the oldest overall is evicted first.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const LOCK: &str = ".lock";

/// A version folder in use: it is not removed while this lives. Dropping the last lease of a version that a newer
/// one replaced removes it.
#[derive(Debug)]
pub struct Lease {
    dir: PathBuf,
    // Holds the shared lock; `None` only while dropping.
    lock: Option<File>,
}

impl Lease {
    /// A shared lock on `dir`'s `.lock` (created when missing), and `.lock` marked as used now. Retries when the
    /// folder was removed between opening and locking.
    pub(crate) fn take(dir: &Path) -> std::io::Result<Lease> {
        let mut tries = 0;
        loop {
            tries += 1;
            fs::create_dir_all(dir)?;
            let path = dir.join(LOCK);
            let file = match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
                // Removed between creating the folder and opening: another process evicted it just then.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 10 => continue,
                opened => opened?,
            };
            file.lock_shared()?;
            if same_file(&file, &path) {
                let _ = file.set_modified(SystemTime::now());
                return Ok(Lease { dir: dir.to_owned(), lock: Some(file) });
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        let used = modified(&lock);
        drop(lock);
        if newer_sibling(&self.dir, used) {
            remove_if_unused(&self.dir);
        }
    }
}

/// Whether the file open as `file` is still the one at `path` (a removal in between unlinks it).
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        matches!((file.metadata(), fs::metadata(path)), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

fn modified(file: &File) -> SystemTime {
    file.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn last_used(dir: &Path) -> Option<SystemTime> {
    fs::metadata(dir.join(LOCK)).and_then(|m| m.modified()).ok()
}

/// Whether another version of the same name was ensured after `used`.
fn newer_sibling(dir: &Path, used: SystemTime) -> bool {
    let Some(name_dir) = dir.parent() else { return false };
    subdirs(name_dir).any(|other| other != dir && last_used(&other).is_some_and(|t| t > used))
}

/// Removes `dir` unless a lease holds it (here or in another process); whether it was removed.
pub(crate) fn remove_if_unused(dir: &Path) -> bool {
    let Ok(lock) = OpenOptions::new().write(true).open(dir.join(LOCK)) else { return false };
    if lock.try_lock().is_err() {
        return false;
    }
    // Under the exclusive lock: no lease can be taken on this folder until it is gone (`Lease::take` checks).
    let removed = fs::remove_dir_all(dir).is_ok();
    drop(lock);
    if let Some(name_dir) = dir.parent() {
        let _ = fs::remove_dir(name_dir); // only when empty
    }
    removed
}

/// Removes every other version of `dir`'s name that no lease holds (called once `dir` is current).
pub(crate) fn remove_superseded(dir: &Path) {
    let Some(name_dir) = dir.parent() else { return };
    for other in subdirs(name_dir).filter(|other| other != dir) {
        remove_if_unused(&other);
    }
}

fn subdirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir())
}

/// One installed (or partly downloaded) version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub name: String,
    pub version: String,
    /// Bytes of every file in its folder, a resumable download included.
    pub bytes: u64,
    pub last_used: SystemTime,
}

/// Every version under `root`, least recently used first.
pub(crate) fn stored(root: &Path) -> Vec<(PathBuf, StoredVersion)> {
    let mut all: Vec<(PathBuf, StoredVersion)> = subdirs(root)
        .flat_map(|name_dir| subdirs(&name_dir).collect::<Vec<_>>())
        .map(|dir| {
            let bytes = fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum();
            let name = dir.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
            let version = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let last_used = last_used(&dir).unwrap_or(SystemTime::UNIX_EPOCH);
            let entry = StoredVersion {
                name: name.unwrap_or_default(),
                version: version.unwrap_or_default(),
                bytes,
                last_used,
            };
            (dir, entry)
        })
        .collect();
    all.sort_by_key(|(_, v)| v.last_used);
    all
}

/// Removes the least recently used versions no lease holds until the store holds at most `budget` bytes; what was
/// removed. Versions in use stay even when that leaves the store over budget.
pub(crate) fn evict(root: &Path, budget: u64) -> Vec<StoredVersion> {
    let all = stored(root);
    let mut total: u64 = all.iter().map(|(_, v)| v.bytes).sum();
    let mut removed = Vec::new();
    for (dir, version) in all {
        if total <= budget {
            break;
        }
        if remove_if_unused(&dir) {
            total -= version.bytes;
            removed.push(version);
        }
    }
    removed
}
