//! Its own test binary (its own process): it installs a capturing `log` logger before ONNX Runtime loads, so every
//! message, ONNX Runtime's included, is seen here.

mod common;

use std::sync::Mutex;

use common::onnx::{self, D};
use openautoglm::{Engine, EngineConfig, Error, LogLevel, TensorRef, logging};

static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS.lock().unwrap().push((record.level(), record.target().to_owned(), record.args().to_string()));
    }
    fn flush(&self) {}
}

/// y = Reshape(x, shape): fails inside ONNX Runtime when `shape` does not fit `x`.
fn reshape_model() -> Vec<u8> {
    onnx::model(&onnx::graph(&[
        onnx::node("Reshape", &["x", "shape"], &["y"]),
        onnx::input(b"x", onnx::FLOAT, &[D::Fixed(4)]),
        onnx::input(b"shape", onnx::INT64, &[D::Fixed(2)]),
        onnx::output(b"y", onnx::FLOAT, &[]),
    ]))
}

#[test]
fn onnx_runtime_logs_through_log_and_failed_runs_are_not_errors() {
    log::set_logger(&Capture).unwrap();
    logging::set_level(LogLevel::Debug);
    assert_eq!(logging::level(), LogLevel::Debug);
    common::init();
    let engine = Engine::from_bytes(&reshape_model(), EngineConfig::default()).unwrap();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    for _ in 0..50 {
        let result = engine.run(&[("x", TensorRef::new(&[4], &x)), ("shape", TensorRef::new(&[2], &[3i64, 3]))]);
        assert!(matches!(result, Err(Error::InferenceFailed { .. })), "{result:?}");
    }
    let ok = engine.run(&[("x", TensorRef::new(&[4], &x)), ("shape", TensorRef::new(&[2], &[2i64, 2]))]).unwrap();
    assert_eq!(ok[0].shape, [2, 2]);

    let records = RECORDS.lock().unwrap().clone();
    let from_ort: Vec<_> = records.iter().filter(|(_, target, _)| target == "onnxruntime").collect();
    assert!(
        from_ort.iter().any(|(level, _, message)| *level == log::Level::Debug && message.contains("openautoglm-run")),
        "ONNX Runtime's report of the failed runs arrives through `log`, at debug: {from_ort:?}"
    );
    let errors: Vec<_> = from_ort
        .iter()
        .filter(|(level, _, message)| *level <= log::Level::Warn && message.contains("openautoglm-run"))
        .collect();
    assert!(errors.is_empty(), "failed runs, returned as typed errors, are not logged as errors too: {errors:?}");

    // Quiet: nothing reaches the logger at all.
    logging::set_level(LogLevel::Off);
    RECORDS.lock().unwrap().clear();
    let quiet = Engine::from_bytes(&reshape_model(), EngineConfig::default()).unwrap();
    let _ = quiet.run(&[("x", TensorRef::new(&[4], &x)), ("shape", TensorRef::new(&[2], &[3i64, 3]))]);
    let _ = Engine::from_bytes(b"not a model", EngineConfig::default());
    assert!(RECORDS.lock().unwrap().is_empty(), "{:?}", RECORDS.lock().unwrap());
    logging::set_level(LogLevel::Warn);

    measured_elsewhere_is_said_with_both_classes();
}

/// Bundle verdicts and timings, and a cascade's table, taken on another class than this engine's: a warning names
/// both (part of the test above: one logger per process).
fn measured_elsewhere_is_said_with_both_classes() {
    let here = openautoglm::numerics_class(&openautoglm::Accelerator::Cpu);
    let timed_here = openautoglm::device_class(&openautoglm::Accelerator::Cpu);
    let elsewhere = if here.contains("aarch64") { "linux-x86_64-cpu" } else { "linux-aarch64-cpu" };
    let dir = std::env::temp_dir().join(format!("openautoglm-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, file) in [("identity_f32", "fp32.onnx"), ("identity_f16", "fp16.onnx")] {
        std::fs::copy(common::model(name), dir.join(file)).unwrap();
    }
    std::fs::write(
        dir.join("bundle.json"),
        format!(
            r#"{{"format": 1, "model": "identity", "variants": [
                {{"precision": "fp32", "file": "fp32.onnx", "accurate": true,
                  "measured": {{"{elsewhere}": {{"mean_ms": 1.0}}}}}},
                {{"precision": "fp16", "file": "fp16.onnx", "accurate": true,
                  "verdicts": {{"{elsewhere}": {{"passed": true}}}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("cascade.json"),
        format!(
            r#"{{"fast": {{"model": "fp32.onnx"}}, "main": {{"model": "fp32.onnx"}},
                "gate": {{"confidence": "top_probability", "output": "y", "threshold": 0.5}},
                "device_class": "{elsewhere}"}}"#
        ),
    )
    .unwrap();
    RECORDS.lock().unwrap().clear();
    let engine = Engine::from_bundle(&dir, EngineConfig::default()).unwrap();
    assert_eq!(engine.precision().unwrap().file, "fp32.onnx", "FP16 was judged elsewhere only");
    let _cascade =
        openautoglm::cascade::Cascade::from_manifest(dir.join("cascade.json"), EngineConfig::default()).unwrap();
    let warnings: Vec<String> = RECORDS
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _, _)| *level == log::Level::Warn)
        .map(|(_, _, message)| message.clone())
        .collect();
    let said = |what: &str, a: &str, b: &str| {
        assert!(
            warnings.iter().any(|w| w.contains(what) && w.contains(a) && w.contains(b)),
            "a warning about {what} naming {a} and {b}: {warnings:?}"
        )
    };
    said("judged on", elsewhere, &here);
    said("timed on", elsewhere, &timed_here);
    said("cascade", elsewhere, &timed_here);
    let _ = std::fs::remove_dir_all(&dir);
}
