"""Input recipes (benchmarks/models.json `inputs`) as numpy arrays: one definition, imported by the python-ort peer
(benchmarks/peers/python_ort.py) and the variant maker (prepare_variants.py), byte-identical to what the Rust runner
(core/src/bin/openautoglm-bench.rs) feeds. xtask runs every Python tool with this directory on PYTHONPATH.
"""
import math
import os

import numpy as np

TYPES = {"f32": np.float32, "i64": np.int64, "i32": np.int32}


def recipe_input(spec, recipe_dir):
    """`values` (repeated), `fill`, `tones` or `file`, exactly as the Rust runner builds them."""
    shape = spec["shape"]
    if "file" in spec:
        return np.fromfile(os.path.join(recipe_dir, spec["file"]), dtype=TYPES[spec["type"]]).reshape(shape)
    count = int(np.prod(shape)) if shape else 1
    if "values" in spec:
        values = [spec["values"][i % len(spec["values"])] for i in range(count)]
    elif "fill" in spec:
        values = [spec["fill"]] * count
    else:
        sr = spec.get("sample_rate", 16000.0)
        values = [sum(a * math.sin(2 * math.pi * f * i / sr) for f, a in spec["tones"]) for i in range(count)]
    return np.array(values, dtype=np.float64).astype(TYPES[spec["type"]]).reshape(shape)
