"""The FMA builder's splits as Beam PTransforms (used when the download config names a Beam runner).

Clips that fail to decode are counted (`fma:clips_skipped`) and written to one JSON file per split, which the
builder reads back into its skip report.
"""
from __future__ import annotations

import apache_beam as beam

from vggish_jax import atomic
from vggish_jax.datasets import decode

SKIPPED = "skipped"


def decode_clip(item: tuple[int, int, str], waveform: bool):
    """(track_id, label, path) -> (track_id, example dict), or a skip record on the SKIPPED output."""
    track_id, label, path = item
    clip = decode.decode_clip(path, waveform=waveform)
    if isinstance(clip, str):
        beam.metrics.Metrics.counter("fma", "clips_skipped").inc()
        yield beam.pvalue.TaggedOutput(SKIPPED, {"track_id": track_id, "path": path, "reason": clip})
    else:
        beam.metrics.Metrics.counter("fma", "clips_decoded").inc()
        yield track_id, {**clip, "label": label, "track_id": track_id}


def examples(items: list[tuple[int, int, str]], *, waveform: bool, skips_path: str) -> beam.PTransform:
    """A PTransform (applied to the pipeline root) yielding (track_id, example) for every decodable clip."""

    @beam.ptransform_fn
    def expand(root):
        out = (root
               | "Clips" >> beam.Create(items)  # reshuffled by Create: clips spread over the workers
               | "Decode" >> beam.FlatMap(decode_clip, waveform).with_outputs(SKIPPED, main="examples"))
        _ = (out[SKIPPED]
             | "CollectSkips" >> beam.combiners.ToList()
             | "WriteSkips" >> beam.Map(lambda records: atomic.write_json(
                 skips_path, sorted(records, key=lambda r: r["track_id"]))))
        return out.examples

    return expand()  # pylint: disable=no-value-for-parameter


def counters(result) -> dict[str, int]:
    """{'namespace:name': committed (or attempted) value} of a finished pipeline's counters."""
    out: dict[str, int] = {}
    for c in result.metrics().query()["counters"]:
        key = f"{c.key.metric.namespace}:{c.key.metric.name}"
        value = c.committed if c.committed is not None else c.attempted
        out[key] = out.get(key, 0) + int(value or 0)
    return out
