"""`vggish-jax fad REF GEN [--weights DIR] [--out DIR]`: Fréchet Audio Distance (vggish_jax.fad)."""
from __future__ import annotations

import os
import sys

from vggish_jax.commands import options
from vggish_jax.commands.options import Setting, yes_no

ON_STOP = "no result was written; rerun the same command"
RESULT, PLOT = "fad.json", "fad_inf.png"  # in --out


def add_arguments(p):
    what = ("a folder of audio (recursive), an audio file, a .txt list of audio files, an `extract` output "
            "(or one split folder of it), an `embed` embeddings.npz, or statistics (.npz, found by its content) "
            "saved with save_gen_stats")
    p.add_argument("ref", help=f"reference set: {what}")
    p.add_argument("gen", help=f"set to evaluate: {what}")
    options.weights(p, help="converted VGGish weights directory (needed when REF or GEN is audio)")
    options.out(p, required=False, help=f"{RESULT} (the score under its top-level 'fad' key) and {PLOT} (FAD vs "
                                        f"1/N with the FAD-inf fit)")
    p.add_argument("--show-farthest", type=options.nonnegative_int, default=5, metavar="N",
                   help="print the N files of GEN farthest from REF (default: %(default)s)")
    options.add(p, "--workers")
    options.config(
        p, batch_size=options.BATCH_SIZE_SETTING, pad=options.PAD_SETTING,
        final_relu=Setting(None, "ReLU after VGGish's last layer when embedding audio: yes (true) or no (false) "
                                 "(default: no, the FAD convention, whatever the weights record)", type=yes_no),
        save_gen_stats=Setting(None, "also write GEN's statistics to this .npz, usable as REF later "
                                     "(default: none)"),
        method=Setting("eigh", "matrix square root: eigh or sqrtm (default: eigh)", choices=("eigh", "sqrtm")),
        fad_inf=Setting(True, "compute FAD-infinity (default: true)"),
        steps=Setting(10, "subset sizes for FAD-inf (default: 10)", type=options.at_least(2)),
        min_n=Setting(None, "smallest FAD-inf subset in frames (default: min(500, frames / 4))",
                      type=options.at_least(2)),
        bootstrap=Setting(100, "bootstrap refits for the FAD-inf confidence interval (default: 100)",
                          type=options.nonnegative_int),
        with_replacement=Setting(False, "draw FAD-inf subsets with replacement, as fadtk; false: without, as "
                                        "FID-inf (default: false)"),
        seed=Setting(0, "random seed of the FAD-inf subsets and bootstrap (default: 0)", type=int))


def run(args) -> int:
    from vggish_jax import atomic, preflight
    from vggish_jax.fad import compute

    out = preflight.output_dir(args.out) if args.out else None  # checked before the (long) embedding
    result = compute.evaluate(args.ref, args.gen, weights=args.weights, final_relu=args.final_relu, pad=args.pad,
                               method=args.method, fad_inf=args.fad_inf, steps=args.steps, min_n=args.min_n,
                               bootstrap=args.bootstrap, seed=args.seed, replace=args.with_replacement,
                               save_gen_stats=args.save_gen_stats,
                               batch_size=args.batch_size, workers=args.workers)
    if out:
        os.makedirs(out, exist_ok=True)
        if result["fad_inf"] and result["fad_inf"]["value"] is not None:
            result["plot"] = compute.fad_inf_png(os.path.join(out, PLOT), result)
        atomic.write_json(os.path.join(out, RESULT), result)
    r, g = result["ref"], result["gen"]
    print(f"FAD {result['fad']:.6g}  (REF {r['files']} files / {r['frames']} frames, "
          f"GEN {g['files']} files / {g['frames']} frames; {result['convention']['embedding']})")
    inf = result["fad_inf"]
    if inf and inf["value"] is not None:  # a negative intercept is no result: compute.evaluate said why
        ci = f", {100 * inf['ci_level']:.0f}% CI [{inf['ci'][0]:.6g}, {inf['ci'][1]:.6g}]" if inf["ci"] else ""
        print(f"FAD-inf {inf['value']:.6g} (slope {inf['slope']:.4g}, R² {inf['r2']:.3f}{ci})")
    for row in (result["per_file"] or [])[: args.show_farthest]:
        if row["fad"] is not None:
            print(f"  {row['fad']:.6g}  {row['file']}")
    skipped = len(r["skipped"]) + len(g["skipped"])
    if skipped:
        where = f" and in {os.path.join(out, RESULT)}" if out else ""
        print(f"{skipped} files skipped (reasons above{where})", file=sys.stderr)
    if out:
        print(f"wrote {os.path.join(out, RESULT)}" + (f" and {result['plot']}" if result.get("plot") else ""))
    return 0
