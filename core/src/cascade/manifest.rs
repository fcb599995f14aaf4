//! A calibrated cascade on disk: `cascade.json` names the fast and main models (and their label files), the gate
//! and its threshold, and the measured table the threshold was chosen from (`cargo xtask cascade calibrate`
//! writes it). Paths in it are relative to the manifest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cascade, Confidence, Gate};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// One of the cascade's two models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeStage {
    pub model: String,
    /// The file that names its outputs' classes (a text recognizer's character dictionary), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

/// The built-in gate, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSpec {
    pub confidence: Confidence,
    pub output: String,
    pub threshold: f32,
    #[serde(default)]
    pub logits: bool,
}

/// What a threshold gave on the calibration set, on the device it was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRow {
    pub threshold: f32,
    pub escalation_rate: f64,
    pub accuracy: f64,
    pub mean_ms: f64,
    pub p99_ms: f64,
}

/// What the threshold was chosen to meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CascadeTarget {
    /// Accuracy at least the main model's minus this.
    AccuracyMargin(f64),
    /// At most this share of inputs escalated.
    EscalationBudget(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CascadeManifest {
    pub fast: CascadeStage,
    pub main: CascadeStage,
    pub gate: GateSpec,
    /// Where the table was measured (`linux-x86_64-cpu`, ...).
    #[serde(default)]
    pub device_class: Option<String>,
    #[serde(default)]
    pub target: Option<CascadeTarget>,
    /// The main model's accuracy alone on the calibration set, and the calibration set's size.
    #[serde(default)]
    pub main_accuracy: Option<f64>,
    #[serde(default)]
    pub inputs: Option<usize>,
    #[serde(default)]
    pub table: Vec<ThresholdRow>,
}

impl CascadeManifest {
    pub fn load(path: impl AsRef<Path>) -> Result<CascadeManifest> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|_| Error::ModelNotFound { path: path.display().to_string() })?;
        serde_json::from_str(&text).map_err(|e| Error::invalid_model(format!("{}: {e}", path.display())))
    }

    /// A path the manifest names, relative to the manifest's directory.
    pub fn resolve(manifest: &Path, file: &str) -> PathBuf {
        manifest.parent().unwrap_or(Path::new(".")).join(file)
    }
}

impl Cascade {
    /// The cascade a manifest describes, both engines built with `config`.
    pub fn from_manifest(path: impl AsRef<Path>, config: EngineConfig) -> Result<Cascade> {
        let path = path.as_ref();
        let manifest = CascadeManifest::load(path)?;
        // The threshold trades accuracy for speed as measured on one device class: elsewhere the trade differs.
        let here = crate::device_class(&crate::accelerator::leading_accelerator(&config)?);
        if let Some(measured) = manifest.device_class.as_deref().filter(|c| *c != here) {
            log::warn!(
                "{}: the cascade's threshold and table were measured on {measured}, not on {here} where it runs: \
                 recalibrate here (`cargo xtask cascade calibrate`) for figures that hold",
                path.display()
            );
        }
        let fast = Engine::from_file(CascadeManifest::resolve(path, &manifest.fast.model), config.clone())?;
        let main = Engine::from_file(CascadeManifest::resolve(path, &manifest.main.model), config)?;
        let GateSpec { confidence, output, threshold, logits } = manifest.gate;
        let mut cascade = Cascade::new(fast, main, Gate::Builtin { confidence, output, threshold, logits })?;
        cascade.owns_engines = true;
        Ok(cascade)
    }
}
