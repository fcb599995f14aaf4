//! The engine's own decisions: placement reports, precision and model bundles, float16 I/O, the compile cache and
//! shape buckets, on the real ONNX Runtime (CPU provider here).

mod common;

use std::path::{Path, PathBuf};

use half::f16;
use openautoglm::{
    Accelerator, CacheOutcome, ElementType, Engine, EngineConfig, Error, OptimizeLevel, Precision, ShapeBucket,
    TensorRef,
};

/// A fresh directory under the system temp dir, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("openautoglm-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn matmul(engine: &Engine, x: &[f32]) -> Vec<f32> {
    let rows = (x.len() / 4) as i64;
    engine.run(&[("x", TensorRef::new(&[rows, 4], x))]).unwrap()[0].to_vec().unwrap()
}

/// The single cache entry under `dir` (directories not starting with a dot).
fn entry_dir(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_str().unwrap().starts_with('.'))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn placement_is_reported_when_asked() {
    common::init();
    let plain = common::engine("matmul_dynamic");
    assert!(plain.placement().is_none(), "no profiling unless asked");
    let config = EngineConfig::default().with_placement_report(true);
    let engine = Engine::from_file(common::model("matmul_dynamic"), config).unwrap();
    let placement = engine.placement().expect("placement");
    assert_eq!(placement.providers.len(), 1, "{placement:?}");
    assert_eq!(placement.providers[0].provider, "CPUExecutionProvider");
    assert_eq!(placement.providers[0].partitions, 1);
    assert!(placement.nodes() >= 1);
    assert!(placement.warnings.is_empty(), "{:?}", placement.warnings);
    // Profiling ended with the report: the engine runs on as usual.
    let x = [1.0f32, 2.0, 3.0, 4.0];
    common::assert_close(&matmul(&engine, &x), &common::expected_matmul(&x), 1e-5);

    let minilm =
        Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default().with_placement_report(true))
            .unwrap();
    let placement = minilm.placement().unwrap();
    assert!(placement.nodes() > 50, "a transformer has many nodes: {placement:?}");
}

#[test]
fn float16_models_take_and_give_float32() {
    common::init();
    let engine = Engine::from_file(common::model("identity_f16"), EngineConfig::default()).unwrap();
    let x = [1.5f32, -2.0, 0.333, 65504.0, 1e-3, -0.0];
    // f32 in: converted in bulk; f32 out by default.
    let out = engine.run(&[("x", TensorRef::new(&[2, 3], &x))]).unwrap();
    assert_eq!(out[0].element_type, ElementType::F32);
    let expected: Vec<f32> = x.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), expected);
    // f16 in: passed as is.
    let halves = x.map(f16::from_f32);
    let out = engine.run(&[("x", TensorRef::new(&[2, 3], &halves))]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), expected);
    // Unaligned f32 bytes are converted too.
    let mut bytes = vec![0u8; 1];
    bytes.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    let out = engine.run(&[("x", TensorRef::from_bytes(ElementType::F32, &[2, 3], &bytes[1..]))]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), expected);
    // Other types and wrong lengths are still refused, naming the input.
    let ints = [1i32, 2, 3, 4, 5, 6];
    let err = engine.run(&[("x", TensorRef::new(&[2, 3], &ints))]).unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { name, reason } if name == "x" && reason.contains("f16")), "{err}");
    let err = engine.run(&[("x", TensorRef::new(&[2, 3], &x[..5]))]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // Outputs exactly as declared when asked.
    let raw = Engine::from_file(common::model("identity_f16"), EngineConfig::default().with_f16_outputs_as_f32(false))
        .unwrap();
    let out = raw.run(&[("x", TensorRef::new(&[2, 3], &x))]).unwrap();
    assert_eq!(out[0].element_type, ElementType::F16);
    assert_eq!(out[0].to_vec::<f16>().unwrap(), halves);
}

#[test]
fn compile_cache_misses_then_hits_with_the_same_answers() {
    common::init();
    let cache = TempDir::new("cache");
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    let x = [0.5f32, -1.0, 2.0, 3.5, 1.0, 1.0, 1.0, 1.0];
    let first = Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
    assert_eq!(first.compile_cache(), CacheOutcome::Miss);
    let second = Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
    assert_eq!(second.compile_cache(), CacheOutcome::Hit);
    assert_eq!(matmul(&first, &x), matmul(&second, &x));
    common::assert_close(&matmul(&second, &x), &common::expected_matmul(&x), 1e-5);
    // The same model from memory has the same key.
    let bytes = std::fs::read(common::model("matmul_dynamic")).unwrap();
    assert_eq!(Engine::from_bytes(&bytes, config.clone()).unwrap().compile_cache(), CacheOutcome::Hit);
    // Another optimize level is another entry; O0 has nothing to cache.
    let o2 = Engine::from_file(common::model("matmul_dynamic"), config.clone().with_optimize_level(OptimizeLevel::O2));
    assert_eq!(o2.unwrap().compile_cache(), CacheOutcome::Miss);
    let o0 = Engine::from_file(common::model("matmul_dynamic"), config.with_optimize_level(OptimizeLevel::O0));
    assert_eq!(o0.unwrap().compile_cache(), CacheOutcome::Disabled);
    assert_eq!(common::engine("matmul_dynamic").compile_cache(), CacheOutcome::Disabled);
}

#[test]
fn damaged_cache_entries_are_rebuilt_never_trusted() {
    common::init();
    let cache = TempDir::new("cache-damage");
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let want = common::expected_matmul(&x);
    let load = || Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
    assert_eq!(load().compile_cache(), CacheOutcome::Miss);
    let entry = entry_dir(&cache.0);
    let model = entry.join("model.onnx");

    // One flipped byte: the checksum catches it.
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&model, &bytes).unwrap();
    let engine = load();
    assert_eq!(engine.compile_cache(), CacheOutcome::Rebuilt);
    common::assert_close(&matmul(&engine, &x), &want, 1e-5);
    assert_eq!(load().compile_cache(), CacheOutcome::Hit);

    // Truncated, then a garbage index, then a deleted model file.
    std::fs::write(&model, &std::fs::read(&model).unwrap()[..10]).unwrap();
    assert_eq!(load().compile_cache(), CacheOutcome::Rebuilt);
    std::fs::write(entry.join("entry.json"), "{ not json").unwrap();
    assert_eq!(load().compile_cache(), CacheOutcome::Rebuilt);
    std::fs::remove_file(&model).unwrap();
    let engine = load();
    assert_eq!(engine.compile_cache(), CacheOutcome::Rebuilt);
    common::assert_close(&matmul(&engine, &x), &want, 1e-5);
    assert_eq!(load().compile_cache(), CacheOutcome::Hit);

    // An unwritable cache directory costs the cache, not the engine.
    let file_not_dir = cache.0.join("plain-file");
    std::fs::write(&file_not_dir, b"x").unwrap();
    let config = EngineConfig::default().with_cache_dir(file_not_dir.display().to_string());
    let engine = Engine::from_file(common::model("matmul_dynamic"), config).expect("loads without the cache");
    assert_eq!(engine.compile_cache(), CacheOutcome::Unavailable);
    common::assert_close(&matmul(&engine, &x), &want, 1e-5);
}

#[test]
fn stale_entries_for_the_same_model_are_pruned() {
    common::init();
    let cache = TempDir::new("cache-stale");
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
    let entry = entry_dir(&cache.0);
    // As if made by another ONNX Runtime version: same model and settings, another key.
    let stale = cache.0.join("0123456789abcdef0123456789abcdef");
    std::fs::rename(&entry, &stale).unwrap();
    assert_eq!(Engine::from_file(common::model("matmul_dynamic"), config).unwrap().compile_cache(), CacheOutcome::Miss);
    assert!(!stale.exists(), "the stale entry is removed when the new one is written");
    assert_eq!(entry_dir(&cache.0), entry);
}

#[test]
fn compile_cache_keeps_real_weights_beside_the_graph() {
    common::init();
    let cache = TempDir::new("cache-minilm");
    let ids = [101i64, 1996, 4248, 2829, 4419, 102];
    let ones = [1i64; 6];
    let zeros = [0i64; 6];
    let run = |engine: &Engine| -> Vec<f32> {
        let shape = [1, 6];
        let inputs = [
            ("input_ids", TensorRef::new(&shape, &ids)),
            ("attention_mask", TensorRef::new(&shape, &ones)),
            ("token_type_ids", TensorRef::new(&shape, &zeros)),
        ];
        engine.run(&inputs).unwrap()[0].to_vec().unwrap()
    };
    let uncached = run(&Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default()).unwrap());
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    let first = Engine::from_file(common::real_model("minilm-l6-int8"), config.clone()).unwrap();
    assert_eq!(first.compile_cache(), CacheOutcome::Miss);
    let entry = entry_dir(&cache.0);
    assert!(std::fs::metadata(entry.join("model.onnx.data")).unwrap().len() > 1_000_000, "weights in a side file");
    let second = Engine::from_file(common::real_model("minilm-l6-int8"), config).unwrap();
    assert_eq!(second.compile_cache(), CacheOutcome::Hit);
    assert_eq!(run(&first), uncached);
    assert_eq!(run(&second), uncached, "the cached graph computes exactly what the optimizer made");
}

#[test]
fn shape_buckets_take_their_shapes_and_the_dynamic_session_the_rest() {
    common::init();
    let buckets = vec![ShapeBucket::new([("batch", 2)]), ShapeBucket::new([("batch", 4)])];
    let engine =
        Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default().with_shape_buckets(buckets))
            .unwrap();
    for rows in [2usize, 4, 3, 2, 1] {
        let x: Vec<f32> = (0..rows * 4).map(|i| i as f32 * 0.5 - 1.0).collect();
        common::assert_close(&matmul(&engine, &x), &common::expected_matmul(&x), 1e-5);
    }
    let stats = engine.shape_bucket_stats();
    assert_eq!(stats.bucket_runs, vec![2, 1]);
    assert_eq!(stats.dynamic_runs, 2);
    // Warmup covers every bucket: one round runs each session once.
    assert_eq!(engine.warmup(1).unwrap().len(), 1);
    assert_eq!(engine.shape_bucket_stats().bucket_runs, vec![3, 2]);
    // Bad inputs are still refused before any session sees them.
    assert!(matches!(engine.run(&[]), Err(Error::InvalidInput { .. })));
}

#[test]
fn shape_buckets_that_do_not_fit_the_model_are_config_errors() {
    common::init();
    for (bucket, expected) in [
        (ShapeBucket::new([("sequence", 8)]), "no dynamic dimension `sequence`"),
        (ShapeBucket::new([("batch", 0)]), "not a valid size"),
        (ShapeBucket::default(), "fixes no dimension"),
    ] {
        let config = EngineConfig::default().with_shape_buckets(vec![bucket]);
        let err = Engine::from_file(common::model("matmul_dynamic"), config).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains(expected)), "{err}");
    }
}

#[test]
fn shape_buckets_and_the_cache_work_together_on_a_real_transformer() {
    common::init();
    let cache = TempDir::new("cache-buckets");
    let ids = [101i64, 1996, 4248, 2829, 102];
    let (ones, zeros) = ([1i64; 5], [0i64; 5]);
    let shape = [1, 5];
    let inputs = [
        ("input_ids", TensorRef::new(&shape, &ids)),
        ("attention_mask", TensorRef::new(&shape, &ones)),
        ("token_type_ids", TensorRef::new(&shape, &zeros)),
    ];
    let dynamic = Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default()).unwrap();
    let want: Vec<f32> = dynamic.run(&inputs).unwrap()[0].to_vec().unwrap();
    let config = EngineConfig::default()
        .with_shape_buckets(vec![ShapeBucket::new([("batch", 1), ("sequence", 5)])])
        .with_cache_dir(cache.0.display().to_string());
    for expected in [CacheOutcome::Miss, CacheOutcome::Hit] {
        let engine = Engine::from_file(common::real_model("minilm-l6-int8"), config.clone()).unwrap();
        assert_eq!(engine.compile_cache(), expected);
        let got: Vec<f32> = engine.run(&inputs).unwrap()[0].to_vec().unwrap();
        common::assert_close(&got, &want, 1e-4);
        assert_eq!(engine.shape_bucket_stats().bucket_runs, vec![1]);
    }
}

/// A bundle made of the identity fixtures: FP32 and FP16 variants with the same interface.
fn fixture_bundle(fp16_accurate: bool) -> TempDir {
    let dir = TempDir::new("bundle");
    for (name, file) in [("identity_f32", "fp32.onnx"), ("identity_f16", "fp16.onnx")] {
        std::fs::copy(common::model(name), dir.0.join(file)).unwrap();
    }
    let manifest = format!(
        r#"{{"format": 1, "model": "identity", "variants": [
            {{"precision": "fp32", "file": "fp32.onnx", "accurate": true}},
            {{"precision": "fp16", "file": "fp16.onnx", "accurate": {fp16_accurate}}}]}}"#
    );
    std::fs::write(dir.0.join("bundle.json"), manifest).unwrap();
    dir
}

#[test]
fn bundles_choose_a_variant_and_say_why() {
    common::init();
    let bundle = fixture_bundle(true);
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let auto = Engine::from_bundle(&bundle.0, EngineConfig::default()).unwrap();
    let choice = auto.precision().unwrap();
    // The CPU row of the table: FP32 on x86-64 (measured), INT8 first on ARM (absent here, so FP32).
    assert_eq!((choice.precision, choice.file.as_str()), (Precision::Fp32, "fp32.onnx"));
    assert!(choice.reason.starts_with("auto"), "{}", choice.reason);

    let fp16 = Engine::from_bundle(&bundle.0, EngineConfig::default().with_precision(Precision::Fp16)).unwrap();
    assert_eq!(fp16.precision().unwrap().file, "fp16.onnx");
    assert_eq!(fp16.info().inputs[0].element_type, Some(ElementType::F16));
    // The caller's f32 code does not change with the precision.
    let out = fp16.run(&[("x", TensorRef::new(&[2, 3], &x))]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), x);

    let err = Engine::from_bundle(&bundle.0, EngineConfig::default().with_precision(Precision::Int8)).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("has no Int8 variant")), "{err}");
    // A single file is what it is.
    let err = Engine::from_file(common::model("identity_f32"), EngineConfig::default().with_precision(Precision::Fp16))
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("bundle")), "{err}");
}

#[test]
fn auto_leaves_out_variants_that_failed_their_accuracy_check() {
    common::init();
    let bundle = fixture_bundle(false);
    let coreml_then_cpu = EngineConfig::default().with_accelerators(vec![
        Accelerator::CoreMl {
            compute_units: openautoglm::CoreMlComputeUnits::All,
            model_format: openautoglm::CoreMlModelFormat::MlProgram,
            static_shapes: false,
            subgraphs: false,
            cache_dir: None,
        },
        Accelerator::Cpu,
    ]);
    // CoreML is not in this ONNX Runtime, so the CPU leads; either way the inaccurate FP16 is never auto-picked.
    let engine = Engine::from_bundle(&bundle.0, coreml_then_cpu).unwrap();
    assert_eq!(engine.precision().unwrap().precision, Precision::Fp32);
    // Asked for by name, it is refused with a typed error that says why: never garbage outputs.
    let err = Engine::from_bundle(&bundle.0, EngineConfig::default().with_precision(Precision::Fp16)).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("fp16.onnx")), "{err}");
}

/// A bundle whose FP16 verdict differs by numerics class: passing on `passes_on`, failing on every other class.
fn bundle_judged_on(passes_on: &str, fails_on: &str) -> TempDir {
    let dir = fixture_bundle(true);
    let manifest = format!(
        r#"{{"format": 1, "model": "identity", "variants": [
            {{"precision": "fp32", "file": "fp32.onnx", "accurate": true}},
            {{"precision": "fp16", "file": "fp16.onnx", "accurate": true, "verdicts": {{
                "{passes_on}": {{"passed": true, "set": "test", "inputs": 24, "worst_score": 0.9995, "threshold": 0.99}},
                "{fails_on}": {{"passed": false, "set": "test", "inputs": 24, "worst_score": 0.41, "threshold": 0.99}}}}}}]}}"#
    );
    std::fs::write(dir.0.join("bundle.json"), manifest).unwrap();
    dir
}

#[test]
fn a_verdict_holds_only_on_the_numerics_class_it_was_taken_on() {
    common::init();
    let here = openautoglm::numerics_class(&Accelerator::Cpu);
    let elsewhere = if here.contains("aarch64") { "linux-x86_64-cpu" } else { "linux-aarch64-cpu" };
    let fp16 = || EngineConfig::default().with_precision(Precision::Fp16);
    // Failed here, passed elsewhere: refused here, whatever the other class says.
    let failed_here = bundle_judged_on(elsewhere, &here);
    let err = Engine::from_bundle(&failed_here.0, fp16()).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { reason } if reason.contains(&here) && reason.contains("0.4100")),
        "{err}"
    );
    let auto = Engine::from_bundle(&failed_here.0, EngineConfig::default()).unwrap();
    assert_eq!(auto.precision().unwrap().file, "fp32.onnx");
    // Passed here, failed elsewhere: it runs here.
    let passed_here = bundle_judged_on(&here, elsewhere);
    let engine = Engine::from_bundle(&passed_here.0, fp16()).unwrap();
    assert_eq!(
        (engine.precision().unwrap().file.as_str(), engine.precision().unwrap().reason.as_str()),
        ("fp16.onnx", "requested")
    );
}

#[test]
fn broken_bundles_are_typed_errors() {
    common::init();
    let missing = Engine::from_bundle("/nonexistent/bundle", EngineConfig::default()).unwrap_err();
    assert!(matches!(missing, Error::ModelNotFound { .. }), "{missing}");
    let bundle = fixture_bundle(true);
    std::fs::write(bundle.0.join("bundle.json"), r#"{"format": 9, "variants": []}"#).unwrap();
    let err = Engine::from_bundle(&bundle.0, EngineConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidModel { .. }), "{err}");
    let bundle = fixture_bundle(true);
    std::fs::remove_file(bundle.0.join("fp32.onnx")).unwrap();
    let err = Engine::from_bundle(&bundle.0, EngineConfig::default()).unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err}");
}

/// The YOLOv8n bundle made by `cargo xtask models prepare` (set up by `cargo xtask test`).
#[test]
fn real_bundle_runs_every_precision_it_has_from_float32_inputs() {
    common::init();
    let bundle = common::bundle("yolov8n-320");
    // A deterministic synthetic image: smooth gradients in each channel.
    let image: Vec<f32> =
        (0..3 * 320 * 320).map(|i| ((i % 320) as f32 / 320.0 + (i / 102400) as f32 * 0.2) % 1.0).collect();
    let run = |precision: Precision| {
        let engine = Engine::from_bundle(&bundle, EngineConfig::default().with_precision(precision)).unwrap();
        let out = engine.run(&[("images", TensorRef::new(&[1, 3, 320, 320], &image))]).unwrap();
        assert_eq!(out[0].element_type, ElementType::F32, "{precision:?} gives f32");
        (engine.precision().unwrap().clone(), out[0].to_vec::<f32>().unwrap())
    };
    let (fp32_choice, fp32) = run(Precision::Fp32);
    assert_eq!(fp32_choice.file, "fp32.onnx");
    let (fp16_choice, fp16) = run(Precision::Fp16);
    assert_eq!(fp16_choice.file, "fp16.onnx");
    let cosine = {
        let dot: f64 = fp32.iter().zip(&fp16).map(|(a, b)| *a as f64 * *b as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        dot / (norm(&fp32) * norm(&fp16))
    };
    assert!(cosine > 0.999, "fp16 vs fp32 cosine {cosine}");
    // YOLOv8n's whole-graph QDQ INT8 fails its check (its class scores round to 0). Explicit INT8 runs an INT8
    // variant that passed on this numerics class's test set, as the bundle records it, or is refused.
    let here = openautoglm::numerics_class(&openautoglm::Accelerator::Cpu);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("bundle.json")).unwrap()).unwrap();
    let passed = |v: &serde_json::Value| v["precision"] == "fp32" || v["verdicts"][&here]["passed"] == true;
    let passing: Vec<&str> = manifest["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| passed(v))
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    assert!(!passing.contains(&"int8-qdq.onnx"), "the whole-graph QDQ variant fails: {passing:?}");
    match Engine::from_bundle(&bundle, EngineConfig::default().with_precision(Precision::Int8)) {
        Ok(engine) => {
            let choice = engine.precision().unwrap();
            assert!(passing.contains(&choice.file.as_str()) && choice.file.starts_with("int8"), "{choice:?}");
            assert_eq!(choice.reason, "requested");
        }
        Err(err) => {
            assert!(matches!(&err, Error::InvalidConfig { .. }), "{err}");
            assert!(!passing.iter().any(|f| f.starts_with("int8")), "{err}: but {passing:?} passed");
        }
    }
    let (auto, _) = run(Precision::Auto);
    assert!(passing.contains(&auto.file.as_str()), "Auto never picks a variant that failed here: {auto:?}");
    // `models prepare` measured the variants on this host: Auto follows the measurements.
    assert!(auto.reason.contains(&openautoglm::device_class(&openautoglm::Accelerator::Cpu)), "{}", auto.reason);
}

#[test]
fn a_changed_model_file_is_a_new_cache_entry() {
    common::init();
    let cache = TempDir::new("cache-changed");
    let models = TempDir::new("cache-changed-model");
    let path = models.0.join("model.onnx");
    let config = EngineConfig::default().with_cache_dir(cache.0.display().to_string());
    let age = |path: &Path, seconds: u64| {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(seconds)).unwrap();
    };
    std::fs::copy(common::model("matmul_dynamic"), &path).unwrap();
    age(&path, 3600);
    assert_eq!(Engine::from_file(&path, config.clone()).unwrap().compile_cache(), CacheOutcome::Miss);
    // The second launch finds the model's hash by its size and time, and the entry by the hash.
    assert_eq!(Engine::from_file(&path, config.clone()).unwrap().compile_cache(), CacheOutcome::Hit);
    // An app update replaces the model: another size and time, so it is hashed again and gets its own entry.
    std::fs::copy(common::model("multi_io"), &path).unwrap();
    let engine = Engine::from_file(&path, config.clone()).unwrap();
    assert_eq!(engine.compile_cache(), CacheOutcome::Miss);
    assert_eq!(engine.info().inputs.len(), 2, "the new model runs, not the cached old one");
    // Just written (within the timestamp's resolution): hashed every time, never remembered.
    assert_eq!(Engine::from_file(&path, config).unwrap().compile_cache(), CacheOutcome::Hit);
}
