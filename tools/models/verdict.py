"""The verdict on a precision variant: its outputs against FP32's on the same inputs, judged by the model's task
measure. One home for the measures and thresholds, used by prepare_variants.py (python onnxruntime on this host,
for the search) and by `cargo xtask models verdicts` (outputs the SDK's runner dumped on each numerics class).

    python verdict.py --task T --reference DIR --variant DIR     (prints the verdict as JSON)

A dump directory holds, per input i, `i.json` ({"outputs": [{"name", "shape", "file"}]}) and the raw little-endian
float32 files it names.
"""
import argparse
import json
import os

import numpy as np


def accurate(v, task):
    """The verdict a model bundle records, which Precision.Auto obeys: the task's own measure where the model has
    one (cosine hides a detector whose top box changed class), else near-identical outputs."""
    if "error" in v or v.get("non_finite_outputs"):
        return False
    if task == "yolo":
        return bool(v.get("top_box_same_class")) and v.get("top_box_iou", 0) >= THRESHOLDS["yolo"]
    if task == "probability-map":
        return v.get("map_iou", 0) >= THRESHOLDS["probability-map"]
    if task == "classifier" and "score_error" in v:
        return bool(v.get("decision_same")) and v["score_error"] <= 1 - SCORE_THRESHOLD
    # Top-1 is a classifier's measure (benchmarks/models.json: "classifier: top-1"); an embedding's or a generic
    # output's largest component means nothing, and cosine judges them.
    top1 = v.get("top1_agreement") if task == "classifier" else None
    return (v.get("cosine_similarity") or 0) >= COSINE_THRESHOLD and (top1 is None or top1 >= TOP1_THRESHOLD)


# YOLO's usual confidence threshold: below it, a box is no detection at all.
YOLO_CONFIDENCE = 0.25


def yolo_top_box(output):
    """The highest-scoring detection of a YOLOv8 head [1, 4 + classes, anchors]: (cx, cy, w, h), class, score."""
    scores = output[0, 4:, :]
    anchor = int(np.argmax(scores.max(axis=0)))
    return output[0, :4, anchor].astype(np.float64), int(np.argmax(scores[:, anchor])), float(scores.max())


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
        (box_ref, class_ref, score_ref), (box_out, class_out, score_out) = yolo_top_box(ref), yolo_top_box(out)
        if score_ref < YOLO_CONFIDENCE:
            # FP32 detects nothing here: the variant must not either (the top box of noise is no measure).
            quiet = score_out < YOLO_CONFIDENCE
            return {"top_box_iou": 1.0 if quiet else 0.0, "top_box_same_class": quiet}
        return {"top_box_iou": box_iou(box_ref, box_out), "top_box_same_class": class_ref == class_out}
    if task == "classifier" and ref.ndim >= 1 and ref.shape[-1] == 1:
        # One probability (speech, a wake word): the decision at 0.5 must not change, and the score by little.
        a, b = ref.astype(np.float64), out.astype(np.float64)
        return {"score_error": float(np.max(np.abs(a - b))), "decision_same": bool(np.all((a >= 0.5) == (b >= 0.5)))}
    if task == "probability-map":
        # DBNet's text threshold: compare the text masks the post-processing would see.
        a, b = ref > 0.3, out > 0.3
        union = np.logical_or(a, b).sum()
        return {"map_iou": float(np.logical_and(a, b).sum() / union) if union else 1.0}
    return {}


def accuracy(reference, outputs, task="generic"):
    """Per variant: the worst output's cosine similarity and max abs error against FP32 on the same input, the argmax
    (top-1 along the last axis) agreement of the first output (the model's answer: a recurrent state's or a
    spectrum's largest channel is none), plus the task's own measure."""
    cosines, errors, agreements = [], [], []
    for k, (ref, out) in enumerate(zip(reference, outputs)):
        if not np.issubdtype(ref.dtype, np.floating) or ref.size == 0:
            continue
        a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        denominator = np.linalg.norm(a) * np.linalg.norm(b)
        cosines.append(float(a @ b / denominator) if denominator > 0 else float(np.array_equal(a, b)))
        errors.append(float(np.max(np.abs(a - b))))
        if k == 0 and ref.ndim >= 1 and ref.shape[-1] > 1:
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
    """A set's verdict is its worst input's: minima of similarities, maxima of errors, all of flags."""
    merged = {}
    for key in per_input[0]:
        values = [a.get(key) for a in per_input]
        if any(v is None for v in values):
            merged[key] = None
        elif isinstance(values[0], bool):
            merged[key] = all(values) if key != "non_finite_outputs" else any(values)
        else:
            merged[key] = (max if key in ("max_abs_error", "score_error") else min)(values)
    merged["inputs"] = len(per_input)
    return merged


# The pass mark of each task's score (the worst input's decides).
THRESHOLDS = {"yolo": 0.5, "probability-map": 0.8}
COSINE_THRESHOLD = 0.99
# A one-probability classifier's score: 1 - |p - p_fp32| (0 where the decision at 0.5 changed).
SCORE_THRESHOLD = 0.95
TOP1_THRESHOLD = 0.9


def input_score(a, task):
    """One input's score on the task's measure (None when the outputs were not finite)."""
    if a.get("non_finite_outputs"):
        return None
    if task == "yolo":
        return a["top_box_iou"] if a["top_box_same_class"] else 0.0
    if task == "probability-map":
        return a["map_iou"]
    if task == "classifier" and "score_error" in a:
        return 1 - a["score_error"] if a["decision_same"] else 0.0
    return a["cosine_similarity"]


def verdict(per_input, task):
    """The recorded verdict: passed, the worst input's score, the threshold it is held to, the input count."""
    measured = worst(per_input)
    scores = [input_score(a, task) for a in per_input]
    finite = all(s is not None for s in scores)
    top1 = measured.get("top1_agreement")
    scored = task == "classifier" and "score_error" in measured
    return {"passed": accurate(measured, task), "worst_score": min(scores) if finite and scores else None,
            "threshold": SCORE_THRESHOLD if scored else THRESHOLDS.get(task, COSINE_THRESHOLD), "inputs": len(per_input),
            **({} if finite else {"non_finite": True}),
            **({"top1_agreement": top1} if top1 is not None and task == "classifier" else {})}


def read_dump(directory, i):
    with open(os.path.join(directory, f"{i}.json")) as f:
        described = json.load(f)
    return [np.fromfile(os.path.join(directory, o["file"]), dtype="<f4").reshape(o["shape"])
            for o in described["outputs"]]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="generic")
    p.add_argument("--reference", required=True)
    p.add_argument("--variant", required=True)
    args = p.parse_args()
    count = len([f for f in os.listdir(args.reference) if f.endswith(".json")])
    per_input = [accuracy(read_dump(args.reference, i), read_dump(args.variant, i), args.task) for i in range(count)]
    print(json.dumps({**verdict(per_input, args.task), "per_input": [input_score(a, args.task) for a in per_input]},
                     allow_nan=False))


if __name__ == "__main__":
    main()
