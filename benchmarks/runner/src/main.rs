//! The benchmark runner: built for the device, given a model and an input recipe, writes one JSON result.
//! `cargo xtask bench` builds, deploys and runs it, and turns the result into a table.
//!
//! openautoglm-bench --model M.onnx --recipe INPUTS.json --out RESULT.json [--runs 200] [--warmup 10]
//!                   [--threads N] [--optimize O3] [--ort libonnxruntime.so] [--dump-outputs OUTPUTS.json]
//!                   [--seconds S]   (duration mode: timed runs until S seconds have passed, at least --runs)
//!                   [--interval-ms N] (calls N ms apart, as an app calling a small model at a fixed rate does,
//!                   instead of back to back)
//!                   [--cache-dir DIR] (compile cache)  [--bucket name=size[,name=size...]] (repeatable)
//!                   [--feed-f16]  (float32 recipe inputs converted to float16 before timing, for f16-input models)
//!                   [--plugin LIB]  (OpenVINO's plugin execution provider, CPU device, leads; `--strict` refuses
//!                   CPU fallback)
//! Prints `progress DONE TOTAL` lines on stdout while it runs.
//!
//! openautoglm-bench --scheduling ...  (see `scheduling`): many requests on one process.
//! openautoglm-bench --cascade ...  (see `cascade`): a recognizer cascade over labelled text lines.
//! openautoglm-bench --verdict ...  (see `verdict`): outputs on every input of a held-out set, for verdicts.
//! openautoglm-bench --chat ...  (see `chat`): conversations with and without the KV cache kept between turns.
//! openautoglm-bench --sustained ...  (see `sustained`): one model for minutes, with heat and energy per minute.
//! openautoglm-bench --fetch ...  (see `fetch`): the model store downloading entries.
//!
//! openautoglm-bench --generate --llm DIR --precision int4 --question Q --tokens 128 --runs 3 --threads N --out R.json
//!   times text generation: greedy, a fixed output length, the chat template applied to Q (the same protocol as
//!   benchmarks/peers/genai_generate.py).

mod cascade;
mod chat;
mod energy;
mod fetch;
mod llm_gaps;
mod scheduling;
mod sustained;
mod thermal;
mod verdict;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use bench_schema::generation::{GenerationOutput, GenerationRun};
use bench_schema::measured::{
    AcceleratorsUsed, Measured, Metrics, Placement, ProviderPlacement, ShapeBuckets, SkippedAccelerator,
};
use bench_schema::outputs::{DumpedOutput, DumpedOutputs};
use bench_schema::recipe::{InputSource, RecipeInput, RecipeType};
use half::f16;
use half::slice::HalfFloatSliceExt;
use openautoglm::metrics::{Summary, memory};
use openautoglm::{
    Accelerator, DeviceKind, ElementType, Engine, EngineConfig, OptimizeLevel, Runtime, ShapeBucket, TensorRef,
};

struct Args {
    model: PathBuf,
    recipe: PathBuf,
    out: PathBuf,
    runs: usize,
    /// Duration mode: keep running until this many seconds of timed runs have passed.
    seconds: f64,
    /// Calls this many milliseconds apart (0: back to back).
    interval_ms: f64,
    warmup: usize,
    threads: i32,
    optimize: OptimizeLevel,
    ort: Option<PathBuf>,
    /// Writes the first inference's outputs here, to compare devices.
    dump_outputs: Option<PathBuf>,
    cache_dir: Option<String>,
    buckets: Vec<ShapeBucket>,
    feed_f16: bool,
    /// OpenVINO's plugin library: the engine runs on it (CPU device) instead of the CPU provider.
    plugin: Option<String>,
    strict: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut recipe, mut out, mut ort, mut dump_outputs) = (None, None, None, None, None);
    let (mut cache_dir, mut buckets, mut feed_f16, mut plugin, mut strict) = (None, Vec::new(), false, None, false);
    let (mut runs, mut warmup, mut threads, mut optimize, mut seconds) = (200, 10, 0, OptimizeLevel::O3, 0.0);
    let mut interval_ms = 0.0;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--recipe" => recipe = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--dump-outputs" => dump_outputs = Some(PathBuf::from(value()?)),
            "--cache-dir" => cache_dir = Some(value()?),
            "--feed-f16" => feed_f16 = true,
            "--plugin" => plugin = Some(value()?),
            "--strict" => strict = true,
            "--bucket" => {
                let text = value()?;
                let dims = text
                    .split(',')
                    .map(|d| {
                        let (name, size) = d.split_once('=').ok_or(format!("--bucket {text}: expected name=size"))?;
                        Ok((name, size.parse::<i64>().map_err(|e| format!("--bucket {text}: {e}"))?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                buckets.push(ShapeBucket::new(dims));
            }
            "--runs" => runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--interval-ms" => interval_ms = value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?,
            "--warmup" => warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--optimize" => optimize = optimize_level(&value()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        model: model.ok_or("--model is required")?,
        recipe: recipe.ok_or("--recipe is required")?,
        out: out.ok_or("--out is required")?,
        runs: runs.max(1),
        seconds,
        interval_ms,
        warmup,
        threads,
        optimize,
        ort,
        dump_outputs,
        cache_dir,
        buckets,
        feed_f16,
        plugin,
        strict,
    })
}

fn optimize_level(text: &str) -> Result<OptimizeLevel, String> {
    Ok(match text {
        "O0" => OptimizeLevel::O0,
        "O1" => OptimizeLevel::O1,
        "O2" => OptimizeLevel::O2,
        "O3" => OptimizeLevel::O3,
        other => return Err(format!("--optimize: unknown level {other} (O0..O3)")),
    })
}

/// One input built from its recipe (bench_schema::recipe): values repeated to fill, a constant, tones (audio) or
/// a file of raw little-endian elements, relative to the recipe (xtask writes images this way).
struct Input {
    name: String,
    element_type: ElementType,
    shape: Vec<i64>,
    data: Vec<u8>,
}

fn build_input(spec: &RecipeInput, recipe_dir: &std::path::Path) -> Result<Input, String> {
    let name = spec.name.clone();
    let element_type = match spec.element_type {
        RecipeType::F32 => ElementType::F32,
        RecipeType::I64 => ElementType::I64,
        RecipeType::I32 => ElementType::I32,
    };
    let count = spec.element_count();
    let values: Vec<f64> = match &spec.source {
        InputSource::File { file } => {
            let data = std::fs::read(recipe_dir.join(file)).map_err(|e| format!("{name}: {file}: {e}"))?;
            return Ok(Input { name, element_type, shape: spec.shape.clone(), data });
        }
        InputSource::Image { .. } => return Err(format!("{name}: image inputs are made into files by xtask")),
        InputSource::Values { values } => {
            let list: Vec<f64> = values.iter().filter_map(serde_json::Number::as_f64).collect();
            if list.is_empty() {
                return Err(format!("{name}: the recipe's values are empty"));
            }
            (0..count).map(|i| list[i % list.len()]).collect()
        }
        InputSource::Fill { fill } => vec![fill.as_f64().unwrap_or(0.0); count],
        InputSource::Tones { tones, sample_rate } => {
            let rate = f64::from(sample_rate.unwrap_or(16000));
            (0..count)
                .map(|i| {
                    tones
                        .iter()
                        .map(|[hz, amplitude]| amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / rate).sin())
                        .sum()
                })
                .collect()
        }
    };
    let data = match element_type {
        ElementType::F32 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        ElementType::I64 => values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
    };
    Ok(Input { name, element_type, shape: spec.shape.clone(), data })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Milliseconds since xtask spawned this process (`OPENAUTOGLM_SPAWNED_UNIX_NS`, wall clock, which every runner
/// reads alike), or `None` when not told.
fn since_spawn_ms() -> Option<f64> {
    let spawned: u128 = std::env::var("OPENAUTOGLM_SPAWNED_UNIX_NS").ok()?.parse().ok()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some(now.checked_sub(spawned)? as f64 / 1e6)
}

/// Calls `call` until `done` says stop, `interval_ms` apart (start to start; back to back when 0), timing each
/// call alone; returns the samples and the process CPU time per call in ms.
fn timed_calls(
    interval_ms: f64,
    mut done: impl FnMut(usize) -> bool,
    mut call: impl FnMut(usize) -> Result<(), String>,
) -> Result<(Vec<f64>, Option<f64>), String> {
    let cpu_before = openautoglm::metrics::process_cpu_time();
    let started = Instant::now();
    let mut samples = Vec::new();
    while !done(samples.len()) {
        if interval_ms > 0.0 {
            // Each call one interval after the one before, the first one too (after whatever ran before it).
            let due = started + std::time::Duration::from_secs_f64(interval_ms * (samples.len() + 1) as f64 / 1e3);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let t = Instant::now();
        call(samples.len())?;
        samples.push(ms(t));
    }
    let cpu = match (cpu_before, openautoglm::metrics::process_cpu_time()) {
        (Some(before), Some(after)) if !samples.is_empty() => {
            Some((after - before).as_secs_f64() * 1e3 / samples.len() as f64)
        }
        _ => None,
    };
    Ok((samples, cpu))
}

fn progress(done: usize, total: usize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "progress {done} {total}");
    let _ = out.flush();
}

/// The inputs a recipe file describes (paths in it are relative to it).
fn load_recipe(path: &std::path::Path) -> Result<Vec<Input>, String> {
    let recipe: Vec<RecipeInput> =
        serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
            .map_err(|e| format!("recipe {}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    recipe.iter().map(|spec| build_input(spec, dir)).collect()
}

fn run(args: Args) -> Result<Measured, String> {
    let inputs = load_recipe(&args.recipe)?;
    let before = memory();

    let t = Instant::now();
    let runtime = Runtime::init(args.ort.as_deref()).map_err(|e| e.to_string())?;
    let runtime_init_ms = ms(t);
    let after_runtime = memory();

    let config = config_for(&args);
    let t = Instant::now();
    let engine = Engine::from_file(&args.model, config).map_err(|e| e.to_string())?;
    let session_create_ms = ms(t);
    let after_load = memory();

    let inputs = if args.feed_f16 { to_f16(inputs, &engine) } else { inputs };
    let views: Vec<(&str, TensorRef<'_>)> =
        inputs.iter().map(|i| (i.name.as_str(), TensorRef::from_bytes(i.element_type, &i.shape, &i.data))).collect();
    let total = 1 + args.warmup + args.runs;
    let t = Instant::now();
    let first = engine.run(&views).map_err(|e| e.to_string())?;
    let first_inference_ms = ms(t);
    let cold_start_ms = since_spawn_ms();
    progress(1, total);
    if let Some(path) = &args.dump_outputs {
        let dumped = serde_json::to_string(&dumped_outputs(&first)).map_err(|e| e.to_string())?;
        std::fs::write(path, dumped).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let (warmup, _) = timed_calls(
        args.interval_ms,
        |done| done >= args.warmup,
        |i| {
            engine.run(&views).map_err(|e| e.to_string())?;
            progress(2 + i, total);
            Ok(())
        },
    )?;
    let started = Instant::now();
    let (samples, cpu_ms_per_run) = timed_calls(
        args.interval_ms,
        |done| done >= args.runs && started.elapsed().as_secs_f64() >= args.seconds,
        |i| {
            engine.run(&views).map_err(|e| e.to_string())?;
            if i % 10 == 9 || i + 1 == args.runs {
                progress((2 + args.warmup + i).min(total), total);
            }
            Ok(())
        },
    )?;
    let end = memory();
    let steady = Summary::of(&samples).expect("at least one run");
    let buckets = engine.shape_bucket_stats();
    // Placement from a separate profiling session, after the measurements so it cannot disturb them.
    let placement = Engine::profile_once(&args.model, config_for(&args), &views)
        .map(|p| placement_measured(&p))
        .unwrap_or_else(|e| Placement { error: Some(e.to_string()), ..Placement::default() });
    let mb = |bytes: Option<u64>| bytes.map(|b| b as f64 / (1024.0 * 1024.0));
    let report = engine.accelerators();
    Ok(Measured {
        ort_version: Some(runtime.ort_version),
        threads: u32::try_from(args.threads).ok(),
        optimize_level: Some(format!("{:?}", args.optimize)),
        accelerator: Some(config_for(&args).accelerators[0].short_name().to_owned()),
        accelerators: Some(AcceleratorsUsed {
            active: report.active.clone(),
            skipped: report
                .skipped
                .iter()
                .map(|s| SkippedAccelerator { provider: s.provider.clone(), reason: s.reason.clone() })
                .collect(),
        }),
        telemetry_enabled: Some(Runtime::telemetry_enabled()),
        compile_cache: Some(format!("{:?}", engine.compile_cache())),
        shape_buckets: Some(ShapeBuckets {
            bucket_runs: buckets.bucket_runs.iter().map(|&n| n as u64).collect(),
            dynamic_runs: buckets.dynamic_runs as u64,
        }),
        fed_f16: Some(args.feed_f16),
        metrics: Metrics {
            runtime_init_ms: Some(runtime_init_ms),
            session_create_ms: Some(session_create_ms),
            first_inference_ms: Some(first_inference_ms),
            cold_start_ms,
            cpu_ms_per_run,
            interval_ms: (args.interval_ms > 0.0).then_some(args.interval_ms),
            warmup_runs: Some(args.warmup as u64),
            warmup_mean_ms: Summary::of(&warmup).map(|s| s.mean),
            runs: Some(steady.count as u64),
            mean_ms: Some(steady.mean),
            std_ms: Some(steady.std),
            min_ms: Some(steady.min),
            max_ms: Some(steady.max),
            p50_ms: Some(steady.p50),
            p90_ms: Some(steady.p90),
            p95_ms: Some(steady.p95),
            p99_ms: Some(steady.p99),
            rss_start_mb: mb(before.map(|m| m.rss)),
            rss_after_runtime_mb: mb(after_runtime.map(|m| m.rss)),
            rss_after_load_mb: mb(after_load.map(|m| m.rss)),
            peak_rss_mb: mb(end.map(|m| m.peak_rss)),
            alloc_bytes_per_run: None,
        },
        placement: Some(placement),
        outputs: None,
        samples_ms: samples,
    })
}

fn config_for(args: &Args) -> EngineConfig {
    let mut config = EngineConfig::default()
        .with_threads(args.threads)
        .with_optimize_level(args.optimize)
        .with_shape_buckets(args.buckets.clone())
        .with_strict(args.strict);
    if let Some(library) = &args.plugin {
        config = config.with_accelerators(vec![Accelerator::openvino(library, DeviceKind::Cpu)]);
    }
    match &args.cache_dir {
        Some(dir) => config.with_cache_dir(dir),
        None => config,
    }
}

/// Float32 inputs the model declares as float16, converted before timing: the caller that already has f16 data.
fn to_f16(inputs: Vec<Input>, engine: &Engine) -> Vec<Input> {
    inputs
        .into_iter()
        .map(|input| {
            let declared = engine.info().input(&input.name).and_then(|i| i.element_type);
            if input.element_type != ElementType::F32 || declared != Some(ElementType::F16) {
                return input;
            }
            let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&input.data);
            let mut halves = vec![f16::ZERO; floats.len()];
            halves.convert_from_f32_slice(&floats);
            Input { data: bytemuck::cast_slice(&halves).to_vec(), element_type: ElementType::F16, ..input }
        })
        .collect()
}

/// The result file's placement: nodes per provider, partitions in all, and the engine's warnings.
fn placement_measured(placement: &openautoglm::Placement) -> Placement {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Placement {
        error: None,
        nodes_by_provider: Some(placement.providers.iter().map(|p| (p.provider.clone(), count(p.nodes))).collect()),
        partitions: Some(placement.providers.iter().map(|p| count(p.partitions)).sum()),
        providers: placement
            .providers
            .iter()
            .map(|p| ProviderPlacement {
                provider: p.provider.clone(),
                nodes: count(p.nodes),
                partitions: count(p.partitions),
            })
            .collect(),
        warnings: placement.warnings.clone(),
    }
}

/// Outputs as numbers (f32, i64 and i32 outputs; others with no values), keyed by name. Non-finite values are
/// written as `null`.
fn dumped_outputs(outputs: &[openautoglm::Tensor]) -> DumpedOutputs {
    outputs
        .iter()
        .map(|t| {
            let values: Vec<f64> = match t.element_type {
                ElementType::F32 => t.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
                ElementType::I64 => t.to_vec::<i64>().unwrap_or_default().into_iter().map(|v| v as f64).collect(),
                ElementType::I32 => t.to_vec::<i32>().unwrap_or_default().into_iter().map(f64::from).collect(),
                _ => Vec::new(),
            };
            let output = DumpedOutput {
                element_type: t.element_type.name().to_owned(),
                shape: t.shape.clone(),
                values: values.into_iter().map(|v| v.is_finite().then_some(v)).collect(),
            };
            (t.name.clone(), output)
        })
        .collect()
}

/// `--generate`: time to first token, tokens/s and per-token percentiles, per run.
fn run_generate() -> Result<GenerationOutput, String> {
    use openautoglm::llm::{ChatMessage, GenerateOptions, Llm};
    let mut args = std::env::args().skip(1).filter(|a| a != "--generate");
    let (mut dir, mut variant, mut question, mut ort) = (None, None::<String>, String::new(), None);
    let (mut tokens, mut runs, mut threads, mut out, mut spinning) = (128i32, 3usize, 0i32, None, None);
    let (mut optimize, mut full_prefill) = (OptimizeLevel::O3, false);
    let (mut draft, mut draft_tokens) = (None::<String>, 0i32);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--llm" => dir = Some(PathBuf::from(value()?)),
            // The whole prompt in one run with every position's logits, as prefill ran before (the baseline).
            "--full-prefill" => full_prefill = true,
            // `auto`, or the decoder to run by its variant name (`int4` is that file, not whatever passed).
            "--precision" => match value()?.as_str() {
                "auto" => variant = None,
                name => variant = Some(name.to_owned()),
            },
            "--question" => question = value()?,
            "--tokens" => tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--runs" => runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--spinning" => spinning = Some(value()? == "on"),
            "--optimize" => optimize = optimize_level(&value()?)?,
            // Speculative decoding: a draft decoder of the same directory by variant name (else prompt lookup),
            // and the most tokens drafted per pass (0: off).
            "--draft" => draft = Some(value()?),
            "--draft-tokens" => draft_tokens = value()?.parse().map_err(|e| format!("--draft-tokens: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (dir, out) = (dir.ok_or("--llm is required")?, out.ok_or("--out is required")?);
    Runtime::init(ort.as_deref()).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut config = EngineConfig::default().with_threads(threads).with_optimize_level(optimize);
    config.spinning = spinning;
    let llm = match &variant {
        Some(name) => Llm::open_variant(&dir, name, config.clone()),
        None => Llm::open(&dir, config.clone()),
    }
    .map_err(|e| e.to_string())?;
    let llm = match &draft {
        Some(name) => {
            let draft = Llm::open_variant(&dir, name, config).map_err(|e| e.to_string())?;
            llm.with_draft(&draft).map_err(|e| e.to_string())?
        }
        None => llm,
    };
    if full_prefill {
        llm.set_all_logits(true);
        llm.set_prefill_chunk(usize::MAX);
    }
    let load_ms = ms(t);
    let rss_after_load_mb = openautoglm::metrics::memory().map(|m| m.rss as f64 / (1024.0 * 1024.0));
    let messages = [ChatMessage::new("user", &question)];
    let options = GenerateOptions {
        max_tokens: tokens,
        min_tokens: tokens,
        max_draft_tokens: draft_tokens,
        ..GenerateOptions::default()
    };
    let mut results = Vec::new();
    // One untimed request first, as onnxruntime-genai's model_benchmark does (its --warmup default).
    for run in 0..=runs {
        let mut generation = llm.chat(&messages, options.clone()).map_err(|e| e.to_string())?;
        for piece in generation.by_ref() {
            piece.map_err(|e| e.to_string())?;
        }
        if run == 0 {
            continue;
        }
        let m = generation.metrics();
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        results.push(GenerationRun {
            prompt_tokens: count(m.prompt_tokens.into()),
            generated_tokens: count(m.generated_tokens.into()),
            tokens: generation.tokens().to_vec(),
            time_to_first_token_ms: m.time_to_first_token_ms,
            tokens_per_second: m.tokens_per_second,
            token_p50_ms: m.token_p50_ms,
            token_p95_ms: m.token_p95_ms,
            peak_rss_mb: Some(m.process_peak_rss_mb),
            request_rss_rise_mb: Some(m.request_rss_rise_mb),
            draft_tokens: count(m.draft_tokens.into()),
            accepted_draft_tokens: count(m.accepted_draft_tokens.into()),
            decode_passes: count(m.decode_passes.into()),
        });
        progress(run, runs);
    }
    let output = GenerationOutput {
        runner: "rust".into(),
        file: Some(llm.file().to_owned()),
        load_ms: Some(load_ms),
        rss_after_load_mb,
        runs: results,
    };
    write_json(&out, &output)?;
    Ok(output)
}

/// Writes a result as pretty JSON.
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    if std::env::args().any(|a| a == "--scheduling") {
        if let Err(e) = scheduling::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--cascade") {
        if let Err(e) = cascade::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--chat") {
        if let Err(e) = chat::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--sustained") {
        if let Err(e) = sustained::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--fetch") {
        if let Err(e) = fetch::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--verdict") {
        if let Err(e) = verdict::run() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::args().any(|a| a == "--generate") {
        if let Err(e) = run_generate() {
            eprintln!("openautoglm-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let result = parse_args().and_then(|args| {
        let out = args.out.clone();
        write_json(&out, &run(args)?)
    });
    if let Err(e) = result {
        eprintln!("openautoglm-bench: {e}");
        std::process::exit(1);
    }
}
