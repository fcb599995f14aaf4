"""The python-ort peer: the same benchmark protocol as benchmarks/runner/src/main.rs, run by the onnxruntime
Python package (what an engineer would use instead). Driven by `cargo xtask bench --vs python-ort`.

    python python_ort.py --model M.onnx --recipe R.json --out OUT.json --runs N --warmup N --threads N --optimize O3
"""
import argparse
import json
import os
import time

# Wall clock when xtask spawned this process (OPENAUTOGLM_SPAWNED_UNIX_NS): cold start counts the interpreter and
# its imports, as an app written this way pays them.
SPAWNED_NS = os.environ.get("OPENAUTOGLM_SPAWNED_UNIX_NS")

import numpy as np
import onnxruntime as ort
from recipe_inputs import recipe_input  # tools/models, on PYTHONPATH (xtask sets it)

LEVELS = {
    "O0": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "O1": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "O2": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "O3": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
def rss_mb():
    """Resident memory now (Linux: /proc/self/status), as the Rust runner reads it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main():
    p = argparse.ArgumentParser()
    for flag in ("--model", "--recipe", "--out", "--optimize"):
        p.add_argument(flag)
    for flag in ("--runs", "--warmup", "--threads"):
        p.add_argument(flag, type=int)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--interval-ms", type=float, default=0.0)
    p.add_argument("--ort")  # accepted for protocol compatibility: the package brings its own library
    p.add_argument("--plugin")  # OpenVINO's plugin execution provider library: its CPU device runs the model
    args = p.parse_args()

    with open(args.recipe) as f:
        feeds = {spec["name"]: recipe_input(spec, os.path.dirname(args.recipe)) for spec in json.load(f)}
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[args.optimize or "O3"]
    if args.threads:
        options.intra_op_num_threads = args.threads

    providers = ["CPUExecutionProvider"]
    if args.plugin:
        # ONNX Runtime's plugin-EP API, as its documentation shows it: register the library, pick its devices.
        ort.register_execution_provider_library("OpenVINOExecutionProvider", args.plugin)
        devices = [d for d in ort.get_ep_devices() if d.ep_name == "OpenVINOExecutionProvider"
                   and d.device.type == ort.OrtHardwareDeviceType.CPU]
        if not devices:
            raise SystemExit("python-ort: OpenVINO's plugin offers no CPU device here")
        options.add_provider_for_devices(devices, {})
        providers = None
    t = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=providers)
    session_ms = (time.perf_counter() - t) * 1e3
    # The job is a caller holding float32: where the model takes float16 (our FP16 variants do), convert at every
    # run, as our engine does inside run().
    halves = {i.name for i in session.get_inputs() if i.type == "tensor(float16)"}
    if halves:
        session_run = session.run
        session.run = lambda names, f: session_run(
            names, {k: v.astype(np.float16) if k in halves else v for k, v in f.items()})
    rss_after_load_mb = rss_mb()
    t = time.perf_counter()
    session.run(None, feeds)
    first_ms = (time.perf_counter() - t) * 1e3
    cold_start_ms = (time.time_ns() - int(SPAWNED_NS)) / 1e6 if SPAWNED_NS else None

    def timed(done):
        """Calls `interval_ms` apart (start to start; the first one interval in), or back to back; each timed alone."""
        samples = []
        cpu = time.process_time()
        started = time.perf_counter()
        while not done(samples):
            if args.interval_ms > 0:
                wait = started + args.interval_ms * (len(samples) + 1) / 1e3 - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t = time.perf_counter()
            session.run(None, feeds)
            samples.append((time.perf_counter() - t) * 1e3)
        return samples, (time.process_time() - cpu) * 1e3 / max(len(samples), 1)

    warm, _ = timed(lambda s: len(s) >= args.warmup)
    begun = time.perf_counter()
    samples, cpu_ms_per_run = timed(lambda s: len(s) >= args.runs and time.perf_counter() - begun >= args.seconds)
    metrics = {
        "session_create_ms": session_ms,
        "first_inference_ms": first_ms,
        "cold_start_ms": cold_start_ms,
        "rss_after_load_mb": rss_after_load_mb,
        "cpu_ms_per_run": cpu_ms_per_run,
        "interval_ms": args.interval_ms or None,
        "warmup_runs": args.warmup,
        "warmup_mean_ms": sum(warm) / len(warm) if warm else None,
        "runs": len(samples),
        "mean_ms": sum(samples) / len(samples),
        "p50_ms": float(np.percentile(samples, 50)),
    }
    with open(args.out, "w") as f:
        json.dump({"ort_version": ort.__version__, "metrics": metrics, "samples_ms": samples}, f)


if __name__ == "__main__":
    main()
