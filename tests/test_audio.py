"""Decoding, downmixing, resampling, block streaming, the silence rule and bad-input errors."""
import numpy as np
import pytest
import soundfile as sf

from vggish_jax.audio import decode, files as audio_io, resampling
from conftest import require, tone_mix


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_formats_downmix_and_resample(audio_files, ext):
    x, sr = decode.load(audio_files[ext], target_sr=16000)
    assert sr == 16000 and x.dtype == np.float32 and x.ndim == 1
    # mp3 adds encoder delay/padding; the others are within a few samples of 3.2 s.
    assert abs(x.shape[0] - 3.2 * 16000) < (2000 if ext == "mp3" else 2)


def test_wav_roundtrip_is_the_channel_mean(audio_files):
    raw, sr = sf.read(audio_files["wav"], dtype="float32")
    x, sr2 = decode.load(audio_files["wav"])
    assert sr2 == sr == 44100
    np.testing.assert_allclose(x, raw.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("freq,gain", [(1000, 1.0), (6000, 1.0), (7900, 0.0)])
def test_resample_passband_and_stopband(freq, gain):
    sr = 44100
    x = np.sin(2 * np.pi * freq * np.arange(sr) / sr).astype(np.float32)
    y = resampling.resample(x, sr, 16000)
    assert y.shape == (16000,)
    core = y[1000:-1000]  # away from the edge transients
    assert np.sqrt(2) * core.std() == pytest.approx(gain, abs=0.01)
    if gain:
        ty = np.arange(16000)[1000:-1000] / 16000
        np.testing.assert_allclose(core, np.sin(2 * np.pi * freq * ty), atol=0.01)


def test_resample_matches_resampy_kaiser_best_in_log_mel():
    resampy = require("resampy", "oracle needs resampy (in the test extra)")
    from vggish_jax.models.vggish import frontend
    x = (0.3 * np.random.default_rng(0).standard_normal(3 * 44100)).astype(np.float32)
    ours = frontend.waveform_to_examples(resampling.resample(x, 44100, 16000), 16000)
    ref = frontend.waveform_to_examples(resampy.resample(x, 44100, 16000, filter="kaiser_best"), 16000)
    assert np.abs(ours - ref).max() < 0.01


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 11025, 8000, 96000])
@pytest.mark.parametrize("seconds", [0.0001, 0.31, 2.07])
def test_matmul_polyphase_resampler_equals_scipy_resample_poly(sr, seconds):
    """resampling.resample (dense-matmul polyphase) vs scipy's upfirdn, same filter."""
    from scipy import signal
    x = np.random.default_rng(sr).standard_normal(max(1, int(sr * seconds))).astype(np.float32)
    up, down = resampling.ratio(sr, 16000)
    want = signal.resample_poly(x, up, down, window=resampling.lowpass(up, down))
    got = resampling.resample(x, sr, 16000)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", [44100, 22050, 16000, 8000, 48000])
def test_stream_equals_whole_file(tmp_path, sr):
    path = tmp_path / f"x{sr}.wav"
    sf.write(path, tone_mix(5.3, sr, channels=2), sr, subtype="FLOAT")
    whole, _ = decode.load(path, 16000)
    blocks = list(decode.stream(path, 16000, block_seconds=0.7))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-5


@pytest.mark.parametrize("kind,message", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("corrupt", "cannot decode"),
    ("nan", "NaN"),
])
def test_bad_files_raise_one_clear_line(audio_files, kind, message):
    with pytest.raises(audio_io.AudioError) as err:
        decode.load(audio_files[kind])
    text = str(err.value)
    assert audio_files[kind] in text and message in text and "\n" not in text


@pytest.fixture(scope="module")
def cut_mp3(tmp_path_factory):
    """A 20-s mp3 and the same file cut in half (an interrupted download)."""
    d = tmp_path_factory.mktemp("cut")
    whole = d / "whole.mp3"
    sf.write(whole, tone_mix(20.0, 22050), 22050)
    data = whole.read_bytes()
    (d / "cut.mp3").write_bytes(data[: len(data) // 2])
    return str(whole), str(d / "cut.mp3")


def test_truncated_file_is_refused_with_decoded_and_declared_lengths(cut_mp3):
    whole, cut = cut_mp3
    declared = sf.info(cut).frames  # the header's claim (libsndfile), the oracle for "declared"
    with sf.SoundFile(cut) as f:
        decoded = f.read(dtype="float32").shape[0]  # what decodes, read whole
    assert decoded < declared * 0.6
    for read in (lambda: decode.load(cut, 16000), lambda: list(decode.stream(cut, 16000, block_seconds=3.0))):
        with pytest.raises(audio_io.TruncatedError) as err:
            read()
        assert f"{cut}: truncated: {decoded} of the {declared} frames its header declares decode" in str(err.value)
        assert err.value.kind == "truncated" and err.value.skip(cut).kind == "truncated"
    decode.load(whole, 16000)  # the whole file passes the same check


def test_keep_truncated_uses_the_part_that_decodes_and_says_so(cut_mp3):
    _, cut = cut_mp3
    with sf.SoundFile(cut) as f:
        raw = f.read(dtype="float32")
    with decode.collect_cautions() as got:
        x, sr = decode.load(cut, keep_truncated=True)
    np.testing.assert_array_equal(x, raw)
    assert [(c.kind, c.path) for c in got] == [("truncated_kept", cut)]


def test_over_range_is_reported_once_with_its_peak(tmp_path, capsys):
    path = str(tmp_path / "loud.wav")
    sf.write(path, 1000 * tone_mix(2.0, 16000), 16000, subtype="FLOAT")
    quiet = str(tmp_path / "ok.wav")
    sf.write(quiet, 1.2 * tone_mix(2.0, 16000), 16000, subtype="FLOAT")  # a little over 1: decoder overshoot
    peak = float(np.abs(sf.read(path, dtype="float32")[0]).max())
    with decode.collect_cautions() as got:
        list(decode.stream(path, 16000, block_seconds=0.5))
        list(decode.stream(quiet, 16000, block_seconds=0.5))
    err = capsys.readouterr().err
    assert [c.kind for c in got] == ["over_range"] and f"peak at {peak:.4g}" in got[0].reason
    assert err.count("warning:") == 1 and err.startswith(f"warning: {path}: samples peak at")


def test_scan_folder_sorted_skips_hidden_names(tmp_path):
    for rel in ["b/2.wav", "1.flac", "._1.flac", ".cache/3.wav", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    files, bad = audio_io.scan_folder(tmp_path)
    assert files == [str(tmp_path / "1.flac"), str(tmp_path / "b" / "2.wav")] and bad == []


def test_non_regular_files_and_broken_links_are_named_as_such(tmp_path):
    import os

    fifo, link = tmp_path / "p.wav", tmp_path / "l.wav"
    os.mkfifo(fifo)
    os.symlink(tmp_path / "gone.wav", link)
    for path, why in [(fifo, r"is a FIFO \(named pipe\), not a regular file"), (link, "broken symbolic link")]:
        with pytest.raises(audio_io.UnreadableError, match=why):
            decode.load(path)


def test_a_newline_in_a_file_name_stays_on_one_line(tmp_path):
    path = tmp_path / "a\nb.mp3"
    path.write_text("not audio\n" * 40)
    with pytest.raises(audio_io.AudioError) as err:
        decode.load(path)
    assert "\n" not in str(err.value) and str(tmp_path / "a\\nb.mp3") in str(err.value)


@pytest.mark.parametrize("db", [-80.0, -61.0, -59.0, -20.0, 0.0])
def test_silence_rule_is_a_peak_below_minus_60_dbfs(tmp_path, db):
    """A tone at fs/4 samples 0, A, 0, -A: its peak is exactly A, so its level is 20 log10(A) dBFS."""
    a = 10.0 ** (db / 20.0)
    x = (a * np.tile([0.0, 1.0, 0.0, -1.0], 4000)).astype(np.float64)
    assert decode.peak_dbfs(x) == pytest.approx(db, abs=1e-9)
    assert decode.is_silent(x) == (db < -60.0)
    path = str(tmp_path / "tone.wav")
    sf.write(path, x.astype(np.float32), 16000, subtype="FLOAT")
    if db < -60.0:
        with pytest.raises(audio_io.SilentAudioError, match=rf"tone.wav: silent or nearly so \(peak {db:.0f} dBFS, "
                                                            r"below -60 dBFS\); no genre"):
            decode.require_audible(path)
    else:
        decode.require_audible(path)
    assert decode.peak_dbfs(np.zeros(10)) == -np.inf and decode.is_silent(np.zeros(10))


def test_fad_uses_the_same_silence_rule(tmp_path):
    """fad's decode workers (`host.decode_for_stream` with `silent`) call a file silent exactly when the rule
    does on all its samples, mono, at the file's own rate (as `require_audible`): a -70 dBFS noise is skipped (it
    does not embed as digital silence), a -50 dBFS one kept; a -55 dBFS 10 kHz tone at 44.1 kHz is kept though
    resampling to 16 kHz removes it; stereo in antiphase is silent; past the streaming limit a late sound is
    still found. An undecodable file keeps its own reason; without `silent` a silent file is embedded."""
    from vggish_jax.pipeline import host

    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, 32000)
    waves = {"quiet": (noise / np.abs(noise).max() * 10 ** (-70 / 20), 16000),
             "soft": (noise / np.abs(noise).max() * 10 ** (-50 / 20), 16000),
             "zero": (np.zeros(32000), 16000),
             "high": (10 ** (-55 / 20) * np.sin(2 * np.pi * 10000 * np.arange(88200) / 44100), 44100),
             "antiphase": (np.stack([noise, -noise], 1) * 0.5, 16000),
             "late": (np.r_[np.zeros(48000), 0.5 * noise], 16000)}
    paths = {name: str(tmp_path / f"{name}.wav") for name in waves}
    for name, (x, rate) in waves.items():
        sf.write(paths[name], x.astype(np.float32), rate, subtype="FLOAT")
    consequence = "not counted in the statistics"
    for limits in ({}, {"stream_seconds": 1.0, "block_seconds": 0.5}):  # whole, and streamed past the limit
        got = {name: host.decode_for_stream(p, silent=consequence, **limits) for name, p in paths.items()}
        silent = sorted(name for name, v in got.items() if isinstance(v, audio_io.SilentAudioError))
        assert silent == ["antiphase", "quiet", "zero"]
        for name, p in paths.items():
            assert decode.is_silent(decode.to_mono(sf.read(p, dtype="float32")[0])) == (name in silent)
        assert {host.skip_of(paths[name], got[name]).kind for name in silent} == {"silent"}
        assert str(got["quiet"]) == (f"{paths['quiet']}: silent or nearly so (peak -70 dBFS, below -60 dBFS); "
                                     f"{consequence}: check the file, or raise its level if it is just quiet")
        assert "digital silence" in str(got["zero"]) and "digital silence" in str(got["antiphase"])
        with pytest.raises(audio_io.SilentAudioError, match=r"peak -70 dBFS.*statistics: check the file"):
            decode.require_audible(paths["quiet"], consequence=consequence)
    assert isinstance(host.decode_for_stream(paths["late"], silent=consequence, stream_seconds=1.0), host.Long)
    assert decode.is_silent(host.decode_for_stream(paths["high"]))  # the 16 kHz waveform: judged before that
    assert isinstance(host.decode_for_stream(paths["zero"]), np.ndarray)  # embed/extract keep silent files
    bad = str(tmp_path / "bad.mp3")
    open(bad, "wb").write(b"not audio")
    got = host.decode_for_stream(bad, silent=consequence)
    assert isinstance(got, audio_io.AudioError) and not isinstance(got, audio_io.SilentAudioError)


def test_audio_imports_no_jax():
    """Decode worker processes import vggish_jax.audio: it must not pull in jax (seconds and memory each)."""
    import subprocess
    import sys

    code = ("import sys, vggish_jax.audio, vggish_jax.audio.decode\n"
            "print(sorted(m for m in ('jax', 'flax', 'orbax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
