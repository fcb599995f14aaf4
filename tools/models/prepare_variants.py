"""Precision variants of one model, made with ONNX Runtime's own tools, and their accuracy against FP32.
Driven by `cargo xtask models prepare`, in the xtask-managed venv (onnx, numpy, onnxruntime pinned).

    python prepare_variants.py --model M.onnx --recipe R.json --out DIR [--task yolo|probability-map|...]

Writes DIR/fp16.onnx (float16 throughout, inputs and outputs too), DIR/int8-dynamic.onnx (per-tensor dynamic INT8 weights),
DIR/int8-qdq.onnx (static QDQ INT8), DIR/int8-mixed.onnx and DIR/fp16-mixed.onnx (the most sensitive nodes kept at
FP32, searched per layer: mixed_precision.py; made when the all-INT8 or all-FP16 variant fails), DIR/fp32.ort (ORT
format, for the mobile runtime), DIR/variants.json (every variant with its accuracy and host latency) and
DIR/bundle.json (the model bundle the engine loads: core/src/bundle.rs). A variant the tools cannot make is recorded
with its error instead of stopping the others.

Quantization is calibrated on the calibration set and every verdict is taken on the separate validation set
(held_out.json from `models prepare`: real images, sentences, speech); a variant passes when every validation
input passes the task's measure.

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


def accurate(v, task):
    """The verdict a model bundle records, which Precision.Auto obeys: the task's own measure where the model has
    one (cosine hides a detector whose top box changed class), else near-identical outputs."""
    if "error" in v or v.get("non_finite_outputs"):
        return False
    if task == "yolo":
        return bool(v.get("top_box_same_class")) and v.get("top_box_iou", 0) >= 0.5
    if task == "probability-map":
        return v.get("map_iou", 0) >= 0.8
    top1 = v.get("top1_agreement")
    return (v.get("cosine_similarity") or 0) >= 0.99 and (top1 is None or top1 >= 0.9)


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
                        "accurate": accurate(v, task),
                        **({"kept_fp32": v["kept_fp32"]} if "kept_fp32" in v else {}),
                        # python onnxruntime on this host: the same ONNX Runtime and kernels the engine runs
                        "measured": {host: {"mean_ms": v["latency_ms"], "source": "models prepare"}},
                        "accuracy": {k: v[k] for k in v if k not in ("file", "size_bytes", "seconds", "kept_fp32",
                                                                     "tried", "latency_ms", "block_gains", "per_channel")}})
    with open(os.path.join(out_dir, "bundle.json"), "w") as f:
        json.dump({"format": 1, "model": model_id, "onnxruntime": ort.__version__, "variants": entries}, f,
                  indent=1, allow_nan=False)


def yolo_top_box(output):
    """The highest-scoring detection of a YOLOv8 head [1, 4 + classes, anchors]: (cx, cy, w, h), class."""
    scores = output[0, 4:, :]
    anchor = int(np.argmax(scores.max(axis=0)))
    return output[0, :4, anchor].astype(np.float64), int(np.argmax(scores[:, anchor]))


def box_iou(a, b):
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def task_accuracy(task, reference, outputs):
    """The measure that matters for the model's job, on its first output."""
    ref, out = reference[0], outputs[0]
    if task == "yolo":
        (box_ref, class_ref), (box_out, class_out) = yolo_top_box(ref), yolo_top_box(out)
        return {"top_box_iou": box_iou(box_ref, box_out), "top_box_same_class": class_ref == class_out}
    if task == "probability-map":
        # DBNet's text threshold: compare the text masks the post-processing would see.
        a, b = ref > 0.3, out > 0.3
        union = np.logical_or(a, b).sum()
        return {"map_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0}
    return {}


def accuracy(reference, outputs, task="generic"):
    """Per variant: the worst output's cosine similarity, max abs error and argmax (top-1 along the last axis)
    agreement with FP32 on the same input, plus the task's own measure."""
    cosines, errors, agreements = [], [], []
    for ref, out in zip(reference, outputs):
        if not np.issubdtype(ref.dtype, np.floating) or ref.size == 0:
            continue
        a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        denominator = np.linalg.norm(a) * np.linalg.norm(b)
        cosines.append(float(a @ b / denominator) if denominator > 0 else float(np.array_equal(a, b)))
        errors.append(float(np.max(np.abs(a - b))))
        if ref.ndim >= 1 and ref.shape[-1] > 1:
            agreements.append(float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1))))
    def finite(values, pick):
        # A variant that produces NaN or infinity has no meaningful error: report null and flag it.
        return pick(values) if values and all(np.isfinite(values)) else None
    non_finite = any(not np.all(np.isfinite(o)) for o in outputs if np.issubdtype(o.dtype, np.floating))
    return {
        "cosine_similarity": finite(cosines, min),
        "max_abs_error": finite(errors, max),
        "top1_agreement": min(agreements) if agreements else None,
        "non_finite_outputs": bool(non_finite),
        **({} if non_finite else task_accuracy(task, reference, outputs)),
    }


def worst(per_input):
    """The validation set's verdict is its worst input's: minima of similarities, maxima of errors, all of flags."""
    merged = {}
    for key in per_input[0]:
        values = [a.get(key) for a in per_input]
        if any(v is None for v in values):
            merged[key] = None
        elif isinstance(values[0], bool):
            merged[key] = all(values) if key != "non_finite_outputs" else any(values)
        else:
            merged[key] = (max if key == "max_abs_error" else min)(values)
    merged["validation_inputs"] = len(per_input)
    return merged


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

    def score(self, path):
        """Higher is closer to FP32: the task's own measure, averaged over the inputs (for the search)."""
        def one(a):
            if a.get("non_finite_outputs"):
                return -1.0
            if self.task == "yolo":
                return a["top_box_iou"] if a["top_box_same_class"] else 0.0
            if self.task == "probability-map":
                return a["map_iou"]
            return a["cosine_similarity"] if a["cosine_similarity"] is not None else -1.0
        return float(np.mean([one(a) for a in self.per_input(path)]))

    def verdict(self, path):
        measured = self.measure(path)
        return accurate(measured, self.task), measured


def make(name, build, out_dir, validation, feeds):
    path = os.path.join(out_dir, name)
    started = time.perf_counter()
    try:
        extra = build(path) or {}
        if "error" in extra:
            return {"file": name, **extra}
        measured = validation.measure(path)
    except Exception as e:  # the tools reject some graphs (e.g. control flow); say so and go on
        return {"file": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    return {"file": name, "size_bytes": os.path.getsize(path), "seconds": round(time.perf_counter() - started, 2),
            "latency_ms": extra.get("latency_ms") or mixed_precision.latency_ms(path, feeds, run_session),
            **measured, **{k: v for k, v in extra.items() if k not in ("latency_ms", "accuracy")}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--held-out", default="", help="held_out.json: calibration and validation sets")
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="generic")
    p.add_argument("--id", default="", help="the model's id, recorded in bundle.json")
    p.add_argument("--stamp", default="", help="recorded as is: xtask's key for when to remake the variants")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.recipe) as f:
        feeds = {spec["name"]: recipe_input(spec, os.path.dirname(args.recipe)) for spec in json.load(f)}
    calibration, validation_set, source = held_out.load(args.held_out, feeds)

    fp32 = os.path.join(args.out, "fp32.onnx")
    shutil.copyfile(args.model, fp32)
    validation = Validation(fp32, validation_set, args.task)
    calibrated = Validation(fp32, calibration, args.task)
    variants = {"fp32": {"file": "fp32.onnx", "size_bytes": os.path.getsize(fp32),
                         "latency_ms": mixed_precision.latency_ms(fp32, feeds, run_session),
                         **validation.measure(fp32)}}

    variants["fp16"] = make("fp16.onnx", lambda path: onnx.save(
        convert_float_to_float16(onnx.load(fp32), keep_io_types=False), path), args.out, validation, feeds)
    # Per-tensor: per-channel dynamic INT8 was seen to break transformer outputs (shared/models.md).
    variants["int8-dynamic"] = make("int8-dynamic.onnx", lambda path: quantize_dynamic(
        fp32, path, weight_type=QuantType.QInt8, per_channel=False), args.out, validation, feeds)
    variants["int8-qdq"] = make("int8-qdq.onnx", lambda path: quantize_static(
        fp32, path, RecipeReader(calibration), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=False), args.out, validation, feeds)
    # Per layer, where the whole-graph variant failed: the fastest configuration that passes.
    for kind, plain in (("int8", "int8-qdq"), ("fp16", "fp16")):
        if "error" not in variants[plain] and not accurate(variants[plain], args.task):
            variants[f"{kind}-mixed"] = make(f"{kind}-mixed.onnx", lambda path, kind=kind: mixed_precision.search(
                kind, fp32, calibration, calibrated.score, validation.verdict, feeds, run_session, path), args.out, validation, feeds)

    def to_ort(path):
        subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", fp32],
                       check=True, capture_output=True)
        if not os.path.exists(path):
            raise RuntimeError("the converter wrote no .ort file")
    variants["fp32-ort"] = make("fp32.ort", to_ort, args.out, validation, feeds)
    for v in variants.values():
        v["accurate"] = accurate(v, args.task)

    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "stamp": args.stamp, "inputs": source,
                   "calibration_inputs": len(calibration), "validation_inputs": len(validation_set),
                   "variants": variants}, f, indent=1, allow_nan=False)
    write_bundle(args.out, args.id, variants, args.task)


if __name__ == "__main__":
    main()
