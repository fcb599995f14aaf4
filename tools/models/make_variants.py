"""Precision variants of a decoder made by make_decoder.py, with ONNX Runtime's own tools:

- fp16.onnx: float16 weights and I/O (logits and KV cache in float16);
- int8.onnx: per-tensor dynamic INT8 weights of the projections (per-channel was seen to break SmolLM2's text; the
  attention products have no weights, and the LM head keeps FP32: quantizing it changed the answers);
- int4.onnx: 4-bit blockwise weights (MatMulNBits, block 32, symmetric; accuracy level 4 = int8 compute), with
  ONNX Runtime's quantizer as it stands: measured (llm_quality.py) at 1.47x FP32's perplexity, looping in 5 of 6
  chat turns. Its asymmetric mode is no better (1.49x): its zero points are integers;
- int4-mixed.onnx: per layer, the precision that keeps the text: the 210 projections at 4 bits and the LM head at
  8 bits, both blockwise (32) and asymmetric with float zero points (MatMulNBits takes them: the form ONNX Runtime's
  HQQ writes), the range of each block from its min and max. SmolLM2's weights come from a Q4_1 GGUF (blocks of 32,
  w = d*q + m) whose m is not a multiple of d, so integer zero points move every block; float ones reproduce them.

    python make_variants.py --dir DIR [--only fp16,int8,int4,int4-mixed]
"""
import argparse
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxruntime.transformers.float16 import convert_float_to_float16


def save(model, path):
    data = os.path.basename(path) + ".data"
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data,
              size_threshold=1024)


def block_quantize(weight, bits, block):
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
    q = np.clip(np.rint((blocks - low) / scale), 0, 15).astype(np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    zero_points = np.zeros(n * ((k // block + 1) // 2), np.uint8)
    return packed, scale.astype(np.float32).ravel(), zero_points, low[..., 0].T.astype(np.float32)


def quantize_blockwise(model, bits_of, block=32, accuracy_level=4):
    """Every MatMul with a weight initializer for which `bits_of(node name)` is 4 or 8 becomes MatMulNBits, exact
    for weights that were Q4_1 / Q8_0 blocks. MatMulNBits' zero points are integers, so a 4-bit block's float
    minimum is added apart: x @ W = MatMulNBits(x, q, scale, 0) + (x summed per block) @ minima, a product 1/32 the
    size of the weight."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, dropped, block_sums = [], set(), {}
    for node in graph.node:
        bits = bits_of(node.name) if node.op_type == "MatMul" and node.input[1] in inits else None
        if bits is None:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        k, n = weight.shape
        packed, scales, zero_points, minima = block_quantize(weight, bits, block)
        base, x = node.input[1], node.input[0]
        graph.initializer.extend([numpy_helper.from_array(packed, base + f"_q{bits}"),
                                  numpy_helper.from_array(scales, base + "_scales"),
                                  numpy_helper.from_array(zero_points, base + "_zero_points")])
        dropped.add(base)
        product = node.output[0] if minima is None else base + "_blocks_product"
        nodes.append(helper.make_node("MatMulNBits", [x, base + f"_q{bits}", base + "_scales", base + "_zero_points"],
                                      [product], name=node.name, domain="com.microsoft", K=k, N=n, bits=bits,
                                      block_size=block, accuracy_level=accuracy_level))
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--only", default="fp16,int8,int4,int4-mixed")
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
        model = quantize_blockwise(onnx.load(fp32), lambda name: 8 if name == "lm_head" else 4)
        save(model, os.path.join(args.dir, "int4-mixed.onnx"))


if __name__ == "__main__":
    main()
