"""`evaluate(REF, GEN)`: the FAD of GEN against REF, with per-file scores and FAD-infinity, as one JSON-ready dict.

Conventions (docs/fad.md, with what google-research, frechet-audio-distance and fadtk do, read from their
source): the raw 128-d output without the final ReLU, as all three (so it overrides the final-ReLU default
recorded for torchvggish conversions unless `final_relu` is given); all frames, unbiased covariance, float64.
Unreadable, silent (`audio.is_silent`) and too-short files are skipped and reported: an empty or silent
generation is a failure to report, not a sample; `pad=True` zero-pads short files as fadtk, opt-in since it
adds near-silent frames.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

import numpy as np

from vggish_jax import atomic, skips, spec as spec_lib
from vggish_jax.audio import decode as audio_decode
from vggish_jax.fad import frechet, sources
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
    sets = [ref_set or sources.open_set("REF", ref), sources.open_set("GEN", gen)]
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
        ref_st.meta.update(ref_digest=sources.digest(ref_set.audio_paths or [ref]), pad=pad, skipped=ref_set.skipped,
                           ref_files=len(ref_set.audio_paths or ref_set.files))
        frechet.save(ref_stats, ref_st)
        log(f"fad: saved REF statistics to {ref_stats}")
    if save_gen_stats:
        frechet.save(save_gen_stats, gen_st)
    fd = frechet.frechet_distance(ref_st.mean, ref_st.cov, gen_st.mean, gen_st.cov, method=method)
    if fd.clipped:
        log(f"fad: the distance came out {-fd.clipped:.3g}, below 0 by rounding; reported as 0")
    spec = ref_set.spec or gen_set.spec
    result = {"fad": fd.distance, "numerics": fd.to_dict(), "ref": ref_set.summary(), "gen": gen_set.summary(),
              "embedding_spec": spec.to_dict() if spec else None, "convention": convention(spec, pad),
              "per_file": None, "fad_inf": None, "warnings": warnings}
    if gen_set.files is None:
        result["notes"] = "GEN is statistics: per-file scores and FAD-inf need GEN's frames"
        return result
    if per_file:
        result["per_file"] = frechet.per_file_scores(ref_st, gen_set.files)
    if fad_inf and gen_st.count < 4:
        result["notes"] = f"FAD-inf needs at least 4 GEN frames, GEN has {gen_st.count}"
    elif fad_inf:
        with _bar(bootstrap + 1, "fad: FAD-inf", progress) as bar:
            inf = frechet.fad_inf(ref_st, list(gen_set.files.values()), steps=steps, min_n=min_n,
                                  bootstrap=bootstrap, ci_level=ci_level, seed=seed, replace=replace,
                                  progress=bar.update)
        result["fad_inf"] = _checked_fad_inf(inf, gen_st.count, log)
    return result


def fad_inf_png(path: str | os.PathLike, result: dict, title: str = "FAD vs 1/N") -> str:
    """Write the plot for an `evaluate` result's "fad_inf" entry; returns the path."""
    from matplotlib.figure import Figure  # no pyplot: no display or global backend needed

    inf = result["fad_inf"]
    ns = np.array([p["n"] for p in inf["points"]], np.float64)
    fads = np.array([p["fad"] for p in inf["points"]])
    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(1.0 / ns, fads, "o", label="FAD on N frames (subsets)")
    x = np.linspace(0.0, 1.0 / ns.min(), 50)
    ax.plot(x, inf["value"] + inf["slope"] * x, "-", label=f"fit: FAD-inf {inf['value']:.4g}, R² {inf['r2']:.3f}")
    if inf.get("ci"):
        lo, hi = inf["ci"]
        ax.errorbar([0.0], [inf["value"]], yerr=[[inf["value"] - lo], [hi - inf["value"]]], fmt="s", capsize=4,
                    label=f"{100 * inf['ci_level']:.0f}% bootstrap CI [{lo:.4g}, {hi:.4g}]")
    ax.axhline(result["fad"], color="grey", lw=0.8, ls="--", label=f"FAD on all frames {result['fad']:.4g}")
    ax.set(xlabel="1 / N (frames)", ylabel="FAD", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.replacing(path, "wb") as f:
        fig.savefig(f, format="png")
    return os.fspath(path)


def _embed_audio_sets(sets: list[EmbeddingSet], weights, final_relu, batch_size: int, pad: bool, workers: int,
                      progress: bool) -> list[dict]:
    """Embed the audio of all sets in one pass (in place: files, skipped (unreadable, too short, silent), spec),
    checking specs before and after; the Cautions raised."""
    audio_sets = [s for s in sets if s.kind == "audio"]
    embedder = None
    if audio_sets:
        from vggish_jax.pipeline.embed import Embedder, load_pretrained

        if weights is None:
            raise SourceError(f"{audio_sets[0].source} is audio, so it must be embedded: pass --weights DIR "
                              f"(converted VGGish weights, see the README section 'Weights')")
        # FAD's convention is the output without the final ReLU, whatever the weights record as their default;
        # an Embedder's final_relu is checked with the specs
        embedder = weights if isinstance(weights, Embedder) else load_pretrained(
            weights, final_relu=bool(final_relu), batch_size=batch_size)
    _check_specs(sets, embedder, final_relu)  # before any embedding: a mismatch costs nothing
    if not audio_sets:
        return []
    paths = list(dict.fromkeys(p for s in audio_sets for p in s.audio_paths))  # one call: full batches across sets
    found = {}
    with _bar(len(paths), "fad: embed", progress, unit="file") as bar, audio_decode.collect_cautions() as cautions:
        # the silence rule is applied to the samples the embedder decodes: each file is read once
        for path, value in embedder.iter_files(paths, pad=pad, workers=workers, processes=True,
                                               silent="not counted in the statistics"):
            found[path] = value
            bar.update(1)
    for s in audio_sets:
        s.files = {}
        for path in s.audio_paths:
            value = found[path]
            if not isinstance(value, skips.Skip):
                s.files[path] = value
            elif value.kind == "too_short" and not pad:  # the embedder's fix names embed's flag; fad's is a setting
                s.short += 1
                s.skipped[path] = (f"{value.reason.split(';')[0]}; not counted: set pad = true in a --config file "
                                   f"to zero-pad it to one frame (FAD needs at least 2 frames, about 2 s of audio, "
                                   f"per set)")
            else:
                s.skipped[path] = value.reason
        s.spec, s.spec_from = embedder.spec, "the weights given with --weights"
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


def _cached_ref(ref: str, path: str, pad: bool) -> EmbeddingSet:
    """Saved REF statistics, if they were made from exactly these REF files."""
    s = sources.open_set("REF", path, "stats")
    kind = sources.kind_of(ref)
    if kind == "stats":
        raise SourceError(f"REF {ref} is itself statistics; pass it as REF without ref_stats")
    if s.stats.meta.get("ref_digest") != sources.digest(sources.audio_inputs(ref)[0] if kind == "audio" else [ref]):
        raise SourceError(f"{path}: these REF statistics were made from other files than {ref} (or the files "
                          f"changed since); delete {path}, or choose another ref_stats path")
    if s.stats.meta.get("pad", False) != pad:
        raise SourceError(f"{path}: these REF statistics were made {'with' if s.stats.meta.get('pad') else 'without'} "
                          f"pad = true; set pad the same way in the --config file, or choose another ref_stats path")
    s.source, s.skipped = ref, dict(s.stats.meta.get("skipped") or {})
    return s


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
