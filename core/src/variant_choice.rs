//! How `Precision::Auto` chooses among a model's variants, for engines (bundles) and LLMs alike: measurements on
//! this device class first, guidance second, and never a variant that failed its quality check.
//!
//! A variant's measurements are keyed by [`device_class`] (`linux-x86_64-cpu`, `android-aarch64-nnapi`, ...), written
//! by `cargo xtask bench --record` where the variant ran. Where no passing variant was measured on this class, the
//! caller's order of preference (ONNX Runtime's guidance per accelerator) decides.
//!
//! A variant's accuracy verdicts are keyed by [`numerics_class`]: which kernels computed the numbers. ONNX Runtime's
//! x86-64 CPU kernels compute many float16 ops in float32 while its ARM64 kernels run them natively, so a variant can
//! pass on one and give garbage on the other: a verdict holds only for the class it was taken on.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Accelerator;

/// A measurement of one variant on one device class: lower is better.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[cfg_attr(feature = "manifest-tools", derive(serde::Serialize))]
pub struct Measured {
    /// Mean latency per run (engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    /// Generated tokens per second (LLMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// What measured it (`cargo xtask bench --record`, `models prepare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Measured {
    /// Time per unit of work, comparable between variants of one model.
    fn cost_ms(&self) -> Option<f64> {
        let cost = self.mean_ms.or(self.tokens_per_s.filter(|t| *t > 0.0).map(|t| 1000.0 / t))?;
        (cost.is_finite() && cost > 0.0).then_some(cost)
    }
}

pub type Measurements = BTreeMap<String, Measured>;

/// The class of device a measurement holds for: OS, CPU architecture and the accelerator leading the model.
pub fn device_class(leading: &Accelerator) -> String {
    format!("{}-{}-{}", std::env::consts::OS, std::env::consts::ARCH, leading.short_name())
}

/// The class of numerics whose accuracy verdicts hold for an engine led by `leading`: the CPU architecture whose
/// ONNX Runtime kernels compute the model (`linux-x86_64-cpu`, `linux-aarch64-cpu`; Android and iOS CPUs are
/// `linux-aarch64-cpu`: the same ONNX Runtime ARM64 kernels, whatever the OS). NNAPI, CoreML and XNNPACK have no
/// verdicts of their own yet and take their architecture's CPU verdict: the nearest measured numerics (ARM64
/// computes float16 natively, as the GPU and NPU do), never a verdict from another architecture. A plugin
/// execution provider computes with its own kernels (OpenVINO's, QNN's), so it has a class of its own
/// (`linux-x86_64-openvino`): without verdicts there, only FP32 runs on it.
pub fn numerics_class(leading: &Accelerator) -> String {
    let kernels = match leading {
        Accelerator::Plugin { .. } => leading.short_name(),
        _ => "cpu".into(),
    };
    format!("linux-{}-{kernels}", std::env::consts::ARCH)
}

/// One variant as the choice sees it.
pub(crate) struct Candidate<'a> {
    pub name: &'a str,
    pub passed: bool,
    pub measured: Option<&'a Measurements>,
}

/// The fastest passing candidate measured on `class`, with the reason to report; `None` when no passing candidate
/// was measured there (the caller then follows its guidance).
pub(crate) fn fastest_measured(candidates: &[Candidate<'_>], class: &str) -> Option<(usize, String)> {
    let mut measured: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.passed)
        .filter_map(|(i, c)| Some((i, c.measured?.get(class)?.cost_ms()?)))
        .collect();
    measured.sort_by(|a, b| a.1.total_cmp(&b.1));
    let &(best, cost) = measured.first()?;
    let others: Vec<String> =
        measured[1..].iter().map(|&(i, c)| format!("{} {:.2}x", candidates[i].name, c / cost)).collect();
    let reason = if others.is_empty() {
        format!("auto: the only variant that passed its check and was measured on {class}")
    } else {
        format!("auto: the fastest variant that passed its check, measured on {class} (others: {})", others.join(", "))
    };
    Some((best, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(class: &str, ms: f64) -> Measurements {
        BTreeMap::from([(class.to_owned(), Measured { mean_ms: Some(ms), ..Measured::default() })])
    }

    #[test]
    fn the_fastest_passing_measurement_wins_and_failures_never_do() {
        let (slow, fast, failed) = (measured("c", 4.0), measured("c", 2.0), measured("c", 1.0));
        let candidates = [
            Candidate { name: "fp32", passed: true, measured: Some(&slow) },
            Candidate { name: "int8-mixed", passed: true, measured: Some(&fast) },
            Candidate { name: "int8-qdq", passed: false, measured: Some(&failed) },
        ];
        let (index, reason) = fastest_measured(&candidates, "c").unwrap();
        assert_eq!(candidates[index].name, "int8-mixed");
        assert!(reason.contains("fp32 2.00x"), "{reason}");
        assert!(!reason.contains("int8-qdq"), "{reason}");
    }

    #[test]
    fn other_device_classes_and_unmeasured_variants_leave_it_to_guidance() {
        let elsewhere = measured("android-aarch64-nnapi", 1.0);
        let candidates = [
            Candidate { name: "fp32", passed: true, measured: None },
            Candidate { name: "int8", passed: true, measured: Some(&elsewhere) },
        ];
        assert!(fastest_measured(&candidates, "linux-x86_64-cpu").is_none());
    }

    #[test]
    fn tokens_per_second_are_costs_too() {
        let a = BTreeMap::from([("c".to_owned(), Measured { tokens_per_s: Some(100.0), ..Measured::default() })]);
        let b = BTreeMap::from([("c".to_owned(), Measured { tokens_per_s: Some(30.0), ..Measured::default() })]);
        let nonsense = BTreeMap::from([("c".to_owned(), Measured { mean_ms: Some(f64::NAN), ..Measured::default() })]);
        let candidates = [
            Candidate { name: "fp32", passed: true, measured: Some(&b) },
            Candidate { name: "int4-mixed", passed: true, measured: Some(&a) },
            Candidate { name: "broken", passed: true, measured: Some(&nonsense) },
        ];
        assert_eq!(fastest_measured(&candidates, "c").unwrap().0, 1);
    }

    #[test]
    fn device_class_names_os_arch_and_accelerator() {
        let class = device_class(&Accelerator::Cpu);
        assert!(class.ends_with("-cpu") && class.starts_with(std::env::consts::OS), "{class}");
    }

    #[test]
    fn a_plugin_computes_in_a_class_of_its_own_and_the_builtin_accelerators_in_their_cpus() {
        let arch = std::env::consts::ARCH;
        let openvino = Accelerator::openvino("/lib/plugin.so", crate::DeviceKind::Cpu);
        assert_eq!(numerics_class(&openvino), format!("linux-{arch}-openvino"));
        assert!(device_class(&openvino).ends_with(&format!("{arch}-openvino")));
        assert_eq!(
            numerics_class(&Accelerator::qnn_htp("libonnxruntime_providers_qnn.so", "burst")),
            format!("linux-{arch}-qnn")
        );
        let xnnpack = Accelerator::Xnnpack { threads: 0 };
        assert_eq!(numerics_class(&xnnpack), numerics_class(&Accelerator::Cpu));
    }
}
