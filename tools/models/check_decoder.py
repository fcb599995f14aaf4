"""Checks a decoder made by make_decoder.py (and its variants) on ONNX Runtime:

- greedy decoding with the KV cache equals greedy decoding by full recomputation, token for token, for a few prompts;
- (with --expect) the answer to a chat question contains the expected text.

    python check_decoder.py --dir DIR --model fp32.onnx [--tokens 24] [--question Q --expect Paris]

Prints one JSON line: the prompts, the tokens and text each way, and whether they matched.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from minijinja import Environment
from tokenizers import Tokenizer

PROMPTS = ["Write one sentence about the sea.", "2 + 2 ="]


class Decoder:
    def __init__(self, path, cfg):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.cfg = cfg
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.dtype = np.float16 if inputs["past_key_values.0.key"].type == "tensor(float16)" else np.float32
        self.position_ids = "position_ids" in inputs

    def empty_past(self):
        shape = (1, self.cfg["kv_heads"], 0, self.cfg["head_dim"])
        return {f"past_key_values.{i}.{k}": np.zeros(shape, self.dtype) for i in range(self.cfg["layers"])
                for k in ("key", "value")}

    def step(self, ids, past, start, last_only=False):
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, start + len(ids)), np.int64), **past}
        if last_only and self.cfg.get("last_logits_input"):
            # As the generator runs it: the LM head on the last position only (the recomputation keeps them all).
            feeds[self.cfg["last_logits_input"]] = np.array([1], np.int64)
        if self.position_ids:
            feeds["position_ids"] = np.arange(start, start + len(ids), dtype=np.int64)[None]
        outputs = self.session.run(None, feeds)
        names = [o.name for o in self.session.get_outputs()]
        present = {n.replace("present", "past_key_values"): v for n, v in zip(names[1:], outputs[1:])}
        return outputs[0][0, -1], present

    def greedy_cached(self, prompt_ids, n):
        logits, past = self.step(prompt_ids, self.empty_past(), 0, last_only=True)
        out = []
        for _ in range(n):
            token = int(np.argmax(logits))
            out.append(token)
            if token == self.cfg["eos"]:
                break
            logits, past = self.step([token], past, len(prompt_ids) + len(out) - 1, last_only=True)
        return out

    def greedy_recompute(self, prompt_ids, n):
        out = []
        for _ in range(n):
            logits, _ = self.step(prompt_ids + out, self.empty_past(), 0)
            token = int(np.argmax(logits))
            out.append(token)
            if token == self.cfg["eos"]:
                break
        return out


def chat_prompt(directory, question):
    with open(os.path.join(directory, "chat_template.jinja")) as f:
        template = f.read()
    env = Environment(templates={"chat": template})
    return env.render_template("chat", messages=[{"role": "user", "content": question}], add_generation_prompt=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--model", default="fp32.onnx")
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--question", default="What is the capital of France?")
    p.add_argument("--expect", default="")
    args = p.parse_args()
    with open(os.path.join(args.dir, "decoder.json")) as f:
        cfg = json.load(f)
    tokenizer = Tokenizer.from_file(os.path.join(args.dir, "tokenizer.json"))
    decoder = Decoder(os.path.join(args.dir, args.model), cfg)
    results, ok = [], True
    for question in [args.question, *PROMPTS]:
        ids = tokenizer.encode(chat_prompt(args.dir, question), add_special_tokens=False).ids
        cached, recomputed = decoder.greedy_cached(ids, args.tokens), decoder.greedy_recompute(ids, args.tokens)
        same = cached == recomputed
        ok &= same
        results.append({"prompt": question, "prompt_tokens": len(ids), "cached": cached, "recomputed": recomputed,
                        "match": same, "text": tokenizer.decode(cached, skip_special_tokens=True)})
    answer = results[0]["text"]
    sensible = args.expect.lower() in answer.lower() if args.expect else None
    print(json.dumps({"model": args.model, "cache_equals_recompute": ok, "answer": answer,
                      "expected": args.expect or None, "sensible": sensible, "prompts": results}))
    sys.exit(0 if ok and sensible is not False else 1)


if __name__ == "__main__":
    main()
