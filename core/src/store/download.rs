//! One file fetched into place: to a temporary file named for the content it should hold, hashed as the bytes
//! arrive, resumed with range requests, verified, synced and renamed. Only one process writes a temporary file at a
//! time (an exclusive lock on it); the others wait and then find the file installed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use sha2::{Digest, Sha256};

use super::transport::{self, Transport};
use super::{Progress, StoreConfig};
use crate::error::{Error, Result};
use crate::schedule::CancelToken;

/// A file to have in place: where, from where, and what it must be.
pub(crate) struct Target<'a> {
    /// The model's name, for errors.
    pub label: &'a str,
    pub dir: &'a Path,
    pub file: &'a str,
    pub urls: &'a [String],
    pub size: u64,
    /// Lowercase hex.
    pub sha256: &'a str,
}

impl Target<'_> {
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(self.file)
    }

    fn partial(&self) -> PathBuf {
        self.dir.join(format!(".partial-{}", &self.sha256[..16]))
    }

    fn installed(&self) -> bool {
        fs::metadata(self.path()).is_ok_and(|m| m.is_file() && m.len() == self.size)
    }

    fn io_failure(&self, what: &str, e: std::io::Error) -> Error {
        Error::DownloadFailed { name: self.label.to_owned(), reason: format!("{what}: {e}") }
    }
}

/// Bytes written between requests to start writing them to storage.
const WRITEBACK_STEP: u64 = 2 << 20;

/// Starts writing what is in the page cache up to `end` to storage, without waiting, so the `fsync` before the rename
/// waits for the last few megabytes only instead of the whole file: durability then overlaps the download (its wait
/// fell from 94 to 12 ms over 126 MB here). Linux, and 64-bit Android through the raw syscall (bionic's wrapper
/// needs API 26); elsewhere the final `fsync` does it all.
#[cfg(any(target_os = "linux", all(target_os = "android", target_pointer_width = "64")))]
fn start_writeback(file: &File, end: u64) {
    use std::os::fd::AsRawFd;
    // SYNC_FILE_RANGE_WRITE in the kernel's uapi (the libc crate has no Android name for it).
    const START_WRITE: libc::c_uint = 2;
    let (fd, end) = (file.as_raw_fd(), end as i64);
    // SAFETY: plain syscalls on a descriptor this function borrows; a failure only loses the head start.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::sync_file_range(fd, 0, end, START_WRITE);
    }
    #[cfg(target_os = "android")]
    unsafe {
        libc::syscall(libc::SYS_sync_file_range, fd, 0i64, end, START_WRITE);
    }
}

#[cfg(not(any(target_os = "linux", all(target_os = "android", target_pointer_width = "64"))))]
fn start_writeback(_file: &File, _end: u64) {}

/// Bytes read from the network per write.
const CHUNK: usize = 256 << 10;

/// Puts `target` in place unless it already is; `progress` gets (bytes so far, size) with `offset` added to both,
/// so several files can report as one.
pub(crate) fn ensure(
    transport: &dyn Transport,
    config: &StoreConfig,
    target: &Target<'_>,
    progress: &mut dyn FnMut(Progress),
    cancel: Option<&CancelToken>,
) -> Result<()> {
    if target.installed() {
        return Ok(());
    }
    let partial = target.partial();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(|e| target.io_failure("cannot open its temporary file", e))?;
    // Another process may be fetching the same file: wait for it, then it may be there.
    file.lock().map_err(|e| target.io_failure("cannot lock its temporary file", e))?;
    if target.installed() {
        // The handle is either the file the other process installed (renamed away) or one this call just created.
        if super::lease::same_file(&file, &partial) {
            let _ = fs::remove_file(&partial);
        }
        return Ok(());
    }
    let mut last = String::new();
    for attempt in 0..config.attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(config.backoff * 2u32.saturating_pow(attempt - 1));
        }
        let url = &target.urls[attempt as usize % target.urls.len()];
        match fetch(transport, target, url, &mut file, progress, cancel)? {
            Fetched::Complete(digest) => {
                verify(target, &partial, digest)?;
                return install(target, &file, &partial);
            }
            Fetched::Interrupted(reason) => last = format!("{url}: {reason}"),
        }
    }
    Err(Error::DownloadFailed {
        name: target.label.to_owned(),
        reason: format!("{} tries failed; the last: {last}", config.attempts.max(1)),
    })
}

enum Fetched {
    /// All the target's bytes are in the temporary file; their sha256.
    Complete([u8; 32]),
    Interrupted(String),
}

/// One try: continue the temporary file from `url` until it holds the target's size, hashing as the bytes arrive
/// (what an earlier try left is hashed first), or say why it stopped.
fn fetch(
    transport: &dyn Transport,
    target: &Target<'_>,
    url: &str,
    file: &mut File,
    progress: &mut dyn FnMut(Progress),
    cancel: Option<&CancelToken>,
) -> Result<Fetched> {
    let mut have = file.metadata().map_or(0, |m| m.len());
    if have > target.size {
        have = 0;
    }
    if have < target.size {
        let response = match transport::get(transport, url, have) {
            Ok(response) => response,
            Err(reason) => return Ok(Fetched::Interrupted(reason)),
        };
        if !response.resumed {
            have = 0;
        }
        let hasher = Hashing::start(hash_prefix(target, file, have)?);
        file.set_len(have).map_err(|e| target.io_failure("cannot write its temporary file", e))?;
        file.seek(SeekFrom::Start(have)).map_err(|e| target.io_failure("cannot write its temporary file", e))?;
        let mut body = response.body;
        progress(Progress { bytes: have, total: target.size });
        loop {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(Error::Cancelled);
            }
            let mut buffer = hasher.buffer();
            let read = match body.read(&mut buffer) {
                Ok(0) if have < target.size => {
                    return Ok(Fetched::Interrupted(format!("ended at {have} of {} bytes", target.size)));
                }
                Ok(0) => return Ok(Fetched::Complete(hasher.finish())),
                Ok(n) => n,
                Err(e) => return Ok(Fetched::Interrupted(format!("connection lost at {have} bytes: {e}"))),
            };
            if have + read as u64 > target.size {
                let _ = file.set_len(0);
                return Err(Error::IntegrityFailed {
                    name: target.label.to_owned(),
                    reason: format!("the server sent more than the {} bytes expected", target.size),
                });
            }
            file.write_all(&buffer[..read]).map_err(|e| target.io_failure("cannot write its temporary file", e))?;
            hasher.update(buffer, read);
            if (have + read as u64) / WRITEBACK_STEP != have / WRITEBACK_STEP {
                start_writeback(file, have + read as u64);
            }
            have += read as u64;
            progress(Progress { bytes: have, total: target.size });
        }
    }
    Ok(Fetched::Complete(hash_prefix(target, file, have)?.finalize().into()))
}

/// sha256 on its own thread, fed the pieces as they are written: hashing (about 1.3 GB/s with SHA extensions) then
/// overlaps the network and the disk instead of adding to them, a third of a download's time on a fast link.
/// Buffers go back and forth, so a download allocates a handful of them.
struct Hashing {
    pieces: SyncSender<(Vec<u8>, usize)>,
    spare: Receiver<Vec<u8>>,
    digest: std::thread::JoinHandle<Sha256>,
}

impl Hashing {
    fn start(mut hasher: Sha256) -> Hashing {
        let (pieces, hashed) = sync_channel::<(Vec<u8>, usize)>(4);
        let (give_back, spare) = channel();
        let digest = std::thread::spawn(move || {
            for (piece, length) in hashed {
                hasher.update(&piece[..length]);
                let _ = give_back.send(piece);
            }
            hasher
        });
        Hashing { pieces, spare, digest }
    }

    /// A buffer of [`CHUNK`] bytes to read into.
    fn buffer(&self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_else(|_| vec![0; CHUNK])
    }

    /// Hashes `buffer[..length]`, then gives `buffer` back.
    fn update(&self, buffer: Vec<u8>, length: usize) {
        // The thread ends only when `pieces` is dropped, so it is there to receive.
        let _ = self.pieces.send((buffer, length));
    }

    fn finish(self) -> [u8; 32] {
        drop(self.pieces);
        self.digest.join().map(|h| h.finalize().into()).unwrap_or([0; 32])
    }
}

/// A hasher over the first `length` bytes of the temporary file (what earlier tries fetched).
fn hash_prefix(target: &Target<'_>, file: &mut File, length: u64) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    if length == 0 {
        return Ok(hasher);
    }
    let failed = |e| target.io_failure("cannot read its temporary file", e);
    file.seek(SeekFrom::Start(0)).map_err(failed)?;
    let mut prefix = file.take(length);
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = prefix.read(&mut buffer).map_err(failed)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..n]);
    }
}

/// The fetched bytes' sha256 must be the target's; otherwise the temporary file is removed and the failure typed.
fn verify(target: &Target<'_>, partial: &Path, digest: [u8; 32]) -> Result<()> {
    let got = hex(&digest);
    if got != target.sha256.to_ascii_lowercase() {
        let _ = fs::remove_file(partial);
        return Err(Error::IntegrityFailed {
            name: target.label.to_owned(),
            reason: format!("sha256 is {got}, expected {}", target.sha256),
        });
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Syncs the verified file, renames it into place and syncs the folder, so a crash leaves either nothing or it.
fn install(target: &Target<'_>, file: &File, partial: &Path) -> Result<()> {
    file.sync_all().map_err(|e| target.io_failure("cannot sync it", e))?;
    fs::rename(partial, target.path()).map_err(|e| target.io_failure("cannot move it into place", e))?;
    if let Ok(folder) = File::open(target.dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}
