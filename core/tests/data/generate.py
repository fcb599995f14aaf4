"""Regenerates the test fixtures shared by the Rust, Kotlin and Swift tests (the outputs are committed).

    cargo xtask fixtures    # runs this in the xtask-managed venv (onnx, numpy, onnxruntime==1.31.1)

Tiny models are built with the `onnx` package. Expected values for the real models are computed here with the
Python onnxruntime package, independently of our engine, from the inputs recorded next to them.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = Path(__file__).parent
MODELS = HERE / "models"
OPSET = [helper.make_opsetid("", 17)]

TYPES = {
    "f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16, "f64": TensorProto.DOUBLE,
    "i8": TensorProto.INT8, "u8": TensorProto.UINT8, "i16": TensorProto.INT16, "u16": TensorProto.UINT16,
    "i32": TensorProto.INT32, "u32": TensorProto.UINT32, "i64": TensorProto.INT64, "u64": TensorProto.UINT64,
    "bool": TensorProto.BOOL, "bf16": TensorProto.BFLOAT16, "string": TensorProto.STRING,
}


def save(model, name):
    model.producer_name = "openautoglm-fixtures"
    onnx.checker.check_model(model)
    onnx.save(model, MODELS / name)


def identity_models():
    # y = Identity(x), x: T[2, 3]: every element type round-trips unchanged.
    for tag, ty in TYPES.items():
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], f"identity_{tag}",
            [helper.make_tensor_value_info("x", ty, [2, 3])], [helper.make_tensor_value_info("y", ty, [2, 3])])
        save(helper.make_model(graph, opset_imports=OPSET, ir_version=8), f"identity_{tag}.onnx")


def accelerator_fallback_model():
    # x[1,4] -> MatMul -> Relu -> (Det of it as 2x2, added back) -> MatMul -> y[1,4]. OpenVINO takes the MatMuls and
    # Relu but not Det: a model whose placement shows the CPU fallback, and that strict mode refuses.
    w = np.full((4, 4), 0.5, dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Reshape", ["b", "square"], ["b2"]), helper.make_node("Det", ["b2"], ["det"]),
        helper.make_node("Add", ["b", "det"], ["c"]), helper.make_node("MatMul", ["c", "W"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "accelerator_fallback", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("W", TensorProto.FLOAT, [4, 4], w.flatten()),
         helper.make_tensor("square", TensorProto.INT64, [2], [2, 2])])
    save(helper.make_model(graph, opset_imports=OPSET, ir_version=8), "accelerator_fallback.onnx")


def matmul_model(name="matmul_dynamic.onnx", weight_scale=1.0):
    # `matmul_reweighted.onnx` is the same graph with other weights: a weights-only change caches must notice.
    # y = x @ W + b with a symbolic batch dim, plus metadata to introspect.
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0 * np.float32(weight_scale)
    b = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("W", TensorProto.FLOAT, [4, 3], w.flatten()), helper.make_tensor("b", TensorProto.FLOAT, [3], b)])
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=8)
    model.model_version = 7
    model.doc_string = "y = x @ W + b"
    model.domain = "ai.openautoglm.tests"
    helper.set_model_props(model, {"author": "openautoglm tests", "purpose": "introspection"})
    save(model, name)
    return {"W": w.flatten().tolist(), "b": b.tolist()}


def multi_io_model():
    # Two inputs of different types with a shared symbolic length, three outputs of different types.
    nodes = [
        helper.make_node("Cast", ["b"], ["b_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["a", "b_f"], ["sum"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Greater", ["a", "zero"], ["positive"]),
        helper.make_node("ReduceSum", ["b"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "multi_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]), helper.make_tensor_value_info("b", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n"]), helper.make_tensor_value_info("positive", TensorProto.BOOL, ["n"]),
         helper.make_tensor_value_info("total", TensorProto.INT64, [])])
    save(helper.make_model(graph, opset_imports=OPSET, ir_version=8), "multi_io.onnx")


def manifest_model(manifest, model_id):
    entry = next(m for m in manifest["models"] if m["id"] == model_id)
    path = Path(sys.argv[1]) / f"{model_id}.onnx"
    return entry, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def recipe_input(spec):
    dtype = {"f32": np.float32, "i64": np.int64}[spec["type"]]
    shape = spec["shape"]
    if "values" in spec:
        return np.array(spec["values"], dtype=dtype).reshape(shape)
    if "fill" in spec:
        return np.full(shape, spec["fill"], dtype=dtype)
    n = int(np.prod(shape))
    sr = spec["sample_rate"]
    t = np.arange(n, dtype=np.float64) / sr
    wave = sum(amp * np.sin(2 * math.pi * freq * t) for freq, amp in spec["tones"])
    return wave.astype(dtype).reshape(shape)


def matmul_chain_model(nodes=400, size=384):
    # y = x @ x @ x ... (400 MatMuls of 384x384, no weights): a run of a few hundred ms, long enough to cancel, time
    # out or preempt part-way in every language's scheduling tests.
    names = [f"h{i}" for i in range(nodes - 1)] + ["y"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", [names[i - 1] if i else "x", "x"], [names[i]]) for i in range(nodes)],
        "matmul_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])])
    save(helper.make_model(graph, opset_imports=OPSET, ir_version=8), "matmul_chain.onnx")


def pairs_model():
    # y = Reshape(x, [-1, 2]) for x: float[n]: runs for even n only, so a warmup with 1 for every dynamic dim fails.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "pairs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 2])])
    save(helper.make_model(graph, opset_imports=OPSET, ir_version=8), "pairs.onnx")


# Element types of the node cases below, as the tests name them.
NODE_TYPES = {TensorProto.STRING: "string", TensorProto.FLOAT: "f32", TensorProto.DOUBLE: "f64",
              TensorProto.INT64: "i64", TensorProto.INT32: "i32", TensorProto.BOOL: "bool"}


def string_node_cases():
    """The ONNX backend node tests with a string input or output that python onnxruntime passes, with its outputs.

    Each case's model goes to models/node/<case>.onnx; string_nodes.json holds its inputs and python onnxruntime's
    outputs (equal to the ONNX reference outputs, checked here), which the SDK's tests must reproduce exactly.
    """
    from onnx import numpy_helper
    root = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    out_dir = MODELS / "node"
    out_dir.mkdir(exist_ok=True)
    cases = {}
    for case in sorted(root.iterdir()):
        model = onnx.load(case / "model.onnx")
        values = list(model.graph.input) + list(model.graph.output)
        types = [v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else None for v in values]
        if TensorProto.STRING not in types or any(t not in NODE_TYPES for t in types):
            continue
        data = case / "test_data_set_0"
        feeds = {i.name: numpy_helper.to_array(onnx.load_tensor(str(data / f"input_{k}.pb")))
                 for k, i in enumerate(model.graph.input)}
        try:
            got = ort.InferenceSession(str(case / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
        except Exception as e:  # python onnxruntime cannot run it either: not a difference between the two
            print(f"  {case.name}: python onnxruntime fails ({type(e).__name__}); not included")
            continue
        want = [numpy_helper.to_array(onnx.load_tensor(str(data / f"output_{k}.pb"))) for k in range(len(got))]
        if not all(g.shape == w.shape and (g == w).all() for g, w in zip(got, want)):
            print(f"  {case.name}: python onnxruntime differs from the reference; not included")
            continue

        def entry(name, array, elem_type):
            kind = NODE_TYPES[elem_type]
            flat = array.flatten()
            items = [x.decode() if isinstance(x, bytes) else str(x) for x in flat] if kind == "string" else flat.tolist()
            return {"name": name, "type": kind, "shape": list(array.shape), "values": items}

        (out_dir / f"{case.name}.onnx").write_bytes((case / "model.onnx").read_bytes())
        cases[case.name] = {
            "inputs": [entry(i.name, feeds[i.name], i.type.tensor_type.elem_type) for i in model.graph.input],
            "outputs": [entry(o.name, g, o.type.tensor_type.elem_type) for o, g in zip(model.graph.output, got)],
        }
    (HERE / "string_nodes.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} string node cases")


def main():
    MODELS.mkdir(exist_ok=True)
    identity_models()
    string_node_cases()
    matmul_chain_model()
    pairs_model()
    expected = {"matmul_dynamic": matmul_model()}
    matmul_model("matmul_reweighted.onnx", weight_scale=-2.0)
    accelerator_fallback_model()
    multi_io_model()

    manifest = json.loads((HERE.parents[2] / "benchmarks" / "models.json").read_text())
    entry, sess = manifest_model(manifest, "minilm-l6-int8")
    feeds = {s["name"]: recipe_input(s) for s in entry["inputs"]}
    (hidden,) = sess.run(["last_hidden_state"], feeds)
    expected["minilm-l6-int8"] = {
        "input_ids": feeds["input_ids"].flatten().tolist(),
        "shape": list(hidden.shape),
        "last_hidden_state": [round(float(v), 6) for v in hidden.flatten()],
    }

    # Silero VAD: four consecutive frames, feeding each step's state into the next.
    entry, sess = manifest_model(manifest, "silero-vad")
    frame_spec = next(s for s in entry["inputs"] if s["name"] == "input")
    audio = recipe_input({**frame_spec, "shape": [4 * 512]})
    state = np.zeros((2, 1, 128), dtype=np.float32)
    probs, state_sums = [], []
    for i in range(4):
        out, state = sess.run(["output", "stateN"], {"input": audio[i * 512:(i + 1) * 512].reshape(1, 512), "state": state,
                                                     "sr": np.array(16000, dtype=np.int64)})
        probs.append(float(out[0, 0]))
        state_sums.append(float(np.abs(state).sum()))
    expected["silero-vad"] = {"frames": 4, "frame_len": 512, "tones": frame_spec["tones"], "sample_rate": 16000,
                              "probabilities": probs, "state_abs_sums": state_sums}

    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(list(MODELS.glob('*.onnx')))} models and expected.json")


if __name__ == "__main__":
    main()
