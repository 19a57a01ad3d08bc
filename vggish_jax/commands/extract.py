"""`vggish-jax extract --dataset fma/small --data-dir D --weights W --out E`: embed a whole dataset, resumably."""
from __future__ import annotations

from vggish_jax import distributed
from vggish_jax.cli import nonnegative_int, positive_int
from vggish_jax.pipeline import placement


ON_STOP = "finished work is kept; rerun the same command to resume"


def add_arguments(p):
    p.add_argument("--dataset", default="fma/small",
                   help="fma/small, fma/medium, fma/large (or fma/small_waveform, fma/medium_waveform), a folder of "
                        "audio files (class labels from its first-level subfolders), or audioset (Google's released "
                        "embeddings under --manual-dir; no --weights)")
    p.add_argument("--task", choices=["music_genre", "music_genre_multilabel"], default="music_genre",
                   help="--dataset audioset: single-label (segments with exactly one of the genres) or multi-label")
    p.add_argument("--classes", default=None,
                   help='--dataset audioset: a comma-separated subset of the 25 genres, e.g. "Pop music,Jazz"')
    p.add_argument("--labels", default=None,
                   help="a CSV of labelled audio files to embed instead of --dataset: columns path,label and "
                        "optionally split, group (paths relative to the CSV)")
    p.add_argument("--split", choices=["gtzan-filtered"], default=None,
                   help="a GTZAN folder as --dataset: train/validation/test from GTZAN's fault-filtered lists "
                        "(Kereliuk, Sturm & Larsen 2015); without it a folder is one split 'all' (compare --cv K)")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data directory of an FMA dataset (built here if missing); not needed for a folder")
    p.add_argument("--manual-dir", default=None,
                   help="folder with fma_metadata(.zip) and fma_<subset>(.zip), zipped or extracted")
    p.add_argument("--download", action="store_true", help="download the FMA archives if not found (needs internet)")
    p.add_argument("--weights", default=None,
                   help="weights directory written by `vggish-jax convert` (needed unless the source holds "
                        "embeddings already)")
    p.add_argument("--out", required=True, help="output directory: info.json + <split>/shard-NNNNN.npz")
    p.add_argument("--batch-size", type=positive_int, default=62,
                   help="examples per device call (default 62: two 30-s clips; measured faster than 64 on XLA:CPU)")
    p.add_argument("--shard-size", type=positive_int, default=128, help="clips per shard (the unit of resumption)")
    p.add_argument("--workers", type=nonnegative_int, default=None, help="decode processes (default: CPUs - 1)")
    p.add_argument("--resample", choices=placement.RESAMPLE_CHOICES, default="auto",
                   help="where files not at 16 kHz are resampled: host (decode workers), device (after a "
                        "native-rate decode), or auto (default: device on GPU/TPU, host on CPU)")
    p.add_argument("--final-relu", dest="final_relu", action="store_true", default=None,
                   help="ReLU after the last layer (torchvggish / the paper); default: as recorded with the weights")
    p.add_argument("--no-final-relu", dest="final_relu", action="store_false", help="no final ReLU (current TF)")
    p.add_argument("--postprocess", action="store_true", help="PCA + uint8 quantisation (needs PCA params)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--from-audio", action="store_true",
                   help="decode the mp3s in worker processes instead of reading the built TFDS log-mels")
    p.add_argument("--frontend-precision", choices=["float32", "float64"], default="float32",
                   help="device frontend for waveform sources (float64: within 1e-5 of the NumPy oracle, slower)")
    distributed.add_arguments(p)  # multi-host: each process writes its own shards, process 0 completes info.json
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--beam-runner", default=None,
                   help="run as an Apache Beam pipeline: 'direct' (local worker processes) or a Beam runner name "
                        "(FlinkRunner, SparkRunner, DataflowRunner, ...); also builds the dataset with Beam")
    p.add_argument("--beam-workers", type=int, default=2, help="local worker processes of --beam-runner direct")
    p.add_argument("--beam-options", default=None,
                   help='Beam pipeline options passed through, e.g. "--runner=FlinkRunner --flink_master=host:8081"')


def run(args) -> int:
    from vggish_jax import preflight

    preflight.output_dir(args.out)  # before the (long) dataset build
    if args.data_dir is not None:
        preflight.output_dir(args.data_dir, flag="--data-dir")
    beam = bool(args.beam_runner or args.beam_options)
    if beam:
        from vggish_jax.pipeline import beam_runner

        beam_runner.require_beam()
    else:
        distributed.initialize(args)  # before any other JAX call
    from vggish_jax.datasets import decode
    from vggish_jax.pipeline import extract as ex

    # The model first: bad weights, or --postprocess without PCA, fail before a (long) dataset build.
    model = ex.load_model(args.weights, final_relu=args.final_relu, dtype=args.dtype, postprocess=args.postprocess,
                          dataset=args.dataset, labels=args.labels)
    workers = decode.default_workers() if args.workers is None else args.workers
    build = {}
    if beam:
        runner, options = beam_runner.make(args.beam_runner, args.beam_workers, args.beam_options)
        build = dict(beam_runner=runner, beam_options=options)
    source = ex.open_source(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                            from_audio=args.from_audio, workers=workers, download=args.download, labels=args.labels,
                            task=args.task, split=args.split,
                            classes=[c.strip() for c in args.classes.split(",")] if args.classes else None, **build)
    settings = ex.ExtractSettings(
        postprocess=args.postprocess, shard_size=args.shard_size, batch_size=args.batch_size, workers=workers,
        resample=args.resample, frontend_precision=args.frontend_precision, weights_dir=args.weights,
        progress=not args.no_progress,
        beam=ex.BeamSettings(args.beam_runner, args.beam_workers, args.beam_options) if beam else None)
    summary = ex.extract(source, args.out, model, settings)
    if not summary.complete:
        print(f"wrote this process's shards to {summary.out}; the extraction completes when every process has "
              f"finished (rerun the same command to complete it)")
        return 0
    counts = ", ".join(f"{s}={n}" for s, n in summary.num_clips.items())
    warned = f", {len(summary.warnings)} used with a warning" if summary.warnings else ""
    print(f"wrote embeddings to {summary.out} ({counts}; {len(summary.skipped)} clips skipped{warned}, see info.json)")
    return 0
