"""onnxruntime-genai as the generation peer: the same ONNX decoder file, the same prompt tokens (the model's own
tokenizer.json and chat template), greedy, a fixed output length, the same thread count. Timing follows genai's
model_benchmark: time to first token = append_tokens (the prefill) + the first generate_next_token; then one
generate_next_token per token.

    python genai_generate.py --dir LLM_DIR --model int4.onnx --question Q --tokens 128 --runs 3 --threads 2 --out R.json
"""
import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
import onnxruntime_genai as og
from minijinja import Environment
from tokenizers import Tokenizer


def genai_config(cfg, model_file, threads, max_length, min_length):
    """genai_config.json for a decoder in make_decoder.py's layout (optimum names). GroupQueryAttention decoders
    share their past and present KV buffers (genai's default for them, as its model builder writes it); decomposed
    ones concatenate, so they cannot."""
    return {
        "model": {
            "bos_token_id": 1, "eos_token_id": cfg["eos"], "pad_token_id": cfg["eos"],
            "context_length": cfg["max_positions"], "vocab_size": cfg["vocab"], "type": "llama",
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "intra_op_num_threads": threads,
                                    "provider_options": []},
                "filename": model_file,
                "head_size": cfg["head_dim"], "hidden_size": cfg["hidden"],
                "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"],
                "num_hidden_layers": cfg["layers"],
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "position_ids": "position_ids", "past_key_names": "past_key_values.%d.key",
                           "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
            },
        },
        "search": {"do_sample": False, "num_beams": 1, "max_length": max_length, "min_length": min_length,
                   "past_present_share_buffer": bool(cfg.get("past_present_share_buffer", False)),
                   "temperature": 1.0, "top_k": 1, "top_p": 1.0,
                   "repetition_penalty": 1.0, "early_stopping": True, "length_penalty": 1.0,
                   "no_repeat_ngram_size": 0, "num_return_sequences": 1, "diversity_penalty": 0.0},
    }


def prompt_ids(directory, question):
    with open(os.path.join(directory, "chat_template.jinja")) as f:
        template = f.read()
    text = Environment(templates={"chat": template}).render_template(
        "chat", messages=[{"role": "user", "content": question}], add_generation_prompt=True)
    return Tokenizer.from_file(os.path.join(directory, "tokenizer.json")).encode(text, add_special_tokens=False).ids


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(os.path.join(args.dir, "decoder.json")) as f:
        cfg = json.load(f)
    ids = prompt_ids(args.dir, args.question)
    total = len(ids) + args.tokens

    # genai reads genai_config.json next to the model: a scratch directory with links to the decoder's files.
    scratch = tempfile.mkdtemp(prefix="openautoglm-genai-")
    try:
        for name in (args.model, args.model + ".data"):
            if os.path.exists(os.path.join(args.dir, name)):
                os.symlink(os.path.join(os.path.abspath(args.dir), name), os.path.join(scratch, name))
        with open(os.path.join(scratch, "genai_config.json"), "w") as f:
            json.dump(genai_config(cfg, args.model, args.threads, total, total), f)
        t = time.perf_counter()
        model = og.Model(scratch)
        load_ms = (time.perf_counter() - t) * 1e3
        runs = []
        for run in range(args.runs + 1):  # the first is an untimed warmup, as in genai's model_benchmark
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=total, min_length=total, do_sample=False)
            generator = og.Generator(model, params)
            t = time.perf_counter()
            generator.append_tokens(np.array(ids, dtype=np.int32))
            generator.generate_next_token()
            ttft = (time.perf_counter() - t) * 1e3
            steps = []
            while not generator.is_done():
                t = time.perf_counter()
                generator.generate_next_token()
                steps.append((time.perf_counter() - t) * 1e3)
            tokens = [int(x) for x in generator.get_sequence(0)][len(ids):]
            del generator
            if run == 0:
                continue
            steps_sorted = sorted(steps)
            runs.append({
                "prompt_tokens": len(ids), "generated_tokens": len(tokens), "tokens": tokens,
                "time_to_first_token_ms": ttft,
                "tokens_per_second": len(steps) * 1e3 / sum(steps) if steps else 0.0,
                "token_p50_ms": statistics.median(steps) if steps else 0.0,
                "token_p95_ms": float(np.percentile(steps_sorted, 95)) if steps else 0.0,
            })
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump({"runner": "genai", "genai_version": og.__version__, "load_ms": load_ms, "runs": runs}, f)


if __name__ == "__main__":
    main()
