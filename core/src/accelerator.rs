//! Accelerators: each [`Accelerator`] as the ONNX Runtime execution provider it maps to (with its options), which
//! providers the loaded ONNX Runtime has, registration in preference order, and the report of what was used.

use std::num::NonZeroUsize;
use std::path::Path;

use ort::ep::{ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;

use crate::config::{
    Accelerator, CoreMlComputeUnits, CoreMlModelFormat, DeviceKind, EngineConfig, OPENVINO_PROVIDER, ProviderOption,
};
use crate::error::{Error, Result};
use crate::plugin;
use crate::runtime::Runtime;

/// Which accelerators a built engine uses, and why the others were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceleratorReport {
    /// Execution providers registered, in preference order; the CPU provider is always last.
    pub active: Vec<String>,
    pub skipped: Vec<SkippedAccelerator>,
}

/// An accelerator that was asked for but not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedAccelerator {
    pub provider: String,
    pub reason: String,
}

/// The ONNX Runtime execution provider an accelerator maps to, with its options, ready to register.
fn execution_provider(accelerator: &Accelerator) -> Option<ExecutionProviderDispatch> {
    Some(match accelerator {
        Accelerator::Cpu => return None,
        Accelerator::Xnnpack { threads } => xnnpack(*threads).build(),
        #[cfg(not(target_os = "ios"))]
        Accelerator::Nnapi { fp16, nchw, cpu_disabled, cpu_only } => ort::ep::NNAPI::default()
            .with_fp16(*fp16)
            .with_nchw(*nchw)
            .with_disable_cpu(*cpu_disabled)
            .with_cpu_only(*cpu_only)
            .build(),
        #[cfg(target_os = "ios")]
        Accelerator::Nnapi { .. } => return None,
        Accelerator::CoreMl { compute_units, model_format, static_shapes, subgraphs, cache_dir } => {
            coreml(*compute_units, *model_format, *static_shapes, *subgraphs, cache_dir.as_deref()).build()
        }
        // Registered through ONNX Runtime's device API instead (see `register_accelerators`).
        Accelerator::Plugin { .. } => return None,
        Accelerator::Auto => return None, // resolved first (`candidates`)
    })
}

fn xnnpack(threads: i32) -> ort::ep::XNNPACK {
    // A negative count is refused with the configuration; here it is read as "one per core" like 0.
    let threads = match usize::try_from(threads) {
        Ok(n) if n > 0 => n,
        _ => crate::config::cores(),
    };
    ort::ep::XNNPACK::default().with_intra_op_num_threads(NonZeroUsize::new(threads).expect("at least one thread"))
}

fn coreml(
    compute_units: CoreMlComputeUnits,
    model_format: CoreMlModelFormat,
    static_shapes: bool,
    subgraphs: bool,
    cache_dir: Option<&str>,
) -> ort::ep::CoreML {
    use ort::ep::coreml::{ComputeUnits, ModelFormat};
    let units = match compute_units {
        CoreMlComputeUnits::All => ComputeUnits::All,
        CoreMlComputeUnits::CpuAndGpu => ComputeUnits::CPUAndGPU,
        CoreMlComputeUnits::CpuAndNeuralEngine => ComputeUnits::CPUAndNeuralEngine,
        CoreMlComputeUnits::CpuOnly => ComputeUnits::CPUOnly,
    };
    let format = match model_format {
        CoreMlModelFormat::MlProgram => ModelFormat::MLProgram,
        CoreMlModelFormat::NeuralNetwork => ModelFormat::NeuralNetwork,
    };
    // ort writes these two booleans as "true"/"false", but ONNX Runtime's CoreML option parser only takes "1" as on
    // (coreml_options.cc: `option.second == "1"`), so they are set here as ONNX Runtime reads them.
    let flag = |on: bool| if on { "1" } else { "0" };
    let provider = ort::ep::CoreML::default()
        .with_compute_units(units)
        .with_model_format(format)
        .with_arbitrary_config("RequireStaticInputShapes", flag(static_shapes))
        .with_arbitrary_config("EnableOnSubgraphs", flag(subgraphs));
    match cache_dir {
        Some(dir) => provider.with_model_cache_dir(dir),
        None => provider,
    }
}

/// Why an accelerator cannot be registered here, if it cannot. A plugin is usable when its library registers and
/// offers a device of the kind asked for; a library that does not register at all is an error, not a skip.
fn unusable(accelerator: &Accelerator, available: &[String]) -> Result<Option<String>> {
    if let Accelerator::Plugin { library, provider, device, .. } = accelerator {
        return Runtime::with_env(|env| {
            plugin::register(env, provider, library)?;
            if !plugin::devices(env, provider, *device).is_empty() {
                return Ok(None);
            }
            let offered = plugin::offered(env);
            let offered = if offered.is_empty() { "none".to_owned() } else { offered.join(", ") };
            Ok(Some(format!("offers no {device:?} device on this machine (plugin devices here: {offered})")))
        });
    }
    Ok(legacy_unusable(accelerator, available))
}

fn legacy_unusable(accelerator: &Accelerator, available: &[String]) -> Option<String> {
    if *accelerator == Accelerator::Cpu {
        return None;
    }
    if execution_provider(accelerator).is_none() {
        return Some("not supported on this platform".into());
    }
    let name = accelerator.provider_name();
    (!available.iter().any(|a| a == name))
        .then(|| format!("not in this ONNX Runtime build (it has: {})", available.join(", ")))
}

/// The accelerators to try, in order: the config's, with [`Accelerator::Auto`] replaced by its platform's list.
/// `true` marks one `Auto` chose, which is skipped rather than refused when it cannot be used.
pub(crate) fn candidates(config: &EngineConfig) -> Vec<(Accelerator, bool)> {
    config
        .accelerators
        .iter()
        .flat_map(|a| match a {
            Accelerator::Auto => Accelerator::auto_for(std::env::consts::OS).into_iter().map(|a| (a, true)).collect(),
            other => vec![(other.clone(), false)],
        })
        .collect()
}

/// [`unusable`], where a plugin `Auto` chose that is not there (not shipped with the app) is a reason to skip it.
fn unusable_candidate(accelerator: &Accelerator, chosen: bool, available: &[String]) -> Result<Option<String>> {
    match unusable(accelerator, available) {
        Err(Error::AcceleratorUnavailable { reason, .. }) if chosen => Ok(Some(reason)),
        other => other,
    }
}

/// The accelerator that will take the model: the first one asked for that this ONNX Runtime has (else the CPU).
pub(crate) fn leading_accelerator(config: &EngineConfig) -> Result<Accelerator> {
    let available = available_providers();
    for (accelerator, chosen) in candidates(config) {
        if unusable_candidate(&accelerator, chosen, &available)?.is_none() {
            return Ok(accelerator);
        }
    }
    Ok(Accelerator::Cpu)
}

/// Registers the accelerators in order: those this ONNX Runtime has, skipping (or, strict, refusing) the others.
pub(crate) fn register_accelerators(
    mut builder: SessionBuilder,
    config: &EngineConfig,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let available = available_providers();
    let mut report = AcceleratorReport::default();
    for (accelerator, chosen) in candidates(config) {
        let accelerator = &accelerator;
        let name = accelerator.provider_name();
        let skip = |report: &mut AcceleratorReport, reason: String| -> Result<()> {
            if config.strict && !chosen {
                return Err(Error::InvalidConfig { reason: format!("{name}: {reason} (strict mode)") });
            }
            log::warn!("skipping {name}: {reason}");
            report.skipped.push(SkippedAccelerator { provider: name.to_owned(), reason });
            Ok(())
        };
        if let Some(reason) = unusable_candidate(accelerator, chosen, &available)? {
            skip(&mut report, reason)?;
            continue;
        }
        let accelerator = with_compile_cache(accelerator, config);
        let registered = match &accelerator {
            Accelerator::Plugin { provider, device, options, .. } => Runtime::with_env(|env| {
                let devices = plugin::devices(env, provider, *device);
                Ok(builder.with_devices(devices, Some(&plugin::prefixed_options(provider, options))))
            })?,
            _ => {
                let Some(provider) = execution_provider(&accelerator) else { continue };
                builder.with_execution_providers([provider.error_on_failure()])
            }
        };
        match registered {
            Ok(b) => {
                builder = b;
                report.active.push(name.to_owned());
            }
            Err(e) => {
                let message = e.message().to_owned();
                builder = e.recover();
                skip(&mut report, format!("registration failed: {message}"))?;
            }
        }
    }
    if report.active.is_empty() {
        builder = pin_cpu(builder)?;
    }
    report.active.push("CPUExecutionProvider".into());
    Ok((builder, report))
}

/// A session given no execution provider runs on the CPU provider only. ort asks ONNX Runtime (>= 1.22) to choose
/// devices by policy when a session names none, which would put it on any plugin registered in the process (an
/// OpenVINO or QNN engine elsewhere in the app): the CPU device is named instead.
fn pin_cpu(builder: SessionBuilder) -> Result<SessionBuilder> {
    Runtime::with_env(|env| {
        let cpu: Vec<_> = env.devices().filter(|d| d.ep().is_ok_and(|ep| ep == "CPUExecutionProvider")).collect();
        if cpu.is_empty() {
            return Ok(builder); // no device API in this build: nothing else can be chosen either
        }
        builder
            .with_devices(cpu, None)
            .map_err(|e| Error::internal(format!("selecting the CPU device: {}", e.message())))
    })
}

/// CoreML and OpenVINO keep their compiled models in the engine's compile cache (a `coreml` or `openvino` folder)
/// unless they were given a directory (OpenVINO: a `load_config`) of their own. OpenVINO names each compiled blob by a hash of the model it
/// compiled, weights included, so a model whose weights changed is compiled afresh, never served stale.
fn with_compile_cache(accelerator: &Accelerator, config: &EngineConfig) -> Accelerator {
    let Some(dir) = &config.cache_dir else { return accelerator.clone() };
    let mut accelerator = accelerator.clone();
    match &mut accelerator {
        Accelerator::CoreMl { cache_dir: cache_dir @ None, .. } => {
            *cache_dir = Some(Path::new(dir).join("coreml").display().to_string());
        }
        // OpenVINO's plugin ignores its old `cache_dir` option; the cache is an OpenVINO property of the device, set
        // through `load_config` (inline JSON). An app's own `load_config` is left alone.
        Accelerator::Plugin { provider, options, device, .. }
            if provider == OPENVINO_PROVIDER && !options.iter().any(|o| o.key == "load_config") =>
        {
            let cache = Path::new(dir).join("openvino").display().to_string();
            let device = match device {
                DeviceKind::Cpu => "CPU",
                DeviceKind::Gpu => "GPU",
                DeviceKind::Npu => "NPU",
            };
            // serde_json's string escaping, not its `Value` (which would add its whole tree code to the library).
            let cache = serde_json::to_string(&cache).unwrap_or_default(); // a string always serializes
            let value = format!(r#"{{"{device}":{{"CACHE_DIR":{cache}}}}}"#);
            options.push(ProviderOption { key: "load_config".into(), value });
        }
        _ => {}
    }
    accelerator
}

/// The execution providers the loaded ONNX Runtime was built with.
fn available_providers() -> Vec<String> {
    // SAFETY: GetAvailableProviders fills an array of C strings that ReleaseAvailableProviders frees.
    unsafe {
        let api = ort::api();
        let mut providers: *mut *mut std::ffi::c_char = std::ptr::null_mut();
        let mut count = 0;
        let status = (api.GetAvailableProviders)(&mut providers, &mut count);
        if !status.0.is_null() || providers.is_null() {
            (api.ReleaseStatus)(status.0);
            return Vec::new();
        }
        let names = (0..count as usize)
            .map(|i| std::ffi::CStr::from_ptr(*providers.add(i)).to_string_lossy().into_owned())
            .collect();
        let _ = (api.ReleaseAvailableProviders)(providers, count);
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option strings ONNX Runtime receives (its providers' documented keys and values).
    #[test]
    fn coreml_options_are_onnx_runtime_keys() {
        let options = format!(
            "{:?}",
            coreml(CoreMlComputeUnits::CpuAndNeuralEngine, CoreMlModelFormat::MlProgram, true, false, Some("/cache"))
        );
        for expected in [
            r#""MLComputeUnits": "CPUAndNeuralEngine""#,
            r#""ModelFormat": "MLProgram""#,
            r#""RequireStaticInputShapes": "1""#,
            r#""EnableOnSubgraphs": "0""#,
            r#""ModelCacheDirectory": "/cache""#,
        ] {
            assert!(options.contains(expected), "{expected} not in {options}");
        }
        let options =
            format!("{:?}", coreml(CoreMlComputeUnits::CpuOnly, CoreMlModelFormat::NeuralNetwork, false, true, None));
        assert!(
            options.contains(r#""MLComputeUnits": "CPUOnly""#) && options.contains(r#""EnableOnSubgraphs": "1""#),
            "{options}"
        );
        assert!(!options.contains("ModelCacheDirectory"), "{options}");
    }

    #[test]
    fn xnnpack_threads_default_to_the_cores() {
        assert!(format!("{:?}", xnnpack(3)).contains(r#""intra_op_num_threads": "3""#));
        let cores = crate::config::cores();
        assert!(format!("{:?}", xnnpack(0)).contains(&format!(r#""intra_op_num_threads": "{cores}""#)));
    }
}
