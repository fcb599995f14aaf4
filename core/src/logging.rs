//! Diagnostics go through `log`, ONNX Runtime's included: this picks the platform's sink once (logcat on Android,
//! os_log on Apple with the `apple-log` feature, whose build needs Xcode; stderr filtered by `RUST_LOG` elsewhere)
//! and owns the one level setting that governs both the SDK's messages and ONNX Runtime's.
//!
//! ONNX Runtime's messages arrive through a custom logger (never its own stderr sink) with target `onnxruntime`.
//! An error ONNX Runtime logs while running a request is the same failure the caller receives as a typed error, so
//! it is logged at debug: 200k failed requests no longer write 100 MB of logcat.

use std::sync::{Arc, Once};

use ort::logging::{LogLevel as OrtSeverity, LoggerFunction};

#[cfg(target_os = "android")]
const TAG: &str = "OpenAutoGLM";

/// ONNX Runtime's log id for the engine's runs ([`crate::Engine::run`] passes it as the run tag).
pub(crate) const RUN_TAG: &str = "openautoglm-run";

/// How much the SDK and ONNX Runtime log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Off,
    Error,
    #[default]
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    fn from_filter(filter: log::LevelFilter) -> LogLevel {
        match filter {
            log::LevelFilter::Off => LogLevel::Off,
            log::LevelFilter::Error => LogLevel::Error,
            log::LevelFilter::Warn => LogLevel::Warn,
            log::LevelFilter::Info => LogLevel::Info,
            log::LevelFilter::Debug => LogLevel::Debug,
            log::LevelFilter::Trace => LogLevel::Trace,
        }
    }

    /// The least severe ONNX Runtime message worth formatting at this level (its verbose level is very chatty, so
    /// only trace asks for it).
    pub(crate) fn ort_severity(self) -> OrtSeverity {
        match self {
            LogLevel::Off => OrtSeverity::Fatal,
            LogLevel::Error => OrtSeverity::Error,
            LogLevel::Warn => OrtSeverity::Warning,
            LogLevel::Info | LogLevel::Debug => OrtSeverity::Info,
            LogLevel::Trace => OrtSeverity::Verbose,
        }
    }
}

/// Sets what the SDK and ONNX Runtime log from now on (this is `log`'s process-wide maximum level). ONNX Runtime
/// takes it for the engines loaded after the call; engines loaded before keep the level they were loaded with.
pub fn set_level(level: LogLevel) {
    init();
    log::set_max_level(level.filter());
}

/// The level in force.
pub fn level() -> LogLevel {
    LogLevel::from_filter(log::max_level())
}

/// The start of ONNX Runtime's warning about the decoder input with a default value (see `ort_logger`).
const DESIGNED_OVERRIDABLE: &str = "Initializer logits_last_only appears in graph inputs";

/// The custom logger ONNX Runtime's environment is created with.
pub(crate) fn ort_logger() -> LoggerFunction {
    Arc::new(|severity, category, id, code_location, message| {
        // The run logger's id is the session's id, ':', then the run tag (or the tag alone).
        let run_failure = severity >= OrtSeverity::Error
            && id.strip_suffix(RUN_TAG).is_some_and(|session| session.is_empty() || session.ends_with(':'));
        // Our decoders' `logits_last_only` is an initializer that is also an input on purpose (a default runtimes
        // that do not know it keep); ONNX Runtime's warning about that at every load is not the app's concern.
        let designed = severity == OrtSeverity::Warning && message.starts_with(DESIGNED_OVERRIDABLE);
        let level = match severity {
            _ if run_failure || designed => log::Level::Debug,
            OrtSeverity::Fatal | OrtSeverity::Error => log::Level::Error,
            OrtSeverity::Warning => log::Level::Warn,
            OrtSeverity::Info => log::Level::Debug,
            OrtSeverity::Verbose => log::Level::Trace,
        };
        log::log!(target: "onnxruntime", level, "[{category} {id}] {code_location}: {message}");
    })
}

/// Installs the platform logger if the app has not installed one. Safe to call many times.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(install);
}

#[cfg(target_os = "android")]
fn install() {
    android_logger::init_once(android_logger::Config::default().with_tag(TAG).with_max_level(log::LevelFilter::Trace));
    log::set_max_level(LogLevel::default().filter());
}

#[cfg(all(target_vendor = "apple", feature = "apple-log"))]
fn install() {
    let _ = oslog::OsLogger::new("ai.openautoglm").level_filter(log::LevelFilter::Trace).init();
    log::set_max_level(LogLevel::default().filter());
}

#[cfg(all(target_vendor = "apple", not(feature = "apple-log")))]
fn install() {}

#[cfg(not(any(target_os = "android", target_vendor = "apple")))]
fn install() {
    // An app or test that installed its own logger keeps it (and its level).
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_both_ways() {
        for level in [LogLevel::Off, LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug, LogLevel::Trace]
        {
            assert_eq!(LogLevel::from_filter(level.filter()), level);
        }
        assert_eq!(LogLevel::Off.ort_severity(), OrtSeverity::Fatal);
        assert_eq!(LogLevel::Warn.ort_severity(), OrtSeverity::Warning);
    }
}
