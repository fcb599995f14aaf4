"""Precision variants of a decoder made by make_decoder.py, with ONNX Runtime's own tools:

- fp16.onnx: float16 weights and I/O (logits and KV cache in float16);
- int8.onnx: per-tensor dynamic INT8 weights of the projections (per-channel was seen to break SmolLM2's text; the
  attention products have no weights, and the LM head keeps FP32: quantizing it changed the answers);
- int4.onnx: 4-bit blockwise weights (MatMulNBits, block 32, symmetric; accuracy level 4 = int8 compute).

    python make_variants.py --dir DIR [--only fp16,int8,int4]
"""
import argparse
import os

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxruntime.transformers.float16 import convert_float_to_float16


def save(model, path):
    data = os.path.basename(path) + ".data"
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data,
              size_threshold=1024)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--only", default="fp16,int8,int4")
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


if __name__ == "__main__":
    main()
