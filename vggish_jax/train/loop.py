"""The fine-tuning loop: mesh, jitted steps, orbax checkpoints (latest + best), resume, metrics, curves.

Workdir layout: config.json (every setting as resolved, and the EmbeddingSpec of the backbone: a resumed run
with other weights or final_relu is refused); metrics.jsonl (one line per epoch, then one for the test split);
learning_curve.png; ckpt/latest/<step> (every `checkpoint_every` steps and at epoch ends; resume point: the
train state, the epoch's losses and each process's grain iterator state); ckpt/best/<step> (epoch ends, the
best validation accuracy kept). A killed run restarted with the same workdir resumes from ckpt/latest and
follows the same trajectory: data order, augmentation keys and dropout-free steps are all functions of (seed,
step). Checkpoints hold plain arrays, so they restore onto any device count.

Multi-host runs join with `vggish_jax.distributed.initialize` before `train` (the commands do, from
--coordinator/--num-processes/--process-id); this module only reads `jax.process_index()` / `process_count()`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.models.vggish import frontend, params as params_lib
from vggish_jax.train import augment, data as data_lib, sharding
from vggish_jax.train.config import Config
from vggish_jax.train.model import GenreClassifier
from vggish_jax.train.step import make_optimizer, make_steps


def _manager(path: str, best: bool) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False,
                                        best_fn=(lambda m: m["val_accuracy"]) if best else None,
                                        best_mode="max")
    return ocp.CheckpointManager(os.path.abspath(path), options=opts)


def _abstract(tree, sharding_):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding_), tree)


def init_params(cfg: Config, num_classes: int, backbone: dict | None):
    if cfg.final_relu is None:
        raise ValueError("final_relu is unresolved; pass the config through loop.resolve first")
    model = GenreClassifier(num_classes, examples_per_clip=cfg.examples_per_clip, hidden=cfg.head_hidden,
                            final_relu=cfg.final_relu, dtype=jnp.dtype(cfg.dtype), width_divisor=cfg.width_divisor,
                            head=cfg.head, rngs=nnx.Rngs(cfg.seed))
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    if backbone is not None:
        want = jax.tree.map(lambda a: a.shape, params["backbone"])
        got = jax.tree.map(lambda a: np.shape(a), backbone)
        if want != got:
            raise ValueError("pretrained VGGish weights do not fit this backbone (width_divisor must be 1)")
        params["backbone"] = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), backbone)
    return graphdef, params


def resolve(cfg: Config, weights_metadata: dict | None, input_kind: str) -> Config:
    """The settings a run actually uses: final_relu from the weights' metadata unless set, the input kind."""
    if cfg.init == "pretrained":  # the weights' own record (params_lib.final_relu_of) unless set
        final_relu = params_lib.final_relu_of(weights_metadata or {}, cfg.final_relu)
    else:  # random init: the paper's ReLU unless set
        final_relu = True if cfg.final_relu is None else cfg.final_relu
    return cfg.replace(final_relu=final_relu, input=input_kind)


def embedding_spec(cfg: Config, backbone: dict | None, weights_metadata: dict | None) -> spec_lib.EmbeddingSpec:
    """How the backbone embeds at the start of this run (weights identity None for a random init)."""
    sha = None
    if cfg.init == "pretrained":
        sha = (weights_metadata or {}).get("weights_sha256") or spec_lib.params_sha256(backbone)
    return spec_lib.EmbeddingSpec.create(weights_sha256=sha, final_relu=cfg.final_relu, dtype=cfg.dtype,
                                         frontend=frontend.DEFAULT)


def waveform_samples(cfg: Config, training: bool) -> int | None:
    """Samples per clip the host sends in waveform mode (None: mel mode); with random_crop the crop range too."""
    if cfg.input != "waveform":
        return None
    needed = augment.needed_samples(cfg.examples_per_clip)
    return max(needed, cfg.max_clip_samples) if training and cfg.random_crop else needed


def train(cfg: Config, sources: dict, num_classes: int, workdir: str, *, backbone: dict | None = None,
          weights_metadata: dict | None = None, label_names=None, log=print,
          stop_after_steps: int | None = None) -> dict:
    """Fine-tune; returns the final metrics. `stop_after_steps` stops early (like a kill, after a checkpoint).

    backbone / weights_metadata: the VGGish params and metadata.json of a weights directory
    (`models.vggish.params.load`).
    """
    cfg.check()
    sharding.check_batch(cfg.batch_size)
    for split in ("train", "validation"):
        if split not in sources or len(sources[split]) == 0:
            raise ValueError(f"the {split} split is empty; check the dataset build and its skip report")
    cfg = resolve(cfg, weights_metadata, data_lib.input_kind(sources["train"], cfg.input))
    if cfg.audio_augment and cfg.input != "waveform":
        raise ValueError("random_crop, gain_db and mixup_alpha work on audio: use a waveform dataset "
                         "(e.g. --dataset fma/small_waveform) or turn them off")
    steps_per_epoch = data_lib.steps_per_epoch(sources["train"], cfg.batch_size)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(sources['train'])} training clips are fewer than one batch of {cfg.batch_size}")
    if cfg.init == "pretrained" and backbone is None:
        raise ValueError("init=pretrained needs VGGish weights (--weights DIR); or --set init=random")
    os.makedirs(workdir, exist_ok=True)
    spec = embedding_spec(cfg, backbone, weights_metadata)
    latest = _manager(os.path.join(workdir, "ckpt", "latest"), best=False)
    best = _manager(os.path.join(workdir, "ckpt", "best"), best=True)
    config_path = os.path.join(workdir, "config.json")
    if latest.latest_step() is not None and os.path.exists(config_path):
        with open(config_path) as f:
            previous = json.load(f)
        spec_lib.require_compatible(spec, spec_lib.read(previous, config_path),
                                    expected_from="this run's weights and settings", found_from=config_path)
        _require_same_state(cfg, num_classes, previous, config_path)
    if jax.process_index() == 0:
        atomic.write_json(config_path, {
            **dataclasses.asdict(cfg), "num_classes": num_classes, "label_names": list(label_names or []),
            "devices": jax.device_count(), "processes": jax.process_count(), spec_lib.KEY: spec.to_dict()})

    mesh = sharding.make_mesh()
    graphdef, params = init_params(cfg, num_classes, backbone if cfg.init == "pretrained" else None)
    opt = make_optimizer(cfg, steps_per_epoch, params)
    state = sharding.replicate(mesh, (params, opt.init(params)))
    train_step, eval_step = make_steps(graphdef, cfg, opt, num_classes)
    repl = sharding.replicated(mesh)
    train_step = jax.jit(train_step, donate_argnums=(0,), out_shardings=((repl, repl), repl))
    eval_step = jax.jit(eval_step)

    pi, pc = jax.process_index(), jax.process_count()
    put = lambda b: sharding.shard_batch(mesh, {k: v for k, v in b.items() if k != "mask"})
    train_data = data_lib.train_dataset(sources["train"], cfg.batch_size, cfg.examples_per_clip, cfg.seed,
                                        cfg.epochs, pi, pc, waveform_samples(cfg, training=True))
    # The loader: grain iterates train_data[start:] (element j is step start + j); its state is saved with each
    # latest checkpoint, with what it depends on (process count, worker count, start).
    loader = {"processes": pc, "workers": cfg.loader_workers, "start": 0}
    step, epoch_losses = 0, []
    if latest.latest_step() is not None:
        step = latest.latest_step()
        state, epoch_losses, loader, batches = _restore(latest, step, state, repl, loader, train_data,
                                                        lambda ds: data_lib.iterate(ds, cfg.loader_workers,
                                                                                    cfg.prefetch, put))
        log(f"resumed from step {step} ({workdir})")
    else:
        batches = data_lib.iterate(train_data, cfg.loader_workers, cfg.prefetch, put)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    _truncate_metrics(metrics_path, step // steps_per_epoch)

    def save(mgr, s, extra=None):
        items = dict(state=ocp.args.StandardSave(state),
                     meta=ocp.args.JsonSave({"epoch_losses": epoch_losses, "loader": loader}))
        if mgr is latest:  # where the next batch comes from
            items["data"] = grain.checkpoint.CheckpointSave(batches)
        mgr.save(s, args=ocp.args.Composite(**items), metrics=extra)

    base_key = jax.random.PRNGKey(cfg.seed)
    t0 = time.perf_counter()
    while step < cfg.epochs * steps_per_epoch:
        epoch = step // steps_per_epoch
        for batch in batches:
            state, m = train_step(state, batch, jax.random.fold_in(base_key, step))
            step += 1
            epoch_losses.append(float(m["loss"]))
            if step % steps_per_epoch == 0:
                break
            if step % cfg.checkpoint_every == 0:
                save(latest, step)
            if stop_after_steps is not None and step >= stop_after_steps:
                latest.wait_until_finished()
                batches.close()
                return {"stopped_at_step": step, "params": state[0]}
        val_acc = evaluate(eval_step, state[0], sources["validation"], cfg, mesh)
        record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(epoch_losses)),
                  "val_accuracy": val_acc, "seconds": time.perf_counter() - t0}
        epoch_losses = []
        save(latest, step)
        save(best, step, {"val_accuracy": val_acc})
        if pi == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        log(f"epoch {record['epoch']}/{cfg.epochs}: train loss {record['train_loss']:.4f}, val acc {val_acc:.4f}")
        if stop_after_steps is not None and step >= stop_after_steps:
            latest.wait_until_finished()
            batches.close()
            return {"stopped_at_step": step, "params": state[0]}
    batches.close()
    latest.wait_until_finished()
    best.wait_until_finished()
    final = {"step": step}
    if "test" in sources and len(sources["test"]):
        best_step = best.best_step()
        restored = best.restore(best_step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(state, repl)), meta=ocp.args.JsonRestore()))
        final = {"split": "test", "best_step": best_step, "step": step,
                 "test_accuracy": evaluate(eval_step, restored["state"][0], sources["test"], cfg, mesh)}
        if pi == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(final) + "\n")
        log(f"test accuracy (best validation checkpoint, step {best_step}): {final['test_accuracy']:.4f}")
    if pi == 0:
        plot_learning_curve(metrics_path, os.path.join(workdir, "learning_curve.png"))
    final["params"] = state[0]
    return final


# Settings that shape the checkpointed params and optimizer state: a resume cannot change them.
STATE_FIELDS = ("num_classes", "head", "head_hidden", "examples_per_clip", "width_divisor", "freeze_conv",
                "grad_accum", "weight_decay")


def _require_same_state(cfg: Config, num_classes: int, previous: dict, config_path: str) -> None:
    now = {**dataclasses.asdict(cfg), "num_classes": num_classes}
    diff = [f"{k}={previous.get(k)!r} there, {now[k]!r} now" for k in STATE_FIELDS if previous.get(k) != now[k]]
    if diff:
        raise ValueError(f"{config_path}: its checkpoint was made with other settings ({'; '.join(diff)}); "
                         f"resume with the same settings or use another --workdir")


def _restore(mgr, step: int, state, repl, loader: dict, train_data, iterate):
    """The checkpointed train state and epoch losses, and the train batches from step `step` on.

    grain's saved iterator state fits only the pipeline that wrote it (one file per process; another worker
    count nests it differently). With the same pipeline it is restored; otherwise the iterator starts afresh
    at train_data[step:], which holds the same batches, since element k is a function of (seed, k).
    """
    meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    saved = meta.get("loader") or {}
    same = {k: saved.get(k) for k in ("processes", "workers")} == {k: loader[k] for k in ("processes", "workers")}
    items = dict(state=ocp.args.StandardRestore(_abstract(state, repl)), meta=ocp.args.JsonRestore())
    if same:
        loader = {**loader, "start": saved["start"]}
        batches = iterate(train_data[loader["start"]:])
        items["data"] = grain.checkpoint.CheckpointRestore(batches)
    else:
        loader = {**loader, "start": step}
        batches = iterate(train_data[step:])
    restored = mgr.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], restored["meta"]["epoch_losses"], loader, batches


def evaluate(eval_step, params, source, cfg: Config, mesh) -> float:
    correct = count = 0.0
    data = data_lib.eval_dataset(source, cfg.batch_size, cfg.examples_per_clip, jax.process_index(),
                                 jax.process_count(), waveform_samples(cfg, training=False))
    batches = data_lib.iterate(data, cfg.loader_workers, cfg.prefetch)
    for batch in batches:
        out = eval_step(params, sharding.shard_batch(mesh, batch))
        correct += float(out["correct"])
        count += float(out["count"])
    batches.close()
    return correct / max(count, 1.0)


def _truncate_metrics(path: str, epochs_done: int) -> None:
    """On resume, drop metric lines of epochs after the checkpoint (they will be recomputed identically)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [l for l in f if l.strip() and json.loads(l).get("epoch", 10**9) <= epochs_done]
    atomic.write_text(path, "".join(lines))


def plot_learning_curve(metrics_path: str, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    rows = [r for r in rows if "epoch" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot([r["epoch"] for r in rows], [r["val_accuracy"] for r in rows], "s-", color="tab:orange",
             label="validation accuracy")
    ax2.set_ylabel("validation accuracy")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
