"""REF / GEN inputs of `fad`: what a path is, and the embeddings or statistics it yields, with their spec.

Audio (a folder searched recursively, a file, or a list file: one path per line, relative to the list's folder,
'#' comments) is embedded through the one audio -> embedding path (`Embedder.iter_files`); an `extract` store
(OUT or OUT/<split>), an `embed` output (OUT.npz + its sidecar) or saved statistics (found by their content)
carry the EmbeddingSpec they were made with; mixing specs is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from vggish_jax import spec as spec_lib
from vggish_jax.audio.files import AUDIO_EXTENSIONS, scan_folder
from vggish_jax.pipeline import store, stored
from vggish_jax.fad import frechet

LIST_EXTENSIONS = (".txt", ".lst", ".list", ".csv", ".tsv")


class SourceError(ValueError):
    """A REF/GEN argument is not something `fad` can read; the message names it and what would work."""


@dataclasses.dataclass
class EmbeddingSet:
    role: str  # "REF" or "GEN"
    source: str  # the argument as given
    kind: str  # "audio", "extract", "embed", "stats"
    files: dict[str, np.ndarray] | None = None  # per file [n, d] float32 (None for statistics)
    stats: frechet.Stats | None = None
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # file -> one-line reason
    spec: spec_lib.EmbeddingSpec | None = None
    spec_from: str = ""
    audio_paths: list[str] = dataclasses.field(default_factory=list)
    short: int = 0  # audio files skipped as shorter than one example (pad = false)

    def get_stats(self) -> frechet.Stats:
        if self.stats is None:
            if not self.files:
                short = (f", {self.short} of them shorter than one 0.975-s frame" if self.short else "")
                pad = (", or set pad = true in a --config file to zero-pad each short file to one frame (then at "
                       "least 2 such files)" if self.short else "")
                raise SourceError(f"{self.role} {self.source}: no usable files ({len(self.skipped)} skipped{short}); "
                                  f"FAD needs at least 2 frames (about 2 s of audio) per set: give more or longer "
                                  f"audio{pad}")
            try:
                self.stats = frechet.from_frames(self.files.values(), self.spec,
                                                 {"source": os.path.abspath(self.source), "kind": self.kind})
            except frechet.StatsError as e:
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
        return "stats" if frechet.is_stats_file(source) else "embed"
    ext = os.path.splitext(source)[1].lower()
    if ext in AUDIO_EXTENSIONS or ext in LIST_EXTENSIONS:
        return "audio"
    raise SourceError(f"{source}: not an audio file ({', '.join(AUDIO_EXTENSIONS)}), a list of them "
                      f"({', '.join(LIST_EXTENSIONS)}), a folder, or an .npz from `embed` / fad statistics")


def audio_inputs(source: str) -> tuple[list[str], dict[str, str]]:
    """(the audio files a folder / list file / single file stands for, in a stable (sorted or listed) order,
    {unreadable subfolder: one-line reason})."""
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


def open_set(role: str, source: str, kind: str | None = None) -> EmbeddingSet:
    """The EmbeddingSet of a REF/GEN argument: audio paths (compute embeds them), or stored embeddings or
    statistics, read here (no model needed)."""
    kind = kind or kind_of(source)
    if kind == "audio":
        paths, unreadable = audio_inputs(source)
        return EmbeddingSet(role, source, kind, audio_paths=paths, skipped=dict(unreadable))
    if kind == "stats":
        st = frechet.load(source)
        if st.spec is None:
            raise spec_lib.SpecMismatch(f"{source}: records no embedding spec; recreate it with this version")
        return EmbeddingSet(role, source, kind, stats=st, spec=st.spec, spec_from=source)
    root, splits = _extract_root(source) if kind == "extract" else (source, None)
    got = stored.read(root, splits)  # the one reader of stored embeddings
    spec = got.spec
    if spec.weights_sha256 is None:  # FAD statistics must name their weights: refuse, saying to recreate it
        spec = spec_lib.read(got.meta, got.spec_from)
    where = got.spec_from if kind == "extract" else source
    files = {}
    for key, e in got.embeddings.items():
        if e.values.dtype == np.uint8:
            raise SourceError(quantised(where, spec))
        if e.values.ndim != 2:
            raise SourceError(f"{where}: expected [frames, dim] embeddings, got shape {e.values.shape}")
        files[key] = np.asarray(e.values, np.float32)
    return EmbeddingSet(role, source, kind, files=files, skipped=got.skipped, spec=spec, spec_from=got.spec_from)


def quantised(where: str, spec: spec_lib.EmbeddingSpec | None, postprocess: str = "uint8") -> str:
    """Why FAD refuses PCA-quantised embeddings, with the fix that works for where they came from."""
    from vggish_jax.datasets.audioset import RELEASE_SPEC

    if spec is not None and spec.model == RELEASE_SPEC.model:
        return (f"{where}: holds AudioSet's released embeddings, uint8 PCA codes from Google's pipeline; FAD needs "
                f"the float 128-d output, which the release does not include and which cannot be recovered from "
                f"the codes; compute FAD from the audio itself (REF and GEN as audio files or folders, with --weights)")
    return (f"{where}: holds PCA-quantised embeddings ({postprocess}); FAD needs the raw 128-d float output (as "
            f"google-research, fadtk and frechet-audio-distance use); re-embed the audio without --postprocess")


def _extract_root(folder: str) -> tuple[str, list[str] | None] | None:
    """(extract OUT root, [split] or None for all) when `folder` is an extract output or one of its splits."""
    if os.path.isfile(os.path.join(folder, store.INFO)):
        return folder, None
    parent = os.path.dirname(os.path.abspath(folder))
    if os.path.isfile(os.path.join(parent, store.INFO)):
        return parent, [os.path.basename(os.path.normpath(folder))]
    return None
