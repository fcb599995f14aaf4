//! A model from bytes through the check, ONNX Runtime's load and one warmup: a typed error or a working engine,
//! never a panic (libfuzzer-sys aborts on one, even a caught one) or an abort. Needs ORT_DYLIB_PATH.
#![no_main]

use std::path::Path;

use openautoglm::fuzzing::{Entry, exercise};

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = openautoglm::Runtime::init(None).expect("ORT_DYLIB_PATH names ONNX Runtime");
    let outcome = exercise(bytes, Path::new("/nonexistent/mutant.onnx"), Entry::Bytes);
    assert!(!outcome.contains("panic"), "{outcome}");
});
