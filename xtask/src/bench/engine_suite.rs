//! `cargo xtask bench --suite engine`: the engine's own decisions measured side by side, each as a pair of setups
//! of the same model run by the Rust runner in interleaved rounds (every run a fresh process, so a session create
//! is a launch): the compile cache (second launch vs none), shape buckets vs the dynamic session, and a float16
//! model fed float32 (converted by the engine) vs fed float16.

use anyhow::Result;
use openautoglm::metrics::Summary;

use super::Config;
use crate::models;
use crate::results::{BenchResult, ExperimentSummary};

/// One way of running a model: extra runner flags, and whether it uses a compile cache primed before timing.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    pub label: &'static str,
    pub flags: Vec<String>,
    pub compile_cache: bool,
}

impl Setup {
    fn plain(label: &'static str) -> Setup {
        Setup { label, flags: Vec::new(), compile_cache: false }
    }
}

/// Two setups of one model and the metric that tells them apart.
pub struct Experiment {
    pub name: &'static str,
    pub model: &'static str,
    pub precision: &'static str,
    pub metric: &'static str,
    pub baseline: Setup,
    pub treatment: Setup,
}

pub fn experiments() -> Vec<Experiment> {
    let cache = |model, precision| Experiment {
        name: "compile cache: second launch",
        model,
        precision,
        metric: "session_create_ms",
        baseline: Setup::plain("no cache"),
        treatment: Setup { label: "cache hit", flags: Vec::new(), compile_cache: true },
    };
    let bucket = |model, precision, dims: &str| Experiment {
        name: "shape bucket vs dynamic",
        model,
        precision,
        metric: "p50_ms",
        baseline: Setup::plain("dynamic"),
        treatment: Setup { label: "bucket", flags: vec!["--bucket".into(), dims.into()], compile_cache: false },
    };
    let f16 = |model| Experiment {
        name: "f16 model: f32 in (engine converts) vs f16 in",
        model,
        precision: "fp16",
        metric: "p50_ms",
        baseline: Setup { label: "fed f16", flags: vec!["--feed-f16".into()], compile_cache: false },
        treatment: Setup::plain("fed f32"),
    };
    vec![
        cache("minilm-l6-int8", "native"),
        cache("yolov8n-320", "fp32"),
        cache("pp-ocrv4-det", "fp32"),
        bucket("minilm-l6-int8", "native", "batch=1,sequence=11"),
        bucket("paraphrase-minilm-l3", "fp32", "batch_size=1,sequence_length=11"),
        bucket("pp-ocrv4-rec", "fp32", "p2o.DynamicDimension.0=1,p2o.DynamicDimension.1=320"),
        f16("yolov8n-320"),
        f16("pp-ocr-cls"),
        f16("pp-ocrv4-rec"),
    ]
}

/// Both setups of every experiment (of `only` models, when given), variants made first where needed.
pub(super) fn configs(only: &[String]) -> Result<Vec<Config>> {
    let mut configs = Vec::new();
    for e in experiments() {
        if !only.is_empty() && !only.iter().any(|m| m == e.model) {
            continue;
        }
        if e.precision != "native" {
            models::prepared_variants(e.model)?;
        }
        for setup in [e.baseline, e.treatment] {
            configs.push(Config { model: e.model.into(), precision: e.precision.into(), setup: Some((e.name, setup)) });
        }
    }
    Ok(configs)
}

/// Per experiment: treatment / baseline on its metric (median over rounds), with the per-round range.
pub fn summarize(results: &[BenchResult]) -> Vec<ExperimentSummary> {
    let find = |e: &Experiment, setup: &Setup| {
        results.iter().find(|r| {
            r.model.id == e.model && r.setup.as_ref().is_some_and(|s| s.label == setup.label && s.experiment == e.name)
        })
    };
    experiments()
        .iter()
        .filter_map(|e| {
            let (base, treat) = (find(e, &e.baseline)?, find(e, &e.treatment)?);
            let per_round =
                |r: &BenchResult| -> Vec<f64> { r.per_round.iter().filter_map(|m| m.get(e.metric)).collect() };
            let (b, t) = (per_round(base), per_round(treat));
            let ratios: Vec<f64> = b.iter().zip(&t).map(|(b, t)| t / b).collect();
            let median = |v: &[f64]| Summary::of(v).map(|s| s.p50);
            let (b_med, t_med) = (median(&b)?, median(&t)?);
            Some(ExperimentSummary {
                experiment: e.name.into(),
                model: e.model.into(),
                precision: base.model.precision.clone(),
                metric: e.metric.into(),
                baseline: e.baseline.label.into(),
                treatment: e.treatment.label.into(),
                baseline_ms: b_med,
                treatment_ms: t_med,
                ratio: t_med / b_med,
                ratio_per_round: ratios,
                baseline_peak_rss_mb: base.measured.metrics.peak_rss_mb,
                treatment_peak_rss_mb: treat.measured.metrics.peak_rss_mb,
                treatment_compile_cache: treat.measured.compile_cache.clone(),
                treatment_shape_buckets: treat.measured.shape_buckets.clone(),
            })
        })
        .collect()
}

/// The summary as a Markdown table (printed, and written beside the result file).
pub fn table(summary: &[ExperimentSummary]) -> String {
    let mut out = String::new();
    out += &format!(
        "| {:<44} | {:<20} | {:<17} | {:>11} | {:>11} | {:>22} | {:>15} |",
        "experiment", "model", "metric", "baseline", "treatment", "treatment/baseline", "peak RSS MB"
    );
    out.push('\n');
    out += &format!("|{:-<46}|{:-<22}|{:-<19}|{:->13}|{:->13}|{:->24}|{:->17}|\n", "", "", "", "", "", "", "");
    for s in summary {
        let rounds = &s.ratio_per_round;
        let range = match (rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max)) {
            (Some(lo), Some(hi)) => format!("{:.2}x ({lo:.2}-{hi:.2})", s.ratio),
            _ => "-".into(),
        };
        let mb = |v: Option<f64>| crate::results::report::cell(v, 0);
        out += &format!(
            "| {:<44} | {:<20} | {:<17} | {:>8.3} ms | {:>8.3} ms | {:>22} | {:>6} -> {:>5} |\n",
            s.experiment,
            format!("{} {}", s.model, s.precision),
            s.metric,
            s.baseline_ms,
            s.treatment_ms,
            range,
            mb(s.baseline_peak_rss_mb),
            mb(s.treatment_peak_rss_mb),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Metrics, ModelInfo, SetupInfo};

    #[test]
    fn ratios_pair_setups_round_by_round() {
        let e = &experiments()[0];
        assert_eq!(e.metric, "session_create_ms");
        let result = |label: &str, values: [f64; 3]| BenchResult {
            model: ModelInfo { id: e.model.into(), precision: "int8".into(), ..Default::default() },
            setup: Some(SetupInfo { experiment: e.name.into(), label: label.into(), flags: Vec::new() }),
            per_round: values.iter().map(|&v| Metrics { session_create_ms: Some(v), ..Default::default() }).collect(),
            ..Default::default()
        };
        let summary = summarize(&[result("no cache", [100.0, 120.0, 110.0]), result("cache hit", [40.0, 60.0, 44.0])]);
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].ratio, 44.0 / 110.0);
        assert_eq!(summary[0].ratio_per_round, vec![0.4, 0.5, 0.4]);
        assert!(table(&summary).contains("0.40x (0.40-0.50)"), "{}", table(&summary));
    }
}
