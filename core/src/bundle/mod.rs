//! Model bundles: one model in several precisions, and the choice of which to run.
//!
//! A bundle is a directory with `bundle.json` (written by `cargo xtask models prepare` and `models verdicts`; its
//! types are in [`manifest`]) and the variant files:
//!
//! ```json
//! { "format": 1, "model": "yolov8n-320",
//!   "variants": [ { "precision": "fp32", "file": "fp32.onnx", "size_bytes": 12150158, "sha256": "…", "accurate": true },
//!                 { "precision": "fp16", "file": "fp16.onnx", "accurate": true, "verdicts": {
//!                     "linux-x86_64-cpu":  { "passed": true,  "set": "test", "inputs": 21, "worst_score": 0.999, "threshold": 0.5 },
//!                     "linux-aarch64-cpu": { "passed": false, "set": "test", "inputs": 21, "worst_score": 0.0,   "threshold": 0.5 } } },
//!                 … ] }
//! ```
//!
//! `verdicts` holds each variant's outputs against FP32 on the model's test set (which nothing was tuned on), per
//! numerics class ([`crate::numerics_class`]): a verdict holds only where it was taken, since ONNX Runtime's x86-64
//! and ARM64 kernels compute float16 differently. [`Precision::Auto`] and explicit precisions only run a variant with
//! a passing verdict on the engine's class (FP32 is the reference); asking for one without is `InvalidConfig`.
//! `accurate` is the x86-64 verdict, kept for older readers; a bundle with no `verdicts` counts as judged on
//! [`LEGACY_VERDICT_CLASS`] only. Mixed variants (`int8-mixed`, `fp16-mixed`, and `…-aarch64` where the search ran
//! again on ARM64) keep their most sensitive nodes at FP32 (`kept_fp32`).
//!
//! A variant may carry `"measured": {"<device class>": {"mean_ms": 1.9}}` (`cargo xtask bench --record`). Where a
//! passing variant was measured on the device class the engine runs on ([`device_class`]), `Auto` picks the fastest
//! measured one (timings from other classes are ignored, with a warning); elsewhere it follows this table:
//!
//! | leading accelerator        | `Auto` tries, in order                 | why |
//! |----------------------------|----------------------------------------|-----|
//! | CoreML                     | FP16, FP16 mixed, FP32                 | the GPU and Neural Engine compute in FP16; FP32 models are converted at every compile |
//! | NNAPI                      | INT8 (QDQ), INT8 mixed, FP16, FP32     | NPUs/DSPs run quantized graphs; QDQ is the form NNAPI takes whole |
//! | XNNPACK, or CPU on ARM     | INT8 (QDQ), INT8 mixed, FP32           | ARM's int8 dot-product kernels; ONNX Runtime's guidance for mobile CPUs |
//! | CPU on x86-64              | FP32                                   | measured here (`bench --suite standard`): of 9 models with INT8 variants, an accurate INT8 beat FP32 on one (openWakeWord embedding, QDQ 0.67x); the faster INT8s were the inaccurate ones (YOLOv8n QDQ 0.62x, paraphrase-MiniLM 0.53x) |
//!
//! The ARM and accelerator rows follow ONNX Runtime's mobile guidance and are unverified on phones until
//! `cargo xtask bench --device android|ios-sim` has run there; the x86-64 row is what the host benchmark shows.

use std::path::{Path, PathBuf};

use crate::config::{Accelerator, Precision};
use crate::error::{Error, Result};
use crate::variant_choice::{Candidate, device_class, fastest_measured, numerics_class};

pub(crate) const MANIFEST: &str = "bundle.json";

pub mod manifest;

use manifest::Standing;
pub use manifest::{BundleManifest, BundleVariant, LEGACY_VERDICT_CLASS, Verdict};

/// Which variant of a bundle an engine runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecisionChoice {
    pub precision: Precision,
    /// The variant's file inside the bundle.
    pub file: String,
    pub reason: String,
}

/// A variant kind the choice can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fp32,
    Fp16,
    Int8Qdq,
    Int8Mixed,
    Int8Dynamic,
    Fp16Mixed,
    Int4,
}

impl Kind {
    fn matches(self, v: &BundleVariant) -> bool {
        match self {
            Kind::Fp32 => v.precision == "fp32",
            Kind::Fp16 => v.precision == "fp16",
            Kind::Int8Qdq => v.precision == "int8" && v.quantization.as_deref() == Some("qdq"),
            Kind::Int8Mixed => v.precision == "int8-mixed",
            Kind::Int8Dynamic => v.precision == "int8" && v.quantization.as_deref() != Some("qdq"),
            Kind::Fp16Mixed => v.precision == "fp16-mixed",
            Kind::Int4 => v.precision == "int4",
        }
    }

    const ALL: [Kind; 7] =
        [Kind::Fp32, Kind::Fp16, Kind::Int8Qdq, Kind::Int8Mixed, Kind::Int8Dynamic, Kind::Fp16Mixed, Kind::Int4];

    fn of(v: &BundleVariant) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.matches(v))
    }

    fn precision(self) -> Precision {
        match self {
            Kind::Fp32 => Precision::Fp32,
            Kind::Fp16 | Kind::Fp16Mixed => Precision::Fp16,
            Kind::Int8Qdq | Kind::Int8Mixed | Kind::Int8Dynamic => Precision::Int8,
            Kind::Int4 => Precision::Int4,
        }
    }
}

/// `Auto`'s order of preference for the accelerator that leads (the table in this module's docs).
fn auto_order(leading: &Accelerator, arch: &str) -> &'static [Kind] {
    match leading {
        Accelerator::CoreMl { .. } => &[Kind::Fp16, Kind::Fp16Mixed, Kind::Fp32],
        Accelerator::Nnapi { .. } => &[Kind::Int8Qdq, Kind::Int8Mixed, Kind::Fp16, Kind::Fp32],
        Accelerator::Xnnpack { .. } => &[Kind::Int8Qdq, Kind::Int8Mixed, Kind::Fp32],
        Accelerator::Cpu if arch == "aarch64" || arch == "arm" => &[Kind::Int8Qdq, Kind::Int8Mixed, Kind::Fp32],
        Accelerator::Cpu => &[Kind::Fp32],
        // A plugin's own kernels: only what its verdicts vouch for, and no guidance beyond FP32 until measured.
        Accelerator::Plugin { .. } => &[Kind::Fp32],
        Accelerator::Auto => &[Kind::Fp32], // resolved before a variant is chosen
    }
}

/// A name with no directory part: not empty, not `.` or `..`, no separator or NUL.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

pub(crate) struct Bundle {
    dir: PathBuf,
    manifest: BundleManifest,
}

impl Bundle {
    pub(crate) fn open(dir: &Path) -> Result<Bundle> {
        let path = dir.join(MANIFEST);
        let not_found = || Error::ModelNotFound { path: path.display().to_string() };
        // Only a regular file is opened: reading a FIFO would block the load forever.
        if !std::fs::metadata(&path).map_err(|_| not_found())?.is_file() {
            return Err(not_found());
        }
        let text = std::fs::read_to_string(&path).map_err(|_| not_found())?;
        let manifest: BundleManifest = serde_json::from_str(&text)
            .map_err(|e| Error::invalid_model(format!("`{}` is not a model bundle manifest: {e}", path.display())))?;
        if manifest.format != 1 {
            return Err(Error::invalid_model(format!(
                "`{}` has bundle format {}; this SDK reads format 1",
                path.display(),
                manifest.format
            )));
        }
        if manifest.variants.is_empty() {
            return Err(Error::invalid_model(format!("`{}` lists no variants", path.display())));
        }
        if let Some(v) = manifest.variants.iter().find(|v| !is_plain_file_name(&v.file)) {
            return Err(Error::invalid_model(format!(
                "`{}`: variant file `{}` must be a plain file name inside the bundle directory",
                path.display(),
                v.file.escape_debug()
            )));
        }
        Ok(Bundle { dir: dir.to_owned(), manifest })
    }

    /// The variant to run for `precision` when `leading` is the accelerator that will take the model.
    pub(crate) fn choose(&self, precision: Precision, leading: &Accelerator) -> Result<(PathBuf, PrecisionChoice)> {
        self.choose_on(precision, leading, &numerics_class(leading))
    }

    /// The variant [`Bundle::choose`] would run, before its file is there: the model store fetches only it.
    #[cfg(feature = "store")]
    pub(crate) fn variant_for(&self, precision: Precision, leading: &Accelerator) -> Result<&BundleVariant> {
        Ok(self.pick(precision, leading, &numerics_class(leading))?.1)
    }

    /// [`Bundle::choose`] for an engine whose numbers are computed on numerics class `class`: only variants with a
    /// passing verdict there (or FP32, the reference) are ever returned, for `Auto` and explicit precisions alike.
    fn choose_on(
        &self,
        precision: Precision,
        leading: &Accelerator,
        class: &str,
    ) -> Result<(PathBuf, PrecisionChoice)> {
        let (kind, variant, reason) = self.pick(precision, leading, class)?;
        self.warn_foreign(variant, class, &device_class(leading));
        let path = self.dir.join(&variant.file);
        let not_found = || Error::ModelNotFound { path: path.display().to_string() };
        // A symlink may point elsewhere: the file it resolves to must still be inside the bundle.
        let resolved = std::fs::canonicalize(&path).map_err(|_| not_found())?;
        let dir = std::fs::canonicalize(&self.dir).map_err(|_| not_found())?;
        if !resolved.starts_with(&dir) {
            return Err(Error::invalid_model(format!("`{}` resolves outside the bundle directory", path.display())));
        }
        let meta = std::fs::metadata(&resolved).map_err(|_| not_found())?;
        if !meta.is_file() {
            return Err(not_found());
        }
        let size = meta.len();
        if variant.size_bytes.is_some_and(|expected| expected != size) {
            return Err(Error::invalid_model(format!(
                "`{}` is {size} bytes but the bundle lists {} bytes: the bundle is damaged or was edited",
                path.display(),
                variant.size_bytes.unwrap_or_default()
            )));
        }
        Ok((path, PrecisionChoice { precision: kind.precision(), file: variant.file.clone(), reason }))
    }

    /// The variant `precision` selects for `leading` on numerics class `class`, and why; no file is touched, so the
    /// model store can ask before the variant is downloaded.
    fn pick(&self, precision: Precision, leading: &Accelerator, class: &str) -> Result<(Kind, &BundleVariant, String)> {
        let variants = &self.manifest.variants;
        let find = |kind: Kind| variants.iter().find(|v| kind.matches(v) && v.passes_on(class)).map(|v| (kind, v));
        let timing_class = device_class(leading);
        let candidates: Vec<Candidate<'_>> = variants
            .iter()
            .map(|v| Candidate { name: &v.precision, passed: v.passes_on(class), measured: v.measured.as_ref() })
            .collect();
        let measured = fastest_measured(&candidates, &timing_class)
            .and_then(|(i, reason)| Some((Kind::of(&variants[i])?, &variants[i], reason)));
        Ok(match precision {
            Precision::Auto if measured.is_some() => measured.expect("checked"),
            Precision::Auto => {
                let order = auto_order(leading, std::env::consts::ARCH);
                let first_choice = order[0];
                match order.iter().find_map(|&k| find(k)) {
                    Some((kind, v)) if kind == first_choice => (
                        kind,
                        v,
                        format!("auto: preferred for {} on {}", leading.provider_name(), std::env::consts::ARCH),
                    ),
                    Some((kind, v)) => (
                        kind,
                        v,
                        format!(
                            "auto: {:?} is preferred for {} but the bundle has no variant that passed on {class}",
                            first_choice.precision(),
                            leading.provider_name()
                        ),
                    ),
                    None => {
                        let (kind, v) = find(Kind::Fp32)
                            .ok_or_else(|| self.missing("an accurate variant for Auto, or an FP32 one", class))?;
                        (
                            kind,
                            v,
                            format!(
                                "auto: no variant passed on {class} for this accelerator; FP32 as the safe fallback"
                            ),
                        )
                    }
                }
            }
            explicit => {
                let kinds: &[Kind] = match explicit {
                    Precision::Fp32 => &[Kind::Fp32],
                    Precision::Fp16 => &[Kind::Fp16, Kind::Fp16Mixed],
                    Precision::Int4 => &[Kind::Int4],
                    _ => &[Kind::Int8Qdq, Kind::Int8Mixed, Kind::Int8Dynamic],
                };
                match kinds.iter().find_map(|&k| find(k)) {
                    Some((kind, v)) => (kind, v, "requested".to_owned()),
                    None => return Err(self.refused(explicit, kinds, class)),
                }
            }
        })
    }

    fn name(&self) -> &str {
        if self.manifest.model.is_empty() { "model bundle" } else { &self.manifest.model }
    }

    /// An explicit precision with no variant that passed on `class`: a typed error that says why and what to ask.
    fn refused(&self, precision: Precision, kinds: &[Kind], class: &str) -> Error {
        let Some(v) = kinds.iter().find_map(|&k| self.manifest.variants.iter().find(|v| k.matches(v))) else {
            return self.missing(&format!("{precision:?} variant"), class);
        };
        let why = match v.standing(class) {
            Standing::Failed(verdict) => format!(
                "failed its accuracy check against FP32 on {class}{}",
                match (verdict.worst_score, verdict.threshold, verdict.inputs) {
                    (Some(score), Some(mark), Some(n)) =>
                        format!(" (worst score {score:.4} against {mark} on {n} inputs)"),
                    (None, Some(mark), Some(n)) => format!(" (non-finite outputs, against {mark} on {n} inputs)"),
                    _ => String::new(),
                }
            ),
            Standing::Unjudged { elsewhere } => {
                format!(
                    "has no accuracy verdict for {class}, where this engine computes (judged on {})",
                    elsewhere.join(", ")
                )
            }
            _ => "failed the bundle's accuracy check against FP32".to_owned(),
        };
        Error::InvalidConfig {
            reason: format!(
                "{}: the {precision:?} variant `{}` {why}; ask for Precision::Auto (it picks the fastest variant that passed here) or FP32",
                self.name(),
                v.file
            ),
        }
    }

    /// Logs when what the bundle says about `chosen` was measured on another class than this engine's: its timings
    /// (ignored by `Auto`), or the bundle's verdicts (which then leave only FP32 to trust).
    fn warn_foreign(&self, chosen: &BundleVariant, class: &str, timing_class: &str) {
        if let Some(measured) = chosen.measured.as_ref().filter(|m| !m.is_empty() && !m.contains_key(timing_class)) {
            let elsewhere: Vec<&str> = measured.keys().map(String::as_str).collect();
            log::warn!(
                "{}: `{}` was timed on {}, not on {timing_class} where this engine runs: Auto ignores those timings",
                self.name(),
                chosen.file,
                elsewhere.join(", ")
            );
        }
        let mut foreign: Vec<&str> = self
            .manifest
            .variants
            .iter()
            .filter_map(|v| match v.standing(class) {
                Standing::Unjudged { elsewhere } => Some(elsewhere),
                _ => None,
            })
            .flatten()
            .collect();
        foreign.sort_unstable();
        foreign.dedup();
        if !foreign.is_empty() {
            log::warn!(
                "{}: some variants were judged on {} only, not on {class} where this engine computes: they are not used here",
                self.name(),
                foreign.join(", ")
            );
        }
    }

    fn missing(&self, what: &str, class: &str) -> Error {
        let has: Vec<String> = self
            .manifest
            .variants
            .iter()
            .map(|v| {
                format!("{} ({}{})", v.file, v.precision, if v.passes_on(class) { "" } else { ", not accurate here" })
            })
            .collect();
        Error::InvalidConfig { reason: format!("{} has no {what}; it has: {}", self.name(), has.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(variants: &str) -> (tempdir::Dir, Bundle) {
        let dir = tempdir::Dir::new();
        std::fs::write(dir.0.join(MANIFEST), format!(r#"{{"format": 1, "model": "m", "variants": [{variants}]}}"#))
            .unwrap();
        for file in ["fp32.onnx", "fp16.onnx", "int8-qdq.onnx", "int8-dynamic.onnx", "int8-mixed.onnx"] {
            std::fs::write(dir.0.join(file), b"x").unwrap();
        }
        let bundle = Bundle::open(&dir.0).unwrap();
        (dir, bundle)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dir = std::env::temp_dir().join(format!("openautoglm-bundle-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                Dir(dir)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const ALL: &str = r#"{"precision": "fp32", "file": "fp32.onnx", "accurate": true},
        {"precision": "fp16", "file": "fp16.onnx", "accurate": true},
        {"precision": "int8", "quantization": "dynamic", "file": "int8-dynamic.onnx", "accurate": true},
        {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": true}"#;

    fn coreml() -> Accelerator {
        Accelerator::CoreMl {
            compute_units: crate::CoreMlComputeUnits::All,
            model_format: crate::CoreMlModelFormat::MlProgram,
            static_shapes: false,
            subgraphs: false,
            cache_dir: None,
        }
    }

    #[test]
    fn auto_follows_the_table() {
        let (_dir, b) = bundle(ALL);
        assert_eq!(b.choose(Precision::Auto, &coreml()).unwrap().1.file, "fp16.onnx");
        let nnapi = Accelerator::Nnapi { fp16: false, nchw: false, cpu_disabled: false, cpu_only: false };
        assert_eq!(b.choose(Precision::Auto, &nnapi).unwrap().1.file, "int8-qdq.onnx");
        assert_eq!(b.choose(Precision::Auto, &Accelerator::Xnnpack { threads: 0 }).unwrap().1.file, "int8-qdq.onnx");
        let cpu = b.choose(Precision::Auto, &Accelerator::Cpu).unwrap().1;
        let expected =
            if cfg!(any(target_arch = "aarch64", target_arch = "arm")) { "int8-qdq.onnx" } else { "fp32.onnx" };
        assert_eq!(cpu.file, expected);
        assert!(cpu.reason.starts_with("auto: preferred"), "{}", cpu.reason);
    }

    #[test]
    fn auto_skips_inaccurate_variants_and_asking_for_one_is_refused() {
        let (_dir, b) = bundle(
            r#"{"precision": "fp32", "file": "fp32.onnx", "accurate": true},
               {"precision": "fp16", "file": "fp16.onnx", "accurate": false}"#,
        );
        let choice = b.choose(Precision::Auto, &coreml()).unwrap().1;
        assert_eq!((choice.precision, choice.file.as_str()), (Precision::Fp32, "fp32.onnx"));
        assert!(choice.reason.contains("no variant that passed"), "{}", choice.reason);
        // Asked for by name, it is refused with the reason, never run.
        let err = b.choose(Precision::Fp16, &Accelerator::Cpu).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { reason } if reason.contains("fp16.onnx") && reason.contains("Auto")),
            "{err}"
        );
    }

    /// A bundle judged on both classes, as `cargo xtask models verdicts` writes it: FP16 passes on x86-64 (which
    /// computes float16 ops in float32) and fails on ARM64 (which runs them natively).
    const BY_CLASS: &str = r#"{"precision": "fp32", "file": "fp32.onnx", "accurate": true},
        {"precision": "fp16", "file": "fp16.onnx", "accurate": true, "verdicts": {
            "linux-x86_64-cpu": {"passed": true, "set": "test", "inputs": 24, "worst_score": 0.9991, "threshold": 0.99},
            "linux-aarch64-cpu": {"passed": false, "set": "test", "inputs": 24, "worst_score": null, "threshold": 0.99}}},
        {"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": false, "verdicts": {
            "linux-x86_64-cpu": {"passed": false, "inputs": 24, "worst_score": 0.61, "threshold": 0.99},
            "linux-aarch64-cpu": {"passed": true, "inputs": 24, "worst_score": 0.995, "threshold": 0.99}}}"#;

    #[test]
    fn verdicts_hold_only_on_their_numerics_class() {
        let (_dir, b) = bundle(BY_CLASS);
        let arm = "linux-aarch64-cpu";
        // ARM64: FP16 failed there, so neither Auto (CoreML prefers FP16) nor an explicit request gets it.
        let auto = b.choose_on(Precision::Auto, &coreml(), arm).unwrap().1;
        assert_eq!(auto.file, "fp32.onnx", "{}", auto.reason);
        let err = b.choose_on(Precision::Fp16, &Accelerator::Cpu, arm).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { reason }
                if reason.contains("failed its accuracy check") && reason.contains(arm) && reason.contains("24 inputs")),
            "{err}"
        );
        // ...while INT8 passed there and is what Auto prefers on an ARM CPU.
        assert_eq!(b.choose_on(Precision::Int8, &Accelerator::Cpu, arm).unwrap().1.file, "int8-qdq.onnx");
        // x86-64: the other way round.
        let x86 = "linux-x86_64-cpu";
        assert_eq!(b.choose_on(Precision::Auto, &coreml(), x86).unwrap().1.file, "fp16.onnx");
        assert_eq!(b.choose_on(Precision::Fp16, &Accelerator::Cpu, x86).unwrap().1.file, "fp16.onnx");
        assert!(b.choose_on(Precision::Int8, &Accelerator::Cpu, x86).is_err());
        // A class nobody judged (32-bit ARM): only the FP32 reference.
        let err = b.choose_on(Precision::Fp16, &Accelerator::Cpu, "linux-arm-cpu").unwrap_err();
        assert!(err.to_string().contains("no accuracy verdict for linux-arm-cpu"), "{err}");
        assert_eq!(b.choose_on(Precision::Auto, &coreml(), "linux-arm-cpu").unwrap().1.file, "fp32.onnx");
    }

    #[test]
    fn bundles_from_before_verdicts_per_class_count_as_judged_on_x86_only() {
        let (_dir, b) = bundle(ALL);
        let arm = "linux-aarch64-cpu";
        let nnapi = Accelerator::Nnapi { fp16: false, nchw: false, cpu_disabled: false, cpu_only: false };
        assert_eq!(b.choose_on(Precision::Auto, &nnapi, arm).unwrap().1.file, "fp32.onnx");
        let err = b.choose_on(Precision::Int8, &Accelerator::Cpu, arm).unwrap_err();
        assert!(err.to_string().contains("judged on linux-x86_64-cpu"), "{err}");
        assert_eq!(b.choose_on(Precision::Auto, &nnapi, LEGACY_VERDICT_CLASS).unwrap().1.file, "int8-qdq.onnx");
    }

    #[test]
    #[cfg(feature = "manifest-tools")]
    fn the_manifest_round_trips_what_it_does_not_read() {
        let text = r#"{"format": 1, "model": "m", "onnxruntime": "1.31.1", "variants": [{"precision": "fp16",
            "file": "fp16.onnx", "accurate": true, "sha256": "ab", "accuracy": {"cosine_similarity": 0.999},
            "verdicts": {"linux-x86_64-cpu": {"passed": true, "source": "models verdicts"}},
            "measured": {"linux-x86_64-cpu": {"mean_ms": 2.5, "source": "models prepare"}}}]}"#;
        let manifest: BundleManifest = serde_json::from_str(text).unwrap();
        let again: serde_json::Value = serde_json::to_value(&manifest).unwrap();
        let original: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn explicit_int8_prefers_qdq_and_missing_variants_are_config_errors() {
        let (_dir, b) = bundle(ALL);
        assert_eq!(b.choose(Precision::Int8, &Accelerator::Cpu).unwrap().1.file, "int8-qdq.onnx");
        let (_dir, b) = bundle(r#"{"precision": "fp32", "file": "fp32.onnx", "accurate": true}"#);
        let err = b.choose(Precision::Fp16, &Accelerator::Cpu).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("fp32.onnx (fp32)")), "{err}");
    }

    #[test]
    fn measurements_on_this_device_class_beat_the_table() {
        let class = device_class(&Accelerator::Cpu);
        let (_dir, b) = bundle(&format!(
            r#"{{"precision": "fp32", "file": "fp32.onnx", "accurate": true, "measured": {{"{class}": {{"mean_ms": 4.0}}}}}},
               {{"precision": "int8", "quantization": "qdq", "file": "int8-qdq.onnx", "accurate": false,
                 "measured": {{"{class}": {{"mean_ms": 1.0}}}}}},
               {{"precision": "int8-mixed", "file": "int8-mixed.onnx", "accurate": true, "kept_fp32": ["/head/Concat"],
                 "measured": {{"{class}": {{"mean_ms": 2.5}}, "android-aarch64-nnapi": {{"mean_ms": 9.0}}}}}}"#
        ));
        let choice = b.choose(Precision::Auto, &Accelerator::Cpu).unwrap().1;
        assert_eq!((choice.precision, choice.file.as_str()), (Precision::Int8, "int8-mixed.onnx"));
        assert!(choice.reason.contains(&class) && choice.reason.contains("fp32 1.60x"), "{}", choice.reason);
        // Explicit INT8 takes the accurate mixed variant before the inaccurate all-INT8 one.
        assert_eq!(b.choose(Precision::Int8, &Accelerator::Cpu).unwrap().1.file, "int8-mixed.onnx");
        // Measured elsewhere only: the table decides (NNAPI: INT8 QDQ failed, so the mixed one, by guidance).
        let nnapi = Accelerator::Nnapi { fp16: false, nchw: false, cpu_disabled: false, cpu_only: false };
        let choice = b.choose(Precision::Auto, &nnapi).unwrap().1;
        assert_eq!(choice.file, "int8-mixed.onnx");
        assert!(choice.reason.contains("no variant that passed"), "{}", choice.reason);
    }

    #[test]
    fn damaged_bundles_are_invalid_models() {
        let (dir, _) = bundle(ALL);
        std::fs::write(dir.0.join(MANIFEST), "{").unwrap();
        assert!(matches!(Bundle::open(&dir.0), Err(Error::InvalidModel { .. })));
        std::fs::write(
            dir.0.join(MANIFEST),
            r#"{"format": 1, "variants": [{"precision": "fp32", "file": "fp32.onnx", "size_bytes": 5}]}"#,
        )
        .unwrap();
        let err = Bundle::open(&dir.0).unwrap().choose(Precision::Fp32, &Accelerator::Cpu).unwrap_err();
        assert!(err.to_string().contains("bundle lists 5 bytes"), "{err}");
        assert!(matches!(Bundle::open(&dir.0.join("nope")), Err(Error::ModelNotFound { .. })));
    }

    #[test]
    fn variant_files_are_plain_names() {
        for name in ["fp32.onnx", "model.int8.onnx", "..onnx"] {
            assert!(is_plain_file_name(name), "{name}");
        }
        for name in ["", ".", "..", "../fp32.onnx", "/etc/passwd", "sub/fp32.onnx", "a\\b", "a\0b"] {
            assert!(!is_plain_file_name(name), "{name:?}");
        }
    }
}
