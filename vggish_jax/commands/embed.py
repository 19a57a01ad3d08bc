"""`vggish-jax embed FILES... --weights DIR --out OUT.npz`."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from tqdm import tqdm


def add_arguments(p):
    p.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, mp3)")
    p.add_argument("--weights", required=True, help="weights directory written by `vggish-jax convert`")
    p.add_argument("--out", required=True, help="output .npz: one [n, 128] array per file, keyed by path")
    p.add_argument("--postprocess", action="store_true", help="apply PCA + uint8 quantisation (needs PCA params)")
    p.add_argument("--final-relu", dest="final_relu", action="store_true", default=None,
                   help="ReLU after the last layer (torchvggish / the paper); default: as recorded with the weights")
    p.add_argument("--no-final-relu", dest="final_relu", action="store_false", help="no final ReLU (current TF)")
    p.add_argument("--pad", action="store_true", help="zero-pad clips shorter than 0.975 s instead of skipping them")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--workers", type=int, default=2, help="decode threads")


def run(args) -> int:
    from vggish_jax.pipeline.embed import load_pretrained

    embedder = load_pretrained(args.weights, final_relu=args.final_relu, dtype=args.dtype, batch_size=args.batch_size)
    with tqdm(total=len(args.files), unit="file", desc="embed", disable=None) as bar:
        results, errors = embedder.embed_files(args.files, postprocess=args.postprocess, pad=args.pad,
                                               workers=args.workers, progress=bar.update)
    if results:
        out = args.out if args.out.endswith(".npz") else args.out + ".npz"
        tmp = out + ".tmp.npz"
        np.savez(tmp, **results)
        os.replace(tmp, out)
        meta = {"final_relu": embedder.final_relu, "postprocess": args.postprocess, "dtype": args.dtype,
                "weights": os.path.abspath(args.weights), "errors": errors, "files": list(results),
                "embedding_spec": embedder.spec.replace(postprocess=args.postprocess).to_dict()}
        with open(out[:-4] + ".json", "w") as f:
            json.dump(meta, f, indent=2)
        print(f"wrote {len(results)} embeddings to {out} (final_relu={embedder.final_relu})")
    for path, err in errors.items():
        print(f"skipped {err}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(args.files)} files could not be embedded", file=sys.stderr)
    return 0 if results else 1
