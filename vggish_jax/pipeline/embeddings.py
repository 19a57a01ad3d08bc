"""`vggish_jax.embed(waveform, sample_rate, model)`: one array in, embeddings with their timing out.

The model-level entry point: `model` is a VGGish module (`VGGish.from_pretrained(dir)`) or an Embedder.
The waveform may have any sample rate, be mono [samples] or [samples, channels], NumPy or JAX; it is mixed
to mono and resampled to 16 kHz on the host (`audio`), then embedded by the device path every Embedder uses
(`device.AudioEmbedder`: bucketed, sharded over every device, one compilation per bucket shared by all
models of one shape), so a long recording is embedded in bounded device memory.
"""
from __future__ import annotations

import dataclasses
import weakref

import jax
import numpy as np
from flax import nnx

from vggish_jax import audio
from vggish_jax.models.vggish import frontend, modeling, params as params_lib, postprocess as post
from vggish_jax.pipeline.device import AudioEmbedder
from vggish_jax.spec import EmbeddingSpec, params_sha256


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """values [n, 128] (float32, or uint8 when postprocessed); row i covers start_s[i] .. start_s[i] +
    `frontend.example_seconds()` (0.975 s; rows start every 0.96 s); spec: how the values were made."""
    values: np.ndarray
    start_s: np.ndarray
    spec: EmbeddingSpec


# model -> (its state's leaves when cached, AudioEmbedder, spec); weak, so a dropped model frees its entry.
_CACHE: "weakref.WeakKeyDictionary[nnx.Module, tuple]" = weakref.WeakKeyDictionary()


def _device_for(model: nnx.Module) -> tuple[AudioEmbedder, EmbeddingSpec]:
    """The AudioEmbedder (and spec) of `model`, made once and remade only when its parameters change."""
    leaves = jax.tree.leaves(nnx.state(model))
    hit = _CACHE.get(model)
    if hit is not None and len(hit[0]) == len(leaves) and all(a is b for a, b in zip(hit[0], leaves)):
        return hit[1], hit[2]
    device = AudioEmbedder(model)
    spec = model.spec
    if spec is None or (hit is not None):  # not loaded from a weights directory, or trained since: hash it
        spec = EmbeddingSpec.create(weights_sha256=params_sha256(modeling.to_dict(model)),
                                    final_relu=model.final_relu, dtype=np.dtype(model.conv1.dtype).name,
                                    frontend=frontend.DEFAULT)
    spec = spec.replace(frontend_precision=device.precision)
    _CACHE[model] = (leaves, device, spec)
    return device, spec


def embed(waveform, sample_rate: int, model, *, postprocess: bool = False, pad: bool = False) -> Embeddings:
    """Embed one waveform (any rate; [samples] or [samples, channels]; NumPy or JAX) with `model` (a VGGish
    module or an Embedder). `postprocess` applies the model's PCA + uint8 quantisation (TF's truncation).
    A clip shorter than one example (0.975 s) raises frontend.TooShortError unless `pad`."""
    from vggish_jax.pipeline.embed import Embedder  # the batch/file API, for its device and PCA

    if isinstance(model, Embedder):
        device, spec, pca = model.device, model.spec, model.pca
    else:
        (device, spec), pca = _device_for(model), model.pca
    x = audio.to_mono(np.asarray(waveform, np.float32))
    audio.check_finite(x, "waveform")
    cfg = device.cfg
    if sample_rate != cfg.sample_rate:
        x = audio.resample(x, sample_rate, cfg.sample_rate)
    x = frontend.fit_to_examples(x, pad=pad, cfg=cfg)
    values = device.embed_waveform(x)
    if postprocess:
        if pca is None:
            raise params_lib.WeightsError("this model has no PCA params; load weights converted with "
                                          "--torch-pca/--tf-pca (VGGish.from_pretrained) to postprocess")
        values, spec = post.postprocess(values, pca), spec.replace(postprocess=True)
    start_s = np.arange(values.shape[0]) * frontend.example_hop_seconds(cfg)
    return Embeddings(values=values, start_s=start_s, spec=spec)
