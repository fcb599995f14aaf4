//! The one ONNX Runtime per process. ONNX Runtime is opened at run time (ort's load-dynamic) so that the app,
//! not this library, decides which build ships: the Android AAR's, the iOS package's, or the host wheel's.
//!
//! Where the library comes from, first match wins:
//! 1. the path given to [`Runtime::init`];
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. `libonnxruntime` in the directory this SDK's own library was loaded from: how the published packages ship it
//!    (the JVM jar extracts both side by side; the Swift package's Linux build puts them in one directory);
//! 4. the platform's library name (`libonnxruntime.so` / `libonnxruntime.dylib` / `onnxruntime.dll`), found by
//!    the system loader (on Android: the one the onnxruntime-android AAR puts in the APK).
//!
//! On iOS ONNX Runtime is linked into the app from ORT's static xcframework instead, so there is no path to give.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ort::environment::Environment;

use crate::error::{Error, Result, catch_panic};

/// Environment variable naming the ONNX Runtime library to load.
pub const ORT_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// The oldest ONNX Runtime this SDK runs on (the ORT API level it is compiled against).
pub const MIN_ORT_VERSION: &str = "1.22";

/// What needs which ONNX Runtime: the oldest release with every API call behind the feature. The load refuses a
/// runtime older than [`Feature::Engine`] (ort's API level); the others are checked where they are used, so a
/// runtime linked without that gate (iOS) or an older build an app brings fails with [`Error::RuntimeTooOld`]
/// naming both versions instead of a missing-symbol crash. Where a feature needs a runtime newer than the engine's
/// minimum, it is listed here and checked by [`Runtime::require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Sessions, runs, tensors of every element type (strings included), IO binding, the compile cache: ort's API
    /// level 22.
    Engine,
    /// Plugin execution providers (`RegisterExecutionProviderLibrary`, `GetEpDevices`,
    /// `SessionOptionsAppendExecutionProvider_V2`): OpenVINO, QNN as separate libraries.
    PluginExecutionProviders,
    /// External initializers handed over from memory (`AddExternalInitializersFromFilesInMemory`): a model with
    /// external data loaded from bytes or a file descriptor.
    ExternalDataFromMemory,
}

impl Feature {
    pub const ALL: [Feature; 3] = [Feature::Engine, Feature::PluginExecutionProviders, Feature::ExternalDataFromMemory];

    /// The oldest ONNX Runtime release with the feature, `major.minor`.
    pub fn minimum(self) -> &'static str {
        match self {
            Feature::Engine | Feature::PluginExecutionProviders => MIN_ORT_VERSION,
            Feature::ExternalDataFromMemory => "1.21",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::Engine => "Open-AutoGLM's engine (ONNX Runtime API 22)",
            Feature::PluginExecutionProviders => "plugin execution providers",
            Feature::ExternalDataFromMemory => "loading a model's external data from memory",
        }
    }

    /// `Ok` when ONNX Runtime `loaded` has the feature, else the typed error naming both versions.
    pub fn check(self, loaded: &str) -> Result<()> {
        let (major, minor) = major_minor(self.minimum()).expect("minimums are major.minor");
        if at_least(loaded, major, minor) {
            return Ok(());
        }
        Err(Error::RuntimeTooOld {
            feature: self.name().to_owned(),
            required: self.minimum().to_owned(),
            loaded: loaded.to_owned(),
        })
    }
}

/// What a failed load needs, in words every language shares; each language's message adds the call that loads a
/// runtime from a path there (Rust `Runtime::init`, Kotlin `OpenAutoGLM.loadRuntime`, Swift
/// `OpenAutoGLM.loadRuntime(path:)`).
const NEEDED: &str = "install ONNX Runtime >= 1.22 and load it from its path, or set ORT_DYLIB_PATH to it";

/// The loaded runtime: where it came from and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub library_path: String,
    pub ort_version: String,
}

struct Loaded {
    env: Environment,
    info: RuntimeInfo,
}

/// Whether ONNX Runtime may send telemetry. Off unless the app opts in: Microsoft's builds (the PyPI wheel, the
/// Android AAR) record usage events (process, OS, network type, a device id) for upload by default, and an SDK must
/// not report on the app it is in without its developer asking.
static TELEMETRY: AtomicBool = AtomicBool::new(false);

/// ONNX Runtime's own switch, read when it starts: set, its telemetry (Linux and Apple builds: Microsoft's 1DS
/// client) never starts, so nothing is recorded, stored (a device id, an event database under the user's cache
/// directory) or sent. `DisableTelemetryEvents` alone comes too late: creating the environment already records an
/// event.
const ORT_DISABLE_TELEMETRY: &str = "ORT_DISABLE_TELEMETRY";

// ort allows one environment per process, even after the first is dropped: keep it for the process lifetime.
static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// Process-wide access to ONNX Runtime.
pub struct Runtime;

impl Runtime {
    /// Loads ONNX Runtime from `library_path` (or the default search when `None`) unless it is already loaded.
    /// Asking for a path that does not exist is always an error, even after a runtime was loaded, so a
    /// misconfigured app finds out at once. A failed load can be retried with another path.
    pub fn init(library_path: Option<&Path>) -> Result<RuntimeInfo> {
        crate::logging::init();
        if cfg!(target_os = "ios") && library_path.is_some() {
            return Err(Error::InvalidConfig {
                reason: "on iOS ONNX Runtime is linked into the app; call Runtime::init(None)".into(),
            });
        }
        if let Some(path) = library_path
            && !path.is_file()
        {
            return Err(Error::RuntimeUnavailable {
                path: path.display().to_string(),
                reason: "no such file; pass the path of libonnxruntime (ONNX Runtime >= 1.22)".into(),
            });
        }
        let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loaded) = slot.as_ref() {
            if let Some(path) = library_path {
                let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                let have = std::fs::canonicalize(&loaded.info.library_path)
                    .unwrap_or_else(|_| loaded.info.library_path.clone().into());
                if wanted != have {
                    return Err(Error::InvalidConfig {
                        reason: format!(
                            "ONNX Runtime is already loaded from `{}`; a process can load only one (asked for `{}`)",
                            loaded.info.library_path,
                            path.display()
                        ),
                    });
                }
            }
            return Ok(loaded.info.clone());
        }
        let path = library_path.map(Path::to_path_buf).unwrap_or_else(default_library_path);
        keep_telemetry_from_starting();
        let loaded = catch_panic(|| load(&path))?;
        let info = loaded.info.clone();
        log::info!("ONNX Runtime {} loaded from {}", info.ort_version, info.library_path);
        *slot = Some(loaded);
        Ok(info)
    }

    /// Lets ONNX Runtime send its usage telemetry (`true`) or stops it (`false`, the default). Applies to the
    /// environment now if the runtime is loaded, else to the one it will be created with.
    ///
    /// Opting in works only before the runtime loads (before the first engine): ONNX Runtime starts its telemetry
    /// client then or never, so asking afterwards is an `InvalidConfig` error. Turning it off works at any time.
    pub fn set_telemetry(enabled: bool) -> Result<()> {
        let slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        let Some(loaded) = slot.as_ref() else {
            TELEMETRY.store(enabled, Ordering::SeqCst);
            return Ok(());
        };
        if enabled && !TELEMETRY.load(Ordering::SeqCst) {
            return Err(Error::InvalidConfig {
                reason: "ONNX Runtime telemetry can only be turned on before the runtime loads (before the first \
                         engine); it is off for this process"
                    .into(),
            });
        }
        TELEMETRY.store(enabled, Ordering::SeqCst);
        apply_telemetry(&loaded.env, enabled)
    }

    /// Whether ONNX Runtime's telemetry is on: what this SDK last told it (off unless the app opted in).
    pub fn telemetry_enabled() -> bool {
        TELEMETRY.load(Ordering::SeqCst)
    }

    /// The runtime if loaded, without loading it.
    pub fn info() -> Option<RuntimeInfo> {
        RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|l| l.info.clone())
    }

    /// [`Error::RuntimeTooOld`] unless the loaded runtime (loading the default one first if needed) has `feature`.
    pub fn require(feature: Feature) -> Result<()> {
        feature.check(&Runtime::init(None)?.ort_version)
    }

    /// Runs `f` with the process environment, loading the runtime from the default place first if needed.
    pub(crate) fn with_env<T>(f: impl FnOnce(&Environment) -> Result<T>) -> Result<T> {
        Runtime::init(None)?;
        let slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = slot.as_ref().ok_or_else(|| Error::internal("runtime vanished after init"))?;
        let env = loaded.env.clone();
        drop(slot);
        // Sessions made from here on log at the level in force now (`logging::set_level` may have changed it).
        env.set_log_level(crate::logging::level().ort_severity());
        f(&env)
    }
}

/// Unless the app opted in, sets ONNX Runtime's own off switch before the library is opened (it is read then or when
/// the environment is created). A value the app set itself is left alone.
fn keep_telemetry_from_starting() {
    if Runtime::telemetry_enabled() || std::env::var_os(ORT_DISABLE_TELEMETRY).is_some() {
        return;
    }
    // SAFETY: setenv can race a concurrent getenv on another thread. This runs once per process, under the runtime
    // lock, before ONNX Runtime exists, and no code of this SDK reads the environment elsewhere at the same time;
    // the alternative is ONNX Runtime recording the app's usage for Microsoft without the developer asking.
    unsafe { std::env::set_var(ORT_DISABLE_TELEMETRY, "1") };
}

/// Tells ONNX Runtime's environment to record and send telemetry events, or not.
fn apply_telemetry(env: &Environment, enabled: bool) -> Result<()> {
    use ort::AsPointer;
    let api = ort::api();
    let env_ptr = env.ptr().cast_mut();
    // SAFETY: `env_ptr` is the live process environment (kept for the process lifetime); both calls only flip a
    // flag in it and return a status, which is released here (null, the success case, is a no-op to release).
    unsafe {
        let status = if enabled { (api.EnableTelemetryEvents)(env_ptr) } else { (api.DisableTelemetryEvents)(env_ptr) };
        let failed = !status.0.is_null();
        (api.ReleaseStatus)(status.0);
        if failed {
            return Err(Error::internal("ONNX Runtime refused to switch its telemetry"));
        }
    }
    Ok(())
}

fn default_library_path() -> PathBuf {
    let name = format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    match std::env::var_os(ORT_PATH_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => own_directory().map(|dir| dir.join(&name)).filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from(name)),
    }
}

/// The directory of the binary this code is linked into (libopenautoglm_ffi, or an executable), from the loader.
#[cfg(all(unix, not(target_os = "ios")))]
fn own_directory() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: Dl_info is plain C data (pointers and integers), for which all zeros is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables for an address inside this binary and fills `info`; the file
    // name it returns is a C string owned by the loader for as long as the binary stays loaded (the process).
    let file = unsafe {
        if libc::dladdr(own_directory as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
    };
    Path::new(std::ffi::OsStr::from_bytes(file.to_bytes())).parent().map(Path::to_path_buf)
}

#[cfg(not(all(unix, not(target_os = "ios"))))]
fn own_directory() -> Option<PathBuf> {
    None
}

/// `major.minor` of a version string such as `1.31.1`; `None` when it is not one.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether ONNX Runtime `version` is at least `major.minor` (an unreadable version is not).
fn at_least(version: &str, major: u32, minor: u32) -> bool {
    major_minor(version).is_some_and(|have| have >= (major, minor))
}

/// Whether this SDK runs on ONNX Runtime `version`: a 1.x release from [`MIN_ORT_VERSION`] on (ort's API level).
#[cfg_attr(target_os = "ios", allow(dead_code))] // iOS links its ONNX Runtime; nothing to probe
fn supported(version: &str) -> bool {
    let (min_major, min_minor) = major_minor(MIN_ORT_VERSION).expect("MIN_ORT_VERSION is major.minor");
    major_minor(version).is_some_and(|(major, _)| major == min_major) && at_least(version, min_major, min_minor)
}

#[cfg(not(target_os = "ios"))]
fn load(path: &Path) -> Result<Loaded> {
    let unavailable = |reason: String| Error::RuntimeUnavailable { path: path.display().to_string(), reason };
    // ort keeps the first library it opens for the whole process, even one whose API it then cannot get: checked
    // here first, a broken library is refused and a later load of the real one still works.
    probe(path)?;
    let builder = ort::init_from(path).map_err(|e| unavailable(format!("{e}; {NEEDED}")))?;
    let env = builder
        .with_name("openautoglm")
        .with_logger(crate::logging::ort_logger())
        .with_telemetry(Runtime::telemetry_enabled())
        .build()
        .map_err(|e| unavailable(format!("cannot create the environment: {e}")))?;
    env.set_log_level(crate::logging::level().ort_severity());
    let ort_version = ort_version(path).unwrap_or_else(|| "unknown".into());
    Ok(Loaded { env, info: RuntimeInfo { library_path: path.display().to_string(), ort_version } })
}

/// Opens the library as ort will and checks what ort assumes: `OrtGetApiBase` exists and returns an API base, the
/// version is at least [`MIN_ORT_VERSION`], and the API this SDK is built against is there.
#[cfg(not(target_os = "ios"))]
fn probe(path: &Path) -> Result<()> {
    let needed = format!("; {NEEDED}");
    let unavailable = |reason: String| Error::RuntimeUnavailable { path: path.display().to_string(), reason };
    // SAFETY: opening a library runs its initializers, as ort's own load would; the symbol is called with the
    // signature every ONNX Runtime release exports, and the pointers it returns are checked before use.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| unavailable(format!("{e}{needed}")))?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> = lib
            .get(b"OrtGetApiBase")
            .map_err(|_| unavailable(format!("not ONNX Runtime: no OrtGetApiBase{needed}")))?;
        let base = get_base();
        let version = version_of(base).ok_or_else(|| unavailable(format!("OrtGetApiBase returned nothing{needed}")))?;
        if major_minor(&version).is_none() {
            return Err(unavailable(format!("version `{}` is unreadable{needed}", version.escape_debug())));
        }
        if !supported(&version) {
            // An older release (or a 2.x one, whose API this build does not know): named with what is needed.
            Feature::Engine.check(&version)?;
            return Err(unavailable(format!("version {version} is not a 1.x release{needed}")));
        }
        if ((*base).GetApi)(ort::sys::ORT_API_VERSION).is_null() {
            return Err(unavailable(format!(
                "ONNX Runtime {version} does not provide API {}{needed}",
                ort::sys::ORT_API_VERSION
            )));
        }
    }
    Ok(())
}

/// The version string the library reports. ort checked it while loading but does not expose it; opening the same
/// library again only bumps the loader's reference count.
#[cfg(not(target_os = "ios"))]
fn ort_version(path: &Path) -> Option<String> {
    // SAFETY: the library was just loaded successfully by ort from this path; OrtGetApiBase has this signature in
    // every ONNX Runtime release and GetVersionString returns a static C string.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        version_of(get_base())
    }
}

#[cfg(target_os = "ios")]
fn load(_path: &Path) -> Result<Loaded> {
    let env = ort::init()
        .with_name("openautoglm")
        .with_logger(crate::logging::ort_logger())
        .with_telemetry(Runtime::telemetry_enabled())
        .build()
        .map_err(|e| Error::RuntimeUnavailable {
            path: "(linked)".into(),
            reason: format!("cannot create the environment: {e}"),
        })?;
    env.set_log_level(crate::logging::level().ort_severity());
    // SAFETY: ORT is linked into this binary, so OrtGetApiBase is a plain symbol.
    let ort_version = unsafe { version_of(ort::sys::OrtGetApiBase()) }.unwrap_or_else(|| "unknown".into());
    Ok(Loaded { env, info: RuntimeInfo { library_path: "(linked)".into(), ort_version } })
}

/// SAFETY: `base` is null or ONNX Runtime's API base, whose GetVersionString returns a static C string.
unsafe fn version_of(base: *const ort::sys::OrtApiBase) -> Option<String> {
    if base.is_null() {
        return None;
    }
    unsafe { Some(std::ffi::CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_gate_takes_1_22_and_later_1_x_releases() {
        for ok in ["1.22.0", "1.22", "1.24.1", "1.31.1", "1.100.0-dev"] {
            assert!(supported(ok), "{ok}");
        }
        for refused in ["1.21.1", "1.17.0", "1.16.3", "0.99.0", "2.0.0", "", "unknown", "1", "1.x.0", "v1.31.1"] {
            assert!(!supported(refused), "{refused:?}");
        }
    }

    #[test]
    fn a_feature_on_an_older_runtime_is_runtime_too_old_naming_both_versions() {
        assert_eq!(Feature::PluginExecutionProviders.check("1.31.1"), Ok(()));
        assert_eq!(
            Feature::PluginExecutionProviders.check("1.20.1"),
            Err(Error::RuntimeTooOld {
                feature: "plugin execution providers".into(),
                required: "1.22".into(),
                loaded: "1.20.1".into(),
            })
        );
        let message = Feature::ExternalDataFromMemory.check("1.20.1").unwrap_err().to_string();
        assert!(message.contains(">= 1.21") && message.contains("1.20.1"), "{message}");
        for feature in Feature::ALL {
            assert!(at_least(MIN_ORT_VERSION, 1, 0) && major_minor(feature.minimum()).is_some());
            // The load gate covers every feature today: none needs more than the engine.
            let (major, minor) = major_minor(feature.minimum()).unwrap();
            assert!(at_least(MIN_ORT_VERSION, major, minor), "{feature:?}");
        }
    }

    #[test]
    fn feature_gates_compare_major_then_minor() {
        assert!(at_least("1.21.0", 1, 21));
        assert!(at_least("1.31.1", 1, 21));
        assert!(at_least("2.0.0", 1, 21));
        assert!(!at_least("1.20.9", 1, 21));
        assert!(!at_least("1.9.0", 1, 21), "minor 9 < 21 numerically, not as text");
        assert!(!at_least("garbage", 1, 0));
        assert_eq!(major_minor("1.31.1"), Some((1, 31)));
    }
}
