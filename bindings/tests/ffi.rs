//! The FFI surface as Kotlin and Swift see it: packed inputs, version handshake, release.

use std::path::PathBuf;

use openautoglm::{ElementType, EngineConfig, OptimizeLevel, Priority};
use openautoglm_ffi::{CallOptions, CancelToken, InputSpec, NativeEngine, NativeError, init_runtime, native_version};

fn setup() -> std::sync::Arc<NativeEngine> {
    let ort = std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| {
        format!(
            "{}/.cache/openautoglm/onnxruntime-1.31.1/linux-x86_64/libonnxruntime.so",
            std::env::var("HOME").unwrap()
        )
    });
    init_runtime(Some(ort)).unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/models/multi_io.onnx");
    let config = EngineConfig {
        accelerators: vec![],
        optimize_level: OptimizeLevel::O3,
        intra_op_threads: 1,
        ..EngineConfig::default()
    };
    NativeEngine::from_file(model.display().to_string(), config).unwrap()
}

const NORMAL: Priority = Priority::Normal;

fn options(priority: Priority, timeout_us: Option<i64>, cancel: Option<std::sync::Arc<CancelToken>>) -> CallOptions {
    CallOptions { priority, timeout_us, cancel }
}

fn spec(name: &str, element_type: ElementType, n: i64, offset: i64, length: i64) -> InputSpec {
    InputSpec { name: name.into(), element_type, shape: vec![n], offset, length }
}

#[test]
fn packed_inputs_are_sliced_by_their_specs() {
    let engine = setup();
    let mut data = Vec::new();
    data.extend_from_slice(bytemuck_f32(&[1.0, -2.0]));
    data.extend_from_slice(&5i64.to_le_bytes());
    data.extend_from_slice(&7i64.to_le_bytes());
    let out = engine
        .run(
            vec![spec("a", ElementType::F32, 2, 0, 8), spec("b", ElementType::I64, 2, 8, 16)],
            &data,
            options(NORMAL, None, None),
        )
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].data, [bytemuck_f32(&[6.0, 5.0])].concat());
    assert_eq!(out[2].data, 12i64.to_le_bytes());
}

#[test]
fn a_spec_outside_the_buffer_is_invalid_input() {
    let engine = setup();
    let data = [0u8; 8];
    for (offset, length) in [(0, 16), (4, 8), (i64::MAX, 2), (2, i64::MAX), (-1, 4), (0, -4)] {
        let err = engine
            .run(
                vec![spec("a", ElementType::F32, 2, offset, length), spec("b", ElementType::I64, 0, 0, 0)],
                &data,
                options(NORMAL, None, None),
            )
            .unwrap_err();
        assert!(matches!(err, NativeError::InvalidInput { ref name, .. } if name == "a"), "{err:?}");
    }
}

#[test]
fn release_then_run_is_engine_closed() {
    let engine = setup();
    engine.release();
    engine.release();
    assert!(engine.is_closed());
    let err = engine.run(vec![], &[], options(NORMAL, None, None)).unwrap_err();
    assert_eq!(err, NativeError::EngineClosed);
}

#[test]
fn deadlines_and_cancel_tokens_cross_the_ffi() {
    let engine = setup();
    let mut data = Vec::new();
    data.extend_from_slice(bytemuck_f32(&[1.0, -2.0]));
    data.extend_from_slice(&[0u8; 16]);
    let specs = || vec![spec("a", ElementType::F32, 2, 0, 8), spec("b", ElementType::I64, 2, 8, 16)];
    let err = engine.run(specs(), &data, options(Priority::Interactive, Some(0), None)).unwrap_err();
    assert_eq!(err, NativeError::DeadlineExceeded);
    let token = CancelToken::new();
    token.cancel();
    assert!(token.is_cancelled());
    let err = engine.run(specs(), &data, options(Priority::Background, None, Some(token))).unwrap_err();
    assert_eq!(err, NativeError::Cancelled);
    // A timeout past what the clock holds is no deadline, not a panic.
    assert!(engine.run(specs(), &data, options(NORMAL, Some(i64::MAX), Some(CancelToken::new()))).is_ok());
}

#[test]
fn version_handshake_reports_the_core_version() {
    assert_eq!(native_version(), openautoglm::VERSION);
}

fn bytemuck_f32(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// `release` on an LLM is `close` on an engine: the model goes, and every later call, on the LLM or on a chat made
/// from it, is `EngineClosed` (not a destroyed-object error); a generation already running finishes.
#[test]
fn released_llm_and_its_chats_are_engine_closed() {
    use openautoglm::llm::GenerateOptions;
    use openautoglm_ffi::NativeLlm;
    let _ = setup();
    let dir = std::env::var("OPENAUTOGLM_LLMS")
        .unwrap_or_else(|_| format!("{}/.cache/openautoglm/llm", std::env::var("HOME").unwrap()));
    let llm = NativeLlm::open(format!("{dir}/smollm2-tiny"), EngineConfig::default()).unwrap();
    let chat = llm.new_chat(Some("Be brief.".into()), None).unwrap();
    let options = GenerateOptions { max_tokens: 2, ..GenerateOptions::default() };
    let running = llm.generate("Hello".into(), options.clone()).unwrap();
    assert!(!llm.is_closed());
    llm.release();
    llm.release();
    assert!(llm.is_closed());
    assert!(matches!(llm.generate("Hello".into(), options.clone()), Err(NativeError::EngineClosed)));
    assert!(matches!(llm.new_chat(None, None), Err(NativeError::EngineClosed)));
    assert!(matches!(llm.file(), Err(NativeError::EngineClosed)));
    assert!(matches!(chat.send("Hi".into(), options), Err(NativeError::EngineClosed)));
    assert!(matches!(chat.history(), Err(NativeError::EngineClosed)));
    while running.next_piece().unwrap().is_some() {}
    assert!(running.finish_reason().is_some());
}
