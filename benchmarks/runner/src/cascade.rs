//! `--cascade`: a recognizer cascade over labelled text lines (made by `cargo xtask cascade`).
//!
//! --cascade --profile --fast F.onnx --main M.onnx --fast-labels F.json --main-labels M.json --lines L.json
//!           --rounds R --threads N --ort ORT --out OUT.json
//!   each line through each model alone (median time over R rounds): the data a threshold is chosen from.
//! --cascade --compare --manifest cascade.json --lines L.json --rounds R ... --out OUT.json
//!   the main model alone and the calibrated cascade, round after round, each line timed: what a user would see.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bench_schema::cascade::{
    CascadeComparison, CascadePathTaken, CascadeProfile, ComparedLine, ProfiledLine, TextLines,
};
use openautoglm::cascade::{Cascade, CascadeManifest, CascadePath, Confidence, read_confidence};
use openautoglm::ctc::CtcDecoder;
use openautoglm::{Engine, EngineConfig, Runtime, TensorRef};

/// Each line as the recognizer's input: [1, 3, height, width], (x/255 - 0.5)/0.5, zero-padded on the right.
fn inputs(path: &Path) -> Result<(Vec<Vec<f32>>, [i64; 4]), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: TextLines = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let pixels = std::fs::read(path.with_file_name(&lines.pixels)).map_err(|e| format!("{}: {e}", lines.pixels))?;
    let (h, w) = (lines.height as usize, lines.width as usize);
    let mut offset = 0;
    let mut tensors = Vec::new();
    for &lw in &lines.widths {
        let lw = lw as usize;
        let gray = pixels.get(offset..offset + lw * h).ok_or("the pixel file is shorter than the lines")?;
        offset += lw * h;
        let mut plane = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..lw {
                plane[y * w + x] = (gray[y * lw + x] as f32 / 255.0 - 0.5) / 0.5;
            }
        }
        tensors.push([plane.as_slice(), &plane, &plane].concat());
    }
    Ok((tensors, [1, 3, h as i64, w as i64]))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--cascade");
    let (mut profile, mut fast, mut main, mut fast_labels, mut main_labels) = (false, None, None, None, None);
    let mut gate = openautoglm::cascade::Confidence::SequenceMeanMax;
    let (mut manifest, mut lines, mut rounds, mut threads, mut ort, mut out) = (None, None, 3usize, 0i32, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().map(PathBuf::from).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--profile" => profile = true,
            "--gate" => {
                let name = value()?.to_string_lossy().into_owned();
                gate = serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| format!("--gate {name}: unknown"))?
            }
            "--compare" => profile = false,
            "--fast" => fast = Some(value()?),
            "--main" => main = Some(value()?),
            "--fast-labels" => fast_labels = Some(value()?),
            "--main-labels" => main_labels = Some(value()?),
            "--manifest" => manifest = Some(value()?),
            "--lines" => lines = Some(value()?),
            "--rounds" => rounds = value()?.to_string_lossy().parse().map_err(|e| format!("--rounds: {e}"))?,
            "--threads" => threads = value()?.to_string_lossy().parse().map_err(|e| format!("--threads: {e}"))?,
            "--ort" => ort = Some(value()?),
            "--out" => out = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Runtime::init(ort.as_deref()).map_err(|e| e.to_string())?;
    let config = EngineConfig::default().with_threads(threads);
    let (tensors, shape) = inputs(&lines.ok_or("--lines is required")?)?;
    let out = out.ok_or("--out is required")?;
    let written = if profile {
        let need = |p: Option<PathBuf>, name: &str| p.ok_or(format!("--{name} is required"));
        let fast = Engine::from_file(need(fast, "fast")?, config.clone()).map_err(|e| e.to_string())?;
        let main = Engine::from_file(need(main, "main")?, config).map_err(|e| e.to_string())?;
        let fast_labels = CtcDecoder::from_file(need(fast_labels, "fast-labels")?).map_err(|e| e.to_string())?;
        let main_labels = CtcDecoder::from_file(need(main_labels, "main-labels")?).map_err(|e| e.to_string())?;
        let profile = profile_lines(&fast, &main, (&fast_labels, &main_labels), gate, &tensors, &shape, rounds)?;
        serde_json::to_string_pretty(&profile)
    } else {
        serde_json::to_string_pretty(&compare(
            &manifest.ok_or("--manifest is required")?,
            config,
            &tensors,
            &shape,
            rounds,
        )?)
    };
    std::fs::write(&out, written.map_err(|e| e.to_string())?).map_err(|e| format!("{}: {e}", out.display()))
}

/// One run of `engine` on a line: its decoded text, the confidence `kind` reads from the output, and the time (of
/// the run alone).
fn recognize(
    engine: &Engine,
    labels: &CtcDecoder,
    kind: Confidence,
    input: &[f32],
    shape: &[i64],
) -> Result<(String, f32, f64), String> {
    let started = Instant::now();
    let outputs = engine.run(&[("x", TensorRef::new(shape, input))]).map_err(|e| e.to_string())?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let decoded = labels.decode(&outputs[0]).map_err(|e| e.to_string())?;
    let confidence = read_confidence(kind, &outputs[0], false).map_err(|e| e.to_string())?;
    Ok((decoded.text, confidence, ms))
}

fn profile_lines(
    fast: &Engine,
    main: &Engine,
    (fast_labels, main_labels): (&CtcDecoder, &CtcDecoder),
    gate: Confidence,
    tensors: &[Vec<f32>],
    shape: &[i64],
    rounds: usize,
) -> Result<CascadeProfile, String> {
    let mut lines = Vec::new();
    for (done, input) in tensors.iter().enumerate() {
        let (mut fast_ms, mut main_ms, mut texts) = (Vec::new(), Vec::new(), None);
        // One untimed run of each first (caches), then the rounds, alternating so drift hits both alike.
        recognize(fast, fast_labels, gate, input, shape)?;
        recognize(main, main_labels, gate, input, shape)?;
        for _ in 0..rounds.max(1) {
            let (ft, fc, fm) = recognize(fast, fast_labels, gate, input, shape)?;
            let (mt, _, mm) = recognize(main, main_labels, gate, input, shape)?;
            fast_ms.push(fm);
            main_ms.push(mm);
            texts = Some((ft, fc, mt));
        }
        let (fast_text, confidence, main_text) = texts.expect("one round");
        lines.push(ProfiledLine {
            fast_text,
            confidence,
            fast_ms: median(fast_ms),
            main_text,
            main_ms: median(main_ms),
        });
        super::progress(done + 1, tensors.len());
    }
    Ok(CascadeProfile { lines })
}

fn compare(
    manifest_path: &Path,
    config: EngineConfig,
    tensors: &[Vec<f32>],
    shape: &[i64],
    rounds: usize,
) -> Result<CascadeComparison, String> {
    let manifest = CascadeManifest::load(manifest_path).map_err(|e| e.to_string())?;
    let labels = |file: &Option<String>| -> Result<CtcDecoder, String> {
        let file = file.as_deref().ok_or("the manifest names no labels")?;
        CtcDecoder::from_file(CascadeManifest::resolve(manifest_path, file)).map_err(|e| e.to_string())
    };
    let (fast_labels, main_labels) = (labels(&manifest.fast.labels)?, labels(&manifest.main.labels)?);
    let main = Engine::from_file(CascadeManifest::resolve(manifest_path, &manifest.main.model), config.clone())
        .map_err(|e| e.to_string())?;
    let cascade = Cascade::from_manifest(manifest_path, config).map_err(|e| e.to_string())?;
    let n = tensors.len();
    let (mut main_ms, mut cascade_ms) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    let (mut main_texts, mut cascade_texts) = (vec![String::new(); n], vec![String::new(); n]);
    let mut paths = vec![CascadePathTaken::Main; n];
    for input in tensors {
        recognize(&main, &main_labels, manifest.gate.confidence, input, shape)?; // warm-up, untimed
        cascade.run(&[("x", TensorRef::new(shape, input))]).map_err(|e| e.to_string())?;
    }
    for round in 0..rounds.max(1) {
        for (i, input) in tensors.iter().enumerate() {
            let (text, _, ms) = recognize(&main, &main_labels, manifest.gate.confidence, input, shape)?;
            main_ms[i].push(ms);
            main_texts[i] = text;
            // Timed as the main model alone is: the run (the gate included), not the decoding.
            let started = Instant::now();
            let result = cascade.run(&[("x", TensorRef::new(shape, input))]).map_err(|e| e.to_string())?;
            cascade_ms[i].push(started.elapsed().as_secs_f64() * 1e3);
            let labels = if result.path == CascadePath::Fast { &fast_labels } else { &main_labels };
            let decoded = labels.decode(&result.outputs[0]).map_err(|e| e.to_string())?;
            cascade_texts[i] = decoded.text;
            paths[i] = if result.path == CascadePath::Fast { CascadePathTaken::Fast } else { CascadePathTaken::Main };
        }
        super::progress(round + 1, rounds.max(1));
    }
    let lines = (0..n)
        .map(|i| ComparedLine {
            main_text: std::mem::take(&mut main_texts[i]),
            main_ms: median(std::mem::take(&mut main_ms[i])),
            cascade_text: std::mem::take(&mut cascade_texts[i]),
            cascade_ms: median(std::mem::take(&mut cascade_ms[i])),
            path: paths[i],
        })
        .collect();
    Ok(CascadeComparison { threshold: manifest.gate.threshold, lines })
}
