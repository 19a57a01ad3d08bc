"""The fine-tuning loop: mesh, jitted steps, orbax checkpoints (latest + best), resume, metrics, curves.

Workdir: config.json (resolved settings + the backbone's EmbeddingSpec; changes on resume are refused or, if
allowed, listed in 'history'), metrics.jsonl (a line per epoch, then test), learning_curve.png,
ckpt/latest/<step> (resume point, with the grain iterator state) and ckpt/best/<step>. A restarted run resumes
from ckpt/latest on the same trajectory (everything is a function of (seed, step)), on any device count.
Multi-host runs call `vggish_jax.distributed.initialize` first.
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


@dataclasses.dataclass
class _Run:
    """What one call of `train` works with: resolved settings, jitted steps, checkpoint managers, paths."""
    cfg: Config
    workdir: str
    steps_per_epoch: int
    mesh: jax.sharding.Mesh
    train_step: object
    eval_step: object
    latest: ocp.CheckpointManager
    best: ocp.CheckpointManager
    log: object

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.workdir, "metrics.jsonl")

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch


@dataclasses.dataclass
class _State:
    """Where training stands; everything but `batches` is saved with each latest checkpoint."""
    step: int
    state: tuple  # (params, optimizer state), replicated
    batches: object  # the train batches from `step` on (a grain iterator)
    loader: dict  # what grain's saved iterator state depends on, and the train_data index it started at
    epoch_losses: list = dataclasses.field(default_factory=list)
    history: list = dataclasses.field(default_factory=list)  # the metrics.jsonl record of every finished epoch
    elapsed: float = 0.0  # training seconds before this process started
    resumed_from: int | None = None


def train(cfg: Config, sources: dict, num_classes: int, workdir: str, *, backbone: dict | None = None,
          weights_metadata: dict | None = None, label_names=None, log=print,
          stop_after_steps: int | None = None, allow_changed_settings: bool = False) -> dict:
    """Fine-tune; returns the final metrics. `stop_after_steps` stops early (like a kill, after a checkpoint).
    backbone / weights_metadata: from `models.vggish.params.load`."""
    cfg, steps_per_epoch = _checked(cfg, sources, backbone, weights_metadata)
    os.makedirs(workdir, exist_ok=True)
    spec = embedding_spec(cfg, backbone, weights_metadata)
    latest = _manager(os.path.join(workdir, "ckpt", "latest"), best=False)
    best = _manager(os.path.join(workdir, "ckpt", "best"), best=True)
    _write_config(os.path.join(workdir, "config.json"), cfg, num_classes, spec, label_names,
                  resuming=latest.latest_step(), allow_changed=allow_changed_settings)
    mesh = sharding.make_mesh()
    graphdef, params = init_params(cfg, num_classes, backbone if cfg.init == "pretrained" else None)
    opt = make_optimizer(cfg, steps_per_epoch, params)
    train_step, eval_step = make_steps(graphdef, cfg, opt, num_classes)
    repl = sharding.replicated(mesh)
    run = _Run(cfg, workdir, steps_per_epoch, mesh,
               jax.jit(train_step, donate_argnums=(0,), out_shardings=((repl, repl), repl)), jax.jit(eval_step),
               latest, best, log)
    st = _start(run, sources["train"], sharding.replicate(mesh, (params, opt.init(params))))
    first = st.step
    stopped = _fit(run, st, sources, stop_after_steps)
    st.batches.close()
    latest.wait_until_finished()
    best.wait_until_finished()
    if stopped:
        return {"stopped_at_step": st.step, "params": st.state[0], "resumed_from_step": st.resumed_from,
                "steps_run": st.step - first}
    final = _test(run, st, sources)
    if jax.process_index() == 0:
        plot_learning_curve(run.metrics_path, os.path.join(workdir, "learning_curve.png"))
    return {**final, "params": st.state[0], "resumed_from_step": st.resumed_from, "steps_run": st.step - first}


def _checked(cfg: Config, sources: dict, backbone, weights_metadata) -> tuple[Config, int]:
    """The resolved settings and the steps per epoch, or a one-line ValueError before anything is built."""
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
    return cfg, steps_per_epoch


def _start(run: _Run, train_source, state) -> _State:
    """A fresh start at step 0, or the latest checkpoint restored; metrics.jsonl rewritten to match it."""
    cfg, pi, pc = run.cfg, jax.process_index(), jax.process_count()
    put = lambda b: sharding.shard_batch(run.mesh, {k: v for k, v in b.items() if k != "mask"})
    iterate = lambda ds: data_lib.iterate(ds, cfg.loader_workers, cfg.prefetch, put)
    train_data = data_lib.train_dataset(train_source, cfg.batch_size, cfg.examples_per_clip, cfg.seed,
                                        cfg.epochs, pi, pc, waveform_samples(cfg, training=True))
    # The loader: grain iterates train_data[start:] (element j is step start + j); its state is saved with each
    # latest checkpoint, with what it depends on (process count, worker count, the data settings, start).
    loader = {"processes": pc, "workers": cfg.loader_workers, "batch_size": cfg.batch_size, "seed": cfg.seed,
              "epochs": cfg.epochs, "start": 0}
    step = run.latest.latest_step()
    if step is None:
        st = _State(0, state, iterate(train_data), loader)
    else:
        st = _restore(run, step, state, loader, train_data, iterate)
        run.log(f"resumed from step {step} ({run.workdir})")
    if pi == 0:  # the log of exactly the epochs the checkpoint holds, as an uninterrupted run has it now
        atomic.write_text(run.metrics_path, "".join(json.dumps(r) + "\n" for r in st.history))
    if step is not None:
        _save_best_if_missing(run, st)
    return st


def _fit(run: _Run, st: _State, sources: dict, stop_after_steps: int | None) -> bool:
    """Train to the last epoch (True: stopped early at `stop_after_steps`, after a checkpoint)."""
    base_key = jax.random.PRNGKey(run.cfg.seed)
    t0 = time.perf_counter() - st.elapsed
    while st.step < run.total_steps:
        for batch in st.batches:
            st.state, m = run.train_step(st.state, batch, jax.random.fold_in(base_key, st.step))
            st.step += 1
            st.epoch_losses.append(float(m["loss"]))
            if st.step % run.steps_per_epoch == 0:
                break
            if st.step % run.cfg.checkpoint_every == 0:
                _save(run, run.latest, st, time.perf_counter() - t0)
            if stop_after_steps is not None and st.step >= stop_after_steps:
                return True
        _end_epoch(run, st, sources["validation"], time.perf_counter() - t0)
        if stop_after_steps is not None and st.step >= stop_after_steps:
            return True
    return False


def _end_epoch(run: _Run, st: _State, validation, elapsed: float) -> None:
    """Validate, checkpoint (latest, with this epoch's record; best), then append the record to metrics.jsonl
    (a kill in between is repaired on resume)."""
    val_acc = evaluate(run.eval_step, st.state[0], validation, run.cfg, run.mesh)
    record = {"epoch": st.step // run.steps_per_epoch, "step": st.step,
              "train_loss": float(np.mean(st.epoch_losses)), "val_accuracy": val_acc, "seconds": elapsed}
    st.epoch_losses = []
    st.history.append(record)
    _save(run, run.latest, st, elapsed)
    _save(run, run.best, st, elapsed, {"val_accuracy": val_acc})
    if jax.process_index() == 0:
        with open(run.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
    run.log(f"epoch {record['epoch']}/{run.cfg.epochs}: train loss {record['train_loss']:.4f}, val acc {val_acc:.4f}")


def _save(run: _Run, mgr, st: _State, elapsed: float, metrics: dict | None = None) -> None:
    items = dict(state=ocp.args.StandardSave(st.state),
                 meta=ocp.args.JsonSave({"epoch_losses": st.epoch_losses, "loader": st.loader,
                                         "history": st.history, "elapsed": elapsed}))
    if mgr is run.latest:  # where the next batch comes from
        items["data"] = grain.checkpoint.CheckpointSave(st.batches)
    mgr.save(st.step, args=ocp.args.Composite(**items), metrics=metrics)


def _save_best_if_missing(run: _Run, st: _State) -> None:
    """A kill between an epoch end's latest and best checkpoints leaves best without that epoch: save it now.
    Idempotent: orbax drops it again if it is not the best (it was then dropped before too)."""
    if st.history and st.history[-1]["step"] == st.step and st.step not in run.best.all_steps():
        _save(run, run.best, st, st.elapsed, {"val_accuracy": st.history[-1]["val_accuracy"]})


def _test(run: _Run, st: _State, sources: dict) -> dict:
    """Test accuracy of the best validation checkpoint, appended to metrics.jsonl ({'step'} without a test split)."""
    if "test" not in sources or not len(sources["test"]):
        return {"step": st.step}
    best_step = run.best.best_step()
    restored = run.best.restore(best_step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(st.state, sharding.replicated(run.mesh))),
        meta=ocp.args.JsonRestore()))
    final = {"split": "test", "best_step": best_step, "step": st.step,
             "test_accuracy": evaluate(run.eval_step, restored["state"][0], sources["test"], run.cfg, run.mesh)}
    if jax.process_index() == 0:
        with open(run.metrics_path, "a") as f:
            f.write(json.dumps(final) + "\n")
    run.log(f"test accuracy (best validation checkpoint, step {best_step}): {final['test_accuracy']:.4f}")
    return final


# Settings that shape the checkpointed params and optimizer state: a resume cannot change them.
STATE_FIELDS = ("num_classes", "head", "head_hidden", "examples_per_clip", "width_divisor", "freeze_conv",
                "grad_accum", "weight_decay")
# Settings of how the work is run, not of what is computed: a resume may change them freely.
RUNTIME_FIELDS = ("checkpoint_every", "prefetch", "loader_workers")


def _write_config(config_path: str, cfg: Config, num_classes: int, spec, label_names, *, resuming: int | None,
                  allow_changed: bool) -> None:
    """config.json; on resume a change from the settings in effect is refused, or with `allow_changed`
    recorded in its history."""
    record = {**dataclasses.asdict(cfg), "num_classes": num_classes, "label_names": list(label_names or []),
              "devices": jax.device_count(), "processes": jax.process_count(), spec_lib.KEY: spec.to_dict()}
    if resuming is not None and os.path.exists(config_path):
        with open(config_path) as f:
            previous = json.load(f)
        spec_lib.require_compatible(spec, spec_lib.read(previous, config_path),
                                    expected_from="this run's weights and settings", found_from=config_path)
        effective = settings_in_effect(previous)
        _require_same_state(cfg, num_classes, effective, config_path)
        changed = {k: [effective.get(k), v] for k, v in dataclasses.asdict(cfg).items()
                   if k not in RUNTIME_FIELDS and effective.get(k, v) != v}
        if changed and not allow_changed:
            diff = "; ".join(f"{k}={a!r} there, {b!r} now" for k, (a, b) in changed.items())
            raise ValueError(f"{config_path}: the checkpoint (step {resuming}) was made with other settings "
                             f"({diff}); resume with the same settings, pass --allow-changed-settings to go on "
                             f"with the new ones, or use another --workdir")
        history = list(previous.get("history", []))
        if changed:
            history.append({"resumed_at_step": resuming, "changed": changed})
        record = {**previous, "devices": record["devices"], "processes": record["processes"], "history": history}
    if jax.process_index() == 0:
        atomic.write_json(config_path, record)


def settings_in_effect(config: dict) -> dict:
    """A config.json's settings as the run uses them now: the first run's, with each resume's changes applied."""
    out = dict(config)
    for entry in config.get("history", []):
        out.update({k: new for k, (_, new) in entry["changed"].items()})
    return out


def _require_same_state(cfg: Config, num_classes: int, previous: dict, config_path: str) -> None:
    now = {**dataclasses.asdict(cfg), "num_classes": num_classes}
    diff = [f"{k}={previous.get(k)!r} there, {now[k]!r} now" for k in STATE_FIELDS if previous.get(k) != now[k]]
    if diff:
        raise ValueError(f"{config_path}: its checkpoint was made with other settings ({'; '.join(diff)}); "
                         f"resume with the same settings or use another --workdir")


def _restore(run: _Run, step: int, state, loader: dict, train_data, iterate) -> _State:
    """The checkpointed state, losses and records, and the batches from `step` on: grain's iterator state if
    the pipeline is the same (it fits only that), else train_data[step:], which holds the same batches."""
    meta = run.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    saved = meta.get("loader") or {}
    same = all(saved.get(k) == v for k, v in loader.items() if k != "start")
    items = dict(state=ocp.args.StandardRestore(_abstract(state, sharding.replicated(run.mesh))),
                 meta=ocp.args.JsonRestore())
    if same:
        loader = {**loader, "start": saved["start"]}
        batches = iterate(train_data[loader["start"]:])
        items["data"] = grain.checkpoint.CheckpointRestore(batches)
    else:
        loader = {**loader, "start": step}
        batches = iterate(train_data[step:])
    restored = run.latest.restore(step, args=ocp.args.Composite(**items))
    meta = restored["meta"]
    history = meta.get("history")
    if history is None:  # a checkpoint from before records were saved with it: keep the log's lines up to it
        history = _logged_epochs(run.metrics_path, step // run.steps_per_epoch)
    return _State(step, restored["state"], batches, loader, meta["epoch_losses"], history,
                  float(meta.get("elapsed", 0.0)), resumed_from=step)


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


def _logged_epochs(path: str, epochs_done: int) -> list[dict]:
    """The records of metrics.jsonl for epochs up to `epochs_done` (later ones will be recomputed)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return [r for r in rows if r.get("epoch", 10**9) <= epochs_done]


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
