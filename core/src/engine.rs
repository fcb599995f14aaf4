//! The engine: one model, compiled once, run many times from any thread.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use half::f16;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use std::num::NonZeroUsize;

use ort::ep::{ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch};

use crate::alloc::Limit;
use crate::bundle::{Bundle, PrecisionChoice};
use crate::compile_cache::{CacheEntry, CacheOutcome, EXTERNAL_WEIGHTS, MODEL_FILE};
use crate::config::{
    Accelerator, CoreMlComputeUnits, CoreMlModelFormat, EngineConfig, OptimizeLevel, Precision, ShapeBucket,
};
use crate::error::{Error, Result, catch_panic};
use crate::model::{Dim, ModelInfo, ModelMetadata, TensorInfo};
use crate::model_check;
use crate::placement::Placement;
use crate::runtime::Runtime;
use crate::source::Source;
use crate::tensor::{ElementType, Tensor, TensorRef, element_count};

/// A loaded model. `Send + Sync`: share it (e.g. in an `Arc`) and call [`Engine::run`] from many threads.
pub struct Engine {
    info: ModelInfo,
    config: EngineConfig,
    accelerators: AcceleratorReport,
    placement: Option<Placement>,
    precision: Option<PrecisionChoice>,
    cache: CacheOutcome,
    /// Each shape bucket's overrides (name order), parallel to `Sessions::buckets`.
    buckets: Vec<Vec<(String, i64)>>,
    /// Runs served by each bucket, then by the dynamic session.
    runs: Vec<AtomicU64>,
    // `None` once closed. The outer lock only guards close, so `close` never waits for a run to finish; the
    // sessions are freed when the last run ends.
    sessions: RwLock<Option<Arc<Sessions>>>,
}

/// Runs on one session take turns on its mutex: ort's `Session::run` takes `&mut self` because ONNX Runtime's `Run`
/// is not reliably thread-safe (ort's own finding). Runs on different shape buckets proceed in parallel.
struct Sessions {
    dynamic: Mutex<Session>,
    buckets: Vec<Mutex<Session>>,
    /// Tags runs so ONNX Runtime's log of a failed run, which the caller receives as an error, is logged at debug.
    run_options: RunOptions,
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
            single_model(&config)?;
            Engine::build(Source::File(path), config)
        })
    }

    /// Loads the variant of a model bundle (see [`crate::bundle`]) that `config.precision` selects for the
    /// accelerator that will lead; [`Engine::precision`] says which and why.
    pub fn from_bundle(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Engine> {
        let dir = dir.as_ref();
        catch_panic(|| {
            let bundle = Bundle::open(dir)?;
            let (path, choice) = bundle.choose(config.precision, &leading_accelerator(&config))?;
            log::info!("{}: running {} ({})", dir.display(), choice.file, choice.reason);
            let mut engine = Engine::build(Source::File(&path), config)?;
            engine.precision = Some(choice);
            Ok(engine)
        })
    }

    /// Loads and compiles a model held in memory (ONNX Runtime copies what it needs; `model` can be dropped after).
    /// A model with external data needs [`EngineConfig::external_data_dir`].
    pub fn from_bytes(model: &[u8], config: EngineConfig) -> Result<Engine> {
        catch_panic(|| {
            single_model(&config)?;
            let external_data_dir = config.external_data_dir.clone();
            let source = Source::Bytes { bytes: model, external_data_dir: external_data_dir.as_deref().map(Path::new) };
            Engine::build(source, config)
        })
    }

    /// Runs `inputs` once through a separate, profiling session of the model at `path` and reads which provider ran
    /// each node. Unlike [`EngineConfig::report_placement`], this uses real inputs, so data-dependent branches count.
    pub fn profile_once(
        path: impl AsRef<Path>,
        config: EngineConfig,
        inputs: &[(&str, TensorRef<'_>)],
    ) -> Result<Placement> {
        let path = path.as_ref();
        let config = EngineConfig { report_placement: false, shape_buckets: Vec::new(), ..config };
        let prefix = profile_prefix();
        let engine = catch_panic(|| {
            let (session, accelerators, cache) = open_session(Source::File(path), &config, None, Some(&prefix))?;
            let info = model_info(&session)?;
            Engine::assemble(config, info, session, Vec::new(), accelerators, cache)
        })?;
        let ran = engine.run(inputs);
        let placement = engine.end_profiling();
        ran?;
        placement
    }

    fn build(source: Source<'_>, config: EngineConfig) -> Result<Engine> {
        let prefix = config.report_placement.then(profile_prefix);
        let (dynamic, accelerators, cache) = open_session(source, &config, None, prefix.as_deref())?;
        let info = model_info(&dynamic)?;
        check_buckets(&info, &config.shape_buckets)?;
        let buckets = config
            .shape_buckets
            .iter()
            .map(|bucket| open_session(source, &config, Some(bucket), None).map(|(session, ..)| session))
            .collect::<Result<Vec<_>>>()?;
        let mut engine = Engine::assemble(config, info, dynamic, buckets, accelerators, cache)?;
        if prefix.is_some() {
            // One zero-filled run on the profiled session, then profiling stops for good.
            let placement = match engine.run_warmup_inputs(None) {
                Ok(()) => engine.end_profiling()?,
                Err(e) => {
                    let _ = engine.end_profiling();
                    Placement {
                        providers: Vec::new(),
                        warnings: vec![format!("no placement: the zero-filled profiling run failed: {e}")],
                    }
                }
            };
            for warning in &placement.warnings {
                log::warn!("{warning}");
            }
            engine.placement = Some(placement);
        }
        Ok(engine)
    }

    /// The engine around built sessions; `info` is the dynamic session's (read once per load).
    fn assemble(
        config: EngineConfig,
        info: ModelInfo,
        dynamic: Session,
        buckets: Vec<Session>,
        accelerators: AcceleratorReport,
        cache: CacheOutcome,
    ) -> Result<Engine> {
        log::debug!(
            "engine ready: {} inputs, {} outputs, compile cache {cache:?}",
            info.inputs.len(),
            info.outputs.len()
        );
        let bucket_dims = config
            .shape_buckets
            .iter()
            .map(|b| b.sorted().into_iter().map(|(name, size)| (name.to_owned(), size as i64)).collect())
            .collect();
        let runs = (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect();
        let run_options = RunOptions::new()
            .and_then(|o| o.with_tag(crate::logging::RUN_TAG))
            .map_err(|e| Error::internal(format!("run options: {e}")))?;
        let sessions = Sessions {
            dynamic: Mutex::new(dynamic),
            buckets: buckets.into_iter().map(Mutex::new).collect(),
            run_options,
        };
        Ok(Engine {
            info,
            config,
            accelerators,
            placement: None,
            precision: None,
            cache,
            buckets: bucket_dims,
            runs,
            sessions: RwLock::new(Some(Arc::new(sessions))),
        })
    }

    fn end_profiling(&self) -> Result<Placement> {
        let sessions = self.live()?;
        let file = sessions
            .dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_profiling()
            .map_err(|e| Error::internal(format!("ending the profile: {e}")))?;
        let text = std::fs::read_to_string(&file);
        let _ = std::fs::remove_file(&file);
        let text = text.map_err(|e| Error::internal(format!("reading the profile {file}: {e}")))?;
        Placement::from_profile(&text).map_err(|e| Error::internal(format!("unreadable profile: {e}")))
    }

    fn limit(&self) -> Limit {
        Limit::from_mb(self.config.memory_limit_mb)
    }

    fn live(&self) -> Result<Arc<Sessions>> {
        self.sessions.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Error::EngineClosed)
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

    /// Which provider ran how many nodes in how many partitions, with warnings; `None` unless
    /// [`EngineConfig::report_placement`] was set.
    pub fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
    }

    /// The bundle variant this engine runs, and why; `None` for an engine made from one model file.
    pub fn precision(&self) -> Option<&PrecisionChoice> {
        self.precision.as_ref()
    }

    /// What the compile cache did when this engine's (dynamic) session was built.
    pub fn compile_cache(&self) -> CacheOutcome {
        self.cache
    }

    /// Runs served by each shape bucket (in configuration order), and by the dynamic session, warmup runs included.
    pub fn shape_bucket_stats(&self) -> ShapeBucketStats {
        let mut runs: Vec<u64> = self.runs.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        let dynamic_runs = runs.pop().unwrap_or_default();
        ShapeBucketStats { bucket_runs: runs, dynamic_runs }
    }

    /// Runs the model. Every input the model declares must be given exactly once; outputs come back in model
    /// order. Inputs are checked before ONNX Runtime sees them, so a bad request leaves the engine usable.
    pub fn run(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<Vec<Tensor>> {
        catch_panic(|| {
            let sessions = self.live()?;
            self.validate(inputs)?;
            let values = inputs
                .iter()
                .map(|(name, t)| {
                    let wants_f16 = self.info.input(name).and_then(|i| i.element_type) == Some(ElementType::F16);
                    Ok((Cow::Borrowed(*name), to_ort_value(name, t, wants_f16, self.limit())?))
                })
                .collect::<Result<Vec<(Cow<'_, str>, SessionInputValue<'_>)>>>()?;
            let route = self.route(inputs);
            self.runs[route].fetch_add(1, Ordering::Relaxed);
            let session = sessions.buckets.get(route).unwrap_or(&sessions.dynamic);
            let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
            let outputs = session
                .run_with_options(values, &sessions.run_options)
                .map_err(|e| Error::InferenceFailed { reason: e.message().to_owned() })?;
            self.info
                .outputs
                .iter()
                .map(|out| {
                    let value = outputs
                        .get(out.name.as_str())
                        .ok_or_else(|| Error::internal(format!("output `{}` missing from the run", out.name)))?;
                    from_ort_value(&out.name, value, self.config.f16_outputs_as_f32, self.limit())
                })
                .collect()
        })
    }

    /// Runs the model `runs` times on zero-filled inputs of the declared shapes (dynamic dims as 1; each shape bucket
    /// at its own dims too), so the slow first inference (allocations, kernel selection, caches) happens when the
    /// app chooses, not on a user's request. Returns the milliseconds each round took.
    pub fn warmup(&self, runs: u32) -> Result<Vec<f64>> {
        if runs > MAX_WARMUP_RUNS {
            return Err(Error::InvalidConfig {
                reason: format!("warmup runs must be between 0 and {MAX_WARMUP_RUNS}, got {runs}"),
            });
        }
        (0..runs)
            .map(|_| {
                let started = std::time::Instant::now();
                self.run_warmup_inputs(None)?;
                for bucket in &self.buckets {
                    self.run_warmup_inputs(Some(bucket))?;
                }
                Ok(started.elapsed().as_secs_f64() * 1e3)
            })
            .collect()
    }

    /// One run on zero-filled inputs: dynamic dims at the bucket's sizes, else 1.
    fn run_warmup_inputs(&self, bucket: Option<&Vec<(String, i64)>>) -> Result<()> {
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
                let shape = input
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed { size } => *size as i64,
                        Dim::Symbolic { name } => {
                            bucket.and_then(|b| b.iter().find(|(n, _)| n == name)).map_or(1, |(_, size)| *size)
                        }
                        Dim::Dynamic => 1,
                    })
                    .collect();
                Ok((input.name.clone(), element_type, shape))
            })
            .collect::<Result<_>>()?;
        let buffers: Vec<Vec<u8>> = inputs
            .iter()
            .map(|(name, et, shape)| {
                self.limit()
                    .zeroed(element_count(name, shape)?, et.size(), || format!("warmup input `{name}` {shape:?}"))
            })
            .collect::<Result<_>>()?;
        let views: Vec<(&str, TensorRef<'_>)> = inputs
            .iter()
            .zip(&buffers)
            .map(|((name, et, shape), data)| (name.as_str(), TensorRef::from_bytes(*et, shape, data)))
            .collect();
        self.run(&views).map(drop)
    }

    /// The session for these (validated) inputs: the first shape bucket whose every dim matches, else dynamic
    /// (index `buckets.len()`).
    fn route(&self, inputs: &[(&str, TensorRef<'_>)]) -> usize {
        let observed = |dim: &str| {
            inputs.iter().find_map(|(name, t)| {
                let declared = self.info.input(name)?;
                declared.shape.iter().zip(t.shape).find_map(|(d, &got)| match d {
                    Dim::Symbolic { name } if name == dim => Some(got),
                    _ => None,
                })
            })
        };
        self.buckets
            .iter()
            .position(|bucket| bucket.iter().all(|(name, size)| observed(name) == Some(*size)))
            .unwrap_or(self.buckets.len())
    }

    /// Releases the model now. Runs already in progress finish; later calls return [`Error::EngineClosed`].
    /// Closing twice is allowed.
    pub fn close(&self) {
        self.sessions.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub fn is_closed(&self) -> bool {
        self.sessions.read().unwrap_or_else(|e| e.into_inner()).is_none()
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
    let f32_for_f16 = expected_type == ElementType::F16 && tensor.element_type == ElementType::F32;
    if tensor.element_type != expected_type && !f32_for_f16 {
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
    let expected_len = count.checked_mul(tensor.element_type.size()).ok_or_else(|| {
        Error::invalid_input(name, format!("shape {:?} of {} is too large", tensor.shape, tensor.element_type))
    })?;
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

/// More warmup runs than any app needs; a larger count is a caller's bug (a negative number converted), not a wish.
pub const MAX_WARMUP_RUNS: u32 = 1000;

/// Runs served per shape bucket, for apps tuning their buckets to real traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShapeBucketStats {
    /// Per bucket, in configuration order.
    pub bucket_runs: Vec<u64>,
    /// Runs whose shape matched no bucket.
    pub dynamic_runs: u64,
}

/// Precision choice belongs to bundles; a single file is what it is.
fn single_model(config: &EngineConfig) -> Result<()> {
    if config.precision != Precision::Auto {
        return Err(Error::InvalidConfig {
            reason: format!(
                "precision {:?} selects a variant of a model bundle: load the bundle (from_bundle), or load the \
                 variant file with precision Auto",
                config.precision
            ),
        });
    }
    Ok(())
}

/// Every bucket names only dynamic dims the model has, with sizes ONNX Runtime accepts.
fn check_buckets(info: &ModelInfo, buckets: &[ShapeBucket]) -> Result<()> {
    let symbols: HashSet<&str> = info
        .inputs
        .iter()
        .flat_map(|i| &i.shape)
        .filter_map(|d| if let Dim::Symbolic { name } = d { Some(name.as_str()) } else { None })
        .collect();
    for (i, bucket) in buckets.iter().enumerate() {
        if bucket.dims.is_empty() {
            return Err(Error::InvalidConfig { reason: format!("shape bucket {i} fixes no dimension") });
        }
        for (name, size) in bucket.sorted() {
            if !symbols.contains(name) {
                let mut known: Vec<&str> = symbols.iter().copied().collect();
                known.sort();
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "shape bucket {i}: the model has no dynamic dimension `{name}` (it has: {known:?})"
                    ),
                });
            }
            if size == 0 || size > i64::MAX as u64 {
                return Err(Error::InvalidConfig {
                    reason: format!("shape bucket {i}: `{name}` = {size} is not a valid size"),
                });
            }
        }
    }
    Ok(())
}

fn profile_prefix() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "openautoglm-profile-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Builds one session of the model (the dynamic one, or one shape bucket's), through the compile cache when one is
/// configured.
pub(crate) fn open_session(
    source: Source<'_>,
    config: &EngineConfig,
    bucket: Option<&ShapeBucket>,
    profile: Option<&Path>,
) -> Result<(Session, AcceleratorReport, CacheOutcome)> {
    let checked = source.check()?;
    let level = config.optimize_level;
    let builder = |config: &EngineConfig, level| session_builder(source, &checked, config, level, bucket, profile);
    let uncached = |outcome| -> Result<(Session, AcceleratorReport, CacheOutcome)> {
        let (mut b, report) = builder(config, level)?;
        Ok((source.commit(&mut b)?, report, outcome))
    };
    let Some(cache_dir) = config.cache_dir.as_deref().filter(|_| level != OptimizeLevel::O0) else {
        return uncached(CacheOutcome::Disabled);
    };
    let cpu_only = leading_accelerator(config) == Accelerator::Cpu;
    // With only the CPU, the cached graph is final and loads unoptimized. With an accelerator, graph partitioning
    // happens at load, and ONNX Runtime cannot save graphs holding compiled accelerator nodes, so the cache keeps the
    // provider-independent (basic) optimizations and the session finishes optimizing for its accelerator at load.
    let (cached_level, load_level) = if cpu_only { (level, OptimizeLevel::O0) } else { (OptimizeLevel::O1, level) };
    let bucket_text = bucket.map(|b| format!("{:?}", b.sorted())).unwrap_or_default();
    let settings = format!("{cached_level:?}|{:?}|{bucket_text}", config.accelerators);
    let started = std::time::Instant::now();
    let entry = CacheEntry::new(Path::new(cache_dir), source.content_hash(Path::new(cache_dir))?, settings);
    let keyed = started.elapsed();

    let mut outcome = CacheOutcome::Miss;
    match entry.verified() {
        Ok(true) => {
            let verified = started.elapsed();
            let (mut b, report) = builder(config, load_level)?;
            match b.commit_from_file(entry.model_path()) {
                Ok(session) => {
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                    log::debug!(
                        "compile cache hit: key {:.1} ms, checksums {:.1} ms, load {:.1} ms",
                        ms(keyed),
                        ms(verified - keyed),
                        ms(started.elapsed() - verified)
                    );
                    return Ok((session, report, CacheOutcome::Hit));
                }
                Err(e) => {
                    log::warn!("compile cache: ONNX Runtime refused a cached model ({}); rebuilding it", e.message());
                    entry.remove();
                    outcome = CacheOutcome::Rebuilt;
                }
            }
        }
        Ok(false) => {}
        Err(reason) => {
            log::warn!("compile cache: {reason}; rebuilding the entry");
            entry.remove();
            outcome = CacheOutcome::Rebuilt;
        }
    }
    let staging = match entry.staging() {
        Ok(staging) => staging,
        Err(e) => {
            // A read-only or full cache directory costs this launch its cache, not the model.
            log::warn!("{e}; loading without the compile cache");
            return uncached(CacheOutcome::Unavailable);
        }
    };
    let save = |b: SessionBuilder| -> Result<SessionBuilder> {
        let fail = |e: ort::Error<SessionBuilder>| Error::internal(format!("compile cache: {}", e.message()));
        let mut b = b.with_optimized_model_path(staging.join(MODEL_FILE)).map_err(fail)?;
        for (key, value) in EXTERNAL_WEIGHTS {
            b = b.with_config_entry(key, value).map_err(fail)?;
        }
        Ok(b)
    };
    let written = |result: Result<()>| {
        if let Err(e) = result {
            log::warn!("compile cache: could not write the entry ({e}); this launch is not cached");
            let _ = std::fs::remove_dir_all(&staging);
        }
    };
    if cpu_only {
        // One session does both: ONNX Runtime saves the graph as it finishes optimizing it.
        let (b, report) = builder(config, level)?;
        let session = source.commit(&mut save(b)?)?;
        written(entry.commit(&staging));
        return Ok((session, report, outcome));
    }
    let cpu = EngineConfig { accelerators: vec![Accelerator::Cpu], strict: false, ..config.clone() };
    let (b, _) = session_builder(source, &checked, &cpu, cached_level, bucket, None)?;
    drop(source.commit(&mut save(b)?)?);
    written(entry.commit(&staging));
    let (mut b, report) = builder(config, load_level)?;
    let session = match b.commit_from_file(entry.model_path()) {
        Ok(session) => session,
        Err(_) => source.commit(&mut builder(config, level)?.0)?,
    };
    Ok((session, report, outcome))
}

fn session_builder(
    source: Source<'_>,
    checked: &model_check::Checked,
    config: &EngineConfig,
    level: OptimizeLevel,
    bucket: Option<&ShapeBucket>,
    profile: Option<&Path>,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let builder =
        Runtime::with_env(|env| Session::builder(env).map_err(|e| Error::internal(format!("session builder: {e}"))))?;
    let (builder, report) = configure(builder, config, level)?;
    let mut builder = source.configure(builder, checked)?;
    let fail =
        |what: &str, e: ort::Error<SessionBuilder>| Error::InvalidConfig { reason: format!("{what}: {}", e.message()) };
    for (name, size) in bucket.map(ShapeBucket::sorted).unwrap_or_default() {
        builder = builder.with_dimension_override(name, size as i64).map_err(|e| fail("shape bucket", e))?;
    }
    if let Some(prefix) = profile {
        builder = builder.with_profiling(prefix).map_err(|e| fail("profiling", e))?;
    }
    Ok((builder, report))
}

fn configure(
    builder: SessionBuilder,
    config: &EngineConfig,
    level: OptimizeLevel,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let ort_err =
        |what: &str, e: ort::Error<SessionBuilder>| Error::InvalidConfig { reason: format!("{what}: {}", e.message()) };
    let level = match level {
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

/// Why an accelerator cannot be registered here, if it cannot.
fn unusable(accelerator: &Accelerator, available: &[String]) -> Option<String> {
    if *accelerator == Accelerator::Cpu {
        return None;
    }
    if execution_provider(accelerator).is_none() {
        return Some("not supported on this platform".into());
    }
    let name = accelerator.provider_name();
    (!available.iter().any(|a| a == name))
        .then(|| format!("not in this ONNX Runtime build (it has: {})", available.join(", ")))
}

/// The accelerator that will take the model: the first one asked for that this ONNX Runtime has (else the CPU).
fn leading_accelerator(config: &EngineConfig) -> Accelerator {
    let available = available_providers();
    config.accelerators.iter().find(|a| unusable(a, &available).is_none()).cloned().unwrap_or(Accelerator::Cpu)
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
        if let Some(reason) = unusable(accelerator, &available) {
            skip(&mut report, reason)?;
            continue;
        }
        let Some(provider) = execution_provider(&with_compile_cache(accelerator, config)) else { continue };
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

/// CoreML keeps its compiled models in the engine's compile cache unless it was given a directory of its own.
fn with_compile_cache(accelerator: &Accelerator, config: &EngineConfig) -> Accelerator {
    match (accelerator, &config.cache_dir) {
        (Accelerator::CoreMl { cache_dir: None, .. }, Some(dir)) => {
            let mut accelerator = accelerator.clone();
            if let Accelerator::CoreMl { cache_dir, .. } = &mut accelerator {
                *cache_dir = Some(Path::new(dir).join("coreml").display().to_string());
            }
            accelerator
        }
        _ => accelerator.clone(),
    }
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
/// usual case: direct buffers, Vec<f32>, Swift arrays), otherwise one bulk copy. Float32 given for a float16 input
/// is converted in one pass (half's slice conversion, F16C/NEON where the CPU has it).
fn to_ort_value<'a>(name: &str, t: &TensorRef<'a>, wants_f16: bool, limit: Limit) -> Result<SessionInputValue<'a>> {
    let shape = t.shape.to_vec();
    let fail = |e: ort::Error| Error::invalid_input(name, format!("rejected by ONNX Runtime: {}", e.message()));
    if wants_f16 && t.element_type == ElementType::F32 {
        use half::slice::HalfFloatSliceExt;
        let floats: Cow<'_, [f32]> = match bytemuck::try_cast_slice::<u8, f32>(t.data) {
            Ok(view) => Cow::Borrowed(view),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(t.data)),
        };
        let mut halves = limit.vec(floats.len(), || format!("float16 conversion of input `{name}`"))?;
        halves.resize(floats.len(), f16::ZERO);
        halves.convert_from_f32_slice(&floats);
        return ort::value::Tensor::from_array((shape, halves)).map(|v| v.into_dyn().into()).map_err(fail);
    }
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

fn from_ort_value(name: &str, value: &DynValue, f16_as_f32: bool, limit: Limit) -> Result<Tensor> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(Error::InferenceFailed {
            reason: format!("output `{name}` is not a tensor; only tensor outputs are supported"),
        });
    };
    let element_type = element_type_of(*ty).ok_or_else(|| Error::InferenceFailed {
        reason: format!("output `{name}` has unsupported element type {ty}"),
    })?;
    let extract_err = |e: ort::Error| Error::internal(format!("reading output `{name}`: {}", e.message()));
    let what = || format!("the copy of output `{name}`");
    if f16_as_f32 && element_type == ElementType::F16 {
        use half::slice::HalfFloatSliceExt;
        let (shape, halves) = value.try_extract_tensor::<f16>().map_err(extract_err)?;
        let mut data = limit.zeroed(halves.len(), 4, what)?;
        match bytemuck::try_cast_slice_mut::<u8, f32>(&mut data) {
            Ok(floats) => halves.convert_to_f32_slice(floats),
            // An empty buffer (its dangling pointer has no f32 alignment) or an allocator that aligns less than 4.
            Err(_) => {
                for (half, out) in halves.iter().zip(data.chunks_exact_mut(4)) {
                    out.copy_from_slice(&half.to_f32().to_le_bytes());
                }
            }
        }
        return Ok(Tensor { name: name.to_owned(), element_type: ElementType::F32, shape: shape.to_vec(), data });
    }
    let copy = |bytes: &[u8]| -> Result<Vec<u8>> {
        let mut data = limit.vec(bytes.len(), what)?;
        data.extend_from_slice(bytes);
        Ok(data)
    };
    let (shape, data) = with_pod_type!(element_type, T => {
        let (shape, data) = value.try_extract_tensor::<T>().map_err(extract_err)?;
        (shape.to_vec(), copy(bytemuck::cast_slice::<T, u8>(data))?)
    }, bool => {
        let (shape, data) = value.try_extract_tensor::<bool>().map_err(extract_err)?;
        // SAFETY: bool is one byte holding 0 or 1.
        (shape.to_vec(), copy(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len()) })?)
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
