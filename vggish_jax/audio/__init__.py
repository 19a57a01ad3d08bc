"""Reading audio: the one place that reads audio files. Imports no jax (decode worker processes import it).

  errors      AudioError and its kinds (unreadable, truncated, silent): one line naming the file and the fix
  files       opening and reading a file (the true reason it cannot be read; no decoder chatter on stderr)
  decode      a file -> float32 mono, whole (`load`) or in blocks (`stream`); truncation and level checks
  resampling  polyphase resampling with resampy's kaiser_best filter design
  inputs      which files are audio: folders and file lists expanded (`expand_inputs`, `scan_folder`)
  silence     the one "this clip is silent" rule (`is_silent`, `require_audible`)
  cautions    warnings about files used as given, collected for a command's report
Re-exported below: the names the rest of the package uses as `audio.NAME`.
"""
from vggish_jax.audio.cautions import collect_cautions, forward_cautions, with_cautions
from vggish_jax.audio.decode import check_finite, load, stream, to_mono
from vggish_jax.audio.errors import AudioError, SilentAudioError, TruncatedError, UnreadableError
from vggish_jax.audio.files import open_audio
from vggish_jax.audio.inputs import AUDIO_EXTENSIONS, expand_inputs, scan_folder
from vggish_jax.audio.resampling import (MAX_MATRIX, TARGET_SR, lowpass, matrix_size, out_len, polyphase_matrix, ratio,
                                         resample)
from vggish_jax.audio.silence import is_silent, require_audible

__all__ = ["AUDIO_EXTENSIONS", "AudioError", "MAX_MATRIX", "SilentAudioError", "TARGET_SR", "TruncatedError",
           "UnreadableError", "check_finite", "collect_cautions", "expand_inputs", "forward_cautions", "is_silent",
           "load", "lowpass", "matrix_size", "open_audio", "out_len", "polyphase_matrix", "ratio", "require_audible",
           "resample", "scan_folder", "stream", "to_mono", "with_cautions"]
