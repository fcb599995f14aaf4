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
}
