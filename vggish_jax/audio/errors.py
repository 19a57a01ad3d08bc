"""The exceptions audio reading raises: one line naming the file, the reason and a fix; each maps to a Skip kind."""
from __future__ import annotations

import os

from vggish_jax import skips


class AudioError(ValueError):
    """A file could not be turned into usable audio. The message (one line) names the file and the fix."""
    kind = "undecodable"  # the skips.Skip kind a job records for it

    def __init__(self, message: str):
        super().__init__(skips.one_line(message))

    def skip(self, path: str) -> skips.Skip:
        return skips.Skip(self.kind, os.fspath(path), str(self))


class UnreadableError(AudioError):
    """Not a readable regular file: permission denied, a broken link, a FIFO or device, an unreadable folder."""
    kind = "unreadable"


class NameTooLongError(UnreadableError):
    """A path the file system refuses as too long (ENAMETOOLONG): no file by that name can be opened."""
    kind = "name_too_long"


class TruncatedError(AudioError):
    """Fewer frames decode than the file's header declares (a cut download or copy)."""
    kind = "truncated"


class SilentAudioError(AudioError):
    """The file decodes, but is silent or nearly so (`silence.is_silent`)."""
    kind = "silent"
