"""`vggish-jax predict SONG.mp3 [...]`: top genres per file, offline (MusiCNN), or VGGish + a trained head."""
from __future__ import annotations

import json
import sys

from vggish_jax.commands import options


ON_STOP = ("the predictions printed so far are complete, nothing else was saved (with --json, the document "
           "printed lists them with \"complete\": false); rerun with the remaining files")


def add_arguments(p):
    p.add_argument("files", nargs="*",
                   help="audio files (wav, flac, ogg, mp3) or folders (their audio files, recursively)")
    p.add_argument("--example", action="store_true", help="also predict the bundled example clip")
    p.add_argument("--top", type=options.positive_int, default=3, metavar="N",
                   help="genres (and tags) shown per file (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--head", metavar="DIR",
                   help="a head directory from `vggish-jax compare`: VGGish + that head instead of MusiCNN "
                        "(default: none)")
    options.weights(p, help="VGGish weights for --head (default for --head: the ones recorded with it); alone "
                            "(weights with PCA params): the shipped AudioSet 25-genre head")
    p.add_argument("--embeddings", metavar="STORE",
                   help="with --head (or --weights alone: the shipped head): report the head's scores on this "
                        "labelled store's test split instead of predicting files (default: none)")


def run(args) -> int:
    from vggish_jax import audio, predict

    head_dir = args.head or (predict.AUDIOSET_HEAD if args.weights else None)
    if args.embeddings:
        from vggish_jax.classify import heads
        if not head_dir:
            raise ValueError("--embeddings scores a head: give --head DIR (or --weights for the shipped AudioSet head)")
        r = heads.evaluate_head(head_dir, args.embeddings)
        print(json.dumps(r, indent=2) if args.json else heads.describe_scores(r))
        return 0
    files, notes, unreadable = audio.expand_inputs(args.files)
    for line in notes + [s.line() for s in unreadable]:
        print(line, file=sys.stderr)
    files += [predict.EXAMPLE_CLIP] if args.example else []
    if not files:
        raise ValueError("give audio files to predict, or --example for the bundled clip")
    predictor = predict.HeadPredictor(head_dir, args.weights) if head_dir else predict.default_tagger()
    results, errors = [], {}
    # over-range audio: a warning line as it is found, and listed in --json
    with audio.collect_cautions() as warnings:
        try:
            # Text is printed as each file finishes, so an interrupted run has shown everything it finished.
            for path, r in predict.iter_predictions(files, predictor):
                if isinstance(r, str):
                    errors[path] = r
                    print(f"skipped {r}", file=sys.stderr)
                    continue
                results.append(r)
                if not args.json:
                    genres = ", ".join(f"{g} {s:.2f}" for g, s in r.genres[: args.top])
                    print(f"{r.path}: {genres}", flush=True)
                    if r.tags:
                        print("    MSD tags: " + ", ".join(f"{t} {p:.2f}" for t, p in r.tags[: args.top]),
                              flush=True)
        finally:
            if args.json:  # one document, also after Ctrl-C (then with "complete": false)
                complete = not unreadable and len(results) + len(errors) == len(files)
                print(json.dumps({"predictions": [r.to_json(args.top) for r in results],
                                  "errors": {**errors, **{s.path: s.reason for s in unreadable}},
                                  "warnings": [c.to_dict() for c in warnings], "complete": complete}, indent=2))
            elif results and results[0].note:
                print(f"({results[0].note})")
    return 0 if results else 1
