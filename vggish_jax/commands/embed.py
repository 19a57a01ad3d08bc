"""`vggish-jax embed FILES_OR_FOLDERS... --weights DIR --out OUT`: OUT/embeddings.npz, resumable
(vggish_jax.pipeline.npz_output)."""
from __future__ import annotations

import sys

from tqdm import tqdm

from vggish_jax.commands import options
from vggish_jax.commands.options import Setting

EMBEDDINGS = "embeddings"  # OUT/embeddings.npz + OUT/embeddings.json (+ OUT/embeddings.store, the resumable store)

ON_STOP = "finished work is kept; rerun the same command to resume"


def add_arguments(p):
    p.add_argument("files", nargs="+",
                   help="audio files (wav, flac, ogg, mp3) or folders (their audio files, recursively)")
    options.weights(p, required=True, help="weights directory written by `vggish-jax convert`")
    options.out(p, help=f"{EMBEDDINGS}.npz (one [n, 128] array per file, keyed by path) and {EMBEDDINGS}.json "
                        f"(how they were made, start times, skipped files)")
    options.output_format(p, choices=("npz", "hoplite"),
                          help="hoplite: also a perch-hoplite database in --out (hoplite.sqlite + usearch.index, "
                               "one window per row with its file and offsets) for vggish_jax.hoplite.search; needs "
                               "the [hoplite] extra")
    options.add(p, "--postprocess")
    options.final_relu(p)
    options.add(p, "--pad", "--batch-size", "--workers")
    options.config(p, dtype=options.DTYPE, resample=options.RESAMPLE, hop_s=options.HOP_S,
                   pad_last=options.PAD_LAST,
                   flush_every=Setting(16, "files per part saved while running: a kill loses at most this many, a "
                                           "rerun resumes (default: 16)", type=options.positive_int))


def run(args) -> int:
    import importlib.util
    import os

    from vggish_jax import audio, preflight
    from vggish_jax.models.vggish import frontend
    from vggish_jax.models.vggish.params import require_pca
    from vggish_jax.pipeline.embed import load_pretrained
    from vggish_jax.pipeline.npz_output import embed_to_npz, out_paths

    # Everything that can fail for a reason other than one bad file is checked before the first file.
    if args.format == "hoplite" and importlib.util.find_spec("perch_hoplite") is None:
        raise RuntimeError("--format hoplite needs perch-hoplite, which is not installed; pip install "
                           "'vggish-jax[hoplite]' (in a venv of its own: it caps huggingface-hub below 2)")
    preflight.output_dir(args.out)  # created with the store, at the first file
    npz = out_paths(os.path.join(args.out, EMBEDDINGS + ".npz"))[0]
    files, notes, unreadable = audio.expand_inputs(args.files)
    for line in notes:  # unreadable entries are reported with the other skips
        print(line, file=sys.stderr)
    embedder = load_pretrained(args.weights, final_relu=args.final_relu, dtype=args.dtype, batch_size=args.batch_size,
                               resample=args.resample, cfg=frontend.with_hop(args.hop_s, args.pad_last))
    if args.postprocess:
        require_pca(embedder.pca, "--postprocess", os.path.abspath(args.weights))
    settings = {"final_relu": embedder.final_relu, "postprocess": args.postprocess, "dtype": args.dtype,
                "weights": os.path.abspath(args.weights), "pad": args.pad}
    bar = tqdm(total=len(files), unit="file", desc="embed", disable=None)

    def report(r):  # also after Ctrl-C, SIGTERM or an error: what finished is in the output
        bar.close()
        for s in r.skipped:
            print(s.line(), file=sys.stderr)
        if r.written:
            print(f"wrote {r.written} embeddings to {r.npz} ({r.new} new; final_relu={embedder.final_relu})",
                  file=sys.stdout if r.complete else sys.stderr)
        if r.skipped:
            print(f"{len(r.skipped)} of {len(files)} files could not be embedded (listed in {r.sidecar})",
                  file=sys.stderr)

    def started(already):
        if already:
            print(f"{already} of {len(files)} files already in {npz} (kept; rerun resumes)", file=sys.stderr)
            bar.update(already)

    result = embed_to_npz(files, npz, embedder, postprocess=args.postprocess, pad=args.pad, workers=args.workers,
                          flush_every=args.flush_every, settings=settings, log=lambda m: print(m, file=sys.stderr),
                          started=started, progress=bar.update, report=report, unreadable=unreadable)
    if args.format == "hoplite" and result.written:
        from vggish_jax import hoplite

        windows, recordings = hoplite.write_database(result.npz, args.out)
        print(f"wrote a hoplite database of {windows} windows of {recordings} files to {args.out}")
    return 1 if result.requested > result.already and not result.new else 0
