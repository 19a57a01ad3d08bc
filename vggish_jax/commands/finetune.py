"""`vggish-jax finetune`: fine-tune VGGish + a genre head on FMA, data-parallel over all devices."""
from __future__ import annotations

from vggish_jax import distributed
from vggish_jax.commands import options


ON_STOP = "finished work is kept; rerun the same command to resume"


def add_arguments(p):
    p.add_argument("--dataset", default="fma/small",
                   help="fma/small, ... (log-mels) or fma/small_waveform, ... (audio: the frontend runs on the "
                        "device) (default: %(default)s)")
    p.add_argument("--data-dir", required=True, metavar="DIR",
                   help="TFDS data directory, built there from --manual-dir if needed (required)")
    p.add_argument("--manual-dir", default=None, metavar="DIR",
                   help="folder with the FMA zips or extracted folders (default: none)")
    options.weights(p, help="VGGish weights directory (`vggish-jax convert`); needed unless init=random")
    p.add_argument("--workdir", required=True, metavar="DIR",
                   help="checkpoints, metrics.jsonl, learning_curve.png; a rerun resumes from it (required)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="training config overrides, e.g. epochs=20 freeze_conv=true dtype=bfloat16 "
                        "final_relu=false (see vggish_jax/train/config.py) (default: none)")
    p.add_argument("--allow-changed-settings", action="store_true",
                   help="resume a --workdir whose checkpoint was made with other --set values, going on with the "
                        "new ones (recorded in config.json's history; settings that shape the model are still "
                        "refused) (default: off)")
    options.distributed(p)
    options.config(p, workers=options.WORKERS_SETTING)  # decode workers when the dataset is built


def run(args) -> int:
    from vggish_jax import preflight
    from vggish_jax.models.vggish import params
    from vggish_jax.datasets import fma
    from vggish_jax.train.config import Config, parse_overrides
    from vggish_jax.train.loop import train

    cfg = parse_overrides(Config(), args.set)
    cfg.check()
    preflight.output_dir(args.workdir, flag="--workdir")  # before the dataset build and the first step
    preflight.output_dir(args.data_dir, flag="--data-dir")
    distributed.initialize(args)  # before any other JAX call
    backbone = meta = None
    if cfg.init == "pretrained":
        if not args.weights:
            raise ValueError("--weights DIR is needed to fine-tune pretrained VGGish (or --set init=random)")
        backbone, _, meta = params.load(args.weights)
        if meta.get("model", "vggish") != "vggish":
            raise ValueError(f"{args.weights}: holds {meta['model']} weights, not VGGish")
    builder = fma.prepare(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir, workers=args.workers)
    labels = list(fma.label_names(builder))
    result = train(cfg, fma.data_sources(builder), len(labels), args.workdir, backbone=backbone,
                   weights_metadata=meta, label_names=labels, allow_changed_settings=args.allow_changed_settings)
    if "test_accuracy" in result:
        print(f"test accuracy {result['test_accuracy']:.4f} (best validation checkpoint); "
              f"see {args.workdir}/metrics.jsonl")
    return 0
