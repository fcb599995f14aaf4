"""The quality of a decoder variant against FP32, on text neither was tuned on. Driven by `cargo xtask models
prepare smollm2`; the verdict goes into llm.json, and `Llm::open` with `Auto` only picks a variant that passed.

    python llm_quality.py --dir DIR --model int4.onnx --text HELD_OUT.txt [--reference fp32.onnx]

Three measures, each one a way a quantized chat model fails that the others miss:

- perplexity on held-out public-domain text (the Book of Ruth, KJV, from Debian's bible-kjv-text), as a ratio to
  FP32's: the whole next-token distribution, not just its argmax;
- greedy agreement with FP32 over chat prompts: the mean fraction of each 32-token answer before the first token
  that differs (what a user sees change);
- repetition on a 6-turn chat: a turn "loops" when it runs to the token limit and its tail repeats an 8-gram three
  times or more (the failure the symmetric 4-bit decoder showed: every turn ran into a loop).

Prints one JSON line. The thresholds live in `verdict` (one place).
"""
import argparse
import json
import os

import numpy as np
from minijinja import Environment
from tokenizers import Tokenizer

from check_decoder import Decoder

PERPLEXITY_RATIO_MAX = 1.15
GREEDY_AGREEMENT_MIN = 0.4
WINDOW = 256
WINDOWS = 6
ANSWER_TOKENS = 32
TURN_TOKENS = 96

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Name three colors.",
    "What is 12 times 3?",
    "Give me a tip for sleeping well.",
    "What do bees make?",
    "Translate 'good morning' into Spanish.",
    "Why is the sky blue? Answer briefly.",
]

CHAT = [
    "Hi! Can you help me plan a small vegetable garden?",
    "Which vegetables are easiest for a beginner?",
    "How often should I water tomatoes?",
    "What can I do about snails eating the lettuce?",
    "When should I harvest the carrots?",
    "Thanks! Can you summarize the plan in two sentences?",
]


def render(directory, messages):
    with open(os.path.join(directory, "chat_template.jinja")) as f:
        template = f.read()
    return Environment(templates={"chat": template}).render_template("chat", messages=messages,
                                                                    add_generation_prompt=True)


def all_logits(decoder, ids):
    """Logits at every position of one window (no cache)."""
    cfg = decoder.cfg
    feeds = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
             **decoder.empty_past()}
    if decoder.position_ids:
        feeds["position_ids"] = np.arange(len(ids), dtype=np.int64)[None]
    if cfg.get("last_logits_input"):
        feeds[cfg["last_logits_input"]] = np.array([0], np.int64)
    return decoder.session.run(["logits"], feeds)[0][0].astype(np.float64)


def perplexity(decoder, windows):
    nll, count = 0.0, 0
    for ids in windows:
        logits = all_logits(decoder, ids)[:-1]
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        nll -= float(log_probs[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return float(np.exp(nll / count))


def loops(tokens, limit):
    """Ran to the limit and the tail repeats one 8-gram at least three times."""
    if len(tokens) < limit:
        return False
    tail = tokens[-64:]
    grams = {}
    for i in range(len(tail) - 7):
        key = tuple(tail[i:i + 8])
        grams[key] = grams.get(key, 0) + 1
    return max(grams.values(), default=0) >= 3


def chat(decoder, tokenizer, directory):
    messages, turns = [], []
    for question in CHAT:
        messages.append({"role": "user", "content": question})
        ids = tokenizer.encode(render(directory, messages), add_special_tokens=False).ids
        answer = decoder.greedy_cached(ids, TURN_TOKENS)
        ended = answer and answer[-1] == decoder.cfg["eos"]
        text = tokenizer.decode(answer, skip_special_tokens=True)
        turns.append({"tokens": len(answer), "ended": bool(ended), "loop": loops(answer, TURN_TOKENS), "text": text})
        messages.append({"role": "assistant", "content": text})
    return turns


def verdict(result):
    return (result["perplexity_ratio"] <= PERPLEXITY_RATIO_MAX and result["greedy_agreement"] >= GREEDY_AGREEMENT_MIN
            and result["chat_loop_turns"] <= result["reference_chat_loop_turns"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--reference", default="fp32.onnx")
    p.add_argument("--text", required=True, help="held-out plain text")
    args = p.parse_args()
    with open(os.path.join(args.dir, "decoder.json")) as f:
        cfg = json.load(f)
    tokenizer = Tokenizer.from_file(os.path.join(args.dir, "tokenizer.json"))
    with open(args.text) as f:
        text_ids = tokenizer.encode(f.read(), add_special_tokens=False).ids
    windows = [text_ids[i * WINDOW:(i + 1) * WINDOW] for i in range(min(WINDOWS, len(text_ids) // WINDOW))]

    reference = Decoder(os.path.join(args.dir, args.reference), cfg)
    variant = reference if args.model == args.reference else Decoder(os.path.join(args.dir, args.model), cfg)
    prompts = [tokenizer.encode(render(args.dir, [{"role": "user", "content": q}]), add_special_tokens=False).ids
               for q in PROMPTS]
    agreements = []
    for ids in prompts:
        want, got = reference.greedy_cached(ids, ANSWER_TOKENS), variant.greedy_cached(ids, ANSWER_TOKENS)
        same = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        agreements.append(1.0 if want == got else same / max(len(want), 1))
    reference_chat = chat(reference, tokenizer, args.dir)
    turns = reference_chat if variant is reference else chat(variant, tokenizer, args.dir)
    ppl_reference = perplexity(reference, windows)
    ppl = ppl_reference if variant is reference else perplexity(variant, windows)
    result = {
        "model": args.model,
        "perplexity": ppl,
        "reference_perplexity": ppl_reference,
        "perplexity_ratio": ppl / ppl_reference,
        "perplexity_tokens": sum(len(w) - 1 for w in windows),
        "greedy_agreement": float(np.mean(agreements)),
        "chat_loop_turns": sum(t["loop"] for t in turns),
        "reference_chat_loop_turns": sum(t["loop"] for t in reference_chat),
        "chat_turns": turns,
    }
    result["passed"] = verdict(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
