"""The records of inputs a job could not use (`Skip`) or used with a caveat (`Caution`), and `one_line`.
Commands print `.line()` and reports store `.to_dict()`, so a record reads the same everywhere.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

# Kinds in use; a new kind is a new string here, so reports can be counted by kind.
KINDS = (
    "undecodable",  # not audio, corrupt, or a decoder failure
    "truncated",  # fewer frames decoded than the header declares
    "too_short",  # shorter than one 0.975-s VGGish example
    "silent",  # decodes, but is (near) digital silence where that makes the result meaningless
    "unreadable",  # permission denied, a broken link, a FIFO or other non-regular file, an unreadable folder
    "name_too_long",  # a path longer than the file system allows (ENAMETOOLONG): it cannot be opened
    "missing",  # listed by a dataset's metadata, absent on disk
    "invalid",  # present, but unusable for another stated reason (bad label, bad record)
)

# Kinds of caution: the input was used, but the result may not mean what the user expects.
CAUTION_KINDS = (
    "over_range",  # float audio far above full scale (|x| >> 1): embedded as given, likely mis-scaled
    "truncated_kept",  # a truncated file whose decodable part was kept on request (keep_truncated)
    "few_frames",  # a set (FAD's REF or GEN) with fewer frames than dimensions: statistics dominated by bias
)


def one_line(text: object) -> str:
    """`text` on one line: line breaks (e.g. inside a file name) shown as \\n / \\r, runs of spaces kept."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


@dataclasses.dataclass(frozen=True)
class _Record:
    kind: str
    path: str
    reason: str  # one line naming the input, the true reason (or what is odd, with the number) and what to do
    _KINDS: ClassVar[tuple[str, ...]] = ()
    _PREFIX: ClassVar[str] = ""

    def __post_init__(self):
        if self.kind not in self._KINDS:
            kinds = ", ".join(self._KINDS)
            raise ValueError(f"unknown {type(self).__name__.lower()} kind {self.kind!r}; one of {kinds}")
        # A file name with a newline must not split the one-line message.
        object.__setattr__(self, "reason", one_line(self.reason))

    def line(self) -> str:
        return self._PREFIX + self.reason

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(d["kind"], d["path"], d["reason"])


@dataclasses.dataclass(frozen=True)
class Skip(_Record):
    """An input a job could not use."""
    _KINDS: ClassVar[tuple[str, ...]] = KINDS
    _PREFIX: ClassVar[str] = "skipped "


@dataclasses.dataclass(frozen=True)
class Caution(_Record):
    """An input that was used, with something the user must know about the result (one line, like Skip)."""
    _KINDS: ClassVar[tuple[str, ...]] = CAUTION_KINDS
    _PREFIX: ClassVar[str] = "warning: "
