//! Result files (single runs or suites, any devices) into one Markdown table and plots (SVG and PNG): the latency
//! distribution of every configuration, precision vs latency vs accuracy, and device vs device. What `cargo xtask
//! report` writes, and `bench` after each run.

use std::fs;
use std::path::{Path, PathBuf};

use super::BenchResult;
use crate::cmd;
use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A table cell for an optional number: `digits` decimals, or `-` where there is none (every table of xtask).
pub fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_owned(), |x| format!("{x:.digits$}"))
}

pub fn write(paths: &[PathBuf], out: &Path) -> Result<()> {
    let results = super::read_results(paths)?;
    fs::create_dir_all(out)?;
    register_font()?;
    fs::write(out.join("report.md"), markdown(&results))?;
    for name in ["latency", "precision", "devices"] {
        let rows = if name == "devices" {
            distinct(results.iter().map(BenchResult::configuration)).len()
        } else {
            results.len()
        };
        let height = if name == "precision" { 560 } else { 120 + 22 * rows as u32 };
        let svg = out.join(format!("{name}.svg"));
        let area = SVGBackend::new(&svg, (1000, height)).into_drawing_area();
        draw(&area, &results, name)?;
        area.present()?;
        let png = out.join(format!("{name}.png"));
        let area = BitMapBackend::new(&png, (1000, height)).into_drawing_area();
        draw(&area, &results, name)?;
        area.present()?;
    }
    println!("report: {} (report.md, latency/precision/devices .svg and .png)", out.display());
    Ok(())
}

/// The same drawing code serves both backends (SVG and PNG).
fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[BenchResult], name: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    match name {
        "latency" => draw_latency(area, results),
        "precision" => draw_precision(area, results),
        _ => draw_devices(area, results),
    }
}

/// Text in the PNGs needs a font file: DejaVu Sans from Debian (installed if missing).
pub(crate) fn register_font() -> Result<()> {
    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if !Path::new(FONT).exists() {
        cmd::ensure_debian_packages(&["fc-list"], &["fonts-dejavu-core", "fontconfig"])?;
    }
    let bytes: &'static [u8] = Box::leak(
        fs::read(FONT).with_context(|| format!("{FONT} (apt-get install fonts-dejavu-core)"))?.into_boxed_slice(),
    );
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a font"))?;
    Ok(())
}

/// The distinct strings of `items`, sorted.
fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    items.collect::<std::collections::BTreeSet<_>>().into_iter().collect()
}

fn label(r: &BenchResult) -> String {
    format!("{} {} [{}]", r.model.id, r.model.precision, r.device.kind)
}

/// A count as the result holds it, or `null`.
fn count<T: ToString>(v: Option<T>) -> String {
    v.map_or("null".to_owned(), |x| x.to_string())
}

/// Our median over a peer's, with the per-round spread: below 1 means we are faster.
fn versus(r: &BenchResult, peer: &str) -> String {
    let Some(p) = r.peer(peer) else {
        return "-".into();
    };
    let ratio = 1.0 / p.p50_ratio_vs_rust;
    let rounds: Vec<f64> = p.p50_ratio_per_round.iter().map(|x| 1.0 / x).collect();
    match (rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max)) {
        (Some(lo), Some(hi)) => format!("{ratio:.3}x ({lo:.2}-{hi:.2})"),
        _ => "-".into(),
    }
}

/// "CPU 235 (1)": nodes per execution provider and the number of partitions.
fn placement(r: &BenchResult) -> String {
    let Some(placement) = &r.measured.placement else { return "-".into() };
    let Some(providers) = &placement.nodes_by_provider else { return "-".into() };
    let nodes: Vec<String> =
        providers.iter().map(|(p, n)| format!("{} {n}", p.trim_end_matches("ExecutionProvider"))).collect();
    format!("{} ({})", nodes.join(", "), count(placement.partitions))
}

fn markdown(results: &[BenchResult]) -> String {
    let mut md = String::from("# Benchmark report\n\n");
    let devices = distinct(results.iter().filter(|r| r.error.is_none()).map(|r| {
        let d = &r.device;
        format!(
            "{} ({} {}, {} cpus{}), ONNX Runtime {}",
            d.kind,
            d.os.as_deref().unwrap_or("?"),
            d.arch.as_deref().unwrap_or("?"),
            count(d.cpus),
            if d.emulated { ", emulated: timings are not phone timings" } else { "" },
            r.measured.ort_version.as_deref().unwrap_or("?")
        )
    }));
    md += &format!("Devices: {}.\n\n", devices.join("; "));
    md += "Latency in ms (steady state after warmup). Accuracy is against the FP32 model on the same input (worst output). \
           `ours/peer` is our median over the peer's, same model, library version, threads and input, interleaved; the \
           range is per round.\n\n";
    md += "| device | model | precision | size MB | threads | session ms | first ms | p50 | p90 | p99 | mean ± std | peak RSS MB | accurate | cosine | max abs err | top-1 | task measure | nodes (partitions) | ours/python-ort | ours/ort-java | ours/kotlin | ours/swift |\n";
    md += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|---:|\n";
    for r in results {
        if let Some(error) = &r.error {
            md += &format!(
                "| {} | {} | {} | could not run: {} |\n",
                r.device.kind,
                r.model.id,
                r.model.precision,
                error.replace('|', "/")
            );
            continue;
        }
        let m = &r.measured.metrics;
        let a = r.accuracy_vs_fp32.clone().unwrap_or_default();
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ± {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.device.kind,
            r.model.id,
            r.model.precision,
            cell(r.model.file_size_mb, 1),
            count(r.measured.threads),
            cell(m.session_create_ms, 1),
            cell(m.first_inference_ms, 2),
            cell(m.p50_ms, 3),
            cell(m.p90_ms, 3),
            cell(m.p99_ms, 3),
            cell(m.mean_ms, 3),
            cell(m.std_ms, 3),
            cell(m.peak_rss_mb, 0),
            a.verdict(),
            cell(a.cosine_similarity, 5),
            cell(a.max_abs_error, 4),
            cell(a.top1_agreement, 3),
            a.task_measure().trim(),
            placement(r),
            versus(r, "python-ort"),
            versus(r, "ort-java"),
            versus(r, "kotlin"),
            versus(r, "swift"),
        );
    }
    md += "\n![latency](latency.svg)\n\n![precision](precision.svg)\n\n![devices](devices.svg)\n";
    md
}

fn samples(r: &BenchResult) -> Vec<f32> {
    r.measured.samples_ms.iter().map(|&x| x as f32).collect()
}

fn latency_range(results: &[BenchResult]) -> (f32, f32) {
    let all: Vec<f32> = results.iter().flat_map(samples).filter(|x| *x > 0.0).collect();
    let lo = all.iter().copied().fold(f32::INFINITY, f32::min).max(1e-4);
    let hi = all.iter().copied().fold(0f32, f32::max).max(lo * 10.0);
    (lo / 1.5, hi * 1.5)
}

type RowsChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<LogCoord<f32>, plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>>,
>;

/// A chart with one labelled row per entry of `labels` and a log time axis spanning `range`.
fn rows_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x_desc: &str,
    labels: &[String],
    (lo, hi): (f32, f32),
    label_width: u32,
) -> Result<RowsChart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(label_width)
        .build_cartesian_2d((lo..hi).log_scale(), (0..labels.len()).into_segmented())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .y_labels(labels.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

/// One horizontal box (quartiles, whiskers) per configuration, on a log time axis.
fn draw_latency<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[BenchResult]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let (lo, hi) = latency_range(results);
    let labels: Vec<String> = results.iter().map(label).collect();
    let mut chart = rows_chart(area, "Latency per configuration (ms, log scale)", "ms", &labels, (lo, hi), 330)?;
    let boxes = results.iter().enumerate().filter_map(|(i, r)| {
        let s = samples(r);
        (!s.is_empty()).then(|| Boxplot::new_horizontal(SegmentValue::CenterOf(i), &Quartiles::new(&s)).style(BLUE))
    });
    chart.draw_series(boxes).map_err(plot_err)?;
    Ok(())
}

/// Latency against accuracy: one colour per model, one point per precision (hollow where the variant failed its
/// check), labelled with the precision (`int8-mixed`, ...).
fn draw_precision<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[BenchResult]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let points: Vec<(String, String, f32, f32, bool)> = results
        .iter()
        .filter_map(|r| {
            let accuracy = r.accuracy_vs_fp32.as_ref()?;
            Some((
                r.model.id.clone(),
                r.model.precision.clone(),
                r.measured.metrics.p50_ms? as f32,
                accuracy.cosine_similarity? as f32,
                accuracy.accurate != Some(false),
            ))
        })
        .collect();
    let (lo, hi) = latency_range(results);
    let min_cos = points.iter().map(|p| p.3).fold(1.0f32, f32::min).min(0.99);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Precision: latency (p50, log) vs accuracy (cosine to FP32; hollow = failed its check)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (min_cos - 0.005)..1.002f32)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("p50 ms").y_desc("cosine similarity").draw().map_err(plot_err)?;
    let models = distinct(points.iter().map(|p| p.0.clone()));
    for (i, model) in models.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mine: Vec<&(String, String, f32, f32, bool)> = points.iter().filter(|p| &p.0 == model).collect();
        let style = |accurate: bool| if accurate { color.filled() } else { color.stroke_width(2) };
        chart
            .draw_series(mine.iter().map(|p| Circle::new((p.2, p.3), 5, style(p.4))))
            .map_err(plot_err)?
            .label(model.clone())
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
        chart
            .draw_series(mine.iter().map(|p| Text::new(p.1.clone(), (p.2, p.3), ("sans-serif", 11))))
            .map_err(plot_err)?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(plot_err)?;
    Ok(())
}

/// Median latency per configuration, one series per device (log scale).
fn draw_devices<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[BenchResult]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let configs = distinct(results.iter().map(BenchResult::configuration));
    let devices = distinct(results.iter().map(|r| r.device.kind.clone()));
    let (lo, hi) = latency_range(results);
    let mut chart =
        rows_chart(area, "Device vs device: p50 per configuration (ms, log scale)", "p50 ms", &configs, (lo, hi), 260)?;
    for (d, device) in devices.iter().enumerate() {
        let color = Palette99::pick(d).to_rgba();
        let points: Vec<(f32, SegmentValue<usize>)> = results
            .iter()
            .filter(|r| r.device.kind == *device)
            .filter_map(|r| {
                let key = r.configuration();
                Some((
                    r.measured.metrics.p50_ms? as f32,
                    SegmentValue::CenterOf(configs.iter().position(|c| *c == key)?),
                ))
            })
            .collect();
        chart
            .draw_series(points.iter().map(|p| TriangleMarker::new(p.clone(), 7, color.filled())))
            .map_err(plot_err)?
            .label(device.clone())
            .legend(move |(x, y)| TriangleMarker::new((x, y), 7, color.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(plot_err)?;
    Ok(())
}

pub(crate) fn plot_err<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A result as a runner's JSON would give it, read into the types as `report` reads files.
    fn result(device: &str, precision: &str, p50: f64) -> BenchResult {
        serde_json::from_value(result_json(device, precision, p50)).unwrap()
    }

    fn result_json(device: &str, precision: &str, p50: f64) -> serde_json::Value {
        json!({
            "device": { "kind": device, "os": "linux", "arch": "x86_64", "cpus": 2, "emulated": device != "host" },
            "model": { "id": "m", "precision": precision, "file_size_mb": 1.0 },
            "ort_version": "1.31.1", "threads": 2,
            "metrics": { "p50_ms": p50, "p90_ms": p50 * 1.1, "mean_ms": p50, "std_ms": 0.1 },
            "accuracy_vs_fp32": { "cosine_similarity": 0.999, "max_abs_error": 0.01, "top1_agreement": 1.0 },
            "placement": { "nodes_by_provider": { "CPUExecutionProvider": 12 }, "partitions": 1 },
            "comparison": { "runners": [
                { "runner": "rust", "p50_ratio_vs_rust": 1.0, "p50_ratio_per_round": [1.0, 1.0] },
                { "runner": "python-ort", "p50_ratio_vs_rust": 1.25, "p50_ratio_per_round": [1.0, 1.25] }
            ] },
            "samples_ms": [p50, p50 * 1.1, p50 * 0.9],
        })
    }

    #[test]
    fn markdown_has_a_row_per_result_with_placement_and_peer_ratios() {
        let md = markdown(&[result("host", "fp32", 2.0), result("qemu-arm64", "fp32", 200.0)]);
        assert_eq!(md.lines().filter(|l| l.starts_with("| host") || l.starts_with("| qemu-arm64")).count(), 2);
        assert!(md.contains("CPU 12 (1)"), "{md}");
        // ours/python-ort is the inverse of the peer's ratio over ours, with the per-round range.
        assert!(md.contains("0.800x (0.80-1.00)"), "{md}");
        assert!(md.contains("emulated"));
    }

    #[test]
    fn a_configuration_that_failed_is_reported_not_dropped() {
        let failed = serde_json::from_value(
            json!({ "device": { "kind": "qemu-arm64" }, "model": { "id": "m", "precision": "fp16" }, "error": "no kernel | here" }),
        )
        .unwrap();
        let md = markdown(&[result("host", "fp32", 2.0), failed]);
        assert!(md.contains("could not run: no kernel / here"), "{md}");
    }

    #[test]
    fn plots_are_written_as_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("openautoglm-report-test-{}", std::process::id()));
        let file = dir.join("result.json");
        fs::create_dir_all(&dir).unwrap();
        let suite = json!({ "results": [result_json("host", "fp32", 2.0), result_json("host", "fp16", 1.5), result_json("qemu-arm64", "fp32", 150.0)] });
        fs::write(&file, suite.to_string()).unwrap();
        write(&[file], &dir.join("report")).unwrap();
        for name in
            ["report.md", "latency.svg", "latency.png", "precision.svg", "precision.png", "devices.svg", "devices.png"]
        {
            let len = fs::metadata(dir.join("report").join(name)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 500, "{name} is missing or empty");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
