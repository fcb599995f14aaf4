//! One configuration on a device other than this machine: deploy, run, collect, and check the device's outputs
//! against the host's on the same input.

use std::fs;

use anyhow::{Result, bail};

use super::{Args, Config, record, tables};
use crate::devices::{self, Device, RunArgs};
use crate::results::{BenchResult, DumpedOutputs, OutputCheck};
use crate::{cache, models};

/// Device outputs must match the host's within |device - host| <= atol + rtol * |host|: float kernels differ in
/// summation order and vector width between x86-64 and ARM. FP16 models get fp16's own resolution (ARM computes in
/// fp16 where x86 widens to fp32), INT8 ones about one quantization step (x86 and ARM integer kernels round and
/// saturate differently).
fn output_tolerance(precision: &str) -> (f64, f64) {
    match precision {
        "fp16" => (5e-2, 5e-2),
        p if p.starts_with("int8") => (1.5e-1, 5e-2),
        _ => (1e-4, 1e-3),
    }
}

pub fn measure(args: &Args, config: &Config, verbose: bool) -> Result<BenchResult> {
    if !args.vs.is_empty() {
        bail!("--vs compares runners on the host; drop it with --device {}", args.device.kind());
    }
    let entry = models::entry(&config.model)?;
    let model = models::model_file(&config.model, &config.precision)?;
    let work = std::env::temp_dir().join(format!("openautoglm-bench-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let recipe = models::materialize_recipe(&config.model, &work)?;
    let run_args = RunArgs {
        runs: args.runs.unwrap_or(if args.suite.is_some() { 3 } else { 200 }),
        warmup: args.warmup.unwrap_or(if args.suite.is_some() { 1 } else { 10 }),
        threads: args.threads.unwrap_or(if args.device.emulated() { 2 } else { 0 }),
        optimize: args.optimize.clone(),
    };

    let deployed = devices::deploy(&args.device, &model, &recipe)?;
    let spinner = cache::spinner(format!(
        "{} on {}{}: {} runs",
        config.label(),
        args.device.kind(),
        if args.device.emulated() { " (emulated: slow)" } else { "" },
        1 + run_args.warmup + run_args.runs
    ));
    let ran = deployed.run(&run_args, true);
    spinner.finish_and_clear();
    let (measured, outputs) = ran?;

    let spinner = cache::spinner("reference outputs on the host".into());
    let reference = devices::deploy(&Device::Host, &model, &recipe)
        .and_then(|host| host.run(&RunArgs { runs: 1, warmup: 0, ..run_args }, true));
    spinner.finish_and_clear();
    let (_, host_outputs) = reference?;
    let _ = fs::remove_dir_all(&work);

    let (atol, rtol) = output_tolerance(&config.precision);
    let check = compare_outputs(&host_outputs.unwrap_or_default(), &outputs.unwrap_or_default(), atol, rtol);
    let mut result = record(&args.device, &entry, &config.precision, &model, measured)?;
    result.accuracy_vs_fp32 = models::variant_accuracy(&config.model, &config.precision)?;
    if verbose {
        tables::print_table(&result);
    }
    println!(
        "{}: outputs vs host: max |diff| {:.3e} over {} values (tolerance {atol:e} + {rtol:e}*|host|): {}",
        config.label(),
        check.max_abs_diff,
        check.values,
        if check.matches { "match" } else { "MISMATCH" }
    );
    result.outputs_vs_host = Some(check);
    Ok(result)
}

/// Compares two `--dump-outputs` files: same names and shapes, values within the stated tolerance.
fn compare_outputs(host: &DumpedOutputs, device: &DumpedOutputs, atol: f64, rtol: f64) -> OutputCheck {
    let (mut max_diff, mut count, mut ok) = (0f64, 0usize, !host.is_empty());
    for (name, h) in host {
        let Some(d) = device.get(name) else {
            ok = false;
            continue;
        };
        ok &= h.shape == d.shape;
        let hv: Vec<f64> = h.values.iter().flatten().copied().collect();
        let dv: Vec<f64> = d.values.iter().flatten().copied().collect();
        ok &= hv.len() == dv.len();
        for (a, b) in hv.iter().zip(&dv) {
            let diff = (a - b).abs();
            max_diff = max_diff.max(diff);
            ok &= diff <= atol + rtol * a.abs();
            count += 1;
        }
    }
    OutputCheck { max_abs_diff: max_diff, values: count, atol, rtol, matches: ok }
}

/// Fails when a device's outputs differed from the host's (after everything was written).
pub fn check_outputs(results: &[BenchResult]) -> Result<()> {
    let failed: Vec<String> = results.iter().filter(|r| r.error.is_some()).map(BenchResult::configuration).collect();
    if !failed.is_empty() {
        println!("could not run on the device (see `error` in the result file): {failed:?}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.outputs_vs_host.as_ref().is_some_and(|c| !c.matches))
        .map(BenchResult::configuration)
        .collect();
    if !bad.is_empty() {
        bail!("outputs differ from the host's beyond the tolerance: {bad:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_schema::outputs::DumpedOutput;

    fn outputs(values: &[f64], shape: &[i64]) -> DumpedOutputs {
        let output = DumpedOutput {
            shape: shape.to_vec(),
            values: values.iter().copied().map(Some).collect(),
            ..Default::default()
        };
        [("y".to_owned(), output)].into_iter().collect()
    }

    #[test]
    fn device_outputs_match_within_the_stated_tolerance() {
        let host = outputs(&[1.0, -2.0, 1000.0], &[3]);
        let (atol, rtol) = output_tolerance("fp32");
        let check = |device: &DumpedOutputs| compare_outputs(&host, device, atol, rtol).matches;
        assert!(check(&outputs(&[1.00005, -2.0, 1000.5], &[3])));
        assert!(!check(&outputs(&[1.01, -2.0, 1000.0], &[3])));
        assert!(!check(&outputs(&[1.0, -2.0, 1000.0], &[1, 3])), "shape differs");
        assert!(!check(&outputs(&[1.0, -2.0], &[3])), "a value is missing");
        assert!(!check(&DumpedOutputs::new()), "an output is missing");
        let empty = DumpedOutputs::new();
        assert!(!compare_outputs(&empty, &empty, atol, rtol).matches, "nothing compared is no match");
        let (atol, rtol) = output_tolerance("fp16");
        assert!(compare_outputs(&host, &outputs(&[1.01, -2.0, 1000.0], &[3]), atol, rtol).matches);
    }
}
