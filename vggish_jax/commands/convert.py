"""`vggish-jax convert`: published VGGish weights -> a weights directory for `embed`, `extract`, ..."""
from __future__ import annotations

from vggish_jax.commands import options


ON_STOP = ("weights already in --out are unchanged (new ones are written beside them and swapped in only "
           "when complete); rerun the same command")


def add_arguments(p):
    src = p.add_argument_group("source (exactly one; none with --verify checks an existing --out)")
    src.add_argument("--torch-weights", metavar="PTH", help="torchvggish vggish-10086976.pth (default: none)")
    src.add_argument("--tf-checkpoint", metavar="CKPT",
                     help="TF vggish_model.ckpt, needs the [tf] extra (default: none)")
    options.download(src, choices=("torch", "tf"),
                     help="torch|tf: fetch the published files (needs internet) and run --verify afterwards")
    src.add_argument("--random", type=options.nonnegative_int, metavar="SEED",
                     help="random initialisation, for tests and benchmarks (default: none)")
    p.add_argument("--pca", metavar="FILE",
                   help="the PCA params, saved with the weights of any source but --download (which fetches its "
                        "own): TF vggish_pca_params.npz or torchvggish vggish_pca_params-970ea276.pth, read by "
                        "its content (default: none)")
    options.out(p, help="the weights directory to write")
    options.output_format(p, choices=("orbax", "safetensors"),
                          help="orbax: a checkpoint folder; safetensors: model.safetensors + config.json + a model "
                               "card (README.md), the Hugging Face Hub layout, read the same way by --weights and "
                               "VGGish.from_pretrained")
    p.add_argument("--overwrite", action="store_true", help="replace the weights already in --out")
    p.add_argument("--verify", action="store_true",
                   help="run the published smoke checks (tensorflow/models vggish_smoke_test.py, TF-Hub export) on "
                        "the result and print pass/fail with the numbers; exit status 1 if any fails")
    options.final_relu(p, default_means="recorded as the default: on for --torch-weights, off for --tf-checkpoint")


def run(args) -> int:
    import os

    from vggish_jax import preflight
    from vggish_jax.models.vggish import hub, params
    from vggish_jax.models.vggish.convert import core, verify

    no_source = all(v is None for v in (args.torch_weights, args.tf_checkpoint, args.download, args.random))
    if no_source and args.verify:
        if args.pca:
            raise ValueError(f"--verify without a source checks {args.out} as it is; a PCA file is used only "
                             f"when converting: add its source (--torch-weights, --tf-checkpoint or --random)")
        out = args.out
    else:
        # Up front: the reader it needs, the target (never replace weights silently) and every input file.
        _require_reader(args)
        for flag in ("torch_weights", "pca", "tf_checkpoint"):
            path = getattr(args, flag)
            if path is not None and not os.path.exists(path) and not os.path.exists(path + ".index"):
                raise FileNotFoundError(f"{path}: no such file (--{flag.replace('_', '-')}); check the path")
        preflight.output_dir(args.out)  # before the lock beside it is made
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        core.require_space(args.out)
        with core.writing(args.out):  # one convert per --out; a killed one's debris cleaned up first
            params.require_new_target(args.out, overwrite=args.overwrite)
            out = core.convert(args.out, torch_weights=args.torch_weights, pca=args.pca,
                               tf_checkpoint=args.tf_checkpoint, download_source=args.download,
                               random_seed=args.random, final_relu=args.final_relu, fmt=args.format)
        _, pca, meta = (hub.load if args.format == "safetensors" else params.load)(out)
        print(f"wrote {out} (source={meta['source']}, final_relu={meta['final_relu']}, pca={'yes' if pca else 'no'})")
    if not (args.verify or args.download):
        return 0
    results = verify.run(out)
    print(verify.report(results, out))
    return 0 if all(r.passed for r in results) else 1


def _require_reader(args) -> None:
    """torch reads .pth files, TensorFlow the TF checkpoint: say so before downloading or converting anything."""
    import importlib.util

    for module, extra, path_flag in (("torch", "torch", "torch_weights"), ("tensorflow", "tf", "tf_checkpoint")):
        if getattr(args, path_flag) or args.download == extra:
            flag = f"--{path_flag.replace('_', '-')}" if getattr(args, path_flag) else f"--download {extra}"
            if importlib.util.find_spec(module) is None:
                raise RuntimeError(f"{flag} needs {module}, which is not installed; pip install -e '.[{extra}]' "
                                   f"(or pip install 'vggish-jax[{extra}]')")
            return
