"""Work for decode worker processes: an audio file -> 16 kHz mono float32, or a one-line error.

Imports no jax (only numpy, scipy, soundfile through `segments`/`audio`), so a spawned worker starts fast and
small; the device does the frontend and the model. Never raises for a bad file: one corrupt mp3 must not
take a worker pool down.
"""
from __future__ import annotations

import numpy as np

from vggish_jax import audio, frontend
from vggish_jax.pipeline import segments


def decode_16k(path: str, pad: bool = False) -> np.ndarray | str:
    """16 kHz mono float32 waveform of `path` (at least one example long unless it errors) or the error text."""
    try:
        return segments.load_clip(path, pad=pad)
    except (audio.AudioError, frontend.TooShortError) as e:
        return str(e)
    except Exception as e:  # a decoder crash on one file is that file's problem
        return f"{path}: cannot decode ({type(e).__name__}: {e}); the file is corrupt"


def imported_modules(_=None) -> list[str]:
    """The modules loaded in this process (a worker's, when submitted to a pool)."""
    import sys

    return sorted(sys.modules)
