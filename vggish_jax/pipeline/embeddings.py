"""The public embedding face: `embed` (one in-memory waveform) and `embed_files` (many files) -> Embeddings.

`model` is a VGGish module. The waveform is checked once (`pipeline.waveform`), mixed to mono and resampled
to 16 kHz on the host, then embedded by the shared device path (`device.Embedder`) in bounded device memory.
"""
from __future__ import annotations

import dataclasses
import os
import weakref
from typing import Iterable, Iterator

import jax
import numpy as np
from flax import nnx

from vggish_jax import skips
from vggish_jax.models.vggish import frontend, modeling, params as params_lib, postprocess as post
from vggish_jax.pipeline import waveform as waveform_lib
from vggish_jax.pipeline.device import Embedder
from vggish_jax.spec import EmbeddingSpec, params_sha256


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """values [n, 128] (float32, or uint8 when postprocessed); row i covers start_s[i] = i * hop_s ..
    start_s[i] + `frontend.example_seconds()` (0.975 s; hop_s 0.96 s by default); spec: how the values were
    made (its frontend records the hop and pad_last)."""
    values: np.ndarray
    start_s: np.ndarray
    spec: EmbeddingSpec


# model -> (its state's leaves when cached, Embedder, spec); weak, so a dropped model frees its entry.
_CACHE: "weakref.WeakKeyDictionary[nnx.Module, tuple]" = weakref.WeakKeyDictionary()


def _with_hop(model, hop_s: float, pad_last: bool) -> tuple:
    """(Embedder, spec) of a VGGish module for rows every `hop_s` seconds, keeping the last partial one if
    `pad_last`; made once per model and remade only when its parameters change."""
    cfg = frontend.with_hop(hop_s, pad_last)
    if not isinstance(model, modeling.VGGish):
        raise TypeError(f"model must be a VGGish module (vggish_jax.VGGish.from_pretrained(weights_dir)), got "
                        f"{type(model).__name__}")
    leaves = jax.tree.leaves(nnx.state(model))
    hit = _CACHE.get(model)
    if hit is None or len(hit[0]) != len(leaves) or any(a is not b for a, b in zip(hit[0], leaves)):
        emb = Embedder(model)
        spec = emb.spec  # the attached weights hash, or (built from params) the hash of what the model holds
        if hit is not None:  # trained since it was cached: hash the parameters it holds now
            spec = spec.replace(weights_sha256=params_sha256(modeling.to_dict(model)))
        hit = _CACHE[model] = (leaves, emb, spec)
    return hit[1].with_frontend(cfg), hit[2].replace(frontend=cfg)


def _result(values: np.ndarray, spec: EmbeddingSpec, pca, hop_s: float) -> Embeddings:
    if pca is not None:
        values, spec = post.postprocess(values, pca), spec.replace(postprocess=True)
    start_s = np.arange(values.shape[0]) * frontend.example_hop_seconds(frontend.with_hop(hop_s))
    return Embeddings(values=values, start_s=start_s, spec=spec)


def embed(waveform, sample_rate: int, model, *, postprocess: bool = False, pad: bool = False,
          hop_s: float = 0.96, pad_last: bool = False) -> Embeddings:
    """Embed one waveform with `model` (a VGGish module). waveform: NumPy or JAX, [samples], [samples,
    channels] or [channels, samples], float or integer samples (scaled by their full range), at
    `sample_rate` Hz (any rate; resampled to 16 kHz). `postprocess` applies the model's PCA + uint8
    quantisation (TF's truncation). Rows start every `hop_s` seconds (a multiple of 0.01; under 0.96 the
    0.975-s windows overlap); `pad_last` keeps the last partial window, zero-padded. A clip shorter than one
    example (0.975 s) raises (a frontend.TooShortError) unless `pad` or `pad_last`; every other bad input
    raises waveform.WaveformError, one line."""
    emb, spec = _with_hop(model, hop_s, pad_last)
    x = waveform_lib.to_16k(waveform, sample_rate, pad=pad or pad_last)
    pca = params_lib.require_pca(model.pca, "postprocess=True") if postprocess else None
    return _result(emb._embed_16k(x), spec, pca, hop_s)


def embed_files(paths: Iterable[str | os.PathLike], model, *, postprocess: bool = False, pad: bool = False,
                workers: int = 2, hop_s: float = 0.96, pad_last: bool = False
                ) -> Iterator[tuple[str, Embeddings | skips.Skip]]:
    """Embed audio files with `model` (a VGGish module): (path, Embeddings or its skips.Skip) per file, in
    input order, each as soon as it is done. Examples of many files share each device batch; files are
    decoded `workers` threads ahead. `hop_s` and `pad_last` as for `embed`. A missing, unreadable, corrupt
    or too-short file (without `pad` or `pad_last`) yields a Skip whose reason names the file and a fix."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"embed_files takes a list of files, got the single path {os.fsdecode(paths)!r}; pass "
                        f"[path] (or use vggish_jax.embed for an in-memory waveform)")
    emb, spec = _with_hop(model, hop_s, pad_last)
    pca = params_lib.require_pca(model.pca, "postprocess=True") if postprocess else None
    paths = [os.fspath(p) for p in paths]

    def results():
        for path, value in emb.iter_files(paths, pad=pad, workers=workers):
            yield path, (value if isinstance(value, skips.Skip)
                         else _result(value, spec, pca, hop_s))

    return results()
