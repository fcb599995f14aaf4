//! `cargo xtask bench`: real models benchmarked on this machine or a device. Builds the benchmark runner (release),
//! runs it with the model's input recipe from benchmarks/models.json, prints a table, and with `--json FILE` writes
//! the result (layout: benchmarks/README.md). `--vs python-ort,ort-java,kotlin,swift` runs peers and our own layers
//! on the same model, threads and inputs, interleaved in rounds, as ratios over the Rust core; `--suite standard`
//! runs every model in every precision variant and writes a report; `--device` deploys to qemu, phones, simulators.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use openautoglm::bench::Summary;
use serde_json::{Value, json};

use crate::device::{self, Device, RunArgs};
use crate::experiments::{self, Setup};
use crate::swift::{STAGE, Stage};
use crate::{bindgen, cache, cmd, models, report};

/// Device outputs must match the host's within |device - host| <= atol + rtol * |host|: float kernels differ in
/// summation order and vector width between x86-64 and ARM. FP16 models get fp16's own resolution (ARM computes in
/// fp16 where x86 widens to fp32), INT8 ones about one quantization step (x86 and ARM integer kernels round and
/// saturate differently).
fn output_tolerance(precision: &str) -> (f64, f64) {
    match precision {
        "fp16" => (5e-2, 5e-2),
        p if p.starts_with("int8") => (1.5e-1, 5e-2),
        _ => (1e-4, 1e-3),
    }
}

/// Version of the result JSON layout (benchmarks/README.md documents it).
const SCHEMA_VERSION: u32 = 1;

#[derive(clap::Args)]
pub struct Args {
    /// Model id from benchmarks/models.json (`cargo xtask models list`).
    /// (default: minilm-l6-int8; with --generate: smollm2)
    #[arg(long)]
    model: Option<String>,
    /// Run a suite instead of one model: `standard` is every real model of the manifest in every precision
    /// variant (made with `models prepare` when missing), with a result file and a report; `engine` measures the
    /// engine's own choices in pairs (compile cache, shape buckets, float16 I/O conversion).
    #[arg(long)]
    suite: Option<Suite>,
    /// With --suite: only these models.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Timed runs after warmup, per runner and round (default 200; 30 in a suite).
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs before the timed ones; the first inference is reported apart (default 10; 5 in a suite).
    #[arg(long)]
    warmup: Option<usize>,
    /// Duration mode: each runner keeps timing runs until this many seconds have passed (at least --runs).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// Seconds to rest between runner invocations, so heat from one does not slow the next.
    #[arg(long, default_value_t = 0.0)]
    cooldown: f64,
    /// Intra-op threads (default: every core of this machine).
    #[arg(long)]
    threads: Option<u32>,
    /// Precision variant: native (the manifest's file), or fp32, fp16, int8-dynamic, int8-qdq, fp32-ort as made by
    /// `cargo xtask models prepare`.
    #[arg(long, default_value = "native")]
    precision: String,
    /// Graph optimization level, O0..O3.
    #[arg(long, default_value = "O3")]
    optimize: String,
    /// Where to run: host, qemu-arm64 (emulated ARM64 Linux; outputs checked against the host's),
    /// android[:SERIAL] (adb), ios-sim[:UDID] (simctl).
    #[arg(long, default_value = "host")]
    device: Device,
    /// Also run these on the same model, threads and inputs and compare (host only): python-ort (the onnxruntime
    /// Python package) and ort-java (ONNX Runtime's Java API), the alternatives a user would pick, over the same
    /// ONNX Runtime library; kotlin and swift, our own layers over the same core.
    #[arg(long, value_delimiter = ',')]
    vs: Vec<Peer>,
    /// Interleaved rounds (A B A B ...) when comparing runners or running a suite, so machine drift hits every
    /// configuration alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Time text generation instead (model: an LLM such as `smollm2`; precisions: a comma list, default all made;
    /// `--vs genai` runs onnxruntime-genai on the same files).
    #[arg(long)]
    generate: bool,
    /// With --generate: output tokens per request (fixed: end-of-sequence is held off until then).
    #[arg(long, default_value_t = 128)]
    tokens: u32,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Standard,
    Engine,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Standard => "standard",
            Suite::Engine => "engine",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    PythonOrt,
    OrtJava,
    Kotlin,
    Swift,
    /// onnxruntime-genai (with --generate).
    Genai,
}

/// What every runner is asked to do: the same protocol as core/src/bin/openautoglm-bench.rs.
#[derive(Clone)]
struct Job {
    model: PathBuf,
    recipe: PathBuf,
    ort: PathBuf,
    runs: usize,
    warmup: usize,
    threads: u32,
    optimize: String,
    seconds: f64,
    /// Extra flags for the Rust runner (an engine-suite setup).
    flags: Vec<String>,
}

impl Job {
    fn args(&self, model: &Path, recipe: &Path, ort: &Path, out: &Path) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, value) in [
            ("--model", model.display().to_string()),
            ("--recipe", recipe.display().to_string()),
            ("--ort", ort.display().to_string()),
            ("--out", out.display().to_string()),
            ("--runs", self.runs.to_string()),
            ("--warmup", self.warmup.to_string()),
            ("--threads", self.threads.to_string()),
            ("--optimize", self.optimize.clone()),
            ("--seconds", self.seconds.to_string()),
        ] {
            args.push(flag.to_owned());
            args.push(value);
        }
        args
    }
}

/// One way of running the job: the Rust core directly, or through a language layer.
enum Runner {
    Rust {
        binary: PathBuf,
    },
    PythonOrt {
        python: PathBuf,
    },
    /// ONNX Runtime's Java API; `native_dir` holds its JNI glue next to the same libonnxruntime.so as ours.
    OrtJava {
        classpath: String,
        native_dir: PathBuf,
    },
    Kotlin {
        classpath: String,
        lib_dir: PathBuf,
    },
    Swift {
        stage: Stage,
    },
}

impl Runner {
    fn name(&self) -> &'static str {
        match self {
            Runner::Rust { .. } => "rust",
            Runner::PythonOrt { .. } => "python-ort",
            Runner::OrtJava { .. } => "ort-java",
            Runner::Kotlin { .. } => "kotlin",
            Runner::Swift { .. } => "swift",
        }
    }

    /// Runs the job once; `progress(done)` is told how many runs finished when the runner reports it.
    fn run(&self, job: &Job, work: &Path, progress: &dyn Fn(u64)) -> Result<Value> {
        let out = work.join(format!("{}.json", self.name()));
        let _ = fs::remove_file(&out);
        match self {
            Runner::Rust { binary } => {
                let mut child = Command::new(binary)
                    .args(job.args(&job.model, &job.recipe, &job.ort, &out))
                    .args(&job.flags)
                    .stdout(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("cannot run {}", binary.display()))?;
                for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
                    if let Some(done) = line?.strip_prefix("progress ").and_then(|r| r.split(' ').next()?.parse().ok())
                    {
                        progress(done);
                    }
                }
                if !child.wait()?.success() {
                    bail!("the Rust benchmark runner failed");
                }
            }
            Runner::PythonOrt { python } => {
                let script = cmd::repo_root().join("benchmarks/peers/python_ort.py");
                cmd::capture(Command::new(python).arg(script).args(job.args(&job.model, &job.recipe, &job.ort, &out)))?;
            }
            Runner::OrtJava { classpath, native_dir } => {
                cmd::capture(
                    Command::new("java")
                        .arg(format!("-Donnxruntime.native.path={}", native_dir.display()))
                        .args(["-cp", classpath, "ai.openautoglm.bench.OrtJavaBenchKt"])
                        .args(job.args(&job.model, &job.recipe, &job.ort, &out)),
                )?;
            }
            Runner::Kotlin { classpath, lib_dir } => {
                cmd::capture(
                    Command::new("java")
                        .arg(format!("-Djna.library.path={}", lib_dir.display()))
                        .args(["-cp", classpath, "ai.openautoglm.bench.BenchKt"])
                        .args(job.args(&job.model, &job.recipe, &job.ort, &out))
                        .env("LD_LIBRARY_PATH", lib_dir),
                )?;
            }
            Runner::Swift { stage } => {
                let inside = |name: &str| PathBuf::from(format!("{STAGE}/bench/{name}"));
                let model_name = format!("model.{}", job.model.extension().and_then(|e| e.to_str()).unwrap_or("onnx"));
                fs::copy(&job.model, stage.host_path(&format!("{STAGE}/bench/{model_name}")))?;
                fs::copy(&job.recipe, stage.host_path(&format!("{STAGE}/bench/recipe.json")))?;
                let inputs = job.recipe.with_file_name("inputs");
                if inputs.exists() {
                    cmd::run(
                        Command::new("cp")
                            .args(["-a", "-T"])
                            .arg(&inputs)
                            .arg(stage.host_path(&format!("{STAGE}/bench/inputs"))),
                    )?;
                }
                let args = job.args(
                    &inside(&model_name),
                    &inside("recipe.json"),
                    &PathBuf::from(format!("{STAGE}/lib/libonnxruntime.so")),
                    &inside("swift.json"),
                );
                let result = stage.sh(&format!(".build/release/OpenAutoGLMBench {}", args.join(" ")))?;
                if !result.status.success() {
                    bail!("the Swift benchmark runner failed:\n{}", String::from_utf8_lossy(&result.stderr));
                }
                fs::copy(stage.host_path(&format!("{STAGE}/bench/swift.json")), &out)?;
            }
        }
        progress((1 + job.warmup + job.runs) as u64);
        Ok(serde_json::from_str(&fs::read_to_string(&out)?)?)
    }
}

/// Builds the Rust benchmark runner (release, for this machine) and returns its path.
pub fn build_rust_runner() -> Result<PathBuf> {
    let spinner = cache::spinner("building the benchmark runner (release)".into());
    let built = cmd::capture(Command::new(env!("CARGO")).current_dir(cmd::repo_root()).args([
        "build",
        "--release",
        "-p",
        "openautoglm",
        "--features",
        "bench-cli",
        "--bin",
        "openautoglm-bench",
    ]));
    spinner.finish_and_clear();
    built?;
    Ok(bindgen::target_dir().join("release/openautoglm-bench"))
}

fn build_runners(peers: &[Peer], ort: &Path) -> Result<Vec<Runner>> {
    let root = cmd::repo_root();
    let cargo = env!("CARGO");
    let mut runners = vec![Runner::Rust { binary: build_rust_runner()? }];
    if peers.contains(&Peer::PythonOrt) {
        runners.push(Runner::PythonOrt { python: crate::python::python()? });
    }
    if !peers.iter().any(|p| matches!(p, Peer::Kotlin | Peer::Swift | Peer::OrtJava)) {
        return Ok(runners);
    }

    let spinner = cache::spinner("building the FFI library (release) and the bindings".into());
    let built = bindgen::generate().and_then(|_| {
        cmd::capture(Command::new(cargo).current_dir(root).args(["build", "--release", "-p", "openautoglm-ffi"]))
    });
    spinner.finish_and_clear();
    built?;
    let lib_dir = bindgen::target_dir().join("release");
    for peer in peers {
        match peer {
            Peer::PythonOrt | Peer::Genai => {}
            Peer::Kotlin => runners.push(Runner::Kotlin { classpath: jvm_classpath()?, lib_dir: lib_dir.clone() }),
            Peer::OrtJava => {
                let classpath = jvm_classpath()?;
                runners.push(Runner::OrtJava { classpath, native_dir: ort_java_natives()?.0 });
            }
            Peer::Swift => {
                let spinner = cache::spinner("compiling the Swift runner (swift build -c release)".into());
                let library = lib_dir.join("libopenautoglm_ffi.so");
                let staged = Stage::new(&library, ort, &models::models_dir()).and_then(|stage| {
                    let out = stage.sh("swift build -c release --product OpenAutoGLMBench --quiet 2>&1")?;
                    if !out.status.success() {
                        bail!("swift build failed:\n{}", String::from_utf8_lossy(&out.stdout));
                    }
                    Ok(stage)
                });
                spinner.finish_and_clear();
                runners.push(Runner::Swift { stage: staged? });
            }
        }
    }
    Ok(runners)
}

/// A short run on `device` whose outputs must match the host's (used by `cargo xtask test`).
pub fn device_smoke(device: &str, model: &str) -> Result<()> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }
    let parsed = <Wrapper as clap::Parser>::try_parse_from([
        "bench", "--device", device, "--model", model, "--runs", "2", "--warmup", "0",
    ])?;
    run(parsed.args)
}

/// One model at one precision (in the engine suite, in one setup of one experiment).
#[derive(Clone)]
struct Config {
    model: String,
    precision: String,
    setup: Option<(&'static str, Setup)>,
}

impl Config {
    fn label(&self) -> String {
        match &self.setup {
            Some((_, setup)) => format!("{} {} [{}]", self.model, self.precision, setup.label),
            None => format!("{} {}", self.model, self.precision),
        }
    }
}

fn configs(args: &Args) -> Result<Vec<Config>> {
    if args.suite == Some(Suite::Engine) {
        let mut configs = Vec::new();
        for e in experiments::experiments() {
            if !args.models.is_empty() && !args.models.iter().any(|m| m == e.model) {
                continue;
            }
            if e.precision != "native" {
                models::prepared_variants(e.model)?;
            }
            for setup in [e.baseline, e.treatment] {
                configs.push(Config {
                    model: e.model.into(),
                    precision: e.precision.into(),
                    setup: Some((e.name, setup)),
                });
            }
        }
        return Ok(configs);
    }
    let Some(Suite::Standard) = args.suite else {
        let model = args.model.clone().unwrap_or_else(|| "minilm-l6-int8".into());
        return Ok(vec![Config { model, precision: args.precision.clone(), setup: None }]);
    };
    let mut configs = Vec::new();
    for entry in models::manifest()?.models.into_iter().filter(|m| m.package.is_some()) {
        if !args.models.is_empty() && !args.models.contains(&entry.id) {
            continue;
        }
        configs.push(Config { model: entry.id.clone(), precision: "native".into(), setup: None });
        if entry.precision == "fp32" {
            for precision in models::prepared_variants(&entry.id)? {
                if precision != "fp32" {
                    configs.push(Config { model: entry.id.clone(), precision, setup: None });
                }
            }
        }
    }
    if configs.is_empty() {
        bail!("no model matched --models {:?}", args.models);
    }
    Ok(configs)
}

/// ONNX Runtime's Java API brings its own build (its JNI glue is tied to it by ELF symbol versions): its directory
/// and its libonnxruntime.so, which all our runners then use too, so that only the binding layers differ.
fn ort_java_natives() -> Result<(PathBuf, PathBuf)> {
    let classpath = jvm_classpath()?;
    let jar =
        classpath.split(':').find(|p| p.contains("/onnxruntime-1.")).context("no onnxruntime jar on the classpath")?;
    let native_dir = cache::dir().join("ort-java-native");
    for lib in ["libonnxruntime.so", "libonnxruntime4j_jni.so"] {
        let dest = native_dir.join(lib);
        if !dest.exists() {
            cache::extract(Path::new(jar), &format!("ai/onnxruntime/native/linux-x64/{lib}"), &dest, None)?;
        }
    }
    let ort = native_dir.join("libonnxruntime.so");
    Ok((native_dir, ort))
}

/// The compiled Kotlin runners and their dependencies (Maven), built once per process.
fn jvm_classpath() -> Result<String> {
    static CLASSPATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(cp) = CLASSPATH.get() {
        return Ok(cp.clone());
    }
    let spinner = cache::spinner("compiling the JVM runners (Maven)".into());
    let android = cmd::repo_root().join("android");
    let classpath_file = android.join("build/maven/classpath.txt");
    let built =
        cmd::capture(Command::new("mvn").current_dir(&android).args(["-B", "-q", "test-compile"])).and_then(|_| {
            cmd::capture(Command::new("mvn").current_dir(&android).args([
                "-B",
                "-q",
                "dependency:build-classpath",
                &format!("-Dmdep.outputFile={}", classpath_file.display()),
            ]))
        });
    spinner.finish_and_clear();
    built?;
    let classes = android.join("build/maven");
    let cp = format!(
        "{}:{}:{}",
        classes.join("classes").display(),
        classes.join("test-classes").display(),
        fs::read_to_string(&classpath_file)?.trim()
    );
    Ok(CLASSPATH.get_or_init(|| cp).clone())
}

pub fn run(args: Args) -> Result<()> {
    if args.generate {
        let model = args.model.clone().unwrap_or_else(|| "smollm2".into());
        let precisions = if args.precision == "native" {
            Vec::new()
        } else {
            args.precision.split(',').map(str::to_owned).collect()
        };
        return crate::generate::run(crate::generate::GenerateArgs {
            model,
            precisions,
            tokens: args.tokens,
            runs: args.runs.unwrap_or(3),
            rounds: args.rounds.max(1),
            threads: args.threads.unwrap_or(if args.device.emulated() {
                2
            } else {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            }),
            vs_genai: args.vs.contains(&Peer::Genai),
            device: args.device.clone(),
            json: args.json.clone(),
        });
    }
    if args.vs.contains(&Peer::Genai) {
        bail!("--vs genai compares text generation: add --generate");
    }
    let configs = configs(&args)?;
    let suite = args.suite.is_some();
    let results = if args.device == Device::Host {
        measure_on_host(&args, &configs)?
    } else {
        let mut results = Vec::new();
        for config in &configs {
            match measure_on_device(&args, config, !suite) {
                Ok(result) => results.push(result),
                // In a suite one configuration the device cannot run is a finding, not the end of the run.
                Err(e) if suite => {
                    let text = e.to_string();
                    // The runner's own message, not the command line around it.
                    let reason = text
                        .lines()
                        .find_map(|l| l.strip_prefix("openautoglm-bench: "))
                        .unwrap_or_else(|| text.lines().next().unwrap_or(""))
                        .trim()
                        .to_owned();
                    println!("{}: FAILED on {}: {reason}", config.label(), args.device.kind());
                    results.push(json!({
                        "device": { "kind": args.device.kind(), "arch": args.device.arch(), "emulated": args.device.emulated() },
                        "model": { "id": config.model, "precision": config.precision },
                        "error": reason,
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        print_suite(&results);
        results
    };
    if !suite {
        let result = &results[0];
        if let Some(path) = &args.json {
            fs::write(path, serde_json::to_string_pretty(result)?)?;
            println!("wrote {}", path.display());
        }
        return check_device_outputs(&results);
    }
    let suite_name = args.suite.map_or("standard", Suite::name);
    let summary = (args.suite == Some(Suite::Engine)).then(|| experiments::summarize(&results));
    let suite_result = json!({
        "schema": SCHEMA_VERSION,
        "suite": suite_name,
        "device": results[0]["device"],
        "git_commit": git_commit(),
        "experiments": summary,
        "results": results,
    });
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let path = args.json.clone().unwrap_or_else(|| {
        cmd::repo_root().join(format!("benchmarks/results/{suite_name}-{}-{stamp}.json", args.device.kind()))
    });
    fs::create_dir_all(path.parent().expect("parent"))?;
    fs::write(&path, serde_json::to_string_pretty(&suite_result)?)?;
    println!("wrote {}", path.display());
    if let Some(summary) = summary {
        let table = experiments::table(&summary);
        println!("\n{table}");
        let markdown = path.with_extension("md");
        fs::write(
            &markdown,
            format!(
                "# Engine experiments\n\nTreatment over baseline on the metric, median of \
            interleaved rounds (range per round); each run a fresh process.\n\n{table}"
            ),
        )?;
        println!("wrote {}", markdown.display());
        return Ok(());
    }
    let report_dir = path.with_extension("");
    report::write(&[path], &report_dir)?;
    check_device_outputs(&results)
}

/// Fails when a device's outputs differed from the host's (after everything was written).
fn check_device_outputs(results: &[Value]) -> Result<()> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["error"].is_string())
        .map(|r| format!("{} {}", r["model"]["id"], r["model"]["precision"]))
        .collect();
    if !failed.is_empty() {
        println!("could not run on the device (see `error` in the result file): {failed:?}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r["outputs_vs_host"]["match"] == false)
        .map(|r| format!("{} {}", r["model"]["id"], r["model"]["precision"]))
        .collect();
    if !bad.is_empty() {
        bail!("outputs differ from the host's beyond the tolerance: {bad:?}");
    }
    Ok(())
}

/// Every configuration with every runner on this machine, interleaved in rounds.
fn measure_on_host(args: &Args, configs: &[Config]) -> Result<Vec<Value>> {
    let suite = args.suite.is_some();
    let ort = if args.vs.contains(&Peer::OrtJava) {
        if args.vs.contains(&Peer::PythonOrt) {
            bail!("ort-java and python-ort bring different ONNX Runtime builds: compare with them in separate runs");
        }
        ort_java_natives()?.1
    } else {
        cache::host_onnxruntime()?
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if args.suite == Some(Suite::Engine) && !args.vs.is_empty() {
        bail!("the engine suite compares setups of our own engine; run --vs in another run");
    }
    let runners = build_runners(&args.vs, &ort)?;
    let rounds = if args.vs.is_empty() && !suite { 1 } else { args.rounds.max(1) };
    let (runs, warmup) =
        (args.runs.unwrap_or(if suite { 30 } else { 200 }), args.warmup.unwrap_or(if suite { 5 } else { 10 }));

    let work = std::env::temp_dir().join(format!("openautoglm-bench-{}", std::process::id()));
    let mut jobs = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let dir = work.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let mut flags = config.setup.as_ref().map(|(_, s)| s.flags.clone()).unwrap_or_default();
        let compile_cache = config.setup.as_ref().is_some_and(|(_, s)| s.compile_cache);
        if compile_cache {
            flags.extend(["--cache-dir".to_owned(), dir.join("compile-cache").display().to_string()]);
        }
        let job = Job {
            model: models::model_file(&config.model, &config.precision)?,
            recipe: models::materialize_recipe(&config.model, &dir)?,
            ort: ort.clone(),
            runs,
            warmup,
            threads,
            optimize: args.optimize.clone(),
            seconds: args.seconds,
            flags,
        };
        if compile_cache {
            // The first launch fills the cache; every timed launch after it is a second launch.
            let spinner = cache::spinner(format!("{}: first launch, filling the compile cache", config.label()));
            let primed = runners[0].run(&Job { runs: 1, warmup: 0, ..job.clone() }, &dir, &|_| {});
            spinner.finish_and_clear();
            primed?;
        }
        jobs.push(job);
    }

    let per_run = (1 + warmup + runs) as u64;
    let steps = (rounds * configs.len() * runners.len()) as u64;
    let bar = indicatif::ProgressBar::new(per_run * steps).with_style(
        indicatif::ProgressStyle::with_template("{msg:40} [{bar:40}] {pos}/{len} runs {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    // results[config][runner]: one measurement per round.
    let mut results: Vec<Vec<Vec<Value>>> = vec![vec![Vec::new(); runners.len()]; configs.len()];
    let mut step = 0u64;
    for round in 0..rounds {
        for (c, (config, job)) in configs.iter().zip(&jobs).enumerate() {
            for (r, runner) in runners.iter().enumerate() {
                let offset = per_run * step;
                bar.set_message(format!("{} {} {}/{rounds}", config.label(), runner.name(), round + 1));
                bar.set_position(offset);
                let dir = work.join(c.to_string());
                results[c][r].push(runner.run(job, &dir, &|done| bar.set_position(offset + done))?);
                step += 1;
                if args.cooldown > 0.0 {
                    std::thread::sleep(std::time::Duration::from_secs_f64(args.cooldown));
                }
            }
        }
    }
    bar.finish_and_clear();
    let _ = fs::remove_dir_all(&work);

    let mut out = Vec::new();
    for ((config, job), measured) in configs.iter().zip(&jobs).zip(&results) {
        let entry = models::entry(&config.model)?;
        let mut result = result_json(&Device::Host, &entry, &config.precision, &job.model, &measured[0][0])?;
        if rounds > 1 {
            // The Rust runner's samples pooled over rounds; the first round's one-off metrics stay as measured.
            let pooled: Vec<f64> = measured[0].iter().flat_map(samples).collect();
            merge_samples(&mut result, &pooled);
        }
        result["accuracy_vs_fp32"] = models::variant_accuracy(&config.model, &config.precision)?;
        if let Some((experiment, setup)) = &config.setup {
            result["setup"] = json!({ "experiment": experiment, "label": setup.label, "flags": job.flags });
            result["per_round"] = measured[0].iter().map(|m| m["metrics"].clone()).collect();
        }
        if runners.len() > 1 {
            result["comparison"] = compare(&runners, measured);
        }
        if !suite {
            print_table(&result);
            if runners.len() > 1 {
                print_comparison(&result["comparison"]);
            }
        }
        out.push(result);
    }
    if suite {
        print_suite(&out);
    }
    Ok(out)
}

/// Recomputes the steady-state statistics of `result` from `pooled` samples.
fn merge_samples(result: &mut Value, pooled: &[f64]) {
    if let Some(s) = Summary::of(pooled) {
        let m = &mut result["metrics"];
        m["runs"] = json!(s.count);
        for (key, value) in [
            ("mean_ms", s.mean),
            ("std_ms", s.std),
            ("min_ms", s.min),
            ("max_ms", s.max),
            ("p50_ms", s.p50),
            ("p90_ms", s.p90),
            ("p95_ms", s.p95),
            ("p99_ms", s.p99),
        ] {
            m[key] = json!(value);
        }
        result["samples_ms"] = json!(pooled);
    }
}

/// One configuration on a device: deploy, run, collect, and check the outputs against the host's.
fn measure_on_device(args: &Args, config: &Config, verbose: bool) -> Result<Value> {
    if !args.vs.is_empty() {
        bail!("--vs compares runners on the host; drop it with --device {}", args.device.kind());
    }
    let entry = models::entry(&config.model)?;
    let model = models::model_file(&config.model, &config.precision)?;
    let work = std::env::temp_dir().join(format!("openautoglm-bench-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let recipe = models::materialize_recipe(&config.model, &work)?;
    let run_args = RunArgs {
        runs: args.runs.unwrap_or(if args.suite.is_some() { 3 } else { 200 }),
        warmup: args.warmup.unwrap_or(if args.suite.is_some() { 1 } else { 10 }),
        threads: args.threads.unwrap_or(if args.device.emulated() { 2 } else { 0 }),
        optimize: args.optimize.clone(),
    };

    let deployed = device::deploy(&args.device, &model, &recipe)?;
    let spinner = cache::spinner(format!(
        "{} on {}{}: {} runs",
        config.label(),
        args.device.kind(),
        if args.device.emulated() { " (emulated: slow)" } else { "" },
        1 + run_args.warmup + run_args.runs
    ));
    let ran = deployed.run(&run_args, true);
    spinner.finish_and_clear();
    let (measured, outputs) = ran?;

    let spinner = cache::spinner("reference outputs on the host".into());
    let reference = device::deploy(&Device::Host, &model, &recipe)
        .and_then(|host| host.run(&RunArgs { runs: 1, warmup: 0, ..run_args }, true));
    spinner.finish_and_clear();
    let (_, host_outputs) = reference?;
    let _ = fs::remove_dir_all(&work);

    let (atol, rtol) = output_tolerance(&config.precision);
    let check = compare_outputs(&host_outputs.unwrap_or_default(), &outputs.unwrap_or_default(), atol, rtol);
    let mut result = result_json(&args.device, &entry, &config.precision, &model, &measured)?;
    result["outputs_vs_host"] = check.clone();
    result["accuracy_vs_fp32"] = models::variant_accuracy(&config.model, &config.precision)?;
    if verbose {
        print_table(&result);
    }
    println!(
        "{}: outputs vs host: max |diff| {:.3e} over {} values (tolerance {atol:e} + {rtol:e}*|host|): {}",
        config.label(),
        check["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
        check["values"],
        if check["match"] == true { "match" } else { "MISMATCH" }
    );
    Ok(result)
}

fn print_suite(results: &[Value]) {
    println!(
        "\n| {:<22} | {:<12} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>7} | {:>14} |",
        "model", "precision", "p50 ms", "p90 ms", "first ms", "peak MB", "cosine", "top-1", "python-ort/ours"
    );
    println!(
        "|{:-<24}|{:-<14}|{:->11}|{:->11}|{:->11}|{:->10}|{:->10}|{:->9}|{:->16}|",
        "", "", "", "", "", "", "", "", ""
    );
    for r in results {
        if let Some(error) = r["error"].as_str() {
            let short: String = error.chars().take(90).collect();
            println!(
                "| {:<22} | {:<12} | FAILED: {short}",
                r["model"]["id"].as_str().unwrap_or("?"),
                r["model"]["precision"].as_str().unwrap_or("?")
            );
            continue;
        }
        let m = &r["metrics"];
        let f = |v: &Value, d: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.d$}"));
        let peer = r["comparison"]["runners"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["runner"] == "python-ort"))
            .and_then(|x| x["p50_ratio_vs_rust"].as_f64())
            .map_or("-".to_owned(), |x| format!("{x:.2}x"));
        println!(
            "| {:<22} | {:<12} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>7} | {:>14} |",
            r["model"]["id"].as_str().unwrap_or("?"),
            r["model"]["precision"].as_str().unwrap_or("?"),
            f(&m["p50_ms"], 3),
            f(&m["p90_ms"], 3),
            f(&m["first_inference_ms"], 2),
            f(&m["peak_rss_mb"], 0),
            f(&r["accuracy_vs_fp32"]["cosine_similarity"], 5),
            f(&r["accuracy_vs_fp32"]["top1_agreement"], 3),
            peer
        );
    }
}

/// The result file (schema in benchmarks/README.md) around one runner's measurement.
fn result_json(
    device: &Device,
    entry: &models::ModelEntry,
    precision: &str,
    model: &Path,
    measured: &Value,
) -> Result<Value> {
    Ok(json!({
        "schema": SCHEMA_VERSION,
        "openautoglm_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(),
        "device": {
            "kind": device.kind(),
            "name": if *device == Device::Host { hostname() } else { device.kind().to_owned() },
            "os": if matches!(device, Device::Android { .. }) { "android" } else if matches!(device, Device::IosSim { .. }) { "ios" } else { std::env::consts::OS },
            "arch": device.arch(),
            "cpus": if device.emulated() { 2 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) },
            "emulated": device.emulated(),
        },
        "model": {
            "id": entry.id,
            "title": entry.title,
            "precision": if precision == "native" { entry.precision.clone() } else { precision.to_owned() },
            "source": entry.package.as_ref().map(|p| format!("{}=={}", p.name, p.version)).or(entry.fixture.clone()),
            "sha256": entry.sha256,
            "file_size_mb": fs::metadata(model)?.len() as f64 / (1024.0 * 1024.0),
        },
        "ort_version": measured["ort_version"],
        "accelerator": measured["accelerator"],
        "threads": measured["threads"],
        "optimize_level": measured["optimize_level"],
        "compile_cache": measured["compile_cache"],
        "shape_buckets": measured["shape_buckets"],
        "fed_f16": measured["fed_f16"],
        "metrics": measured["metrics"],
        "placement": measured["placement"],
        "samples_ms": measured["samples_ms"],
    }))
}

/// `--device` other than host: deploy, run, collect, and check the outputs against the host's on the same input.
/// Compares two `--dump-outputs` files: same names and shapes, values within the stated tolerance.
fn compare_outputs(host: &Value, device: &Value, atol: f64, rtol: f64) -> Value {
    let (mut max_diff, mut count, mut ok) = (0f64, 0usize, true);
    let names: Vec<&String> = host.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    ok &= !names.is_empty();
    for name in names {
        let (h, d) = (&host[name], &device[name]);
        ok &= h["shape"] == d["shape"];
        let hv: Vec<f64> =
            h["values"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        let dv: Vec<f64> =
            d["values"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        ok &= hv.len() == dv.len();
        for (a, b) in hv.iter().zip(&dv) {
            let diff = (a - b).abs();
            max_diff = max_diff.max(diff);
            ok &= diff <= atol + rtol * a.abs();
            count += 1;
        }
    }
    json!({ "max_abs_diff": max_diff, "values": count, "atol": atol, "rtol": rtol, "match": ok })
}

fn samples(result: &Value) -> Vec<f64> {
    result["samples_ms"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

/// Pooled latency per runner and the ratio of each runner's median to the Rust core's, overall and per round.
fn compare(runners: &[Runner], results: &[Vec<Value>]) -> Value {
    let pooled = |i: usize| Summary::of(&results[i].iter().flat_map(samples).collect::<Vec<_>>()).expect("samples");
    let base = pooled(0);
    let runners_json: Vec<Value> = runners
        .iter()
        .enumerate()
        .map(|(i, runner)| {
            let s = pooled(i);
            let per_round: Vec<f64> = results[i]
                .iter()
                .zip(&results[0])
                .filter_map(|(mine, rust)| Some(Summary::of(&samples(mine))?.p50 / Summary::of(&samples(rust))?.p50))
                .collect();
            json!({
                "runner": runner.name(),
                "runs": s.count,
                "p50_ms": s.p50, "p90_ms": s.p90, "mean_ms": s.mean, "std_ms": s.std, "min_ms": s.min,
                "p50_ratio_vs_rust": s.p50 / base.p50,
                "p50_ratio_per_round": per_round,
                "p50_overhead_us": (s.p50 - base.p50) * 1e3,
            })
        })
        .collect();
    json!({ "rounds": results[0].len(), "baseline": "rust", "runners": runners_json })
}

fn print_comparison(c: &Value) {
    println!(
        "\nSame model, library, threads and inputs; {} interleaved rounds; ratio = runner p50 / Rust p50",
        c["rounds"]
    );
    println!(
        "| {:<10} | {:>6} | {:>9} | {:>9} | {:>9} | {:>17} | {:>13} |",
        "runner", "runs", "p50 ms", "p90 ms", "mean ms", "p50 vs Rust", "overhead/call"
    );
    println!("|------------|--------|-----------|-----------|-----------|-------------------|---------------|");
    for r in c["runners"].as_array().into_iter().flatten() {
        let rounds: Vec<f64> =
            r["p50_ratio_per_round"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
        let spread = match (rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max)) {
            (Some(lo), Some(hi)) => format!("{:.2}x ({lo:.2}-{hi:.2})", r["p50_ratio_vs_rust"].as_f64().unwrap_or(0.0)),
            _ => "-".into(),
        };
        println!(
            "| {:<10} | {:>6} | {:>9.4} | {:>9.4} | {:>9.4} | {:>17} | {:>10.1} us |",
            r["runner"].as_str().unwrap_or("?"),
            r["runs"].as_u64().unwrap_or(0),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p90_ms"].as_f64().unwrap_or(0.0),
            r["mean_ms"].as_f64().unwrap_or(0.0),
            spread,
            r["p50_overhead_us"].as_f64().unwrap_or(0.0),
        );
    }
}

fn print_table(r: &Value) {
    let m = &r["metrics"];
    let f = |key: &str| m[key].as_f64().map_or("-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "\n{} ({}, {:.1} MB) on {} {} [{} cpus], ONNX Runtime {}, {} threads, {}",
        r["model"]["id"].as_str().unwrap_or("?"),
        r["model"]["precision"].as_str().unwrap_or("?"),
        r["model"]["file_size_mb"].as_f64().unwrap_or(0.0),
        r["device"]["kind"].as_str().unwrap_or("?"),
        r["device"]["arch"].as_str().unwrap_or("?"),
        r["device"]["cpus"],
        r["ort_version"].as_str().unwrap_or("?"),
        r["threads"],
        r["optimize_level"].as_str().unwrap_or("?"),
    );
    let rows = [
        ("runtime init", f("runtime_init_ms"), "ms"),
        ("session create", f("session_create_ms"), "ms"),
        ("first inference", f("first_inference_ms"), "ms"),
        ("warmup mean", f("warmup_mean_ms"), "ms"),
        ("p50", f("p50_ms"), "ms"),
        ("p90", f("p90_ms"), "ms"),
        ("p99", f("p99_ms"), "ms"),
        ("mean ± std", format!("{} ± {}", f("mean_ms"), f("std_ms")), "ms"),
        ("min / max", format!("{} / {}", f("min_ms"), f("max_ms")), "ms"),
        ("RSS after load", f("rss_after_load_mb"), "MB"),
        ("peak RSS", f("peak_rss_mb"), "MB"),
    ];
    println!("| {:<16} | {:>18} | unit |", "metric", "value");
    println!("|{:-<18}|{:->20}|------|", "", "");
    for (name, value, unit) in rows {
        println!("| {name:<16} | {value:>18} | {unit:<4} |");
    }
    println!("({} timed runs after {} warmup runs)", m["runs"], m["warmup_runs"]);
    if let Some(providers) = r["placement"]["nodes_by_provider"].as_object() {
        let nodes: Vec<String> = providers.iter().map(|(p, n)| format!("{p}: {n} nodes")).collect();
        println!("placement: {} in {} partition(s)", nodes.join(", "), r["placement"]["partitions"]);
    }
}

fn git_commit() -> Option<String> {
    let out =
        Command::new("git").current_dir(cmd::repo_root()).args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(values: &[f64], shape: &[i64]) -> Value {
        json!({ "y": { "type": "f32", "shape": shape, "values": values } })
    }

    #[test]
    fn device_outputs_match_within_the_stated_tolerance() {
        let host = outputs(&[1.0, -2.0, 1000.0], &[3]);
        let (atol, rtol) = output_tolerance("fp32");
        let check = |device: &Value| compare_outputs(&host, device, atol, rtol)["match"].clone();
        assert_eq!(check(&outputs(&[1.00005, -2.0, 1000.5], &[3])), true);
        assert_eq!(check(&outputs(&[1.01, -2.0, 1000.0], &[3])), false);
        assert_eq!(check(&outputs(&[1.0, -2.0, 1000.0], &[1, 3])), false, "shape differs");
        assert_eq!(check(&outputs(&[1.0, -2.0], &[3])), false, "a value is missing");
        assert_eq!(compare_outputs(&json!({}), &json!({}), atol, rtol)["match"], false, "nothing compared is no match");
        let (atol, rtol) = output_tolerance("fp16");
        assert_eq!(compare_outputs(&host, &outputs(&[1.01, -2.0, 1000.0], &[3]), atol, rtol)["match"], true);
    }
}
