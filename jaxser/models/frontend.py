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

`FBank` is the JAX twin of the `fbank128` feature set (Kaldi fbank as the
Audio Spectrogram Transformer takes it, with AST's normalisation): frames
wholly inside the signal (snip_edges), each with its DC offset removed,
pre-emphasised (first sample replicated), Hann-windowed (symmetric),
zero-padded to a power of two; the power spectrum summed into Kaldi's mel
bands (`jaxser.data.features.kaldi_mel_banks`), log floored at float32
epsilon, then (x - mean) / (2 std). A clip of n samples zero-padded to T
gives (T - win) // hop + 1 frames, of which the first
max(1, (n - win) // hop + 1) lie inside the clip and equal the cached set's;
the frames after them are set to zero.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.data import features as features_lib
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


@functools.lru_cache(maxsize=None)
def _fbank_constants(win: int, n_fft: int, n_mels: int, low_freq: float,
                     high_freq: float):
  """(window (win,), mel (n_fft//2+1, n_mels)) of the `fbank128` set."""
  mel = features_lib.kaldi_mel_banks(n_mels, n_fft, low_freq, high_freq)
  return np.hanning(win).astype(np.float32), mel.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class FBank:
  """Kaldi fbank of a batch of waveforms, as AST takes it (module docstring).

  The fields are the `fbank128` feature set's parameters; build one with
  `FBank.from_params(config.data.feature_params.fbank128)`. AST's
  checkpoints take 1024 frames: the multitask AST config uses `waveform`
  data of 400 + 1023 * 160 = 164080 samples, which this front end turns into
  exactly 1024 frames.
  """
  n_mels: int = 128
  win_ms: float = 25.0
  hop_ms: float = 10.0
  preemphasis: float = 0.97
  low_freq: float = 20.0
  high_freq: float = 0.0
  norm_mean: float = -4.2677393
  norm_std: float = 4.5689974

  @classmethod
  def from_params(cls, params) -> 'FBank':
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
    return 1 << (self.win - 1).bit_length()  # Kaldi's round_to_power_of_two.

  def num_frames(self, samples: int) -> int:
    """Frames of a clip of `samples` samples (snip_edges):
    (samples - win) // hop + 1, at least 1 (a clip shorter than a window
    gives one zero-padded frame)."""
    return max(1, (int(samples) - self.win) // self.hop + 1)

  def samples_for(self, frames: int) -> int:
    """The fewest samples that give `frames` frames: win + (frames-1) hop."""
    return self.win + (frames - 1) * self.hop

  def __call__(self, wave: jnp.ndarray, lengths: jnp.ndarray):
    """(B, T) waveforms, (B,) sample counts -> (B, F, n_mels), (B,) frames."""
    win, hop = self.win, self.hop
    window, mel = (jnp.asarray(c) for c in _fbank_constants(
        win, self.fft_size, self.n_mels, self.low_freq, self.high_freq))
    if wave.shape[1] < win:  # One frame, as a clip shorter than a window.
      wave = jnp.pad(wave, ((0, 0), (0, win - wave.shape[1])))
    frames = (wave.shape[1] - win) // hop + 1
    index = (np.arange(frames)[:, None] * hop +
             np.arange(win)[None, :])                     # (F, win)
    x = wave.astype(jnp.float32)[:, index]                # (B, F, win)
    x = x - x.mean(axis=-1, keepdims=True)
    previous = jnp.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    x = (x - self.preemphasis * previous) * window
    spec = jnp.fft.rfft(x, n=self.fft_size, axis=-1)
    power = jnp.real(spec)**2 + jnp.imag(spec)**2         # (B, F, bins)
    energies = jnp.matmul(power, mel, precision=_HIGHEST)
    logfb = jnp.log(jnp.maximum(energies, np.finfo(np.float32).eps))
    out = (logfb - self.norm_mean) / (2 * self.norm_std)
    frame_lengths = jnp.clip((lengths - win) // hop + 1, 1,
                             frames).astype(jnp.int32)
    valid = jnp.arange(frames)[None, :] < frame_lengths[:, None]   # (B, F)
    return jnp.where(valid[..., None], out, 0.0), frame_lengths
