"""Feature sets: named, configurable functions from a 16 kHz waveform (or, for
text sets, the utterance's transcript) to arrays.

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
samples themselves, for front ends that run on the accelerator), `tokens`
(BERT token ids of the transcript, int32; never reads audio), `ssl` (the
hidden states of a pretrained self-supervised speech encoder, computed in
batches on the device: `jaxser.data.ssl`).

A text set (`reads='text'`) is computed from `Utterance.text` by
`FeatureConfig.compute_text`; the cache skips utterances without a
transcript and refuses a corpus that has none. A set that reads files
besides its parameters (a tokenizer) names them in the cache key through its
`identity`, so a changed file never reuses a stale cache.

A batched set (`batched`: `ssl`) runs a model on padded batches of
waveforms in the main process instead of `fn` in worker processes; the
cache uses `FeatureConfig.batch_extractor`. Its `frame_level` may depend on
its parameters (a callable), and parameters that do not change the
features (an extraction batch size) are left out of the cache key
(`unkeyed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from typing import Any, Callable
import zlib

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
      is padded or cropped to a fixed length; or params -> that.
    length_param: the parameter that fixes that length, for sets whose first
      axis is not frames; None: the data config's `frames` fixes it.
    kind: the input kind a network takes it as (a key of
      `jaxser.models.registry.INPUT_KINDS`), where `frame_level` does not
      tell it; read by `registry.feature_kind`.
    reads: 'audio' (`fn(waveform, **params)`) or 'text' (`fn(transcript,
      **params)`, never given audio).
    dtype: numpy dtype name of the stored arrays.
    identity: params -> a string naming what `fn` reads besides its
      parameters (e.g. a hash of a tokenizer's files), part of the cache key;
      None: nothing.
    check: params -> None, raising a one-line ValueError that names the
      `config.data.feature_params` field of a bad value; None: no check.
    batched: params -> a context manager giving `extract(waveforms,
      progress=None) -> [fn's output of each]`, which runs a model on
      padded batches in the main process (the model is loaded while it is
      open); the cache uses it instead of `fn` in worker processes. None:
      `fn` per utterance.
    unkeyed: parameters left out of the cache key (they do not change the
      features, e.g. an extraction batch size).
  """
  name: str
  fn: Callable[..., np.ndarray]
  defaults: dict[str, Any]
  frame_level: bool | Callable[[dict[str, Any]], bool] = True
  length_param: str | None = None
  kind: str | None = None
  reads: str = 'audio'
  dtype: str = 'float32'
  identity: Callable[..., str] | None = None
  check: Callable[..., None] | None = None
  batched: Callable[[dict[str, Any]], Any] | None = None
  unkeyed: tuple[str, ...] = ()

  def is_frame_level(self, params: dict[str, Any]) -> bool:
    """`frame_level` under `params` (it may depend on them)."""
    if callable(self.frame_level):
      return bool(self.frame_level(params))
    return bool(self.frame_level)


_FEATURES: dict[str, FeatureSet] = {}
READS = ('audio', 'text')


def register(name: str, frame_level: bool | Callable[..., bool] = True,
             length_param: str | None = None, *, kind: str | None = None,
             reads: str = 'audio', dtype: str = 'float32',
             identity: Callable[..., str] | None = None,
             check: Callable[..., None] | None = None,
             batched: Callable[[dict[str, Any]], Any] | None = None,
             unkeyed: tuple[str, ...] = (),
             params: dict[str, Any] | None = None, **defaults):
  # `params`: defaults whose names register's own arguments take (`dtype`).
  defaults = {**defaults, **(params or {})}
  if length_param is not None and (frame_level is not True
                                   or length_param not in defaults):
    raise ValueError(f'feature set {name!r}: length_param {length_param!r} '
                     'must be a parameter of a frame-level set')
  if reads not in READS:
    raise ValueError(f'feature set {name!r}: reads must be one of {READS}, '
                     f'got {reads!r}')

  def wrap(fn):
    _FEATURES[name] = FeatureSet(name, fn, dict(defaults), frame_level,
                                 length_param, kind=kind, reads=reads,
                                 dtype=dtype, identity=identity, check=check,
                                 batched=batched, unkeyed=tuple(unkeyed))
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
    if fs.check is not None:
      fs.check(params)
    if fs.length_param is not None:
      frames = int(params[fs.length_param])
    elif not fs.is_frame_level(params):
      frames = None
    return cls(name, tuple(sorted(params.items())), frames)

  @classmethod
  def from_data_config(cls, data_cfg) -> 'FeatureConfig':
    # feature_params holds one block of parameters per feature set, so that
    # switching `features` on the command line keeps every set's defaults.
    all_params = data_cfg.get('feature_params') or {}
    overrides = dict(all_params.get(data_cfg.features) or {})
    fc = cls.create(data_cfg.features, data_cfg.get('frames'), **overrides)
    normalize = data_cfg.get('normalize', 'none')
    if fc.dtype.kind in 'iu' and normalize != 'none':
      raise ValueError(
          f"config.data.normalize: {normalize!r} does not apply to the "
          f"integer ids of config.data.features={fc.name!r}; use 'none'")
    return fc

  @property
  def reads_text(self) -> bool:
    """Whether this set is computed from transcripts rather than audio."""
    return get(self.name).reads == 'text'

  @property
  def dtype(self) -> np.dtype:
    """The dtype of the arrays it computes (and the cache stores)."""
    return np.dtype(get(self.name).dtype)

  def key(self) -> str:
    """A short stable name of this configuration, used to key the cache."""
    fs = get(self.name)
    params = tuple(p for p in self.params if p[0] not in fs.unkeyed)
    parts = [self.name, params, self.frames]
    if fs.identity is not None:
      parts.append(fs.identity(**dict(self.params)))
    blob = json.dumps(parts, sort_keys=True)
    return f'{self.name}_{hashlib.sha1(blob.encode()).hexdigest()[:10]}'

  def compute(self, wav: np.ndarray) -> tuple[np.ndarray, int]:
    """Features of `wav` and the number of valid (unpadded) first-axis rows."""
    fs = get(self.name)
    if fs.reads != 'audio':
      raise ValueError(f'feature set {self.name!r} is computed from '
                       'transcripts (compute_text), not audio')
    return self._finish(fs.fn(wav, **dict(self.params)))

  @property
  def frame_level(self) -> bool:
    return get(self.name).is_frame_level(dict(self.params))

  def _finish(self, x) -> tuple[np.ndarray, int]:
    """`fn`'s output as stored, and its number of valid first-axis rows:
    frame-level sets padded / cropped to `frames`; an utterance-level array
    of two or more axes has all its rows valid (1 for a vector)."""
    x = np.asarray(x, get(self.name).dtype)
    if not self.frame_level:
      return x, (x.shape[0] if x.ndim >= 2 else 1)
    return fix_length(x, self.frames)

  @property
  def batched(self) -> bool:
    """Whether this set runs a model on batches in the main process."""
    return get(self.name).batched is not None

  @contextlib.contextmanager
  def batch_extractor(self):
    """For a batched set: a function (waveforms, progress=None) ->
    [(features, valid rows)] as `compute` gives them, one per waveform,
    computed in padded batches on the device. The set's model stays loaded
    while the context is open. `progress(utterances, samples)` is called
    after each batch."""
    fs = get(self.name)
    if fs.batched is None:
      raise ValueError(f'feature set {self.name!r} is not batched; use '
                       'compute')
    with fs.batched(dict(self.params)) as extract:
      yield lambda wavs, progress=None: [
          self._finish(x) for x in extract(wavs, progress)]

  def compute_text(self, text: str) -> tuple[np.ndarray, int]:
    """Features of a transcript (text sets) and the number of valid rows.

    The set's function returns at most `frames` rows (it truncates itself,
    e.g. keeping [SEP] last); they are zero-padded at the end.
    """
    fs = get(self.name)
    if fs.reads != 'text':
      raise ValueError(f'feature set {self.name!r} is computed from audio '
                       '(compute), not transcripts')
    x = np.asarray(fs.fn(text, **dict(self.params)), fs.dtype)
    if self.frames is not None and x.shape[0] > self.frames:
      raise ValueError(f'feature set {self.name!r}: {x.shape[0]} rows for '
                       f'at most {self.frames}')
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


# Token ids of the transcript for BERT-style text encoders.

# bert-base-uncased's special ids; ids below FIRST_FREE_ID are reserved
# (BERT's vocabulary keeps [unused*] and the specials there).
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
FIRST_FREE_ID = 1000
BUILTIN_TOKENIZER = 'builtin:bert-normalizer+bert-pretokenizer+crc32:v1'


@functools.lru_cache(maxsize=None)
def _bert_splitter():
  """BERT's normaliser (lower-case, strip accents, clean, split CJK) and
  pre-tokeniser (whitespace and punctuation) from `tokenizers`."""
  from tokenizers import normalizers  # pylint: disable=g-import-not-at-top
  from tokenizers import pre_tokenizers  # pylint: disable=g-import-not-at-top
  return (normalizers.BertNormalizer(clean_text=True,
                                     handle_chinese_chars=True,
                                     strip_accents=None, lowercase=True),
          pre_tokenizers.BertPreTokenizer())


def builtin_words(text: str) -> list[str]:
  """The words the built-in tokenizer hashes: BERT-normalised, split."""
  normalizer, pre_tokenizer = _bert_splitter()
  return [w for w, _ in pre_tokenizer.pre_tokenize_str(
      normalizer.normalize_str(text))]


def builtin_tokenize(text: str, max_length: int,
                     vocab_size: int) -> np.ndarray:
  """[CLS] word ids [SEP] of `text` by the built-in hashing tokenizer, int32.

  Each word of `builtin_words` (BERT's normalisation and split: lower-case,
  accents stripped, punctuation split off) gets the id FIRST_FREE_ID +
  crc32(utf-8 word) mod (vocab_size - FIRST_FREE_ID): stable across runs,
  processes and machines, with bert-base-uncased's specials ([PAD] 0,
  [UNK] 100, [CLS] 101, [SEP] 102) and ids below 1000 never given to a word.
  Words are cut after max_length - 2, so [SEP] stays last. Distinct words may
  share an id (hash collisions), and there are no word pieces: it stands in
  for a checkpoint's tokenizer in tests and CPU runs, not for BERT's own.
  """
  span = vocab_size - FIRST_FREE_ID
  ids = [FIRST_FREE_ID + zlib.crc32(w.encode('utf-8')) % span
         for w in builtin_words(text)[:max(max_length - 2, 0)]]
  return np.asarray([CLS_ID, *ids, SEP_ID], np.int32)


@functools.lru_cache(maxsize=8)
def _checkpoint_tokenizer(directory: str, signature: tuple):
  """The tokenizer of a checkpoint directory, loaded once per process and
  `signature` (its files' sizes and times: a changed file reloads)."""
  del signature  # Part of the lru key only.
  from jaxser.models import bert  # pylint: disable=g-import-not-at-top
  return bert.load_tokenizer(directory)


def _signature(directory: str) -> tuple:
  out = []
  for name in _TOKENIZER_FILES:
    try:
      st = os.stat(os.path.join(directory, name))
      out.append((name, st.st_size, st.st_mtime_ns))
    except OSError:
      pass
  return tuple(out)


# What `jaxser.models.bert.load_tokenizer` reads: tokenizer.json, else
# vocab.txt with the lower-casing flags of tokenizer_config.json/config.json.
_TOKENIZER_FILES = ('tokenizer.json', 'vocab.txt', 'tokenizer_config.json',
                    'config.json')


def tokenizer_identity(*, tokenizer: str, **unused) -> str:
  """The built-in tokenizer's name, or a hash of the checkpoint's files that
  `load_tokenizer` reads (tokenizer.json; else vocab.txt and the configs)."""
  del unused
  if not tokenizer:
    return BUILTIN_TOKENIZER
  directory = os.path.expanduser(tokenizer)
  names = (('tokenizer.json',)
           if os.path.isfile(os.path.join(directory, 'tokenizer.json'))
           else _TOKENIZER_FILES[1:])
  h = hashlib.sha1()
  for name in names:
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        h.update(name.encode() + b'\0' + f.read() + b'\0')
  return h.hexdigest()[:16]


def _check_tokens(params) -> None:
  field = 'config.data.feature_params.tokens'
  if int(params['max_length']) < 2:
    raise ValueError(f'{field}.max_length: must be at least 2 ([CLS] and '
                     f'[SEP]), got {params["max_length"]}')
  tokenizer = params['tokenizer']
  if not tokenizer:
    if int(params['vocab_size']) <= FIRST_FREE_ID:
      raise ValueError(f'{field}.vocab_size: the built-in tokenizer needs '
                       f'more than {FIRST_FREE_ID} ids (those below are '
                       f'reserved), got {params["vocab_size"]}')
    return
  directory = os.path.expanduser(str(tokenizer))
  if not any(os.path.isfile(os.path.join(directory, n))
             for n in ('tokenizer.json', 'vocab.txt')):
    raise ValueError(f'{field}.tokenizer: {tokenizer!r} is not a directory '
                     'holding tokenizer.json or vocab.txt (a Hugging Face '
                     "checkpoint); '' uses the built-in tokenizer")


@register('tokens', length_param='max_length', kind='tokens', reads='text',
          dtype='int32', identity=tokenizer_identity, check=_check_tokens,
          tokenizer='', max_length=128, vocab_size=30522)
def tokens(text, *, tokenizer, max_length, vocab_size):
  """Token ids of the transcript, (max_length,) int32, for BERT.

  Never reads audio: computed from `Utterance.text` (`compute_text`).
  `tokenizer`: '' for the built-in hashing tokenizer (`builtin_tokenize`,
  ids in [1000, vocab_size) plus bert-base-uncased's specials; for tests and
  CPU runs without a checkpoint), else a local Hugging Face checkpoint
  directory whose tokenizer.json or vocab.txt `jaxser.models.bert.
  load_tokenizer` reads; its ids are `jaxser.models.bert.encode`'s ([CLS]
  word pieces [SEP] by the checkpoint's own vocabulary; `vocab_size` is then
  unused). Texts longer than `max_length` tokens are truncated with [SEP]
  kept last; shorter ones are padded with 0 ([PAD]) and the stored length
  is the number of real tokens, [CLS] and [SEP] included. The cache key
  holds a hash of the tokenizer's files (`tokenizer_identity`).
  """
  max_length, vocab_size = int(max_length), int(vocab_size)
  if not tokenizer:
    return builtin_tokenize(text, max_length, vocab_size)
  from jaxser.models import bert  # pylint: disable=g-import-not-at-top
  directory = os.path.expanduser(str(tokenizer))
  tok = _checkpoint_tokenizer(directory, _signature(directory))
  ids, mask = bert.encode(tok, [text], max_length)
  return ids[0, :int(mask[0].sum())]


# Hidden states of a pretrained self-supervised speech encoder.


def _ssl():
  """jaxser.data.ssl_features, imported when first used (it imports JAX)."""
  from jaxser.data import ssl_features  # pylint: disable=g-import-not-at-top
  return ssl_features


@register('ssl', frame_level=lambda params: params['pool'] == 'none',
          kind='layers', identity=lambda **p: _ssl().identity(**p),
          check=lambda params: _ssl().check(params),
          batched=lambda params: _ssl().batch_extractor(params),
          unkeyed=('batch_size',),
          params=dict(checkpoint='', layers='all', pool='mean', batch_size=8,
                      dtype='float32'))
def ssl(wav, **params):
  """A pretrained encoder's hidden states (`jaxser.data.ssl_features`).

  `checkpoint`: a local Hugging Face directory whose config.json's
  model_type (whisper, wav2vec2, hubert, wavlm) picks the encoder; required.
  `layers`: 'all' or comma-separated hidden-state indices (0 = embedding
  output). `pool` 'mean': (layers, hidden) per utterance, each layer's mean
  over the valid frames (all rows valid); 'none': (frames, layers, hidden)
  frame features padded / cropped to `config.data.frames`, the true frame
  count as the length. `batch_size`: utterances per extraction batch (not
  in the cache key). `dtype`: 'float32' or 'bfloat16' compute. Extracted in
  padded batches on the device in the main process (`batched`); the cache
  key holds a hash of the checkpoint's files.
  """
  return _ssl().extract(wav, **params)
