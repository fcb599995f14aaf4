"""Calibration and validation feeds from the held_out.json that `cargo xtask models prepare` writes (images already
as f32 files; texts tokenized and audio cut here). Without one, the recipe input and seeded perturbations of it.
"""
import json
import os
import wave

import numpy as np

from recipe_inputs import TYPES, recipe_input

PERTURBED_SAMPLES = 8


def audio_window(spec):
    """`shape`'s worth of samples at 16 kHz from `offset_s` into the clip (16-bit PCM, resampled by averaging),
    scaled by `audio_scale` (1.0: [-1, 1], as Silero takes it; 32767: 16-bit scale, as openWakeWord does)."""
    with wave.open(spec["audio"]) as clip:
        rate, frames = clip.getframerate(), clip.readframes(clip.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    if rate % 16000:
        raise ValueError(f"{spec['audio']}: {rate} Hz is not a multiple of 16 kHz")
    step = rate // 16000
    samples = samples[: len(samples) // step * step].reshape(-1, step).mean(axis=1)
    count = int(np.prod(spec["shape"]))
    start = int((spec.get("offset_s") or 0) * 16000)
    window = np.zeros(count)
    piece = samples[start:start + count]
    window[: len(piece)] = piece
    return (window * (spec.get("audio_scale") or 1.0)).astype(np.float32).reshape(spec["shape"])


def text_ids(spec, cache={}):
    from tokenizers import Tokenizer
    if spec["tokenizer"] not in cache:
        cache[spec["tokenizer"]] = Tokenizer.from_file(spec["tokenizer"])
    return cache[spec["tokenizer"]].encode(spec["text"])


def sample_feeds(sample, base_dir):
    feeds = {}
    for spec in sample:
        if "audio" in spec:
            feeds[spec["name"]] = audio_window(spec)
        elif "text" in spec:
            encoding = text_ids(spec)
            values = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,
                      "token_type_ids": encoding.type_ids}[spec["name"]]
            feeds[spec["name"]] = np.array([values], dtype=TYPES[spec["type"]])
        else:
            feeds[spec["name"]] = recipe_input(spec, base_dir)
    return feeds


def perturbed(feeds, count=PERTURBED_SAMPLES, seed=0):
    """The recipe input and seeded multiplicative perturbations of its float inputs."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        sample = {}
        for name, value in feeds.items():
            if np.issubdtype(value.dtype, np.floating) and i > 0:
                value = (value * (1 + 0.1 * rng.standard_normal(value.shape))).astype(value.dtype)
            sample[name] = value
        samples.append(sample)
    return samples


def load(path, recipe_feeds):
    """(calibration, validation, source): lists of feeds. Without held-out sets, calibration is the perturbed recipe
    input and validation the recipe input with other perturbations (seed 1), and `source` says so."""
    if path and os.path.exists(path):
        with open(path) as f:
            sets = json.load(f)
        base = os.path.dirname(path)
        return ([sample_feeds(s, base) for s in sets["calibration"]],
                [sample_feeds(s, base) for s in sets["validation"]], "held-out real inputs")
    return perturbed(recipe_feeds), [recipe_feeds] + perturbed(recipe_feeds, 4, seed=1)[1:], "recipe input, perturbed"
