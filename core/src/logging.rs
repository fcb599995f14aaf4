//! Diagnostics go through `log`, ONNX Runtime's included: this picks the platform's sink once (logcat on Android,
//! os_log on Apple with the `apple-log` feature, whose build needs Xcode; stderr filtered by `RUST_LOG` elsewhere)
//! and owns the one level setting that governs both the SDK's messages and ONNX Runtime's.
//!
//! An app can take the records itself ([`set_sink`]): the Kotlin layer on Android sends them to `android.util.Log`
//! that way, and any app can forward them to its own logging. Without a sink they go to the platform's.
//!
//! ONNX Runtime's messages arrive through a custom logger (never its own stderr sink) with target `onnxruntime`.
//! An error ONNX Runtime logs while running a request is the same failure the caller receives as a typed error, so
//! it is logged at debug: 200k failed requests no longer write 100 MB of logcat.

use std::cell::Cell;
use std::sync::{Arc, Once, RwLock};

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

/// Where an app takes the SDK's and ONNX Runtime's log records instead of the platform's sink.
pub trait LogSink: Send + Sync {
    /// One record at `level` (never `Off`) from `target` (`openautoglm::...` or `onnxruntime`).
    fn log(&self, level: LogLevel, target: &str, message: &str);
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);

thread_local! {
    /// Set while a sink runs on this thread: a record the sink itself causes goes to the platform's sink.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Sends the records at or above the level in force to `sink` from now on, or back to the platform's sink (`None`).
/// Works only where this SDK's dispatcher is the process logger: always on Android and Apple, and on other hosts
/// unless the app installed its own `log` logger first (the error says so).
pub fn set_sink(sink: Option<Arc<dyn LogSink>>) -> crate::Result<()> {
    init();
    if sink.is_some() && !DISPATCH_INSTALLED.load(std::sync::atomic::Ordering::Acquire) {
        return Err(crate::Error::InvalidConfig {
            reason: "another `log` logger was installed before this SDK's; log records go to it, not to a sink".into(),
        });
    }
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = sink;
    Ok(())
}

static DISPATCH_INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The process logger: the app's sink when one is set, else the platform's.
struct Dispatch {
    platform: Box<dyn log::Log>,
}

impl log::Log for Dispatch {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
        match sink {
            Some(sink) if !IN_SINK.get() => {
                IN_SINK.set(true);
                // A sink that panics loses its record, never the caller's thread.
                let message = record.args().to_string();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sink.log(LogLevel::of(record.level()), record.target(), &message)
                }));
                IN_SINK.set(false);
            }
            _ => self.platform.log(record),
        }
    }

    fn flush(&self) {
        self.platform.flush()
    }
}

impl LogLevel {
    fn of(level: log::Level) -> LogLevel {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// Installs the dispatcher over the platform logger if the app has not installed a logger. Safe to call many times.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (platform, level) = platform_logger();
        // Installed once for the process, as `log` keeps its logger: leaked on purpose.
        let dispatch: &'static Dispatch = Box::leak(Box::new(Dispatch { platform }));
        if log::set_logger(dispatch).is_ok() {
            DISPATCH_INSTALLED.store(true, std::sync::atomic::Ordering::Release);
            log::set_max_level(level);
        }
        // Otherwise an app or test installed its own logger first: it keeps it (and its level).
    });
}

/// The platform's sink, and the level in force until the app sets one.
#[cfg(target_os = "android")]
fn platform_logger() -> (Box<dyn log::Log>, log::LevelFilter) {
    let config = android_logger::Config::default().with_tag(TAG).with_max_level(log::LevelFilter::Trace);
    (Box::new(android_logger::AndroidLogger::new(config)), LogLevel::default().filter())
}

#[cfg(all(target_vendor = "apple", feature = "apple-log"))]
fn platform_logger() -> (Box<dyn log::Log>, log::LevelFilter) {
    (
        Box::new(oslog::OsLogger::new("ai.openautoglm").level_filter(log::LevelFilter::Trace)),
        LogLevel::default().filter(),
    )
}

#[cfg(all(target_vendor = "apple", not(feature = "apple-log")))]
fn platform_logger() -> (Box<dyn log::Log>, log::LevelFilter) {
    // Without os_log (a build without Xcode) only a sink receives records.
    struct Nothing;
    impl log::Log for Nothing {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            false
        }
        fn log(&self, _: &log::Record<'_>) {}
        fn flush(&self) {}
    }
    (Box::new(Nothing), LogLevel::default().filter())
}

#[cfg(not(any(target_os = "android", target_vendor = "apple")))]
fn platform_logger() -> (Box<dyn log::Log>, log::LevelFilter) {
    // stderr, filtered by RUST_LOG (warn when unset), which also sets the level in force, as env_logger's own init.
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).build();
    let level = logger.filter();
    (Box::new(logger), level)
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
