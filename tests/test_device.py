"""The one device function (pipeline.device) against the NumPy oracle frontend + the same model, eagerly."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.modeling import VGGish
from vggish_jax.pipeline import segments as seg
from vggish_jax.pipeline.device import Embedder
from conftest import tone_mix

SR = 16000


@functools.lru_cache(maxsize=None)
def tiny_model():
    """A same-shaped small VGGish (width / 16) with He-scaled NumPy weights: filling an abstract model avoids
    compiling jax's random initialisers, which costs seconds per process."""
    model = nnx.eval_shape(lambda: VGGish(width_divisor=16, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(3)

    def init(a):
        fan_in = int(np.prod(a.shape[:-1])) if len(a.shape) > 1 else 0
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in) if fan_in else 0.1, a.shape), jnp.float32)

    nnx.replace_by_pure_dict(state, jax.tree.map(init, nnx.to_pure_dict(state)))
    nnx.update(model, state)
    return model


@functools.lru_cache(maxsize=None)
def device(precision="float32", buckets=seg.BUCKETS, batch_size=16):
    return Embedder(tiny_model(), precision=precision, buckets=buckets, batch_size=batch_size)


def oracle(wave: np.ndarray) -> np.ndarray:
    """NumPy float64 frontend of the whole waveform, then the model, eagerly and unbatched by us."""
    return np.asarray(tiny_model()(frontend.waveform_to_examples(wave, SR)))


def signal(seconds: float, seed: int = 0) -> np.ndarray:
    return tone_mix(seconds, SR, seed=seed)


def test_float64_equals_oracle_and_float32_within_the_frontend_tolerance():
    x = signal(5.3)
    want = oracle(x)
    got64 = device("float64")._embed_16k(x)
    got32 = device("float32")._embed_16k(x)
    assert got64.shape == got32.shape == want.shape == (5, 128)
    np.testing.assert_allclose(got64, want, atol=1e-5, rtol=1e-5)
    # float32 log-mels are within 1e-3 of the oracle (tests/test_frontend_jax.py); through the model that
    # stays a small fraction of the embedding's scale.
    assert np.abs(got32 - want).max() <= 1e-3 * np.abs(want).max()
    mel = device("float32").examples(x[None])[0]
    assert np.abs(mel - frontend.waveform_to_examples(x, SR)).max() <= 1e-3


def test_long_file_cut_into_segments_equals_whole_file():
    # Buckets of at most 4 examples: a 23-s clip (23 examples) becomes 5 segments of 4 and one of 3.
    x = signal(22.5, seed=1)
    d = device("float64", buckets=(1, 2, 4))
    parts = seg.cut(x, 4)
    assert [frontend.num_examples(p.shape[0]) for p in parts] == [4, 4, 4, 4, 4, 3]
    np.testing.assert_allclose(d._embed_16k(x), oracle(x), atol=1e-5, rtol=1e-5)


def test_segments_are_hop_aligned_slices_of_the_whole_examples():
    x = signal(12.0, seed=2)
    whole = frontend.waveform_to_examples(x, SR)
    parts = [frontend.waveform_to_examples(p, SR) for p in seg.cut(x, 5)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_batch_of_unequal_lengths_mask_and_rows():
    clips = [signal(s, seed=i) for i, s in enumerate((0.975, 3.855, 2.0, 1.5))]
    length = frontend.samples_for_examples(4)
    batch = np.zeros((len(clips), length), np.float32)
    for i, c in enumerate(clips):
        batch[i, : c.shape[0]] = c
    emb, mask = device("float64")(batch, [c.shape[0] for c in clips])
    assert emb.shape == (4, 4, 128)
    assert mask.sum(1).tolist() == [frontend.num_examples(c.shape[0]) for c in clips] == [1, 4, 2, 1]
    for c, e, m in zip(clips, emb, mask):
        np.testing.assert_allclose(e[m], oracle(c), atol=1e-5, rtol=1e-5)


def test_int16_input_is_the_stored_int16_audio_scaled_back():
    from vggish_jax.datasets.decode import to_int16

    x = signal(2.0, seed=4)
    q = to_int16(x)  # how *_waveform datasets store the audio
    got, mask = device("float64")(q[None])
    np.testing.assert_allclose(got[0][mask[0]], oracle(q.astype(np.float64) / 32767.0), atol=1e-5, rtol=1e-5)
    mel = device("float64").examples(q[None])[0]
    assert np.abs(mel - frontend.waveform_to_examples(q / 32767.0, SR)).max() <= 1e-5
    assert np.abs(mel - frontend.waveform_to_examples(q / 32768.0, SR)).max() > 2e-5  # log(32768 / 32767) = 3e-5


def test_stream_keeps_order_passes_errors_and_bounds_pending():
    d = device("float64", buckets=(1, 2, 4), batch_size=8)
    waves = {f"c{i}": signal(s, seed=i) for i, s in enumerate((1.0, 9.0, 2.5, 0.99, 4.2, 7.7, 1.9))}
    items = list(waves.items())
    items.insert(3, ("bad", "bad: cannot decode"))
    seen = []

    def source():
        for key, w in items:
            seen.append(key)
            yield key, w

    out = []
    for key, value in d.embed_stream(source(), max_pending=2):
        # A clip comes out no later than max_pending + 1 clips after it went in.
        assert len(seen) - 1 - [k for k, _ in items].index(key) <= 3
        out.append((key, value))
    assert [k for k, _ in out] == [k for k, _ in items]
    for key, value in out:
        if key == "bad":
            assert value == "bad: cannot decode"
        else:
            np.testing.assert_allclose(value, oracle(waves[key]), atol=1e-5, rtol=1e-5)


def test_clips_per_call_is_a_multiple_of_the_devices_and_buckets_fit():
    d = device()
    assert all(d.clips_per_call(b) % d.num_devices == 0 for b in d.buckets)
    assert seg.bucket_for(31) == 31 and seg.bucket_for(5) == 8 and seg.bucket_for(1) == 1
    with pytest.raises(ValueError, match="cut them first"):
        seg.bucket_for(32)
    assert frontend.num_examples(frontend.samples_for_examples(31)) == 31
    assert frontend.num_examples(frontend.samples_for_examples(31) - 1) == 30


def test_host_side_imports_no_jax():
    """Decode workers import the host side only; it must not pull in jax/flax/orbax (seconds per worker)."""
    import os
    import subprocess
    import sys

    code = ("import sys, vggish_jax.pipeline.host, vggish_jax.pipeline.segments, vggish_jax.datasets.decode; "
            "print(sorted(m for m in ('jax', 'flax', 'orbax') if m in sys.modules))")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


_FOUR_DEVICES = """
import sys, functools, jax, numpy as np
sys.path.insert(0, sys.argv[2])
import test_device as t
assert jax.device_count() == 4, jax.devices()
d = t.device("float32", buckets=(4,), batch_size=6)
assert d.num_devices == 4 and d.clips_per_call(4) == 4
waves = [t.signal(s, seed=i) for i, s in enumerate((1.0, 9.0, 2.5))]
out = dict(("clip%d" % k, v) for k, v in d.embed_stream(enumerate(waves)))
out["examples"] = d.embed_examples(t.frontend.waveform_to_examples(waves[1], 16000), batch_size=3)
np.savez(sys.argv[1], **out)
"""


def test_four_fake_devices_give_the_one_device_result(tmp_path):
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.dirname(here) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _FOUR_DEVICES, str(tmp_path / "four.npz"), here], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = device("float32", buckets=(4,), batch_size=6)
    assert d.num_devices == 1 and d.clips_per_call(4) == 1
    waves = [signal(s, seed=i) for i, s in enumerate((1.0, 9.0, 2.5))]
    with np.load(tmp_path / "four.npz") as four:
        for k, v in d.embed_stream(enumerate(waves)):
            assert four[f"clip{k}"].shape == v.shape
            assert np.abs(four[f"clip{k}"] - v).max() <= 1e-5
        one = d.embed_examples(frontend.waveform_to_examples(waves[1], SR), batch_size=3)
        assert np.abs(four["examples"] - one).max() <= 1e-5


@pytest.mark.parametrize("seconds", [0.99, 29.76, 30.0, 59.52 + 0.015, 61.3])
def test_cut_stream_gives_cut_s_segments_from_any_blocks(seconds):
    wave = signal(seconds, seed=4)
    want = seg.cut(wave)
    rng = np.random.default_rng(int(seconds * 100))
    bounds = np.sort(rng.integers(0, wave.size, 7))
    got = list(seg.cut_stream(np.split(wave, bounds)))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_part_full_batches_pad_to_a_power_of_two_only():
    from vggish_jax.models import batching

    def sizes(n, batch, multiple=1):
        return [(b.shape[0], k) for b, k in batching.fixed_batches(np.zeros((n, 2)), batch, multiple)]

    assert sizes(31, 2048) == [(32, 31)]  # one 30-s clip's examples: 32 rows, not 2048
    assert sizes(2100, 2048) == [(2048, 2048), (64, 52)]
    assert sizes(5, 64, multiple=3) == [(9, 5)]  # and a multiple of the device count
    assert sizes(1, 8) == [(1, 1)]
    assert sizes(0, 8) == []


def test_next_batch_is_dispatched_before_the_last_is_fetched():
    events = []

    class Fetch:
        def __init__(self, i, value):
            self.i, self.value = i, value

        def __array__(self, dtype=None, copy=None):
            events.append(("fetch", self.i))
            return np.asarray(self.value)

    class Recording(Embedder):
        def _dispatch(self, waveforms, lengths):
            i = sum(e[0] == "dispatch" for e in events)
            events.append(("dispatch", i))
            emb, mask = super()._dispatch(waveforms, lengths)
            return Fetch(i, emb), mask

    d = Recording(tiny_model(), buckets=(1,), batch_size=2)
    waves = [signal(1.0, seed=i) for i in range(9)]  # 9 one-example clips in batches of 2: 5 batches
    out = [v for _, v in d.embed_stream(enumerate(waves))]
    dispatched = [i for e, i in events if e == "dispatch"]
    assert dispatched == [0, 1, 2, 3, 4]
    for k in range(4):  # batch k+1 went to the device before batch k's result was read
        assert events.index(("dispatch", k + 1)) < events.index(("fetch", k))
    assert len(out) == 9
    for w, v in zip(waves, out):
        np.testing.assert_allclose(v, oracle(w), atol=1e-3, rtol=1e-3)
