//! The model store across the FFI. Bytes come through the app's own HTTP stack (`HttpTransport`, implemented by the
//! Kotlin and Swift layers with HttpURLConnection and URLSession), so TLS, proxies and certificate pinning stay the
//! platform's and the library carries no TLS of its own; redirect and range rules, hashing, signatures, leases and
//! eviction are the core's.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use openautoglm as core;
use openautoglm::EngineConfig;
use openautoglm::store::{self as store, ModelStore, Progress, StoreConfig};

use crate::{CancelToken, NativeEngine, NativeError};

// What an app-side callback (transport, body, decryption) reports when it fails.
#[derive(Debug, uniffi::Error)]
pub enum CallbackError {
    Failed { reason: String },
}

impl std::fmt::Display for CallbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let CallbackError::Failed { reason } = self;
        f.write_str(reason)
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> CallbackError {
        CallbackError::Failed { reason: e.reason }
    }
}

// One plain GET (redirects not followed; `Range: bytes=FROM-` when `from` > 0).
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    fn get(&self, url: String, from: i64) -> Result<Arc<dyn HttpResponse>, CallbackError>;
}

// A response: status, the two headers the store reads, and the body in pieces (empty at the end); closed once the
// store is done with it, read to the end or not (`finish`).
#[uniffi::export(with_foreign)]
pub trait HttpResponse: Send + Sync {
    fn status(&self) -> i32;
    fn header(&self, name: String) -> Option<String>;
    fn read(&self, max: i32) -> Result<Vec<u8>, CallbackError>;
    fn finish(&self);
}

// Progress of an `ensure`: bytes so far of `total`.
#[uniffi::export(with_foreign)]
pub trait DownloadListener: Send + Sync {
    fn progress(&self, bytes: i64, total: i64);
}

// The app's decryption of a sealed model (its key from Keystore or Keychain is the app's business).
#[uniffi::export(with_foreign)]
pub trait ModelDecryptor: Send + Sync {
    fn decrypt(&self, sealed: Vec<u8>) -> Result<Vec<u8>, CallbackError>;
}

// A manifest entry. Sizes are signed across the FFI, as every count; negative ones are refused.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ModelEntry {
    pub name: String,
    pub version: String,
    pub urls: Vec<String>,
    pub size: i64,
    pub sha256: String,
}

impl ModelEntry {
    fn to_core(&self) -> Result<store::ModelEntry, NativeError> {
        Ok(store::ModelEntry {
            name: self.name.clone(),
            version: self.version.clone(),
            urls: self.urls.clone(),
            size: bytes(self.size, "size")?,
            sha256: self.sha256.clone(),
        })
    }

    fn of(e: &store::ModelEntry) -> ModelEntry {
        ModelEntry {
            name: e.name.clone(),
            version: e.version.clone(),
            urls: e.urls.clone(),
            size: e.size as i64,
            sha256: e.sha256.clone(),
        }
    }
}

fn bytes(n: i64, what: &str) -> Result<u64, NativeError> {
    u64::try_from(n).map_err(|_| NativeError::InvalidConfig { reason: format!("{what} must not be negative") })
}

// A manifest whose Ed25519 signature verified.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Manifest {
    pub models: Vec<ModelEntry>,
    pub bundles: Vec<ModelEntry>,
}

impl Manifest {
    fn of(m: store::Manifest) -> Manifest {
        Manifest {
            models: m.models.iter().map(ModelEntry::of).collect(),
            bundles: m.bundles.iter().map(ModelEntry::of).collect(),
        }
    }
}

// Verifies `signature` over `json` with `public_key` (Ed25519, 64 and 32 bytes) and reads the manifest.
#[uniffi::export]
pub fn verify_manifest(json: Vec<u8>, signature: Vec<u8>, public_key: Vec<u8>) -> Result<Manifest, NativeError> {
    Ok(Manifest::of(store::Manifest::verified(&json, &signature, &public_key)?))
}

// One version in the store.
#[derive(Debug, Clone, uniffi::Record)]
pub struct StoredModel {
    pub name: String,
    pub version: String,
    pub bytes: i64,
    pub last_used_ms: i64,
}

fn stored(v: store::StoredVersion) -> StoredModel {
    let last_used_ms = v.last_used.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    StoredModel { name: v.name, version: v.version, bytes: v.bytes as i64, last_used_ms }
}

// An installed model (or bundle folder), held until released or loaded into an engine (which then holds it).
#[derive(uniffi::Object)]
pub struct NativeInstalled {
    path: String,
    installed: Mutex<Option<store::Installed>>,
}

#[uniffi::export]
impl NativeInstalled {
    pub fn path(&self) -> String {
        self.path.clone()
    }

    // Loads it; the engine holds the version from now on (until closed).
    pub fn load(&self, config: EngineConfig) -> Result<Arc<NativeEngine>, NativeError> {
        let installed = self.installed.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| {
            NativeError::InvalidConfig { reason: "this installed model was released or loaded already".into() }
        })?;
        Ok(Arc::new(NativeEngine { engine: Arc::new(installed.load(config)?) }))
    }

    // Lets the store remove this version once superseded or evicted.
    pub fn release(&self) {
        self.installed.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[derive(uniffi::Object)]
pub struct NativeModelStore {
    store: ModelStore,
}

#[uniffi::export]
impl NativeModelStore {
    // A store in `root` fetching through `transport`; limits in bytes (defaults: 4 GiB per model, no budget).
    #[uniffi::constructor]
    pub fn new(
        root: String,
        transport: Arc<dyn HttpTransport>,
        max_model_bytes: Option<i64>,
        budget_bytes: Option<i64>,
        attempts: Option<i32>,
        backoff_ms: Option<i64>,
    ) -> Result<Arc<Self>, NativeError> {
        let mut config = StoreConfig::new(PathBuf::from(root));
        if let Some(max) = max_model_bytes {
            config.max_model_bytes = bytes(max, "max_model_bytes")?;
        }
        config.budget_bytes = budget_bytes.map(|b| bytes(b, "budget_bytes")).transpose()?;
        if let Some(attempts) = attempts {
            config.attempts = u32::try_from(attempts)
                .ok()
                .filter(|&a| (1..=100).contains(&a))
                .ok_or_else(|| NativeError::InvalidConfig { reason: "attempts must be between 1 and 100".into() })?;
        }
        if let Some(ms) = backoff_ms {
            config.backoff = Duration::from_millis(bytes(ms, "backoff_ms")?);
        }
        let store = ModelStore::with_transport(config, Arc::new(Foreign(transport)))?;
        Ok(Arc::new(NativeModelStore { store }))
    }

    pub fn ensure(
        &self,
        entry: ModelEntry,
        listener: Option<Arc<dyn DownloadListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<NativeInstalled>, NativeError> {
        let entry = entry.to_core()?;
        core::catch_panic(|| {
            let installed = self.store.ensure(&entry, &mut reporter(listener.as_deref()), token(&cancel))?;
            Ok(held(installed))
        })
    }

    pub fn ensure_bundle(
        &self,
        entry: ModelEntry,
        config: EngineConfig,
        listener: Option<Arc<dyn DownloadListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<NativeInstalled>, NativeError> {
        let entry = entry.to_core()?;
        core::catch_panic(|| {
            let mut report = reporter(listener.as_deref());
            let installed = self.store.ensure_bundle(&entry, &config, &mut report, token(&cancel))?;
            Ok(held(installed))
        })
    }

    pub fn open_encrypted(
        &self,
        entry: ModelEntry,
        decryptor: Arc<dyn ModelDecryptor>,
        config: EngineConfig,
        listener: Option<Arc<dyn DownloadListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<NativeEngine>, NativeError> {
        let entry = entry.to_core()?;
        core::catch_panic(|| {
            let decrypt = |sealed: &[u8]| decryptor.decrypt(sealed.to_vec()).map_err(|e| e.to_string());
            let mut report = reporter(listener.as_deref());
            let engine = self.store.open_encrypted(&entry, &decrypt, config, &mut report, token(&cancel))?;
            Ok(Arc::new(NativeEngine { engine: Arc::new(engine) }))
        })
    }

    pub fn fetch_manifest(
        &self,
        url: String,
        signature_url: String,
        public_key: Vec<u8>,
    ) -> Result<Manifest, NativeError> {
        core::catch_panic(|| Ok(Manifest::of(self.store.fetch_manifest(&url, &signature_url, &public_key)?)))
    }

    pub fn stored(&self) -> Vec<StoredModel> {
        self.store.stored().into_iter().map(stored).collect()
    }

    pub fn evict(&self, budget_bytes: i64) -> Result<Vec<StoredModel>, NativeError> {
        Ok(self.store.evict(bytes(budget_bytes, "budget_bytes")?).into_iter().map(stored).collect())
    }
}

fn token(cancel: &Option<Arc<CancelToken>>) -> Option<&core::CancelToken> {
    cancel.as_ref().map(|c| &c.token)
}

fn held(installed: store::Installed) -> Arc<NativeInstalled> {
    let path = installed.path().display().to_string();
    Arc::new(NativeInstalled { path, installed: Mutex::new(Some(installed)) })
}

/// Progress to the app's listener, at most once per percent (a callback per 64 KB piece is a JNI or Swift hop each).
fn reporter(listener: Option<&dyn DownloadListener>) -> impl FnMut(Progress) + '_ {
    let mut last = None;
    move |p: Progress| {
        let Some(listener) = listener else { return };
        let step = (p.bytes * 100).checked_div(p.total).unwrap_or(100);
        if last != Some(step) || p.bytes == p.total {
            last = Some(step);
            listener.progress(p.bytes as i64, p.total as i64);
        }
    }
}

/// The app's transport as the core's.
struct Foreign(Arc<dyn HttpTransport>);

impl store::Transport for Foreign {
    fn request(&self, url: &str, from: u64) -> Result<store::Reply, String> {
        let response = self.0.get(url.to_owned(), from as i64).map_err(|e| e.to_string())?;
        let Ok(status) = u16::try_from(response.status()) else {
            response.finish();
            return Err("the transport gave no HTTP status".to_owned());
        };
        Ok(store::Reply {
            status,
            content_range: response.header("Content-Range".into()),
            location: response.header("Location".into()),
            body: Box::new(ForeignBody { response, pending: Vec::new(), at: 0 }),
        })
    }
}

/// A foreign body as `Read`: one call across the FFI per piece.
struct ForeignBody {
    response: Arc<dyn HttpResponse>,
    pending: Vec<u8>,
    at: usize,
}

impl Drop for ForeignBody {
    fn drop(&mut self) {
        self.response.finish();
    }
}

/// The most a body read asks the app for at once.
const PIECE: i32 = 256 << 10;

impl Read for ForeignBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            self.pending = self.response.read(PIECE).map_err(|e| std::io::Error::other(e.to_string()))?;
            self.at = 0;
            if self.pending.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.pending.len() - self.at);
        out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
