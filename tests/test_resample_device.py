"""Resampling on the device (pipeline.placement, resample_jax.to_16k) against the host path and scipy.

Oracles: the host path (`audio.resample`, float64 BLAS sums) for embeddings, through `Embedder.embed_files`
and the `embed` CLI with the small same-shaped VGGish; scipy's resample_poly with the same filter for the
padded, bucketed device resampler. Tolerance: host and device resampling differ by float32 rounding (~2e-6
in the waveform here, 1e-5 is the bound test_resample_jax holds), which moves embeddings by ~1e-5 of
their scale at most (RTOL below).
"""
import json

import numpy as np
import pytest
from scipy import signal

from vggish_jax import audio, cli
from vggish_jax.datasets import decode
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import host, placement, resample_jax
from vggish_jax.pipeline.embed import load_pretrained

RTOL = 5e-5  # of each file's largest |embedding|: float32 rounding of the resampler, through the model
# (measured: 1.3e-6 on the full-size model and the bundled clip, results/resample-placement-2core-cpu.json;
# up to 1.4e-5 on pure sines through the small model, where near-empty mel bands amplify it most)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= RTOL * np.abs(a).max()


@pytest.fixture(scope="module")
def embedders(small_weights_dir):
    return {w: load_pretrained(small_weights_dir, batch_size=4, resample=w) for w in ("host", "device")}


def test_device_resampled_embeddings_equal_host_resampled(embedders, audio_files, monkeypatch):
    calls = []
    real = resample_jax.resample_padded
    monkeypatch.setattr(resample_jax, "resample_padded", lambda x, sr: calls.append(sr) or real(x, sr))
    paths = [audio_files[k] for k in ("mp3", "mono22k", "wav", "short", "corrupt")]
    (got, got_err), (want, want_err) = (embedders[w].embed_files(paths, workers=1) for w in ("device", "host"))
    assert calls == [44100, 22050, 44100]  # the device path ran (the 16 kHz file skips it), only there
    assert list(got) == list(want) == paths[:3]
    assert got_err == want_err and set(got_err) == {audio_files["short"], audio_files["corrupt"]}
    for p in want:
        _close(want[p], got[p])
    assert not np.allclose(want[audio_files["mp3"]], 0)


def test_device_path_pads_a_short_resampled_clip_like_the_host(embedders, tmp_path):
    import soundfile as sf

    path = str(tmp_path / "short44k.wav")
    sf.write(path, 0.3 * np.sin(np.arange(30000) / 7.0).astype(np.float32), 44100)  # 0.68 s
    with pytest.raises(frontend.TooShortError, match="short44k.wav"):
        embedders["device"].embed_file(path)
    _close(embedders["host"].embed_file(path, pad=True), embedders["device"].embed_file(path, pad=True))


def test_a_rate_too_odd_for_the_device_is_resampled_on_the_host_there_too(embedders, tmp_path, monkeypatch):
    import soundfile as sf

    path = str(tmp_path / "odd.wav")
    sf.write(path, 0.3 * np.sin(np.arange(24000) / 5.0).astype(np.float32), 16001)  # 16001/16000: a huge matrix
    calls = []
    monkeypatch.setattr(resample_jax, "resample_padded", lambda *a: calls.append(a))
    _close(embedders["host"].embed_file(path), embedders["device"].embed_file(path))
    assert calls == []


def test_embed_cli_resample_device_equals_host(small_weights_dir, audio_files, tmp_path):
    files = [audio_files[k] for k in ("mp3", "mono22k", "corrupt")]
    outs = {}
    for w in ("host", "device"):
        outs[w] = tmp_path / w / "embeddings.npz"
        settings = tmp_path / f"{w}.toml"
        settings.write_text(f'resample = "{w}"\n')
        code = cli.main(["embed", *files, "--weights", small_weights_dir, "--out", str(outs[w].parent),
                         "--batch-size", "4", "--config", str(settings)])
        assert code == 0
    with np.load(outs["host"]) as h, np.load(outs["device"]) as d:
        assert sorted(h.files) == sorted(d.files) == sorted(files[:2])
        for k in h.files:
            _close(h[k], d[k])
    meta = json.loads((tmp_path / "device" / "embeddings.json").read_text())
    assert len(meta["errors"]) == 1


@pytest.mark.parametrize("n", [5000, 16384, 16385, 44100 + 7, 3 * 44100 + 1])
def test_padded_resampling_keeps_the_samples_of_unpadded_resampling(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    up, down = audio.ratio(44100, 16000)
    want = signal.resample_poly(x, up, down, window=audio.lowpass(up, down))
    padded = np.asarray(resample_jax.resample_padded(x, 44100))
    assert padded.shape[0] == -(-resample_jax.padded_length(n) * up // down) >= want.shape[0]
    got = padded[: audio.out_len(n, up, down)]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, audio.resample(x, 44100), rtol=0, atol=1e-5)


def test_length_buckets_are_few_and_waste_at_most_an_eighth():
    lengths = np.arange(int(29.5 * 44100), int(30.5 * 44100), 97)
    buckets = {resample_jax.padded_length(int(n)) for n in lengths}
    assert len(buckets) <= 2
    for n in [1, 16384, 16385, 10**5, 2**20, 2**20 + 1, 1323000, 14_400_000]:
        b = resample_jax.padded_length(n)
        assert n <= b <= max(16384, n * 9 / 8)


def test_auto_resamples_on_the_host_on_cpu_and_on_the_device_on_accelerators(monkeypatch):
    import jax

    assert jax.default_backend() == "cpu"
    assert placement.resample_on_device("auto") is False
    assert placement.resample_on_device("device") is True and placement.resample_on_device("host") is False
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert placement.resample_on_device("auto") is True
    with pytest.raises(ValueError, match="auto, host, device"):
        placement.resample_on_device("gpu")


def test_decode_workers_return_native_audio_and_import_no_jax(audio_files):
    pool = decode.process_pool(1)
    try:
        native = pool.submit(host.decode_for_stream, audio_files["mp3"], resample=False).result()
        modules = pool.submit(host.imported_modules).result()
    finally:
        pool.shutdown()
    assert "jax" not in modules
    assert isinstance(native, host.Native) and native.sample_rate == 44100
    x, sr = audio.load(audio_files["mp3"])
    np.testing.assert_array_equal(native.wave, x)
    at_16k = host.decode_for_stream(audio_files["short"], pad=True, resample=False)  # 16 kHz: as before
    np.testing.assert_array_equal(at_16k, host.decode_for_stream(audio_files["short"], pad=True))
    assert isinstance(host.decode_for_stream(audio_files["nan"], resample=False), audio.AudioError)
