"""Writes the calibration / selection / test sets of benchmarks/models.json (`held_out` of each model) from real
sources, so that no source appears in two sets of one model. Run once by hand when the sets change; the output is
committed and pinned (the sources themselves are pinned packages: KJV text from Debian's bible-kjv, photos from
Debian's mate-backgrounds and ukui-wallpapers and from scikit-image and matplotlib, recordings from alsa-utils; speech synthesised by espeak-ng).

    python make_held_out_sets.py --bible DIR_WITH_usr/  benchmarks/models.json

Texts are verses of the King James Version, one book per set and kind, so a set's sources are its verses:
sentences (paraphrase-MiniLM), spoken sentences synthesised by espeak-ng (Silero VAD, openWakeWord), rendered text
lines (PP-OCR recognition and direction) and rendered pages (PP-OCR detection).
"""
import argparse
import json
import re
import subprocess

VOICES = ["en-us", "en", "en-us+f3", "en+m3", "en-us+f1", "en+f4"]
# espeak-ng voices that say the wake phrase: each is one speaker, so one source, in one set only.
WAKE_VOICES = {
    "calibration": ["en-us+f2", "en+m1", "en+f2", "en-gb-x-rp"],
    "selection": ["en-029", "en-us+m5", "en+m6", "en-gb-scotland"],
    "test": ["en-us", "en", "en-us+f1", "en-us+f3", "en-us+f4", "en+m2", "en+m3", "en+m4", "en+f1", "en+f3",
             "en+f4", "en+croak", "en+klatt", "en-us+klatt2"],
}


def verses(bible, reference):
    out = subprocess.run([f"{bible}/usr/bin/bible", "-p", f"{bible}/usr/lib", reference], check=True,
                         capture_output=True, text=True).stdout
    found, current = [], None
    for line in out.splitlines():
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            current = [m.group(1), m.group(2)]
            found.append(current)
        elif current and line.strip() and not re.match(r"^\S.* \d+$", line):
            current[1] += " " + line.strip()
    book = reference.split(" ")[0]
    chapter = reference.split(" ")[1].split(":")[0]
    return [(f"kjv {book} {chapter}:{n}", " ".join(t.split())) for n, t in found]


def first_words(text, limit):
    line = ""
    for word in text.replace(";", ",").split():
        if line and len(line) + 1 + len(word) > limit:
            break
        line = f"{line} {word}" if line else word
    return line.rstrip(",:.")


def chapter(bible, reference, count):
    """The first `count` verses of a chapter ("Proverbs 10")."""
    return verses(bible, f"{reference}:1-{reference.split()[-1]}:{count}")[:count]


def sentences(bible, reference, count):
    return [{"text": first_words(t, 120), "source": s} for s, t in chapter(bible, reference, count)]


def speech(bible, reference, count):
    return [{"speech": first_words(t, 70), "voice": VOICES[i % len(VOICES)], "source": s}
            for i, (s, t) in enumerate(chapter(bible, reference, count))]


def wake_phrases(set_name):
    return [{"speech": "Hey Jarvis", "voice": v, "source": f"'hey jarvis' spoken by espeak-ng voice {v}"}
            for v in WAKE_VOICES[set_name]]


def lines(bible, reference, count):
    return [{"line": first_words(t, 24), "font": i, "source": s}
            for i, (s, t) in enumerate(chapter(bible, reference, count))]


def pages(bible, references):
    made = []
    for i, reference in enumerate(references):
        vs = verses(bible, reference)
        text = " ".join(t for _, t in vs)
        rows, row = [], ""
        for word in text.split():
            if row and len(row) + 1 + len(word) > 34:
                rows.append(row)
                row = word
            else:
                row = f"{row} {word}" if row else word
            if len(rows) == 9:
                break
        made.append({"page": rows, "font": i, "source": f"kjv {reference}"})
    return made


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bible", required=True)
    p.add_argument("manifest")
    args = p.parse_args()
    with open(args.manifest) as f:
        manifest = json.load(f)
    b = args.bible
    alsa = ["front-center", "front-left", "rear-center", "side-left"]
    alsa_selection = ["front-right", "rear-left", "rear-right", "side-right"]
    audio = lambda names: [{"audio": f"speech-{n}", "offset_s": 0.4} for n in names]
    speech_test = speech(b, "Proverbs 11", 24)
    line_sets = {"calibration": lines(b, "Obadiah 1", 8), "selection": lines(b, "Nahum 1", 8),
                 "test": lines(b, "Proverbs 12", 24)}
    # openWakeWord's embedding and classifier take the front end's features: spoken sentences (and, for the
    # classifier, the wake phrase in voices of its own per set) pass through the FP32 models before them.
    wake_front = {"audio_scale": 32767.0, "front_end": ["oww-melspectrogram"]}
    sets = {
        # Recordings alone did not predict the spoken test set (INT8 QDQ passed them, failed it): speech in each set.
        "oww-embedding": {**wake_front, "calibration": audio(alsa) + speech(b, "Joel 3", 4),
                          "selection": audio(alsa_selection) + speech(b, "Amos 1", 6),
                          "test": speech(b, "Proverbs 13", 22)},
        "oww-hey-jarvis": {**wake_front, "front_end": ["oww-melspectrogram", "oww-embedding"],
                           "calibration": wake_phrases("calibration") + speech(b, "Joel 1", 3),
                           "selection": wake_phrases("selection") + speech(b, "Joel 2", 3),
                           "test": wake_phrases("test") + speech(b, "Proverbs 14", 8)},
        "silero-vad": {"calibration": audio(alsa), "selection": audio(alsa_selection), "test": speech_test},
        "oww-melspectrogram": {"audio_scale": 32767.0, "calibration": audio(alsa),
                               "selection": audio(alsa_selection), "test": speech_test},
        "paraphrase-minilm-l3": None,  # calibration and selection keep their sentences; the test set is new
        "pp-ocrv4-rec": line_sets,
        "pp-ocr-cls": line_sets,
        "pp-ocrv4-det": {
            "calibration": [{"image": "page"}, {"image": "matplotlib-logo"}, {"image": "coffee"}]
            + pages(b, ["Obadiah 1:1-6", "Obadiah 1:7-12"]),
            "selection": [{"image": "text"}, {"image": "skimage-logo"}] + pages(b, ["Nahum 1:1-6", "Nahum 1:7-12"]),
            "test": pages(b, [f"Proverbs {c}:{v}-{v + 5}" for c in (13, 14, 15, 16, 17) for v in (1, 7, 13, 19)]),
        },
        "yolov8n-320": {
            "calibration": [{"image": a} for a in ["astronaut", "coffee", "chelsea", "rocket", "motorcycle"]],
            # Faces as the model detects them, and photos and textures where it must detect nothing (as on most of
            # the test photos): a selection set of the test set's kinds, from none of its sources.
            "selection": [{"image": a} for a in [
                "grace-hopper", "camera", "moon", "brick", "ukui-2004default", "ukui-firstgeneration", "ukui-string",
                "mate-greentraditional", "mate-waves", "mate-silk", "retina", "ihc", "cell", "gravel", "grass"]],
            "test": [{"image": a} for a in [
                "mate-aqua", "mate-blinds", "mate-dune", "mate-freshflower", "mate-garden", "mate-greenmeadow",
                "mate-ladybird", "mate-raindrops", "mate-storm", "mate-twowings", "mate-wood", "mate-yellowflower",
                "mate-elephants", "ukui-goldfish", "ukui-the-mouse", "ukui-calla", "ukui-city", "ukui-desert",
                "horse", "coins", "hubble"]],
        },
    }
    text = open(args.manifest).read()
    for model in manifest["models"]:
        if model["id"] not in sets:
            continue
        held = model.get("held_out")
        new = sets[model["id"]]
        if new is None:
            new = {"tokenizer": held["tokenizer"], "calibration": held["calibration"],
                   "selection": held.get("validation", held.get("selection")), "test": sentences(b, "Proverbs 10", 24)}
        text = with_held_out(text, model["id"], new)
    with open(args.manifest, "w") as f:
        f.write(text)


def held_out_block(sets):
    """The `held_out` member as the manifest writes it: one sample per line."""
    out = ['      "held_out": {']
    for i, (key, value) in enumerate(sets.items()):
        comma = "," if i < len(sets) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out.append(f"        {json.dumps(key)}: [")
            out += [f"          {json.dumps(s, ensure_ascii=False)}{',' if j < len(value) - 1 else ''}"
                    for j, s in enumerate(value)]
            out.append(f"        ]{comma}")
        else:
            out.append(f"        {json.dumps(key)}: {json.dumps(value)}{comma}")
    return out + ["      }"]


def with_held_out(text, model_id, sets):
    """The manifest's text with `model_id`'s held_out replaced (or added last), the rest of the file untouched."""
    lines = text.split("\n")
    start = next(k for k, line in enumerate(lines) if line.strip() == f'"id": "{model_id}",')
    end = next(k for k in range(start, len(lines)) if lines[k] in ("    },", "    }"))
    held = next((k for k in range(start, end) if lines[k] == '      "held_out": {'), None)
    block = held_out_block(sets)
    if held is not None:
        close = next(k for k in range(held, end) if lines[k].startswith("      }"))
        if close + 1 < end:
            block[-1] += ","
        lines[held:close + 1] = block
    else:
        lines[end - 1] += ","
        lines[end:end] = block
    return "\n".join(lines)

if __name__ == "__main__":
    main()
