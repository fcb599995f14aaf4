//! Paths to the shared fixtures, the cached real models and ONNX Runtime (set by `cargo xtask test`; after
//! `cargo xtask setup`, plain `cargo test` finds them in the cache too).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;

use openautoglm::{Engine, EngineConfig, Runtime};

fn cache_dir() -> PathBuf {
    std::env::var_os("OPENAUTOGLM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/openautoglm"))
}

pub fn ort_path() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("onnxruntime-1.31.1/linux-x86_64/libonnxruntime.so"))
}

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        Runtime::init(Some(&ort_path())).expect("ONNX Runtime loads (run `cargo xtask setup`)");
    });
}

pub fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn model(name: &str) -> PathBuf {
    data().join(format!("models/{name}.onnx"))
}

pub fn real_model(id: &str) -> PathBuf {
    let dir = std::env::var_os("OPENAUTOGLM_MODELS").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("models"));
    dir.join(format!("{id}.onnx"))
}

/// A model bundle made by `cargo xtask models prepare` (bundle.json and its variants).
pub fn bundle(id: &str) -> PathBuf {
    let dir =
        std::env::var_os("OPENAUTOGLM_BUNDLES").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("variants"));
    dir.join(id)
}

/// A decoder LLM made by `cargo xtask models prepare smollm2` (or `smollm2-tiny`).
pub fn llm(id: &str) -> PathBuf {
    let dir = std::env::var_os("OPENAUTOGLM_LLMS").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("llm"));
    dir.join(id)
}

pub fn engine(name: &str) -> Engine {
    init();
    Engine::from_file(model(name), EngineConfig::default()).expect("fixture model loads")
}

pub fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data().join("expected.json")).unwrap()).unwrap()
}

/// y = x @ W + b from the fixture's W and b.
pub fn expected_matmul(x: &[f32]) -> Vec<f32> {
    let e = expected();
    let w: Vec<f32> = e["matmul_dynamic"]["W"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let b: Vec<f32> = e["matmul_dynamic"]["b"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let rows = x.len() / 4;
    (0..rows * 3)
        .map(|i| {
            let (row, col) = (i / 3, i % 3);
            (0..4).fold(b[col], |acc, k| acc + x[row * 4 + k] * w[k * 3 + col])
        })
        .collect()
}

pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: {g} vs {w}");
    }
}
pub mod http;
#[cfg(feature = "llm")]
pub mod llm;
pub mod onnx;
