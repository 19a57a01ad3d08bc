"""`vggish-jax extract --dataset fma/small --data-dir D --weights W --out E`: embed a whole dataset, resumably."""
from __future__ import annotations

import sys

from vggish_jax import distributed
from vggish_jax.commands import options
from vggish_jax.commands.options import Setting


ON_STOP = "finished work is kept; rerun the same command to resume"


def add_arguments(p):
    p.add_argument("--dataset", default="fma/small",
                   help="fma/small, fma/medium, fma/large (or fma/small_waveform, fma/medium_waveform), a folder of "
                        "audio files (class labels from its first-level subfolders), a CSV of labelled audio files "
                        "(columns path,label and optionally split, group; paths relative to the CSV), or audioset "
                        "(Google's released embeddings under --manual-dir; no --weights) (default: %(default)s)")
    p.add_argument("--split", choices=["gtzan-filtered"], default=None,
                   help="a GTZAN folder as --dataset: train/validation/test from GTZAN's fault-filtered lists "
                        "(Kereliuk, Sturm & Larsen 2015) (default: none: a folder is one split 'all', for "
                        "compare --cv K)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="TFDS data directory of an FMA dataset, built there if missing (default: none; not needed "
                        "for a folder)")
    p.add_argument("--manual-dir", default=None, metavar="DIR",
                   help="folder with fma_metadata(.zip) and fma_<subset>(.zip), zipped or extracted (default: none)")
    options.download(p, choices=("fma",),
                     help="fma: download the FMA archives if --manual-dir lacks them (needs internet)")
    options.weights(p, help="weights directory written by `vggish-jax convert` (needed unless the source holds "
                            "embeddings already)")
    options.out(p, help="info.json + <split>/shard-NNNNN.npz")
    options.add(p, "--batch-size", "--workers")
    options.final_relu(p)
    options.add(p, "--postprocess")
    p.add_argument("--beam-options", default=None, metavar="FLAGS",
                   help='run as an Apache Beam pipeline with these pipeline options, e.g. --beam-options='
                        '"--runner=FlinkRunner --flink_master=host:8081"; --beam-options=--runner=direct runs '
                        "local worker processes (--direct_num_workers=N, default 2); also builds the dataset with "
                        "Beam (default: none: no Beam)")
    options.distributed(p)  # multi-host: each process writes its own shards, process 0 completes info.json
    options.config(
        p, dtype=options.DTYPE, resample=options.RESAMPLE, hop_s=options.HOP_S, pad_last=options.PAD_LAST,
        pad=options.PAD_SETTING,
        shard_size=Setting(128, "clips per shard, the unit of resumption (default: 128)", type=options.positive_int),
        from_audio=Setting(False, "FMA: decode the mp3s in worker processes instead of reading the built TFDS "
                                  "log-mels (default: false)"),
        frontend_precision=Setting("float32", "device frontend for waveform sources (float64: within 1e-5 of the "
                                              "NumPy oracle, slower) (default: float32)",
                                   choices=("float32", "float64")),
        task=Setting("music_genre", "--dataset audioset: music_genre (segments with exactly one of the genres) or "
                                    "music_genre_multilabel (default: music_genre)",
                     choices=("music_genre", "music_genre_multilabel")),
        classes=Setting(None, '--dataset audioset: a subset of the 25 genres, e.g. ["Pop music", "Jazz"] '
                              "(default: all 25)", many=True),
        on_duplicate=Setting("refuse", "a labels CSV listing a file more than once: refuse, or first (keep each "
                                       "file's first row) (default: refuse)", choices=("refuse", "first")),
        normalize_labels=Setting(False, "a labels CSV: lower-case every label, so labels equal up to case are one "
                                        "class (default: false)"))


def run(args) -> int:
    from vggish_jax import preflight

    preflight.output_dir(args.out)  # before the (long) dataset build
    if args.data_dir is not None:
        preflight.output_dir(args.data_dir, flag="--data-dir")
    beam, build = bool(args.beam_options), {}
    if beam:
        from vggish_jax.pipeline import beam_runner

        beam_runner.require_beam()
    else:
        distributed.initialize(args)  # before any other JAX call
    from vggish_jax.pipeline import extract as ex

    # The model first: bad weights, or --postprocess without PCA, fail before a (long) dataset build.
    model = ex.load_model(args.weights, final_relu=args.final_relu, dtype=args.dtype, postprocess=args.postprocess,
                          dataset=args.dataset)
    beam_settings = ex.BeamSettings(runner=None, options=args.beam_options) if beam else None
    if beam:
        runner, beam_options = beam_runner.make(beam_settings.runner, beam_settings.workers, beam_settings.options)
        build = dict(beam_runner=runner, beam_options=beam_options)
    source = ex.open_source(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                            from_audio=args.from_audio, workers=args.workers, download=args.download == "fma",
                            task=args.task, split=args.split, classes=args.classes,
                            on_duplicate=args.on_duplicate, normalize_labels=args.normalize_labels, **build)
    settings = ex.ExtractSettings(
        postprocess=args.postprocess, shard_size=args.shard_size, batch_size=args.batch_size, workers=args.workers,
        resample=args.resample, frontend_precision=args.frontend_precision, weights_dir=args.weights,
        hop_s=args.hop_s, pad_last=args.pad_last, pad=args.pad,
        progress=sys.stderr.isatty(), beam=beam_settings)
    summary = ex.extract(source, args.out, model, settings)
    if not summary.complete:
        print(f"wrote this process's shards to {summary.out}; the extraction completes when every process has "
              f"finished (rerun the same command to complete it)")
        return 0
    counts = ", ".join(f"{s}={n}" for s, n in summary.num_clips.items())
    warned = f", {len(summary.warnings)} used with a warning" if summary.warnings else ""
    print(f"wrote embeddings to {summary.out} ({counts}; {len(summary.skipped)} clips skipped{warned}, see info.json)")
    return 0

