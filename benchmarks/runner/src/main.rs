//! The benchmark runner: built for the device, given a model and an input recipe, writes one JSON result.
//! `cargo xtask bench` builds, deploys and runs it, and turns the result into a table.
//!
//! openautoglm-bench --model M.onnx --recipe INPUTS.json --out RESULT.json [--runs 200] [--warmup 10]
//!                   [--threads N] [--optimize O3] [--ort libonnxruntime.so] [--dump-outputs OUTPUTS.json]
//!                   [--seconds S]   (duration mode: timed runs until S seconds have passed, at least --runs)
//!                   [--cache-dir DIR] (compile cache)  [--bucket name=size[,name=size...]] (repeatable)
//!                   [--feed-f16]  (float32 recipe inputs converted to float16 before timing, for f16-input models)
//!                   [--plugin LIB]  (OpenVINO's plugin execution provider, CPU device, leads; `--strict` refuses
//!                   CPU fallback)
//! Prints `progress DONE TOTAL` lines on stdout while it runs.
//!
//! openautoglm-bench --scheduling ...  (see `scheduling`): many requests on one process.
//! openautoglm-bench --cascade ...  (see `cascade`): a recognizer cascade over labelled text lines.
//! openautoglm-bench --verdict ...  (see `verdict`): outputs on every input of a held-out set, for verdicts.
//!
//! openautoglm-bench --generate --llm DIR --precision int4 --question Q --tokens 128 --runs 3 --threads N --out R.json
//!   times text generation: greedy, a fixed output length, the chat template applied to Q (the same protocol as
//!   benchmarks/peers/genai_generate.py).

mod cascade;
mod llm_gaps;
mod scheduling;
mod verdict;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use half::f16;
use half::slice::HalfFloatSliceExt;
use openautoglm::metrics::{Summary, memory};
use openautoglm::{
    Accelerator, DeviceKind, ElementType, Engine, EngineConfig, OptimizeLevel, Placement, Runtime, ShapeBucket,
    TensorRef,
};
use serde_json::{Value, json};

struct Args {
    model: PathBuf,
    recipe: PathBuf,
    out: PathBuf,
    runs: usize,
    /// Duration mode: keep running until this many seconds of timed runs have passed.
    seconds: f64,
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

/// One input built from its recipe: `values` (repeated to fill), `fill` (a constant), `tones` (audio) or `file`
/// (raw little-endian elements, relative to the recipe; xtask writes images this way).
struct Input {
    name: String,
    element_type: ElementType,
    shape: Vec<i64>,
    data: Vec<u8>,
}

fn build_input(spec: &Value, recipe_dir: &std::path::Path) -> Result<Input, String> {
    let name = spec["name"].as_str().ok_or("recipe input without a name")?.to_owned();
    let element_type = match spec["type"].as_str() {
        Some("f32") => ElementType::F32,
        Some("i64") => ElementType::I64,
        Some("i32") => ElementType::I32,
        other => return Err(format!("{name}: unsupported recipe type {other:?}")),
    };
    let shape: Vec<i64> =
        spec["shape"].as_array().ok_or(format!("{name}: no shape"))?.iter().filter_map(Value::as_i64).collect();
    let count = shape.iter().product::<i64>().max(0) as usize;
    if let Some(file) = spec["file"].as_str() {
        let data = std::fs::read(recipe_dir.join(file)).map_err(|e| format!("{name}: {file}: {e}"))?;
        return Ok(Input { name, element_type, shape, data });
    }
    let values: Vec<f64> = if let Some(list) = spec["values"].as_array() {
        let list: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
        (0..count).map(|i| list[i % list.len().max(1)]).collect()
    } else if let Some(fill) = spec["fill"].as_f64() {
        vec![fill; count]
    } else if let Some(tones) = spec["tones"].as_array() {
        let sr = spec["sample_rate"].as_f64().unwrap_or(16000.0);
        (0..count)
            .map(|i| {
                tones
                    .iter()
                    .map(|t| {
                        t[1].as_f64().unwrap_or(0.0)
                            * (2.0 * std::f64::consts::PI * t[0].as_f64().unwrap_or(0.0) * i as f64 / sr).sin()
                    })
                    .sum()
            })
            .collect()
    } else {
        return Err(format!("{name}: the recipe needs values, fill or tones"));
    };
    let data = match element_type {
        ElementType::F32 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        ElementType::I64 => values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
    };
    Ok(Input { name, element_type, shape, data })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn progress(done: usize, total: usize) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "progress {done} {total}");
    let _ = out.flush();
}

/// The inputs a recipe file describes (paths in it are relative to it).
fn load_recipe(path: &std::path::Path) -> Result<Vec<Input>, String> {
    let recipe: Value =
        serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
            .map_err(|e| format!("recipe: {e}"))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    recipe.as_array().ok_or("the recipe is a list of inputs")?.iter().map(|spec| build_input(spec, dir)).collect()
}

fn run(args: Args) -> Result<Value, String> {
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
    progress(1, total);
    if let Some(path) = &args.dump_outputs {
        std::fs::write(path, outputs_json(&first).to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    }

    let mut warmup = Vec::with_capacity(args.warmup);
    for i in 0..args.warmup {
        let t = Instant::now();
        engine.run(&views).map_err(|e| e.to_string())?;
        warmup.push(ms(t));
        progress(2 + i, total);
    }
    let mut samples = Vec::with_capacity(args.runs);
    let started = Instant::now();
    let mut i = 0;
    while i < args.runs || started.elapsed().as_secs_f64() < args.seconds {
        let t = Instant::now();
        engine.run(&views).map_err(|e| e.to_string())?;
        samples.push(ms(t));
        if i % 10 == 9 || i + 1 == args.runs {
            progress((2 + args.warmup + i).min(total), total);
        }
        i += 1;
    }
    let end = memory();
    let steady = Summary::of(&samples).expect("at least one run");
    let buckets = engine.shape_bucket_stats();
    // Placement from a separate profiling session, after the measurements so it cannot disturb them.
    let placement = Engine::profile_once(&args.model, config_for(&args), &views).map(|p| placement_json(&p));
    let mb = |bytes: Option<u64>| bytes.map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(json!({
        "ort_version": runtime.ort_version,
        "threads": args.threads,
        "optimize_level": format!("{:?}", args.optimize),
        "accelerator": config_for(&args).accelerators[0].short_name(),
        "accelerators": {
            "active": engine.accelerators().active,
            "skipped": engine.accelerators().skipped.iter()
                .map(|s| json!({ "provider": s.provider, "reason": s.reason })).collect::<Vec<_>>(),
        },
        "telemetry_enabled": Runtime::telemetry_enabled(),
        "compile_cache": format!("{:?}", engine.compile_cache()),
        "shape_buckets": { "bucket_runs": buckets.bucket_runs, "dynamic_runs": buckets.dynamic_runs },
        "fed_f16": args.feed_f16,
        "metrics": {
            "runtime_init_ms": runtime_init_ms,
            "session_create_ms": session_create_ms,
            "first_inference_ms": first_inference_ms,
            "warmup_runs": args.warmup,
            "warmup_mean_ms": Summary::of(&warmup).map(|s| s.mean),
            "runs": steady.count,
            "mean_ms": steady.mean, "std_ms": steady.std, "min_ms": steady.min, "max_ms": steady.max,
            "p50_ms": steady.p50, "p90_ms": steady.p90, "p95_ms": steady.p95, "p99_ms": steady.p99,
            "rss_start_mb": mb(before.map(|m| m.rss)),
            "rss_after_runtime_mb": mb(after_runtime.map(|m| m.rss)),
            "rss_after_load_mb": mb(after_load.map(|m| m.rss)),
            "peak_rss_mb": mb(end.map(|m| m.peak_rss)),
        },
        "placement": placement.unwrap_or_else(|e| json!({ "error": e.to_string() })),
        "samples_ms": samples,
    }))
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
fn placement_json(placement: &Placement) -> Value {
    let nodes: serde_json::Map<String, Value> =
        placement.providers.iter().map(|p| (p.provider.clone(), json!(p.nodes))).collect();
    let partitions: i32 = placement.providers.iter().map(|p| p.partitions).sum();
    let providers: Vec<Value> = placement
        .providers
        .iter()
        .map(|p| json!({ "provider": p.provider, "nodes": p.nodes, "partitions": p.partitions }))
        .collect();
    json!({ "nodes_by_provider": nodes, "partitions": partitions, "providers": providers, "warnings": placement.warnings })
}

/// Outputs as JSON numbers (f32 outputs; other types as their values), keyed by name.
fn outputs_json(outputs: &[openautoglm::Tensor]) -> Value {
    let mut map = serde_json::Map::new();
    for t in outputs {
        let values: Vec<f64> = match t.element_type {
            ElementType::F32 => t.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
            ElementType::I64 => t.to_vec::<i64>().unwrap_or_default().into_iter().map(|v| v as f64).collect(),
            ElementType::I32 => t.to_vec::<i32>().unwrap_or_default().into_iter().map(f64::from).collect(),
            _ => Vec::new(),
        };
        map.insert(t.name.clone(), json!({ "type": t.element_type.name(), "shape": t.shape, "values": values }));
    }
    Value::Object(map)
}

/// `--generate`: time to first token, tokens/s and per-token percentiles, per run.
fn run_generate() -> Result<Value, String> {
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
        results.push(json!({
            "prompt_tokens": m.prompt_tokens, "generated_tokens": m.generated_tokens,
            "tokens": generation.tokens(),
            "time_to_first_token_ms": m.time_to_first_token_ms, "tokens_per_second": m.tokens_per_second,
            "token_p50_ms": m.token_p50_ms, "token_p95_ms": m.token_p95_ms, "peak_rss_mb": m.process_peak_rss_mb, "request_rss_rise_mb": m.request_rss_rise_mb,
            "draft_tokens": m.draft_tokens, "accepted_draft_tokens": m.accepted_draft_tokens, "decode_passes": m.decode_passes,
        }));
        progress(run, runs);
    }
    let value = json!({ "runner": "rust", "file": llm.file(), "load_ms": load_ms, "rss_after_load_mb": rss_after_load_mb, "runs": results });
    std::fs::write(&out, serde_json::to_string_pretty(&value).expect("json"))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(value)
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
        let value = run(args)?;
        std::fs::write(&out, serde_json::to_string_pretty(&value).expect("json"))
            .map_err(|e| format!("{}: {e}", out.display()))
    });
    if let Err(e) = result {
        eprintln!("openautoglm-bench: {e}");
        std::process::exit(1);
    }
}
