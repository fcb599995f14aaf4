//! The uniffi surface of the engine: what Kotlin and Swift call. It adapts, it does not decide: the core's own
//! types are exported as they are (uniffi "remote" types, so the compiler checks these mirrors against the core),
//! and every call goes straight to the core.
//!
//! Tensor data crosses once per call: all inputs packed into one borrowed byte buffer (a direct ByteBuffer in
//! Kotlin, `Data` in Swift) described by [`InputSpec`]s; outputs come back as one byte array per tensor.
//!
//! Comments on the exported items here (and in `cascade`, `ctc`, `llm`) are `//`, not `///`: uniffi copies doc
//! comments into the metadata it compiles into the library, which every app would carry (3.7 KB of the arm64 engine, no
//! use at run time). The documentation users read is on the Kotlin and Swift layers.

use std::collections::HashMap;
use std::sync::Arc;

use openautoglm as core;
use openautoglm::{
    Accelerator, AcceleratorReport, CacheOutcome, CoreMlComputeUnits, CoreMlModelFormat, DeviceKind, Dim, ElementType,
    EngineConfig, LogLevel, ModelInfo, ModelMetadata, OptimizeLevel, Placement, Precision, PrecisionChoice, Priority,
    ProviderOption, ProviderPlacement, RuntimeInfo, ShapeBucket, ShapeBucketStats, SkippedAccelerator, Tensor,
    TensorInfo,
};

uniffi::setup_scaffolding!();

pub type NativeError = core::Error;

#[uniffi::remote(Error)]
pub enum NativeError {
    RuntimeUnavailable { path: String, reason: String },
    RuntimeTooOld { feature: String, required: String, loaded: String },
    NativeLibraryUnavailable { reason: String },
    ModelNotFound { path: String },
    InvalidModel { reason: String },
    InvalidInput { name: String, reason: String },
    InvalidConfig { reason: String },
    AcceleratorUnavailable { provider: String, reason: String },
    DownloadFailed { name: String, reason: String },
    IntegrityFailed { name: String, reason: String },
    InferenceFailed { reason: String },
    MemoryLimit { reason: String },
    Cancelled,
    DeadlineExceeded,
    ChatBusy { reason: String },
    EngineClosed,
    Internal { reason: String },
}

#[uniffi::remote(Enum)]
pub enum Priority {
    Interactive,
    Normal,
    Background,
}

// Cancels the requests it was given to: queued ones fail at once, running ones at their next node, with
// `Cancelled`. The Kotlin and Swift layers make one per call and cancel it with the coroutine or Task.
#[derive(uniffi::Object, Default)]
pub struct CancelToken {
    token: core::CancelToken,
}

#[uniffi::export]
impl CancelToken {
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(CancelToken::default())
    }

    pub fn cancel(&self) {
        self.token.cancel()
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    // The token's address for the Kotlin JNI path, valid while this object lives (Kotlin passes the object along
    // with the address, which keeps it alive for the call).
    pub fn fast_handle(&self) -> i64 {
        &self.token as *const core::CancelToken as i64
    }
}

#[uniffi::remote(Enum)]
pub enum ElementType {
    F32,
    F16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    Bf16,
    String,
}

#[uniffi::remote(Enum)]
pub enum Accelerator {
    Cpu,
    Xnnpack {
        threads: i32,
    },
    Nnapi {
        fp16: bool,
        nchw: bool,
        cpu_disabled: bool,
        cpu_only: bool,
    },
    CoreMl {
        compute_units: CoreMlComputeUnits,
        model_format: CoreMlModelFormat,
        static_shapes: bool,
        subgraphs: bool,
        cache_dir: Option<String>,
    },
    Plugin {
        library: String,
        provider: String,
        device: DeviceKind,
        options: Vec<ProviderOption>,
    },
    Auto,
}

#[uniffi::remote(Enum)]
pub enum DeviceKind {
    Cpu,
    Gpu,
    Npu,
}

#[uniffi::remote(Record)]
pub struct ProviderOption {
    pub key: String,
    pub value: String,
}

#[uniffi::remote(Enum)]
pub enum CoreMlComputeUnits {
    All,
    CpuAndGpu,
    CpuAndNeuralEngine,
    CpuOnly,
}

#[uniffi::remote(Enum)]
pub enum CoreMlModelFormat {
    MlProgram,
    NeuralNetwork,
}

/// Which accelerators a built engine uses, and why the others were left out.
#[uniffi::remote(Record)]
pub struct AcceleratorReport {
    /// The execution providers registered, leading first.
    pub active: Vec<String>,
    pub skipped: Vec<core::SkippedAccelerator>,
}

/// An accelerator the engine left out, and why (it is missing from this build, or the device refused it).
#[uniffi::remote(Record)]
pub struct SkippedAccelerator {
    pub provider: String,
    pub reason: String,
}

#[uniffi::remote(Enum)]
pub enum OptimizeLevel {
    O0,
    O1,
    O2,
    O3,
}

#[uniffi::remote(Record)]
pub struct EngineConfig {
    #[uniffi(default = [])]
    pub accelerators: Vec<Accelerator>,
    pub optimize_level: OptimizeLevel,
    // No default: uniffi 0.32 has no enum literals for defaults. `DefaultEngineConfig` (Kotlin) and
    // `EngineConfig.default` (Swift) fill it.
    pub precision: Precision,
    #[uniffi(default = 0)]
    pub intra_op_threads: i32,
    #[uniffi(default = 0)]
    pub inter_op_threads: i32,
    #[uniffi(default = None)]
    pub spinning: Option<bool>,
    #[uniffi(default = false)]
    pub strict: bool,
    #[uniffi(default = None)]
    pub cache_dir: Option<String>,
    #[uniffi(default = [])]
    pub shape_buckets: Vec<ShapeBucket>,
    #[uniffi(default = false)]
    pub report_placement: bool,
    #[uniffi(default = true)]
    pub f16_outputs_as_f32: bool,
    #[uniffi(default = 1024)]
    pub memory_limit_mb: i32,
    #[uniffi(default = None)]
    pub external_data_dir: Option<String>,
    #[uniffi(default = 1)]
    pub concurrency: i32,
}

#[uniffi::remote(Enum)]
pub enum Precision {
    Auto,
    Fp32,
    Fp16,
    Int8,
    Int4,
}

#[uniffi::remote(Record)]
pub struct ShapeBucket {
    pub dims: HashMap<String, i64>,
}

#[uniffi::remote(Record)]
pub struct ShapeBucketStats {
    pub bucket_runs: Vec<i64>,
    pub dynamic_runs: i64,
}

#[uniffi::remote(Record)]
pub struct PrecisionChoice {
    pub precision: Precision,
    pub file: String,
    pub reason: String,
}

#[uniffi::remote(Enum)]
pub enum CacheOutcome {
    Disabled,
    Hit,
    Miss,
    Rebuilt,
    Unavailable,
}

#[uniffi::remote(Record)]
pub struct ProviderPlacement {
    pub provider: String,
    pub nodes: i32,
    pub partitions: i32,
}

/// Where a model's nodes ran, by provider, in the order each provider first appears.
#[uniffi::remote(Record)]
pub struct Placement {
    pub providers: Vec<ProviderPlacement>,
    pub warnings: Vec<String>,
}

#[uniffi::remote(Enum)]
pub enum Dim {
    Fixed { size: i64 },
    Symbolic { name: String },
    Dynamic,
}

#[uniffi::remote(Record)]
pub struct TensorInfo {
    pub name: String,
    pub element_type: Option<ElementType>,
    pub shape: Vec<Dim>,
}

#[uniffi::remote(Record)]
pub struct ModelMetadata {
    pub producer: Option<String>,
    pub graph_name: Option<String>,
    pub domain: Option<String>,
    pub description: Option<String>,
    pub version: Option<i64>,
    pub custom: HashMap<String, String>,
}

#[uniffi::remote(Record)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub metadata: ModelMetadata,
}

// An output tensor (the idiomatic layers wrap it as their own `Tensor`).
pub type NativeTensor = Tensor;

#[uniffi::remote(Record)]
pub struct NativeTensor {
    pub name: String,
    pub element_type: ElementType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

#[uniffi::remote(Record)]
pub struct RuntimeInfo {
    pub library_path: String,
    pub ort_version: String,
}

// One input inside the packed input buffer: bytes `offset..offset + length`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct InputSpec {
    pub name: String,
    pub element_type: ElementType,
    pub shape: Vec<i64>,
    pub offset: i64,
    pub length: i64,
}

// How one call runs: at `priority`, failing with `DeadlineExceeded` if not done within `timeout_us` microseconds
// (none when absent, passed already when 0 or less) and with `Cancelled` once `cancel` is cancelled. Engines and
// cascades take the same.
#[derive(uniffi::Record)]
pub struct CallOptions {
    pub priority: Priority,
    #[uniffi(default = None)]
    pub timeout_us: Option<i64>,
    #[uniffi(default = None)]
    pub cancel: Option<Arc<CancelToken>>,
}

#[uniffi::remote(Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

// uniffi defaults are literals: keep this one equal to the core's default.
const _: () = assert!(core::DEFAULT_MEMORY_LIMIT_MB == 1024);

// Sets what the SDK and ONNX Runtime log (logcat on Android, os_log on Apple) from now on.
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    core::logging::set_level(level)
}

// The log level in force.
#[uniffi::export]
pub fn log_level() -> LogLevel {
    core::logging::level()
}

// The app's own log handler (a Kotlin lambda, a Swift closure): each record at or above the level in force. The Kotlin
// layer on Android installs one that writes to android.util.Log.
#[uniffi::export(with_foreign)]
pub trait LogHandler: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String);
}

struct ForeignSink(Arc<dyn LogHandler>);

impl core::logging::LogSink for ForeignSink {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.0.log(level, target.to_owned(), message.to_owned())
    }
}

// Sends log records to `handler` from now on, or back to the platform's sink (logcat, os_log, stderr) with null.
#[uniffi::export]
pub fn set_log_handler(handler: Option<Arc<dyn LogHandler>>) -> Result<(), NativeError> {
    core::logging::set_sink(handler.map(|h| Arc::new(ForeignSink(h)) as Arc<dyn core::logging::LogSink>))
}

// The device class measurements are recorded under for `accelerator` leading (e.g. `linux-x86_64-cpu`): a bundle
// variant measured on it is preferred by `Precision::Auto` when it is the fastest that passed its check.
#[uniffi::export]
pub fn device_class(accelerator: Accelerator) -> String {
    core::device_class(&accelerator)
}

// The numerics class whose accuracy verdicts hold when `accelerator` leads (`linux-aarch64-cpu` on Android and iOS
// phones, `linux-x86_64-cpu` on x86-64): a bundle variant runs only where it passed its check on this class.
#[uniffi::export]
pub fn numerics_class(accelerator: Accelerator) -> String {
    core::numerics_class(&accelerator)
}

// The native library's version; the Kotlin and Swift layers refuse to run against a different one.
#[uniffi::export]
pub fn native_version() -> String {
    core::VERSION.to_owned()
}

// Lets ONNX Runtime send its usage telemetry to Microsoft (`true`) or not (`false`, the default). Opting in works
// only before the runtime loads (before the first engine); afterwards it is an `InvalidConfig` error.
#[uniffi::export]
pub fn set_telemetry(enabled: bool) -> Result<(), NativeError> {
    core::Runtime::set_telemetry(enabled)
}

// Whether ONNX Runtime's telemetry is on (off unless the app opted in).
#[uniffi::export]
pub fn telemetry_enabled() -> bool {
    core::Runtime::telemetry_enabled()
}

// Loads ONNX Runtime from `library_path`, or from `ORT_DYLIB_PATH` / the platform default when `None`.
#[uniffi::export]
pub fn init_runtime(library_path: Option<String>) -> Result<RuntimeInfo, NativeError> {
    core::Runtime::init(library_path.as_deref().map(std::path::Path::new))
}

// A loaded model (the idiomatic `Engine` classes wrap this).
#[derive(uniffi::Object)]
pub struct NativeEngine {
    // Shared with the cascades made from it.
    pub(crate) engine: Arc<core::Engine>,
}

#[uniffi::export]
impl NativeEngine {
    #[uniffi::constructor]
    pub fn from_file(path: String, config: EngineConfig) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeEngine { engine: Arc::new(core::Engine::from_file(path, config)?) }))
    }

    // Loads the variant of a model bundle directory that `config.precision` selects.
    #[uniffi::constructor]
    pub fn from_bundle(dir: String, config: EngineConfig) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeEngine { engine: Arc::new(core::Engine::from_bundle(dir, config)?) }))
    }

    #[uniffi::constructor]
    pub fn from_bytes(model: &[u8], config: EngineConfig) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeEngine { engine: Arc::new(core::Engine::from_bytes(model, config)?) }))
    }

    // Loads the model stored `length` bytes from `offset` in the open file `fd` (an APK asset's
    // AssetFileDescriptor), mapped rather than copied; `fd` stays the caller's.
    #[uniffi::constructor]
    pub fn from_fd(fd: i32, offset: i64, length: i64, config: EngineConfig) -> Result<Arc<Self>, NativeError> {
        let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
            return Err(NativeError::InvalidModel {
                reason: format!("the model region's offset ({offset}) and length ({length}) must be 0 or more"),
            });
        };
        Ok(Arc::new(NativeEngine { engine: Arc::new(core::Engine::from_fd(fd, offset, length, config)?) }))
    }

    pub fn info(&self) -> ModelInfo {
        self.engine.info().clone()
    }

    // The engine's address for the Kotlin JNI path (`FastPath`), valid while this object lives: Kotlin passes the
    // object along with the address, which keeps it alive for the call.
    pub fn fast_handle(&self) -> i64 {
        Arc::as_ptr(&self.engine) as i64
    }

    // Which accelerators are in use, and why any others asked for were skipped.
    pub fn accelerators(&self) -> AcceleratorReport {
        self.engine.accelerators().clone()
    }

    // Which provider ran how many nodes in how many partitions; `None` unless `report_placement` was set.
    pub fn placement(&self) -> Option<Placement> {
        self.engine.placement().cloned()
    }

    // The bundle variant running, and why; `None` for an engine made from one model file.
    pub fn precision(&self) -> Option<PrecisionChoice> {
        self.engine.precision().cloned()
    }

    // What the compile cache did when this engine was built.
    pub fn compile_cache(&self) -> CacheOutcome {
        self.engine.compile_cache()
    }

    // Runs served by each shape bucket, and by the dynamic session.
    pub fn shape_bucket_stats(&self) -> ShapeBucketStats {
        self.engine.shape_bucket_stats()
    }

    // Runs stopped part-way for an interactive run and started again.
    pub fn preempted_runs(&self) -> i64 {
        self.engine.preempted_runs() as i64
    }

    // Runs the model on inputs packed in `data`, as `options` say.
    pub fn run(
        &self,
        inputs: Vec<InputSpec>,
        data: &[u8],
        options: CallOptions,
    ) -> Result<Vec<NativeTensor>, NativeError> {
        self.engine.run_with(&request::uniffi_views(&inputs, data)?, &request::uniffi_options(options))
    }

    // Runs the model `runs` times on zero inputs so the first-inference cost is paid now; milliseconds per run.
    pub fn warmup(&self, runs: i32) -> Result<Vec<f64>, NativeError> {
        self.engine.warmup(warmup_runs(runs)?)
    }

    // `warmup` with zero inputs whose named dynamic dims take the given sizes.
    pub fn warmup_dims(&self, dims: HashMap<String, i64>, runs: i32) -> Result<Vec<f64>, NativeError> {
        let dims: Vec<(&str, i64)> = dims.iter().map(|(name, size)| (name.as_str(), *size)).collect();
        self.engine.warmup_dims(&dims, warmup_runs(runs)?)
    }

    // `warmup` with example inputs packed in `data`.
    pub fn warmup_with(&self, inputs: Vec<InputSpec>, data: &[u8], runs: i32) -> Result<Vec<f64>, NativeError> {
        self.engine.warmup_with(&request::uniffi_views(&inputs, data)?, warmup_runs(runs)?)
    }

    // Releases the model now; later calls fail with `EngineClosed`. Releasing twice is fine. (Not `close`:
    // uniffi gives the Kotlin class an AutoCloseable `close()` that frees the handle itself.)
    pub fn release(&self) {
        self.engine.close()
    }

    pub fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }
}

// A warmup run count from Kotlin or Swift: the engine checks the upper bound, a negative one is refused here.
fn warmup_runs(runs: i32) -> Result<u32, NativeError> {
    u32::try_from(runs).map_err(|_| NativeError::InvalidConfig {
        reason: format!("warmup runs must be between 0 and {}, got {runs}", core::MAX_WARMUP_RUNS),
    })
}

mod cascade;
mod ctc;
mod fast_c;
#[cfg(not(target_vendor = "apple"))]
mod fast_jni;
#[cfg(feature = "llm")]
mod llm;
mod request;
#[cfg(feature = "store")]
mod store;
#[cfg(feature = "llm")]
pub use llm::{NativeChat, NativeGeneration, NativeLlm};
