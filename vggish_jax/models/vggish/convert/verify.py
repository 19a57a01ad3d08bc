"""The published VGGish smoke checks, run on a converted weights directory: pass/fail with the numbers.

Each check embeds 3 s of a 1 kHz sine and compares the mean and standard deviation of the embeddings (and of
the PCA-quantised ones) with the published values, as numpy.testing.assert_allclose(rtol) would: pass when
|got - expected| <= rtol * |expected|. Sources (tensorflow/models, research/audioset/vggish):

- vggish_smoke_test.py at 09093db7da85c9808bbbce7bc6e26fd1a049e9af (current model, no ReLU after the last
  layer): 16 kHz sine, t = arange(0, 3, 1/16000); embedding 0.000657 / 0.343, postprocessed 126.0 / 89.3,
  rtol 0.1 ("measured ... on 07/25/23 with NumPy 1.21.6 / TF 2.8.2 and NumPy 1.24.3 / TF 2.13.0").
- vggish_smoke_test.py at 1108aeb54aced4071714498319cc505642c126e5 (before the final ReLU was removed; the
  model torchvggish ports): 44.1 kHz sine, t = linspace(0, 3, 3 * 44100), resampled to 16 kHz;
  embedding 0.131 / 0.238, postprocessed 123.0 / 75.0, rtol 0.1.
- vggish_export_tfhub.py at 8e2d52d28873120c70e7ac12f9efa5363c0efe36, check_model (current model): the same
  44.1 kHz sine resampled by resampy; embedding -0.0333 / 0.380, rtol 0.1 (that export computes its log-mels
  with YAMNet's TF frontend; no postprocessed values).

Every check runs on every conversion (the weights are the same numbers; the post-ReLU check applies the ReLU),
with our resampler, not resampy, and only model-level code, independent of the embedding pipeline.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from vggish_jax.models.vggish import frontend, modeling, postprocess

MODELS_REPO = "tensorflow/models research/audioset/vggish"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    source: str  # file @ commit
    sample_rate: int
    time_axis: str  # 'arange' (t = arange(0, 3, 1/sr)) or 'linspace' (t = linspace(0, 3, 3 * sr))
    final_relu: bool
    embedding: tuple[float, float]  # expected (mean, std)
    postprocessed: tuple[float, float] | None  # expected (mean, std) after PCA + uint8 (TF's truncation)
    rtol: float = 0.1


CHECKS = (
    Check("smoke test, current model (no final ReLU)",
          f"{MODELS_REPO}/vggish_smoke_test.py@09093db7da85c9808bbbce7bc6e26fd1a049e9af",
          16000, "arange", False, (0.000657, 0.343), (126.0, 89.3)),
    Check("smoke test, earlier model (final ReLU, as torchvggish)",
          f"{MODELS_REPO}/vggish_smoke_test.py@1108aeb54aced4071714498319cc505642c126e5",
          44100, "linspace", True, (0.131, 0.238), (123.0, 75.0)),
    Check("TF-Hub export check (no final ReLU)",
          f"{MODELS_REPO}/vggish_export_tfhub.py@8e2d52d28873120c70e7ac12f9efa5363c0efe36",
          44100, "linspace", False, (-0.0333, 0.380), None),
)

SECONDS, FREQ = 3, 1000


@dataclasses.dataclass(frozen=True)
class Result:
    check: Check
    embedding: tuple[float, float]
    postprocessed: tuple[float, float] | None  # None: the check has none, or there are no PCA params

    @property
    def passed(self) -> bool:
        ok = _close(self.embedding, self.check.embedding, self.check.rtol)
        if self.check.postprocessed is not None and self.postprocessed is not None:
            ok = ok and _close(self.postprocessed, self.check.postprocessed, self.check.rtol)
        return ok

    def describe(self) -> str:
        c = self.check
        parts = [f"embedding mean {self.embedding[0]:.6g} std {self.embedding[1]:.4g} "
                 f"(expected {c.embedding[0]:.6g} / {c.embedding[1]:.4g})"]
        if c.postprocessed is not None:
            if self.postprocessed is None:
                parts.append("postprocessed: not checked (these weights have no PCA params)")
            else:
                parts.append(f"postprocessed mean {self.postprocessed[0]:.4g} std {self.postprocessed[1]:.4g} "
                             f"(expected {c.postprocessed[0]:.4g} / {c.postprocessed[1]:.4g})")
        return (f"[{'pass' if self.passed else 'FAIL'}] {c.name}, {c.sample_rate} Hz sine: " + "; ".join(parts)
                + f"; rtol {c.rtol} ({c.source})")


def _close(got, want, rtol) -> bool:
    return bool(np.all(np.abs(np.subtract(got, want)) <= rtol * np.abs(want)))


def sine(sample_rate: int, time_axis: str) -> np.ndarray:
    """The published test signal: 3 s of a 1 kHz sine, with the time axis each source uses."""
    if time_axis == "arange":
        t = np.arange(0, SECONDS, 1 / sample_rate)
    elif time_axis == "linspace":
        t = np.linspace(0, SECONDS, int(SECONDS * sample_rate))
    else:
        raise ValueError(f"time_axis must be 'arange' or 'linspace', got {time_axis!r}")
    return np.sin(2 * np.pi * FREQ * t)


def run(weights: str | os.PathLike, checks=CHECKS) -> list[Result]:
    """Run `checks` on a weights directory (whatever final_relu it records: each check sets its own)."""
    from flax import nnx

    model = modeling.VGGish.from_pretrained(weights, final_relu=False)
    graphdef, state = nnx.split(model)
    results = []
    for c in checks:
        examples = frontend.waveform_to_examples(sine(c.sample_rate, c.time_axis), c.sample_rate)
        emb = np.asarray(modeling.forward(graphdef, state, examples))  # no final ReLU; post-ReLU checks apply it
        if c.final_relu:
            emb = np.maximum(emb, 0.0)
        post = None
        if c.postprocessed is not None and model.pca is not None:
            q = postprocess.postprocess(emb, model.pca)  # TF's truncation, as the smoke test
            post = (float(np.mean(q)), float(np.std(q)))
        results.append(Result(c, (float(np.mean(emb)), float(np.std(emb))), post))
    return results


def report(results: list[Result], where: str) -> str:
    """Multi-line report; its last line says pass or FAIL overall."""
    passed = sum(r.passed for r in results)
    lines = [f"verify {where}: the published VGGish smoke checks (3 s of a 1 kHz sine)"]
    lines += ["  " + r.describe() for r in results]
    if passed == len(results):
        lines.append(f"verify: pass ({passed}/{len(results)} checks)")
    else:
        lines.append(f"verify: FAIL ({passed}/{len(results)} checks passed): these are not the published VGGish "
                     f"weights, or they were converted wrongly")
    return "\n".join(lines)
