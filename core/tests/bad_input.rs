//! Every kind of bad input gives its typed error, and the engine keeps working afterwards.

mod common;

use std::io::Write;

use openautoglm::{ElementType, Engine, EngineConfig, Error, TensorRef};

const GOOD: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

/// Runs `f` against a fresh matmul engine, then checks that the engine still answers correctly.
fn with_engine(f: impl FnOnce(&Engine)) {
    let engine = common::engine("matmul_dynamic");
    f(&engine);
    let out = engine.run(&[("x", TensorRef::new(&[1, 4], &GOOD))]).expect("engine still works after bad input");
    common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&GOOD), 1e-5);
}

fn assert_invalid_input(result: Result<Vec<openautoglm::Tensor>, Error>, input: &str) -> String {
    match result {
        Err(Error::InvalidInput { name, reason }) => {
            assert_eq!(name, input);
            reason
        }
        other => panic!("expected InvalidInput for `{input}`, got {other:?}"),
    }
}

fn temp_model(bytes: &[u8]) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with(bytes)
}

/// A tiny temp-file helper (std only) so the test needs no extra crate.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TempPath(PathBuf);

    impl TempPath {
        pub fn with(bytes: &[u8]) -> TempPath {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "openautoglm-{}-{}.onnx",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let mut f = std::fs::File::create(&path).unwrap();
            super::Write::write_all(&mut f, bytes).unwrap();
            TempPath(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn missing_file() {
    common::init();
    let err = Engine::from_file("/no/such/model.onnx", EngineConfig::default()).unwrap_err();
    assert_eq!(err, Error::ModelNotFound { path: "/no/such/model.onnx".into() });
}

#[test]
fn directory_instead_of_file() {
    common::init();
    let err = Engine::from_file(common::data(), EngineConfig::default()).unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err:?}");
}

#[test]
fn empty_file_and_empty_bytes() {
    common::init();
    let file = temp_model(&[]);
    assert!(matches!(Engine::from_file(file.path(), EngineConfig::default()), Err(Error::InvalidModel { .. })));
    assert!(matches!(Engine::from_bytes(&[], EngineConfig::default()), Err(Error::InvalidModel { .. })));
}

#[test]
fn truncated_model() {
    common::init();
    let bytes = std::fs::read(common::model("matmul_dynamic")).unwrap();
    let half = &bytes[..bytes.len() / 2];
    let file = temp_model(half);
    assert!(matches!(Engine::from_file(file.path(), EngineConfig::default()), Err(Error::InvalidModel { .. })));
    assert!(matches!(Engine::from_bytes(half, EngineConfig::default()), Err(Error::InvalidModel { .. })));
}

#[test]
fn not_an_onnx_file() {
    common::init();
    let file = temp_model(b"hello, I am not a model\n");
    let err = Engine::from_file(file.path(), EngineConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidModel { .. }), "{err:?}");
    let mut garbage = Vec::new();
    for i in 0..4096u32 {
        garbage.write_all(&i.wrapping_mul(2654435761).to_le_bytes()).unwrap();
    }
    assert!(matches!(Engine::from_bytes(&garbage, EngineConfig::default()), Err(Error::InvalidModel { .. })));
}

#[test]
fn wrong_input_name() {
    with_engine(|e| {
        let reason = assert_invalid_input(e.run(&[("z", TensorRef::new(&[1, 4], &GOOD))]), "z");
        assert!(reason.contains("\"x\""), "the error lists the real inputs: {reason}");
    });
}

#[test]
fn missing_input() {
    with_engine(|e| {
        assert_invalid_input(e.run(&[]), "x");
    });
}

#[test]
fn extra_input() {
    with_engine(|e| {
        assert_invalid_input(
            e.run(&[("x", TensorRef::new(&[1, 4], &GOOD)), ("extra", TensorRef::new(&[1], &[1f32]))]),
            "extra",
        );
    });
}

#[test]
fn duplicate_input() {
    with_engine(|e| {
        let x = TensorRef::new(&[1, 4], &GOOD);
        let reason = assert_invalid_input(e.run(&[("x", x), ("x", x)]), "x");
        assert!(reason.contains("more than once"));
    });
}

#[test]
fn wrong_element_type() {
    with_engine(|e| {
        let reason = assert_invalid_input(e.run(&[("x", TensorRef::new(&[1, 4], &[1i64, 2, 3, 4]))]), "x");
        assert!(reason.contains("f32") && reason.contains("i64"), "{reason}");
    });
}

#[test]
fn wrong_rank() {
    with_engine(|e| {
        let reason = assert_invalid_input(e.run(&[("x", TensorRef::new(&[4], &GOOD))]), "x");
        assert!(reason.contains("rank 2"), "{reason}");
    });
}

#[test]
fn wrong_fixed_dim() {
    with_engine(|e| {
        let reason = assert_invalid_input(e.run(&[("x", TensorRef::new(&[1, 5], &[0f32; 5]))]), "x");
        assert!(reason.contains("must be 4") && reason.contains("[batch, 4]"), "{reason}");
    });
}

#[test]
fn data_length_not_matching_shape() {
    with_engine(|e| {
        let reason = assert_invalid_input(e.run(&[("x", TensorRef::new(&[2, 4], &GOOD))]), "x");
        assert!(reason.contains("32 bytes") && reason.contains("16 bytes"), "{reason}");
        assert_invalid_input(e.run(&[("x", TensorRef::from_bytes(ElementType::F32, &[1, 4], &[0u8; 15]))]), "x");
    });
}

#[test]
fn negative_and_overflowing_dims() {
    with_engine(|e| {
        assert_invalid_input(e.run(&[("x", TensorRef::new(&[-1, 4], &GOOD))]), "x");
        assert_invalid_input(e.run(&[("x", TensorRef::new(&[i64::MAX, 4], &GOOD))]), "x");
    });
}

#[test]
fn zero_size_tensor_runs() {
    with_engine(|e| {
        let out = e.run(&[("x", TensorRef::new(&[0, 4], &[] as &[f32]))]).expect("a zero-batch run is valid");
        assert_eq!(out[0].shape, vec![0, 3]);
        assert!(out[0].data.is_empty());
    });
}

#[test]
fn nan_and_infinite_values_are_allowed() {
    with_engine(|e| {
        let out = e.run(&[("x", TensorRef::new(&[1, 4], &[f32::NAN, f32::INFINITY, 1.0, 2.0]))]).unwrap();
        assert!(out[0].to_vec::<f32>().unwrap().iter().all(|v| v.is_nan()));
    });
}

#[test]
fn error_messages_never_carry_tensor_contents() {
    with_engine(|e| {
        let err = e.run(&[("x", TensorRef::new(&[1, 3], &[123.456f32, 789.25, 1.0]))]).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("123.456") && !text.contains("789.25"), "{text}");
    });
}

#[test]
fn scalar_where_a_vector_is_declared() {
    let engine = common::engine("multi_io");
    let reason = assert_invalid_input(
        engine.run(&[("a", TensorRef::new(&[], &[1f32])), ("b", TensorRef::new(&[1], &[1i64]))]),
        "a",
    );
    assert!(reason.contains("rank"), "{reason}");
}
