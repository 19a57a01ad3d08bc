"""The one record of an input a job could not use: what kind of problem, which input, and why (one line).

Every command prints `Skip.line()` and every report (info.json, embed's sidecar, FAD statistics) stores
`Skip.to_dict()`, so a skip reads the same wherever it shows up. Imports nothing from the project.
"""
from __future__ import annotations

import dataclasses

# Kinds in use; a new kind is a new string here, so reports can be counted by kind.
KINDS = (
    "undecodable",  # not audio, corrupt, or a decoder failure
    "truncated",  # fewer frames decoded than the header declares
    "too_short",  # shorter than one 0.975-s VGGish example
    "silent",  # decodes, but is (near) digital silence where that makes the result meaningless
    "unreadable",  # permission denied, a broken link, a FIFO or other non-regular file, an unreadable folder
    "missing",  # listed by a dataset's metadata, absent on disk
    "invalid",  # present, but unusable for another stated reason (bad label, bad record)
)


@dataclasses.dataclass(frozen=True)
class Skip:
    kind: str
    path: str
    reason: str  # one line naming the input, the true reason and a fix that works

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown skip kind {self.kind!r}; one of {', '.join(KINDS)}")
        # A file name with a newline must not split the one-line message.
        object.__setattr__(self, "reason", " ".join(str(self.reason).splitlines()))

    def line(self) -> str:
        return f"skipped {self.reason}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Skip":
        return cls(d["kind"], d["path"], d["reason"])
