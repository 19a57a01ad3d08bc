"""perch-hoplite integration: VGGish as a hoplite EmbeddingModel, `embed --format hoplite`'s database, search
(the layout and usage: docs/integrations.md). Rows are stored divided by their norms because hoplite's default
index is inner product on float16, so scores are cosine similarities; metadata key "vggish_jax" records the
EmbeddingSpec, so `search` refuses a query model that made its embeddings differently.

Needs perch-hoplite 1.0.2 without its [jax] extra (which pins jax < 0.7): pip install 'vggish-jax[hoplite]',
in a venv of its own (it caps huggingface-hub below 2).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

try:
    from ml_collections import config_dict
    from perch_hoplite.db import sqlite_usearch_impl
    from perch_hoplite.zoo import zoo_interface
except ImportError as e:
    raise ImportError(f"vggish_jax.hoplite needs perch-hoplite ({e}); pip install 'vggish-jax[hoplite]' "
                      f"(in a venv of its own: it caps huggingface-hub below 2)") from e

from vggish_jax import audio, spec as spec_lib
from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.modeling import EMBEDDING_SIZE, VGGish
from vggish_jax.pipeline import stored
from vggish_jax.pipeline.embeddings import embed

METADATA_KEY = "vggish_jax"
FILES = (sqlite_usearch_impl.HOPLITE_FILENAME, sqlite_usearch_impl.UINDEX_FILENAME)


@dataclasses.dataclass
class VGGishModel(zoo_interface.EmbeddingModel):
    """A hoplite EmbeddingModel over `vggish_jax.embed`: audio at `sample_rate` -> embeddings [frames, 1, 128], frame
    i at i * hop_size_s for window_size_s; `model`: a VGGish module or weights folder; `postprocess`: PCA + uint8."""
    sample_rate: int = 16000
    model: Any = None
    postprocess: bool = False
    window_size_s: float = frontend.example_seconds()
    hop_size_s: float = frontend.example_hop_seconds()

    def __post_init__(self):
        if isinstance(self.model, (str, os.PathLike)):
            self.model = VGGish.from_pretrained(self.model)
        if not isinstance(self.model, VGGish):
            raise TypeError(f"model must be a VGGish module or a weights folder, got {type(self.model).__name__}")

    @classmethod
    def from_config(cls, config) -> "VGGishModel":
        """From a config with `weights` (a folder) and optionally sample_rate and postprocess."""
        return cls(model=config.weights, sample_rate=int(config.get("sample_rate", 16000)),
                   postprocess=bool(config.get("postprocess", False)))

    def embed(self, audio_array: np.ndarray) -> zoo_interface.InferenceOutputs:
        values = embed(audio_array, self.sample_rate, self.model, postprocess=self.postprocess).values
        return zoo_interface.InferenceOutputs(embeddings=values[:, None, :], batched=False)

    def batch_embed(self, audio_batch: np.ndarray) -> zoo_interface.InferenceOutputs:
        """[B, T] (rows of one length, so of one frame count) -> embeddings [B, frames, 1, 128]."""
        rows = [self.embed(a).embeddings for a in np.asarray(audio_batch)]
        return zoo_interface.InferenceOutputs(embeddings=np.stack(rows), batched=True)


def unit_rows(values: np.ndarray) -> np.ndarray:
    """float32 rows divided by their norms (all-zero rows stay zero)."""
    x = np.asarray(values, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def write_database(npz: str, db_dir: str) -> tuple[int, int]:
    """(windows, recordings) written to `db_dir` from `vggish-jax embed`'s OUT.npz + OUT.json: the whole
    database rebuilt in a temporary folder, then moved in (a previous one is replaced)."""
    got = stored.read_npz(npz)  # the one reader of stored embeddings
    meta, window_s = got.meta, float(got.meta["window_s"])
    os.makedirs(db_dir, exist_ok=True)
    new = tempfile.mkdtemp(dir=db_dir, prefix=".hoplite-new-")
    windows = 0
    try:
        db = sqlite_usearch_impl.SQLiteUSearchDB.create(
            db_path=new, usearch_cfg=sqlite_usearch_impl.get_default_usearch_config(EMBEDDING_SIZE))
        db.insert_metadata(METADATA_KEY, config_dict.ConfigDict(
            {"spec": json.dumps(meta[spec_lib.KEY], sort_keys=True), "window_s": window_s}))
        deployment = db.insert_deployment(name=os.path.basename(os.path.abspath(db_dir)), project="vggish-jax")
        for key in meta["files"]:
            recording = db.insert_recording(filename=key, deployment_id=deployment)
            e = got.embeddings[key]
            for row, start in zip(unit_rows(e.values), e.start_s.tolist()):
                # "allow": each (recording, offsets) is new here, so skip hoplite's per-window lookup
                db.insert_window(recording, offsets=[start, round(start + window_s, 6)], embedding=row,
                                 handle_duplicates="allow")
                windows += 1
        db.commit()
        db.db.close()  # the last connection: SQLite folds its write-ahead log into hoplite.sqlite
        # The old database's log and shared-memory files would be read as the new one's: remove them first.
        for stale in (FILES[0] + "-wal", FILES[0] + "-shm"):
            if os.path.exists(os.path.join(db_dir, stale)):
                os.remove(os.path.join(db_dir, stale))
        for name in FILES:
            os.replace(os.path.join(new, name), os.path.join(db_dir, name))
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return windows, len(meta["files"])


def open_database(db_dir: str) -> tuple[Any, spec_lib.EmbeddingSpec]:
    """(the read-only SQLiteUSearchDB in `db_dir`, the EmbeddingSpec of its embeddings); one line if it is not
    a database written by `vggish-jax embed --format hoplite`. Close it with `db.db.close()`."""
    missing = [n for n in FILES if not os.path.isfile(os.path.join(db_dir, n))]
    if missing:
        raise FileNotFoundError(f"{db_dir}: no hoplite database here ({', '.join(missing)} missing); write one with "
                                f"`vggish-jax embed FILES --weights W --out {db_dir} --format hoplite`")
    db = sqlite_usearch_impl.SQLiteUSearchDB.create(db_path=db_dir, readonly=True)
    try:
        recorded = db.get_metadata(METADATA_KEY)
    except KeyError:
        db.db.close()
        raise spec_lib.SpecMismatch(f"{db_dir}: a hoplite database not written by vggish-jax (no {METADATA_KEY!r} "
                                    f"metadata), so how its embeddings were made is unknown") from None
    return db, spec_lib.EmbeddingSpec.from_dict(json.loads(recorded.spec))


def search(db_dir: str, query_wav: str, model, top: int = 5) -> list[tuple[str, float, float, float]]:
    """The `top` windows of `db_dir` nearest the audio file `query_wav` (the mean of its windows' unit embeddings,
    made by `model`, a VGGish module or a weights folder, as the database's were), best first, as (file, start_s,
    end_s, cosine similarity); SpecMismatch names how the query model differs."""
    db, stored = open_database(db_dir)
    try:
        model = VGGish.from_pretrained(model) if isinstance(model, (str, os.PathLike)) else model
        waveform, rate = audio.load(query_wav)
        e = embed(waveform, rate, model, postprocess=stored.postprocess is not None)
        spec_lib.require_compatible(stored, e.spec, expected_from=db_dir,
                                    found_from=f"the query model ({query_wav})")
        query = unit_rows(unit_rows(e.values).mean(0))
        found = []
        for r in db.search(query, search_list_size=top):  # iterating sorts best first (the raw list is a heap)
            window = db.get_window(r.window_id)
            found.append((db.get_recording(window.recording_id).filename, float(window.offsets[0]),
                          float(window.offsets[1]), float(r.sort_score)))
        return found
    finally:
        db.db.close()
