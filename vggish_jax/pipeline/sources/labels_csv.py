"""A CSV of labelled audio files as a source: columns `path`, `label`, and optionally `split` and `group`.

Paths are relative to the CSV's folder (or absolute). Classes are the distinct labels, sorted; splits come
from the `split` column (train, validation, test first, then others sorted) or are one split 'all'. The
`group` column (e.g. artist) is kept per split in `groups` so grouped folds can keep a group together.

The file is read as UTF-8 (a byte-order mark, as Excel writes, is dropped); other bytes are refused, not
guessed. Labels and column names lose surrounding whitespace. A file listed twice (the same resolved path,
in any split) is refused unless `on_duplicate="first"` keeps its first row; labels equal up to case are
named in a caution unless `normalize_labels` lower-cases them all.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import os
import shlex

from vggish_jax.pipeline.sources import Described, file_key

ORDER = ("train", "validation", "test")
ON_DUPLICATE = ("refuse", "first")  # a file listed twice: refuse, or keep its first row
_SHOWN = 3  # repeated files named in the refusal


@dataclasses.dataclass
class Row:
    line: int  # in the CSV, from 1 (the header's line)
    path: str  # as written
    label: str  # stripped (lower-cased with normalize_labels)
    split: str
    group: str


def read_text(path: str) -> tuple[str, bytes]:
    """(the CSV's text, its bytes): UTF-8 with or without a byte-order mark, else a one-line refusal."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the labels CSV ({e.strerror}); check the path") from None
    try:
        return raw.decode("utf-8-sig"), raw
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); "
                         f"re-save it as UTF-8 beside it (Excel: Save As 'CSV UTF-8'; or iconv -f cp1252 -t utf-8 "
                         f"{shlex.quote(path)} > {shlex.quote(os.path.splitext(path)[0] + '-utf8.csv')}) and pass that "
                         f"file") from None


def read_rows(path: str, text: str, normalize_labels: bool = False) -> tuple[list[Row], int]:
    """(the CSV's rows, how many labels had surrounding whitespace); blank lines are not rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((r for r in reader if any(c.strip() for c in r)), None)
    if header is None:
        raise ValueError(f"{path}: is empty; a labels CSV needs a header path,label (and optionally split, group) "
                         f"and one row per audio file")
    col = {name.strip(): i for i, name in enumerate(header)}
    if not {"path", "label"} <= set(col):
        raise ValueError(f"{path}: a labels CSV needs a header with columns path,label (and optionally split, "
                         f"group); found {sorted(col)}")
    rows, spaced = [], 0
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        get = {name: cells[i] if i < len(cells) else "" for name, i in col.items()}
        for what in ("path", "label"):
            if not get[what].strip():
                raise ValueError(f"{path}: line {reader.line_num} has no {what}; fill in its {what} or delete "
                                 f"the line")
        label = get["label"].strip()
        spaced += label != get["label"]
        rows.append(Row(reader.line_num, get["path"], label.lower() if normalize_labels else label,
                        get.get("split", "").strip() or "all", get.get("group", "").strip()))
    if not rows:
        raise ValueError(f"{path}: has a header but no rows; add one row per audio file (path,label)")
    return rows, spaced


def unique_files(path: str, rows: list[Row], on_duplicate: str) -> list[Row]:
    """`rows` with each file once: a file on several rows is refused (naming them), or with
    on_duplicate='first' only its first row is kept."""
    base = os.path.dirname(path)
    by_file: dict[str, list[Row]] = collections.defaultdict(list)
    for r in rows:
        by_file[file_key(os.path.join(base, r.path))].append(r)
    repeated = [rs for rs in by_file.values() if len(rs) > 1]
    if repeated and on_duplicate == "refuse":
        def lines(rs):
            if len({r.label for r in rs}) == 1:
                return f"{', '.join(str(r.line) for r in rs)} ({rs[0].label})"
            return ", ".join(f"{r.line} ({r.label})" for r in rs)
        shown = "; ".join(f"{rs[0].path} on lines {lines(rs)}" for rs in repeated[:_SHOWN])
        more = f"; and {len(repeated) - _SHOWN} more" if len(repeated) > _SHOWN else ""
        raise ValueError(f"{path}: {len(repeated)} file{'s' * (len(repeated) > 1)} listed more than once: "
                         f"{shown}{more}; keep one row per file (with its right label and split), or "
                         f"set on_duplicate = \"first\" in extract's --config file to keep each file's "
                         f"first row")
    return [rs[0] for rs in by_file.values()]  # dicts keep insertion order: each file at its first row


def case_caution(path: str, names: list[str]) -> list[str]:
    """One line naming the labels that differ only in case, if any."""
    by_lower = collections.defaultdict(list)
    for n in names:
        by_lower[n.lower()].append(n)
    clashes = [ns for ns in by_lower.values() if len(ns) > 1]
    if not clashes:
        return []
    named = "; ".join(", ".join(repr(n) for n in ns) for ns in clashes)
    return [f"{path}: labels that differ only in case are separate classes: {named}; write each class one way "
            f"in the CSV, or set normalize_labels = true in extract's --config file to lower-case "
            f"every label"]


class LabelsCsv(Described):
    def __init__(self, path: str, on_duplicate: str = "refuse", normalize_labels: bool = False):
        if on_duplicate not in ON_DUPLICATE:
            raise ValueError(f"on_duplicate={on_duplicate!r}: choose one of {', '.join(ON_DUPLICATE)}")
        self.path = os.path.abspath(path)
        self.on_duplicate, self.normalize_labels = on_duplicate, normalize_labels
        text, raw = read_text(path)
        listed, self._spaced = read_rows(path, text, normalize_labels)
        rows = unique_files(path, listed, on_duplicate)
        self.dropped = len(listed) - len(rows)
        names = {r.split for r in rows}
        order = [s for s in ORDER if s in names] + sorted(names - set(ORDER))
        base = os.path.dirname(self.path)
        super().__init__({s: [(os.path.join(base, r.path), r.label) for r in rows if r.split == s] for s in order},
                         named=True)
        self.cautions = case_caution(path, self.label_names)
        self.groups: dict[str, list[str]] = {s: [r.group for r in rows if r.split == s] for s in order}
        self._sha = hashlib.sha256(raw).hexdigest()

    def summary(self) -> str:
        """The files, classes and splits."""
        notes = ""
        if self._spaced:
            notes += f"; surrounding spaces stripped from {self._spaced} label{'s' * (self._spaced > 1)}"
        if self.dropped:
            notes += f"; {self.dropped} repeated rows left out (on_duplicate first: each file's first row kept)"
        sizes = self.splits()
        return (f"{self.path}: {sum(sizes.values())} files in {len(self.label_names)} classes "
                f"({self.label_counts()}); splits {', '.join(f'{s} {n}' for s, n in sizes.items())}{notes}")

    def identity(self) -> dict:
        ident = {"source": "csv", "csv_sha256": self._sha}  # its rows number the clips
        # The options change the clips or their labels; named only when set, so older stores still resume.
        if self.on_duplicate != "refuse":
            ident["on_duplicate"] = self.on_duplicate
        if self.normalize_labels:
            ident["normalize_labels"] = True
        return ident
