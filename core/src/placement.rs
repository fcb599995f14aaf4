//! Which execution provider runs which part of a model, read from ONNX Runtime's profile of one run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ort::session::Session;
use serde::Deserialize;

use crate::error::{Error, OrtResultExt, Result};

/// The fields of a profile event that placement needs (typed: much smaller code than `serde_json::Value`).
#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    args: EventArgs,
}

#[derive(Deserialize, Default)]
struct EventArgs {
    #[serde(default)]
    provider: Option<String>,
}

/// Where a model's nodes ran, by provider, in the order each provider first appears.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub providers: Vec<ProviderPlacement>,
    /// Plain-language warnings, such as an accelerator taking few nodes in many partitions.
    pub warnings: Vec<String>,
}

/// One provider's share: nodes it ran, and in how many partitions (maximal runs of consecutive nodes, in execution
/// order, on that provider). Each partition boundary is a hand-over between the accelerator and the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPlacement {
    pub provider: String,
    pub nodes: i32,
    pub partitions: i32,
}

/// Below this many nodes per partition, hand-overs between an accelerator and the CPU usually cost more than the
/// accelerator saves: the pattern behind NNAPI running slower than the CPU (ONNX Runtime #9285, #7859).
const MIN_NODES_PER_PARTITION: f64 = 8.0;

impl Placement {
    /// Reads ONNX Runtime's profile (Chrome-trace JSON): every `Node` event names its node and provider.
    pub(crate) fn from_profile(profile: &str) -> Result<Placement, serde_json::Error> {
        let events: Vec<Event> = serde_json::from_str(profile)?;
        let mut nodes: Vec<(f64, &str, &str)> = events
            .iter()
            .filter(|e| e.cat == "Node")
            .filter_map(|e| Some((e.ts, e.name.strip_suffix("_kernel_time")?, e.args.provider.as_deref()?)))
            .collect();
        nodes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut seen = std::collections::HashSet::new();
        let order: Vec<&str> = nodes.iter().filter(|(_, name, _)| seen.insert(*name)).map(|(_, _, p)| *p).collect();
        Ok(Placement::from_execution_order(&order))
    }

    /// From the provider of each node, in execution order.
    pub(crate) fn from_execution_order(order: &[&str]) -> Placement {
        let mut providers: Vec<ProviderPlacement> = Vec::new();
        let mut previous = None;
        for &provider in order {
            let index = match providers.iter().position(|p| p.provider == provider) {
                Some(i) => i,
                None => {
                    providers.push(ProviderPlacement { provider: provider.to_owned(), nodes: 0, partitions: 0 });
                    providers.len() - 1
                }
            };
            providers[index].nodes += 1;
            if previous != Some(provider) {
                providers[index].partitions += 1;
                previous = Some(provider);
            }
        }
        let warnings = providers
            .iter()
            .filter(|p| p.provider != "CPUExecutionProvider" && p.partitions > 1)
            .filter(|p| f64::from(p.nodes) / f64::from(p.partitions) < MIN_NODES_PER_PARTITION)
            .map(|p| {
                format!(
                    "{} runs only {} nodes in {} partitions; every partition boundary hands tensors to and from the \
                     CPU, which often makes this slower than the CPU alone. Benchmark it against Accelerator::Cpu, \
                     or use strict mode to refuse partial placement.",
                    p.provider, p.nodes, p.partitions
                )
            })
            .collect();
        Placement { providers, warnings }
    }

    /// Total nodes run.
    pub fn nodes(&self) -> i32 {
        self.providers.iter().map(|p| p.nodes).sum()
    }
}

/// A fresh path prefix for one session's profile (ONNX Runtime appends a timestamp and `.json`).
pub(crate) fn profile_prefix() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "openautoglm-profile-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Ends a profiling session's profile for good and reads where its nodes ran; the profile file is removed.
pub(crate) fn end_profiling(session: &mut Session) -> Result<Placement> {
    let file = session.end_profiling().or_internal("ending the profile")?;
    let text = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    let text = text.map_err(|e| Error::internal(format!("reading the profile {file}: {e}")))?;
    Placement::from_profile(&text).map_err(|e| Error::internal(format!("unreadable profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nodes_and_partitions_per_provider() {
        let nnapi = "NnapiExecutionProvider";
        let cpu = "CPUExecutionProvider";
        let placement = Placement::from_execution_order(&[nnapi, nnapi, cpu, nnapi, cpu, cpu, nnapi]);
        assert_eq!(
            placement.providers,
            vec![
                ProviderPlacement { provider: nnapi.into(), nodes: 4, partitions: 3 },
                ProviderPlacement { provider: cpu.into(), nodes: 3, partitions: 2 },
            ]
        );
        assert_eq!(placement.nodes(), 7);
        assert_eq!(placement.warnings.len(), 1, "{:?}", placement.warnings);
        assert!(placement.warnings[0].contains("NnapiExecutionProvider runs only 4 nodes in 3 partitions"));
    }

    #[test]
    fn one_large_accelerator_partition_is_fine() {
        let mut order = vec!["CoreMLExecutionProvider"; 40];
        order.push("CPUExecutionProvider");
        assert!(Placement::from_execution_order(&order).warnings.is_empty());
        assert!(Placement::from_execution_order(&["CPUExecutionProvider"; 3]).warnings.is_empty());
    }

    #[test]
    fn reads_onnx_runtime_profiles() {
        let profile = r#"[
            {"cat":"Session","name":"model_run","ts":1},
            {"cat":"Node","name":"a_kernel_time","ts":3,"args":{"provider":"CPUExecutionProvider"}},
            {"cat":"Node","name":"a_fence_before","ts":2,"args":{}},
            {"cat":"Node","name":"b_kernel_time","ts":5,"args":{"provider":"XnnpackExecutionProvider"}},
            {"cat":"Node","name":"a_kernel_time","ts":9,"args":{"provider":"CPUExecutionProvider"}}
        ]"#;
        let placement = Placement::from_profile(profile).unwrap();
        assert_eq!(placement.providers.len(), 2);
        assert_eq!(placement.nodes(), 2, "a node run twice counts once");
        assert!(Placement::from_profile("not json").is_err());
    }
}
