//! Where a model comes from (a file, or bytes with the directory their external data may live in), and what is done
//! with it before ONNX Runtime sees it: the model check, the compile cache's content hash, and the session settings
//! that depend on the source.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::SessionBuilder;

use crate::compile_cache::{content_hash, file_hash};
use crate::error::{Error, OrtResultExt, Result};
use crate::model_check;
use crate::runtime::Runtime;

/// `length` bytes of the open file `fd` from `offset`, mapped read-only; the fd is only borrowed.
#[cfg(unix)]
pub(crate) fn map_region(fd: i32, offset: u64, length: u64) -> Result<memmap2::Mmap> {
    let not_found = || Error::ModelNotFound { path: format!("file descriptor {fd}") };
    if fd < 0 {
        return Err(not_found());
    }
    // SAFETY: F_GETFD only reads the descriptor's flags, and fails cleanly (EBADF) on one that is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(not_found());
    }
    // SAFETY: `fd` is open (checked above) and stays the caller's: ManuallyDrop never closes it. Only its metadata
    // is read through it, which does not move its file offset.
    let file = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let meta = file.metadata().map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let file_len = meta.len();
    if length == 0 {
        return Err(Error::invalid_model("the model region is empty (length 0)"));
    }
    if length > model_check::MAX_MODEL_BYTES {
        return Err(Error::invalid_model(format!("the model region is {length} bytes, over protobuf's 2 GiB limit")));
    }
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(Error::invalid_model(format!(
            "the model region ({length} bytes from offset {offset}) runs past the end of the {file_len}-byte file"
        )));
    }
    // SAFETY: a read-only, private map of a region checked to lie inside a regular file; the app does not write its
    // own APK or model files while loading them (the same contract as mapping a model file).
    unsafe { memmap2::MmapOptions::new().offset(offset).len(length as usize).map(fd) }
        .map_err(|e| Error::invalid_model(format!("cannot map the model region: {e}")))
}

#[cfg(not(unix))]
pub(crate) fn map_region(fd: i32, _offset: u64, _length: u64) -> Result<memmap2::Mmap> {
    Err(Error::InvalidConfig { reason: format!("loading from a file descriptor ({fd}) needs a Unix platform") })
}

/// Where a model comes from: a file, or bytes in memory (with the directory its external data may live in).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    File(&'a Path),
    Bytes { bytes: &'a [u8], external_data_dir: Option<&'a Path> },
}

impl Source<'_> {
    /// The model check ([`crate::model_check`]) before ONNX Runtime, or the compile cache's hash, reads the model.
    /// Only regular files are opened, so a FIFO or a device never blocks a load.
    pub(crate) fn check(self) -> Result<model_check::Checked> {
        match self {
            Source::Bytes { bytes, external_data_dir } => {
                if bytes.is_empty() {
                    return Err(Error::invalid_model("model bytes are empty"));
                }
                if model_check::is_ort_format(bytes) {
                    return Ok(model_check::Checked::default());
                }
                let checked = model_check::check(bytes, external_data_dir)?;
                if checked.external_data > 0 {
                    Runtime::require(crate::runtime::Feature::ExternalDataFromMemory)?;
                }
                Ok(checked)
            }
            Source::File(path) => {
                let not_found = || Error::ModelNotFound { path: path.display().to_string() };
                let meta = std::fs::metadata(path).map_err(|_| not_found())?;
                if !meta.is_file() {
                    return Err(not_found());
                }
                if meta.len() == 0 {
                    return Err(Error::invalid_model(format!("`{}` is empty", path.display())));
                }
                if meta.len() > model_check::MAX_MODEL_BYTES {
                    return Err(Error::invalid_model(format!(
                        "`{}` is {} bytes, over protobuf's 2 GiB limit for one model",
                        path.display(),
                        meta.len()
                    )));
                }
                let file = std::fs::File::open(path).map_err(|_| not_found())?;
                // SAFETY: a read-only map for the duration of the check; the model file belongs to the app.
                let map = unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| Error::invalid_model(format!("`{}`: {e}", path.display())))?;
                if path.extension().is_some_and(|e| e == "ort") {
                    if !model_check::is_ort_format(&map) {
                        return Err(Error::invalid_model(format!(
                            "`{}` is named .ort but is not an ONNX Runtime format model",
                            path.display()
                        )));
                    }
                    return Ok(model_check::Checked::default());
                }
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                model_check::check(&map, Some(dir)).map_err(|e| match e {
                    Error::InvalidModel { reason } => Error::invalid_model(format!("`{}`: {reason}", path.display())),
                    other => other,
                })
            }
        }
    }

    /// The model's size in bytes (its file's, for a file), external data not counted; `None` when unreadable.
    pub(crate) fn byte_len(self) -> Option<u64> {
        match self {
            Source::Bytes { bytes, .. } => Some(bytes.len() as u64),
            Source::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
        }
    }

    pub(crate) fn commit(self, builder: &mut SessionBuilder) -> Result<Session> {
        // ort (at ONNX Runtime API level 22) describes every input and output of a new session again, and panics
        // ("infallible") where ONNX Runtime refuses a shape it reported itself: a dimension below -1, which its shape
        // inference gives a pooling window wider than its input. A model ONNX Runtime cannot describe, not a bug here.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match self {
            Source::File(path) => builder.commit_from_file(path),
            Source::Bytes { bytes, .. } => builder.commit_from_memory(bytes),
        }));
        match committed {
            Ok(session) => session.or_unloadable_model(),
            Err(_) => Err(Error::invalid_model(
                "ONNX Runtime cannot describe the model's inputs or outputs: a dimension below -1 (as its shape \
                 inference gives a pooling window wider than its input)",
            )),
        }
    }

    /// Session settings that depend on the model: ONNX Runtime resolves a bytes model's external data against its
    /// directory (checked above) instead of the process's working directory; a model whose pooling can produce an
    /// empty output stays out of ONNX Runtime's NCHWc layout (a no-op where that layout is not used, as on ARM64).
    pub(crate) fn configure(
        self,
        mut builder: SessionBuilder,
        checked: &model_check::Checked,
    ) -> Result<SessionBuilder> {
        if let Source::Bytes { external_data_dir: Some(dir), .. } = self {
            builder = builder
                .with_config_entry("session.model_external_initializers_file_folder_path", dir.display().to_string())
                .or_invalid_config("external data directory")?;
        }
        if checked.pool_can_be_empty {
            log::info!("a pooling window can exceed its input: ONNX Runtime's NCHWc layout is off for this model");
            builder = builder
                .with_config_entry("optimization.disable_specified_optimizers", "NchwcTransformer")
                .or_invalid_config("optimizers")?;
        }
        Ok(builder)
    }

    /// The model's content hash for the compile cache's key (files: mapped, not read, and remembered by stat).
    pub(crate) fn content_hash(self, cache_dir: &Path) -> Result<String> {
        match self {
            Source::Bytes { bytes, .. } => Ok(content_hash(bytes)),
            Source::File(path) => file_hash(cache_dir, path, || {
                let file =
                    std::fs::File::open(path).map_err(|_| Error::ModelNotFound { path: path.display().to_string() })?;
                // SAFETY: read-only map of the model file for the duration of one hash.
                let map = unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| Error::invalid_model(format!("`{}`: {e}", path.display())))?;
                Ok(content_hash(&map))
            }),
        }
    }
}
