//! The fuzzing probe: `cargo xtask fuzz` keeps one running, writes each mutant to a file and sends a line
//! `ENTRY PATH` (entry: bytes, file, cached, placement) on stdin; the probe answers one line of outcome words
//! (`ok/ok`, `InvalidModel/-`, `ok/MemoryLimit`, `panic/-` ...). When it dies or stops answering, the harness knows
//! the mutant that did it.
//!
//! openautoglm-probe [--ort libonnxruntime.so]

use std::io::{BufRead, Write};
use std::path::Path;

use openautoglm::fuzzing::{Entry, exercise};
use openautoglm::{LogLevel, Runtime, logging};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ort = args.iter().position(|a| a == "--ort").and_then(|i| args.get(i + 1));
    // ONNX Runtime's complaints about broken models are the expected case here: keep stderr for what matters.
    logging::set_level(LogLevel::Off);
    if let Err(e) = Runtime::init(ort.map(Path::new)) {
        eprintln!("probe: {e}");
        std::process::exit(2);
    }
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some((entry, path)) = line.split_once(' ') else { continue };
        let entry = match entry {
            "bytes" => Entry::Bytes,
            "file" => Entry::File,
            "cached" => Entry::Cached,
            _ => Entry::Placement,
        };
        let answer = match std::fs::read(path) {
            Ok(bytes) => exercise(&bytes, Path::new(path), entry),
            Err(e) => format!("unreadable mutant: {e}"),
        };
        let mut out = stdout.lock();
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}
