"""`vggish-jax embed FILES_OR_FOLDERS... --weights DIR --out OUT.npz` (resumable: vggish_jax.pipeline.npz_output)."""
from __future__ import annotations

import sys

from tqdm import tqdm

from vggish_jax.cli import nonnegative_int, positive_int
from vggish_jax.pipeline import placement


ON_STOP = "finished work is kept; rerun the same command to resume"


def add_arguments(p):
    p.add_argument("files", nargs="+",
                   help="audio files (wav, flac, ogg, mp3) or folders (their audio files, recursively)")
    p.add_argument("--weights", required=True, help="weights directory written by `vggish-jax convert`")
    p.add_argument("--out", required=True, help="output .npz: one [n, 128] array per file, keyed by path")
    p.add_argument("--postprocess", action="store_true", help="apply PCA + uint8 quantisation (needs PCA params)")
    p.add_argument("--final-relu", dest="final_relu", action="store_true", default=None,
                   help="ReLU after the last layer (torchvggish / the paper); default: as recorded with the weights")
    p.add_argument("--no-final-relu", dest="final_relu", action="store_false", help="no final ReLU (current TF)")
    p.add_argument("--pad", action="store_true", help="zero-pad clips shorter than 0.975 s instead of skipping them")
    p.add_argument("--batch-size", type=positive_int, default=64, help="examples per device call")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="decode threads")
    p.add_argument("--resample", choices=placement.RESAMPLE_CHOICES, default="auto",
                   help="where files not at 16 kHz are resampled: host (decode workers), device (after a "
                        "native-rate decode), or auto (default: device on GPU/TPU, host on CPU)")
    p.add_argument("--flush-every", type=positive_int, default=16,
                   help="files per part saved while running (a kill loses at most this many; a rerun resumes)")


def run(args) -> int:
    import os

    from vggish_jax import audio, preflight
    from vggish_jax.pipeline.embed import load_pretrained
    from vggish_jax.pipeline.npz_output import embed_to_npz, out_paths

    # Everything that can fail for a reason other than one bad file is checked before the first file.
    preflight.output_file(args.out)  # a folder given as --out is refused, not turned into FOLDER.npz
    npz, sidecar, _ = out_paths(args.out)
    preflight.output_file(npz)
    files, notes, unreadable = audio.expand_inputs(args.files)
    for line in notes:  # unreadable entries are reported with the other skips
        print(line, file=sys.stderr)
    embedder = load_pretrained(args.weights, final_relu=args.final_relu, dtype=args.dtype, batch_size=args.batch_size,
                               resample=args.resample)
    if args.postprocess and embedder.pca is None:
        raise ValueError(f"{os.path.abspath(args.weights)}: these weights have no PCA params, so --postprocess is "
                         f"impossible; convert them with --torch-pca/--tf-pca or drop --postprocess")
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
                          started=started, progress=bar.update, report=report,
                          unreadable=unreadable)
    return 1 if result.requested > result.already and not result.new else 0
