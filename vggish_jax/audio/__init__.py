"""Reading audio: the one place that reads audio files. Imports no jax (decode worker processes import it).

  files       the errors (unreadable, truncated, silent: one line naming the file and the fix), opening and
              reading a file, and which files are audio (`expand_inputs`, `scan_folder`)
  decode      a file -> float32 mono, whole (`load`) or in blocks (`stream`); truncation, level and silence
              checks, and the cautions collected for a command's report
  resampling  polyphase resampling with resampy's kaiser_best filter design
Re-exported below: the names the rest of the package uses as `audio.NAME`.
"""
from vggish_jax.audio.decode import (check_finite, collect_cautions, forward_cautions, is_silent, load, require_audible,
                                     stream, to_mono, with_cautions)
from vggish_jax.audio.files import (AUDIO_EXTENSIONS, AudioError, SilentAudioError, TruncatedError, UnreadableError,
                                    expand_inputs, open_audio, scan_folder)
from vggish_jax.audio.resampling import (MAX_MATRIX, TARGET_SR, lowpass, matrix_size, out_len, polyphase_matrix, ratio,
                                         resample)

__all__ = ["AUDIO_EXTENSIONS", "AudioError", "MAX_MATRIX", "SilentAudioError", "TARGET_SR", "TruncatedError",
           "UnreadableError", "check_finite", "collect_cautions", "expand_inputs", "forward_cautions", "is_silent",
           "load", "lowpass", "matrix_size", "open_audio", "out_len", "polyphase_matrix", "ratio", "require_audible",
           "resample", "scan_folder", "stream", "to_mono", "with_cautions"]
