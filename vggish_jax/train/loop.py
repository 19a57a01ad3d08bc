"""The fine-tuning loop: mesh, jitted steps, orbax checkpoints (latest + best), resume, metrics, curves.

Workdir: config.json (resolved settings + the backbone's EmbeddingSpec; changes on resume are refused or, if
allowed, listed in 'history'), metrics.jsonl (a line per epoch, then test), learning_curve.png,
ckpt/latest/<step> (resume point, with the grain iterator state) and ckpt/best/<step>. A restarted run resumes
from ckpt/latest on the same trajectory (everything is a function of (seed, step)), on any device count.
Data parallel: one 1-D mesh, batches split on 'data', everything else replicated. Multi-host runs call
`vggish_jax.distributed.initialize` first.
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
from jax.sharding import NamedSharding, PartitionSpec as P

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.models.vggish import frontend, params as params_lib
from vggish_jax.train import augment, data as data_lib
from vggish_jax.train.config import Config
from vggish_jax.train.step import GenreClassifier, make_optimizer, make_steps

# Settings that shape the checkpointed params and optimizer state: a resume cannot change them.
STATE_FIELDS = ("num_classes", "head", "head_hidden", "examples_per_clip", "width_divisor", "freeze_conv",
                "grad_accum", "weight_decay")
# Settings of how the work is run, not of what is computed: a resume may change them freely.
RUNTIME_FIELDS = ("checkpoint_every", "prefetch", "loader_workers")


def check_batch(global_batch: int) -> None:
    """The global batch must split evenly over the devices (and so over the processes)."""
    n = jax.device_count()
    if global_batch % n:
        raise ValueError(f"batch_size {global_batch} does not divide by the {n} devices; "
                         f"use a multiple of {n} (or gradient accumulation for larger effective batches)")


def shard_batch(mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over 'data' (works on one host and many)."""
    return {k: jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), v) for k, v in local.items()}


def init_params(cfg: Config, num_classes: int, backbone: dict | None):
    if cfg.final_relu is None:
        raise ValueError("final_relu is unresolved; pass the config through loop.resolve first")
    model = GenreClassifier(num_classes, examples_per_clip=cfg.examples_per_clip, hidden=cfg.head_hidden,
                            final_relu=cfg.final_relu, dtype=jnp.dtype(cfg.dtype), width_divisor=cfg.width_divisor,
                            head=cfg.head, rngs=nnx.Rngs(cfg.seed))
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    if backbone is not None:
        if jax.tree.map(lambda a: a.shape, params["backbone"]) != jax.tree.map(np.shape, backbone):
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


def waveform_samples(cfg: Config, training: bool) -> int | None:
    """Samples per clip the host sends in waveform mode (None: mel mode); with random_crop the crop range too."""
    if cfg.input != "waveform":
        return None
    needed = augment.needed_samples(cfg.examples_per_clip)
    return max(needed, cfg.max_clip_samples) if training and cfg.random_crop else needed


def train(cfg: Config, sources: dict, num_classes: int, workdir: str, *, backbone: dict | None = None,
          weights_metadata: dict | None = None, label_names=None, log=print,
          stop_after_steps: int | None = None, allow_changed_settings: bool = False) -> dict:
    """Fine-tune; returns the final metrics. `stop_after_steps` stops early (like a kill, after a checkpoint).
    backbone / weights_metadata: from `models.vggish.params.load`."""
    cfg, steps_per_epoch = _checked(cfg, sources, backbone, weights_metadata)
    os.makedirs(workdir, exist_ok=True)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    latest, best = (_manager(os.path.join(workdir, "ckpt", name), name == "best") for name in ("latest", "best"))
    _write_config(os.path.join(workdir, "config.json"), cfg, num_classes, backbone, weights_metadata, label_names,
                  resuming=latest.latest_step(), allow_changed=allow_changed_settings)
    mesh, train_step, eval_step, state = _setup(cfg, num_classes, backbone, steps_per_epoch)
    accuracy = lambda params, split: evaluate(eval_step, params, sources[split], cfg, mesh)
    pi, pc = jax.process_index(), jax.process_count()
    train_data = data_lib.train_dataset(sources["train"], cfg.batch_size, cfg.examples_per_clip, cfg.seed,
                                        cfg.epochs, pi, pc, waveform_samples(cfg, training=True))
    iterate = lambda ds: data_lib.iterate(ds, cfg.loader_workers, cfg.prefetch, lambda b: shard_batch(
        mesh, {k: v for k, v in b.items() if k != "mask"}))
    # The loader: grain iterates train_data[start:] (element j is step start + j); its state is saved with each
    # latest checkpoint, with what it depends on (process count, worker count, the data settings, start).
    loader = {"processes": pc, "workers": cfg.loader_workers, "batch_size": cfg.batch_size, "seed": cfg.seed,
              "epochs": cfg.epochs, "start": 0}
    first = latest.latest_step()
    state, batches, loader, losses, history, elapsed = _restore(latest, first, state, loader, train_data, iterate,
                                                                metrics_path, steps_per_epoch)
    step = first or 0
    if first is not None:
        log(f"resumed from step {step} ({workdir})")
    if pi == 0:  # the log of exactly the epochs the checkpoint holds, as an uninterrupted run has it now
        atomic.write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))

    def save(mgr, metrics: dict | None = None) -> None:
        meta = {"epoch_losses": losses, "loader": loader, "history": history, "elapsed": elapsed}
        items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        if mgr is latest:  # where the next batch comes from
            items["data"] = grain.checkpoint.CheckpointSave(batches)
        mgr.save(step, args=ocp.args.Composite(**items), metrics=metrics)

    # A kill between an epoch end's latest and best checkpoints leaves best without that epoch: save it now.
    if first is not None and history and history[-1]["step"] == step and step not in best.all_steps():
        save(best, {"val_accuracy": history[-1]["val_accuracy"]})
    key, t0, stopped = jax.random.PRNGKey(cfg.seed), time.perf_counter() - elapsed, False
    while step < cfg.epochs * steps_per_epoch and not stopped:
        for batch in batches:
            state, m = train_step(state, batch, jax.random.fold_in(key, step))
            step += 1
            losses.append(float(m["loss"]))
            stopped = stop_after_steps is not None and step >= stop_after_steps
            if step % steps_per_epoch == 0:
                break
            if step % cfg.checkpoint_every == 0:
                elapsed = time.perf_counter() - t0
                save(latest)
            if stopped:
                break
        if step % steps_per_epoch:  # stopped mid-epoch
            break
        # Validate, checkpoint (latest with this epoch's record, best), then log it (a kill between is repaired).
        elapsed = time.perf_counter() - t0
        val_acc = accuracy(state[0], "validation")
        history.append({"epoch": step // steps_per_epoch, "step": step, "train_loss": float(np.mean(losses)),
                        "val_accuracy": val_acc, "seconds": elapsed})
        losses = []
        save(latest)
        save(best, {"val_accuracy": val_acc})
        _append(metrics_path, history[-1])
        log(f"epoch {history[-1]['epoch']}/{cfg.epochs}: train loss {history[-1]['train_loss']:.4f}, "
            f"val acc {val_acc:.4f}")
    batches.close()
    latest.wait_until_finished()
    best.wait_until_finished()
    result = {"params": state[0], "resumed_from_step": first, "steps_run": step - (first or 0)}
    if stopped:
        return {"stopped_at_step": step, **result}
    final = {"step": step}
    if "test" in sources and len(sources["test"]):
        final = _test(best, state, lambda p: accuracy(p, "test"), step, metrics_path, log)
    if pi == 0:
        plot_learning_curve(metrics_path, os.path.join(workdir, "learning_curve.png"))
    return {**final, **result}


def _test(best, state, accuracy, step: int, metrics_path: str, log) -> dict:
    """Test accuracy of the best validation checkpoint (restored like `state`), appended to metrics.jsonl."""
    best_step = best.best_step()
    restored = best.restore(best_step, args=ocp.args.Composite(state=ocp.args.StandardRestore(state),
                                                               meta=ocp.args.JsonRestore()))
    final = {"split": "test", "best_step": best_step, "step": step, "test_accuracy": accuracy(restored["state"][0])}
    _append(metrics_path, final)
    log(f"test accuracy (best validation checkpoint, step {best_step}): {final['test_accuracy']:.4f}")
    return final


def _setup(cfg: Config, num_classes: int, backbone, steps_per_epoch: int) -> tuple:
    """(mesh, jitted train and eval steps, replicated (params, optimizer state))."""
    # Auto axes: the compiler propagates the batch sharding through the model and all-reduces the gradients.
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    repl = NamedSharding(mesh, P())
    graphdef, params = init_params(cfg, num_classes, backbone if cfg.init == "pretrained" else None)
    opt = make_optimizer(cfg, steps_per_epoch, params)
    train_step, eval_step = make_steps(graphdef, cfg, opt, num_classes)
    train_step = jax.jit(train_step, donate_argnums=(0,), out_shardings=((repl, repl), repl))
    return mesh, train_step, jax.jit(eval_step), jax.device_put((params, opt.init(params)), repl)


def _checked(cfg: Config, sources: dict, backbone, weights_metadata) -> tuple[Config, int]:
    """The resolved settings and the steps per epoch, or a one-line ValueError before anything is built."""
    cfg.check()
    check_batch(cfg.batch_size)
    for split in ("train", "validation"):
        if split not in sources or len(sources[split]) == 0:
            raise ValueError(f"the {split} split is empty; check the dataset build and its skip report")
    cfg = resolve(cfg, weights_metadata, data_lib.input_kind(sources["train"], cfg.input))
    if cfg.audio_augment and cfg.input != "waveform":
        raise ValueError("random_crop, gain_db and mixup_alpha work on audio: use a waveform dataset "
                         "(e.g. --dataset fma/small_waveform) or turn them off")
    steps_per_epoch = len(sources["train"]) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(sources['train'])} training clips are fewer than one batch of {cfg.batch_size}")
    if cfg.init == "pretrained" and backbone is None:
        raise ValueError("init=pretrained needs VGGish weights (--weights DIR); or --set init=random")
    return cfg, steps_per_epoch


def _manager(path: str, best: bool) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False,
                                        best_fn=(lambda m: m["val_accuracy"]) if best else None,
                                        best_mode="max")
    return ocp.CheckpointManager(os.path.abspath(path), options=opts)


def _append(metrics_path: str, record: dict) -> None:
    if jax.process_index() == 0:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _write_config(config_path: str, cfg: Config, num_classes: int, backbone, weights_metadata, label_names, *,
                  resuming: int | None, allow_changed: bool) -> None:
    """config.json, with how the backbone embeds at the start of this run (weights identity None for a random
    init); on resume a change from the settings in effect is refused, or with `allow_changed` recorded in its
    history."""
    sha = None
    if cfg.init == "pretrained":
        sha = (weights_metadata or {}).get("weights_sha256") or spec_lib.params_sha256(backbone)
    spec = spec_lib.EmbeddingSpec.create(weights_sha256=sha, final_relu=cfg.final_relu, dtype=cfg.dtype,
                                         frontend=frontend.DEFAULT)
    now = {**dataclasses.asdict(cfg), "num_classes": num_classes}
    record = {**now, "label_names": list(label_names or []), "devices": jax.device_count(),
              "processes": jax.process_count(), spec_lib.KEY: spec.to_dict()}
    if resuming is not None and os.path.exists(config_path):
        with open(config_path) as f:
            previous = json.load(f)
        spec_lib.require_compatible(spec, spec_lib.read(previous, config_path),
                                    expected_from="this run's weights and settings", found_from=config_path)
        effective = settings_in_effect(previous)
        diff = [f"{k}={effective.get(k)!r} there, {now[k]!r} now" for k in STATE_FIELDS if effective.get(k) != now[k]]
        if diff:
            raise ValueError(f"{config_path}: its checkpoint was made with other settings ({'; '.join(diff)}); "
                             f"resume with the same settings or use another --workdir")
        changed = {k: [effective.get(k), v] for k, v in dataclasses.asdict(cfg).items()
                   if k not in RUNTIME_FIELDS and effective.get(k, v) != v}
        if changed and not allow_changed:
            diff = "; ".join(f"{k}={a!r} there, {b!r} now" for k, (a, b) in changed.items())
            raise ValueError(f"{config_path}: the checkpoint (step {resuming}) was made with other settings "
                             f"({diff}); resume with the same settings, pass --allow-changed-settings to go on "
                             f"with the new ones, or use another --workdir")
        history = list(previous.get("history", [])) + ([{"resumed_at_step": resuming, "changed": changed}]
                                                        if changed else [])
        record = {**previous, "devices": record["devices"], "processes": record["processes"], "history": history}
    if jax.process_index() == 0:
        atomic.write_json(config_path, record)


def settings_in_effect(config: dict) -> dict:
    """A config.json's settings as the run uses them now: the first run's, with each resume's changes applied."""
    out = dict(config)
    for entry in config.get("history", []):
        out.update({k: new for k, (_, new) in entry["changed"].items()})
    return out


def _restore(latest, step: int | None, state, loader: dict, train_data, iterate, metrics_path: str,
             steps_per_epoch: int) -> tuple:
    """(state, batches from `step` on, loader, losses, history, elapsed) of the checkpoint (None: a fresh start):
    the batches from grain's iterator state if the pipeline is the same (it fits only that), else
    train_data[step:], which holds the same batches."""
    if step is None:
        return state, iterate(train_data), loader, [], [], 0.0
    saved = latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"].get("loader") or {}
    same = all(saved.get(k) == v for k, v in loader.items() if k != "start")
    loader = {**loader, "start": saved["start"] if same else step}
    batches = iterate(train_data[loader["start"]:])
    items = dict(state=ocp.args.StandardRestore(state), meta=ocp.args.JsonRestore())  # shaped and placed as state
    if same:
        items["data"] = grain.checkpoint.CheckpointRestore(batches)
    restored = latest.restore(step, args=ocp.args.Composite(**items))
    meta = restored["meta"]
    history = meta.get("history")
    if history is None:  # a checkpoint from before records were saved with it: keep the log's lines up to it
        rows = [json.loads(line) for line in open(metrics_path) if line.strip()] if os.path.exists(metrics_path) else []
        history = [r for r in rows if r.get("epoch", 10**9) <= step // steps_per_epoch]
    return restored["state"], batches, loader, meta["epoch_losses"], history, float(meta.get("elapsed", 0.0))


def evaluate(eval_step, params, source, cfg: Config, mesh) -> float:
    correct = count = 0.0
    data = data_lib.eval_dataset(source, cfg.batch_size, cfg.examples_per_clip, jax.process_index(),
                                 jax.process_count(), waveform_samples(cfg, training=False))
    batches = data_lib.iterate(data, cfg.loader_workers, cfg.prefetch)
    for batch in batches:
        out = eval_step(params, shard_batch(mesh, batch))
        correct += float(out["correct"])
        count += float(out["count"])
    batches.close()
    return correct / max(count, 1.0)


def plot_learning_curve(metrics_path: str, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_path) as f:
        rows = [r for r in map(json.loads, filter(str.strip, f)) if "epoch" in r]
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train loss")
    ax.set(xlabel="epoch", ylabel="train loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [r["val_accuracy"] for r in rows], "s-", color="tab:orange", label="validation accuracy")
    ax2.set(ylabel="validation accuracy", ylim=(0, 1))
    fig.legend(loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
