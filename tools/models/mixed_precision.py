"""Per-layer precision: find the parts of a graph that break a variant's accuracy, keep them at FP32, and keep the
fastest configuration that passes the model's task measure on the selection set (the test set, which
records the verdict, is never seen here). Used by prepare_variants.py.

Sensitivity is measured where it matters, on the model's outputs: the graph (in topological order) is cut into
BLOCKS contiguous blocks; each block in turn is kept at FP32 with everything else at the lower precision, and the
block's sensitivity is how much that raises the task score on the calibration set (top box kept for a detector, text
mask IoU for a text detector, cosine otherwise). Per-tensor statistics were tried first and misled: a YOLO head
concatenates box coordinates (0-320) with class scores (0-1) under one INT8 scale, which rounds every score to 0 or
1.25 while each tensor's own error still looks small, and near-dead channels look worse than that.

The search keeps the most sensitive blocks at FP32, one more at a time, until the variant passes on the selection
set; then halves each kept block while it still passes (fewer FP32 nodes, usually faster), measures the latency of
every passing configuration on this host and keeps the fastest.
INT8 is QDQ with per-channel weights calibrated on the calibration set; FP16 keeps float32 inputs and outputs.
"""
import os
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.transformers.float16 import convert_float_to_float16

BLOCKS = 12
MAX_BLOCKS = 10
HALVINGS = 4
LATENCY_RUNS = 30


class Reader:
    def __init__(self, samples):
        self.samples = list(samples)

    def get_next(self):
        return self.samples.pop(0) if self.samples else None

    def __iter__(self):
        return iter(list(self.samples))


def latency_ms(path, feeds, run):
    """Mean latency of `path` on this host (2 threads, as the benchmarks), after warm-up."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(5):
        run(session, feeds)
    started = time.perf_counter()
    for _ in range(LATENCY_RUNS):
        run(session, feeds)
    return (time.perf_counter() - started) / LATENCY_RUNS * 1000


def name_nodes(fp32, out):
    """A copy of the model whose nodes all have names (the tools exclude nodes by name) and whose Constant nodes
    are initializers: the float16 converter converts Constant values even for the nodes it is told to keep
    (openWakeWord's mel spectrogram clips at 1e-10 before its log: 0 in float16, so -inf)."""
    model = onnx.load(fp32)
    kept = []
    for i, node in enumerate(model.graph.node):
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and node.domain in ("", "ai.onnx"):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            continue
        if not node.name:
            node.name = f"node_{i}_{node.op_type}"
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, out)
    return out


def unique_names(model):
    """The float16 converter can insert the same Cast twice next to blocked nodes (same name, same output); ONNX
    requires unique names and one producer per tensor. Duplicates of an identical Cast are dropped, other clashing
    node names made unique."""
    seen, produced, kept = set(), {}, []
    for i, node in enumerate(model.graph.node):
        clash = [o for o in node.output if o in produced]
        if clash and node.op_type == "Cast" and produced[clash[0]].input == node.input:
            continue
        if node.name in seen:
            node.name = f"{node.name}_{i}"
        seen.add(node.name)
        for o in node.output:
            produced[o] = node
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def without_round_trips(model):
    """The float16 converter stores every edge between two nodes it kept at FP32 in float16 anyway (a Cast to
    float16 and straight back): a value that overflows float16 is still lost. Such round trips are cut out, so a
    tensor between kept nodes stays float32."""
    def to(node):
        return next((a.i for a in node.attribute if a.name == "to"), None)
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}
    rename = {}
    for node in model.graph.node:
        if node.op_type == "Cast" and to(node) == onnx.TensorProto.FLOAT and node.output[0] not in outputs:
            before = producer.get(node.input[0])
            if before is not None and before.op_type == "Cast" and to(before) == onnx.TensorProto.FLOAT16:
                source = producer.get(before.input[0])
                # only where the value was float32 before the trip
                if source is None or source.op_type != "Cast" or to(source) == onnx.TensorProto.FLOAT:
                    rename[node.output[0]] = before.input[0]
    if not rename:
        return model
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    # Drop the Casts nothing reads any more.
    while True:
        read = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type == "Cast" and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    del model.graph.value_info[:]  # some described the float16 copies; ONNX Runtime infers the rest
    return model


def blocks_of(model, count):
    """The nodes in topological order (as ONNX stores them), cut into `count` contiguous blocks of names."""
    names = [n.name for n in model.graph.node]
    size = max(1, -(-len(names) // count))
    return [names[i:i + size] for i in range(0, len(names), size)]


def search(kind, fp32, calibration, score, selection_pass, feeds, run, out_path):
    """The fastest passing configuration: a dict with `kept_fp32` (node names), `latency_ms`, `tried` (every
    configuration with its verdict), or with `error` when none passed. INT8 is searched with per-tensor and with
    per-channel weights (per-channel is more accurate, per-tensor was faster on x86-64): the faster passing wins."""
    with tempfile.TemporaryDirectory() as tmp:
        named = name_nodes(fp32, os.path.join(tmp, "named.onnx"))
        builds = iter(range(10**6))
        tried, passing, gains = [], [], {}
        for per_channel in ((False, True) if kind == "int8" else (None,)):

            def build(exclude):
                path = os.path.join(tmp, f"c{next(builds)}.onnx")
                if kind == "int8":
                    quantize_static(named, path, Reader(calibration), quant_format=QuantFormat.QDQ,
                                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                    per_channel=per_channel, nodes_to_exclude=exclude)
                else:
                    onnx.save(without_round_trips(unique_names(convert_float_to_float16(
                        onnx.load(named), keep_io_types=True, node_block_list=exclude))), path)
                return path

            def attempt(kept):
                exclude = [name for block in kept for name in block]
                try:
                    path = build(exclude)
                    verdict, accuracy = selection_pass(path)
                except Exception as e:  # the tools make some configurations ONNX Runtime rejects: a failed one
                    tried.append({"per_channel": per_channel, "nodes_at_fp32": len(exclude), "passed": False,
                                  "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
                    return False
                entry = {"per_channel": per_channel, "nodes_at_fp32": len(exclude), "passed": bool(verdict)}
                if verdict:
                    entry["latency_ms"] = latency_ms(path, feeds, run)
                    passing.append((entry["latency_ms"], exclude, path, accuracy, per_channel))
                tried.append(entry)
                return verdict

            def scored(exclude):
                try:
                    return score(build(exclude))
                except Exception:  # as above: a configuration ONNX Runtime rejects scores lowest
                    return -1.0

            blocks = blocks_of(onnx.load(named), BLOCKS)
            baseline = scored([])
            gain = [scored(block) - baseline for block in blocks]
            gains[str(per_channel)] = gain
            order = sorted(range(len(blocks)), key=lambda b: gain[b], reverse=True)
            kept = []
            for b in [None] + order[:MAX_BLOCKS]:
                if b is not None:
                    kept.append(blocks[b])
                if attempt(kept):
                    break
            else:
                continue
            # Halve each kept block while the variant still passes.
            for i in range(len(kept)):
                for _ in range(HALVINGS):
                    block = kept[i]
                    if len(block) < 2:
                        break
                    half = len(block) // 2
                    for part in (block[:half], block[half:]):
                        if attempt(kept[:i] + [part] + kept[i + 1:]):
                            kept[i] = part
                            break
                    else:
                        break
        if not passing:
            return {"error": f"no configuration passed keeping up to {MAX_BLOCKS} of {BLOCKS} blocks at FP32",
                    "block_gains": gains, "tried": tried}
        latency, exclude, path, accuracy, per_channel = min(passing, key=lambda p: p[0])
        os.replace(path, out_path)
        return {"kept_fp32": exclude, "latency_ms": latency, "tried": tried, "block_gains": gains,
                "accuracy": accuracy, **({} if per_channel is None else {"per_channel": per_channel})}
