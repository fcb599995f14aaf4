//! How an engine is built: which accelerators, how hard to optimize the graph, how many threads.
//!
//! Counts and sizes are signed (`i32`, and `i64` for dimensions as in ONNX), as ONNX Runtime's own API takes them:
//! these types are also the Kotlin and Swift API, where unsigned numbers are awkward (Java has none). A negative
//! value is refused with `InvalidConfig` when the engine is built.

/// Where a model runs, in the caller's order of preference. One the loaded ONNX Runtime does not have is skipped
/// with a logged reason (see [`crate::Engine::accelerators`]), or refused in strict mode. The CPU always runs what
/// the others do not take, unless strict mode forbids it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    /// ONNX Runtime's CPU execution provider, available everywhere.
    Cpu,
    /// XNNPACK: CPU kernels tuned for ARM and x86 mobile chips, with its own thread pool (`threads` 0: one per core).
    /// When it leads, the engine follows ONNX Runtime's advice: one intra-op thread and no spinning, unless the
    /// config sets them.
    Xnnpack { threads: i32 },
    /// Android's NNAPI (NPU, GPU or DSP through the vendor driver). Deprecated from Android 15 and often slower than
    /// the CPU when a model splits into many partitions: opt in, and check the placement report.
    Nnapi { fp16: bool, nchw: bool, cpu_disabled: bool, cpu_only: bool },
    /// Apple's CoreML (Neural Engine, GPU, CPU). Give `cache_dir` so compiled models survive app launches (ONNX
    /// Runtime >= 1.21; older ones reject the option, and the accelerator is then skipped with that reason).
    CoreMl {
        compute_units: CoreMlComputeUnits,
        model_format: CoreMlModelFormat,
        static_shapes: bool,
        subgraphs: bool,
        cache_dir: Option<String>,
    },
    /// An execution provider that ONNX Runtime loads at run time from a plugin library (its plugin-EP API, ONNX
    /// Runtime >= 1.22): Intel's OpenVINO (PyPI `onnxruntime-ep-openvino`), Qualcomm's QNN for Android
    /// (`com.qualcomm.qti:onnxruntime-android-qnn`), or any other. `library` is the plugin's path, registered once
    /// per process; `provider` the execution provider it registers; `device` which of its devices runs the model;
    /// `options` its provider options, keys as the provider documents them (without its name as prefix). A library
    /// that is missing or not a plugin for this ONNX Runtime is [`crate::Error::AcceleratorUnavailable`]; a plugin
    /// that offers no such device on this machine is skipped (refused in strict mode), like any accelerator.
    /// [`Accelerator::openvino`] and [`Accelerator::qnn_htp`] fill these for the plugins this SDK knows.
    Plugin { library: String, provider: String, device: DeviceKind, options: Vec<ProviderOption> },
    /// The SDK's choice for this platform, resolved when the engine is built ([`Accelerator::auto_for`]): on Android,
    /// Qualcomm's QNN plugin on the NPU when the app ships it and the phone has one, then XNNPACK where the ONNX
    /// Runtime package has it, then the CPU, and never NNAPI (deprecated from Android 15, and often slower than the
    /// CPU: ONNX Runtime issue 28784); on Apple platforms CoreML, then the CPU; elsewhere the CPU. What it resolved
    /// to is in [`crate::Engine::accelerators`]; what it tried and could not use is skipped with the reason (never
    /// refused, even in strict mode: strict mode holds for what the app named).
    Auto,
}

/// The kind of hardware a plugin execution provider's device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Gpu,
    Npu,
}

/// One provider option of a plugin execution provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOption {
    pub key: String,
    pub value: String,
}

/// OpenVINO's name for its execution provider (and the name its plugin must be registered under).
pub const OPENVINO_PROVIDER: &str = "OpenVINOExecutionProvider";
/// Qualcomm's QNN execution provider.
pub const QNN_PROVIDER: &str = "QNNExecutionProvider";

impl Accelerator {
    /// ONNX Runtime's name for the execution provider.
    pub fn provider_name(&self) -> &str {
        match self {
            Accelerator::Cpu => "CPUExecutionProvider",
            Accelerator::Xnnpack { .. } => "XnnpackExecutionProvider",
            Accelerator::Nnapi { .. } => "NnapiExecutionProvider",
            Accelerator::CoreMl { .. } => "CoreMLExecutionProvider",
            Accelerator::Plugin { provider, .. } => provider,
            Accelerator::Auto => "auto",
        }
    }

    /// What [`Accelerator::Auto`] tries on `os` (`std::env::consts::OS`), in order. NNAPI is never among them.
    pub fn auto_for(os: &str) -> Vec<Accelerator> {
        match os {
            "android" => vec![
                Accelerator::qnn_htp("libonnxruntime_providers_qnn.so", "burst"),
                Accelerator::Xnnpack { threads: 0 },
                Accelerator::Cpu,
            ],
            "ios" | "macos" => vec![
                Accelerator::CoreMl {
                    compute_units: CoreMlComputeUnits::All,
                    model_format: CoreMlModelFormat::MlProgram,
                    static_shapes: false,
                    subgraphs: false,
                    cache_dir: None,
                },
                Accelerator::Cpu,
            ],
            _ => vec![Accelerator::Cpu],
        }
    }

    /// Intel's OpenVINO through its plugin (`libonnxruntime_providers_openvino_plugin.so` from the PyPI wheel
    /// `onnxruntime-ep-openvino`) on `device`. OpenVINO's plugin offers devices only on Intel hardware.
    pub fn openvino(library: impl Into<String>, device: DeviceKind) -> Accelerator {
        Accelerator::Plugin { library: library.into(), provider: OPENVINO_PROVIDER.into(), device, options: Vec::new() }
    }

    /// Qualcomm's QNN plugin on the Hexagon NPU (HTP) of a Snapdragon phone: `library` is
    /// `libonnxruntime_providers_qnn.so` (in the `com.qualcomm.qti:onnxruntime-android-qnn` AAR, so a plain name
    /// is found in the app's native library directory), `performance_mode` one of QNN's `htp_performance_mode`
    /// values (`burst`, `high_performance`, `balanced`, `power_saver`, ...; `default` leaves it to QNN).
    pub fn qnn_htp(library: impl Into<String>, performance_mode: &str) -> Accelerator {
        let option = |key: &str, value: &str| ProviderOption { key: key.into(), value: value.into() };
        Accelerator::Plugin {
            library: library.into(),
            provider: QNN_PROVIDER.into(),
            device: DeviceKind::Npu,
            options: vec![option("backend_path", "libQnnHtp.so"), option("htp_performance_mode", performance_mode)],
        }
    }

    /// The short name classes and reports use: `cpu`, `xnnpack`, `nnapi`, `coreml`, or a plugin provider's name
    /// without `ExecutionProvider`, lower case (`openvino`, `qnn`).
    pub fn short_name(&self) -> String {
        match self {
            Accelerator::Cpu => "cpu".into(),
            Accelerator::Xnnpack { .. } => "xnnpack".into(),
            Accelerator::Nnapi { .. } => "nnapi".into(),
            Accelerator::CoreMl { .. } => "coreml".into(),
            Accelerator::Plugin { provider, .. } => {
                provider.strip_suffix("ExecutionProvider").unwrap_or(provider).to_ascii_lowercase()
            }
            // Resolved before anything runs; as a class, the CPU it always ends with.
            Accelerator::Auto => "cpu".into(),
        }
    }
}

/// Which Apple compute units CoreML may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreMlComputeUnits {
    All,
    CpuAndGpu,
    CpuAndNeuralEngine,
    CpuOnly,
}

/// The CoreML model type ONNX Runtime builds: ML Program (iOS 15+, FP16 capable) or the older NeuralNetwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreMlModelFormat {
    MlProgram,
    NeuralNetwork,
}

/// Graph optimization before the first run, mapped to ONNX Runtime's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizeLevel {
    /// No graph optimization.
    O0,
    /// Basic: constant folding, redundant node removal.
    O1,
    /// Extended: adds complex node fusions.
    O2,
    /// All: adds layout optimizations (graph fusion + constant folding + layout).
    #[default]
    O3,
}

/// Engine settings. `Default` is a sensible mobile choice: CPU, O3, ONNX Runtime's thread count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Accelerators in order of preference; empty means `[Cpu]`.
    pub accelerators: Vec<Accelerator>,
    pub optimize_level: OptimizeLevel,
    /// Threads for one operator; 0 lets ONNX Runtime choose (one per physical core).
    pub intra_op_threads: i32,
    /// Threads running independent branches of the graph in parallel; 0 or 1 runs nodes one after another.
    pub inter_op_threads: i32,
    /// Whether idle threads spin waiting for work: lower latency, more power and CPU contention. `Some(true)`: they
    /// spin within a run and between runs (for calls that come back to back; after the last one a worker spins on
    /// for tens of milliseconds). `None`: they spin within a run and stop when it ends (an LLM's decoder: between
    /// the steps of a generation too); a small model chooses per call (see `Engine::waiting_stats`).
    pub spinning: Option<bool>,
    /// Refuse rather than fall back: an unavailable accelerator is an error, and no node may fall back to the CPU
    /// (ONNX Runtime's `session.disable_cpu_ep_fallback`) when another accelerator is active.
    pub strict: bool,
    /// Which variant of a model bundle ([`crate::Engine::from_bundle`]) or decoder of an LLM directory to load. A
    /// single model file is what it is: anything but `Auto` is refused there. `Int8`/`Fp16` include the mixed variants
    /// (their most sensitive nodes kept at FP32); `Int4` the per-layer mixed decoder first.
    pub precision: Precision,
    /// Compile once: where optimized models are kept between launches (an app's cache directory). `None` optimizes
    /// at every launch. CoreML's compiled models go to a `coreml` folder inside unless CoreML has its own.
    pub cache_dir: Option<String>,
    /// Sessions specialised for common input shapes (fixed values for named dynamic dims), chosen per call by the
    /// input's shape; other shapes run on the dynamic session.
    pub shape_buckets: Vec<ShapeBucket>,
    /// Record which provider runs how many nodes, in how many partitions ([`crate::Engine::placement`]). Costs one
    /// profiled warmup run at load.
    pub report_placement: bool,
    /// Return float16 outputs as float32 (converted in bulk), so callers see f32 whichever precision runs. Float32
    /// inputs are always accepted for float16 inputs.
    pub f16_outputs_as_f32: bool,
    /// The largest buffer the engine allocates for one tensor on a model's or a caller's behalf (warmup inputs,
    /// output copies, float16 conversions), in MB; over it, or when the system cannot provide it, the call fails
    /// with [`crate::Error::MemoryLimit`] instead of the allocation aborting the app. 0 = only the system's limit.
    pub memory_limit_mb: i32,
    /// How many runs of this engine may go at once (1 to [`MAX_CONCURRENCY`]). Each extra one costs a session: the
    /// graph and activations again, the prepacked weights shared. With `intra_op_threads` 0, each session then gets
    /// its share of the cores. How many runs start at once across engines is the lane's business
    /// ([`crate::schedule::set_lane_capacity`]).
    pub concurrency: i32,
    /// Where a model given as bytes ([`crate::Engine::from_bytes`]) finds its external data files. Without it such a
    /// model may not use external data (ONNX Runtime would resolve it against the process's working directory, `/`
    /// in an app). Needs ONNX Runtime >= 1.21. Models loaded from files always use their own directory.
    pub external_data_dir: Option<String>,
}

/// The cores thread counts are shared out from: the online CPUs, as ONNX Runtime counts them for its own pools.
/// (std's `available_parallelism` also reads cgroup CPU quotas, which app processes on phones do not have, for 7 KB
/// of the library.)
pub(crate) fn cores() -> usize {
    // SAFETY: sysconf only reads a system value.
    #[cfg(unix)]
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    #[cfg(not(unix))]
    let online = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    usize::try_from(online).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// The default [`EngineConfig::memory_limit_mb`]: 1 GiB, more than any one tensor of a model that fits a phone.
pub const DEFAULT_MEMORY_LIMIT_MB: i32 = 1024;

/// The most sessions one engine keeps for concurrent runs: past the cores of any phone, only memory is gained.
pub const MAX_CONCURRENCY: i32 = 16;

/// Which numeric precision of a model to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Precision {
    /// The engine chooses among the variants whose accuracy the bundle vouches for: the fastest measured on this
    /// device class ([`crate::device_class`]), else by the accelerator's guidance (see [`crate::bundle`]).
    #[default]
    Auto,
    Fp32,
    Fp16,
    Int8,
    /// 4-bit weights (ONNX Runtime's MatMulNBits): decoder LLMs.
    Int4,
}

/// Fixed sizes for named dynamic dimensions (e.g. `{"sequence_length": 128}`), given to ONNX Runtime as free-dimension
/// overrides so the session is compiled for that shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShapeBucket {
    pub dims: std::collections::HashMap<String, i64>,
}

impl ShapeBucket {
    pub fn new<'a>(dims: impl IntoIterator<Item = (&'a str, i64)>) -> ShapeBucket {
        ShapeBucket { dims: dims.into_iter().map(|(name, size)| (name.to_owned(), size)).collect() }
    }

    /// The overrides in name order: one spelling for cache keys and logs.
    pub(crate) fn sorted(&self) -> Vec<(&str, i64)> {
        let mut dims: Vec<(&str, i64)> = self.dims.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        dims.sort();
        dims
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            accelerators: vec![Accelerator::Cpu],
            optimize_level: OptimizeLevel::O3,
            intra_op_threads: 0,
            inter_op_threads: 0,
            spinning: None,
            strict: false,
            precision: Precision::Auto,
            cache_dir: None,
            shape_buckets: Vec::new(),
            report_placement: false,
            f16_outputs_as_f32: true,
            memory_limit_mb: DEFAULT_MEMORY_LIMIT_MB,
            external_data_dir: None,
            concurrency: 1,
        }
    }
}

impl EngineConfig {
    pub fn with_threads(mut self, intra_op_threads: i32) -> Self {
        self.intra_op_threads = intra_op_threads;
        self
    }

    pub fn with_inter_op_threads(mut self, inter_op_threads: i32) -> Self {
        self.inter_op_threads = inter_op_threads;
        self
    }

    pub fn with_spinning(mut self, spinning: bool) -> Self {
        self.spinning = Some(spinning);
        self
    }

    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    pub fn with_optimize_level(mut self, level: OptimizeLevel) -> Self {
        self.optimize_level = level;
        self
    }

    pub fn with_accelerators(mut self, accelerators: Vec<Accelerator>) -> Self {
        self.accelerators = accelerators;
        self
    }

    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    pub fn with_cache_dir(mut self, dir: impl Into<String>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    pub fn with_shape_buckets(mut self, buckets: Vec<ShapeBucket>) -> Self {
        self.shape_buckets = buckets;
        self
    }

    pub fn with_placement_report(mut self, report: bool) -> Self {
        self.report_placement = report;
        self
    }

    pub fn with_f16_outputs_as_f32(mut self, convert: bool) -> Self {
        self.f16_outputs_as_f32 = convert;
        self
    }

    pub fn with_memory_limit_mb(mut self, mb: i32) -> Self {
        self.memory_limit_mb = mb;
        self
    }

    pub fn with_concurrency(mut self, runs: i32) -> Self {
        self.concurrency = runs;
        self
    }

    pub fn with_external_data_dir(mut self, dir: impl Into<String>) -> Self {
        self.external_data_dir = Some(dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_never_chooses_nnapi_and_ends_with_the_cpu() {
        for os in ["android", "ios", "macos", "linux", "windows"] {
            let chosen = Accelerator::auto_for(os);
            assert!(!chosen.iter().any(|a| matches!(a, Accelerator::Nnapi { .. })), "{os}: {chosen:?}");
            assert_eq!(chosen.last(), Some(&Accelerator::Cpu), "{os}");
        }
        let android = Accelerator::auto_for("android");
        assert!(
            matches!(&android[0], Accelerator::Plugin { provider, device: DeviceKind::Npu, .. } if provider == QNN_PROVIDER)
        );
        assert_eq!(android[1], Accelerator::Xnnpack { threads: 0 });
        assert!(matches!(Accelerator::auto_for("ios")[0], Accelerator::CoreMl { .. }));
        assert_eq!(Accelerator::auto_for("linux"), vec![Accelerator::Cpu]);
    }

    #[test]
    fn the_qnn_preset_uses_qualcomms_option_names() {
        let Accelerator::Plugin { library, options, .. } =
            Accelerator::qnn_htp("libonnxruntime_providers_qnn.so", "burst")
        else {
            panic!("a plugin")
        };
        assert_eq!(library, "libonnxruntime_providers_qnn.so");
        let keys: Vec<(&str, &str)> = options.iter().map(|o| (o.key.as_str(), o.value.as_str())).collect();
        assert_eq!(keys, [("backend_path", "libQnnHtp.so"), ("htp_performance_mode", "burst")]);
    }
}
