//! Arbitrary requests (input name, element type, shape, bytes) against real fixture models: a typed error or
//! outputs, never a panic, and the engine answers a good request afterwards. Needs ORT_DYLIB_PATH and
//! OPENAUTOGLM_TEST_DATA (core/tests/data).
#![no_main]

use std::sync::OnceLock;

use openautoglm::fuzzing::run_request;
use openautoglm::{Engine, EngineConfig, TensorRef};

fn engines() -> &'static [Engine] {
    static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let data = std::env::var("OPENAUTOGLM_TEST_DATA").expect("OPENAUTOGLM_TEST_DATA names core/tests/data");
        ["matmul_dynamic", "multi_io", "identity_bool", "identity_f16", "identity_u64"]
            .iter()
            .map(|m| {
                let path = format!("{data}/models/{m}.onnx");
                Engine::from_file(&path, EngineConfig::default().with_threads(1)).expect("fixture loads")
            })
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, request)) = data.split_first() else { return };
    let engines = engines();
    let engine = &engines[usize::from(which) % engines.len()];
    assert_ne!(run_request(engine, request), "panic");
    if which % engines.len() as u8 == 0 {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        assert!(engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).is_ok(), "the engine still answers");
    }
});
