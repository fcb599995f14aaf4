//! `bundle.json` as types: the variants, their verdicts per numerics class and their measurements per device
//! class, and whether a variant may run on a class (`BundleVariant::standing`). Written by xtask with these types.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::variant_choice::Measurements;

/// The class every verdict was taken on before verdicts were kept per class: the x86-64 host that made the bundle.
pub const LEGACY_VERDICT_CLASS: &str = "linux-x86_64-cpu";

/// `bundle.json`, as `cargo xtask models prepare` / `models verdicts` write it. With the `manifest-tools` feature the
/// fields this SDK does not read are kept (`other`), so a tool that rewrites the file loses nothing.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct BundleManifest {
    pub format: u32,
    #[serde(default)]
    pub model: String,
    pub variants: Vec<BundleVariant>,
    /// Fields the SDK does not read, kept by the tools that rewrite the file.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One variant of a bundle.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct BundleVariant {
    pub precision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The file's sha256 (lowercase hex): the model store checks a downloaded variant against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Bundles made before verdicts per class: the verdict on [`LEGACY_VERDICT_CLASS`]. The tools keep it equal to
    /// that class's verdict, for older readers.
    #[serde(default)]
    pub accurate: bool,
    /// The accuracy verdict per numerics class ([`crate::numerics_class`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verdicts: BTreeMap<String, Verdict>,
    /// Measured speed per device class ([`crate::device_class`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measurements>,
    /// Fields the SDK does not read, kept by the tools that rewrite the file.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A variant's outputs against FP32's on the model's test set, on one numerics class.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct Verdict {
    pub passed: bool,
    /// The set it was taken on (`test`: nothing was tuned on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<u32>,
    /// The worst input's score on the task's measure, and the mark it had to reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Fields the SDK does not read, kept by the tools that rewrite the file.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Whether a variant may run on a numerics class, and why not.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Standing<'a> {
    /// FP32 is the reference every verdict is taken against.
    Reference,
    Passed,
    Failed(&'a Verdict),
    /// Verdicts exist, but none on this class: those of other classes say nothing here.
    Unjudged {
        elsewhere: Vec<&'a str>,
    },
    /// A bundle from before verdicts per class whose variant failed on the class it was made on.
    LegacyFailed,
}

impl BundleVariant {
    pub(super) fn standing(&self, class: &str) -> Standing<'_> {
        if self.precision == "fp32" {
            return Standing::Reference;
        }
        if self.verdicts.is_empty() {
            return match (self.accurate, class == LEGACY_VERDICT_CLASS) {
                (true, true) => Standing::Passed,
                (true, false) => Standing::Unjudged { elsewhere: vec![LEGACY_VERDICT_CLASS] },
                (false, _) => Standing::LegacyFailed,
            };
        }
        match self.verdicts.get(class) {
            Some(v) if v.passed => Standing::Passed,
            Some(v) => Standing::Failed(v),
            None => Standing::Unjudged { elsewhere: self.verdicts.keys().map(String::as_str).collect() },
        }
    }

    pub(super) fn passes_on(&self, class: &str) -> bool {
        matches!(self.standing(class), Standing::Reference | Standing::Passed)
    }
}
