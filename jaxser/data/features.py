"""Feature sets: named, configurable functions from a 16 kHz waveform to arrays.

Each feature set is registered under a name with its default parameters. A
feature configuration is the name plus the parameters it was computed with;
its `key()` names the cache, so any change of a parameter rebuilds the cache.

Frame-level features are returned as (frames, dims) float32 arrays, padded or
centre-cropped to a fixed number of frames by `fix_length`, with the true
length kept; utterance-level functionals as (dims,) arrays. A set whose first
axis is not frames of the utterance (`spec_segments`: segments) names the
parameter that fixes that axis (`length_param`), so that the data config's
`frames` does not apply to it.

Sets: `mfcc40` (Emo-DNA), `logmel80` / `logmel128` (MMD-SER), `fbank128`
(the Audio Spectrogram Transformer's Kaldi fbank), `spec_segments` (DIFL),
`emobase`, `is10`, `egemaps` (openSMILE functionals), `waveform` (the
samples themselves, for front ends that run on the accelerator).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any, Callable

import numpy as np
# openSMILE's native library must be loaded before TensorFlow's: with TF
# loaded first, Smile.process_signal segfaults. Importing it here, before any
# module of ours imports TF, fixes the order.
import opensmile

from jaxser.data.corpus import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class FeatureSet:
  """A registered feature set.

  Attributes:
    name: registry name.
    fn: (waveform, **params) -> np.ndarray, (frames, ...) or (dims,).
    defaults: default parameters of `fn`.
    frame_level: whether `fn` returns a sequence along its first axis, which
      is padded or cropped to a fixed length.
    length_param: the parameter that fixes that length, for sets whose first
      axis is not frames; None: the data config's `frames` fixes it.
  """
  name: str
  fn: Callable[..., np.ndarray]
  defaults: dict[str, Any]
  frame_level: bool = True
  length_param: str | None = None


_FEATURES: dict[str, FeatureSet] = {}


def register(name: str, frame_level: bool = True,
             length_param: str | None = None, **defaults):
  if length_param is not None and (not frame_level
                                   or length_param not in defaults):
    raise ValueError(f'feature set {name!r}: length_param {length_param!r} '
                     'must be a parameter of a frame-level set')

  def wrap(fn):
    _FEATURES[name] = FeatureSet(name, fn, dict(defaults), frame_level,
                                 length_param)
    return fn
  return wrap


def available() -> list[str]:
  return sorted(_FEATURES)


def get(name: str) -> FeatureSet:
  if name not in _FEATURES:
    raise ValueError(
        f'config.data.features: unknown feature set {name!r}; known: '
        f'{", ".join(available())}')
  return _FEATURES[name]


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
  """A feature set with all its parameters resolved, plus the fixed length."""
  name: str
  params: tuple[tuple[str, Any], ...]
  frames: int | None  # Length of the first axis; None: utterance-level.

  @classmethod
  def create(cls, name: str, frames: int | None = None,
             **overrides) -> 'FeatureConfig':
    fs = get(name)
    unknown = set(overrides) - set(fs.defaults)
    if unknown:
      raise ValueError(
          f'config.data.feature_params: unknown parameter(s) '
          f'{sorted(unknown)} for feature set {name!r}; known: '
          f'{sorted(fs.defaults)}')
    params = {**fs.defaults, **overrides}
    if fs.length_param is not None:
      frames = int(params[fs.length_param])
    elif not fs.frame_level:
      frames = None
    return cls(name, tuple(sorted(params.items())), frames)

  @classmethod
  def from_data_config(cls, data_cfg) -> 'FeatureConfig':
    # feature_params holds one block of parameters per feature set, so that
    # switching `features` on the command line keeps every set's defaults.
    all_params = data_cfg.get('feature_params') or {}
    overrides = dict(all_params.get(data_cfg.features) or {})
    return cls.create(data_cfg.features, data_cfg.get('frames'), **overrides)

  def key(self) -> str:
    """A short stable name of this configuration, used to key the cache."""
    blob = json.dumps([self.name, self.params, self.frames], sort_keys=True)
    return f'{self.name}_{hashlib.sha1(blob.encode()).hexdigest()[:10]}'

  def compute(self, wav: np.ndarray) -> tuple[np.ndarray, int]:
    """Features of `wav` and the number of valid (unpadded) first-axis rows."""
    fs = get(self.name)
    x = np.asarray(fs.fn(wav, **dict(self.params)), np.float32)
    if not fs.frame_level:
      return x, 1
    return fix_length(x, self.frames)


def fix_length(x: np.ndarray, frames: int | None) -> tuple[np.ndarray, int]:
  """Zero-pads at the end or centre-crops (frames, dims) to `frames` frames."""
  n = x.shape[0]
  if frames is None:
    return x, n
  if n >= frames:
    start = (n - frames) // 2
    return x[start:start + frames], frames
  pad = np.zeros((frames - n,) + x.shape[1:], x.dtype)
  return np.concatenate([x, pad]), n


def _samples(ms: float) -> int:
  return int(round(ms * SAMPLE_RATE / 1000))


@register('mfcc40', n_mfcc=40, win_ms=25.0, hop_ms=10.0, n_fft=512,
          n_mels=64, fmin=0.0, fmax=8000.0)
def mfcc(wav, *, n_mfcc, win_ms, hop_ms, n_fft, n_mels, fmin, fmax):
  """librosa MFCC, (frames, n_mfcc).

  Emo-DNA says only "librosa MFCC, 40 coefficients"; the 25 ms / 10 ms framing
  is the usual speech choice and n_mels = 64 keeps every mel band non-empty at
  n_fft = 512 (librosa's default of 128 bands would leave some empty).
  """
  import librosa  # pylint: disable=g-import-not-at-top
  win, hop = _samples(win_ms), _samples(hop_ms)
  m = librosa.feature.mfcc(
      y=wav, sr=SAMPLE_RATE, n_mfcc=n_mfcc, n_fft=max(n_fft, win),
      win_length=win, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)
  return m.T


@register('logmel80', n_mels=80, win_ms=40.0, hop_ms=10.0, window='hamming',
          n_fft=1024, fmin=0.0, fmax=8000.0, log_offset=1e-6)
@register('logmel128', n_mels=128, win_ms=40.0, hop_ms=10.0,
          window='hamming', n_fft=1024, fmin=0.0, fmax=8000.0, log_offset=1e-6)
def logmel(wav, *, n_mels, win_ms, hop_ms, window, n_fft, fmin, fmax,
           log_offset):
  """Natural-log mel power spectrogram (librosa, Slaney mel), (frames, n_mels).

  MMD-SER feeds 80-band log mel spectra (`logmel80`); its released code used
  128 bands, 40 ms Hamming windows and a 10 ms hop (`logmel128`), and
  centre-cropped every utterance to 1400 frames: a config reproducing it sets
  `config.data.frames = 1400` (the base config's 300 frames cover 3 s). The
  paper gives no framing for its 80 bands, so `logmel80` shares the code's.
  n_fft = 1024 is the power of two above the 640-sample window, which leaves
  at least two FFT bins in every one of the 128 bands.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  win = _samples(win_ms)
  m = librosa.feature.melspectrogram(
      y=wav, sr=SAMPLE_RATE, n_fft=max(n_fft, win), hop_length=_samples(hop_ms),
      win_length=win, window=window, n_mels=n_mels, fmin=fmin, fmax=fmax,
      power=2.0)
  return np.log(m + log_offset).T


def kaldi_mel_banks(n_mels: int, n_fft: int, low_freq: float,
                    high_freq: float) -> np.ndarray:
  """Kaldi's triangular mel filters (mel-computations.cc), (n_fft//2+1, n_mels).

  Triangles are equally spaced on the mel scale 1127 ln(1 + f / 700) between
  `low_freq` and `high_freq` (<= 0: that far below the Nyquist frequency) and
  unnormalised; as in Kaldi the Nyquist bin gets no weight.
  """
  mel = lambda f: 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)
  if high_freq <= 0:
    high_freq += SAMPLE_RATE / 2
  lo, hi = mel(low_freq), mel(high_freq)
  edges = lo + (hi - lo) / (n_mels + 1) * np.arange(n_mels + 2)
  left, centre, right = edges[:-2], edges[1:-1], edges[2:]
  m = mel(np.arange(n_fft // 2) * SAMPLE_RATE / n_fft)[:, None]
  up = (m - left) / (centre - left)
  down = (right - m) / (right - centre)
  banks = np.maximum(0.0, np.minimum(up, down))
  return np.concatenate([banks, np.zeros((1, n_mels))])


@register('fbank128', n_mels=128, win_ms=25.0, hop_ms=10.0,
          preemphasis=0.97, low_freq=20.0, high_freq=0.0,
          norm_mean=-4.2677393, norm_std=4.5689974)
def fbank(wav, *, n_mels, win_ms, hop_ms, preemphasis, low_freq, high_freq,
          norm_mean, norm_std):
  """Kaldi log mel filterbank as the Audio Spectrogram Transformer takes it.

  Reimplements (to float precision) what AST runs on a [-1, 1] waveform:
  `torchaudio.compliance.kaldi.fbank(wav, htk_compat=True,
  sample_frequency=16000, use_energy=False, window_type='hanning',
  num_mel_bins=128, dither=0.0, frame_shift=10)`, then (x - mean) / (2 std)
  with AST's AudioSet statistics. Kaldi framing: frames lie wholly inside the
  signal (snip_edges), each loses its DC offset, is pre-emphasised with its
  first sample replicated, Hann-windowed (symmetric), zero-padded to a power
  of two, and its power spectrum is summed into mel bands whose log is
  floored at float32 epsilon. AST pads or crops to 1024 frames (10.24 s):
  set `config.data.frames = 1024` to match. Unlike AST, whose padding is
  zero before normalisation, padded frames here are zero after it.
  """
  win, hop = _samples(win_ms), _samples(hop_ms)
  n_fft = 1 << (win - 1).bit_length()
  frames = np.lib.stride_tricks.sliding_window_view(
      np.asarray(wav, np.float64), win)[::hop]
  frames = frames - frames.mean(axis=1, keepdims=True)
  previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
  frames = (frames - preemphasis * previous) * np.hanning(win)
  power = np.abs(np.fft.rfft(frames, n=n_fft)) ** 2
  energies = power @ kaldi_mel_banks(n_mels, n_fft, low_freq, high_freq)
  logfb = np.log(np.maximum(energies, np.finfo(np.float32).eps))
  return (logfb - norm_mean) / (2 * norm_std)


@register('spec_segments', length_param='n_segments', frame_ms=25.0,
          hop_ms=7.75, frames_per_segment=32, n_bins=129, segment_hop=16,
          n_segments=23, window='hamming', log_offset=1e-6)
def spec_segments(wav, *, frame_ms, hop_ms, frames_per_segment, n_bins,
                  segment_hop, n_segments, window, log_offset):
  """DIFL's input: log power spectrograms of 265 ms segments, (S, 32, 129).

  DIFL splits each utterance into 265 ms segments and computes a 32 x 129
  (time x frequency) spectrogram of each with 25 ms frames at 16 kHz; it
  gives neither the frame hop nor the FFT. Here 32 frames of 25 ms at a
  7.75 ms hop span 25 + 31 * 7.75 = 265.25 ms, and the 129 bins sample each
  full 25 ms (400-sample) frame's spectrum every 62.5 Hz from 0 to 8 kHz
  (every k-th bin of a zero-padded FFT of k * 256 points): the frame length
  and the bin count the paper states, with no frame truncated to 256 samples.

  Segments start every `segment_hop` frames (16: half a segment, 124 ms), and
  a signal shorter than one segment is zero-padded to one. The first axis is
  the segment axis; the feature config fixes it at `n_segments` (23 segments
  cover 2.99 s, exactly what a 3 s utterance yields) by padding with zero
  segments or centre-cropping, and the stored length is the number of valid
  segments. An utterance's segments thus stay in its own row: a model
  classifies each segment and predicts the utterance by averaging the
  posteriors of its valid segments (`segment_mask`).
  """
  del n_segments  # Applied by FeatureConfig.compute (the `length_param`).
  from scipy import signal  # pylint: disable=g-import-not-at-top
  win, hop = _samples(frame_ms), _samples(hop_ms)
  period = 2 * (n_bins - 1)
  stride = -(-win // period)  # Bins of the zero-padded FFT per output bin.
  x = np.asarray(wav, np.float64)
  seg_len = win + (frames_per_segment - 1) * hop
  if x.size < seg_len:
    x = np.pad(x, (0, seg_len - x.size))
  frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
  spec = np.fft.rfft(frames * signal.get_window(window, win),
                     n=period * stride)[:, ::stride]
  logspec = np.log(np.abs(spec) ** 2 + log_offset)
  segments = np.lib.stride_tricks.sliding_window_view(
      logspec, frames_per_segment, axis=0)[::segment_hop]
  return segments.transpose(0, 2, 1)


def segment_mask(lengths, n_segments: int):
  """(..., n_segments) bool mask of the valid segments of each utterance.

  Works on numpy and (inside jit) on JAX `lengths`. Utterance-level
  prediction averages the segment posteriors under this mask.
  """
  return lengths[..., None] > np.arange(n_segments)


@functools.lru_cache(maxsize=None)
def _smile(feature_set: str):
  """One openSMILE extractor per process: building one takes ~0.1-0.3 s."""
  return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                         feature_level=opensmile.FeatureLevel.Functionals)


@register('waveform', length_param='samples', samples=48000)
def waveform(wav, *, samples):
  """The 16 kHz mono samples themselves, (samples,).

  For methods that augment raw audio and compute their features on the
  accelerator (the multitask method, `jaxser.models.frontend`). `samples`
  (48000 = 3 s) fixes the length: longer clips are centre-cropped, shorter
  ones zero-padded, and the stored length is the number of real samples.
  """
  del samples  # Applied by FeatureConfig.compute (the `length_param`).
  return np.asarray(wav, np.float32)


@register('emobase', frame_level=False, feature_set='emobase')
@register('is10', frame_level=False, feature_set='IS10')
@register('egemaps', frame_level=False, feature_set='eGeMAPSv02')
def opensmile_functionals(wav, *, feature_set):
  """openSMILE functionals of the whole utterance, (dims,).

  `emobase`: the emobase config, 988 dims. `is10`: the INTERSPEECH 2010
  Paralinguistic Challenge set (`opensmile.FeatureSet.IS10`, config
  is09-13/IS10_paraling_compat), 1582 dims; openSMILE's emobase2010 reference
  set is built on it with the same 1582 features, and it is the set
  CAEmoCyGAN calls its "1582 dimensional ... Emobase" features. `egemaps`:
  eGeMAPS v02, 88 dims. `feature_set` names an `opensmile.FeatureSet` member.
  """
  return _smile(feature_set).process_signal(wav, SAMPLE_RATE).to_numpy()[0]
