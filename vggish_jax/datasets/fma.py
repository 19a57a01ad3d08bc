"""FMA genre dataset as a TensorFlow-Datasets builder that never imports TensorFlow (array_record files).

Example: 'mel' [n, 96, 64] float32 log-mel, 'label', 'track_id' int64, and in `*_waveform` configs 'waveform'
[samples] int16 at 16 kHz; tracks.csv order (ascending track_id), so indices are stable across builds.
Sources: MANUAL_DIR's fma_metadata (folder, tracks.csv or zip) and fma_<subset> (folder or zip), else with
`download=True` the official archives (SHA-1 checked). Bad, missing, undecodable or too-short clips are listed
in `builder.info.metadata['skipped']`. With a Beam runner the splits come from `fma_beam`: same records.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from vggish_jax import download
from vggish_jax.datasets import decode, fma_metadata as meta
from vggish_jax.models.vggish import frontend

URL = "https://os.unil.cloud.switch.ch/fma/"
# SHA-1 of the official archives (from the mdeff/fma README).
ARCHIVE_SHA1 = {
    "fma_metadata.zip": "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
    "fma_small.zip": "ade154f733639d52e35e32f5593efe5be76c6d70",
    "fma_medium.zip": "c67b69ea232021025fca9231fc1c7c1a063ab50b",
    "fma_large.zip": "497109f4dd721066b5ce5e5f250ec604dc78939e",
}

MANUAL_INSTRUCTIONS = """\
Put the FMA archives (https://github.com/mdeff/fma) in the manual directory, zipped or extracted:
  fma_metadata.zip (or fma_metadata/tracks.csv) and fma_small.zip (or fma_small/000/000002.mp3 ...).
Download: curl -O https://os.unil.cloud.switch.ch/fma/fma_metadata.zip
          curl -O https://os.unil.cloud.switch.ch/fma/fma_small.zip
or pass download=True (`--download fma`) where this machine has internet."""


@dataclasses.dataclass
class FmaConfig(tfds.core.BuilderConfig):
    subset: str = "small"
    waveform: bool = False  # also store the 16 kHz int16 waveform (about 1 MB per 30-s clip)


class Fma(tfds.core.GeneratorBasedBuilder):
    """FMA genre recognition: log-mel examples per track, labelled with the track's top genre."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "VGGish log-mels at build time; array_record; skip report in metadata."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_INSTRUCTIONS
    BUILDER_CONFIGS = [FmaConfig(name=s, subset=s, description=d) for s, d in (
        ("small", "fma_small: 8,000 clips, 8 balanced genres"),
        ("medium", "fma_medium: 25,000 clips, 16 unbalanced genres"),
        ("large", "fma_large: 106,574 clips (those with a top genre)"))] + [
        FmaConfig(name=f"{s}_waveform", subset=s, waveform=True,
                  description=f"fma_{s} with the 16 kHz int16 waveform stored next to the log-mel")
        for s in ("small", "medium")]
    DEFAULT_CONFIG_NAME = "small"

    def __init__(self, *, workers: int | None = None, download: bool = False, **kwargs):
        """workers: decode processes (0 = in this process; default: CPUs - 1). download: fetch archives."""
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)
        self.workers = decode.default_workers() if workers is None else workers
        self.download = download
        self._pool = None
        self._beam_skips: str | None = None  # folder for the Beam workers' skip lists, while building with Beam

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = frontend.DEFAULT
        features = {
            "mel": tfds.features.Tensor(shape=(None, cfg.example_frames, cfg.num_mel_bins), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=meta.genre_names(self.builder_config.subset)),
            "track_id": tfds.features.Scalar(dtype=np.int64),
        }
        if self.builder_config.waveform:
            features["waveform"] = tfds.features.Tensor(shape=(None,), dtype=np.int16)
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("mel", "label"),
            homepage="https://github.com/mdeff/fma",
            citation=CITATION,
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # keep track_id order: shard ranges of `vggish-jax extract` stay fixed
        )

    def _split_generators(self, dl_manager):
        subset = self.builder_config.subset
        try:
            manual = os.fspath(dl_manager.manual_dir)
        except AssertionError:  # not given, or missing/empty: fall back to the work dir / download
            manual = None
        tracks_csv, audio_root = find_sources(manual, subset, work_dir=os.fspath(dl_manager.download_dir),
                                              download=self.download)
        by_split = meta.select(meta.read_tracks(tracks_csv), subset)
        counts = {s: len(t) for s, t in by_split.items()}
        self.info.metadata.update(subset=subset, tracks_csv=tracks_csv, audio_root=audio_root,
                                  expected_counts=counts, kept_counts={}, skipped=[],
                                  frontend=dataclasses.asdict(frontend.DEFAULT))
        expected = meta.EXPECTED_COUNTS.get(subset)
        if expected and counts != expected:
            print(f"fma: warning: {tracks_csv} gives {counts} {subset} tracks per split, the official "
                  f"metadata gives {expected}; is it the current fma_metadata.zip?", file=sys.stderr)
        generate = self._beam_examples if self._beam_skips else self._generate_examples
        return {split: generate(split, tracks, audio_root) for split, tracks in by_split.items()}

    def _todo(self, split, tracks, audio_root):
        """(track_id, label, path) of the clips to decode; the others go to the skip report now."""
        todo, skipped = select_clips(tracks, meta.genre_names(self.builder_config.subset), audio_root)
        for track_id, path, reason in skipped:
            self._skip(split, track_id, path, reason)
        return todo

    def _generate_examples(self, split, tracks, audio_root):
        todo = self._todo(split, tracks, audio_root)
        fn = functools.partial(decode.decode_clip, waveform=self.builder_config.waveform)
        kept = 0
        results = decode.ordered_map(fn, [p for _, _, p in todo], self._pool, ahead=4 * max(1, self.workers))
        for (track_id, label, path), clip in zip(todo, results):
            if isinstance(clip, str):
                self._skip(split, track_id, path, clip)
                continue
            kept += 1
            yield track_id, {**clip, "label": label, "track_id": track_id}
        self.info.metadata["kept_counts"][split] = kept

    def _beam_examples(self, split, tracks, audio_root):
        from vggish_jax.datasets import fma_beam

        return fma_beam.examples(self._todo(split, tracks, audio_root), waveform=self.builder_config.waveform,
                                 skips_path=os.path.join(self._beam_skips, f"{split}.json"))

    def _download_and_prepare(self, dl_manager, download_config):
        if download_config.beam_runner is None and download_config.beam_options is None:
            self._pool = decode.process_pool(self.workers)  # one for all splits: a worker starts in seconds
        else:  # Beam workers write their skip lists here; like the audio, storage that every worker sees
            os.makedirs(dl_manager.download_dir, exist_ok=True)
            self._beam_skips = tempfile.mkdtemp(prefix="fma_beam_skips.", dir=os.fspath(dl_manager.download_dir))
        try:
            super()._download_and_prepare(dl_manager, download_config)
            if self._beam_skips:
                self._collect_beam_skips()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
            if self._beam_skips:
                shutil.rmtree(self._beam_skips, ignore_errors=True)
            self._pool = self._beam_skips = None

    def _process_pipeline_result(self, pipeline_result):
        from vggish_jax.datasets.fma_beam import counters

        counts = {k: v for k, v in sorted(counters(pipeline_result).items()) if k.startswith("fma:")}
        print(f"fma: Beam counters {counts}", file=sys.stderr)

    def _collect_beam_skips(self):
        """Decode failures from the workers into the skip report, in the order a single-process build lists them."""
        info = self.info.metadata
        order = {s: i for i, s in enumerate(info["expected_counts"])}
        for split in order:
            with open(os.path.join(self._beam_skips, f"{split}.json")) as f:
                for r in json.load(f):
                    self._skip(split, r["track_id"], r["path"], r["reason"])
            info["kept_counts"][split] = self.info.splits[split].num_examples
        # Stable: per split, the up-front skips (known bad, other genre) first, then decode failures by track_id.
        info["skipped"].sort(key=lambda r: order[r["split"]])

    def _skip(self, split, track_id, path, reason):
        self.info.metadata["skipped"].append({"track_id": track_id, "split": split, "path": path, "reason": reason})
        print(f"fma: skipped track {track_id} ({split}): {reason}", file=sys.stderr)


def select_clips(tracks, names, audio_root) -> tuple[list, list]:
    """([(track_id, label, path)] to decode, [(track_id, path, reason)] skipped up front: known bad, or a genre
    not in names)."""
    todo, skipped = [], []
    for t in tracks:
        path = meta.audio_path(audio_root, t.track_id)
        if t.track_id in meta.KNOWN_BAD:
            skipped.append((t.track_id, path, f"{path}: listed by the FMA maintainers as having no or too short audio"))
        elif t.genre_top not in names:
            skipped.append((t.track_id, path, f"{path}: genre {t.genre_top!r} is not one of the {len(names)} classes"))
        else:
            todo.append((t.track_id, names.index(t.genre_top), path))
    return todo, skipped


def find_sources(manual_dir: str | None, subset: str, *, work_dir: str, download: bool = False) -> tuple[str, str]:
    """(tracks.csv, the fma_<subset> audio folder), extracting (or downloading) zips into work_dir."""
    meta.check_subset(subset)
    audio_name = f"fma_{subset}"
    extracted = os.path.join(work_dir, "fma_extracted")
    roots = [d for d in (manual_dir, extracted) if d]
    tracks_csv = next((p for r in roots for p in (os.path.join(r, "fma_metadata", "tracks.csv"),
                                                  os.path.join(r, "tracks.csv")) if os.path.isfile(p)), None)
    audio_root = next((p for p in (os.path.join(r, audio_name) for r in roots) if os.path.isdir(p)), None)
    if tracks_csv is None:
        archive = _archive(manual_dir, work_dir, "fma_metadata.zip", download)
        tracks_csv = os.path.join(extract_zip(archive, extracted, "fma_metadata"), "tracks.csv")
    if audio_root is None:
        audio_root = extract_zip(_archive(manual_dir, work_dir, audio_name + ".zip", download), extracted, audio_name)
    if not os.path.exists(tracks_csv):
        raise FileNotFoundError(f"{tracks_csv}: not found after extracting fma_metadata.zip; the archive is not "
                                f"the official one")
    return tracks_csv, audio_root


def _archive(manual_dir, work_dir, name, download) -> str:
    for d in (manual_dir, work_dir):
        if d and os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    if not download:
        where = manual_dir or "(no --manual-dir given)"
        raise FileNotFoundError(
            f"{name}: not found in {where}, neither zipped nor extracted; download {URL}{name} into the manual "
            f"directory (see https://github.com/mdeff/fma) or pass --download fma")
    return download_file(URL + name, os.path.join(work_dir, name), ARCHIVE_SHA1.get(name))


def download_file(url: str, dest: str, sha1: str | None) -> str:
    """Download url to dest (renamed into place only when complete and its SHA-1 matches)."""
    def check(path):
        got = download.digest(path, "sha1")
        if sha1 is not None and got != sha1:
            raise RuntimeError(f"{url}: SHA-1 {got} != expected {sha1}; the download is damaged, retry")

    print(f"downloading {url} -> {dest}", file=sys.stderr)
    try:
        return download.fetch_url(url, dest, timeout=60, check=check)
    except (urllib.error.URLError, OSError) as e:
        raise RuntimeError(f"{url}: download failed ({e}); without internet, download it elsewhere and pass "
                           f"its folder as --manual-dir") from e


def extract_zip(archive: str, dest_root: str, top: str) -> str:
    """Extract archive (whose members live under `top`/) into dest_root/top, atomically; return that folder."""
    final = os.path.join(dest_root, top)
    if os.path.isdir(final):
        return final
    tmp = os.path.join(dest_root, top + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"extracting {archive} -> {final}", file=sys.stderr)
    try:
        with zipfile.ZipFile(archive) as z:  # the FMA zips are bzip2-compressed; zipfile reads that
            names = [n for n in z.namelist() if n.startswith(top + "/")]
            if not names:
                raise FileNotFoundError(f"{archive}: holds nothing under {top}/; not the official FMA archive")
            z.extractall(tmp, members=names)
    except (zipfile.BadZipFile, NotImplementedError, EOFError) as e:
        raise RuntimeError(f"{archive}: cannot extract ({e}); the zip is damaged or incomplete: check its "
                           f"SHA-1, or extract it with 7z into the manual directory") from e
    os.replace(os.path.join(tmp, top), final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def config_named(name: str, also: str = "") -> FmaConfig:
    """The config of 'fma/<config>' (or just '<config>'); an unknown name's refusal ends with `also`."""
    config = name.split("/", 1)[1] if name.startswith("fma/") else name
    found = next((c for c in Fma.BUILDER_CONFIGS if c.name == config), None)
    if found is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of "
                         f"{', '.join('fma/' + c.name for c in Fma.BUILDER_CONFIGS)}{also}")
    return found


def builder(name: str = "fma/small", *, data_dir: str, workers: int | None = None, download: bool = False) -> Fma:
    """An Fma builder for 'fma/<config>' (or just '<config>') under data_dir."""
    return Fma(config=config_named(name).name, data_dir=absolute(data_dir), workers=workers, download=download)


def absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def prepare(name: str = "fma/small", *, data_dir: str, manual_dir: str | None = None, workers: int | None = None,
            download: bool = False, beam_runner=None, beam_options=None) -> Fma:
    """Build the dataset unless built (decoding every clip once); return the builder. The `workers` spawned
    processes re-import the calling script: call this under `if __name__ == "__main__":` (or workers=0).
    `beam_runner` / `beam_options`: generate the splits with a Beam pipeline instead."""
    b = builder(name, data_dir=data_dir, workers=workers, download=download)
    manual_dir = None if manual_dir is None else absolute(manual_dir)
    if manual_dir is not None and not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"{manual_dir}: manual directory does not exist; point --manual-dir at the folder "
                                f"holding fma_metadata(.zip) and fma_{b.builder_config.subset}(.zip)")
    remove_incomplete_builds(b)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, beam_runner=beam_runner, beam_options=beam_options)
    b.download_and_prepare(download_config=config)
    return b


def remove_incomplete_builds(b: Fma) -> list[str]:
    """Delete the `incomplete.*` folders a killed build left (TFDS never does); so two concurrent builds into
    one data_dir are not supported."""
    parent, name = os.path.split(os.fspath(b.data_path))
    removed = sorted(p for p in glob.glob(os.path.join(glob.escape(parent), f"incomplete.*_{glob.escape(name)}"))
                     if os.path.isdir(p))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        print(f"fma: removed {len(removed)} unfinished build folder(s) left by an interrupted run: "
              f"{', '.join(removed)}", file=sys.stderr)
    return removed


def skip_report(b: Fma) -> list[dict]:
    """Clips left out of a built dataset: [{'track_id', 'split', 'path', 'reason'}]."""
    return list(b.info.metadata.get("skipped", []))


def label_names(b: Fma) -> tuple[str, ...]:
    """Genre name of each label index."""
    return tuple(b.info.features["label"].names)


def data_sources(b: Fma) -> dict:
    """{split: random-access data source} of a built dataset; ds[i] -> {'mel', 'label', 'track_id'(, 'waveform')}."""
    return {s: b.as_data_source(s) for s in meta.SPLIT_ORDER if s in b.info.splits}


CITATION = """\
@inproceedings{fma_dataset,
  title = {{FMA}: A Dataset for Music Analysis},
  author = {Defferrard, Micha\\"el and Benzi, Kirell and Vandergheynst, Pierre and Bresson, Xavier},
  booktitle = {18th International Society for Music Information Retrieval Conference (ISMIR)},
  year = {2017},
}"""
