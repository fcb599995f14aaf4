//! What the fuzzers drive (feature `fuzzing`; not part of the SDK's API): one hostile model or request taken through
//! every entry point an app would use, reduced to an outcome word. A crash, an abort or a hang shows as the process
//! dying or not answering, which the harness (`cargo xtask fuzz`) sees from outside; a caught panic shows here as
//! `panic`, which is a bug like a crash.

use std::path::Path;

use crate::{Engine, EngineConfig, Error, TensorRef};

/// The model check alone, on bytes with no directory (as `from_bytes` sees them).
pub fn check_model(bytes: &[u8]) -> bool {
    crate::model_check::check(bytes, None).is_ok()
}

/// How one call ended: `ok`, a typed error's variant, or `panic` (a caught panic: a bug).
pub fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Internal { reason }) if reason.starts_with("caught panic") => "panic",
        Err(e) => variant(e),
    }
}

pub fn variant(error: &Error) -> &'static str {
    match error {
        Error::RuntimeUnavailable { .. } => "RuntimeUnavailable",
        Error::RuntimeTooOld { .. } => "RuntimeTooOld",
        Error::DownloadFailed { .. } => "DownloadFailed",
        Error::IntegrityFailed { .. } => "IntegrityFailed",
        Error::ModelNotFound { .. } => "ModelNotFound",
        Error::InvalidModel { .. } => "InvalidModel",
        Error::InvalidInput { .. } => "InvalidInput",
        Error::InvalidConfig { .. } => "InvalidConfig",
        Error::AcceleratorUnavailable { .. } => "AcceleratorUnavailable",
        Error::InferenceFailed { .. } => "InferenceFailed",
        Error::MemoryLimit { .. } => "MemoryLimit",
        Error::EngineClosed => "EngineClosed",
        Error::NativeLibraryUnavailable { .. } => "NativeLibraryUnavailable",
        Error::Cancelled => "Cancelled",
        Error::DeadlineExceeded => "DeadlineExceeded",
        Error::ChatBusy { .. } => "ChatBusy",
        Error::Internal { .. } => "Internal",
    }
}

/// Which way a mutant is loaded: every entry point gets its share.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// `from_bytes`, no directory for external data.
    Bytes,
    /// `from_file` on the mutant's file (its directory is the scratch directory).
    File,
    /// `from_file` through the compile cache in `scratch/cache`.
    Cached,
    /// `from_bytes` with a placement report (a profiled warmup at load).
    Placement,
}

impl Entry {
    pub const ALL: [Entry; 4] = [Entry::Bytes, Entry::File, Entry::Cached, Entry::Placement];
}

/// Loads `bytes` (written to `file` for the file entries) the way `entry` says, then warms it up once and runs it
/// once more on the same zero inputs; returns `load/warmup` outcome words, e.g. `ok/MemoryLimit`.
pub fn exercise(bytes: &[u8], file: &Path, entry: Entry) -> String {
    let config = EngineConfig::default().with_threads(1);
    let loaded = match entry {
        Entry::Bytes => Engine::from_bytes(bytes, config),
        Entry::Placement => Engine::from_bytes(bytes, config.with_placement_report(true)),
        Entry::File | Entry::Cached => {
            if let Err(e) = std::fs::write(file, bytes) {
                return format!("scratch write failed: {e}");
            }
            let config = match (entry, file.parent()) {
                (Entry::Cached, Some(dir)) => config.with_cache_dir(dir.join("cache").display().to_string()),
                _ => config,
            };
            Engine::from_file(file, config)
        }
    };
    let load = outcome(&loaded);
    let Ok(engine) = loaded else { return format!("{load}/-{}", internal(&loaded)) };
    let warmup = engine.warmup(1);
    format!("{load}/{}{}", outcome(&warmup), internal(&warmup))
}

/// An `Internal` error's reason (it means a bug in the SDK, so the harness reports it with its reproducer).
fn internal<T>(result: &Result<T, Error>) -> String {
    match result {
        Err(Error::Internal { reason }) => format!(" ({reason})"),
        _ => String::new(),
    }
}

/// Decodes fuzzer bytes into one request against `engine` (input picked by index, an element type, a shape and
/// data) and runs it. Any outcome but `panic` is fine; the engine must answer a good request afterwards.
pub fn run_request(engine: &Engine, data: &[u8]) -> &'static str {
    use crate::ElementType::*;
    const TYPES: [crate::ElementType; 12] = [F32, F16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool];
    let Some((&[pick, ty, rank], rest)) = data.split_first_chunk::<3>() else { return "short" };
    let inputs = &engine.info().inputs;
    let name = inputs.get(usize::from(pick) % inputs.len().max(1)).map_or("nope", |i| i.name.as_str());
    let rank = usize::from(rank % 6);
    let (dims, payload) = rest.split_at((rank * 8).min(rest.len()));
    let shape: Vec<i64> = dims.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
    let element_type = TYPES[usize::from(ty) % TYPES.len()];
    let request = [(name, TensorRef::from_bytes(element_type, &shape, payload))];
    outcome(&engine.run(&request))
}
