"""`vggish-jax fad REF GEN [--weights DIR] [--out result.json]`: Fréchet Audio Distance (vggish_jax.fad)."""
from __future__ import annotations

import os
import sys

HELP = "Fréchet Audio Distance of GEN against REF (folders/lists of audio, stored embeddings or statistics)"


ON_STOP = ("no result was written (REF statistics are kept only if \"saved REF statistics\" was printed); rerun "
           "the same command")


def add_arguments(p):
    what = ("a folder of audio (recursive), an audio file, a .txt list of audio files, an `extract` output "
            "(or one split folder of it), an `embed` .npz, or saved statistics (.npz)")
    p.add_argument("ref", help=f"reference set: {what}")
    p.add_argument("gen", help=f"set to evaluate: {what}")
    p.add_argument("--weights", help="converted VGGish weights directory (needed when REF or GEN is audio)")
    p.add_argument("--out", help="write the result JSON here (score under the top-level 'fad' key)")
    p.add_argument("--plot", help="PNG of FAD vs 1/N with the FAD-inf fit (default: next to --out)")
    p.add_argument("--ref-stats", help="REF statistics .npz: reused if it exists (refused if made from other "
                                       "files or another embedding spec), else written")
    p.add_argument("--save-gen-stats", help="also write GEN's statistics to this .npz")
    p.add_argument("--final-relu", dest="final_relu", action="store_true", default=None,
                   help="embed with torchvggish's final ReLU (not the FAD convention)")
    p.add_argument("--no-final-relu", dest="final_relu", action="store_false",
                   help="embed without the final ReLU (the default for FAD, whatever the weights record)")
    p.add_argument("--pad", action="store_true", help="zero-pad files shorter than 0.975 s (fadtk) instead of "
                                                     "skipping them")
    p.add_argument("--method", choices=["eigh", "sqrtm"], default="eigh", help="matrix square root")
    p.add_argument("--no-fad-inf", dest="fad_inf", action="store_false", help="skip FAD-infinity")
    p.add_argument("--steps", type=_at_least(2), default=10, help="subset sizes for FAD-inf (default 10)")
    p.add_argument("--min-n", type=_at_least(2), default=None, help="smallest FAD-inf subset in frames "
                                                                   "(default min(500, frames/4))")
    p.add_argument("--bootstrap", type=_at_least(0), default=100, help="bootstrap refits for the FAD-inf CI")
    p.add_argument("--with-replacement", dest="replace", action="store_true",
                   help="FAD-inf subsets drawn with replacement, as fadtk (default: without, as FID-inf)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=_at_least(0), default=5, help="print the N files farthest from REF")
    p.add_argument("--batch-size", type=_at_least(1), default=64)
    p.add_argument("--workers", type=_at_least(1), default=2, help="decode threads")


def _at_least(lo: int):
    import argparse

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}")
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


def run(args) -> int:
    from vggish_jax import atomic
    from vggish_jax.fad import compute, plot

    for path in (args.out, args.plot):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: output folder does not exist; create it first")
    result = compute.evaluate(args.ref, args.gen, weights=args.weights, final_relu=args.final_relu, pad=args.pad,
                               method=args.method, fad_inf=args.fad_inf, steps=args.steps, min_n=args.min_n,
                               bootstrap=args.bootstrap, seed=args.seed, replace=args.replace, ref_stats=args.ref_stats,
                               save_gen_stats=args.save_gen_stats, batch_size=args.batch_size, workers=args.workers)
    plot_path = args.plot or (os.path.splitext(args.out)[0] + "_fad_inf.png" if args.out else None)
    if plot_path and result["fad_inf"] and result["fad_inf"]["value"] is not None:
        result["plot"] = plot.fad_inf_png(plot_path, result)
    if args.out:
        atomic.write_json(args.out, result)
    r, g = result["ref"], result["gen"]
    print(f"FAD {result['fad']:.6g}  (REF {r['files']} files / {r['frames']} frames, "
          f"GEN {g['files']} files / {g['frames']} frames; {result['convention']['embedding']})")
    inf = result["fad_inf"]
    if inf and inf["value"] is not None:  # a negative intercept is no result: compute.evaluate said why
        ci = f", {100 * inf['ci_level']:.0f}% CI [{inf['ci'][0]:.6g}, {inf['ci'][1]:.6g}]" if inf["ci"] else ""
        print(f"FAD-inf {inf['value']:.6g} (slope {inf['slope']:.4g}, R² {inf['r2']:.3f}{ci})")
    for row in (result["per_file"] or [])[: args.top]:
        if row["fad"] is not None:
            print(f"  {row['fad']:.6g}  {row['file']}")
    skipped = len(r["skipped"]) + len(g["skipped"])
    if skipped:
        print(f"{skipped} files skipped (reasons above{' and in ' + args.out if args.out else ''})", file=sys.stderr)
    if args.out:
        print(f"wrote {args.out}" + (f" and {result['plot']}" if result.get("plot") else ""))
    return 0
