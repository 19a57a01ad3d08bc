"""`vggish-jax convert`: published VGGish weights -> a weights directory for `embed`, `extract`, ..."""
from __future__ import annotations


def add_arguments(p):
    src = p.add_argument_group("source (exactly one)")
    src.add_argument("--torch-weights", metavar="PTH", help="torchvggish vggish-10086976.pth")
    src.add_argument("--tf-checkpoint", metavar="CKPT", help="TF vggish_model.ckpt (needs the [tf] extra)")
    src.add_argument("--download", choices=["torch", "tf"], help="fetch the published files (needs internet)")
    src.add_argument("--random", type=int, metavar="SEED", help="random initialisation (tests, benchmarks)")
    p.add_argument("--torch-pca", metavar="PTH", help="torchvggish vggish_pca_params-970ea276.pth")
    p.add_argument("--tf-pca", metavar="NPZ", help="TF vggish_pca_params.npz")
    p.add_argument("--out", required=True, help="weights directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace the weights already in --out")
    relu = p.add_mutually_exclusive_group()
    relu.add_argument("--final-relu", dest="final_relu", action="store_true", default=None,
                      help="record a final ReLU as the default (torchvggish's behaviour; default for --torch-weights)")
    relu.add_argument("--no-final-relu", dest="final_relu", action="store_false",
                      help="record no final ReLU (current TF; default for --tf-checkpoint)")


def run(args) -> int:
    import os

    from vggish_jax.models.vggish import pretrained
    from weights_convert.convert import convert

    # Up front: the target (never replace weights silently) and every input file.
    pretrained.require_new_target(args.out, overwrite=args.overwrite)
    for flag in ("torch_weights", "torch_pca", "tf_checkpoint", "tf_pca"):
        path = getattr(args, flag)
        if path is not None and not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise FileNotFoundError(f"{path}: no such file (--{flag.replace('_', '-')}); check the path")
    out = convert(args.out, torch_weights=args.torch_weights, torch_pca=args.torch_pca,
                  tf_checkpoint=args.tf_checkpoint, tf_pca=args.tf_pca, download_source=args.download,
                  random_seed=args.random, final_relu=args.final_relu)
    _, pca, meta = pretrained.load(out)
    print(f"wrote {out} (source={meta['source']}, final_relu={meta['final_relu']}, pca={'yes' if pca else 'no'})")
    return 0
