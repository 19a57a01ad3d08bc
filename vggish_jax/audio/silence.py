"""The one rule for "this clip is silent": its peak sample is below SILENCE_PEAK_DBFS (-60 dBFS). `predict`
refuses such a clip; `fad` leaves it out of the statistics and reports it."""
from __future__ import annotations

import math
import os

import numpy as np

from vggish_jax.audio import files
from vggish_jax.audio.decode import check_finite, to_mono
from vggish_jax.audio.errors import SilentAudioError

SILENCE_PEAK_DBFS = -60.0


def peak_dbfs(x: np.ndarray) -> float:
    """20 log10 of the largest |sample| (full scale 1.0); -inf for digital silence or no samples."""
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(x: np.ndarray, peak_limit_dbfs: float = SILENCE_PEAK_DBFS) -> bool:
    """True when no sample of `x` reaches `peak_limit_dbfs`."""
    return peak_dbfs(x) < peak_limit_dbfs


def require_audible(path: str | os.PathLike, peak_limit_dbfs: float = SILENCE_PEAK_DBFS,
                    block_seconds: float = 10.0, *,
                    consequence: str = "no genre can be predicted from it") -> None:
    """Raise SilentAudioError if the file `is_silent`. Stops at the first block that is not."""
    path = os.fspath(path)
    peak = -math.inf
    with files.open_audio(path) as f:
        step = max(1, int(block_seconds * f.samplerate))
        while True:
            x = files.read_frames(f, path, step)
            if x.shape[0] == 0:
                break
            x = to_mono(x)
            check_finite(x, path)
            peak = max(peak, peak_dbfs(x))
            if peak >= peak_limit_dbfs:
                return
    level = "digital silence" if peak == -math.inf else f"peak {peak:.0f} dBFS"
    raise SilentAudioError(f"{path}: silent or nearly so ({level}, below {peak_limit_dbfs:.0f} dBFS); {consequence}: "
                           f"check the file, or raise its level if it is just quiet")
