"""REF / GEN inputs of `fad`: what a path is, and the embeddings or statistics it yields, with their spec.

A source is one of
  * audio: a folder (searched recursively, sorted), one audio file, or a text file listing audio files (one
    per line, relative to the list's folder; '#' comments), embedded through the one audio -> embedding
    path (`Embedder.embed_files`);
  * an `extract` store: its OUT folder (all splits) or one OUT/<split> folder;
  * an `embed` output: OUT/embeddings.npz with its embeddings.json sidecar;
  * saved statistics (`ref_stats` / `save_gen_stats`, vggish_jax.fad.stats), found by their content.
Stores and statistics carry the EmbeddingSpec they were made with; mixing specs is refused.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
from typing import Callable

import numpy as np

from vggish_jax import spec as spec_lib
from vggish_jax.audio import decode as audio_decode, files as audio_files
from vggish_jax.audio.files import AUDIO_EXTENSIONS, scan_folder
from vggish_jax.pipeline import store, stored
from vggish_jax.fad import stats as stats_lib

LIST_EXTENSIONS = (".txt", ".lst", ".list", ".csv", ".tsv")


class SourceError(ValueError):
    """A REF/GEN argument is not something `fad` can read; the message names it and what would work."""


@dataclasses.dataclass
class EmbeddingSet:
    role: str  # "REF" or "GEN"
    source: str  # the argument as given
    kind: str  # "audio", "extract", "embed", "stats"
    files: dict[str, np.ndarray] | None = None  # per file [n, d] float32 (None for statistics)
    stats: stats_lib.Stats | None = None
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # file -> one-line reason
    spec: spec_lib.EmbeddingSpec | None = None
    spec_from: str = ""
    audio_paths: list[str] = dataclasses.field(default_factory=list)
    short: int = 0  # audio files skipped as shorter than one example (pad = false)

    def get_stats(self) -> stats_lib.Stats:
        if self.stats is None:
            if not self.files:
                short = (f", {self.short} of them shorter than one 0.975-s frame" if self.short else "")
                pad = (", or set pad = true in a --config file to zero-pad each short file to one frame (then at "
                       "least 2 such files)" if self.short else "")
                raise SourceError(f"{self.role} {self.source}: no usable files ({len(self.skipped)} skipped{short}); "
                                  f"FAD needs at least 2 frames (about 2 s of audio) per set: give more or longer "
                                  f"audio{pad}")
            try:
                self.stats = stats_lib.from_frames(self.files.values(), self.spec,
                                                   {"source": os.path.abspath(self.source), "kind": self.kind})
            except stats_lib.StatsError as e:
                names = ", ".join(list(self.files)[:3]) + (", ..." if len(self.files) > 3 else "")
                raise SourceError(f"{self.role} {self.source} ({names}): {e}") from None
        return self.stats

    def summary(self) -> dict:
        s = self.get_stats()
        return {"source": self.source, "kind": self.kind, "files": s.num_files, "frames": s.count,
                "skipped": dict(self.skipped), "embedding_spec_from": self.spec_from}


def kind_of(source: str) -> str:
    """'audio', 'extract', 'embed' or 'stats' for a REF/GEN argument (raises SourceError/FileNotFoundError)."""
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such file or folder; give a folder of audio, an audio file, a list "
                                f"file, an extract/embed output or a statistics .npz")
    if os.path.isdir(source):
        return "extract" if _extract_root(source) is not None else "audio"
    if source.endswith(".npz"):
        return "stats" if stats_lib.is_stats_file(source) else "embed"
    ext = os.path.splitext(source)[1].lower()
    if ext in AUDIO_EXTENSIONS or ext in LIST_EXTENSIONS:
        return "audio"
    raise SourceError(f"{source}: not an audio file ({', '.join(AUDIO_EXTENSIONS)}), a list of them "
                      f"({', '.join(LIST_EXTENSIONS)}), a folder, or an .npz from `embed` / fad statistics")


def audio_paths(source: str) -> list[str]:
    """The audio files a folder / list file / single file stands for, in a stable (sorted or listed) order."""
    return audio_inputs(source)[0]


def audio_inputs(source: str) -> tuple[list[str], dict[str, str]]:
    """(audio_paths, {unreadable subfolder: one-line reason}) of a REF/GEN argument."""
    if os.path.isdir(source):
        found, bad = scan_folder(source)
        if not found:
            raise SourceError(f"{source}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder"
                              + (f" that could be read ({len(bad)} subfolders unreadable)" if bad else ""))
        return found, {s.path: s.reason for s in bad}
    if os.path.splitext(source)[1].lower() in LIST_EXTENSIONS:
        base = os.path.dirname(os.path.abspath(source))
        with open(source) as f:
            lines = [l.strip() for l in f]
        paths = [l if os.path.isabs(l) else os.path.join(base, l) for l in lines if l and not l.startswith("#")]
        if not paths:
            raise SourceError(f"{source}: the list names no files (one audio path per line)")
        return paths, {}
    return [source], {}


def digest(paths: list[str]) -> str:
    """Identity of a set of audio files: paths, sizes and modification times (changes when a file is rewritten)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(json.dumps([os.path.abspath(p), st.st_size, st.st_mtime_ns]).encode())
        except OSError:
            h.update(json.dumps([os.path.abspath(p), None]).encode())
    return h.hexdigest()


def load_stored(role: str, source: str, kind: str) -> EmbeddingSet:
    """An EmbeddingSet from an extract store, an embed .npz or a statistics file (no model needed)."""
    if kind == "stats":
        st = stats_lib.load(source)
        if st.spec is None:
            raise spec_lib.SpecMismatch(f"{source}: records no embedding spec; recreate it with this version")
        return EmbeddingSet(role, source, kind, stats=st, spec=st.spec, spec_from=source)
    if kind == "extract":
        return _load_extract(role, source)
    if kind == "embed":
        return _load_embed(role, source)
    raise SourceError(f"{source}: {kind} is not a stored source")


def embed_audio(sets: list[EmbeddingSet], embedder, *, pad: bool, workers: int,
                progress: Callable[[int], None] | None = None) -> None:
    """Embed the audio of all sets in one pass (in place): files, skipped (unreadable, too short, silent), spec."""
    paths = list(dict.fromkeys(p for s in sets for p in s.audio_paths))  # one call: full batches across sets
    silent = silent_files(paths, workers)
    if progress is not None and silent:
        progress(len(silent))
    results, errors = embedder.embed_files([p for p in paths if p not in silent], pad=pad, workers=workers,
                                           processes=True, progress=progress)
    for s in sets:
        s.files = {}
        for path in s.audio_paths:
            if path in silent:
                s.skipped[path] = silent[path]
            elif path in errors or path not in results:
                reason = errors.get(path, f"{path}: not embedded")
                if not pad and TOO_SHORT in reason:  # the embedder's fix names embed's flag; fad's is a setting
                    s.short += 1
                    reason = (f"{reason.split(';')[0]}; not counted: set pad = true in a --config file to "
                              f"zero-pad it to one frame (FAD needs at least 2 frames, about 2 s of audio, per set)")
                s.skipped[path] = reason
            else:
                s.files[path] = results[path]
        s.spec, s.spec_from = embedder.spec, "the weights given with --weights"


TOO_SHORT = "shorter than one VGGish example"  # in the embedder's reason for a file under 0.975 s


def quantised(where: str, spec: spec_lib.EmbeddingSpec | None, postprocess: str = "uint8") -> str:
    """Why FAD refuses PCA-quantised embeddings, with the fix that works for where they came from."""
    from vggish_jax.datasets.audioset import RELEASE_SPEC

    if spec is not None and spec.model == RELEASE_SPEC.model:
        return (f"{where}: holds AudioSet's released embeddings, uint8 PCA codes from Google's pipeline; FAD needs "
                f"the float 128-d output, which the release does not include and which cannot be recovered from "
                f"the codes; compute FAD from the audio itself (REF and GEN as audio files or folders, with --weights)")
    return (f"{where}: holds PCA-quantised embeddings ({postprocess}); FAD needs the raw 128-d float output (as "
            f"google-research, fadtk and frechet-audio-distance use); re-embed the audio without --postprocess")


def silent_files(paths: list[str], workers: int = 1) -> dict[str, str]:
    """{path: one-line reason} for the files `audio.is_silent` calls silent; reads each only up to its first
    audible second. Files that cannot be decoded are left to the embedder, which reports them."""
    def check(path: str) -> str | None:
        try:
            audio_decode.require_audible(path, block_seconds=1.0, consequence="not counted in the statistics")
        except audio_files.SilentAudioError as e:
            return str(e)
        except audio_files.AudioError:  # the embedder reports it
            pass
        return None

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(check, paths))
    return {p: r for p, r in zip(paths, reasons) if r is not None}


def _extract_root(folder: str) -> tuple[str, list[str] | None] | None:
    """(extract OUT root, [split] or None for all) when `folder` is an extract output or one of its splits."""
    if os.path.isfile(os.path.join(folder, store.INFO)):
        return folder, None
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.isfile(os.path.join(parent, store.INFO)):
        return parent, [os.path.basename(os.path.normpath(folder))]
    return None


def _load_extract(role: str, source: str) -> EmbeddingSet:
    root, splits = _extract_root(source)
    got = stored.read(root, splits)  # the one reader of stored embeddings
    spec = _extract_spec(got.meta, got.spec_from)
    files = {k: _float_frames(e.values, got.spec_from, spec) for k, e in got.embeddings.items()}
    return EmbeddingSet(role, source, "extract", files=files, skipped=got.skipped, spec=spec, spec_from=got.spec_from)


def _extract_spec(info: dict, info_path: str) -> spec_lib.EmbeddingSpec:
    spec = store.spec_of(info, info_path)
    if spec.weights_sha256 is None:  # FAD statistics must name their weights: refuse, saying to recreate it
        return spec_lib.read(info, info_path)
    return spec


def _load_embed(role: str, source: str) -> EmbeddingSet:
    got = stored.read_npz(source)  # the one reader of stored embeddings
    files = {k: _float_frames(e.values, source, got.spec) for k, e in got.embeddings.items()}
    return EmbeddingSet(role, source, "embed", files=files, skipped=got.skipped, spec=got.spec, spec_from=got.spec_from)


def _float_frames(e: np.ndarray, where: str, spec: spec_lib.EmbeddingSpec | None = None) -> np.ndarray:
    if e.dtype == np.uint8:
        raise SourceError(quantised(where, spec))
    if e.ndim != 2:
        raise SourceError(f"{where}: expected [frames, dim] embeddings, got shape {e.shape}")
    return np.asarray(e, np.float32)
