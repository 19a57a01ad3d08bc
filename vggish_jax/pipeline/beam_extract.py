"""The Apache Beam runner of the embedding core: one ParDo over the shards still missing.

Workers load the model once and call `core.run_shard`, so Beam and the local runner write the same shards.
Bad clips are counted (`vggish_jax:clips_skipped[_<kind>]`). Workers need the package, weights and data.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import apache_beam as beam

from vggish_jax.datasets import fma_beam
from vggish_jax.pipeline import core, store

NAMESPACE = "vggish_jax"


class EmbedShards(beam.DoFn):
    """core.Task -> writes that shard; yields (split, index, clips kept, or -1 if it was done before)."""

    def __init__(self, job: core.Job, weights_dir: str | None, load_kwargs: dict):
        self.job, self.weights_dir, self.load_kwargs = job, weights_dir, load_kwargs

    def _count(self, name: str, n: int = 1) -> None:
        beam.metrics.Metrics.counter(NAMESPACE, name).inc(n)

    def setup(self):
        from vggish_jax import spec as spec_lib
        from vggish_jax.pipeline.embed import load_pretrained

        self.model = None
        if self.weights_dir is None:  # a source of stored embeddings: no model
            return
        self.model = load_pretrained(self.weights_dir, **self.load_kwargs)
        # The weights are read again here: a folder replaced since the driver checked must not mix in.
        worker = core.rows_spec(self.model.spec, self.job.source.payload, self.job.spec.postprocess is not None)
        spec_lib.require_compatible(self.job.spec, worker,
                                    expected_from="the driver's weights", found_from=f"weights {self.weights_dir} "
                                    f"on this worker", fields=core.SPEC_FIELDS)

    def process(self, task: core.Task):
        if core.shard_done(self.job, task, log=lambda m: None):  # a retried or duplicated task
            self._count("shards_already_done")
            yield task.split, task.index, -1
            return
        done = core.run_shard(self.job, task, self.model)
        for s in done["skipped"]:
            self._count("clips_skipped")
            self._count("clips_skipped_" + s["kind"])
        self._count("examples_embedded", done["examples"])
        self._count("clips_embedded", done["clips"])
        self._count("shards_written")
        yield task.split, task.index, done["clips"]


def run(job: core.Job, weights_dir: str | None, load_kwargs: dict, runner, options,
        log: Callable[[str], None] = print) -> core.Summary:
    """Run the missing shards of `job` on `runner`; complete info.json. A worker's failure is one line."""
    tasks = core.plan(job.source.splits(), job.shard_size)
    with store.locked(job.out, 0, what=job.out):
        info = core.open_store(job, log=log)
        todo = [t for t in tasks if not core.shard_done(job, t, log)]
        log(f"extract -> {job.out} on Beam ({type(runner).__name__}): {len(tasks) - len(todo)} shards already "
            f"done, {len(todo)} to compute ({sum(len(t.indices) for t in todo)} clips)")
        counters, seconds = {}, 0.0
        if todo:
            t0 = time.perf_counter()
            p = beam.Pipeline(runner=runner, options=options)
            _ = (p
                 | "Shards" >> beam.Create(todo)  # reshuffled: shards spread over the workers
                 | "Embed" >> beam.ParDo(EmbedShards(job, weights_dir, load_kwargs)))
            try:
                result = p.run()
                result.wait_until_finish()
            except Exception as e:  # Beam wraps worker errors in pages of traceback: one line, then the fix
                lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
                raise RuntimeError(f"{job.out}: the Beam pipeline failed ({type(e).__name__}: "
                                   f"{lines[-1] if lines else ''}); finished shards are kept: fix the cause and "
                                   f"rerun the same command") from e
            seconds = time.perf_counter() - t0
            counters = fma_beam.counters(result)
            log(f"extract: Beam counters {dict(sorted(counters.items()))}")
        done = core.finalize(job, info, log=log)
    if done is None:
        raise RuntimeError(f"{job.out}: shards missing after the Beam pipeline ran; rerun the same command to "
                           f"compute them")
    log(f"extract: done; clips per split {done.num_clips}; {len(done.skipped)} skipped (listed in info.json)")
    reused = {s: [t.index for t in tasks if t.split == s and t not in todo] for s in job.source.splits()}
    return dataclasses.replace(done, computed={s: [t.index for t in todo if t.split == s] for s in reused},
                               reused=reused, counters=counters, seconds=seconds)
