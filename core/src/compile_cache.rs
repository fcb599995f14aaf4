//! Compile once: the optimized model kept on disk, so the next launch skips graph optimization.
//!
//! An entry is a directory named by its key: `model.onnx` (the graph as ONNX Runtime left it after optimizing) with
//! its weights in `model.onnx.data`, which ONNX Runtime maps from disk instead of parsing, and `entry.json` with the
//! size and XXH3 checksum of both. The key covers everything the optimized graph depends on: the model's bytes,
//! ONNX Runtime's version, the optimize level, the accelerators, fixed dimensions and the CPU's instruction sets
//! (level 3 writes layouts for the CPU it ran on). An entry that fails its checksum, or that ONNX Runtime refuses,
//! is deleted and rebuilt; entries are written to a temporary directory and renamed into place, so a crash or a
//! second process never leaves a half-written entry under a real key.
//!
//! XXH3 rather than SHA-256: this is a corruption check, not a security boundary (the cache lives in the app's
//! private directory), and SHA-256 of MiniLM's 90 MB optimized weights costs ~75 ms here, more than loading them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::error::{Error, Result};

const FORMAT: u32 = 1;
pub(crate) const MODEL_FILE: &str = "model.onnx";
const WEIGHTS_FILE: &str = "model.onnx.data";
const ENTRY_FILE: &str = "entry.json";

/// ONNX Runtime session settings that make it write the optimized model with its weights in a side file.
pub(crate) const EXTERNAL_WEIGHTS: [(&str, &str); 2] = [
    ("session.optimized_model_external_initializers_file_name", WEIGHTS_FILE),
    ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
];

#[derive(Serialize, Deserialize)]
struct EntryFile {
    format: u32,
    /// The model's content hash and the settings that are not about the runtime: entries that share them but not
    /// the key (another ONNX Runtime version, another CPU) are stale and pruned when a new entry is written.
    model: String,
    settings: String,
    files: Vec<FileCheck>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct FileCheck {
    name: String,
    size: u64,
    xxh3: String,
}

/// One model's place in the cache, for one set of settings.
pub(crate) struct CacheEntry {
    dir: PathBuf,
    model: String,
    settings: String,
}

/// What happened to the compile cache when an engine was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory configured (or O0: nothing to cache).
    Disabled,
    /// A verified entry was loaded: graph optimization skipped.
    Hit,
    /// No entry yet: the model was optimized and the entry written.
    Miss,
    /// An entry failed its check (or ONNX Runtime refused it): it was deleted and rebuilt.
    Rebuilt,
    /// The cache directory could not be written (read-only, full, not a directory): the model loaded without it.
    Unavailable,
}

/// The content hash of a model's bytes, as the cache keys it.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// A model file's content hash, remembered against its size and modification time so a launch need not reread the
/// model (12-22 MB here, 2.5 ms). Git's rule for "racily clean" files applies: a file modified within two seconds of
/// being hashed could change again within the timestamp's resolution, so its hash is not remembered as trusted.
pub(crate) fn file_hash(cache_dir: &Path, path: &Path, hash_bytes: impl FnOnce() -> Result<String>) -> Result<String> {
    #[derive(Serialize, Deserialize, PartialEq)]
    struct Memo {
        path: String,
        size: u64,
        modified_ns: u128,
        hashed_at_ns: u128,
        hash: String,
    }
    let nanos = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let stat = std::fs::metadata(path).ok().and_then(|m| Some((m.len(), nanos(m.modified().ok()?))));
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()).display().to_string();
    let memo_path = cache_dir.join(".sources").join(format!("{:016x}.json", xxh3_64(canonical.as_bytes())));
    if let Some((size, modified_ns)) = stat
        && let Ok(text) = std::fs::read_to_string(&memo_path)
        && let Ok(memo) = serde_json::from_str::<Memo>(&text)
        && memo.path == canonical
        && memo.size == size
        && memo.modified_ns == modified_ns
        && memo.hashed_at_ns > modified_ns + 2_000_000_000
    {
        return Ok(memo.hash);
    }
    let hash = hash_bytes()?;
    if let Some((size, modified_ns)) = stat {
        let memo = Memo { path: canonical, size, modified_ns, hashed_at_ns: nanos(std::time::SystemTime::now()), hash };
        let tmp = memo_path.with_extension(format!("tmp-{}", std::process::id()));
        let written = std::fs::create_dir_all(memo_path.parent().expect("parent"))
            .and_then(|_| std::fs::write(&tmp, serde_json::to_vec(&memo).unwrap_or_default()))
            .and_then(|_| std::fs::rename(&tmp, &memo_path));
        if let Err(e) = written {
            log::debug!("compile cache: could not remember the model's hash: {e}");
        }
        return Ok(memo.hash);
    }
    Ok(hash)
}

impl CacheEntry {
    /// `model` is the model's content hash; `settings` spells every option the optimized graph depends on.
    pub(crate) fn new(cache_dir: &Path, model: String, settings: String) -> CacheEntry {
        let key_text = format!("format {FORMAT}|{model}|{settings}|ort {}|{}", ort_version(), cpu_features());
        let key = format!("{:032x}", xxh3_128(key_text.as_bytes()));
        CacheEntry { dir: cache_dir.join(key), model, settings }
    }

    pub(crate) fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// Whether a complete entry exists whose files match their recorded sizes and checksums.
    pub(crate) fn verified(&self) -> std::result::Result<bool, String> {
        let Ok(text) = std::fs::read_to_string(self.dir.join(ENTRY_FILE)) else {
            return Ok(false);
        };
        let entry: EntryFile = serde_json::from_str(&text).map_err(|e| format!("unreadable entry.json: {e}"))?;
        if entry.format != FORMAT || entry.model != self.model || entry.settings != self.settings {
            return Err("entry.json does not describe this model and settings".into());
        }
        for expected in &entry.files {
            let found = check(&self.dir.join(&expected.name)).map_err(|e| format!("{}: {e}", expected.name))?;
            if found != *expected {
                return Err(format!("{} does not match its recorded size and checksum", expected.name));
            }
        }
        Ok(true)
    }

    /// A fresh temporary directory next to the entry, for ONNX Runtime to write the optimized model into.
    pub(crate) fn staging(&self) -> Result<PathBuf> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
        let staging = self.dir.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| cache_error(&staging, e))?;
        Ok(staging)
    }

    /// Records checksums of what ONNX Runtime wrote into `staging` and moves it into place. If another process
    /// got there first, its entry is kept.
    pub(crate) fn commit(&self, staging: &Path) -> Result<()> {
        let mut files = Vec::new();
        for name in [MODEL_FILE, WEIGHTS_FILE] {
            let path = staging.join(name);
            if path.exists() {
                files.push(check(&path).map_err(|e| cache_error(&path, e))?);
            }
        }
        if files.first().is_none_or(|f| f.name != MODEL_FILE) {
            return Err(Error::internal("ONNX Runtime did not write the optimized model"));
        }
        let entry = EntryFile { format: FORMAT, model: self.model.clone(), settings: self.settings.clone(), files };
        let text = serde_json::to_string_pretty(&entry).map_err(Error::internal)?;
        std::fs::write(staging.join(ENTRY_FILE), text).map_err(|e| cache_error(staging, e))?;
        self.prune_stale();
        if std::fs::rename(staging, &self.dir).is_err() {
            // Another engine committed the same entry meanwhile (rename onto a non-empty directory fails).
            let _ = std::fs::remove_dir_all(staging);
        }
        Ok(())
    }

    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Deletes entries for this model and settings made under another key (an older ONNX Runtime, another CPU).
    fn prune_stale(&self) {
        let Some(parent) = self.dir.parent() else { return };
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        // Staging directories and the source memos (dot-named) are not entries.
        let is_entry = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'));
        for dir in entries.flatten().map(|e| e.path()).filter(|p| *p != self.dir && is_entry(p)) {
            let Ok(text) = std::fs::read_to_string(dir.join(ENTRY_FILE)) else { continue };
            if let Ok(entry) = serde_json::from_str::<EntryFile>(&text)
                && entry.model == self.model
                && entry.settings == self.settings
            {
                log::info!("compile cache: removing stale entry {}", dir.display());
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Hashes a file through a memory map: no copy, and the pages are the ones ONNX Runtime maps next.
fn check(path: &Path) -> std::io::Result<FileCheck> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let hash = if size == 0 {
        xxh3_64(&[])
    } else {
        // SAFETY: the cache directory is private to the app; a concurrent writer would only make the check fail.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        xxh3_64(&map)
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    Ok(FileCheck { name, size, xxh3: format!("{hash:016x}") })
}

fn cache_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidConfig { reason: format!("compile cache at `{}`: {e}", path.display()) }
}

fn ort_version() -> String {
    crate::runtime::Runtime::info().map(|i| i.ort_version).unwrap_or_default()
}

/// The instruction sets ONNX Runtime's CPU kernels and level-3 layouts depend on.
fn cpu_features() -> String {
    #[allow(unused_mut)]
    let mut features: Vec<&str> = vec![std::env::consts::ARCH];
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512vnni", std::arch::is_x86_feature_detected!("avx512vnni")),
            ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ] {
            if on {
                features.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        for (name, on) in [
            ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
            ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
            ("bf16", std::arch::is_aarch64_feature_detected!("bf16")),
            ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ] {
            if on {
                features.push(name);
            }
        }
    }
    features.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("openautoglm-cache-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An entry written as ONNX Runtime would leave it: the model and its weights in the staging directory.
    fn committed(cache: &Path, model: &str, settings: &str) -> CacheEntry {
        let entry = CacheEntry::new(cache, model.into(), settings.into());
        let staging = entry.staging().unwrap();
        std::fs::write(staging.join(MODEL_FILE), b"graph").unwrap();
        std::fs::write(staging.join(WEIGHTS_FILE), b"weights").unwrap();
        entry.commit(&staging).unwrap();
        entry
    }

    #[test]
    fn the_key_covers_the_model_and_every_setting() {
        let cache = Path::new("/cache");
        let key = |model: &str, settings: &str| CacheEntry::new(cache, model.into(), settings.into()).dir;
        assert_eq!(key("m", "O3|[Cpu]|"), key("m", "O3|[Cpu]|"), "same model and settings, same entry");
        assert_ne!(key("m", "O3|[Cpu]|"), key("other", "O3|[Cpu]|"));
        assert_ne!(key("m", "O3|[Cpu]|"), key("m", "O1|[Cpu]|"));
        assert_ne!(key("m", "O3|[Cpu]|"), key("m", "O3|[Cpu]|[(\"batch\", 1)]"));
        assert_eq!(content_hash(b"model"), content_hash(b"model"));
        assert_ne!(content_hash(b"model"), content_hash(b"modem"));
    }

    #[test]
    fn a_committed_entry_verifies_and_a_damaged_one_does_not() {
        let cache = temp_dir("verify");
        let entry = CacheEntry::new(&cache, "m".into(), "s".into());
        assert_eq!(entry.verified(), Ok(false), "no entry yet");
        let entry = committed(&cache, "m", "s");
        assert_eq!(entry.verified(), Ok(true));
        // Same size, other bytes: the checksum catches it.
        std::fs::write(entry.dir.join(WEIGHTS_FILE), b"WEIGHTS").unwrap();
        assert!(entry.verified().unwrap_err().contains(WEIGHTS_FILE));
        std::fs::remove_file(entry.dir.join(WEIGHTS_FILE)).unwrap();
        assert!(entry.verified().is_err(), "a missing file fails the check");
        std::fs::write(entry.dir.join(ENTRY_FILE), "{ not json").unwrap();
        assert!(entry.verified().unwrap_err().contains("unreadable"));
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn an_entry_for_other_settings_under_this_key_is_refused() {
        let cache = temp_dir("mismatch");
        let entry = committed(&cache, "m", "s");
        let text = std::fs::read_to_string(entry.dir.join(ENTRY_FILE)).unwrap().replace("\"s\"", "\"other\"");
        std::fs::write(entry.dir.join(ENTRY_FILE), text).unwrap();
        assert!(entry.verified().unwrap_err().contains("does not describe"));
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn commit_needs_the_model_and_prunes_stale_entries() {
        let cache = temp_dir("commit");
        let entry = CacheEntry::new(&cache, "m".into(), "s".into());
        let empty = entry.staging().unwrap();
        assert!(entry.commit(&empty).is_err(), "ONNX Runtime wrote nothing");
        // An entry for the same model and settings under another key (another ONNX Runtime or CPU) is stale.
        let stale = cache.join("stale-key");
        std::fs::create_dir_all(&stale).unwrap();
        let stale_entry = EntryFile { format: FORMAT, model: "m".into(), settings: "s".into(), files: Vec::new() };
        std::fs::write(stale.join(ENTRY_FILE), serde_json::to_string(&stale_entry).unwrap()).unwrap();
        let unrelated = committed(&cache, "other", "s");
        committed(&cache, "m", "s");
        assert!(!stale.exists(), "the stale entry was pruned");
        assert_eq!(unrelated.verified(), Ok(true), "other models' entries stay");
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn a_file_hash_is_remembered_only_once_the_file_is_settled() {
        let cache = temp_dir("memo");
        let model = cache.join("model.onnx");
        std::fs::write(&model, b"bytes").unwrap();
        let mut hashed = 0;
        let mut hash = || {
            file_hash(&cache, &model, || {
                hashed += 1;
                Ok("h".to_owned())
            })
            .unwrap()
        };
        assert_eq!(hash(), "h");
        assert_eq!(hash(), "h");
        // Modified moments ago, so within the timestamp's resolution of a change: hashed again, not trusted.
        assert_eq!(hashed, 2);
        let _ = std::fs::remove_dir_all(&cache);
    }
}
