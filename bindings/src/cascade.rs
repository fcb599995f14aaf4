//! Cascades across the FFI: a fast and a main engine (the apps' own `Engine` objects, shared) and a gate, built in
//! or the app's own (a Kotlin lambda, a Swift closure, through a foreign trait).

use std::sync::Arc;

use openautoglm::cascade::{Cascade, CascadePath, Confidence, Gate};

use crate::{CallOptions, InputSpec, NativeEngine, NativeError, NativeTensor, request};

#[uniffi::remote(Enum)]
pub enum Confidence {
    TopProbability,
    Margin,
    Entropy,
    SequenceMeanMax,
    SequenceMinMax,
}

#[uniffi::remote(Enum)]
pub enum CascadePath {
    Fast,
    Main,
}

// The app's own gate: `true` sends the input on to the main engine.
#[uniffi::export(with_foreign)]
pub trait CascadeGate: Send + Sync {
    fn escalate(&self, outputs: Vec<NativeTensor>) -> bool;
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct CascadeOutput {
    pub outputs: Vec<NativeTensor>,
    pub path: CascadePath,
    pub confidence: Option<f32>,
}

// Counters since the cascade was made (signed, as every count across the FFI).
#[derive(Debug, Clone, uniffi::Record)]
pub struct CascadeCounters {
    pub inputs: i64,
    pub escalations: i64,
    pub fast_ms: f64,
    pub main_ms: f64,
}

#[derive(uniffi::Object)]
pub struct NativeCascade {
    cascade: Cascade,
}

#[uniffi::export]
impl NativeCascade {
    // A built-in gate: escalate when the confidence read from `output` is below `threshold`.
    #[uniffi::constructor]
    pub fn builtin(
        fast: Arc<NativeEngine>,
        main: Arc<NativeEngine>,
        confidence: Confidence,
        output: String,
        threshold: f32,
        logits: bool,
    ) -> Result<Arc<Self>, NativeError> {
        let gate = Gate::Builtin { confidence, output, threshold, logits };
        Ok(Arc::new(NativeCascade { cascade: Cascade::new(fast.engine.clone(), main.engine.clone(), gate)? }))
    }

    // The cascade a calibrated manifest describes (`cascade.json`, written by `cargo xtask cascade calibrate`):
    // both models, loaded with `config`, and the gate at the threshold chosen on labelled inputs.
    #[uniffi::constructor]
    pub fn from_manifest(path: String, config: openautoglm::EngineConfig) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeCascade { cascade: Cascade::from_manifest(path, config)? }))
    }

    // The app's own gate.
    #[uniffi::constructor]
    pub fn custom(
        fast: Arc<NativeEngine>,
        main: Arc<NativeEngine>,
        gate: Arc<dyn CascadeGate>,
    ) -> Result<Arc<Self>, NativeError> {
        let gate = Gate::custom(move |outputs| gate.escalate(outputs.to_vec()));
        Ok(Arc::new(NativeCascade { cascade: Cascade::new(fast.engine.clone(), main.engine.clone(), gate)? }))
    }

    // Runs the fast engine, the gate and, when it escalates, the main engine, each as `options` say.
    pub fn run(&self, inputs: Vec<InputSpec>, data: &[u8], options: CallOptions) -> Result<CascadeOutput, NativeError> {
        let result =
            self.cascade.run_with(&request::uniffi_views(&inputs, data)?, &request::uniffi_options(options))?;
        Ok(CascadeOutput { outputs: result.outputs, path: result.path, confidence: result.confidence })
    }

    // Closes the cascade: later runs fail with `EngineClosed`; engines it loaded from a manifest are released now,
    // engines the app gave it stay open. Closing twice is fine. (Not `close`: uniffi's `close()` frees the handle.)
    pub fn release(&self) {
        self.cascade.close()
    }

    pub fn is_closed(&self) -> bool {
        self.cascade.is_closed()
    }

    pub fn counters(&self) -> CascadeCounters {
        let s = self.cascade.stats();
        CascadeCounters {
            inputs: s.inputs as i64,
            escalations: s.escalations as i64,
            fast_ms: s.fast_ms,
            main_ms: s.main_ms,
        }
    }
}
