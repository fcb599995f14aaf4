//! The runners a benchmark compares: the Rust core (core's benchmark runner), the python-ort and ORT Java peers,
//! and our Kotlin and Swift layers. Each is given the same job (model, recipe, ONNX Runtime library, threads) and
//! reports in the same layout, parsed here into [`Measured`].

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::Peer;
use crate::results::{self, Measured};
use crate::swift_toolchain::{STAGE, Stage};
use crate::{bindgen, cache, cmd, jvm, models, python, runner};

/// What every runner is asked to do: the protocol of benchmarks/runner/src/main.rs.
#[derive(Clone)]
pub struct Job {
    pub model: PathBuf,
    pub recipe: PathBuf,
    pub ort: PathBuf,
    pub runs: usize,
    pub warmup: usize,
    pub threads: u32,
    pub optimize: String,
    pub seconds: f64,
    /// Calls this many ms apart instead of back to back (0).
    pub interval_ms: f64,
    /// Extra flags for the Rust runner (an engine-suite setup).
    pub flags: Vec<String>,
    /// OpenVINO's plugin library: the Rust runner and python-ort run the model on it instead of the CPU provider.
    pub plugin: Option<PathBuf>,
    /// What runs the Rust runner and python-ort (the emulator of an Intel CPU, `crate::intel`); empty: directly.
    pub prefix: Vec<String>,
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
            ("--interval-ms", self.interval_ms.to_string()),
        ] {
            args.push(flag.to_owned());
            args.push(value);
        }
        if let Some(plugin) = &self.plugin {
            args.extend(["--plugin".to_owned(), plugin.display().to_string()]);
        }
        args
    }

    /// `program` as this job runs it: under its prefix when it has one.
    fn command(&self, program: &Path) -> Command {
        crate::intel::command(&self.prefix, program)
    }
}

/// One way of running the job: the Rust core directly, or through a language layer.
pub enum Runner {
    /// `ort`: a different ONNX Runtime library than the job's (ORT Java's, when python-ort runs beside it: each peer
    /// is compared with the Rust core on its own runtime).
    Rust {
        binary: PathBuf,
        ort: Option<PathBuf>,
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
    pub fn is_rust(&self) -> bool {
        matches!(self, Runner::Rust { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Runner::Rust { ort: None, .. } => "rust",
            Runner::Rust { ort: Some(_), .. } => "rust@ort-java",
            Runner::PythonOrt { .. } => "python-ort",
            Runner::OrtJava { .. } => "ort-java",
            Runner::Kotlin { .. } => "kotlin",
            Runner::Swift { .. } => "swift",
        }
    }

    /// Runs the job once; `progress(done)` is told how many runs finished when the runner reports it.
    pub fn run(&self, job: &Job, work: &Path, progress: &dyn Fn(u64)) -> Result<Measured> {
        let out = work.join(format!("{}.json", self.name()));
        let _ = fs::remove_file(&out);
        match self {
            Runner::Rust { binary, ort } => {
                let mut child = job
                    .command(binary)
                    .args(job.args(&job.model, &job.recipe, ort.as_deref().unwrap_or(&job.ort), &out))
                    .args(&job.flags)
                    .env(SPAWNED_ENV, spawned_now())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("cannot run {}", binary.display()))?;
                // Its messages, kept for the error (read beside stdout, so neither pipe fills up and stalls it).
                let mut stderr = child.stderr.take().expect("piped");
                let messages = std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                    text
                });
                for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
                    if let Some(done) = line?.strip_prefix("progress ").and_then(|r| r.split(' ').next()?.parse().ok())
                    {
                        progress(done);
                    }
                }
                let status = child.wait()?;
                let messages = messages.join().unwrap_or_default();
                if !status.success() {
                    let said: Vec<&str> = messages.lines().filter(|l| l.starts_with("openautoglm-bench:")).collect();
                    bail!("the Rust benchmark runner failed\n{}", said.join("\n"));
                }
            }
            Runner::PythonOrt { python } => {
                let script = cmd::repo_root().join("benchmarks/peers/python_ort.py");
                let mut command = python::script(python, &script);
                if !job.prefix.is_empty() {
                    // The same interpreter (its venv path, which Python finds its packages from) under the prefix.
                    let mut prefixed = job.command(python);
                    prefixed.args(command.get_args()).envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
                    command = prefixed;
                }
                let args = job.args(&job.model, &job.recipe, &job.ort, &out);
                cmd::capture(command.args(args).env(SPAWNED_ENV, spawned_now()))?;
            }
            Runner::OrtJava { classpath, native_dir } => {
                cmd::capture(
                    Command::new("java")
                        .arg(format!("-Donnxruntime.native.path={}", native_dir.display()))
                        .args(["-cp", classpath, "ai.openautoglm.bench.OrtJavaBenchKt"])
                        .args(job.args(&job.model, &job.recipe, &job.ort, &out))
                        .env(SPAWNED_ENV, spawned_now()),
                )?;
            }
            Runner::Kotlin { classpath, lib_dir } => {
                cmd::capture(
                    Command::new("java")
                        .arg(format!("-Djna.library.path={}", lib_dir.display()))
                        .args(["-cp", classpath, "ai.openautoglm.bench.BenchKt"])
                        .args(job.args(&job.model, &job.recipe, &job.ort, &out))
                        .env("LD_LIBRARY_PATH", lib_dir)
                        .env(SPAWNED_ENV, spawned_now()),
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
                let result = stage.sh(&format!(
                    "{SPAWNED_ENV}={} .build/release/OpenAutoGLMBench {}",
                    spawned_now(),
                    args.join(" ")
                ))?;
                if !result.status.success() {
                    bail!("the Swift benchmark runner failed:\n{}", String::from_utf8_lossy(&result.stderr));
                }
                fs::copy(stage.host_path(&format!("{STAGE}/bench/swift.json")), &out)?;
            }
        }
        progress((1 + job.warmup + job.runs) as u64);
        results::read(&out)
    }
}

/// The Rust runner first (every ratio is over the Rust runner on the same runtime), then the peers asked for.
pub fn build(peers: &[Peer], ort: &Path) -> Result<Vec<Runner>> {
    let binary = runner::build(None, &[])?;
    let mut runners = vec![Runner::Rust { binary: binary.clone(), ort: None }];
    if peers.contains(&Peer::PythonOrt) {
        runners.push(Runner::PythonOrt { python: python::python()? });
    }
    if !peers.iter().any(|p| matches!(p, Peer::Kotlin | Peer::Swift | Peer::OrtJava)) {
        return Ok(runners);
    }

    let lib_dir = bindgen::generate_with_release_library("bench")?;
    for peer in peers {
        match peer {
            Peer::PythonOrt | Peer::Genai | Peer::FullPrefill => {}
            Peer::Kotlin => runners.push(Runner::Kotlin { classpath: jvm::classpath()?, lib_dir: lib_dir.clone() }),
            Peer::OrtJava => {
                let classpath = jvm::classpath()?;
                let (native_dir, library) = jvm::ort_java_natives()?;
                if library != ort {
                    // Another runtime than the job's (python-ort's): the Rust core runs again on ORT Java's.
                    runners.push(Runner::Rust { binary: binary.clone(), ort: Some(library) });
                }
                runners.push(Runner::OrtJava { classpath, native_dir });
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

/// The variable telling a runner when it was spawned (wall clock, ns since the Unix epoch).
const SPAWNED_ENV: &str = "OPENAUTOGLM_SPAWNED_UNIX_NS";

/// The wall clock now, for a runner about to be spawned: it reports its cold start (spawn to first result) against
/// it.
fn spawned_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_nanos().to_string()
}
