//! Its own test binary (its own process): a broken ONNX Runtime library is refused, and the real one still loads
//! afterwards in the same process.

mod common;

use std::path::PathBuf;
use std::process::Command;

use openautoglm::{Engine, EngineConfig, Error, Runtime};

/// A library that looks like ONNX Runtime 1.31.1 but whose `GetApi` returns NULL, compiled with the system's C
/// compiler.
fn fake_runtime(dir: &std::path::Path) -> PathBuf {
    let source = dir.join("fake_ort.c");
    std::fs::write(
        &source,
        r#"
        #include <stddef.h>
        typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } OrtApiBase;
        static const void* get_api(unsigned version) { (void)version; return NULL; }
        static const char* version(void) { return "1.31.1"; }
        static const OrtApiBase base = { get_api, version };
        const OrtApiBase* OrtGetApiBase(void) { return &base; }
        "#,
    )
    .unwrap();
    let library = dir.join("libfake_onnxruntime.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("the C compiler `{cc}` is needed for this test: {e}"));
    assert!(status.success());
    library
}

#[test]
fn a_library_without_the_api_is_refused_and_the_real_one_loads_after() {
    let dir = std::env::temp_dir().join(format!("openautoglm-fake-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = fake_runtime(&dir);
    match Runtime::init(Some(&fake)) {
        Err(Error::RuntimeUnavailable { path, reason }) => {
            assert_eq!(path, fake.display().to_string());
            assert!(reason.contains("does not provide API"), "{reason}");
        }
        other => panic!("expected RuntimeUnavailable, got {other:?}"),
    }
    assert!(Runtime::info().is_none());
    let info = Runtime::init(Some(&common::ort_path())).expect("the real runtime loads after the broken one");
    assert!(info.ort_version.starts_with("1."));
    assert!(Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default()).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
