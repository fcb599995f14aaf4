//! Real models from registry packages, checked against values computed independently by Python onnxruntime.

mod common;

use openautoglm::{Engine, EngineConfig, TensorRef};

#[test]
fn minilm_int8_matches_python_onnxruntime() {
    common::init();
    let e = common::expected();
    let m = &e["minilm-l6-int8"];
    let ids: Vec<i64> = m["input_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let n = ids.len() as i64;
    let mask = vec![1i64; ids.len()];
    let types = vec![0i64; ids.len()];
    let shape = [1, n];
    let engine = Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default()).unwrap();
    assert_eq!(engine.info().inputs.len(), 3);
    let out = engine
        .run(&[
            ("input_ids", TensorRef::new(&shape, &ids)),
            ("attention_mask", TensorRef::new(&shape, &mask)),
            ("token_type_ids", TensorRef::new(&shape, &types)),
        ])
        .unwrap();
    let hidden = out.iter().find(|t| t.name == "last_hidden_state").unwrap();
    assert_eq!(hidden.shape, vec![1, n, 384]);
    let want: Vec<f32> =
        m["last_hidden_state"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let got = hidden.to_vec::<f32>().unwrap();
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "max abs error {worst}");
}

#[test]
fn silero_vad_state_loop_matches_python_onnxruntime() {
    common::init();
    let e = common::expected();
    let s = &e["silero-vad"];
    let frames = s["frames"].as_u64().unwrap() as usize;
    let len = s["frame_len"].as_u64().unwrap() as usize;
    let sr = s["sample_rate"].as_i64().unwrap();
    let tones: Vec<(f64, f64)> =
        s["tones"].as_array().unwrap().iter().map(|t| (t[0].as_f64().unwrap(), t[1].as_f64().unwrap())).collect();
    let audio: Vec<f32> = (0..frames * len)
        .map(|i| {
            tones.iter().map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * i as f64 / sr as f64).sin()).sum::<f64>()
                as f32
        })
        .collect();
    let engine = Engine::from_file(common::real_model("silero-vad"), EngineConfig::default()).unwrap();
    let mut state = vec![0f32; 2 * 128];
    for f in 0..frames {
        let out = engine
            .run(&[
                ("input", TensorRef::new(&[1, len as i64], &audio[f * len..(f + 1) * len])),
                ("state", TensorRef::new(&[2, 1, 128], &state)),
                ("sr", TensorRef::new(&[], &[sr])),
            ])
            .unwrap();
        let p = out.iter().find(|t| t.name == "output").unwrap().to_vec::<f32>().unwrap()[0];
        let want = s["probabilities"][f].as_f64().unwrap() as f32;
        assert!((p - want).abs() < 1e-4, "frame {f}: {p} vs {want}");
        state = out.iter().find(|t| t.name == "stateN").unwrap().to_vec::<f32>().unwrap();
        let sum: f64 = state.iter().map(|v| v.abs() as f64).sum();
        let want_sum = s["state_abs_sums"][f].as_f64().unwrap();
        assert!((sum - want_sum).abs() < 1e-3 * want_sum, "frame {f}: state sum {sum} vs {want_sum}");
    }
}
