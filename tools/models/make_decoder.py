"""A Llama-architecture GGUF (SmolLM2-135M-Instruct) as an ONNX decoder with KV cache, with its tokenizer.json and
chat template. numpy + onnx + gguf only (no torch). Driven by `cargo xtask models prepare smollm2`, in the
xtask-managed venv.

    python make_decoder.py --gguf M.gguf --out DIR            # DIR/fp32.onnx (+ .data), tokenizer.json, chat_template.jinja
    python make_decoder.py --gguf M.gguf --out DIR --tiny     # same layout and tokenizer, 2 small random layers
    python make_decoder.py ... --attention decomposed         # optimum's form (plain ONNX attention, position_ids)

I/O in the usual optimum names: input_ids [b, s], attention_mask [b, past + s] (int64), past_key_values.N.key/.value
[b, kv_heads, past, head_dim] in, logits [b, s, vocab] and present.N.key/.value out. The default (GroupQueryAttention)
form takes positions from the mask and may share past and present buffers (decoder.json says so); the decomposed form
also takes position_ids. llama.cpp stores Q and K rows permuted for its rotary layout; they are un-permuted here for
the Hugging Face (rotate-half) form that ONNX Runtime and onnxruntime-genai expect.
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

def gguf_model(path, with_weights=True):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    fields = {}
    for name, field in reader.fields.items():
        try:
            fields[name] = field.contents()
        except Exception:  # noqa: BLE001  (a few array fields have no plain form; not needed here)
            pass
    if not with_weights:
        return fields, {}
    weights = {t.name: dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)]).astype(np.float32)
               for t in reader.tensors}
    return fields, weights


def config_from(fields):
    arch = fields["general.architecture"]
    return {
        "layers": int(fields[f"{arch}.block_count"]),
        "hidden": int(fields[f"{arch}.embedding_length"]),
        "intermediate": int(fields[f"{arch}.feed_forward_length"]),
        "heads": int(fields[f"{arch}.attention.head_count"]),
        "kv_heads": int(fields[f"{arch}.attention.head_count_kv"]),
        "rope_theta": float(fields[f"{arch}.rope.freq_base"]),
        "eps": float(fields[f"{arch}.attention.layer_norm_rms_epsilon"]),
        "vocab": int(fields.get(f"{arch}.vocab_size", len(fields["tokenizer.ggml.tokens"]))),
        "max_positions": int(fields[f"{arch}.context_length"]),
        "bos": int(fields["tokenizer.ggml.bos_token_id"]),
        "eos": int(fields["tokenizer.ggml.eos_token_id"]),
    }


def unpermute(w, heads):
    """Inverse of llama.cpp's convert permute: rows back to the rotate-half order."""
    out, inp = w.shape
    return w.reshape(heads, out // heads // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def tokenizer_json(fields):
    """The GGUF's byte-level BPE as a Hugging Face tokenizer.json (SmolLM's pre-tokenizer: single digits, then GPT-2)."""
    tokens = [str(t) for t in fields["tokenizer.ggml.tokens"]]
    types = [int(t) for t in fields["tokenizer.ggml.token_type"]]
    merges = [str(m) for m in fields["tokenizer.ggml.merges"]]
    control = 3
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True}
            for i, (tok, ty) in enumerate(zip(tokens, types)) if ty == control
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {tok: i for i, tok in enumerate(tokens)},
                  "merges": [m.split(" ", 1) for m in merges]},
    }


class Graph:
    """A small builder: unique names, initializers, nodes."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, value, hint="c", dtype=np.float32):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, array, name):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names


LAST_ONLY = "logits_last_only"


def last_positions(g, x):
    """x [b, s, h] -> [b, 1, h] when `logits_last_only` is 1, else all of x: the hidden states the LM head sees."""
    g.inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), LAST_ONLY))
    starts = g.op("Neg", [LAST_ONLY])
    return g.op("Slice", [x, starts, g.const([2**62], "end", np.int64), g.const([1], "axis", np.int64)])


def graph_io(cfg, position_ids):
    """The decoder's inputs and outputs, in optimum's names and shapes."""
    hd, kv_heads = cfg["hidden"] // cfg["heads"], cfg["kv_heads"]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
    ]
    if position_ids:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]))
    # `logits_last_only` (int64 [1], default 0) is an input with a default value: 1 gives the last position's logits
    # only, so a prefill runs the LM head once instead of once per prompt token (49,152 floats each). Runtimes that do
    # not know it (onnxruntime-genai) leave it at 0 and get every position's logits, as they expect.
    inputs.append(helper.make_tensor_value_info(LAST_ONLY, TensorProto.INT64, [1]))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "logits_length", cfg["vocab"]])]
    for i in range(cfg["layers"]):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch_size", kv_heads, "past_sequence_length", hd]))
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, ["batch_size", kv_heads, "total_sequence_length", hd]))
    return inputs, outputs


def build(cfg, weights, out_path):
    """The decoder in ONNX Runtime's own LLM form (as onnxruntime-genai's model builder writes it): RMS norms as
    SimplifiedLayerNormalization, one packed QKV projection, and GroupQueryAttention doing the rotary embedding, the
    causal mask and the KV cache append in one kernel. Far fewer nodes than the decomposed form, which matters on a
    phone: a decode step is ~15 nodes per layer instead of ~45, each with its own dispatch cost."""
    g = Graph()
    hd = cfg["hidden"] // cfg["heads"]
    heads, kv_heads, layers = cfg["heads"], cfg["kv_heads"], cfg["layers"]

    inputs, outputs = graph_io(cfg, position_ids=False)

    def rms_norm(x, w):
        return g.op("SimplifiedLayerNormalization", [x, w], axis=-1, epsilon=cfg["eps"], stash_type=1)

    # GroupQueryAttention's sequence inputs, from the attention mask (as genai's builder does): the valid length - 1
    # per row, and the total length.
    seqlens_k = g.op("Cast", [g.op("Sub", [g.op("ReduceSum", ["attention_mask", g.const([1], "axes", np.int64)],
                                                keepdims=0), g.const(1, "one", np.int64)])], to=TensorProto.INT32)
    total = g.op("Cast", [g.op("Gather", [g.op("Shape", ["attention_mask"]), g.const(1, "one", np.int64)])],
                 to=TensorProto.INT32)
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    angles = np.outer(np.arange(cfg["max_positions"], dtype=np.float64), inv)
    cos_cache, sin_cache = g.const(np.cos(angles), "cos_cache"), g.const(np.sin(angles), "sin_cache")

    x = g.op("Gather", [g.weight(weights["token_embd.weight"], "embed_tokens"), "input_ids"])
    for i in range(layers):
        p = f"blk.{i}."
        w = {k: weights[p + k] for k in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")}
        qkv_weight = np.concatenate([unpermute(w["attn_q.weight"], heads), unpermute(w["attn_k.weight"], kv_heads),
                                     w["attn_v.weight"]]).T
        h = rms_norm(x, g.weight(weights[p + "attn_norm.weight"], f"layers.{i}.input_norm"))
        qkv = g.op("MatMul", [h, g.weight(qkv_weight, f"layers.{i}.qkv_proj")])
        attn = g.op("GroupQueryAttention",
                    [qkv, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total,
                     cos_cache, sin_cache],
                    outputs=1, domain="com.microsoft", num_heads=heads, kv_num_heads=kv_heads, do_rotary=1,
                    rotary_interleaved=0, scale=float(1.0 / np.sqrt(hd)))
        # GroupQueryAttention's KV outputs are the graph's present.N tensors.
        g.nodes[-1].output.extend([f"present.{i}.key", f"present.{i}.value"])
        x = g.op("Add", [x, g.op("MatMul", [attn, g.weight(w["attn_output.weight"].T, f"layers.{i}.o_proj")])])
        h = rms_norm(x, g.weight(weights[p + "ffn_norm.weight"], f"layers.{i}.post_attention_norm"))
        gate_up = g.op("MatMul", [h, g.weight(np.concatenate([w["ffn_gate.weight"], w["ffn_up.weight"]]).T,
                                              f"layers.{i}.gate_up_proj")])
        gate, up = g.op("Split", [gate_up, g.const([cfg["intermediate"]] * 2, "split", np.int64)], outputs=2, axis=-1)
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate])])  # SiLU
        x = g.op("Add", [x, g.op("MatMul", [g.op("Mul", [act, up]),
                                           g.weight(w["ffn_down.weight"].T, f"layers.{i}.down_proj")])])
    x = rms_norm(x, g.weight(weights["output_norm.weight"], "norm"))
    head = weights.get("output.weight", weights["token_embd.weight"])  # tied embeddings
    x = last_positions(g, x)
    g.nodes.append(helper.make_node("MatMul", [x, g.weight(head.T, "lm_head")], ["logits"], name="lm_head"))

    graph = helper.make_graph(g.nodes, "decoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8, producer_name="openautoglm make_decoder.py")
    # No onnx.checker: SimplifiedLayerNormalization is ONNX Runtime's (in the default domain), unknown to onnx.
    # Loading the model in ONNX Runtime, as check_decoder.py does for every variant, is the check that matters.
    onnx.save(model, out_path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=os.path.basename(out_path) + ".data", size_threshold=1024)


def build_decomposed(cfg, weights, out_path):
    """The decoder as optimum exports one: attention from plain ONNX ops, positions as an input, each step's KV cache
    concatenated onto the last (`present` one position longer than `past`). Kept for the generator's other KV-cache
    path, which serves decoders of this form."""
    g = Graph()
    hd = cfg["hidden"] // cfg["heads"]
    heads, kv_heads, layers = cfg["heads"], cfg["kv_heads"], cfg["layers"]

    inputs, outputs = graph_io(cfg, position_ids=True)

    def rms_norm(x, w):
        sq = g.op("Mul", [x, x])
        mean = g.op("ReduceMean", [sq, g.const([-1], "axes", np.int64)], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [mean, g.const(cfg["eps"], "eps")])])
        return g.op("Mul", [g.op("Div", [x, std]), w])

    def linear(x, w_name):
        return g.op("MatMul", [x, w_name])

    # Rotary tables, gathered by position: cos/sin [b, 1, s, hd/2].
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    angles = np.outer(np.arange(cfg["max_positions"], dtype=np.float64), inv)
    cos = g.op("Unsqueeze", [g.op("Gather", [g.const(np.cos(angles), "cos_table"), "position_ids"]),
                             g.const([1], "axis", np.int64)])
    sin = g.op("Unsqueeze", [g.op("Gather", [g.const(np.sin(angles), "sin_table"), "position_ids"]),
                             g.const([1], "axis", np.int64)])
    half = g.const([hd // 2, hd // 2], "split", np.int64)

    def rotate(x):  # x [b, h, s, hd]: rotate-half form
        x1, x2 = g.op("Split", [x, half], outputs=2, axis=-1)
        return g.op("Concat", [g.op("Sub", [g.op("Mul", [x1, cos]), g.op("Mul", [x2, sin])]),
                               g.op("Add", [g.op("Mul", [x2, cos]), g.op("Mul", [x1, sin])])], axis=-1)

    # Additive mask [b, 1, s, total]: causal over the new positions, and the caller's padding.
    shape_ids = g.op("Shape", ["input_ids"])
    seq = g.op("Gather", [shape_ids, g.const(1, "one", np.int64)])
    total = g.op("Gather", [g.op("Shape", ["attention_mask"]), g.const(1, "one", np.int64)])
    past = g.op("Sub", [total, seq])
    key_pos = g.op("Range", [g.const(0, "zero", np.int64), total, g.const(1, "one", np.int64)])
    query_pos = g.op("Unsqueeze", [g.op("Add", [g.op("Range", [g.const(0, "zero", np.int64), seq,
                                                                g.const(1, "one", np.int64)]), past]),
                                   g.const([1], "axis", np.int64)])
    causal = g.op("LessOrEqual", [key_pos, query_pos])  # [s, total]
    padding = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.BOOL), g.const([1, 2], "axes", np.int64)])
    allowed = g.op("And", [causal, padding])  # [b, 1, s, total]
    mask = g.op("Where", [allowed, g.const(0.0, "zero_f"), g.const(-1e4, "mask_value")])

    batch = g.op("Gather", [shape_ids, g.const(0, "zero", np.int64)])
    unsq0 = g.const([0], "axis", np.int64)

    def dims(*parts):
        return g.op("Concat", [p if isinstance(p, str) else g.const([p], "dim", np.int64) for p in parts], axis=0)

    b1, s1 = g.op("Unsqueeze", [batch, unsq0]), g.op("Unsqueeze", [seq, unsq0])
    q_shape, kv_shape = dims(b1, s1, heads, hd), dims(b1, s1, kv_heads, hd)
    out_shape = dims(b1, s1, cfg["hidden"])
    scale = g.const(1.0 / np.sqrt(hd), "scale")

    x = g.op("Gather", [g.weight(weights["token_embd.weight"], "embed_tokens"), "input_ids"])
    for i in range(layers):
        p = f"blk.{i}."
        w = {k: weights[p + k] for k in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")}
        wq = g.weight(unpermute(w["attn_q.weight"], heads).T, f"layers.{i}.q_proj")
        wk = g.weight(unpermute(w["attn_k.weight"], kv_heads).T, f"layers.{i}.k_proj")
        wv = g.weight(w["attn_v.weight"].T, f"layers.{i}.v_proj")
        wo = g.weight(w["attn_output.weight"].T, f"layers.{i}.o_proj")
        h = rms_norm(x, g.weight(weights[p + "attn_norm.weight"], f"layers.{i}.input_norm"))
        q = g.op("Transpose", [g.op("Reshape", [linear(h, wq), q_shape])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [linear(h, wk), kv_shape])], perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [linear(h, wv), kv_shape])], perm=[0, 2, 1, 3])
        q, k = rotate(q), rotate(k)
        for kind, new in (("key", k), ("value", v)):
            g.nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.{kind}", new], [f"present.{i}.{kind}"],
                                            name=f"present.{i}.{kind}", axis=2))
        keys, values = f"present.{i}.key", f"present.{i}.value"
        if heads != kv_heads:  # grouped-query attention: each KV head serves heads/kv_heads query heads
            groups = heads // kv_heads
            total1 = g.op("Unsqueeze", [total, unsq0])
            expand = dims(b1, kv_heads, groups, total1, hd)
            flat = dims(b1, heads, total1, hd)
            keys = g.op("Reshape", [g.op("Expand", [g.op("Unsqueeze", [keys, g.const([2], "axis", np.int64)]), expand]), flat])
            values = g.op("Reshape", [g.op("Expand", [g.op("Unsqueeze", [values, g.const([2], "axis", np.int64)]), expand]), flat])
        scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [keys], perm=[0, 1, 3, 2])]), scale])
        probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
        attn = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, values])], perm=[0, 2, 1, 3]), out_shape])
        x = g.op("Add", [x, linear(attn, wo)])
        h = rms_norm(x, g.weight(weights[p + "ffn_norm.weight"], f"layers.{i}.post_attention_norm"))
        gate = linear(h, g.weight(w["ffn_gate.weight"].T, f"layers.{i}.gate_proj"))
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate])])  # SiLU
        up = linear(h, g.weight(w["ffn_up.weight"].T, f"layers.{i}.up_proj"))
        x = g.op("Add", [x, linear(g.op("Mul", [act, up]), g.weight(w["ffn_down.weight"].T, f"layers.{i}.down_proj"))])
    x = rms_norm(x, g.weight(weights["output_norm.weight"], "norm"))
    head = weights.get("output.weight", weights["token_embd.weight"])  # tied embeddings
    x = last_positions(g, x)
    g.nodes.append(helper.make_node("MatMul", [x, g.weight(head.T, "lm_head")], ["logits"], name="lm_head"))

    graph = helper.make_graph(g.nodes, "decoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8,
                              producer_name="openautoglm make_decoder.py")
    onnx.checker.check_model(model, full_check=False)
    onnx.save(model, out_path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=os.path.basename(out_path) + ".data", size_threshold=1024)


def tiny_weights(cfg, seed=0):
    """Random weights of the real layout at a tiny size, for fast tests."""
    rng = np.random.default_rng(seed)
    hd = cfg["hidden"] // cfg["heads"]
    w = {"token_embd.weight": rng.standard_normal((cfg["vocab"], cfg["hidden"])) * 0.5,
         "output_norm.weight": np.ones(cfg["hidden"])}
    for i in range(cfg["layers"]):
        p = f"blk.{i}."
        for name, shape in [("attn_q.weight", (cfg["heads"] * hd, cfg["hidden"])),
                            ("attn_k.weight", (cfg["kv_heads"] * hd, cfg["hidden"])),
                            ("attn_v.weight", (cfg["kv_heads"] * hd, cfg["hidden"])),
                            ("attn_output.weight", (cfg["hidden"], cfg["heads"] * hd)),
                            ("ffn_gate.weight", (cfg["intermediate"], cfg["hidden"])),
                            ("ffn_up.weight", (cfg["intermediate"], cfg["hidden"])),
                            ("ffn_down.weight", (cfg["hidden"], cfg["intermediate"]))]:
            w[p + name] = rng.standard_normal(shape) / np.sqrt(shape[1])
        w[p + "attn_norm.weight"] = np.ones(cfg["hidden"])
        w[p + "ffn_norm.weight"] = np.ones(cfg["hidden"])
    return {k: v.astype(np.float32) for k, v in w.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gguf", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tiny", action="store_true", help="2 random layers of hidden 64 (the real tokenizer)")
    p.add_argument("--attention", choices=["gqa", "decomposed"], default="gqa",
                   help="gqa: ONNX Runtime's GroupQueryAttention, shared KV buffer (default); decomposed: optimum's form")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    fields, weights = gguf_model(args.gguf, with_weights=not args.tiny)
    cfg = config_from(fields)
    if args.tiny:
        cfg.update(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, max_positions=2048)
        weights = tiny_weights(cfg)
    (build if args.attention == "gqa" else build_decomposed)(cfg, weights, os.path.join(args.out, "fp32.onnx"))
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(fields), f, ensure_ascii=False)
    with open(os.path.join(args.out, "chat_template.jinja"), "w") as f:
        f.write(str(fields["tokenizer.chat_template"]))
    with open(os.path.join(args.out, "decoder.json"), "w") as f:
        json.dump({**cfg, "head_dim": cfg["hidden"] // cfg["heads"],
                   "past_present_share_buffer": args.attention == "gqa", "last_logits_input": LAST_ONLY}, f, indent=1)


if __name__ == "__main__":
    main()
