//! The one error type of the engine. Every language sees these same variants (Kotlin `EngineException.*`,
//! Swift `EngineError.*`). Messages name inputs, types and shapes, never tensor contents.

use std::fmt::Display;

/// What went wrong, as a caller can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime could not be loaded: `path` is what was tried, `reason` says what is needed.
    #[error("ONNX Runtime is unavailable (tried `{path}`): {reason}; in Rust, Runtime::init(Some(path)) loads it")]
    RuntimeUnavailable { path: String, reason: String },
    /// The loaded ONNX Runtime is older than `feature` needs ([`crate::runtime::Feature`] lists each minimum):
    /// `required` is the oldest release that has it, `loaded` the one in the process.
    #[error("{feature} needs ONNX Runtime >= {required}, but the one loaded is {loaded}")]
    RuntimeTooOld { feature: String, required: String, loaded: String },
    /// This SDK's own native library cannot serve the Kotlin or Swift layer: it could not be loaded (a desktop JVM
    /// without it), or it is another version than the bindings. Raised by those layers, never by Rust code.
    #[error("the Open-AutoGLM native library is unavailable: {reason}")]
    NativeLibraryUnavailable { reason: String },
    /// The model file does not exist, is not a regular file, or cannot be read (permissions).
    #[error("model not found or not readable: `{path}`")]
    ModelNotFound { path: String },
    /// The bytes are not a model ONNX Runtime can load (empty, truncated, not ONNX, unsupported operator...).
    #[error("invalid model: {reason}")]
    InvalidModel { reason: String },
    /// An input does not match the model; `name` is the offending input.
    #[error("invalid input `{name}`: {reason}")]
    InvalidInput { name: String, reason: String },
    /// The engine configuration cannot be honoured.
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    /// An accelerator's plugin library (a plugin execution provider) is missing, is not a plugin for the loaded
    /// ONNX Runtime, or does not register the execution provider it was named for: `provider` is what was asked
    /// for, `reason` what was found. (An accelerator whose hardware is absent is skipped instead, or refused with
    /// `InvalidConfig` in strict mode.)
    #[error("accelerator {provider} is unavailable: {reason}")]
    AcceleratorUnavailable { provider: String, reason: String },
    /// The model store could not fetch `name`: the server failed or the connection kept dropping after bounded
    /// retries, or its folder could not be written. What was fetched stays as one resumable temporary file.
    #[error("could not download `{name}`: {reason}")]
    DownloadFailed { name: String, reason: String },
    /// The bytes fetched for `name` are not the model its entry describes (size or sha256): they were removed, and
    /// nothing was installed under its name.
    #[error("`{name}` failed its integrity check: {reason}")]
    IntegrityFailed { name: String, reason: String },
    /// ONNX Runtime failed while running a valid-looking request.
    #[error("inference failed: {reason}")]
    InferenceFailed { reason: String },
    /// A buffer the model or the caller asks for is over the engine's memory limit
    /// (`EngineConfig::memory_limit_mb`), or the system could not provide it. The engine stays usable.
    #[error("memory limit: {reason}")]
    MemoryLimit { reason: String },
    /// The request was cancelled (its cancel token, a cancelled coroutine or Task) before it finished.
    #[error("cancelled")]
    Cancelled,
    /// The request's deadline passed before it could start or finish; nothing late is delivered.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The chat is still answering its previous message: wait for that answer to end (or cancel it), then send.
    #[error("the chat is busy: {reason}")]
    ChatBusy { reason: String },
    /// The engine was closed; create a new one.
    #[error("engine is closed")]
    EngineClosed,
    /// A bug in this SDK (for example a caught panic). Please report it.
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid_input(name: &str, reason: impl Display) -> Self {
        Error::InvalidInput { name: name.to_owned(), reason: reason.to_string() }
    }

    pub(crate) fn invalid_model(reason: impl Display) -> Self {
        Error::InvalidModel { reason: reason.to_string() }
    }

    pub fn internal(reason: impl Display) -> Self {
        Error::Internal { reason: reason.to_string() }
    }
}

/// ONNX Runtime's errors become ours in one place: a call site says what it was doing and which kind of failure an
/// ONNX Runtime error means there, and reads `?`: `session.run(inputs).or_inference("decoder step")?`.
/// Only ONNX Runtime's message is kept (never tensor contents; ONNX Runtime's messages hold none).
pub(crate) trait OrtResultExt<T> {
    /// The configuration was refused (an option, a provider, a session setting).
    fn or_invalid_config(self, what: impl Display) -> Result<T>;
    /// The model was refused.
    fn or_invalid_model(self, what: impl Display) -> Result<T>;
    /// Loading the model failed: a missing file is [`Error::ModelNotFound`], anything else [`Error::InvalidModel`].
    fn or_unloadable_model(self) -> Result<T>;
    /// An input was refused; `name` is the input.
    fn or_invalid_input(self, name: &str) -> Result<T>;
    /// A valid-looking run failed.
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    fn or_inference(self, what: impl Display) -> Result<T>;
    /// Something that should not fail did: a bug here or in ONNX Runtime.
    fn or_internal(self, what: impl Display) -> Result<T>;
}

impl<T, R> OrtResultExt<T> for std::result::Result<T, ort::Error<R>> {
    fn or_invalid_config(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::InvalidConfig { reason: format!("{what}: {}", e.message()) })
    }

    fn or_invalid_model(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::invalid_model(format!("{what}: {}", e.message())))
    }

    fn or_unloadable_model(self) -> Result<T> {
        self.map_err(|e| match e.code() {
            ort::ErrorCode::NoSuchFile => Error::ModelNotFound { path: e.message().to_owned() },
            _ => Error::invalid_model(e.message()),
        })
    }

    fn or_invalid_input(self, name: &str) -> Result<T> {
        self.map_err(|e| Error::invalid_input(name, format!("rejected by ONNX Runtime: {}", e.message())))
    }

    fn or_inference(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::InferenceFailed { reason: format!("{what}: {}", e.message()) })
    }

    fn or_internal(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::internal(format!("{what}: {}", e.message())))
    }
}

/// Runs `f`, turning a panic (in ONNX Runtime glue or in our code) into [`Error::Internal`], so that no panic
/// ever unwinds into Kotlin or Swift.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panicked(payload)))
}

/// A caught panic as the error. Not generic, so every `catch_panic` shares this code (one copy per call site
/// cost 1.5 KB each).
#[inline(never)]
fn panicked(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    log::error!("caught panic: {what}");
    Error::internal(format!("caught panic: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let result: Result<()> = catch_panic(|| panic!("boom"));
        assert_eq!(result, Err(Error::Internal { reason: "caught panic: boom".into() }));
        let formatted: Result<()> = catch_panic(|| panic!("{} {}", "formatted", 42));
        assert_eq!(formatted, Err(Error::Internal { reason: "caught panic: formatted 42".into() }));
    }

    #[test]
    fn messages_name_the_input() {
        let e = Error::invalid_input("pixels", "expected rank 4");
        assert_eq!(e.to_string(), "invalid input `pixels`: expected rank 4");
    }
}
