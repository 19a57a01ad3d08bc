"""Fréchet Audio Distance: numerics against closed forms and an independent scipy-sqrtm formula; statistics;
per-file scores and FAD-inf; the whole path on generated audio whose ordering is known; stores and stats."""
from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import linalg

from tests.conftest import tone_mix
from vggish_jax import cli, spec as spec_lib
from vggish_jax.pipeline import store
from vggish_jax.fad import compute, frechet, sources


# ---- independent oracle: the textbook formula with scipy's sqrtm of the (non-symmetric) product ----

def scipy_fd(mu1, c1, mu2, c2):
    root = linalg.sqrtm(np.asarray(c1, np.float64) @ np.asarray(c2, np.float64))
    d = np.asarray(mu1, np.float64) - mu2
    return float(d @ d + np.trace(c1) + np.trace(c2) - 2 * np.trace(np.real(root)))


def closed_form_commuting(mu1, a, mu2, b):
    """Covariances with the same eigenvectors and eigenvalues a, b: |dmu|^2 + sum (sqrt a - sqrt b)^2."""
    d = np.asarray(mu1) - mu2
    return float(d @ d + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


def random_rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ---- numerics ----

@pytest.mark.parametrize("method", frechet.METHODS)
def test_diagonal_and_commuting_covariances_match_closed_form(method):
    rng = np.random.default_rng(0)
    d = 16
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    want = closed_form_commuting(mu1, a, mu2, b)
    r = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
    assert r.distance == pytest.approx(want, rel=1e-10)
    q = random_rotation(d, 1)
    r = frechet.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T, method=method)
    assert r.distance == pytest.approx(want, rel=1e-9)
    assert r.mean_term == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)), rel=1e-12)


def test_one_dimension_is_mean_and_std_difference():
    r = frechet.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]])
    assert r.distance == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2, rel=1e-12)


def test_rank_deficient_covariances_match_closed_form():
    # Fewer frames than dimensions makes covariances singular; half the eigenvalues are exactly zero.
    d = 12
    a = np.r_[np.linspace(0.5, 3, 6), np.zeros(6)]
    b = np.r_[np.zeros(3), np.linspace(1, 2, 9)]
    q = random_rotation(d, 2)
    c1, c2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = np.zeros(d)
    r = frechet.frechet_distance(mu, c1, mu, c2)
    assert r.distance == pytest.approx(closed_form_commuting(mu, a, mu, b), rel=1e-9)
    # the rounding that makes zero eigenvalues slightly negative is reported, and it is tiny
    assert 0 <= r.imag < 1e-6


@pytest.mark.parametrize("method", frechet.METHODS)
def test_identical_gaussians_give_zero_and_order_does_not_matter(method):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((400, 32)), rng.standard_normal((300, 32)) * 1.5 + 0.2
    m1, c1, m2, c2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    assert abs(frechet.frechet_distance(m1, c1, m1, c1, method=method).distance) < 1e-9 * np.trace(c1)
    ab = frechet.frechet_distance(m1, c1, m2, c2, method=method).distance
    ba = frechet.frechet_distance(m2, c2, m1, c1, method=method).distance
    assert ab == pytest.approx(ba, rel=1e-10)


def test_matches_independent_scipy_sqrtm_formula_on_general_covariances():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 128)) @ rng.standard_normal((128, 128)) * 0.3
    y = rng.standard_normal((700, 128)) @ rng.standard_normal((128, 128)) * 0.2 + 0.1
    args = (x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    want = scipy_fd(*args)
    assert frechet.frechet_distance(*args).distance == pytest.approx(want, rel=1e-8)
    r = frechet.frechet_distance(*args, method="sqrtm")
    assert r.distance == pytest.approx(want, rel=1e-10) and r.eps == 0


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(frechet.FrechetError, match="different sizes"):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(frechet.FrechetError, match="NaN"):
        frechet.frechet_distance(np.zeros(2), np.eye(2), np.array([0, np.nan]), np.eye(2))
    with pytest.raises(frechet.FrechetError, match="unknown method"):
        frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")


# ---- statistics ----

def test_streaming_statistics_equal_numpy_on_all_frames_even_far_from_zero(tmp_path):
    rng = np.random.default_rng(5)
    blocks = [rng.standard_normal((k, 8)) * 0.01 + 1e4 for k in (3, 1, 17, 5, 40)]
    st = frechet.from_frames(blocks)
    allx = np.concatenate(blocks)
    assert st.count == 66 and st.num_files == 5
    np.testing.assert_allclose(st.mean, allx.mean(0), rtol=1e-14)
    np.testing.assert_allclose(st.cov, np.cov(allx, rowvar=False), rtol=1e-8, atol=1e-14)
    st.spec = spec_lib.EmbeddingSpec.create(weights_sha256="a" * 64, final_relu=False)
    st.meta = {"note": "x"}
    path = frechet.save(tmp_path / "s", st)
    assert path.endswith("s.npz") and frechet.is_stats_file(path)
    back = frechet.load(path)
    np.testing.assert_array_equal(back.cov, st.cov)
    assert back.spec == st.spec and back.count == 66 and back.meta["note"] == "x"
    with pytest.raises(frechet.StatsError, match="at least 2"):
        frechet.from_frames([np.ones((1, 4))])


# ---- per-file scores and FAD-inf ----

def test_per_file_scores_are_each_files_fad_against_ref():
    rng = np.random.default_rng(6)
    ref = frechet.from_frames([rng.standard_normal((300, 16))])
    files = {"a": rng.standard_normal((5, 16)), "b": rng.standard_normal((40, 16)) + 2.0,
             "c": rng.standard_normal((1, 16))}
    rows = frechet.per_file_scores(ref, files)
    assert [r["file"] for r in rows] == ["b", "a", "c"]  # farthest first, the 1-frame file last without a score
    assert rows[2]["fad"] is None
    for r in rows[:2]:
        x = files[r["file"]]
        assert r["fad"] == pytest.approx(scipy_fd(ref.mean, ref.cov, x.mean(0), np.cov(x, rowvar=False)), rel=1e-7)


@pytest.mark.parametrize("n", [10, 200])  # fewer and more frames than dimensions: the two code paths
def test_subset_distance_matches_the_oracle(n):
    rng = np.random.default_rng(8)
    ref = frechet.from_frames([rng.standard_normal((300, 32)) @ rng.standard_normal((32, 32))])
    x = rng.standard_normal((n, 32)) + 0.3
    root, _ = frechet.psd_sqrt(ref.cov)
    got = frechet._fd_to_ref(x, ref.mean, root, float(np.trace(ref.cov)))
    assert got == pytest.approx(scipy_fd(ref.mean, ref.cov, x.mean(0), np.cov(x, rowvar=False)), rel=1e-7)


def test_inverse_n_fit_recovers_an_exact_line():
    ns = [50, 100, 400, 1000]
    value, slope, r2 = frechet.fit_inverse_n(ns, [2.0 + 30.0 / n for n in ns])
    assert value == pytest.approx(2.0, rel=1e-10) and slope == pytest.approx(30.0, rel=1e-9) and r2 == pytest.approx(1)


def test_fad_inf_removes_the_small_sample_bias():
    # REF is the exact N(0, I); GEN frames come from N(mu, I), so the true distance is |mu|^2. FAD on
    # finitely many frames is biased upwards (~ d/N); the extrapolation to 1/N -> 0 removes most of it.
    d, true = 16, 0.25
    ref = frechet.Stats(np.zeros(d), np.eye(d), 10**9, 1)
    mu = np.full(d, np.sqrt(true / d))
    plain, inf, repl = [], [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        files = [rng.standard_normal((20, d)) + mu for _ in range(30)]
        plain.append(frechet.frechet_distance(ref.mean, ref.cov, *_mean_cov(np.concatenate(files))).distance)
        inf.append(frechet.fad_inf(ref, files, steps=8, min_n=40, bootstrap=0, seed=seed)["value"])
        repl.append(frechet.fad_inf(ref, files, steps=8, min_n=40, bootstrap=0, seed=seed, replace=True)["value"])
    print("bias plain", np.mean(plain) - true, "inf", np.mean(inf) - true, "with replacement", np.mean(repl) - true)
    assert np.mean(plain) - true > 0.08  # the bias being removed (about 0.12 here)
    assert abs(np.mean(inf) - true) < 0.4 * (np.mean(plain) - true)
    # with replacement (fadtk) the intercept keeps most of the bias of the plain FAD
    assert np.mean(repl) - true > 0.6 * (np.mean(plain) - true)
    r = frechet.fad_inf(ref, files, steps=8, min_n=40, bootstrap=40, seed=1)
    assert r["slope"] > 0 and len(r["points"]) == 8 and r["points"][-1]["n"] == 600
    assert r["ci"][0] < r["value"] < r["ci"][1] and r["ci"][0] < true < r["ci"][1] and r["se"] > 0


def _mean_cov(x):
    return x.mean(0), np.cov(x, rowvar=False)


# ---- the whole path on generated audio (VGGish on CPU: slow marker, run by .ci/run) ----

slow = pytest.mark.slow

@pytest.fixture(scope="module")
def embedder(random_weights_dir):
    from vggish_jax.pipeline.embed import load_pretrained

    return load_pretrained(random_weights_dir, final_relu=False, batch_size=16)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """REF: 6 clean clips; GEN variants: an identical copy and the same clips with growing noise; a bad folder."""
    root = tmp_path_factory.mktemp("fadsets")
    rng = np.random.default_rng(0)
    clean = [tone_mix(3.0 + 0.3 * i, 16000, seed=i) * (0.6 + 0.1 * i) for i in range(6)]
    noise = [rng.standard_normal(c.size).astype(np.float32) for c in clean]
    out = {}
    for name, level in (("ref", None), ("copy", 0.0), ("n05", 0.05), ("n20", 0.2), ("n80", 0.8)):
        d = root / name
        d.mkdir()
        ext = "mp3" if name == "n80" else "wav"  # folders of mp3 work the same way
        for i, c in enumerate(clean):
            x = c if level is None else c + level * noise[i]
            sf.write(d / f"clip{i}.{ext}", np.clip(x, -1, 1), 16000)
        out[name] = str(d)
    bad = root / "withbad"
    bad.mkdir()
    for i, c in enumerate(clean):
        sf.write(bad / f"clip{i}.wav", np.clip(c + 0.2 * noise[i], -1, 1), 16000)
    sf.write(bad / "silent.wav", np.zeros(40000, np.float32), 16000)
    (bad / "corrupt.mp3").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    sf.write(bad / "short.wav", tone_mix(0.4, 16000), 16000)
    out["withbad"] = str(bad)
    return out


def run(ref, gen, embedder, **kw):
    kw.setdefault("bootstrap", 5)
    return compute.evaluate(ref, gen, weights=embedder, progress=False, log=lambda m: None, **kw)


@slow
def test_identical_sets_zero_noise_orders_and_swap_is_symmetric(sets, embedder):
    same = run(sets["ref"], sets["copy"], embedder, fad_inf=False)
    scale = np.trace(frechet.from_frames(embedder.embed_files(
        sources.audio_inputs(sets["ref"])[0])[0].values()).cov)
    assert abs(same["fad"]) < 1e-6 * scale
    fads = [run(sets["ref"], sets[k], embedder, fad_inf=False, per_file=False)["fad"] for k in ("n05", "n20", "n80")]
    assert same["fad"] < fads[0] < fads[1] < fads[2]
    swapped = run(sets["n20"], sets["ref"], embedder, fad_inf=False)["fad"]
    assert swapped == pytest.approx(fads[1], rel=1e-5)


@slow
def test_fad_equals_independent_formula_on_the_same_embeddings(sets, embedder):
    r = run(sets["ref"], sets["n20"], embedder, steps=4)
    e_ref, _ = embedder.embed_files(sources.audio_inputs(sets["ref"])[0])
    e_gen, _ = embedder.embed_files(sources.audio_inputs(sets["n20"])[0])
    xr, xg = np.concatenate(list(e_ref.values())), np.concatenate(list(e_gen.values()))
    want = scipy_fd(xr.mean(0), np.cov(xr, rowvar=False), xg.mean(0), np.cov(xg, rowvar=False))
    assert r["fad"] == pytest.approx(want, rel=1e-5)
    assert r["ref"]["frames"] == xr.shape[0] and r["gen"]["files"] == 6
    assert len(r["per_file"]) == 6 and r["fad_inf"]["ci"] is not None
    assert r["convention"]["embedding"].endswith("final_relu=False") and r["numerics"]["method"] == "eigh"


@slow
def test_corrupt_silent_and_short_files_are_skipped_and_reported(sets, embedder):
    r = run(sets["ref"], sets["withbad"], embedder, fad_inf=False)
    skipped = r["gen"]["skipped"]
    assert sorted(os.path.basename(p) for p in skipped) == ["corrupt.mp3", "short.wav", "silent.wav"]
    assert "silent" in skipped[os.path.join(sets["withbad"], "silent.wav")]
    assert r["gen"]["files"] == 6
    # the skipped files are not counted: same score as the folder without them
    assert r["fad"] == pytest.approx(run(sets["ref"], sets["n20"], embedder, fad_inf=False)["fad"], rel=1e-5)
    padded = run(sets["ref"], sets["withbad"], embedder, fad_inf=False, pad=True)
    assert padded["gen"]["files"] == 7 and padded["convention"]["short_files"].startswith("zero-padded")
    assert sorted(os.path.basename(p) for p in padded["gen"]["skipped"]) == ["corrupt.mp3", "silent.wav"]


@slow
def test_each_file_is_decoded_once_and_a_silent_one_skipped_with_the_rules_reason(sets, embedder, monkeypatch):
    """The silence rule is applied to the samples the embedder decodes: no frame of any file is read twice."""
    from vggish_jax.audio import files

    read, real = collections.Counter(), files.read_frames

    def counting(f, path, frames=-1, at=None):
        x = real(f, path, frames, at)
        read[path] += x.shape[0]
        return x

    monkeypatch.setattr(files, "read_frames", counting)
    logged = []
    r = compute.evaluate(sets["ref"], sets["withbad"], weights=embedder, progress=False, log=logged.append,
                         fad_inf=False, workers=0)
    paths = sources.audio_inputs(sets["ref"])[0] + sources.audio_inputs(sets["withbad"])[0]
    assert {p: read[p] for p in paths if not p.endswith(".mp3")} == {
        p: sf.info(p).frames for p in paths if not p.endswith(".mp3")}
    silent = os.path.join(sets["withbad"], "silent.wav")
    reason = (f"{silent}: silent or nearly so (digital silence, below -60 dBFS); not counted in the statistics: "
              f"check the file, or raise its level if it is just quiet")
    assert r["gen"]["skipped"][silent] == reason and f"fad: GEN skipped {reason}" in logged
    assert r["gen"]["files"] == 6 and len(r["gen"]["skipped"]) == 3


@slow
def test_ref_statistics_are_reused_and_refused_when_spec_or_files_differ(sets, embedder, tmp_path, random_weights_dir):
    from vggish_jax.pipeline.embed import load_pretrained

    path, gen_path = str(tmp_path / "ref.npz"), str(tmp_path / "gen.npz")
    first = run(sets["ref"], sets["n20"], embedder, fad_inf=False, ref_stats=path, save_gen_stats=gen_path)
    saved = frechet.load(path)
    assert saved.spec == embedder.spec and saved.count == first["ref"]["frames"]
    # statistics on both sides: no weights needed, the same score, no per-file scores or FAD-inf
    both = run(path, gen_path, None)
    assert both["fad"] == pytest.approx(first["fad"], rel=1e-12) and both["per_file"] is None
    assert both["fad_inf"] is None and "GEN is statistics" in both["notes"]
    mtime = os.stat(path).st_mtime_ns
    again = run(sets["ref"], sets["n20"], embedder, fad_inf=False, ref_stats=path)
    assert again["fad"] == pytest.approx(first["fad"], rel=1e-5) and again["ref"]["kind"] == "stats"
    assert os.stat(path).st_mtime_ns == mtime
    # the statistics as REF directly, against GEN embedded with the final ReLU: another spec, refused
    relu = load_pretrained(random_weights_dir, final_relu=True, batch_size=16)
    with pytest.raises(spec_lib.SpecMismatch, match="final_relu"):
        run(path, sets["n20"], relu, fad_inf=False)
    with pytest.raises(sources.SourceError, match="other files"):
        run(sets["n05"], sets["n20"], embedder, fad_inf=False, ref_stats=path)
    with pytest.raises(sources.SourceError, match="made without pad = true"):
        run(sets["ref"], sets["n20"], embedder, fad_inf=False, ref_stats=path, pad=True)


@slow
def test_embed_output_and_extract_store_give_the_same_fad(sets, embedder, tmp_path, random_weights_dir, capsys):
    want = run(sets["ref"], sets["n20"], embedder, fad_inf=False)["fad"]
    out = str(tmp_path / "gen" / "embeddings.npz")
    assert cli.main(["embed", *sources.audio_inputs(sets["n20"])[0], "--weights", random_weights_dir, "--out",
                     os.path.dirname(out), "--final-relu", "no"]) == 0
    assert run(sets["ref"], out, embedder, fad_inf=False)["fad"] == pytest.approx(want, rel=1e-5)
    # a list file of the same audio, paths relative to the list's folder
    lst = os.path.join(sets["n20"], "files.txt")
    with open(lst, "w") as f:
        f.write("# generated\n" + "\n".join(os.path.basename(p) for p in sources.audio_inputs(sets["n20"])[0]) + "\n")
    assert run(sets["ref"], lst, embedder, fad_inf=False)["fad"] == pytest.approx(want, rel=1e-5)
    os.remove(lst)
    # an extract-layout store (what `vggish-jax extract` writes), one split folder of it
    root = tmp_path / "emb"
    e_gen, _ = embedder.embed_files(sources.audio_inputs(sets["n20"])[0])
    store.write_shard(store.shard_path(str(root), "test", 0), np.arange(6), np.zeros(6), list(e_gen.values()))
    store.write_info(str(root), {"complete": True, "splits": {"test": {}}, "skipped": [],
                                 spec_lib.KEY: embedder.spec.to_dict()})
    r = run(sets["ref"], str(root / "test"), embedder, fad_inf=False)
    assert r["fad"] == pytest.approx(want, rel=1e-5) and r["gen"]["kind"] == "extract"
    # both sides stored: no weights needed
    assert run(str(root), out, None, fad_inf=False)["fad"] == pytest.approx(0.0, abs=1e-6)


@slow
def test_cli_writes_json_with_top_level_fad_and_png(sets, random_weights_dir, tmp_path, capsys):
    out = tmp_path / "r" / "fad.json"
    settings = tmp_path / "settings.toml"
    settings.write_text("steps = 3\nbootstrap = 3\nbatch_size = 16\n")
    assert cli.main(["fad", sets["ref"], sets["n80"], "--weights", random_weights_dir, "--out", str(out.parent),
                     "--config", str(settings)]) == 0
    result = json.loads(out.read_text())
    assert result["gen"]["files"] == 6 and not result["gen"]["skipped"]
    assert result["fad"] > 0 and result["fad_inf"]["points"] and result["embedding_spec"]["final_relu"] is False
    png = tmp_path / "r" / "fad_inf.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "FAD " in capsys.readouterr().out


def test_cli_audio_without_weights_is_one_line(sets, capsys):
    assert cli.main(["fad", sets["ref"], sets["n20"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weights" in err[0] and "Traceback" not in err[0]


def _write_embed_output(path, arrays: dict, spec: spec_lib.EmbeddingSpec):
    """An `embed`-format output (OUT.npz + OUT.json sidecar with the spec), written directly."""
    np.savez(path, **arrays)
    with open(str(path)[:-4] + ".json", "w") as f:
        json.dump({"errors": {}, "files": list(arrays), spec_lib.KEY: spec.to_dict()}, f)


def test_stored_embeddings_without_a_model_and_mismatched_specs_refused(tmp_path):
    rng = np.random.default_rng(9)
    spec = spec_lib.EmbeddingSpec.create(weights_sha256="a" * 64, final_relu=False)
    ref = {f"r{i}": rng.standard_normal((8, 128)).astype(np.float32) for i in range(20)}
    gen = {f"g{i}": (rng.standard_normal((8, 128)) * 1.2 + 0.1).astype(np.float32) for i in range(20)}
    _write_embed_output(tmp_path / "ref.npz", ref, spec)
    _write_embed_output(tmp_path / "gen.npz", gen, spec)
    r = compute.evaluate(str(tmp_path / "ref.npz"), str(tmp_path / "gen.npz"), bootstrap=3, progress=False,
                         log=lambda m: None)
    xr, xg = np.concatenate(list(ref.values())), np.concatenate(list(gen.values()))
    want = scipy_fd(xr.mean(0), np.cov(xr, rowvar=False), xg.mean(0), np.cov(xg, rowvar=False))
    assert r["fad"] == pytest.approx(want, rel=1e-8) and r["gen"]["kind"] == "embed" and len(r["per_file"]) == 20
    # other weights on one side: refused with one line naming both sides
    _write_embed_output(tmp_path / "other.npz", gen, spec.replace(weights_sha256="b" * 64))
    with pytest.raises(spec_lib.SpecMismatch, match="weights_sha256") as e:
        compute.evaluate(str(tmp_path / "ref.npz"), str(tmp_path / "other.npz"), progress=False, log=lambda m: None)
    assert "\n" not in str(e.value)
    # PCA-quantised uint8 embeddings are not what FAD is defined on
    _write_embed_output(tmp_path / "q.npz", {k: v.astype(np.uint8) for k, v in gen.items()},
                        spec.replace(postprocess=True))
    with pytest.raises(sources.SourceError, match="raw 128-d"):
        compute.evaluate(str(tmp_path / "ref.npz"), str(tmp_path / "q.npz"), progress=False, log=lambda m: None)
    # asking for the final ReLU when the stores were made without it
    with pytest.raises(spec_lib.SpecMismatch, match="final_relu"):
        compute.evaluate(str(tmp_path / "ref.npz"), str(tmp_path / "gen.npz"), final_relu=True, progress=False,
                         log=lambda m: None)


def test_identical_rank_deficient_sets_give_zero_not_a_negative_distance():
    """31 frames in 128 dimensions against themselves: exactly 0; what rounding puts below 0 is reported as
    `clipped`, never as a negative distance."""
    x = np.random.default_rng(3).normal(size=(31, 128))
    mu, cov = x.mean(axis=0), np.cov(x, rowvar=False)
    r = frechet.frechet_distance(mu, cov, mu, cov)
    raw = r.mean_term + r.trace_term
    assert r.distance == max(raw, 0.0) and r.clipped == max(-raw, 0.0)
    assert r.distance >= 0 and abs(raw) < 1e-9


def test_one_frame_reference_names_the_role_the_file_and_the_fix():
    from vggish_jax.fad.sources import EmbeddingSet, SourceError

    s = EmbeddingSet("REF", "ref_dir", "embed", files={"ref_dir/a.wav": np.ones((1, 128), np.float32)})
    with pytest.raises(SourceError, match=r"^REF ref_dir \(ref_dir/a.wav\): 1 embedding frame .*give more audio$"):
        s.get_stats()
