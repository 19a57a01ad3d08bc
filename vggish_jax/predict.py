"""Genre prediction for audio files, offline, out of the box (docs/classification.md).

Default: the shipped MusiCNN; its 50 MSD tag probabilities, averaged over 3-s patches, map to FMA-small's 8
genres by MSD_TO_FMA (International has no MSD tag: score 0, flagged). `--head DIR`: VGGish + a head from
`vggish-jax compare`; `--weights DIR` with PCA params and no head: the shipped AudioSet genre head.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from vggish_jax import audio, spec as spec_lib
from vggish_jax.models.musicnn import tagger
from vggish_jax.models.vggish import frontend

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
MUSICNN_WEIGHTS = tagger.WEIGHTS
EXAMPLE_CLIP = os.path.join(ASSETS, "example.mp3")
AUDIOSET_HEAD = os.path.join(ASSETS, "audioset_genres")
RELEASE_NOTE = ("AudioSet genre head trained on Google's released embeddings; the public VGGish weights reproduce "
                "that pipeline closely but not exactly (tensorflow/models#9772)")

MSD_TAGS = tagger.TAGS
FMA_GENRES = ("Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock")
MSD_TO_FMA = {
    "Electronic": ("electronic", "electronica", "electro", "dance", "House"),
    "Experimental": ("experimental",),
    "Folk": ("folk", "acoustic"),
    "Hip-Hop": ("Hip-Hop",),
    "Instrumental": ("instrumental", "ambient"),
    "International": (),  # no MSD tag: not scored by the tagger
    "Pop": ("pop", "indie pop"),
    "Rock": ("rock", "alternative", "indie", "alternative rock", "classic rock", "indie rock", "hard rock",
             "punk", "metal", "heavy metal", "Progressive rock"),
}


@dataclasses.dataclass
class Prediction:
    path: str
    genres: list[tuple[str, float]]  # sorted, highest first
    tags: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # raw MSD tags, highest first
    backbone: str = "musicnn"
    patches: int = 0
    note: str = ""

    def to_json(self, top: int) -> dict:
        return {"path": self.path, "backbone": self.backbone, "patches": self.patches,
                "genres": [{"genre": g, "score": round(s, 4)} for g, s in self.genres[:top]],
                "tags": [{"tag": t, "probability": round(p, 4)} for t, p in self.tags[:top]], "note": self.note}


def genre_scores(tag_probs: np.ndarray) -> dict[str, float]:
    """Mean MSD tag probabilities [50] -> {genre: normalised score} over FMA's 8 genres."""
    index = {t: i for i, t in enumerate(MSD_TAGS)}
    raw = {g: max((float(tag_probs[index[t]]) for t in tags), default=0.0) for g, tags in MSD_TO_FMA.items()}
    total = sum(raw.values())
    return {g: (v / total if total > 0 else 0.0) for g, v in raw.items()}


class MusiCNNTagger(tagger.Tagger):
    """The MusiCNN tagger with its MSD tags mapped to FMA genres."""

    def predict(self, path: str) -> Prediction:
        total, n = np.zeros(len(MSD_TAGS), np.float64), 0
        for p in self.iter_patches(path):
            total += self.run(p)["taggram"].sum(axis=0, dtype=np.float64)
            n += p.shape[0]
        mean = (total / n).astype(np.float32)
        scores = genre_scores(mean)
        order = np.argsort(-mean)
        return Prediction(path, sorted(scores.items(), key=lambda kv: -kv[1]),
                          [(MSD_TAGS[i], float(mean[i])) for i in order], "musicnn", n,
                          "MusiCNN MSD tags mapped to FMA genres; International has no MSD tag and is not scored")


def default_tagger() -> MusiCNNTagger:
    return MusiCNNTagger()  # cheap: every Tagger shares the weights tagger loads once


class HeadPredictor:
    """VGGish embeddings, made as the head's recorded EmbeddingSpec says (weights that differ are refused), + a
    head from `vggish-jax compare`. Exception: a head on AudioSet's released embeddings, which no weights can
    match, takes any VGGish weights with PCA params (PCA + uint8 as the release), and its predictions say so.
    """

    _ROUNDING = {None: None, "pca_uint8_truncate": "truncate", "pca_uint8_round": "round"}

    def __init__(self, head_dir: str, weights: str | None = None):
        from vggish_jax.classify import heads
        from vggish_jax.datasets.audioset import RELEASE_SPEC
        from vggish_jax.models.vggish.params import require_pca
        from vggish_jax.pipeline.embed import load_pretrained

        self.head = heads.load_head(head_dir)
        head_json = os.path.join(head_dir, "head.json")
        want = self.head.spec
        self.note = ""
        if want is not None and want.model == RELEASE_SPEC.model:
            if not weights:
                raise ValueError(f"{head_dir}: a head trained on AudioSet's released embeddings needs VGGish weights "
                                 f"with PCA params; pass --weights DIR (from `vggish-jax convert` with --pca FILE)")
            self.embedder = load_pretrained(weights)
            require_pca(self.embedder.pca, "the AudioSet genre head (PCA + uint8 as the release)", weights)
            self.rounding, self.note = "truncate", RELEASE_NOTE
            return
        if want is None:
            raise spec_lib.SpecMismatch(f"{head_json}: records no embedding spec (written by an older vggish-jax), so "
                                        f"its features cannot be rebuilt safely; retrain it with `vggish-jax compare`")
        if want.postprocess not in self._ROUNDING:
            raise spec_lib.SpecMismatch(f"{head_json}: unknown postprocess {want.postprocess!r}; "
                                        f"written by a newer vggish-jax?")
        weights = weights or self.head.weights
        if not weights:
            raise ValueError(f"{head_dir}: the head does not record its VGGish weights; pass --weights DIR")
        self.embedder = load_pretrained(weights, final_relu=want.final_relu)
        spec_lib.require_compatible(want, self.embedder.spec.replace(postprocess=want.postprocess),
                                    expected_from=head_json, found_from=f"weights {weights}")
        self.rounding = self._ROUNDING[want.postprocess]
        if self.rounding:
            require_pca(self.embedder.pca, f"the head {head_json} (trained on PCA + uint8 embeddings)", weights)

    def predict(self, path: str) -> Prediction:
        try:  # the embeddings made as the head's training embeddings were (float or uint8)
            emb = self.embedder.embed_file(path)
        except frontend.TooShortError as e:  # its fix names embed's --pad, which predict has not
            raise ValueError(f"{str(e).split(';')[0]}, the least predict can score; to score it, pad the file "
                             f"with silence to 0.975 s or more (e.g. `sox IN.wav OUT.wav pad 0 1`)") from None
        emb = self.embedder.postprocess(emb, self.rounding) if self.rounding else emb
        probs = self.head.predict_proba([emb])[0]
        genres = sorted(zip(self.head.label_names, map(float, probs)), key=lambda kv: -kv[1])
        return Prediction(path, genres, [], "vggish+head", int(emb.shape[0]), self.note)


def iter_predictions(paths, predictor):
    """(path, Prediction or a one-line error) per file, in order, as each finishes; bad or silent files
    give the error instead of raising."""
    for p in map(os.fspath, paths):
        try:
            audio.require_audible(p)  # both backbones score silence confidently: refuse it instead
            yield p, predictor.predict(p)
        except (audio.AudioError, ValueError) as e:
            yield p, str(e)
