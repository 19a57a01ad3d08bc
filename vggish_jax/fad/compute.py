"""`evaluate(REF, GEN)`: the FAD of GEN against REF, with per-file scores and FAD-infinity, as one JSON-ready dict.

Conventions (what the three common implementations do, read from their source; ours is the default):

- google-research/google-research `frechet_audio_distance` (the original, TF + Beam): the VGGish embedding
  tensor of the TF model (current TF VGGish has no ReLU after its last layer), no PCA; statistics over all
  frames of all files, unbiased covariance (ComputeMeanAndCovariance); no resampling (expects 16 kHz wav);
  each clip peak-normalised with at most +20 dB gain; audio split into 1-s pieces, one example each;
  scipy sqrtm of the product, retried with eps 1e-7 on the diagonals (fad_utils.py,
  create_embeddings_beam.py, audioset_model.py).
- `frechet-audio-distance` on PyPI (gudgud96): torchvggish with its final ReLU removed by default
  (`use_activation=False`) and no PCA (`use_pca=False`); resampy to 16 kHz; np.mean / np.cov over all
  frames; pytorch-fid's sqrtm with eps 1e-6 retry (frechet_audio_distance/fad.py).
- microsoft/fadtk: the same torchvggish setup (no final ReLU, no PCA); SoX converts to 16 kHz mono 16-bit;
  files shorter than 1 s zero-padded to 1 s; embeddings cached as float16; np.cov; eigen-decomposition of
  S1 S2 with a sqrtm cross-check; per-song scores and FAD-inf, see score.py (fadtk/fad.py,
  model_loader.py).
- here: raw 128-d output without the final ReLU, no PCA; all frames, unbiased covariance, float64; our
  polyphase resampler with resampy's kaiser_best filter design; no loudness normalisation; files shorter
  than 0.975 s skipped and reported (`pad=True` zero-pads, as fadtk); eigh of S1^(1/2) S2 S1^(1/2).

Default: raw output without the final ReLU, because all three tools agree on it, so numbers compare with
published FADs computed with any of them. This differs from our weights' recorded default for torchvggish
conversions (final ReLU on): FAD overrides it unless `final_relu` is given. Silent files (the project's
one rule, `audio.is_silent`: peak below -60 dBFS) are skipped and reported, like unreadable and too-short ones:
an empty or silent generation is a failure to report, not a sample. Zero-padding short files (fadtk) adds
near-silent frames to the statistics, so it is opt-in.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from vggish_jax import skips, spec as spec_lib
from vggish_jax.audio import decode as audio_decode
from vggish_jax.fad import frechet, score, sources, stats as stats_lib
from vggish_jax.fad.sources import EmbeddingSet, SourceError
from vggish_jax.models.vggish import frontend


def evaluate(ref: str, gen: str, *, weights=None, final_relu: bool | None = None, pad: bool = False,
             method: str = "eigh", per_file: bool = True, fad_inf: bool = True, steps: int = 10,
             min_n: int | None = None, bootstrap: int = 100, ci_level: float = 0.95, seed: int = 0,
             replace: bool = False, ref_stats: str | None = None, save_gen_stats: str | None = None,
             batch_size: int = 64, workers: int = 2, progress: bool = True,
             log: Callable[[str], None] | None = None) -> dict:
    """FAD of GEN against REF. Each is a folder/list/file of audio, an extract or embed output, or statistics.

    weights: a weights directory or an Embedder; needed when REF or GEN is audio (decoded by `workers` worker
    processes, 0: in this process). ref_stats: a statistics path; reused when it exists (refused if made from
    other REF files or with another spec), else REF's statistics are written there.
    """
    log = log or (lambda m: print(m, file=sys.stderr))
    if method not in frechet.METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {frechet.METHODS}")
    if steps < 2 or bootstrap < 0 or not 0 < ci_level < 1:
        raise ValueError(f"need steps >= 2, bootstrap >= 0 and 0 < ci_level < 1; got {steps}, {bootstrap}, {ci_level}")
    ref_set = _cached_ref(ref, ref_stats, pad) if ref_stats and os.path.exists(ref_stats) else None
    sets = [ref_set or _open(ref, "REF"), _open(gen, "GEN")]
    # skips.Caution dicts: over-range audio, sets with few frames
    warnings = _embed_audio_sets(sets, weights, final_relu, batch_size, pad, workers, progress)
    ref_set, gen_set = sets
    for s in sets:
        for reason in s.skipped.values():
            log(f"fad: {s.role} skipped {reason}")
    ref_st, gen_st = ref_set.get_stats(), gen_set.get_stats()
    if ref_st.mean.shape != gen_st.mean.shape:
        raise SourceError(f"REF has {ref_st.mean.shape[0]}-d embeddings and GEN {gen_st.mean.shape[0]}-d; "
                          f"they come from different models")
    for s, st in ((ref_set, ref_st), (gen_set, gen_st)):
        note = few_frames(s.role, s.source, st.count, st.mean.shape[0])
        if note:
            log(f"fad: warning: {note}")
            warnings.append(skips.Caution("few_frames", s.source, note).to_dict())
    if ref_stats and ref_set.kind != "stats":
        ref_st.meta.update(_ref_identity(ref_set), pad=pad, skipped=ref_set.skipped)
        stats_lib.save(ref_stats, ref_st)
        log(f"fad: saved REF statistics to {ref_stats}")
    if save_gen_stats:
        stats_lib.save(save_gen_stats, gen_st)
    fd = frechet.frechet_distance(ref_st.mean, ref_st.cov, gen_st.mean, gen_st.cov, method=method)
    if fd.clipped:
        log(f"fad: the distance came out {-fd.clipped:.3g}, below 0 by rounding; reported as 0")
    spec = ref_set.spec or gen_set.spec
    result = {
        "fad": fd.distance,
        "numerics": fd.to_dict(),
        "ref": ref_set.summary(),
        "gen": gen_set.summary(),
        "embedding_spec": spec.to_dict() if spec else None,
        "convention": convention(spec, pad),
        "per_file": None,
        "fad_inf": None,
        "warnings": warnings,
    }
    if gen_set.files is None:
        result["notes"] = "GEN is statistics: per-file scores and FAD-inf need GEN's frames"
        return result
    if per_file:
        result["per_file"] = score.per_file_scores(ref_st, gen_set.files)
    if fad_inf and gen_st.count < 4:
        result["notes"] = f"FAD-inf needs at least 4 GEN frames, GEN has {gen_st.count}"
    elif fad_inf:
        with _bar(bootstrap + 1, "fad: FAD-inf", progress) as bar:
            inf = score.fad_inf(ref_st, list(gen_set.files.values()), steps=steps, min_n=min_n,
                                bootstrap=bootstrap, ci_level=ci_level, seed=seed, replace=replace,
                                progress=bar.update)
        result["fad_inf"] = _checked_fad_inf(inf.to_dict(), gen_st.count, log)
    return result


def _embed_audio_sets(sets: list[EmbeddingSet], weights, final_relu, batch_size: int, pad: bool, workers: int,
                      progress: bool) -> list[dict]:
    """Embed the sets that are audio (in place), checking specs before and after; the Cautions raised."""
    audio_sets = [s for s in sets if s.kind == "audio"]
    embedder = None
    if audio_sets:
        embedder = _embedder(weights, final_relu, batch_size, [s.source for s in audio_sets])
    _check_specs(sets, embedder, final_relu)  # before any embedding: a mismatch costs nothing
    if not audio_sets:
        return []
    total = sum(len(s.audio_paths) for s in audio_sets)
    with _bar(total, "fad: embed", progress, unit="file") as bar, audio_decode.collect_cautions() as cautions:
        sources.embed_audio(audio_sets, embedder, pad=pad, workers=workers, progress=bar.update)
    _check_specs(sets, embedder, final_relu)
    return [c.to_dict() for c in cautions]


def few_frames(role: str, source: str, frames: int, dim: int) -> str | None:
    """A note when a set has fewer frames than dimensions: its covariance is singular, and FAD (which grows
    like c / frames) is then mostly small-sample bias."""
    if frames >= dim:
        return None
    minutes = dim * frontend.example_hop_seconds() / 60
    return (f"{role} {source} has {frames} frames in {dim} dimensions, so its covariance is singular and the FAD "
            f"is dominated by small-sample bias, not by the audio; use more audio (at least {dim} frames, "
            f"{minutes:.0f} minutes; thousands for a stable FAD)")


def _checked_fad_inf(inf: dict, frames: int, log) -> dict:
    """FAD-inf is a distance: an intercept below 0 is the fit failing (too few or too uniform frames), so it
    is kept under 'intercept' and not reported as a value."""
    if inf["value"] >= 0:
        if inf["ci"] is not None:
            inf["ci"][0] = max(inf["ci"][0], 0.0)
        return inf
    reason = (f"the 1/N fit extrapolates to {inf['value']:.3g} < 0, which is no distance: GEN's {frames} frames "
              f"are too few for FAD-inf; use more audio (thousands of frames), or read the plain FAD")
    log(f"fad: FAD-inf not reported: {reason}")
    return {**inf, "intercept": inf["value"], "value": None, "ci": None, "reason": reason}


def convention(spec: spec_lib.EmbeddingSpec | None, pad: bool) -> dict:
    hop, length = frontend.example_hop_seconds(), frontend.example_seconds()
    return {
        "embedding": (f"VGGish raw {'uint8 PCA' if spec and spec.postprocess else '128-d'} output, "
                      f"final_relu={spec.final_relu if spec else None}"),
        "statistics": f"frame level: all frames (one every {hop:.2f} s) of all files; unbiased covariance; "
                      f"float64",
        "resampling": "to 16 kHz mono with resampy's kaiser_best filter design (scipy polyphase)",
        "short_files": f"zero-padded to one {length:.3f}-s example" if pad else "skipped and reported",
        "silent_files": f"peak below {audio_decode.SILENCE_PEAK_DBFS:.0f} dBFS: skipped and reported",
        "sqrt": "eigh of S_ref^(1/2) S_gen S_ref^(1/2) (or scipy sqrtm, see numerics.method)",
    }


def _open(source: str, role: str) -> EmbeddingSet:
    kind = sources.kind_of(source)
    if kind == "audio":
        paths, unreadable = sources.audio_inputs(source)
        return EmbeddingSet(role, source, "audio", audio_paths=paths, skipped=dict(unreadable))
    return sources.load_stored(role, source, kind)


def _ref_identity(s: EmbeddingSet) -> dict:
    if s.kind == "audio":
        return {"ref_digest": sources.digest(s.audio_paths), "ref_files": len(s.audio_paths)}
    return {"ref_digest": sources.digest([s.source]), "ref_files": len(s.files or {})}


def _cached_ref(ref: str, path: str, pad: bool) -> EmbeddingSet:
    """Saved REF statistics, if they were made from exactly these REF files."""
    s = sources.load_stored("REF", path, "stats")
    kind = sources.kind_of(ref)
    if kind == "stats":
        raise SourceError(f"REF {ref} is itself statistics; pass it as REF without ref_stats")
    want = sources.digest(sources.audio_paths(ref)) if kind == "audio" else sources.digest([ref])
    if s.stats.meta.get("ref_digest") != want:
        raise SourceError(f"{path}: these REF statistics were made from other files than {ref} (or the files "
                          f"changed since); delete {path}, or choose another ref_stats path")
    if s.stats.meta.get("pad", False) != pad:
        raise SourceError(f"{path}: these REF statistics were made {'with' if s.stats.meta.get('pad') else 'without'} "
                          f"pad = true; set pad the same way in the --config file, or choose another ref_stats path")
    s.source, s.skipped = ref, dict(s.stats.meta.get("skipped") or {})
    return s


def _embedder(weights, final_relu, batch_size, needs):
    from vggish_jax.pipeline.embed import Embedder, load_pretrained

    if weights is None:
        raise SourceError(f"{needs[0]} is audio, so it must be embedded: pass --weights DIR (converted VGGish "
                          f"weights, see the README section 'Weights')")
    if isinstance(weights, Embedder):
        if final_relu is not None and bool(final_relu) != weights.final_relu:
            raise ValueError(f"the Embedder has final_relu={weights.final_relu} but final_relu={final_relu} "
                             f"was asked for")
        return weights
    # FAD's convention is the output without the final ReLU, whatever the weights record as their default.
    return load_pretrained(weights, final_relu=bool(final_relu), batch_size=batch_size)


def _check_specs(sets: list[EmbeddingSet], embedder, final_relu) -> None:
    known = [(s.spec, f"{s.role} ({s.spec_from})") for s in sets if s.spec is not None and s.kind != "audio"]
    if embedder is not None:
        known.insert(0, (embedder.spec, "the weights given with --weights"))
    for sp, where in known:
        if sp.postprocess:
            raise SourceError(sources.quantised(where, sp, sp.postprocess))
        if final_relu is not None and sp.final_relu != bool(final_relu):
            raise spec_lib.SpecMismatch(f"{where}: made with final_relu={sp.final_relu}, but "
                                        f"final_relu={bool(final_relu)} was asked for")
    for sp, where in known[1:]:
        try:
            spec_lib.require_compatible(known[0][0], sp, expected_from=known[0][1], found_from=where)
        except spec_lib.SpecMismatch as e:
            if sp.final_relu == known[0][0].final_relu:
                raise
            fix = (f"set final_relu = {str(sp.final_relu).lower()} in a --config file to embed the audio the way "
                   f"{where} was made" if embedder is not None else
                   "re-embed one of them with the other's final_relu setting")
            raise spec_lib.SpecMismatch(f"{e}; {fix}") from None


def _bar(total, desc, enabled, **kwargs):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled or None, file=sys.stderr, dynamic_ncols=True, **kwargs)
