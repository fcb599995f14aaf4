//! The real OCR pair (PP-OCRv6 tiny and small recognizers, cut from faster-paddle's wheel by `cargo xtask test`'s
//! set-up) on labelled lines rendered by xtask: CTC decoding with each model's own dictionary reads the true text,
//! and a cascade from a manifest answers with the path's model.

mod common;

use std::path::PathBuf;

use openautoglm::cascade::{Cascade, CascadeManifest, CascadePath, CascadeStage, Confidence, GateSpec};
use openautoglm::ctc::CtcDecoder;
use openautoglm::{Engine, EngineConfig, TensorRef};

fn pair_dir() -> PathBuf {
    std::env::var_os("OPENAUTOGLM_CASCADES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/openautoglm/cascade"))
        .join("ocr-rec")
}

/// The first `n` evaluation lines as recognizer inputs, with their true text.
fn lines(n: usize) -> (Vec<Vec<f32>>, Vec<String>) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair_dir().join("lines-evaluation.json")).unwrap()).unwrap();
    let pixels = std::fs::read(pair_dir().join(json["pixels"].as_str().unwrap())).unwrap();
    let (h, w) = (json["height"].as_u64().unwrap() as usize, json["width"].as_u64().unwrap() as usize);
    let (mut inputs, mut offset) = (Vec::new(), 0);
    for lw in json["widths"].as_array().unwrap().iter().take(n) {
        let lw = lw.as_u64().unwrap() as usize;
        let mut plane = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..lw {
                plane[y * w + x] = (pixels[offset + y * lw + x] as f32 / 255.0 - 0.5) / 0.5;
            }
        }
        offset += lw * h;
        inputs.push([plane.as_slice(), &plane, &plane].concat());
    }
    let texts = json["texts"].as_array().unwrap().iter().take(n).map(|t| t.as_str().unwrap().to_owned()).collect();
    (inputs, texts)
}

fn same(a: &str, b: &str) -> bool {
    a.split_whitespace().collect::<String>() == b.split_whitespace().collect::<String>()
}

const SHAPE: [i64; 4] = [1, 3, 48, 320];

#[test]
fn both_recognizers_read_the_labelled_lines_with_their_own_dictionaries() {
    common::init();
    let (inputs, texts) = lines(40);
    for (model, labels, at_least) in [("fast.onnx", "fast_labels.json", 30), ("main.onnx", "main_labels.json", 37)] {
        let engine = Engine::from_file(pair_dir().join(model), EngineConfig::default()).unwrap();
        let decoder = CtcDecoder::from_file(pair_dir().join(labels)).unwrap();
        let correct = inputs
            .iter()
            .zip(&texts)
            .filter(|(input, truth)| {
                let out = engine.run(&[("x", TensorRef::new(&SHAPE, input))]).unwrap();
                same(&decoder.decode(&out[0]).unwrap().text, truth)
            })
            .count();
        assert!(correct >= at_least, "{model}: {correct} of 40 lines read exactly");
    }
    // The other model's dictionary does not fit: a typed error, not a wrong text.
    let fast = Engine::from_file(pair_dir().join("fast.onnx"), EngineConfig::default()).unwrap();
    let out = fast.run(&[("x", TensorRef::new(&SHAPE, &inputs[0]))]).unwrap();
    let wrong = CtcDecoder::from_file(pair_dir().join("main_labels.json")).unwrap();
    assert!(matches!(wrong.decode(&out[0]), Err(openautoglm::Error::InvalidConfig { .. })));
}

#[test]
fn a_manifest_cascade_escalates_the_unsure_lines_and_keeps_the_accuracy() {
    common::init();
    let dir = std::env::temp_dir().join(format!("ocr-cascade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stage = |model: &str, labels: &str| CascadeStage {
        model: pair_dir().join(model).display().to_string(),
        labels: Some(pair_dir().join(labels).display().to_string()),
    };
    let manifest = CascadeManifest {
        fast: stage("fast.onnx", "fast_labels.json"),
        main: stage("main.onnx", "main_labels.json"),
        gate: GateSpec {
            confidence: Confidence::SequenceMeanMax,
            output: "fetch_name_0".into(),
            threshold: 0.97,
            logits: false,
        },
        device_class: None,
        target: None,
        main_accuracy: None,
        inputs: None,
        table: Vec::new(),
    };
    let path = dir.join("cascade.json");
    std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let loaded = CascadeManifest::load(&path).unwrap();
    assert_eq!(loaded, manifest);
    let cascade = Cascade::from_manifest(&path, EngineConfig::default()).unwrap();
    let decoder = |labels: &Option<String>| CtcDecoder::from_file(labels.as_deref().unwrap()).unwrap();
    let (fast_labels, main_labels) = (decoder(&manifest.fast.labels), decoder(&manifest.main.labels));
    let (inputs, texts) = lines(40);
    let mut correct = 0;
    for (input, truth) in inputs.iter().zip(&texts) {
        let result = cascade.run(&[("x", TensorRef::new(&SHAPE, input))]).unwrap();
        let labels = if result.path == CascadePath::Fast { &fast_labels } else { &main_labels };
        let read = labels.decode(&result.outputs[0]).unwrap();
        assert_eq!(result.path == CascadePath::Main, result.confidence.unwrap() < 0.97);
        correct += usize::from(same(&read.text, truth));
    }
    let stats = cascade.stats();
    assert!(stats.escalations > 0 && stats.escalations < 40, "{stats:?}");
    assert!(correct >= 36, "{correct} of 40 lines read exactly through the cascade");
    // The engines a manifest loaded are the cascade's own: closing it releases them.
    cascade.close();
    assert!(cascade.fast().is_closed(), "the manifest's engines close with the cascade");
    std::fs::remove_dir_all(&dir).ok();
}
