//! A signed manifest: the models and bundles an app may install, as the app's server publishes them, trusted only
//! when an Ed25519 signature over its exact bytes verifies with the public key the app ships. A compromised server
//! can then refuse service but cannot swap a model: every file is checked against the sha256 the signed manifest
//! gives.
//!
//! ```json
//! { "format": 1,
//!   "models":  [ { "name": "silero-vad.onnx", "version": "5", "urls": ["https://cdn.example.com/silero-vad.onnx"],
//!                  "size": 2327524, "sha256": "…" } ],
//!   "bundles": [ { "name": "yolov8n-320", "version": "1", "urls": ["https://cdn.example.com/yolov8n-320/1/bundle.json"],
//!                  "size": 4308, "sha256": "…" } ] }
//! ```
//!
//! A bundle's entry is its `bundle.json`; its variants are fetched from beside that URL and checked against the size
//! and sha256 the (verified) `bundle.json` lists.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

use super::entry::ModelEntry;
use crate::error::{Error, Result};

/// The manifest format this SDK reads.
const FORMAT: u32 = 1;

/// A manifest whose signature verified.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    format: u32,
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub bundles: Vec<ModelEntry>,
}

impl Manifest {
    /// Verifies `signature` (64 bytes, Ed25519) over `json` with `public_key` (32 bytes), then reads it; a signature
    /// that does not verify is `IntegrityFailed` and nothing of the manifest is read.
    pub fn verified(json: &[u8], signature: &[u8], public_key: &[u8]) -> Result<Manifest> {
        let key: &[u8; 32] = public_key.try_into().map_err(|_| Error::InvalidConfig {
            reason: format!("an Ed25519 public key is 32 bytes, not {}", public_key.len()),
        })?;
        let key = VerifyingKey::from_bytes(key)
            .map_err(|_| Error::InvalidConfig { reason: "the public key is not an Ed25519 key".into() })?;
        let refused = |reason: &str| Error::IntegrityFailed { name: "manifest".into(), reason: reason.into() };
        let signature: &[u8; 64] =
            signature.try_into().map_err(|_| refused("an Ed25519 signature is 64 bytes; this one is not"))?;
        key.verify_strict(json, &Signature::from_bytes(signature))
            .map_err(|_| refused("its signature does not verify with the app's public key"))?;
        let manifest: Manifest = serde_json::from_slice(json)
            .map_err(|e| Error::InvalidConfig { reason: format!("the manifest is not valid: {e}") })?;
        if manifest.format != FORMAT {
            return Err(Error::InvalidConfig {
                reason: format!("manifest format {}; this SDK reads format {FORMAT}", manifest.format),
            });
        }
        Ok(manifest)
    }

    /// The model entry named `name`.
    pub fn model(&self, name: &str) -> Result<&ModelEntry> {
        self.models.iter().find(|e| e.name == name).ok_or_else(|| self.missing("model", name))
    }

    /// The bundle entry named `name`.
    pub fn bundle(&self, name: &str) -> Result<&ModelEntry> {
        self.bundles.iter().find(|e| e.name == name).ok_or_else(|| self.missing("bundle", name))
    }

    fn missing(&self, what: &str, name: &str) -> Error {
        Error::InvalidConfig { reason: format!("the manifest has no {what} named `{}`", name.escape_debug()) }
    }
}
