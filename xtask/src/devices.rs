//! Where a benchmark runs, behind one interface: build the runner for the device, deploy it with the model, the
//! recipe and the matching ONNX Runtime, run it, collect the JSON. `host` and `qemu-arm64` work here; `android`
//! (adb) and `ios-sim` (simctl) are written to those tools' documented commands and say what is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use crate::cache::{self, PypiFile};
use crate::results::{self, DumpedOutputs, GenerationOutput, Measured, SustainedOutput};
use crate::{cmd, intel, ndk, runner, targets};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Host,
    /// aarch64 Linux under qemu-user: the ARM build, deploy and run path, with emulated (meaningless) timings.
    QemuArm64,
    Android {
        serial: Option<String>,
    },
    IosSim {
        udid: Option<String>,
    },
    /// OpenVINO's plugin execution provider (its CPU device) leading the SDK's runner, on an Intel CPU: this host
    /// when its CPU is Intel's, else emulated by qemu (`crate::intel`; emulated timings).
    OpenVino,
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        let (kind, id) = s.split_once(':').map_or((s, None), |(k, id)| (k, Some(id.to_owned())));
        match kind {
            "host" => Ok(Device::Host),
            "qemu-arm64" => Ok(Device::QemuArm64),
            "android" => Ok(Device::Android { serial: id }),
            "ios-sim" => Ok(Device::IosSim { udid: id }),
            "openvino" => Ok(Device::OpenVino),
            _ => Err(format!("unknown device `{s}` (host, qemu-arm64, android[:SERIAL], ios-sim[:UDID], openvino)")),
        }
    }
}

impl Device {
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Host => "host",
            Device::QemuArm64 => "qemu-arm64",
            Device::Android { .. } => "android",
            Device::IosSim { .. } => "ios-sim",
            Device::OpenVino => "openvino",
        }
    }

    pub fn arch(&self) -> &'static str {
        match self {
            Device::Host | Device::OpenVino => std::env::consts::ARCH,
            _ => "aarch64",
        }
    }

    /// The numerics class the device's verdicts hold for (`core::numerics_class`): its CPU architecture's ONNX
    /// Runtime kernels (OpenVINO's own for the plugin). An emulated ARM64 runs the same aarch64 kernels a phone's CPU
    /// does.
    pub fn numerics_class(&self) -> String {
        let kernels = if *self == Device::OpenVino { "openvino" } else { "cpu" };
        format!("linux-{}-{kernels}", self.arch())
    }

    /// The class `Precision::Auto` looks measurements up under (`core::device_class`) for runs on the CPU; none
    /// for an emulator, whose timings say nothing about a device.
    pub fn device_class(&self) -> Option<String> {
        let os = match self {
            Device::Host => std::env::consts::OS,
            Device::Android { .. } => "android",
            Device::IosSim { .. } => "ios",
            Device::QemuArm64 => return None,
            Device::OpenVino if intel::emulated() => return None,
            Device::OpenVino => return Some(format!("{}-{}-openvino", std::env::consts::OS, self.arch())),
        };
        Some(format!("{os}-{}-cpu", self.arch()))
    }

    pub fn emulated(&self) -> bool {
        matches!(self, Device::QemuArm64) || (*self == Device::OpenVino && intel::emulated())
    }

    fn triple(&self) -> &'static str {
        match self {
            Device::Host | Device::OpenVino => env!("HOST_TRIPLE"),
            Device::QemuArm64 => "aarch64-unknown-linux-gnu",
            Device::Android { .. } => "aarch64-linux-android",
            Device::IosSim { .. } => "aarch64-apple-ios-sim",
        }
    }
}

/// A benchmark runner built and deployed to a device.
pub struct Deployed {
    device: Device,
    /// On-device paths of the runner, the ONNX Runtime library, the model and the recipe.
    runner: String,
    ort: String,
    model: String,
    recipe: String,
    /// Device directory for results (host-side staging dir for host and qemu).
    dir: String,
    stage: PathBuf,
}

/// The runner protocol (benchmarks/runner/src/main.rs) for one run.
pub struct RunArgs {
    pub runs: usize,
    pub warmup: usize,
    pub threads: u32,
    pub optimize: String,
}

/// Builds the benchmark runner for `device` and deploys it with `model`, `recipe` and ONNX Runtime.
pub fn deploy(device: &Device, model: &Path, recipe: &Path) -> Result<Deployed> {
    let (stage, mut files) = build_runner(device)?;
    // The model keeps its extension: ONNX Runtime tells ORT-format files (.ort) from ONNX ones by it.
    let model_name = format!("model.{}", model.extension().and_then(|e| e.to_str()).unwrap_or("onnx"));
    files.push((model_name.clone(), model.to_path_buf()));
    files.push(("recipe.json".into(), recipe.to_path_buf()));
    // Raw input files (images) that the recipe refers to, relative to it.
    let inputs = recipe.with_file_name("inputs");
    if inputs.exists() {
        files.push(("inputs".into(), inputs));
    }
    let mut deployed = stage_files(device, stage, &files)?;
    deployed.model = format!("{}/{model_name}", deployed.dir);
    deployed.recipe = format!("{}/recipe.json", deployed.dir);
    Ok(deployed)
}

/// Builds the runner for `device` and deploys it with `files` (name on the device, host path; directories whole):
/// several models and the inputs of a held-out set, for `run_verdict`.
pub fn deploy_files(device: &Device, files: &[(String, PathBuf)]) -> Result<Deployed> {
    let (stage, mut staged) = build_runner(device)?;
    staged.extend(files.iter().cloned());
    stage_files(device, stage, &staged)
}

/// Builds the runner for `device` and deploys it with a decoder LLM's files at one precision (`llm/` on the device).
pub fn deploy_llm(device: &Device, llm_dir: &Path, precision: &str) -> Result<Deployed> {
    let (stage, mut files) = build_runner(device)?;
    for name in [format!("{precision}.onnx"), format!("{precision}.onnx.data")]
        .into_iter()
        .chain(["tokenizer.json", "chat_template.jinja", "decoder.json"].map(String::from))
    {
        if llm_dir.join(&name).exists() {
            files.push((format!("llm/{name}"), llm_dir.join(&name)));
        }
    }
    let mut deployed = stage_files(device, stage, &files)?;
    deployed.model = format!("{}/llm", deployed.dir);
    Ok(deployed)
}

/// Builds the runner for `device`; returns a fresh host staging directory and the runner and ONNX Runtime to deploy.
fn build_runner(device: &Device) -> Result<(PathBuf, Vec<(String, PathBuf)>)> {
    match device {
        Device::Android { .. } if !cmd::exists("adb") => {
            bail!(
                "adb was not found: install the Android SDK platform-tools and put adb on PATH (and connect a phone with USB debugging on)"
            )
        }
        Device::IosSim { .. } if std::env::consts::OS != "macos" || !cmd::exists("xcrun") => {
            bail!("the iOS simulator needs macOS with Xcode (xcrun simctl); this is {}", std::env::consts::OS)
        }
        _ => {}
    }
    let triple = device.triple();
    if !targets::ensure_installed(triple) {
        bail!("rustup cannot install the standard library for {triple}");
    }
    let mut env: Vec<(String, String)> = Vec::new();
    match device {
        Device::QemuArm64 => cmd::ensure_debian_packages(
            &["aarch64-linux-gnu-gcc", "qemu-aarch64-static"],
            &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user-static"],
        )?,
        Device::Android { .. } => {
            let ndk = ndk::find_default()?;
            env = ndk.cargo_env(targets::android_abi("arm64-v8a")?)?;
        }
        Device::IosSim { .. } => {
            let ort = std::env::var("ORT_IOS_XCFWK_PATH")
                .context("set ORT_IOS_XCFWK_PATH to ONNX Runtime's iOS xcframework")?;
            env.push(("ORT_IOS_XCFWK_PATH".into(), ort));
        }
        Device::Host | Device::OpenVino => {}
    }
    // The host (and the host CPU under OpenVINO) runs the same build as host benchmarks.
    let native = matches!(device, Device::Host | Device::OpenVino);
    let runner = runner::build((!native).then_some(triple), &env)?;

    let stage = cache::dir().join("devices").join(device.kind());
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;
    let mut files = vec![("openautoglm-bench".to_owned(), runner)];
    match device {
        Device::Host | Device::OpenVino => files.push(("libonnxruntime.so".into(), cache::host_onnxruntime()?)),
        Device::QemuArm64 => files.push(("libonnxruntime.so".into(), aarch64_onnxruntime()?)),
        Device::Android { .. } => files.push(("libonnxruntime.so".into(), android_onnxruntime()?)),
        Device::IosSim { .. } => {} // linked into the runner
    }
    Ok((stage, files))
}

/// Copies `files` into the host staging directory, and on to the device where it has its own storage.
fn stage_files(device: &Device, stage: PathBuf, files: &[(String, PathBuf)]) -> Result<Deployed> {
    for (name, from) in files {
        let to = stage.join(name);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        if from.is_dir() {
            cmd::run(Command::new("cp").args(["-a", "-T"]).arg(from).arg(&to))?;
        } else {
            fs::copy(from, &to).with_context(|| format!("staging {}", from.display()))?;
        }
    }
    let on_device = |dir: &str| Deployed {
        device: device.clone(),
        runner: format!("{dir}/openautoglm-bench"),
        ort: format!("{dir}/libonnxruntime.so"),
        model: String::new(),
        recipe: String::new(),
        dir: dir.to_owned(),
        stage: stage.clone(),
    };
    match device {
        Device::Android { serial } => {
            let dir = "/data/local/tmp/openautoglm";
            cmd::run(adb(serial).args(["shell", "mkdir", "-p", &format!("{dir}/llm")]))?;
            for (name, _) in files {
                cmd::run(adb(serial).arg("push").arg(stage.join(name)).arg(format!("{dir}/{name}")))?;
            }
            cmd::run(adb(serial).args(["shell", "chmod", "755", &format!("{dir}/openautoglm-bench")]))?;
            Ok(on_device(dir))
        }
        _ => Ok(on_device(&stage.display().to_string())),
    }
}

/// One argument for `sh -c`: single-quoted.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

fn adb(serial: &Option<String>) -> Command {
    let mut c = Command::new("adb");
    if let Some(s) = serial {
        c.args(["-s", s]);
    }
    c
}

impl Deployed {
    /// Runs the deployed runner and returns its JSON result (and writes its outputs for comparison when asked).
    pub fn run(&self, args: &RunArgs, dump_outputs: bool) -> Result<(Measured, Option<DumpedOutputs>)> {
        let out = format!("{}/result.json", self.dir);
        let outputs = format!("{}/outputs.json", self.dir);
        let mut argv: Vec<String> = vec![
            "--model".into(),
            self.model.clone(),
            "--recipe".into(),
            self.recipe.clone(),
            "--out".into(),
            out.clone(),
            "--runs".into(),
            args.runs.to_string(),
            "--warmup".into(),
            args.warmup.to_string(),
            "--threads".into(),
            args.threads.to_string(),
            "--optimize".into(),
            args.optimize.clone(),
        ];
        argv.extend(self.ort_args());
        if dump_outputs {
            argv.extend(["--dump-outputs".into(), outputs.clone()]);
        }
        self.exec(&argv, &[&out, &outputs])?;
        let outputs = if dump_outputs { Some(self.collected("outputs.json")?) } else { None };
        Ok((self.collected("result.json")?, outputs))
    }

    /// Times text generation with the deployed decoder (`deploy_llm`): `args` are the runner's `--generate` flags
    /// after `--llm`; returns its JSON result.
    pub fn run_generate(&self, args: &[String]) -> Result<GenerationOutput> {
        let out = format!("{}/result.json", self.dir);
        let mut argv: Vec<String> = vec!["--generate".into(), "--llm".into(), self.model.clone()];
        argv.extend(args.iter().cloned());
        argv.extend(["--out".into(), out.clone()]);
        argv.extend(self.ort_args());
        self.exec(&argv, &[&out])?;
        self.collected("result.json")
    }

    /// Runs `model` (a deployed file name) on every input of the deployed set `inputs` (its `set.json`, a list of
    /// recipes) and returns the host directory holding the outputs it dumped (`--verdict`).
    pub fn run_verdict(&self, model: &str, inputs: &str, threads: u32) -> Result<PathBuf> {
        let dump = format!("dump-{}", model.replace('.', "-"));
        let mut argv: Vec<String> = vec![
            "--verdict".into(),
            "--model".into(),
            format!("{}/{model}", self.dir),
            "--inputs".into(),
            format!("{}/{inputs}", self.dir),
            "--dump-dir".into(),
            format!("{}/{dump}", self.dir),
            "--threads".into(),
            threads.to_string(),
        ];
        argv.extend(self.ort_args());
        let _ = fs::remove_dir_all(self.stage.join(&dump));
        self.exec(&argv, &[&format!("{}/{dump}", self.dir)])?;
        let local = self.stage.join(&dump);
        if !local.join("0.json").exists() {
            bail!("the device dumped no outputs for {model}");
        }
        Ok(local)
    }

    /// Runs the deployed model continuously for `minutes` (`--sustained`), reading the device's own thermal and
    /// energy counters there; returns its JSON result.
    pub fn run_sustained(&self, minutes: u32, threads: u32, idle_seconds: f64) -> Result<SustainedOutput> {
        let out = format!("{}/sustained.json", self.dir);
        let mut argv: Vec<String> = vec![
            "--sustained".into(),
            "--model".into(),
            self.model.clone(),
            "--recipe".into(),
            self.recipe.clone(),
            "--minutes".into(),
            minutes.to_string(),
            "--threads".into(),
            threads.to_string(),
            "--idle-seconds".into(),
            idle_seconds.to_string(),
            "--out".into(),
            out.clone(),
        ];
        argv.extend(self.ort_args());
        self.exec(&argv, &[&out])?;
        self.collected("sustained.json")
    }

    /// `--ort LIB` where the runner opens ONNX Runtime from a file (everywhere but the iOS simulator, which links it).
    fn ort_args(&self) -> Vec<String> {
        if matches!(self.device, Device::IosSim { .. }) { Vec::new() } else { vec!["--ort".into(), self.ort.clone()] }
    }

    /// A result file the runner wrote, brought back from the device.
    fn collected<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.stage.join(name);
        if !path.exists() {
            bail!("no {} from the device", path.display());
        }
        results::read(&path)
    }

    /// Runs the deployed runner with `argv` on the device and brings `results` back to the staging directory.
    fn exec(&self, argv: &[String], results: &[&String]) -> Result<()> {
        let quoted: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        match &self.device {
            Device::Host => cmd::capture(Command::new(&self.runner).args(argv)).map(|_| ())?,
            Device::OpenVino => {
                let mut command = intel::command(&intel::runner()?, Path::new(&self.runner));
                let plugin = cache::openvino_plugin()?;
                cmd::capture(command.args(argv).arg("--plugin").arg(plugin)).map(|_| ())?;
            }
            Device::QemuArm64 => {
                // qemu 7.2 crashes in ONNX Runtime's CPU detection when it reads the host's x86 /proc/cpuinfo: give
                // the process an ARM one in a private mount namespace.
                let cpuinfo = self.stage.join("cpuinfo");
                fs::write(&cpuinfo, arm_cpuinfo())?;
                let script = format!(
                    "mount --bind {} /proc/cpuinfo && exec qemu-aarch64-static -L /usr/aarch64-linux-gnu {} {}",
                    cpuinfo.display(),
                    self.runner,
                    quoted.join(" ")
                );
                cmd::capture(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]))?;
            }
            Device::Android { serial } => {
                let script = format!("cd {} && LD_LIBRARY_PATH={0} ./openautoglm-bench {}", self.dir, quoted.join(" "));
                cmd::capture(adb(serial).args(["shell", &script]))?;
                for file in results {
                    let _ = adb(serial).arg("pull").arg(file).arg(&self.stage).output();
                }
            }
            Device::IosSim { udid } => {
                let udid = udid.clone().unwrap_or_else(|| "booted".into());
                cmd::capture(Command::new("xcrun").args(["simctl", "spawn", &udid, &self.runner]).args(argv))?;
            }
        }
        Ok(())
    }
}

/// ONNX Runtime for aarch64 Linux: the library inside the PyPI wheel, pinned like the host's.
pub fn aarch64_onnxruntime() -> Result<PathBuf> {
    let dest = cache::dir().join(format!("onnxruntime-{}/linux-aarch64/libonnxruntime.so", cache::ORT_VERSION));
    if !dest.exists() {
        let wheel = cache::pypi(PypiFile {
            name: "onnxruntime",
            version: cache::ORT_VERSION,
            file: "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl",
            sha256: "da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3",
            platform: Some("manylinux_2_28_aarch64"),
        })?;
        cache::extract(&wheel, "onnxruntime/capi/libonnxruntime.so.1.31.1", &dest, None)?;
    }
    Ok(dest)
}

/// ONNX Runtime for Android phones: libonnxruntime.so from the onnxruntime-android AAR (jni/arm64-v8a/), given with
/// ORT_ANDROID_AAR (the AAR file) since this machine's Maven mirror does not serve it.
fn android_onnxruntime() -> Result<PathBuf> {
    let aar = std::env::var_os("ORT_ANDROID_AAR").map(PathBuf::from).context(
        "set ORT_ANDROID_AAR to the onnxruntime-android .aar (Maven Central: com.microsoft.onnxruntime:onnxruntime-android); \
         its jni/arm64-v8a/libonnxruntime.so is pushed with the runner",
    )?;
    let dest = cache::dir().join("onnxruntime-android/arm64-v8a/libonnxruntime.so");
    cache::extract(&aar, "jni/arm64-v8a/libonnxruntime.so", &dest, None)?;
    Ok(dest)
}

/// What qemu's guest sees as /proc/cpuinfo: two Cortex-A72 cores (NEON; no dot product).
fn arm_cpuinfo() -> String {
    (0..2)
        .map(|core| {
            format!(
                "processor\t: {core}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n\
                 CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
