//! Building ONNX Runtime sessions of a model: the session options an [`EngineConfig`] asks for, accelerators
//! registered, and the compile cache in front. The engine (a dynamic session and one per shape bucket) and the LLM
//! decoder both open their sessions here.

use std::path::Path;
use std::sync::Arc;

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights, SessionBuilder};

use crate::accelerator::{
    AcceleratorReport, SkippedAccelerator, candidates, leading_accelerator, register_accelerators,
};
use crate::compile_cache::{CacheEntry, CacheOutcome, EXTERNAL_WEIGHTS, MODEL_FILE};
use crate::config::{Accelerator, EngineConfig, OptimizeLevel, ShapeBucket};
use crate::error::{Error, OrtResultExt, Result};
use crate::model_check;
use crate::runtime::Runtime;
use crate::schedule::priority::SpawnedThreads;
use crate::source::Source;

/// The OS threads of an engine slot's sessions (for background runs at a low priority).
pub(crate) use crate::schedule::priority::Workers;

/// A built session, what registered on it, and what the compile cache did.
pub(crate) struct Opened {
    pub session: Session,
    pub accelerators: AcceleratorReport,
    pub cache: CacheOutcome,
}

/// Builds one session of the model (the dynamic one, or one shape bucket's), through the compile cache when one is
/// configured. Sessions given the same `prepacked` container share their prepacked weights (an engine's sessions for
/// concurrent runs).
pub(crate) fn open_session(
    source: Source<'_>,
    config: &EngineConfig,
    bucket: Option<&ShapeBucket>,
    profile: Option<&Path>,
    prepacked: Option<&PrepackedWeights>,
    workers: &Arc<Workers>,
) -> Result<Opened> {
    match open_on(source, config, bucket, profile, prepacked, workers) {
        // An accelerator that takes part of the model and then fails to compile it (OpenVINO with Silero VAD's
        // dynamic-rank subgraphs) costs the engine that accelerator, not the model: the CPU runs it, and the report
        // says why. Strict mode keeps the failure.
        Err(Error::InvalidModel { reason }) if !config.strict && leading_accelerator(config)? != Accelerator::Cpu => {
            let cpu = EngineConfig { accelerators: vec![Accelerator::Cpu], ..config.clone() };
            let mut opened = open_on(source, &cpu, bucket, profile, prepacked, workers)?;
            for provider in config.accelerators.iter().map(Accelerator::provider_name) {
                if provider != "CPUExecutionProvider"
                    && !opened.accelerators.skipped.iter().any(|s| s.provider == provider)
                {
                    log::warn!("{provider} could not compile the model; it runs on the CPU: {reason}");
                    let reason = format!("could not compile the model: {reason}");
                    opened.accelerators.skipped.push(SkippedAccelerator { provider: provider.to_owned(), reason });
                }
            }
            Ok(opened)
        }
        // Strict mode refuses the accelerator, not the model: when the CPU alone can load it, the accelerator could
        // not run all of it (ONNX Runtime's "fallback to CPU EP has been explicitly disabled"), a configuration the
        // app asked for and this model cannot meet.
        Err(Error::InvalidModel { reason }) if config.strict && leading_accelerator(config)? != Accelerator::Cpu => {
            let cpu = EngineConfig { accelerators: vec![Accelerator::Cpu], strict: false, ..config.clone() };
            open_on(source, &cpu, bucket, None, prepacked, workers)?;
            let tried = candidates(config);
            let providers: Vec<&str> = tried.iter().map(|(a, _)| a.provider_name()).collect();
            Err(Error::InvalidConfig {
                reason: format!(
                    "strict mode: {} cannot run the whole model and CPU fallback is off: {reason}",
                    providers.join(", ")
                ),
            })
        }
        other => other,
    }
}

fn open_on(
    source: Source<'_>,
    config: &EngineConfig,
    bucket: Option<&ShapeBucket>,
    profile: Option<&Path>,
    prepacked: Option<&PrepackedWeights>,
    workers: &Arc<Workers>,
) -> Result<Opened> {
    let checked = source.check()?;
    let level = config.optimize_level;
    let builder = |config: &EngineConfig, level| {
        let (builder, report) = session_builder(source, &checked, config, level, bucket, profile, None)?;
        let builder =
            builder.with_thread_manager(SpawnedThreads(Arc::clone(workers))).or_internal("thread creation")?;
        match prepacked {
            Some(weights) => Ok((builder.with_prepacked_weights(weights).or_internal("prepacked weights")?, report)),
            None => Ok((builder, report)),
        }
    };
    let uncached = |cache| -> Result<Opened> {
        let (mut b, accelerators) = builder(config, level)?;
        Ok(Opened { session: source.commit(&mut b)?, accelerators, cache })
    };
    let Some(cache_dir) = config.cache_dir.as_deref().filter(|_| level != OptimizeLevel::O0) else {
        return uncached(CacheOutcome::Disabled);
    };
    let cpu_only = leading_accelerator(config)? == Accelerator::Cpu;
    // With only the CPU, the cached graph is final and loads unoptimized. With an accelerator, graph partitioning
    // happens at load, and ONNX Runtime cannot save graphs holding compiled accelerator nodes, so the cache keeps the
    // provider-independent (basic) optimizations and the session finishes optimizing for its accelerator at load.
    let (cached_level, load_level) = if cpu_only { (level, OptimizeLevel::O0) } else { (OptimizeLevel::O1, level) };
    let bucket_text = bucket.map(|b| format!("{:?}", b.sorted())).unwrap_or_default();
    let settings = format!("{cached_level:?}|{:?}|{bucket_text}", config.accelerators);
    let started = std::time::Instant::now();
    let entry = CacheEntry::new(Path::new(cache_dir), source.content_hash(Path::new(cache_dir))?, settings);
    let keyed = started.elapsed();

    let mut cache = CacheOutcome::Miss;
    match entry.verified() {
        Ok(true) => {
            let verified = started.elapsed();
            let (mut b, accelerators) = builder(config, load_level)?;
            match b.commit_from_file(entry.model_path()) {
                Ok(session) => {
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                    log::debug!(
                        "compile cache hit: key {:.1} ms, checksums {:.1} ms, load {:.1} ms",
                        ms(keyed),
                        ms(verified - keyed),
                        ms(started.elapsed() - verified)
                    );
                    return Ok(Opened { session, accelerators, cache: CacheOutcome::Hit });
                }
                Err(e) => {
                    log::warn!("compile cache: ONNX Runtime refused a cached model ({}); rebuilding it", e.message());
                    entry.remove();
                    cache = CacheOutcome::Rebuilt;
                }
            }
        }
        Ok(false) => {}
        Err(reason) => {
            log::warn!("compile cache: {reason}; rebuilding the entry");
            entry.remove();
            cache = CacheOutcome::Rebuilt;
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
        let mut b = b.with_optimized_model_path(staging.join(MODEL_FILE)).or_internal("compile cache")?;
        for (key, value) in EXTERNAL_WEIGHTS {
            b = b.with_config_entry(key, value).or_internal("compile cache")?;
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
        let (b, accelerators) = builder(config, level)?;
        let session = source.commit(&mut save(b)?)?;
        written(entry.commit(&staging));
        return Ok(Opened { session, accelerators, cache });
    }
    let cpu = EngineConfig { accelerators: vec![Accelerator::Cpu], strict: false, ..config.clone() };
    let (b, _) = session_builder(source, &checked, &cpu, cached_level, bucket, None, None)?;
    drop(source.commit(&mut save(b)?)?);
    written(entry.commit(&staging));
    let (mut b, accelerators) = builder(config, load_level)?;
    let session = match b.commit_from_file(entry.model_path()) {
        Ok(session) => session,
        Err(_) => source.commit(&mut builder(config, level)?.0)?,
    };
    Ok(Opened { session, accelerators, cache })
}

/// How a session's worker threads wait between runs (see `engine::quick`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Workers keep spinning after a run, as ONNX Runtime does by default: the next call starts at once.
    Spinning,
    /// No workers: the calling thread runs the whole graph.
    Alone,
}

/// A session of the model (checked by the caller) on the CPU whose threads wait as `waiting` says, whatever the
/// config's thread settings; not through the compile cache (these are small models, optimized in milliseconds).
pub(crate) fn open_waiting(
    source: Source<'_>,
    checked: &model_check::Checked,
    config: &EngineConfig,
    waiting: Waiting,
    workers: &Arc<Workers>,
) -> Result<Session> {
    let (builder, _) = session_builder(source, checked, config, config.optimize_level, None, None, Some(waiting))?;
    let mut builder =
        builder.with_thread_manager(SpawnedThreads(Arc::clone(workers))).or_internal("thread creation")?;
    source.commit(&mut builder)
}

fn session_builder(
    source: Source<'_>,
    checked: &model_check::Checked,
    config: &EngineConfig,
    level: OptimizeLevel,
    bucket: Option<&ShapeBucket>,
    profile: Option<&Path>,
    waiting: Option<Waiting>,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let builder = Runtime::with_env(|env| Session::builder(env).or_internal("session builder"))?;
    let (builder, report) = configure(builder, config, level, waiting)?;
    let mut builder = source.configure(builder, checked)?;
    for (name, size) in bucket.map(ShapeBucket::sorted).unwrap_or_default() {
        builder = builder.with_dimension_override(name, size).or_invalid_config("shape bucket")?;
    }
    if let Some(prefix) = profile {
        builder = builder.with_profiling(prefix).or_invalid_config("profiling")?;
    }
    Ok((builder, report))
}

fn configure(
    builder: SessionBuilder,
    config: &EngineConfig,
    level: OptimizeLevel,
    waiting: Option<Waiting>,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let level = match level {
        OptimizeLevel::O0 => GraphOptimizationLevel::Disable,
        OptimizeLevel::O1 => GraphOptimizationLevel::Level1,
        OptimizeLevel::O2 => GraphOptimizationLevel::Level2,
        OptimizeLevel::O3 => GraphOptimizationLevel::All,
    };
    let builder = builder.with_optimization_level(level).or_invalid_config("optimize level")?;
    let (mut builder, report) = register_accelerators(builder, config)?;
    // ONNX Runtime's advice when XNNPACK leads: its own pool does the work, so one session thread and no spinning.
    let xnnpack_leads = report.active.first().is_some_and(|a| a == "XnnpackExecutionProvider");
    // Sessions for concurrent runs split the cores rather than each spinning up a thread per core.
    let cores = crate::config::cores() as i32;
    let share = if config.concurrency > 1 { (cores / config.concurrency).max(1) } else { 0 };
    let intra_op_threads = match config.intra_op_threads {
        _ if waiting == Some(Waiting::Alone) => 1,
        0 if xnnpack_leads => 1,
        0 => share,
        n => n,
    };
    let spinning = match waiting {
        Some(Waiting::Spinning) => Some(true),
        Some(Waiting::Alone) => Some(false),
        None => config.spinning.or(xnnpack_leads.then_some(false)),
    };
    if intra_op_threads > 0 {
        builder = builder.with_intra_threads(intra_op_threads as usize).or_invalid_config("intra-op threads")?;
    }
    if config.inter_op_threads > 1 {
        builder = builder.with_parallel_execution(true).or_invalid_config("parallel execution")?;
        builder = builder.with_inter_threads(config.inter_op_threads as usize).or_invalid_config("inter-op threads")?;
    }
    // Spinning threads stop when a run ends: left spinning, an idle engine's workers hold cores that other engines'
    // runs and the app's own threads then wait for (measured: a MiniLM engine's worker at 100% of a core between
    // requests 25 ms apart). Back-to-back runs are not slower for it (MiniLM 2.66 vs 2.96 ms, YOLOv8n 10.1 vs
    // 10.5 ms p50 here).
    // Spinning asked for (an app's `spinning: true`, an LLM's decoder, a small model's burst session in
    // `engine::quick`) spins between runs too: that is where it pays, calls coming back to back.
    if spinning != Some(true) {
        builder = builder.with_config_entry("session.force_spinning_stop", "1").or_invalid_config("spinning stop")?;
    }
    if let Some(spinning) = spinning {
        builder = builder.with_intra_op_spinning(spinning).or_invalid_config("intra-op spinning")?;
        builder = builder.with_inter_op_spinning(spinning).or_invalid_config("inter-op spinning")?;
    }
    // Strict mode holds for accelerators the app named, not for what `Auto` chose (XNNPACK taking part of a model).
    let named = !config.accelerators.contains(&Accelerator::Auto);
    if config.strict && named && report.active.iter().any(|a| a != "CPUExecutionProvider") {
        builder = builder.with_disable_cpu_fallback().or_invalid_config("strict mode")?;
    }
    Ok((builder, report))
}
