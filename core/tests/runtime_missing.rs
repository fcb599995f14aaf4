//! Its own test binary (so its own process): what happens before any runtime is loaded.

use openautoglm::{Engine, EngineConfig, Error, ORT_PATH_ENV, Runtime};

#[path = "common/mod.rs"]
mod common;

#[test]
fn missing_runtime_is_a_typed_error_and_a_later_load_succeeds() {
    let real = common::ort_path();
    // An explicit path that does not exist.
    match Runtime::init(Some(std::path::Path::new("/no/such/libonnxruntime.so"))) {
        Err(Error::RuntimeUnavailable { path, reason }) => {
            assert_eq!(path, "/no/such/libonnxruntime.so");
            assert!(reason.contains("1.22"), "says what is needed: {reason}");
        }
        other => panic!("expected RuntimeUnavailable, got {other:?}"),
    }
    // The default search, pointed at a missing library: creating an engine fails with a typed error, no panic.
    // SAFETY: this test binary has a single test, so no other thread reads the environment concurrently.
    unsafe { std::env::set_var(ORT_PATH_ENV, "/also/missing/libonnxruntime.so") };
    match Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default()) {
        Err(Error::RuntimeUnavailable { path, .. }) => {
            assert_eq!(path, "/also/missing/libonnxruntime.so")
        }
        other => panic!("expected RuntimeUnavailable, got {other:?}"),
    }
    // A file that is not a shared library.
    assert!(matches!(Runtime::init(Some(&common::model("matmul_dynamic"))), Err(Error::RuntimeUnavailable { .. })));
    assert!(Runtime::info().is_none());
    // Recovers: the real library loads and engines work.
    let info = Runtime::init(Some(&real)).expect("the real runtime loads after failed attempts");
    assert!(info.ort_version.starts_with("1."));
    assert!(Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default()).is_ok());
}
