//! Adaptive pipelines: a fast engine answers first, and a gate on its outputs decides whether the main engine must
//! answer instead. Each result says which path produced it; the cascade counts inputs, escalations and the time
//! spent on each path. Both engines run with the request's priority, deadline and cancel token.
//!
//! ```no_run
//! use openautoglm::{Engine, EngineConfig, TensorRef, cascade::{Cascade, Gate, Confidence}};
//! # fn main() -> openautoglm::Result<()> {
//! let fast = Engine::from_file("rec-tiny.onnx", EngineConfig::default())?;
//! let main = Engine::from_file("rec-small.onnx", EngineConfig::default())?;
//! // CTC text recognition: escalate a line whose mean per-character probability is under 0.9.
//! let cascade = Cascade::new(fast, main, Gate::builtin(Confidence::SequenceMeanMax, "softmax_out", 0.9))?;
//! # let line = vec![0f32; 3 * 48 * 320];
//! let result = cascade.run(&[("x", TensorRef::new(&[1, 3, 48, 320], &line))])?;
//! println!("{:?} {:?} {:?}", result.path, result.confidence, cascade.stats());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

mod manifest;

pub use manifest::{CascadeManifest, CascadeStage, CascadeTarget, GateSpec, ThresholdRow};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::schedule::RunOptions;
use crate::tensor::{ElementType, Tensor, TensorRef};

/// How a built-in gate reads confidence from an output (scores along its last axis; higher is more confident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The top class's probability.
    TopProbability,
    /// The top class's probability minus the second's.
    Margin,
    /// One minus the entropy over its maximum (ln of the class count): 1 for a certain answer, 0 for a uniform one.
    Entropy,
    /// For sequences (CTC text recognition): the mean over steps of each step's top probability, counting the
    /// steps that emit a character (not the blank, index 0, and not a repeat of the previous step); PaddleOCR's
    /// line confidence.
    SequenceMeanMax,
    /// For sequences: the least sure emitting step's top probability (a line is as sure as its least sure
    /// character); all steps' least when none emits. Separates wrong lines better where one character decides.
    SequenceMinMax,
}

/// The app's own gate: `true` escalates.
pub type EscalateFn = dyn Fn(&[Tensor]) -> bool + Send + Sync;

/// What decides whether an input goes on to the main engine.
#[derive(Clone)]
pub enum Gate {
    /// Escalate when the confidence read from `output` is below `threshold`. With `logits`, the scores are turned
    /// into probabilities (softmax along the last axis) first.
    Builtin { confidence: Confidence, output: String, threshold: f32, logits: bool },
    /// The app's own rule over the fast engine's outputs: `true` escalates.
    Custom(Arc<EscalateFn>),
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gate::Builtin { confidence, output, threshold, logits } => f
                .debug_struct("Builtin")
                .field("confidence", confidence)
                .field("output", output)
                .field("threshold", threshold)
                .field("logits", logits)
                .finish(),
            Gate::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Gate {
    /// A built-in gate over probabilities.
    pub fn builtin(confidence: Confidence, output: impl Into<String>, threshold: f32) -> Gate {
        Gate::Builtin { confidence, output: output.into(), threshold, logits: false }
    }

    /// The app's own rule: `true` escalates.
    pub fn custom(escalate: impl Fn(&[Tensor]) -> bool + Send + Sync + 'static) -> Gate {
        Gate::Custom(Arc::new(escalate))
    }
}

/// Which engine produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CascadePath {
    Fast,
    Main,
}

#[derive(Debug, Clone)]
pub struct CascadeResult {
    pub outputs: Vec<Tensor>,
    pub path: CascadePath,
    /// What the built-in gate read from the fast engine's outputs (`None` with a custom gate).
    pub confidence: Option<f32>,
}

/// Counters since the cascade was made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CascadeStats {
    pub inputs: u64,
    pub escalations: u64,
    /// Time in the fast engine (every input) and in the main engine (escalations only).
    pub fast_ms: f64,
    pub main_ms: f64,
}

impl CascadeStats {
    pub fn escalation_rate(&self) -> f64 {
        if self.inputs == 0 { 0.0 } else { self.escalations as f64 / self.inputs as f64 }
    }
}

pub struct Cascade {
    fast: Arc<Engine>,
    main: Arc<Engine>,
    gate: Gate,
    inputs: AtomicU64,
    escalations: AtomicU64,
    fast_ns: AtomicU64,
    main_ns: AtomicU64,
    /// Whether the engines are the cascade's own (loaded from a manifest): closing it closes them.
    owns_engines: bool,
    closed: std::sync::atomic::AtomicBool,
}

impl Cascade {
    /// Checks that both engines take the same inputs and that a built-in gate's output is a float output of the fast
    /// engine, with a threshold that is a number.
    pub fn new(fast: impl Into<Arc<Engine>>, main: impl Into<Arc<Engine>>, gate: Gate) -> Result<Cascade> {
        let (fast, main) = (fast.into(), main.into());
        let mut fast_inputs: Vec<&str> = fast.info().inputs.iter().map(|i| i.name.as_str()).collect();
        let mut main_inputs: Vec<&str> = main.info().inputs.iter().map(|i| i.name.as_str()).collect();
        fast_inputs.sort_unstable();
        main_inputs.sort_unstable();
        if fast_inputs != main_inputs {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "a cascade's engines must take the same inputs: the fast one takes {fast_inputs:?}, the main one {main_inputs:?}"
                ),
            });
        }
        if let Gate::Builtin { output, threshold, .. } = &gate {
            let Some(info) = fast.info().outputs.iter().find(|o| &o.name == output) else {
                let names: Vec<&str> = fast.info().outputs.iter().map(|o| o.name.as_str()).collect();
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "the gate reads `{output}`, which the fast engine does not output (it has {names:?})"
                    ),
                });
            };
            if !matches!(info.element_type, Some(ElementType::F32 | ElementType::F16)) {
                return Err(Error::InvalidConfig {
                    reason: format!("the gate reads `{output}`, which is not a float output"),
                });
            }
            if !threshold.is_finite() {
                return Err(Error::InvalidConfig {
                    reason: format!("the gate's threshold must be a number, got {threshold}"),
                });
            }
        }
        Ok(Cascade {
            fast,
            main,
            gate,
            inputs: AtomicU64::new(0),
            escalations: AtomicU64::new(0),
            fast_ns: AtomicU64::new(0),
            main_ns: AtomicU64::new(0),
            owns_engines: false,
            closed: Default::default(),
        })
    }

    /// Closes the cascade: later runs fail with [`Error::EngineClosed`]. Engines it loaded itself (from a manifest)
    /// are released now; engines the app gave it stay the app's to close. Closing twice is fine.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if self.owns_engines {
            self.fast.close();
            self.main.close();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn run(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<CascadeResult> {
        self.run_with(inputs, &RunOptions::default())
    }

    /// The fast engine, then the gate, then (if it escalates) the main engine, each under `options`.
    pub fn run_with(&self, inputs: &[(&str, TensorRef<'_>)], options: &RunOptions) -> Result<CascadeResult> {
        if self.is_closed() {
            return Err(Error::EngineClosed);
        }
        let started = Instant::now();
        let fast = self.fast.run_with(inputs, options)?;
        self.fast_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.inputs.fetch_add(1, Ordering::Relaxed);
        let (escalate, confidence) = match &self.gate {
            Gate::Builtin { confidence, output, threshold, logits } => {
                let tensor = fast
                    .iter()
                    .find(|t| &t.name == output)
                    .ok_or_else(|| Error::InferenceFailed { reason: format!("the fast engine gave no `{output}`") })?;
                let value = read_confidence(*confidence, tensor, *logits)?;
                (value < *threshold, Some(value))
            }
            Gate::Custom(escalate) => {
                let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| escalate(&fast)))
                    .map_err(|_| Error::InvalidConfig { reason: "the cascade's custom gate panicked".into() })?;
                (decided, None)
            }
        };
        if !escalate {
            return Ok(CascadeResult { outputs: fast, path: CascadePath::Fast, confidence });
        }
        self.escalations.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let main = self.main.run_with(inputs, options);
        self.main_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(CascadeResult { outputs: main?, path: CascadePath::Main, confidence })
    }

    pub fn stats(&self) -> CascadeStats {
        CascadeStats {
            inputs: self.inputs.load(Ordering::Relaxed),
            escalations: self.escalations.load(Ordering::Relaxed),
            fast_ms: self.fast_ns.load(Ordering::Relaxed) as f64 / 1e6,
            main_ms: self.main_ns.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    pub fn fast(&self) -> &Engine {
        &self.fast
    }

    pub fn main(&self) -> &Engine {
        &self.main
    }
}

/// The confidence `kind` reads from `tensor`: scores along the last axis, one row per leading position. Classifier
/// gates take the least confident row (a batch is as sure as its weakest member).
pub fn read_confidence(kind: Confidence, tensor: &Tensor, logits: bool) -> Result<f32> {
    let values: Vec<f32> = match tensor.element_type {
        ElementType::F32 => tensor.to_vec::<f32>()?,
        ElementType::F16 => tensor.to_vec::<half::f16>()?.into_iter().map(f32::from).collect(),
        other => {
            return Err(Error::InferenceFailed {
                reason: format!("the gate reads `{}`, a {other:?} output; it needs floats", tensor.name),
            });
        }
    };
    let classes = tensor.shape.last().copied().unwrap_or(1).max(1) as usize;
    if values.is_empty() || !values.len().is_multiple_of(classes) {
        return Err(Error::InferenceFailed { reason: format!("the gate's output `{}` is empty", tensor.name) });
    }
    if values.iter().any(|v| v.is_nan()) {
        return Err(Error::InferenceFailed { reason: format!("the gate's output `{}` is not a number", tensor.name) });
    }
    // Probabilities are read in place; only logits need rows of their own (softmax).
    let mut values = values;
    if logits {
        for row in values.chunks_mut(classes) {
            let p = softmax(row);
            row.copy_from_slice(&p);
        }
    }
    let rows: Vec<&[f32]> = values.chunks(classes).collect();
    let top = |row: &[f32]| -> (usize, f32, f32) {
        let (mut best, mut first, mut second) = (0, f32::NEG_INFINITY, f32::NEG_INFINITY);
        for (i, &p) in row.iter().enumerate() {
            if p > first {
                (second, first, best) = (first, p, i);
            } else if p > second {
                second = p;
            }
        }
        (best, first, if second.is_finite() { second } else { 0.0 })
    };
    let value = match kind {
        Confidence::TopProbability => rows.iter().map(|r| top(r).1).fold(f32::INFINITY, f32::min),
        Confidence::Margin => rows.iter().map(|r| top(r).1 - top(r).2).fold(f32::INFINITY, f32::min),
        Confidence::Entropy => rows
            .iter()
            .map(|r| {
                let h: f32 = r.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
                if classes > 1 { 1.0 - h / (classes as f32).ln() } else { 1.0 }
            })
            .fold(f32::INFINITY, f32::min),
        Confidence::SequenceMeanMax => crate::ctc::best_path(rows.iter().copied(), |_| {}).mean_confidence(),
        Confidence::SequenceMinMax => crate::ctc::best_path(rows.iter().copied(), |_| {}).least_confidence(),
    };
    if !value.is_finite() {
        return Err(Error::InferenceFailed { reason: format!("the gate's output `{}` is not finite", tensor.name) });
    }
    Ok(value)
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tensor::f32_tensor;

    fn tensor(shape: &[i64], values: &[f32]) -> Tensor {
        f32_tensor("p", shape, values)
    }

    #[test]
    fn classifier_confidences() {
        let sure = tensor(&[1, 3], &[0.9, 0.06, 0.04]);
        let unsure = tensor(&[1, 3], &[0.4, 0.35, 0.25]);
        let read = |k, t: &Tensor| read_confidence(k, t, false).unwrap();
        assert!((read(Confidence::TopProbability, &sure) - 0.9).abs() < 1e-6);
        assert!((read(Confidence::Margin, &unsure) - 0.05).abs() < 1e-6);
        assert!(read(Confidence::Entropy, &sure) > read(Confidence::Entropy, &unsure));
        let uniform = tensor(&[1, 4], &[0.25; 4]);
        assert!(read(Confidence::Entropy, &uniform).abs() < 1e-6);
        // A batch is as sure as its least sure row.
        let batch = tensor(&[2, 3], &[0.9, 0.06, 0.04, 0.4, 0.35, 0.25]);
        assert!((read(Confidence::TopProbability, &batch) - 0.4).abs() < 1e-6);
        // Logits are turned into probabilities first.
        let logits = tensor(&[1, 2], &[0.0, 0.0]);
        assert!((read_confidence(Confidence::TopProbability, &logits, true).unwrap() - 0.5).abs() < 1e-6);
    }

    #[test]
    fn ctc_confidence_counts_emitting_steps_only() {
        // Steps: blank (0.99), 'a' (0.8), 'a' repeated (0.6), blank, 'b' (0.7).
        let steps =
            tensor(&[1, 5, 3], &[0.99, 0.005, 0.005, 0.1, 0.8, 0.1, 0.2, 0.6, 0.2, 0.98, 0.01, 0.01, 0.2, 0.1, 0.7]);
        let c = read_confidence(Confidence::SequenceMeanMax, &steps, false).unwrap();
        assert!((c - 0.75).abs() < 1e-6, "{c}");
        // All blank: the mean of the steps' maxima.
        let blank = tensor(&[1, 2, 2], &[0.9, 0.1, 0.7, 0.3]);
        assert!((read_confidence(Confidence::SequenceMeanMax, &blank, false).unwrap() - 0.8).abs() < 1e-6);
    }

    #[test]
    fn bad_outputs_are_errors_not_panics() {
        let nan = tensor(&[1, 2], &[f32::NAN, f32::NAN]);
        assert!(read_confidence(Confidence::TopProbability, &nan, false).is_err());
        let empty = tensor(&[0, 3], &[]);
        assert!(read_confidence(Confidence::TopProbability, &empty, false).is_err());
        let ints = Tensor { name: "i".into(), element_type: ElementType::I64, shape: vec![1], data: vec![0; 8] };
        assert!(read_confidence(Confidence::TopProbability, &ints, false).is_err());
    }
}
