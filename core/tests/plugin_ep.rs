//! A plugin execution provider end to end: Intel's OpenVINO plugin (PyPI `onnxruntime-ep-openvino` 1.8.1, fetched by
//! `cargo xtask setup`) registered with the SDK's ONNX Runtime 1.31.1, running real models.
//!
//! OpenVINO's plugin offers devices only on Intel hardware (it checks the CPU vendor). On another CPU this binary
//! runs itself under `qemu-x86_64 -cpu Skylake-Client`, an emulated Intel CPU: the plugin, OpenVINO and ONNX Runtime
//! are the same x86-64 code, run by the emulator. No test harness (the re-run is one process for all the checks);
//! it prints cargo's result line.

use std::path::{Path, PathBuf};
use std::process::Command;

use openautoglm::{
    Accelerator, CacheOutcome, DeviceKind, Engine, EngineConfig, Error, OPENVINO_PROVIDER, Tensor, TensorRef,
    numerics_class,
};

#[path = "common/mod.rs"]
mod common;

/// Set in the emulated re-run, so it does not re-run itself again.
const EMULATED: &str = "OPENAUTOGLM_EMULATED_INTEL";
/// The emulated CPU: a common Intel model whose instructions qemu's TCG implements (AVX2, no AVX-512).
const INTEL_CPU_MODEL: &str = "Skylake-Client";

fn main() {
    if !intel_cpu() {
        assert!(std::env::var_os(EMULATED).is_none(), "the emulated CPU did not report Intel");
        std::process::exit(run_emulated());
    }
    common::init();
    let checks: &[(&str, fn())] = &[
        ("a_missing_or_foreign_plugin_library_is_a_typed_error", missing_or_foreign_library),
        ("the_plugin_registers_once_per_process", registers_once),
        ("a_cpu_engine_stays_on_the_cpu_while_a_plugin_is_registered", cpu_engines_stay_on_the_cpu),
        ("minilm_on_openvino_matches_the_cpu_provider", minilm_matches_cpu),
        ("yolov8n_on_openvino_matches_the_cpu_provider", yolov8n_matches_cpu),
        ("silero_vad_falls_back_to_the_cpu_when_openvino_cannot_compile_it", silero_falls_back),
        ("placement_shows_the_nodes_openvino_cannot_take", placement_shows_fallback),
        ("strict_mode_refuses_partial_placement_and_absent_devices", strict_refuses),
        ("a_device_kind_the_plugin_lacks_is_skipped", absent_device_is_skipped),
        ("openvino_compiles_into_the_engine_cache_and_notices_new_weights", compile_cache),
        ("verdicts_for_the_plugin_are_its_own_class", verdict_class),
    ];
    let mut failed = Vec::new();
    for (name, check) in checks {
        match std::panic::catch_unwind(check) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = checks.len() - failed.len();
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

/// Whether this CPU says it is Intel's (what OpenVINO's plugin checks through ONNX Runtime's device discovery).
fn intel_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let leaf = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [leaf.ebx, leaf.edx, leaf.ecx].iter().flat_map(|r| r.to_le_bytes()).collect();
        vendor == b"GenuineIntel"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn run_emulated() -> i32 {
    let qemu = "qemu-x86_64-static";
    println!("this CPU is not Intel's: running the OpenVINO checks under `{qemu} -cpu {INTEL_CPU_MODEL}`");
    let status = Command::new(qemu)
        .args(["-cpu", INTEL_CPU_MODEL])
        .arg(std::env::current_exe().unwrap())
        .env(EMULATED, "1")
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {qemu} ({e}): OpenVINO's plugin needs an Intel CPU; install qemu-user-static")
        });
    status.code().unwrap_or(101)
}

fn plugin_path() -> String {
    std::env::var("OPENAUTOGLM_OPENVINO_PLUGIN").unwrap_or_else(|_| {
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
        home.join(".cache/openautoglm/openvino-ep-1.8.1/libonnxruntime_providers_openvino_plugin.so")
            .display()
            .to_string()
    })
}

fn openvino() -> Accelerator {
    Accelerator::openvino(plugin_path(), DeviceKind::Cpu)
}

fn on(accelerators: Vec<Accelerator>) -> EngineConfig {
    EngineConfig::default().with_accelerators(accelerators)
}

fn output(outputs: &[Tensor], name: &str) -> Vec<f32> {
    outputs.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no output {name}")).to_vec::<f32>().unwrap()
}

/// Cosine similarity and largest absolute difference of two outputs.
fn compare(a: &[f32], b: &[f32]) -> (f64, f32) {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    (dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE), worst)
}

fn missing_or_foreign_library() {
    let missing = Accelerator::openvino("/no/such/libonnxruntime_providers_openvino_plugin.so", DeviceKind::Cpu);
    let err = Engine::from_file(common::model("matmul_dynamic"), on(vec![missing])).expect_err("refused");
    assert!(
        matches!(&err, Error::AcceleratorUnavailable { provider, reason } if provider == OPENVINO_PROVIDER && reason.contains("/no/such")),
        "{err:?}"
    );
    // A real shared library that is not an execution provider plugin (ONNX Runtime itself).
    let foreign = Accelerator::Plugin {
        library: common::ort_path().display().to_string(),
        provider: "NotAPluginExecutionProvider".into(),
        device: DeviceKind::Cpu,
        options: Vec::new(),
    };
    let err = Engine::from_file(common::model("matmul_dynamic"), on(vec![foreign])).expect_err("refused");
    assert!(matches!(err, Error::AcceleratorUnavailable { .. }), "{err:?}");
    // Neither failure left anything behind: the same process still runs models, and the real plugin still loads.
    let engine = Engine::from_file(common::model("matmul_dynamic"), on(vec![openvino()])).unwrap();
    assert_eq!(engine.accelerators().active, vec![OPENVINO_PROVIDER, "CPUExecutionProvider"]);
}

fn registers_once() {
    let first = Engine::from_file(common::model("matmul_dynamic"), on(vec![openvino()])).unwrap();
    let second = Engine::from_file(common::model("matmul_dynamic"), on(vec![openvino()])).unwrap();
    assert_eq!(first.accelerators().active[0], OPENVINO_PROVIDER);
    assert_eq!(second.accelerators().active[0], OPENVINO_PROVIDER);
    // Another library under the same provider name is refused: ONNX Runtime keeps one per name.
    let copy = std::env::temp_dir().join(format!("openautoglm-ov-copy-{}.so", std::process::id()));
    std::fs::copy(plugin_path(), &copy).unwrap();
    let other = Accelerator::openvino(copy.display().to_string(), DeviceKind::Cpu);
    let err = Engine::from_file(common::model("matmul_dynamic"), on(vec![other])).expect_err("refused");
    let _ = std::fs::remove_file(&copy);
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("already registered")), "{err:?}");
    let x = [0.5f32, -1.0, 2.0, 4.0];
    let y = first.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    common::assert_close(&output(&y, "y"), &common::expected_matmul(&x), 1e-4);
}

fn cpu_engines_stay_on_the_cpu() {
    // ort asks ONNX Runtime to pick devices by policy for a session that names none: with a plugin registered, a
    // default engine would move to it. The SDK names the CPU.
    let _plugin = Engine::from_file(common::model("matmul_dynamic"), on(vec![openvino()])).unwrap();
    let config = EngineConfig::default().with_placement_report(true);
    let engine = Engine::from_file(common::model("matmul_dynamic"), config).unwrap();
    let placement = engine.placement().expect("placement recorded");
    assert!(placement.providers.iter().all(|p| p.provider == "CPUExecutionProvider"), "{placement:?}");
    assert_eq!(engine.accelerators().active, vec!["CPUExecutionProvider"]);
}

fn minilm_matches_cpu() {
    let e = common::expected();
    let ids: Vec<i64> =
        e["minilm-l6-int8"]["input_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let shape = [1, ids.len() as i64];
    let (mask, types) = (vec![1i64; ids.len()], vec![0i64; ids.len()]);
    let run = |accelerators| {
        let engine = Engine::from_file(common::real_model("minilm-l6-int8"), on(accelerators)).unwrap();
        let out = engine
            .run(&[
                ("input_ids", TensorRef::new(&shape, &ids)),
                ("attention_mask", TensorRef::new(&shape, &mask)),
                ("token_type_ids", TensorRef::new(&shape, &types)),
            ])
            .unwrap();
        (engine.accelerators().active.clone(), output(&out, "last_hidden_state"))
    };
    let (active, ov) = run(vec![openvino()]);
    assert_eq!(active[0], OPENVINO_PROVIDER);
    let (_, cpu) = run(vec![Accelerator::Cpu]);
    let (cosine, worst) = compare(&ov, &cpu);
    // MiniLM's verdict tolerance: cosine 0.99 against the reference.
    assert!(cosine >= 0.99, "cosine {cosine}, max |diff| {worst}");
}

fn yolov8n_matches_cpu() {
    let pixels: Vec<f32> = (0..3 * 320 * 320u64).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    let run = |accelerators| {
        let engine = Engine::from_file(common::real_model("yolov8n-320"), on(accelerators)).unwrap();
        let out = engine.run(&[("images", TensorRef::new(&[1, 3, 320, 320], &pixels))]).unwrap();
        (engine.accelerators().active.clone(), out[0].to_vec::<f32>().unwrap())
    };
    let (active, ov) = run(vec![openvino()]);
    assert_eq!(active[0], OPENVINO_PROVIDER);
    let (_, cpu) = run(vec![Accelerator::Cpu]);
    let (cosine, worst) = compare(&ov, &cpu);
    assert!(cosine >= 0.99, "cosine {cosine}, max |diff| {worst}");
}

fn silero_falls_back() {
    let audio: Vec<f32> = (0..512).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let state = vec![0f32; 2 * 128];
    let run = |accelerators| {
        let engine = Engine::from_file(common::real_model("silero-vad"), on(accelerators)).unwrap();
        let out = engine
            .run(&[
                ("input", TensorRef::new(&[1, 512], &audio)),
                ("state", TensorRef::new(&[2, 1, 128], &state)),
                ("sr", TensorRef::new(&[], &[16000i64])),
            ])
            .unwrap();
        (engine.accelerators().clone(), output(&out, "output"))
    };
    let (report, ov) = run(vec![openvino()]);
    // OpenVINO takes Silero's graph and then fails to convert its dynamic-rank If branches: the engine runs it on
    // the CPU and says why.
    assert_eq!(report.active, vec!["CPUExecutionProvider"], "{report:?}");
    let skipped = report.skipped.iter().find(|s| s.provider == OPENVINO_PROVIDER).expect("OpenVINO reported skipped");
    assert!(skipped.reason.contains("could not compile"), "{}", skipped.reason);
    let (_, cpu) = run(vec![Accelerator::Cpu]);
    assert_eq!(ov, cpu);
}

fn placement_shows_fallback() {
    let config = on(vec![openvino()]).with_placement_report(true);
    let whole = Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
    let placement = whole.placement().expect("placement recorded");
    assert_eq!(placement.providers.len(), 1, "{placement:?}");
    assert_eq!(placement.providers[0].provider, OPENVINO_PROVIDER);
    let partial = Engine::from_file(common::model("accelerator_fallback"), config).unwrap();
    let placement = partial.placement().expect("placement recorded");
    let on_cpu = placement.providers.iter().find(|p| p.provider == "CPUExecutionProvider").expect("CPU nodes");
    let on_ov = placement.providers.iter().find(|p| p.provider == OPENVINO_PROVIDER).expect("OpenVINO nodes");
    assert!(on_cpu.nodes >= 1 && on_ov.partitions >= 1, "{placement:?}");
    let x = [1f32, 2.0, 3.0, 4.0];
    let ov = partial.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    let cpu = Engine::from_file(common::model("accelerator_fallback"), EngineConfig::default()).unwrap();
    let cpu = cpu.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    common::assert_close(&output(&ov, "y"), &output(&cpu, "y"), 1e-3);
}

fn strict_refuses() {
    let strict = on(vec![openvino()]).with_strict(true);
    let err = Engine::from_file(common::model("accelerator_fallback"), strict.clone()).expect_err("refused");
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("strict mode")), "{err:?}");
    // The whole model on OpenVINO is fine in strict mode.
    let engine = Engine::from_file(common::model("matmul_dynamic"), strict).unwrap();
    assert_eq!(engine.accelerators().active[0], OPENVINO_PROVIDER);
    // So is asking for a device the plugin does not have: refused, not skipped.
    let npu = on(vec![Accelerator::openvino(plugin_path(), DeviceKind::Npu)]).with_strict(true);
    let err = Engine::from_file(common::model("matmul_dynamic"), npu).expect_err("refused");
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("no Npu device")), "{err:?}");
}

fn absent_device_is_skipped() {
    let npu = Accelerator::openvino(plugin_path(), DeviceKind::Npu);
    let engine = Engine::from_file(common::model("matmul_dynamic"), on(vec![npu])).unwrap();
    let report = engine.accelerators();
    assert_eq!(report.active, vec!["CPUExecutionProvider"]);
    assert!(report.skipped[0].reason.contains("offers no Npu device"), "{report:?}");
    assert!(report.skipped[0].reason.contains("OpenVINOExecutionProvider CPU"), "says what is there: {report:?}");
}

fn compile_cache() {
    let dir = std::env::temp_dir().join(format!("openautoglm-ov-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Same file name, other weights: what an app's model update looks like.
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    let model = model_dir.join("model.onnx");
    let config = on(vec![openvino()]).with_cache_dir(dir.join("cache").display().to_string());
    let x = [0.5f32, -1.0, 2.0, 4.0];
    let run = |engine: &Engine| output(&engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap(), "y");

    std::fs::copy(common::model("matmul_dynamic"), &model).unwrap();
    let first = Engine::from_file(&model, config.clone()).unwrap();
    assert_eq!(first.compile_cache(), CacheOutcome::Miss);
    let blobs = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    let openvino_dir = dir.join("cache/openvino");
    assert!(blobs(&openvino_dir) > 0, "OpenVINO wrote no compiled blob to {}", openvino_dir.display());
    let want = common::expected_matmul(&x);
    common::assert_close(&run(&first), &want, 1e-4);
    let again = Engine::from_file(&model, config.clone()).unwrap();
    assert_eq!(again.compile_cache(), CacheOutcome::Hit);
    assert_eq!(again.accelerators().active[0], OPENVINO_PROVIDER);
    common::assert_close(&run(&again), &want, 1e-4);

    std::fs::copy(common::model("matmul_reweighted"), &model).unwrap();
    let updated = Engine::from_file(&model, config).unwrap();
    assert_ne!(updated.compile_cache(), CacheOutcome::Hit, "a weights-only change is a new entry");
    let reweighted = run(&updated);
    let stale = reweighted.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4);
    assert!(!stale, "served the old weights' compiled model: {reweighted:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn verdict_class() {
    let class = numerics_class(&openvino());
    assert_eq!(class, "linux-x86_64-openvino");
    // `Auto` on a plugin runs FP32 (its kernels have no guidance row, and CPU verdicts never count there), whatever
    // the real YOLOv8n bundle's CPU verdicts allow.
    let bundle = common::bundle("yolov8n-320");
    let engine = Engine::from_bundle(&bundle, on(vec![openvino()])).unwrap();
    assert_eq!(engine.accelerators().active[0], OPENVINO_PROVIDER);
    let choice = engine.precision().expect("bundle choice");
    assert_eq!(choice.precision, openautoglm::Precision::Fp32, "{choice:?}");
    // An INT8 variant that passed only on the CPU classes is refused on the plugin, naming its class.
    let refused = Engine::from_bundle(&bundle, on(vec![openvino()]).with_precision(openautoglm::Precision::Int8));
    if let Err(e) = refused {
        assert!(matches!(&e, Error::InvalidConfig { reason } if reason.contains(&class)), "{e:?}");
    } else {
        let verdicts = std::fs::read_to_string(bundle.join("bundle.json")).unwrap();
        assert!(verdicts.contains(&format!("\"{class}\"")), "an INT8 variant ran on {class} without a verdict there");
    }
}
