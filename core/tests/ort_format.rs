//! ONNX Runtime's own model format (`.ort`, a flatbuffer ONNX Runtime verifies itself) loads from a file and from
//! bytes, past the protobuf model check, and runs like the ONNX model it was made from.

mod common;

use openautoglm::{Engine, EngineConfig, Error, TensorRef};

fn outputs(engine: &Engine) -> Vec<f32> {
    let input = &engine.info().inputs[0];
    let shape: Vec<i64> = vec![1, 3, 320, 320];
    assert_eq!(input.shape.len(), 4, "{input:?}");
    let pixels: Vec<f32> = (0..3 * 320 * 320).map(|i| (i % 251) as f32 / 251.0).collect();
    let out = engine.run(&[(input.name.as_str(), TensorRef::new(&shape, &pixels))]).unwrap();
    out[0].to_vec().unwrap()
}

#[test]
fn an_ort_format_model_loads_from_a_file_and_from_bytes() {
    common::init();
    let dir = common::bundle("yolov8n-320");
    let onnx = Engine::from_file(dir.join("fp32.onnx"), EngineConfig::default()).unwrap();
    let from_file = Engine::from_file(dir.join("fp32.ort"), EngineConfig::default()).unwrap();
    let bytes = std::fs::read(dir.join("fp32.ort")).unwrap();
    let from_bytes = Engine::from_bytes(&bytes, EngineConfig::default()).unwrap();
    let reference = outputs(&onnx);
    for engine in [&from_file, &from_bytes] {
        let got = outputs(engine);
        assert_eq!(got.len(), reference.len());
        let worst = got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-2, "ORT format differs from the ONNX model by {worst}");
    }
}

#[test]
fn a_file_named_ort_that_is_not_one_is_refused() {
    common::init();
    let dir = std::env::temp_dir().join(format!("openautoglm-ort-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("model.ort");
    std::fs::copy(common::model("matmul_dynamic"), &fake).unwrap();
    let result = Engine::from_file(&fake, EngineConfig::default());
    assert!(
        matches!(&result, Err(Error::InvalidModel { reason }) if reason.contains("not an ONNX Runtime format model")),
        "{result:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
