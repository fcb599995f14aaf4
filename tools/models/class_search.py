"""Candidates for a mixed variant on another numerics class, where the host's one fails there (`cargo xtask models
verdicts`): the host search's FP32 nodes plus the j most sensitive blocks (the host search's ranking), for j = 1, 2,
... Each keeps more of the graph at FP32 than the last; xtask runs them on the class's device (ARM64 under qemu) on
the selection set, bisecting for the first that passes there.

    python class_search.py --variants DIR/variants.json --name fp16-mixed --fp32 DIR/fp32.onnx \
        --recipe DIR/recipe.json --held-out DIR/held_out.json --out DIR/candidates

Writes OUT/c<j>.onnx and OUT/candidates.json ([{"file", "nodes_at_fp32", "kept_fp32"}], in order).
Apart from mixed_precision.py (whose helpers it uses) so that the host's variants are not remade by it.
"""
import argparse
import json
import os

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.transformers.float16 import convert_float_to_float16

import held_out
from mixed_precision import BLOCKS, Reader, blocks_of, name_nodes, unique_names, without_round_trips
from recipe_inputs import recipe_input


def build(kind, named, calibration, exclude, per_channel, path):
    if kind == "int8":
        quantize_static(named, path, Reader(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=bool(per_channel), nodes_to_exclude=exclude)
    else:
        onnx.save(without_round_trips(unique_names(convert_float_to_float16(
            onnx.load(named), keep_io_types=True, node_block_list=exclude))), path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variants", required=True)
    p.add_argument("--name", required=True, help="the host's mixed variant: fp16-mixed or int8-mixed")
    p.add_argument("--fp32", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--held-out", default="")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.variants) as f:
        host = json.load(f)["variants"][args.name]
    kind = args.name.split("-")[0]
    per_channel = host.get("per_channel")
    gains = host["block_gains"][str(per_channel) if kind == "int8" else "None"]
    with open(args.recipe) as f:
        feeds = {spec["name"]: recipe_input(spec, os.path.dirname(args.recipe)) for spec in json.load(f)}
    sets, _ = held_out.load(args.held_out, feeds)
    os.makedirs(args.out, exist_ok=True)
    named = name_nodes(args.fp32, os.path.join(args.out, "named.onnx"))
    blocks = blocks_of(onnx.load(named), BLOCKS)
    order = sorted(range(len(blocks)), key=lambda b: gains[b], reverse=True)
    kept, made = list(host["kept_fp32"]), []
    for j, b in enumerate(order, start=1):
        added = [n for n in blocks[b] if n not in kept]
        if not added:
            continue
        kept += added
        file = f"c{j}.onnx"
        try:
            build(kind, named, sets["calibration"], kept, per_channel, os.path.join(args.out, file))
        except Exception as e:  # a configuration the tools cannot make: the next keeps more
            print(f"c{j}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        made.append({"file": file, "nodes_at_fp32": len(kept), "kept_fp32": list(kept)})
    with open(os.path.join(args.out, "candidates.json"), "w") as f:
        json.dump(made, f)


if __name__ == "__main__":
    main()
