"""The seed paper on FMA-small end to end: embeddings, the comparison table, fine-tuning, figures and a report.

    python experiments/fma_paper.py --manual-dir FMA --data-dir ~/tfds --weights vggish_weights --out results/fma_paper
        [--stages extract,table,finetune,report] [--classifiers LR,SVCrbf,...] [--better-heads]
        [--epochs N] [--set KEY=VALUE ...] [--width-divisor N] [--jobs N] [--data-note TEXT]

FMA holds fma_metadata(.zip) and fma_small(.zip), zipped or extracted (README, "FMA"); the TFDS build goes to
--data-dir. Stages, each skippable, each calling the library (vggish_jax.pipeline.extract, classify.compare,
train.loop) and writing under OUT:
  extract    OUT/embeddings: every clip's 31 x 128 VGGish embeddings with the paper's final ReLU (resumable:
             a rerun reuses the finished shards)
  table      OUT/table: the paper's 13 classifiers on embedding, embedding+pca128 and mfcc (table.md,
             table.json, confusion_best.png, class_balance.png); --better-heads adds HGB, JAX-MLP, JAX-frames
  finetune   OUT/finetune: VGGish + the paper's 3968 -> 256 -> 8 head, the paper's recipe (train/config.py:
             Adam 1e-3, batch 8, 11 epochs) with the final ReLU; metrics.jsonl, learning_curve.png (resumable)
  report     OUT/fig2_class_balance.png (clips per genre and split), OUT/fig6_confusion_<model>.png (test
             confusion matrix of embedding+PCA-128 + RBF SVC: our reading of the paper's Figure 6),
             OUT/fig7_val_accuracy.png (validation accuracy per fine-tuning epoch) and OUT/report.md: the
             paper's test accuracies beside ours, split sizes, machine, versions, wall time per stage, and
             whether the weights were random (then the numbers mean nothing about music)
OUT/run.json records each stage's wall time and what it used. The width of a small same-shaped VGGish
(tests) comes from the weights' metadata; --width-divisor overrides it (e.g. with --set init=random).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

STAGES = ("extract", "table", "finetune", "report")
PAPER_FEATURES = ("embedding", "embedding+pca128", "mfcc")
BETTER = {"classifiers": ("HGB", "JAX-MLP", "JAX-frames"), "features": ("mean_std", "frames")}
# The seed paper's test accuracies (%), as printed there, and the cells of our table that are the same models.
PAPER = (("VGGish embeddings + PCA-128 + RBF SVC", "56.75", ("embedding+pca128", "SVCrbf")),
         ("fine-tuned VGGish + 3968 -> 256 -> 8 head", "53.4", "finetune"),
         ("MFCC + RBF SVC (baseline)", "46.38", ("mfcc", "SVCrbf")))
HEADLINE = PAPER[0][2]
PAPER_CLIPS = 7994  # fma_small clips the paper kept (8,000 less the broken ones)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def paths(out: str) -> dict:
    return {k: os.path.join(out, v) for k, v in (("embeddings", "embeddings"), ("table", "table"),
                                                   ("finetune", "finetune"), ("run", "run.json"),
                                                   ("report", "report.md"))}


def weights_metadata(weights: str, meta: dict | None = None) -> dict:
    """The weights' metadata.json as the report needs it (its file listing left out)."""
    from vggish_jax.models.vggish import params

    if meta is None:
        path = os.path.join(weights, params.METADATA)
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the weights' metadata ({e}); point --weights at a folder "
                             f"written by `vggish-jax convert`") from None
    return {k: v for k, v in meta.items() if k != "params_files"}


def record(out: str, stage: str, seconds: float, **facts) -> None:
    """Merge one stage's wall time and facts into OUT/run.json (earlier stages' entries are kept)."""
    from vggish_jax import atomic

    path = paths(out)["run"]
    run = read_json(path) or {}
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run.setdefault("stages", {})[stage] = {"seconds": seconds, "finished": finished, "machine": machine(),
                                           "versions": versions(), **facts}
    atomic.write_json(path, run)


def read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def stage_extract(a) -> dict:
    from vggish_jax.pipeline import extract as ex

    model = ex.load_model(a.weights, final_relu=True, dataset=a.dataset)
    source = ex.open_source(a.dataset, data_dir=a.data_dir, manual_dir=a.manual_dir, workers=a.workers)
    s = ex.extract(source, paths(a.out)["embeddings"], model, ex.ExtractSettings(
        batch_size=a.batch_size, shard_size=a.shard_size, workers=a.workers, weights_dir=a.weights,
        progress=not a.no_progress, log=log))
    computed, reused = (sum(len(v) for v in d.values()) for d in (s.computed, s.reused))
    log(f"extract: {computed} shards computed, {reused} reused; clips {s.num_clips}, {len(s.skipped)} skipped")
    return {"computed_shards": computed, "reused_shards": reused, "clips": s.num_clips, "skipped": len(s.skipped),
            "weights_metadata": weights_metadata(a.weights)}


def stage_table(a) -> dict:
    from vggish_jax.classify import compare as cc

    report = cc.compare(paths(a.out)["embeddings"], paths(a.out)["table"],
                        cc.CompareSettings(feature_sets=a.features, classifiers=a.classifiers, data_dir=a.data_dir,
                                           jobs=a.jobs, seed=a.seed),
                        log=log)
    b = report["best"]
    log(f"table: best on validation {b['classifier']} on {b['feature_set']}, test accuracy {b['test_accuracy']:.4f}")
    return {"best": b, "split_sizes": report["split_sizes"]}


def finetune_config(a, meta: dict | None):
    """The paper's recipe (train/config.py's defaults) with its final ReLU, the weights' width, then the flags."""
    from vggish_jax.models.vggish import params
    from vggish_jax.train.config import Config, parse_overrides

    width = a.width_divisor or (params.width_divisor_of(meta) if meta else 1)
    cfg = Config(final_relu=True, width_divisor=width)
    if a.epochs is not None:
        cfg = cfg.replace(epochs=a.epochs)
    cfg = parse_overrides(cfg, a.set)
    cfg.check()
    return cfg


def stage_finetune(a) -> dict:
    from vggish_jax.datasets import fma
    from vggish_jax.models.vggish import params
    from vggish_jax.train.loop import train

    backbone = meta = None
    if a.weights:
        backbone, _, meta = params.load(a.weights)
    cfg = finetune_config(a, meta)
    if cfg.init == "pretrained" and meta and cfg.width_divisor != params.width_divisor_of(meta):
        raise ValueError(f"{a.weights}: these weights have width_divisor {params.width_divisor_of(meta)}, not "
                         f"{cfg.width_divisor}; drop --width-divisor (or use --set init=random)")
    if cfg.init == "pretrained" and backbone is None:
        raise ValueError("the finetune stage needs --weights (or --set init=random)")
    builder = fma.prepare(a.dataset, data_dir=a.data_dir, manual_dir=a.manual_dir, workers=a.workers)
    labels = list(fma.label_names(builder))
    sources = fma.data_sources(builder)
    result = train(cfg, sources, len(labels), paths(a.out)["finetune"], backbone=backbone, weights_metadata=meta,
                   label_names=labels, log=log)
    return {"test_accuracy": result.get("test_accuracy"), "split_sizes": {s: len(v) for s, v in sources.items()},
            "dataset": a.dataset, "init": cfg.init, "epochs": cfg.epochs, "width_divisor": cfg.width_divisor,
            "paper_head": cfg.head == "flatten" and cfg.examples_per_clip == 31 and cfg.head_hidden == 256,
            "weights_metadata": weights_metadata(a.weights, meta) if meta and cfg.init == "pretrained" else None}


def metrics_rows(workdir: str) -> tuple[list[dict], dict | None]:
    """(per-epoch rows, the test row or None) of a fine-tuning run's metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return [], None
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if "epoch" in r], next((r for r in rows if r.get("split") == "test"), None)


def plot_val_accuracy(epochs: list[dict], path: str) -> dict:
    """The paper's Figure 7: validation accuracy after each fine-tuning epoch. Returns the points drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    (line,) = ax.plot([r["epoch"] for r in epochs], [r["val_accuracy"] for r in epochs], "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.set_xticks([r["epoch"] for r in epochs])
    ax.set_title("fine-tuning: validation accuracy per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"epoch": [int(x) for x in line.get_xdata()], "val_accuracy": [float(y) for y in line.get_ydata()]}


def confusion_figure(out: str, table: dict) -> dict | None:
    """fig6, the test confusion matrix of the headline model, drawn by the table's own plotting function.

    table.json keeps no predictions, so the headline cell is fitted again with the table's function; the
    model is deterministic, so its test accuracy must equal the table's (checked). Without the headline cell
    in the table, fig6 shows the model chosen on validation instead (named in the file name).
    """
    import numpy as np
    from vggish_jax.classify import compare as cc, tables
    from vggish_jax.pipeline import store

    cells = {(c["feature_set"], c["classifier"]): c for c in table["cells"] if not c.get("error")}
    fs, clf = HEADLINE if HEADLINE in cells else (table["best"]["feature_set"], table["best"]["classifier"])
    if fs not in cc.FEATURE_SETS or fs in ("mfcc", "musicnn") or clf in cc.JAX_HEADS:
        log(f"report: fig6 not drawn ({clf} on {fs} cannot be refitted from the store alone)")
        return None
    splits = {s: store.load_split(table["embeddings"], s) for s in cc.SPLITS}
    cell = cc.run_cell(fs, clf, cc.build_features(splits)[fs], table["seed"])
    want = cells[(fs, clf)]["test_accuracy"]
    if not np.isclose(cell["test_accuracy"], want, rtol=0, atol=1e-12):
        raise RuntimeError(f"{clf} on {fs} refitted scores {cell['test_accuracy']} on test, the table says {want}: "
                           f"the store changed since the table was made; rerun --stages table,report")
    name = f"{fs}_{clf}".replace("+", "_")
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tables.plot_results(tmp, cell, splits["test"].labels, table["label_names"], table)
        os.replace(os.path.join(tmp, "confusion_best.png"), os.path.join(out, f"fig6_confusion_{name}.png"))
    return {"feature_set": fs, "classifier": clf, "file": f"fig6_confusion_{name}.png",
            "headline": (fs, clf) == HEADLINE}


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


WHAT_USES = {"extract": "the embedding numbers (table rows other than MFCC, Figure 6)",
             "finetune": "the fine-tuning numbers (Figure 7)"}


def provenance(run: dict, table: dict | None, data_note: str | None) -> list[str]:
    """Plain sentences on what the numbers are worth: random weights, data other than the full FMA-small."""
    lines = []
    stages = run.get("stages", {})
    for st in ("extract", "finetune"):
        if st not in stages:
            continue
        meta = stages[st].get("weights_metadata") or {}
        src = "random (init=random)" if stages[st].get("init") == "random" else meta.get("source")
        if src and str(src).startswith("random"):
            lines.append(f"**Random weights: {WHAT_USES[st]} come from a randomly initialised VGGish (weights "
                         f"`source: {src}`) and mean nothing about music.**")
        else:
            lines.append(f"Weights for {WHAT_USES[st]}: source `{src}`, sha256 "
                         f"`{str(meta.get('weights_sha256', '?'))[:16]}...`, width_divisor "
                         f"{meta.get('width_divisor', 1)}.")
    sizes = (table or {}).get("split_sizes") or stages.get("finetune", {}).get("split_sizes")
    dataset = (table or {}).get("dataset") or stages.get("finetune", {}).get("dataset")
    if sizes:
        n = sum(sizes.values())
        if not str(dataset).startswith("fma/small") or n < PAPER_CLIPS:
            lines.append(f"**Data: {dataset} with {n} clips, not the full FMA-small the paper used "
                         f"({PAPER_CLIPS} clips): the numbers are not comparable with the paper's.**")
    if data_note:
        lines.append(f"Data note: {data_note}")
    return lines


def versions() -> dict:
    import flax
    import jax
    import numpy
    import optax
    import sklearn

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}


def machine() -> str:
    import jax

    d = jax.devices()
    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"JAX devices: {len(d)} x {d[0].device_kind}")


def stage_report(a) -> dict:
    """Figures and report.md from what the other stages left under OUT (any of them may be missing)."""
    from vggish_jax import atomic

    p = paths(a.out)
    run = read_json(p["run"]) or {}
    table = read_json(os.path.join(p["table"], "table.json"))
    epochs, test = metrics_rows(p["finetune"])
    if table:  # Figure 2 is the table's class-balance plot (clips per genre and split)
        shutil.copyfile(os.path.join(p["table"], "class_balance.png"), os.path.join(a.out, "fig2_class_balance.png"))
    fig6 = confusion_figure(a.out, table) if table else None
    fig7 = plot_val_accuracy(epochs, os.path.join(a.out, "fig7_val_accuracy.png")) if epochs else None
    cells = {(c["feature_set"], c["classifier"]): c for c in (table or {}).get("cells", []) if not c.get("error")}
    best_val = max((r["val_accuracy"] for r in epochs), default=None)
    ft = run.get("stages", {}).get("finetune")
    rows = []
    for name, paper, key in PAPER:
        if key == "finetune":
            ours = (test or {}).get("test_accuracy"), best_val
            if ft and not ft.get("paper_head", True):
                name += " (ours: another head or clip length, see `finetune/config.json`)"
        else:
            c = cells.get(key, {})
            ours = c.get("test_accuracy"), c.get("validation_accuracy")
            name = f"{name} (`{key[1]}` on `{key[0]}`)"
        rows.append(f"| {name} | {paper} | {pct(ours[0])} | {pct(ours[1])} |")
    if table:
        b = table["best"]
        rows.append(f"| ours, best on validation: `{b['classifier']}` on `{b['feature_set']}` | - | "
                    f"{pct(b['test_accuracy'])} | {pct(b['validation_accuracy'])} |")
    lines = ["# The seed paper on FMA-small: its numbers beside ours", "",
             "\n\n".join(provenance(run, table, a.data_note)), "",
             "Test accuracy (%) on the official test split; validation accuracy (%) is what our model selection "
             "saw (fine-tuning: the best epoch, whose checkpoint is scored on test). `-`: not run.", "",
             "| model | paper test | ours test | ours validation |", "|---|---|---|---|", *rows, ""]
    lines += ["Rows: the paper's classifiers with FMA's baseline settings (SVC gamma 'auto'; `vggish_jax.classify."
              "compare`); MFCC is 20 MFCCs of our 64-band VGGish log-mels, 7 statistics each, which need not be the "
              "paper's MFCC features; fine-tuning follows `vggish_jax/train/config.py` with the final ReLU.", ""]
    figs = ["`fig2_class_balance.png` (clips per genre and split, the paper's Figure 2)"] if table else []
    if fig6:
        figs.append(f"`{fig6['file']}` (test confusion matrix of `{fig6['classifier']}` on `{fig6['feature_set']}`; "
                    + ("our reading of the paper's Figure 6 as the headline model's confusion matrix)"
                       if fig6["headline"] else
                       "the headline model was not in the table, so the model chosen on validation is shown)"))
    if epochs:
        figs.append(f"`fig7_val_accuracy.png` (validation accuracy per epoch, {len(epochs)} epoch(s); Figure 7)")
    lines.append(f"Figures: {', '.join(figs) or 'none (no table, no fine-tuning yet)'}. Full table: `table/table.md`; "
                 f"fine-tuning: `finetune/metrics.jsonl`.")
    sizes = {"table (embeddings)": (table or {}).get("split_sizes"),
             "fine-tuning": run.get("stages", {}).get("finetune", {}).get("split_sizes")}
    lines += ["", "## Split sizes (clips)", "", "| used by | train | validation | test |", "|---|---|---|---|"]
    lines += [f"| {k} | {v.get('train')} | {v.get('validation')} | {v.get('test')} |" for k, v in sizes.items() if v]
    lines += ["", "## Wall time per stage (latest run of each; extract's first run includes the dataset build)", "",
              "| stage | seconds | finished (UTC) |", "|---|---|---|"]
    lines += [f"| {s} | {e['seconds']:.1f} | {e['finished']} |" for s, e in run.get("stages", {}).items()]
    stages = {**run.get("stages", {}), "report": {"machine": machine(), "versions": versions()}}
    lines += ["", "## Machine and versions", ""]
    for what in ("machine", "versions"):  # as each stage recorded them (one line when they all agree)
        seen = {}
        for st, e in stages.items():
            if what not in e:
                continue
            v = e.get(what) if what == "machine" else ", ".join(f"{k} {x}" for k, x in e.get(what, {}).items())
            seen.setdefault(v, []).append(st)
        for v, sts in seen.items():
            lines.append(f"- {what}" + ("" if len(seen) == 1 else f" ({', '.join(sts)})") + f": {v}")
    if table:
        lines.append(f"- table: classifiers {', '.join(table['classifiers'])}; feature sets "
                     f"{', '.join(table['feature_sets'])}; seed {table['seed']}; final_relu {table['final_relu']}")
    if ft:
        lines.append(f"- fine-tuning: init {ft['init']}, {ft['epochs']} epochs, width_divisor {ft['width_divisor']} "
                     f"(settings: `finetune/config.json`)")
    atomic.write_text(p["report"], "\n".join(lines) + "\n")
    return {"fig6": fig6, "fig7": fig7}


def run(a) -> int:
    os.makedirs(a.out, exist_ok=True)
    steps = {"extract": stage_extract, "table": stage_table, "finetune": stage_finetune, "report": stage_report}
    for stage in STAGES:
        if stage not in a.stages:
            continue
        needs = {"extract": ("manual_dir", "data_dir", "weights"), "finetune": ("data_dir",)}.get(stage, ())
        missing = [f"--{n.replace('_', '-')}" for n in needs if getattr(a, n) is None]
        if missing:
            raise ValueError(f"the {stage} stage needs {' and '.join(missing)} (or leave it out of --stages)")
        log(f"== {stage}")
        t0 = time.perf_counter()
        facts = steps[stage](a)
        record(a.out, stage, time.perf_counter() - t0, **facts)
    if "report" in a.stages:
        print(open(paths(a.out)["report"]).read())
    return 0


def main(argv=None) -> int:
    from vggish_jax.classify import compare as cc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manual-dir", help="folder with fma_metadata(.zip) and fma_small(.zip)")
    p.add_argument("--data-dir", help="TFDS data directory (the dataset is built there once)")
    p.add_argument("--weights", help="VGGish weights directory (`vggish-jax convert`); its metadata.json is reported")
    p.add_argument("--out", required=True, help="results folder (embeddings/, table/, finetune/, figures, report.md)")
    p.add_argument("--dataset", default="fma/small", help="FMA config (default fma/small, the paper's)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--classifiers", default=",".join(cc.PAPER_CLASSIFIERS),
                   help="table classifiers (default: the paper's 13)")
    p.add_argument("--features", default=",".join(PAPER_FEATURES), help="table feature sets (default: the paper's)")
    p.add_argument("--better-heads", action="store_true",
                   help=f"also {', '.join(BETTER['classifiers'])} on {', '.join(BETTER['features'])}")
    p.add_argument("--jobs", type=int, default=-1, help="parallel table cells (-1: all cores)")
    p.add_argument("--seed", type=int, default=0, help="the table's seed")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the paper's 11)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="fine-tuning config overrides (vggish_jax/train/config.py), applied after --epochs")
    p.add_argument("--width-divisor", type=int, default=None,
                   help="fine-tuning backbone width divisor (default: from the weights' metadata; 1 = VGGish)")
    p.add_argument("--batch-size", type=int, default=62, help="extraction: examples per device call")
    p.add_argument("--shard-size", type=int, default=128, help="extraction: clips per shard (unit of resumption)")
    p.add_argument("--workers", type=int, default=None, help="decode processes for the dataset build")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while extracting")
    p.add_argument("--data-note", default=None, help="a sentence on the data, copied into report.md")
    a = p.parse_args(argv)
    a.stages = [s for s in a.stages.split(",") if s]
    a.classifiers = [c for c in a.classifiers.split(",") if c]
    a.features = [f for f in a.features.split(",") if f]
    if a.better_heads:
        a.classifiers += [c for c in BETTER["classifiers"] if c not in a.classifiers]
        a.features += [f for f in BETTER["features"] if f not in a.features]
    bad = ([s for s in a.stages if s not in STAGES] + [f for f in a.features if f not in cc.FEATURE_SETS]
           + [c for c in a.classifiers if c not in cc.PAPER_CLASSIFIERS + cc.EXTRA_CLASSIFIERS])
    if bad:
        p.error(f"unknown stages/feature sets/classifiers {bad}; stages {STAGES}, feature sets {cc.FEATURE_SETS}, "
                f"classifiers {cc.PAPER_CLASSIFIERS + cc.EXTRA_CLASSIFIERS}")
    try:
        return run(a)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"fma_paper: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
