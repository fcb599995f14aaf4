//! Accelerators: each [`Accelerator`] as the ONNX Runtime execution provider it maps to (with its options), which
//! providers the loaded ONNX Runtime has, registration in preference order, and the report of what was used.

use std::num::NonZeroUsize;
use std::path::Path;

use ort::ep::{ArbitrarilyConfigurableExecutionProvider, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;

use crate::config::{Accelerator, CoreMlComputeUnits, CoreMlModelFormat, EngineConfig};
use crate::error::{Error, Result};

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
    })
}

fn xnnpack(threads: i32) -> ort::ep::XNNPACK {
    // A negative count is refused with the configuration; here it is read as "one per core" like 0.
    let threads = match usize::try_from(threads) {
        Ok(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
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

/// Why an accelerator cannot be registered here, if it cannot.
fn unusable(accelerator: &Accelerator, available: &[String]) -> Option<String> {
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

/// The accelerator that will take the model: the first one asked for that this ONNX Runtime has (else the CPU).
pub(crate) fn leading_accelerator(config: &EngineConfig) -> Accelerator {
    let available = available_providers();
    config.accelerators.iter().find(|a| unusable(a, &available).is_none()).cloned().unwrap_or(Accelerator::Cpu)
}

/// Registers the accelerators in order: those this ONNX Runtime has, skipping (or, strict, refusing) the others.
pub(crate) fn register_accelerators(
    mut builder: SessionBuilder,
    config: &EngineConfig,
) -> Result<(SessionBuilder, AcceleratorReport)> {
    let available = available_providers();
    let mut report = AcceleratorReport::default();
    for accelerator in &config.accelerators {
        let name = accelerator.provider_name();
        let skip = |report: &mut AcceleratorReport, reason: String| -> Result<()> {
            if config.strict {
                return Err(Error::InvalidConfig { reason: format!("{name}: {reason} (strict mode)") });
            }
            log::warn!("skipping {name}: {reason}");
            report.skipped.push(SkippedAccelerator { provider: name.to_owned(), reason });
            Ok(())
        };
        if let Some(reason) = unusable(accelerator, &available) {
            skip(&mut report, reason)?;
            continue;
        }
        let Some(provider) = execution_provider(&with_compile_cache(accelerator, config)) else { continue };
        match builder.with_execution_providers([provider.error_on_failure()]) {
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
    report.active.push("CPUExecutionProvider".into());
    Ok((builder, report))
}

/// CoreML keeps its compiled models in the engine's compile cache unless it was given a directory of its own.
fn with_compile_cache(accelerator: &Accelerator, config: &EngineConfig) -> Accelerator {
    match (accelerator, &config.cache_dir) {
        (Accelerator::CoreMl { cache_dir: None, .. }, Some(dir)) => {
            let mut accelerator = accelerator.clone();
            if let Accelerator::CoreMl { cache_dir, .. } = &mut accelerator {
                *cache_dir = Some(Path::new(dir).join("coreml").display().to_string());
            }
            accelerator
        }
        _ => accelerator.clone(),
    }
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(format!("{:?}", xnnpack(0)).contains(&format!(r#""intra_op_num_threads": "{cores}""#)));
    }
}
