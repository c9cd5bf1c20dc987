"""Spectrograms for TTS and Griffin-Lim back to a waveform.

Waveforms are jaxser's 16 kHz mono float32 (`jaxser.data.audio.load`).
The linear spectrogram is |STFT| (librosa, centred frames, periodic Hann
window of `win_ms`, `n_fft` points, hop `hop_ms`); the mel spectrogram is
librosa's Slaney mel filterbank (`n_mels` bands, fmin..fmax) times it. Both
are stored normalised as in Tacotron (keithito/Rayhane, the code GST-Tacotron
implementations build on):

  db   = 20 log10(max(S, 1e-5)) - ref_db
  norm = clip((db - min_db) / -min_db, 0, 1)

and `denormalize` inverts it (for Griffin-Lim). A clip of n samples has
1 + n // hop frames. Griffin-Lim (librosa, `griffin_lim_iters` iterations)
runs on the linear magnitudes raised to `power` (Tacotron's 1.5 sharpening).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxser.data.corpus import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class AudioParams:
  """The fields of `config.tts.audio`."""
  n_fft: int = 1024
  win_ms: float = 50.0
  hop_ms: float = 12.5
  n_mels: int = 80
  fmin: float = 0.0
  fmax: float = 8000.0
  min_db: float = -100.0
  ref_db: float = 20.0
  power: float = 1.5
  griffin_lim_iters: int = 60

  @classmethod
  def from_config(cls, cfg) -> 'AudioParams':
    return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls)
                  if f.name in cfg})

  @property
  def win(self) -> int:
    return int(round(self.win_ms * SAMPLE_RATE / 1000))

  @property
  def hop(self) -> int:
    return int(round(self.hop_ms * SAMPLE_RATE / 1000))

  @property
  def n_linear(self) -> int:
    return self.n_fft // 2 + 1

  def num_frames(self, samples: int) -> int:
    return 1 + samples // self.hop


@functools.lru_cache(maxsize=8)
def _mel_basis(p: AudioParams) -> np.ndarray:
  import librosa  # pylint: disable=g-import-not-at-top
  return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=p.n_fft, n_mels=p.n_mels,
                             fmin=p.fmin, fmax=p.fmax).astype(np.float32)


def stft_magnitude(wave: np.ndarray, p: AudioParams) -> np.ndarray:
  """(frames, n_fft // 2 + 1) |STFT| of a 1-D waveform."""
  import librosa  # pylint: disable=g-import-not-at-top
  spec = librosa.stft(np.asarray(wave, np.float32), n_fft=p.n_fft,
                      hop_length=p.hop, win_length=p.win, window='hann',
                      center=True, pad_mode='constant')
  return np.abs(spec).T.astype(np.float32)


def normalize(magnitude: np.ndarray, p: AudioParams) -> np.ndarray:
  """Magnitudes -> [0, 1] (module docstring)."""
  db = 20.0 * np.log10(np.maximum(magnitude, 1e-5)) - p.ref_db
  return np.clip((db - p.min_db) / -p.min_db, 0.0, 1.0).astype(np.float32)


def denormalize(norm: np.ndarray, p: AudioParams) -> np.ndarray:
  """[0, 1] -> magnitudes; the inverse of `normalize` above its floor."""
  db = np.clip(norm, 0.0, 1.0) * -p.min_db + p.min_db + p.ref_db
  return np.power(10.0, db / 20.0).astype(np.float32)


def spectrograms(wave: np.ndarray, p: AudioParams):
  """(mel (frames, n_mels), linear (frames, n_linear)), both normalised."""
  mag = stft_magnitude(wave, p)
  mel = mag @ _mel_basis(p).T
  return normalize(mel, p), normalize(mag, p)


def griffin_lim(linear_norm: np.ndarray, p: AudioParams,
                iters: int | None = None, seed: int = 0) -> np.ndarray:
  """A 16 kHz waveform from a normalised (frames, n_linear) spectrogram."""
  import librosa  # pylint: disable=g-import-not-at-top
  mag = denormalize(linear_norm, p).T.astype(np.float64) ** p.power
  wave = librosa.griffinlim(
      mag, n_iter=iters or p.griffin_lim_iters, hop_length=p.hop,
      win_length=p.win, n_fft=p.n_fft, window='hann', center=True,
      pad_mode='constant', random_state=seed)
  peak = np.max(np.abs(wave)) if wave.size else 0.0
  if peak > 1.0:  # 1.5 power can overshoot; keep it in [-1, 1].
    wave = wave / peak
  return wave.astype(np.float32)
