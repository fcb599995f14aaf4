"""One held-out set of a model as recipes of raw files, for the SDK's runner on any device
(`openautoglm-bench --verdict`), written by `cargo xtask models verdicts`:

    python test_set.py --held-out held_out.json --recipe recipe.json --set test --out DIR

Apart from held_out.py so that what only feeds the verdicts does not remake the variants (held_out.py is part of
their stamp).
"""
import json
import os

import numpy as np

import held_out
from recipe_inputs import recipe_input

RECIPE_TYPES = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32"}


def write_set(held_out_path, recipe_path, name, out_dir):
    """Each input of set `name` as a recipe of raw files (out_dir/i/recipe.json), listed in out_dir/set.json: what the
    SDK's runner reads on any device (`openautoglm-bench --verdict`)."""
    with open(recipe_path) as f:
        feeds = {spec["name"]: recipe_input(spec, os.path.dirname(recipe_path)) for spec in json.load(f)}
    sets, source = held_out.load(held_out_path, feeds)
    listed = []
    for i, sample in enumerate(sets[name]):
        os.makedirs(os.path.join(out_dir, str(i)), exist_ok=True)
        recipe = []
        for input_name, value in sample.items():
            value = np.array(value, order="C")  # (ascontiguousarray would make a scalar 1-d)
            file = f"{input_name.replace('/', '_')}.bin"
            value.astype(value.dtype.newbyteorder("<")).tofile(os.path.join(out_dir, str(i), file))
            recipe.append({"name": input_name, "type": RECIPE_TYPES[value.dtype], "shape": list(value.shape),
                           "file": file})
        with open(os.path.join(out_dir, str(i), "recipe.json"), "w") as f:
            json.dump(recipe, f)
        listed.append(f"{i}/recipe.json")
    with open(os.path.join(out_dir, "set.json"), "w") as f:
        json.dump(listed, f)
    return source


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="writes one held-out set as runner recipes")
    p.add_argument("--held-out", default="")
    p.add_argument("--recipe", required=True)
    p.add_argument("--set", default="test")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    print(write_set(a.held_out, a.recipe, a.set, a.out))
