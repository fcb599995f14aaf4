"""Precision variants of a decoder made by make_decoder.py, with ONNX Runtime's own tools:

- fp16.onnx: float16 weights and I/O (logits and KV cache in float16);
- int8.onnx: per-tensor dynamic INT8 weights of the projections (per-channel was seen to break SmolLM2's text; the
  attention products have no weights, and the LM head keeps FP32: quantizing it changed the answers);
- int4.onnx: 4-bit blockwise weights (MatMulNBits, block 32, symmetric; accuracy level 4 = int8 compute), with
  ONNX Runtime's quantizer as it stands: measured (llm_quality.py) at 1.47x FP32's perplexity, looping in 5 of 6
  chat turns. Its asymmetric mode is no better (1.49x): its zero points are integers;
- int4-mixed.onnx: per layer, the precision that keeps the text. SmolLM2's weights come from a Q4_1 GGUF (blocks
  of 32, w = d*q + m) whose m is not a multiple of d, so integer zero points (all ONNX Runtime's fast 4-bit kernel
  takes) move every block by up to half a step. Each projection is 4-bit either with integer zero points or exact,
  its float block minimum added apart (`q4-exact`, see quantize_blockwise); the projections whose output the
  rounding changes most on calibration text (KJV Jonah) get the exact form first, as few as keep the calibration
  perplexity within CALIBRATION_PPL_RATIO of FP32's. The LM head (from a Q8_0 tensor) is 8-bit, exact.

    python make_variants.py --dir DIR [--only fp16,int8,int4,int4-mixed] [--calibration-text FILE]
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxruntime.transformers.float16 import convert_float_to_float16


CALIBRATION_PPL_RATIO = 1.05


def save(model, path):
    data = os.path.basename(path) + ".data"
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data,
              size_threshold=1024)


def block_quantize(weight, bits, block, exact_minimum=True):
    """weight [K, N], per block of `block` along K: w = scale * q + low, q in [0, 2^bits - 1] (asymmetric with a
    float minimum, the Q4_1 form), or for 8 bits w = scale * (q - 128), symmetric (the Q8_0 form).
    Returns MatMulNBits' packed B [N, K/block, block*bits/8] uint8, scales [N * K/block], its integer zero points
    and the block minima [K/block, N] (None when symmetric)."""
    k, n = weight.shape
    blocks = weight.T.reshape(n, k // block, block).astype(np.float64)
    if bits == 8:
        scale = np.abs(blocks).max(axis=-1, keepdims=True) / 127
        scale = np.where(scale > 0, scale, 1.0)
        q = (np.clip(np.rint(blocks / scale), -127, 127) + 128).astype(np.uint8)
        zero_points = np.full(n * (k // block), 128, np.uint8)
        return q, scale.astype(np.float32).ravel(), zero_points, None
    low, high = blocks.min(axis=-1, keepdims=True), blocks.max(axis=-1, keepdims=True)
    scale = np.where(high > low, (high - low) / 15, 1.0)
    if exact_minimum:
        zero = np.zeros_like(scale)
    else:  # the minimum rounded to a whole step: MatMulNBits' integer zero point, nothing added apart
        zero = np.clip(np.rint(-low / scale), 0, 15)
    q = np.clip(np.rint(blocks / scale + zero) if not exact_minimum else np.rint((blocks - low) / scale), 0, 15)
    q = q.astype(np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    zero = zero[..., 0].astype(np.uint8)
    if zero.shape[1] % 2:
        zero = np.concatenate([zero, np.zeros((n, 1), np.uint8)], axis=1)
    zero_points = (zero[:, 0::2] | (zero[:, 1::2] << 4)).ravel().astype(np.uint8)
    minima = low[..., 0].T.astype(np.float32) if exact_minimum else None
    return packed, scale.astype(np.float32).ravel(), zero_points, minima


def quantize_blockwise(model, plan, block=32, accuracy_level=4):
    """Every MatMul with a weight initializer for which `plan(node name)` is `q8`, `q4` or `q4-exact` becomes
    MatMulNBits: `q8` symmetric (exact for Q8_0 blocks), `q4` with integer zero points, `q4-exact` exact for Q4_1
    blocks. MatMulNBits' zero points are integers, so a 4-bit block's float
    minimum is added apart: x @ W = MatMulNBits(x, q, scale, 0) + (x summed per block) @ minima, a product 1/32 the
    size of the weight."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, dropped, block_sums = [], set(), {}
    for node in graph.node:
        kind = plan(node.name) if node.op_type == "MatMul" and node.input[1] in inits else None
        if kind is None:
            nodes.append(node)
            continue
        bits = 8 if kind == "q8" else 4
        weight = numpy_helper.to_array(inits[node.input[1]])
        k, n = weight.shape
        packed, scales, zero_points, minima = block_quantize(weight, bits, block, exact_minimum=kind == "q4-exact")
        base, x = node.input[1], node.input[0]
        graph.initializer.extend([numpy_helper.from_array(packed, base + f"_q{bits}"),
                                  numpy_helper.from_array(scales, base + "_scales"),
                                  numpy_helper.from_array(zero_points, base + "_zero_points")])
        dropped.add(base)
        product = node.output[0] if minima is None else base + "_blocks_product"
        inputs = [x, base + f"_q{bits}", base + "_scales", base + "_zero_points"]
        nodes.append(helper.make_node("MatMulNBits", inputs, [product], name=node.name, domain="com.microsoft", K=k,
                                      N=n, bits=bits, block_size=block, accuracy_level=accuracy_level))
        if minima is None:
            continue
        if x not in block_sums:  # one per input, shared by the products that read it
            shape, axes = x + "_block_shape", x + "_block_axes"
            graph.initializer.extend([numpy_helper.from_array(np.array([0, 0, k // block, block], np.int64), shape),
                                      numpy_helper.from_array(np.array([-1], np.int64), axes)])
            nodes.append(helper.make_node("Reshape", [x, shape], [x + "_blocks"]))
            nodes.append(helper.make_node("ReduceSum", [x + "_blocks", axes], [x + "_block_sums"], keepdims=0))
            block_sums[x] = x + "_block_sums"
        graph.initializer.append(numpy_helper.from_array(minima, base + "_minima"))
        nodes.append(helper.make_node("MatMul", [block_sums[x], base + "_minima"], [base + "_minima_product"]))
        nodes.append(helper.make_node("Add", [product, base + "_minima_product"], list(node.output)))
    kept = [i for i in graph.initializer if i.name not in dropped]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)
    graph.ClearField("node")
    graph.node.extend(nodes)
    return model


def projection_inputs(fp32, ids):
    """Each weighted MatMul's input on `ids` (one prompt, no cache), from FP32."""
    import onnxruntime as ort
    from check_decoder import Decoder
    model = onnx.load(fp32, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    wanted = {n.name: n.input[0] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    del model.graph.output[1:]
    for tensor in sorted(set(wanted.values())):
        model.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    probe = fp32 + ".probe.onnx"
    onnx.save(model, probe)  # beside fp32.onnx: its external data stays where it is
    try:
        cfg = json.load(open(os.path.join(os.path.dirname(fp32), "decoder.json")))
        decoder = Decoder(fp32, cfg)
        session = ort.InferenceSession(probe, providers=["CPUExecutionProvider"])
        feeds = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
                 **decoder.empty_past()}
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, feeds)))
    finally:
        os.remove(probe)
    return {node: values[tensor].reshape(-1, values[tensor].shape[-1]) for node, tensor in wanted.items()}


def residual_error(fp32, ids):
    """Per projection: how much of its output on real text the integer zero points' rounding changes
    (||x (W - W_q4)|| / ||x W||): where the exact minimum matters."""
    model = onnx.load(fp32)
    weights = {i.name: i for i in model.graph.initializer}
    inputs = projection_inputs(fp32, ids)
    errors = {}
    for node in model.graph.node:
        if node.name not in inputs or node.name == "lm_head":
            continue
        w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
        packed, scales, zero_points, _ = block_quantize(w.astype(np.float32), 4, 32, exact_minimum=False)
        k, n = w.shape
        q = np.stack([packed & 15, packed >> 4], axis=-1).reshape(n, k // 32, 32).astype(np.float64)
        zero = np.stack([zero_points & 15, zero_points >> 4], axis=-1).reshape(n, -1)[:, : k // 32]
        dequantized = ((q - zero[..., None]) * scales.reshape(n, k // 32, 1)).reshape(n, k).T
        x = inputs[node.name].astype(np.float64)
        errors[node.name] = float(np.linalg.norm(x @ (w - dequantized)) / np.linalg.norm(x @ w))
    return errors


def int4_mixed(fp32, out, calibration_text):
    """The fewest exact-minimum projections whose perplexity on the calibration text stays within
    CALIBRATION_PPL_RATIO of FP32's: the exact form costs a second small product per projection."""
    from check_decoder import Decoder
    from llm_quality import WINDOW, perplexity
    from tokenizers import Tokenizer
    directory = os.path.dirname(fp32)
    cfg = json.load(open(os.path.join(directory, "decoder.json")))
    ids = Tokenizer.from_file(os.path.join(directory, "tokenizer.json")).encode(
        open(calibration_text).read(), add_special_tokens=False).ids
    windows = [ids[i * WINDOW:(i + 1) * WINDOW] for i in range(min(3, len(ids) // WINDOW))]
    errors = residual_error(fp32, windows[0])
    ranked = sorted(errors, key=errors.get, reverse=True)
    reference = perplexity(Decoder(fp32, cfg), windows)
    tried = []
    for share in (0.0, 0.125, 0.25, 0.5, 1.0):
        exact = set(ranked[: int(round(share * len(ranked)))])
        model = quantize_blockwise(onnx.load(fp32), lambda name: "q8" if name == "lm_head" else
                                   ("q4-exact" if name in exact else "q4"))
        save(model, out)
        ratio = perplexity(Decoder(out, cfg), windows) / reference
        tried.append({"exact_projections": len(exact), "calibration_perplexity_ratio": ratio})
        if ratio <= CALIBRATION_PPL_RATIO:
            break
    with open(out + ".json", "w") as f:
        json.dump({"exact_minimum": sorted(exact), "tried": tried, "residual_error": errors}, f, indent=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--only", default="fp16,int8,int4,int4-mixed")
    p.add_argument("--calibration-text", default="", help="plain text for int4-mixed's per-layer choice")
    args = p.parse_args()
    fp32 = os.path.join(args.dir, "fp32.onnx")
    wanted = args.only.split(",")
    if "fp16" in wanted:
        save(convert_float_to_float16(onnx.load(fp32), keep_io_types=False, disable_shape_infer=True),
             os.path.join(args.dir, "fp16.onnx"))
    if "int8" in wanted:
        out = os.path.join(args.dir, "int8.onnx")
        model = onnx.load(fp32, load_external_data=False)
        weights = {init.name for init in model.graph.initializer}
        keep = [n.name for n in model.graph.node
                if n.op_type == "MatMul" and (n.input[1] not in weights or n.name == "lm_head")]
        quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=keep, use_external_data_format=True,
                         # onnx's shape inference cannot type ONNX Runtime's own ops (SimplifiedLayerNormalization).
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    if "int4" in wanted:
        quantizer = MatMulNBitsQuantizer(onnx.load(fp32), bits=4, block_size=32, is_symmetric=True, accuracy_level=4)
        quantizer.process()
        save(quantizer.model.model, os.path.join(args.dir, "int4.onnx"))
    if "int4-mixed" in wanted:
        int4_mixed(fp32, os.path.join(args.dir, "int4-mixed.onnx"), args.calibration_text)


if __name__ == "__main__":
    main()
