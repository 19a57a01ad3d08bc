"""hop_s and pad_last (issue 27 item 1): overlapping windows and the last partial window, on the device path.

Oracles: the NumPy reference frontend (models/vggish/frontend.py) framing with the same hop, on the audio
zero-padded by hand for pad_last, and an independent PyTorch forward pass of the same weights; the rows of
the default 0.96-s run (every second row at 0.48 s); and the spec main (f59d08e) stored for a default run.
"""
import json
import os

import numpy as np
import pytest

import vggish_jax
from vggish_jax.models.vggish import frontend, params
from vggish_jax.pipeline import device, segments
from vggish_jax.spec import EmbeddingSpec

torch = pytest.importorskip("torch", reason="the oracle needs torch (pip install -e '.[test]')")
from test_vggish_model import torch_forward  # noqa: E402  (VGGish written in PyTorch from the weight layout)

SR = 16000
E = 15600  # samples in one 0.975-s window (96 frames of 10 ms + the 15 ms a frame reaches past its hop)


@pytest.fixture(scope="module")
def model(small_weights_dir):
    return vggish_jax.VGGish.from_pretrained(small_weights_dir)


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.4 * np.sin(2 * np.pi * (300 + 200 * t) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _oracle(x: np.ndarray, hop_s: float, weights_dir: str) -> np.ndarray:
    """NumPy frontend framing every hop_s (no padding) -> PyTorch VGGish."""
    cfg = frontend.FrontendConfig(example_hop_frames=int(round(hop_s * 100)))
    ex = frontend.waveform_to_examples(x, SR, cfg=cfg)
    p, _, _ = params.load(weights_dir)
    return torch_forward(p, ex, final_relu=False)


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * np.abs(want).max())


def test_default_hop_equals_embed_exactly_and_keeps_mains_spec(model):
    x = _clip(5.3)
    base = vggish_jax.embed(x, SR, model)
    same = vggish_jax.embed(x, SR, model, hop_s=0.96, pad_last=False)
    np.testing.assert_array_equal(same.values, base.values)
    np.testing.assert_array_equal(same.start_s, base.start_s)
    assert same.spec == base.spec
    # A default run's spec is, field for field, what main stored (so existing stores and heads still resume).
    with open(os.path.join(os.path.dirname(__file__), "data", "embedding_spec_f59d08e.json")) as f:
        main = json.load(f)
    mine = base.spec.to_dict()
    assert {k: v for k, v in mine.items() if k != "weights_sha256"} == \
        {k: v for k, v in main.items() if k != "weights_sha256"}
    assert EmbeddingSpec.from_dict(main).replace(weights_sha256=base.spec.weights_sha256) == base.spec


def test_half_hop_interleaves_the_default_rows_and_matches_the_oracle(model, small_weights_dir):
    x = _clip(6.5)
    base = vggish_jax.embed(x, SR, model)
    half = vggish_jax.embed(x, SR, model, hop_s=0.48)
    n = (x.size - E) // 7680 + 1  # whole windows starting every 0.48 s
    assert half.values.shape == (n, 128) and n == 2 * base.values.shape[0] - (1 if n % 2 else 0)
    np.testing.assert_allclose(half.values[::2], base.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(half.start_s, 0.48 * np.arange(n), atol=1e-9)
    _close(half.values, _oracle(x, 0.48, small_weights_dir))
    assert dict(half.spec.frontend)["example_hop_frames"] == 48 and half.spec != base.spec


@pytest.mark.parametrize("hop_s", [0.05, 0.25, 1.5])
def test_any_hop_matches_the_numpy_frontend_with_that_hop(model, small_weights_dir, hop_s):
    x = _clip(4.2, seed=1)
    got = vggish_jax.embed(x, SR, model, hop_s=hop_s)
    want = _oracle(x, hop_s, small_weights_dir)
    assert got.values.shape == want.shape
    _close(got.values, want)
    np.testing.assert_allclose(got.start_s, hop_s * np.arange(want.shape[0]), atol=1e-9)


def test_pad_last_adds_the_last_partial_window_as_on_zero_padded_audio(model, small_weights_dir):
    x = _clip(3.3, seed=2)  # windows at 0, 0.48, ..., 1.92 fit whole; one at 2.4 s runs past the end
    drop = vggish_jax.embed(x, SR, model, hop_s=0.48)
    pad = vggish_jax.embed(x, SR, model, hop_s=0.48, pad_last=True)
    assert pad.values.shape[0] == drop.values.shape[0] + 1
    np.testing.assert_allclose(pad.values[:-1], drop.values, rtol=1e-6, atol=1e-6)
    start = 0.48 * drop.values.shape[0]
    assert pad.start_s[-1] == pytest.approx(start) and start < x.size / SR < start + E / SR
    padded = np.pad(x, (0, int(round(start * SR)) + E - x.size))
    _close(pad.values, _oracle(padded, 0.48, small_weights_dir))
    assert dict(pad.spec.frontend)["pad_last"] is True
    # A clip that ends exactly at a window's end has no partial window: nothing is added.
    exact = x[: 3 * 7680 + E]
    assert vggish_jax.embed(exact, SR, model, hop_s=0.48, pad_last=True).values.shape[0] == 4


def test_pad_last_gives_a_short_clip_one_window(model, small_weights_dir):
    x = _clip(0.4, seed=3)
    with pytest.raises(frontend.TooShortError):
        vggish_jax.embed(x, SR, model)
    got = vggish_jax.embed(x, SR, model, hop_s=0.05, pad_last=True)
    assert got.values.shape == (1, 128)
    _close(got.values, _oracle(np.pad(x, (0, E - x.size)), 0.05, small_weights_dir))


def test_long_file_segments_and_streams_cut_overlapping_windows_like_the_whole_clip(model):
    """A clip longer than the largest bucket (31 windows) is cut into segments; a hop longer than a window
    skips samples between segments, also when read as a stream of blocks."""
    for hop_s, pad_last in [(0.05, False), (0.05, True), (1.5, True)]:
        cfg = frontend.with_hop(hop_s, pad_last)
        x = _clip(1.9 if hop_s < 1 else 55.0, seed=4)
        emb = device.Embedder(model, cfg=cfg)
        whole = emb.examples(x[None])[0]
        want = frontend.num_examples(x.size, cfg)
        segs = segments.cut(x, 31, cfg)
        streamed = list(segments.cut_stream(np.array_split(x, 7), 31, cfg))
        assert sum(frontend.num_examples(s.size, cfg) for s in segs) == want == whole.shape[0]
        assert len(streamed) == len(segs) and all(np.array_equal(a, b) for a, b in zip(streamed, segs))
        rows = np.concatenate([emb.examples(s[None])[0] for s in segs])
        np.testing.assert_allclose(rows, whole, atol=1e-4)


def test_embed_files_takes_the_hop(model, audio_files):
    files = [audio_files["wav"], audio_files["short"]]
    base = dict(vggish_jax.embed_files(files, model, workers=0))
    half = dict(vggish_jax.embed_files(files, model, workers=0, hop_s=0.48, pad_last=True))
    b, h = base[files[0]], half[files[0]]
    assert h.values.shape[0] == 6  # 3.2 s: whole windows at 0 .. 1.92 s, and the partial one at 2.4 s
    np.testing.assert_allclose(h.values[:-1:2], b.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h.start_s, 0.48 * np.arange(6), atol=1e-9)
    assert isinstance(base[files[1]], vggish_jax.Skip) and half[files[1]].values.shape == (1, 128)


@pytest.mark.parametrize("hop_s", [0.033, 0.0, -0.48, float("nan"), True, "0.5"])
def test_a_hop_off_the_frame_grid_is_refused_in_one_line(model, hop_s):
    with pytest.raises(ValueError, match=r"^hop_s must be a positive multiple of the 10 ms frame hop") as e:
        vggish_jax.embed(_clip(1.0), SR, model, hop_s=hop_s)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="hop_s must be"):
        vggish_jax.ExtractSettings(hop_s=hop_s)


def test_cli_embed_takes_hop_s_and_pad_last_from_a_config_file(model, small_weights_dir, audio_files, tmp_path,
                                                                capsys):
    from vggish_jax import cli

    (tmp_path / "s.toml").write_text("hop_s = 0.48\npad_last = true\n")
    out = tmp_path / "out"
    assert cli.main(["embed", audio_files["wav"], "--weights", small_weights_dir, "--out", str(out),
                     "--config", str(tmp_path / "s.toml")]) == 0
    (_, want), = vggish_jax.embed_files([audio_files["wav"]], model, workers=0, hop_s=0.48, pad_last=True)
    with np.load(out / "embeddings.npz") as z:
        np.testing.assert_allclose(z[z.files[0]], want.values, rtol=1e-6, atol=1e-6)
    meta = json.loads((out / "embeddings.json").read_text())
    assert meta["hop_s"] == pytest.approx(0.48)
    np.testing.assert_allclose(list(meta["start_s"].values())[0], want.start_s, atol=1e-6)
    assert EmbeddingSpec.from_dict(meta["embedding_spec"]).frontend == want.spec.frontend
    (tmp_path / "bad.toml").write_text("hop_s = 0.033\n")
    assert cli.main(["embed", audio_files["wav"], "--weights", small_weights_dir, "--out", str(tmp_path / "o2"),
                     "--config", str(tmp_path / "bad.toml")]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "bad.toml: hop_s = 0.033: hop_s must be a positive multiple of the 10 ms frame hop" in err


def test_extract_records_the_hop_and_a_default_store_keeps_mains_spec(model, audio_files, tmp_path):
    from vggish_jax.pipeline import store

    folder = tmp_path / "music"
    folder.mkdir()
    for name in ("wav", "flac"):
        os.link(audio_files[name], folder / f"clip.{name}")
    quiet = dict(progress=False, workers=0, log=lambda m: None)
    vggish_jax.extract(str(folder), tmp_path / "half", model,
                       vggish_jax.ExtractSettings(hop_s=0.48, pad_last=True, **quiet))
    vggish_jax.extract(str(folder), tmp_path / "default", model, vggish_jax.ExtractSettings(**quiet))
    want = dict(vggish_jax.embed_files(sorted(map(str, folder.iterdir())), model, workers=0, hop_s=0.48,
                                       pad_last=True))
    half = store.load_split(str(tmp_path / "half"), "all")
    np.testing.assert_allclose(np.concatenate(half.embeddings), np.concatenate([e.values for e in want.values()]),
                               rtol=1e-6, atol=1e-6)
    specs = {k: json.loads((tmp_path / k / "info.json").read_text())["embedding_spec"] for k in ("half", "default")}
    assert specs["half"]["frontend"]["example_hop_frames"] == 48 and specs["half"]["frontend"]["pad_last"] is True
    with open(os.path.join(os.path.dirname(__file__), "data", "embedding_spec_f59d08e.json")) as f:
        main = json.load(f)
    assert specs["default"]["frontend"] == main["frontend"] and set(specs["default"]) == set(main)
    # Readers of the store give each row its start on the store's hop.
    from vggish_jax.pipeline import stored

    rows = list(stored.read(str(tmp_path / "half")).embeddings.values())
    assert [r.values.shape[0] for r in rows] == [e.values.shape[0] for e in want.values()]
    np.testing.assert_allclose(rows[0].start_s, 0.48 * np.arange(rows[0].values.shape[0]), atol=1e-9)
    # The store made with one hop refuses to resume with another, naming the frontend.
    with pytest.raises(ValueError, match="frontend"):
        vggish_jax.extract(str(folder), tmp_path / "half", model, vggish_jax.ExtractSettings(**quiet))
