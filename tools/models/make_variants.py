"""Precision variants of a decoder made by make_decoder.py, with ONNX Runtime's own tools:

- fp16.onnx: float16 weights and I/O (logits and KV cache in float16);
- int8.onnx: per-tensor dynamic INT8 weights of the projections (per-channel was seen to break SmolLM2's text; the
  attention products have no weights, and the LM head keeps FP32: quantizing it changed the answers);
- int4.onnx: 4-bit blockwise weights (MatMulNBits, block 32, symmetric; accuracy level 4 = int8 compute), with
  ONNX Runtime's quantizer as it stands: measured (llm_quality.py) at 1.47x FP32's perplexity, looping in 5 of 6
  chat turns. Its asymmetric mode is no better (1.49x): its zero points are integers;
- int4-mixed.onnx: per layer, the precision that keeps the text. SmolLM2's weights come from a Q4_1 GGUF (blocks
  of 32, w = d*q + m) whose m is not a multiple of d, so integer zero points (all ONNX Runtime's fast 4-bit kernel
  takes) move every block by up to half a step. Each projection is 4-bit either with integer zero points or exact
  (`q4-exact`: symmetric, the block's offset carried by the same product, which also reads x's block sums; see
  block_quantize); the projections whose output the rounding changes most on calibration text (KJV Jonah) get
  the exact form first, as few as keep the calibration perplexity within CALIBRATION_PPL_RATIO of FP32's. The LM
  head (from a Q8_0 tensor) is 8-bit, exact.

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


def pack(q, scale, zero):
    """q [N, blocks, block] in 0..15, scale and integer zero [N, blocks] (None: symmetric, MatMulNBits' implicit 8)
    -> MatMulNBits' B, scales, zero points."""
    n = q.shape[0]
    q = q.astype(np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    if zero is None:
        return packed, scale.astype(np.float32).ravel(), None
    zero = zero.astype(np.uint8)
    if zero.shape[1] % 2:
        zero = np.concatenate([zero, np.zeros((n, 1), np.uint8)], axis=1)
    zero_points = (zero[:, 0::2] | (zero[:, 1::2] << 4)).ravel().astype(np.uint8)
    return packed, scale.astype(np.float32).ravel(), zero_points


def q4_1(values):
    """values [N, blocks, block] that are Q4_1 blocks (w = d*q + m): q, d, the integer zero point z = round(-m/d)
    MatMulNBits takes, and r = m + d*z, what w = d*(q - z) + r leaves out (at most half a step)."""
    low, high = values.min(-1, keepdims=True), values.max(-1, keepdims=True)
    d = np.where(high > low, (high - low) / 15, 1.0)
    q = np.clip(np.rint((values - low) / d), 0, 15)
    z = np.clip(np.rint(-low / d), 0, 15)
    return q, d[..., 0], z[..., 0], (low + d * z)[..., 0]


def q4_symmetric(values):
    """values [N, blocks, block] on 4 bits around MatMulNBits' implicit zero point 8: q, scale, dequantized."""
    scale = np.maximum(values.max(-1, keepdims=True) / 7, -values.min(-1, keepdims=True) / 8)
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(values / scale) + 8, 0, 15)
    return q, scale[..., 0], scale * (q - 8)


def block_sum_width(k, block):
    """Columns of x's block sums, padded to whole blocks."""
    return block * -(-(k // block) // block)


def block_quantize(weight, kind, block):
    """weight [K, N] as MatMulNBits' B, scales, zero points and the K it takes:
    - q8: symmetric, w = scale * (q - 128) (exact for Q8_0 blocks);
    - q4: Q4_1 blocks on integer zero points, each block moved by its r (see q4_1);
    - q4-exact: nothing dropped, and no zero points at all (MatMulNBits' symmetric kernel, its fastest): each weight
      is d*(q - 8) + r8 with r8 = m + 8*d. The product's input becomes [x, sums, sums] (x's block sums, twice) and B
      gets rows for them: r8, then what r8's own 4-bit rounding left over. Each weight is then within 1/200 of its
      block's r8 of the Q4_1 value, with no product of its own: one wider MatMulNBits."""
    k, n = weight.shape
    blocks = weight.T.reshape(n, k // block, block).astype(np.float64)
    if kind == "q8":
        scale = np.abs(blocks).max(axis=-1, keepdims=True) / 127
        scale = np.where(scale > 0, scale, 1.0)
        q = (np.clip(np.rint(blocks / scale), -127, 127) + 128).astype(np.uint8)
        return q, scale.astype(np.float32).ravel(), np.full(n * (k // block), 128, np.uint8), k
    q, d, z, r = q4_1(blocks)
    if kind == "q4":
        return (*pack(q, d, z), k)
    width = block_sum_width(k, block)
    rest = np.zeros((n, width))
    rest[:, : k // block] = r + d * (8 - z)  # r8 = m + 8*d
    qs, scales = [q], [d]
    for _ in range(2):
        rq, rs, dequantized = q4_symmetric(rest.reshape(n, width // block, block))
        qs.append(rq), scales.append(rs)
        rest = rest - dequantized.reshape(n, width)
    return (*pack(np.concatenate(qs, 1), np.concatenate(scales, 1), None), k + 2 * width)


def quantize_blockwise(model, plan, block=32, accuracy_level=4):
    """Every MatMul with a weight initializer for which `plan(node name)` is `q8`, `q4` or `q4-exact` becomes
    MatMulNBits (see block_quantize). A `q4-exact` product reads its input with x's block sums appended, made once
    per input (x @ S, S summing each block, then Concat) and shared by the products that read it."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, dropped, augmented, summers = [], set(), {}, set()
    for node in graph.node:
        kind = plan(node.name) if node.op_type == "MatMul" and node.input[1] in inits else None
        if kind is None:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        k, n = weight.shape
        packed, scales, zero_points, k_in = block_quantize(weight, kind, block)
        base, x = node.input[1], node.input[0]
        bits = 8 if kind == "q8" else 4
        graph.initializer.extend([numpy_helper.from_array(packed, base + f"_q{bits}"),
                                  numpy_helper.from_array(scales, base + "_scales")])
        inputs = [base + f"_q{bits}", base + "_scales"]
        if zero_points is not None:
            graph.initializer.append(numpy_helper.from_array(zero_points, base + "_zero_points"))
            inputs.append(base + "_zero_points")
        dropped.add(base)
        if kind == "q4-exact":
            if x not in augmented:
                summer = f"block_summer_{k}"  # one per width of input, shared
                if summer not in summers:
                    width = block_sum_width(k, block)
                    sums = np.zeros((k, width), np.float32)
                    sums[np.arange(k), np.arange(k) // block] = 1
                    graph.initializer.append(numpy_helper.from_array(np.tile(sums, (1, 2)), summer))
                    summers.add(summer)
                nodes.append(helper.make_node("MatMul", [x, summer], [x + "_block_sums"]))
                nodes.append(helper.make_node("Concat", [x, x + "_block_sums"], [x + "_with_block_sums"], axis=-1))
                augmented[x] = x + "_with_block_sums"
            x = augmented[x]
        nodes.append(helper.make_node("MatMulNBits", [x, *inputs], list(node.output), name=node.name, domain="com.microsoft",
                                      K=k_in, N=n, bits=bits, block_size=block, accuracy_level=accuracy_level))
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
        k, n = w.shape
        q, d, z, _ = q4_1(w.T.reshape(n, k // 32, 32))
        dequantized = ((q - z[..., None]) * d[..., None]).reshape(n, k).T
        x = inputs[node.name].astype(np.float64)
        errors[node.name] = float(np.linalg.norm(x @ (w - dequantized)) / np.linalg.norm(x @ w))
    return errors


def int4_mixed(fp32, out, calibration_text):
    """The fewest exact projections whose perplexity on the calibration text stays within CALIBRATION_PPL_RATIO of
    FP32's: the exact form costs two small nodes per input (its block sums) and a wider product."""
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
