//! The engine: one model, compiled once, run many times from any thread.

mod validate;

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ort::session::{RunOptions, Session, SessionInputValue};

use crate::accelerator::{AcceleratorReport, leading_accelerator};
use crate::alloc::Limit;
use crate::bundle::{Bundle, PrecisionChoice};
use crate::compile_cache::CacheOutcome;
use crate::config::EngineConfig;
use crate::error::{Error, OrtResultExt, Result, catch_panic};
use crate::model::{Dim, ModelInfo};
use crate::ort_value::{from_ort_value, to_ort_value};
use crate::placement::{self, Placement};
use crate::session::{Opened, open_session};
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
            validate::single_model(&config)?;
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
            validate::single_model(&config)?;
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
        let prefix = placement::profile_prefix();
        let engine = catch_panic(|| {
            let opened = open_session(Source::File(path), &config, None, Some(&prefix))?;
            let info = ModelInfo::of_session(&opened.session)?;
            Engine::assemble(config, info, opened, Vec::new())
        })?;
        let ran = engine.run(inputs);
        let placement = engine.end_profiling();
        ran?;
        placement
    }

    fn build(source: Source<'_>, config: EngineConfig) -> Result<Engine> {
        let prefix = config.report_placement.then(placement::profile_prefix);
        let dynamic = open_session(source, &config, None, prefix.as_deref())?;
        let info = ModelInfo::of_session(&dynamic.session)?;
        validate::shape_buckets(&info, &config.shape_buckets)?;
        let buckets = config
            .shape_buckets
            .iter()
            .map(|bucket| open_session(source, &config, Some(bucket), None).map(|opened| opened.session))
            .collect::<Result<Vec<_>>>()?;
        let mut engine = Engine::assemble(config, info, dynamic, buckets)?;
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

    /// The engine around built sessions; `info` is what the dynamic session declares (read once per load).
    fn assemble(config: EngineConfig, info: ModelInfo, dynamic: Opened, buckets: Vec<Session>) -> Result<Engine> {
        let Opened { session: dynamic, accelerators, cache } = dynamic;
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
        let run_options =
            RunOptions::new().and_then(|o| o.with_tag(crate::logging::RUN_TAG)).or_internal("run options")?;
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
        let mut session = sessions.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        placement::end_profiling(&mut session)
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
            validate::inputs(&self.info, inputs)?;
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
            let outputs = session.run_with_options(values, &sessions.run_options).or_inference("run")?;
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
