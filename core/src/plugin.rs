//! Plugin execution providers: accelerators ONNX Runtime loads at run time from a library (its plugin-EP API, ONNX
//! Runtime >= 1.22), such as Intel's OpenVINO or Qualcomm's QNN. A library is registered once per process under the
//! provider's name; an engine then picks the provider's devices of the kind it asked for and hands them to its
//! session.

use std::path::Path;
use std::sync::Mutex;

use ort::device::Device;
use ort::environment::Environment;
use ort::memory::DeviceType;

use crate::config::{DeviceKind, ProviderOption};
use crate::error::{Error, Result};

/// The plugins registered in this process: provider name and the library it came from. ONNX Runtime keeps a
/// registered library loaded until the environment ends (the process, here).
static REGISTERED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Registers `library` as the plugin for `provider` unless it already is. Registering another library for a
/// provider already registered is `InvalidConfig`: ONNX Runtime keeps one per name.
pub(crate) fn register(env: &Environment, provider: &str, library: &str) -> Result<()> {
    let unavailable = |reason: String| Error::AcceleratorUnavailable { provider: provider.to_owned(), reason };
    // A path with a directory must exist; a plain file name is left to the system loader (on Android, the app's
    // native library directory, where a plugin AAR puts its libraries).
    if library.is_empty() || (library.contains('/') && !Path::new(library).is_file()) {
        return Err(unavailable(format!("no plugin library at `{library}`")));
    }
    crate::Runtime::require(crate::runtime::Feature::PluginExecutionProviders)?;
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, have)) = registered.iter().find(|(name, _)| name == provider) {
        if have == library {
            return Ok(());
        }
        return Err(Error::InvalidConfig {
            reason: format!(
                "{provider} is already registered from `{have}` in this process; a provider has one library (asked \
                 for `{library}`)"
            ),
        });
    }
    env.register_ep_library(provider, library)
        .map_err(|e| unavailable(format!("ONNX Runtime could not load `{library}` as a plugin: {}", e.message())))?;
    registered.push((provider.to_owned(), library.to_owned()));
    Ok(())
}

/// The devices of `provider` of kind `kind`, in ONNX Runtime's order; empty when the plugin offers none here.
pub(crate) fn devices<'e>(env: &'e Environment, provider: &str, kind: DeviceKind) -> Vec<Device<'e>> {
    let wanted = match kind {
        DeviceKind::Cpu => DeviceType::CPU,
        DeviceKind::Gpu => DeviceType::GPU,
        DeviceKind::Npu => DeviceType::NPU,
    };
    env.devices().filter(|d| d.ep().is_ok_and(|ep| ep == provider) && d.hardware_device().ty() == wanted).collect()
}

/// What the registered plugins offer here, as `OpenVINOExecutionProvider CPU (Intel)`: the message of an
/// accelerator that found no device of the kind it wanted.
pub(crate) fn offered(env: &Environment) -> Vec<String> {
    env.devices()
        .filter_map(|d| {
            let ep = d.ep().ok().filter(|ep| *ep != "CPUExecutionProvider")?;
            let hardware = d.hardware_device();
            Some(format!("{ep} {:?} ({})", hardware.ty(), hardware.vendor().unwrap_or("unknown vendor")))
        })
        .collect()
}

/// Provider options as ONNX Runtime's device API takes them: each key prefixed with the provider's name.
pub(crate) fn prefixed_options(provider: &str, options: &[ProviderOption]) -> Vec<(String, String)> {
    options.iter().map(|o| (format!("{provider}.{}", o.key), o.value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_prefixed_with_the_provider() {
        let options = [ProviderOption { key: "cache_dir".into(), value: "/c".into() }];
        assert_eq!(
            prefixed_options("OpenVINOExecutionProvider", &options),
            vec![("OpenVINOExecutionProvider.cache_dir".to_string(), "/c".to_string())]
        );
    }
}
