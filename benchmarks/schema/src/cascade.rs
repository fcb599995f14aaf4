//! What the runner's `--cascade` reports: per text line, what each path read and how long it took.

use serde::{Deserialize, Serialize};

/// `lines-<set>.json`, written by `cargo xtask cascade`: labelled text lines rendered as gray pictures, which the
/// runner turns into the recognizer's input.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TextLines {
    pub height: u32,
    pub width: u32,
    /// Each line's width after resizing to `height` (at most `width`); its pixels are rows of that width.
    pub widths: Vec<u32>,
    pub texts: Vec<String>,
    /// The gray pixels, line after line, in this file next to the JSON.
    pub pixels: String,
}

/// `--cascade --profile`: every calibration line through the fast and the main model alone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CascadeProfile {
    pub lines: Vec<ProfiledLine>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProfiledLine {
    pub fast_text: String,
    /// The fast model's confidence in its reading, as the cascade's gate computes it.
    pub confidence: f32,
    pub fast_ms: f64,
    pub main_text: String,
    pub main_ms: f64,
}

/// `--cascade --compare`: every test line through the main model alone and through the SDK's cascade.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CascadeComparison {
    /// The gate's threshold in the manifest that ran.
    pub threshold: f32,
    pub lines: Vec<ComparedLine>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ComparedLine {
    pub main_text: String,
    pub main_ms: f64,
    pub cascade_text: String,
    pub cascade_ms: f64,
    /// `fast` or `main`: where the cascade answered.
    pub path: CascadePathTaken,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CascadePathTaken {
    #[default]
    Fast,
    Main,
}
