//! The engine: one model, compiled once, run many times from any thread.

mod quick;
mod stats;
mod validate;
mod warmup;

pub use stats::{RunTime, ShapeBucketStats, WaitingStats};

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::Instant;

use ort::session::builder::PrepackedWeights;
use ort::session::{Session, SessionInputValue, SessionOutputs};

use crate::accelerator::{AcceleratorReport, leading_accelerator};
use crate::alloc::Limit;
use crate::bundle::{Bundle, PrecisionChoice};
use crate::compile_cache::CacheOutcome;
use crate::config::EngineConfig;
use crate::error::{Error, Result, catch_panic};
use crate::model::{Dim, ModelInfo};
use crate::ort_value::{fill_ort_value, from_ort_value, to_ort_value};
use crate::placement::{self, Placement};
use crate::schedule::lane::{LaneKind, Pool, Request};
use crate::schedule::priority;
use crate::schedule::{Active, OnCancel, Priority, RunOptions, Stop, watchdog};
use crate::session::{Opened, Workers, open_session};
use crate::source::Source;
use crate::tensor::{ElementType, Tensor, TensorRef};
use quick::{Cadence, Pick, QuickSessions};

/// A loaded model. `Send + Sync`: share it (e.g. in an `Arc`) and call [`Engine::run`] from many threads; up to
/// [`EngineConfig::concurrency`] runs go at once, the rest queue by priority ([`Engine::run_with`]).
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
    /// This engine's sessions as its lane counts them: a run waits here for its turn.
    pool: Pool,
    /// Runs stopped part-way for an interactive run and started again.
    preempted: AtomicU64,
    /// How long runs take and how close together calls come: which of a small model's sessions a call runs on.
    cadence: Cadence,
    /// Runs per session kind: the engine's own, spinning (bursts), alone (after pauses).
    quick_runs: [AtomicU64; 3],
    /// Microseconds spent in runs, and the part of them in runs stopped for an interactive run (thrown away).
    busy_us: AtomicU64,
    preempted_us: AtomicU64,
    stopped: AtomicU64,
    /// What must outlive the engine's use of its model (the model store's lease on the version), released at close.
    held: Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>,
}

/// One slot per concurrent run, each a full set of sessions (dynamic and one per shape bucket): ort's `Session::run`
/// takes `&mut self` because ONNX Runtime's `Run` is not thread-safe for every provider (ort's own finding, and
/// XNNPACK's operators), so concurrent runs use different sessions. The lane hands out at most one run per slot.
struct Sessions {
    slots: Vec<Mutex<Slot>>,
}

struct Slot {
    /// The OS threads of this slot's sessions, lowered for background runs.
    workers: Arc<Workers>,
    dynamic: Session,
    buckets: Vec<Session>,
    /// A small model's sessions for bursts and for calls after a pause (`quick`); only in an engine of one slot.
    quick: Option<QuickSessions>,
}

impl Sessions {
    /// A free slot (the lane granted one), or `index`'s when a caller needs that one.
    fn slot(&self, index: Option<usize>) -> MutexGuard<'_, Slot> {
        if let Some(slot) = index.and_then(|i| self.slots.get(i)) {
            return slot.lock().unwrap_or_else(|e| e.into_inner());
        }
        for slot in &self.slots {
            match slot.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.slots[0].lock().unwrap_or_else(|e| e.into_inner())
    }
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
            let (path, choice) = bundle.choose(config.precision, &leading_accelerator(&config)?)?;
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

    /// Loads a model stored in a file the app holds open, `length` bytes from `offset`: an uncompressed asset inside
    /// an APK as Android's `AssetFileDescriptor` gives it (`parcelFileDescriptor.fd`, `startOffset`, `length`). The
    /// region is mapped, not read into the heap, and unmapped once ONNX Runtime has built the session; `fd` stays the
    /// caller's to close.
    pub fn from_fd(fd: i32, offset: u64, length: u64, config: EngineConfig) -> Result<Engine> {
        catch_panic(|| {
            let map = crate::source::map_region(fd, offset, length)?;
            Engine::from_bytes(&map, config)
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
            let config = EngineConfig { concurrency: 1, ..config };
            let workers = Arc::default();
            let Opened { session, accelerators, cache } =
                open_session(Source::File(path), &config, None, Some(&prefix), None, &workers)?;
            let info = ModelInfo::of_session(&session)?;
            Engine::assemble(
                config,
                info,
                vec![Slot { workers, dynamic: session, buckets: Vec::new(), quick: None }],
                accelerators,
                cache,
            )
        })?;
        let ran = engine.run(inputs);
        let placement = engine.end_profiling();
        ran?;
        placement
    }

    fn build(source: Source<'_>, config: EngineConfig) -> Result<Engine> {
        validate::counts(&config)?;
        let prefix = config.report_placement.then(placement::profile_prefix);
        // Sessions of one engine share their prepacked weights (the packed copies MatMul and Conv kernels make).
        let prepacked = (config.concurrency > 1).then(PrepackedWeights::new);
        let first_workers = Arc::default();
        let dynamic = open_session(source, &config, None, prefix.as_deref(), prepacked.as_ref(), &first_workers)?;
        let info = ModelInfo::of_session(&dynamic.session)?;
        validate::shape_buckets(&info, &config.shape_buckets)?;
        let open_slot = |dynamic: Option<(Session, Arc<Workers>)>| -> Result<Slot> {
            let (dynamic, workers) = match dynamic {
                Some(opened) => opened,
                None => {
                    let workers = Arc::default();
                    (open_session(source, &config, None, None, prepacked.as_ref(), &workers)?.session, workers)
                }
            };
            let buckets = config
                .shape_buckets
                .iter()
                .map(|bucket| {
                    open_session(source, &config, Some(bucket), None, prepacked.as_ref(), &workers).map(|o| o.session)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Slot { workers, dynamic, buckets, quick: None })
        };
        let Opened { session, accelerators, cache } = dynamic;
        let mut slots = vec![open_slot(Some((session, first_workers)))?];
        let cpu_only = accelerators.active.iter().all(|a| a == "CPUExecutionProvider");
        slots[0].quick = QuickSessions::open(source, &config, cpu_only, &slots[0].workers)?;
        for _ in 1..config.concurrency {
            slots.push(open_slot(None)?);
        }
        let mut engine = Engine::assemble(config, info, slots, accelerators, cache)?;
        if prefix.is_some() {
            // One zero-filled run on the profiled session, then profiling stops for good.
            let placement = match engine.run_warmup_inputs(None, 0) {
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
    fn assemble(
        config: EngineConfig,
        info: ModelInfo,
        slots: Vec<Slot>,
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
            .map(|b| b.sorted().into_iter().map(|(name, size)| (name.to_owned(), size)).collect())
            .collect();
        let runs = (0..=config.shape_buckets.len()).map(|_| AtomicU64::new(0)).collect();
        let pool = Pool::new(LaneKind::of(&accelerators), slots.len());
        let sessions = Sessions { slots: slots.into_iter().map(Mutex::new).collect() };
        Ok(Engine {
            pool,
            preempted: AtomicU64::new(0),
            cadence: Cadence::new(),
            quick_runs: Default::default(),
            busy_us: AtomicU64::new(0),
            preempted_us: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            held: Mutex::new(None),
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
        placement::end_profiling(&mut sessions.slot(Some(0)).dynamic)
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
        let mut runs: Vec<i64> = self.runs.iter().map(|r| r.load(Ordering::Relaxed) as i64).collect();
        let dynamic_runs = runs.pop().unwrap_or_default();
        ShapeBucketStats { bucket_runs: runs, dynamic_runs }
    }

    /// How this engine's runs waited for work between calls: a small model run on the CPU gets a session whose
    /// workers spin through bursts of calls and one that runs on the calling thread alone after pauses
    /// (`engine::quick`); every other engine runs all on its own session.
    pub fn waiting_stats(&self) -> WaitingStats {
        let [default_runs, spinning_runs, alone_runs] = self.quick_runs.each_ref().map(|n| n.load(Ordering::Relaxed));
        WaitingStats { default_runs, spinning_runs, alone_runs }
    }

    /// Time spent running the model, in all (`busy`) and in runs stopped part-way for an interactive run and started
    /// again (`preempted`: work thrown away).
    pub fn run_time(&self) -> RunTime {
        let us = |n: &AtomicU64| std::time::Duration::from_micros(n.load(Ordering::Relaxed));
        RunTime { busy: us(&self.busy_us), preempted: us(&self.preempted_us) }
    }

    /// Runs stopped part-way so an interactive run could go first, and started again: the work background runs
    /// lost to interactive ones.
    pub fn preempted_runs(&self) -> u64 {
        self.preempted.load(Ordering::Relaxed)
    }

    /// Runs ONNX Runtime stopped part-way, between two nodes, for a cancel or a deadline: work not done. A request
    /// refused before it ran, or a run that finished before the stop reached it, is not counted.
    pub fn stopped_runs(&self) -> u64 {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Runs the model at normal priority, with no deadline. Every input the model declares must be given exactly
    /// once; outputs come back in model order. Inputs are checked before ONNX Runtime sees them, so a bad request
    /// leaves the engine usable.
    pub fn run(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<Vec<Tensor>> {
        self.run_with(inputs, &RunOptions::default())
    }

    /// Runs the model as [`Engine::run`] does, scheduled as `options` ask: its priority orders it among the runs
    /// waiting in its lane (an interactive run stops background runs in progress, which start again after it); a
    /// deadline or a cancel token stops it queued at once, or running at the next node, with
    /// [`Error::DeadlineExceeded`] or [`Error::Cancelled`]. A result is never delivered after its deadline.
    pub fn run_with(&self, inputs: &[(&str, TensorRef<'_>)], options: &RunOptions) -> Result<Vec<Tensor>> {
        self.deliver(options, || self.scheduled_run(inputs, options, None, |outputs| self.collect(outputs)))
    }

    /// Runs the model as [`Engine::run_with`] does, writing each output that has a buffer in `outputs` (model
    /// order, one entry per output) straight into it: no allocation for them, as apps that run a small model many
    /// times a second want. A buffer must hold exactly the output's bytes (fixed-shape outputs; float16 ones as f32
    /// unless the config keeps them), else the call fails with `InvalidInput` naming the output. Outputs without a
    /// buffer come back allocated, at their index; the others are `None`. String outputs need no buffer.
    pub fn run_into(
        &self,
        inputs: &[(&str, TensorRef<'_>)],
        options: &RunOptions,
        outputs: &mut [Option<&mut [u8]>],
    ) -> Result<Vec<Option<Tensor>>> {
        if outputs.len() != self.info.outputs.len() {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{} output buffers given; the model has {} outputs",
                    outputs.len(),
                    self.info.outputs.len()
                ),
            });
        }
        self.deliver(options, || {
            self.scheduled_run(inputs, options, None, |values| {
                self.info
                    .outputs
                    .iter()
                    .zip(outputs.iter_mut())
                    .map(|(out, buffer)| {
                        let value = values
                            .get(out.name.as_str())
                            .ok_or_else(|| Error::internal(format!("output `{}` missing from the run", out.name)))?;
                        match buffer {
                            Some(buffer) => {
                                fill_ort_value(&out.name, value, self.config.f16_outputs_as_f32, buffer).map(|()| None)
                            }
                            None => {
                                from_ort_value(&out.name, value, self.config.f16_outputs_as_f32, self.limit()).map(Some)
                            }
                        }
                    })
                    .collect()
            })
        })
    }

    /// A run's result, unless its deadline passed before the caller could have it.
    fn deliver<R>(&self, options: &RunOptions, run: impl FnOnce() -> Result<R>) -> Result<R> {
        let outputs = catch_panic(run)?;
        // The last moment before the caller has the result: after the session and the lane went back (waking other
        // runs, which may take the cores from this thread) and the outputs were copied.
        if options.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::DeadlineExceeded);
        }
        Ok(outputs)
    }

    /// Every output, in model order, as owned tensors.
    fn collect(&self, outputs: &SessionOutputs<'_>) -> Result<Vec<Tensor>> {
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
    }

    /// One run through the lane, on a free slot (or `slot`), started again when an interactive run preempted it;
    /// `take` reads the outputs while the session is still held.
    fn scheduled_run<R>(
        &self,
        inputs: &[(&str, TensorRef<'_>)],
        options: &RunOptions,
        slot: Option<usize>,
        mut take: impl FnMut(&SessionOutputs<'_>) -> Result<R>,
    ) -> Result<R> {
        let sessions = self.live()?;
        validate::inputs(&self.info, inputs)?;
        if let Some(refusal) = options.refusal() {
            return Err(refusal);
        }
        let route = self.route(inputs);
        self.runs[route].fetch_add(1, Ordering::Relaxed);
        let late = |now: Instant| options.deadline.is_some_and(|d| now >= d);
        let mut seq = None;
        loop {
            let active = Active::new()?;
            let grant = self.pool.acquire(Request {
                priority: options.priority,
                deadline: options.deadline,
                cancel: options.cancel.as_ref(),
                active: Some(active.clone()),
                seq,
                expected: self.cadence.expected_run(),
            })?;
            if let Some(token) = &options.cancel {
                let watcher: Arc<dyn OnCancel> = active.clone();
                token.watch(Arc::downgrade(&watcher));
            }
            if let Some(deadline) = options.deadline {
                watchdog::stop_at(deadline, &active);
            }
            let values = self.values(inputs)?;
            let mut slot = sessions.slot(slot);
            let Slot { workers, dynamic, buckets, quick } = &mut *slot;
            let started = Instant::now();
            let pick = match quick {
                Some(_) if route == buckets.len() => self.cadence.pick(started),
                _ => Pick::Default,
            };
            let session = match (buckets.get_mut(route), quick.as_mut().and_then(|q| q.get(pick))) {
                (Some(bucket), _) => bucket,
                (None, Some(quick)) => quick,
                (None, None) => dynamic,
            };
            self.quick_runs[pick as usize].fetch_add(1, Ordering::Relaxed);
            let lowered = (options.priority == Priority::Background).then(|| priority::lower(workers)).flatten();
            let ran = session.run_with_options(values, &active.options);
            drop(lowered);
            let took = started.elapsed().as_micros() as u64;
            self.busy_us.fetch_add(took, Ordering::Relaxed);
            let outputs = match (ran, active.stopped()) {
                (Err(_), Some(Stop::Preempted)) => {
                    self.preempted.fetch_add(1, Ordering::Relaxed);
                    self.preempted_us.fetch_add(took, Ordering::Relaxed);
                    seq = Some(grant.seq());
                    continue;
                }
                (Err(_), Some(stop)) => {
                    self.stopped.fetch_add(1, Ordering::Relaxed);
                    return Err(stop.error());
                }
                (Err(e), None) => return Err(Error::InferenceFailed { reason: format!("run: {}", e.message()) }),
                (Ok(_), Some(Stop::Cancelled)) => return Err(Error::Cancelled),
                (Ok(outputs), _) => {
                    // Only whole runs teach the engine how long its runs take.
                    self.cadence.ran(started);
                    outputs
                }
            };
            if late(Instant::now()) {
                return Err(Error::DeadlineExceeded);
            }
            let tensors = take(&outputs)?;
            // The session and the lane go back before the caller's last deadline check (in `run_with`).
            drop(outputs);
            drop(slot);
            drop(grant);
            return Ok(tensors);
        }
    }

    /// The inputs as ONNX Runtime values (views of the caller's buffers, or float16 conversions).
    fn values<'a>(&self, inputs: &'a [(&'a str, TensorRef<'a>)]) -> Result<Vec<(Cow<'a, str>, SessionInputValue<'a>)>> {
        inputs
            .iter()
            .map(|(name, t)| {
                let wants_f16 = self.info.input(name).and_then(|i| i.element_type) == Some(ElementType::F16);
                Ok((Cow::Borrowed(*name), to_ort_value(name, t, wants_f16, self.limit())?))
            })
            .collect()
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

    /// Releases the model now: queued runs and later calls fail with [`Error::EngineClosed`], and runs in progress
    /// stop at their next node with the same error (the sessions are freed when the last of them returns). Closing
    /// twice is allowed.
    pub fn close(&self) {
        self.sessions.write().unwrap_or_else(|e| e.into_inner()).take();
        self.pool.close();
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The engine keeps `guard` until it is closed or dropped.
    #[cfg_attr(not(feature = "store"), allow(dead_code))]
    pub(crate) fn holding(self, guard: Box<dyn std::any::Any + Send + Sync>) -> Engine {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        self
    }

    pub fn is_closed(&self) -> bool {
        self.sessions.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

/// More warmup runs than any app needs; a larger count is a caller's bug (a negative number converted), not a wish.
pub const MAX_WARMUP_RUNS: u32 = 1000;
