//! The model store: `ensure` returns the local path of a complete, verified model, downloading only when needed.
//!
//! What it guarantees:
//! - nothing unverified is ever under a model's name: bytes go to a temporary file beside it, named for the content
//!   it should hold, hashed as they arrive, and are renamed into place only after their size and sha256 match the
//!   entry (then synced);
//! - a download that stops (network, cancel, a killed process) leaves at most that one resumable file, and the next
//!   `ensure` continues from it with an HTTP range request, or starts over when the server ignores ranges;
//! - failures are typed: a refused entry (`InvalidConfig`, before any byte is fetched), bytes that do not match
//!   (`IntegrityFailed`, the temporary file removed), a server that does not deliver after bounded retries with
//!   backoff (`DownloadFailed`), a cancel (`Cancelled`).
//!
//! Layout: `ROOT/<name>/<version>/<name>`, the temporary file `ROOT/<name>/<version>/.partial-<sha256 prefix>`.

mod entry;
mod transport;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use entry::ModelEntry;
pub use transport::{Http, Response, Transport};

use crate::error::{Error, Result};
use crate::schedule::CancelToken;

/// Where the store keeps models, and its limits.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub root: PathBuf,
    /// The largest model an entry may declare.
    pub max_model_bytes: u64,
    /// Tries per `ensure` (each resumes what the last one fetched).
    pub attempts: u32,
    /// Wait before the second try, doubled for each one after.
    pub backoff: Duration,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig { root: root.into(), max_model_bytes: 4 << 30, attempts: 5, backoff: Duration::from_millis(200) }
    }
}

/// Bytes so far and the model's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub total: u64,
}

pub struct ModelStore {
    config: StoreConfig,
    transport: Arc<dyn Transport>,
}

/// Bytes read from the network per write.
const CHUNK: usize = 64 << 10;

impl ModelStore {
    /// A store over HTTP(S).
    pub fn new(config: StoreConfig) -> Result<ModelStore> {
        ModelStore::with_transport(config, Arc::new(Http::new()))
    }

    pub fn with_transport(config: StoreConfig, transport: Arc<dyn Transport>) -> Result<ModelStore> {
        fs::create_dir_all(&config.root)
            .map_err(|e| Error::InvalidConfig { reason: format!("model store at `{}`: {e}", config.root.display()) })?;
        Ok(ModelStore { config, transport })
    }

    /// Where `entry` is once installed.
    pub fn path_of(&self, entry: &ModelEntry) -> PathBuf {
        self.config.root.join(&entry.name).join(&entry.version).join(&entry.name)
    }

    /// The temporary file a download of `entry` goes to.
    fn partial_of(&self, entry: &ModelEntry) -> PathBuf {
        self.config.root.join(&entry.name).join(&entry.version).join(format!(".partial-{}", &entry.sha256[..16]))
    }

    /// The path of `entry`, complete and verified: at once when installed, else after downloading it.
    pub fn ensure(
        &self,
        entry: &ModelEntry,
        progress: &mut dyn FnMut(Progress),
        cancel: Option<&CancelToken>,
    ) -> Result<PathBuf> {
        entry.check(self.config.max_model_bytes)?;
        let installed = self.path_of(entry);
        if fs::metadata(&installed).is_ok_and(|m| m.len() == entry.size) {
            return Ok(installed);
        }
        let dir = installed.parent().expect("under the root");
        fs::create_dir_all(dir).map_err(|e| io_failure(entry, "cannot create its folder", e))?;
        let partial = self.partial_of(entry);
        let mut last = String::new();
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(self.config.backoff * 2u32.saturating_pow(attempt - 1));
            }
            let url = &entry.urls[attempt as usize % entry.urls.len()];
            match self.fetch(entry, url, &partial, progress, cancel)? {
                Fetched::Complete(digest) => {
                    verify(entry, &partial, digest)?;
                    install(entry, &partial, &installed, dir)?;
                    return Ok(installed);
                }
                Fetched::Interrupted(reason) => last = format!("{url}: {reason}"),
            }
        }
        Err(Error::DownloadFailed {
            name: entry.name.clone(),
            reason: format!("{} tries failed; the last: {last}", self.config.attempts.max(1)),
        })
    }

    /// One try: continue `partial` from `url` until it holds `entry.size` bytes, hashing as the bytes arrive (what an
    /// earlier try left is hashed first), or say why it stopped.
    fn fetch(
        &self,
        entry: &ModelEntry,
        url: &str,
        partial: &Path,
        progress: &mut dyn FnMut(Progress),
        cancel: Option<&CancelToken>,
    ) -> Result<Fetched> {
        let mut have = fs::metadata(partial).map_or(0, |m| m.len());
        if have > entry.size {
            have = 0;
        }
        if have == entry.size {
            return Ok(Fetched::Complete(hash_prefix(entry, partial, have)?.finalize().into()));
        }
        let response = match self.transport.get(url, have) {
            Ok(response) => response,
            Err(reason) => return Ok(Fetched::Interrupted(reason)),
        };
        if !response.resumed {
            have = 0;
        }
        let mut hasher = hash_prefix(entry, partial, have)?;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(have == 0)
            .append(have > 0)
            .open(partial)
            .map_err(|e| io_failure(entry, "cannot write its temporary file", e))?;
        let mut body = response.body;
        let mut buffer = vec![0u8; CHUNK];
        progress(Progress { bytes: have, total: entry.size });
        loop {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(Error::Cancelled);
            }
            let read = match body.read(&mut buffer) {
                Ok(0) if have < entry.size => {
                    return Ok(Fetched::Interrupted(format!("ended at {have} of {} bytes", entry.size)));
                }
                Ok(0) => return Ok(Fetched::Complete(hasher.finalize().into())),
                Ok(n) => n,
                Err(e) => return Ok(Fetched::Interrupted(format!("connection lost at {have} bytes: {e}"))),
            };
            if have + read as u64 > entry.size {
                drop(file);
                let _ = fs::remove_file(partial);
                return Err(Error::IntegrityFailed {
                    name: entry.name.clone(),
                    reason: format!("the server sent more than the entry's {} bytes", entry.size),
                });
            }
            file.write_all(&buffer[..read]).map_err(|e| io_failure(entry, "cannot write its temporary file", e))?;
            hasher.update(&buffer[..read]);
            have += read as u64;
            progress(Progress { bytes: have, total: entry.size });
        }
    }
}

enum Fetched {
    /// All `entry.size` bytes are in the temporary file; their sha256.
    Complete([u8; 32]),
    Interrupted(String),
}

/// A hasher over the first `length` bytes of the temporary file (what earlier tries fetched).
fn hash_prefix(entry: &ModelEntry, partial: &Path, length: u64) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    if length == 0 {
        return Ok(hasher);
    }
    let file = File::open(partial).map_err(|e| io_failure(entry, "cannot read its temporary file", e))?;
    let mut prefix = file.take(length);
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = prefix.read(&mut buffer).map_err(|e| io_failure(entry, "cannot read its temporary file", e))?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..n]);
    }
}

/// The fetched bytes' sha256 must be the entry's; otherwise the temporary file is removed and the failure typed.
fn verify(entry: &ModelEntry, partial: &Path, digest: [u8; 32]) -> Result<()> {
    let got: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if got != entry.sha256.to_ascii_lowercase() {
        let _ = fs::remove_file(partial);
        return Err(Error::IntegrityFailed {
            name: entry.name.clone(),
            reason: format!("sha256 is {got}, the entry says {}", entry.sha256),
        });
    }
    Ok(())
}

/// Syncs the verified file, renames it into place and syncs the folder, so a crash leaves either nothing or it.
fn install(entry: &ModelEntry, partial: &Path, installed: &Path, dir: &Path) -> Result<()> {
    File::open(partial).and_then(|f| f.sync_all()).map_err(|e| io_failure(entry, "cannot sync it", e))?;
    fs::rename(partial, installed).map_err(|e| io_failure(entry, "cannot move it into place", e))?;
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

fn io_failure(entry: &ModelEntry, what: &str, e: std::io::Error) -> Error {
    Error::DownloadFailed { name: entry.name.clone(), reason: format!("{what}: {e}") }
}
