# Provenance of the input of tests/data/musicnn_*golden.npz (run once with librosa 0.11 in a TensorFlow venv), then
# tests/make_musicnn_golden.py runs the original MSD_musicnn graph on input.npy and names its outputs. Not a test.
import numpy as np, librosa
sr = 16000
t = np.arange(int(6.2 * sr)) / sr
rng = np.random.default_rng(0)
x = 0.25 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
for f in (261.6, 329.6, 392.0):
    x += 0.08 * np.sin(2 * np.pi * f * t)
beat = (np.mod(t, 0.5) < 0.03) * rng.standard_normal(t.size) * 0.5
x = (0.08 * (x + beat)).astype(np.float32)
pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
x = pcm.astype(np.float32) / 32767
S = librosa.feature.melspectrogram(y=x, sr=sr, hop_length=256, n_fft=512, n_mels=96, pad_mode="reflect").T
S = np.log10(10000 * S.astype(np.float16) + 1)
patches = np.stack([S[i * 187:(i + 1) * 187] for i in range(S.shape[0] // 187)]).astype(np.float32)
print(S.shape, patches.shape, librosa.__version__, np.isfinite(S).all(), S.max())
np.save("input.npy", patches)
np.savez("frontend.npz", pcm=pcm, logmel=S.astype(np.float32))
