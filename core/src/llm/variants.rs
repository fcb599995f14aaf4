//! Which decoder file of an LLM directory runs: `llm.json` (written by `cargo xtask models prepare`) records each
//! precision's quality verdict against FP32 (perplexity on held-out text, greedy agreement, a multi-turn chat free
//! of loops) and, per device class, its measured tokens/s (`cargo xtask bench --generate --record`).
//!
//! `Auto` picks the fastest decoder that passed, measured on this device class; unmeasured, the first that passed
//! of 4-bit mixed, 4-bit, INT8, FP16; else FP32 (the reference, passed by definition). A decoder that failed is run
//! only when asked for by name, and its choice says so.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::bundle::PrecisionChoice;
use crate::config::{Accelerator, Precision};
use crate::error::{Error, Result};
use crate::variant_choice::{Candidate, Measurements, device_class, fastest_measured};

/// `llm.json`, as `cargo xtask models prepare` writes it: each precision's decoder file, its quality verdict against
/// FP32 and its measured speed per device class. With the `manifest-tools` feature the fields this SDK does not read
/// are kept (`other`), so a tool that rewrites the file loses nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct LlmIndex {
    #[serde(default)]
    pub precisions: BTreeMap<String, LlmDecoder>,
    /// The model (`benchmarks/models.json`'s id) and the key its decoders were made under, for the tools.
    #[cfg(feature = "manifest-tools")]
    #[serde(default)]
    pub id: String,
    #[cfg(feature = "manifest-tools")]
    #[serde(default)]
    pub stamp: String,
    /// Fields the SDK does not read, kept by the tools that rewrite the file.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One decoder of an LLM directory.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct LlmDecoder {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<LlmQuality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measurements>,
    /// Fields the SDK does not read (size, the mechanics check), kept by the tools that rewrite the file.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A decoder's quality verdict against FP32.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct LlmQuality {
    pub passed: bool,
    /// The measures behind it (perplexity ratio, greedy agreement, ...), kept by the tools.
    #[cfg(feature = "manifest-tools")]
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Auto's order where nothing was measured: fewest bytes per weight first (decoding is memory-bound).
const AUTO_ORDER: &[&str] = &["int4-mixed.onnx", "int4.onnx", "int8.onnx", "fp16.onnx"];

fn precision_of(file: &str) -> Precision {
    match file.split(['.', '-']).next() {
        Some("fp16") => Precision::Fp16,
        Some("int8") => Precision::Int8,
        Some("int4") => Precision::Int4,
        _ => Precision::Fp32,
    }
}

/// The decoder file to run in `dir` for `precision`, and why.
pub(super) fn choose(dir: &Path, precision: Precision, leading: &Accelerator) -> Result<PrecisionChoice> {
    let index = read_index(dir)?;
    let exists = |file: &str| dir.join(file).is_file();
    let entry = |file: &str| index.precisions.values().find(|e| e.file == file);
    let passed =
        |file: &str| file == "fp32.onnx" || entry(file).and_then(|e| e.quality.as_ref()).is_some_and(|q| q.passed);
    let choice =
        |file: &str, reason: String| PrecisionChoice { precision: precision_of(file), file: file.to_owned(), reason };

    if precision == Precision::Auto {
        let files: Vec<&str> = index.precisions.values().map(|e| e.file.as_str()).filter(|f| exists(f)).collect();
        let candidates: Vec<Candidate<'_>> = files
            .iter()
            .map(|&f| Candidate { name: f, passed: passed(f), measured: entry(f).and_then(|e| e.measured.as_ref()) })
            .collect();
        if let Some((best, reason)) = fastest_measured(&candidates, &device_class(leading)) {
            return Ok(choice(files[best], reason));
        }
        if let Some(file) = AUTO_ORDER.iter().find(|f| exists(f) && passed(f)) {
            return Ok(choice(file, "auto: the smallest decoder that passed its quality check against FP32".into()));
        }
        if exists("fp32.onnx") {
            return Ok(choice("fp32.onnx", "auto: no smaller decoder passed its quality check; FP32".into()));
        }
        return Err(missing(dir, precision, &["fp32.onnx"]));
    }
    let files: &[&str] = match precision {
        Precision::Fp16 => &["fp16.onnx"],
        Precision::Int8 => &["int8.onnx"],
        Precision::Int4 => &["int4-mixed.onnx", "int4.onnx"],
        _ => &["fp32.onnx"],
    };
    let file = files
        .iter()
        .find(|f| exists(f) && passed(f))
        .or_else(|| files.iter().find(|f| exists(f)))
        .ok_or_else(|| missing(dir, precision, files))?;
    let reason = if passed(file) {
        "requested".to_owned()
    } else {
        log::warn!("{}: {file} did not pass its quality check against FP32; running it as asked", dir.display());
        "requested; note: this decoder did not pass its quality check against FP32".to_owned()
    };
    Ok(choice(file, reason))
}

/// The decoder `<name>.onnx` of `dir`, asked for by name.
pub(super) fn named(dir: &Path, name: &str) -> Result<PrecisionChoice> {
    let file = format!("{name}.onnx");
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
        return Err(Error::InvalidConfig {
            reason: format!("`{}` is not a decoder variant name", name.escape_debug()),
        });
    }
    if !dir.join(&file).is_file() {
        return Err(Error::ModelNotFound { path: dir.join(&file).display().to_string() });
    }
    let passed = read_index(dir)?
        .precisions
        .values()
        .find(|e| e.file == file)
        .and_then(|e| e.quality.as_ref())
        .is_some_and(|q| q.passed);
    let reason = if passed || name == "fp32" {
        "requested by name".to_owned()
    } else {
        "requested by name; note: this decoder did not pass its quality check against FP32".to_owned()
    };
    Ok(PrecisionChoice { precision: precision_of(&file), file, reason })
}

fn read_index(dir: &Path) -> Result<LlmIndex> {
    let index_path = dir.join("llm.json");
    match std::fs::read_to_string(&index_path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::invalid_model(format!("`{}` is not an LLM index: {e}", index_path.display()))),
        Err(_) => Ok(LlmIndex::default()),
    }
}

fn missing(dir: &Path, precision: Precision, files: &[&str]) -> Error {
    Error::InvalidConfig { reason: format!("{} has no {precision:?} decoder (looked for {files:?})", dir.display()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(index: &str, files: &[&str]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("openautoglm-llm-variants-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            std::fs::write(dir.join(file), b"x").unwrap();
        }
        std::fs::write(dir.join("llm.json"), index).unwrap();
        dir
    }

    const FILES: &[&str] = &["fp32.onnx", "int4.onnx", "int4-mixed.onnx", "int8.onnx"];

    #[test]
    fn auto_never_picks_a_decoder_that_failed() {
        let dir = dir_with(
            r#"{"precisions": {"fp32": {"file": "fp32.onnx", "quality": {"passed": true}},
                 "int4": {"file": "int4.onnx", "quality": {"passed": false}},
                 "int4-mixed": {"file": "int4-mixed.onnx", "quality": {"passed": true}},
                 "int8": {"file": "int8.onnx", "quality": {"passed": false}}}}"#,
            FILES,
        );
        let auto = choose(&dir, Precision::Auto, &Accelerator::Cpu).unwrap();
        assert_eq!((auto.file.as_str(), auto.precision), ("int4-mixed.onnx", Precision::Int4));
        let int8 = choose(&dir, Precision::Int8, &Accelerator::Cpu).unwrap();
        assert!(int8.reason.contains("did not pass"), "{}", int8.reason);
        // Nothing passed: FP32.
        let dir = dir_with(r#"{"precisions": {"int4": {"file": "int4.onnx", "quality": {"passed": false}}}}"#, FILES);
        assert_eq!(choose(&dir, Precision::Auto, &Accelerator::Cpu).unwrap().file, "fp32.onnx");
        // No verdicts at all (a hand-made directory): FP32 too.
        let dir = dir_with("{}", FILES);
        assert_eq!(choose(&dir, Precision::Auto, &Accelerator::Cpu).unwrap().file, "fp32.onnx");
    }

    #[test]
    fn measured_tokens_per_second_win() {
        let class = device_class(&Accelerator::Cpu);
        let dir = dir_with(
            &format!(
                r#"{{"precisions": {{"fp32": {{"file": "fp32.onnx", "measured": {{"{class}": {{"tokens_per_s": 30}}}}}},
                 "int4-mixed": {{"file": "int4-mixed.onnx", "quality": {{"passed": true}},
                                 "measured": {{"{class}": {{"tokens_per_s": 60}}}}}},
                 "int8": {{"file": "int8.onnx", "quality": {{"passed": true}}, "measured": {{"{class}": {{"tokens_per_s": 80}}}}}},
                 "int4": {{"file": "int4.onnx", "quality": {{"passed": false}}, "measured": {{"{class}": {{"tokens_per_s": 99}}}}}}}}}}"#
            ),
            FILES,
        );
        let auto = choose(&dir, Precision::Auto, &Accelerator::Cpu).unwrap();
        assert_eq!(auto.file, "int8.onnx", "{}", auto.reason);
        assert!(auto.reason.contains(&class), "{}", auto.reason);
    }

    #[test]
    fn a_variant_by_name_runs_whatever_its_verdict_and_says_so() {
        let dir = dir_with(r#"{"precisions": {"int4": {"file": "int4.onnx", "quality": {"passed": false}}}}"#, FILES);
        let int4 = named(&dir, "int4").unwrap();
        assert_eq!((int4.file.as_str(), int4.precision), ("int4.onnx", Precision::Int4));
        assert!(int4.reason.contains("did not pass"), "{}", int4.reason);
        assert!(matches!(named(&dir, "../fp32"), Err(Error::InvalidConfig { .. })));
        assert!(matches!(named(&dir, "fp16"), Err(Error::ModelNotFound { .. })));
    }

    #[test]
    fn a_damaged_index_is_an_invalid_model() {
        let dir = dir_with("{", FILES);
        assert!(matches!(choose(&dir, Precision::Auto, &Accelerator::Cpu), Err(Error::InvalidModel { .. })));
    }

    /// The tools rewrite `llm.json` through these types: nothing they do not know is lost.
    #[cfg(feature = "manifest-tools")]
    #[test]
    fn the_index_round_trips_with_every_field() {
        let text = r#"{"id": "smollm2", "stamp": "ab12", "precisions": {"fp16": {"file": "fp16.onnx", "size_bytes": 7,
            "check": {"cache_equals_recompute": true}, "quality": {"passed": false, "agreement": 0.36},
            "measured": {"linux-x86_64-cpu": {"tokens_per_s": 35.5, "source": "bench"}}}}, "later": [1]}"#;
        let index: LlmIndex = serde_json::from_str(text).unwrap();
        assert_eq!((index.id.as_str(), index.stamp.as_str()), ("smollm2", "ab12"));
        let written: serde_json::Value = serde_json::to_value(&index).unwrap();
        assert_eq!(written, serde_json::from_str::<serde_json::Value>(text).unwrap());
    }
}
