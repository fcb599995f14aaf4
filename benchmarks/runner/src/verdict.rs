//! `--verdict`: a model's outputs on every input of a set, for `cargo xtask models verdicts` to judge against FP32's
//! on the same numerics class (host x86-64, ARM64 under qemu, a phone).
//!
//! --verdict --model M.onnx --inputs SET.json --dump-dir DIR [--threads N] [--ort ORT] [--plugin OPENVINO_LIB]
//!   SET.json is a list of recipe files (relative to it), one per input. For input i the runner writes
//!   DIR/i.json (`{"outputs": [{"name", "shape", "file"}]}`) and each output as raw little-endian float32 (float16
//!   outputs arrive as float32, the engine's default; integer outputs are converted).

use std::path::{Path, PathBuf};

use bench_schema::outputs::{OutputFile, VerdictOutputs};
use openautoglm::{Accelerator, DeviceKind, ElementType, Engine, EngineConfig, Runtime, Tensor, TensorRef};

use super::{load_recipe, progress};

pub fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--verdict");
    let (mut model, mut inputs, mut dump_dir, mut ort, mut threads) = (None, None, None, None::<PathBuf>, 0i32);
    let mut plugin = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--inputs" => inputs = Some(PathBuf::from(value()?)),
            "--dump-dir" => dump_dir = Some(PathBuf::from(value()?)),
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--plugin" => plugin = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (model, inputs, dump_dir) = (
        model.ok_or("--model is required")?,
        inputs.ok_or("--inputs is required")?,
        dump_dir.ok_or("--dump-dir is required")?,
    );
    let text = std::fs::read_to_string(&inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
    let recipes: Vec<String> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", inputs.display()))?;
    let base = inputs.parent().unwrap_or(Path::new("."));
    Runtime::init(ort.as_deref()).map_err(|e| e.to_string())?;
    let mut config = EngineConfig::default().with_threads(threads);
    if let Some(library) = plugin {
        // OpenVINO's numerics class: its CPU device leads (what the engine cannot compile there runs on the CPU, as
        // it would in an app).
        config = config.with_accelerators(vec![Accelerator::openvino(library, DeviceKind::Cpu)]);
    }
    let engine = Engine::from_file(&model, config).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dump_dir).map_err(|e| format!("{}: {e}", dump_dir.display()))?;
    for (i, recipe) in recipes.iter().enumerate() {
        let feeds = load_recipe(&base.join(recipe))?;
        let views: Vec<(&str, TensorRef<'_>)> =
            feeds.iter().map(|f| (f.name.as_str(), TensorRef::from_bytes(f.element_type, &f.shape, &f.data))).collect();
        let outputs = engine.run(&views).map_err(|e| format!("input {i}: {e}"))?;
        dump(&outputs, &dump_dir, i)?;
        progress(i + 1, recipes.len());
    }
    Ok(())
}

fn dump(outputs: &[Tensor], dir: &Path, i: usize) -> Result<(), String> {
    let mut described = Vec::new();
    for (k, t) in outputs.iter().enumerate() {
        let values: Vec<f32> = match t.element_type {
            ElementType::F32 => t.to_vec::<f32>().map_err(|e| e.to_string())?,
            ElementType::I64 => t.to_vec::<i64>().map_err(|e| e.to_string())?.into_iter().map(|v| v as f32).collect(),
            ElementType::I32 => t.to_vec::<i32>().map_err(|e| e.to_string())?.into_iter().map(|v| v as f32).collect(),
            other => return Err(format!("output {}: {} outputs cannot be judged", t.name, other.name())),
        };
        let file = format!("{i}-{k}.f32");
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join(&file), bytes).map_err(|e| format!("{file}: {e}"))?;
        described.push(OutputFile { name: t.name.clone(), shape: t.shape.clone(), file });
    }
    let path = dir.join(format!("{i}.json"));
    let text = serde_json::to_string(&VerdictOutputs { outputs: described }).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
