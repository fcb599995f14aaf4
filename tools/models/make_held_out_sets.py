"""Writes the calibration / selection / test sets of benchmarks/models.json (`held_out` of each model) from real
sources, so that no source appears in two sets of one model. Run once by hand when the sets change; the output is
committed and pinned (the sources themselves are pinned packages: KJV text from Debian's bible-kjv, photos from
Debian's mate-backgrounds and ukui-wallpapers and from scikit-image and matplotlib, recordings from alsa-utils).

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
    sets = {
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
    for model in manifest["models"]:
        if model["id"] not in sets:
            continue
        held = model["held_out"]
        new = sets[model["id"]]
        if new is None:
            new = {"tokenizer": held["tokenizer"], "calibration": held["calibration"],
                   "selection": held["validation"], "test": sentences(b, "Proverbs 10", 24)}
        model["held_out"] = new
    with open(args.manifest, "w") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
