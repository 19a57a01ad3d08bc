"""`vggish-jax predict SONG.mp3 [...]`: top genres per file, offline (MusiCNN), or VGGish + a trained head."""
from __future__ import annotations

import json
import sys

from vggish_jax.cli import positive_int


def add_arguments(p):
    p.add_argument("files", nargs="*", help="audio files (wav, flac, ogg, mp3) or folders (their audio files, recursively)")
    p.add_argument("--example", action="store_true", help="also predict the bundled example clip")
    p.add_argument("--top", type=positive_int, default=3, help="genres (and tags) to show per file")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--head", help="a head directory from `vggish-jax compare` (uses VGGish instead of MusiCNN)")
    p.add_argument("--weights", help="VGGish weights for --head (default: the ones recorded with the head)")


def run(args) -> int:
    from vggish_jax import audio, predict

    files, notes = audio.expand_inputs(args.files)
    for note in notes:
        print(note, file=sys.stderr)
    files += [predict.EXAMPLE_CLIP] if args.example else []
    if not files:
        raise ValueError("give audio files to predict, or --example for the bundled clip")
    predictor = predict.HeadPredictor(args.head, args.weights) if args.head else predict.default_tagger()
    results, errors = predict.predict_files(files, predictor)
    if args.json:
        print(json.dumps({"predictions": [r.to_json(args.top) for r in results], "errors": errors}, indent=2))
    else:
        for r in results:
            genres = ", ".join(f"{g} {s:.2f}" for g, s in r.genres[: args.top])
            print(f"{r.path}: {genres}")
            if r.tags:
                print("    MSD tags: " + ", ".join(f"{t} {p:.2f}" for t, p in r.tags[: args.top]))
        if results and results[0].note:
            print(f"({results[0].note})")
    for path, err in errors.items():
        print(f"skipped {err}", file=sys.stderr)
    return 0 if results else 1
