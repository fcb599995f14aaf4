//! The model store: `ensure` returns a complete, verified model, downloading only when needed.
//!
//! What it guarantees:
//! - nothing unverified is ever under a model's name: bytes go to a temporary file beside it, named for the content
//!   it should hold, hashed as they arrive, and are renamed into place only after their size and sha256 match the
//!   entry (then synced); a manifest from the network is trusted only when its Ed25519 signature verifies with the
//!   app's public key ([`Manifest::verified`]);
//! - a download that stops (network, cancel, a killed process) leaves at most that one resumable file, and the next
//!   `ensure` continues from it with an HTTP range request, or starts over when the server ignores ranges;
//! - the version last ensured is a name's current one; the others are removed once no [`Installed`] (or engine
//!   loaded from one) holds them, in this process or another, and a size budget evicts the least recently used
//!   versions no one holds;
//! - a bundle fetches its `bundle.json` and only the variant this device's engine would run;
//! - an encrypted model is decrypted by the app's hook in memory and loaded from there, never written in clear;
//! - failures are typed: a refused entry (`InvalidConfig`, before any byte is fetched), bytes or a manifest that do
//!   not match (`IntegrityFailed`), a server that does not deliver after bounded retries with backoff
//!   (`DownloadFailed`), a cancel (`Cancelled`).
//!
//! Layout: `ROOT/<name>/<version>/<name>` (a bundle: `ROOT/<name>/<version>/bundle.json` and its variant), the
//! temporary file `.partial-<sha256 prefix>` and the lease file `.lock` beside it.

mod download;
mod entry;
mod lease;
mod manifest;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use entry::ModelEntry;
pub use lease::{Lease, StoredVersion};
pub use manifest::Manifest;
#[cfg(feature = "store-http")]
pub use transport::Http;
pub use transport::{Reply, Transport};

use download::Target;

use crate::bundle::{Bundle, MANIFEST};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::schedule::CancelToken;

/// Where the store keeps models, and its limits.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub root: PathBuf,
    /// The largest model an entry may declare.
    pub max_model_bytes: u64,
    /// Tries per file (each resumes what the last one fetched).
    pub attempts: u32,
    /// Wait before the second try, doubled for each one after.
    pub backoff: Duration,
    /// After each install, the least recently used versions no one holds are removed until the store is at most
    /// this size.
    pub budget_bytes: Option<u64>,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            root: root.into(),
            max_model_bytes: 4 << 30,
            attempts: 5,
            backoff: Duration::from_millis(200),
            budget_bytes: None,
        }
    }
}

/// Bytes so far and the size of everything being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub total: u64,
}

/// The app's decryption: sealed bytes in, the plain model out, or why not (a wrong key).
pub type Decrypt<'a> = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, String> + 'a;

/// Manifests and their signatures are small; anything larger is refused.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

pub struct ModelStore {
    config: StoreConfig,
    transport: Arc<dyn Transport>,
}

/// An installed model (or bundle folder), held: it is not removed while this, or an engine loaded from it, lives.
#[derive(Debug)]
pub struct Installed {
    path: PathBuf,
    bundle: bool,
    lease: Lease,
}

impl Installed {
    /// The model file, or the bundle's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads it (`Engine::from_file`, or `from_bundle` for a bundle); the engine holds the version until closed.
    pub fn load(self, config: EngineConfig) -> Result<Engine> {
        let engine =
            if self.bundle { Engine::from_bundle(&self.path, config)? } else { Engine::from_file(&self.path, config)? };
        Ok(engine.holding(Box::new(self.lease)))
    }
}

impl ModelStore {
    /// A store over HTTP(S) with the built-in client.
    #[cfg(feature = "store-http")]
    pub fn new(config: StoreConfig) -> Result<ModelStore> {
        ModelStore::with_transport(config, Arc::new(Http::new()))
    }

    /// A store that fetches through `transport` (an app's own HTTP stack).
    pub fn with_transport(config: StoreConfig, transport: Arc<dyn Transport>) -> Result<ModelStore> {
        std::fs::create_dir_all(&config.root)
            .map_err(|e| Error::InvalidConfig { reason: format!("model store at `{}`: {e}", config.root.display()) })?;
        Ok(ModelStore { config, transport })
    }

    fn version_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.config.root.join(&entry.name).join(&entry.version)
    }

    /// Where `entry` is once installed.
    pub fn path_of(&self, entry: &ModelEntry) -> PathBuf {
        self.version_dir(entry).join(&entry.name)
    }

    /// `entry`, complete and verified: at once when installed, else after downloading it.
    pub fn ensure(
        &self,
        entry: &ModelEntry,
        progress: &mut dyn FnMut(Progress),
        cancel: Option<&CancelToken>,
    ) -> Result<Installed> {
        let (dir, lease) = self.begin(entry)?;
        download::ensure(&*self.transport, &self.config, &target(entry, &dir, &entry.name), progress, cancel)?;
        self.settle(&dir);
        Ok(Installed { path: self.path_of(entry), bundle: false, lease })
    }

    /// A precision bundle whose `bundle.json` is `entry`, with only the variant an engine with `config` would run on
    /// this device (its precision, accelerator and numerics class): a phone does not fetch FP16 and INT8 both.
    /// Variants come from beside `bundle.json`'s URL and must match the size and sha256 it lists.
    pub fn ensure_bundle(
        &self,
        entry: &ModelEntry,
        config: &EngineConfig,
        progress: &mut dyn FnMut(Progress),
        cancel: Option<&CancelToken>,
    ) -> Result<Installed> {
        let (dir, lease) = self.begin(entry)?;
        let manifest = target(entry, &dir, MANIFEST);
        let mut manifest_progress = |p: Progress| progress(Progress { bytes: p.bytes, total: p.total + entry.size });
        download::ensure(&*self.transport, &self.config, &manifest, &mut manifest_progress, cancel)?;
        let bundle = Bundle::open(&dir)?;
        let variant = bundle.variant_for(config.precision, &crate::accelerator::leading_accelerator(config)?)?;
        let refuse = |reason: String| Error::IntegrityFailed { name: entry.name.clone(), reason };
        let (Some(size), Some(sha256)) = (variant.size_bytes, variant.sha256.as_deref()) else {
            return Err(refuse(format!("bundle.json lists no size and sha256 for `{}`", variant.file)));
        };
        let checked =
            ModelEntry { name: variant.file.clone(), urls: vec![], size, sha256: sha256.to_owned(), ..entry.clone() };
        checked.check_file(self.config.max_model_bytes)?;
        let urls: Vec<String> = entry.urls.iter().map(|url| transport::resolve(url, &variant.file)).collect();
        let file = Target { label: &entry.name, dir: &dir, file: &variant.file, urls: &urls, size, sha256 };
        let mut variant_progress =
            |p: Progress| progress(Progress { bytes: entry.size + p.bytes, total: entry.size + p.total });
        download::ensure(&*self.transport, &self.config, &file, &mut variant_progress, cancel)?;
        self.settle(&dir);
        Ok(Installed { path: dir, bundle: true, lease })
    }

    /// Ensures `entry` (stored encrypted), decrypts it in memory with the app's `decrypt` and loads the plain bytes
    /// with `Engine::from_bytes`: the model never touches disk in clear (so the compile cache, which writes the
    /// optimized model to disk, is refused). The plain bytes are zeroed once ONNX Runtime has them.
    pub fn open_encrypted(
        &self,
        entry: &ModelEntry,
        decrypt: &Decrypt<'_>,
        config: EngineConfig,
        progress: &mut dyn FnMut(Progress),
        cancel: Option<&CancelToken>,
    ) -> Result<Engine> {
        if config.cache_dir.is_some() {
            return Err(Error::InvalidConfig {
                reason: "an encrypted model cannot use the compile cache: it would write the model to disk in clear"
                    .into(),
            });
        }
        let installed = self.ensure(entry, progress, cancel)?;
        let sealed = std::fs::read(installed.path()).map_err(|e| Error::DownloadFailed {
            name: entry.name.clone(),
            reason: format!("cannot read the installed file: {e}"),
        })?;
        let mut plain = decrypt(&sealed).map_err(|reason| Error::IntegrityFailed {
            name: entry.name.clone(),
            reason: format!("the app's decryption failed: {reason}"),
        })?;
        let engine = Engine::from_bytes(&plain, config);
        std::hint::black_box(&mut plain).fill(0);
        Ok(engine?.holding(Box::new(installed.lease)))
    }

    /// Fetches the manifest at `url` and its Ed25519 signature at `signature_url` and returns it only if the
    /// signature verifies with `public_key` ([`Manifest::verified`]).
    pub fn fetch_manifest(&self, url: &str, signature_url: &str, public_key: &[u8]) -> Result<Manifest> {
        let fetch = |url: &str| {
            transport::get_small(&*self.transport, url, MAX_MANIFEST_BYTES)
                .map_err(|reason| Error::DownloadFailed { name: "manifest".into(), reason: format!("{url}: {reason}") })
        };
        Manifest::verified(&fetch(url)?, &fetch(signature_url)?, public_key)
    }

    /// Every version the store holds, least recently used first.
    pub fn stored(&self) -> Vec<StoredVersion> {
        lease::stored(&self.config.root).into_iter().map(|(_, v)| v).collect()
    }

    /// Removes the least recently used versions no one holds until the store is at most `budget` bytes; what went.
    pub fn evict(&self, budget: u64) -> Vec<StoredVersion> {
        lease::evict(&self.config.root, budget)
    }

    /// Checks `entry` (refused before any byte is fetched) and holds its version folder: where it goes, and the lease.
    fn begin(&self, entry: &ModelEntry) -> Result<(PathBuf, Lease)> {
        entry.check(self.config.max_model_bytes)?;
        let dir = self.version_dir(entry);
        let lease = Lease::take(&dir).map_err(|e| Error::DownloadFailed {
            name: entry.name.clone(),
            reason: format!("cannot create its folder in the store: {e}"),
        })?;
        Ok((dir, lease))
    }

    /// `dir` is now its name's current version: older ones no one holds go, then the budget is applied.
    fn settle(&self, dir: &Path) {
        lease::remove_superseded(dir);
        if let Some(budget) = self.config.budget_bytes {
            for gone in lease::evict(&self.config.root, budget) {
                log::info!(
                    "model store: evicted {} {} ({} bytes) to stay within the budget",
                    gone.name,
                    gone.version,
                    gone.bytes
                );
            }
        }
    }
}

fn target<'a>(entry: &'a ModelEntry, dir: &'a Path, file: &'a str) -> Target<'a> {
    Target { label: &entry.name, dir, file, urls: &entry.urls, size: entry.size, sha256: &entry.sha256 }
}
