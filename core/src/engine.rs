//! The engine: one model, compiled once, run many times from any thread.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use half::f16;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use std::num::NonZeroUsize;

use ort::ep::{ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch};

use crate::config::{Accelerator, CoreMlComputeUnits, CoreMlModelFormat, EngineConfig, OptimizeLevel};
use crate::error::{Error, Result, catch_panic};
use crate::model::{Dim, ModelInfo, ModelMetadata, TensorInfo};
use crate::runtime::Runtime;
use crate::tensor::{ElementType, Tensor, TensorRef, element_count};

/// A loaded model. `Send + Sync`: share it (e.g. in an `Arc`) and call [`Engine::run`] from many threads.
pub struct Engine {
    info: ModelInfo,
    config: EngineConfig,
    accelerators: AcceleratorReport,
    // `None` once closed. Runs on one engine take turns on the mutex: ort's `Session::run` takes `&mut self`
    // because ONNX Runtime's `Run` is not reliably thread-safe (ort's own finding). The outer lock only guards
    // close, so `close` never waits for a run to finish; the session is freed when the last run ends.
    session: RwLock<Option<Arc<Mutex<Session>>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("config", &self.config)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Engine {
    /// Loads and compiles the model at `path`.
    pub fn from_file(path: impl AsRef<Path>, config: EngineConfig) -> Result<Engine> {
        let path = path.as_ref();
        catch_panic(|| {
            let meta =
                std::fs::metadata(path).map_err(|_| Error::ModelNotFound { path: path.display().to_string() })?;
            if !meta.is_file() {
                return Err(Error::ModelNotFound { path: path.display().to_string() });
            }
            if meta.len() == 0 {
                return Err(Error::invalid_model(format!("`{}` is empty", path.display())));
            }
            Engine::build(config, |b| b.commit_from_file(path))
        })
    }

    /// Loads and compiles a model held in memory (ONNX Runtime copies what it needs; `model` can be dropped after).
    pub fn from_bytes(model: &[u8], config: EngineConfig) -> Result<Engine> {
        catch_panic(|| {
            if model.is_empty() {
                return Err(Error::invalid_model("model bytes are empty"));
            }
            Engine::build(config, |b| b.commit_from_memory(model))
        })
    }

    /// Runs `inputs` once through a separate, profiling session of the model at `path` and returns ONNX Runtime's
    /// profile (Chrome-trace JSON: every node with the execution provider that ran it). This is what placement
    /// reports are made from; engines built normally are never slowed by profiling.
    pub fn profile_once(
        path: impl AsRef<Path>,
        config: EngineConfig,
        inputs: &[(&str, TensorRef<'_>)],
    ) -> Result<String> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let prefix = std::env::temp_dir().join(format!(
            "openautoglm-profile-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let path = path.as_ref();
        let engine = catch_panic(|| Engine::build_with(config, Some(&prefix), |b| b.commit_from_file(path)))?;
        engine.run(inputs)?;
        let session = engine.session.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Error::EngineClosed)?;
        let file = session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_profiling()
            .map_err(|e| Error::internal(format!("ending the profile: {e}")))?;
        let text =
            std::fs::read_to_string(&file).map_err(|e| Error::internal(format!("reading the profile {file}: {e}")));
        let _ = std::fs::remove_file(&file);
        text
    }

    fn build(config: EngineConfig, commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<Session>) -> Result<Engine> {
        Engine::build_with(config, None, commit)
    }

    fn build_with(
        config: EngineConfig,
        profile_prefix: Option<&Path>,
        commit: impl FnOnce(&mut SessionBuilder) -> ort::Result<Session>,
    ) -> Result<Engine> {
        let builder = Runtime::with_env(|env| {
            Session::builder(env).map_err(|e| Error::internal(format!("session builder: {e}")))
        })?;
        let (mut builder, accelerators) = configure(builder, &config)?;
        if let Some(prefix) = profile_prefix {
            builder =
                builder.with_profiling(prefix).map_err(|e| Error::internal(format!("profiling: {}", e.message())))?;
        }
        let session = commit(&mut builder).map_err(|e| match e.code() {
            ort::ErrorCode::NoSuchFile => Error::ModelNotFound { path: e.message().to_owned() },
            _ => Error::invalid_model(e.message()),
        })?;
        let info = model_info(&session)?;
        log::debug!("engine ready: {} inputs, {} outputs", info.inputs.len(), info.outputs.len());
        Ok(Engine { info, config, accelerators, session: RwLock::new(Some(Arc::new(Mutex::new(session)))) })
    }

    /// The model's inputs, outputs and metadata.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Which accelerators this engine registered, and why any others asked for were skipped.
    pub fn accelerators(&self) -> &AcceleratorReport {
        &self.accelerators
    }

    /// Runs the model. Every input the model declares must be given exactly once; outputs come back in model
    /// order. Inputs are checked before ONNX Runtime sees them, so a bad request leaves the engine usable.
    pub fn run(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<Vec<Tensor>> {
        catch_panic(|| {
            let session = self.session.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Error::EngineClosed)?;
            self.validate(inputs)?;
            let values = inputs
                .iter()
                .map(|(name, t)| Ok((Cow::Borrowed(*name), to_ort_value(name, t)?)))
                .collect::<Result<Vec<(Cow<'_, str>, SessionInputValue<'_>)>>>()?;
            let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
            let outputs = session.run(values).map_err(|e| Error::InferenceFailed { reason: e.message().to_owned() })?;
            self.info
                .outputs
                .iter()
                .map(|out| {
                    let value = outputs
                        .get(out.name.as_str())
                        .ok_or_else(|| Error::internal(format!("output `{}` missing from the run", out.name)))?;
                    from_ort_value(&out.name, value)
                })
                .collect()
        })
    }

    /// Runs the model `runs` times on zero-filled inputs of the declared shapes (dynamic dims as 1), so the slow
    /// first inference (allocations, kernel selection, caches) happens when the app chooses, not on a user's request.
    /// Returns the milliseconds each run took.
    pub fn warmup(&self, runs: u32) -> Result<Vec<f64>> {
        let inputs: Vec<(String, ElementType, Vec<i64>)> = self
            .info
            .inputs
            .iter()
            .map(|input| {
                let element_type = input.element_type.ok_or_else(|| {
                    Error::invalid_input(
                        &input.name,
                        "warmup needs numeric or bool inputs; run the model with real inputs",
                    )
                })?;
                let shape =
                    input.shape.iter().map(|d| if let Dim::Fixed { size } = d { *size as i64 } else { 1 }).collect();
                Ok((input.name.clone(), element_type, shape))
            })
            .collect::<Result<_>>()?;
        let buffers: Vec<Vec<u8>> = inputs
            .iter()
            .map(|(name, et, shape)| Ok(vec![0u8; element_count(name, shape)? * et.size()]))
            .collect::<Result<_>>()?;
        let views: Vec<(&str, TensorRef<'_>)> = inputs
            .iter()
            .zip(&buffers)
            .map(|((name, et, shape), data)| (name.as_str(), TensorRef::from_bytes(*et, shape, data)))
            .collect();
        (0..runs)
            .map(|_| {
                let started = std::time::Instant::now();
                self.run(&views)?;
                Ok(started.elapsed().as_secs_f64() * 1e3)
            })
            .collect()
    }

    /// Releases the model now. Runs already in progress finish; later calls return [`Error::EngineClosed`].
    /// Closing twice is allowed.
    pub fn close(&self) {
        self.session.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub fn is_closed(&self) -> bool {
        self.session.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    fn validate(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<()> {
        let mut seen = HashSet::with_capacity(inputs.len());
        for (name, tensor) in inputs {
            let Some(declared) = self.info.input(name) else {
                let expected: Vec<&str> = self.info.inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(Error::invalid_input(name, format!("the model has no such input (inputs: {expected:?})")));
            };
            if !seen.insert(*name) {
                return Err(Error::invalid_input(name, "given more than once"));
            }
            check_against(declared, tensor)?;
        }
        if let Some(missing) = self.info.inputs.iter().find(|i| !seen.contains(i.name.as_str())) {
            return Err(Error::invalid_input(&missing.name, "missing: the model requires it"));
        }
        Ok(())
    }
}

fn check_against(declared: &TensorInfo, tensor: &TensorRef<'_>) -> Result<()> {
    let name = declared.name.as_str();
    let Some(expected_type) = declared.element_type else {
        return Err(Error::invalid_input(
            name,
            "this input's type is not supported by the SDK (not a numeric or bool tensor)",
        ));
    };
    if tensor.element_type != expected_type {
        return Err(Error::invalid_input(
            name,
            format!("expected element type {expected_type}, got {}", tensor.element_type),
        ));
    }
    if tensor.shape.len() != declared.shape.len() {
        return Err(Error::invalid_input(
            name,
            format!(
                "expected rank {} (shape {}), got rank {} (shape {:?})",
                declared.shape.len(),
                shape_text(&declared.shape),
                tensor.shape.len(),
                tensor.shape
            ),
        ));
    }
    let count = element_count(name, tensor.shape)?;
    for (axis, (dim, &got)) in declared.shape.iter().zip(tensor.shape).enumerate() {
        if let Dim::Fixed { size } = dim
            && u64::try_from(got).ok() != Some(*size)
        {
            return Err(Error::invalid_input(
                name,
                format!(
                    "dimension {axis} must be {size} (shape {}), got {got} (shape {:?})",
                    shape_text(&declared.shape),
                    tensor.shape
                ),
            ));
        }
    }
    let expected_len = count * tensor.element_type.size();
    if tensor.data.len() != expected_len {
        return Err(Error::invalid_input(
            name,
            format!(
                "shape {:?} of {} needs {expected_len} bytes ({count} elements), got {} bytes",
                tensor.shape,
                tensor.element_type,
                tensor.data.len()
            ),
        ));
    }
    if tensor.element_type == ElementType::Bool && tensor.data.iter().any(|&b| b > 1) {
        return Err(Error::invalid_input(name, "bool elements must be 0 or 1"));
    }
    Ok(())
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed { size } => size.to_string(),
            Dim::Symbolic { name } => name.clone(),
            Dim::Dynamic => "?".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn configure(builder: SessionBuilder, config: &EngineConfig) -> Result<(SessionBuilder, AcceleratorReport)> {
    let ort_err =
        |what: &str, e: ort::Error<SessionBuilder>| Error::InvalidConfig { reason: format!("{what}: {}", e.message()) };
    let level = match config.optimize_level {
        OptimizeLevel::O0 => GraphOptimizationLevel::Disable,
        OptimizeLevel::O1 => GraphOptimizationLevel::Level1,
        OptimizeLevel::O2 => GraphOptimizationLevel::Level2,
        OptimizeLevel::O3 => GraphOptimizationLevel::All,
    };
    let builder = builder.with_optimization_level(level).map_err(|e| ort_err("optimize level", e))?;
    let (mut builder, report) = register_accelerators(builder, config)?;
    // ONNX Runtime's advice when XNNPACK leads: its own pool does the work, so one session thread and no spinning.
    let xnnpack_leads = report.active.first().is_some_and(|a| a == "XnnpackExecutionProvider");
    let intra_op_threads = if config.intra_op_threads == 0 && xnnpack_leads { 1 } else { config.intra_op_threads };
    let spinning = config.spinning.or(xnnpack_leads.then_some(false));
    if intra_op_threads > 0 {
        builder = builder.with_intra_threads(intra_op_threads as usize).map_err(|e| ort_err("intra-op threads", e))?;
    }
    if config.inter_op_threads > 1 {
        builder = builder.with_parallel_execution(true).map_err(|e| ort_err("parallel execution", e))?;
        builder =
            builder.with_inter_threads(config.inter_op_threads as usize).map_err(|e| ort_err("inter-op threads", e))?;
    }
    if let Some(spinning) = spinning {
        builder = builder.with_intra_op_spinning(spinning).map_err(|e| ort_err("intra-op spinning", e))?;
        builder = builder.with_inter_op_spinning(spinning).map_err(|e| ort_err("inter-op spinning", e))?;
    }
    if config.strict && report.active.iter().any(|a| a != "CPUExecutionProvider") {
        builder = builder.with_disable_cpu_fallback().map_err(|e| ort_err("strict mode", e))?;
    }
    Ok((builder, report))
}

/// Which accelerators a built engine uses, and why the others were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceleratorReport {
    /// Execution providers registered, in preference order; the CPU provider is always last.
    pub active: Vec<String>,
    pub skipped: Vec<SkippedAccelerator>,
}

/// An accelerator that was asked for but not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedAccelerator {
    pub provider: String,
    pub reason: String,
}

/// The ONNX Runtime execution provider an accelerator maps to, with its options, ready to register.
pub(crate) fn execution_provider(accelerator: &Accelerator) -> Option<ExecutionProviderDispatch> {
    Some(match accelerator {
        Accelerator::Cpu => return None,
        Accelerator::Xnnpack { threads } => xnnpack(*threads).build(),
        #[cfg(not(target_os = "ios"))]
        Accelerator::Nnapi { fp16, nchw, cpu_disabled, cpu_only } => ort::ep::NNAPI::default()
            .with_fp16(*fp16)
            .with_nchw(*nchw)
            .with_disable_cpu(*cpu_disabled)
            .with_cpu_only(*cpu_only)
            .build(),
        #[cfg(target_os = "ios")]
        Accelerator::Nnapi { .. } => return None,
        Accelerator::CoreMl { compute_units, model_format, static_shapes, subgraphs, cache_dir } => {
            coreml(*compute_units, *model_format, *static_shapes, *subgraphs, cache_dir.as_deref()).build()
        }
    })
}

fn xnnpack(threads: u32) -> ort::ep::XNNPACK {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    ort::ep::XNNPACK::default().with_intra_op_num_threads(NonZeroUsize::new(threads).expect("at least one thread"))
}

fn coreml(
    compute_units: CoreMlComputeUnits,
    model_format: CoreMlModelFormat,
    static_shapes: bool,
    subgraphs: bool,
    cache_dir: Option<&str>,
) -> ort::ep::CoreML {
    use ort::ep::coreml::{ComputeUnits, ModelFormat};
    let units = match compute_units {
        CoreMlComputeUnits::All => ComputeUnits::All,
        CoreMlComputeUnits::CpuAndGpu => ComputeUnits::CPUAndGPU,
        CoreMlComputeUnits::CpuAndNeuralEngine => ComputeUnits::CPUAndNeuralEngine,
        CoreMlComputeUnits::CpuOnly => ComputeUnits::CPUOnly,
    };
    let format = match model_format {
        CoreMlModelFormat::MlProgram => ModelFormat::MLProgram,
        CoreMlModelFormat::NeuralNetwork => ModelFormat::NeuralNetwork,
    };
    // ort writes these two booleans as "true"/"false", but ONNX Runtime's CoreML option parser only takes "1" as on
    // (coreml_options.cc: `option.second == "1"`), so they are set here as ONNX Runtime reads them.
    let flag = |on: bool| if on { "1" } else { "0" };
    let provider = ort::ep::CoreML::default()
        .with_compute_units(units)
        .with_model_format(format)
        .with_arbitrary_config("RequireStaticInputShapes", flag(static_shapes))
        .with_arbitrary_config("EnableOnSubgraphs", flag(subgraphs));
    match cache_dir {
        Some(dir) => provider.with_model_cache_dir(dir),
        None => provider,
    }
}

/// Registers the accelerators in order: those this ONNX Runtime has, skipping (or, strict, refusing) the others.
fn register_accelerators(
    mut builder: SessionBuilder,
    config: &EngineConfig,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let available = available_providers();
    let mut report = AcceleratorReport::default();
    for accelerator in &config.accelerators {
        let name = accelerator.provider_name();
        let skip = |report: &mut AcceleratorReport, reason: String| -> Result<()> {
            if config.strict {
                return Err(Error::InvalidConfig { reason: format!("{name}: {reason} (strict mode)") });
            }
            log::warn!("skipping {name}: {reason}");
            report.skipped.push(SkippedAccelerator { provider: name.to_owned(), reason });
            Ok(())
        };
        let Some(provider) = execution_provider(accelerator) else {
            if *accelerator != Accelerator::Cpu {
                skip(&mut report, "not supported on this platform".into())?;
            }
            continue;
        };
        if !available.iter().any(|a| a == name) {
            skip(&mut report, format!("not in this ONNX Runtime build (it has: {})", available.join(", ")))?;
            continue;
        }
        match builder.with_execution_providers([provider.error_on_failure()]) {
            Ok(b) => {
                builder = b;
                report.active.push(name.to_owned());
            }
            Err(e) => {
                let message = e.message().to_owned();
                builder = e.recover();
                skip(&mut report, format!("registration failed: {message}"))?;
            }
        }
    }
    report.active.push("CPUExecutionProvider".into());
    Ok((builder, report))
}

/// The execution providers the loaded ONNX Runtime was built with.
fn available_providers() -> Vec<String> {
    // SAFETY: GetAvailableProviders fills an array of C strings that ReleaseAvailableProviders frees.
    unsafe {
        let api = ort::api();
        let mut providers: *mut *mut std::ffi::c_char = std::ptr::null_mut();
        let mut count = 0;
        let status = (api.GetAvailableProviders)(&mut providers, &mut count);
        if !status.0.is_null() || providers.is_null() {
            (api.ReleaseStatus)(status.0);
            return Vec::new();
        }
        let names = (0..count as usize)
            .map(|i| std::ffi::CStr::from_ptr(*providers.add(i)).to_string_lossy().into_owned())
            .collect();
        let _ = (api.ReleaseAvailableProviders)(providers, count);
        names
    }
}

fn element_type_of(ty: TensorElementType) -> Option<ElementType> {
    Some(match ty {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Int8 => ElementType::I8,
        TensorElementType::Uint8 => ElementType::U8,
        TensorElementType::Int16 => ElementType::I16,
        TensorElementType::Uint16 => ElementType::U16,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Uint32 => ElementType::U32,
        TensorElementType::Int64 => ElementType::I64,
        TensorElementType::Uint64 => ElementType::U64,
        TensorElementType::Bool => ElementType::Bool,
        _ => return None,
    })
}

fn tensor_info(name: &str, ty: &ValueType) -> TensorInfo {
    match ty {
        ValueType::Tensor { ty, shape, dimension_symbols } => TensorInfo {
            name: name.to_owned(),
            element_type: element_type_of(*ty),
            shape: shape
                .iter()
                .enumerate()
                .map(|(i, &d)| match (d, dimension_symbols.get(i).filter(|s| !s.is_empty())) {
                    (d, _) if d >= 0 => Dim::Fixed { size: d as u64 },
                    (_, Some(sym)) => Dim::Symbolic { name: sym.clone() },
                    _ => Dim::Dynamic,
                })
                .collect(),
        },
        _ => TensorInfo { name: name.to_owned(), element_type: None, shape: Vec::new() },
    }
}

fn model_info(session: &Session) -> Result<ModelInfo> {
    let inputs = session.inputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect();
    let outputs = session.outputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect();
    let meta = session.metadata().map_err(|e| Error::invalid_model(format!("unreadable metadata: {e}")))?;
    let custom =
        meta.custom_keys().unwrap_or_default().into_iter().filter_map(|k| meta.custom(&k).map(|v| (k, v))).collect();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let metadata = ModelMetadata {
        producer: non_empty(meta.producer()),
        graph_name: non_empty(meta.name()),
        domain: non_empty(meta.domain()),
        description: non_empty(meta.description()),
        version: meta.version(),
        custom,
    };
    Ok(ModelInfo { inputs, outputs, metadata })
}

/// Calls `$body` with `$T` bound to the Rust type of a (Pod) element type; `Bool` is handled by the caller.
macro_rules! with_pod_type {
    ($et:expr, $T:ident => $body:expr, bool => $bool_body:expr) => {
        match $et {
            ElementType::F32 => {
                type $T = f32;
                $body
            }
            ElementType::F16 => {
                type $T = f16;
                $body
            }
            ElementType::F64 => {
                type $T = f64;
                $body
            }
            ElementType::I8 => {
                type $T = i8;
                $body
            }
            ElementType::U8 => {
                type $T = u8;
                $body
            }
            ElementType::I16 => {
                type $T = i16;
                $body
            }
            ElementType::U16 => {
                type $T = u16;
                $body
            }
            ElementType::I32 => {
                type $T = i32;
                $body
            }
            ElementType::U32 => {
                type $T = u32;
                $body
            }
            ElementType::I64 => {
                type $T = i64;
                $body
            }
            ElementType::U64 => {
                type $T = u64;
                $body
            }
            ElementType::Bool => $bool_body,
        }
    };
}

/// Wraps validated input bytes for ONNX Runtime: in place when the bytes are aligned for the element type (the
/// usual case: direct buffers, Vec<f32>, Swift arrays), otherwise one bulk copy.
fn to_ort_value<'a>(name: &str, t: &TensorRef<'a>) -> Result<SessionInputValue<'a>> {
    let shape = t.shape.to_vec();
    let fail = |e: ort::Error| Error::invalid_input(name, format!("rejected by ONNX Runtime: {}", e.message()));
    with_pod_type!(t.element_type, T => {
        match bytemuck::try_cast_slice::<u8, T>(t.data) {
            Ok(view) => ort::value::TensorRef::from_array_view((shape, view)).map(|v| v.into_dyn().into()).map_err(fail),
            Err(_) => ort::value::Tensor::from_array((shape, bytemuck::pod_collect_to_vec::<u8, T>(t.data))).map(|v| v.into_dyn().into()).map_err(fail),
        }
    }, bool => {
        // SAFETY: validation checked every byte is 0 or 1, the valid bit patterns of bool.
        let view: &'a [bool] = unsafe { std::slice::from_raw_parts(t.data.as_ptr().cast::<bool>(), t.data.len()) };
        ort::value::TensorRef::from_array_view((shape, view)).map(|v| v.into_dyn().into()).map_err(fail)
    })
}

fn from_ort_value(name: &str, value: &DynValue) -> Result<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(Error::InferenceFailed {
            reason: format!("output `{name}` is not a tensor; only tensor outputs are supported"),
        });
    };
    let element_type = element_type_of(*ty).ok_or_else(|| Error::InferenceFailed {
        reason: format!("output `{name}` has unsupported element type {ty}"),
    })?;
    let extract_err = |e: ort::Error| Error::internal(format!("reading output `{name}`: {}", e.message()));
    let (shape, data) = with_pod_type!(element_type, T => {
        let (shape, data) = value.try_extract_tensor::<T>().map_err(extract_err)?;
        (shape.to_vec(), bytemuck::cast_slice::<T, u8>(data).to_vec())
    }, bool => {
        let (shape, data) = value.try_extract_tensor::<bool>().map_err(extract_err)?;
        (shape.to_vec(), data.iter().map(|&b| b as u8).collect())
    });
    Ok(Tensor { name: name.to_owned(), element_type, shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option strings ONNX Runtime receives (its providers' documented keys and values).
    #[test]
    fn coreml_options_are_onnx_runtime_keys() {
        let options = format!(
            "{:?}",
            coreml(CoreMlComputeUnits::CpuAndNeuralEngine, CoreMlModelFormat::MlProgram, true, false, Some("/cache"))
        );
        for expected in [
            r#""MLComputeUnits": "CPUAndNeuralEngine""#,
            r#""ModelFormat": "MLProgram""#,
            r#""RequireStaticInputShapes": "1""#,
            r#""EnableOnSubgraphs": "0""#,
            r#""ModelCacheDirectory": "/cache""#,
        ] {
            assert!(options.contains(expected), "{expected} not in {options}");
        }
        let options =
            format!("{:?}", coreml(CoreMlComputeUnits::CpuOnly, CoreMlModelFormat::NeuralNetwork, false, true, None));
        assert!(
            options.contains(r#""MLComputeUnits": "CPUOnly""#) && options.contains(r#""EnableOnSubgraphs": "1""#),
            "{options}"
        );
        assert!(!options.contains("ModelCacheDirectory"), "{options}");
    }

    #[test]
    fn xnnpack_threads_default_to_the_cores() {
        assert!(format!("{:?}", xnnpack(3)).contains(r#""intra_op_num_threads": "3""#));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(format!("{:?}", xnnpack(0)).contains(&format!(r#""intra_op_num_threads": "{cores}""#)));
    }
}
