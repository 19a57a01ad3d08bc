"""`vggish-jax compare`: the classifier comparison table (vggish_jax.classify.compare)."""
from __future__ import annotations

import argparse

from vggish_jax.classify.compare import EXTRA_CLASSIFIERS, FEATURE_SETS, PAPER_CLASSIFIERS
from vggish_jax.commands import options
from vggish_jax.commands.options import Setting

CLASSIFIERS = PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS


def jobs(text: str) -> int:
    """-1 (all cores) or a number of parallel cells; 0 would run nothing."""
    value = options.at_least(-1)(text)
    if value == 0:
        raise ValueError("0 runs nothing: give a number of parallel cells, or -1 for all cores")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embeddings", required=True, metavar="STORE",
                   help="the store written by `vggish-jax extract` (required)")
    options.out(p, help="table.md, table.json, figures, the trained heads")
    p.add_argument("--features", default=",".join(FEATURE_SETS), metavar="LIST",
                   help=f"comma-separated feature sets (default: {','.join(FEATURE_SETS)})")
    p.add_argument("--classifiers", default=",".join(CLASSIFIERS), metavar="LIST",
                   help=f"comma-separated classifiers (default: {','.join(CLASSIFIERS)})")
    p.add_argument("--cv", type=int, default=None, metavar="K",
                   help="score every cell on K stratified folds (grouped by the store's groups, e.g. artists, when "
                        "it has them) and report mean and std; on a store with a test split, folds of "
                        "train+validation, test unused (default: 5 for a store without a train/validation/test "
                        "split, else off)")
    p.add_argument("--refit", action="store_true",
                   help="also refit the model chosen on validation on train + validation and score it on test once; "
                        "a model chosen by cross-validation (selection) is always refitted (default: off)")
    options.config(
        p, jobs=Setting(-1, "cells fitted in parallel, -1 for all cores (default: -1)", type=jobs),
        seed=Setting(0, "seed of every model and of the folds (default: 0)", type=int),
        allow_incomplete=Setting(False, "run on an unfinished extraction (info.json \"complete\": false); the "
                                        "table says so (default: false)"),
        data_dir=Setting(None, "TFDS data folder of the same FMA build, for the mfcc and musicnn feature sets "
                               "(default: none: computed from the clips' audio files)"),
        selection=Setting("auto", "how the table's model is chosen: cv (grouped K-fold over train + validation "
                                  "among the finalists best on validation, then refit), validation (best on "
                                  "validation), or auto (cv where validation has under 1,000 clips) (default: auto)",
                          choices=("auto", "cv", "validation")),
        finalists=Setting(3, "selection = cv: how many of the best on validation are cross-validated (default: 3)",
                          type=options.positive_int),
        selection_folds=Setting(5, "selection = cv: folds over train + validation (default: 5)",
                                type=options.at_least(2)),
        manual_dir=Setting(None, "for an FMA store extracted with from_audio: the folder holding fma_<subset>, "
                                 "whose mp3s mfcc and musicnn are computed from (default: none)"))


def run(args) -> int:
    from vggish_jax import preflight
    from vggish_jax.classify.compare import CompareSettings, compare
    from vggish_jax.classify.tables import render_markdown

    settings = CompareSettings(
        feature_sets=tuple(f for f in args.features.split(",") if f),
        classifiers=tuple(c for c in args.classifiers.split(",") if c), folds=args.cv, refit=args.refit,
        seed=args.seed, data_dir=args.data_dir, manual_dir=args.manual_dir, jobs=args.jobs,
        allow_incomplete=args.allow_incomplete, selection=args.selection, finalists=args.finalists,
        selection_folds=args.selection_folds)
    preflight.output_dir(args.out)  # before hours of fitting
    report = compare(args.embeddings, args.out, settings)
    print(render_markdown(report))
    print(f"wrote {args.out}/table.md, table.json and plots (confusion or per-class AP, class balance)")
    return 0
