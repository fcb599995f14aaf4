//! `cargo xtask report RESULT.json...`: result files (single runs or suites, any devices) into one Markdown table
//! and plots (SVG and PNG): the latency distribution of every configuration, precision vs latency vs accuracy, and
//! device vs device.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::cmd;

#[derive(clap::Args)]
pub struct Args {
    /// Result files from `cargo xtask bench --json` or `--suite`.
    #[arg(required = true)]
    results: Vec<PathBuf>,
    /// Where to write report.md and the plots (default: next to the first result file).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.results[0].with_extension(""));
    write(&args.results, &out)
}

/// Reads result files (a single result or a suite's `results`) into one flat list.
fn load(paths: &[PathBuf]) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    for path in paths {
        let value: Value =
            serde_json::from_str(&fs::read_to_string(path).with_context(|| path.display().to_string())?)?;
        match value["results"].as_array() {
            Some(results) => all.extend(results.iter().cloned()),
            None => all.push(value),
        }
    }
    if all.is_empty() {
        bail!("no results in {paths:?}");
    }
    Ok(all)
}

pub fn write(paths: &[PathBuf], out: &Path) -> Result<()> {
    let results = load(paths)?;
    fs::create_dir_all(out)?;
    register_font()?;
    fs::write(out.join("report.md"), markdown(&results))?;
    for name in ["latency", "precision", "devices"] {
        let rows = if name == "devices" {
            distinct(results.iter().map(|r| format!("{} {}", r["model"]["id"], r["model"]["precision"]))).len()
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
fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[Value], name: &str) -> Result<()>
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
fn register_font() -> Result<()> {
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

fn label(r: &Value) -> String {
    format!(
        "{} {} [{}]",
        r["model"]["id"].as_str().unwrap_or("?"),
        r["model"]["precision"].as_str().unwrap_or("?"),
        r["device"]["kind"].as_str().unwrap_or("?")
    )
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("-".to_owned(), |x| format!("{x:.digits$}"))
}

/// Our median over a peer's, with the per-round spread: below 1 means we are faster.
fn versus(r: &Value, peer: &str) -> String {
    let Some(p) = r["comparison"]["runners"].as_array().and_then(|a| a.iter().find(|x| x["runner"] == peer)) else {
        return "-".into();
    };
    let ratio = p["p50_ratio_vs_rust"].as_f64().map(|x| 1.0 / x);
    let rounds: Vec<f64> =
        p["p50_ratio_per_round"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(|x| 1.0 / x).collect();
    match (ratio, rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max)) {
        (Some(r), Some(lo), Some(hi)) => format!("{r:.3}x ({lo:.2}-{hi:.2})"),
        _ => "-".into(),
    }
}

/// "CPU 235 (1)": nodes per execution provider and the number of partitions.
fn placement(r: &Value) -> String {
    let Some(providers) = r["placement"]["nodes_by_provider"].as_object() else { return "-".into() };
    let nodes: Vec<String> =
        providers.iter().map(|(p, n)| format!("{} {n}", p.trim_end_matches("ExecutionProvider"))).collect();
    format!("{} ({})", nodes.join(", "), r["placement"]["partitions"])
}

fn markdown(results: &[Value]) -> String {
    let mut md = String::from("# Benchmark report\n\n");
    let devices = distinct(results.iter().filter(|r| r["error"].is_null()).map(|r| {
        format!(
            "{} ({} {}, {} cpus{}), ONNX Runtime {}",
            r["device"]["kind"].as_str().unwrap_or("?"),
            r["device"]["os"].as_str().unwrap_or("?"),
            r["device"]["arch"].as_str().unwrap_or("?"),
            r["device"]["cpus"],
            if r["device"]["emulated"] == true { ", emulated: timings are not phone timings" } else { "" },
            r["ort_version"].as_str().unwrap_or("?")
        )
    }));
    md += &format!("Devices: {}.\n\n", devices.join("; "));
    md += "Latency in ms (steady state after warmup). Accuracy is against the FP32 model on the same input (worst output). \
           `ours/peer` is our median over the peer's, same model, library version, threads and input, interleaved; the \
           range is per round.\n\n";
    md += "| device | model | precision | size MB | threads | session ms | first ms | p50 | p90 | p99 | mean ± std | peak RSS MB | cosine | max abs err | top-1 | task measure | nodes (partitions) | ours/python-ort | ours/ort-java | ours/kotlin | ours/swift |\n";
    md += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|\n";
    for r in results {
        if let Some(error) = r["error"].as_str() {
            md += &format!(
                "| {} | {} | {} | could not run: {} |\n",
                r["device"]["kind"].as_str().unwrap_or("?"),
                r["model"]["id"].as_str().unwrap_or("?"),
                r["model"]["precision"].as_str().unwrap_or("?"),
                error.replace('|', "/")
            );
            continue;
        }
        let m = &r["metrics"];
        let a = &r["accuracy_vs_fp32"];
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ± {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["device"]["kind"].as_str().unwrap_or("?"),
            r["model"]["id"].as_str().unwrap_or("?"),
            r["model"]["precision"].as_str().unwrap_or("?"),
            num(&r["model"]["file_size_mb"], 1),
            r["threads"],
            num(&m["session_create_ms"], 1),
            num(&m["first_inference_ms"], 2),
            num(&m["p50_ms"], 3),
            num(&m["p90_ms"], 3),
            num(&m["p99_ms"], 3),
            num(&m["mean_ms"], 3),
            num(&m["std_ms"], 3),
            num(&m["peak_rss_mb"], 0),
            num(&a["cosine_similarity"], 5),
            num(&a["max_abs_error"], 4),
            num(&a["top1_agreement"], 3),
            crate::models::task_measure(a).trim(),
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

fn samples(r: &Value) -> Vec<f32> {
    r["samples_ms"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(|x| x as f32).collect()
}

fn latency_range(results: &[Value]) -> (f32, f32) {
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
fn draw_latency<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[Value]) -> Result<()>
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

/// Latency against accuracy: one colour per model, one point per precision.
fn draw_precision<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[Value]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let points: Vec<(String, String, f32, f32)> = results
        .iter()
        .filter_map(|r| {
            Some((
                r["model"]["id"].as_str()?.to_owned(),
                r["model"]["precision"].as_str()?.to_owned(),
                r["metrics"]["p50_ms"].as_f64()? as f32,
                r["accuracy_vs_fp32"]["cosine_similarity"].as_f64()? as f32,
            ))
        })
        .collect();
    let (lo, hi) = latency_range(results);
    let min_cos = points.iter().map(|p| p.3).fold(1.0f32, f32::min).min(0.99);
    let mut chart = ChartBuilder::on(area)
        .caption("Precision: latency (p50, log) vs accuracy (cosine to FP32)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (min_cos - 0.005)..1.002f32)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("p50 ms").y_desc("cosine similarity").draw().map_err(plot_err)?;
    let models = distinct(points.iter().map(|p| p.0.clone()));
    for (i, model) in models.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mine: Vec<&(String, String, f32, f32)> = points.iter().filter(|p| &p.0 == model).collect();
        chart
            .draw_series(mine.iter().map(|p| Circle::new((p.2, p.3), 5, color.filled())))
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
fn draw_devices<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, results: &[Value]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let configs = distinct(results.iter().map(|r| {
        format!("{} {}", r["model"]["id"].as_str().unwrap_or("?"), r["model"]["precision"].as_str().unwrap_or("?"))
    }));
    let devices = distinct(results.iter().map(|r| r["device"]["kind"].as_str().unwrap_or("?").to_owned()));
    let (lo, hi) = latency_range(results);
    let mut chart =
        rows_chart(area, "Device vs device: p50 per configuration (ms, log scale)", "p50 ms", &configs, (lo, hi), 260)?;
    for (d, device) in devices.iter().enumerate() {
        let color = Palette99::pick(d).to_rgba();
        let points: Vec<(f32, SegmentValue<usize>)> = results
            .iter()
            .filter(|r| r["device"]["kind"] == device.as_str())
            .filter_map(|r| {
                let key = format!("{} {}", r["model"]["id"].as_str()?, r["model"]["precision"].as_str()?);
                Some((
                    r["metrics"]["p50_ms"].as_f64()? as f32,
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

fn plot_err<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(device: &str, precision: &str, p50: f64) -> Value {
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
        let failed = json!({ "device": { "kind": "qemu-arm64" }, "model": { "id": "m", "precision": "fp16" }, "error": "no kernel | here" });
        let md = markdown(&[result("host", "fp32", 2.0), failed]);
        assert!(md.contains("could not run: no kernel / here"), "{md}");
    }

    #[test]
    fn plots_are_written_as_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("openautoglm-report-test-{}", std::process::id()));
        let file = dir.join("result.json");
        fs::create_dir_all(&dir).unwrap();
        let suite = json!({ "results": [result("host", "fp32", 2.0), result("host", "fp16", 1.5), result("qemu-arm64", "fp32", 150.0)] });
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
