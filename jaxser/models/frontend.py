"""On-device feature front ends: waveforms in, feature sequences out.

Methods that augment raw audio inside the jitted train step (the multitask
method) cannot use the cached features; they cache the `waveform` feature set
and compute the features on the accelerator with a front end that reproduces
the corresponding cached set.

`MFCC` is the JAX twin of the `mfcc40` feature set (librosa.feature.mfcc with
the set's parameters): centred frames (zero padding of n_fft // 2 on both
sides), a periodic Hann window of `win_length` centred in `n_fft`, the power
spectrum, librosa's Slaney mel filterbank, 10 log10(max(mel, 1e-10)) floored
at 80 dB below the utterance's maximum, and the orthonormal DCT-II. The
filterbank, window and DCT matrix are NumPy constants computed once.

Valid lengths: a clip of n samples zero-padded to T gives 1 + T // hop
frames, of which the first 1 + n // hop are exactly librosa's frames of the
unpadded clip (librosa pads the clip with zeros too); the 80 dB floor uses the
maximum over those frames only, and the frames after them are set to zero, as
`fix_length` pads cached features.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.data.corpus import SAMPLE_RATE

_HIGHEST = jax.lax.Precision.HIGHEST
# librosa.power_to_db defaults (amin, top_db), as librosa.feature.mfcc uses.
_AMIN = 1e-10
_TOP_DB = 80.0


@functools.lru_cache(maxsize=None)
def _mfcc_constants(n_mfcc: int, win: int, n_fft: int, n_mels: int,
                    fmin: float, fmax: float):
  """(window (n_fft,), mel (n_fft//2+1, n_mels), dct (n_mels, n_mfcc))."""
  import librosa  # pylint: disable=g-import-not-at-top
  import scipy.fft  # pylint: disable=g-import-not-at-top
  window = librosa.util.pad_center(
      librosa.filters.get_window('hann', win, fftbins=True), size=n_fft)
  mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels,
                            fmin=fmin, fmax=fmax)
  # DCT-II is linear along the mel axis: dct(S) = dct(I) @ S.
  dct = scipy.fft.dct(np.eye(n_mels), type=2, norm='ortho', axis=0)[:n_mfcc]
  return (window.astype(np.float32), mel.T.astype(np.float32),
          dct.T.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class MFCC:
  """librosa-compatible MFCCs of a batch of waveforms (see module docstring).

  The fields are the `mfcc40` feature set's parameters; build one from a
  data config with `MFCC.from_params(config.data.feature_params.mfcc40)`.
  """
  n_mfcc: int = 40
  win_ms: float = 25.0
  hop_ms: float = 10.0
  n_fft: int = 512
  n_mels: int = 64
  fmin: float = 0.0
  fmax: float = 8000.0

  @classmethod
  def from_params(cls, params) -> 'MFCC':
    return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)
                  if f.name in params})

  @property
  def win(self) -> int:
    return int(round(self.win_ms * SAMPLE_RATE / 1000))

  @property
  def hop(self) -> int:
    return int(round(self.hop_ms * SAMPLE_RATE / 1000))

  @property
  def fft_size(self) -> int:
    return max(self.n_fft, self.win)  # As the `mfcc40` set.

  def num_frames(self, samples):
    """Frames of `samples` samples (librosa, centred): 1 + samples // hop."""
    return 1 + samples // self.hop

  def __call__(self, wave: jnp.ndarray, lengths: jnp.ndarray):
    """(B, T) waveforms, (B,) sample counts -> (B, F, n_mfcc), (B,) frames."""
    window, mel, dct = (jnp.asarray(c) for c in _mfcc_constants(
        self.n_mfcc, self.win, self.fft_size, self.n_mels, self.fmin,
        self.fmax))
    n_fft, hop = self.fft_size, self.hop
    frames = self.num_frames(wave.shape[1])
    padded = jnp.pad(wave, ((0, 0), (n_fft // 2, n_fft // 2)))
    index = (np.arange(frames)[:, None] * hop +
             np.arange(n_fft)[None, :])                   # (F, n_fft)
    spec = jnp.fft.rfft(padded[:, index] * window, axis=-1)
    power = jnp.real(spec)**2 + jnp.imag(spec)**2        # (B, F, bins)
    db = 10.0 * jnp.log10(jnp.maximum(
        jnp.matmul(power, mel, precision=_HIGHEST), _AMIN))
    frame_lengths = self.num_frames(lengths).astype(jnp.int32)
    valid = jnp.arange(frames)[None, :] < frame_lengths[:, None]   # (B, F)
    peak = jnp.max(jnp.where(valid[..., None], db, -jnp.inf), axis=(1, 2))
    db = jnp.maximum(db, peak[:, None, None] - _TOP_DB)
    mfcc = jnp.matmul(db, dct, precision=_HIGHEST)
    return jnp.where(valid[..., None], mfcc, 0.0), frame_lengths
