"""The `mfcc` and `musicnn` feature sets computed from a store's audio files, cached beside the comparison.

Each file is decoded once (in worker processes, which never import JAX) to 16 kHz mono: `mfcc` is mfcc_stats
of the NumPy log-mel examples (short clips zero-padded to one), `musicnn` the mean and std over 3-s patches of
MusiCNN's 200-d penultimate features (short clips repeated). Cached in `<cache_dir>/<feature set>.npz` by path
and size:mtime, rewritten every CHECKPOINT_CLIPS files; an undecodable file comes back as a Skip.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Callable, Mapping

import numpy as np

from vggish_jax import atomic, audio, skips
from vggish_jax.classify import features
from vggish_jax.models.musicnn import frontend as mf
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline.sources import file_stamp

SETS = ("mfcc", "musicnn")
# Stored in each cache file: a vector made by another definition is recomputed, never reused.
DEFINITIONS = {"mfcc": "mfcc_stats(20) of vggish numpy log-mel examples, 16 kHz, pad to one example; v1",
               "musicnn": "mean+std of MSD_musicnn penultimate over 187-frame patches, repeat-pad; v1"}
CHECKPOINT_CLIPS = 256  # files decoded between cache writes
FLUSH_PATCHES = 64  # MusiCNN patches gathered before a tagger call (full batches, fewer calls)


class NoAudio(ValueError):
    """The store's clips cannot be traced back to audio files; the message (one line) says why and what to do."""


def store_files(info: Mapping, keys: Mapping[str, np.ndarray | None], *, data_dir: str | None = None,
                manual_dir: str | None = None) -> dict[str, list[str]]:
    """{split: [audio file of each clip]} of a store, or NoAudio. Keys are absolute paths, or `fma:<track_id>`
    found under fma_<subset> in `manual_dir` (or extracted in `data_dir`)."""
    if any(k is None for k in keys.values()):
        raise NoAudio("the store records no clip keys (written before keys existed); re-extract it with this "
                      "version to compute them from the audio")
    source = info.get("source") or (info.get("source_identity") or {}).get("source")
    dataset = str(info.get("dataset") or "")
    if source == "audio" and dataset.startswith("fma/"):
        return _fma_files(dataset, keys, data_dir, manual_dir)
    sample = next((str(k) for ks in keys.values() for k in ks), None)
    if source == "tfds" or (source is None and dataset.startswith("fma/")):
        raise NoAudio(f"an FMA TFDS store keeps no file paths (clip keys like {sample!r}): set data_dir = \"DIR\" "
                      f"in compare's --config file, the TFDS data dir it was extracted from (musicnn needs a "
                      f"*_waveform build), or extract it with from_audio = true in extract's --config file")
    if not all(os.path.isabs(str(k)) for ks in keys.values() for k in ks):
        raise NoAudio(f"its clips are not audio files (keys like {sample!r}, source {source or 'unknown'}); "
                      f"mfcc and musicnn need a store extracted from audio (a folder, a labels CSV or from_audio)")
    return {s: [str(k) for k in ks] for s, ks in keys.items()}


def _fma_files(dataset, keys, data_dir, manual_dir) -> dict[str, list[str]]:
    from vggish_jax.datasets import fma_metadata as meta

    subset = dataset.split("/", 1)[1].split("_")[0]
    roots = [d for d in (manual_dir, data_dir and os.path.join(data_dir, "downloads", "fma_extracted")) if d]
    root = next((os.path.join(r, f"fma_{subset}") for r in roots if os.path.isdir(os.path.join(r, f"fma_{subset}"))),
                None)
    if root is None:
        where = " or ".join(roots) if roots else "(neither manual_dir nor data_dir given)"
        raise NoAudio(f"the store was extracted from FMA's mp3s, and no fma_{subset} folder is in {where}: set "
                      f"manual_dir = \"DIR\" in compare's --config file, the folder holding the extracted "
                      f"fma_{subset}")
    return {s: [meta.audio_path(root, int(str(k).split(":", 1)[1])) for k in ks] for s, ks in keys.items()}


# ---- one file (runs in a worker process) ----

def decode(path: str, sets: tuple[str, ...] = SETS) -> dict | skips.Skip:
    """{'mfcc': [140], 'musicnn': [n, 187, 96] patches} of one file (one decode), or the Skip saying why not."""
    try:
        x, _ = audio.load(path, frontend.DEFAULT.sample_rate)
        out = {}
        if "mfcc" in sets:
            mel = frontend.waveform_to_examples(frontend.fit_to_examples(x, pad=True), frontend.DEFAULT.sample_rate,
                                                name=path)
            out["mfcc"] = features.mfcc_stats(mel)
        if "musicnn" in sets:
            out["musicnn"] = musicnn_patches(x)
        return out
    except audio.AudioError as e:
        if not os.path.lexists(path):
            return skips.Skip("missing", path, f"{path}: no such file any more (the store was extracted from it); "
                                               f"restore it, or re-extract the store without it")
        return e.skip(path)
    except Exception as e:  # one odd file must not take the pool down: it is reported and dropped
        return skips.Skip("undecodable", path, f"{path}: cannot decode ({type(e).__name__}: {e}); re-encode or "
                                               f"drop the file")


def musicnn_patches(x: np.ndarray) -> np.ndarray:
    """16 kHz mono float -> [n >= 1, 187, 96] MusiCNN log-mel patches; a clip shorter than one patch is
    repeated to fill it ("repeat-pad", as musicnn's training did)."""
    x = np.asarray(x, np.float32)
    if x.shape[0] < mf.min_samples():
        x = x[np.arange(mf.min_samples()) % max(1, x.shape[0])]
    return mf.patches(mf.log_mel(x))


def musicnn_features(waveforms: list[np.ndarray], tagger=None) -> np.ndarray:
    """[clips, 400]: mean and std over patches of MusiCNN's penultimate features of 16 kHz waveforms (float,
    or the int16 of an FMA *_waveform build)."""
    from vggish_jax.datasets import decode as tfds_decode

    as_float = [tfds_decode.from_int16(w) if np.issubdtype(w.dtype, np.integer) else w
                for w in map(np.asarray, waveforms)]
    return features.mean_std([_penultimate([musicnn_patches(x)], tagger)[0] for x in as_float])


def _penultimate(patch_sets: list[np.ndarray], tagger=None) -> list[np.ndarray]:
    """MusiCNN's [n_i, 200] penultimate features of several clips' patches, in one batched run."""
    from vggish_jax.models.musicnn import tagger as musicnn

    tagger = tagger or musicnn.Tagger()
    feats = tagger.run(np.concatenate(patch_sets))["penultimate"]
    return np.split(feats, np.cumsum([len(p) for p in patch_sets])[:-1])


# ---- the cache ----

@dataclasses.dataclass
class Entry:
    stamp: str
    vector: np.ndarray | None = None
    skip: skips.Skip | None = None


def read_cache(cache_dir: str, name: str, log: Callable[[str], None]) -> dict[str, Entry]:
    """{path: Entry} of a feature set's cache; empty when absent, damaged (said in one line) or of another
    definition."""
    path = os.path.join(cache_dir, f"{name}.npz")
    if not os.path.exists(path):
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["definition"]) != DEFINITIONS[name]:
                log(f"{path}: made by another definition of {name}; recomputing it")
                return {}
            out = {str(p): Entry(str(s), v) for p, s, v in zip(z["paths"], z["stamps"], z["vectors"])}
            for p, s, j in zip(z["skip_paths"], z["skip_stamps"], z["skips"]):
                out[str(p)] = Entry(str(s), skip=skips.Skip.from_dict(json.loads(str(j))))
            return out
    except Exception as e:  # a cut-off or foreign file: the cache is only a shortcut, so recompute
        log(f"{path}: unreadable feature cache ({type(e).__name__}); recomputing it")
        return {}


def write_cache(cache_dir: str, name: str, entries: Mapping[str, Entry], dim: int) -> None:
    done = [(p, e) for p, e in entries.items() if e.vector is not None]
    bad = [(p, e) for p, e in entries.items() if e.skip is not None and e.stamp]  # a vanished file: retry
    strs = lambda xs: np.asarray(list(xs) or np.zeros(0, str), dtype=str)  # noqa: E731
    atomic.savez(os.path.join(cache_dir, f"{name}.npz"), definition=np.asarray(DEFINITIONS[name]),
                 paths=strs(p for p, _ in done), stamps=strs(e.stamp for _, e in done),
                 vectors=np.stack([e.vector for _, e in done]).astype(np.float32) if done
                 else np.zeros((0, dim), np.float32),
                 skip_paths=strs(p for p, _ in bad), skip_stamps=strs(e.stamp for _, e in bad),
                 skips=strs(json.dumps(e.skip.to_dict()) for _, e in bad))


# ---- a store's worth ----

DIMS = {"mfcc": 7 * 20, "musicnn": 2 * 200}


@dataclasses.dataclass
class Result:
    x: dict[str, dict[str, np.ndarray]]  # feature set -> split -> [kept clips, D]
    keep: dict[str, np.ndarray]  # split -> [clips] bool: the clips every set has a vector for
    skipped: list[skips.Skip]  # one per file that was dropped
    decoded: int  # files decoded in this run (the rest came from the cache)
    cached: int


def compute(files: Mapping[str, list[str]], sets=SETS, *, cache_dir: str, workers: int = 0,
            log: Callable[[str], None] = print, tagger=None) -> Result:
    """The vectors of `sets` for {split: [file per clip]}: from the cache where the file is unchanged, else
    decoded (each file once, in `workers` processes; 0 or 1: in this one)."""
    from vggish_jax.datasets import decode as pool_lib

    sets = tuple(s for s in SETS if s in sets)
    paths = list(dict.fromkeys(p for ps in files.values() for p in ps))
    stamps = {p: file_stamp(p) for p in paths}  # before decoding: a file changed meanwhile is new next time
    cache = {s: read_cache(cache_dir, s, log) for s in sets}

    todo = [p for p in paths if not all(stamps[p] and getattr(cache[s].get(p), "stamp", None) == stamps[p]
                                        for s in sets)]
    if todo:
        log(f"{', '.join(sets)}: decoding {len(todo)} audio files ({len(paths) - len(todo)} cached in {cache_dir})")
    workers = min(workers, len(todo))
    pool = pool_lib.process_pool(workers) if workers > 1 else None
    pending: list[tuple[str, dict]] = []

    def flush() -> None:
        if pending and "musicnn" in sets:
            feats = _penultimate([r["musicnn"] for _, r in pending], tagger)
            for (p, _), f in zip(pending, feats):
                cache["musicnn"][p] = Entry(stamps[p], features.mean_std([f])[0])
        pending.clear()

    def save(run_tagger: bool = True) -> None:
        if run_tagger:
            flush()
        for s in sets:
            write_cache(cache_dir, s, {p: cache[s][p] for p in paths if p in cache[s]}, DIMS[s])

    try:
        fn = functools.partial(decode, sets=sets)
        for i, (p, r) in enumerate(zip(todo, pool_lib.ordered_map(fn, todo, pool, 2 * max(1, workers))), 1):
            if isinstance(r, skips.Skip):
                for s in sets:
                    cache[s][p] = Entry(stamps[p], skip=r)
            else:
                if "mfcc" in sets:
                    cache["mfcc"][p] = Entry(stamps[p], r["mfcc"])
                pending.append((p, r))
                if "musicnn" not in sets or sum(len(x["musicnn"]) for _, x in pending) >= FLUSH_PATCHES:
                    flush()
            if i % CHECKPOINT_CLIPS == 0:
                save()
                log(f"{', '.join(sets)}: {i} of {len(todo)} files done (saved in {cache_dir})")
        if todo:
            save()
    except BaseException:
        if todo:  # keep what is finished (a crashed worker, Ctrl-C), then fail as asked
            save(run_tagger=False)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # a file's Skip: the first set's that has one (reversed: a later entry of the same path overwrites)
    skipped = {p: e.skip for p in paths for e in (cache[s][p] for s in reversed(sets)) if e.skip is not None}
    keep = {split: np.array([p not in skipped for p in ps], bool) for split, ps in files.items()}
    x = {s: {split: np.array([cache[s][p].vector for p in ps if p not in skipped], np.float32).reshape(-1, DIMS[s])
             for split, ps in files.items()} for s in sets}
    return Result(x, keep, list(skipped.values()), len(todo), len(paths) - len(todo))
