//! `--sustained`: one model run back to back for some minutes, as a phone app doing continuous inference does, with
//! latency, rate, heat and energy per minute (`cargo xtask bench --sustained MINUTES`).
//!
//! openautoglm-bench --sustained --model M.onnx --recipe R.json --minutes 3 --out RESULT.json [--ort LIB]
//!                   [--threads N] [--idle-seconds 30] [--sysfs-root /]
//!
//! Energy: where a counter is readable (see `energy`), an idle window of `--idle-seconds` first gives the idle power;
//! energy per inference is the run's energy above that power, over its inferences.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench_schema::sustained::{Minute, Sustained, SustainedOutput};
use openautoglm::metrics::Summary;
use openautoglm::{Engine, EngineConfig, Runtime, TensorRef};

use crate::energy::Meter;
use crate::thermal::ThermalReader;
use crate::{load_recipe, progress, write_json};

/// The plot keeps at most this many points, spread evenly over the run.
const PLOT_POINTS: usize = 3000;

struct Args {
    model: PathBuf,
    recipe: PathBuf,
    out: PathBuf,
    ort: Option<PathBuf>,
    minutes: u32,
    threads: i32,
    idle_seconds: f64,
    sysfs_root: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut recipe, mut out, mut ort) = (None, None, None, None);
    let (mut minutes, mut threads, mut idle_seconds, mut sysfs_root) = (3, 0, 30.0, PathBuf::from("/"));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sustained" => {}
            "--model" => model = Some(PathBuf::from(value()?)),
            "--recipe" => recipe = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--minutes" => minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--idle-seconds" => idle_seconds = value()?.parse().map_err(|e| format!("--idle-seconds: {e}"))?,
            "--sysfs-root" => sysfs_root = PathBuf::from(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if minutes == 0 {
        return Err("--minutes must be at least 1".into());
    }
    Ok(Args {
        model: model.ok_or("--model is required")?,
        recipe: recipe.ok_or("--recipe is required")?,
        out: out.ok_or("--out is required")?,
        ort,
        minutes,
        threads,
        idle_seconds,
        sysfs_root,
    })
}

pub fn run() -> Result<(), String> {
    let args = parse()?;
    let inputs = load_recipe(&args.recipe)?;
    let runtime = Runtime::init(args.ort.as_deref()).map_err(|e| e.to_string())?;
    let config = EngineConfig { intra_op_threads: args.threads, ..EngineConfig::default() };
    let engine = Engine::from_file(&args.model, config).map_err(|e| e.to_string())?;
    let refs: Vec<(&str, TensorRef<'_>)> =
        inputs.iter().map(|i| (i.name.as_str(), TensorRef::from_bytes(i.element_type, &i.shape, &i.data))).collect();
    for _ in 0..10 {
        engine.run(&refs).map_err(|e| e.to_string())?;
    }

    let thermal = ThermalReader::new(&args.sysfs_root);
    let mut meter = Meter::detect(&args.sysfs_root);
    let total = args.minutes as f64 * 60.0 + if meter.is_ok() { args.idle_seconds } else { 0.0 };
    // The idle window: the same counter with nothing running, for the power the device draws anyway.
    let idle_power_w = match &mut meter {
        Ok(meter) => {
            let (start, before) = (Instant::now(), meter.joules());
            while start.elapsed().as_secs_f64() < args.idle_seconds {
                std::thread::sleep(Duration::from_millis(500));
                progress(start.elapsed().as_secs() as usize, total as usize);
            }
            Some((meter.joules() - before) / start.elapsed().as_secs_f64())
        }
        Err(_) => None,
    };
    let start_thermal = thermal.read();
    let offset = if idle_power_w.is_some() { args.idle_seconds } else { 0.0 };

    let started = Instant::now();
    let energy_start = meter.as_mut().ok().map(|m| m.joules());
    let mut minutes = Vec::new();
    let mut all: Vec<[f64; 2]> = Vec::new();
    let mut energy_before = energy_start;
    for minute in 0..args.minutes {
        let end = started + Duration::from_secs(60 * u64::from(minute + 1));
        let mut samples = Vec::new();
        let mut last_progress = Instant::now();
        while Instant::now() < end {
            let t = Instant::now();
            engine.run(&refs).map_err(|e| e.to_string())?;
            let latency = t.elapsed().as_secs_f64() * 1e3;
            samples.push(latency);
            all.push([(t - started).as_secs_f64(), latency]);
            if last_progress.elapsed() >= Duration::from_secs(1) {
                progress((offset + started.elapsed().as_secs_f64()) as usize, total as usize);
                last_progress = Instant::now();
            }
        }
        let summary = Summary::of(&samples).ok_or("no run finished within a minute")?;
        let energy_now = meter.as_mut().ok().map(|m| m.joules());
        minutes.push(Minute {
            minute: minute + 1,
            p50_ms: summary.p50,
            p99_ms: summary.p99,
            inferences: samples.len() as u64,
            inferences_per_s: samples.len() as f64 / 60.0,
            thermal: thermal.read(),
            energy_j: energy_now.zip(energy_before).map(|(now, before)| now - before),
        });
        energy_before = energy_now;
    }
    let seconds = started.elapsed().as_secs_f64();
    let inferences: u64 = minutes.iter().map(|m| m.inferences).sum();
    let energy_j_per_inference = match (energy_start, energy_before, idle_power_w) {
        (Some(start), Some(end), Some(idle)) => Some(((end - start) - idle * seconds) / inferences.max(1) as f64),
        _ => None,
    };
    let first = minutes.first().map_or(1.0, |m| m.p50_ms);
    let last = minutes.last().map_or(1.0, |m| m.p50_ms);
    let step = all.len().div_ceil(PLOT_POINTS).max(1);
    let sustained = Sustained {
        minutes: args.minutes,
        slowdown_last_vs_first: last / first,
        thermal_readable: thermal.readable(),
        thermal_source: thermal.source(),
        energy_j_per_inference,
        energy_source: match &meter {
            Ok(meter) => meter.source().to_owned(),
            Err(reason) => reason.clone(),
        },
        idle_seconds: if idle_power_w.is_some() { args.idle_seconds } else { 0.0 },
        idle_power_w,
        start: start_thermal,
        latency_over_time: all.into_iter().step_by(step).collect(),
        per_minute: minutes,
    };
    progress(total as usize, total as usize);
    write_json(&args.out, &SustainedOutput { ort_version: runtime.ort_version, threads: args.threads, sustained })
}
