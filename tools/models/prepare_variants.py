"""Precision variants of one model, made with ONNX Runtime's own tools, and their accuracy against FP32.
Driven by `cargo xtask models prepare`, in the xtask-managed venv (onnx, numpy, onnxruntime pinned).

    python prepare_variants.py --model M.onnx --recipe R.json --out DIR [--task yolo|probability-map|...]

Writes DIR/fp16.onnx (float16 throughout, inputs and outputs too), DIR/int8-dynamic.onnx (per-tensor dynamic INT8 weights),
DIR/int8-qdq.onnx (static QDQ INT8), DIR/int8-mixed.onnx and DIR/fp16-mixed.onnx (the most sensitive nodes kept at
FP32, searched per layer: mixed_precision.py; made when the all-INT8 or all-FP16 variant fails), DIR/fp32.ort (ORT
format, for the mobile runtime), DIR/variants.json (every variant with its accuracy and host latency) and
DIR/bundle.json (the model bundle the engine loads: core/src/bundle.rs). A variant the tools cannot make is recorded
with its error instead of stopping the others.

Three disjoint sets of real inputs (held_out.json from `models prepare`: photos, rendered text, sentences, speech):
quantization is calibrated on the calibration set, the per-layer search stops on the selection set, and the only
verdict recorded (variants.json, bundle.json) is taken on the test set, which nothing was tuned on. A variant passes
when every test input passes the task's measure (verdict.py). The bundle's verdict is this host's numerics class;
`cargo xtask models verdicts` adds the verdicts of the SDK's own runs on each class (x86-64, ARM64 under qemu).

FP16 keeps no float32 I/O: Cast nodes at the graph's edges are extra partitions for CoreML and NNAPI, and callers
holding float32 are converted by the engine (in bulk) instead.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.transformers.float16 import convert_float_to_float16

import held_out
import mixed_precision
from verdict import accuracy, accurate, input_score, verdict, worst
from recipe_inputs import recipe_input  # one definition of the recipe, shared with the python-ort peer


NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def run(path, feeds):
    """Outputs as float32/float64 whatever the variant's I/O types (an FP16 model takes and gives float16)."""
    return run_session(ort.InferenceSession(path, providers=["CPUExecutionProvider"]), feeds)


def run_session(session, feeds):
    declared = {i.name: NUMPY_TYPES.get(i.type) for i in session.get_inputs()}
    typed = {name: value.astype(declared[name]) if declared.get(name) and np.issubdtype(value.dtype, np.floating)
             else value for name, value in feeds.items()}
    return [np.asarray(o).astype(np.float32) if np.asarray(o).dtype == np.float16 else np.asarray(o)
            for o in session.run(None, typed)]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bundle(out_dir, model_id, variants, task):
    """bundle.json: the .onnx variants by precision, with size, sha256 and the accuracy verdict."""
    kinds = {"fp32": ("fp32", None), "fp16": ("fp16", None), "int8-dynamic": ("int8", "dynamic"),
             "int8-qdq": ("int8", "qdq"), "int8-mixed": ("int8-mixed", "qdq"), "fp16-mixed": ("fp16-mixed", None)}
    host = f"{sys.platform}-{platform.machine()}-cpu"
    entries = []
    for name, (precision, quantization) in kinds.items():
        v = variants.get(name)
        if not v or "error" in v:
            continue
        path = os.path.join(out_dir, v["file"])
        entries.append({"precision": precision, **({"quantization": quantization} if quantization else {}),
                        "file": v["file"], "size_bytes": os.path.getsize(path), "sha256": sha256(path),
                        "accurate": v["verdict"]["passed"],
                        "verdicts": {host: {**v["verdict"], "set": "test", "source": "models prepare"}},
                        **({"kept_fp32": v["kept_fp32"]} if "kept_fp32" in v else {}),
                        # python onnxruntime on this host: the same ONNX Runtime and kernels the engine runs
                        "measured": {host: {"mean_ms": v["latency_ms"], "source": "models prepare"}},
                        "accuracy": {k: v[k] for k in v if k not in ("file", "size_bytes", "seconds", "kept_fp32", "verdict",
                                                                     "selection_passed", "tried", "latency_ms",
                                                                     "block_gains", "per_channel")}})
    with open(os.path.join(out_dir, "bundle.json"), "w") as f:
        json.dump({"format": 1, "model": model_id, "onnxruntime": ort.__version__, "variants": entries}, f,
                  indent=1, allow_nan=False)


class RecipeReader(CalibrationDataReader):
    """The calibration set, once."""

    def __init__(self, samples):
        self.samples = list(samples)

    def get_next(self):
        return self.samples.pop() if self.samples else None


class Validation:
    """FP32's outputs on a set of inputs, and the verdict (or a continuous score) of a variant against them."""

    def __init__(self, fp32, samples, task):
        self.samples, self.task = samples, task
        self.reference = [run(fp32, feeds) for feeds in samples]

    def per_input(self, path):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return [accuracy(ref, run_session(session, feeds), self.task)
                for ref, feeds in zip(self.reference, self.samples)]

    def measure(self, path):
        return worst(self.per_input(path))

    def record(self, path):
        """The measures (worst input's) and the verdict to record."""
        per_input = self.per_input(path)
        return worst(per_input), verdict(per_input, self.task)

    def score(self, path):
        """Higher is closer to FP32: the task's own measure, averaged over the inputs (for the search)."""
        scores = [input_score(a, self.task) for a in self.per_input(path)]
        return float(np.mean([-1.0 if s is None else s for s in scores]))

    def verdict(self, path):
        measured = self.measure(path)
        return accurate(measured, self.task), measured


def make(name, build, out_dir, sets, feeds):
    """Builds a variant, then judges it: on the selection set (whether to search per layer) and on the test set
    (the recorded verdict and measures)."""
    path = os.path.join(out_dir, name)
    started = time.perf_counter()
    try:
        extra = build(path) or {}
        if "error" in extra:
            return {"file": name, **extra}
        measured, recorded = sets["test"].record(path)
        selection_passed = sets["selection"].verdict(path)[0]
    except Exception as e:  # the tools reject some graphs (e.g. control flow); say so and go on
        return {"file": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    return {"file": name, "size_bytes": os.path.getsize(path), "seconds": round(time.perf_counter() - started, 2),
            "latency_ms": extra.get("latency_ms") or mixed_precision.latency_ms(path, feeds, run_session),
            **measured, "verdict": recorded, "selection_passed": bool(selection_passed),
            **{k: v for k, v in extra.items() if k not in ("latency_ms", "accuracy")}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--held-out", default="", help="held_out.json: calibration, selection and test sets")
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="generic")
    p.add_argument("--id", default="", help="the model's id, recorded in bundle.json")
    p.add_argument("--stamp", default="", help="recorded as is: xtask's key for when to remake the variants")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.recipe) as f:
        feeds = {spec["name"]: recipe_input(spec, os.path.dirname(args.recipe)) for spec in json.load(f)}
    inputs, source = held_out.load(args.held_out, feeds)
    calibration = inputs["calibration"]

    fp32 = os.path.join(args.out, "fp32.onnx")
    shutil.copyfile(args.model, fp32)
    sets = {name: Validation(fp32, inputs[name], args.task) for name in ("selection", "test")}
    calibrated = Validation(fp32, calibration, args.task)
    measured, recorded = sets["test"].record(fp32)
    variants = {"fp32": {"file": "fp32.onnx", "size_bytes": os.path.getsize(fp32),
                         "latency_ms": mixed_precision.latency_ms(fp32, feeds, run_session),
                         **measured, "verdict": recorded, "selection_passed": True}}

    variants["fp16"] = make("fp16.onnx", lambda path: onnx.save(
        convert_float_to_float16(onnx.load(fp32), keep_io_types=False), path), args.out, sets, feeds)
    # Per-tensor: per-channel dynamic INT8 was seen to break transformer outputs (shared/models.md).
    variants["int8-dynamic"] = make("int8-dynamic.onnx", lambda path: quantize_dynamic(
        fp32, path, weight_type=QuantType.QInt8, per_channel=False), args.out, sets, feeds)
    variants["int8-qdq"] = make("int8-qdq.onnx", lambda path: quantize_static(
        fp32, path, RecipeReader(calibration), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=False), args.out, sets, feeds)
    # Per layer, where the whole-graph variant failed: the fastest configuration that passes.
    for kind, plain in (("int8", "int8-qdq"), ("fp16", "fp16")):
        if "error" not in variants[plain] and not variants[plain]["selection_passed"]:
            variants[f"{kind}-mixed"] = make(f"{kind}-mixed.onnx", lambda path, kind=kind: mixed_precision.search(
                kind, fp32, calibration, calibrated.score, sets["selection"].verdict, feeds, run_session, path),
                args.out, sets, feeds)

    def to_ort(path):
        subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", fp32],
                       check=True, capture_output=True)
        if not os.path.exists(path):
            raise RuntimeError("the converter wrote no .ort file")
    variants["fp32-ort"] = make("fp32.ort", to_ort, args.out, sets, feeds)
    for v in variants.values():
        v["accurate"] = bool(v.get("verdict", {}).get("passed"))

    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "stamp": args.stamp, "inputs": source,
                   **{f"{name}_inputs": len(inputs[name]) for name in inputs},
                   "variants": variants}, f, indent=1, allow_nan=False)
    write_bundle(args.out, args.id, variants, args.task)


if __name__ == "__main__":
    main()
